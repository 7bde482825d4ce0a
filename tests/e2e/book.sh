#!/usr/bin/env bash
# The book's results, single process (Dive into Deep Learning, recurrent
# chapters), as a test:
#  - seq2seq on the first 600 fra-eng pairs with the book's settings for 300
#    epochs: per-token cross-entropy printed beside the book's figure, and the
#    book's four test sentences translated greedily with their BLEU (k = 2);
#  - the character LM on timemachine (GRU, hidden 256, batch 32, num_steps
#    35, SGD lr 1, clip 1), shortened here to BOOK_LM_EPOCHS epochs (the full
#    500-epoch figures are in the issue notes), with both samplers and the
#    truncation remedies, and `seqpar predict --prefix "time traveller"`.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
lm_epochs=${BOOK_LM_EPOCHS:-5}
field() { sed -n "s/^done .*$1=\([0-9.]*\).*/\1/p" "$2"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# --- translation, the book's settings
"$SEQPAR" train --dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 \
    --cell gru --dropout 0.1 --batch 64 --steps 10 --optimizer adam --lr 0.005 --clip 1 \
    --epochs 300 --log-every 1000 --threads 1 --checkpoint-dir "$tmp/fra" --keep 1 >"$tmp/fra.log"
check "fra-eng training exits 0" test $? = 0
loss=$(field loss "$tmp/fra.log")
# One run's final loss depends on the seed and on float rounding (BLAS kernel,
# GEMM shapes): seeds 1-4 give 0.187-0.223. The book's figure is compared
# with the median of three seeds.
losses=$loss
for sd in 2 3; do
    "$SEQPAR" train --dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 \
        --cell gru --dropout 0.1 --batch 64 --steps 10 --optimizer adam --lr 0.005 --clip 1 \
        --epochs 300 --log-every 1000 --threads 1 --seed $sd --checkpoint-dir "$tmp/fra$sd" \
        --keep 1 >"$tmp/fra$sd.log"
    losses="$losses $(field loss "$tmp/fra$sd.log")"
done
median=$(printf '%s\n' $losses | sort -g | sed -n 2p)
echo "     per-token cross-entropy after 300 epochs, seeds 1-3: $losses; median $median (the book prints 0.019 = per token and per num_steps, i.e. about 0.19 per token)"
check "fra-eng per-token cross-entropy, median of 3 seeds $median <= 0.21" le "$median" 0.21
# The book's four sentences, greedily, with the model of each seed: like the
# loss, one seed's translations move with float rounding (seed 1 went from
# passing 0.6 to 0.50 when only the order of a sum changed), so the median of
# the three seeds' mean BLEU is checked.
printf "go .\ni lost .\nhe's calm .\ni'm home .\n" >"$tmp/en.txt"
printf "va !\nj'ai perdu .\nil est calme .\nje suis chez moi .\n" >"$tmp/fr.txt"
means=
for sd in 1 2 3; do
    dir=$tmp/fra$sd
    [ $sd = 1 ] && dir=$tmp/fra
    "$SEQPAR" translate --checkpoint "$(ls "$dir"/ckpt-*.h5)" <"$tmp/en.txt" >"$tmp/hyp$sd.txt"
    "$SEQPAR" bleu --ref "$tmp/fr.txt" --hyp "$tmp/hyp$sd.txt" --d2l --max-n 2 >"$tmp/bleu$sd.txt"
    echo "     seed $sd:"
    paste "$tmp/en.txt" "$tmp/hyp$sd.txt" <(head -n 4 "$tmp/bleu$sd.txt") |
        sed 's/^/       /; s/\t/ => /; s/\t/, bleu /'
    means="$means $(sed -n 's/^mean \([0-9.]*\).*/\1/p' "$tmp/bleu$sd.txt")"
done
mean=$(printf '%s\n' $means | sort -g | sed -n 2p)
check "book sentences: mean BLEU of seeds 1-3:$means; median $mean >= 0.6" le 0.6 "$mean"
go_ok=0
for sd in 1 2 3; do [ "$(head -n 1 "$tmp/hyp$sd.txt")" = "va !" ] && go_ok=$((go_ok + 1)); done
check "'go .' translates to 'va !' (seeds 1-3: $go_ok of 3, at least 2)" test $go_ok -ge 2

# --- character LM, both samplers
lm=(--task lm --dataset timemachine --tokens char --embed 0 --hidden 256 --layers 1 --cell gru
    --dropout 0 --batch 32 --steps 35 --optimizer sgd --lr 1 --clip 1 --threads 1 --log-every 100000)
"$SEQPAR" train "${lm[@]}" --sampler sequential --epochs "$lm_epochs" --checkpoint-dir "$tmp/lm" --keep 1 >"$tmp/lm.log"
check "LM (sequential) exits 0" test $? = 0
ppl=$(field ppl "$tmp/lm.log")
echo "     char LM perplexity after $lm_epochs epochs (sequential): $ppl"
check "LM perplexity $ppl < 11 after $lm_epochs epochs (unigram: about 17)" le "$ppl" 11
"$SEQPAR" train "${lm[@]}" --sampler random --epochs "$lm_epochs" >"$tmp/lmr.log"
pplr=$(field ppl "$tmp/lmr.log")
echo "     char LM perplexity after $lm_epochs epochs (random): $pplr"
check "LM perplexity (random sampler) $pplr < 11" le "$pplr" 11
for b in 5 random:8; do
    "$SEQPAR" train "${lm[@]}" --sampler sequential --epochs 2 --bptt "$b" >"$tmp/bptt.log"
    p=$(field ppl "$tmp/bptt.log")
    check "LM with --bptt $b trains (ppl $p < 20)" le "$p" 20
done
"$SEQPAR" predict --checkpoint "$(ls "$tmp"/lm/ckpt-*.h5)" --prefix "time traveller" --len 40 >"$tmp/pred.txt"
echo "     predict: $(cat "$tmp/pred.txt")"
check "predict continues the prefix with 40 characters" \
    test "$(wc -m <"$tmp/pred.txt")" = $((14 + 40 + 1))
"$SEQPAR" predict --checkpoint "$(ls "$tmp"/lm/ckpt-*.h5)" --prefix "the" --len 40 --temperature 0.8 --seed 3 >"$tmp/p1.txt"
"$SEQPAR" predict --checkpoint "$(ls "$tmp"/lm/ckpt-*.h5)" --prefix "the" --len 40 --temperature 0.8 --seed 3 >"$tmp/p2.txt"
check "sampling is reproducible with --seed" cmp -s "$tmp/p1.txt" "$tmp/p2.txt"
expect_error "predict: a prefix that is not UTF-8 is refused (it was echoed)" '--prefix: invalid UTF-8 at byte 1' \
    "$SEQPAR" predict --checkpoint "$(ls "$tmp"/lm/ckpt-*.h5)" --prefix "$(printf 'a\377b')"
finish
