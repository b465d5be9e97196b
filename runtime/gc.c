/*
 * The generational cycle collector: Python's gc module, CPython 3.11's
 * algorithm and numbers.
 *
 * Every tracked object is on exactly one list: a generation (0, 1, 2), the
 * permanent generation (rc_gc_freeze), or, during a collection, one of the
 * collection's working lists. Its generation is also written in the low bits
 * of ob_info so a reader scanning arenas knows it without walking lists.
 *
 * A collection of generation g (collect()):
 *   1. merge generations 0..g-1 into g ("young");
 *   2. find the unreachable: gc_refs = refcount (update_refs), minus the
 *      references from other young objects (subtract_refs); what still has
 *      gc_refs > 0 is referenced from outside young, and everything it
 *      reaches is reachable too (move_unreachable);
 *   3. survivors move to generation g+1;
 *   4. unreachable objects with a legacy finalizer, and everything they
 *      reach, are set aside: uncollectable, they go to the garbage list;
 *   5. weakrefs to the unreachable are cleared; callbacks of weakrefs that
 *      are not themselves unreachable run;
 *   6. PEP 442 finalizers run (once per object);
 *   7. a finalizer may have resurrected objects: find the unreachable again
 *      among them; the resurrected move to the old generation;
 *   8. what is still unreachable is cleared (references dropped), which
 *      breaks the cycles and frees it by refcounting.
 * It returns collected + uncollectable, as gc.collect() does, where
 * "collected" counts what step 8 clears (so a resurrected object does not
 * count) plus the weakrefs whose callbacks freed them in step 5.
 *
 * States of the gc head during a collection (outside one, both words are
 * plain pointers):
 *   gc_prev = (gc_refs << PREV_SHIFT) | PREV_COLLECTING  in update_refs ..
 *             move_unreachable, for objects of the collected generations;
 *             afterwards a pointer again, with PREV_COLLECTING still set on
 *             the unreachable ones until they are dealt with;
 *   gc_next | NEXT_UNREACHABLE  while move_unreachable has the object on the
 *             tentatively-unreachable list.
 * Loop invariant of move_unreachable: every object to the left of the scan
 * position in young is reachable and has been traversed.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREV_COLLECTING RC_GC_LINK_FLAG
#define PREV_MASK RC_GC_PREV_MASK
#define PREV_SHIFT 1
#define NEXT_UNREACHABLE RC_GC_LINK_FLAG
/* gc_refs has 31 bits: a larger refcount is taken as this many. Subtracting
 * cannot bring such an object to 0: that would take 2^31 - 1 references
 * from tracked objects, 16 GiB of pointers, more than the region holds. */
#define REFS_MAX 0x7FFFFFFFu

#define GC REG.gc
#define GEN_HEAD(i) (GC.generations[i].head)
#define PERM_HEAD (GC.permanent.head)

/* Every list head is in the collector's region (links count from its
 * base): the generations' and a collection's working lists (a collection
 * never runs inside another). */
enum {
    HEAD_GEN0, HEAD_GEN1, HEAD_GEN2, HEAD_PERM,
    HEAD_UNREACHABLE, HEAD_FINALIZERS, HEAD_FINAL_UNREACHABLE, HEAD_WRCB, HEAD_SEEN,
    NHEADS
};
static rc_gchead *heads;
#define HEAD(name) (&heads[HEAD_##name])

static FILE *debug_stream;

/* ---- list primitives (flag-aware, as CPython's) ------------------------------- */

#define LINK(g) _rc_gc_link(g)
#define PTR(l) _rc_gc_ptr(l)

static inline rc_gchead *gnext(const rc_gchead *g) { return PTR(g->gc_next); }
static inline rc_gchead *gprev(const rc_gchead *g) { return PTR(g->gc_prev); }
static inline void set_next(rc_gchead *g, rc_gchead *n) { g->gc_next = LINK(n); }
static inline void set_prev(rc_gchead *g, rc_gchead *p)
{
    g->gc_prev = (g->gc_prev & PREV_MASK) | LINK(p);
}
static inline bool is_collecting(const rc_gchead *g) { return (g->gc_prev & PREV_COLLECTING) != 0; }
static inline void clear_collecting(rc_gchead *g) { g->gc_prev &= ~PREV_COLLECTING; }
static inline size_t get_refs(const rc_gchead *g) { return (size_t)(g->gc_prev >> PREV_SHIFT); }
static inline void set_refs(rc_gchead *g, size_t refs)
{
    g->gc_prev = (g->gc_prev & PREV_MASK) | ((uint32_t)refs << PREV_SHIFT);
}
static inline void reset_refs(rc_gchead *g, size_t refs)
{
    g->gc_prev = PREV_COLLECTING | ((uint32_t)refs << PREV_SHIFT);
}
static inline void decref_refs(rc_gchead *g) { g->gc_prev -= 1u << PREV_SHIFT; }

static void list_init(rc_gchead *l)
{
    l->gc_next = LINK(l);
    l->gc_prev = LINK(l);
}
static inline bool list_empty(const rc_gchead *l) { return l->gc_next == LINK(l); }

static inline void list_append(rc_gchead *node, rc_gchead *list)
{
    rc_gchead *last = PTR(list->gc_prev);
    set_prev(node, last);
    set_next(last, node);
    set_next(node, list);
    list->gc_prev = LINK(node);
}

/* (Removing one object from its list is _rc_gc_untrack, inline in internal.h.) */

static void list_move(rc_gchead *node, rc_gchead *list)
{
    rc_gchead *from_prev = gprev(node), *from_next = gnext(node);
    set_next(from_prev, from_next);
    set_prev(from_next, from_prev);
    rc_gchead *to_prev = PTR(list->gc_prev);
    set_prev(node, to_prev);
    set_next(to_prev, node);
    list->gc_prev = LINK(node);
    set_next(node, list);
}

/* Append `from` to `to`, leaving `from` empty. */
static void list_merge(rc_gchead *from, rc_gchead *to)
{
    if (!list_empty(from)) {
        rc_gchead *tail = PTR(to->gc_prev);
        set_next(tail, gnext(from));
        set_prev(gnext(from), tail);
        to->gc_prev = from->gc_prev;
        set_next(PTR(to->gc_prev), to);
    }
    list_init(from);
}

static size_t list_size(const rc_gchead *l)
{
    size_t n = 0;
    for (rc_gchead *g = gnext(l); g != l; g = gnext(g))
        n++;
    return n;
}

/* Objects per generation (0..2, 3 = permanent), kept exact by changing an
 * object's generation bits only here. */
static inline uint64_t *gen_count(unsigned gen) { return _rc_gen_count(gen); }

static inline void move_gen(rc_object *o, unsigned gen)
{
    unsigned old = _rc_gen(o);
    if (old != gen) {
        (*gen_count(old))--;
        (*gen_count(gen))++;
        _rc_set_gen(o, gen);
    }
}

/* Set generation bits (and clear leftover collection flags) on a list that
 * is about to join generation `gen`. */
static void list_set_gen(rc_gchead *l, unsigned gen)
{
    for (rc_gchead *g = gnext(l); g != l; g = gnext(g)) {
        clear_collecting(g);
        move_gen(FROM_GC(g), gen);
    }
}

static void merge_into_gen(rc_gchead *from, int gen)
{
    list_set_gen(from, (unsigned)gen);
    list_merge(from, GEN_HEAD(gen));
}

/* ---- tracking ------------------------------------------------------------------- */

void _rc_gc_init(void)
{
    static const int32_t thresholds[3] = {700, 10, 10};
    heads = _rc_gc_region_heads(NHEADS);
    /* _rc_gc_link_young relies on it: generation 0's head is the base */
    if ((uintptr_t)&heads[HEAD_GEN0] != (uintptr_t)GC.link_base)
        _rc_fatal("internal error: generation 0's list head is not the region's base");
    for (int i = 0; i < 3; i++) {
        GC.generations[i].head = &heads[HEAD_GEN0 + i];
        list_init(GEN_HEAD(i));
        GC.generations[i].threshold = thresholds[i];
        GC.generations[i].count = 0;
        GC.generations[i].nobjects = 0;
        memset(&GC.stats[i], 0, sizeof GC.stats[i]);
    }
    GC.permanent.head = HEAD(PERM);
    list_init(PERM_HEAD);
    GC.permanent.threshold = 0;
    GC.permanent.count = 0;
    GC.permanent.nobjects = 0;
    GC.enabled = 1;
    GC.debug = 0;
    GC.collecting = 0;
    GC.phase = RC_PHASE_IDLE;
    GC.long_lived_total = GC.long_lived_pending = 0;
    GC.tracked = 0;
    if (!debug_stream)
        debug_stream = stderr;
}

/* ---- finding the unreachable ------------------------------------------------------ */

/* gc_refs = refcount, COLLECTING set; and the generation bits become `gen`
 * (collect() splices the younger generations in without touching their
 * objects: this walk is the one that fixes their bits). */
static void update_refs(rc_gchead *containers, unsigned gen)
{
    for (rc_gchead *g = gnext(containers); g != containers; g = gnext(g)) {
        rc_object *o = FROM_GC(g);
        uint32_t refcnt = o->ob_refcnt;
        /* A tracked object with refcount 0 is being deallocated right now
         * (its finalizer triggered this collection); gc_refs 0 would make it
         * look unreachable and it would be freed twice. CPython asserts this
         * cannot happen; we treat it as externally referenced. */
        reset_refs(g, RC_LIKELY(refcnt != 0) ? (refcnt <= REFS_MAX ? refcnt : REFS_MAX) : 1);
        move_gen(o, gen);
    }
}

/* (Only objects of GC types are ever TRACKED: the flag alone says both,
 * without reading the type.) */
static inline int visit_decref(rc_object *o, void *arg)
{
    (void)arg;
    if (o->ob_info & RC_OBF_TRACKED) {
        rc_gchead *g = AS_GC(o);
        if (is_collecting(g) && get_refs(g) > 0)
            decref_refs(g);
    }
    return 0;
}

static void subtract_refs(rc_gchead *containers)
{
    for (rc_gchead *g = gnext(containers); g != containers; g = gnext(g))
        _rc_traverse_inline(FROM_GC(g), visit_decref, NULL);
}

static inline __attribute__((always_inline)) int visit_reachable(rc_object *o, void *arg)
{
    rc_gchead *reachable = arg;
    if (!(o->ob_info & RC_OBF_TRACKED))
        return 0;
    rc_gchead *g = AS_GC(o);
    /* Objects of other generations, and those left of the scan position in
     * move_unreachable (already traversed), are not COLLECTING. */
    if (!is_collecting(g))
        return 0;
    if (g->gc_next & NEXT_UNREACHABLE) {
        /* Tentatively unreachable, but reachable after all: unlink it by
         * hand (the list functions do not know the flag) and put it back at
         * the end of young, where the scan will reach it again. */
        rc_gchead *prev = gprev(g);
        rc_gchead *next = PTR(g->gc_next);
        prev->gc_next = g->gc_next; /* keeps the flag */
        set_prev(next, prev);
        list_append(g, reachable);
        set_refs(g, 1);
    } else if (get_refs(g) == 0) {
        /* Ahead of the scan: it only needs to know it is reachable. */
        set_refs(g, 1);
    }
    return 0;
}

/* Returns how many objects stayed in young (the reachable); they are no
 * longer COLLECTING and their generation bits say `survivor_gen`, the
 * generation the caller merges young into. */
static size_t move_unreachable(rc_gchead *young, rc_gchead *unreachable, unsigned survivor_gen)
{
    rc_gchead *prev = young;
    rc_gchead *g = gnext(young);
    size_t nreachable = 0;
    while (g != young) {
        if (get_refs(g)) {
            /* Reachable from outside young: traverse it. The traversal may
             * append to young, so the next object is read afterwards. */
            rc_object *o = FROM_GC(g);
            _rc_traverse_inline(o, visit_reachable, young);
            set_prev(g, prev);
            clear_collecting(g);
            move_gen(o, survivor_gen);
            nreachable++;
            prev = g;
        } else {
            /* Maybe unreachable: assume so; visit_reachable moves it back
             * if something reachable turns out to refer to it. */
            prev->gc_next = g->gc_next;
            rc_gchead *last = gprev(unreachable);
            last->gc_next = NEXT_UNREACHABLE | LINK(g);
            set_prev(g, last);
            g->gc_next = NEXT_UNREACHABLE | LINK(unreachable);
            unreachable->gc_prev = LINK(g);
        }
        g = PTR(prev->gc_next);
    }
    young->gc_prev = LINK(prev);
    unreachable->gc_next &= ~NEXT_UNREACHABLE;
    return nreachable;
}

static void clear_unreachable_mask(rc_gchead *unreachable)
{
    for (rc_gchead *g = gnext(unreachable); g != unreachable;) {
        g->gc_next &= ~NEXT_UNREACHABLE;
        g = PTR(g->gc_next);
    }
}

/* Objects of `base` (generation bits `gen`) that nothing outside it
 * reaches move to `unreachable`; the others stay, with generation bits
 * `survivor_gen`. Returns how many stayed. */
static size_t deduce_unreachable(rc_gchead *base, rc_gchead *unreachable, unsigned gen,
                                 unsigned survivor_gen)
{
    update_refs(base, gen);
    subtract_refs(base);
    return move_unreachable(base, unreachable, survivor_gen);
}

/* ---- legacy finalizers ------------------------------------------------------------- */

static bool has_legacy_finalizer(const rc_object *o) { return o->ob_type->legacy_del != NULL; }

/* What the one walk over the unreachable (scan_unreachable) found out for
 * the phases after it: those with nothing to do are skipped. */
typedef struct unreachable_facts {
    size_t n;          /* objects left in unreachable (exact while no legacy
                          finalizer was found: then nothing else moves out) */
    bool weakrefs;     /* some object is a weakref or may have weakrefs */
    bool finalizers;   /* some object has a PEP 442 finalizer yet to run */
} unreachable_facts;

/* CPython's move_legacy_finalizers (the NEXT_UNREACHABLE flags go, objects
 * with a legacy finalizer move to `finalizers`), and while at it the facts
 * above, so that a collection of plain objects walks its garbage once here
 * and once to free it. */
static void scan_unreachable(rc_gchead *unreachable, rc_gchead *finalizers,
                             unreachable_facts *facts)
{
    rc_gchead *next;
    for (rc_gchead *g = gnext(unreachable); g != unreachable; g = next) {
        g->gc_next &= ~NEXT_UNREACHABLE;
        next = PTR(g->gc_next);
        rc_object *o = FROM_GC(g);
        const rc_type *t = o->ob_type;
        if (has_legacy_finalizer(o)) {
            clear_collecting(g);
            list_move(g, finalizers);
            continue;
        }
        facts->n++;
        if ((o->ob_info & RC_OBF_WEAKREFD) || (t->tp_flags & RC_TPF_WEAKREF))
            facts->weakrefs = true;
        if (t->finalize && !(o->ob_info & RC_OBF_FINALIZED))
            facts->finalizers = true;
    }
}

static int visit_move(rc_object *o, void *arg)
{
    if (o->ob_info & RC_OBF_TRACKED) {
        rc_gchead *g = AS_GC(o);
        if (is_collecting(g)) {
            list_move(g, (rc_gchead *)arg);
            clear_collecting(g);
        }
    }
    return 0;
}

/* Everything reachable from a legacy finalizer is uncollectable too. The
 * list grows while it is walked; the walk picks up what is appended. */
static void move_legacy_finalizer_reachable(rc_gchead *finalizers)
{
    for (rc_gchead *g = gnext(finalizers); g != finalizers; g = gnext(g))
        _rc_traverse_inline(FROM_GC(g), visit_move, finalizers);
}

static void append_to_garbage(rc_object *o)
{
    if (!REG.garbage)
        return;
    rc_list_append(REG.garbage, o);
    o->ob_info |= RC_OBF_GARBAGE;
}

static void handle_legacy_finalizers(rc_gchead *finalizers, int old_gen)
{
    for (rc_gchead *g = gnext(finalizers); g != finalizers; g = gnext(g)) {
        rc_object *o = FROM_GC(g);
        if ((GC.debug & RC_DEBUG_SAVEALL) || has_legacy_finalizer(o))
            append_to_garbage(o);
    }
    merge_into_gen(finalizers, old_gen);
}

/* ---- weak references ------------------------------------------------------------------ */

static bool wr_has_callback(const rc_weakref *wr)
{
    return wr->wr_callback != NULL || wr->wr_ccallback != NULL;
}

/* Clear weakrefs to unreachable objects; run the callbacks of the weakrefs
 * that are not themselves unreachable (a trash weakref's callback could see
 * objects already cleared). Returns how many such weakrefs the callbacks
 * freed, which gc.collect() counts. */
static size_t handle_weakrefs(rc_gchead *unreachable, int old_gen)
{
    rc_gchead *wrcb_to_call = HEAD(WRCB);
    size_t num_freed = 0;
    list_init(wrcb_to_call);

    for (rc_gchead *g = gnext(unreachable); g != unreachable; g = gnext(g)) {
        rc_object *o = FROM_GC(g);
        if (_rc_is_weakref(o))
            _rc_weakref_clear((rc_weakref *)o);
        if (!(o->ob_info & RC_OBF_WEAKREFD))
            continue;
        rc_weakref *wr;
        while ((wr = _rc_weakref_list(o)) != NULL) {
            _rc_weakref_clear(wr); /* unlinks: the list head moves on */
            if (!wr_has_callback(wr))
                continue;
            rc_gchead *wg = AS_GC(wr);
            if (is_collecting(wg))
                continue; /* the weakref is trash itself: no callback */
            /* Untracked: being deallocated (refcount 0, still linked until
             * its destroy unlinks it; this collection runs from code its
             * deallocation called) or parked in the trashcan. Dead: no
             * callback, as on a refcount death; and its gc head is not
             * in a list to move. */
            if (!(wr->ob_base.ob_info & RC_OBF_TRACKED))
                continue;
            rc_incref(wr);
            list_move(wg, wrcb_to_call);
        }
        o->ob_info &= ~RC_OBF_WEAKREFD;
    }

    while (!list_empty(wrcb_to_call)) {
        rc_gchead *g = gnext(wrcb_to_call);
        rc_weakref *wr = (rc_weakref *)FROM_GC(g);
        _rc_weakref_fire(wr);
        rc_decref(wr);
        if (gnext(wrcb_to_call) == g) {
            /* still alive */
            list_move(g, GEN_HEAD(old_gen));
            move_gen(FROM_GC(g), (unsigned)old_gen);
        } else {
            num_freed++;
        }
    }
    return num_freed;
}

/* ---- finalizers, resurrection, clearing ------------------------------------------------- */

static void finalize_garbage(rc_gchead *collectable)
{
    rc_gchead *seen = HEAD(SEEN);
    list_init(seen);
    /* A finalizer can free anything, so always take the first object and
     * park it in `seen`; objects that vanish from either list are gone. */
    while (!list_empty(collectable)) {
        rc_gchead *g = gnext(collectable);
        rc_object *o = FROM_GC(g);
        list_move(g, seen);
        if (o->ob_type->finalize && !(o->ob_info & RC_OBF_FINALIZED)) {
            rc_incref(o);
            _rc_call_finalizer(o);
            rc_decref(o);
        }
    }
    list_merge(seen, collectable);
}

static void list_clear_collecting(rc_gchead *l)
{
    for (rc_gchead *g = gnext(l); g != l; g = gnext(g))
        clear_collecting(g);
}

static void handle_resurrected_objects(rc_gchead *unreachable, rc_gchead *still_unreachable,
                                       int generation, int old_gen)
{
    list_clear_collecting(unreachable);
    deduce_unreachable(unreachable, still_unreachable, (unsigned)generation, (unsigned)old_gen);
    clear_unreachable_mask(still_unreachable);
    list_merge(unreachable, GEN_HEAD(old_gen)); /* the resurrected */
}

static void delete_garbage(rc_gchead *collectable, int old_gen)
{
    while (!list_empty(collectable)) {
        rc_gchead *g = gnext(collectable);
        rc_object *o = FROM_GC(g);
        if (GC.debug & RC_DEBUG_SAVEALL) {
            append_to_garbage(o);
        } else {
            rc_incref(o);
            _rc_clear_refs(o);
            rc_decref(o);
        }
        if (gnext(collectable) == g) {
            /* still alive (held from outside the cycle now): it may die later */
            list_move(g, GEN_HEAD(old_gen));
            clear_collecting(g);
            move_gen(o, (unsigned)old_gen);
        }
    }
}

/* ---- debug output --------------------------------------------------------------------- */

void _rc_gc_debug_line(const char *what, rc_object *o)
{
    fprintf(debug_stream ? debug_stream : stderr, "gc: %s <%s %p>\n", what, rc_type_name(o),
            (void *)o);
}

void rc_gc_set_debug_stream(FILE *f) { debug_stream = f ? f : stderr; }

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the collection ------------------------------------------------------------------- */

static size_t collect(int generation, size_t *n_uncollectable)
{
    FILE *out = debug_stream ? debug_stream : stderr;
    size_t m = 0, n = 0;
    double t0 = 0;
    rc_gchead *unreachable = HEAD(UNREACHABLE), *finalizers = HEAD(FINALIZERS),
              *final_unreachable = HEAD(FINAL_UNREACHABLE);

    GC.collecting = 1;
    GC.collecting_generation = generation;
    GC.phase = RC_PHASE_FIND_UNREACHABLE;

    if (GC.debug & RC_DEBUG_STATS) {
        fprintf(out, "gc: collecting generation %d...\n", generation);
        fprintf(out, "gc: objects in each generation: %zu %zu %zu\n", list_size(GEN_HEAD(0)),
                list_size(GEN_HEAD(1)), list_size(GEN_HEAD(2)));
        fprintf(out, "gc: objects in permanent generation: %zu\n", list_size(PERM_HEAD));
        t0 = now_seconds();
    }

    if (generation + 1 < 3)
        GC.generations[generation + 1].count += 1;
    for (int i = 0; i <= generation; i++)
        GC.generations[i].count = 0;

    /* Splice the younger generations in; update_refs sets their bits. */
    for (int i = 0; i < generation; i++)
        list_merge(GEN_HEAD(i), GEN_HEAD(generation));

    rc_gchead *young = GEN_HEAD(generation);
    int old_gen = generation < 2 ? generation + 1 : 2;

    list_init(unreachable);
    size_t nsurvivors =
        deduce_unreachable(young, unreachable, (unsigned)generation, (unsigned)old_gen);

    if (generation < 2) {
        if (generation == 1)
            GC.long_lived_pending += nsurvivors;
        list_merge(young, GEN_HEAD(old_gen)); /* bits set by move_unreachable */
    } else {
        GC.long_lived_pending = 0;
        GC.long_lived_total = nsurvivors;
    }

    GC.phase = RC_PHASE_LEGACY;
    list_init(finalizers);
    unreachable_facts facts = {0, false, false};
    scan_unreachable(unreachable, finalizers, &facts);
    bool exact = list_empty(finalizers); /* facts.n is the size of unreachable */
    move_legacy_finalizer_reachable(finalizers);

    if (GC.debug & RC_DEBUG_COLLECTABLE)
        for (rc_gchead *g = gnext(unreachable); g != unreachable; g = gnext(g))
            _rc_gc_debug_line("collectable", FROM_GC(g));

    GC.phase = RC_PHASE_WEAKREFS;
    if (facts.weakrefs) {
        m += handle_weakrefs(unreachable, old_gen);
        exact = false;
    }

    list_init(final_unreachable);
    if (facts.finalizers) {
        GC.phase = RC_PHASE_FINALIZE;
        finalize_garbage(unreachable);
        GC.phase = RC_PHASE_RESURRECT;
        handle_resurrected_objects(unreachable, final_unreachable, generation, old_gen);
        exact = false;
    } else {
        /* No finalizer ran: nothing can have been resurrected (weakref
         * callbacks cannot reach the unreachable, whose weakrefs are
         * cleared), so CPython's second pass would find the same set. */
        list_merge(unreachable, final_unreachable);
    }

    /* Counted after resurrection (CPython 3.9+): a resurrected object is
     * not "collected". */
    GC.phase = RC_PHASE_CLEAR;
    m += exact ? facts.n : list_size(final_unreachable);
    delete_garbage(final_unreachable, old_gen);

    for (rc_gchead *g = gnext(finalizers); g != finalizers; g = gnext(g)) {
        n++;
        if (GC.debug & RC_DEBUG_UNCOLLECTABLE)
            _rc_gc_debug_line("uncollectable", FROM_GC(g));
    }
    if (GC.debug & RC_DEBUG_STATS)
        fprintf(out, "gc: done, %zu unreachable, %zu uncollectable, %.4fs elapsed\n", n + m, n,
                now_seconds() - t0);

    handle_legacy_finalizers(finalizers, old_gen);

    GC.stats[generation].collections++;
    GC.stats[generation].collected += m;
    GC.stats[generation].uncollectable += n;

    GC.phase = RC_PHASE_IDLE;
    GC.collecting = 0;
    _rc_timeline_on_collect(generation);
    *n_uncollectable = n;
    return m;
}

/* ---- callbacks ------------------------------------------------------------------------- */

typedef struct {
    rc_gc_callback cb;
    void *data;
} gc_cb;
static gc_cb *callbacks;
static size_t ncallbacks, capcallbacks;

int rc_gc_callback_add(rc_gc_callback cb, void *data)
{
    if (!cb)
        return _rc_error("rc_gc_callback_add: NULL callback");
    if (ncallbacks == capcallbacks) {
        capcallbacks = capcallbacks ? capcallbacks * 2 : 8;
        callbacks = _rc_xrealloc(callbacks, capcallbacks * sizeof *callbacks);
    }
    callbacks[ncallbacks++] = (gc_cb){cb, data};
    return 0;
}

int rc_gc_callback_remove(rc_gc_callback cb, void *data)
{
    for (size_t i = 0; i < ncallbacks; i++) {
        if (callbacks[i].cb == cb && callbacks[i].data == data) {
            memmove(&callbacks[i], &callbacks[i + 1], (ncallbacks - i - 1) * sizeof *callbacks);
            ncallbacks--;
            return 0;
        }
    }
    return _rc_error("rc_gc_callback_remove: callback not registered");
}

static void invoke_callbacks(const char *phase, int generation, size_t collected,
                             size_t uncollectable)
{
    /* A callback may remove itself: iterate over a copy. */
    size_t n = ncallbacks;
    if (!n)
        return;
    gc_cb copy[n];
    memcpy(copy, callbacks, n * sizeof *copy);
    for (size_t i = 0; i < n; i++)
        copy[i].cb(phase, generation, collected, uncollectable, copy[i].data);
}

static size_t collect_with_callback(int generation)
{
    size_t uncollectable = 0;
    invoke_callbacks("start", generation, 0, 0);
    size_t collected = collect(generation, &uncollectable);
    invoke_callbacks("stop", generation, collected, uncollectable);
    return collected + uncollectable;
}

/* Automatic collection: the oldest generation whose count exceeds its
 * threshold, except that a full collection also waits until the objects
 * that survived young collections since the last full one exceed 25 % of
 * the long-lived total (keeps full collections linear overall). */
static void collect_generations(void)
{
    for (int i = 2; i >= 0; i--) {
        if (GC.generations[i].count > (uint64_t)GC.generations[i].threshold) {
            if (i == 2 && GC.long_lived_pending < GC.long_lived_total / 4)
                continue;
            collect_with_callback(i);
            break;
        }
    }
}

void _rc_gc_collect_due(void)
{
    /* generations[0].count has passed its threshold (_rc_gc_on_alloc) */
    if (GC.enabled && GC.generations[0].threshold && !GC.collecting && !REG.shutting_down)
        collect_generations();
}

/* ---- the gc module's API ------------------------------------------------------------------ */

void rc_gc_enable(void)
{
    rc_autoinit();
    GC.enabled = 1;
}
void rc_gc_disable(void)
{
    rc_autoinit();
    GC.enabled = 0;
}
bool rc_gc_isenabled(void)
{
    rc_autoinit();
    return GC.enabled != 0;
}

size_t rc_gc_collect(int generation)
{
    rc_autoinit();
    if (generation < 0 || generation > 2) {
        _rc_error("rc_gc_collect: invalid generation %d (must be 0, 1 or 2)", generation);
        return 0;
    }
    if (GC.collecting)
        return 0; /* already collecting: gc.collect() returns 0 then */
    return collect_with_callback(generation);
}

void rc_gc_get_count(size_t counts[3])
{
    rc_autoinit();
    for (int i = 0; i < 3; i++)
        counts[i] = (size_t)GC.generations[i].count;
}

void rc_gc_get_threshold(int th[3])
{
    rc_autoinit();
    for (int i = 0; i < 3; i++)
        th[i] = GC.generations[i].threshold;
}

void rc_gc_set_threshold(int t0, int t1, int t2)
{
    rc_autoinit();
    GC.generations[0].threshold = t0 < 0 ? 0 : t0;
    GC.generations[1].threshold = t1 < 0 ? 0 : t1;
    GC.generations[2].threshold = t2 < 0 ? 0 : t2;
}

void rc_gc_get_stats(rc_gc_stats stats[3])
{
    rc_autoinit();
    memcpy(stats, GC.stats, sizeof GC.stats);
}

rc_object *rc_gc_garbage(void)
{
    rc_autoinit();
    return REG.garbage;
}

void rc_gc_set_debug(unsigned flags)
{
    rc_autoinit();
    GC.debug = flags;
}
unsigned rc_gc_get_debug(void)
{
    rc_autoinit();
    return GC.debug;
}

static void append_list(rc_object *result, rc_gchead *l)
{
    for (rc_gchead *g = gnext(l); g != l; g = gnext(g)) {
        rc_object *o = FROM_GC(g);
        if (o != result)
            rc_list_append(result, o);
    }
}

rc_object *rc_gc_get_objects(int generation)
{
    rc_autoinit();
    if (generation < -1 || generation > 2) {
        _rc_error("rc_gc_get_objects: generation must be -1, 0, 1 or 2, not %d", generation);
        return NULL;
    }
    rc_object *result = rc_list_new_at(RC_INTERNAL_SITE);
    /* The new list is itself tracked in generation 0: leave it out. */
    for (int i = 0; i < 3; i++)
        if (generation == -1 || generation == i)
            append_list(result, GEN_HEAD(i));
    return result;
}

typedef struct {
    rc_object *target;
    bool found;
} referrer_search;

static int visit_find(rc_object *o, void *arg)
{
    referrer_search *s = arg;
    if (o == s->target) {
        s->found = true;
        return 1;
    }
    return 0;
}

static void referrers_in(rc_gchead *l, rc_object *target, rc_object *result)
{
    for (rc_gchead *g = gnext(l); g != l; g = gnext(g)) {
        rc_object *o = FROM_GC(g);
        if (o == result)
            continue;
        referrer_search s = {target, false};
        _rc_traverse(o, visit_find, &s);
        if (s.found)
            rc_list_append(result, o);
    }
}

rc_object *rc_gc_get_referrers(rc_object *target)
{
    rc_autoinit();
    rc_object *result = rc_list_new_at(RC_INTERNAL_SITE);
    if (!target)
        return result;
    for (int i = 0; i < 3; i++)
        referrers_in(GEN_HEAD(i), target, result);
    referrers_in(PERM_HEAD, target, result);
    return result;
}

static int visit_append(rc_object *o, void *arg)
{
    rc_list_append((rc_object *)arg, o);
    return 0;
}

rc_object *rc_gc_get_referents(rc_object *o)
{
    rc_autoinit();
    rc_object *result = rc_list_new_at(RC_INTERNAL_SITE);
    if (o)
        _rc_traverse(o, visit_append, result);
    return result;
}

bool rc_gc_is_tracked(rc_object *o) { return o && (o->ob_info & RC_OBF_TRACKED) != 0; }
bool rc_gc_is_finalized(rc_object *o) { return o && (o->ob_info & RC_OBF_FINALIZED) != 0; }

void rc_gc_freeze(void)
{
    rc_autoinit();
    for (int i = 0; i < 3; i++) {
        list_set_gen(GEN_HEAD(i), RC_GEN_PERMANENT);
        list_merge(GEN_HEAD(i), PERM_HEAD);
        GC.generations[i].count = 0;
    }
}

void rc_gc_unfreeze(void)
{
    rc_autoinit();
    merge_into_gen(PERM_HEAD, 2);
}

size_t rc_gc_get_freeze_count(void)
{
    rc_autoinit();
    return list_size(PERM_HEAD);
}

/* ---- shutdown -------------------------------------------------------------------------- */

void _rc_gc_shutdown(void)
{
    FILE *out = debug_stream ? debug_stream : stderr;
    /* Collect until nothing more goes (finalizers can free more). */
    for (int i = 0; i < 8; i++) {
        size_t unc = 0;
        if (collect(2, &unc) == 0)
            break;
    }
    size_t ngarbage = REG.garbage ? rc_list_len(REG.garbage) : 0;
    if (!(GC.debug & RC_DEBUG_SAVEALL) && ngarbage > 0) {
        if (GC.debug & RC_DEBUG_UNCOLLECTABLE) {
            fprintf(out, "gc: %zu uncollectable objects at shutdown\n", ngarbage);
            for (size_t i = 0; i < ngarbage; i++) {
                char buf[256];
                fprintf(out, "      %s\n",
                        rc_describe(rc_list_get(REG.garbage, i), buf, sizeof buf));
            }
        } else {
            fprintf(out,
                    "gc: %zu uncollectable objects at shutdown; use "
                    "rc_gc_set_debug(RC_DEBUG_UNCOLLECTABLE) to list them\n",
                    ngarbage);
        }
    }
    free(callbacks);
    callbacks = NULL;
    ncallbacks = capcallbacks = 0;
}
