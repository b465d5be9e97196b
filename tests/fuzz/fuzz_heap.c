/*
 * fuzz_heap.c -- libFuzzer harness (b): the engine's registry and heap
 * decoder over arbitrary memory.
 *
 * Input: a memory image (image.h): the registry's address, memory segments
 * and the roots a front end would add. The engine reads the image through
 * an rs_memory callback, exactly as it reads a core or the GDB plugin's
 * memory; then every report runs, in text and JSON, on the first, middle
 * and last object, plus a snapshot and a diff against it. Seeds: images of
 * real cores (core2image). Whatever the bytes, the engine must not crash,
 * hang, read outside what it was given or allocate without bound.
 */
#include "engine_int.h"
#include "image.h"

#include <stdio.h>
#include <stdlib.h>

static img image; /* ~100 KiB: not on the stack */

static void report(rs_heap *h, const char *cmd)
{
    int status = -1;
    char *out = rs_heap_report(h, cmd, &status);
    if (!out || status < 0 || status > 2)
        abort(); /* the API promises a text and a status 0..2 */
    rs_free(out);
}

static void object_reports(rs_heap *h, uint32_t i)
{
    static const char *const cmds[] = {"refs", "path", "retained", "graph"};
    char cmd[96];
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        snprintf(cmd, sizeof cmd, "%s 0x%llx%s", cmds[k], (unsigned long long)h->addr[i],
                 k == 3 ? " --depth 3 --backrefs" : "");
        report(h, cmd);
        snprintf(cmd, sizeof cmd, "%s 0x%llx --json", cmds[k],
                 (unsigned long long)h->addr[i] + 8); /* inside: the containing object */
        report(h, cmd);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!img_parse(&image, data, size))
        return 0;
    rs_memory mem = {img_read, &image};
    rs_error err;
    rs_heap *h = rs_heap_new(mem, image.registry, &err);
    if (!h)
        return 0;
    for (size_t i = 0; i < image.nroots; i++) {
        char label[32];
        snprintf(label, sizeof label, "root %zu", i);
        rs_heap_add_root(h, (int)image.roots[i].kind, label, image.roots[i].slot,
                         image.roots[i].value);
    }
    if (rs_heap_load(h, NULL, NULL, &err) == 0) {
        for (size_t i = 0; i < rs_heap_warning_count(h); i++)
            if (!rs_heap_warning(h, i))
                abort();
        static const char *const cmds[] = {
            "summary",   "summary --json", "types --limit 0", "sites --json",
            "cycles --limit 0", "cycles --json", "garbage", "garbage --json",
            "roots",     "roots --json",   "leaks --limit 0", "leaks --json",
            "retained",  "retained --json", "check --limit 0", "check --json",
            "graph --cycle 1", "graph --cycle 2 --json", "refs globals['list']",
            "path registered",
        };
        for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
            report(h, cmds[i]);
        if (h->nobj) {
            object_reports(h, 0);
            object_reports(h, (uint32_t)(h->nobj / 2));
            object_reports(h, (uint32_t)(h->nobj - 1));
        }
        rs_snapshot *snap = rs_heap_snapshot(h);
        int status;
        char *out = rs_heap_diff(h, snap, "--limit 0", &status);
        rs_free(out);
        out = rs_heap_diff(h, snap, "--json", &status);
        rs_free(out);
        rs_snapshot_destroy(snap);
    }
    rs_heap_free(h);
    return 0;
}
