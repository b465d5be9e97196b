/*
 * refscope runtime: Python's memory model for C programs.
 *
 * Reference-counted objects, a generational cycle collector with PEP 442
 * finalizers and a garbage list, weak references and a pymalloc-style
 * allocator, all readable from a debugger or a core dump (see registry.h in
 * the runtime sources for the layout readers rely on).
 *
 * Conventions (as in CPython):
 *   - constructors return a NEW reference; getters return a BORROWED one;
 *   - containers take their own reference to what you put in, they never
 *     steal yours;
 *   - errors return NULL / -1 and leave a message in rc_last_error();
 *   - misuse that would corrupt memory (refcount below zero, a refcount
 *     operation on a freed object) aborts with a message naming the object,
 *     its type and its allocation site;
 *   - the runtime is used from one thread at a time.
 *
 * Every constructor is a macro that records __FILE__, __LINE__ and __func__
 * as the object's allocation site; the functions behind them end in `_at`
 * and take an rc_site * (RC_HERE) for wrappers that want to pass their
 * caller's site on.
 */
#ifndef REFSCOPE_RC_H
#define REFSCOPE_RC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RC_VERSION_MAJOR 0
#define RC_VERSION_MINOR 1

/* ------------------------------------------------------------------------
 * Objects
 * --------------------------------------------------------------------- */

typedef struct rc_type rc_type;

/*
 * The object head, first member of every object struct (RC_OBJECT_HEAD).
 * 16 bytes. Tracked objects (types with references) also carry an 8-byte
 * collector head *before* this struct (two 32-bit links; CPython's are two
 * pointers), so a tracked object costs 24 bytes of header in all, 8 fewer
 * than in CPython 3.11, site id included: a 2-reference object is 40 bytes.
 * Objects are 8-aligned (block sizes are multiples of 8, as in CPython
 * before 3.8): a member that needs 16-byte alignment (long double,
 * __int128, _Alignas(16)) does not get it in an object.
 * The links are offsets into one reserved range of address space that
 * holds every object up to 512 bytes and every tracked one: 16 GiB of
 * them at most (less where RLIMIT_AS allows less); past it an allocation
 * is a fatal out-of-memory error.
 *
 *   ob_refcnt  the reference count (rc_refcount); 0xDEAD0BAD once freed
 *   ob_info    bits 0..7 flags (RC_OBF_*), bits 8..31 allocation-site id
 *   ob_type    the type
 */
typedef struct rc_object {
    uint32_t ob_refcnt;
    uint32_t ob_info;
    const rc_type *ob_type;
} rc_object;

#define RC_OBJECT_HEAD rc_object ob_base

/* An allocation site; the constructor macros make one static per call site. */
typedef struct rc_site {
    const char *file;
    const char *func;
    uint32_t line;
    uint32_t id; /* 0 until first use, then the index in the site table */
} rc_site;

#define RC_HERE                                                              \
    __extension__({                                                          \
        static rc_site rc_site_here_ = {__FILE__, __func__, __LINE__, 0};    \
        &rc_site_here_;                                                      \
    })

/* ------------------------------------------------------------------------
 * Types: references are declared, never hidden
 * --------------------------------------------------------------------- */

/* Field kinds. The collector, rc_gc_get_referents and external readers all
 * decode references with this one table. */
enum rc_field_kind {
    RC_FIELD_END = 0,
    RC_FIELD_REF = 1,         /* rc_object *at offset                              */
    RC_FIELD_WEAK = 2,        /* rc_object *at offset, not counted, not traversed  */
    RC_FIELD_REF_ARRAY = 3,   /* rc_object **at offset, size_t count at len_offset */
    RC_FIELD_INLINE_ARRAY = 4,/* rc_object *[] inline at offset, size_t count at
                                 len_offset                                        */
    RC_FIELD_DICT = 5,        /* rc_dict_entry *at offset, size_t entries used at
                                 len_offset; entries with value NULL are empty     */
    RC_FIELD_NAMED_ARRAY = 6, /* rc_object *[] inline at offset, count at
                                 len_offset, const char *const *names at aux_offset */
};

typedef struct rc_field {
    const char *name;
    uint32_t kind;
    uint32_t offset;
    uint32_t len_offset;
    uint32_t aux_offset;
} rc_field;

/* A dict entry, as RC_FIELD_DICT tables hold them (insertion order). */
typedef struct rc_dict_entry {
    uint64_t hash;
    char *key;        /* owned copy; NULL for a deleted entry */
    rc_object *value; /* NULL for a deleted entry */
} rc_dict_entry;

#define RC_REF(T, member) \
    {#member, RC_FIELD_REF, (uint32_t)offsetof(T, member), 0, 0}
#define RC_WEAK(T, member) \
    {#member, RC_FIELD_WEAK, (uint32_t)offsetof(T, member), 0, 0}
#define RC_REF_ARRAY(T, items, len) \
    {#items, RC_FIELD_REF_ARRAY, (uint32_t)offsetof(T, items), (uint32_t)offsetof(T, len), 0}
#define RC_INLINE_ARRAY(T, items, len) \
    {#items, RC_FIELD_INLINE_ARRAY, (uint32_t)offsetof(T, items), (uint32_t)offsetof(T, len), 0}
#define RC_DICT_TABLE(T, entries, used) \
    {#entries, RC_FIELD_DICT, (uint32_t)offsetof(T, entries), (uint32_t)offsetof(T, used), 0}
#define RC_FIELDS_END {NULL, RC_FIELD_END, 0, 0, 0}

struct rc_type {
    const char *name;
    size_t size;                       /* of the instance struct (fixed part)   */
    const rc_field *fields;            /* NULL or empty: atomic, never tracked  */
    void (*finalize)(rc_object *self); /* PEP 442: runs at most once; may resurrect */
    void (*legacy_del)(rc_object *self); /* tp_del-style: a cycle holding it is
                                          uncollectable and goes to the garbage list */
    void (*destroy)(rc_object *self);  /* releases non-object resources         */
    /* Runtime-private, leave zero (so a type is a mutable static: the runtime
     * registers it in the debug registry on its first allocation): */
    uint32_t tp_id;       /* index in the registry's type table, 0 = unregistered */
    uint32_t tp_flags;    /* RC_TPF_* */
    uint32_t tp_name_offset; /* offset of a `const char *` naming an instance, or 0 */
    uint32_t tp_reserved;
};

/* ------------------------------------------------------------------------
 * Runtime
 * --------------------------------------------------------------------- */

void rc_init(void);      /* idempotent; also implicit on first use */
void rc_shutdown(void);  /* final collection; reports uncollectable objects like
                            CPython at exit; frees everything the runtime owns */
const char *rc_last_error(void);
void rc_debug_checkpoint(const char *label); /* a no-op debuggers and tests break on */

/* Debug checks (also on when the environment has RCSCOPE_DEBUG=1): every
 * refcount operation validates the object; freed blocks are quarantined so a
 * use after free is reported instead of hitting a reused block. */
void rc_debug_set_checks(bool on);
bool rc_debug_get_checks(void);

/* ------------------------------------------------------------------------
 * Reference counting
 * --------------------------------------------------------------------- */

rc_object *rc_incref(rc_object *o); /* returns o */
void rc_decref(rc_object *o);
void rc_xdecref(rc_object *o);      /* NULL allowed */
intptr_t rc_refcount(const rc_object *o); /* sys.getrefcount() - 1 */
void rc_set(rc_object **slot, rc_object *value); /* incref new, decref old */

/*
 * rc_incref, rc_decref and rc_xdecref are also inline, below, as
 * Py_INCREF and Py_DECREF are macros: a call costs as much as the
 * operation, and every object's life runs several. The functions above
 * (same behaviour) remain for callers that need an address (ctypes, a
 * function pointer): write (rc_incref)(o). What the inline versions read
 * besides the object is runtime-private:
 *   _rc_refcount_checks  nonzero while debug checks are on: rc_incref then
 *                        takes the function, which validates the object;
 *   _rc_dealloc          what a refcount reaching 0 calls.
 * A decref of an object whose refcount is 0 or the freed poison (any count
 * >= 2^31) takes the function, which aborts with a message naming it.
 */
extern uint32_t _rc_refcount_checks;
void _rc_dealloc(rc_object *o);

static inline __attribute__((always_inline)) rc_object *_rc_incref_inline(rc_object *o)
{
    if (__builtin_expect(_rc_refcount_checks != 0, 0))
        return (rc_incref)(o);
    o->ob_refcnt++;
    return o;
}

static inline __attribute__((always_inline)) void _rc_decref_inline(rc_object *o)
{
    uint32_t rc = o->ob_refcnt;
    if (__builtin_expect(rc - 1u >= 0x7FFFFFFFu, 0)) {
        (rc_decref)(o); /* aborts: already 0, freed or corrupt */
        return;
    }
    o->ob_refcnt = rc - 1u;
    if (rc == 1u)
        _rc_dealloc(o);
}

static inline __attribute__((always_inline)) void _rc_xdecref_inline(rc_object *o)
{
    if (o)
        _rc_decref_inline(o);
}

/* The same operations on any pointer to a struct that starts with the object
 * head (a Node *), as CPython's macros accept any PyObject-derived pointer. */
#define rc_incref(o) _rc_incref_inline((rc_object *)(o))
#define rc_decref(o) _rc_decref_inline((rc_object *)(o))
#define rc_xdecref(o) _rc_xdecref_inline((rc_object *)(o))
#define rc_refcount(o) (rc_refcount)((const rc_object *)(o))
#define RC_OBJ(o) ((rc_object *)(o))

/* Allocate a T of `type`, refcount 1, tracked if the type has references. */
void *rc_new_at(rc_type *type, size_t size, rc_site *site);
#define rc_new(T, type) ((T *)rc_new_at((type), sizeof(T), RC_HERE))
/* A variable-size instance: `size` bytes in all (>= type->size). */
#define rc_new_var(T, type, size) ((T *)rc_new_at((type), (size), RC_HERE))

const char *rc_type_name(const rc_object *o);
/* "Type@0xADDR (file.c:LINE)" into buf; returns buf. */
char *rc_describe(const rc_object *o, char *buf, size_t n);

/* ------------------------------------------------------------------------
 * Built-in types
 * --------------------------------------------------------------------- */

extern rc_type rc_int_type, rc_str_type, rc_bytes_type, rc_list_type,
    rc_tuple_type, rc_dict_type, rc_cell_type, rc_closure_type, rc_class_type,
    rc_gen_type, rc_weakref_type, rc_weakvaluedict_type, rc_weakset_type,
    rc_finalize_type;

rc_object *rc_int_at(rc_site *site, int64_t v);
#define rc_int(v) rc_int_at(RC_HERE, (v))
int64_t rc_int_value(rc_object *o);

rc_object *rc_str_at(rc_site *site, const char *s);
#define rc_str(s) rc_str_at(RC_HERE, (s))
const char *rc_str_value(rc_object *o);

rc_object *rc_bytes_at(rc_site *site, size_t n); /* n zeroed bytes */
#define rc_bytes(n) rc_bytes_at(RC_HERE, (n))
unsigned char *rc_bytes_data(rc_object *o);
size_t rc_bytes_len(rc_object *o);

rc_object *rc_list_new_at(rc_site *site);
#define rc_list_new() rc_list_new_at(RC_HERE)
int rc_list_append(rc_object *l, rc_object *item);
rc_object *rc_list_get(rc_object *l, size_t i);          /* borrowed */
int rc_list_set(rc_object *l, size_t i, rc_object *item);
size_t rc_list_len(rc_object *l);
int rc_list_clear(rc_object *l);
rc_object *rc_list_pop(rc_object *l);                    /* new reference, NULL if empty */

rc_object *rc_tuple_new_at(rc_site *site, size_t n, ...); /* n borrowed items */
rc_object *rc_tuple_newv_at(rc_site *site, size_t n, rc_object *const *items);
#define rc_tuple_new(...) rc_tuple_new_at(RC_HERE, __VA_ARGS__)
rc_object *rc_tuple_get(rc_object *t, size_t i);          /* borrowed */
size_t rc_tuple_len(rc_object *t);

rc_object *rc_dict_new_at(rc_site *site);                 /* string keys */
#define rc_dict_new() rc_dict_new_at(RC_HERE)
int rc_dict_set(rc_object *d, const char *key, rc_object *value);
rc_object *rc_dict_get(rc_object *d, const char *key);    /* borrowed or NULL */
int rc_dict_del(rc_object *d, const char *key);
size_t rc_dict_len(rc_object *d);
/* Iterate: *pos starts at 0; returns false at the end. Borrowed key/value. */
bool rc_dict_next(rc_object *d, size_t *pos, const char **key, rc_object **value);

rc_object *rc_cell_new_at(rc_site *site, rc_object *value);
#define rc_cell_new(v) rc_cell_new_at(RC_HERE, (v))
rc_object *rc_cell_get(rc_object *cell);                  /* borrowed */
void rc_cell_set(rc_object *cell, rc_object *value);

typedef rc_object *(*rc_closure_fn)(rc_object *self, rc_object *arg);
rc_object *rc_closure_new_at(rc_site *site, rc_closure_fn fn, const char *name, size_t ncells,
                             const char *const *cell_names, rc_object *const *values);
#define rc_closure_new(...) rc_closure_new_at(RC_HERE, __VA_ARGS__)
rc_object *rc_closure_call(rc_object *closure, rc_object *arg);   /* new reference */
rc_object *rc_closure_cell(rc_object *closure, const char *name); /* borrowed value */
const char *rc_closure_name(rc_object *closure);

#define RC_CLASS_LEGACY_DEL 1u /* `del` is a tp_del-style legacy finalizer */
rc_object *rc_class_new_at(rc_site *site, const char *name, const char *const *slots,
                           void (*del)(rc_object *self), unsigned flags);
#define rc_class_new(...) rc_class_new_at(RC_HERE, __VA_ARGS__)
rc_object *rc_instance_new_at(rc_site *site, rc_object *cls);
#define rc_instance_new(cls) rc_instance_new_at(RC_HERE, (cls))
int rc_setattr(rc_object *o, const char *name, rc_object *value);
rc_object *rc_getattr(rc_object *o, const char *name);   /* borrowed or NULL */
rc_object *rc_instance_class(rc_object *o);               /* borrowed */

typedef rc_object *(*rc_gen_next_fn)(rc_object *state);
rc_object *rc_gen_new_at(rc_site *site, rc_gen_next_fn next, rc_object *state);
#define rc_gen_new(next, state) rc_gen_new_at(RC_HERE, (next), (state))
rc_object *rc_iter_next(rc_object *gen);                  /* new reference, NULL at end */

/* ------------------------------------------------------------------------
 * Roots: what "held by globals" means
 * --------------------------------------------------------------------- */

void rc_root_add(rc_object **slot, const char *name);
void rc_root_remove(rc_object **slot);
rc_object *rc_globals(void); /* the module-globals dict, itself a root (borrowed) */

/* ------------------------------------------------------------------------
 * The cycle collector: Python's gc module
 * --------------------------------------------------------------------- */

typedef void (*rc_gc_callback)(const char *phase, int generation, size_t collected,
                               size_t uncollectable, void *data);

void rc_gc_enable(void);
void rc_gc_disable(void);
bool rc_gc_isenabled(void);
size_t rc_gc_collect(int generation); /* 0..2; returns what gc.collect() returns */
void rc_gc_get_count(size_t counts[3]);
void rc_gc_get_threshold(int th[3]);
void rc_gc_set_threshold(int t0, int t1, int t2);
typedef struct {
    size_t collections, collected, uncollectable;
} rc_gc_stats;
void rc_gc_get_stats(rc_gc_stats stats[3]);
rc_object *rc_gc_garbage(void); /* borrowed: the garbage list */

#define RC_DEBUG_STATS 1u
#define RC_DEBUG_COLLECTABLE 2u
#define RC_DEBUG_UNCOLLECTABLE 4u
#define RC_DEBUG_SAVEALL 32u
#define RC_DEBUG_LEAK (RC_DEBUG_COLLECTABLE | RC_DEBUG_UNCOLLECTABLE | RC_DEBUG_SAVEALL)
void rc_gc_set_debug(unsigned flags);
unsigned rc_gc_get_debug(void);
/* Where DEBUG_* lines go (default stderr). */
void rc_gc_set_debug_stream(FILE *f);

rc_object *rc_gc_get_objects(int generation); /* -1: all generations; new list */
rc_object *rc_gc_get_referrers(rc_object *o); /* new list */
rc_object *rc_gc_get_referents(rc_object *o); /* new list */
bool rc_gc_is_tracked(rc_object *o);
bool rc_gc_is_finalized(rc_object *o);
void rc_gc_freeze(void);
void rc_gc_unfreeze(void);
size_t rc_gc_get_freeze_count(void);
int rc_gc_callback_add(rc_gc_callback cb, void *data);
int rc_gc_callback_remove(rc_gc_callback cb, void *data);

/* ------------------------------------------------------------------------
 * Weak references: Python's weakref module
 * --------------------------------------------------------------------- */

/* callback: a closure called with the dead weakref as its argument, or NULL */
rc_object *rc_weakref_new_at(rc_site *site, rc_object *target, rc_object *callback);
#define rc_weakref_new(t, cb) rc_weakref_new_at(RC_HERE, (t), (cb))
rc_object *rc_weakref_get(rc_object *ref); /* new reference, or NULL once dead */
size_t rc_weakref_count(rc_object *target);

rc_object *rc_weakvaluedict_new_at(rc_site *site);
#define rc_weakvaluedict_new() rc_weakvaluedict_new_at(RC_HERE)
int rc_weakvaluedict_set(rc_object *d, const char *key, rc_object *value);
rc_object *rc_weakvaluedict_get(rc_object *d, const char *key); /* new reference or NULL */
int rc_weakvaluedict_del(rc_object *d, const char *key);
size_t rc_weakvaluedict_len(rc_object *d);

rc_object *rc_weakset_new_at(rc_site *site);
#define rc_weakset_new() rc_weakset_new_at(RC_HERE)
int rc_weakset_add(rc_object *s, rc_object *item);
bool rc_weakset_contains(rc_object *s, rc_object *item);
int rc_weakset_discard(rc_object *s, rc_object *item);
size_t rc_weakset_len(rc_object *s);
/* Iterate the live items: *pos starts at 0; false at the end. Borrowed item. */
bool rc_weakset_next(rc_object *s, size_t *pos, rc_object **item);

/* weakref.finalize: `closure` is called once (with a NULL argument) when
 * `target` dies, or at rc_shutdown if it is still alive then. The finalize
 * object keeps itself alive until it has run or is detached. */
rc_object *rc_finalize_new_at(rc_site *site, rc_object *target, rc_object *closure);
#define rc_finalize_new(t, c) rc_finalize_new_at(RC_HERE, (t), (c))
bool rc_finalize_alive(rc_object *f);
int rc_finalize_detach(rc_object *f);
int rc_finalize_call(rc_object *f); /* run it now if still alive */

/* ------------------------------------------------------------------------
 * Sizes
 * --------------------------------------------------------------------- */

size_t rc_sizeof(rc_object *o); /* sys.getsizeof: headers included */

#ifdef __cplusplus
}
#endif

/* Allocation tracing (tracemalloc), memory statistics, the memory timeline. */
#include <refscope/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* REFSCOPE_RC_H */
