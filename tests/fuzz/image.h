/*
 * image.h -- the memory image format of the heap harness (fuzz_heap.c),
 * written by core2image.c from a real core. Header-only: both include it.
 *
 * An image is a process's memory as the engine reads it, and nothing else:
 *
 *   u64 registry              address of rc_debug_registry
 *   segments until the end:
 *     u64 addr
 *     u32 len                 bit 31 set: len & 0x7fffffff zero bytes, no
 *                             bytes follow; clear: len bytes follow (a
 *                             last segment cut short holds what is there)
 *     bytes
 *
 * A segment at address 0 is not memory (the engine never reads address 0)
 * but the roots the front end adds: records of
 *   u32 kind (enum rs_root_kind), u64 slot, u64 value     (20 bytes each)
 * Bytes no segment covers are unreadable. Where segments overlap, the
 * first one wins. All numbers little endian, no alignment.
 */
#ifndef REFSCOPE_FUZZ_IMAGE_H
#define REFSCOPE_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IMG_ZERO_FLAG 0x80000000u
#define IMG_MAX_SEGMENTS 4096u
#define IMG_MAX_ROOTS 256u
#define IMG_ROOT_RECORD 20u

typedef struct img_segment {
    uint64_t addr, len;
    const uint8_t *data; /* NULL: zeros */
} img_segment;

typedef struct img_root {
    uint32_t kind;
    uint64_t slot, value;
} img_root;

typedef struct img {
    uint64_t registry;
    img_segment seg[IMG_MAX_SEGMENTS];
    size_t nseg;
    img_root roots[IMG_MAX_ROOTS];
    size_t nroots;
} img;

static inline uint64_t img_ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t img_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Parse data[0..size); false if there is not even a registry address. */
static inline int img_parse(img *m, const uint8_t *data, size_t size)
{
    m->nseg = m->nroots = 0;
    if (size < 8)
        return 0;
    m->registry = img_ld64(data);
    size_t off = 8;
    while (off + 12 <= size && m->nseg < IMG_MAX_SEGMENTS) {
        uint64_t addr = img_ld64(data + off);
        uint32_t len = img_ld32(data + off + 8);
        off += 12;
        img_segment s = {addr, len & ~IMG_ZERO_FLAG, NULL};
        if (!(len & IMG_ZERO_FLAG)) {
            if (s.len > size - off)
                s.len = size - off;
            s.data = data + off;
            off += s.len;
        }
        if (addr == 0) {
            for (size_t k = 0; s.data && k + IMG_ROOT_RECORD <= s.len && m->nroots < IMG_MAX_ROOTS;
                 k += IMG_ROOT_RECORD)
                m->roots[m->nroots++] = (img_root){img_ld32(s.data + k), img_ld64(s.data + k + 4),
                                                   img_ld64(s.data + k + 12)};
            continue;
        }
        if (s.len)
            m->seg[m->nseg++] = s;
    }
    return 1;
}

/* The rs_memory read callback over an image: contiguous bytes from addr,
 * short at the first byte no segment covers. */
static inline size_t img_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
    const img *m = ctx;
    size_t done = 0;
    while (done < len) {
        uint64_t a = addr + done;
        if (a < addr)
            break; /* wrapped */
        const img_segment *hit = NULL;
        for (size_t i = 0; i < m->nseg; i++) {
            const img_segment *s = &m->seg[i];
            if (a >= s->addr && a - s->addr < s->len) {
                hit = s;
                break;
            }
        }
        if (!hit)
            break;
        uint64_t n = hit->len - (a - hit->addr);
        if (n > len - done)
            n = len - done;
        if (hit->data)
            memcpy((char *)buf + done, hit->data + (a - hit->addr), n);
        else
            memset((char *)buf + done, 0, n);
        done += n;
    }
    return done;
}

#endif /* REFSCOPE_FUZZ_IMAGE_H */
