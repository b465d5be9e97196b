/*
 * mutate.h -- a libFuzzer custom mutator for large structured inputs (cores
 * of 1-2 MB, executables of 500 KB), included by fuzz_core.c and
 * fuzz_dwarf.c.
 *
 * libFuzzer's own mutations of a megabyte input land mostly in zero pages
 * and often change its length, which shifts every offset after the change:
 * the file stops being a core or an ELF file at all. This one mutates a
 * window of at most WINDOW bytes and keeps the rest in place, so headers
 * and tables stay mostly valid and the parsers get past them:
 *   1/8   libFuzzer's mutation of the whole input
 *   1/16  a cut (a truncated file) at a random point
 *   else  a window in the first `head` bytes (headers, notes, section
 *         table) half of the time, anywhere otherwise
 */
#ifndef REFSCOPE_FUZZ_MUTATE_H
#define REFSCOPE_FUZZ_MUTATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 4096u

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static uint64_t mutate_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t mutate_window(uint8_t *data, size_t size, size_t max_size, unsigned int seed,
                            size_t head)
{
    static uint8_t *tail;
    static size_t tailcap;
    uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    uint64_t r = mutate_rng(&s);
    if (size < 2 * WINDOW || r % 8 == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    if (r % 16 == 1)
        return 1 + mutate_rng(&s) % (size - 1);
    size_t zone = (r >> 8) % 2 && head < size ? head : size;
    size_t off = mutate_rng(&s) % zone;
    size_t len = size - off < WINDOW ? size - off : WINDOW;
    size_t ntail = size - off - len;
    if (ntail > tailcap) {
        free(tail);
        tail = malloc(ntail);
        tailcap = tail ? ntail : 0;
        if (!tail)
            return LLVMFuzzerMutate(data, size, max_size);
    }
    if (ntail)
        memcpy(tail, data + off + len, ntail);
    size_t room = max_size - off - ntail; /* >= len */
    if (room > len + 256)
        room = len + 256;
    size_t n = LLVMFuzzerMutate(data + off, len, room);
    if (ntail)
        memcpy(data + off + n, tail, ntail);
    return off + n + ntail;
}

#endif /* REFSCOPE_FUZZ_MUTATE_H */
