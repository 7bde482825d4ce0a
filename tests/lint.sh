#!/usr/bin/env bash
# clang-format and cppcheck over every C source of the project.
set -u
fmt=$1 cpp=$2
files=$(find model data comm checkpoints trainer tests -name '*.[ch]' | sort)
rc=0
if ! "$fmt" --dry-run --Werror $files; then
    echo "lint: clang-format would change the files above (run: clang-format -i FILE)"
    rc=1
fi
if ! "$cpp" --enable=warning,performance,portability --std=c11 --inline-suppr --quiet \
    --error-exitcode=1 -I model -I data -I comm -I checkpoints -I trainer -I trainer/monitor \
    model data comm checkpoints trainer tests; then
    echo "lint: cppcheck found problems"
    rc=1
fi
[ $rc = 0 ] && echo "lint: $(echo "$files" | wc -l) files clean (clang-format, cppcheck)"
exit $rc
