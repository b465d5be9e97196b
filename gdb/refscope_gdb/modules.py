"""The program's ELF modules and their load biases, as GDB sees them.

The engine's target layer (rs_open_memory) wants each module's path and
bias (run-time address = file address + bias) to answer DWARF questions
the way the refscope command does. GDB's Python API does not expose biases,
so they are computed from what GDB prints and the files' own headers:

  executable        bias = AT_ENTRY (`info auxv`) - e_entry (ELF header)
  shared library    bias = "From" of `info sharedlibrary` (the run-time start
                    of .text) - the file's .text sh_addr

Both work on a live process and on a core. Anything unreadable is skipped:
the executable alone is enough for C globals.
"""
import os
import re
import struct

import gdb

_SOLIB_LINE = re.compile(r"^\s*(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)\s+(?:Yes|No)(?: \(\*\))?\s+(/.*)$")
_AUXV_ENTRY = re.compile(r"^\s*\d+\s+AT_ENTRY\s.*\s(0x[0-9a-fA-F]+)\s*$", re.M)


def _elf_header(path):
    """(e_entry, e_shoff, e_shentsize, e_shnum, e_shstrndx) or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return None   # ELF64 little endian only (as the engine)
    e_entry, = struct.unpack_from("<Q", head, 24)
    e_shoff, = struct.unpack_from("<Q", head, 40)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", head, 58)
    return e_entry, e_shoff, e_shentsize, e_shnum, e_shstrndx


def text_address(path):
    """sh_addr of the file's .text section, or None."""
    hdr = _elf_header(path)
    if hdr is None:
        return None
    _, shoff, shentsize, shnum, shstrndx = hdr
    if not shoff or shentsize < 64 or shnum == 0 or shnum > 65535 or shstrndx >= shnum:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            if len(table) < shentsize * shnum:
                return None
            str_off, str_size = struct.unpack_from("<QQ", table, shstrndx * shentsize + 24)
            f.seek(str_off)
            names = f.read(min(str_size, 1 << 20))
    except OSError:
        return None
    for i in range(shnum):
        name_off, = struct.unpack_from("<I", table, i * shentsize)
        end = names.find(b"\0", name_off)
        if end >= 0 and names[name_off:end] == b".text":
            addr, = struct.unpack_from("<Q", table, i * shentsize + 16)
            return addr
    return None


def _executable():
    try:
        path = gdb.current_progspace().filename
    except (gdb.error, RuntimeError):
        path = None
    return path


def _entry_bias(path):
    hdr = _elf_header(path)
    if hdr is None:
        return None
    try:
        auxv = gdb.execute("info auxv", to_string=True)
    except gdb.error:
        auxv = ""
    m = _AUXV_ENTRY.search(auxv)
    if not m:
        return 0 if hdr[0] >= 0x400000 else None   # not running: unrelocated non-PIE
    return (int(m.group(1), 16) - hdr[0]) & 0xFFFFFFFFFFFFFFFF


def module_specs():
    """[(path, bias)], the executable first; [] if the executable is unknown."""
    exe = _executable()
    if not exe or not os.path.isfile(exe):
        return []
    bias = _entry_bias(exe)
    if bias is None:
        return []
    specs = [(exe, bias)]
    try:
        text = gdb.execute("info sharedlibrary", to_string=True)
    except gdb.error:
        text = ""
    for line in text.splitlines():
        m = _SOLIB_LINE.match(line)
        if not m:
            continue
        path = m.group(3).strip()
        if not os.path.isfile(path):
            continue
        start = text_address(path)
        if start is None:
            continue
        specs.append((path, (int(m.group(1), 16) - start) & 0xFFFFFFFFFFFFFFFF))
    return specs
