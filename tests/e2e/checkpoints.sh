#!/usr/bin/env bash
# End to end, checkpoints (issue 5): the file as DESIGN.md lays it out and as
# h5dump / h5py read it; exact resume (bitwise, h5diff) for translation
# (random sampler, dropout) and the LM (sequential sampler, carried LSTM
# state); resume at another world size and with in-process workers; failed
# writes (disk full, no permission) that keep earlier checkpoints; bad files
# of every kind; SIGKILL during writes never leaving a bad file under a
# checkpoint's name.
SEQPAR=$1
PY=${SEQPAR_PYTHON:-/usr/bin/python3}
. "$(dirname "$0")/lib.sh"
mpi=(mpirun --oversubscribe -x SEQPAR_DATA)
[ -z "${OPENBLAS_CORETYPE:-}" ] || mpi+=(-x OPENBLAS_CORETYPE)
tr_args=(--dataset fra-eng --num-examples 600 --dropout 0.2 --sampler random --threads 1 --log-every 10)
lm_args=(--task lm --dataset timemachine --num-examples 20000 --embed 0 --hidden 64 --layers 2
         --cell lstm --dropout 0.2 --sampler sequential --batch 16 --steps 35 --threads 1 --log-every 10)

# --- exact resume: 60 steps straight = 30 steps, then resumed to 60
exact() {
    local name=$1
    shift
    "$SEQPAR" train "$@" --max-steps 60 --checkpoint-dir "$tmp/$name-a" >"$tmp/$name-a.out" 2>&1
    "$SEQPAR" train "$@" --max-steps 30 --checkpoint-dir "$tmp/$name-b" >"$tmp/$name-b.out" 2>&1
    "$SEQPAR" train "$@" --max-steps 60 --checkpoint-dir "$tmp/$name-b" --resume auto \
        >"$tmp/$name-b2.out" 2>&1
    check "$name: the resumed run says where it resumed" grep -q 'resumed from .*ckpt-00000030.h5 at step 30' "$tmp/$name-b2.out"
    for g in /model /optimizer /train; do
        if h5diff "$tmp/$name-a/ckpt-00000060.h5" "$tmp/$name-b/ckpt-00000060.h5" $g $g >"$tmp/h5diff.out" 2>&1; then
            ok "$name: 60 steps = 30 + resumed 30: h5diff $g finds no difference"
        else
            bad "$name: h5diff $g: $(head -5 "$tmp/h5diff.out")"
        fi
    done
    check "$name: and the same summary line" test "$(grep '^done' "$tmp/$name-a.out" | cut -d' ' -f1-5)" = "$(grep '^done' "$tmp/$name-b2.out" | cut -d' ' -f1-5)"
}
exact translate "${tr_args[@]}"
exact lm "${lm_args[@]}"
check "lm: the carried state is in the file" bash -c "h5ls '$tmp/lm-a/ckpt-00000060.h5/train' | grep -q 'state_c .*{2, 16, 64}'"

# --- resume at another world size: a 2-rank checkpoint continues at 1 and 3
# ranks, and in one process with 2 workers
for name in translate lm; do
    eval "args=(\"\${${name:0:2}_args[@]}\")"
    "${mpi[@]}" -np 2 "$SEQPAR" train "${args[@]}" --max-steps 60 --checkpoint-dir "$tmp/w-$name-2" >/dev/null 2>&1
    "${mpi[@]}" -np 2 "$SEQPAR" train "${args[@]}" --max-steps 30 --checkpoint-dir "$tmp/w-$name-b" >/dev/null 2>&1
    for np in 1 3; do
        cp -r "$tmp/w-$name-b" "$tmp/w-$name-$np"
        "${mpi[@]}" -np $np "$SEQPAR" train "${args[@]}" --max-steps 60 --checkpoint-dir "$tmp/w-$name-$np" \
            --resume auto >"$tmp/w.out" 2>&1
        if "$SEQPAR" ckpt diff "$tmp/w-$name-2/ckpt-00000060.h5" "$tmp/w-$name-$np/ckpt-00000060.h5" \
            --tolerance 1e-4 >"$tmp/w.diff" 2>&1; then
            ok "$name: written at 2 ranks, resumed at $np = 2 ranks throughout: $(head -1 "$tmp/w.diff" | sed 's/  */ /g')"
        else
            bad "$name: resumed at $np ranks: $(cat "$tmp/w.diff" "$tmp/w.out" | tail -6)"
        fi
    done
    # one process with 2 workers computes what 2 ranks do: bit for bit
    cp -r "$tmp/w-$name-b" "$tmp/w-$name-w2"
    "$SEQPAR" train "${args[@]}" --workers 2 --max-steps 60 --checkpoint-dir "$tmp/w-$name-w2" \
        --resume auto >"$tmp/w.out" 2>&1
    if "$SEQPAR" ckpt diff "$tmp/w-$name-2/ckpt-00000060.h5" "$tmp/w-$name-w2/ckpt-00000060.h5" \
        --tolerance 0 >"$tmp/w.diff" 2>&1; then
        ok "$name: written at 2 ranks, resumed by 1 process x 2 workers = 2 ranks throughout, bit for bit"
    else
        bad "$name: resumed with 2 workers: $(cat "$tmp/w.diff" "$tmp/w.out" | tail -6)"
    fi
done

# --- the file, read by h5dump and h5py with no seqpar code
ck=$tmp/translate-a/ckpt-00000060.h5
check "h5dump reads the header" bash -c "h5dump -H '$ck' >/dev/null"
if "$PY" - "$ck" >"$tmp/py.out" 2>&1 <<'PYEOF'; then ok "h5py: $(tail -1 "$tmp/py.out")"; else bad "h5py: $(cat "$tmp/py.out")"; fi
import json, sys, h5py
f = h5py.File(sys.argv[1], "r")
names = []
f["model"].visititems(lambda n, o: names.append(n.replace("/", ".")) if isinstance(o, h5py.Dataset) else None)
want = {"encoder.embedding.weight", "encoder.rnn.weight_ih_l0", "encoder.rnn.bias_hh_l1",
        "decoder.embedding.weight", "decoder.rnn.weight_ih_l0", "decoder.dense.weight", "decoder.dense.bias"}
assert want <= set(names), sorted(set(names))
for grp in ("model", "optimizer/m", "optimizer/v"):
    def chk(n, o):
        if isinstance(o, h5py.Dataset):
            assert o.fletcher32 and o.chunks is not None, (grp, n)
    f[grp].visititems(chk)
assert f.attrs["format"] in (b"seqpar-checkpoint", "seqpar-checkpoint")
cfg = json.loads(f["config"][()])
assert cfg["cell"] == "gru" and f["train"].attrs["step"] == 60
assert f["model/decoder/dense/weight"].shape == (len(f["vocab/tgt"]), cfg["hidden"])
assert f["optimizer"].attrs["t"] == 60
print(f"{len(names)} tensors under /model named as the state_dict, all chunked with Fletcher-32; "
      f"/train step {f['train'].attrs['step']}, train_loss {f['train'].attrs['train_loss']:.4f}")
PYEOF
"$SEQPAR" ckpt info "$ck" >"$tmp/info.out" 2>&1
check "ckpt info shows the position, the model and the figures: $(grep -m1 figures "$tmp/info.out")" \
    grep -q '^figures .*train loss [0-9.]*' "$tmp/info.out"
"$SEQPAR" ckpt list "$tmp/translate-b" >"$tmp/list.out"
check "ckpt list: newest first, each verified" bash -c "head -1 '$tmp/list.out' | grep -q 'ckpt-00000060.h5 .* ok$'"

# --- failed writes keep what was saved
small=(train --max-steps 40 --threads 1 --log-every 100 --checkpoint-every 10 --keep 1)
size=$(stat -c %s "$tmp/translate-a/ckpt-00000060.h5")
"$SEQPAR" "${small[@]}" --max-steps 10 --checkpoint-dir "$tmp/probe" >/dev/null 2>&1
size=$(stat -c %s "$tmp/probe/ckpt-00000010.h5")
mkdir -p "$tmp/full"
if mount -t tmpfs -o size=$((size * 3 / 2)) tmpfs "$tmp/full" 2>"$tmp/mount.err"; then
    rc=0
    "$SEQPAR" "${small[@]}" --checkpoint-dir "$tmp/full/ck" >"$tmp/full.out" 2>"$tmp/full.err" || rc=$?
    check "disk full: the run stops (exit $rc): $(head -1 "$tmp/full.err")" test "$rc" = 1
    check "... saying the earlier checkpoints are untouched" grep -q 'earlier checkpoints are untouched' "$tmp/full.err"
    check "... in one line" test "$(grep -c '' "$tmp/full.err")" = 1
    check "... and the step-10 checkpoint still verifies" "$SEQPAR" ckpt verify "$tmp/full/ck/ckpt-00000010.h5"
    check "... no temporary file is left" test -z "$(ls "$tmp/full/ck" | grep tmp)"
    rm -rf "$tmp/full/ck"
    rc=0
    "$SEQPAR" "${small[@]}" --checkpoint-dir "$tmp/full/ck" --on-checkpoint-error continue \
        >"$tmp/full.out" 2>"$tmp/full.err" || rc=$?
    check "--on-checkpoint-error continue trains to the end (step 40)" grep -q '^done step=40 ' "$tmp/full.out"
    check "... exits 1 as its last checkpoint failed too ($rc)" test "$rc" = 1
    check "... and the step-10 checkpoint still verifies" "$SEQPAR" ckpt verify "$tmp/full/ck/ckpt-00000010.h5"
    umount "$tmp/full"
else
    bad "cannot mount a small tmpfs to fill: $(cat "$tmp/mount.err")"
fi
# permission lost mid-run (chattr +i binds root too): the run stops at its next write
mkdir -p "$tmp/ro"
"$SEQPAR" train --epochs 100000 --threads 1 --log-every 100000 --checkpoint-every 300 --keep 2 \
    --checkpoint-dir "$tmp/ro" >"$tmp/ro.out" 2>"$tmp/ro.err" &
pid=$!
for _ in $(seq 300); do [ -e "$tmp/ro/ckpt-00000300.h5" ] && break; sleep 0.1; done
if chattr +i "$tmp/ro" 2>"$tmp/chattr.err"; then
    rc=0
    wait $pid || rc=$?
    chattr -i "$tmp/ro"
    check "no permission: the run stops with exit 1 ($rc): $(head -1 "$tmp/ro.err")" test "$rc" = 1
    check "... saying the earlier checkpoints are untouched" grep -q 'earlier checkpoints are untouched' "$tmp/ro.err"
    last=$(ls "$tmp"/ro/ckpt-*.h5 | tail -1)
    check "... and the last one written ($(basename "$last")) verifies" "$SEQPAR" ckpt verify "$last"
else
    kill $pid
    bad "chattr +i failed: $(cat "$tmp/chattr.err")"
fi

# --- bad checkpoints: one line, exit 2, no crash — from ckpt verify, train --resume and translate
good=$tmp/probe/ckpt-00000010.h5
: >"$tmp/zero.h5"
head -c $((size / 3)) "$good" >"$tmp/trunc.h5"
head -c 100000 /dev/urandom >"$tmp/random.h5"
"$PY" - "$good" "$tmp" <<'PYEOF' || bad "h5py could not build the bad files"
import shutil, sys, h5py, numpy as np
good, tmp = sys.argv[1], sys.argv[2]
def copy(name):
    p = f"{tmp}/{name}.h5"
    shutil.copy(good, p)
    return p
# a flipped byte inside a dataset's stored chunk
p = copy("flipped")
with h5py.File(p, "r") as f:
    off = f["model/decoder/dense/weight"].id.get_chunk_info(0).byte_offset
with open(p, "r+b") as fh:
    fh.seek(off + 40)
    b = fh.read(1)
    fh.seek(off + 40)
    fh.write(bytes([b[0] ^ 0x10]))
with h5py.File(copy("nogroup"), "r+") as f:
    del f["model/decoder"]
with h5py.File(copy("notrain"), "r+") as f:
    del f["train"]
with h5py.File(copy("noopt"), "r+") as f:
    del f["optimizer"]
with h5py.File(copy("shape"), "r+") as f:
    n = f["model/decoder/dense/bias"].shape[0]
    del f["model/decoder/dense/bias"]
    f.create_dataset("model/decoder/dense/bias", data=np.zeros(n + 3, np.float32), chunks=True, fletcher32=True)
# a NaN written through HDF5 (its checksum is right), and a tensor of the
# wrong rank (its shape was once reported as 0x0)
with h5py.File(copy("nan"), "r+") as f:
    f["model/decoder/dense/weight"][0, 0] = np.nan
with h5py.File(copy("inf_m"), "r+") as f:
    f["optimizer/m/decoder/dense/weight"][1, 2] = np.inf
with h5py.File(copy("rank2"), "r+") as f:
    n = f["model/decoder/dense/bias"].shape[0]
    del f["model/decoder/dense/bias"]
    f.create_dataset("model/decoder/dense/bias", data=np.zeros((1, n), np.float32), chunks=True, fletcher32=True)
# edits of /config and of attributes, below, are made to files of format 1
# (no meta_sha256, as seqpar wrote before it): their subject is the checks
# behind the checksum, which a format-2 file would not reach
def v1(p):
    with h5py.File(p, "r+") as f:
        if "meta_sha256" in f.attrs:
            del f.attrs["meta_sha256"]
        f.attrs["format_version"] = np.int32(1)
    return p
# a /config asking for a model far larger than the tensors stored (it was
# built first: ASan's allocator gave up on 48 GB)
import json
with h5py.File(v1(copy("hugecfg")), "r+") as f:
    c = json.loads(f["config"][()])
    c["hidden"] = 65536
    del f["config"]
    f["config"] = json.dumps(c)
# counters no run reaches: step + 1 or t + 1 would overflow (found by an
# adversarial review: UBSan caught the overflow, a release build trained on)
for name, group, key, value in [("tmax", "optimizer", "t", 2**63 - 1), ("smax", "train", "step", 2**63 - 1),
                                ("emax", "train", "epoch", 2**62), ("world0", "train", "world_size", 0),
                                ("tbig", "optimizer", "t", 1000)]:
    with h5py.File(v1(copy(name)), "r+") as f:
        f[group].attrs[key] = np.array(value, np.int64 if key != "world_size" else np.int32)
PYEOF
for b in zero trunc random flipped nogroup shape; do
    expect_error "bad checkpoint ($b): ckpt verify" "$b.h5" "$SEQPAR" ckpt verify "$tmp/$b.h5"
    expect_error "bad checkpoint ($b): train --resume" "$b.h5" "$SEQPAR" train --max-steps 20 --threads 1 --resume "$tmp/$b.h5"
    expect_error "bad checkpoint ($b): translate" "$b.h5" bash -c "echo one | '$SEQPAR' translate --checkpoint '$tmp/$b.h5'"
done
expect_error "bad checkpoint (notrain): ckpt verify" 'notrain.h5.*/train' "$SEQPAR" ckpt verify "$tmp/notrain.h5"
expect_error "bad checkpoint (notrain): train --resume" 'notrain.h5.*/train' "$SEQPAR" train --max-steps 20 --threads 1 --resume "$tmp/notrain.h5"
for b in nan inf_m; do
    expect_error "non-finite values ($b): ckpt verify" "$b.h5: /.*NaN or infinite values" "$SEQPAR" ckpt verify "$tmp/$b.h5"
    expect_error "non-finite values ($b): train --resume" "$b.h5: /.*holds 1 NaN or infinite values" \
        "$SEQPAR" train --max-steps 20 --threads 1 --resume "$tmp/$b.h5"
done
expect_error "non-finite values: translate" "nan.h5: /model/decoder/dense/weight holds 1 NaN" \
    bash -c "echo one | '$SEQPAR' translate --checkpoint '$tmp/nan.h5'"
expect_error "a tensor of the wrong rank names both shapes" 'rank2.h5: .*dense/bias has shape 1x[0-9]+, the model needs [0-9]+$' \
    "$SEQPAR" train --max-steps 20 --threads 1 --resume "$tmp/rank2.h5"
for cmd in "ckpt verify" "ckpt info"; do
    expect_error "a /config larger than its tensors: $cmd" 'hugecfg.h5: /config \(hidden 65536, [0-9]+ target tokens\) does not match /model/decoder/dense/weight' \
        "$SEQPAR" $cmd "$tmp/hugecfg.h5"
done
expect_error "a /config larger than its tensors: translate" 'hugecfg.h5: /config \(hidden 65536' \
    bash -c "echo one | '$SEQPAR' translate --checkpoint '$tmp/hugecfg.h5'"
for b in tmax:'/optimizer t' tbig:'/optimizer t = 1000 for step 10' smax:'/train: .*step is impossible' emax:'/train: .*epoch is impossible' \
         world0:'/train: .*world_size is impossible'; do
    expect_error "impossible counter (${b%%:*}): ckpt verify" "${b%%:*}.h5: ${b#*:}" "$SEQPAR" ckpt verify "$tmp/${b%%:*}.h5"
    expect_error "impossible counter (${b%%:*}): train --resume" "${b%%:*}.h5: ${b#*:}" \
        "$SEQPAR" train --max-steps 20 --threads 1 --resume "$tmp/${b%%:*}.h5"
done
expect_error "a checkpoint without /optimizer cannot resume" 'noopt.h5.*optimizer' \
    "$SEQPAR" train --max-steps 20 --threads 1 --resume "$tmp/noopt.h5"
expect_error "a checkpoint of another model is refused naming the first mismatch" \
    '--hidden is 32 in the checkpoint but 48' "$SEQPAR" train --max-steps 20 --hidden 48 --resume "$good"

# --- the training state's checksum (meta_sha256, format 2). HDF5 checks no
# attribute: a flipped bit read back as another valid number (batch_in_epoch
# 28 -> 24, the optimizer's t) and resumed at the wrong sample. Files of
# format 1 (seqpar before it) still load, and a resume checks their position
# against the data: 32 batches an epoch here, step 60 = epoch 1, batch 28.
st=(train --num-examples 1024 --batch 32 --threads 1 --log-every 1000)
"$SEQPAR" "${st[@]}" --max-steps 60 --checkpoint-dir "$tmp/st" >/dev/null 2>&1
"$PY" - "$tmp/st/ckpt-00000060.h5" "$tmp" <<'PYEOF' || bad "h5py could not build the training-state files"
import hashlib, shutil, sys, h5py, numpy as np
good, tmp = sys.argv[1], sys.argv[2]
def copy(name, fmt1=False, **edits):
    p = f"{tmp}/{name}.h5"
    shutil.copy(good, p)
    with h5py.File(p, "r+") as f:
        if fmt1:
            if "meta_sha256" in f.attrs:
                del f.attrs["meta_sha256"]
            f.attrs["format_version"] = np.int32(1)
        for key, value in edits.items():  # the same type and shape: another value's bytes
            group = "optimizer" if key == "t" else "train"
            f[group].attrs.modify(key, np.array(value, f[group].attrs[key].dtype))
    return p
# meta_sha256 recomputed from DESIGN.md's serialization, by h5py alone
def meta_sha256(f):
    h = hashlib.sha256()
    def attrs(obj, skip=""):
        for name in sorted(obj.attrs.keys(), key=str.encode):
            if name == skip:
                continue
            a = np.asarray(obj.attrs[name])
            if a.dtype.kind == "S":
                v = a.item().split(b"\0")[0]
                h.update(b"%s|s|%d\n%s" % (name.encode(), len(v), v))
            else:
                h.update(b"%s|%s%d|%d\n" % (name.encode(), a.dtype.kind.encode(), 8 * a.dtype.itemsize, a.size))
                h.update(a.astype(a.dtype.newbyteorder("<")).tobytes())
    h.update(b"/\n")
    attrs(f, "meta_sha256")
    c = f["config"][()]
    c = (c if isinstance(c, bytes) else c.encode()).split(b"\0")[0]
    h.update(b"/config|s|%d\n%s" % (len(c), c))
    for g in ("/train", "/optimizer"):
        h.update(g.encode() + (b"\n" if g in f else b" absent\n"))
        if g in f:
            attrs(f[g])
    return h.hexdigest()
with h5py.File(good, "r") as f, open(f"{tmp}/st-meta.txt", "w") as out:
    out.write("%s %s\n" % (f.attrs.get("meta_sha256", b"none").decode(), meta_sha256(f)))
copy("st-bie24", batch_in_epoch=24)
copy("st-t56", t=56)
copy("st1", fmt1=True)
copy("st1-bie24", fmt1=True, batch_in_epoch=24)
copy("st1-bie59", fmt1=True, batch_in_epoch=59)
copy("st1-epoch", fmt1=True, epoch=10**9)
# what verify refuses and the readers loaded: a tensor without Fletcher-32,
# a vocabulary of variable-length strings, a negative second moment
with h5py.File(copy("st-nofletcher"), "r+") as f:
    b = f["model/decoder/dense/bias"][()]
    del f["model/decoder/dense/bias"]
    f.create_dataset("model/decoder/dense/bias", data=b, chunks=True)
with h5py.File(copy("st-vlen"), "r+") as f:
    toks = [t.decode() for t in f["vocab/tgt"][()]]
    del f["vocab/tgt"]
    f.create_dataset("vocab/tgt", data=toks, dtype=h5py.string_dtype())
with h5py.File(copy("st-negv"), "r+") as f:
    f["optimizer/v/decoder/dense/bias"][0] = -1e-3
PYEOF
read -r stored recomputed <"$tmp/st-meta.txt"
check "h5py recomputes meta_sha256 from DESIGN.md's serialization ($recomputed)" test "$stored" = "$recomputed"
for b in bie24:'/train batch_in_epoch 28 -> 24' t56:'/optimizer t 60 -> 56'; do
    n=st-${b%%:*}
    expect_error "${b#*:} (format 2): ckpt verify" "$n.h5: meta_sha256 does not match" "$SEQPAR" ckpt verify "$tmp/$n.h5"
    expect_error "${b#*:} (format 2): train --resume" "$n.h5: meta_sha256 does not match" \
        "$SEQPAR" "${st[@]}" --max-steps 70 --resume "$tmp/$n.h5"
    expect_error "${b#*:} (format 2): translate" "$n.h5: meta_sha256 does not match" \
        bash -c "echo one | '$SEQPAR' translate --checkpoint '$tmp/$n.h5'"
done
"$SEQPAR" ckpt verify "$tmp/st1.h5" >"$tmp/st1.out" 2>&1
check "format 1: verify says ok, attributes unchecked: $(cat "$tmp/st1.out")" grep -q 'st1.h5: ok (format 1: attributes unchecked)$' "$tmp/st1.out"
"$SEQPAR" "${st[@]}" --max-steps 70 --resume "$tmp/st1.h5" >"$tmp/st1r.out" 2>&1
check "format 1: train --resume continues from it" grep -q '^done step=70 ' "$tmp/st1r.out"
expect_error "format 1, batch_in_epoch 28 -> 24: --resume checks the step against the data" \
    'st1-bie24.h5: /train step 60, epoch 1, batch_in_epoch 24: with this data that position is step 56' \
    "$SEQPAR" "${st[@]}" --max-steps 70 --resume "$tmp/st1-bie24.h5"
expect_error "format 1, batch_in_epoch 59 of 32 batches: --resume" \
    'st1-bie59.h5: /train epoch 1, batch_in_epoch 59: that epoch has 32 batches' \
    "$SEQPAR" "${st[@]}" --max-steps 70 --resume "$tmp/st1-bie59.h5"
expect_error "format 1, epoch 1e9 at step 60: --resume" \
    'st1-epoch.h5: /train epoch 1000000000 \(epochs done\) is past --epochs 10' \
    "$SEQPAR" "${st[@]}" --max-steps 70 --resume "$tmp/st1-epoch.h5"
for b in nofletcher:'/model/decoder/dense/bias: no Fletcher-32' vlen:'/vocab/tgt: variable-length strings' \
         negv:'/optimizer/v/decoder/dense/bias:? holds 1 negative value'; do
    n=st-${b%%:*}
    expect_error "what verify refuses ($n): ckpt verify" "$n.h5: .*${b#*:}" "$SEQPAR" ckpt verify "$tmp/$n.h5"
    expect_error "... train --resume refuses it too" "$n.h5: .*${b#*:}" \
        "$SEQPAR" "${st[@]}" --max-steps 70 --resume "$tmp/$n.h5"
    [ "$n" = st-negv ] && continue # translate reads no moments
    expect_error "... and translate" "$n.h5: .*${b#*:}" \
        bash -c "echo one | '$SEQPAR' translate --checkpoint '$tmp/$n.h5'"
done

# --- --resume auto skips a newest checkpoint that does not verify, and says so
"$SEQPAR" train --max-steps 20 --threads 1 --checkpoint-every 10 --keep 2 --checkpoint-dir "$tmp/auto" >/dev/null 2>&1
head -c 5000 "$tmp/auto/ckpt-00000020.h5" >"$tmp/auto/cut" && mv "$tmp/auto/cut" "$tmp/auto/ckpt-00000020.h5"
"$SEQPAR" train --max-steps 25 --threads 1 --checkpoint-dir "$tmp/auto" --resume auto >"$tmp/auto.out" 2>"$tmp/auto.err"
check "resume auto warns about the damaged newest: $(head -1 "$tmp/auto.err")" grep -q 'warning: skipping .*ckpt-00000020.h5' "$tmp/auto.err"
check "... and resumes from the one before it" grep -q 'resumed from .*ckpt-00000010.h5 at step 10' "$tmp/auto.out"
check "... to the end" grep -q '^done step=25 ' "$tmp/auto.out"

# --- a checkpoint copied over a later step's name is not taken for that
# step: verify names both steps, and --resume auto passes it by
cp "$tmp/auto/ckpt-00000010.h5" "$tmp/auto/ckpt-00000030.h5"
expect_error "ckpt verify: a file named for another step" \
    'ckpt-00000030.h5: holds step 10 but is named for step 30' "$SEQPAR" ckpt verify "$tmp/auto/ckpt-00000030.h5"
"$SEQPAR" train --max-steps 28 --threads 1 --checkpoint-dir "$tmp/auto" --resume auto >"$tmp/auto2.out" 2>"$tmp/auto2.err"
check "resume auto skips it: $(head -1 "$tmp/auto2.err")" grep -q 'warning: skipping .*ckpt-00000030.h5: holds step 10' "$tmp/auto2.err"
check "... and resumes from the newest true one" grep -q 'resumed from .*ckpt-00000025.h5 at step 25' "$tmp/auto2.out"

# --- best.h5 of a run this one does not continue is kept aside, never
# replaced: a fresh start in a used directory once overwrote the earlier
# run's best model at its first evaluation (found by an adversarial review)
bestrun=(train --threads 1 --valid 100 --checkpoint-dir "$tmp/best")
"$SEQPAR" "${bestrun[@]}" --max-steps 20 --eval-every 10 >/dev/null 2>&1
first=$("$SEQPAR" ckpt info "$tmp/best/best.h5" | sed -n 's/^position *step \([0-9]*\),.*/\1/p')
"$SEQPAR" "${bestrun[@]}" --max-steps 2 --eval-every 1 >"$tmp/best2.out" 2>"$tmp/best2.err"
check "a fresh start keeps the earlier best.h5 (step $first) aside: $(grep best "$tmp/best2.err")" \
    grep -q "best.h5 is not from the run this one continues (it holds step $first of an earlier run); kept as .*best-0*$first.h5" "$tmp/best2.err"
check "... which still holds that step" bash -c "'$SEQPAR' ckpt info '$tmp/best/best-$(printf %08d "$first").h5' | grep -q '^position *step $first,'"
check "... and best.h5 is the new run's" bash -c "'$SEQPAR' ckpt info '$tmp/best/best.h5' | grep -Eq '^position *step [12],'"
"$SEQPAR" "${bestrun[@]}" --max-steps 4 --eval-every 1 --resume "$tmp/best/ckpt-00000002.h5" >"$tmp/best3.out" 2>"$tmp/best3.err"
check "a resume that continues the run leaves its best.h5 where it is" bash -c "! grep -q 'kept as' '$tmp/best3.err' && test \$(ls '$tmp/best' | grep -c '^best') = 2"
"$SEQPAR" train --threads 1 --valid 100 --seed 7 --max-steps 4 --eval-every 2 --checkpoint-dir "$tmp/bestc" >/dev/null 2>&1
"$SEQPAR" "${bestrun[@]}" --seed 7 --max-steps 6 --eval-every 2 --resume "$tmp/bestc/ckpt-00000004.h5" >"$tmp/best4.out" 2>"$tmp/best4.err"
check "a resume of another run's checkpoint into the directory keeps its best.h5 aside: $(grep 'kept as' "$tmp/best4.err")" \
    grep -q 'best.h5 is not from the run this one continues (it holds step [0-9]* of another run: its seed or best differ); kept as' "$tmp/best4.err"

# --- the same options over changed data: the vocabulary rebuilt from the
# data no longer matches the checkpoint's, and the resume is refused (it
# once trained on, the embeddings now for other words)
"$PY" - "$tmp/corp.txt" <<'PYEOF'
import random, sys
random.seed(1)
a, b = ["go", "run", "stop", "eat"], ["va", "cours", "arrete", "mange"]
with open(sys.argv[1], "w") as f:
    for _ in range(200):
        f.write(" ".join(random.choice(a) for _ in range(3)) + "\t" + " ".join(random.choice(b) for _ in range(3)) + "\n")
PYEOF
small_corp=(train --dataset "$tmp/corp.txt" --embed 8 --hidden 8 --batch 8 --steps 6 --threads 1 --checkpoint-dir "$tmp/vc")
"$SEQPAR" "${small_corp[@]}" --max-steps 5 >/dev/null 2>&1
sed -i 's/go/xx/g; s/run/yy/g; s/stop/zz/g; s/eat/ww/g' "$tmp/corp.txt"
expect_error "resume over changed data is refused" 'ckpt-00000005.h5 does not match this run: /vocab/src differs .*did the data change' \
    "$SEQPAR" "${small_corp[@]}" --max-steps 8 --resume auto
check "... and writes nothing" test "$(ls "$tmp/vc")" = ckpt-00000005.h5

# --- only files named exactly as seqpar names checkpoints count: notes or
# copies beside them are neither listed nor pruned, and pruning never takes
# a real checkpoint in their place (it once unlinked ckpt-<step>.h5 for a
# ckpt-<step>.txt); a FIFO under a checkpoint's name blocks nobody
"$SEQPAR" train --max-steps 4 --threads 1 --checkpoint-every 1 --keep 10 --checkpoint-dir "$tmp/names" >/dev/null 2>&1
echo notes >"$tmp/names/ckpt-00000004.txt"
echo x >"$tmp/names/ckpt-00000003.json"
cp "$tmp/names/ckpt-00000002.h5" "$tmp/names/ckpt-00000002-copy.h5"
echo x >"$tmp/names/ckpt-1.h5"
mkfifo "$tmp/names/ckpt-00000009.h5"
timeout 60 "$SEQPAR" ckpt list "$tmp/names" >"$tmp/names.list" 2>&1
check "ckpt list: the four checkpoints, nothing else, no hang" \
    test "$(grep -c ' step ' "$tmp/names.list")" = 4
check "ckpt list: names the real files" \
    test "$(grep -o 'ckpt-[0-9]*\.h5  step [0-9]*' "$tmp/names.list" | tr '\n' ' ')" = \
    "ckpt-00000004.h5  step 4 ckpt-00000003.h5  step 3 ckpt-00000002.h5  step 2 ckpt-00000001.h5  step 1 "
timeout 120 "$SEQPAR" train --max-steps 6 --threads 1 --checkpoint-every 1 --keep 3 --checkpoint-dir "$tmp/names" \
    --resume auto >"$tmp/names.out" 2>&1
check "resume auto past the FIFO and the notes: $(tail -1 "$tmp/names.out")" grep -q '^done step=6 ' "$tmp/names.out"
check "--keep 3 keeps the three newest real checkpoints" \
    test "$(cd "$tmp/names" && ls ckpt-0*.h5 | tr '\n' ' ')" = \
    "ckpt-00000002-copy.h5 ckpt-00000004.h5 ckpt-00000005.h5 ckpt-00000006.h5 ckpt-00000009.h5 "
check "... and leaves the other files alone" \
    test -f "$tmp/names/ckpt-00000004.txt" -a -f "$tmp/names/ckpt-00000003.json" -a -f "$tmp/names/ckpt-1.h5" -a -p "$tmp/names/ckpt-00000009.h5"
expect_error "a FIFO given as a checkpoint is refused, not read" 'ckpt-00000009.h5: not a regular file' \
    timeout 20 "$SEQPAR" ckpt info "$tmp/names/ckpt-00000009.h5"

# --- SIGKILL at any moment of a run that checkpoints every step: every file
# under a checkpoint's name verifies; unfinished writes are cleaned up
big=(train --embed 128 --hidden 512 --threads 1 --log-every 1 --checkpoint-every 1 --keep 3 --epochs 1000
     --checkpoint-dir "$tmp/kill" --resume auto)
during=0 badfiles=0
for i in $(seq 10); do
    "$SEQPAR" "${big[@]}" >"$tmp/k.out" 2>"$tmp/k.err" &
    pid=$!
    # once it writes (the first checkpoint line: start-up time varies, e.g.
    # under ASan): odd rounds kill it the moment a temporary file shows (in
    # the middle of writing the bytes), even rounds at a random moment of
    # the next second or so (building the file in memory, training, renaming)
    for _ in $(seq 600); do grep -q '^checkpoint ' "$tmp/k.out" && break; sleep 0.1; done
    if [ $((i % 2)) = 1 ]; then
        for _ in $(seq 3000); do compgen -G "$tmp/kill/*.tmp.*" >/dev/null && break; sleep 0.01; done
    else
        sleep "$(awk "BEGIN {srand($i); print rand() * 1.2}")"
    fi
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    ls "$tmp/kill" | grep -q '\.tmp\.' && during=$((during + 1))
    for f in "$tmp"/kill/ckpt-*.h5; do
        [ -e "$f" ] || continue
        "$SEQPAR" ckpt verify "$f" >/dev/null 2>"$tmp/v.err" || { badfiles=$((badfiles + 1)); echo "     $(cat "$tmp/v.err")"; }
    done
done
nck=$(ls "$tmp"/kill/ckpt-*.h5 2>/dev/null | wc -l)
check "10 SIGKILLs ($during mid-write): all $nck files under checkpoint names verify" test "$badfiles" = 0 -a "$nck" -gt 0
check "... and at least one kill landed during a write" test "$during" -gt 0
"$SEQPAR" "${big[@]}" --max-steps 1 >"$tmp/k.out" 2>"$tmp/k.err"
check "the next start removes the unfinished writes" bash -c "! ls '$tmp/kill' | grep -q '\.tmp\.'"
finish
