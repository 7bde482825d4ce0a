#!/usr/bin/env bash
# `cmake --install` gives a complete program: the binary, seqpar(1) (written
# from the option tables, so it names every option --help names), bash
# completion, seqpar_torch.py under share/seqpar, README and DESIGN under
# share/doc/seqpar; and -DBUILD_TESTING=OFF configures the program without
# looking for CUnit or Python.
#   usage: tests/e2e/install.sh SEQPAR BUILD_DIR SOURCE_DIR
SEQPAR=$1 BUILD=$2 SRC=$3
. "$(dirname "$0")/lib.sh"
p=$tmp/prefix
cmake --install "$BUILD" --prefix "$p" >"$tmp/install.out" 2>&1
check "cmake --install to a fresh prefix" test $? = 0
for f in bin/seqpar share/man/man1/seqpar.1 share/bash-completion/completions/seqpar \
    share/seqpar/seqpar_torch.py share/doc/seqpar/README.md share/doc/seqpar/DESIGN.md \
    share/doc/seqpar/CLUSTER.md; do
    check "installed: $f" test -s "$p/$f"
done
check "the installed binary runs" bash -c "'$p/bin/seqpar' --version | grep -q '^seqpar '"
MANWIDTH=200 man -l "$p/share/man/man1/seqpar.1" >"$tmp/man.txt" 2>"$tmp/man.err"
check "man -l renders the page without a warning" bash -c "[ -s '$tmp/man.txt' ] && [ ! -s '$tmp/man.err' ]"
missing=
for cmd in train translate predict score bleu monitor corpus-stats supervise; do
    for opt in $("$SEQPAR" "$cmd" --help | grep -o '^  --[a-z0-9-]*' | sed 's/^  //'); do
        grep -q -- "$opt" "$tmp/man.txt" || missing+=" $cmd $opt"
    done
done
check "the man page names every option of every command's --help${missing:+ (missing:$missing)}" test -z "$missing"
comp() { # words… : what bash completes for the last one
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _seqpar; echo "${COMPREPLY[*]}"' \
        _ "$p/share/bash-completion/completions/seqpar" "$@"
}
check "bash completes the commands: $(comp seqpar tr)" test "$(comp seqpar tr)" = "train translate"
check "... an option: $(comp seqpar train --stop)" test "$(comp seqpar train --stop)" = "--stop-signals"
check "... a choice: $(comp seqpar train --cell '')" test "$(comp seqpar train --cell '')" = "gru lstm rnn"
check "... a ckpt action: $(comp seqpar ckpt v)" test "$(comp seqpar ckpt v)" = verify
check "README points at the installed seqpar_torch.py" grep -q 'share/seqpar/seqpar_torch.py' "$SRC/README.md"
# the program alone: neither CUnit nor Python looked for
cmake -S "$SRC" -B "$tmp/notest" -DBUILD_TESTING=OFF >"$tmp/notest.out" 2>&1
check "-DBUILD_TESTING=OFF configures" test $? = 0
check "... without looking for CUnit or Python" \
    bash -c "! grep -qi 'cunit\|PYTHON_REF' '$tmp/notest/CMakeCache.txt'"
check "... and with no test" bash -c "! grep -rqs 'add_test' '$tmp/notest/CTestTestfile.cmake'"
finish
