/*
 * leaky.c -- the program the GDB plugin's tests look at.
 *
 * At the checkpoint ("ready") its heap holds one of each thing the heap-*
 * commands explain:
 *
 *   global_cache      a list held by a C global: three Nodes, one of them
 *                     with a reference nobody explains (a missing decref)
 *   config            a static struct whose members hold a Node and a list
 *   cache             a dict held only by main's local variable `cache`
 *   node              a Node held by `node` and by global_cache
 *   handler           a closure `process` capturing 1 MiB of bytes
 *   a 2-cycle         Node <-> Node, unreachable: what a collection frees
 *   a legacy cycle    two instances of a class with a legacy finalizer,
 *                     moved to the garbage list by a collection
 *
 * Usage: leaky [abort|wait|twice]
 *   abort: dump core after the checkpoint; wait: sleep (for attaching);
 *   twice: add 50 Nodes, then a second checkpoint ("grown"); default: exit.
 * Automatic collection is off so the heap is the same at every run.
 */
#include <refscope/rc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *payload;
    int id;
} Node;

static const rc_field node_fields[] = {
    RC_REF(Node, next),
    RC_REF(Node, payload),
    RC_FIELDS_END,
};

static rc_type node_type = {
    .name = "Node",
    .size = sizeof(Node),
    .fields = node_fields,
};

/* Held by C globals only: the plugin finds them through GDB's symbols. */
rc_object *global_cache;
static struct {
    const char *name;
    Node *head;
    rc_object *handlers[2];
} config;

static __attribute__((noinline)) Node *node_new(int id)
{
    Node *n = rc_new(Node, &node_type);
    n->id = id;
    return n;
}

/* Two nodes pointing at each other, nothing else pointing at them. */
static __attribute__((noinline)) void make_cycle(void)
{
    Node *a = node_new(100);
    Node *b = node_new(101);
    rc_set(&a->next, RC_OBJ(b));
    rc_set(&b->next, RC_OBJ(a));
    rc_decref(a);
    rc_decref(b);
}

static void legacy_del(rc_object *self) { (void)self; }

/* A cycle through objects with a legacy finalizer: uncollectable. */
static __attribute__((noinline)) void make_legacy_cycle(void)
{
    rc_object *cls = rc_class_new("Legacy", NULL, legacy_del, RC_CLASS_LEGACY_DEL);
    rc_object *x = rc_instance_new(cls);
    rc_object *y = rc_instance_new(cls);
    rc_setattr(x, "other", y);
    rc_setattr(y, "other", x);
    rc_decref(x);
    rc_decref(y);
    rc_decref(cls);
}

static rc_object *process(rc_object *self, rc_object *arg)
{
    (void)arg;
    return rc_incref(rc_closure_cell(self, "huge_data"));
}

/* A closure capturing a big bytes object: what keeps 1 MiB alive. */
static __attribute__((noinline)) rc_object *make_handler(void)
{
    rc_object *huge_data = rc_bytes(1 << 20);
    static const char *const names[] = {"huge_data"};
    rc_object *handler = rc_closure_new(process, "process", 1, names, &huge_data);
    rc_decref(huge_data);
    return handler;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    rc_init();
    rc_gc_disable();

    global_cache = rc_list_new();
    for (int i = 0; i < 3; i++) {
        Node *n = node_new(i);
        rc_list_append(global_cache, RC_OBJ(n));
        rc_decref(n);
    }
    /* The missing decref: an extra reference no holder explains. */
    rc_incref(rc_list_get(global_cache, 1));

    config.name = "config";
    config.head = node_new(7);
    config.handlers[1] = rc_list_new();

    rc_object *cache = rc_dict_new();
    rc_object *answer = rc_int(42);
    rc_object *greeting = rc_str("hello");
    rc_dict_set(cache, "answer", answer);
    rc_dict_set(cache, "greeting", greeting);
    rc_decref(answer);
    rc_decref(greeting);

    Node *node = node_new(5);
    rc_object *payload = rc_list_new();
    rc_list_append(payload, rc_list_get(global_cache, 0));
    rc_list_append(payload, payload);   /* a list that contains itself */
    rc_set(&node->payload, payload);
    rc_decref(payload);
    rc_list_append(global_cache, RC_OBJ(node));
    rc_dict_set(cache, "node", RC_OBJ(node));

    rc_object *handler = make_handler();

    make_legacy_cycle();
    size_t found = rc_gc_collect(2);
    make_cycle();

    printf("leaky: collected %zu, garbage %zu\n", found, rc_list_len(rc_gc_garbage()));
    fflush(stdout);
    rc_debug_checkpoint("ready");

    if (strcmp(mode, "abort") == 0)
        abort();
    if (strcmp(mode, "wait") == 0)
        pause();
    if (strcmp(mode, "twice") == 0) {
        /* Growth for heap-snapshot / heap-diff: 50 more Nodes in the cache. */
        for (int i = 0; i < 50; i++) {
            Node *n = node_new(1000 + i);
            rc_list_append(global_cache, RC_OBJ(n));
            rc_decref(n);
        }
        rc_debug_checkpoint("grown");
    }

    rc_decref(handler);
    rc_decref(RC_OBJ(node));
    rc_decref(cache);
    printf("leaky: done\n");
    return 0;
}
