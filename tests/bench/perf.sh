#!/usr/bin/env bash
# seqpar vs PyTorch on this machine (issue 8), in one run: tokens/s (target
# tokens, padding excluded) of the book's translation model, a large one and
# the book's character LM, at 1 rank x 1 thread, 1 rank x 2 threads (as 2
# OpenBLAS threads, and as 2 in-process workers) and 2 ranks x 1 thread,
# seqpar ÷ PyTorch measured side by side (medians of REPS
# runs taken in alternation), the matmul work per token (padded and as
# executed), the GFLOP/s reached and its fraction of the best GEMM rate
# measured here at the model's dominant shapes (OpenBLAS, and seqpar's rgemm
# for a step's recurrent product), the 2-rank scaling efficiency next to the
# machine's own ceiling (two independent 1 x 1 runs at the same time), and
# the peak memory per rank.
#   usage: tests/bench/perf.sh [path/to/build]     (REPS=3, MODELS="book large lm")
#   The last table: --deterministic against the default path (DET=0 skips it,
#   DET_ONLY=1 prints only it; DET_REPS pairs, default REPS).
#   Both sides use the same OpenBLAS kernel: set OPENBLAS_CORETYPE (e.g.
#   SkylakeX) before running; PyTorch runs with OMP_WAIT_POLICY=PASSIVE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
S=$build/trainer/seqpar
G=$build/tests/sgemm_rate
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
REPS=${REPS:-3}
MODELS=${MODELS:-book large lm}
export SEQPAR_DATA=${SEQPAR_DATA:-$root/../shared/data}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi=(mpirun -np 2 -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

args_book=(--dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 --batch 64 --steps 10 --epochs 200)
args_large=(--dataset fra-eng --num-examples 20000 --embed 256 --hidden 512 --layers 2 --batch 64 --steps 20 --max-steps ${LARGE_STEPS:-20})
args_lm=(--task lm --dataset timemachine --embed 0 --hidden 256 --layers 1 --batch 32 --steps 35
         --sampler sequential --optimizer sgd --lr 1 --dropout 0 --max-steps 200)
# dominant GEMM shapes (M N K [layout]): the output layer, the input
# projections, and a time step's recurrent product on seqpar's rgemm (rg)
shapes_book="640 201 32;640 96 64;64 96 32 rg"
shapes_large="360 8000 512;1280 1536 512;64 1536 512 rg"
shapes_lm="1120 28 256;32 768 256;32 768 256 rg"

batch_of() { eval "local a=(\"\${args_$1[@]}\")"; local i; for ((i = 0; i < ${#a[@]}; i++)); do
    [ "${a[i]}" = --batch ] && echo "${a[i + 1]}"; done; }
# the median of a file's numbers, failed runs ("nan") left out
median() { { grep -v nan || true; } | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }
pct() { awk "BEGIN {printf \"%.0f\", 100 * ($1) / ($2)}"; }

seqpar_run() { # model config -> appends tok/s, GFLOP/s, MFLOP/token padded/executed, MB
    local model=$1 cfg=$2 log=$out/log
    eval "local a=(\"\${args_$model[@]}\")"
    case $cfg in
    1x1) "$S" train "${a[@]}" --threads 1 --log-every 100000 >"$log" 2>&1 ;;
    1x2) "$S" train "${a[@]}" --threads 2 --log-every 100000 >"$log" 2>&1 ;;
    1x2w) # the same two threads as two in-process workers (--workers 2)
        "$S" train "${a[@]}" --workers 2 --log-every 100000 >"$log" 2>&1 ;;
    2x1) "${mpi[@]}" "$S" train "${a[@]}" --threads 1 --log-every 100000 >"$log" 2>&1 ;;
    2x1w) # weak scaling: the same batch per rank (twice the global batch)
        "${mpi[@]}" "$S" train "${a[@]}" --batch $((2 * $(batch_of "$model"))) --threads 1 \
            --log-every 100000 >"$log" 2>&1 ;;
    2x1i) # the machine's own ceiling: two independent 1 x 1 runs at the same time, no
        # communication at all (the same work and start-up: they start training together).
        # Each run's tokens/s covers its own training time, and the one that ends later
        # trained its tail alone, so the pair's rate while both ran is 2 rA - s1 (rA/rB - 1)
        # (rA >= rB the two runs' rates, s1 this repetition's 1 x 1 rate for that tail)
        local pid rc=0 r s1
        "$S" train "${a[@]}" --threads 1 --log-every 100000 >"$log" 2>&1 &
        pid=$!
        "$S" train "${a[@]}" --threads 1 --log-every 100000 >"$log.2" 2>&1 || rc=$?
        wait "$pid" || rc=$?
        s1=$(tail -n 1 "$out/s-$model-1x1")
        r=$({ cat "$log" "$log.2" | grep -o 'tokens_per_s=[0-9]*' || true; } | cut -d= -f2 | sort -gr |
            paste -sd' ')
        [ "$rc" = 0 ] || echo "perf.sh: $model 2x1i: a run failed (status $rc)" >&2
        awk -v rc="$rc" -v s1="$s1" -v r="$r" 'BEGIN {
            n = split(r, x, " ")
            if (rc != 0 || n != 2 || x[2] <= 0) print "nan"
            else print 2 * x[1] - s1 * (x[1] / x[2] - 1) }' >>"$out/s-$model-$cfg"
        return ;;
    esac
    grep -o 'tokens_per_s=[0-9]*' "$log" | cut -d= -f2 >>"$out/s-$model-$cfg"
    sed -n 's/^matmul work: \([0-9.e+]*\) GFLOP per step as the padded model defines it, \([0-9.e+]*\) executed ([0-9]*%); \([0-9.]*\) GFLOP\/s executed over all ranks, \([0-9.e+]*\) MFLOP per target token; peak memory \([0-9]*\) MB.*/\3 \4 \1 \2 \5/p' \
        "$log" >>"$out/w-$model-$cfg"
    [ -f "$out/kernel" ] || grep -o 'kernel [A-Za-z0-9]*' "$log" | head -1 >"$out/kernel"
}

torch_run() {
    local model=$1 cfg=$2 r=1 t=1
    case $cfg in 1x2) t=2 ;; 2x1) r=2 ;; esac
    OMP_WAIT_POLICY=PASSIVE "$PY" "$root/tests/bench/torch_bench.py" --model "$model" \
        --threads $t --ranks $r 2>"$out/torch.err" | grep -o 'tokens_per_s=[0-9.]*' | cut -d= -f2 \
        >>"$out/t-$model-$cfg" || { echo "torch_bench failed: $(tail -3 "$out/torch.err")" >&2; echo nan >>"$out/t-$model-$cfg"; }
}

# the best GEMM rate at a model's dominant shapes for one config, appended to
# $out/g-model-cfg (measured in every repetition, beside the runs it is
# compared with, so that the fraction does not hang on one short timing)
gemm_best() {
    local model=$1 cfg=$2 threads=1 best=0 s m n k layout g
    [ "$cfg" = 1x2 ] && threads=2
    eval "local shapes=\$shapes_$model"
    IFS=';' read -ra sh <<<"$shapes"
    for s in "${sh[@]}"; do
        read -r m n k layout <<<"$s"
        # rg: one thread, and only on AVX-512 (no figure elsewhere)
        g=$("$G" "$m" "$n" "$k" "$threads" "${layout:-nn}" 2>/dev/null |
            sed -n 's/.*median_gflops=\([0-9.]*\).*/\1/p')
        best=$(awk "BEGIN {print (${g:-0} > $best) ? ${g:-0} : $best}")
    done
    # two ranks or two workers: two single-threaded products on two cores
    case $cfg in 2x1 | 1x2w) best=$(awk "BEGIN {print 2 * $best}") ;; esac
    echo "$best" >>"$out/g-$model-$cfg"
}

# --deterministic (issue 27): its cost against the default path, each pair of
# runs back to back (1 rank x 1 thread, and 2 ranks x 1 thread), DET_REPS
# pairs per model and config (DET=0 skips it)
det_run() { # model config flag... -> appends tok/s to $out/d-model-cfg-{det,def}
    local model=$1 cfg=$2 tag=$3 log=$out/dlog
    shift 3
    eval "local a=(\"\${args_$model[@]}\")"
    case $cfg in
    1x1) "$S" train "${a[@]}" --threads 1 --log-every 100000 "$@" >"$log" 2>&1 ;;
    2x1) "${mpi[@]}" "$S" train "${a[@]}" --threads 1 --log-every 100000 "$@" >"$log" 2>&1 ;;
    esac
    { grep -o 'tokens_per_s=[0-9]*' "$log" || echo =nan; } | cut -d= -f2 >>"$out/d-$model-$cfg-$tag"
}
det_table() {
    echo "--deterministic against the default path (pairs of runs back to back, medians of ${DET_REPS:-$REPS})"
    printf '%-6s %-4s %12s %12s %8s %17s\n' model cfg default deterministic ratio "paired (range)"
    for model in $MODELS; do
        for cfg in 1x1 2x1; do
            for _ in $(seq "${DET_REPS:-$REPS}"); do
                det_run "$model" $cfg def
                det_run "$model" $cfg det --deterministic
            done
            d0=$(median <"$out/d-$model-$cfg-def") d1=$(median <"$out/d-$model-$cfg-det")
            pr=$(paste "$out/d-$model-$cfg-det" "$out/d-$model-$cfg-def" | awk '$2 > 0 {print $1 / $2}' |
                sort -g | awk '{a[NR] = $1} END {if (NR) printf "%.2f (%.2f-%.2f)", a[int((NR + 1) / 2)], a[1], a[NR]; else print "nan"}')
            printf '%-6s %-4s %12s %12s %8s %17s\n' "$model" $cfg "$d0" "$d1" \
                "$(awk "BEGIN {printf \"%.2f\", $d1 / $d0}")" "$pr"
        done
    done
}
if [ "${DET_ONLY:-0}" = 1 ]; then # only the --deterministic table
    det_table
    exit 0
fi

for model in $MODELS; do
    for _ in $(seq "$REPS"); do
        for cfg in 1x1 1x2 1x2w 2x1; do
            seqpar_run "$model" $cfg
            gemm_best "$model" $cfg
            [ $cfg = 1x2w ] || torch_run "$model" $cfg # 1x2w is compared with PyTorch's 1x2
        done
        seqpar_run "$model" 2x1w
        seqpar_run "$model" 2x1i
    done
done

echo "seqpar vs PyTorch: $(nproc) cores, OpenBLAS $(cat "$out/kernel"), OMP_WAIT_POLICY=PASSIVE for PyTorch, medians of $REPS"
printf '%-6s %-4s %10s %10s %8s %17s %9s %9s %9s %7s %6s\n' model cfg seqpar torch ratio "paired (range)" \
    "GFLOP/s" "best GEMM" "of it" MFLOP/t MB
for model in $MODELS; do
    for cfg in 1x1 1x2 1x2w 2x1; do
        best=$(median <"$out/g-$model-$cfg")
        sp=$(median <"$out/s-$model-$cfg")
        tp=$(median <"$out/t-$model-${cfg%w}")
        gf=$(awk '{print $1}' "$out/w-$model-$cfg" | median)
        mf=$(awk '{print $2}' "$out/w-$model-$cfg" | median)
        mb=$(awk '{print $5}' "$out/w-$model-$cfg" | median)
        # each repetition's seqpar ÷ PyTorch, the two runs next to each other
        # in time: their median, and the lowest and highest
        pr=$(paste "$out/s-$model-$cfg" "$out/t-$model-${cfg%w}" | awk '$2 > 0 {print $1 / $2}' |
            sort -g | awk '{a[NR] = $1} END {if (NR) printf "%.2f (%.2f-%.2f)", a[int((NR + 1) / 2)], a[1], a[NR]; else print "nan"}')
        printf '%-6s %-4s %10s %10s %8s %17s %9s %9s %8s%% %7s %6s\n' "$model" $cfg "$sp" "$tp" \
            "$(awk "BEGIN {printf \"%.2f\", $sp / $tp}")" "$pr" "$gf" "$best" \
            "$(awk "BEGIN {printf \"%.0f\", 100 * $gf / $best}")" "$mf" "$mb"
    done
    s1=$(median <"$out/s-$model-1x1") s2=$(median <"$out/s-$model-2x1") s2w=$(median <"$out/s-$model-2x1w")
    s2i=$(median <"$out/s-$model-2x1i") t1=$(median <"$out/t-$model-1x1") t2=$(median <"$out/t-$model-2x1")
    echo "       $model: 2 ranks x 1 thread vs 1 x 1: scaling efficiency $(pct "$s2" "2 * $s1")% at the same global batch," \
        "$(pct "$s2w" "2 * $s1")% at the same batch per rank ($s2w tokens/s);" \
        "work per step padded/executed (GFLOP): $(awk '{print $3 "/" $4}' "$out/w-$model-1x1" | head -1)"
    echo "       $model: two independent 1 x 1 runs at once (no communication): $(pct "$s2i" "2 * $s1")% of twice" \
        "one run alone ($s2i tokens/s while both ran: no synchronisation at all); 2 ranks reach" \
        "$(pct "$s2" "$s2i")% / $(pct "$s2w" "$s2i")% of it; PyTorch's 2 ranks: $(pct "$t2" "2 * $t1")%"
done
# memory over a long run: the peak RSS after 10 and after 80 epochs of the book model
for ep in 10 80; do
    "$S" train "${args_book[@]}" --epochs $ep --threads 1 --log-every 100000 2>&1 |
        sed -n "s/.*peak memory \([0-9]*\) MB.*/\1/p" >"$out/mem$ep"
done
echo "       peak memory of the book model: $(cat "$out/mem10") MB after 10 epochs, $(cat "$out/mem80") MB after 80 (no growth if equal)"
if [ "${DET:-1}" = 1 ]; then det_table; fi
echo "(1x2 = 1 rank with 2 OpenBLAS threads, 1x2w = 1 rank with 2 workers (--workers 2), both against"
echo " PyTorch's 1 process x 2 threads;"
echo " ratio = seqpar ÷ PyTorch tokens/s of the medians; paired = the median (and range) of each repetition's"
echo " ratio of the two runs taken one after the other; GFLOP/s = executed matmul work per second over all ranks;"
echo " best GEMM = the best median rate at the model's dominant shapes, OpenBLAS or seqpar's rgemm for a step's"
echo " recurrent product, x2 for 2 ranks, measured in every repetition beside the runs, median; MB = peak RSS,"
echo " largest rank)"
