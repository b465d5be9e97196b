/*
 * generators: produce items one at a time instead of building a list.
 *
 * Teaches: a list comprehension makes every item before the first is used,
 * so its peak memory grows with the number of items; a generator keeps
 * only its state (here: where it is in the range) and makes each item when
 * asked, so its peak memory is a few objects however many items it yields.
 * tracemalloc's peak (rc_trace_get_memory) shows the difference: the same
 * sum over 100 000 numbers, megabytes for the list, bytes for the generator.
 * And a consumer can stop early: nothing after the break is ever made.
 *
 * The Python it mirrors:
 *
 *     def generate_numbers(n):
 *         for i in range(n):
 *             yield i
 *
 *     for num in generate_numbers(100000):
 *         print(num)
 *         if num > 10:
 *             break
 *
 *     tracemalloc.start()
 *     sum([i for i in range(100000)]);  tracemalloc.get_traced_memory()
 *     tracemalloc.reset_peak()
 *     sum(generate_numbers(100000));    tracemalloc.get_traced_memory()
 *
 * (The list's item array is a malloc'd buffer tracemalloc does not trace
 * here; sys.getsizeof(list) shows it: 100 000 pointers more.)
 *
 * The leak point (--wait, --abort-at-end): a half-consumed generator held
 * by the C global `numbers`.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

#define N 100000

/* The generator's frame: `for i in range(n)` -- where it is, where it stops. */
typedef struct RangeState {
    RC_OBJECT_HEAD;
    int64_t i, n;
} RangeState;

/* No references: atomic, like an int (never tracked by the collector). */
static rc_type RangeState_type = {.name = "RangeState", .size = sizeof(RangeState)};

SAMPLE_KEEP static rc_object *numbers; /* a generator someone started and kept */

/* one step of generate_numbers: yield i (a new reference), NULL at the end */
static rc_object *generate_numbers_next(rc_object *state)
{
    RangeState *s = (RangeState *)state;
    if (s->i >= s->n)
        return NULL;
    return rc_int(s->i++);
}

/* generate_numbers(n): a generator object */
static SAMPLE_NOINLINE rc_object *generate_numbers(int64_t n)
{
    RangeState *s = rc_new(RangeState, &RangeState_type);
    s->i = 0;
    s->n = n;
    rc_object *gen = rc_gen_new(generate_numbers_next, RC_OBJ(s));
    rc_decref(s); /* the generator holds its state */
    return gen;
}

/* [i for i in range(n)] */
static SAMPLE_NOINLINE rc_object *make_list(int64_t n)
{
    rc_object *list = rc_list_new();
    for (int64_t i = 0; i < n; i++) {
        rc_object *v = rc_int(i);
        rc_list_append(list, v);
        rc_decref(v);
    }
    return list;
}

static void print_traced(void)
{
    size_t current, peak;
    char c[32], p[32];
    rc_trace_get_memory(&current, &peak);
    printf("tracemalloc.get_traced_memory(): current %s, peak %s\n",
           rc_format_size((double)current, false, c, sizeof c),
           rc_format_size((double)peak, false, p, sizeof p));
}

static SAMPLE_NOINLINE void stop_early(void)
{
    printf("-- a generator yields one item at a time; stopping early costs nothing\n");
    sample_py("for num in generate_numbers(%d): print(num); if num > 10: break", N);
    rc_object *gen = generate_numbers(N);
    rc_object *item;
    while ((item = rc_iter_next(gen)) != NULL) {
        int64_t num = rc_int_value(item);
        rc_decref(item);
        printf("%lld\n", (long long)num);
        if (num > 10)
            break;
    }
    rc_decref(gen); /* the other 99 988 numbers are never made */
}

/* sum([i for i in range(N)]): returns the traced peak */
static SAMPLE_NOINLINE size_t sum_list(void)
{
    sample_py("sum([i for i in range(%d)])", N);
    rc_object *list = make_list(N);
    int64_t total = 0;
    for (size_t i = 0; i < rc_list_len(list); i++)
        total += rc_int_value(rc_list_get(list, i));
    printf("%lld\n", (long long)total);
    printf("sys.getsizeof(list) = %zu\n", rc_sizeof(list));
    rc_decref(list);
    print_traced();
    size_t peak;
    rc_trace_get_memory(NULL, &peak);
    return peak;
}

/* sum(generate_numbers(N)): returns the traced peak */
static SAMPLE_NOINLINE size_t sum_generator(void)
{
    sample_py("sum(generate_numbers(%d))", N);
    rc_object *gen = generate_numbers(N), *item;
    int64_t total = 0;
    while ((item = rc_iter_next(gen)) != NULL) {
        total += rc_int_value(item);
        rc_decref(item); /* each number is freed before the next is made */
    }
    rc_decref(gen);
    printf("%lld\n", (long long)total);
    print_traced();
    size_t peak;
    rc_trace_get_memory(NULL, &peak);
    return peak;
}

static SAMPLE_NOINLINE void start_numbers(void)
{
    sample_py("numbers = generate_numbers(%d); next(numbers); next(numbers)", N);
    numbers = generate_numbers(N);
    for (int i = 0; i < 2; i++)
        rc_decref(rc_iter_next(numbers));
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "generators: peak memory of a list of 100 000 items "
                               "vs a generator");
    rc_init();

    stop_early();

    printf("\n-- peak memory: a list of %d items vs a generator\n", N);
    rc_trace_start(1);
    size_t list_peak = sum_list();
    sample_py("tracemalloc.reset_peak()");
    rc_trace_reset_peak();
    size_t gen_peak = sum_generator();
    printf("peak with the list: %zu bytes; with the generator: %zu bytes\n", list_peak,
           gen_peak);

    start_numbers();

    sample_leak_planted();

    rc_decref(numbers);
    numbers = NULL;
    rc_trace_stop();
    rc_shutdown();
    return 0;
}
