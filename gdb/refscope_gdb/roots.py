"""Roots the engine cannot find by itself, found with GDB's symbols.

The engine finds the runtime's registered roots (rc_root_add, globals dict,
garbage list) in the registry. GDB adds what only debug information knows:

  - C globals and file statics that hold objects: pointer variables whose
    pointee starts with the object head, and such pointers inside static
    structs and arrays ("cache", "config.handlers", "table.items[3]");
  - named locals and arguments of every frame of the selected thread,
    labelled "frame #2 main() local 'cache'";
  - every word of every thread's stack and its registers (a conservative
    scan, as the refscope command does on a core), labelled "thread 1234
    frame #2 main()" / "thread 1234 register rbx", except the words
    already named as locals.

An "object pointer type" is a pointer to a struct whose first member is, at
any depth of first members, struct rc_object (RC_OBJECT_HEAD); rc_object *
itself is one. Everything here is read-only and defensive: a frame without
debug info, a variable GDB cannot read, an unreadable stack page are skipped.
"""
import re
import struct

import gdb

from . import engine

OBJECT_HEAD = "rc_object"
ARRAY_CAP = 262144          # elements read per array (as the engine's DWARF layer)
SLOT_CAP = 1 << 20          # pointer slots per variable
STACK_CAP = 64 << 20        # bytes of stack scanned per thread
STACK_BLOCK = 64 << 10

# ---- types -------------------------------------------------------------------

_struct_cache = {}


def _type_key(t):
    try:
        return (t.code, str(t), t.sizeof)
    except (gdb.error, RuntimeError):
        return None


def is_object_struct(t):
    """True if t (a struct) is rc_object or starts with one, at any depth."""
    try:
        t = t.strip_typedefs()
    except (gdb.error, RuntimeError):
        return False
    if t.code != gdb.TYPE_CODE_STRUCT:
        return False
    key = _type_key(t)
    hit = _struct_cache.get(key)
    if hit is not None:
        return hit
    result = False
    depth = 0
    cur = t
    while cur.code == gdb.TYPE_CODE_STRUCT and depth < 16:
        if cur.tag == OBJECT_HEAD or cur.name == OBJECT_HEAD:
            result = True
            break
        try:
            fields = cur.fields()
        except (gdb.error, RuntimeError, TypeError):
            break
        if not fields or getattr(fields[0], "bitpos", 0) != 0 or fields[0].type is None:
            break
        cur = fields[0].type.strip_typedefs()
        depth += 1
    _struct_cache[key] = result
    return result


def is_object_pointer(t):
    """True for a pointer type whose pointee is an object struct."""
    try:
        t = t.strip_typedefs()
        return t.code == gdb.TYPE_CODE_PTR and is_object_struct(t.target())
    except (gdb.error, RuntimeError):
        return False


_layout_cache = {}


def pointer_slots(t, budget=SLOT_CAP):
    """Object-pointer slots inside a value of type t.

    A list of (offset, stride, count, path) runs: `count` slots from
    `offset`, `stride` bytes apart, named path % index (or path when count
    is 1 and path has no %d). Paths are member/index suffixes: "", ".next",
    "[%d]", ".items[%d]", "[2].head".
    """
    key = _type_key(t)
    if key in _layout_cache:
        return _layout_cache[key]
    runs = []
    _walk(t, 0, "", runs, [budget], 0)
    _layout_cache[key] = runs
    return runs


def _walk(t, offset, path, runs, budget, depth):
    if budget[0] <= 0 or depth > 8:
        return
    try:
        t = t.strip_typedefs()
    except (gdb.error, RuntimeError):
        return
    code = t.code
    if code == gdb.TYPE_CODE_PTR:
        if is_object_struct(t.target()):
            runs.append((offset, 8, 1, path))
            budget[0] -= 1
        return
    if code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        try:
            fields = t.fields()
        except (gdb.error, RuntimeError, TypeError):
            return
        for f in fields:
            if f.bitsize or not hasattr(f, "bitpos") or f.type is None:
                continue
            name = f.name or ""
            sub = path + "." + name if name else path
            _walk(f.type, offset + f.bitpos // 8, sub, runs, budget, depth + 1)
        return
    if code == gdb.TYPE_CODE_ARRAY:
        try:
            lo, hi = t.range()
            elem = t.target()
            stride = elem.sizeof
        except (gdb.error, RuntimeError, ValueError):
            return
        count = min(hi - lo + 1, ARRAY_CAP)
        if count <= 0 or stride <= 0:
            return
        estrip = elem.strip_typedefs()
        if estrip.code == gdb.TYPE_CODE_PTR:
            if is_object_struct(estrip.target()):
                n = min(count, budget[0])
                runs.append((offset, stride, n, path + "[%d]"))
                budget[0] -= n
            return
        inner = pointer_slots(elem, budget[0])
        if not inner:
            return
        for i in range(count):
            if budget[0] <= 0:
                return
            for (o, s, n, p) in inner:
                # only a leaf array of pointers leaves a %d in its path
                runs.append((offset + i * stride + o, s, n, "%s[%d]%s" % (path, i, p)))
                budget[0] -= n


def read_slots(memory, base, runs):
    """Yield (slot address, value, path) for the non-NULL slots of a variable."""
    if not runs:
        return
    end = max(o + s * (n - 1) + 8 for (o, s, n, _) in runs)
    data = memory.read(base, end)
    for (o, s, n, p) in runs:
        for i in range(n):
            off = o + i * s
            if off + 8 > len(data):
                break
            value = struct.unpack_from("<Q", data, off)[0]
            if value:
                yield base + off, value, (p % i if "%d" in p else p)


# ---- globals -----------------------------------------------------------------

_DECL_NAME = re.compile(r"([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*;$")
_RUNTIME_VARS = ("rc_debug_registry",)

_globals_cache = {"key": None, "vars": []}


def _objfiles_key():
    try:
        return tuple(o.filename for o in gdb.objfiles())
    except (gdb.error, RuntimeError):
        return None


def global_variables():
    """[(label, gdb.Symbol)] of global and file-static variables with object slots.

    GDB 13's Python API cannot enumerate symbols, so this reads
    `info variables -n` (debug symbols only) once per set of objfiles and
    looks each name up again. Function-local statics are not listed there.
    """
    key = _objfiles_key()
    if key is not None and _globals_cache["key"] == key:
        return _globals_cache["vars"]
    found = []
    try:
        text = gdb.execute("info variables -n", to_string=True)
    except gdb.error:
        text = ""
    seen = set()
    for filename, decl in _declarations(text):
        tail = decl.rsplit("}", 1)[-1]   # an anonymous struct spans lines
        if "(" in tail:
            continue            # function pointers hold no object
        m = _DECL_NAME.search(tail)
        if not m:
            continue
        name = m.group(1)
        if name in _RUNTIME_VARS:
            continue
        is_static = decl.startswith("static ")
        for sym in _lookup_variable(name, is_static, filename):
            ident = (sym.symtab.filename if sym.symtab else "", sym.line, name)
            if ident in seen:
                continue
            seen.add(ident)
            try:
                runs = pointer_slots(sym.type)
            except (gdb.error, RuntimeError):
                runs = []
            if runs:
                found.append((name, sym))
    _globals_cache["key"] = key
    _globals_cache["vars"] = found
    return found


_DECL_START = re.compile(r"^(\d+):\t(.*)$")


def _declarations(text):
    """(file, declaration) pairs of `info variables` output; a declaration
    may continue on lines without a line number (struct bodies)."""
    current_file = None
    pending = None
    for line in text.splitlines():
        if line.startswith("File ") and line.endswith(":"):
            current_file = line[5:-1]
            pending = None
            continue
        m = _DECL_START.match(line)
        if m:
            pending = m.group(2).strip()
        elif pending is not None:
            pending += " " + line.strip()
        else:
            continue
        if current_file and pending.endswith(";") and pending.count("{") == pending.count("}"):
            yield current_file, pending
            pending = None


def _lookup_variable(name, is_static, filename):
    syms = []
    try:
        if is_static:
            syms = [s for s in gdb.lookup_static_symbols(name)
                    if s.symtab is not None and s.symtab.filename == filename]
        else:
            s = gdb.lookup_global_symbol(name)
            syms = [s] if s is not None else []
    except (gdb.error, RuntimeError, AttributeError):
        return []
    return [s for s in syms if s.is_variable]


def global_roots(memory, target=None, registry=(0, 0)):
    """C globals holding objects: the engine's DWARF reader when there is
    one (the same slots and names as the refscope command), else GDB's."""
    lo, hi = registry
    if target is not None:
        try:
            slots = target.pointer_slots()
        except engine.EngineError:
            slots = None
        if slots is not None:
            for addr, path, name in slots:
                # the registry's own pointers are the engine's business
                if lo <= addr < hi or name == engine.REGISTRY_SYMBOL:
                    continue
                data = memory.read(addr, 8)
                if len(data) < 8:
                    continue
                value = struct.unpack("<Q", data)[0]
                if value >= 4096 and not value & 7:
                    yield engine.RS_ROOT_GLOBAL, path, addr, value
            return
    for name, sym in global_variables():
        try:
            value = sym.value()
            addr = int(value.address)
        except (gdb.error, RuntimeError, TypeError):
            continue
        for slot, ptr, path in read_slots(memory, addr, pointer_slots(sym.type)):
            yield engine.RS_ROOT_GLOBAL, name + path, slot, ptr


# ---- frames ------------------------------------------------------------------

def _frames():
    """[(level, frame)] of the selected thread, innermost first (capped)."""
    out = []
    try:
        frame = gdb.newest_frame()
    except gdb.error:
        return out
    level = 0
    while frame is not None and level < 4096:
        out.append((level, frame))
        try:
            frame = frame.older()
        except gdb.error:
            break
        level += 1
    return out


def _frame_name(frame):
    try:
        name = frame.name()
    except gdb.error:
        name = None
    return name or "??"


def _frame_symbols(frame):
    """Named locals and arguments visible at the frame's pc."""
    try:
        block = frame.block()
    except (RuntimeError, gdb.error):
        return
    seen = set()
    while block is not None:
        for sym in block:
            if not (sym.is_variable or sym.is_argument) or sym.name in seen:
                continue
            seen.add(sym.name)
            yield sym
        if block.function is not None:
            break
        block = block.superblock


def _local_label(level, function, name, path):
    return "frame #%d %s() local '%s%s'" % (level, function, name, path)


def local_roots(memory):
    """Roots held by the named locals of the selected thread's frames."""
    for level, frame in _frames():
        fname = _frame_name(frame)
        for sym in _frame_symbols(frame):
            try:
                t = sym.type
                runs = pointer_slots(t)
                if not runs:
                    continue
                value = sym.value(frame)
                addr = value.address
                if addr is None:
                    # in a register: only a plain pointer can be read
                    if is_object_pointer(t) and int(value):
                        yield (engine.RS_ROOT_LOCAL, _local_label(level, fname, sym.name, ""),
                               0, int(value))
                    continue
                static = sym.addr_class == gdb.SYMBOL_LOC_STATIC
                for slot, ptr, path in read_slots(memory, int(addr), runs):
                    if static:   # a function-local static: a global, named as the CLI does
                        yield engine.RS_ROOT_GLOBAL, "%s::%s%s" % (fname, sym.name, path), slot, ptr
                    else:
                        yield (engine.RS_ROOT_LOCAL, _local_label(level, fname, sym.name, path),
                               slot, ptr)
            except (gdb.error, RuntimeError, TypeError, ValueError):
                continue


SCANNED_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10",
                     "r11", "r12", "r13", "r14", "r15")


def thread_roots(memory, named_slots):
    """Registers and stack words of every thread, as the refscope command
    adds them from a core: "thread 1234 register rbx", "thread 1234 frame
    #2 main()" (frames numbered without GDB's inline frames, which the
    command's unwinder does not see). Words naming a local are left to
    local_roots; words pointing into the stack itself are never objects."""
    try:
        inferior = gdb.selected_inferior()
        threads = sorted(inferior.threads(), key=lambda t: t.num)
        selected = gdb.selected_thread()
        selected_frame = gdb.selected_frame() if selected is not None else None
    except gdb.error:
        return []
    roots = []
    # The command's unwinder goes on past main (__libc_start_call_main,
    # _start): so do we, for the same frame numbers and names.
    past_main = _parameter("backtrace past-main")
    try:
        if past_main is False:
            gdb.execute("set backtrace past-main on", to_string=True)
        for thread in threads:
            try:
                thread.switch()
                roots.extend(_thread_roots(memory, thread, named_slots))
            except (gdb.error, RuntimeError):
                continue
    finally:
        try:
            if past_main is False:
                gdb.execute("set backtrace past-main off", to_string=True)
            if selected is not None:
                selected.switch()
                if selected_frame is not None and selected_frame.is_valid():
                    selected_frame.select()
        except (gdb.error, RuntimeError):
            pass
    return roots


def _parameter(name):
    try:
        return gdb.parameter(name)
    except (gdb.error, RuntimeError):
        return None


def _thread_roots(memory, thread, named_slots):
    tid = thread.ptid[1] or thread.ptid[0]
    bounds = []       # (sp, real frame number, function)
    registers = []
    number = 0
    for level, frame in _frames():
        try:
            if level == 0:
                for reg in SCANNED_REGISTERS:
                    registers.append((reg, int(frame.read_register(reg)) & 0xFFFFFFFFFFFFFFFF))
            if frame.type() == gdb.INLINE_FRAME:
                continue
            sp = int(frame.read_register("rsp"))
        except (gdb.error, ValueError, RuntimeError):
            continue
        bounds.append((sp, number, _frame_name(frame)))
        number += 1
    if not bounds:
        return []
    words, stack_lo, stack_hi = _read_stack(memory, bounds[0][0] & ~7)
    out = []
    for reg, value in registers:
        if _maybe_object(value) and not stack_lo - 4096 <= value < stack_hi:
            out.append((engine.RS_ROOT_REGISTER, "thread %d register %s" % (tid, reg), 0, value))
    fi = 0
    for slot, value in words:
        if not _maybe_object(value) or stack_lo - 4096 <= value < stack_hi or slot in named_slots:
            continue
        while fi + 1 < len(bounds) and slot >= bounds[fi + 1][0]:
            fi += 1
        _, number, name = bounds[fi]
        out.append((engine.RS_ROOT_STACK, "thread %d frame #%d %s()" % (tid, number, name),
                    slot, value))
    return out


def _maybe_object(value):
    return value >= 4096 and not value & 7


def _read_stack(memory, start):
    """[(slot, word)] from start to the first unreadable page (capped)."""
    out = []
    addr = start
    while addr < start + STACK_CAP:
        data = memory.read(addr, STACK_BLOCK)
        n = len(data) // 8
        if n == 0:
            break
        for i, value in enumerate(struct.unpack_from("<%dQ" % n, data)):
            if value:
                out.append((addr + 8 * i, value))
        addr += 8 * n
        if len(data) < STACK_BLOCK:
            break
    return out, start, addr


def all_roots(memory, target=None, registry=(0, 0), stack=True):
    """Every root GDB can name, deduplicated, in a stable order."""
    roots = list(global_roots(memory, target, registry))
    roots += list(local_roots(memory))
    if stack:
        named = {slot for (kind, _, slot, _) in roots if slot and kind == engine.RS_ROOT_LOCAL}
        roots += thread_roots(memory, named)
    seen = set()
    out = []
    for root in roots:
        if root not in seen:
            seen.add(root)
            out.append(root)
    return out
