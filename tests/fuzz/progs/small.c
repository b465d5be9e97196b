/*
 * small.c -- a small seed for the DWARF and core harnesses: the shapes the
 * target layer looks for (a struct whose first member is `struct
 * rc_object`, pointers to it in globals, static struct members and arrays,
 * a function-local static, a variable named rc_debug_registry) in one
 * compilation unit without the runtime, so the executable is a few KB of
 * DWARF instead of the runtime's 300 KB. Built twice (DWARF 5 at -O0,
 * DWARF 4 at -O2); run, it aborts: a small core whose "registry" has no
 * magic.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct rc_object {
    uint32_t ob_refcnt;
    uint32_t ob_info;
    const void *ob_type;
};

typedef struct Node {
    struct rc_object ob_base;
    struct rc_object *next;
    union {
        long tag;
        struct Node *peer;
    } u;
} Node;

typedef struct rc_registry {
    char magic[8];
    uint32_t version;
    struct {
        uint64_t count[3];
        Node *lists[2][2];
    } gc;
} rc_registry;

rc_registry rc_debug_registry = {.magic = "NOTRCSC", .version = 99};
static Node *cache;
static struct config {
    int level;
    Node *current;
    struct rc_object *handlers[3];
    struct {
        Node *inner;
    } nested[2];
} config;
Node *exported[4];

static __attribute__((noinline)) Node *make(Node *next)
{
    static Node pool[4];
    static int used;
    Node *n = &pool[used++ % 4];
    n->ob_base.ob_refcnt = 1;
    n->next = next ? &next->ob_base : NULL;
    return n;
}

int main(void)
{
    cache = make(NULL);
    config.current = make(cache);
    config.handlers[1] = &cache->ob_base;
    config.nested[1].inner = cache;
    exported[2] = make(config.current);
    printf("aborting %p\n", (void *)exported[2]);
    fflush(stdout);
    abort();
}
