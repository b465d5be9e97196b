/*
 * fuzz_dwarf.c -- libFuzzer harness (c): the target layer where it parses
 * an executable: ELF headers, symbol tables, DWARF (.debug_info, line
 * tables, type layouts) and call frame information.
 *
 * Input: an ELF file. It is written to a memfd and opened as the only
 * module of an rs_open_memory target, by its path /proc/self/fd/N (both
 * the target layer and libdwarf open it by path); the memory callback
 * serves the file's PT_LOAD segments at their link addresses, as a process
 * would see them. Then: globals, pointer slots to `struct rc_object`,
 * addr -> file:line and function names across the module, member offsets
 * and type sizes of the registry's layout, symbol lookups, and the CFI row
 * of the same addresses. Seeds: the seed program's executable.
 */
#include "target_int.h"

#include "mutate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NSAMPLES 64

static int memfd = -1;
static char path[64];
static const uint8_t *cur;
static size_t cursize;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    memfd = memfd_create("fuzz-dwarf", 0);
    if (memfd < 0) {
        perror("memfd_create");
        exit(1);
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    return 0;
}

/* Memory as the loaded file: PT_LOAD segments at p_vaddr (bias 0). */
static size_t read_loaded(void *ctx, uint64_t addr, void *buf, size_t len)
{
    (void)ctx;
    if (cursize < sizeof(Elf64_Ehdr))
        return 0;
    Elf64_Ehdr eh;
    memcpy(&eh, cur, sizeof eh);
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > cursize ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > cursize - eh.e_phoff)
        return 0;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, cur + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD || addr < ph.p_vaddr || addr - ph.p_vaddr >= ph.p_filesz)
            continue;
        uint64_t off = addr - ph.p_vaddr;
        if (ph.p_offset > cursize || off >= cursize - ph.p_offset)
            return 0;
        uint64_t n = ph.p_filesz - off;
        if (n > cursize - ph.p_offset - off)
            n = cursize - ph.p_offset - off;
        if (n > len)
            n = len;
        memcpy(buf, cur + ph.p_offset + off, n);
        return n;
    }
    return 0;
}

static void touch(const char *s)
{
    if (s && strlen(s) > (1u << 20))
        abort(); /* a string this long is a bug */
}

static void exercise(rs_target *t)
{
    rs_error err;
    const rs_global *g;
    size_t ng;
    if (rs_globals(t, &g, &ng, &err) == 0)
        for (size_t i = 0; i < ng; i++) {
            touch(g[i].display);
            touch(g[i].type_name);
        }
    const rs_slot *sl;
    size_t ns;
    if (rs_pointer_slots(t, "rc_object", &sl, &ns, &err) == 0)
        for (size_t i = 0; i < ns; i++) {
            touch(sl[i].path);
            touch(sl[i].type_name);
        }
    static const char *const members[][2] = {
        {"rc_registry", "gc.generations[2].count"}, {"rc_registry", "large.next"},
        {"rc_object", "ob_type"},                   {"rc_type", "fields"},
        {"rc_pool", "nextoffset"},                  {"struct config", "handlers[2]"},
        {"rc_registry", "nosuch.member"},           {"rc_registry", "arenas[99999999999]"},
    };
    for (size_t i = 0; i < sizeof members / sizeof *members; i++)
        rs_member_offset(t, members[i][0], members[i][1], &err);
    rs_type_size(t, "rc_registry", &err);
    rs_type_size(t, "rc_gc_state", &err);

    rs_symbol s;
    rs_symbol_lookup(t, "rc_debug_registry", &s, &err);
    rs_symbol_lookup(t, "main", &s, &err);

    /* addresses across the module, and the functions' own */
    const rs_module *m = rs_module_get(t, 0);
    rs_mod *mod = t->mods[0];
    uint64_t lo = m->start, hi = m->end > m->start ? m->end : m->start + 1;
    for (int k = 0; k <= NSAMPLES; k++) {
        uint64_t a = lo + (hi - lo) / NSAMPLES * (uint64_t)k;
        rs_srcloc loc;
        if (rs_addr_to_line(t, a, &loc) == 0) {
            touch(loc.function);
            touch(loc.file);
        }
        touch(rs_function_name(t, a));
        if (rs_symbol_at(t, a, &s) == 0) {
            touch(s.name);
            rs_addr_to_line(t, s.addr, &loc);
        }
        char d[256];
        rs_describe_addr(t, a, d, sizeof d);
        rs_cfi_row row;
        if (mod->pub.loaded)
            rs__cfi_row(t, mod, a - mod->pub.bias, &row);
    }
}

/* Windowed mutations (mutate.h); the first 4096 bytes hold the ELF header and program headers. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    return mutate_window(data, size, max_size, seed, 4096);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
        abort();
    cur = data;
    cursize = size;
    rs_memory mem = {read_loaded, NULL};
    rs_module_spec spec = {path, 0};
    rs_error err = {{0}};
    rs_target *t = rs_open_memory(mem, &spec, 1, &err);
    if (!t) {
        if (!err.msg[0])
            abort(); /* a failure must say why */
        return 0;
    }
    exercise(t);
    rs_close(t);
    return 0;
}
