/*
 * bench_inspect CORE [N]: the inspector's full analysis of a core, in one
 * process, phase by phase: open the core, load the heap (registry, every
 * object, every edge), then the `cycles`, `leaks` and `retained` reports on
 * that one loaded heap. (The `refscope` command runs one report per
 * process, each loading the heap again; the runner times that too.)
 *
 * The roots are the ones the heap itself names (registered roots, globals
 * dict, garbage list); the command also adds C globals (DWARF) and stack
 * words, which costs it a little more per run.
 *
 * Between the load and the reports, rs_heap_analyze computes what the
 * reports share (the collector mirror, the reconciliation and dominators):
 * on two threads, as the engine does on a machine with two CPUs, or on
 * this one with REFSCOPE_THREADS=1 in the environment (the load resolves
 * its edges on two threads too). So CPU times here are the whole
 * process's (every thread's), not this thread's as in the other programs.
 *
 * Output: one line, see bench.h; time_ns (wall) and cpu_ns (the process's)
 * are load + analyses + cycles + leaks + retained (opening the core, an
 * mmap, is open_cpu_ns), each phase has its *_cpu_ns (load and analyze
 * their *_wall_ns, the three reports reports_wall_ns), maxrss_bytes is the
 * peak RSS of this process.
 */
#include "engine.h"
#include "target.h"

#include "bench.h"

#include <sys/resource.h>

static bench_time report(rs_heap *h, const char *command, size_t *len)
{
    int status = 0;
    bench_time t = bench_start_process();
    char *text = rs_heap_report(h, command, &status);
    t = bench_stop_process(t);
    if (!text || status > 1) {
        fprintf(stderr, "bench_inspect: report '%s' failed: %s\n", command,
                text ? text : "no text");
        exit(1);
    }
    *len = strlen(text);
    rs_free(text);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        bench_usage("bench_inspect CORE [N]");
    const char *core = argv[1];
    size_t n = argc == 3 ? bench_parse_count(argv[2]) : 0;
    rs_error err = {{0}};

    bench_time open = bench_start();
    rs_target *t = rs_open_core(core, NULL, &err);
    if (!t) {
        fprintf(stderr, "bench_inspect: %s: %s\n", core, err.msg);
        return 1;
    }
    rs_symbol reg;
    if (rs_symbol_lookup(t, "rc_debug_registry", &reg, &err) != 0) {
        fprintf(stderr, "bench_inspect: no rc_debug_registry: %s\n", err.msg);
        return 1;
    }
    open = bench_stop(open);
    bench_time load = bench_start_process();
    rs_heap *h = rs_heap_new(rs_target_memory(t), reg.addr, &err);
    if (!h || rs_heap_load(h, NULL, NULL, &err) != 0) {
        fprintf(stderr, "bench_inspect: load: %s\n", err.msg);
        return 1;
    }
    load = bench_stop_process(load);
    /* what the three reports share, computed together (on two threads
     * unless REFSCOPE_THREADS=1): as a program that wants them all does */
    bench_time analyze = bench_start_process();
    rs_heap_analyze(h, RS_ANALYSIS_COLLECTOR | RS_ANALYSIS_DOMINATORS);
    analyze = bench_stop_process(analyze);
    size_t cycles_len, leaks_len, retained_len;
    bench_time cycles = report(h, "cycles", &cycles_len);
    bench_time leaks = report(h, "leaks", &leaks_len);
    bench_time retained = report(h, "retained", &retained_len);
    rs_heap_free(h);
    rs_close(t);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    bench_time total = {load.wall_ns + analyze.wall_ns + cycles.wall_ns + leaks.wall_ns +
                            retained.wall_ns,
                        load.cpu_ns + analyze.cpu_ns + cycles.cpu_ns + leaks.cpu_ns +
                            retained.cpu_ns};
    printf("bench=inspect peer=engine n=%zu " BENCH_TIME_FMT " open_cpu_ns=%llu load_cpu_ns=%llu "
           "load_wall_ns=%llu analyze_cpu_ns=%llu analyze_wall_ns=%llu reports_wall_ns=%llu "
           "cycles_cpu_ns=%llu leaks_cpu_ns=%llu retained_cpu_ns=%llu maxrss_bytes=%llu "
           "report_bytes=%zu\n",
           n, BENCH_TIME_ARGS(total), (unsigned long long)open.cpu_ns,
           (unsigned long long)load.cpu_ns, (unsigned long long)load.wall_ns,
           (unsigned long long)analyze.cpu_ns, (unsigned long long)analyze.wall_ns,
           (unsigned long long)(cycles.wall_ns + leaks.wall_ns + retained.wall_ns),
           (unsigned long long)cycles.cpu_ns,
           (unsigned long long)leaks.cpu_ns, (unsigned long long)retained.cpu_ns,
           (unsigned long long)ru.ru_maxrss * 1024u, cycles_len + leaks_len + retained_len);
    return 0;
}
