/*
 * test_corrupt.c -- the corrupt-input catalogue (issue 8: "a leak tool is
 * used on programs that are already broken ... it must never crash, hang
 * or lie") and the live-mode safety test.
 *
 * Suite `corrupt`: the real refscope binary on broken cores. The cores are
 * made at test time: kernel cores (gdb's `generate-core-file` when the
 * kernel's go elsewhere) of progs/corrupt.c, which breaks its own registry
 * or heap in one way per mode right before abort(), of progs/plain.c (no
 * runtime), and copies of a good core cut short. Every entry asserts the
 * exit status `refscope --help` documents (0 report, 1 findings, 3 input
 * cannot be read), the key warning or error, that a partial report still
 * comes out where one can, and that every report finishes in seconds
 * without crashing (exit status below 4). The catalogue:
 *
 *   input                              exit  what refscope says
 *   cut inside the ELF header          3     "not a core file"
 *   cut inside the program headers     3     "program headers lie outside the file"
 *   cut inside the notes               3     warning "truncated inside its notes",
 *                                            error: rc_debug_registry unreadable
 *   cut inside the heap's arena        0/1   warnings "truncated", "arena 0 ... only N of M
 *                                            bytes readable"; the objects before the cut;
 *                                            check: "points at ..., which is unreadable memory"
 *   cut after the arena's pools        0     warning "truncated"; the whole heap; the
 *                                            stack is gone: warning "thread N: its stack
 *                                            ... is not readable" (leaks then overcount)
 *   program without the runtime        3     "does not use the refscope runtime"
 *   wrong executable (build-id)        3     "different build of ... (build-id"
 *   --exe stripped of DWARF only       0     warning "no DWARF"; names from the symbol table
 *   --exe stripped of everything       3     "is stripped (no symbol table, no DWARF)"
 *   registry magic overwritten         3     "bad magic"
 *   registry version 99                3     "registry version 99"
 *   refcount 0xfffffffe (-2)           0/1   warning "corrupt refcount"; refs: "is corrupt
 *                                            (-2 as a signed count)"; check: 1
 *   refcount 0x7fffffff                1     leaks: "2147483645 unexplained"
 *   ob_type -> unmapped / freed memory 0/1   warning "type at 0x... is unreadable"; shown as
 *                                            '?'; check: "type pointer ... is unreadable"
 *   large-object list loops            0/1   warning "a loop that misses the list head"
 *   generation lists cross             0/1   check: "generation 0 list ... not a tracked object"
 *   arena slot -> unmapped memory      0/1   warning "arena 1 at 0x7e0000000000: only 0 of"
 *   arena table -> unmapped memory     0     warning "arena table: only 0 of"; large objects
 *   field offset beyond the instance   0/1   warning and check: "field 'data' (offset 4096)
 *                                            lies outside its 32-byte instances"
 *   core taken inside rc_gc_collect    0     warning "core taken during a collection (phase
 *                                            finalize"; summary "COLLECTING ... phase
 *                                            finalize"; check skips the generation lists
 *   (0/1: reports exit 0, `check` 1)
 *
 * Suite `live`: progs/live_loop.c prints a checksum of its heap every
 * 100 ms; `refscope --pid` summary and cycles run on it several times; it
 * must keep running (never left stopped), its checksums must not change,
 * and it must end normally with its final line.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proctest.h"

/* Exit codes documented in `refscope --help`. */
enum { EXIT_OK = 0, EXIT_FINDINGS = 1, EXIT_USAGE = 2, EXIT_INPUT = 3, EXIT_INTERNAL = 4 };

#define REPORT_SECONDS 10.0    /* no report on these small cores may take longer */

/* ---- fixture (proctest.h: a temp dir, child processes) ---------------------------- */

static void setup(void) { pt_setup("refscope-corrupt"); }

TestSuite(corrupt, .init = setup, .fini = pt_teardown, .timeout = 100);
TestSuite(live, .init = setup, .fini = pt_teardown, .timeout = 100);

/* ---- small helpers --------------------------------------------------------------- */

#define assert_has(hay, needle)                                                             \
    cr_assert(strstr((hay), (needle)) != NULL, "expected '%s' in:\n%s", (needle), (hay))

/* ---- running commands -------------------------------------------------------------- */

/* refscope ARGS... (NULL-terminated). Whatever the input: no crash (exit
 * status below 4, no signal), done in seconds, stderr only "refscope: ..."
 * lines, and an error is the last line of stderr. */
static result refscope(const char *first, ...)
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)env("REFSCOPE");
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    result r = run_argv(argv);
    char cmd[1024] = "";
    for (size_t i = 1; i < n; i++)
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", argv[i]);
    cr_assert(r.code < EXIT_INTERNAL, "`refscope%s` crashed or failed inside (exit status %d)\n"
              "stdout:\n%s\nstderr:\n%s", cmd, r.code, r.out, r.err);
    cr_assert(r.seconds < REPORT_SECONDS, "`refscope%s` took %.1f s", cmd, r.seconds);
    for (const char *p = r.err; *p;) {
        size_t len = strcspn(p, "\n");
        cr_assert(strncmp(p, "refscope: ", 10) == 0 || strncmp(p, "try refscope --help", 19) == 0,
                  "stray stderr line from `refscope%s`: %.*s", cmd, (int)len, p);
        p += len + (p[len] == '\n');
    }
    return r;
}

#define assert_code(r, want)                                                                \
    cr_assert((r).code == (want), "exit status %d, expected %d\nstdout:\n%s\nstderr:\n%s",   \
              (r).code, (want), (r).out, (r).err)

/* Exit 3, nothing on stdout, the error (last stderr line) says `needle`. */
static void expect_input_error(result r, const char *needle)
{
    assert_code(r, EXIT_INPUT);
    cr_assert(r.out[0] == '\0', "a failed run printed a report:\n%s", r.out);
    const char *last = r.err;
    for (const char *p = r.err; *p; p++)
        if (*p == '\n' && p[1])
            last = p + 1;
    cr_assert(strncmp(last, "refscope: error: ", 17) == 0, "no error line:\n%s", r.err);
    assert_has(last, needle);
}

/* Every report on a core that loads: none crashes, each ends in time and
 * with 0, 1 (findings) or 2 (graph --cycle 1 without cycles). */
static void every_report(const char *core, const char *obj)
{
    static const char *const cmds[][3] = {
        {"types", NULL, NULL},   {"sites", NULL, NULL},      {"cycles", "--json", NULL},
        {"garbage", NULL, NULL}, {"roots", NULL, NULL},      {"leaks", NULL, NULL},
        {"retained", NULL, NULL}, {"check", "--json", NULL}, {"graph", "--cycle", "1"},
        {"refs", "OBJ", NULL},   {"path", "OBJ", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        const char *a1 = cmds[i][1] && !strcmp(cmds[i][1], "OBJ") ? obj : cmds[i][1];
        result r = refscope(core, cmds[i][0], a1, cmds[i][2], NULL);
        cr_assert(r.code == EXIT_OK || r.code == EXIT_FINDINGS ||
                      (r.code == EXIT_USAGE && !strcmp(cmds[i][0], "graph")),
                  "`refscope CORE %s` exit status %d\n%s%s", cmds[i][0], r.code, r.out, r.err);
        result_free(&r);
    }
}

/* ---- making cores ------------------------------------------------------------------ */

typedef struct victim {
    char *dir;    /* where it ran */
    char *core;
    char *out;    /* its stdout: the facts */
} victim;

/* Run `prog mode` in a new dir under tmp until it aborts; gdb = true runs
 * it under gdb, which writes the core (when the kernel's go elsewhere). */
static int run_to_abort(const char *dir, const char *outp, const char *prog, const char *mode,
                        bool gdb)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        if (setrlimit(RLIMIT_CORE, &rl) != 0) {
            getrlimit(RLIMIT_CORE, &rl);
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_CORE, &rl);
        }
        int in = open("/dev/null", O_RDONLY);
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0 || chdir(dir) != 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(o, 2);
        if (gdb)
            execlp("gdb", "gdb", "-batch", "-nx", "-ex", "run", "-ex", "generate-core-file core",
                   "--args", prog, mode, (char *)NULL);
        else
            execl(prog, prog, mode, (char *)NULL);
        _exit(127);
    }
    track_child(pid);
    int status;
    wait_child(pid, &status);
    return status;
}

static victim make_core(const char *prog, const char *mode)
{
    victim v = {0};
    v.dir = path_in("%s", mode);
    cr_assert(mkdir(v.dir, 0700) == 0, "mkdir %s: %s", v.dir, strerror(errno));
    char *outp = path_in("%s/out.txt", mode);
    int status = run_to_abort(v.dir, outp, prog, mode, false);
    v.out = read_file(outp);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "%s %s did not abort (status 0x%x); output:\n%s", prog, mode, status, v.out);
    v.core = find_core(v.dir);
    if (!v.core) { /* core_pattern sends kernel cores elsewhere: let gdb write one */
        free(v.out);
        status = run_to_abort(v.dir, outp, prog, mode, true);
        v.out = read_file(outp);
        v.core = find_core(v.dir);
        if (!v.core)
            cr_skip_test("no core of %s %s: kernel cores do not go to the cwd and gdb wrote "
                         "none (status 0x%x)", prog, mode, status);
    }
    free(outp);
    return v;
}

static victim corrupt_core(const char *mode) { return make_core(env("CORRUPT_PROG"), mode); }

/* The first n bytes of a file, as a new file in tmp. */
static char *truncated_copy(const char *path, size_t n, const char *name)
{
    char *copy = path_in("%s", name);
    int in = open(path, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(in >= 0 && out >= 0);
    static char buf[65536];
    while (n) {
        ssize_t r = read(in, buf, n < sizeof buf ? n : sizeof buf);
        cr_assert(r > 0, "%s is shorter than the cut", path);
        cr_assert(write(out, buf, (size_t)r) == r);
        n -= (size_t)r;
    }
    close(in);
    close(out);
    return copy;
}

/* Program headers of a core (malloc'd), for cut points. */
static Elf64_Phdr *core_phdrs(const char *core, Elf64_Ehdr *eh)
{
    int fd = open(core, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert(pread(fd, eh, sizeof *eh, 0) == (ssize_t)sizeof *eh);
    size_t n = (size_t)eh->e_phnum * sizeof(Elf64_Phdr);
    Elf64_Phdr *ph = malloc(n);
    cr_assert(pread(fd, ph, n, (off_t)eh->e_phoff) == (ssize_t)n);
    close(fd);
    return ph;
}

/* "Node@0x..." of a fact. */
static char *obj(const victim *v, const char *type, const char *name)
{
    char *addr = fact(v->out, name);
    char *s = malloc(strlen(type) + strlen(addr) + 2);
    sprintf(s, "%s@%s", type, addr);
    free(addr);
    return s;
}

/* ---- truncated cores ---------------------------------------------------------------- */

Test(corrupt, truncated_inside_headers)
{
    victim v = corrupt_core("ok");
    Elf64_Ehdr eh;
    free(core_phdrs(v.core, &eh));

    char *c = truncated_copy(v.core, 40, "elfheader.core"); /* e_phoff is at 32..40 */
    result r = refscope(c, "summary", NULL);
    expect_input_error(r, "not a core file");
    result_free(&r);

    size_t mid = (size_t)eh.e_phoff + (size_t)eh.e_phnum * sizeof(Elf64_Phdr) / 2;
    c = truncated_copy(v.core, mid, "phdrs.core");
    r = refscope(c, "summary", NULL);
    expect_input_error(r, "program headers lie outside the file");
    result_free(&r);
}

Test(corrupt, truncated_inside_notes)
{
    victim v = corrupt_core("ok");
    Elf64_Ehdr eh;
    Elf64_Phdr *ph = core_phdrs(v.core, &eh);
    size_t cut = 0;
    for (int i = 0; i < eh.e_phnum && !cut; i++)
        if (ph[i].p_type == PT_NOTE)
            cut = (size_t)(ph[i].p_offset + ph[i].p_filesz / 2);
    cr_assert(cut, "the core has no PT_NOTE");
    char *c = truncated_copy(v.core, cut, "notes.core");
    result r = refscope(c, "--exe", env("CORRUPT_PROG"), "summary", NULL);
    expect_input_error(r, "cannot read rc_debug_registry");
    assert_has(r.err, "refscope: warning: core file ");
    assert_has(r.err, "is truncated inside its notes");
    result_free(&r);
    free(ph);
}

/* The segment holding the arena (from the program's fact), its file offset. */
static uint64_t arena_offset(const victim *v)
{
    char *a = fact(v->out, "arena0");
    uint64_t arena = strtoull(a, NULL, 16);
    free(a);
    Elf64_Ehdr eh;
    Elf64_Phdr *ph = core_phdrs(v->core, &eh);
    uint64_t off = 0;
    for (int i = 0; i < eh.e_phnum && !off; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr <= arena &&
            arena < ph[i].p_vaddr + ph[i].p_filesz)
            off = ph[i].p_offset + (arena - ph[i].p_vaddr);
    free(ph);
    cr_assert(off, "no core segment holds the arena");
    return off;
}

Test(corrupt, truncated_inside_arena)
{
    victim v = corrupt_core("ok");
    uint64_t off = arena_offset(&v);
    char *a = obj(&v, "Node", "cycle_a");

    /* 24 KiB into the arena: pool 0 (lists, dicts) whole, pool 1 half, pool 2 (the
     * Nodes) gone */
    char *nodes = fact(v.out, "nodes");
    char *c = truncated_copy(v.core, (size_t)off + 24 * 1024, "arena.core");
    result r = refscope(c, "summary", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "is truncated (");
    assert_has(r.err, "refscope: warning: arena 0 at ");
    assert_has(r.err, "only 24576 of ");
    assert_has(r.out, "heap summary");
    result_free(&r);
    r = refscope(c, "refs", nodes, NULL); /* the list of Nodes: its items are gone */
    assert_code(r, EXIT_OK);
    assert_has(r.out, "list@");
    result_free(&r);
    r = refscope(c, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "reference: list[0] points at 0x");
    assert_has(r.out, "which is unreadable memory");
    assert_has(r.out, "arena: arena 0: only 24576 of 49152 carved bytes readable");
    result_free(&r);
    every_report(c, nodes);
    free(nodes);

    /* after the pools in use: everything is there, the stack is not */
    c = truncated_copy(v.core, (size_t)off + 512 * 1024, "arena-half.core");
    r = refscope(c, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "is truncated (");
    assert_has(r.out, a);
    result_free(&r);
    /* what only the (missing) stack holds looks unexplained: said so */
    r = refscope(c, "leaks", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.err, "refscope: warning: thread ");
    assert_has(r.err, "is not readable (a truncated core?): objects only its frames hold will "
                      "look unexplained");
    result_free(&r);
    free(a);
}

/* ---- the wrong program ------------------------------------------------------------- */

Test(corrupt, program_without_runtime)
{
    victim v = make_core(env("CORRUPT_PLAIN"), "plain");
    result r = refscope(v.core, "summary", NULL);
    expect_input_error(r, "corrupt_plain does not use the refscope runtime (no rc_debug_registry "
                          "symbol)");
    result_free(&r);
}

Test(corrupt, wrong_executable)
{
    victim v = corrupt_core("ok");
    result r = refscope(v.core, "--exe", env("CORRUPT_VARIANT"), "summary", NULL);
    expect_input_error(r, "core was produced by a different build of corrupt_variant (build-id ");
    result_free(&r);
}

/* strip(1) a copy of the program into tmp (a relative --exe: the CLI's cwd
 * is tmp), keeping its build-id. */
static const char *stripped_copy(const char *how, const char *name)
{
    char *copy = path_in("%s", name);
    char *argv[] = {"strip", (char *)how, "-o", copy, (char *)env("CORRUPT_PROG"), NULL};
    result s = run_argv(argv);
    if (s.code == 127)
        cr_skip_test("strip is not installed (binutils)");
    cr_assert_eq(s.code, 0, "strip: %s", s.err);
    result_free(&s);
    free(copy);
    return name;
}

Test(corrupt, executable_stripped_of_debug_info)
{
    victim v = corrupt_core("ok");
    const char *exe = stripped_copy("--strip-debug", "nodebug");
    result r = refscope(v.core, "--exe", exe, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: no DWARF in nodebug: C globals and source lines "
                      "unavailable, using the symbol table");
    /* type names and sites still come from the file's read-only data */
    char *a = obj(&v, "Node", "cycle_a");
    assert_has(r.out, a);
    assert_has(r.out, "(corrupt.c:");
    result_free(&r);
    free(a);
}

Test(corrupt, executable_stripped_of_everything)
{
    victim v = corrupt_core("ok");
    const char *exe = stripped_copy("--strip-all", "stripped");
    result r = refscope(v.core, "--exe", exe, "summary", NULL);
    expect_input_error(r, "stripped is stripped (no symbol table, no DWARF): cannot find "
                          "rc_debug_registry");
    result_free(&r);
}

/* ---- a broken registry ------------------------------------------------------------- */

Test(corrupt, registry_bad_magic)
{
    victim v = corrupt_core("magic");
    result r = refscope(v.core, "summary", NULL);
    char *reg = fact(v.out, "registry");
    expect_input_error(r, "no refscope registry at ");
    assert_has(r.err, reg);
    assert_has(r.err, "(bad magic;");
    result_free(&r);
    free(reg);
}

Test(corrupt, registry_bad_version)
{
    victim v = corrupt_core("version");
    result r = refscope(v.core, "cycles", NULL);
    expect_input_error(r, "registry version 99 at ");
    assert_has(r.err, "this engine reads version 2");
    result_free(&r);
}

/* ---- broken objects ---------------------------------------------------------------- */

Test(corrupt, negative_and_huge_refcounts)
{
    victim v = corrupt_core("refcounts");
    char *neg = fact(v.out, "negative"), *huge = obj(&v, "Node", "huge");

    result r = refscope(v.core, "summary", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: 1 objects have a corrupt refcount");
    assert_has(r.err, neg);
    result_free(&r);

    r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "refcount: corrupt refcount 4294967294");
    result_free(&r);

    /* no equation that does not add up */
    r = refscope(v.core, "refs", neg, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "refcount 4294967294 is corrupt (-2 as a signed count), not reconciled");
    cr_assert(!strstr(r.out, "refcount 4294967294 ="), "%s", r.out);
    result_free(&r);

    r = refscope(v.core, "leaks", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, huge);
    assert_has(r.out, "refcount 2147483647 = 1 heap references");
    assert_has(r.out, "2147483645 unexplained");
    result_free(&r);
    every_report(v.core, neg);
    free(neg);
    free(huge);
}

Test(corrupt, dangling_type_pointers)
{
    victim v = corrupt_core("dangling-type");
    char *ut = fact(v.out, "unmapped_type"), *un = fact(v.out, "unmapped");
    char want[128];

    result r = refscope(v.core, "summary", NULL);
    assert_code(r, EXIT_OK);
    snprintf(want, sizeof want, "refscope: warning: type at %s is unreadable", ut);
    assert_has(r.err, want);
    assert_has(r.out, "objects       16 ");
    result_free(&r);

    r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    snprintf(want, sizeof want, "type: type pointer %s is unreadable", ut);
    assert_has(r.out, want);
    result_free(&r);

    r = refscope(v.core, "refs", un, NULL);
    assert_code(r, EXIT_OK);
    snprintf(want, sizeof want, "?@%s", un);
    assert_has(r.out, want);
    result_free(&r);
    every_report(v.core, un);
    free(ut);
    free(un);
}

Test(corrupt, large_object_list_loops)
{
    victim v = corrupt_core("large-loop");
    char *a = obj(&v, "Node", "cycle_a"), *nodes = fact(v.out, "nodes");
    result r = refscope(v.core, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: large-object list: a loop that misses the list head");
    assert_has(r.out, a);
    result_free(&r);

    r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "large objects counted, 2 live on the large list");
    result_free(&r);
    every_report(v.core, nodes);
    free(a);
    free(nodes);
}

Test(corrupt, generation_lists_cross)
{
    victim v = corrupt_core("gen-cross");
    char *a = obj(&v, "Node", "cycle_a"), *g2 = fact(v.out, "gen2_first");
    result r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "gc-list: generation 0 list holds an object whose flags say tracked, "
                      "generation 2");
    assert_has(r.out, "is not a tracked object");
    assert_has(r.out, "tracked, but on no generation list");
    result_free(&r);

    /* the object table does not come from the lists: the answers stand */
    r = refscope(v.core, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, a);
    result_free(&r);
    every_report(v.core, g2);
    free(a);
    free(g2);
}

Test(corrupt, arena_slot_outside_the_core)
{
    victim v = corrupt_core("arena-outside");
    char *a = obj(&v, "Node", "cycle_a");
    result r = refscope(v.core, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: arena 1 at 0x7e0000000000: only 0 of 1048576 bytes "
                      "readable");
    assert_has(r.out, a);
    result_free(&r);

    r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "arena 1 at 0x7e0000000000");
    result_free(&r);
    every_report(v.core, a + 5);
    free(a);
}

Test(corrupt, arena_table_outside_the_core)
{
    victim v = corrupt_core("table-outside");
    char *big = obj(&v, "Node", "big");
    result r = refscope(v.core, "summary", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: arena table: only 0 of ");
    /* what is left: the large objects (two bytes, one Node) */
    assert_has(r.out, "objects       3 ");
    result_free(&r);

    r = refscope(v.core, "types", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "bytes");
    result_free(&r);
    every_report(v.core, big + 5);
    free(big);
}

Test(corrupt, field_offset_outside_the_object)
{
    victim v = corrupt_core("field-offset");
    char *chain = fact(v.out, "chain");
    result r = refscope(v.core, "summary", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: type Node at 0x");
    assert_has(r.err, "field 'data' (offset 4096) lies outside its 32-byte instances");
    result_free(&r);

    r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "type: type Node: field 'data' (offset 4096) lies outside its 32-byte "
                      "instances");
    result_free(&r);
    every_report(v.core, chain);
    free(chain);
}

Test(corrupt, core_taken_mid_collection)
{
    victim v = corrupt_core("midcollect");
    char *x = fact(v.out, "dying_x"), *fin = fact(v.out, "finalizing");
    cr_assert_str_eq(x, fin, "the first finalizer did not run on dying_x");

    result r = refscope(v.core, "summary", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: core taken during a collection (phase finalize, "
                      "generation 2)");
    assert_has(r.out, "COLLECTING generation 2, phase finalize");
    result_free(&r);

    r = refscope(v.core, "summary", "--json", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "\"collecting\": true");
    assert_has(r.out, "\"phase\": \"finalize\"");
    result_free(&r);

    /* generation lists are in flux then: check says it leaves them alone */
    r = refscope(v.core, "check", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "(generation lists not checked: core taken during a collection)");
    result_free(&r);

    r = refscope(v.core, "refs", x, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "flags tracked,finalized");
    result_free(&r);
    every_report(v.core, x);
    free(x);
    free(fin);
}

/* ---- live mode ----------------------------------------------------------------------- */

typedef struct running {
    pid_t pid;
    int in, out;
    char buf[1 << 17];
    size_t len;
} running;

/* Read until `until` appears in what was read after `from`, or EOF. */
static bool read_until(running *p, size_t from, const char *until)
{
    while (!strstr(p->buf + from, until)) {
        struct pollfd pf = {.fd = p->out, .events = POLLIN};
        int r = poll(&pf, 1, CHILD_TIMEOUT_MS);
        cr_assert(r > 0, "the program said nothing for %d ms; so far:\n%s", CHILD_TIMEOUT_MS,
                  p->buf);
        cr_assert(p->len + 1 < sizeof p->buf, "too much output");
        ssize_t n = read(p->out, p->buf + p->len, sizeof p->buf - p->len - 1);
        if (n <= 0)
            return false;
        p->len += (size_t)n;
        p->buf[p->len] = '\0';
    }
    return true;
}

static void start(running *p, const char *prog)
{
    int in[2], out[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0);
    memset(p, 0, sizeof *p);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        if (chdir(tmp) != 0)
            _exit(126);
        execl(prog, prog, (char *)NULL);
        _exit(127);
    }
    track_child(pid);
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->in = in[1];
    p->out = out[0];
}

/* The process's state letter from /proc/PID/stat ('R', 'S', 'T', ...). */
static char proc_state(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *st = read_file(path);
    char *paren = strrchr(st, ')');
    char c = paren && paren[1] == ' ' ? paren[2] : '?';
    free(st);
    return c;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(live, pid_reads_leave_the_program_running_and_unchanged)
{
    running p;
    start(&p, env("LIVE_LOOP"));
    cr_assert(read_until(&p, 0, "checksum 0 "), "no first checksum:\n%s", p.buf);
    char *a = NULL;
    {
        char *addr = fact(p.buf, "cycle_a");
        a = malloc(strlen(addr) + 8);
        sprintf(a, "Node@%s", addr);
        free(addr);
    }
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)p.pid);

    for (int round = 0; round < 3; round++) {
        result r = refscope("--pid", pid, "summary", NULL);
        assert_code(r, EXIT_OK);
        assert_has(r.out, "heap summary");
        assert_has(r.out, "objects       ");
        result_free(&r);
        char s = proc_state(p.pid);
        cr_assert(s != 'T' && s != 't' && s != 'Z', "after summary the program is '%c'", s);

        r = refscope("--pid", pid, "cycles", NULL);
        assert_code(r, EXIT_OK);
        assert_has(r.out, a);
        result_free(&r);
        s = proc_state(p.pid);
        cr_assert(s != 'T' && s != 't' && s != 'Z', "after cycles the program is '%c'", s);

        /* it goes on computing: one more checksum line after the reads */
        size_t mark = p.len;
        cr_assert(read_until(&p, mark, "\nchecksum "), "no checksum after the reads:\n%s",
                  p.buf);
    }

    cr_assert(write(p.in, "stop\n", 5) == 5);
    close(p.in);
    read_until(&p, 0, "\n\xff"); /* to EOF */
    close(p.out);
    int status;
    wait_child(p.pid, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the program did not exit normally (status 0x%x):\n%s", status, p.buf);

    /* every checksum the same, the final line as without refscope */
    cr_assert(!strstr(p.buf, "CHANGED"), "the heap changed while refscope read it:\n%s", p.buf);
    cr_assert(count(p.buf, "checksum ") >= 5, "too few checksums:\n%s", p.buf);
    const char *first = strstr(p.buf, "checksum 0 ");
    char value[17];
    memcpy(value, first + strlen("checksum 0 "), 16);
    value[16] = '\0';
    for (const char *q = first; (q = strstr(q, "\nchecksum ")); q++) {
        const char *v = strchr(q + 10, ' ');
        cr_assert(v && strncmp(v + 1, value, 16) == 0, "a checksum differs:\n%s", p.buf);
    }
    char final[128];
    snprintf(final, sizeof final, "final: checksum %s unchanged, ", value);
    assert_has(p.buf, final);
    assert_has(p.buf, "collected 2\n");
    free(a);
}
