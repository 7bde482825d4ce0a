#!/usr/bin/python3
"""seqpar checkpoints in PyTorch: export, loss and greedy translations.

Usage: /usr/bin/python3 tests/interop/check_torch.py [--attention] /path/to/seqpar
(with SEQPAR_DATA pointing at the corpora: fra-eng/fra.txt). --attention
trains the Bahdanau attention decoder (--attention additive) instead, and
also compares `seqpar translate --attention-weights` with the weights of
seqpar_torch.greedy (largest absolute difference <= 1e-4 on every line that
translates alike).

In a temporary directory it trains a small fra-eng model (dropout 0.1, so
the export of a checkpoint trained with dropout is covered), then checks:

* export: checkpoints/seqpar_torch.py CKPT OUT.pt succeeds, and OUT.pt loads
  into a fresh Seq2Seq with load_state_dict(strict=True), the user's path;
  weights, config and vocabularies equal what seqpar_torch.load reads;
  seqpar_torch.load refuses a copy with a bit of /train flipped (meta_sha256);
* loss: `seqpar score` on the first 100 pairs of fra.txt, and on the first
  30 pairs with at least num_steps - 1 words a side (<eos> in the last
  position, <eos> lost, truncation), against masked_loss in float64 (from
  the float32 weights): the same token count, and loss sums within a
  relative 1e-5 (seqpar computes in float32 and sums in double; it prints
  the sum with 6 decimals);
* translate: `seqpar translate` (greedy) on the 100 English sentences
  against seqpar_torch.greedy in float32: every line identical, except a
  line whose first diverging token is a near-tie in torch (top-2 logit
  margin < 1e-4), where float32 rounding may pick either.

Prints one line per check with the measured figures, then "N passed,
M failed"; exits 0 when every check passed, 1 otherwise (2: bad usage).
"""

import copy
import glob
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

EXPORT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                       os.pardir, "checkpoints", "seqpar_torch.py"))
sys.path.insert(0, os.path.dirname(EXPORT))
try:
    import h5py
    import torch
    from seqpar_torch import (BOS, CheckpointError, Seq2Seq, encode, final_h, greedy, load,
                              masked_loss, normalize, source_valid)
except ImportError as exc:
    sys.exit("check_torch.py: cannot import %s (%s): run it with Debian's /usr/bin/python3 "
             "(python3-torch, python3-h5py, python3-numpy)" % (exc.name, exc))

PAIRS = 100
LONG_PAIRS = 30
LOSS_RTOL = 1e-5
TIE_MARGIN = 1e-4
WEIGHTS_ATOL = 1e-4
TRAIN = ["train", "--dataset", "fra-eng", "--num-examples", "600", "--epochs", "40",
         "--dropout", "0.1", "--threads", "1", "--log-every", "100000"]


class Checks:
    """Counts and prints checks: "ok   name: figures" or "FAIL name: figures"."""

    def __init__(self):
        self.passed = self.failed = 0

    def report(self, ok, name, figures):
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name, figures), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def summary(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0


def run(argv, stdin=None):
    """Runs argv (one OpenBLAS thread); returns (exit status, stdout, stderr)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def read_pairs(data_dir):
    """The pairs of fra.txt in order, as (English, French)."""
    with open(os.path.join(data_dir, "fra-eng", "fra.txt"), encoding="utf-8", newline="\n") as f:
        for line in f:
            fields = line.rstrip("\r\n").split("\t")
            yield fields[0], fields[1]


def words(sentence):
    """The number of words seqpar makes of a sentence."""
    return sum(1 for w in normalize(sentence).split(" ") if w)


def train(checks, seqpar, tmp, extra):
    """Trains the model; returns the newest checkpoint, or None."""
    ckdir = os.path.join(tmp, "ckpt")
    rc, out, err = run([seqpar] + TRAIN + extra + ["--checkpoint-dir", ckdir])
    found = glob.glob(os.path.join(ckdir, "ckpt-*.h5"))
    newest = max(found, key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]),
                 default=None)
    checks.report(rc == 0 and newest is not None, "train",
                  "exit %d, %s; %s" % (rc, last_line(out if rc == 0 else err),
                                       os.path.basename(newest) if newest else "no checkpoint"))
    return newest


def check_meta(checks, ckpt, tmp):
    """seqpar_torch.load refuses a file whose training state was edited (one
    bit of /train batch_in_epoch), as seqpar does: meta_sha256."""
    bad = os.path.join(tmp, "flipped-meta.h5")
    shutil.copy(ckpt, bad)
    with h5py.File(bad, "r+") as f:
        a = f["train"].attrs
        a.modify("batch_in_epoch", a["batch_in_epoch"] ^ 4)
    try:
        load(bad)
        refused = "loaded"
    except CheckpointError as exc:
        refused = str(exc)
    checks.report("meta_sha256 does not match" in refused, "meta_sha256",
                  "a flipped /train batch_in_epoch: %s" % refused)


def export(checks, ckpt, tmp):
    """Exports with the command line and loads OUT.pt as a user would; returns
    (model, cfg, src_vocab, tgt_vocab), or None."""
    out_pt = os.path.join(tmp, "out.pt")
    rc, out, err = run([sys.executable, EXPORT, ckpt, out_pt])
    if not checks.report(rc == 0, "export", "exit %d: %s" % (rc, last_line(out if rc == 0
                                                                           else err))):
        return None
    saved = torch.load(out_pt)
    cfg, src_vocab, tgt_vocab = saved["config"], saved["src_vocab"], saved["tgt_vocab"]
    model = Seq2Seq(cfg, len(src_vocab), len(tgt_vocab))
    try:
        model.load_state_dict(saved["state_dict"], strict=True)
    except RuntimeError as exc:
        checks.report(False, "load out.pt", " ".join(str(exc).split()))
        return None
    ref, ref_cfg, ref_src, ref_tgt = load(ckpt)
    check_meta(checks, ckpt, tmp)
    ref_state = ref.state_dict()
    same = (cfg == ref_cfg and src_vocab == ref_src and tgt_vocab == ref_tgt
            and all(torch.equal(t, ref_state[k]) for k, t in model.state_dict().items()))
    checks.report(same, "load out.pt",
                  "Seq2Seq(cfg, %d, %d).load_state_dict(strict=True): %d tensors, %d parameters, "
                  "%s the checkpoint's weights, config and vocabularies"
                  % (len(src_vocab), len(tgt_vocab), len(ref_state),
                     sum(p.numel() for p in model.parameters()),
                     "equal to" if same else "DIFFERENT from"))
    return model.eval(), cfg, src_vocab, tgt_vocab


def check_loss(checks, name, seqpar, ckpt, model, cfg, src_index, tgt_index, pairs):
    """seqpar score against masked_loss in float64: equal token counts, loss
    sums within LOSS_RTOL."""
    tsv = "".join("%s\t%s\n" % p for p in pairs)
    rc, out, err = run([seqpar, "score", "--checkpoint", ckpt], stdin=tsv)
    m = re.search(r"loss_sum=(\S+) tokens=(\d+) sentences=(\d+)", out)
    if rc != 0 or not m:
        checks.report(False, name, "seqpar score exit %d: %s" % (rc, last_line(err or out)))
        return
    sp_sum, sp_tokens, sp_sentences = float(m.group(1)), int(m.group(2)), int(m.group(3))
    T = cfg["steps"]
    src = [encode(normalize(en), src_index, T)[0] for en, _ in pairs]
    tgt, valid = zip(*(encode(normalize(fr), tgt_index, T) for _, fr in pairs))
    with torch.no_grad():
        loss, tokens = masked_loss(copy.deepcopy(model).double(), torch.tensor(src),
                                   torch.tensor(tgt), torch.tensor(valid))
    th_sum = float(loss)
    rel = abs(sp_sum - th_sum) / th_sum
    checks.report(sp_tokens == tokens and sp_sentences == len(pairs) and rel <= LOSS_RTOL, name,
                  "seqpar loss_sum=%.6f tokens=%d sentences=%d; torch float64 loss_sum=%.6f "
                  "tokens=%d (mean %.6f); relative difference %.2e (bound %.0e)"
                  % (sp_sum, sp_tokens, sp_sentences, th_sum, tokens, th_sum / tokens, rel,
                     LOSS_RTOL))


def top2_margin(model, src_ids, prefix):
    """Torch's top-2 logit margin at the decoding step after <bos> + prefix
    (the step where seqpar and torch first disagree)."""
    with torch.no_grad():
        src = torch.tensor([src_ids])
        outputs, state = model.encoder(src)
        dec_in = torch.tensor([[BOS] + prefix])
        if model.attention:
            logits, _, _ = model.decoder(dec_in, state, outputs.permute(1, 0, 2),
                                         source_valid(src))
        else:
            logits, _ = model.decoder(dec_in, state, final_h(state)[-1])
    top = torch.topk(logits[-1, 0], 2).values
    return float(top[0] - top[1])


def check_weights(checks, wpath, torch_weights, same_lines):
    """seqpar translate --attention-weights against seqpar_torch.greedy's
    weights, on the lines both translate alike."""
    with open(wpath, encoding="utf-8") as f:
        ours = [json.loads(line) for line in f]
    worst, rows, bad = 0.0, 0, []
    for k in same_lines:
        o, theirs = ours[k], torch_weights[k]
        n = len(o["source"])
        if len(o["weights"]) != len(theirs) or o["index"] != k:
            bad.append("line %d: %d rows, torch %d" % (k + 1, len(o["weights"]), len(theirs)))
            continue
        for mine, ref in zip(o["weights"], theirs):
            rows += 1
            if len(mine) != n or any(x != 0.0 for x in ref[n:]):
                bad.append("line %d: %d columns, source %d" % (k + 1, len(mine), n))
                break
            worst = max(worst, max(abs(a - b) for a, b in zip(mine, ref)))
    checks.report(not bad and worst <= WEIGHTS_ATOL and rows > 0, "attention weights",
                  "%d lines, %d rows against torch float32: largest difference %.2e (bound %.0e)%s"
                  % (len(same_lines), rows, worst, WEIGHTS_ATOL,
                     "; " + "; ".join(bad[:3]) if bad else ""))


def check_translate(checks, seqpar, ckpt, model, cfg, src_index, tgt_vocab, pairs, tmp):
    """seqpar translate against seqpar_torch.greedy, line by line (and, with
    attention, the weights)."""
    english = [en for en, _ in pairs]
    wpath = os.path.join(tmp, "weights.jsonl")
    extra = ["--attention-weights", wpath] if model.attention else []
    rc, out, err = run([seqpar, "translate", "--checkpoint", ckpt] + extra,
                       stdin="".join(s + "\n" for s in english))
    lines = out.split("\n")[:-1] if out.endswith("\n") else out.split("\n")
    if rc != 0 or len(lines) != len(english):
        checks.report(False, "translate", "exit %d, %d lines for %d sentences: %s"
                      % (rc, len(lines), len(english), last_line(err)))
        return
    T = cfg["steps"]
    src = [encode(normalize(s), src_index, T)[0] for s in english]
    torch_weights = []
    hyps = greedy(model, torch.tensor(src), T, torch_weights)
    identical, ties, bad, same = 0, [], [], []
    for k, (line, hyp) in enumerate(zip(lines, hyps)):
        ours = " ".join(tgt_vocab[i] for i in hyp)
        if line == ours:
            identical += 1
            same.append(k)
            continue
        theirs = line.split(" ") if line else []
        d = next(j for j in range(len(hyp) + 1)
                 if j == len(hyp) or j == len(theirs) or tgt_vocab[hyp[j]] != theirs[j])
        margin = top2_margin(model, src[k], hyp[:d])
        where = "line %d token %d (margin %.2e): seqpar %r, torch %r" % (k + 1, d, margin, line,
                                                                        ours)
        (ties if margin < TIE_MARGIN else bad).append(where)
    for where in ties:
        print("     near-tie at " + where)
    for where in bad:
        print("     differs at " + where)
    checks.report(not bad, "translate",
                  "%d/%d identical, %d near-ties (margin < %.0e), %d other differences; "
                  "e.g. %r -> %r" % (identical, len(english), len(ties), TIE_MARGIN, len(bad),
                                     english[-1], lines[-1]))
    if model.attention:
        check_weights(checks, wpath, torch_weights, same)


def main(argv):
    attention = len(argv) == 3 and argv[1] == "--attention"
    if attention:
        argv = argv[:1] + argv[2:]
    if len(argv) != 2 or not os.access(argv[1], os.X_OK):
        print("usage: check_torch.py [--attention] /path/to/seqpar (an executable; SEQPAR_DATA "
              "set)", file=sys.stderr)
        return 2
    data_dir = os.environ.get("SEQPAR_DATA", "")
    if not os.path.isfile(os.path.join(data_dir, "fra-eng", "fra.txt")):
        print("check_torch.py: SEQPAR_DATA=%r has no fra-eng/fra.txt" % data_dir, file=sys.stderr)
        return 2
    seqpar = os.path.abspath(argv[1])
    torch.set_num_threads(1)
    checks = Checks()
    first = list(itertools.islice(read_pairs(data_dir), PAIRS))
    with tempfile.TemporaryDirectory(prefix="seqpar-torch-") as tmp:
        ckpt = train(checks, seqpar, tmp, ["--attention", "additive"] if attention else [])
        loaded = export(checks, ckpt, tmp) if ckpt else None
        if loaded:
            model, cfg, src_vocab, tgt_vocab = loaded
            T = cfg["steps"]
            # T - 1 words and more: <eos> in the last position, <eos> lost, truncation
            long = list(itertools.islice((p for p in read_pairs(data_dir)
                                          if min(words(p[0]), words(p[1])) >= T - 1), LONG_PAIRS))
            src_index = {t: i for i, t in enumerate(src_vocab)}
            tgt_index = {t: i for i, t in enumerate(tgt_vocab)}
            for name, pairs in (("loss, first %d pairs" % PAIRS, first),
                                ("loss, first %d pairs of >= %d words a side (T = %d)"
                                 % (LONG_PAIRS, T - 1, T), long)):
                check_loss(checks, name, seqpar, ckpt, model, cfg, src_index, tgt_index, pairs)
            check_translate(checks, seqpar, ckpt, model, cfg, src_index, tgt_vocab, first, tmp)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
