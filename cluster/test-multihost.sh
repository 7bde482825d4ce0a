#!/usr/bin/env bash
# seqpar on several hosts over real TCP (issue 23), on one machine: each
# "host" is a network namespace of its own, with its own address on a private
# range made for the run (10.213.S.0/24, S from this script's PID) and its own
# directory, joined to the others by a veth pair into a bridge that lives in a
# further namespace (the "switch"). Nothing is added to the machine's own
# namespace, and traffic goes only between the namespaces made here.
#
#   cluster/test-multihost.sh [path/to/seqpar]           the test (ctest e2e_multihost)
#   cluster/test-multihost.sh --bench [path/to/seqpar]   scaling under shaped links
#   cluster/test-multihost.sh --project                  the cost model to 64 hosts
#
# How a host is reached: Open MPI's rsh launcher is given an agent
# (--mca plm_rsh_agent) that, instead of ssh, maps the host's address to its
# namespace and runs orted there (ip netns exec), in a UTS namespace of its
# own (hostname seqpar-hI) and a mount namespace in which every other host's
# directory is replaced by an empty one of its own: a rank that read or
# wrote another host's directory (rank 0's checkpoints) would see nothing and
# leave its files behind, where the test looks. mpirun itself runs in host
# 0's namespace. Between hosts: --mca pml ob1 --mca btl tcp,self (no shared
# memory), btl_tcp_if_include and oob_tcp_if_include the test's range.
#
# The test (3 hosts x 1 rank, about 10 s): trains the book's translation model
# with dropout and checkpoints every 10 steps in host 0's directory, kills
# host 2 (every process in its namespace, SIGKILL) after step 40, checks the
# job ends with a non-zero status within 30 s, resumes with --resume auto on
# hosts 0 and 1 (2 ranks, the same global batch) to step 100 and compares the
# parameters with a single-host run of 100 steps (seqpar ckpt diff
# --tolerance 1e-4, as tests/e2e/parallel.sh); the veth byte counters of
# host 1 show the gradients went over the link; cluster/run.sh then trains
# over hosts 0 and 1 (the agent and the transport given to it as OMPI_MCA_*
# variables) with TCP_PROGRESS=1. Needs root, iproute2 and
# util-linux (unshare); exits 77 with the reason where it cannot run. Every
# namespace it made (and with them their links) is deleted on any exit, and
# checked gone.
#
# --bench: tokens/s, the share of training time in gradient communication
# and the milliseconds per step of the book, large and LM models of
# tests/bench/perf.sh at the same batch per rank as perf.sh's 1 x 1 (weak
# scaling): 2 ranks on one host (shared memory) against 2 hosts x 1 rank
# over links shaped with tc tbf (plus netem's 0.2 ms delay where the kernel
# has netem), --overlap off and on, two bucket sizes. Each host (and each of
# the one-host ranks) is pinned to one core (taskset). Configurations run in
# alternation, REPS times (default 3); medians, and each run against the
# shared-memory run just before it. MODELS="book large lm",
# BUCKETS="1024 8192", RATES="10gbit 1gbit 1gbit+pt" (+pt: Open MPI's TCP
# progress thread; RATE:WIRE for one --grad-compress), WIRES="none" (each
# RATE's --grad-compress values); ALLREDUCE=1 first runs
# tests/bench/allreduce_bench over each link (0: not; only: nothing else).
# Figures: tests/bench/README.md.
#
# --project: the ring allreduce cost model (see run_project) for 2, 8 and
# 64 hosts at 10 and 1 Gbit/s from the compute times measured here.
set -uo pipefail
mode="test"
case ${1:-} in
--bench) mode=bench; shift ;;
--project) mode=project; shift ;;
esac
# --project: the ring allreduce cost model from 2 to 64 hosts (no root, no
# run: arithmetic on figures measured on this machine; MODEL_FIGURES may
# replace them: "name gradient-bytes buckets(1 MiB) buckets(8 MiB) compute-ms
# tok/s-of-one-rank;…")
#   T_comm(p) = 2 (p-1)/p · S/B + k · 2 (p-1) · α      (ring; k buckets, one after another)
#               or log2(p) · (S/B + k · α) when less (recursive doubling, which Open MPI
#               takes for small messages)
#   overlap off: T_step = T_c + T_comm
#   overlap on:  T_step = T_c + max(T_comm / k, T_comm - h · T_c)   (the part of the step
#                after the first bucket is final, h, hides the transfer; the last
#                bucket's cannot hide, it starts when backward ends)
#   fp16 wire:   S/2, plus each bucket's scale agreement, 2 log2(p) · α
#   efficiency = T_c / T_step (weak scaling: each rank's batch fixed);
#   tok/s = p · (one rank's tok/s) · efficiency
run_project() {
    local figures=${MODEL_FIGURES:-"book 189476 1 1 1.6 202447;lm 919676 1 1 15 63214;large 39504844 11 4 270 1243"}
    local alpha=${ALPHA_MS:-0.225} h=${HIDE:-0.6} eff=${LINK_EFF:-0.94}
    echo "ring allreduce model: α = $alpha ms per message (0.2 ms link delay + software), B = $eff x line rate"
    echo "(TCP/IP headers at MTU 1500), h = $h of a step's compute can hide the transfer, one rank per host,"
    echo "a non-blocking switch; ring or recursive doubling, whichever is faster; the better of"
    echo "--bucket-kb 1024 and 8192 in each column"
    printf '%-6s %-7s %5s %10s %8s %8s %8s %13s\n' model link hosts "T_comm ms" "eff off" "eff on" "on+fp16" "tok/s on+fp16"
    echo "$figures" | tr ';' '\n' | while read -r name S k1 k8 tc tok; do
        for link in 10gbit 1gbit; do
            for p in 2 8 64; do
                awk -v S="$S" -v k1="$k1" -v k8="$k8" -v tc="$tc" -v tok="$tok" -v B="${link%gbit}e9" -v p="$p" \
                    -v a="$alpha" -v h="$h" -v e="$eff" -v name="$name" -v link="$link" '
                    function max(x, y) {return x > y ? x : y}
                    function min(x, y) {return x < y ? x : y}
                    function tcomm(bytes, k, extra,   ring, rd) {
                        ring = 1000 * 2 * (p - 1) / p * bytes / (B / 8 * e) + k * 2 * (p - 1) * a
                        rd = lg * (1000 * bytes / (B / 8 * e) + k * a) # recursive doubling
                        return min(ring, rd) + extra
                    }
                    function off(bytes, k, x) {return tc + tcomm(bytes, k, x)}
                    function on(bytes, k, x,   t) {t = tcomm(bytes, k, x); return tc + max(t / k, t - h * tc)}
                    BEGIN {
                        lg = log(p) / log(2)
                        t = min(tcomm(S, k1, 0), tcomm(S, k8, 0))
                        o = min(off(S, k1, 0), off(S, k8, 0))
                        n = min(on(S, k1, 0), on(S, k8, 0))
                        n16 = min(on(S / 2, k1, k1 * 2 * lg * a), on(S / 2, k8, k8 * 2 * lg * a))
                        printf "%-6s %-7s %5d %10.1f %7.0f%% %7.0f%% %7.0f%% %13.0f\n", name, link, p, t,
                            100 * tc / o, 100 * tc / n, 100 * tc / n16, p * tok * tc / n16
                    }'
            done
        done
    done
}

if [ "$mode" = project ]; then
    run_project
    exit
fi
root=$(cd "$(dirname "$0")/.." && pwd)
S=${1:-$root/build/trainer/seqpar}
S=$(cd "$(dirname "$S")" && pwd)/$(basename "$S")
export SEQPAR_DATA=${SEQPAR_DATA:-$root/../shared/data}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

skip() { echo "skipped: cluster/test-multihost.sh: $*"; exit 77; }
[ -x "$S" ] || { echo "cluster/test-multihost.sh: $S not found (build first)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces (ip netns); run it as root"
for tool in ip tc unshare nsenter taskset mpirun; do
    command -v $tool >/dev/null || skip "needs '$tool' (tests/deps.sh installs iproute2, util-linux and openmpi-bin)"
done
[ -f "$SEQPAR_DATA/fra-eng/fra.txt" ] || { echo "cluster/test-multihost.sh: corpora not found in $SEQPAR_DATA (set SEQPAR_DATA)" >&2; exit 2; }
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then # as cluster/run.sh
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
    fi
fi

id=$$
P=seqpar-mh$id           # every namespace's name starts with it
sub=$((id % 250 + 1))    # 10.213.$sub.0/24: the test's hosts, .10 + host number
net=10.213.$sub
cidr=$net.0/24
# shellcheck source=../tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh" # ok, bad, check, finish; $tmp
made=()                  # the namespaces made, for the cleanup

# kills what runs in each namespace made and deletes it (its links go with
# it); quiet, idempotent
cleanup() {
    local ns pids
    for ns in "${made[@]}"; do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null
    done
    for ns in "${made[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.1
        done
        ip netns del "$ns" 2>/dev/null
    done
    made=()
}
trap 'cleanup; rm -rf "$tmp"' EXIT
# namespaces left by a run of this script that was killed (SIGKILL, where no
# trap runs): seqpar-mhPID-… whose PID is gone
for ns in $(ip netns list 2>/dev/null | sed -n 's/^\(seqpar-mh\([0-9]*\)-[a-z0-9]*\).*/\1:\2/p'); do
    # (a killed run's shell may linger as a zombie: its command line is empty)
    grep -q test-multihost "/proc/${ns#*:}/cmdline" 2>/dev/null && continue
    pids=$(ip netns pids "${ns%:*}" 2>/dev/null)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null
    ip netns del "${ns%:*}" 2>/dev/null && echo "removed ${ns%:*}, left by a killed run"
done
trap 'exit 130' INT
trap 'exit 143' TERM

ns_of() { echo "$P-h$1"; }
# in_ns NS CMD…
in_ns() { ip netns exec "$1" "${@:2}"; }

# hosts N: makes the switch and N hosts (namespaces, veth, addresses, lo up)
hosts() {
    local n=$1 i h err
    if ! err=$(ip netns add "$P-sw" 2>&1); then skip "ip netns add failed: $err"; fi
    made+=("$P-sw")
    ip -n "$P-sw" link add br0 type bridge && ip -n "$P-sw" link set br0 up &&
        ip -n "$P-sw" link set lo up || return 1
    for ((i = 0; i < n; i++)); do
        h=$(ns_of $i)
        ip netns add "$h" || return 1
        made+=("$h")
        # the pair is made in the two namespaces at once: no end ever exists
        # in the machine's own namespace
        ip link add name mh0 netns "$h" type veth peer name "h$i" netns "$P-sw" || return 1
        ip -n "$P-sw" link set "h$i" master br0 && ip -n "$P-sw" link set "h$i" up &&
            ip -n "$h" addr add "$net.$((10 + i))/24" dev mh0 && ip -n "$h" link set mh0 up &&
            ip -n "$h" link set lo up || return 1
        mkdir -p "$tmp/host$i"
    done
    nhosts=$n
}

# shape RATE: every link (both ways) at RATE with tc tbf, and netem's 0.2 ms
# delay under it where the kernel has netem; "" removes the shaping. Sets
# delay_note.
shape() {
    local rate=$1 i dev ns burst bits
    delay_note=
    for ((i = 0; i < nhosts; i++)); do
        for dev in "$(ns_of $i):mh0" "$P-sw:h$i"; do
            ns=${dev%%:*} dev=${dev#*:}
            tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null
            [ -n "$rate" ] || continue
            # burst: BURST_US (default 1000) microseconds at the rate, at
            # least 16 KiB. A burst lets that much through at the veth's own
            # speed after a pause: 1 ms at 1 Gbit/s is 125 kB, most of the
            # book model's 189 kB gradient, so small gradients cross faster
            # than on a real link; 0.1 ms (16 KiB) made them 3-10x slower
            # than a real link (tbf's timer against TCP's pacing). Queue:
            # 20 ms (a sender's NIC does not drop what its host sends; a
            # short queue here did, and TCP halved its window each time)
            bits=$(echo "$rate" | sed 's/gbit$/000000000/; s/mbit$/000000/')
            burst=$((bits / 8 * ${BURST_US:-1000} / 1000000))
            [ $burst -ge 16384 ] || burst=16384
            tc -n "$ns" qdisc add dev "$dev" root handle 1: tbf rate "$rate" burst $burst latency ${TBF_LATENCY:-20ms} ||
                return 1
            if tc -n "$ns" qdisc add dev "$dev" parent 1:1 handle 10: netem delay 0.2ms 2>/dev/null; then
                delay_note="netem delay 0.2 ms each way"
            else
                delay_note="no added delay: this kernel has no netem (CONFIG_NET_SCH_NETEM), the veth's own latency only"
            fi
        done
    done
}

# the launcher's agent and the way into a host: $tmp/enter I CMD… runs CMD
# in host I's namespaces, cwd its directory, the other hosts' directories
# hidden, pinned to a core when $tmp/cpuI holds one
cat >"$tmp/enter" <<EOF
#!/bin/sh
# enter I CMD...: CMD in host I (network, UTS and mount namespaces)
i=\$1
shift
if [ "\${SEQPAR_MH_INSIDE:-}" != \$i ]; then
    # from the test's own mount namespace (the agent runs in host 0's)
    SEQPAR_MH_INSIDE=\$i exec nsenter --mount=/proc/$id/ns/mnt ip netns exec $P-h\$i \\
        unshare --uts --mount --propagation private "\$0" "\$i" "\$@"
fi
unset SEQPAR_MH_INSIDE
hostname seqpar-h\$i
for d in $tmp/host[0-9]*; do
    j=\${d##*/host}
    [ "\$j" = "\$i" ] && continue
    mkdir -p $tmp/host\$i/seen-as-host\$j
    mount --bind $tmp/host\$i/seen-as-host\$j "\$d" || exit 1
done
cd $tmp/host\$i || exit 1
[ -f $tmp/cpu\$i ] && exec taskset -c "\$(cat $tmp/cpu\$i)" "\$@"
exec "\$@"
EOF
cat >"$tmp/agent" <<EOF
#!/bin/sh
# Open MPI's rsh agent: agent [options] HOST COMMAND...: COMMAND (a shell
# command line, as ssh would run it) in HOST's namespace
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1
shift
case \$host in
$net.1[0-9]) i=\${host#$net.1} ;;
*) echo "agent: \$host is not one of this test's hosts" >&2; exit 1 ;;
esac
exec $tmp/enter "\$i" /bin/sh -c "\$*"
EOF
chmod +x "$tmp/enter" "$tmp/agent"

# mh_mpirun NHOSTS MPIRUN-ARGS…: mpirun in host 0 over hosts 0..NHOSTS-1, one
# rank each, TCP only
mh_mpirun() {
    local n=$1 i
    shift
    : >"$tmp/mpi-hosts"
    for ((i = 0; i < n; i++)); do echo "$net.$((10 + i)) slots=1" >>"$tmp/mpi-hosts"; done
    local env=(-x SEQPAR_DATA)
    [ -z "${OPENBLAS_CORETYPE:-}" ] || env+=(-x OPENBLAS_CORETYPE)
    "$tmp/enter" 0 mpirun --hostfile "$tmp/mpi-hosts" -np "$n" --map-by ppr:1:node --bind-to none \
        --mca plm_rsh_agent "$tmp/agent" --mca pml ob1 --mca btl tcp,self \
        --mca btl_tcp_if_include "$cidr" --mca oob_tcp_if_include "$cidr" "${env[@]}" "$@"
}

# bytes I: the bytes host I's link received and sent so far
bytes() {
    in_ns "$(ns_of "$1")" cat /sys/class/net/mh0/statistics/rx_bytes /sys/class/net/mh0/statistics/tx_bytes |
        paste -sd' '
}


# ------------------------------------------------------------------ the test
run_test() {
    local args=(train --dataset fra-eng --num-examples 600 --dropout 0.2 --sampler random --batch 64
                --epochs 1000 --threads 1 --log-every 10 --seed 5)
    local ck=$tmp/host0/ckpt rc start took victim at params
    hosts 3 || { bad "could not make the namespaces and links"; return; }
    ok "3 hosts: namespaces $P-h0..h2 at $net.10-12 (bridge in $P-sw), TCP only ($cidr)"

    # 1. 3 hosts x 1 rank, checkpoints every 10 steps in host 0's directory;
    # host 2 dies (SIGKILL to everything in its namespace) once step 40's is written
    mh_mpirun 3 "$S" "${args[@]}" --checkpoint-every 10 --checkpoint-dir "$ck" \
        >"$tmp/run1.out" 2>&1 &
    local job=$!
    for _ in $(seq 600); do
        grep -q 'ckpt-00000040.h5' "$tmp/run1.out" 2>/dev/null && break
        kill -0 $job 2>/dev/null || break
        sleep 0.1
    done
    check "3 hosts x 1 rank train over TCP: $(grep -m1 '^seqpar ' "$tmp/run1.out")" \
        grep -q '^seqpar .*: 3 ranks x 1 OpenBLAS thread (--threads 1; [0-9]* cores*, 1 rank on this node' "$tmp/run1.out"
    victim=$(ip netns pids "$(ns_of 2)" | paste -sd' ')
    at=$(grep -o '^step [0-9]*' "$tmp/run1.out" | tail -1)
    start=$(date +%s.%N)
    if [ -n "$victim" ] && kill -0 $job 2>/dev/null; then
        kill -9 $victim
        for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
        if kill -0 $job 2>/dev/null; then
            bad "the job still runs 30 s after host 2 was killed"
            kill -9 $job
        fi
        rc=0
        wait $job || rc=$?
        took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
        check "killing host 2 (pids $victim) after '$at' ends the job with a non-zero exit ($rc) in ${took} s" \
            test "$rc" != 0
    else
        bad "host 2 had no process to kill, or the job had ended: $(tail -5 "$tmp/run1.out")"
        return
    fi

    # 2. resumed on hosts 0 and 1 (2 ranks, the same global batch) to step 100
    local before after
    before=$(bytes 1)
    mh_mpirun 2 "$S" "${args[@]}" --max-steps 100 --checkpoint-dir "$ck" --resume auto \
        >"$tmp/run2.out" 2>&1 || bad "the resumed run failed: $(tail -5 "$tmp/run2.out")"
    after=$(bytes 1)
    local from
    from=$(sed -n 's/^resumed from .* at step \([0-9]*\) .*/\1/p' "$tmp/run2.out")
    check "resumed on 2 hosts from host 0's checkpoint of step ${from:-?}: $(grep -m1 '^seqpar ' "$tmp/run2.out")" \
        grep -q '^seqpar .*: 2 ranks x 1 OpenBLAS thread' "$tmp/run2.out"
    check "... and trained to step 100" grep -q '^done step=100 ' "$tmp/run2.out"

    # 3. against one process on one host
    "$S" "${args[@]}" --max-steps 100 --checkpoint-dir "$tmp/ref" >"$tmp/ref.out" 2>&1 ||
        bad "the single-host run failed: $(tail -3 "$tmp/ref.out")"
    if "$S" ckpt diff "$tmp/ref/ckpt-00000100.h5" "$ck/ckpt-00000100.h5" --tolerance 1e-4 >"$tmp/diff" 2>&1; then
        ok "3 hosts, host 2 killed, resumed on 2 = 1 process after 100 steps: $(head -1 "$tmp/diff" | sed 's/  */ /g')"
    else
        bad "the resumed run differs from one process beyond 1e-4: $(cat "$tmp/diff")"
    fi

    # 4. the gradients went over host 1's link: at least half the gradient
    # each way per step (a 2-rank allreduce moves the whole of it each way)
    params=$(sed -n 's/.* \([0-9]*\) parameters;.*/\1/p' "$tmp/ref.out")
    local steps=$((100 - ${from:-100}))
    read -r rx0 tx0 <<<"$before"
    read -r rx1 tx1 <<<"$after"
    local grad=$((4 * ${params:-0}))
    check "host 1's link carried $(((rx1 - rx0) / 1000)) kB in, $(((tx1 - tx0) / 1000)) kB out over $steps steps of a $((grad / 1000)) kB gradient ($(awk -v b=$((rx1 - rx0)) -v g=$grad -v n=$steps 'BEGIN {printf "%.2f", b / (g * (n > 0 ? n : 1))}') x per step in)" \
        test $steps -gt 0 -a $((rx1 - rx0)) -ge $((grad * steps / 2)) -a $((tx1 - tx0)) -ge $((grad * steps / 2))

    # 5. nothing shared: checkpoints in host 0's directory only; hosts 1
    # and 2 wrote nothing in their view of it, nor any checkpoint
    check "checkpoints only in host 0's directory: $(ls "$ck" | paste -sd' ')" \
        test -z "$(find "$tmp/host1" "$tmp/host2" -name '*.h5')"
    check "... and hosts 1 and 2 wrote nothing where host 0's directory is (their own empty stand-in)" \
        test -z "$(find "$tmp/host1" "$tmp/host2" -mindepth 2 | head -1)"

    # 6. cluster/run.sh over hosts 0 and 1 with the TCP progress thread
    # (TCP_PROGRESS=1) and --overlap on, the launcher's agent and transport
    # given as Open MPI's environment variables
    printf '%s slots=1\n' "$net.10" "$net.11" >"$tmp/run-hosts"
    OMPI_MCA_plm_rsh_agent=$tmp/agent OMPI_MCA_pml=ob1 OMPI_MCA_btl=tcp,self \
        OMPI_MCA_btl_tcp_if_include=$cidr OMPI_MCA_oob_tcp_if_include=$cidr SEQPAR=$S TCP_PROGRESS=1 \
        "$tmp/enter" 0 bash "$root/cluster/run.sh" "$tmp/run-hosts" 1 "$tmp/host0/runsh" \
        "${args[@]:1}" --max-steps 20 --log-every 10 --overlap on >"$tmp/runsh.out" 2>&1 ||
        bad "cluster/run.sh over 2 hosts failed: $(tail -5 "$tmp/runsh.out")"
    check "cluster/run.sh, 2 nodes: $(grep -o '2 ranks on 2 node(s).*' "$tmp/runsh.out"); $(grep -o 'gradient allreduce ([^)]*)' "$tmp/runsh.out")" \
        grep -q "2 ranks on 2 node(s) .*TCP progress thread" "$tmp/runsh.out"
    check "... and trained: $(grep '^done' "$tmp/runsh.out")" grep -q '^done step=20 ' "$tmp/runsh.out"

    # 7. cleanup: every namespace (and so every link) made here is gone
    local list=("${made[@]}")
    cleanup
    local left
    left=$(ip netns list | grep -c "^$P-")
    check "the ${#list[@]} namespaces made (${list[*]}) and their links are gone" test "$left" = 0
}

if [ "$mode" = test ]; then
    run_test
    finish
    exit
fi

# ----------------------------------------------------------------- the bench
# the models of tests/bench/perf.sh, at twice its batch (the same batch per
# rank as its 1 x 1: weak scaling); shorter where perf.sh trains long
args_book=(--dataset fra-eng --num-examples 600 --embed 32 --hidden 32 --layers 2 --batch 128 --steps 10
           --epochs 1000 --max-steps ${BOOK_STEPS:-300})
args_large=(--dataset fra-eng --num-examples 20000 --embed 256 --hidden 512 --layers 2 --batch 128 --steps 20
            --max-steps ${LARGE_STEPS:-20})
args_lm=(--task lm --dataset timemachine --embed 0 --hidden 256 --layers 1 --batch 64 --steps 35
         --sampler sequential --optimizer sgd --lr 1 --dropout 0 --max-steps ${LM_STEPS:-200})
median() { { grep -v nan || true; } | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }

# bench_one MODEL LINK WIRE OVERLAP BUCKET: one run; appends its tokens/s,
# communication share and per-step training and communication times (ms)
# to $tmp/b-MODEL-LINK-WIRE-OVERLAP-BUCKET.{tps,comm,ms} ("nan" when it failed,
# so that line i of every file is repetition i)
bench_one() {
    local model=$1 link=$2 wire=$3 ov=$4 bk=$5 log=$tmp/blog rc=0
    eval "local a=(\"\${args_$model[@]}\")"
    local run=("$S" train "${a[@]}" --threads 1 --overlap "$ov" --bucket-kb "$bk" --grad-compress "$wire"
               --log-every 100000)
    if [ "$link" = shm ]; then
        local env=(-x SEQPAR_DATA)
        [ -z "${OPENBLAS_CORETYPE:-}" ] || env+=(-x OPENBLAS_CORETYPE)
        mpirun -np 2 --bind-to core "${env[@]}" "${run[@]}" >"$log" 2>&1 || rc=$?
    else
        # RATE, or RATE+pt: with Open MPI's TCP progress thread
        local rate=${link%+pt} pt=0
        [ "$rate" = "$link" ] || pt=1
        [ "$rate" = "$shaped" ] || { shape "$rate" || return 1; shaped=$rate; }
        mh_mpirun 2 --mca btl_tcp_progress_thread $pt "${run[@]}" >"$log" 2>&1 || rc=$?
    fi
    local f=$tmp/b-$model-$link-$wire-$ov-$bk steps
    steps=$(sed -n 's/^done step=\([0-9]*\) .*/\1/p' "$log")
    if [ $rc != 0 ] || [ -z "$steps" ]; then
        echo "bench: $model $link $wire overlap $ov bucket $bk failed ($rc): $(tail -3 "$log")" >&2
        echo nan >>"$f.tps" && echo nan >>"$f.comm" && echo "nan nan" >>"$f.ms"
        return
    fi
    grep -o 'tokens_per_s=[0-9]*' "$log" | cut -d= -f2 >>"$f.tps"
    { grep -o '[0-9.]*% of training time' "$log" || echo "0% of"; } | cut -d% -f1 >>"$f.comm"
    # per step, slowest rank: communication and training time, from "(C s of T s, slowest rank)"
    { sed -n 's/.*(\([0-9.]*\) s of \([0-9.]*\) s, slowest rank).*/\1 \2/p' "$log" | grep . ||
        echo "nan nan"; } | awk -v n="$steps" '{printf "%.1f %.1f\n", 1000 * $1 / n, 1000 * $2 / n}' >>"$f.ms"
    [ -f "$tmp/b-params-$model" ] || sed -n 's/.* \([0-9]*\) parameters;.*/\1/p' "$log" >"$tmp/b-params-$model"
    [ -f "$tmp/b-kernel" ] || grep -o 'kernel [A-Za-z0-9]*' "$log" | head -1 >"$tmp/b-kernel"
}

# paired A B: the median (min-max) over repetitions of A's tokens/s over B's
paired() {
    paste "$1" "$2" | awk '$1 != "nan" && $2 != "nan" && $2 > 0 {print $1 / $2}' | sort -g |
        awk '{a[NR] = $1} END {if (NR) printf "%.0f%% (%.0f-%.0f)", 100 * a[int((NR + 1) / 2)], 100 * a[1], 100 * a[NR]; else print "nan"}'
}

run_bench() {
    local reps=${REPS:-3} models=${MODELS:-book large lm} rates=${RATES:-10gbit 1gbit 1gbit+pt}
    local buckets=${BUCKETS:-1024 8192} wires=${WIRES:-none} model ov bk link wire
    hosts 2 || { echo "bench: could not make the namespaces" >&2; return 1; }
    echo 0 >"$tmp/cpu0"
    echo $(($(nproc) > 1 ? 1 : 0)) >"$tmp/cpu1"
    shaped=
    local configs="shm:none" r w
    for r in $rates; do # RATE (with each of WIRES) or RATE:WIRE
        case $r in
        *:*) configs+=" $r" ;;
        *) for w in $wires; do configs+=" $r:$w"; done ;;
        esac
    done
    for model in $models; do
        for _ in $(seq "$reps"); do
            for ov in off on; do
                for bk in $buckets; do
                    for c in $configs; do bench_one "$model" "${c%:*}" "${c#*:}" $ov "$bk"; done
                done
            done
        done
    done
    [ -n "$shaped" ] || shape "${rates%%[ +:]*}"
    echo "seqpar, 2 ranks x 1 thread, each pinned to one of $(nproc) cores; OpenBLAS $(cat "$tmp/b-kernel" 2>/dev/null);" \
        "$reps repetitions taken in alternation; weak scaling (perf.sh's batch per rank)"
    echo "links: 2 hosts (network namespaces) over veth + bridge, tc tbf on both ends of each link; $delay_note"
    printf '%-6s %-9s %-5s %-4s %6s %9s %18s %8s %8s %8s %8s\n' model link wire ovl bucket "tok/s" \
        "paired vs shm" "vs best" "comm" "step ms" "comm ms"
    for model in $models; do
        local best=0 t f shm
        for ov in off on; do for bk in $buckets; do
            t=$(median <"$tmp/b-$model-shm-none-$ov-$bk.tps")
            best=$(awk -v a="$t" -v b="$best" 'BEGIN {print (a != "nan" && a > b) ? a : b}')
        done; done
        for c in $configs; do for ov in off on; do for bk in $buckets; do
            f=$tmp/b-$model-${c%:*}-${c#*:}-$ov-$bk
            shm=$tmp/b-$model-shm-none-$ov-$bk
            t=$(median <"$f.tps")
            printf '%-6s %-9s %-5s %-4s %6s %9s %18s %7.0f%% %7s%% %8s %8s\n' "$model" "${c%:*}" "${c#*:}" $ov "$bk" "$t" \
                "$(paired "$f.tps" "$shm.tps")" \
                "$(awk -v a="$t" -v b="$best" 'BEGIN {print (b > 0 && a != "nan") ? 100 * a / b : 0}')" \
                "$(median <"$f.comm")" "$(awk '{print $2}' "$f.ms" | median)" "$(awk '{print $1}' "$f.ms" | median)"
        done; done; done
        echo "       $model: $(cat "$tmp/b-params-$model") parameters, a $(awk -v p="$(cat "$tmp/b-params-$model")" 'BEGIN {printf "%.1f", 4 * p / 1e6}') MB gradient"
    done
    echo "(tok/s = target tokens per second over both ranks, median; paired vs shm = each repetition's tok/s"
    echo " against the 2-rank shared-memory run with the same overlap and bucket taken just before it, median"
    echo " (lowest-highest); vs best = median tok/s against the model's best shared-memory configuration;"
    echo " comm = share of training time the slowest rank spent in gradient communication; step ms and"
    echo " comm ms = training time and communication per step, slowest rank; +pt = with Open MPI's TCP"
    echo " progress thread, --mca btl_tcp_progress_thread 1; wire = --grad-compress)"
}

# the link itself: tests/bench/allreduce_bench over each shaped link (the
# bandwidth and latency the cost model of tests/bench/README.md takes)
run_allreduce() {
    local ab=${ALLREDUCE_BENCH:-$(dirname "$(dirname "$S")")/tests/allreduce_bench} rate
    [ -x "$ab" ] || { echo "bench: $ab not found: link figures skipped" >&2; return 0; }
    [ -n "${nhosts:-}" ] || hosts 2 || return 1
    echo 0 >"$tmp/cpu0"
    echo $(($(nproc) > 1 ? 1 : 0)) >"$tmp/cpu1"
    for rate in $(echo "${RATES:-10gbit 1gbit}" | tr ' ' '\n' | sed 's/+pt$//' | sort -u); do
        shape "$rate" || return 1
        shaped=$rate
        echo "== allreduce between 2 hosts over a $rate link ($delay_note)"
        mh_mpirun 2 "$ab" 2>&1 | grep -v setpgid
    done
}

if [ "$mode" = bench ]; then
    [ "${ALLREDUCE:-1}" = 0 ] || run_allreduce
    [ "${ALLREDUCE:-1}" = only ] && { cleanup; exit 0; }
    run_bench
    rc=$?
    cleanup
    exit $rc
fi

