#!/usr/bin/env bash
# What the metrics wire costs training (issue 7): tokens/s of
# `mpirun -np 2 seqpar train` on the default model (numbers corpus) with no
# monitor, with a live monitor, and with --monitor pointing at an endpoint
# where nothing listens: a train message per rank every LOG_EVERY steps
# (default 10, seqpar's default; LOG_EVERY=1 is the worst case, a message per
# step). Medians of REPS runs taken in alternation; ratios to "none".
#   usage: tests/bench/monitor_overhead.sh [path/to/seqpar]   (REPS=5 by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
S=${1:-$root/build/trainer/seqpar}
REPS=${REPS:-5}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi=(mpirun -np 2)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
out=$(mktemp -d)
port=$((30000 + ($$ % 20000)))
"$S" monitor --listen tcp://127.0.0.1:$port --http 127.0.0.1:$((port + 1)) >"$out/mon.log" 2>&1 &
mon=$!
trap 'kill $mon 2>/dev/null; rm -rf "$out"' EXIT
sleep 0.5
args=(train --epochs 3 --threads 1 --log-every ${LOG_EVERY:-10})
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in $(seq "$REPS"); do
    "${mpi[@]}" "$S" "${args[@]}" | grep -o 'tokens_per_s=[0-9]*' | cut -d= -f2 >>"$out/none"
    "${mpi[@]}" "$S" "${args[@]}" --monitor tcp://127.0.0.1:$port --run "bench-$i" |
        grep -o 'tokens_per_s=[0-9]*' | cut -d= -f2 >>"$out/live"
    "${mpi[@]}" "$S" "${args[@]}" --monitor tcp://127.0.0.1:$((port + 2)) 2>/dev/null |
        grep -o 'tokens_per_s=[0-9]*' | cut -d= -f2 >>"$out/dead"
done
kernel=$("$S" train --max-steps 1 --threads 1 | grep -o 'kernel [A-Za-z0-9]*')
none=$(median <"$out/none")
echo "metrics-wire overhead: mpirun -np 2, default model, --log-every ${LOG_EVERY:-10}, $kernel, medians of $REPS"
for k in none live dead; do
    m=$(median <"$out/$k")
    printf '%-5s %8s tok/s  %6.3f x none   (runs: %s)\n' "$k" "$m" \
        "$(awk "BEGIN {print $m / $none}")" "$(paste -sd' ' "$out/$k")"
done
curl -s "http://127.0.0.1:$((port + 1))/api/runs" | grep -o '"messages":[0-9]*' | sed 's/^/live monitor received: /'
