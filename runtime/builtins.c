/*
 * Built-in types: int, str, bytes, list, tuple, cell, closure, generator.
 * (dict.c has the dict, class.c classes and instances.)
 *
 * Conventions, as everywhere in the runtime:
 *   - every public function checks the type of its object argument and fails
 *     with NULL / -1 (0 for sizes and values) and rc_last_error() on a wrong
 *     type or NULL;
 *   - containers take their own reference to what they store and release
 *     what they replace or remove;
 *   - a replaced or removed reference is released LAST, after the container
 *     is consistent again: its death may run a finalizer that uses the
 *     container.
 *
 * Layouts and the invariant every type keeps against the collector's clear
 * are in builtins.h.
 */
#include "builtins.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ========================================================================
 * Atomic values: int, str, bytes
 * ===================================================================== */

rc_type rc_int_type = {
    .name = "int",
    .size = sizeof(rc_int_object),
};

rc_type rc_str_type = {
    .name = "str",
    .size = sizeof(rc_str_object),
};

rc_type rc_bytes_type = {
    .name = "bytes",
    .size = sizeof(rc_bytes_object),
};

rc_object *rc_int_at(rc_site *site, int64_t v)
{
    rc_int_object *o = rc_new_at(&rc_int_type, sizeof(rc_int_object), site);
    if (!o)
        return NULL;
    o->value = v;
    return RC_OBJ(o);
}

int64_t rc_int_value(rc_object *o)
{
    if (!_rc_expect("rc_int_value", o, &rc_int_type, "an int"))
        return -1;
    return ((rc_int_object *)o)->value;
}

rc_object *rc_str_at(rc_site *site, const char *s)
{
    if (!s) {
        _rc_error("rc_str: the string is NULL");
        return NULL;
    }
    size_t len = strlen(s);
    rc_str_object *o = rc_new_at(&rc_str_type, offsetof(rc_str_object, data) + len + 1, site);
    if (!o)
        return NULL;
    o->len = len;
    memcpy(o->data, s, len + 1);
    return RC_OBJ(o);
}

const char *rc_str_value(rc_object *o)
{
    if (!_rc_expect("rc_str_value", o, &rc_str_type, "a str"))
        return NULL;
    return ((rc_str_object *)o)->data;
}

rc_object *rc_bytes_at(rc_site *site, size_t n)
{
    if (n > SIZE_MAX / 2 - offsetof(rc_bytes_object, data)) {
        _rc_error("rc_bytes: size %zu is too large", n);
        return NULL;
    }
    /* rc_new_at hands out zeroed memory: the n bytes are zero already. */
    rc_bytes_object *o = rc_new_at(&rc_bytes_type, offsetof(rc_bytes_object, data) + n, site);
    if (!o)
        return NULL;
    o->len = n;
    return RC_OBJ(o);
}

unsigned char *rc_bytes_data(rc_object *o)
{
    if (!_rc_expect("rc_bytes_data", o, &rc_bytes_type, "a bytes object"))
        return NULL;
    return ((rc_bytes_object *)o)->data;
}

size_t rc_bytes_len(rc_object *o)
{
    if (!_rc_expect("rc_bytes_len", o, &rc_bytes_type, "a bytes object"))
        return 0;
    return ((rc_bytes_object *)o)->len;
}

/* ========================================================================
 * list
 * ===================================================================== */

static void list_destroy(rc_object *self)
{
    rc_list_object *l = (rc_list_object *)self;
    /* The items were released by the field table; only the buffer is left. */
    free(l->items);
    l->items = NULL;
    l->capacity = 0;
}

static const rc_field list_fields[] = {
    {"list", RC_FIELD_REF_ARRAY, (uint32_t)offsetof(rc_list_object, items),
     (uint32_t)offsetof(rc_list_object, len), 0},
    RC_FIELDS_END,
};

rc_type rc_list_type = {
    .name = "list",
    .size = sizeof(rc_list_object),
    .fields = list_fields,
    .destroy = list_destroy,
};

/*
 * Make room for newlen items and set len (CPython's list_resize): the buffer
 * is kept while capacity/2 <= newlen <= capacity, otherwise it is
 * reallocated with ~12.5 % headroom (0, 4, 8, 16, 24, 32, 40, 52, 64, 76...)
 * so appends are amortised O(1) and a shrinking list gives memory back.
 * Calls no user code.
 */
static void list_resize(rc_list_object *l, size_t newlen)
{
    if (l->capacity >= newlen && newlen >= (l->capacity >> 1)) {
        l->len = newlen;
        return;
    }
    size_t cap = (newlen + (newlen >> 3) + 6) & ~(size_t)3;
    /* A big jump (e.g. a bulk extend) gets no headroom beyond rounding. */
    if (newlen > l->len && newlen - l->len > cap - newlen)
        cap = (newlen + 3) & ~(size_t)3;
    if (newlen == 0)
        cap = 0;
    if (cap > SIZE_MAX / sizeof(rc_object *))
        _rc_fatal("list of %zu items is too large", newlen);
    if (cap == 0) {
        free(l->items);
        l->items = NULL;
    } else {
        l->items = _rc_xrealloc(l->items, cap * sizeof(rc_object *));
    }
    l->capacity = cap;
    l->len = newlen;
}

rc_object *rc_list_new_at(rc_site *site)
{
    /* Zeroed: no buffer until the first append (like `[]`). */
    return rc_new_at(&rc_list_type, sizeof(rc_list_object), site);
}

int rc_list_append(rc_object *lo, rc_object *item)
{
    if (!_rc_expect("rc_list_append", lo, &rc_list_type, "a list"))
        return -1;
    if (!item)
        return _rc_error("rc_list_append: the item is NULL");
    rc_list_object *l = (rc_list_object *)lo;
    size_t n = l->len;
    rc_incref(item);
    list_resize(l, n + 1);
    l->items[n] = item;
    return 0;
}

rc_object *rc_list_get(rc_object *lo, size_t i)
{
    if (!_rc_expect("rc_list_get", lo, &rc_list_type, "a list"))
        return NULL;
    rc_list_object *l = (rc_list_object *)lo;
    if (i >= l->len) {
        _rc_error("rc_list_get: list index out of range (index %zu, length %zu)", i, l->len);
        return NULL;
    }
    if (!l->items[i]) /* only after the collector cleared the list */
        _rc_error("rc_list_get: list item %zu is NULL", i);
    return l->items[i];
}

int rc_list_set(rc_object *lo, size_t i, rc_object *item)
{
    if (!_rc_expect("rc_list_set", lo, &rc_list_type, "a list"))
        return -1;
    if (!item)
        return _rc_error("rc_list_set: the item is NULL");
    rc_list_object *l = (rc_list_object *)lo;
    if (i >= l->len)
        return _rc_error("rc_list_set: list assignment index out of range "
                         "(index %zu, length %zu)",
                         i, l->len);
    rc_object *old = l->items[i];
    l->items[i] = rc_incref(item);
    rc_xdecref(old); /* last: may run code that changes the list */
    return 0;
}

size_t rc_list_len(rc_object *lo)
{
    if (!_rc_expect("rc_list_len", lo, &rc_list_type, "a list"))
        return 0;
    return ((rc_list_object *)lo)->len;
}

int rc_list_clear(rc_object *lo)
{
    if (!_rc_expect("rc_list_clear", lo, &rc_list_type, "a list"))
        return -1;
    rc_list_object *l = (rc_list_object *)lo;
    /* Detach the buffer first (CPython's list_clear): the list is empty and
     * consistent before any item dies, whatever their finalizers do to it. */
    rc_object **items = l->items;
    size_t n = l->len;
    l->items = NULL;
    l->len = 0;
    l->capacity = 0;
    while (n-- > 0)
        rc_xdecref(items[n]);
    free(items);
    return 0;
}

rc_object *rc_list_pop(rc_object *lo)
{
    if (!_rc_expect("rc_list_pop", lo, &rc_list_type, "a list"))
        return NULL;
    rc_list_object *l = (rc_list_object *)lo;
    if (l->len == 0) {
        _rc_error("rc_list_pop: pop from empty list");
        return NULL;
    }
    rc_object *item = l->items[l->len - 1]; /* the list's reference becomes the caller's */
    list_resize(l, l->len - 1);
    if (!item) /* only after the collector cleared the list */
        _rc_error("rc_list_pop: the item was NULL");
    return item;
}

/* ========================================================================
 * tuple
 * ===================================================================== */

static const rc_field tuple_fields[] = {
    {"tuple", RC_FIELD_INLINE_ARRAY, (uint32_t)offsetof(rc_tuple_object, items),
     (uint32_t)offsetof(rc_tuple_object, len), 0},
    RC_FIELDS_END,
};

rc_type rc_tuple_type = {
    .name = "tuple",
    .size = sizeof(rc_tuple_object),
    .fields = tuple_fields,
};

static rc_tuple_object *tuple_alloc(rc_site *site, size_t n)
{
    if (n > (SIZE_MAX / 2 - sizeof(rc_tuple_object)) / sizeof(rc_object *)) {
        _rc_error("rc_tuple_new: %zu items is too many", n);
        return NULL;
    }
    rc_tuple_object *t = rc_new_at(&rc_tuple_type,
                                   offsetof(rc_tuple_object, items) + n * sizeof(rc_object *), site);
    if (t)
        t->len = n;
    return t;
}

rc_object *rc_tuple_newv_at(rc_site *site, size_t n, rc_object *const *items)
{
    if (n > 0 && !items) {
        _rc_error("rc_tuple_newv: the item array is NULL");
        return NULL;
    }
    rc_tuple_object *t = tuple_alloc(site, n);
    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (items[i])
            t->items[i] = rc_incref(items[i]);
    }
    return RC_OBJ(t);
}

rc_object *rc_tuple_new_at(rc_site *site, size_t n, ...)
{
    rc_tuple_object *t = tuple_alloc(site, n);
    if (!t)
        return NULL;
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        rc_object *item = va_arg(ap, rc_object *);
        if (item)
            t->items[i] = rc_incref(item);
    }
    va_end(ap);
    return RC_OBJ(t);
}

rc_object *rc_tuple_get(rc_object *to, size_t i)
{
    if (!_rc_expect("rc_tuple_get", to, &rc_tuple_type, "a tuple"))
        return NULL;
    rc_tuple_object *t = (rc_tuple_object *)to;
    if (i >= t->len) {
        _rc_error("rc_tuple_get: tuple index out of range (index %zu, length %zu)", i, t->len);
        return NULL;
    }
    if (!t->items[i])
        _rc_error("rc_tuple_get: tuple item %zu is NULL", i);
    return t->items[i];
}

size_t rc_tuple_len(rc_object *to)
{
    if (!_rc_expect("rc_tuple_len", to, &rc_tuple_type, "a tuple"))
        return 0;
    return ((rc_tuple_object *)to)->len;
}

/* ========================================================================
 * cell
 * ===================================================================== */

static const rc_field cell_fields[] = {
    {"cell_contents", RC_FIELD_REF, (uint32_t)offsetof(rc_cell_object, ref), 0, 0},
    RC_FIELDS_END,
};

rc_type rc_cell_type = {
    .name = "cell",
    .size = sizeof(rc_cell_object),
    .fields = cell_fields,
};

rc_object *rc_cell_new_at(rc_site *site, rc_object *value)
{
    rc_cell_object *c = rc_new_at(&rc_cell_type, sizeof(rc_cell_object), site);
    if (!c)
        return NULL;
    if (value)
        c->ref = rc_incref(value);
    return RC_OBJ(c);
}

rc_object *rc_cell_get(rc_object *co)
{
    if (!_rc_expect("rc_cell_get", co, &rc_cell_type, "a cell"))
        return NULL;
    return ((rc_cell_object *)co)->ref;
}

void rc_cell_set(rc_object *co, rc_object *value)
{
    if (!_rc_expect("rc_cell_set", co, &rc_cell_type, "a cell"))
        return;
    rc_cell_object *c = (rc_cell_object *)co;
    rc_object *old = c->ref;
    c->ref = value ? rc_incref(value) : NULL;
    rc_xdecref(old);
}

/* ========================================================================
 * closure
 * ===================================================================== */

static void closure_destroy(rc_object *self)
{
    rc_closure_object *c = (rc_closure_object *)self;
    /* nnames, not ncells: the field table has set ncells to 0. */
    for (size_t i = 0; i < c->nnames; i++)
        free((char *)c->cell_names[i]);
    free(c->cell_names);
    free(c->name);
    c->cell_names = NULL;
    c->name = NULL;
    c->nnames = 0;
}

static const rc_field closure_fields[] = {
    {"cell", RC_FIELD_NAMED_ARRAY, (uint32_t)offsetof(rc_closure_object, cells),
     (uint32_t)offsetof(rc_closure_object, ncells),
     (uint32_t)offsetof(rc_closure_object, cell_names)},
    RC_FIELDS_END,
};

rc_type rc_closure_type = {
    .name = "closure",
    .size = sizeof(rc_closure_object),
    .fields = closure_fields,
    .destroy = closure_destroy,
    /* Readers label edges with the closure's name: "closure process cell 'x'". */
    .tp_name_offset = (uint32_t)offsetof(rc_closure_object, name),
};

rc_object *rc_closure_new_at(rc_site *site, rc_closure_fn fn, const char *name, size_t ncells,
                             const char *const *cell_names, rc_object *const *values)
{
    if (!fn) {
        _rc_error("rc_closure_new: the function is NULL");
        return NULL;
    }
    if (ncells > 0 && !cell_names) {
        _rc_error("rc_closure_new: %zu cells but no cell names", ncells);
        return NULL;
    }
    if (ncells > (SIZE_MAX / 2 - sizeof(rc_closure_object)) / sizeof(rc_object *)) {
        _rc_error("rc_closure_new: %zu cells is too many", ncells);
        return NULL;
    }
    for (size_t i = 0; i < ncells; i++) {
        if (!cell_names[i]) {
            _rc_error("rc_closure_new: cell name %zu is NULL", i);
            return NULL;
        }
    }
    rc_closure_object *c = rc_new_at(
        &rc_closure_type, offsetof(rc_closure_object, cells) + ncells * sizeof(rc_object *), site);
    if (!c)
        return NULL;
    c->fn = fn;
    c->name = _rc_xstrdup(name ? name : "<lambda>");
    if (ncells > 0) {
        c->cell_names = _rc_xmalloc(ncells * sizeof(char *));
        for (size_t i = 0; i < ncells; i++)
            c->cell_names[i] = _rc_xstrdup(cell_names[i]);
    }
    c->nnames = ncells;
    /* A value that is a cell is stored as is: the binding is shared with
     * whoever else holds the cell. Anything else is captured directly. */
    for (size_t i = 0; i < ncells; i++) {
        rc_object *v = values ? values[i] : NULL;
        if (v)
            c->cells[i] = rc_incref(v);
    }
    c->ncells = ncells;
    return RC_OBJ(c);
}

rc_object *rc_closure_call(rc_object *co, rc_object *arg)
{
    if (!_rc_expect("rc_closure_call", co, &rc_closure_type, "a closure"))
        return NULL;
    rc_closure_object *c = (rc_closure_object *)co;
    /* The call holds the closure, as a Python frame holds its function: fn
     * may drop the last other reference to it. */
    rc_incref(co);
    rc_object *result = c->fn(co, arg);
    rc_decref(co);
    return result;
}

rc_object *rc_closure_cell(rc_object *co, const char *name)
{
    if (!_rc_expect("rc_closure_cell", co, &rc_closure_type, "a closure"))
        return NULL;
    if (!name) {
        _rc_error("rc_closure_cell: the name is NULL");
        return NULL;
    }
    rc_closure_object *c = (rc_closure_object *)co;
    for (size_t i = 0; i < c->nnames; i++) {
        if (strcmp(c->cell_names[i], name) != 0)
            continue;
        if (i >= c->ncells) /* cleared by the collector: empty */
            return NULL;
        rc_object *v = c->cells[i];
        if (v && v->ob_type == &rc_cell_type)
            return ((rc_cell_object *)v)->ref;
        return v;
    }
    _rc_error("rc_closure_cell: closure '%s' has no cell '%s'", c->name, name);
    return NULL;
}

const char *rc_closure_name(rc_object *co)
{
    if (!_rc_expect("rc_closure_name", co, &rc_closure_type, "a closure"))
        return NULL;
    return ((rc_closure_object *)co)->name;
}

/* ========================================================================
 * generator
 * ===================================================================== */

static const rc_field gen_fields[] = {
    {"gi_state", RC_FIELD_REF, (uint32_t)offsetof(rc_gen_object, state), 0, 0},
    RC_FIELDS_END,
};

rc_type rc_gen_type = {
    .name = "generator",
    .size = sizeof(rc_gen_object),
    .fields = gen_fields,
};

rc_object *rc_gen_new_at(rc_site *site, rc_gen_next_fn next, rc_object *state)
{
    if (!next) {
        _rc_error("rc_gen_new: the next function is NULL");
        return NULL;
    }
    rc_gen_object *g = rc_new_at(&rc_gen_type, sizeof(rc_gen_object), site);
    if (!g)
        return NULL;
    g->next = next;
    if (state) {
        g->state = rc_incref(state);
        g->had_state = 1;
    }
    return RC_OBJ(g);
}

rc_object *rc_iter_next(rc_object *go)
{
    if (!_rc_expect("rc_iter_next", go, &rc_gen_type, "a generator"))
        return NULL;
    rc_gen_object *g = (rc_gen_object *)go;
    if (g->done)
        return NULL;
    if (g->had_state && !g->state) {
        /* The collector cleared it: nothing left to resume. */
        g->done = 1;
        return NULL;
    }
    if (g->running) {
        _rc_error("rc_iter_next: generator already executing");
        return NULL;
    }
    /* Hold the generator and its state across the call: next() may drop
     * the last other reference to either. */
    rc_object *state = g->state;
    rc_incref(go);
    if (state)
        rc_incref(state);
    g->running = 1;
    rc_object *item = g->next(state);
    g->running = 0;
    if (!item) {
        g->done = 1;
        rc_object *old = g->state;
        g->state = NULL;
        rc_xdecref(old);
    }
    rc_xdecref(state);
    rc_decref(go);
    return item;
}

/* ========================================================================
 * Runtime hooks
 * ===================================================================== */

void _rc_builtins_init(void)
{
    /* Nothing to do: built-in types register themselves on their first
     * allocation (rc_new_at), like user types. */
}

/* Bytes beyond type->size: the inline variable part (str, bytes, tuple,
 * closure cells) and the buffers owned outside the block. rc_sizeof adds
 * type->size and the gc head. */
size_t _rc_builtin_extra_size(rc_object *o)
{
    const rc_type *t = o->ob_type;
    if (t == &rc_str_type)
        return ((rc_str_object *)o)->len + 1;
    if (t == &rc_bytes_type)
        return ((rc_bytes_object *)o)->len;
    if (t == &rc_tuple_type)
        return ((rc_tuple_object *)o)->len * sizeof(rc_object *);
    if (t == &rc_list_type)
        return ((rc_list_object *)o)->capacity * sizeof(rc_object *);
    if (t == &rc_dict_type)
        return _rc_dict_extra_size(o);
    if (t == &rc_closure_type) {
        rc_closure_object *c = (rc_closure_object *)o;
        size_t n = c->nnames * sizeof(rc_object *); /* the inline cells */
        n += c->name ? strlen(c->name) + 1 : 0;
        n += c->nnames * sizeof(char *);
        for (size_t i = 0; i < c->nnames; i++)
            n += strlen(c->cell_names[i]) + 1;
        return n;
    }
    if (t == &rc_class_type)
        return _rc_class_extra_size(o);
    return 0;
}
