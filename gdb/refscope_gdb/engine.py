"""The refscope engine (inspector/engine.h) through ctypes, fed by GDB.

The engine is C; this module gives it memory read with
gdb.Inferior.read_memory (in 64 KiB blocks, cached until the inferior runs
again), the address of rc_debug_registry, the roots GDB knows (roots.py) and
a symbolizer built on GDB's line tables. Nothing here calls a function in the
inferior.

Callbacks from C must never raise: an exception escaping a ctypes callback
hands garbage to the engine. Every callback catches everything and answers
"short read" (0 bytes) or -1.
"""
import ctypes
import os

import gdb

RS_ROOT_REGISTERED = 1
RS_ROOT_GLOBAL = 2
RS_ROOT_STACK = 3
RS_ROOT_LOCAL = 4
RS_ROOT_REGISTER = 5
RS_ROOT_OTHER = 6

ENGINE_NAME = "librefscope-engine.so"
API_VERSION = 1


class EngineError(Exception):
    """The engine could not be loaded or could not read a heap: one line."""


class _RsError(ctypes.Structure):
    _fields_ = [("msg", ctypes.c_char * 512)]

    def text(self, default):
        msg = self.msg.decode("utf-8", "replace").strip()
        return msg or default


_READ_FN = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_uint64,
                            ctypes.c_void_p, ctypes.c_size_t)
_SYMBOLIZE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64,
                                 ctypes.c_void_p, ctypes.c_size_t)


class _RsMemory(ctypes.Structure):
    _fields_ = [("read", _READ_FN), ("ctx", ctypes.c_void_p)]


class _RsModuleSpec(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char_p), ("bias", ctypes.c_uint64)]


class _RsGlobal(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("function", ctypes.c_char_p),
                ("display", ctypes.c_char_p), ("cu", ctypes.c_char_p),
                ("type_name", ctypes.c_char_p), ("addr", ctypes.c_uint64),
                ("size", ctypes.c_uint64), ("is_external", ctypes.c_bool),
                ("module", ctypes.c_void_p)]


class _RsSlot(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint64), ("path", ctypes.c_char_p),
                ("type_name", ctypes.c_char_p), ("global_", ctypes.POINTER(_RsGlobal))]


class _RsSrcloc(ctypes.Structure):
    _fields_ = [("function", ctypes.c_char_p), ("file", ctypes.c_char_p),
                ("line", ctypes.c_uint), ("module", ctypes.c_void_p)]


# ---- finding and binding the library ---------------------------------------

def candidate_paths():
    """Where the engine library may be, best first.

    REFSCOPE_ENGINE (a file, or a directory holding it) wins; then the paths
    meson wrote into _paths.py (this build tree, the install prefix); then
    paths relative to this file: build/gdb/refscope_gdb/ -> build/inspector/,
    <prefix>/share/refscope/gdb/refscope_gdb/ -> <prefix>/lib[/<multiarch>],
    and the source tree's gdb/refscope_gdb/ -> build/inspector/. Last, the
    dynamic linker's own search (LD_LIBRARY_PATH, ld.so.cache).
    """
    paths = []
    env = os.environ.get("REFSCOPE_ENGINE")
    if env:
        paths.append(os.path.join(env, ENGINE_NAME) if os.path.isdir(env) else env)
    try:
        from . import _paths
        paths += [_paths.BUILD_ENGINE, _paths.INSTALL_ENGINE]
    except ImportError:  # the source tree has no _paths.py
        pass
    pkg = os.path.dirname(os.path.abspath(os.path.realpath(__file__)))
    plugin = os.path.dirname(pkg)                       # .../gdb
    paths.append(os.path.join(plugin, "..", "inspector", ENGINE_NAME))
    prefix = os.path.normpath(os.path.join(plugin, "..", "..", ".."))
    multiarch = getattr(__import__("sys").implementation, "_multiarch", "x86_64-linux-gnu")
    for lib in ("lib/" + multiarch, "lib64", "lib"):
        paths.append(os.path.join(prefix, lib, ENGINE_NAME))
    paths.append(os.path.join(plugin, "..", "build", "inspector", ENGINE_NAME))
    seen, result = set(), []
    for p in paths:
        p = os.path.normpath(p)
        if p not in seen:
            seen.add(p)
            result.append(p)
    return result


_lib = None


def _bind(lib):
    vp, u64, sz, cp, ci = (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t,
                           ctypes.c_char_p, ctypes.c_int)
    err = ctypes.POINTER(_RsError)
    sigs = {
        "rs_heap_new": (vp, [_RsMemory, u64, err]),
        "rs_heap_free": (None, [vp]),
        "rs_free": (None, [vp]),
        "rs_heap_add_root": (ci, [vp, ci, cp, u64, u64]),
        "rs_heap_set_symbolizer": (None, [vp, _SYMBOLIZE_FN, vp]),
        "rs_heap_load": (ci, [vp, vp, vp, err]),
        "rs_heap_warning_count": (sz, [vp]),
        "rs_heap_warning": (cp, [vp, sz]),
        "rs_heap_report": (vp, [vp, cp, ctypes.POINTER(ci)]),
        "rs_heap_snapshot": (vp, [vp]),
        "rs_snapshot_destroy": (None, [vp]),
        "rs_heap_diff": (vp, [vp, vp, cp, ctypes.POINTER(ci)]),
        "rs_commands_help": (cp, []),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)  # AttributeError: an engine without it
        fn.restype = restype
        fn.argtypes = argtypes
    # The target layer (target.h) over callback memory: the DWARF answers the
    # refscope command uses (C globals holding objects, addr -> file:line).
    # Optional: without it the plugin asks GDB instead.
    optional = {
        "rs_open_memory": (vp, [_RsMemory, ctypes.POINTER(_RsModuleSpec), sz, err]),
        "rs_open_core": (vp, [cp, cp, err]),
        "rs_target_memory": (_RsMemory, [vp]),
        "rs_close": (None, [vp]),
        "rs_pointer_slots": (ci, [vp, cp, ctypes.POINTER(ctypes.POINTER(_RsSlot)),
                                  ctypes.POINTER(sz), err]),
        "rs_addr_to_line": (ci, [vp, u64, ctypes.POINTER(_RsSrcloc)]),
        "rs_describe_addr": (cp, [vp, u64, ctypes.c_char_p, sz]),
        "rs_warning_count": (sz, [vp]),
        "rs_warning": (cp, [vp, sz]),
    }
    lib.has_target_layer = True
    for name, (restype, argtypes) in optional.items():
        fn = getattr(lib, name, None)
        if fn is None:
            lib.has_target_layer = False
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def library():
    """The bound engine library, loaded once; EngineError says why not."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in candidate_paths() + [ENGINE_NAME]:
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            # RTLD_DEEPBIND: GDB has elfutils' libdw loaded, whose dwarf_tag,
            # dwarf_attr... share names with libdwarf's: the engine must bind
            # to the libdwarf it was linked with, not to what GDB loaded first.
            lib = ctypes.CDLL(path, mode=os.RTLD_DEEPBIND | ctypes.RTLD_LOCAL)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        try:
            _lib = _bind(lib)
        except AttributeError as e:
            tried.append("%s (not the refscope engine: %s)" % (path, e))
            continue
        return _lib
    where = "; ".join(tried) if tried else "looked beside the plugin and in the install prefix"
    raise EngineError("cannot load %s (%s); set REFSCOPE_ENGINE=/path/to/%s"
                      % (ENGINE_NAME, where, ENGINE_NAME))


def _take_string(lib, ptr):
    """A malloc'd C string from the engine, as str; frees it."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib.rs_free(ptr)


# ---- memory ------------------------------------------------------------------

class InferiorMemory:
    """Memory of the selected inferior, read through GDB in 64 KiB chunks.

    A chunk that cannot be read whole (it crosses the end of a mapping) is
    read again page by page, so a short read stops exactly at the first
    unreadable page. Reads of a chunk or more go straight to GDB. The cache
    lives as long as one loaded heap (the inferior is stopped meanwhile).
    """

    CHUNK_SHIFT = 16
    CHUNK = 1 << CHUNK_SHIFT
    PAGE_SHIFT = 12
    PAGE = 1 << PAGE_SHIFT
    CACHE_LIMIT = 256 << 20   # bytes of chunks kept before the cache starts over

    def __init__(self, inferior):
        self.inferior = inferior
        self.chunks = {}      # chunk index -> (bytes, address of its buffer) or None
        self.pages = {}       # page index (in chunks that failed) -> (bytes, addr) or None
        self.cached = 0
        self.interrupted = False
        self.reads = 0

    def _fetch(self, addr, size):
        try:
            data = bytes(self.inferior.read_memory(addr, size))
        except gdb.MemoryError:
            return None
        if len(data) != size:
            return None
        return (data, ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value)

    def _span(self, addr):
        """(bytes, buffer address, start) of the cached block holding addr."""
        idx = addr >> self.CHUNK_SHIFT
        if idx not in self.chunks:
            if self.cached > self.CACHE_LIMIT:
                self.chunks.clear()
                self.pages.clear()
                self.cached = 0
            got = self._fetch(idx << self.CHUNK_SHIFT, self.CHUNK)
            self.chunks[idx] = got
            self.cached += self.CHUNK
        got = self.chunks[idx]
        if got is not None:
            return got[0], got[1], idx << self.CHUNK_SHIFT
        pidx = addr >> self.PAGE_SHIFT
        if pidx not in self.pages:
            self.pages[pidx] = self._fetch(pidx << self.PAGE_SHIFT, self.PAGE)
        got = self.pages[pidx]
        if got is None:
            return None
        return got[0], got[1], pidx << self.PAGE_SHIFT

    def read_into(self, addr, buf, size):
        """Copy up to size bytes at addr to the C buffer; returns the count."""
        self.reads += 1
        if size >= self.CHUNK:
            got = self._fetch(addr, size)
            if got is not None:
                ctypes.memmove(buf, got[1], size)
                return size
        done = 0
        while done < size:
            span = self._span(addr + done)
            if span is None:
                break
            data, base, start = span
            off = addr + done - start
            n = min(len(data) - off, size - done)
            ctypes.memmove(buf + done, base + off, n)
            done += n
        return done

    def read(self, addr, size):
        """Python-side read (bytes, possibly short)."""
        buf = ctypes.create_string_buffer(size)
        n = self.read_into(addr, ctypes.addressof(buf), size)
        return buf.raw[:n]


# ---- symbols -----------------------------------------------------------------

def describe_pc(pc):
    """"function (file.c:LINE)" or "function+0x1a" for a code address."""
    name = None
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        block = None
    while block is not None and block.function is None:
        block = block.superblock
    if block is not None:
        name = block.function.print_name
    sal = gdb.find_pc_line(pc)
    if name and sal.symtab is not None and sal.line:
        return "%s (%s:%d)" % (name, os.path.basename(sal.symtab.filename), sal.line)
    if name:
        return "%s+0x%x" % (name, pc - block.start) if pc != block.start else name
    try:
        out = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
    except gdb.error:
        return None
    if not out or out.startswith("No symbol"):
        return None
    head = out.split(" in section ")[0]        # "main + 26" / "abort"
    parts = head.split(" + ")
    if len(parts) == 2 and parts[1].isdigit():
        return "%s+0x%x" % (parts[0], int(parts[1]))
    return head


# ---- the target layer: DWARF as the refscope command reads it ---------------------

class _CurrentMemory:
    """The memory a long-lived callback reads: the heap's of this stop."""

    memory = None


def _target_read(_ctx, addr, buf, size):
    memory = _CurrentMemory.memory
    if memory is None or memory.interrupted:
        return 0
    try:
        return memory.read_into(addr, buf, size)
    except BaseException:  # pylint: disable=broad-except
        return 0


_TARGET_READ_CB = _READ_FN(_target_read)


def set_memory(memory):
    """The memory the target layer reads from now on (this stop's)."""
    _CurrentMemory.memory = memory


class Target:
    """rs_open_memory over the inferior's modules: the engine's own DWARF
    reader, so that C globals and code addresses get the same names as in
    the refscope command. Kept across stops while the modules stay the same
    (indexing DWARF is the expensive part)."""

    def __init__(self, lib, specs):
        self.lib = lib
        self.ptr = None
        self.specs = specs
        self._paths = [p.encode("utf-8", "surrogateescape") for p, _ in specs]
        arr = (_RsModuleSpec * len(specs))()
        for i, (path, (_, bias)) in enumerate(zip(self._paths, specs)):
            arr[i].path = path
            arr[i].bias = bias
        self._specs = arr
        err = _RsError()
        self.ptr = lib.rs_open_memory(_RsMemory(_TARGET_READ_CB, None), arr, len(specs),
                                      ctypes.byref(err))
        if not self.ptr:
            raise EngineError(err.text("cannot read the program's symbols"))
        self._slots = None

    def close(self):
        if self.ptr:
            self.lib.rs_close(self.ptr)
            self.ptr = None

    def __del__(self):
        self.close()

    def warnings(self):
        return [(self.lib.rs_warning(self.ptr, i) or b"?").decode("utf-8", "replace")
                for i in range(self.lib.rs_warning_count(self.ptr))]

    def pointer_slots(self, head="rc_object"):
        """[(slot address, path, variable name)] of object pointers in globals."""
        if self._slots is not None:
            return self._slots
        ret = ctypes.POINTER(_RsSlot)()
        count = ctypes.c_size_t(0)
        err = _RsError()
        if self.lib.rs_pointer_slots(self.ptr, head.encode(), ctypes.byref(ret),
                                     ctypes.byref(count), ctypes.byref(err)) != 0:
            self._slots = []
            raise EngineError(err.text("cannot list the globals"))
        out = []
        for i in range(count.value):
            slot = ret[i]
            name = None
            if slot.global_:
                g = slot.global_.contents
                name = g.name.decode("utf-8", "replace") if g.name else None
            out.append((slot.addr, (slot.path or b"?").decode("utf-8", "replace"), name))
        self._slots = out
        return out

    def symbolize(self, addr):
        """As the refscope command: "function (file.c:LINE)", else the symbol."""
        loc = _RsSrcloc()
        if self.lib.rs_addr_to_line(self.ptr, addr, ctypes.byref(loc)) == 0 \
                and loc.function and loc.file and loc.line:
            return "%s (%s:%d)" % (loc.function.decode("utf-8", "replace"),
                                   os.path.basename(loc.file.decode("utf-8", "replace")),
                                   loc.line)
        buf = ctypes.create_string_buffer(512)
        self.lib.rs_describe_addr(self.ptr, addr, buf, len(buf))
        text = buf.value.decode("utf-8", "replace")
        return None if text.startswith("0x") else text


_target_cache = {"specs": None, "target": None, "error": None}


def target():
    """The Target for the current modules, or None (and why, in target_error())."""
    from . import modules
    lib = library()
    if not getattr(lib, "has_target_layer", False):
        _target_cache["error"] = "the engine library has no target layer (rs_open_memory)"
        return None
    try:
        specs = modules.module_specs()
    except (gdb.error, RuntimeError, OSError) as e:
        specs = []
        _target_cache["error"] = str(e)
    if not specs:
        _target_cache["error"] = _target_cache["error"] or "the executable is not known"
        return None
    if _target_cache["specs"] == specs:
        return _target_cache["target"]
    old = _target_cache["target"]
    _target_cache.update(specs=specs, target=None, error=None)
    if old is not None:
        old.close()
    try:
        _target_cache["target"] = Target(lib, specs)
    except EngineError as e:
        _target_cache["error"] = str(e)
    return _target_cache["target"]


def target_error():
    return _target_cache["error"]


# ---- the registry --------------------------------------------------------------

REGISTRY_SYMBOL = "rc_debug_registry"


def registry_address():
    """Address of rc_debug_registry in the selected inferior, or None.

    A full symbol (DWARF) first, global then static; then whatever GDB's
    expression evaluator finds (a minimal symbol of a stripped program).
    """
    for lookup in (gdb.lookup_global_symbol, gdb.lookup_static_symbol):
        try:
            sym = lookup(REGISTRY_SYMBOL)
        except (gdb.error, RuntimeError):
            sym = None
        if sym is not None:
            try:
                return int(sym.value().address)
            except (gdb.error, TypeError):
                pass
    try:
        return int(gdb.parse_and_eval("&" + REGISTRY_SYMBOL).cast(
            gdb.lookup_type("char").pointer()))
    except (gdb.error, RuntimeError):
        return None


# ---- one loaded heap -------------------------------------------------------------

class Snapshot:
    """A saved rs_snapshot (heap-snapshot NAME)."""

    def __init__(self, lib, ptr, label):
        self._lib = lib
        self.ptr = ptr
        self.label = label

    def __del__(self):
        if self.ptr and self._lib is not None:
            self._lib.rs_snapshot_destroy(self.ptr)
            self.ptr = None


class CoreFile:
    """A core file GDB has loaded, opened by the engine's own core reader:
    the heap is then read in place from the mapped file (rs_memory_view)
    instead of copied out through gdb.Inferior.read_memory, as the refscope
    command reads it. Only for the heap's bytes; roots, stacks and printers
    still ask GDB."""

    def __init__(self, lib, ptr):
        self.lib = lib
        self.ptr = ptr
        self.memory = lib.rs_target_memory(ptr)

    def close(self):
        if self.ptr:
            self.lib.rs_close(self.ptr)
            self.ptr = None

    def __del__(self):
        self.close()


_CORE_RE = None


def open_core_file():
    """CoreFile of the core the selected inferior is, or None (a live
    process, no target layer, or a core the engine cannot open: then the
    heap is read through GDB)."""
    global _CORE_RE
    lib = library()
    if not getattr(lib, "has_target_layer", False) or gdb.selected_inferior().pid == 0 \
            and not _has_core():
        return None
    try:
        out = gdb.execute("info target", to_string=True)
    except gdb.error:
        return None
    if _CORE_RE is None:
        import re
        _CORE_RE = re.compile(r"Local core dump file:\s*`(.+?)', file type")
    m = _CORE_RE.search(out)
    if not m or not os.path.isfile(m.group(1)):
        return None
    exe = gdb.current_progspace().filename
    err = _RsError()
    ptr = lib.rs_open_core(m.group(1).encode("utf-8", "surrogateescape"),
                           exe.encode("utf-8", "surrogateescape") if exe else None,
                           ctypes.byref(err))
    return CoreFile(lib, ptr) if ptr else None


class Heap:
    """The engine's view of the inferior's heap at one stop."""

    def __init__(self, memory, registry, roots=(), symbolizer=None, core=None):
        self.lib = library()
        self.registry = registry
        self.memory = memory
        self.symbolizer = symbolizer or describe_pc
        # Keep the callbacks (and the core) alive as long as the engine may use them.
        self._read_cb = _READ_FN(self._read)
        self._sym_cb = _SYMBOLIZE_FN(self._symbolize)
        self.core = core
        mem = core.memory if core is not None else _RsMemory(self._read_cb, None)
        err = _RsError()
        self.ptr = self.lib.rs_heap_new(mem, registry, ctypes.byref(err))
        if not self.ptr:
            raise EngineError(err.text("the engine could not start"))
        self.lib.rs_heap_set_symbolizer(self.ptr, self._sym_cb, None)
        self.nroots = 0
        for kind, label, slot, value in roots:
            self.lib.rs_heap_add_root(self.ptr, kind, label.encode("utf-8", "replace"),
                                      slot or 0, value)
            self.nroots += 1
        status = self.lib.rs_heap_load(self.ptr, None, None, ctypes.byref(err))
        if self.memory.interrupted:
            self.free()
            raise KeyboardInterrupt
        if status != 0:
            msg = err.text("no heap found")
            self.free()
            raise EngineError(msg)

    # callbacks (never raise)
    def _read(self, _ctx, addr, buf, size):
        if self.memory.interrupted:
            return 0
        try:
            return self.memory.read_into(addr, buf, size)
        except KeyboardInterrupt:
            self.memory.interrupted = True
            return 0
        except BaseException:  # pylint: disable=broad-except
            return 0

    def _symbolize(self, _ctx, addr, buf, size):
        try:
            text = self.symbolizer(addr)
            if not text or size == 0:
                return -1
            data = text.encode("utf-8", "replace")[:size - 1] + b"\0"
            ctypes.memmove(buf, data, len(data))
            return 0
        except BaseException:  # pylint: disable=broad-except
            return -1

    def free(self):
        if getattr(self, "ptr", None):
            self.lib.rs_heap_free(self.ptr)
            self.ptr = None
        core = getattr(self, "core", None)
        if core is not None:
            core.close()
            self.core = None

    def __del__(self):
        self.free()

    def warnings(self):
        n = self.lib.rs_heap_warning_count(self.ptr)
        out = []
        for i in range(n):
            w = self.lib.rs_heap_warning(self.ptr, i)
            out.append(w.decode("utf-8", "replace") if w else "?")
        return out

    def report(self, command_line):
        """(text, status) of one report; status 2 is a usage error."""
        status = ctypes.c_int(0)
        ptr = self.lib.rs_heap_report(self.ptr, command_line.encode("utf-8"),
                                      ctypes.byref(status))
        return _take_string(self.lib, ptr), status.value

    def snapshot(self, label):
        ptr = self.lib.rs_heap_snapshot(self.ptr)
        if not ptr:
            raise EngineError("the engine could not take a snapshot")
        return Snapshot(self.lib, ptr, label)

    def diff(self, snapshot, options):
        status = ctypes.c_int(0)
        ptr = self.lib.rs_heap_diff(self.ptr, snapshot.ptr, options.encode("utf-8"),
                                    ctypes.byref(status))
        return _take_string(self.lib, ptr), status.value


def check_inferior():
    """EngineError unless there is a process or a core to read."""
    if gdb.selected_inferior().pid == 0 and not _has_core():
        raise EngineError("the program is not running and no core file is loaded")


def _has_core():
    try:
        out = gdb.execute("info target", to_string=True)
    except gdb.error:
        return False
    return "core dump" in out or "Local core dump file" in out


def commands_help():
    try:
        text = library().rs_commands_help()
    except EngineError:
        return None
    return text.decode("utf-8", "replace") if text else None
