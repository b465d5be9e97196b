#!/usr/bin/env python3
"""Classify the failure in a libFuzzer log (one run, at most one failure).

    triage.py LOG

Prints one line, "KIND at FUNCTION (LOCATION)", and exits with
    0  no failure in the log
    1  a failure in refscope's own code (or one that cannot be placed)
    3  a failure inside libdwarf (Debian's 20210528 build, not ours to fix:
       it crashes, leaks or loops on some malformed DWARF; the harness
       only gave it a corrupt executable)

The place of a failure is the first stack frame that is not the
sanitizers', libFuzzer's or libc's (malloc, free, abort, memcpy...): for a
crash the code that crashed, for a leak or a too large allocation the code
that allocated. A failure is libdwarf's only if that frame is in
libdwarf.so *and* refscope called libdwarf with something other than a
dealloc/finish (freeing twice through libdwarf is our bug). A timeout is
ours whenever refscope's code is on the stack (a loop that calls libdwarf
is still our loop).
"""
import re
import sys

FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ in (\S+)\s*(.*)$")
UBSAN = re.compile(r"^(\S+?):(\d+):(\d+): runtime error: (.*)$")
SKIP = re.compile(
    r"^(__interceptor_|__asan|__sanitizer|__ubsan|__lsan|__libc_|__GI_|_dl_|fuzzer::|"
    r"malloc$|calloc$|realloc$|free$|strdup$|abort$|raise$|__memcpy|__memmove|__memset|"
    r"memcpy$|memmove$|memset$|__pthread_kill|pthread_kill|__restore_rt|"
    r"operator |std::|main$|_start$|msort|qsort|"
    r"rs_x(malloc|calloc|realloc|strdup)$|rs__x(malloc|calloc|realloc|strdup)$|rs_grow$|rs__grow$)")
OURS_AFTER_LIBDWARF = re.compile(r"^(dwarf_dealloc|dwarf_finish|dwarf_object_finish|"
                                 r"dwarf_fde_cie_list_dealloc|dwarf_srclines_dealloc)")


def classify(lines):
    kind = None
    ubsan = None
    for l in lines:
        if kind is None and ("==ERROR:" in l or "ERROR: libFuzzer:" in l or
                             "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l):
            kind = l.split("ERROR:", 1)[1].strip()
        m = UBSAN.match(l)
        if m and ubsan is None:
            ubsan = m
            kind = kind or "runtime error: " + m.group(4)
    if kind is None:
        return 0, "no failure"
    if ubsan is not None and "/usr/" not in ubsan.group(1):
        return 1, f"{kind} at {ubsan.group(1)}:{ubsan.group(2)}"
    frames = [m for m in map(FRAME.match, lines) if m]
    # first stack only (a double free prints three: where, freed, allocated)
    first = []
    for m in frames:
        if first and m.group(1) == "0":
            break
        first.append(m)
    site = None
    for i, m in enumerate(first):
        if SKIP.match(m.group(2)) or "libc.so" in m.group(3) or "libFuzzer" in m.group(3):
            continue
        site = i
        break
    if site is None:
        return 1, f"{kind} at an unknown place"
    func, loc = first[site].group(2), first[site].group(3)
    where = f"{kind} at {func} {loc}"
    if "timeout" in kind:
        # where the alarm found it says little: a hang is ours if our code is
        # on the stack at all (a loop calling libdwarf is still our loop)
        for m in first[site:]:
            if "libdwarf.so" not in m.group(3) and not SKIP.match(m.group(2)):
                return 1, f"{kind} in {m.group(2)} {m.group(3)} (then at {func})"
        return 3, where + " [inside libdwarf]"
    if "libdwarf.so" in loc:
        # the libdwarf function refscope called: the last libdwarf frame
        entry = None
        for m in first[site:]:
            if "libdwarf.so" in m.group(3):
                entry = m.group(2)
            else:
                break
        if entry and OURS_AFTER_LIBDWARF.match(entry):
            return 1, where + f" (called through {entry}: refscope's use of libdwarf)"
        return 3, where + f" [inside libdwarf, called through {entry}]"
    return 1, where


def normalize(text):
    """The same failure at another heap address or build reads the same."""
    text = re.sub(r" \(BuildId: [0-9a-f]+\)", "", text)
    text = re.sub(r"(on|at|address|to) 0x[0-9a-f]+", r"\1 0x...", text)
    return re.sub(r"==\d+==", "", text)


def main(argv):
    if len(argv) != 2:
        print("usage: triage.py LOG", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    status, text = classify(lines)
    print(normalize(text))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
