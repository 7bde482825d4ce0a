#!/usr/bin/env bash
# End to end, a dashboard that tells the truth at once (issue 26 item 5):
#   - ranks killed with SIGKILL (nothing can be sent) show "lost" within 5 s,
#     not "running" for the 60 s of silence it took: the monitor notices
#     their connections close; one rank killed, mpirun ends the other, and
#     the run is lost within 5 s of mpirun's exit;
#   - server-sent events carry "id:", and a browser reconnecting with
#     Last-Event-ID resumes: hello says so and the missed changes follow;
#   - an unknown run (and any unknown /api/ path) is a JSON 404;
#   - the end event says which loss the summary's is (last epoch or window);
#   - --http takes host names (getaddrinfo) and [IPv6] addresses.
# About 20 s.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
mon_pid= tpid=
cleanup() {
    [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null
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

# state RUN: the run's state and its ranks' ("lost lost,lost")
state() {
    curl -sf "$url/api/runs/$1" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
print(r["state"], ",".join(k["state"] for k in r["ranks"]))' 2>/dev/null
}
# start RUN: a long 2-rank run, training (the monitor has its steps); sets tpid
start() {
    "${mpi[@]}" "$SEQPAR" train --epochs 50 --threads 1 --log-every 10 --run "$1" --monitor "$zurl" \
        >"$tmp/$1.out" 2>&1 &
    tpid=$!
    for _ in $(seq 150); do
        curl -sf "$url/api/runs/$1" | grep -q '"train":{"step":\[[0-9]' && return 0
        sleep 0.1
    done
    return 1
}
# lost_within RUN SECONDS: polls until the run is lost; prints the delay
lost_within() {
    local t0 s
    t0=$(date +%s%N)
    while [ $(($(date +%s%N) - t0)) -lt $(($2 * 1000000000)) ]; do
        s=$(state "$1")
        case $s in lost*) echo "$s after $((($(date +%s%N) - t0) / 1000000)) ms"; return 0 ;; esac
        sleep 0.05
    done
    echo "still '$s' after $2 s"
    return 1
}

# --- every rank killed (SIGKILL: no last word)
check "a 2-rank run trains" start killed
ranks=$(pgrep -P "$tpid" | tr '\n' ' ')
check "... its ranks are mpirun's children: $ranks" test "$(echo $ranks | wc -w)" = 2
check "... running before: $(state killed)" bash -c "[[ '$(state killed)' == running* ]]"
# shellcheck disable=SC2086
kill -9 $ranks
out=$(lost_within killed 5)
check "ranks killed with SIGKILL: the run is lost at once ($out)" test $? = 0 -a -n "$out"
wait "$tpid" 2>/dev/null
tpid=

# --- one rank killed: mpirun ends the other and exits; lost within 5 s of that
check "another 2-rank run trains" start one
kill -9 "$(pgrep -P "$tpid" | tail -1)"
wait "$tpid" 2>/dev/null
tpid=
out=$(lost_within one 5)
check "one rank killed, mpirun exits: the run is lost within 5 s of mpirun's exit ($out)" test $? = 0 -a -n "$out"

# --- a run that ends is done, not lost (its connections close after its end)
"${mpi[@]}" "$SEQPAR" train --max-steps 6 --threads 1 --log-every 2 --run ends --monitor "$zurl" \
    >"$tmp/ends.out" 2>&1
sleep 1
check "a run that ended normally stays done after its ranks exit: $(state ends)" \
    test "$(state ends)" = "done done,done"
check "... its end event says which loss the summary's is: $(curl -sf "$url/api/runs/ends" | grep -o 'loss of the last [a-z ]*' | head -1)" \
    bash -c "curl -sf '$url/api/runs/ends' | grep -q 'loss of the last logging window'"

# --- the API's 404s are JSON
code=$(curl -s -o "$tmp/404.json" -w '%{http_code} %{content_type}' "$url/api/runs/nope")
check "an unknown run is a JSON 404: $code $(cat "$tmp/404.json")" \
    "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(sys.argv[2] != "404" or sys.argv[3] != "application/json" or d["error"] != "no such run")' \
    "$tmp/404.json" $code
code=$(curl -s -o "$tmp/404b.json" -w '%{http_code} %{content_type}' "$url/api/nothing")
check "... and so is an unknown /api/ path: $code $(cat "$tmp/404b.json")" \
    "$PY" -c 'import json, sys; json.load(open(sys.argv[1])); sys.exit(sys.argv[2] != "404" or sys.argv[3] != "application/json")' \
    "$tmp/404b.json" $code

# --- server-sent events: ids, and a reconnect that resumes
rc=0
"$PY" - "$url" "$zurl" >"$tmp/sse.out" 2>&1 <<'PYEOF' || rc=$?
import json, re, socket, sys, time, zmq
url, zurl = sys.argv[1], sys.argv[2]
host, port = url.split("//")[1].split(":")
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
def events(last_id, want, send=0):
    """Opens /events (with Last-Event-ID), optionally sends heartbeats, reads `want` events."""
    s = socket.create_connection((host, int(port)), timeout=5)
    head = "GET /events HTTP/1.1\r\nHost: x\r\n" + (f"Last-Event-ID: {last_id}\r\n" if last_id is not None else "") + "\r\n"
    s.sendall(head.encode())
    z = zmq.Context.instance().socket(zmq.PUSH)
    z.connect(zurl)
    for i in range(send):
        time.sleep(0.1)
        z.send(json.dumps({"v": 1, "run": "sse", "kind": "heartbeat", "rank": 0, "world": 1,
                           "step": i + 1, "epoch": 1, "time": time.time()}).encode())
    got, until = "", time.time() + 5
    while len(re.findall(r"\n\n", got.split("\r\n\r\n", 1)[-1])) < want and time.time() < until:
        s.settimeout(max(0.1, until - time.time()))
        try:
            d = s.recv(4096)
        except socket.timeout:
            break
        if not d:
            break
        got += d.decode("latin-1")
    s.close()
    z.close(linger=1000)
    body = got.split("\r\n\r\n", 1)[-1]
    evs = []
    for block in body.split("\n\n"):
        f = dict(l.split(": ", 1) for l in block.splitlines() if ": " in l and not l.startswith(":"))
        if "event" in f:
            evs.append(f)
    return evs
first = events(None, 3, send=2)
check(len(first) >= 2 and all("id" in e for e in first), f"every event has an id: {[(e.get('event'), e.get('id')) for e in first]}")
last = int(first[-1]["id"])
hello = json.loads(first[0]["data"])
check(first[0]["event"] == "hello" and hello["resumed"] is False, f"a fresh stream's hello: {first[0]['data']}")
# while away: two more changes; reconnecting with the last id resumes
z = zmq.Context.instance().socket(zmq.PUSH)
z.connect(zurl)
for i in range(2):
    z.send(json.dumps({"v": 1, "run": "sse", "kind": "heartbeat", "rank": 0, "world": 1,
                       "step": 10 + i, "epoch": 1, "time": time.time()}).encode())
z.close(linger=1000)
time.sleep(0.5)
again = events(last, 2)
h = json.loads(again[0]["data"]) if again else {}
check(again and again[0]["event"] == "hello" and h.get("resumed") is True and int(again[0]["id"]) == last,
      f"reconnected with Last-Event-ID {last}: {again[0] if again else 'nothing'}")
check(len(again) >= 2 and again[1]["event"] == "update" and int(again[1]["id"]) >= last + 2,
      f"... the changes missed follow at once: {again[1] if len(again) > 1 else 'nothing'}")
# an id from before a monitor's restart (ahead of its version): a fresh start
ahead = events(10**9, 1)
check(ahead and json.loads(ahead[0]["data"])["resumed"] is False, f"an id ahead of the monitor's: {ahead[0]['data'] if ahead else 'nothing'}")
sys.exit(1 if fails else 0)
PYEOF
sed 's/^/     /' "$tmp/sse.out"
check "server-sent events carry ids and resume ($(grep -c '^ok' "$tmp/sse.out") checks)" test "$rc" = 0
# --- --http by host name and IPv6 (getaddrinfo): each serves the page
for spec in localhost:0 '[::1]:0' '[::]:0'; do
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http "$spec" >"$tmp/h.out" 2>&1 &
    hpid=$!
    u=$(monitor_url "$tmp/h.out")
    code=$(curl -sg -o /dev/null -w '%{http_code}' "${u:-http://127.0.0.1:1}/api/runs")
    check "monitor --http $spec serves: $(head -1 "$tmp/h.out") (HTTP $code)" test "$code" = 200
    if [ "$spec" = '[::]:0' ]; then # every interface, IPv4 too
        p=${u##*:}
        check "... and IPv4 on it (http://127.0.0.1:$p)" curl -sf -o /dev/null "http://127.0.0.1:$p/api/runs"
    fi
    kill $hpid 2>/dev/null
    wait $hpid 2>/dev/null
done
finish
