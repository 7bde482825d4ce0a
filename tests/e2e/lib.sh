# Helpers for the end-to-end shell tests. Each test sources this file with
# SEQPAR set to the binary; failures are counted and the script exits 1.
set -u
fails=0
checks=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/seqpar-e2e.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $*"; }
check() { # description, command…
    local d=$1; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
# expect_error DESCRIPTION PATTERN CMD… : exit 2, exactly one stderr line, matching PATTERN, no crash
expect_error() {
    local d=$1 pat=$2; shift 2
    local rc=0
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    local lines
    lines=$(grep -c '' "$tmp/err")
    if [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -Eq -- "$pat" "$tmp/err"; then
        ok "$d: $(cat "$tmp/err")"
    else
        bad "$d: exit $rc, $lines stderr lines: $(head -c 600 "$tmp/err")"
    fi
}
# monitor_url OUT [TRIES]: the dashboard's URL a monitor printed to OUT,
# waited for up to TRIES x 0.1 s (empty when it never came)
monitor_url() {
    local out=$1 tries=${2:-50} u=
    for _ in $(seq "$tries"); do
        u=$(sed -n 's/.*dashboard at \(http:[^ ]*\)\/$/\1/p' "$out" 2>/dev/null)
        [ -n "$u" ] && break
        sleep 0.1
    done
    echo "$u"
}
finish() {
    echo "$((checks - fails)) passed, $fails failed"
    [ "$fails" = 0 ]
}
