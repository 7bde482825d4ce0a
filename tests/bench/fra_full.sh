#!/bin/bash
# The full-data benchmark (issue 25 item 5), run by hand, unattended:
# seqpar's attention GRU on 2 ranks, seqpar's attention-free GRU, and the
# PyTorch reference of both (tests/bench/fra_full_torch.py), one after the
# other, each for a budget of training time, on all of fra-eng but a fixed
# held-out test set (tests/bench/fra_full_split.py). At every evaluation
# (every EVAL_MIN minutes of a run's training time, and at its end): test
# BLEU of greedy and beam-4 translations, scored by `seqpar bleu`, as a row
# of $OUT/fra_full.tsv (rebuilt from the runs' own tables as they go) and
# the curves $OUT/fra_full.svg.
#
#   tests/bench/fra_full.sh                 # the full benchmark (hours)
#   SMOKE=1 OUT=/tmp/x tests/bench/fra_full.sh   # 2 000 pairs, minutes
#
# Rerun the same command after an interruption (SIGTERM/SIGINT to this
# script stops the running trainer at a step boundary with a checkpoint;
# exit 75): every run continues from its checkpoint (`--resume auto`, the
# reference's own ckpt.pt) with its clock, an evaluation cut short is done
# again, finished runs are skipped.
#
# seqpar's training time is the wall time of its `mpirun … seqpar train`
# processes (start-up, corpus loading and the checkpoint written at each
# evaluation included): a run trains in segments, each ended by SIGTERM at
# the next evaluation time (seqpar stops after the step, checkpoints, exits
# 75) and resumed with --resume auto after the evaluation; evaluation
# (translate, bleu) is not counted. The reference counts its process's wall
# time but its evaluations the same way. Options of the recipe that this
# seqpar lacks (--attention, --batch-tokens, --lr-schedule) are detected
# from `seqpar train --help`: a run that needs one is skipped, or run
# without it, and $OUT/notes.txt says which.
#
# Environment (defaults in brackets):
#   SEQPAR [build/trainer/seqpar]   SEQPAR_DATA [/work/shared/data]
#   OUT [$HOME/seqpar-fra-full]     RUNS [seqpar-attn seqpar-none torch-attn torch-none]
#   HOURS [1] training hours a run  EVAL_MIN [10] minutes between evaluations
#   (BUDGET_S, EVAL_S in seconds override them)
#   TEST [5000] test pairs          SPLIT_SEED [25]   NUM_EXAMPLES [0 = all]
#   EMBED [256] HIDDEN [256] LAYERS [2] DROPOUT [0.2] STEPS [20] (num_steps)
#   BATCH_TOKENS [4096] BATCH [512] (pairs a batch at most; without
#   --batch-tokens, FIXED_BATCH [128] pairs) LR [0.002] WARMUP [1000]
#   (Adam, warm-up then inverse-sqrt) CLIP [1] SEED [1] BEAM [4]
#   RANKS [2] (seqpar, 1 thread each) TORCH_THREADS [2]
#   SMOKE=1: NUM_EXAMPLES 2000, TEST 500, BUDGET_S 120, EVAL_S 40, WARMUP 20.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/bench"
if [[ "${SMOKE:-0}" == 1 ]]; then
    : "${NUM_EXAMPLES:=2000}" "${TEST:=500}" "${BUDGET_S:=120}" "${EVAL_S:=40}" "${WARMUP:=20}"
fi
SEQPAR=${SEQPAR:-$ROOT/build/trainer/seqpar}
export SEQPAR_DATA=${SEQPAR_DATA:-/work/shared/data}
OUT=${OUT:-$HOME/seqpar-fra-full}
RUNS=${RUNS:-seqpar-attn seqpar-none torch-attn torch-none}
HOURS=${HOURS:-1} EVAL_MIN=${EVAL_MIN:-10}
BUDGET_S=${BUDGET_S:-$(awk -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 }')}
EVAL_S=${EVAL_S:-$(awk -v m="$EVAL_MIN" 'BEGIN { printf "%d", m * 60 }')}
TEST=${TEST:-5000} SPLIT_SEED=${SPLIT_SEED:-25} NUM_EXAMPLES=${NUM_EXAMPLES:-0}
EMBED=${EMBED:-256} HIDDEN=${HIDDEN:-256} LAYERS=${LAYERS:-2} DROPOUT=${DROPOUT:-0.2}
STEPS=${STEPS:-20} BATCH_TOKENS=${BATCH_TOKENS:-4096} BATCH=${BATCH:-512}
FIXED_BATCH=${FIXED_BATCH:-128} LR=${LR:-0.002} WARMUP=${WARMUP:-1000} CLIP=${CLIP:-1}
SEED=${SEED:-1} BEAM=${BEAM:-4} RANKS=${RANKS:-2} TORCH_THREADS=${TORCH_THREADS:-2}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# (no odls_base_sigkill_timeout: with it set to 60, Open MPI 4.1's mpirun did
# not pass a SIGTERM on to the ranks for 2 minutes here; the trainer is
# stopped by a SIGTERM to its ranks instead, which stops every rank at the
# same step, and mpirun's 1 s kill timer never starts)
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_WAIT_POLICY=PASSIVE

die() { echo "fra_full.sh: error: $*" >&2; exit 2; }
log() { echo "fra_full.sh: $(date -u +%H:%M:%S) $*"; }
[[ -x "$SEQPAR" ]] || die "$SEQPAR: no seqpar binary (build it, or set SEQPAR)"
[[ -x "$PY" ]] || die "$PY: Debian's python3 (with python3-torch) is needed"
for v in BUDGET_S EVAL_S TEST NUM_EXAMPLES RANKS BEAM; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v=${!v}: a whole number is needed"
done
(( BUDGET_S > 0 && EVAL_S > 0 )) || die "the budget and the evaluation interval must be > 0"
mkdir -p "$OUT"
TABLE="$OUT/fra_full.tsv" NOTES="$OUT/notes.txt"
HEADER=$'run\ttime_s\tstep\tepoch\ttrain_loss\tbleu_greedy\tbleu_beam4\tutc'

# ------------------------------------------------------- what this seqpar has
HELP=$("$SEQPAR" train --help)
has() { grep -q -- "--$1 " <<<"$HELP" || grep -q -- "--$1$" <<<"$HELP"; }
note() { log "$*"; echo "$(date -u +%FT%TZ) $*" >>"$NOTES"; }

# ------------------------------------------------------------------ the split
SPLIT="$OUT/split"
if [[ ! -s "$SPLIT/split.json" ]]; then
    "$PY" "$HERE/fra_full_split.py" --out "$SPLIT" --test "$TEST" --seed "$SPLIT_SEED"
fi
grep -q "\"test\": $TEST," "$SPLIT/split.json" ||
    die "$SPLIT holds another split (TEST=$TEST); use another OUT"

combine() { # the runs' tables → $TABLE and the SVG (a run's rows in order)
    { echo "$HEADER"
      for t in "$OUT"/runs/*/table.tsv; do if [[ -f "$t" ]]; then tail -n +2 "$t"; fi; done
    } >"$TABLE.tmp" && mv "$TABLE.tmp" "$TABLE"
    if (( $(wc -l <"$TABLE") > 1 )); then
        "$PY" "$HERE/fra_full_plot.py" "$TABLE" "$OUT/fra_full.svg" \
            --title "fra-eng: $(( $(wc -l <"$SPLIT/train.txt") )) training pairs$([[ $NUM_EXAMPLES != 0 ]] && echo " (first $NUM_EXAMPLES used)"), $TEST test pairs" ||
            log "the SVG could not be drawn (the table is kept)"
    fi
}

# ------------------------------------------------------------ interruptions
CHILD="" CHILD_KIND="" FAILED=0
on_signal() {
    trap '' TERM INT
    if [[ -n "$CHILD" ]]; then
        log "interrupted: stopping the $CHILD_KIND (pid $CHILD) at its next step"
        stop_child
        wait "$CHILD" 2>/dev/null || true
        if [[ "$CHILD_KIND" == trainer ]]; then
            cat "$RUN/segment.log" >>"$RUN/train.log"
            record_segment stop
        fi
    fi
    combine
    log "stopped; rerun the same command to resume"
    exit 75
}
trap on_signal TERM INT
stop_child() { # seqpar's ranks (mpirun's children), else the process itself
    local ranks=""
    [[ "$CHILD_KIND" == trainer ]] && ranks=$(pgrep -P "$CHILD" || true)
    # shellcheck disable=SC2086
    kill -TERM ${ranks:-$CHILD} 2>/dev/null || true
}

# ------------------------------------------------------------- seqpar's runs
# $RUN/clock: lines "step seconds kind" (kind eval: the segment ended at an
# evaluation time; stop: interrupted) — a run's training time at each of its
# checkpoints.
newest_step() { # the newest checkpoint's step, 0 when none
    local f=0 c
    for c in "$RUN/ckpt"/ckpt-*.h5; do # (sorted: the names are ckpt-%08d.h5)
        [[ -f "$c" ]] && { c=${c##*/ckpt-}; f=$((10#${c%.h5})); }
    done
    echo "$f"
}
record_segment() {
    local now step
    now=$(date +%s.%N)
    step=$(newest_step)
    CLOCK=$(awk -v c="$CLOCK" -v a="$SEG_T0" -v b="$now" 'BEGIN { printf "%.1f", c + b - a }')
    echo "$step $CLOCK $1" >>"$RUN/clock"
}
evaluate_seqpar() { # evaluates the checkpoint of step $1 at time $2
    local step=$1 t=$2 ck k hyp b g=""
    ck=$(printf '%s/ckpt/ckpt-%08d.h5' "$RUN" "$step")
    [[ -f "$ck" ]] || die "$ck: no such checkpoint"
    CHILD_KIND=evaluation
    for k in 1 "$BEAM"; do
        hyp="$RUN/hyp-$(printf %08d "$step")-beam$k.txt"
        "$SEQPAR" translate --checkpoint "$ck" --beam "$k" <"$SPLIT/test.src" >"$hyp.tmp"
        mv "$hyp.tmp" "$hyp"
        b=$("$SEQPAR" bleu --ref "$SPLIT/test.ref" --hyp "$hyp" | sed -n 's/^BLEU = \([0-9.]*\),.*/\1/p')
        [[ -n "$b" ]] || die "seqpar bleu gave no score for $hyp"
        g="$g	$b"
    done
    local loss epoch last
    # the last progress line (none yet before --log-every steps: nan, then
    # the summary line's epoch)
    last=$(grep -E '^step [0-9]+/[0-9]+ epoch' "$RUN/train.log" | tail -n 1 || true)
    loss=$(sed -n 's/.* loss \([0-9.na]*\).*/\1/p' <<<"$last")
    epoch=$(sed -n 's/.* epoch \([0-9]*\).*/\1/p' <<<"$last")
    [[ -n "$epoch" ]] ||
        epoch=$(sed -n 's/^done step=[0-9]* epoch=\([0-9]*\) .*/\1/p' "$RUN/train.log" | tail -n 1)
    [[ -f "$RUN/table.tsv" ]] || echo "$HEADER" >"$RUN/table.tsv"
    printf '%s\t%s\t%s\t%s\t%s%s\t%s\n' "$NAME" "$t" "$step" "${epoch:-0}" "${loss:-nan}" \
        "$g" "$(date -u +%FT%TZ)" >>"$RUN/table.tsv"
    log "$NAME: step $step, ${t} s: test BLEU greedy/beam $BEAM:$g"
    combine
}
have_row() { [[ -f "$RUN/table.tsv" ]] && awk -F'\t' -v s="$1" 'NR > 1 && $3 == s { f = 1 } END { exit !f }' "$RUN/table.tsv"; }

run_seqpar() { # $1: additive|none
    local attn=$1 opts=() step kind next remain rc
    if [[ $attn == additive ]] && ! has attention; then
        note "$NAME: not run: this seqpar has no --attention (the attention decoder is not built in)"
        return
    fi
    [[ $attn == additive ]] && opts+=(--attention additive)
    if has batch-tokens; then
        opts+=(--batch "$BATCH" --batch-tokens "$BATCH_TOKENS")
    else
        opts+=(--batch "$FIXED_BATCH")
        note "$NAME: this seqpar has no --batch-tokens: batches of $FIXED_BATCH random pairs instead of $BATCH_TOKENS target tokens"
    fi
    if has lr-schedule && has warmup; then
        opts+=(--lr-schedule inverse-sqrt --warmup "$WARMUP")
    else
        note "$NAME: this seqpar has no --lr-schedule/--warmup: constant learning rate $LR"
    fi
    has progress && opts+=(--progress lines) # (the lines are the default before it)
    mkdir -p "$RUN/ckpt"
    CLOCK=0 step=0 kind=eval
    [[ -s "$RUN/clock" ]] && read -r step CLOCK kind < <(tail -n 1 "$RUN/clock")
    local have
    have=$(newest_step)
    if (( have > step )); then # killed without the trap: estimate at the run's mean rate
        CLOCK=$(awk -v c="$CLOCK" -v s="$step" -v h="$have" 'BEGIN { printf "%.1f", s ? c * h / s : c }')
        note "$NAME: checkpoint of step $have beyond the clock's step $step: its time estimated as $CLOCK s"
        step=$have kind=stop
        echo "$step $CLOCK $kind" >>"$RUN/clock"
    fi
    if (( step > 0 )) && [[ $kind == eval ]] && ! have_row "$step"; then
        evaluate_seqpar "$step" "$CLOCK"
    fi
    while :; do
        if awk -v c="$CLOCK" -v b="$BUDGET_S" 'BEGIN { exit !(c >= b) }'; then
            touch "$RUN/done"; return
        fi
        next=$(awk -v c="$CLOCK" -v e="$EVAL_S" -v b="$BUDGET_S" \
            'BEGIN { n = (int(c / e + 1e-9) + 1) * e; if (n > b) n = b; printf "%.1f", n }')
        remain=$(awk -v n="$next" -v c="$CLOCK" 'BEGIN { printf "%.1f", n - c }')
        log "$NAME: training from step $step (${CLOCK} s) for ${remain} s"
        SEG_T0=$(date +%s.%N)
        mpirun -np "$RANKS" "$SEQPAR" train --dataset "$SPLIT/train.txt" \
            --num-examples "$NUM_EXAMPLES" --cell gru --layers "$LAYERS" --embed "$EMBED" \
            --hidden "$HIDDEN" --dropout "$DROPOUT" --steps "$STEPS" --optimizer adam \
            --lr "$LR" --clip "$CLIP" --epochs 1000 --seed "$SEED" --threads 1 \
            --checkpoint-dir "$RUN/ckpt" --keep 2 --resume auto \
            --log-every 50 "${opts[@]}" >"$RUN/segment.log" 2>&1 &
        CHILD=$! CHILD_KIND=trainer
        # the segment ends at the evaluation time (or when seqpar ends by itself)
        local end
        end=$(awk -v a="$SEG_T0" -v r="$remain" 'BEGIN { printf "%.3f", a + r }')
        while kill -0 "$CHILD" 2>/dev/null &&
            awk -v e="$end" -v n="$(date +%s.%N)" 'BEGIN { exit !(n < e) }'; do
            sleep 1
        done
        stop_child
        rc=0; wait "$CHILD" || rc=$?
        CHILD=""
        cat "$RUN/segment.log" >>"$RUN/train.log"
        # stopped by the SIGTERM (exit 75) or ended by itself (0): the summary line
        grep -q '^done step=' "$RUN/segment.log" ||
            { note "$NAME: seqpar train failed (mpirun status $rc; see $RUN/train.log)"
              FAILED=1; return; }
        record_segment eval
        step=$(newest_step)
        (( step > 0 )) && evaluate_seqpar "$step" "$CLOCK"
        if ! grep -q "stopped at step" "$RUN/segment.log"; then
            note "$NAME: seqpar train ended by itself (its --epochs) at $CLOCK s"
            touch "$RUN/done"; return
        fi
    done
}

# ---------------------------------------------------------- the reference
run_torch() { # $1: additive|none
    local rc=0
    log "$NAME: PyTorch reference (attention $1), budget $BUDGET_S s"
    "$PY" "$HERE/fra_full_torch.py" --data "$SPLIT" --out "$RUN" --run "$NAME" \
        --attention "$1" --num-examples "$NUM_EXAMPLES" --steps "$STEPS" --embed "$EMBED" \
        --hidden "$HIDDEN" --layers "$LAYERS" --dropout "$DROPOUT" --batch "$BATCH" \
        --batch-tokens "$BATCH_TOKENS" --lr "$LR" --lr-schedule inverse-sqrt \
        --warmup "$WARMUP" --clip "$CLIP" --seed "$SEED" --threads "$TORCH_THREADS" \
        --budget "$BUDGET_S" --eval-every "$EVAL_S" --beam "$BEAM" --seqpar "$SEQPAR" \
        >>"$RUN/train.log" 2>&1 &
    CHILD=$! CHILD_KIND=reference
    local n=0
    while kill -0 "$CHILD" 2>/dev/null; do sleep 1; (( ++n % 30 )) || combine; done
    wait "$CHILD" || rc=$?
    CHILD=""
    combine
    if [[ $rc == 0 ]]; then touch "$RUN/done"; else
        note "$NAME: fra_full_torch.py exited with status $rc (see $RUN/train.log)"
        FAILED=1
    fi
}

log "out $OUT; runs: $RUNS; budget $BUDGET_S s a run, evaluation every $EVAL_S s; $(wc -l <"$SPLIT/train.txt") training pairs (NUM_EXAMPLES=$NUM_EXAMPLES), $TEST test"
for NAME in $RUNS; do
    RUN="$OUT/runs/$NAME"
    mkdir -p "$RUN"
    if [[ -f "$RUN/done" ]]; then log "$NAME: done already"; continue; fi
    case $NAME in
        seqpar-attn) run_seqpar additive ;;
        seqpar-none) run_seqpar none ;;
        torch-attn) run_torch additive ;;
        torch-none) run_torch none ;;
        *) die "RUNS: unknown run $NAME (seqpar-attn, seqpar-none, torch-attn, torch-none)" ;;
    esac
    [[ -f "$RUN/done" ]] && note "$NAME: ran to completion ($BUDGET_S s of training)"
done
combine
log "table $TABLE, curves $OUT/fra_full.svg, notes $NOTES"
if (( FAILED )); then log "a run failed (notes.txt says which)"; exit 1; fi
