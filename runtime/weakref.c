/*
 * Weak references: Python's weakref module.
 *
 * The object head has no room for a weakref list pointer, so the lists live
 * in a side table (target address -> newest weakref), consulted only for
 * objects with RC_OBF_WEAKREFD set. Readers of a core do not need the table:
 * they find weakrefs by scanning for objects of a weakref type and reading
 * wr_object.
 *
 * A target's weakrefs form a doubly linked list, newest first, so callbacks
 * run newest first (as CPython's, for weakrefs with callbacks).
 *
 * WeakValueDictionary, WeakSet and finalize are built on weakrefs with an
 * internal C callback (wr_ccallback) that runs before the user callback.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the side table --------------------------------------------------------------- */

typedef struct {
    rc_object *target; /* NULL: empty */
    rc_weakref *head;
} wr_slot;

static wr_slot *table;
static size_t table_cap, table_used;

static inline size_t hash_ptr(const void *p)
{
    uintptr_t x = (uintptr_t)p >> 4;
    x ^= x >> 17;
    x *= 0xed5ad4bbu;
    x ^= x >> 11;
    return (size_t)x;
}

static wr_slot *table_find(rc_object *target)
{
    if (!table_cap)
        return NULL;
    size_t mask = table_cap - 1;
    for (size_t i = hash_ptr(target) & mask;; i = (i + 1) & mask) {
        if (table[i].target == target)
            return &table[i];
        if (!table[i].target)
            return NULL;
    }
}

static void table_insert_raw(rc_object *target, rc_weakref *head)
{
    size_t mask = table_cap - 1;
    size_t i = hash_ptr(target) & mask;
    while (table[i].target)
        i = (i + 1) & mask;
    table[i].target = target;
    table[i].head = head;
}

static wr_slot *table_get_or_add(rc_object *target)
{
    wr_slot *s = table_find(target);
    if (s)
        return s;
    if ((table_used + 1) * 2 > table_cap) {
        size_t oldcap = table_cap;
        wr_slot *old = table;
        table_cap = oldcap ? oldcap * 2 : 64;
        table = _rc_xcalloc(table_cap, sizeof *table);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].target)
                table_insert_raw(old[i].target, old[i].head);
        free(old);
    }
    table_insert_raw(target, NULL);
    table_used++;
    return table_find(target);
}

/* Linear probing: delete by shifting later entries of the run back. */
static void table_delete(wr_slot *s)
{
    size_t mask = table_cap - 1;
    size_t i = (size_t)(s - table);
    table[i].target = NULL;
    table[i].head = NULL;
    table_used--;
    for (size_t j = (i + 1) & mask; table[j].target; j = (j + 1) & mask) {
        size_t want = hash_ptr(table[j].target) & mask;
        /* Move j to i if i lies cyclically in [want, j). */
        if (((j - want) & mask) >= ((j - i) & mask)) {
            table[i] = table[j];
            table[j].target = NULL;
            table[j].head = NULL;
            i = j;
        }
    }
}

rc_weakref *_rc_weakref_list(rc_object *target)
{
    if (!(target->ob_info & RC_OBF_WEAKREFD))
        return NULL;
    wr_slot *s = table_find(target);
    return s ? s->head : NULL;
}

static void link_weakref(rc_weakref *wr, rc_object *target)
{
    wr_slot *s = table_get_or_add(target);
    wr->wr_prev = NULL;
    wr->wr_next = s->head;
    if (s->head)
        s->head->wr_prev = wr;
    s->head = wr;
    wr->wr_object = target;
    target->ob_info |= RC_OBF_WEAKREFD;
}

void _rc_weakref_clear(rc_weakref *wr)
{
    rc_object *target = wr->wr_object;
    if (!target)
        return;
    if (wr->wr_prev) {
        wr->wr_prev->wr_next = wr->wr_next;
    } else {
        wr_slot *s = table_find(target);
        if (s) {
            s->head = wr->wr_next;
            if (!s->head) {
                table_delete(s);
                target->ob_info &= ~RC_OBF_WEAKREFD;
            }
        }
    }
    if (wr->wr_next)
        wr->wr_next->wr_prev = wr->wr_prev;
    wr->wr_prev = wr->wr_next = NULL;
    wr->wr_object = NULL;
}

/* ---- weakref objects ------------------------------------------------------------------ */

static const rc_field weakref_fields[] = {
    RC_WEAK(rc_weakref, wr_object),
    RC_REF(rc_weakref, wr_callback),
    RC_FIELDS_END,
};

static void weakref_destroy(rc_object *self);

rc_type rc_weakref_type = {
    .name = "weakref",
    .size = sizeof(rc_weakref),
    .fields = weakref_fields,
    .destroy = weakref_destroy,
    .tp_flags = RC_TPF_WEAKREF,
};

static bool teardown; /* rc_shutdown is releasing everything: no unlinking */

static void wvd_entry_died(rc_weakref *wr, void *ctx);

static void weakref_destroy(rc_object *self)
{
    rc_weakref *wr = (rc_weakref *)self;
    if (!teardown)
        _rc_weakref_clear(wr);
    if (wr->wr_ccallback == wvd_entry_died)
        free(wr->wr_ctx);
    wr->wr_ctx = NULL;
}

rc_weakref *_rc_weakref_new_c(rc_site *site, rc_object *target, rc_weakref_ccallback cb, void *ctx)
{
    rc_weakref *wr = rc_new_at(&rc_weakref_type, sizeof(rc_weakref), site);
    if (!wr)
        return NULL;
    wr->wr_ccallback = cb;
    wr->wr_ctx = ctx;
    link_weakref(wr, target);
    return wr;
}

rc_object *rc_weakref_new_at(rc_site *site, rc_object *target, rc_object *callback)
{
    rc_autoinit();
    if (!target) {
        _rc_error("rc_weakref_new: cannot create a weak reference to NULL");
        return NULL;
    }
    if (target->ob_refcnt == RC_REFCNT_FREED) {
        _rc_error("rc_weakref_new: target is a freed object");
        return NULL;
    }
    if (callback && callback->ob_type != &rc_closure_type) {
        _rc_error("rc_weakref_new: callback must be a closure, not %s", rc_type_name(callback));
        return NULL;
    }
    rc_weakref *wr = _rc_weakref_new_c(site, target, NULL, NULL);
    if (wr && callback)
        wr->wr_callback = rc_incref(callback);
    return (rc_object *)wr;
}

static bool check_weakref(rc_object *ref, const char *fn)
{
    if (!ref || !_rc_is_weakref(ref)) {
        _rc_error("%s: expected a weakref, got %s", fn, ref ? rc_type_name(ref) : "NULL");
        return false;
    }
    return true;
}

rc_object *rc_weakref_get(rc_object *ref)
{
    if (!check_weakref(ref, "rc_weakref_get"))
        return NULL;
    rc_object *o = ((rc_weakref *)ref)->wr_object;
    /* An object being deallocated (refcount 0) is already dead to weakrefs. */
    if (!o || o->ob_refcnt == 0)
        return NULL;
    return rc_incref(o);
}

size_t rc_weakref_count(rc_object *target)
{
    if (!target)
        return 0;
    size_t n = 0;
    for (rc_weakref *wr = _rc_weakref_list(target); wr; wr = wr->wr_next)
        n++;
    return n;
}

void _rc_weakref_fire(rc_weakref *wr)
{
    if (wr->wr_ccallback)
        wr->wr_ccallback(wr, wr->wr_ctx);
    if (wr->wr_callback) {
        rc_object *cb = wr->wr_callback;
        wr->wr_callback = NULL;
        rc_object *r = rc_closure_call(cb, (rc_object *)wr);
        rc_xdecref(r);
        rc_decref(cb);
    }
}

/* PyObject_ClearWeakRefs: clear every weakref first (so no callback can
 * reach the dying object), then run the callbacks of the weakrefs that are
 * still alive, newest first. */
void _rc_weakrefs_on_dealloc(rc_object *target)
{
    size_t n = 0;
    for (rc_weakref *wr = _rc_weakref_list(target); wr; wr = wr->wr_next)
        n++;
    if (!n) {
        target->ob_info &= ~RC_OBF_WEAKREFD;
        return;
    }
    rc_weakref *small[16];
    rc_weakref **pending = n <= 16 ? small : _rc_xmalloc(n * sizeof *pending);
    size_t k = 0;
    rc_weakref *wr;
    while ((wr = _rc_weakref_list(target)) != NULL) {
        _rc_weakref_clear(wr);
        bool alive = wr->ob_base.ob_refcnt > 0 && wr->ob_base.ob_refcnt != RC_REFCNT_FREED;
        if (alive && (wr->wr_callback || wr->wr_ccallback))
            pending[k++] = (rc_weakref *)rc_incref(wr);
    }
    target->ob_info &= ~RC_OBF_WEAKREFD;
    for (size_t i = 0; i < k; i++) {
        _rc_weakref_fire(pending[i]);
        rc_decref(pending[i]);
    }
    if (pending != small)
        free(pending);
}

/* ---- WeakValueDictionary ----------------------------------------------------------------- */

typedef struct {
    RC_OBJECT_HEAD;
    rc_object *data; /* dict: key -> weakref with an internal callback */
} weakvaluedict;

static const rc_field wvd_fields[] = {
    RC_REF(weakvaluedict, data),
    RC_FIELDS_END,
};

rc_type rc_weakvaluedict_type = {
    .name = "WeakValueDictionary",
    .size = sizeof(weakvaluedict),
    .fields = wvd_fields,
};

typedef struct {
    rc_object *owner; /* the weakvaluedict (not a reference: it owns us) */
    char key[];
} wvd_ctx;

static void wvd_entry_died(rc_weakref *wr, void *ctx)
{
    wvd_ctx *c = ctx;
    weakvaluedict *d = (weakvaluedict *)c->owner;
    if (!d->data)
        return;
    /* Only remove the entry if it is still this weakref (not replaced). */
    if (rc_dict_get(d->data, c->key) == (rc_object *)wr)
        rc_dict_del(d->data, c->key);
}

rc_object *rc_weakvaluedict_new_at(rc_site *site)
{
    rc_autoinit();
    weakvaluedict *d = rc_new_at(&rc_weakvaluedict_type, sizeof *d, site);
    if (!d)
        return NULL;
    d->data = rc_dict_new_at(site);
    return (rc_object *)d;
}

static weakvaluedict *check_wvd(rc_object *o, const char *fn)
{
    if (!o || o->ob_type != &rc_weakvaluedict_type) {
        _rc_error("%s: expected a WeakValueDictionary, got %s", fn, o ? rc_type_name(o) : "NULL");
        return NULL;
    }
    return (weakvaluedict *)o;
}

int rc_weakvaluedict_set(rc_object *o, const char *key, rc_object *value)
{
    weakvaluedict *d = check_wvd(o, "rc_weakvaluedict_set");
    if (!d)
        return -1;
    if (!key || !value)
        return _rc_error("rc_weakvaluedict_set: NULL %s", key ? "value" : "key");
    size_t klen = strlen(key) + 1;
    wvd_ctx *c = _rc_xmalloc(sizeof *c + klen);
    c->owner = o;
    memcpy(c->key, key, klen);
    static rc_site site = {__FILE__, "rc_weakvaluedict_set", __LINE__, 0};
    rc_weakref *wr = _rc_weakref_new_c(&site, value, wvd_entry_died, c);
    if (!wr) {
        free(c);
        return -1;
    }
    int r = rc_dict_set(d->data, key, (rc_object *)wr);
    rc_decref(wr);
    return r;
}

rc_object *rc_weakvaluedict_get(rc_object *o, const char *key)
{
    weakvaluedict *d = check_wvd(o, "rc_weakvaluedict_get");
    if (!d || !key)
        return NULL;
    rc_object *wr = rc_dict_get(d->data, key);
    return wr ? rc_weakref_get(wr) : NULL;
}

int rc_weakvaluedict_del(rc_object *o, const char *key)
{
    weakvaluedict *d = check_wvd(o, "rc_weakvaluedict_del");
    if (!d)
        return -1;
    return rc_dict_del(d->data, key);
}

size_t rc_weakvaluedict_len(rc_object *o)
{
    weakvaluedict *d = check_wvd(o, "rc_weakvaluedict_len");
    return d && d->data ? rc_dict_len(d->data) : 0;
}

/* ---- WeakSet ------------------------------------------------------------------------------ */

typedef struct {
    RC_OBJECT_HEAD;
    rc_object *data; /* list of weakrefs with an internal callback */
} weakset;

static const rc_field weakset_fields[] = {
    RC_REF(weakset, data),
    RC_FIELDS_END,
};

rc_type rc_weakset_type = {
    .name = "WeakSet",
    .size = sizeof(weakset),
    .fields = weakset_fields,
};

static void list_remove_item(rc_object *list, rc_object *item)
{
    size_t n = rc_list_len(list);
    for (size_t i = 0; i < n; i++) {
        if (rc_list_get(list, i) == item) {
            rc_object *last = rc_list_pop(list); /* new reference */
            if (i < n - 1)
                rc_list_set(list, i, last);
            rc_xdecref(last);
            return;
        }
    }
}

static void weakset_item_died(rc_weakref *wr, void *ctx)
{
    weakset *s = ctx;
    if (s->data)
        list_remove_item(s->data, (rc_object *)wr);
}

rc_object *rc_weakset_new_at(rc_site *site)
{
    rc_autoinit();
    weakset *s = rc_new_at(&rc_weakset_type, sizeof *s, site);
    if (!s)
        return NULL;
    s->data = rc_list_new_at(site);
    return (rc_object *)s;
}

static weakset *check_weakset(rc_object *o, const char *fn)
{
    if (!o || o->ob_type != &rc_weakset_type) {
        _rc_error("%s: expected a WeakSet, got %s", fn, o ? rc_type_name(o) : "NULL");
        return NULL;
    }
    return (weakset *)o;
}

static rc_weakref *weakset_find(weakset *s, rc_object *item)
{
    size_t n = rc_list_len(s->data);
    for (size_t i = 0; i < n; i++) {
        rc_weakref *wr = (rc_weakref *)rc_list_get(s->data, i);
        if (wr && wr->wr_object == item)
            return wr;
    }
    return NULL;
}

int rc_weakset_add(rc_object *o, rc_object *item)
{
    weakset *s = check_weakset(o, "rc_weakset_add");
    if (!s)
        return -1;
    if (!item)
        return _rc_error("rc_weakset_add: NULL item");
    if (weakset_find(s, item))
        return 0;
    static rc_site site = {__FILE__, "rc_weakset_add", __LINE__, 0};
    rc_weakref *wr = _rc_weakref_new_c(&site, item, weakset_item_died, s);
    if (!wr)
        return -1;
    int r = rc_list_append(s->data, (rc_object *)wr);
    rc_decref(wr);
    return r;
}

bool rc_weakset_contains(rc_object *o, rc_object *item)
{
    weakset *s = check_weakset(o, "rc_weakset_contains");
    return s && item && weakset_find(s, item) != NULL;
}

int rc_weakset_discard(rc_object *o, rc_object *item)
{
    weakset *s = check_weakset(o, "rc_weakset_discard");
    if (!s)
        return -1;
    rc_weakref *wr = weakset_find(s, item);
    if (wr)
        list_remove_item(s->data, (rc_object *)wr);
    return 0;
}

bool rc_weakset_next(rc_object *o, size_t *pos, rc_object **item)
{
    weakset *s = check_weakset(o, "rc_weakset_next");
    if (!s || !s->data || !pos)
        return false;
    size_t n = rc_list_len(s->data);
    while (*pos < n) {
        rc_weakref *wr = (rc_weakref *)rc_list_get(s->data, (*pos)++);
        if (wr && wr->wr_object && wr->wr_object->ob_refcnt > 0) {
            if (item)
                *item = wr->wr_object;
            return true;
        }
    }
    return false;
}

size_t rc_weakset_len(rc_object *o)
{
    weakset *s = check_weakset(o, "rc_weakset_len");
    return s && s->data ? rc_list_len(s->data) : 0;
}

/* ---- finalize ------------------------------------------------------------------------------ */

typedef struct {
    RC_OBJECT_HEAD;
    rc_object *func;    /* the closure to call */
    rc_object *weakref; /* to the target, with fire_finalizer as internal callback */
    int alive;
} finalize_obj;

static const rc_field finalize_fields[] = {
    RC_REF(finalize_obj, func),
    RC_REF(finalize_obj, weakref),
    RC_FIELDS_END,
};

rc_type rc_finalize_type = {
    .name = "finalize",
    .size = sizeof(finalize_obj),
    .fields = finalize_fields,
};

/* Take f off the registry of alive finalizers (which holds a reference). */
static void unregister_finalizer(finalize_obj *f)
{
    if (REG.finalizers)
        list_remove_item(REG.finalizers, (rc_object *)f);
}

static int run_finalizer(finalize_obj *f)
{
    if (!f->alive)
        return 0;
    f->alive = 0;
    rc_incref(f);
    unregister_finalizer(f);
    rc_object *func = f->func;
    f->func = NULL;
    if (func) {
        rc_object *r = rc_closure_call(func, NULL);
        rc_xdecref(r);
        rc_decref(func);
    }
    rc_decref(f);
    return 1;
}

static void fire_finalizer(rc_weakref *wr, void *ctx)
{
    (void)wr;
    run_finalizer((finalize_obj *)ctx);
}

rc_object *rc_finalize_new_at(rc_site *site, rc_object *target, rc_object *closure)
{
    rc_autoinit();
    if (!target || !closure || closure->ob_type != &rc_closure_type) {
        _rc_error("rc_finalize_new: need a target and a closure");
        return NULL;
    }
    finalize_obj *f = rc_new_at(&rc_finalize_type, sizeof *f, site);
    if (!f)
        return NULL;
    f->func = rc_incref(closure);
    f->alive = 1;
    f->weakref = (rc_object *)_rc_weakref_new_c(site, target, fire_finalizer, f);
    rc_list_append(REG.finalizers, (rc_object *)f);
    return (rc_object *)f;
}

static finalize_obj *check_finalize(rc_object *o, const char *fn)
{
    if (!o || o->ob_type != &rc_finalize_type) {
        _rc_error("%s: expected a finalize object, got %s", fn, o ? rc_type_name(o) : "NULL");
        return NULL;
    }
    return (finalize_obj *)o;
}

bool rc_finalize_alive(rc_object *o)
{
    finalize_obj *f = check_finalize(o, "rc_finalize_alive");
    return f && f->alive;
}

int rc_finalize_detach(rc_object *o)
{
    finalize_obj *f = check_finalize(o, "rc_finalize_detach");
    if (!f)
        return -1;
    if (!f->alive)
        return 0;
    f->alive = 0;
    rc_incref(f);
    unregister_finalizer(f);
    rc_decref(f);
    return 1;
}

int rc_finalize_call(rc_object *o)
{
    finalize_obj *f = check_finalize(o, "rc_finalize_call");
    if (!f)
        return -1;
    return run_finalizer(f);
}

void _rc_finalizers_at_shutdown(void)
{
    /* Newest first, like weakref.finalize's atexit hook. */
    while (REG.finalizers && rc_list_len(REG.finalizers) > 0) {
        size_t n = rc_list_len(REG.finalizers);
        finalize_obj *f = (finalize_obj *)rc_list_get(REG.finalizers, n - 1);
        if (!run_finalizer(f))
            unregister_finalizer(f); /* not alive: should not be listed */
    }
}

/* ---- teardown ------------------------------------------------------------------------------ */

void _rc_weakref_begin_teardown(void) { teardown = true; }

void _rc_weakref_shutdown(void)
{
    free(table);
    table = NULL;
    table_cap = table_used = 0;
    teardown = false;
}
