/*
 * target.h -- the lowest layer of the refscope engine: a process image.
 *
 * A target is a process seen from outside: a core file (kernel, `gcore`,
 * gdb `generate-core-file`), a live process (stopped with ptrace while it is
 * open), or memory supplied by a callback (the GDB plugin). The layer reads
 * memory, finds the executable and shared libraries and their load bias,
 * looks symbols up, answers DWARF questions (addr -> file:line, globals and
 * the object-pointer slots inside them, struct member offsets) and unwinds
 * thread stacks. It knows nothing of the runtime's heap format: the layer
 * above (the engine) finds `rc_debug_registry` with rs_symbol_lookup() and
 * decodes the heap through rs_read() or an rs_memory.
 *
 * Words used below:
 *   module   an ELF file mapped in the process (the executable or a shared
 *            library); run-time address = file address + bias.
 *   slot     an 8-byte location in the process that may hold an object
 *            pointer (a global, a member of a static struct, a stack word).
 *
 * Error convention (one for the whole layer):
 *   - A function that can fail returns NULL, -1 or false and, if its last
 *     argument `rs_error *err` is not NULL, writes one sentence there:
 *     what failed and, when known, why and what to do ("pass --exe").
 *   - Problems that still leave a usable target (truncated core, missing
 *     shared library, no DWARF, unwinding stopped early) are *warnings*,
 *     appended to the target's list (rs_warning_count / rs_warning). The
 *     caller prints them; a partial answer from a damaged core beats none.
 *   - Memory reads never fail loudly: rs_read returns the number of bytes
 *     read, short at the first unreadable address.
 *   - Everything a query returns (strings, arrays, structs) is owned by the
 *     target and valid until rs_close().
 *   - A target is used from one thread at a time; a live target must be
 *     closed by the thread that opened it (ptrace is per thread).
 *   - x86-64 Linux only (ELF64 little endian).
 */
#ifndef REFSCOPE_TARGET_H
#define REFSCOPE_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rs_error {
    char msg[512];
} rs_error;

typedef struct rs_target rs_target;

/* ---- memory as the engine sees it ---------------------------------------
 * The engine talks to memory through this pair so that the GDB plugin can
 * feed it with a ctypes callback. read() returns the bytes read into buf,
 * short (possibly 0) at the first unreadable address; it must not fail in
 * any other way. Read in large blocks: a callback may cost microseconds. */
typedef size_t (*rs_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);
typedef struct rs_memory {
    rs_read_fn read;
    void *ctx;
} rs_memory;

/* ---- opening ------------------------------------------------------------ */

typedef enum rs_target_kind {
    RS_TARGET_CORE = 1,
    RS_TARGET_LIVE = 2,
    RS_TARGET_MEMORY = 3, /* rs_open_memory: callback memory, given modules */
} rs_target_kind;

/* exe_path NULL: the executable named in the core (NT_FILE). The executable's
 * build-id is compared with the one in the core's image of it; a mismatch
 * is an error. */
rs_target *rs_open_core(const char *core_path, const char *exe_path, rs_error *err);

/* Attaches to every thread (PTRACE_SEIZE + PTRACE_INTERRUPT): the process
 * stays stopped until rs_close, which detaches and lets it continue.
 * exe_path NULL: the file /proc/PID/maps names, or /proc/PID/exe when that
 * file is gone or is not the one running (a warning says so). A thread id
 * stands for its process. */
rs_target *rs_open_pid(int pid, const char *exe_path, rs_error *err);

/* Memory from a callback, modules given by the caller (modules[0] is the
 * executable; bias as defined above). No threads, no mappings. For front
 * ends that read memory themselves (GDB) but want symbols and DWARF. */
typedef struct rs_module_spec {
    const char *path;
    uint64_t bias;
} rs_module_spec;
rs_target *rs_open_memory(rs_memory mem, const rs_module_spec *modules, size_t nmodules,
                          rs_error *err);

void rs_close(rs_target *t); /* NULL allowed */

rs_target_kind rs_kind(const rs_target *t);
int rs_pid(const rs_target *t);                /* 0 if unknown */
const char *rs_program(const rs_target *t);    /* short name ("victim"), never NULL */
const char *rs_command_line(const rs_target *t); /* as far as known, never NULL */
int rs_signal(const rs_target *t);             /* signal that killed a core, else 0 */

size_t rs_warning_count(const rs_target *t);
const char *rs_warning(const rs_target *t, size_t i);

/* ---- memory -------------------------------------------------------------
 * Cores: the core's own bytes first, then pages the core leaves out (text,
 * read-only data, never-written file pages) from the mapped files
 * themselves. Fast path: binary search of a sorted region table + memcpy
 * from mmapped files. */
size_t rs_read(rs_target *t, uint64_t addr, void *buf, size_t len);
bool rs_read_u64(rs_target *t, uint64_t addr, uint64_t *ret);
/* A NUL-terminated string of at most size-1 bytes; false if unreadable or
 * not terminated within size (buf then holds the truncated prefix). */
bool rs_read_string(rs_target *t, uint64_t addr, char *buf, size_t size);
rs_memory rs_target_memory(rs_target *t); /* reads through rs_read */
/* Zero-copy reads: if mem is rs_target_memory() of a core, a pointer to
 * the bytes at addr in place (in the mmapped core or file), *avail of them:
 * at most len, and only as far as one piece of the image goes (rs_read may
 * give more). NULL (*avail 0) for other memory: read it. Valid until
 * rs_close. */
const void *rs_memory_view(rs_memory mem, uint64_t addr, size_t len, size_t *avail);

#define RS_MAP_R 1u
#define RS_MAP_W 2u
#define RS_MAP_X 4u
typedef struct rs_mapping {
    uint64_t start, end;     /* [start, end) */
    uint64_t file_offset;    /* when path != NULL */
    const char *path;        /* backing file, NULL: anonymous */
    unsigned flags;          /* RS_MAP_* */
} rs_mapping;
size_t rs_mapping_count(const rs_target *t);
const rs_mapping *rs_mapping_get(const rs_target *t, size_t i); /* sorted by start */
const rs_mapping *rs_mapping_find(const rs_target *t, uint64_t addr); /* NULL: unmapped */

/* ---- modules ------------------------------------------------------------ */

typedef struct rs_module {
    const char *path;        /* the file read (after --exe substitution) */
    const char *name;        /* basename of the mapped file's path */
    uint64_t bias;           /* run-time address = file address + bias */
    uint64_t start, end;     /* run-time extent of its PT_LOAD segments */
    const char *build_id;    /* lowercase hex, "" if none */
    bool is_exe;
    bool loaded;             /* the file was read and matches the process (a
                                library whose build-id differs is not loaded:
                                no symbols, no DWARF, no file-backed pages) */
    bool has_symbols;        /* .symtab or .dynsym */
    bool has_dwarf;          /* .debug_info (in the file or /usr/lib/debug) */
} rs_module;
size_t rs_module_count(const rs_target *t);
const rs_module *rs_module_get(const rs_target *t, size_t i); /* 0 is the executable */
const rs_module *rs_module_at(const rs_target *t, uint64_t addr);

/* ---- symbols (.symtab, else .dynsym; executable first, then libraries) --- */

typedef struct rs_symbol {
    const char *name;
    uint64_t addr;           /* relocated */
    uint64_t size;
    bool is_function;
    bool is_global;          /* STB_GLOBAL / STB_WEAK */
    const rs_module *module;
} rs_symbol;
/* Global definitions win over local (static) ones, which count only in the
 * executable; the executable wins over libraries. If no symbol table has
 * it, DWARF variables are searched (the same way). */
int rs_symbol_lookup(rs_target *t, const char *name, rs_symbol *ret, rs_error *err);
/* The symbol containing addr (or the closest one below it in its module). */
int rs_symbol_at(rs_target *t, uint64_t addr, rs_symbol *ret);
/* "main+0x1a", "libc.so.6:abort+0x5", "0x7f..." -- always writes buf. */
const char *rs_describe_addr(rs_target *t, uint64_t addr, char *buf, size_t size);

/* ---- DWARF ---------------------------------------------------------------
 * Each module's DWARF is indexed once, on first use (CU ranges, functions,
 * variables, named types); line tables are loaded per CU when asked. */

typedef struct rs_srcloc {
    const char *function;    /* DWARF subprogram, else symbol; NULL if unknown */
    const char *file;        /* line-table path, "." and ".." removed; NULL */
    unsigned line;           /* 0 if unknown */
    const rs_module *module; /* NULL if addr is in no module */
} rs_srcloc;
/* 0 if anything (even only a symbol name) was found, -1 otherwise. */
int rs_addr_to_line(rs_target *t, uint64_t addr, rs_srcloc *ret);
const char *rs_function_name(rs_target *t, uint64_t addr); /* NULL if unknown */

/* Global and static variables (also function-local statics) with a fixed
 * address. Thread-local variables are not included. */
typedef struct rs_global {
    const char *name;        /* "counter" */
    const char *function;    /* enclosing function for a local static, else NULL */
    const char *display;     /* "counter" or "main::counter" */
    const char *cu;          /* compilation unit name (source file); "" without DWARF */
    const char *type_name;   /* "struct config", "node *", ...; NULL without DWARF
                                (then the global comes from the symbol table) */
    uint64_t addr;           /* relocated */
    uint64_t size;           /* 0 if unknown */
    bool is_external;
    const rs_module *module;
} rs_global;
int rs_globals(rs_target *t, const rs_global **ret, size_t *count, rs_error *err);

/* Every pointer-sized slot inside the globals (struct members, array
 * elements up to RS_ARRAY_CAP per array, nested structs and unions) whose
 * type is a pointer to `struct HEAD` or to a struct whose first member is a
 * `struct HEAD` (directly or through nested first members, as with
 * RC_OBJECT_HEAD). head is a struct tag, "rc_object" for the runtime. */
#define RS_ARRAY_CAP 262144u
typedef struct rs_slot {
    uint64_t addr;           /* address of the slot itself */
    const char *path;        /* "cache", "config.handlers", "registry.items[3]",
                                "main::counter" */
    const char *type_name;   /* pointee struct ("node", "rc_object") */
    const rs_global *global; /* the variable it is in */
} rs_slot;
int rs_pointer_slots(rs_target *t, const char *head, const rs_slot **ret, size_t *count,
                     rs_error *err);

/* Layout checks. type: a struct/union tag or typedef name ("rc_registry");
 * member: a path of members and indexes ("gc", "gc.generations[2].count").
 * The first definition found (executable first) is used. */
int64_t rs_member_offset(rs_target *t, const char *type, const char *member, rs_error *err);
int64_t rs_type_size(rs_target *t, const char *type, rs_error *err);

/* ---- threads and stacks -------------------------------------------------- */

/* Same order as the kernel's struct user_regs_struct (x86-64). */
typedef struct rs_regs {
    uint64_t r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
    uint64_t rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss;
    uint64_t fs_base, gs_base, ds, es, fs, gs;
} rs_regs;

typedef struct rs_thread {
    int tid;
    int signal;              /* pending/current signal (cores), else 0 */
    rs_regs regs;
    /* [stack_start, stack_end): from rsp to the end of the mapping that
     * holds it, capped at RS_STACK_CAP bytes. Empty if rsp is unmapped. */
    uint64_t stack_start, stack_end;
} rs_thread;
#define RS_STACK_CAP ((uint64_t)64 << 20)
size_t rs_thread_count(const rs_target *t); /* cores: the crashing thread first */
const rs_thread *rs_thread_get(const rs_target *t, size_t i);

/* Iterate the 8-byte aligned words of a thread's stack, reading in blocks. */
typedef struct rs_stack_iter {
    rs_target *target;
    uint64_t addr, end;      /* next word to read, end of stack */
    uint64_t base;           /* address of buf[0] */
    size_t pos, n;           /* next index into buf, words in buf */
    uint64_t buf[2048];
} rs_stack_iter;
void rs_stack_iter_init(rs_stack_iter *it, rs_target *t, const rs_thread *thread);
/* false at the end (or at an unreadable page, which ends the stack). */
bool rs_stack_iter_next(rs_stack_iter *it, uint64_t *slot_addr, uint64_t *value);

typedef enum rs_unwind_how {
    RS_FRAME_REGS = 0,       /* frame 0: the thread's registers */
    RS_FRAME_CFI = 1,        /* .eh_frame / .debug_frame */
    RS_FRAME_FP = 2,         /* rbp chain (no CFI for the callee) */
} rs_unwind_how;
typedef struct rs_frame {
    uint64_t pc;             /* resume address (return address for frames > 0) */
    uint64_t sp;             /* rsp in this frame: the frame's lowest slot */
    uint64_t cfa;            /* the caller's rsp: the frame is [sp, cfa) */
    const char *function;    /* NULL if unknown */
    const char *file;        /* of pc (pc - 1 for frames > 0); NULL if unknown */
    unsigned line;
    const rs_module *module;
    rs_unwind_how how;
} rs_frame;
/* Frames innermost first. Unwinding stops quietly at the outermost frame
 * and with a warning when it cannot go on. */
int rs_thread_frames(rs_target *t, size_t thread, const rs_frame **ret, size_t *count,
                     rs_error *err);
/* Index of the frame whose [sp, cfa) holds addr (the last frame extends to
 * the end of the stack), -1 if none. */
int rs_frame_of_slot(rs_target *t, size_t thread, uint64_t addr);

#ifdef __cplusplus
}
#endif

#endif /* REFSCOPE_TARGET_H */
