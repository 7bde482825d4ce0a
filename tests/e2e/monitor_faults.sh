#!/usr/bin/env bash
# End to end, the monitor under faults (no training; about 20 s): its log on
# a full disk (a write error is said once, with a count) and after a partial
# line (a restart starts a fresh line, so the next message is not lost); and
# slow HTTP clients (a request must arrive within a few seconds, and a new
# connection is served at the limit by closing the oldest idle one), while
# an event stream keeps streaming.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
PY=${SEQPAR_PYTHON:-/usr/bin/python3}

# start_monitor LOG OUT: a monitor on ports chosen by the system; sets
# mon_pid, zurl (ZeroMQ) and url (HTTP), or returns 1 when it does not
# answer within 5 s
mon_pid= zurl= url=
start_monitor() {
    : >"$2"
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http 127.0.0.1:0 --log "$1" >"$2" 2>&1 &
    mon_pid=$!
    for _ in $(seq 50); do
        if grep -q 'dashboard at' "$2"; then
            zurl=$(grep -o 'tcp://127.0.0.1:[0-9]*' "$2" | head -1)
            url=$(grep -o 'http://127.0.0.1:[0-9]*' "$2" | head -1)
            curl -sf -o /dev/null "$url/api/runs" && return 0
        fi
        sleep 0.1
    done
    return 1
}
stop_monitor() {
    [ -n "$mon_pid" ] || return 0
    kill "$mon_pid" 2>/dev/null
    wait "$mon_pid" 2>/dev/null
    mon_pid=
}
mnt=
cleanup() {
    stop_monitor
    [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# send RUN COUNT: COUNT heartbeats of run RUN (steps 1..COUNT) to the monitor
send() {
    "$PY" - "$zurl" "$1" "$2" <<'PYEOF'
import json, sys, time, zmq
s = zmq.Context().socket(zmq.PUSH)
s.connect(sys.argv[1])
for i in range(1, int(sys.argv[3]) + 1):
    s.send(json.dumps({"v": 1, "run": sys.argv[2], "kind": "heartbeat", "rank": 0, "world": 1,
                       "step": i, "epoch": 1, "time": time.time()}).encode())
s.close(linger=5000)
PYEOF
}
# accepted N: waits up to 5 s for the monitor to have accepted N messages
accepted() {
    for _ in $(seq 50); do
        curl -sf "$url/api/runs" | grep -q "\"messages\":$1," && return 0
        sleep 0.1
    done
    return 1
}

# --- a log ending in a partial line (full disk, crash): the next message
# starts a fresh line, and a restart restores it (it was appended onto the
# partial line and lost: {"v":1{"v": 1, "run": "after", ...})
log=$tmp/partial.jsonl
echo '{"v":1,"run":"before","kind":"heartbeat","rank":0,"world":1,"step":1,"epoch":1,"time":1000}' >"$log"
printf '{"v":1,"run":"cut' >>"$log"
check "a monitor starts on a log ending in a partial line" start_monitor "$log" "$tmp/p1.out"
send after 1
check "... and accepts a message (2 with the one restored)" accepted 2
stop_monitor
check "restarted, it restores the log" start_monitor "$log" "$tmp/p2.out"
check "... with the message sent after the partial line (/api/runs/after)" \
    curl -sf -o /dev/null "$url/api/runs/after"
check "... and the run before it" curl -sf -o /dev/null "$url/api/runs/before"
check "... skipping the partial line only: $(grep -m1 damaged "$tmp/p2.out")" \
    grep -q 'partial.jsonl: 1 damaged lines skipped' "$tmp/p2.out"
stop_monitor

# --- appending fails at once (/dev/full): said once, with the count
if start_monitor /dev/full "$tmp/full.out"; then
    ok "a monitor starts with --log /dev/full (nothing to restore from a device)"
    send devfull 20
    check "... accepts the messages" accepted 20
    stop_monitor
    check "... says once that it cannot write: $(grep -m1 'cannot write' "$tmp/full.out")" \
        test "$(grep -c 'cannot write' "$tmp/full.out")" = 1
    check "... and how many went unlogged: $(grep -m1 'not logged (' "$tmp/full.out")" \
        grep -q 'warning: --log /dev/full: 20 messages not logged (of 20 accepted)' "$tmp/full.out"
else
    bad "a monitor starts with --log /dev/full: $(head -c 300 "$tmp/full.out")"
    kill -9 "$mon_pid" 2>/dev/null
    wait "$mon_pid" 2>/dev/null
    mon_pid=
fi

# --- a full disk (a 64 KiB tmpfs): 3000 messages, the log fills up; the
# monitor says so once, and the count plus the lines logged make 3000
mnt=$tmp/small
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=64k tmpfs "$mnt" 2>"$tmp/mount.err"; then
    echo "skip the full-disk case: cannot mount a small tmpfs ($(head -1 "$tmp/mount.err"))"
    mnt=
else
    check "a monitor starts with its log on a 64 KiB file system" start_monitor "$mnt/mon.jsonl" "$tmp/disk.out"
    send disk 3000
    check "... accepts 3000 messages" accepted 3000
    stop_monitor
    logged=$("$PY" -c '
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace").read().split("\n")[:-1]:
    try: json.loads(line); n += 1
    except ValueError: pass
print(n)' "$mnt/mon.jsonl")
    unlogged=$(grep -o 'mon.jsonl: [0-9]* messages not logged' "$tmp/disk.out" | grep -o '[0-9]* messages' | cut -d' ' -f1)
    check "... says once that the disk is full: $(grep -m1 'cannot write' "$tmp/disk.out")" \
        test "$(grep -c 'cannot write (No space left on device)' "$tmp/disk.out")" = 1
    check "... and counts what it could not log: ${unlogged:-none said} + $logged lines logged = 3000" \
        test "$((${unlogged:-0} + logged))" = 3000 -a "${unlogged:-0}" -gt 0
    # room again: a restart appends on a fresh line after what was cut
    cut=yes
    [ "$(tail -c1 "$mnt/mon.jsonl" | od -An -tx1 | tr -d ' ')" = 0a ] && cut=no
    mount -o remount,size=1m "$mnt"
    check "restarted on the full log (it ends in a partial line: $cut)" start_monitor "$mnt/mon.jsonl" "$tmp/disk2.out"
    [ $cut = yes ] && check "... skipping that line: $(grep -m1 damaged "$tmp/disk2.out")" \
        grep -q 'mon.jsonl: 1 damaged lines skipped' "$tmp/disk2.out"
    send after 1
    stop_monitor
    check "... restarted again, it restores the message sent then" start_monitor "$mnt/mon.jsonl" "$tmp/disk3.out"
    check "... (/api/runs/after)" curl -sf -o /dev/null "$url/api/runs/after"
    check "... and the $logged lines logged: $(grep restored "$tmp/disk3.out")" \
        grep -q "restored $((logged + 1)) messages" "$tmp/disk3.out"
    stop_monitor
fi

# --- slow clients: 40 connections from 127.0.0.1 (every local user's
# address) that send a request line and then one header a second, or
# nothing. Every other client was locked out until they gave up (32 per
# address, a 30 s idle timeout). Now a request must arrive within a few
# seconds, and a new connection at the limit closes the oldest idle one:
# curl --max-time 3 is answered throughout, and an event stream opened
# before them still streams after.
check "a monitor for the slow clients" start_monitor "$tmp/slow.jsonl" "$tmp/slow.out"
rc=0
"$PY" - "$url" "$zurl" >"$tmp/slow.py.out" 2>&1 <<'PYEOF' || rc=$?
import json, select, socket, subprocess, sys, time, zmq
url, zurl = sys.argv[1], sys.argv[2]
host, port = url.split("//")[1].split(":")
port = int(port)
t0 = time.monotonic()
now = lambda: time.monotonic() - t0
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok

stream = socket.create_connection((host, port), timeout=5)
stream.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
hello, until = "", time.monotonic() + 3
while "event: hello" not in hello and time.monotonic() < until:
    hello += stream.recv(4096).decode("latin-1")

# 30 that trickle headers, 10 that send nothing; at most 10 s in all
slow = []  # [socket, opened at, closed by the server at]
for i in range(40):
    s = socket.create_connection((host, port), timeout=5)
    if i % 4 != 3:
        s.sendall(b"GET /api/runs HTTP/1.1\r\n")
    slow.append([s, now(), None, i % 4 != 3])

def poll_closed():
    for c in slow:
        if c[2] is None and select.select([c[0]], [], [], 0)[0]:
            try:
                data = c[0].recv(4096)
            except OSError:
                data = b""
            if not data or data.startswith(b"HTTP/1.1 408"):
                c[2] = now()

curls, next_curl, next_header = [], 0.5, 1.0
while now() < 9.0:
    poll_closed()
    if now() >= next_header:
        next_header += 1.0
        for c in slow:
            if c[2] is None and c[3]:
                try:
                    c[0].sendall(b"X-Slow: 1\r\n")
                except OSError:
                    c[2] = now()
    if now() >= next_curl and len(curls) < 4:
        next_curl += 2.0
        at, alive = now(), sum(c[2] is None for c in slow)
        r = subprocess.run(["curl", "-s", "--max-time", "3", "-o", "/dev/null", "-w",
                            "%{http_code}", url + "/api/runs"], capture_output=True, text=True)
        curls.append((at, alive, r.stdout, now() - at))
    time.sleep(0.05)
poll_closed()

for at, alive, code, took in curls:
    check(code == "200" and took < 3, f"curl /api/runs at {at:.1f} s with {alive} slow "
          f"connections open: {code or 'no answer'} in {took:.2f} s")
lives = [c[2] - c[1] for c in slow if c[2] is not None]
left = sum(c[2] is None for c in slow)
check(left == 0 and max(lives) < 7.5, f"every slow connection closed by the monitor "
      f"(longest {max(lives, default=0):.1f} s, {left} still open at 9 s)")
for c in slow:
    c[0].close()

# the stream lived through it: an update arrives on it
z = zmq.Context().socket(zmq.PUSH)
z.connect(zurl)
z.send(json.dumps({"v": 1, "run": "slow", "kind": "heartbeat", "rank": 0, "world": 1, "step": 1,
                   "epoch": 1, "time": time.time()}).encode())
got, until = "", time.monotonic() + 3
while "event: update" not in got and time.monotonic() < until:
    if select.select([stream], [], [], 0.2)[0]:
        d = stream.recv(4096)
        if not d:
            break
        got += d.decode("latin-1")
z.close(linger=1000)
check("event: hello" in hello and "event: update" in got,
      f"the event stream opened before them still streams (an update {'arrived' if 'event: update' in got else 'did not arrive'})")
stream.close()
print(f"took {now():.1f} s")
sys.exit(1 if fails else 0)
PYEOF
sed 's/^/     /' "$tmp/slow.py.out"
check "slow clients do not lock others out ($(grep -c '^ok' "$tmp/slow.py.out") checks)" test "$rc" = 0
check "... and the monitor still serves after them" curl -sf --max-time 3 -o /dev/null "$url/api/runs"
stop_monitor
check "... and said at exit what it closed: $(grep 'closed [0-9]* HTTP' "$tmp/slow.out")" \
    grep -q 'closed [1-9][0-9]* HTTP connections that sent no request within 5 s' "$tmp/slow.out"
finish
