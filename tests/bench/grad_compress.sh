#!/usr/bin/env bash
# What --grad-compress does to the loss: the book's translation model
# (perf.sh's, batch 64 per rank) at 2 ranks with float32, bfloat16 and fp16
# gradients on the wire, SEEDS seeds each, STEPS steps: the training loss of
# the last logging window and the validation loss (200 held-out pairs) at
# the end, and each 16-bit run's difference from the float32 run of the same
# seed. The differences are not timing noise: each run is deterministic.
#   usage: tests/bench/grad_compress.sh [path/to/seqpar]   (SEEDS="1 2 3", STEPS=500)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
S=${1:-$root/build/trainer/seqpar}
SEEDS=${SEEDS:-1 2 3}
STEPS=${STEPS:-500}
export SEQPAR_DATA=${SEQPAR_DATA:-$root/../shared/data}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi=(mpirun -np 2 -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(--dataset fra-eng --num-examples 800 --valid 200 --embed 32 --hidden 32 --layers 2 --batch 128
      --steps 10 --epochs 100000 --max-steps "$STEPS" --threads 1 --log-every 50 --overlap on --bucket-kb 64)

printf '%-5s %-5s %10s %10s %12s %12s\n' seed wire "train loss" "valid loss" "Δtrain" "Δvalid"
for seed in $SEEDS; do
    for gc in none bf16 fp16; do
        "${mpi[@]}" "$S" train "${args[@]}" --seed "$seed" --grad-compress $gc >"$out/$gc" 2>&1 ||
            { echo "grad_compress.sh: seed $seed $gc failed: $(tail -3 "$out/$gc")" >&2; exit 1; }
        tr_=$(sed -n 's/^done .*loss=\([0-9.]*\).*/\1/p' "$out/$gc")
        va=$(sed -n 's/^epoch [0-9]* valid loss \([0-9.]*\).*/\1/p' "$out/$gc" | tail -1)
        [ $gc = none ] && { t0=$tr_ v0=$va; }
        printf '%-5s %-5s %10s %10s %+12.4f %+12.4f\n' "$seed" $gc "$tr_" "$va" \
            "$(awk -v a="$tr_" -v b="$t0" 'BEGIN {print a - b}')" "$(awk -v a="$va" -v b="$v0" 'BEGIN {print a - b}')"
    done
done
echo "(train loss = mean cross-entropy per target token over the last 50 steps; valid loss at the last"
echo " epoch end; Δ = against float32 with the same seed)"
