#!/usr/bin/env bash
# The built binary's hot loops are the code the benchmarks measured
# (tests/bench/README.md, session 8): the AVX-512 clones of the element-wise
# loops are vectorised (at -O2 GCC 12 left them scalar, 1.6-3.4x slower), and
# the optimizer's update zeroes the gradient in its own pass, with no memset
# over the whole gradient after it (GCC's loop distribution had split one
# out). Read off the binary with objdump; exit 77 (skipped) where the
# compiler built no AVX-512 clones to read (not GCC on x86-64) or objdump is
# missing.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
command -v objdump >/dev/null || { echo "skipped: no objdump"; exit 77; }
objdump -d --no-show-raw-insn "$SEQPAR" >"$tmp/dis" || { echo "objdump failed"; exit 1; }

# body NAME: the disassembly of function NAME (empty when it is not there)
body() { awk -v f="<$1>:" '$2 == f {on = 1; next} on && /^$/ {exit} on' "$tmp/dis"; }

grep -q '<gru_cell_forward\.avx512f>:' "$tmp/dis" ||
    { echo "skipped: no AVX-512 clones in $SEQPAR (not GCC on x86-64?)"; exit 77; }
for f in gru_cell_forward gru_cell_backward softmax_numerators adam_update sgd_update \
    sum_squares; do
    n=$(body "$f.avx512f" | grep -c 'zmm')
    check "$f's AVX-512 clone is vectorised ($n instructions on zmm registers)" test "$n" -gt 0
done
for f in adam_update sgd_update; do
    calls=$(body "$f.avx512f" | grep -E '(call|jmp).*memset' || true)
    check "$f zeroes the gradient in its own loop (no memset after it)${calls:+: $calls}" \
        test -z "$calls"
done
finish
