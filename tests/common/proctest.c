/* proctest.c -- see proctest.h. */
#include "proctest.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char tmp[PATH_MAX];
static pid_t children[8];
static size_t nchildren;

/* ---- fixture --------------------------------------------------------------------- */

void pt_setup(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/%s.XXXXXX", base && *base ? base : "/tmp", prefix);
    cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
    nchildren = 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void pt_teardown(void)
{
    for (size_t i = 0; i < nchildren; i++) {
        kill(children[i], SIGKILL);
        waitpid(children[i], NULL, 0);
    }
    nchildren = 0;
    if (tmp[0])
        nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmp[0] = '\0';
}

void track_child(pid_t pid)
{
    cr_assert(nchildren < sizeof children / sizeof children[0], "too many child processes");
    children[nchildren++] = pid;
}

void forget_child(pid_t pid)
{
    for (size_t i = 0; i < nchildren; i++)
        if (children[i] == pid) {
            children[i] = children[--nchildren];
            return;
        }
}

void wait_child(pid_t pid, int *status)
{
    for (int waited = 0;; waited += 5) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            break;
        cr_assert(r == 0, "waitpid: %s", strerror(errno));
        if (waited > CHILD_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            forget_child(pid);
            cr_assert_fail("a child process took more than %d ms (a hang)", CHILD_TIMEOUT_MS);
        }
        usleep(5000);
    }
    forget_child(pid);
}

/* ---- small helpers --------------------------------------------------------------- */

const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "%s is not set: run this test through meson", name);
    return v;
}

char *path_in(const char *fmt, ...)
{
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    char *p = malloc(strlen(tmp) + strlen(rel) + 2);
    sprintf(p, "%s/%s", tmp, rel);
    return p;
}

char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            s = realloc(s, cap *= 2);
    }
    s[len] = '\0';
    fclose(f);
    return s;
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *fact(const char *out, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = out; (p = strstr(p, "fact ")); p += 5) {
        if ((p == out || p[-1] == '\n') && strncmp(p + 5, name, n) == 0 && p[5 + n] == ' ') {
            const char *v = p + 6 + n;
            return strndup(v, strcspn(v, "\n"));
        }
    }
    cr_assert_fail("the program printed no fact '%s'; its output:\n%s", name, out);
    return NULL;
}

/* ---- running commands -------------------------------------------------------------- */

result run_argv(char *const argv[])
{
    static int serial;
    int k = serial++;
    char *outp = path_in(".out.%d", k), *errp = path_in(".err.%d", k);
    fflush(NULL);
    double t0 = now();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0 || e < 0 || chdir(tmp) != 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    track_child(pid);
    int status;
    wait_child(pid, &status);
    result r;
    r.seconds = now() - t0;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(outp);
    r.err = read_file(errp);
    unlink(outp);
    unlink(errp);
    free(outp);
    free(errp);
    return r;
}

void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* ---- cores ------------------------------------------------------------------------- */

bool is_core_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    Elf64_Ehdr eh;
    bool ok = read(fd, &eh, sizeof eh) == (ssize_t)sizeof eh &&
              memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_type == ET_CORE;
    close(fd);
    return ok;
}

char *find_core(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    char *found = NULL;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && is_core_file(p))
            found = strdup(p);
    }
    closedir(d);
    return found;
}
