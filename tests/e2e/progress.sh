#!/bin/bash
# What a person watching sees (--progress, trainer/progress.c), under a
# pseudo-terminal made by script(1):
#  - piped (and --progress lines), the progress lines scripts parse, with
#    no terminal control characters: auto and lines print the same lines;
#  - on a terminal (one process, no mpirun), one line updated in place:
#    no step lines, validation lines and stderr warnings printed whole above
#    the bar (cleared first, drawn again after), the bar within the
#    terminal's width, redrawn at most 5 times a second, the summary last;
#  - under mpirun -np 2 from a terminal, auto gives the lines (Open MPI
#    gives every rank a pseudo-terminal wherever its output goes) and
#    --progress bar the bar;
#  - a corpus download shows its progress on a terminal, nothing when
#    stderr is not one.
# Usage: progress.sh SEQPAR
set -u
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1
command -v script >/dev/null || { echo "script(1) is needed (bsdutils)"; exit 1; }
run=(train --threads 1 --num-examples 3000 --epochs 2 --valid 100 --log-every 4)

# pty OUT COLS CMD...: CMD under a pseudo-terminal COLS wide, all its output
# (stdout and stderr, as the terminal shows them) into OUT
pty() {
    local out=$1 cols=$2; shift 2
    local q
    q=$(printf '%q ' "$@")
    script -qec "stty cols $cols rows 30; $q" /dev/null >"$out" 2>&1 </dev/null
}
# the figures that change from run to run, masked
mask() { sed -E 's/(tok\/s|ETA|GFLOP\/s|memory|\(|of) [^ ]+/\1 X/g; s/tokens_per_s=[0-9]+/tokens_per_s=X/; s/[0-9.]+ GFLOP\/s/X/; s/[0-9.]+%/X%/g; s/[0-9.]+ s\b/X s/g' "$1"; }

# ---------------------------------------------------------------- piped
"$SEQPAR" "${run[@]}" >"$tmp/auto.out" 2>&1
"$SEQPAR" "${run[@]}" --progress lines >"$tmp/lines.out" 2>&1
check "piped, auto: the step lines (23 of them), no carriage return or escape" \
    bash -c "[ \$(grep -cE '^step [0-9]+/[0-9]+ epoch [0-9]+ loss [0-9.]+ ppl [0-9.]+ tok/s [0-9]+ ETA ' '$tmp/auto.out') = 23 ] && ! grep -q \$'[\r\x1b]' '$tmp/auto.out'"
check "piped: auto prints what --progress lines prints (timings masked)" \
    diff <(mask "$tmp/auto.out") <(mask "$tmp/lines.out")

# --------------------------------------------------- on a terminal: the bar
# frames.py FILE COLS: checks the terminal transcript; prints what it found
cat >"$tmp/frames.py" <<'EOF'
import re, sys
t = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read()
cols = int(sys.argv[2])
frames = re.findall(r"\r(epoch \d+ [^\r\x1b]*)\x1b\[K", t)
above = re.findall(r"\r\x1b\[K([^\r\x1b]*)\r\n", t)
steps = re.findall(r"(?:^|\n)step \d+/\d+ epoch", t)
wide = [f for f in frames if len(f) > cols - 1]
print(f"frames={len(frames)} above={len(above)} step_lines={len(steps)} too_wide={len(wide)}")
for a in above:
    print("above:", a)
last = t.rstrip("\r\n").split("\n")[-1]
print("last:", last.strip())
EOF
pty "$tmp/bar.tty" 80 "$SEQPAR" "${run[@]}"
python3 "$tmp/frames.py" "$tmp/bar.tty" 80 >"$tmp/bar.txt"
check "terminal, auto: the bar, no step lines, every frame within 80 columns ($(head -1 "$tmp/bar.txt"))" \
    grep -qE '^frames=([2-9]|[1-9][0-9]+) above=[0-9]+ step_lines=0 too_wide=0$' "$tmp/bar.txt"
check "... a frame shows epoch, bar, step of total, loss, tok/s, ETA" \
    grep -qP '\repoch 2 \[#+-*\] +\d+% step +\d+/92 loss \d+\.\d{4} +tok/s \d+ +ETA ' "$tmp/bar.tty"
check "... while validating, the bar says so in the ETA's place" \
    grep -qP '\repoch 1 \[#+\] 100% step +46/92 loss \d+\.\d{4} +tok/s \d+ +validating\x1b\[K' "$tmp/bar.tty"
check "... both validation lines printed whole above the bar" \
    bash -c "[ \$(grep -cE '^above: epoch [12] valid loss [0-9.]+ ppl [0-9.]+ bleu [0-9.]+$' '$tmp/bar.txt') = 2 ]"
check "... the summary line last, the bar cleared before the end lines" \
    bash -c "grep -qE '^last: done step=92 epoch=2 loss=' '$tmp/bar.txt' && grep -q '^above: matmul work' '$tmp/bar.txt'"

for cols in 72 40; do
    pty "$tmp/narrow$cols.tty" $cols "$SEQPAR" "${run[@]}"
    python3 "$tmp/frames.py" "$tmp/narrow$cols.tty" $cols >"$tmp/narrow.txt"
    check "a terminal $cols columns wide: every frame within them ($(head -1 "$tmp/narrow.txt"))" \
        grep -qE '^frames=([2-9]|[1-9][0-9]+) above=[0-9]+ step_lines=0 too_wide=0$' "$tmp/narrow.txt"
done
check "... at 72, the bar without its percentage" grep -qP '\repoch 2 \[#+-*\] step' "$tmp/narrow72.tty"
SEQPAR_FAULT_NAN=0:25 pty "$tmp/warn.tty" 80 "$SEQPAR" "${run[@]}" --on-nan skip
python3 "$tmp/frames.py" "$tmp/warn.tty" 80 >"$tmp/warn.txt"
check "stderr warnings of rank 0 go above the bar, whole, and the bar comes back" \
    bash -c "grep -q '^above: seqpar train: warning: step 25: the gradient norm is not finite; its update is skipped' '$tmp/warn.txt' && grep -qPz 'update is skipped [^\r]*\r\n\repoch' '$tmp/warn.tty'"

# at most 5 redraws a second (plus one a line printed above it): a step a
# logging window, ~90 steps a second here, would be far more without the limit
t0=$(date +%s.%N)
pty "$tmp/rate.tty" 80 "$SEQPAR" train --threads 1 --num-examples 12000 --epochs 1 --log-every 1
t1=$(date +%s.%N)
python3 "$tmp/frames.py" "$tmp/rate.tty" 80 >"$tmp/rate.txt"
frames=$(sed -n 's/^frames=\([0-9]*\) above=\([0-9]*\).*/\1 \2/p' "$tmp/rate.txt")
check "redrawn at most 5 times a second: $(echo "$frames" | cut -d' ' -f1) frames in $(python3 -c "print(round($t1 - $t0, 1))") s for 186 steps" \
    python3 -c "import sys; f, a = map(int, '$frames'.split()); sys.exit(not (2 <= f <= 5 * ($t1 - $t0) + a + 3 and f < 186))"

pty "$tmp/lines.tty" 80 "$SEQPAR" "${run[@]}" --progress lines
check "terminal, --progress lines: the step lines, no bar" \
    bash -c "[ \$(grep -c '^step [0-9]*/92 epoch' '$tmp/lines.tty') = 23 ] && ! grep -q \$'\repoch' '$tmp/lines.tty'"
"$SEQPAR" "${run[@]}" --progress bar >"$tmp/forced.out" 2>&1
check "piped, --progress bar: the bar all the same" \
    bash -c "grep -q \$'\repoch 1 ' '$tmp/forced.out' && ! grep -q '^step [0-9]*/92 epoch' '$tmp/forced.out'"
expect_error "--progress fancy: one line naming the choices" "--progress.*auto\|bar\|lines" \
    "$SEQPAR" train --progress fancy

# ------------------------------------------------------------------ mpirun
if command -v mpirun >/dev/null; then
    pty "$tmp/mpi.tty" 80 mpirun -np 2 "$SEQPAR" "${run[@]}"
    check "mpirun -np 2 from a terminal, auto: the lines (rank 0's pty says nothing of the reader)" \
        bash -c "[ \$(grep -c '^step [0-9]*/92 epoch' '$tmp/mpi.tty') = 23 ] && ! grep -q \$'\repoch' '$tmp/mpi.tty'"
    # the reason: every rank's stdout is a pseudo-terminal, even piped
    echo "note: under mpirun -np 2 | cat, [ -t 1 ] on the ranks says: $(mpirun -np 2 sh -c '[ -t 1 ] && echo tty || echo not-a-tty' | sort | uniq -c | xargs)"
    mpirun -np 1 "$SEQPAR" "${run[@]}" >"$tmp/mpi1.out" 2>&1
    check "mpirun -np 1 into a file, auto: the lines, no carriage return or escape" \
        bash -c "[ \$(grep -c '^step [0-9]*/92 epoch' '$tmp/mpi1.out') = 23 ] && ! grep -q \$'[\r\x1b]' '$tmp/mpi1.out'"
    pty "$tmp/mpibar.tty" 80 mpirun -np 2 "$SEQPAR" "${run[@]}" --progress bar
    python3 "$tmp/frames.py" "$tmp/mpibar.tty" 80 >"$tmp/mpibar.txt"
    check "mpirun -np 2, --progress bar: the bar, validation above it ($(head -1 "$tmp/mpibar.txt"))" \
        bash -c "grep -qE '^frames=[1-9][0-9]* above=[0-9]+ step_lines=0 too_wide=0$' '$tmp/mpibar.txt' && [ \$(grep -c '^above: epoch [12] valid' '$tmp/mpibar.txt') = 2 ]"
    # rank 0's stderr reaches the terminal through mpirun on another channel
    # than its stdout: the clearing rides with the text, and the bar waits
    # until mpirun has read it (before, the warning landed after the bar in
    # 2 of 5 runs): three runs, each whole
    whole=0
    for try in 1 2 3; do
        SEQPAR_FAULT_NAN=0:25 pty "$tmp/mpiwarn.tty" 80 mpirun -np 2 -x SEQPAR_FAULT_NAN "$SEQPAR" \
            "${run[@]}" --on-nan skip --progress bar
        grep -qaP '\r\x1b\[Kseqpar train: warning: step 25: [^\r\x1b]*\r$' "$tmp/mpiwarn.tty" &&
            whole=$((whole + 1))
    done
    check "mpirun -np 2, --progress bar: rank 0's stderr warning whole above the bar ($whole of 3 runs)" \
        [ "$whole" = 3 ]
fi

# ------------------------------------------------------- corpus download
if [ -f "${SEQPAR_DATA:-}/timemachine.txt" ]; then
    mkdir -p "$tmp/srv"
    cp "$SEQPAR_DATA/timemachine.txt" "$tmp/srv/"
    export SEQPAR_DATA_URL="file://$tmp/srv/"
    unset SEQPAR_NO_DOWNLOAD
    pty "$tmp/dl.tty" 80 "$SEQPAR" corpus-stats --dataset timemachine --data-dir "$tmp/dl1" --top 1
    check "a download on a terminal shows bytes of total and the rate" \
        grep -qP 'downloading timemachine\.txt: 0\.2 of 0\.2 MB \(100%\), [0-9.]+ MB/s\x1b\[K\r?$' "$tmp/dl.tty"
    "$SEQPAR" corpus-stats --dataset timemachine --data-dir "$tmp/dl2" --top 1 >"$tmp/dl.out" 2>"$tmp/dl.err"
    check "... and nothing when stderr is not a terminal (same stdout, empty stderr)" \
        bash -c "[ ! -s '$tmp/dl.err' ] && [ -f '$tmp/dl2/timemachine.txt' ] && grep -q '^timemachine (word tokens)' '$tmp/dl.out'"
    unset SEQPAR_DATA_URL
fi
finish
