/*
 * fuzz_victim.c -- the seed program of the fuzz harnesses (tests/fuzz/run).
 *
 * A small heap with one of each thing the engine decodes -- built-in types,
 * a list, a dict, tuples, closures and cells, classes with and without
 * slots, weak references and weak containers, a generator, a large object,
 * an unreachable cycle, a legacy-finalizer cycle in gc.garbage, a missing
 * decref, registered roots, tracebacks (tracing with 4 frames) -- then
 * abort(): the kernel core is the seed of the core-reader harness, its
 * image (core2image) the seed of the heap harness, and this executable the
 * seed of the DWARF harness. Kept small so the seeds are small.
 */
#include <refscope/rc.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *data;
    rc_object *weak;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, data),
                                       RC_WEAK(Node, weak), RC_FIELDS_END};
static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

static void legacy_del(rc_object *self) { (void)self; }
static rc_type Legacy_type = {.name = "Legacy", .size = sizeof(Node), .fields = node_fields,
                              .legacy_del = legacy_del};

/* DWARF names these: C globals holding objects (the slot walker's input). */
static Node *cache;
static struct config {
    int level;
    Node *current;
    rc_object *handlers[3];
} config;
static rc_object *registered;

static rc_object *closure_fn(rc_object *self, rc_object *arg)
{
    (void)arg;
    return rc_incref(rc_closure_cell(self, "data"));
}

static rc_object *gen_next(rc_object *state)
{
    (void)state;
    return NULL;
}

static Node *node(rc_object *next, rc_object *data)
{
    Node *n = rc_new(Node, &Node_type);
    rc_set(&n->next, next);
    rc_set(&n->data, data);
    return n;
}

int main(void)
{
    rc_init();
    rc_gc_disable();
    rc_trace_start(4);

    /* built-ins in a list, a dict and a tuple */
    rc_object *list = rc_list_new();
    rc_object *i = rc_int(42), *s = rc_str("hello"), *b = rc_bytes(64);
    rc_object *big = rc_bytes(2000); /* a large object: the large list */
    rc_list_append(list, i);
    rc_list_append(list, s);
    rc_list_append(list, big);
    rc_object *tuple = rc_tuple_new(2, i, s);
    rc_dict_set(rc_globals(), "list", list);
    rc_dict_set(rc_globals(), "tuple", tuple);
    rc_dict_set(rc_globals(), "bytes", b);

    /* a closure with a cell, held by the globals dict */
    static const char *const names[] = {"data"};
    rc_object *values[] = {b};
    rc_object *clo = rc_closure_new(closure_fn, "process", 1, names, values);
    rc_dict_set(rc_globals(), "process", clo);

    /* classes: with a dict per instance, and with slots */
    rc_object *cls = rc_class_new("Plain", NULL, NULL, 0);
    static const char *const slots[] = {"x", "y", NULL};
    rc_object *scls = rc_class_new("Slotted", slots, NULL, 0);
    rc_object *inst = rc_instance_new(cls), *sinst = rc_instance_new(scls);
    rc_setattr(inst, "value", i);
    rc_setattr(sinst, "x", list);
    rc_dict_set(rc_globals(), "inst", inst);
    rc_dict_set(rc_globals(), "sinst", sinst);

    /* weak references, weak containers, a finalizer, a generator */
    Node *target = node(NULL, s);
    rc_object *wr = rc_weakref_new(RC_OBJ(target), NULL);
    rc_object *wvd = rc_weakvaluedict_new();
    rc_weakvaluedict_set(wvd, "t", RC_OBJ(target));
    rc_object *ws = rc_weakset_new();
    rc_weakset_add(ws, RC_OBJ(target));
    rc_object *fin = rc_finalize_new(RC_OBJ(target), clo);
    rc_object *gen = rc_gen_new(gen_next, list);
    rc_dict_set(rc_globals(), "wr", wr);
    rc_dict_set(rc_globals(), "wvd", wvd);
    rc_dict_set(rc_globals(), "ws", ws);
    rc_dict_set(rc_globals(), "gen", gen);

    /* C globals DWARF names, and a registered root */
    cache = target;
    rc_set(&cache->weak, NULL);
    cache->weak = RC_OBJ(inst);
    config.level = 1;
    config.current = node(RC_OBJ(target), NULL);
    config.handlers[1] = rc_incref(clo);
    registered = rc_list_new();
    rc_root_add(&registered, "registered");

    /* an unreachable cycle, a legacy cycle (to gc.garbage), a missing decref */
    Node *a = node(NULL, NULL), *c = node(RC_OBJ(a), NULL);
    rc_set(&a->next, RC_OBJ(c));
    rc_decref(a);
    rc_decref(c);
    Node *la = rc_new(Node, &Legacy_type), *lb = rc_new(Node, &Legacy_type);
    rc_set(&la->next, RC_OBJ(lb));
    rc_set(&lb->next, RC_OBJ(la));
    rc_decref(la);
    rc_decref(lb);
    rc_gc_collect(2);
    Node *leaked = node(NULL, NULL);
    rc_list_append(registered, RC_OBJ(leaked)); /* its rc_decref is missing */

    rc_decref(list);
    rc_decref(i);
    rc_decref(s);
    rc_decref(big);
    rc_decref(tuple);
    rc_decref(b);
    rc_decref(clo);
    rc_decref(inst);
    rc_decref(sinst);
    rc_decref(wr);
    rc_decref(wvd);
    rc_decref(ws);
    rc_decref(fin);
    rc_decref(gen);
    rc_decref(cls);
    rc_decref(scls);
    rc_debug_checkpoint("fuzz_victim: about to abort");
    printf("aborting with %zu objects in the dict\n", rc_dict_len(rc_globals()));
    fflush(stdout);
    abort();
}
