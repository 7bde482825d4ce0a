#!/usr/bin/python3
"""PyTorch reference for seqpar's seq2seq parity test (tests/test_parity.c).

Builds the seq2seq model of *Dive into Deep Learning* (the seq2seq section)
from a seqpar checkpoint alone, runs one teacher-forced forward and backward
pass on a batch, and writes the loss, the token count and every parameter's
gradient, so that the C test can compare them with seqpar's own.

The model and its masked loss are those of checkpoints/seqpar_torch.py (the
book's seq2seq as seqpar defines it, DESIGN.md "Math conventions"; with
"attention": "additive" in /config the book's Bahdanau decoder,
Seq2SeqAttentionDecoder with AdditiveAttention): the
loss is the cross-entropy summed over the target positions t < valid[b],
with ``<bos>`` (id 1) prepended (teacher forcing). The checkpoint must have
dropout 0 (torch's dropout masks differ from seqpar's).

Inputs:
  checkpoint.h5  /config (JSON: task, cell, layers, embed, hidden, dropout,
                 bidirectional, attention), /model/<state_dict key with '.' → '/'>
                 (float32), /vocab/src and /vocab/tgt (their lengths are the
                 vocabulary sizes)
  batch.h5       /src, /tgt (B, T) int32 ids, batch-major; /valid (B) int32
                 target valid lengths

Output (out.h5, written with h5py):
  /loss, /tokens          float64 loss sum and int64 count, float64 reference
  /loss_f32               the same loss computed in float32
  /grad/<path>            float64 gradients (the float32 weights are converted
                          to float64 before the forward pass, so this measures
                          only seqpar's own float32 rounding)
  /grad_f32/<path>        float32 gradients (torch's float32 arithmetic)

Exit status: 0 success, 2 usage, 3 missing Python module, 4 bad input.
Use Debian's /usr/bin/python3 (python3-torch, python3-h5py, python3-numpy).
"""

import argparse
import copy
import os
import sys

EXIT_DEPS = 3
EXIT_INPUT = 4


def die(code, msg):
    print("torch_ref.py: error: " + msg, file=sys.stderr)
    sys.exit(code)


try:
    import h5py
    import numpy as np
    import torch
except ImportError as exc:  # pragma: no cover - environment check
    die(EXIT_DEPS, "cannot import %s (%s): the parity test needs torch, h5py and numpy "
        "for %s (Debian: apt-get install python3-torch python3-h5py python3-numpy)"
        % (exc.name, exc, sys.executable))

# The model, its loss and the checkpoint reader: checkpoints/seqpar_torch.py.
CHECKPOINTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               os.pardir, os.pardir, "checkpoints")
sys.path.insert(0, os.path.normpath(CHECKPOINTS_DIR))
try:
    from seqpar_torch import CheckpointError, load, masked_loss
except ImportError as exc:  # pragma: no cover - broken checkout
    die(EXIT_DEPS, "cannot import seqpar_torch from %s (%s)"
        % (os.path.normpath(CHECKPOINTS_DIR), exc))


def read_batch(path):
    try:
        with h5py.File(path, "r") as b:
            src, tgt, valid = (np.asarray(b[k][()], dtype=np.int64)
                               for k in ("src", "tgt", "valid"))
    except (OSError, KeyError) as exc:
        die(EXIT_INPUT, "%s: cannot read /src, /tgt, /valid (%s)" % (path, exc))
    if src.ndim != 2 or src.shape != tgt.shape or valid.shape != (src.shape[0],):
        die(EXIT_INPUT, "%s: shapes src %s, tgt %s, valid %s do not fit (B, T), (B, T), (B)"
            % (path, src.shape, tgt.shape, valid.shape))
    return torch.from_numpy(src), torch.from_numpy(tgt), torch.from_numpy(valid)


def run(model, src, tgt, valid):
    model.zero_grad(set_to_none=False)
    loss, tokens = masked_loss(model, src, tgt, valid)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return float(loss.detach()), tokens, grads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="seqpar checkpoint (HDF5) holding /config, /model, /vocab")
    ap.add_argument("batch", help="HDF5 file with /src, /tgt (B, T) and /valid (B), int32")
    ap.add_argument("out", help="output HDF5 file (overwritten)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing random is used; the modules' init is overwritten

    try:
        model, cfg, src_tokens, tgt_tokens = load(args.checkpoint)  # load_state_dict(strict=True)
    except CheckpointError as exc:
        die(EXIT_INPUT, str(exc))
    if float(cfg.get("dropout", 0.0)) != 0.0:
        die(EXIT_INPUT, "%s: dropout %s: parity needs dropout 0 (torch's dropout masks differ "
            "from seqpar's)" % (args.checkpoint, cfg["dropout"]))
    vs, vt = len(src_tokens), len(tgt_tokens)
    src, tgt, valid = read_batch(args.batch)
    if src.min() < 0 or src.max() >= vs or tgt.min() < 0 or tgt.max() >= vt:
        die(EXIT_INPUT, "%s: ids out of range (src vocab %d, tgt vocab %d)" % (args.batch, vs, vt))

    loss32, tokens, g32 = run(model, src, tgt, valid)
    model64 = copy.deepcopy(model).double()
    loss64, tokens64, g64 = run(model64, src, tgt, valid)
    if tokens != tokens64:
        die(EXIT_INPUT, "token counts differ between float32 and float64 (%d, %d)"
            % (tokens, tokens64))

    with h5py.File(args.out, "w") as o:
        o["loss"] = np.float64(loss64)
        o["loss_f32"] = np.float64(loss32)
        o["tokens"] = np.int64(tokens)
        for k in g64:
            o["grad/" + k.replace(".", "/")] = g64[k].numpy().astype(np.float64)
            o["grad_f32/" + k.replace(".", "/")] = g32[k].numpy().astype(np.float32)
    print("torch_ref.py: %s %s L=%d E=%d H=%d%s: loss %.9g over %d tokens (float32 %.9g)"
          % (args.checkpoint, cfg["cell"], cfg["layers"], cfg["embed"], cfg["hidden"],
             " bidirectional" if cfg.get("bidirectional") else "", loss64, tokens, loss32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
