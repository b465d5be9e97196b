/*
 * Built-in types: int, str, bytes, list, tuple, dict, cell, closure,
 * classes (dict-based and slotted) and generators. Exact values, exact
 * refcounts (what sys.getrefcount() - 1 would say in Python), and the error
 * paths: a wrong type, an index out of range, a missing key or attribute
 * return NULL / -1 and leave a message in rc_last_error().
 */
#include <refscope/rc.h>

#include "internal.h" /* _rc_clear_refs: what the collector does to garbage */

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

static void setup(void) { rc_init(); }
static void teardown(void) { rc_shutdown(); }

TestSuite(builtins, .init = setup, .fini = teardown);

/* The last error contains `what`. */
#define assert_error(what)                                                              \
    do {                                                                                \
        const char *e_ = rc_last_error();                                               \
        cr_assert(e_ && *e_, "an error message is set");                                \
        cr_assert(strstr(e_, (what)) != NULL, "error \"%s\" mentions \"%s\"", e_, (what)); \
    } while (0)

/* ---- int, str, bytes ------------------------------------------------------- */

Test(builtins, int_str_bytes_values)
{
    rc_object *i = rc_int(-42), *s = rc_str("hello"), *b = rc_bytes(100);
    cr_assert_eq(rc_int_value(i), -42);
    cr_assert_str_eq(rc_type_name(i), "int");
    cr_assert_str_eq(rc_str_value(s), "hello");
    cr_assert_str_eq(rc_type_name(s), "str");
    cr_assert_eq(rc_bytes_len(b), 100);
    cr_assert_str_eq(rc_type_name(b), "bytes");
    unsigned char *d = rc_bytes_data(b);
    for (size_t k = 0; k < 100; k++)
        cr_assert_eq(d[k], 0, "bytes start zeroed");
    d[99] = 7; /* writable */
    cr_assert_eq(rc_bytes_data(b)[99], 7);
    cr_assert_not(rc_gc_is_tracked(i), "atomic types are not tracked");
    cr_assert_not(rc_gc_is_tracked(s));
    cr_assert_not(rc_gc_is_tracked(b));
    cr_assert_eq(rc_refcount(i), 1);
    rc_decref(i);
    rc_decref(s);
    rc_decref(b);
}

Test(builtins, empty_string_and_large_bytes)
{
    rc_object *s = rc_str("");
    cr_assert_str_eq(rc_str_value(s), "");
    rc_object *big = rc_bytes(1 << 20); /* from the large-object list */
    cr_assert_eq(rc_bytes_len(big), (size_t)1 << 20);
    cr_assert_eq(rc_bytes_data(big)[(1 << 20) - 1], 0);
    cr_assert_geq(rc_sizeof(big), (size_t)1 << 20);
    cr_assert_gt(rc_sizeof(rc_str("a longer string")) , rc_sizeof(s));
    rc_decref(s);
    rc_decref(big);
}

Test(builtins, value_errors)
{
    rc_object *s = rc_str("x");
    cr_assert_null(rc_str(NULL));
    assert_error("NULL");
    cr_assert_eq(rc_int_value(s), -1);
    assert_error("expected an int, got str");
    cr_assert_null(rc_str_value(NULL));
    assert_error("got NULL");
    cr_assert_null(rc_bytes_data(s));
    assert_error("got str");
    cr_assert_eq(rc_bytes_len(s), 0);
    rc_decref(s);
}

/* ---- list ---------------------------------------------------------------- */

Test(builtins, list_append_holds_a_reference)
{
    rc_object *l = rc_list_new();
    rc_object *item = rc_int(5);
    cr_assert_str_eq(rc_type_name(l), "list");
    cr_assert_eq(rc_refcount(item), 1);
    cr_assert_eq(rc_list_append(l, item), 0);
    cr_assert_eq(rc_refcount(item), 2, "the list holds its own reference");
    cr_assert_eq(rc_list_len(l), 1);
    cr_assert_eq(rc_list_get(l, 0), item, "rc_list_get returns the item");
    cr_assert_eq(rc_refcount(item), 2, "rc_list_get is borrowed");
    cr_assert(rc_gc_is_tracked(l));
    rc_decref(l);
    cr_assert_eq(rc_refcount(item), 1, "the dying list released it");
    rc_decref(item);
}

Test(builtins, list_set_pop_clear)
{
    rc_object *l = rc_list_new();
    rc_object *a = rc_int(1), *b = rc_int(2), *c = rc_int(3), *x = rc_str("x");
    rc_list_append(l, a);
    rc_list_append(l, b);
    rc_list_append(l, c);
    cr_assert_eq(rc_list_len(l), 3);

    cr_assert_eq(rc_list_set(l, 1, x), 0);
    cr_assert_eq(rc_list_get(l, 1), x);
    cr_assert_eq(rc_refcount(b), 1, "the replaced item was released");
    cr_assert_eq(rc_refcount(x), 2);
    cr_assert_eq(rc_list_set(l, 1, x), 0, "setting the same item again");
    cr_assert_eq(rc_refcount(x), 2);

    rc_object *p = rc_list_pop(l);
    cr_assert_eq(p, c, "pop takes the last item");
    cr_assert_eq(rc_refcount(c), 2, "the list's reference became ours");
    cr_assert_eq(rc_list_len(l), 2);
    rc_decref(p);

    rc_list_append(l, a);
    cr_assert_eq(rc_refcount(a), 3);
    cr_assert_eq(rc_list_clear(l), 0);
    cr_assert_eq(rc_list_len(l), 0);
    cr_assert_eq(rc_refcount(a), 1);
    cr_assert_eq(rc_refcount(x), 1);
    cr_assert_null(rc_list_pop(l));
    assert_error("pop from empty list");

    cr_assert_eq(rc_list_append(l, a), 0, "a cleared list is usable");
    cr_assert_eq(rc_list_get(l, 0), a);
    rc_decref(l);
    cr_assert_eq(rc_refcount(a), 1);
    rc_decref(a);
    rc_decref(b);
    rc_decref(c);
    rc_decref(x);
}

Test(builtins, list_grows_and_keeps_order)
{
    rc_object *l = rc_list_new();
    size_t empty = rc_sizeof(l);
    for (int k = 0; k < 1000; k++) {
        rc_object *v = rc_int(k);
        cr_assert_eq(rc_list_append(l, v), 0);
        rc_decref(v);
    }
    cr_assert_eq(rc_list_len(l), 1000);
    for (size_t k = 0; k < 1000; k++)
        cr_assert_eq(rc_int_value(rc_list_get(l, k)), (int64_t)k);
    cr_assert_geq(rc_sizeof(l), empty + 1000 * sizeof(void *),
                  "sizeof counts the item buffer");
    for (int k = 999; k >= 0; k--) {
        rc_object *v = rc_list_pop(l);
        cr_assert_eq(rc_int_value(v), k);
        cr_assert_eq(rc_refcount(v), 1);
        rc_decref(v);
    }
    cr_assert_eq(rc_list_len(l), 0);
    cr_assert_eq(rc_sizeof(l), empty, "an emptied list gives its buffer back");
    rc_decref(l);
}

Test(builtins, list_errors)
{
    rc_object *l = rc_list_new(), *i = rc_int(1);
    cr_assert_eq(rc_list_append(i, i), -1);
    assert_error("rc_list_append: expected a list, got int");
    cr_assert_eq(rc_list_append(NULL, i), -1);
    assert_error("got NULL");
    cr_assert_eq(rc_list_append(l, NULL), -1);
    assert_error("NULL");
    cr_assert_null(rc_list_get(l, 0));
    assert_error("index out of range");
    cr_assert_eq(rc_list_set(l, 0, i), -1);
    assert_error("index out of range");
    rc_list_append(l, i);
    cr_assert_null(rc_list_get(l, 1));
    assert_error("index out of range");
    cr_assert_eq(rc_list_len(i), 0);
    assert_error("rc_list_len: expected a list, got int");
    cr_assert_eq(rc_list_clear(i), -1);
    cr_assert_null(rc_list_pop(i));
    assert_error("rc_list_pop: expected a list");
    cr_assert_eq(rc_refcount(i), 2, "failed calls took no reference");
    rc_decref(l);
    rc_decref(i);
}

/* ---- tuple --------------------------------------------------------------- */

Test(builtins, tuple_of_n)
{
    rc_object *a = rc_int(1), *b = rc_str("b"), *c = rc_list_new();
    rc_object *t = rc_tuple_new(3, a, b, c);
    cr_assert_str_eq(rc_type_name(t), "tuple");
    cr_assert_eq(rc_tuple_len(t), 3);
    cr_assert_eq(rc_tuple_get(t, 0), a);
    cr_assert_eq(rc_tuple_get(t, 1), b);
    cr_assert_eq(rc_tuple_get(t, 2), c);
    cr_assert_eq(rc_refcount(a), 2);
    cr_assert_eq(rc_refcount(c), 2);
    cr_assert_null(rc_tuple_get(t, 3));
    assert_error("tuple index out of range");
    cr_assert_eq(rc_tuple_len(a), 0);
    assert_error("expected a tuple, got int");

    rc_object *items[] = {a, a};
    rc_object *t2 = rc_tuple_newv_at(NULL, 2, items);
    cr_assert_eq(rc_tuple_len(t2), 2);
    cr_assert_eq(rc_refcount(a), 4);
    rc_object *empty = rc_tuple_new(0);
    cr_assert_eq(rc_tuple_len(empty), 0);
    cr_assert_lt(rc_sizeof(empty), rc_sizeof(t), "items are inline");

    rc_decref(t);
    rc_decref(t2);
    rc_decref(empty);
    cr_assert_eq(rc_refcount(a), 1);
    cr_assert_eq(rc_refcount(b), 1);
    cr_assert_eq(rc_refcount(c), 1);
    rc_decref(a);
    rc_decref(b);
    rc_decref(c);
}

/* ---- dict ---------------------------------------------------------------- */

Test(builtins, dict_set_get_del)
{
    rc_object *d = rc_dict_new();
    rc_object *v1 = rc_int(1), *v2 = rc_int(2);
    cr_assert_str_eq(rc_type_name(d), "dict");
    cr_assert_eq(rc_dict_len(d), 0);
    cr_assert_null(rc_dict_get(d, "a"), "missing key: NULL");

    cr_assert_eq(rc_dict_set(d, "a", v1), 0);
    cr_assert_eq(rc_dict_len(d), 1);
    cr_assert_eq(rc_dict_get(d, "a"), v1);
    cr_assert_eq(rc_refcount(v1), 2);

    /* Overwrite: the new value in, the old one released, len unchanged. */
    cr_assert_eq(rc_dict_set(d, "a", v2), 0);
    cr_assert_eq(rc_dict_len(d), 1);
    cr_assert_eq(rc_dict_get(d, "a"), v2);
    cr_assert_eq(rc_refcount(v1), 1);
    cr_assert_eq(rc_refcount(v2), 2);

    /* Keys are copied. */
    char key[8];
    strcpy(key, "b");
    rc_dict_set(d, key, v1);
    strcpy(key, "zz");
    cr_assert_eq(rc_dict_get(d, "b"), v1);
    cr_assert_null(rc_dict_get(d, "zz"));

    cr_assert_eq(rc_dict_del(d, "a"), 0);
    cr_assert_eq(rc_refcount(v2), 1);
    cr_assert_eq(rc_dict_len(d), 1);
    cr_assert_null(rc_dict_get(d, "a"));
    cr_assert_eq(rc_dict_del(d, "a"), -1);
    assert_error("'a'");

    rc_decref(d);
    cr_assert_eq(rc_refcount(v1), 1, "the dying dict released its values");
    rc_decref(v1);
    rc_decref(v2);
}

Test(builtins, dict_iterates_in_insertion_order)
{
    rc_object *d = rc_dict_new();
    const char *names[] = {"a", "b", "c", "d"};
    rc_object *v[4];
    for (int k = 0; k < 4; k++)
        v[k] = rc_int(k);
    rc_dict_set(d, "a", v[0]);
    rc_dict_set(d, "b", v[1]);
    rc_dict_set(d, "c", v[2]);
    rc_dict_del(d, "b");
    rc_dict_set(d, "d", v[3]);
    rc_dict_set(d, "a", v[3]); /* overwrite keeps a's place */
    rc_dict_set(d, "b", v[1]); /* re-inserted: goes last */

    const char *want[] = {"a", "c", "d", "b"};
    rc_object *wantv[] = {v[3], v[2], v[3], v[1]};
    size_t pos = 0, n = 0;
    const char *key;
    rc_object *value;
    while (rc_dict_next(d, &pos, &key, &value)) {
        cr_assert_lt(n, 4);
        cr_assert_str_eq(key, want[n]);
        cr_assert_eq(value, wantv[n]);
        n++;
    }
    cr_assert_eq(n, 4);
    cr_assert_eq(rc_dict_len(d), 4);
    (void)names;
    rc_decref(d);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(rc_refcount(v[k]), 1);
        rc_decref(v[k]);
    }
}

Test(builtins, dict_1000_keys_with_deletions)
{
    rc_object *d = rc_dict_new();
    char key[32];
    for (int k = 0; k < 1000; k++) {
        snprintf(key, sizeof key, "key%d", k);
        rc_object *v = rc_int(k);
        cr_assert_eq(rc_dict_set(d, key, v), 0);
        rc_decref(v);
    }
    cr_assert_eq(rc_dict_len(d), 1000);
    for (int k = 0; k < 1000; k += 2) {
        snprintf(key, sizeof key, "key%d", k);
        cr_assert_eq(rc_dict_del(d, key), 0);
    }
    cr_assert_eq(rc_dict_len(d), 500);
    for (int k = 0; k < 1000; k++) {
        snprintf(key, sizeof key, "key%d", k);
        rc_object *v = rc_dict_get(d, key);
        if (k % 2)
            cr_assert(v && rc_int_value(v) == k, "key%d kept", k);
        else
            cr_assert_null(v, "key%d deleted", k);
    }
    /* Re-insert the even keys: they come after the odd ones. */
    for (int k = 0; k < 1000; k += 2) {
        snprintf(key, sizeof key, "key%d", k);
        rc_object *v = rc_int(-k);
        rc_dict_set(d, key, v);
        rc_decref(v);
    }
    cr_assert_eq(rc_dict_len(d), 1000);
    size_t pos = 0, n = 0;
    const char *kname;
    rc_object *value;
    while (rc_dict_next(d, &pos, &kname, &value)) {
        int want = n < 500 ? (int)(2 * n + 1) : (int)(2 * (n - 500));
        snprintf(key, sizeof key, "key%d", want);
        cr_assert_str_eq(kname, key);
        cr_assert_eq(rc_int_value(value), n < 500 ? want : -want);
        n++;
    }
    cr_assert_eq(n, 1000);
    /* Delete everything, then use it again. */
    for (int k = 0; k < 1000; k++) {
        snprintf(key, sizeof key, "key%d", k);
        cr_assert_eq(rc_dict_del(d, key), 0);
    }
    cr_assert_eq(rc_dict_len(d), 0);
    pos = 0;
    cr_assert_not(rc_dict_next(d, &pos, NULL, NULL));
    rc_object *v = rc_int(7);
    rc_dict_set(d, "again", v);
    cr_assert_eq(rc_dict_get(d, "again"), v);
    cr_assert_eq(rc_dict_len(d), 1);
    rc_decref(d);
    cr_assert_eq(rc_refcount(v), 1);
    rc_decref(v);
}

/* Deleting the newest entry hands its slot back; the index table must still
 * be rebuilt before its DUMMY slots fill it (a full table never ends a probe). */
Test(builtins, dict_insert_delete_churn, .timeout = 10)
{
    rc_object *d = rc_dict_new(), *v = rc_int(1);
    rc_dict_set(d, "keep", v);
    char key[32];
    for (int k = 0; k < 20000; k++) {
        snprintf(key, sizeof key, "tmp%d", k % 7);
        cr_assert_eq(rc_dict_set(d, key, v), 0);
        cr_assert_eq(rc_dict_del(d, key), 0);
    }
    cr_assert_eq(rc_dict_len(d), 1);
    cr_assert_eq(rc_dict_get(d, "keep"), v);
    cr_assert_lt(rc_sizeof(d), 1024, "churn does not grow the dict");
    rc_decref(d);
    cr_assert_eq(rc_refcount(v), 1);
    rc_decref(v);
}

Test(builtins, dict_errors)
{
    rc_object *d = rc_dict_new(), *l = rc_list_new();
    cr_assert_eq(rc_dict_set(l, "a", l), -1);
    assert_error("rc_dict_set: expected a dict, got list");
    cr_assert_eq(rc_dict_set(d, NULL, l), -1);
    assert_error("key");
    cr_assert_eq(rc_dict_set(d, "a", NULL), -1);
    assert_error("NULL");
    cr_assert_null(rc_dict_get(l, "a"));
    assert_error("expected a dict");
    cr_assert_eq(rc_dict_del(l, "a"), -1);
    cr_assert_eq(rc_dict_len(l), 0);
    size_t pos = 0;
    cr_assert_not(rc_dict_next(l, &pos, NULL, NULL));
    assert_error("expected a dict");
    cr_assert_eq(rc_refcount(l), 1);
    rc_decref(d);
    rc_decref(l);
}

/* ---- cell and closure ---------------------------------------------------- */

static rc_object *add_base(rc_object *self, rc_object *arg)
{
    rc_object *base = rc_closure_cell(self, "base");
    return rc_int(rc_int_value(base) + rc_int_value(arg));
}

Test(builtins, closure_call_and_cells)
{
    rc_object *base = rc_int(40), *data = rc_bytes(64);
    const char *names[] = {"base", "huge_data", "empty"};
    rc_object *values[] = {base, data, NULL};
    rc_object *f = rc_closure_new(add_base, "process", 3, names, values);
    cr_assert_str_eq(rc_type_name(f), "closure");
    cr_assert_str_eq(rc_closure_name(f), "process");
    cr_assert_eq(rc_refcount(base), 2);
    cr_assert_eq(rc_refcount(data), 2);
    cr_assert_eq(rc_closure_cell(f, "base"), base);
    cr_assert_eq(rc_closure_cell(f, "huge_data"), data);
    cr_assert_null(rc_closure_cell(f, "empty"), "an empty cell");
    cr_assert_null(rc_closure_cell(f, "nope"));
    assert_error("no cell 'nope'");

    rc_object *two = rc_int(2);
    rc_object *r = rc_closure_call(f, two);
    cr_assert_eq(rc_int_value(r), 42);
    cr_assert_eq(rc_refcount(r), 1, "the result is a new reference");
    cr_assert_eq(rc_refcount(f), 1, "the call gave its reference back");
    rc_decref(r);
    rc_decref(two);

    /* The closure's referents are its captured values. */
    rc_object *refs = rc_gc_get_referents(f);
    cr_assert_eq(rc_list_len(refs), 2);
    rc_decref(refs);

    rc_decref(f);
    cr_assert_eq(rc_refcount(base), 1);
    cr_assert_eq(rc_refcount(data), 1);
    rc_decref(base);
    rc_decref(data);
}

static rc_object *read_counter(rc_object *self, rc_object *arg)
{
    (void)arg;
    rc_object *v = rc_closure_cell(self, "count");
    return v ? rc_incref(v) : NULL;
}

static rc_object *bump_counter(rc_object *self, rc_object *arg)
{
    (void)arg;
    /* nonlocal count; count += 1: rebinds the shared cell. */
    rc_object *next = rc_int(rc_int_value(rc_closure_cell(self, "count")) + 1);
    rc_object *cell = NULL;
    /* find the shared cell through the referents */
    rc_object *refs = rc_gc_get_referents(self);
    cell = rc_list_get(refs, 0);
    rc_cell_set(cell, next);
    rc_decref(refs);
    rc_decref(next);
    return NULL;
}

Test(builtins, closures_share_a_cell)
{
    rc_object *zero = rc_int(0);
    rc_object *cell = rc_cell_new(zero);
    cr_assert_str_eq(rc_type_name(cell), "cell");
    cr_assert_eq(rc_cell_get(cell), zero);
    cr_assert_eq(rc_refcount(zero), 2);
    const char *names[] = {"count"};
    rc_object *values[] = {cell};
    rc_object *get = rc_closure_new(read_counter, "get", 1, names, values);
    rc_object *inc = rc_closure_new(bump_counter, "inc", 1, names, values);
    cr_assert_eq(rc_refcount(cell), 3, "both closures hold the cell itself");
    cr_assert_eq(rc_closure_cell(get, "count"), zero, "the cell's contents");

    cr_assert_null(rc_closure_call(inc, NULL), "NULL is \"nothing\"");
    cr_assert_null(rc_closure_call(inc, NULL));
    rc_object *v = rc_closure_call(get, NULL);
    cr_assert_eq(rc_int_value(v), 2, "get sees what inc stored");
    rc_decref(v);
    cr_assert_eq(rc_int_value(rc_cell_get(cell)), 2);
    cr_assert_eq(rc_refcount(zero), 1, "the old binding was released");

    rc_cell_set(cell, NULL);
    cr_assert_null(rc_closure_cell(get, "count"), "an emptied cell");
    rc_decref(get);
    rc_decref(inc);
    cr_assert_eq(rc_refcount(cell), 1);
    rc_decref(cell);
    rc_decref(zero);
}

Test(builtins, closure_and_cell_errors)
{
    rc_object *i = rc_int(1);
    const char *names[] = {"x"};
    cr_assert_null(rc_closure_new(NULL, "f", 0, NULL, NULL));
    assert_error("function is NULL");
    cr_assert_null(rc_closure_new(add_base, "f", 1, NULL, NULL));
    assert_error("names");
    cr_assert_null(rc_closure_call(i, NULL));
    assert_error("rc_closure_call: expected a closure, got int");
    cr_assert_null(rc_closure_cell(i, "x"));
    cr_assert_null(rc_closure_name(NULL));
    cr_assert_null(rc_cell_get(i));
    assert_error("rc_cell_get: expected a cell, got int");
    rc_cell_set(i, i);
    assert_error("rc_cell_set: expected a cell");
    cr_assert_eq(rc_refcount(i), 1);
    /* A closure with no values: all cells empty; a NULL name is a lambda. */
    rc_object *f = rc_closure_new(add_base, NULL, 1, names, NULL);
    cr_assert_str_eq(rc_closure_name(f), "<lambda>");
    cr_assert_null(rc_closure_cell(f, "x"));
    rc_decref(f);
    rc_decref(i);
}

/* ---- classes ------------------------------------------------------------- */

Test(builtins, dict_class_attributes)
{
    rc_object *cls = rc_class_new("Point", NULL, NULL, 0);
    cr_assert_str_eq(rc_type_name(cls), "type");
    rc_object *p = rc_instance_new(cls);
    cr_assert_str_eq(rc_type_name(p), "Point");
    cr_assert_eq(rc_instance_class(p), cls);
    cr_assert_eq(rc_refcount(cls), 2, "the instance holds its class");
    cr_assert(rc_gc_is_tracked(p));

    rc_object *x = rc_int(3), *y = rc_int(4);
    cr_assert_eq(rc_setattr(p, "x", x), 0);
    cr_assert_eq(rc_setattr(p, "y", y), 0);
    cr_assert_eq(rc_getattr(p, "x"), x);
    cr_assert_eq(rc_getattr(p, "y"), y);
    cr_assert_eq(rc_refcount(x), 2);
    cr_assert_eq(rc_setattr(p, "x", y), 0);
    cr_assert_eq(rc_refcount(x), 1);
    cr_assert_eq(rc_getattr(p, "x"), y);

    rc_object *dict = rc_getattr(p, "__dict__");
    cr_assert_str_eq(rc_type_name(dict), "dict");
    cr_assert_eq(rc_dict_len(dict), 2);
    cr_assert_eq(rc_getattr(p, "__class__"), cls);

    cr_assert_null(rc_getattr(p, "z"));
    assert_error("'Point' object has no attribute 'z'");
    cr_assert_eq(rc_setattr(p, "x", NULL), 0, "delattr");
    cr_assert_null(rc_getattr(p, "x"));
    cr_assert_eq(rc_setattr(p, "x", NULL), -1);
    assert_error("'Point' object has no attribute 'x'");

    rc_decref(p);
    cr_assert_eq(rc_refcount(cls), 1);
    cr_assert_eq(rc_refcount(y), 1);
    rc_decref(cls);
    rc_decref(x);
    rc_decref(y);
}

Test(builtins, slotted_class_attributes)
{
    const char *slots[] = {"x", "y", NULL};
    rc_object *cls = rc_class_new("Point", slots, NULL, 0);
    rc_object *p = rc_instance_new(cls);
    cr_assert_str_eq(rc_type_name(p), "Point");
    rc_object *x = rc_int(3);
    cr_assert_null(rc_getattr(p, "x"), "an unset slot");
    assert_error("'Point' object has no attribute 'x'");
    cr_assert_eq(rc_setattr(p, "x", x), 0);
    cr_assert_eq(rc_getattr(p, "x"), x);
    cr_assert_eq(rc_refcount(x), 2);
    cr_assert_eq(rc_setattr(p, "y", x), 0);
    cr_assert_eq(rc_refcount(x), 3);

    cr_assert_eq(rc_setattr(p, "z", x), -1);
    assert_error("'Point' object has no attribute 'z'");
    cr_assert_null(rc_getattr(p, "z"));
    assert_error("'Point' object has no attribute 'z'");
    cr_assert_null(rc_getattr(p, "__dict__"));

    rc_object *refs = rc_gc_get_referents(p);
    cr_assert_eq(rc_list_len(refs), 3, "__class__, x, y");
    rc_decref(refs);

    rc_decref(p);
    cr_assert_eq(rc_refcount(x), 1);
    rc_decref(cls);
    rc_decref(x);
}

Test(builtins, slots_are_smaller_than_a_dict)
{
    const char *slots[] = {"x", "y", NULL};
    rc_object *scls = rc_class_new("Slotted", slots, NULL, 0);
    rc_object *dcls = rc_class_new("Plain", NULL, NULL, 0);
    rc_object *s = rc_instance_new(scls), *d = rc_instance_new(dcls);
    rc_object *v = rc_int(1);
    rc_setattr(s, "x", v);
    rc_setattr(s, "y", v);
    rc_setattr(d, "x", v);
    rc_setattr(d, "y", v);
    size_t slotted = rc_sizeof(s);
    size_t plain = rc_sizeof(d) + rc_sizeof(rc_getattr(d, "__dict__"));
    cr_assert_lt(slotted, plain, "slotted %zu < dict-based %zu", slotted, plain);
    rc_decref(s);
    rc_decref(d);
    rc_decref(scls);
    rc_decref(dcls);
    rc_decref(v);
}

static int del_calls;
static void count_del(rc_object *self)
{
    (void)self;
    del_calls++;
}

Test(builtins, class_finalizer_runs_once)
{
    rc_object *cls = rc_class_new("Resource", NULL, count_del, 0);
    rc_object *r = rc_instance_new(cls);
    del_calls = 0;
    rc_decref(r);
    cr_assert_eq(del_calls, 1);
    rc_decref(cls);
}

Test(builtins, class_outlives_instances_and_dies_last)
{
    rc_object *cls = rc_class_new("Node", NULL, NULL, 0);
    rc_object *a = rc_instance_new(cls), *b = rc_instance_new(cls);
    rc_decref(cls); /* only the instances hold it now */
    cr_assert_eq(rc_refcount(cls), 2);
    cr_assert_str_eq(rc_type_name(a), "Node");
    rc_decref(a);
    cr_assert_eq(rc_refcount(cls), 1);
    rc_decref(b); /* the class dies inside b's deallocation */
    /* A new class after that works (the dead type was reclaimed). */
    rc_object *again = rc_class_new("Node", NULL, NULL, 0);
    rc_object *c = rc_instance_new(again);
    cr_assert_str_eq(rc_type_name(c), "Node");
    rc_decref(c);
    rc_decref(again);
}

Test(builtins, class_errors)
{
    const char *dup[] = {"x", "x", NULL};
    const char *bad[] = {"__dict__", NULL};
    cr_assert_null(rc_class_new(NULL, NULL, NULL, 0));
    assert_error("name");
    cr_assert_null(rc_class_new("A", dup, NULL, 0));
    assert_error("'x'");
    cr_assert_null(rc_class_new("A", bad, NULL, 0));
    cr_assert_null(rc_class_new("A", NULL, NULL, 0x40));
    assert_error("flags");
    rc_object *i = rc_int(1);
    cr_assert_null(rc_instance_new(i));
    assert_error("rc_instance_new: expected a class, got int");
    cr_assert_eq(rc_setattr(i, "x", i), -1);
    assert_error("'int' object has no attribute 'x'");
    cr_assert_null(rc_getattr(i, "x"));
    assert_error("'int' object has no attribute 'x'");
    cr_assert_null(rc_instance_class(i));
    assert_error("expected an instance");
    rc_object *cls = rc_class_new("A", NULL, NULL, 0);
    cr_assert_null(rc_getattr(cls, "x"));
    assert_error("type object 'A' has no attribute 'x'");
    rc_decref(cls);
    rc_decref(i);
}

/* ---- generator ----------------------------------------------------------- */

/* state: a list [counter] */
static rc_object *count_to_10(rc_object *state)
{
    int64_t k = rc_int_value(rc_list_get(state, 0));
    if (k >= 10)
        return NULL;
    rc_object *next = rc_int(k + 1);
    rc_list_set(state, 0, next);
    rc_decref(next);
    return rc_int(k);
}

Test(builtins, generator_yields_0_to_9)
{
    rc_object *state = rc_list_new(), *zero = rc_int(0);
    rc_list_append(state, zero);
    rc_decref(zero);
    rc_object *g = rc_gen_new(count_to_10, state);
    cr_assert_str_eq(rc_type_name(g), "generator");
    cr_assert_eq(rc_refcount(state), 2);
    for (int64_t k = 0; k < 10; k++) {
        rc_object *v = rc_iter_next(g);
        cr_assert_not_null(v);
        cr_assert_eq(rc_int_value(v), k);
        cr_assert_eq(rc_refcount(v), 1);
        rc_decref(v);
    }
    cr_assert_null(rc_iter_next(g));
    cr_assert_eq(rc_refcount(state), 1, "an exhausted generator released its state");
    cr_assert_null(rc_iter_next(g), "and stays exhausted");
    rc_decref(g);
    rc_decref(state);
}

Test(builtins, generator_errors)
{
    rc_object *l = rc_list_new();
    cr_assert_null(rc_gen_new(NULL, l));
    assert_error("NULL");
    cr_assert_null(rc_iter_next(l));
    assert_error("rc_iter_next: expected a generator, got list");
    rc_decref(l);
}

/* ---- with the collector ---------------------------------------------------- */

Test(builtins, cycles_through_builtins_are_collected)
{
    rc_gc_collect(2);
    /* a list that contains itself */
    rc_object *l = rc_list_new();
    rc_list_append(l, l);
    rc_decref(l);
    cr_assert_eq(rc_gc_collect(2), 1);

    /* a dict that contains itself, with other keys */
    rc_object *d = rc_dict_new();
    rc_object *s = rc_str("payload");
    rc_dict_set(d, "self", d);
    rc_dict_set(d, "data", s);
    rc_decref(d);
    cr_assert_eq(rc_gc_collect(2), 1);
    cr_assert_eq(rc_refcount(s), 1);
    rc_decref(s);

    /* an instance whose attribute is itself: the instance and its dict */
    rc_object *cls = rc_class_new("Node", NULL, NULL, 0);
    rc_object *n = rc_instance_new(cls);
    rc_setattr(n, "me", n);
    rc_decref(n);
    cr_assert_eq(rc_gc_collect(2), 2);
    cr_assert_eq(rc_refcount(cls), 1);

    /* a closure that captures a list holding the closure */
    rc_object *box = rc_list_new();
    const char *names[] = {"box"};
    rc_object *f = rc_closure_new(add_base, "f", 1, names, &box);
    rc_list_append(box, f);
    rc_decref(box);
    rc_decref(f);
    cr_assert_eq(rc_gc_collect(2), 2);

    /* a tuple in a list in the tuple: tuple items become NULL while cleared */
    rc_object *inner = rc_list_new();
    rc_object *t = rc_tuple_new(1, inner);
    rc_list_append(inner, t);
    rc_decref(inner);
    rc_decref(t);
    cr_assert_eq(rc_gc_collect(2), 2);

    /* a generator whose state refers to it */
    rc_object *st = rc_list_new();
    rc_object *g = rc_gen_new(count_to_10, st);
    rc_list_append(st, g);
    rc_decref(st);
    rc_decref(g);
    cr_assert_eq(rc_gc_collect(2), 2);

    rc_decref(cls);
}

/* The collector's clear (the field table applied to a live object) can hit
 * any container that is then kept alive; every type must stay usable. */
Test(builtins, cleared_objects_stay_usable)
{
    rc_object *v = rc_int(5), *w = rc_int(6);
    char key[16];

    rc_object *d = rc_dict_new();
    for (int k = 0; k < 20; k++) {
        snprintf(key, sizeof key, "k%d", k);
        rc_dict_set(d, key, v);
    }
    rc_dict_del(d, "k19");
    _rc_clear_refs(d);
    cr_assert_eq(rc_refcount(v), 1, "the clear released every value");
    cr_assert_eq(rc_dict_len(d), 0);
    cr_assert_null(rc_dict_get(d, "k3"));
    size_t pos = 0;
    cr_assert_not(rc_dict_next(d, &pos, NULL, NULL));
    cr_assert_eq(rc_dict_set(d, "k3", w), 0);
    cr_assert_eq(rc_dict_get(d, "k3"), w);
    cr_assert_eq(rc_dict_len(d), 1);
    rc_decref(d);

    rc_object *l = rc_list_new();
    rc_list_append(l, v);
    _rc_clear_refs(l);
    cr_assert_eq(rc_refcount(v), 1);
    cr_assert_null(rc_list_get(l, 0));
    cr_assert_eq(rc_list_clear(l), 0);
    cr_assert_eq(rc_list_append(l, v), 0);
    rc_decref(l);

    rc_object *t = rc_tuple_new(2, v, w);
    _rc_clear_refs(t);
    cr_assert_null(rc_tuple_get(t, 0));
    rc_decref(t);

    const char *names[] = {"a"};
    rc_object *f = rc_closure_new(add_base, "f", 1, names, &v);
    _rc_clear_refs(f);
    cr_assert_null(rc_closure_cell(f, "a"));
    cr_assert_str_eq(rc_closure_name(f), "f");
    rc_decref(f);

    rc_object *cls = rc_class_new("Kept", NULL, NULL, 0);
    rc_object *o = rc_instance_new(cls);
    rc_setattr(o, "a", v);
    rc_incref(cls); /* the clear drops the instance's reference to it */
    _rc_clear_refs(o);
    cr_assert_eq(rc_refcount(cls), 2);
    cr_assert_null(rc_getattr(o, "a"));
    assert_error("'Kept' object has no attribute 'a'");
    cr_assert_eq(rc_setattr(o, "a", w), 0, "a fresh __dict__");
    cr_assert_eq(rc_getattr(o, "a"), w);
    rc_decref(o);
    rc_decref(cls);
    rc_decref(cls);

    rc_object *st = rc_list_new();
    rc_list_append(st, v);
    rc_object *g = rc_gen_new(count_to_10, st);
    _rc_clear_refs(g);
    cr_assert_null(rc_iter_next(g), "a cleared generator is exhausted");
    rc_decref(g);
    rc_decref(st);

    cr_assert_eq(rc_refcount(v), 1);
    cr_assert_eq(rc_refcount(w), 1);
    rc_decref(v);
    rc_decref(w);
}

Test(builtins, emptied_dict_is_reusable)
{
    rc_object *d = rc_dict_new(), *v = rc_int(1);
    for (int round = 0; round < 3; round++) {
        rc_dict_set(d, "a", v);
        rc_dict_set(d, "b", v);
        rc_dict_del(d, "b");
        rc_dict_del(d, "a");
        cr_assert_eq(rc_dict_len(d), 0);
        size_t pos = 0;
        cr_assert_not(rc_dict_next(d, &pos, NULL, NULL));
    }
    cr_assert_eq(rc_refcount(v), 1);
    rc_decref(d);
    rc_decref(v);
}
