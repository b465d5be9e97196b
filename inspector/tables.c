/*
 * tables.c -- the engine's memory: rs_xmalloc and friends.
 *
 * Small allocations are malloc's. Tables sized by the heap (at least
 * BIG_MIN bytes: the object table, the edge arrays, every per-object array
 * of the analyses) get mappings of their own, which
 *
 *   - ask for transparent huge pages (MADV_HUGEPAGE): at a million objects
 *     the engine fills ~130 MB of tables, and with 4 KiB pages the page
 *     faults alone (entry, allocation, accounting, clearing; 40 000 of
 *     them) were a third of its CPU time (tests/bench, workload 7);
 *   - are kept when freed (up to MAX_KEPT_BYTES), populated, for the next
 *     table: an analysis frees its temporaries and the next one allocates
 *     its own of the same sizes. glibc would unmap them (they are above its
 *     mmap threshold) and fault fresh pages in again. rs_tables_trim()
 *     (rs_heap_free calls it) gives the kept ones back;
 *   - grow by mremap, which moves page tables, not bytes.
 *
 * Which pointer is whose: the live mappings are listed (there are tens, not
 * thousands), so rs_xfree and rs_xrealloc take any pointer malloc gave too.
 * A pointer the engine hands to its caller (report text) is malloc's, to be
 * freed with free() or rs_free().
 *
 * Under AddressSanitizer everything is malloc's: its checks of the tables
 * are worth more than their speed there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mremap */
#endif
#include "engine_int.h"

#include <malloc.h> /* malloc_usable_size */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define RS_TABLES_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RS_TABLES_PLAIN 1
#endif
#endif

static _Noreturn void oom(size_t n)
{
    fprintf(stderr, "refscope engine: out of memory (allocating %zu bytes)\n", n);
    abort();
}

#ifndef RS_TABLES_PLAIN
#define BIG_MIN ((size_t)1 << 20)  /* a table at least this big gets its own mapping */
#else
#define BIG_MIN SIZE_MAX           /* none: nothing is ever mapped here */
#endif
#define HUGE_PAGE ((size_t)2 << 20)
#define MAX_KEPT 64                /* freed mappings kept, at most */
/* and their bytes, at most: beyond it a freed table's pages go back to the
 * system (at 10M objects keeping all of them raised the peak RSS by 200 MB
 * for no measurable time; at 1M less than this is ever kept) */
#define MAX_KEPT_BYTES ((size_t)64 << 20)

typedef struct mapping {
    unsigned char *base;
    size_t len;      /* mapped bytes, a multiple of HUGE_PAGE */
    size_t dirty;    /* bytes from base that may be nonzero */
} mapping;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static mapping *live;              /* handed out */
static size_t nlive, caplive;
static mapping kept[MAX_KEPT];     /* freed, populated, for the next table */
static size_t nkept, kept_bytes;
static uintptr_t live_lo = UINTPTR_MAX, live_hi; /* bounds of every mapping ever live */

static size_t round_len(size_t n)
{
    if (n > SIZE_MAX - HUGE_PAGE)
        oom(n);
    return (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

static void advise(void *p, size_t len)
{
    /* Only a hint: without THP (or with it off) this fails and 4 KiB pages
     * do the same job, slower. */
    (void)madvise(p, len, MADV_HUGEPAGE);
}

/* A fresh mapping of len bytes (a multiple of HUGE_PAGE), aligned to
 * HUGE_PAGE so that all of it can be huge pages; NULL if there is no
 * memory. */
static unsigned char *map_fresh(size_t len)
{
    size_t over = len + HUGE_PAGE;
    unsigned char *p = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    size_t head = (HUGE_PAGE - ((uintptr_t)p & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
    if (head)
        munmap(p, head);
    if (over - head > len)
        munmap(p + head + len, over - head - len);
    advise(p + head, len);
    return p + head;
}

/* The live mapping starting at p, or NULL (p is malloc's). Locked. */
static mapping *find_live(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a < live_lo || a >= live_hi)
        return NULL;
    for (size_t i = nlive; i-- > 0;)
        if (live[i].base == p)
            return &live[i];
    return NULL;
}

static void add_live(mapping m)
{
    if (nlive == caplive) {
        size_t cap = caplive ? caplive * 2 : 32;
        mapping *nl = realloc(live, cap * sizeof *nl);
        if (!nl)
            oom(cap * sizeof *nl);
        live = nl;
        caplive = cap;
    }
    live[nlive++] = m;
    if ((uintptr_t)m.base < live_lo)
        live_lo = (uintptr_t)m.base;
    if ((uintptr_t)m.base + m.len > live_hi)
        live_hi = (uintptr_t)m.base + m.len;
}

/* Give back mapping m: keep it for the next table, or unmap it. Locked. */
static void retire(mapping m)
{
    if (m.len > MAX_KEPT_BYTES) {
        munmap(m.base, m.len);
        return;
    }
    /* make room: unmap the smallest kept ones, unless m is smaller */
    while (nkept == MAX_KEPT || kept_bytes + m.len > MAX_KEPT_BYTES) {
        size_t s = 0;
        for (size_t i = 1; i < nkept; i++)
            if (kept[i].len < kept[s].len)
                s = i;
        if (kept[s].len >= m.len) {
            munmap(m.base, m.len);
            return;
        }
        munmap(kept[s].base, kept[s].len);
        kept_bytes -= kept[s].len;
        kept[s] = kept[--nkept];
    }
    kept[nkept++] = m;
    kept_bytes += m.len;
}

/* A mapping for n bytes (n >= BIG_MIN), zeroed if zero. Locked. */
static void *big_alloc(size_t n, bool zero)
{
    size_t len = round_len(n);
    /* the smallest kept mapping that holds n, else the largest (grown) */
    size_t best = SIZE_MAX, largest = SIZE_MAX;
    for (size_t i = 0; i < nkept; i++) {
        if (kept[i].len >= n && (best == SIZE_MAX || kept[i].len < kept[best].len))
            best = i;
        if (largest == SIZE_MAX || kept[i].len > kept[largest].len)
            largest = i;
    }
    mapping m;
    if (best != SIZE_MAX || largest != SIZE_MAX) {
        size_t k = best != SIZE_MAX ? best : largest;
        m = kept[k];
        kept[k] = kept[--nkept];
        kept_bytes -= m.len;
        if (m.len < len) {
            unsigned char *p = mremap(m.base, m.len, len, MREMAP_MAYMOVE);
            if (p == MAP_FAILED) {
                munmap(m.base, m.len);
                m.base = map_fresh(len);
                if (!m.base)
                    oom(n);
                m.dirty = 0;
            } else {
                advise(p + m.len, len - m.len);
                m.base = p;
            }
            m.len = len;
        }
        if (zero)
            memset(m.base, 0, n < m.dirty ? n : m.dirty);
    } else {
        m.base = map_fresh(len);
        if (!m.base)
            oom(n);
        m.len = len;
        m.dirty = 0;
    }
    if (n > m.dirty)
        m.dirty = n;
    add_live(m);
    return m.base;
}

void *rs_xmalloc(size_t n)
{
    if (n >= BIG_MIN) {
        pthread_mutex_lock(&lock);
        void *p = big_alloc(n, false);
        pthread_mutex_unlock(&lock);
        return p;
    }
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rs_xcalloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        oom(SIZE_MAX);
    if (n * size >= BIG_MIN) {
        pthread_mutex_lock(&lock);
        void *p = big_alloc(n * size, true);
        pthread_mutex_unlock(&lock);
        return p;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *rs_xrealloc(void *p, size_t n)
{
    pthread_mutex_lock(&lock);
    mapping *m = p ? find_live(p) : NULL;
    if (m) {
        if (n > m->len) { /* grow: move the page tables */
            size_t len = round_len(n);
            unsigned char *q = mremap(m->base, m->len, len, MREMAP_MAYMOVE);
            if (q == MAP_FAILED)
                oom(n);
            advise(q + m->len, len - m->len);
            m->base = q;
            m->len = len;
            if (q + len > (unsigned char *)live_hi)
                live_hi = (uintptr_t)(q + len);
            if ((uintptr_t)q < live_lo)
                live_lo = (uintptr_t)q;
        } else if (n + 2 * HUGE_PAGE <= m->len) { /* shrink a lot: the tail is kept */
            /* (its pages are populated: the next table gets them, rather
             * than fresh ones, as when a whole table is freed) */
            size_t len = round_len(n ? n : 1);
            retire((mapping){m->base + len, m->len - len, m->dirty > len ? m->dirty - len : 0});
            m->len = len;
            if (m->dirty > len)
                m->dirty = len;
        }
        if (n > m->dirty)
            m->dirty = n;
        if (m->dirty > m->len)
            m->dirty = m->len;
        p = m->base;
        pthread_mutex_unlock(&lock);
        return p;
    }
    if (n >= BIG_MIN) { /* malloc's (or none) -> a mapping */
        void *q = big_alloc(n, false);
        pthread_mutex_unlock(&lock);
        if (p) {
            size_t old = malloc_usable_size(p);
            memcpy(q, p, old < n ? old : n);
            free(p);
        }
        return q;
    }
    pthread_mutex_unlock(&lock);
    p = realloc(p, n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void rs_xfree(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&lock);
    mapping *m = find_live(p);
    if (m) {
        mapping gone = *m;
        *m = live[--nlive];
        retire(gone);
        pthread_mutex_unlock(&lock);
        return;
    }
    pthread_mutex_unlock(&lock);
    free(p);
}

void rs_tables_trim(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nkept; i++)
        munmap(kept[i].base, kept[i].len);
    nkept = 0;
    kept_bytes = 0;
    if (!nlive) {
        free(live);
        live = NULL;
        caplive = 0;
        live_lo = UINTPTR_MAX;
        live_hi = 0;
    }
    pthread_mutex_unlock(&lock);
}


char *rs_xstrdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *p = malloc(n);
    if (!p)
        oom(n);
    memcpy(p, s ? s : "", n);
    return p;
}

void rs_grow(void *arr, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void **pa = arr;
    *pa = rs_xrealloc(*pa, c * elsize);
    *cap = c;
}

RS_EXPORT void rs_free(void *p) { rs_xfree(p); }
