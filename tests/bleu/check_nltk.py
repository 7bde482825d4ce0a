#!/usr/bin/python3
"""seqpar bleu against NLTK's corpus_bleu on varied corpora.

Writes reference/hypothesis files (random corpora from a small vocabulary,
plus edge cases: empty hypotheses, zero matches, hypotheses longer than the
references, hypotheses shorter than 4 tokens, Unicode spaces), runs
`seqpar bleu` on each and compares its BLEU x100 with NLTK's
corpus_bleu (default weights, no smoothing) x100. Exits 1 if any differs by
more than 0.01 (seqpar prints two decimals, so up to 0.005 is rounding).
"""
import random
import re
import subprocess
import sys
import tempfile
import warnings

try:
    from nltk.translate.bleu_score import corpus_bleu
except ImportError:
    sys.exit("check_nltk.py: NLTK is missing (Debian: apt-get install python3-nltk)")

warnings.filterwarnings("ignore")  # NLTK warns on zero n-gram matches


def seqpar_bleu(seqpar, refs, hyps, tmp):
    with open(f"{tmp}/ref.txt", "w", encoding="utf-8") as f:
        f.write("".join(r + "\n" for r in refs))
    with open(f"{tmp}/hyp.txt", "w", encoding="utf-8") as f:
        f.write("".join(h + "\n" for h in hyps))
    out = subprocess.run([seqpar, "bleu", "--ref", f"{tmp}/ref.txt", "--hyp", f"{tmp}/hyp.txt"],
                         capture_output=True, text=True, check=True).stdout
    m = re.match(r"BLEU = ([0-9.]+),", out)
    if not m:
        raise RuntimeError(f"unexpected seqpar bleu output: {out!r}")
    return float(m.group(1))


def nltk_bleu(refs, hyps):
    return 100.0 * corpus_bleu([[r.split()] for r in refs], [h.split() for h in hyps])


def corpora(rng):
    words = "le la les un une de du et est il elle chat chien maison va suis".split()
    sent = lambda lo, hi: " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))
    yield "identical", ["le chat est la"] * 3, ["le chat est la"] * 3
    yield "zero matches", ["a b c d e"], ["f g h i j"]
    yield "empty hypothesis", ["a b c d e", "f g h i j"], ["a b c d e", ""]
    yield "all empty hypotheses", ["a b c", "d e"], ["", ""]
    yield "hypothesis longer", ["a b c d"], ["a b c d e f g h"]
    yield "short hypotheses", ["a b c d e f", "a b"], ["a b c", "a"]
    yield "unicode spaces", ["a\u202fb c\u00a0d e", "x y z w"], ["a b c d e", "x y z w"]
    for k in range(60):
        n = rng.randint(1, 12)
        refs = [sent(1, 12) for _ in range(n)]
        hyps = []
        for r in refs:
            toks = r.split()
            mode = rng.random()
            if mode < 0.1:
                hyps.append("")
            elif mode < 0.6:  # a noisy copy
                hyps.append(" ".join(t if rng.random() < 0.7 else rng.choice(words) for t in toks))
            else:
                hyps.append(sent(0, 15))
        yield f"random {k}", refs, hyps


def main():
    seqpar = sys.argv[1]
    rng = random.Random(20261126)
    worst, bad, n = 0.0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, refs, hyps in corpora(rng):
            a, b = seqpar_bleu(seqpar, refs, hyps, tmp), nltk_bleu(refs, hyps)
            d = abs(a - b)
            worst = max(worst, d)
            n += 1
            if d > 0.01:
                bad += 1
                print(f"FAIL {name}: seqpar {a:.2f}, NLTK {b:.4f}")
            elif not name.startswith("random"):
                print(f"ok   {name}: seqpar {a:.2f}, NLTK {b:.4f}")
    print(f"{n} corpora, largest difference {worst:.4f}")
    print(f"{n - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
