/*
 * sample.c: the options every sample accepts (see sample.h).
 */
#include "sample.h"

#include <refscope/rc.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool abort_at_end;
static bool wait_at_leak;
static volatile sig_atomic_t woken;

void sample_options(int argc, char **argv, const char *teaches)
{
    /* Line by line even into a pipe or file, so that our lines and the
     * runtime's (stderr, or stdout via rc_gc_set_debug_stream) keep their
     * order, and nothing is lost when a sample aborts. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *env = getenv("REFSCOPE_SAMPLE_ABORT");
    abort_at_end = env && strcmp(env, "1") == 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--abort-at-end") == 0) {
            abort_at_end = true;
        } else if (strcmp(argv[i], "--wait") == 0) {
            wait_at_leak = true;
        } else {
            bool help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
            fprintf(help ? stdout : stderr,
                    "usage: %s [--wait] [--abort-at-end]\n"
                    "%s\n"
                    "  --wait           at the leak point, print \"ready\" and wait for EOF on\n"
                    "                   stdin or SIGUSR1 (attach refscope --pid or gdb -p)\n"
                    "  --abort-at-end   abort at the leak point, for a core dump\n"
                    "                   (also REFSCOPE_SAMPLE_ABORT=1)\n",
                    argv[0], teaches);
            exit(help ? 0 : 2);
        }
    }
}

static void wake(int sig)
{
    (void)sig;
    woken = 1;
}

/* Wait for a signal, or for EOF on stdin when stdin is something that can
 * deliver one later (a terminal, a pipe, a socket). /dev/null or a regular
 * file would end the wait at once, so then only a signal does. */
static void wait_for_go(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wake;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: read() and pause() return on a signal */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct stat st;
    bool stdin_can_end = fstat(0, &st) == 0 &&
                         (isatty(0) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    char buf[256];
    while (!woken) {
        if (stdin_can_end) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR))
                break;
        } else {
            pause();
        }
    }
    signal(SIGUSR1, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

/* Zero the stack below the caller: the frames of the functions that planted
 * the leak are gone, but their words stay in memory, and the frames of
 * whatever runs next (abort(), the wait) would carry those stale pointers
 * into the core, where a conservative stack scan counts them as holders. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile unsigned char area[64 * 1024];
    for (size_t i = 0; i < sizeof area; i++)
        area[i] = 0;
}

static __attribute__((noinline)) void leak_point(void)
{
    rc_debug_checkpoint("leak planted");
    if (abort_at_end) {
        printf("leak planted: aborting now, with the leak held (a core for refscope)\n");
        fflush(stdout);
        abort();
    }
    if (wait_at_leak) {
        printf("leak planted: pid %ld waits; look with `refscope --pid %ld summary` or "
               "`gdb -p %ld`, then send EOF or SIGUSR1\n",
               (long)getpid(), (long)getpid(), (long)getpid());
        printf("ready\n");
        fflush(stdout);
        wait_for_go();
        printf("continuing\n");
    }
}

void sample_leak_planted(void)
{
    scrub_stack();
    leak_point();
}

void sample_py(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(">>> ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}
