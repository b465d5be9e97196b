/*
 * refscope.c -- the `refscope` command: the analysis engine fed from a core
 * file or a live process.
 *
 * The command is a thin front end. It opens the target (target.h), finds
 * `rc_debug_registry`, tells the engine (engine.h) about the roots only a
 * process image can show -- C globals and static struct members named by
 * DWARF, thread stacks scanned conservatively, registers -- loads the heap
 * and prints the report the engine writes. Every report's words are the
 * engine's, so the GDB plugin says the same thing.
 *
 * Order of work, and why:
 *   1. parse the whole command line      a usage error never costs a core read
 *   2. (diff) the old core -> snapshot   so a live target is stopped only once,
 *                                        and briefly
 *   3. open, add roots, load, report     a live process is stopped from here ...
 *   4. free the heap, close the target   ... to here (rs_close lets it run)
 *   5. print the report                  a slow terminal or pipe never keeps
 *                                        a live process paused
 *
 * Exit codes (also in --help, which must stay true):
 */
#define EXIT_OK 0       /* report printed */
#define EXIT_FINDINGS 1 /* `check` or `leaks` found problems (the engine says so) */
#define EXIT_USAGE 2    /* bad command line: one line on stderr + "try refscope --help" */
#define EXIT_INPUT 3    /* the input cannot be read: no core, not a core, wrong --exe,
                           no such process, no runtime in the program, no heap */
#define EXIT_INTERNAL 4 /* a bug, out of memory, or an output that could not be made */

#include "engine.h"
#include "target.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef REFSCOPE_VERSION
#define REFSCOPE_VERSION "unknown" /* meson passes the project version */
#endif

#define REGISTRY_SYMBOL "rc_debug_registry"
#define OBJECT_HEAD_TAG "rc_object" /* the struct every object starts with */

/* ---- messages --------------------------------------------------------------- */

static void msg(const char *kind, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("refscope: ", stderr);
    if (kind)
        fprintf(stderr, "%s: ", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg("warning", fmt, ap);
    va_end(ap);
}

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg("error", fmt, ap);
    va_end(ap);
}

/* A usage error: one line, the hint, exit 2. */
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg("error", fmt, ap);
    va_end(ap);
    fputs("try refscope --help\n", stderr);
    exit(EXIT_USAGE);
}

static _Noreturn void out_of_memory(void)
{
    fputs("refscope: error: out of memory\n", stderr);
    exit(EXIT_INTERNAL);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

/* Engine and target sentences may end with a newline or a full stop; the
 * messages printed here are one line each. */
static const char *one_line(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return s;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- help --------------------------------------------------------------------- */

static const char help_text[] =
    "usage: refscope CORE [--exe PROGRAM] COMMAND [ARGS] [--json] [--limit N]\n"
    "       refscope --pid PID [--exe PROGRAM] COMMAND [ARGS] [--json] [--limit N]\n"
    "       refscope --help | --version\n"
    "\n"
    "Answer leak questions about a program that uses the refscope runtime, from a\n"
    "core dump (kernel core, gcore, gdb generate-core-file) or a live process.\n"
    "Objects are named Type@0xADDR (file.c:LINE).\n"
    "\n"
    "Target:\n"
    "  CORE            a core file of the program\n"
    "  --pid PID       a running process; it is paused while it is read, then left\n"
    "                  running and unchanged\n"
    "  --exe PROGRAM   the program's executable (default: the one named in the core,\n"
    "                  or /proc/PID/exe); its build-id must match the core's\n"
    "\n"
    "Commands:\n"
    "  overview        a first look: summary, cycles, leaks and the top retainers in\n"
    "                  one report (--limit rows each, default 10)\n"
    "  summary         heap totals, generations, counts, thresholds, collector stats\n"
    "  types           which types use memory\n"
    "  sites           which allocation sites use memory\n"
    "  refs OBJ        an object: refcount, who holds it, what it holds\n"
    "  cycles          unreachable cycles (what a full collection would free)\n"
    "  garbage         the garbage list and why each object is in it\n"
    "  roots           what holds memory: registered roots, C globals and static\n"
    "                  struct members (by DWARF name), closures, stack frames\n"
    "  leaks           references no holder explains (a missing decref), and\n"
    "                  over-released objects (an extra decref)\n"
    "  path OBJ        how OBJ is reachable from a root\n"
    "  retained [OBJ]  what would be freed with OBJ (dominators); without OBJ, the\n"
    "                  objects that retain the most\n"
    "  graph OBJ|--cycle N [--depth D] [--backrefs] [--dot|--png FILE]\n"
    "                  the neighbourhood of OBJ, or unreachable cycle N (as numbered\n"
    "                  by `cycles`); --depth D: D edges away (default 2);\n"
    "                  --backrefs: follow referrers too; --dot: Graphviz DOT text\n"
    "                  (the default; --json: nodes, edges and the DOT text);\n"
    "                  --png FILE: a picture, drawn by Graphviz's `dot`\n"
    "  diff OLDCORE    what grew from OLDCORE (an earlier core of the same program)\n"
    "                  to CORE (or the live process)\n"
    "  check           is the heap consistent: types, refcounts, flags, pools,\n"
    "                  generation lists\n"
    "\n"
    "  OBJ is an address (0x55d0c0a4e2b0; inside an object names the object), or\n"
    "  a name: a C global or root as `roots` prints it (cache, app.current), or a\n"
    "  key of the globals dict (process, globals['process']).\n"
    "\n"
    "Options of every command:\n"
    "  --json          the report as JSON on stdout\n"
    "  --limit N       show at most N rows, groups or items per group\n"
    "                  (0: all; default 20, for check 100)\n"
    "\n"
    "Warnings (damaged core, missing library, no DWARF) go to stderr as\n"
    "\"refscope: warning: ...\"; a partial answer from a damaged core beats none.\n"
    "Loading a large heap shows its progress on stderr when stderr is a terminal.\n"
    "On a machine with two CPUs, a large heap (from 100 000 objects) is loaded and\n"
    "analysed partly on two threads; REFSCOPE_THREADS=1 in the environment keeps\n"
    "it to one.\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  findings: `check` found inconsistencies or `leaks` found unexplained\n"
    "     references\n"
    "  2  usage error (unknown command, option or argument)\n"
    "  3  the input cannot be read: missing, unreadable, truncated or non-core file,\n"
    "     --exe that does not match the core (build-id), no such process or no\n"
    "     permission to attach, a program without the refscope runtime (no\n"
    "     rc_debug_registry symbol) or a stripped one, no readable heap\n"
    "  4  internal error, or --png could not be written (no `dot`, or it failed)\n";

/* ---- the command line --------------------------------------------------------- */

typedef struct cli {
    const char *core;       /* NULL with --pid */
    int pid;                /* 0: core mode */
    const char *exe;        /* --exe or NULL */
    const char *command;
    const char *args[2];    /* positional arguments of the command */
    size_t nargs;
    const char *limit, *depth, *cycle, *png;
    bool json, dot, backrefs;
} cli;

/* Commands and how many positional arguments they take. */
static const struct command_spec {
    const char *name;
    unsigned min_args, max_args;
    const char *synopsis;
} commands[] = {
    {"overview", 0, 0, "overview"},
    {"summary", 0, 0, "summary"},
    {"types", 0, 0, "types"},
    {"sites", 0, 0, "sites"},
    {"refs", 1, 1, "refs OBJ"},
    {"cycles", 0, 0, "cycles"},
    {"garbage", 0, 0, "garbage"},
    {"roots", 0, 0, "roots"},
    {"leaks", 0, 0, "leaks"},
    {"path", 1, 1, "path OBJ"},
    {"retained", 0, 1, "retained [OBJ]"},
    {"graph", 0, 1, "graph OBJ|--cycle N [--depth D] [--backrefs] [--dot|--png FILE]"},
    {"diff", 1, 1, "diff OLDCORE"},
    {"check", 0, 0, "check"},
};

static const struct command_spec *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* A non-negative decimal number that fits an int; min is its lower bound. */
static bool parse_count(const char *s, long min, long *ret)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > INT_MAX)
        return false;
    if (ret)
        *ret = v;
    return true;
}

/* "--opt VALUE" or "--opt=VALUE": returns the value and advances *i, NULL if
 * argv[*i] is not this option. */
static const char *option_value(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    const char *a = argv[*i];
    if (strncmp(a, opt, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        usage_error("%s needs a value", opt);
    return argv[++*i];
}

static void parse_args(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
    /* --help and --version win wherever they are. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help_text, stdout);
            exit(EXIT_OK);
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("refscope %s (engine API %d)\n", REFSCOPE_VERSION, RS_ENGINE_API_VERSION);
            exit(EXIT_OK);
        }
    }

    bool pid_given = false, only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (!only_positional && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                only_positional = true;
            } else if ((v = option_value(argc, argv, &i, "--exe"))) {
                if (!*v)
                    usage_error("--exe needs a file name");
                c->exe = v;
            } else if ((v = option_value(argc, argv, &i, "--pid"))) {
                long pid;
                if (!parse_count(v, 1, &pid))
                    usage_error("--pid needs a process id, not '%s'", v);
                c->pid = (int)pid;
                pid_given = true;
            } else if ((v = option_value(argc, argv, &i, "--limit"))) {
                if (!parse_count(v, 0, NULL))
                    usage_error("--limit needs a number, not '%s'", v);
                c->limit = v;
            } else if ((v = option_value(argc, argv, &i, "--depth"))) {
                if (!parse_count(v, 0, NULL))
                    usage_error("--depth needs a number, not '%s'", v);
                c->depth = v;
            } else if ((v = option_value(argc, argv, &i, "--cycle"))) {
                if (!parse_count(v, 1, NULL))
                    usage_error("--cycle needs a cycle number (1, 2, ...), not '%s'", v);
                c->cycle = v;
            } else if ((v = option_value(argc, argv, &i, "--png"))) {
                if (!*v)
                    usage_error("--png needs a file name");
                c->png = v;
            } else if (strcmp(a, "--json") == 0) {
                c->json = true;
            } else if (strcmp(a, "--dot") == 0) {
                c->dot = true;
            } else if (strcmp(a, "--backrefs") == 0) {
                c->backrefs = true;
            } else {
                usage_error("unknown option '%s'", a);
            }
            continue;
        }
        if (!pid_given && !c->core && !c->command) {
            c->core = a;
        } else if (!c->command) {
            c->command = a;
        } else {
            if (c->nargs == sizeof c->args / sizeof c->args[0])
                usage_error("too many arguments for '%s' (at '%s')", c->command, a);
            c->args[c->nargs++] = a;
        }
    }

    /* A core named after a command with --pid given later: `refscope summary --pid 1`. */
    if (pid_given && c->core) {
        if (c->command)
            usage_error("give either CORE or --pid PID, not both");
        c->command = c->core;
        c->core = NULL;
    }
    if (!pid_given && !c->core)
        usage_error("no core file: refscope CORE COMMAND, or refscope --pid PID COMMAND");
    if (!c->command && find_command(c->core) && access(c->core, F_OK) != 0)
        usage_error("no core file before the command: refscope CORE %s", c->core);
    if (!c->command)
        usage_error("no command (overview, summary, types, sites, refs, cycles, garbage, roots, leaks, "
                    "path, retained, graph, diff, check)");

    const struct command_spec *cs = find_command(c->command);
    if (!cs)
        usage_error("unknown command '%s'", c->command);
    if (c->nargs < cs->min_args || c->nargs > cs->max_args)
        usage_error("%s: usage: %s", cs->name, cs->synopsis);

    bool graph = strcmp(cs->name, "graph") == 0;
    if (!graph && (c->cycle || c->depth || c->png || c->dot || c->backrefs))
        usage_error("--cycle, --depth, --backrefs, --dot and --png belong to 'graph'");
    if (graph) {
        if (!c->nargs && !c->cycle)
            usage_error("graph: usage: %s", cs->synopsis);
        if (c->nargs && c->cycle)
            usage_error("graph: give OBJ or --cycle N, not both");
        if (c->dot && c->png)
            usage_error("graph: give --dot or --png FILE, not both");
        if (c->json && c->png)
            usage_error("graph: --json cannot be combined with --png");
    }
}

/* The engine takes its command as one string, split at blanks; a word may
 * be quoted with '...' or "..." (no escapes inside). Arguments are object
 * addresses, names and numbers: a name with a blank is quoted. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_word(strbuf *b, const char *w)
{
    if (b->len)
        sb_add(b, " ", 1);
    if (*w && !strpbrk(w, " \t\n\v\f\r'\"")) {
        sb_add(b, w, strlen(w));
        return;
    }
    const char *q = strchr(w, '\'') ? "\"" : "'";
    sb_add(b, q, 1);
    sb_add(b, w, strlen(w));
    sb_add(b, q, 1);
}

/* The command line for rs_heap_report (or, for diff, its options). */
static char *engine_command(const cli *c, bool is_diff)
{
    strbuf b = {0};
    sb_add(&b, "", 0);
    if (!is_diff) {
        sb_word(&b, c->command);
        for (size_t i = 0; i < c->nargs; i++)
            sb_word(&b, c->args[i]);
        if (c->cycle) {
            sb_word(&b, "--cycle");
            sb_word(&b, c->cycle);
        }
        if (c->depth) {
            sb_word(&b, "--depth");
            sb_word(&b, c->depth);
        }
        if (c->backrefs)
            sb_word(&b, "--backrefs");
        if (c->dot || c->png)
            sb_word(&b, "--dot"); /* --png: the engine writes DOT, `dot` draws it */
    }
    if (c->json)
        sb_word(&b, "--json");
    if (c->limit) {
        sb_word(&b, "--limit");
        sb_word(&b, c->limit);
    }
    return b.s;
}

/* ---- progress ------------------------------------------------------------------ */

/* Long loads only, on a terminal only: a line redrawn in place. */
#define PROGRESS_DELAY 0.5    /* seconds before the first draw: short loads stay silent */
#define PROGRESS_INTERVAL 0.1 /* seconds between redraws */

typedef struct progress {
    bool tty;
    bool drawn;
    double start, last;
} progress;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
    progress *p = ctx;
    if (!p->tty || total == 0)
        return;
    double t = now_seconds();
    if (t - p->start < PROGRESS_DELAY || (p->drawn && t - p->last < PROGRESS_INTERVAL))
        return;
    unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 0;
    fprintf(stderr, "\rloading heap (%s): %3u%% (%" PRIu64 "/%" PRIu64 ")\033[K",
            phase ? phase : "objects", pct, done, total);
    fflush(stderr);
    p->drawn = true;
    p->last = t;
}

static void progress_done(progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = false;
    }
}

/* ---- a loaded heap ---------------------------------------------------------------- */

typedef struct session {
    rs_target *t;
    rs_heap *h;
    const char *source;     /* "core" path or "process 1234", for messages */
    const char *prefix;     /* "" or "OLDCORE: " before warnings */
    rs_symbol registry;
    uint64_t registry_size;
    char source_buf[64];
} session;

static void close_session(session *s)
{
    rs_heap_free(s->h);
    s->h = NULL;
    rs_close(s->t); /* a live process runs again from here */
    s->t = NULL;
}

/* The engine names code addresses (closure functions, traceback frames) with
 * this: DWARF "function (file.c:LINE)", else the symbol table. */
static int symbolize(void *ctx, uint64_t addr, char *buf, size_t size)
{
    rs_target *t = ctx;
    rs_srcloc loc;
    if (rs_addr_to_line(t, addr, &loc) == 0 && loc.function && loc.file && loc.line) {
        snprintf(buf, size, "%s (%s:%u)", loc.function, base_name(loc.file), loc.line);
        return 0;
    }
    rs_describe_addr(t, addr, buf, size);
    return strncmp(buf, "0x", 2) == 0 ? -1 : 0;
}

/* Could this word be an object pointer? A cheap filter before the engine's
 * exact check: aligned and in writable memory (arenas and malloc'd large
 * objects are never in text or read-only data). */
static bool maybe_object(rs_target *t, uint64_t v)
{
    if (v < 4096 || (v & 7))
        return false;
    if (rs_mapping_count(t) == 0)
        return true; /* no mapping list: let the engine decide */
    const rs_mapping *m = rs_mapping_find(t, v);
    return m && (m->flags & RS_MAP_W);
}

static bool in_registry(const session *s, uint64_t addr)
{
    return addr >= s->registry.addr && addr < s->registry.addr + s->registry_size;
}

/* (1) C globals and members of static structs that hold objects, by DWARF. */
static size_t add_global_roots(session *s, bool have_dwarf)
{
    const rs_slot *slots;
    size_t n = 0, added = 0;
    rs_error err = {{0}};
    if (rs_pointer_slots(s->t, OBJECT_HEAD_TAG, &slots, &n, &err) != 0) {
        if (have_dwarf)
            warnf("%sC globals holding objects cannot be found: %s", s->prefix,
                  err.msg[0] ? one_line(err.msg) : "DWARF query failed");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const rs_slot *sl = &slots[i];
        /* The registry's own pointers (garbage list, globals dict, roots) are
         * the engine's business: it reports them as what they are. */
        if (in_registry(s, sl->addr) ||
            (sl->global && sl->global->name && strcmp(sl->global->name, REGISTRY_SYMBOL) == 0))
            continue;
        uint64_t v;
        if (!rs_read_u64(s->t, sl->addr, &v) || !maybe_object(s->t, v))
            continue;
        if (rs_heap_add_root(s->h, RS_ROOT_GLOBAL, sl->path, sl->addr, v) == 0)
            added++;
    }
    return added;
}

/* (2) Thread stacks, conservatively, and registers. */
static const struct {
    const char *name;
    size_t offset;
} scanned_regs[] = {
#define REG(r) {#r, offsetof(rs_regs, r)}
    REG(rax), REG(rbx), REG(rcx), REG(rdx), REG(rsi), REG(rdi), REG(rbp),
    REG(r8),  REG(r9),  REG(r10), REG(r11), REG(r12), REG(r13), REG(r14), REG(r15),
#undef REG
};

static void add_thread_roots(session *s)
{
    static rs_stack_iter it; /* 16 KiB of buffer: not on our stack */
    char label[512];
    size_t nthreads = rs_thread_count(s->t);
    for (size_t ti = 0; ti < nthreads; ti++) {
        const rs_thread *th = rs_thread_get(s->t, ti);
        if (!th)
            continue;
        /* Words pointing into the thread's own stack (saved frame pointers,
         * addresses of locals) are never objects: drop them here. */
        const rs_mapping *stack = rs_mapping_find(s->t, th->regs.rsp);
        uint64_t stack_lo = stack ? stack->start : th->stack_start;
        uint64_t stack_hi = stack ? stack->end : th->stack_end;

        for (size_t r = 0; r < sizeof scanned_regs / sizeof scanned_regs[0]; r++) {
            uint64_t v;
            memcpy(&v, (const char *)&th->regs + scanned_regs[r].offset, sizeof v);
            if ((v >= stack_lo && v < stack_hi) || !maybe_object(s->t, v))
                continue;
            snprintf(label, sizeof label, "thread %d register %s", th->tid,
                     scanned_regs[r].name);
            rs_heap_add_root(s->h, RS_ROOT_REGISTER, label, 0, v);
        }

        const rs_frame *frames = NULL;
        size_t nframes = 0;
        rs_error err = {{0}};
        if (rs_thread_frames(s->t, ti, &frames, &nframes, &err) != 0)
            nframes = 0; /* labels fall back to stack addresses */

        rs_stack_iter_init(&it, s->t, th);
        uint64_t slot, v;
        while (rs_stack_iter_next(&it, &slot, &v)) {
            if ((v >= stack_lo && v < stack_hi) || !maybe_object(s->t, v))
                continue;
            int fi = nframes ? rs_frame_of_slot(s->t, ti, slot) : -1;
            if (fi >= 0 && (size_t)fi < nframes && frames[fi].function)
                snprintf(label, sizeof label, "thread %d frame #%d %s()", th->tid, fi,
                         frames[fi].function);
            else
                snprintf(label, sizeof label, "thread %d stack 0x%" PRIx64, th->tid, slot);
            rs_heap_add_root(s->h, RS_ROOT_STACK, label, slot, v);
        }
    }
}

/* The program named in messages: the executable's file name. */
static const char *program_name(rs_target *t)
{
    const rs_module *exe = rs_module_get(t, 0);
    if (exe && exe->name && *exe->name)
        return exe->name;
    return rs_program(t);
}

/* Explain why rc_debug_registry was not found. */
static void no_registry(session *s, const rs_error *lookup_err)
{
    rs_target *t = s->t;
    const char *prog = program_name(t);
    const rs_module *exe = rs_module_get(t, 0);
    rs_symbol main_sym;
    bool stripped = exe && !exe->has_dwarf &&
                    (!exe->has_symbols || rs_symbol_lookup(t, "main", &main_sym, NULL) != 0);
    /* A runtime in a shared library the reader could not open looks the same
     * as no runtime at all: say which libraries are missing. */
    char missing[512] = "";
    size_t used = 0;
    for (size_t i = 1; i < rs_module_count(t); i++) {
        const rs_module *m = rs_module_get(t, i);
        if (m && !m->loaded && used < sizeof missing - 1)
            used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%s",
                                     used ? ", " : "", m->name);
    }
    if (stripped)
        errorf("%s%s is stripped (no symbol table, no DWARF): cannot find %s; pass the "
               "unstripped program with --exe PROGRAM",
               s->prefix, prog, REGISTRY_SYMBOL);
    else if (missing[0])
        errorf("%s%s: no %s symbol in the program, and these shared libraries could not be "
               "read: %s",
               s->prefix, prog, REGISTRY_SYMBOL, missing);
    else
        errorf("%s%s does not use the refscope runtime (no %s symbol)", s->prefix, prog,
               REGISTRY_SYMBOL);
    (void)lookup_err;
}

static bool is_dwarf_warning(const char *w, const char *prog)
{
    size_t n = strlen(prog);
    return strncmp(w, prog, n) == 0 && strstr(w + n, "has no DWARF") == w + n + 1;
}

/*
 * Open a core or a process, find the registry, add the roots, load the heap.
 * Returns 0, or an exit code after printing one error line; on failure the
 * session holds nothing.
 */
static int open_session(session *s, const char *core, int pid, const char *exe,
                        const char *prefix)
{
    rs_error err = {{0}};
    memset(s, 0, sizeof *s);
    s->prefix = prefix;
    if (core) {
        s->source = core;
        struct stat st;
        if (stat(core, &st) != 0) {
            errorf("cannot read core file %s: %s", core, strerror(errno));
            return EXIT_INPUT;
        }
        if (S_ISDIR(st.st_mode)) {
            errorf("%s is a directory, not a core file", core);
            return EXIT_INPUT;
        }
        if (exe && access(exe, R_OK) != 0) {
            errorf("cannot read --exe %s: %s", exe, strerror(errno));
            return EXIT_INPUT;
        }
        s->t = rs_open_core(core, exe, &err);
    } else {
        snprintf(s->source_buf, sizeof s->source_buf, "process %d", pid);
        s->source = s->source_buf;
        s->t = rs_open_pid(pid, exe, &err);
    }
    if (!s->t) {
        errorf("%s%s", prefix,
               err.msg[0] ? one_line(err.msg) : "cannot open the target (no reason given)");
        return EXIT_INPUT;
    }

    const rs_module *exe_mod = rs_module_get(s->t, 0);
    bool have_dwarf = exe_mod && exe_mod->has_dwarf;
    const char *prog = program_name(s->t);
    for (size_t i = 0; i < rs_warning_count(s->t); i++) {
        const char *w = rs_warning(s->t, i);
        if (!have_dwarf && is_dwarf_warning(w, prog))
            continue; /* said below, with what it means here */
        warnf("%s%s", prefix, w);
    }

    rs_error lerr = {{0}};
    if (rs_symbol_lookup(s->t, REGISTRY_SYMBOL, &s->registry, &lerr) != 0) {
        no_registry(s, &lerr);
        close_session(s);
        return EXIT_INPUT;
    }
    s->registry_size = s->registry.size;
    if (!s->registry_size) {
        int64_t sz = rs_type_size(s->t, "rc_registry", NULL);
        s->registry_size = sz > 0 ? (uint64_t)sz : 1;
    }
    if (!have_dwarf)
        warnf("%sno DWARF in %s: C globals and source lines unavailable, using the symbol table",
              prefix, prog);

    s->h = rs_heap_new(rs_target_memory(s->t), s->registry.addr, &err);
    if (!s->h) {
        errorf("%s%s", prefix, err.msg[0] ? one_line(err.msg) : "cannot create the engine");
        close_session(s);
        return EXIT_INTERNAL;
    }
    rs_heap_set_symbolizer(s->h, symbolize, s->t);

    add_global_roots(s, have_dwarf);
    add_thread_roots(s);

    progress p = {.tty = isatty(STDERR_FILENO) == 1, .start = now_seconds()};
    int rc = rs_heap_load(s->h, on_progress, &p, &err);
    progress_done(&p);
    if (rc != 0) {
        errorf("%s%s: %s", prefix, s->source,
               err.msg[0] ? one_line(err.msg) : "no heap could be read");
        close_session(s);
        return EXIT_INPUT;
    }
    for (size_t i = 0; i < rs_heap_warning_count(s->h); i++)
        warnf("%s%s", prefix, rs_heap_warning(s->h, i));
    return 0;
}

/* ---- graph --png ------------------------------------------------------------------ */

static bool find_in_path(const char *prog, char *buf, size_t size)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n == 0)
            snprintf(buf, size, "./%s", prog);
        else
            snprintf(buf, size, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Feed DOT text to `dot -Tpng -o FILE`. Returns an exit code. */
static int write_png(const char *dot_text, const char *file)
{
    char dot[PATH_MAX];
    if (!find_in_path("dot", dot, sizeof dot)) {
        errorf("cannot write %s: Graphviz's `dot` is not installed (apt-get install graphviz); "
               "--dot prints the graph as DOT text instead",
               file);
        return EXIT_INTERNAL;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        errorf("cannot run %s: %s", dot, strerror(errno));
        return EXIT_INTERNAL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    if (child < 0) {
        errorf("cannot run %s: %s", dot, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return EXIT_INTERNAL;
    }
    if (child == 0) {
        dup2(fds[0], STDIN_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(dot, "dot", "-Tpng", "-o", file, (char *)NULL);
        fprintf(stderr, "refscope: error: cannot run %s: %s\n", dot, strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* dot may die early: we report it */
    size_t len = strlen(dot_text), off = 0;
    while (off < len) {
        ssize_t w = write(fds[1], dot_text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fds[1]);
    signal(SIGPIPE, old);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    if (status != 0 || off < len) {
        if (status != -1 && WIFEXITED(status))
            errorf("`dot -Tpng -o %s` failed (exit status %d)", file, WEXITSTATUS(status));
        else
            errorf("`dot -Tpng -o %s` failed", file);
        return EXIT_INTERNAL;
    }
    return EXIT_OK;
}

/* ---- main -------------------------------------------------------------------------- */

/* While a live process is stopped, ^C must not leave it stopped with us
 * half-way: such signals wait until it has been let go. */
static void block_stop_signals(bool block)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int main(int argc, char **argv)
{
    cli c;
    parse_args(argc, argv, &c);
    bool is_diff = strcmp(c.command, "diff") == 0;
    char *command = engine_command(&c, is_diff);

    if (c.pid)
        block_stop_signals(true);

    /* diff: the old core first, reduced to a snapshot, so that a live target
     * is stopped for as short a time as possible. */
    rs_snapshot *old = NULL;
    if (is_diff) {
        session os;
        size_t n = strlen(c.args[0]) + 3;
        char *prefix = xrealloc(NULL, n);
        snprintf(prefix, n, "%s: ", c.args[0]);
        int rc = open_session(&os, c.args[0], 0, c.exe, prefix);
        if (rc != 0)
            return rc;
        old = rs_heap_snapshot(os.h);
        close_session(&os);
        free(prefix);
        if (!old) {
            errorf("%s: cannot snapshot the heap", c.args[0]);
            return EXIT_INTERNAL;
        }
    }

    session s;
    int rc = open_session(&s, c.core, c.pid, c.exe, "");
    if (rc != 0) {
        rs_snapshot_destroy(old);
        return rc;
    }
    int status = 0;
    char *text = is_diff ? rs_heap_diff(s.h, old, command, &status)
                         : rs_heap_report(s.h, command, &status);
    close_session(&s);
    rs_snapshot_destroy(old);
    if (c.pid)
        block_stop_signals(false);

    if (!text) {
        errorf("the engine returned no report for '%s'", command);
        free(command);
        return EXIT_INTERNAL;
    }
    free(command);
    if (status == EXIT_USAGE) {
        /* the engine's one line may already start with our name */
        const char *line = one_line(text);
        if (strncmp(line, "refscope: ", 10) == 0)
            line += 10;
        if (strncmp(line, "error: ", 7) == 0)
            line += 7;
        errorf("%s", line);
        rs_free(text);
        fputs("try refscope --help\n", stderr);
        return EXIT_USAGE;
    }

    int exit_code = status == 1 ? EXIT_FINDINGS : status == 0 ? EXIT_OK : EXIT_INTERNAL;
    if (c.png) {
        int prc = write_png(text, c.png);
        rs_free(text);
        if (prc != EXIT_OK)
            return prc;
        printf("graph written to %s\n", c.png);
    } else {
        size_t len = strlen(text);
        fwrite(text, 1, len, stdout);
        if (len && text[len - 1] != '\n')
            putchar('\n');
        rs_free(text);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errorf("cannot write the report: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    return exit_code;
}
