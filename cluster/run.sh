#!/usr/bin/env bash
# Launches `seqpar train` on the nodes of a hostfile (Open MPI), the way a
# cluster run should go:
#  - the OpenBLAS kernel: Debian's OpenBLAS 0.3.21 falls back to its slowest
#    kernel (Prescott) on CPUs it does not know; on AVX-512 CPUs
#    OPENBLAS_CORETYPE=SkylakeX is 3-5x faster (AVX2: Haswell). It is chosen
#    here from this node's /proc/cpuinfo unless already set, and exported to
#    every rank (-x);
#  - threads: seqpar gives each rank (node cores / ranks on that node)
#    OpenBLAS threads; ranks are bound to cores (--bind-to core, --map-by
#    ppr:N:node) so they do not migrate;
#  - checkpoints: only rank 0 writes, so DIR needs to be on rank 0's node only;
#    --resume auto continues a stopped run from its newest good checkpoint.
#
#   usage: cluster/run.sh HOSTFILE RANKS_PER_NODE CHECKPOINT_DIR [seqpar train options…]
#   e.g.   cluster/run.sh hosts.txt 2 /scratch/fra --dataset fra-eng --epochs 30 --valid 2000
#   MONITOR=tcp://HOST:5555 adds --monitor (start `seqpar monitor --listen tcp://0.0.0.0:5555`
#   on HOST first); SEQPAR=path/to/seqpar (default: the build beside this script).
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
hostfile=$1 per_node=$2 dir=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
seqpar=${SEQPAR:-$root/build/trainer/seqpar}
[ -x "$seqpar" ] || { echo "cluster/run.sh: $seqpar not found (build first: cluster/quickstart.sh or cmake)" >&2; exit 2; }
[ -r "$hostfile" ] || { echo "cluster/run.sh: cannot read hostfile $hostfile" >&2; exit 2; }
nodes=$(grep -cv '^\s*\(#\|$\)' "$hostfile")
np=$((nodes * per_node))

if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
    fi
fi
envs=(-x SEQPAR_DATA="${SEQPAR_DATA:-$HOME/.cache/seqpar}")
[ -z "${OPENBLAS_CORETYPE:-}" ] || envs+=(-x OPENBLAS_CORETYPE)
extra=()
[ -z "${MONITOR:-}" ] || extra+=(--monitor "$MONITOR")
if [ "$(id -u)" = 0 ]; then envs+=(--allow-run-as-root); fi

echo "cluster/run.sh: $np ranks on $nodes node(s) ($per_node per node), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-default}"
exec mpirun --hostfile "$hostfile" -np "$np" --map-by "ppr:$per_node:node" --bind-to core \
    "${envs[@]}" "$seqpar" train --checkpoint-dir "$dir" --resume auto "${extra[@]}" "$@"
