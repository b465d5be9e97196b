"""refscope for GDB: heap-* commands and a pretty-printer for refscope objects.

Loaded by the runtime library's .debug_gdb_scripts section (auto-load) or
by `source refscope-gdb.py`. register() may be called many times (once per
objfile carrying the section): the commands and event hooks are set up the
first time, the pretty-printer once per objfile.

    refscope_gdb/engine.py    the C engine through ctypes, memory from GDB
    refscope_gdb/roots.py     globals, locals and stack words GDB can name
    refscope_gdb/commands.py  heap-summary, heap-refs OBJ, heap-cycles, ...
    refscope_gdb/printers.py  print node -> <Node@0x... refcnt=2 gen=1 leaky.c:42>
"""
from . import commands, printers

_registered = False


def register(objfile=None):
    """Set the plugin up (idempotent); printers go to objfile or the progspace."""
    global _registered
    if not _registered:
        _registered = True
        commands.register()
        commands.connect_events()
    printers.register(objfile)
