#!/usr/bin/python3
"""PyTorch reference for seqpar's seq2seq parity test (tests/test_parity.c).

Builds the seq2seq model of *Dive into Deep Learning* (the seq2seq section)
from a seqpar checkpoint alone, runs one teacher-forced forward and backward
pass on a batch, and writes the loss, the token count and every parameter's
gradient, so that the C test can compare them with seqpar's own.

The model (DESIGN.md, "Math conventions"):

* encoder: ``nn.Embedding(Vs, E)`` → ``nn.GRU/LSTM/RNN(E, H, L)``, time-major;
  a bidirectional encoder has ``H // 2`` units per direction and its final
  state per layer is ``[forward h(T-1) ; backward h(0)]`` (size H);
* decoder: input at every step ``[embedding(y_{t-1}) ; context]`` with
  context = the encoder's last-layer final h (fixed over the sequence),
  ``<bos>`` (id 1) prepended (teacher forcing), initial state = the encoder's
  final state (h, and c for an LSTM), ``nn.Linear(H, Vt)`` on every output;
* loss: cross-entropy summed over the target positions t < valid[b].

``embed == 0`` in the configuration means one-hot inputs (no embedding
tensors), as seqpar supports.

Inputs:
  checkpoint.h5  /config (JSON: task, cell, layers, embed, hidden, dropout,
                 bidirectional), /model/<state_dict key with '.' → '/'>
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
import json
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
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:  # pragma: no cover - environment check
    die(EXIT_DEPS, "cannot import %s (%s): the parity test needs torch, h5py and numpy "
        "for %s (Debian: apt-get install python3-torch python3-h5py python3-numpy)"
        % (exc.name, exc, sys.executable))

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BOS = 1


class Encoder(nn.Module):
    """d2l's Seq2SeqEncoder, optionally bidirectional."""

    def __init__(self, cell, vocab, embed, hidden, layers, bidirectional):
        super().__init__()
        self.vocab = vocab
        self.bidirectional = bidirectional
        if embed > 0:
            self.embedding = nn.Embedding(vocab, embed)
        else:
            self.embedding = None
        size = hidden // 2 if bidirectional else hidden
        self.rnn = CELLS[cell](embed if embed > 0 else vocab, size, layers,
                               bidirectional=bidirectional)

    def forward(self, X):
        X = X.t()  # (T, B): time-major, as d2l's permute
        if self.embedding is not None:
            x = self.embedding(X)
        else:
            x = F.one_hot(X, self.vocab).to(self.rnn.weight_ih_l0.dtype)
        outputs, state = self.rnn(x)
        if self.bidirectional:
            state = tuple(join_directions(s) for s in state) if isinstance(state, tuple) \
                else join_directions(state)
        return outputs, state


def join_directions(s):
    """(L*2, B, H/2) ordered [l0 fwd, l0 bwd, l1 fwd, ...] → (L, B, H) = [fwd ; bwd]."""
    L2, B, Hd = s.shape
    return s.reshape(L2 // 2, 2, B, Hd).permute(0, 2, 1, 3).reshape(L2 // 2, B, 2 * Hd)


class Decoder(nn.Module):
    """d2l's Seq2SeqDecoder: [embedding(y_{t-1}) ; context] at every step."""

    def __init__(self, cell, vocab, embed, hidden, layers):
        super().__init__()
        self.vocab = vocab
        if embed > 0:
            self.embedding = nn.Embedding(vocab, embed)
        else:
            self.embedding = None
        self.rnn = CELLS[cell]((embed if embed > 0 else vocab) + hidden, hidden, layers)
        self.dense = nn.Linear(hidden, vocab)

    def forward(self, X, state):
        X = X.t()
        if self.embedding is not None:
            x = self.embedding(X)
        else:
            x = F.one_hot(X, self.vocab).to(self.dense.weight.dtype)
        h = state[0] if isinstance(state, tuple) else state
        context = h[-1].unsqueeze(0).expand(x.shape[0], -1, -1)  # last layer's final h
        outputs, _ = self.rnn(torch.cat((x, context), dim=2), state)
        return self.dense(outputs)  # (T, B, V)


class Seq2Seq(nn.Module):
    def __init__(self, cfg, src_vocab, tgt_vocab):
        super().__init__()
        cell, layers, embed, hidden = cfg["cell"], cfg["layers"], cfg["embed"], cfg["hidden"]
        self.encoder = Encoder(cell, src_vocab, embed, hidden, layers, cfg["bidirectional"])
        self.decoder = Decoder(cell, tgt_vocab, embed, hidden, layers)

    def forward(self, src, dec_in):
        _, state = self.encoder(src)
        return self.decoder(dec_in, state)


def masked_loss(model, src, tgt, valid):
    """Σ cross-entropy over t < valid[b], and the number of such positions."""
    B, T = tgt.shape
    bos = torch.full((B, 1), BOS, dtype=tgt.dtype)
    dec_in = torch.cat((bos, tgt[:, :-1]), dim=1)  # teacher forcing
    logits = model(src, dec_in)  # (T, B, V)
    mask = (torch.arange(T).unsqueeze(1) < valid.unsqueeze(0))  # (T, B)
    ce = F.cross_entropy(logits.reshape(T * B, -1), tgt.t().reshape(-1), reduction="none")
    loss = (ce * mask.reshape(-1).to(ce.dtype)).sum()
    return loss, int(mask.sum())


def read_string(ds):
    v = ds[()]
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def load_config(f, path):
    if "config" not in f:
        die(EXIT_INPUT, "%s: missing /config" % path)
    try:
        cfg = json.loads(read_string(f["config"]))
    except ValueError as exc:
        die(EXIT_INPUT, "%s: /config is not JSON (%s)" % (path, exc))
    for key in ("cell", "layers", "embed", "hidden"):
        if key not in cfg:
            die(EXIT_INPUT, "%s: /config lacks \"%s\"" % (path, key))
    if cfg.get("task", "translate") != "translate":
        die(EXIT_INPUT, "%s: task %r: only the translation model is supported"
            % (path, cfg.get("task")))
    if cfg["cell"] not in CELLS:
        die(EXIT_INPUT, "%s: unknown cell %r" % (path, cfg["cell"]))
    if float(cfg.get("dropout", 0.0)) != 0.0:
        die(EXIT_INPUT, "%s: dropout %s: parity needs dropout 0 (torch's dropout masks differ "
            "from seqpar's)" % (path, cfg["dropout"]))
    cfg["bidirectional"] = bool(cfg.get("bidirectional", False))
    if cfg["bidirectional"] and cfg["hidden"] % 2:
        die(EXIT_INPUT, "%s: a bidirectional encoder needs an even hidden size" % path)
    return cfg


def vocab_size(f, path, which, cfg):
    key = "vocab/" + which
    if key not in f:
        die(EXIT_INPUT, "%s: missing /%s" % (path, key))
    n = int(f[key].shape[0])
    want = cfg.get(which + "_vocab")
    if want is not None and int(want) != n:
        die(EXIT_INPUT, "%s: /config says %s_vocab=%s but /%s holds %d tokens"
            % (path, which, want, key, n))
    return n


def load_state(f, path):
    if "model" not in f:
        die(EXIT_INPUT, "%s: missing group /model" % path)
    state = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            state[name.replace("/", ".")] = torch.from_numpy(np.asarray(obj[()], dtype=np.float32))

    f["model"].visititems(visit)
    return state


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
        with h5py.File(args.checkpoint, "r") as f:
            cfg = load_config(f, args.checkpoint)
            vs = vocab_size(f, args.checkpoint, "src", cfg)
            vt = vocab_size(f, args.checkpoint, "tgt", cfg)
            state = load_state(f, args.checkpoint)
    except OSError as exc:
        die(EXIT_INPUT, "%s: cannot open as HDF5 (%s)" % (args.checkpoint, exc))
    src, tgt, valid = read_batch(args.batch)
    if src.min() < 0 or src.max() >= vs or tgt.min() < 0 or tgt.max() >= vt:
        die(EXIT_INPUT, "%s: ids out of range (src vocab %d, tgt vocab %d)" % (args.batch, vs, vt))

    model = Seq2Seq(cfg, vs, vt)
    try:
        model.load_state_dict(state, strict=True)  # a naming or shape mismatch fails here
    except RuntimeError as exc:
        die(EXIT_INPUT, "%s: /model does not map onto torch.nn: %s" % (args.checkpoint, exc))

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
             " bidirectional" if cfg["bidirectional"] else "", loss64, tokens, loss32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
