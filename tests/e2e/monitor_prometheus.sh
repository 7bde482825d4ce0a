#!/usr/bin/env bash
# End to end, the monitor under a real Prometheus (issue 26 item 4): the
# page /metrics passes `promtool check metrics`, and a Prometheus server
# (Debian's `prometheus`) scraping the monitor on loopback every second
# answers the README's three queries (tokens/s per run, validation BLEU,
# ranks not up) and the time shares by phase with the figures the monitor
# and the trainer gave. Skipped (exit 77) without promtool and prometheus.
# About 30 s.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in promtool prometheus; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "skip: no $tool (Debian's prometheus package; tests/deps.sh installs it)"
        exit 77
    fi
done
mon_pid= prom_pid= tpid=
cleanup() {
    [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null
    [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null
    [ -n "$mon_pid" ] && kill "$mon_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
"$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http 127.0.0.1:0 >"$tmp/mon.out" 2>&1 &
mon_pid=$!
url=$(monitor_url "$tmp/mon.out")
zurl=$(grep -o 'tcp://127.0.0.1:[0-9]*' "$tmp/mon.out" | head -1)
check "a monitor on ports of the system's choice: ${url:-none}" test -n "$url" -a -n "$zurl"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA -np 2)

# --- Prometheus on a free loopback port, scraping the monitor every second
pport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: seqpar
    scrape_interval: 1s
    static_configs: [{targets: ["${url#http://}"]}]
YML
check "promtool accepts the scrape configuration" promtool check config "$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$pport" >"$tmp/prom.log" 2>&1 &
prom_pid=$!
purl=http://127.0.0.1:$pport
for _ in $(seq 150); do curl -sf "$purl/-/ready" >/dev/null && break; sleep 0.1; done
check "a Prometheus server on $purl" curl -sf "$purl/-/ready" -o /dev/null
# its first scrape of the monitor done, so the run's whole rise is seen
for _ in $(seq 100); do
    curl -sf "$purl/api/v1/query?query=up" | grep -q '"value":\[[0-9.]*,"1"\]' && break
    sleep 0.1
done

# --- a run to scrape (validation every 20 steps: BLEU; 6 s at least: rank
# 0 sleeps 10 ms a step, test-only), and one killed
SEQPAR_TEST_SLOW_RANK=0:10 "${mpi[@]}" -x SEQPAR_TEST_SLOW_RANK "$SEQPAR" train --max-steps 600 --threads 1 --log-every 10 --valid 200 --eval-every 20 \
    --run prom --monitor "$zurl" >"$tmp/prom.out" 2>&1
check "the run ends normally" grep -q '^done step=600' "$tmp/prom.out"
"${mpi[@]}" "$SEQPAR" train --epochs 50 --threads 1 --log-every 10 --run gone --monitor "$zurl" \
    >"$tmp/gone.out" 2>&1 &
tpid=$!
for _ in $(seq 100); do curl -sf "$url/api/runs/gone" | grep -q '"train":{"step":\[[0-9]' && break; sleep 0.1; done
# shellcheck disable=SC2046
kill -9 $(pgrep -P "$tpid")
wait "$tpid" 2>/dev/null
tpid=
sleep 3 # a few scrapes of the lost ranks

curl -sf "$url/metrics" >"$tmp/metrics.txt"
check "promtool check metrics: the page is clean ($(grep -c '^# TYPE' "$tmp/metrics.txt") metrics)" \
    promtool check metrics <"$tmp/metrics.txt"
curl -sf "$url/api/runs/prom" >"$tmp/run.json"
rc=0
"$PY" - "$purl" "$tmp" "$root/README.md" >"$tmp/q.out" 2>&1 <<'PYEOF' || rc=$?
import json, re, sys, urllib.parse, urllib.request
purl, tmp, readme = sys.argv[1:4]
run = json.load(open(f"{tmp}/run.json"))
metrics = open(f"{tmp}/metrics.txt").read()
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
def query(q):
    u = purl + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    r = json.load(urllib.request.urlopen(u, timeout=10))
    assert r["status"] == "success", r
    return {json.dumps(x["metric"], sort_keys=True): float(x["value"][1]) for x in r["data"]["result"]}
def one(q, **labels):
    for k, v in query(q).items():
        if all(json.loads(k).get(a) == b for a, b in labels.items()):
            return v
    return None
# the README's three queries, as written there
text = open(readme).read()
qs = re.findall(r"^(\S.*?)\s+# (tokens/s per run|validation BLEU \(0-1\)|ranks not up)$", text, re.M)
check(len(qs) == 3, f"the README has the three queries: {[q for q, _ in qs]}")
q = dict((w, q) for q, w in qs)
up = one("up", job="seqpar")
check(up == 1, f"Prometheus scrapes the monitor: up = {up}")
# tokens/s per run: over the run's window of the last minute, near what it reported
tps = one(q.get("tokens/s per run", "x"), run="prom")
total = float(re.search(r'^seqpar_tokens_total\{run="prom"\} (\S+)$', metrics, re.M).group(1))
check(tps is not None and tps > 0, f"tokens/s per run: {tps} (the run trained {total:.0f} tokens)")
last = one('seqpar_tokens_total{run="prom"}')
check(last == total, f"seqpar_tokens_total in Prometheus {last} = the monitor's {total}")
bleu = one(q.get("validation BLEU (0-1)", "x"), run="prom")
check(bleu is not None and abs(bleu - run["bleu"] / 100) < 1e-9, f"validation BLEU: {bleu} = the monitor's {run['bleu']} / 100")
down = query(q.get("ranks not up", "x"))
got = {json.loads(k).get("run"): v for k, v in down.items()}
check(got == {"gone": 2.0}, f"ranks not up: {got} (the killed run's 2 ranks, none of the finished run's)")
# the time shares by phase: rate() of the counters over a rank's phases
shares = query('rate(seqpar_rank_seconds_total{run="prom",phase="compute"}[2m]) / ignoring(phase) '
               'sum without (phase) (rate(seqpar_rank_seconds_total{run="prom"}[2m]))')
vals = sorted(shares.values())
check(len(vals) == 2 and all(0 < v <= 1 for v in vals), f"compute's share of each rank's time, from rate(): {[round(v, 3) for v in vals]}")
# the README's shares by phase: every phase of every rank, a rank's adding up to 1
m = re.search(r"`(rate\(seqpar_rank_seconds_total\[1m\]\) / ignoring.*?)`", text, re.S)
got = query(" ".join(m.group(1).split())) if m else {}
per = {}
for k, v in got.items():
    lab = json.loads(k)
    if lab.get("run") == "prom":
        per.setdefault(lab["rank"], {})[lab["phase"]] = v
check(m is not None and sorted(per) == ["0", "1"] and all(len(p) == 5 and abs(sum(p.values()) - 1) < 1e-9 for p in per.values()),
      f"the README's shares by phase: {[(r, {k: round(v, 3) for k, v in p.items()}) for r, p in sorted(per.items())]}")
sys.exit(1 if fails else 0)
PYEOF
sed 's/^/     /' "$tmp/q.out"
check "Prometheus answers the queries ($(grep -c '^ok' "$tmp/q.out") checks)" test "$rc" = 0
finish
