/*
 * Memory accounting besides the tracer: allocator statistics in the shape
 * of sys._debugmallocstats, process memory from /proc (psutil's
 * memory_info), deep sizes (pympler's asizeof for one object) and the
 * memory timeline ring in the registry.
 *
 * Sections: process memory, allocator statistics, deep size, timeline.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ========================================================================
 * Process memory
 * ===================================================================== */

/* /proc/self/statm stays open: a pread costs ~0.4 us against ~1.8 us for
 * open + read + close, and the timeline reads it at every collection. The
 * file belongs to the process that opened it, so a forked child reopens. */
static int statm_fd = -1;
static pid_t statm_pid;

static int read_statm(uint64_t pages[7])
{
    pid_t pid = getpid();
    if (statm_fd >= 0 && statm_pid != pid) {
        close(statm_fd);
        statm_fd = -1;
    }
    if (statm_fd < 0) {
        statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (statm_fd < 0)
            return _rc_error("cannot open /proc/self/statm: %s", strerror(errno));
        statm_pid = pid;
    }
    char buf[256];
    ssize_t r = pread(statm_fd, buf, sizeof buf - 1, 0);
    if (r <= 0)
        return _rc_error("cannot read /proc/self/statm: %s", r < 0 ? strerror(errno) : "empty");
    buf[r] = '\0';
    char *p = buf;
    for (int i = 0; i < 7; i++) {
        char *end;
        pages[i] = strtoull(p, &end, 10);
        if (end == p)
            return _rc_error("cannot parse /proc/self/statm: \"%s\"", buf);
        p = end;
    }
    return 0;
}

int rc_process_memory_info(rc_memory_info *out)
{
    /* statm: size resident shared text lib data dt, in pages; psutil's
     * memory_info takes rss, vms, shared, text and data from the same file. */
    uint64_t pages[7];
    if (!out)
        return _rc_error("rc_process_memory_info: NULL output");
    if (read_statm(pages) < 0)
        return -1;
    uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
    out->vms = pages[0] * ps;
    out->rss = pages[1] * ps;
    out->shared = pages[2] * ps;
    out->text = pages[3] * ps;
    out->data = pages[5] * ps;
    return 0;
}

int rc_process_memory(size_t *rss, size_t *vms)
{
    rc_memory_info mi;
    if (rc_process_memory_info(&mi) < 0)
        return -1;
    if (rss)
        *rss = (size_t)mi.rss;
    if (vms)
        *vms = (size_t)mi.vms;
    return 0;
}

/* ========================================================================
 * Allocator statistics
 * ===================================================================== */

int rc_mallocstats_get(rc_mallocstats *st)
{
    if (!st)
        return _rc_error("rc_mallocstats_get: NULL output");
    memset(st, 0, sizeof *st);
    st->nclasses = RC_NUM_CLASSES;
    st->small_max = RC_SMALL_MAX;
    for (unsigned i = 0; i < RC_NUM_CLASSES; i++)
        st->classes[i].size = (i + 1) * RC_ALIGN;

    /* obmalloc's walk: every pool of every arena; a pool is in use iff it
     * carries the magic (released pools have it cleared). */
    for (uint32_t ai = 0; ai < REG.narenas; ai++) {
        const rc_arena *a = &REG.arenas[ai];
        if (!a->address)
            continue;
        st->arenas_current++;
        st->unused_pools += a->nfreepools;
        for (uint32_t pi = 0; pi < a->ncarved; pi++) {
            const rc_pool *pool = (const rc_pool *)(a->address + (uintptr_t)pi * RC_POOL_SIZE);
            if (pool->magic != RC_POOL_MAGIC || pool->kind == RC_KIND_FREE ||
                pool->szidx >= RC_NUM_CLASSES)
                continue;
            rc_mallocstats_class *c = &st->classes[pool->szidx];
            uint64_t nblocks = (RC_POOL_SIZE - RC_POOL_HEADER_SIZE) / c->size;
            c->pools++;
            c->blocks_in_use += pool->nused;
            c->blocks_available += nblocks - pool->nused;
        }
    }
    for (unsigned i = 0; i < RC_NUM_CLASSES; i++) {
        const rc_mallocstats_class *c = &st->classes[i];
        st->allocated_bytes += c->blocks_in_use * c->size;
        st->available_bytes += c->blocks_available * c->size;
        st->pool_header_bytes += c->pools * RC_POOL_HEADER_SIZE;
        st->quantization_bytes += c->pools * ((RC_POOL_SIZE - RC_POOL_HEADER_SIZE) % c->size);
        st->pools_in_use += c->pools;
        st->blocks_in_use += c->blocks_in_use;
    }
    st->arenas_allocated = REG.alloc.arenas_allocated;
    st->arenas_reclaimed = REG.alloc.arenas_reclaimed;
    st->arenas_highwater = REG.alloc.arenas_highwater;
    st->arena_bytes = st->arenas_current * RC_ARENA_SIZE;
    st->unused_pool_bytes = st->unused_pools * RC_POOL_SIZE;
    st->alignment_bytes = 0; /* arenas are mapped aligned to their size */
    st->total = st->allocated_bytes + st->available_bytes + st->unused_pool_bytes +
                st->pool_header_bytes + st->quantization_bytes + st->alignment_bytes;
    st->large_count = REG.alloc.large_count;
    st->large_bytes = REG.alloc.large_bytes;
    return 0;
}

/* obmalloc's printone(): the label padded to 35 columns, '=', the value
 * right-aligned in 21 columns with thousands separators. */
static void printone(FILE *out, const char *msg, uint64_t value)
{
    char buf[32];
    int i = 22;
    fputs(msg, out);
    for (size_t k = strlen(msg); k < 35; k++)
        fputc(' ', out);
    fputc('=', out);
    buf[i--] = '\0';
    buf[i--] = '\n';
    int k = 3;
    do {
        uint64_t next = value / 10;
        buf[i--] = (char)('0' + (value - next * 10));
        value = next;
        if (--k == 0 && value && i >= 0) {
            k = 3;
            buf[i--] = ',';
        }
    } while (value && i >= 0);
    while (i >= 0)
        buf[i--] = ' ';
    fputs(buf, out);
}

void rc_debug_mallocstats(FILE *out)
{
    rc_mallocstats st;
    char buf[128];
    if (!out)
        out = stderr;
    rc_mallocstats_get(&st);
    fprintf(out, "Small block threshold = %u, in %u size classes.\n", st.small_max, st.nclasses);
    fputs("\nclass   size   num pools   blocks in use  avail blocks\n"
          "-----   ----   ---------   -------------  ------------\n",
          out);
    for (unsigned i = 0; i < st.nclasses; i++) {
        const rc_mallocstats_class *c = &st.classes[i];
        if (c->pools == 0)
            continue;
        fprintf(out, "%5u %6u %11" PRIu64 " %15" PRIu64 " %13" PRIu64 "\n", i, c->size, c->pools,
                c->blocks_in_use, c->blocks_available);
    }
    fputc('\n', out);
    printone(out, "# arenas allocated total", st.arenas_allocated);
    printone(out, "# arenas reclaimed", st.arenas_reclaimed);
    printone(out, "# arenas highwater mark", st.arenas_highwater);
    printone(out, "# arenas allocated current", st.arenas_current);
    snprintf(buf, sizeof buf, "%" PRIu64 " arenas * %zu bytes/arena", st.arenas_current,
             (size_t)RC_ARENA_SIZE);
    printone(out, buf, st.arena_bytes);
    fputc('\n', out);
    printone(out, "# bytes in allocated blocks", st.allocated_bytes);
    printone(out, "# bytes in available blocks", st.available_bytes);
    snprintf(buf, sizeof buf, "%" PRIu64 " unused pools * %zu bytes", st.unused_pools,
             (size_t)RC_POOL_SIZE);
    printone(out, buf, st.unused_pool_bytes);
    printone(out, "# bytes lost to pool headers", st.pool_header_bytes);
    printone(out, "# bytes lost to quantization", st.quantization_bytes);
    printone(out, "# bytes lost to arena alignment", st.alignment_bytes);
    printone(out, "Total", st.total);
    fputc('\n', out);
    printone(out, "# large objects", st.large_count);
    printone(out, "# bytes in large objects", st.large_bytes);
}

/* ========================================================================
 * Deep size
 * ===================================================================== */

/* Open addressing: object -> references from the set (in_set: member). */
typedef struct deep_slot {
    rc_object *o;
    uint32_t refs;
    uint32_t in_set;
} deep_slot;

typedef struct deep_state {
    deep_slot *slots;
    size_t cap, used;
    rc_object **work; /* members not yet traversed */
    size_t nwork, capwork;
    size_t total;
} deep_state;

static size_t deep_hash(const rc_object *o, size_t cap)
{
    return (size_t)((((uint64_t)(uintptr_t)o >> 4) * 0x9E3779B97F4A7C15ull) >>
                    (64 - __builtin_ctzll((unsigned long long)cap)));
}

static deep_slot *deep_find(deep_state *d, rc_object *o)
{
    if (d->used * 2 >= d->cap) {
        size_t oldcap = d->cap;
        deep_slot *old = d->slots;
        d->cap = oldcap ? oldcap * 2 : 64;
        d->slots = _rc_xcalloc(d->cap, sizeof *d->slots);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].o)
                continue;
            size_t j = deep_hash(old[i].o, d->cap);
            while (d->slots[j].o)
                j = (j + 1) & (d->cap - 1);
            d->slots[j] = old[i];
        }
        free(old);
    }
    size_t j = deep_hash(o, d->cap);
    while (d->slots[j].o && d->slots[j].o != o)
        j = (j + 1) & (d->cap - 1);
    if (!d->slots[j].o) {
        d->slots[j].o = o;
        d->used++;
    }
    return &d->slots[j];
}

static void deep_add(deep_state *d, deep_slot *s)
{
    s->in_set = 1;
    d->total += rc_sizeof(s->o);
    if (d->nwork == d->capwork) {
        d->capwork = d->capwork ? d->capwork * 2 : 64;
        d->work = _rc_xrealloc(d->work, d->capwork * sizeof *d->work);
    }
    d->work[d->nwork++] = s->o;
}

/* A reference from a member: the referent joins once every one of its
 * references comes from members. Counts only grow, so one pass over the
 * worklist reaches the fixpoint. */
static int deep_visit(rc_object *ref, void *arg)
{
    deep_state *d = arg;
    deep_slot *s = deep_find(d, ref);
    if (s->in_set)
        return 0;
    s->refs++;
    if ((intptr_t)s->refs >= rc_refcount(ref))
        deep_add(d, s);
    return 0;
}

size_t rc_sizeof_deep(rc_object *o)
{
    if (!o)
        return 0;
    deep_state d = {0};
    deep_add(&d, deep_find(&d, o));
    while (d.nwork) {
        rc_object *m = d.work[--d.nwork];
        _rc_traverse(m, deep_visit, &d);
    }
    free(d.slots);
    free(d.work);
    return d.total;
}

/* ========================================================================
 * The memory timeline
 * ===================================================================== */

#define TL_DISABLED 1u
#define TL_SETUP 2u

/* In .bss: no allocation to fail or to release, and always in a core. */
static rc_timeline_sample timeline_ring[RC_TIMELINE_CAPACITY];

_Static_assert(sizeof(rc_timeline_sample) == 104, "the timeline sample layout is a contract");

static void timeline_setup(void)
{
    rc_trace_state *t = &REG.trace;
    if (t->timeline_flags & TL_SETUP)
        return;
    t->timeline_interval = RC_TIMELINE_DEFAULT_INTERVAL;
    t->timeline_countdown = RC_TIMELINE_DEFAULT_INTERVAL;
    t->timeline_flags |= TL_SETUP;
}

static void take_sample(uint32_t reason)
{
    rc_trace_state *t = &REG.trace;
    timeline_setup();
    if (t->timeline_flags & TL_DISABLED)
        return;
    if (!t->timeline) {
        t->timeline_capacity = RC_TIMELINE_CAPACITY;
        t->timeline_head = 0;
        t->timeline = timeline_ring;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t pages[7];
    uint64_t rss = 0;
    if (read_statm(pages) == 0)
        rss = pages[1] * (uint64_t)sysconf(_SC_PAGESIZE);
    rc_timeline_sample s = {
        .time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
        .traced = t->tracing ? t->current : 0,
        .rss = rss,
        .heap = REG.alloc.small_bytes + REG.alloc.large_bytes,
        .objects = REG.alloc.blocks_in_use + REG.alloc.large_count,
        .tracked = REG.gc.tracked,
        .reason = reason,
    };
    for (int g = 0; g < 3; g++) {
        s.collections += REG.gc.stats[g].collections;
        s.count[g] = (uint32_t)REG.gc.generations[g].count;
        s.gen_objects[g] = REG.gc.generations[g].nobjects;
    }
    s.gen_objects[3] = REG.gc.permanent.nobjects;
    /* Write the slot, then publish it: a core never shows a half sample. */
    t->timeline[t->timeline_head] = s;
    t->timeline_head = (t->timeline_head + 1) % t->timeline_capacity;
    t->timeline_total++;
}

void _rc_timeline_on_collect(int generation)
{
    take_sample(RC_SAMPLE_COLLECT | ((uint32_t)generation & 0xFFu) << 8);
}

void _rc_timeline_tick(void)
{
    rc_trace_state *t = &REG.trace;
    timeline_setup();
    if (t->timeline_interval && !(t->timeline_flags & TL_DISABLED)) {
        take_sample(RC_SAMPLE_ALLOCS);
        t->timeline_countdown = t->timeline_interval;
    } else {
        t->timeline_countdown = INT64_MAX; /* re-armed by set_interval / enable */
    }
}

size_t rc_timeline_get(rc_timeline_sample *out, size_t max)
{
    const rc_trace_state *t = &REG.trace;
    if (!t->timeline)
        return 0;
    size_t n = t->timeline_total < t->timeline_capacity ? (size_t)t->timeline_total
                                                         : t->timeline_capacity;
    if (max == 0 || !out)
        return n;
    size_t skip = n > max ? n - max : 0; /* keep the newest `max` */
    size_t k = 0;
    for (size_t i = skip; i < n; i++) {
        size_t slot = (t->timeline_head + t->timeline_capacity - n + i) % t->timeline_capacity;
        out[k++] = t->timeline[slot];
    }
    return k;
}

uint64_t rc_timeline_total(void) { return REG.trace.timeline_total; }

void rc_timeline_sample_now(void) { take_sample(RC_SAMPLE_MANUAL); }

void rc_timeline_set_interval(size_t allocations)
{
    rc_trace_state *t = &REG.trace;
    timeline_setup();
    if (allocations > UINT32_MAX)
        allocations = UINT32_MAX;
    t->timeline_interval = (uint32_t)allocations;
    t->timeline_countdown = allocations ? (int64_t)allocations : INT64_MAX;
}

size_t rc_timeline_get_interval(void)
{
    timeline_setup();
    return REG.trace.timeline_interval;
}

void rc_timeline_enable(bool on)
{
    rc_trace_state *t = &REG.trace;
    timeline_setup();
    if (on) {
        t->timeline_flags &= ~TL_DISABLED;
        t->timeline_countdown = t->timeline_interval ? (int64_t)t->timeline_interval : INT64_MAX;
    } else {
        t->timeline_flags |= TL_DISABLED;
        t->timeline_countdown = INT64_MAX;
    }
}

bool rc_timeline_is_enabled(void) { return !(REG.trace.timeline_flags & TL_DISABLED); }

void rc_timeline_clear(void)
{
    REG.trace.timeline_head = 0;
    REG.trace.timeline_total = 0;
}

void _rc_memstats_shutdown(void)
{
    rc_trace_state *t = &REG.trace;
    if (statm_fd >= 0)
        close(statm_fd);
    statm_fd = -1;
    t->timeline = NULL;
    t->timeline_capacity = 0;
    t->timeline_head = 0;
    t->timeline_total = 0;
    t->timeline_countdown = 0;
    t->timeline_interval = 0;
    t->timeline_flags = 0;
}
