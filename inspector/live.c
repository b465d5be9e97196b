/*
 * live.c -- a running process, stopped while the target is open.
 *
 * Every thread is attached with PTRACE_SEIZE and stopped with
 * PTRACE_INTERRUPT (no signal is sent, so the process sees nothing);
 * threads born while we attach are picked up by re-reading /proc/PID/task
 * until it stops changing. Memory is read with process_vm_readv (one system
 * call per block), or /proc/PID/mem where that is refused. rs_close
 * detaches every thread, re-delivering a signal that arrived meanwhile.
 */
#include "target_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof(rs_regs) == sizeof(struct user_regs_struct), "rs_regs mirrors user_regs");

typedef struct live_thread {
    int tid;
    int pending_sig;         /* a signal that stopped it: re-delivered at detach */
} live_thread;

struct rs_live {
    int pid;
    live_thread *threads;
    size_t nthreads, cap;
    int memfd;               /* /proc/PID/mem */
    bool vm_readv_broken;
};

/* ---- memory ------------------------------------------------------------------ */

size_t rs__live_read(rs_target *t, uint64_t addr, void *buf, size_t len)
{
    rs_live *l = t->live;
    size_t done = 0;
    while (done < len && !l->vm_readv_broken) {
        struct iovec local = {(char *)buf + done, len - done};
        struct iovec remote = {(void *)(uintptr_t)(addr + done), len - done};
        ssize_t n = process_vm_readv(l->pid, &local, 1, &remote, 1, 0);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == ENOSYS || errno == EPERM))
            l->vm_readv_broken = true; /* fall back to /proc/PID/mem */
        else
            return done;              /* EFAULT: unreadable from here on */
    }
    while (done < len && l->memfd >= 0) {
        ssize_t n = pread(l->memfd, (char *)buf + done, len - done, (off_t)(addr + done));
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

/* ---- attaching --------------------------------------------------------------- */

static bool attached(const rs_live *l, int tid)
{
    for (size_t i = 0; i < l->nthreads; i++)
        if (l->threads[i].tid == tid)
            return true;
    return false;
}

/* Wait until tid stops. false if it exited meanwhile. */
static bool wait_stop(int tid, int *pending_sig)
{
    for (;;) {
        int st;
        pid_t r = waitpid(tid, &st, __WALL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st))
            return false;
        if (WIFSTOPPED(st)) {
            int sig = WSTOPSIG(st);
            if ((st >> 16) == 0 && sig != SIGTRAP)
                *pending_sig = sig; /* a signal-delivery stop: keep the signal */
            return true;
        }
    }
}

static bool status_field(int pid, const char *field, char *out, size_t size)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    out[0] = 0;
    if (!f)
        return false;
    size_t flen = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            char *v = line + flen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, size, "%s", v);
            break;
        }
    fclose(f);
    return out[0] != 0;
}

static int attach_all(rs_target *t, rs_error *err)
{
    rs_live *l = t->live;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", l->pid);
    for (int round = 0; round < 1000; round++) {
        DIR *d = opendir(path);
        if (!d) {
            rs__seterr(err, "no such process %d", l->pid);
            return -1;
        }
        size_t added = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            int tid = atoi(de->d_name);
            if (tid <= 0 || attached(l, tid))
                continue;
            if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
                int e = errno;
                if (e == ESRCH && l->nthreads > 0)
                    continue; /* the thread exited */
                closedir(d);
                char tracer[32], state[64];
                status_field(l->pid, "TracerPid", tracer, sizeof tracer);
                status_field(l->pid, "State", state, sizeof state);
                if (e == ESRCH)
                    rs__seterr(err, "no such process %d", l->pid);
                else if (state[0] == 'Z')
                    rs__seterr(err, "process %d is a zombie: nothing left to inspect", l->pid);
                else if (tracer[0] && strcmp(tracer, "0") != 0)
                    rs__seterr(err, "process %d is already traced by process %s (a debugger?): "
                               "detach it first", l->pid, tracer);
                else if (e == EPERM)
                    rs__seterr(err, "permission denied attaching to process %d: run as its "
                               "user or with CAP_SYS_PTRACE (and check "
                               "kernel.yama.ptrace_scope)", l->pid);
                else
                    rs__seterr(err, "cannot attach to process %d: %s", l->pid, strerror(e));
                return -1;
            }
            rs__grow(&l->threads, &l->cap, l->nthreads + 1, sizeof *l->threads);
            live_thread *lt = &l->threads[l->nthreads++];
            lt->tid = tid;
            lt->pending_sig = 0;
            added++;
            if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 || !wait_stop(tid, &lt->pending_sig)) {
                l->nthreads--; /* it exited between the two calls */
                continue;
            }
        }
        closedir(d);
        if (added == 0)
            return l->nthreads ? 0 : (rs__seterr(err, "no such process %d", l->pid), -1);
    }
    rs__seterr(err, "process %d keeps creating threads: cannot stop them all", l->pid);
    return -1;
}

void rs__live_close(rs_target *t)
{
    rs_live *l = t->live;
    for (size_t i = 0; i < l->nthreads; i++) {
        int tid = l->threads[i].tid, sig = l->threads[i].pending_sig, st;
        /* A signal may have stopped it since we attached: pass it on. */
        while (waitpid(tid, &st, WNOHANG | __WALL) == tid)
            if (WIFSTOPPED(st) && (st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP)
                sig = WSTOPSIG(st);
        ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)sig);
    }
    if (l->memfd >= 0)
        close(l->memfd);
    free(l->threads);
    free(l);
    t->live = NULL;
}

/* ---- /proc files ------------------------------------------------------------- */

static char *read_proc(int pid, const char *what, size_t *len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *len = 0;
    if (fd < 0)
        return NULL;
    size_t cap = 4096;
    char *buf = rs__xmalloc(cap + 1);
    for (;;) {
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n <= 0)
            break;
        *len += (size_t)n;
        if (*len == cap) {
            cap *= 2;
            buf = rs__xrealloc(buf, cap + 1);
        }
    }
    close(fd);
    buf[*len] = 0;
    return buf;
}

static void parse_maps(rs_target *t, int pid, rs_filemap **fmaps, size_t *nfmaps)
{
    size_t len, cap = 0, fcap = 0;
    char *text = read_proc(pid, "maps", &len);
    if (!text)
        return;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        unsigned long long start, end, off;
        char perms[8];
        int pos = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &off, &pos) < 4)
            continue;
        char *p = pos ? line + pos : line + strlen(line);
        size_t plen = strlen(p);
        if (plen > 10 && strcmp(p + plen - 10, " (deleted)") == 0)
            plen -= 10;
        rs__grow(&t->maps, &cap, t->nmaps + 1, sizeof *t->maps);
        rs_mapping *m = &t->maps[t->nmaps++];
        m->start = start;
        m->end = end;
        m->file_offset = off;
        m->path = plen ? rs__strndup(t, p, plen) : NULL;
        m->flags = (perms[0] == 'r' ? RS_MAP_R : 0) | (perms[1] == 'w' ? RS_MAP_W : 0) |
                   (perms[2] == 'x' ? RS_MAP_X : 0);
        if (m->path && m->path[0] == '/') {
            rs__grow(fmaps, &fcap, *nfmaps + 1, sizeof **fmaps);
            (*fmaps)[(*nfmaps)++] = (rs_filemap){start, end, off, m->path};
        }
    }
    free(text);
}

rs_target *rs_open_pid(int pid, const char *exe_path, rs_error *err)
{
    if (pid <= 0) {
        rs__seterr(err, "invalid process id %d", pid);
        return NULL;
    }
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", pid);
    if (stat(path, &st) != 0) {
        rs__seterr(err, "no such process %d", pid);
        return NULL;
    }
    char tgid[32];
    if (status_field(pid, "Tgid", tgid, sizeof tgid) && atoi(tgid) > 0 && atoi(tgid) != pid)
        pid = atoi(tgid); /* a thread id: inspect its process */
    if (pid == getpid()) {
        rs__seterr(err, "cannot inspect refscope's own process %d", pid);
        return NULL;
    }
    rs_target *t = rs__target_new(RS_TARGET_LIVE);
    t->pid = pid;
    t->live = rs__xcalloc(1, sizeof *t->live);
    t->live->pid = pid;
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    t->live->memfd = -1;
    if (attach_all(t, err) != 0) {
        rs_close(t);
        return NULL;
    }
    t->live->memfd = open(path, O_RDONLY | O_CLOEXEC);

    size_t len;
    char *s = read_proc(pid, "comm", &len);
    if (s) {
        s[strcspn(s, "\n")] = 0;
        t->program = rs__strdup(t, s);
        free(s);
    }
    s = read_proc(pid, "cmdline", &len);
    if (s) {
        for (size_t i = 0; i + 1 < len; i++)
            if (s[i] == 0)
                s[i] = ' ';
        t->cmdline = rs__strdup(t, s);
        free(s);
    }

    rs_procinfo pi = {.exe_override = exe_path};
    rs_filemap *fmaps = NULL;
    size_t nfmaps = 0;
    parse_maps(t, pid, &fmaps, &nfmaps);
    rs__sort_maps(t);
    pi.fmaps = fmaps;
    pi.nfmaps = nfmaps;
    s = read_proc(pid, "auxv", &len);
    if (s) {
        pi.have_auxv = len >= 16;
        for (size_t off = 0; off + 16 <= len; off += 16) {
            uint64_t k, v;
            memcpy(&k, s + off, 8);
            memcpy(&v, s + off + 8, 8);
            if (k == AT_ENTRY)
                pi.at_entry = v;
            else if (k == AT_PHDR)
                pi.at_phdr = v;
        }
        free(s);
    }
    char exe_link[64];
    snprintf(exe_link, sizeof exe_link, "/proc/%d/exe", pid);
    pi.exe_fallback = exe_link;
    int rc = rs__setup_modules(t, &pi, err);
    free(fmaps);
    if (rc != 0) {
        rs_close(t);
        return NULL;
    }

    /* Threads, the main thread first. */
    rs_live *l = t->live;
    t->threads = rs__xcalloc(l->nthreads, sizeof *t->threads);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < l->nthreads; i++) {
            int tid = l->threads[i].tid;
            if ((pass == 0) != (tid == pid))
                continue;
            rs_thread *th = &t->threads[t->nthreads];
            struct user_regs_struct regs;
            if (ptrace(PTRACE_GETREGS, tid, 0, &regs) != 0) {
                rs__warn(t, "thread %d: cannot read its registers: %s", tid, strerror(errno));
                continue;
            }
            th->tid = tid;
            th->signal = l->threads[i].pending_sig;
            memcpy(&th->regs, &regs, sizeof th->regs);
            t->nthreads++;
        }
    rs__thread_stacks(t);
    return t;
}
