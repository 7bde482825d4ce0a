#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan, in build-fuzz/ of the
# checkout) and runs each for SECONDS on its seed corpus (corpus/NAME/).
# New inputs go to a scratch directory, never into the repository; a crash,
# leak or timeout leaves its input there and fails the run.
#   tests/fuzz/run.sh [SECONDS per harness, default 10] [NAME…]
#   FUZZ_BUILD=DIR   build directory (default build-fuzz)
#   FUZZ_WORK=DIR    scratch directory, kept (default: a new one in $TMPDIR,
#                    removed after a clean run)
# Exit: 0 clean, 1 a harness failed, 77 clang's libFuzzer is not installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
[ $# -gt 0 ] && shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(pairs text config ckpt wire http)

cc=$(command -v clang || true)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe/p.c"
if [ -z "$cc" ] || ! "$cc" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>/dev/null; then
    echo "tests/fuzz/run.sh: clang with libFuzzer not found (Debian: apt-get install clang libclang-rt-dev)" >&2
    exit 77
fi

build=${FUZZ_BUILD:-$root/build-fuzz}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSEQPAR_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzzers >/dev/null

work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/seqpar-fuzz.XXXXXX")}
echo "fuzzing ${secs} s each in $work"
# Leaks fail a run, but for HDF5's own on corrupt files (lsan.supp), whose
# matching needs whole stacks: slow ones (a quarter of the speed), so only
# for the harness that reads HDF5. An allocation too big for any machine
# returns NULL, as glibc's would (HDF5 asks for a terabyte when a size in
# a header is corrupt, and takes the NULL); libFuzzer still fails one of
# more than -rss_limit_mb that succeeds.
asan=detect_leaks=1:allocator_may_return_null=1
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for n in "${names[@]}"; do
    bin=$build/tests/fuzz/fuzz_$n
    mkdir -p "$work/$n"
    log=$work/$n.log
    # -timeout: one input for 10 s is a hang; -rss_limit_mb: 2 GB is a
    # reader that trusts a size it read
    opts=$asan
    [ "$n" = ckpt ] && opts=$opts:fast_unwind_on_malloc=0
    if ASAN_OPTIONS=${ASAN_OPTIONS:-$opts} "$bin" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$n-" \
        "$work/$n" "$root/tests/fuzz/corpus/$n" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "  $n: $runs executions in $secs s, $cov, corpus $(find "$work/$n" -type f | wc -l) new"
    else
        echo "  $n: FAILED (log: $log)"
        grep -m3 -E '^==[0-9]+==ERROR|SUMMARY|runtime error|deadly signal' "$log" | sed 's/^/    /'
        find "$work" -maxdepth 1 -name "$n-*" | sed "s|^|    reproduce: ASAN_OPTIONS=$opts $bin |"
        # still a failure: said so that nobody hunts it in seqpar's code
        grep -q 'in H5D__chunk_set_info' "$log" &&
            echo "    a known HDF5 1.10.8 crash (tests/fuzz/README.md, \"HDF5\": Open)"
        failed+=("$n")
    fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzzing failed: ${failed[*]}; inputs and logs in $work"; exit 1; }
[ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
