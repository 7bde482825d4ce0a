#!/usr/bin/env bash
# End to end, decoding and evaluation (issue 6): beam search from the command
# line, validation (loss, perplexity, BLEU) sharded over ranks giving the
# figures of one process, best.h5, early stopping whose patience survives a
# resume, LM validation perplexity.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)

# a numbers model that translates reasonably (3 epochs, ~10 s)
"$SEQPAR" train --valid 500 --epochs 3 --threads 1 --log-every 100000 --checkpoint-dir "$tmp/nm" \
    >"$tmp/nm.out" 2>&1
ck=$(ls "$tmp"/nm/ckpt-*.h5 | tail -1)
last=$(basename "$ck" .h5 | sed 's/ckpt-0*//')
check "training with --valid prints loss, ppl and BLEU each epoch: $(grep '^epoch 3 valid' "$tmp/nm.out")" \
    test "$(grep -Ec '^epoch [123] valid loss [0-9.]+ ppl [0-9.]+ bleu [0-9.]+$' "$tmp/nm.out")" = 3
check "best.h5 is written and verifies" "$SEQPAR" ckpt verify "$tmp/nm/best.h5"
last_bleu=$(grep '^epoch 3 valid' "$tmp/nm.out" | awk '{print $NF}')
best=$("$SEQPAR" ckpt info "$tmp/nm/best.h5" | grep -o 'best [0-9.]*' | awk '{print $2}')
check "best.h5 holds the best BLEU ($best; the last evaluation gave $last_bleu)" \
    awk "BEGIN {exit !($best + 0.005 >= $last_bleu)}"

# --- translate: --beam 1 is greedy; beam 4 gives one line per input
printf 'seven\ntwenty-one\nthree hundred forty-two\nnine thousand nine hundred eighty\none million\nfive hundred thousand and six\n' >"$tmp/src.txt"
"$SEQPAR" translate --checkpoint "$ck" <"$tmp/src.txt" >"$tmp/greedy.txt"
"$SEQPAR" translate --checkpoint "$ck" --beam 1 <"$tmp/src.txt" >"$tmp/beam1.txt"
"$SEQPAR" translate --checkpoint "$ck" --beam 4 --alpha 0.75 <"$tmp/src.txt" >"$tmp/beam4.txt"
check "greedy translations: $(paste -sd'|' "$tmp/greedy.txt")" test "$(wc -l <"$tmp/greedy.txt")" = 6
check "--beam 1 = greedy" cmp -s "$tmp/greedy.txt" "$tmp/beam1.txt"
check "--beam 4: one line per input ($(paste -sd'|' "$tmp/beam4.txt"))" test "$(wc -l <"$tmp/beam4.txt")" = 6
{ printf '\xef\xbb\xbf'; cat "$tmp/src.txt"; } | "$SEQPAR" translate --checkpoint "$ck" >"$tmp/bom.txt"
check "a byte-order mark before the first line changes no translation (it once read as a word)" \
    cmp -s "$tmp/greedy.txt" "$tmp/bom.txt"
expect_error "--beam 0 is refused" '--beam' "$SEQPAR" translate --checkpoint "$ck" --beam 0
expect_error "--alpha x is refused" '--alpha' "$SEQPAR" translate --checkpoint "$ck" --alpha x

# --- seqpar score reads pairs as the corpus reader does: a BOM, blank lines
# and extra tab columns (manythings' attribution) change nothing
printf 'seven\tsept\ntwenty one\tvingt et un\nthree hundred\ttrois cents\n' >"$tmp/pairs2.tsv"
printf '\xef\xbb\xbfseven\tsept\tCC-BY 2.0 (France)\n\ntwenty one\tvingt et un\tx\ty\n \t \nthree hundred\ttrois cents\n\n' >"$tmp/pairs3.tsv"
s2=$("$SEQPAR" score --checkpoint "$ck" <"$tmp/pairs2.tsv")
s3=$("$SEQPAR" score --checkpoint "$ck" <"$tmp/pairs3.tsv")
check "score: three pairs ($s2)" grep -q 'sentences=3$' <<<"$s2"
check "score: the same with a BOM, blank lines and extra columns ($s3)" test "$s3" = "$s2"
expect_error "score: a line without a tab names its line" 'stdin:2' "$SEQPAR" score --checkpoint "$ck" \
    < <(printf 'seven\tsept\nno tab here\n')

# --- validation sharded over 1, 2, 3 ranks: the figures of one process. The
# same checkpoint trains one more step (float summation order differs by
# ~1e-7 between world sizes), then validates 500 pairs with greedy and beam 3.
for np in 1 2 3; do
    cp -r "$tmp/nm" "$tmp/v$np"
    "${mpi[@]}" -np $np "$SEQPAR" train --valid 500 --epochs 4 --max-steps $((last + 1)) \
        --eval-every $((last + 1)) --eval-beam 3 --threads 1 --log-every 100000 \
        --checkpoint-dir "$tmp/v$np" --resume "$ck" >"$tmp/v$np.out" 2>&1
done
line1=$(grep "^step $((last + 1)) valid" "$tmp/v1.out")
check "validation at 1 rank: $line1" test -n "$line1"
check "... the same at 2 ranks" test -n "$line1" -a "$(grep '^step .* valid' "$tmp/v2.out")" = "$line1"
check "... and at 3 ranks" test -n "$line1" -a "$(grep '^step .* valid' "$tmp/v3.out")" = "$line1"

# --- early stopping: with a learning rate too small to change anything,
# BLEU never improves; the patience count is kept in checkpoints
common=(--valid 200 --lr 1e-12 --eval-every 5 --early-stop 3 --threads 1 --log-every 100000)
"$SEQPAR" train "${common[@]}" --max-steps 100 >"$tmp/es.out" 2>&1
check "--early-stop 3 stops 3 evaluations after the best (step 20): $(grep early "$tmp/es.out")" \
    grep -q '^early stop at step 20: no better validation BLEU in 3 evaluations' "$tmp/es.out"
check "... and ends with the summary line at step 20" grep -q '^done step=20 ' "$tmp/es.out"
"$SEQPAR" train "${common[@]}" --max-steps 10 --checkpoint-dir "$tmp/es" >/dev/null 2>&1
"$SEQPAR" train "${common[@]}" --max-steps 100 --checkpoint-dir "$tmp/es" --resume auto >"$tmp/es2.out" 2>&1
check "the patience survives a resume (stops at step 20, not 25): $(grep early "$tmp/es2.out")" \
    grep -q '^early stop at step 20:' "$tmp/es2.out"

# --- an evaluation at an epoch's last step is not repeated as the epoch-end
# one (it would count against the patience twice): 640 pairs less 40 held out
# = 10 batches per epoch; evaluations at steps 10, 20, 30 -> stop at 30
"$SEQPAR" train --num-examples 640 --valid 40 --lr 1e-12 --eval-every 10 --early-stop 2 --epochs 10 \
    --threads 1 --log-every 100000 >"$tmp/es3.out" 2>&1
check "--eval-every on epoch ends: one evaluation each ($(grep -c 'valid loss' "$tmp/es3.out") lines), early stop at step 30" \
    bash -c "grep -q '^early stop at step 30:' '$tmp/es3.out' && [ \$(grep -c 'valid loss' '$tmp/es3.out') = 3 ]"

# --- LM: validation perplexity on the held-out last tokens, sharding-independent
lm=(--task lm --dataset timemachine --num-examples 30000 --embed 0 --hidden 64 --layers 1
    --sampler sequential --batch 16 --steps 35 --lr 0.01 --threads 1 --log-every 100000)
"$SEQPAR" train "${lm[@]}" --valid 3000 --max-steps 60 --checkpoint-dir "$tmp/lm" >"$tmp/lm.out" 2>&1
check "LM validation perplexity per epoch: $(grep -m1 'valid' "$tmp/lm.out")" \
    grep -Eq '^epoch 1 valid loss [0-9.]+ ppl [0-9.]+$' "$tmp/lm.out"
check "LM best.h5 (lowest perplexity) is written" "$SEQPAR" ckpt verify "$tmp/lm/best.h5"
for np in 1 3; do
    cp -r "$tmp/lm" "$tmp/lm$np"
    "${mpi[@]}" -np $np "$SEQPAR" train "${lm[@]}" --valid 3000 --max-steps 61 --eval-every 61 \
        --checkpoint-dir "$tmp/lm$np" --resume "$tmp/lm$np/ckpt-00000060.h5" >"$tmp/lm$np.out" 2>&1
done
l1=$(grep '^step 61 valid' "$tmp/lm1.out")
check "LM validation at 1 and 3 ranks agree: $l1" test -n "$l1" -a "$(grep '^step 61 valid' "$tmp/lm3.out")" = "$l1"
"$SEQPAR" train "${lm[@]}" --batch 8 --valid 600 --eval-every 2 --max-steps 4 >"$tmp/lm8.out" 2>&1
check "LM validation with --batch 8 (8 streams): $(grep -m1 'valid' "$tmp/lm8.out")" \
    grep -Eq '^step 2 valid loss [0-9.]+ ppl [0-9.]+$' "$tmp/lm8.out"
expect_error "LM --valid too small is refused" '--valid 100' "$SEQPAR" train "${lm[@]}" --valid 100 --max-steps 1
expect_error "--early-stop without --valid" '--early-stop' "$SEQPAR" train --early-stop 3 --max-steps 1
expect_error "--eval-beam beyond the rows of a rank" '--eval-beam' "$SEQPAR" train --valid 10 --batch 8 --eval-beam 9 --max-steps 1
finish
