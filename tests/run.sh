#!/usr/bin/env bash
# Installs what is missing (Debian, as root), builds seqpar from scratch and
# runs every test with ctest: once in the normal build, once under
# AddressSanitizer + UndefinedBehaviorSanitizer (all but the long book-results
# run and the lint, which do not change with the build); then, when clang
# has libFuzzer, every fuzzer for 10 s on its seeds (tests/fuzz/README.md).
#   SEQPAR_DATA   corpora (default ../shared/data beside the checkout)
#   SEQPAR_NO_ASAN=1  skip the sanitizer pass
#   SEQPAR_NO_FUZZ=1  skip the fuzzers; SEQPAR_FUZZ_SECONDS=N  N s each
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tests/deps.sh" --install

export SEQPAR_DATA=${SEQPAR_DATA:-$(cd "$root/.." && pwd)/shared/data}
if [ ! -f "$SEQPAR_DATA/timemachine.txt" ]; then
    echo "tests/run.sh: corpora not found in $SEQPAR_DATA (set SEQPAR_DATA)" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
jobs=$(nproc)

run_pass() { # name, ctest exclusion regex, extra cmake args…
    local dir="$root/build-tests-$1" exclude=$2
    shift 2
    rm -rf "$dir"
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEQPAR_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure --timeout 900 ${exclude:+-E "$exclude"})
    # ctest says only "Skipped": the reasons the skipped tests gave (e.g.
    # e2e_multihost without root or network namespaces)
    grep -hi '^skipped: ' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | sed 's/^/tests\/run.sh: /' || true
}

echo "== build and test (RelWithDebInfo, -Werror)"
run_pass release ""
if [ "${SEQPAR_NO_ASAN:-0}" != 1 ]; then
    echo "== build and test under ASan + UBSan"
    # Open MPI and the Python reference leak at exit by design: leaks are not
    # what this pass looks for; memory errors and undefined behaviour are.
    # codegen reads the optimised loops, which the instrumentation keeps scalar;
    # valgrind cannot run sanitized binaries.
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_pass asan '^(e2e_book|lint|codegen|e2e_valgrind)$' -DSEQPAR_SANITIZE=ON
fi
if [ "${SEQPAR_NO_FUZZ:-0}" != 1 ]; then
    echo "== fuzzers (clang, libFuzzer + ASan + UBSan), ${SEQPAR_FUZZ_SECONDS:-10} s each"
    rm -rf "$root/build-tests-fuzz"
    rc=0
    FUZZ_BUILD=$root/build-tests-fuzz "$root/tests/fuzz/run.sh" "${SEQPAR_FUZZ_SECONDS:-10}" || rc=$?
    if [ $rc = 77 ]; then
        echo "tests/run.sh: fuzzers SKIPPED: no clang with libFuzzer (tests/deps.sh installs it)"
    elif [ $rc != 0 ]; then
        exit $rc
    fi
fi
