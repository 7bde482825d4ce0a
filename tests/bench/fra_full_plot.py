#!/usr/bin/python3
"""Draws the full-data benchmark's table (tests/bench/fra_full.sh) as an SVG:
test BLEU against training time, one panel for greedy decoding and one for
beam 4, one curve per run (column `run`), a marker at every evaluation.
(`seqpar plot` reads training logs, not this table; no matplotlib needed.)

    fra_full_plot.py TABLE.tsv OUT.svg [--title TEXT]

The table: a header line, then tab-separated rows
run time_s step epoch train_loss bleu_greedy bleu_beam4 utc.
Bad input: one line on stderr, exit 2.
"""

import argparse
import html
import math
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 460, 300, 52, 16, 30, 40


def nice_ticks(hi):
    """1-2-5 ticks from 0 to at least hi."""
    if hi <= 0:
        hi = 1.0
    raw = hi / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = int(math.ceil(hi / step - 1e-9))
    return [i * step for i in range(n + 1)]


def panel(out, x0, title, runs, col, xt, yt):
    xmax, ymax = xt[-1], yt[-1]

    def X(v):
        return x0 + PAD_L + (W - PAD_L - PAD_R) * v / xmax

    def Y(v):
        return PAD_T + (H - PAD_T - PAD_B) * (1 - v / ymax)

    out.append('<g class="panel" id="panel-%s">' % col)
    out.append('<text x="%.1f" y="18" font-size="13" text-anchor="middle">%s</text>'
               % (x0 + (PAD_L + W - PAD_R) / 2, html.escape(title)))
    for v in xt:
        out.append('<line class="xgrid" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                   % (X(v), PAD_T, X(v), H - PAD_B))
        out.append('<text class="xtick" x="%.1f" y="%d" font-size="10" text-anchor="middle">'
                   '%g</text>' % (X(v), H - PAD_B + 14, v))
    for v in yt:
        out.append('<line class="ygrid" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (x0 + PAD_L, Y(v), x0 + W - PAD_R, Y(v)))
        out.append('<text class="ytick" x="%d" y="%.1f" font-size="10" text-anchor="end">%g'
                   '</text>' % (x0 + PAD_L - 4, Y(v) + 3, v))
    out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">training time '
               '(minutes)</text>' % (x0 + (PAD_L + W - PAD_R) / 2, H - 6))
    out.append('<text x="%d" y="%d" font-size="11" transform="rotate(-90 %d %d)" '
               'text-anchor="middle">test BLEU</text>' % (x0 + 12, H // 2, x0 + 12, H // 2))
    for i, (name, rows) in enumerate(runs):
        c = COLOURS[i % len(COLOURS)]
        pts = " ".join("%.1f,%.1f" % (X(r["time_s"] / 60), Y(r[col])) for r in rows)
        out.append('<polyline class="series" data-run="%s" fill="none" stroke="%s" '
                   'stroke-width="1.5" points="%s"/>' % (html.escape(name), c, pts))
        for r in rows:
            out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %.1f min, '
                       'step %d, BLEU %.2f</title></circle>'
                       % (X(r["time_s"] / 60), Y(r[col]), c, html.escape(name),
                          r["time_s"] / 60, r["step"], r[col]))
    out.append("</g>")


def main(argv):
    ap = argparse.ArgumentParser(prog="fra_full_plot.py", description=__doc__.split("\n")[0])
    ap.add_argument("table")
    ap.add_argument("out")
    ap.add_argument("--title", default="fra-eng, full data: test BLEU against training time")
    a = ap.parse_args(argv)
    runs = {}
    try:
        with open(a.table, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        print("fra_full_plot.py: error: %s: %s" % (a.table, exc.strerror), file=sys.stderr)
        return 2
    for ln, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        try:
            row = dict(time_s=float(f[1]), step=int(f[2]), bleu_greedy=float(f[5]),
                       bleu_beam4=float(f[6]))
        except (IndexError, ValueError):
            print("fra_full_plot.py: error: %s:%d: not a row of run, time_s, step, epoch, "
                  "train_loss, bleu_greedy, bleu_beam4, utc" % (a.table, ln), file=sys.stderr)
            return 2
        runs.setdefault(f[0], []).append(row)
    if not runs:
        print("fra_full_plot.py: error: %s: no rows" % a.table, file=sys.stderr)
        return 2
    runs = [(k, sorted(v, key=lambda r: r["time_s"])) for k, v in runs.items()]
    xt = nice_ticks(max(r["time_s"] for _, v in runs for r in v) / 60)
    yt = nice_ticks(max(max(r["bleu_greedy"], r["bleu_beam4"]) for _, v in runs for r in v))
    legend_h = 18 * len(runs) + 10
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">'
           % (2 * W, H + legend_h + 20),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="%d" font-size="14" text-anchor="middle">%s</text>'
           % (W, H + legend_h + 12, html.escape(a.title))]
    panel(out, 0, "greedy", runs, "bleu_greedy", xt, yt)
    panel(out, W, "beam 4", runs, "bleu_beam4", xt, yt)
    for i, (name, _) in enumerate(runs):
        y = H + 8 + 18 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   '<text x="%d" y="%d" font-size="11">%s</text>'
                   % (PAD_L, y, PAD_L + 24, y, COLOURS[i % len(COLOURS)], PAD_L + 30, y + 4,
                      html.escape(name)))
    out.append("</svg>\n")
    try:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("\n".join(out))
    except OSError as exc:
        print("fra_full_plot.py: error: %s: %s" % (a.out, exc.strerror), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
