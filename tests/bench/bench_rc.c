/*
 * bench_rc WORKLOAD N [options]: one workload on the refscope runtime.
 *
 * The object of every workload is a Node: a tracked object with two
 * references (next, other), 8 B gc head + 16 B object head + 16 B of
 * references = 40 B (a CPython instance of a class with two __slots__ is
 * 48 B: its gc head is two pointers). bench_py.c builds the same graphs with CPython objects and
 * bench_malloc.c allocates the same bytes with malloc; the runner compares
 * them.
 *
 *   alloc N      allocate and free N Nodes in batches of --batch (1000) live
 *                objects; each Node refers to a long-lived tracked parent and
 *                to a shared int, as a tuple (parent_list, 1) does in CPython.
 *                The collector is on with its default thresholds (it runs a
 *                generation-0 collection every 700 allocations, as CPython
 *                does). --trace: the same with rc_trace_start(1) (tracemalloc
 *                with one frame, its default).
 *   cycles N     N/2 unreachable two-Node cycles: time one rc_gc_collect(2).
 *   reachable N  a root list of N Nodes, each referring to the one before it
 *                and to a shared int, no garbage: one warm-up collection,
 *                then the median of --repeat (3) full collections.
 *   chain N      a chain of N Nodes (each refers to the one before it) held
 *                by its last Node only: time the rc_decref that frees it all.
 *   memory N     N live Nodes: bytes per Node from the allocator's counters
 *                (arena bytes, pool headers included) and from RSS.
 *   mixed N      the inspector's heap (below): time one full collection.
 *   core N       build the inspector's heap, then abort() with a core dump in
 *                the current directory (RLIMIT_CORE raised here).
 *
 * The inspector's heap ("mixed"), N objects in all: a root list holding N/2
 * Nodes chained as in `reachable`, and N/4 unreachable two-Node cycles.
 *
 * Output: one line, see bench.h.
 */
#include <refscope/rc.h>

#include "bench.h"

#include <signal.h>
#include <sys/resource.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *other;
} Node;

static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, other), RC_FIELDS_END};
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

/* A Node holding new references to next and other (either may be NULL). */
static inline Node *node_new(rc_object *next, rc_object *other)
{
    Node *o = rc_new(Node, &Node_type);
    if (next)
        o->next = rc_incref(next);
    if (other)
        o->other = rc_incref(other);
    return o;
}

/* ---- alloc ------------------------------------------------------------------- */

static BENCH_REGION void bench_region_alloc(size_t n, size_t batch, Node **slots,
                                            rc_object *parent, rc_object *leaf)
{
    for (size_t done = 0; done < n; done += batch) {
        size_t b = n - done < batch ? n - done : batch;
        for (size_t i = 0; i < b; i++)
            slots[i] = node_new(parent, leaf);
        for (size_t i = 0; i < b; i++)
            rc_decref(slots[i]);
    }
}

static void run_alloc(size_t n, size_t batch, bool trace)
{
    Node **slots = calloc(batch, sizeof *slots);
    rc_object *parent = RC_OBJ(node_new(NULL, NULL));
    rc_object *leaf = rc_int(1);
    if (trace && rc_trace_start(1) != 0) {
        fprintf(stderr, "bench_rc: rc_trace_start: %s\n", rc_last_error());
        exit(1);
    }
    /* warm up: the pools and the collector's lists exist before the clock starts */
    bench_region_alloc(batch, batch, slots, parent, leaf);
    bench_time t = bench_start();
    bench_region_alloc(n, batch, slots, parent, leaf);
    t = bench_stop(t);
    size_t current = 0, peak = 0;
    if (trace)
        rc_trace_get_memory(&current, &peak);
    rc_gc_stats st[3];
    rc_gc_get_stats(st);
    printf("bench=alloc peer=refscope n=%zu batch=%zu trace=%d " BENCH_TIME_FMT
           " collections0=%zu collections1=%zu collections2=%zu traced_peak=%zu\n",
           n, batch, trace ? 1 : 0, BENCH_TIME_ARGS(t), st[0].collections,
           st[1].collections, st[2].collections, peak);
    rc_trace_stop();
    rc_decref(parent);
    rc_decref(leaf);
    free(slots);
}

/* ---- the collector ----------------------------------------------------------- */

/* n/2 two-Node cycles nobody refers to. */
static void make_cycles(size_t n, rc_object *leaf)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        Node *a = node_new(NULL, leaf);
        Node *b = node_new(RC_OBJ(a), leaf);
        a->next = rc_incref(b);
        rc_decref(a);
        rc_decref(b);
    }
}

/* A root list of n Nodes, each referring to the previous one. */
static rc_object *make_reachable(size_t n, rc_object *leaf)
{
    rc_object *list = rc_list_new();
    rc_object *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        Node *o = node_new(prev, leaf);
        rc_list_append(list, RC_OBJ(o));
        rc_decref(o);
        prev = RC_OBJ(o);
    }
    return list;
}

static BENCH_REGION size_t bench_region_collect(void) { return rc_gc_collect(2); }

static void run_cycles(size_t n)
{
    rc_object *leaf = rc_int(1);
    rc_gc_disable();
    make_cycles(n, leaf);
    rc_gc_enable();
    bench_time t = bench_start();
    size_t collected = bench_region_collect();
    t = bench_stop(t);
    printf("bench=cycles peer=refscope n=%zu " BENCH_TIME_FMT " collected=%zu\n", n,
           BENCH_TIME_ARGS(t), collected);
    rc_decref(leaf);
}

static void run_reachable(size_t n, int repeat)
{
    rc_object *leaf = rc_int(1);
    rc_gc_disable();
    rc_object *list = make_reachable(n, leaf);
    rc_root_add(&list, "bench.list");
    rc_gc_enable();
    bench_time first = bench_start();
    size_t collected = bench_region_collect(); /* warm-up: also merges the young */
    first = bench_stop(first);
    bench_time times[16];
    if (repeat > 16)
        repeat = 16;
    for (int i = 0; i < repeat; i++) {
        times[i] = bench_start();
        collected += bench_region_collect();
        times[i] = bench_stop(times[i]);
    }
    qsort(times, (size_t)repeat, sizeof times[0], bench_time_cmp);
    printf("bench=reachable peer=refscope n=%zu " BENCH_TIME_FMT " first_cpu_ns=%llu "
           "collected=%zu\n",
           n, BENCH_TIME_ARGS(times[repeat / 2]), (unsigned long long)first.cpu_ns, collected);
    rc_root_remove(&list);
    rc_decref(list);
    rc_decref(leaf);
}

/* ---- refcount death of a chain ------------------------------------------------ */

static BENCH_REGION void bench_region_decref(rc_object *o) { rc_decref(o); }

static void run_chain(size_t n)
{
    rc_object *leaf = rc_int(1);
    rc_gc_disable();
    rc_object *last = NULL;
    for (size_t i = 0; i < n; i++) {
        Node *o = node_new(last, leaf);
        rc_xdecref(last); /* the chain holds it now */
        last = RC_OBJ(o);
    }
    rc_mallocstats st;
    rc_mallocstats_get(&st);
    uint64_t before = st.blocks_in_use;
    bench_time t = bench_start();
    bench_region_decref(last);
    t = bench_stop(t);
    rc_mallocstats_get(&st);
    printf("bench=chain peer=refscope n=%zu " BENCH_TIME_FMT " freed=%llu\n", n,
           BENCH_TIME_ARGS(t), (unsigned long long)(before - st.blocks_in_use));
    rc_gc_enable();
    rc_decref(leaf);
}

/* ---- memory --------------------------------------------------------------------- */

static void run_memory(size_t n)
{
    rc_object *leaf = rc_int(1);
    rc_object *parent = RC_OBJ(node_new(NULL, NULL));
    Node **all = malloc(n * sizeof *all);
    /* Resident before the baseline. Not with 0: gcc turns malloc + memset 0
     * into calloc, which touches nothing. */
    memset(all, 0xff, n * sizeof *all);
    rc_gc_disable();
    rc_mallocstats st0, st1;
    rc_mallocstats_get(&st0);
    uint64_t rss0 = bench_rss();
    bench_time t = bench_start();
    for (size_t i = 0; i < n; i++)
        all[i] = node_new(parent, leaf);
    t = bench_stop(t);
    uint64_t rss1 = bench_rss();
    rc_mallocstats_get(&st1);
    /* Arena bytes: what the allocator took from the system, headers and all;
     * block bytes: the blocks the objects occupy. */
    double arena = (double)(st1.arena_bytes + st1.large_bytes - st0.arena_bytes - st0.large_bytes);
    double used_pools = (double)(st1.pools_in_use - st0.pools_in_use) * 16384.0;
    double blocks = (double)(st1.allocated_bytes - st0.allocated_bytes);
    printf("bench=memory peer=refscope n=%zu " BENCH_TIME_FMT " sizeof=%zu block_bytes=%.2f "
           "pool_bytes=%.2f arena_bytes=%.2f rss_bytes=%.2f\n",
           n, BENCH_TIME_ARGS(t), rc_sizeof(RC_OBJ(all[0])), blocks / (double)n,
           used_pools / (double)n, arena / (double)n, (double)(rss1 - rss0) / (double)n);
    for (size_t i = 0; i < n; i++)
        rc_decref(all[i]);
    free(all);
    rc_decref(parent);
    rc_decref(leaf);
    rc_gc_enable();
}

/* ---- the inspector's heap --------------------------------------------------------- */

static rc_object *mixed_list; /* a registered root, and a C global for DWARF */

static void make_mixed(size_t n, rc_object *leaf)
{
    rc_gc_disable();
    mixed_list = make_reachable(n / 2, leaf);
    rc_root_add(&mixed_list, "bench.reachable");
    make_cycles(n - n / 2, leaf);
    rc_gc_enable();
}

static void run_mixed(size_t n)
{
    rc_object *leaf = rc_int(1);
    make_mixed(n, leaf);
    bench_time t = bench_start();
    size_t collected = bench_region_collect();
    t = bench_stop(t);
    printf("bench=mixed peer=refscope n=%zu " BENCH_TIME_FMT " collected=%zu\n", n,
           BENCH_TIME_ARGS(t), collected);
    rc_root_remove(&mixed_list);
    rc_decref(mixed_list);
    rc_decref(leaf);
}

static void run_core(size_t n)
{
    rc_object *leaf = rc_int(1);
    make_mixed(n, leaf);
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_CORE, &rl) != 0) {
        getrlimit(RLIMIT_CORE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_CORE, &rl);
    }
    printf("bench=core peer=refscope n=%zu pid=%d\n", n, (int)getpid());
    fflush(stdout);
    rc_debug_checkpoint("bench core");
    signal(SIGABRT, SIG_DFL);
    abort();
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "bench_rc alloc|cycles|reachable|chain|memory|mixed|core N "
        "[--batch B] [--trace] [--repeat R]";
    if (argc < 3)
        bench_usage(usage);
    const char *w = argv[1];
    size_t n = bench_parse_count(argv[2]);
    size_t batch = 1000;
    int repeat = 3;
    bool trace = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--trace") == 0)
            trace = true;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = bench_parse_count(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = (int)bench_parse_count(argv[++i]);
        else
            bench_usage(usage);
    }
    rc_init();
    if (strcmp(w, "alloc") == 0)
        run_alloc(n, batch, trace);
    else if (strcmp(w, "cycles") == 0)
        run_cycles(n);
    else if (strcmp(w, "reachable") == 0)
        run_reachable(n, repeat);
    else if (strcmp(w, "chain") == 0)
        run_chain(n);
    else if (strcmp(w, "memory") == 0)
        run_memory(n);
    else if (strcmp(w, "mixed") == 0)
        run_mixed(n);
    else if (strcmp(w, "core") == 0)
        run_core(n);
    else
        bench_usage(usage);
    rc_shutdown();
    return 0;
}
