#!/usr/bin/env python3
"""Run a sample and check its output against expected key lines.

    check_output.py PROGRAM LINE [LINE ...]

Each LINE must appear in the program's stdout as a whole line, in the given
order; narration lines in between are ignored. A LINE of the form
"a||b" is a group: a and b both appear next, in either order. An expected
line that appears out of turn (too early, or twice) is an error, so
"Object obj1 deleted" before its time fails the check. The program must
exit with status 0.
"""
import subprocess
import sys


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    prog, items = argv[1], [a.split("||") for a in argv[2:]]
    expected_anywhere = {line for group in items for line in group}
    proc = subprocess.run([prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60)
    out = proc.stdout.splitlines()
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    ok = True
    i = 0
    pending = list(items[0]) if items else []
    for n, line in enumerate(out, 1):
        line = line.rstrip()
        if i < len(items) and line in pending:
            pending.remove(line)
            if not pending:
                i += 1
                pending = list(items[i]) if i < len(items) else []
        elif line in expected_anywhere:
            print(f"check_output: line {n} out of order: {line!r} "
                  f"(expected {' or '.join(map(repr, pending)) or 'nothing more'})")
            ok = False
    if i < len(items):
        print(f"check_output: missing: {' and '.join(map(repr, pending))}")
        ok = False
    if proc.returncode != 0:
        print(f"check_output: {prog} exited with status {proc.returncode}")
        ok = False
    print("check_output: OK" if ok else "check_output: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
