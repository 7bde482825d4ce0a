#!/usr/bin/env bash
# End to end, --deterministic (issue 27): the same bits at any world size.
#  - the book model, an LSTM bidirectional model with dropout, the attention
#    decoder, and the sequential-sampler LM (carried state), each at 1, 2 and 3 ranks and
#    --workers 2 (and 2 ranks with --overlap on), after 30 steps: parameters,
#    Adam moments, position and carried state identical (ckpt diff
#    --tolerance 0), and every printed loss and validation figure the same;
#  - a resume from 3 ranks to 2 lands on the 1-rank run's bits;
#  - a short final batch (fewer rows than --batch) too;
#  - each also within 1e-3 of the default path (it trains the same model);
#  - a NaN in one rank's gradient is skipped alike on every rank;
#  - the control: without --deterministic, 1 and 2 ranks differ in the last
#    bits (so these checks can fail).
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)

# figures LOG: the printed figures of a run (no speeds, times or step totals)
figures() {
    grep -E '^(step|epoch) [0-9]+' "$1" | sed -E 's/ tok\/s [0-9.]+ ETA .*//; s#^step ([0-9]+)/[0-9]+#step \1#'
}

# same NAME A B: checkpoints A and B hold the same bits
same() {
    if "$SEQPAR" ckpt diff "$2" "$3" --tolerance 0 >"$tmp/diff" 2>&1; then
        ok "$1: identical ($(grep -c identical "$tmp/diff") lines of ckpt diff say so)"
    else
        bad "$1: $(cat "$tmp/diff")"
    fi
}

# bitwise NAME STEPS ARGS…: 1, 2, 3 ranks, 2 ranks with overlap, 2 workers
bitwise() {
    local name=$1 steps=$2
    shift 2
    local ck
    ck=$(printf 'ckpt-%08d.h5' "$steps")
    local args=(train "$@" --deterministic --max-steps "$steps" --checkpoint-every "$steps"
        --log-every 5)
    "$SEQPAR" "${args[@]}" --checkpoint-dir "$tmp/$name-1" >"$tmp/$name-1.log" 2>&1 ||
        { bad "$name: 1 process failed: $(tail -3 "$tmp/$name-1.log")"; return; }
    figures "$tmp/$name-1.log" >"$tmp/$name-1.fig"
    # and it computes the model's gradients: the default path (float sums)
    # lands within float noise of it
    "$SEQPAR" train "$@" --max-steps "$steps" --checkpoint-every "$steps" --checkpoint-dir "$tmp/$name-def" \
        >"$tmp/$name-def.log" 2>&1 || bad "$name: default path failed: $(tail -3 "$tmp/$name-def.log")"
    if "$SEQPAR" ckpt diff "$tmp/$name-def/$ck" "$tmp/$name-1/$ck" --tolerance 1e-3 >"$tmp/$name.near" 2>&1; then
        ok "$name: within 1e-3 of the default path ($(head -1 "$tmp/$name.near" | sed 's/  */ /g'))"
    else
        bad "$name: far from the default path: $(cat "$tmp/$name.near")"
    fi
    local run
    for run in 2 3 2-overlap w2; do
        local dir=$tmp/$name-$run
        case $run in
        w2) "$SEQPAR" "${args[@]}" --workers 2 --checkpoint-dir "$dir" >"$dir.log" 2>&1 ;;
        2-overlap) "${mpi[@]}" -np 2 "$SEQPAR" "${args[@]}" --overlap on --checkpoint-dir "$dir" \
            >"$dir.log" 2>&1 ;;
        *) "${mpi[@]}" -np "$run" "$SEQPAR" "${args[@]}" --checkpoint-dir "$dir" >"$dir.log" 2>&1 ;;
        esac || { bad "$name $run: failed: $(tail -3 "$dir.log")"; continue; }
        same "$name: $run = 1 process after $steps steps" "$tmp/$name-1/$ck" "$dir/$ck"
        if figures "$dir.log" | cmp -s - "$tmp/$name-1.fig" && [ -s "$tmp/$name-1.fig" ]; then
            ok "$name: $run prints the same $(wc -l <"$tmp/$name-1.fig") lines of figures"
        else
            bad "$name: $run prints other figures: $(figures "$dir.log" | diff - "$tmp/$name-1.fig" | head -4)"
        fi
    done
}

book=(--dataset numbers)
bitwise book 30 "${book[@]}"
lstm=(--dataset fra-eng --num-examples 600 --cell lstm --bidirectional --dropout 0.2 --batch 40
    --valid 100 --eval-every 10 --eval-beam 2)
bitwise lstm 30 "${lstm[@]}"
lm=(--task lm --dataset timemachine --tokens char --embed 0 --hidden 64 --layers 1 --batch 32
    --steps 35 --optimizer sgd --lr 1 --sampler sequential --valid 5000 --eval-every 10)
bitwise lm 30 "${lm[@]}"
# the attention decoder (dropout on its weights too)
attn=(--dataset fra-eng --num-examples 600 --attention additive --dropout 0.2 --batch 40
    --valid 50 --eval-every 10 --eval-beam 2 --label-smoothing 0.1)
bitwise attention 20 "${attn[@]}"
# fewer pairs than a multiple of the batch: the epoch's last batch has 10 rows
short=(--dataset fra-eng --num-examples 610 --batch 40)
bitwise short 20 "${short[@]}"

# resume: 3 ranks to step 10, then 2 ranks to 30 = the 1-rank run
rs=$tmp/resume
"${mpi[@]}" -np 3 "$SEQPAR" train "${lm[@]}" --deterministic --max-steps 10 --checkpoint-every 10 \
    --log-every 5 --checkpoint-dir "$rs" >"$rs-a.log" 2>&1 &&
    "${mpi[@]}" -np 2 "$SEQPAR" train "${lm[@]}" --deterministic --max-steps 30 \
        --checkpoint-every 30 --log-every 5 --checkpoint-dir "$rs" --resume auto >"$rs-b.log" 2>&1 ||
    bad "resume 3 -> 2 failed: $(tail -3 "$rs-a.log" "$rs-b.log")"
same "lm: 3 ranks, resumed on 2 = 1 process" "$tmp/lm-1/ckpt-00000030.h5" "$rs/ckpt-00000030.h5"
if diff <(figures "$rs-a.log"; figures "$rs-b.log") "$tmp/lm-1.fig" >/dev/null; then
    ok "lm: the resumed run printed the 1-process run's figures"
else
    bad "lm: resumed figures differ: $(diff <(figures "$rs-a.log"; figures "$rs-b.log") "$tmp/lm-1.fig" | head -4)"
fi

# a NaN in one rank's gradient (test-only SEQPAR_FAULT_NAN) is found on every
# rank and skipped: 2 ranks, the NaN on rank 1, = 1 process with it on rank 0
nan=(train "${book[@]}" --deterministic --on-nan skip --max-steps 6 --checkpoint-every 6)
SEQPAR_FAULT_NAN=1:3 "${mpi[@]}" -x SEQPAR_FAULT_NAN -np 2 "$SEQPAR" "${nan[@]}" \
    --checkpoint-dir "$tmp/nan2" >"$tmp/nan2.log" 2>&1
SEQPAR_FAULT_NAN=0:3 "$SEQPAR" "${nan[@]}" --checkpoint-dir "$tmp/nan1" >"$tmp/nan1.log" 2>&1
if grep -q "nan_skips=1" "$tmp/nan2.log" && grep -q "step 3: the gradient norm is not finite" "$tmp/nan2.log" &&
    "$SEQPAR" ckpt diff "$tmp/nan1/ckpt-00000006.h5" "$tmp/nan2/ckpt-00000006.h5" --tolerance 0 >/dev/null 2>&1; then
    ok "a NaN in rank 1's gradient: step 3 skipped on every rank, the bits of 1 process with it"
else
    bad "NaN injection: $(grep -iE 'not finite|done|error' "$tmp/nan2.log" "$tmp/nan1.log" | head -4)"
fi

# the control: the default path differs in the last bits between 1 and 2 ranks
ctl=(train "${book[@]}" --max-steps 30 --checkpoint-every 30)
"$SEQPAR" "${ctl[@]}" --checkpoint-dir "$tmp/ctl-1" >/dev/null 2>&1
"${mpi[@]}" -np 2 "$SEQPAR" "${ctl[@]}" --checkpoint-dir "$tmp/ctl-2" >/dev/null 2>&1
if "$SEQPAR" ckpt diff "$tmp/ctl-1/ckpt-00000030.h5" "$tmp/ctl-2/ckpt-00000030.h5" --tolerance 0 \
    >"$tmp/ctl.diff" 2>&1; then
    bad "control: without --deterministic 1 and 2 ranks were identical: the checks above prove nothing"
elif grep -q DIFFERENT "$tmp/ctl.diff"; then
    ok "control: without --deterministic 1 and 2 ranks differ ($(head -1 "$tmp/ctl.diff" | sed 's/  */ /g'))"
else
    bad "control: ckpt diff failed: $(cat "$tmp/ctl.diff")"
fi

expect_error "--deterministic with --threads 2" "--deterministic runs one OpenBLAS thread" \
    "$SEQPAR" train --deterministic --threads 2 --max-steps 1
finish
