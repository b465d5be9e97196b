#!/usr/bin/env python3
"""Run a sample and check its output against expected key lines.

    check_output.py [--arg ARG]... [--signal SIG] PROGRAM LINE [LINE ...]

Each LINE must appear in the program's stdout as a whole line, in the given
order; narration lines in between are ignored. Forms of LINE:

  text        the exact line (trailing spaces ignored)
  re:REGEX    a line the regular expression matches as a whole
  a||b        a group: a and b (each plain or re:) both appear next, in
              either order
  !text       a line that must appear nowhere (also !re:REGEX)

A plain line expected somewhere that appears out of turn (too early, or
twice) is an error, so "Object obj1 deleted" before its time fails the
check; a plain line meant to appear several times is listed as many
times. Regular expressions are only matched in turn.

--arg ARG passes ARG to the program (repeatable). The program must exit
with status 0, or with --signal SIG (ABRT, SEGV, ...) be killed by that
signal; then core dumps are disabled for it (RLIMIT_CORE 0), so a test
leaves no core behind. With REFSCOPE_SAMPLE_WRAPPER set (a command line,
as tests/valgrind.sh sets it), the program runs under that command.
"""
import os
import re
import resource
import shlex
import signal
import subprocess
import sys


def parse_line(spec):
    if spec.startswith("re:"):
        return ("re", re.compile(spec[3:]), spec)
    return ("text", spec, spec)


def matches(item, line):
    kind, pat, _ = item
    return pat.fullmatch(line) is not None if kind == "re" else line == pat


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv):
    args, expect_signal, i = [], None, 1
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i] == "--arg" and i + 1 < len(argv):
            args.append(argv[i + 1])
            i += 2
        elif argv[i] == "--signal" and i + 1 < len(argv):
            expect_signal = getattr(signal, "SIG" + argv[i + 1].upper().removeprefix("SIG"))
            i += 2
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if len(argv) - i < 2:
        print(__doc__, file=sys.stderr)
        return 2
    prog, specs = argv[i], argv[i + 1:]
    absent = [parse_line(s[1:]) for s in specs if s.startswith("!")]
    items = [[parse_line(a) for a in s.split("||")] for s in specs if not s.startswith("!")]
    expected_anywhere = {it[1] for group in items for it in group if it[0] == "text"}

    # `meson test --setup valgrind` runs the sample under valgrind (tests/valgrind.sh).
    wrapper = shlex.split(os.environ.get("REFSCOPE_SAMPLE_WRAPPER", ""))
    proc = subprocess.run(wrapper + [prog] + args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600 if wrapper else 60,
                          preexec_fn=no_core if expect_signal else None)
    out = proc.stdout.splitlines()
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    ok = True
    k = 0
    pending = list(items[0]) if items else []
    for n, line in enumerate(out, 1):
        line = line.rstrip()
        for item in absent:
            if matches(item, line):
                print(f"check_output: line {n} must not appear: {line!r}")
                ok = False
        hit = next((it for it in pending if matches(it, line)), None)
        if k < len(items) and hit is not None:
            pending.remove(hit)
            if not pending:
                k += 1
                pending = list(items[k]) if k < len(items) else []
        elif line in expected_anywhere:
            want = " or ".join(repr(it[2]) for it in pending) or "nothing more"
            print(f"check_output: line {n} out of order: {line!r} (expected {want})")
            ok = False
    if k < len(items):
        print(f"check_output: missing: {' and '.join(repr(it[2]) for it in pending)}")
        ok = False
    if expect_signal is not None:
        if proc.returncode != -expect_signal:
            print(f"check_output: {prog} exited with status {proc.returncode}, expected to be "
                  f"killed by {signal.Signals(expect_signal).name}")
            ok = False
    elif proc.returncode != 0:
        print(f"check_output: {prog} exited with status {proc.returncode}")
        ok = False
    print("check_output: OK" if ok else "check_output: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
