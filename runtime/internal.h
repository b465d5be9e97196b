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
 *     [rc_gchead 8 B, tracked types only][rc_object 16 B][type's fields ...]
 *     ^ block start                        ^ rc_object *
 *
 * Prefixes: rc_ public, _rc_ shared between runtime files, plain names for
 * statics.
 *
 * Hot paths are inline here, so that an object's birth and death cost no
 * call between files: the allocator's per-block fast paths, the collector's
 * track/untrack and generation-0 count, the tracer's counters, and the
 * field-table traversal the collector's passes specialise. The files named
 * above still own the state and invariants these touch.
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

/* Collector links (registry.h, rc_gchead): 32-bit offsets into the
 * collector's region, bit 0 a flag. _rc_gc_ptr ignores the flag. */
static inline rc_gchead *_rc_gc_ptr(uint32_t link)
{
    return (rc_gchead *)(uintptr_t)(REG.gc.link_base +
                                    ((uint64_t)(link & ~RC_GC_LINK_FLAG) << RC_GC_LINK_SHIFT));
}
static inline uint32_t _rc_gc_link(const rc_gchead *g)
{
    return (uint32_t)(((uint64_t)(uintptr_t)g - REG.gc.link_base) >> RC_GC_LINK_SHIFT);
}

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
 * hold its freelist link after the object head; GC requests to 24 so the
 * object head is always inside the block.
 */
static inline void *_rc_mem_alloc(size_t size, unsigned kind, bool *large);
/* Free a block from _rc_mem_alloc. The caller has already poisoned the
 * object head; the allocator writes only the freelist link (offset 0 in GC
 * pools, offset 16 in PLAIN pools) or frees the large node. */
static inline void _rc_mem_free(void *block, bool large);
/* Usable bytes of the block holding `block` (its size class, or the large
 * size). */
RC_INTERNAL size_t _rc_mem_block_size(const void *block, bool large);
/* Return every arena and large block to the system (rc_shutdown). */
RC_INTERNAL void _rc_mem_release_all(void);
/* The collector's region (alloc.c): reserved on first use, sets
 * REG.gc.link_base and region_size; returns n list heads in it (the same
 * ones at every call: gc.c calls it once per rc_init). */
RC_INTERNAL rc_gchead *_rc_gc_region_heads(size_t n);
/* Visit every live object (refcnt != FREED) in arenas and the large list.
 * The visitor must not free; it may allocate if it initialises each new
 * object's head before returning (as rc_new_at does). */
typedef void (*rc_heap_visit_fn)(rc_object *o, void *arg);
RC_INTERNAL void _rc_mem_walk(rc_heap_visit_fn fn, void *arg);

/*
 * The two functions above are inline: every object's birth and death runs
 * them, and a call into alloc.c would cost as much as the work. What is
 * here is obmalloc's pymalloc_alloc / pymalloc_free fast paths: a block
 * from the first pool of usedpools[kind][class] (its free list, else the
 * never-used tail), and a block back onto its pool's free list. Everything
 * else -- no usable pool, a pool that empties or stops being full, large
 * blocks, bad frees -- is alloc.c's, which also owns the lists and their
 * invariants (see the comment at its top).
 */
#define RC_ALLOC_NKINDS 4u            /* usedpools is indexed by kind; FREE (0) stays empty */
#define RC_PLAIN_MIN_SIZE 24u         /* object head (16) + freelist link (8) */
#define RC_GC_MIN_SIZE 24u            /* gc head + object head: the walk reads the head at +8 */
#define RC_PLAIN_LINK_OFFSET 16u      /* the first word after the object head */
#define RC_POOL_OF(p) ((rc_pool *)((uintptr_t)(p) & ~(uintptr_t)(RC_POOL_SIZE - 1)))

/* usedpools[kind][class]: pools of that kind and class with a free block. */
RC_INTERNAL extern rc_pool *_rc_usedpools[RC_ALLOC_NKINDS][RC_NUM_CLASSES];
/* The slow paths, in alloc.c. */
RC_INTERNAL void *_rc_mem_alloc_large(size_t size, unsigned kind);
RC_INTERNAL void *_rc_mem_alloc_new_pool(unsigned kind, unsigned idx);
RC_INTERNAL void _rc_mem_free_large(void *block);
RC_INTERNAL _Noreturn void _rc_mem_bad_free(void *block);
RC_INTERNAL void _rc_pool_emptied(rc_pool *pool, bool was_full);
RC_INTERNAL void _rc_pool_refilled(rc_pool *pool);

static inline size_t _rc_class_size(unsigned idx) { return ((size_t)idx + 1) * RC_ALIGN; }

/* Where a free block of this kind keeps its freelist link. */
static inline void **_rc_link_of(void *block, unsigned kind)
{
    return (void **)((char *)block + (kind == RC_KIND_PLAIN ? RC_PLAIN_LINK_OFFSET : 0));
}

static inline bool _rc_pool_is_full(const rc_pool *pool)
{
    return pool->freeblock == NULL && pool->nextoffset > pool->maxnextoffset;
}

/* Hand out a block of `pool`, the head of usedpools[kind][idx]. */
static inline void *_rc_pool_alloc(rc_pool *pool, unsigned kind, unsigned idx)
{
    size_t bsize = _rc_class_size(idx);
    void *block = pool->freeblock;
    if (RC_LIKELY(block != NULL)) {
        pool->freeblock = *_rc_link_of(block, kind);
    } else {
        block = (char *)pool + pool->nextoffset;
        pool->nextoffset += (uint32_t)bsize;
    }
    pool->nused++;
    if (RC_UNLIKELY(_rc_pool_is_full(pool))) { /* full pools leave the list */
        _rc_usedpools[kind][idx] = pool->nextpool;
        if (pool->nextpool)
            pool->nextpool->prevpool = NULL;
        pool->nextpool = NULL;
    }
    rc_alloc_stats *st = &REG.alloc;
    st->blocks_in_use++;
    st->blocks_by_class[idx]++;
    st->small_bytes += bsize;
    return block;
}

static inline void *_rc_mem_alloc(size_t size, unsigned kind, bool *large)
{
    if (RC_UNLIKELY(size > RC_SMALL_MAX)) {
        *large = true;
        return _rc_mem_alloc_large(size, kind);
    }
    *large = false;
    size_t min = kind == RC_KIND_PLAIN ? RC_PLAIN_MIN_SIZE
                 : kind == RC_KIND_GC  ? RC_GC_MIN_SIZE
                                       : 1;
    if (size < min)
        size = min;
    unsigned idx = (unsigned)((size - 1) >> 3);
    rc_pool *pool = _rc_usedpools[kind][idx];
    if (RC_UNLIKELY(pool == NULL))
        return _rc_mem_alloc_new_pool(kind, idx);
    return _rc_pool_alloc(pool, kind, idx);
}

/* _rc_mem_free for a caller that knows the block's kind (the pool's). */
static inline void _rc_mem_free_kind(void *block, bool large, unsigned kind)
{
    if (RC_UNLIKELY(large)) {
        _rc_mem_free_large(block);
        return;
    }
    rc_pool *pool = RC_POOL_OF(block);
    /* A pool given back to its arena has magic 0 and the cached empty pool
     * has nused 0: this catches double frees that empty a pool, and
     * pointers that never came from the allocator. */
    if (RC_UNLIKELY(pool->magic != RC_POOL_MAGIC || pool->nused == 0))
        _rc_mem_bad_free(block);
    unsigned idx = pool->szidx;
    bool was_full = _rc_pool_is_full(pool);
    *_rc_link_of(block, kind) = pool->freeblock;
    pool->freeblock = block;
    rc_alloc_stats *st = &REG.alloc;
    st->blocks_in_use--;
    /* (nused between the two adjacent counters keeps GCC from pairing
     * them into slower SSE code.) */
    uint32_t nused = --pool->nused;
    st->small_bytes -= _rc_class_size(idx);
    st->blocks_by_class[idx]--;
    if (RC_UNLIKELY(nused == 0))
        _rc_pool_emptied(pool, was_full);
    else if (RC_UNLIKELY(was_full))
        _rc_pool_refilled(pool);
}

static inline void _rc_mem_free(void *block, bool large)
{
    _rc_mem_free_kind(block, large, large ? 0 : RC_POOL_OF(block)->kind);
}

/* ---- objects (object.c) -------------------------------------------------- */

/* _rc_dealloc (declared in rc.h, for its inline rc_decref) is called when
 * the refcount reaches zero. */

/*
 * Type shapes. rc_type.tp_reserved is runtime-private ("leave zero"); when a
 * type is registered the runtime caches there the shape of its field table
 * that the hot paths (traversal, clearing) can use without interpreting the
 * table: when the type's strong references are n RC_FIELD_REF fields
 * (1 <= n <= 255) at consecutive pointer slots from byte offset `first`
 * (< 65536), in table order, with only WEAK fields besides, the shape is
 * RC_SHAPE(n, first); otherwise 0 and the table is read. Readers ignore it.
 */
#define RC_SHAPE(n, first) ((uint32_t)(n) | ((uint32_t)(first) << 16))
#define RC_SHAPE_NREFS(s) ((s) & 0xFFu)
#define RC_SHAPE_FIRST(s) ((s) >> 16)
static inline uint32_t _rc_type_shape(const rc_type *t) { return t->tp_reserved; }
/* The shape of a field table (0: not a simple one). */
RC_INTERNAL uint32_t _rc_fields_shape(const rc_field *fields);
/* Visit every strong reference of o (the field table). Stops early and
 * returns the visitor's value when it returns non-zero. */
typedef int (*rc_visit_fn)(rc_object *ref, void *arg);
RC_INTERNAL int _rc_traverse(rc_object *o, rc_visit_fn visit, void *arg);

/*
 * _rc_traverse's body, for the collector's passes: called with a constant
 * visitor, the compiler inlines the visitor into the loop (no indirect call
 * per reference), which is most of a collection's time. Same contract as
 * _rc_traverse; everything else calls that.
 */
static inline __attribute__((always_inline)) int _rc_traverse_inline(rc_object *o,
                                                                     rc_visit_fn visit,
                                                                     void *arg)
{
    int r;
    uint32_t shape = _rc_type_shape(o->ob_type);
    if (shape) {
        rc_object **slots = (rc_object **)((char *)o + RC_SHAPE_FIRST(shape));
        for (unsigned i = 0, n = RC_SHAPE_NREFS(shape); i < n; i++)
            if (slots[i] && (r = visit(slots[i], arg)))
                return r;
        return 0;
    }
    const rc_field *f = o->ob_type->fields;
    if (!f)
        return 0;
    char *base = (char *)o;
    for (; f->kind != RC_FIELD_END; f++) {
        switch (f->kind) {
        case RC_FIELD_REF: {
            rc_object *p = *(rc_object **)(base + f->offset);
            if (p && (r = visit(p, arg)))
                return r;
            break;
        }
        case RC_FIELD_REF_ARRAY:
        case RC_FIELD_INLINE_ARRAY:
        case RC_FIELD_NAMED_ARRAY: {
            rc_object **items = f->kind == RC_FIELD_REF_ARRAY ? *(rc_object ***)(base + f->offset)
                                                              : (rc_object **)(base + f->offset);
            size_t n = items ? *(const size_t *)(base + f->len_offset) : 0;
            for (size_t i = 0; i < n; i++)
                if (items[i] && (r = visit(items[i], arg)))
                    return r;
            break;
        }
        case RC_FIELD_DICT: {
            rc_dict_entry *e = *(rc_dict_entry **)(base + f->offset);
            size_t n = e ? *(const size_t *)(base + f->len_offset) : 0;
            for (size_t i = 0; i < n; i++)
                if (e[i].value && (r = visit(e[i].value, arg)))
                    return r;
            break;
        }
        default: /* RC_FIELD_WEAK: not a reference the collector counts */
            break;
        }
    }
    return 0;
}
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
RC_INTERNAL void _rc_gc_shutdown(void);
/* The automatic collection, when generation 0's count has passed its
 * threshold (the rest of the decision is here). */
RC_INTERNAL void _rc_gc_collect_due(void);

/*
 * The collector's per-object hooks are inline: every tracked allocation and
 * every tracked death runs them. They keep gc.c's invariants (see gc.c:
 * every tracked object is on exactly one list, its generation bits say
 * which, generations[].nobjects counts them).
 */
#define RC_GC_PREV_MASK RC_GC_LINK_FLAG /* flag bit of gc_prev during a collection */

/* memstats.c (also declared in trace.h for the runtime's sources) */
RC_INTERNAL void _rc_timeline_tick(void);

/* generations[gen].nobjects, gen 3 being the permanent generation, which
 * follows generations[2] in rc_gc_state: one address computation, no
 * branch, for every death of a tracked object. */
_Static_assert(offsetof(rc_gc_state, permanent) ==
                   offsetof(rc_gc_state, generations) + 3 * sizeof(rc_generation),
               "the permanent generation follows generations[2]");
static inline uint64_t *_rc_gen_count(unsigned gen)
{
    return (uint64_t *)((char *)&REG.gc.generations[0].nobjects + gen * sizeof(rc_generation));
}

/* Count an allocation of a tracked object in generation 0 and run an
 * automatic collection when due. Called before the memory is allocated. */
static inline void _rc_gc_on_alloc(void)
{
    if (RC_UNLIKELY(--REG.trace.timeline_countdown <= 0))
        _rc_timeline_tick();
    if (RC_UNLIKELY(++REG.gc.generations[0].count >
                    (uint64_t)REG.gc.generations[0].threshold))
        _rc_gc_collect_due();
}

/* A tracked object died: generation 0's count goes down (if > 0). */
static inline void _rc_gc_on_free(void)
{
    uint64_t *count = &REG.gc.generations[0].count;
    *count -= *count > 0; /* no branch: most deaths find it > 0 */
}

/* Append o to generation 0 and count it there; the caller sets o's flags
 * (RC_OBF_TRACKED, generation bits 0). */
static inline void _rc_gc_link_young(rc_object *o)
{
    /* Generation 0's head is the first of the region (gc.c, HEAD_GEN0): its
     * address is the base and its link 0. Head links carry no flag. */
    uintptr_t base = (uintptr_t)REG.gc.link_base;
    rc_gchead *g = AS_GC(o), *head = (rc_gchead *)base;
    uint32_t lg = (uint32_t)(((uintptr_t)g - base) >> RC_GC_LINK_SHIFT), llast = head->gc_prev;
    g->gc_prev = llast;
    ((rc_gchead *)(base + ((uintptr_t)llast << RC_GC_LINK_SHIFT)))->gc_next = lg;
    g->gc_next = 0;
    head->gc_prev = lg;
    REG.gc.tracked++;
    REG.gc.generations[0].nobjects++;
}

/* Append o to generation 0. */
static inline void _rc_gc_track(rc_object *o)
{
    o->ob_info = (o->ob_info & ~RC_OBF_GEN_MASK) | RC_OBF_TRACKED;
    _rc_gc_link_young(o);
}

/* Unlink o from whatever list holds it (flag bits of its neighbours' gc_prev
 * are kept, as gc.c's list_remove does) and uncount it. For an object being
 * deallocated: its gc head is about to become free-list space, so its own
 * links are left as they are. */
static inline void _rc_gc_untrack_dying(rc_object *o)
{
    rc_gchead *g = AS_GC(o);
    /* (gc_next has no flag here: it has one only inside move_unreachable,
     * where nothing dies.) */
    uintptr_t base = (uintptr_t)REG.gc.link_base;
    uint32_t lprev = g->gc_prev & ~RC_GC_PREV_MASK, lnext = g->gc_next;
    rc_gchead *next = (rc_gchead *)(base + ((uintptr_t)lnext << RC_GC_LINK_SHIFT));
    ((rc_gchead *)(base + ((uintptr_t)lprev << RC_GC_LINK_SHIFT)))->gc_next = lnext;
    next->gc_prev = (next->gc_prev & RC_GC_PREV_MASK) | lprev;
    o->ob_info &= ~RC_OBF_TRACKED;
    REG.gc.tracked--;
    (*_rc_gen_count(_rc_gen(o)))--;
}

/* The same for an object that lives on untracked: its links are zeroed. */
static inline void _rc_gc_untrack(rc_object *o)
{
    _rc_gc_untrack_dying(o);
    AS_GC(o)->gc_next = 0;
    AS_GC(o)->gc_prev = 0;
}

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

/* trace.c: record o's traceback (nframes > 1); forget it (o is freed). */
RC_INTERNAL void _rc_trace_record_traceback(rc_object *o);
RC_INTERNAL void _rc_trace_forget(const rc_object *o);

/* The block the object occupies: what it costs, the same at alloc and free.
 * This is _rc_mem_block_size inlined for small blocks (the hot path): a
 * block never straddles a pool, so the pool header -- and its size class --
 * is found by masking any address inside the block, the object head
 * included, whatever the kind (registry.h: pools are aligned to their size). */
static inline size_t _rc_traced_size(const rc_object *o)
{
    if (RC_UNLIKELY(o->ob_info & RC_OBF_LARGE))
        return _rc_mem_block_size(_rc_is_gc(o) ? (const void *)AS_GC(o) : (const void *)o, true);
    return _rc_class_size(RC_POOL_OF(o)->szidx);
}

/* Called for every object allocated while REG.trace.tracing: sets
 * RC_OBF_TRACED and records the object's size and traceback. Inline (with
 * the next one): tracing costs a few counters per object, as tracemalloc's
 * hooks do, unless tracebacks deeper than the site are kept. */
static inline void _rc_trace_alloc_counters(rc_object *o)
{
    rc_trace_state *t = &REG.trace;
    uint64_t cur = t->current + _rc_traced_size(o);
    o->ob_info |= RC_OBF_TRACED;
    t->current = cur;
    if (cur > t->peak)
        t->peak = cur;
    t->ntraced++;
}

static inline void _rc_trace_alloc(rc_object *o)
{
    _rc_trace_alloc_counters(o);
    if (RC_UNLIKELY(REG.trace.nframes > 1))
        _rc_trace_record_traceback(o);
}

/* Called when an object with RC_OBF_TRACED is freed (before poisoning). */
static inline void _rc_trace_free(rc_object *o)
{
    rc_trace_state *t = &REG.trace;
    if (RC_UNLIKELY(!t->tracing))
        return; /* a stale flag cannot happen: stop clears them; be safe */
    t->current -= _rc_traced_size(o);
    t->ntraced--;
    if (RC_UNLIKELY(t->objects_count != 0))
        _rc_trace_forget(o);
}
/* _rc_trace_free of a small block when tracing keeps no per-object
 * records (one frame): the counters only, no call. Returns false, having
 * done nothing, when the full _rc_trace_free is needed. */
static inline bool _rc_trace_free_small(rc_object *o)
{
    rc_trace_state *t = &REG.trace;
    if (RC_UNLIKELY(!t->tracing || t->objects_count != 0))
        return false;
    t->current -= _rc_class_size(RC_POOL_OF(o)->szidx);
    t->ntraced--;
    return true;
}
/* rc_shutdown: stop tracing and release the tracer's memory. */
RC_INTERNAL void _rc_trace_shutdown(void);

/* ---- built-ins ------------------------------------------------------------ */

RC_INTERNAL void _rc_builtins_init(void);
/* rc_sizeof of one object without its gc head share (per type). */
RC_INTERNAL size_t _rc_builtin_extra_size(rc_object *o);

#endif /* REFSCOPE_INTERNAL_H */
