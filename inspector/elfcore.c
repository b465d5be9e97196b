/*
 * elfcore.c -- ELF files (executables, shared libraries) and core files.
 *
 * A core file is an ELF file of type ET_CORE: PT_LOAD segments hold memory
 * (p_filesz bytes of each, which may be 0: kernel cores leave out text and
 * read-only file pages, gdb cores leave out whole segments), PT_NOTE holds
 * NT_PRSTATUS (one per thread: pid, registers), NT_PRPSINFO (name, args),
 * NT_AUXV (AT_ENTRY, AT_PHDR), NT_FILE (file mappings) and NT_SIGINFO.
 *
 * Memory the core leaves out is read from the mapped files themselves
 * (NT_FILE gives file and offset for every file-backed mapping): an unwritten
 * private file page is exactly the file's bytes. Bytes a segment *claims*
 * (within p_filesz) but a truncated core lacks are never replaced by file
 * bytes: they may have been written, so reads there fail instead.
 */
#include "target_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(rs_regs) == sizeof(elf_gregset_t), "rs_regs mirrors user_regs_struct");

/* ---- files ------------------------------------------------------------------ */

rs_file *rs__file_open(rs_target *t, const char *path)
{
    for (rs_file *f = t->files; f; f = f->next)
        if (strcmp(f->path, path) == 0)
            return f;
    rs_file *f = rs__xcalloc(1, sizeof *f);
    f->path = rs__xstrdup(path);
    f->next = t->files;
    t->files = f;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        f->err = errno;
        return f;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        f->err = errno;
    } else if (!S_ISREG(st.st_mode)) {
        f->err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    } else if (st.st_size == 0) {
        f->err = ENODATA;
    } else {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            f->err = errno;
        } else {
            f->data = p;
            f->size = (size_t)st.st_size;
        }
    }
    close(fd);
    return f;
}

void rs__hex(char *out, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

/* ---- ELF files -------------------------------------------------------------- */

static bool in_file(const rs_file *f, uint64_t off, uint64_t len)
{
    return off <= f->size && len <= f->size - off;
}

/* Walk the notes in [p, p + n); calls fn for each. */
typedef void (*note_fn)(void *ctx, const char *name, uint32_t type, const uint8_t *desc,
                        size_t descsz);
static void walk_notes(const uint8_t *p, size_t n, note_fn fn, void *ctx)
{
    size_t off = 0;
    while (off + sizeof(Elf64_Nhdr) <= n) {
        Elf64_Nhdr nh;
        memcpy(&nh, p + off, sizeof nh);
        size_t name_off = off + sizeof nh;
        size_t desc_off = name_off + (((size_t)nh.n_namesz + 3) & ~(size_t)3);
        size_t next = desc_off + (((size_t)nh.n_descsz + 3) & ~(size_t)3);
        if (desc_off > n || next > n + 3 || next <= off || nh.n_descsz > n - desc_off)
            break;
        char name[16] = "";
        if (nh.n_namesz > 0 && nh.n_namesz < sizeof name) {
            memcpy(name, p + name_off, nh.n_namesz);
            name[nh.n_namesz - 1] = 0;
        }
        fn(ctx, name, nh.n_type, p + desc_off, nh.n_descsz);
        off = next;
    }
}

static void note_build_id(void *ctx, const char *name, uint32_t type, const uint8_t *desc,
                          size_t descsz)
{
    rs_elf *e = ctx;
    if (type == NT_GNU_BUILD_ID && strcmp(name, "GNU") == 0 && descsz <= sizeof e->build_id &&
        e->build_id_len == 0) {
        memcpy(e->build_id, desc, descsz);
        e->build_id_len = descsz;
    }
}

const Elf64_Shdr *rs__elf_section(const rs_elf *e, const char *name)
{
    if (!e->sh || !e->shstr)
        return NULL;
    for (size_t i = 0; i < e->shnum; i++)
        if (e->sh[i].sh_name < e->shstrsize && strcmp(e->shstr + e->sh[i].sh_name, name) == 0)
            return &e->sh[i];
    return NULL;
}

static const Elf64_Shdr *symbol_section(rs_elf *e, uint32_t type)
{
    for (size_t i = 0; i < e->shnum; i++) {
        const Elf64_Shdr *s = &e->sh[i];
        if (s->sh_type != type || s->sh_entsize != sizeof(Elf64_Sym) || s->sh_size == 0 ||
            s->sh_offset % 8 != 0) /* read in place: must be aligned */
            continue;
        if (!in_file(e->file, s->sh_offset, s->sh_size) || s->sh_link >= e->shnum)
            continue;
        const Elf64_Shdr *str = &e->sh[s->sh_link];
        if (str->sh_type != SHT_STRTAB || !in_file(e->file, str->sh_offset, str->sh_size))
            continue;
        return s;
    }
    return NULL;
}

int rs__elf_parse(rs_elf *e, rs_file *f, rs_error *err)
{
    memset(e, 0, sizeof *e);
    e->file = f;
    if (f->size < SELFMAG || memcmp(f->data, ELFMAG, SELFMAG) != 0) {
        rs__seterr(err, "not an ELF file");
        return -1;
    }
    if (f->size < sizeof(Elf64_Ehdr) || f->data[EI_CLASS] != ELFCLASS64 ||
        f->data[EI_DATA] != ELFDATA2LSB) {
        rs__seterr(err, "not a 64-bit little-endian ELF file");
        return -1;
    }
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f->data;
    if (eh->e_machine != EM_X86_64) {
        rs__seterr(err, "ELF file for machine %u, not x86-64", eh->e_machine);
        return -1;
    }
    e->eh = eh;
    /* The header tables are used in place: they must be 8-byte aligned. */
    if (eh->e_phnum && eh->e_phentsize == sizeof(Elf64_Phdr) && eh->e_phoff % 8 == 0 &&
        in_file(f, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr))) {
        e->ph = (const Elf64_Phdr *)(f->data + eh->e_phoff);
        e->phnum = eh->e_phnum;
    } else if (eh->e_phnum) {
        rs__seterr(err, eh->e_phoff % 8 ? "program headers at a misaligned offset (corrupt)"
                                        : "program headers lie outside the file (truncated?)");
        return -1;
    }
    if (eh->e_shnum && eh->e_shentsize == sizeof(Elf64_Shdr) && eh->e_shoff % 8 == 0 &&
        in_file(f, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr))) {
        e->sh = (const Elf64_Shdr *)(f->data + eh->e_shoff);
        e->shnum = eh->e_shnum;
        if (eh->e_shstrndx < e->shnum) {
            const Elf64_Shdr *ss = &e->sh[eh->e_shstrndx];
            if (in_file(f, ss->sh_offset, ss->sh_size)) {
                e->shstr = (const char *)f->data + ss->sh_offset;
                e->shstrsize = ss->sh_size;
            }
        }
    }
    if (eh->e_type == ET_CORE)
        return 0;

    bool first = true;
    for (size_t i = 0; i < e->phnum; i++) {
        const Elf64_Phdr *p = &e->ph[i];
        if (p->p_type == PT_LOAD) {
            if (first)
                e->load_vaddr = p->p_vaddr & ~(uint64_t)(RS_PAGE - 1);
            first = false;
            if (p->p_vaddr + p->p_memsz > e->load_end)
                e->load_end = p->p_vaddr + p->p_memsz;
        } else if (p->p_type == PT_NOTE && in_file(f, p->p_offset, p->p_filesz)) {
            walk_notes(f->data + p->p_offset, p->p_filesz, note_build_id, e);
        }
    }
    for (size_t i = 0; i < e->shnum && e->build_id_len == 0; i++)
        if (e->sh[i].sh_type == SHT_NOTE && in_file(f, e->sh[i].sh_offset, e->sh[i].sh_size))
            walk_notes(f->data + e->sh[i].sh_offset, e->sh[i].sh_size, note_build_id, e);
    if (e->sh) {
        e->symtab = symbol_section(e, SHT_SYMTAB);
        e->dynsym = symbol_section(e, SHT_DYNSYM);
        const Elf64_Shdr *di = rs__elf_section(e, ".debug_info");
        e->has_debug_info = di && di->sh_type != SHT_NOBITS && di->sh_size > 0;
    }
    return 0;
}

/* ---- core notes ------------------------------------------------------------- */

typedef struct core_notes {
    rs_target *t;
    rs_filemap *fmaps;
    size_t nfmaps;
    bool have_auxv, have_prpsinfo, have_file_note;
    uint64_t at_entry, at_phdr;
    int siginfo_signo;
    size_t bad;              /* malformed notes */
} core_notes;

static void note_core(void *ctx, const char *name, uint32_t type, const uint8_t *desc,
                      size_t descsz)
{
    core_notes *cn = ctx;
    rs_target *t = cn->t;
    if (strcmp(name, "CORE") != 0)
        return;
    switch (type) {
    case NT_PRSTATUS: {
        struct elf_prstatus ps;
        if (descsz < sizeof ps) {
            cn->bad++;
            return;
        }
        memcpy(&ps, desc, sizeof ps);
        t->threads = rs__xrealloc(t->threads, (t->nthreads + 1) * sizeof *t->threads);
        rs_thread *th = &t->threads[t->nthreads++];
        memset(th, 0, sizeof *th);
        th->tid = ps.pr_pid;
        th->signal = ps.pr_cursig;
        memcpy(&th->regs, &ps.pr_reg, sizeof th->regs);
        break;
    }
    case NT_PRPSINFO: {
        struct elf_prpsinfo pi;
        if (descsz < sizeof pi) {
            cn->bad++;
            return;
        }
        memcpy(&pi, desc, sizeof pi);
        cn->have_prpsinfo = true;
        t->pid = pi.pr_pid;
        t->program = rs__strndup(t, pi.pr_fname, strnlen(pi.pr_fname, sizeof pi.pr_fname));
        t->cmdline = rs__strndup(t, pi.pr_psargs, strnlen(pi.pr_psargs, sizeof pi.pr_psargs));
        break;
    }
    case NT_AUXV:
        cn->have_auxv = true;
        for (size_t off = 0; off + 16 <= descsz; off += 16) {
            uint64_t k, v;
            memcpy(&k, desc + off, 8);
            memcpy(&v, desc + off + 8, 8);
            if (k == AT_ENTRY)
                cn->at_entry = v;
            else if (k == AT_PHDR)
                cn->at_phdr = v;
            else if (k == AT_NULL)
                break;
        }
        break;
    case NT_FILE: {
        /* count, page size, count x {start, end, page offset}, count names */
        uint64_t count, pagesz;
        if (descsz < 16) {
            cn->bad++;
            return;
        }
        memcpy(&count, desc, 8);
        memcpy(&pagesz, desc + 8, 8);
        if (count > (descsz - 16) / 24) {
            cn->bad++;
            return;
        }
        cn->have_file_note = true;
        const char *names = (const char *)desc + 16 + count * 24;
        const char *end = (const char *)desc + descsz;
        cn->fmaps = rs__xrealloc(cn->fmaps, (cn->nfmaps + count + 1) * sizeof *cn->fmaps);
        for (uint64_t i = 0; i < count && names < end; i++) {
            uint64_t v[3];
            memcpy(v, desc + 16 + i * 24, 24);
            size_t len = strnlen(names, (size_t)(end - names)), plen = len;
            if (plen > 10 && memcmp(names + plen - 10, " (deleted)", 10) == 0)
                plen -= 10; /* the file was deleted after it was mapped */
            rs_filemap *fm = &cn->fmaps[cn->nfmaps++];
            fm->start = v[0];
            fm->end = v[1];
            fm->offset = v[2] * pagesz;
            fm->path = rs__strndup(t, names, plen);
            names += len + 1;
        }
        break;
    }
    case NT_SIGINFO:
        if (descsz >= 4)
            memcpy(&cn->siginfo_signo, desc, 4);
        break;
    default:
        break;
    }
}

/* ---- memory regions ------------------------------------------------------------ */

typedef struct range {
    uint64_t start, end;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_region(const void *a, const void *b)
{
    const rs_region *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static void add_region(rs_target *t, size_t *cap, uint64_t start, uint64_t end,
                       const uint8_t *data, bool in_core)
{
    if (end <= start)
        return;
    rs__grow(&t->regions, cap, t->nregions + 1, sizeof *t->regions);
    t->regions[t->nregions++] = (rs_region){start, end, data, in_core};
}

/* Fill the parts of a file mapping that no core segment claims. */
static void add_file_gaps(rs_target *t, size_t *cap, const range *claimed, size_t nclaimed,
                          const rs_filemap *fm, rs_file *f)
{
    if (!f->data || fm->offset >= f->size || fm->end <= fm->start)
        return;
    uint64_t s = fm->start, e = fm->end;
    if (f->size - fm->offset < e - s)
        e = s + (f->size - fm->offset);
    size_t lo = 0, hi = nclaimed;
    while (lo < hi) { /* first claimed range ending after s */
        size_t mid = lo + (hi - lo) / 2;
        if (claimed[mid].end <= s)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t cur = s;
    for (size_t i = lo; i < nclaimed && claimed[i].start < e; i++) {
        if (claimed[i].start > cur)
            add_region(t, cap, cur, claimed[i].start, f->data + fm->offset + (cur - s), false);
        if (claimed[i].end > cur)
            cur = claimed[i].end;
    }
    if (cur < e)
        add_region(t, cap, cur, e, f->data + fm->offset + (cur - s), false);
}

/* Sort and make non-overlapping (a malformed core could overlap segments). */
static void finish_regions(rs_target *t)
{
    RS_QSORT(t->regions, t->nregions, sizeof *t->regions, cmp_region);
    size_t out = 0;
    for (size_t i = 0; i < t->nregions; i++) {
        rs_region r = t->regions[i];
        if (out > 0 && r.start < t->regions[out - 1].end) {
            uint64_t cut = t->regions[out - 1].end;
            if (r.end <= cut)
                continue;
            r.data += cut - r.start;
            r.start = cut;
        }
        t->regions[out++] = r;
    }
    t->nregions = out;
}

/* ---- opening a core ---------------------------------------------------------- */

static rs_target *fail(rs_target *t, core_notes *cn)
{
    free(cn->fmaps);
    rs_close(t);
    return NULL;
}

rs_target *rs_open_core(const char *core_path, const char *exe_path, rs_error *err)
{
    rs_target *t = rs__target_new(RS_TARGET_CORE);
    core_notes cn = {.t = t};
    rs_file *f = rs__file_open(t, core_path);
    if (!f->data) {
        if (f->err == ENOENT)
            rs__seterr(err, "core file %s not found", core_path);
        else if (f->err == ENODATA)
            rs__seterr(err, "core file %s is empty", core_path);
        else
            rs__seterr(err, "cannot read core file %s: %s", core_path, strerror(f->err));
        return fail(t, &cn);
    }
    t->core = f;
    rs_elf ce;
    rs_error e2;
    if (rs__elf_parse(&ce, f, &e2) != 0) {
        rs__seterr(err, "%s is not a core file (%s)", core_path, e2.msg);
        return fail(t, &cn);
    }
    if (ce.eh->e_type != ET_CORE) {
        rs__seterr(err, "%s is not a core file (it is an ELF %s)", core_path,
                   ce.eh->e_type == ET_EXEC  ? "executable"
                   : ce.eh->e_type == ET_DYN ? "executable or shared library"
                                             : "object file");
        return fail(t, &cn);
    }

    /* Segments: memory claimed by the core, and the notes. */
    range *claimed = rs__xcalloc(ce.phnum + 1, sizeof *claimed);
    size_t nclaimed = 0, rcap = 0, missing_segs = 0, nloads = 0;
    uint64_t missing_bytes = 0, expected_size = f->size;
    t->maps = rs__xcalloc(ce.phnum + 1, sizeof *t->maps);
    for (size_t i = 0; i < ce.phnum; i++) {
        const Elf64_Phdr *p = &ce.ph[i];
        if (p->p_offset + p->p_filesz > expected_size)
            expected_size = p->p_offset + p->p_filesz;
        uint64_t present = 0;
        if (p->p_offset < f->size)
            present = f->size - p->p_offset < p->p_filesz ? f->size - p->p_offset : p->p_filesz;
        if (p->p_type == PT_NOTE) {
            if (present) /* (p_offset may lie anywhere: no pointer past the file) */
                walk_notes(f->data + p->p_offset, present, note_core, &cn);
            if (present < p->p_filesz)
                rs__warn(t, "core file %s is truncated inside its notes: threads or mapped "
                         "files may be missing", core_path);
            continue;
        }
        if (p->p_type != PT_LOAD || p->p_memsz == 0)
            continue;
        nloads++;
        rs_mapping *m = &t->maps[t->nmaps++];
        m->start = p->p_vaddr;
        m->end = p->p_vaddr + p->p_memsz;
        m->flags = ((p->p_flags & PF_R) ? RS_MAP_R : 0) | ((p->p_flags & PF_W) ? RS_MAP_W : 0) |
                   ((p->p_flags & PF_X) ? RS_MAP_X : 0);
        if (p->p_filesz) {
            uint64_t fs = p->p_filesz < p->p_memsz ? p->p_filesz : p->p_memsz;
            claimed[nclaimed++] = (range){p->p_vaddr, p->p_vaddr + fs};
            if (present > fs)
                present = fs;
            if (present)
                add_region(t, &rcap, p->p_vaddr, p->p_vaddr + present, f->data + p->p_offset,
                           true);
            if (present < fs) {
                missing_segs++;
                missing_bytes += fs - present;
            }
        }
    }
    if (missing_segs)
        rs__warn(t, "core file %s is truncated (%llu of %llu bytes): %zu of %zu memory "
                 "segments (%llu KiB) are missing, reads there fail",
                 core_path, (unsigned long long)f->size, (unsigned long long)expected_size,
                 missing_segs, nloads, (unsigned long long)(missing_bytes >> 10));
    if (cn.bad)
        rs__warn(t, "core file %s: %zu malformed notes ignored", core_path, cn.bad);
    if (t->nthreads == 0)
        rs__warn(t, "core file %s has no thread status (NT_PRSTATUS): no stacks", core_path);
    t->signal = t->nthreads ? t->threads[0].signal : 0;
    if (!t->signal)
        t->signal = cn.siginfo_signo;
    if (!t->pid && t->nthreads)
        t->pid = t->threads[0].tid;
    RS_QSORT(claimed, nclaimed, sizeof *claimed, cmp_range);
    finish_regions(t); /* core-only regions, sorted: the build-id checks read them */

    /* Executable and libraries. */
    if (!cn.have_file_note && !exe_path) {
        free(claimed);
        rs__seterr(err, "core file %s names no mapped files (no NT_FILE note): pass --exe",
                   core_path);
        return fail(t, &cn);
    }
    rs_procinfo pi = {
        .fmaps = cn.fmaps, .nfmaps = cn.nfmaps, .exe_override = exe_path,
        .have_auxv = cn.have_auxv, .at_entry = cn.at_entry, .at_phdr = cn.at_phdr,
        .core_only_ids = true,
    };
    if (rs__setup_modules(t, &pi, err) != 0) {
        free(claimed);
        return fail(t, &cn);
    }
    if (!cn.have_prpsinfo)
        t->program = rs__strdup(t, t->mods[0]->pub.name);

    /* The executable's mappings as NT_FILE names them (before --exe). */
    const char *exe_map_path = NULL;
    for (size_t i = 0; i < cn.nfmaps && !exe_map_path; i++) {
        uint64_t a = cn.at_phdr ? cn.at_phdr : cn.at_entry;
        if (a >= cn.fmaps[i].start && a < cn.fmaps[i].end)
            exe_map_path = cn.fmaps[i].path;
    }
    if (!cn.have_file_note) {
        /* No NT_FILE: the executable's own segments stand in for it. */
        rs_mod *exe = t->mods[0];
        for (size_t i = 0; i < exe->elf.phnum; i++) {
            const Elf64_Phdr *p = &exe->elf.ph[i];
            if (p->p_type != PT_LOAD || p->p_filesz == 0)
                continue;
            cn.fmaps = rs__xrealloc(cn.fmaps, (cn.nfmaps + 1) * sizeof *cn.fmaps);
            cn.fmaps[cn.nfmaps++] = (rs_filemap){
                p->p_vaddr + exe->pub.bias, p->p_vaddr + exe->pub.bias + p->p_filesz,
                p->p_offset, exe->pub.path};
        }
        exe_map_path = exe->pub.path;
    }

    /* Fill what the core leaves out from the mapped files, and name mappings. */
    rs__sort_maps(t);
    size_t maps_cap = t->nmaps, nsegs = t->nmaps;
    for (size_t i = 0; i < cn.nfmaps; i++) {
        const rs_filemap *fm = &cn.fmaps[i];
        const char *path = fm->path;
        bool is_exe = exe_map_path && strcmp(path, exe_map_path) == 0;
        if (exe_path && is_exe)
            path = exe_path; /* --exe, which may be a relative path */
        bool usable = true;
        for (size_t j = 0; j < t->nmods; j++)
            if (!t->mods[j]->pub.loaded && strcmp(t->mods[j]->pub.path, path) == 0)
                usable = false; /* a different build: its bytes would lie */
        if (usable && (path[0] == '/' || (exe_path && is_exe)))
            add_file_gaps(t, &rcap, claimed, nclaimed, fm, rs__file_open(t, path));
        bool named = false;
        size_t lo = 0, hi = nsegs; /* the PT_LOAD maps, sorted: first one at or after fm->start */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->maps[mid].start < fm->start)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t j = lo; j < nsegs && t->maps[j].start < fm->end; j++) {
            rs_mapping *m = &t->maps[j];
            m->path = path;
            m->file_offset = fm->offset + (m->start - fm->start);
            named = true;
        }
        if (!named) { /* gdb cores leave whole file mappings out */
            rs__grow(&t->maps, &maps_cap, t->nmaps + 1, sizeof *t->maps);
            t->maps[t->nmaps++] = (rs_mapping){fm->start, fm->end, fm->offset, path, RS_MAP_R};
        }
    }
    free(claimed);
    free(cn.fmaps);
    finish_regions(t);
    rs__sort_maps(t);
    rs__thread_stacks(t);
    return t;
}
