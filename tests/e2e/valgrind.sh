#!/usr/bin/env bash
# Memcheck (valgrind) on a short 2-rank training with a checkpoint and a
# resume, and on a monitor that collects it and serves its pages: no invalid
# read or write, no use of uninitialised memory, in seqpar's code or anywhere
# (tests/valgrind/seqpar.supp holds the known reports from outside seqpar,
# each explained). Leaks are not what this looks for (Open MPI keeps memory
# to the end by design). Skipped (77) without valgrind.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "skipped: valgrind is not installed (tests/deps.sh installs it)"; exit 77; }
supp=$(cd "$(dirname "$0")/../valgrind" && pwd)/seqpar.supp
vg=(valgrind --error-exitcode=99 --leak-check=no --num-callers=30 --suppressions="$supp")
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)

# errors LOG…: the "ERROR SUMMARY" of each valgrind log, all zero
clean() {
    local f n bad=0
    for f in "$@"; do
        n=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -1)
        [ "$n" = 0 ] || { bad=1; echo "     $f: ${n:-no} errors"; grep -A12 '^==[0-9]*== [A-Z]' "$f" | head -30; }
    done
    [ "$bad" = 0 ]
}

port=$((20000 + ($$ % 20000)))
"${vg[@]}" --log-file="$tmp/vg-mon.log" "$SEQPAR" monitor --listen tcp://127.0.0.1:$port \
    --http 127.0.0.1:0 --log "$tmp/mon.jsonl" >"$tmp/mon.out" 2>&1 &
mon=$!
url=$(monitor_url "$tmp/mon.out" 300)
check "the monitor starts under valgrind ($url)" test -n "$url"

args=(train --max-steps 6 --threads 1 --num-examples 300 --valid 50 --eval-every 3 --log-every 2
      --checkpoint-dir "$tmp/ck" --monitor tcp://127.0.0.1:$port --run vg)
rc=0
"${mpi[@]}" -np 2 "${vg[@]}" --log-file="$tmp/vg-train.%p.log" "$SEQPAR" "${args[@]}" \
    >"$tmp/train.out" 2>&1 || rc=$?
check "2 ranks train under valgrind (exit $rc)" grep -q '^done step=6 ' "$tmp/train.out"
rc=0
"${mpi[@]}" -np 2 "${vg[@]}" --log-file="$tmp/vg-resume.%p.log" "$SEQPAR" "${args[@]}" \
    --max-steps 8 --resume auto >"$tmp/resume.out" 2>&1 || rc=$?
check "... and resume (exit $rc)" grep -q '^done step=8 ' "$tmp/resume.out"
check "training: no memory error on any rank" clean "$tmp"/vg-train.*.log "$tmp"/vg-resume.*.log
for page in / /api/runs /api/runs/vg /metrics /nope; do
    curl -s --max-time 20 "$url$page" >/dev/null
done
kill -TERM $mon
wait $mon
check "monitor: no memory error collecting, serving and stopping" clean "$tmp/vg-mon.log"
finish
