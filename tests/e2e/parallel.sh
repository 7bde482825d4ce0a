#!/usr/bin/env bash
# End to end, data-parallel (issue 4): N ranks behave as one trainer.
#  - equivalence: 2 and 3 ranks reach the parameters of 1 process with the
#    same global batch after 50 steps (dropout on; translation with the random
#    sampler, LM with the sequential sampler and carried states), with and
#    without overlapped bucket reduction; so do in-process workers (2 and 3
#    in one process, 2 ranks x 2), and 2 workers give 2 ranks' bits;
#  - the replica check catches a forced divergence and names step, ranks and
#    tensor;
#  - a rank killed with SIGKILL ends the job (non-zero) within 30 s;
#  - 4 ranks on this machine's cores (oversubscribed) train, 1 thread each.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
TOL=1e-4

# like_one NAME DIR WHAT: DIR's step-50 checkpoint holds 1 process's parameters
# (within TOL); WHAT names the run in the message
like_one() {
    if "$SEQPAR" ckpt diff "$tmp/$1-1/ckpt-00000050.h5" "$2/ckpt-00000050.h5" \
        --tolerance $TOL >"$2.diff" 2>&1; then
        ok "$1: $3 = 1 process after 50 steps: $(head -1 "$2.diff" | sed 's/  */ /g')"
    else
        bad "$1: $3 differ beyond $TOL: $(cat "$2.diff")"
    fi
}

# equivalent NAME ARGS… : runs 1, 2 and 3 ranks, compares step-50 checkpoints
equivalent() {
    local name=$1
    shift
    local args=("$@" --max-steps 50 --threads 1 --log-every 50)
    "$SEQPAR" train "${args[@]}" --checkpoint-dir "$tmp/$name-1" >"$tmp/$name-1.out" 2>&1 ||
        bad "$name: 1 process failed: $(tail -3 "$tmp/$name-1.out")"
    for np in 2 3; do
        for ov in off on; do
            local d="$tmp/$name-$np-$ov"
            "${mpi[@]}" -np $np "$SEQPAR" train "${args[@]}" --overlap $ov --bucket-kb 8 \
                --checkpoint-dir "$d" >"$d.out" 2>&1 || bad "$name: $np ranks failed: $(tail -3 "$d.out")"
            like_one "$name" "$d" "$np ranks (overlap $ov)"
        done
    done
    # the summary lines agree too (same global loss)
    local l1 l3
    l1=$(grep -o 'loss=[0-9.]*' "$tmp/$name-1.out")
    l3=$(grep -o 'loss=[0-9.]*' "$tmp/$name-3-on.out")
    check "$name: 1 process and 3 ranks print the same loss ($l1, $l3)" test "$l1" = "$l3"
    # in-process workers (--workers): 2 and 3 in one process, 2 per rank on 2
    # ranks; 2 workers sum as 2 ranks do, so they give 2 ranks' very bits
    local spec np wk
    for spec in 1:2 1:3 2:2; do
        np=${spec%:*} wk=${spec#*:}
        local d="$tmp/$name-w$np-$wk"
        "${mpi[@]}" -np $np "$SEQPAR" train "${args[@]}" --workers $wk --checkpoint-dir "$d" \
            >"$d.out" 2>&1 || bad "$name: $np rank(s) x $wk workers failed: $(tail -3 "$d.out")"
        like_one "$name" "$d" "$np rank(s) x $wk workers"
    done
    check "$name: 1 process x 2 workers holds 2 ranks' parameters bit for bit" \
        "$SEQPAR" ckpt diff "$tmp/$name-2-off/ckpt-00000050.h5" "$tmp/$name-w1-2/ckpt-00000050.h5" \
        --tolerance 0
    check "$name: ... and says it runs 2 workers: $(grep -m1 '^seqpar ' "$tmp/$name-w1-2.out")" \
        grep -q '^seqpar .*: 1 rank x 2 workers x 1 OpenBLAS thread' "$tmp/$name-w1-2.out"
}

equivalent translate --dataset fra-eng --num-examples 600 --dropout 0.2 --sampler random --batch 64
# a target vocabulary of 16k+1 words (97): the last tensor leaves 15 floats of
# padding before the loss and token sums
equivalent vocab97 --dataset numbers --num-examples 280 --dropout 0.1 --batch 64
check "vocab97: the target vocabulary is 97 words" grep -q 'vocab [0-9]* -> 97;' "$tmp/vocab97-1.out"
equivalent lm --task lm --dataset timemachine --num-examples 20000 --embed 0 --hidden 64 --layers 2 \
    --dropout 0.2 --sampler sequential --batch 64 --steps 35 --lr 0.01

# --- the replica check: rank 2 nudges a tensor after step 20; the check at 20 sees it
rc=0
SEQPAR_FAULT_PERTURB=2:20:decoder.dense.bias "${mpi[@]}" -x SEQPAR_FAULT_PERTURB -np 3 "$SEQPAR" train \
    --max-steps 60 --replica-check 10 --threads 1 >"$tmp/rep.out" 2>"$tmp/rep.err" || rc=$?
check "a diverged replica stops the job (exit $rc)" test "$rc" = 1
check "... with a message naming step, ranks and tensor: $(grep -m1 replica "$tmp/rep.err")" \
    grep -q "replica check at step 20: rank 2's parameters differ from rank 0's (first differing tensor: decoder.dense.bias)" "$tmp/rep.err"
check "... and it stopped there" bash -c "! grep -q 'done step=' '$tmp/rep.out'"
"${mpi[@]}" -np 3 "$SEQPAR" train --max-steps 30 --replica-check 1 --threads 1 >"$tmp/rep2.out" 2>&1
check "healthy replicas pass a check at every step" grep -q '^done step=30 ' "$tmp/rep2.out"

# --- 16-bit gradients on the wire (--grad-compress): every rank holds the
# same bits (a replica check at every step), the loss stays near float32's,
# and a resumed run ends as an uninterrupted one, bit for bit
for gc in bf16 fp16; do
    gca=(train --dataset fra-eng --num-examples 600 --threads 1 --log-every 50 --grad-compress $gc
         --overlap on --bucket-kb 8 --replica-check 1)
    "${mpi[@]}" -np 3 "$SEQPAR" "${gca[@]}" --max-steps 50 --checkpoint-dir "$tmp/gc-$gc" >"$tmp/gc-$gc.out" 2>&1
    check "--grad-compress $gc, 3 ranks: identical replicas at every step ($(grep -o 'buckets, [a-z0-9]* on the wire' "$tmp/gc-$gc.out"))" \
        grep -q '^done step=50 ' "$tmp/gc-$gc.out"
    "${mpi[@]}" -np 3 "$SEQPAR" "${gca[@]}" --max-steps 25 --checkpoint-dir "$tmp/gc-$gc-r" >/dev/null 2>&1
    "${mpi[@]}" -np 3 "$SEQPAR" "${gca[@]}" --max-steps 50 --checkpoint-dir "$tmp/gc-$gc-r" --resume auto \
        >"$tmp/gc-$gc-r.out" 2>&1
    check "... resumed at step 25: the uninterrupted run's bits" bash -c "'$SEQPAR' ckpt diff --tolerance 0 \
        '$tmp/gc-$gc/ckpt-00000050.h5' '$tmp/gc-$gc-r/ckpt-00000050.h5' >/dev/null"
done
"${mpi[@]}" -np 3 "$SEQPAR" "${gca[@]}" --grad-compress none --max-steps 50 >"$tmp/gc-none.out" 2>&1
l32=$(sed -n 's/^done .*loss=\([0-9.]*\).*/\1/p' "$tmp/gc-none.out")
l16=$(sed -n 's/^done .*loss=\([0-9.]*\).*/\1/p' "$tmp/gc-fp16.out")
lb=$(sed -n 's/^done .*loss=\([0-9.]*\).*/\1/p' "$tmp/gc-bf16.out")
check "... the loss after 50 steps: float32 $l32, fp16 $l16, bf16 $lb (within 1%)" \
    awk -v a="$l32" -v b="$l16" -v c="$lb" 'BEGIN {exit !(a > 0 && (b - a) ^ 2 < (a / 100) ^ 2 && (c - a) ^ 2 < (a / 100) ^ 2)}'

# --- a rank killed with SIGKILL ends the whole job within 30 s
"${mpi[@]}" -np 2 "$SEQPAR" train --epochs 100000 --threads 1 --log-every 1 \
    --checkpoint-dir "$tmp/killme" >"$tmp/kill.out" 2>"$tmp/kill.err" &
mpirun_pid=$!
for _ in $(seq 100); do grep -q '^step ' "$tmp/kill.out" 2>/dev/null && break; sleep 0.2; done
victim=$(pgrep -f "^$SEQPAR train --epochs 100000 .*$tmp/killme" | tail -1)
start=$(date +%s)
if [ -n "$victim" ]; then
    kill -9 "$victim"
    rc=0
    for _ in $(seq 300); do kill -0 $mpirun_pid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $mpirun_pid 2>/dev/null; then
        bad "the job still runs 30 s after a rank was killed"
        pkill -9 -f "$tmp/killme"
        wait $mpirun_pid 2>/dev/null
    else
        wait $mpirun_pid || rc=$?
        took=$(($(date +%s) - start))
        check "killing rank pid $victim ends the job with a non-zero exit ($rc) in ${took}s" test "$rc" != 0 -a "$took" -le 30
    fi
else
    bad "no rank process found to kill"
    pkill -9 -f "$tmp/killme"
fi
check "no rank is left behind" test -z "$(pgrep -f "$tmp/killme")"

# --- 4 ranks on this machine: oversubscribed, one OpenBLAS thread each
"${mpi[@]}" -np 4 "$SEQPAR" train --max-steps 20 >"$tmp/np4.out" 2>&1
check "mpirun -np 4 --oversubscribe trains" grep -q '^done step=20 ' "$tmp/np4.out"
check "... each rank with 1 OpenBLAS thread when the node has fewer cores than 4 x 2: $(head -1 "$tmp/np4.out")" \
    bash -c "[ $(nproc) -ge 8 ] || grep -q '4 ranks x 1 OpenBLAS thread ' '$tmp/np4.out'"
check "... and says how it chose: $(head -1 "$tmp/np4.out" | grep -o '([^;]*')" grep -q '4 ranks on this node' "$tmp/np4.out"

# --- ranks that would train on different terms stop at once with one line
# from the rank that differs (mpirun's "A : B" form gives ranks their own
# command lines and environments): another corpus under the same name once
# overran the heap at the parameters' broadcast, or trained silently on
# mixed data; another option's value is named
# mpi_refused DESCRIPTION PATTERN MPIRUN-ARGS…: non-zero, one seqpar line matching PATTERN
mpi_refused() {
    local d=$1 pat=$2 rc=0 lines
    shift 2
    timeout 120 "${mpi[@]}" "$@" >"$tmp/mr.out" 2>&1 || rc=$?
    lines=$(grep -c '^seqpar train: ' "$tmp/mr.out")
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$lines" = 1 ] && grep -Eq -- "$pat" "$tmp/mr.out" &&
        ! grep -q 'Sanitizer\|^step ' "$tmp/mr.out"; then
        ok "$d: $(grep '^seqpar train: ' "$tmp/mr.out")"
    else
        bad "$d: exit $rc, $lines seqpar lines: $(head -c 800 "$tmp/mr.out")"
    fi
}
mkdir -p "$tmp/d1/fra-eng" "$tmp/d2/fra-eng"
head -3000 "$SEQPAR_DATA/fra-eng/fra.txt" >"$tmp/d1/fra-eng/fra.txt"
head -2000 "$SEQPAR_DATA/fra-eng/fra.txt" >"$tmp/d2/fra-eng/fra.txt"
small=(train --dataset fra-eng --hidden 16 --embed 8 --batch 16 --max-steps 3 --threads 1)
mpi_refused "another fra.txt on rank 1" 'rank 1 read other data for --dataset fra-eng than rank 0 \(2000 pairs.*3000 pairs' \
    -np 1 -x SEQPAR_DATA="$tmp/d1" "$SEQPAR" "${small[@]}" : -np 1 -x SEQPAR_DATA="$tmp/d2" "$SEQPAR" "${small[@]}"
head -c 30000 "$SEQPAR_DATA/timemachine.txt" >"$tmp/d1/timemachine.txt"
tr 'a-z' 'b-za' <"$tmp/d1/timemachine.txt" >"$tmp/d2/timemachine.txt"
lm=(train --task lm --dataset timemachine --hidden 16 --batch 8 --steps 8 --max-steps 3 --threads 1)
mpi_refused "a text of the same length with other letters on rank 2 of 3" \
    'rank 2 read other data .*the same sizes but other tokens' \
    -np 2 -x SEQPAR_DATA="$tmp/d1" "$SEQPAR" "${lm[@]}" : -np 1 -x SEQPAR_DATA="$tmp/d2" "$SEQPAR" "${lm[@]}"
# a data-dependent refusal on one rank only (it once left rank 0 waiting
# forever): every rank stops alike
mkdir -p "$tmp/d3" && head -c 10000 "$tmp/d1/timemachine.txt" >"$tmp/d3/timemachine.txt"
mpi_refused "a --valid too large for rank 1's shorter text" \
    'rank 1: --valid 6000: an LM holds out .*at most half the corpus \(4[0-9]{3} tokens\)' \
    -np 1 -x SEQPAR_DATA="$tmp/d1" "$SEQPAR" "${lm[@]}" --valid 6000 : -np 1 -x SEQPAR_DATA="$tmp/d3" "$SEQPAR" "${lm[@]}" --valid 6000
mpi_refused "--threads 4 beside --workers 2 on rank 1 alone" '^seqpar train: --workers 2 runs each worker on one OpenBLAS thread' \
    -np 1 "$SEQPAR" "${small[@]}" --workers 2 : -np 1 "$SEQPAR" "${small[@]}" --workers 2 --threads 4
mpi_refused "another --hidden on rank 1" '--hidden is 16 on rank 0 but 32 on rank 1: every rank must be given the same options' \
    -np 1 "$SEQPAR" "${small[@]}" : -np 1 "$SEQPAR" "${small[@]}" --hidden 32
mpi_refused "an option only rank 1 refuses" 'rank 1: --hidden: expected a whole number' \
    -np 1 "$SEQPAR" "${small[@]}" : -np 1 "$SEQPAR" "${small[@]}" --hidden abc
"${mpi[@]}" -np 1 "$SEQPAR" "${small[@]}" --data-dir "$tmp/d1" --threads 2 : \
    -np 1 "$SEQPAR" "${small[@]}" --data-dir "$tmp/d1" >"$tmp/mr.out" 2>&1
check "--threads may differ between ranks" grep -q '^done step=3 ' "$tmp/mr.out"

finish
