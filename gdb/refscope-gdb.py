# refscope's GDB plugin, to load by hand:
#
#     (gdb) source /path/to/refscope-gdb.py
#
# (the build tree has one in build/gdb/, an install in share/refscope/gdb/).
# Programs linked with the runtime load it by themselves once GDB trusts
# their directory:  gdb -iex 'add-auto-load-safe-path /path/to/prog' ./prog
#
# It puts its own directory on sys.path, imports the refscope_gdb package
# and registers the heap-* commands and the pretty-printer.
import os
import sys

import gdb


def _refscope_source():
    here = os.path.dirname(os.path.abspath(os.path.realpath(__file__)))
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        import refscope_gdb
    except Exception as e:  # keep a broken install to one line
        print("refscope: cannot import refscope_gdb from %s: %s" % (here, e))
        return
    refscope_gdb.register(gdb.current_objfile())


_refscope_source()
del _refscope_source
