/*
 * corrupt.c -- a program that breaks its own heap on purpose, then aborts:
 * the cores of tests/corrupt (the corrupt-input catalogue).
 *
 *   corrupt MODE
 *
 * Every mode builds the same small heap first (below), prints "fact NAME
 * 0xADDR" lines for the tests, applies one corruption right before abort()
 * (nothing of the runtime runs after it), and dies by SIGABRT:
 *
 *   ok               nothing broken: the baseline (truncated cores, wrong or
 *                    stripped executables are made from this one)
 *   magic            rc_debug_registry.magic overwritten
 *   version          rc_debug_registry.version = 99
 *   refcounts        Node `huge` refcount 0x7fffffff, Node `negative`
 *                    0xfffffffe (-2 as a signed count)
 *   dangling-type    Node `unmapped` -> a type in a page unmapped since,
 *                    Node `freed` -> a type in malloc'd memory freed since
 *   large-loop       the large-object list loops: its second node's next is
 *                    the first node (the walk never gets back to the head)
 *   gen-cross        generation lists cross: the first object of generation
 *                    0 links on into generation 2's list
 *   arena-outside    an unused arena slot points at unmapped memory (1 MiB
 *                    aligned, 64 pools carved)
 *   table-outside    the arena table pointer itself points at unmapped memory
 *   field-offset     type Node's field `data` says offset 4096 (a Node is 32
 *                    bytes)
 *   midcollect       a PEP 442 finalizer aborts during rc_gc_collect(2): the
 *                    core is taken mid-collection, in phase FINALIZE
 *
 * The heap: a Node chain in a list in the globals dict (`nodes`), an
 * unreachable cycle of two Nodes (cycle_a, cycle_b; the collector is off),
 * three large objects (bytes of 4000 and 6000, a Node with a 2 KiB tail),
 * objects in generation 2 (survivors of a full collection) and in 0.
 */
#include "registry.h"

#include <refscope/rc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *data;
} Node;
/* Not const: mode field-offset edits it (a const table would be read-only). */
static rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, data), RC_FIELDS_END};
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

static void finalize_abort(rc_object *self)
{
    printf("fact finalizing %p\n", (void *)self);
    fflush(stdout);
    abort(); /* inside rc_gc_collect, phase FINALIZE */
}
static rc_type Dying_type = {.name = "Dying", .size = sizeof(Node), .fields = node_fields,
                             .finalize = finalize_abort};

#ifdef CORRUPT_VARIANT
int corrupt_variant = CORRUPT_VARIANT; /* another build: another build-id */
#endif

static void fact(const char *name, const void *p)
{
    printf("fact %s %p\n", name, p);
}

static Node *node(rc_object *next)
{
    Node *n = rc_new(Node, &Node_type);
    rc_set(&n->next, next);
    return n;
}

static rc_gchead *gchead(void *o) { return (rc_gchead *)o - 1; }

static void die(const char *what)
{
    printf("corrupted: %s\n", what);
    fflush(stdout);
    abort();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    rc_init();
    rc_gc_disable();

    /* survivors of a full collection: generation 2 */
    rc_object *nodes = rc_list_new();
    Node *chain = NULL;
    for (int i = 0; i < 3; i++) {
        Node *n = node(RC_OBJ(chain));
        rc_list_append(nodes, RC_OBJ(n));
        rc_xdecref(chain);
        chain = n;
    }
    rc_dict_set(rc_globals(), "nodes", nodes);
    rc_object *b1 = rc_bytes(4000), *b2 = rc_bytes(6000);
    Node *big = rc_new_var(Node, &Node_type, sizeof(Node) + 2048);
    rc_list_append(nodes, b1);
    rc_list_append(nodes, b2);
    rc_list_append(nodes, RC_OBJ(big));
    rc_gc_collect(2);
    fact("nodes", nodes);
    fact("chain", chain);
    fact("big", big);

    /* generation 0: the cycle and the objects the modes break */
    Node *a = node(NULL), *b = node(RC_OBJ(a));
    rc_set(&a->next, RC_OBJ(b));
    fact("cycle_a", a);
    fact("cycle_b", b);
    rc_decref(a);
    rc_decref(b);
    Node *huge = node(NULL), *negative = node(NULL), *unmapped = node(NULL),
         *freed = node(NULL);
    rc_list_append(nodes, RC_OBJ(huge));
    rc_list_append(nodes, RC_OBJ(negative));
    rc_list_append(nodes, RC_OBJ(unmapped));
    rc_list_append(nodes, RC_OBJ(freed));
    fact("huge", huge);
    fact("negative", negative);
    fact("unmapped", unmapped);
    fact("freed", freed);
    fact("arena0", (void *)rc_debug_registry.arenas[0].address);
    fact("registry", &rc_debug_registry);
    fflush(stdout);

    if (!strcmp(mode, "ok"))
        die("nothing");
    if (!strcmp(mode, "magic")) {
        memcpy(rc_debug_registry.magic, "GARBAGE", 8);
        die("magic");
    }
    if (!strcmp(mode, "version")) {
        rc_debug_registry.version = 99;
        die("version");
    }
    if (!strcmp(mode, "refcounts")) {
        huge->ob_base.ob_refcnt = 0x7fffffff;
        negative->ob_base.ob_refcnt = 0xfffffffe;
        die("refcounts");
    }
    if (!strcmp(mode, "dangling-type")) {
        rc_type *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                             -1, 0);
        rc_type *heap = malloc(sizeof *heap);
        if (page == MAP_FAILED || !heap)
            return 1;
        memcpy(page, &Node_type, sizeof *page);
        memcpy(heap, &Node_type, sizeof *heap);
        unmapped->ob_base.ob_type = page;
        freed->ob_base.ob_type = heap;
        fact("unmapped_type", page);
        fact("freed_type", heap);
        munmap(page, 4096);
        free(heap);
        die("dangling-type");
    }
    if (!strcmp(mode, "large-loop")) {
        rc_large *first = rc_debug_registry.large.next;
        rc_large *second = first->next;
        fact("large_first", first);
        fact("large_second", second);
        second->next = first;
        die("large-loop");
    }
    if (!strcmp(mode, "gen-cross")) {
        uintptr_t base = (uintptr_t)rc_debug_registry.gc.link_base;
        rc_gchead *g0 = (rc_gchead *)(base + ((uintptr_t)rc_debug_registry.gc.generations[0].head->gc_next
                                              << RC_GC_LINK_SHIFT));
        rc_gchead *g2 = (rc_gchead *)(base + ((uintptr_t)rc_debug_registry.gc.generations[2].head->gc_next
                                              << RC_GC_LINK_SHIFT));
        fact("gen0_first", g0 + 1);
        fact("gen2_first", g2 + 1);
        g0->gc_next = (uint32_t)(((uintptr_t)gchead(g2 + 1) - base) >> RC_GC_LINK_SHIFT);
        die("gen-cross");
    }
    if (!strcmp(mode, "arena-outside")) {
        uint32_t i = 0;
        while (i < rc_debug_registry.narenas && rc_debug_registry.arenas[i].address)
            i++;
        if (i == rc_debug_registry.narenas)
            return 1;
        rc_debug_registry.arenas[i].address = (uintptr_t)0x7e0000000000ull;
        rc_debug_registry.arenas[i].ncarved = RC_POOLS_PER_ARENA;
        printf("fact arena_slot %u\n", i);
        die("arena-outside");
    }
    if (!strcmp(mode, "table-outside")) {
        rc_debug_registry.arenas = (rc_arena *)(uintptr_t)0x7e0000000000ull;
        die("table-outside");
    }
    if (!strcmp(mode, "field-offset")) {
        node_fields[1].offset = 4096;
        die("field-offset");
    }
    if (!strcmp(mode, "midcollect")) {
        Node *x = rc_new(Node, &Dying_type), *y = rc_new(Node, &Dying_type);
        rc_set(&x->next, RC_OBJ(y));
        rc_set(&y->next, RC_OBJ(x));
        fact("dying_x", x);
        fact("dying_y", y);
        fflush(stdout);
        rc_decref(x);
        rc_decref(y);
        rc_gc_collect(2); /* the first finalizer aborts */
        return 1;
    }
    fprintf(stderr, "corrupt: unknown mode %s\n", mode);
    return 2;
}
