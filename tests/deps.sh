#!/usr/bin/env bash
# The Debian packages seqpar needs, in two sets: what building and running it
# needs (the quickstart), and on top what its tests and lints need
# (tests/run.sh, CI).
#   deps.sh --list [run|all]      prints the packages (default all)
#   deps.sh --install [run|all]   installs the missing ones (as root) or says what to install
set -euo pipefail
RUN_PKGS=(build-essential cmake pkg-config
          libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev
          libzmq3-dev libcjson-dev libmicrohttpd-dev
          libcurl4-openssl-dev libzip-dev libssl-dev libutf8proc-dev curl)
TEST_PKGS=(libcunit1-dev hdf5-tools clang-format cppcheck
           python3 python3-torch python3-h5py python3-numpy python3-zmq python3-nltk
           chromium valgrind man-db
           prometheus # promtool and a server scraping the monitor (e2e/monitor_prometheus.sh)
           iproute2 util-linux # cluster/test-multihost.sh: network namespaces, veth, tc; unshare, nsenter
           clang libclang-rt-dev) # the fuzzers (tests/fuzz/): clang with its runtimes (libFuzzer, ASan), which clang only recommends

action=${1:---install} set=${2:-all}
case $set in
run) PKGS=("${RUN_PKGS[@]}") ;;
all) PKGS=("${RUN_PKGS[@]}" "${TEST_PKGS[@]}") ;;
*) echo "usage: $0 [--list|--install] [run|all]" >&2; exit 2 ;;
esac

missing() {
    local p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

case "$action" in
--list) printf '%s\n' "${PKGS[@]}" ;;
--install)
    need=$(missing | tr '\n' ' ')
    [ -z "$need" ] && exit 0
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        # shellcheck disable=SC2086
        apt-get install -y --no-install-recommends $need
    else
        echo "seqpar needs these Debian packages: $need" >&2
        echo "install them with: sudo apt-get install -y $need" >&2
        exit 1
    fi
    ;;
*) echo "usage: $0 [--list|--install] [run|all]" >&2; exit 2 ;;
esac
