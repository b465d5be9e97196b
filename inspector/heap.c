/*
 * heap.c -- decode the runtime's debug registry into an object table.
 *
 * What is read, in order, and how often (the rs_memory callback may cost
 * microseconds per call, so reads are counted in calls, not bytes):
 *
 *   the registry            1 read (magic, version and layout sizes checked)
 *   the type table          1 read + 1 per type (+ its field table, strings)
 *   the site table          1 read; site strings lazily, cached by address
 *   registered roots        1 read + 2 per root (slot value, name)
 *   the large list          1-2 reads per node (header + the part the field
 *                           table needs), cycle guard and count cap
 *   the arena table         1 read, then 1 read of 1 MiB per arena (none
 *                           from a core: its bytes are used in place,
 *                           rs_memory_view)
 *   out-of-block buffers    list item arrays and dict entry tables: from a
 *                           core, used in place as their object is decoded
 *                           (no read); else queued while scanning, sorted by
 *                           address and read in coalesced blocks of up to
 *                           1 MiB
 *
 * The object table is built in address order: arenas are scanned sorted by
 * address and large objects (prescanned, sorted) are merged in between, so
 * no permutation is needed and an object's index order is its address order.
 * On two threads (a large core), the upper half of the arenas goes on the
 * second into the same table, from the index the pool headers predict
 * (scan_plan), with the same result.
 *
 * Edges are first collected raw (target address, label). Those found in
 * the objects themselves come in object order, so out_off[i] notes where
 * object i's begin while loading; resolving them through the address index
 * compacts them into the CSR arrays in place (the object indexes over the
 * raw addresses' own bytes). A buffer the core has in place (list items,
 * dict entries) is decoded with its object, so its edges are among the
 * object's, in label order. Those of queued buffers (read later) come
 * later, one run per buffer: resolved in place the same way, the runs
 * sorted by source and field, and merged in by label. The labels go then:
 * they are needed only to print an edge, and rs_edge_lab decodes its
 * source again for that (as the labels of bad edges are found).
 * Pointers to no live object start are kept
 * apart as bad edges for `check`, in the order they were decoded. (Every
 * table here is fresh memory, and faulting its pages in costs as much as
 * a good part of the decoding: no edge array is copied that can be
 * rewritten in place.)
 *
 * The address index is the allocator's own geometry (registry.h), recorded
 * while scanning: an address's arena (a hash of addr >> 20), its pool
 * (addr >> 14 within the arena), its block (offset / block size, by a
 * multiplication) and whether that block was loaded (a bitmap per pool,
 * whose rank is the object index). No search per edge; large objects,
 * few, are found by binary search.
 *
 * Everything read is validated; a failure is a warning and the part that
 * could be read is used (a partial heap from a damaged core beats none).
 */
#include "engine_int.h"

#include "builtins.h" /* rc_closure_object: the code pointer of closures */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- warnings ------------------------------------------------------------------ */

void rs_warn(rs_heap *h, const char *fmt, ...)
{
    if (h->nwarnings >= RS_MAX_WARNINGS) {
        h->dropped_warnings++;
        return;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rs_grow(&h->warnings, &h->capwarnings, h->nwarnings + 1, sizeof *h->warnings);
    h->warnings[h->nwarnings++] = rs_xstrdup(buf);
}

RS_EXPORT size_t rs_heap_warning_count(const rs_heap *h)
{
    return h ? h->nwarnings + (h->dropped_warnings ? 1 : 0) : 0;
}

RS_EXPORT const char *rs_heap_warning(const rs_heap *h, size_t i)
{
    if (!h)
        return NULL;
    if (i < h->nwarnings)
        return h->warnings[i];
    if (i == h->nwarnings && h->dropped_warnings) {
        static __thread char buf[96];
        snprintf(buf, sizeof buf, "%zu more warnings not shown", h->dropped_warnings);
        return buf;
    }
    return NULL;
}

/* ---- memory ------------------------------------------------------------------- */

size_t rs_read_mem(rs_heap *h, uint64_t addr, void *buf, size_t len)
{
    if (!len || !addr || addr + len < addr)
        return 0;
    h->nreads++;
    size_t n = h->mem.read(h->mem.ctx, addr, buf, len);
    if (n > len)
        n = len; /* a misbehaving callback must not make us trust bytes we lack */
    h->bytes_read += n;
    return n;
}

/* rs_memory_view (target.h) belongs to the target layer, which the engine
 * alone (as its tests link it) lacks: weak, it is then NULL. */
#pragma weak rs_memory_view

/* The bytes [addr, addr + len) in place when the memory is a core's and
 * they lie in one piece of it (no copy: arenas are megabytes); NULL
 * otherwise: read them. Counted as the read it saves. */
static const unsigned char *view_mem(rs_heap *h, uint64_t addr, size_t len)
{
    size_t avail = 0;
    if (!rs_memory_view || !len || !addr || addr + len < addr)
        return NULL;
    const void *p = rs_memory_view(h->mem, addr, len, &avail);
    if (!p || avail < len)
        return NULL;
    h->nreads++;
    h->bytes_read += len;
    return p;
}

static bool read_full(rs_heap *h, uint64_t addr, void *buf, size_t len)
{
    return rs_read_mem(h, addr, buf, len) == len;
}

static inline uint64_t ld64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t ld32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bits set in x (the builtin is a library call without -mpopcnt). */
static inline uint32_t popcount64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* Arena keys (address >> 20) are consecutive numbers: a multiplicative
 * hash spreads them (the slot is taken from the high bits). */
static inline size_t arena_hash(uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32);
}

/* ---- strings -------------------------------------------------------------------- */

static char *str_alloc(rs_heap *h, size_t n)
{
    rs_strblock *b = h->strings;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = rs_xmalloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        b->next = h->strings;
        h->strings = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

const char *rs_intern(rs_heap *h, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = str_alloc(h, n);
    memcpy(p, s, n);
    return p;
}

static inline size_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (size_t)x;
}

static void str_table_grow(rs_heap *h)
{
    size_t oldcap = h->str_cap;
    uint64_t *ok = h->str_keys;
    const char **ov = h->str_vals;
    h->str_cap = oldcap ? oldcap * 2 : 1024;
    h->str_keys = rs_xcalloc(h->str_cap, sizeof *h->str_keys);
    h->str_vals = rs_xcalloc(h->str_cap, sizeof *h->str_vals);
    size_t mask = h->str_cap - 1;
    for (size_t i = 0; i < oldcap; i++) {
        if (!ok[i])
            continue;
        size_t j = hash64(ok[i]) & mask;
        while (h->str_keys[j])
            j = (j + 1) & mask;
        h->str_keys[j] = ok[i];
        h->str_vals[j] = ov[i];
    }
    rs_xfree(ok);
    rs_xfree(ov);
}

const char *rs_target_string(rs_heap *h, uint64_t addr)
{
    if (!addr)
        return NULL;
    if ((h->str_used + 1) * 2 > h->str_cap)
        str_table_grow(h);
    size_t mask = h->str_cap - 1;
    size_t j = hash64(addr) & mask;
    while (h->str_keys[j]) {
        if (h->str_keys[j] == addr)
            return h->str_vals[j];
        j = (j + 1) & mask;
    }
    char buf[RS_MAX_STR];
    size_t n = rs_read_mem(h, addr, buf, sizeof buf);
    const char *val = NULL;
    void *nul = n ? memchr(buf, 0, n) : NULL;
    if (nul) {
        val = rs_intern(h, buf);
    } else if (n == sizeof buf) {
        buf[sizeof buf - 4] = '.';
        buf[sizeof buf - 3] = '.';
        buf[sizeof buf - 2] = '.';
        buf[sizeof buf - 1] = 0;
        val = rs_intern(h, buf);
    }
    /* Unreadable strings are cached too (as NULL), so they cost one read. */
    h->str_keys[j] = addr;
    h->str_vals[j] = val;
    h->str_used++;
    return val;
}

/* ---- types ---------------------------------------------------------------------- */

static void type_hash_insert(rs_heap *h, uint32_t idx)
{
    if ((h->ntypes + 1) * 2 > h->type_hash_cap) {
        rs_xfree(h->type_hash);
        h->type_hash_cap = h->type_hash_cap ? h->type_hash_cap * 2 : 256;
        h->type_hash = rs_xcalloc(h->type_hash_cap, sizeof *h->type_hash);
        size_t mask = h->type_hash_cap - 1;
        for (uint32_t t = 0; t < idx; t++) {
            size_t j = hash64(h->types[t].addr) & mask;
            while (h->type_hash[j])
                j = (j + 1) & mask;
            h->type_hash[j] = t + 1;
        }
    }
    size_t mask = h->type_hash_cap - 1;
    size_t j = hash64(h->types[idx].addr) & mask;
    while (h->type_hash[j])
        j = (j + 1) & mask;
    h->type_hash[j] = idx + 1;
}

static uint32_t type_lookup(const rs_heap *h, uint64_t addr)
{
    if (!h->type_hash_cap)
        return RS_NONE;
    size_t mask = h->type_hash_cap - 1;
    for (size_t j = hash64(addr) & mask; h->type_hash[j]; j = (j + 1) & mask)
        if (h->types[h->type_hash[j] - 1].addr == addr)
            return h->type_hash[j] - 1;
    return RS_NONE;
}

static void extent_max(uint32_t *e, uint64_t v)
{
    if (v > *e)
        *e = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Read the rc_type at addr (once: cached by address). */
static uint32_t get_type(rs_heap *h, uint64_t addr)
{
    uint32_t idx = type_lookup(h, addr);
    if (idx != RS_NONE)
        return idx;
    if (h->ntypes >= RS_MAX_TYPES) {
        /* Too many distinct type pointers: corruption. Use one "?" type. */
        idx = type_lookup(h, 0);
        if (idx != RS_NONE)
            return idx;
        addr = 0;
    }
    rs_grow(&h->types, &h->captypes, h->ntypes + 1, sizeof *h->types);
    idx = (uint32_t)h->ntypes;
    rs_type *t = &h->types[idx];
    memset(t, 0, sizeof *t);
    t->addr = addr;
    t->name = "?";
    h->ntypes++;
    type_hash_insert(h, idx);

    rc_type rt;
    if (!addr || !read_full(h, addr, &rt, sizeof rt)) {
        rs_warn(h, "type at 0x%llx is unreadable: its objects are shown as '?' without "
                   "references",
                (unsigned long long)addr);
        return idx;
    }
    const char *name = rs_target_string(h, (uint64_t)(uintptr_t)rt.name);
    t->name = name ? name : "?";
    t->size = rt.size;
    t->finalize = (uint64_t)(uintptr_t)rt.finalize;
    t->legacy_del = (uint64_t)(uintptr_t)rt.legacy_del;
    t->destroy = (uint64_t)(uintptr_t)rt.destroy;
    t->tp_id = rt.tp_id;
    t->tp_flags = rt.tp_flags;
    t->tp_name_offset = rt.tp_name_offset;
    t->gc = (rt.tp_flags & RC_TPF_GC) != 0;
    t->weakref = (rt.tp_flags & RC_TPF_WEAKREF) != 0;
    t->valid = true;
    if (!name)
        rs_warn(h, "type at 0x%llx has an unreadable name", (unsigned long long)addr);
    if (rt.size > ((uint64_t)1 << 32))
        rs_warn(h, "type %s at 0x%llx has an implausible size %llu", t->name,
                (unsigned long long)addr, (unsigned long long)rt.size);

    /* The field table, until RC_FIELD_END, read in chunks. */
    uint64_t faddr = (uint64_t)(uintptr_t)rt.fields;
    if (faddr) {
        size_t cap = 0;
        bool done = false;
        while (!done && t->nfields < RS_MAX_FIELDS) {
            rc_field chunk[32];
            size_t got = rs_read_mem(h, faddr + (uint64_t)t->nfields * sizeof(rc_field), chunk,
                                     sizeof chunk) / sizeof(rc_field);
            if (!got) {
                rs_warn(h, "type %s: field table at 0x%llx unreadable after %u fields", t->name,
                        (unsigned long long)faddr, t->nfields);
                break;
            }
            for (size_t k = 0; k < got; k++) {
                const rc_field *f = &chunk[k];
                if (f->kind == RC_FIELD_END) {
                    done = true;
                    break;
                }
                if (f->kind > RC_FIELD_NAMED_ARRAY) {
                    rs_warn(h, "type %s: field %u has unknown kind %u; the field table is "
                               "cut there",
                            t->name, t->nfields, f->kind);
                    done = true;
                    break;
                }
                rs_grow(&t->fields, &cap, t->nfields + 1, sizeof *t->fields);
                rs_field *nf = &t->fields[t->nfields++];
                const char *fname = rs_target_string(h, (uint64_t)(uintptr_t)f->name);
                nf->name = fname ? fname : "?";
                nf->kind = f->kind;
                nf->offset = f->offset;
                nf->len_offset = f->len_offset;
                nf->aux_offset = f->aux_offset;
                if (t->nfields >= RS_MAX_FIELDS) {
                    rs_warn(h, "type %s: more than %u fields; the rest are ignored", t->name,
                            RS_MAX_FIELDS);
                    done = true;
                    break;
                }
            }
        }
    }
    for (uint32_t k = 0; rt.size >= sizeof(rc_object) && k < t->nfields; k++)
        if (rs_field_outside(&t->fields[k], rt.size))
            rs_warn(h, "type %s at 0x%llx: field '%s' (offset %u) lies outside its %llu-byte "
                       "instances: a corrupt field table or size",
                    t->name, (unsigned long long)addr, t->fields[k].name, t->fields[k].offset,
                    (unsigned long long)rt.size);
    uint32_t e = (uint32_t)sizeof(rc_object);
    for (uint32_t k = 0; k < t->nfields; k++) {
        const rs_field *f = &t->fields[k];
        extent_max(&e, (uint64_t)f->offset + 8);
        if (f->kind == RC_FIELD_REF_ARRAY || f->kind == RC_FIELD_INLINE_ARRAY ||
            f->kind == RC_FIELD_DICT || f->kind == RC_FIELD_NAMED_ARRAY)
            extent_max(&e, (uint64_t)f->len_offset + 8);
        if (f->kind == RC_FIELD_INLINE_ARRAY || f->kind == RC_FIELD_NAMED_ARRAY)
            extent_max(&e, f->offset); /* the items themselves are dynamic */
        if (f->kind == RC_FIELD_NAMED_ARRAY)
            extent_max(&e, (uint64_t)f->aux_offset + 8);
    }
    if (t->tp_name_offset)
        extent_max(&e, (uint64_t)t->tp_name_offset + 8);
    t->fixed_extent = e;
    t->refs_only = true;
    t->strong_only = t->nfields < 64;
    for (uint32_t k = 0; k < t->nfields; k++) {
        if (t->fields[k].kind != RC_FIELD_REF && t->fields[k].kind != RC_FIELD_WEAK)
            t->refs_only = false;
        if (t->fields[k].kind != RC_FIELD_REF)
            t->strong_only = false;
    }
    return idx;
}

static void load_type_table(rs_heap *h)
{
    uint32_t n = h->reg.ntypes;
    if (!h->reg.types || n == 0)
        return;
    if (n > RS_MAX_TYPES) {
        rs_warn(h, "registry says %u types; reading the first %u", n, RS_MAX_TYPES);
        n = RS_MAX_TYPES;
    }
    uint64_t *ptrs = rs_xcalloc(n, sizeof *ptrs);
    size_t got = rs_read_mem(h, (uint64_t)(uintptr_t)h->reg.types, ptrs, (size_t)n * 8) / 8;
    if (got < n)
        rs_warn(h, "type table at %p: only %zu of %u entries readable", (void *)h->reg.types,
                got, n);
    for (size_t i = 1; i < got; i++) {
        if (!ptrs[i])
            continue;
        uint32_t idx = get_type(h, ptrs[i]);
        rs_type *t = &h->types[idx];
        if (t->valid && t->tp_id == i)
            t->registered = true;
    }
    rs_xfree(ptrs);
}

/* ---- sites ------------------------------------------------------------------------ */

static void load_sites(rs_heap *h)
{
    uint32_t n = h->reg.nsites;
    if (!h->reg.sites || n == 0)
        return;
    if (n > RS_MAX_SITES || n > h->reg.capsites) {
        rs_warn(h, "registry says %u sites (capacity %u); reading at most %u", n,
                h->reg.capsites, RS_MAX_SITES);
        if (n > RS_MAX_SITES)
            n = RS_MAX_SITES;
    }
    rc_site_entry *e = rs_xmalloc((size_t)n * sizeof *e);
    size_t got = rs_read_mem(h, (uint64_t)(uintptr_t)h->reg.sites, e, (size_t)n * sizeof *e) /
                 sizeof *e;
    if (got < n)
        rs_warn(h, "site table: only %zu of %u entries readable", got, n);
    h->sites = rs_xcalloc(got ? got : 1, sizeof *h->sites);
    h->nsites = (uint32_t)got;
    for (size_t i = 0; i < got; i++) {
        h->sites[i].file_addr = (uint64_t)(uintptr_t)e[i].file;
        h->sites[i].func_addr = (uint64_t)(uintptr_t)e[i].func;
        h->sites[i].line = e[i].line;
    }
    rs_xfree(e);
}

static const char *short_path(const char *p)
{
    while (p[0] == '.' && (p[1] == '/' || (p[1] == '.' && p[2] == '/')))
        p += p[1] == '/' ? 2 : 3;
    return p;
}

const rs_site *rs_get_site(rs_heap *h, uint32_t id)
{
    if (id == 0 || id >= h->nsites)
        return NULL;
    rs_site *s = &h->sites[id];
    if (!s->file) {
        const char *f = rs_target_string(h, s->file_addr);
        const char *fn = rs_target_string(h, s->func_addr);
        s->file = f ? short_path(f) : "?";
        s->func = fn ? fn : "?";
    }
    return s;
}

const char *rs_site_str(rs_heap *h, uint32_t id, char *buf, size_t size)
{
    const rs_site *s = rs_get_site(h, id);
    if (!s)
        snprintf(buf, size, "unknown site");
    else
        snprintf(buf, size, "%s:%u", s->file, s->line);
    return buf;
}

/* Objects are named as the runtime's rc_describe names them, with the
 * site's base name: "Node@0x55d0c0a4e2b0 (leaky.c:42)". Site histograms
 * and tracebacks keep the path (rs_site_str). */
const char *rs_describe(rs_heap *h, uint32_t i, char *buf, size_t size)
{
    const rs_site *s = rs_get_site(h, rs_obj_site(h, i));
    if (!s) {
        snprintf(buf, size, "%s@0x%llx (unknown site)", rs_obj_type(h, i)->name,
                 (unsigned long long)h->addr[i]);
    } else {
        const char *slash = strrchr(s->file, '/');
        snprintf(buf, size, "%s@0x%llx (%s:%u)", rs_obj_type(h, i)->name,
                 (unsigned long long)h->addr[i], slash ? slash + 1 : s->file, s->line);
    }
    return buf;
}

/* ---- loading objects ------------------------------------------------------------------ */

/* An out-of-block buffer to read: list items (REF_ARRAY) or dict entries. */
typedef struct ext_req {
    uint64_t addr;
    uint64_t n;      /* items */
    uint32_t src;
    uint32_t field;
    uint32_t kind;
} ext_req;

typedef struct large_obj {
    uint64_t addr;
    uint64_t blk;
    uint32_t refcnt, info, tidx;
    unsigned char *data; /* the object's first `avail` bytes */
    size_t avail;
} large_obj;

/* The edges of one queued buffer: L->xe.w[first .. first + n) (after
 * ext_resolve, its good ones, compacted to the front). A buffer is one
 * field of one object, and its edges come in item order, so runs sorted by
 * (source, field) list each source's edges sorted by label. */
typedef struct ext_run {
    uint32_t src, field;
    size_t first, n;
} ext_run;

/* Queued buffers decoded when nraw inline edges had been decoded: for the
 * order of bad edges (build_edges). */
typedef struct ext_batch {
    size_t first;    /* its first edge in L->xe */
    size_t nraw;
} ext_batch;

/* Raw edges as decoded: target address and label, growing, cut at
 * RS_MAX_EDGES. One word an edge (half what the pair took: at a million
 * objects the raw edges were the largest table the load filled). A target
 * 8-aligned below 2^47 -- every object head is -- is packed with its
 * label; anything else (a bad pointer, a label too big) is kept exactly on
 * the side, the word being bit 63 | its index in esc_dst/esc_lab.
 *
 *   edges of the objects (L->raw), a field < 64, bit 62 says which:
 *     0: a label of element < 2^12
 *       bit 63: 0 | 62: 0 | 50..61: element | 44..49: field | 0..43: target >> 3
 *     1: an item of a buffer decoded in place (a list's items, a dict's
 *       values, as the object is: buffer_edges), element the gap since
 *       the buffer's edge before (< 2^12: the NULL items skipped; the
 *       first's counts from -1); labels are found walking the object's
 *       edges in order (ev_lab_after); ev_field needs no walk
 *       bit 63: 0 | 62: 1 | 50..61: gap | 44..49: field | 0..43: target >> 3
 *   edges of queued buffers (L->xe): the field is the run's, and a run's elements
 *   ascend, so the word keeps the gap since the last one (< 2^19: the
 *   NULL items skipped) and labels are found walking the run (xe_lab):
 *     bit 63: 0 | bits 44..62: gap | 0..43: target >> 3
 */
typedef struct edge_vec {
    uint64_t *w;
    size_t n, cap;
    uint64_t *esc_dst, *esc_lab;
    size_t nesc, capesc;
} edge_vec;

#define EV_ESC ((uint64_t)1 << 63)
#define EV_ITEM ((uint64_t)1 << 62)

static inline uint64_t ev_dst(const edge_vec *v, size_t e)
{
    uint64_t w = v->w[e];
    return w & EV_ESC ? v->esc_dst[w & ~EV_ESC] : (w & (((uint64_t)1 << 44) - 1)) << 3;
}

/* The field of edge e of L->raw. */
static inline uint32_t ev_field(const edge_vec *v, size_t e)
{
    uint64_t w = v->w[e];
    return w & EV_ESC ? RS_LAB_FIELD(v->esc_lab[w & ~EV_ESC]) : (uint32_t)(w >> 44) & 63;
}

/* The label of edge e of L->raw, `prev` being the label of the edge
 * before it of the same object (RS_NONE_LAB for its first): an item's
 * element counts on from the buffer's edge before, which has its field
 * (a field is a buffer or not, and a buffer's items come in a row). */
#define RS_NONE_LAB UINT64_MAX
static inline uint64_t ev_lab_after(const edge_vec *v, size_t e, uint64_t prev)
{
    uint64_t w = v->w[e];
    if (w & EV_ESC)
        return v->esc_lab[w & ~EV_ESC];
    uint32_t f = (uint32_t)(w >> 44) & 63;
    uint64_t x = (w >> 50) & 0xFFF;
    if (!(w & EV_ITEM))
        return RS_LAB(f, x);
    if (prev != RS_NONE_LAB && RS_LAB_FIELD(prev) == f)
        return RS_LAB(f, RS_LAB_ELEM(prev) + 1 + x);
    return RS_LAB(f, x);
}


/* The label of buffer edge e of a run of field `field`, *prev being the
 * element of the run's edge before it (UINT64_MAX before the first). */
static inline uint64_t xe_lab(const edge_vec *v, size_t e, uint32_t field, uint64_t *prev)
{
    uint64_t w = v->w[e];
    if (w & EV_ESC) {
        uint64_t lab = v->esc_lab[w & ~EV_ESC];
        *prev = RS_LAB_ELEM(lab);
        return lab;
    }
    *prev += 1 + (w >> 44);
    return RS_LAB(field, *prev);
}

typedef struct load_state {
    /* raw strong edges of the objects themselves, in object order (object
     * i's start at h->out_off[i]) */
    edge_vec raw;
    /* raw strong edges of queued buffers, buffer after buffer (runs) */
    edge_vec xe;
    ext_run *runs;
    size_t nruns, capruns;
    ext_batch *batches;
    size_t nbatches, capbatches;
    bool cut;        /* more than RS_MAX_EDGES raw edges: the rest were dropped */
    /* raw weak edges */
    uint32_t *wk_src;
    uint64_t *wk_dst, *wk_lab;
    size_t nwk, capwk;
    /* queued buffer reads */
    ext_req *ext;
    size_t next, capext;
    uint64_t ext_bytes;
    unsigned char *buf;
    size_t bufcap;
    /* prescanned large objects, sorted by address */
    large_obj *large;
    size_t nlarge, caplarge, large_pos;
    uint32_t last_type_idx;
    uint64_t last_type_addr;
    bool warned_array, warned_inline;
    bool quiet;      /* decoding again for labels (relabel): no warnings, no accounting */
    /* The arenas scanned on two threads (scan_arenas): on the second one
     * (strict), a type not loaded yet, a buffer to read later or no room
     * left makes it give up (bail), and the calling thread scans its
     * arenas itself; on the calling one, job is the second's while it runs. */
    bool strict, bail;
    struct scan_job *job;
} load_state;

#define EXT_FLUSH_COUNT 65536u
#define EXT_FLUSH_BYTES ((uint64_t)32 << 20)
#define EXT_COALESCE_GAP 4096u
#define EXT_BLOCK ((size_t)1 << 20)

/* Edge indexes and CSR offsets are 32-bit. */
#define RS_MAX_EDGES ((size_t)UINT32_MAX - 1)

/* Room for one more edge in v (first_cap edges at first); false (and
 * L->cut) at RS_MAX_EDGES. */
static __attribute__((noinline)) bool edge_vec_grow(load_state *L, edge_vec *v, size_t first_cap)
{
    if (v->cap >= RS_MAX_EDGES) {
        L->cut = true;
        return false;
    }
    size_t cap = v->cap ? v->cap * 2 : first_cap;
    if (cap > RS_MAX_EDGES)
        cap = RS_MAX_EDGES;
    v->w = rs_xrealloc(v->w, cap * sizeof *v->w);
    v->cap = cap;
    return true;
}

static __attribute__((noinline)) uint64_t edge_vec_escape(edge_vec *v, uint64_t dst, uint64_t lab)
{
    if (v->nesc == v->capesc) {
        size_t cap = v->capesc ? v->capesc * 2 : 64;
        v->esc_dst = rs_xrealloc(v->esc_dst, cap * sizeof *v->esc_dst);
        v->esc_lab = rs_xrealloc(v->esc_lab, cap * sizeof *v->esc_lab);
        v->capesc = cap;
    }
    v->esc_dst[v->nesc] = dst;
    v->esc_lab[v->nesc] = lab;
    return EV_ESC | v->nesc++;
}

#define EV_PACKABLE(dst) (((dst) & 7) == 0 && (dst) < ((uint64_t)1 << 47))

/* An edge of the object decoded last. Inline: once per reference. */
static inline void raw_edge(load_state *L, uint64_t dst, uint64_t lab)
{
    edge_vec *v = &L->raw;
    if (v->n == v->cap && !edge_vec_grow(L, v, 65536))
        return;
    uint64_t f = RS_LAB_FIELD(lab), el = RS_LAB_ELEM(lab);
    v->w[v->n++] = EV_PACKABLE(dst) && f < 64 && el < 0x1000 ? dst >> 3 | f << 44 | el << 50
                                                               : edge_vec_escape(v, dst, lab);
}

/* Item `elem` of a buffer of field `field`, *prev the element of the
 * buffer's edge before it (UINT64_MAX before the first): decoded in place
 * with its object (L->raw, the word flagged EV_ITEM, the gap < 2^12) or
 * from a queued buffer (L->xe, ext_decode: the run knows the field, the gap
 * < 2^19). Inline, `inplace` constant at each call. */
static inline __attribute__((always_inline)) void item_edge(load_state *L, bool inplace,
                                                            uint64_t dst, uint32_t field,
                                                            uint64_t elem, uint64_t *prev)
{
    edge_vec *v = inplace ? &L->raw : &L->xe;
    if (v->n == v->cap && !edge_vec_grow(L, v, inplace ? 65536 : 4096))
        return;
    uint64_t gap = elem - *prev - 1;
    *prev = elem;
    if (inplace)
        v->w[v->n++] = EV_PACKABLE(dst) && field < 64 && gap < 0x1000
                           ? dst >> 3 | (uint64_t)field << 44 | gap << 50 | EV_ITEM
                           : edge_vec_escape(v, dst, RS_LAB(field, elem));
    else
        v->w[v->n++] = EV_PACKABLE(dst) && gap < ((uint64_t)1 << 19)
                           ? dst >> 3 | gap << 44
                           : edge_vec_escape(v, dst, RS_LAB(field, elem));
}

/* The edges of the n items of a buffer (a list's items, a dict's entries)
 * at p, as item_edge takes them. */
static inline void buffer_edges(load_state *L, bool inplace, uint32_t field, uint32_t kind,
                                const unsigned char *p, uint64_t n)
{
    uint64_t prev = UINT64_MAX;
    if (kind == RC_FIELD_DICT) {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = ld64(p + i * sizeof(rc_dict_entry) + offsetof(rc_dict_entry, value));
            if (v)
                item_edge(L, inplace, v, field, i, &prev);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = ld64(p + i * 8);
            if (v)
                item_edge(L, inplace, v, field, i, &prev);
        }
    }
}

static void edge_vec_free(edge_vec *v)
{
    rs_xfree(v->w);
    rs_xfree(v->esc_dst);
    rs_xfree(v->esc_lab);
    memset(v, 0, sizeof *v);
}

static void weak_edge(load_state *L, uint32_t src, uint64_t dst, uint64_t lab)
{
    if (L->nwk == L->capwk) {
        size_t cap = L->capwk ? L->capwk * 2 : 1024;
        L->wk_src = rs_xrealloc(L->wk_src, cap * sizeof *L->wk_src);
        L->wk_dst = rs_xrealloc(L->wk_dst, cap * sizeof *L->wk_dst);
        L->wk_lab = rs_xrealloc(L->wk_lab, cap * sizeof *L->wk_lab);
        L->capwk = cap;
    }
    L->wk_src[L->nwk] = src;
    L->wk_dst[L->nwk] = dst;
    L->wk_lab[L->nwk] = lab;
    L->nwk++;
}

static int ext_cmp(const void *a, const void *b)
{
    const ext_req *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return x->src < y->src ? -1 : x->src > y->src;
}

static uint64_t ext_len(const ext_req *r)
{
    return r->n * (r->kind == RC_FIELD_DICT ? sizeof(rc_dict_entry) : 8);
}

/* Decode one queued buffer from bytes at p (got bytes of it readable). */
static void ext_decode(rs_heap *h, load_state *L, const ext_req *r, const unsigned char *p,
                       uint64_t got)
{
    uint64_t need = ext_len(r);
    if (got < need && !L->quiet) {
        char d[400];
        rs_warn(h, "%s: %s buffer at 0x%llx: only %llu of %llu bytes readable",
                rs_describe(h, r->src, d, sizeof d),
                r->kind == RC_FIELD_DICT ? "dict entry" : "item",
                (unsigned long long)r->addr, (unsigned long long)got,
                (unsigned long long)need);
    }
    size_t first = L->xe.n;
    uint64_t n = got / (r->kind == RC_FIELD_DICT ? sizeof(rc_dict_entry) : 8);
    buffer_edges(L, false, r->field, r->kind, p, n < r->n ? n : r->n);
    if (L->xe.n > first) {
        rs_grow(&L->runs, &L->capruns, L->nruns + 1, sizeof *L->runs);
        L->runs[L->nruns++] = (ext_run){r->src, r->field, first, L->xe.n - first};
    }
}

static void ext_flush(rs_heap *h, load_state *L)
{
    if (!L->next)
        return;
    rs_grow(&L->batches, &L->capbatches, L->nbatches + 1, sizeof *L->batches);
    L->batches[L->nbatches++] = (ext_batch){L->xe.n, L->raw.n};
    RS_QSORT(L->ext, L->next, sizeof *L->ext, ext_cmp);
    size_t i = 0;
    while (i < L->next) {
        /* Coalesce [i, j): close together, at most EXT_BLOCK in all. */
        uint64_t start = L->ext[i].addr;
        uint64_t end = start + ext_len(&L->ext[i]);
        size_t j = i + 1;
        while (j < L->next) {
            uint64_t a = L->ext[j].addr, e = a + ext_len(&L->ext[j]);
            if (a > end + EXT_COALESCE_GAP || (e > end ? e : end) - start > EXT_BLOCK)
                break;
            if (e > end)
                end = e;
            j++;
        }
        /* Read in blocks, growing the buffer only as far as memory is
         * readable: a corrupt count (up to RS_MAX_ARRAY items, gigabytes) or
         * an address near the top (end wraps) must not make us allocate for
         * bytes that are not there (tests/fuzz found it). */
        uint64_t len = end - start, got = 0;
        const unsigned char *bytes = view_mem(h, start, (size_t)len);
        if (bytes) {
            got = len;
            h->nreads += (len - 1) / EXT_BLOCK; /* counted as the blocks read below */
        }
        while (!bytes && got < len) {
            uint64_t chunk = len - got < EXT_BLOCK ? len - got : EXT_BLOCK;
            if (got + chunk > L->bufcap) {
                size_t cap = L->bufcap ? L->bufcap : EXT_BLOCK;
                while (cap < got + chunk)
                    cap *= 2;
                L->buf = rs_xrealloc(L->buf, cap);
                L->bufcap = cap;
            }
            size_t n = rs_read_mem(h, start + got, L->buf + got, (size_t)chunk);
            got += n;
            if (n < chunk)
                break;
        }
        if (!bytes)
            bytes = L->buf;
        for (size_t k = i; k < j; k++) {
            const ext_req *r = &L->ext[k];
            uint64_t off = r->addr - start;
            uint64_t avail = got > off ? got - off : 0;
            ext_decode(h, L, r, avail ? bytes + off : bytes, avail);
        }
        i = j;
    }
    L->next = 0;
    L->ext_bytes = 0;
}

static void ext_queue(rs_heap *h, load_state *L, uint64_t addr, uint64_t n, uint32_t src,
                      uint32_t field, uint32_t kind)
{
    if (L->strict) { /* (reading is the calling thread's) */
        L->bail = true;
        return;
    }
    rs_grow(&L->ext, &L->capext, L->next + 1, sizeof *L->ext);
    L->ext[L->next++] = (ext_req){addr, n, src, field, kind};
    L->ext_bytes += n * 8;
    if (L->next >= EXT_FLUSH_COUNT || L->ext_bytes >= EXT_FLUSH_BYTES)
        ext_flush(h, L);
}

/* The xbytes entry of object i (flagged RS_BLK_X in blk[]). */
const rs_xbytes *rs_xbytes_of(const rs_heap *h, uint32_t i)
{
    size_t lo = 0, hi = h->nxbytes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->xbytes[mid].obj < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return &h->xbytes[lo]; /* there is one: blk[i] says so */
}

static __attribute__((noinline)) void xbytes_push(rs_heap *h, rs_xbytes x)
{
    rs_grow(&h->xbytes, &h->capxbytes, h->nxbytes + 1, sizeof *h->xbytes);
    h->xbytes[h->nxbytes++] = x;
}

/* Object idx (the last one added: objects are decoded as they are added)
 * has `more` bytes of buffers. */
static void add_bytes(rs_heap *h, uint32_t idx, uint64_t more)
{
    if (!(h->blk[idx] & RS_BLK_X)) {
        xbytes_push(h, (rs_xbytes){idx, h->blk[idx], h->blk[idx]});
        h->blk[idx] = RS_BLK_X;
    }
    rs_xbytes *x = &h->xbytes[h->nxbytes - 1];
    if (x->obj != idx) /* (not the last one added: never, as the load goes) */
        x = (rs_xbytes *)rs_xbytes_of(h, idx);
    x->bytes += more;
    h->total_bytes += more;
}

/* decode_object for any field table, every offset checked. */
static __attribute__((noinline)) void decode_fields(rs_heap *h, load_state *L, uint32_t idx,
                                                    const rs_type *t, const unsigned char *o,
                                                    size_t avail)
{
    for (uint32_t k = 0; k < t->nfields; k++) {
        const rs_field *f = &t->fields[k];
        switch (f->kind) {
        case RC_FIELD_REF:
        case RC_FIELD_WEAK: {
            if ((uint64_t)f->offset + 8 > avail)
                break;
            uint64_t p = ld64(o + f->offset);
            if (!p)
                break;
            if (f->kind == RC_FIELD_REF)
                raw_edge(L, p, RS_LAB(k, 0));
            else
                weak_edge(L, idx, p, RS_LAB(k, 0));
            break;
        }
        case RC_FIELD_REF_ARRAY:
        case RC_FIELD_DICT: {
            if ((uint64_t)f->offset + 8 > avail || (uint64_t)f->len_offset + 8 > avail)
                break;
            uint64_t p = ld64(o + f->offset);
            uint64_t n = ld64(o + f->len_offset);
            if (!p || !n)
                break;
            if (n > RS_MAX_ARRAY) {
                if (!L->warned_array) {
                    char d[400];
                    rs_warn(h, "%s: %s count %llu is implausible; its references are skipped",
                            rs_describe(h, idx, d, sizeof d), f->name, (unsigned long long)n);
                    L->warned_array = true;
                }
                break;
            }
            uint64_t len = n * (f->kind == RC_FIELD_DICT ? sizeof(rc_dict_entry) : 8);
            if (!L->quiet)
                add_bytes(h, idx, len);
            /* in place when the core has it in one piece: its edges then
             * come in label order with the object's own, with nothing to
             * merge; else read later, with other buffers (ext_flush) */
            const unsigned char *items = view_mem(h, p, (size_t)len);
            if (items)
                buffer_edges(L, true, k, f->kind, items, n);
            else
                ext_queue(h, L, p, n, idx, k, f->kind);
            break;
        }
        case RC_FIELD_INLINE_ARRAY:
        case RC_FIELD_NAMED_ARRAY: {
            if ((uint64_t)f->len_offset + 8 > avail || f->offset > avail)
                break;
            uint64_t n = ld64(o + f->len_offset);
            uint64_t fit = (avail - f->offset) / 8;
            if (n > fit) {
                if (!L->warned_inline) {
                    char d[400];
                    rs_warn(h, "%s: %s count %llu does not fit in the object (%llu fit); cut",
                            rs_describe(h, idx, d, sizeof d), f->name, (unsigned long long)n,
                            (unsigned long long)fit);
                    L->warned_inline = true;
                }
                n = fit;
            }
            for (uint64_t i = 0; i < n; i++) {
                uint64_t p = ld64(o + f->offset + i * 8);
                if (p)
                    raw_edge(L, p, RS_LAB(k, i));
            }
            break;
        }
        default:
            break;
        }
    }
}

/* Decode the references of object idx from its bytes o[0 .. avail).
 * Inline: the common case, pointer fields only, all inside what was read,
 * takes a few instructions per field. */
static inline void decode_object(rs_heap *h, load_state *L, uint32_t idx, const unsigned char *o,
                                 size_t avail)
{
    const rs_type *t = &h->types[h->tidx[idx]];
    if (!t->refs_only || avail < t->fixed_extent) {
        decode_fields(h, L, idx, t, o, avail);
        return;
    }
    for (uint32_t k = 0; k < t->nfields; k++) {
        const rs_field *f = &t->fields[k];
        uint64_t p = ld64(o + f->offset);
        if (p && f->kind == RC_FIELD_REF)
            raw_edge(L, p, RS_LAB(k, 0));
        else if (p)
            weak_edge(L, idx, p, RS_LAB(k, 0));
    }
}

/* An edge of strong reference field k (< 64) of the object decoded last:
 * raw_edge without the label's checks. */
static inline void ref_edge(load_state *L, uint64_t dst, uint32_t k)
{
    edge_vec *v = &L->raw;
    if (v->n == v->cap && !edge_vec_grow(L, v, 65536))
        return;
    v->w[v->n++] = EV_PACKABLE(dst) ? dst >> 3 | (uint64_t)k << 44
                                    : edge_vec_escape(v, dst, RS_LAB(k, 0));
}

/* decode_object for the objects of a pool: inline in the scan, with the
 * usual case (strong references only, all inside the block) in the loop. */
static inline __attribute__((always_inline)) void decode_pooled(rs_heap *h, load_state *L,
                                                                uint32_t idx, const rs_type *t,
                                                                const unsigned char *o,
                                                                size_t avail)
{
    if (!t->strong_only || avail < t->fixed_extent) {
        decode_object(h, L, idx, o, avail);
        return;
    }
    for (uint32_t k = 0; k < t->nfields; k++) {
        uint64_t p = ld64(o + t->fields[k].offset);
        if (p)
            ref_edge(L, p, k);
    }
}

/* type_of past its one-entry cache */
static __attribute__((noinline)) uint32_t type_of_slow(rs_heap *h, load_state *L, uint64_t taddr)
{
    uint32_t idx;
    if (L->strict) { /* (get_type reads memory and adds to the type table) */
        idx = type_lookup(h, taddr);
        if (idx == RS_NONE) {
            L->bail = true;
            return 0;
        }
    } else {
        idx = get_type(h, taddr);
    }
    L->last_type_addr = taddr;
    L->last_type_idx = idx;
    return idx;
}

static inline uint32_t type_of(rs_heap *h, load_state *L, uint64_t taddr)
{
    if (taddr == L->last_type_addr && L->last_type_idx != RS_NONE)
        return L->last_type_idx;
    return type_of_slow(h, L, taddr);
}

static __attribute__((noinline)) void grow_objects(rs_heap *h)
{
    size_t cap = h->capobj ? h->capobj * 2 : 4096;
    h->out_off = rs_xrealloc(h->out_off, (cap + 1) * sizeof *h->out_off);
    h->addr = rs_xrealloc(h->addr, cap * sizeof *h->addr);
    h->tidx = rs_xrealloc(h->tidx, cap * sizeof *h->tidx);
    h->refcnt = rs_xrealloc(h->refcnt, cap * sizeof *h->refcnt);
    h->info = rs_xrealloc(h->info, cap * sizeof *h->info);
    h->blk = rs_xrealloc(h->blk, cap * sizeof *h->blk);
    h->capobj = cap;
}

static bool room_for_objects(rs_heap *h, load_state *L);

/* Add an object to the table; its inline edges follow (raw_edge). */
static inline bool add_object(rs_heap *h, load_state *L, uint64_t addr, uint32_t refcnt,
                              uint32_t info, uint32_t tidx, uint64_t blk)
{
    if (h->nobj >= RS_MAX_OBJECTS)
        return false;
    if (h->nobj == h->capobj && !room_for_objects(h, L))
        return false;
    size_t i = h->nobj++;
    h->out_off[i] = (uint32_t)L->raw.n; /* < RS_MAX_EDGES (raw_grow) */
    h->addr[i] = addr;
    h->tidx[i] = tidx;
    h->refcnt[i] = refcnt;
    h->info[i] = info;
    h->total_bytes += blk;
    if (blk < RS_BLK_X) {
        h->blk[i] = (uint32_t)blk;
    } else {
        h->blk[i] = RS_BLK_X;
        xbytes_push(h, (rs_xbytes){(uint32_t)i, blk, blk});
    }
    return true;
}

/* ---- the large list ------------------------------------------------------------------ */

static int large_cmp(const void *a, const void *b)
{
    const large_obj *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* How much of a large object (objmax bytes, the first `have` of them at
 * ob) its field table needs: the fixed fields and the inline arrays. */
static uint64_t large_need(const rs_type *t, const unsigned char *ob, size_t have,
                           uint64_t objmax)
{
    uint64_t need = t->fixed_extent;
    for (uint32_t k = 0; k < t->nfields; k++) {
        const rs_field *f = &t->fields[k];
        if ((f->kind == RC_FIELD_INLINE_ARRAY || f->kind == RC_FIELD_NAMED_ARRAY) &&
            (uint64_t)f->len_offset + 8 <= have) {
            uint64_t n = ld64(ob + f->len_offset);
            if (n > RS_MAX_ARRAY)
                n = RS_MAX_ARRAY;
            if ((uint64_t)f->offset + n * 8 > need)
                need = (uint64_t)f->offset + n * 8;
        }
    }
    return need > objmax ? objmax : need;
}

static void scan_large(rs_heap *h, load_state *L)
{
    uint64_t sentinel = h->regaddr + offsetof(rc_registry, large);
    uint64_t node = (uint64_t)(uintptr_t)h->reg.large.next;
    if (!node || node == sentinel)
        return;
    uint64_t cap = h->reg.alloc.large_count + 1024;
    if (cap > RS_MAX_LARGE)
        cap = RS_MAX_LARGE;
    /* Brent's cycle check: a loop that misses the sentinel ends the walk. */
    uint64_t tortoise = node, power = 1, lam = 0;
    uint64_t steps = 0;
    const size_t first = 1024;
    unsigned char *buf = rs_xmalloc(sizeof(rc_large) + first);
    while (node != sentinel) {
        if (steps++ >= cap) {
            rs_warn(h, "large-object list: more than %llu nodes (the registry counts %llu); "
                       "stopped there",
                    (unsigned long long)cap, (unsigned long long)h->reg.alloc.large_count);
            break;
        }
        size_t got = rs_read_mem(h, node, buf, sizeof(rc_large) + first);
        if (got < sizeof(rc_large)) {
            rs_warn(h, "large-object list: node at 0x%llx is unreadable; the list is cut there",
                    (unsigned long long)node);
            break;
        }
        rc_large hd;
        memcpy(&hd, buf, sizeof hd);
        uint64_t next = (uint64_t)(uintptr_t)hd.next;
        h->large_scanned++;
        if (hd.magic != RC_LARGE_MAGIC) {
            rs_warn(h, "large-object list: node at 0x%llx has a bad magic 0x%x; the list is cut "
                       "there",
                    (unsigned long long)node, hd.magic);
            break;
        }
        size_t head = hd.kind == RC_KIND_GC ? sizeof(rc_gchead) : 0;
        if ((hd.kind == RC_KIND_GC || hd.kind == RC_KIND_PLAIN) &&
            hd.size >= head + sizeof(rc_object) && got >= sizeof(rc_large) + head + 16) {
            const unsigned char *ob = buf + sizeof(rc_large) + head;
            uint32_t refcnt = ld32(ob), info = ld32(ob + 4);
            uint64_t taddr = ld64(ob + 8);
            if (refcnt != RC_REFCNT_FREED) {
                large_obj lo;
                lo.addr = node + sizeof(rc_large) + head;
                lo.blk = hd.size + sizeof(rc_large);
                lo.refcnt = refcnt;
                lo.info = info;
                lo.tidx = type_of(h, L, taddr);
                size_t have = got - sizeof(rc_large) - head;
                uint64_t need = large_need(&h->types[lo.tidx], ob, have, hd.size - head);
                lo.data = rs_xmalloc(need ? need : 1);
                if (need <= have) {
                    memcpy(lo.data, ob, need);
                    lo.avail = need;
                } else {
                    lo.avail = rs_read_mem(h, lo.addr, lo.data, need);
                }
                rs_grow(&L->large, &L->caplarge, L->nlarge + 1, sizeof *L->large);
                L->large[L->nlarge++] = lo;
            }
        } else if (hd.kind != RC_KIND_RAW) {
            rs_warn(h, "large-object list: node at 0x%llx has kind %u and size %llu; skipped",
                    (unsigned long long)node, hd.kind, (unsigned long long)hd.size);
        }
        if (next == tortoise) {
            rs_warn(h, "large-object list: a loop that misses the list head (at 0x%llx); "
                       "stopped there",
                    (unsigned long long)next);
            break;
        }
        if (++lam == power) {
            tortoise = next;
            power *= 2;
            lam = 0;
        }
        node = next;
        if (!node) {
            rs_warn(h, "large-object list: NULL link after %llu nodes", (unsigned long long)steps);
            break;
        }
    }
    rs_xfree(buf);
    RS_QSORT(L->large, L->nlarge, sizeof *L->large, large_cmp);
    /* Drop duplicates (a corrupt list visiting a node twice). */
    size_t w = 0;
    for (size_t i = 0; i < L->nlarge; i++) {
        if (w && L->large[w - 1].addr == L->large[i].addr) {
            rs_xfree(L->large[i].data);
            continue;
        }
        L->large[w++] = L->large[i];
    }
    L->nlarge = w;
}

/* Add the pending large objects below `limit` to the table. */
static void flush_large(rs_heap *h, load_state *L, uint64_t limit)
{
    while (L->large_pos < L->nlarge && L->large[L->large_pos].addr < limit) {
        large_obj *lo = &L->large[L->large_pos++];
        if (h->nobj && lo->addr <= h->addr[h->nobj - 1]) {
            rs_warn(h, "large object at 0x%llx overlaps an arena; skipped",
                    (unsigned long long)lo->addr);
        } else if (add_object(h, L, lo->addr, lo->refcnt, lo->info, lo->tidx, lo->blk)) {
            rs_grow(&h->large_idx, &h->caplarge, h->nlarge + 1, sizeof *h->large_idx);
            h->large_idx[h->nlarge++] = (uint32_t)(h->nobj - 1);
            decode_object(h, L, (uint32_t)(h->nobj - 1), lo->data, lo->avail);
        }
        rs_xfree(lo->data);
        lo->data = NULL;
    }
}

/* ---- the arenas ------------------------------------------------------------------------ */

typedef struct arena_ref {
    uint64_t address;
    uint32_t index, ncarved;
} arena_ref;

static int arena_cmp(const void *a, const void *b)
{
    const arena_ref *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

/* Scan one pool; record its loaded blocks in P (zeroed: no objects). */
static inline __attribute__((always_inline)) void scan_pool(rs_heap *h, load_state *L,
                                                           const unsigned char *pool, size_t got,
                                                           uint64_t pool_addr,
                                                           uint32_t arena_index, rs_poolix *P)
{
    rc_pool ph;
    memcpy(&ph, pool, sizeof ph);
    if (ph.magic != RC_POOL_MAGIC)
        return; /* free pool */
    if (ph.kind != RC_KIND_PLAIN && ph.kind != RC_KIND_GC)
        return;
    if (ph.szidx >= RC_NUM_CLASSES) {
        rs_warn(h, "pool at 0x%llx: bad size class %u; skipped", (unsigned long long)pool_addr,
                ph.szidx);
        return;
    }
    if (ph.arenaindex != arena_index)
        rs_warn(h, "pool at 0x%llx: arena index %u, but it is in arena %u",
                (unsigned long long)pool_addr, ph.arenaindex, arena_index);
    size_t bsize = ((size_t)ph.szidx + 1) * RC_ALIGN;
    size_t head = ph.kind == RC_KIND_GC ? sizeof(rc_gchead) : 0;
    if (bsize < head + sizeof(rc_object)) {
        rs_warn(h, "pool at 0x%llx: blocks of %zu bytes cannot hold a collected object",
                (unsigned long long)pool_addr, bsize);
        return;
    }
    size_t nextoff = ph.nextoffset;
    if (nextoff > RC_POOL_SIZE || nextoff < RC_POOL_HEADER_SIZE) {
        rs_warn(h, "pool at 0x%llx: bad high-water offset %zu; clamped",
                (unsigned long long)pool_addr, nextoff);
        nextoff = nextoff > RC_POOL_SIZE ? RC_POOL_SIZE : RC_POOL_HEADER_SIZE;
    }
    if (nextoff > got)
        nextoff = got;
    h->pools_scanned++;
    uint32_t d = (uint32_t)(bsize / RC_ALIGN);
    P->first = (uint32_t)h->nobj;
    P->d = (uint8_t)d;
    P->magic = ((1u << 17) + d - 1) / d;
    P->head = (uint8_t)head;
    /* the blocks: those below the high-water mark that fit in the pool and
     * in what was read */
    size_t end = nextoff;
    if (end > RC_POOL_SIZE - bsize + 1)
        end = RC_POOL_SIZE - bsize + 1;
    size_t end_got = got >= bsize ? got - bsize + 1 : 0;
    if (end > end_got)
        end = end_got;
    uint32_t b = 0;
    for (size_t off = RC_POOL_HEADER_SIZE; off < end; off += bsize, b++) {
        const unsigned char *ob = pool + off + head;
        uint32_t refcnt = ld32(ob);
        if (refcnt == RC_REFCNT_FREED)
            continue;
        uint32_t info = ld32(ob + 4);
        uint32_t tidx = type_of(h, L, ld64(ob + 8));
        if (!add_object(h, L, pool_addr + off + head, refcnt, info, tidx, bsize))
            break;
        P->live[b / 64] |= (uint64_t)1 << (b % 64);
        decode_pooled(h, L, (uint32_t)(h->nobj - 1), &h->types[tidx], ob, bsize - head);
    }
    uint32_t acc = 0;
    for (uint32_t w = 0; w < RS_POOL_WORDS; w++) {
        P->rank[w] = (uint16_t)acc;
        acc += popcount64(P->live[w]);
    }
    /* the loaded blocks from block 0 on, without a gap (no bit at b or past it is set) */
    uint32_t nd = 0;
    for (uint32_t w = 0; w < RS_POOL_WORDS; w++) {
        uint64_t x = P->live[w];
        if (x != UINT64_MAX) {
            nd += (uint32_t)__builtin_ctzll(~x);
            break;
        }
        nd += 64;
    }
    P->ndense = (uint16_t)nd;
}

/* Record an arena in the address index: npools pool records, zeroed. */
static rs_poolix *index_arena(rs_heap *h, uint64_t address, uint32_t npools)
{
    size_t mask = h->arena_cap - 1;
    size_t s = arena_hash(address >> 20) & mask;
    while (h->arenas_ix[s].key != UINT64_MAX)
        s = (s + 1) & mask;
    h->arenas_ix[s] = (rs_arenaix){address >> 20, (uint32_t)h->npools, npools};
    if (!npools)
        return NULL; /* (an arena none of whose pools could be read) */
    rs_grow(&h->pools, &h->cappools, h->npools + npools, sizeof *h->pools);
    rs_poolix *P = &h->pools[h->npools];
    memset(P, 0, npools * sizeof *P);
    h->npools += npools;
    return P;
}

/* Scan arena a (the next in address order; prev_end: where the one before
 * ended): the large objects below it, then its pools in address order. */
static void scan_arena(rs_heap *h, load_state *L, const arena_ref *a, unsigned char *buf,
                       uint64_t *prev_end)
{
    if (a->address < *prev_end) {
        rs_warn(h, "arena %u at 0x%llx is listed twice or overlaps another; skipped", a->index,
                (unsigned long long)a->address);
        return;
    }
    *prev_end = a->address + RC_ARENA_SIZE;
    flush_large(h, L, a->address);
    /* Large objects inside the arena would be corruption: drop them. */
    while (L->large_pos < L->nlarge && L->large[L->large_pos].addr < *prev_end) {
        rs_warn(h, "large object at 0x%llx lies inside arena %u; skipped",
                (unsigned long long)L->large[L->large_pos].addr, a->index);
        rs_xfree(L->large[L->large_pos].data);
        L->large[L->large_pos++].data = NULL;
    }
    size_t want = (size_t)a->ncarved * RC_POOL_SIZE;
    const unsigned char *arena = view_mem(h, a->address, want);
    size_t rgot = want;
    if (!arena) {
        arena = buf;
        rgot = want ? rs_read_mem(h, a->address, buf, want) : 0;
    }
    if (rgot < want)
        rs_warn(h, "arena %u at 0x%llx: only %zu of %zu bytes readable", a->index,
                (unsigned long long)a->address, rgot, want);
    h->arenas_scanned++;
    uint32_t np = 0; /* pools with a readable header */
    while (np < a->ncarved && (size_t)np * RC_POOL_SIZE + RC_POOL_HEADER_SIZE <= rgot)
        np++;
    rs_poolix *P = index_arena(h, a->address, np);
    for (uint32_t p = 0; p < np; p++) {
        size_t off = (size_t)p * RC_POOL_SIZE;
        scan_pool(h, L, arena + off, rgot - off, a->address + off, a->index, &P[p]);
    }
}

/*
 * The arenas on two threads. The second scans those from `first` on (about
 * half the pools) while the calling one scans those before, into the same
 * object table from the index their pool headers predict (`base`: the
 * blocks in use below, and the large objects), with everything else of its
 * own: a heap h2 (sharing the object table, its room [base, capacity);
 * byte and read counts, warnings; a copy of the type table) and a load
 * state (raw edges, weak edges). scan_merge then appends its edges and pool
 * records; nothing of the objects moves unless the prediction was high.
 *
 * Only where that gives what one thread would: a core whose arenas each
 * lie in one piece of it (nothing to read: the memory reader stays on its
 * thread), none overlapping, no large object above the first of the
 * second's. It gives up (bail) at a type not loaded yet, a buffer to read
 * later, a warning or no room; the calling thread stops it (job_join) if
 * its own objects reach base. Either way the calling thread then scans
 * those arenas itself.
 */
#define PARALLEL_MIN_POOLS 512 /* 8 MiB of pools */

typedef struct scan_job {
    rs_heap h2;
    load_state L2;
    const arena_ref *refs;
    size_t first, nref;
    const unsigned char **view;   /* per arena from first on */
    rs_poolix *P;                 /* their pool records, arena after arena */
    size_t base, cap;             /* its first object; the table's capacity */
    pthread_t thread;
    int stop;                     /* (atomic) set by the calling thread */
} scan_job;

static void load_state_free(load_state *L);

static void *scan_thread(void *arg)
{
    scan_job *J = arg;
    rs_poolix *P = J->P;
    for (size_t k = J->first; k < J->nref && !J->L2.bail; k++) {
        const arena_ref *a = &J->refs[k];
        size_t want = (size_t)a->ncarved * RC_POOL_SIZE;
        for (uint32_t p = 0; p < a->ncarved && !J->L2.bail; p++) {
            if (__atomic_load_n(&J->stop, __ATOMIC_RELAXED))
                J->L2.bail = true;
            size_t off = (size_t)p * RC_POOL_SIZE;
            scan_pool(&J->h2, &J->L2, J->view[k - J->first] + off, want - off,
                      a->address + off, a->index, &P[p]);
        }
        P += a->ncarved;
    }
    if (J->h2.nwarnings || J->h2.dropped_warnings || J->L2.cut)
        J->L2.bail = true;
    return NULL;
}

/* Where the second thread starts (0: it does not), its arenas' bytes in
 * view[], and where its objects go in the table (*base). */
static size_t scan_plan(rs_heap *h, const load_state *L, const arena_ref *refs, size_t nref,
                        const unsigned char ***view, size_t *base)
{
    *view = NULL;
    size_t total = 0;
    for (size_t k = 0; k < nref; k++)
        total += refs[k].ncarved;
    if (!rs_memory_view || total < PARALLEL_MIN_POOLS || !h->ntypes ||
        rs_threads() < 2)
        return 0;
    size_t first = 0, acc = 0;
    while (first < nref && acc < total / 2)
        acc += refs[first++].ncarved;
    if (first == 0 || first >= nref)
        return 0;
    if (L->nlarge > L->large_pos && L->large[L->nlarge - 1].addr >= refs[first].address)
        return 0;
    for (size_t k = 1; k < nref; k++)
        if (refs[k].address < refs[k - 1].address + RC_ARENA_SIZE)
            return 0;
    /* the objects before: the large ones (all below), and the blocks in use
     * in the pools of the arenas before, as their headers say */
    size_t before = h->nobj + (L->nlarge - L->large_pos);
    for (size_t k = 0; k < first; k++) {
        size_t avail = 0, want = (size_t)refs[k].ncarved * RC_POOL_SIZE;
        const unsigned char *a = want ? rs_memory_view(h->mem, refs[k].address, want, &avail)
                                      : NULL;
        if (want && (!a || avail < want))
            return 0;
        for (uint32_t p = 0; p < refs[k].ncarved; p++) {
            rc_pool ph;
            memcpy(&ph, a + (size_t)p * RC_POOL_SIZE, sizeof ph);
            if (ph.magic == RC_POOL_MAGIC)
                before += ph.nused;
        }
    }
    const unsigned char **v = rs_xmalloc((nref - first) * sizeof *v);
    size_t after = 0;
    for (size_t k = first; k < nref; k++) {
        size_t want = (size_t)refs[k].ncarved * RC_POOL_SIZE, avail = 0;
        v[k - first] = want ? rs_memory_view(h->mem, refs[k].address, want, &avail) : NULL;
        if (want && (!v[k - first] || avail < want)) {
            rs_xfree(v);
            return 0;
        }
        for (uint32_t p = 0; p < refs[k].ncarved; p++) {
            rc_pool ph;
            memcpy(&ph, v[k - first] + (size_t)p * RC_POOL_SIZE, sizeof ph);
            if (ph.magic == RC_POOL_MAGIC)
                after += ph.nused;
        }
    }
    /* Room for both (the load pre-sizes the table from the registry's count
     * up to 4M objects only): as many as the pools in the core say, a
     * pool's worth more (nused can be off), at most RS_MAX_OBJECTS. */
    size_t need = before + after + RC_POOL_SIZE / RC_ALIGN;
    if (before >= RS_MAX_OBJECTS || need > RS_MAX_OBJECTS) {
        rs_xfree(v);
        return 0;
    }
    while (h->capobj < need)
        grow_objects(h);
    *view = v;
    *base = before;
    return first;
}

static void scan_job_init(scan_job *J, rs_heap *h, const arena_ref *refs, size_t first,
                          size_t nref, const unsigned char **view, size_t base)
{
    memset(J, 0, sizeof *J);
    J->refs = refs;
    J->first = first;
    J->nref = nref;
    J->view = view;
    J->base = base;
    J->cap = h->capobj;
    size_t npools = 0;
    for (size_t k = first; k < nref; k++)
        npools += refs[k].ncarved;
    J->P = rs_xcalloc(npools ? npools : 1, sizeof *J->P);
    /* h2: h's object table from base on; its own counts and warnings; no
     * sites (describing an object for a warning then reads nothing) */
    rs_heap *h2 = &J->h2;
    *h2 = *h;
    h2->nobj = base;
    h2->xbytes = NULL;
    h2->nxbytes = h2->capxbytes = 0;
    h2->total_bytes = 0;
    h2->pools_scanned = 0;
    h2->nreads = h2->bytes_read = 0;
    h2->warnings = NULL;
    h2->nwarnings = h2->capwarnings = h2->dropped_warnings = 0;
    h2->nsites = 0;
    h2->pools = NULL;
    h2->npools = h2->cappools = 0;
    h2->arenas_ix = NULL;
    h2->large_idx = NULL;
    h2->types = rs_xmalloc((h->ntypes ? h->ntypes : 1) * sizeof *h2->types);
    memcpy(h2->types, h->types, h->ntypes * sizeof *h2->types);
    h2->captypes = h->ntypes;
    h2->type_hash = rs_xmalloc((h->type_hash_cap ? h->type_hash_cap : 1) * sizeof *h2->type_hash);
    memcpy(h2->type_hash, h->type_hash, h->type_hash_cap * sizeof *h2->type_hash);
    J->L2.last_type_idx = RS_NONE;
    J->L2.strict = true;
}

static void scan_job_free(scan_job *J)
{
    rs_heap *h2 = &J->h2;
    rs_xfree(h2->xbytes);
    for (size_t i = 0; i < h2->nwarnings; i++)
        rs_xfree(h2->warnings[i]);
    rs_xfree(h2->warnings);
    rs_xfree(h2->types);
    rs_xfree(h2->type_hash);
    load_state_free(&J->L2);
    rs_xfree(J->P);
    rs_xfree(J->view);
}

/* Wait for the second thread; drop: stop it first, its work dropped (the
 * calling thread's objects reached its). The table is whole again. */
static void job_join(rs_heap *h, load_state *L, bool drop)
{
    scan_job *J = L->job;
    if (drop)
        __atomic_store_n(&J->stop, 1, __ATOMIC_RELAXED);
    pthread_join(J->thread, NULL);
    if (drop)
        J->L2.bail = true;
    h->capobj = J->cap;
    L->job = NULL;
}

/* add_object at the end of the object table's room. */
static __attribute__((noinline)) bool room_for_objects(rs_heap *h, load_state *L)
{
    if (L->strict) { /* the second thread: at its end */
        L->bail = true;
        return false;
    }
    if (L->job)
        job_join(h, L, true);
    if (h->nobj == h->capobj)
        grow_objects(h);
    return true;
}

/* Append what the second thread found to h and L (h's scan has reached its
 * first arena); false (nothing changed) if it gave up or there is too much. */
static bool scan_merge(rs_heap *h, load_state *L, scan_job *J)
{
    rs_heap *h2 = &J->h2;
    load_state *L2 = &J->L2;
    if (L2->bail || L2->cut || L2->next || L2->nruns || h2->nwarnings || h2->dropped_warnings ||
        L->raw.n + L2->raw.n > RS_MAX_EDGES)
        return false;
    size_t n0 = h->nobj, nb = h2->nobj - J->base, e0 = L->raw.n;
    /* (n0 <= base: the calling thread stops at base) */
    size_t gap = J->base - n0;
    if (gap) { /* fewer objects before than predicted: close the gap */
        memmove(h->addr + n0, h->addr + J->base, nb * sizeof *h->addr);
        memmove(h->tidx + n0, h->tidx + J->base, nb * sizeof *h->tidx);
        memmove(h->refcnt + n0, h->refcnt + J->base, nb * sizeof *h->refcnt);
        memmove(h->info + n0, h->info + J->base, nb * sizeof *h->info);
        memmove(h->blk + n0, h->blk + J->base, nb * sizeof *h->blk);
    }
    for (size_t i = 0; i < nb; i++)
        h->out_off[n0 + i] = (uint32_t)(h->out_off[J->base + i] + e0);
    h->nobj = n0 + nb;
    for (size_t i = 0; i < h2->nxbytes; i++) {
        rs_xbytes x = h2->xbytes[i];
        x.obj -= (uint32_t)gap;
        xbytes_push(h, x);
    }
    h->total_bytes += h2->total_bytes;
    h->pools_scanned += h2->pools_scanned;
    h->nreads += h2->nreads;
    h->bytes_read += h2->bytes_read;

    /* the raw edges after L's, escapes renumbered past L's */
    edge_vec *v = &L->raw, *b = &L2->raw;
    if (v->cap < e0 + b->n) {
        v->w = rs_xrealloc(v->w, (e0 + b->n) * sizeof *v->w);
        v->cap = e0 + b->n;
    }
    if (!b->nesc) {
        memcpy(v->w + e0, b->w, b->n * sizeof *v->w);
    } else {
        for (size_t e = 0; e < b->n; e++) {
            uint64_t w = b->w[e];
            v->w[e0 + e] = w & EV_ESC ? EV_ESC | ((w & ~EV_ESC) + v->nesc) : w;
        }
        if (v->capesc < v->nesc + b->nesc) {
            v->capesc = v->nesc + b->nesc;
            v->esc_dst = rs_xrealloc(v->esc_dst, v->capesc * sizeof *v->esc_dst);
            v->esc_lab = rs_xrealloc(v->esc_lab, v->capesc * sizeof *v->esc_lab);
        }
        memcpy(v->esc_dst + v->nesc, b->esc_dst, b->nesc * sizeof *v->esc_dst);
        memcpy(v->esc_lab + v->nesc, b->esc_lab, b->nesc * sizeof *v->esc_lab);
        v->nesc += b->nesc;
    }
    v->n = e0 + b->n;
    for (size_t i = 0; i < L2->nwk; i++)
        weak_edge(L, L2->wk_src[i] - (uint32_t)gap, L2->wk_dst[i], L2->wk_lab[i]);

    /* the pool records, in the address index after those of the arenas before */
    const rs_poolix *src = J->P;
    for (size_t k = J->first; k < J->nref; k++) {
        const arena_ref *a = &J->refs[k];
        h->arenas_scanned++;
        if (a->ncarved) { /* counted as scan_arena's view_mem counts it */
            h->nreads++;
            h->bytes_read += (uint64_t)a->ncarved * RC_POOL_SIZE;
        }
        rs_poolix *P = index_arena(h, a->address, a->ncarved);
        for (uint32_t p = 0; p < a->ncarved; p++) {
            P[p] = src[p];
            if (P[p].d)
                P[p].first -= (uint32_t)gap;
        }
        src += a->ncarved;
    }
    return true;
}

static void scan_arenas(rs_heap *h, load_state *L, rs_progress_fn progress, void *pctx)
{
    uint32_t n = h->reg.narenas;
    if (!h->reg.arenas || !n) {
        flush_large(h, L, UINT64_MAX);
        return;
    }
    if (n > RS_MAX_ARENAS) {
        rs_warn(h, "registry says %u arena slots; reading %u", n, RS_MAX_ARENAS);
        n = RS_MAX_ARENAS;
    }
    rc_arena *tab = rs_xmalloc((size_t)n * sizeof *tab);
    size_t got = rs_read_mem(h, (uint64_t)(uintptr_t)h->reg.arenas, tab, (size_t)n * sizeof *tab) /
                 sizeof *tab;
    if (got < n)
        rs_warn(h, "arena table: only %zu of %u slots readable", got, n);
    arena_ref *refs = rs_xmalloc((got ? got : 1) * sizeof *refs);
    size_t nref = 0;
    for (size_t i = 0; i < got; i++) {
        if (!tab[i].address)
            continue;
        if (tab[i].address & (RC_ARENA_SIZE - 1)) {
            rs_warn(h, "arena %zu: address 0x%llx is not aligned to 1 MiB; skipped", i,
                    (unsigned long long)tab[i].address);
            continue;
        }
        uint32_t nc = tab[i].ncarved;
        if (nc > RC_POOLS_PER_ARENA) {
            rs_warn(h, "arena %zu: %u pools carved (at most %zu); clamped", i, nc,
                    (size_t)RC_POOLS_PER_ARENA);
            nc = RC_POOLS_PER_ARENA;
        }
        refs[nref++] = (arena_ref){tab[i].address, (uint32_t)i, nc};
    }
    rs_xfree(tab);
    RS_QSORT(refs, nref, sizeof *refs, arena_cmp);
    size_t cap = 16;
    while (cap < nref * 2)
        cap *= 2;
    h->arena_cap = cap;
    h->arenas_ix = rs_xmalloc(cap * sizeof *h->arenas_ix);
    for (size_t i = 0; i < cap; i++)
        h->arenas_ix[i].key = UINT64_MAX;

    /* the second half of the arenas on a second thread, if it may */
    const unsigned char **view;
    size_t base = 0;
    size_t split = scan_plan(h, L, refs, nref, &view, &base);
    scan_job *J = NULL;
    if (split) {
        J = rs_xmalloc(sizeof *J);
        scan_job_init(J, h, refs, split, nref, view, base);
        if (pthread_create(&J->thread, NULL, scan_thread, J) == 0) {
            h->capobj = base; /* (this thread's room: room_for_objects) */
            L->job = J;
        } else {
            scan_job_free(J);
            rs_xfree(J);
            J = NULL;
            split = 0;
        }
    }
    unsigned char *buf = rs_xmalloc(RC_ARENA_SIZE);
    uint64_t prev_end = 0;
    size_t k = 0;
    for (; k < (split ? split : nref); k++) {
        scan_arena(h, L, &refs[k], buf, &prev_end);
        if (progress)
            progress(pctx, "arenas", k + 1, nref);
    }
    if (J) {
        flush_large(h, L, refs[split].address); /* (none lies above: scan_plan) */
        if (L->job)
            job_join(h, L, false);
        if (scan_merge(h, L, J)) {
            k = nref;
            if (progress)
                progress(pctx, "arenas", nref, nref);
        }
        scan_job_free(J);
        rs_xfree(J);
    }
    for (; k < nref; k++) {
        scan_arena(h, L, &refs[k], buf, &prev_end);
        if (progress)
            progress(pctx, "arenas", k + 1, nref);
    }
    rs_xfree(buf);
    rs_xfree(refs);
    flush_large(h, L, UINT64_MAX);
}

/* ---- the address index ------------------------------------------------------------------ */

/* The object starting at offset `off` of the pool P, or RS_NONE. */
static inline uint32_t pool_find(const rs_poolix *P, uint64_t off)
{
    if (!P->d || off < RC_POOL_HEADER_SIZE + P->head)
        return RS_NONE;
    /* x < 2040 units of 8 bytes, d <= 64: (x * magic) >> 17 is x / d */
    uint32_t x = (uint32_t)(off - RC_POOL_HEADER_SIZE - P->head) / RC_ALIGN;
    uint32_t b = (x * P->magic) >> 17;
    if (x != b * P->d)
        return RS_NONE; /* inside a block, not at its object */
    if (b < P->ndense)
        return P->first + b;
    uint64_t w = P->live[b / 64], bit = (uint64_t)1 << (b % 64);
    if (!(w & bit))
        return RS_NONE;
    return P->first + P->rank[b / 64] + popcount64(w & (bit - 1));
}

static uint32_t find_large(const rs_heap *h, uint64_t addr)
{
    size_t lo = 0, hi = h->nlarge;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t a = h->addr[h->large_idx[mid]];
        if (a == addr)
            return h->large_idx[mid];
        if (a < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return RS_NONE;
}

/* What find_object found last: the two arenas (most recent first; NULL:
 * none yet) and the pool of the last object found in a pool. The references
 * of a run of objects tend to go to few arenas (their own and that of some
 * shared object), and mostly into the pool of the object before (a chain, a
 * list's items, a cycle's partner). Start with ARENA_CACHE_INIT. */
typedef struct arena_cache {
    const rs_arenaix *a[2];
    const rs_poolix *pool;
    uint64_t pool_base; /* pool's address */
} arena_cache;
/* Before the first: a pool of no objects at the top of the address space
 * (the kernel's half: no object is there). */
static const rs_poolix no_pool;
#define ARENA_CACHE_INIT {{NULL, NULL}, &no_pool, ~(uint64_t)(RC_POOL_SIZE - 1)}

/* rs_find_object, inline for the loops that resolve every edge. */
static inline __attribute__((always_inline)) uint32_t find_object(const rs_heap *h, uint64_t addr,
                                                                  arena_cache *c)
{
    if (addr & (RC_ALIGN - 1))
        return RS_NONE;
    if (addr - c->pool_base < RC_POOL_SIZE)
        return pool_find(c->pool, addr - c->pool_base);
    uint64_t key = addr >> 20;
    const rs_arenaix *A = c->a[0];
    if (!A || A->key != key) {
        A = c->a[1];
        if (!A || A->key != key) {
            A = NULL;
            size_t mask = h->arena_cap - 1;
            for (size_t s = arena_hash(key) & mask;
                 h->arena_cap && h->arenas_ix[s].key != UINT64_MAX; s = (s + 1) & mask) {
                if (h->arenas_ix[s].key == key) {
                    A = &h->arenas_ix[s];
                    break;
                }
            }
            if (!A)
                return find_large(h, addr);
        }
        c->a[1] = c->a[0];
        c->a[0] = A;
    }
    /* inside a scanned arena: no large object lies there (scan_arenas) */
    uint32_t p = (uint32_t)((addr >> 14) & (RC_POOLS_PER_ARENA - 1));
    if (p >= A->npools)
        return RS_NONE;
    c->pool = &h->pools[A->pool0 + p];
    c->pool_base = addr & ~(uint64_t)(RC_POOL_SIZE - 1);
    return pool_find(c->pool, addr - c->pool_base);
}

uint32_t rs_find_object(const rs_heap *h, uint64_t addr)
{
    arena_cache c = ARENA_CACHE_INIT;
    return find_object(h, addr, &c);
}

uint32_t rs_find_containing(const rs_heap *h, uint64_t addr)
{
    size_t lo = 0, hi = h->nobj;
    while (lo < hi) { /* first object with address > addr */
        size_t mid = lo + (hi - lo) / 2;
        if (h->addr[mid] <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return RS_NONE;
    uint32_t i = (uint32_t)(lo - 1);
    /* The block starts before the object for tracked kinds (gc head) or large
     * objects (header); the object itself runs to the end of the block. */
    uint64_t head = rs_blk(h, i) > RC_SMALL_MAX ? sizeof(rc_large) : 0; /* from the large list */
    if (rs_obj_type(h, i)->gc)
        head += sizeof(rc_gchead);
    uint64_t end = h->addr[i] - head + rs_blk(h, i);
    if (addr < end)
        return i;
    /* maybe the gc head / large header of the next object */
    if (lo < h->nobj) {
        uint32_t j = (uint32_t)lo;
        uint64_t hj = rs_blk(h, j) > RC_SMALL_MAX ? sizeof(rc_large) : 0;
        if (rs_obj_type(h, j)->gc)
            hj += sizeof(rc_gchead);
        if (addr >= h->addr[j] - hj)
            return j;
    }
    return RS_NONE;
}

/* ---- edges ----------------------------------------------------------------------------- */

static int run_cmp(const void *a, const void *b)
{
    const ext_run *x = a, *y = b;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return x->field < y->field ? -1 : x->field > y->field;
}

/* Resolve the edges of queued buffers in place: object indexes over
 * xe.w's own bytes (as build_edges does for the inline ones), the good
 * edges of each run compacted to its front, empty runs dropped, the runs
 * sorted by (source, field). Bad ones go to *bad, with (in *bad_key) how
 * many inline edges had been decoded before them. Returns the good edges. */
static size_t ext_resolve(rs_heap *h, load_state *L, rs_badedge **bad, size_t *nbad,
                          size_t **bad_key)
{
    unsigned char *xd = (unsigned char *)L->xe.w;
    arena_cache c = ARENA_CACHE_INIT;
    size_t batch = 0, cap = 0, good = 0, nr = 0;
    for (size_t r = 0; r < L->nruns; r++) {
        ext_run R = L->runs[r];
        size_t w = R.first;
        uint64_t prev = UINT64_MAX;
        for (size_t e = R.first; e < R.first + R.n; e++) {
            uint64_t target = ev_dst(&L->xe, e);
            uint64_t lab = xe_lab(&L->xe, e, R.field, &prev);
            uint32_t d = find_object(h, target, &c);
            if (d != RS_NONE) {
                memcpy(xd + w++ * 4, &d, 4);
                continue;
            }
            while (batch + 1 < L->nbatches && L->batches[batch + 1].first <= e)
                batch++;
            h->nbad_total++;
            if (*nbad < 100000) {
                rs_grow(bad, &cap, *nbad + 1, sizeof **bad);
                *bad_key = rs_xrealloc(*bad_key, cap * sizeof **bad_key);
                (*bad)[*nbad] = (rs_badedge){R.src, lab, target};
                (*bad_key)[(*nbad)++] = L->batches[batch].nraw;
            }
        }
        R.n = w - R.first;
        good += R.n;
        if (R.n)
            L->runs[nr++] = R;
    }
    L->nruns = nr;
    RS_QSORT(L->runs, L->nruns, sizeof *L->runs, run_cmp);
    return good;
}

static bool redecode(rs_heap *h, uint32_t src, load_state *L);
static uint64_t *raw_labels(const load_state *L);
static void load_state_free(load_state *L);

/* The labels of bad edges found resolving L->raw, whose lab says which of
 * its source's edges there each is: the raw words are indexes by now, and
 * an item's label needs the words before it (ev_lab_after), so the source
 * is decoded again, once for all its bad edges (they come source by
 * source). */
static void bad_labels(rs_heap *h, rs_badedge *bad, size_t nbad)
{
    uint32_t src = RS_NONE;
    uint64_t *il = NULL;
    size_t nil = 0;
    for (size_t k = 0; k < nbad; k++) {
        if (bad[k].src != src) {
            rs_xfree(il);
            il = NULL;
            nil = 0;
            src = bad[k].src;
            load_state L;
            if (redecode(h, src, &L)) {
                il = raw_labels(&L);
                nil = L.raw.n;
            }
            load_state_free(&L);
        }
        bad[k].lab = bad[k].lab < nil ? il[bad[k].lab] : RS_LAB(0xFFFF, 0);
    }
    rs_xfree(il);
}

/* Targets resolved lately, direct-mapped by address, with find_object's
 * cache: shared objects (a common int, a type's instance dict, a module's
 * globals) are the pools. Empty slots hold address 1, which is no object:
 * RS_NONE (a bad reference may well be 1). One per thread resolving. */
enum { MEMO = 64 };
typedef struct target_memo {
    arena_cache c;
    uint64_t key[MEMO];
    uint32_t val[MEMO];
} target_memo;

static void target_memo_init(target_memo *m)
{
    m->c = (arena_cache)ARENA_CACHE_INIT;
    for (size_t k = 0; k < MEMO; k++) {
        m->key[k] = 1;
        m->val[k] = RS_NONE;
    }
}

/* The object at target (RS_NONE: none), as find_object says. */
static inline __attribute__((always_inline)) uint32_t memo_resolve(const rs_heap *h,
                                                                   target_memo *m,
                                                                   uint64_t target)
{
    size_t slot = (target >> 3) & (MEMO - 1);
    if (m->key[slot] == target)
        return m->val[slot];
    uint32_t d = find_object(h, target, &m->c);
    m->key[slot] = target;
    m->val[slot] = d;
    return d;
}

/*
 * Resolve raw edges from .. to-1 of L->raw to object indexes, up to the
 * first that points at no object; returns where it stopped (to: none
 * bad). Edge e's index goes to bytes 4(e - base) .. of out, which may be
 * the raw words' own (base 0: edge e's index lands on words read already,
 * as 4e <= 8e), and counts in deg[]. Reads the heap only: a second
 * thread runs it on the other half of the edges (build_edges).
 */
static size_t resolve_run(const rs_heap *h, const edge_vec *raw, size_t from, size_t to,
                          unsigned char *out, size_t base, uint32_t *deg)
{
    target_memo m;
    target_memo_init(&m);
    size_t e = from;
    for (; e < to; e++) {
        uint32_t d = memo_resolve(h, &m, ev_dst(raw, e));
        if (d == RS_NONE)
            break;
        memcpy(out + (e - base) * 4, &d, 4);
        deg[d]++;
    }
    return e;
}

/* The second thread's half of the edges: its indexes and in-degrees in
 * tables of its own (the first half's words are being read). */
typedef struct resolve_job {
    const rs_heap *h;
    const edge_vec *raw;
    size_t from, to, stop;
    uint32_t *dst, *deg;
} resolve_job;

static void *resolve_thread(void *arg)
{
    resolve_job *J = arg;
    J->stop = resolve_run(J->h, J->raw, J->from, J->to, (unsigned char *)J->dst, J->from, J->deg);
    return NULL;
}

/* Two threads take a half each from this many edges on. */
#define PARALLEL_MIN_EDGES 500000

static void build_edges(rs_heap *h, load_state *L)
{
    size_t n = h->nobj;
    if (!h->out_off)
        h->out_off = rs_xmalloc(sizeof *h->out_off);
    uint32_t *off = h->out_off;
    rs_badedge *ibad = NULL, *xbad = NULL;
    size_t nibad = 0, nxbad = 0, capibad = 0;
    size_t *ikey = NULL, *xkey = NULL;

    /* The buffers' edges first (their runs sorted by source then). */
    size_t xleft = L->xe.n ? ext_resolve(h, L, &xbad, &nxbad, &xkey) : 0;
    const ext_run *runs = L->runs;

    /* The inline edges: resolve, compacting the good ones in place, the
     * object indexes over the raw words' own bytes (index w goes to bytes
     * 4w .. 4w+3, which held raw words read already, as w <= e). off[i]
     * turns from object i's first raw edge into its first good one. Bad
     * ones are kept for `check` with their raw index (to order them with
     * those of the buffers). The merge below needs the fields of the good
     * inline edges of the sources that have buffers: those go to sfield,
     * source after source. */
    typedef struct sfield_t {
        uint32_t src, field;
    } sfield_t;
    edge_vec *raw = &L->raw;
    unsigned char *dbytes = (unsigned char *)raw->w;
    sfield_t *sfield = NULL;
    size_t nsf = 0, capsf = 0, rp = 0;
    size_t w = 0;
    target_memo m;
    target_memo_init(&m);
    /* Every object's heap in-degree, counted as its references resolve
     * (rs_heap.deg): the collector mirror and the reconciliation would each
     * take another pass over all the edges to count them. */
    uint32_t *deg = rs_xcalloc(n ? n : 1, sizeof *deg);
    /* Without buffers to merge, the edges up to the first bad one resolve in
     * one run, the offsets unchanged (every edge there stays where it is):
     * the objects' loop below takes over at the first bad edge, if any. */
    size_t i0 = 0, e0 = 0;
    if (!L->nruns) {
        /* Many edges: the second half on a second thread. Its work counts
         * only if the first half has no bad edge (else the objects' loop
         * below does it all again from there, one by one). */
        resolve_job J = {h, raw, raw->n / 2, raw->n, 0, NULL, NULL};
        pthread_t t;
        bool two = raw->n >= PARALLEL_MIN_EDGES && rs_threads() > 1;
        if (two) {
            J.dst = rs_xmalloc((J.to - J.from) * sizeof *J.dst);
            J.deg = rs_xcalloc(n ? n : 1, sizeof *J.deg);
            two = pthread_create(&t, NULL, resolve_thread, &J) == 0;
            if (!two) {
                rs_xfree(J.dst);
                rs_xfree(J.deg);
            }
        }
        e0 = resolve_run(h, raw, 0, two ? J.from : raw->n, dbytes, 0, deg);
        if (two) {
            pthread_join(t, NULL);
            if (e0 == J.from) {
                memcpy(dbytes + J.from * 4, J.dst, (J.stop - J.from) * 4);
                for (size_t k = 0; k < n; k++)
                    deg[k] += J.deg[k];
                e0 = J.stop;
            }
            rs_xfree(J.dst);
            rs_xfree(J.deg);
        }
        w = e0;
        /* the object of edge e0: the last whose edges start at or before it */
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (off[mid] <= e0)
                lo = mid + 1;
            else
                hi = mid;
        }
        i0 = e0 == raw->n ? n : lo - 1; /* (lo >= 1: off[0] = 0 <= e0) */
    }
    for (size_t i = i0; i < n; i++) {
        size_t a = off[i], b = i + 1 < n ? off[i + 1] : raw->n, from = a;
        if (i == i0 && e0 > a)
            from = e0; /* (its edges before e0 are resolved, in place: off[i] stays) */
        else
            off[i] = (uint32_t)w;
        while (rp < L->nruns && runs[rp].src < i)
            rp++;
        bool merged = rp < L->nruns && runs[rp].src == i;
        for (size_t e = from; e < b; e++) {
            uint64_t target = ev_dst(raw, e);
            uint32_t d = memo_resolve(h, &m, target);
            if (d != RS_NONE) {
                if (merged) {
                    rs_grow(&sfield, &capsf, nsf + 1, sizeof *sfield);
                    sfield[nsf++] = (sfield_t){(uint32_t)i, ev_field(raw, e)};
                }
                memcpy(dbytes + w++ * 4, &d, 4);
                deg[d]++;
                continue;
            }
            h->nbad_total++;
            if (nibad < 100000) {
                rs_grow(&ibad, &capibad, nibad + 1, sizeof *ibad);
                ikey = rs_xrealloc(ikey, capibad * sizeof *ikey);
                /* (its label once the loop is done: e - a for now) */
                ibad[nibad] = (rs_badedge){(uint32_t)i, e - a, target};
                ikey[nibad++] = e;
            }
        }
    }
    off[n] = (uint32_t)w;
    uint32_t *dst = (uint32_t *)(void *)(dbytes ? dbytes : rs_xmalloc(sizeof *dst));
    raw->w = NULL;
    bad_labels(h, ibad, nibad);

    if (xleft) {
        /* Merge each source's buffer edges in by label, in place from the
         * end: a source moves up by the buffer edges of the sources up to
         * it, so the sources before the first that has any stay put. A
         * buffer is one field, never an inline one's: comparing fields
         * orders them as their labels would. */
        const uint32_t *xdst = (const uint32_t *)(const void *)L->xe.w;
        if ((size_t)w + xleft > RS_MAX_EDGES) { /* keep the first, in source order */
            L->cut = true;
            size_t room = RS_MAX_EDGES - w, nr = 0;
            for (size_t r = 0; r < L->nruns; r++) {
                ext_run R = L->runs[r];
                R.n = R.n < room ? R.n : room;
                room -= R.n;
                if (R.n)
                    L->runs[nr++] = R;
            }
            L->nruns = nr;
            xleft = RS_MAX_EDGES - w;
        }
        size_t total = w + xleft;
        dst = rs_xrealloc(dst, (total ? total : 1) * sizeof *dst);
        size_t k = total;       /* next write goes to k - 1 */
        uint32_t b = off[n];    /* end of source i's inline run (old numbering) */
        size_t r = L->nruns;    /* runs[0 .. r) are of the sources not merged yet */
        size_t sp = nsf;        /* sfield[0 .. sp) are of the sources not merged yet */
        off[n] = (uint32_t)total;
        for (size_t i = n; i-- > 0 && xleft > 0;) {
            /* source i's runs are runs[rr .. r); x is the next buffer edge
             * to take (backwards) of runs[ri - 1], none if ri == rr */
            size_t rr = r;
            while (rr > 0 && runs[rr - 1].src == i)
                rr--;
            size_t ri = r, x = ri > rr ? runs[ri - 1].first + runs[ri - 1].n : 0;
            uint32_t a = off[i];
            /* the fields of source i's inline edges a .. b are
             * sfield[base .. base + b - a) (past those of sources whose
             * runs the cut dropped) */
            while (sp > 0 && sfield[sp - 1].src > i)
                sp--;
            size_t base = rr < r ? sp - (b - a) : sp;
            sp = base;
            while (b > a || ri > rr) {
                bool inl = ri == rr || (b > a && sfield[base + (b - 1 - a)].field > runs[ri - 1].field);
                k--;
                if (inl) {
                    dst[k] = dst[--b];
                    continue;
                }
                dst[k] = xdst[--x];
                deg[dst[k]]++;
                xleft--;
                if (x == runs[ri - 1].first && --ri > rr)
                    x = runs[ri - 1].first + runs[ri - 1].n;
            }
            off[i] = (uint32_t)(a + xleft); /* the buffer edges of sources before i */
            b = a;
            r = rr;
        }
        w = total;
    }
    rs_xfree(sfield);
    h->out_dst = rs_xrealloc(dst, (w ? w : 1) * sizeof *dst);
    h->nedges = off[n]; /* labels are decoded again when printed (rs_edge_lab) */
    h->deg = deg;
    edge_vec_free(&L->raw);
    edge_vec_free(&L->xe);
    rs_xfree(L->runs);
    L->runs = NULL;
    if (L->cut)
        rs_warn(h, "more than 2^32 edges: the graph is cut");

    /* bad edges in decoding order: a buffer's came after the inline edges
     * decoded before it was read */
    size_t ii = 0, xi = 0;
    while ((ii < nibad || xi < nxbad) && h->nbad < 100000) {
        bool inl = xi == nxbad || (ii < nibad && ikey[ii] < xkey[xi]);
        rs_grow(&h->bad, &h->capbad, h->nbad + 1, sizeof *h->bad);
        h->bad[h->nbad++] = inl ? ibad[ii++] : xbad[xi++];
    }
    rs_xfree(ibad);
    rs_xfree(xbad);
    rs_xfree(ikey);
    rs_xfree(xkey);

    /* weak edges: only those to live objects are kept */
    h->weak = rs_xmalloc((L->nwk ? L->nwk : 1) * sizeof *h->weak);
    for (size_t e = 0; e < L->nwk; e++) {
        uint32_t d = rs_find_object(h, L->wk_dst[e]);
        if (d == RS_NONE)
            continue;
        h->weak[h->nweak++] = (rs_weakedge){L->wk_src[e], d, L->wk_lab[e]};
    }
    rs_xfree(L->wk_src);
    rs_xfree(L->wk_dst);
    rs_xfree(L->wk_lab);
    L->wk_src = NULL;
    L->wk_dst = L->wk_lab = NULL;
}

/* ---- reverse edges, built when asked for ------------------------------------------------ */

/*
 * The reverse CSR (in_off, in_src) is built the first time something needs
 * it: `cycles`, `leaks` and `retained` do not (the dominators build their
 * own predecessors, of the nodes their search reached, in their own
 * numbering; rs_unexplained counts in-degrees in its own result, and
 * rs_indeg works one object's out from it), and at a million objects the
 * two tables are 12 MB the load no longer fills. in_off alone costs one
 * pass; in_src another.
 */
void rs_in_offsets(rs_heap *h)
{
    if (h->in_off)
        return;
    size_t n = h->nobj;
    uint32_t *in_off = rs_xcalloc(n + 1, sizeof *in_off);
    for (size_t e = 0; e < h->nedges; e++)
        in_off[h->out_dst[e] + 1]++;
    for (size_t i = 1; i <= n; i++)
        in_off[i] += in_off[i - 1];
    h->in_off = in_off;
}

void rs_in_edges(rs_heap *h)
{
    if (h->in_src)
        return;
    rs_in_offsets(h);
    size_t n = h->nobj;
    uint32_t *in_off = h->in_off, *fill = rs_xmalloc((n ? n : 1) * sizeof *fill);
    memcpy(fill, in_off, n * sizeof *fill);
    h->in_src = rs_xmalloc((in_off[n] ? in_off[n] : 1) * sizeof *h->in_src);
    /* sources in index order, one source's in the order of its edges */
    for (size_t s = 0; s < n; s++)
        for (uint32_t e = h->out_off[s]; e < h->out_off[s + 1]; e++)
            h->in_src[fill[h->out_dst[e]]++] = (uint32_t)s;
    rs_xfree(fill);
}

/* ---- edge labels, decoded again --------------------------------------------------------- */

/*
 * Labels (8 bytes an edge, 20 MB at a million objects) are needed only to
 * print a few edges, so the load drops them once the edges are merged, and
 * rs_edge_lab finds them again: it decodes the source as the load did (the
 * same bytes, the same field order, the same resolution; buffers read
 * directly) and checks that the edges it finds are the loaded ones. The
 * labels of the last source asked for are kept (a report prints the edges
 * of one object in a row).
 */
/* Free what a load_state still holds (the load frees most of it on the way,
 * as soon as it is done with it, and sets the pointers to NULL). */
static void load_state_free(load_state *L)
{
    for (size_t i = L->large_pos; i < L->nlarge; i++)
        rs_xfree(L->large[i].data);
    rs_xfree(L->large);
    edge_vec_free(&L->raw);
    edge_vec_free(&L->xe);
    rs_xfree(L->runs);
    rs_xfree(L->batches);
    rs_xfree(L->wk_src);
    rs_xfree(L->wk_dst);
    rs_xfree(L->wk_lab);
    rs_xfree(L->ext);
    rs_xfree(L->buf);
    memset(L, 0, sizeof *L);
}

/* Decode object src again as the load did (the same bytes, read again;
 * no warnings, no accounting) into L (zeroed here; load_state_free it):
 * its own edges in L->raw, its queued buffers' read and in L->xe, runs
 * sorted by field. False if it has no bytes to decode. */
static bool redecode(rs_heap *h, uint32_t src, load_state *L)
{
    memset(L, 0, sizeof *L);
    L->quiet = L->warned_array = L->warned_inline = true;
    L->last_type_idx = RS_NONE;
    /* the object's bytes, as scan_pool / scan_large had them */
    const rs_type *t = rs_obj_type(h, src);
    uint64_t blk = rs_blk(h, src), head = t->gc ? sizeof(rc_gchead) : 0;
    bool large = blk > RC_SMALL_MAX;
    uint64_t frame = head + (large ? sizeof(rc_large) : 0);
    if (blk <= frame)
        return false;
    uint64_t avail = blk - frame;
    unsigned char *copy = NULL;
    uint64_t nreads = h->nreads, bytes_read = h->bytes_read;
    if (large) {
        unsigned char first[1024]; /* scan_large read 1024 bytes from the header */
        size_t want = sizeof first - (size_t)head;
        size_t have = rs_read_mem(h, h->addr[src], first, avail < want ? (size_t)avail : want);
        avail = large_need(t, first, have, avail);
    }
    const unsigned char *bytes = view_mem(h, h->addr[src], (size_t)avail);
    if (!bytes) {
        copy = rs_xmalloc((size_t)avail);
        avail = rs_read_mem(h, h->addr[src], copy, (size_t)avail);
        bytes = copy;
    }

    decode_object(h, L, src, bytes, (size_t)avail);
    ext_flush(h, L);
    h->nreads = nreads;
    h->bytes_read = bytes_read;
    rs_xfree(copy);
    RS_QSORT(L->runs, L->nruns, sizeof *L->runs, run_cmp);
    return true;
}

/* The labels of L->raw's edges, in a new array. */
static uint64_t *raw_labels(const load_state *L)
{
    uint64_t *il = rs_xmalloc((L->raw.n ? L->raw.n : 1) * sizeof *il);
    for (size_t e = 0; e < L->raw.n; e++)
        il[e] = ev_lab_after(&L->raw, e, e ? il[e - 1] : RS_NONE_LAB);
    return il;
}

static void relabel(rs_heap *h, uint32_t src)
{
    uint32_t a = h->out_off[src], n = h->out_off[src + 1] - a;
    rs_grow(&h->lab_vals, &h->lab_cap, n ? n : 1, sizeof *h->lab_vals);
    h->lab_src = src;
    for (uint32_t k = 0; k < n; k++)
        h->lab_vals[k] = RS_LAB(0xFFFF, 0);
    load_state L;
    if (!n || !redecode(h, src, &L)) {
        if (n)
            load_state_free(&L);
        return;
    }

    /* resolve; merge the inline edges and the buffers' by label (each in
     * label order already, the runs sorted by field) */
    uint64_t *xl = rs_xmalloc((L.xe.n ? L.xe.n : 1) * sizeof *xl); /* the buffers' labels */
    uint64_t *il = raw_labels(&L); /* the object's own */
    for (size_t q = 0; q < L.nruns; q++) {
        uint64_t prev = UINT64_MAX;
        for (size_t e = L.runs[q].first; e < L.runs[q].first + L.runs[q].n; e++)
            xl[e] = xe_lab(&L.xe, e, L.runs[q].field, &prev);
    }
    arena_cache c = ARENA_CACHE_INIT;
    size_t i = 0, r = 0, x = L.nruns ? L.runs[0].first : 0, k = 0;
    bool ok = true;
    for (;;) {
        while (i < L.raw.n && find_object(h, ev_dst(&L.raw, i), &c) == RS_NONE)
            i++;
        uint32_t xd = RS_NONE;
        while (r < L.nruns) {
            if (x == L.runs[r].first + L.runs[r].n) {
                if (++r < L.nruns)
                    x = L.runs[r].first;
                continue;
            }
            xd = find_object(h, ev_dst(&L.xe, x), &c);
            if (xd != RS_NONE)
                break;
            x++;
        }
        bool have_i = i < L.raw.n, have_x = r < L.nruns;
        if (!have_i && !have_x)
            break;
        bool inl = have_i && (!have_x || il[i] < xl[x]);
        uint32_t d = inl ? find_object(h, ev_dst(&L.raw, i), &c) : xd;
        uint64_t lab = inl ? il[i++] : xl[x++];
        if (k >= n || h->out_dst[a + k] != d) {
            ok = false;
            break;
        }
        h->lab_vals[k++] = lab;
    }
    if (!ok || k != n)
        for (k = 0; k < n; k++)
            h->lab_vals[k] = RS_LAB(0xFFFF, 0);
    rs_xfree(xl);
    rs_xfree(il);
    load_state_free(&L);
}

uint64_t rs_edge_lab(rs_heap *h, uint32_t src, uint32_t e)
{
    if (src >= h->nobj || e < h->out_off[src] || e >= h->out_off[src + 1])
        return RS_LAB(0xFFFF, 0);
    if (h->lab_src != src)
        relabel(h, src);
    return h->lab_vals[e - h->out_off[src]];
}

/* ---- roots -------------------------------------------------------------------------------- */

const char *rs_root_kind_name(int kind)
{
    switch (kind) {
    case RS_ROOT_REGISTERED: return "registered root";
    case RS_ROOT_GLOBAL: return "C global";
    case RS_ROOT_STACK: return "stack";
    case RS_ROOT_LOCAL: return "local";
    case RS_ROOT_REGISTER: return "register";
    case RS_ROOT_OTHER: return "other";
    case RS_ROOT_RUNTIME: return "runtime";
    case RS_ROOT_UNEXPLAINED: return "unexplained";
    default: return "?";
    }
}

static void push_root(rs_heap *h, int kind, const char *label, uint64_t slot, uint64_t value)
{
    rs_grow(&h->roots, &h->caproots, h->nroots + 1, sizeof *h->roots);
    rs_root *r = &h->roots[h->nroots++];
    r->kind = kind;
    r->label = rs_intern(h, label ? label : "?");
    r->slot = slot;
    r->value = value;
    r->obj = RS_NONE;
    r->counted = true;
}

RS_EXPORT int rs_heap_add_root(rs_heap *h, int kind, const char *label, uint64_t slot,
                               uint64_t value)
{
    if (!h)
        return -1;
    if (kind < RS_ROOT_REGISTERED || kind > RS_ROOT_OTHER)
        kind = RS_ROOT_OTHER;
    if (h->loaded) {
        uint32_t o = rs_find_object(h, value);
        if (o == RS_NONE)
            return 0;
        push_root(h, kind, label, slot, value);
        rs_root *r = &h->roots[h->nroots - 1];
        r->obj = o;
        for (size_t i = 0; i + 1 < h->nroots; i++)
            if (slot && h->roots[i].slot == slot)
                r->counted = false;
        /* analyses that depend on roots are stale now */
        rs_xfree(h->rootcnt);
        h->rootcnt = NULL;
        h->nrootcnt = 0;
        rs_xfree(h->unexplained);
        h->unexplained = NULL;
        if (h->dom) {
            rs_xfree(h->dom->idom);
            rs_xfree(h->dom->retained);
            rs_xfree(h->dom->rcount);
            rs_xfree(h->dom);
            h->dom = NULL;
        }
        return 1;
    }
    push_root(h, kind, label, slot, value);
    return 0;
}

typedef struct slot_ref {
    uint64_t slot;
    uint32_t idx;
} slot_ref;

static int slot_cmp(const void *a, const void *b)
{
    const slot_ref *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Registered roots and the registry's own pointers go first; the front end's
 * roots (added before load) follow. A slot seen twice counts once. */
static void load_roots(rs_heap *h)
{
    rs_root *fe = h->roots;
    size_t nfe = h->nroots;
    h->roots = NULL;
    h->nroots = h->caproots = 0;

    uint32_t n = h->reg.nroots;
    if (h->reg.roots && n) {
        if (n > RS_MAX_ROOTS) {
            rs_warn(h, "registry says %u roots; reading %u", n, RS_MAX_ROOTS);
            n = RS_MAX_ROOTS;
        }
        rc_root_entry *e = rs_xmalloc((size_t)n * sizeof *e);
        size_t got = rs_read_mem(h, (uint64_t)(uintptr_t)h->reg.roots, e, (size_t)n * sizeof *e) /
                     sizeof *e;
        if (got < n)
            rs_warn(h, "root table: only %zu of %u entries readable", got, n);
        for (size_t i = 0; i < got; i++) {
            uint64_t slot = (uint64_t)(uintptr_t)e[i].slot;
            if (!slot)
                continue;
            uint64_t value = 0;
            if (!read_full(h, slot, &value, 8)) {
                rs_warn(h, "registered root %zu: slot 0x%llx is unreadable", i,
                        (unsigned long long)slot);
                continue;
            }
            const char *name = rs_target_string(h, (uint64_t)(uintptr_t)e[i].name);
            push_root(h, RS_ROOT_REGISTERED, name ? name : "?", slot, value);
        }
        rs_xfree(e);
    }
    push_root(h, RS_ROOT_RUNTIME, "globals", h->regaddr + offsetof(rc_registry, globals),
              (uint64_t)(uintptr_t)h->reg.globals);
    push_root(h, RS_ROOT_RUNTIME, "gc.garbage", h->regaddr + offsetof(rc_registry, garbage),
              (uint64_t)(uintptr_t)h->reg.garbage);
    push_root(h, RS_ROOT_RUNTIME, "finalizers", h->regaddr + offsetof(rc_registry, finalizers),
              (uint64_t)(uintptr_t)h->reg.finalizers);
    for (size_t i = 0; i < nfe; i++)
        push_root(h, fe[i].kind, fe[i].label, fe[i].slot, fe[i].value);
    rs_xfree(fe);

    /* resolve, keep only roots that hold a live object */
    size_t w = 0;
    for (size_t i = 0; i < h->nroots; i++) {
        rs_root r = h->roots[i];
        r.obj = rs_find_object(h, r.value);
        if (r.obj == RS_NONE) {
            if (r.kind == RS_ROOT_REGISTERED && r.value)
                rs_warn(h, "registered root '%s' holds 0x%llx, which is no live object",
                        r.label, (unsigned long long)r.value);
            if (r.kind == RS_ROOT_RUNTIME && r.value)
                rs_warn(h, "registry %s points at 0x%llx, which is no live object", r.label,
                        (unsigned long long)r.value);
            continue;
        }
        h->roots[w++] = r;
    }
    h->nroots = w;
    slot_ref *sr = rs_xmalloc((w ? w : 1) * sizeof *sr);
    size_t ns = 0;
    for (size_t i = 0; i < w; i++)
        if (h->roots[i].slot)
            sr[ns++] = (slot_ref){h->roots[i].slot, (uint32_t)i};
    RS_QSORT(sr, ns, sizeof *sr, slot_cmp);
    for (size_t i = 1; i < ns; i++)
        if (sr[i].slot == sr[i - 1].slot)
            h->roots[sr[i].idx].counted = false;
    rs_xfree(sr);

    h->obj_globals = h->obj_garbage = h->obj_finalizers = RS_NONE;
    h->obj_globals = rs_find_object(h, (uint64_t)(uintptr_t)h->reg.globals);
    h->obj_garbage = rs_find_object(h, (uint64_t)(uintptr_t)h->reg.garbage);
    h->obj_finalizers = rs_find_object(h, (uint64_t)(uintptr_t)h->reg.finalizers);
}

/* ---- the public entry points ------------------------------------------------------------ */

static void set_err(rs_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(rs_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

RS_EXPORT rs_heap *rs_heap_new(rs_memory mem, uint64_t registry, rs_error *err)
{
    if (!mem.read) {
        set_err(err, "rs_heap_new: no memory reader");
        return NULL;
    }
    if (!registry) {
        set_err(err, "rs_heap_new: the address of rc_debug_registry is 0 (symbol not found?)");
        return NULL;
    }
    rs_heap *h = rs_xcalloc(1, sizeof *h);
    h->mem = mem;
    h->regaddr = registry;
    h->obj_globals = h->obj_garbage = h->obj_finalizers = RS_NONE;
    h->lab_src = RS_NONE;
    return h;
}

RS_EXPORT void rs_heap_set_symbolizer(rs_heap *h, rs_symbolize_fn fn, void *ctx)
{
    if (!h)
        return;
    h->symbolize = fn;
    h->symbolize_ctx = ctx;
}

static void free_analyses(rs_heap *h)
{
    if (h->gc) {
        rs_xfree(h->gc->lists);
        rs_xfree(h->gc->groups);
        rs_xfree(h->gc->state);
        rs_xfree(h->gc->group);
        rs_xfree(h->gc->role);
        rs_xfree(h->gc);
        h->gc = NULL;
    }
    if (h->dom) {
        rs_xfree(h->dom->idom);
        rs_xfree(h->dom->retained);
        rs_xfree(h->dom->rcount);
        rs_xfree(h->dom);
        h->dom = NULL;
    }
    rs_xfree(h->unexplained);
    h->unexplained = NULL;
    rs_xfree(h->rootcnt);
    h->rootcnt = NULL;
    h->nrootcnt = 0;
}

RS_EXPORT void rs_heap_free(rs_heap *h)
{
    if (!h)
        return;
    free_analyses(h);
    for (size_t i = 0; i < h->nwarnings; i++)
        rs_xfree(h->warnings[i]);
    rs_xfree(h->warnings);
    while (h->strings) {
        rs_strblock *n = h->strings->next;
        rs_xfree(h->strings);
        h->strings = n;
    }
    rs_xfree(h->str_keys);
    rs_xfree(h->str_vals);
    for (size_t i = 0; i < h->ntypes; i++)
        rs_xfree(h->types[i].fields);
    rs_xfree(h->types);
    rs_xfree(h->type_hash);
    rs_xfree(h->sites);
    rs_xfree(h->addr);
    rs_xfree(h->tidx);
    rs_xfree(h->refcnt);
    rs_xfree(h->info);
    rs_xfree(h->blk);
    rs_xfree(h->xbytes);
    rs_xfree(h->arenas_ix);
    rs_xfree(h->pools);
    rs_xfree(h->large_idx);
    rs_xfree(h->out_off);
    rs_xfree(h->out_dst);
    rs_xfree(h->deg);
    rs_xfree(h->lab_vals);
    rs_xfree(h->in_off);
    rs_xfree(h->in_src);
    rs_xfree(h->weak);
    rs_xfree(h->bad);
    rs_xfree(h->roots);
    rs_xfree(h);
    rs_tables_trim();
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *phase_name(uint32_t phase)
{
    static const char *const names[] = {"idle",     "find-unreachable", "legacy", "weakrefs",
                                        "finalize", "resurrect",        "clear"};
    return phase < sizeof names / sizeof *names ? names[phase] : "unknown";
}

RS_EXPORT int rs_heap_load(rs_heap *h, rs_progress_fn progress, void *ctx, rs_error *err)
{
    if (!h) {
        set_err(err, "rs_heap_load: no heap");
        return -1;
    }
    if (h->loaded) {
        set_err(err, "rs_heap_load: the heap is loaded already");
        return -1;
    }
    double t0 = now_seconds();
    size_t got = rs_read_mem(h, h->regaddr, &h->reg, sizeof h->reg);
    if (got < offsetof(rc_registry, object_head_size)) {
        set_err(err, "cannot read rc_debug_registry at 0x%llx (%zu bytes readable)",
                (unsigned long long)h->regaddr, got);
        return -1;
    }
    if (memcmp(h->reg.magic, RC_REGISTRY_MAGIC, sizeof h->reg.magic) != 0) {
        set_err(err, "no refscope registry at 0x%llx (bad magic; not a refscope program, or a "
                     "wrong address)",
                (unsigned long long)h->regaddr);
        return -1;
    }
    if (h->reg.version != RC_REGISTRY_VERSION) {
        set_err(err, "registry version %u at 0x%llx; this engine reads version %u",
                h->reg.version, (unsigned long long)h->regaddr, RC_REGISTRY_VERSION);
        return -1;
    }
    if (got < sizeof h->reg || h->reg.size != sizeof h->reg) {
        set_err(err, "registry at 0x%llx is %u bytes (%zu readable); this engine expects %zu",
                (unsigned long long)h->regaddr, h->reg.size, got, sizeof h->reg);
        return -1;
    }
    if (h->reg.object_head_size != sizeof(rc_object) || h->reg.gc_head_size != sizeof(rc_gchead) ||
        h->reg.arena_size != RC_ARENA_SIZE || h->reg.pool_size != RC_POOL_SIZE ||
        h->reg.pool_header_size != RC_POOL_HEADER_SIZE || h->reg.align != RC_ALIGN ||
        h->reg.small_max != RC_SMALL_MAX || h->reg.type_struct_size != sizeof(rc_type) ||
        h->reg.field_struct_size != sizeof(rc_field)) {
        set_err(err, "registry layout differs from this engine's (object head %u, gc head %u, "
                     "arena %u, pool %u, type %u, field %u bytes)",
                h->reg.object_head_size, h->reg.gc_head_size, h->reg.arena_size,
                h->reg.pool_size, h->reg.type_struct_size, h->reg.field_struct_size);
        return -1;
    }
    if (!h->reg.initialized)
        rs_warn(h, "the runtime is not initialised (rc_init not called yet, or after "
                   "rc_shutdown): the heap is empty");
    if (h->reg.shutting_down)
        rs_warn(h, "the runtime was shutting down (rc_shutdown in progress)");
    if (h->reg.gc.collecting)
        rs_warn(h, "core taken during a collection (phase %s, generation %d): reference counts "
                   "and generation lists are in flux",
                phase_name(h->reg.gc.phase), h->reg.gc.collecting_generation);

    load_type_table(h);
    load_sites(h);

    load_state L;
    memset(&L, 0, sizeof L);
    L.last_type_idx = RS_NONE;
    /* Pre-size the object table from the allocator's counts, which a corrupt
     * registry can make anything: trust them up to 4M objects only (beyond,
     * the table grows by doubling as objects are found). */
    uint64_t hint = h->reg.alloc.blocks_in_use + h->reg.alloc.large_count;
    if (hint > 0 && hint <= ((uint64_t)1 << 22)) {
        size_t cap = (size_t)hint + 16;
        h->addr = rs_xmalloc(cap * sizeof *h->addr);
        h->tidx = rs_xmalloc(cap * sizeof *h->tidx);
        h->refcnt = rs_xmalloc(cap * sizeof *h->refcnt);
        h->info = rs_xmalloc(cap * sizeof *h->info);
        h->blk = rs_xmalloc(cap * sizeof *h->blk);
        h->out_off = rs_xmalloc((cap + 1) * sizeof *h->out_off);
        h->capobj = cap;
    }
    scan_large(h, &L);
    if (progress)
        progress(ctx, "large objects", L.nlarge, L.nlarge);
    scan_arenas(h, &L, progress, ctx);
    ext_flush(h, &L);
    for (size_t i = L.large_pos; i < L.nlarge; i++)
        rs_xfree(L.large[i].data);
    rs_xfree(L.large);
    rs_xfree(L.ext);
    rs_xfree(L.buf);
    L.large = NULL;
    L.nlarge = L.large_pos = 0;
    L.ext = NULL;
    L.buf = NULL;
    if (h->nobj >= RS_MAX_OBJECTS)
        rs_warn(h, "more than %u objects: the rest are not loaded", RS_MAX_OBJECTS);

    build_edges(h, &L);
    load_state_free(&L);
    if (progress)
        progress(ctx, "edges", h->nedges, h->nedges);
    if (h->nbad_total)
        rs_warn(h, "%llu references point at no live object (dangling or corrupt); see `check`",
                (unsigned long long)h->nbad_total);
    load_roots(h);
    uint64_t ncorrupt = 0, first_corrupt = 0;
    for (size_t i = 0; i < h->nobj; i++)
        if (h->refcnt[i] >= 0x80000000u && !ncorrupt++)
            first_corrupt = h->addr[i];
    if (ncorrupt)
        rs_warn(h, "%llu objects have a corrupt refcount (2^31 or more, negative as a signed "
                   "count; the first at 0x%llx): they are left out of `leaks`; see `check`",
                (unsigned long long)ncorrupt, (unsigned long long)first_corrupt);
    h->loaded = true;
    h->load_seconds = now_seconds() - t0;
    if (h->nobj == 0 && h->reg.initialized)
        rs_warn(h, "no live objects found");
    return 0;
}

/* ---- names ------------------------------------------------------------------------------ */

const char *rs_instance_name(rs_heap *h, uint32_t i)
{
    const rs_type *t = rs_obj_type(h, i);
    if (!t->tp_name_offset)
        return NULL;
    uint64_t p = 0;
    if (!read_full(h, h->addr[i] + t->tp_name_offset, &p, 8) || !p)
        return NULL;
    return rs_target_string(h, p);
}

const char *rs_closure_code(rs_heap *h, uint32_t i, char *buf, size_t size)
{
    const rs_type *t = rs_obj_type(h, i);
    if (strcmp(t->name, "closure") != 0 ||
        t->tp_name_offset != offsetof(rc_closure_object, name) ||
        rs_blk(h, i) < sizeof(rc_closure_object))
        return NULL;
    uint64_t fn = 0;
    if (!read_full(h, h->addr[i] + offsetof(rc_closure_object, fn), &fn, 8) || !fn)
        return NULL;
    buf[0] = 0;
    if (!h->symbolize || h->symbolize(h->symbolize_ctx, fn, buf, size) != 0 || !buf[0])
        snprintf(buf, size, "0x%llx", (unsigned long long)fn);
    return buf;
}

bool rs_read_weakref(rs_heap *h, uint32_t i, rc_weakref *ret)
{
    if (!rs_obj_type(h, i)->weakref || rs_blk(h, i) < sizeof *ret)
        return false;
    return read_full(h, h->addr[i], ret, sizeof *ret);
}

/* The key of entry `elem` of the dict table described by field f of src. */
static const char *dict_key(rs_heap *h, uint32_t src, const rs_field *f, uint64_t elem)
{
    uint64_t entries = 0, key = 0;
    if (!read_full(h, h->addr[src] + f->offset, &entries, 8) || !entries)
        return NULL;
    if (!read_full(h, entries + elem * sizeof(rc_dict_entry) + offsetof(rc_dict_entry, key), &key,
                   8))
        return NULL;
    return rs_target_string(h, key);
}

static const char *cell_name(rs_heap *h, uint32_t src, const rs_field *f, uint64_t elem)
{
    uint64_t names = 0, name = 0;
    if (!read_full(h, h->addr[src] + f->aux_offset, &names, 8) || !names)
        return NULL;
    if (!read_full(h, names + elem * 8, &name, 8))
        return NULL;
    return rs_target_string(h, name);
}

const char *rs_edge_label(rs_heap *h, uint32_t src, uint64_t lab, bool weak, char *buf,
                          size_t size)
{
    const rs_type *t = rs_obj_type(h, src);
    uint32_t fi = RS_LAB_FIELD(lab);
    uint64_t elem = RS_LAB_ELEM(lab);
    if (fi >= t->nfields) {
        snprintf(buf, size, "%s.?", t->name);
        return buf;
    }
    const rs_field *f = &t->fields[fi];
    const char *fname = f->name;
    if (src == h->obj_globals)
        fname = "globals";
    else if (src == h->obj_garbage)
        fname = "gc.garbage";
    else if (src == h->obj_finalizers)
        fname = "finalizers";
    switch (f->kind) {
    case RC_FIELD_REF:
    case RC_FIELD_WEAK:
        snprintf(buf, size, "%s.%s%s", t->name, f->name, weak ? " (weak)" : "");
        break;
    case RC_FIELD_REF_ARRAY:
    case RC_FIELD_INLINE_ARRAY:
        snprintf(buf, size, "%s[%llu]", fname, (unsigned long long)elem);
        break;
    case RC_FIELD_DICT: {
        const char *k = dict_key(h, src, f, elem);
        if (k)
            snprintf(buf, size, "%s['%s']", fname, k);
        else
            snprintf(buf, size, "%s[entry %llu]", fname, (unsigned long long)elem);
        break;
    }
    case RC_FIELD_NAMED_ARRAY: {
        const char *inst = rs_instance_name(h, src);
        const char *cn = cell_name(h, src, f, elem);
        char pre[300];
        if (inst)
            snprintf(pre, sizeof pre, "%s %s %s", t->name, inst, f->name);
        else
            snprintf(pre, sizeof pre, "%s %s", t->name, f->name);
        if (cn)
            snprintf(buf, size, "%s '%s'", pre, cn);
        else
            snprintf(buf, size, "%s[%llu]", pre, (unsigned long long)elem);
        break;
    }
    default:
        snprintf(buf, size, "%s.%s", t->name, f->name);
        break;
    }
    return buf;
}
