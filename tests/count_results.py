#!/usr/bin/env python3
"""Count test results from meson's testlog.json files; print one final line.

    count_results.py TESTLOG [MESON_STATUS] [--extra LABEL TESTLOG STATUS]...
                     [--fail NAME MESSAGE]...

testlog.json holds one JSON object per test run (name, result, stdout and,
when split, stderr). A test whose output carries Criterion's synthesis line

    [====] Synthesis: Tested: 8 | Passing: 8 | Failing: 0 | Crashing: 0

counts as its individual Criterion tests; any other test counts as one, by
meson's result. Criterion 2.4's "Failing" already includes the crashed
tests ("Crashing" is a subset: a crash alone prints "Tested: 1 | Passing: 0
| Failing: 1 | Crashing: 1"), so failed = max(Failing, Tested - Passing);
skipped and disabled tests are not in "Tested". A Criterion binary that died
without a synthesis (crash, timeout), or whose Criterion tests all passed
while the binary failed (a wrapper such as valgrind.sh found errors), counts
as one failure.

--extra adds another stage's log (the sanitizer build, the valgrind setup):
its tests are named LABEL:NAME (asan:test_gc). --fail adds a failure that has no log (a
stage that could not be built). The last line printed is always
"N passed, N failed", summed over all logs; the exit status is 1 when
anything failed.
"""
import json
import re
import sys

SYNTHESIS = re.compile(
    r"\[====\] Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
# Criterion's per-test failure lines: details "[----] ..." then "[FAIL] suite::name: ..."
CRITERION_DETAIL = re.compile(r"^\[(----|FAIL|ERR |WARN)\]")
CRITERION_FAIL = re.compile(r"^\[FAIL\] (\S+?):? ")
# What a sanitizer says when it stops a test (the asan stage).
SANITIZER_DETAIL = re.compile(r".*(runtime error: |ERROR: \w+Sanitizer|SUMMARY: \w+Sanitizer)")
# What a wrapper says when the binary's tests passed but it did not (valgrind.sh).
WRAPPER_DETAIL = re.compile(r"^valgrind: |^==\d+== .*(Invalid|uninitialised|definitely lost|"
                            r"Mismatched|overlap|Syscall param)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

PASS_RESULTS = {"OK", "EXPECTEDFAIL"}
SKIP_RESULTS = {"SKIP"}
TAIL_LINES = 25


def output_of(entry):
    out = entry.get("stdout") or ""
    err = entry.get("stderr") or ""
    return ANSI.sub("", out + ("\n" if out and err else "") + err)


def count_log(path, label, meson_status, totals, failures):
    """Add one testlog's results to totals [passed, failed, skipped]."""
    prefix = f"{label}:" if label else ""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [l for l in f if l.strip()]
    except OSError as e:
        totals[1] += 1
        failures.append((f"{prefix}meson test", [], [f"no test log: {e}",
                                                     f"(meson test exit status {meson_status})"]))
        return

    for lineno, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            totals[1] += 1
            failures.append((f"{prefix}testlog line {lineno}", [], ["unparseable JSON"]))
            continue
        name = entry.get("name", "?")
        if label:  # "refscope:runtime / test_gc" -> "asan:test_gc"
            name = prefix + name.split(" / ", 1)[-1]
        result = entry.get("result", "?")
        text = output_of(entry)
        synth = SYNTHESIS.findall(text)
        if synth:
            tested, passing, failing, crashing = map(int, synth[-1])
            nfailed = max(failing, tested - passing, crashing)
            totals[0] += passing
            totals[1] += nfailed
            bad = nfailed > 0
            if not bad and result not in PASS_RESULTS:
                # all Criterion tests passed but the binary itself did not
                totals[1] += 1
                bad = True
            if bad:
                names = [m.group(1) for m in map(CRITERION_FAIL.match, text.splitlines()) if m]
                detail = [l for l in text.splitlines() if CRITERION_DETAIL.match(l)]
                seen = set()
                for l in text.splitlines():
                    if SANITIZER_DETAIL.match(l) and l not in seen and len(seen) < 10:
                        seen.add(l)
                        detail.append(l)
                if result not in PASS_RESULTS:
                    detail += [l for l in text.splitlines() if WRAPPER_DETAIL.match(l)]
                    detail.append(f"(meson result {result}, exit status {entry.get('returncode')})")
                failures.append((name, names, detail))
        elif result in SKIP_RESULTS:
            totals[2] += 1
        elif result in PASS_RESULTS:
            totals[0] += 1
        else:
            totals[1] += 1
            tail = text.splitlines()[-TAIL_LINES:]
            tail.append(f"(meson result {result}, exit status {entry.get('returncode')})")
            failures.append((name, [], tail))

    if not lines:
        totals[1] += 1
        failures.append((f"{prefix}meson test", [],
                         [f"no test ran (meson test exit status {meson_status})"]))
    elif meson_status != 0 and not any(f[0].startswith(prefix) for f in failures):
        # meson said something failed that the log does not show
        totals[1] += 1
        failures.append((f"{prefix}meson test", [],
                         [f"exit status {meson_status} with no failing test in the log"]))


def parse_args(argv):
    """[(label, path, status)], [(name, message)] from the command line."""
    args = argv[1:]
    if not args or args[0].startswith("--"):
        raise ValueError("no TESTLOG")
    logs = [["", args.pop(0), 0]]
    if args and not args[0].startswith("--"):
        logs[0][2] = int(args.pop(0))
    extra_failures = []
    while args:
        opt = args.pop(0)
        if opt == "--extra" and len(args) >= 3:
            logs.append([args[0], args[1], int(args[2])])
            del args[:3]
        elif opt == "--fail" and len(args) >= 2:
            extra_failures.append((args[0], args[1]))
            del args[:2]
        else:
            raise ValueError(f"unexpected argument {opt!r}")
    return logs, extra_failures


def main(argv):
    try:
        logs, extra_failures = parse_args(argv)
    except ValueError as e:
        print(f"count_results: {e}", file=sys.stderr)
        print(__doc__.splitlines()[2], file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    totals = [0, 0, 0]  # passed, failed, skipped
    failures = []  # (test name, [failing Criterion tests], [relevant lines])
    for label, path, status in logs:
        count_log(path, label, status, totals, failures)
    for name, message in extra_failures:
        totals[1] += 1
        failures.append((name, [], [message]))
    passed, failed, skipped = totals

    if failures:
        print()
        print("Failures:")
        for name, names, detail in failures:
            print(f"== {name}" + (": " + ", ".join(names) if names else ""))
            for l in detail:
                print(f"   {l}")
    if skipped:
        print(f"({skipped} skipped)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
