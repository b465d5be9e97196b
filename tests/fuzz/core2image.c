/*
 * core2image.c -- turn a core into a memory image (image.h), the seed of the
 * heap harness (fuzz_heap.c).
 *
 *   core2image CORE [EXE] OUT
 *
 * The image holds exactly the memory the engine reads: the core is opened
 * with the target layer, the engine runs the heap harness's reports over
 * it through a recording rs_memory, and the recorded ranges (merged, runs
 * of zeros stored as zero segments) are written out, with the roots the
 * front end found (C globals by DWARF, stack words) that point at live
 * objects. Then the image is loaded back and every report must come out
 * the same; exit status 1 if not (the seed would not be the core's heap).
 */
#include "engine_int.h"
#include "image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZERO_RUN 64 /* a run of this many zero bytes becomes a zero segment */

typedef struct range {
    uint64_t start, end;
} range;

typedef struct recorder {
    rs_target *t;
    range *r;
    size_t n, cap;
} recorder;

static size_t record_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
    recorder *rec = ctx;
    size_t got = rs_read(rec->t, addr, buf, len);
    if (got) {
        if (rec->n == rec->cap) {
            rec->cap = rec->cap ? rec->cap * 2 : 1024;
            rec->r = realloc(rec->r, rec->cap * sizeof *rec->r);
            if (!rec->r)
                abort();
        }
        rec->r[rec->n++] = (range){addr, addr + got};
    }
    return got;
}

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The reports the image must reproduce (the harness runs these and more). */
static const char *const reports[] = {
    "summary", "types --limit 0", "sites --limit 0", "cycles --limit 0", "garbage",
    "roots --limit 0", "leaks --limit 0", "retained", "check --limit 0", "graph --cycle 1",
    "refs globals['list']", "path registered",
};
#define NREPORTS (sizeof reports / sizeof *reports)

static void run_reports(rs_heap *h, char **out)
{
    for (size_t i = 0; i < NREPORTS; i++) {
        int status;
        out[i] = rs_heap_report(h, reports[i], &status);
    }
}

/* Roots as the CLI finds them, simplified: C globals, then stack words. */
static void add_roots(rs_target *t, rs_heap *h)
{
    const rs_slot *slots;
    size_t n;
    if (rs_pointer_slots(t, "rc_object", &slots, &n, NULL) == 0)
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            if (rs_read_u64(t, slots[i].addr, &v) && v)
                rs_heap_add_root(h, RS_ROOT_GLOBAL, slots[i].path, slots[i].addr, v);
        }
    static rs_stack_iter it;
    for (size_t ti = 0; ti < rs_thread_count(t); ti++) {
        rs_stack_iter_init(&it, t, rs_thread_get(t, ti));
        uint64_t slot, v;
        while (rs_stack_iter_next(&it, &slot, &v))
            if (v > 4096 && !(v & 15))
                rs_heap_add_root(h, RS_ROOT_STACK, "stack", slot, v);
    }
}

static void put(FILE *f, const void *p, size_t n)
{
    if (fwrite(p, 1, n, f) != n) {
        perror("core2image: write");
        exit(1);
    }
}

static void put_segment(FILE *f, uint64_t addr, const uint8_t *data, uint32_t len, bool zero)
{
    uint32_t word = zero ? (len | IMG_ZERO_FLAG) : len;
    put(f, &addr, 8);
    put(f, &word, 4);
    if (!zero)
        put(f, data, len);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: core2image CORE [EXE] OUT\n");
        return 2;
    }
    const char *core = argv[1], *exe = argc == 4 ? argv[2] : NULL, *outp = argv[argc - 1];
    rs_error err = {{0}};
    rs_target *t = rs_open_core(core, exe, &err);
    if (!t) {
        fprintf(stderr, "core2image: %s\n", err.msg);
        return 1;
    }
    rs_symbol reg;
    if (rs_symbol_lookup(t, "rc_debug_registry", &reg, &err) != 0) {
        fprintf(stderr, "core2image: %s\n", err.msg);
        return 1;
    }

    /* 1. The engine over the core, every read recorded. */
    recorder rec = {.t = t};
    rs_heap *h = rs_heap_new((rs_memory){record_read, &rec}, reg.addr, &err);
    if (!h) {
        fprintf(stderr, "core2image: %s\n", err.msg);
        return 1;
    }
    add_roots(t, h);
    if (rs_heap_load(h, NULL, NULL, &err) != 0) {
        fprintf(stderr, "core2image: %s\n", err.msg);
        return 1;
    }
    char *want[NREPORTS];
    run_reports(h, want);

    /* 2. The image: registry, roots that hold live objects, merged ranges. */
    FILE *f = fopen(outp, "wb");
    if (!f) {
        perror(outp);
        return 1;
    }
    put(f, &reg.addr, 8);
    uint8_t rootbuf[IMG_MAX_ROOTS * IMG_ROOT_RECORD];
    size_t nroots = 0;
    for (size_t i = 0; i < h->nroots && nroots < IMG_MAX_ROOTS; i++) {
        const rs_root *r = &h->roots[i];
        if (r->obj == RS_NONE || r->kind == RS_ROOT_REGISTERED || r->kind == RS_ROOT_RUNTIME)
            continue; /* the engine finds those itself */
        uint32_t kind = (uint32_t)r->kind;
        memcpy(rootbuf + nroots * IMG_ROOT_RECORD, &kind, 4);
        memcpy(rootbuf + nroots * IMG_ROOT_RECORD + 4, &r->slot, 8);
        memcpy(rootbuf + nroots * IMG_ROOT_RECORD + 12, &r->value, 8);
        nroots++;
    }
    if (nroots)
        put_segment(f, 0, rootbuf, (uint32_t)(nroots * IMG_ROOT_RECORD), false);
    qsort(rec.r, rec.n, sizeof *rec.r, cmp_range);
    size_t nmerged = 0;
    for (size_t i = 0; i < rec.n; i++) {
        if (nmerged && rec.r[i].start <= rec.r[nmerged - 1].end) {
            if (rec.r[i].end > rec.r[nmerged - 1].end)
                rec.r[nmerged - 1].end = rec.r[i].end;
        } else {
            rec.r[nmerged++] = rec.r[i];
        }
    }
    size_t nseg = 0, bytes = 0;
    for (size_t i = 0; i < nmerged; i++) {
        for (uint64_t a = rec.r[i].start; a < rec.r[i].end;) {
            uint64_t len = rec.r[i].end - a;
            if (len > (1u << 20))
                len = 1u << 20;
            static uint8_t buf[1u << 20];
            if (rs_read(t, a, buf, len) != len) {
                fprintf(stderr, "core2image: 0x%llx no longer readable\n", (unsigned long long)a);
                return 1;
            }
            /* data up to the next run of ZERO_RUN zeros, then the run */
            size_t p = 0;
            while (p < len) {
                size_t q = p, z = 0;
                while (q < len) {
                    if (buf[q] == 0) {
                        if (++z == ZERO_RUN)
                            break;
                    } else {
                        z = 0;
                    }
                    q++;
                }
                size_t data_end = q < len ? q + 1 - z : len;
                if (data_end > p) {
                    put_segment(f, a + p, buf + p, (uint32_t)(data_end - p), false);
                    nseg++;
                    bytes += data_end - p;
                }
                if (data_end >= len)
                    break;
                size_t ze = data_end;
                while (ze < len && buf[ze] == 0)
                    ze++;
                put_segment(f, a + data_end, NULL, (uint32_t)(ze - data_end), true);
                nseg++;
                p = ze;
            }
            a += len;
        }
    }
    if (fclose(f) != 0) {
        perror(outp);
        return 1;
    }
    if (nseg + 1 > IMG_MAX_SEGMENTS)
        fprintf(stderr, "core2image: warning: %zu segments, the harness reads the first %u\n",
                nseg, IMG_MAX_SEGMENTS);

    /* 3. Read the image back: the same reports, word for word. */
    FILE *in = fopen(outp, "rb");
    static uint8_t data[64 << 20];
    size_t size = in ? fread(data, 1, sizeof data, in) : 0;
    if (in)
        fclose(in);
    static img image;
    img_parse(&image, data, size);
    rs_heap *h2 = rs_heap_new((rs_memory){img_read, &image}, image.registry, &err);
    for (size_t i = 0; h2 && i < image.nroots; i++)
        rs_heap_add_root(h2, (int)image.roots[i].kind, "root", image.roots[i].slot,
                         image.roots[i].value);
    if (!h2 || rs_heap_load(h2, NULL, NULL, &err) != 0) {
        fprintf(stderr, "core2image: the image does not load: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    char *got[NREPORTS];
    run_reports(h2, got);
    for (size_t i = 0; i < NREPORTS; i++) {
        /* root labels differ ("root" here); compare the reports without roots */
        bool labels = strncmp(reports[i], "roots", 5) == 0 || strncmp(reports[i], "path", 4) == 0 ||
                      strncmp(reports[i], "refs", 4) == 0 || strncmp(reports[i], "leaks", 5) == 0;
        if (!labels && strcmp(want[i], got[i]) != 0) {
            fprintf(stderr, "core2image: `%s` differs on the image:\n--- core\n%s--- image\n%s",
                    reports[i], want[i], got[i]);
            rc = 1;
        }
        rs_free(want[i]);
        rs_free(got[i]);
    }
    printf("%s: registry 0x%llx, %zu objects, %zu roots, %zu segments (%zu bytes of data), "
           "%zu bytes in all\n",
           outp, (unsigned long long)reg.addr, h->nobj, nroots, nseg, bytes, size);
    rs_heap_free(h2);
    rs_heap_free(h);
    free(rec.r);
    rs_close(t);
    return rc;
}
