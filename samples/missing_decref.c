/*
 * missing_decref: a C-extension-style function that leaks one reference
 * every time it is called.
 *
 * Teaches: in C the reference counts are yours to keep. Every API call
 * either gives you a NEW reference (you must release it) or lends you a
 * BORROWED one (you must not). Confuse the two and each call leaves the
 * count one too high: the object can never reach zero, and nothing --
 * neither refcounting nor the cycle collector, which only frees what is
 * unreachable -- will ever free it. In Python you only see the symptom
 * (sys.getrefcount creeping up, memory that never comes back); the count
 * has more references than anything in the heap explains, and that
 * difference is what `refscope leaks` reports.
 *
 * The bug, as it is written in real extensions:
 *
 *     static PyObject *
 *     registry_lookup(PyObject *module, PyObject *key)
 *     {
 *         PyObject *item = PySequence_GetItem(...);  // NEW reference
 *         Py_INCREF(item);                           // as if it were borrowed
 *         return item;                               // one reference too many
 *     }
 *
 * Here: registry_lookup() gets the record with get_record() (a new
 * reference) and increfs it again before returning it; every caller
 * releases what it gets, as it should, and the record's count grows by one
 * per call. registry_lookup_fixed() shows the correct version.
 *
 * The leak: the Record "alice" (made in registry_add) with 5 references no
 * holder explains -- its only holder, the dict in the C global `registry`,
 * is removed at the end, and the record stays.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

typedef struct Record {
    RC_OBJECT_HEAD;
    rc_object *name;
    rc_object *data;
} Record;

static const rc_field record_fields[] = {
    RC_REF(Record, name),
    RC_REF(Record, data),
    RC_FIELDS_END,
};

static rc_type Record_type = {.name = "Record", .size = sizeof(Record), .fields = record_fields};

/* The extension module's state: name -> Record. */
SAMPLE_KEEP static rc_object *registry;

/* registry.add(name): a Record of 4 KiB of data */
static SAMPLE_NOINLINE void registry_add(const char *name)
{
    Record *r = rc_new(Record, &Record_type);
    r->name = rc_str(name);
    r->data = rc_bytes(4096);
    rc_dict_set(registry, name, RC_OBJ(r));
    rc_decref(r);
}

/* A helper with a NEW-reference contract (like PySequence_GetItem). */
static SAMPLE_NOINLINE rc_object *get_record(rc_object *key)
{
    rc_object *r = rc_dict_get(registry, rc_str_value(key)); /* borrowed */
    return r ? rc_incref(r) : NULL;                           /* now new */
}

/* registry.lookup(key) -- THE BUG: one reference too many per call */
static SAMPLE_NOINLINE rc_object *registry_lookup(rc_object *module, rc_object *key)
{
    (void)module;
    rc_object *item = get_record(key); /* a new reference ... */
    if (!item)
        return NULL;
    rc_incref(item); /* ... treated as borrowed: "we return a new reference" */
    return item;
}

/* registry.lookup(key), correct: get_record's new reference is ours to return */
static SAMPLE_NOINLINE rc_object *registry_lookup_fixed(rc_object *module, rc_object *key)
{
    (void)module;
    return get_record(key);
}

static long getrefcount(rc_object *o) { return (long)rc_refcount(o) + 1; }

static SAMPLE_NOINLINE void call_fixed(void)
{
    printf("-- the correct lookup: the count comes back\n");
    rc_object *bob = rc_dict_get(registry, "bob"); /* borrowed, to print its count */
    rc_object *key = rc_str("bob");
    printf("sys.getrefcount(bob) = %ld\n", getrefcount(bob));
    for (int i = 1; i <= 5; i++) {
        sample_py("r = registry.lookup_fixed('bob'); del r");
        rc_object *r = registry_lookup_fixed(NULL, key);
        rc_decref(r); /* the caller releases what it got */
        printf("sys.getrefcount(bob) = %ld\n", getrefcount(bob));
    }
    rc_decref(key);
}

static SAMPLE_NOINLINE void call_buggy(void)
{
    printf("\n-- the buggy lookup: one reference leaks per call\n");
    rc_object *alice = rc_dict_get(registry, "alice");
    rc_object *key = rc_str("alice");
    printf("sys.getrefcount(alice) = %ld\n", getrefcount(alice));
    for (int i = 1; i <= 5; i++) {
        sample_py("r = registry.lookup('alice'); del r");
        rc_object *r = registry_lookup(NULL, key);
        rc_decref(r); /* the caller is right; the callee kept one */
        printf("sys.getrefcount(alice) = %ld\n", getrefcount(alice));
    }
    rc_decref(key);
}

/* del registry['alice'], registry['bob']: bob goes, alice stays */
static SAMPLE_NOINLINE void remove_records(void)
{
    printf("\n-- removing the records from the registry\n");
    rc_object *alice_ref = rc_weakref_new(rc_dict_get(registry, "alice"), NULL);
    rc_object *bob_ref = rc_weakref_new(rc_dict_get(registry, "bob"), NULL);
    sample_py("del registry['alice'], registry['bob']");
    rc_dict_del(registry, "alice");
    rc_dict_del(registry, "bob");
    rc_object *a = rc_weakref_get(alice_ref), *b = rc_weakref_get(bob_ref);
    printf("bob freed: %s\n", b ? "False" : "True");
    printf("alice freed: %s\n", a ? "False" : "True");
    if (a)
        printf("alice still has %ld references, and nothing holds it\n",
               (long)rc_refcount(a) - 1 /* not counting ours, just taken */);
    rc_xdecref(a);
    rc_xdecref(b);
    rc_decref(alice_ref);
    rc_decref(bob_ref);
    sample_py("gc.collect()");
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    printf("The collector frees unreachable cycles; alice is in none, its count is just "
           "wrong.\n");
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "missing_decref: a C-extension bug that leaks one reference "
                               "per call");
    rc_init();
    registry = rc_dict_new();
    registry_add("alice");
    registry_add("bob");

    call_fixed();
    call_buggy();
    remove_records();

    sample_leak_planted();

    rc_decref(registry);
    registry = NULL;
    rc_shutdown();
    return 0;
}
