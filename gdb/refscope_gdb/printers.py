"""The pretty-printer: `print node` shows <Node@0x... refcnt=2 gen=1 leaky.c:42>.

It prints every pointer whose pointee starts with the object head (rc_object *,
and the program's own structs declared with RC_OBJECT_HEAD). Containers
(list, tuple, dict) add their items, at most MAX_ITEMS per container and
MAX_DEPTH levels deep; a container already being printed shows as [...],
(...) or {...}, as Python's repr does. Ints, strs and bytes add their value.

Everything is read from memory with read_memory and decoded with the
layouts of rc.h and registry.h; no function of the inferior is called, and
a pointer to garbage prints as <rc_object@0x...: unreadable>, never as an
error: "this is the debugger, after all".
"""
import os
import struct

import gdb
import gdb.printing

from . import roots

PRINTER_NAME = "refscope"
MAX_ITEMS = 10
MAX_DEPTH = 3
MAX_STR = 200
MAX_FIELDS = 64

RC_REFCNT_FREED = 0xDEAD0BAD
RC_OBF_GEN_MASK = 0x03
RC_OBF_TRACKED = 0x04
RC_OBF_GARBAGE = 0x10
RC_SITE_SHIFT = 8

FIELD_REF_ARRAY = 3
FIELD_INLINE_ARRAY = 4
FIELD_DICT = 5

# rc.h layouts (x86-64): rc_type {name, size, fields, ...}, rc_field {name,
# kind, offset, len_offset, aux_offset}, rc_dict_entry {hash, key, value},
# rc_site_entry {file, func, line}.
TYPE_FIELDS_OFFSET = 16
TYPE_NAME_OFFSET_OFFSET = 56   # rc_type.tp_name_offset: a `const char *` naming an instance
FIELD_SIZE = 24
DICT_ENTRY_SIZE = 24
SITE_ENTRY_SIZE = 24


# ---- memory ----------------------------------------------------------------

def _read(addr, size):
    try:
        return bytes(gdb.selected_inferior().read_memory(addr, size))
    except (gdb.MemoryError, gdb.error, ValueError, OverflowError):
        return None


def _u64(addr):
    data = _read(addr, 8)
    return struct.unpack("<Q", data)[0] if data else None


def _string(addr, limit=MAX_STR):
    """A C string (None if unreadable); '...' marks a truncated one."""
    if not addr:
        return None
    out = b""
    while len(out) < limit:
        chunk = _read(addr + len(out), 64)
        if chunk is None:
            # the string may end before an unreadable page: go byte by byte
            chunk = _read(addr + len(out), 1)
            if chunk is None:
                return None
        nul = chunk.find(b"\0")
        if nul >= 0:
            return (out + chunk[:nul]).decode("utf-8", "replace")
        out += chunk
    return out[:limit].decode("utf-8", "replace") + "..."


# ---- the registry's site table -------------------------------------------------

class _Sites:
    """Site id -> "file.c:LINE", read from rc_debug_registry.sites."""

    def __init__(self):
        self.key = None
        self.table = None      # (address, count)
        self.names = {}

    def lookup(self, site):
        key = (gdb.selected_inferior().num, gdb.selected_inferior().pid)
        if key != self.key:
            self.key = key
            self.table = None
            self.names = {}
        if site in self.names:
            return self.names[site]
        name = self._read(site)
        self.names[site] = name
        return name

    def _table(self):
        if self.table is None:
            self.table = (0, 0)
            try:
                reg = gdb.parse_and_eval("rc_debug_registry")
                self.table = (int(reg["sites"]), int(reg["nsites"]))
            except (gdb.error, RuntimeError):
                pass
        return self.table

    def _read(self, site):
        base, count = self._table()
        if not site or not base or site >= count:
            return None
        data = _read(base + site * SITE_ENTRY_SIZE, SITE_ENTRY_SIZE)
        if not data:
            return None
        file_ptr, _func, line = struct.unpack_from("<QQI", data)
        path = _string(file_ptr)
        if path is None:
            return None
        return "%s:%d" % (os.path.basename(path), line)


SITES = _Sites()


def invalidate():
    """The inferior ran or changed: forget cached registry facts."""
    SITES.key = None


# ---- objects -------------------------------------------------------------------

class _Object:
    """The decoded head of one object."""

    __slots__ = ("addr", "refcnt", "info", "type_addr", "type_name", "readable")

    def __init__(self, addr):
        self.addr = addr
        self.type_name = "rc_object"
        data = _read(addr, 16)
        self.readable = data is not None
        if not self.readable:
            return
        self.refcnt, self.info, self.type_addr = struct.unpack("<IIQ", data)
        name = _string(_u64(self.type_addr) or 0, 64) if self.type_addr else None
        if name and name.isprintable():
            self.type_name = name

    @property
    def freed(self):
        return self.refcnt == RC_REFCNT_FREED

    def head(self):
        """"<Node@0x... refcnt=2 gen=1 leaky.c:42>"."""
        if not self.readable:
            return "<rc_object@0x%x: unreadable>" % self.addr
        parts = ["%s@0x%x" % (self.type_name, self.addr)]
        if self.freed:
            parts.append("freed")
        else:
            parts.append("refcnt=%d" % self.refcnt)
            if self.info & RC_OBF_TRACKED:
                parts.append("gen=%d" % (self.info & RC_OBF_GEN_MASK))
            if self.info & RC_OBF_GARBAGE:
                parts.append("garbage")
        site = SITES.lookup(self.info >> RC_SITE_SHIFT)
        parts.append(site or "unknown site")
        return "<%s>" % " ".join(parts)

    def fields(self):
        """The type's field table: [(kind, offset, len_offset)]."""
        out = []
        table = _u64(self.type_addr + TYPE_FIELDS_OFFSET) if self.type_addr else None
        if not table:
            return out
        data = _read(table, FIELD_SIZE * MAX_FIELDS) or b""
        for i in range(len(data) // FIELD_SIZE):
            _name, kind, off, len_off, _aux = struct.unpack_from("<QIIII", data, i * FIELD_SIZE)
            if kind == 0:
                break
            out.append((kind, off, len_off))
        return out


def _container_items(obj, limit):
    """(opening, closing, [item text], total) for list/tuple/dict, else None."""
    kind_of = {"list": FIELD_REF_ARRAY, "tuple": FIELD_INLINE_ARRAY, "dict": FIELD_DICT}
    want = kind_of.get(obj.type_name)
    if want is None:
        return None
    for kind, off, len_off in obj.fields():
        if kind != want:
            continue
        total = _u64(obj.addr + len_off)
        if total is None:
            return None
        n = min(total, limit)
        if kind == FIELD_REF_ARRAY:
            base = _u64(obj.addr + off)
            data = _read(base, 8 * n) if (base and n) else b""
            if data is None:
                return None
            items = [(None, v) for v in struct.unpack("<%dQ" % n, data)]
            return "[", "]", items, total
        if kind == FIELD_INLINE_ARRAY:
            data = _read(obj.addr + off, 8 * n) if n else b""
            if data is None:
                return None
            items = [(None, v) for v in struct.unpack("<%dQ" % n, data)]
            return "(", ")", items, total
        # dict: entries[0 .. used) with deleted ones (key NULL) among them
        base = _u64(obj.addr + off)
        items = []
        live = 0
        scan = min(total, 4 * limit + 64)
        data = _read(base, DICT_ENTRY_SIZE * scan) if (base and scan) else b""
        if data is None:
            return None
        for i in range(scan):
            _h, key, value = struct.unpack_from("<QQQ", data, i * DICT_ENTRY_SIZE)
            if not key or not value:
                continue
            live += 1
            if len(items) < limit:
                items.append((_string(key, 80), value))
        dict_len = _u64(obj.addr + off + 24)  # rc_dict_object.len follows entries/used/filled
        return "{", "}", items, dict_len if dict_len is not None and dict_len < 1 << 40 else live
    return None


def _value_text(obj):
    """The value an atomic built-in adds after its head, or None."""
    if obj.type_name == "int":
        data = _read(obj.addr + 16, 8)
        return str(struct.unpack("<q", data)[0]) if data else None
    if obj.type_name == "str":
        s = _string(obj.addr + 24)
        return repr(s) if s is not None else None
    if obj.type_name == "bytes":
        n = _u64(obj.addr + 16)
        return "len=%d" % n if n is not None else None
    return _instance_name(obj)


def _instance_name(obj):
    """The name some objects carry (a closure's function, a class's name)."""
    if not obj.type_addr:
        return None
    data = _read(obj.type_addr + TYPE_NAME_OFFSET_OFFSET, 4)
    if not data:
        return None
    offset = struct.unpack("<I", data)[0]
    if not offset or offset > 1 << 16:
        return None
    name = _string(_u64(obj.addr + offset) or 0, 80)
    return name if name and name.isprintable() else None


def short_repr(addr, depth, active):
    """An item inside a container: 42, 'abc', [..], <Node@0x...>."""
    if not addr:
        return "NULL"
    obj = _Object(addr)
    if not obj.readable or obj.freed:
        return obj.head()
    value = _value_text(obj)
    if value is not None and obj.type_name in ("int", "str"):
        return value
    if obj.type_name in ("list", "tuple", "dict"):
        if addr in active:
            return {"list": "[...]", "tuple": "(...)", "dict": "{...}"}[obj.type_name]
        if depth < MAX_DEPTH:
            body = _items_text(obj, depth + 1, active | {addr})
            if body is not None:
                return body
    return "<%s@0x%x>" % (obj.type_name, addr)


def _items_text(obj, depth, active):
    got = _container_items(obj, MAX_ITEMS)
    if got is None:
        return None
    opening, closing, items, total = got
    parts = []
    for key, value in items:
        text = short_repr(value, depth, active)
        parts.append("%r: %s" % (key, text) if key is not None else text)
    if total > len(items):
        parts.append("...(%d more)" % (total - len(items)))
    if opening == "(" and len(items) == 1 and total == 1:
        parts[0] += ","
    return opening + ", ".join(parts) + closing


def describe(addr):
    """The full text `print` shows for an object pointer."""
    obj = _Object(addr)
    text = obj.head()
    if not obj.readable or obj.freed:
        return text
    extra = _value_text(obj)
    if extra is None and obj.type_name in ("list", "tuple", "dict"):
        extra = _items_text(obj, 1, frozenset([addr]))
    return text + " " + extra if extra is not None else text


class ObjectPointerPrinter:
    """Prints an object pointer as its head (and a container's items)."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        try:
            addr = int(self.val)
        except (gdb.error, RuntimeError, ValueError):
            return "<rc_object: unavailable>"
        if addr == 0:
            return "0x0"
        try:
            return describe(addr)
        except (gdb.error, RuntimeError, ValueError, OverflowError, struct.error) as e:
            return "<rc_object@0x%x: %s>" % (addr, e)


class RefscopePrinter(gdb.printing.PrettyPrinter):
    """The lookup function registered per objfile, under the name "refscope"."""

    def __init__(self):
        # no subprinters: `disable pretty-printer` then counts this one printer
        super().__init__(PRINTER_NAME, None)

    def __call__(self, val):
        if not self.enabled:
            return None
        try:
            if roots.is_object_pointer(val.type):
                return ObjectPointerPrinter(val)
        except (gdb.error, RuntimeError):
            pass
        return None


def register(objfile):
    """Register the printer with objfile (None: the current progspace)."""
    target = objfile if objfile is not None else gdb.current_progspace()
    for p in getattr(target, "pretty_printers", []):
        if getattr(p, "name", None) == PRINTER_NAME:
            return
    gdb.printing.register_pretty_printer(target, RefscopePrinter(), replace=True)
