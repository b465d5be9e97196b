/*
 * PEP 442 finalization, after CPython 3.11's Lib/test/test_finalization.py:
 * a finalizer runs at most once per object, whether the object dies by
 * refcount or in a cycle; it may resurrect its object; resurrection does
 * not stop the collector from freeing the rest of the garbage; a legacy
 * (tp_del-style) finalizer runs on refcount death.
 *
 * The test types count, per object, how often the finalizer ran and when the
 * memory was released (`destroy` runs once, as the object is freed).
 */
#include <refscope/rc.h>

#include <criterion/criterion.h>

#include <string.h>

#define MAXOBJ 256

typedef struct Obj {
    RC_OBJECT_HEAD;
    rc_object *left;  /* SelfCycle: left == self; chains: the previous node */
    int id;
} Obj;
static const rc_field obj_fields[] = {RC_REF(Obj, left), RC_FIELDS_END};

static int del_calls[MAXOBJ];       /* finalizer calls per id */
static int destroy_calls[MAXOBJ];   /* frees per id */
static bool saw_refs_intact[MAXOBJ];
static int next_id;

static rc_object *survivors[MAXOBJ]; /* strong references taken by resurrectors */
static int nsurvivors;

static void count_finalize(rc_object *self)
{
    Obj *o = (Obj *)self;
    del_calls[o->id]++;
    saw_refs_intact[o->id] = o->left != NULL;
}

static void resurrect_finalize(rc_object *self)
{
    count_finalize(self);
    survivors[nsurvivors++] = rc_incref(self); /* a global now holds it */
}

static void count_destroy(rc_object *self)
{
    destroy_calls[((Obj *)self)->id]++;
}

static int legacy_calls[MAXOBJ];
static void count_legacy_del(rc_object *self)
{
    legacy_calls[((Obj *)self)->id]++;
}

/* Simple: a plain finalizer. Resurrector: resurrects itself. */
static rc_type Simple_type = {.name = "Simple", .size = sizeof(Obj), .fields = obj_fields,
                              .finalize = count_finalize, .destroy = count_destroy};
static rc_type Resurrector_type = {.name = "Resurrector", .size = sizeof(Obj),
                                   .fields = obj_fields, .finalize = resurrect_finalize,
                                   .destroy = count_destroy};
static rc_type NoFinalizer_type = {.name = "NoFinalizer", .size = sizeof(Obj),
                                   .fields = obj_fields, .destroy = count_destroy};
static rc_type Legacy_type = {.name = "Legacy", .size = sizeof(Obj), .fields = obj_fields,
                              .legacy_del = count_legacy_del, .destroy = count_destroy};

static Obj *make(rc_type *type)
{
    Obj *o = rc_new(Obj, type);
    cr_assert_not_null(o);
    cr_assert_lt(next_id, MAXOBJ);
    o->id = next_id++;
    return o;
}

static Obj *make_self_cycle(rc_type *type)
{
    Obj *o = make(type);
    rc_set(&o->left, RC_OBJ(o));
    return o;
}

static void clear_survivors(void)
{
    while (nsurvivors > 0)
        rc_decref(survivors[--nsurvivors]);
}

static void setup(void)
{
    rc_init();
    rc_gc_disable();
    rc_gc_collect(2);
}

TestSuite(finalization, .init = setup);

/* ---- objects not in a cycle ------------------------------------------------ */

Test(finalization, simple)
{
    Obj *s = make(&Simple_type);
    int id = s->id;
    rc_object *wr = rc_weakref_new(RC_OBJ(s), NULL);
    rc_decref(s);
    cr_assert_eq(del_calls[id], 1);
    cr_assert_eq(destroy_calls[id], 1);
    cr_assert_null(rc_weakref_get(wr));
    rc_gc_collect(2);
    cr_assert_eq(del_calls[id], 1);
    rc_decref(wr);
}

Test(finalization, simple_resurrect)
{
    Obj *s = make(&Resurrector_type);
    int id = s->id;
    rc_object *wr = rc_weakref_new(RC_OBJ(s), NULL);
    cr_assert_not(rc_gc_is_finalized(RC_OBJ(s)));
    rc_decref(s);
    cr_assert_eq(del_calls[id], 1);
    cr_assert_eq(nsurvivors, 1);
    cr_assert_eq(survivors[0], RC_OBJ(s));
    cr_assert_eq(destroy_calls[id], 0, "resurrected: not freed");
    cr_assert(rc_gc_is_finalized(RC_OBJ(s)));
    /* refcount death resurrected it before its weakrefs were cleared */
    rc_object *got = rc_weakref_get(wr);
    cr_assert_eq(got, RC_OBJ(s));
    rc_decref(got);
    cr_assert_eq(rc_refcount(s), 1);

    clear_survivors();
    cr_assert_eq(del_calls[id], 1, "the finalizer does not run a second time");
    cr_assert_eq(nsurvivors, 0, "and the object is not resurrected again");
    cr_assert_eq(destroy_calls[id], 1);
    cr_assert_null(rc_weakref_get(wr));
    rc_decref(wr);
}

Test(finalization, non_gc)
{
    /* a type without references still gets its finalizer */
    static rc_type Atomic_type = {.name = "AtomicFinal", .size = sizeof(Obj),
                                  .finalize = count_finalize, .destroy = count_destroy};
    Obj *s = make(&Atomic_type);
    int id = s->id;
    cr_assert_not(rc_gc_is_tracked(RC_OBJ(s)));
    rc_decref(s);
    cr_assert_eq(del_calls[id], 1);
    cr_assert_eq(destroy_calls[id], 1);
}

Test(finalization, legacy_finalizer_runs_on_refcount_death)
{
    Obj *o = make(&Legacy_type);
    int id = o->id;
    Obj *held = make(&NoFinalizer_type);
    int held_id = held->id;
    rc_set(&o->left, RC_OBJ(held));
    rc_decref(held);
    rc_decref(o);
    cr_assert_eq(legacy_calls[id], 1);
    cr_assert_eq(destroy_calls[id], 1);
    cr_assert_eq(destroy_calls[held_id], 1, "then its references are released");
    cr_assert_eq(rc_list_len(rc_gc_garbage()), 0);
}

/* ---- self-cycles ----------------------------------------------------------- */

Test(finalization, cycle)
{
    Obj *s = make_self_cycle(&Simple_type);
    int id = s->id;
    rc_object *wr = rc_weakref_new(RC_OBJ(s), NULL);
    rc_decref(s);
    cr_assert_eq(del_calls[id], 0, "a cycle does not die by refcount");
    cr_assert_eq(rc_gc_collect(2), 1);
    cr_assert_eq(del_calls[id], 1);
    cr_assert(saw_refs_intact[id], "finalizers run before the collector clears references");
    cr_assert_eq(destroy_calls[id], 1);
    cr_assert_null(rc_weakref_get(wr));
    rc_gc_collect(2);
    cr_assert_eq(del_calls[id], 1);
    rc_decref(wr);
}

Test(finalization, cycle_resurrect)
{
    Obj *s = make_self_cycle(&Resurrector_type);
    int id = s->id;
    rc_object *wr = rc_weakref_new(RC_OBJ(s), NULL);
    rc_decref(s);
    cr_assert_eq(rc_gc_collect(2), 0, "resurrected objects are not counted as collected");
    cr_assert_eq(del_calls[id], 1);
    cr_assert_eq(nsurvivors, 1);
    cr_assert_eq(destroy_calls[id], 0);
    cr_assert(rc_gc_is_finalized(RC_OBJ(s)));
    /* As in CPython (whose test doubts it is desirable but asserts it): the
     * collector cleared the weakref before running the finalizer. */
    cr_assert_null(rc_weakref_get(wr));
    cr_assert_eq(s->left, RC_OBJ(s), "the resurrected object was not cleared");
    /* When trying to destroy the object a second time, the finalizer isn't
     * called anymore (and the object isn't resurrected). */
    clear_survivors();
    cr_assert_eq(destroy_calls[id], 0, "still a self-cycle");
    cr_assert_eq(rc_gc_collect(2), 1);
    cr_assert_eq(del_calls[id], 1);
    cr_assert_eq(nsurvivors, 0);
    cr_assert_eq(destroy_calls[id], 1);
    rc_decref(wr);
}

Test(finalization, cycle_no_finalizer)
{
    Obj *s = make_self_cycle(&NoFinalizer_type);
    int id = s->id;
    rc_decref(s);
    cr_assert_eq(rc_gc_collect(2), 1);
    cr_assert_eq(del_calls[id], 0);
    cr_assert_eq(destroy_calls[id], 1);
}

/* ---- cyclic chains (CycleChainFinalizationTest) ---------------------------- */

static int build_chain(rc_type *const *types, int n, Obj **nodes, rc_object **wrs)
{
    for (int i = 0; i < n; i++)
        nodes[i] = make(types[i]);
    for (int i = 0; i < n; i++)
        rc_set(&nodes[i]->left, RC_OBJ(nodes[(i + n - 1) % n]));
    for (int i = 0; i < n; i++)
        wrs[i] = rc_weakref_new(RC_OBJ(nodes[i]), NULL);
    int first = nodes[0]->id;
    for (int i = 0; i < n; i++)
        rc_decref(nodes[i]);
    return first;
}

static void check_non_resurrecting_chain(rc_type *const *types, int n)
{
    Obj *nodes[16];
    rc_object *wrs[16];
    int first = build_chain(types, n, nodes, wrs);
    int with_finalizer = 0;
    for (int i = 0; i < n; i++)
        with_finalizer += types[i]->finalize != NULL;
    cr_assert_eq(rc_gc_collect(2), (size_t)n);
    for (int i = 0; i < n; i++) {
        int id = first + i;
        cr_assert_eq(del_calls[id], types[i]->finalize ? 1 : 0, "node %d", i);
        if (types[i]->finalize)
            cr_assert(saw_refs_intact[id], "node %d saw its reference", i);
        cr_assert_eq(destroy_calls[id], 1, "node %d freed", i);
        cr_assert_null(rc_weakref_get(wrs[i]));
    }
    cr_assert_eq(nsurvivors, 0);
    rc_gc_collect(2);
    for (int i = 0; i < n; i++)
        cr_assert_eq(del_calls[first + i], types[i]->finalize ? 1 : 0);
    for (int i = 0; i < n; i++)
        rc_decref(wrs[i]);
    (void)with_finalizer;
}

static void check_resurrecting_chain(rc_type *const *types, int n)
{
    Obj *nodes[16];
    rc_object *wrs[16];
    int nres = 0;
    for (int i = 0; i < n; i++)
        nres += types[i] == &Resurrector_type;
    int first = build_chain(types, n, nodes, wrs);
    /* every node is reachable from a resurrected one: all survive */
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(nsurvivors, nres);
    for (int i = 0; i < n; i++) {
        int id = first + i;
        cr_assert_eq(del_calls[id], types[i]->finalize ? 1 : 0, "node %d", i);
        cr_assert_eq(destroy_calls[id], 0, "node %d is resurrected with its cycle", i);
        /* As in CPython: the weakrefs were cleared even though it survived. */
        cr_assert_null(rc_weakref_get(wrs[i]), "node %d", i);
        cr_assert_eq(nodes[i]->left, RC_OBJ(nodes[(i + n - 1) % n]), "node %d not cleared", i);
    }
    clear_survivors();
    cr_assert_eq(rc_gc_collect(2), (size_t)n);
    for (int i = 0; i < n; i++) {
        int id = first + i;
        cr_assert_eq(del_calls[id], types[i]->finalize ? 1 : 0, "once per object: node %d", i);
        cr_assert_eq(destroy_calls[id], 1, "node %d freed", i);
    }
    cr_assert_eq(nsurvivors, 0);
    for (int i = 0; i < n; i++)
        rc_decref(wrs[i]);
}

Test(finalization, chain_homogenous)
{
    rc_type *const types[] = {&Simple_type, &Simple_type, &Simple_type};
    check_non_resurrecting_chain(types, 3);
}

Test(finalization, chain_legacy_free)
{
    rc_type *const types[] = {&NoFinalizer_type, &Simple_type, &NoFinalizer_type,
                              &Simple_type};
    check_non_resurrecting_chain(types, 4);
}

Test(finalization, chain_resurrector_in_the_middle)
{
    rc_type *const types[] = {&Simple_type, &Resurrector_type, &Simple_type};
    check_resurrecting_chain(types, 3);
}

Test(finalization, chain_all_resurrectors)
{
    rc_type *const types[] = {&Resurrector_type, &Resurrector_type};
    check_resurrecting_chain(types, 2);
}

/* ---- resurrection does not block cleanup of others -------------------------- */

Test(finalization, resurrection_does_not_block_cleanup_of_others)
{
    enum { N = 100 };
    rc_gc_stats st0[3], st1[3];
    int firsts[N];
    for (int i = 0; i < N; i++) {
        Obj *o = make_self_cycle(&Simple_type);
        firsts[i] = o->id;
        rc_decref(o);
    }
    Obj *z = make_self_cycle(&Resurrector_type);
    int zid = z->id;
    rc_decref(z);

    rc_gc_get_stats(st0);
    cr_assert_eq(rc_gc_collect(2), N, "the resurrected object is not counted");
    rc_gc_get_stats(st1);
    cr_assert_eq(st1[2].collected - st0[2].collected, N);
    cr_assert_eq(st1[2].uncollectable - st0[2].uncollectable, 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(del_calls[firsts[i]], 1);
        cr_assert_eq(destroy_calls[firsts[i]], 1, "the others ARE freed");
    }
    cr_assert_eq(del_calls[zid], 1);
    cr_assert_eq(destroy_calls[zid], 0, "the resurrected object is alive");
    cr_assert_eq(nsurvivors, 1);
    cr_assert_eq(survivors[0], RC_OBJ(z));

    clear_survivors();
    cr_assert_eq(rc_gc_collect(2), 1);
    cr_assert_eq(del_calls[zid], 1, "happens once per object");
    cr_assert_eq(destroy_calls[zid], 1);
    cr_assert_eq(nsurvivors, 0);
}

Test(finalization, resurrected_object_keeps_what_it_references)
{
    /* z resurrects; the object it refers to is reachable again and must not
     * be freed, even though it was in the unreachable set. */
    Obj *z = make(&Resurrector_type);
    Obj *cargo = make_self_cycle(&Simple_type);
    rc_set(&z->left, RC_OBJ(cargo));
    rc_set(&cargo->left, RC_OBJ(z)); /* z <-> cargo */
    int zid = z->id, cid = cargo->id;
    rc_decref(cargo);
    rc_decref(z);
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(del_calls[zid], 1);
    cr_assert_eq(del_calls[cid], 1);
    cr_assert_eq(destroy_calls[cid], 0);
    cr_assert_eq(cargo->left, RC_OBJ(z));
    clear_survivors();
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(del_calls[zid], 1);
    cr_assert_eq(del_calls[cid], 1);
    cr_assert_eq(destroy_calls[zid], 1);
    cr_assert_eq(destroy_calls[cid], 1);
}

Test(finalization, is_finalized)
{
    Obj *s = make_self_cycle(&Resurrector_type);
    cr_assert_not(rc_gc_is_finalized(RC_OBJ(s)));
    rc_decref(s);
    cr_assert_not(rc_gc_is_finalized(RC_OBJ(s)), "nothing ran yet");
    rc_gc_collect(2);
    cr_assert(rc_gc_is_finalized(RC_OBJ(s)));
    clear_survivors();
    rc_gc_collect(2);

    Obj *plain = make(&NoFinalizer_type);
    cr_assert_not(rc_gc_is_finalized(RC_OBJ(plain)));
    rc_decref(plain);
}

/* ---- class-based finalizers (rc_class_new's `del`) ------------------------- */

static int class_del_calls;
static rc_object *class_storage;
static void class_del(rc_object *self)
{
    class_del_calls++;
    if (class_storage)
        rc_list_append(class_storage, self);
}

Test(finalization, class_del_once)
{
    rc_object *C = rc_class_new("C", NULL, class_del, 0);
    rc_object *c = rc_instance_new(C);
    rc_setattr(c, "me", c);
    class_storage = rc_list_new();
    rc_decref(c);
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(class_del_calls, 1);
    cr_assert_eq(rc_list_len(class_storage), 1);
    cr_assert_eq(rc_getattr(c, "me"), c, "the resurrected instance keeps its __dict__");
    rc_list_clear(class_storage);
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(class_del_calls, 1);
    cr_assert_eq(rc_list_len(class_storage), 0);
    rc_decref(class_storage);
    class_storage = NULL;
    rc_decref(C);
}
