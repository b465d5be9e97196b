/*
 * The allocator: pymalloc (CPython's obmalloc.c) with object kinds.
 *
 * Words: an *arena* is 1 MiB of memory aligned to 1 MiB, cut into 64
 * *pools* of 16 KiB; a pool starts with its 64-byte rc_pool header and holds
 * *blocks* of one size class (8..512 bytes, class = size / 8 - 1) and one
 * kind (PLAIN or GC) after it. Requests above RC_SMALL_MAX are malloc'ed
 * (tracked ones: whole pages of the collector's region, below) behind an
 * rc_large header and linked into the large list. Arenas are carved from
 * the collector's region, so that every gc head is within reach of a
 * 32-bit collector link (registry.h, rc_gchead). registry.h has
 * the layout readers rely on; everything they need is in the arena table,
 * the pool headers and the large list.
 *
 * The per-block fast paths (_rc_mem_alloc, _rc_mem_free: a block off or
 * onto a pool's free list) are inline in internal.h, so that object
 * allocation and death pay no call; everything else is here.
 *
 * The lists below are private (readers enumerate the heap by scanning the
 * arena table, never through them):
 *
 *   usedpools[kind][class]  pools of that kind and class with a free block,
 *                           doubly linked through nextpool/prevpool,
 *                           NULL-terminated; allocation serves the head.
 *   arena->freepools        carved pools that are empty again (kind FREE),
 *                           singly linked through nextpool.
 *   usable_arenas           arenas with a free pool, doubly linked through
 *                           nextarena/prevarena and sorted by nfreepools,
 *                           fewest first: the fullest arena serves new pools
 *                           so the emptiest ones can drain and be unmapped.
 *                           nfp2lasta[n] is the last arena in it with n free
 *                           pools (NULL if none), which keeps the sort O(1).
 *   unused_arenas           table slots with address 0, through nextarena.
 *
 * Invariants:
 *   - a pool is in usedpools iff kind != FREE and nused < capacity, where
 *     capacity = (RC_POOL_SIZE - RC_POOL_HEADER_SIZE) / block size;
 *   - nused = (nextoffset - RC_POOL_HEADER_SIZE) / block size - |freeblock list|:
 *     every block below nextoffset was handed out at least once, so its
 *     object head was written by its owner (live) or poisoned (freed);
 *   - arena->nfreepools = (ntotalpools - ncarved) + |freepools|, and an
 *     arena is in usable_arenas iff nfreepools > 0;
 *   - at most one empty thing is cached, so that a loop that allocates and
 *     frees one object neither re-initialises a pool nor maps an arena at
 *     every turn (pymalloc's bpo-37257, one level down):
 *       empty_pool   the last pool of a (kind, class) to empty stays on its
 *                    usedpools list, nused == 0, kind and magic intact (a
 *                    reader sees an in-use pool whose blocks are all
 *                    poisoned); any other pool whose last block is freed
 *                    goes back to its arena at once (kind FREE, magic 0);
 *       a free arena a wholly free arena stays mapped, as the last of
 *                    usable_arenas (it has the most free pools), only while
 *                    no empty pool is cached; others are unmapped.
 *     So after everything is freed at most one arena is mapped.
 *
 * The arena table (REG.arenas) holds pointers into itself (nextarena,
 * prevarena), so it never moves with realloc: to grow it, a new table is
 * allocated, the old one copied, every link rebased, and only then is the
 * old one freed (grow_table). Pools name their arena by index, which
 * survives the move.
 *
 * A freed block keeps its object head so a use after free can still name
 * the object's type and site: its freelist link is the gc_next word (offset
 * 0, the whole 8-byte gc head) in GC pools and the first word after the
 * object head (offset 16) in PLAIN pools, which is why PLAIN requests are at
 * least 24 bytes. GC requests are at least 24 bytes (both heads), so the
 * object head the walk reads is always inside the block.
 */
#include "internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

_Static_assert(sizeof(rc_pool) <= RC_POOL_HEADER_SIZE, "pool header fits");
_Static_assert(RC_POOL_HEADER_SIZE % RC_ALIGN == 0, "blocks stay 8-aligned");
_Static_assert(sizeof(rc_large) % RC_ALIGN == 0, "large blocks stay 8-aligned");
_Static_assert((RC_ARENA_SIZE & (RC_ARENA_SIZE - 1)) == 0, "arena size is a power of 2");
_Static_assert((RC_POOL_SIZE & (RC_POOL_SIZE - 1)) == 0, "pool size is a power of 2");
_Static_assert(RC_KIND_PLAIN < 4 && RC_KIND_GC < 4 && RC_KIND_RAW < 4, "kinds index usedpools");

#define NKINDS RC_ALLOC_NKINDS
#define ARENA_TABLE_MIN 16u   /* first arena table: 16 slots (16 MiB of arenas) */

#define POOL_OF(p) RC_POOL_OF(p)

/* (internal.h has the per-block fast paths that use it, and the sizes.) */
rc_pool *_rc_usedpools[NKINDS][RC_NUM_CLASSES];
#define usedpools _rc_usedpools
static rc_arena *usable_arenas;
static rc_arena *unused_arenas;
static rc_arena *nfp2lasta[RC_POOLS_PER_ARENA + 1];
/* The cached empty pool, or NULL. Once handed blocks again it is an ordinary
 * pool that this pointer still names: only nused == 0 makes it a cache. */
static rc_pool *empty_pool;

static inline size_t class_size(unsigned idx) { return _rc_class_size(idx); }

static inline rc_arena *arena_of(const rc_pool *pool) { return &REG.arenas[pool->arenaindex]; }

static inline bool pool_cached(void) { return empty_pool && empty_pool->nused == 0; }

/* ---- the arena table -------------------------------------------------------- */

static inline rc_arena *rebase(rc_arena *p, rc_arena *from, rc_arena *to)
{
    return p ? to + (p - from) : NULL;
}

/* Double the table. Called only when no slot is unused. The new table is
 * complete before REG.arenas points to it, so a core taken in between shows
 * either table whole. Today a new arena is mapped only when no arena is
 * usable, so every link is NULL here; they are rebased anyway, so the table
 * stays correct if that ever changes. */
static void grow_table(void)
{
    assert(unused_arenas == NULL);
    uint32_t n = REG.narenas;
    if (n > UINT32_MAX / 2)
        _rc_fatal("out of memory: arena table full (%u arenas)", n);
    uint32_t newn = n ? n * 2 : ARENA_TABLE_MIN;
    rc_arena *old = REG.arenas;
    rc_arena *t = malloc((size_t)newn * sizeof *t);
    if (!t)
        _rc_fatal("out of memory: malloc of a %u-slot arena table failed", newn);
    if (n)
        memcpy(t, old, (size_t)n * sizeof *t);
    for (uint32_t i = 0; i < n; i++) {
        t[i].nextarena = rebase(t[i].nextarena, old, t);
        t[i].prevarena = rebase(t[i].prevarena, old, t);
    }
    usable_arenas = rebase(usable_arenas, old, t);
    for (size_t i = 0; i <= RC_POOLS_PER_ARENA; i++)
        nfp2lasta[i] = rebase(nfp2lasta[i], old, t);
    /* New slots go on the unused list in index order. */
    memset(t + n, 0, (size_t)(newn - n) * sizeof *t);
    for (uint32_t i = n; i + 1 < newn; i++)
        t[i].nextarena = &t[i + 1];
    unused_arenas = &t[n];
    REG.arenas = t;
    REG.narenas = newn;
    free(old);
}

/* ---- the collector's region ------------------------------------------------------ */

/*
 * Collector links are 32-bit offsets from REG.gc.link_base (registry.h,
 * rc_gchead), so every gc head must lie within 16 GiB of it: the arenas
 * (tracked objects live in GC pools), the large tracked blocks and the
 * list heads. One reservation of address space (PROT_NONE, no memory, not
 * dumped in cores) holds them all:
 *
 *   [ heads page | ... ] [ arena ] [ arena ] ...  ->          <- ... [ large ] [ large ]
 *   base           base + 1 MiB      arena_top                 large_low          end
 *
 * Arenas are carved upward from base + 1 MiB, large tracked blocks (whole
 * pages) downward from the end. A carved range is mapped over with fresh
 * read-write memory; a returned one is mapped over with PROT_NONE again
 * (its memory goes back to the system) and kept for reuse: freed arena
 * addresses on a stack, freed large ranges in a list (first fit, split).
 * If 16 GiB of address space cannot be had (a small RLIMIT_AS, valgrind),
 * the largest power of two that can, down to 64 MiB, is taken: the region
 * size is in the registry. Running out of it is fatal, like any out of
 * memory here.
 */
#define PAGE ((uintptr_t)4096)
#define REGION_MIN ((size_t)64 << 20)

typedef struct range {
    uintptr_t addr;
    size_t len;
} range;

/* A list of freed ranges of the region. */
typedef struct range_list {
    range *r;
    size_t n, cap;
} range_list;

static uintptr_t region_base, region_end, arena_top, large_low;
static range_list free_arenas; /* each RC_ARENA_SIZE, aligned to it */
static range_list free_pages;  /* whole pages, for large tracked blocks */

static void range_push(range_list *l, uintptr_t addr, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        range *t = realloc(l->r, cap * sizeof *t);
        if (!t)
            _rc_fatal("out of memory: a list of freed ranges");
        l->r = t;
        l->cap = cap;
    }
    l->r[l->n++] = (range){addr, len};
}

static void *map_fixed(uintptr_t addr, size_t len, int prot)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | (prot == PROT_NONE ? MAP_NORESERVE : 0);
    void *p = mmap((void *)addr, len, prot, flags, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (prot == PROT_NONE)
        (void)madvise(p, len, MADV_DONTDUMP); /* reserved space is no part of a core */
    return p;
}

static void region_reserve(void)
{
    for (size_t size = (size_t)RC_GC_REGION_MAX; size >= REGION_MIN; size /= 2) {
        size_t len = size + RC_ARENA_SIZE;
        void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            continue;
        uintptr_t start = (uintptr_t)p, end = start + len;
        uintptr_t base = (start + RC_ARENA_SIZE - 1) & ~(uintptr_t)(RC_ARENA_SIZE - 1);
        if (base > start)
            munmap(p, base - start);
        if (end > base + size)
            munmap((void *)(base + size), end - (base + size));
        (void)madvise((void *)base, size, MADV_DONTDUMP);
        if (!map_fixed(base, PAGE, PROT_READ | PROT_WRITE))
            _rc_fatal("out of memory: the collector's list heads");
        region_base = base;
        region_end = base + size;
        arena_top = base + RC_ARENA_SIZE;
        large_low = region_end;
        REG.gc.link_base = base;
        REG.gc.region_size = size;
        return;
    }
    _rc_fatal("out of memory: cannot reserve %llu MiB of address space for the collector",
              (unsigned long long)(REGION_MIN >> 20));
}

rc_gchead *_rc_gc_region_heads(size_t n)
{
    if (!region_base)
        region_reserve();
    if (n * sizeof(rc_gchead) > PAGE)
        _rc_fatal("internal error: %zu collector list heads", n);
    return (rc_gchead *)region_base;
}

static _Noreturn void region_full(size_t want)
{
    _rc_fatal("out of memory: the collector's region (%llu MiB) has no room for %zu more bytes",
              (unsigned long long)((region_end - region_base) >> 20), want);
}

/* A fresh, zeroed arena in the region (1 MiB, aligned to 1 MiB: a pool's
 * arena and header are found by masking a block address). */
static uintptr_t map_arena(void)
{
    if (!region_base)
        region_reserve();
    uintptr_t base;
    if (free_arenas.n) {
        base = free_arenas.r[--free_arenas.n].addr;
    } else {
        if (large_low - arena_top < RC_ARENA_SIZE)
            region_full(RC_ARENA_SIZE);
        base = arena_top;
        arena_top += RC_ARENA_SIZE;
    }
    if (!map_fixed(base, RC_ARENA_SIZE, PROT_READ | PROT_WRITE))
        _rc_fatal("out of memory: mmap of a %zu-byte arena failed", RC_ARENA_SIZE);
    return base;
}

static void unmap_arena(uintptr_t base)
{
    if (!map_fixed(base, RC_ARENA_SIZE, PROT_NONE))
        _rc_fatal("mmap over a freed arena failed");
    range_push(&free_arenas, base, RC_ARENA_SIZE);
}

/* len bytes (a multiple of PAGE) of fresh memory in the region, for a large
 * tracked block. */
static void *region_large_alloc(size_t len)
{
    if (!region_base)
        region_reserve();
    uintptr_t addr = 0;
    for (size_t i = 0; i < free_pages.n; i++) {
        range *r = &free_pages.r[i];
        if (r->len < len)
            continue;
        addr = r->addr;
        if (r->len == len)
            *r = free_pages.r[--free_pages.n];
        else {
            r->addr += len;
            r->len -= len;
        }
        break;
    }
    if (!addr) {
        if (large_low - arena_top < len)
            region_full(len);
        large_low -= len;
        addr = large_low;
    }
    if (!map_fixed(addr, len, PROT_READ | PROT_WRITE))
        _rc_fatal("out of memory: mmap of a %zu-byte block failed", len);
    return (void *)addr;
}

static void region_large_free(void *p, size_t len)
{
    uintptr_t addr = (uintptr_t)p;
    if (!map_fixed(addr, len, PROT_NONE))
        _rc_fatal("mmap over a freed block failed");
    if (addr == large_low) { /* the lowest: give the range back to the gap */
        large_low += len;
        return;
    }
    range_push(&free_pages, addr, len);
}

static rc_arena *new_arena(void)
{
    if (!unused_arenas)
        grow_table();
    rc_arena *a = unused_arenas;
    uintptr_t base = map_arena();
    unused_arenas = a->nextarena;
    a->nfreepools = a->ntotalpools = (uint32_t)RC_POOLS_PER_ARENA;
    a->ncarved = 0;
    a->reserved = 0;
    a->freepools = NULL;
    a->nextarena = a->prevarena = NULL;
    a->address = base; /* last: a nonzero address tells readers the slot is valid */
    rc_alloc_stats *st = &REG.alloc;
    st->arenas_allocated++;
    if (++st->arenas_in_use > st->arenas_highwater)
        st->arenas_highwater = st->arenas_in_use;
    return a;
}

/* The arena is wholly free and off usable_arenas: unmap it, free its slot. */
static void free_arena(rc_arena *a)
{
    void *base = (void *)a->address;
    memset(a, 0, sizeof *a); /* address 0: readers skip the slot */
    a->nextarena = unused_arenas;
    unused_arenas = a;
    unmap_arena((uintptr_t)base);
    REG.alloc.arenas_reclaimed++;
    REG.alloc.arenas_in_use--;
}

/* ---- pools ------------------------------------------------------------------ */

/* usedpools[kind][idx] is empty: take a pool from the fullest usable arena
 * (mapping one if none), set it up for (kind, idx) and make it the list.
 * This is obmalloc's allocate_from_new_pool, with its nfp2lasta upkeep. */
static __attribute__((noinline)) rc_pool *take_pool(unsigned kind, unsigned idx)
{
    if (RC_UNLIKELY(usable_arenas == NULL)) {
        usable_arenas = new_arena();
        nfp2lasta[usable_arenas->nfreepools] = usable_arenas;
    }
    rc_arena *a = usable_arenas;
    uint32_t nf = a->nfreepools;
    assert(nf > 0 && a->address != 0);
    /* a has the fewest free pools; after this it has strictly fewer than
     * any other usable arena, so it stays at the head. */
    if (nfp2lasta[nf] == a)
        nfp2lasta[nf] = NULL;
    if (nf > 1)
        nfp2lasta[nf - 1] = a;
    rc_pool *pool = a->freepools;
    if (pool) {
        a->freepools = pool->nextpool;
    } else {
        assert(a->ncarved < a->ntotalpools);
        pool = (rc_pool *)(a->address + (uintptr_t)a->ncarved * RC_POOL_SIZE);
        a->ncarved++;
    }
    a->nfreepools = --nf;
    if (nf == 0) { /* wholly allocated: off the usable list */
        usable_arenas = a->nextarena;
        if (usable_arenas)
            usable_arenas->prevarena = NULL;
        a->nextarena = a->prevarena = NULL;
    }

    /* A reused pool starts over from its first block: the blocks it held
     * before may have had another size, so their heads mean nothing now. */
    size_t size = class_size(idx);
    pool->szidx = (uint16_t)idx;
    pool->kind = (uint8_t)kind;
    pool->reserved = 0;
    pool->nused = 0;
    pool->nextoffset = RC_POOL_HEADER_SIZE;
    pool->maxnextoffset = (uint32_t)(RC_POOL_SIZE - size);
    pool->arenaindex = (uint32_t)(a - REG.arenas);
    pool->freeblock = NULL;
    pool->nextpool = pool->prevpool = NULL;
    pool->reserved2 = 0;
    pool->magic = RC_POOL_MAGIC;
    usedpools[kind][idx] = pool;
    REG.alloc.pools_in_use++;
    REG.alloc.pools_by_class[idx]++;
    return pool;
}

static inline void unlink_used(rc_pool *pool)
{
    if (pool->prevpool)
        pool->prevpool->nextpool = pool->nextpool;
    else
        usedpools[pool->kind][pool->szidx] = pool->nextpool;
    if (pool->nextpool)
        pool->nextpool->prevpool = pool->prevpool;
    pool->nextpool = pool->prevpool = NULL;
}

/* A full pool got a free block: serve it first (obmalloc does the same, so
 * the blocks just freed are reused while they are warm). */
void _rc_pool_refilled(rc_pool *pool)
{
    rc_pool **head = &usedpools[pool->kind][pool->szidx];
    pool->prevpool = NULL;
    pool->nextpool = *head;
    if (*head)
        (*head)->prevpool = pool;
    *head = pool;
}

/* Give an empty pool, already off usedpools, back to its arena and keep
 * usable_arenas sorted (obmalloc's insert_to_freepool). */
static void return_pool(rc_pool *pool)
{
    if (empty_pool == pool)
        empty_pool = NULL;
    REG.alloc.pools_in_use--;
    REG.alloc.pools_by_class[pool->szidx]--;
    pool->magic = 0;
    pool->kind = RC_KIND_FREE;
    pool->freeblock = NULL;

    rc_arena *a = arena_of(pool);
    pool->nextpool = a->freepools;
    pool->prevpool = NULL;
    a->freepools = pool;
    uint32_t nf = a->nfreepools;
    /* If a was the last arena with nf free pools, the one before it (if it
     * has nf too) is now. nf == 0: a is not in the list, nor is anything
     * else with 0. */
    rc_arena *lastnf = nfp2lasta[nf];
    if (lastnf == a) {
        rc_arena *p = a->prevarena;
        nfp2lasta[nf] = (p && p->nfreepools == nf) ? p : NULL;
    }
    a->nfreepools = ++nf;

    if (nf == a->ntotalpools && (a->nextarena != NULL || pool_cached())) {
        /* Wholly free: unmap it, unless it is the last (emptiest) usable
         * arena and no empty pool is cached; then it is the cache. */
        if (a->prevarena)
            a->prevarena->nextarena = a->nextarena;
        else
            usable_arenas = a->nextarena;
        if (a->nextarena)
            a->nextarena->prevarena = a->prevarena;
        free_arena(a);
        return;
    }
    if (nf == 1) {
        /* It was full, hence off the list; 1 is the fewest, so: the head. */
        a->prevarena = NULL;
        a->nextarena = usable_arenas;
        if (usable_arenas)
            usable_arenas->prevarena = a;
        usable_arenas = a;
        if (!nfp2lasta[1])
            nfp2lasta[1] = a;
        return;
    }
    if (!nfp2lasta[nf])
        nfp2lasta[nf] = a;
    if (a == lastnf)
        return; /* arenas after it have >= nf free pools: still sorted */
    /* Move a to just after lastnf, the last arena with its old count. */
    assert(lastnf && a->nextarena);
    if (a->prevarena)
        a->prevarena->nextarena = a->nextarena;
    else
        usable_arenas = a->nextarena;
    a->nextarena->prevarena = a->prevarena;
    a->prevarena = lastnf;
    a->nextarena = lastnf->nextarena;
    if (a->nextarena)
        a->nextarena->prevarena = a;
    lastnf->nextarena = a;
}

/* The cached free arena (wholly free, so the last of usable_arenas), if
 * any, is unmapped: an empty pool is being cached instead. */
static void drop_free_arena(void)
{
    rc_arena *a = nfp2lasta[RC_POOLS_PER_ARENA];
    if (!a)
        return;
    assert(a->nextarena == NULL && a->nfreepools == a->ntotalpools);
    nfp2lasta[RC_POOLS_PER_ARENA] = NULL;
    if (a->prevarena)
        a->prevarena->nextarena = NULL;
    else
        usable_arenas = NULL;
    free_arena(a);
}

/* The last block of `pool` was freed. */
void _rc_pool_emptied(rc_pool *pool, bool was_full)
{
    if (!was_full && !pool->prevpool && !pool->nextpool) {
        /* The only pool of its kind and class with room: cache it. */
        rc_pool *old = empty_pool;
        empty_pool = pool;
        if (old && old != pool && old->nused == 0) {
            unlink_used(old);
            return_pool(old);
        }
        drop_free_arena();
        return;
    }
    if (!was_full)
        unlink_used(pool);
    return_pool(pool);
}

/* ---- large blocks ----------------------------------------------------------- */

/* The sentinel is zero at program start; next == NULL means "empty". */
static inline void large_init(void)
{
    if (RC_UNLIKELY(REG.large.next == NULL))
        REG.large.next = REG.large.prev = &REG.large;
}

static __attribute__((noinline)) void *alloc_large(size_t size, unsigned kind)
{
    if (size > SIZE_MAX - sizeof(rc_large) - PAGE)
        _rc_fatal("out of memory: allocation of %zu bytes", size);
    rc_large *n;
    if (kind == RC_KIND_GC) { /* its gc head must be in the region */
        n = region_large_alloc((sizeof *n + size + PAGE - 1) & ~(PAGE - 1));
    } else {
        n = malloc(sizeof *n + size);
        if (!n)
            _rc_fatal("out of memory: malloc of %zu bytes failed", sizeof *n + size);
    }
    large_init();
    n->size = size;
    n->kind = kind;
    n->magic = RC_LARGE_MAGIC;
    n->next = &REG.large;
    n->prev = REG.large.prev;
    REG.large.prev->next = n;
    REG.large.prev = n;
    REG.alloc.large_count++;
    REG.alloc.large_bytes += size;
    return n + 1;
}

static void large_release(rc_large *n)
{
    if (n->kind == RC_KIND_GC)
        region_large_free(n, (sizeof *n + n->size + PAGE - 1) & ~(PAGE - 1));
    else
        free(n);
}

static __attribute__((noinline)) void free_large(void *block)
{
    rc_large *n = (rc_large *)block - 1;
    if (RC_UNLIKELY(n->magic != RC_LARGE_MAGIC || n->next == NULL))
        _rc_fatal("free of %p: not a large block (bad magic 0x%x)", block, n->magic);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->magic = 0;
    REG.alloc.large_count--;
    REG.alloc.large_bytes -= n->size;
    large_release(n);
}

/* ---- allocate and free ------------------------------------------------------ */

/* (The fast paths, _rc_mem_alloc and _rc_mem_free, are in internal.h.) */

void *_rc_mem_alloc_large(size_t size, unsigned kind) { return alloc_large(size, kind); }

/* usedpools[kind][idx] is empty. */
void *_rc_mem_alloc_new_pool(unsigned kind, unsigned idx)
{
    assert(kind >= RC_KIND_PLAIN && kind <= RC_KIND_RAW);
    return _rc_pool_alloc(take_pool(kind, idx), kind, idx);
}

void _rc_mem_free_large(void *block) { free_large(block); }

void _rc_mem_bad_free(void *block)
{
    _rc_fatal("free of %p: not in an allocated pool (double free or foreign pointer)", block);
}

size_t _rc_mem_block_size(const void *block, bool large)
{
    if (large)
        return ((const rc_large *)block - 1)->size;
    return class_size(POOL_OF(block)->szidx);
}

/* ---- whole heap ------------------------------------------------------------- */

void _rc_mem_release_all(void)
{
    rc_arena *t = REG.arenas;
    uint32_t n = REG.narenas;
    /* Detach first: a core taken halfway shows an empty heap, not unmapped
     * arenas. */
    REG.arenas = NULL;
    REG.narenas = 0;
    rc_large *node = REG.large.next;
    REG.large.next = REG.large.prev = &REG.large;
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].address)
            unmap_arena(t[i].address);
    }
    free(t);
    while (node && node != &REG.large) {
        rc_large *next = node->next;
        node->magic = 0;
        large_release(node);
        node = next;
    }
    /* The region is empty again (bar the list heads): carve from the start. */
    if (region_base) {
        arena_top = region_base + RC_ARENA_SIZE;
        large_low = region_end;
    }
    free_arenas.n = 0;
    free_pages.n = 0;
    memset(&REG.alloc, 0, sizeof REG.alloc);
    memset(usedpools, 0, sizeof usedpools);
    memset(nfp2lasta, 0, sizeof nfp2lasta);
    usable_arenas = unused_arenas = NULL;
    empty_pool = NULL;
}

/*
 * Visit every live object: the blocks below nextoffset of each pool of kind
 * PLAIN or GC whose object head is not poisoned, then the large list, in
 * that order.
 *
 * The visitor must not free anything (no decref that can reach zero): a
 * free can empty a pool and unmap the arena being walked. It may allocate
 * (the table and each pool's high water are read afresh at every step) if
 * it writes each new object's head before it returns, as rc_new does;
 * objects made during the walk may or may not be visited.
 */
void _rc_mem_walk(rc_heap_visit_fn fn, void *arg)
{
    for (uint32_t ai = 0; ai < REG.narenas; ai++) {
        uintptr_t base = REG.arenas[ai].address;
        if (!base)
            continue;
        for (uint32_t pi = 0; pi < REG.arenas[ai].ncarved; pi++) {
            rc_pool *pool = (rc_pool *)(base + (uintptr_t)pi * RC_POOL_SIZE);
            if (pool->magic != RC_POOL_MAGIC)
                continue;
            size_t head;
            if (pool->kind == RC_KIND_GC)
                head = sizeof(rc_gchead);
            else if (pool->kind == RC_KIND_PLAIN)
                head = 0;
            else
                continue;
            size_t bsize = class_size(pool->szidx);
            for (size_t off = RC_POOL_HEADER_SIZE; off < pool->nextoffset; off += bsize) {
                rc_object *o = (rc_object *)((char *)pool + off + head);
                if (o->ob_refcnt != RC_REFCNT_FREED)
                    fn(o, arg);
            }
        }
    }
    if (!REG.large.next)
        return;
    for (rc_large *n = REG.large.next; n != &REG.large; n = n->next) {
        if (n->kind != RC_KIND_GC && n->kind != RC_KIND_PLAIN)
            continue;
        char *block = (char *)(n + 1);
        rc_object *o = (rc_object *)(block + (n->kind == RC_KIND_GC ? sizeof(rc_gchead) : 0));
        if (o->ob_refcnt != RC_REFCNT_FREED)
            fn(o, arg);
    }
}
