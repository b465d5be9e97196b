/*
 * fuzz_core.c -- libFuzzer harness (a): the ELF core reader.
 *
 * Input: a core file. It is written to a memfd and opened by its path
 * /proc/self/fd/N with rs_open_core, once without an executable (the one
 * NT_FILE names) and once with one: $RS_FUZZ_EXE (the seed program, set by
 * tests/fuzz/run) or else this harness itself (a build-id mismatch). On
 * success what the front ends ask of a core is exercised: warnings,
 * mappings and reads across them (boundaries, wrap-around, strings),
 * modules, symbols; and, the second time, threads, stack words, unwinding,
 * and the engine over the core's memory (registry lookup, load, two
 * reports). Seeds: kernel cores of progs/fuzz_victim.c and progs/small.c,
 * and (long runs) a gdb core.
 */
#include "engine.h"
#include "target.h"

#include "mutate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_THREADS 8
#define MAX_STACK_WORDS 65536
#define MAX_MAPPINGS 256

static int memfd = -1;
static char core_path[64];
static const char *exe_path;
static unsigned char buf[65536];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    memfd = memfd_create("fuzz-core", 0);
    if (memfd < 0) {
        perror("memfd_create");
        exit(1);
    }
    snprintf(core_path, sizeof core_path, "/proc/self/fd/%d", memfd);
    exe_path = getenv("RS_FUZZ_EXE");
    if (!exe_path || !*exe_path)
        exe_path = (*argv)[0];
    return 0;
}

static void touch(const char *s)
{
    if (s && strlen(s) > (1u << 20))
        abort(); /* a string this long is a bug */
}

static void read_around(rs_target *t, uint64_t addr)
{
    rs_read(t, addr, buf, 64);
    rs_read(t, addr - 32, buf, 64);
    rs_read(t, addr - 8192, buf, sizeof buf);
    uint64_t v;
    rs_read_u64(t, addr, &v);
    char s[300];
    rs_read_string(t, addr, s, sizeof s);
    touch(s);
}

static void exercise_engine(rs_target *t)
{
    rs_symbol reg;
    if (rs_symbol_lookup(t, "rc_debug_registry", &reg, NULL) != 0)
        return;
    touch(reg.name);
    rs_error err;
    rs_heap *h = rs_heap_new(rs_target_memory(t), reg.addr, &err);
    if (!h)
        return;
    if (rs_heap_load(h, NULL, NULL, &err) == 0) {
        int status;
        rs_free(rs_heap_report(h, "summary", &status));
        rs_free(rs_heap_report(h, "check --json", &status));
    }
    rs_heap_free(h);
}

/* deep: threads, unwinding and the engine too (the costly part, and the same
 * with or without --exe: done once per input) */
static void exercise(rs_target *t, bool deep)
{
    touch(rs_program(t));
    touch(rs_command_line(t));
    (void)rs_kind(t);
    (void)rs_pid(t);
    (void)rs_signal(t);
    for (size_t i = 0; i < rs_warning_count(t); i++)
        if (!rs_warning(t, i))
            abort();

    /* mappings: sorted, and reads at and across their edges */
    size_t nmaps = rs_mapping_count(t);
    uint64_t prev = 0;
    for (size_t i = 0; i < nmaps && i < MAX_MAPPINGS; i++) {
        const rs_mapping *m = rs_mapping_get(t, i);
        if (!m || m->start < prev)
            abort(); /* promised: sorted by start */
        prev = m->start;
        touch(m->path);
        read_around(t, m->start);
        read_around(t, m->end);
        if (m->end > m->start && rs_mapping_find(t, m->start) == NULL)
            abort();
        rs_mapping_find(t, m->end);
    }
    read_around(t, 0);
    read_around(t, 4096);
    rs_read(t, UINT64_MAX - 15, buf, 64); /* wraps */
    rs_read(t, UINT64_MAX, buf, sizeof buf);

    /* modules, and symbols of the executable (the libraries' symbol tables
     * come from their files, not from the core: sorting libc's costs) */
    for (size_t i = 0; i < rs_module_count(t); i++) {
        const rs_module *m = rs_module_get(t, i);
        touch(m->path);
        touch(m->name);
        touch(m->build_id);
        rs_module_at(t, m->start);
        if (i > 0)
            continue;
        rs_symbol s;
        char d[256];
        if (rs_symbol_at(t, m->start + (m->end - m->start) / 2, &s) == 0)
            touch(s.name);
        rs_describe_addr(t, m->start, d, sizeof d);
    }
    rs_symbol s;
    rs_symbol_lookup(t, "main", &s, NULL);

    if (!deep)
        return;

    /* threads: registers, stack words, frames */
    size_t nthreads = rs_thread_count(t);
    for (size_t ti = 0; ti < nthreads && ti < MAX_THREADS; ti++) {
        const rs_thread *th = rs_thread_get(t, ti);
        if (!th || th->stack_end < th->stack_start)
            abort();
        char d[256];
        rs_describe_addr(t, th->regs.rip, d, sizeof d);
        static rs_stack_iter it;
        rs_stack_iter_init(&it, t, th);
        uint64_t slot, v;
        for (int k = 0; k < MAX_STACK_WORDS && rs_stack_iter_next(&it, &slot, &v); k++)
            ;
        const rs_frame *frames;
        size_t n;
        rs_error err;
        if (rs_thread_frames(t, ti, &frames, &n, &err) == 0) {
            for (size_t f = 0; f < n; f++) {
                touch(frames[f].function);
                touch(frames[f].file);
                rs_frame_of_slot(t, ti, frames[f].sp);
            }
        }
        rs_frame_of_slot(t, ti, th->regs.rsp);
    }
    exercise_engine(t);
}

/* Windowed mutations (mutate.h); the first 65536 bytes hold the ELF header, program headers and notes of a core. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    return mutate_window(data, size, max_size, seed, 65536);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
        abort();
    for (int pass = 0; pass < 2; pass++) {
        rs_error err = {{0}};
        rs_target *t = rs_open_core(core_path, pass ? exe_path : NULL, &err);
        if (!t) {
            if (!err.msg[0])
                abort(); /* a failure must say why */
            continue;
        }
        exercise(t, pass == 1);
        rs_close(t);
    }
    return 0;
}
