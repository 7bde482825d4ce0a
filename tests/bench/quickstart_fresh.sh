#!/usr/bin/env bash
# Times the README's first command on a fresh Debian 12: debootstraps a
# minimal bookworm (--variant=minbase: no compiler, no MPI, nothing of
# seqpar's) into a temporary directory, clones this checkout's HEAD into it,
# and runs cluster/quickstart.sh there under chroot, as root, on spare ports
# (so a monitor already running on 8080/5555 is not disturbed). Prints the
X
# the chroot. Run by hand, as root, with the Debian mirror reachable:
#   tests/bench/quickstart_fresh.sh            (KEEP=1 keeps the chroot)
# Needs debootstrap (apt-get install debootstrap). Takes about a minute here.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "quickstart_fresh.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "quickstart_fresh.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
mirror=${MIRROR:-http://deb.debian.org/debian}
dir=$(mktemp -d /var/tmp/seqpar-fresh.XXXXXX)
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done
    # the monitor the quickstart leaves running lives in the chroot (its
    # command line does not name it; its root does): stop it
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$dir" ] && kill "${p#/proc/}" 2>/dev/null
    done
    sleep 0.5
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

echo "== debootstrap bookworm (minbase) into $dir"
t0=$(date +%s.%N)
debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.debootstrap.log" 2>&1 ||
    { tail -20 "$dir.debootstrap.log"; exit 1; }
rm -f "$dir.debootstrap.log"
echo "   $(awk "BEGIN{printf \"%.0f\", $(date +%s.%N) - $t0}") s"
# the same suites as Debian 12's default sources (updates and security too)
cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -f "$dir/etc/apt/sources.list"
cp /etc/resolv.conf "$dir/etc/"
git clone -q "$root" "$dir/root/seqpar"
for m in proc sys dev dev/pts; do
    mount --bind "/$m" "$dir/$m"
    mounted+=("$dir/$m")
done
mount -t tmpfs tmpfs "$dir/dev/shm"
mounted+=("$dir/dev/shm")

echo "== cluster/quickstart.sh in the chroot (HEAD $(git -C "$root" rev-parse --short HEAD))"
t0=$(date +%s.%N)
rc=0
chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    QUICKSTART_HTTP=127.0.0.1:18931 QUICKSTART_LISTEN=tcp://127.0.0.1:18932 \
    bash -c 'cd /root/seqpar && cluster/quickstart.sh' >"$dir/quickstart.out" 2>&1 || rc=$?
t1=$(date +%s.%N)
if [ $rc != 0 ]; then
    tail -30 "$dir/quickstart.out"
    echo "quickstart_fresh.sh: the quickstart failed (exit $rc)" >&2
    exit 1
fi
grep -E '^(Fetched|Need to get|[0-9]+ upgraded)' "$dir/quickstart.out" | sed 's/^/   apt: /'
grep -E '^done step=' "$dir/quickstart.out" | sed 's/^/   train: /'
echo "quickstart on a fresh Debian 12 (minbase): $(awk "BEGIN{printf \"%.0f\", $t1 - $t0}") s wall," \
    "$(nproc) cores"
