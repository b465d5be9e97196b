/*
 * test_target.c -- the target layer (inspector/target.h) against real
 * process images: kernel cores, gcore cores and a live process of
 * progs/victim.c, all made at test time. No mocks.
 *
 * The victim prints a "facts" line (pid, addresses, values) before it
 * aborts or sleeps; every test finds those facts again through the layer.
 */
#include "target.h"
#include "victim.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------- */

typedef struct facts {
    int pid;
    uint64_t cache, cache_addr, local_addr, counter, big, marker, registry_items3, lib_root;
} facts;

static const char *env_path(const char *name)
{
    const char *p = getenv(name);
    cr_assert(p && *p, "environment variable %s is not set: run this test through meson test",
              name);
    return p;
}

static uint64_t fact(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    if (!p && strncmp(line, pat + 1, strlen(pat + 1)) == 0)
        p = line - 1;
    cr_assert(p, "no %s in the victim's facts line: %s", key, line);
    p += strlen(pat);
    if (strncmp(p, "(nil)", 5) == 0)
        return 0;
    return strtoull(p, NULL, 0);
}

static void parse_facts(const char *line, facts *f)
{
    f->pid = (int)fact(line, "pid");
    f->cache = fact(line, "cache");
    f->cache_addr = fact(line, "cache_addr");
    f->local_addr = fact(line, "local_addr");
    f->counter = fact(line, "counter");
    f->big = fact(line, "big");
    f->marker = fact(line, "marker");
    f->registry_items3 = fact(line, "registry_items3");
    f->lib_root = fact(line, "lib_root");
}

typedef struct victim_core {
    char dir[256];
    char core[512];
    facts f;
} victim_core;

/* What a test leaves behind, removed by the suite's fini even when an
 * assertion ends the test early: temp dirs (cores are big) and victims. */
static char cleanup_dirs[8][256];
static size_t ncleanup_dirs;
static pid_t cleanup_pids[8];
static size_t ncleanup_pids;

static void make_tmpdir(char *dir, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/rs-target-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    if (ncleanup_dirs < 8)
        snprintf(cleanup_dirs[ncleanup_dirs++], sizeof cleanup_dirs[0], "%s", dir);
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    if (!dir[0])
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void cleanup(void)
{
    for (size_t i = 0; i < ncleanup_pids; i++)
        if (cleanup_pids[i] > 0 && kill(cleanup_pids[i], SIGKILL) == 0)
            waitpid(cleanup_pids[i], NULL, 0);
    for (size_t i = 0; i < ncleanup_dirs; i++)
        remove_tree(cleanup_dirs[i]);
    ncleanup_pids = ncleanup_dirs = 0;
}

/* Run `exe mode [arg]` in a fresh directory until it dumps core. */
static void make_core(const char *exe, const char *mode, const char *arg, victim_core *vc)
{
    char pattern[256] = "";
    FILE *pf = fopen("/proc/sys/kernel/core_pattern", "r");
    if (pf) {
        if (!fgets(pattern, sizeof pattern, pf))
            pattern[0] = 0;
        fclose(pf);
    }
    if (pattern[0] == '|')
        cr_skip_test("kernel.core_pattern pipes cores to a program (%s): no core files here",
                     pattern);
    make_tmpdir(vc->dir, sizeof vc->dir);
    int out[2];
    cr_assert(pipe(out) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_CORE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_CORE, &rl);
        if (chdir(vc->dir) != 0)
            _exit(126);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execl(exe, exe, mode, arg, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[1024] = "";
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof line && (r = read(out[0], line + n, sizeof line - 1 - n)) > 0)
        n += (size_t)r;
    line[n] = 0;
    close(out[0]);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFSIGNALED(st) && WCOREDUMP(st),
              "%s %s did not dump core (status 0x%x; is RLIMIT_CORE's hard limit 0?)", exe,
              mode, st);
    parse_facts(line, &vc->f);
    snprintf(vc->core, sizeof vc->core, "%s/core", vc->dir);
    if (access(vc->core, R_OK) != 0)
        snprintf(vc->core, sizeof vc->core, "%s/core.%d", vc->dir, (int)pid);
    cr_assert(access(vc->core, R_OK) == 0, "no core file in %s", vc->dir);
}

typedef struct victim_proc {
    pid_t pid;
    int in;                  /* write a line here to let it exit */
    facts f;
} victim_proc;

static void spawn_sleeper(const char *exe, victim_proc *vp)
{
    int in[2], out[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl(exe, exe, "sleep", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (ncleanup_pids < 8)
        cleanup_pids[ncleanup_pids++] = pid;
    FILE *f = fdopen(out[0], "r");
    char line[1024];
    cr_assert(fgets(line, sizeof line, f), "the victim printed nothing");
    fclose(f);
    parse_facts(line, &vp->f);
    vp->pid = pid;
    vp->in = in[1];
}

/* Let the sleeper finish; true if it exited normally with status 0. */
static bool finish_sleeper(victim_proc *vp)
{
    if (write(vp->in, "go\n", 3) != 3)
        return false;
    close(vp->in);
    int st;
    if (waitpid(vp->pid, &st, 0) != vp->pid)
        return false;
    for (size_t i = 0; i < ncleanup_pids; i++)
        if (cleanup_pids[i] == vp->pid)
            cleanup_pids[i] = -1; /* reaped: its pid may be reused */
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static rs_target *open_core_ok(const char *core, const char *exe)
{
    rs_error err = {{0}};
    rs_target *t = rs_open_core(core, exe, &err);
    cr_assert(t, "rs_open_core(%s): %s", core, err.msg);
    return t;
}

static bool has_warning(const rs_target *t, const char *needle)
{
    for (size_t i = 0; i < rs_warning_count(t); i++)
        if (strstr(rs_warning(t, i), needle))
            return true;
    return false;
}

static void dump_warnings(const rs_target *t)
{
    for (size_t i = 0; i < rs_warning_count(t); i++)
        fprintf(stderr, "warning: %s\n", rs_warning(t, i));
}

static uint64_t symbol_addr(rs_target *t, const char *name)
{
    rs_symbol s;
    rs_error err = {{0}};
    cr_assert(rs_symbol_lookup(t, name, &s, &err) == 0, "%s", err.msg);
    return s.addr;
}

static uint64_t read_u64(rs_target *t, uint64_t addr)
{
    uint64_t v = 0;
    cr_assert(rs_read_u64(t, addr, &v), "cannot read 0x%" PRIx64, addr);
    return v;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The line of victim.c that defines victim_marker. */
static unsigned marker_line(void)
{
    FILE *f = fopen(env_path("INSP_VICTIM_SOURCE"), "r");
    cr_assert(f);
    char line[512];
    unsigned n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (strstr(line, "int victim_marker(int x)")) {
            fclose(f);
            return n;
        }
    }
    fclose(f);
    cr_assert_fail("victim_marker not found in victim.c");
    return 0;
}

/* Read file bytes that the ELF file maps at (unrelocated) vaddr. */
static void file_bytes_at(const char *path, uint64_t vaddr, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    Elf64_Ehdr eh;
    cr_assert(pread(fd, &eh, sizeof eh, 0) == sizeof eh);
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        cr_assert(pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) == sizeof ph);
        if (ph.p_type == PT_LOAD && vaddr >= ph.p_vaddr && vaddr + len <= ph.p_vaddr + ph.p_filesz) {
            cr_assert(pread(fd, buf, len, (off_t)(ph.p_offset + vaddr - ph.p_vaddr)) ==
                      (ssize_t)len);
            close(fd);
            return;
        }
    }
    close(fd);
    cr_assert_fail("0x%" PRIx64 " is not in a PT_LOAD of %s", vaddr, path);
}

static const rs_slot *find_slot(const rs_slot *slots, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(slots[i].path, path) == 0)
            return &slots[i];
    return NULL;
}

static int frame_index(const rs_frame *f, size_t n, const char *function)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].function && strcmp(f[i].function, function) == 0)
            return (int)i;
    return -1;
}

/* ---- shared checks --------------------------------------------------------------- */

/* Symbols and memory: values the victim printed, read back. */
static void check_symbols(rs_target *t, const facts *f)
{
    uint64_t cache = symbol_addr(t, "cache");
    cr_assert_eq(cache, f->cache_addr);
    cr_assert_eq(read_u64(t, cache), f->cache);
    cr_assert_eq(read_u64(t, symbol_addr(t, "victim_magic")), (uint64_t)VICTIM_MAGIC);
    /* lib_magic lives in the shared library: NT_FILE / maps + its bias */
    rs_symbol s;
    rs_error err = {{0}};
    cr_assert(rs_symbol_lookup(t, "lib_magic", &s, &err) == 0, "%s", err.msg);
    cr_assert(s.module && !s.module->is_exe, "lib_magic should be found in the library");
    cr_assert_eq(read_u64(t, s.addr), 0x11b5eedULL);
    /* lib_root: copy-relocated into the executable, which holds the live value */
    cr_assert_eq(read_u64(t, symbol_addr(t, "lib_root")), f->lib_root);
    cr_assert(rs_symbol_lookup(t, "no_such_symbol_anywhere", &s, &err) == -1);
    cr_assert(strstr(err.msg, "not found"), "%s", err.msg);

    rs_memory m = rs_target_memory(t);
    uint64_t v = 0;
    cr_assert_eq(m.read(m.ctx, f->cache_addr, &v, 8), 8);
    cr_assert_eq(v, f->cache);
    cr_assert_eq(rs_read(t, 8, &v, 8), 0, "address 8 must be unreadable");
}

/* Code comes from the executable file when the core lacks it.
 * optimized: the entry of victim_marker may be described by its body's line. */
static void check_text_opt(rs_target *t, const facts *f, bool optimized)
{
    const rs_module *exe = rs_module_get(t, 0);
    uint64_t marker = symbol_addr(t, "victim_marker");
    cr_assert_eq(marker, f->marker);
    unsigned char mem[64], file[64];
    cr_assert_eq(rs_read(t, marker, mem, sizeof mem), sizeof mem);
    file_bytes_at(exe->path, marker - exe->bias, file, sizeof file);
    cr_assert(memcmp(mem, file, sizeof mem) == 0, "text differs from the executable's");

    rs_srcloc loc;
    cr_assert(rs_addr_to_line(t, marker, &loc) == 0);
    cr_assert(ends_with(loc.file, "victim.c"), "file %s", loc.file ? loc.file : "(null)");
    cr_assert(loc.line == marker_line() || (optimized && loc.line == marker_line() + 1),
              "victim_marker at line %u, expected %u", loc.line, marker_line());
    cr_assert_str_eq(loc.function, "victim_marker");
    cr_assert_str_eq(rs_function_name(t, marker + 2), "victim_marker");
    char buf[128];
    cr_assert_str_eq(rs_describe_addr(t, marker + 2, buf, sizeof buf), "victim_marker+0x2");
    rs_symbol s;
    cr_assert(rs_symbol_at(t, marker + 1, &s) == 0);
    cr_assert_str_eq(s.name, "victim_marker");
}

static void check_text(rs_target *t, const facts *f)
{
    check_text_opt(t, f, false);
}

static void check_slots(rs_target *t, const facts *f)
{
    const rs_slot *slots;
    size_t n;
    rs_error err = {{0}};
    cr_assert(rs_pointer_slots(t, "rc_object", &slots, &n, &err) == 0, "%s", err.msg);
    static const struct {
        const char *path, *type;
    } want[] = {
        {"cache", "node"},
        {"config.handlers.first", "node"},
        {"config.handlers.second", "rc_object"},
        {"config.items[0]", "node"},
        {"config.items[3]", "node"},
        {"config.u_node", "node"},
        {"registry.items[3]", "rc_object"},
        {"registry.grid[1][2]", "node"},
        {"derived_ptr", "derived"},
        {"a_derived.base.next", "node"},
        {"vref", "node"},
        {"nodes[7].next", "node"},
        {"main::counter", "rc_object"},
        {"big_table[0]", "node"},
        {"lib_root", "rc_object"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const rs_slot *s = find_slot(slots, n, want[i].path);
        cr_assert(s, "no slot %s among %zu", want[i].path, n);
        cr_assert_str_eq(s->type_name, want[i].type, "slot %s", want[i].path);
    }
    static const char *unwanted[] = {"not_an_object", "opaque", "config.name",
                                     "config.handlers.label", "victim_magic", "nodes[0]",
                                     "big_table[262144]"};
    for (size_t i = 0; i < sizeof unwanted / sizeof *unwanted; i++)
        cr_assert(!find_slot(slots, n, unwanted[i]), "unexpected slot %s", unwanted[i]);
    cr_assert(find_slot(slots, n, "big_table[262143]"), "the array cap is RS_ARRAY_CAP");
    cr_assert(has_warning(t, "only the first 262144"));

    cr_assert_eq(find_slot(slots, n, "cache")->addr, f->cache_addr);
    cr_assert_eq(find_slot(slots, n, "registry.items[3]")->addr, f->registry_items3);
    cr_assert_eq(read_u64(t, find_slot(slots, n, "main::counter")->addr), f->counter);
    cr_assert_eq(read_u64(t, find_slot(slots, n, "lib_root")->addr), f->lib_root);

    const rs_global *g;
    size_t ng;
    cr_assert(rs_globals(t, &g, &ng, &err) == 0, "%s", err.msg);
    bool found = false;
    for (size_t i = 0; i < ng; i++)
        if (strcmp(g[i].display, "main::counter") == 0) {
            found = true;
            cr_assert_str_eq(g[i].function, "main");
            cr_assert_eq(g[i].size, 8);
            cr_assert(ends_with(g[i].cu, "victim.c"));
        }
    cr_assert(found, "main::counter is not among the globals");
}

static void check_layout(rs_target *t)
{
    rs_error err = {{0}};
    cr_assert_eq(rs_member_offset(t, "registry", "items[3]", &err),
                 (int64_t)offsetof(struct registry, items[3]), "%s", err.msg);
    cr_assert_eq(rs_member_offset(t, "config", "handlers.second", &err),
                 (int64_t)offsetof(struct config, handlers.second), "%s", err.msg);
    cr_assert_eq(rs_member_offset(t, "config", "u_node", &err),
                 (int64_t)offsetof(struct config, u_node), "%s", err.msg);
    cr_assert_eq(rs_member_offset(t, "node", "next", &err), (int64_t)offsetof(node, next));
    cr_assert_eq(rs_member_offset(t, "rc_object", "t", &err), (int64_t)offsetof(rc_object, t));
    cr_assert_eq(rs_member_offset(t, "derived", "base.value", &err),
                 (int64_t)offsetof(derived, base.value), "%s", err.msg);
    cr_assert_eq(rs_type_size(t, "registry", &err), (int64_t)sizeof(struct registry));
    cr_assert_eq(rs_type_size(t, "derived", &err), (int64_t)sizeof(derived));
    cr_assert_eq(rs_member_offset(t, "registry", "nope", &err), -1);
    cr_assert(strstr(err.msg, "no member nope"), "%s", err.msg);
    cr_assert_eq(rs_member_offset(t, "no_such_type_xyz", "a", &err), -1);
    cr_assert(strstr(err.msg, "not found"), "%s", err.msg);
}

/* The main thread: its stack holds level2's local, frames name the calls. */
static void check_main_thread(rs_target *t, const facts *f, bool in_abort)
{
    cr_assert_geq(rs_thread_count(t), 2, "the victim has two threads");
    size_t ti = rs_thread_count(t);
    for (size_t i = 0; i < rs_thread_count(t); i++)
        if (rs_thread_get(t, i)->tid == f->pid)
            ti = i;
    cr_assert(ti < rs_thread_count(t), "no thread %d", f->pid);
    if (in_abort)
        cr_assert_eq(ti, 0, "the crashing thread comes first");
    const rs_thread *th = rs_thread_get(t, ti);
    cr_assert(f->local_addr >= th->stack_start && f->local_addr < th->stack_end,
              "local 0x%" PRIx64 " not in stack [0x%" PRIx64 ", 0x%" PRIx64 ")", f->local_addr,
              th->stack_start, th->stack_end);
    rs_stack_iter it;
    rs_stack_iter_init(&it, t, th);
    uint64_t slot, value;
    bool seen = false;
    size_t words = 0;
    while (rs_stack_iter_next(&it, &slot, &value)) {
        words++;
        if (slot == f->local_addr) {
            seen = true;
            cr_assert_eq(value, f->cache, "the local holds cache");
        }
    }
    cr_assert(seen, "the stack iterator never reached the local (%zu words)", words);
    cr_assert_eq(words, (th->stack_end - th->stack_start) / 8);

    const rs_frame *fr;
    size_t nf;
    rs_error err = {{0}};
    cr_assert(rs_thread_frames(t, ti, &fr, &nf, &err) == 0, "%s", err.msg);
    int l2 = frame_index(fr, nf, "level2"), l1 = frame_index(fr, nf, "level1"),
        mn = frame_index(fr, nf, "main");
    if (l2 < 0 || l1 < 0 || mn < 0) {
        for (size_t i = 0; i < nf; i++)
            fprintf(stderr, "#%zu %s\n", i, fr[i].function ? fr[i].function : "?");
        dump_warnings(t);
    }
    cr_assert(l2 >= 0 && l1 == l2 + 1 && mn == l1 + 1, "frames level2/level1/main: %d %d %d",
              l2, l1, mn);
    if (in_abort)
        cr_assert(frame_index(fr, nf, "abort") >= 0 && frame_index(fr, nf, "abort") < l2);
    cr_assert(ends_with(fr[mn].file, "victim.c"));
    cr_assert_gt(fr[mn].line, 0);
    cr_assert_eq(rs_frame_of_slot(t, ti, f->local_addr), l2, "the local is in level2's frame");
    for (size_t i = 0; i + 1 < nf; i++)
        cr_assert(fr[i].sp < fr[i].cfa && fr[i].cfa == fr[i + 1].sp, "frames tile the stack");
}

/* ---- tests -------------------------------------------------------------------------- */

TestSuite(target, .timeout = 60, .fini = cleanup);

Test(target, kernel_core_pie)
{
    victim_core vc;
    const char *exe = env_path("INSP_VICTIM");
    make_core(exe, "abort", NULL, &vc);
    rs_target *t = open_core_ok(vc.core, NULL); /* the executable from NT_FILE */
    cr_assert_eq(rs_kind(t), RS_TARGET_CORE);
    cr_assert_eq(rs_pid(t), vc.f.pid);
    cr_assert_eq(rs_signal(t), SIGABRT);
    cr_assert_str_eq(rs_program(t), "insp_victim");
    const rs_module *m = rs_module_get(t, 0);
    char real[4096];
    cr_assert(realpath(exe, real));
    cr_assert_str_eq(m->path, real);
    cr_assert(m->is_exe && m->loaded && m->has_dwarf && m->has_symbols);
    cr_assert_neq(m->bias, 0, "a PIE under ASLR has a bias");
    cr_assert_eq(m->bias % 4096, 0);
    cr_assert_neq(m->build_id[0], 0);
    cr_assert_gt(rs_module_count(t), 2, "libc and the victim's library");
    cr_assert(rs_mapping_find(t, vc.f.cache_addr) != NULL);
    check_symbols(t, &vc.f);
    check_text(t, &vc.f);
    check_main_thread(t, &vc.f, true);
    rs_close(t);
    remove_tree(vc.dir);
}

Test(target, dwarf_globals_and_layout)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "abort", NULL, &vc);
    rs_target *t = open_core_ok(vc.core, env_path("INSP_VICTIM"));
    check_slots(t, &vc.f);
    check_layout(t);
    rs_close(t);
    remove_tree(vc.dir);
}

Test(target, kernel_core_nopie_optimized_dwarf2)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM_NOPIE"), "abort", NULL, &vc);
    rs_target *t = open_core_ok(vc.core, NULL);
    cr_assert_eq(rs_module_get(t, 0)->bias, 0, "non-PIE: no bias");
    check_symbols(t, &vc.f);
    check_text_opt(t, &vc.f, true);
    check_slots(t, &vc.f);
    check_layout(t);
    check_main_thread(t, &vc.f, true);
    rs_close(t);
    remove_tree(vc.dir);
}

Test(target, build_id_mismatch)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "abort", NULL, &vc);
    rs_error err = {{0}};
    rs_target *t = rs_open_core(vc.core, env_path("INSP_VICTIM_VARIANT"), &err);
    cr_assert_null(t);
    cr_assert(strstr(err.msg, "different build of insp_victim_variant") &&
              strstr(err.msg, "build-id"), "%s", err.msg);
    remove_tree(vc.dir);
}

Test(target, bad_inputs)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "abort", NULL, &vc);
    rs_error err = {{0}};
    cr_assert_null(rs_open_core(env_path("INSP_VICTIM"), NULL, &err));
    cr_assert(strstr(err.msg, "is not a core file"), "%s", err.msg);
    cr_assert_null(rs_open_core(env_path("INSP_VICTIM_SOURCE"), NULL, &err));
    cr_assert(strstr(err.msg, "is not a core file") && strstr(err.msg, "not an ELF file"), "%s",
              err.msg);
    cr_assert_null(rs_open_core("/nonexistent/core", NULL, &err));
    cr_assert(strstr(err.msg, "not found"), "%s", err.msg);
    cr_assert_null(rs_open_core(vc.core, "/nonexistent/victim", &err));
    cr_assert(strstr(err.msg, "executable /nonexistent/victim not found"), "%s", err.msg);
    cr_assert_null(rs_open_core(vc.core, env_path("INSP_VICTIM_SOURCE"), &err));
    cr_assert(strstr(err.msg, "not an ELF file"), "%s", err.msg);
    cr_assert_null(rs_open_core(vc.core, vc.core, &err));
    cr_assert(strstr(err.msg, "is a core file, not an executable"), "%s", err.msg);
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty", vc.dir);
    close(open(empty, O_CREAT | O_WRONLY, 0600));
    cr_assert_null(rs_open_core(empty, NULL, &err));
    cr_assert(strstr(err.msg, "empty"), "%s", err.msg);
    remove_tree(vc.dir);
}

static void copy_prefix(const char *from, const char *to, off_t len)
{
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cr_assert(in >= 0 && out >= 0);
    char buf[65536];
    off_t done = 0;
    while (done < len) {
        size_t want = (size_t)(len - done) < sizeof buf ? (size_t)(len - done) : sizeof buf;
        ssize_t n = read(in, buf, want);
        cr_assert(n > 0);
        cr_assert(write(out, buf, (size_t)n) == n);
        done += n;
    }
    close(in);
    close(out);
}

static size_t read_everything(rs_target *t)
{
    static char buf[1 << 20];
    size_t total = 0;
    for (size_t i = 0; i < rs_mapping_count(t); i++) {
        const rs_mapping *m = rs_mapping_get(t, i);
        for (uint64_t a = m->start; a < m->end; a += sizeof buf) {
            size_t n = m->end - a < sizeof buf ? (size_t)(m->end - a) : sizeof buf;
            total += rs_read(t, a, buf, n);
        }
    }
    return total;
}

Test(target, truncated_core)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "abort", NULL, &vc);
    struct stat st;
    cr_assert(stat(vc.core, &st) == 0);
    rs_target *full = open_core_ok(vc.core, NULL);
    size_t full_bytes = read_everything(full);
    rs_close(full);

    char half[600];
    snprintf(half, sizeof half, "%s/core.half", vc.dir);
    copy_prefix(vc.core, half, st.st_size / 2);
    rs_target *t = open_core_ok(half, NULL);
    cr_assert(has_warning(t, "is truncated"), "a truncated core must say so");
    size_t bytes = read_everything(t);
    cr_assert_lt(bytes, full_bytes, "reads of the missing half must fail");
    check_text(t, &vc.f); /* code still comes from the executable */
    const rs_frame *f;
    size_t n;
    for (size_t i = 0; i < rs_thread_count(t); i++)
        cr_assert(rs_thread_frames(t, i, &f, &n, NULL) == 0); /* no crash, maybe warnings */
    const rs_slot *slots;
    cr_assert(rs_pointer_slots(t, "rc_object", &slots, &n, NULL) == 0);
    rs_close(t);

    /* Cut inside the notes: no crash, a clear error or a warning. */
    snprintf(half, sizeof half, "%s/core.tiny", vc.dir);
    copy_prefix(vc.core, half, 1500);
    rs_error err = {{0}};
    t = rs_open_core(half, NULL, &err);
    if (t) {
        cr_assert_gt(rs_warning_count(t), 0);
        rs_close(t);
    } else {
        cr_assert_neq(err.msg[0], 0);
    }
    remove_tree(vc.dir);
}

Test(target, bulk_reads_of_a_big_core, .timeout = 120)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "big", "64", &vc);
    struct timespec a, b, c;
    clock_gettime(CLOCK_MONOTONIC, &a);
    rs_target *t = open_core_ok(vc.core, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    static uint64_t buf[(1 << 20) / 8];
    size_t total = 0;
    for (uint64_t off = 0; off < (64u << 20); off += sizeof buf) {
        size_t n = rs_read(t, vc.f.big + off, buf, sizeof buf);
        cr_assert_eq(n, sizeof buf, "short read at +0x%" PRIx64, off);
        for (size_t i = 0; i < sizeof buf / 8; i += 4099)
            cr_assert_eq(buf[i], 0xB16B00B500000000ULL | (off + i * 8));
        total += n;
    }
    clock_gettime(CLOCK_MONOTONIC, &c);
    fprintf(stderr, "big core: open %.2f ms, read 64 MiB in 1 MiB blocks: %.2f ms\n",
            (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6,
            (double)(c.tv_sec - b.tv_sec) * 1e3 + (double)(c.tv_nsec - b.tv_nsec) / 1e6);
    cr_assert_eq(total, 64u << 20);
    rs_close(t);
    remove_tree(vc.dir);
}

Test(target, gcore_core)
{
    victim_proc vp;
    spawn_sleeper(env_path("INSP_VICTIM"), &vp);
    char dir[256], prefix[300], core[400], pidstr[32];
    make_tmpdir(dir, sizeof dir);
    snprintf(prefix, sizeof prefix, "%s/gc", dir);
    snprintf(pidstr, sizeof pidstr, "%d", (int)vp.pid);
    pid_t g = fork();
    if (g == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("gcore", "gcore", "-o", prefix, pidstr, (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert(waitpid(g, &st, 0) == g);
    snprintf(core, sizeof core, "%s.%d", prefix, (int)vp.pid);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0 && access(core, R_OK) == 0)) {
        finish_sleeper(&vp);
        remove_tree(dir);
        cr_skip_test("gcore is not available or failed (status 0x%x)", st);
    }
    cr_assert(finish_sleeper(&vp), "the victim survives gcore");
    rs_target *t = open_core_ok(core, NULL);
    check_symbols(t, &vp.f);
    check_text(t, &vp.f);
    check_main_thread(t, &vp.f, false);
    rs_close(t);
    remove_tree(dir);
}

Test(target, live_process)
{
    victim_proc vp;
    spawn_sleeper(env_path("INSP_VICTIM"), &vp);
    rs_error err = {{0}};
    rs_target *t = rs_open_pid(vp.pid, NULL, &err);
    cr_assert(t, "rs_open_pid: %s", err.msg);
    cr_assert_eq(rs_kind(t), RS_TARGET_LIVE);
    cr_assert_eq(rs_pid(t), vp.pid);
    cr_assert_eq(rs_thread_get(t, 0)->tid, vp.pid, "the main thread first");
    check_symbols(t, &vp.f);
    check_text(t, &vp.f);
    check_main_thread(t, &vp.f, false);
    check_slots(t, &vp.f);
    rs_close(t);
    cr_assert(finish_sleeper(&vp), "the process continues and exits normally after rs_close");
}

Test(target, live_errors)
{
    rs_error err = {{0}};
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    cr_assert_null(rs_open_pid(gone, NULL, &err));
    cr_assert(strstr(err.msg, "no such process"), "%s", err.msg);
    cr_assert_null(rs_open_pid(getpid(), NULL, &err));
    cr_assert_null(rs_open_pid(-5, NULL, &err));

    if (geteuid() != 0)
        return; /* the permission test needs root to become someone else */
    victim_proc vp;
    spawn_sleeper(env_path("INSP_VICTIM"), &vp);
    int pipefd[2];
    cr_assert(pipe(pipefd) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(pipefd[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        rs_target *t = rs_open_pid(vp.pid, NULL, &err);
        if (write(pipefd[1], err.msg, strlen(err.msg) + 1) < 0)
            _exit(4);
        _exit(t == NULL ? 0 : 1);
    }
    close(pipefd[1]);
    char msg[512] = "";
    if (read(pipefd[0], msg, sizeof msg - 1) < 0)
        msg[0] = 0;
    close(pipefd[0]);
    int st;
    waitpid(child, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "an unprivileged attach must fail");
    cr_assert(strstr(msg, "permission denied"), "%s", msg);
    cr_assert(finish_sleeper(&vp));
}

Test(target, memory_callback_target)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "abort", NULL, &vc);
    rs_target *core = open_core_ok(vc.core, NULL);
    rs_module_spec specs[16];
    size_t n = 0;
    for (size_t i = 0; i < rs_module_count(core) && n < 16; i++) {
        const rs_module *m = rs_module_get(core, i);
        specs[n++] = (rs_module_spec){m->path, m->bias};
    }
    rs_error err = {{0}};
    rs_target *t = rs_open_memory(rs_target_memory(core), specs, n, &err);
    cr_assert(t, "%s", err.msg);
    cr_assert_eq(rs_kind(t), RS_TARGET_MEMORY);
    cr_assert_eq(rs_thread_count(t), 0);
    check_symbols(t, &vc.f);
    check_text(t, &vc.f);
    check_slots(t, &vc.f);
    rs_close(t);
    rs_close(core);
    remove_tree(vc.dir);
}

Test(target, stripped_executable)
{
    victim_core vc;
    make_core(env_path("INSP_VICTIM"), "abort", NULL, &vc);
    char stripped[600], cmd[1400];
    snprintf(stripped, sizeof stripped, "%s/stripped", vc.dir);
    snprintf(cmd, sizeof cmd, "strip --strip-all -o '%s' '%s'", stripped, env_path("INSP_VICTIM"));
    if (system(cmd) != 0) {
        remove_tree(vc.dir);
        cr_skip_test("strip (binutils) is not available");
    }
    /* strip keeps the build-id: the core still matches the stripped file */
    rs_target *t = open_core_ok(vc.core, stripped);
    const rs_module *m = rs_module_get(t, 0);
    cr_assert(!m->has_dwarf, "a stripped file has no DWARF");
    cr_assert(has_warning(t, "stripped"), "no warning about the missing symbols and DWARF");
    rs_symbol s;
    rs_error err = {{0}};
    cr_assert_eq(rs_symbol_lookup(t, "cache", &s, &err), -1, "cache is in no symbol table");
    cr_assert(strstr(err.msg, "symbol cache not found in stripped"), "%s", err.msg);
    /* memory, text and the libraries' symbols still work */
    cr_assert_eq(read_u64(t, vc.f.cache_addr), vc.f.cache);
    cr_assert(rs_symbol_lookup(t, "lib_magic", &s, &err) == 0, "%s", err.msg);
    const rs_frame *f;
    size_t n;
    cr_assert(rs_thread_frames(t, 0, &f, &n, &err) == 0);
    cr_assert(frame_index(f, n, "abort") >= 0, "libc frames are still named");
    rs_close(t);
    remove_tree(vc.dir);
}
