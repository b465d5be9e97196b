/*
 * bench_malloc / bench_mimalloc WORKLOAD N [--size S] [--batch B]: raw
 * small-object allocation, the floor the runtime's allocator is measured
 * against. Built twice from this file: with glibc's malloc/free, and with
 * -DBENCH_MIMALLOC with mimalloc's mi_malloc/mi_free.
 *
 *   alloc N    allocate and free N blocks of --size (40) bytes, in batches
 *              of --batch (1000) live blocks, as bench_rc alloc does with
 *              Nodes; each block gets what a Node's constructor writes
 *              (refcount, flags, type, two references), so the same cache
 *              lines are touched.
 *   memory N   N live blocks of --size bytes: bytes per block from RSS.
 *
 * Output: one line, see bench.h.
 */
#include "bench.h"

#include <gnu/libc-version.h>

#ifdef BENCH_MIMALLOC
#include <mimalloc.h>
#define PEER "mimalloc"
#define bench_malloc(n) mi_malloc(n)
#define bench_free(p) mi_free(p)
#else
#define PEER "glibc"
#define bench_malloc(n) malloc(n)
#define bench_free(p) free(p)
#endif

/* What a Node constructor writes: the words of gc head, object head and the
 * two references (the block is at least 40 bytes, a Node's size). */
typedef struct fake_node {
    uint32_t gc_next, gc_prev;
    uint32_t refcnt, info;
    const void *type;
    void *next, *other;
} fake_node;

static const char fake_type[1];

static const char *peer_version(void)
{
    static char v[32];
#ifdef BENCH_MIMALLOC
    int mv = mi_version(); /* 209 for 2.0.9 */
    snprintf(v, sizeof v, "%d.%d.%d", mv / 100, mv / 10 % 10, mv % 10);
#else
    snprintf(v, sizeof v, "%s", gnu_get_libc_version());
#endif
    return v;
}

static BENCH_REGION void bench_region_alloc(size_t n, size_t batch, size_t size, void **slots,
                                            void *parent)
{
    for (size_t done = 0; done < n; done += batch) {
        size_t b = n - done < batch ? n - done : batch;
        for (size_t i = 0; i < b; i++) {
            fake_node *o = bench_malloc(size);
            if (!o)
                abort();
            o->gc_next = o->gc_prev = 0;
            o->refcnt = 1;
            o->info = 0;
            o->type = fake_type;
            o->next = parent;
            o->other = parent;
            slots[i] = o;
        }
        bench_keep(slots);
        for (size_t i = 0; i < b; i++)
            bench_free(slots[i]);
    }
}

int main(int argc, char **argv)
{
    static const char usage[] = "bench_" PEER " alloc|memory N [--size S] [--batch B]";
    if (argc < 3)
        bench_usage(usage);
    const char *w = argv[1];
    size_t n = bench_parse_count(argv[2]);
    size_t size = 40, batch = 1000;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = bench_parse_count(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = bench_parse_count(argv[++i]);
        else
            bench_usage(usage);
    }
    if (size < sizeof(fake_node))
        size = sizeof(fake_node);
    static char parent[64];

    if (strcmp(w, "alloc") == 0) {
        void **slots = calloc(batch, sizeof *slots);
        bench_region_alloc(batch, batch, size, slots, parent);
        bench_time t = bench_start();
        bench_region_alloc(n, batch, size, slots, parent);
        t = bench_stop(t);
        printf("bench=alloc peer=%s n=%zu batch=%zu size=%zu " BENCH_TIME_FMT " version=%s\n",
               PEER, n, batch, size, BENCH_TIME_ARGS(t), peer_version());
        free(slots);
    } else if (strcmp(w, "memory") == 0) {
        void **all = malloc(n * sizeof *all);
        memset(all, 0xff, n * sizeof *all); /* resident before the baseline */
        uint64_t rss0 = bench_rss();
        bench_time t = bench_start();
        for (size_t i = 0; i < n; i++) {
            fake_node *o = bench_malloc(size);
            if (!o)
                abort();
            memset(o, 0, size);
            all[i] = o;
        }
        t = bench_stop(t);
        uint64_t rss1 = bench_rss();
        printf("bench=memory peer=%s n=%zu size=%zu " BENCH_TIME_FMT " rss_bytes=%.2f\n", PEER, n,
               size, BENCH_TIME_ARGS(t), (double)(rss1 - rss0) / (double)n);
        for (size_t i = 0; i < n; i++)
            bench_free(all[i]);
        free(all);
    } else {
        bench_usage(usage);
    }
    return 0;
}
