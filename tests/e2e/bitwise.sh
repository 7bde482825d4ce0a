#!/usr/bin/env bash
# End to end, bitwise: fixed-seed runs give checkpoints whose digests equal
# those that a reference binary gave (tests/e2e/bitwise.ref), so a change
# that should not move a single bit of training (a refactor) is proven not
# to. Each run is short (50-60 steps, under a second or two):
#   a  the book's translation model (fra-eng 600 pairs, GRU, embed/hidden 32,
#      2 layers, batch 64, steps 10, dropout 0.1, Adam), with --valid 100
#      --eval-every 10, 1 rank: final checkpoint and best.h5
#   b  the same, mpirun -np 2
#   c  the same, 1 rank x --workers 2
#   d  an LSTM translation model, bidirectional encoder, dropout 0.2,
#      mpirun -np 2 with --overlap on --bucket-kb 8 (the overlapped reducer)
#   e  the char LM (GRU, hidden 64, one-hot, batch 32, steps 35, sequential
#      sampler, SGD lr 1) with --valid and --eval-every, 1 rank: final
#      (holding the carried /train/state_h) and best.h5
#   f  an LSTM char LM, 2 layers, dropout 0.2, mpirun -np 2: the carried
#      state_h and state_c gathered from both ranks
# tests/e2e/ckpt_digest.py says what a digest covers (tensors, optimizer
# state, counters, figures, carried states, vocabularies; not /config nor
# the creation time).
#
# Float results depend on the instruction set (seqpar's AVX-512 GEMM and
# kernels, OpenBLAS's kernel), the OpenBLAS build and the compiler, so the
# runs force OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=1 and
# --threads 1, and the test is skipped (exit 77) on a CPU without avx512f or
# where OpenBLAS does not take the SkylakeX kernel. bitwise.ref's header
# says with what its digests were made; a failure prints the differing parts
# and any difference of OpenBLAS or compiler from that header.
# The ASan/UBSan build (-DSEQPAR_SANITIZE=ON) gave the reference's bits at
# 5e42e16, so tests/run.sh runs this test in both of its passes.
#
# Usage:
#   tests/e2e/bitwise.sh SEQPAR          compare with bitwise.ref
#   tests/e2e/bitwise.sh --regen SEQPAR  run the same and rewrite bitwise.ref
#                                        (only from a binary whose bits are
#                                        the reference: the commit before a
#                                        refactor, built RelWithDebInfo)
# SEQPAR_DATA: the corpora (fra-eng/fra.txt, timemachine.txt);
# SEQPAR_PYTHON: python3 with h5py and numpy (default /usr/bin/python3).
set -euo pipefail
regen=0
if [ "${1:-}" = --regen ]; then
    regen=1
    shift
fi
if [ $# != 1 ]; then
    echo "usage: $0 [--regen] SEQPAR" >&2
    exit 2
fi
SEQPAR=$1
here=$(cd "$(dirname "$0")" && pwd)
REF=$here/bitwise.ref
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
if ! grep -qw avx512f /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
    echo "skipped: this CPU has no avx512f/fma; bitwise.ref holds the bits of seqpar's AVX-512 kernels and OpenBLAS's SkylakeX kernel"
    exit 77
fi
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
export OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1
# knobs that would change the bits (the OpenBLAS path, a fault injection)
unset SEQPAR_RGEMM SEQPAR_FAULT_PERTURB
mpi=(mpirun --oversubscribe -x SEQPAR_DATA -x OPENBLAS_CORETYPE -x OPENBLAS_NUM_THREADS)

common=(--threads 1 --log-every 10 --seed 7)
tr=(--dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 --cell gru
    --dropout 0.1 --batch 64 --steps 10 --optimizer adam --lr 0.005 --clip 1
    --valid 100 --eval-every 10 --max-steps 60)
lstm=(--dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 --cell lstm
      --bidirectional --dropout 0.2 --batch 64 --steps 10 --optimizer adam --lr 0.005 --clip 1
      --max-steps 50 --overlap on --bucket-kb 8)
lm=(--task lm --dataset timemachine --tokens char --num-examples 30000 --embed 0 --hidden 64
    --layers 1 --cell gru --dropout 0 --batch 32 --steps 35 --sampler sequential
    --optimizer sgd --lr 1 --clip 1 --valid 3000 --eval-every 20 --max-steps 50)
lm2=(--task lm --dataset timemachine --tokens char --num-examples 30000 --embed 0 --hidden 64
     --layers 2 --cell lstm --dropout 0.2 --batch 32 --steps 35 --sampler sequential
     --optimizer sgd --lr 1 --clip 1 --max-steps 50)

names=()   # NAME of each checkpoint digested, in order
declare -A file what secs

# run ID WHAT NP ARGS… : trains into $tmp/ID; NP 0 = without mpirun
run() {
    local id=$1 desc=$2 np=$3 rc=0 t0 t1
    shift 3
    local cmd=("$SEQPAR" train "$@" "${common[@]}" --checkpoint-dir "$tmp/$id")
    [ "$np" = 0 ] || cmd=("${mpi[@]}" -np "$np" "${cmd[@]}")
    t0=$(date +%s%N)
    "${cmd[@]}" >"$tmp/$id.out" 2>&1 || rc=$?
    t1=$(date +%s%N)
    secs[$id]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    if [ "$rc" != 0 ]; then
        bad "$id ($desc): seqpar train exited $rc: $(tail -3 "$tmp/$id.out")"
        return 0
    fi
    if ! grep -q 'kernel SkylakeX' "$tmp/$id.out"; then
        echo "skipped: OpenBLAS does not run its SkylakeX kernel here: $(head -1 "$tmp/$id.out")"
        exit 77
    fi
    local f
    for f in "$tmp/$id"/ckpt-*.h5 "$tmp/$id"/best.h5; do
        [ -e "$f" ] || continue
        local n=$id.final
        [ "${f##*/}" = best.h5 ] && n=$id.best
        names+=("$n")
        file[$n]=$f
        what[$n]="$desc, ${f##*/}"
    done
}

run a "1 rank" 0 "${tr[@]}"
run b "mpirun -np 2" 2 "${tr[@]}"
run c "1 rank x 2 workers" 0 "${tr[@]}" --workers 2
run d "LSTM bidirectional, mpirun -np 2, overlap" 2 "${lstm[@]}"
run e "char LM, 1 rank" 0 "${lm[@]}"
run f "LSTM char LM, mpirun -np 2" 2 "${lm2[@]}"

# digests: $tmp/NAME.dig holds "total SHA" then "PART SHA SUMMARY" lines
for n in "${names[@]}"; do
    if ! "$PY" "$here/ckpt_digest.py" --verbose "${file[$n]}" >"$tmp/$n.dig" 2>"$tmp/$n.err"; then
        bad "$n: ckpt_digest.py failed: $(cat "$tmp/$n.err")"
        : >"$tmp/$n.dig"
    fi
done

openblas=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null |
    awk '$1 == "ii" { printf "%s%s %s", sep, $2, $3; sep = ", " }')
compiler=$(readelf -p .comment "$SEQPAR" 2>/dev/null | sed -n 's/^ *\[ *[0-9a-f]*\] *//p' | sort -u | paste -sd ';')

if [ "$regen" = 1 ]; then
    [ "$fails" = 0 ] || { finish || true; echo "bitwise.sh --regen: runs failed, $REF left as it was"; exit 1; }
    commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$here/../.." status --porcelain -- . ':!tests' 2>/dev/null)" ]; then
        commit="$commit with uncommitted changes outside tests/"
    fi
    {
        echo "# Reference digests for tests/e2e/bitwise.sh (ckpt_digest.py of each checkpoint)."
        echo "# Produced by commit $commit, binary built with"
        echo "#   cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo, then: tests/e2e/bitwise.sh --regen SEQPAR"
        echo "# CPU: $(grep -m1 '^model name' /proc/cpuinfo | sed 's/.*: *//') with avx512f and fma;"
        echo "#   OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=1, --threads 1, 1 and 2 ranks on $(nproc) cores"
        echo "# openblas: $openblas"
        echo "# compiler: $compiler"
        echo "# Lines: NAME SHA256 (the checkpoint's digest: what is compared), then"
        echo "# NAME:PART SHA256 SUMMARY (its parts, to say what differs on a failure)."
        for n in "${names[@]}"; do
            echo "$n $(awk '$1 == "total" { print $2 }' "$tmp/$n.dig")"
            awk -v n="$n" '$1 != "total" { printf "%s:%s\n", n, $0 }' "$tmp/$n.dig"
        done
    } >"$tmp/ref"
    mv "$tmp/ref" "$REF"
    for n in "${names[@]}"; do echo "$n $(awk '$1 == "total" { print $2 }' "$tmp/$n.dig") (${what[$n]}, ${secs[${n%%.*}]} s)"; done
    echo "wrote $REF"
    exit 0
fi

[ -f "$REF" ] || { echo "bitwise.sh: no $REF (make it with --regen from the reference binary)"; exit 1; }
for n in "${names[@]}"; do
    got=$(awk '$1 == "total" { print $2 }' "$tmp/$n.dig")
    want=$(awk -v n="$n" '$1 == n { print $2 }' "$REF")
    id=${n%%.*}
    at=$(awk '$1 == "train.counters" { print $3 }' "$tmp/$n.dig")
    if [ -z "$want" ]; then
        bad "$n (${what[$n]}): no reference digest in bitwise.ref"
    elif [ "$got" = "$want" ]; then
        ok "$n (${what[$n]}, $at, ${secs[$id]} s): ${got:0:16}… = reference"
    else
        differs=$(awk -v n="$n" 'NR == FNR { if (index($1, n ":") == 1) ref[substr($1, length(n) + 2)] = $2; next }
                                 $1 != "total" && ref[$1] != $2 { printf "%s%s", sep, $1; sep = ", " }' "$REF" "$tmp/$n.dig")
        bad "$n (${what[$n]}): digest ${got:0:16}…, reference ${want:0:16}…; differs in: ${differs:-no part (stale part lines in bitwise.ref)}"
        # the counters and figures, as they are and as they were
        for p in optimizer.attrs train.counters train.figures train.state; do
            case ", $differs," in *", $p,"*) ;; *) continue ;; esac
            echo "       $p now: $(awk -v p="$p" '$1 == p { $1 = $2 = ""; sub(/^ +/, ""); print }' "$tmp/$n.dig")"
            echo "       $p ref: $(awk -v p="$n:$p" '$1 == p { $1 = $2 = ""; sub(/^ +/, ""); print }' "$REF")"
        done
    fi
done
# names in the reference that no run produced
while read -r n; do
    [ -n "${file[$n]+set}" ] || bad "$n: in bitwise.ref but no run wrote it"
done < <(awk '!/^#/ && NF && $1 !~ /:/ { print $1 }' "$REF")
if [ "$fails" != 0 ]; then
    ref_blas=$(sed -n 's/^# openblas: //p' "$REF")
    ref_cc=$(sed -n 's/^# compiler: //p' "$REF")
    [ "$ref_blas" = "$openblas" ] || echo "note: OpenBLAS here is $openblas; the reference's was $ref_blas"
    [ "$ref_cc" = "$compiler" ] || echo "note: $SEQPAR was compiled by $compiler; the reference's by $ref_cc"
fi
finish
