#!/usr/bin/env bash
# The Debian packages seqpar needs. `deps.sh --list` prints them (build, test
# and runtime); `deps.sh --install` installs the missing ones (as root) or
# says what to install.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev hdf5-tools
      libzmq3-dev libcunit1-dev libcjson-dev libmicrohttpd-dev
      libcurl4-openssl-dev libzip-dev libssl-dev
      clang-format cppcheck
      # tests only: the fuzzers (tests/fuzz/), clang with its runtimes
      # (libFuzzer, ASan), which clang only recommends
      clang libclang-rt-dev
      python3 python3-torch python3-h5py python3-numpy python3-zmq python3-nltk
      curl chromium)

missing() {
    local p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

case "${1:---install}" in
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
*) echo "usage: $0 [--list|--install]" >&2; exit 2 ;;
esac
