/*
 * engine.h -- the refscope analysis engine: one C library, two front ends.
 *
 * The engine decodes the runtime's debug registry (runtime/registry.h) from
 * memory it reads through an rs_memory callback, builds the object graph
 * (objects, labelled edges, roots) and answers the leak questions with
 * reports. The `refscope` command feeds it from a core file or a live pid
 * (target.h); the GDB plugin feeds it through ctypes with memory read by
 * gdb.Inferior.read_memory. Both print the report text the engine makes,
 * so the two front ends say the same thing in the same words.
 *
 * Layers: target.h (process image: memory, symbols, DWARF, threads) knows
 * nothing of the heap; the engine knows nothing of ELF or ptrace: it gets
 * memory, the registry's address, and extra roots (C globals found through
 * DWARF, stack slots, GDB locals) from its front end.
 *
 * Error convention: as target.h (NULL / -1 plus an rs_error sentence;
 * problems that leave a usable answer are warnings, listed in reports).
 *
 * ABI: only opaque pointers, integers, C strings and the rs_memory struct
 * cross this API, so ctypes can call it. Strings returned are malloc'd;
 * free them with rs_free().
 */
#ifndef REFSCOPE_ENGINE_H
#define REFSCOPE_ENGINE_H

#include "target.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RS_ENGINE_API_VERSION 1

typedef struct rs_heap rs_heap;

/* Progress of long loads: called now and then with done/total units
 * (objects or bytes); the CLI draws it on a terminal's stderr. */
typedef void (*rs_progress_fn)(void *ctx, const char *phase, uint64_t done, uint64_t total);

/* Create an engine over memory; `registry` is the address of
 * rc_debug_registry. Nothing is read until rs_heap_load. The memory must
 * stay readable until rs_heap_free: reports read a few strings lazily
 * (dict keys, closure cell names, instance names). */
rs_heap *rs_heap_new(rs_memory mem, uint64_t registry, rs_error *err);
void rs_heap_free(rs_heap *h);
void rs_free(void *p);

/* Roots the front end knows about, added before rs_heap_load. `slot` is the
 * address of the location holding the pointer (0 if not in memory, e.g. a
 * register); `value` the pointer it holds. The engine keeps only those that
 * point at (the start of) a live object. kind: */
enum rs_root_kind {
    RS_ROOT_REGISTERED = 1, /* rc_root_add (the engine finds these itself) */
    RS_ROOT_GLOBAL = 2,     /* a C global or static (DWARF): label "cache" */
    RS_ROOT_STACK = 3,      /* a stack word: label "thread 1234 frame #2 main()" */
    RS_ROOT_LOCAL = 4,      /* a named local (GDB): label "frame #2 main() local 'cache'" */
    RS_ROOT_REGISTER = 5,   /* a register of a thread */
    RS_ROOT_OTHER = 6,
};
/* Registered roots, C globals and "other" roots own a reference. Stack
 * words, registers and locals only may (a C local often holds a borrowed
 * pointer, or a stale one after its decref): in refcount reconciliation
 * they explain only what heap references and owning roots leave over, and
 * `path` prefers owning roots. Roots with the same slot count once. */
int rs_heap_add_root(rs_heap *h, int kind, const char *label, uint64_t slot, uint64_t value);

/* Name code addresses (closure functions, traceback frames): the front end
 * installs a resolver (DWARF in the CLI, GDB's in the plugin). It writes
 * "function (file.c:LINE)" or "function+0x1a" into buf; returns 0 or -1. */
typedef int (*rs_symbolize_fn)(void *ctx, uint64_t addr, char *buf, size_t size);
void rs_heap_set_symbolizer(rs_heap *h, rs_symbolize_fn fn, void *ctx);

/* Read the registry and every object, decode the edges, attach the roots.
 * Validates everything (magic, version, bounds, list cycles): corrupt input
 * gives warnings and a partial heap; -1 only if there is no heap at all
 * (no registry, bad magic or version, nothing readable). A large heap in
 * a core is scanned and its edges resolved on two threads (see
 * rs_heap_analyze); the memory reader is only ever called on the calling
 * thread. */
int rs_heap_load(rs_heap *h, rs_progress_fn progress, void *ctx, rs_error *err);

size_t rs_heap_warning_count(const rs_heap *h);
const char *rs_heap_warning(const rs_heap *h, size_t i);

/*
 * Compute ahead what several reports share: RS_ANALYSIS_COLLECTOR, what a
 * full collection would do now (cycles, garbage, graph, path, refs), and
 * RS_ANALYSIS_DOMINATORS, the refcount reconciliation and the dominator
 * tree (leaks, retained, roots, refs). Both at once run on two threads
 * when the heap is large (100 000 objects or more) and the machine has two
 * CPUs; REFSCOPE_THREADS=1 in the environment keeps them on the calling
 * thread (as it does for rs_heap_load, which takes two threads from 512
 * pools of a core for the scan and from 500 000 edges for their resolution). Reports compute what they need themselves: this only saves time
 * when reports of both kinds follow. The heap must be loaded.
 */
enum { RS_ANALYSIS_COLLECTOR = 1, RS_ANALYSIS_DOMINATORS = 2 };
void rs_heap_analyze(rs_heap *h, unsigned what);

/*
 * Run one report, as the command line says it: "summary", "types --limit 5",
 * "refs 0x55d0c0a4e2b0", "refs cache", "cycles --json", "path 0x...",
 * "retained", "retained 0x...", "graph 0x... --depth 2", "graph --cycle 1",
 * "garbage", "roots", "leaks", "sites", "check". OBJ is 0xADDR or a root or
 * global name. Returns the report text (malloc'd; human text, or JSON with
 * --json) and sets *status: 0 success, 1 findings in `check`/`leaks`,
 * 2 usage error (the text is then the one-line error).
 */
char *rs_heap_report(rs_heap *h, const char *command_line, int *status);

/* Snapshots for `diff` and heap-snapshot/heap-diff: a compact copy of the
 * per-object facts needed to compare two points in time. */
typedef struct rs_snapshot rs_snapshot;
rs_snapshot *rs_heap_snapshot(rs_heap *h);
void rs_snapshot_destroy(rs_snapshot *s);
/* `diff`: growth by type and site from `old` to `h`, objects born between. */
char *rs_heap_diff(rs_heap *h, const rs_snapshot *old, const char *options, int *status);

/* The one-line help of every command, for --help texts. */
const char *rs_commands_help(void);

#ifdef __cplusplus
}
#endif

#endif /* REFSCOPE_ENGINE_H */
