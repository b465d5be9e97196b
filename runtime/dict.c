/*
 * The string-keyed dict: CPython's compact, insertion-ordered layout.
 *
 *   entries   rc_dict_entry[usable], filled in insertion order; deleting
 *             leaves a hole (key and value NULL) that only a resize removes
 *   indices   int32_t[mask + 1], open addressing with CPython's perturbed
 *             probe; each slot is an index into entries, EMPTY or DUMMY
 *
 * Only the entries are described by the field table ({"dict", DICT,
 * entries, used}): readers see `dict['key'] -> value` edges without knowing
 * the index table exists. Keys are owned C strings, hashed with FNV-1a.
 *
 * The index table is a power of two, at least 8; at most two thirds of its
 * slots are ever non-EMPTY (fill <= USABLE), so a probe always ends on an
 * EMPTY slot. When the
 * entries are full the dict is rebuilt at GROWTH(len) = 3 * len live entries
 * (rounded up to a power of two), which both grows and compacts.
 *
 * The field table may clear the dict under us (the collector's clear,
 * deallocation): values released and set to NULL, keys and index table
 * untouched, and `used` either left alone or set to 0. An entry with a key
 * and no value ("cleared") exists only after such a clear: deletion empties
 * both, and trailing holes are trimmed off `used`, so outside a clear
 *
 *   used == filled  and  (used == 0 or entries[used - 1] is live).
 *
 * dict_sync() checks that in O(1) on entry and rebuilds when it fails (which
 * also recounts len); lookups skip entries without a value meanwhile;
 * destroy frees keys up to `filled`.
 */
#include "builtins.h"

#include <stdlib.h>
#include <string.h>

#define DICT_MINSIZE 8u
#define USABLE(size) (((size) << 1) / 3)
/* Entry indexes are int32_t; keep well clear of the sentinels. */
#define DICT_MAXSIZE ((size_t)1 << 30)
#define PERTURB_SHIFT 5

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

static inline bool entry_live(const rc_dict_entry *e) { return e->key && e->value; }

/* ========================================================================
 * Table maintenance (no user code runs in here)
 * ===================================================================== */

/* Rebuild with an index table of `size` slots (a power of two >= 8 that
 * leaves room for every live entry), compacting the entries. Keys of dead
 * entries among [0, filled) are freed. */
static void dict_rebuild(rc_dict_object *d, size_t size)
{
    size_t usable = USABLE(size);
    rc_dict_entry *entries = _rc_xcalloc(usable, sizeof(rc_dict_entry));
    int32_t *indices = _rc_xmalloc(size * sizeof(int32_t));
    memset(indices, 0xff, size * sizeof(int32_t)); /* all RC_DKIX_EMPTY */
    size_t mask = size - 1, n = 0;

    for (size_t i = 0; i < d->filled; i++) {
        rc_dict_entry *e = &d->entries[i];
        if (!entry_live(e)) {
            free(e->key);
            continue;
        }
        entries[n] = *e;
        size_t j = (size_t)e->hash & mask;
        for (uint64_t perturb = e->hash; indices[j] != RC_DKIX_EMPTY;) {
            perturb >>= PERTURB_SHIFT;
            j = (j * 5 + (size_t)perturb + 1) & mask;
        }
        indices[j] = (int32_t)n;
        n++;
    }
    free(d->entries);
    free(d->indices);
    d->entries = entries;
    d->indices = indices;
    d->mask = mask;
    d->usable = usable;
    d->used = d->filled = d->len = d->fill = n;
}

/* The size of index table that holds `len` live entries with room to grow. */
static size_t growth_size(size_t len)
{
    size_t want = len * 3, size = DICT_MINSIZE;
    while (size < want && size < DICT_MAXSIZE)
        size <<= 1;
    return size;
}

/* Repair after the field table cleared the dict behind our back. */
static void dict_sync(rc_dict_object *d)
{
    if (RC_LIKELY(d->used == d->filled && (d->used == 0 || d->entries[d->used - 1].value)))
        return;
    /* Entries at or past `used` were released: forget their values before
     * the rebuild looks at them (they may dangle). */
    for (size_t i = d->used; i < d->filled; i++)
        d->entries[i].value = NULL;
    d->filled = d->filled > d->used ? d->filled : d->used;
    dict_rebuild(d, growth_size(d->used));
}

/* The entry index of key, or -1; *slot receives the index-table slot that
 * holds it, or the first EMPTY slot of its probe sequence. */
static ptrdiff_t dict_lookup(rc_dict_object *d, const char *key, uint64_t hash, size_t *slot)
{
    size_t mask = d->mask, j = (size_t)hash & mask;
    for (uint64_t perturb = hash;;) {
        int32_t ix = d->indices[j];
        if (ix == RC_DKIX_EMPTY) {
            *slot = j;
            return -1;
        }
        if (ix >= 0) {
            rc_dict_entry *e = &d->entries[ix];
            if (e->hash == hash && entry_live(e) && strcmp(e->key, key) == 0) {
                *slot = j;
                return ix;
            }
        }
        perturb >>= PERTURB_SHIFT;
        j = (j * 5 + (size_t)perturb + 1) & mask;
    }
}

/* ========================================================================
 * The type
 * ===================================================================== */

static void dict_destroy(rc_object *self)
{
    rc_dict_object *d = (rc_dict_object *)self;
    /* Values were released by the field table; `filled` still says how many
     * entries may own a key. */
    for (size_t i = 0; i < d->filled; i++)
        free(d->entries[i].key);
    free(d->entries);
    free(d->indices);
    d->entries = NULL;
    d->indices = NULL;
    d->used = d->filled = d->len = d->usable = d->fill = d->mask = 0;
}

static const rc_field dict_fields[] = {
    {"dict", RC_FIELD_DICT, (uint32_t)offsetof(rc_dict_object, entries),
     (uint32_t)offsetof(rc_dict_object, used), 0},
    RC_FIELDS_END,
};

rc_type rc_dict_type = {
    .name = "dict",
    .size = sizeof(rc_dict_object),
    .fields = dict_fields,
    .destroy = dict_destroy,
};

/* ========================================================================
 * Public API
 * ===================================================================== */

rc_object *rc_dict_new_at(rc_site *site)
{
    /* Zeroed: no tables until the first insertion (like `{}`). */
    return rc_new_at(&rc_dict_type, sizeof(rc_dict_object), site);
}

int rc_dict_set(rc_object *dobj, const char *key, rc_object *value)
{
    if (!_rc_expect("rc_dict_set", dobj, &rc_dict_type, "a dict"))
        return -1;
    if (!key)
        return _rc_error("rc_dict_set: the key is NULL");
    if (!value)
        return _rc_error("rc_dict_set: the value for key '%s' is NULL", key);
    rc_dict_object *d = (rc_dict_object *)dobj;
    dict_sync(d);

    uint64_t hash = hash_key(key);
    size_t slot = 0;
    if (d->indices) {
        ptrdiff_t ix = dict_lookup(d, key, hash, &slot);
        if (ix >= 0) {
            rc_dict_entry *e = &d->entries[ix];
            rc_object *old = e->value;
            e->value = rc_incref(value);
            rc_decref(old); /* last: may run code that changes the dict */
            return 0;
        }
    }
    if (d->fill >= d->usable) { /* fill >= used: the entries are full too */
        if (d->len >= USABLE(DICT_MAXSIZE))
            return _rc_error("rc_dict_set: dict is full (%zu entries)", d->len);
        dict_rebuild(d, growth_size(d->len));
        dict_lookup(d, key, hash, &slot); /* the EMPTY slot in the new table */
    }
    size_t n = d->used;
    rc_dict_entry *e = &d->entries[n];
    e->hash = hash;
    e->key = _rc_xstrdup(key);
    e->value = rc_incref(value);
    d->indices[slot] = (int32_t)n;
    d->used = d->filled = n + 1;
    d->len++;
    d->fill++;
    return 0;
}

rc_object *rc_dict_get(rc_object *dobj, const char *key)
{
    if (!_rc_expect("rc_dict_get", dobj, &rc_dict_type, "a dict"))
        return NULL;
    if (!key) {
        _rc_error("rc_dict_get: the key is NULL");
        return NULL;
    }
    rc_dict_object *d = (rc_dict_object *)dobj;
    dict_sync(d);
    if (!d->indices)
        return NULL;
    size_t slot;
    ptrdiff_t ix = dict_lookup(d, key, hash_key(key), &slot);
    return ix >= 0 ? d->entries[ix].value : NULL;
}

int rc_dict_del(rc_object *dobj, const char *key)
{
    if (!_rc_expect("rc_dict_del", dobj, &rc_dict_type, "a dict"))
        return -1;
    if (!key)
        return _rc_error("rc_dict_del: the key is NULL");
    rc_dict_object *d = (rc_dict_object *)dobj;
    dict_sync(d);
    size_t slot;
    ptrdiff_t ix = d->indices ? dict_lookup(d, key, hash_key(key), &slot) : -1;
    if (ix < 0)
        return _rc_error("rc_dict_del: key '%s' not found", key);
    rc_dict_entry *e = &d->entries[ix];
    rc_object *old = e->value;
    d->indices[slot] = RC_DKIX_DUMMY;
    free(e->key);
    e->key = NULL;
    e->value = NULL;
    d->len--;
    /* Trim trailing holes: the last entry in use stays live (dict_sync's
     * O(1) check), and the slots are reused without a rebuild. */
    while (d->used > 0 && !d->entries[d->used - 1].key)
        d->used--;
    d->filled = d->used;
    rc_decref(old); /* last: may run code that changes the dict */
    return 0;
}

size_t rc_dict_len(rc_object *dobj)
{
    if (!_rc_expect("rc_dict_len", dobj, &rc_dict_type, "a dict"))
        return 0;
    rc_dict_object *d = (rc_dict_object *)dobj;
    dict_sync(d);
    return d->len;
}

bool rc_dict_next(rc_object *dobj, size_t *pos, const char **key, rc_object **value)
{
    if (!_rc_expect("rc_dict_next", dobj, &rc_dict_type, "a dict"))
        return false;
    if (!pos) {
        _rc_error("rc_dict_next: pos is NULL");
        return false;
    }
    rc_dict_object *d = (rc_dict_object *)dobj;
    dict_sync(d);
    while (*pos < d->used) {
        rc_dict_entry *e = &d->entries[(*pos)++];
        if (!entry_live(e))
            continue;
        if (key)
            *key = e->key;
        if (value)
            *value = e->value;
        return true;
    }
    return false;
}

size_t _rc_dict_extra_size(rc_object *dobj)
{
    rc_dict_object *d = (rc_dict_object *)dobj;
    size_t n = d->usable * sizeof(rc_dict_entry);
    if (d->indices)
        n += (d->mask + 1) * sizeof(int32_t);
    for (size_t i = 0; i < d->filled; i++) {
        if (d->entries[i].key)
            n += strlen(d->entries[i].key) + 1;
    }
    return n;
}
