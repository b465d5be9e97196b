/*
 * The collector, model-checked.
 *
 * Seeded random mutations of a random object graph (user nodes with three
 * references and every kind of finalization, lists, dicts, weakrefs
 * with callback closures), run against an independent model of what
 * CPython 3.11 does. Every runtime call is one *window*: the model predicts
 * its whole outcome, then the runtime's outcome is compared with it, object
 * by object:
 *
 *   - which objects were freed (the type's destroy hook for nodes; the
 *     poisoned head, RC_REFCNT_FREED, for every kind);
 *   - which finalizers, legacy finalizers and weakref callbacks ran, each at
 *     most once per object ever;
 *   - afterwards: every live object's refcount, references (fields, list
 *     items, dict values, weakref target and callback, closure cells),
 *     generation, and the collector's per-generation object counts;
 *   - for every collection (explicit or automatic, any generation): what
 *     rc_gc_collect() / the "stop" callback report as collected and
 *     uncollectable, and the garbage list.
 *
 * How the model predicts, without the collector's algorithm:
 *
 *   Refcount deaths: the objects that die after a reference is dropped are
 *   the least fixpoint of "every holder is dead" (a resurrecting finalizer
 *   stops its object; a dying target drops its weakrefs' callbacks). That
 *   set does not depend on the order the runtime frees them in, so the
 *   model can predict it exactly. When a weakref dies in the same cascade
 *   as its target, causality decides whether it calls back (what-if
 *   cascades with one of them pinned alive); only when neither death needs
 *   the other is it the runtime's order, and both outcomes are allowed.
 *
 *   Collections: the collected generations are "young"; garbage U = young
 *   objects not reachable (graph search) from handles or from any object
 *   outside young. Then CPython's order (Modules/gcmodule.c): L = U objects
 *   reachable from a legacy finalizer (uncollectable); weakrefs to U\L are
 *   cleared and the callbacks of those not themselves in U\L run (their
 *   closures are dropped: a cascade); PEP 442 finalizers of U\L run once;
 *   what a resurrector reaches survives; the rest of U\L is cleared (a
 *   cascade that may free objects outside U\L, L members included; so may
 *   the callback of a weakref inside L, whose closure is in L). collected
 *   = |cleared| + weakrefs freed by their own callback; uncollectable = L
 *   members still in the finalizers list at the end. The one order-
 *   dependent number (which weakrefs die "by their own callback" when
 *   several callbacks free things) is checked as a tight range.
 *
 *   Generations are predicted too (new objects in 0, survivors one up,
 *   resurrected-by-refcount in 0, freeze/unfreeze) and compared with the
 *   runtime's header bits. The model reads nothing from the runtime to
 *   decide, except which generation a collection takes (the gc callback),
 *   and the order of the resurrection and garbage lists once they have
 *   been checked as multisets.
 *
 * Chaos steps (half the steps of a quarter of the seeds with debug checks
 * on): finalizers, legacy finalizers and weakref callbacks change
 * references of any live node (even garbage a collection is working on),
 * allocate (an automatic collection may start inside a deallocation) and
 * call rc_gc_collect() themselves. Their outcome depends on the runtime's
 * order, so after each runtime call of such a step the model reads the
 * graph back (resync) and checks it: no reference to a freed object, no
 * object the test holds freed, every refcount equal to the references
 * found, PEP 442 finalizers, destroys and callbacks at most once (a legacy
 * finalizer runs again after it resurrected its object, as tp_del does).
 * Exact prediction resumes with the next step. A quarter of the seeds also
 * run with allocation tracing on.
 *
 * Smoke size runs in the suite (2 x 100 seeds x 300 operations);
 * RC_MODELCHECK_SEEDS (per test), RC_MODELCHECK_STEPS, RC_MODELCHECK_SEED0
 * (the first seed) and RC_MODELCHECK_VERBOSE=1 (print every operation) make
 * it a long run or a replay. A failure prints the seed, the step, the last
 * operations and the command line that replays it.
 */
#include <refscope/rc.h>

#include "builtins.h"
#include "internal.h"

#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NFIELDS 3
#define NKEYS 4
#define MAXCAPS 2
#define MAXLIVE 140   /* above this many live objects, operations lean to dropping */
#define CHAIN_LEN 64  /* longer than the trashcan depth (50) */

/* ---- the objects under test ------------------------------------------------ */

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *f[NFIELDS];
    int id; /* the model's id */
} Node;

static const rc_field node_fields[] = {
    RC_REF(Node, f[0]),
    RC_REF(Node, f[1]),
    RC_REF(Node, f[2]),
    RC_FIELDS_END,
};

/* Node kinds: no finalizer; a PEP 442 finalizer; one that resurrects its
 * object (stores it in the global `res_list`, once: a finalizer runs once);
 * a legacy (tp_del-style) finalizer; both. */
enum { N_PLAIN, N_FIN, N_RES, N_LEGACY, N_BOTH, N_KINDS };

static void node_finalize(rc_object *self);
static void node_resurrect(rc_object *self);
static void node_legacy_del(rc_object *self);
static void node_destroy(rc_object *self);
static void chaos_act(void);

static rc_type node_types[N_KINDS] = {
    [N_PLAIN] = {.name = "Node", .size = sizeof(Node), .fields = node_fields,
                 .destroy = node_destroy},
    [N_FIN] = {.name = "FinNode", .size = sizeof(Node), .fields = node_fields,
               .finalize = node_finalize, .destroy = node_destroy},
    [N_RES] = {.name = "Resurrector", .size = sizeof(Node), .fields = node_fields,
               .finalize = node_resurrect, .destroy = node_destroy},
    [N_LEGACY] = {.name = "LegacyNode", .size = sizeof(Node), .fields = node_fields,
                  .legacy_del = node_legacy_del, .destroy = node_destroy},
    [N_BOTH] = {.name = "BothNode", .size = sizeof(Node), .fields = node_fields,
                .finalize = node_finalize, .legacy_del = node_legacy_del,
                .destroy = node_destroy},
};

static const char *const nk_names[N_KINDS] = {"Node", "FinNode", "Resurrector", "LegacyNode",
                                              "BothNode"};
static bool nk_has_finalize(int nk) { return nk == N_FIN || nk == N_RES || nk == N_BOTH; }
static bool nk_is_legacy(int nk) { return nk == N_LEGACY || nk == N_BOTH; }

static const char *const dict_keys[NKEYS] = {"k0", "k1", "k2", "k3"};

/* ---- the model --------------------------------------------------------------- */

/* K_SYSLIST: the resurrection list and the runtime's garbage and finalizers
 * lists; K_SYSDICT: the globals dict. They are roots (handles 1). */
enum { K_NODE, K_LIST, K_DICT, K_WEAKREF, K_CLOSURE, K_SYSLIST, K_SYSDICT };
static const char *const kind_names[] = {"node", "list", "dict", "weakref", "closure",
                                         "syslist", "sysdict"};
#define VALUE_KINDS ((1u << K_NODE) | (1u << K_LIST) | (1u << K_DICT) | (1u << K_WEAKREF))

typedef struct {
    int kind, nk;
    rc_object *ptr;
    bool alive;
    bool finalized; /* its PEP 442 finalizer has run */
    int handles;    /* strong references held outside the graph (the test, the runtime) */
    int gen;        /* 0..2, 3 = frozen */
    int f[NFIELDS];            /* node fields: ids, -1 = NULL */
    int *items, nitems, capitems; /* list items */
    int dval[NKEYS];           /* dict values */
    int wr_target;             /* weakref: target id */
    bool wr_linked;            /* ... still pointing at it (not cleared) */
    int wr_cb;                 /* ... callback closure id, -1: none or consumed */
    int caps[MAXCAPS], ncaps;  /* closure cells */
    bool cleared;              /* the collector cleared it and it lives on (a chaos hook
                                  took a reference): a dict keeps its keys, a list its
                                  length, with NULL values */
    int n_fin, n_del, n_destroy, n_fired; /* observed, over the object's life */
    int del_budget; /* legacy finalizer calls allowed: 1, plus 1 each time it
                       resurrected its object (tp_del is not once-only, unlike
                       PEP 442's tp_finalize) */
} mobj;

static mobj *obj;
static int nobj, capobj;
static int res_id, garbage_id, finalizers_id, globals_id;
static rc_object *res_list;

/* Per-object scratch arrays (sized capobj). */
#define SCRATCH(X)                                                                        \
    X(s_rc) X(s_dead) X(s_res) X(s_fin) X(s_consumed) X(s_cand)                           \
    X(w_rc) X(w_dead) X(w_res) X(w_fin) X(w_consumed) X(w_cand)                           \
    X(s_mark) X(s_inY) X(s_inU) X(s_inL) X(s_inF) X(s_left) X(wl_head) X(wl_next) X(work) \
    X(m_rc) X(alive0) X(exp_dead) X(exp_fin) X(exp_del) X(exp_fire)                       \
    X(ev_fin) X(ev_del) X(ev_destroy) X(ev_fire)
#define DECLARE_SCRATCH(a) static int *a;
SCRATCH(DECLARE_SCRATCH)

enum { FIRE_NO = 0, FIRE_YES = 1, FIRE_MAYBE = 2 };

typedef struct {
    int *v;
    int n, cap;
} ibuf;
static void ipush(ibuf *b, int x)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = realloc(b->v, (size_t)b->cap * sizeof *b->v);
    }
    b->v[b->n++] = x;
}
static ibuf eb, tmpb; /* edges() output; scratch */

/* ---- run state, statistics, failure reports ------------------------------------ */

static uint64_t rng_state;
static const char *cur_test;
static uint64_t cur_seed;
static int cur_step;
static long substeps;
static bool verbose;
static bool active; /* hooks record (off around rc_shutdown) */
static bool in_explicit_collect;
/* Chaos steps: finalizers, legacy finalizers and callbacks mutate the
 * graph, allocate and collect (chaos_seed: this seed has some). */
static bool chaos, chaos_seed;
static int chaos_depth;
static size_t last_collected, last_uncollectable;
static size_t pred_lo, pred_hi, pred_n;
static bool pred_pending;
static bool pred_frozen; /* something was frozen when the last collection began */

static struct {
    long steps, substeps, created, freed, finalized, resurrected, legacy_dels, fired;
    long collections[3], auto_collections, collected, uncollectable, ranges, self_freed;
    long fire_causal[3]; /* weakref and target died together: no / yes / either */
    long chaos_steps, chaos_actions, chaos_cleared_alive;
} stats;

#define TRACE_LINES 40
static char trace_ring[TRACE_LINES][160];
static unsigned trace_n;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trace_ring[trace_n % TRACE_LINES], sizeof trace_ring[0], fmt, ap);
    va_end(ap);
    if (verbose)
        fprintf(stderr, "[%" PRIu64 ":%d] %s\n", cur_seed, cur_step,
                trace_ring[trace_n % TRACE_LINES]);
    trace_n++;
}

static __attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "modelcheck: seed %" PRIu64 ", step %d, sub-step %ld: %s\n", cur_seed,
            cur_step, substeps, msg);
    fprintf(stderr, "modelcheck: last operations:\n");
    unsigned first = trace_n > TRACE_LINES ? trace_n - TRACE_LINES : 0;
    for (unsigned i = first; i < trace_n; i++)
        fprintf(stderr, "    %s\n", trace_ring[i % TRACE_LINES]);
    fprintf(stderr,
            "modelcheck: replay with RC_MODELCHECK_SEED0=%" PRIu64
            " RC_MODELCHECK_SEEDS=1 RC_MODELCHECK_STEPS=%d RC_MODELCHECK_VERBOSE=1"
            " test_modelcheck --filter 'modelcheck/%s'\n",
            cur_seed, cur_step + 1, cur_test);
    cr_assert_fail("seed %" PRIu64 " step %d: %s", cur_seed, cur_step, msg);
    abort();
}

/* The runtime aborts on misuse it detects (debug checks), or crashes: say
 * where. */
static void on_abort(int sig)
{
    fprintf(stderr, "modelcheck: %s at seed %" PRIu64 ", step %d, sub-step %ld%s\n",
            strsignal(sig), cur_seed, cur_step, substeps, chaos ? " (a chaos step)" : "");
    unsigned first = trace_n > TRACE_LINES ? trace_n - TRACE_LINES : 0;
    for (unsigned i = first; i < trace_n; i++)
        fprintf(stderr, "    %s\n", trace_ring[i % TRACE_LINES]);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const char *desc(int x)
{
    static char bufs[4][96];
    static unsigned k;
    char *b = bufs[k++ % 4];
    if (x < 0)
        return "NULL";
    const mobj *o = &obj[x];
    snprintf(b, sizeof bufs[0], "#%d %s (gen %d, %d handles%s%s)", x,
             o->kind == K_NODE ? nk_names[o->nk] : kind_names[o->kind], o->gen, o->handles,
             o->finalized ? ", finalized" : "", o->alive ? "" : ", dead");
    return b;
}

/* ---- random numbers ---------------------------------------------------------- */

static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static int rn(int n) { return (int)(rnd() % (uint64_t)n); }
static bool chance(int percent) { return rn(100) < percent; }

/* ---- model bookkeeping ----------------------------------------------------------- */

static void grow_model(void)
{
    if (nobj < capobj)
        return;
    capobj = capobj ? capobj * 2 : 256;
    obj = realloc(obj, (size_t)capobj * sizeof *obj);
#define GROW_SCRATCH(a) a = realloc(a, (size_t)capobj * sizeof(int));
    SCRATCH(GROW_SCRATCH)
}

static int model_new(int kind, rc_object *ptr)
{
    grow_model();
    int x = nobj++;
    mobj *o = &obj[x];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->ptr = ptr;
    o->alive = true;
    o->handles = 1;
    for (int i = 0; i < NFIELDS; i++)
        o->f[i] = -1;
    for (int k = 0; k < NKEYS; k++)
        o->dval[k] = -1;
    o->wr_target = o->wr_cb = -1;
    o->del_budget = 1;
    /* not alive when the current window began: no events expected */
    alive0[x] = exp_dead[x] = exp_fin[x] = exp_del[x] = exp_fire[x] = 0;
    ev_fin[x] = ev_del[x] = ev_destroy[x] = ev_fire[x] = 0;
    if (kind != K_SYSLIST && kind != K_SYSDICT)
        stats.created++;
    return x;
}

static void model_reset(void)
{
    for (int x = 0; x < nobj; x++)
        free(obj[x].items);
    nobj = 0;
    res_id = garbage_id = finalizers_id = globals_id = -1;
    res_list = NULL;
}

static void list_push(mobj *o, int y)
{
    if (o->nitems == o->capitems) {
        o->capitems = o->capitems ? o->capitems * 2 : 8;
        o->items = realloc(o->items, (size_t)o->capitems * sizeof *o->items);
    }
    o->items[o->nitems++] = y;
}

/* The strong references x holds (ids). A weakref's callback closure counts
 * unless `consumed` says it was dropped. */
static void edges(int x, ibuf *b, const int *consumed)
{
    const mobj *o = &obj[x];
    b->n = 0;
    switch (o->kind) {
    case K_NODE:
        for (int i = 0; i < NFIELDS; i++)
            if (o->f[i] >= 0)
                ipush(b, o->f[i]);
        break;
    case K_LIST:
    case K_SYSLIST:
        for (int i = 0; i < o->nitems; i++)
            if (o->items[i] >= 0) /* -1: cleared by the collector */
                ipush(b, o->items[i]);
        break;
    case K_DICT:
        for (int k = 0; k < NKEYS; k++)
            if (o->dval[k] >= 0)
                ipush(b, o->dval[k]);
        break;
    case K_WEAKREF:
        if (o->wr_cb >= 0 && !(consumed && consumed[x]))
            ipush(b, o->wr_cb);
        break;
    case K_CLOSURE:
        for (int i = 0; i < o->ncaps; i++)
            if (o->caps[i] >= 0)
                ipush(b, o->caps[i]);
        break;
    default:
        break;
    }
}

/* Model refcounts: handles + references from live objects. */
static void compute_rc(int *rc, const int *consumed)
{
    for (int x = 0; x < nobj; x++)
        rc[x] = obj[x].alive ? obj[x].handles : 0;
    for (int x = 0; x < nobj; x++) {
        if (!obj[x].alive)
            continue;
        edges(x, &eb, consumed);
        for (int i = 0; i < eb.n; i++) {
            int y = eb.v[i];
            if (!obj[y].alive)
                fail("model inconsistency: %s refers to %s", desc(x), desc(y));
            rc[y]++;
        }
    }
}

static void resurrect_into_list(int x)
{
    list_push(&obj[res_id], x);
    obj[x].gen = 0; /* re-tracked by the dealloc path */
}

/* The outcome of a cascade: per object, its model refcount as the cascade
 * goes, dead, resurrected, finalized; per weakref, whether its callback
 * was consumed and whether it was a candidate (linked, with a callback). */
typedef struct {
    int *rc, *dead, *res, *fin, *consumed, *cand;
} cstate;

/*
 * Refcount deaths from the model's current state: every live object whose
 * model refcount is 0 dies, as CPython's subtype_dealloc does it: the PEP
 * 442 finalizer first (a resurrector survives), then its weakrefs are
 * cleared and the live ones call back (their closures are dropped), then
 * the legacy finalizer, then its references go. Computed as a least
 * fixpoint, which is what any order of deallocation arrives at.
 *
 * What-ifs: `predrop` >= 0 counts that weakref's callback closure as
 * already dropped; `pin` >= 0 keeps that object alive.
 */
static void run_cascade(const cstate *c, int predrop, int pin)
{
    int n = nobj;
    for (int x = 0; x < n; x++) {
        c->dead[x] = c->res[x] = c->fin[x] = c->consumed[x] = c->cand[x] = 0;
        wl_head[x] = -1;
    }
    if (predrop >= 0)
        c->consumed[predrop] = 1;
    compute_rc(c->rc, c->consumed);
    if (pin >= 0)
        c->rc[pin]++;
    for (int w = 0; w < n; w++) {
        mobj *o = &obj[w];
        if (!o->alive || o->kind != K_WEAKREF || !o->wr_linked)
            continue;
        wl_next[w] = wl_head[o->wr_target];
        wl_head[o->wr_target] = w;
        c->cand[w] = o->wr_cb >= 0 && !c->consumed[w];
    }
    int nw = 0;
    for (int x = 0; x < n; x++)
        if (obj[x].alive && c->rc[x] == 0)
            work[nw++] = x;
    while (nw > 0) {
        int x = work[--nw];
        mobj *o = &obj[x];
        if (o->kind == K_NODE && nk_has_finalize(o->nk) && !o->finalized && !c->fin[x]) {
            c->fin[x] = 1;
            if (o->nk == N_RES) {
                c->res[x] = 1;
                c->rc[x] = 1; /* the resurrection list holds it now */
                continue;
            }
        }
        c->dead[x] = 1;
        for (int w = wl_head[x]; w >= 0; w = wl_next[w]) {
            if (!c->dead[w] && c->cand[w] && !c->consumed[w]) {
                c->consumed[w] = 1; /* it calls back: its closure goes */
                if (--c->rc[obj[w].wr_cb] == 0)
                    work[nw++] = obj[w].wr_cb;
            }
        }
        edges(x, &eb, c->consumed);
        for (int i = 0; i < eb.n; i++) {
            int y = eb.v[i];
            if (--c->rc[y] == 0)
                work[nw++] = y;
            else if (c->rc[y] < 0)
                fail("model inconsistency: negative refcount for %s", desc(y));
        }
    }
}

#define MAIN_STATE ((cstate){s_rc, s_dead, s_res, s_fin, s_consumed, s_cand})
#define WHATIF_STATE ((cstate){w_rc, w_dead, w_res, w_fin, w_consumed, w_cand})

/* Does `x` die in the cascade from the current state if only `predrop`'s
 * callback closure is dropped / if `pin` stays alive? */
static bool dies_if(int x, int predrop, int pin)
{
    cstate w = WHATIF_STATE;
    run_cascade(&w, predrop, pin);
    return w.dead[x] != 0;
}

/* A weakref w and its target t both die in one cascade: does w call back?
 * Only if w is still alive (refcount > 0) when t dies. If t's death needs
 * w's (t is released by w's own deallocation), w is already at refcount 0:
 * no. If w's death needs t's, w is alive when t dies: yes. Otherwise the
 * order is the runtime's (which container releases first): either. */
static int fire_when_both_die(int w, int t)
{
    if (!dies_if(t, -1, w))
        return FIRE_NO;
    if (!dies_if(w, -1, t))
        return FIRE_YES;
    return FIRE_MAYBE;
}

/* The cascade, applied: the model becomes its outcome and the current
 * window's expectations grow. s_dead / s_res describe it afterwards. */
static void cascade(void)
{
    cstate c = MAIN_STATE;
    int n = nobj;
    run_cascade(&c, -1, -1);
    /* classify the callbacks before the model changes (the what-ifs start
     * from the same state) */
    tmpb.n = 0;
    for (int w = 0; w < n; w++) {
        mobj *o = &obj[w];
        if (!o->alive || o->kind != K_WEAKREF || !o->wr_linked || !c.dead[o->wr_target] ||
            !c.cand[w] || exp_fire[w])
            continue;
        ipush(&tmpb, w);
    }
    for (int i = 0; i < tmpb.n; i++) {
        int w = tmpb.v[i];
        exp_fire[w] = c.dead[w] ? fire_when_both_die(w, obj[w].wr_target) : FIRE_YES;
        if (c.dead[w])
            stats.fire_causal[exp_fire[w]]++;
    }
    for (int x = 0; x < n; x++) {
        mobj *o = &obj[x];
        if (c.fin[x]) {
            exp_fin[x] = 1;
            o->finalized = true;
        }
        if (c.res[x])
            resurrect_into_list(x);
    }
    for (int w = 0; w < n; w++) {
        mobj *o = &obj[w];
        if (!o->alive || o->kind != K_WEAKREF || !o->wr_linked || !c.dead[o->wr_target])
            continue;
        o->wr_linked = false;
        if (c.cand[w])
            o->wr_cb = -1;
    }
    for (int x = 0; x < n; x++) {
        if (!c.dead[x])
            continue;
        obj[x].alive = false;
        exp_dead[x] = 1;
        if (obj[x].kind == K_NODE && nk_is_legacy(obj[x].nk))
            exp_del[x] = 1;
    }
}

/*
 * A collection of `g` (CPython 3.11's collect(), see the header): updates
 * the model to the outcome and sets pred_lo..pred_hi (collected) and pred_n
 * (uncollectable).
 */
static void predict_collection(int g)
{
    int n = nobj, old = g < 2 ? g + 1 : 2;
    int nw = 0;

    /* 1. young and its garbage U: not reachable from handles or from any
     *    object outside young */
    pred_frozen = false;
    for (int x = 0; x < n; x++) {
        pred_frozen |= obj[x].alive && obj[x].gen == 3;
        s_inY[x] = obj[x].alive && obj[x].gen <= g;
        s_mark[x] = obj[x].alive && (obj[x].handles > 0 || !s_inY[x]);
        if (s_mark[x])
            work[nw++] = x;
    }
    while (nw > 0) {
        edges(work[--nw], &eb, NULL);
        for (int i = 0; i < eb.n; i++)
            if (!s_mark[eb.v[i]])
                s_mark[eb.v[i]] = 1, work[nw++] = eb.v[i];
    }
    for (int x = 0; x < n; x++)
        s_inU[x] = s_inY[x] && !s_mark[x];

    /* 2. L: garbage reachable from a legacy finalizer is uncollectable */
    for (int x = 0; x < n; x++) {
        s_inL[x] = s_inU[x] && obj[x].kind == K_NODE && nk_is_legacy(obj[x].nk);
        if (s_inL[x])
            work[nw++] = x;
    }
    while (nw > 0) {
        edges(work[--nw], &eb, NULL);
        for (int i = 0; i < eb.n; i++)
            if (s_inU[eb.v[i]] && !s_inL[eb.v[i]])
                s_inL[eb.v[i]] = 1, work[nw++] = eb.v[i];
    }
#define TRASH(x) (s_inU[x] && !s_inL[x])

    /* 3. survivors of young move one generation up */
    for (int x = 0; x < n; x++)
        if (s_inY[x] && !s_inU[x])
            obj[x].gen = old;

    /* 4. weakrefs to trash and weakrefs in trash are cleared; callbacks run
     *    for the cleared ones that are not trash themselves */
    tmpb.n = 0;
    for (int w = 0; w < n; w++) {
        mobj *o = &obj[w];
        s_inF[w] = 0;
        if (!o->alive || o->kind != K_WEAKREF)
            continue;
        if (TRASH(w)) {
            o->wr_linked = false;
            continue;
        }
        if (o->wr_linked && TRASH(o->wr_target)) {
            o->wr_linked = false;
            if (o->wr_cb >= 0) {
                s_inF[w] = 1;
                ipush(&tmpb, w);
            }
        }
    }
    /* which of them would be freed by their own callback alone (those are
     * counted whatever the order) */
    size_t lo = 0, hi = 0;
    for (int i = 0; i < tmpb.n; i++)
        if (dies_if(tmpb.v[i], tmpb.v[i], -1))
            lo++;
    for (int i = 0; i < tmpb.n; i++) {
        exp_fire[tmpb.v[i]] = FIRE_YES;
        obj[tmpb.v[i]].wr_cb = -1;
    }
    cascade();
    for (int x = 0; x < n; x++)
        s_left[x] = s_res[x]; /* resurrected: off the finalizers list */
    for (int w = 0; w < n; w++) {
        if (!s_inF[w])
            continue;
        if (obj[w].alive)
            obj[w].gen = old; /* moved to the old generation after its callback */
        else
            hi++;
    }
    if (hi > lo)
        stats.ranges++;
    stats.self_freed += (long)lo;

    /* 5. PEP 442 finalizers of the trash, once each */
    for (int x = 0; x < n; x++)
        s_mark[x] = 0;
    for (int x = 0; x < n; x++) {
        mobj *o = &obj[x];
        if (!TRASH(x) || o->kind != K_NODE || !nk_has_finalize(o->nk) || o->finalized)
            continue;
        o->finalized = true;
        exp_fin[x] = 1;
        if (o->nk == N_RES) {
            list_push(&obj[res_id], x);
            s_mark[x] = 1;
            work[nw++] = x;
        }
    }
    /* 6. what the resurrected reach survives */
    while (nw > 0) {
        edges(work[--nw], &eb, NULL);
        for (int i = 0; i < eb.n; i++)
            if (TRASH(eb.v[i]) && !s_mark[eb.v[i]])
                s_mark[eb.v[i]] = 1, work[nw++] = eb.v[i];
    }
    /* 7. the rest is cleared; that may free more (L members included) */
    size_t cleared = 0;
    for (int x = 0; x < n; x++) {
        if (!TRASH(x))
            continue;
        if (s_mark[x]) {
            obj[x].gen = old;
        } else {
            obj[x].alive = false;
            exp_dead[x] = 1;
            cleared++;
        }
    }
    cascade();

    /* 8. L members still in the finalizers list: uncollectable; the legacy
     *    ones go to the garbage list. Gone from it: weakrefs whose callback
     *    ran (moved to the old generation), and members freed or
     *    resurrected by a cascade (a callback's closure in L dropped, or
     *    the trash cleared). */
    size_t unc = 0;
    for (int x = 0; x < n; x++) {
        if (!s_inL[x] || !obj[x].alive || s_inF[x] || s_res[x] || s_left[x])
            continue;
        unc++;
        obj[x].gen = old;
        if (obj[x].kind == K_NODE && nk_is_legacy(obj[x].nk))
            list_push(&obj[garbage_id], x);
    }
#undef TRASH
    pred_lo = cleared + lo;
    pred_hi = cleared + hi;
    pred_n = unc;
    pred_pending = true;
}

/* ---- windows: predict, run, compare ------------------------------------------------ */

static void window_begin(void)
{
    for (int x = 0; x < nobj; x++) {
        alive0[x] = obj[x].alive;
        exp_dead[x] = exp_fin[x] = exp_del[x] = exp_fire[x] = 0;
        ev_fin[x] = ev_del[x] = ev_destroy[x] = ev_fire[x] = 0;
    }
    substeps++;
}

/* s_mark = reachable from handles (the test's, and the roots' own). */
static void mark_reachable(void)
{
    int nw = 0;
    for (int x = 0; x < nobj; x++) {
        s_mark[x] = obj[x].alive && obj[x].handles > 0;
        if (s_mark[x])
            work[nw++] = x;
    }
    while (nw > 0) {
        edges(work[--nw], &eb, NULL);
        for (int i = 0; i < eb.n; i++)
            if (!s_mark[eb.v[i]] && obj[eb.v[i]].alive)
                s_mark[eb.v[i]] = 1, work[nw++] = eb.v[i];
    }
}

static bool model_reachable(int target)
{
    mark_reachable();
    return s_mark[target];
}

/* Compare what the runtime did in this window with the prediction. */
static void window_check(const char *what)
{
    for (int x = 0; x < nobj; x++) {
        if (!alive0[x])
            continue;
        const mobj *o = &obj[x];
        bool freed = o->ptr->ob_refcnt == RC_REFCNT_FREED;
        if (freed && !exp_dead[x])
            fail("%s: %s was freed; the model says it is alive (%s)", what, desc(x),
                 model_reachable(x) ? "and reachable" : "unreachable, not yet collectable");
        if (!freed && exp_dead[x])
            fail("%s: %s is still alive (refcount %u); the model says it is freed", what,
                 desc(x), o->ptr->ob_refcnt);
        if (o->kind == K_NODE && ev_destroy[x] != exp_dead[x])
            fail("%s: destroy ran %d times on %s, expected %d", what, ev_destroy[x], desc(x),
                 exp_dead[x]);
        if (ev_fin[x] != exp_fin[x])
            fail("%s: the finalizer of %s ran %d times, expected %d", what, desc(x), ev_fin[x],
                 exp_fin[x]);
        if (ev_del[x] != exp_del[x])
            fail("%s: the legacy finalizer of %s ran %d times, expected %d", what, desc(x),
                 ev_del[x], exp_del[x]);
        if ((exp_fire[x] == FIRE_NO && ev_fire[x] != 0) ||
            (exp_fire[x] == FIRE_YES && ev_fire[x] != 1) || ev_fire[x] > 1)
            fail("%s: the callback of %s (target %s) ran %d times, expected %s", what, desc(x),
                 desc(o->wr_target), ev_fire[x],
                 exp_fire[x] == FIRE_YES ? "once" : exp_fire[x] ? "at most once" : "never");
        if (o->n_fin > 1 || o->n_del > o->del_budget || o->n_destroy > 1 || o->n_fired > 1)
            fail("%s: %s: finalizer %d, legacy %d, destroy %d, callback %d times in all", what,
                 desc(x), o->n_fin, o->n_del, o->n_destroy, o->n_fired);
        if (exp_dead[x])
            stats.freed++;
        stats.finalized += ev_fin[x];
        stats.legacy_dels += ev_del[x];
        stats.fired += ev_fire[x];
        if (exp_fin[x] && o->alive && o->kind == K_NODE && o->nk == N_RES)
            stats.resurrected++;
    }
}

/* The syslist's items as a multiset, then take the runtime's order. */
static void check_syslist(int x, const rc_list_object *l)
{
    mobj *o = &obj[x];
    if ((int)l->len != o->nitems)
        fail("%s has %zu items, the model %d", desc(x), l->len, o->nitems);
    tmpb.n = 0;
    for (int j = 0; j < o->nitems; j++)
        ipush(&tmpb, o->items[j]);
    for (size_t i = 0; i < l->len; i++) {
        int found = -1;
        for (int j = 0; j < tmpb.n && found < 0; j++)
            if (tmpb.v[j] >= 0 && obj[tmpb.v[j]].ptr == l->items[i])
                found = j;
        if (found < 0)
            fail("%s item %zu is %p, which the model does not have there", desc(x), i,
                 (void *)l->items[i]);
        o->items[i] = tmpb.v[found];
        tmpb.v[found] = -1;
    }
}

static rc_object *ptr_of(int y) { return y >= 0 ? obj[y].ptr : NULL; }

/* Every live object against the model: refcount, references, generation. */
static void full_check(const char *what)
{
    uint64_t gencount[4] = {0, 0, 0, 0}, total = 0;
    compute_rc(m_rc, NULL);
    for (int x = 0; x < nobj; x++) {
        mobj *o = &obj[x];
        if (!o->alive)
            continue;
        rc_object *p = o->ptr;
        if (p->ob_refcnt == RC_REFCNT_FREED)
            fail("%s: %s is freed", what, desc(x));
        if ((intptr_t)p->ob_refcnt != m_rc[x])
            fail("%s: %s has refcount %u, the model %d", what, desc(x), p->ob_refcnt, m_rc[x]);
        if (!(p->ob_info & RC_OBF_TRACKED))
            fail("%s: %s is not tracked", what, desc(x));
        if ((int)_rc_gen(p) != o->gen)
            fail("%s: %s is in generation %u, the model says %d", what, desc(x), _rc_gen(p),
                 o->gen);
        gencount[o->gen]++;
        total++;
        switch (o->kind) {
        case K_NODE: {
            Node *nd = (Node *)p;
            if (nd->id != x)
                fail("%s: %s has id %d", what, desc(x), nd->id);
            for (int i = 0; i < NFIELDS; i++)
                if (nd->f[i] != ptr_of(o->f[i]))
                    fail("%s: %s.f[%d] is %p, the model says %s", what, desc(x), i,
                         (void *)nd->f[i], desc(o->f[i]));
            break;
        }
        case K_LIST: {
            rc_list_object *l = (rc_list_object *)p;
            if ((int)l->len != o->nitems)
                fail("%s: %s has %zu items, the model %d", what, desc(x), l->len, o->nitems);
            for (int i = 0; i < o->nitems; i++)
                if (l->items[i] != ptr_of(o->items[i]))
                    fail("%s: %s[%d] is %p, the model says %s", what, desc(x), i,
                         (void *)l->items[i], desc(o->items[i]));
            break;
        }
        case K_SYSLIST:
            check_syslist(x, (rc_list_object *)p);
            break;
        case K_DICT: {
            size_t len = 0;
            for (int k = 0; k < NKEYS; k++) {
                len += o->dval[k] >= 0;
                if (rc_dict_get(p, dict_keys[k]) != ptr_of(o->dval[k]))
                    fail("%s: %s['%s'] is %p, the model says %s", what, desc(x), dict_keys[k],
                         (void *)rc_dict_get(p, dict_keys[k]), desc(o->dval[k]));
            }
            if (!o->cleared && rc_dict_len(p) != len)
                fail("%s: %s has %zu entries, the model %zu", what, desc(x), rc_dict_len(p), len);
            break;
        }
        case K_SYSDICT:
            if (rc_dict_len(p) != 0)
                fail("%s: %s is not empty", what, desc(x));
            break;
        case K_WEAKREF: {
            rc_weakref *w = (rc_weakref *)p;
            if (o->wr_linked && !obj[o->wr_target].alive)
                fail("model inconsistency: %s is linked to dead %s", desc(x), desc(o->wr_target));
            if (w->wr_object != (o->wr_linked ? obj[o->wr_target].ptr : NULL))
                fail("%s: %s points at %p, the model says %s", what, desc(x),
                     (void *)w->wr_object, o->wr_linked ? desc(o->wr_target) : "cleared");
            if (w->wr_callback != ptr_of(o->wr_cb))
                fail("%s: %s has callback %p, the model says %s", what, desc(x),
                     (void *)w->wr_callback, desc(o->wr_cb));
            break;
        }
        case K_CLOSURE: {
            rc_closure_object *c = (rc_closure_object *)p;
            if ((int)c->ncells != o->ncaps)
                fail("%s: %s has %zu cells, the model %d", what, desc(x), c->ncells, o->ncaps);
            for (int i = 0; i < o->ncaps; i++)
                if (c->cells[i] != ptr_of(o->caps[i]))
                    fail("%s: %s cell %d is %p, the model says %s", what, desc(x), i,
                         (void *)c->cells[i], desc(o->caps[i]));
            break;
        }
        }
    }
    const rc_gc_state *gc = &rc_debug_registry.gc;
    for (int i = 0; i < 3; i++)
        if (gc->generations[i].nobjects != gencount[i])
            fail("%s: generation %d counts %" PRIu64 " objects, the model %" PRIu64, what, i,
                 gc->generations[i].nobjects, gencount[i]);
    if (gc->permanent.nobjects != gencount[3] || gc->tracked != total)
        fail("%s: %" PRIu64 " frozen and %" PRIu64 " tracked objects, the model %" PRIu64
             " and %" PRIu64,
             what, gc->permanent.nobjects, gc->tracked, gencount[3], total);
}

/* ---- hooks: what the runtime does, recorded ------------------------------------------- */

enum { EV_FIN, EV_DEL, EV_DESTROY, EV_FIRE };
static const char *const ev_names[] = {"finalizer", "legacy finalizer", "destroy", "callback"};

static void note(int type, int x, const rc_object *p)
{
    if (!active)
        return;
    if (x < 0 || x >= nobj || !(alive0[x] || (chaos && obj[x].alive)) || obj[x].ptr != p)
        fail("%s ran on %p, not an object alive at the start of the operation", ev_names[type],
             (const void *)p);
    mobj *o = &obj[x];
    switch (type) {
    case EV_FIN:
        ev_fin[x]++, o->n_fin++;
        break;
    case EV_DEL:
        ev_del[x]++, o->n_del++;
        break;
    case EV_DESTROY:
        ev_destroy[x]++, o->n_destroy++;
        break;
    default:
        ev_fire[x]++, o->n_fired++;
        break;
    }
}

static void node_finalize(rc_object *self)
{
    if (active && (self->ob_refcnt == 0 || self->ob_refcnt == RC_REFCNT_FREED))
        fail("finalizer called on a dead object (refcount %u)", self->ob_refcnt);
    note(EV_FIN, ((Node *)self)->id, self);
    chaos_act();
}

static void node_resurrect(rc_object *self)
{
    node_finalize(self);
    if (active)
        rc_list_append(res_list, self); /* a global now holds it */
}

static void node_legacy_del(rc_object *self)
{
    if (active && self->ob_refcnt != 1)
        fail("legacy finalizer called with refcount %u", self->ob_refcnt);
    note(EV_DEL, ((Node *)self)->id, self);
    chaos_act();
    if (active && self->ob_refcnt > 1) /* it resurrects: it may run again */
        obj[((Node *)self)->id].del_budget++;
}

static void node_destroy(rc_object *self)
{
    if (active && self->ob_refcnt != 0)
        fail("destroy called with refcount %u", self->ob_refcnt);
    note(EV_DESTROY, ((Node *)self)->id, self);
}

static int id_of(const rc_object *p)
{
    for (int x = 0; x < nobj; x++)
        if ((alive0[x] || (chaos && obj[x].alive)) && obj[x].ptr == p)
            return x;
    return -1;
}

/* Weakref callbacks: closures called with the dead weakref. */
static rc_object *callback_fn(rc_object *self, rc_object *arg)
{
    (void)self;
    if (!active)
        return NULL;
    if (!arg || arg->ob_type != &rc_weakref_type)
        fail("callback called with %s", arg ? rc_type_name(arg) : "NULL");
    if (arg->ob_refcnt == 0 || arg->ob_refcnt == RC_REFCNT_FREED)
        fail("callback called with a dead weakref (refcount %u)", arg->ob_refcnt);
    if (((rc_weakref *)arg)->wr_object != NULL || rc_weakref_get(arg) != NULL)
        fail("callback called with a weakref that still has its target");
    int w = id_of(arg);
    note(EV_FIRE, w, arg);
    /* Callbacks run only once every weakref concerned is cleared: all those
     * to the dying object, and in a collection all those to its trash. */
    int t = obj[w].wr_target;
    for (int x = 0; x < nobj; x++) {
        const mobj *o = &obj[x];
        if (!alive0[x] || o->kind != K_WEAKREF || o->ptr->ob_refcnt == RC_REFCNT_FREED)
            continue;
        bool concerned = o->wr_target == t ||
                         (pred_pending && s_inU[o->wr_target] && !s_inL[o->wr_target]);
        if (concerned && ((rc_weakref *)o->ptr)->wr_object != NULL)
            fail("the callback of %s runs while %s still points at %s", desc(w), desc(x),
                 desc(o->wr_target));
    }
    chaos_act();
    return NULL;
}

static void gc_callback(const char *phase, int generation, size_t collected,
                        size_t uncollectable, void *data)
{
    (void)data;
    if (!active)
        return;
    if (chaos) { /* order-dependent: checked after the step (resync) */
        if (strcmp(phase, "start") == 0)
            stats.collections[generation]++;
        return;
    }
    if (strcmp(phase, "start") == 0) {
        for (int x = 0; x < nobj; x++)
            if (ev_fin[x] || ev_del[x] || ev_destroy[x] || ev_fire[x])
                fail("a collection started after other effects in the same call");
        trace("  %s collection of generation %d", in_explicit_collect ? "explicit" : "automatic",
              generation);
        stats.collections[generation]++;
        if (!in_explicit_collect)
            stats.auto_collections++;
        predict_collection(generation);
        return;
    }
    if (!pred_pending)
        fail("\"stop\" without \"start\"");
    pred_pending = false;
    window_check("collection");
    if (uncollectable != pred_n || collected < pred_lo || collected > pred_hi)
        fail("collection of generation %d: collected %zu, uncollectable %zu; the model says "
             "collected %zu..%zu, uncollectable %zu",
             generation, collected, uncollectable, pred_lo, pred_hi, pred_n);
    stats.collected += (long)collected;
    stats.uncollectable += (long)uncollectable;
    last_collected = collected;
    last_uncollectable = uncollectable;
    full_check("after the collection");
    window_begin();
}

/* ---- operations: one runtime call each, predicted and checked --------------------------- */

static void resync(void);

static void finish(const char *what)
{
    if (chaos) { /* order-dependent: read back, then checked */
        resync();
        return;
    }
    cascade();
    window_check(what);
    full_check(what);
}

static int op_new_node(int nk)
{
    window_begin();
    Node *nd = rc_new(Node, &node_types[nk]);
    int x = model_new(K_NODE, RC_OBJ(nd));
    obj[x].nk = nk;
    nd->id = x;
    trace("new %s -> #%d", nk_names[nk], x);
    finish("new node");
    return x;
}

static int op_new_list(void)
{
    window_begin();
    rc_object *l = rc_list_new();
    int x = model_new(K_LIST, l);
    trace("new list -> #%d", x);
    finish("new list");
    return x;
}

static int op_new_dict(void)
{
    window_begin();
    rc_object *d = rc_dict_new();
    int x = model_new(K_DICT, d);
    trace("new dict -> #%d", x);
    finish("new dict");
    return x;
}

static int op_new_closure(int ncaps, const int *caps)
{
    static const char *const names[MAXCAPS] = {"a", "b"};
    rc_object *values[MAXCAPS];
    for (int i = 0; i < ncaps; i++)
        values[i] = obj[caps[i]].ptr;
    window_begin();
    rc_object *c = rc_closure_new(callback_fn, "callback", (size_t)ncaps, names, values);
    int x = model_new(K_CLOSURE, c);
    obj[x].ncaps = ncaps;
    for (int i = 0; i < ncaps; i++)
        obj[x].caps[i] = caps[i];
    trace("new closure capturing %d objects -> #%d", ncaps, x);
    finish("new closure");
    return x;
}

static int op_new_weakref(int target, int cb)
{
    window_begin();
    rc_object *w = rc_weakref_new(obj[target].ptr, ptr_of(cb));
    cr_assert_not_null(w, "rc_weakref_new: %s", rc_last_error());
    int x = model_new(K_WEAKREF, w);
    obj[x].wr_target = target;
    obj[x].wr_linked = true;
    obj[x].wr_cb = cb;
    trace("new weakref to #%d, callback #%d -> #%d", target, cb, x);
    finish("new weakref");
    return x;
}

static void op_incref(int x)
{
    window_begin();
    rc_incref(obj[x].ptr);
    obj[x].handles++;
    trace("incref %s", desc(x));
    finish("incref");
}

static void op_decref(int x)
{
    trace("decref %s", desc(x));
    window_begin();
    obj[x].handles--;
    rc_decref(obj[x].ptr);
    finish("decref");
}

static void op_set_field(int x, int i, int v)
{
    trace("#%d.f[%d] = %s", x, i, desc(v));
    window_begin();
    rc_set(&((Node *)obj[x].ptr)->f[i], ptr_of(v));
    obj[x].f[i] = v;
    finish("rc_set");
}

static void op_list_append(int l, int v)
{
    trace("#%d.append(#%d)", l, v);
    window_begin();
    cr_assert_eq(rc_list_append(obj[l].ptr, obj[v].ptr), 0);
    list_push(&obj[l], v);
    finish("list append");
}

static void op_list_set(int l, int i, int v)
{
    trace("#%d[%d] = #%d", l, i, v);
    window_begin();
    cr_assert_eq(rc_list_set(obj[l].ptr, (size_t)i, obj[v].ptr), 0);
    obj[l].items[i] = v;
    finish("list set");
}

/* Pop the last item: its reference becomes a handle. Returns its id. */
static int op_list_pop(int l)
{
    mobj *o = &obj[l];
    int y = o->items[o->nitems - 1];
    trace("#%d.pop() -> #%d", l, y);
    window_begin();
    rc_object *r = rc_list_pop(o->ptr);
    o = &obj[l];
    if (r != ptr_of(y))
        fail("pop of %s returned %p, expected %s", desc(l), (void *)r, desc(y));
    o->nitems--;
    if (y >= 0)
        obj[y].handles++;
    finish("list pop");
    return y;
}

static void op_list_clear(int l)
{
    trace("clear %s (%d items)", desc(l), obj[l].nitems);
    window_begin();
    cr_assert_eq(rc_list_clear(obj[l].ptr), 0);
    obj[l].nitems = 0;
    finish("list clear");
}

static void op_dict_set(int d, int k, int v)
{
    trace("#%d['%s'] = #%d", d, dict_keys[k], v);
    window_begin();
    cr_assert_eq(rc_dict_set(obj[d].ptr, dict_keys[k], obj[v].ptr), 0);
    obj[d].dval[k] = v;
    finish("dict set");
}

static void op_dict_del(int d, int k)
{
    trace("del #%d['%s']", d, dict_keys[k]);
    window_begin();
    cr_assert_eq(rc_dict_del(obj[d].ptr, dict_keys[k]), 0);
    obj[d].dval[k] = -1;
    finish("dict del");
}

/* Returns the target's id if the weakref gave a new reference (a handle). */
static int op_weakref_get(int w)
{
    mobj *o = &obj[w];
    trace("get %s (target %s, %s)", desc(w), desc(o->wr_target),
          o->wr_linked ? "linked" : "cleared");
    window_begin();
    rc_object *r = rc_weakref_get(o->ptr);
    int t = o->wr_linked ? o->wr_target : -1;
    if (r != ptr_of(t))
        fail("rc_weakref_get(%s) returned %p, the model says %s", desc(w), (void *)r, desc(t));
    if (t >= 0)
        obj[t].handles++;
    finish("weakref get");
    return t;
}

static void op_collect(int g)
{
    trace("rc_gc_collect(%d)", g);
    window_begin();
    in_explicit_collect = true;
    size_t r = rc_gc_collect(g);
    in_explicit_collect = false;
    if (chaos) {
        resync();
        return;
    }
    if (pred_pending)
        fail("rc_gc_collect(%d): no \"stop\" callback", g);
    window_check("rc_gc_collect");
    full_check("rc_gc_collect");
    if (r != last_collected + last_uncollectable)
        fail("rc_gc_collect(%d) returned %zu; the callback said %zu + %zu", g, r, last_collected,
             last_uncollectable);
    if (g == 2) {
        /* The rule itself, apart from the prediction: with nothing frozen,
         * every object unreachable when the collection started is now
         * freed, uncollectable (reachable from a legacy finalizer then) or
         * resurrected (reachable from the resurrection list). */
        bool frozen = pred_frozen;
        if (!frozen)
            mark_reachable();
        for (int x = 0; x < nobj && !frozen; x++)
            if (obj[x].alive && s_inU[x] && !s_inL[x] && !s_mark[x])
                fail("a full collection left %s alive and unreachable", desc(x));
    }
}

static void op_freeze(bool on)
{
    trace("%s", on ? "rc_gc_freeze()" : "rc_gc_unfreeze()");
    window_begin();
    if (on)
        rc_gc_freeze();
    else
        rc_gc_unfreeze();
    for (int x = 0; x < nobj; x++) {
        if (!obj[x].alive)
            continue;
        if (on && obj[x].gen < 3)
            obj[x].gen = 3;
        else if (!on && obj[x].gen == 3)
            obj[x].gen = 2;
    }
    finish(on ? "freeze" : "unfreeze");
}

/* ---- chaos: reentrant hooks, checked after the fact ------------------------------ */

/* A live object of one of `kinds` as the runtime sees it right now (not
 * freed, not at refcount 0 in the middle of its deallocation), or -1. */
static int pick_live_now(unsigned kinds)
{
    int n = 0;
    for (int x = 0; x < nobj; x++) {
        const mobj *o = &obj[x];
        if (o->alive && (kinds >> o->kind & 1u) && o->ptr->ob_refcnt != RC_REFCNT_FREED &&
            o->ptr->ob_refcnt > 0)
            work[n++] = x;
    }
    return n ? work[rn(n)] : -1;
}

/*
 * What a finalizer or a callback may do in a chaos step: change a reference
 * of any live node (even garbage the collector is working on: the C code
 * holds raw pointers), allocate (an automatic collection may start inside
 * a deallocation), or collect (nested: inside a collection it returns 0).
 */
static void chaos_act(void)
{
    if (!chaos || chaos_depth >= 3)
        return;
    chaos_depth++;
    for (int k = rn(4); k > 0; k--) {
        stats.chaos_actions++;
        int r = rn(10), n = pick_live_now(1u << K_NODE);
        if (r < 5 && n >= 0) {
            int v = chance(20) ? -1 : pick_live_now(VALUE_KINDS);
            rc_set(&((Node *)obj[n].ptr)->f[rn(NFIELDS)], ptr_of(v));
        } else if (r < 8) {
            int nk = rn(4); /* plain, finalizer, resurrector, legacy */
            Node *nd = rc_new(Node, &node_types[nk]);
            n = pick_live_now(1u << K_NODE); /* the allocation may have collected */
            int x = model_new(K_NODE, RC_OBJ(nd));
            obj[x].nk = nk;
            obj[x].handles = 0; /* ours goes to the node below, or is dropped */
            nd->id = x;
            if (n >= 0)
                rc_set(&((Node *)obj[n].ptr)->f[rn(NFIELDS)], RC_OBJ(nd));
            rc_decref(nd);
        } else {
            rc_gc_collect(rn(3));
        }
    }
    chaos_depth--;
}

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)obj[*(const int *)a].ptr, y = (uintptr_t)obj[*(const int *)b].ptr;
    return x < y ? -1 : x > y;
}

/* The live model object at p; fails on a pointer to anything else (a freed
 * object: a dangling reference). */
static int resolve(int holder, const rc_object *p)
{
    if (!p)
        return -1;
    int lo = 0, hi = tmpb.n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uintptr_t m = (uintptr_t)obj[tmpb.v[mid]].ptr;
        if (m == (uintptr_t)p)
            return tmpb.v[mid];
        if (m < (uintptr_t)p)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    fail("after a chaos step, %s refers to %p: %s", desc(holder), (const void *)p,
         p->ob_refcnt == RC_REFCNT_FREED ? "a freed object" : "not an object of the test");
}

/*
 * After a chaos step the model takes the graph from the runtime: what died
 * (poisoned heads: chaos seeds keep debug checks on, so freed blocks are
 * quarantined, not reused), every reference, finalized flags, generations.
 * Checked on the way: no reference dangles, nothing the test holds died,
 * weakrefs keep their target or are cleared, every hook ran at most once;
 * then full_check() checks every refcount against the references read.
 */
static void resync(void)
{
    for (int x = 0; x < nobj; x++) {
        mobj *o = &obj[x];
        if (!o->alive || o->ptr->ob_refcnt != RC_REFCNT_FREED)
            continue;
        if (o->handles > 0)
            fail("chaos step: %s, which the test holds, was freed", desc(x));
        if (o->kind == K_NODE && o->n_destroy != 1)
            fail("chaos step: %s was freed with %d destroy calls", desc(x), o->n_destroy);
        o->alive = false;
        stats.freed++;
    }
    tmpb.n = 0;
    for (int x = 0; x < nobj; x++)
        if (obj[x].alive)
            ipush(&tmpb, x);
    qsort(tmpb.v, (size_t)tmpb.n, sizeof *tmpb.v, ptr_cmp);
    for (int x = 0; x < nobj; x++) {
        mobj *o = &obj[x];
        if (!o->alive)
            continue;
        rc_object *p = o->ptr;
        if (o->n_fin > 1 || o->n_del > o->del_budget || o->n_destroy > 0 || o->n_fired > 1)
            fail("chaos step: %s: finalizer %d, legacy %d, destroy %d, callback %d times", desc(x),
                 o->n_fin, o->n_del, o->n_destroy, o->n_fired);
        o->gen = (int)_rc_gen(p);
        switch (o->kind) {
        case K_NODE:
            o->finalized = rc_gc_is_finalized(p);
            for (int i = 0; i < NFIELDS; i++)
                o->f[i] = resolve(x, ((Node *)p)->f[i]);
            break;
        case K_LIST:
        case K_SYSLIST: {
            rc_list_object *l = (rc_list_object *)p;
            o->nitems = 0;
            for (size_t i = 0; i < l->len; i++) {
                list_push(o, resolve(x, l->items[i]));
                if (!l->items[i] && !o->cleared) {
                    o->cleared = true;
                    stats.chaos_cleared_alive++;
                }
            }
            break;
        }
        case K_DICT: {
            size_t len = 0;
            for (int k = 0; k < NKEYS; k++) {
                o->dval[k] = resolve(x, rc_dict_get(p, dict_keys[k]));
                len += o->dval[k] >= 0;
            }
            if (rc_dict_len(p) != len && !o->cleared) {
                o->cleared = true;
                stats.chaos_cleared_alive++;
            }
            break;
        }
        case K_WEAKREF: {
            rc_weakref *w = (rc_weakref *)p;
            if (w->wr_object && w->wr_object != obj[o->wr_target].ptr)
                fail("chaos step: %s points at %p, not at its target %s", desc(x),
                     (void *)w->wr_object, desc(o->wr_target));
            o->wr_linked = w->wr_object != NULL;
            int cb = resolve(x, w->wr_callback);
            if (cb >= 0 && cb != o->wr_cb)
                fail("chaos step: %s has callback %s, not %s", desc(x), desc(cb), desc(o->wr_cb));
            o->wr_cb = cb;
            break;
        }
        case K_CLOSURE: {
            rc_closure_object *c = (rc_closure_object *)p;
            o->ncaps = (int)c->ncells;
            for (int i = 0; i < o->ncaps; i++)
                o->caps[i] = resolve(x, c->cells[i]);
            break;
        }
        default:
            break;
        }
    }
    full_check("after a chaos step");
}

/* One random operation with the hooks let loose; the model is read back
 * after each runtime call of it (finish()). */
static void chaos_step(void (*step)(void))
{
    stats.chaos_steps++;
    trace("  (chaos step)");
    window_begin();
    chaos = true;
    step();
    chaos = false;
}

/* ---- the random walk ----------------------------------------------------------------- */

static int count_alive(unsigned kinds, bool need_handle)
{
    int n = 0;
    for (int x = 0; x < nobj; x++)
        if (obj[x].alive && (kinds >> obj[x].kind & 1u) && (!need_handle || obj[x].handles > 0))
            n++;
    return n;
}

/* A uniformly chosen live object of one of `kinds` (with a handle if asked);
 * -1 if there is none. Unreachable ones are fair game: a C program may hold
 * a borrowed pointer to garbage until the collector runs. */
static int pick(unsigned kinds, bool need_handle)
{
    int n = count_alive(kinds, need_handle);
    if (n == 0)
        return -1;
    int k = rn(n);
    for (int x = 0; x < nobj; x++)
        if (obj[x].alive && (kinds >> obj[x].kind & 1u) && (!need_handle || obj[x].handles > 0) &&
            k-- == 0)
            return x;
    return -1;
}

static int pick_value(void) { return pick(VALUE_KINDS, false); }

static int random_node_kind(void)
{
    int r = rn(20);
    return r < 7 ? N_PLAIN : r < 12 ? N_FIN : r < 15 ? N_RES : r < 18 ? N_LEGACY : N_BOTH;
}

static void step_new_weakref(void)
{
    /* The target: any object, or a new one left to what the weakref's
     * callback holds (or to the collector, if it is a self-cycle). */
    bool fresh = chance(25);
    int t = fresh ? op_new_node(random_node_kind()) : pick_value();
    if (t < 0)
        return;
    if (fresh && chance(50))
        op_set_field(t, 0, t);
    /* Hold everything the allocations below need: a collection may run in
     * them and free garbage we only point at. */
    op_incref(t);
    int cb = -1, caps[MAXCAPS], ncaps = 0, loop = -1;
    if (chance(65)) {
        int shape = rn(4);
        if (shape == 0) {
            /* the callback closure keeps the target (and so the weakref's
             * own death can free its target) */
            caps[ncaps++] = t;
        } else if (shape == 1) {
            /* weakref -> closure -> node -> weakref: freed by its own
             * callback when it sits unreachable in an older generation, or
             * when the node is a legacy one (the callback of a weakref in
             * uncollectable garbage runs, and frees it all) */
            loop = caps[ncaps++] = op_new_node(chance(50) ? N_LEGACY : N_PLAIN);
        }
        for (int i = ncaps, want = rn(MAXCAPS + 1); i < want; i++)
            caps[ncaps++] = pick_value();
        for (int i = 0; i < ncaps; i++)
            op_incref(caps[i]);
        if (loop >= 0)
            op_decref(loop); /* keep one handle: ours */
        cb = op_new_closure(ncaps, caps);
    }
    int w = op_new_weakref(t, cb);
    if (loop >= 0)
        op_set_field(loop, 0, w);
    if (cb >= 0)
        op_decref(cb); /* the weakref holds its callback */
    for (int i = 0; i < ncaps; i++)
        op_decref(caps[i]);
    op_decref(t);
    if (fresh)
        op_decref(t);
    if (loop >= 0 && chance(60))
        op_decref(w);
}

static void step_chain(void)
{
    /* A chain longer than the trashcan depth, held by its head only. */
    int head = op_new_node(random_node_kind() == N_RES ? N_RES : N_FIN);
    int prev = head;
    for (int i = 1; i < CHAIN_LEN; i++) {
        int x = op_new_node(chance(70) ? N_PLAIN : random_node_kind());
        if (!obj[prev].alive) { /* a chaos hook cut the chain: it was not ours */
            op_decref(x);
            break;
        }
        op_set_field(prev, 0, x);
        op_decref(x);
        prev = x;
    }
    if (chance(50))
        op_decref(head);
}

static void random_op(void)
{
    int live = count_alive(~0u, false);
    bool crowded = live > MAXLIVE;
    int r = rn(1000);
    int x, y;

    if (crowded && r < 300) {
        if ((x = pick(VALUE_KINDS, true)) >= 0)
            op_decref(x);
        else
            op_collect(2);
        return;
    }
    if (r < 120) { /* a node, maybe with references */
        x = op_new_node(random_node_kind());
        for (int i = 0, k = rn(3); i < k; i++)
            op_set_field(x, rn(NFIELDS), chance(25) ? x : pick_value());
    } else if (r < 160) {
        x = op_new_list();
        for (int i = 0, k = rn(4); i < k; i++)
            op_list_append(x, chance(15) ? x : pick_value());
    } else if (r < 190) {
        x = op_new_dict();
        for (int i = 0, k = rn(3); i < k; i++)
            op_dict_set(x, rn(NKEYS), chance(15) ? x : pick_value());
    } else if (r < 270) {
        step_new_weakref();
    } else if (r < 460) { /* an edge */
        if ((x = pick(1u << K_NODE, false)) >= 0)
            op_set_field(x, rn(NFIELDS), chance(20) ? -1 : pick_value());
    } else if (r < 540) { /* a list operation */
        if ((x = pick(1u << K_LIST, false)) < 0)
            return;
        int n = obj[x].nitems, k = rn(10);
        if (k < 4 || n == 0)
            op_list_append(x, pick_value());
        else if (k < 7)
            op_list_set(x, rn(n), pick_value());
        else if (k < 9) {
            y = op_list_pop(x);
            if (y >= 0 && chance(70))
                op_decref(y);
        } else
            op_list_clear(x);
    } else if (r < 590) { /* a dict operation */
        if ((x = pick(1u << K_DICT, false)) < 0)
            return;
        int k = rn(NKEYS);
        if (obj[x].dval[k] >= 0 && chance(40))
            op_dict_del(x, k);
        else
            op_dict_set(x, k, pick_value());
    } else if (r < 640) { /* a new handle, even on garbage */
        if ((x = pick_value()) >= 0)
            op_incref(x);
    } else if (r < 820) { /* drop a handle */
        if ((x = pick(VALUE_KINDS, true)) >= 0)
            op_decref(x);
    } else if (r < 850) {
        if ((x = pick(1u << K_WEAKREF, false)) >= 0 && (y = op_weakref_get(x)) >= 0 &&
            chance(60))
            op_decref(y);
    } else if (r < 905) {
        int g = rn(10);
        op_collect(g < 3 ? 0 : g < 5 ? 1 : 2);
    } else if (r < 910) {
        op_freeze(true);
    } else if (r < 918) {
        op_freeze(false);
    } else if (r < 930) {
        int t0 = chance(10) ? 0 : 1 + rn(30);
        trace("rc_gc_set_threshold(%d, ...)", t0);
        rc_gc_set_threshold(t0, 1 + rn(6), 1 + rn(6));
    } else if (r < 936) {
        if (rc_gc_isenabled() && chance(50)) {
            trace("rc_gc_disable()");
            rc_gc_disable();
        } else {
            trace("rc_gc_enable()");
            rc_gc_enable();
        }
    } else if (r < 960) { /* let a resurrected object go */
        if (obj[res_id].nitems > 0) {
            y = op_list_pop(res_id);
            if (y >= 0 && chance(80))
                op_decref(y);
        }
    } else if (r < 963) {
        op_list_clear(res_id);
    } else if (r < 980) { /* del gc.garbage[-1] / gc.garbage.pop() */
        if (obj[garbage_id].nitems > 0) {
            y = op_list_pop(garbage_id);
            if (y >= 0 && chance(60))
                op_decref(y);
        }
    } else if (r < 995) {
        op_list_clear(garbage_id);
    } else if (r < 998 && !crowded) {
        step_chain();
    }
}

static void random_step(void)
{
    if (chaos_seed && chance(50))
        chaos_step(random_op);
    else
        random_op();
}

static void run_seed(uint64_t seed, int steps, bool checks)
{
    cur_seed = seed;
    cur_step = -1;
    substeps = 0;
    trace_n = 0;
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (!rng_state)
        rng_state = 1;
    model_reset();

    /* Chaos needs freed blocks quarantined (debug checks) to see deaths. */
    chaos_seed = checks && seed % 4 == 1;
    rc_init();
    rc_debug_set_checks(checks);
    if (seed % 4 == 3) /* the tracer sees every allocation and every free */
        cr_assert_eq(rc_trace_start(1 + rn(8)), 0);
    res_list = rc_list_new(); /* default thresholds: no collection yet */
    active = true;
    /* The runtime's own roots and the resurrection list, as they are. */
    garbage_id = model_new(K_SYSLIST, rc_gc_garbage());
    finalizers_id = model_new(K_SYSLIST, rc_debug_registry.finalizers);
    globals_id = model_new(K_SYSDICT, rc_globals());
    res_id = model_new(K_SYSLIST, res_list);
    for (int x = 0; x < nobj; x++)
        obj[x].gen = (int)_rc_gen(obj[x].ptr);
    window_begin();
    window_check("setup");
    full_check("setup");
    rc_gc_set_threshold(1 + rn(30), 1 + rn(6), 1 + rn(6));
    cr_assert_eq(rc_gc_callback_add(gc_callback, NULL), 0);

    for (cur_step = 0; cur_step < steps; cur_step++)
        random_step();

    /* Wind down: drop everything we hold; a full collection must leave only
     * the legacy cycles in the garbage list (and what they reach). */
    cur_step = steps;
    op_freeze(false);
    for (int x = 0; x < nobj; x++)
        while (obj[x].alive && obj[x].handles > 0 && obj[x].kind != K_SYSLIST &&
               obj[x].kind != K_SYSDICT)
            op_decref(x);
    op_list_clear(garbage_id);
    /* What a collection's own drops made unreachable (a callback's
     * closure, a legacy object freed while the garbage was cleared) goes
     * in the next one. */
    bool clean = false;
    for (int i = 0; i < 4 && !clean; i++) {
        op_list_clear(res_id);
        op_collect(2);
        mark_reachable(); /* from the garbage list only, now */
        clean = true;
        for (int x = 0; x < nobj; x++)
            clean &= !obj[x].alive || s_mark[x];
    }
    for (int x = 0; x < nobj && !clean; x++)
        if (obj[x].alive && !s_mark[x])
            fail("wind-down: %s is alive and unreachable after 4 full collections", desc(x));
    stats.steps += steps;
    stats.substeps += substeps;

    rc_gc_callback_remove(gc_callback, NULL);
    active = false;
    /* Legacy cycles are still in the garbage list: rc_shutdown reports
     * them, as CPython does at exit. Not news here. */
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    rc_gc_set_debug_stream(devnull);
    rc_shutdown();
    rc_gc_set_debug_stream(NULL);
    model_reset();
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* Seeds first .. first + RC_MODELCHECK_SEEDS - 1 (RC_MODELCHECK_SEED0, if
 * set, is the first seed), RC_MODELCHECK_STEPS operations each. */
static void run_seeds(const char *test, uint64_t first, long dflt_seeds, bool checks)
{
    long seeds = env_long("RC_MODELCHECK_SEEDS", dflt_seeds);
    int steps = (int)env_long("RC_MODELCHECK_STEPS", 300);
    if (getenv("RC_MODELCHECK_SEED0"))
        first = (uint64_t)env_long("RC_MODELCHECK_SEED0", 0);
    cur_test = test;
    signal(SIGABRT, on_abort);
    signal(SIGSEGV, on_abort);
    signal(SIGBUS, on_abort);
    verbose = env_long("RC_MODELCHECK_VERBOSE", 0) != 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long s = 0; s < seeds; s++)
        run_seed(first + (uint64_t)s, steps, checks);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    fprintf(stderr,
            "modelcheck (debug checks %s): %ld seeds from %" PRIu64 " x %d steps = %ld steps, "
            "%ld runtime calls checked in %.2f s\n"
            "  %ld objects, %ld freed; collections %ld/%ld/%ld (gen 0/1/2, %ld automatic), "
            "%ld collected, %ld uncollectable\n"
            "  %ld finalizers (%ld resurrections), %ld legacy finalizers, %ld callbacks "
            "(%ld weakrefs freed by their own); %ld collect() results checked as a range\n"
            "  weakref dying with its target: %ld must not call back, %ld must, %ld may\n"
            "  chaos: %ld steps, %ld actions by hooks, %ld cleared containers left alive\n",
            checks ? "on" : "off", seeds, first, steps, stats.steps, stats.substeps, secs,
            stats.created, stats.freed, stats.collections[0], stats.collections[1],
            stats.collections[2], stats.auto_collections, stats.collected, stats.uncollectable,
            stats.finalized, stats.resurrected, stats.legacy_dels, stats.fired, stats.self_freed,
            stats.ranges, stats.fire_causal[FIRE_NO], stats.fire_causal[FIRE_YES],
            stats.fire_causal[FIRE_MAYBE], stats.chaos_steps, stats.chaos_actions,
            stats.chaos_cleared_alive);
    free(eb.v);
    free(tmpb.v);
    eb = tmpb = (ibuf){0};
}

/* Half the seeds with debug checks on (freed blocks quarantined and
 * filled), half with them off (blocks reused at once). */
Test(modelcheck, random_graphs_debug_checks)
{
    run_seeds("random_graphs_debug_checks", 0, 100, true);
}

Test(modelcheck, random_graphs_no_checks)
{
    run_seeds("random_graphs_no_checks", 1000000, 100, false);
}

/* ---- regressions found by the model check --------------------------------------------- */

static int noop_calls, collect_calls;
static size_t nested_collected;
static rc_object *noop_cb(rc_object *self, rc_object *arg)
{
    (void)self, (void)arg;
    noop_calls++;
    return NULL;
}
static rc_object *collect_cb(rc_object *self, rc_object *arg)
{
    (void)self, (void)arg;
    collect_calls++;
    nested_collected = rc_gc_collect(2);
    return NULL;
}

/* Chaos seed 128133: a weakref being deallocated (untracked, refcount 0)
 * is still linked to its target until its destroy runs; a collection
 * started by a callback of its own weakrefs found it, took it for a live
 * weakref with a callback, and moved its gc head, which is in no list
 * (NULL dereference; had it survived, the weakref would have been freed
 * twice). A dying weakref is dead: no callback, as in CPython, where it
 * unlinks itself first. */
Test(modelcheck, collection_inside_a_dying_weakrefs_callbacks)
{
    Node *x = rc_new(Node, &node_types[N_PLAIN]);
    x->id = -1;
    rc_set(&x->f[0], RC_OBJ(x)); /* a self-cycle */
    rc_object *cb1 = rc_closure_new(noop_cb, "noop", 0, NULL, NULL);
    rc_object *w1 = rc_weakref_new(RC_OBJ(x), cb1);
    rc_decref(cb1);
    rc_object *cb2 = rc_closure_new(collect_cb, "collect", 0, NULL, NULL);
    rc_object *w2 = rc_weakref_new(w1, cb2);
    rc_decref(cb2);
    rc_decref(x);  /* garbage: only the collector can free it */
    rc_decref(w1); /* dies; w2 calls back and collects, x's weakref w1 is dying */
    cr_assert_eq(collect_calls, 1);
    cr_assert_eq(nested_collected, 1, "x is collected");
    cr_assert_eq(noop_calls, 0, "a dying weakref does not call back");
    cr_assert_null(rc_weakref_get(w2));
    rc_decref(w2);
}
