#!/usr/bin/env bash
# The exe_wrapper of `meson test --setup valgrind` (see tests/meson.build):
#
#   meson test -C build --setup valgrind --suite runtime --suite samples
#
# Criterion runs each test in a worker it fork+execs, so valgrind must follow
# children (--trace-children=yes); and Criterion ignores a worker's exit
# status once the worker has reported its result, so --error-exitcode alone
# would let errors pass. Each process therefore logs to its own file, and
# this script fails the test (exit 99) when any log counts an error: an
# invalid access, a use of uninitialised memory, or a definite or indirect
# leak (memory still reachable at exit, such as what the runtime's arenas
# hold in tests that never call rc_shutdown, is not a leak). The offending
# logs are copied to stderr. Programs the tests start
# from the system (addr2line for tracebacks) are not followed.
#
# A sample runs as `python3 check_output.py SAMPLE LINES...`: the checker is
# not under test, so it runs natively and puts the sample under valgrind
# (it reads REFSCOPE_SAMPLE_WRAPPER).
set -u
logdir="$(mktemp -d "${TMPDIR:-/tmp}/refscope-valgrind.XXXXXX")"
trap 'rm -rf "$logdir"' EXIT
# shellcheck disable=SC2054 # commas inside options, not between elements
vg=(valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect
    --error-exitcode=99 --trace-children=yes --trace-children-skip='/usr/*,/bin/*'
    --num-callers=30 --log-file="$logdir/%p.log")

case "$(basename "$1")" in
python*)
    REFSCOPE_SAMPLE_WRAPPER="$(printf '%q ' "${vg[@]}")" "$@"
    status=$?
    ;;
*)
    "${vg[@]}" "$@"
    status=$?
    ;;
esac

bad=0
for log in "$logdir"/*.log; do
    [ -e "$log" ] || continue
    if grep -qE '== ERROR SUMMARY: [1-9]' "$log"; then
        bad=$((bad + 1))
        echo "valgrind: errors in $(sed -n 's/^==[0-9]*== Command: //p' "$log" | head -n 1):" >&2
        cat "$log" >&2
    fi
done
if [ "$bad" -gt 0 ]; then
    echo "valgrind: $bad process(es) with errors" >&2
    exit 99
fi
exit "$status"
