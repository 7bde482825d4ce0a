#!/usr/bin/python3
"""Reads back an SVG that seqpar plot wrote and compares it with what was
expected of it.

Usage:
  svg_check.py curves SVG EXPECTED.json
      EXPECTED: {"runs": [legend names in order],
                 "panels": {"train-loss": {"RUN": [[x, y], ...]}, ...}}
      The SVG must be well-formed XML; it must have exactly the panels
      named; in each, every run's polyline, turned back into values through
      the panel's own axes (the grid lines and the numbers of their tick
      labels), must equal the expected points (to the drawing's precision);
      validation panels show a marker a point; the legend names the runs.
  svg_check.py heatmap SVG EXPECTED.json
      EXPECTED: {"source": [...], "output": [...], "weights": [[...]]}
      Row and column labels read back as the tokens (escaping undone by the
      XML parser), one cell a weight with its value.
Prints what it checked; exit 0, or 1 with the first difference.
"""
import json
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def fail(msg):
    print("svg_check: " + msg)
    sys.exit(1)


def axis_map(g, kind):
    """pixel -> value for one axis of panel g, from its grid lines and labels."""
    attr = "x1" if kind == "x" else "y1"
    grid = [float(l.get(attr)) for l in g.iter(NS + "line") if l.get("class") == kind + "grid"]
    labels = [float(t.text) for t in g.iter(NS + "text") if t.get("class") == kind + "tick"]
    if len(grid) < 2 or len(grid) != len(labels):
        fail(f"{g.get('id')}: {len(grid)} {kind} grid lines, {len(labels)} labels")
    p0, p1, v0, v1 = grid[0], grid[-1], labels[0], labels[-1]
    # the labels in between must sit where the map puts them (evenly spaced axes)
    for p, v in zip(grid, labels):
        if abs(v0 + (p - p0) * (v1 - v0) / (p1 - p0) - v) > abs(v1 - v0) * 1e-3:
            fail(f"{g.get('id')}: {kind} tick {v} is not on its grid line")
    return lambda p: v0 + (p - p0) * (v1 - v0) / (p1 - p0), abs(v1 - v0)


def curves(root, exp):
    legend = [t.text for g in root.iter(NS + "g") if g.get("class") == "legend"
              for t in g.iter(NS + "text")]
    if legend != exp["runs"]:
        fail(f"legend {legend}, expected {exp['runs']}")
    panels = {g.get("id")[len("panel-"):]: g for g in root.iter(NS + "g")
              if g.get("class") == "panel"}
    if sorted(panels) != sorted(exp["panels"]):
        fail(f"panels {sorted(panels)}, expected {sorted(exp['panels'])}")
    npts = 0
    for name, want in exp["panels"].items():
        g = panels[name]
        fx, sx = axis_map(g, "x")
        fy, sy = axis_map(g, "y")
        lines = {l.get("data-run"): l for l in g.iter(NS + "polyline")}
        if sorted(lines) != sorted(want):
            fail(f"{name}: curves of {sorted(lines)}, expected {sorted(want)}")
        for run, pts in want.items():
            got = [tuple(map(float, p.split(","))) for p in lines[run].get("points").split()]
            if len(got) != len(pts):
                fail(f"{name}/{run}: {len(got)} points, expected {len(pts)}")
            for (px, py), (x, y) in zip(got, pts):
                gx, gy = fx(px), fy(py)
                if abs(gx - x) > sx * 2e-4 or abs(gy - y) > sy * 2e-4:
                    fail(f"{name}/{run}: point ({gx:.6g}, {gy:.6g}), expected ({x}, {y})")
                npts += 1
        if name in ("valid-ppl", "bleu"):
            n = len(list(g.iter(NS + "circle")))
            if n != sum(len(p) for p in want.values()):
                fail(f"{name}: {n} markers")
    print(f"svg_check: {len(panels)} panels, {len(legend)} runs, {npts} points as expected")


def heatmap(root, exp):
    rows = [t.text for t in root.iter(NS + "text") if t.get("class") == "row"]
    cols = [t.text for t in root.iter(NS + "text") if t.get("class") == "col"]
    if rows != exp["output"] or cols != exp["source"]:
        fail(f"labels rows {rows} cols {cols}")
    cells = [r for r in root.iter(NS + "rect") if r.get("class") == "cell"]
    if len(cells) != len(rows) * len(cols):
        fail(f"{len(cells)} cells for {len(rows)} x {len(cols)}")
    for c in cells:
        i, j, w = int(c.get("data-row")), int(c.get("data-col")), float(c.get("data-w"))
        if abs(w - exp["weights"][i][j]) > 1e-6:
            fail(f"cell ({i}, {j}) = {w}, expected {exp['weights'][i][j]}")
    # heavier weights are darker (the colour scale is monotone)
    def lum(c):
        h = c.get("fill").lstrip("#")
        return sum(int(h[k:k + 2], 16) for k in (0, 2, 4))
    by_w = sorted(cells, key=lambda c: float(c.get("data-w")))
    for a, b in zip(by_w, by_w[1:]):
        if float(a.get("data-w")) < float(b.get("data-w")) and lum(a) < lum(b):
            fail("a heavier weight is drawn lighter")
    print(f"svg_check: heat map {len(rows)} x {len(cols)}, every cell as expected")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("curves", "heatmap"):
        print(__doc__)
        sys.exit(2)
    try:
        root = ET.parse(sys.argv[2]).getroot()
    except ET.ParseError as e:
        fail(f"{sys.argv[2]}: not well-formed XML: {e}")
    with open(sys.argv[3]) as f:
        exp = json.load(f)
    (curves if sys.argv[1] == "curves" else heatmap)(root, exp)


if __name__ == "__main__":
    main()
