/*
 * The analysis engine over the test's own heap: each test builds a known
 * object graph with the runtime, then runs the engine on its own memory
 * (read through /proc/self/mem, so a bad pointer is a short read, not a
 * crash) with the registry at &rc_debug_registry, and checks the reports,
 * mostly through their JSON (parsed with jansson).
 *
 * The oracle: on random graphs, the set `cycles --json` says a full
 * collection frees is compared with what rc_gc_collect(2) then reports as
 * collectable (RC_DEBUG_COLLECTABLE lines) and uncollectable, and what it
 * frees by refcount afterwards (destroy hooks) with the cascade the engine
 * predicted.
 *
 * Each Criterion test runs in its own process: a fresh runtime every time.
 */
#include <refscope/rc.h>

#include "engine.h"
#include "builtins.h"
#include "registry.h"

#include <criterion/criterion.h>
#include <jansson.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- reading our own memory ------------------------------------------------------ */

static int self_mem = -1;

static size_t self_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
    (void)ctx;
    if (self_mem < 0)
        self_mem = open("/proc/self/mem", O_RDONLY);
    if (self_mem < 0 || addr > (uint64_t)INT64_MAX - len)
        return 0;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(self_mem, (char *)buf + done, len - done, (off_t)(addr + done));
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

static rs_heap *load_heap_at(uint64_t registry)
{
    rs_error err = {{0}};
    rs_memory mem = {self_read, NULL};
    rs_heap *h = rs_heap_new(mem, registry, &err);
    cr_assert_not_null(h, "rs_heap_new: %s", err.msg);
    int rc = rs_heap_load(h, NULL, NULL, &err);
    cr_assert_eq(rc, 0, "rs_heap_load: %s", err.msg);
    return h;
}

static rs_heap *load_heap(void) { return load_heap_at((uint64_t)(uintptr_t)&rc_debug_registry); }

/* Run a report with --json and parse it. */
static json_t *report(rs_heap *h, const char *cmd, int *status)
{
    char line[512];
    snprintf(line, sizeof line, "%s --json", cmd);
    int st = -1;
    char *text = rs_heap_report(h, line, &st);
    cr_assert_not_null(text);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    cr_assert_not_null(j, "'%s': not JSON (%s): %.300s", cmd, jerr.text, text);
    rs_free(text);
    if (status)
        *status = st;
    else
        cr_assert(st == 0 || st == 1, "'%s': status %d", cmd, st);
    return j;
}

static char *report_text(rs_heap *h, const char *cmd, int *status)
{
    int st = -1;
    char *text = rs_heap_report(h, cmd, &st);
    cr_assert_not_null(text);
    if (status)
        *status = st;
    return text;
}

static uint64_t jaddr(const json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "address"));
    cr_assert_not_null(s);
    return strtoull(s, NULL, 16);
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static char *hex(const void *p)
{
    static char bufs[4][32];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, 32, "0x%" PRIxPTR, (uintptr_t)p);
    return b;
}

/* ---- test types ---------------------------------------------------------------- */

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *other;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, other), RC_FIELDS_END};

/* Every destroyed test object is recorded (the cascade oracle). */
static uintptr_t destroyed[1 << 16];
static size_t ndestroyed;
static void record_destroy(rc_object *self)
{
    if (ndestroyed < sizeof destroyed / sizeof *destroyed)
        destroyed[ndestroyed++] = (uintptr_t)self;
}
static void noop_del(rc_object *self) { (void)self; }

static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields,
                            .destroy = record_destroy};
static rc_type Legacy_type = {.name = "LegacyNode", .size = sizeof(Node), .fields = node_fields,
                              .legacy_del = noop_del, .destroy = record_destroy};
static rc_type Fin_type = {.name = "FinNode", .size = sizeof(Node), .fields = node_fields,
                           .finalize = noop_del, .destroy = record_destroy};
static rc_type Leaky_type = {.name = "Leaky", .size = sizeof(Node), .fields = node_fields};

typedef struct Leaf {
    RC_OBJECT_HEAD;
    int64_t value;
} Leaf;
static rc_type Leaf_type = {.name = "Leaf", .size = sizeof(Leaf), .destroy = record_destroy};

static Node *node(rc_type *t)
{
    Node *n = rc_new(Node, t);
    cr_assert_not_null(n);
    return n;
}

/* a -> b through `next` (a new reference for the edge). */
static void link_next(Node *a, void *b) { rc_set(&a->next, RC_OBJ(b)); }

static void setup(void)
{
    rc_init();
    rc_gc_disable();
    rc_gc_collect(2);
    ndestroyed = 0;
}

/* The runtime releases what the test left alive (leak checkers stay quiet). */
static void teardown(void) { rc_shutdown(); }

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 60);

/* Addresses of the members (and tracked hanging objects) of the collectable
 * groups, the uncollectable ones, and the cascade, from `cycles --json`. */
typedef struct addr_set {
    uint64_t *a;
    size_t n, cap;
} addr_set;

static void set_add(addr_set *s, uint64_t a)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->a = realloc(s->a, s->cap * sizeof *s->a);
    }
    s->a[s->n++] = a;
}

static int u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void set_sort(addr_set *s)
{
    if (s->n > 1)
        qsort(s->a, s->n, sizeof *s->a, u64_cmp);
}

static bool set_has(const addr_set *s, uint64_t a)
{
    return bsearch(&a, s->a, s->n, sizeof *s->a, u64_cmp) != NULL;
}

/* Predicted deaths of objects of the test types (they record their own
 * destruction): filled by cycles_sets. */
static addr_set predicted_test_deaths;

static bool is_test_type(const json_t *o)
{
    const char *t = json_string_value(json_object_get(o, "type"));
    return t && (!strcmp(t, "Node") || !strcmp(t, "LegacyNode") || !strcmp(t, "FinNode") ||
                 !strcmp(t, "Leaf"));
}

static void cycles_sets(json_t *j, addr_set *coll, addr_set *unc, addr_set *cascade)
{
    predicted_test_deaths.n = 0;
    json_t *cyc = json_object_get(j, "cycles");
    cr_assert(json_is_array(cyc));
    cr_assert_eq(jint(j, "groups_omitted"), 0);
    for (size_t g = 0; g < json_array_size(cyc); g++) {
        json_t *y = json_array_get(cyc, g);
        bool u = json_is_true(json_object_get(y, "uncollectable"));
        cr_assert_eq(jint(y, "members_omitted"), 0);
        cr_assert_eq(jint(y, "hanging_omitted"), 0);
        json_t *m = json_object_get(y, "members");
        for (size_t k = 0; k < json_array_size(m); k++) {
            set_add(u ? unc : coll, jaddr(json_array_get(m, k)));
            if (!u && is_test_type(json_array_get(m, k)))
                set_add(&predicted_test_deaths, jaddr(json_array_get(m, k)));
        }
        json_t *hg = json_object_get(y, "hanging_off");
        for (size_t k = 0; k < json_array_size(hg); k++) {
            json_t *z = json_array_get(hg, k);
            const char *st = jstr(z, "state");
            if ((!strcmp(st, "collectable") || !strcmp(st, "freed by cascade")) && is_test_type(z))
                set_add(&predicted_test_deaths, jaddr(z));
            if (!strcmp(st, "collectable"))
                set_add(coll, jaddr(z));
            else if (!strcmp(st, "uncollectable"))
                set_add(unc, jaddr(z));
            else if (!strcmp(st, "freed by cascade"))
                set_add(cascade, jaddr(z));
            else
                cr_assert_fail("hanging object in state '%s'", st);
        }
    }
    set_sort(coll);
    set_sort(unc);
    set_sort(cascade);
}

/* ---- planted cycles ------------------------------------------------------------------ */

Test(engine, planted_cycles)
{
    /* a 3-cycle, a 2-cycle with an atomic leaf hanging off, a self loop */
    Node *a = node(&Node_type), *b = node(&Node_type), *c = node(&Node_type);
    link_next(a, b);
    link_next(b, c);
    link_next(c, a);
    Node *d = node(&Node_type), *e = node(&Node_type);
    link_next(d, e);
    link_next(e, d);
    Leaf *leaf = rc_new(Leaf, &Leaf_type);
    rc_set(&d->other, RC_OBJ(leaf));
    rc_decref(leaf);
    Node *s = node(&Node_type);
    link_next(s, s);
    /* and a live cycle held by a root: not garbage */
    static rc_object *keep;
    Node *x = node(&Node_type), *y = node(&Node_type);
    link_next(x, y);
    link_next(y, x);
    keep = RC_OBJ(x);
    rc_root_add(&keep, "keep");
    rc_decref(y);
    uintptr_t aa = (uintptr_t)a, ba = (uintptr_t)b, ca = (uintptr_t)c, da = (uintptr_t)d,
              ea = (uintptr_t)e, sa = (uintptr_t)s, la = (uintptr_t)leaf;
    rc_decref(a);
    rc_decref(b);
    rc_decref(c);
    rc_decref(d);
    rc_decref(e);
    rc_decref(s);

    rs_heap *h = load_heap();
    json_t *j = report(h, "cycles --limit 0", NULL);
    cr_assert_eq(jint(json_object_get(j, "collectable"), "objects"), 6);
    cr_assert_eq(jint(json_object_get(j, "cascade"), "objects"), 1);
    cr_assert_eq(jint(j, "cycles_total"), 3);
    addr_set coll = {0}, unc = {0}, cas = {0};
    cycles_sets(j, &coll, &unc, &cas);
    cr_assert_eq(coll.n, 6);
    cr_assert_eq(unc.n, 0);
    cr_assert_eq(cas.n, 1);
    cr_assert(set_has(&coll, aa) && set_has(&coll, ba) && set_has(&coll, ca));
    cr_assert(set_has(&coll, da) && set_has(&coll, ea) && set_has(&coll, sa));
    cr_assert(set_has(&cas, la));
    /* the largest group first: the 3-cycle, with a path of Node.next back to its start */
    json_t *g1 = json_array_get(json_object_get(j, "cycles"), 0);
    cr_assert_eq(jint(g1, "objects"), 3);
    cr_assert(json_is_true(json_object_get(g1, "is_cycle")));
    json_t *types = json_object_get(g1, "types");
    cr_assert_eq(json_array_size(types), 1);
    cr_assert_str_eq(jstr(json_array_get(types, 0), "type"), "Node");
    json_t *path = json_object_get(g1, "path");
    cr_assert_eq(json_array_size(path), 3);
    uint64_t start = jaddr(json_object_get(json_array_get(path, 0), "from"));
    for (size_t k = 0; k < 3; k++) {
        json_t *st = json_array_get(path, k);
        cr_assert_str_eq(jstr(st, "label"), "Node.next");
        if (k > 0)
            cr_assert_eq(jaddr(json_object_get(st, "from")),
                         jaddr(json_object_get(json_array_get(path, k - 1), "to")));
    }
    cr_assert_eq(jaddr(json_object_get(json_array_get(path, 2), "to")), start);
    /* the 2-cycle has the leaf hanging off it */
    bool found_leaf = false;
    json_t *cyc = json_object_get(j, "cycles");
    for (size_t g = 0; g < json_array_size(cyc); g++) {
        json_t *hg = json_object_get(json_array_get(cyc, g), "hanging_off");
        for (size_t k = 0; k < json_array_size(hg); k++)
            if (jaddr(json_array_get(hg, k)) == la) {
                found_leaf = true;
                cr_assert_eq(jint(json_array_get(cyc, g), "objects"), 2);
                cr_assert_str_eq(jstr(json_array_get(hg, k), "type"), "Leaf");
            }
    }
    cr_assert(found_leaf);
    json_decref(j);

    /* the text form names the path */
    char *t = report_text(h, "cycles", NULL);
    cr_assert(strstr(t, "cycles: a full collection would free 6 objects"), "%s", t);
    cr_assert(strstr(t, "-> Node.next ->"), "%s", t);
    cr_assert(strstr(t, "(back to start)"), "%s", t);
    rs_free(t);
    rs_heap_free(h);

    /* and the collector agrees */
    cr_assert_eq(rc_gc_collect(2), 6);
    free(coll.a);
    free(cas.a);
}

/* ---- a missing decref ------------------------------------------------------------------ */

static rc_object *holder;

Test(engine, missing_decref)
{
    holder = rc_list_new();
    rc_root_add(&holder, "holder");
    Node *x = rc_new(Node, &Leaky_type); const int leak_line = __LINE__; const char *fn = __func__;
    rc_list_append(holder, RC_OBJ(x));
    rc_incref(x); /* the bug: a reference nobody owns */
    rc_decref(x); /* our own reference: the list holds one, the bug another */
    Node *fine = node(&Node_type);
    rc_list_append(holder, RC_OBJ(fine));
    rc_decref(fine);

    rs_heap *h = load_heap();
    int st;
    json_t *j = report(h, "leaks", &st);
    cr_assert_eq(st, 1, "leaks finds something: status 1");
    cr_assert_eq(jint(json_object_get(j, "unexplained"), "objects"), 1);
    cr_assert_eq(jint(json_object_get(j, "unexplained"), "references"), 1);
    cr_assert_eq(jint(json_object_get(j, "over_released"), "objects"), 0);
    json_t *g = json_array_get(json_object_get(j, "leaks"), 0);
    cr_assert_str_eq(jstr(g, "type"), "Leaky");
    char want[64];
    snprintf(want, sizeof want, "test_engine.c:%d", leak_line);
    const char *site = jstr(g, "site");
    cr_assert(strstr(site, want) && strncmp(site, "../", 3) && strncmp(site, "./", 2),
              "site %s, want .../%s without ./ or ../", site, want);
    cr_assert_str_eq(jstr(g, "function"), fn);
    json_t *ex = json_array_get(json_object_get(g, "examples"), 0);
    cr_assert_eq(jaddr(json_object_get(ex, "object")), (uintptr_t)x);
    json_t *rec = json_object_get(ex, "reconciliation");
    cr_assert_eq(jint(rec, "refcount"), 2);
    cr_assert_eq(jint(rec, "heap"), 1);
    cr_assert_eq(jint(rec, "unexplained"), 1);
    json_decref(j);

    /* refs says the same, by address and by the root's name */
    char cmd[64];
    snprintf(cmd, sizeof cmd, "refs %s", hex(x));
    j = report(h, cmd, NULL);
    rec = json_object_get(j, "reconciliation");
    cr_assert_eq(jint(rec, "refcount"), 2);
    cr_assert_eq(jint(rec, "explained"), 1);
    cr_assert_eq(jint(rec, "unexplained"), 1);
    json_t *rr = json_object_get(j, "referrers");
    cr_assert_eq(json_array_size(rr), 1);
    cr_assert_str_eq(jstr(json_array_get(rr, 0), "label"), "list[0]");
    cr_assert_eq(jaddr(json_object_get(json_array_get(rr, 0), "object")), (uintptr_t)holder);
    json_decref(j);
    j = report(h, "refs holder", NULL);
    cr_assert_eq(jaddr(json_object_get(j, "object")), (uintptr_t)holder);
    cr_assert_eq(jint(json_object_get(j, "reconciliation"), "roots"), 1);
    cr_assert_eq(jint(json_object_get(j, "reconciliation"), "unexplained"), 0);
    json_decref(j);

    char *t = report_text(h, "leaks", &st);
    cr_assert_eq(st, 1);
    cr_assert(strstr(t, "Leaky at ") && strstr(t, want), "%s", t);
    cr_assert(strstr(t, "1 unexplained"), "%s", t);
    rs_free(t);
    rs_heap_free(h);
}

/* ---- legacy finalizers and gc.garbage ------------------------------------------------------- */

Test(engine, legacy_cycle_in_garbage)
{
    Node *a = node(&Legacy_type), *b = node(&Node_type);
    link_next(a, b);
    link_next(b, a);
    uintptr_t aa = (uintptr_t)a, ba = (uintptr_t)b;
    rc_decref(a);
    rc_decref(b);

    /* before a collection: an uncollectable group, flagged */
    rs_heap *h = load_heap();
    json_t *j = report(h, "cycles --limit 0", NULL);
    cr_assert_eq(jint(json_object_get(j, "collectable"), "objects"), 0);
    cr_assert_eq(jint(json_object_get(j, "uncollectable"), "objects"), 2);
    json_t *g = json_array_get(json_object_get(j, "cycles"), 0);
    cr_assert(json_is_true(json_object_get(g, "uncollectable")));
    cr_assert_eq(jint(json_object_get(g, "finalizers"), "legacy"), 1);
    json_decref(j);
    char *t = report_text(h, "cycles", NULL);
    cr_assert(strstr(t, "UNCOLLECTABLE"), "%s", t);
    rs_free(t);
    rs_heap_free(h);

    /* the collector puts the legacy object in gc.garbage; the engine says why */
    cr_assert_eq(rc_gc_collect(2), 2);
    h = load_heap();
    j = report(h, "garbage", NULL);
    cr_assert_eq(jint(j, "count"), 1);
    json_t *o = json_array_get(json_object_get(j, "objects"), 0);
    cr_assert_eq(jaddr(json_object_get(o, "object")), aa);
    cr_assert_str_eq(jstr(o, "reason"), "legacy-finalizer");
    cr_assert_eq(jint(o, "cycle_objects"), 2);
    json_decref(j);
    t = report_text(h, "garbage", NULL);
    cr_assert(strstr(t, "legacy finalizer (tp_del) and is in a reference cycle of 2"), "%s", t);
    rs_free(t);
    /* the cycle is reachable now (gc.garbage holds it) */
    j = report(h, "cycles", NULL);
    cr_assert_eq(jint(json_object_get(j, "uncollectable"), "objects"), 0);
    json_decref(j);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "path %s", hex((void *)ba));
    j = report(h, cmd, NULL);
    cr_assert(json_is_true(json_object_get(j, "found")));
    cr_assert_str_eq(jstr(j, "text"), "gc.garbage -> gc.garbage[0] -> LegacyNode.next");
    json_decref(j);
    rs_heap_free(h);
}

Test(engine, saveall_reasons)
{
    rc_gc_set_debug(RC_DEBUG_SAVEALL);
    Node *a = node(&Node_type), *b = node(&Node_type);
    link_next(a, b);
    link_next(b, a);
    rc_decref(a);
    rc_decref(b);
    Node *l = node(&Legacy_type), *m = node(&Node_type);
    link_next(l, m);
    link_next(m, l);
    rc_decref(l);
    rc_decref(m);
    rc_gc_collect(2);
    rs_heap *h = load_heap();
    json_t *j = report(h, "garbage --limit 0", NULL);
    cr_assert_eq(jint(j, "count"), 4);
    json_t *br = json_object_get(j, "by_reason");
    cr_assert_eq(jint(br, "legacy-finalizer"), 1);
    cr_assert_eq(jint(br, "reachable-from-legacy"), 1);
    cr_assert_eq(jint(br, "saveall"), 2);
    json_decref(j);
    rs_heap_free(h);
    rc_gc_set_debug(0);
}

/* ---- path and retained on a known graph ----------------------------------------------------- */

static rc_object *mylist;

Test(engine, path_and_retained)
{
    /* mylist -> [n0, n1, n2]; n1 -> c1 -> c2 -> leaf(big); n0.other and n2.other -> shared */
    mylist = rc_list_new();
    rc_root_add(&mylist, "mylist");
    Node *n[3];
    for (int i = 0; i < 3; i++) {
        n[i] = node(&Node_type);
        rc_list_append(mylist, RC_OBJ(n[i]));
    }
    Node *c1 = node(&Node_type), *c2 = node(&Node_type);
    link_next(n[1], c1);
    link_next(c1, c2);
    rc_object *big = rc_bytes(5000);
    rc_set(&c2->other, big);
    Leaf *shared = rc_new(Leaf, &Leaf_type);
    rc_set(&n[0]->other, RC_OBJ(shared));
    rc_set(&n[2]->other, RC_OBJ(shared));
    rc_decref(shared);
    rc_decref(big);
    rc_decref(c1);
    rc_decref(c2);
    for (int i = 0; i < 3; i++)
        rc_decref(n[i]);

    rs_heap *h = load_heap();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "path %s", hex(big));
    json_t *j = report(h, cmd, NULL);
    cr_assert(json_is_true(json_object_get(j, "found")));
    cr_assert_str_eq(jstr(j, "text"), "mylist -> list[1] -> Node.next -> Node.next -> Node.other");
    json_t *steps = json_object_get(j, "steps");
    cr_assert_eq(json_array_size(steps), 5);
    cr_assert_eq(jaddr(json_object_get(json_array_get(steps, 0), "object")), (uintptr_t)mylist);
    cr_assert_eq(jaddr(json_object_get(json_array_get(steps, 2), "object")), (uintptr_t)c1);
    json_decref(j);
    char *t = report_text(h, cmd, NULL);
    cr_assert(strstr(t, "path to bytes@"), "%s", t);
    cr_assert(strstr(t, "registered root 'mylist'"), "%s", t);
    rs_free(t);

    /* sizes of the objects, as the engine counts them */
    uint64_t sz[16];
    rc_object *objs[] = {mylist, RC_OBJ(n[0]), RC_OBJ(n[1]), RC_OBJ(n[2]), RC_OBJ(c1),
                         RC_OBJ(c2), big,       RC_OBJ(shared)};
    for (int i = 0; i < 8; i++) {
        snprintf(cmd, sizeof cmd, "refs %s", hex(objs[i]));
        j = report(h, cmd, NULL);
        sz[i] = (uint64_t)jint(json_object_get(j, "object"), "bytes");
        cr_assert(sz[i] > 0);
        json_decref(j);
    }
    cr_assert_geq(sz[6], 5000, "the bytes object counts its payload");
    /* n1 retains c1, c2, big; the list retains everything (the shared leaf too) */
    snprintf(cmd, sizeof cmd, "retained %s", hex(n[1]));
    j = report(h, cmd, NULL);
    json_t *r = json_object_get(j, "retained");
    cr_assert_eq(jint(r, "objects"), 4);
    cr_assert_eq((uint64_t)jint(r, "bytes"), sz[2] + sz[4] + sz[5] + sz[6]);
    cr_assert_str_eq(jstr(json_object_get(json_object_get(j, "dominator"), "object"), "type"),
                     "list");
    json_decref(j);
    snprintf(cmd, sizeof cmd, "retained %s", hex(n[0]));
    j = report(h, cmd, NULL);
    cr_assert_eq(jint(json_object_get(j, "retained"), "objects"), 1, "the leaf is shared");
    json_decref(j);
    j = report(h, "retained mylist", NULL);
    r = json_object_get(j, "retained");
    cr_assert_eq(jint(r, "objects"), 8);
    uint64_t all = 0;
    for (int i = 0; i < 8; i++)
        all += sz[i];
    cr_assert_eq((uint64_t)jint(r, "bytes"), all);
    json_decref(j);
    /* top retainers: the list first */
    j = report(h, "retained --limit 3", NULL);
    json_t *top = json_object_get(j, "top");
    cr_assert_eq(json_array_size(top), 3);
    cr_assert_eq(jaddr(json_object_get(json_array_get(top, 0), "object")), (uintptr_t)mylist);
    cr_assert_eq((uint64_t)jint(json_object_get(json_array_get(top, 0), "retained"), "bytes"), all);
    json_decref(j);
    /* roots: the registered root retains it all */
    j = report(h, "roots --limit 0", NULL);
    json_t *roots = json_object_get(j, "roots");
    bool seen = false;
    for (size_t k = 0; k < json_array_size(roots); k++) {
        json_t *x = json_array_get(roots, k);
        if (!strcmp(jstr(x, "label"), "mylist")) {
            seen = true;
            cr_assert_str_eq(jstr(x, "kind"), "registered root");
            cr_assert_eq((uint64_t)jint(json_object_get(x, "retained"), "bytes"), all);
        }
    }
    cr_assert(seen);
    json_decref(j);
    rs_heap_free(h);
}

/* ---- globals and a closure capturing a big object --------------------------------------------- */

static rc_object *process_fn(rc_object *self, rc_object *arg)
{
    (void)self;
    (void)arg;
    return NULL;
}

Test(engine, globals_and_closure)
{
    rc_object *huge = rc_bytes(1 << 20);
    const char *names[] = {"huge_data", "count"};
    rc_object *cnt = rc_int(3);
    rc_object *vals[] = {huge, cnt};
    rc_object *clo = rc_closure_new(process_fn, "process", 2, names, vals);
    rc_decref(huge);
    rc_decref(cnt);
    rc_dict_set(rc_globals(), "handler", clo);
    rc_decref(clo);
    rc_object *cfg = rc_dict_new();
    rc_dict_set(rc_globals(), "config", cfg);
    rc_object *v = rc_str("value");
    rc_dict_set(cfg, "name", v);
    rc_decref(v);
    rc_decref(cfg);

    rs_heap *h = load_heap();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "path %s", hex(huge));
    json_t *j = report(h, cmd, NULL);
    cr_assert_str_eq(jstr(j, "text"), "globals -> globals['handler'] -> closure process cell "
                                      "'huge_data'");
    json_decref(j);
    snprintf(cmd, sizeof cmd, "refs %s", hex(huge));
    j = report(h, cmd, NULL);
    json_t *rr = json_object_get(j, "referrers");
    cr_assert_eq(json_array_size(rr), 1);
    cr_assert_str_eq(jstr(json_array_get(rr, 0), "label"), "closure process cell 'huge_data'");
    json_decref(j);
    /* names: a globals key, with or without globals['...'] */
    j = report(h, "refs handler", NULL);
    cr_assert_eq(jaddr(json_object_get(j, "object")), (uintptr_t)clo);
    cr_assert_str_eq(jstr(json_object_get(j, "object"), "name"), "process");
    json_t *re = json_object_get(j, "referents");
    cr_assert_eq(json_array_size(re), 2);
    cr_assert_str_eq(jstr(json_array_get(re, 1), "label"), "closure process cell 'count'");
    json_decref(j);
    j = report(h, "refs globals['config']", NULL);
    cr_assert_eq(jaddr(json_object_get(j, "object")), (uintptr_t)cfg);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "referents"), 0), "label"),
                     "dict['name']");
    json_decref(j);

    j = report(h, "roots", NULL);
    json_t *g = json_object_get(j, "globals");
    cr_assert_eq(json_array_size(g), 2);
    cr_assert_str_eq(jstr(json_array_get(g, 0), "label"), "globals['handler']");
    cr_assert_geq(jint(json_object_get(json_array_get(g, 0), "retained"), "bytes"), 1 << 20);
    json_t *cl = json_object_get(j, "closures");
    cr_assert_eq(json_array_size(cl), 1);
    json_t *c0 = json_array_get(cl, 0);
    cr_assert_str_eq(jstr(c0, "name"), "process");
    cr_assert_geq(jint(json_object_get(c0, "retained"), "bytes"), 1 << 20);
    json_t *cells = json_object_get(c0, "cells");
    cr_assert_eq(json_array_size(cells), 2);
    cr_assert_str_eq(jstr(json_array_get(cells, 0), "label"), "closure process cell 'huge_data'");
    cr_assert_geq(jint(json_object_get(json_array_get(cells, 0), "retained"), "bytes"), 1 << 20);
    json_decref(j);
    char *t = report_text(h, "roots", NULL);
    cr_assert(strstr(t, "globals['handler'] -> closure@"), "%s", t);
    cr_assert(strstr(t, "closure process cell 'huge_data' -> bytes@"), "%s", t);
    rs_free(t);
    rs_heap_free(h);
}

/* ---- front-end roots ---------------------------------------------------------------------------- */

static rc_object *cglobal, *cachelist;

Test(engine, front_end_roots)
{
    rc_object *local = rc_list_new(); /* held only by this "stack slot" */
    /* a stale stack word: the object is owned by a list in a C global, the
     * slot is not a reference */
    cachelist = rc_list_new();
    Node *stale = node(&Node_type);
    rc_list_append(cachelist, RC_OBJ(stale));
    rc_decref(stale);
    /* a reference a frame owns (or leaked): refcount 2 = list + the frame */
    Node *owned = node(&Node_type);
    rc_list_append(local, RC_OBJ(owned));
    /* a garbage cycle a stale stack word still points at */
    Node *g1 = node(&Node_type), *g2 = node(&Node_type);
    link_next(g1, g2);
    link_next(g2, g1);
    rc_decref(g1);
    rc_decref(g2);
    /* a C global the front end found through DWARF: an owning root */
    cglobal = rc_int(5);
    rs_error err = {{0}};
    rs_memory mem = {self_read, NULL};
    rs_heap *h = rs_heap_new(mem, (uint64_t)(uintptr_t)&rc_debug_registry, &err);
    cr_assert_not_null(h);
    cr_assert_eq(rs_heap_add_root(h, RS_ROOT_LOCAL, "frame #0 test() local 'local'",
                                  (uint64_t)(uintptr_t)&local, (uint64_t)(uintptr_t)local),
                 0);
    static uint64_t words[3];
    words[0] = (uintptr_t)stale;
    words[1] = (uintptr_t)owned;
    words[2] = (uintptr_t)g1;
    rs_heap_add_root(h, RS_ROOT_STACK, "thread 1 frame #2 g()", (uintptr_t)&words[2], words[2]);
    rs_heap_add_root(h, RS_ROOT_STACK, "thread 1 frame #1 f()", (uintptr_t)&words[0], words[0]);
    rs_heap_add_root(h, RS_ROOT_STACK, "thread 1 frame #1 f()", (uintptr_t)&words[1], words[1]);
    rs_heap_add_root(h, RS_ROOT_STACK, "noise", 0x1000, 0x1234); /* no object: dropped */
    rs_heap_add_root(h, RS_ROOT_GLOBAL, "cglobal", (uintptr_t)&cglobal, (uintptr_t)cglobal);
    rs_heap_add_root(h, RS_ROOT_GLOBAL, "cachelist", (uintptr_t)&cachelist,
                     (uintptr_t)cachelist);
    cr_assert_eq(rs_heap_load(h, NULL, NULL, &err), 0, "%s", err.msg);
    int st;
    json_t *j = report(h, "leaks", &st);
    cr_assert_eq(st, 0, "stack slots are no findings");
    cr_assert_eq(jint(json_object_get(j, "unexplained"), "objects"), 0);
    cr_assert_eq(jint(json_object_get(j, "over_released"), "objects"), 0, "a stale slot is no owner");
    cr_assert_eq(jint(json_object_get(j, "stack_held"), "objects"), 2, "local and owned");
    json_decref(j);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "refs %s", hex(stale));
    j = report(h, cmd, NULL);
    json_t *rec = json_object_get(j, "reconciliation");
    cr_assert_eq(jint(rec, "stack"), 0);
    cr_assert_eq(jint(rec, "stack_slots"), 1);
    cr_assert_eq(jint(rec, "unexplained"), 0);
    json_decref(j);
    snprintf(cmd, sizeof cmd, "refs %s", hex(owned));
    j = report(h, cmd, NULL);
    rec = json_object_get(j, "reconciliation");
    cr_assert_eq(jint(rec, "refcount"), 2);
    cr_assert_eq(jint(rec, "stack"), 1);
    cr_assert_eq(jint(rec, "unexplained"), 0);
    json_decref(j);
    j = report(h, "refs cglobal", NULL);
    rec = json_object_get(j, "reconciliation");
    cr_assert_eq(jint(rec, "roots"), 1);
    cr_assert_eq(jint(rec, "unexplained"), 0);
    json_decref(j);
    /* path: from the owning root, not from the stale stack word */
    snprintf(cmd, sizeof cmd, "path %s", hex(stale));
    j = report(h, cmd, NULL);
    cr_assert_str_eq(jstr(j, "text"), "cachelist -> list[0]");
    json_decref(j);
    /* the stale word holds nothing: the cycle is garbage, reachable from no root */
    snprintf(cmd, sizeof cmd, "path %s", hex(g2));
    j = report(h, cmd, NULL);
    cr_assert(json_is_false(json_object_get(j, "found")));
    cr_assert(strstr(jstr(j, "reason"), "unreachable cycle"), "%s", jstr(j, "reason"));
    json_decref(j);
    j = report(h, "cycles", NULL);
    cr_assert_eq(jint(json_object_get(j, "collectable"), "objects"), 2);
    json_decref(j);
    j = report(h, "roots --limit 0", NULL);
    json_t *roots = json_object_get(j, "roots");
    size_t holding = 0;
    for (size_t k = 0; k < json_array_size(roots); k++) {
        json_t *x = json_array_get(roots, k);
        if (!strcmp(jstr(x, "kind"), "stack"))
            holding += json_is_true(json_object_get(x, "holds"));
    }
    cr_assert_eq(holding, 1, "only the word that owns `owned` holds");
    json_decref(j);
    j = report(h, "refs 'frame #0 test() local 'local''", NULL);
    json_decref(j);
    snprintf(cmd, sizeof cmd, "path %s", hex(local));
    j = report(h, cmd, NULL);
    cr_assert_str_eq(jstr(json_object_get(j, "root"), "kind"), "local");
    json_decref(j);
    rs_heap_free(h);
    rc_decref(owned);
    rc_decref(local);
    rc_decref(cglobal);
    rc_decref(cachelist);
}

/* ---- every command, text and JSON ----------------------------------------------------------------- */

static rc_object *on_dead(rc_object *self, rc_object *arg)
{
    (void)self;
    (void)arg;
    return NULL;
}

static rc_object *mixed_root;

static void build_mixed_heap(void)
{
    mixed_root = rc_list_new();
    rc_root_add(&mixed_root, "mixed");
    for (int i = 0; i < 50; i++) {
        Node *a = node(&Node_type);
        rc_object *x = rc_int(i);
        rc_set(&a->other, x);
        rc_decref(x);
        rc_list_append(mixed_root, RC_OBJ(a));
        rc_decref(a);
    }
    rc_object *t = rc_tuple_new(2, mixed_root, mixed_root);
    rc_dict_set(rc_globals(), "tup", t);
    rc_decref(t);
    /* a garbage cycle with a weakref (with a callback) to one member */
    Node *a = node(&Node_type), *b = node(&Node_type);
    link_next(a, b);
    link_next(b, a);
    rc_object *cb = rc_closure_new(on_dead, "on_dead", 0, NULL, NULL);
    rc_object *wr = rc_weakref_new(RC_OBJ(a), cb);
    rc_decref(cb);
    rc_dict_set(rc_globals(), "wr", wr);
    rc_decref(wr);
    rc_decref(a);
    rc_decref(b);
    /* a class instance */
    rc_object *cls = rc_class_new("Point", NULL, NULL, 0);
    rc_object *p = rc_instance_new(cls);
    rc_object *one = rc_int(1);
    rc_setattr(p, "x", one);
    rc_decref(one);
    rc_dict_set(rc_globals(), "p", p);
    rc_decref(p);
    rc_decref(cls);
}

Test(engine, all_commands)
{
    build_mixed_heap();
    rs_heap *h = load_heap();
    char first[64];
    snprintf(first, sizeof first, "%s", hex(rc_list_get(mixed_root, 0)));
    const char *cmds[] = {"summary", "types", "sites", "types --limit 2", "cycles", "garbage",
                          "roots", "leaks", "retained", "check", "refs mixed", "path tup",
                          "retained mixed", "graph mixed --depth 1", "graph --cycle 1",
                          "graph mixed --backrefs --depth 2 --limit 10", "refs p"};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        int st;
        json_t *j = report(h, cmds[k], &st);
        cr_assert(st == 0 || st == 1, "%s: status %d", cmds[k], st);
        char name[32];
        sscanf(cmds[k], "%31s", name);
        cr_assert_str_eq(jstr(j, "command"), name);
        cr_assert(json_is_array(json_object_get(j, "warnings")));
        json_decref(j);
        char *t = report_text(h, cmds[k], &st);
        cr_assert(strlen(t) > 10, "%s: %s", cmds[k], t);
        rs_free(t);
    }
    /* the weakref whose callback would fire */
    json_t *j = report(h, "cycles", NULL);
    json_t *g = json_array_get(json_object_get(j, "cycles"), 0);
    json_t *w = json_object_get(g, "weakref_callbacks");
    cr_assert_eq(json_array_size(w), 1);
    cr_assert(strstr(jstr(json_object_get(json_array_get(w, 0), "callback"), "desc"), "on_dead"));
    json_decref(j);
    /* an instance's edges */
    j = report(h, "refs p", NULL);
    json_t *re = json_object_get(j, "referents");
    cr_assert_str_eq(jstr(json_array_get(re, 0), "label"), "Point.__class__");
    cr_assert_str_eq(jstr(json_array_get(re, 1), "label"), "Point.__dict__");
    json_decref(j);
    /* DOT */
    char *t = report_text(h, "graph --cycle 1", NULL);
    cr_assert(strstr(t, "digraph refscope {") && strstr(t, "label=\"Node.next\""), "%s", t);
    rs_free(t);
    t = report_text(h, "graph mixed --depth 1 --png /tmp/x.png", NULL);
    cr_assert(strstr(t, "digraph"), "%s", t);
    rs_free(t);
    /* check is clean on a healthy heap */
    int st;
    j = report(h, "check", &st);
    cr_assert_eq(st, 0, "check: %s", json_dumps(json_object_get(j, "problems"), 0));
    cr_assert(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    /* usage errors */
    const char *bad[] = {"frobnicate", "refs", "refs nosuchname", "refs 0x10", "types --limit x",
                         "graph", "graph --cycle 99", "summary extra", "cycles --bogus", "",
                         "refs 'unterminated"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        t = report_text(h, bad[k], &st);
        cr_assert_eq(st, 2, "'%s': status %d: %s", bad[k], st, t);
        cr_assert(!strncmp(t, "refscope: ", 10), "%s", t);
        rs_free(t);
    }
    cr_assert(strstr(rs_commands_help(), "cycles"));
    rs_heap_free(h);
}

/* ---- check finds planted problems --------------------------------------------------------------- */

/* a -> b, a held by the registered root *slot (named name), b by a only */
static Node *rooted_pair(rc_object **slot, const char *name, Node **b_ret)
{
    Node *a = node(&Node_type), *b = node(&Node_type);
    link_next(a, b);
    *slot = RC_OBJ(a);
    rc_root_add(slot, name);
    rc_decref(b);
    *b_ret = b;
    return a;
}

/* Does `check --limit 0` (exit status 1) list a problem of this kind at
 * addr, its message containing text (NULL: any)? */
static bool check_lists(rs_heap *h, const void *addr, const char *kind, const char *text)
{
    int st;
    json_t *j = report(h, "check --limit 0", &st);
    cr_assert_eq(st, 1);
    json_t *pr = json_object_get(j, "problems");
    bool found = false;
    for (size_t k = 0; k < json_array_size(pr); k++) {
        json_t *p = json_array_get(pr, k);
        if (jaddr(p) == (uintptr_t)addr && !strcmp(jstr(p, "kind"), kind) &&
            (!text || strstr(jstr(p, "message"), text)))
            found = true;
    }
    if (!found)
        fprintf(stderr, "check: %s\n", json_dumps(pr, 0));
    json_decref(j);
    return found;
}

Test(engine, check_finds_corruption)
{
    static rc_object *r;
    Node *b;
    rooted_pair(&r, "r", &b);
    /* over-release b behind the runtime's back (b: refcount 1 -> 0, one holder) */
    b->ob_base.ob_refcnt = 0;
    rs_heap *h = load_heap();
    cr_assert(check_lists(h, b, "refcount", NULL));
    int st;
    json_t *j = report(h, "leaks", &st);
    cr_assert_eq(st, 1);
    cr_assert_eq(jint(json_object_get(j, "over_released"), "objects"), 1);
    json_decref(j);
    rs_heap_free(h);
    b->ob_base.ob_refcnt = 1;
}

/* A reference to an odd address (a corrupt field): no object, whatever the
 * load's caches hold. The address 1 once matched the empty slots of the
 * edge resolution's memo, and the edge went to whatever its value was. */
Test(engine, odd_reference_is_no_object)
{
    static rc_object *r;
    Node *b, *a = rooted_pair(&r, "odd", &b);
    a->other = (rc_object *)(uintptr_t)1;
    rs_heap *h = load_heap();
    cr_assert(check_lists(h, a, "reference", "Node.other points at 0x1,"));
    /* a's one heap reference is next: b's count is explained by it */
    char cmd[64];
    snprintf(cmd, sizeof cmd, "refs %p", (void *)a);
    int st;
    json_t *j = report(h, cmd, &st);
    cr_assert_eq(json_array_size(json_object_get(j, "referents")), 1, "%s", json_dumps(j, 0));
    json_decref(j);
    rs_heap_free(h);
    a->other = NULL;
    rc_root_remove(&r);
    rc_set(&r, NULL);
}

/* ---- edge labels, decoded again when printed ---------------------------------------------- */

static rc_object *labelled;

/* The engine keeps no labels after loading; it decodes the source again
 * when it prints one (rs_edge_lab). Sources of every shape: a tuple too
 * big for the pools (the large-object list), a list buffer, a dict. And
 * when the memory no longer says what was loaded (a live target that ran
 * since), the label says it does not know rather than naming a wrong slot. */
Test(engine, labels_decoded_again)
{
    rc_object *items[100];
    for (int i = 0; i < 100; i++)
        items[i] = rc_int(1000 + i);
    rc_object *tup = rc_tuple_newv_at(RC_HERE, 100, items);
    rc_object *d = rc_dict_new();
    rc_dict_set(d, "alpha", items[3]);
    rc_dict_set(d, "beta", items[4]);
    labelled = rc_list_new();
    rc_list_append(labelled, tup);
    rc_list_append(labelled, d);
    rc_root_add(&labelled, "labelled");
    cr_assert_gt(rc_sizeof(tup), 512, "the tuple is a large object");

    rs_heap *h = load_heap();
    char cmd[64];
    snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(items[57]));
    json_t *j = report(h, cmd, NULL);
    json_t *rr = json_object_get(j, "referrers");
    cr_assert_eq(json_array_size(rr), 1);
    cr_assert_str_eq(jstr(json_array_get(rr, 0), "label"), "tuple[57]");
    json_decref(j);
    snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(tup));
    j = report(h, cmd, NULL);
    json_t *re = json_object_get(j, "referents");
    cr_assert_eq(json_array_size(re), 100);
    for (size_t k = 0; k < 100; k += 33) {
        char want[32];
        snprintf(want, sizeof want, "tuple[%zu]", k);
        cr_assert_str_eq(jstr(json_array_get(re, k), "label"), want);
        cr_assert_eq(jaddr(json_object_get(json_array_get(re, k), "object")), (uintptr_t)items[k]);
    }
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "referrers"), 0), "label"), "list[0]");
    json_decref(j);
    snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(items[4]));
    j = report(h, cmd, NULL);
    rr = json_object_get(j, "referrers");
    cr_assert_eq(json_array_size(rr), 2);
    const char *l0 = jstr(json_array_get(rr, 0), "label"), *l1 = jstr(json_array_get(rr, 1), "label");
    cr_assert((!strcmp(l0, "tuple[4]") && !strcmp(l1, "dict['beta']")) ||
                  (!strcmp(l1, "tuple[4]") && !strcmp(l0, "dict['beta']")),
              "labels %s, %s", l0, l1);
    json_decref(j);

    /* (labels of another source, so that the tuple's are decoded afresh
     * below, whichever source the query above decoded last) */
    snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(d));
    j = report(h, cmd, NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "referrers"), 0), "label"), "list[1]");
    json_decref(j);

    /* the tuple's slot 57 now holds item 58: its referrer label is unknown */
    rc_object **slot = NULL;
    for (rc_object **p = (rc_object **)(void *)tup; p < (rc_object **)(void *)tup + 200; p++)
        if (*p == items[57]) {
            slot = p;
            break;
        }
    cr_assert_not_null(slot);
    *slot = items[58];
    snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(items[57]));
    j = report(h, cmd, NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "referrers"), 0), "label"), "tuple.?");
    json_decref(j);
    *slot = items[57];
    rs_heap_free(h);

    rc_root_remove(&labelled);
    rc_decref(labelled);
    rc_decref(tup);
    rc_decref(d);
    for (int i = 0; i < 100; i++)
        rc_decref(items[i]);
}

/* The load packs an edge's target and label into one word when they fit
 * (an element < 2^12 in the object, gaps between a buffer's items < 2^12
 * in place or < 2^19 read later) and keeps the rest on the side: labels
 * past those, dict holes and long buffers must come out as the runtime has
 * them. */
static rc_object *packed;

static const char *referrer_label(rs_heap *h, rc_object *o, char *buf, size_t size)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(o));
    json_t *j = report(h, cmd, NULL);
    json_t *rr = json_object_get(j, "referrers");
    cr_assert_eq(json_array_size(rr), 1, "one referrer of %s", hex(o));
    snprintf(buf, size, "%s", jstr(json_array_get(rr, 0), "label"));
    json_decref(j);
    return buf;
}

Test(engine, labels_past_the_packed_range)
{
    enum { N = 20000 };
    rc_object **items = calloc(2 * N, sizeof *items);
    cr_assert_not_null(items);
    for (int i = 0; i < 2 * N; i++)
        items[i] = rc_int(5000000 + i);
    rc_object *tup = rc_tuple_newv_at(RC_HERE, N, items);      /* inline, elements >= 2^14 */
    rc_object *lst = rc_list_new();                             /* a buffer, long */
    for (int i = N; i < 2 * N; i++)
        rc_list_append(lst, items[i]);
    rc_object *d = rc_dict_new();                               /* a buffer with holes */
    char key[32];
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof key, "k%d", k);
        rc_object *v = rc_tuple_new(0);
        rc_dict_set(d, key, v);
        rc_decref(v);
    }
    rc_object *last = rc_dict_get(d, "k9");
    for (int k = 1; k < 9; k++) {
        snprintf(key, sizeof key, "k%d", k);
        rc_dict_del(d, key);
    }
    packed = rc_list_new();
    rc_list_append(packed, tup);
    rc_list_append(packed, lst);
    rc_list_append(packed, d);
    rc_root_add(&packed, "packed");

    rs_heap *h = load_heap();
    char buf[128];
    cr_assert_str_eq(referrer_label(h, items[16383], buf, sizeof buf), "tuple[16383]");
    cr_assert_str_eq(referrer_label(h, items[16384], buf, sizeof buf), "tuple[16384]");
    cr_assert_str_eq(referrer_label(h, items[N - 1], buf, sizeof buf), "tuple[19999]");
    cr_assert_str_eq(referrer_label(h, items[N + 17000], buf, sizeof buf), "list[17000]");
    cr_assert_str_eq(referrer_label(h, items[2 * N - 1], buf, sizeof buf), "list[19999]");
    cr_assert_str_eq(referrer_label(h, last, buf, sizeof buf), "dict['k9']");
    /* and the edges themselves: every item once, in order */
    snprintf(buf, sizeof buf, "refs %s --limit 0", hex(tup));
    json_t *j = report(h, buf, NULL);
    json_t *re = json_object_get(j, "referents");
    cr_assert_eq(json_array_size(re), N);
    for (size_t k = 0; k < N; k += 4999)
        cr_assert_eq(jaddr(json_object_get(json_array_get(re, k), "object")), (uintptr_t)items[k]);
    json_decref(j);
    snprintf(buf, sizeof buf, "refs %s --limit 0", hex(d));
    j = report(h, buf, NULL);
    re = json_object_get(j, "referents");
    cr_assert_eq(json_array_size(re), 2, "k0 and k9 are left");
    cr_assert_str_eq(jstr(json_array_get(re, 1), "label"), "dict['k9']");
    json_decref(j);
    rs_heap_free(h);

    rc_root_remove(&packed);
    rc_decref(packed);
    rc_decref(tup);
    rc_decref(lst);
    rc_decref(d);
    for (int i = 0; i < 2 * N; i++)
        rc_decref(items[i]);
    free(items);
}

/* ---- buffers decoded in place ------------------------------------------------------------ */

/*
 * The engine reads a core's memory in place (rs_memory_view, the target
 * layer's): a list's items and a dict's entries are then decoded with
 * their object, in label order, instead of being queued, read in batches
 * and merged in (what a live process or a memory callback gets). Both
 * ways must give the same graph, the same labels and the same bad edges.
 * This binary has no target layer: with `views` on, this stands in for
 * it, viewing our own memory in place as a core's mapping would be.
 */
static bool views;
const void *rs_memory_view(rs_memory mem, uint64_t addr, size_t len, size_t *avail);
const void *rs_memory_view(rs_memory mem, uint64_t addr, size_t len, size_t *avail)
{
    (void)mem;
    if (!views || !addr)
        return NULL;
    *avail = len;
    return (const void *)(uintptr_t)addr;
}

/* An object with a buffer between two plain references. */
typedef struct Bag {
    RC_OBJECT_HEAD;
    rc_object *first;
    rc_object **items;
    size_t n;
    rc_object *last;
} Bag;
static void bag_destroy(rc_object *self) { free(((Bag *)(void *)self)->items); }
static const rc_field bag_fields[] = {RC_REF(Bag, first), RC_REF_ARRAY(Bag, items, n),
                                      RC_REF(Bag, last), RC_FIELDS_END};
static rc_type Bag_type = {.name = "Bag", .size = sizeof(Bag), .fields = bag_fields,
                           .destroy = bag_destroy};

static rc_object *inplace;

/* What the reports say about the planted containers, as one string. */
static char *inplace_reports(rs_heap *h, rc_object *const *objs, size_t nobjs)
{
    size_t cap = 1 << 20, len = 0;
    char *all = malloc(cap);
    cr_assert_not_null(all);
    all[0] = 0;
    for (size_t k = 0; k <= nobjs; k++) {
        char cmd[64];
        if (k < nobjs)
            snprintf(cmd, sizeof cmd, "refs %s --limit 0", hex(objs[k]));
        else
            snprintf(cmd, sizeof cmd, "check --limit 0");
        int st;
        json_t *j = report(h, cmd, &st);
        char *t = json_dumps(j, JSON_SORT_KEYS);
        json_decref(j);
        size_t n = strlen(t);
        while (len + n + 2 > cap) {
            cap *= 2;
            all = realloc(all, cap);
            cr_assert_not_null(all);
        }
        memcpy(all + len, t, n + 1);
        len += n;
        all[len++] = '\n';
        all[len] = 0;
        free(t);
    }
    return all;
}

Test(engine, buffers_in_place_as_when_read)
{
    enum { NL = 10000, ND = 10000 };
    /* a list past the packed elements, an item of it pointing inside an object */
    rc_object *lst = rc_list_new();
    for (int i = 0; i < NL; i++) {
        rc_object *v = rc_int(7000000 + i);
        rc_list_append(lst, v);
        rc_decref(v);
    }
    rc_object **li = ((rc_list_object *)(void *)lst)->items;
    rc_object *saved = li[5000];
    li[5000] = (rc_object *)(void *)((char *)li[4999] + 8);
    /* a dict whose first value is past 2^12 and with a hole of more than 2^12 */
    rc_object *d = rc_dict_new();
    char key[32];
    for (int k = 0; k < ND; k++) {
        snprintf(key, sizeof key, "k%d", k);
        rc_object *v = rc_int(k);
        rc_dict_set(d, key, v);
        rc_decref(v);
    }
    for (int k = 0; k < ND; k++) {
        if (k == 4501 || (k >= 8700 && k < 8710))
            continue;
        snprintf(key, sizeof key, "k%d", k);
        rc_dict_del(d, key);
    }
    /* a buffer between plain references */
    Bag *bag = rc_new(Bag, &Bag_type);
    bag->first = rc_int(1);
    bag->last = rc_int(2);
    bag->n = 3;
    bag->items = calloc(3, sizeof *bag->items);
    cr_assert_not_null(bag->items);
    bag->items[0] = rc_int(10);
    bag->items[2] = rc_int(12);
    inplace = rc_list_new();
    rc_list_append(inplace, lst);
    rc_list_append(inplace, d);
    rc_list_append(inplace, RC_OBJ(bag));
    rc_root_add(&inplace, "inplace");
    rc_object *objs[] = {lst, d, RC_OBJ(bag), li[9999], rc_dict_get(d, "k4501"),
                         rc_dict_get(d, "k8700"), rc_dict_get(d, "k8709"), bag->items[2],
                         bag->last};

    views = false;
    rs_heap *h = load_heap();
    char *read = inplace_reports(h, objs, sizeof objs / sizeof *objs);
    rs_heap_free(h);
    views = true;
    h = load_heap();
    char *viewed = inplace_reports(h, objs, sizeof objs / sizeof *objs);
    char buf[128];
    cr_assert_str_eq(referrer_label(h, li[9999], buf, sizeof buf), "list[9999]");
    cr_assert_str_eq(referrer_label(h, rc_dict_get(d, "k4501"), buf, sizeof buf),
                     "dict['k4501']");
    cr_assert_str_eq(referrer_label(h, rc_dict_get(d, "k8700"), buf, sizeof buf),
                     "dict['k8700']");
    cr_assert_str_eq(referrer_label(h, rc_dict_get(d, "k8709"), buf, sizeof buf),
                     "dict['k8709']");
    cr_assert_str_eq(referrer_label(h, bag->items[2], buf, sizeof buf), "items[2]");
    cr_assert_str_eq(referrer_label(h, bag->last, buf, sizeof buf), "Bag.last");
    snprintf(buf, sizeof buf, "refs %s --limit 0", hex(bag));
    json_t *j = report(h, buf, NULL);
    json_t *re = json_object_get(j, "referents");
    cr_assert_eq(json_array_size(re), 4);
    const char *want[] = {"Bag.first", "items[0]", "items[2]", "Bag.last"};
    for (size_t k = 0; k < 4; k++)
        cr_assert_str_eq(jstr(json_array_get(re, k), "label"), want[k]);
    json_decref(j);
    int st;
    char *text = report_text(h, "check --limit 0", &st);
    cr_assert_eq(st, 1);
    cr_assert_not_null(strstr(text, "list[5000] points at"), "%s", text);
    rs_free(text);
    rs_heap_free(h);
    views = false;
    cr_assert_str_eq(viewed, read, "in place and read differ");
    free(read);
    free(viewed);

    li[5000] = saved;
    rc_root_remove(&inplace);
    rc_decref(inplace);
    rc_decref(lst);
    rc_decref(d);
    rc_decref(RC_OBJ(bag));
}

/* ---- diff ---------------------------------------------------------------------------------------- */

static rc_object *growing;

Test(engine, diff_growth)
{
    growing = rc_list_new();
    rc_root_add(&growing, "growing");
    rs_heap *h0 = load_heap();
    rs_snapshot *s = rs_heap_snapshot(h0);
    cr_assert_not_null(s);
    rs_heap_free(h0);
    for (int i = 0; i < 25; i++) {
        Node *n = node(&Node_type);
        rc_list_append(growing, RC_OBJ(n));
        rc_decref(n);
    }
    rs_heap *h1 = load_heap();
    int st;
    char *text = rs_heap_diff(h1, s, "--json", &st);
    cr_assert_eq(st, 0);
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j, "%s", text);
    rs_free(text);
    cr_assert_eq(jint(json_object_get(j, "born"), "objects"), 25);
    json_t *bt = json_object_get(j, "by_type");
    bool node_row = false;
    for (size_t k = 0; k < json_array_size(bt); k++)
        if (!strcmp(jstr(json_array_get(bt, k), "type"), "Node")) {
            node_row = true;
            cr_assert_eq(jint(json_array_get(bt, k), "objects_delta"), 25);
        }
    cr_assert(node_row);
    json_decref(j);
    text = rs_heap_diff(h1, s, "", &st);
    cr_assert(strstr(text, "diff: +25 objects"), "%s", text);
    rs_free(text);
    rs_snapshot_destroy(s);
    rs_heap_free(h1);
}

/* ---- corrupt input ---------------------------------------------------------------------------------- */

/* A copy of the registry, damaged; the rest of memory is the real one. */
static rc_registry fake;

static void run_everything(rs_heap *h)
{
    const char *cmds[] = {"summary", "types", "sites", "cycles --limit 0", "garbage", "roots",
                          "leaks", "retained", "check", "graph --cycle 1"};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        int st;
        char *t = rs_heap_report(h, cmds[k], &st);
        cr_assert_not_null(t);
        rs_free(t);
    }
}

Test(engine, corrupt_registry)
{
    build_mixed_heap();
    rs_error err = {{0}};
    rs_memory mem = {self_read, NULL};

    /* bad magic: no heap at all */
    fake = rc_debug_registry;
    fake.magic[0] = 'X';
    rs_heap *h = rs_heap_new(mem, (uint64_t)(uintptr_t)&fake, &err);
    cr_assert_eq(rs_heap_load(h, NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    rs_heap_free(h);
    /* wrong version */
    fake = rc_debug_registry;
    fake.version = 99;
    h = rs_heap_new(mem, (uint64_t)(uintptr_t)&fake, &err);
    cr_assert_eq(rs_heap_load(h, NULL, NULL, &err), -1);
    rs_heap_free(h);
    /* unreadable registry address */
    h = rs_heap_new(mem, 0x10, &err);
    cr_assert_eq(rs_heap_load(h, NULL, NULL, &err), -1);
    rs_heap_free(h);

    /* absurd counts, garbage pointers: warnings and a partial heap */
    fake = rc_debug_registry;
    fake.narenas = 1u << 30;
    fake.ntypes = 1u << 30;
    fake.types = (rc_type **)0x10;
    fake.nsites = 1u << 30;
    fake.nroots = 1u << 30;
    h = load_heap_at((uint64_t)(uintptr_t)&fake);
    cr_assert(rs_heap_warning_count(h) > 0);
    run_everything(h);
    rs_heap_free(h);

    /* a large list that loops without coming back to its head */
    static struct {
        rc_large hd;
        unsigned char body[64];
    } node1, node2;
    fake = rc_debug_registry;
    node1.hd = (rc_large){(rc_large *)&node2, NULL, 64, RC_KIND_PLAIN, RC_LARGE_MAGIC};
    node2.hd = (rc_large){(rc_large *)&node1, NULL, 64, RC_KIND_PLAIN, RC_LARGE_MAGIC};
    memset(node1.body, 0xAB, sizeof node1.body);
    fake.large.next = (rc_large *)&node1;
    h = load_heap_at((uint64_t)(uintptr_t)&fake);
    bool loop = false;
    for (size_t i = 0; i < rs_heap_warning_count(h); i++)
        if (strstr(rs_heap_warning(h, i), "large-object list"))
            loop = true;
    cr_assert(loop);
    run_everything(h);
    rs_heap_free(h);

    /* an arena full of garbage */
    unsigned char *arena = aligned_alloc(RC_ARENA_SIZE, RC_ARENA_SIZE);
    cr_assert_not_null(arena);
    srand(7);
    for (size_t i = 0; i < RC_ARENA_SIZE; i++)
        arena[i] = (unsigned char)rand();
    /* some pools that look valid, with random blocks */
    for (int p = 0; p < 64; p += 3) {
        rc_pool *pool = (rc_pool *)(arena + (size_t)p * RC_POOL_SIZE);
        pool->magic = RC_POOL_MAGIC;
        pool->kind = (uint8_t)(p % 2 ? RC_KIND_GC : RC_KIND_PLAIN);
        pool->szidx = (uint16_t)(p % 40);
        pool->nextoffset = (uint32_t)(p * 997 % 20000);
    }
    rc_arena tab[3];
    memset(tab, 0, sizeof tab);
    tab[0].address = (uintptr_t)arena;
    tab[0].ncarved = 64;
    tab[0].ntotalpools = 64;
    tab[1].address = (uintptr_t)arena; /* twice */
    tab[1].ncarved = 200;
    tab[2].address = 0x12345; /* misaligned */
    fake = rc_debug_registry;
    fake.arenas = tab;
    fake.narenas = 3;
    h = load_heap_at((uint64_t)(uintptr_t)&fake);
    cr_assert(rs_heap_warning_count(h) > 0);
    run_everything(h);
    rs_heap_free(h);
    free(arena);

    /* a core taken during a collection */
    fake = rc_debug_registry;
    fake.gc.collecting = 1;
    fake.gc.phase = RC_PHASE_CLEAR;
    fake.gc.collecting_generation = 2;
    h = load_heap_at((uint64_t)(uintptr_t)&fake);
    char *t = report_text(h, "summary", NULL);
    cr_assert(strstr(t, "core taken during a collection (phase clear)"), "%s", t);
    rs_free(t);
    json_t *j = report(h, "summary", NULL);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "collector"), "collecting")));
    json_decref(j);
    run_everything(h);
    rs_heap_free(h);
}

/* Random corruption of the real heap's bytes as seen by the engine: flip
 * bytes in the reader. Nothing may crash or hang. */
static uint64_t flip_seed;
static size_t flipping_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
    size_t n = self_read(ctx, addr, buf, len);
    if (addr == (uint64_t)(uintptr_t)&rc_debug_registry)
        return n; /* keep the registry itself readable */
    unsigned char *b = buf;
    for (size_t i = 0; i < n; i++) {
        flip_seed = flip_seed * 6364136223846793005ull + 1442695040888963407ull;
        if ((flip_seed >> 33) % 97 == 0)
            b[i] ^= (unsigned char)(flip_seed >> 41);
    }
    return n;
}

/* CORRUPT_ROUNDS=N runs N rounds instead of 5. */
Test(engine, corrupt_bytes, .timeout = 300)
{
    build_mixed_heap();
    int rounds = getenv("CORRUPT_ROUNDS") ? atoi(getenv("CORRUPT_ROUNDS")) : 5;
    for (int round = 0; round < rounds; round++) {
        flip_seed = (uint64_t)round * 7919 + 1;
        rs_error err = {{0}};
        rs_memory mem = {flipping_read, NULL};
        rs_heap *h = rs_heap_new(mem, (uint64_t)(uintptr_t)&rc_debug_registry, &err);
        if (rs_heap_load(h, NULL, NULL, &err) == 0)
            run_everything(h);
        rs_heap_free(h);
    }
}

/* ---- the oracle: cycles == what rc_gc_collect(2) frees ----------------------------------------------- */

static rc_object *oracle_roots[4];

static void parse_gc_lines(FILE *f, const char *what, addr_set *s)
{
    char line[256];
    rewind(f);
    size_t wl = strlen(what);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "gc: ", 4) || strncmp(line + 4, what, wl) || line[4 + wl] != ' ')
            continue;
        char *p = strstr(line, " 0x");
        cr_assert_not_null(p, "%s", line);
        set_add(s, strtoull(p + 1, NULL, 16));
    }
    set_sort(s);
}

static void oracle_round(unsigned seed, int nobj, bool with_legacy, bool with_freeze)
{
    srand(seed);
    rc_object **objs = calloc((size_t)nobj, sizeof *objs);
    for (int i = 0; i < nobj; i++) {
        int k = rand() % 20;
        rc_object *o;
        if (k < 8)
            o = RC_OBJ(node(&Node_type));
        else if (k < 9 && with_legacy)
            o = RC_OBJ(node(&Legacy_type));
        else if (k < 10)
            o = RC_OBJ(node(&Fin_type));
        else if (k < 13)
            o = RC_OBJ(rc_new(Leaf, &Leaf_type));
        else if (k < 15)
            o = rc_list_new();
        else if (k < 17)
            o = rc_dict_new();
        else if (k < 18 && i > 0)
            o = rc_tuple_new(2, objs[rand() % i], objs[rand() % i]);
        else if (k < 19 && i > 0)
            o = rc_weakref_new(objs[rand() % i], NULL);
        else
            o = rc_int(i);
        cr_assert_not_null(o);
        objs[i] = o;
        if (i % 64 == 63)
            rc_gc_collect(rand() % 2); /* spread objects over the generations */
        if (with_freeze && i == nobj / 3)
            rc_gc_freeze();
    }
    for (int e = 0; e < nobj * 3 / 2; e++) {
        rc_object *src = objs[rand() % nobj], *dst = objs[rand() % nobj];
        const rc_type *t = src->ob_type;
        if (t == &Node_type || t == &Legacy_type || t == &Fin_type)
            rc_set(rand() % 2 ? &((Node *)src)->next : &((Node *)src)->other, dst);
        else if (t == &rc_list_type)
            rc_list_append(src, dst);
        else if (t == &rc_dict_type) {
            char key[16];
            snprintf(key, sizeof key, "k%d", rand() % 8);
            rc_dict_set(src, key, dst);
        }
    }
    for (int r = 0; r < 4; r++) {
        rc_set(&oracle_roots[r], objs[rand() % nobj]);
        char name[16];
        snprintf(name, sizeof name, "root%d", r);
        rc_root_add(&oracle_roots[r], name);
    }
    for (int g = 0; g < 3; g++) {
        char key[16];
        snprintf(key, sizeof key, "g%d", g);
        rc_dict_set(rc_globals(), key, objs[rand() % nobj]);
    }
    for (int i = 0; i < nobj; i++)
        rc_decref(objs[i]);
    free(objs);
    ndestroyed = 0;

    rs_heap *h = load_heap();
    json_t *j = report(h, "cycles --limit 0", NULL);
    if (getenv("ORACLE_DEBUG") && atoi(getenv("ORACLE_DEBUG")) == (int)seed) {
        char *t = rs_heap_report(h, "cycles --limit 0", NULL);
        fprintf(stderr, "%s\n", t);
        rs_free(t);
    }
    addr_set coll = {0}, unc = {0}, cas = {0};
    cycles_sets(j, &coll, &unc, &cas);
    cr_assert_eq((long long)coll.n, jint(json_object_get(j, "collectable"), "objects"));
    cr_assert_eq((long long)unc.n, jint(json_object_get(j, "uncollectable"), "objects"));
    cr_assert_eq((long long)cas.n, jint(json_object_get(j, "cascade"), "objects"));
    /* The same with the reconciliation first: it takes over the in-degrees
     * the load counted, and the collector mirror counts its own then. */
    rs_heap *h2 = load_heap();
    json_decref(report(h2, "leaks", NULL));
    json_t *j2 = report(h2, "cycles --limit 0", NULL);
    cr_assert(json_equal(j, j2), "seed %u: `cycles` after `leaks` differs", seed);
    json_decref(j2);
    rs_heap_free(h2);
    json_decref(j);
    int st;
    j = report(h, "check", &st);
    cr_assert_eq(st, 0, "seed %u: check: %s", seed, json_dumps(json_object_get(j, "problems"), 0));
    json_decref(j);

    FILE *f = tmpfile();
    cr_assert_not_null(f);
    rc_gc_set_debug_stream(f);
    rc_gc_set_debug(RC_DEBUG_COLLECTABLE | RC_DEBUG_UNCOLLECTABLE);
    size_t freed = rc_gc_collect(2);
    rc_gc_set_debug(0);
    rc_gc_set_debug_stream(NULL);
    fflush(f);
    addr_set gc_coll = {0}, gc_unc = {0};
    parse_gc_lines(f, "collectable", &gc_coll);
    parse_gc_lines(f, "uncollectable", &gc_unc);
    fclose(f);

    cr_assert_eq(coll.n, gc_coll.n, "seed %u: engine says %zu collectable, collector %zu", seed,
                 coll.n, gc_coll.n);
    for (size_t k = 0; k < coll.n; k++)
        cr_assert_eq(coll.a[k], gc_coll.a[k], "seed %u: collectable sets differ", seed);
    cr_assert_eq(unc.n, gc_unc.n, "seed %u: uncollectable %zu vs %zu", seed, unc.n, gc_unc.n);
    for (size_t k = 0; k < unc.n; k++)
        cr_assert_eq(unc.a[k], gc_unc.a[k], "seed %u: uncollectable sets differ", seed);
    cr_assert_geq(freed, coll.n + unc.n);
    /* the test types destroyed = collectable + cascade, restricted to the test types */
    addr_set dead = {0};
    for (size_t k = 0; k < ndestroyed; k++)
        set_add(&dead, destroyed[k]);
    set_sort(&dead);
    for (size_t k = 0; k < dead.n && getenv("ORACLE_DEBUG"); k++) {
        if (set_has(&coll, dead.a[k]) || set_has(&cas, dead.a[k]))
            continue;
        char cmd[64]; /* the engine's view from before the collection */
        snprintf(cmd, sizeof cmd, "refs 0x%" PRIx64 " --limit 0", dead.a[k]);
        char *t = rs_heap_report(h, cmd, NULL);
        fprintf(stderr, "%s\n", t);
        rs_free(t);
    }
    rs_heap_free(h);
    for (size_t k = 0; k < dead.n; k++)
        cr_assert(set_has(&coll, dead.a[k]) || set_has(&cas, dead.a[k]),
                  "seed %u: 0x%" PRIx64 " was freed, but the engine did not predict it", seed,
                  dead.a[k]);
    /* ... and every test object predicted to die did */
    for (size_t k = 0; k < predicted_test_deaths.n; k++)
        cr_assert(set_has(&dead, predicted_test_deaths.a[k]),
                  "seed %u: 0x%" PRIx64 " should have been freed", seed,
                  predicted_test_deaths.a[k]);
    cr_assert_eq(predicted_test_deaths.n, dead.n);
    free(coll.a);
    free(unc.a);
    free(cas.a);
    free(gc_coll.a);
    free(gc_unc.a);
    free(dead.a);
    for (int r = 0; r < 4; r++) {
        rc_root_remove(&oracle_roots[r]);
        rc_set(&oracle_roots[r], NULL);
    }
    rc_dict_del(rc_globals(), "g0");
    rc_dict_del(rc_globals(), "g1");
    rc_dict_del(rc_globals(), "g2");
    rc_gc_collect(2);
}

/* ORACLE_SEEDS=N runs N seeds instead of 12 (a longer hunt for corner cases). */
Test(engine, oracle_random_graphs, .timeout = 300)
{
    unsigned nseeds = getenv("ORACLE_SEEDS") ? (unsigned)atoi(getenv("ORACLE_SEEDS")) : 12;
    for (unsigned seed = 1; seed <= nseeds; seed++)
        oracle_round(seed, 150 + (int)(seed * 37 % 400), seed % 3 != 0, seed % 4 == 1);
}

Test(engine, oracle_no_legacy)
{
    for (unsigned seed = 100; seed < 106; seed++)
        oracle_round(seed, 600, false, false);
}

/* ---- groups are the strongly connected components ------------------------------------------- */

/* The test's own SCCs of n Nodes (edges next and other), plain recursive
 * Tarjan (n is small): comp[i] numbers i's component; cyc[c]: it has more
 * than one member or a self loop. */
typedef struct scc_state {
    Node **nodes;
    int n, counter, sp, ncomp;
    int *index, *low, *stack, *comp;
    bool *on, *cyc;
} scc_state;

static int scc_find(const scc_state *S, const rc_object *o)
{
    for (int i = 0; i < S->n; i++)
        if (RC_OBJ(S->nodes[i]) == o)
            return i;
    return -1;
}

static void scc_visit(scc_state *S, int v)
{
    S->index[v] = S->low[v] = ++S->counter;
    S->stack[S->sp++] = v;
    S->on[v] = true;
    rc_object *out[2] = {S->nodes[v]->next, S->nodes[v]->other};
    for (int k = 0; k < 2; k++) {
        int w = out[k] ? scc_find(S, out[k]) : -1;
        if (w < 0)
            continue;
        if (!S->index[w]) {
            scc_visit(S, w);
            if (S->low[w] < S->low[v])
                S->low[v] = S->low[w];
        } else if (S->on[w] && S->index[w] < S->low[v]) {
            S->low[v] = S->index[w];
        }
    }
    if (S->low[v] != S->index[v])
        return;
    int c = S->ncomp++, size = 0, w;
    do {
        w = S->stack[--S->sp];
        S->on[w] = false;
        S->comp[w] = c;
        size++;
    } while (w != v);
    S->cyc[c] = size > 1 || RC_OBJ(S->nodes[v]) == S->nodes[v]->next ||
                RC_OBJ(S->nodes[v]) == S->nodes[v]->other;
}

/* Random garbage of Nodes, few edges to many (long chains of components,
 * components nested in the DFS, edges into finished ones, self loops):
 * every group `cycles` lists with more than one member is exactly one
 * component, every component on a cycle is a group's members, and what
 * hangs off a group is on no cycle. */
Test(engine, groups_are_components)
{
    for (unsigned seed = 1; seed <= 30; seed++) {
        srand(seed * 7919u);
        int n = 20 + rand() % 300;
        Node **nodes = calloc((size_t)n, sizeof *nodes);
        for (int i = 0; i < n; i++)
            nodes[i] = node(&Node_type);
        int spread = 2 + rand() % 40; /* edges mostly go to nearby nodes: long chains */
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < 2; k++) {
                if (rand() % 3 == 0)
                    continue;
                int d = rand() % 8 == 0 ? rand() % n : (i + rand() % (2 * spread + 1) - spread + n) % n;
                rc_set(k ? &nodes[i]->other : &nodes[i]->next, RC_OBJ(nodes[d]));
            }
        }
        scc_state S = {.nodes = nodes, .n = n};
        S.index = calloc((size_t)n, sizeof(int));
        S.low = calloc((size_t)n, sizeof(int));
        S.stack = calloc((size_t)n, sizeof(int));
        S.comp = calloc((size_t)n, sizeof(int));
        S.on = calloc((size_t)n, sizeof(bool));
        S.cyc = calloc((size_t)n, sizeof(bool));
        for (int i = 0; i < n; i++)
            if (!S.index[i])
                scc_visit(&S, i);
        int *seen = calloc((size_t)n, sizeof(int)); /* per component: group listing it + 1 */
        int cycles = 0;
        for (int c = 0; c < S.ncomp; c++)
            cycles += S.cyc[c];

        for (int i = 0; i < n; i++) /* garbage now: only the Nodes hold the Nodes */
            rc_decref(RC_OBJ(nodes[i]));
        rs_heap *h = load_heap();
        json_t *j = report(h, "cycles --limit 0", NULL);
        json_t *cyc = json_object_get(j, "cycles");
        int listed = 0;
        for (size_t g = 0; g < json_array_size(cyc); g++) {
            json_t *y = json_array_get(cyc, g);
            json_t *m = json_object_get(y, "members");
            cr_assert_eq(jint(y, "members_omitted"), 0);
            int c0 = -1;
            for (size_t k = 0; k < json_array_size(m); k++) {
                int i = scc_find(&S, (rc_object *)(uintptr_t)jaddr(json_array_get(m, k)));
                cr_assert_geq(i, 0, "seed %u: a member is no test Node", seed);
                if (c0 < 0)
                    c0 = S.comp[i];
                cr_assert_eq(S.comp[i], c0, "seed %u: group %zu mixes components", seed, g);
            }
            cr_assert_geq(c0, 0);
            cr_assert_eq(json_is_true(json_object_get(y, "is_cycle")), S.cyc[c0],
                         "seed %u: group %zu: is_cycle", seed, g);
            if (S.cyc[c0]) {
                int size = 0;
                for (int i = 0; i < n; i++)
                    size += S.comp[i] == c0;
                cr_assert_eq((int)json_array_size(m), size,
                             "seed %u: group %zu has %zu members, its component %d", seed, g,
                             json_array_size(m), size);
                cr_assert_eq(seen[c0], 0, "seed %u: a component in two groups", seed);
                seen[c0] = (int)g + 1;
                listed++;
            }
            json_t *hg = json_object_get(y, "hanging_off");
            for (size_t k = 0; k < json_array_size(hg); k++) {
                int i = scc_find(&S, (rc_object *)(uintptr_t)jaddr(json_array_get(hg, k)));
                cr_assert_geq(i, 0);
                cr_assert(!S.cyc[S.comp[i]], "seed %u: a Node on a cycle hangs off a group", seed);
            }
        }
        cr_assert_eq(listed, cycles, "seed %u: %d components on cycles, %d listed", seed, cycles,
                     listed);
        cr_assert_eq(jint(j, "cycles_total"), cycles, "seed %u", seed);
        json_decref(j);
        rs_heap_free(h);
        rc_gc_collect(2);
        free(seen);
        free(S.index);
        free(S.low);
        free(S.stack);
        free(S.comp);
        free(S.on);
        free(S.cyc);
        free(nodes);
    }
}

/* ---- one thread or two: the same answers -------------------------------------------------- */

/* Every answer the threaded parts feed (the load's edges, the collector
 * mirror, the reconciliation, the dominators), as text: on one thread or
 * two (REFSCOPE_THREADS), with rs_heap_analyze or report by report. */
static char *answers(const char *threads, bool analyze, const void *probe)
{
    setenv("REFSCOPE_THREADS", threads, 1);
    rs_heap *h = load_heap();
    if (analyze)
        rs_heap_analyze(h, RS_ANALYSIS_COLLECTOR | RS_ANALYSIS_DOMINATORS);
    char refs[64];
    snprintf(refs, sizeof refs, "refs %p --limit 0", probe);
    const char *cmds[] = {"cycles --json --limit 0", "leaks --json --limit 0",
                          "retained --json --limit 50", refs, "check --json --limit 0"};
    size_t len = 0;
    char *all = NULL;
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        int st;
        char *t = report_text(h, cmds[k], &st);
        cr_assert(st == 0 || st == 1, "'%s': status %d: %.300s", cmds[k], st, t);
        size_t n = strlen(t);
        all = realloc(all, len + n + 1);
        memcpy(all + len, t, n + 1);
        len += n;
        rs_free(t);
    }
    rs_heap_free(h);
    unsetenv("REFSCOPE_THREADS");
    return all;
}

static rc_object *par_chain;

/* A heap over the engine's thresholds for two threads (100 000 objects,
 * 500 000 edges): a chain held by a root, every link also referring to a
 * shared int; pairs of garbage, some with legacy finalizers (uncollectable)
 * and something hanging off them; a leaked reference. Then the same answers
 * every way, also with a reference to no object planted in the first half
 * of the edges (the second thread's work is dropped) and in the second. */
Test(engine, two_threads_same_answers, .timeout = 120)
{
    enum { CHAIN = 260000, PAIRS = 3000 };
    rc_object *shared = rc_int(424242);
    Node **links = malloc(CHAIN * sizeof *links);
    Node *prev = NULL;
    for (int i = 0; i < CHAIN; i++) {
        Node *n = node(&Node_type);
        if (prev)
            link_next(n, prev);
        rc_set(&n->other, shared);
        links[i] = n;
        if (prev)
            rc_decref(prev);
        prev = n;
    }
    par_chain = RC_OBJ(prev);
    rc_root_add(&par_chain, "chain");
    for (int p = 0; p < PAIRS; p++) {
        Node *a = node(p % 7 ? &Node_type : &Legacy_type), *b = node(&Node_type);
        link_next(a, b);
        link_next(b, a);
        if (p % 5 == 0) {
            Node *hang = node(&Node_type);
            rc_set(&b->other, RC_OBJ(hang));
            rc_decref(hang);
        }
        rc_decref(a);
        rc_decref(b);
    }
    rc_incref(links[CHAIN / 3]); /* a missing decref */
    rc_decref(shared);

    char *base = answers("1", false, links[CHAIN / 2]);
    cr_assert(strstr(base, "\"cycles_total\": 3000"), "%.400s", base);
    char *one = answers("1", true, links[CHAIN / 2]);
    char *two = answers("2", true, links[CHAIN / 2]);
    char *two_plain = answers("2", false, links[CHAIN / 2]);
    cr_assert_str_eq(one, base);
    cr_assert_str_eq(two, base);
    cr_assert_str_eq(two_plain, base);
    free(base);
    free(one);
    free(two);
    free(two_plain);

    /* bad references at the lowest and the highest link: one in each half */
    Node *lo = links[0], *hi = links[0];
    for (int i = 1; i < CHAIN; i++) {
        if ((uintptr_t)links[i] < (uintptr_t)lo)
            lo = links[i];
        if ((uintptr_t)links[i] > (uintptr_t)hi)
            hi = links[i];
    }
    Node *bad[] = {lo, hi};
    for (size_t k = 0; k < 2; k++) {
        rc_object *keep = bad[k]->other;
        bad[k]->other = (rc_object *)(uintptr_t)0x10;
        one = answers("1", false, links[CHAIN / 2]);
        two = answers("2", true, links[CHAIN / 2]);
        cr_assert(strstr(one, "Node.other points at 0x10,"), "no bad reference in check");
        cr_assert_str_eq(two, one, "bad reference in half %zu", k + 1);
        free(one);
        free(two);
        bad[k]->other = keep;
    }
    rc_decref(links[CHAIN / 3]);
    free(links);
    rc_root_remove(&par_chain);
    rc_set(&par_chain, NULL);
}
