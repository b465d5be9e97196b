/*
 * bench.h -- what every benchmark program shares: a clock, the process's
 * resident set size, argument parsing and the one result line.
 *
 * A benchmark program runs one workload for one peer and prints exactly one
 * line on stdout, space-separated key=value pairs the runner (tests/bench/run)
 * parses:
 *
 *     bench=alloc peer=refscope n=10000000 time_ns=412345678 cpu_ns=401234567 ...
 *
 * time_ns (wall) and cpu_ns (this thread's CPU time) are always of the timed
 * region only (setup and teardown excluded); other keys are per workload
 * (bytes, rss_bytes, ...). Anything else a program has to say goes to
 * stderr.
 *
 * The timed region of each workload is one noinline function named
 * bench_region_*, so `valgrind --tool=callgrind --toggle-collect='bench_region_*'`
 * counts the instructions of that region alone (the runner's --instructions).
 */
#ifndef REFSCOPE_BENCH_H
#define REFSCOPE_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__clang__)
#define BENCH_REGION __attribute__((noinline))
#else
#define BENCH_REGION __attribute__((noinline, noclone)) /* one symbol for callgrind */
#endif

static inline uint64_t bench_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A region's time, both ways: wall (CLOCK_MONOTONIC) and the CPU time of
 * this thread (CLOCK_THREAD_CPUTIME_ID: user + system, page faults
 * included). On a shared machine the CPU time is the steadier measure of
 * the work (waiting for a CPU is not counted); the runner compares CPU
 * times and keeps wall times as context.
 *
 *     bench_time t = bench_start();  ...region...  t = bench_stop(t);
 *     printf("... " BENCH_TIME_FMT "\n", BENCH_TIME_ARGS(t));
 */
typedef struct bench_time {
    uint64_t wall_ns, cpu_ns;
} bench_time;

/* With the CPU time of clock cpu: the thread's (bench_start/bench_stop)
 * or, for a region whose work may run on more threads than the one timing
 * it, the whole process's (bench_start_process/bench_stop_process). */
static inline bench_time bench_start_on(clockid_t cpu)
{
    bench_time t = {bench_clock_ns(CLOCK_MONOTONIC), bench_clock_ns(cpu)};
    return t;
}

static inline bench_time bench_stop_on(bench_time t0, clockid_t cpu)
{
    bench_time t = {bench_clock_ns(CLOCK_MONOTONIC) - t0.wall_ns, bench_clock_ns(cpu) - t0.cpu_ns};
    return t;
}

static inline bench_time bench_start(void) { return bench_start_on(CLOCK_THREAD_CPUTIME_ID); }
static inline bench_time bench_stop(bench_time t0)
{
    return bench_stop_on(t0, CLOCK_THREAD_CPUTIME_ID);
}
static inline bench_time bench_start_process(void)
{
    return bench_start_on(CLOCK_PROCESS_CPUTIME_ID);
}
static inline bench_time bench_stop_process(bench_time t0)
{
    return bench_stop_on(t0, CLOCK_PROCESS_CPUTIME_ID);
}

#define BENCH_TIME_FMT "time_ns=%llu cpu_ns=%llu"
#define BENCH_TIME_ARGS(t) (unsigned long long)(t).wall_ns, (unsigned long long)(t).cpu_ns

/* Sort by CPU time (the median of repeated regions). */
static inline int bench_time_cmp(const void *a, const void *b)
{
    uint64_t x = ((const bench_time *)a)->cpu_ns, y = ((const bench_time *)b)->cpu_ns;
    return x < y ? -1 : x > y;
}

/* Resident set size in bytes, from /proc/self/statm (0 if unreadable). */
static inline uint64_t bench_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A positive count: digits, optionally with a k/M suffix (1M = 1000000). */
static inline size_t bench_parse_count(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end == 'k' || *end == 'K') {
        v *= 1000u;
        end++;
    } else if (*end == 'M' || *end == 'm') {
        v *= 1000000u;
        end++;
    }
    if (errno || *end || v == 0 || s[0] == '-') {
        fprintf(stderr, "bench: '%s' is not a positive count\n", s);
        exit(2);
    }
    return (size_t)v;
}

static inline _Noreturn void bench_usage(const char *usage)
{
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
}

/* Keep a value alive in the optimiser's eyes (results nobody reads). */
static inline void bench_keep(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

#endif /* REFSCOPE_BENCH_H */
