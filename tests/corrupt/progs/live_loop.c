/*
 * live_loop.c -- the live-mode safety test's program (tests/corrupt,
 * suite live): it must not notice being read by `refscope --pid`.
 *
 * It builds a heap (a chain of Nodes holding ints, in a list in the globals
 * dict, an unreachable cycle, a dict of strings), prints "ready", then
 * every 100 ms computes a checksum over its objects -- values, refcounts,
 * lengths, the collector's counts -- and prints "checksum N VALUE". A line
 * on stdin (or 600 rounds) ends the loop; it checks the heap once more with
 * rc_gc_collect and prints "final: checksum VALUE, collected C" and exits 0.
 * If refscope changed anything (a refcount, a byte, a paused collection
 * count) the checksums would differ and the cycle would not be collected.
 */
#include <refscope/rc.h>

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *data;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, data), RC_FIELDS_END};
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

#define NNODES 200

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

static uint64_t checksum(rc_object *list, rc_object *dict)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t n = rc_list_len(list);
    h = mix(h, n);
    for (size_t i = 0; i < n; i++) {
        Node *node = (Node *)rc_list_get(list, i);
        h = mix(h, (uint64_t)rc_refcount(node));
        h = mix(h, (uint64_t)rc_int_value(node->data));
        h = mix(h, (uint64_t)rc_refcount(node->data));
    }
    h = mix(h, rc_dict_len(dict));
    size_t counts[3];
    rc_gc_get_count(counts);
    for (int g = 0; g < 3; g++)
        h = mix(h, counts[g]);
    return h;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc_init();
    rc_gc_disable();
    rc_object *list = rc_list_new(), *dict = rc_dict_new();
    Node *prev = NULL;
    for (int i = 0; i < NNODES; i++) {
        Node *n = rc_new(Node, &Node_type);
        rc_object *v = rc_int(i * 7);
        rc_set(&n->data, v);
        rc_set(&n->next, RC_OBJ(prev));
        rc_list_append(list, RC_OBJ(n));
        rc_decref(v);
        prev = n;
        rc_decref(n);
    }
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        rc_object *s = rc_str(key);
        rc_dict_set(dict, key, s);
        rc_decref(s);
    }
    rc_dict_set(rc_globals(), "list", list);
    rc_dict_set(rc_globals(), "dict", dict);
    Node *a = rc_new(Node, &Node_type), *b = rc_new(Node, &Node_type);
    rc_set(&a->next, RC_OBJ(b));
    rc_set(&b->next, RC_OBJ(a));
    printf("fact cycle_a %p\n", (void *)a);
    rc_decref(a);
    rc_decref(b);

    printf("ready\n");
    uint64_t first = checksum(list, dict);
    int round = 0;
    for (; round < 600; round++) {
        uint64_t c = checksum(list, dict);
        printf("checksum %d %016llx\n", round, (unsigned long long)c);
        if (c != first)
            printf("CHANGED at round %d\n", round);
        struct pollfd p = {.fd = 0, .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            break;
    }
    uint64_t last = checksum(list, dict);
    size_t collected = rc_gc_collect(2);
    printf("final: checksum %016llx %s, %d rounds, collected %zu\n", (unsigned long long)last,
           last == first ? "unchanged" : "CHANGED", round + 1, collected);
    rc_decref(list);
    rc_decref(dict);
    return 0;
}
