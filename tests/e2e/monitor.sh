#!/usr/bin/env bash
# End to end, the monitor (issue 7): `seqpar monitor` collects a 2-rank run;
# /metrics and /api/runs show both ranks and the loss, perplexity and BLEU
# the trainer printed; the log restores the history after a restart; trainers
# started before the monitor reconnect; malformed and oversized messages are
# counted; HTTP is GET only; /events streams; the dashboard (headless
# Chromium, tests/e2e/browser_check.sh) draws the run while it trains.
SEQPAR=$1
SHOT=${2:-}
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
base=$((20000 + ($$ % 20000)))
zport=$base hport=$((base + 1))
listen=tcp://127.0.0.1:$zport
url=http://127.0.0.1:$hport
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)

mon_pid=
start_monitor() {
    "$SEQPAR" monitor --listen "$listen" --http 127.0.0.1:$hport --log "$tmp/mon.jsonl" \
        >>"$tmp/mon.out" 2>&1 &
    mon_pid=$!
    for _ in $(seq 50); do curl -sf "$url/api/runs" >/dev/null && return 0; sleep 0.1; done
    return 1
}
stop_monitor() { [ -n "$mon_pid" ] && kill "$mon_pid" 2>/dev/null && wait "$mon_pid" 2>/dev/null; mon_pid=; }
trap 'stop_monitor; rm -rf "$tmp"' EXIT

check "the monitor starts and serves" start_monitor
check "... and says where: $(head -1 "$tmp/mon.out")" grep -q "dashboard at http://127.0.0.1:$hport/" "$tmp/mon.out"

# --- a 2-rank run against it
"${mpi[@]}" -np 2 "$SEQPAR" train --epochs 2 --valid 300 --threads 1 --log-every 50 --run e2e \
    --monitor "$listen" >"$tmp/train.out" 2>"$tmp/train.err"
check "training with --monitor ends normally" grep -q '^done step=' "$tmp/train.out"
sleep 0.5
curl -sf "$url/api/runs" >"$tmp/runs.json"
curl -sf "$url/api/runs/e2e" >"$tmp/run.json"
curl -sf "$url/metrics" >"$tmp/metrics.txt"
"$PY" - "$tmp" <<'PYEOF' >"$tmp/cmp.out" 2>&1
import json, math, re, sys
tmp = sys.argv[1]
runs = json.load(open(f"{tmp}/runs.json"))
run = json.load(open(f"{tmp}/run.json"))
out = open(f"{tmp}/train.out").read()
metrics = open(f"{tmp}/metrics.txt").read()
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
r = [x for x in runs["runs"] if x["id"] == "e2e"]
check(len(r) == 1, "/api/runs lists run e2e")
r = r[0]
check(r["world"] == 2 and len(run["ranks"]) == 2, f"2 ranks ({[k['state'] for k in run['ranks']]})")
check(all(k["state"] == "done" for k in run["ranks"]) and r["state"] == "done", f"run state {r['state']}")
# the last progress line: step S/T epoch E loss L ppl P ...
last = [l for l in out.splitlines() if re.match(r"^step \d+/\d+ epoch", l)][-1].split()
step, loss, ppl = int(last[1].split("/")[0]), float(last[5]), float(last[7])
i = run["train"]["step"].index(step)
check(abs(run["train"]["loss"][i] - loss) < 6e-5, f"loss at step {step}: monitor {run['train']['loss'][i]:.6f}, trainer {loss}")
check(abs(run["train"]["ppl"][i] - ppl) / ppl < 1e-3, f"perplexity: monitor {run['train']['ppl'][i]:.4f}, trainer {ppl}")
ev = [l.split() for l in out.splitlines() if " valid loss " in l][-1]
vl, vp, bleu = float(ev[4]), float(ev[6]), float(ev[8])
check(abs(r["val_loss"] - vl) < 6e-5 and abs(r["val_ppl"] - vp) < 6e-4, f"validation: monitor {r['val_loss']:.5f}/{r['val_ppl']:.4f}, trainer {vl}/{vp}")
check(abs(r["bleu"] - bleu) < 6e-3, f"BLEU: monitor {r['bleu']:.4f}, trainer {bleu}")
check(len(run["samples"]) >= 1 and run["samples"][0]["ref"], f"sample translations: {run['samples'][0] if run['samples'] else None}")
kinds = [e["event"] for e in run["events"]]
check("start" in kinds and kinds.count("end") == 2, f"events: {sorted(set(kinds))}")
def metric(name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), metrics, re.M)
    return float(m.group(1)) if m else None
check(abs(metric("seqpar_loss", 'run="e2e"') - run["train"]["loss"][-1]) < 1e-6, "/metrics seqpar_loss = the API's")
mb = metric("seqpar_bleu_ratio", 'run="e2e"')
check(mb is not None and abs(100 * mb - bleu) < 6e-3, f"/metrics seqpar_bleu_ratio {mb} (BLEU/100)")
tt = metric("seqpar_tokens_total", 'run="e2e"')
check(tt is not None and tt > 0 and metric("seqpar_steps_total", 'run="e2e"') > 0, f"/metrics seqpar_tokens_total {tt}, seqpar_steps_total")
check(metric("seqpar_rank_state", 'run="e2e",rank="1",state="done"') == 1, "/metrics seqpar_rank_state: rank 1 done")
check(metric("seqpar_perplexity", 'run="e2e"') is not None and metric("seqpar_tokens_per_second", 'run="e2e"') > 0, "/metrics perplexity and tokens/s")
check(metric("seqpar_rank_last_seen_seconds", 'run="e2e",rank="1"') is not None, "/metrics per-rank last seen (rank 1)")
check(metric("seqpar_world_size", 'run="e2e"') == 2, "/metrics world size 2")
for line in metrics.splitlines():
    if line and not line.startswith("#") and not re.match(r'^[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? -?[0-9.e+-]+$', line):
        check(False, f"/metrics line in the text format: {line}")
sys.exit(1 if fails else 0)
PYEOF
rc=$?
sed 's/^/     /' "$tmp/cmp.out"
check "monitor figures = trainer figures ($(grep -c '^ok' "$tmp/cmp.out") checks)" test "$rc" = 0

# --- HTTP: GET only, 404, server-sent events
check "POST is refused (405)" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/api/runs")" = 405
check "an unknown path is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$url/nope")" = 404
check "an unknown run is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$url/api/runs/nope")" = 404
curl -sN --max-time 2 "$url/events" >"$tmp/sse.txt" 2>/dev/null
check "/events streams server-sent events: $(head -2 "$tmp/sse.txt" | tail -1)" grep -q '^event: hello' "$tmp/sse.txt"
check "the dashboard page is served" bash -c "curl -sf '$url/' | grep -qi '<html'"
# every event stream open from one address (as many browser tabs on this
# machine): one more is refused, and pages and figures still answer (48
# streams against 32 connections per address once locked the address out)
rc=0
"$PY" - "$url" >"$tmp/streams.out" 2>&1 <<'PYEOF' || rc=$?
import socket, sys, urllib.request
url = sys.argv[1].rstrip("/") + "/"
host, port = url.split("//")[1].rstrip("/").split(":")
def stream():
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    head = s.recv(4096).decode("latin-1")
    return s, head.split("\r\n")[0]
held, refused = [], None
for i in range(64):
    s, status = stream()
    if " 200 " in status:
        held.append(s)
    else:
        refused = status
        s.close()
        break
code = urllib.request.urlopen(url + "api/runs", timeout=10).status
page = urllib.request.urlopen(url, timeout=10).status
print(f"{len(held)} streams held, the next: {refused}; /api/runs {code}, / {page}")
ok = 0 < len(held) < 32 and refused is not None and " 503 " in refused and code == 200 and page == 200
for s in held:
    s.close()
sys.exit(0 if ok else 1)
PYEOF
check "all event streams open from one address: $(tail -1 "$tmp/streams.out")" test "$rc" = 0

# --- malformed and oversized messages: counted, ignored
"$PY" - "$listen" <<'PYEOF'
import sys, time, zmq
s = zmq.Context().socket(zmq.PUSH)
s.connect(sys.argv[1])
for m in [b"not json", b"{}", b'{"v":1}', b"x" * 70000, b'{"v":1,"run":"bad run","kind":"train"}']:
    s.send(m)
time.sleep(0.5)
PYEOF
sleep 0.3
curl -sf "$url/api/runs" >"$tmp/runs2.json"
check "4 malformed and 1 oversized messages counted: $(grep -o '"malformed":[0-9]*,"oversized":[0-9]*' "$tmp/runs2.json")" \
    grep -q '"malformed":4,"oversized":1' "$tmp/runs2.json"
# ... and said on stderr, once for the burst (they were silent before)
check "the monitor says it ignored them: $(grep -m1 'ignored a message' "$tmp/mon.out")" \
    test "$(grep -c 'seqpar monitor: ignored a message: ' "$tmp/mon.out")" = 1

# --- restart with the same log: the history is back
before=$("$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(len(r['train']['step']), r['train']['loss'][-1])" "$tmp/run.json")
curl -sN "$url/events" >/dev/null 2>&1 &
sse=$!
sleep 0.3
t0=$(date +%s%N)
stop_monitor
took=$((($(date +%s%N) - t0) / 1000000))
kill $sse 2>/dev/null
check "the monitor stops promptly with an event stream open (${took} ms)" test "$took" -lt 3000
echo '{"v":1,"run":"cut off' >>"$tmp/mon.jsonl" # a line damaged as by a crash mid-write
check "the monitor restarts" start_monitor
curl -sf "$url/api/runs/e2e" >"$tmp/run2.json"
after=$("$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(len(r['train']['step']), r['train']['loss'][-1])" "$tmp/run2.json")
check "restarted with --log, it restores the run (points, last loss: $after)" test "$before" = "$after"
check "... and says so: $(grep restored "$tmp/mon.out")" grep -q 'restored [0-9]* messages' "$tmp/mon.out"
check "... and that it skipped the damaged line: $(grep -m1 damaged "$tmp/mon.out")" \
    grep -q 'warning: --log .*mon.jsonl: 1 damaged lines skipped' "$tmp/mon.out"

# --- trainers started while the monitor is down reconnect when it comes up
stop_monitor
# long enough to be still training when the monitor is up; the monitor starts
# once the trainer has logged steps (it has been sending into the void)
"${mpi[@]}" -np 2 "$SEQPAR" train --epochs 20 --threads 1 --log-every 20 --run late \
    --monitor "$listen" >"$tmp/late.out" 2>&1 &
tpid=$!
for _ in $(seq 300); do grep -q '^step 100/' "$tmp/late.out" 2>/dev/null && break; sleep 0.1; done
start_monitor
wait $tpid
sleep 0.5
check "a run started before the monitor shows up in it" bash -c "curl -sf '$url/api/runs/late' | grep -q '\"state\":\"done\"'"

# --- the dashboard in headless Chromium, during a run
"${mpi[@]}" -np 2 "$SEQPAR" train --epochs 40 --valid 300 --eval-every 100 --threads 1 --log-every 20 \
    --run live --monitor "$listen" >"$tmp/live.out" 2>&1 &
tpid=$!
for _ in $(seq 300); do curl -sf "$url/api/runs/live" | grep -q '"bleu":\[[0-9]' && break; sleep 0.2; done
shot=${SHOT:-$tmp/dashboard.png}
if "$here/browser_check.sh" "$url/" "$shot" 2 >"$tmp/browser.out" 2>&1; then
    ok "dashboard in Chromium during the run: $(grep -c '^ok' "$tmp/browser.out") checks ($(grep -o 'chart-loss[^;]*' "$tmp/browser.out" | head -1))"
else
    bad "dashboard in Chromium: $(cat "$tmp/browser.out")"
fi
check "... the run was still training" kill -0 $tpid
kill $tpid 2>/dev/null
wait $tpid 2>/dev/null

# --- ports left to the system (HTTP 0, ZeroMQ *): the monitor prints the
# ones it got (it printed :0), and the page answers there
"$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http 127.0.0.1:0 >"$tmp/any.out" 2>&1 &
apid=$!
for _ in $(seq 50); do grep -q 'dashboard at' "$tmp/any.out" && break; sleep 0.1; done
aurl=$(grep -o 'http://127.0.0.1:[0-9]*/' "$tmp/any.out")
check "ports chosen by the system are printed: $(head -1 "$tmp/any.out")" \
    grep -Eq 'metrics on tcp://127.0.0.1:[1-9][0-9]*; dashboard at http://127.0.0.1:[1-9][0-9]*/$' "$tmp/any.out"
check "... and the dashboard answers there" curl -sf -o /dev/null "${aurl:-http://127.0.0.1:1/}api/runs"
kill $apid 2>/dev/null
wait $apid 2>/dev/null

# --- TCP ports past 65535: ZeroMQ took 99999 and listened on 99999 mod 65536
expect_error "monitor --listen on port 99999" '--listen tcp://127.0.0.1:99999: the port must be 1..65535' \
    "$SEQPAR" monitor --listen tcp://127.0.0.1:99999 --http 127.0.0.1:0
expect_error "train --monitor on port 99999" '--monitor tcp://127.0.0.1:99999: the port must be 1..65535' \
    "$SEQPAR" train --max-steps 1 --threads 1 --monitor tcp://127.0.0.1:99999
finish
