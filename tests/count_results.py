#!/usr/bin/env python3
"""Count test results from meson's testlog.json; print one final line.

    count_results.py build/meson-logs/testlog.json [MESON_TEST_STATUS]

testlog.json holds one JSON object per test run (name, result, stdout and,
when split, stderr). A test whose output carries Criterion's synthesis line

    [====] Synthesis: Tested: 8 | Passing: 8 | Failing: 0 | Crashing: 0

counts as its individual Criterion tests; any other test counts as one, by
meson's result. Criterion 2.4's "Failing" already includes the crashed
tests ("Crashing" is a subset: a crash alone prints "Tested: 1 | Passing: 0
| Failing: 1 | Crashing: 1"), so failed = max(Failing, Tested - Passing);
skipped and disabled tests are not in "Tested". A Criterion binary that died
without a synthesis (crash, timeout) counts as one failure. The last line
printed is always "N passed, N failed"; the exit status is 1 when anything
failed.
"""
import json
import re
import sys

SYNTHESIS = re.compile(
    r"\[====\] Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
# Criterion's per-test failure lines: details "[----] ..." then "[FAIL] suite::name: ..."
CRITERION_DETAIL = re.compile(r"^\[(----|FAIL|ERR |WARN)\]")
CRITERION_FAIL = re.compile(r"^\[FAIL\] (\S+?):? ")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

PASS_RESULTS = {"OK", "EXPECTEDFAIL"}
SKIP_RESULTS = {"SKIP"}
TAIL_LINES = 25


def output_of(entry):
    out = entry.get("stdout") or ""
    err = entry.get("stderr") or ""
    return ANSI.sub("", out + ("\n" if out and err else "") + err)


def main(argv):
    if len(argv) < 2:
        print("usage: count_results.py TESTLOG.json [MESON_STATUS]", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    meson_status = int(argv[2]) if len(argv) > 2 else 0
    passed = failed = skipped = 0
    failures = []  # (test name, [failing Criterion tests], [relevant lines])

    try:
        with open(argv[1], encoding="utf-8", errors="replace") as f:
            lines = [l for l in f if l.strip()]
    except OSError as e:
        print(f"count_results: {e}")
        print("0 passed, 1 failed")
        return 1

    for lineno, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            failed += 1
            failures.append((f"testlog line {lineno}", [], ["unparseable JSON"]))
            continue
        name = entry.get("name", "?")
        result = entry.get("result", "?")
        text = output_of(entry)
        synth = SYNTHESIS.findall(text)
        if synth:
            tested, passing, failing, crashing = map(int, synth[-1])
            nfailed = max(failing, tested - passing, crashing)
            passed += passing
            failed += nfailed
            bad = nfailed > 0
            if not bad and result not in PASS_RESULTS:
                # all Criterion tests passed but the binary itself did not
                failed += 1
                bad = True
            if bad:
                names = [m.group(1) for m in map(CRITERION_FAIL.match, text.splitlines()) if m]
                detail = [l for l in text.splitlines() if CRITERION_DETAIL.match(l)]
                if result not in PASS_RESULTS:
                    detail.append(f"(meson result {result}, exit status {entry.get('returncode')})")
                failures.append((name, names, detail))
        elif result in SKIP_RESULTS:
            skipped += 1
        elif result in PASS_RESULTS:
            passed += 1
        else:
            failed += 1
            tail = text.splitlines()[-TAIL_LINES:]
            tail.append(f"(meson result {result}, exit status {entry.get('returncode')})")
            failures.append((name, [], tail))

    if not lines:
        failed += 1
        failures.append(("meson test", [], [f"no test ran (meson test exit status {meson_status})"]))
    elif meson_status != 0 and not failures:
        # meson said something failed that the log does not show
        failed += 1
        failures.append(("meson test", [], [f"exit status {meson_status} with no failing test in the log"]))

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
