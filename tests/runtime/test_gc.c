/*
 * The cycle collector against CPython 3.11's Lib/test/test_gc.py: the same
 * scenarios, the same numbers. Each Criterion test runs in its own process,
 * so the collector starts fresh every time.
 */
#include <refscope/rc.h>

#include <criterion/criterion.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- test types ------------------------------------------------------------ */

/* Node: two references; counts its deallocations (destroy runs once, when
 * the object's memory is released). */
typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *a;
    rc_object *b;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, a), RC_REF(Node, b), RC_FIELDS_END};

static int destroyed;
static void count_destroy(rc_object *self)
{
    (void)self;
    destroyed++;
}
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields,
                            .destroy = count_destroy};

/* LegacyNode: a tp_del-style finalizer makes any cycle through it uncollectable. */
static int legacy_calls;
static void legacy_del(rc_object *self)
{
    (void)self;
    legacy_calls++;
}
static rc_type LegacyNode_type = {.name = "LegacyNode", .size = sizeof(Node),
                                  .fields = node_fields, .legacy_del = legacy_del,
                                  .destroy = count_destroy};

static Node *node_new(void)
{
    Node *n = rc_new(Node, &Node_type);
    cr_assert_not_null(n);
    return n;
}

/* A Node that refers to itself, our reference dropped: cyclic trash. */
static void make_self_cycle(rc_type *type)
{
    Node *n = rc_new(Node, type);
    rc_set(&n->a, RC_OBJ(n));
    rc_decref(n);
}

static bool list_contains(rc_object *list, rc_object *o)
{
    for (size_t k = 0; k < rc_list_len(list); k++)
        if (rc_list_get(list, k) == o)
            return true;
    return false;
}

static bool in_generation(rc_object *o, int generation)
{
    rc_object *objs = rc_gc_get_objects(generation);
    cr_assert_not_null(objs);
    bool found = list_contains(objs, o);
    rc_decref(objs);
    return found;
}

/* Like test_gc's test_main: automatic collection off, a clean start. */
static void setup(void)
{
    rc_init();
    rc_gc_disable();
    rc_gc_collect(2);
    destroyed = 0;
    legacy_calls = 0;
}

TestSuite(gc, .init = setup);

/* ---- what collect() returns ------------------------------------------------ */

Test(gc, list)
{
    rc_object *l = rc_list_new();
    rc_list_append(l, l);
    rc_gc_collect(2);
    rc_decref(l);
    cr_assert_eq(rc_gc_collect(2), 1);
}

Test(gc, dict)
{
    rc_object *d = rc_dict_new();
    rc_dict_set(d, "1", d);
    rc_gc_collect(2);
    rc_decref(d);
    cr_assert_eq(rc_gc_collect(2), 1);
}

Test(gc, tuple)
{
    /* since tuples are immutable we close the loop with a list */
    rc_object *l = rc_list_new();
    rc_object *t = rc_tuple_new(1, l);
    rc_list_append(l, t);
    rc_gc_collect(2);
    rc_decref(t);
    rc_decref(l);
    cr_assert_eq(rc_gc_collect(2), 2);
}

Test(gc, instance)
{
    rc_object *A = rc_class_new("A", NULL, NULL, 0);
    rc_object *a = rc_instance_new(A);
    cr_assert_eq(rc_setattr(a, "a", a), 0);
    rc_gc_collect(2);
    rc_decref(a);
    cr_assert_eq(rc_gc_collect(2), 2, "the instance and its __dict__");
    rc_decref(A);
}

Test(gc, slotted_instance)
{
    static const char *const slots[] = {"a", NULL};
    rc_object *A = rc_class_new("A", slots, NULL, 0);
    rc_object *a = rc_instance_new(A);
    cr_assert_eq(rc_setattr(a, "a", a), 0);
    rc_gc_collect(2);
    rc_decref(a);
    cr_assert_eq(rc_gc_collect(2), 1, "a slotted instance has no __dict__");
    rc_decref(A);
}

Test(gc, hundred_self_cycles)
{
    for (int k = 0; k < 100; k++)
        make_self_cycle(&Node_type);
    cr_assert_eq(destroyed, 0);
    cr_assert_eq(rc_gc_collect(2), 100);
    cr_assert_eq(destroyed, 100);
    cr_assert_eq(rc_gc_collect(2), 0);
}

Test(gc, reachable_cycle_is_not_collected)
{
    Node *n = node_new();
    rc_set(&n->a, RC_OBJ(n));
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(destroyed, 0);
    cr_assert_eq(rc_refcount(n), 2);
    rc_decref(n);
    cr_assert_eq(rc_gc_collect(2), 1);
    cr_assert_eq(destroyed, 1);
}

static rc_object *closure_body(rc_object *self, rc_object *arg)
{
    (void)self;
    (void)arg;
    return NULL;
}

Test(gc, function_like_closure_cycle)
{
    /* test_function: a function's globals hold the function. Here: a
     * closure capturing the dict that holds it. */
    rc_object *d = rc_dict_new();
    const char *names[] = {"env"};
    rc_object *cells[] = {d};
    rc_object *f = rc_closure_new(closure_body, "f", 1, names, cells);
    rc_dict_set(d, "f", f);
    rc_decref(f);
    rc_decref(d);
    cr_assert_eq(rc_gc_collect(2), 2);
}

/* ---- generations ----------------------------------------------------------- */

Test(gc, get_count)
{
    rc_gc_collect(2);
    size_t c[3], d[3];
    rc_gc_get_count(c);
    rc_object *x = rc_list_new();
    rc_gc_get_count(d);
    cr_assert_eq(c[1], 0);
    cr_assert_eq(c[2], 0);
    cr_assert_eq(d[1], 0);
    cr_assert_eq(d[2], 0);
    cr_assert_lt(c[0], 5);
    cr_assert_gt(d[0], c[0], "creating a list counts in generation 0");
    rc_decref(x);
}

Test(gc, collect_generations)
{
    rc_gc_collect(2);
    /* x "trickles" into generation N + 1 after each collect(N) */
    rc_object *x = rc_list_new();
    size_t c[3];
    rc_gc_collect(0);
    rc_gc_get_count(c);
    cr_assert_eq(c[1], 1);
    cr_assert_eq(c[2], 0);
    cr_assert(in_generation(x, 1));
    rc_gc_collect(1);
    rc_gc_get_count(c);
    cr_assert_eq(c[1], 0);
    cr_assert_eq(c[2], 1);
    cr_assert(in_generation(x, 2));
    rc_gc_collect(2);
    rc_gc_get_count(c);
    cr_assert_eq(c[1], 0);
    cr_assert_eq(c[2], 0);
    rc_decref(x);
}

Test(gc, get_objects_by_generation)
{
    rc_gc_collect(2);
    rc_object *l = rc_list_new();
    rc_list_append(l, l);
    cr_assert(in_generation(l, 0));
    cr_assert_not(in_generation(l, 1));
    cr_assert_not(in_generation(l, 2));
    cr_assert(in_generation(l, -1));
    rc_gc_collect(0);
    cr_assert_not(in_generation(l, 0));
    cr_assert(in_generation(l, 1));
    cr_assert_not(in_generation(l, 2));
    rc_gc_collect(1);
    cr_assert_not(in_generation(l, 0));
    cr_assert_not(in_generation(l, 1));
    cr_assert(in_generation(l, 2));
    rc_gc_collect(2);
    cr_assert_not(in_generation(l, 0));
    cr_assert_not(in_generation(l, 1));
    cr_assert(in_generation(l, 2));
    cr_assert(in_generation(l, -1));

    rc_object *i = rc_int(12345);
    cr_assert_not(in_generation(i, -1), "ints are never tracked");
    rc_decref(i);
    rc_decref(l);
    cr_assert_eq(rc_gc_collect(2), 1);
}

Test(gc, get_stats)
{
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    rc_gc_collect(0);
    rc_gc_get_stats(now);
    cr_assert_eq(now[0].collections, old[0].collections + 1);
    cr_assert_eq(now[1].collections, old[1].collections);
    cr_assert_eq(now[2].collections, old[2].collections);
    rc_gc_collect(1);
    rc_gc_get_stats(now);
    cr_assert_eq(now[0].collections, old[0].collections + 1);
    cr_assert_eq(now[1].collections, old[1].collections + 1);
    cr_assert_eq(now[2].collections, old[2].collections);
    rc_gc_collect(2);
    rc_gc_get_stats(now);
    cr_assert_eq(now[0].collections, old[0].collections + 1);
    cr_assert_eq(now[1].collections, old[1].collections + 1);
    cr_assert_eq(now[2].collections, old[2].collections + 1);

    /* collected goes to the collected generation's entry */
    make_self_cycle(&Node_type);
    make_self_cycle(&Node_type);
    rc_gc_get_stats(old);
    cr_assert_eq(rc_gc_collect(0), 2);
    rc_gc_get_stats(now);
    cr_assert_eq(now[0].collected, old[0].collected + 2);
    cr_assert_eq(now[0].uncollectable, old[0].uncollectable);
    cr_assert_eq(now[2].collected, old[2].collected);
}

Test(gc, thresholds)
{
    int th[3];
    rc_gc_get_threshold(th);
    cr_assert_eq(th[0], 700);
    cr_assert_eq(th[1], 10);
    cr_assert_eq(th[2], 10);
    rc_gc_set_threshold(5, 6, 7);
    rc_gc_get_threshold(th);
    cr_assert_eq(th[0], 5);
    cr_assert_eq(th[1], 6);
    cr_assert_eq(th[2], 7);
}

Test(gc, enable_disable)
{
    /* the fixture disabled it; a fresh runtime starts enabled */
    cr_assert_not(rc_gc_isenabled());
    rc_gc_enable();
    cr_assert(rc_gc_isenabled());
    rc_gc_disable();
    cr_assert_not(rc_gc_isenabled());
    rc_gc_enable();
    cr_assert(rc_gc_isenabled());
}

static void bare_init(void)
{
    rc_init();
}
Test(gc_default, enabled_at_start, .init = bare_init)
{
    cr_assert(rc_gc_isenabled());
    unsigned flags = rc_gc_get_debug();
    cr_assert_eq(flags, 0);
    cr_assert_eq(rc_gc_get_freeze_count(), 0);
    cr_assert_eq(rc_list_len(rc_gc_garbage()), 0);
}

/* ---- automatic collection -------------------------------------------------- */

Test(gc, automatic_collection_when_threshold_exceeded)
{
    rc_gc_enable();
    rc_gc_set_threshold(5, 10, 10);
    rc_gc_collect(2);
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    for (int k = 0; k < 50; k++)
        make_self_cycle(&Node_type);
    rc_gc_get_stats(now);
    size_t gen0 = now[0].collections - old[0].collections;
    cr_assert_geq(gen0, 5, "50 allocations, threshold 5: got %zu gen-0 collections", gen0);
    cr_assert_geq(destroyed, 40, "the collections freed the cycles: %d of 50", destroyed);
    rc_gc_collect(2);
    cr_assert_eq(destroyed, 50);
}

Test(gc, automatic_collection_of_older_generations)
{
    rc_gc_enable();
    rc_gc_set_threshold(5, 2, 2);
    rc_gc_collect(2);
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    for (int k = 0; k < 500; k++)
        make_self_cycle(&Node_type);
    rc_gc_get_stats(now);
    cr_assert_gt(now[1].collections, old[1].collections, "generation 1 collected too");
}

Test(gc, no_automatic_collection_when_disabled)
{
    rc_gc_set_threshold(5, 10, 10);
    cr_assert_not(rc_gc_isenabled());
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    for (int k = 0; k < 50; k++)
        make_self_cycle(&Node_type);
    rc_gc_get_stats(now);
    for (int g = 0; g < 3; g++)
        cr_assert_eq(now[g].collections, old[g].collections);
    cr_assert_eq(destroyed, 0);
    cr_assert_eq(rc_gc_collect(2), 50, "collect() works while disabled");
    cr_assert_eq(destroyed, 50);
}

Test(gc, no_automatic_collection_when_threshold0_is_0)
{
    rc_gc_enable();
    rc_gc_set_threshold(0, 10, 10);
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    for (int k = 0; k < 2000; k++)
        make_self_cycle(&Node_type);
    rc_gc_get_stats(now);
    for (int g = 0; g < 3; g++)
        cr_assert_eq(now[g].collections, old[g].collections);
    cr_assert_eq(destroyed, 0);
    cr_assert_eq(rc_gc_collect(2), 2000);
}

/* ---- inspection ------------------------------------------------------------ */

Test(gc, is_tracked)
{
    rc_object *i = rc_int(1), *s = rc_str("a"), *b = rc_bytes(1);
    cr_assert_not(rc_gc_is_tracked(i));
    cr_assert_not(rc_gc_is_tracked(s));
    cr_assert_not(rc_gc_is_tracked(b));
    rc_object *l = rc_list_new(), *d = rc_dict_new();
    cr_assert(rc_gc_is_tracked(l));
    cr_assert(rc_gc_is_tracked(d));
    rc_object *C = rc_class_new("UserClass", NULL, NULL, 0);
    rc_object *c = rc_instance_new(C);
    cr_assert(rc_gc_is_tracked(c));
    static const char *const slots[] = {"x", NULL};
    rc_object *S = rc_class_new("UserClassSlots", slots, NULL, 0);
    rc_object *sl = rc_instance_new(S);
    cr_assert(rc_gc_is_tracked(sl));
    Node *n = node_new();
    cr_assert(rc_gc_is_tracked(RC_OBJ(n)));
    rc_decref(n);
    rc_decref(sl);
    rc_decref(S);
    rc_decref(c);
    rc_decref(C);
    rc_decref(l);
    rc_decref(d);
    rc_decref(i);
    rc_decref(s);
    rc_decref(b);
}

Test(gc, get_referents)
{
    rc_object *one = rc_int(1), *three = rc_int(3), *five = rc_int(5), *seven = rc_int(7);
    rc_object *alist = rc_list_new();
    rc_list_append(alist, one);
    rc_list_append(alist, three);
    rc_list_append(alist, five);
    rc_object *got = rc_gc_get_referents(alist);
    cr_assert_eq(rc_list_len(got), 3);
    cr_assert_eq(rc_list_get(got, 0), one);
    cr_assert_eq(rc_list_get(got, 1), three);
    cr_assert_eq(rc_list_get(got, 2), five);
    rc_decref(got);

    rc_object *atuple = rc_tuple_new(3, one, three, five);
    got = rc_gc_get_referents(atuple);
    cr_assert_eq(rc_list_len(got), 3);
    cr_assert(list_contains(got, one) && list_contains(got, three) && list_contains(got, five));
    rc_decref(got);

    /* string keys are not objects here: a dict's referents are its values */
    rc_object *adict = rc_dict_new();
    rc_dict_set(adict, "1", three);
    rc_dict_set(adict, "5", seven);
    got = rc_gc_get_referents(adict);
    cr_assert_eq(rc_list_len(got), 2);
    cr_assert(list_contains(got, three) && list_contains(got, seven));
    rc_decref(got);

    Node *n = node_new();
    rc_set(&n->b, seven);
    got = rc_gc_get_referents(RC_OBJ(n));
    cr_assert_eq(rc_list_len(got), 1, "NULL fields are not referents");
    cr_assert_eq(rc_list_get(got, 0), seven);
    rc_decref(got);

    got = rc_gc_get_referents(one);
    cr_assert_eq(rc_list_len(got), 0, "an int refers to nothing");
    rc_decref(got);

    rc_decref(n);
    rc_decref(adict);
    rc_decref(atuple);
    rc_decref(alist);
    rc_decref(one);
    rc_decref(three);
    rc_decref(five);
    rc_decref(seven);
}

Test(gc, get_referrers)
{
    rc_object *item = rc_str("item");
    rc_object *l = rc_list_new(), *other = rc_list_new(), *d = rc_dict_new();
    rc_list_append(l, item);
    rc_dict_set(d, "k", item);
    rc_object *got = rc_gc_get_referrers(item);
    cr_assert(list_contains(got, l));
    cr_assert(list_contains(got, d));
    cr_assert_not(list_contains(got, other));
    cr_assert_eq(rc_list_len(got), 2);
    rc_decref(got);
    rc_decref(l);
    rc_decref(d);
    rc_decref(other);
    rc_decref(item);
}

/* ---- freeze ---------------------------------------------------------------- */

Test(gc, freeze)
{
    rc_gc_collect(2);
    rc_object *objs = rc_gc_get_objects(-1);
    size_t tracked = rc_list_len(objs);
    rc_decref(objs);

    rc_gc_freeze();
    cr_assert_gt(rc_gc_get_freeze_count(), 0);
    cr_assert_eq(rc_gc_get_freeze_count(), tracked);
    size_t c[3];
    rc_gc_get_count(c);
    cr_assert_eq(c[0], 0, "freeze resets generation 0's count");
    cr_assert_eq(c[1], 0);
    cr_assert_eq(c[2], 0);
    rc_gc_unfreeze();
    cr_assert_eq(rc_gc_get_freeze_count(), 0);
}

Test(gc, frozen_cycles_are_not_collected)
{
    make_self_cycle(&Node_type);
    make_self_cycle(&Node_type);
    rc_gc_freeze();
    cr_assert_geq(rc_gc_get_freeze_count(), 2);
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(destroyed, 0);
    rc_gc_unfreeze();
    cr_assert_eq(rc_gc_get_freeze_count(), 0);
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(destroyed, 2);
}

/* ---- legacy finalizers and the garbage list -------------------------------- */

Test(gc, legacy_cycle_goes_to_garbage)
{
    Node *x = rc_new(Node, &LegacyNode_type);
    Node *y = rc_new(Node, &LegacyNode_type);
    rc_set(&x->a, RC_OBJ(y));
    rc_set(&y->a, RC_OBJ(x));
    rc_decref(x);
    rc_decref(y);
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    cr_assert_eq(rc_gc_collect(2), 2, "collected + uncollectable");
    rc_gc_get_stats(now);
    cr_assert_eq(now[2].uncollectable, old[2].uncollectable + 2);
    cr_assert_eq(now[2].collected, old[2].collected);
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 2);
    cr_assert(list_contains(garbage, RC_OBJ(x)));
    cr_assert(list_contains(garbage, RC_OBJ(y)));
    cr_assert_eq(legacy_calls, 0, "the collector never calls a legacy finalizer");
    cr_assert_eq(destroyed, 0);
    cr_assert_eq(rc_refcount(x), 2, "y and the garbage list hold x");

    /* a second collection finds nothing new: they are reachable from garbage */
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(rc_list_len(garbage), 2);

    /* break the cycle by hand, as test_legacy_finalizer does, and let go */
    rc_set(&x->a, NULL);
    rc_list_clear(garbage);
    cr_assert_eq(legacy_calls, 2, "refcount death runs the legacy finalizers");
    cr_assert_eq(destroyed, 2);
}

Test(gc, legacy_instance_cycle)
{
    /* test_legacy_finalizer: class A with __tp_del__, a.a = a */
    rc_object *A = rc_class_new("A", NULL, legacy_del, RC_CLASS_LEGACY_DEL);
    rc_object *B = rc_class_new("B", NULL, NULL, 0);
    rc_object *a = rc_instance_new(A);
    rc_setattr(a, "a", a);
    rc_object *b = rc_instance_new(B);
    rc_setattr(b, "b", b);
    rc_gc_collect(2);
    rc_decref(a);
    rc_decref(b);
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    cr_assert_eq(rc_gc_collect(2), 4, "b and its dict collected, a and its dict uncollectable");
    rc_gc_get_stats(now);
    cr_assert_eq(now[2].collected, old[2].collected + 2);
    cr_assert_eq(now[2].uncollectable, old[2].uncollectable + 2);
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 1, "only the object with the finalizer");
    cr_assert_eq(rc_list_get(garbage, 0), a);
    cr_assert_eq(legacy_calls, 0);
    rc_decref(A);
    rc_decref(B);
}

Test(gc, reachable_from_legacy_cycle_is_uncollectable_but_not_garbage)
{
    Node *x = rc_new(Node, &LegacyNode_type);
    Node *hanger = node_new();
    rc_set(&x->a, RC_OBJ(x));
    rc_set(&x->b, RC_OBJ(hanger));
    rc_decref(hanger);
    rc_decref(x);
    rc_gc_stats old[3], now[3];
    rc_gc_get_stats(old);
    cr_assert_eq(rc_gc_collect(2), 2);
    rc_gc_get_stats(now);
    cr_assert_eq(now[2].uncollectable, old[2].uncollectable + 2);
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 1);
    cr_assert_eq(rc_list_get(garbage, 0), RC_OBJ(x));
    cr_assert_not(list_contains(garbage, RC_OBJ(hanger)));
    cr_assert_eq(destroyed, 0, "the hanger stays alive: x still refers to it");
}

Test(gc, saveall_keeps_reachable_from_legacy_too)
{
    rc_gc_set_debug(RC_DEBUG_SAVEALL);
    Node *x = rc_new(Node, &LegacyNode_type);
    Node *hanger = node_new();
    rc_set(&x->a, RC_OBJ(x));
    rc_set(&x->b, RC_OBJ(hanger));
    rc_decref(hanger);
    rc_decref(x);
    cr_assert_eq(rc_gc_collect(2), 2);
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 2);
    cr_assert(list_contains(garbage, RC_OBJ(hanger)));
    rc_gc_set_debug(0);
}

Test(gc, saveall)
{
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 0);
    rc_object *L = rc_list_new();
    rc_list_append(L, L);
    rc_gc_set_debug(RC_DEBUG_SAVEALL);
    cr_assert_eq(rc_gc_get_debug(), RC_DEBUG_SAVEALL);
    rc_decref(L);
    rc_gc_collect(2);
    rc_gc_set_debug(0);
    cr_assert_eq(rc_list_len(garbage), 1);
    rc_object *obj = rc_list_pop(garbage);
    cr_assert_eq(obj, L);
    cr_assert_eq(rc_list_len(obj), 1, "SAVEALL keeps the object intact");
    cr_assert_eq(rc_list_get(obj, 0), obj);
    rc_decref(obj);
    cr_assert_eq(rc_gc_collect(2), 1);
}

Test(gc, saveall_two_cycle)
{
    rc_gc_set_debug(RC_DEBUG_SAVEALL);
    Node *x = node_new(), *y = node_new();
    rc_set(&x->a, RC_OBJ(y));
    rc_set(&y->a, RC_OBJ(x));
    rc_decref(x);
    rc_decref(y);
    cr_assert_eq(rc_gc_collect(2), 2);
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 2);
    cr_assert(list_contains(garbage, RC_OBJ(x)));
    cr_assert(list_contains(garbage, RC_OBJ(y)));
    cr_assert_eq(destroyed, 0, "not freed");
    cr_assert_eq(x->a, RC_OBJ(y), "not cleared");
    cr_assert_eq(y->a, RC_OBJ(x));
    rc_gc_set_debug(0);
    rc_list_clear(garbage);
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(destroyed, 2);
}

/* ---- resurrection (test_resurrection_*) ------------------------------------ */

static rc_object *zs; /* Z instances resurrect themselves into this list */
static void z_del(rc_object *self)
{
    rc_list_append(zs, self);
}

static void getstats(size_t *collected, size_t *uncollectable)
{
    rc_gc_stats st[3];
    rc_gc_get_stats(st);
    *collected = st[2].collected;
    *uncollectable = st[2].uncollectable;
}

static void make_self_loop_instance(rc_object *cls)
{
    rc_object *o = rc_instance_new(cls);
    rc_setattr(o, "me", o);
    rc_decref(o);
}

Test(gc, resurrection_does_not_block_cleanup_of_other_objects)
{
    enum { N = 100 };
    rc_object *A = rc_class_new("A", NULL, NULL, 0);   /* simple self-loop */
    rc_object *Z = rc_class_new("Z", NULL, z_del, 0);  /* resurrecting __del__ */
    zs = rc_list_new();
    size_t oldc, oldnc, c, nc, t;

    /* No problems if just collecting A() instances. */
    getstats(&oldc, &oldnc);
    for (int i = 0; i < N; i++)
        make_self_loop_instance(A);
    t = rc_gc_collect(2);
    getstats(&c, &nc);
    cr_assert_eq(t, 2 * N, "instance object & its dict");
    cr_assert_eq(c - oldc, 2 * N);
    cr_assert_eq(nc - oldnc, 0);

    /* But Z() is not actually collected. */
    oldc = c, oldnc = nc;
    make_self_loop_instance(Z);
    /* Nothing is collected - Z() is merely resurrected. */
    t = rc_gc_collect(2);
    getstats(&c, &nc);
    cr_assert_eq(t, 0);
    cr_assert_eq(c - oldc, 0);
    cr_assert_eq(nc - oldnc, 0);
    cr_assert_eq(rc_list_len(zs), 1);

    /* Z() should not prevent anything else from being collected. */
    oldc = c, oldnc = nc;
    for (int i = 0; i < N; i++)
        make_self_loop_instance(A);
    make_self_loop_instance(Z);
    t = rc_gc_collect(2);
    getstats(&c, &nc);
    cr_assert_eq(t, 2 * N);
    cr_assert_eq(c - oldc, 2 * N);
    cr_assert_eq(nc - oldnc, 0);

    /* The A() trash should have been reclaimed already but the 2 copies of
     * Z are still in zs (and the associated dicts). */
    oldc = c, oldnc = nc;
    rc_list_clear(zs);
    t = rc_gc_collect(2);
    getstats(&c, &nc);
    cr_assert_eq(t, 4);
    cr_assert_eq(c - oldc, 4);
    cr_assert_eq(nc - oldnc, 0);
    cr_assert_eq(rc_list_len(zs), 0, "a finalizer runs once: no second resurrection");

    rc_decref(zs);
    rc_decref(A);
    rc_decref(Z);
}

static rc_object *laz;
static void lazarus_del(rc_object *self)
{
    rc_set(&laz, self);
}

Test(gc, resurrection_is_transitive)
{
    rc_object *Cargo = rc_class_new("Cargo", NULL, NULL, 0);
    rc_object *Lazarus = rc_class_new("Lazarus", NULL, lazarus_del, 0);
    rc_object *lazarus = rc_instance_new(Lazarus);
    rc_object *cargo = rc_instance_new(Cargo);
    rc_setattr(cargo, "me", cargo);
    /* a cycle between cargo and lazarus */
    rc_setattr(cargo, "laz", lazarus);
    rc_setattr(lazarus, "cargo", cargo);
    size_t oldc, oldnc, c, nc;
    getstats(&oldc, &oldnc);
    rc_decref(lazarus);
    rc_decref(cargo);
    /* Collect the cycle. This should resurrect both objects. */
    rc_gc_collect(2);
    cr_assert_not_null(laz);
    cr_assert_eq(rc_getattr(laz, "cargo"), cargo);
    cr_assert_eq(rc_getattr(cargo, "me"), cargo, "cargo was not cleared");
    cr_assert_eq(rc_getattr(cargo, "laz"), laz);
    getstats(&c, &nc);
    cr_assert_eq(c - oldc, 0);
    cr_assert_eq(nc - oldnc, 0);
    rc_set(&laz, NULL);
    cr_assert_eq(rc_gc_collect(2), 4);
    rc_decref(Cargo);
    rc_decref(Lazarus);
}

Test(gc, is_finalized)
{
    rc_object *three = rc_int(3);
    cr_assert_not(rc_gc_is_finalized(three), "objects not tracked are never finalized");
    rc_decref(three);

    rc_object *storage = rc_list_new();
    zs = storage;
    rc_object *Lazarus = rc_class_new("Lazarus", NULL, z_del, 0);
    rc_object *lazarus = rc_instance_new(Lazarus);
    cr_assert_not(rc_gc_is_finalized(lazarus));
    rc_decref(lazarus);
    rc_gc_collect(2);
    lazarus = rc_list_pop(storage);
    cr_assert_not_null(lazarus);
    cr_assert(rc_gc_is_finalized(lazarus));
    rc_decref(lazarus);
    rc_decref(storage);
    rc_decref(Lazarus);
}

/* ---- callbacks (GCCallbackTests) ------------------------------------------- */

#define MAX_VISITS 64
static struct visit {
    int who;
    char phase[8];
    int generation;
    size_t collected, uncollectable;
} visits[MAX_VISITS];
static int nvisits;

static void record(const char *phase, int generation, size_t collected, size_t uncollectable,
                   void *data)
{
    if (nvisits < MAX_VISITS) {
        struct visit *v = &visits[nvisits++];
        v->who = *(int *)data;
        snprintf(v->phase, sizeof v->phase, "%s", phase);
        v->generation = generation;
        v->collected = collected;
        v->uncollectable = uncollectable;
    }
}

static int one = 1, two = 2;

Test(gc, callbacks_start_and_stop)
{
    cr_assert_eq(rc_gc_callback_add(record, &one), 0);
    Node *x = node_new(), *y = node_new();
    rc_set(&x->a, RC_OBJ(y));
    rc_set(&y->a, RC_OBJ(x));
    rc_decref(x);
    rc_decref(y);
    nvisits = 0;
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(nvisits, 2);
    cr_assert_str_eq(visits[0].phase, "start");
    cr_assert_eq(visits[0].generation, 2);
    cr_assert_str_eq(visits[1].phase, "stop");
    cr_assert_eq(visits[1].generation, 2);
    cr_assert_eq(visits[1].collected, 2);
    cr_assert_eq(visits[1].uncollectable, 0);
    cr_assert_eq(visits[1].who, 1, "the data pointer is passed through");

    nvisits = 0;
    rc_gc_collect(0);
    cr_assert_eq(nvisits, 2);
    cr_assert_eq(visits[0].generation, 0);
    cr_assert_eq(visits[1].generation, 0);
    cr_assert_eq(visits[1].collected, 0);

    cr_assert_eq(rc_gc_callback_remove(record, &one), 0);
    nvisits = 0;
    rc_gc_collect(2);
    cr_assert_eq(nvisits, 0, "removed callbacks are not called");
    cr_assert_neq(rc_gc_callback_remove(record, &one), 0, "removing twice is an error");
}

Test(gc, two_callbacks)
{
    rc_gc_callback_add(record, &one);
    rc_gc_callback_add(record, &two);
    nvisits = 0;
    rc_gc_collect(2);
    /* like test_collect: each callback sees start and stop, in list order */
    cr_assert_eq(nvisits, 4);
    cr_assert_eq(visits[0].who, 1);
    cr_assert_str_eq(visits[0].phase, "start");
    cr_assert_eq(visits[1].who, 2);
    cr_assert_str_eq(visits[1].phase, "start");
    cr_assert_eq(visits[2].who, 1);
    cr_assert_str_eq(visits[2].phase, "stop");
    cr_assert_eq(visits[3].who, 2);
    cr_assert_str_eq(visits[3].phase, "stop");
    rc_gc_callback_remove(record, &one);
    nvisits = 0;
    rc_gc_collect(2);
    cr_assert_eq(nvisits, 2);
    cr_assert_eq(visits[0].who, 2);
    rc_gc_callback_remove(record, &two);
}

/* Uncollectable: a reference cycle with multiple legacy finalizers. */
static void make_uncollectable(rc_object *cls)
{
    rc_object *u = rc_instance_new(cls);
    rc_object *partner = rc_instance_new(cls);
    rc_setattr(u, "partner", partner);
    rc_setattr(partner, "partner", u);
    rc_decref(partner);
    rc_decref(u);
}

Test(gc, callbacks_collect_garbage)
{
    rc_object *Uncollectable = rc_class_new("Uncollectable", NULL, legacy_del,
                                            RC_CLASS_LEGACY_DEL);
    rc_object *C1055820 = rc_class_new("C1055820", NULL, NULL, 0);
    rc_gc_callback_add(record, &one);
    rc_gc_callback_add(record, &two);
    nvisits = 0;
    /* Each of these cause four objects to be garbage: two Uncollectables
     * and their instance dicts. */
    make_uncollectable(Uncollectable);
    make_uncollectable(Uncollectable);
    rc_object *c = rc_instance_new(C1055820);
    rc_object *i666 = rc_int(666);
    rc_setattr(c, "i", i666);
    rc_setattr(c, "loop", c);
    rc_decref(i666);
    rc_decref(c);
    rc_gc_collect(2);
    int stops = 0;
    for (int k = 0; k < nvisits; k++) {
        if (strcmp(visits[k].phase, "stop") != 0)
            continue;
        stops++;
        cr_assert_eq(visits[k].collected, 2);
        cr_assert_eq(visits[k].uncollectable, 8);
    }
    cr_assert_eq(stops, 2);
    rc_object *garbage = rc_gc_garbage();
    cr_assert_eq(rc_list_len(garbage), 4);
    for (size_t k = 0; k < rc_list_len(garbage); k++)
        cr_assert_eq(rc_instance_class(rc_list_get(garbage, k)), Uncollectable);
    rc_gc_callback_remove(record, &one);
    rc_gc_callback_remove(record, &two);
}

/* ---- debug output ---------------------------------------------------------- */

static char *read_stream(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    char *buf = calloc(1, (size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    return buf;
}

static void make_two_cycle(rc_type *type, Node **px, Node **py)
{
    Node *x = rc_new(Node, type), *y = rc_new(Node, type);
    rc_set(&x->a, RC_OBJ(y));
    rc_set(&y->a, RC_OBJ(x));
    *px = x;
    *py = y;
    rc_decref(x);
    rc_decref(y);
}

Test(gc, debug_stats)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    rc_gc_set_debug_stream(f);
    rc_gc_set_debug(RC_DEBUG_STATS);
    Node *x, *y;
    make_two_cycle(&Node_type, &x, &y);
    cr_assert_eq(rc_gc_collect(2), 2);
    rc_gc_set_debug(0);
    char *out = read_stream(f);
    cr_assert_not_null(strstr(out, "gc: collecting generation 2...\n"), "got:\n%s", out);
    regex_t re;
    cr_assert_eq(regcomp(&re,
                         "gc: done, 2 unreachable, 0 uncollectable, [0-9]+\\.[0-9]{4}s elapsed\n",
                         REG_EXTENDED), 0);
    cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "no 'gc: done' line in:\n%s", out);
    regfree(&re);
    cr_assert_lt(strstr(out, "gc: collecting"), strstr(out, "gc: done"));
    free(out);

    /* flags off: nothing more is written */
    long before = ftell(f);
    rc_gc_collect(2);
    fflush(f);
    cr_assert_eq(ftell(f), before);
    rc_gc_set_debug_stream(NULL);
    fclose(f);
}

Test(gc, debug_collectable)
{
    FILE *f = tmpfile();
    rc_gc_set_debug_stream(f);
    rc_gc_set_debug(RC_DEBUG_COLLECTABLE);
    Node *x, *y;
    make_two_cycle(&Node_type, &x, &y);
    char want_x[64], want_y[64];
    snprintf(want_x, sizeof want_x, "gc: collectable <Node %p>\n", (void *)x);
    snprintf(want_y, sizeof want_y, "gc: collectable <Node %p>\n", (void *)y);
    cr_assert_eq(rc_gc_collect(2), 2);
    rc_gc_set_debug(0);
    char *out = read_stream(f);
    cr_assert_not_null(strstr(out, "gc: collectable <Node 0x"), "got:\n%s", out);
    cr_assert_not_null(strstr(out, want_x), "want %s in:\n%s", want_x, out);
    cr_assert_not_null(strstr(out, want_y), "want %s in:\n%s", want_y, out);
    cr_assert_null(strstr(out, "uncollectable"));
    free(out);
    rc_gc_set_debug_stream(NULL);
    fclose(f);
}

Test(gc, debug_uncollectable)
{
    FILE *f = tmpfile();
    rc_gc_set_debug_stream(f);
    rc_gc_set_debug(RC_DEBUG_UNCOLLECTABLE | RC_DEBUG_STATS);
    Node *x, *y;
    make_two_cycle(&LegacyNode_type, &x, &y);
    char want_x[64];
    snprintf(want_x, sizeof want_x, "gc: uncollectable <LegacyNode %p>\n", (void *)x);
    cr_assert_eq(rc_gc_collect(2), 2);
    rc_gc_set_debug(0);
    char *out = read_stream(f);
    cr_assert_not_null(strstr(out, want_x), "want %s in:\n%s", want_x, out);
    cr_assert_not_null(strstr(out, "gc: done, 2 unreachable, 2 uncollectable, "), "got:\n%s", out);
    free(out);
    rc_gc_set_debug_stream(NULL);
    fclose(f);
}

/* ---- deep structures (the trashcan) ---------------------------------------- */

#define DEEP 1000000

static size_t tracked_now(void)
{
    rc_object *objs = rc_gc_get_objects(-1);
    size_t n = rc_list_len(objs);
    rc_decref(objs);
    return n;
}

Test(gc, deep_list_chain_freed_without_stack_overflow)
{
    size_t before = tracked_now();
    rc_object *top = rc_list_new(), *cur = top;
    for (int i = 0; i < DEEP; i++) {
        rc_object *next = rc_list_new();
        rc_list_append(cur, next);
        rc_decref(next);
        cur = next;
    }
    cr_assert_eq(tracked_now(), before + DEEP + 1);
    rc_decref(top);
    cr_assert_eq(tracked_now(), before);
}

Test(gc, deep_tuple_chain_freed_without_stack_overflow)
{
    size_t before = tracked_now();
    rc_object *t = rc_tuple_new(0);
    for (int i = 0; i < DEEP; i++) {
        rc_object *outer = rc_tuple_new(1, t);
        rc_decref(t);
        t = outer;
    }
    rc_decref(t);
    cr_assert_eq(tracked_now(), before);
}

Test(gc, deep_node_chain_freed_without_stack_overflow)
{
    Node *top = node_new(), *cur = top;
    for (int i = 0; i < DEEP; i++) {
        Node *next = node_new();
        rc_set(&cur->a, RC_OBJ(next));
        rc_decref(next);
        cur = next;
    }
    cr_assert_eq(destroyed, 0);
    rc_decref(top);
    cr_assert_eq(destroyed, DEEP + 1);
}

Test(gc, deep_instance_chain_freed_without_stack_overflow)
{
    static const char *const slots[] = {"next", NULL};
    rc_object *C = rc_class_new("Link", slots, NULL, 0);
    size_t before = tracked_now();
    rc_object *top = rc_instance_new(C), *cur = top;
    for (int i = 0; i < DEEP; i++) {
        rc_object *next = rc_instance_new(C);
        rc_setattr(cur, "next", next);
        rc_decref(next);
        cur = next;
    }
    rc_decref(top);
    cr_assert_eq(tracked_now(), before);
    rc_decref(C);
}

Test(gc, deep_dict_chain_in_a_cycle_collected)
{
    /* the collector's clear also goes through deallocation: a long chain
     * hanging off a cycle */
    size_t before = tracked_now();
    rc_object *top = rc_dict_new(), *cur = top;
    rc_dict_set(top, "self", top);
    for (int i = 0; i < DEEP; i++) {
        rc_object *next = rc_dict_new();
        rc_dict_set(cur, "next", next);
        rc_decref(next);
        cur = next;
    }
    rc_decref(top);
    cr_assert_eq(rc_gc_collect(2), DEEP + 1);
    cr_assert_eq(tracked_now(), before);
}

/* test_trashcan: finalizers that collect in the middle of a deep dealloc */
static int ouch_n;
static void ouch_del(rc_object *self)
{
    (void)self;
    ouch_n++;
    if (ouch_n % 17 == 0)
        rc_gc_collect(2);
}

static rc_object *ouch_list_chain(rc_object *Ouch, int n)
{
    rc_object *t = rc_list_new();
    for (int i = 0; i < n; i++) { /* t = [t, Ouch()] */
        rc_object *o = rc_instance_new(Ouch);
        rc_object *nt = rc_list_new();
        rc_list_append(nt, t);
        rc_list_append(nt, o);
        rc_decref(o);
        rc_decref(t);
        t = nt;
    }
    return t;
}

Test(gc, trashcan)
{
    rc_object *Ouch = rc_class_new("Ouch", NULL, ouch_del, 0);
    rc_gc_enable();
    enum { N = 150 };
    rc_object *t = NULL, *u = NULL, *v = NULL;
    for (int count = 0; count < 2; count++) {
        rc_set(&t, NULL);
        t = ouch_list_chain(Ouch, N);
        rc_set(&u, NULL);
        u = ouch_list_chain(Ouch, N);
        rc_set(&v, NULL);
        v = rc_dict_new();
        for (int i = 0; i < N; i++) { /* v = {1: v, 2: Ouch()} */
            rc_object *o = rc_instance_new(Ouch);
            rc_object *nv = rc_dict_new();
            rc_dict_set(nv, "1", v);
            rc_dict_set(nv, "2", o);
            rc_decref(o);
            rc_decref(v);
            v = nv;
        }
    }
    rc_gc_disable();
    cr_assert_eq(ouch_n, 3 * N, "the first round's structures are gone");
    rc_set(&t, NULL);
    rc_set(&u, NULL);
    rc_set(&v, NULL);
    cr_assert_eq(ouch_n, 6 * N);
    rc_decref(Ouch);
}

/* The registry's per-generation object counts follow objects as they are
 * tracked, promoted, frozen and freed (readers and the timeline use them). */
#include "registry.h"
Test(gc, registry_generation_object_counts)
{
    rc_gc_collect(2);
    uint64_t base0 = rc_debug_registry.gc.generations[0].nobjects;
    uint64_t base1 = rc_debug_registry.gc.generations[1].nobjects;
    uint64_t base2 = rc_debug_registry.gc.generations[2].nobjects;
    cr_assert_eq(base0, 0);
    rc_object *keep[5];
    for (int i = 0; i < 5; i++)
        keep[i] = rc_list_new();
    cr_assert_eq(rc_debug_registry.gc.generations[0].nobjects, 5);
    rc_gc_collect(0);
    cr_assert_eq(rc_debug_registry.gc.generations[0].nobjects, 0);
    cr_assert_eq(rc_debug_registry.gc.generations[1].nobjects, base1 + 5);
    rc_gc_collect(1);
    cr_assert_eq(rc_debug_registry.gc.generations[1].nobjects, 0);
    cr_assert_eq(rc_debug_registry.gc.generations[2].nobjects, base1 + base2 + 5);
    rc_gc_freeze();
    cr_assert_eq(rc_debug_registry.gc.permanent.nobjects, rc_gc_get_freeze_count());
    cr_assert_eq(rc_debug_registry.gc.generations[2].nobjects, 0);
    rc_gc_unfreeze();
    rc_decref(keep[0]);
    rc_decref(keep[1]);
    cr_assert_eq(rc_debug_registry.gc.generations[2].nobjects, base1 + base2 + 3);
    cr_assert_eq(rc_debug_registry.gc.permanent.nobjects, 0);
    for (int i = 2; i < 5; i++)
        rc_decref(keep[i]);
    cr_assert_eq(rc_debug_registry.gc.tracked,
                 rc_debug_registry.gc.generations[0].nobjects +
                     rc_debug_registry.gc.generations[1].nobjects +
                     rc_debug_registry.gc.generations[2].nobjects);
}

/* gc_refs has 31 bits: a refcount of 2^31 or more is taken as 2^31 - 1.
 * Such an object is referenced from outside whatever internal references
 * are subtracted, so its cycle survives; back to its real count, the cycle
 * is garbage. */
Test(gc, refcount_beyond_gc_refs_range_survives)
{
    Node *x = node_new(), *y = node_new();
    rc_set(&x->a, RC_OBJ(y));
    rc_set(&y->a, RC_OBJ(x));
    rc_decref(y);
    rc_decref(x); /* the pair is garbage now: x's one holder is y */
    /* As if 2^31 more holders: 2^31 + 1, which a 31-bit field without the
     * clamp would keep as 1, and subtracting y's reference would make 0. */
    x->ob_base.ob_refcnt += 0x80000000u;
    cr_assert_eq(rc_gc_collect(2), 0);
    cr_assert_eq(destroyed, 0);
    x->ob_base.ob_refcnt -= 0x80000000u;
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(destroyed, 2);
}
