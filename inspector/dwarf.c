/*
 * dwarf.c -- what libdwarf (20210528 API) tells us about a module:
 * addresses -> file:line and function, global and static variables, the
 * object-pointer slots inside them, struct layouts, and call frame
 * information for the unwinder.
 *
 * Each module is indexed once, on first use, by one walk over all its
 * DIEs (CU iteration with dwarf_next_cu_header_d is stateful, so there is
 * exactly one pass): CU address ranges, functions (subprograms with code),
 * variables with a fixed address (DW_OP_addr / DW_OP_addrx), and named
 * types. Line tables are read per CU when an address in it is asked for.
 * Type layouts are computed once per type DIE and cached.
 *
 * libdwarf pitfalls handled here (see TOOLCHAIN.md): always pass a
 * Dwarf_Error* and free it; gcc's defining DIE of a global may carry only
 * DW_AT_specification; DW_AT_data_member_location is a constant or an
 * expression; DW_AT_high_pc may be an offset; DW_AT_ranges differs between
 * DWARF 4 (.debug_ranges) and 5 (.debug_rnglists).
 */
#include "target_int.h"

#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- per-module data ----------------------------------------------------------- */

typedef struct rs_dwarf rs_dwarf;

typedef struct rs_line {
    uint64_t addr;
    const char *file;
    uint32_t line;
    uint32_t order;          /* position in the line program */
    bool end;                /* end of a sequence: no code from here */
} rs_line;

typedef struct rs_cu {
    Dwarf_Off die_off;
    const char *name;
    Dwarf_Half version;
    uint64_t base;           /* DW_AT_low_pc: base of DWARF 4 range lists */
    bool lines_tried;
    rs_line *lines;
    size_t nlines;
} rs_cu;

typedef struct rs_arange {   /* also used for functions */
    uint64_t lo, hi;         /* file addresses */
    uint32_t cu;
    const char *name;        /* functions only */
} rs_arange;

typedef struct rs_var {
    const char *name;
    const char *function;    /* enclosing function of a local static */
    uint32_t cu;
    uint64_t addr;           /* file address */
    Dwarf_Off type;          /* 0: none */
    bool external;
} rs_var;

typedef struct rs_tname {
    const char *name;
    Dwarf_Off off;
    bool complete;           /* not a declaration */
    bool is_tag;             /* struct/union/enum tag (not typedef or base type) */
} rs_tname;

/* Offset-keyed hash map (open addressing). */
typedef struct offmap {
    uint64_t *keys;          /* key + 1; 0 = empty */
    void **vals;
    size_t cap, n;
} offmap;

typedef struct layout_ent {
    uint64_t off;
    const char *path;        /* suffix: "", ".next", "[3].head" */
    const char *type_name;
} layout_ent;

typedef struct layout {
    layout_ent *e;
    size_t n;
} layout;

struct rs_dwarf {
    Dwarf_Debug dbg;         /* debug info (the file or its separate debug file) */
    Dwarf_Debug fdbg;        /* frames: the module file itself (may equal dbg) */
    bool info_tried, frames_tried, indexed;
    rs_cu *cus;
    size_t ncus, capcus;
    rs_arange *aranges;      /* CU ranges, sorted by lo */
    size_t naranges, caparanges;
    rs_arange *funcs;        /* function ranges, sorted by lo */
    size_t nfuncs, capfuncs;
    rs_var *vars;
    size_t nvars, capvars;
    rs_tname *tnames;        /* sorted by name after indexing */
    size_t ntnames, captnames;
    /* frames */
    Dwarf_Cie *cies;
    Dwarf_Signed ncies;
    Dwarf_Fde *fdes;
    Dwarf_Signed nfdes;
    bool eh;                 /* fdes from .eh_frame (else .debug_frame) */
    /* type caches (for one head type name at a time) */
    const char *head;
    offmap layouts;          /* type DIE -> layout* */
    offmap objectness;       /* struct DIE -> (void*)1 no, (void*)2 yes */
    bool truncated_warned;
};

static void drop(Dwarf_Debug dbg, Dwarf_Error *e)
{
    if (*e) {
        dwarf_dealloc_error(dbg, *e);
        *e = NULL;
    }
}

/* ---- offmap ------------------------------------------------------------------- */

static void *offmap_get(const offmap *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == 0)
            return NULL;
        if (m->keys[i] == key + 1)
            return m->vals[i];
    }
}

static void offmap_put(offmap *m, uint64_t key, void *val)
{
    if ((m->n + 1) * 2 > m->cap) {
        offmap old = *m;
        m->cap = old.cap ? old.cap * 2 : 256;
        m->keys = rs__xcalloc(m->cap, sizeof *m->keys);
        m->vals = rs__xcalloc(m->cap, sizeof *m->vals);
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i])
                offmap_put(m, old.keys[i] - 1, old.vals[i]);
        free(old.keys);
        free(old.vals);
    }
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key + 1) {
            m->vals[i] = val;
            return;
        }
        if (m->keys[i] == 0) {
            m->keys[i] = key + 1;
            m->vals[i] = val;
            m->n++;
            return;
        }
    }
}

static void offmap_free(offmap *m, bool free_layouts)
{
    if (free_layouts)
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] && m->vals[i]) {
                layout *l = m->vals[i];
                free(l->e);
                free(l);
            }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- opening ------------------------------------------------------------------- */

void rs__dwarf_free(rs_mod *m)
{
    rs_dwarf *dw = m->dw;
    if (!dw)
        return;
    for (size_t i = 0; i < dw->ncus; i++)
        free(dw->cus[i].lines);
    free(dw->cus);
    free(dw->aranges);
    free(dw->funcs);
    free(dw->vars);
    free(dw->tnames);
    offmap_free(&dw->layouts, true);
    offmap_free(&dw->objectness, false);
    Dwarf_Error e = NULL;
    if (dw->fdbg) {
        if (dw->fdes || dw->cies)
            dwarf_fde_cie_list_dealloc(dw->fdbg, dw->cies, dw->ncies, dw->fdes, dw->nfdes);
        if (dw->fdbg != dw->dbg)
            dwarf_finish(dw->fdbg, &e);
    }
    if (dw->dbg)
        dwarf_finish(dw->dbg, &e);
    free(dw);
    m->dw = NULL;
}

/* libdwarf 20210528 trusts the section header table's size: a corrupt
 * e_shnum (or the extended count in section 0's sh_size) makes it allocate
 * hundreds of gigabytes (tests/fuzz found it). Check the table lies inside
 * the file before handing the file to libdwarf. */
static bool sane_section_headers(rs_target *t, const char *path)
{
    rs_file *f = rs__file_open(t, path);
    if (!f->data || f->size < sizeof(Elf64_Ehdr))
        return false;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)f->data;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
        return false;
    if (eh->e_shoff == 0)
        return true; /* no section headers: libdwarf finds no DWARF */
    if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > f->size ||
        f->size - eh->e_shoff < sizeof(Elf64_Shdr))
        return false;
    uint64_t n = eh->e_shnum;
    if (n == 0) /* extended numbering: the count is in section 0's sh_size */
        n = ((const Elf64_Shdr *)(const void *)(f->data + eh->e_shoff))->sh_size;
    return n <= (f->size - eh->e_shoff) / sizeof(Elf64_Shdr);
}

static Dwarf_Debug open_dbg(rs_target *t, const char *path, bool warn)
{
    Dwarf_Debug dbg = NULL;
    Dwarf_Error e = NULL;
    if (!sane_section_headers(t, path)) {
        if (warn)
            rs__warn(t, "%s: cannot read DWARF: malformed ELF section headers", path);
        return NULL;
    }
    int r = dwarf_init_path(path, NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &dbg,
                            NULL, 0, NULL, &e);
    if (r == DW_DLV_OK)
        return dbg;
    if (r == DW_DLV_ERROR) {
        if (warn)
            rs__warn(t, "%s: cannot read DWARF: %s", path, dwarf_errmsg(e));
        dwarf_dealloc_error(NULL, e);
    }
    return NULL;
}

static rs_dwarf *get_dw(rs_mod *m)
{
    if (!m->dw)
        m->dw = rs__xcalloc(1, sizeof *m->dw);
    return m->dw;
}

/* libdwarf 20210528 frees memory twice when a .debug_rnglists (or
 * .debug_loclists) unit header is malformed (tests/fuzz found it with
 * corrupt executables): check the unit headers before libdwarf reads them.
 * Returns NULL if they look sane (or cannot be checked: compressed, 64-bit
 * DWARF), else the name of the bad section and its offset in *where. (A
 * unit length of 0 is bad too: libdwarf trips on it the same way.) */
static const char *bad_lists(rs_target *t, rs_mod *m, uint64_t *where)
{
    rs_elf local, *e = &m->elf;
    if (m->debug_path) {
        rs_file *f = rs__file_open(t, m->debug_path);
        if (!f->data || rs__elf_parse(&local, f, NULL) != 0)
            return NULL; /* libdwarf says what is wrong with it */
        e = &local;
    }
    static const char *const names[] = {".debug_rnglists", ".debug_loclists"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const Elf64_Shdr *sh = rs__elf_section(e, names[i]);
        if (!sh || sh->sh_type == SHT_NOBITS || (sh->sh_flags & SHF_COMPRESSED))
            continue;
        *where = sh->sh_offset;
        if (sh->sh_offset > e->file->size || sh->sh_size > e->file->size - sh->sh_offset)
            return names[i];
        const uint8_t *base = e->file->data + sh->sh_offset, *p = base, *end = p + sh->sh_size;
        while (p < end) {
            /* unit_length u32, version u16 = 5, address_size 8, segment selector 0,
             * offset_entry_count u32 (offsets of 4 bytes after the header) */
            uint32_t len, count;
            uint16_t version;
            *where = sh->sh_offset + (uint64_t)(p - base);
            if (end - p < 12)
                return names[i];
            memcpy(&len, p, 4);
            memcpy(&version, p + 4, 2);
            memcpy(&count, p + 8, 4);
            if (len == 0xffffffffu)
                break; /* 64-bit DWARF: not checked further */
            if (len < 8 || len > (size_t)(end - p) - 4 || version != 5 || p[6] != 8 ||
                p[7] != 0 || (uint64_t)count * 4 > len - 8)
                return names[i];
            p += 4 + (size_t)len;
        }
    }
    return NULL;
}

static Dwarf_Debug info_dbg(rs_target *t, rs_mod *m)
{
    rs_dwarf *dw = get_dw(m);
    if (!dw->info_tried) {
        dw->info_tried = true;
        uint64_t where = 0;
        const char *bad = m->pub.loaded && m->pub.has_dwarf ? bad_lists(t, m, &where) : NULL;
        if (bad) {
            rs__warn(t, "%s: its DWARF is corrupt (a bad %s unit header at file offset 0x%llx): "
                     "DWARF not used", m->debug_path ? m->debug_path : m->pub.path, bad,
                     (unsigned long long)where);
            m->pub.has_dwarf = false;
        }
        if (m->pub.loaded && m->pub.has_dwarf) {
            dw->dbg = open_dbg(t, m->debug_path ? m->debug_path : m->pub.path, true);
            if (!dw->dbg)
                m->pub.has_dwarf = false;
        }
    }
    return dw->dbg;
}

/* ---- attribute helpers ----------------------------------------------------------- */

static bool attr_ref(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, Dwarf_Off *off)
{
    Dwarf_Attribute a;
    Dwarf_Error e = NULL;
    int r = dwarf_attr(die, at, &a, &e);
    drop(dbg, &e);
    if (r != DW_DLV_OK)
        return false;
    r = dwarf_global_formref(a, off, &e);
    drop(dbg, &e);
    dwarf_dealloc_attribute(a);
    return r == DW_DLV_OK;
}

static bool attr_udata(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, Dwarf_Unsigned *v)
{
    Dwarf_Attribute a;
    Dwarf_Error e = NULL;
    int r = dwarf_attr(die, at, &a, &e);
    drop(dbg, &e);
    if (r != DW_DLV_OK)
        return false;
    r = dwarf_formudata(a, v, &e);
    drop(dbg, &e);
    if (r != DW_DLV_OK) {
        Dwarf_Signed s;
        r = dwarf_formsdata(a, &s, &e);
        drop(dbg, &e);
        *v = (Dwarf_Unsigned)s;
    }
    dwarf_dealloc_attribute(a);
    return r == DW_DLV_OK;
}

static bool attr_sdata(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, Dwarf_Signed *v)
{
    Dwarf_Attribute a;
    Dwarf_Error e = NULL;
    int r = dwarf_attr(die, at, &a, &e);
    drop(dbg, &e);
    if (r != DW_DLV_OK)
        return false;
    r = dwarf_formsdata(a, v, &e);
    drop(dbg, &e);
    if (r != DW_DLV_OK) {
        Dwarf_Unsigned u;
        r = dwarf_formudata(a, &u, &e);
        drop(dbg, &e);
        *v = (Dwarf_Signed)u;
    }
    dwarf_dealloc_attribute(a);
    return r == DW_DLV_OK;
}

static bool attr_flag(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at)
{
    Dwarf_Attribute a;
    Dwarf_Error e = NULL;
    int r = dwarf_attr(die, at, &a, &e);
    drop(dbg, &e);
    if (r != DW_DLV_OK)
        return false;
    Dwarf_Bool b = 0;
    r = dwarf_formflag(a, &b, &e);
    drop(dbg, &e);
    dwarf_dealloc_attribute(a);
    return r == DW_DLV_OK && b;
}

static bool has_attr(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at)
{
    Dwarf_Bool b = 0;
    Dwarf_Error e = NULL;
    int r = dwarf_hasattr(die, at, &b, &e);
    drop(dbg, &e);
    return r == DW_DLV_OK && b;
}

/* libdwarf owns the string (valid while dbg is open). */
static const char *die_name(Dwarf_Debug dbg, Dwarf_Die die)
{
    char *name = NULL;
    Dwarf_Error e = NULL;
    int r = dwarf_diename(die, &name, &e);
    drop(dbg, &e);
    return r == DW_DLV_OK ? name : NULL;
}

static Dwarf_Half die_tag(Dwarf_Debug dbg, Dwarf_Die die)
{
    Dwarf_Half tag = 0;
    Dwarf_Error e = NULL;
    if (dwarf_tag(die, &tag, &e) != DW_DLV_OK)
        tag = 0;
    drop(dbg, &e);
    return tag;
}

static Dwarf_Die off_die(Dwarf_Debug dbg, Dwarf_Off off)
{
    Dwarf_Die d = NULL;
    Dwarf_Error e = NULL;
    if (dwarf_offdie_b(dbg, off, true, &d, &e) != DW_DLV_OK)
        d = NULL;
    drop(dbg, &e);
    return d;
}

static Dwarf_Off die_off(Dwarf_Debug dbg, Dwarf_Die die)
{
    Dwarf_Off off = 0;
    Dwarf_Error e = NULL;
    dwarf_dieoffset(die, &off, &e);
    drop(dbg, &e);
    return off;
}

/* The DIE this one completes (DW_AT_specification) or instantiates
 * (DW_AT_abstract_origin); NULL if none. */
static Dwarf_Die origin_die(Dwarf_Debug dbg, Dwarf_Die die)
{
    Dwarf_Off off;
    if (attr_ref(dbg, die, DW_AT_specification, &off) ||
        attr_ref(dbg, die, DW_AT_abstract_origin, &off))
        return off_die(dbg, off);
    return NULL;
}

/* Name, type and external-ness, following specification/origin links. */
static void describe_die(Dwarf_Debug dbg, Dwarf_Die die, const char **name, Dwarf_Off *type,
                         bool *external)
{
    *name = die_name(dbg, die);
    if (type && !attr_ref(dbg, die, DW_AT_type, type))
        *type = 0;
    if (external)
        *external = attr_flag(dbg, die, DW_AT_external);
    Dwarf_Die cur = NULL;
    for (int i = 0; i < 4 && (!*name || (type && !*type) || (external && !*external)); i++) {
        Dwarf_Die next = origin_die(dbg, cur ? cur : die);
        if (cur)
            dwarf_dealloc_die(cur);
        cur = next;
        if (!cur)
            break;
        if (!*name)
            *name = die_name(dbg, cur);
        if (type && !*type && !attr_ref(dbg, cur, DW_AT_type, type))
            *type = 0;
        if (external && !*external)
            *external = attr_flag(dbg, cur, DW_AT_external);
    }
    if (cur)
        dwarf_dealloc_die(cur);
}

static uint64_t uleb(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (*p < end) {
        uint8_t b = *(*p)++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* The bytes of an expression attribute (exprloc or block form), copied. */
static size_t attr_expr(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, uint8_t *buf,
                        size_t size)
{
    Dwarf_Attribute a;
    Dwarf_Error e = NULL;
    if (dwarf_attr(die, at, &a, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return 0;
    }
    Dwarf_Half form = 0;
    size_t n = 0;
    dwarf_whatform(a, &form, &e);
    drop(dbg, &e);
    if (form == DW_FORM_exprloc) {
        Dwarf_Unsigned len;
        Dwarf_Ptr p;
        if (dwarf_formexprloc(a, &len, &p, &e) == DW_DLV_OK && len <= size) {
            memcpy(buf, p, len);
            n = len;
        }
    } else if (form == DW_FORM_block1 || form == DW_FORM_block2 || form == DW_FORM_block4 ||
               form == DW_FORM_block) {
        Dwarf_Block *b;
        if (dwarf_formblock(a, &b, &e) == DW_DLV_OK) {
            if (b->bl_len <= size) {
                memcpy(buf, b->bl_data, b->bl_len);
                n = b->bl_len;
            }
            dwarf_dealloc(dbg, b, DW_DLA_BLOCK);
        }
    }
    drop(dbg, &e);
    dwarf_dealloc_attribute(a);
    return n;
}

/* A variable's fixed address: DW_AT_location is exactly DW_OP_addr or
 * DW_OP_addrx. Register, stack and TLS locations are not fixed. */
static bool var_address(Dwarf_Debug dbg, Dwarf_Die die, uint64_t *addr)
{
    uint8_t ex[32];
    size_t n = attr_expr(dbg, die, DW_AT_location, ex, sizeof ex);
    if (n == 9 && ex[0] == DW_OP_addr) {
        memcpy(addr, ex + 1, 8);
        return true;
    }
    if (n >= 2 && (ex[0] == DW_OP_addrx || ex[0] == DW_OP_GNU_addr_index)) {
        const uint8_t *p = ex + 1;
        uint64_t idx = uleb(&p, ex + n);
        if (p != ex + n)
            return false;
        Dwarf_Addr a;
        Dwarf_Error e = NULL;
        int r = dwarf_debug_addr_index_to_addr(die, idx, &a, &e);
        drop(dbg, &e);
        if (r == DW_DLV_OK) {
            *addr = a;
            return true;
        }
    }
    return false;
}

/* DW_AT_data_member_location: a constant, or DW_OP_plus_uconst N
 * (DWARF 2 style); absent (unions) means 0. */
static bool member_location(Dwarf_Debug dbg, Dwarf_Die die, uint64_t *off)
{
    *off = 0;
    if (!has_attr(dbg, die, DW_AT_data_member_location))
        return true;
    Dwarf_Attribute a;
    Dwarf_Error e = NULL;
    Dwarf_Half form = 0;
    if (dwarf_attr(die, DW_AT_data_member_location, &a, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return false;
    }
    dwarf_whatform(a, &form, &e);
    drop(dbg, &e);
    dwarf_dealloc_attribute(a);
    if (form == DW_FORM_exprloc || form == DW_FORM_block1 || form == DW_FORM_block2 ||
        form == DW_FORM_block4 || form == DW_FORM_block) {
        uint8_t ex[32];
        size_t n = attr_expr(dbg, die, DW_AT_data_member_location, ex, sizeof ex);
        const uint8_t *p = ex + 1;
        if (n >= 2 && (ex[0] == DW_OP_plus_uconst || ex[0] == DW_OP_constu)) {
            *off = uleb(&p, ex + n);
            return true;
        }
        return false;
    }
    Dwarf_Unsigned v;
    if (!attr_udata(dbg, die, DW_AT_data_member_location, &v))
        return false;
    *off = v;
    return true;
}

/* Address ranges of a DIE (low/high pc or DW_AT_ranges), appended to
 * *out as {lo, hi} pairs in file addresses. */
typedef struct pcrange {
    uint64_t lo, hi;
} pcrange;

static size_t die_ranges(Dwarf_Debug dbg, const rs_cu *cu, Dwarf_Die die, pcrange **out,
                         size_t *cap)
{
    Dwarf_Error e = NULL;
    size_t n = 0;
    Dwarf_Attribute a;
    if (dwarf_attr(die, DW_AT_ranges, &a, &e) == DW_DLV_OK) {
        Dwarf_Half form = 0;
        dwarf_whatform(a, &form, &e);
        drop(dbg, &e);
        Dwarf_Unsigned val = 0;
        Dwarf_Off off = 0;
        if (dwarf_formudata(a, &val, &e) != DW_DLV_OK) {
            drop(dbg, &e);
            if (dwarf_global_formref(a, &off, &e) == DW_DLV_OK)
                val = off;
            drop(dbg, &e);
        }
        if (cu->version >= 5) {
            Dwarf_Rnglists_Head head = NULL;
            Dwarf_Unsigned count = 0, goff = 0;
            if (dwarf_rnglists_get_rle_head(a, form, val, &head, &count, &goff, &e) ==
                DW_DLV_OK) {
                for (Dwarf_Unsigned i = 0; i < count; i++) {
                    unsigned elen = 0, code = 0;
                    Dwarf_Unsigned raw1, raw2, c1, c2;
                    Dwarf_Bool unavail = 0;
                    if (dwarf_get_rnglists_entry_fields_a(head, i, &elen, &code, &raw1, &raw2,
                                                          &unavail, &c1, &c2, &e) != DW_DLV_OK) {
                        drop(dbg, &e);
                        break;
                    }
                    if (unavail || code == DW_RLE_end_of_list || code == DW_RLE_base_address ||
                        code == DW_RLE_base_addressx || c2 <= c1)
                        continue;
                    rs__grow(out, cap, n + 1, sizeof **out);
                    (*out)[n++] = (pcrange){c1, c2};
                }
                dwarf_dealloc_rnglists_head(head);
            }
            drop(dbg, &e);
        } else {
            Dwarf_Ranges *rs = NULL;
            Dwarf_Signed count = 0;
            Dwarf_Unsigned bytes = 0;
            Dwarf_Off real = 0;
            if (dwarf_get_ranges_b(dbg, val, die, &real, &rs, &count, &bytes, &e) == DW_DLV_OK) {
                uint64_t base = cu->base;
                for (Dwarf_Signed i = 0; i < count; i++) {
                    if (rs[i].dwr_type == DW_RANGES_END)
                        break;
                    if (rs[i].dwr_type == DW_RANGES_ADDRESS_SELECTION) {
                        base = rs[i].dwr_addr2;
                        continue;
                    }
                    if (rs[i].dwr_addr2 <= rs[i].dwr_addr1)
                        continue;
                    rs__grow(out, cap, n + 1, sizeof **out);
                    (*out)[n++] = (pcrange){base + rs[i].dwr_addr1, base + rs[i].dwr_addr2};
                }
                dwarf_ranges_dealloc(dbg, rs, count);
            }
            drop(dbg, &e);
        }
        dwarf_dealloc_attribute(a);
        return n;
    }
    drop(dbg, &e);
    Dwarf_Addr lo, hi;
    Dwarf_Half form;
    enum Dwarf_Form_Class cls;
    if (dwarf_lowpc(die, &lo, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return 0;
    }
    if (dwarf_highpc_b(die, &hi, &form, &cls, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return 0;
    }
    if (cls == DW_FORM_CLASS_CONSTANT)
        hi += lo;
    if (hi > lo) {
        rs__grow(out, cap, 1, sizeof **out);
        (*out)[n++] = (pcrange){lo, hi};
    }
    return n;
}

/* ---- indexing -------------------------------------------------------------------- */

typedef struct walk_ctx {
    rs_target *t;
    rs_dwarf *dw;
    Dwarf_Debug dbg;
    uint32_t cu;
    pcrange *ranges;
    size_t capranges;
    Dwarf_Off last_off;      /* offset of the last DIE visited in this CU */
} walk_ctx;

static void add_arange(rs_arange **arr, size_t *n, size_t *cap, uint64_t lo, uint64_t hi,
                       uint32_t cu, const char *name)
{
    rs__grow(arr, cap, *n + 1, sizeof **arr);
    (*arr)[(*n)++] = (rs_arange){lo, hi, cu, name};
}

static void walk_children(walk_ctx *w, Dwarf_Die parent, const char *function, int depth);

static void walk_die(walk_ctx *w, Dwarf_Die die, const char *function, int depth)
{
    Dwarf_Debug dbg = w->dbg;
    rs_dwarf *dw = w->dw;
    Dwarf_Half tag = die_tag(dbg, die);
    switch (tag) {
    case DW_TAG_subprogram: {
        if (attr_flag(dbg, die, DW_AT_declaration))
            return;
        const char *name;
        describe_die(dbg, die, &name, NULL, NULL);
        const char *fname = name ? rs__strdup(w->t, name) : NULL;
        size_t n = die_ranges(dbg, &dw->cus[w->cu], die, &w->ranges, &w->capranges);
        for (size_t i = 0; i < n; i++)
            add_arange(&dw->funcs, &dw->nfuncs, &dw->capfuncs, w->ranges[i].lo,
                       w->ranges[i].hi, w->cu, fname);
        walk_children(w, die, fname ? fname : "?", depth + 1);
        return;
    }
    case DW_TAG_lexical_block:
    case DW_TAG_namespace:
        walk_children(w, die, function, depth + 1);
        return;
    case DW_TAG_variable: {
        if (attr_flag(dbg, die, DW_AT_declaration))
            return;
        uint64_t addr;
        if (!var_address(dbg, die, &addr))
            return;
        const char *name;
        Dwarf_Off type;
        bool external;
        describe_die(dbg, die, &name, &type, &external);
        if (!name)
            return;
        rs__grow(&dw->vars, &dw->capvars, dw->nvars + 1, sizeof *dw->vars);
        dw->vars[dw->nvars++] = (rs_var){rs__strdup(w->t, name), function, w->cu, addr, type,
                                         external};
        return;
    }
    case DW_TAG_structure_type:
    case DW_TAG_union_type:
    case DW_TAG_class_type:
    case DW_TAG_enumeration_type:
    case DW_TAG_typedef:
    case DW_TAG_base_type: {
        const char *name = die_name(dbg, die);
        if (!name)
            return;
        rs__grow(&dw->tnames, &dw->captnames, dw->ntnames + 1, sizeof *dw->tnames);
        dw->tnames[dw->ntnames++] = (rs_tname){
            rs__strdup(w->t, name), die_off(dbg, die),
            !attr_flag(dbg, die, DW_AT_declaration),
            tag != DW_TAG_typedef && tag != DW_TAG_base_type};
        return;
    }
    default:
        return;
    }
}

static void walk_children(walk_ctx *w, Dwarf_Die parent, const char *function, int depth)
{
    if (depth > 64)
        return;
    Dwarf_Die child = NULL;
    Dwarf_Error e = NULL;
    if (dwarf_child(parent, &child, &e) != DW_DLV_OK) {
        drop(w->dbg, &e);
        return;
    }
    while (child) {
        /* A CU's DIEs are visited in preorder, which is their order in the
         * section: a DIE at or before the last one visited means a corrupt
         * DW_AT_sibling pointing back or into a subtree walked already, and
         * following it repeats work exponentially or forever (tests/fuzz
         * found one). Stop this list there. */
        Dwarf_Off off = die_off(w->dbg, child);
        if (off <= w->last_off) {
            dwarf_dealloc_die(child);
            break;
        }
        w->last_off = off;
        walk_die(w, child, function, depth);
        Dwarf_Die sib = NULL;
        int r = dwarf_siblingof_b(w->dbg, child, true, &sib, &e);
        drop(w->dbg, &e);
        dwarf_dealloc_die(child);
        child = r == DW_DLV_OK ? sib : NULL;
    }
}

static int cmp_arange(const void *a, const void *b)
{
    const rs_arange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_tname(const void *a, const void *b)
{
    const rs_tname *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    /* complete definitions first, tags before typedefs, then DIE order */
    if (x->complete != y->complete)
        return y->complete - x->complete;
    if (x->is_tag != y->is_tag)
        return y->is_tag - x->is_tag;
    return x->off < y->off ? -1 : x->off > y->off;
}

static rs_dwarf *indexed(rs_target *t, rs_mod *m)
{
    Dwarf_Debug dbg = info_dbg(t, m);
    rs_dwarf *dw = m->dw;
    if (!dbg || dw->indexed)
        return dbg ? dw : NULL;
    dw->indexed = true;
    walk_ctx w = {.t = t, .dw = dw, .dbg = dbg};
    Dwarf_Error e = NULL;
    for (;;) {
        Dwarf_Unsigned cu_len = 0, typeoff = 0, next = 0;
        Dwarf_Half ver = 0, asz = 0, lsz = 0, esz = 0, cutype = 0;
        Dwarf_Off abbr = 0;
        Dwarf_Sig8 sig;
        int r = dwarf_next_cu_header_d(dbg, true, &cu_len, &ver, &abbr, &asz, &lsz, &esz, &sig,
                                       &typeoff, &next, &cutype, &e);
        if (r == DW_DLV_NO_ENTRY)
            break;
        if (r == DW_DLV_ERROR) {
            rs__warn(t, "%s: DWARF is damaged, indexed only %zu compilation units: %s",
                     m->pub.name, dw->ncus, dwarf_errmsg(e));
            drop(dbg, &e);
            break;
        }
        Dwarf_Die cu_die = NULL;
        if (dwarf_siblingof_b(dbg, NULL, true, &cu_die, &e) != DW_DLV_OK) {
            drop(dbg, &e);
            continue;
        }
        rs__grow(&dw->cus, &dw->capcus, dw->ncus + 1, sizeof *dw->cus);
        rs_cu *cu = &dw->cus[dw->ncus];
        memset(cu, 0, sizeof *cu);
        w.cu = (uint32_t)dw->ncus++;
        cu->die_off = die_off(dbg, cu_die);
        cu->version = ver;
        const char *name = die_name(dbg, cu_die);
        cu->name = rs__strdup(t, name ? name : "?");
        Dwarf_Addr base;
        if (dwarf_lowpc(cu_die, &base, &e) == DW_DLV_OK)
            cu->base = base;
        drop(dbg, &e);
        size_t n = die_ranges(dbg, cu, cu_die, &w.ranges, &w.capranges);
        for (size_t i = 0; i < n; i++)
            add_arange(&dw->aranges, &dw->naranges, &dw->caparanges, w.ranges[i].lo,
                       w.ranges[i].hi, w.cu, NULL);
        w.last_off = cu->die_off;
        walk_children(&w, cu_die, NULL, 0);
        dwarf_dealloc_die(cu_die);
    }
    free(w.ranges);
    RS_QSORT(dw->aranges, dw->naranges, sizeof *dw->aranges, cmp_arange);
    RS_QSORT(dw->funcs, dw->nfuncs, sizeof *dw->funcs, cmp_arange);
    RS_QSORT(dw->tnames, dw->ntnames, sizeof *dw->tnames, cmp_tname);
    return dw;
}

/* Entry of arr (sorted by lo) containing a; NULL if none. */
static const rs_arange *find_range(const rs_arange *arr, size_t n, uint64_t a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (arr[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Ranges rarely overlap; look back a little for one that holds a. */
    for (size_t i = lo; i-- > 0 && lo - i <= 16;)
        if (a < arr[i].hi)
            return &arr[i];
    return NULL;
}

/* ---- lines ------------------------------------------------------------------------ */

static int cmp_line(const void *a, const void *b)
{
    const rs_line *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    if (x->end != y->end)
        return (int)y->end - (int)x->end; /* an end of sequence before a new start */
    /* Several rows at one address: the last one emitted describes it (as gdb
     * does), and find_line takes the last of equals. */
    return x->order < y->order ? -1 : x->order > y->order;
}

/* "/build/../../src/./a.c" -> "/src/a.c", lexically (no file system access). */
static void normalize_path(char *p)
{
    if (!p[0])
        return;
    bool abs = p[0] == '/';
    char *parts[256];
    size_t n = 0, kept_up = 0;
    char *save = NULL;
    for (char *c = strtok_r(p, "/", &save); c && n < 256; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            if (n > kept_up) {
                n--;
                continue;
            }
            if (abs)
                continue; /* "/.." is "/" */
            kept_up++;    /* a relative path may start with ".." */
        }
        parts[n++] = c;
    }
    char out[4096];
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && len < sizeof out; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", i || abs ? "/" : "", parts[i]);
    if (n == 0)
        snprintf(out, sizeof out, "%s", abs ? "/" : ".");
    strcpy(p, out); /* never longer than the input */
}

static void load_lines(rs_target *t, rs_dwarf *dw, rs_cu *cu)
{
    cu->lines_tried = true;
    Dwarf_Debug dbg = dw->dbg;
    Dwarf_Die die = off_die(dbg, cu->die_off);
    if (!die)
        return;
    Dwarf_Error e = NULL;
    Dwarf_Unsigned ver;
    Dwarf_Small tables;
    Dwarf_Line_Context ctx = NULL;
    if (dwarf_srclines_b(die, &ver, &tables, &ctx, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        dwarf_dealloc_die(die);
        return;
    }
    Dwarf_Line *lines = NULL;
    Dwarf_Signed n = 0;
    if (dwarf_srclines_from_linecontext(ctx, &lines, &n, &e) == DW_DLV_OK && n > 0) {
        const char **files = NULL; /* by file number */
        size_t nfiles = 0;
        cu->lines = rs__xmalloc((size_t)n * sizeof *cu->lines);
        for (Dwarf_Signed i = 0; i < n; i++) {
            Dwarf_Addr addr;
            Dwarf_Unsigned lineno = 0, fileno = 0;
            Dwarf_Bool end = 0;
            if (dwarf_lineaddr(lines[i], &addr, &e) != DW_DLV_OK) {
                drop(dbg, &e);
                continue;
            }
            dwarf_lineno(lines[i], &lineno, &e);
            drop(dbg, &e);
            dwarf_lineendsequence(lines[i], &end, &e);
            drop(dbg, &e);
            dwarf_line_srcfileno(lines[i], &fileno, &e);
            drop(dbg, &e);
            const char *file = NULL;
            if (fileno < 100000) {
                if (fileno >= nfiles) {
                    size_t nn = fileno + 16;
                    files = rs__xrealloc(files, nn * sizeof *files);
                    memset(files + nfiles, 0, (nn - nfiles) * sizeof *files);
                    nfiles = nn;
                }
                if (!files[fileno]) {
                    char *src = NULL;
                    if (dwarf_linesrc(lines[i], &src, &e) == DW_DLV_OK && src) {
                        char *copy = rs__strdup(t, src);
                        normalize_path(copy);
                        files[fileno] = copy;
                        dwarf_dealloc(dbg, src, DW_DLA_STRING);
                    }
                    drop(dbg, &e);
                }
                file = files[fileno];
            }
            cu->lines[cu->nlines] = (rs_line){addr, file, (uint32_t)lineno, (uint32_t)cu->nlines, end != 0};
            cu->nlines++;
        }
        free(files);
        RS_QSORT(cu->lines, cu->nlines, sizeof *cu->lines, cmp_line);
    }
    drop(dbg, &e);
    dwarf_srclines_dealloc_b(ctx);
    dwarf_dealloc_die(die);
}

static const rs_line *find_line(const rs_cu *cu, uint64_t a)
{
    size_t lo = 0, hi = cu->nlines;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cu->lines[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || cu->lines[lo - 1].end)
        return NULL;
    return &cu->lines[lo - 1];
}

int rs_addr_to_line(rs_target *t, uint64_t addr, rs_srcloc *ret)
{
    memset(ret, 0, sizeof *ret);
    rs_mod *m = rs__mod_at(t, addr);
    if (!m)
        return -1;
    ret->module = &m->pub;
    uint64_t rel = addr - m->pub.bias;
    rs_dwarf *dw = indexed(t, m);
    if (dw) {
        const rs_arange *f = find_range(dw->funcs, dw->nfuncs, rel);
        if (f)
            ret->function = f->name;
        const rs_arange *c = find_range(dw->aranges, dw->naranges, rel);
        if (!c)
            c = f;
        if (c) {
            rs_cu *cu = &dw->cus[c->cu];
            if (!cu->lines_tried)
                load_lines(t, dw, cu);
            const rs_line *l = find_line(cu, rel);
            if (l) {
                ret->file = l->file;
                ret->line = l->line;
            }
        }
    }
    if (!ret->function) {
        const rs_sym *s = rs__sym_at(t, m, addr);
        if (s && (!s->size || addr < s->addr + s->size || ELF64_ST_TYPE(s->info) == STT_FUNC))
            ret->function = s->name;
    }
    return ret->function || ret->line ? 0 : -1;
}

const char *rs_function_name(rs_target *t, uint64_t addr)
{
    rs_srcloc loc;
    rs_mod *m = rs__mod_at(t, addr);
    if (!m)
        return NULL;
    rs_dwarf *dw = indexed(t, m);
    if (dw) {
        const rs_arange *f = find_range(dw->funcs, dw->nfuncs, addr - m->pub.bias);
        if (f && f->name)
            return f->name;
    }
    return rs_addr_to_line(t, addr, &loc) == 0 ? loc.function : NULL;
}

/* ---- types ------------------------------------------------------------------------ */

static bool is_qualifier(Dwarf_Half tag)
{
    return tag == DW_TAG_typedef || tag == DW_TAG_const_type || tag == DW_TAG_volatile_type ||
           tag == DW_TAG_restrict_type || tag == DW_TAG_atomic_type;
}

/* Follow typedef/const/volatile/restrict/_Atomic to the real type. Returns
 * its offset (0 for void) and tag; *tdname gets the innermost typedef name
 * seen (names an anonymous struct). */
static Dwarf_Off strip_type(Dwarf_Debug dbg, Dwarf_Off off, Dwarf_Half *tag, const char **tdname)
{
    *tag = 0;
    for (int i = 0; i < 32 && off; i++) {
        Dwarf_Die d = off_die(dbg, off);
        if (!d)
            return 0;
        *tag = die_tag(dbg, d);
        if (!is_qualifier(*tag)) {
            dwarf_dealloc_die(d);
            return off;
        }
        if (*tag == DW_TAG_typedef && tdname)
            *tdname = die_name(dbg, d);
        Dwarf_Off next = 0;
        if (!attr_ref(dbg, d, DW_AT_type, &next))
            next = 0;
        dwarf_dealloc_die(d);
        off = next;
    }
    *tag = 0;
    return 0;
}

static const rs_tname *find_tname(rs_dwarf *dw, const char *name, bool want_tag)
{
    size_t lo = 0, hi = dw->ntnames;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(dw->tnames[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < dw->ntnames && strcmp(dw->tnames[i].name, name) == 0; i++)
        if (dw->tnames[i].complete && (!want_tag || dw->tnames[i].is_tag))
            return &dw->tnames[i];
    return NULL;
}

/* A struct declared here but defined elsewhere (another CU): find the
 * definition by tag name in the same module. */
static Dwarf_Off complete_struct(Dwarf_Debug dbg, rs_dwarf *dw, Dwarf_Off off)
{
    Dwarf_Die d = off_die(dbg, off);
    if (!d)
        return off;
    if (attr_flag(dbg, d, DW_AT_declaration)) {
        const char *name = die_name(dbg, d);
        const rs_tname *tn = name ? find_tname(dw, name, true) : NULL;
        if (tn)
            off = tn->off;
    }
    dwarf_dealloc_die(d);
    return off;
}

static uint64_t type_size(Dwarf_Debug dbg, rs_dwarf *dw, Dwarf_Off off, int depth);

/* Array dimensions (element counts); 0 for an unknown bound. */
static size_t array_dims(Dwarf_Debug dbg, Dwarf_Die arr, uint64_t *dims, size_t max)
{
    size_t n = 0;
    Dwarf_Die child = NULL;
    Dwarf_Error e = NULL;
    if (dwarf_child(arr, &child, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return 0;
    }
    while (child) {
        if (die_tag(dbg, child) == DW_TAG_subrange_type && n < max) {
            Dwarf_Unsigned count;
            Dwarf_Signed ub, lb = 0;
            if (attr_udata(dbg, child, DW_AT_count, &count))
                dims[n] = count;
            else if (attr_sdata(dbg, child, DW_AT_upper_bound, &ub)) {
                attr_sdata(dbg, child, DW_AT_lower_bound, &lb);
                dims[n] = ub >= lb ? (uint64_t)(ub - lb + 1) : 0;
            } else
                dims[n] = 0;
            n++;
        }
        Dwarf_Die sib = NULL;
        int r = dwarf_siblingof_b(dbg, child, true, &sib, &e);
        drop(dbg, &e);
        dwarf_dealloc_die(child);
        child = r == DW_DLV_OK ? sib : NULL;
    }
    return n;
}

static uint64_t type_size(Dwarf_Debug dbg, rs_dwarf *dw, Dwarf_Off off, int depth)
{
    Dwarf_Half tag;
    off = strip_type(dbg, off, &tag, NULL);
    if (!off || depth > 16)
        return 0;
    if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type || tag == DW_TAG_class_type)
        off = complete_struct(dbg, dw, off);
    Dwarf_Die d = off_die(dbg, off);
    if (!d)
        return 0;
    Dwarf_Unsigned size = 0;
    if (!attr_udata(dbg, d, DW_AT_byte_size, &size)) {
        size = 0;
        if (tag == DW_TAG_pointer_type || tag == DW_TAG_reference_type)
            size = 8;
        else if (tag == DW_TAG_array_type) {
            uint64_t dims[8];
            size_t n = array_dims(dbg, d, dims, 8);
            Dwarf_Off et = 0;
            if (attr_ref(dbg, d, DW_AT_type, &et)) {
                size = type_size(dbg, dw, et, depth + 1);
                for (size_t i = 0; i < n; i++)
                    size *= dims[i];
            }
        }
    }
    dwarf_dealloc_die(d);
    return size;
}

/* A printable name for a type: "struct config", "node *", "int[4]". */
static void type_string(Dwarf_Debug dbg, Dwarf_Off off, char *buf, size_t size, int depth)
{
    if (size == 0)
        return;
    buf[0] = 0;
    if (!off) {
        snprintf(buf, size, "void");
        return;
    }
    Dwarf_Die d = off_die(dbg, off);
    if (!d || depth > 8) {
        snprintf(buf, size, "?");
        if (d)
            dwarf_dealloc_die(d);
        return;
    }
    Dwarf_Half tag = die_tag(dbg, d);
    const char *name = die_name(dbg, d);
    Dwarf_Off inner = 0;
    if (!attr_ref(dbg, d, DW_AT_type, &inner))
        inner = 0;
    char sub[200];
    switch (tag) {
    case DW_TAG_structure_type:
    case DW_TAG_union_type:
    case DW_TAG_enumeration_type:
    case DW_TAG_class_type:
        snprintf(buf, size, "%s %s",
                 tag == DW_TAG_union_type        ? "union"
                 : tag == DW_TAG_enumeration_type ? "enum"
                                                  : "struct",
                 name ? name : "<anonymous>");
        break;
    case DW_TAG_pointer_type:
        type_string(dbg, inner, sub, sizeof sub, depth + 1);
        snprintf(buf, size, "%s *", sub);
        break;
    case DW_TAG_const_type:
    case DW_TAG_volatile_type:
        type_string(dbg, inner, sub, sizeof sub, depth + 1);
        snprintf(buf, size, "%s %s", tag == DW_TAG_const_type ? "const" : "volatile", sub);
        break;
    case DW_TAG_array_type: {
        uint64_t dims[8];
        size_t n = array_dims(dbg, d, dims, 8);
        type_string(dbg, inner, sub, sizeof sub, depth + 1);
        size_t len = (size_t)snprintf(buf, size, "%s", sub);
        for (size_t i = 0; i < n && len < size; i++)
            len += (size_t)snprintf(buf + len, size - len, "[%llu]", (unsigned long long)dims[i]);
        break;
    }
    case DW_TAG_subroutine_type:
        snprintf(buf, size, "function");
        break;
    default:
        snprintf(buf, size, "%s", name ? name : "?");
        break;
    }
    dwarf_dealloc_die(d);
}

/* ---- object-pointer slots -------------------------------------------------------- */

/* Is the struct at off (stripped, complete) `struct HEAD`, or does it start
 * with one (possibly through nested first members)? */
static bool is_object_struct(Dwarf_Debug dbg, rs_dwarf *dw, Dwarf_Off off, int depth)
{
    void *memo = offmap_get(&dw->objectness, off);
    if (memo)
        return memo == (void *)2;
    bool yes = false;
    Dwarf_Die d = off_die(dbg, off);
    if (!d)
        return false;
    const char *name = die_name(dbg, d);
    if (name && strcmp(name, dw->head) == 0) {
        yes = true;
    } else if (depth < 4) {
        Dwarf_Die child = NULL;
        Dwarf_Error e = NULL;
        if (dwarf_child(d, &child, &e) == DW_DLV_OK) {
            /* the first member */
            while (child && die_tag(dbg, child) != DW_TAG_member) {
                Dwarf_Die sib = NULL;
                int r = dwarf_siblingof_b(dbg, child, true, &sib, &e);
                drop(dbg, &e);
                dwarf_dealloc_die(child);
                child = r == DW_DLV_OK ? sib : NULL;
            }
            uint64_t moff;
            Dwarf_Off mt;
            if (child && member_location(dbg, child, &moff) && moff == 0 &&
                attr_ref(dbg, child, DW_AT_type, &mt)) {
                Dwarf_Half tag;
                mt = strip_type(dbg, mt, &tag, NULL);
                if (tag == DW_TAG_structure_type)
                    yes = is_object_struct(dbg, dw, complete_struct(dbg, dw, mt), depth + 1);
            }
            if (child)
                dwarf_dealloc_die(child);
        }
        drop(dbg, &e);
    }
    dwarf_dealloc_die(d);
    offmap_put(&dw->objectness, off, yes ? (void *)2 : (void *)1);
    return yes;
}

typedef struct layout_builder {
    layout_ent *e;
    size_t n, cap;
} layout_builder;

static void lb_add(layout_builder *b, uint64_t off, const char *path, const char *type_name)
{
    rs__grow(&b->e, &b->cap, b->n + 1, sizeof *b->e);
    b->e[b->n++] = (layout_ent){off, path, type_name};
}

static layout *finish_layout(layout_builder *b)
{
    layout *l = rs__xcalloc(1, sizeof *l);
    l->e = b->e;
    l->n = b->n;
    return l;
}

static const layout empty_layout = {NULL, 0};

/* Where in an object of type off the object pointers are. */
static const layout *type_layout(rs_target *t, rs_mod *m, Dwarf_Debug dbg, Dwarf_Off off,
                                 int depth)
{
    rs_dwarf *dw = m->dw;
    if (!off || depth > 24)
        return &empty_layout;
    layout *cached = offmap_get(&dw->layouts, off);
    if (cached)
        return cached;
    layout_builder b = {0};
    const char *tdname = NULL;
    Dwarf_Half tag;
    Dwarf_Off real = strip_type(dbg, off, &tag, &tdname);
    if (tag == DW_TAG_pointer_type) {
        Dwarf_Die d = off_die(dbg, real);
        Dwarf_Off pointee = 0;
        if (d && attr_ref(dbg, d, DW_AT_type, &pointee)) {
            const char *ptd = NULL;
            Dwarf_Half ptag;
            Dwarf_Off p = strip_type(dbg, pointee, &ptag, &ptd);
            if (ptag == DW_TAG_structure_type) {
                p = complete_struct(dbg, dw, p);
                if (is_object_struct(dbg, dw, p, 0)) {
                    Dwarf_Die pd = off_die(dbg, p);
                    const char *sname = pd ? die_name(dbg, pd) : NULL;
                    lb_add(&b, 0, "", rs__strdup(t, sname ? sname : ptd ? ptd : "?"));
                    if (pd)
                        dwarf_dealloc_die(pd);
                }
            }
        }
        if (d)
            dwarf_dealloc_die(d);
    } else if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type ||
               tag == DW_TAG_class_type) {
        Dwarf_Die d = off_die(dbg, complete_struct(dbg, dw, real));
        Dwarf_Die child = NULL;
        Dwarf_Error e = NULL;
        if (d && dwarf_child(d, &child, &e) == DW_DLV_OK) {
            while (child) {
                uint64_t moff;
                Dwarf_Off mt;
                if (die_tag(dbg, child) == DW_TAG_member && !has_attr(dbg, child, DW_AT_bit_size) &&
                    member_location(dbg, child, &moff) && attr_ref(dbg, child, DW_AT_type, &mt)) {
                    const layout *sub = type_layout(t, m, dbg, mt, depth + 1);
                    if (sub->n) {
                        const char *mname = die_name(dbg, child);
                        for (size_t i = 0; i < sub->n; i++)
                            lb_add(&b, moff + sub->e[i].off,
                                   mname ? rs__sprintf(t, ".%s%s", mname, sub->e[i].path)
                                         : sub->e[i].path,
                                   sub->e[i].type_name);
                    }
                }
                Dwarf_Die sib = NULL;
                int r = dwarf_siblingof_b(dbg, child, true, &sib, &e);
                drop(dbg, &e);
                dwarf_dealloc_die(child);
                child = r == DW_DLV_OK ? sib : NULL;
            }
        }
        drop(dbg, &e);
        if (d)
            dwarf_dealloc_die(d);
    } else if (tag == DW_TAG_array_type) {
        Dwarf_Die d = off_die(dbg, real);
        Dwarf_Off et = 0;
        uint64_t dims[8];
        size_t nd = d ? array_dims(dbg, d, dims, 8) : 0;
        if (d && nd && attr_ref(dbg, d, DW_AT_type, &et)) {
            const layout *sub = type_layout(t, m, dbg, et, depth + 1);
            uint64_t esize = type_size(dbg, dw, et, 0);
            uint64_t total = 1;
            for (size_t i = 0; i < nd; i++)
                total = dims[i] && total <= UINT64_MAX / dims[i] ? total * dims[i] : 0;
            if (sub->n && esize && total) {
                uint64_t n = total;
                if (n > RS_ARRAY_CAP) {
                    n = RS_ARRAY_CAP;
                    char tn[256];
                    type_string(dbg, real, tn, sizeof tn, 0);
                    rs__warn(t, "%s: array of type %s has %llu elements: only the first %u "
                             "are searched for object pointers", m->pub.name, tn,
                             (unsigned long long)total, RS_ARRAY_CAP);
                }
                for (uint64_t k = 0; k < n; k++) {
                    char idx[96];
                    size_t len = 0;
                    uint64_t rem = k, stride = total;
                    for (size_t i = 0; i < nd; i++) {
                        stride /= dims[i];
                        len += (size_t)snprintf(idx + len, sizeof idx - len, "[%llu]",
                                                (unsigned long long)(rem / stride));
                        rem %= stride;
                        if (len >= sizeof idx)
                            len = sizeof idx - 1;
                    }
                    for (size_t i = 0; i < sub->n; i++)
                        lb_add(&b, k * esize + sub->e[i].off,
                               rs__sprintf(t, "%s%s", idx, sub->e[i].path), sub->e[i].type_name);
                }
            }
        }
        if (d)
            dwarf_dealloc_die(d);
    }
    layout *l = finish_layout(&b);
    offmap_put(&dw->layouts, off, l);
    return l;
}

/* ---- globals ------------------------------------------------------------------------ */

static bool any_dwarf(rs_target *t)
{
    for (size_t i = 0; i < t->nmods; i++)
        if (indexed(t, t->mods[i]))
            return true;
    return false;
}

typedef struct gent {
    rs_global g;
    Dwarf_Off type;
    rs_mod *m;
} gent;

static int cmp_gent(const void *a, const void *b)
{
    const gent *x = a, *y = b;
    if (x->g.addr != y->g.addr)
        return x->g.addr < y->g.addr ? -1 : 1;
    return strcmp(x->g.display, y->g.display);
}

/* Can module m's DWARF mention struct `head` at all? Indexing a module's
 * DWARF is the expensive part of a run (libc's, when its debug package is
 * installed, takes most of a second), and a module whose string tables never
 * name the head struct cannot hold a pointer to it. Scans the raw string
 * sections of the file holding the DWARF (the separate debug file if any);
 * unsure answers (compressed sections, unreadable files) say yes. */
static bool module_may_name(rs_target *t, rs_mod *m, const char *head)
{
    if (!m->pub.loaded || !m->pub.has_dwarf)
        return false;
    rs_elf local, *e = &m->elf;
    if (m->debug_path) {
        rs_file *f = rs__file_open(t, m->debug_path);
        if (!f->data || rs__elf_parse(&local, f, NULL) != 0)
            return true;
        e = &local;
    }
    static const char *const sections[] = {".debug_str", ".debug_info"};
    size_t hlen = strlen(head);
    bool any = false;
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        const Elf64_Shdr *sh = rs__elf_section(e, sections[i]);
        if (!sh)
            continue;
        if (sh->sh_offset > e->file->size || sh->sh_size > e->file->size - sh->sh_offset)
            return true;
        any = true;
        const uint8_t *data = e->file->data + sh->sh_offset;
        size_t size = sh->sh_size;
        uint8_t *inflated = NULL;
        if (sh->sh_flags & SHF_COMPRESSED) {
            /* Debian's debug files compress their sections (zlib). */
            Elf64_Chdr ch; /* copied: the section may sit at an odd offset */
            uLongf out = 0;
            if (size < sizeof ch)
                return true;
            memcpy(&ch, data, sizeof ch);
            /* zlib expands at most ~1032x; a larger claim is corrupt. */
            if (ch.ch_type != ELFCOMPRESS_ZLIB || ch.ch_size > (uint64_t)size * 1032u ||
                ch.ch_size > ((uint64_t)1 << 30))
                return true;
            out = (uLongf)ch.ch_size;
            inflated = malloc(out ? out : 1);
            if (!inflated || uncompress(inflated, &out, data + sizeof ch,
                                        (uLong)(size - sizeof ch)) != Z_OK) {
                free(inflated);
                return true;
            }
            data = inflated;
            size = out;
        }
        /* Names are NUL-terminated strings: look for "head\0" (in
         * .debug_info, inline DW_FORM_string names have no NUL before). */
        bool found = false;
        const uint8_t *p = data, *end = data + size;
        while (p < end && !found) {
            const uint8_t *hit = memmem(p, (size_t)(end - p), head, hlen + 1);
            if (!hit)
                break;
            found = hit == data || hit[-1] == 0 || i == 1;
            p = hit + 1;
        }
        free(inflated);
        if (found)
            return true;
    }
    return !any;
}

/* head != NULL: only what rs_pointer_slots(head) needs (modules whose DWARF
 * cannot name the head struct are not indexed); rs_globals later rebuilds
 * the full list. The old arrays stay alive (slots point into them) until
 * rs_close. */
static void build_globals(rs_target *t, const char *head)
{
    if (t->globals_done && !(t->globals_filtered && !head))
        return;
    if (t->globals_done) {
        /* Keep the filtered arrays for the slots that point into them. */
        void **keep = rs__alloc(t, 3 * sizeof(void *));
        keep[0] = t->globals;
        keep[1] = t->global_types;
        keep[2] = t->global_mods;
        t->retired_globals = keep;
        t->globals = NULL;
        t->global_types = NULL;
        t->global_mods = NULL;
        t->nglobals = 0;
    }
    t->globals_done = true;
    t->globals_filtered = head != NULL;
    gent *all = NULL;
    size_t n = 0, cap = 0;
    for (size_t mi = 0; mi < t->nmods; mi++) {
        rs_mod *m = t->mods[mi];
        if (head) {
            if (m->slots_skip == 0)
                m->slots_skip = module_may_name(t, m, head) ? 2 : 1;
            if (m->slots_skip == 1)
                continue;
        }
        rs_dwarf *dw = indexed(t, m);
        if (dw) {
            for (size_t i = 0; i < dw->nvars; i++) {
                const rs_var *v = &dw->vars[i];
                rs__grow(&all, &cap, n + 1, sizeof *all);
                gent *ge = &all[n++];
                rs_global *g = &ge->g;
                char tn[256];
                type_string(dw->dbg, v->type, tn, sizeof tn, 0);
                g->name = v->name;
                g->function = v->function;
                g->display = v->function ? rs__sprintf(t, "%s::%s", v->function, v->name) : v->name;
                g->cu = dw->cus[v->cu].name;
                g->type_name = rs__strdup(t, tn);
                g->addr = v->addr + m->pub.bias;
                if (v->external && !v->function && !m->pub.is_exe && t->nmods > 0) {
                    /* A library global the executable uses lives in the
                     * executable (copy relocation); the library's own copy
                     * is stale. */
                    const rs_sym *cs = rs__sym_find(t, t->mods[0], v->name);
                    if (cs && ELF64_ST_TYPE(cs->info) == STT_OBJECT &&
                        ELF64_ST_BIND(cs->info) != STB_LOCAL)
                        g->addr = cs->addr;
                }
                g->size = v->type ? type_size(dw->dbg, dw, v->type, 0) : 0;
                g->is_external = v->external;
                g->module = &m->pub;
                ge->type = v->type;
                ge->m = m;
            }
        } else if (m->pub.loaded && (m->pub.is_exe || m->elf.symtab)) {
            /* No DWARF: data symbols, without types. */
            rs_symbol dummy;
            (void)rs_symbol_at(t, m->pub.start, &dummy); /* loads the table */
            for (size_t i = 0; i < m->nsyms; i++) {
                const rs_sym *s = &m->syms[i];
                if (ELF64_ST_TYPE(s->info) != STT_OBJECT || s->size == 0)
                    continue;
                rs__grow(&all, &cap, n + 1, sizeof *all);
                gent *ge = &all[n++];
                memset(ge, 0, sizeof *ge);
                ge->g.name = ge->g.display = s->name;
                ge->g.cu = "";
                ge->g.addr = s->addr;
                ge->g.size = s->size;
                ge->g.is_external = ELF64_ST_BIND(s->info) != STB_LOCAL;
                ge->g.module = &m->pub;
                ge->m = m;
            }
        }
    }
    RS_QSORT(all, n, sizeof *all, cmp_gent);
    t->globals = rs__xmalloc((n + 1) * sizeof *t->globals);
    t->global_types = rs__xmalloc((n + 1) * sizeof *t->global_types);
    t->global_mods = rs__xmalloc((n + 1) * sizeof *t->global_mods);
    for (size_t i = 0; i < n; i++) {
        if (t->nglobals > 0 && cmp_gent(&all[i - 1], &all[i]) == 0)
            continue; /* one entry per address and name */
        t->globals[t->nglobals] = all[i].g;
        t->global_types[t->nglobals] = all[i].type;
        t->global_mods[t->nglobals] = all[i].m;
        t->nglobals++;
    }
    free(all);
}

int rs_globals(rs_target *t, const rs_global **ret, size_t *count, rs_error *err)
{
    build_globals(t, NULL);
    *ret = t->globals;
    *count = t->nglobals;
    bool syms = false;
    for (size_t i = 0; i < t->nmods; i++)
        syms = syms || t->mods[i]->pub.has_symbols;
    if (!any_dwarf(t) && !syms) {
        rs__seterr(err, "%s and its libraries have neither DWARF nor symbols: no globals",
                   t->program);
        return -1;
    }
    return 0;
}

int rs__dwarf_find_variable(rs_target *t, const char *name, rs_symbol *ret)
{
    const rs_var *found = NULL;
    rs_mod *found_mod = NULL;
    for (size_t mi = 0; mi < t->nmods; mi++) {
        rs_mod *m = t->mods[mi];
        rs_dwarf *dw = indexed(t, m);
        if (!dw)
            continue;
        for (size_t i = 0; i < dw->nvars; i++) {
            const rs_var *v = &dw->vars[i];
            /* Statics only in the executable: a library's private `cache`
             * is not what anyone looking up "cache" means. */
            if (v->function || strcmp(v->name, name) != 0 || (!v->external && !m->pub.is_exe))
                continue;
            if (!found || (v->external && !found->external)) {
                found = v;
                found_mod = m;
            }
        }
        if (found && found->external)
            break; /* an external definition wins; the executable first */
    }
    if (!found)
        return -1;
    rs_dwarf *dw = found_mod->dw;
    memset(ret, 0, sizeof *ret);
    ret->name = found->name;
    ret->addr = found->addr + found_mod->pub.bias;
    ret->size = found->type ? type_size(dw->dbg, dw, found->type, 0) : 0;
    ret->is_global = found->external;
    ret->module = &found_mod->pub;
    return 0;
}

int rs_pointer_slots(rs_target *t, const char *head, const rs_slot **ret, size_t *count,
                     rs_error *err)
{
    *ret = NULL;
    *count = 0;
    if (!head || !head[0]) {
        rs__seterr(err, "rs_pointer_slots needs a struct name");
        return -1;
    }
    if (t->slots_head && strcmp(t->slots_head, head) == 0) {
        *ret = t->slots;
        *count = t->nslots;
        return 0;
    }
    if (!any_dwarf(t)) {
        rs__seterr(err, "no DWARF debug info in %s or its libraries: cannot find pointers "
                   "to %s in globals (build with -g)", t->program, head);
        return -1;
    }
    build_globals(t, head);
    free(t->slots);
    free(t->slots_head);
    t->slots = NULL;
    t->nslots = 0;
    t->slots_head = rs__xstrdup(head);
    size_t cap = 0;
    for (size_t gi = 0; gi < t->nglobals; gi++) {
        const rs_global *g = &t->globals[gi];
        rs_mod *m = t->global_mods[gi];
        Dwarf_Off type = t->global_types[gi];
        rs_dwarf *dw = m ? m->dw : NULL;
        if (!type || !dw || !dw->dbg || !dw->indexed)
            continue;
        if (!dw->head || strcmp(dw->head, head) != 0) {
            offmap_free(&dw->layouts, true);
            offmap_free(&dw->objectness, false);
            dw->head = rs__strdup(t, head);
        }
        const layout *l = type_layout(t, m, dw->dbg, type, 0);
        for (size_t i = 0; i < l->n; i++) {
            rs__grow(&t->slots, &cap, t->nslots + 1, sizeof *t->slots);
            t->slots[t->nslots++] = (rs_slot){
                g->addr + l->e[i].off,
                l->e[i].path[0] ? rs__sprintf(t, "%s%s", g->display, l->e[i].path) : g->display,
                l->e[i].type_name, g};
        }
    }
    *ret = t->slots;
    *count = t->nslots;
    return 0;
}

/* ---- layout checks ----------------------------------------------------------------- */

/* A named type in any module (executable first): its module and DIE. */
static bool find_type(rs_target *t, const char *name, rs_mod **mret, Dwarf_Off *off)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < t->nmods; i++) {
            rs_dwarf *dw = indexed(t, t->mods[i]);
            if (!dw)
                continue;
            const rs_tname *tn = find_tname(dw, name, pass == 0);
            if (tn) {
                *mret = t->mods[i];
                *off = tn->off;
                return true;
            }
        }
    return false;
}

/* The member called name in struct/union d, looking into anonymous members. */
static bool find_member(Dwarf_Debug dbg, rs_dwarf *dw, Dwarf_Off soff, const char *name,
                        size_t namelen, uint64_t *moff, Dwarf_Off *mtype, int depth)
{
    Dwarf_Die d = off_die(dbg, soff);
    if (!d || depth > 8) {
        if (d)
            dwarf_dealloc_die(d);
        return false;
    }
    bool found = false;
    Dwarf_Die child = NULL;
    Dwarf_Error e = NULL;
    if (dwarf_child(d, &child, &e) == DW_DLV_OK) {
        while (child && !found) {
            uint64_t off;
            Dwarf_Off mt;
            if (die_tag(dbg, child) == DW_TAG_member && member_location(dbg, child, &off) &&
                attr_ref(dbg, child, DW_AT_type, &mt)) {
                const char *mname = die_name(dbg, child);
                if (mname && strlen(mname) == namelen && memcmp(mname, name, namelen) == 0) {
                    *moff = off;
                    *mtype = mt;
                    found = true;
                } else if (!mname) {
                    Dwarf_Half tag;
                    Dwarf_Off st = strip_type(dbg, mt, &tag, NULL);
                    uint64_t inner;
                    if ((tag == DW_TAG_structure_type || tag == DW_TAG_union_type) &&
                        find_member(dbg, dw, st, name, namelen, &inner, mtype, depth + 1)) {
                        *moff = off + inner;
                        found = true;
                    }
                }
            }
            Dwarf_Die sib = NULL;
            int r = dwarf_siblingof_b(dbg, child, true, &sib, &e);
            drop(dbg, &e);
            dwarf_dealloc_die(child);
            child = r == DW_DLV_OK ? sib : NULL;
        }
        if (child)
            dwarf_dealloc_die(child);
    }
    drop(dbg, &e);
    dwarf_dealloc_die(d);
    return found;
}

int64_t rs_member_offset(rs_target *t, const char *type, const char *member, rs_error *err)
{
    rs_mod *m;
    Dwarf_Off cur;
    if (!find_type(t, type, &m, &cur)) {
        rs__seterr(err, "type %s not found in the DWARF of %s or its libraries", type,
                   t->program);
        return -1;
    }
    rs_dwarf *dw = m->dw;
    Dwarf_Debug dbg = dw->dbg;
    uint64_t total = 0;
    const char *p = member;
    while (*p) {
        Dwarf_Half tag;
        Dwarf_Off real = strip_type(dbg, cur, &tag, NULL);
        if (*p == '[') {
            char *end;
            unsigned long long idx = strtoull(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || tag != DW_TAG_array_type) {
                rs__seterr(err, "%s.%s: bad index at \"%s\"", type, member, p);
                return -1;
            }
            Dwarf_Die d = off_die(dbg, real);
            Dwarf_Off et = 0;
            uint64_t dims[8];
            size_t nd = d ? array_dims(dbg, d, dims, 8) : 0;
            bool ok = d && attr_ref(dbg, d, DW_AT_type, &et) && nd == 1;
            if (d)
                dwarf_dealloc_die(d);
            if (!ok) {
                rs__seterr(err, "%s.%s: only one-dimensional arrays can be indexed", type,
                           member);
                return -1;
            }
            total += idx * type_size(dbg, dw, et, 0);
            cur = et;
            p = end + 1;
            if (*p == '.')
                p++;
            continue;
        }
        size_t len = strcspn(p, ".[");
        if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type || tag == DW_TAG_class_type)
            real = complete_struct(dbg, dw, real);
        else {
            rs__seterr(err, "%s.%s: \"%.*s\" is not inside a struct or union", type, member,
                       (int)len, p);
            return -1;
        }
        uint64_t off;
        Dwarf_Off mt;
        if (!find_member(dbg, dw, real, p, len, &off, &mt, 0)) {
            rs__seterr(err, "%s has no member %.*s", type, (int)len, p);
            return -1;
        }
        total += off;
        cur = mt;
        p += len;
        if (*p == '.')
            p++;
    }
    return (int64_t)total;
}

int64_t rs_type_size(rs_target *t, const char *type, rs_error *err)
{
    rs_mod *m;
    Dwarf_Off off;
    if (!find_type(t, type, &m, &off)) {
        rs__seterr(err, "type %s not found in the DWARF of %s or its libraries", type,
                   t->program);
        return -1;
    }
    uint64_t size = type_size(m->dw->dbg, m->dw, off, 0);
    if (!size) {
        rs__seterr(err, "type %s has no known size", type);
        return -1;
    }
    return (int64_t)size;
}

/* ---- call frame information ----------------------------------------------------------- */

static bool load_frames(rs_target *t, rs_mod *m)
{
    rs_dwarf *dw = get_dw(m);
    if (dw->frames_tried)
        return dw->fdes != NULL;
    dw->frames_tried = true;
    if (!m->pub.loaded)
        return false;
    /* .eh_frame lives in the module file, even when DWARF is separate. */
    if (!m->debug_path && info_dbg(t, m))
        dw->fdbg = dw->dbg;
    else
        dw->fdbg = open_dbg(t, m->pub.path, false);
    if (!dw->fdbg)
        return false;
    Dwarf_Debug dbg = dw->fdbg;
    dwarf_set_frame_rule_table_size(dbg, DW_REG_TABLE_SIZE);
    dwarf_set_frame_rule_initial_value(dbg, DW_FRAME_SAME_VAL);
    dwarf_set_frame_cfa_value(dbg, DW_FRAME_CFA_COL3);
    dwarf_set_frame_same_value(dbg, DW_FRAME_SAME_VAL);
    dwarf_set_frame_undefined_value(dbg, DW_FRAME_UNDEFINED_VAL);
    Dwarf_Error e = NULL;
    if (dwarf_get_fde_list_eh(dbg, &dw->cies, &dw->ncies, &dw->fdes, &dw->nfdes, &e) ==
        DW_DLV_OK) {
        dw->eh = true;
        return true;
    }
    drop(dbg, &e);
    dw->cies = NULL;
    dw->fdes = NULL;
    if (dwarf_get_fde_list(dbg, &dw->cies, &dw->ncies, &dw->fdes, &dw->nfdes, &e) == DW_DLV_OK)
        return true;
    drop(dbg, &e);
    dw->cies = NULL;
    dw->fdes = NULL;
    return false;
}

static void set_rule(rs_rule *r, Dwarf_Small vt, Dwarf_Signed offrel, Dwarf_Signed reg,
                     Dwarf_Signed off, Dwarf_Ptr block)
{
    memset(r, 0, sizeof *r);
    switch (vt) {
    case DW_EXPR_OFFSET:
        if (reg == DW_FRAME_SAME_VAL)
            r->kind = RS_RULE_SAME;
        else if (reg == DW_FRAME_UNDEFINED_VAL)
            r->kind = RS_RULE_UNDEFINED;
        else if (reg == DW_FRAME_CFA_COL3 && offrel) {
            r->kind = RS_RULE_OFFSET;
            r->offset = off;
        } else if (!offrel) {
            r->kind = RS_RULE_REGISTER;
            r->reg = (int)reg;
        } else {
            r->kind = RS_RULE_REGISTER; /* reg + offset: the CFA form */
            r->reg = (int)reg;
            r->offset = off;
        }
        break;
    case DW_EXPR_VAL_OFFSET:
        r->kind = RS_RULE_VAL_OFFSET;
        r->offset = off;
        break;
    case DW_EXPR_EXPRESSION:
    case DW_EXPR_VAL_EXPRESSION:
        r->kind = vt == DW_EXPR_EXPRESSION ? RS_RULE_EXPRESSION : RS_RULE_VAL_EXPRESSION;
        r->expr = block;
        r->exprlen = (size_t)off;
        break;
    default:
        r->kind = RS_RULE_UNDEFINED;
        break;
    }
}

int rs__cfi_row(rs_target *t, rs_mod *m, uint64_t pc, rs_cfi_row *row)
{
    if (!load_frames(t, m))
        return -1;
    rs_dwarf *dw = m->dw;
    Dwarf_Debug dbg = dw->fdbg;
    Dwarf_Error e = NULL;
    Dwarf_Fde fde;
    Dwarf_Addr lo, hi;
    if (dwarf_get_fde_at_pc(dw->fdes, pc, &fde, &lo, &hi, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return -1;
    }
    memset(row, 0, sizeof *row);
    Dwarf_Small vt = 0;
    Dwarf_Signed offrel = 0, reg = 0, off = 0;
    Dwarf_Ptr block = NULL;
    Dwarf_Addr row_pc = 0, next_pc = 0;
    Dwarf_Bool more = 0;
    if (dwarf_get_fde_info_for_cfa_reg3_b(fde, pc, &vt, &offrel, &reg, &off, &block, &row_pc,
                                          &more, &next_pc, &e) != DW_DLV_OK) {
        drop(dbg, &e);
        return -1;
    }
    if (vt == DW_EXPR_OFFSET) {
        row->cfa.kind = RS_RULE_REGISTER;
        row->cfa.reg = (int)reg;
        row->cfa.offset = off;
    } else if (vt == DW_EXPR_EXPRESSION || vt == DW_EXPR_VAL_EXPRESSION) {
        row->cfa.kind = RS_RULE_VAL_EXPRESSION; /* DW_CFA_def_cfa_expression: the value */
        row->cfa.expr = block;
        row->cfa.exprlen = (size_t)off;
    } else {
        return -1;
    }
    for (int r = 0; r < RS_NREGS; r++) {
        if (dwarf_get_fde_info_for_reg3_b(fde, (Dwarf_Half)r, pc, &vt, &offrel, &reg, &off,
                                          &block, &row_pc, &more, &next_pc, &e) != DW_DLV_OK) {
            drop(dbg, &e);
            row->regs[r].kind = r == RS_REG_RA ? RS_RULE_UNDEFINED : RS_RULE_SAME;
            continue;
        }
        set_rule(&row->regs[r], vt, offrel, reg, off, block);
    }
    Dwarf_Cie cie;
    if (dwarf_get_cie_of_fde(fde, &cie, &e) == DW_DLV_OK) {
        Dwarf_Unsigned bytes, caf, ilen;
        Dwarf_Small ver;
        char *aug = NULL;
        Dwarf_Signed daf;
        Dwarf_Half rar, osz;
        Dwarf_Ptr init;
        if (dwarf_get_cie_info_b(cie, &bytes, &ver, &aug, &caf, &daf, &rar, &init, &ilen, &osz,
                                 &e) == DW_DLV_OK)
            row->signal_frame = aug && strchr(aug, 'S');
    }
    drop(dbg, &e);
    return 0;
}
