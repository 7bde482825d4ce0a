#!/usr/bin/env bash
# End to end, the training recipes (issue 25): --accum K = one K-times larger
# batch (1 and 2 ranks, workers, overlap, with token batches, NaN skipping);
# schedules resume exactly (stopped mid-warm-up, mid-cosine and
# mid-plateau, then resumed: ckpt diff --tolerance 0); the rate in the step
# line; --batch-tokens: the padding line, 1 rank = 2 ranks, exact resume.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
base=(--num-examples 3000 --threads 1 --log-every 10 --hidden 32 --embed 16)

# same A B TOL DESCRIPTION: ckpt diff within TOL
same() {
    if "$SEQPAR" ckpt diff "$1" "$2" --tolerance "$3" >"$tmp/diff.out" 2>&1; then
        ok "$4: $(head -1 "$tmp/diff.out" | sed 's/  */ /g')"
    else
        bad "$4: $(cat "$tmp/diff.out" | tail -5)"
    fi
}

# --- --accum K: K micro-batches of B = one batch of K·B (float tolerance:
# the sums run in another order)
"$SEQPAR" train "${base[@]}" --batch 32 --max-steps 20 --checkpoint-dir "$tmp/ref" >"$tmp/ref.out" 2>&1
"$SEQPAR" train "${base[@]}" --batch 8 --accum 4 --max-steps 20 --checkpoint-dir "$tmp/acc" >"$tmp/acc.out" 2>&1
same "$tmp/ref/ckpt-00000020.h5" "$tmp/acc/ckpt-00000020.h5" 1e-4 "--batch 8 --accum 4 = --batch 32 after 20 updates"
loss() { sed -n 's/^done .*loss=\([0-9.]*\).*/\1/p' "$1"; }
check "--accum: the same loss in the summary ($(loss "$tmp/ref.out") vs $(loss "$tmp/acc.out"))" \
    awk -v a="$(loss "$tmp/ref.out")" -v b="$(loss "$tmp/acc.out")" 'BEGIN { d = a - b; exit !(a > 0 && d < 2e-4 && d > -2e-4) }'
"${mpi[@]}" -np 2 "$SEQPAR" train "${base[@]}" --batch 8 --accum 4 --max-steps 20 --checkpoint-dir "$tmp/acc2" >/dev/null 2>&1
same "$tmp/ref/ckpt-00000020.h5" "$tmp/acc2/ckpt-00000020.h5" 1e-4 "2 ranks, --batch 8 --accum 4 = 1 rank, --batch 32"
"${mpi[@]}" -np 2 "$SEQPAR" train "${base[@]}" --batch 8 --accum 4 --overlap on --bucket-kb 4 --max-steps 20 \
    --checkpoint-dir "$tmp/acc2o" >/dev/null 2>&1
same "$tmp/acc2/ckpt-00000020.h5" "$tmp/acc2o/ckpt-00000020.h5" 0 "--overlap on with --accum (buckets leave on the last micro-batch): bitwise = off"
"$SEQPAR" train "${base[@]}" --batch 8 --accum 4 --workers 2 --max-steps 20 --checkpoint-dir "$tmp/accw" >/dev/null 2>&1
same "$tmp/acc2/ckpt-00000020.h5" "$tmp/accw/ckpt-00000020.h5" 0 "--workers 2 with --accum: bitwise = 2 ranks"
# NaN skipping: the whole update of the poisoned step is skipped, the run goes on
SEQPAR_FAULT_NAN=0:5 "$SEQPAR" train "${base[@]}" --batch 8 --accum 3 --on-nan skip --max-steps 12 \
    --checkpoint-dir "$tmp/accnan" >"$tmp/accnan.out" 2>&1
rc=$?
check "--accum with --on-nan skip: exit 0, one step skipped (the rate before the nan-skips suffix)" \
    bash -c "[ $rc = 0 ] && grep -q 'step 5: the gradient norm is not finite; its update is skipped' '$tmp/accnan.out' && grep -q '^done step=12 .*nan_skips=1' '$tmp/accnan.out' && grep -q '^step 10/12 .* lr 0.005 nan-skips 1\$' '$tmp/accnan.out'"

# --- schedules: the rate in the step line, and exact resumes
"$SEQPAR" train "${base[@]}" --batch 16 --lr 0.01 --lr-schedule inverse-sqrt --warmup 40 --max-steps 20 \
    --log-every 5 >"$tmp/inv.out" 2>&1
check "the step line ends in the rate: warm-up 0.01 x 10/40 at step 10" grep -q '^step 10/20 .* lr 0.0025$' "$tmp/inv.out"
exact() { # NAME STOP ARGS…: 60 steps straight = STOP steps, then resumed to 60, bit for bit
    local name=$1 stop=$2
    shift 2
    "$SEQPAR" train "${base[@]}" "$@" --max-steps 60 --checkpoint-dir "$tmp/$name-a" >"$tmp/$name-a.out" 2>&1
    "$SEQPAR" train "${base[@]}" "$@" --max-steps 60 --checkpoint-dir "$tmp/$name-b" \
        --checkpoint-every "$stop" --keep 2 >/dev/null 2>&1
    rm -f "$tmp/$name-b/ckpt-00000060.h5" # the run resumes from its checkpoint at STOP
    "$SEQPAR" train "${base[@]}" "$@" --max-steps 60 --checkpoint-dir "$tmp/$name-b" --resume auto \
        >"$tmp/$name-b.out" 2>&1
    check "$name: resumed at step $stop" grep -q "resumed from .*ckpt-000000$stop.h5 at step $stop" "$tmp/$name-b.out"
    same "$tmp/$name-a/ckpt-00000060.h5" "$tmp/$name-b/ckpt-00000060.h5" 0 "$name: 60 steps = $stop + resumed"
}
exact warmup 30 --batch 16 --lr-schedule inverse-sqrt --warmup 45
exact cosine 30 --batch 16 --lr-schedule cosine --warmup 10 --lr-min 1e-4 --optimizer adamw --weight-decay 0.01
# lr 0.1 bounces: the rate drops at some evaluations before step 40 and after
exact plateau 40 --batch 16 --lr 0.1 --lr-schedule plateau --lr-patience 1 --lr-factor 0.5 --valid 200 \
    --eval-every 2 --label-smoothing 0.1
drops() { awk -v lo="$1" -v hi="$2" '$1 == "step" && $3 == "lr" && /without a lower validation loss/ && $2 > lo && $2 <= hi { n++ } END { print n + 0 }' "$tmp/plateau-a.out"; }
check "plateau: the rate dropped before step 40 ($(drops 0 40)) and after ($(drops 40 60))" \
    test "$(drops 0 40)" -gt 0 -a "$(drops 40 60)" -gt 0
check "plateau: its state is in the checkpoint" bash -c "h5dump -a /train/lr_plateau '$tmp/plateau-b/ckpt-00000040.h5' | grep -q '(0): 0.0'"

# the LM: micro-batches of its random sampler's streams, and a schedule
lm=(--task lm --dataset timemachine --num-examples 20000 --embed 0 --steps 20 --sampler random)
exact lm-cosine 30 "${lm[@]}" --batch 8 --accum 2 --lr-schedule cosine --warmup 20

# --- token batches
tok=(--batch 64 --batch-tokens 200)
"$SEQPAR" train "${base[@]}" "${tok[@]}" --max-steps 20 --checkpoint-dir "$tmp/tk1" >"$tmp/tk1.out" 2>&1
check "--batch-tokens: the padding line" grep -Eq '^batch-tokens 200: [0-9]+ batches in epoch 1, [0-9]+ target tokens .*padding [0-9.]+% of target positions before bucketing \(batches of random pairs\), [0-9.]+% after$' "$tmp/tk1.out"
check "--batch-tokens: less padding after bucketing" \
    awk '/^batch-tokens/ { for (i = 1; i <= NF; i++) if ($i ~ /%$/) p[++n] = $i + 0 } END { exit !(n == 2 && p[2] < p[1]) }' "$tmp/tk1.out"
"${mpi[@]}" -np 2 "$SEQPAR" train "${base[@]}" "${tok[@]}" --max-steps 20 --checkpoint-dir "$tmp/tk2" >/dev/null 2>&1
same "$tmp/tk1/ckpt-00000020.h5" "$tmp/tk2/ckpt-00000020.h5" 1e-4 "--batch-tokens: 2 ranks = 1 rank (the same global batches)"
"$SEQPAR" train "${base[@]}" "${tok[@]}" --workers 2 --max-steps 20 --checkpoint-dir "$tmp/tkw" >/dev/null 2>&1
same "$tmp/tk2/ckpt-00000020.h5" "$tmp/tkw/ckpt-00000020.h5" 0 "--batch-tokens: 2 workers = 2 ranks, bitwise"
"$SEQPAR" train "${base[@]}" --batch 32 --batch-tokens 100 --accum 2 --max-steps 20 --checkpoint-dir "$tmp/tka" >/dev/null 2>&1
"$SEQPAR" train "${base[@]}" --batch 64 --batch-tokens 200 --max-steps 20 --checkpoint-dir "$tmp/tkb" >/dev/null 2>&1
same "$tmp/tkb/ckpt-00000020.h5" "$tmp/tka/ckpt-00000020.h5" 1e-4 "--batch-tokens 100 --accum 2 = --batch-tokens 200"
exact tokens 30 "${tok[@]}"
finish
