#!/bin/bash
# seqpar plot: curves from hand-made logs whose figures are known (the
# monitor's JSON lines with two ranks, a step logged again after a resume
# and a line cut short; a training log with a field appended to its step
# lines), read back from the SVG through its own axes (svg_check.py); a real
# run's log; attention heat maps; bad input of every kind in one line.
# Usage: plot.sh SEQPAR
set -u
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
PY=${SEQPAR_PYTHON:-python3}
chk="$(dirname "$0")/svg_check.py"

# ------------------------------------------------- a monitor log, by hand
# run a: 2 ranks, 10 batches an epoch; step 20 logged twice (the second
# time after a resume: it replaces the first); run b: 1 rank, no start event
m=$tmp/monitor.jsonl
cat >"$m" <<'EOF'
{"v":1,"run":"a","kind":"event","rank":0,"world":2,"step":0,"epoch":1,"time":1,"event":"start","detail":"seq2seq gru: 2 layers; numbers 640 pairs, vocab 34 -> 103; 10 batches/epoch of 64, 30 steps; 2 ranks; fresh start"}
{"v":1,"run":"a","kind":"train","rank":0,"world":2,"step":10,"epoch":1,"time":2,"loss_sum":300,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"a","kind":"train","rank":1,"world":2,"step":10,"epoch":1,"time":2,"loss_sum":100,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"b","kind":"train","rank":0,"world":1,"step":10,"epoch":1,"time":2,"loss_sum":250,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"a","kind":"eval","rank":0,"world":2,"step":10,"epoch":1,"time":3,"val_loss":1.6,"val_ppl":5.0,"bleu":10.0,"samples":[]}
{"v":1,"run":"a","kind":"train","rank":1,"world":2,"step":20,"epoch":2,"time":4,"loss_sum":150,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"a","kind":"train","rank":0,"world":2,"step":20,"epoch":2,"time":4,"loss_sum":150,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"b","kind":"train","rank":0,"world":1,"step":20,"epoch":2,"time":4,"loss_sum":200,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"a","kind":"event","rank":0,"world":2,"step":20,"epoch":2,"time":5,"event":"resume","detail":"from step 10"}
{"v":1,"run":"a","kind":"train","rank":0,"world":2,"step":20,"epoch":2,"time":6,"loss_sum":120,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"a","kind":"train","rank":1,"world":2,"step":20,"epoch":2,"time":6,"loss_sum":80,"tokens":150,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}
{"v":1,"run":"a","kind":"eval","rank":0,"world":2,"step":20,"epoch":2,"time":7,"val_loss":1.4,"val_ppl":4.0,"bleu":20.0,"samples":[]}
{"v":1,"run":"a","kind":"train","rank":0,"world":2,"step":30,"epoch":3,"time":8,"loss_sum":80,"tokens":100,"grad_norm":1,"lr":0.005,"tok_
EOF
printf '%s\n' '{"v":1,"run":"a","kind":"train","rank":1,"world":2,"step":30,"epoch":3,"time":8,"loss_sum":80,"tokens":100,"grad_norm":1,"lr":0.005,"tok_per_s":1,"nan_skips":0}' >>"$m"
# ... and a training log (seqpar train's stdout), 5 batches an epoch; its
# step lines carry a field more at the end (as a later version may add)
t="$tmp/x&y.log"
cat >"$t" <<'EOF'
seqpar 0.1.0: 1 rank x 2 OpenBLAS threads (2 cores, 1 rank on this node; kernel SkylakeX)
seq2seq gru: 2 layers, embed 32, hidden 32, 36199 parameters; numbers 320 pairs, vocab 34 -> 103; 5 batches/epoch of 64, 10 steps
step 5/10 epoch 1 loss 3.0000 ppl 20.086 tok/s 1000 ETA 1s lr 0.005
epoch 1 valid loss 2.5000 ppl 12.182 bleu 7.50
step 10/10 epoch 2 loss 2.2000 ppl 9.025 tok/s 1000 ETA 0s lr 0.005
epoch 2 valid loss 2.0000 ppl 7.389 bleu 12.00
done step=10 epoch=2 loss=2.6000 ppl=13.4637 tokens_per_s=1000
EOF
# the expected points, worked out by hand: a's step 20 is (120+80)/(100+150)
cat >"$tmp/step.json" <<'EOF'
{"runs": ["a", "b", "x&y"],
 "panels": {
  "train-loss": {"a": [[10, 2.0], [20, 0.8], [30, 0.8]], "b": [[10, 2.5], [20, 2.0]], "x&y": [[5, 3.0], [10, 2.2]]},
  "train-ppl": {"a": [[10, 7.38905609893065], [20, 2.225540928492468], [30, 2.225540928492468]],
                "b": [[10, 12.182493960703473], [20, 7.38905609893065]],
                "x&y": [[5, 20.085536923187668], [10, 9.025013499434122]]},
  "valid-ppl": {"a": [[10, 5.0], [20, 4.0]], "x&y": [[5, 12.182], [10, 7.389]]},
  "bleu": {"a": [[10, 10.0], [20, 20.0]], "x&y": [[5, 7.5], [10, 12.0]]}}}
EOF
"$SEQPAR" plot "$m" "$t" --out "$tmp/step.svg" >"$tmp/out" 2>"$tmp/err"
check "a monitor log and a training log: exit 0, one note for the line cut short ($(cat "$tmp/err"))" \
    bash -c "grep -q '^plot of 3 runs written to ' '$tmp/out' && [ \$(grep -c '' '$tmp/err') = 1 ] && grep -q 'monitor.jsonl: 1 line skipped' '$tmp/err'"
check "... every point read back through the axes: steps (ranks summed, the resumed step replaced)" \
    "$PY" "$chk" curves "$tmp/step.svg" "$tmp/step.json"
# against epochs: a's steps over its 10 batches an epoch, b's own epoch
# numbers (no start event), the training log's 5 batches an epoch
"$PY" - "$tmp/step.json" "$tmp/epoch.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
per = {"a": 10, "x&y": 5}
for name, runs in e["panels"].items():
    for run, pts in runs.items():
        for i, p in enumerate(pts):
            p[0] = p[0] / per[run] if run in per else [1, 2][i]
json.dump(e, open(sys.argv[2], "w"))
EOF
"$SEQPAR" plot "$m" "$t" --x epoch --title 'runs <a> & "b"' --out "$tmp/epoch.svg" >/dev/null 2>&1
check "... and against epochs" "$PY" "$chk" curves "$tmp/epoch.svg" "$tmp/epoch.json"
check "... the title escaped and read back" \
    "$PY" -c "import xml.etree.ElementTree as E,sys; r=E.parse('$tmp/epoch.svg').getroot(); sys.exit(not any(t.text=='runs <a> & \"b\"' for t in r.iter('{http://www.w3.org/2000/svg}text')))"

# one panel only: an LM's log has no BLEU; a log without validation has
# only the training panels
grep -v valid "$t" >"$tmp/novalid.log"
cat >"$tmp/novalid.json" <<'EOF'
{"runs": ["novalid"], "panels": {"train-loss": {"novalid": [[5, 3.0], [10, 2.2]]},
  "train-ppl": {"novalid": [[5, 20.085536923187668], [10, 9.025013499434122]]}}}
EOF
"$SEQPAR" plot "$tmp/novalid.log" --out "$tmp/novalid.svg" >/dev/null 2>&1
check "a log without validation: the training panels only" \
    "$PY" "$chk" curves "$tmp/novalid.svg" "$tmp/novalid.json"

# a real run's output, through a pipe
SEQPAR_DATA=${SEQPAR_DATA:-} OPENBLAS_NUM_THREADS=1 "$SEQPAR" train --threads 1 --num-examples 2000 \
    --epochs 2 --valid 100 --log-every 5 >"$tmp/real.log" 2>&1
"$SEQPAR" plot <(cat "$tmp/real.log") --out "$tmp/real.svg" >/dev/null 2>"$tmp/err"
"$PY" - "$tmp/real.log" "$tmp/real.json" <<'EOF'
import json, math, re, sys
tr, va, bl = [], [], []
per = int(re.search(r"(\d+) batches/epoch", open(sys.argv[1]).read())[1])
for l in open(sys.argv[1]):
    m = re.match(r"step (\d+)/\d+ epoch \d+ loss ([\d.]+)", l)
    if m: tr.append([int(m[1]), float(m[2])])
    m = re.match(r"epoch (\d+) valid loss [\d.]+ ppl ([\d.]+) bleu ([\d.]+)", l)
    if m: va.append([int(m[1]) * per, float(m[2])]); bl.append([int(m[1]) * per, float(m[3])])
json.dump({"runs": ["real"], "panels": {
    "train-loss": {"real": tr}, "train-ppl": {"real": [[s, math.exp(v)] for s, v in tr]},
    "valid-ppl": {"real": va}, "bleu": {"real": bl}}}, open(sys.argv[2], "w"))
EOF
# a pipe's name is /dev/fd/N: the run's name is what follows the last '/'
sed -i "s/\"real\"/\"$(sed -n 's/.*data-run="\([^"]*\)".*/\1/p' "$tmp/real.svg" | head -1)\"/g" "$tmp/real.json"
check "a real training log, read through a pipe" "$PY" "$chk" curves "$tmp/real.svg" "$tmp/real.json"

# token batches (--batch-tokens) announce "N batches in this epoch": against
# epochs, the steps of an epoch spread over it (not all at its integer)
"$SEQPAR" train --dataset fra-eng --num-examples 3000 --batch-tokens 400 --epochs 2 --log-every 10 \
    --progress lines >"$tmp/bt.log" 2>&1
"$SEQPAR" plot --x epoch --out "$tmp/bt.svg" "$tmp/bt.log" >/dev/null 2>&1
check "token batches against epochs: every training point at its own x" "$PY" - "$tmp/bt.svg" <<'EOF'
import sys, xml.etree.ElementTree as E
xs = []
for p in E.parse(sys.argv[1]).iter("{http://www.w3.org/2000/svg}polyline"):
    xs = [float(q.split(",")[0]) for q in p.get("points").split()]
    break
sys.exit(0 if len(xs) > 5 and len(set(xs)) == len(xs) else 1)
EOF

# ------------------------------------------------------------- heat maps
w=$tmp/weights.jsonl
cat >"$w" <<'EOF'
{"index": 0, "source": ["go", ".", "<eos>"], "output": ["va", "!", "<eos>"], "weights": [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.25, 0.75]]}
{"index": 7, "source": ["a&b", "<i>", "\"q\"", "it's", "<eos>"], "output": ["x<y", "<eos>"], "weights": [[0.5, 0.2, 0.1, 0.1, 0.1], [0.05, 0.05, 0.1, 0.2, 0.6]]}
EOF
"$SEQPAR" plot --heatmap "$w" --sentence 7 --out "$tmp/h7.svg" >"$tmp/out" 2>&1
sed -n 2p "$w" >"$tmp/h7.json"
check "heat map of sentence 7: tokens escaped and read back, every weight in its cell" \
    bash -c "grep -q 'heat map of sentence 7 (2 x 5)' '$tmp/out' && '$PY' '$chk' heatmap '$tmp/h7.svg' '$tmp/h7.json'"
"$SEQPAR" plot --heatmap "$w" --out "$tmp/h0.svg" >/dev/null 2>&1
sed -n 1p "$w" >"$tmp/h0.json"
check "... without --sentence: the file's first" "$PY" "$chk" heatmap "$tmp/h0.svg" "$tmp/h0.json"

# ------------------------------------------------------------ bad input
: >"$tmp/empty.log"
head -c 3000 /dev/urandom >"$tmp/garbage.bin"
printf '{"v":1,"run":"a","kind":"tr\n{not json\n' >"$tmp/garbled.jsonl"
expect_error "an empty log" "empty.log: no training figures" "$SEQPAR" plot "$tmp/empty.log" --out "$tmp/o.svg"
expect_error "random bytes" "garbage.bin: no training figures" "$SEQPAR" plot "$tmp/garbage.bin" --out "$tmp/o.svg"
expect_error "JSON lines all cut short" "garbled.jsonl: no training figures" "$SEQPAR" plot "$tmp/garbled.jsonl" --out "$tmp/o.svg"
expect_error "a missing log" "nope.log: No such file" "$SEQPAR" plot "$tmp/nope.log" --out "$tmp/o.svg"
expect_error "a directory" "seqpar plot: .*$tmp" "$SEQPAR" plot "$tmp" --out "$tmp/o.svg"
expect_error "no --out" "--out" "$SEQPAR" plot "$m"
expect_error "no log" "no LOG file" "$SEQPAR" plot --out "$tmp/o.svg"
expect_error "--x bad" "--x: expected one of step\|epoch" "$SEQPAR" plot "$m" --x time --out "$tmp/o.svg"
expect_error "--sentence without --heatmap" "--sentence applies to --heatmap" "$SEQPAR" plot "$m" --sentence 1 --out "$tmp/o.svg"
expect_error "--heatmap and a log" "no LOG files with it" "$SEQPAR" plot --heatmap "$w" "$m" --out "$tmp/o.svg"
expect_error "a sentence not in the file" "no sentence with index 3 \(2 sentences, index 0 to 7\)" \
    "$SEQPAR" plot --heatmap "$w" --sentence 3 --out "$tmp/o.svg"
printf '{"index": 0, "source": ["a", "<eos>"], "output": ["b"], "weights": [[0.5, 0.5], [1, 0]]}\n' >"$tmp/rows.jsonl"
expect_error "weights with a row too many" "rows.jsonl, line 1: \"weights\" must have one row per output token \(1\)" \
    "$SEQPAR" plot --heatmap "$tmp/rows.jsonl" --out "$tmp/o.svg"
printf '{"index": 0, "source": ["a", "<eos>"], "output": ["b"], "weights": [[1.5, "x"]]}\n' >"$tmp/val.jsonl"
expect_error "a weight out of [0, 1]" "line 1: \"weights\"\[0\]\[0\] must be a number in \[0, 1\]" \
    "$SEQPAR" plot --heatmap "$tmp/val.jsonl" --out "$tmp/o.svg"
printf '{"index": 0, "source": [], "output": ["b"], "weights": [[]]}\n' >"$tmp/nosrc.jsonl"
expect_error "no source tokens" "\"source\" must be a non-empty array of strings" \
    "$SEQPAR" plot --heatmap "$tmp/nosrc.jsonl" --out "$tmp/o.svg"
expect_error "a weights file that is not JSON" "garbage.bin, line [0-9]+: not a JSON object with a whole-number" \
    "$SEQPAR" plot --heatmap "$tmp/garbage.bin" --out "$tmp/o.svg"
printf '{"index": 0, "source": ["a", 3, "<eos>"], "output": ["b"], "weights": [[1, 0, 0]]}\n' >"$tmp/mixed.jsonl"
expect_error "a source token that is not a string" "mixed.jsonl, line 1: \"source\" must be a non-empty array of strings" \
    "$SEQPAR" plot --heatmap "$tmp/mixed.jsonl" --out "$tmp/o.svg"
printf '{"index": 1e300, "source": ["a"], "output": ["b"], "weights": [[1]]}\n' >"$tmp/idx.jsonl"
expect_error "an index out of range" "idx.jsonl, line 1: not a JSON object with a whole-number \"index\"" \
    "$SEQPAR" plot --heatmap "$tmp/idx.jsonl" --out "$tmp/o.svg"
# numbers out of any range in a monitor log: those messages are left out
sed -n 2,3p "$m" >"$tmp/huge.jsonl"
printf '%s\n' '{"v":1,"run":"a","kind":"train","rank":0,"world":1e300,"step":1e300,"epoch":1,"time":2,"loss_sum":1e308,"tokens":1e-300}' \
    '{"v":1,"run":"a","kind":"eval","rank":0,"world":2,"step":-5,"epoch":1e300,"time":3,"val_ppl":5.0,"bleu":1}' >>"$tmp/huge.jsonl"
"$SEQPAR" plot "$tmp/huge.jsonl" --x epoch --out "$tmp/huge.svg" >/dev/null 2>&1
printf '{"runs": ["a"], "panels": {"train-loss": {"a": [[1, 2.0]]}, "train-ppl": {"a": [[1, 7.38905609893065]]}}}\n' >"$tmp/huge.json"
check "numbers out of range in a monitor log: those messages left out" \
    "$PY" "$chk" curves "$tmp/huge.svg" "$tmp/huge.json"
rc=0
"$SEQPAR" plot "$t" --out /nonexistent-dir/o.svg >/dev/null 2>"$tmp/err" || rc=$?
check "an --out that cannot be written: exit 1, one line ($(cat "$tmp/err"))" \
    bash -c "[ $rc = 1 ] && [ \$(grep -c '' '$tmp/err') = 1 ] && grep -q 'o.svg: No such file' '$tmp/err'"
finish
