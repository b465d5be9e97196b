"""The heap-* commands: one gdb.Command per refscope report.

Each command asks the engine for the same report the `refscope` command
prints (rs_heap_report with the same command line), over a heap loaded from
the inferior at this stop: the heap is loaded on first use after a stop and
kept until the inferior runs, its memory changes or its objfiles change.

Arguments: OBJ is any GDB expression (node, cache->items[2], $1, 0x5555...);
options (--json, --limit N, ...) go to the engine as they are. Errors are one
line (gdb.GdbError), never a traceback. Nothing is called in the inferior:
expressions are evaluated with may-call-functions off.
"""
import os
import re
import subprocess

import gdb

from . import engine, printers, roots

# Options that take a value: the token after them is not part of OBJ.
VALUED_OPTIONS = {"--limit", "--depth", "--cycle", "--max", "--min", "--sort", "--by",
                  "--group-by", "--threshold"}
GRAPH_SUFFIXES = (".dot", ".gv", ".png", ".svg", ".pdf")

# ---- the heap of this stop ------------------------------------------------------

_state = {"heap": None, "key": None, "generation": 0}
_snapshots = {}


def invalidate(*_args):
    """Drop the loaded heap (the inferior ran, changed, or was replaced)."""
    _state["generation"] += 1
    heap = _state["heap"]
    _state["heap"] = None
    if heap is not None:
        heap.free()
    printers.invalidate()


def _key():
    inferior = gdb.selected_inferior()
    thread = gdb.selected_thread()
    return (_state["generation"], inferior.num, inferior.pid,
            thread.num if thread is not None else 0)


def current_heap(cmd):
    """The engine's heap for the selected inferior at this stop."""
    key = _key()
    if _state["heap"] is not None and _state["key"] == key:
        return _state["heap"]
    invalidate()
    key = _key()
    try:
        engine.library()
        engine.check_inferior()
        registry = engine.registry_address()
        if registry is None:
            raise engine.EngineError("no symbol rc_debug_registry: is the program linked with "
                                     "the refscope runtime (and its libraries loaded)?")
        memory = engine.InferiorMemory(gdb.selected_inferior())
        engine.set_memory(memory)
        # None: the engine library was built without the target layer;
        # roots.py then asks GDB for the globals (slower: `info variables`).
        target = engine.target()
        root_list = roots.all_roots(memory, target, _registry_range(registry))
        heap = engine.Heap(memory, registry, root_list,
                           target.symbolize if target is not None else None,
                           core=engine.open_core_file())
    except engine.EngineError as e:
        raise gdb.GdbError("%s: %s" % (cmd, e))
    except KeyboardInterrupt:
        raise gdb.GdbError("%s: interrupted" % cmd)
    _state["heap"] = heap
    _state["key"] = key
    return heap


def _registry_range(addr):
    try:
        size = gdb.lookup_type("rc_registry").sizeof
    except (gdb.error, RuntimeError):
        size = 1
    return addr, addr + size


def connect_events():
    events = gdb.events
    for name in ("stop", "cont", "exited", "new_objfile", "clear_objfiles",
                 "memory_changed", "register_changed", "inferior_call", "new_inferior",
                 "inferior_deleted"):
        registry = getattr(events, name, None)
        if registry is not None:
            registry.connect(invalidate)


# ---- arguments --------------------------------------------------------------------

class _Args:
    def __init__(self, options, words):
        self.options = options    # ["--json", "--limit", "5"]
        self.words = words        # the rest, in order (OBJ is " ".join)

    @property
    def option_text(self):
        return " ".join(self.options)


_TOKEN = re.compile(r"\S+")
_NAME = re.compile(r"^[A-Za-z_][\w.:]*$")


def parse_args(arg):
    """Split options (--x, --x=V, --x V for VALUED_OPTIONS) from the rest."""
    options, words = [], []
    tokens = _TOKEN.findall(arg or "")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--") and len(tok) > 2:
            options.append(tok)
            if tok in VALUED_OPTIONS and i + 1 < len(tokens):
                options.append(tokens[i + 1])
                i += 1
        else:
            words.append(tok)
        i += 1
    return _Args(options, words)


def _object_address(cmd, expr):
    """Evaluate OBJ with GDB; return the object's address."""
    value = _evaluate(cmd, expr)
    try:
        t = value.type.strip_typedefs()
        if t.code == gdb.TYPE_CODE_PTR:
            return int(value)
        if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM, gdb.TYPE_CODE_CHAR,
                      gdb.TYPE_CODE_BOOL):
            return int(value) & 0xFFFFFFFFFFFFFFFF
        if t.code == gdb.TYPE_CODE_STRUCT and roots.is_object_struct(t) \
                and value.address is not None:
            return int(value.address)
        if t.code == gdb.TYPE_CODE_ARRAY and value.address is not None:
            return int(value.address)
    except (gdb.error, RuntimeError, ValueError) as e:
        raise gdb.GdbError("%s: %s" % (cmd, _one_line(e)))
    raise gdb.GdbError("%s: %s is not an object pointer (type %s)" % (cmd, expr, value.type))


def _evaluate(cmd, expr):
    """parse_and_eval with may-call-functions off: read-only."""
    previous = None
    try:
        previous = gdb.parameter("may-call-functions")
        gdb.execute("set may-call-functions off", to_string=True)
    except (gdb.error, RuntimeError):
        previous = None
    try:
        value = gdb.parse_and_eval(expr)
        value.fetch_lazy()
        return value
    except gdb.MemoryError as e:
        raise gdb.GdbError("%s: %s" % (cmd, _one_line(e)))
    except (gdb.error, RuntimeError) as e:
        raise gdb.GdbError("%s: %s" % (cmd, _one_line(e)))
    finally:
        if previous is not None:
            try:
                gdb.execute("set may-call-functions %s" % ("on" if previous else "off"),
                            to_string=True)
            except (gdb.error, RuntimeError):
                pass


def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else e.__class__.__name__


# ---- output -------------------------------------------------------------------------

def _emit(cmd, text, status):
    """Print a report; a usage error (status 2) becomes a one-line GDB error."""
    if status == 2:
        msg = _one_line(text)
        for prefix in ("refscope: error: ", "refscope: ", cmd.replace("heap-", "", 1) + ": "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        raise gdb.GdbError("%s: %s" % (cmd, msg))
    if text and not text.endswith("\n"):
        text += "\n"
    gdb.write(text)


def _warnings(heap, options):
    if "--json" in options:
        return
    for w in heap.warnings():
        gdb.write("warning: %s\n" % w)


# ---- the commands --------------------------------------------------------------------

class _HeapCommand(gdb.Command):
    """Base: a report with no OBJ."""

    name = None
    report = None

    def __init__(self):
        super().__init__(self.name, gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        try:
            self.run(parse_args(arg), from_tty)
        except gdb.GdbError:
            raise
        except KeyboardInterrupt:
            raise gdb.GdbError("%s: interrupted" % self.name)
        except Exception as e:  # pylint: disable=broad-except
            raise gdb.GdbError("%s: internal error: %s: %s"
                               % (self.name, e.__class__.__name__, _one_line(e)))

    def run(self, args, _from_tty):
        if args.words:
            raise gdb.GdbError("%s: unexpected argument '%s' (see: help %s)"
                               % (self.name, " ".join(args.words), self.name))
        self.emit_report(" ".join([self.report] + args.options), args.options)

    def emit_report(self, command_line, options):
        heap = current_heap(self.name)
        text, status = heap.report(command_line)
        if status != 2:
            _warnings(heap, options)
        _emit(self.name, text, status)

    def object_command_line(self, args, required=True):
        if not args.words:
            if required:
                raise gdb.GdbError("%s: an object is needed: %s OBJ (a GDB expression)"
                                   % (self.name, self.name))
            return " ".join([self.report] + args.options)
        expr = " ".join(args.words)
        try:
            addr = _object_address(self.name, expr)
        except gdb.GdbError:
            # Not a GDB expression here, but maybe a name the engine knows
            # (a registered root, a C global of another scope): ask it.
            if not _NAME.match(expr) or not self._engine_knows(expr):
                raise
            return " ".join([self.report, expr] + args.options)
        return " ".join([self.report, "0x%x" % addr] + args.options)

    def _engine_knows(self, name):
        try:
            _, status = current_heap(self.name).report("refs " + name)
        except gdb.GdbError:
            return False
        return status != 2


class HeapOverview(_HeapCommand):
    """A first look: the summary, unreachable cycles, leaks and the top retainers in one report.

Usage: heap-overview [--json] [--limit N]   (N rows per section, default 10)
Same report as `refscope CORE overview`."""
    name, report = "heap-overview", "overview"


class HeapSummary(_HeapCommand):
    """Heap totals: objects and bytes, generations, collector counts, thresholds and stats.

Usage: heap-summary [--json]
Same report as `refscope CORE summary`."""
    name, report = "heap-summary", "summary"


class HeapTypes(_HeapCommand):
    """Which types use the memory: count and bytes per type, largest first.

Usage: heap-types [--json] [--limit N]
Same report as `refscope CORE types`."""
    name, report = "heap-types", "types"


class HeapSites(_HeapCommand):
    """Which allocation sites use the memory (tracemalloc's "lineno" statistics).

Usage: heap-sites [--json] [--limit N]
Same report as `refscope CORE sites`."""
    name, report = "heap-sites", "sites"


class HeapRefs(_HeapCommand):
    """One object: its refcount, who holds it (with field names) and what it holds.

Usage: heap-refs OBJ [--json] [--limit N]
OBJ is any GDB expression giving an object pointer: node, cache->items[2],
$1, 0x5555555592a0. Referrers include globals, roots and the named locals of
this thread's frames; references no holder explains are flagged.
Same report as `refscope CORE refs OBJ`."""
    name, report = "heap-refs", "refs"

    def run(self, args, _from_tty):
        self.emit_report(self.object_command_line(args), args.options)


class HeapCycles(_HeapCommand):
    """Unreachable reference cycles: what a full collection would free, cycle by cycle.

Usage: heap-cycles [--json] [--limit N]
Same report as `refscope CORE cycles`."""
    name, report = "heap-cycles", "cycles"


class HeapGarbage(_HeapCommand):
    """The garbage list (gc.garbage) and why each object is in it.

Usage: heap-garbage [--json] [--limit N]
Same report as `refscope CORE garbage`."""
    name, report = "heap-garbage", "garbage"


class HeapRoots(_HeapCommand):
    """What holds memory: registered roots, C globals, closures and stack frames.

Usage: heap-roots [--json] [--limit N]
Besides what `refscope CORE roots` shows, names the locals of this thread's
frames that hold objects: frame #0 main() local 'cache'."""
    name, report = "heap-roots", "roots"


class HeapLeaks(_HeapCommand):
    """References that no holder explains: refcount higher than the known referrers (a missing decref).

Usage: heap-leaks [--json] [--limit N]
Same report as `refscope CORE leaks`."""
    name, report = "heap-leaks", "leaks"


class HeapPath(_HeapCommand):
    """How an object is reachable: a shortest path from a root to it.

Usage: heap-path OBJ [--json]
OBJ is any GDB expression giving an object pointer.
Same report as `refscope CORE path OBJ`."""
    name, report = "heap-path", "path"

    def run(self, args, _from_tty):
        self.emit_report(self.object_command_line(args), args.options)


class HeapRetained(_HeapCommand):
    """What would be freed with an object (its dominator tree), or the biggest retainers.

Usage: heap-retained [OBJ] [--json] [--limit N]
Without OBJ: the objects that retain the most memory.
Same report as `refscope CORE retained [OBJ]`."""
    name, report = "heap-retained", "retained"

    def run(self, args, _from_tty):
        self.emit_report(self.object_command_line(args, required=False), args.options)


class HeapGraph(_HeapCommand):
    """A Graphviz picture of an object's neighbourhood, or of one cycle.

Usage: heap-graph OBJ [FILE] [--depth D] [--backrefs] [--dot]
       heap-graph --cycle N [FILE]
--cycle N: unreachable cycle N as numbered by heap-cycles; --depth D: D edges
away; --backrefs: follow referrers too. Without FILE the graph is printed
(as DOT text with --dot). FILE ending in .dot or .gv gets the DOT text; .png,
.svg or .pdf is drawn by Graphviz's dot.
Same graph as `refscope CORE graph OBJ`."""
    name, report = "heap-graph", "graph"

    def run(self, args, _from_tty):
        words = list(args.words)
        path = None
        if words and words[-1].lower().endswith(GRAPH_SUFFIXES) and \
                (len(words) > 1 or "--cycle" in args.options):
            path = words.pop()
        if not words and "--cycle" not in args.options:
            raise gdb.GdbError("heap-graph: an object is needed: heap-graph OBJ [FILE]")
        options = list(args.options)
        if path is not None and "--dot" not in options:
            options.append("--dot")       # the engine writes DOT, `dot` draws it
        line = self.object_command_line(_Args(options, words), required=False)
        heap = current_heap(self.name)
        text, status = heap.report(line)
        if path is None or status == 2:
            _emit(self.name, text, status)
            return
        _write_graph(path, text)


def _write_graph(path, dot_text):
    path = os.path.expanduser(path)
    fmt = os.path.splitext(path)[1][1:].lower()
    try:
        if fmt in ("dot", "gv"):
            with open(path, "w", encoding="utf-8") as f:
                f.write(dot_text)
        else:
            proc = subprocess.run(["dot", "-T" + fmt, "-o", path], input=dot_text.encode(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  check=False, timeout=120)
            if proc.returncode != 0:
                raise gdb.GdbError("heap-graph: dot failed: %s"
                                   % _one_line(proc.stderr.decode("utf-8", "replace")
                                               or "exit status %d" % proc.returncode))
    except FileNotFoundError:
        raise gdb.GdbError("heap-graph: Graphviz's dot is not installed "
                           "(apt-get install graphviz); write a .dot file instead")
    except OSError as e:
        raise gdb.GdbError("heap-graph: cannot write %s: %s" % (path, e.strerror or e))
    except subprocess.TimeoutExpired:
        raise gdb.GdbError("heap-graph: dot took too long")
    gdb.write("heap-graph: wrote %s\n" % path)


class HeapSnapshot(_HeapCommand):
    """Remember the heap as it is now under NAME, for heap-diff NAME later in this session.

Usage: heap-snapshot NAME"""
    name = "heap-snapshot"

    def run(self, args, _from_tty):
        if len(args.words) != 1 or args.options:
            raise gdb.GdbError("heap-snapshot: usage: heap-snapshot NAME")
        label = args.words[0]
        heap = current_heap(self.name)
        old = _snapshots.pop(label, None)
        del old
        _snapshots[label] = heap.snapshot(label)
        gdb.write("heap-snapshot: saved '%s'\n" % label)


class HeapDiff(_HeapCommand):
    """What grew since heap-snapshot NAME: objects and bytes by type and site, objects born since.

Usage: heap-diff NAME [--json] [--limit N]
Same report as `refscope CORE diff OLD`."""
    name = "heap-diff"

    def run(self, args, _from_tty):
        if len(args.words) != 1:
            raise gdb.GdbError("heap-diff: usage: heap-diff NAME [--json] [--limit N]")
        label = args.words[0]
        snap = _snapshots.get(label)
        if snap is None:
            known = ", ".join(sorted(_snapshots)) or "none yet; use heap-snapshot NAME"
            raise gdb.GdbError("heap-diff: no snapshot named '%s' (saved: %s)" % (label, known))
        heap = current_heap(self.name)
        text, status = heap.diff(snap, args.option_text)
        _emit(self.name, text, status)


class HeapCheck(_HeapCommand):
    """Is the heap consistent: registry, arenas, pools, object heads, refcounts, lists.

Usage: heap-check [--json]
Same report as `refscope CORE check`."""
    name, report = "heap-check", "check"


COMMANDS = (HeapOverview, HeapSummary, HeapTypes, HeapSites, HeapRefs, HeapCycles, HeapGarbage, HeapRoots,
            HeapLeaks, HeapPath, HeapRetained, HeapGraph, HeapSnapshot, HeapDiff, HeapCheck)


def register():
    for cls in COMMANDS:
        cls()
