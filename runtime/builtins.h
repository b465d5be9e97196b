/*
 * The layouts of the built-in objects (builtins.c, dict.c, class.c); not
 * installed.
 *
 * Every strong reference a built-in holds is described by its type's field
 * table and by nothing else: the collector, rc_gc_get_referents, deallocation
 * and the external readers all decode references with that one table. What
 * a struct keeps besides (buffers, names, private counts) holds no reference.
 *
 * The invariant every built-in keeps because the field table can be applied
 * to it at any time (the collector's clear, deallocation):
 *
 *   a described slot may become NULL, and a described count may drop to 0
 *   (its items released) between any two calls;
 *
 * so each type keeps a private copy of what it needs to free its buffers
 * (dict `filled`, closure `nnames`) and re-checks described counts on entry.
 */
#ifndef REFSCOPE_BUILTINS_H
#define REFSCOPE_BUILTINS_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- atomic values (no field table) ------------------------------------- */

typedef struct rc_int_object {
    RC_OBJECT_HEAD;
    int64_t value;
} rc_int_object;

typedef struct rc_str_object {
    RC_OBJECT_HEAD;
    size_t len;     /* strlen(data) */
    char data[];    /* NUL-terminated copy, inline */
} rc_str_object;

typedef struct rc_bytes_object {
    RC_OBJECT_HEAD;
    size_t len;
    unsigned char data[]; /* inline, zeroed at creation */
} rc_bytes_object;

/* ---- containers --------------------------------------------------------- */

/* fields: {"list", REF_ARRAY, items, len}. capacity >= len; the buffer is
 * malloc'd and grows like CPython's list_resize. */
typedef struct rc_list_object {
    RC_OBJECT_HEAD;
    rc_object **items;
    size_t len;
    size_t capacity;
} rc_list_object;

/* fields: {"tuple", INLINE_ARRAY, items, len}. An item may be NULL once the
 * collector has cleared the tuple. */
typedef struct rc_tuple_object {
    RC_OBJECT_HEAD;
    size_t len;
    rc_object *items[];
} rc_tuple_object;

/*
 * The compact, insertion-ordered dict (CPython 3.6+), string keys.
 *
 *   entries[0 .. used)   in insertion order; a deleted entry has key == NULL
 *                        and value == NULL (deleted slots are reused only by
 *                        a resize, which compacts)
 *   indices[0 .. mask]   open addressing: an index into entries, or
 *                        RC_DKIX_EMPTY / RC_DKIX_DUMMY; describes nothing
 *
 * fields: {"dict", DICT, entries, used}. Invariants, outside a clear:
 *   len <= used == filled <= fill <= usable == USABLE(mask + 1)
 * (fill can exceed used: deleting the last entry gives its slot back to
 * the entries but leaves a DUMMY in the index table.)
 * A clear by the field table sets used to 0: the next call notices
 * used != filled, frees the keys of entries [used, filled) and rebuilds.
 */
typedef struct rc_dict_object {
    RC_OBJECT_HEAD;
    rc_dict_entry *entries; /* NULL until the first insertion */
    size_t used;            /* described: entry slots in use, deleted included */
    size_t filled;          /* private copy of used: whose keys are ours to free */
    size_t len;             /* live entries */
    size_t usable;          /* capacity of entries */
    size_t fill;            /* index slots not EMPTY (live + DUMMY) >= used */
    int32_t *indices;       /* NULL until the first insertion */
    size_t mask;            /* index table size - 1 (size is a power of two) */
} rc_dict_object;

#define RC_DKIX_EMPTY (-1)
#define RC_DKIX_DUMMY (-2)

/* fields: {"cell_contents", REF}. */
typedef struct rc_cell_object {
    RC_OBJECT_HEAD;
    rc_object *ref; /* NULL: an empty cell */
} rc_cell_object;

/* fields: {"cell", NAMED_ARRAY, cells, ncells, cell_names};
 * tp_name_offset = offsetof(name). A cell slot holds either the captured
 * value itself or an rc_cell_type object shared with other closures. */
typedef struct rc_closure_object {
    RC_OBJECT_HEAD;
    rc_closure_fn fn;
    char *name;                /* owned copy */
    const char **cell_names;   /* owned copies, nnames of them */
    size_t ncells;             /* described; 0 once cleared */
    size_t nnames;             /* private: what cell_names holds */
    rc_object *cells[];
} rc_closure_object;

/* fields: {"gi_state", REF}. */
typedef struct rc_gen_object {
    RC_OBJECT_HEAD;
    rc_gen_next_fn next;
    rc_object *state;
    int done;       /* exhausted: next() returned NULL, the state was released */
    int running;    /* inside next(): a nested rc_iter_next is an error */
    int had_state;  /* created with a state: a NULL state now means cleared */
} rc_gen_object;

/* ---- classes (class.c) -------------------------------------------------- */

/* A class object: type "type", atomic (it holds no reference; its instances
 * hold it). tp_name_offset = offsetof(name). */
typedef struct rc_class_object {
    RC_OBJECT_HEAD;
    const char *name;   /* the instance type's name (owned by the type) */
    rc_type *itype;     /* the heap type of its instances */
    size_t nslots;      /* 0 for a dict-based class */
    unsigned flags;     /* RC_CLASS_* | RC_CLASSF_SLOTTED */
} rc_class_object;

#define RC_CLASSF_SLOTTED 0x100u

/* Instances: fields {"__class__", REF}, then {"__dict__", REF} or one REF per
 * slot, named by the slot. */
typedef struct rc_instance_object {
    RC_OBJECT_HEAD;
    rc_object *cls;
    rc_object *slots[]; /* dict-based: slots[0] is the __dict__ */
} rc_instance_object;

/* ---- shared helpers ------------------------------------------------------ */

/* Type check for the public entry points: "fn: expected a list, got int". */
static inline bool _rc_expect(const char *fn, const rc_object *o, const rc_type *t,
                              const char *what)
{
    if (RC_LIKELY(o && o->ob_type == t))
        return true;
    _rc_error("%s: expected %s, got %s", fn, what, o ? o->ob_type->name : "NULL");
    return false;
}

/* Bytes owned outside the object's block (see _rc_builtin_extra_size). */
RC_INTERNAL size_t _rc_dict_extra_size(rc_object *d);
RC_INTERNAL size_t _rc_class_extra_size(rc_object *cls);

/* Frees every heap type still held by class.c (classes leaked at exit, dead
 * classes whose instances were never freed). Call at the very end of
 * rc_shutdown, after the last object has been touched. */
RC_INTERNAL void _rc_builtins_shutdown(void);

#endif /* REFSCOPE_BUILTINS_H */
