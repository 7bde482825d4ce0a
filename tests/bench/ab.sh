#!/usr/bin/env bash
# Before and after: two seqpar binaries side by side, in alternation (A B A B
# …, so that the machine's drift falls on both), at 1 rank x 1 thread on the
# book's model and the large one of perf.sh; prints each side's median
# tokens/s (as the trainer counts them), and the median and range of the
# runs' B/A ratios, pair by pair.
#   usage: tests/bench/ab.sh OLD_SEQPAR NEW_SEQPAR      (REPS=5, MODELS="book large")
#   e.g.   git worktree add ../old HEAD~3 && cmake -S ../old -B ../old/build && cmake --build ../old/build
#          tests/bench/ab.sh ../old/build/trainer/seqpar build/trainer/seqpar
set -euo pipefail
A=$1 B=$2
REPS=${REPS:-5}
MODELS=${MODELS:-book large}
root=$(cd "$(dirname "$0")/../.." && pwd)
export SEQPAR_DATA=${SEQPAR_DATA:-$root/../shared/data}
args_book=(--dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 --batch 64 --steps 10 --epochs 200)
args_large=(--dataset fra-eng --num-examples 20000 --embed 256 --hidden 512 --layers 2 --batch 64 --steps 20 --max-steps 20)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tps() { "$@" --threads 1 --log-every 100000 2>&1 | sed -n 's/^done .*tokens_per_s=\([0-9]*\).*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }
echo "A = $A"
echo "B = $B"
printf '%-6s %12s %12s %8s %18s\n' model "A tok/s" "B tok/s" "B/A" "paired B/A (range)"
for model in $MODELS; do
    eval "a=(\"\${args_$model[@]}\")"
    for _ in $(seq "$REPS"); do
        ta=$(tps "$A" train "${a[@]}") tb=$(tps "$B" train "${a[@]}")
        echo "$ta" >>"$out/a-$model"
        echo "$tb" >>"$out/b-$model"
        awk -v a="$ta" -v b="$tb" 'BEGIN {if (a > 0) print b / a}' >>"$out/r-$model"
    done
    ma=$(median <"$out/a-$model") mb=$(median <"$out/b-$model")
    pr=$(sort -g "$out/r-$model" | awk '{r[NR]=$1} END {printf "%.3f (%.3f-%.3f)", r[int((NR+1)/2)], r[1], r[NR]}')
    printf '%-6s %12s %12s %8s %18s\n' "$model" "$ma" "$mb" "$(awk "BEGIN {printf \"%.3f\", $mb / $ma}")" "$pr"
done
