/*
 * test_cli.c -- the `refscope` command against real cores.
 *
 * Every test makes its inputs at test time from the programs in progs/
 * (built by meson, paths in the environment): kernel cores (fork,
 * RLIMIT_CORE, chdir to a temp dir, exec, abort), `gcore` cores of a program
 * waiting on a pipe, and live processes. It then runs the real refscope
 * binary and asserts on its stdout, stderr and exit status. The victims
 * print "fact NAME VALUE" lines (object addresses, expected numbers), so the
 * assertions name exactly the objects the program planted.
 *
 * Each test has its own temp dir, removed by the fixture; child processes
 * die with the test (PR_SET_PDEATHSIG) and are killed by the fixture.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <ctype.h>
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


/* ---- fixture (proctest.h: a temp dir, child processes) ---------------------------- */

/* Three suites, run as three meson tests (each within its own time limit):
 * command-line and input errors, reports on one kernel core, and the other
 * kinds of targets (builds, gcore, live, JSON, diff). */
static void setup(void) { pt_setup("refscope-cli"); }

TestSuite(cli_errors, .init = setup, .fini = pt_teardown, .timeout = 100);
TestSuite(cli_reports, .init = setup, .fini = pt_teardown, .timeout = 100);
TestSuite(cli_targets, .init = setup, .fini = pt_teardown, .timeout = 100);

/* ---- small helpers --------------------------------------------------------------- */

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Line number of the first line of the victim's source holding marker. */
static int source_line(const char *marker)
{
    char *src = read_file(env("CLI_VICTIM_SOURCE"));
    char *hit = strstr(src, marker);
    cr_assert_not_null(hit, "no %s in victim.c", marker);
    int line = 1;
    for (char *p = src; p < hit; p++)
        line += *p == '\n';
    free(src);
    return line;
}

#define assert_has(hay, needle, ...)                                                        \
    cr_assert(strstr((hay), (needle)) != NULL, "expected '%s' in:\n%s", (needle), (hay))
#define assert_lacks(hay, needle)                                                           \
    cr_assert(strstr((hay), (needle)) == NULL, "did not expect '%s' in:\n%s", (needle), (hay))

/* ---- running commands -------------------------------------------------------------- */

/* refscope ARGS... (NULL-terminated) */
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
    /* What every run must respect: warnings and errors are "refscope: ..." lines. */
    for (const char *p = r.err; *p;) {
        size_t len = strcspn(p, "\n");
        cr_assert(strncmp(p, "refscope: ", 10) == 0 || strncmp(p, "try refscope --help", 19) == 0,
                  "stray stderr line from `refscope %s`: %.*s", first, (int)len, p);
        p += len + (p[len] == '\n');
    }
    return r;
}

#define assert_code(r, want)                                                                \
    cr_assert((r).code == (want), "exit status %d, expected %d\nstdout:\n%s\nstderr:\n%s",   \
              (r).code, (want), (r).out, (r).err)

/* ---- making cores ------------------------------------------------------------------ */

/* Kernel cores land in the crashing process's cwd only when core_pattern
 * is a plain relative file name (no pipe to a crash handler, no dir). */
static void require_kernel_cores(void)
{
    char *pat = read_file("/proc/sys/kernel/core_pattern");
    bool ok = pat[0] && pat[0] != '|' && !strchr(pat, '/');
    if (!ok)
        cr_skip_test("kernel cores do not go to the cwd (core_pattern: %s)", pat);
    free(pat);
}

typedef struct victim {
    char *dir;    /* where it ran */
    char *core;   /* its core (abort and gcore) */
    char *out;    /* its stdout */
} victim;

/* Run prog with mode in a new dir under tmp; it must die by SIGABRT with a
 * core. stdout goes to DIR/out.txt. */
static victim kernel_core(const char *prog, const char *mode, const char *name)
{
    require_kernel_cores();
    victim v = {0};
    v.dir = path_in("%s", name);
    cr_assert(mkdir(v.dir, 0700) == 0, "mkdir %s: %s", v.dir, strerror(errno));
    char *outp = path_in("%s/out.txt", name);
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
        if (in < 0 || o < 0 || chdir(v.dir) != 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        execl(prog, prog, mode, (char *)NULL);
        _exit(127);
    }
    track_child(pid);
    int status;
    wait_child(pid, &status);
    v.out = read_file(outp);
    free(outp);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "%s %s did not abort (status 0x%x); output:\n%s", prog, mode, status, v.out);
    if (!WCOREDUMP(status))
        cr_skip_test("no core dumped (RLIMIT_CORE hard limit %s?)", "0");
    if (strcmp(mode, "abort") == 0) {
        v.core = find_core(v.dir);
        cr_assert_not_null(v.core, "%s dumped a core but it is not in %s", prog, v.dir);
    }
    return v;
}

/* A program in `wait` mode: running, stopped at "ready", stdin a pipe. */
typedef struct waiting {
    pid_t pid;
    int in;       /* write a line here to let it finish */
    int out;      /* its stdout */
    char buf[65536];
    size_t len;
} waiting;

/* Read from w->out until `until` appears in what was read or EOF. */
static bool read_until(waiting *w, const char *until)
{
    while (!strstr(w->buf, until)) {
        struct pollfd p = {.fd = w->out, .events = POLLIN};
        int r = poll(&p, 1, CHILD_TIMEOUT_MS);
        cr_assert(r > 0, "the victim said nothing for %d ms; so far:\n%s", CHILD_TIMEOUT_MS,
                  w->buf);
        ssize_t n = read(w->out, w->buf + w->len, sizeof w->buf - w->len - 1);
        if (n <= 0)
            return false;
        w->len += (size_t)n;
        w->buf[w->len] = '\0';
    }
    return true;
}

static void start_waiting(waiting *w, const char *prog)
{
    int in[2], out[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0);
    memset(w, 0, sizeof *w);
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
        execl(prog, prog, "wait", (char *)NULL);
        _exit(127);
    }
    track_child(pid);
    close(in[0]);
    close(out[1]);
    w->pid = pid;
    w->in = in[1];
    w->out = out[0];
    cr_assert(read_until(w, "ready\n"), "the victim exited before 'ready':\n%s", w->buf);
}

/* Let it finish; returns its exit status, its whole output in w->buf. */
static int finish_waiting(waiting *w)
{
    cr_assert(write(w->in, "go\n", 3) == 3);
    close(w->in);
    read_until(w, "\nfinal:");
    read_until(w, "\n\xff"); /* to EOF */
    close(w->out);
    int status;
    wait_child(w->pid, &status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *gcore(pid_t pid)
{
    char *prefix = path_in("gcore");
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
    char *argv[] = {"gcore", "-o", prefix, pidbuf, NULL};
    result r = run_argv(argv);
    if (r.code == 127)
        cr_skip_test("gcore is not installed (apt-get install gdb)");
    char *core = path_in("gcore.%d", (int)pid);
    cr_assert(r.code == 0 && is_core_file(core), "gcore failed (%d):\n%s%s", r.code, r.out,
              r.err);
    result_free(&r);
    free(prefix);
    return core;
}

/* ---- the victim's facts as the reports print them ------------------------------------ */

/* "Node@0x5555..." */
static char *obj(const victim *v, const char *type, const char *name)
{
    char *addr = fact(v->out, name);
    char *s = malloc(strlen(type) + strlen(addr) + 2);
    sprintf(s, "%s@%s", type, addr);
    free(addr);
    return s;
}

/* The one victim most tests read: a kernel core of the static build. */
static victim core_of_victim(void) { return kernel_core(env("CLI_VICTIM"), "abort", "v"); }

/* ---- command line and errors --------------------------------------------------------- */

Test(cli_errors, help_lists_every_command_and_exit_code)
{
    result r = refscope("--help", NULL);
    assert_code(r, EXIT_OK);
    const char *words[] = {"overview", "summary", "types", "sites", "refs OBJ", "cycles", "garbage",
                           "roots", "leaks", "path OBJ", "retained [OBJ]", "graph OBJ",
                           "--cycle N", "--depth D", "--backrefs", "--dot", "--png FILE",
                           "diff OLDCORE", "check", "--json", "--limit N", "--pid PID",
                           "--exe PROGRAM", "Exit status"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        assert_has(r.out, words[i]);
    for (int code = 0; code <= 4; code++) {
        char line[8];
        snprintf(line, sizeof line, "\n  %d  ", code);
        assert_has(r.out, line);
    }
    cr_assert_str_empty(r.err);
    result_free(&r);
}

/* A usage error: exactly "refscope: error: ..." + "try refscope --help", exit 2,
 * and nothing read (the core does not even exist). */
static void expect_usage_error(const char *needle, const char *a1, const char *a2,
                               const char *a3, const char *a4)
{
    result r = refscope(a1, a2, a3, a4, NULL);
    assert_code(r, EXIT_USAGE);
    cr_assert_str_empty(r.out);
    cr_assert_eq(count_lines(r.err), 2, "expected two lines:\n%s", r.err);
    cr_assert(strncmp(r.err, "refscope: error: ", 17) == 0, "%s", r.err);
    assert_has(r.err, needle);
    assert_has(r.err, "\ntry refscope --help\n");
    result_free(&r);
}

Test(cli_errors, usage_errors_exit_2_with_one_line)
{
    expect_usage_error("unknown command 'frobnicate'", "nocore", "frobnicate", NULL, NULL);
    expect_usage_error("refs", "nocore", "refs", NULL, NULL);
    expect_usage_error("--limit", "nocore", "types", "--limit", "many");
    expect_usage_error("unknown option '--frob'", "nocore", "summary", "--frob", NULL);
    expect_usage_error("graph", "nocore", "graph", NULL, NULL);
    expect_usage_error("--pid", "--pid", "x", "summary", NULL);
    expect_usage_error("no core file", "summary", NULL, NULL, NULL);
    expect_usage_error("no core file", NULL, NULL, NULL, NULL);
}

static void expect_input_error(result r, const char *needle)
{
    assert_code(r, EXIT_INPUT);
    cr_assert_str_empty(r.out);
    /* warnings may come first; the error is one line, the last */
    const char *last = r.err;
    for (const char *p = r.err; *p; p++)
        if (*p == '\n' && p[1])
            last = p + 1;
    cr_assert(strncmp(last, "refscope: error: ", 17) == 0, "no error line:\n%s", r.err);
    cr_assert_eq(count_lines(last), 1, "%s", r.err);
    assert_has(last, needle);
}

Test(cli_errors, missing_core_exits_3)
{
    char *missing = path_in("no-such-core");
    result r = refscope(missing, "summary", NULL);
    expect_input_error(r, "No such file or directory");
    assert_has(r.err, missing);
    result_free(&r);
}

Test(cli_errors, non_core_files_exit_3)
{
    result r = refscope(env("CLI_VICTIM_SOURCE"), "summary", NULL);
    expect_input_error(r, "");
    result_free(&r);
    r = refscope(env("CLI_VICTIM"), "summary", NULL); /* an ELF file, not a core */
    expect_input_error(r, "");
    result_free(&r);
}

Test(cli_errors, program_without_runtime_exits_3)
{
    victim v = kernel_core(env("CLI_PLAIN"), "abort", "plain");
    result r = refscope(v.core, "summary", NULL);
    expect_input_error(r, "cli_plain does not use the refscope runtime (no rc_debug_registry "
                          "symbol)");
    result_free(&r);
}

/* The first n bytes of a file, as a new file in tmp. */
static char *truncated_copy(const char *path, size_t n, const char *name)
{
    char *copy = path_in("%s", name);
    int in = open(path, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(in >= 0 && out >= 0);
    char buf[65536];
    while (n) {
        ssize_t r = read(in, buf, n < sizeof buf ? n : sizeof buf);
        cr_assert(r > 0);
        cr_assert(write(out, buf, (size_t)r) == r);
        n -= (size_t)r;
    }
    close(in);
    close(out);
    return copy;
}

/* Cores cut short: beyond use (no program headers, no registry) is exit 3;
 * a core missing only part of its memory gives an answer and a warning. */
Test(cli_errors, truncated_cores)
{
    victim v = core_of_victim();
    struct stat st;
    cr_assert(stat(v.core, &st) == 0);

    char *tiny = truncated_copy(v.core, 100, "tiny.core");
    result r = refscope(tiny, "--exe", env("CLI_VICTIM"), "summary", NULL);
    expect_input_error(r, "tiny.core");
    result_free(&r);

    char *notes = truncated_copy(v.core, 5000, "notes.core");
    r = refscope(notes, "--exe", env("CLI_VICTIM"), "summary", NULL);
    expect_input_error(r, "rc_debug_registry");
    assert_has(r.err, "refscope: warning: core file ");
    result_free(&r);

    /* the last segments (stack, libraries' data) go missing first */
    char *part = truncated_copy(v.core, (size_t)st.st_size - 65536, "part.core");
    r = refscope(part, "--exe", env("CLI_VICTIM"), "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: core file ");
    assert_has(r.err, "truncated");
    char *a = obj(&v, "Node", "cycle_a");
    assert_has(r.out, a);
    result_free(&r);
    free(a);
    free(tiny);
    free(notes);
    free(part);
}

/* A copy of the victim whose build-id differs in its last byte. */
static char *victim_with_other_build_id(void)
{
    char *copy = path_in("cli_victim");
    char *argv[] = {"cp", (char *)env("CLI_VICTIM"), copy, NULL};
    result r = run_argv(argv);
    cr_assert_eq(r.code, 0);
    result_free(&r);

    int fd = open(copy, O_RDWR);
    cr_assert(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    unsigned char *f = malloc((size_t)st.st_size);
    cr_assert(pread(fd, f, (size_t)st.st_size, 0) == st.st_size);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)f;
    Elf64_Phdr *ph = (Elf64_Phdr *)(f + eh->e_phoff);
    bool patched = false;
    for (int i = 0; i < eh->e_phnum && !patched; i++) {
        if (ph[i].p_type != PT_NOTE)
            continue;
        for (size_t off = ph[i].p_offset; off + sizeof(Elf64_Nhdr) <= ph[i].p_offset + ph[i].p_filesz;) {
            Elf64_Nhdr *nh = (Elf64_Nhdr *)(f + off);
            size_t name_off = off + sizeof *nh;
            size_t desc_off = name_off + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                memcmp(f + name_off, "GNU", 4) == 0 && nh->n_descsz > 0) {
                unsigned char b = f[desc_off + nh->n_descsz - 1] ^ 0x5a;
                cr_assert(pwrite(fd, &b, 1, (off_t)(desc_off + nh->n_descsz - 1)) == 1);
                patched = true;
                break;
            }
            off = desc_off + ((nh->n_descsz + 3) & ~3u);
        }
    }
    close(fd);
    free(f);
    cr_assert(patched, "cli_victim has no GNU build-id note");
    return copy;
}

Test(cli_errors, wrong_exe_exits_3)
{
    victim v = core_of_victim();
    char *other = victim_with_other_build_id();
    result r = refscope(v.core, "--exe", other, "summary", NULL);
    expect_input_error(r, "build-id");
    result_free(&r);

    r = refscope(v.core, "--exe", env("CLI_PLAIN"), "summary", NULL);
    expect_input_error(r, "different build of cli_plain");
    result_free(&r);
}

/* ---- reports on a kernel core of the static build -------------------------------------- */

Test(cli_reports, summary_of_kernel_core)
{
    victim v = core_of_victim();
    result r = refscope(v.core, "summary", NULL);
    assert_code(r, EXIT_OK);
    cr_assert_str_not_empty(r.out);
    assert_lacks(r.err, "error");
    result_free(&r);

    /* --exe naming the right program is accepted */
    r = refscope(v.core, "--exe", env("CLI_VICTIM"), "types", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "Node");
    assert_has(r.out, "LegacyNode");
    result_free(&r);
}

/* The three members of the planted cycle, in one cycle, linked by Node.next. */
static void expect_planted_cycle(const victim *v, const char *core)
{
    char *a = obj(v, "Node", "cycle_a"), *b = obj(v, "Node", "cycle_b"),
         *c = obj(v, "Node", "cycle_c");
    result r = refscope(core, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, a);
    assert_has(r.out, b);
    assert_has(r.out, c);
    assert_has(r.out, "-> Node.next ->");
    assert_has(r.out, "cycle 1: 3 objects");
    /* reachable objects are not in any cycle report */
    char *cache = obj(v, "Node", "cache"), *leak = obj(v, "Node", "leaked");
    assert_lacks(r.out, cache);
    assert_lacks(r.out, leak);
    result_free(&r);

    /* path of a cycle member: it is unreachable, and its holder is the cycle */
    r = refscope(core, "path", strchr(b, '@') + 1, NULL);
    cr_assert(r.code == EXIT_OK || r.code == EXIT_FINDINGS, "path: %d\n%s", r.code, r.err);
    assert_has(r.out, b);
    assert_has(r.out, "unreachable");
    result_free(&r);
    free(a);
    free(b);
    free(c);
    free(cache);
    free(leak);
}

Test(cli_reports, planted_cycle_found_in_kernel_core)
{
    victim v = core_of_victim();
    expect_planted_cycle(&v, v.core);
}

/* C globals nobody registered, named by DWARF: a static pointer and a member
 * of a static struct. */
static void expect_dwarf_roots(const victim *v, const char *core)
{
    result r = refscope(core, "roots", NULL);
    assert_code(r, EXIT_OK);
    char *cache = obj(v, "Node", "cache"), *cur = obj(v, "Node", "app_current"),
         *tree = obj(v, "Node", "tree");
    char want[256];
    snprintf(want, sizeof want, "C global 'cache' -> %s", cache);
    assert_has(r.out, want);
    snprintf(want, sizeof want, "C global 'app.current' -> %s", cur);
    assert_has(r.out, want);
    snprintf(want, sizeof want, "C global 'tree' -> %s", tree);
    assert_has(r.out, want);
    /* the runtime's own registry is not a C global root */
    assert_lacks(r.out, "C global 'rc_debug_registry");
    free(tree);
    result_free(&r);

    char *next = fact(v->out, "cache_next");
    r = refscope(core, "path", next, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "C global 'cache'");
    assert_has(r.out, "cache -> Node.next");
    result_free(&r);

    char *current = fact(v->out, "app_current");
    r = refscope(core, "path", current, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "C global 'app.current'");
    result_free(&r);

    /* a global name works as OBJ */
    r = refscope(core, "refs", "cache", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, cache);
    result_free(&r);
    free(cache);
    free(cur);
    free(next);
    free(current);
}

Test(cli_reports, static_globals_named_by_dwarf)
{
    victim v = core_of_victim();
    expect_dwarf_roots(&v, v.core);
}

Test(cli_reports, closure_cell_named)
{
    victim v = core_of_victim();
    char *huge = fact(v.out, "huge_data");
    result r = refscope(v.core, "path", huge, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "closure process cell 'huge_data'");
    assert_has(r.out, "process");
    result_free(&r);

    r = refscope(v.core, "refs", huge, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "closure process cell 'huge_data'");
    result_free(&r);

    /* roots lists closures and what their cells hold */
    char *bytes = obj(&v, "bytes", "huge_data");
    char want[256];
    snprintf(want, sizeof want, "closure process cell 'huge_data' -> %s", bytes);
    r = refscope(v.core, "roots", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "closure 'process'");
    assert_has(r.out, want);
    /* its code, named by the CLI's symbolizer from DWARF: the entry address
     * is on the line of the declaration or of its opening brace */
    int decl = source_line("static rc_object *process_fn");
    char want2[256];
    snprintf(want, sizeof want, "process_fn (victim.c:%d)", decl);
    snprintf(want2, sizeof want2, "process_fn (victim.c:%d)", decl + 1);
    cr_assert(strstr(r.out, want) || strstr(r.out, want2), "expected '%s' in:\n%s", want2,
              r.out);
    result_free(&r);
    free(bytes);
    free(huge);
}

/* A stack slot found by the conservative scan, named by its frame. */
Test(cli_reports, stack_local_named_by_frame)
{
    victim v = core_of_victim();
    char *local = fact(v.out, "stack_local"), *pid = fact(v.out, "pid");
    result r = refscope(v.core, "path", local, NULL);
    assert_code(r, EXIT_OK);
    char want[128];
    snprintf(want, sizeof want, "stack 'thread %s frame #", pid);
    assert_has(r.out, want);
    assert_has(r.out, " abort_holding()'");
    result_free(&r);

    r = refscope(v.core, "refs", local, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "refcount 1 = 0 heap references + 0 roots + 1 stack slots");
    result_free(&r);
    free(local);
    free(pid);
}

Test(cli_reports, missing_decref_is_a_leak)
{
    victim v = core_of_victim();
    char *leak = obj(&v, "Node", "leaked");
    char site[64];
    snprintf(site, sizeof site, "victim.c:%d", source_line("LEAK-SITE"));
    result r = refscope(v.core, "leaks", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, leak);
    assert_has(r.out, site);
    /* correctly counted objects are not leaks */
    char *cache = obj(&v, "Node", "cache");
    assert_lacks(r.out, cache);
    result_free(&r);
    free(leak);
    free(cache);
}

Test(cli_reports, legacy_finalizer_cycle_in_garbage)
{
    victim v = core_of_victim();
    char *legacy_collected = fact(v.out, "legacy_collected");
    cr_assert_str_eq(legacy_collected, "2");
    char *a = obj(&v, "LegacyNode", "legacy_a"), *b = obj(&v, "LegacyNode", "legacy_b");
    result r = refscope(v.core, "garbage", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, a);
    assert_has(r.out, b);
    assert_has(r.out, "legacy");
    result_free(&r);
    free(a);
    free(b);
    free(legacy_collected);
}

/* overview: the summary, the planted cycle, the planted leak and the top
 * retainers in one report, with leaks' exit status; --json has the four. */
Test(cli_reports, overview_in_one_report)
{
    victim v = core_of_victim();
    char *leak = obj(&v, "Node", "leaked");
    result r = refscope(v.core, "overview", NULL);
    assert_code(r, EXIT_FINDINGS);
    assert_has(r.out, "heap summary (registry ");
    assert_has(r.out, "\ncycles: a full collection would free ");
    assert_has(r.out, "\nleaks: 1 objects hold 1 references no holder explains");
    assert_has(r.out, leak);
    assert_has(r.out, "\nretained sizes: ");
    result_free(&r);
    r = refscope(v.core, "overview", "--json", NULL);
    assert_code(r, EXIT_FINDINGS);
    const char *keys[] = {"\"command\": \"overview\"", "\"summary\": {", "\"cycles\": {",
                          "\"leaks\": {", "\"retained\": {"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        assert_has(r.out, keys[k]);
    result_free(&r);
    free(leak);
}

/* A heap over the engine's thresholds for two threads (BIG Nodes in a
 * chain, unreachable pairs): every report the same with REFSCOPE_THREADS=1
 * and 2, whatever the machine has; also when a pool header's block count
 * misleads the second thread's placement (too high: a gap to close; too
 * low: the first thread reaches its objects and it is stopped). */
static void two_threads_same_reports(const char *mode)
{
    victim v = kernel_core(env("CLI_VICTIM"), mode, mode);
    char *dir = path_in("%s/big", mode);
    v.core = find_core(dir);
    cr_assert_not_null(v.core, "no core in %s", dir);
    const char *cmds[][4] = {{"overview", "--limit", "5", NULL},
                             {"cycles", "--limit", "0", NULL},
                             {"leaks", "--json", NULL, NULL},
                             {"retained", NULL, NULL, NULL},
                             {"refs", "big", NULL, NULL},
                             {"check", NULL, NULL, NULL}};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        result r[2];
        for (int t = 0; t < 2; t++) {
            setenv("REFSCOPE_THREADS", t ? "2" : "1", 1);
            r[t] = refscope(v.core, cmds[k][0], cmds[k][1], cmds[k][2], cmds[k][3], NULL);
            unsetenv("REFSCOPE_THREADS");
        }
        /* (with the bad pool, `big` itself may be in it: refs then has no object) */
        cr_assert(r[0].code == EXIT_OK || r[0].code == EXIT_FINDINGS ||
                      (r[0].code == EXIT_USAGE && !strcmp(mode, "big-badpool")),
                  "%s: exit %d: %s", cmds[k][0], r[0].code, r[0].err);
        cr_assert_eq(r[1].code, r[0].code, "%s", cmds[k][0]);
        cr_assert_str_eq(r[1].out, r[0].out, "%s: %s differs on two threads", mode, cmds[k][0]);
        cr_assert_str_eq(r[1].err, r[0].err, "%s: %s: warnings differ", mode, cmds[k][0]);
        if (k == 0 && strcmp(mode, "big-badpool") != 0) {
            /* the pairs and the victim's own three-Node cycle */
            assert_has(r[0].out, "cycles: a full collection would free 60003 objects");
            assert_has(r[0].out, "(C global 'big')");
        }
        result_free(&r[0]);
        result_free(&r[1]);
    }
    free(dir);
}

Test(cli_reports, two_threads_same_reports) { two_threads_same_reports("big"); }
Test(cli_reports, two_threads_pool_count_high) { two_threads_same_reports("big-gap"); }
Test(cli_reports, two_threads_pool_count_low) { two_threads_same_reports("big-short"); }
Test(cli_reports, two_threads_bad_pool) { two_threads_same_reports("big-badpool"); }

/* The first number after `after` in s (0 if none). */
static unsigned long long number_after(const char *s, const char *after)
{
    const char *p = strstr(s, after);
    cr_assert_not_null(p, "expected '%s' in:\n%s", after, s);
    p += strlen(after);
    while (*p && !isdigit((unsigned char)*p))
        p++;
    return strtoull(p, NULL, 10);
}

/* tree -> list -> 3 leaves -> bytes(1000) each: 8 objects. */
Test(cli_reports, path_and_retained_on_known_graph)
{
    victim v = core_of_victim();
    char *data = fact(v.out, "tree_leaf1_data");
    result r = refscope(v.core, "path", data, NULL);
    assert_code(r, EXIT_OK);
    char *tree = obj(&v, "Node", "tree"), *leaf = obj(&v, "Node", "tree_leaf1"),
         *list = obj(&v, "list", "tree_list");
    assert_has(r.out, "tree -> Node.data -> list[1] -> Node.data");
    assert_has(r.out, "C global 'tree'");
    assert_has(r.out, tree);
    assert_has(r.out, list);
    assert_has(r.out, leaf);
    cr_assert_eq(count_lines(r.out), 5, "a root and four edges:\n%s", r.out);
    result_free(&r);

    char *treeaddr = fact(v.out, "tree");
    char *nobj = fact(v.out, "tree_retained_objects");
    char *nbytes = fact(v.out, "tree_retained_bytes");
    r = refscope(v.core, "retained", treeaddr, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, tree);
    assert_has(r.out, "held by C global 'tree'");
    char want[64];
    snprintf(want, sizeof want, "retains %s objects", nobj);
    assert_has(r.out, want);
    unsigned long long retained = number_after(r.out, want);
    /* the members it lists add up to the total */
    unsigned long long sum = 0;
    const char *p = strstr(r.out, "largest:\n");
    cr_assert_not_null(p, "%s", r.out);
    size_t members = 0;
    for (p = strchr(p, '\n') + 1; *p; p = strchr(p, '\n') + 1, members++) {
        sum += strtoull(p, NULL, 10);
        if (!strchr(p, '\n'))
            break;
    }
    cr_assert_eq(members, 8, "%s", r.out);
    cr_assert_eq(sum, retained, "members add up to %llu, total %llu:\n%s", sum, retained, r.out);
    /* the victim's rc_sizeof() total, plus at most an allocator header per object */
    unsigned long long sizeof_total = strtoull(nbytes, NULL, 10);
    cr_assert(retained >= sizeof_total && retained <= sizeof_total + 8 * 32,
              "retained %llu bytes, rc_sizeof says %llu", retained, sizeof_total);
    result_free(&r);

    /* refs says the same */
    r = refscope(v.core, "refs", treeaddr, NULL);
    assert_code(r, EXIT_OK);
    snprintf(want, sizeof want, "retained: %llu bytes in %s objects", retained, nobj);
    assert_has(r.out, want);
    result_free(&r);

    /* one leaf: itself and its bytes */
    char *leafaddr = fact(v.out, "tree_leaf1");
    r = refscope(v.core, "retained", leafaddr, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "retains 2 objects");
    result_free(&r);

    /* without OBJ: the 1 MiB the closure holds is among the top retainers */
    r = refscope(v.core, "retained", "--limit", "5", NULL);
    assert_code(r, EXIT_OK);
    char *huge = obj(&v, "bytes", "huge_data");
    assert_has(r.out, huge);
    result_free(&r);
    free(huge);
    free(data);
    free(tree);
    free(leaf);
    free(list);
    free(treeaddr);
    free(leafaddr);
    free(nobj);
    free(nbytes);
}

Test(cli_reports, graph_dot_and_png)
{
    victim v = core_of_victim();
    result r = refscope(v.core, "graph", "--cycle", "1", "--dot", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "digraph");
    char *a = fact(v.out, "cycle_a");
    assert_has(r.out, a);
    result_free(&r);

    char *tree = fact(v.out, "tree");
    char *png = path_in("tree.png");
    r = refscope(v.core, "graph", tree, "--depth", "2", "--png", png, NULL);
    if (access("/usr/bin/dot", X_OK) != 0) {
        assert_code(r, EXIT_INTERNAL);
        assert_has(r.err, "dot");
    } else {
        assert_code(r, EXIT_OK);
        assert_has(r.out, png);
        char *img = read_file(png);
        cr_assert(memcmp(img, "\x89PNG", 4) == 0, "%s is not a PNG", png);
        free(img);
    }
    result_free(&r);
    free(a);
    free(tree);
    free(png);
}

Test(cli_reports, check_consistent_heap)
{
    victim v = core_of_victim();
    result r = refscope(v.core, "check", NULL);
    cr_assert(r.code == EXIT_OK || r.code == EXIT_FINDINGS, "check: %d\n%s", r.code, r.err);
    cr_assert_str_not_empty(r.out);
    result_free(&r);
}

/* ---- --json ---------------------------------------------------------------------------- */

/* Every 0x... address in a text. */
static size_t text_addresses(const char *s, unsigned long long *out, size_t max)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, "0x")) && n < max; p += 2) {
        if (p > s && isalnum((unsigned char)p[-1]))
            continue;
        char *end;
        unsigned long long v = strtoull(p, &end, 16);
        if (end - p > 6)
            out[n++] = v;
    }
    return n;
}

static void json_addresses(json_t *j, unsigned long long *out, size_t *n, size_t max)
{
    if (*n >= max)
        return;
    if (json_is_string(j)) {
        *n += text_addresses(json_string_value(j), out + *n, max - *n);
    } else if (json_is_integer(j)) {
        if (json_integer_value(j) > 0x10000)
            out[(*n)++] = (unsigned long long)json_integer_value(j);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) json_addresses(e, out, n, max);
    } else if (json_is_object(j)) {
        const char *k;
        json_t *e;
        json_object_foreach(j, k, e) json_addresses(e, out, n, max);
    }
}

static bool has_addr(const unsigned long long *a, size_t n, unsigned long long v)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] == v)
            return true;
    return false;
}

/* `CMD --json` parses, and names every object the text names. */
static void expect_json_matches_text(const char *core, const char *cmd, const char *arg,
                                     int code)
{
    result t = arg ? refscope(core, cmd, arg, NULL) : refscope(core, cmd, NULL);
    result j = arg ? refscope(core, cmd, arg, "--json", NULL) : refscope(core, cmd, "--json", NULL);
    assert_code(t, code);
    assert_code(j, code);
    json_error_t e;
    json_t *root = json_loads(j.out, 0, &e);
    cr_assert_not_null(root, "%s --json: not JSON (line %d: %s):\n%s", cmd, e.line, e.text,
                       j.out);
    static unsigned long long ta[4096], ja[65536];
    size_t nt = text_addresses(t.out, ta, 4096), nj = 0;
    json_addresses(root, ja, &nj, 65536);
    for (size_t i = 0; i < nt; i++)
        cr_assert(has_addr(ja, nj, ta[i]), "%s: 0x%llx is in the text but not in the JSON", cmd,
                  ta[i]);
    json_decref(root);
    result_free(&t);
    result_free(&j);
}

Test(cli_targets, json_parses_and_matches_text)
{
    victim v = core_of_victim();
    expect_json_matches_text(v.core, "cycles", NULL, EXIT_OK);
    expect_json_matches_text(v.core, "leaks", NULL, EXIT_FINDINGS);
    expect_json_matches_text(v.core, "garbage", NULL, EXIT_OK);
    expect_json_matches_text(v.core, "roots", NULL, EXIT_OK);
    char *data = fact(v.out, "tree_leaf1_data");
    expect_json_matches_text(v.core, "path", data, EXIT_OK);
    free(data);

    /* cycle members: in the JSON as they are in the text */
    result j = refscope(v.core, "cycles", "--json", NULL);
    json_t *root = json_loads(j.out, 0, NULL);
    cr_assert_not_null(root);
    static unsigned long long ja[65536];
    size_t nj = 0;
    json_addresses(root, ja, &nj, 65536);
    const char *names[] = {"cycle_a", "cycle_b", "cycle_c"};
    for (int i = 0; i < 3; i++) {
        char *a = fact(v.out, names[i]);
        cr_assert(has_addr(ja, nj, strtoull(a, NULL, 16)), "%s %s not in cycles --json",
                  names[i], a);
        free(a);
    }
    json_decref(root);
    result_free(&j);
}

/* ---- diff --------------------------------------------------------------------------------- */

Test(cli_targets, diff_of_two_cores_shows_growth)
{
    victim v = kernel_core(env("CLI_VICTIM"), "diff", "d");
    char *growth = fact(v.out, "growth");
    cr_assert_str_eq(growth, "500");
    free(growth);
    char *p1 = path_in("d/p1"), *p2 = path_in("d/p2");
    char *c1 = find_core(p1), *c2 = find_core(p2);
    cr_assert_not_null(c1, "no core at point 1 in %s", p1);
    cr_assert_not_null(c2, "no core at point 2 in %s", p2);
    char site[64];
    snprintf(site, sizeof site, "victim.c:%d", source_line("GROWTH-SITE"));
    result r = refscope(c2, "diff", c1, NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "Growth");
    assert_has(r.out, "+500");
    assert_has(r.out, site);
    result_free(&r);

    /* JSON of the same diff parses */
    r = refscope(c2, "diff", c1, "--json", NULL);
    assert_code(r, EXIT_OK);
    json_t *root = json_loads(r.out, 0, NULL);
    cr_assert_not_null(root, "diff --json is not JSON:\n%s", r.out);
    json_decref(root);
    result_free(&r);
}

/* ---- other builds and other kinds of cores ---------------------------------------------- */

Test(cli_targets, runtime_as_shared_library)
{
    victim v = kernel_core(env("CLI_VICTIM_SHARED"), "abort", "shared");
    expect_planted_cycle(&v, v.core);
    expect_dwarf_roots(&v, v.core);
    result r = refscope(v.core, "leaks", NULL);
    assert_code(r, EXIT_FINDINGS);
    char *leak = obj(&v, "Node", "leaked");
    assert_has(r.out, leak);
    free(leak);
    result_free(&r);
}

Test(cli_targets, non_pie_executable)
{
    victim v = kernel_core(env("CLI_VICTIM_NOPIE"), "abort", "nopie");
    expect_planted_cycle(&v, v.core);
    expect_dwarf_roots(&v, v.core);
}

Test(cli_targets, gcore_core)
{
    waiting w;
    start_waiting(&w, env("CLI_VICTIM"));
    char *core = gcore(w.pid);
    victim v = {.out = w.buf, .core = core};
    expect_planted_cycle(&v, core);
    expect_dwarf_roots(&v, core);
    cr_assert_eq(finish_waiting(&w), 0, "%s", w.buf);
    assert_has(w.buf, "final: unchanged");
    free(core);
}

Test(cli_targets, live_pid_is_read_and_keeps_running)
{
    waiting w;
    start_waiting(&w, env("CLI_VICTIM"));
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)w.pid);
    victim v = {.out = w.buf};

    char *a = obj(&v, "Node", "cycle_a");
    result r = refscope("--pid", pid, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, a);
    result_free(&r);

    r = refscope("--pid", pid, "roots", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.out, "app.current");
    result_free(&r);

    /* still running, not stopped: it answers at once, and nothing changed */
    char state[256];
    snprintf(state, sizeof state, "/proc/%s/stat", pid);
    char *st = read_file(state);
    char *close_paren = strrchr(st, ')');
    cr_assert(close_paren && close_paren[2] != 'T' && close_paren[2] != 't',
              "the process is left stopped: %s", st);
    free(st);
    cr_assert_eq(finish_waiting(&w), 0, "%s", w.buf);
    assert_has(w.buf, "final: unchanged, collected 3,");
    free(a);
}

Test(cli_targets, no_dwarf_warns_and_uses_symbols)
{
    require_kernel_cores();
    char *copy = path_in("cli_victim");
    char *argv[] = {"strip", "--strip-debug", "-o", copy, (char *)env("CLI_VICTIM"), NULL};
    result s = run_argv(argv);
    cr_assert_eq(s.code, 0, "strip: %s", s.err);
    result_free(&s);
    victim v = kernel_core(copy, "abort", "nodebug");
    result r = refscope(v.core, "cycles", NULL);
    assert_code(r, EXIT_OK);
    assert_has(r.err, "refscope: warning: no DWARF in cli_victim: C globals and source lines "
                      "unavailable, using the symbol table");
    char *a = obj(&v, "Node", "cycle_a");
    assert_has(r.out, a);
    free(a);
    result_free(&r);
}

Test(cli_errors, stripped_program_exits_3)
{
    require_kernel_cores();
    char *copy = path_in("cli_victim");
    char *argv[] = {"strip", "--strip-all", "-o", copy, (char *)env("CLI_VICTIM"), NULL};
    result s = run_argv(argv);
    cr_assert_eq(s.code, 0, "strip: %s", s.err);
    result_free(&s);
    victim v = kernel_core(copy, "abort", "stripped");
    result r = refscope(v.core, "summary", NULL);
    expect_input_error(r, "stripped");
    result_free(&r);
}
