/*
 * bench_engine N: build a heap of about N objects with the runtime (rings
 * of Nodes, half of them garbage cycles, ints and strings hanging off them,
 * lists, dicts and tuples, a few leaked references), then time the engine
 * over this process's own memory: load, cycles, leaks, retained.
 *
 * Prints one line per phase and a summary line:
 *   engine: N objects, E references: load X s, cycles X s, leaks X s,
 *   retained X s, total X s; peak +M MiB (B bytes/object); R reads
 * Memory is the growth of the process's peak RSS while the engine runs
 * (the heap itself is built before, so it is not counted).
 *
 * --memcpy reads memory with memcpy instead of /proc/self/mem (what a core
 * file mapped in memory costs; /proc/self/mem is one syscall per read).
 * --shape chain|wide|ring|instances: instead of the mixed heap, one chain
 * of N Nodes from a root, one list of N ints, one garbage cycle of N Nodes
 * (the shapes that break recursive or quadratic code), or N/4 class
 * instances with a __dict__ each (out-of-block reads everywhere).
 */
#include <refscope/rc.h>

#include "engine.h"
#include "registry.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *other;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, other), RC_FIELDS_END};
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

static int self_mem = -1;
static size_t self_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
    (void)ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(self_mem, (char *)buf + done, len - done, (off_t)(addr + done));
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

static size_t memcpy_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
    (void)ctx;
    memcpy(buf, (const void *)(uintptr_t)addr, len);
    return len;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static rc_object *root;

static void build(size_t n)
{
    root = rc_list_new();
    rc_root_add(&root, "root");
    size_t made = 1;
    unsigned seed = 12345;
    rc_object **recent = calloc(1024, sizeof *recent);
    size_t nrecent = 0;
    while (made < n) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % 10;
        if (k < 6) { /* a ring of 4 Nodes, each with an int or str hanging off */
            Node *ring[4];
            for (int i = 0; i < 4; i++) {
                ring[i] = rc_new(Node, &Node_type);
                rc_object *leaf = (i & 1) ? rc_int((int64_t)made) : rc_str("leaf");
                ring[i]->other = leaf;
                made += 2;
            }
            for (int i = 0; i < 4; i++)
                rc_set(&ring[i]->next, RC_OBJ(ring[(i + 1) % 4]));
            if ((seed >> 8) & 1)
                rc_list_append(root, RC_OBJ(ring[0])); /* live; else a garbage cycle */
            if (nrecent < 1024)
                recent[nrecent++] = rc_incref(ring[1]);
            for (int i = 0; i < 4; i++)
                rc_decref(ring[i]);
        } else if (k < 8) { /* a list of 3 recent objects */
            rc_object *l = rc_list_new();
            for (int i = 0; i < 3 && nrecent; i++)
                rc_list_append(l, recent[(seed >> (i * 3)) % nrecent]);
            rc_list_append(root, l);
            rc_decref(l);
            made++;
        } else if (k < 9) { /* a dict with two entries */
            rc_object *d = rc_dict_new();
            rc_object *v = rc_int(7);
            rc_dict_set(d, "a", v);
            rc_dict_set(d, "b", nrecent ? recent[seed % nrecent] : v);
            rc_decref(v);
            rc_list_append(root, d);
            rc_decref(d);
            made += 2;
        } else { /* a tuple of two, sometimes leaked */
            rc_object *a = rc_int(1);
            rc_object *t = rc_tuple_new(2, a, nrecent ? recent[seed % nrecent] : a);
            rc_decref(a);
            if (seed % 97 == 0)
                rc_incref(t); /* a missing decref */
            rc_list_append(root, t);
            rc_decref(t);
            made += 2;
        }
        if (nrecent == 1024) {
            for (size_t i = 0; i < nrecent; i++)
                rc_decref(recent[i]);
            nrecent = 0;
        }
    }
    for (size_t i = 0; i < nrecent; i++)
        rc_decref(recent[i]);
    free(recent);
}

static void build_shape(size_t n, const char *shape)
{
    root = rc_list_new();
    rc_root_add(&root, "root");
    if (!strcmp(shape, "instances")) { /* class instances: a __dict__ each */
        rc_object *cls = rc_class_new("Point", NULL, NULL, 0);
        for (size_t i = 0; i + 4 <= n; i += 4) {
            rc_object *p = rc_instance_new(cls);
            rc_object *x = rc_int((int64_t)i);
            rc_setattr(p, "x", x);
            rc_setattr(p, "y", x);
            rc_decref(x);
            rc_list_append(root, p);
            rc_decref(p);
        }
        rc_decref(cls);
        return;
    }
    if (!strcmp(shape, "wide")) {
        for (size_t i = 0; i < n; i++) {
            rc_object *x = rc_int((int64_t)i);
            rc_list_append(root, x);
            rc_decref(x);
        }
        return;
    }
    Node *first = rc_new(Node, &Node_type), *prev = first;
    for (size_t i = 1; i < n; i++) {
        Node *x = rc_new(Node, &Node_type);
        prev->next = RC_OBJ(x); /* the new reference moves into the chain */
        prev = x;
    }
    if (!strcmp(shape, "ring")) {
        prev->next = rc_incref(first);
        rc_decref(first);
    } else {
        rc_list_append(root, RC_OBJ(first));
        rc_decref(first);
    }
}

static double timed_report(rs_heap *h, const char *cmd)
{
    double t0 = now();
    int st;
    char *s = rs_heap_report(h, cmd, &st);
    double t = now() - t0;
    if (st == 2) {
        fprintf(stderr, "bench_engine: %s: %s", cmd, s);
        exit(1);
    }
    rs_free(s);
    return t;
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    bool use_memcpy = false;
    const char *shape = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--memcpy"))
            use_memcpy = true;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape = argv[++i];
        else
            n = strtoull(argv[i], NULL, 10);
    }
    rc_init();
    rc_gc_disable();
    double tb = now();
    if (shape)
        build_shape(n, shape);
    else
        build(n);
    double build_s = now() - tb;
    self_mem = open("/proc/self/mem", O_RDONLY);
    if (self_mem < 0) {
        perror("/proc/self/mem");
        return 1;
    }
    long rss0 = maxrss_kib();

    rs_error err = {{0}};
    rs_memory mem = {use_memcpy ? memcpy_read : self_read, NULL};
    double t0 = now();
    rs_heap *h = rs_heap_new(mem, (uint64_t)(uintptr_t)&rc_debug_registry, &err);
    if (!h || rs_heap_load(h, NULL, NULL, &err) != 0) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    double load_s = now() - t0;
    double cyc_s = timed_report(h, "cycles --limit 10");
    double leak_s = timed_report(h, "leaks --limit 10");
    double ret_s = timed_report(h, "retained --limit 10");
    if (shape) { /* the reports that walk one long structure */
        timed_report(h, "cycles --limit 1");
        timed_report(h, "garbage");
        timed_report(h, "roots");
        timed_report(h, "check");
        char cmd[64];
        snprintf(cmd, sizeof cmd, "path 0x%llx", (unsigned long long)(uintptr_t)rc_list_get(root, 0));
        if (rc_list_len(root))
            timed_report(h, cmd);
    }
    double total = now() - t0;
    long rss1 = maxrss_kib();

    int st;
    char *s = rs_heap_report(h, "summary --json", &st);
    /* pick the counts out of the summary */
    long long objects = 0, refs = 0, reads = 0;
    const char *p;
    if ((p = strstr(s, "\"objects\": ")))
        objects = atoll(p + 11);
    if ((p = strstr(s, "\"references\": ")))
        refs = atoll(p + 14);
    if ((p = strstr(s, "\"reads\": ")))
        reads = atoll(p + 9);
    rs_free(s);
    double extra = (double)(rss1 - rss0) * 1024.0;
    printf("heap built in %.2f s\n", build_s);
    printf("engine: %lld objects, %lld references: load %.3f s, cycles %.3f s, leaks %.3f s, "
           "retained %.3f s, total %.3f s; peak +%.1f MiB (%.0f bytes/object); %lld reads (%s)\n",
           objects, refs, load_s, cyc_s, leak_s, ret_s, total, extra / (1 << 20),
           objects ? extra / (double)objects : 0.0, reads,
           use_memcpy ? "memcpy" : "/proc/self/mem");
    rs_heap_free(h);
    return 0;
}
