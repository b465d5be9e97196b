/*
 * symbols.c -- ELF symbol tables: name -> address and address -> name.
 *
 * Each module's table is loaded on first use from .symtab (a superset of
 * .dynsym) or, for a stripped file, from .dynsym; symbols are relocated by
 * the module's bias and kept sorted by address and by name.
 */
#include "target_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rs__syms_free(rs_mod *m)
{
    free(m->syms);
    free(m->by_name);
    m->syms = NULL;
    m->by_name = NULL;
    m->nsyms = 0;
}

static int cmp_addr(const void *a, const void *b)
{
    const rs_sym *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    /* at one address: functions, then globals, first */
    int fx = ELF64_ST_TYPE(x->info) == STT_FUNC, fy = ELF64_ST_TYPE(y->info) == STT_FUNC;
    if (fx != fy)
        return fy - fx;
    int gx = ELF64_ST_BIND(x->info) != STB_LOCAL, gy = ELF64_ST_BIND(y->info) != STB_LOCAL;
    return gy - gx;
}

static int cmp_name(const void *a, const void *b)
{
    const rs_sym *x = *(rs_sym *const *)a, *y = *(rs_sym *const *)b;
    return strcmp(x->name, y->name);
}

static void load_syms(rs_target *t, rs_mod *m)
{
    if (m->syms_loaded)
        return;
    m->syms_loaded = true;
    if (!m->pub.loaded)
        return;
    const rs_elf *e = &m->elf;
    rs_elf dbg;
    if (!e->symtab && m->debug_path) {
        /* A stripped library with a separate debug file: its .symtab has
         * the local symbols too (same addresses). */
        rs_file *df = rs__file_open(t, m->debug_path);
        if (df->data && rs__elf_parse(&dbg, df, NULL) == 0 && dbg.symtab)
            e = &dbg;
    }
    const Elf64_Shdr *s = e->symtab ? e->symtab : e->dynsym;
    if (!s)
        return;
    const Elf64_Shdr *strs = &e->sh[s->sh_link];
    const char *str = (const char *)e->file->data + strs->sh_offset;
    size_t n = s->sh_size / sizeof(Elf64_Sym);
    const Elf64_Sym *syms = (const Elf64_Sym *)(e->file->data + s->sh_offset);
    m->syms = rs__xmalloc(n * sizeof *m->syms);
    for (size_t i = 0; i < n; i++) {
        const Elf64_Sym *y = &syms[i];
        int type = ELF64_ST_TYPE(y->st_info);
        if (y->st_shndx == SHN_UNDEF || y->st_name == 0 || y->st_name >= strs->sh_size)
            continue;
        if (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE &&
            type != STT_GNU_IFUNC)
            continue;
        const char *name = str + y->st_name;
        if (!memchr(name, 0, strs->sh_size - y->st_name) || name[0] == 0)
            continue;
        if (type == STT_NOTYPE && (name[0] == '.' || name[0] == '$'))
            continue; /* local labels */
        rs_sym *o = &m->syms[m->nsyms++];
        o->addr = y->st_shndx == SHN_ABS ? y->st_value : y->st_value + m->pub.bias;
        o->size = y->st_size;
        o->name = name;
        o->info = y->st_info;
    }
    RS_QSORT(m->syms, m->nsyms, sizeof *m->syms, cmp_addr);
    m->by_name = rs__xmalloc((m->nsyms + 1) * sizeof *m->by_name);
    for (size_t i = 0; i < m->nsyms; i++)
        m->by_name[i] = &m->syms[i];
    RS_QSORT(m->by_name, m->nsyms, sizeof *m->by_name, cmp_name);
}

static void fill(rs_symbol *ret, const rs_sym *s, const rs_mod *m)
{
    ret->name = s->name;
    ret->addr = s->addr;
    ret->size = s->size;
    ret->is_function = ELF64_ST_TYPE(s->info) == STT_FUNC ||
                       ELF64_ST_TYPE(s->info) == STT_GNU_IFUNC;
    ret->is_global = ELF64_ST_BIND(s->info) != STB_LOCAL;
    ret->module = &m->pub;
}

const rs_sym *rs__sym_find(rs_target *t, rs_mod *m, const char *name)
{
    load_syms(t, m);
    size_t lo = 0, hi = m->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->by_name[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const rs_sym *best = NULL;
    for (size_t i = lo; i < m->nsyms && strcmp(m->by_name[i]->name, name) == 0; i++) {
        const rs_sym *s = m->by_name[i];
        if (!best || (ELF64_ST_BIND(best->info) == STB_LOCAL &&
                      ELF64_ST_BIND(s->info) != STB_LOCAL))
            best = s;
    }
    return best;
}

int rs_symbol_lookup(rs_target *t, const char *name, rs_symbol *ret, rs_error *err)
{
    const rs_sym *local = NULL;
    rs_mod *local_mod = NULL;
    for (size_t i = 0; i < t->nmods; i++) {
        const rs_sym *s = rs__sym_find(t, t->mods[i], name);
        if (s && ELF64_ST_BIND(s->info) != STB_LOCAL) {
            fill(ret, s, t->mods[i]);
            return 0;
        }
        if (s && !local && t->mods[i]->pub.is_exe) {
            /* A local (static) symbol counts only in the executable: a
             * library's private `cache` is not what "cache" means. */
            local = s;
            local_mod = t->mods[i];
        }
    }
    if (local) {
        fill(ret, local, local_mod);
        return 0;
    }
    if (rs__dwarf_find_variable(t, name, ret) == 0)
        return 0;
    size_t nsym = 0;
    for (size_t i = 0; i < t->nmods; i++)
        nsym += t->mods[i]->pub.has_symbols || t->mods[i]->pub.has_dwarf;
    rs__seterr(err, "symbol %s not found in %s or its %zu shared libraries (%zu of %zu "
               "modules have symbols or DWARF)",
               name, t->nmods ? t->mods[0]->pub.name : "?", t->nmods ? t->nmods - 1 : 0, nsym,
               t->nmods);
    return -1;
}

const rs_sym *rs__sym_at(rs_target *t, rs_mod *m, uint64_t addr)
{
    load_syms(t, m);
    size_t lo = 0, hi = m->nsyms;
    while (lo < hi) { /* first symbol above addr */
        size_t mid = lo + (hi - lo) / 2;
        if (m->syms[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    /* Prefer a symbol whose extent holds addr (sizes nest: a local label may
     * sit inside a function); else the closest one below. */
    for (size_t i = lo; i-- > 0 && lo - i <= 64;) {
        const rs_sym *s = &m->syms[i];
        if (s->size && addr < s->addr + s->size) {
            /* the preferred symbol at one address sorts first */
            while (i > 0 && m->syms[i - 1].addr == s->addr && m->syms[i - 1].size) {
                i--;
                s = &m->syms[i];
            }
            return s;
        }
    }
    const rs_sym *closest = &m->syms[lo - 1];
    while (closest > m->syms && closest[-1].addr == closest->addr)
        closest--;
    return closest;
}

int rs_symbol_at(rs_target *t, uint64_t addr, rs_symbol *ret)
{
    rs_mod *m = rs__mod_at(t, addr);
    if (!m)
        return -1;
    const rs_sym *s = rs__sym_at(t, m, addr);
    if (!s)
        return -1;
    fill(ret, s, m);
    return 0;
}

const char *rs_describe_addr(rs_target *t, uint64_t addr, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    rs_mod *m = rs__mod_at(t, addr);
    if (!m) {
        snprintf(buf, size, "0x%llx", (unsigned long long)addr);
        return buf;
    }
    char prefix[256] = "";
    if (!m->pub.is_exe)
        snprintf(prefix, sizeof prefix, "%s:", m->pub.name);
    const rs_sym *s = rs__sym_at(t, m, addr);
    const char *fn = NULL;
    uint64_t base = 0;
    if (s) {
        fn = s->name;
        base = s->addr;
    }
    if (!fn) {
        snprintf(buf, size, "%s0x%llx", m->pub.is_exe ? "" : prefix,
                 (unsigned long long)addr);
    } else if (addr == base) {
        snprintf(buf, size, "%s%s", prefix, fn);
    } else {
        snprintf(buf, size, "%s%s+0x%llx", prefix, fn, (unsigned long long)(addr - base));
    }
    return buf;
}
