#!/usr/bin/env bash
# End to end, the per-rank timeline (issue 23 items 3-4): a 2-rank run whose
# rank 1 sleeps 40 ms a step (SEQPAR_TEST_SLOW_RANK, test-only) is flagged a
# straggler in /api/runs/ID (rank 0 is not; the run's last window, of one
# step, is too short to tell and leaves the flag), /metrics has every rank's
# seconds by phase as counters (rank 1 computes longer, rank 0 waits longer),
# the trainer's summary gives both ranks' split, and the dashboard in
# headless Chromium marks rank 1 (tests/e2e/browser_check.sh). About 20 s.
SEQPAR=$1
SHOT=${2:-}
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
mon_pid=
trap '[ -n "$mon_pid" ] && kill "$mon_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http 127.0.0.1:0 >"$tmp/mon.out" 2>&1 &
mon_pid=$!
url=$(monitor_url "$tmp/mon.out")
zurl=$(grep -o 'tcp://127.0.0.1:[0-9]*' "$tmp/mon.out" | head -1)
check "a monitor on ports of the system's choice: ${url:-none}" test -n "$url" -a -n "$zurl"

# 65 steps, a window every 4: 16 windows with rank 1 0.16 s slower, then
# one of a step (0.04 s slower: too short to tell)
SEQPAR_TEST_SLOW_RANK=1:40 mpirun --oversubscribe -x SEQPAR_DATA -x SEQPAR_TEST_SLOW_RANK -np 2 \
    "$SEQPAR" train --max-steps 65 --threads 1 --log-every 4 --valid 100 --eval-every 32 --run tl \
    --monitor "$zurl" >"$tmp/train.out" 2>"$tmp/train.err"
check "the run with a slow rank 1 ends normally" grep -q '^done step=65' "$tmp/train.out"
sleep 0.5
curl -sf "$url/api/runs/tl" >"$tmp/run.json"
curl -sf "$url/api/runs" >"$tmp/runs.json"
curl -sf "$url/metrics" >"$tmp/metrics.txt"
"$PY" - "$tmp" <<'PYEOF' >"$tmp/cmp.out" 2>&1
import json, re, sys
tmp = sys.argv[1]
run = json.load(open(f"{tmp}/run.json"))
runs = json.load(open(f"{tmp}/runs.json"))
metrics = open(f"{tmp}/metrics.txt").read()
out = open(f"{tmp}/train.out").read()
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
r0, r1 = run["ranks"]
check(r1["straggler"] is True and r0["straggler"] is False,
      f"/api/runs/tl: rank 1 a straggler ({r1['slow_windows']} slow windows), rank 0 not ({r0['slow_windows']})")
check(run["stragglers"] == [1] and [x["stragglers"] for x in runs["runs"] if x["id"] == "tl"] == [[1]],
      f"the run's stragglers: {run['stragglers']} (also in /api/runs)")
ph0, ph1 = r0["phase_seconds"], r1["phase_seconds"]
check(ph1["compute"] > ph0["compute"] + 2.0, f"rank 1 computed longer: {ph1['compute']:.2f} s against {ph0['compute']:.2f} s (65 x 0.04 s slower)")
check(ph0["wait"] > ph1["wait"] + 1.5, f"rank 0 waited longer in the allreduce: {ph0['wait']:.2f} s against {ph1['wait']:.2f} s")
check(ph0["eval"] > 0 and ph1["eval"] > 0, f"validation timed on both ranks: {ph0['eval']:.3f} s, {ph1['eval']:.3f} s")
tl = run["timeline"]
check(tl["phases"] == ["compute", "wait", "data", "eval", "checkpoint"] and len(tl["step"]) == 17
      and tl["step"][-1] == 65 and all(len(w) == 17 for w in tl["ranks"]), f"timeline: {len(tl['step'])} windows x {len(tl['ranks'])} ranks")
def counter(rank, phase):
    m = re.search(r'^seqpar_rank_seconds_total\{run="tl",rank="%d",phase="%s"\} (\S+)$' % (rank, phase), metrics, re.M)
    return float(m.group(1)) if m else None
got = {(k, p): counter(k, p) for k in (0, 1) for p in tl["phases"]}
check(all(v is not None for v in got.values()) and "# TYPE seqpar_rank_seconds_total counter" in metrics,
      "/metrics: seqpar_rank_seconds_total for 2 ranks x 5 phases, a counter")
check(abs(got[1, "compute"] - ph1["compute"]) < 1e-3 and got[1, "compute"] > got[0, "compute"] + 2.0,
      f"/metrics: compute seconds rank 1 {got[1, 'compute']:.2f}, rank 0 {got[0, 'compute']:.2f}")
check(re.search(r'^seqpar_rank_straggler\{run="tl",rank="1"\} 1$', metrics, re.M) is not None and
      re.search(r'^seqpar_rank_straggler\{run="tl",rank="0"\} 0$', metrics, re.M) is not None,
      "/metrics: seqpar_rank_straggler 1 for rank 1, 0 for rank 0")
# the trainer's summary: a line per rank with the five phases
lines = {int(m.group(1)): m.group(0) for m in re.finditer(r"^  rank (\d+): compute (\S+) s .*$", out, re.M)}
check(sorted(lines) == [0, 1] and all(all(f" {p} " in l for p in tl["phases"]) for l in lines.values()),
      f"the summary splits both ranks' time: {lines.get(1, 'no line for rank 1')}")
c = {k: float(re.search(r"compute (\S+) s", l).group(1)) for k, l in lines.items()}
check(c.get(1, 0) > c.get(0, 0) + 2.0, f"... rank 1 computed longer there too ({c})")
sys.exit(1 if fails else 0)
PYEOF
rc=$?
sed 's/^/     /' "$tmp/cmp.out"
check "timeline figures ($(grep -c '^ok' "$tmp/cmp.out") checks)" test "$rc" = 0

shot=${SHOT:-$tmp/timeline.png}
if BROWSER_STRAGGLER=1 BROWSER_WIDTHS="1280 1400 1920" "$here/browser_check.sh" "$url/#run=tl" "$shot" 2 \
    >"$tmp/browser.out" 2>&1; then
    ok "the dashboard in Chromium marks rank 1 a straggler, charts fill their grid at 1280, 1400, 1920 px ($(grep -c '^ok' "$tmp/browser.out") checks)"
else
    bad "the dashboard in Chromium: $(cat "$tmp/browser.out")"
fi
finish
