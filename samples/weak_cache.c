/*
 * weak_cache: a cache that keeps everything alive, the same cache with weak
 * values that does not, and observers held strongly vs in a WeakSet.
 *
 * Teaches: a weak reference refers to an object without counting, so it
 * never keeps the object alive. weakref.WeakValueDictionary is a dict whose
 * entries vanish when their value dies: a cache that holds an object
 * exactly as long as somebody else uses it. weakref.WeakSet does the same
 * for a set of observers: a subject that keeps its observers in a plain
 * list keeps every observer (and all it holds) alive long after the rest of
 * the program has closed it.
 *
 * The Python it mirrors (the lesson's "weak references for caches"):
 *
 *     class ExpensiveObject:
 *         def __init__(self, value): self.value = value
 *
 *     cache = {}                                  # strong: the leak
 *     weak_cache = weakref.WeakValueDictionary()  # weak: the fix
 *     def expensive_computation(key):
 *         result = ExpensiveObject(key * 1000)
 *         cache[key] = result
 *         return result
 *
 *     observers = []                 # strong: the leak
 *     weak_observers = weakref.WeakSet()
 *
 * The leak: 100 ExpensiveObject (made in expensive_computation) held by the
 * dict in the C global `cache`, and 3 Observer (made in observer_new) held
 * by the list in the C global `observers`.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

#define NKEYS 100
#define BLOB_SIZE 10000

/* ---- ExpensiveObject: a value and what it took to compute it ---------------------------- */

typedef struct ExpensiveObject {
    RC_OBJECT_HEAD;
    rc_object *value;
    rc_object *blob;
} ExpensiveObject;

static const rc_field expensive_fields[] = {
    RC_REF(ExpensiveObject, value),
    RC_REF(ExpensiveObject, blob),
    RC_FIELDS_END,
};

static size_t expensive_alive; /* instances not yet destroyed */

static void expensive_destroy(rc_object *self)
{
    (void)self;
    expensive_alive--;
}

static rc_type ExpensiveObject_type = {
    .name = "ExpensiveObject",
    .size = sizeof(ExpensiveObject),
    .fields = expensive_fields,
    .destroy = expensive_destroy,
};

/* cache = {}; weak_cache = weakref.WeakValueDictionary() */
SAMPLE_KEEP static rc_object *cache;
SAMPLE_KEEP static rc_object *weak_cache;

/* expensive_computation(key): a new reference; remembered in the cache */
static SAMPLE_NOINLINE rc_object *expensive_computation(int key)
{
    char k[16];
    snprintf(k, sizeof k, "%d", key);
    rc_object *hit = rc_dict_get(cache, k);
    if (hit)
        return rc_incref(hit);
    ExpensiveObject *result = rc_new(ExpensiveObject, &ExpensiveObject_type);
    expensive_alive++;
    result->value = rc_int(key * 1000);
    result->blob = rc_bytes(BLOB_SIZE);
    rc_dict_set(cache, k, RC_OBJ(result)); /* the cache's own reference: never dropped */
    return RC_OBJ(result);
}

/* the same with weak_cache: the cache never keeps a result alive */
static SAMPLE_NOINLINE rc_object *expensive_computation_weak(int key)
{
    char k[16];
    snprintf(k, sizeof k, "%d", key);
    rc_object *hit = rc_weakvaluedict_get(weak_cache, k); /* new reference or NULL */
    if (hit)
        return hit;
    ExpensiveObject *result = rc_new(ExpensiveObject, &ExpensiveObject_type);
    expensive_alive++;
    result->value = rc_int(key * 1000);
    result->blob = rc_bytes(BLOB_SIZE);
    rc_weakvaluedict_set(weak_cache, k, RC_OBJ(result));
    return RC_OBJ(result);
}

/* ---- observers ------------------------------------------------------------------------------ */

typedef struct Observer {
    RC_OBJECT_HEAD;
    rc_object *name;
    rc_object *widget_state; /* what a real observer drags along: its widget's data */
} Observer;

static const rc_field observer_fields[] = {
    RC_REF(Observer, name),
    RC_REF(Observer, widget_state),
    RC_FIELDS_END,
};

static rc_type Observer_type = {
    .name = "Observer",
    .size = sizeof(Observer),
    .fields = observer_fields,
};

/* observers = []; weak_observers = weakref.WeakSet() */
SAMPLE_KEEP static rc_object *observers;
SAMPLE_KEEP static rc_object *weak_observers;

static SAMPLE_NOINLINE Observer *observer_new(const char *name)
{
    Observer *o = rc_new(Observer, &Observer_type);
    o->name = rc_str(name);
    o->widget_state = rc_bytes(BLOB_SIZE);
    return o;
}

/* list(weak_set): a new list of the live items. (The runtime has no WeakSet
 * iterator; its items are the targets of the weakrefs in its one referent,
 * a list -- what gc.get_referents(weak_set) shows.) */
static rc_object *weakset_items(rc_object *ws)
{
    rc_object *items = rc_list_new();
    rc_object *refs = rc_gc_get_referents(ws);
    for (size_t i = 0; i < rc_list_len(refs); i++) {
        rc_object *data = rc_list_get(refs, i);
        if (data->ob_type != &rc_list_type)
            continue;
        for (size_t j = 0; j < rc_list_len(data); j++) {
            rc_object *item = rc_weakref_get(rc_list_get(data, j));
            if (item) {
                rc_list_append(items, item);
                rc_decref(item);
            }
        }
    }
    rc_decref(refs);
    return items;
}

static void notify(const char *holder, rc_object *list)
{
    size_t n = rc_list_len(list);
    for (size_t i = 0; i < n; i++) {
        Observer *o = (Observer *)rc_list_get(list, i);
        printf("  %s notified\n", rc_str_value(o->name));
    }
    printf("notify via %s: %zu observers\n", holder, n);
}

static void print_caches(void)
{
    printf("len(cache) = %zu, len(weak_cache) = %zu, ExpensiveObject instances alive: %zu\n",
           rc_dict_len(cache), weak_cache ? rc_weakvaluedict_len(weak_cache) : 0,
           expensive_alive);
}

static SAMPLE_NOINLINE void plant_strong_cache(void)
{
    printf("-- a plain dict as cache: every result stays\n");
    cache = rc_dict_new();
    sample_py("for key in range(%d): r = expensive_computation(key); use(r); del r", NKEYS);
    for (int key = 0; key < NKEYS; key++) {
        rc_object *r = expensive_computation(key);
        rc_decref(r); /* the user is done with it */
    }
    print_caches();
}

static SAMPLE_NOINLINE void show_weak_cache(void)
{
    printf("\n-- a WeakValueDictionary as cache: results live while they are used\n");
    weak_cache = rc_weakvaluedict_new();
    sample_py("r7 = expensive_computation_weak(7)   # someone still uses r7");
    rc_object *r7 = expensive_computation_weak(7);
    sample_py("for key in range(%d): r = expensive_computation_weak(key); use(r); del r",
              NKEYS);
    for (int key = 0; key < NKEYS; key++) {
        rc_object *r = expensive_computation_weak(key);
        if (key == 7)
            printf("key 7: a cache hit, the same object as r7: %s\n", r == r7 ? "True" : "False");
        rc_decref(r);
    }
    print_caches();
    sample_py("del r7");
    rc_decref(r7);
    print_caches();
    printf("(the weak cache let its results go; the 100 alive are the plain cache's)\n");
}

static SAMPLE_NOINLINE void plant_observers(void)
{
    printf("\n-- observers: a list keeps closed widgets alive, a WeakSet does not\n");
    observers = rc_list_new();
    weak_observers = rc_weakset_new();
    sample_py("for name in ('a0', 'a1', 'a2'): observers.append(Observer(name))");
    sample_py("for name in ('b0', 'b1', 'b2'): weak_observers.add(Observer(name))");
    static const char *const strong_names[] = {"a0", "a1", "a2"};
    static const char *const weak_names[] = {"b0", "b1", "b2"};
    for (int i = 0; i < 3; i++) {
        Observer *a = observer_new(strong_names[i]);
        rc_list_append(observers, RC_OBJ(a));
        rc_decref(a); /* the widget is closed: only `observers` still holds it */
        Observer *b = observer_new(weak_names[i]);
        rc_weakset_add(weak_observers, RC_OBJ(b));
        rc_decref(b); /* closed: nothing holds it, it is freed now */
    }
    printf("every widget is closed again: nothing but the subject refers to it\n");
    printf("len(observers) = %zu, len(weak_observers) = %zu\n", rc_list_len(observers),
           rc_weakset_len(weak_observers));
    notify("observers", observers);
    rc_object *live = weakset_items(weak_observers);
    notify("weak_observers", live);
    rc_decref(live);
}

static SAMPLE_NOINLINE void release_strong_holders(void)
{
    printf("\n-- releasing the strong holders\n");
    sample_py("cache.clear(); observers.clear()");
    rc_decref(cache);
    cache = rc_dict_new();
    rc_list_clear(observers);
    print_caches();
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "weak_cache: a strong cache leaks, a weak-value cache does not; "
                               "observers in a list vs a WeakSet");
    rc_init();

    plant_strong_cache();
    show_weak_cache();
    plant_observers();

    sample_leak_planted();

    release_strong_holders();
    rc_decref(cache);
    rc_decref(weak_cache);
    rc_decref(observers);
    rc_decref(weak_observers);
    cache = weak_cache = observers = weak_observers = NULL;
    rc_shutdown();
    return 0;
}
