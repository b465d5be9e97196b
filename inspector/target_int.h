/*
 * target_int.h -- internals shared by the files of the target layer
 * (target.c, elfcore.c, live.c, symbols.c, dwarf.c, unwind.c). Not for the
 * engine: it includes only target.h.
 *
 * How the pieces fit:
 *   rs_target
 *     regions[]   sorted, non-overlapping [start, end) -> bytes (cores only):
 *                 the core's PT_LOAD bytes, then the gaps filled from the
 *                 mapped files (NT_FILE). rs_read = bsearch + memcpy.
 *     maps[]      rs_mapping: what the process had mapped (public)
 *     mods[]      rs_mod: modules (exe first) with their ELF file, symbol
 *                 table (symbols.c) and DWARF (dwarf.c), all loaded lazily
 *     threads[]   registers and stack ranges; frames[] cached per thread
 *   files         every file mmapped once (core, executable, libraries)
 *
 * Invariant: regions[i].end <= regions[i+1].start, and every byte of a
 * region is readable (it lies inside an mmapped file).
 */
#ifndef REFSCOPE_TARGET_INT_H
#define REFSCOPE_TARGET_INT_H

#include "target.h"

#include <elf.h>
#include <stdarg.h>

/* qsort with an empty array may get a NULL base, which C calls undefined
 * (UBSan stops on it): sort only what has more than one element. */
#define RS_QSORT(base, n, size, cmp)                                          \
    do {                                                                      \
        if ((n) > 1)                                                          \
            qsort((base), (n), (size), (cmp));                                \
    } while (0)

#define RS_PAGE 4096u
#define RS_MAX_WARNINGS 200 /* then one line says how many more were dropped */

/* ---- small helpers (target.c) ------------------------------------------- */

void *rs__xmalloc(size_t n);         /* abort with a message on OOM */
void *rs__xcalloc(size_t n, size_t size);
void *rs__xrealloc(void *p, size_t n);
char *rs__xstrdup(const char *s);
/* Grow *arr (of *cap elements of size elsize) to hold at least need. */
void rs__grow(void *arr, size_t *cap, size_t need, size_t elsize);

/* Strings and small objects that live as long as the target. */
char *rs__strdup(rs_target *t, const char *s);
char *rs__strndup(rs_target *t, const char *s, size_t n);
void *rs__alloc(rs_target *t, size_t n); /* zeroed, 8-aligned */
char *rs__sprintf(rs_target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void rs__seterr(rs_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rs__warn(rs_target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *rs__basename(const char *path);

/* ---- files and ELF (elfcore.c) ------------------------------------------ */

typedef struct rs_file {
    struct rs_file *next;
    char *path;
    const uint8_t *data;     /* mmap of the whole file, NULL if it could not be read */
    size_t size;
    int err;                 /* errno of the failed open/mmap */
} rs_file;

/* Opened once per path per target; never NULL (check ->data). */
rs_file *rs__file_open(rs_target *t, const char *path);

typedef struct rs_elf {
    rs_file *file;
    const Elf64_Ehdr *eh;
    const Elf64_Phdr *ph;
    size_t phnum;
    const Elf64_Shdr *sh;    /* NULL if no section headers */
    size_t shnum;
    const char *shstr;
    size_t shstrsize;
    uint64_t load_vaddr;     /* first PT_LOAD p_vaddr, rounded down to a page */
    uint64_t load_end;       /* highest p_vaddr + p_memsz */
    uint8_t build_id[64];
    size_t build_id_len;
    const Elf64_Shdr *symtab, *dynsym;
    bool has_debug_info;
} rs_elf;

/* 0 or -1 with err ("not an ELF file", "is a core file", ...). */
int rs__elf_parse(rs_elf *e, rs_file *f, rs_error *err);
const Elf64_Shdr *rs__elf_section(const rs_elf *e, const char *name);
void rs__hex(char *out, const uint8_t *bytes, size_t n); /* out: 2n+1 bytes */

/* ---- modules ------------------------------------------------------------ */

struct rs_dwarf;             /* dwarf.c */

typedef struct rs_sym {
    uint64_t addr;           /* relocated */
    uint64_t size;
    const char *name;
    unsigned char info;      /* st_info */
} rs_sym;

typedef struct rs_mod {
    rs_module pub;
    rs_elf elf;              /* valid iff pub.loaded */
    char *debug_path;        /* separate debug file (/usr/lib/debug/.build-id/..), or NULL */
    /* symbols.c */
    bool syms_loaded;
    rs_sym *syms;            /* sorted by addr */
    size_t nsyms;
    rs_sym **by_name;        /* sorted by name */
    /* dwarf.c */
    struct rs_dwarf *dw;
    bool dw_tried;
    int slots_skip;          /* rs_pointer_slots: 0 unknown, 1 skip (never names the
                                head struct), 2 walk */
} rs_mod;

/* A file mapping as NT_FILE or /proc/PID/maps describes it. */
typedef struct rs_filemap {
    uint64_t start, end, offset;
    const char *path;        /* target-owned */
} rs_filemap;

/* Inputs to rs__setup_modules, gathered by the core or live reader. */
typedef struct rs_procinfo {
    const rs_filemap *fmaps;
    size_t nfmaps;
    const char *exe_override;   /* --exe */
    const char *exe_fallback;   /* /proc/PID/exe for a deleted executable */
    bool have_auxv;
    uint64_t at_entry, at_phdr;
    bool core_only_ids;         /* read build-ids only from the core's own bytes */
    uint64_t exe_map_start;     /* (set by rs__setup_modules) */
} rs_procinfo;

/* Find the executable and the shared libraries, their bias, check
 * build-ids. 0 or -1 (fatal: missing or mismatched executable). */
int rs__setup_modules(rs_target *t, const rs_procinfo *pi, rs_error *err);
rs_mod *rs__mod_at(const rs_target *t, uint64_t addr);

/* ---- memory ------------------------------------------------------------- */

typedef struct rs_region {
    uint64_t start, end;
    const uint8_t *data;     /* bytes of start */
    bool in_core;            /* from the core file, not from a mapped file */
} rs_region;

typedef struct rs_live rs_live; /* live.c */

typedef struct rs_frames {
    bool done;
    rs_frame *frames;
    size_t n;
} rs_frames;

struct rs_target {
    rs_target_kind kind;
    int pid;
    int signal;
    const char *program;
    const char *cmdline;

    char **warnings;
    size_t nwarnings, capwarnings, dropped_warnings;

    struct rs_arena *arena;
    rs_file *files;

    /* memory */
    rs_file *core;
    rs_region *regions;
    size_t nregions;
    rs_memory custom;
    rs_live *live;

    rs_mapping *maps;
    size_t nmaps;

    rs_mod **mods;
    size_t nmods;

    rs_thread *threads;
    size_t nthreads;
    rs_frames *frames;       /* one per thread */

    /* DWARF-derived caches (dwarf.c) */
    bool globals_done;
    bool globals_filtered;   /* built for rs_pointer_slots: modules that never
                                name its head struct were left out */
    rs_global *globals;
    void **retired_globals;  /* globals, global_types, global_mods of a filtered
                                build replaced by a full one (freed at close) */
    size_t nglobals;
    uint64_t *global_types;  /* DWARF type DIE of each global (0: none) */
    struct rs_mod **global_mods;
    char *slots_head;
    rs_slot *slots;
    size_t nslots;
};

rs_target *rs__target_new(rs_target_kind kind);
/* Read only from the core file's bytes (build-id checks). */
size_t rs__read_core_only(rs_target *t, uint64_t addr, void *buf, size_t len);
/* Sort the mappings by start and make them disjoint (drops empty ones). */
void rs__sort_maps(rs_target *t);
/* Stack ranges of all threads from the mappings. */
void rs__thread_stacks(rs_target *t);

/* ---- live (live.c) ------------------------------------------------------ */

size_t rs__live_read(rs_target *t, uint64_t addr, void *buf, size_t len);
void rs__live_close(rs_target *t);

/* ---- symbols (symbols.c) ------------------------------------------------ */

void rs__syms_free(rs_mod *m);
/* Best definition of name in m (a global one if any); NULL if none. */
const rs_sym *rs__sym_find(rs_target *t, rs_mod *m, const char *name);
/* Symbol containing addr in module m; NULL if none. */
const rs_sym *rs__sym_at(rs_target *t, rs_mod *m, uint64_t addr);

/* ---- DWARF (dwarf.c) ---------------------------------------------------- */

void rs__dwarf_free(rs_mod *m);
/* DWARF variable by name, for rs_symbol_lookup's fallback. */
int rs__dwarf_find_variable(rs_target *t, const char *name, rs_symbol *ret);

/* One row of call frame information, free of libdwarf types. Registers are
 * DWARF numbers: 0 rax 1 rdx 2 rcx 3 rbx 4 rsi 5 rdi 6 rbp 7 rsp 8-15
 * r8-r15, 16 return address (rip). */
#define RS_NREGS 17
#define RS_REG_RBP 6
#define RS_REG_RSP 7
#define RS_REG_RA 16
typedef enum rs_rule_kind {
    RS_RULE_SAME = 0,        /* callee did not change it */
    RS_RULE_UNDEFINED,       /* unknown in the caller */
    RS_RULE_OFFSET,          /* saved at CFA + offset */
    RS_RULE_VAL_OFFSET,      /* value is CFA + offset */
    RS_RULE_REGISTER,        /* value is in register reg */
    RS_RULE_EXPRESSION,      /* saved at the address the expression computes */
    RS_RULE_VAL_EXPRESSION,  /* value is what the expression computes */
} rs_rule_kind;
typedef struct rs_rule {
    rs_rule_kind kind;
    int reg;
    int64_t offset;
    const uint8_t *expr;
    size_t exprlen;
} rs_rule;
typedef struct rs_cfi_row {
    rs_rule cfa;             /* REGISTER (reg + offset) or VAL_EXPRESSION */
    rs_rule regs[RS_NREGS];
    bool signal_frame;       /* CIE augmentation 'S' */
} rs_cfi_row;
/* Rules at file address pc (unrelocated) of module m: 0, or -1 if no FDE. */
int rs__cfi_row(rs_target *t, rs_mod *m, uint64_t pc, rs_cfi_row *row);

#endif /* REFSCOPE_TARGET_INT_H */
