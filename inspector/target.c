/*
 * target.c -- what every kind of target shares: allocation helpers, the
 * warning list, memory read dispatch, mappings, and finding the executable
 * and shared libraries (with their bias and build-id checks) from a list of
 * file mappings, which the core reader (NT_FILE) and the live reader
 * (/proc/PID/maps) both produce.
 */
#include "target_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- allocation ----------------------------------------------------------- */

static void oom(void)
{
    fputs("refscope: out of memory\n", stderr);
    abort();
}

void *rs__xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *rs__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *rs__xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *rs__xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        oom();
    return p;
}

void rs__grow(void *arr, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void **pa = arr;
    *pa = rs__xrealloc(*pa, c * elsize);
    *cap = c;
}

/* A bump allocator: target-lifetime strings and small records. */
typedef struct rs_arena {
    struct rs_arena *next;
    size_t used, cap;
    char data[];
} rs_arena;

void *rs__alloc(rs_target *t, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    rs_arena *a = t->arena;
    if (!a || a->cap - a->used < n) {
        size_t cap = n > 60000 ? n : 65536 - sizeof(rs_arena);
        rs_arena *b = rs__xmalloc(sizeof(rs_arena) + cap);
        b->used = 0;
        b->cap = cap;
        if (a && n > 60000) { /* keep filling the current block */
            b->next = a->next;
            a->next = b;
        } else {
            b->next = a;
            t->arena = b;
        }
        a = b;
    }
    void *p = a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *rs__strndup(rs_target *t, const char *s, size_t n)
{
    char *p = rs__alloc(t, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *rs__strdup(rs_target *t, const char *s)
{
    return s ? rs__strndup(t, s, strlen(s)) : NULL;
}

char *rs__sprintf(rs_target *t, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof small)
        return rs__strndup(t, small, (size_t)n);
    char *p = rs__alloc(t, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- errors and warnings -------------------------------------------------- */

void rs__seterr(rs_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void rs__warn(rs_target *t, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < t->nwarnings; i++)
        if (strcmp(t->warnings[i], buf) == 0)
            return; /* say it once */
    if (t->nwarnings >= RS_MAX_WARNINGS) {
        t->dropped_warnings++;
        return;
    }
    rs__grow(&t->warnings, &t->capwarnings, t->nwarnings + 1, sizeof *t->warnings);
    t->warnings[t->nwarnings++] = rs__xstrdup(buf);
}

size_t rs_warning_count(const rs_target *t)
{
    return t->nwarnings + (t->dropped_warnings ? 1 : 0);
}

const char *rs_warning(const rs_target *t, size_t i)
{
    if (i < t->nwarnings)
        return t->warnings[i];
    if (i == t->nwarnings && t->dropped_warnings) {
        static __thread char buf[96];
        snprintf(buf, sizeof buf, "%zu more warnings not shown", t->dropped_warnings);
        return buf;
    }
    return NULL;
}

const char *rs__basename(const char *path)
{
    if (!path)
        return "";
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- lifetime --------------------------------------------------------------- */

rs_target *rs__target_new(rs_target_kind kind)
{
    rs_target *t = rs__xcalloc(1, sizeof *t);
    t->kind = kind;
    t->program = "?";
    t->cmdline = "";
    return t;
}

void rs_close(rs_target *t)
{
    if (!t)
        return;
    if (t->live)
        rs__live_close(t);
    for (size_t i = 0; i < t->nmods; i++) {
        rs__dwarf_free(t->mods[i]);
        rs__syms_free(t->mods[i]);
        free(t->mods[i]->debug_path);
        free(t->mods[i]);
    }
    free(t->mods);
    if (t->frames)
        for (size_t i = 0; i < t->nthreads; i++)
            free(t->frames[i].frames);
    free(t->frames);
    free(t->threads);
    free(t->maps);
    free(t->regions);
    free(t->globals);
    free(t->global_types);
    free(t->global_mods);
    if (t->retired_globals)
        for (int i = 0; i < 3; i++)
            free(t->retired_globals[i]);
    free(t->slots);
    free(t->slots_head);
    for (rs_file *f = t->files, *next; f; f = next) {
        next = f->next;
        if (f->data)
            munmap((void *)f->data, f->size);
        free(f->path);
        free(f);
    }
    for (size_t i = 0; i < t->nwarnings; i++)
        free(t->warnings[i]);
    free(t->warnings);
    for (rs_arena *a = t->arena, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    free(t);
}

rs_target_kind rs_kind(const rs_target *t) { return t->kind; }
int rs_pid(const rs_target *t) { return t->pid; }
const char *rs_program(const rs_target *t) { return t->program; }
const char *rs_command_line(const rs_target *t) { return t->cmdline; }
int rs_signal(const rs_target *t) { return t->signal; }

/* ---- memory --------------------------------------------------------------- */

/* Index of the region containing addr, or of the first region after it
 * (== nregions if none). */
static size_t region_index(const rs_target *t, uint64_t addr)
{
    size_t lo = 0, hi = t->nregions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->regions[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t read_regions(rs_target *t, uint64_t addr, void *buf, size_t len, bool core_only)
{
    size_t done = 0;
    size_t i = region_index(t, addr);
    while (done < len && i < t->nregions) {
        const rs_region *r = &t->regions[i];
        uint64_t a = addr + done;
        if (a < r->start || (core_only && !r->in_core))
            break;
        uint64_t n = r->end - a;
        if (n > len - done)
            n = len - done;
        memcpy((char *)buf + done, r->data + (a - r->start), n);
        done += n;
        i++;
    }
    return done;
}

size_t rs__read_core_only(rs_target *t, uint64_t addr, void *buf, size_t len)
{
    if (t->kind != RS_TARGET_CORE)
        return rs_read(t, addr, buf, len);
    return read_regions(t, addr, buf, len, true);
}

size_t rs_read(rs_target *t, uint64_t addr, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    if (addr + len < addr) /* wraps: read up to the top of the address space */
        len = (size_t)(0 - addr);
    switch (t->kind) {
    case RS_TARGET_CORE:
        return read_regions(t, addr, buf, len, false);
    case RS_TARGET_LIVE:
        return rs__live_read(t, addr, buf, len);
    case RS_TARGET_MEMORY: {
        size_t n = t->custom.read ? t->custom.read(t->custom.ctx, addr, buf, len) : 0;
        return n > len ? len : n;
    }
    }
    return 0;
}

bool rs_read_u64(rs_target *t, uint64_t addr, uint64_t *ret)
{
    return rs_read(t, addr, ret, 8) == 8;
}

bool rs_read_string(rs_target *t, uint64_t addr, char *buf, size_t size)
{
    if (size == 0)
        return false;
    size_t done = 0;
    while (done + 1 < size) {
        /* Read up to the end of the page: the next page may be unmapped. */
        size_t chunk = RS_PAGE - ((addr + done) & (RS_PAGE - 1));
        if (chunk > size - 1 - done)
            chunk = size - 1 - done;
        size_t n = rs_read(t, addr + done, buf + done, chunk);
        char *nul = memchr(buf + done, 0, n);
        if (nul)
            return true;
        done += n;
        if (n < chunk)
            break;
    }
    buf[done] = 0;
    return false;
}

static size_t memory_read_cb(void *ctx, uint64_t addr, void *buf, size_t len)
{
    return rs_read(ctx, addr, buf, len);
}

rs_memory rs_target_memory(rs_target *t)
{
    rs_memory m = {memory_read_cb, t};
    return m;
}

const void *rs_memory_view(rs_memory mem, uint64_t addr, size_t len, size_t *avail)
{
    *avail = 0;
    if (mem.read != memory_read_cb || !len)
        return NULL;
    const rs_target *t = mem.ctx;
    if (t->kind != RS_TARGET_CORE)
        return NULL;
    size_t i = region_index(t, addr);
    if (i >= t->nregions || addr < t->regions[i].start)
        return NULL;
    const rs_region *r = &t->regions[i];
    *avail = r->end - addr < len ? (size_t)(r->end - addr) : len;
    return r->data + (addr - r->start);
}

/* ---- mappings --------------------------------------------------------------- */

static int cmp_map(const void *a, const void *b)
{
    const rs_mapping *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort by start and make the list disjoint, as rs_mapping_find's binary
 * search needs: a malformed core can claim addresses twice (segments or
 * NT_FILE entries that overlap) or backwards (end before start). Empty and
 * backward mappings are dropped; one that overlaps its predecessor keeps
 * only what lies beyond it. */
void rs__sort_maps(rs_target *t)
{
    RS_QSORT(t->maps, t->nmaps, sizeof *t->maps, cmp_map);
    size_t out = 0;
    for (size_t i = 0; i < t->nmaps; i++) {
        rs_mapping m = t->maps[i];
        if (m.end <= m.start)
            continue;
        if (out > 0 && m.start < t->maps[out - 1].end) {
            uint64_t cut = t->maps[out - 1].end;
            if (m.end <= cut)
                continue;
            if (m.path)
                m.file_offset += cut - m.start;
            m.start = cut;
        }
        t->maps[out++] = m;
    }
    t->nmaps = out;
}

size_t rs_mapping_count(const rs_target *t) { return t->nmaps; }

const rs_mapping *rs_mapping_get(const rs_target *t, size_t i)
{
    return i < t->nmaps ? &t->maps[i] : NULL;
}

const rs_mapping *rs_mapping_find(const rs_target *t, uint64_t addr)
{
    size_t lo = 0, hi = t->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->maps[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->nmaps && t->maps[lo].start <= addr)
        return &t->maps[lo];
    return NULL;
}

void rs__thread_stacks(rs_target *t)
{
    for (size_t i = 0; i < t->nthreads; i++) {
        rs_thread *th = &t->threads[i];
        const rs_mapping *m = rs_mapping_find(t, th->regs.rsp);
        if (!m) {
            th->stack_start = th->stack_end = th->regs.rsp;
            rs__warn(t, "thread %d: stack pointer 0x%llx is not in any mapping", th->tid,
                     (unsigned long long)th->regs.rsp);
            continue;
        }
        th->stack_start = th->regs.rsp & ~(uint64_t)7;
        th->stack_end = m->end;
        if (th->stack_end - th->stack_start > RS_STACK_CAP) {
            th->stack_end = th->stack_start + RS_STACK_CAP;
            rs__warn(t, "thread %d: stack longer than %llu MiB, only its first part is scanned",
                     th->tid, (unsigned long long)(RS_STACK_CAP >> 20));
        }
        uint64_t word;
        if (th->stack_end > th->stack_start && !rs_read_u64(t, th->stack_start, &word))
            rs__warn(t, "thread %d: its stack at 0x%llx is not readable (a truncated core?): "
                     "objects only its frames hold will look unexplained",
                     th->tid, (unsigned long long)th->stack_start);
    }
}

/* ---- modules ---------------------------------------------------------------- */

size_t rs_module_count(const rs_target *t) { return t->nmods; }

const rs_module *rs_module_get(const rs_target *t, size_t i)
{
    return i < t->nmods ? &t->mods[i]->pub : NULL;
}

rs_mod *rs__mod_at(const rs_target *t, uint64_t addr)
{
    for (size_t i = 0; i < t->nmods; i++) {
        rs_mod *m = t->mods[i];
        if (addr >= m->pub.start && addr < m->pub.end)
            return m;
    }
    return NULL;
}

const rs_module *rs_module_at(const rs_target *t, uint64_t addr)
{
    rs_mod *m = rs__mod_at(t, addr);
    return m ? &m->pub : NULL;
}

/* Read the GNU build-id of the ELF image mapped at base (its first PT_LOAD
 * page) from the process's memory. Returns its length, 0 if not found. */
static size_t image_build_id(rs_target *t, uint64_t base, uint64_t bias, bool core_only,
                             uint8_t *out, size_t outsize)
{
    size_t (*rd)(rs_target *, uint64_t, void *, size_t) =
        core_only ? rs__read_core_only : rs_read;
    Elf64_Ehdr eh;
    if (rd(t, base, &eh, sizeof eh) != sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return 0;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 128)
        return 0;
    Elf64_Phdr ph[128];
    size_t phsize = eh.e_phnum * sizeof(Elf64_Phdr);
    if (rd(t, base + eh.e_phoff, ph, phsize) != phsize)
        return 0;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type != PT_NOTE || ph[i].p_filesz == 0 || ph[i].p_filesz > 8192)
            continue;
        uint8_t notes[8192];
        size_t n = rd(t, bias + ph[i].p_vaddr, notes, ph[i].p_filesz);
        size_t off = 0;
        while (off + sizeof(Elf64_Nhdr) <= n) {
            Elf64_Nhdr nh;
            memcpy(&nh, notes + off, sizeof nh);
            size_t name_off = off + sizeof nh;
            size_t desc_off = name_off + ((nh.n_namesz + 3) & ~3u);
            size_t next = desc_off + ((nh.n_descsz + 3) & ~3u);
            if (next > n || next <= off)
                break;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                memcmp(notes + name_off, "GNU", 4) == 0 && nh.n_descsz <= outsize) {
                memcpy(out, notes + desc_off, nh.n_descsz);
                return nh.n_descsz;
            }
            off = next;
        }
    }
    return 0;
}

static rs_mod *add_module(rs_target *t, const char *path, bool is_exe)
{
    rs_mod *m = rs__xcalloc(1, sizeof *m);
    m->pub.path = rs__strdup(t, path);
    m->pub.name = rs__basename(m->pub.path);
    m->pub.build_id = "";
    m->pub.is_exe = is_exe;
    t->mods = rs__xrealloc(t->mods, (t->nmods + 1) * sizeof *t->mods);
    t->mods[t->nmods++] = m;
    return m;
}

/* Fill in what we learn from the module's file. */
static void module_loaded(rs_target *t, rs_mod *m)
{
    char hex[2 * sizeof m->elf.build_id + 1];
    rs__hex(hex, m->elf.build_id, m->elf.build_id_len);
    m->pub.build_id = rs__strdup(t, hex);
    m->pub.loaded = true;
    m->pub.start = m->elf.load_vaddr + m->pub.bias;
    m->pub.end = m->elf.load_end + m->pub.bias;
    m->pub.has_symbols = m->elf.symtab || m->elf.dynsym;
    m->pub.has_dwarf = m->elf.has_debug_info;
    if (!m->pub.has_dwarf && m->elf.build_id_len > 1) {
        /* Debian's -dbg packages: /usr/lib/debug/.build-id/ab/cdef....debug */
        char path[256];
        snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%.2s/%s.debug", hex, hex + 2);
        if (access(path, R_OK) == 0) {
            m->debug_path = rs__xstrdup(path);
            m->pub.has_dwarf = true;
        }
    }
}

/* Say once what a missing .symtab or DWARF in the executable costs. */
static void warn_no_dwarf(rs_target *t, const rs_mod *exe)
{
    if (!exe->pub.loaded || exe->pub.has_dwarf)
        return;
    const char *prog = exe->pub.name;
    if (!exe->pub.has_symbols)
        rs__warn(t, "%s is stripped of symbols and DWARF: its globals cannot be found or "
                 "named", prog);
    else if (!exe->elf.symtab)
        rs__warn(t, "%s is stripped (no .symtab, no DWARF): only its dynamic symbols are "
                 "known", prog);
    else
        rs__warn(t, "%s has no DWARF debug info (build with -g): using its symbol table only",
                 prog);
}

static bool is_special_path(const char *p)
{
    return !p || p[0] != '/' || strncmp(p, "/dev/", 5) == 0 || strncmp(p, "/memfd:", 7) == 0 ||
           strncmp(p, "/SYSV", 5) == 0;
}

/* Add the executable module from path. 0 ok; 1 error; 2 error that the
 * process's own copy of the file (/proc/PID/exe) may not have. */
static int load_exe(rs_target *t, const rs_procinfo *pi, const char *exe_path, rs_mod **ret,
                    rs_error *err)
{
    rs_mod *exe = add_module(t, exe_path, true);
    *ret = exe;
    rs_file *f = rs__file_open(t, exe_path);
    if (!f->data) {
        if (f->err == ENOENT)
            rs__seterr(err, "executable %s not found%s; pass --exe", exe_path,
                       pi->exe_override ? "" : " (named in the core)");
        else
            rs__seterr(err, "cannot read executable %s: %s", exe_path, strerror(f->err));
        return 2;
    }
    rs_error e2;
    if (rs__elf_parse(&exe->elf, f, &e2) != 0) {
        rs__seterr(err, "executable %s: %s", exe_path, e2.msg);
        return 1;
    }
    if (exe->elf.eh->e_type == ET_CORE) {
        rs__seterr(err, "%s is a core file, not an executable", exe_path);
        return 1;
    }
    if (exe->elf.eh->e_type != ET_EXEC && exe->elf.eh->e_type != ET_DYN) {
        rs__seterr(err, "%s is not an executable (ELF type %u)", exe_path,
                   exe->elf.eh->e_type);
        return 1;
    }
    const char *prog = rs__basename(exe_path);
    const char *who = t->kind == RS_TARGET_LIVE ? "process" : "core";

    /* Bias: AT_ENTRY - e_entry; else where the first page is mapped. */
    uint64_t bias = 0;
    if (pi->have_auxv && pi->at_entry) {
        bias = pi->at_entry - exe->elf.eh->e_entry;
        if ((exe->elf.eh->e_type == ET_EXEC && bias != 0) || (bias & (RS_PAGE - 1)) != 0) {
            rs__seterr(err, "%s was produced by a different build of %s (entry point "
                       "0x%llx does not fit its e_entry 0x%llx)", who, prog,
                       (unsigned long long)pi->at_entry,
                       (unsigned long long)exe->elf.eh->e_entry);
            return 2;
        }
    } else if (pi->exe_map_start) {
        bias = pi->exe_map_start - exe->elf.load_vaddr;
    } else if (exe->elf.eh->e_type == ET_DYN && t->kind != RS_TARGET_MEMORY) {
        rs__warn(t, "no auxiliary vector and no mapping of %s: assuming it is loaded at its "
                 "link address", prog);
    }
    exe->pub.bias = bias;
    module_loaded(t, exe);

    /* Build-id: the file against the process's image of it. */
    uint8_t mem_id[64];
    size_t mem_id_len = image_build_id(t, exe->pub.start, bias, pi->core_only_ids, mem_id,
                                       sizeof mem_id);
    if (mem_id_len && exe->elf.build_id_len &&
        (mem_id_len != exe->elf.build_id_len ||
         memcmp(mem_id, exe->elf.build_id, mem_id_len) != 0)) {
        char hex[2 * sizeof mem_id + 1];
        rs__hex(hex, mem_id, mem_id_len);
        if (t->kind == RS_TARGET_LIVE)
            rs__seterr(err, "process %d runs a different build of %s (build-id %s vs %s)",
                       t->pid, prog, exe->pub.build_id, hex);
        else
            rs__seterr(err, "core was produced by a different build of %s (build-id %s vs %s)",
                       prog, exe->pub.build_id, hex);
        return 2;
    }
    return 0;
}

int rs__setup_modules(rs_target *t, const rs_procinfo *pi_in, rs_error *err)
{
    rs_procinfo copy = *pi_in;
    rs_procinfo *pi = &copy;
    /* 1. Which mapping is the executable: the one holding the program
     *    headers (AT_PHDR) or the entry point. */
    const char *exe_map_path = NULL;
    if (pi->have_auxv) {
        for (int pass = 0; pass < 2 && !exe_map_path; pass++) {
            uint64_t a = pass == 0 ? pi->at_phdr : pi->at_entry;
            for (size_t i = 0; i < pi->nfmaps; i++)
                if (a && a >= pi->fmaps[i].start && a < pi->fmaps[i].end) {
                    exe_map_path = pi->fmaps[i].path;
                    break;
                }
        }
    }
    if (!exe_map_path && !pi->have_auxv && pi->nfmaps > 0)
        exe_map_path = pi->fmaps[0].path; /* the kernel maps the executable first */
    if (exe_map_path)
        for (size_t i = 0; i < pi->nfmaps; i++)
            if (strcmp(pi->fmaps[i].path, exe_map_path) == 0 && pi->fmaps[i].offset == 0) {
                pi->exe_map_start = pi->fmaps[i].start;
                break;
            }

    const char *exe_path = pi->exe_override;
    if (!exe_path) {
        if (!exe_map_path) {
            rs__seterr(err, "cannot tell which file is the executable (the %s names no "
                       "mapped files); pass --exe",
                       t->kind == RS_TARGET_CORE ? "core" : "process");
            return -1;
        }
        exe_path = exe_map_path;
        if (pi->exe_fallback && access(exe_path, R_OK) != 0)
            exe_path = pi->exe_fallback;
    }

    /* 2-4. The executable: read it, find its bias, check its build-id. A
     * live process whose file was replaced or deleted is read through
     * /proc/PID/exe instead. */
    rs_mod *exe = NULL;
    for (int attempt = 0;; attempt++) {
        rs_error e2;
        int rc = load_exe(t, pi, exe_path, &exe, &e2);
        if (rc == 0)
            break;
        bool retry = attempt == 0 && rc == 2 && pi->exe_fallback && !pi->exe_override &&
                     strcmp(exe_path, pi->exe_fallback) != 0;
        if (!retry) {
            rs__seterr(err, "%s", e2.msg);
            return -1;
        }
        t->nmods--; /* forget the failed module */
        free(t->mods[t->nmods]);
        rs__warn(t, "%s; reading the executable through %s instead", e2.msg, pi->exe_fallback);
        exe_path = pi->exe_fallback;
    }
    if (exe_path == pi->exe_fallback && exe_map_path)
        exe->pub.name = rs__strdup(t, rs__basename(exe_map_path)); /* not "exe" */
    if (t->kind == RS_TARGET_CORE) {
        uint8_t id[64];
        if (!image_build_id(t, exe->pub.start, exe->pub.bias, true, id, sizeof id))
            rs__warn(t, "cannot check that %s is the program that dumped the core (no "
                     "build-id in the core's image of it)", exe->pub.path);
    }

    /* 5. Shared libraries: mappings of ELF files at offset 0. */
    for (size_t i = 0; i < pi->nfmaps; i++) {
        const rs_filemap *fm = &pi->fmaps[i];
        if (fm->offset != 0 || is_special_path(fm->path))
            continue;
        if (exe_map_path && strcmp(fm->path, exe_map_path) == 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < t->nmods && !seen; j++)
            seen = t->mods[j]->pub.loaded && t->mods[j]->pub.start == fm->start;
        if (seen)
            continue;
        char magic[SELFMAG];
        bool mem_elf = rs__read_core_only(t, fm->start, magic, SELFMAG) == SELFMAG &&
                       memcmp(magic, ELFMAG, SELFMAG) == 0;
        rs_file *lf = rs__file_open(t, fm->path);
        if (!lf->data) {
            if (mem_elf || strstr(fm->path, ".so"))
                rs__warn(t, "shared library %s (mapped at 0x%llx) cannot be read (%s): its "
                         "symbols, DWARF and read-only pages are unavailable",
                         fm->path, (unsigned long long)fm->start, strerror(lf->err));
            continue;
        }
        if (lf->size < SELFMAG || memcmp(lf->data, ELFMAG, SELFMAG) != 0)
            continue; /* a data file (locale archive, ...) */
        rs_mod *m = add_module(t, fm->path, false);
        rs_error le;
        if (rs__elf_parse(&m->elf, lf, &le) != 0) {
            rs__warn(t, "shared library %s: %s", fm->path, le.msg);
            continue;
        }
        m->pub.bias = fm->start - m->elf.load_vaddr;
        uint8_t id[64];
        size_t idlen = image_build_id(t, fm->start, m->pub.bias, pi->core_only_ids, id, sizeof id);
        if (idlen && m->elf.build_id_len &&
            (idlen != m->elf.build_id_len || memcmp(id, m->elf.build_id, idlen) != 0)) {
            char h1[129], h2[129];
            rs__hex(h1, m->elf.build_id, m->elf.build_id_len);
            rs__hex(h2, id, idlen);
            rs__warn(t, "shared library %s differs from the one the process used (build-id %s "
                     "vs %s): ignoring the file", fm->path, h1, h2);
            m->pub.start = fm->start;
            m->pub.end = fm->end;
            continue;
        }
        module_loaded(t, m);
    }

    warn_no_dwarf(t, exe);
    return 0;
}

rs_target *rs_open_memory(rs_memory mem, const rs_module_spec *modules, size_t nmodules,
                          rs_error *err)
{
    if (!mem.read || !modules || nmodules == 0) {
        rs__seterr(err, "rs_open_memory needs a read callback and at least the executable");
        return NULL;
    }
    rs_target *t = rs__target_new(RS_TARGET_MEMORY);
    t->custom = mem;
    t->program = rs__strdup(t, rs__basename(modules[0].path));
    for (size_t i = 0; i < nmodules; i++) {
        rs_mod *m = add_module(t, modules[i].path, i == 0);
        m->pub.bias = modules[i].bias;
        rs_file *f = rs__file_open(t, modules[i].path);
        rs_error e2;
        if (!f->data) {
            rs__seterr(&e2, "%s", strerror(f->err));
        } else if (rs__elf_parse(&m->elf, f, &e2) == 0) {
            module_loaded(t, m);
            continue;
        }
        if (i == 0) {
            rs__seterr(err, "executable %s: %s", modules[i].path, e2.msg);
            rs_close(t);
            return NULL;
        }
        rs__warn(t, "shared library %s: %s", modules[i].path, e2.msg);
    }
    warn_no_dwarf(t, t->mods[0]);
    return t;
}
