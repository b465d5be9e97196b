#!/usr/bin/env python3
"""The GDB plugin's tests: real `gdb -batch -nx` runs, asserting on the transcript.

    gdb_tests.py SCENARIO        (autoload, shared, printers, live, core, locals,
                                  errors, snapshot, parity)

gdb's exit status says nothing (-batch returns the last command's status),
so every check reads the output: each command is preceded by an `echo` of a
marker line, and the transcript is cut into one section per command. The
plugin is loaded the way users get it: the runtime's .debug_gdb_scripts
section, allowed by -iex 'add-auto-load-safe-path BUILD'.

Environment (set by tests/gdb/meson.build): REFSCOPE_GDB, REFSCOPE_LEAKY (the
program, progs/leaky.c), REFSCOPE_BUILD_ROOT, REFSCOPE_WORKDIR (for cores),
REFSCOPE_CLI (the refscope command, for the parity test; optional).

Prints one "ok - ..." / "not ok - ..." line per check; exit 0 if all
passed, 1 if any failed, 77 (meson: skipped) if the scenario cannot run here.
"""
import glob
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile

GDB = os.environ.get("REFSCOPE_GDB", "gdb")
LEAKY = os.environ.get("REFSCOPE_LEAKY", "")
LEAKY_SHARED = os.environ.get("REFSCOPE_LEAKY_SHARED", "")
BUILD = os.environ.get("REFSCOPE_BUILD_ROOT", "")
WORK = os.environ.get("REFSCOPE_WORKDIR") or os.path.join(BUILD, "tests", "gdb", "work")
CLI = os.environ.get("REFSCOPE_CLI", "")
MARK = "@@@refscope-test@@@ "
SKIP = 77

OBJ = r"[A-Za-z_][\w.]*@0x[0-9a-f]+"            # Node@0x5555...
NODE_PRINT = re.compile(r"<Node@0x[0-9a-f]+ refcnt=\d+ gen=\d leaky\.c:\d+>")


class Checks:
    def __init__(self, scenario):
        self.scenario = scenario
        self.failed = 0
        self.passed = 0

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("ok - %s" % what)
        else:
            self.failed += 1
            print("not ok - %s" % what)
            if detail:
                for line in str(detail).rstrip().splitlines()[:60]:
                    print("#   " + line)
        return cond

    def has(self, text, pattern, what):
        return self.ok(re.search(pattern, text, re.M) is not None, what,
                       "expected /%s/ in:\n%s" % (pattern, text))

    def lacks(self, text, pattern, what):
        return self.ok(re.search(pattern, text, re.M) is None, what,
                       "did not expect /%s/ in:\n%s" % (pattern, text))

    def done(self):
        print("%s: %d passed, %d failed" % (self.scenario, self.passed, self.failed))
        return 1 if self.failed else 0


# ---- running gdb ------------------------------------------------------------------

def gdb_argv(commands, core=None, args=(), autoload=True, setup=(), program=None):
    program = program or LEAKY
    argv = [GDB, "-batch", "-nx", "-iex", "set debuginfod enabled off",
            "-iex", "set width 0", "-iex", "set height 0", "-iex", "set breakpoint pending on"]
    if autoload:
        argv += ["-iex", "add-auto-load-safe-path " + BUILD]
    for c in setup:
        argv += ["-ex", c]
    for c in commands:
        argv += ["-ex", "echo \\n%s%s\\n" % (MARK, c.replace("\\", "\\\\")), "-ex", c]
    argv += ["-ex", "echo \\n%sEND\\n" % MARK]
    if args:
        argv += ["--args", program] + list(args)
    else:
        argv += [program] + ([core] if core else [])
    return argv


def run_gdb(commands, core=None, args=(), autoload=True, setup=(), timeout=150, program=None):
    """(whole transcript, {command: its output}) of one gdb session."""
    argv = gdb_argv(commands, core, args, autoload, setup, program)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=timeout, cwd=WORK)
    text = proc.stdout.decode("utf-8", "replace")
    sections = {}
    parts = text.split("\n" + MARK)
    for part in parts[1:]:
        name, _, body = part.partition("\n")
        sections.setdefault(name, body)
    return text, sections


LIVE_SETUP = ("break rc_debug_checkpoint", "run", "up")


def live(commands, **kw):
    return run_gdb(commands, setup=LIVE_SETUP, **kw)


# ---- a core of leaky ----------------------------------------------------------------

def make_core():
    """A kernel core of `leaky abort` (or gdb's generate-core-file if the
    kernel writes none here); returns its path."""
    os.makedirs(WORK, exist_ok=True)
    d = tempfile.mkdtemp(prefix="core-", dir=WORK)

    def allow_core():
        resource.setrlimit(resource.RLIMIT_CORE,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
    except OSError:
        pattern = ""
    if pattern and not pattern.startswith("|") and "/" not in pattern:
        try:
            subprocess.run([LEAKY, "abort"], cwd=d, preexec_fn=allow_core, timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        cores = [p for p in glob.glob(os.path.join(d, "core*")) if _is_core(p)]
        if cores:
            return cores[0]
    path = os.path.join(d, "leaky.core")
    subprocess.run([GDB, "-batch", "-nx", "-iex", "set debuginfod enabled off",
                    "-ex", "break rc_debug_checkpoint", "-ex", "run", "-ex",
                    "generate-core-file " + path, "--args", LEAKY, "abort"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return path if _is_core(path) else None


def _is_core(path):
    """An ELF core file (e_type ET_CORE)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return False
    return len(head) == 18 and head[:4] == b"\x7fELF" and head[16:18] == b"\x04\x00"


def remove_core(path):
    if path:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


# ---- scenarios ------------------------------------------------------------------------

EVERY_COMMAND = [
    "heap-summary", "heap-types", "heap-sites", "heap-refs node", "heap-cycles",
    "heap-garbage", "heap-roots", "heap-leaks", "heap-path node", "heap-retained",
    "heap-retained handler", "heap-graph node", "heap-check", "heap-types --json",
    "heap-cycles --limit 1", "heap-refs cache", "heap-overview",
]


def check_reports(t, sections, where):
    """What every command prints, live or from the core."""
    s = lambda c: sections.get(c, "<no output: the command did not run>")
    t.has(s("heap-summary"), r"\d+ objects|objects", where + " heap-summary reports the objects")
    for line in (r"^heap summary ", r"^cycles: a full collection would free \d+ objects",
                 r"^leaks: \d+ objects hold", r"^retained sizes: \d+ objects"):
        t.has(s("heap-overview"), line, where + " heap-overview has " + line)
    t.has(s("heap-types"), r"^\s*7\s+\d+\s+Node\s*$", where + " heap-types: 7 Nodes")
    t.has(s("heap-types"), r"^\s*\d+\s+\d+\s+list\s*$", where + " heap-types lists list")
    t.has(s("heap-sites"), r"leaky\.c:\d+", where + " heap-sites names leaky.c lines")
    t.has(s("heap-refs node"), r"Node@0x[0-9a-f]+", where + " heap-refs node names the Node")
    t.has(s("heap-refs node"), r"global_cache|list\[3\]", where + " heap-refs node: held by global_cache's list")
    t.has(s("heap-refs node"), r"dict\['node'\]", where + " heap-refs node: held by cache's dict['node']")
    t.has(s("heap-cycles"), r"Node@0x[0-9a-f]+.*\n(.*\n)*.*Node@0x", where + " heap-cycles shows the Node cycle")
    t.has(s("heap-cycles"), r"Node\.next", where + " heap-cycles names the edge Node.next")
    t.has(s("heap-garbage"), r"Legacy@0x[0-9a-f]+", where + " heap-garbage lists the Legacy instances")
    t.has(s("heap-roots"), r"global_cache", where + " heap-roots names the C global global_cache")
    t.has(s("heap-roots"), r"config\.head", where + " heap-roots names the static struct member config.head")
    t.has(s("heap-roots"), r"frame #\d+ main\(\) local 'cache'", where + " heap-roots names main's local 'cache'")
    t.has(s("heap-leaks"), r"Node@0x[0-9a-f]+", where + " heap-leaks finds the Node with a missing decref")
    t.has(s("heap-path node"), r"Node@0x[0-9a-f]+", where + " heap-path node ends at the Node")
    t.has(s("heap-retained"), OBJ, where + " heap-retained lists retainers")
    t.has(s("heap-retained handler"), r"closure@0x[0-9a-f]+|bytes@0x", where + " heap-retained handler: the closure and its bytes")
    t.has(s("heap-graph node"), r"Node", where + " heap-graph node draws the Node")
    t.has(s("heap-check"), r"\S", where + " heap-check reports")
    t.has(s("heap-types --json"), r"^\s*[\[{]", where + " heap-types --json prints JSON")
    t.has(s("heap-refs cache"), r"dict@0x[0-9a-f]+", where + " heap-refs cache names the dict")
    t.has(s("heap-refs cache"), r"main\(\) local 'cache'", where + " heap-refs cache: held by main's local 'cache'")


def scenario_autoload(t):
    text, sec = run_gdb(["info auto-load python-scripts", "help heap-refs", "help heap-cycles",
                         "info pretty-printer", "heap-summary"])
    t.has(sec.get("heap-summary", ""), r"^heap-summary: the program is not running and no core file is loaded$",
          "before `run`: a one-line error")
    t.has(sec.get("info auto-load python-scripts", ""), r"Yes\s+refscope-gdb",
          "the runtime's .debug_gdb_scripts section loads refscope-gdb")
    t.has(sec.get("help heap-refs", ""), r"OBJ is any GDB expression", "help heap-refs explains OBJ")
    t.has(sec.get("help heap-cycles", ""), r"[Uu]nreachable", "help heap-cycles explains the command")
    t.has(sec.get("info pretty-printer", ""), r"^\s+refscope\s*$", "the refscope pretty-printer is registered")
    t.lacks(text, r"Traceback", "no Python traceback")
    # Without the safe-path the section is refused and nothing else happens.
    text, sec = run_gdb(["help heap-refs"], autoload=False, setup=("set auto-load safe-path /nonexistent",))
    t.has(sec.get("help heap-refs", ""), r"Undefined command", "without the safe-path nothing is loaded")
    t.lacks(text, r"Traceback", "no Python traceback without the safe-path")


def scenario_shared(t):
    """The runtime as a shared library: the section comes with librefscope.so."""
    if not LEAKY_SHARED or not os.path.exists(LEAKY_SHARED):
        print("SKIP: REFSCOPE_LEAKY_SHARED is not set")
        return SKIP
    text, sec = live(["info auto-load python-scripts", "print node", "heap-refs node",
                      "heap-cycles"], program=LEAKY_SHARED)
    t.has(sec.get("info auto-load python-scripts", ""), r"Yes\s+refscope-gdb",
          "librefscope.so's section loads refscope-gdb")
    t.ok(NODE_PRINT.search(sec.get("print node", "")) is not None,
         "print node works with the shared runtime", sec.get("print node"))
    t.has(sec.get("heap-refs node", ""), r"dict\['node'\]", "heap-refs node works with the shared runtime")
    t.has(sec.get("heap-cycles", ""), r"Node\.next", "heap-cycles works with the shared runtime")
    t.lacks(text, r"Traceback", "no Python traceback")
    return None


def scenario_printers(t):
    text, sec = live(["print node", "print cache", "print global_cache", "print config.head",
                      "print node->payload", "print handler", "print *node",
                      "print (rc_object *) node", "print/r node",
                      "disable pretty-printer .* refscope", "print (Node *) node",
                      "enable pretty-printer .* refscope", "output node"])
    t.ok(NODE_PRINT.search(sec.get("print node", "")) is not None,
         "print node shows <Node@0x... refcnt=N gen=N leaky.c:LINE>", sec.get("print node"))
    t.has(sec.get("print node", ""), r"refcnt=3 gen=2 leaky\.c:\d+>", "print node: refcount 3, generation 2")
    t.has(sec.get("print cache", ""),
          r"<dict@0x[0-9a-f]+ refcnt=1 gen=\d leaky\.c:\d+> "
          r"\{'answer': 42, 'greeting': 'hello', 'node': <Node@0x[0-9a-f]+>\}",
          "print cache shows the dict's items")
    t.has(sec.get("print global_cache", ""),
          r"<list@0x[0-9a-f]+ refcnt=1 gen=\d leaky\.c:\d+> "
          r"\[<Node@0x[0-9a-f]+>, <Node@0x[0-9a-f]+>, <Node@0x[0-9a-f]+>, <Node@0x[0-9a-f]+>\]",
          "print global_cache shows the list's four Nodes")
    t.has(sec.get("print config.head", ""), r"<Node@0x[0-9a-f]+ refcnt=1 ",
          "a member of a static struct prints")
    t.has(sec.get("print node->payload", ""), r"\[<Node@0x[0-9a-f]+>, \[\.\.\.\]\]",
          "a list containing itself prints as [...] (cycle-safe)")
    t.has(sec.get("print handler", ""), r"<closure@0x[0-9a-f]+ refcnt=1 gen=\d leaky\.c:\d+> process",
          "print handler shows the closure and its name")
    t.has(sec.get("print *node", ""), r"payload = <list@0x", "members of a struct print through the printer")
    t.has(sec.get("print (rc_object *) node", ""), r"<Node@0x[0-9a-f]+ refcnt=3",
          "an rc_object * prints the same")
    t.has(sec.get("print/r node", ""), r"= \(Node \*\) 0x[0-9a-f]+$", "print/r bypasses the printer")
    t.has(sec.get("disable pretty-printer .* refscope", ""), r"1 printer disabled",
          "disable pretty-printer .* refscope disables it")
    t.has(sec.get("print (Node *) node", ""), r"= \(Node \*\) 0x[0-9a-f]+$",
          "disabled: the raw pointer is printed")
    t.ok(NODE_PRINT.search(sec.get("output node", "")) is not None,
         "enable pretty-printer brings it back", sec.get("output node"))
    t.lacks(text, r"Traceback", "no Python traceback")


def scenario_live(t):
    text, sec = live(EVERY_COMMAND)
    check_reports(t, sec, "live:")
    t.lacks(text, r"Traceback", "live: no Python traceback")
    t.lacks(text, r"internal error", "live: no internal error")


def scenario_core(t):
    core = make_core()
    if not t.ok(core is not None, "a core of leaky was written"):
        return
    try:
        reader = ("python from refscope_gdb import commands as _c; h = _c._state['heap']; "
                  "print('engine core reader: %s' % (h is not None and h.core is not None))")
        text, sec = run_gdb(["info target"] + EVERY_COMMAND + ["heap-refs $node_addr", reader],
                            core=core, setup=("frame function main",
                                              "set $node_addr = (long) node"))
        if not t.has(sec.get("info target", ""), r"core dump", "gdb loaded the core"):
            print("#   core %s: %s bytes" % (core, os.path.getsize(core) if os.path.exists(core) else "no"))
            print("#   " + "\n#   ".join(text.splitlines()[:30]))
        check_reports(t, sec, "core:")
        t.has(sec.get("heap-refs $node_addr", ""), r"Node@0x", "core: OBJ may be a convenience variable")
        t.has(sec.get(reader, ""), r"engine core reader: True",
              "core: the heap is read in place by the engine's core reader, not copied through GDB")
        t.lacks(text, r"Traceback", "core: no Python traceback")
        t.lacks(text, r"internal error", "core: no internal error")
    finally:
        remove_core(core)


def scenario_locals(t):
    text, sec = live(["heap-roots", "heap-refs cache", "heap-path cache"])
    t.has(sec.get("heap-roots", ""), r"frame #1 main\(\) local 'cache'",
          "heap-roots: frame #1 main() local 'cache'")
    t.has(sec.get("heap-roots", ""), r"frame #1 main\(\) local 'handler'",
          "heap-roots: frame #1 main() local 'handler' (the closure)")
    t.has(sec.get("heap-refs cache", ""), r"frame #1 main\(\) local 'cache'",
          "heap-refs cache: held by main's local 'cache'")
    t.has(sec.get("heap-path cache", ""), r"local 'cache'", "heap-path cache starts at the local")
    t.lacks(text, r"Traceback", "no Python traceback")


def scenario_errors(t):
    cmds = ["heap-refs nosuch", "heap-refs", "heap-refs 1 +", "heap-refs node->nosuch",
            "heap-path (", "heap-refs 0x10", "heap-diff nosuch", "heap-summary extra",
            "heap-snapshot", "heap-graph node /nonexistent/dir/x.dot", "heap-refs rc_gc_collect(2)",
            "heap-types --limit 2", "print node"]
    text, sec = live(cmds)
    one_line = lambda c: len([l for l in sec.get(c, "").splitlines() if l.strip()]) == 1
    t.has(sec.get("heap-refs nosuch", ""), r'^heap-refs: No symbol "nosuch" in current context\.?$',
          "an unknown symbol: heap-refs: No symbol \"nosuch\" in current context.")
    for c in cmds[:11]:
        t.ok(one_line(c), "'%s' gives a one-line error" % c, sec.get(c))
        t.has(sec.get(c, ""), r"^heap-[a-z]+: ", "'%s': the error names the command" % c)
    t.lacks(sec.get("heap-refs rc_gc_collect(2)", ""), r"collected|Node@",
            "a function call in OBJ is refused (nothing runs in the inferior)")
    t.has(sec.get("heap-types --limit 2", ""), r"Node|list|dict|int|str|bytes", "the session goes on after errors")
    t.ok(NODE_PRINT.search(sec.get("print node", "")) is not None,
         "the program was not changed: print node still works", sec.get("print node"))
    t.lacks(text, r"Traceback", "no Python traceback")


def scenario_snapshot(t):
    text, sec = run_gdb(["heap-snapshot before", "continue", "up", "heap-diff before",
                         "heap-diff before --json", "heap-graph node %s" % os.path.join(WORK, "node.dot")],
                        setup=("break rc_debug_checkpoint", "run"), args=("twice",))
    t.has(sec.get("heap-snapshot before", ""), r"saved 'before'", "heap-snapshot saves a snapshot")
    t.has(sec.get("heap-diff before", ""), r"\S", "heap-diff reports the growth")
    t.has(sec.get("heap-diff before --json", ""), r"^\s*[\[{]", "heap-diff --json prints JSON")
    t.has(sec.get("heap-graph node %s" % os.path.join(WORK, "node.dot"), ""), r"wrote .*node\.dot",
          "heap-graph OBJ FILE writes the file")
    if shutil.which("dot"):
        png = os.path.join(WORK, "node.png")
        _, sec2 = live(["heap-graph node %s" % png])
        t.has(sec2.get("heap-graph node %s" % png, ""), r"wrote .*node\.png", "heap-graph OBJ FILE.png draws it")
        t.ok(os.path.isfile(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", "the file is a PNG")
    try:
        with open(os.path.join(WORK, "node.dot")) as f:
            t.has(f.read(), r"digraph", "the file is DOT")
    except OSError as e:
        t.ok(False, "the DOT file exists", e)
    t.lacks(text, r"Traceback", "no Python traceback")


def _cli(core, *args):
    proc = subprocess.run([CLI, core] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    return proc.stdout.decode("utf-8", "replace")


def scenario_parity(t):
    if not CLI or not os.path.exists(CLI):
        print("SKIP: the refscope command is not built (REFSCOPE_CLI unset)")
        return SKIP
    core = make_core()
    if not t.ok(core is not None, "a core of leaky was written"):
        return None
    try:
        cli_cycles = _cli(core, "cycles")
        addrs = re.findall(r"Node@(0x[0-9a-f]+)", cli_cycles)
        garbage = re.findall(r"Legacy@(0x[0-9a-f]+)", _cli(core, "garbage"))
        objs = (addrs[:1] + garbage[:1]) or ["0x0"]
        cmds = ["heap-cycles", "heap-cycles --json", "heap-garbage", "heap-types", "heap-summary"] + \
               ["heap-refs %s" % a for a in objs] + ["heap-path %s" % a for a in objs[1:]]
        text, sec = run_gdb(cmds, core=core)
        pairs = [("heap-cycles", ["cycles"]), ("heap-cycles --json", ["cycles", "--json"]),
                 ("heap-garbage", ["garbage"]), ("heap-types", ["types"]),
                 ("heap-summary", ["summary"])]
        pairs += [("heap-refs %s" % a, ["refs", a]) for a in objs]
        pairs += [("heap-path %s" % a, ["path", a]) for a in objs[1:]]
        for gdb_cmd, cli_args in pairs:
            mine = sec.get(gdb_cmd, "<missing>").rstrip("\n")
            theirs = (cli_cycles if cli_args == ["cycles"] else _cli(core, *cli_args)).rstrip("\n")
            t.ok(mine == theirs, "'%s' prints what 'refscope CORE %s' prints"
                 % (gdb_cmd, " ".join(cli_args)),
                 "gdb:\n%s\nrefscope:\n%s" % (mine, theirs))
        t.lacks(text, r"Traceback", "no Python traceback")
    finally:
        remove_core(core)
    return None


SCENARIOS = {
    "autoload": scenario_autoload,
    "shared": scenario_shared,
    "printers": scenario_printers,
    "live": scenario_live,
    "core": scenario_core,
    "locals": scenario_locals,
    "errors": scenario_errors,
    "snapshot": scenario_snapshot,
    "parity": scenario_parity,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in SCENARIOS:
        print("usage: gdb_tests.py %s" % "|".join(SCENARIOS))
        return 2
    if not LEAKY or not os.path.exists(LEAKY):
        print("SKIP: REFSCOPE_LEAKY is not set to the built leaky program")
        return SKIP
    if shutil.which(GDB) is None and not os.path.exists(GDB):
        print("SKIP: gdb is not installed")
        return SKIP
    os.makedirs(WORK, exist_ok=True)
    t = Checks(argv[1])
    if SCENARIOS[argv[1]](t) == SKIP:
        return SKIP
    return t.done()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
