#!/usr/bin/python3
"""One SHA-256 over what a seqpar checkpoint holds of a training run.

Usage: /usr/bin/python3 tests/e2e/ckpt_digest.py [--verbose] CKPT.h5

Prints the digest of CKPT.h5 (tests/e2e/bitwise.sh compares it with
tests/e2e/bitwise.ref). With --verbose it prints "total SHA256" and then one
line per part, "PART SHA256 SUMMARY", so that a mismatch says which part
differs (SUMMARY gives the counters' and figures' values, exactly: floats
in repr, which round-trips).

What is hashed, in this order, each part fed both to its own digest and to
the total one (the total is one stream, not a hash of the parts' hashes):

  model            every dataset under /model, sorted by path
  optimizer.m      every dataset under /optimizer/m (Adam; "absent" for SGD)
  optimizer.v      every dataset under /optimizer/v
  optimizer.attrs  /optimizer attributes t, name, lr, betas, eps
  train.counters   /train attributes step, epoch, batch_in_epoch, seed,
                   global_batch, world_size
  train.figures    /train attributes train_loss, valid_loss, valid_bleu,
                   best (float64; seqpar writes only the finite ones, the
                   others are hashed as "absent") and since_best (int64,
                   written when best is)
  train.state      /train/state_h and /train/state_c (the LM's carried
                   states; "absent" when not written)
  vocab            /vocab/src and /vocab/tgt, or /vocab/tokens: the tokens
                   as UTF-8, each ended by a NUL (the strings, not the
                   fixed-size storage, so a change of string type is not
                   counted)

A dataset is hashed as "path|dtype|shape|nbytes\\n" followed by its values
as little-endian bytes of its stored type (float32 for every tensor seqpar
writes; another type hashes differently, on purpose). An attribute is hashed
as "name|dtype|shape\\n" and its little-endian bytes.

Left out on purpose: /config (the JSON may gain keys without any change to
the run) and the root attributes (created time, format and seqpar versions).

Exit status: 0, or 1 when the file cannot be read as a seqpar checkpoint
(with one line on stderr), 2 on bad usage.
"""

import hashlib
import math
import sys

import h5py
import numpy as np

PARTS = ["model", "optimizer.m", "optimizer.v", "optimizer.attrs", "train.counters",
         "train.figures", "train.state", "vocab"]


class Digest:
    def __init__(self):
        self.total = hashlib.sha256()
        self.parts = {p: hashlib.sha256() for p in PARTS}
        self.notes = {p: [] for p in PARTS}

    def feed(self, part, data):
        self.total.update(data)
        self.parts[part].update(data)


def le(a):
    """a's values as little-endian bytes of its own type."""
    a = np.asarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a).tobytes()


def datasets(group):
    """Sorted (path, dataset) of every dataset under group."""
    out = []
    group.visititems(lambda name, obj: out.append((obj.name, obj))
                     if isinstance(obj, h5py.Dataset) else None)
    return sorted(out, key=lambda x: x[0])


def tensors(d, part, f, path):
    if path not in f:
        d.feed(part, b"absent %s\n" % path.encode())
        d.notes[part].append("absent")
        return
    n = 0
    floats = 0
    for name, ds in datasets(f[path]):
        a = ds[()]
        d.feed(part, ("%s|%s|%s|%d\n" % (name, a.dtype.str.lstrip("<>|="), a.shape,
                                         a.nbytes)).encode())
        d.feed(part, le(a))
        n += 1
        floats += a.size
    d.notes[part].append("%d tensors, %d values" % (n, floats))


def value_text(v):
    a = np.asarray(v)
    if a.ndim == 0:
        x = a.item()
        if isinstance(x, bytes):
            return x.decode("utf-8", "replace")
        return repr(x)
    return "[" + ",".join(repr(x) for x in a.tolist()) + "]"


def attrs(d, part, obj, names, finite_only=False):
    for name in names:
        if obj is None or name not in obj.attrs:
            d.feed(part, b"absent %s\n" % name.encode())
            d.notes[part].append("%s=absent" % name)
            continue
        v = obj.attrs[name]
        if isinstance(v, str):
            v = np.bytes_(v.encode("utf-8"))
        a = np.asarray(v)
        if finite_only and a.dtype.kind == "f" and not all(math.isfinite(x) for x in a.ravel()):
            # seqpar never writes one; hashed by its class, not its NaN bits
            d.feed(part, b"nonfinite %s\n" % name.encode())
            d.notes[part].append("%s=nonfinite" % name)
            continue
        d.feed(part, ("%s|%s|%s\n" % (name, a.dtype.str.lstrip("<>|="), a.shape)).encode())
        d.feed(part, le(a))
        d.notes[part].append("%s=%s" % (name, value_text(v)))


def strings(d, f):
    names = ["/vocab/src", "/vocab/tgt", "/vocab/tokens"]
    for path in names:
        if path not in f:
            d.feed("vocab", b"absent %s\n" % path.encode())
            continue
        toks = [t if isinstance(t, bytes) else str(t).encode("utf-8") for t in f[path][()]]
        d.feed("vocab", ("%s|%d\n" % (path, len(toks))).encode())
        d.feed("vocab", b"".join(t + b"\0" for t in toks))
        d.notes["vocab"].append("%s %d" % (path.rsplit("/", 1)[1], len(toks)))


def digest(path):
    d = Digest()
    with h5py.File(path, "r") as f:
        if "model" not in f or "train" not in f:
            raise ValueError("no /model or /train group")
        tensors(d, "model", f, "/model")
        tensors(d, "optimizer.m", f, "/optimizer/m")
        tensors(d, "optimizer.v", f, "/optimizer/v")
        attrs(d, "optimizer.attrs", f.get("optimizer"), ["t", "name", "lr", "betas", "eps"])
        tr = f["train"]
        attrs(d, "train.counters", tr,
              ["step", "epoch", "batch_in_epoch", "seed", "global_batch", "world_size"])
        attrs(d, "train.figures", tr, ["train_loss", "valid_loss", "valid_bleu", "best", "since_best"],
              finite_only=True)
        for name in ["state_h", "state_c"]:
            p = "/train/" + name
            if p in f:
                a = f[p][()]
                d.feed("train.state", ("%s|%s|%s|%d\n" % (p, a.dtype.str.lstrip("<>|="), a.shape,
                                                          a.nbytes)).encode())
                d.feed("train.state", le(a))
                d.notes["train.state"].append("%s %s" % (name, "x".join(map(str, a.shape))))
            else:
                d.feed("train.state", b"absent %s\n" % p.encode())
                d.notes["train.state"].append("%s absent" % name)
        strings(d, f)
    return d


def main(argv):
    verbose = False
    args = argv[1:]
    if args and args[0] == "--verbose":
        verbose = True
        args = args[1:]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: ckpt_digest.py [--verbose] CKPT.h5", file=sys.stderr)
        return 2
    try:
        d = digest(args[0])
    except (OSError, ValueError, KeyError) as e:
        print("ckpt_digest.py: %s: %s" % (args[0], e), file=sys.stderr)
        return 1
    if not verbose:
        print(d.total.hexdigest())
        return 0
    print("total", d.total.hexdigest())
    for p in PARTS:
        print(p, d.parts[p].hexdigest(), " ".join(d.notes[p]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
