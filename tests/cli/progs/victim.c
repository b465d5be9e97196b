/*
 * victim.c -- a program with one of each thing `refscope` is asked about,
 * built three ways (static runtime, shared runtime, non-PIE) for tests/cli.
 *
 * It prints "fact NAME VALUE" lines (addresses, counts) on stdout so the
 * tests know what the reports must say, then, by its first argument:
 *
 *   abort   dies by abort(): a kernel core
 *   wait    prints "ready", waits for a line on stdin (gcore and --pid look
 *           at it meanwhile), checks nothing changed, prints "final: ..."
 *           and exits 0
 *   diff    forks a child that aborts in ./p1 (core 1), grows the heap by
 *           GROWTH objects of type Growth, then aborts in ./p2 (core 2)
 *   big     adds BIG Nodes in a chain held by the static global `big` (each
 *           also refers to one shared int) and BIG/10 unreachable pairs,
 *           then aborts in ./big: a heap the engine loads and analyses on
 *           two threads
 *   big-gap, big-short   the same, the block count in the header of the
 *           pool of the lowest Node one too high / too low: the engine's
 *           guess of where the second thread's objects go is wrong
 *   big-badpool   the same, the size class of the highest Node's pool
 *           corrupt: the second thread meets a warning and gives up
 *
 * What it plants (the tests find lines by the markers in comments):
 *   - a static global `cache` (Node chain) and a member of a static struct
 *     `app.current`, neither registered: only DWARF names them;
 *   - `tree`, a static global holding a known graph: tree -> list -> 3
 *     leaves, each leaf -> bytes(1000), for `path` and `retained`;
 *   - a closure "process" capturing 'huge_data' (1 MiB of bytes), held by
 *     the globals dict under "process";
 *   - an unreachable cycle A -> B -> C -> A of Nodes (the collector is
 *     disabled, so it stays);
 *   - two LegacyNodes in a cycle: a full collection puts them in garbage;
 *   - a Node with a missing decref: refcount 2, one holder (`leaks`);
 *   - (abort mode) a Node only a local variable of abort_holding() holds.
 *
 * All of it is built in helper functions so that main's frame holds no
 * object pointers: what the stack holds is not what the tests look at.
 */
#include <refscope/rc.h>

#include "registry.h" /* rc_pool: the big-gap and big-short modes */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KEEP __attribute__((used)) /* a store-only static must survive -O2 */
#define GROWTH 500

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *data;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, data), RC_FIELDS_END};
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

static void legacy_del(rc_object *self) { (void)self; }
static rc_type LegacyNode_type = {.name = "LegacyNode", .size = sizeof(Node),
                                  .fields = node_fields, .legacy_del = legacy_del};

static rc_type Growth_type = {.name = "Growth", .size = sizeof(Node), .fields = node_fields};

/* The roots only DWARF knows about. */
KEEP static Node *cache;
KEEP static struct app_state {
    int verbose;
    Node *current;
    rc_object *handlers[2];
} app;
KEEP static Node *tree;
KEEP static rc_object *holders; /* a list: holds the leaked Node once */
KEEP static rc_object *growth;  /* a list: what `diff` sees grow */

static void fact(const char *name, const void *p) { printf("fact %s %p\n", name, p); }
static void fact_n(const char *name, size_t n) { printf("fact %s %zu\n", name, n); }

static NOINLINE Node *node(rc_object *next, rc_object *data)
{
    Node *n = rc_new(Node, &Node_type); /* SITE node */
    rc_set(&n->next, next);
    rc_set(&n->data, data);
    return n;
}

static NOINLINE void make_globals(void)
{
    Node *second = node(NULL, NULL);
    cache = node(RC_OBJ(second), NULL);
    fact("cache", cache);
    fact("cache_next", second);
    rc_decref(second);

    app.verbose = 1;
    app.current = node(NULL, NULL);
    fact("app_current", app.current);
}

static NOINLINE void make_tree(void)
{
    rc_object *list = rc_list_new();
    size_t bytes = 0;
    tree = node(NULL, list);
    bytes += rc_sizeof(RC_OBJ(tree)) + rc_sizeof(list);
    for (int i = 0; i < 3; i++) {
        rc_object *data = rc_bytes(1000);
        Node *leaf = node(NULL, data);
        rc_list_append(list, RC_OBJ(leaf));
        bytes += rc_sizeof(RC_OBJ(leaf)) + rc_sizeof(data);
        char name[32];
        snprintf(name, sizeof name, "tree_leaf%d", i);
        fact(name, leaf);
        snprintf(name, sizeof name, "tree_leaf%d_data", i);
        fact(name, data);
        rc_decref(data);
        rc_decref(leaf);
    }
    fact("tree", tree);
    fact("tree_list", list);
    fact_n("tree_retained_objects", 8);
    fact_n("tree_retained_bytes", bytes);
    rc_decref(list);
}

static rc_object *process_fn(rc_object *self, rc_object *arg)
{
    (void)arg;
    rc_object *data = rc_closure_cell(self, "huge_data");
    return rc_int((int64_t)rc_bytes_len(data));
}

static NOINLINE void make_closure(void)
{
    static const char *const names[] = {"huge_data"};
    rc_object *huge = rc_bytes((size_t)1 << 20);
    rc_object *values[] = {huge};
    rc_object *process = rc_closure_new(process_fn, "process", 1, names, values);
    rc_dict_set(rc_globals(), "process", process);
    fact("process", process);
    fact("huge_data", huge);
    rc_decref(process);
    rc_decref(huge);
}

static NOINLINE void make_legacy_garbage(void)
{
    Node *a = rc_new(Node, &LegacyNode_type);
    Node *b = rc_new(Node, &LegacyNode_type);
    rc_set(&a->next, RC_OBJ(b));
    rc_set(&b->next, RC_OBJ(a));
    fact("legacy_a", a);
    fact("legacy_b", b);
    rc_decref(a);
    rc_decref(b);
    fact_n("legacy_collected", rc_gc_collect(2)); /* both go to the garbage list */
}

static NOINLINE void make_cycle(void)
{
    Node *a = node(NULL, NULL), *b = node(NULL, NULL), *c = node(NULL, NULL);
    rc_set(&a->next, RC_OBJ(b));
    rc_set(&b->next, RC_OBJ(c));
    rc_set(&c->next, RC_OBJ(a));
    fact("cycle_a", a);
    fact("cycle_b", b);
    fact("cycle_c", c);
    rc_decref(a);
    rc_decref(b);
    rc_decref(c);
}

static NOINLINE void make_leak(void)
{
    holders = rc_list_new();
    Node *n = rc_new(Node, &Node_type); /* LEAK-SITE: this Node's decref is missing */
    rc_list_append(holders, RC_OBJ(n));
    fact("leaked", n);
    /* missing: rc_decref(n); */
}

static NOINLINE void make_growth(size_t n)
{
    if (!growth)
        growth = rc_list_new();
    for (size_t i = 0; i < n; i++) {
        Node *g = rc_new(Node, &Growth_type); /* GROWTH-SITE */
        rc_list_append(growth, RC_OBJ(g));
        rc_decref(g);
    }
}

#define BIG 300000

static KEEP rc_object *big;

static NOINLINE void make_big(size_t n)
{
    rc_object *shared = rc_int(424242);
    for (size_t i = 0; i < n; i++) {
        Node *x = rc_new(Node, &Node_type);
        x->next = big; /* (takes the reference) */
        x->data = rc_incref(shared);
        big = RC_OBJ(x);
    }
    for (size_t i = 0; i < n / 10; i++) {
        Node *a = rc_new(Node, &Node_type), *b = rc_new(Node, &Node_type);
        a->next = RC_OBJ(b);
        b->next = RC_OBJ(a);
    }
    rc_decref(shared);
}

/* The pool of the lowest (or highest) Node of `big`. */
static NOINLINE rc_pool *big_pool(bool highest)
{
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (rc_object *o = big; o; o = ((Node *)o)->next) {
        if ((uintptr_t)o < low)
            low = (uintptr_t)o;
        if ((uintptr_t)o > high)
            high = (uintptr_t)o;
    }
    return (rc_pool *)((highest ? high : low) & ~(uintptr_t)(RC_POOL_SIZE - 1));
}

/* Refcounts the `wait` mode checks again after being looked at. */
static NOINLINE void state(intptr_t out[4])
{
    out[0] = rc_refcount(cache);
    out[1] = rc_refcount(app.current);
    out[2] = rc_refcount(tree);
    out[3] = (intptr_t)rc_list_len(holders);
}

static NOINLINE void build(void)
{
    rc_init();
    rc_gc_disable(); /* the planted cycle must outlive any automatic collection */
    make_globals();
    make_tree();
    make_closure();
    make_legacy_garbage();
    make_cycle();
    make_leak();
    make_growth(10);
    fflush(stdout);
}

static NOINLINE void abort_in(const char *dir)
{
    mkdir(dir, 0700);
    if (chdir(dir) != 0) {
        perror(dir);
        exit(1);
    }
    fflush(stdout);
    abort();
}

/* A Node only this frame holds: `path` must name the frame. */
static NOINLINE void abort_holding(void)
{
    Node *volatile local = node(NULL, NULL); /* volatile: kept in this frame */
    fact("stack_local", local);
    puts("aborting");
    abort_in(".");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "abort";
    setvbuf(stdout, NULL, _IOLBF, 0);
    build();
    fact_n("pid", (size_t)getpid());

    if (strcmp(mode, "abort") == 0) {
        abort_holding();
    } else if (strcmp(mode, "wait") == 0) {
        /* gcore and refscope --pid are our siblings, not our parents: with
         * Yama's ptrace_scope 1 they may attach only if we say so. */
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
        intptr_t before[4], after[4];
        state(before);
        puts("ready");
        fflush(stdout);
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            return 3;
        state(after);
        printf("final: %s, collected %zu, cache refcount %ld, app.current refcount %ld\n",
               memcmp(before, after, sizeof before) == 0 ? "unchanged" : "CHANGED",
               rc_gc_collect(2), (long)rc_refcount(cache), (long)rc_refcount(app.current));
        return 0;
    } else if (strncmp(mode, "big", 3) == 0) {
        make_big(BIG);
        if (strcmp(mode, "big-gap") == 0)
            big_pool(false)->nused += 1;
        else if (strcmp(mode, "big-short") == 0)
            big_pool(false)->nused -= 1;
        else if (strcmp(mode, "big-badpool") == 0)
            big_pool(true)->szidx = 0x7fff;
        fact_n("big", BIG);
        abort_in("big");
    } else if (strcmp(mode, "diff") == 0) {
        fflush(stdout);
        pid_t child = fork();
        if (child < 0)
            return 1;
        if (child == 0)
            abort_in("p1");
        int status;
        waitpid(child, &status, 0);
        make_growth(GROWTH);
        fact_n("growth", GROWTH);
        abort_in("p2");
    }
    fprintf(stderr, "victim: unknown mode %s\n", mode);
    return 2;
}
