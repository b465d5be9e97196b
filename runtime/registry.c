/*
 * The debug registry (see registry.h for the contract readers rely on), and
 * the runtime's lifetime: init, shutdown, errors, roots, sites and types.
 */
#include "internal.h"
#include "builtins.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The one global readers look for. `used` keeps it in static links even when
 * nothing refers to it; default visibility puts it in .dynsym of the shared
 * library. Layout facts are filled in statically so even a core of a
 * process that never called rc_init can be recognised. */
__attribute__((used, visibility("default"))) rc_registry rc_debug_registry = {
    .magic = RC_REGISTRY_MAGIC,
    .version = RC_REGISTRY_VERSION,
    .size = sizeof(rc_registry),
    .object_head_size = sizeof(rc_object),
    .gc_head_size = sizeof(rc_gchead),
    .arena_size = RC_ARENA_SIZE,
    .pool_size = RC_POOL_SIZE,
    .pool_header_size = RC_POOL_HEADER_SIZE,
    .align = RC_ALIGN,
    .small_max = RC_SMALL_MAX,
    .type_struct_size = sizeof(rc_type),
    .field_struct_size = sizeof(rc_field),
};

_Static_assert(sizeof(rc_object) == 16, "object head is 16 bytes");
_Static_assert(sizeof(rc_gchead) == 16, "gc head is 16 bytes");
_Static_assert(sizeof(rc_pool) <= RC_POOL_HEADER_SIZE, "pool header fits");
_Static_assert(sizeof(rc_large) == 32, "large header keeps 16-byte alignment");

int _rc_initialized;

/* ---- errors ----------------------------------------------------------------- */

static char last_error[512];

const char *rc_last_error(void) { return last_error; }

int _rc_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

_Noreturn void _rc_fatal(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("refscope: fatal: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

_Noreturn void _rc_fatal_object(const char *msg, const rc_object *o)
{
    char buf[512];
    _rc_fatal("%s: %s", msg, rc_describe(o, buf, sizeof buf));
}

void *_rc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        _rc_fatal("out of memory (malloc of %zu bytes)", n);
    return p;
}

void *_rc_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        _rc_fatal("out of memory (calloc of %zu x %zu bytes)", n, size);
    return p;
}

void *_rc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        _rc_fatal("out of memory (realloc to %zu bytes)", n);
    return q;
}

char *_rc_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = _rc_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- types ------------------------------------------------------------------ */

void _rc_register_type(rc_type *t)
{
    if (t->tp_flags & RC_TPF_REGISTERED)
        return;
    uint32_t flags = RC_TPF_REGISTERED;
    if (t->fields && t->fields[0].kind != RC_FIELD_END)
        flags |= RC_TPF_GC;
    if (REG.ntypes == 0)
        REG.ntypes = 1; /* id 0 means unregistered */
    /* Reuse the slot of a dead heap type (classes come and go). */
    uint32_t id = 0;
    for (uint32_t i = 1; i < REG.ntypes && (t->tp_flags & RC_TPF_HEAPTYPE); i++) {
        if (REG.types[i] == NULL) {
            id = i;
            break;
        }
    }
    if (!id) {
        if (REG.ntypes >= REG.captypes) {
            uint32_t cap = REG.captypes ? REG.captypes * 2 : 64;
            REG.types = _rc_xrealloc(REG.types, cap * sizeof *REG.types);
            memset(REG.types + REG.captypes, 0, (cap - REG.captypes) * sizeof *REG.types);
            REG.captypes = cap;
        }
        id = REG.ntypes++;
    }
    REG.types[id] = t;
    t->tp_id = id;
    t->tp_flags |= flags;
}

void _rc_unregister_type(rc_type *t)
{
    if (t->tp_id && t->tp_id < REG.ntypes && REG.types[t->tp_id] == t)
        REG.types[t->tp_id] = NULL;
    t->tp_id = 0;
    t->tp_flags &= ~RC_TPF_REGISTERED;
}

/* ---- sites ------------------------------------------------------------------ */

/* Sites are interned by (file, line, func) so two expansions on one line
 * share an id; the table is small and interning happens once per call site. */
static uint32_t *site_hash; /* open addressing: site ids, 0 = empty */
static uint32_t site_hash_cap;

static uint64_t site_key(const char *file, const char *func, uint32_t line)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = file; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = func; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (h ^ line) * 1099511628211ull;
}

static bool site_equal(const rc_site_entry *e, const char *file, const char *func, uint32_t line)
{
    return e->line == line && strcmp(e->file ? e->file : "", file ? file : "") == 0 &&
           strcmp(e->func ? e->func : "", func ? func : "") == 0;
}

static void site_hash_insert(uint32_t id)
{
    const rc_site_entry *e = &REG.sites[id];
    uint32_t mask = site_hash_cap - 1;
    for (uint32_t i = (uint32_t)site_key(e->file, e->func, e->line) & mask;; i = (i + 1) & mask) {
        if (!site_hash[i]) {
            site_hash[i] = id;
            return;
        }
    }
}

uint32_t _rc_intern_site(rc_site *site)
{
    rc_autoinit();
    if (site->id)
        return site->id;
    if (site_hash_cap == 0 || REG.nsites * 2 >= site_hash_cap) {
        uint32_t cap = site_hash_cap ? site_hash_cap * 2 : 256;
        free(site_hash);
        site_hash = _rc_xcalloc(cap, sizeof *site_hash);
        site_hash_cap = cap;
        for (uint32_t i = 1; i < REG.nsites; i++)
            site_hash_insert(i);
    }
    uint32_t mask = site_hash_cap - 1;
    for (uint32_t i = (uint32_t)site_key(site->file, site->func, site->line) & mask;;
         i = (i + 1) & mask) {
        uint32_t id = site_hash[i];
        if (!id)
            break;
        if (site_equal(&REG.sites[id], site->file, site->func, site->line))
            return site->id = id;
    }
    if (REG.nsites == 0)
        REG.nsites = 1; /* id 0 means "unknown site": sites[0] stays empty */
    if (REG.nsites >= (1u << 24) - 1)
        return 0; /* site ids are 24 bits; beyond that objects say "unknown" */
    if (REG.nsites >= REG.capsites) {
        uint32_t cap = REG.capsites ? REG.capsites * 2 : 256;
        REG.sites = _rc_xrealloc(REG.sites, cap * sizeof *REG.sites);
        if (REG.capsites == 0)
            REG.sites[0] = (rc_site_entry){NULL, NULL, 0, 0};
        REG.capsites = cap;
    }
    uint32_t id = REG.nsites++;
    REG.sites[id] = (rc_site_entry){site->file, site->func, site->line, 0};
    site_hash_insert(id);
    return site->id = id;
}

/* ---- roots ------------------------------------------------------------------ */

void rc_root_add(rc_object **slot, const char *name)
{
    rc_autoinit();
    if (!slot)
        return;
    for (uint32_t i = 0; i < REG.nroots; i++) {
        if (REG.roots[i].slot == slot) { /* re-adding renames */
            free((char *)REG.roots[i].name);
            REG.roots[i].name = _rc_xstrdup(name ? name : "?");
            return;
        }
    }
    if (REG.nroots == REG.caproots) {
        uint32_t cap = REG.caproots ? REG.caproots * 2 : 32;
        REG.roots = _rc_xrealloc(REG.roots, cap * sizeof *REG.roots);
        REG.caproots = cap;
    }
    REG.roots[REG.nroots++] = (rc_root_entry){slot, _rc_xstrdup(name ? name : "?")};
}

void rc_root_remove(rc_object **slot)
{
    for (uint32_t i = 0; i < REG.nroots; i++) {
        if (REG.roots[i].slot == slot) {
            free((char *)REG.roots[i].name);
            REG.roots[i] = REG.roots[--REG.nroots];
            return;
        }
    }
}

rc_object *rc_globals(void)
{
    rc_autoinit();
    return REG.globals;
}

/* ---- lifetime --------------------------------------------------------------- */

static bool debug_checks_env(void)
{
    const char *v = getenv("RCSCOPE_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

void _rc_ensure_init(void)
{
    if (_rc_initialized)
        return;
    _rc_initialized = 1;
    REG.pid = (uint32_t)getpid();
    REG.shutting_down = 0;
    if (debug_checks_env())
        REG.debug_checks = 1;
    _rc_gc_init();
    _rc_builtins_init();
    static rc_site internal_site = {__FILE__, "rc_init", __LINE__, 0};
    REG.garbage = rc_list_new_at(&internal_site);
    REG.finalizers = rc_list_new_at(&internal_site);
    REG.globals = rc_dict_new_at(&internal_site);
    REG.initialized = 1;
}

void rc_init(void) { _rc_ensure_init(); }

void rc_shutdown(void)
{
    if (!_rc_initialized)
        return;
    REG.shutting_down = 1;
    /* 1. weakref.finalize objects still alive run now (atexit=True). */
    _rc_finalizers_at_shutdown();
    /* 2. Drop the globals and collect what that frees; report what cannot be
     *    collected, as CPython does at exit. */
    rc_object *globals = REG.globals;
    REG.globals = NULL;
    rc_decref(globals);
    _rc_gc_shutdown();
    /* 3. Everything else the runtime owns. */
    rc_object *garbage = REG.garbage, *fins = REG.finalizers;
    REG.garbage = REG.finalizers = NULL;
    rc_decref(fins);
    rc_decref(garbage);
    /* 4. Whatever is still alive (uncollectable cycles, objects the program
     *    leaked) releases its buffers; then the arenas go back wholesale. */
    _rc_weakref_begin_teardown();
    _rc_object_shutdown();
    _rc_weakref_shutdown();
    _rc_mem_release_all();
    _rc_trace_shutdown();
    for (uint32_t i = 0; i < REG.nroots; i++)
        free((char *)REG.roots[i].name);
    free(REG.roots);
    REG.roots = NULL;
    REG.nroots = REG.caproots = 0;
    for (uint32_t i = 1; i < REG.ntypes; i++) {
        if (REG.types[i]) {
            REG.types[i]->tp_id = 0;
            REG.types[i]->tp_flags &= ~RC_TPF_REGISTERED;
        }
    }
    free(REG.types);
    REG.types = NULL;
    REG.ntypes = REG.captypes = 0;
    _rc_builtins_shutdown(); /* heap types of dead classes */
    /* Site ids live in the callers' static rc_site structs; keep the site
     * table so they stay valid if the runtime is initialised again. */
    REG.initialized = 0;
    _rc_initialized = 0;
}

/* Sites are kept across rc_shutdown (call sites cache their ids); release
 * the table when the program exits so leak checkers stay quiet. */
__attribute__((destructor)) static void release_site_table(void)
{
    if (_rc_initialized)
        return;
    free(REG.sites);
    free(site_hash);
    REG.sites = NULL;
    site_hash = NULL;
    REG.nsites = REG.capsites = 0;
    site_hash_cap = 0;
}

__attribute__((noinline, used)) void rc_debug_checkpoint(const char *label)
{
    REG.last_checkpoint = label;
    REG.checkpoints++;
    /* Keep the call and the store from being optimised away. */
    __asm__ volatile("" : : "r"(label) : "memory");
}

void rc_debug_set_checks(bool on) { REG.debug_checks = on; }
bool rc_debug_get_checks(void) { return REG.debug_checks != 0; }
