/*
 * The debug registry: the contract between the runtime and every reader
 * (the refscope engine, the GDB plugin, a person with `x/` in gdb).
 *
 * One global, `rc_debug_registry`, defined in registry.c and declared in no
 * public header (a public extern would give executables a copy relocation,
 * and readers would see a stale copy). Readers find it by symbol (.symtab,
 * .dynsym, DWARF or GDB) and read it without running code in the process:
 * everything below is plain data reached by pointers and counts.
 *
 * The registry *is* the runtime's state: the collector's generations,
 * counters and thresholds live here, not in copies, so a core shows exactly
 * what the process saw.
 *
 * Picture (all addresses are in the inspected process):
 *
 *   rc_debug_registry
 *     magic "RCSCOPE", version, layout sizes  -- check these first
 *     arenas[narenas] --> arena: 1 MiB, aligned to 1 MiB, 64 pools of 16 KiB
 *                           pool: rc_pool header (64 B), then blocks of one size class
 *                             block: [rc_gchead if kind == GC] rc_object ...
 *     large.next ... --> rc_large (32 B) [rc_gchead if kind == GC] rc_object ...
 *     gc.link_base: the collector's region (arenas, large tracked blocks,
 *                   generation list heads); 32-bit collector links are
 *                   offsets into it
 *     types[ntypes]  --> rc_type (rc.h): name, size, fields[] (rc_field), ...
 *     sites[nsites]  --> {file, func, line}; site id = index (0 = unknown)
 *     roots[nroots]  --> {slot address, name}
 *     globals, garbage, finalizers (list objects / dict object)
 *     gc: generations[3] + permanent, thresholds, counts, stats, flags
 *
 * Invariants readers may rely on (and must still validate: cores come from
 * crashed programs):
 *   - Every live object is in exactly one place: a block of an in-use pool
 *     (kind PLAIN or GC, block offset < nextoffset) or a node of the large
 *     list. Scanning arenas + the large list enumerates the heap; no pointer
 *     per object needs chasing.
 *   - A block is live iff its object head's ob_refcnt != RC_REFCNT_FREED.
 *     Freed blocks keep ob_info (site, flags) and ob_type so a use after free
 *     can still be reported with type and site; the freelist link is at block
 *     offset 0 in GC pools (the gc_next word) and at block offset 16 in PLAIN
 *     pools (the first word after the object head).
 *   - For a tracked object, (ob_info & RC_OBF_GEN_MASK) is its generation
 *     (3 = permanent/frozen) and it is linked in that generation's list.
 *   - Collector links are 32-bit (see rc_gchead): a link L names the gc head
 *     at gc.link_base + ((L & ~1) << 2). Every gc head -- tracked objects,
 *     large tracked blocks, the generation list heads -- lies in the
 *     collector's region [gc.link_base, gc.link_base + gc.region_size).
 *     Outside a collection bit 0 of both links is clear. While
 *     gc.collecting != 0, gc_prev of objects of the collected generations
 *     holds (gc_refs << 1 | 1) and bit 0 of gc_next may be set: readers
 *     must not walk generation lists then (they do not need to) and should
 *     say that the core was taken mid-collection (gc.phase tells where).
 *   - Sizes: a tracked object occupies gc_head_size + type->size (+ var
 *     part); the pool block is the size rounded up to 8, and at least 24
 *     for object blocks (PLAIN requests are raised to 24 -- head and
 *     freelist link --, GC ones to 24 -- both heads). Objects are 8-aligned.
 *   - An in-use pool may have nused == 0: the allocator keeps one emptied
 *     pool per (kind, class) carved, its blocks all poisoned, to avoid
 *     thrashing. That is not corruption.
 *   - The large-list sentinel (rc_debug_registry.large) has size, kind and
 *     magic 0: recognise it by its address, not its contents.
 */
#ifndef REFSCOPE_REGISTRY_H
#define REFSCOPE_REGISTRY_H

#include <refscope/rc.h>

#define RC_REGISTRY_MAGIC "RCSCOPE"   /* 8 bytes with the NUL */
#define RC_REGISTRY_VERSION 2u

/* ---- object header ---------------------------------------------------- */

#define RC_REFCNT_FREED 0xDEAD0BADu   /* ob_refcnt of a freed block */

/* ob_info bits 0..7. */
#define RC_OBF_GEN_MASK 0x03u   /* generation 0..2, 3 = permanent (frozen)      */
#define RC_OBF_TRACKED 0x04u    /* linked in a generation list                  */
#define RC_OBF_FINALIZED 0x08u  /* PEP 442 finalizer has run (it runs once)     */
#define RC_OBF_GARBAGE 0x10u    /* held by the garbage list                     */
#define RC_OBF_TRACED 0x20u     /* allocated while tracing: counted by the tracer */
#define RC_OBF_WEAKREFD 0x40u   /* may have weakrefs (see the weakref side table) */
#define RC_OBF_LARGE 0x80u      /* allocated outside the arenas (rc_large list)  */
#define RC_OBF_MASK 0xFFu
#define RC_SITE_SHIFT 8         /* site id = ob_info >> 8                       */
#define RC_GEN_PERMANENT 3u

/*
 * The collector head before every tracked object: 8 bytes, two 32-bit
 * links. A link is (address of the gc head it names - gc.link_base) >> 2,
 * so bit 0 of an encoded address is always clear and carries a flag (see
 * the invariants above); the region holding every gc head is at most
 * 16 GiB. CPython's head is two pointers (16 bytes): the 8 bytes saved
 * make a 2-reference object 40 bytes instead of 48.
 */
typedef struct rc_gchead {
    uint32_t gc_next;
    uint32_t gc_prev;
} rc_gchead;

#define RC_GC_LINK_SHIFT 2u
#define RC_GC_LINK_FLAG 1u
#define RC_GC_REGION_MAX ((uint64_t)16 << 30)

/* rc_type.tp_flags */
#define RC_TPF_REGISTERED 0x01u
#define RC_TPF_GC 0x02u        /* has strong references: instances carry rc_gchead */
#define RC_TPF_WEAKREF 0x04u   /* a weakref type (the collector treats it specially) */
#define RC_TPF_HEAPTYPE 0x08u  /* made at run time by rc_class_new; freed with its class */
#define RC_TPF_DEAD 0x10u      /* a heap type whose class has died */
#define RC_TPF_FINALIZERS 0x20u /* finalize or legacy_del set (cached when the type is
                                   registered, for the deallocation fast path) */

/* ---- allocator ---------------------------------------------------------- */

#define RC_ARENA_SIZE ((size_t)1 << 20)   /* 1 MiB, aligned to its size */
#define RC_POOL_SIZE ((size_t)1 << 14)    /* 16 KiB, aligned to its size */
#define RC_POOLS_PER_ARENA (RC_ARENA_SIZE / RC_POOL_SIZE)
#define RC_ALIGN 8u                       /* block sizes are multiples of 8 */
#define RC_SMALL_MAX 512u                 /* larger requests go to the large list */
#define RC_NUM_CLASSES (RC_SMALL_MAX / RC_ALIGN) /* 64 size classes: 8 .. 512 */
#define RC_POOL_HEADER_SIZE 64u

#define RC_POOL_MAGIC 0x4C4F4F50u   /* "POOL" */
#define RC_LARGE_MAGIC 0x4547524Cu  /* "LRGE" */

/* Pool kinds (also rc_large.kind). */
#define RC_KIND_FREE 0u    /* pool not in use: skip it */
#define RC_KIND_PLAIN 1u   /* blocks start with rc_object (untracked objects) */
#define RC_KIND_GC 2u      /* blocks start with rc_gchead, then rc_object */
#define RC_KIND_RAW 3u     /* blocks are not objects (reserved) */

typedef struct rc_pool {
    uint32_t magic;          /* RC_POOL_MAGIC while the pool is carved */
    uint16_t szidx;          /* size class: block size = (szidx + 1) * 8 */
    uint8_t kind;            /* RC_KIND_* */
    uint8_t reserved;
    uint32_t nused;          /* blocks in use */
    uint32_t nextoffset;     /* offset of the first never-used block (high water) */
    uint32_t maxnextoffset;  /* last offset a block can start at */
    uint32_t arenaindex;     /* index in rc_debug_registry.arenas */
    void *freeblock;         /* singly linked list of freed blocks */
    struct rc_pool *nextpool;/* in the used-pools list of its class, or the arena's free list */
    struct rc_pool *prevpool;
    uint64_t reserved2;
} rc_pool;

typedef struct rc_arena {
    uintptr_t address;       /* 0: slot unused (arena returned to the system) */
    uint32_t nfreepools;     /* pools free (carved and returned, or never carved) */
    uint32_t ntotalpools;
    uint32_t ncarved;        /* pools [0, ncarved) have been carved at least once */
    uint32_t reserved;
    rc_pool *freepools;      /* carved pools that are free again */
    struct rc_arena *nextarena; /* usable list (arenas with free pools) / unused slots */
    struct rc_arena *prevarena;
} rc_arena;

typedef struct rc_large {
    struct rc_large *next;   /* circular list through rc_debug_registry.large */
    struct rc_large *prev;
    uint64_t size;           /* bytes after this header */
    uint32_t kind;           /* RC_KIND_PLAIN or RC_KIND_GC */
    uint32_t magic;          /* RC_LARGE_MAGIC */
} rc_large;

typedef struct rc_alloc_stats {
    uint64_t arenas_allocated;   /* cumulative */
    uint64_t arenas_reclaimed;   /* cumulative: returned to the system */
    uint64_t arenas_highwater;   /* most arenas in use at once */
    uint64_t arenas_in_use;
    uint64_t pools_in_use;
    uint64_t blocks_in_use;      /* small blocks */
    uint64_t small_bytes;        /* bytes in small blocks in use (block sizes) */
    uint64_t large_count;
    uint64_t large_bytes;        /* bytes after rc_large headers */
    uint64_t blocks_by_class[RC_NUM_CLASSES];
    uint64_t pools_by_class[RC_NUM_CLASSES];
} rc_alloc_stats;

/* ---- tables ------------------------------------------------------------- */

typedef struct rc_site_entry {
    const char *file;
    const char *func;
    uint32_t line;
    uint32_t reserved;
} rc_site_entry;

typedef struct rc_root_entry {
    rc_object **slot;        /* NULL: entry removed */
    const char *name;        /* owned copy */
} rc_root_entry;

/* ---- collector ---------------------------------------------------------- */

typedef struct rc_generation {
    rc_gchead *head;         /* list head (circular, doubly linked), in the region */
    int32_t threshold;
    int32_t reserved;
    uint64_t count;          /* allocations (gen 0) or collections of the younger gen */
    uint64_t nobjects;       /* objects whose generation bits say this generation
                                (during a collection some sit on working lists) */
} rc_generation;

/* gc.phase while collecting != 0 */
enum rc_gc_phase {
    RC_PHASE_IDLE = 0,
    RC_PHASE_FIND_UNREACHABLE = 1,
    RC_PHASE_LEGACY = 2,
    RC_PHASE_WEAKREFS = 3,
    RC_PHASE_FINALIZE = 4,
    RC_PHASE_RESURRECT = 5,
    RC_PHASE_CLEAR = 6,
};

typedef struct rc_gc_state {
    rc_generation generations[3];
    rc_generation permanent;     /* gc.freeze() */
    uint32_t enabled;
    uint32_t debug;              /* RC_DEBUG_* */
    uint32_t collecting;         /* 1 while a collection runs */
    int32_t collecting_generation;
    uint32_t phase;              /* enum rc_gc_phase */
    uint32_t reserved;
    uint64_t long_lived_total;
    uint64_t long_lived_pending;
    rc_gc_stats stats[3];
    uint64_t tracked;            /* objects in all generation lists */
    uint64_t link_base;          /* the collector's region: where links count from */
    uint64_t region_size;        /* its bytes (at most RC_GC_REGION_MAX) */
} rc_gc_state;

/* ---- tracing (trace.c, memstats.c) ---------------------------------------- */

/*
 * The tracer (tracemalloc) and the memory timeline. Everything a reader
 * needs to show traces from a core:
 *
 *   - A live object is traced iff RC_OBF_TRACED is set in its ob_info; its
 *     size is its block size (pool class size, or rc_large.size), the same
 *     number the tracer added to `current`. So current == sum of the block
 *     sizes of traced objects (outside the tracer's own functions).
 *   - Its traceback: frame 0 is always its site (ob_info >> 8). If the
 *     object is in the side table `objects`, frames 1.. are the return
 *     addresses of its traceback entry; otherwise (nframes == 1, the
 *     default, or traced before nframes was raised) it has frame 0 only.
 *   - Side table lookup (open addressing, linear probing, no tombstones:
 *     deletion shifts entries back):
 *         i = ((addr >> 4) * 0x9E3779B97F4A7C15) >> (64 - log2(objects_cap))
 *     then i + 1, i + 2 ... (mod objects_cap) until object == addr (found)
 *     or object == 0 (not there). objects_cap is 0 or a power of two.
 */

/* An interned traceback: (site, deeper frames). */
typedef struct rc_trace_traceback {
    uint32_t site;               /* frame 0: site id (index in sites) */
    uint32_t nframes;            /* deeper frames: frames[first .. first + nframes) */
    uint64_t first;              /* index in rc_trace_state.frames */
    uint64_t hash;               /* of (site, frames): the intern table's key */
} rc_trace_traceback;

/* A slot of the object -> traceback side table. */
typedef struct rc_trace_object {
    uintptr_t object;            /* the rc_object * of a traced object; 0: empty slot */
    uint32_t traceback;          /* index in rc_trace_state.tracebacks */
    uint32_t reserved;
} rc_trace_object;

typedef struct rc_trace_state {
    uint32_t tracing;            /* 1 while tracing (rc_trace_start .. rc_trace_stop) */
    uint32_t nframes;            /* traceback limit: frames kept per traceback (1..65535) */
    uint64_t current;            /* traced bytes now (sum of traced block sizes) */
    uint64_t peak;               /* highest `current` since start / rc_trace_reset_peak */
    uint64_t ntraced;            /* traced objects alive now */
    uint64_t tracer_memory;      /* bytes of the tracer's own tables (get_tracemalloc_memory) */

    /* Interned tracebacks (nframes > 1); kept until stop / clear_traces. */
    rc_trace_traceback *tracebacks;  /* [ntracebacks]; a traceback id indexes it */
    uint32_t ntracebacks, captracebacks;
    uint64_t *frames;            /* frame pool: return addresses, most recent first */
    uint64_t nframes_used, capframes;

    /* Side table: traced object -> traceback id (nframes > 1; see above). */
    rc_trace_object *objects;
    uint64_t objects_cap;        /* slots: 0 or a power of two */
    uint64_t objects_count;      /* slots in use (at most half of objects_cap) */

    /* The memory timeline (memstats.c): a ring of rc_timeline_sample
     * (<refscope/trace.h>, 104 bytes). NULL until the first sample. The
     * samples in time order are timeline[(timeline_head - n + i) %
     * timeline_capacity] for i in 0 .. n-1, n = min(timeline_total,
     * timeline_capacity). */
    rc_timeline_sample *timeline;
    uint32_t timeline_capacity;  /* RC_TIMELINE_CAPACITY */
    uint32_t timeline_head;      /* slot the next sample goes to */
    uint64_t timeline_total;     /* samples ever taken */
    int64_t timeline_countdown;  /* tracked allocations until the next sample; gc.c
                                    calls _rc_timeline_tick when it drops to 0 */
    uint32_t timeline_interval;  /* tracked allocations between samples; 0: none */
    uint32_t timeline_flags;     /* 1: disabled (no samples at all); 2: set up (until the
                                    first sample, interval 0 means the default, 10000) */
} rc_trace_state;

/* ---- the registry ------------------------------------------------------- */

typedef struct rc_registry {
    char magic[8];               /* RC_REGISTRY_MAGIC */
    uint32_t version;            /* RC_REGISTRY_VERSION */
    uint32_t size;               /* sizeof(rc_registry) */
    /* layout facts: a reader checks them against what it was built for */
    uint32_t object_head_size;   /* sizeof(rc_object) = 16 */
    uint32_t gc_head_size;       /* sizeof(rc_gchead) = 8 */
    uint32_t arena_size, pool_size, pool_header_size, align, small_max;
    uint32_t type_struct_size;   /* sizeof(rc_type) */
    uint32_t field_struct_size;  /* sizeof(rc_field) */
    uint32_t initialized;
    uint32_t shutting_down;
    uint32_t pid;
    uint32_t debug_checks;

    /* allocator */
    rc_arena *arenas;            /* arena table */
    uint32_t narenas;            /* slots in the table */
    uint32_t reserved_a;
    rc_large large;              /* sentinel of the circular large-object list */
    rc_alloc_stats alloc;

    /* types and sites */
    rc_type **types;             /* types[0] unused; tp_id indexes this */
    uint32_t ntypes, captypes;
    rc_site_entry *sites;        /* sites[0] = unknown */
    uint32_t nsites, capsites;

    /* roots */
    rc_root_entry *roots;
    uint32_t nroots, caproots;
    rc_object *globals;          /* the module-globals dict (a root) */
    rc_object *garbage;          /* gc.garbage (a root) */
    rc_object *finalizers;       /* list of alive finalize objects (a root) */

    /* the collector */
    rc_gc_state gc;

    /* tracing */
    rc_trace_state trace;

    const char *last_checkpoint; /* label of the last rc_debug_checkpoint() */
    uint64_t checkpoints;        /* how many were passed */
} rc_registry;

extern rc_registry rc_debug_registry;

#endif /* REFSCOPE_REGISTRY_H */
