/*
 * engine_int.h -- shared between the engine's files (heap.c, graph.c,
 * report.c); not installed.
 *
 * How the engine is cut:
 *
 *   heap.c    decode the registry: types, sites, roots, every object (arena
 *             scan + the large list), edges from the field tables; the
 *             object table, the address index, CSR edge arrays, warnings
 *   graph.c   graph algorithms over that table: the collector's unreachable
 *             set (mirrors runtime/gc.c), strongly connected components,
 *             reference reconciliation, dominators and retained sizes,
 *             shortest paths from the roots
 *   report.c  the commands: parse a command line, run the analyses it
 *             needs, print text or JSON (jansson)
 *
 * Words:
 *   object index   0 .. nobj-1; the object table is sorted by address, so
 *                  an index order is an address order
 *   edge           a strong reference found through a field table, from
 *                  one object to the start of another live object; edges
 *                  live in CSR arrays (out_off/out_dst) and their
 *                  reverse (in_off/in_src: a source once per edge, sources
 *                  in index order, one source's in the order of its edges;
 *                  built on first use, rs_in_offsets / rs_in_edges)
 *   label          (field index << 48) | element index: enough to print
 *                  `Node.next`, `list[3]`, `dict['key']`; found by decoding
 *                  the source again when printed (rs_edge_lab), as dict
 *                  keys and closure cell names are read only for printing
 *   root           something outside the heap that holds an object: a
 *                  registered root, the registry's own pointers (globals,
 *                  gc.garbage, finalizers), or what the front end adds
 *                  (C globals, stack words, locals, registers)
 *   node           for reachability and dominators: objects 0..nobj-1,
 *                  then one node per counted root, then the "unexplained
 *                  references" pseudo root, then the super root
 *
 * Invariants: every out_dst is a valid object index; every count read from
 * the target was capped before it sized anything; nothing here recurses on
 * the heap's shape.
 */
#ifndef REFSCOPE_ENGINE_INT_H
#define REFSCOPE_ENGINE_INT_H

#include "engine.h"

#include "internal.h" /* runtime: registry.h, rc_weakref layout */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* qsort with an empty array may get a NULL base, which C calls undefined
 * (UBSan stops on it): sort only what has more than one element. */
#define RS_QSORT(base, n, size, cmp)                                          \
    do {                                                                      \
        if ((n) > 1)                                                          \
            qsort((base), (n), (size), (cmp));                                \
    } while (0)

#define RS_EXPORT __attribute__((visibility("default")))
#define RS_NONE UINT32_MAX

/* Caps on counts read from the target (a corrupt count must not make us
 * allocate or loop without end). */
#define RS_MAX_TYPES (1u << 20)
#define RS_MAX_SITES (1u << 24)
#define RS_MAX_ROOTS (1u << 20)
#define RS_MAX_ARENAS (1u << 22)     /* 4 TiB of arenas */
#define RS_MAX_FIELDS 4096u          /* per type */
#define RS_MAX_ARRAY ((uint64_t)1 << 28) /* items in one array or dict */
#define RS_MAX_LARGE (1u << 26)      /* nodes of the large list */
#define RS_MAX_STR 512u              /* bytes of one string read */
#define RS_MAX_WARNINGS 1000u
#define RS_MAX_OBJECTS 0xFFFFFFF0u

#define RS_LAB_FIELD(l) ((uint32_t)((l) >> 48))
#define RS_LAB_ELEM(l) ((uint64_t)(l) & 0xFFFFFFFFFFFFull)
#define RS_LAB(f, e) (((uint64_t)(f) << 48) | ((uint64_t)(e) & 0xFFFFFFFFFFFFull))

/* Root kinds beyond engine.h's (engine.h's values are kept). */
#define RS_ROOT_RUNTIME 7       /* a pointer in rc_debug_registry: globals, gc.garbage, finalizers */
#define RS_ROOT_UNEXPLAINED 8   /* pseudo root: references no holder explains */

typedef struct rs_field {
    const char *name; /* interned, never NULL */
    uint32_t kind, offset, len_offset, aux_offset;
} rs_field;

/* Does field f lie (partly) outside an instance of `size` bytes? Inline
 * arrays may start at the end of the fixed part (their items follow it);
 * everything else -- pointers, counts, the names table -- must fit inside.
 * A field table that says otherwise is corrupt (or the size is). */
static inline bool rs_field_outside(const rs_field *f, uint64_t size)
{
    bool inline_items = f->kind == RC_FIELD_INLINE_ARRAY || f->kind == RC_FIELD_NAMED_ARRAY;
    if (inline_items ? f->offset > size : (uint64_t)f->offset + 8 > size)
        return true;
    if (f->kind != RC_FIELD_REF && f->kind != RC_FIELD_WEAK && (uint64_t)f->len_offset + 8 > size)
        return true;
    return f->kind == RC_FIELD_NAMED_ARRAY && (uint64_t)f->aux_offset + 8 > size;
}

typedef struct rs_type {
    uint64_t addr;
    const char *name;  /* interned; "?" if unreadable */
    uint64_t size;
    rs_field *fields;
    uint32_t nfields;
    uint32_t tp_id, tp_flags, tp_name_offset;
    uint64_t finalize, legacy_del, destroy; /* function addresses */
    bool valid;        /* the rc_type could be read */
    bool gc;           /* RC_TPF_GC */
    bool weakref;      /* RC_TPF_WEAKREF */
    bool registered;   /* types[tp_id] == addr */
    uint32_t fixed_extent; /* bytes of the object the fixed fields need */
    bool refs_only;    /* every field is a REF or WEAK pointer (decode_object's fast path) */
    bool strong_only;  /* every field is a REF pointer, fewer than 64 (the scan's fast path) */
} rs_type;

typedef struct rs_site {
    uint64_t file_addr, func_addr;
    uint32_t line;
    const char *file;  /* resolved lazily (NULL until then); "./" "../" stripped */
    const char *func;
} rs_site;

typedef struct rs_root {
    int kind;
    const char *label; /* interned */
    uint64_t slot;     /* 0: not in memory */
    uint64_t value;
    uint32_t obj;      /* object index, RS_NONE if value is no live object */
    bool counted;      /* false: another root has the same slot (an alias) */
} rs_root;

typedef struct rs_badedge {
    uint32_t src;
    uint64_t lab;
    uint64_t dst;      /* the address that is no live object */
} rs_badedge;

typedef struct rs_weakedge {
    uint32_t src, dst;
    uint64_t lab;
} rs_weakedge;

/* The collector's view (graph.c, rs_gc_analyze). */
enum {
    RS_GC_NONE = 0,       /* not a candidate (untracked, permanent) and not freed */
    RS_GC_REACHABLE = 1,  /* candidate, survives */
    RS_GC_COLLECTABLE = 2,/* unreachable, freed ("gc: collectable") */
    RS_GC_LEGACY = 3,     /* unreachable but uncollectable (legacy finalizer or reachable from one) */
    RS_GC_CASCADE = 4,    /* freed by refcount when the collectable ones are cleared */
};

typedef struct rs_group {
    uint32_t start;       /* its objects: lists[start ..], members then hanging off */
    uint32_t nmembers, nhang;
    bool uncollectable;
    bool is_cycle;        /* a real SCC (more than one member or a self loop) */
    uint64_t bytes, hang_bytes;
} rs_group; /* 32 bytes: there may be as many groups as half the objects */

typedef struct rs_gc_result {
    uint8_t *state;       /* per object: RS_GC_* */
    uint32_t *group;      /* per object: index into groups, RS_NONE */
    uint8_t *role;        /* per object: 1 member of its group, 2 hanging off it */
    rs_group *groups;
    size_t ngroups;
    uint32_t *lists;      /* the groups' objects, group after group */
    uint64_t n_collectable, b_collectable;
    uint64_t n_legacy, b_legacy;
    uint64_t n_cascade, b_cascade;
    uint64_t n_candidates;
} rs_gc_result;

/* A group's number (1-based, report order: the N of `graph --cycle N`), its
 * members (object indexes, sorted by address) and what hangs off it
 * (tracked trivial members and the cascade, sorted the same way). */
static inline uint32_t rs_group_id(const rs_gc_result *R, const rs_group *G)
{
    return (uint32_t)(G - R->groups) + 1;
}
static inline const uint32_t *rs_group_members(const rs_gc_result *R, const rs_group *G)
{
    return R->lists + G->start;
}
static inline const uint32_t *rs_group_hang(const rs_gc_result *R, const rs_group *G)
{
    return R->lists + G->start + G->nmembers;
}

typedef struct rs_dom_result {
    uint32_t nnodes;      /* nobj + nrootnodes + 2 */
    uint32_t *idom;       /* per node: immediate dominator node, RS_NONE unreachable */
    uint64_t *retained;   /* per node: bytes of its dominator subtree */
    uint32_t *rcount;     /* per node: objects in its dominator subtree */
    uint64_t reach_objects, reach_bytes;
} rs_dom_result;

/* One pool of a scanned arena in the address index (heap.c). A pool of
 * objects holds at most (16384 - 64) / 16 = 1020 blocks (an object is at
 * least 16 bytes): 16 words of bitmap. */
#define RS_POOL_WORDS 16
typedef struct rs_poolix {
    uint32_t first;        /* object index of the pool's first loaded block */
    uint32_t magic;        /* ceil(2^17 / d), d = block size / 8: block = (x * magic) >> 17 */
    uint8_t d;             /* block size / 8; 0: the pool holds no objects */
    uint8_t head;          /* gc head bytes before the object (0 or 8) */
    uint16_t ndense;       /* blocks 0 .. ndense-1 are all loaded: object first + b */
    uint16_t rank[RS_POOL_WORDS];  /* loaded blocks in live[0 .. w-1] */
    uint64_t live[RS_POOL_WORDS];  /* bit b: block b is a loaded object */
} rs_poolix;

typedef struct rs_arenaix {
    uint64_t key;          /* arena address >> 20; UINT64_MAX: empty slot */
    uint32_t pool0;        /* its first record in pools[] */
    uint32_t npools;       /* records it has (pools carved and readable) */
} rs_arenaix;

/* Chunked string storage, freed with the heap. */
typedef struct rs_strblock {
    struct rs_strblock *next;
    size_t used, cap;
    char data[];
} rs_strblock;

struct rs_heap {
    rs_memory mem;
    uint64_t regaddr;
    rc_registry reg;       /* the registry as read */
    bool loaded;
    uint64_t nreads, bytes_read;

    rs_symbolize_fn symbolize;
    void *symbolize_ctx;

    /* warnings */
    char **warnings;
    size_t nwarnings, capwarnings, dropped_warnings;

    /* strings: interned by target address, and literal copies */
    rs_strblock *strings;
    uint64_t *str_keys;    /* open addressing: target address -> str_vals */
    const char **str_vals;
    size_t str_cap, str_used;

    /* types */
    rs_type *types;
    size_t ntypes, captypes;
    uint32_t *type_hash;   /* open addressing: type index + 1, 0 empty */
    size_t type_hash_cap;

    /* sites (the registry's table; index = site id) */
    rs_site *sites;
    uint32_t nsites;

    /* objects, sorted by address */
    size_t nobj, capobj;
    uint64_t *addr;
    uint32_t *tidx;
    uint32_t *refcnt;
    uint32_t *info;
    uint32_t *blk;         /* block bytes (gc head / large header included), or
                              RS_BLK_X: see xbytes (rs_blk, rs_bytes read both) */
    /* objects with more bytes than their block (described out-of-block
     * buffers: list items, dict entries) or a block of 2 GiB and more, by
     * object index: few next to the objects, so no 8-byte table per object */
    struct rs_xbytes *xbytes;
    size_t nxbytes, capxbytes;
    uint64_t total_bytes;  /* the sum of rs_bytes over every object */

    /* address index (rs_find_object): the allocator's geometry. Arenas by
     * address (open addressing on addr >> 20) -> their pools' records ->
     * block index by arithmetic -> object index by the pool's bitmap of
     * loaded blocks; large objects by binary search of large_idx. */
    rs_arenaix *arenas_ix; /* open addressing, arena_cap slots (a power of 2) */
    size_t arena_cap;
    rs_poolix *pools;
    size_t npools, cappools;
    uint32_t *large_idx;   /* object indexes of large objects, in address order */
    size_t nlarge, caplarge;

    /* edges */
    size_t nedges;
    uint32_t *out_off, *out_dst;
    /* edge labels are decoded again when asked for (rs_edge_lab): the
     * labels of source lab_src's edges (RS_NONE: none yet) */
    uint32_t lab_src;
    uint64_t *lab_vals;
    size_t lab_cap;
    uint32_t *in_off, *in_src;  /* NULL until rs_in_offsets / rs_in_edges */
    /* per object: its heap in-degree (edges into it), counted by the load
     * as it resolves them; rs_unexplained takes the table over (its words
     * become the result: NULL from then on), except while the collector
     * mirror reads it on another thread (deg_shared: rs_heap_analyze) */
    uint32_t *deg;
    bool deg_shared;
    rs_weakedge *weak;
    size_t nweak;
    rs_badedge *bad;
    size_t nbad, capbad;
    uint64_t nbad_total;

    /* roots */
    rs_root *roots;
    size_t nroots, caproots;
    /* the objects roots point at, by object index (lazy, graph.c): few
     * next to the objects, so not a table per object */
    struct rs_rootcount *rootcnt;
    size_t nrootcnt;
    uint32_t obj_globals, obj_garbage, obj_finalizers; /* RS_NONE if absent */

    /* load statistics */
    uint64_t arenas_scanned, pools_scanned, large_scanned;
    double load_seconds;

    /* cached analyses (graph.c) */
    rs_gc_result *gc;
    rs_dom_result *dom;
    int32_t *unexplained;  /* per object: refcount - explained (lazy) */
    size_t nunexplained, noverreleased; /* objects whose unexplained[] is > 0, < 0 (with it) */
};

/* ---- heap.c ------------------------------------------------------------- */

/* tables.c: the engine's memory. Tables of a megabyte and more get
 * mappings of their own (huge pages, kept for reuse when freed): free
 * whatever rs_x* gave with rs_xfree, never free(). rs_xstrdup is malloc's. */
void *rs_xmalloc(size_t n);
void *rs_xcalloc(size_t n, size_t size);
void *rs_xrealloc(void *p, size_t n);
void rs_xfree(void *p);
/* Unmap the freed tables kept for reuse (rs_heap_free). */
void rs_tables_trim(void);
char *rs_xstrdup(const char *s);
/* Grow *arr (of *cap elements of elsize) to hold need elements. */
void rs_grow(void *arr, size_t *cap, size_t need, size_t elsize);

void rs_warn(rs_heap *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t rs_read_mem(rs_heap *h, uint64_t addr, void *buf, size_t len);
/* A string of the target, interned (cached by address); NULL if unreadable. */
const char *rs_target_string(rs_heap *h, uint64_t addr);
/* A copy of s owned by the heap. */
const char *rs_intern(rs_heap *h, const char *s);

/* The label of edge e (an index into out_dst) of object src. Labels are
 * not kept after loading: the source is decoded again from the target's
 * memory (the labels of the last source asked for are cached). A label
 * that cannot be found again (a live target that ran since) names field
 * 0xFFFF, printed "Type.?". */
uint64_t rs_edge_lab(rs_heap *h, uint32_t src, uint32_t e);

/* Object index of the object starting at addr, or RS_NONE. */
uint32_t rs_find_object(const rs_heap *h, uint64_t addr);
/* Object index of the object containing addr (block included), or RS_NONE. */
uint32_t rs_find_containing(const rs_heap *h, uint64_t addr);

/* An object's block and its bytes (block + buffers) when they are not
 * just blk[i] (engine_int.h, rs_heap.xbytes). */
#define RS_BLK_X 0x80000000u
typedef struct rs_xbytes {
    uint32_t obj;
    uint64_t blk, bytes;
} rs_xbytes;
const rs_xbytes *rs_xbytes_of(const rs_heap *h, uint32_t i);
/* the object's block: its own bytes, gc head or large header included */
static inline uint64_t rs_blk(const rs_heap *h, uint32_t i)
{
    uint32_t b = h->blk[i];
    return b & RS_BLK_X ? rs_xbytes_of(h, i)->blk : b;
}
/* the block and the out-of-block buffers its fields describe */
static inline uint64_t rs_bytes(const rs_heap *h, uint32_t i)
{
    uint32_t b = h->blk[i];
    return b & RS_BLK_X ? rs_xbytes_of(h, i)->bytes : b;
}

static inline const rs_type *rs_obj_type(const rs_heap *h, uint32_t i)
{
    return &h->types[h->tidx[i]];
}
static inline uint32_t rs_obj_site(const rs_heap *h, uint32_t i)
{
    return h->info[i] >> RC_SITE_SHIFT;
}
static inline unsigned rs_obj_gen(const rs_heap *h, uint32_t i)
{
    return h->info[i] & RC_OBF_GEN_MASK;
}
static inline bool rs_obj_tracked(const rs_heap *h, uint32_t i)
{
    return (h->info[i] & RC_OBF_TRACKED) != 0;
}
static inline uint32_t rs_outdeg(const rs_heap *h, uint32_t i)
{
    return h->out_off[i + 1] - h->out_off[i];
}
/* The reverse edges, built on first use (heap.c): in_off only, or both. */
void rs_in_offsets(rs_heap *h);
void rs_in_edges(rs_heap *h);
/* Object i's heap references (graph.c): from the reverse edges when they
 * are built, else from the reconciliation (no table of its own). */
uint32_t rs_indeg(rs_heap *h, uint32_t i);

/* A site, its strings resolved (NULL if the id is out of range). */
const rs_site *rs_get_site(rs_heap *h, uint32_t id);
/* "file.c:LINE" or "unknown site" into buf. */
const char *rs_site_str(rs_heap *h, uint32_t id, char *buf, size_t size);
/* "Type@0xADDR (file.c:LINE)" into buf. */
const char *rs_describe(rs_heap *h, uint32_t i, char *buf, size_t size);
/* The instance name at tp_name_offset ("process" for a closure), or NULL. */
const char *rs_instance_name(rs_heap *h, uint32_t i);
/* The label of an edge from object src: "Node.next", "list[3]",
 * "dict['key']", "closure process cell 'x'", "globals['name']". */
const char *rs_edge_label(rs_heap *h, uint32_t src, uint64_t lab, bool weak, char *buf,
                          size_t size);
/* A root's kind as words ("registered root", "C global", ...). */
const char *rs_root_kind_name(int kind);
/* The C function of a built-in closure, named by the front end's
 * symbolizer ("process (app.c:12)") or as 0xADDR; NULL for other objects. */
const char *rs_closure_code(rs_heap *h, uint32_t i, char *buf, size_t size);
/* The weakref fields of a weakref object (its memory is read again). */
bool rs_read_weakref(rs_heap *h, uint32_t i, rc_weakref *ret);

/* ---- graph.c ------------------------------------------------------------ */

const rs_gc_result *rs_gc_analyze(rs_heap *h);
/* How many threads the engine may use: REFSCOPE_THREADS if set (1 keeps
 * everything on the calling thread), else 2 if the machine has two CPUs
 * online or more. Nothing uses more than two: the load's scan of the
 * arenas and its edge resolution (heap.c), and rs_heap_analyze. */
unsigned rs_threads(void);
/*
 * Refcount reconciliation. Roots of kinds registered, runtime, C global and
 * other own a reference; stack words, registers and locals only *may* (a C
 * local often holds a borrowed pointer, or a stale one after its decref),
 * so they explain at most what heap edges and owning roots leave over:
 *
 *   excess      = refcount - heap edges - owning roots
 *   unexplained = excess - min(excess, stack slots)   if excess > 0
 *               = excess (negative: over-released)    otherwise
 */
const int32_t *rs_unexplained(rs_heap *h);
/* What the roots hold: per object that a counted root points at, how many
 * owning roots and how many stack/register/local slots do, and how many
 * heap edges (indeg: filled by rs_unexplained, which counts them for every
 * object, for rs_indeg); sorted by object. rs_rootref gives one object's
 * (all 0 for most). */
typedef struct rs_rootcount {
    uint32_t obj, roots, slots, indeg;
} rs_rootcount;
const rs_rootcount *rs_rootcounts(rs_heap *h, size_t *n);
rs_rootcount rs_rootref(rs_heap *h, uint32_t obj);
static inline bool rs_root_owns(int kind)
{
    return kind != RS_ROOT_STACK && kind != RS_ROOT_REGISTER && kind != RS_ROOT_LOCAL;
}
/* Does root r hold its object? Owning roots do; a stack word, register or
 * local does only if the object's refcount needs it (more counts than heap
 * references and owning roots): a borrowed or stale pointer holds nothing.
 * Dominators, paths and retained sizes follow only roots that hold. */
bool rs_root_holds(rs_heap *h, size_t r);
const rs_dom_result *rs_dominators(rs_heap *h);
/* Node ids of the dominator graph. */
static inline uint32_t rs_node_of_root(const rs_heap *h, size_t r) { return (uint32_t)(h->nobj + r); }
static inline uint32_t rs_node_unexplained(const rs_heap *h) { return (uint32_t)(h->nobj + h->nroots); }
static inline uint32_t rs_node_super(const rs_heap *h) { return (uint32_t)(h->nobj + h->nroots + 1); }

/* The objects obj retains: its dominator subtree in the global tree, or, if
 * obj is not reachable from any root, in the graph of what obj reaches.
 * Returns a malloc'd array of object indexes (obj first); *n its length. */
uint32_t *rs_retained_set(rs_heap *h, uint32_t obj, size_t *n, uint64_t *bytes);

/* Shortest path from a root to obj (BFS over roots, then the unexplained
 * pseudo root). Fills steps: steps[0] is a root node, each further step an
 * object index with the edge index (into out_dst/out_lab) used to reach
 * it. Returns the number of steps, 0 if obj is reachable from nothing. */
typedef struct rs_step {
    uint32_t node;
    uint32_t edge; /* RS_NONE for the first step */
} rs_step;
size_t rs_shortest_path(rs_heap *h, uint32_t obj, rs_step **steps);

/* Shortest cycle from members[0] back to itself through members only
 * (members sorted by index). Returns edge indexes (malloc'd); *n its
 * length, 0 if there is none. */
uint32_t *rs_cycle_path(const rs_heap *h, const uint32_t *members, size_t nmembers, size_t *n);

/* Strongly connected components of the objects with in_set[i] != 0:
 * returns comp_of (per object, RS_NONE outside the set) and, per
 * component, its size if it is a cycle (more than one member or a self
 * loop), else 0. */
uint32_t *rs_components(const rs_heap *h, const uint8_t *in_set, size_t *ncomps,
                        uint32_t **comp_size);

/* Per object: is it reachable from any counted root or the unexplained
 * pseudo root? (from the dominator result) */
static inline bool rs_dom_reachable(const rs_dom_result *d, uint32_t node)
{
    return d->idom[node] != RS_NONE;
}

#endif /* REFSCOPE_ENGINE_INT_H */
