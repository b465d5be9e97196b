/*
 * Weak references, after CPython 3.11's Lib/test/test_weakref.py and the
 * weakref parts of test_gc.py: when callbacks run and with what, their
 * order relative to each other and to PEP 442 finalizers, the weak
 * containers and weakref.finalize.
 */
#include <refscope/rc.h>

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

/* ---- a test type and an event log ----------------------------------------- */

typedef struct Obj {
    RC_OBJECT_HEAD;
    rc_object *ref;
    rc_object *wr; /* a weakref stored in the object (garbage with it) */
} Obj;
static const rc_field obj_fields[] = {RC_REF(Obj, ref), RC_REF(Obj, wr), RC_FIELDS_END};

#define MAXEV 64
static char events[MAXEV][32]; /* "F" finalizer, "W1" callback tagged 1, ... */
static int nevents;

static void event(const char *fmt, long v)
{
    cr_assert_lt(nevents, MAXEV);
    snprintf(events[nevents++], sizeof events[0], fmt, v);
}

static rc_object *watched; /* a weakref the finalizer looks at */
static bool finalizer_saw_dead_weakref;
static void log_finalize(rc_object *self)
{
    (void)self;
    event("F", 0);
    if (watched) {
        rc_object *got = rc_weakref_get(watched);
        finalizer_saw_dead_weakref = got == NULL;
        rc_xdecref(got);
    }
}

static int destroyed;
static void count_destroy(rc_object *self)
{
    (void)self;
    destroyed++;
}

static rc_type Obj_type = {.name = "Obj", .size = sizeof(Obj), .fields = obj_fields,
                           .destroy = count_destroy};
static rc_type FinalObj_type = {.name = "FinalObj", .size = sizeof(Obj), .fields = obj_fields,
                                .finalize = log_finalize, .destroy = count_destroy};

static Obj *make(rc_type *type)
{
    Obj *o = rc_new(Obj, type);
    cr_assert_not_null(o);
    return o;
}

/* Callbacks: closures with a "tag" cell. Each call logs "W<tag>", records
 * its argument and what the weakrefs in `probe` return at that moment. */
static rc_object *cb_args[MAXEV];
static int ncb;
static rc_object *probe[4];
static bool probe_dead_at_first_call[4];

static rc_object *callback_fn(rc_object *self, rc_object *arg)
{
    rc_object *tag = rc_closure_cell(self, "tag");
    cr_assert_not_null(tag);
    event("W%ld", (long)rc_int_value(tag));
    if (ncb == 0) {
        for (int i = 0; i < 4; i++) {
            if (probe[i]) {
                rc_object *got = rc_weakref_get(probe[i]);
                probe_dead_at_first_call[i] = got == NULL;
                rc_xdecref(got);
            }
        }
    }
    cb_args[ncb++] = arg;
    return NULL;
}

static rc_object *make_callback(long tag)
{
    static const char *const names[] = {"tag"};
    rc_object *t = rc_int(tag);
    rc_object *values[] = {t};
    rc_object *cb = rc_closure_new(callback_fn, "callback", 1, names, values);
    cr_assert_not_null(cb);
    rc_decref(t);
    return cb;
}

/* A weakref whose callback is tagged `tag`; our closure reference dropped. */
static rc_object *weakref_with_callback(rc_object *target, long tag)
{
    rc_object *cb = make_callback(tag);
    rc_object *wr = rc_weakref_new(target, cb);
    cr_assert_not_null(wr);
    rc_decref(cb);
    return wr;
}

static bool events_are(int n, const char *const *want)
{
    if (nevents != n)
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(events[i], want[i]) != 0)
            return false;
    return true;
}

static const char *events_str(void)
{
    static char buf[MAXEV * 8];
    buf[0] = '\0';
    for (int i = 0; i < nevents; i++) {
        strcat(buf, events[i]);
        strcat(buf, i + 1 < nevents ? "," : "");
    }
    return buf;
}

static void setup(void)
{
    rc_init();
    rc_gc_disable();
    rc_gc_collect(2);
}

TestSuite(weakref, .init = setup);

/* ---- basics ----------------------------------------------------------------- */

Test(weakref, basic_ref)
{
    Obj *o = make(&Obj_type);
    rc_object *wr = rc_weakref_new(RC_OBJ(o), NULL);
    cr_assert_eq(rc_refcount(o), 1, "a weakref does not count");
    rc_object *got = rc_weakref_get(wr);
    cr_assert_eq(got, RC_OBJ(o));
    cr_assert_eq(rc_refcount(o), 2, "rc_weakref_get returns a new reference");
    rc_decref(got);
    rc_decref(o);
    cr_assert_eq(destroyed, 1);
    cr_assert_null(rc_weakref_get(wr), "expected reference to be invalidated");
    rc_decref(wr);
}

Test(weakref, basic_callback)
{
    Obj *o = make(&Obj_type);
    rc_object *wr = weakref_with_callback(RC_OBJ(o), 1);
    probe[0] = wr;
    rc_decref(o);
    cr_assert_eq(ncb, 1, "callback called once");
    cr_assert_eq(cb_args[0], wr, "the callback gets the dead weakref");
    cr_assert(probe_dead_at_first_call[0], "already dead when the callback runs");
    cr_assert_null(rc_weakref_get(wr));
    rc_decref(wr);
    cr_assert_eq(ncb, 1);
}

Test(weakref, multiple_callbacks)
{
    Obj *o = make(&Obj_type);
    rc_object *ref1 = weakref_with_callback(RC_OBJ(o), 1);
    rc_object *ref2 = weakref_with_callback(RC_OBJ(o), 2);
    probe[0] = ref1;
    probe[1] = ref2;
    rc_decref(o);
    cr_assert_null(rc_weakref_get(ref1), "expected reference to be invalidated");
    cr_assert_null(rc_weakref_get(ref2), "expected reference to be invalidated");
    cr_assert_eq(ncb, 2, "callback not called the right number of times");
    cr_assert(probe_dead_at_first_call[0] && probe_dead_at_first_call[1],
              "both weakrefs are cleared before the first callback runs");
    static const char *const want[] = {"W2", "W1"};
    cr_assert(events_are(2, want), "newest first: want W2,W1, got %s", events_str());
    cr_assert_eq(cb_args[0], ref2);
    cr_assert_eq(cb_args[1], ref1);
    rc_decref(ref1);
    rc_decref(ref2);
}

Test(weakref, weakref_dying_first_never_calls_back)
{
    Obj *o = make(&Obj_type);
    rc_object *wr = weakref_with_callback(RC_OBJ(o), 1);
    cr_assert_eq(rc_weakref_count(RC_OBJ(o)), 1);
    rc_decref(wr);
    cr_assert_eq(rc_weakref_count(RC_OBJ(o)), 0);
    rc_decref(o);
    cr_assert_eq(ncb, 0);
}

Test(weakref, getweakrefcount)
{
    Obj *o = make(&Obj_type);
    cr_assert_eq(rc_weakref_count(RC_OBJ(o)), 0);
    rc_object *ref1 = rc_weakref_new(RC_OBJ(o), NULL);
    rc_object *ref2 = weakref_with_callback(RC_OBJ(o), 1);
    cr_assert_eq(rc_weakref_count(RC_OBJ(o)), 2, "got wrong number of weak reference objects");
    rc_decref(ref1);
    rc_decref(ref2);
    cr_assert_eq(rc_weakref_count(RC_OBJ(o)), 0,
                 "weak reference objects not unlinked from referent when discarded");
    rc_object *one = rc_int(1);
    cr_assert_eq(rc_weakref_count(one), 0);
    rc_decref(one);
    rc_decref(o);
}

/* ---- the collector and weakrefs --------------------------------------------- */

Test(weakref, garbage_weakref_does_not_call_back)
{
    /* A weakref that is itself part of the cyclic trash: its callback must
     * not run (it could see objects the collector has half torn down). */
    Obj *o = make(&Obj_type);
    rc_set(&o->ref, RC_OBJ(o));
    rc_object *wr = weakref_with_callback(RC_OBJ(o), 1);
    rc_set(&o->wr, wr);
    rc_decref(wr);
    rc_decref(o);
    size_t n = rc_gc_collect(2);
    cr_assert_eq(ncb, 0, "the callback of a garbage weakref ran");
    cr_assert_eq(destroyed, 1);
    cr_assert_geq(n, 2, "the object and its weakref were collected: %zu", n);
}

Test(weakref, live_weakref_to_cycle_calls_back)
{
    /* test_bug1055820b: two self-cycles, live weakrefs with callbacks */
    Obj *cs[2];
    rc_object *wrs[2];
    for (int i = 0; i < 2; i++) {
        cs[i] = make(&Obj_type);
        rc_set(&cs[i]->ref, RC_OBJ(cs[i]));
        wrs[i] = weakref_with_callback(RC_OBJ(cs[i]), i + 1);
        probe[i] = wrs[i];
    }
    rc_gc_collect(2);
    cr_assert_eq(ncb, 0);
    /* Make the two instances trash, and collect again. */
    rc_decref(cs[0]);
    rc_decref(cs[1]);
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(ncb, 2, "the callbacks didn't run");
    /* if a callback could resurrect one of them, it would be damaged */
    cr_assert(probe_dead_at_first_call[0] && probe_dead_at_first_call[1]);
    cr_assert(cb_args[0] == wrs[0] || cb_args[0] == wrs[1]);
    cr_assert(cb_args[1] == wrs[0] || cb_args[1] == wrs[1]);
    cr_assert_neq(cb_args[0], cb_args[1]);
    cr_assert_eq(destroyed, 2);
    rc_decref(wrs[0]);
    rc_decref(wrs[1]);
}

Test(weakref, order_refcount_death_finalizer_then_callbacks)
{
    Obj *o = make(&FinalObj_type);
    rc_object *wr = weakref_with_callback(RC_OBJ(o), 1);
    rc_decref(o);
    static const char *const want[] = {"F", "W1"};
    cr_assert(events_are(2, want), "want F,W1, got %s", events_str());
    cr_assert_eq(destroyed, 1);
    rc_decref(wr);
}

Test(weakref, order_collector_death_callbacks_then_finalizer)
{
    Obj *o = make(&FinalObj_type);
    rc_set(&o->ref, RC_OBJ(o));
    rc_object *wr = weakref_with_callback(RC_OBJ(o), 1);
    watched = wr;
    rc_decref(o);
    cr_assert_eq(rc_gc_collect(2), 1);
    static const char *const want[] = {"W1", "F"};
    cr_assert(events_are(2, want), "want W1,F, got %s", events_str());
    cr_assert(finalizer_saw_dead_weakref, "weakrefs are cleared before finalizers run");
    cr_assert_eq(destroyed, 1);
    rc_decref(wr);
    watched = NULL;
}

Test(weakref, order_collector_two_callbacks_newest_first)
{
    Obj *o = make(&FinalObj_type);
    rc_set(&o->ref, RC_OBJ(o));
    rc_object *w1 = weakref_with_callback(RC_OBJ(o), 1);
    rc_object *w2 = weakref_with_callback(RC_OBJ(o), 2);
    rc_decref(o);
    rc_gc_collect(2);
    static const char *const want[] = {"W2", "W1", "F"};
    cr_assert(events_are(3, want), "want W2,W1,F, got %s", events_str());
    rc_decref(w1);
    rc_decref(w2);
}

/* ---- WeakValueDictionary ---------------------------------------------------- */

Test(weakref, weak_values)
{
    enum { COUNT = 10 };
    rc_object *d = rc_weakvaluedict_new();
    cr_assert_not_null(d);
    Obj *objects[COUNT];
    char key[16];
    for (int i = 0; i < COUNT; i++) {
        objects[i] = make(&Obj_type);
        snprintf(key, sizeof key, "%d", i);
        cr_assert_eq(rc_weakvaluedict_set(d, key, RC_OBJ(objects[i])), 0);
    }
    cr_assert_eq(rc_weakvaluedict_len(d), COUNT);
    for (int i = 0; i < COUNT; i++) {
        cr_assert_eq(rc_weakref_count(RC_OBJ(objects[i])), 1);
        cr_assert_eq(rc_refcount(objects[i]), 1, "the dict holds its values weakly");
        snprintf(key, sizeof key, "%d", i);
        rc_object *got = rc_weakvaluedict_get(d, key);
        cr_assert_eq(got, RC_OBJ(objects[i]), "wrong object returned by weak dict!");
        cr_assert_eq(rc_refcount(objects[i]), 2, "get returns a new reference");
        rc_decref(got);
    }
    rc_decref(objects[0]);
    cr_assert_eq(rc_weakvaluedict_len(d), COUNT - 1,
                 "deleting object did not cause dictionary update");
    cr_assert_null(rc_weakvaluedict_get(d, "0"));
    for (int i = 1; i < COUNT; i++)
        rc_decref(objects[i]);
    cr_assert_eq(rc_weakvaluedict_len(d), 0,
                 "deleting the values did not clear the dictionary");

    /* regression on SF bug #447152 */
    cr_assert_null(rc_weakvaluedict_get(d, "1"));
    Obj *tmp = make(&Obj_type);
    rc_weakvaluedict_set(d, "2", RC_OBJ(tmp));
    rc_decref(tmp);
    cr_assert_null(rc_weakvaluedict_get(d, "2"));
    cr_assert_eq(rc_weakvaluedict_len(d), 0);
    rc_decref(d);
}

Test(weakref, weak_values_del_and_replace)
{
    rc_object *d = rc_weakvaluedict_new();
    Obj *a = make(&Obj_type), *b = make(&Obj_type);
    rc_weakvaluedict_set(d, "k", RC_OBJ(a));
    rc_weakvaluedict_set(d, "k", RC_OBJ(b));
    cr_assert_eq(rc_weakvaluedict_len(d), 1);
    rc_decref(a); /* the replaced value's death must not remove the new entry */
    cr_assert_eq(rc_weakvaluedict_len(d), 1);
    rc_object *got = rc_weakvaluedict_get(d, "k");
    cr_assert_eq(got, RC_OBJ(b));
    rc_decref(got);
    cr_assert_eq(rc_weakvaluedict_del(d, "k"), 0);
    cr_assert_eq(rc_weakvaluedict_len(d), 0);
    cr_assert_neq(rc_weakvaluedict_del(d, "k"), 0, "deleting a missing key is an error");
    rc_decref(b);
    rc_decref(d);
}

Test(weakref, weak_values_die_in_a_cycle)
{
    rc_object *d = rc_weakvaluedict_new();
    Obj *o = make(&Obj_type);
    rc_set(&o->ref, RC_OBJ(o));
    rc_weakvaluedict_set(d, "cyc", RC_OBJ(o));
    rc_decref(o);
    cr_assert_eq(rc_weakvaluedict_len(d), 1);
    rc_gc_collect(2);
    cr_assert_eq(rc_weakvaluedict_len(d), 0);
    rc_decref(d);
}

/* ---- WeakSet ----------------------------------------------------------------- */

Test(weakref, weakset)
{
    rc_object *s = rc_weakset_new();
    cr_assert_not_null(s);
    Obj *a = make(&Obj_type), *b = make(&Obj_type), *c = make(&Obj_type);
    Obj *other = make(&Obj_type);
    cr_assert_eq(rc_weakset_add(s, RC_OBJ(a)), 0);
    cr_assert_eq(rc_weakset_add(s, RC_OBJ(b)), 0);
    cr_assert_eq(rc_weakset_add(s, RC_OBJ(c)), 0);
    cr_assert_eq(rc_weakset_add(s, RC_OBJ(a)), 0);
    cr_assert_eq(rc_weakset_len(s), 3, "adding twice keeps one entry");
    cr_assert_eq(rc_refcount(a), 1, "held weakly");
    cr_assert(rc_weakset_contains(s, RC_OBJ(a)));
    cr_assert(rc_weakset_contains(s, RC_OBJ(b)));
    cr_assert_not(rc_weakset_contains(s, RC_OBJ(other)));
    rc_decref(b);
    cr_assert_eq(rc_weakset_len(s), 2);
    cr_assert(rc_weakset_contains(s, RC_OBJ(a)));
    cr_assert(rc_weakset_contains(s, RC_OBJ(c)));
    cr_assert_eq(rc_weakset_discard(s, RC_OBJ(c)), 0);
    cr_assert_eq(rc_weakset_len(s), 1);
    cr_assert_not(rc_weakset_contains(s, RC_OBJ(c)));
    rc_decref(a);
    cr_assert_eq(rc_weakset_len(s), 0);
    rc_decref(c);
    rc_decref(other);
    rc_decref(s);
}

/* ---- weakref.finalize ------------------------------------------------------- */

static int fin_calls;
static int64_t fin_res;
static rc_object *add_fn(rc_object *self, rc_object *arg)
{
    cr_assert_null(arg, "finalize calls with a NULL argument");
    fin_calls++;
    fin_res = rc_int_value(rc_closure_cell(self, "x")) + rc_int_value(rc_closure_cell(self, "y")) +
              rc_int_value(rc_closure_cell(self, "z"));
    return NULL;
}

static rc_object *make_add(void)
{
    static const char *const names[] = {"x", "y", "z"};
    rc_object *x = rc_int(67), *y = rc_int(43), *z = rc_int(89);
    rc_object *values[] = {x, y, z};
    rc_object *c = rc_closure_new(add_fn, "add", 3, names, values);
    rc_decref(x);
    rc_decref(y);
    rc_decref(z);
    return c;
}

Test(weakref, finalize_call)
{
    Obj *a = make(&Obj_type);
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    cr_assert_not_null(f);
    cr_assert(rc_finalize_alive(f));
    rc_finalize_call(f);
    cr_assert_eq(fin_calls, 1);
    cr_assert_eq(fin_res, 199);
    rc_finalize_call(f);
    rc_finalize_call(f);
    cr_assert_eq(fin_calls, 1, "called once");
    cr_assert_not(rc_finalize_alive(f));
    rc_decref(a);
    cr_assert_eq(fin_calls, 1);
    rc_decref(f);
    rc_decref(add);
}

Test(weakref, finalize_detach)
{
    Obj *a = make(&Obj_type);
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    rc_finalize_detach(f);
    cr_assert_not(rc_finalize_alive(f));
    rc_finalize_call(f);
    rc_decref(a);
    cr_assert_eq(fin_calls, 0, "detach prevents the call");
    rc_decref(f);
    rc_decref(add);
}

Test(weakref, finalize_on_death)
{
    Obj *a = make(&Obj_type);
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    rc_decref(add);
    cr_assert_eq(rc_refcount(a), 1, "finalize holds its target weakly");
    rc_decref(a);
    cr_assert_eq(fin_calls, 1);
    cr_assert_eq(fin_res, 199);
    cr_assert_not(rc_finalize_alive(f));
    rc_finalize_call(f);
    cr_assert_eq(fin_calls, 1);
    rc_decref(f);
}

Test(weakref, finalize_keeps_itself_alive)
{
    Obj *a = make(&Obj_type);
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    rc_decref(add);
    rc_decref(f); /* our reference only: the finalize object stays registered */
    rc_decref(a);
    cr_assert_eq(fin_calls, 1);
}

Test(weakref, finalize_on_cycle_death)
{
    Obj *a = make(&Obj_type);
    rc_set(&a->ref, RC_OBJ(a));
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    rc_decref(add);
    rc_decref(a);
    cr_assert_eq(fin_calls, 0);
    rc_gc_collect(2);
    cr_assert_eq(fin_calls, 1);
    cr_assert_not(rc_finalize_alive(f));
    rc_decref(f);
}

Test(weakref, finalize_at_shutdown)
{
    Obj *a = make(&Obj_type);
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    rc_decref(add);
    rc_decref(f);
    cr_assert_eq(fin_calls, 0);
    rc_shutdown(); /* a is still alive: atexit runs the finalizer */
    cr_assert_eq(fin_calls, 1);
    cr_assert_eq(fin_res, 199);
}

Test(weakref, finalize_detached_not_called_at_shutdown)
{
    Obj *a = make(&Obj_type);
    rc_object *add = make_add();
    rc_object *f = rc_finalize_new(RC_OBJ(a), add);
    rc_decref(add);
    rc_finalize_detach(f);
    rc_decref(f);
    rc_shutdown();
    cr_assert_eq(fin_calls, 0);
}

/* Iterating a WeakSet yields exactly its live items. */
Test(weakref, weakset_iteration)
{
    rc_object *s = rc_weakset_new();
    rc_object *a = rc_int(1), *b = rc_int(2), *c = rc_int(3);
    rc_weakset_add(s, a);
    rc_weakset_add(s, b);
    rc_weakset_add(s, c);
    rc_decref(b);
    size_t pos = 0, n = 0;
    int64_t sum = 0;
    rc_object *item;
    while (rc_weakset_next(s, &pos, &item)) {
        n++;
        sum += rc_int_value(item);
    }
    cr_assert_eq(n, 2);
    cr_assert_eq(sum, 4);
    rc_decref(a);
    rc_decref(c);
    rc_decref(s);
}
