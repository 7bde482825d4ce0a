#!/usr/bin/env bash
# Authenticated metrics (ZeroMQ CURVE): `seqpar monitor --gen-keys DIR`
# writes the two key files; a monitor with --curve-secret takes metrics only
# from trainers holding the trainers' key: one with it shows up, one without
# a key or with another pair's key is refused and counted.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
check "--gen-keys writes monitor.key and trainer.key" \
    bash -c "'$SEQPAR' monitor --gen-keys '$tmp/keys' >/dev/null && [ -s '$tmp/keys/monitor.key' ] && [ -s '$tmp/keys/trainer.key' ]"
check "... readable by their owner only" test "$(stat -c %a "$tmp/keys/trainer.key")" = 600
rc=0
"$SEQPAR" monitor --gen-keys "$tmp/keys" >/dev/null 2>"$tmp/again.err" || rc=$?
check "... and never overwritten (exit $rc)" bash -c "[ $rc != 0 ] && grep -q 'never overwritten' '$tmp/again.err'"
"$SEQPAR" monitor --gen-keys "$tmp/other" >/dev/null

port=$((20000 + ($$ % 20000)))
"$SEQPAR" monitor --listen tcp://127.0.0.1:$port --http 127.0.0.1:0 \
    --curve-secret "$tmp/keys/monitor.key" >"$tmp/mon.out" 2>&1 &
mon=$!
url=$(monitor_url "$tmp/mon.out")
check "a monitor with --curve-secret starts ($url)" test -n "$url"
train() { "$SEQPAR" train --max-steps 20 --log-every 5 --threads 1 --num-examples 300 \
    --monitor tcp://127.0.0.1:$port "$@" >/dev/null 2>&1; }
train --run with-key --monitor-key "$tmp/keys/trainer.key"
train --run no-key
train --run other-key --monitor-key "$tmp/other/trainer.key"
sleep 1
runs=$(curl -s --max-time 5 "$url/api/runs")
check "the trainer with the key is taken" bash -c "grep -q '\"id\":\"with-key\"' <<<'$runs'"
check "the one without a key is refused" bash -c "! grep -q '\"id\":\"no-key\"' <<<'$runs'"
check "the one with another pair's key is refused" bash -c "! grep -q '\"id\":\"other-key\"' <<<'$runs'"
# a keyed trainer killed (SIGKILL): lost at once over CURVE too (the socket
# monitor that counts refusals also sees connections close)
"$SEQPAR" train --epochs 100 --log-every 5 --threads 1 --num-examples 300 --run killed \
    --monitor tcp://127.0.0.1:$port --monitor-key "$tmp/keys/trainer.key" >/dev/null 2>&1 &
tpid=$!
for _ in $(seq 100); do curl -s "$url/api/runs/killed" | grep -q '"train":{"step":\[[0-9]' && break; sleep 0.1; done
kill -9 $tpid
wait $tpid 2>/dev/null
state=
for _ in $(seq 50); do
    state=$(curl -s "$url/api/runs/killed" | grep -o '"state":"[a-z]*"' | head -1)
    [ "$state" = '"state":"lost"' ] && break
    sleep 0.1
done
check "a keyed trainer killed with SIGKILL is lost within 5 s ($state)" test "$state" = '"state":"lost"'
kill -TERM $mon
wait $mon
check "the monitor counts the refused connections: $(grep refused "$tmp/mon.out")" \
    grep -Eq "seqpar monitor: [1-9][0-9]* connections? refused for want of the trainers' key" "$tmp/mon.out"
rc=0
"$SEQPAR" train --max-steps 1 --threads 1 --monitor tcp://127.0.0.1:5 --monitor-key "$tmp/keys/monitor.key/x" \
    >/dev/null 2>"$tmp/bad.err" || rc=$?
check "a trainer with an unreadable key file stops with one line (exit $rc)" \
    bash -c "[ $rc = 2 ] && grep -q 'monitor-key' '$tmp/bad.err'"
"$SEQPAR" monitor --listen tcp://0.0.0.0:$port --http 127.0.0.1:0 >"$tmp/open.out" 2>&1 &
mon=$!
sleep 0.5
kill -TERM $mon
wait $mon
check "binding beyond loopback without CURVE is warned of" grep -q 'takes metrics from anyone' "$tmp/open.out"
finish
