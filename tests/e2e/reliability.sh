#!/usr/bin/env bash
# End to end: what clusters do to a run (issue: preemption and supervision).
#  - a signal (SIGTERM to the process, to mpirun, to one rank; during a
#    step, a validation, a checkpoint write) stops every rank at the next
#    step boundary with a checkpoint of that step and exit 75; --resume auto
#    then ends with the parameters of an uninterrupted run, bit for bit (0
#    steps lost); a second signal ends the run at once;
#  - a NaN in one rank's gradient (test-only SEQPAR_FAULT_NAN) is found
#    before the update: --on-nan stop ends the run (exit 1) with the last good
#    checkpoint kept and nothing of the bad step saved; --on-nan skip leaves
#    the parameters as they were and counts the skip; --nan-patience;
#  - a launcher whose processes MPI does not join is refused;
#  - the supervisor relaunches a job whose ranks were killed, on fewer hosts
#    when the hostfile shrinks, and does not relaunch a stopped one.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
base=(train --dataset fra-eng --num-examples 2000 --threads 1 --log-every 10 --valid 100
      --eval-every 23 --seed 3)

# same_as NAME A B: checkpoints A and B hold the same parameters, moments,
# position and state, bit for bit
same_as() {
    if "$SEQPAR" ckpt diff "$2" "$3" >"$tmp/diff" 2>&1; then
        ok "$1: bitwise equal to the uninterrupted run"
    else
        bad "$1: differs from the uninterrupted run: $(cat "$tmp/diff")"
    fi
}

# --- the uninterrupted references (1 and 2 ranks, 120 steps)
"$SEQPAR" "${base[@]}" --max-steps 120 --checkpoint-dir "$tmp/ref1" >"$tmp/ref1.out" 2>&1 ||
    bad "reference run (1 process) failed: $(tail -3 "$tmp/ref1.out")"
"${mpi[@]}" -np 2 "$SEQPAR" "${base[@]}" --max-steps 120 --checkpoint-dir "$tmp/ref2" \
    >"$tmp/ref2.out" 2>&1 || bad "reference run (2 ranks) failed: $(tail -3 "$tmp/ref2.out")"
ref1=$tmp/ref1/ckpt-00000120.h5 ref2=$tmp/ref2/ckpt-00000120.h5

# stopped NAME DIR OUT STEP: the run stopped with 75 at STEP, its checkpoint
# holds that step and the end says so (0 steps to redo)
stopped() {
    local name=$1 dir=$2 out=$3 rc=$4 step
    step=$(sed -n 's/^done step=\([0-9]*\) .*/\1/p' "$out")
    if [ "$rc" = 75 ] && [ -n "$step" ] && [ -f "$dir/$(printf 'ckpt-%08d.h5' "$step")" ] &&
        grep -q "^stopped at step $step by .*: --resume auto continues from step $step (0 steps to redo)$" "$out"; then
        ok "$name: exit 75 at step $step, its checkpoint written, 0 steps lost"
    else
        bad "$name: exit $rc, step '$step': $(tail -4 "$out")"
    fi
}

# resumed NAME REF NP DIR: --resume auto to step 120 ends as the reference
resumed() {
    local name=$1 ref=$2 np=$3 dir=$4
    if [ "$np" = 1 ]; then
        "$SEQPAR" "${base[@]}" --max-steps 120 --checkpoint-dir "$dir" --resume auto >"$dir.out2" 2>&1
    else
        "${mpi[@]}" -np "$np" "$SEQPAR" "${base[@]}" --max-steps 120 --checkpoint-dir "$dir" \
            --resume auto >"$dir.out2" 2>&1
    fi || bad "$name: the resumed run failed: $(tail -3 "$dir.out2")"
    same_as "$name, resumed" "$ref" "$dir/ckpt-00000120.h5"
}

# --- a signal at a random step, in each phase, 1 process and 2 ranks
for phase in step validate checkpoint; do
    case $phase in
        step) at=$((RANDOM % 100 + 5)) ;;
        validate) at=$((23 * (RANDOM % 4 + 1))) ;;
        checkpoint) at=$((20 * (RANDOM % 5 + 1))) ;;
    esac
    d=$tmp/sig1-$phase rc=0
    SEQPAR_FAULT_SIGNAL=0:$at:$phase "$SEQPAR" "${base[@]}" --max-steps 120 --checkpoint-every 20 \
        --checkpoint-dir "$d" >"$d.out" 2>&1 || rc=$?
    stopped "1 process, SIGTERM during $phase $at" "$d" "$d.out" $rc
    resumed "1 process, SIGTERM during $phase $at" "$ref1" 1 "$d"
    d=$tmp/sig2-$phase rc=0
    SEQPAR_FAULT_SIGNAL=1:$at:$phase "${mpi[@]}" -np 2 -x SEQPAR_FAULT_SIGNAL "$SEQPAR" "${base[@]}" \
        --max-steps 120 --checkpoint-every 20 --checkpoint-dir "$d" >"$d.out" 2>&1 || rc=$?
    stopped "2 ranks, SIGTERM to rank 1 during $phase $at" "$d" "$d.out" $rc
    resumed "2 ranks, SIGTERM to rank 1 during $phase $at" "$ref2" 2 "$d"
done

# --- a real SIGTERM from outside: to mpirun (which forwards it to every
# rank and ends with its own status), mid-run
d=$tmp/mpirun rc=0
"${mpi[@]}" -np 2 "$SEQPAR" "${base[@]}" --epochs 100000 --checkpoint-dir "$d" >"$d.out" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q '^step 50/' "$d.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid
wait $pid || rc=$?
step=$(sed -n 's/^done step=\([0-9]*\) .*/\1/p' "$d.out")
check "SIGTERM to mpirun at step >= 50: every rank stopped at step $step with its checkpoint (mpirun $rc)" \
    test -n "$step" -a -f "$d/$(printf 'ckpt-%08d.h5' "${step:-0}")"
check "... and 0 steps lost" grep -q "continues from step $step (0 steps to redo)" "$d.out"

# --- the monitor shows a signalled run as stopped at once (its "stopped"
# event), not as running until its ranks go quiet
port=$((20000 + ($$ % 20000)))
"$SEQPAR" monitor --listen tcp://127.0.0.1:$port --http 127.0.0.1:0 >"$tmp/mon.out" 2>&1 &
mon=$!
url=$(monitor_url "$tmp/mon.out")
d=$tmp/mon rc=0
SEQPAR_FAULT_SIGNAL=1:40:step "${mpi[@]}" -np 2 -x SEQPAR_FAULT_SIGNAL "$SEQPAR" "${base[@]}" \
    --max-steps 120 --checkpoint-dir "$d" --monitor tcp://127.0.0.1:$port --run sig >"$d.out" 2>&1 || rc=$?
sleep 0.5
state=$(curl -sf "$url/api/runs" | /usr/bin/python3 -c 'import json,sys; print([r["state"] for r in json.load(sys.stdin)["runs"] if r["id"]=="sig"][0])' 2>&1)
check "the monitor shows the signalled run as stopped at once (state '$state', exit $rc)" test "$state" = stopped
check "... with its 'stopped' event" bash -c "curl -sf '$url/api/runs/sig' | grep -q '\"event\":\"stopped\"'"
# ... and when one rank is stopped (SIGSTOP), it is the late one: the other,
# blocked in the allreduce, beats on saying it waits
d=$tmp/stopped rc=0
"${mpi[@]}" -np 2 "$SEQPAR" "${base[@]}" --epochs 100000 --checkpoint-dir "$d" \
    --monitor tcp://127.0.0.1:$port --run sigstop >"$d.out" 2>&1 &
job=$!
for _ in $(seq 200); do grep -q '^step 20/' "$d.out" 2>/dev/null && break; sleep 0.05; done
r1=$(pgrep -f "seqpar train.*--run sigstop" | sort -n | tail -1)
kill -STOP "$r1"
sleep 12
states=$(curl -sf "$url/api/runs/sigstop" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join(k["state"] for k in sorted(r["ranks"], key=lambda k: k["rank"])))' 2>&1)
kill -CONT "$r1"
kill -TERM $job
wait $job 2>/dev/null
check "a SIGSTOPped rank is late, the one waiting for it says so (ranks: $states)" \
    bash -c "[ '$states' = 'waiting late' ] || [ '$states' = 'late waiting' ]"
kill $mon 2>/dev/null; wait $mon 2>/dev/null

# --- a second signal ends the run at once, when it comes more than a second
# after the first (a large model: its first step takes seconds); copies
# within the second (a launcher passing on what the job also got) are one
d=$tmp/twice rc=0
"$SEQPAR" train --dataset fra-eng --num-examples 2000 --threads 1 --hidden 2048 --embed 512 \
    --batch 128 --steps 20 --max-steps 100 --checkpoint-dir "$d" >"$d.out" 2>&1 &
pid=$!
for _ in $(seq 400); do grep -q '^seq2seq' "$d.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid; sleep 1.5; kill -TERM $pid
wait $pid || rc=$?
check "a second SIGTERM 1.5 s after the first ends the run at once (exit $rc: 143, no summary)" \
    bash -c "[ $rc = 143 ] && ! grep -q '^done' '$d.out'"
d=$tmp/copies rc=0
"$SEQPAR" "${base[@]}" --epochs 100000 --checkpoint-dir "$d" >"$d.out" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q '^step 20/' "$d.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid; kill -TERM $pid; kill -INT $pid
wait $pid || rc=$?
check "three signals within a second are one request: stopped with its checkpoint (exit $rc)" \
    bash -c "[ $rc = 75 ] && grep -q '(0 steps to redo)' '$d.out'"
# ... one during the last step stops nothing: the run is complete (exit 0)
d=$tmp/last rc=0
SEQPAR_FAULT_SIGNAL=0:119:step "$SEQPAR" "${base[@]}" --max-steps 120 --checkpoint-dir "$d" \
    >"$d.out" 2>&1 || rc=$?
check "a signal during the last step: the run ends complete (exit $rc)" \
    bash -c "[ $rc = 0 ] && grep -q '^done step=120 ' '$d.out' && ! grep -q '^stopped' '$d.out'"

# --- NaN in one rank's gradient at step 25 (its loss finite)
nan=(train --dataset fra-eng --num-examples 2000 --threads 1 --log-every 10 --max-steps 40
     --checkpoint-every 1 --keep 1)
for np in 1 2; do
    d=$tmp/nanstop$np rc=0
    SEQPAR_FAULT_NAN=$((np - 1)):25 "${mpi[@]}" -np $np -x SEQPAR_FAULT_NAN "$SEQPAR" "${nan[@]}" \
        --checkpoint-dir "$d" >"$d.out" 2>&1 || rc=$?
    check "$np rank(s), --on-nan stop: exit 1 at step 25, naming the gradient norm (exit $rc)" \
        bash -c "[ $rc = 1 ] && grep -q 'step 25: the gradient norm is not finite; stopping (--on-nan stop)' '$d.out'"
    check "... the last good checkpoint (step 25) kept, nothing of the bad step saved" \
        bash -c "[ \"\$(ls '$d')\" = ckpt-00000025.h5 ] && '$SEQPAR' ckpt verify '$d/ckpt-00000025.h5' >/dev/null"
    check "... and the end says what a resume redoes" \
        grep -q 'stopped at step 25 (not finite): --resume auto continues from step 25 (0 steps to redo)' "$d.out"
    d=$tmp/nanskip$np rc=0
    SEQPAR_FAULT_NAN=$((np - 1)):25 "${mpi[@]}" -np $np -x SEQPAR_FAULT_NAN "$SEQPAR" "${nan[@]}" \
        --keep 100 --on-nan skip --checkpoint-dir "$d" >"$d.out" 2>&1 || rc=$?
    check "$np rank(s), --on-nan skip: the run ends (exit $rc) with nan_skips=1 in the summary" \
        bash -c "[ $rc = 0 ] && grep -q '^done step=40 .* nan_skips=1$' '$d.out' && grep -q '^step 30/40 .* nan-skips 1$' '$d.out'"
    "$SEQPAR" ckpt diff "$d/ckpt-00000025.h5" "$d/ckpt-00000026.h5" >"$d.diff" 2>&1
    check "... the parameters and moments after the skipped step equal those before it" \
        bash -c "grep -q '^parameters .* 0 in .*; 20 of 20 tensors identical' '$d.diff' && grep -q '^adam m .* 20 of 20' '$d.diff' && grep -q '^adam v .* 20 of 20' '$d.diff'"
done
# the resume point of a resumed run that has written no checkpoint yet is
# the one it resumed from
d=$tmp/nanresume rc=0
"$SEQPAR" "${nan[@]}" --max-steps 20 --checkpoint-every 10 --checkpoint-dir "$d" >/dev/null 2>&1
SEQPAR_FAULT_NAN=0:25 "$SEQPAR" "${nan[@]}" --checkpoint-every 10 --checkpoint-dir "$d" \
    --resume auto >"$d.out" 2>&1 || rc=$?
check "a resumed run stopping before its first checkpoint: continues from step 20 (5 steps to redo)" \
    grep -q 'stopped at step 25 (not finite): --resume auto continues from step 20 (5 steps to redo)' "$d.out"
d=$tmp/patience rc=0
SEQPAR_FAULT_NAN=0:25 "$SEQPAR" "${nan[@]}" --on-nan skip --nan-patience 1 --checkpoint-dir "$d" \
    >"$d.out" 2>&1 || rc=$?
check "--nan-patience 1: the first skip stops the run (exit $rc)" \
    bash -c "[ $rc = 1 ] && grep -q 'stopping (1 steps in a row (--nan-patience 1))' '$d.out'"

# --- the supervisor: a rank SIGKILLed twice (test-only SEQPAR_FAULT_SIGNAL
# …:KILL, a crash at a chosen step, once) is relaunched each time with
# --resume auto and ends with the undisturbed run's parameters, bit for bit
sup=(--dataset fra-eng --num-examples 2000 --threads 1 --log-every 10 --seed 3 --max-steps 60
     --checkpoint-every 10)
"${mpi[@]}" -np 2 "$SEQPAR" train "${sup[@]}" --checkpoint-dir "$tmp/supref" >/dev/null 2>&1
d=$tmp/sup rc=0
"$SEQPAR" supervise --backoff 0.1 -- "${mpi[@]}" -np 2 -x SEQPAR_FAULT_SIGNAL="1:20:step:KILL,0:40:step:KILL" \
    "$SEQPAR" train "${sup[@]}" --checkpoint-dir "$d" >"$d.out" 2>"$d.err" || rc=$?
check "supervise: two SIGKILLed ranks, two relaunches, the job ends (exit $rc)" \
    bash -c "[ $rc = 0 ] && [ \$(grep -c 'relaunch [12] of 3' '$d.err') = 2 ] && grep -q '^done step=60 ' '$d.out'"
same_as "supervise: a job killed twice" "$tmp/supref/ckpt-00000060.h5" "$d/ckpt-00000060.h5"

# Ctrl-C at a terminal reaches the supervisor's process group: passed on
# once, the job stops with its checkpoint (it once got two and died); a
# SIGHUP (the terminal closing), which the job does not take, goes on as
# SIGTERM
for sig in INT HUP; do
    d=$tmp/sup-$sig rc=0
    setsid "$SEQPAR" supervise -- "$SEQPAR" "${base[@]}" --epochs 100000 --checkpoint-dir "$d" \
        >"$d.out" 2>"$d.err" &
    pid=$!
    for _ in $(seq 200); do grep -q '^step 20/' "$d.out" 2>/dev/null && break; sleep 0.05; done
    if [ $sig = INT ]; then kill -INT -- -$pid; else kill -HUP $pid; fi
    wait $pid || rc=$?
    check "supervise, SIG$sig: the job stopped with its checkpoint, not relaunched (exit $rc)" \
        bash -c "[ $rc = 75 ] && grep -q '(0 steps to redo)' '$d.out' && grep -q 'not relaunched' '$d.err'"
done
# a relaunch continues from the newest checkpoint, whatever --resume the
# command names
d=$tmp/supfile rc=0
"$SEQPAR" train "${sup[@]}" --max-steps 10 --checkpoint-dir "$d" >/dev/null 2>&1
"$SEQPAR" supervise --backoff 0 -- "$SEQPAR" train "${sup[@]}" --checkpoint-dir "$d" \
    --resume "$d/ckpt-00000010.h5" >"$d.out" 2>"$d.err" &
pid=$!
wait $pid || rc=$?
check "supervise: the first launch resumes the named file, a relaunch the newest (no relaunch needed: exit $rc)" \
    bash -c "[ $rc = 0 ] && grep -q 'resumed from .*ckpt-00000010.h5' '$d.out'"
d=$tmp/supfile2 rc=0
"$SEQPAR" train "${sup[@]}" --max-steps 10 --checkpoint-dir "$d" >/dev/null 2>&1
SEQPAR_FAULT_SIGNAL=0:40:step:KILL "$SEQPAR" supervise --backoff 0 -- "$SEQPAR" train "${sup[@]}" \
    --checkpoint-dir "$d" --resume "$d/ckpt-00000010.h5" >"$d.out" 2>"$d.err" || rc=$?
check "... after a crash at step 40, the relaunch resumes from step 40, not 10 (exit $rc)" \
    bash -c "[ $rc = 0 ] && grep -q 'resumed from .*ckpt-00000040.h5' '$d.out' && grep -q '^done step=60 ' '$d.out'"
rc=0
"$SEQPAR" supervise --backoff 0 -- /nonexistent/seqpar train --checkpoint-dir "$tmp/x" \
    >/dev/null 2>"$tmp/noexec.err" || rc=$?
check "supervise: a command that cannot run (127) is not relaunched" \
    bash -c "[ $rc = 127 ] && ! grep -q relaunch '$tmp/noexec.err'"

# ckpt list says where --resume auto continues, and how many steps it redoes
d=$tmp/sup
"$SEQPAR" ckpt list "$d" >"$d.list"
check "ckpt list: --resume auto resumes from the newest (0 steps to redo)" \
    grep -q "resumes from .*ckpt-00000060.h5, the newest (0 steps to redo)" "$d.list"
cp "$d/ckpt-00000060.h5" "$d/ckpt-00000080.h5" # holds another step: does not verify
"$SEQPAR" ckpt list "$d" >"$d.list"
check "ckpt list: past a newer one that does not verify (20 steps to redo)" \
    grep -q "resumes from .*ckpt-00000060.h5, skipping 1 newer that do not verify (20 steps to redo)" "$d.list"

# ... a host taken out of the hostfile after a kill: the relaunch runs on the
# slots that remain and the job ends near the undisturbed run
d=$tmp/shrink rc=0
echo "localhost slots=2" >"$tmp/hosts"
(for _ in $(seq 300); do grep -q 'relaunch 1 of' "$d.err" 2>/dev/null && break; sleep 0.02; done
 echo "localhost slots=1" >"$tmp/hosts") &
"$SEQPAR" supervise --backoff 1 --hostfile "$tmp/hosts" -- mpirun --oversubscribe -x SEQPAR_DATA \
    -x SEQPAR_FAULT_SIGNAL=1:20:step:KILL "$SEQPAR" train "${sup[@]}" --checkpoint-dir "$d" \
    >"$d.out" 2>"$d.err" || rc=$?
wait
check "supervise --hostfile: relaunched on the 1 slot left after a kill, the job ends (exit $rc)" \
    bash -c "[ $rc = 0 ] && grep -q 'launch 1 on 2 ranks' '$d.err' && grep -q 'launch 2 on 1 rank ' '$d.err' && grep -q '^done step=60 ' '$d.out'"
check "... its parameters within 1e-4 of the undisturbed 2-rank run's" \
    bash -c "'$SEQPAR' ckpt diff '$tmp/supref/ckpt-00000060.h5' '$d/ckpt-00000060.h5' --tolerance 1e-4 >'$d.diff'"
echo "localhost slots=1" >"$tmp/hosts"
expect_error "supervise: fewer slots than --min-ranks" 'lists 1 slot, fewer than --min-ranks 2: giving up' \
    "$SEQPAR" supervise --hostfile "$tmp/hosts" --min-ranks 2 -- mpirun "$SEQPAR" train --checkpoint-dir "$tmp/x"
# ... a job stopped by a signal is not relaunched; a refused one neither
d=$tmp/supstop rc=0
"$SEQPAR" supervise --backoff 0.1 -- "${mpi[@]}" -np 2 -x SEQPAR_FAULT_SIGNAL=1:20:step \
    "$SEQPAR" train "${sup[@]}" --checkpoint-dir "$d" >"$d.out" 2>"$d.err" || rc=$?
check "supervise: a job stopped by SIGTERM is not relaunched (exit $rc)" \
    bash -c "[ $rc = 75 ] && grep -q 'stopped by a signal (status 75); not relaunched' '$d.err' && ! grep -q relaunch' [0-9]' '$d.err'"
rc=0
"$SEQPAR" supervise -- "$SEQPAR" train --hidden abc --checkpoint-dir "$tmp/x" >/dev/null 2>"$tmp/bad.err" || rc=$?
check "supervise: a job refused for its options (2) is not relaunched" \
    bash -c "[ $rc = 2 ] && ! grep -q relaunch '$tmp/bad.err'"
expect_error "supervise: a command without --checkpoint-dir" 'no --checkpoint-dir: a relaunch would start from step 0' \
    "$SEQPAR" supervise -- mpirun "$SEQPAR" train

# --- cluster/slurm.sbatch under stand-ins for srun (mpirun with 2 ranks) and
# scontrol: the time limit's USR1 to the batch script reaches the ranks, the
# job stops with a checkpoint (75) and is requeued
mkdir -p "$tmp/fake"
cat >"$tmp/fake/srun" <<'EOF2'
#!/usr/bin/env bash
# srun stand-in: drops srun's options, runs the task on 2 ranks
while [ "${1#-}" != "$1" ]; do shift; done
exec mpirun --oversubscribe -np 2 -x SEQPAR_DATA "$@"
EOF2
cat >"$tmp/fake/scontrol" <<EOF2
#!/usr/bin/env bash
echo "\$*" >>"$tmp/scontrol.log"
EOF2
chmod +x "$tmp/fake/srun" "$tmp/fake/scontrol"
here=$(cd "$(dirname "$0")/../.." && pwd)
d=$tmp/slurm rc=0
mkdir -p "$d"
(cd "$d" && PATH="$tmp/fake:$PATH" SLURM_SUBMIT_DIR="$d" SLURM_JOB_ID=42 SLURM_JOB_NAME=t \
    SLURM_CPUS_PER_TASK=1 SEQPAR="$SEQPAR" \
    SEQPAR_ARGS="--dataset fra-eng --num-examples 2000 --epochs 1000 --log-every 10" \
    exec bash "$here/cluster/slurm.sbatch" >"$d.out" 2>&1) &
pid=$!
for _ in $(seq 300); do grep -q '^step 30/' "$d.out" 2>/dev/null && break; sleep 0.05; done
kill -USR1 $pid
wait $pid || rc=$?
step=$(sed -n 's/^done step=\([0-9]*\) .*/\1/p' "$d.out")
check "slurm.sbatch: USR1 (the time limit's warning) stops the ranks at step $step with its checkpoint, exit 75 ($rc)" \
    bash -c "[ $rc = 75 ] && [ -n '$step' ] && [ -f '$d/ckpt-t/$(printf 'ckpt-%08d.h5' "${step:-0}")' ]"
check "... and the job is requeued (scontrol $(cat "$tmp/scontrol.log" 2>/dev/null))" \
    grep -qx 'requeue 42' "$tmp/scontrol.log"

# --- cluster/run.sh gives a lone rank every core of its node (a localhost
# hostfile): it bound each rank to one core
echo "localhost slots=$(nproc)" >"$tmp/lh"
SEQPAR="$SEQPAR" bash "$here/cluster/run.sh" "$tmp/lh" 1 "$tmp/runsh" --max-steps 2 >"$tmp/runsh.out" 2>&1
check "cluster/run.sh, 1 rank on a $(nproc)-core node: $(grep -o '1 rank x [0-9]* OpenBLAS threads\?' "$tmp/runsh.out")" \
    grep -q "1 rank x $(nproc) OpenBLAS thread" "$tmp/runsh.out"

# --- a mis-launch: N processes that MPI does not join
expect_error "srun without PMI (SLURM_STEP_NUM_TASKS=4, a world of 1)" \
    'SLURM_STEP_NUM_TASKS=4, but MPI started a world of 1: .*srun --mpi=pmix' \
    env SLURM_STEP_NUM_TASKS=4 "$SEQPAR" train --max-steps 1
expect_error "a foreign mpirun (PMI_SIZE=2, a world of 1)" 'PMI_SIZE=2, but MPI started a world of 1' \
    env PMI_SIZE=2 "$SEQPAR" train --max-steps 1
check "SLURM_NTASKS of a batch script running one process (SLURM_PROCID=0) is no mis-launch" \
    bash -c "env SLURM_NTASKS=4 SLURM_PROCID=0 '$SEQPAR' train --max-steps 1 --threads 1 | grep -q '^done step=1 '"

finish
