/*
 * The allocator through its internal API (alloc.c): counters, arena reuse
 * and reclamation, block placement, the large list, the freelist link's
 * place and the heap walk.
 *
 * Criterion runs each test in its own process, so each starts with a fresh
 * allocator; the tests still compare against a snapshot taken at their
 * start where they can. check_heap() is the heap checker: it recounts
 * everything from the arena table and the pool headers (what a reader of a
 * core sees) and compares it with the counters.
 */
#include <criterion/criterion.h>

#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define POOL_CAPACITY(bsize) ((RC_POOL_SIZE - RC_POOL_HEADER_SIZE) / (bsize))

static rc_pool *pool_of(const void *p)
{
    return (rc_pool *)((uintptr_t)p & ~(uintptr_t)(RC_POOL_SIZE - 1));
}

static size_t rounded(size_t size, unsigned kind)
{
    if (kind == RC_KIND_PLAIN && size < 24)
        size = 24;
    if (kind == RC_KIND_GC && size < 24)
        size = 24;
    return (size + RC_ALIGN - 1) & ~(size_t)(RC_ALIGN - 1);
}

static void *alloc_small(size_t size, unsigned kind)
{
    bool large = true;
    void *p = _rc_mem_alloc(size, kind, &large);
    cr_assert_not_null(p);
    cr_assert(!large, "a %zu-byte request must come from a pool", size);
    return p;
}

/* The object head of a block, as object.c places it. */
static rc_object *head_of(void *block, unsigned kind)
{
    return (rc_object *)((char *)block + (kind == RC_KIND_GC ? sizeof(rc_gchead) : 0));
}

static void set_live(void *block, unsigned kind) { head_of(block, kind)->ob_refcnt = 1; }

static void free_block(void *block, unsigned kind, bool large)
{
    head_of(block, kind)->ob_refcnt = RC_REFCNT_FREED;
    _rc_mem_free(block, large);
}

/* The private lists, checked through the links they leave in the table and
 * the pool headers: usable arenas form one list sorted by nfreepools with
 * at most one wholly free arena, at its end; the pools of one (kind, class)
 * with a free block form one list, full pools none. */
static void check_lists(void)
{
    uint32_t usable = 0, heads = 0, wholly_free = 0;
    rc_arena *head = NULL;
    for (uint32_t i = 0; i < REG.narenas; i++) {
        rc_arena *a = &REG.arenas[i];
        if (!a->address)
            continue;
        if (a->nfreepools == 0) {
            cr_assert(!a->nextarena && !a->prevarena, "a full arena is in the usable list");
            continue;
        }
        usable++;
        wholly_free += a->nfreepools == a->ntotalpools;
        if (!a->prevarena) {
            heads++;
            head = a;
        } else {
            cr_assert_eq(a->prevarena->nextarena, a);
        }
        if (a->nextarena) {
            cr_assert_eq(a->nextarena->prevarena, a);
            cr_assert_leq(a->nfreepools, a->nextarena->nfreepools, "usable arenas unsorted");
        }
    }
    cr_assert_leq(wholly_free, 1, "more than one free arena cached");
    if (!usable)
        return;
    cr_assert_eq(heads, 1, "usable arenas are not one list");
    uint32_t n = 0;
    rc_arena *last = NULL;
    for (rc_arena *a = head; a; a = a->nextarena) {
        cr_assert_leq(++n, usable);
        last = a;
    }
    cr_assert_eq(n, usable, "the usable list misses arenas");
    if (wholly_free)
        cr_assert_eq(last->nfreepools, last->ntotalpools, "the cached free arena is not last");

    /* Pools with a free block, per (kind, class): one list each. */
    for (unsigned kind = RC_KIND_PLAIN; kind <= RC_KIND_GC; kind++) {
        for (unsigned c = 0; c < RC_NUM_CLASSES; c++) {
            uint32_t open = 0, nheads = 0, len = 0;
            rc_pool *first = NULL;
            for (uint32_t i = 0; i < REG.narenas; i++) {
                rc_arena *a = &REG.arenas[i];
                for (uint32_t j = 0; a->address && j < a->ncarved; j++) {
                    rc_pool *p = (rc_pool *)(a->address + (uintptr_t)j * RC_POOL_SIZE);
                    if (p->kind != kind || p->szidx != c)
                        continue;
                    bool full = !p->freeblock && p->nextoffset > p->maxnextoffset;
                    if (full) {
                        cr_assert(!p->nextpool && !p->prevpool, "a full pool is linked");
                        continue;
                    }
                    open++;
                    if (!p->prevpool) {
                        nheads++;
                        first = p;
                    }
                }
            }
            if (!open)
                continue;
            cr_assert_eq(nheads, 1, "kind %u class %u: pools with room are not one list",
                         kind, c);
            for (rc_pool *p = first; p; p = p->nextpool) {
                cr_assert_leq(++len, open);
                cr_assert(p->kind == kind && p->szidx == c);
                if (p->nextpool)
                    cr_assert_eq(p->nextpool->prevpool, p);
            }
            cr_assert_eq(len, open, "kind %u class %u: a pool with room is unlinked", kind, c);
        }
    }
}

/* Recount the heap from the table and the pool headers; compare. */
static void check_heap(void)
{
    uint64_t arenas = 0, pools = 0, blocks = 0, bytes = 0, empty_pools = 0, free_arenas = 0;
    uint64_t pools_by[RC_NUM_CLASSES] = {0}, blocks_by[RC_NUM_CLASSES] = {0};
    for (uint32_t i = 0; i < REG.narenas; i++) {
        rc_arena *a = &REG.arenas[i];
        if (!a->address)
            continue;
        arenas++;
        cr_assert_eq(a->address % RC_ARENA_SIZE, 0, "arena %u is not aligned", i);
        cr_assert_eq(a->ntotalpools, RC_POOLS_PER_ARENA);
        cr_assert_leq(a->ncarved, a->ntotalpools);
        uint32_t used = 0;
        for (uint32_t j = 0; j < a->ncarved; j++) {
            rc_pool *p = (rc_pool *)(a->address + (uintptr_t)j * RC_POOL_SIZE);
            if (p->kind == RC_KIND_FREE) {
                cr_assert_eq(p->magic, 0);
                continue;
            }
            cr_assert_eq(p->magic, RC_POOL_MAGIC);
            cr_assert(p->kind == RC_KIND_PLAIN || p->kind == RC_KIND_GC);
            cr_assert_lt(p->szidx, RC_NUM_CLASSES);
            cr_assert_eq(p->arenaindex, i);
            size_t bsize = ((size_t)p->szidx + 1) * RC_ALIGN;
            cr_assert_eq(p->maxnextoffset, RC_POOL_SIZE - bsize);
            cr_assert_eq((p->nextoffset - RC_POOL_HEADER_SIZE) % bsize, 0);
            size_t carved = (p->nextoffset - RC_POOL_HEADER_SIZE) / bsize;
            size_t nfree = 0;
            size_t link = p->kind == RC_KIND_PLAIN ? 16 : 0;
            for (char *b = p->freeblock; b; b = *(char **)(b + link)) {
                cr_assert_eq((size_t)(b - (char *)p - RC_POOL_HEADER_SIZE) % bsize, 0);
                cr_assert_lt((size_t)(b - (char *)p), p->nextoffset);
                cr_assert_eq(head_of(b, p->kind)->ob_refcnt, RC_REFCNT_FREED,
                             "a free block must keep its poisoned head");
                cr_assert_leq(++nfree, carved, "freelist cycle");
            }
            cr_assert_eq(p->nused, carved - nfree);
            empty_pools += p->nused == 0;
            used++;
            pools_by[p->szidx]++;
            blocks += p->nused;
            blocks_by[p->szidx] += p->nused;
            bytes += p->nused * bsize;
        }
        cr_assert_eq(a->ntotalpools - a->nfreepools, used, "arena %u free pool count", i);
        free_arenas += used == 0;
        uint32_t nfree = 0;
        for (rc_pool *p = a->freepools; p; p = p->nextpool) {
            cr_assert_eq(p->kind, RC_KIND_FREE);
            cr_assert_leq(++nfree, a->ncarved);
        }
        cr_assert_eq(a->nfreepools, (a->ntotalpools - a->ncarved) + nfree);
        pools += used;
    }
    /* One empty thing at most is cached: a pool or an arena. */
    cr_assert_leq(empty_pools + free_arenas, 1, "%lu empty pools and %lu free arenas cached",
                  (unsigned long)empty_pools, (unsigned long)free_arenas);
    check_lists();
    const rc_alloc_stats *st = &REG.alloc;
    cr_assert_eq(st->arenas_in_use, arenas);
    cr_assert_geq(st->arenas_highwater, arenas);
    cr_assert_eq(st->arenas_allocated - st->arenas_reclaimed, arenas);
    cr_assert_eq(st->pools_in_use, pools);
    cr_assert_eq(st->blocks_in_use, blocks);
    cr_assert_eq(st->small_bytes, bytes);
    for (unsigned c = 0; c < RC_NUM_CLASSES; c++) {
        cr_assert_eq(st->pools_by_class[c], pools_by[c], "pools of class %u", c);
        cr_assert_eq(st->blocks_by_class[c], blocks_by[c], "blocks of class %u", c);
    }
    uint64_t nlarge = 0, lbytes = 0;
    if (REG.large.next) {
        for (rc_large *n = REG.large.next; n != &REG.large; n = n->next) {
            cr_assert_eq(n->magic, RC_LARGE_MAGIC);
            cr_assert_eq(n->next->prev, n);
            nlarge++;
            lbytes += n->size;
        }
    }
    cr_assert_eq(st->large_count, nlarge);
    cr_assert_eq(st->large_bytes, lbytes);
}

/* The cached empty pool (in use, nused 0), or NULL. */
static rc_pool *cached_empty_pool(void)
{
    for (uint32_t i = 0; i < REG.narenas; i++) {
        rc_arena *a = &REG.arenas[i];
        for (uint32_t j = 0; a->address && j < a->ncarved; j++) {
            rc_pool *p = (rc_pool *)(a->address + (uintptr_t)j * RC_POOL_SIZE);
            if (p->magic == RC_POOL_MAGIC && p->nused == 0)
                return p;
        }
    }
    return NULL;
}

/* A small deterministic generator (tests must not depend on libc's rand). */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

TestSuite(alloc, .init = check_heap, .fini = check_heap);

Test(alloc, size_classes_and_plain_minimum)
{
    static const struct {
        size_t size;
        unsigned kind;
        size_t block;
    } cases[] = {
        {0, RC_KIND_GC, 24},      {1, RC_KIND_GC, 24},      {16, RC_KIND_GC, 24},
        {17, RC_KIND_GC, 24},     {25, RC_KIND_GC, 32},     {40, RC_KIND_GC, 40},
        {48, RC_KIND_GC, 48},     {512, RC_KIND_GC, 512},   {1, RC_KIND_PLAIN, 24},
        {16, RC_KIND_PLAIN, 24},  {24, RC_KIND_PLAIN, 24},  {25, RC_KIND_PLAIN, 32},
        {33, RC_KIND_PLAIN, 40},
        {511, RC_KIND_PLAIN, 512}, {512, RC_KIND_PLAIN, 512},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *p = alloc_small(cases[i].size, cases[i].kind);
        cr_assert_eq(_rc_mem_block_size(p, false), cases[i].block, "size %zu kind %u",
                     cases[i].size, cases[i].kind);
        rc_pool *pool = pool_of(p);
        cr_assert_eq(pool->magic, RC_POOL_MAGIC);
        cr_assert_eq(pool->kind, cases[i].kind);
        cr_assert_eq(((size_t)pool->szidx + 1) * RC_ALIGN, cases[i].block);
        free_block(p, cases[i].kind, false);
    }
    check_heap();
}

Test(alloc, counters_exact)
{
    rc_alloc_stats before = REG.alloc;
    enum { N = 5000 };
    static void *blocks[N];
    static unsigned kinds[N];
    uint64_t bytes = 0, by_class[RC_NUM_CLASSES] = {0};
    size_t per_pool_count[3][RC_NUM_CLASSES] = {{0}};
    for (size_t i = 0; i < N; i++) {
        size_t size = 1 + (i * 37) % RC_SMALL_MAX;
        kinds[i] = i % 3 ? RC_KIND_GC : RC_KIND_PLAIN;
        blocks[i] = alloc_small(size, kinds[i]);
        set_live(blocks[i], kinds[i]);
        size_t b = rounded(size, kinds[i]);
        bytes += b;
        by_class[b / RC_ALIGN - 1]++;
        per_pool_count[kinds[i]][b / RC_ALIGN - 1]++;
    }
    const rc_alloc_stats *st = &REG.alloc;
    cr_assert_eq(st->blocks_in_use - before.blocks_in_use, N);
    cr_assert_eq(st->small_bytes - before.small_bytes, bytes);
    uint64_t pools = 0;
    for (unsigned c = 0; c < RC_NUM_CLASSES; c++) {
        cr_assert_eq(st->blocks_by_class[c] - before.blocks_by_class[c], by_class[c]);
        /* Blocks are handed out in order from fresh pools: ceil(n / capacity). */
        size_t cap = POOL_CAPACITY((c + 1) * RC_ALIGN);
        uint64_t p = 0;
        for (unsigned k = RC_KIND_PLAIN; k <= RC_KIND_GC; k++)
            p += (per_pool_count[k][c] + cap - 1) / cap;
        if (before.blocks_by_class[c] == 0)
            cr_assert_eq(st->pools_by_class[c] - before.pools_by_class[c], p, "class %u", c);
        pools += p;
    }
    if (before.blocks_in_use == 0)
        cr_assert_eq(st->pools_in_use - before.pools_in_use, pools);
    check_heap();

    /* Free the odd ones, then the rest: counters return exactly. */
    for (size_t i = 1; i < N; i += 2)
        free_block(blocks[i], kinds[i], false);
    check_heap();
    for (size_t i = 0; i < N; i += 2)
        free_block(blocks[i], kinds[i], false);
    check_heap();
    cr_assert_eq(st->blocks_in_use, before.blocks_in_use);
    cr_assert_eq(st->small_bytes, before.small_bytes);
    /* Every pool went back to its arena but the cached empty one. */
    rc_pool *cached = cached_empty_pool();
    cr_assert_not_null(cached);
    cr_assert_eq(st->pools_in_use, before.pools_in_use + (before.blocks_in_use == 0));
    for (unsigned c = 0; c < RC_NUM_CLASSES; c++) {
        cr_assert_eq(st->blocks_by_class[c], before.blocks_by_class[c]);
        if (before.blocks_in_use == 0)
            cr_assert_eq(st->pools_by_class[c], (uint64_t)(cached->szidx == c));
    }
}

Test(alloc, kinds_never_share_a_pool)
{
    void *g = alloc_small(48, RC_KIND_GC);
    void *p = alloc_small(48, RC_KIND_PLAIN);
    cr_assert_neq(pool_of(g), pool_of(p));
    cr_assert_eq(pool_of(g)->kind, RC_KIND_GC);
    cr_assert_eq(pool_of(p)->kind, RC_KIND_PLAIN);
    cr_assert_eq(pool_of(g)->szidx, pool_of(p)->szidx);
    free_block(g, RC_KIND_GC, false);
    free_block(p, RC_KIND_PLAIN, false);
}

Test(alloc, freed_block_is_reused_first)
{
    void *keep = alloc_small(64, RC_KIND_GC);
    void *a = alloc_small(64, RC_KIND_GC);
    free_block(a, RC_KIND_GC, false);
    void *b = alloc_small(64, RC_KIND_GC);
    cr_assert_eq(a, b);
    free_block(b, RC_KIND_GC, false);
    free_block(keep, RC_KIND_GC, false);
}

Test(alloc, full_pool_serves_again_after_a_free)
{
    /* Fill one pool of 512-byte blocks (31 of them) and start a second. */
    size_t cap = POOL_CAPACITY(512);
    void *blocks[64];
    for (size_t i = 0; i < cap + 1; i++)
        blocks[i] = alloc_small(512, RC_KIND_GC);
    rc_pool *first = pool_of(blocks[0]);
    cr_assert_eq(pool_of(blocks[cap - 1]), first);
    cr_assert_neq(pool_of(blocks[cap]), first);
    cr_assert_eq(first->nused, cap);
    check_heap();
    /* A block freed in the full pool is the next one handed out. */
    free_block(blocks[5], RC_KIND_GC, false);
    check_heap();
    void *again = alloc_small(512, RC_KIND_GC);
    cr_assert_eq(again, blocks[5]);
    check_heap();
    for (size_t i = 0; i < cap + 1; i++)
        free_block(blocks[i], RC_KIND_GC, false);
}

/* The allocator writes only the link word of a freed block: the object head
 * (and everything else) survives for use-after-free reports. */
static void check_link_only(unsigned kind, size_t link)
{
    void *keep = alloc_small(64, kind); /* keeps the pool in use */
    unsigned char *b = alloc_small(64, kind);
    unsigned char copy[64];
    for (size_t i = 0; i < sizeof copy; i++)
        b[i] = (unsigned char)(0xA0 + i);
    rc_object *o = head_of(b, kind);
    o->ob_refcnt = RC_REFCNT_FREED;
    o->ob_info = 0x1234u << RC_SITE_SHIFT;
    memcpy(copy, b, sizeof copy);
    _rc_mem_free(b, false);
    for (size_t i = 0; i < sizeof copy; i++) {
        if (i >= link && i < link + sizeof(void *))
            continue;
        cr_assert_eq(b[i], copy[i], "byte %zu of a freed %s block changed", i,
                     kind == RC_KIND_GC ? "GC" : "PLAIN");
    }
    cr_assert_eq(pool_of(b)->freeblock, (void *)b);
    cr_assert_eq(o->ob_refcnt, RC_REFCNT_FREED);
    cr_assert_eq(o->ob_info, 0x1234u << RC_SITE_SHIFT);
    check_heap();
    free_block(keep, kind, false);
}

Test(alloc, freelist_link_gc_at_offset_0) { check_link_only(RC_KIND_GC, 0); }
Test(alloc, freelist_link_plain_at_offset_16) { check_link_only(RC_KIND_PLAIN, 16); }

Test(alloc, plain_minimum_holds_the_link)
{
    void *keep = alloc_small(1, RC_KIND_PLAIN);
    unsigned char *b = alloc_small(1, RC_KIND_PLAIN);
    head_of(b, RC_KIND_PLAIN)->ob_refcnt = RC_REFCNT_FREED;
    _rc_mem_free(b, false);
    /* The link (offset 16..23) lies inside the 24-byte block. */
    cr_assert_eq(_rc_mem_block_size(b, false), 24);
    void *again = alloc_small(1, RC_KIND_PLAIN);
    cr_assert_eq(again, (void *)b);
    free_block(again, RC_KIND_PLAIN, false);
    free_block(keep, RC_KIND_PLAIN, false);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

Test(alloc, blocks_aligned_and_disjoint)
{
    enum { N = 20000 };
    static void *blocks[N], *sorted[N];
    static unsigned kinds[N];
    for (size_t i = 0; i < N; i++) {
        kinds[i] = rng() & 1 ? RC_KIND_GC : RC_KIND_PLAIN;
        size_t size = 1 + rng() % RC_SMALL_MAX;
        blocks[i] = alloc_small(size, kinds[i]);
        cr_assert_eq((uintptr_t)blocks[i] % RC_ALIGN, 0);
        size_t bsize = _rc_mem_block_size(blocks[i], false);
        cr_assert_eq(bsize, rounded(size, kinds[i]));
        uintptr_t off = (uintptr_t)blocks[i] - (uintptr_t)pool_of(blocks[i]);
        cr_assert_geq(off, RC_POOL_HEADER_SIZE, "a block overlaps its pool header");
        cr_assert_leq(off + bsize, RC_POOL_SIZE, "a block crosses its pool's end");
        /* Fill it with a byte derived from its index; checked below. */
        memset(blocks[i], (int)(i & 0xFF), bsize);
    }
    for (size_t i = 0; i < N; i++) {
        unsigned char *b = blocks[i];
        size_t bsize = _rc_mem_block_size(b, false);
        for (size_t j = 0; j < bsize; j++)
            cr_assert_eq(b[j], (unsigned char)(i & 0xFF), "block %zu was overwritten", i);
    }
    memcpy(sorted, blocks, sizeof sorted);
    qsort(sorted, N, sizeof sorted[0], cmp_ptr);
    for (size_t i = 0; i + 1 < N; i++) {
        uintptr_t end = (uintptr_t)sorted[i] + _rc_mem_block_size(sorted[i], false);
        cr_assert_leq(end, (uintptr_t)sorted[i + 1], "blocks overlap");
    }
    for (size_t i = 0; i < N; i++)
        free_block(blocks[i], kinds[i], false);
}

Test(alloc, large_list)
{
    rc_alloc_stats before = REG.alloc;
    static const size_t sizes[] = {RC_SMALL_MAX + 1, 4096, 100000, (size_t)1 << 20};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *p[N];
    uint64_t bytes = 0;
    for (size_t i = 0; i < N; i++) {
        bool large = false;
        unsigned kind = i & 1 ? RC_KIND_PLAIN : RC_KIND_GC;
        p[i] = _rc_mem_alloc(sizes[i], kind, &large);
        cr_assert(large);
        cr_assert_eq((uintptr_t)p[i] % RC_ALIGN, 0);
        cr_assert_eq(_rc_mem_block_size(p[i], true), sizes[i]);
        rc_large *n = (rc_large *)p[i] - 1;
        cr_assert_eq(n->magic, RC_LARGE_MAGIC);
        cr_assert_eq(n->kind, kind);
        cr_assert_eq(n->size, sizes[i]);
        cr_assert_eq(REG.large.prev, n, "new nodes go at the tail");
        memset(p[i], 0x5A, sizes[i]);
        set_live(p[i], kind);
        bytes += sizes[i];
    }
    cr_assert_eq(REG.alloc.large_count - before.large_count, N);
    cr_assert_eq(REG.alloc.large_bytes - before.large_bytes, bytes);
    cr_assert_eq(REG.alloc.blocks_in_use, before.blocks_in_use, "large is not small");
    check_heap();
    /* Off the list, middle first. */
    free_block(p[1], RC_KIND_PLAIN, true);
    for (rc_large *n = REG.large.next; n != &REG.large; n = n->next)
        cr_assert_neq(n, (rc_large *)p[1] - 1);
    check_heap();
    for (size_t i = 0; i < N; i++) {
        if (i != 1)
            free_block(p[i], i & 1 ? RC_KIND_PLAIN : RC_KIND_GC, true);
    }
    cr_assert_eq(REG.alloc.large_count, before.large_count);
    cr_assert_eq(REG.alloc.large_bytes, before.large_bytes);
    if (before.large_count == 0) {
        cr_assert_eq(REG.large.next, &REG.large, "an empty list points to its sentinel");
        cr_assert_eq(REG.large.prev, &REG.large);
    }
}

Test(alloc, arenas_are_reclaimed)
{
    rc_alloc_stats before = REG.alloc;
    /* 48-byte GC blocks: 340 a pool, 21760 an arena; fill 5 arenas. */
    enum { N = 5 * 64 * 340 };
    void **blocks = malloc(N * sizeof *blocks);
    for (size_t i = 0; i < N; i++) {
        blocks[i] = alloc_small(48, RC_KIND_GC);
        set_live(blocks[i], RC_KIND_GC);
    }
    const rc_alloc_stats *st = &REG.alloc;
    cr_assert_geq(st->arenas_in_use - before.arenas_in_use, 5);
    cr_assert_geq(st->arenas_highwater, st->arenas_in_use);
    check_heap();
    /* Free in a scattered order so arenas drain unevenly and the usable
     * list gets reordered. */
    for (size_t step = 0; step < 7; step++) {
        for (size_t i = step; i < N; i += 7)
            free_block(blocks[i], RC_KIND_GC, false);
        check_heap();
    }
    cr_assert_eq(st->blocks_in_use, before.blocks_in_use);
    if (before.blocks_in_use == 0) {
        cr_assert_leq(st->arenas_in_use, 1, "at most one free arena stays cached");
        cr_assert_leq(st->pools_in_use, 1, "at most one empty pool stays cached");
    }
    cr_assert_geq(st->arenas_reclaimed - before.arenas_reclaimed, 4);
    cr_assert_eq(st->arenas_allocated - st->arenas_reclaimed, st->arenas_in_use);
    /* The cached arena serves the next allocation: no new mmap. */
    uint64_t allocated = st->arenas_allocated;
    void *p = alloc_small(48, RC_KIND_GC);
    cr_assert_eq(st->arenas_allocated, allocated);
    free_block(p, RC_KIND_GC, false);
    free(blocks);
}

/* Empty whole pools in a random order across arenas, so arenas with equal
 * free counts reorder; then refill some and empty everything. The usable
 * list must stay sorted throughout (check_lists). */
Test(alloc, usable_arenas_stay_sorted)
{
    enum { ARENAS = 6, PER_POOL = 31, N = ARENAS * 64 * PER_POOL };
    void **blocks = malloc(N * sizeof *blocks);
    for (size_t i = 0; i < N; i++) {
        blocks[i] = alloc_small(512, RC_KIND_PLAIN);
        set_live(blocks[i], RC_KIND_PLAIN);
    }
    /* Group the blocks by pool: sorted by address, a pool's blocks are
     * consecutive. */
    qsort(blocks, N, sizeof *blocks, cmp_ptr);
    size_t npools = 0;
    static size_t start[ARENAS * 64 + 1];
    for (size_t i = 0; i < N; i++) {
        if (i == 0 || pool_of(blocks[i]) != pool_of(blocks[i - 1]))
            start[npools++] = i;
    }
    start[npools] = N;
    cr_assert_eq(npools, ARENAS * 64);
    static size_t order[ARENAS * 64];
    for (size_t i = 0; i < npools; i++)
        order[i] = i;
    for (size_t i = npools - 1; i > 0; i--) {
        size_t j = rng() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Empty 70% of the pools, one at a time. */
    size_t emptied = npools * 7 / 10;
    for (size_t k = 0; k < emptied; k++) {
        size_t p = order[k];
        for (size_t i = start[p]; i < start[p + 1]; i++) {
            free_block(blocks[i], RC_KIND_PLAIN, false);
            blocks[i] = NULL;
        }
        check_lists();
    }
    check_heap();
    /* Refill: new pools come from the fullest usable arena first. */
    enum { REFILL = 40 * PER_POOL };
    void *more[REFILL];
    for (size_t i = 0; i < REFILL; i++) {
        more[i] = alloc_small(512, RC_KIND_PLAIN);
        set_live(more[i], RC_KIND_PLAIN);
        if (i % PER_POOL == 0)
            check_lists();
    }
    check_heap();
    for (size_t i = 0; i < REFILL; i++)
        free_block(more[i], RC_KIND_PLAIN, false);
    for (size_t k = emptied; k < npools; k++) {
        size_t p = order[k];
        for (size_t i = start[p]; i < start[p + 1]; i++)
            free_block(blocks[i], RC_KIND_PLAIN, false);
        check_lists();
    }
    check_heap();
    cr_assert_leq(REG.alloc.arenas_in_use, 1);
    free(blocks);
}

Test(alloc, alloc_free_loop_keeps_one_arena)
{
    rc_alloc_stats before = REG.alloc;
    for (int i = 0; i < 100000; i++) {
        void *p = alloc_small(48, RC_KIND_GC);
        free_block(p, RC_KIND_GC, false);
    }
    cr_assert_leq(REG.alloc.arenas_allocated - before.arenas_allocated, 1);
    cr_assert_eq(REG.alloc.arenas_reclaimed, before.arenas_reclaimed);
}

Test(alloc, table_grows_past_its_first_size)
{
    /* 512-byte blocks: 31 a pool, 1984 an arena; 40 arenas outgrow the
     * first 16-slot table twice. */
    enum { N = 40 * 64 * 31 };
    void **blocks = malloc(N * sizeof *blocks);
    for (size_t i = 0; i < N; i++) {
        blocks[i] = alloc_small(512, RC_KIND_PLAIN);
        set_live(blocks[i], RC_KIND_PLAIN);
        /* Free some as we go so arenas sit in the usable list (their links
         * must survive the table's moves). */
        if (i % 5 == 4) {
            free_block(blocks[i - 2], RC_KIND_PLAIN, false);
            blocks[i - 2] = NULL;
        }
    }
    cr_assert_geq(REG.narenas, 40);
    check_heap();
    for (size_t i = 0; i < N; i++) {
        if (blocks[i])
            free_block(blocks[i], RC_KIND_PLAIN, false);
    }
    check_heap();
    cr_assert_leq(REG.alloc.arenas_in_use, 1);
    free(blocks);
}

struct seen {
    rc_object **objs;
    size_t n, cap;
};

static void collect(rc_object *o, void *arg)
{
    struct seen *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->objs = realloc(s->objs, s->cap * sizeof *s->objs);
    }
    s->objs[s->n++] = o;
}

Test(alloc, walk_visits_exactly_the_live)
{
    struct seen base = {0};
    _rc_mem_walk(collect, &base); /* whatever lived before the test */
    enum { N = 3000 };
    static void *blocks[N];
    static unsigned kinds[N];
    static bool large[N], live[N];
    for (size_t i = 0; i < N; i++) {
        kinds[i] = i % 2 ? RC_KIND_GC : RC_KIND_PLAIN;
        size_t size = i % 97 == 0 ? 600 + i : 1 + (i * 13) % RC_SMALL_MAX;
        blocks[i] = _rc_mem_alloc(size, kinds[i], &large[i]);
        set_live(blocks[i], kinds[i]);
        live[i] = true;
    }
    for (size_t i = 0; i < N; i++) {
        if (rng() % 3 == 0) {
            free_block(blocks[i], kinds[i], large[i]);
            live[i] = false;
        }
    }
    struct seen s = {0};
    _rc_mem_walk(collect, &s);
    if (base.n)
        qsort(base.objs, base.n, sizeof base.objs[0], cmp_ptr);
    size_t nlive = 0;
    for (size_t i = 0; i < N; i++)
        nlive += live[i];
    cr_assert_eq(s.n, base.n + nlive);
    qsort(s.objs, s.n, sizeof s.objs[0], cmp_ptr);
    for (size_t i = 0; i < N; i++) {
        rc_object *o = head_of(blocks[i], kinds[i]);
        bool found = bsearch(&o, s.objs, s.n, sizeof s.objs[0], cmp_ptr) != NULL;
        if (live[i])
            cr_assert(found, "live object %zu (%s) not visited", i, large[i] ? "large" : "small");
        else if (!large[i]) /* a freed large node may be reused by malloc */
            cr_assert(!found || bsearch(&o, base.objs, base.n, sizeof o, cmp_ptr),
                      "freed object %zu visited", i);
    }
    check_heap();
    for (size_t i = 0; i < N; i++) {
        if (live[i])
            free_block(blocks[i], kinds[i], large[i]);
    }
    free(s.objs);
    free(base.objs);
}

Test(alloc, random_stress)
{
    enum { SLOTS = 4096, STEPS = 200000 };
    static void *blocks[SLOTS];
    static unsigned kinds[SLOTS];
    static bool large[SLOTS];
    static unsigned char tag[SLOTS];
    for (size_t step = 0; step < STEPS; step++) {
        size_t i = rng() % SLOTS;
        if (blocks[i]) {
            size_t bsize = _rc_mem_block_size(blocks[i], large[i]);
            unsigned char *b = blocks[i];
            /* The tag sits past both heads and both link words. */
            if (bsize > 32)
                cr_assert_eq(b[bsize - 1], tag[i], "block %zu was overwritten", i);
            free_block(blocks[i], kinds[i], large[i]);
            blocks[i] = NULL;
        } else {
            kinds[i] = rng() & 1 ? RC_KIND_GC : RC_KIND_PLAIN;
            uint64_t r = rng();
            size_t size = r % 50 == 0 ? 513 + r % 3000 : 1 + (r >> 8) % RC_SMALL_MAX;
            blocks[i] = _rc_mem_alloc(size, kinds[i], &large[i]);
            cr_assert_eq(large[i], size > RC_SMALL_MAX);
            size_t bsize = _rc_mem_block_size(blocks[i], large[i]);
            set_live(blocks[i], kinds[i]);
            tag[i] = (unsigned char)rng();
            if (bsize > 32)
                ((unsigned char *)blocks[i])[bsize - 1] = tag[i];
        }
        if (step % 20000 == 0)
            check_heap();
    }
    check_heap();
    for (size_t i = 0; i < SLOTS; i++) {
        if (blocks[i])
            free_block(blocks[i], kinds[i], large[i]);
    }
}

Test(alloc, release_all_resets_everything)
{
    for (size_t i = 0; i < 30000; i++)
        set_live(alloc_small(1 + i % RC_SMALL_MAX, i & 1 ? RC_KIND_GC : RC_KIND_PLAIN),
                 i & 1 ? RC_KIND_GC : RC_KIND_PLAIN);
    bool large;
    set_live(_rc_mem_alloc(10000, RC_KIND_GC, &large), RC_KIND_GC);
    cr_assert(large);
    _rc_mem_release_all();
    cr_assert_null(REG.arenas);
    cr_assert_eq(REG.narenas, 0);
    cr_assert_eq(REG.large.next, &REG.large);
    static const rc_alloc_stats zero;
    cr_assert_eq(memcmp(&REG.alloc, &zero, sizeof zero), 0, "counters are reset");
    /* Usable again afterwards (rc_init after rc_shutdown). */
    void *p = alloc_small(48, RC_KIND_GC);
    cr_assert_eq(REG.alloc.arenas_in_use, 1);
    check_heap();
    free_block(p, RC_KIND_GC, false);
}

Test(alloc, free_of_a_foreign_pointer_aborts, .signal = SIGABRT)
{
    /* A zeroed, pool-aligned buffer: its "pool header" has no magic. */
    char *fake = aligned_alloc(RC_POOL_SIZE, RC_POOL_SIZE);
    memset(fake, 0, RC_POOL_SIZE);
    _rc_mem_free(fake + RC_POOL_HEADER_SIZE, false);
}

Test(alloc, free_of_a_bad_large_block_aborts, .signal = SIGABRT)
{
    char *fake = calloc(1, sizeof(rc_large) + 64);
    _rc_mem_free(fake + sizeof(rc_large), true);
}

Test(alloc, double_free_emptying_a_pool_aborts, .signal = SIGABRT)
{
    void *p = alloc_small(48, RC_KIND_GC);
    free_block(p, RC_KIND_GC, false);
    _rc_mem_free(p, false); /* its pool is empty (cached, nused 0) */
}

Test(alloc, double_free_in_a_returned_pool_aborts, .signal = SIGABRT)
{
    /* Two pools of one class; the second one empties while the first still
     * has room, so it goes back to its arena (magic 0). */
    size_t cap = POOL_CAPACITY(512);
    void *blocks[64];
    for (size_t i = 0; i < cap + 1; i++)
        blocks[i] = alloc_small(512, RC_KIND_GC);
    free_block(blocks[0], RC_KIND_GC, false);
    rc_pool *second = pool_of(blocks[cap]);
    free_block(blocks[cap], RC_KIND_GC, false);
    cr_assert_eq(second->magic, 0);
    cr_assert_eq(second->kind, RC_KIND_FREE);
    _rc_mem_free(blocks[cap], false);
}

/* The cached pool is reused, then empties again while another pool of its
 * class has room: it goes back to its arena and must stop being the cache
 * (a stale cache pointer would return it twice). */
Test(alloc, cached_pool_reused_then_returned)
{
    size_t cap = POOL_CAPACITY(512);
    void *a = alloc_small(512, RC_KIND_GC);
    rc_pool *p = pool_of(a);
    free_block(a, RC_KIND_GC, false); /* p is the cache */
    void *blocks[64];
    for (size_t i = 0; i < cap + 1; i++)
        blocks[i] = alloc_small(512, RC_KIND_GC);
    cr_assert_eq(pool_of(blocks[0]), p);
    rc_pool *p2 = pool_of(blocks[cap]);
    cr_assert_neq(p2, p);
    for (size_t i = 0; i < cap; i++)
        free_block(blocks[i], RC_KIND_GC, false);
    cr_assert_eq(p->kind, RC_KIND_FREE, "p had company: back to its arena");
    check_heap();
    free_block(blocks[cap], RC_KIND_GC, false); /* p2 becomes the cache */
    cr_assert_eq(p2->magic, RC_POOL_MAGIC);
    check_heap();
    /* Both pools are usable again, each once. */
    void *x = alloc_small(512, RC_KIND_GC);
    cr_assert_eq(pool_of(x), p2);
    void *y = alloc_small(64, RC_KIND_PLAIN);
    cr_assert_eq(pool_of(y), p, "p is the arena's free pool");
    check_heap();
    free_block(x, RC_KIND_GC, false);
    free_block(y, RC_KIND_PLAIN, false);
}

Test(alloc, one_empty_pool_is_cached)
{
    /* A lone pool that empties stays, ready; a second class's lone pool
     * takes its place and the first goes back to the arena. */
    void *a = alloc_small(48, RC_KIND_GC);
    rc_pool *pa = pool_of(a);
    free_block(a, RC_KIND_GC, false);
    cr_assert_eq(pa->magic, RC_POOL_MAGIC);
    cr_assert_eq(pa->nused, 0);
    uint64_t pools = REG.alloc.pools_in_use;
    check_heap();
    void *b = alloc_small(48, RC_KIND_GC);
    cr_assert_eq(pool_of(b), pa, "the cached pool serves its class again");
    cr_assert_eq(REG.alloc.pools_in_use, pools);
    free_block(b, RC_KIND_GC, false);
    void *c = alloc_small(100, RC_KIND_PLAIN);
    rc_pool *pc = pool_of(c);
    cr_assert_neq(pc, pa);
    free_block(c, RC_KIND_PLAIN, false);
    cr_assert_eq(pc->magic, RC_POOL_MAGIC, "the newest empty pool is cached");
    cr_assert_eq(pa->magic, 0, "the older one went back to its arena");
    cr_assert_eq(pa->kind, RC_KIND_FREE);
    check_heap();
}

/* ---- the collector's region ----------------------------------------------------- */

static bool in_region(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)REG.gc.link_base;
    return a >= base && a + len <= base + REG.gc.region_size;
}

/* Every gc head lies in the region that 32-bit collector links count from:
 * arenas (GC and PLAIN pools alike), large tracked blocks, the list heads.
 * Large untracked blocks stay malloc's. */
Test(alloc, gc_heads_live_in_the_region)
{
    rc_init(); /* the region is reserved by the first arena or rc_init */
    cr_assert_neq(REG.gc.link_base, 0);
    cr_assert_eq(REG.gc.link_base % RC_ARENA_SIZE, 0);
    cr_assert_geq(REG.gc.region_size, (uint64_t)64 << 20);
    cr_assert_leq(REG.gc.region_size, RC_GC_REGION_MAX);
    cr_assert_eq(REG.gc.region_size & (REG.gc.region_size - 1), 0, "a power of two");
    cr_assert_eq((uintptr_t)REG.gc.generations[0].head, (uintptr_t)REG.gc.link_base,
                 "generation 0's head is the base (link 0)");
    for (int g = 0; g < 3; g++)
        cr_assert(in_region(REG.gc.generations[g].head, sizeof(rc_gchead)));
    cr_assert(in_region(REG.gc.permanent.head, sizeof(rc_gchead)));

    void *g = alloc_small(40, RC_KIND_GC), *p = alloc_small(40, RC_KIND_PLAIN);
    cr_assert(in_region(g, 40) && in_region(p, 40));
    bool large;
    void *lg = _rc_mem_alloc(5000, RC_KIND_GC, &large);
    cr_assert(large);
    cr_assert(in_region(lg, 5000), "a large tracked block is carved from the region");
    cr_assert_eq(((uintptr_t)lg - sizeof(rc_large)) % 4096, 0, "whole pages");
    void *lp = _rc_mem_alloc(5000, RC_KIND_PLAIN, &large);
    cr_assert(large);
    cr_assert_not(in_region(lp, 1), "large untracked blocks are malloc's");
    set_live(lg, RC_KIND_GC);
    free_block(lg, RC_KIND_GC, true);
    /* a freed range serves the next large tracked block that fits */
    void *lg2 = _rc_mem_alloc(6000, RC_KIND_GC, &large);
    cr_assert_eq(lg2, lg, "the freed pages are reused");
    set_live(lg2, RC_KIND_GC);
    free_block(lg2, RC_KIND_GC, true);
    set_live(lp, RC_KIND_PLAIN);
    free_block(lp, RC_KIND_PLAIN, true);
    free_block(g, RC_KIND_GC, false);
    free_block(p, RC_KIND_PLAIN, false);
    check_heap();
}

/* Links decode to the neighbours: walking generation 0 by links from its
 * head reaches a new tracked object and comes back to the head, both ways. */
Test(alloc, links_walk_the_generation)
{
    rc_object *a = rc_list_new(), *b = rc_list_new();
    rc_gchead *head = REG.gc.generations[0].head;
    size_t n = 0;
    bool seen_a = false, seen_b = false;
    uint32_t prev = _rc_gc_link(head);
    for (rc_gchead *g = _rc_gc_ptr(head->gc_next); g != head; g = _rc_gc_ptr(g->gc_next)) {
        cr_assert_eq(g->gc_prev, prev, "gc_prev names the node before");
        seen_a |= FROM_GC(g) == a;
        seen_b |= FROM_GC(g) == b;
        prev = _rc_gc_link(g);
        cr_assert_lt(++n, 10000000, "a loop");
    }
    cr_assert_eq(head->gc_prev, prev, "the head's gc_prev names the last node");
    cr_assert(seen_a && seen_b);
    cr_assert_eq(_rc_gc_ptr(AS_GC(a)->gc_next), AS_GC(b), "b was tracked right after a");
    rc_decref(a);
    rc_decref(b);
}
