/*
 * Shared between the runtime's source files; not installed.
 *
 * How the pieces fit:
 *
 *   object.c    refcounting, allocation of objects (rc_new_at), deallocation
 *               in CPython's order (finalizer, weakrefs, legacy del, release
 *               references, destroy, free), the trashcan for deep chains,
 *               type/site registration, misuse diagnostics
 *   alloc.c     the pymalloc-style allocator: arenas -> pools -> blocks
 *   gc.c        the generational cycle collector (Python's gc module)
 *   weakref.c   weakrefs, the weakref side table, WeakValueDictionary,
 *               WeakSet, finalize
 *   builtins.c  int, str, bytes, list, tuple, cell, closure, generator
 *   dict.c      the string-keyed dict
 *   class.c     classes (dict-based or slotted) and instances
 *   registry.c  the debug registry, roots, globals, init/shutdown, errors
 *
 * Memory of an object (see registry.h for the reader's view):
 *
 *     [rc_gchead 16 B, tracked types only][rc_object 16 B][type's fields ...]
 *     ^ block start                        ^ rc_object *
 *
 * Prefixes: rc_ public, _rc_ shared between runtime files, plain names for
 * statics.
 */
#ifndef REFSCOPE_INTERNAL_H
#define REFSCOPE_INTERNAL_H

#include "registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_LIKELY(x) __builtin_expect(!!(x), 1)
#define RC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RC_INTERNAL __attribute__((visibility("hidden")))

#define REG rc_debug_registry

/* ---- header accessors ---------------------------------------------------- */

#define AS_GC(o) ((rc_gchead *)(o) - 1)
#define FROM_GC(g) ((rc_object *)((rc_gchead *)(g) + 1))

static inline unsigned _rc_flags(const rc_object *o) { return o->ob_info & RC_OBF_MASK; }
static inline void _rc_set_flag(rc_object *o, unsigned f) { o->ob_info |= f; }
static inline void _rc_clear_flag(rc_object *o, unsigned f) { o->ob_info &= ~f; }
static inline unsigned _rc_gen(const rc_object *o) { return o->ob_info & RC_OBF_GEN_MASK; }
static inline void _rc_set_gen(rc_object *o, unsigned g)
{
    o->ob_info = (o->ob_info & ~RC_OBF_GEN_MASK) | g;
}
static inline uint32_t _rc_site_id(const rc_object *o) { return o->ob_info >> RC_SITE_SHIFT; }
static inline bool _rc_type_is_gc(const rc_type *t) { return (t->tp_flags & RC_TPF_GC) != 0; }
static inline bool _rc_is_gc(const rc_object *o) { return _rc_type_is_gc(o->ob_type); }

/* ---- errors -------------------------------------------------------------- */

/* Sets rc_last_error(); printf-style. Returns -1 for `return _rc_error(...)`. */
RC_INTERNAL int _rc_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Misuse that would corrupt memory: print "refscope: fatal: <msg>: <object>" and abort. */
RC_INTERNAL _Noreturn void _rc_fatal_object(const char *msg, const rc_object *o);
RC_INTERNAL _Noreturn void _rc_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Out of memory from malloc/mmap: abort with a message (like Py_FatalError). */
RC_INTERNAL void *_rc_xmalloc(size_t n);
RC_INTERNAL void *_rc_xcalloc(size_t n, size_t size);
RC_INTERNAL void *_rc_xrealloc(void *p, size_t n);
RC_INTERNAL char *_rc_xstrdup(const char *s);

/* ---- registry / init ----------------------------------------------------- */

RC_INTERNAL void _rc_ensure_init(void);
RC_INTERNAL extern int _rc_initialized;
static inline void rc_autoinit(void)
{
    if (RC_UNLIKELY(!_rc_initialized))
        _rc_ensure_init();
}
RC_INTERNAL void _rc_register_type(rc_type *t);
RC_INTERNAL void _rc_unregister_type(rc_type *t);
RC_INTERNAL uint32_t _rc_intern_site(rc_site *site);
static inline uint32_t _rc_site(rc_site *site)
{
    if (!site)
        return 0;
    return RC_LIKELY(site->id) ? site->id : _rc_intern_site(site);
}
/* The runtime's own allocations (lists made by rc_gc_get_objects, ...). */
#define RC_INTERNAL_SITE RC_HERE

/* ---- allocator (alloc.c) ------------------------------------------------- */

/*
 * Allocate `size` bytes (the whole block content: gc head included for kind
 * GC) for an object of pool kind `kind` (RC_KIND_PLAIN / RC_KIND_GC). Sizes
 * up to RC_SMALL_MAX come from pools; *large is set when the block came
 * from the large list instead. Returns the block start, never NULL (aborts
 * when the system is out of memory). Block contents are uninitialised.
 * PLAIN requests are rounded up to at least 24 bytes so a freed block can
 * hold its freelist link after the object head; GC requests to 32 so the
 * object head is always inside the block.
 */
RC_INTERNAL void *_rc_mem_alloc(size_t size, unsigned kind, bool *large);
/* Free a block from _rc_mem_alloc. The caller has already poisoned the
 * object head; the allocator writes only the freelist link (offset 0 in GC
 * pools, offset 16 in PLAIN pools) or frees the large node. */
RC_INTERNAL void _rc_mem_free(void *block, bool large);
/* Usable bytes of the block holding `block` (its size class, or the large
 * size). */
RC_INTERNAL size_t _rc_mem_block_size(const void *block, bool large);
/* Return every arena and large block to the system (rc_shutdown). */
RC_INTERNAL void _rc_mem_release_all(void);
/* Visit every live object (refcnt != FREED) in arenas and the large list.
 * The visitor must not free; it may allocate if it initialises each new
 * object's head before returning (as rc_new_at does). */
typedef void (*rc_heap_visit_fn)(rc_object *o, void *arg);
RC_INTERNAL void _rc_mem_walk(rc_heap_visit_fn fn, void *arg);

/* ---- objects (object.c) -------------------------------------------------- */

/* Called when the refcount reaches zero. */
RC_INTERNAL void _rc_dealloc(rc_object *o);
/* Visit every strong reference of o (the field table). Stops early and
 * returns the visitor's value when it returns non-zero. */
typedef int (*rc_visit_fn)(rc_object *ref, void *arg);
RC_INTERNAL int _rc_traverse(rc_object *o, rc_visit_fn visit, void *arg);
/* tp_clear: drop every strong reference o holds (set to NULL, then decref). */
RC_INTERNAL void _rc_clear_refs(rc_object *o);
/* Run the PEP 442 finalizer if it has not run yet: sets FINALIZED first. */
RC_INTERNAL void _rc_call_finalizer(rc_object *o);
/* rc_shutdown: run type->destroy on every object still alive (classes
 * last) so their malloc'd buffers are released, then forget quarantined
 * blocks. Nothing is decref'd: the arenas are about to go. */
RC_INTERNAL void _rc_object_shutdown(void);
/* Allocate with a gc-head-aware layout; `size` is the instance size. */
RC_INTERNAL rc_object *_rc_alloc_object(rc_type *type, size_t size, uint32_t site);

/* ---- collector (gc.c) ---------------------------------------------------- */

RC_INTERNAL void _rc_gc_init(void);
/* Count an allocation of a tracked object in generation 0 and run an
 * automatic collection when due. Called before the memory is allocated. */
RC_INTERNAL void _rc_gc_on_alloc(void);
/* A tracked object died: generation 0's count goes down (if > 0). */
RC_INTERNAL void _rc_gc_on_free(void);
RC_INTERNAL void _rc_gc_track(rc_object *o);
RC_INTERNAL void _rc_gc_untrack(rc_object *o);
RC_INTERNAL void _rc_gc_shutdown(void);
/* "<Type 0x...>" as Python's gc debug lines print objects. */
RC_INTERNAL void _rc_gc_debug_line(const char *what, rc_object *o);

/* ---- weak references (weakref.c) ----------------------------------------- */

typedef struct rc_weakref rc_weakref;
/* An internal callback (WeakValueDictionary, WeakSet, finalize) runs instead
 * of / before the user callback. */
typedef void (*rc_weakref_ccallback)(rc_weakref *wr, void *ctx);
struct rc_weakref {
    RC_OBJECT_HEAD;
    rc_object *wr_object;       /* weak: the target, NULL once cleared */
    rc_object *wr_callback;     /* strong: a closure, or NULL */
    rc_weakref *wr_prev;        /* in the target's list (newest first) */
    rc_weakref *wr_next;
    rc_weakref_ccallback wr_ccallback;
    void *wr_ctx;
};
RC_INTERNAL rc_weakref *_rc_weakref_new_c(rc_site *site, rc_object *target,
                                          rc_weakref_ccallback cb, void *ctx);
/* The head of target's weakref list (newest first), or NULL. */
RC_INTERNAL rc_weakref *_rc_weakref_list(rc_object *target);
/* Clear one weakref: unlink it from its target's list and set wr_object to
 * NULL. The callback is kept. */
RC_INTERNAL void _rc_weakref_clear(rc_weakref *wr);
/* Call wr's callbacks (internal, then user) as a dead weakref. */
RC_INTERNAL void _rc_weakref_fire(rc_weakref *wr);
/* Refcount death of target: clear all its weakrefs, then call the callbacks
 * of those still alive, newest first (PyObject_ClearWeakRefs). */
RC_INTERNAL void _rc_weakrefs_on_dealloc(rc_object *target);
RC_INTERNAL void _rc_weakref_begin_teardown(void); /* destroy stops unlinking */
RC_INTERNAL void _rc_weakref_shutdown(void);
RC_INTERNAL void _rc_finalizers_at_shutdown(void);
static inline bool _rc_is_weakref(const rc_object *o)
{
    return (o->ob_type->tp_flags & RC_TPF_WEAKREF) != 0;
}

/* ---- allocation tracing (trace.c) ------------------------------------------ */

/* Called for every object allocated while REG.trace.tracing: sets
 * RC_OBF_TRACED and records the object's size and traceback. */
RC_INTERNAL void _rc_trace_alloc(rc_object *o);
/* Called when an object with RC_OBF_TRACED is freed (before poisoning). */
RC_INTERNAL void _rc_trace_free(rc_object *o);
/* rc_shutdown: stop tracing and release the tracer's memory. */
RC_INTERNAL void _rc_trace_shutdown(void);

/* ---- built-ins ------------------------------------------------------------ */

RC_INTERNAL void _rc_builtins_init(void);
/* rc_sizeof of one object without its gc head share (per type). */
RC_INTERNAL size_t _rc_builtin_extra_size(rc_object *o);

#endif /* REFSCOPE_INTERNAL_H */
