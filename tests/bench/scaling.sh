#!/usr/bin/env bash
# Data-parallel scaling on this machine (issue 4): tokens/s of `seqpar train`
# at 1 rank and at 2 ranks (one OpenBLAS thread each), for the book's small
# translation model and a larger one, with the gradient allreduce after
# backward (--overlap off) and overlapped with it (--overlap on). Prints
# medians of REPS runs taken in alternation (the machine is shared and noisy:
# compare ratios from one run of this script, not absolute figures), the
# scaling efficiency tok/s(2) / (2 · tok/s(1)) and the share of training time
# the slowest rank spent in gradient communication.
#   usage: tests/bench/scaling.sh [path/to/seqpar]      (REPS=3 by default)
#   SEQPAR_DATA must point at the corpora (fra-eng/fra.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
S=${1:-$root/build/trainer/seqpar}
REPS=${REPS:-3}
export SEQPAR_DATA=${SEQPAR_DATA:-$root/../shared/data}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi=(mpirun -np 2 -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)

small=(--dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 --batch 64
       --steps 10 --dropout 0.1 --epochs 40)
large=(--dataset fra-eng --num-examples 20000 --embed 256 --hidden 512 --layers 2 --batch 64
       --steps 20 --dropout 0.1 --max-steps ${LARGE_STEPS:-30})

median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# one NAME NP ARGS…: appends tokens/s (and comm share) of one run to $out/NAME
one() {
    local name=$1 np=$2
    shift 2
    local log="$out/log"
    if [ "$np" = 1 ]; then
        "$S" train "$@" --threads 1 --log-every 100000 >"$log" 2>&1
    else
        "${mpi[@]}" "$S" train "$@" --threads 1 --log-every 100000 >"$log" 2>&1
    fi
    grep -o 'tokens_per_s=[0-9]*' "$log" | cut -d= -f2 >>"$out/$name.tps"
    grep -o '[0-9.]*% of training time' "$log" | cut -d% -f1 >>"$out/$name.comm" || true
    [ -f "$out/kernel" ] || grep -o 'kernel [A-Za-z0-9]*' "$log" | head -1 >"$out/kernel"
}

for model in small large; do
    eval "args=(\"\${$model[@]}\")"
    for _ in $(seq "$REPS"); do
        one "$model-1" 1 "${args[@]}"
        one "$model-2-off" 2 "${args[@]}" --overlap off
        one "$model-2-on" 2 "${args[@]}" --overlap on
    done
done

echo "seqpar data-parallel scaling, $(nproc) cores, OpenBLAS $(cat "$out/kernel"), medians of $REPS runs"
printf '%-7s %12s %12s %12s %9s %9s %9s %9s\n' model "1 rank" "2r overlap" "2r after" \
    "eff(on)" "eff(off)" "comm(on)" "comm(off)"
for model in small large; do
    t1=$(median <"$out/$model-1.tps")
    ton=$(median <"$out/$model-2-on.tps")
    toff=$(median <"$out/$model-2-off.tps")
    con=$(median <"$out/$model-2-on.comm")
    coff=$(median <"$out/$model-2-off.comm")
    printf '%-7s %12s %12s %12s %8.0f%% %8.0f%% %8s%% %8s%%\n' "$model" "$t1" "$ton" "$toff" \
        "$(awk "BEGIN {print 100 * $ton / (2 * $t1)}")" "$(awk "BEGIN {print 100 * $toff / (2 * $t1)}")" \
        "$con" "$coff"
done
echo "(tokens/s = target tokens per second over all ranks; eff = tok/s(2) / (2 tok/s(1));"
echo " comm = share of training time the slowest rank spent in gradient communication)"
