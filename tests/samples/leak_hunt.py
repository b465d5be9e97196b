#!/usr/bin/env python3
"""Leak hunts on the samples: take a core of a sample holding its planted
leak, and check that the tools name that leak -- its type, its allocation
site (file:line, found in the sample's source), the root or closure cell
that holds it.

    leak_hunt.py cli SAMPLE     refscope on a kernel core of SAMPLE --abort-at-end
    leak_hunt.py gdb KIND       gdb -batch on the same kind of core, heap-* commands
    leak_hunt.py live           SAMPLE --wait, looked at with refscope --pid

SAMPLE: cycles, uncollectable, global_cache, forgotten_closure, weak_cache,
missing_decref, crash. KIND (one per kind of leak): cycle, uncollectable,
global, closure, cache, missing-decref, crash.

Cores are kernel cores: the sample runs with RLIMIT_CORE raised in a fresh
directory (TOOLCHAIN.md: core_pattern is "core" in the cwd). Where the
kernel writes none (core_pattern a pipe or a path), gdb's generate-core-file
at rc_debug_checkpoint stands in, and the test says so.

Environment (tests/samples/meson.build): REFSCOPE_CLI, REFSCOPE_GDB,
REFSCOPE_BUILD_ROOT, REFSCOPE_SAMPLES (the built samples), REFSCOPE_SAMPLES_SRC
(their sources), REFSCOPE_WORKDIR (for cores; each test's directory is
removed when it passes).

Prints one "ok - ..." / "not ok - ..." line per check; exit 0 if all
passed, 1 if any failed, 77 (meson: skipped) if it cannot run here.
"""
import glob
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLI = os.environ.get("REFSCOPE_CLI", "")
GDB = os.environ.get("REFSCOPE_GDB", "gdb")
BUILD = os.environ.get("REFSCOPE_BUILD_ROOT", "")
SAMPLES = os.environ.get("REFSCOPE_SAMPLES", "")
SRC = os.environ.get("REFSCOPE_SAMPLES_SRC", "")
WORK = os.environ.get("REFSCOPE_WORKDIR") or os.path.join(BUILD, "tests", "samples", "work")
SKIP = 77
MARK = "@@@leak-hunt@@@ "
ADDR = r"0x[0-9a-f]+"


class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("ok - " + what)
        else:
            self.failed += 1
            print("not ok - " + what)
            for line in str(detail).rstrip().splitlines()[:80]:
                print("#   " + line)
        return cond

    def has(self, text, pattern, what):
        return self.ok(re.search(pattern, text, re.M) is not None, what,
                       "expected /%s/ in:\n%s" % (pattern, text))

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        return 1 if self.failed else 0


# ---- the samples' sources: sites by what the line says -------------------------------

def src_line(sample, needle):
    """The number of the first line of samples/SAMPLE.c that contains needle."""
    with open(os.path.join(SRC, sample + ".c")) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                return n
    raise LookupError("%s.c has no line with %r" % (sample, needle))


def site(sample, needle):
    """A regex for the site Type@0x... (.../SAMPLE.c:LINE) of that line."""
    return r"%s\.c:%d\b" % (re.escape(sample), src_line(sample, needle))


# ---- cores ------------------------------------------------------------------------------

def is_core(path):
    """An ELF core file (e_type ET_CORE)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return False
    return len(head) == 18 and head[:4] == b"\x7fELF" and head[16:18] == b"\x04\x00"


def allow_core():
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def take_core(t, sample):
    """A core of SAMPLE at its leak point: (path, its directory)."""
    os.makedirs(WORK, exist_ok=True)
    d = tempfile.mkdtemp(prefix=sample + "-", dir=WORK)
    cleanup_on_signal(d)
    exe = os.path.join(SAMPLES, sample)
    proc = subprocess.run([exe, "--abort-at-end"], cwd=d, preexec_fn=allow_core,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    t.ok(proc.returncode == -signal.SIGABRT, "%s --abort-at-end dies of SIGABRT" % sample,
         "status %s, output:\n%s" % (proc.returncode, proc.stdout.decode(errors="replace")))
    cores = [p for p in glob.glob(os.path.join(d, "core*")) if is_core(p)]
    if cores:
        return cores[0], d
    # No kernel core here (core_pattern elsewhere, or a hard limit of 0).
    path = os.path.join(d, sample + ".core")
    print("# no kernel core in %s (core_pattern %r); using gdb's generate-core-file"
          % (d, read_core_pattern()))
    subprocess.run([GDB, "-batch", "-nx", "-iex", "set debuginfod enabled off",
                    "-ex", "break rc_debug_checkpoint", "-ex", "run",
                    "-ex", "generate-core-file " + path, "--args", exe],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    if not is_core(path):
        return None, d
    return path, d


def read_core_pattern():
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            return f.read().strip()
    except OSError:
        return "?"


# ---- running the tools ------------------------------------------------------------------

def refscope(core, *args):
    """(exit status, stdout + stderr) of `refscope CORE ARGS`."""
    proc = subprocess.run([CLI, core] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def refscope_json(core, *args):
    status, out = refscope(core, *(list(args) + ["--json"]))
    try:
        return json.loads(out)
    except ValueError:
        return {"error": out, "status": status}


def referents(core, obj, limit=5):
    """The objects `obj` refers to: [(label, address, type)] from refs --json."""
    doc = refscope_json(core, "refs", obj, "--limit", str(limit))
    return [(r.get("label"), r["object"]["address"], r["object"]["type"])
            for r in doc.get("referents", []) if r.get("object")]


def gdb(program, core, commands):
    """{command: its output} of one `gdb -batch` session on the core."""
    argv = [GDB, "-batch", "-nx", "-iex", "set debuginfod enabled off",
            "-iex", "set width 0", "-iex", "set height 0",
            "-iex", "add-auto-load-safe-path " + BUILD]
    for c in commands:
        argv += ["-ex", "echo \\n%s%s\\n" % (MARK, c), "-ex", c]
    argv += ["-ex", "echo \\n%sEND\\n" % MARK, program, core]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=150)
    text = proc.stdout.decode("utf-8", "replace")
    sections = {}
    for part in text.split("\n" + MARK)[1:]:
        name, _, body = part.partition("\n")
        sections.setdefault(name, body)
    if not sections:
        sections["<gdb>"] = text
    return sections


def section(sections, command):
    return sections.get(command, "<no output: `%s` did not run>\n%s"
                        % (command, sections.get("<gdb>", "")))


# ---- refscope, one leak per sample ------------------------------------------------------

def cli_cycles(t, core):
    s = "cycles"
    _, out = refscope(core, "cycles")
    t.has(out, r"^cycle 1: 2 objects", "cycles: one cycle of 2 objects")
    t.has(out, r"types: 2 x MyObject", "cycles: both are MyObject instances")
    t.has(out, r"MyObject@%s \(\S*%s\)" % (ADDR, site(s, "rc_instance_new(cls)")),
          "cycles: members named with their site in myobject_new()")
    t.has(out, r"-> MyObject\.ref ->", "cycles: the path follows the edge MyObject.ref")
    _, out = refscope(core, "summary")
    t.has(out, r'checkpoint\s+"leak planted"', "summary: the core is at the leak point")


def cli_uncollectable(t, core):
    s = "uncollectable"
    _, out = refscope(core, "garbage")
    t.has(out, r"gc\.garbage .*: 2 objects", "garbage: 2 objects in gc.garbage")
    for i in (0, 1):
        t.has(out, r"^\s*\[%d\] Leaky@%s \(\S*%s\): has a legacy finalizer"
              % (i, ADDR, site(s, "rc_instance_new(cls)")),
              "garbage: [%d] is a Leaky from leaky_new(), with its legacy finalizer as reason" % i)
    t.has(out, r"reference cycle of 2 objects", "garbage: the cycle is named")
    _, out = refscope(core, "roots")
    t.has(out, r"runtime 'gc\.garbage' -> list@", "roots: gc.garbage holds them")


def cli_global_cache(t, core):
    s = "global_cache"
    _, out = refscope(core, "roots")
    t.has(out, r"^\s*(\d+)\s+9001\s+C global 'results' -> list@%s \(\S*%s\)"
          % (ADDR, site(s, "results = rc_list_new()")),
          "roots: the C global 'results' (by DWARF) retains 9001 objects")
    m = re.search(r"^\s*(\d+)\s+\d+\s+C global 'results'", out, re.M)
    t.ok(m is not None and int(m.group(1)) > 3_000_000,
         "roots: 'results' retains more than 3 MB", out)
    _, out = refscope(core, "sites", "--limit", "3")
    t.has(out, r"^\s*3000\s+\d+\s+\S*%s in compute\(\)" % site(s, "rc_bytes(PAYLOAD_SIZE)"),
          "sites: 3000 payloads from compute()'s rc_bytes line")
    t.has(out, r"^\s*3000\s+\d+\s+\S*%s in compute\(\)"
          % site(s, "rc_new(Result, &Result_type)"), "sites: 3000 Results from compute()")
    _, out = refscope(core, "types")
    t.has(out, r"^\s*3000\s+\d+\s+Result$", "types: 3000 Result")
    items = referents(core, "results", 1)
    t.ok(items and items[0][2] == "Result", "refs results: its items are Results", items)
    if items:
        _, out = refscope(core, "path", items[0][1])
        t.has(out, r"C global 'results'\s+->\s+list@", "path: from the C global 'results'")
        t.has(out, r"list\[0\]\s+->\s+Result@%s" % re.escape(items[0][1]),
              "path: list[0] -> the Result")


def cli_forgotten_closure(t, core):
    s = "forgotten_closure"
    _, out = refscope(core, "roots")
    t.has(out, r"registered root 'handlers' -> list@", "roots: the registered root 'handlers'")
    t.has(out, r"C global 'handlers' -> list@", "roots: ... which is the C global 'handlers'")
    t.has(out, r"^closures \(3\):", "roots: three closures")
    cell = r"closure process cell 'huge_data' -> bytes@%s \(\S*%s\): retained (\d+) bytes" % (
        ADDR, site(s, "rc_bytes(HUGE_SIZE)"))
    cells = re.findall(cell, out, re.M)
    t.ok(len(cells) == 3 and all(int(b) >= 4 << 20 for b in cells),
         "roots: each closure 'process' holds 4 MiB in its cell 'huge_data' "
         "(bytes from load_huge_dataset())", out)
    t.has(out, r"closure 'process' closure@%s \(\S*%s\)"
          % (ADDR, site(s, "rc_closure_new(process,")),
          "roots: the closures were made in create_processor()")
    m = re.search(r"cell 'huge_data' -> bytes@(%s)" % ADDR, out)
    if t.ok(m is not None, "roots names a huge_data object", out):
        _, out = refscope(core, "path", m.group(1))
        t.has(out, r"handlers", "path to huge_data starts at handlers")
        t.has(out, r"closure process cell 'huge_data'\s+->\s+bytes@",
              "path to huge_data ends with the closure cell")


def cli_weak_cache(t, core):
    s = "weak_cache"
    _, out = refscope(core, "roots")
    t.has(out, r"C global 'cache' -> dict@", "roots: the C global 'cache'")
    t.has(out, r"C global 'observers' -> list@", "roots: the C global 'observers'")
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+C global 'cache'", out, re.M)
    t.ok(m is not None and int(m.group(1)) > 100 * 10000,
         "roots: 'cache' retains the 100 results (more than 1 MB)", out)
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+C global 'weak_cache'", out, re.M)
    t.ok(m is None or int(m.group(1)) < 10000,
         "roots: 'weak_cache' retains next to nothing", out)
    _, out = refscope(core, "types")
    t.has(out, r"^\s*100\s+\d+\s+ExpensiveObject$", "types: 100 ExpensiveObject")
    t.has(out, r"^\s*3\s+\d+\s+Observer$", "types: 3 Observer (the strongly held ones)")
    _, out = refscope(core, "sites", "--limit", "0")
    t.has(out, r"^\s*100\s+\d+\s+\S*%s in expensive_computation\(\)"
          % site(s, "rc_new(ExpensiveObject, &ExpensiveObject_type)"),
          "sites: the 100 from expensive_computation()")
    t.has(out, r"^\s*3\s+\d+\s+\S*%s in observer_new\(\)" % site(s, "rc_new(Observer,"),
          "sites: the 3 Observers from observer_new()")
    items = referents(core, "observers", 3)
    t.ok(len(items) == 3 and all(i[2] == "Observer" for i in items),
         "refs observers: 3 Observers", items)


def cli_missing_decref(t, core):
    s = "missing_decref"
    status, out = refscope(core, "leaks")
    t.ok(status == 1, "leaks: exit status 1 (findings)", "status %d\n%s" % (status, out))
    t.has(out, r"1 objects hold 5 references no holder explains",
          "leaks: 5 references no holder explains")
    t.has(out, r"^\s*1\s+5\s+\d+\s+\d+\s+Record at \S*%s in registry_add\(\)"
          % site(s, "rc_new(Record, &Record_type)"),
          "leaks: the Record made in registry_add()")
    t.has(out, r"Record@%s \(\S*\): refcount 5 = 0 heap references \+ 0 roots.*5 unexplained"
          % ADDR, "leaks: refcount 5, nothing holds it")


def cli_crash(t, core):
    s = "crash"
    _, out = refscope(core, "cycles")
    t.has(out, r"in 3 groups", "cycles: the 3 closed sessions")
    t.has(out, r"types: 1 x Session \(\d+ bytes\), 1 x Connection", "cycles: Session + Connection")
    t.has(out, r"Session@%s \(\S*%s\) -> Session\.connection -> Connection@"
          % (ADDR, site(s, "rc_new(Session, &Session_type)")),
          "cycles: Session.connection from open_session()")
    _, out = refscope(core, "roots")
    t.has(out, r"C global 'sessions' -> list@", "roots: the C global 'sessions'")
    t.has(out, r"stack '[^']*handle_request\(\)' -> Request@%s \(\S*%s\)"
          % (ADDR, site(s, "rc_new(Request, &Request_type)")),
          "roots: the crashing frame handle_request() holds the Request")
    items = referents(core, "sessions", 5)
    t.ok(len(items) == 2 and all(i[2] == "Session" for i in items),
         "refs sessions: the 2 open Sessions", items)
    status, out = refscope(core, "leaks")
    t.has(out, r"5 objects hold 5 references no holder explains",
          "leaks: one reference too many on each of the 5 user names")
    t.has(out, r"^\s*5\s+5\s+\d+\s+\d+\s+str at \S*%s in intern_user\(\)"
          % site(s, "s = rc_str(name)"), "leaks: the strs made in intern_user()")


CLI_HUNTS = {
    "cycles": cli_cycles, "uncollectable": cli_uncollectable,
    "global_cache": cli_global_cache, "forgotten_closure": cli_forgotten_closure,
    "weak_cache": cli_weak_cache, "missing_decref": cli_missing_decref, "crash": cli_crash,
}


# ---- gdb, one test per kind of leak -----------------------------------------------------

def gdb_cycle(t, prog, core):
    out = gdb(prog, core, ["heap-cycles"])
    c = section(out, "heap-cycles")
    t.has(c, r"types: 2 x MyObject", "heap-cycles: the MyObject pair")
    t.has(c, r"MyObject\.ref", "heap-cycles: through MyObject.ref")
    m = re.search(r"MyObject@(%s)" % ADDR, c)
    if t.ok(m is not None, "heap-cycles names a member", c):
        out = gdb(prog, core, ["heap-refs " + m.group(1),
                               "print (rc_object *)" + m.group(1)])
        r = section(out, "heap-refs " + m.group(1))
        t.has(r, r"refcount 1 = 1 heap references", "heap-refs: held once, by the other")
        t.has(r, r"collector: .*(unreachable|cycle)", "heap-refs: the collector would free it")
        p = section(out, "print (rc_object *)" + m.group(1))
        t.has(p, r"<MyObject@%s refcnt=1 gen=\d cycles\.c:\d+>" % m.group(1),
              "print: the pretty-printer names the object")


def gdb_uncollectable(t, prog, core):
    out = gdb(prog, core, ["heap-garbage"])
    g = section(out, "heap-garbage")
    t.has(g, r"\[0\] Leaky@%s .*legacy finalizer" % ADDR, "heap-garbage: [0] Leaky, why")
    t.has(g, r"\[1\] Leaky@%s .*legacy finalizer" % ADDR, "heap-garbage: [1] Leaky, why")


def gdb_global(t, prog, core):
    out = gdb(prog, core, ["heap-roots", "heap-refs results", "print results"])
    t.has(section(out, "heap-roots"), r"C global 'results' -> list@",
          "heap-roots: the C global 'results'")
    t.has(section(out, "heap-refs results"), r"list\[0\]\s+->\s+Result@",
          "heap-refs results: holds Results")
    t.has(section(out, "print results"), r"<list@%s refcnt=1 .*> \[<Result@" % ADDR,
          "print results: a list of Results")


def gdb_closure(t, prog, core):
    out = gdb(prog, core, ["heap-roots", "print handlers"])
    r = section(out, "heap-roots")
    t.has(r, r"closure 'process'", "heap-roots: the closures 'process'")
    t.has(r, r"closure process cell 'huge_data' -> bytes@%s \(\S*%s\)"
          % (ADDR, site("forgotten_closure", "rc_bytes(HUGE_SIZE)")),
          "heap-roots: cell 'huge_data' holds the dataset")
    t.has(section(out, "print handlers"), r"<list@%s .*> \[<closure@" % ADDR,
          "print handlers: a list of closures")


def gdb_cache(t, prog, core):
    out = gdb(prog, core, ["heap-types", "heap-refs cache", "heap-roots"])
    t.has(section(out, "heap-types"), r"^\s*100\s+\d+\s+ExpensiveObject$",
          "heap-types: 100 ExpensiveObject")
    t.has(section(out, "heap-refs cache"), r"dict\['\d+'\]\s+->\s+ExpensiveObject@",
          "heap-refs cache: its entries are ExpensiveObjects")
    t.has(section(out, "heap-roots"), r"C global 'observers' -> list@",
          "heap-roots: the C global 'observers'")


def gdb_missing_decref(t, prog, core):
    out = gdb(prog, core, ["heap-leaks"])
    l = section(out, "heap-leaks")
    t.has(l, r"Record at \S*%s in registry_add\(\)"
          % site("missing_decref", "rc_new(Record, &Record_type)"),
          "heap-leaks: the Record from registry_add()")
    t.has(l, r"5 unexplained", "heap-leaks: 5 unexplained references")


def gdb_crash(t, prog, core):
    out = gdb(prog, core, ["heap-cycles", "heap-roots", "frame function handle_request",
                           "print request", "print *request"])
    t.has(section(out, "heap-cycles"), r"in 3 groups", "heap-cycles: the 3 closed sessions")
    t.has(section(out, "heap-roots"), r"handle_request\(\).*Request@",
          "heap-roots: the crashing frame holds the Request")
    t.has(section(out, "print request"), r"<Request@%s refcnt=1 gen=\d crash\.c:\d+>" % ADDR,
          "print request: the pretty-printer names it")
    t.has(section(out, "print *request"), r"size = -1", "print *request: the bad size")


GDB_HUNTS = {
    "cycle": ("cycles", gdb_cycle), "uncollectable": ("uncollectable", gdb_uncollectable),
    "global": ("global_cache", gdb_global), "closure": ("forgotten_closure", gdb_closure),
    "cache": ("weak_cache", gdb_cache), "missing-decref": ("missing_decref", gdb_missing_decref),
    "crash": ("crash", gdb_crash),
}


# ---- live: --wait and refscope --pid ----------------------------------------------------

def hunt_live(t):
    exe = os.path.join(SAMPLES, "global_cache")
    proc = subprocess.Popen([exe, "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        lines.append(line)
        if line.strip() == "ready":
            break
    if not t.ok(lines and lines[-1].strip() == "ready", "global_cache --wait says ready",
                "".join(lines)):
        proc.kill()
        proc.wait()
        return
    status, out = refscope("--pid", str(proc.pid), "roots")  # refscope --pid PID roots
    t.ok(status == 0, "refscope --pid roots succeeds", out)
    t.has(out, r"C global 'results' -> list@", "live roots: the C global 'results'")
    proc.stdin.close()  # EOF: the sample goes on
    rest = proc.stdout.read().decode(errors="replace")
    proc.wait(timeout=60)
    t.ok(proc.returncode == 0, "the sample continues and exits 0 after EOF",
         "status %s\n%s" % (proc.returncode, rest))
    t.has(rest, r"^continuing$", "the sample says it continues")


def cleanup_on_signal(d):
    """A test meson stops (timeout, ^C) leaves no half-written core behind."""
    def handler(signum, frame):
        shutil.rmtree(d, ignore_errors=True)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv):
    if len(argv) < 2 or argv[1] not in ("cli", "gdb", "live") or \
            (argv[1] != "live" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    mode = argv[1]
    if not CLI and mode != "gdb":
        print("# the refscope command is not built: skipped")
        return SKIP
    if mode == "gdb" and not shutil.which(GDB):
        print("# gdb not found: skipped")
        return SKIP
    if mode == "live":
        t = Checks("live")
        hunt_live(t)
        return t.done()

    name = argv[2]
    if mode == "cli":
        if name not in CLI_HUNTS:
            print("unknown sample %r" % name, file=sys.stderr)
            return 2
        sample, hunt = name, CLI_HUNTS[name]
    else:
        if name not in GDB_HUNTS:
            print("unknown leak kind %r" % name, file=sys.stderr)
            return 2
        sample, hunt = GDB_HUNTS[name]
    t = Checks("%s %s" % (mode, name))
    core, d = take_core(t, sample)
    if not t.ok(core is not None, "a core of %s" % sample, "no core in " + d):
        return t.done()
    if mode == "cli":
        hunt(t, core)
    else:
        hunt(t, os.path.join(SAMPLES, sample), core)
    status = t.done()
    if status == 0:
        shutil.rmtree(d, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
