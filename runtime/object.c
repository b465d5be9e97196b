/*
 * Objects: allocation, reference counting, deallocation.
 *
 * Deallocation runs in CPython's order for a refcount death
 * (subtype_dealloc):
 *
 *   1. the PEP 442 finalizer, once (the object is briefly alive again with
 *      refcount 1; if the finalizer stored a new reference, the object is
 *      resurrected and deallocation stops);
 *   2. weakrefs are cleared, then their callbacks run, newest first;
 *   3. the legacy (tp_del-style) finalizer, which may also resurrect;
 *   4. every strong reference in the field table is dropped;
 *   5. type->destroy releases non-object resources;
 *   6. the block goes back to the allocator with its head poisoned
 *      (ob_refcnt = RC_REFCNT_FREED) so readers and debug checks can tell
 *      it is dead.
 *
 * Deep chains: step 4 can free a child which frees its child... A million
 * nested lists would overflow the C stack, so past TRASHCAN_DEPTH nested
 * deallocations further tracked objects are parked on a pending list and
 * freed iteratively by the outermost call (CPython's trashcan idea).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRASHCAN_DEPTH 50 /* nested deallocations before parking */
#define QUARANTINE 4096   /* freed blocks held back while debug checks are on */

/* ---- allocation --------------------------------------------------------------- */

/* Zero the n bytes at p, n <= 64, where the block has room up to the next
 * multiple of 8 (blocks are multiples of 16): a few stores instead of a
 * call to memset for the usual small object. */
static inline void zero_small(void *p, size_t n)
{
    uint64_t *w = p;
    switch ((n + 7) >> 3) {
    case 8: w[7] = 0; __attribute__((fallthrough));
    case 7: w[6] = 0; __attribute__((fallthrough));
    case 6: w[5] = 0; __attribute__((fallthrough));
    case 5: w[4] = 0; __attribute__((fallthrough));
    case 4: w[3] = 0; __attribute__((fallthrough));
    case 3: w[2] = 0; __attribute__((fallthrough));
    case 2: w[1] = 0; __attribute__((fallthrough));
    case 1: w[0] = 0; __attribute__((fallthrough));
    default: break;
    }
}

/* rc_new_at in full: every check, then _rc_alloc_object. */
static __attribute__((noinline)) void *new_checked(rc_type *type, size_t size, rc_site *site)
{
    rc_autoinit();
    if (!type) {
        _rc_error("rc_new: NULL type");
        return NULL;
    }
    if (!(type->tp_flags & RC_TPF_REGISTERED))
        _rc_register_type(type);
    if (size < sizeof(rc_object)) {
        _rc_error("rc_new: size %zu of type %s is smaller than the object head", size,
                  type->name ? type->name : "?");
        return NULL;
    }
    return _rc_alloc_object(type, size, _rc_site(site));
}

/* Tracing's counters for a new object (nframes is 1 on the fast path, so
 * there is no traceback to record). Out of line, so rc_new_at's fast path
 * keeps everything in scratch registers. */
static __attribute__((noinline)) rc_object *trace_new(rc_object *o)
{
    _rc_trace_alloc_counters(o);
    return o;
}

/*
 * rc_new_at's fast path is the common case: the runtime initialised, a
 * registered tracked type, an instance of at most 80 bytes, a known site,
 * no traceback to capture (tracing off, or on with one frame), no
 * collection or timeline sample due and a pool with room.
 * It is all inline (no call, so nothing to save on entry); anything else
 * goes through new_checked and _rc_alloc_object, which do the same work in
 * full.
 */
void *rc_new_at(rc_type *type, size_t size, rc_site *site)
{
    if (RC_UNLIKELY(!_rc_initialized || !type || !site || !site->id))
        return new_checked(type, size, site);
    if (RC_UNLIKELY((type->tp_flags & (RC_TPF_REGISTERED | RC_TPF_GC)) !=
                        (RC_TPF_REGISTERED | RC_TPF_GC) ||
                    size < sizeof(rc_object) || size > sizeof(rc_object) + 64))
        return new_checked(type, size, site);
    rc_generation *gen0 = &REG.gc.generations[0];
    if (RC_UNLIKELY((REG.trace.tracing && REG.trace.nframes > 1) ||
                    REG.trace.timeline_countdown <= 1 ||
                    (gen0->count >= (uint64_t)gen0->threshold && REG.gc.enabled &&
                     gen0->threshold)))
        return new_checked(type, size, site);
    size_t bsize = size + sizeof(rc_gchead);
    unsigned idx = (unsigned)((bsize - 1) >> 3); /* bsize >= 24: no minimum to apply */
    rc_pool *pool = _rc_usedpools[RC_KIND_GC][idx];
    if (RC_UNLIKELY(!pool))
        return new_checked(type, size, site);
    /* What _rc_gc_on_alloc does when nothing is due. */
    REG.trace.timeline_countdown--;
    gen0->count++;
    rc_object *o = FROM_GC(_rc_pool_alloc(pool, RC_KIND_GC, idx));
    zero_small(o + 1, size - sizeof(rc_object));
    o->ob_refcnt = 1;
    o->ob_info = (site->id << RC_SITE_SHIFT) | RC_OBF_TRACKED; /* generation 0 */
    o->ob_type = type;
    _rc_gc_link_young(o);
    if (RC_UNLIKELY(REG.trace.tracing))
        return trace_new(o); /* a tail call: nothing to keep across a call here */
    return o;
}

rc_object *_rc_alloc_object(rc_type *type, size_t size, uint32_t site)
{
    bool gc = _rc_type_is_gc(type);
    bool large;
    if (gc) {
        _rc_gc_on_alloc(); /* may collect: before the new object exists */
        size += sizeof(rc_gchead);
    }
    void *block = _rc_mem_alloc(size, gc ? RC_KIND_GC : RC_KIND_PLAIN, &large);
    rc_object *o = gc ? FROM_GC(block) : (rc_object *)block;
    /* The heads are written below (the gc head by _rc_gc_track); the rest
     * of the instance starts zeroed. */
    size_t body = size - (size_t)((char *)(o + 1) - (char *)block);
    if (RC_LIKELY(!large && body <= 64))
        zero_small(o + 1, body);
    else
        memset(o + 1, 0, body);
    o->ob_refcnt = 1;
    o->ob_info = (site << RC_SITE_SHIFT) | (large ? RC_OBF_LARGE : 0);
    o->ob_type = type;
    if (gc)
        _rc_gc_track(o);
    if (RC_UNLIKELY(REG.trace.tracing))
        _rc_trace_alloc(o);
    return o;
}

/* ---- diagnostics ---------------------------------------------------------------- */

/* Object names use the file's base name: "Node@0x55d0c0a4e2b0 (leaky.c:42)". */
static const char *base_name(const char *p)
{
    if (!p)
        return "?";
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

const char *rc_type_name(const rc_object *o)
{
    if (!o || !o->ob_type || !o->ob_type->name)
        return "?";
    return o->ob_type->name;
}

char *rc_describe(const rc_object *o, char *buf, size_t n)
{
    if (!o) {
        snprintf(buf, n, "NULL");
        return buf;
    }
    uint32_t site = _rc_site_id(o);
    if (site && site < REG.nsites)
        snprintf(buf, n, "%s@%p (%s:%u)", rc_type_name(o), (const void *)o,
                 base_name(REG.sites[site].file), REG.sites[site].line);
    else
        snprintf(buf, n, "%s@%p (unknown site)", rc_type_name(o), (const void *)o);
    return buf;
}

/* Aborts unless o looks like a live object. */
static void check_live(const rc_object *o, const char *op)
{
    char msg[96];
    if (!o)
        _rc_fatal("%s(NULL)", op);
    if (o->ob_refcnt == RC_REFCNT_FREED) {
        snprintf(msg, sizeof msg, "%s on a freed object", op);
        _rc_fatal_object(msg, o);
    }
    if (o->ob_refcnt >= 0x80000000u) {
        snprintf(msg, sizeof msg, "%s on an object with a corrupt refcount %u", op,
                 o->ob_refcnt);
        _rc_fatal_object(msg, o);
    }
}

static _Noreturn __attribute__((noinline, cold)) void bad_decref(const rc_object *o)
{
    if (o->ob_refcnt == RC_REFCNT_FREED)
        _rc_fatal_object("rc_decref on a freed object", o);
    if (o->ob_refcnt == 0)
        _rc_fatal_object("rc_decref below zero (refcount already 0)", o);
    char msg[96];
    snprintf(msg, sizeof msg, "rc_decref of an object with a corrupt refcount %u", o->ob_refcnt);
    _rc_fatal_object(msg, o);
}

/* ---- reference counting --------------------------------------------------------- */

static __attribute__((noinline, cold)) void incref_checked(rc_object *o)
{
    check_live(o, "rc_incref");
}

rc_object *(rc_incref)(rc_object *o)
{
    if (RC_UNLIKELY(REG.debug_checks))
        incref_checked(o);
    o->ob_refcnt++;
    return o;
}

void(rc_decref)(rc_object *o)
{
    uint32_t rc = o->ob_refcnt;
    /* rc == 0 (already dying or dead) or >= 2^31 (freed poison, corruption) */
    if (RC_UNLIKELY(rc - 1u >= 0x7FFFFFFFu))
        bad_decref(o);
    if ((o->ob_refcnt = rc - 1) == 0)
        _rc_dealloc(o);
}

void(rc_xdecref)(rc_object *o)
{
    if (o)
        (rc_decref)(o);
}

intptr_t(rc_refcount)(const rc_object *o)
{
    if (!o)
        return 0;
    return (intptr_t)(int32_t)o->ob_refcnt;
}

void rc_set(rc_object **slot, rc_object *value)
{
    rc_object *old = *slot;
    if (value)
        (rc_incref)(value);
    *slot = value;
    if (old)
        (rc_decref)(old);
}

/* ---- the field table ------------------------------------------------------------ */

static inline size_t field_len(const char *base, const rc_field *f)
{
    return *(const size_t *)(base + f->len_offset);
}

int _rc_traverse(rc_object *o, rc_visit_fn visit, void *arg)
{
    return _rc_traverse_inline(o, visit, arg);
}

uint32_t _rc_fields_shape(const rc_field *fields)
{
    uint32_t n = 0, first = 0;
    if (!fields)
        return 0;
    for (const rc_field *f = fields; f->kind != RC_FIELD_END; f++) {
        if (f->kind == RC_FIELD_WEAK)
            continue;
        if (f->kind != RC_FIELD_REF || n == 255)
            return 0;
        if (n == 0)
            first = f->offset;
        else if (f->offset != first + n * (uint32_t)sizeof(rc_object *))
            return 0;
        n++;
    }
    if (n == 0 || first > 0xFFFFu || first % sizeof(rc_object *) != 0)
        return 0;
    return RC_SHAPE(n, first);
}

/* ---- the trashcan ------------------------------------------------------------- */

/* Deaths nested inside the clearing of a dying object's references (the
 * only way one death causes another), and the objects parked when that
 * went too deep (see the comment at the top). */
static unsigned dealloc_depth;
static rc_object *trash_pending; /* parked objects, linked through their gc heads (8 bytes:
                                    a whole pointer; parked objects are untracked) */
_Static_assert(sizeof(rc_gchead) == sizeof(rc_object *), "a gc head holds a pointer");

static void drain_trash(void);

/* A reference dropped by clearing code reached 0: the death is one level
 * deeper; the outermost one frees what deeper ones parked. */
static __attribute__((noinline)) void release_dying(rc_object *p)
{
    dealloc_depth++;
    _rc_dealloc(p);
    if (--dealloc_depth == 0 && RC_UNLIKELY(trash_pending != NULL))
        drain_trash();
}

/* rc_xdecref's count for a reference a dying or cleared object drops:
 * true when p's count reached 0 (the caller deallocates p). */
static inline __attribute__((always_inline)) bool drop(rc_object *p)
{
    if (!p)
        return false;
    uint32_t rc = p->ob_refcnt;
    if (RC_UNLIKELY(rc - 1u >= 0x7FFFFFFFu))
        bad_decref(p);
    p->ob_refcnt = rc - 1u;
    return rc == 1u;
}

static inline __attribute__((always_inline)) void release(rc_object *p)
{
    if (drop(p))
        release_dying(p);
}

/* The references of a simple shape, cleared as _rc_clear_refs does. */
static inline void clear_shape(rc_object *o, uint32_t shape)
{
    rc_object **slot = (rc_object **)((char *)o + RC_SHAPE_FIRST(shape));
    rc_object **end = slot + RC_SHAPE_NREFS(shape);
    do {
        rc_object *p = *slot;
        *slot = NULL;
        release(p);
    } while (++slot < end); /* a shape has at least one reference */
}

/* Drop every strong reference: each slot is set to NULL *before* its old
 * value is released, so code run by that release never sees a dangling
 * slot. Counts are left alone (types tolerate NULL items; destroy still
 * knows how much to free). */
void _rc_clear_refs(rc_object *o)
{
    uint32_t shape = _rc_type_shape(o->ob_type);
    if (shape) {
        clear_shape(o, shape);
        return;
    }
    const rc_field *f = o->ob_type->fields;
    if (!f)
        return;
    char *base = (char *)o;
    for (; f->kind != RC_FIELD_END; f++) {
        switch (f->kind) {
        case RC_FIELD_REF: {
            rc_object **slot = (rc_object **)(base + f->offset);
            rc_object *p = *slot;
            *slot = NULL;
            release(p);
            break;
        }
        case RC_FIELD_REF_ARRAY:
        case RC_FIELD_INLINE_ARRAY:
        case RC_FIELD_NAMED_ARRAY: {
            rc_object **items = f->kind == RC_FIELD_REF_ARRAY ? *(rc_object ***)(base + f->offset)
                                                              : (rc_object **)(base + f->offset);
            size_t n = items ? field_len(base, f) : 0;
            for (size_t i = 0; i < n; i++) {
                rc_object *p = items[i];
                items[i] = NULL;
                release(p);
                /* A release may have run code that resized the array. */
                if (f->kind == RC_FIELD_REF_ARRAY) {
                    items = *(rc_object ***)(base + f->offset);
                    if (!items)
                        break;
                    if (field_len(base, f) < n)
                        n = field_len(base, f);
                }
            }
            break;
        }
        case RC_FIELD_DICT: {
            size_t n = field_len(base, f);
            for (size_t i = 0; i < n; i++) {
                rc_dict_entry *e = *(rc_dict_entry **)(base + f->offset);
                if (!e || i >= field_len(base, f))
                    break;
                rc_object *p = e[i].value;
                e[i].value = NULL;
                release(p);
            }
            break;
        }
        default:
            break;
        }
    }
}

/* ---- deallocation --------------------------------------------------------------- */

void _rc_call_finalizer(rc_object *o)
{
    if (!o->ob_type->finalize || (o->ob_info & RC_OBF_FINALIZED))
        return;
    o->ob_info |= RC_OBF_FINALIZED;
    o->ob_type->finalize(o);
}

/* Run `fn` on an object whose refcount reached 0, with the object briefly
 * alive (refcount 1, tracked). Returns true if it was resurrected. */
static bool call_with_resurrection(rc_object *o, void (*fn)(rc_object *), bool finalizer)
{
    bool gc = _rc_is_gc(o);
    o->ob_refcnt = 1;
    if (gc)
        _rc_gc_track(o);
    if (finalizer)
        _rc_call_finalizer(o);
    else
        fn(o);
    if (--o->ob_refcnt != 0)
        return true; /* resurrected: stays tracked, as in CPython */
    if (gc && (o->ob_info & RC_OBF_TRACKED))
        _rc_gc_untrack(o);
    return false;
}

/* Quarantined blocks: the block start, with bit 0 set for a large block
 * (recorded at free time: the object's type may be gone by the time the
 * block leaves the quarantine). */
static uintptr_t quarantine[QUARANTINE];
static size_t quarantine_next;

/* Debug checks: poison the whole block and hold it back, so a later use
 * finds the poison, not a new object; the block QUARANTINE frees ago is
 * freed instead. */
static __attribute__((noinline)) void quarantine_block(void *block, bool large, bool gc,
                                                       rc_object *o)
{
    size_t size = _rc_mem_block_size(block, large);
    size_t head = (size_t)((char *)(o + 1) - (char *)block);
    if (size > head)
        memset((char *)block + head, 0xDF, size - head);
    if (gc)
        memset(block, 0xDF, sizeof(rc_gchead));
    uintptr_t old = quarantine[quarantine_next];
    quarantine[quarantine_next] = (uintptr_t)block | (large ? 1u : 0u);
    quarantine_next = (quarantine_next + 1) % QUARANTINE;
    if (old)
        _rc_mem_free((void *)(old & ~(uintptr_t)1), (old & 1u) != 0);
}

/* Step 6: poison the head and give the block back. `gc` is whether the
 * type is tracked (the caller knows). */
static void free_block_slow(rc_object *o, bool gc)
{
    bool large = (o->ob_info & RC_OBF_LARGE) != 0;
    void *block = gc ? (void *)AS_GC(o) : (void *)o;
    if (o->ob_info & RC_OBF_TRACED)
        _rc_trace_free(o);
    /* Poison: the head keeps its site and type for diagnostics. */
    o->ob_refcnt = RC_REFCNT_FREED;
    o->ob_info &= ~(RC_OBF_TRACKED | RC_OBF_GARBAGE | RC_OBF_WEAKREFD);
    if (REG.debug_checks)
        quarantine_block(block, large, gc, o);
    else
        _rc_mem_free_kind(block, large, gc ? RC_KIND_GC : RC_KIND_PLAIN);
}

/* The same for the usual block: small, no debug checks, traced or not. */
static inline __attribute__((always_inline)) void free_block(rc_object *o, bool gc)
{
    if (RC_UNLIKELY((o->ob_info & RC_OBF_LARGE) || REG.debug_checks)) {
        free_block_slow(o, gc);
        return;
    }
    if (RC_UNLIKELY(o->ob_info & RC_OBF_TRACED) && !_rc_trace_free_small(o)) {
        free_block_slow(o, gc); /* _rc_trace_free in full */
        return;
    }
    o->ob_refcnt = RC_REFCNT_FREED;
    o->ob_info &= ~(RC_OBF_TRACKED | RC_OBF_GARBAGE | RC_OBF_WEAKREFD);
    if (gc)
        _rc_mem_free_kind(AS_GC(o), false, RC_KIND_GC);
    else
        _rc_mem_free_kind(o, false, RC_KIND_PLAIN);
}

/* Free quarantined blocks (rc_shutdown releases arenas wholesale anyway). */
static void drain_quarantine(void)
{
    memset(quarantine, 0, sizeof quarantine);
    quarantine_next = 0;
}

/* The general case of a death: finalizers, weakrefs, legacy del. */
static __attribute__((noinline)) void dealloc_full(rc_object *o)
{
    const rc_type *t = o->ob_type;
    bool gc = _rc_type_is_gc(t);
    if (gc && (o->ob_info & RC_OBF_TRACKED))
        _rc_gc_untrack(o);
    if (t->finalize && !(o->ob_info & RC_OBF_FINALIZED)) {
        if (call_with_resurrection(o, NULL, true))
            return;
    }
    if (o->ob_info & RC_OBF_WEAKREFD)
        _rc_weakrefs_on_dealloc(o);
    if (t->legacy_del) {
        if (call_with_resurrection(o, t->legacy_del, false))
            return;
    }
    if (gc)
        _rc_clear_refs(o);
    if (t->destroy)
        t->destroy(o);
    if (gc)
        _rc_gc_on_free();
    free_block(o, gc);
}

/* Steps 1-6 of the comment at the top, for any object. */
static void dealloc_one(rc_object *o)
{
    const rc_type *t = o->ob_type;
    uint32_t tflags = t->tp_flags;
    if (RC_UNLIKELY((tflags & RC_TPF_FINALIZERS) || (o->ob_info & RC_OBF_WEAKREFD))) {
        dealloc_full(o);
        return;
    }
    if (tflags & RC_TPF_GC) {
        if (o->ob_info & RC_OBF_TRACKED)
            _rc_gc_untrack_dying(o);
        uint32_t shape = _rc_type_shape(t);
        if (shape)
            clear_shape(o, shape);
        else
            _rc_clear_refs(o);
        if (t->destroy)
            t->destroy(o);
        _rc_gc_on_free();
        free_block(o, true);
    } else {
        if (t->destroy)
            t->destroy(o);
        free_block(o, false);
    }
}

static void drain_trash(void)
{
    while (trash_pending) {
        rc_object *p = trash_pending;
        memcpy(&trash_pending, AS_GC(p), sizeof trash_pending);
        memset(AS_GC(p), 0, sizeof(rc_gchead));
        dealloc_depth++;
        dealloc_one(p);
        dealloc_depth--;
    }
}

/* Any death but the fast path's: parked when too deep, else dealloc_one. */
static __attribute__((noinline)) void dealloc_general(rc_object *o)
{
    if (dealloc_depth >= TRASHCAN_DEPTH && _rc_is_gc(o)) {
        /* Park it: untracked, so its gc head is free to hold the link. */
        if (o->ob_info & RC_OBF_TRACKED)
            _rc_gc_untrack(o);
        memcpy(AS_GC(o), &trash_pending, sizeof trash_pending);
        trash_pending = o;
        return;
    }
    dealloc_one(o);
}

/* The fast path's reference `p` (from the slot before `slot`) died: the
 * rest of the object's death with calls in it. */
static __attribute__((noinline)) void dealloc_rest(rc_object *o, rc_object *p, rc_object **slot,
                                                   rc_object **end)
{
    release_dying(p);
    for (; slot < end; slot++) {
        rc_object *q = *slot;
        *slot = NULL;
        release(q);
    }
    _rc_gc_on_free();
    free_block(o, true);
}

/*
 * A refcount reached 0. The fast path is the usual death: a tracked object
 * of a simple shape (its references in consecutive slots), no finalizer,
 * no destroy, no weakref, no trashcan due, and none of its references dies
 * with it. It makes no call (anything else is a tail call), so it needs no
 * stack frame: unlink, drop the references, poison, free.
 */
void _rc_dealloc(rc_object *o)
{
    const rc_type *t = o->ob_type;
    uint32_t shape = _rc_type_shape(t); /* 0 unless tracked with a simple shape */
    if (RC_UNLIKELY(!shape || t->destroy || (t->tp_flags & RC_TPF_FINALIZERS) ||
                    (o->ob_info & RC_OBF_WEAKREFD) || dealloc_depth >= TRASHCAN_DEPTH)) {
        dealloc_general(o);
        return;
    }
    if (o->ob_info & RC_OBF_TRACKED)
        _rc_gc_untrack_dying(o);
    rc_object **slot = (rc_object **)((char *)o + RC_SHAPE_FIRST(shape));
    rc_object **end = slot + RC_SHAPE_NREFS(shape);
    do {
        rc_object *p = *slot;
        *slot = NULL;
        if (drop(p)) {
            dealloc_rest(o, p, slot + 1, end);
            return;
        }
    } while (++slot < end); /* a shape has at least one reference */
    _rc_gc_on_free();
    free_block(o, true);
}

typedef struct {
    rc_object **items;
    size_t n, cap;
} object_vec;

static void collect_live(rc_object *o, void *arg)
{
    object_vec *v = arg;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->items = _rc_xrealloc(v->items, v->cap * sizeof *v->items);
    }
    v->items[v->n++] = o;
}

void _rc_object_shutdown(void)
{
    object_vec v = {0};
    _rc_mem_walk(collect_live, &v);
    /* Instances first: a class's destroy frees the type its instances use. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < v.n; i++) {
            rc_object *o = v.items[i];
            bool is_class = o->ob_type == &rc_class_type;
            if (is_class != (pass == 1) || !o->ob_type->destroy)
                continue;
            o->ob_type->destroy(o);
        }
    }
    free(v.items);
    drain_quarantine();
    trash_pending = NULL;
}

/* ---- sizes ---------------------------------------------------------------------- */

size_t rc_sizeof(rc_object *o)
{
    if (!o)
        return 0;
    size_t n = o->ob_type->size + _rc_builtin_extra_size(o);
    if (_rc_is_gc(o))
        n += sizeof(rc_gchead);
    return n;
}
