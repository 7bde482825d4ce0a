#!/usr/bin/env bash
# End to end: seqpar train (1 process and mpirun -np 2), checkpoints,
# translate, bleu, and one clear error line for bad options and bad data.
SEQPAR=$1
. "$(dirname "$0")/lib.sh"
summary='^done step=[0-9]+ epoch=[0-9]+ loss=[0-9.]+ ppl=[0-9.]+ tokens_per_s=[0-9]+$'

# --- single process: progress, summary line, checkpoint
"$SEQPAR" train --max-steps 30 --log-every 10 --num-examples 2000 --threads 1 \
    --checkpoint-dir "$tmp/ck1" >"$tmp/t1.out" 2>"$tmp/t1.err"
check "train (1 process) exits 0" test $? = 0
check "last stdout line is the summary" bash -c "tail -n 1 '$tmp/t1.out' | grep -Eq '$summary'"
check "summary says step=30" grep -q '^done step=30 ' "$tmp/t1.out"
check "progress lines show loss, tok/s and ETA" grep -Eq '^step 20/30 epoch 1 loss [0-9.]+ ppl [0-9.]+ tok/s [0-9]+ ETA' "$tmp/t1.out"
check "checkpoint written" test -f "$tmp/ck1/ckpt-00000030.h5"
check "checkpoint verifies" "$SEQPAR" ckpt verify "$tmp/ck1/ckpt-00000030.h5"
check "-- ends the options: ckpt diff -- A B" "$SEQPAR" ckpt diff -- "$tmp/ck1/ckpt-00000030.h5" "$tmp/ck1/ckpt-00000030.h5"
check "h5dump reads the checkpoint" bash -c "h5dump -H '$tmp/ck1/ckpt-00000030.h5' | grep -q 'decoder'"

# --- a JSON config file, overridden by the command line, saved in the checkpoint
echo '{"hidden": 16, "layers": 3, "cell": "lstm", "bidirectional": true}' >"$tmp/run.json"
"$SEQPAR" train --config "$tmp/run.json" --layers 1 --max-steps 2 --num-examples 500 --threads 1 \
    --checkpoint-dir "$tmp/cfg" >"$tmp/cfg.out" 2>&1
check "--config applies, the command line wins" grep -q '^seq2seq lstm: 1 layer, embed 32, hidden 16' "$tmp/cfg.out"
check "the checkpoint stores the whole configuration" \
    bash -c "'$SEQPAR' ckpt info '$tmp/cfg/ckpt-00000002.h5' | grep -q 'lstm, 1 layer, embed 32, hidden 16, bidirectional encoder'"

# --- held-out validation: loss and perplexity at each epoch end
"$SEQPAR" train --epochs 2 --num-examples 1000 --valid 100 --threads 1 --log-every 1000 >"$tmp/v.out" 2>&1
check "train --valid prints validation loss, perplexity and BLEU per epoch" test "$(grep -Ec '^epoch [12] valid loss [0-9.]+ ppl [0-9.]+ bleu [0-9.]+$' "$tmp/v.out")" = 2
check "the split leaves 900 training pairs" grep -q ' 900 pairs' "$tmp/v.out"

# --- translate: one line out per line in, from the checkpoint alone
printf 'one\ntwo hundred\n\nfour thousand\n' >"$tmp/in.txt"
"$SEQPAR" translate --checkpoint "$tmp/ck1/ckpt-00000030.h5" <"$tmp/in.txt" >"$tmp/tr.txt"
check "translate exits 0" test $? = 0
check "translate writes one line per input line" test "$(wc -l <"$tmp/tr.txt")" = 4

# --- two ranks
if command -v mpirun >/dev/null; then
    mpirun -np 2 "$SEQPAR" train --max-steps 20 --log-every 10 --num-examples 2000 \
        >"$tmp/t2.out" 2>"$tmp/t2.err"
    check "mpirun -np 2 train exits 0" test $? = 0
    check "2 ranks: one summary line (rank 0 prints)" test "$(grep -Ec "$summary" "$tmp/t2.out")" = 1
    check "2 ranks reported" grep -q '2 ranks' "$tmp/t2.out"
else
    bad "mpirun not found"
fi

# --- bad options: exit 2, one line naming the option
expect_error "non-numeric --hidden" '--hidden' "$SEQPAR" train --hidden abc
expect_error "out-of-range --dropout" '--dropout' "$SEQPAR" train --dropout 1.5
expect_error "unknown --cell" '--cell: expected one of gru.lstm.rnn' "$SEQPAR" train --cell foo
expect_error "unknown option" "--frobnicate" "$SEQPAR" train --frobnicate 3
expect_error "missing value" '--lr' "$SEQPAR" train --lr
expect_error "bad --bptt" '--bptt' "$SEQPAR" train --task lm --bptt zero
expect_error "unknown command" "unknown command" "$SEQPAR" frobnicate
expect_error "raw bytes in a value are escaped in the error line" \
    "--hidden: expected a whole number in \\[1, 65536\\], got '\\\\xFF\\\\x1B\\[2Jz'" "$SEQPAR" train --hidden $'\xff\x1b[2Jz'
expect_error "an impossible monitor address" "tcp://256.1.1.1:5: '256.1.1.1' is not an address" \
    "$SEQPAR" train --monitor tcp://256.1.1.1:5 --max-steps 1
expect_error "unknown --lr-schedule" '--lr-schedule: expected one of constant.inverse-sqrt.cosine.plateau' \
    "$SEQPAR" train --lr-schedule linear
expect_error "--accum 0" '--accum: expected a whole number in \[1, 65536\]' "$SEQPAR" train --accum 0
expect_error "--weight-decay with adam" '--weight-decay applies to --optimizer adamw' \
    "$SEQPAR" train --weight-decay 0.01
expect_error "--lr-schedule plateau without --valid" '--lr-schedule plateau needs --valid' \
    "$SEQPAR" train --lr-schedule plateau
# seqpar monitor --http: host names through getaddrinfo, IPv6 in brackets
expect_error "monitor --http with a host that does not resolve" \
    "^seqpar monitor: --http nosuch\.invalid:8080: cannot resolve 'nosuch\.invalid' " \
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http nosuch.invalid:8080
expect_error "monitor --http with an IPv6 address out of brackets" \
    "--http ::1:8080: an IPv6 address goes in brackets \(\[::1\]:8080\)" \
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http ::1:8080
expect_error "monitor --http with an unclosed bracket" "--http \[::1:8080: expected \[IPv6\]:PORT" \
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http '[::1:8080'
expect_error "monitor --http with a port past 65535" "--http localhost:65536: the port must be 0\.\.65535" \
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http localhost:65536
expect_error "monitor --http with no host" "--http :8080: expected HOST:PORT" \
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http :8080
expect_error "monitor --http on an address not of this machine" \
    "--http 192\.0\.2\.1:8080: cannot serve there" \
    "$SEQPAR" monitor --listen 'tcp://127.0.0.1:*' --http 192.0.2.1:8080
expect_error "--workers 0" '--workers: expected a whole number in \[1, 256\]' "$SEQPAR" train --workers 0
expect_error "--workers with OpenBLAS threads" '--workers 2 runs each worker on one OpenBLAS thread' \
    "$SEQPAR" train --workers 2 --threads 2
expect_error "--workers with overlap" '--overlap on needs --workers 1' \
    "$SEQPAR" train --workers 2 --overlap on
expect_error "more workers than rows" '--batch 4 is smaller than ranks x --workers \(1 x 8\)' \
    "$SEQPAR" train --workers 8 --batch 4
echo '{"hidden": 8, "bogus": 1}' >"$tmp/bad.json"
expect_error "unknown key in --config" 'bad.json.*bogus' "$SEQPAR" train --config "$tmp/bad.json"
expect_error "a directory as --dataset" "$tmp: is a directory, not a file" "$SEQPAR" train --dataset "$tmp"
expect_error "ckpt: an unknown action lists the four" "unknown action 'frob' \(info, verify, list or diff\)" \
    "$SEQPAR" ckpt frob x
printf '{\n  "hidden": 16,\n  "layers": 2,\n}\n' >"$tmp/comma.json"
expect_error "a trailing comma in --config: prefixed, line and column" \
    "^seqpar train: --config: .*comma.json: line 3, column 14: trailing comma" "$SEQPAR" train --config "$tmp/comma.json"
"$SEQPAR" train --hidden 16 --cell lstm --bptt 5 --task lm --print-config >"$tmp/print.json"
check "--print-config prints the effective configuration, which --config reads back" \
    bash -c "grep -q '\"cell\":.*\"lstm\"' '$tmp/print.json' && '$SEQPAR' train --config '$tmp/print.json' --print-config | cmp -s - '$tmp/print.json'"
check "--config - reads the JSON from standard input" \
    bash -c "echo '{\"hidden\": 8, \"max-steps\": 1, \"threads\": 1}' | '$SEQPAR' train --config - | grep -q '^done step=1 '"
printf '{"batch": 8}garbage' >"$tmp/tail.json"
expect_error "text after the --config object" "tail.json: .*near 'garbage'" "$SEQPAR" train --config "$tmp/tail.json"
expect_error "a seed above 2^53 (not exact in the JSON config)" '--seed: expected a whole number in \[0, 9007199254740992\]' \
    "$SEQPAR" train --seed 9007199254740993
# the largest seeds round-trip through the checkpoint's JSON config exactly
# (printed with 15 digits, 9007199254740991 came back as ...990 and the run
# could not resume)
"$SEQPAR" train --max-steps 2 --num-examples 200 --threads 1 --seed 9007199254740991 \
    --checkpoint-dir "$tmp/seed" >/dev/null 2>&1
"$SEQPAR" train --max-steps 3 --num-examples 200 --threads 1 --seed 9007199254740991 \
    --checkpoint-dir "$tmp/seed" --resume auto >"$tmp/seed.out" 2>&1
check "a seed of 2^53 - 1 resumes: $(tail -1 "$tmp/seed.out")" grep -q '^done step=3 ' "$tmp/seed.out"
check "... and the checkpoint's config holds it exactly" \
    bash -c "h5dump -d /config '$tmp/seed/ckpt-00000003.h5' | grep -q '\"seed\":9007199254740991'"
expect_error "missing checkpoint" 'nope.h5' "$SEQPAR" translate --checkpoint "$tmp/nope.h5"
head -c 5000 /dev/urandom >"$tmp/junk.h5"
expect_error "random bytes as checkpoint" 'junk.h5' "$SEQPAR" ckpt verify "$tmp/junk.h5"

# --- bad data: exit 2, one line naming file and line
printf 'go .\tva !\nno tab here\n' >"$tmp/notab.txt"
expect_error "pair line without a tab" 'notab.txt:2' "$SEQPAR" train --dataset "$tmp/notab.txt" --max-steps 1
printf 'go .\tva !\nbad \xff\xfe utf8\tmal\n' >"$tmp/utf8.txt"
expect_error "invalid UTF-8" 'utf8.txt:2' "$SEQPAR" train --dataset "$tmp/utf8.txt" --max-steps 1
: >"$tmp/empty.txt"
expect_error "empty corpus" 'empty.txt' "$SEQPAR" train --dataset "$tmp/empty.txt" --max-steps 1
{ printf 'go .\t'; head -c 5000 /dev/zero | tr '\0' 'a'; printf '\n'; } >"$tmp/long.txt"
expect_error "absurdly long token" 'long.txt:1' "$SEQPAR" train --dataset "$tmp/long.txt" --max-steps 1
# CR line endings ran three pairs together into one ("\rhi" a token)
printf 'go .\tva !\rhi .\tsalut !\rrun .\tcours !\r' >"$tmp/cr.txt"
expect_error "a file with CR line endings" 'cr.txt:1: a carriage return inside the line' \
    "$SEQPAR" train --dataset "$tmp/cr.txt" --batch 1 --max-steps 1
# ... but a CR in an ignored column (manythings' attribution) is none of its business
printf 'go .\tva !\tCC-BY\r2.0\nhi .\tsalut !\tx\n' >"$tmp/crcol.txt"
check "a CR in an ignored third column is accepted" bash -c "'$SEQPAR' train --dataset '$tmp/crcol.txt' --min-freq 1 --batch 1 --max-steps 1 | grep -q '^done step=1 '"
expect_error "fra-eng as a text" 'fra-eng is a corpus of sentence pairs' "$SEQPAR" corpus-stats --dataset fra-eng
# a --min-freq above every count trained on <unk> alone, silently
printf 'go .\tva !\nhi .\tsalut !\nrun .\tcours !\n' >"$tmp/three.txt"
expect_error "--min-freq above every count (translate)" \
    'three.txt: --min-freq 1000 leaves no source token in the vocabulary \(the most frequent occurs 3 times\)' \
    "$SEQPAR" train --dataset "$tmp/three.txt" --min-freq 1000 --batch 2 --max-steps 1
expect_error "--min-freq above every count (lm)" 'three.txt: --min-freq 1000 leaves no token in the vocabulary' \
    "$SEQPAR" train --task lm --dataset "$tmp/three.txt" --min-freq 1000 --batch 2 --steps 2 --max-steps 1
# with --min-freq 1 nothing was cut: a side of reserved tokens alone holds no token
printf '<unk> <pad>\tva !\n<unk>\tsalut !\n' >"$tmp/reserved.txt"
expect_error "a side of reserved tokens only" 'reserved.txt: no source token to build a vocabulary of' \
    "$SEQPAR" train --dataset "$tmp/reserved.txt" --min-freq 1 --batch 1 --max-steps 1

# --- a model too large for the node's memory is refused by its size before
# its pages are written (it would have been killed as they filled):
# SEQPAR_MEM_AVAILABLE_MB stands for the node's memory, then the real
# MemAvailable with a model sized to twice it (not under the sanitizer,
# whose shadow would map a share of it)
mem_refused() {
    local d=$1 rc=0
    shift
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [ "$rc" = 1 ] && [ "$(grep -c '' "$tmp/err")" = 1 ] && grep -Eq 'the model needs about .* per rank .* is available: choose a smaller --hidden|out of memory building the model' "$tmp/err"; then
        ok "$d: $(cat "$tmp/err")"
    else
        bad "$d: exit $rc: $(head -c 600 "$tmp/err")"
    fi
}
mem_refused "a model larger than SEQPAR_MEM_AVAILABLE_MB" env SEQPAR_MEM_AVAILABLE_MB=10 \
    "$SEQPAR" train --hidden 256 --embed 64 --max-steps 1
check "... which names its size" grep -Eq 'the model needs about [0-9]+ MB per rank \(1\.[0-9] M parameters' "$tmp/err"
check "a model that fits trains as before" bash -c "SEQPAR_MEM_AVAILABLE_MB=400 '$SEQPAR' train --hidden 256 --embed 64 --max-steps 2 | grep -q '^done step=2 '"
# workers' replicas (gradients and workspace each) count too
check "150 MB holds the model alone" bash -c "SEQPAR_MEM_AVAILABLE_MB=150 '$SEQPAR' train --hidden 256 --embed 64 --max-steps 1 | grep -q '^done step=1 '"
mem_refused "... but not with 2 workers" env SEQPAR_MEM_AVAILABLE_MB=150 "$SEQPAR" train --hidden 256 --embed 64 --workers 2 --max-steps 1
check "... which says so" grep -q "and the workers' replicas" "$tmp/err"
# the data's padded ids are sized before they are generated or written
# (a billion numbers pairs were generated until memory ran out)
expect_data_refused() {
    local d=$1 pat=$2 rc=0
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [ "$rc" = 1 ] && [ "$(grep -c '' "$tmp/err")" = 1 ] && grep -Eq -- "$pat" "$tmp/err"; then
        ok "$d: $(cat "$tmp/err")"
    else
        bad "$d: exit $rc: $(head -c 600 "$tmp/err")"
    fi
}
expect_data_refused "--num-examples 1e9 of numbers, at once" \
    'numbers: --steps 10 over 1000000000 pairs needs 80.0 GB for the token ids alone, but .* is available' \
    env SEQPAR_MEM_AVAILABLE_MB=1000 timeout 30 "$SEQPAR" train --num-examples 1000000000 --max-steps 1
expect_data_refused "--steps 100000 over a file's 3 pairs" \
    'three.txt: --steps 100000 over 3 pairs needs 2 MB for the token ids alone, but 1 MB is available' \
    env SEQPAR_MEM_AVAILABLE_MB=1 "$SEQPAR" train --dataset "$tmp/three.txt" --steps 100000 --batch 2 --max-steps 1
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null)
if [ -n "$avail_kb" ] && [ -z "${ASAN_OPTIONS:-}" ]; then
    # 2 layers each side, embed 8: about 21 H^2 parameters of 16 bytes with
    # their gradients and Adam's moments; twice the memory available
    hid=$(awk -v kb="$avail_kb" 'BEGIN {printf "%d", sqrt(2 * kb * 1024 / 16 / 21)}')
    mem_refused "--hidden $hid: twice the $((avail_kb / 1024)) MB available" \
        timeout 60 "$SEQPAR" train --hidden "$hid" --embed 8 --max-steps 1 --threads 1
fi

# --- bleu
printf 'the cat sat on the mat\n' >"$tmp/ref.txt"
printf 'the cat sat on the mat\n' >"$tmp/hyp.txt"
check "bleu of identical text is 100" bash -c "'$SEQPAR' bleu --ref '$tmp/ref.txt' --hyp '$tmp/hyp.txt' | grep -q '^BLEU = 100.00'"
printf 'a\nb\n' >"$tmp/two.txt"
expect_error "bleu line count mismatch" 'lines' "$SEQPAR" bleu --ref "$tmp/ref.txt" --hyp "$tmp/two.txt"
# the corpus reader's rules: a BOM is not text (it scored 72 against
# itself), invalid UTF-8 and devices are refused (a \xff scored silently;
# /dev/zero was read until memory ran out)
printf '\xef\xbb\xbfthe cat sat on the mat\n' >"$tmp/hypbom.txt"
check "bleu: a byte-order mark changes nothing" bash -c "'$SEQPAR' bleu --ref '$tmp/ref.txt' --hyp '$tmp/hypbom.txt' | grep -q '^BLEU = 100.00'"
printf 'the cat sat on the mat\nthe \xff cat\n' >"$tmp/hypbad.txt"
printf 'the cat sat on the mat\nthe cat\n' >"$tmp/ref2.txt"
expect_error "bleu: invalid UTF-8 names file and line" 'hypbad.txt:2: invalid UTF-8' \
    "$SEQPAR" bleu --ref "$tmp/ref2.txt" --hyp "$tmp/hypbad.txt"
printf 'the cat sat on the mat\nthe c\0at\n' >"$tmp/hypnul.txt"
expect_error "bleu: a NUL byte names file, line and byte" 'hypnul.txt:2: NUL byte in a text file \(byte 6 of the line\)' \
    "$SEQPAR" bleu --ref "$tmp/ref2.txt" --hyp "$tmp/hypnul.txt"
expect_error "bleu: a device is not a text file" '/dev/zero: a device, not a text file' \
    "$SEQPAR" bleu --ref /dev/zero --hyp "$tmp/ref.txt"
expect_error "train: a device is not a corpus" '/dev/zero: a device, not a text file' \
    "$SEQPAR" train --dataset /dev/zero --max-steps 1
# lines past 100 000 tokens were cut there silently: two that differ only
# beyond it scored 100
awk 'BEGIN { for (i = 0; i < 150000; i++) printf "w "; print "" }' >"$tmp/long1.txt"
awk 'BEGIN { for (i = 0; i < 150000; i++) printf (i < 100000 ? "w " : "x "); print "" }' >"$tmp/long2.txt"
expect_error "bleu: a line of more than 100000 tokens" 'long1.txt:1: more than 100000 tokens on a line' \
    "$SEQPAR" bleu --ref "$tmp/long1.txt" --hyp "$tmp/long2.txt"

# --- output that cannot be written is an error, not a success (a full disk:
# /dev/full); found by an adversarial review, every command exited 0
write_error() { # description, command…
    local d=$1 rc=0
    shift
    "$@" >/dev/full 2>"$tmp/err" || rc=$?
    if [ "$rc" = 1 ] && [ "$(grep -c '' "$tmp/err")" = 1 ] &&
        grep -q 'write error on standard output: No space left on device' "$tmp/err"; then
        ok "$d: $(cat "$tmp/err")"
    else
        bad "$d: exit $rc, stderr: $(head -c 300 "$tmp/err")"
    fi
}
if [ -w /dev/full ]; then
    write_error "bleu to a full disk" "$SEQPAR" bleu --ref "$tmp/ref.txt" --hyp "$tmp/hyp.txt"
    write_error "--help to a full disk" "$SEQPAR" --help
fi

# --- the work report: the decoder and output layer skip padding, so the
# executed matmul work of a translation run is below the padded model's
"$SEQPAR" train --dataset fra-eng --num-examples 600 --max-steps 5 --threads 1 >"$tmp/w.out" 2>&1
check "matmul work line: $(grep -o 'matmul work: [^;]*' "$tmp/w.out")" \
    awk '/^matmul work:/ { found = 1; if ($3 + 0 > 0 && $13 + 0 > 0 && $13 + 0 < $3 + 0) ok = 1 } END { exit !(found && ok) }' "$tmp/w.out"
check "... and the peak memory" grep -Eq 'peak memory [0-9]+ MB' "$tmp/w.out"

# --- OpenBLAS kernel advice: on an AVX-512 CPU, a warning names the faster
# kernel unless OPENBLAS_CORETYPE already selects it
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then
    env -u OPENBLAS_CORETYPE "$SEQPAR" train --max-steps 1 --threads 1 >"$tmp/k1.out" 2>&1
    if grep -q 'kernel \(SkylakeX\|Cooperlake\|SapphireRapids\))' "$tmp/k1.out"; then
        check "the default kernel fits the CPU: no advice" bash -c "! grep -q 'OPENBLAS_CORETYPE=' '$tmp/k1.out'"
    else
        check "a slow default kernel is named with the fix: $(grep -m1 warning "$tmp/k1.out")" \
            grep -q 'warning: OpenBLAS runs its .* kernel, but this CPU has AVX-512: OPENBLAS_CORETYPE=SkylakeX' "$tmp/k1.out"
    fi
    OPENBLAS_CORETYPE=SkylakeX "$SEQPAR" train --max-steps 1 --threads 1 >"$tmp/k2.out" 2>&1
    check "with OPENBLAS_CORETYPE=SkylakeX: that kernel, no advice" \
        bash -c "grep -q 'kernel SkylakeX)' '$tmp/k2.out' && ! grep -q 'OPENBLAS_CORETYPE=' '$tmp/k2.out'"
fi

finish
