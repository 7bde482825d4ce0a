#!/usr/bin/env bash
# Launches `seqpar train` on the nodes of a hostfile (Open MPI), the way a
# cluster run should go:
#  - the OpenBLAS kernel: Debian's OpenBLAS 0.3.21 falls back to its slowest
#    kernel (Prescott) on CPUs it does not know; on AVX-512 CPUs
#    OPENBLAS_CORETYPE=SkylakeX is 3-5x faster (AVX2: Haswell). It is chosen
#    here from this node's /proc/cpuinfo unless already set, and exported to
#    every rank (-x);
#  - cores: when every line of the hostfile says slots=S (the cores to use on
#    that node), each rank gets S / RANKS_PER_NODE of them, bound
#    (--map-by ppr:N:node:PE=k --bind-to core), and seqpar runs that many
#    OpenBLAS threads; otherwise ranks are not bound (--bind-to none) and
#    seqpar gives each (node cores / ranks on that node) threads. (Binding to
#    one core each, as --bind-to core alone does, left one rank per 2-core
#    node with one thread.)
#  - TCP_PROGRESS=1 adds Open MPI's TCP progress thread (--mca
#    btl_tcp_progress_thread 1): with --overlap on it lets a large gradient
#    (several buckets) cross a slow Ethernet link during backward; it costs
#    models whose gradient is one bucket (tests/bench/README.md, "Several
#    hosts", which also says when --grad-compress fp16 pays);
#  - SUPERVISE="--max-restarts 5" runs the job under `seqpar supervise`,
#    which relaunches it with --resume auto when a rank or node dies;
#  - checkpoints: only rank 0 writes, so DIR needs to be on rank 0's node only;
#    --resume auto continues a stopped run from its newest good checkpoint.
#
#   usage: cluster/run.sh HOSTFILE RANKS_PER_NODE CHECKPOINT_DIR [seqpar train options…]
#   e.g.   cluster/run.sh hosts.txt 2 /scratch/fra --dataset fra-eng --epochs 30 --valid 2000
#   MONITOR=tcp://HOST:5555 adds --monitor (start `seqpar monitor --listen tcp://0.0.0.0:5555`
#   on HOST first); SEQPAR=path/to/seqpar (default: the build beside this script).
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
hostfile=$1 per_node=$2 dir=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
seqpar=${SEQPAR:-$root/build/trainer/seqpar}
[ -x "$seqpar" ] || { echo "cluster/run.sh: $seqpar not found (build first: cluster/quickstart.sh or cmake)" >&2; exit 2; }
[ -r "$hostfile" ] || { echo "cluster/run.sh: cannot read hostfile $hostfile" >&2; exit 2; }
case $per_node in
'' | *[!0-9]* | 0) echo "cluster/run.sh: RANKS_PER_NODE must be a whole number >= 1, got '$per_node'" >&2; exit 2 ;;
esac
# the hostfile's lines without comments
hosts=$(sed 's/#.*//' "$hostfile" | grep -v '^[[:space:]]*$' || true)
nodes=$(printf '%s\n' "$hosts" | grep -c . || true)
[ "$nodes" -gt 0 ] || { echo "cluster/run.sh: $hostfile names no host" >&2; exit 2; }
np=$((nodes * per_node))
# the slots every node lists (slots=N, not max_slots=N), when they all list the same
slots=$(printf '%s\n' "$hosts" | sed -n 's/.*[[:space:]]slots[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' | sort -u)
with_slots=$(printf '%s\n' "$hosts" | grep -c '[[:space:]]slots[[:space:]]*=' || true)
if [ "$(echo "$slots" | grep -c .)" = 1 ] && [ "$with_slots" = "$nodes" ] &&
    [ "$slots" -ge "$per_node" ]; then
    pe=$((slots / per_node))
    placement=(--map-by "ppr:$per_node:node:PE=$pe" --bind-to core)
    how="$pe core(s) bound per rank"
else
    placement=(--map-by "ppr:$per_node:node" --bind-to none)
    how="unbound; seqpar divides each node's cores among its ranks"
fi

if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
    fi
fi
envs=(-x SEQPAR_DATA="${SEQPAR_DATA:-$HOME/.cache/seqpar}")
[ -z "${OPENBLAS_CORETYPE:-}" ] || envs+=(-x OPENBLAS_CORETYPE)
extra=()
[ -z "${MONITOR:-}" ] || extra+=(--monitor "$MONITOR")
between=
if [ "${TCP_PROGRESS:-0}" = 1 ]; then
    envs+=(--mca btl_tcp_progress_thread 1)
    between=", Open MPI's TCP progress thread"
fi
if [ "$(id -u)" = 0 ]; then envs+=(--allow-run-as-root); fi

echo "cluster/run.sh: $np ranks on $nodes node(s) ($per_node per node, $how), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-default}$between"
launch=(mpirun --hostfile "$hostfile" -np "$np" "${placement[@]}" "${envs[@]}"
        "$seqpar" train --checkpoint-dir "$dir" --resume auto "${extra[@]}" "$@")
if [ -n "${SUPERVISE:-}" ]; then
    # shellcheck disable=SC2086 # SUPERVISE holds options
    exec "$seqpar" supervise $SUPERVISE -- "${launch[@]}"
fi
exec "${launch[@]}"
