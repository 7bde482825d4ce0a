#!/usr/bin/env bash
# End to end, the Bahdanau attention decoder (--attention additive):
#  - training on fra-eng learns (the epoch-end loss falls) and the
#    checkpoint's config says additive;
#  - a resumed run reaches the uninterrupted run's checkpoint bit for bit;
#  - 2 ranks (overlapped reduction off and on) reach 1 process's parameters
#    within 1e-4 (dropout on, LSTM, bidirectional encoder), and 2 workers in
#    one process 2 ranks' very bits;
#  - translate, greedy and beam search; --attention-weights: one line per
#    sentence, its source tokens up to <eos>, its output (with <eos> when
#    produced), one row per output token, each summing to 1 over the source
#    tokens (so no weight on padding); a model without attention and a
#    resume with another --attention are refused in one line;
#  - a checkpoint without "attention" in its config (as written before the
#    option) verifies, translates and resumes as the attention-free model.
# Usage: tests/e2e/attention.sh SEQPAR (SEQPAR_DATA: fra-eng/fra.txt).
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
base=(--dataset fra-eng --num-examples 1000 --attention additive --embed 32 --hidden 32
    --layers 2 --batch 64 --steps 10 --threads 1 --dropout 0.1 --seed 3)

# learning: 8 epochs (128 steps), a progress line per epoch
"$SEQPAR" train "${base[@]}" --epochs 8 --log-every 16 --checkpoint-dir "$tmp/a" \
    >"$tmp/a.out" 2>&1 || bad "training failed: $(tail -3 "$tmp/a.out")"
check "the run says what it trains: $(grep -m1 '^seq2seq' "$tmp/a.out")" \
    grep -q '^seq2seq+attention gru: 2 layers' "$tmp/a.out"
first=$(grep -m1 -o '^step 16/128 epoch 1 loss [0-9.]*' "$tmp/a.out" | awk '{print $6}')
last=$(grep -o '^step 128/128 epoch 8 loss [0-9.]*' "$tmp/a.out" | awk '{print $6}')
check "training learns: epoch 1 loss $first, epoch 8 loss $last" \
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(a != "" && b != "" && b < 0.8 * a) }'
ck="$tmp/a/ckpt-00000128.h5"
check "seqpar ckpt info: $("$SEQPAR" ckpt info "$ck" | grep '^model')" \
    sh -c "'$SEQPAR' ckpt info '$ck' | grep -q '^model .*, attention additive,'"

# resume: 64 steps, then on to 128 = 128 at once
"$SEQPAR" train "${base[@]}" --epochs 8 --max-steps 64 --log-every 1000 \
    --checkpoint-dir "$tmp/r" >"$tmp/r1.out" 2>&1 || bad "first half failed: $(tail -3 "$tmp/r1.out")"
"$SEQPAR" train "${base[@]}" --epochs 8 --log-every 1000 --checkpoint-dir "$tmp/r" \
    --resume auto >"$tmp/r2.out" 2>&1 || bad "resume failed: $(tail -3 "$tmp/r2.out")"
if "$SEQPAR" ckpt diff "$ck" "$tmp/r/ckpt-00000128.h5" --tolerance 0 >"$tmp/r.diff" 2>&1; then
    ok "a resumed run's step-128 checkpoint equals the uninterrupted run's bit for bit: $(head -1 "$tmp/r.diff" | sed 's/  */ /g')"
else
    bad "the resumed run differs: $(cat "$tmp/r.diff")"
fi
expect_error "a resume with another --attention is refused" \
    "--attention is additive in the checkpoint but none in this run" \
    "$SEQPAR" train "${base[@]}" --attention none --epochs 9 --checkpoint-dir "$tmp/r" --resume auto

# --label-smoothing reaches the attention decoder's loss: its parameters
# after 5 steps differ from plain cross-entropy's (same seed, same batches)
ls=(--dataset fra-eng --num-examples 300 --attention additive --embed 16 --hidden 16 --batch 32
    --steps 10 --threads 1 --max-steps 5 --log-every 1000)
"$SEQPAR" train "${ls[@]}" --checkpoint-dir "$tmp/ls0" >"$tmp/ls0.out" 2>&1 &&
    "$SEQPAR" train "${ls[@]}" --label-smoothing 0.2 --checkpoint-dir "$tmp/ls2" >"$tmp/ls2.out" 2>&1 ||
    bad "label smoothing runs failed: $(tail -3 "$tmp/ls0.out" "$tmp/ls2.out")"
if "$SEQPAR" ckpt diff "$tmp/ls0/ckpt-00000005.h5" "$tmp/ls2/ckpt-00000005.h5" --tolerance 1e-6 \
    >"$tmp/ls.diff" 2>&1; then
    bad "--label-smoothing 0.2 left the attention model's training unchanged: $(head -1 "$tmp/ls.diff")"
elif grep -q DIFFERENT "$tmp/ls.diff"; then
    ok "--label-smoothing changes the attention model's training ($(head -1 "$tmp/ls.diff" | sed 's/  */ /g'))"
else
    bad "ckpt diff failed: $(cat "$tmp/ls.diff")"
fi

# 2 ranks = 1 process (LSTM, bidirectional encoder, dropout)
par=(--dataset fra-eng --num-examples 600 --attention additive --cell lstm --bidirectional
    --embed 16 --hidden 16 --layers 2 --dropout 0.2 --batch 32 --steps 10 --threads 1
    --max-steps 30 --log-every 1000)
"$SEQPAR" train "${par[@]}" --checkpoint-dir "$tmp/p1" >"$tmp/p1.out" 2>&1 ||
    bad "1 process failed: $(tail -3 "$tmp/p1.out")"
"${mpi[@]}" -np 2 "$SEQPAR" train "${par[@]}" --checkpoint-dir "$tmp/p2" >"$tmp/p2.out" 2>&1 ||
    bad "2 ranks failed: $(tail -3 "$tmp/p2.out")"
"${mpi[@]}" -np 2 "$SEQPAR" train "${par[@]}" --overlap on --bucket-kb 8 \
    --checkpoint-dir "$tmp/p2o" >"$tmp/p2o.out" 2>&1 ||
    bad "2 ranks, overlap on, failed: $(tail -3 "$tmp/p2o.out")"
"$SEQPAR" train "${par[@]}" --workers 2 --checkpoint-dir "$tmp/w2" >"$tmp/w2.out" 2>&1 ||
    bad "2 workers failed: $(tail -3 "$tmp/w2.out")"
for d in p2 p2o; do
    if "$SEQPAR" ckpt diff "$tmp/p1/ckpt-00000030.h5" "$tmp/$d/ckpt-00000030.h5" --tolerance 1e-4 \
        >"$tmp/$d.diff" 2>&1; then
        ok "2 ranks ($d) = 1 process after 30 steps: $(head -1 "$tmp/$d.diff" | sed 's/  */ /g')"
    else
        bad "2 ranks ($d) differ from 1 process beyond 1e-4: $(cat "$tmp/$d.diff")"
    fi
done
check "1 process x 2 workers holds 2 ranks' parameters bit for bit" \
    "$SEQPAR" ckpt diff "$tmp/p2/ckpt-00000030.h5" "$tmp/w2/ckpt-00000030.h5" --tolerance 0

# translate: greedy, beam, the weights
printf "I'm home.\nGo now.\nWe are very happy today , my friend .\nHe ran.\n" >"$tmp/in.txt"
for k in 1 4; do
    "$SEQPAR" translate --checkpoint "$ck" --beam $k --attention-weights "$tmp/w$k.jsonl" \
        <"$tmp/in.txt" >"$tmp/t$k.out" 2>"$tmp/t$k.err"
    rc=$?
    check "translate --beam $k: exit $rc, $(wc -l <"$tmp/t$k.out") lines ($(head -1 "$tmp/t$k.out"))" \
        test "$rc" = 0 -a "$(wc -l <"$tmp/t$k.out")" = 4
    if "$PY" - "$tmp/w$k.jsonl" "$tmp/t$k.out" "$tmp/in.txt" >"$tmp/w$k.check" 2>&1 <<'EOF'; then
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
outs = open(sys.argv[2]).read().split("\n")[:-1]
assert len(lines) == 4, "%d lines" % len(lines)
rows = 0
for i, (o, out) in enumerate(zip(lines, outs)):
    assert o["index"] == i, o["index"]
    assert o["source"][-1] == "<eos>", o["source"]
    words = [w for w in o["output"] if w != "<eos>"]
    assert " ".join(words) == out, (words, out)
    assert len(o["weights"]) == len(o["output"]), "rows"
    for r in o["weights"]:
        assert len(r) == len(o["source"]), "columns"
        assert all(x >= 0 for x in r) and abs(sum(r) - 1) < 1e-5, r
        rows += 1
# the long sentence fills all num_steps = 10 source positions, its <eos> last
print("%d sentences, %d rows, each summing to 1 over its %s source tokens"
      % (len(lines), rows, "/".join(str(len(o["source"])) for o in lines)))
EOF
        ok "--attention-weights (beam $k): $(cat "$tmp/w$k.check")"
    else
        bad "--attention-weights (beam $k): $(tail -3 "$tmp/w$k.check")"
    fi
done
# the weights a real translation wrote, drawn by seqpar plot --heatmap and read
# back through the SVG (tests/e2e/svg_check.py): the book's heat map
sed -n 1p "$tmp/w1.jsonl" >"$tmp/w1-first.json"
if "$SEQPAR" plot --heatmap "$tmp/w1.jsonl" --out "$tmp/w1.svg" >"$tmp/w1.plot" 2>&1 &&
    python3 "$(dirname "$0")/svg_check.py" heatmap "$tmp/w1.svg" "$tmp/w1-first.json" >"$tmp/w1.svgcheck" 2>&1; then
    ok "translate --attention-weights -> seqpar plot --heatmap: $(cat "$tmp/w1.svgcheck")"
else
    bad "heat map of a real translation: $(cat "$tmp/w1.plot" "$tmp/w1.svgcheck" 2>/dev/null | tail -3)"
fi
"$SEQPAR" train --dataset fra-eng --num-examples 300 --epochs 1 --threads 1 \
    --checkpoint-dir "$tmp/n" >"$tmp/n.out" 2>&1 || bad "a model without attention: $(tail -2 "$tmp/n.out")"
nck=$(ls "$tmp"/n/ckpt-*.h5 | tail -1)
expect_error "--attention-weights on a model without attention" "has no attention" \
    "$SEQPAR" translate --checkpoint "$nck" --attention-weights "$tmp/none.jsonl"
# a checkpoint written before --attention existed: no "attention" in /config
# (removed here, meta_sha256 recomputed): it verifies, translates as before
# and resumes as the attention-free model
cp "$nck" "$tmp/old.h5"
if "$PY" - "$tmp/old.h5" "$(dirname "$0")/../../checkpoints" >"$tmp/old.out" 2>&1 <<'EOF'; then
import json, sys
import h5py
import numpy as np
sys.path.insert(0, sys.argv[2])
from seqpar_torch import meta_sha256
with h5py.File(sys.argv[1], "r+") as f:
    cfg = json.loads(f["config"][()].decode())
    del cfg["attention"]
    text = json.dumps(cfg, separators=(",", ":")).encode() + b"\0"
    del f["config"]
    tid = h5py.h5t.C_S1.copy()  # seqpar's type: fixed-length UTF-8, NUL-terminated
    tid.set_size(len(text))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    ds = h5py.h5d.create(f.id, b"config", tid, h5py.h5s.create(h5py.h5s.SCALAR))
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(text, dtype="S%d" % len(text)), mtype=tid)
    f.attrs.modify("meta_sha256", np.bytes_(meta_sha256(f).encode()))
EOF
    check "an old checkpoint (no \"attention\" in /config) verifies" "$SEQPAR" ckpt verify "$tmp/old.h5"
    "$SEQPAR" translate --checkpoint "$nck" <"$tmp/in.txt" >"$tmp/new.tr" 2>&1
    "$SEQPAR" translate --checkpoint "$tmp/old.h5" <"$tmp/in.txt" >"$tmp/old.tr" 2>&1
    check "... translates as it did: $(head -1 "$tmp/old.tr")" cmp -s "$tmp/new.tr" "$tmp/old.tr"
    "$SEQPAR" train --dataset fra-eng --num-examples 300 --epochs 2 --threads 1 \
        --checkpoint-dir "$tmp/o" --resume "$tmp/old.h5" >"$tmp/o.out" 2>&1
    check "... and resumes: $(tail -1 "$tmp/o.out")" grep -q '^done step=10 ' "$tmp/o.out"
else
    bad "cannot write an old-format checkpoint: $(tail -3 "$tmp/old.out")"
fi
expect_error "--attention additive with --embed 0" "--attention additive needs embeddings" \
    "$SEQPAR" train --dataset fra-eng --attention additive --embed 0
finish
