#!/usr/bin/env bash
# seqpar quickstart: installs what is missing (Debian, as root), builds
# seqpar, starts a monitor (the live dashboard), and trains the default model
# (GRU seq2seq on the embedded `numbers` corpus: English number words ->
# French) on 2 MPI ranks against it, then translates a few sentences with the
# checkpoint it wrote. Needs no download. The monitor keeps running after the
# script, so the dashboard stays up; the script says how to stop it.
#   QUICKSTART_EPOCHS (default 10), QUICKSTART_NP (default 2), QUICKSTART_OUT (default ./out)
#   QUICKSTART_HTTP (default 127.0.0.1:8080), QUICKSTART_LISTEN (default tcp://127.0.0.1:5555)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tests/deps.sh" --install run   # what building and running need: not the tests' PyTorch, Chromium, linters

build="$root/build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DSEQPAR_WERROR=OFF \
    -DSEQPAR_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target seqpar
seqpar="$build/trainer/seqpar"

if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
np=${QUICKSTART_NP:-2}
out=${QUICKSTART_OUT:-$PWD/out}
mkdir -p "$out"
rm -rf "$out/ckpt" # the quickstart's own output: each run starts fresh
# ranks x OpenBLAS threads <= cores: seqpar sets the threads per rank itself
extra=()
[ "$np" -gt "$(nproc)" ] && extra+=(--oversubscribe)
http=${QUICKSTART_HTTP:-127.0.0.1:8080}
listen=${QUICKSTART_LISTEN:-tcp://127.0.0.1:5555}
# the OpenBLAS kernel: Debian's 0.3.21 falls back to its slowest (Prescott) on
# CPUs it does not know; AVX-512 CPUs run the SkylakeX kernel 3-4x faster
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
fi
[ -z "${OPENBLAS_CORETYPE:-}" ] || extra+=(-x OPENBLAS_CORETYPE)
if curl -sf "http://$http/api/runs" >/dev/null 2>&1; then
    echo "== a monitor already serves http://$http/ : using it"
else
    nohup "$seqpar" monitor --listen "$listen" --http "$http" --log "$out/metrics.jsonl" \
        >"$out/monitor.log" 2>&1 &
    mon=$!
    for _ in $(seq 50); do curl -sf "http://$http/api/runs" >/dev/null 2>&1 && break; sleep 0.1; done
    echo "== monitor running (pid $mon, log $out/monitor.log); stop it with: kill $mon"
fi
echo "== dashboard: http://$http/   (open it now: it updates live)"
echo "== training: mpirun -np $np seqpar train --monitor $listen (checkpoints in $out/ckpt)"
mpirun -np "$np" "${extra[@]}" "$seqpar" train --dataset numbers \
    --epochs "${QUICKSTART_EPOCHS:-10}" --log-every 50 --valid 500 \
    --monitor "$listen" --run "quickstart-$(date +%H%M%S)" \
    --checkpoint-dir "$out/ckpt" --keep 2 | tee "$out/train.log"

ckpt=$(ls -1 "$out"/ckpt/ckpt-*.h5 | sort | tail -n 1)
echo "== translating with $ckpt"
printf 'seven\ntwenty one\nthree hundred forty two\nnine thousand nine hundred eighty\n' |
    tee "$out/sentences.txt" | "$seqpar" translate --checkpoint "$ckpt" | paste "$out/sentences.txt" -
echo "== done: $seqpar ckpt info $ckpt  describes the model"
echo "== the run, its loss, perplexity, BLEU and ranks: http://$http/"
