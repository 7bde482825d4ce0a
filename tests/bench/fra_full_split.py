#!/usr/bin/python3
"""The full-data benchmark's fixed split of fra-eng (issue 25 item 5; run by
tests/bench/fra_full.sh, or by hand).

Reads $SEQPAR_DATA/fra-eng/fra.txt (or --corpus FILE) and writes to OUT:

  train.txt  the training pairs: every line of the corpus not in the test
             set, verbatim and in the corpus's order (fra.txt's format, so
             `seqpar train --dataset OUT/train.txt` reads it; seqpar builds
             its vocabularies from this file alone, so the test set is
             excluded from them, and fra_full_torch.py builds the same ones)
  test.src   the test sources, one a line, normalised and tokenised as
             seqpar does (docs/DESIGN.md "Data": U+202F/U+00A0 → space,
             lowercase, a space before , . ! ? after a non-space; tokens
             joined by one space). `seqpar translate` normalises its input
             again, which changes nothing on normalised text.
  test.ref   the test references: the French side, normalised and joined the
             same way, never truncated (what seqpar's validation BLEU
             compares against), for `seqpar bleu --ref`
  split.json the seed, the counts and the SHA-1 of the corpus and of the
             three files

The split: the corpus's pairs (non-blank lines, as seqpar skips lines of
spaces and tabs only) are numbered 0..n-1 in file order; the permutation
`random.Random(SEED).shuffle(list(range(n)))` (Python's Mersenne Twister,
stable across Python 3 versions for an integer seed) puts its first
--test indices in the test set. Test lines keep the corpus's order.
Defaults: seed 25, 5 000 test pairs.

Bad input (no corpus, a line without a tab, invalid UTF-8, more test pairs
than the corpus holds): one line on stderr, exit status 2.
"""

import argparse
import hashlib
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "checkpoints"))
try:
    from seqpar_torch import normalize
except ImportError as exc:
    sys.exit("fra_full_split.py: error: cannot import %s (%s); run it with Debian's "
             "/usr/bin/python3 (python3-torch, python3-h5py)" % (exc.name, exc))


def die(msg):
    print("fra_full_split.py: error: " + msg, file=sys.stderr)
    sys.exit(2)


def sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tokens(text):
    """Normalised text → its tokens joined by one space (empty tokens dropped)."""
    return " ".join(w for w in normalize(text).split(" ") if w)


def main(argv):
    ap = argparse.ArgumentParser(prog="fra_full_split.py",
                                 description="Seeded train/test split of fra-eng for the "
                                             "full-data benchmark (see the module docstring).")
    ap.add_argument("--corpus", help="fra.txt (default $SEQPAR_DATA/fra-eng/fra.txt)")
    ap.add_argument("--out", required=True, help="directory to write into (created)")
    ap.add_argument("--test", type=int, default=5000, help="test pairs (default 5000)")
    ap.add_argument("--seed", type=int, default=25, help="seed of the permutation (default 25)")
    args = ap.parse_args(argv)
    corpus = args.corpus or os.path.join(os.environ.get("SEQPAR_DATA") or "/work/shared/data",
                                         "fra-eng", "fra.txt")
    if not os.path.isfile(corpus):
        die("%s: no such file (set SEQPAR_DATA to the directory holding fra-eng/fra.txt)"
            % corpus)
    if args.test < 1:
        die("--test %d: must be at least 1" % args.test)
    lines = []
    try:
        with open(corpus, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except OSError as exc:
        die("%s: %s" % (corpus, exc.strerror))
    except UnicodeDecodeError as exc:
        die("%s: invalid UTF-8 at byte %d" % (corpus, exc.start))
    if text.startswith("\ufeff"):
        text = text[1:]
    for ln, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip(" \t"):
            continue
        if "\t" not in line:
            die("%s:%d: no tab between source and target" % (corpus, ln))
        lines.append(line)
    n = len(lines)
    if args.test >= n:
        die("--test %d: leaves no training pairs (%d pairs in %s)" % (args.test, n, corpus))
    perm = list(range(n))
    random.Random(args.seed).shuffle(perm)
    in_test = bytearray(n)
    for i in perm[:args.test]:
        in_test[i] = 1
    os.makedirs(args.out, exist_ok=True)
    paths = {k: os.path.join(args.out, k) for k in ("train.txt", "test.src", "test.ref")}
    try:
        with open(paths["train.txt"], "w", encoding="utf-8", newline="\n") as tr, \
                open(paths["test.src"], "w", encoding="utf-8", newline="\n") as ts, \
                open(paths["test.ref"], "w", encoding="utf-8", newline="\n") as tf:
            for i, line in enumerate(lines):
                if not in_test[i]:
                    tr.write(line + "\n")
                    continue
                src, tgt = line.split("\t")[:2]
                ts.write(tokens(src) + "\n")
                tf.write(tokens(tgt) + "\n")
        info = dict(corpus=os.path.abspath(corpus), corpus_sha1=sha1(corpus), seed=args.seed,
                    pairs=n, test=args.test, train=n - args.test,
                    rule="random.Random(seed).shuffle(list(range(pairs))); first `test` = test",
                    sha1={k: sha1(p) for k, p in paths.items()})
        with open(os.path.join(args.out, "split.json"), "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
    except OSError as exc:
        die("%s: %s" % (args.out, exc.strerror))
    print("fra_full_split: %d pairs -> %d train, %d test (seed %d) in %s"
          % (n, n - args.test, args.test, args.seed, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
