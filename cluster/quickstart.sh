#!/usr/bin/env bash
# seqpar quickstart: installs what is missing (Debian, as root), builds
# seqpar, and trains the default model (GRU seq2seq on the embedded `numbers`
# corpus: English number words -> French) on 2 MPI ranks, then translates a
# few sentences with the checkpoint it wrote. Needs no download.
#   QUICKSTART_EPOCHS (default 10), QUICKSTART_NP (default 2), QUICKSTART_OUT (default ./out)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tests/deps.sh" --install

build="$root/build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEQPAR_WERROR=OFF -DSEQPAR_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target seqpar
seqpar="$build/trainer/seqpar"

if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
np=${QUICKSTART_NP:-2}
out=${QUICKSTART_OUT:-$PWD/out}
mkdir -p "$out"
# ranks x OpenBLAS threads <= cores: seqpar sets the threads per rank itself
extra=()
[ "$np" -gt "$(nproc)" ] && extra+=(--oversubscribe)
echo "== training: mpirun -np $np seqpar train (checkpoints in $out/ckpt)"
mpirun -np "$np" "${extra[@]}" "$seqpar" train --dataset numbers \
    --epochs "${QUICKSTART_EPOCHS:-10}" --log-every 50 \
    --checkpoint-dir "$out/ckpt" --keep 2 | tee "$out/train.log"

ckpt=$(ls -1 "$out"/ckpt/ckpt-*.h5 | sort | tail -n 1)
echo "== translating with $ckpt"
printf 'seven\ntwenty one\nthree hundred forty two\nnine thousand nine hundred eighty\n' |
    tee "$out/sentences.txt" | "$seqpar" translate --checkpoint "$ckpt" | paste "$out/sentences.txt" -
echo "== done: $seqpar ckpt info $ckpt  describes the model"
