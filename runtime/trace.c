/*
 * Allocation tracing: Python's tracemalloc for refscope objects.
 *
 * Words: a *trace* is one live object allocated while tracing (flag
 * RC_OBF_TRACED, size = its block size); a *traceback* is its allocation
 * site (frame 0, from the object head) plus, with nframes > 1, the return
 * addresses of the callers of the site's function (the *deeper frames*).
 *
 * State (all in rc_debug_registry.trace, see registry.h, so a core shows
 * it):
 *
 *   current, peak, ntraced   kept by the two hooks object.c calls
 *   tracebacks[], frames[]   interned tracebacks (nframes > 1 only)
 *   objects[]                object -> traceback id side table (nframes > 1)
 *
 * Invariants, outside these functions:
 *   current == sum over live objects with RC_OBF_TRACED of their block size
 *   ntraced == number of those objects
 *   objects_count == number of them in the side table, and every object in
 *                    the side table is live and traced
 *   tracing == 0  =>  no live object has RC_OBF_TRACED, current == peak == 0
 *
 * The hot path (nframes == 1) is _rc_trace_alloc / _rc_trace_free: a block
 * size, a flag and two additions. Everything else -- capturing and
 * classifying frames, symbol tables, addr2line, snapshots, statistics --
 * runs elsewhere or only with nframes > 1.
 *
 * Sections: hooks and tracing state; traceback capture (symbols, runtime
 * frame skipping, interning, side table); resolving addresses to names;
 * snapshots; statistics; filters; dump and load; formatting.
 */
#include "internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <link.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define RUNTIME_SLACK 8          /* runtime frames (+ the site's own) captured beyond nframes */
#define OBJTAB_MIN 1024u         /* first side table: 1024 slots */
#define TBINDEX_MIN 256u         /* first traceback index: 256 slots */
#define GOLDEN 0x9E3779B97F4A7C15ull

static const char *const runtime_files[] = {
    "alloc.c", "builtins.c", "class.c", "dict.c", "gc.c", "memstats.c",
    "object.c", "registry.c", "trace.c", "weakref.c", NULL,
};

static void update_tracer_memory(void);
static void objtab_remove(const rc_object *o);
static void release_symbols(void);
static void release_resolved(void);

/* "../samples/leak.c" -> "samples/leak.c" (as object.c's rc_describe). */
static const char *strip_path(const char *p)
{
    if (!p)
        return "<unknown>";
    while (p[0] == '.' && (p[1] == '/' || (p[1] == '.' && p[2] == '/')))
        p += p[1] == '/' ? 2 : 3;
    return p;
}

/* ========================================================================
 * Hooks and tracing state
 * ===================================================================== */

/* (_rc_trace_alloc and _rc_trace_free, the per-object hooks, are inline in
 * internal.h; what they need beyond counters is here.) */

void _rc_trace_forget(const rc_object *o) { objtab_remove(o); }

static void clear_flag(rc_object *o, void *arg)
{
    (void)arg;
    o->ob_info &= ~RC_OBF_TRACED;
}

static void **capture_buf;   /* backtrace() output (nframes > 1) */
static int capture_cap;
static uint32_t *tb_index;   /* traceback intern table: id + 1, 0 = empty */
static uint32_t tb_index_cap;

/* Forget every trace and traceback (tracemalloc's clear_traces). */
static void clear_traces(void)
{
    rc_trace_state *t = &REG.trace;
    _rc_mem_walk(clear_flag, NULL);
    free(t->objects);
    t->objects = NULL;
    t->objects_cap = t->objects_count = 0;
    free(t->tracebacks);
    t->tracebacks = NULL;
    t->ntracebacks = t->captracebacks = 0;
    free(t->frames);
    t->frames = NULL;
    t->nframes_used = t->capframes = 0;
    free(tb_index);
    tb_index = NULL;
    tb_index_cap = 0;
    t->current = t->peak = 0;
    t->ntraced = 0;
    update_tracer_memory();
}

/* Everything the tracer allocated goes (tracing must be off or restarting). */
static void release_all(void)
{
    clear_traces();
    free(capture_buf);
    capture_buf = NULL;
    capture_cap = 0;
    release_symbols();
    release_resolved();
    update_tracer_memory();
}

int rc_trace_start(int nframes)
{
    rc_autoinit();
    if (nframes < 1 || nframes > RC_TRACE_MAX_NFRAME)
        return _rc_error("rc_trace_start: the number of frames must be in range [1; %d], got %d",
                         RC_TRACE_MAX_NFRAME, nframes);
    rc_trace_state *t = &REG.trace;
    if (t->tracing)
        return 0; /* as tracemalloc.start(): already tracing, nothing changes */
    t->nframes = (uint32_t)nframes;
    if (nframes > 1) {
        /* own frame + runtime frames + the site's function + deeper frames */
        capture_cap = 1 + RUNTIME_SLACK + 1 + (nframes - 1);
        capture_buf = _rc_xrealloc(capture_buf, (size_t)capture_cap * sizeof *capture_buf);
        /* glibc loads libgcc's unwinder on the first call: do it now. */
        backtrace(capture_buf, 1);
    }
    t->current = t->peak = 0;
    t->ntraced = 0;
    t->tracing = 1;
    update_tracer_memory();
    return 0;
}

void rc_trace_stop(void)
{
    if (!REG.trace.tracing)
        return;
    REG.trace.tracing = 0;
    release_all();
}

bool rc_trace_is_tracing(void) { return REG.trace.tracing != 0; }

void rc_trace_clear_traces(void)
{
    if (REG.trace.tracing)
        clear_traces();
}

void rc_trace_get_memory(size_t *current, size_t *peak)
{
    const rc_trace_state *t = &REG.trace;
    if (current)
        *current = t->tracing ? (size_t)t->current : 0;
    if (peak)
        *peak = t->tracing ? (size_t)t->peak : 0;
}

void rc_trace_reset_peak(void)
{
    if (REG.trace.tracing)
        REG.trace.peak = REG.trace.current;
}

int rc_trace_get_traceback_limit(void) { return REG.trace.nframes ? (int)REG.trace.nframes : 1; }

size_t rc_trace_get_tracemalloc_memory(void) { return (size_t)REG.trace.tracer_memory; }

void _rc_trace_shutdown(void)
{
    REG.trace.tracing = 0;
    release_all();
    REG.trace.nframes = 0;
    _rc_memstats_shutdown();
}

/* ========================================================================
 * Symbols: which return addresses belong to the runtime
 * ===================================================================== */

/*
 * backtrace() gives return addresses: [this file, _rc_alloc_object,
 * rc_new_at, a constructor..., the site's function, its caller, ...]. The
 * deeper frames start after the site's function; the runtime frames before
 * it vary with the constructor (and with tail calls), so they are
 * recognised by symbol: each loaded object file's .symtab (or .dynsym) is
 * read once, and a function is the runtime's if its name starts with rc_
 * or _rc_, or it is a static function of one of the runtime's source files
 * (the STT_FILE symbol before it). Results are cached per address.
 */

typedef struct sym {
    uintptr_t start, end;  /* run-time addresses */
    const char *name;      /* in the module's mapped file */
    int runtime;
} sym;

typedef struct module {
    char *path;            /* the file to read (the main program: its real path) */
    const char *name;      /* basename of path, for "libfoo.so+0x1234" */
    uintptr_t bias;        /* load bias: run-time address = file address + bias */
    uintptr_t lo, hi;      /* span of the executable segments */
    int loaded;            /* 0 not yet, 1 symbols read, -1 unreadable */
    sym *syms;
    size_t nsyms;
    void *map;
    size_t maplen;
} module;

static module *modules;
static size_t nmodules;

/* Address -> symbol cache for the hot path (nframes > 1). */
typedef struct addr_slot {
    uintptr_t addr;        /* 0: empty */
    const sym *s;          /* NULL: no symbol */
} addr_slot;
static addr_slot *addr_cache;
static size_t addr_cache_cap, addr_cache_used;

static unsigned long long modules_adds; /* dlpi_adds when modules was scanned */

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    bool *first = arg;
    bool is_main = *first;
    *first = false;
    modules_adds = info->dlpi_adds;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    if (hi == 0)
        return 0;
    for (size_t i = 0; i < nmodules; i++)
        if (modules[i].lo == lo && modules[i].hi == hi)
            return 0; /* known: keep its symbols (the address cache points to them) */
    char *path;
    if (info->dlpi_name && info->dlpi_name[0]) {
        path = _rc_xstrdup(info->dlpi_name);
    } else if (is_main) {
        char buf[4096];
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        path = _rc_xstrdup(n > 0 ? buf : "/proc/self/exe");
    } else {
        return 0;
    }
    modules = _rc_xrealloc(modules, (nmodules + 1) * sizeof *modules);
    module *m = &modules[nmodules++];
    memset(m, 0, sizeof *m);
    m->path = path;
    const char *slash = strrchr(path, '/');
    m->name = slash ? slash + 1 : path;
    m->bias = info->dlpi_addr;
    m->lo = lo;
    m->hi = hi;
    return 0;
}

static int read_adds(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    *(unsigned long long *)arg = info->dlpi_adds;
    return 1;
}

/* Add the objects loaded since the last scan (all of them the first time). */
static void scan_modules(void)
{
    if (modules) {
        unsigned long long adds = 0;
        dl_iterate_phdr(read_adds, &adds);
        if (adds == modules_adds)
            return;
    }
    bool first = true;
    dl_iterate_phdr(add_module, &first);
    update_tracer_memory();
}

static bool is_runtime_symbol(const char *name, bool local, const char *file)
{
    if (strncmp(name, "rc_", 3) == 0 || strncmp(name, "_rc_", 4) == 0)
        return true;
    if (!local || !file)
        return false;
    for (const char *const *f = runtime_files; *f; f++)
        if (strcmp(file, *f) == 0)
            return true;
    return false;
}

static int sym_cmp(const void *a, const void *b)
{
    const sym *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    /* aliases: a sized one first, then a global name */
    if ((x->end > x->start) != (y->end > y->start))
        return x->end > x->start ? -1 : 1;
    return 0;
}

/* Read the function symbols of m's file (64-bit ELF only). */
static void load_symbols(module *m)
{
    m->loaded = -1;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
        close(fd);
        return;
    }
    size_t len = (size_t)st.st_size;
    unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff == 0 ||
        eh->e_shoff > len || (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > len - eh->e_shoff) {
        munmap(map, len);
        return;
    }
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(map + eh->e_shoff);
    const Elf64_Shdr *symsec = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB)
            symsec = &sh[i];
    if (!symsec)
        for (unsigned i = 0; i < eh->e_shnum; i++)
            if (sh[i].sh_type == SHT_DYNSYM)
                symsec = &sh[i];
    if (!symsec || symsec->sh_link >= eh->e_shnum || symsec->sh_offset > len ||
        symsec->sh_size > len - symsec->sh_offset) {
        munmap(map, len);
        return;
    }
    const Elf64_Shdr *strsec = &sh[symsec->sh_link];
    if (strsec->sh_offset > len || strsec->sh_size > len - strsec->sh_offset) {
        munmap(map, len);
        return;
    }
    const char *strtab = (const char *)map + strsec->sh_offset;
    size_t strsize = strsec->sh_size;
    const Elf64_Sym *syms = (const Elf64_Sym *)(map + symsec->sh_offset);
    size_t nsyms = symsec->sh_size / sizeof(Elf64_Sym);

    sym *out = _rc_xmalloc((nsyms ? nsyms : 1) * sizeof *out);
    size_t n = 0;
    const char *file = NULL;
    for (size_t i = 0; i < nsyms; i++) {
        const Elf64_Sym *s = &syms[i];
        if (s->st_name >= strsize)
            continue;
        const char *name = strtab + s->st_name;
        unsigned type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
        if (type == STT_FILE) {
            file = name;
            continue;
        }
        if (bind != STB_LOCAL)
            file = NULL; /* globals come after all locals: no file */
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
            s->st_value == 0 || !name[0])
            continue;
        sym *o = &out[n++];
        o->start = (uintptr_t)s->st_value + m->bias;
        o->end = o->start + (uintptr_t)s->st_size;
        o->name = name;
        o->runtime = is_runtime_symbol(name, bind == STB_LOCAL, file);
    }
    qsort(out, n, sizeof *out, sym_cmp);
    /* Drop aliases; a zero-size symbol extends to the next one. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && out[k - 1].start == out[i].start) {
            out[k - 1].runtime |= out[i].runtime;
            continue;
        }
        out[k++] = out[i];
    }
    for (size_t i = 0; i < k; i++)
        if (out[i].end <= out[i].start)
            out[i].end = i + 1 < k ? out[i + 1].start : out[i].start + 1;
    m->syms = out;
    m->nsyms = k;
    m->map = map;
    m->maplen = len;
    m->loaded = 1;
}

/* The index of the module holding a, or -1 (indexes survive a rescan,
 * module pointers may not). */
static ptrdiff_t module_of(uintptr_t a)
{
    for (int pass = 0; pass < 2; pass++) {
        if (!modules || pass == 1)
            scan_modules();
        for (size_t i = 0; i < nmodules; i++)
            if (a >= modules[i].lo && a < modules[i].hi)
                return (ptrdiff_t)i;
    }
    return -1;
}

static const sym *symbol_of(uintptr_t a, ptrdiff_t *mp)
{
    ptrdiff_t mi = module_of(a);
    if (mp)
        *mp = mi;
    if (mi < 0)
        return NULL;
    module *m = &modules[mi];
    if (m->loaded == 0) {
        load_symbols(m);
        update_tracer_memory();
    }
    if (m->loaded != 1 || m->nsyms == 0)
        return NULL;
    size_t lo = 0, hi = m->nsyms; /* last symbol with start <= a */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->syms[mid].start <= a)
            lo = mid;
        else
            hi = mid;
    }
    const sym *s = &m->syms[lo];
    return (a >= s->start && a < s->end) ? s : NULL;
}

static void release_symbols(void)
{
    for (size_t i = 0; i < nmodules; i++) {
        free(modules[i].path);
        free(modules[i].syms);
        if (modules[i].map)
            munmap(modules[i].map, modules[i].maplen);
    }
    free(modules);
    modules = NULL;
    nmodules = 0;
    free(addr_cache);
    addr_cache = NULL;
    addr_cache_cap = addr_cache_used = 0;
}

static inline size_t ptr_hash(uintptr_t a, size_t cap)
{
    return (size_t)((((uint64_t)a >> 2) * GOLDEN) >> (64 - __builtin_ctzll((uint64_t)cap)));
}

/* The symbol of a return address, cached. */
static const sym *classify(void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    if (addr_cache_used * 2 >= addr_cache_cap) {
        size_t oldcap = addr_cache_cap;
        addr_slot *old = addr_cache;
        addr_cache_cap = oldcap ? oldcap * 2 : 256;
        addr_cache = _rc_xcalloc(addr_cache_cap, sizeof *addr_cache);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].addr)
                continue;
            size_t j = ptr_hash(old[i].addr, addr_cache_cap);
            while (addr_cache[j].addr)
                j = (j + 1) & (addr_cache_cap - 1);
            addr_cache[j] = old[i];
        }
        free(old);
        update_tracer_memory();
    }
    size_t j = ptr_hash(a, addr_cache_cap);
    while (addr_cache[j].addr && addr_cache[j].addr != a)
        j = (j + 1) & (addr_cache_cap - 1);
    if (!addr_cache[j].addr) {
        addr_cache[j].addr = a;
        /* a - 1: the call instruction, inside the caller even when the call
         * is the last instruction of a noreturn path */
        addr_cache[j].s = symbol_of(a - 1, NULL);
        addr_cache_used++;
    }
    return addr_cache[j].s;
}

/* "make_node" names the symbol "make_node", "make_node.constprop.0", ... */
static bool same_function(const char *symname, const char *func)
{
    size_t n = strlen(func);
    return strncmp(symname, func, n) == 0 && (symname[n] == '\0' || symname[n] == '.');
}

/* Index in buf of the first deeper frame: just after the frame of the
 * site's function if it is among the first frames, else after the leading
 * runtime frames. buf[0] is inside this file. */
static int first_deeper_frame(void **buf, int n, uint32_t site)
{
    const char *func = site && site < REG.nsites ? REG.sites[site].func : NULL;
    int lim = n < RUNTIME_SLACK + 2 ? n : RUNTIME_SLACK + 2;
    if (func) {
        for (int i = 1; i < lim; i++) {
            const sym *s = classify(buf[i]);
            if (s && same_function(s->name, func))
                return i + 1;
        }
    }
    int i = 1;
    while (i < n) {
        const sym *s = classify(buf[i]);
        if (!s || !s->runtime)
            break;
        i++;
    }
    return i;
}

/* ========================================================================
 * Interned tracebacks and the object side table
 * ===================================================================== */

static uint64_t tb_hash(uint32_t site, void *const *frames, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ site;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (uint64_t)(uintptr_t)frames[i]) * 0x100000001b3ull * GOLDEN;
    return h ^ (h >> 29);
}

static void tb_index_insert(uint32_t id)
{
    uint32_t mask = tb_index_cap - 1;
    uint32_t j = (uint32_t)REG.trace.tracebacks[id].hash & mask;
    while (tb_index[j])
        j = (j + 1) & mask;
    tb_index[j] = id + 1;
}

static uint32_t tb_intern(uint32_t site, void *const *frames, uint32_t n)
{
    rc_trace_state *t = &REG.trace;
    uint64_t h = tb_hash(site, frames, n);
    if (tb_index_cap) {
        uint32_t mask = tb_index_cap - 1;
        for (uint32_t j = (uint32_t)h & mask; tb_index[j]; j = (j + 1) & mask) {
            const rc_trace_traceback *e = &t->tracebacks[tb_index[j] - 1];
            if (e->hash != h || e->site != site || e->nframes != n)
                continue;
            const uint64_t *f = t->frames + e->first;
            uint32_t k = 0;
            while (k < n && f[k] == (uint64_t)(uintptr_t)frames[k])
                k++;
            if (k == n)
                return tb_index[j] - 1;
        }
    }
    if (t->ntracebacks == t->captracebacks) {
        t->captracebacks = t->captracebacks ? t->captracebacks * 2 : 64;
        t->tracebacks = _rc_xrealloc(t->tracebacks, t->captracebacks * sizeof *t->tracebacks);
    }
    if (t->nframes_used + n > t->capframes) {
        uint64_t cap = t->capframes ? t->capframes : 256;
        while (cap < t->nframes_used + n)
            cap *= 2;
        t->frames = _rc_xrealloc(t->frames, cap * sizeof *t->frames);
        t->capframes = cap;
    }
    uint32_t id = t->ntracebacks;
    rc_trace_traceback *e = &t->tracebacks[id];
    e->site = site;
    e->nframes = n;
    e->first = t->nframes_used;
    e->hash = h;
    for (uint32_t k = 0; k < n; k++)
        t->frames[t->nframes_used + k] = (uint64_t)(uintptr_t)frames[k];
    t->nframes_used += n;
    t->ntracebacks = id + 1; /* published last */
    if ((uint64_t)t->ntracebacks * 2 > tb_index_cap) {
        free(tb_index);
        tb_index_cap = tb_index_cap ? tb_index_cap * 2 : TBINDEX_MIN;
        tb_index = _rc_xcalloc(tb_index_cap, sizeof *tb_index);
        for (uint32_t k = 0; k < t->ntracebacks; k++)
            tb_index_insert(k);
    } else {
        tb_index_insert(id);
    }
    update_tracer_memory();
    return id;
}

static inline uint64_t obj_home(uintptr_t a, uint64_t cap)
{
    return (((uint64_t)a >> 4) * GOLDEN) >> (64 - __builtin_ctzll(cap));
}

static void objtab_put(rc_trace_object *tab, uint64_t cap, uintptr_t a, uint32_t tb)
{
    uint64_t mask = cap - 1;
    uint64_t j = obj_home(a, cap);
    while (tab[j].object && tab[j].object != a)
        j = (j + 1) & mask;
    tab[j].object = a;
    tab[j].traceback = tb;
    tab[j].reserved = 0;
}

static void objtab_insert(const rc_object *o, uint32_t tb)
{
    rc_trace_state *t = &REG.trace;
    if ((t->objects_count + 1) * 2 > t->objects_cap) {
        uint64_t newcap = t->objects_cap ? t->objects_cap * 2 : OBJTAB_MIN;
        rc_trace_object *tab = _rc_xcalloc(newcap, sizeof *tab);
        for (uint64_t i = 0; i < t->objects_cap; i++)
            if (t->objects[i].object)
                objtab_put(tab, newcap, t->objects[i].object, t->objects[i].traceback);
        free(t->objects);
        t->objects = tab;
        t->objects_cap = newcap;
        update_tracer_memory();
    }
    uint64_t mask = t->objects_cap - 1, j = obj_home((uintptr_t)o, t->objects_cap);
    while (t->objects[j].object && t->objects[j].object != (uintptr_t)o)
        j = (j + 1) & mask;
    if (!t->objects[j].object)
        t->objects_count++;
    t->objects[j].object = (uintptr_t)o;
    t->objects[j].traceback = tb;
}

/* The traceback id of o, or -1. */
static int64_t objtab_lookup(const rc_object *o)
{
    const rc_trace_state *t = &REG.trace;
    if (!t->objects_count)
        return -1;
    uint64_t mask = t->objects_cap - 1;
    for (uint64_t j = obj_home((uintptr_t)o, t->objects_cap); t->objects[j].object;
         j = (j + 1) & mask)
        if (t->objects[j].object == (uintptr_t)o)
            return t->objects[j].traceback;
    return -1;
}

/* Linear probing deletion without tombstones: shift back every following
 * entry of the cluster whose home is not between the hole and itself. */
static void objtab_remove(const rc_object *o)
{
    rc_trace_state *t = &REG.trace;
    rc_trace_object *tab = t->objects;
    uint64_t mask = t->objects_cap - 1;
    uint64_t i = obj_home((uintptr_t)o, t->objects_cap);
    while (tab[i].object != (uintptr_t)o) {
        if (!tab[i].object)
            return; /* traced with frame 0 only */
        i = (i + 1) & mask;
    }
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!tab[j].object)
            break;
        uint64_t k = obj_home(tab[j].object, t->objects_cap);
        /* move j to the hole i unless k lies cyclically in (i, j] */
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        tab[i] = tab[j];
        i = j;
    }
    tab[i].object = 0;
    tab[i].traceback = 0;
    t->objects_count--;
}

__attribute__((noinline)) void _rc_trace_record_traceback(rc_object *o)
{
    rc_trace_state *t = &REG.trace;
    int n = backtrace(capture_buf, capture_cap);
    uint32_t site = _rc_site_id(o);
    int first = first_deeper_frame(capture_buf, n, site);
    int k = n - first;
    if (k > (int)t->nframes - 1)
        k = (int)t->nframes - 1;
    if (k <= 0)
        return; /* frame 0 only: nothing to store */
    objtab_insert(o, tb_intern(site, capture_buf + first, (uint32_t)k));
}

/* ========================================================================
 * Resolving addresses: file:line (addr2line), function+offset (symbols)
 * ===================================================================== */

typedef struct resolved {
    uintptr_t addr;        /* 0: empty slot */
    char *filename;        /* NULL: no debug info */
    char *function;        /* symbol name, the module name, or NULL */
    uint32_t lineno;
    uint32_t offset;
} resolved;

static resolved *res_cache;
static size_t res_cap, res_used;

static void release_resolved(void)
{
    for (size_t i = 0; i < res_cap; i++) {
        free(res_cache[i].filename);
        free(res_cache[i].function);
    }
    free(res_cache);
    res_cache = NULL;
    res_cap = res_used = 0;
}

/* Room for `more` insertions without a rehash (so slot pointers handed
 * out meanwhile stay valid). */
static void res_reserve(size_t more)
{
    if ((res_used + more) * 2 < res_cap)
        return;
    size_t oldcap = res_cap;
    resolved *old = res_cache;
    res_cap = oldcap ? oldcap : 256;
    while ((res_used + more) * 2 >= res_cap)
        res_cap *= 2;
    res_cache = _rc_xcalloc(res_cap, sizeof *res_cache);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].addr)
            continue;
        size_t j = ptr_hash(old[i].addr, res_cap);
        while (res_cache[j].addr)
            j = (j + 1) & (res_cap - 1);
        res_cache[j] = old[i];
    }
    free(old);
}

static resolved *res_slot(uintptr_t a, bool insert)
{
    if (insert)
        res_reserve(1);
    if (!res_cap)
        return NULL;
    size_t j = ptr_hash(a, res_cap);
    while (res_cache[j].addr && res_cache[j].addr != a)
        j = (j + 1) & (res_cap - 1);
    if (res_cache[j].addr)
        return &res_cache[j];
    if (!insert)
        return NULL;
    res_cache[j].addr = a;
    res_used++;
    return &res_cache[j];
}

/* Collapse "." and ".." lexically: "/b/build/../src/x.c" -> "/b/src/x.c". */
static char *normalize_path(const char *p)
{
    size_t n = strlen(p);
    char *out = _rc_xmalloc(n + 1);
    size_t o = 0;
    bool abs = p[0] == '/';
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - s);
        if (len == 0)
            break;
        if (len == 1 && s[0] == '.') {
            /* skip */
        } else if (len == 2 && s[0] == '.' && s[1] == '.' && o > 0 &&
                   !(o >= 2 && out[o - 1] == '.' && out[o - 2] == '.' &&
                     (o == 2 || out[o - 3] == '/'))) {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the slash */
        } else {
            if (o > 0 || abs)
                out[o++] = '/';
            memcpy(out + o, s, len);
            o += len;
        }
        s = e;
    }
    if (o == 0 && abs)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/* Debug info names files as the compiler saw them ("/b/build/../samples/
 * leak.c"); show the name frame 0 uses when a site has the same file. */
static char *display_path(const char *raw)
{
    char *norm = normalize_path(raw);
    size_t n = strlen(norm);
    for (uint32_t i = 1; i < REG.nsites; i++) {
        const char *f = strip_path(REG.sites[i].file);
        size_t fl = strlen(f);
        if (fl && fl <= n && strcmp(norm + n - fl, f) == 0 &&
            (fl == n || norm[n - fl - 1] == '/')) {
            char *r = _rc_xstrdup(f);
            free(norm);
            return r;
        }
    }
    return norm;
}

/* Run addr2line on one module's addresses (file offsets), filling res. */
static void run_addr2line(const module *m, resolved **res, size_t n)
{
    FILE *in = tmpfile();
    if (!in)
        return;
    for (size_t i = 0; i < n; i++)
        fprintf(in, "%" PRIxPTR "\n", res[i]->addr - 1 - m->bias);
    fflush(in);
    rewind(in);
    int pfd[2];
    if (pipe(pfd) < 0) {
        fclose(in);
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fileno(in), 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    char *argv[] = {"addr2line", "-e", m->path, "-f", "-C", NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    fclose(in);
    if (rc != 0) {
        close(pfd[0]);
        return;
    }
    FILE *out = fdopen(pfd[0], "r");
    if (!out) {
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        /* two lines per address: function, then file:line */
        if (getline(&line, &cap, out) < 0 || getline(&line, &cap, out) < 0)
            break;
        line[strcspn(line, "\n")] = '\0';
        char *disc = strstr(line, " (discriminator");
        if (disc)
            *disc = '\0';
        char *colon = strrchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        if (strcmp(line, "??") == 0 || !line[0])
            continue;
        res[i]->filename = display_path(line);
        res[i]->lineno = (uint32_t)strtoul(colon + 1, NULL, 10); /* "?" -> 0 */
    }
    free(line);
    fclose(out);
    waitpid(pid, NULL, 0);
}

/* Make sure every address of addrs[] has a res_cache entry. */
static void resolve_addresses(const uintptr_t *addrs, size_t n)
{
    size_t npending = 0;
    res_reserve(n); /* `pending` keeps pointers to slots */
    resolved **pending = _rc_xmalloc((n ? n : 1) * sizeof *pending);
    ptrdiff_t *mods = _rc_xmalloc((n ? n : 1) * sizeof *mods);
    for (size_t i = 0; i < n; i++) {
        if (!addrs[i] || res_slot(addrs[i], false))
            continue;
        ptrdiff_t mi;
        const sym *s = symbol_of(addrs[i] - 1, &mi);
        resolved *r = res_slot(addrs[i], true);
        if (s) {
            r->function = _rc_xstrdup(s->name);
            r->offset = (uint32_t)(addrs[i] - s->start);
        } else if (mi >= 0) {
            r->function = _rc_xstrdup(modules[mi].name);
            r->offset = (uint32_t)(addrs[i] - modules[mi].bias);
        }
        if (mi >= 0) {
            pending[npending] = r;
            mods[npending++] = mi;
        }
    }
    /* One addr2line per module, over all its new addresses. The resolved
     * pointers stay valid: res_slot is not called again until the end. */
    resolved **batch = _rc_xmalloc((npending ? npending : 1) * sizeof *batch);
    for (size_t i = 0; i < npending; i++) {
        ptrdiff_t mi = mods[i];
        if (mi < 0)
            continue;
        size_t nb = 0;
        for (size_t j = i; j < npending; j++) {
            if (mods[j] == mi) {
                batch[nb++] = pending[j];
                mods[j] = -1;
            }
        }
        if (modules[mi].loaded == 1)
            run_addr2line(&modules[mi], batch, nb);
    }
    free(batch);
    free(pending);
    free(mods);
    update_tracer_memory();
}

/* The resolver's caches belong to the tracer; used while not tracing
 * (formatting a snapshot after rc_trace_stop), they go right after. */
static void resolver_done(void)
{
    if (!REG.trace.tracing) {
        release_symbols();
        release_resolved();
        update_tracer_memory();
    }
}

/* ========================================================================
 * String pools (snapshots own their strings)
 * ===================================================================== */

typedef struct strpool {
    char **strs;           /* id -> string */
    uint32_t n, cap;
    uint32_t *index;       /* open addressing: id + 1 */
    uint32_t icap;
} strpool;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

static void pool_index_put(strpool *p, uint32_t id)
{
    uint32_t mask = p->icap - 1, j = (uint32_t)str_hash(p->strs[id]) & mask;
    while (p->index[j])
        j = (j + 1) & mask;
    p->index[j] = id + 1;
}

/* The pool's copy of s (NULL stays NULL); *id gets its id. */
static const char *pool_intern_id(strpool *p, const char *s, uint32_t *id)
{
    if (!s) {
        if (id)
            *id = UINT32_MAX;
        return NULL;
    }
    if (p->icap) {
        uint32_t mask = p->icap - 1;
        for (uint32_t j = (uint32_t)str_hash(s) & mask; p->index[j]; j = (j + 1) & mask) {
            if (strcmp(p->strs[p->index[j] - 1], s) == 0) {
                if (id)
                    *id = p->index[j] - 1;
                return p->strs[p->index[j] - 1];
            }
        }
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->strs = _rc_xrealloc(p->strs, p->cap * sizeof *p->strs);
    }
    uint32_t nid = p->n++;
    p->strs[nid] = _rc_xstrdup(s);
    if (p->n * 2 > p->icap) {
        free(p->index);
        p->icap = p->icap ? p->icap * 2 : 128;
        p->index = _rc_xcalloc(p->icap, sizeof *p->index);
        for (uint32_t k = 0; k < p->n; k++)
            pool_index_put(p, k);
    } else {
        pool_index_put(p, nid);
    }
    if (id)
        *id = nid;
    return p->strs[nid];
}

static const char *pool_intern(strpool *p, const char *s) { return pool_intern_id(p, s, NULL); }

static void pool_free(strpool *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        free(p->strs[i]);
    free(p->strs);
    free(p->index);
    memset(p, 0, sizeof *p);
}

/* ========================================================================
 * Snapshots
 * ===================================================================== */

struct rc_snapshot {
    int traceback_limit;
    rc_trace *traces;
    size_t ntraces;
    rc_traceback *tbs;     /* traces[i].traceback points in here */
    size_t ntbs;
    rc_frame *frames;      /* tbs[i].frames points in here */
    size_t nframes;
    strpool pool;
    bool resolved;         /* deeper frames have names */
};

static rc_snapshot *snapshot_alloc(int limit, size_t ntraces, size_t ntbs, size_t nframes)
{
    rc_snapshot *s = _rc_xcalloc(1, sizeof *s);
    s->traceback_limit = limit;
    s->traces = _rc_xcalloc(ntraces ? ntraces : 1, sizeof *s->traces);
    s->tbs = _rc_xcalloc(ntbs ? ntbs : 1, sizeof *s->tbs);
    s->frames = _rc_xcalloc(nframes ? nframes : 1, sizeof *s->frames);
    s->ntraces = ntraces;
    s->ntbs = ntbs;
    s->nframes = nframes;
    return s;
}

void rc_snapshot_free(rc_snapshot *s)
{
    if (!s)
        return;
    free(s->traces);
    free(s->tbs);
    free(s->frames);
    pool_free(&s->pool);
    free(s);
}

/* What the heap walk collects: (size, key), key = traceback id + 1, or
 * site | 1 << 32 for a frame-0-only traceback. */
typedef struct raw_trace {
    uint64_t size;
    uint64_t key;
} raw_trace;

typedef struct walk_state {
    raw_trace *v;
    size_t n, cap;
} walk_state;

static void collect_trace(rc_object *o, void *arg)
{
    if (!(o->ob_info & RC_OBF_TRACED))
        return;
    walk_state *w = arg;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->v = _rc_xrealloc(w->v, w->cap * sizeof *w->v);
    }
    int64_t tb = objtab_lookup(o);
    w->v[w->n].size = _rc_traced_size(o);
    w->v[w->n].key = tb >= 0 ? (uint64_t)tb + 1 : ((uint64_t)1 << 32) | _rc_site_id(o);
    w->n++;
}

static void site_frame(strpool *p, uint32_t site, rc_frame *f)
{
    memset(f, 0, sizeof *f);
    if (site && site < REG.nsites) {
        f->filename = pool_intern(p, strip_path(REG.sites[site].file));
        f->function = pool_intern(p, REG.sites[site].func);
        f->lineno = REG.sites[site].line;
    } else {
        f->filename = pool_intern(p, "<unknown>");
    }
}

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t key_find(const uint64_t *keys, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

rc_snapshot *rc_trace_snapshot(void)
{
    const rc_trace_state *t = &REG.trace;
    if (!t->tracing) {
        _rc_error("rc_trace_snapshot: not tracing: call rc_trace_start() before taking a "
                  "snapshot");
        return NULL;
    }
    walk_state w = {0};
    _rc_mem_walk(collect_trace, &w);

    /* The distinct keys, sorted: snapshot traceback i is keys[i]. */
    uint64_t *keys = _rc_xmalloc((w.n ? w.n : 1) * sizeof *keys);
    for (size_t i = 0; i < w.n; i++)
        keys[i] = w.v[i].key;
    qsort(keys, w.n, sizeof *keys, key_cmp);
    size_t nkeys = 0;
    for (size_t i = 0; i < w.n; i++)
        if (nkeys == 0 || keys[nkeys - 1] != keys[i])
            keys[nkeys++] = keys[i];
    size_t nframes = 0;
    for (size_t i = 0; i < nkeys; i++)
        nframes += 1 + (keys[i] >> 32 ? 0 : t->tracebacks[keys[i] - 1].nframes);

    rc_snapshot *s = snapshot_alloc((int)t->nframes, w.n, nkeys, nframes);
    size_t f = 0;
    for (size_t i = 0; i < nkeys; i++) {
        rc_traceback *tb = &s->tbs[i];
        tb->frames = &s->frames[f];
        if (keys[i] >> 32) {
            site_frame(&s->pool, (uint32_t)keys[i], &s->frames[f++]);
            tb->nframes = 1;
            continue;
        }
        const rc_trace_traceback *e = &t->tracebacks[keys[i] - 1];
        site_frame(&s->pool, e->site, &s->frames[f++]);
        for (uint32_t k = 0; k < e->nframes; k++)
            s->frames[f++].address = (uintptr_t)t->frames[e->first + k];
        tb->nframes = 1 + e->nframes;
    }
    for (size_t i = 0; i < w.n; i++) {
        s->traces[i].size = (size_t)w.v[i].size;
        s->traces[i].traceback = &s->tbs[key_find(keys, nkeys, w.v[i].key)];
    }
    s->resolved = nframes == nkeys; /* no deeper frames */
    free(keys);
    free(w.v);
    return s;
}

/* Give the deeper frames their names (once). */
static void snapshot_resolve(const rc_snapshot *cs)
{
    rc_snapshot *s = (rc_snapshot *)cs; /* names are a cache */
    if (s->resolved)
        return;
    size_t n = 0;
    uintptr_t *addrs = _rc_xmalloc((s->nframes ? s->nframes : 1) * sizeof *addrs);
    for (size_t i = 0; i < s->nframes; i++)
        if (s->frames[i].address && !s->frames[i].filename && !s->frames[i].function)
            addrs[n++] = s->frames[i].address;
    resolve_addresses(addrs, n);
    for (size_t i = 0; i < s->nframes; i++) {
        rc_frame *fr = &s->frames[i];
        if (!fr->address || fr->filename || fr->function)
            continue;
        const resolved *r = res_slot(fr->address, false);
        if (!r)
            continue;
        fr->filename = pool_intern(&s->pool, r->filename);
        fr->function = pool_intern(&s->pool, r->function);
        fr->lineno = r->lineno;
        fr->offset = r->offset;
    }
    free(addrs);
    s->resolved = true;
    resolver_done();
}

int rc_snapshot_traceback_limit(const rc_snapshot *s) { return s ? s->traceback_limit : 0; }

const rc_trace *rc_snapshot_traces(const rc_snapshot *s, size_t *n)
{
    if (!s) {
        if (n)
            *n = 0;
        _rc_error("rc_snapshot_traces: NULL snapshot");
        return NULL;
    }
    snapshot_resolve(s);
    if (n)
        *n = s->ntraces;
    return s->traces;
}

/* A new snapshot with the traces of s for which keep[i] (all if NULL). */
static rc_snapshot *snapshot_copy(const rc_snapshot *s, const bool *keep)
{
    size_t nt = 0;
    for (size_t i = 0; i < s->ntraces; i++)
        nt += !keep || keep[i];
    rc_snapshot *c = snapshot_alloc(s->traceback_limit, nt, s->ntbs, s->nframes);
    for (size_t i = 0; i < s->nframes; i++) {
        c->frames[i] = s->frames[i];
        c->frames[i].filename = pool_intern(&c->pool, s->frames[i].filename);
        c->frames[i].function = pool_intern(&c->pool, s->frames[i].function);
    }
    for (size_t i = 0; i < s->ntbs; i++) {
        c->tbs[i].nframes = s->tbs[i].nframes;
        c->tbs[i].frames = c->frames + (s->tbs[i].frames - s->frames);
    }
    size_t k = 0;
    for (size_t i = 0; i < s->ntraces; i++) {
        if (keep && !keep[i])
            continue;
        c->traces[k].size = s->traces[i].size;
        c->traces[k].traceback = c->tbs + (s->traces[i].traceback - s->tbs);
        k++;
    }
    c->resolved = s->resolved;
    return c;
}

/* ========================================================================
 * Statistics
 * ===================================================================== */

/* The name a frame is grouped and sorted by. */
static const char *frame_file(const rc_frame *f)
{
    if (f->filename)
        return f->filename;
    return f->function ? f->function : "";
}

/* Frame identity: (file, line) with debug info, else (function, offset),
 * else the address. fileonly: the file (or function) name alone. */
static bool frame_eq(const rc_frame *a, const rc_frame *b, bool fileonly)
{
    if (fileonly)
        return strcmp(frame_file(a), frame_file(b)) == 0;
    if ((a->filename != NULL) != (b->filename != NULL))
        return false;
    if (a->filename)
        return a->lineno == b->lineno && strcmp(a->filename, b->filename) == 0;
    if ((a->function != NULL) != (b->function != NULL))
        return false;
    if (a->function)
        return a->offset == b->offset && strcmp(a->function, b->function) == 0;
    return a->address == b->address;
}

static uint64_t frame_hash(const rc_frame *f, bool fileonly)
{
    uint64_t h = str_hash(frame_file(f));
    if (fileonly)
        return h;
    if (f->filename)
        return (h ^ f->lineno) * GOLDEN;
    if (f->function)
        return (h ^ f->offset) * GOLDEN;
    return (h ^ f->address) * GOLDEN;
}

/* Python compares Frame tuples (filename, lineno). */
static int frame_cmp(const rc_frame *a, const rc_frame *b, bool fileonly)
{
    int c = strcmp(frame_file(a), frame_file(b));
    if (c || fileonly)
        return c;
    uint64_t la = a->filename ? a->lineno : a->function ? a->offset : a->address;
    uint64_t lb = b->filename ? b->lineno : b->function ? b->offset : b->address;
    return la < lb ? -1 : la > lb;
}

/* A group: the traces sharing one key (a run of frames of a snapshot). */
typedef struct group {
    const rc_frame *frames;
    uint32_t nframes;
    bool fileonly;
    uint64_t hash;
    size_t size, count;
    int64_t size_diff, count_diff;
    bool matched;          /* compare_to: found in the other snapshot */
} group;

typedef struct group_table {
    group *g;
    size_t n, cap;
    uint32_t *index;       /* group index + 1 */
    size_t icap;
} group_table;

static bool group_eq(const group *g, const rc_frame *frames, uint32_t n, bool fileonly, uint64_t h)
{
    if (g->hash != h || g->nframes != n)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (!frame_eq(&g->frames[i], &frames[i], fileonly))
            return false;
    return true;
}

static uint64_t key_hash(const rc_frame *frames, uint32_t n, bool fileonly)
{
    uint64_t h = n;
    for (uint32_t i = 0; i < n; i++)
        h = (h * 31 + frame_hash(&frames[i], fileonly)) * GOLDEN;
    return h ^ (h >> 31);
}

static void gt_index_put(group_table *t, size_t gi)
{
    size_t mask = t->icap - 1, j = (size_t)t->g[gi].hash & mask;
    while (t->index[j])
        j = (j + 1) & mask;
    t->index[j] = (uint32_t)gi + 1;
}

/* Find a group; with `create`, add it if missing. Returns its index or -1. */
static ptrdiff_t gt_find(group_table *t, const rc_frame *frames, uint32_t n, bool fileonly,
                         bool create)
{
    uint64_t h = key_hash(frames, n, fileonly);
    if (t->icap) {
        size_t mask = t->icap - 1;
        for (size_t j = (size_t)h & mask; t->index[j]; j = (j + 1) & mask)
            if (group_eq(&t->g[t->index[j] - 1], frames, n, fileonly, h))
                return (ptrdiff_t)t->index[j] - 1;
    }
    if (!create)
        return -1;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->g = _rc_xrealloc(t->g, t->cap * sizeof *t->g);
    }
    size_t gi = t->n++;
    t->g[gi] = (group){.frames = frames, .nframes = n, .fileonly = fileonly, .hash = h};
    if (t->n * 2 > t->icap) {
        free(t->index);
        t->icap = t->icap ? t->icap * 2 : 128;
        t->index = _rc_xcalloc(t->icap, sizeof *t->index);
        for (size_t k = 0; k < t->n; k++)
            gt_index_put(t, k);
    } else {
        gt_index_put(t, gi);
    }
    return (ptrdiff_t)gi;
}

static void gt_free(group_table *t)
{
    free(t->g);
    free(t->index);
}

/* Snapshot._group_by: fills t with one group per key. */
static int group_by(const rc_snapshot *s, rc_key_type key, bool cumulative, group_table *t)
{
    if (key != RC_BY_LINENO && key != RC_BY_FILENAME && key != RC_BY_TRACEBACK)
        return _rc_error("unknown key_type: %d", (int)key);
    if (cumulative && key == RC_BY_TRACEBACK)
        return _rc_error("cumulative mode cannot be used with key type RC_BY_TRACEBACK");
    if (key == RC_BY_TRACEBACK || cumulative)
        snapshot_resolve(s);
    bool fileonly = key == RC_BY_FILENAME;
    memset(t, 0, sizeof *t);
    /* The group(s) of each snapshot traceback, computed once, when a
     * trace first uses it (a filtered snapshot has unused tracebacks). */
    if (!cumulative) {
        ptrdiff_t *gid = _rc_xmalloc((s->ntbs ? s->ntbs : 1) * sizeof *gid);
        for (size_t i = 0; i < s->ntbs; i++)
            gid[i] = -1;
        for (size_t i = 0; i < s->ntraces; i++) {
            size_t ti = (size_t)(s->traces[i].traceback - s->tbs);
            if (gid[ti] < 0) {
                const rc_traceback *tb = &s->tbs[ti];
                uint32_t n = key == RC_BY_TRACEBACK ? (uint32_t)tb->nframes : 1;
                gid[ti] = gt_find(t, tb->frames, n, fileonly, true);
            }
            group *g = &t->g[gid[ti]];
            g->size += s->traces[i].size;
            g->count++;
        }
        free(gid);
    } else {
        ptrdiff_t *gid = _rc_xmalloc((s->nframes ? s->nframes : 1) * sizeof *gid);
        for (size_t i = 0; i < s->nframes; i++)
            gid[i] = -1;
        for (size_t i = 0; i < s->ntraces; i++) {
            const rc_traceback *tb = s->traces[i].traceback;
            size_t base = (size_t)(tb->frames - s->frames);
            for (size_t k = 0; k < tb->nframes; k++) {
                if (gid[base + k] < 0)
                    gid[base + k] = gt_find(t, &s->frames[base + k], 1, fileonly, true);
                group *g = &t->g[gid[base + k]];
                g->size += s->traces[i].size;
                g->count++;
            }
        }
        free(gid);
    }
    return 0;
}

/* Tracebacks compare from the oldest frame (Python's reversed tuple). */
static int group_tb_cmp(const group *a, const group *b)
{
    uint32_t n = a->nframes < b->nframes ? a->nframes : b->nframes;
    for (uint32_t i = 0; i < n; i++) {
        int c = frame_cmp(&a->frames[a->nframes - 1 - i], &b->frames[b->nframes - 1 - i],
                          a->fileonly);
        if (c)
            return c;
    }
    return a->nframes < b->nframes ? -1 : a->nframes > b->nframes;
}

#define CMP_DESC(x, y) \
    do {               \
        if ((x) != (y)) \
            return (x) > (y) ? -1 : 1; \
    } while (0)

/* Statistic._sort_key (size, count, traceback), descending. */
static int stat_cmp(const void *pa, const void *pb)
{
    const group *a = *(const group *const *)pa, *b = *(const group *const *)pb;
    CMP_DESC(a->size, b->size);
    CMP_DESC(a->count, b->count);
    return -group_tb_cmp(a, b);
}

static uint64_t abs64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

/* StatisticDiff._sort_key (|size_diff|, size, |count_diff|, count,
 * traceback), descending. */
static int diff_cmp(const void *pa, const void *pb)
{
    const group *a = *(const group *const *)pa, *b = *(const group *const *)pb;
    CMP_DESC(abs64(a->size_diff), abs64(b->size_diff));
    CMP_DESC(a->size, b->size);
    CMP_DESC(abs64(a->count_diff), abs64(b->count_diff));
    CMP_DESC(a->count, b->count);
    return -group_tb_cmp(a, b);
}

/* Copy the groups into one self-contained block: [items][frames][chars].
 * `itemsize` is sizeof(rc_statistic) or sizeof(rc_statistic_diff); both
 * start with the traceback. */
static void *materialize(group *const *gs, size_t n, size_t itemsize, bool diff)
{
    size_t nframes = 0, nchars = 0;
    for (size_t i = 0; i < n; i++) {
        nframes += gs[i]->nframes;
        for (uint32_t k = 0; k < gs[i]->nframes; k++) {
            const rc_frame *f = &gs[i]->frames[k];
            if (gs[i]->fileonly) {
                nchars += strlen(frame_file(f)) + 1;
            } else {
                nchars += f->filename ? strlen(f->filename) + 1 : 0;
                nchars += f->function ? strlen(f->function) + 1 : 0;
            }
        }
    }
    size_t items = n * itemsize;
    items = (items + 15) & ~(size_t)15;
    char *block = _rc_xcalloc(1, items + nframes * sizeof(rc_frame) + nchars + 1);
    rc_frame *frames = (rc_frame *)(block + items);
    char *chars = (char *)(frames + nframes);
    for (size_t i = 0; i < n; i++) {
        const group *g = gs[i];
        rc_frame *fr = frames;
        for (uint32_t k = 0; k < g->nframes; k++) {
            const rc_frame *f = &g->frames[k];
            rc_frame *o = frames++;
            if (g->fileonly) {
                o->filename = strcpy(chars, frame_file(f));
                chars += strlen(chars) + 1;
                continue;
            }
            *o = *f;
            if (f->filename) {
                o->filename = strcpy(chars, f->filename);
                chars += strlen(chars) + 1;
            }
            if (f->function) {
                o->function = strcpy(chars, f->function);
                chars += strlen(chars) + 1;
            }
        }
        rc_traceback tb = {g->nframes, fr};
        if (diff) {
            rc_statistic_diff *d = (rc_statistic_diff *)(block + i * itemsize);
            *d = (rc_statistic_diff){tb, g->size, g->size_diff, g->count, g->count_diff};
        } else {
            rc_statistic *st = (rc_statistic *)(block + i * itemsize);
            *st = (rc_statistic){tb, g->size, g->count};
        }
    }
    return block;
}

rc_statistic *rc_snapshot_statistics(const rc_snapshot *s, rc_key_type key, bool cumulative,
                                     size_t *n)
{
    if (n)
        *n = 0;
    if (!s) {
        _rc_error("rc_snapshot_statistics: NULL snapshot");
        return NULL;
    }
    group_table t;
    if (group_by(s, key, cumulative, &t) < 0)
        return NULL;
    group **order = _rc_xmalloc((t.n ? t.n : 1) * sizeof *order);
    for (size_t i = 0; i < t.n; i++)
        order[i] = &t.g[i];
    qsort(order, t.n, sizeof *order, stat_cmp);
    rc_statistic *out = materialize(order, t.n, sizeof(rc_statistic), false);
    if (n)
        *n = t.n;
    free(order);
    gt_free(&t);
    return out;
}

rc_statistic_diff *rc_snapshot_compare_to(const rc_snapshot *s, const rc_snapshot *old,
                                          rc_key_type key, bool cumulative, size_t *n)
{
    if (n)
        *n = 0;
    if (!s || !old) {
        _rc_error("rc_snapshot_compare_to: NULL snapshot");
        return NULL;
    }
    group_table nt, ot;
    if (group_by(s, key, cumulative, &nt) < 0)
        return NULL;
    if (group_by(old, key, cumulative, &ot) < 0) {
        gt_free(&nt);
        return NULL;
    }
    /* _compare_grouped_stats: the new groups, then those only old has. */
    size_t total = nt.n + ot.n;
    group **order = _rc_xmalloc((total ? total : 1) * sizeof *order);
    size_t k = 0;
    for (size_t i = 0; i < nt.n; i++) {
        group *g = &nt.g[i];
        ptrdiff_t j = gt_find(&ot, g->frames, g->nframes, g->fileonly, false);
        if (j >= 0) {
            ot.g[j].matched = true;
            g->size_diff = (int64_t)g->size - (int64_t)ot.g[j].size;
            g->count_diff = (int64_t)g->count - (int64_t)ot.g[j].count;
        } else {
            g->size_diff = (int64_t)g->size;
            g->count_diff = (int64_t)g->count;
        }
        order[k++] = g;
    }
    for (size_t i = 0; i < ot.n; i++) {
        group *g = &ot.g[i];
        if (g->matched)
            continue;
        g->size_diff = -(int64_t)g->size;
        g->count_diff = -(int64_t)g->count;
        g->size = 0;
        g->count = 0;
        order[k++] = g;
    }
    qsort(order, k, sizeof *order, diff_cmp);
    rc_statistic_diff *out = materialize(order, k, sizeof(rc_statistic_diff), true);
    if (n)
        *n = k;
    free(order);
    gt_free(&nt);
    gt_free(&ot);
    return out;
}

void rc_statistics_free(void *stats) { free(stats); }

/* ========================================================================
 * Filters
 * ===================================================================== */

static bool match_frame_impl(const rc_filter *flt, const rc_frame *f)
{
    if (fnmatch(flt->filename_pattern, frame_file(f), 0) != 0)
        return false;
    return flt->lineno == 0 || f->lineno == flt->lineno;
}

/* Filter._match_traceback */
static bool filter_match(const rc_filter *flt, const rc_traceback *tb)
{
    if (flt->all_frames) {
        for (size_t i = 0; i < tb->nframes; i++)
            if (match_frame_impl(flt, &tb->frames[i]))
                return flt->inclusive;
        return !flt->inclusive;
    }
    if (tb->nframes == 0)
        return !flt->inclusive;
    return match_frame_impl(flt, &tb->frames[0]) ^ !flt->inclusive;
}

rc_snapshot *rc_snapshot_filter_traces(const rc_snapshot *s, const rc_filter *filters,
                                       size_t nfilters)
{
    if (!s) {
        _rc_error("rc_snapshot_filter_traces: NULL snapshot");
        return NULL;
    }
    if (nfilters && !filters) {
        _rc_error("rc_snapshot_filter_traces: NULL filters");
        return NULL;
    }
    for (size_t i = 0; i < nfilters; i++) {
        if (!filters[i].filename_pattern) {
            _rc_error("rc_snapshot_filter_traces: filter %zu has no filename_pattern", i);
            return NULL;
        }
        if (filters[i].all_frames)
            snapshot_resolve(s);
    }
    if (!nfilters)
        return snapshot_copy(s, NULL);
    bool *keep = _rc_xmalloc((s->ntraces ? s->ntraces : 1) * sizeof *keep);
    for (size_t i = 0; i < s->ntraces; i++) {
        const rc_traceback *tb = s->traces[i].traceback;
        bool any_incl = false, incl_ok = false, excl_ok = true;
        for (size_t k = 0; k < nfilters; k++) {
            const rc_filter *f = &filters[k];
            if (f->inclusive) {
                any_incl = true;
                if (!incl_ok && filter_match(f, tb))
                    incl_ok = true;
            } else if (excl_ok && !filter_match(f, tb)) {
                excl_ok = false;
            }
        }
        keep[i] = (!any_incl || incl_ok) && excl_ok;
    }
    rc_snapshot *c = snapshot_copy(s, keep);
    free(keep);
    return c;
}

/* ========================================================================
 * Object tracebacks
 * ===================================================================== */

/* One block: the rc_traceback, its frames, their strings. */
static rc_traceback *traceback_block(const rc_frame *frames, size_t n)
{
    size_t nchars = 0;
    for (size_t i = 0; i < n; i++) {
        nchars += frames[i].filename ? strlen(frames[i].filename) + 1 : 0;
        nchars += frames[i].function ? strlen(frames[i].function) + 1 : 0;
    }
    size_t head = (sizeof(rc_traceback) + 15) & ~(size_t)15;
    char *block = _rc_xcalloc(1, head + n * sizeof(rc_frame) + nchars + 1);
    rc_traceback *tb = (rc_traceback *)block;
    rc_frame *out = (rc_frame *)(block + head);
    char *chars = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        out[i] = frames[i];
        if (frames[i].filename) {
            out[i].filename = strcpy(chars, frames[i].filename);
            chars += strlen(chars) + 1;
        }
        if (frames[i].function) {
            out[i].function = strcpy(chars, frames[i].function);
            chars += strlen(chars) + 1;
        }
    }
    tb->nframes = n;
    tb->frames = out;
    return tb;
}

rc_traceback *rc_trace_get_object_traceback(rc_object *o)
{
    const rc_trace_state *t = &REG.trace;
    if (!o) {
        _rc_error("rc_trace_get_object_traceback: NULL object");
        return NULL;
    }
    if (!t->tracing || o->ob_refcnt == RC_REFCNT_FREED || !(o->ob_info & RC_OBF_TRACED)) {
        char buf[256];
        _rc_error("rc_trace_get_object_traceback: %s was not allocated while tracing",
                  o->ob_refcnt == RC_REFCNT_FREED ? "a freed object"
                                                  : rc_describe(o, buf, sizeof buf));
        return NULL;
    }
    uint32_t site = _rc_site_id(o);
    int64_t id = objtab_lookup(o);
    size_t n = 1 + (id >= 0 ? t->tracebacks[id].nframes : 0);
    rc_frame *frames = _rc_xcalloc(n, sizeof *frames);
    uintptr_t *addrs = _rc_xcalloc(n, sizeof *addrs);
    if (site && site < REG.nsites) {
        frames[0].filename = strip_path(REG.sites[site].file);
        frames[0].function = REG.sites[site].func;
        frames[0].lineno = REG.sites[site].line;
    } else {
        frames[0].filename = "<unknown>";
    }
    for (size_t k = 1; k < n; k++)
        addrs[k - 1] = frames[k].address = (uintptr_t)t->frames[t->tracebacks[id].first + k - 1];
    resolve_addresses(addrs, n - 1);
    for (size_t k = 1; k < n; k++) {
        const resolved *r = res_slot(frames[k].address, false);
        if (!r)
            continue;
        frames[k].filename = r->filename;
        frames[k].function = r->function;
        frames[k].lineno = r->lineno;
        frames[k].offset = r->offset;
    }
    rc_traceback *tb = traceback_block(frames, n);
    free(frames);
    free(addrs);
    return tb;
}

void rc_traceback_free(rc_traceback *tb) { free(tb); }

/* ========================================================================
 * Dump and load
 * ===================================================================== */

#define SNAP_MAGIC "RCSNAP1"
#define SNAP_VERSION 1u
#define NO_STRING 0xFFFFFFFFu

static void put_u32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, f);
}

static void put_u64(FILE *f, uint64_t v)
{
    put_u32(f, (uint32_t)v);
    put_u32(f, (uint32_t)(v >> 32));
}

int rc_snapshot_dump(const rc_snapshot *s, const char *path)
{
    if (!s || !path)
        return _rc_error("rc_snapshot_dump: NULL %s", s ? "path" : "snapshot");
    snapshot_resolve(s);
    /* Frame strings are pool strings, so pool ids are the file's string
     * ids; intern them all anyway before the string table is written. */
    strpool *pool = &((rc_snapshot *)s)->pool;
    for (size_t i = 0; i < s->nframes; i++) {
        pool_intern(pool, s->frames[i].filename);
        pool_intern(pool, s->frames[i].function);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return _rc_error("rc_snapshot_dump: cannot open %s: %s", path, strerror(errno));
    fwrite(SNAP_MAGIC, 1, 8, f);
    put_u32(f, SNAP_VERSION);
    put_u32(f, (uint32_t)s->traceback_limit);
    put_u32(f, pool->n);
    put_u32(f, (uint32_t)s->ntbs);
    put_u64(f, s->ntraces);
    for (uint32_t i = 0; i < pool->n; i++) {
        uint32_t len = (uint32_t)strlen(pool->strs[i]);
        put_u32(f, len);
        fwrite(pool->strs[i], 1, len, f);
    }
    for (size_t i = 0; i < s->ntbs; i++) {
        put_u32(f, (uint32_t)s->tbs[i].nframes);
        for (size_t k = 0; k < s->tbs[i].nframes; k++) {
            const rc_frame *fr = &s->tbs[i].frames[k];
            uint32_t fid, nid;
            pool_intern_id(pool, fr->filename, &fid);
            pool_intern_id(pool, fr->function, &nid);
            put_u32(f, fid);
            put_u32(f, nid);
            put_u32(f, fr->lineno);
            put_u32(f, fr->offset);
            put_u64(f, fr->address);
        }
    }
    for (size_t i = 0; i < s->ntraces; i++) {
        put_u64(f, s->traces[i].size);
        put_u32(f, (uint32_t)(s->traces[i].traceback - s->tbs));
    }
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad)
        return _rc_error("rc_snapshot_dump: write error on %s", path);
    return 0;
}

typedef struct reader {
    const unsigned char *p, *end;
    bool bad;
} reader;

static uint32_t get_u32(reader *r)
{
    if (r->end - r->p < 4) {
        r->bad = true;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    return v;
}

static uint64_t get_u64(reader *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

rc_snapshot *rc_snapshot_load(const char *path)
{
    if (!path) {
        _rc_error("rc_snapshot_load: NULL path");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        _rc_error("rc_snapshot_load: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *data = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            data = _rc_xrealloc(data, cap);
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    bool ioerr = ferror(f) != 0;
    fclose(f);
    if (ioerr) {
        free(data);
        _rc_error("rc_snapshot_load: read error on %s", path);
        return NULL;
    }
    reader r = {data, data + len, false};
    const char *why = NULL;
    rc_snapshot *s = NULL;
    if (len < 32 || memcmp(data, SNAP_MAGIC, 8) != 0) {
        why = "not a refscope snapshot (bad magic)";
        goto fail;
    }
    r.p += 8;
    uint32_t version = get_u32(&r);
    if (version != SNAP_VERSION) {
        why = "unsupported version";
        goto fail;
    }
    uint32_t limit = get_u32(&r), nstrings = get_u32(&r), ntbs = get_u32(&r);
    uint64_t ntraces = get_u64(&r);
    /* Each record takes at least 4 bytes: counts beyond the file are lies. */
    if ((uint64_t)nstrings + ntbs > len || ntraces > len / 12) {
        why = "counts larger than the file";
        goto fail;
    }
    strpool pool = {0};
    const char **strs = _rc_xcalloc(nstrings ? nstrings : 1, sizeof *strs);
    for (uint32_t i = 0; i < nstrings && !r.bad; i++) {
        uint32_t sl = get_u32(&r);
        if ((size_t)(r.end - r.p) < sl) {
            r.bad = true;
            break;
        }
        char *tmp = _rc_xmalloc((size_t)sl + 1);
        memcpy(tmp, r.p, sl);
        tmp[sl] = '\0';
        r.p += sl;
        strs[i] = pool_intern(&pool, tmp);
        free(tmp);
    }
    /* Frames: count them first (bounds-checked), then fill. */
    const unsigned char *tbstart = r.p;
    uint64_t nframes = 0;
    for (uint32_t i = 0; i < ntbs && !r.bad; i++) {
        uint32_t nf = get_u32(&r);
        if ((uint64_t)(r.end - r.p) / 24 < nf) {
            r.bad = true;
            break;
        }
        r.p += (size_t)nf * 24;
        nframes += nf;
    }
    if (r.bad) {
        pool_free(&pool);
        free(strs);
        why = "truncated";
        goto fail;
    }
    s = snapshot_alloc((int)limit, (size_t)ntraces, ntbs, (size_t)nframes);
    s->pool = pool;
    s->resolved = true;
    r.p = tbstart;
    size_t fi = 0;
    for (uint32_t i = 0; i < ntbs && !r.bad; i++) {
        uint32_t nf = get_u32(&r);
        s->tbs[i].nframes = nf;
        s->tbs[i].frames = &s->frames[fi];
        for (uint32_t k = 0; k < nf; k++) {
            rc_frame *fr = &s->frames[fi++];
            uint32_t fid = get_u32(&r), nid = get_u32(&r);
            fr->lineno = get_u32(&r);
            fr->offset = get_u32(&r);
            fr->address = (uintptr_t)get_u64(&r);
            if ((fid != NO_STRING && fid >= nstrings) || (nid != NO_STRING && nid >= nstrings)) {
                r.bad = true;
                why = "string id out of range";
                break;
            }
            fr->filename = fid == NO_STRING ? NULL : strs[fid];
            fr->function = nid == NO_STRING ? NULL : strs[nid];
        }
    }
    for (uint64_t i = 0; i < ntraces && !r.bad; i++) {
        s->traces[i].size = (size_t)get_u64(&r);
        uint32_t tb = get_u32(&r);
        if (tb >= ntbs) {
            r.bad = true;
            why = "traceback id out of range";
            break;
        }
        s->traces[i].traceback = &s->tbs[tb];
    }
    free(strs);
    if (r.bad) {
        if (!why)
            why = "truncated";
        goto fail;
    }
    free(data);
    return s;
fail:
    rc_snapshot_free(s);
    free(data);
    _rc_error("rc_snapshot_load: %s: %s", path, why);
    return NULL;
}

/* ========================================================================
 * Formatting
 * ===================================================================== */

char *rc_format_size(double size, bool sign, char *buf, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (size == 0)
        size = 0; /* -0.0 would print "-0"; Python's int 0 prints "+0" */
    for (int i = 0; i < 5; i++) {
        double a = size < 0 ? -size : size;
        if (a < 100 && i != 0) {
            snprintf(buf, n, sign ? "%+.1f %s" : "%.1f %s", size, units[i]);
            return buf;
        }
        if (a < 10 * 1024 || i == 4) {
            snprintf(buf, n, sign ? "%+.0f %s" : "%.0f %s", size, units[i]);
            return buf;
        }
        size /= 1024;
    }
    return buf; /* not reached */
}

char *rc_frame_str(const rc_frame *f, char *buf, size_t n)
{
    if (!f)
        snprintf(buf, n, "<unknown>:0");
    else if (f->filename)
        snprintf(buf, n, "%s:%" PRIu32, f->filename, f->lineno);
    else if (f->function)
        snprintf(buf, n, "%s+0x%" PRIx32, f->function, f->offset);
    else
        snprintf(buf, n, "0x%" PRIxPTR, f->address);
    return buf;
}

/* str(Traceback) is its oldest frame. */
static const rc_frame *oldest(const rc_traceback *tb)
{
    return tb->nframes ? &tb->frames[tb->nframes - 1] : NULL;
}

char *rc_statistic_str(const rc_statistic *st, char *buf, size_t n)
{
    char where[1024], size[32], avg[32];
    rc_frame_str(oldest(&st->traceback), where, sizeof where);
    rc_format_size((double)st->size, false, size, sizeof size);
    if (st->count)
        snprintf(buf, n, "%s: size=%s, count=%zu, average=%s", where, size, st->count,
                 rc_format_size((double)st->size / (double)st->count, false, avg, sizeof avg));
    else
        snprintf(buf, n, "%s: size=%s, count=%zu", where, size, st->count);
    return buf;
}

char *rc_statistic_diff_str(const rc_statistic_diff *st, char *buf, size_t n)
{
    char where[1024], size[32], diff[32], avg[32];
    rc_frame_str(oldest(&st->traceback), where, sizeof where);
    rc_format_size((double)st->size, false, size, sizeof size);
    rc_format_size((double)st->size_diff, true, diff, sizeof diff);
    if (st->count)
        snprintf(buf, n, "%s: size=%s (%s), count=%zu (%+" PRId64 "), average=%s", where, size,
                 diff, st->count, st->count_diff,
                 rc_format_size((double)st->size / (double)st->count, false, avg, sizeof avg));
    else
        snprintf(buf, n, "%s: size=%s (%s), count=%zu (%+" PRId64 ")", where, size, diff,
                 st->count, st->count_diff);
    return buf;
}

/* linecache.getline, approximately: the file as named, or from up to three
 * directories up (a build directory is usually one level below). */
static bool source_line(const char *file, uint32_t lineno, char *out, size_t n)
{
    if (!file || !lineno)
        return false;
    static const char *const ups[] = {"", "../", "../../", "../../../"};
    FILE *f = NULL;
    for (size_t i = 0; i < 4 && !f; i++) {
        if (file[0] == '/' && i > 0)
            break;
        char path[4096];
        snprintf(path, sizeof path, "%s%s", ups[i], file);
        f = fopen(path, "r");
    }
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool ok = false;
    for (uint32_t k = 1; getline(&line, &cap, f) >= 0; k++) {
        if (k == lineno) {
            char *s = line;
            while (*s == ' ' || *s == '\t')
                s++;
            size_t len = strlen(s);
            while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                           s[len - 1] == '\t'))
                s[--len] = '\0';
            snprintf(out, n, "%s", s);
            ok = len > 0;
            break;
        }
    }
    free(line);
    fclose(f);
    return ok;
}

int rc_traceback_print(const rc_traceback *tb, FILE *out, int limit, bool most_recent_first)
{
    if (!tb || !out)
        return _rc_error("rc_traceback_print: NULL %s", tb ? "stream" : "traceback");
    /* Python's frames run oldest first: index i is frames[nframes - 1 - i]. */
    size_t n = tb->nframes, lo = 0, hi = n; /* [lo, hi) in oldest-first order */
    if (limit > 0 && (size_t)limit < n)
        lo = n - (size_t)limit;
    else if (limit < 0 && (size_t)-(long)limit < n)
        hi = (size_t)-(long)limit;
    int lines = 0;
    for (size_t k = lo; k < hi; k++) {
        size_t i = most_recent_first ? lo + hi - 1 - k : k;
        const rc_frame *f = &tb->frames[n - 1 - i];
        char src[512];
        if (f->filename) {
            fprintf(out, "  File \"%s\", line %" PRIu32 "\n", f->filename, f->lineno);
        } else {
            char where[512];
            fprintf(out, "  %s\n", rc_frame_str(f, where, sizeof where));
        }
        lines++;
        if (source_line(f->filename, f->lineno, src, sizeof src)) {
            fprintf(out, "    %s\n", src);
            lines++;
        }
    }
    return lines;
}

/* ========================================================================
 * The tracer's own memory
 * ===================================================================== */

static void update_tracer_memory(void)
{
    const rc_trace_state *t = &REG.trace;
    uint64_t m = 0;
    m += (uint64_t)t->captracebacks * sizeof *t->tracebacks;
    m += t->capframes * sizeof *t->frames;
    m += t->objects_cap * sizeof *t->objects;
    m += (uint64_t)tb_index_cap * sizeof *tb_index;
    m += (uint64_t)capture_cap * sizeof *capture_buf;
    m += addr_cache_cap * sizeof *addr_cache;
    m += nmodules * sizeof *modules;
    for (size_t i = 0; i < nmodules; i++)
        m += modules[i].nsyms * sizeof(sym) + strlen(modules[i].path) + 1;
    m += res_cap * sizeof *res_cache;
    REG.trace.tracer_memory = m;
}
