/*
 * gc_control: driving the cycle collector the way Python's gc module does.
 *
 * Teaches:
 *   - gc.enable() / gc.disable() / gc.isenabled(): automatic collection can
 *     be switched off (refcounting still frees everything that is not in a
 *     cycle; only cycles wait);
 *   - gc.get_threshold() is (700, 10, 10): 700 new container objects start
 *     a collection of generation 0, every 10 of those one of generation 1,
 *     every 10 of those one of generation 2;
 *   - gc.get_count(): new objects counted in generation 0, and collections
 *     of the younger generation counted in 1 and 2 -- after gc.collect(0)
 *     the counts are (0, 1, 0), after gc.collect(1) (0, 0, 1);
 *   - gc.get_stats(): per generation, how many collections ran, how many
 *     objects they collected and how many were uncollectable, printed like
 *     Python's list of dicts, before and after collections;
 *   - gc.set_threshold() and gc.callbacks: a lower threshold makes the
 *     collector run on its own, and a callback sees each run;
 *   - gc.set_debug(gc.DEBUG_STATS) prints what each collection did;
 *   - gc.garbage: normally empty; with DEBUG_SAVEALL every unreachable
 *     object is kept there instead of being freed (how you look at what a
 *     collection found).
 *
 * The Python it mirrors:
 *
 *     gc.disable(); gc.enable(); gc.isenabled()
 *     gc.get_threshold(); gc.get_count(); gc.get_stats()
 *     for _ in range(5): a = Node(); b = Node(); a.next = b; b.next = a
 *     gc.collect(0); gc.get_count(); gc.collect(1); gc.get_count()
 *     gc.set_threshold(10, 10, 10); gc.callbacks.append(report)
 *     gc.set_debug(gc.DEBUG_STATS); gc.collect()
 *     gc.set_debug(gc.DEBUG_SAVEALL); ...; gc.collect(); gc.garbage
 *
 * The leak point (--wait, --abort-at-end): two Nodes kept in gc.garbage by
 * DEBUG_SAVEALL (`refscope CORE garbage` lists them).
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

/* A container with one reference: two of them make a cycle. */
typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
} Node;

static const rc_field node_fields[] = {
    RC_REF(Node, next),
    RC_FIELDS_END,
};

static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

/* a = Node(); b = Node(); a.next = b; b.next = a; del a, b */
static SAMPLE_NOINLINE void make_cycles(int pairs)
{
    for (int i = 0; i < pairs; i++) {
        Node *a = rc_new(Node, &Node_type);
        Node *b = rc_new(Node, &Node_type);
        rc_set(&a->next, RC_OBJ(b));
        rc_set(&b->next, RC_OBJ(a));
        rc_decref(a);
        rc_decref(b);
    }
}

static const char *py_bool(bool b) { return b ? "True" : "False"; }

static void print_count(void)
{
    size_t c[3];
    rc_gc_get_count(c);
    printf("gc.get_count() = (%zu, %zu, %zu)\n", c[0], c[1], c[2]);
}

/* print(gc.get_stats()), laid out as Python's pprint shows it */
static void print_stats(void)
{
    rc_gc_stats st[3];
    rc_gc_get_stats(st);
    sample_py("gc.get_stats()");
    for (int i = 0; i < 3; i++)
        printf("%s{'collections': %zu, 'collected': %zu, 'uncollectable': %zu}%s\n",
               i == 0 ? "[" : " ", st[i].collections, st[i].collected, st[i].uncollectable,
               i == 2 ? "]" : ",");
}

/* print(gc.garbage): the objects by type and address, as Python's repr */
static void print_garbage(void)
{
    rc_object *garbage = rc_gc_garbage();
    size_t n = rc_list_len(garbage);
    printf("gc.garbage = [");
    for (size_t i = 0; i < n; i++) {
        rc_object *o = rc_list_get(garbage, i);
        printf("%s<%s %p>", i ? ", " : "", rc_type_name(o), (void *)o);
    }
    printf("]\n");
    printf("len(gc.garbage) = %zu\n", n);
}

/* gc.callbacks: called with "start" and "stop" around every collection */
static void report(const char *phase, int generation, size_t collected, size_t uncollectable,
                   void *data)
{
    (void)data;
    if (phase[1] == 't' && phase[2] == 'o') /* "stop" */
        printf("callback: stop, generation %d, collected %zu, uncollectable %zu\n", generation,
               collected, uncollectable);
    else
        printf("callback: start, generation %d\n", generation);
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "gc_control: gc.enable/disable, thresholds, counts, "
                               "get_stats() and the garbage list");
    rc_init();
    rc_gc_set_debug_stream(stdout); /* DEBUG_* lines in order with ours */

    printf("-- switching the collector off and on\n");
    printf("gc.isenabled() = %s\n", py_bool(rc_gc_isenabled()));
    sample_py("gc.disable()");
    rc_gc_disable();
    printf("gc.isenabled() = %s\n", py_bool(rc_gc_isenabled()));
    sample_py("gc.enable()");
    rc_gc_enable();
    printf("gc.isenabled() = %s\n", py_bool(rc_gc_isenabled()));

    printf("\n-- thresholds, counts and statistics\n");
    int th[3];
    rc_gc_get_threshold(th);
    printf("gc.get_threshold() = (%d, %d, %d)\n", th[0], th[1], th[2]);
    print_stats(); /* a fresh process: nothing has run yet */
    print_count(); /* the runtime's own containers: globals, gc.garbage, ... */
    sample_py("gc.collect()");
    printf("gc.collect() = %zu\n", rc_gc_collect(2)); /* nothing to free: all reachable */
    print_count(); /* a known state: every count back to 0 */

    printf("\n-- 5 pairs of Nodes that refer to each other, with the collector off\n");
    sample_py("gc.disable()");
    rc_gc_disable();
    make_cycles(5);
    print_count(); /* 10 new containers, none freed */
    sample_py("gc.collect(0)");
    printf("gc.collect(0) = %zu\n", rc_gc_collect(0));
    print_count(); /* generation 0 emptied; one more young collection counted in 1 */
    sample_py("gc.collect(1)");
    printf("gc.collect(1) = %zu\n", rc_gc_collect(1));
    print_count();
    print_stats();

    printf("\n-- a low threshold: the collector runs by itself\n");
    sample_py("gc.set_threshold(10, 10, 10)");
    rc_gc_set_threshold(10, 10, 10);
    rc_gc_get_threshold(th);
    printf("gc.get_threshold() = (%d, %d, %d)\n", th[0], th[1], th[2]);
    sample_py("gc.callbacks.append(report)");
    rc_gc_callback_add(report, NULL);
    sample_py("gc.enable()");
    rc_gc_enable();
    printf("making 10 pairs (20 Nodes): the 11th new Node starts a collection\n");
    make_cycles(10);
    print_count();
    rc_gc_callback_remove(report, NULL);
    rc_gc_set_threshold(700, 10, 10);
    sample_py("gc.set_threshold(700, 10, 10)");

    printf("\n-- DEBUG_STATS: what each collection did\n");
    sample_py("gc.set_debug(gc.DEBUG_STATS)");
    rc_gc_set_debug(RC_DEBUG_STATS);
    sample_py("gc.collect()");
    fflush(stdout);
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    rc_gc_set_debug(0);
    print_stats();

    printf("\n-- gc.garbage\n");
    print_garbage();
    sample_py("gc.set_debug(gc.DEBUG_SAVEALL)");
    rc_gc_set_debug(RC_DEBUG_SAVEALL);
    make_cycles(1);
    sample_py("gc.collect()");
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    printf("DEBUG_SAVEALL kept what the collection found instead of freeing it:\n");
    print_garbage();

    sample_leak_planted();

    sample_py("gc.set_debug(0); del gc.garbage[:]");
    rc_gc_set_debug(0);
    rc_list_clear(rc_gc_garbage()); /* the pair is a cycle again, unreachable */
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    print_garbage();

    rc_shutdown();
    return 0;
}
