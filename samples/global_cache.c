/*
 * global_cache: a module-level list that every call appends to and nothing
 * ever empties -- memory that grows for as long as the program runs.
 *
 * Teaches: reference counting frees an object as soon as nothing refers to
 * it, and the cycle collector frees what nothing *reachable* refers to; a
 * global refers to everything you put in it, forever. Neither can free
 * what a global still holds: gc.collect() returns 0, and the traced memory
 * grows with every call. It is not a bug of the memory manager but of the
 * program, so the tools have to show *who* holds the memory: here the C
 * global `results`, whose items were all made at one line of compute().
 *
 * The Python it mirrors (the lesson's "global lists that grow forever"):
 *
 *     results = []                       # global!
 *     def process(data):
 *         results.append(compute(data))  # never cleaned up
 *
 *     for request in range(3000):
 *         process(request)
 *
 * The fix: keep results where their user is (return them, keep a local),
 * or bound the cache (drop the oldest, or use a weak cache: weak_cache.c).
 *
 * The leak: 3000 Result objects (type Result, made in compute()), each
 * with a 1000-byte payload, held by the list in the C global `results`.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

/* What compute() returns: the request number and its (large) answer. */
typedef struct Result {
    RC_OBJECT_HEAD;
    rc_object *request;
    rc_object *payload;
} Result;

static const rc_field result_fields[] = {
    RC_REF(Result, request),
    RC_REF(Result, payload),
    RC_FIELDS_END,
};

static rc_type Result_type = {.name = "Result", .size = sizeof(Result), .fields = result_fields};

/* results = []: a module global, never emptied. Only DWARF names it: it is
 * not registered anywhere, as most real globals are not. */
SAMPLE_KEEP static rc_object *results;

#define PAYLOAD_SIZE 1000

/* compute(data): a new reference to a Result */
static SAMPLE_NOINLINE Result *compute(int data)
{
    Result *r = rc_new(Result, &Result_type);
    r->request = rc_int(data);
    r->payload = rc_bytes(PAYLOAD_SIZE);
    return r;
}

/* process(data): results.append(compute(data)) -- the leak */
static SAMPLE_NOINLINE void process(int data)
{
    Result *r = compute(data);
    rc_list_append(results, RC_OBJ(r)); /* the list takes its own reference ... */
    rc_decref(r);                       /* ... and keeps it for ever */
}

/* process_fixed(data): the caller uses the result and lets it go */
static SAMPLE_NOINLINE size_t process_fixed(int data)
{
    Result *r = compute(data);
    size_t n = rc_bytes_len(r->payload);
    rc_decref(r); /* count 0: freed now */
    return n;
}

static void print_memory(const char *when)
{
    size_t current, peak;
    char cur[32], pk[32];
    rc_trace_get_memory(&current, &peak);
    printf("%s: len(results) = %zu, traced memory %s (peak %s)\n", when, rc_list_len(results),
           rc_format_size((double)current, false, cur, sizeof cur),
           rc_format_size((double)peak, false, pk, sizeof pk));
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "global_cache: a global list that grows forever");
    rc_init();
    rc_trace_start(1);

    sample_py("results = []");
    results = rc_list_new();
    print_memory("at the start");

    sample_py("for request in range(3000): process(request)");
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < 1000; i++)
            process((round - 1) * 1000 + i);
        char when[64];
        snprintf(when, sizeof when, "after %d calls", round * 1000);
        print_memory(when);
    }

    sample_py("gc.collect()");
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    printf("The collector frees nothing: every Result is reachable from the global.\n");

    printf("\n-- tracemalloc: where the memory was allocated\n");
    rc_snapshot *snap = rc_trace_snapshot();
    size_t nstats;
    rc_statistic *stats = rc_snapshot_statistics(snap, RC_BY_LINENO, false, &nstats);
    sample_py("for stat in snapshot.statistics('lineno')[:3]: print(stat)");
    for (size_t i = 0; i < nstats && i < 3; i++) {
        char line[256];
        printf("%s\n", rc_statistic_str(&stats[i], line, sizeof line));
    }
    rc_statistics_free(stats);
    rc_snapshot_free(snap);

    sample_leak_planted();

    printf("\n-- the fix: results live as long as their user needs them\n");
    sample_py("results.clear()");
    rc_list_clear(results);
    print_memory("after results.clear()");
    size_t used = 0;
    for (int i = 0; i < 3000; i++)
        used += process_fixed(i);
    printf("3000 calls of process_fixed() used %zu payload bytes in all\n", used);
    print_memory("after 3000 fixed calls");

    rc_decref(results);
    results = NULL;
    rc_trace_stop();
    rc_shutdown();
    return 0;
}
