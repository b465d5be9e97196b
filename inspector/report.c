/*
 * report.c -- the commands: parse a command line, run what it needs, and
 * print the answer as text or JSON (--json, made with jansson).
 *
 * Every report is built once as a JSON value; the text form is rendered
 * from that value, so the two never disagree. Objects are named everywhere
 * as `Type@0xADDR (file.c:LINE)` ("unknown site" when the site id is 0);
 * in JSON an object is
 *   {"address": "0x...", "type": "Node", "site": "file.c:LINE",
 *    "desc": "Node@0x... (file.c:LINE)", "bytes": N}
 * (addresses are strings: 64-bit values do not survive every JSON reader).
 * An object's bytes are its block (gc head or large header included) plus
 * the buffers its field table describes (list items: len x 8, dict entry
 * tables: used x 24). Every JSON report has "command" and "warnings" (the
 * load warnings); the text of `summary` lists the warnings, other text
 * reports end with one line "(N warnings while reading the heap: see
 * `summary`)" when there are any.
 *
 * The command line: words separated by blanks; a word that starts with a
 * quote runs to the same quote followed by a blank or the end (quotes
 * inside a word are literal, so globals['cache'] needs none). Options every
 * command takes: --json, --limit N (rows, groups, or items per group listed;
 * 0 = all; default 20). Status: 0; 1 when `check` or `leaks` found
 * something; 2 for a usage error, the text then being one line
 * "refscope: ...". OBJ is 0xADDR (an object's start, or an address inside
 * one: the containing object, with a note), a root's label, a globals key,
 * or globals['key'].
 *
 * Text formats (stable; columns are separated by at least two spaces):
 *
 * summary
 *   heap summary (registry 0xADDR, version 1, pid P)
 *     objects       N (B bytes); T tracked, U untracked; E references
 *     generation G  N objects  B bytes  count C/THRESHOLD  collections K (collected X, uncollectable Y)
 *     permanent / untracked: N objects  B bytes
 *     collector     enabled|disabled, debug flags F, long-lived L (pending P)
 *                   [COLLECTING generation G, phase PH: core taken during a collection (phase PH)]
 *     garbage       N objects in gc.garbage
 *     roots         N (R registered, F from the front end)
 *     tracing       on|off (current B bytes, peak B bytes)
 *     allocator     A arenas in use (...), P pools, K blocks (B bytes); L large objects (B bytes)
 *     checkpoint    "label" (N passed)
 *   warnings (N):   one per line
 *
 * types / sites
 *   types: N types, M objects, B bytes (largest first)
 *        objects         bytes  type       (sites: `file.c:LINE in func()`)
 *     ... and K more (M objects, B bytes)
 *
 * refs OBJ
 *   Type@0xADDR (file.c:LINE)
 *     type T ['name'] [(code fn (file.c:LINE))], B bytes (block K), refcount R, generation G|permanent generation|untracked, flags F
 *     allocated at file.c:LINE in func()
 *     [finalizers: pep442 legacy]
 *     refcount R = H heap references + O roots [+ S stack slots]; 0 unexplained
 *       | ... + U unexplained (a missing decref?)
 *       | refcount R, but H heap references + O roots: OVER-RELEASED by X (an extra decref)
 *       | refcount R is corrupt (S as a signed count), not reconciled: H heap references + O roots + S stack slots point at it
 *       [(N more stack slots point at it: borrowed or stale pointers)]
 *     collector: survives|collectable|uncollectable|freed by cascade|not collected [(cycle N)]
 *     retained: B bytes in N objects | retained: not reachable from any root
 *     referrers (N):
 *       root: KIND 'LABEL'
 *       LABEL  <-  Type@0x... (file.c:LINE)
 *     referents (N):
 *       LABEL  ->  Type@0x... (file.c:LINE)
 *     weak referrers (N): / weak referents (N): same, labels end in " (weak)"
 *   Stack words, registers and locals explain only what heap references and
 *   owning roots leave over (they may be borrowed or stale pointers).
 *
 * cycles
 *   cycles: a full collection would free N objects (B bytes) in G groups[; U objects (B bytes)
 *     are uncollectable (legacy finalizers)][; C more freed by cascade (B bytes)] (K candidates: ...)
 *   cycle|group K: N objects, B bytes[ + H hanging off (B bytes)][ (not a cycle)][  UNCOLLECTABLE: ...]
 *     types: 3 x Node (144 bytes), ...
 *     path: Type@0x... -> LABEL -> Type@0x... -> LABEL -> (back to start)
 *     members:
 *       Type@0x... (file.c:LINE)
 *     hanging off: 1 x bytes (B bytes), ...
 *       Type@0x...[  [freed by cascade|uncollectable]]
 *     finalizers: N PEP 442 to run (M already run), L legacy[ (legacy: uncollectable)]
 *     weakref callbacks that would fire:
 *       weakref@0x... -> Type@0x...: CALLBACK
 *   ... K more groups (--limit 0 lists all)
 *   Collectable = what rc_gc_collect(2) reports as "gc: collectable"; the
 *   cascade = what then dies by refcount; uncollectable = what it leaves in
 *   the legacy set (gc.garbage).
 *
 * garbage
 *   gc.garbage (list@0x...): N objects[, DEBUG_SAVEALL is on]
 *     [i] Type@0x... (file.c:LINE): REASON
 *   reasons (JSON "reason"): legacy-finalizer, reachable-from-legacy, saveall, unknown
 *
 * roots
 *   roots: N roots hold R objects (B bytes); U objects (B bytes) are reachable from no root
 *         retained   objects  root
 *     RETAINED  OBJECTS  KIND 'LABEL' -> Type@0x...
 *     RETAINED  OBJECTS  held only by unexplained references (see leaks)
 *   globals (N):
 *     RETAINED  OBJECTS  globals['key'] -> Type@0x...
 *   closures (N):
 *     closure 'NAME' closure@0x... [(code ...)]: retained B bytes in N objects, held by HOLDER
 *       closure NAME cell 'x' -> Type@0x...[ -> Type@0x... (a shared cell's contents)]: retained B bytes
 *
 * leaks
 *   leaks: N objects hold U references no holder explains; O objects are over-released
 *   unexplained references (a missing decref, or a holder the engine cannot see):
 *      objects    refs       bytes    retained  type at site
 *     N  U  B  R  Type at file.c:LINE in func()
 *         Type@0x... (file.c:LINE): <reconciliation as in refs>[; retains B bytes]
 *   over-released (refcount lower than its holders: an extra decref): same
 *   held through stack slots only: N objects, U references (...):
 *     Type@0x...: <reconciliation>
 *
 * path OBJ
 *   path to Type@0x... (file.c:LINE): ROOT -> LABEL -> LABEL
 *     KIND 'ROOT'  ->  Type@0x...
 *     LABEL  ->  Type@0x...
 *   | path to Type@0x...: no path from any root: REASON
 *   Owning roots are tried first, then stack slots, then unexplained references.
 *
 * retained [OBJ]
 *   retained sizes: R objects (B bytes) reachable from roots; U objects (B bytes) reachable from none
 *         retained   objects        self  object (held by)
 *     RETAINED  OBJECTS  SELF  Type@0x... (HOLDER)
 *   | Type@0x... retains N objects, B bytes; held by HOLDER
 *       types: ...
 *       largest:
 *         BYTES  Type@0x...
 *   HOLDER is the immediate dominator: an object, KIND 'LABEL', "several
 *   roots" or "unexplained references".
 *
 * graph OBJ [--depth D] [--backrefs] | graph --cycle N
 *   Graphviz DOT (digraph refscope { ... }), nodes labelled with type,
 *   address, site, bytes and refcount, coloured by what a collection would
 *   do, edges labelled; --limit N caps the nodes (default 100). With --json:
 *   {"dot": ..., "nodes": [...], "edges": [...]}. --dot is the default and
 *   --png FILE is accepted and ignored: the front end renders the DOT text
 *   with `dot -Tpng`.
 *
 * check
 *   check: ok (N objects, E references, A arenas, P pools[, generation lists])
 *   | check: N problems (N objects, E references checked)
 *       0xADDR  KIND: MESSAGE [Type@0x... (file.c:LINE)]
 *   kinds: type, refcount, flags, site, reference, arena, pool, gc-list, registry
 *
 * diff (rs_heap_diff; options --json --limit N)
 *   diff: +N objects, +B bytes (old: N objects, B bytes; new: N objects, B bytes)
 *   by type: / by site:
 *        objects         bytes         now     bytes now  type|site
 *   born since the snapshot: N objects (B bytes): 3 x Node (...), ...
 *     Type@0x...
 *   died since the snapshot: N objects (B bytes)
 *   (caveat on address reuse)
 */
#include "engine_int.h"

#include <jansson.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 20

/* ---- text buffer -------------------------------------------------------------- */

typedef struct sb {
    char *s;
    size_t n, cap;
} sb;

/* Plain realloc, not rs_grow: the text goes to the caller (rs_free or free). */
static void sb_room(sb *b, size_t need)
{
    if (need <= b->cap)
        return;
    size_t c = b->cap ? b->cap : 256;
    while (c < need)
        c *= 2;
    char *s = realloc(b->s, c);
    if (!s) {
        fprintf(stderr, "refscope engine: out of memory (allocating %zu bytes)\n", c);
        abort();
    }
    b->s = s;
    b->cap = c;
}

static void sb_vprintf(sb *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int need = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (need < 0)
        return;
    sb_room(b, b->n + (size_t)need + 1);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    b->n += (size_t)need;
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

static void sb_puts(sb *b, const char *s)
{
    size_t l = strlen(s);
    sb_room(b, b->n + l + 1);
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static char *sb_take(sb *b)
{
    if (!b->s)
        return rs_xstrdup("");
    return b->s;
}

/* ---- JSON helpers ----------------------------------------------------------------- */

/* A JSON string from bytes of the target: invalid UTF-8 becomes '?'. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *c = rs_xstrdup(s);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
            *p = '?';
    j = json_string(c);
    rs_xfree(c);
    return j ? j : json_string("?");
}

static json_t *jhex(uint64_t a)
{
    char buf[32];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)a);
    return json_string(buf);
}

static json_t *jint(uint64_t v) { return json_integer((json_int_t)v); }
static json_t *jsint(int64_t v) { return json_integer((json_int_t)v); }

static void jset(json_t *o, const char *k, json_t *v) { json_object_set_new(o, k, v ? v : json_null()); }

static json_int_t gi(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *gs(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static bool gb(const json_t *o, const char *k) { return json_is_true(json_object_get(o, k)); }

static json_t *jobj(rs_heap *h, uint32_t i)
{
    char d[512], site[300];
    json_t *o = json_object();
    jset(o, "address", jhex(h->addr[i]));
    jset(o, "type", jstr(rs_obj_type(h, i)->name));
    jset(o, "site", jstr(rs_site_str(h, rs_obj_site(h, i), site, sizeof site)));
    jset(o, "desc", jstr(rs_describe(h, i, d, sizeof d)));
    jset(o, "bytes", jint(rs_bytes(h, i)));
    return o;
}

static const char *desc_of(const json_t *o) { return gs(o, "desc"); }

static json_t *jroot(rs_heap *h, size_t r)
{
    const rs_root *R = &h->roots[r];
    json_t *o = json_object();
    jset(o, "label", jstr(R->label));
    jset(o, "kind", json_string(rs_root_kind_name(R->kind)));
    jset(o, "slot", R->slot ? jhex(R->slot) : json_null());
    jset(o, "counted", json_boolean(R->counted));
    jset(o, "holds", json_boolean(rs_root_holds(h, r)));
    return o;
}

static const char *flag_words(uint32_t info, char *buf, size_t size)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{RC_OBF_TRACKED, "tracked"},  {RC_OBF_FINALIZED, "finalized"},
                 {RC_OBF_GARBAGE, "garbage"},  {RC_OBF_TRACED, "traced"},
                 {RC_OBF_WEAKREFD, "weakrefd"}, {RC_OBF_LARGE, "large"}};
    buf[0] = 0;
    size_t n = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        if (!(info & names[k].bit))
            continue;
        int w = snprintf(buf + n, size - n, "%s%s", n ? "," : "", names[k].name);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
    if (!n)
        snprintf(buf, size, "none");
    return buf;
}

static const char *gc_state_name(unsigned s)
{
    switch (s) {
    case RS_GC_REACHABLE: return "survives";
    case RS_GC_COLLECTABLE: return "collectable";
    case RS_GC_LEGACY: return "uncollectable";
    case RS_GC_CASCADE: return "freed by cascade";
    default: return "not collected";
    }
}

static void add_warnings(rs_heap *h, json_t *o)
{
    json_t *w = json_array();
    size_t n = rs_heap_warning_count(h);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(w, jstr(rs_heap_warning(h, i)));
    jset(o, "warnings", w);
}

/* The load warnings: listed in full by `summary`, one line elsewhere. */
static void text_warnings(sb *b, const json_t *o)
{
    const json_t *w = json_object_get(o, "warnings");
    size_t n = json_array_size(w);
    if (!n)
        return;
    if (strcmp(gs(o, "command"), "summary")) {
        sb_printf(b, "(%zu warning%s while reading the heap: see `summary`)\n", n,
                  n == 1 ? "" : "s");
        return;
    }
    sb_printf(b, "warnings (%zu):\n", n);
    for (size_t i = 0; i < n; i++)
        sb_printf(b, "  %s\n", json_string_value(json_array_get(w, i)));
}

/* ---- the command line --------------------------------------------------------------- */

#define MAX_TOKENS 32

typedef struct cmdline {
    char *buf;
    const char *tok[MAX_TOKENS];
    int ntok;
    const char *name;
    bool json, backrefs, limit_given;
    long limit;
    long depth;
    long cycle;
    const char *png;
    const char *pos[4];
    int npos;
    char err[300];
} cmdline;

/*
 * Words are separated by blanks. A word that starts with a quote (' or ")
 * runs to the same quote followed by a blank or the end, and loses the
 * outer quotes: 'frame #0 main() local 'x'' is one word. Quotes inside a
 * word are literal: globals['cache'] needs no quoting.
 */
static bool tokenize(cmdline *c, const char *line)
{
    c->buf = rs_xstrdup(line ? line : "");
    char *p = c->buf;
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (c->ntok == MAX_TOKENS) {
            snprintf(c->err, sizeof c->err, "too many words on the command line");
            return false;
        }
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            char *end = p;
            while (*end && !(*end == q && (end[1] == 0 || isspace((unsigned char)end[1]))))
                end++;
            if (!*end) {
                snprintf(c->err, sizeof c->err, "unterminated quote");
                return false;
            }
            c->tok[c->ntok++] = p;
            *end = 0;
            p = end + 1;
            continue;
        }
        c->tok[c->ntok++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = 0;
    }
    return true;
}

static bool parse_long(const char *s, long *ret)
{
    if (!s || !*s)
        return false;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0)
        return false;
    *ret = v;
    return true;
}

/* Parse options and positional arguments after the command name. */
static bool parse_options(cmdline *c, int first)
{
    c->limit = DEFAULT_LIMIT;
    c->depth = 2;
    c->cycle = -1;
    for (int i = first; i < c->ntok; i++) {
        const char *t = c->tok[i];
        const char *val = NULL;
        char opt[32];
        if (t[0] == '-' && t[1] == '-') {
            const char *eq = strchr(t, '=');
            size_t l = eq ? (size_t)(eq - t) : strlen(t);
            if (l >= sizeof opt)
                l = sizeof opt - 1;
            memcpy(opt, t, l);
            opt[l] = 0;
            if (eq)
                val = eq + 1;
        } else {
            if (c->npos == (int)(sizeof c->pos / sizeof *c->pos)) {
                snprintf(c->err, sizeof c->err, "%s: too many arguments ('%s')", c->name, t);
                return false;
            }
            c->pos[c->npos++] = t;
            continue;
        }
        bool takes = !strcmp(opt, "--limit") || !strcmp(opt, "--depth") ||
                     !strcmp(opt, "--cycle") || !strcmp(opt, "--png");
        if (takes && !val) {
            if (i + 1 >= c->ntok) {
                snprintf(c->err, sizeof c->err, "%s: %s needs a value", c->name, opt);
                return false;
            }
            val = c->tok[++i];
        }
        if (!strcmp(opt, "--json")) {
            c->json = true;
        } else if (!strcmp(opt, "--backrefs")) {
            c->backrefs = true;
        } else if (!strcmp(opt, "--dot")) {
            /* the default output of graph */
        } else if (!strcmp(opt, "--limit")) {
            if (!parse_long(val, &c->limit)) {
                snprintf(c->err, sizeof c->err, "%s: --limit wants a number >= 0, not '%s'",
                         c->name, val);
                return false;
            }
            c->limit_given = true;
        } else if (!strcmp(opt, "--depth")) {
            if (!parse_long(val, &c->depth) || c->depth > 100) {
                snprintf(c->err, sizeof c->err, "%s: --depth wants a number 0..100, not '%s'",
                         c->name, val);
                return false;
            }
        } else if (!strcmp(opt, "--cycle")) {
            if (!parse_long(val, &c->cycle) || c->cycle < 1) {
                snprintf(c->err, sizeof c->err, "%s: --cycle wants a cycle number >= 1, not '%s'",
                         c->name, val);
                return false;
            }
        } else if (!strcmp(opt, "--png")) {
            c->png = val;
        } else {
            snprintf(c->err, sizeof c->err, "%s: unknown option '%s'", c->name, t);
            return false;
        }
    }
    return true;
}

static size_t lim(const cmdline *c, size_t n)
{
    return c->limit == 0 || (size_t)c->limit > n ? n : (size_t)c->limit;
}

/* ---- naming objects ------------------------------------------------------------------ */

/*
 * OBJ: 0xADDR (an object's start, or an address inside one), or a name: a
 * root's label (registered root name, front-end label), a globals key, or
 * "globals['key']".
 */
static uint32_t resolve_obj(rs_heap *h, const char *s, char *note, size_t notesize, char *err,
                            size_t errsize)
{
    note[0] = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        char *end;
        unsigned long long a = strtoull(s, &end, 16);
        if (*end || end == s + 2) {
            snprintf(err, errsize, "'%s' is not an address", s);
            return RS_NONE;
        }
        uint32_t i = rs_find_object(h, a);
        if (i != RS_NONE)
            return i;
        i = rs_find_containing(h, a);
        if (i != RS_NONE) {
            char d[400];
            snprintf(note, notesize, "0x%llx is inside %s (offset %lld)", a,
                     rs_describe(h, i, d, sizeof d), (long long)(a - h->addr[i]));
            return i;
        }
        snprintf(err, errsize, "no live object at 0x%llx", a);
        return RS_NONE;
    }
    for (size_t r = 0; r < h->nroots; r++)
        if (!strcmp(h->roots[r].label, s))
            return h->roots[r].obj;
    /* globals: "name" or "globals['name']" */
    char key[300];
    const char *k = s;
    size_t sl = strlen(s);
    if (!strncmp(s, "globals['", 9) && sl > 11 && !strcmp(s + sl - 2, "']")) {
        snprintf(key, sizeof key, "%.*s", (int)(sl - 11), s + 9);
        k = key;
    }
    if (h->obj_globals != RS_NONE) {
        uint32_t g = h->obj_globals;
        for (uint32_t e = h->out_off[g]; e < h->out_off[g + 1]; e++) {
            char lab[600];
            rs_edge_label(h, g, rs_edge_lab(h, g, e), false, lab, sizeof lab);
            /* lab is "globals['name']" */
            size_t ll = strlen(lab);
            if (ll > 11 && !strncmp(lab + 9, k, ll - 11) && strlen(k) == ll - 11)
                return h->out_dst[e];
        }
    }
    snprintf(err, errsize, "'%s' names no object (not an address, root or global)", s);
    return RS_NONE;
}

/* Text of a referrer/referent label for an edge index. */
static const char *edge_label(rs_heap *h, uint32_t e, uint32_t src, char *buf, size_t size)
{
    return rs_edge_label(h, src, rs_edge_lab(h, src, e), false, buf, size);
}

/* Objects by type / by site histograms. */
typedef struct hist_row {
    uint32_t key;
    uint64_t count, bytes;
} hist_row;

static int hist_cmp(const void *a, const void *b)
{
    const hist_row *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Histogram of a list of objects by type: rows sorted largest first. */
static json_t *type_histogram(rs_heap *h, const uint32_t *objs, size_t n, size_t maxrows)
{
    hist_row *rows = rs_xcalloc(h->ntypes ? h->ntypes : 1, sizeof *rows);
    for (size_t t = 0; t < h->ntypes; t++)
        rows[t].key = (uint32_t)t;
    for (size_t k = 0; k < n; k++) {
        hist_row *r = &rows[h->tidx[objs[k]]];
        r->count++;
        r->bytes += rs_bytes(h, objs[k]);
    }
    RS_QSORT(rows, h->ntypes, sizeof *rows, hist_cmp);
    json_t *a = json_array();
    for (size_t t = 0; t < h->ntypes && rows[t].count; t++) {
        if (maxrows && t >= maxrows)
            break;
        json_t *o = json_object();
        jset(o, "type", jstr(h->types[rows[t].key].name));
        jset(o, "objects", jint(rows[t].count));
        jset(o, "bytes", jint(rows[t].bytes));
        json_array_append_new(a, o);
    }
    rs_xfree(rows);
    return a;
}

static void text_type_hist(sb *b, const json_t *a)
{
    for (size_t k = 0; k < json_array_size(a); k++) {
        const json_t *r = json_array_get(a, k);
        sb_printf(b, "%s%lld x %s (%lld bytes)", k ? ", " : "", (long long)gi(r, "objects"),
                  gs(r, "type"), (long long)gi(r, "bytes"));
    }
}

/* ---- summary ----------------------------------------------------------------------- */

static const char *debug_flag_words(uint32_t d, char *buf, size_t size)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{RC_DEBUG_STATS, "STATS"},
                 {RC_DEBUG_COLLECTABLE, "COLLECTABLE"},
                 {RC_DEBUG_UNCOLLECTABLE, "UNCOLLECTABLE"},
                 {RC_DEBUG_SAVEALL, "SAVEALL"}};
    size_t n = 0;
    buf[0] = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        if (!(d & names[k].bit))
            continue;
        int w = snprintf(buf + n, size - n, "%s%s", n ? "|" : "", names[k].name);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
    if (!n)
        snprintf(buf, size, "none");
    return buf;
}

static const char *phase_words(uint32_t phase)
{
    static const char *const names[] = {"idle",     "find-unreachable", "legacy", "weakrefs",
                                        "finalize", "resurrect",        "clear"};
    return phase < sizeof names / sizeof *names ? names[phase] : "unknown";
}

static json_t *build_summary(rs_heap *h)
{
    const rc_registry *R = &h->reg;
    uint64_t gen_n[5] = {0}, gen_b[5] = {0}; /* 0..2, permanent, untracked */
    uint64_t total_b = 0;
    for (size_t i = 0; i < h->nobj; i++) {
        int g = rs_obj_tracked(h, (uint32_t)i) ? (int)rs_obj_gen(h, (uint32_t)i) : 4;
        gen_n[g]++;
        gen_b[g] += rs_bytes(h, i);
        total_b += rs_bytes(h, i);
    }
    json_t *o = json_object();
    jset(o, "command", json_string("summary"));
    json_t *reg = json_object();
    jset(reg, "address", jhex(h->regaddr));
    jset(reg, "version", jint(R->version));
    jset(reg, "pid", jint(R->pid));
    jset(reg, "initialized", json_boolean(R->initialized));
    jset(reg, "shutting_down", json_boolean(R->shutting_down));
    jset(reg, "debug_checks", json_boolean(R->debug_checks));
    jset(o, "registry", reg);
    jset(o, "objects", jint(h->nobj));
    jset(o, "bytes", jint(total_b));
    jset(o, "references", jint(h->nedges));
    jset(o, "weak_references", jint(h->nweak));
    json_t *tr = json_object();
    jset(tr, "objects", jint(gen_n[0] + gen_n[1] + gen_n[2] + gen_n[3]));
    jset(tr, "bytes", jint(gen_b[0] + gen_b[1] + gen_b[2] + gen_b[3]));
    jset(o, "tracked", tr);
    json_t *un = json_object();
    jset(un, "objects", jint(gen_n[4]));
    jset(un, "bytes", jint(gen_b[4]));
    jset(o, "untracked", un);
    json_t *gens = json_array();
    for (int g = 0; g < 3; g++) {
        json_t *x = json_object();
        jset(x, "generation", jint((uint64_t)g));
        jset(x, "objects", jint(gen_n[g]));
        jset(x, "bytes", jint(gen_b[g]));
        jset(x, "count", jint(R->gc.generations[g].count));
        jset(x, "threshold", jsint(R->gc.generations[g].threshold));
        jset(x, "collections", jint(R->gc.stats[g].collections));
        jset(x, "collected", jint(R->gc.stats[g].collected));
        jset(x, "uncollectable", jint(R->gc.stats[g].uncollectable));
        json_array_append_new(gens, x);
    }
    jset(o, "generations", gens);
    json_t *perm = json_object();
    jset(perm, "objects", jint(gen_n[3]));
    jset(perm, "bytes", jint(gen_b[3]));
    jset(o, "permanent", perm);
    char buf[128];
    json_t *gc = json_object();
    jset(gc, "enabled", json_boolean(R->gc.enabled));
    jset(gc, "debug", jint(R->gc.debug));
    jset(gc, "debug_flags", json_string(debug_flag_words(R->gc.debug, buf, sizeof buf)));
    jset(gc, "collecting", json_boolean(R->gc.collecting));
    jset(gc, "phase", json_string(phase_words(R->gc.phase)));
    jset(gc, "collecting_generation", jsint(R->gc.collecting_generation));
    jset(gc, "long_lived_total", jint(R->gc.long_lived_total));
    jset(gc, "long_lived_pending", jint(R->gc.long_lived_pending));
    jset(gc, "tracked", jint(R->gc.tracked));
    jset(o, "collector", gc);
    jset(o, "garbage", jint(h->obj_garbage != RS_NONE ? rs_outdeg(h, h->obj_garbage) : 0));
    size_t nreg = 0, nfe = 0;
    for (size_t r = 0; r < h->nroots; r++) {
        if (h->roots[r].kind == RS_ROOT_REGISTERED)
            nreg++;
        else if (h->roots[r].kind != RS_ROOT_RUNTIME)
            nfe++;
    }
    json_t *roots = json_object();
    jset(roots, "total", jint(h->nroots));
    jset(roots, "registered", jint(nreg));
    jset(roots, "front_end", jint(nfe));
    jset(o, "roots", roots);
    jset(o, "types", jint(h->ntypes));
    jset(o, "sites", jint(h->nsites));
    json_t *t = json_object();
    jset(t, "tracing", json_boolean(R->trace.tracing));
    jset(t, "nframes", jint(R->trace.nframes));
    jset(t, "current", jint(R->trace.current));
    jset(t, "peak", jint(R->trace.peak));
    jset(o, "tracing", t);
    json_t *a = json_object();
    jset(a, "arenas_in_use", jint(R->alloc.arenas_in_use));
    jset(a, "arenas_highwater", jint(R->alloc.arenas_highwater));
    jset(a, "arenas_allocated", jint(R->alloc.arenas_allocated));
    jset(a, "arenas_reclaimed", jint(R->alloc.arenas_reclaimed));
    jset(a, "pools_in_use", jint(R->alloc.pools_in_use));
    jset(a, "blocks_in_use", jint(R->alloc.blocks_in_use));
    jset(a, "small_bytes", jint(R->alloc.small_bytes));
    jset(a, "large_count", jint(R->alloc.large_count));
    jset(a, "large_bytes", jint(R->alloc.large_bytes));
    jset(a, "arenas_scanned", jint(h->arenas_scanned));
    jset(a, "pools_scanned", jint(h->pools_scanned));
    jset(o, "allocator", a);
    json_t *cp = json_object();
    const char *label = rs_target_string(h, (uint64_t)(uintptr_t)R->last_checkpoint);
    jset(cp, "label", label ? jstr(label) : json_null());
    jset(cp, "count", jint(R->checkpoints));
    jset(o, "checkpoint", cp);
    json_t *eng = json_object();
    jset(eng, "reads", jint(h->nreads));
    jset(eng, "bytes_read", jint(h->bytes_read));
    jset(eng, "load_seconds", json_real(h->load_seconds));
    jset(o, "engine", eng);
    add_warnings(h, o);
    return o;
}

static void text_summary(sb *b, const json_t *o)
{
    const json_t *reg = json_object_get(o, "registry");
    sb_printf(b, "heap summary (registry %s, version %lld, pid %lld)\n", gs(reg, "address"),
              (long long)gi(reg, "version"), (long long)gi(reg, "pid"));
    sb_printf(b, "  objects       %lld (%lld bytes); %lld tracked, %lld untracked; %lld references\n",
              (long long)gi(o, "objects"), (long long)gi(o, "bytes"),
              (long long)gi(json_object_get(o, "tracked"), "objects"),
              (long long)gi(json_object_get(o, "untracked"), "objects"),
              (long long)gi(o, "references"));
    const json_t *gens = json_object_get(o, "generations");
    for (size_t g = 0; g < json_array_size(gens); g++) {
        const json_t *x = json_array_get(gens, g);
        sb_printf(b, "  generation %zu  %10lld objects  %12lld bytes  count %lld/%lld  "
                     "collections %lld (collected %lld, uncollectable %lld)\n",
                  g, (long long)gi(x, "objects"), (long long)gi(x, "bytes"),
                  (long long)gi(x, "count"), (long long)gi(x, "threshold"),
                  (long long)gi(x, "collections"), (long long)gi(x, "collected"),
                  (long long)gi(x, "uncollectable"));
    }
    const json_t *p = json_object_get(o, "permanent"), *u = json_object_get(o, "untracked");
    sb_printf(b, "  permanent     %10lld objects  %12lld bytes\n", (long long)gi(p, "objects"),
              (long long)gi(p, "bytes"));
    sb_printf(b, "  untracked     %10lld objects  %12lld bytes\n", (long long)gi(u, "objects"),
              (long long)gi(u, "bytes"));
    const json_t *gc = json_object_get(o, "collector");
    sb_printf(b, "  collector     %s, debug flags %s, long-lived %lld (pending %lld)\n",
              gb(gc, "enabled") ? "enabled" : "disabled", gs(gc, "debug_flags"),
              (long long)gi(gc, "long_lived_total"), (long long)gi(gc, "long_lived_pending"));
    if (gb(gc, "collecting"))
        sb_printf(b, "                COLLECTING generation %lld, phase %s: core taken during a "
                     "collection (phase %s)\n",
                  (long long)gi(gc, "collecting_generation"), gs(gc, "phase"), gs(gc, "phase"));
    sb_printf(b, "  garbage       %lld objects in gc.garbage\n", (long long)gi(o, "garbage"));
    const json_t *r = json_object_get(o, "roots");
    sb_printf(b, "  roots         %lld (%lld registered, %lld from the front end)\n",
              (long long)gi(r, "total"), (long long)gi(r, "registered"),
              (long long)gi(r, "front_end"));
    const json_t *t = json_object_get(o, "tracing");
    sb_printf(b, "  tracing       %s (current %lld bytes, peak %lld bytes)\n",
              gb(t, "tracing") ? "on" : "off", (long long)gi(t, "current"),
              (long long)gi(t, "peak"));
    const json_t *a = json_object_get(o, "allocator");
    sb_printf(b, "  allocator     %lld arenas in use (high water %lld; %lld allocated, %lld "
                 "reclaimed), %lld pools, %lld blocks (%lld bytes); %lld large objects (%lld "
                 "bytes)\n",
              (long long)gi(a, "arenas_in_use"), (long long)gi(a, "arenas_highwater"),
              (long long)gi(a, "arenas_allocated"), (long long)gi(a, "arenas_reclaimed"),
              (long long)gi(a, "pools_in_use"), (long long)gi(a, "blocks_in_use"),
              (long long)gi(a, "small_bytes"), (long long)gi(a, "large_count"),
              (long long)gi(a, "large_bytes"));
    const json_t *cp = json_object_get(o, "checkpoint");
    if (gi(cp, "count"))
        sb_printf(b, "  checkpoint    \"%s\" (%lld passed)\n", gs(cp, "label"),
                  (long long)gi(cp, "count"));
    text_warnings(b, o);
}

/* ---- types, sites ------------------------------------------------------------------------ */

static json_t *build_hist(rs_heap *h, const cmdline *c, bool by_site)
{
    size_t nkeys = by_site ? (h->nsites ? h->nsites : 1) : h->ntypes;
    hist_row *rows = rs_xcalloc(nkeys ? nkeys : 1, sizeof *rows);
    for (size_t k = 0; k < nkeys; k++)
        rows[k].key = (uint32_t)k;
    uint64_t tb = 0;
    for (size_t i = 0; i < h->nobj; i++) {
        uint32_t k = by_site ? rs_obj_site(h, (uint32_t)i) : h->tidx[i];
        if (k >= nkeys)
            k = 0; /* an out-of-range site id counts as "unknown" */
        rows[k].count++;
        rows[k].bytes += rs_bytes(h, i);
        tb += rs_bytes(h, i);
    }
    RS_QSORT(rows, nkeys, sizeof *rows, hist_cmp);
    size_t used = 0;
    while (used < nkeys && rows[used].count)
        used++;
    size_t show = lim(c, used);
    json_t *o = json_object();
    jset(o, "command", json_string(by_site ? "sites" : "types"));
    json_t *tot = json_object();
    jset(tot, by_site ? "sites" : "types", jint(used));
    jset(tot, "objects", jint(h->nobj));
    jset(tot, "bytes", jint(tb));
    jset(o, "total", tot);
    json_t *a = json_array();
    for (size_t k = 0; k < show; k++) {
        json_t *r = json_object();
        if (by_site) {
            const rs_site *s = rs_get_site(h, rows[k].key);
            char buf[400];
            jset(r, "site", jstr(rs_site_str(h, rows[k].key, buf, sizeof buf)));
            jset(r, "file", s ? jstr(s->file) : json_null());
            jset(r, "line", s ? jint(s->line) : json_null());
            jset(r, "function", s ? jstr(s->func) : json_null());
        } else {
            jset(r, "type", jstr(h->types[rows[k].key].name));
            jset(r, "type_address", jhex(h->types[rows[k].key].addr));
        }
        jset(r, "objects", jint(rows[k].count));
        jset(r, "bytes", jint(rows[k].bytes));
        json_array_append_new(a, r);
    }
    jset(o, by_site ? "sites" : "types", a);
    uint64_t oc = 0, ob = 0;
    for (size_t k = show; k < used; k++) {
        oc += rows[k].count;
        ob += rows[k].bytes;
    }
    json_t *om = json_object();
    jset(om, "rows", jint(used - show));
    jset(om, "objects", jint(oc));
    jset(om, "bytes", jint(ob));
    jset(o, "omitted", om);
    rs_xfree(rows);
    add_warnings(h, o);
    return o;
}

static void text_hist(sb *b, const json_t *o)
{
    bool by_site = !strcmp(gs(o, "command"), "sites");
    const json_t *tot = json_object_get(o, "total");
    sb_printf(b, "%s: %lld %s, %lld objects, %lld bytes (largest first)\n", gs(o, "command"),
              (long long)gi(tot, by_site ? "sites" : "types"), by_site ? "sites" : "types",
              (long long)gi(tot, "objects"), (long long)gi(tot, "bytes"));
    sb_printf(b, "  %10s  %12s  %s\n", "objects", "bytes", by_site ? "site" : "type");
    const json_t *a = json_object_get(o, by_site ? "sites" : "types");
    for (size_t k = 0; k < json_array_size(a); k++) {
        const json_t *r = json_array_get(a, k);
        if (by_site && json_is_string(json_object_get(r, "function")))
            sb_printf(b, "  %10lld  %12lld  %s in %s()\n", (long long)gi(r, "objects"),
                      (long long)gi(r, "bytes"), gs(r, "site"), gs(r, "function"));
        else
            sb_printf(b, "  %10lld  %12lld  %s\n", (long long)gi(r, "objects"),
                      (long long)gi(r, "bytes"), gs(r, by_site ? "site" : "type"));
    }
    const json_t *om = json_object_get(o, "omitted");
    if (gi(om, "rows"))
        sb_printf(b, "  ... and %lld more (%lld objects, %lld bytes)\n", (long long)gi(om, "rows"),
                  (long long)gi(om, "objects"), (long long)gi(om, "bytes"));
    text_warnings(b, o);
}

/* ---- refs ---------------------------------------------------------------------------------- */

/* What explains an object's refcount (see rs_unexplained): heap edges,
 * owning roots, and stack slots (which explain at most the rest). */
static json_t *jreconcile(rs_heap *h, uint32_t i)
{
    rs_rootcount held = rs_rootref(h, i);
    uint64_t heap = rs_indeg(h, i), roots = held.roots, slots = held.slots;
    int64_t excess = (int64_t)h->refcnt[i] - (int64_t)heap - (int64_t)roots;
    uint64_t stack = excess > 0 ? ((uint64_t)excess < slots ? (uint64_t)excess : slots) : 0;
    json_t *o = json_object();
    jset(o, "refcount", jint(h->refcnt[i]));
    jset(o, "heap", jint(heap));
    jset(o, "roots", jint(roots));
    jset(o, "stack", jint(stack));
    jset(o, "stack_slots", jint(slots));
    jset(o, "explained", jint(heap + roots + stack));
    jset(o, "unexplained", jsint(rs_unexplained(h)[i]));
    /* 2^31 and up: no real count gets there; rs_unexplained leaves it out */
    jset(o, "corrupt", json_boolean(h->refcnt[i] >= 0x80000000u));
    return o;
}

static json_t *jobj_full(rs_heap *h, uint32_t i)
{
    json_t *o = jobj(h, i);
    const rs_type *t = rs_obj_type(h, i);
    const rs_site *s = rs_get_site(h, rs_obj_site(h, i));
    char buf[200];
    jset(o, "function", s ? jstr(s->func) : json_null());
    jset(o, "block", jint(rs_blk(h, i)));
    jset(o, "refcount", jint(h->refcnt[i]));
    jset(o, "tracked", json_boolean(rs_obj_tracked(h, i)));
    if (rs_obj_tracked(h, i)) {
        unsigned g = rs_obj_gen(h, i);
        jset(o, "generation", g == RC_GEN_PERMANENT ? json_string("permanent") : jint(g));
    } else {
        jset(o, "generation", json_null());
    }
    jset(o, "flags", json_string(flag_words(h->info[i], buf, sizeof buf)));
    jset(o, "type_address", jhex(t->addr));
    const char *inst = rs_instance_name(h, i);
    jset(o, "name", inst ? jstr(inst) : json_null());
    char code[300];
    const char *cd = rs_closure_code(h, i, code, sizeof code);
    if (cd)
        jset(o, "code", jstr(cd));
    json_t *fin = json_array();
    if (t->finalize)
        json_array_append_new(fin, json_string("pep442"));
    if (t->legacy_del)
        json_array_append_new(fin, json_string("legacy"));
    jset(o, "finalizers", fin);
    return o;
}

static json_t *build_refs(rs_heap *h, const cmdline *c, uint32_t i, const char *note)
{
    /* both analyses: at once (two threads on a large heap) */
    rs_heap_analyze(h, RS_ANALYSIS_COLLECTOR | RS_ANALYSIS_DOMINATORS);
    json_t *o = json_object();
    jset(o, "command", json_string("refs"));
    if (note[0])
        jset(o, "note", jstr(note));
    jset(o, "object", jobj_full(h, i));
    jset(o, "reconciliation", jreconcile(h, i));
    const rs_gc_result *G = rs_gc_analyze(h);
    json_t *col = json_object();
    jset(col, "state", json_string(gc_state_name(G->state[i])));
    jset(col, "cycle", G->group[i] != RS_NONE ? jint(rs_group_id(G, &G->groups[G->group[i]])) : json_null());
    jset(o, "collector", col);
    const rs_dom_result *D = rs_dominators(h);
    json_t *ret = json_object();
    bool reach = D->idom[i] != RS_NONE;
    jset(ret, "reachable", json_boolean(reach));
    jset(ret, "bytes", jint(reach ? D->retained[i] : 0));
    jset(ret, "objects", jint(reach ? D->rcount[i] : 0));
    jset(o, "retained", ret);

    char lab[600];
    json_t *rr = json_array();
    size_t total = 0, show = lim(c, SIZE_MAX);
    for (size_t r = 0; r < h->nroots; r++) {
        if (h->roots[r].obj != i)
            continue;
        if (total++ < show) {
            json_t *x = json_object();
            jset(x, "root", jroot(h, r));
            jset(x, "label", jstr(h->roots[r].label));
            json_array_append_new(rr, x);
        }
    }
    /* in_src lists a referrer once per edge to i, in the order of its
     * edges (heap.c): its next edge to i comes after the previous one */
    uint32_t prev = RS_NONE, e = 0;
    rs_in_edges(h);
    for (uint32_t k = h->in_off[i]; k < h->in_off[i + 1]; k++) {
        if (total++ >= show)
            continue;
        uint32_t s = h->in_src[k];
        e = s == prev ? e + 1 : h->out_off[s];
        while (e + 1 < h->out_off[s + 1] && h->out_dst[e] != i)
            e++;
        prev = s;
        json_t *x = json_object();
        jset(x, "label", jstr(edge_label(h, e, s, lab, sizeof lab)));
        jset(x, "object", jobj(h, s));
        json_array_append_new(rr, x);
    }
    jset(o, "referrers", rr);
    jset(o, "referrers_total", jint(total));
    json_t *re = json_array();
    uint32_t nout = rs_outdeg(h, i);
    for (uint32_t k = 0; k < nout && k < show; k++) {
        uint32_t e = h->out_off[i] + k;
        json_t *x = json_object();
        jset(x, "label", jstr(edge_label(h, e, i, lab, sizeof lab)));
        jset(x, "object", jobj(h, h->out_dst[e]));
        json_array_append_new(re, x);
    }
    jset(o, "referents", re);
    jset(o, "referents_total", jint(nout));
    json_t *wr = json_array(), *wo = json_array();
    for (size_t k = 0; k < h->nweak; k++) {
        const rs_weakedge *w = &h->weak[k];
        if (w->dst == i && json_array_size(wr) < show) {
            json_t *x = json_object();
            jset(x, "label", jstr(rs_edge_label(h, w->src, w->lab, true, lab, sizeof lab)));
            jset(x, "object", jobj(h, w->src));
            json_array_append_new(wr, x);
        }
        if (w->src == i && json_array_size(wo) < show) {
            json_t *x = json_object();
            jset(x, "label", jstr(rs_edge_label(h, w->src, w->lab, true, lab, sizeof lab)));
            jset(x, "object", jobj(h, w->dst));
            json_array_append_new(wo, x);
        }
    }
    jset(o, "weak_referrers", wr);
    jset(o, "weak_referents", wo);
    add_warnings(h, o);
    return o;
}

static void text_reconcile(sb *b, const json_t *r)
{
    long long u = (long long)gi(r, "unexplained"), st = (long long)gi(r, "stack"),
              slots = (long long)gi(r, "stack_slots");
    if (gb(r, "corrupt")) {
        long long rc = (long long)gi(r, "refcount");
        sb_printf(b, "refcount %lld is corrupt (%lld as a signed count), not reconciled: %lld heap "
                     "references + %lld roots + %lld stack slots point at it",
                  rc, (long long)(int32_t)(uint32_t)rc, (long long)gi(r, "heap"),
                  (long long)gi(r, "roots"), slots);
        return;
    }
    if (u < 0) {
        sb_printf(b, "refcount %lld, but %lld heap references + %lld roots: OVER-RELEASED by %lld "
                     "(an extra decref)",
                  (long long)gi(r, "refcount"), (long long)gi(r, "heap"),
                  (long long)gi(r, "roots"), -u);
    } else {
        sb_printf(b, "refcount %lld = %lld heap references + %lld roots", (long long)gi(r, "refcount"),
                  (long long)gi(r, "heap"), (long long)gi(r, "roots"));
        if (st)
            sb_printf(b, " + %lld stack slots", st);
        if (u > 0)
            sb_printf(b, " + %lld unexplained (a missing decref?)", u);
        else
            sb_puts(b, "; 0 unexplained");
    }
    if (slots > st)
        sb_printf(b, " (%lld more stack slots point at it: borrowed or stale pointers)", slots - st);
}

static void text_refs(sb *b, const json_t *o)
{
    if (json_is_string(json_object_get(o, "note")))
        sb_printf(b, "(%s)\n", gs(o, "note"));
    const json_t *ob = json_object_get(o, "object");
    sb_printf(b, "%s\n", desc_of(ob));
    const json_t *g = json_object_get(ob, "generation");
    char gen[32];
    if (json_is_integer(g))
        snprintf(gen, sizeof gen, "generation %lld", (long long)json_integer_value(g));
    else if (json_is_string(g))
        snprintf(gen, sizeof gen, "permanent generation");
    else
        snprintf(gen, sizeof gen, "untracked");
    sb_printf(b, "  type %s", gs(ob, "type"));
    if (json_is_string(json_object_get(ob, "name")))
        sb_printf(b, " '%s'", gs(ob, "name"));
    if (json_is_string(json_object_get(ob, "code")))
        sb_printf(b, " (code %s)", gs(ob, "code"));
    sb_printf(b, ", %lld bytes (block %lld), refcount %lld, %s, flags %s\n",
              (long long)gi(ob, "bytes"), (long long)gi(ob, "block"),
              (long long)gi(ob, "refcount"), gen, gs(ob, "flags"));
    if (json_is_string(json_object_get(ob, "function")))
        sb_printf(b, "  allocated at %s in %s()\n", gs(ob, "site"), gs(ob, "function"));
    else
        sb_printf(b, "  allocated at %s\n", gs(ob, "site"));
    const json_t *fin = json_object_get(ob, "finalizers");
    if (json_array_size(fin)) {
        sb_puts(b, "  finalizers:");
        for (size_t k = 0; k < json_array_size(fin); k++)
            sb_printf(b, " %s", json_string_value(json_array_get(fin, k)));
        sb_puts(b, "\n");
    }
    sb_puts(b, "  ");
    text_reconcile(b, json_object_get(o, "reconciliation"));
    sb_puts(b, "\n");
    const json_t *col = json_object_get(o, "collector");
    sb_printf(b, "  collector: %s", gs(col, "state"));
    if (json_is_integer(json_object_get(col, "cycle")))
        sb_printf(b, " (cycle %lld)", (long long)gi(col, "cycle"));
    sb_puts(b, "\n");
    const json_t *ret = json_object_get(o, "retained");
    if (gb(ret, "reachable"))
        sb_printf(b, "  retained: %lld bytes in %lld objects\n", (long long)gi(ret, "bytes"),
                  (long long)gi(ret, "objects"));
    else
        sb_puts(b, "  retained: not reachable from any root\n");
    const json_t *rr = json_object_get(o, "referrers");
    sb_printf(b, "  referrers (%lld):\n", (long long)gi(o, "referrers_total"));
    for (size_t k = 0; k < json_array_size(rr); k++) {
        const json_t *x = json_array_get(rr, k);
        const json_t *root = json_object_get(x, "root");
        if (root)
            sb_printf(b, "    root: %s '%s'%s\n", gs(root, "kind"), gs(root, "label"),
                      !gb(root, "counted") ? " (same slot as another root)"
                      : !gb(root, "holds") ? " (not needed by the refcount: borrowed or stale)"
                                           : "");
        else
            sb_printf(b, "    %s  <-  %s\n", gs(x, "label"), desc_of(json_object_get(x, "object")));
    }
    if ((size_t)gi(o, "referrers_total") > json_array_size(rr))
        sb_printf(b, "    ... %lld more\n",
                  (long long)((size_t)gi(o, "referrers_total") - json_array_size(rr)));
    const json_t *re = json_object_get(o, "referents");
    sb_printf(b, "  referents (%lld):\n", (long long)gi(o, "referents_total"));
    for (size_t k = 0; k < json_array_size(re); k++) {
        const json_t *x = json_array_get(re, k);
        sb_printf(b, "    %s  ->  %s\n", gs(x, "label"), desc_of(json_object_get(x, "object")));
    }
    if ((size_t)gi(o, "referents_total") > json_array_size(re))
        sb_printf(b, "    ... %lld more\n",
                  (long long)((size_t)gi(o, "referents_total") - json_array_size(re)));
    const json_t *wr = json_object_get(o, "weak_referrers");
    if (json_array_size(wr)) {
        sb_printf(b, "  weak referrers (%zu):\n", json_array_size(wr));
        for (size_t k = 0; k < json_array_size(wr); k++) {
            const json_t *x = json_array_get(wr, k);
            sb_printf(b, "    %s  <-  %s\n", gs(x, "label"), desc_of(json_object_get(x, "object")));
        }
    }
    const json_t *wo = json_object_get(o, "weak_referents");
    if (json_array_size(wo)) {
        sb_printf(b, "  weak referents (%zu):\n", json_array_size(wo));
        for (size_t k = 0; k < json_array_size(wo); k++) {
            const json_t *x = json_array_get(wo, k);
            sb_printf(b, "    %s  ->  %s\n", gs(x, "label"), desc_of(json_object_get(x, "object")));
        }
    }
    text_warnings(b, o);
}

/* ---- cycles ------------------------------------------------------------------------------- */

static json_t *jpath_edges(rs_heap *h, const uint32_t *edges, size_t n, uint32_t start)
{
    json_t *a = json_array();
    char lab[600];
    uint32_t from = start;
    for (size_t k = 0; k < n; k++) {
        uint32_t e = edges[k], to = h->out_dst[e];
        json_t *x = json_object();
        jset(x, "from", jobj(h, from));
        jset(x, "label", jstr(edge_label(h, e, from, lab, sizeof lab)));
        jset(x, "to", jobj(h, to));
        json_array_append_new(a, x);
        from = to;
    }
    return a;
}

static json_t *jcallback(rs_heap *h, const rc_weakref *wr)
{
    json_t *o = json_object();
    uint64_t cb = (uint64_t)(uintptr_t)wr->wr_callback;
    uint64_t ccb = (uint64_t)(uintptr_t)wr->wr_ccallback;
    char d[600];
    if (cb) {
        uint32_t ci = rs_find_object(h, cb);
        if (ci != RS_NONE) {
            const char *nm = rs_instance_name(h, ci);
            char base[500];
            rs_describe(h, ci, base, sizeof base);
            if (nm)
                snprintf(d, sizeof d, "%s '%s'", base, nm);
            else
                snprintf(d, sizeof d, "%s", base);
            jset(o, "callback", jobj(h, ci));
        } else {
            snprintf(d, sizeof d, "callback at 0x%llx (no live object)", (unsigned long long)cb);
        }
    } else if (ccb) {
        char sym[256] = "";
        if (h->symbolize && h->symbolize(h->symbolize_ctx, ccb, sym, sizeof sym) == 0 && sym[0])
            snprintf(d, sizeof d, "C callback %s", sym);
        else
            snprintf(d, sizeof d, "C callback 0x%llx (WeakValueDictionary, WeakSet or finalize)",
                     (unsigned long long)ccb);
        jset(o, "c_callback", jhex(ccb));
    } else {
        snprintf(d, sizeof d, "no callback");
    }
    jset(o, "desc", jstr(d));
    return o;
}

static json_t *build_cycles(rs_heap *h, const cmdline *c)
{
    const rs_gc_result *G = rs_gc_analyze(h);
    json_t *o = json_object();
    jset(o, "command", json_string("cycles"));
    jset(o, "collecting", json_boolean(h->reg.gc.collecting));
    if (h->reg.gc.collecting)
        jset(o, "phase", json_string(phase_words(h->reg.gc.phase)));
    jset(o, "candidates", jint(G->n_candidates));
    json_t *x = json_object();
    jset(x, "objects", jint(G->n_collectable));
    jset(x, "bytes", jint(G->b_collectable));
    jset(o, "collectable", x);
    x = json_object();
    jset(x, "objects", jint(G->n_legacy));
    jset(x, "bytes", jint(G->b_legacy));
    jset(o, "uncollectable", x);
    x = json_object();
    jset(x, "objects", jint(G->n_cascade));
    jset(x, "bytes", jint(G->b_cascade));
    jset(o, "cascade", x);
    size_t ncyc = 0;
    for (size_t g = 0; g < G->ngroups; g++)
        ncyc += G->groups[g].is_cycle;
    jset(o, "groups_total", jint(G->ngroups));
    jset(o, "cycles_total", jint(ncyc));

    size_t show = lim(c, G->ngroups);
    /* weakref callbacks that would fire, by group */
    json_t **wcb = rs_xcalloc(show ? show : 1, sizeof *wcb);
    for (size_t g = 0; g < show; g++)
        wcb[g] = json_array();
    for (size_t k = 0; k < h->nweak; k++) {
        const rs_weakedge *w = &h->weak[k];
        unsigned ds = G->state[w->dst], ss = G->state[w->src];
        if (ds != RS_GC_COLLECTABLE && ds != RS_GC_CASCADE)
            continue;
        /* gc.c's handle_weakrefs skips the callbacks of weakrefs that are
         * collectable themselves; a weakref that dies later, by refcount,
         * is still alive then. At a refcount death (the cascade) only live
         * weakrefs call back. */
        if (!rs_obj_type(h, w->src)->weakref || ss == RS_GC_COLLECTABLE ||
            (ds == RS_GC_CASCADE && ss == RS_GC_CASCADE))
            continue;
        uint32_t g = G->group[w->dst];
        if (g == RS_NONE || g >= show)
            continue;
        rc_weakref wr;
        if (!rs_read_weakref(h, w->src, &wr) || (!wr.wr_callback && !wr.wr_ccallback))
            continue;
        json_t *e = json_object();
        jset(e, "weakref", jobj(h, w->src));
        jset(e, "target", jobj(h, w->dst));
        jset(e, "callback", jcallback(h, &wr));
        jset(e, "when", json_string(ds == RS_GC_COLLECTABLE ? "collector" : "cascade"));
        json_array_append_new(wcb[g], e);
    }

    json_t *arr = json_array();
    for (size_t g = 0; g < show; g++) {
        const rs_group *R = &G->groups[g];
        const uint32_t *members = rs_group_members(G, R), *hanging = rs_group_hang(G, R);
        json_t *y = json_object();
        jset(y, "id", jint(rs_group_id(G, R)));
        jset(y, "is_cycle", json_boolean(R->is_cycle));
        jset(y, "uncollectable", json_boolean(R->uncollectable));
        jset(y, "objects", jint(R->nmembers));
        jset(y, "bytes", jint(R->bytes));
        jset(y, "hanging_objects", jint(R->nhang));
        jset(y, "hanging_bytes", jint(R->hang_bytes));
        jset(y, "types", type_histogram(h, members, R->nmembers, 0));
        size_t nm = lim(c, R->nmembers);
        json_t *mem = json_array();
        for (size_t k = 0; k < nm; k++)
            json_array_append_new(mem, jobj(h, members[k]));
        jset(y, "members", mem);
        jset(y, "members_omitted", jint(R->nmembers - nm));
        if (R->is_cycle) {
            size_t plen = 0;
            uint32_t *p = rs_cycle_path(h, members, R->nmembers, &plen);
            jset(y, "path", jpath_edges(h, p, plen > 64 ? 64 : plen, members[0]));
            jset(y, "path_length", jint(plen));
            rs_xfree(p);
        }
        size_t nh = lim(c, R->nhang);
        json_t *hang = json_array();
        for (size_t k = 0; k < nh; k++) {
            uint32_t v = hanging[k];
            json_t *z = jobj(h, v);
            jset(z, "state", json_string(gc_state_name(G->state[v])));
            jset(z, "tracked", json_boolean(rs_obj_tracked(h, v)));
            json_array_append_new(hang, z);
        }
        jset(y, "hanging_off", hang);
        jset(y, "hanging_omitted", jint(R->nhang - nh));
        jset(y, "hanging_types", type_histogram(h, hanging, R->nhang, 10));
        uint64_t pep = 0, pep_done = 0, legacy = 0;
        for (int pass = 0; pass < 2; pass++) {
            const uint32_t *list = pass ? hanging : members;
            size_t n = pass ? R->nhang : R->nmembers;
            for (size_t k = 0; k < n; k++) {
                const rs_type *t = rs_obj_type(h, list[k]);
                if (t->finalize) {
                    if (h->info[list[k]] & RC_OBF_FINALIZED)
                        pep_done++;
                    else
                        pep++;
                }
                if (t->legacy_del)
                    legacy++;
            }
        }
        json_t *fin = json_object();
        jset(fin, "pep442", jint(pep));
        jset(fin, "pep442_done", jint(pep_done));
        jset(fin, "legacy", jint(legacy));
        jset(y, "finalizers", fin);
        jset(y, "weakref_callbacks", wcb[g]);
        json_array_append_new(arr, y);
    }
    rs_xfree(wcb);
    jset(o, "cycles", arr);
    jset(o, "groups_omitted", jint(G->ngroups - show));
    add_warnings(h, o);
    return o;
}

static void text_path(sb *b, const json_t *path, long long total)
{
    for (size_t k = 0; k < json_array_size(path); k++) {
        const json_t *x = json_array_get(path, k);
        if (k == 0)
            sb_printf(b, "%s", desc_of(json_object_get(x, "from")));
        sb_printf(b, " -> %s -> ", gs(x, "label"));
        if (k + 1 == json_array_size(path) && (long long)(k + 1) == total)
            sb_puts(b, "(back to start)");
        else
            sb_printf(b, "%s", desc_of(json_object_get(x, "to")));
    }
    if ((long long)json_array_size(path) < total)
        sb_printf(b, " ... (%lld steps in all)", total);
}

static void text_cycles(sb *b, const json_t *o)
{
    const json_t *col = json_object_get(o, "collectable"), *unc = json_object_get(o, "uncollectable"),
                 *cas = json_object_get(o, "cascade");
    if (gb(o, "collecting"))
        sb_printf(b, "note: core taken during a collection (phase %s): the answer reflects the "
                     "counts as they were then\n",
                  gs(o, "phase"));
    sb_printf(b, "cycles: a full collection would free %lld objects (%lld bytes) in %lld groups",
              (long long)gi(col, "objects"), (long long)gi(col, "bytes"),
              (long long)gi(o, "groups_total"));
    if (gi(unc, "objects"))
        sb_printf(b, "; %lld objects (%lld bytes) are uncollectable (legacy finalizers)",
                  (long long)gi(unc, "objects"), (long long)gi(unc, "bytes"));
    if (gi(cas, "objects"))
        sb_printf(b, "; %lld more freed by cascade (%lld bytes)", (long long)gi(cas, "objects"),
                  (long long)gi(cas, "bytes"));
    sb_printf(b, " (%lld candidates: tracked objects of generations 0-2)\n",
              (long long)gi(o, "candidates"));
    const json_t *arr = json_object_get(o, "cycles");
    for (size_t g = 0; g < json_array_size(arr); g++) {
        const json_t *y = json_array_get(arr, g);
        sb_printf(b, "%s %lld: %lld objects, %lld bytes", gb(y, "is_cycle") ? "cycle" : "group",
                  (long long)gi(y, "id"), (long long)gi(y, "objects"), (long long)gi(y, "bytes"));
        if (gi(y, "hanging_objects"))
            sb_printf(b, " + %lld hanging off (%lld bytes)", (long long)gi(y, "hanging_objects"),
                      (long long)gi(y, "hanging_bytes"));
        if (!gb(y, "is_cycle"))
            sb_puts(b, " (not a cycle)");
        if (gb(y, "uncollectable"))
            sb_puts(b, "  UNCOLLECTABLE: legacy finalizer, goes to gc.garbage");
        sb_puts(b, "\n  types: ");
        text_type_hist(b, json_object_get(y, "types"));
        sb_puts(b, "\n");
        const json_t *path = json_object_get(y, "path");
        if (path) {
            sb_puts(b, "  path: ");
            text_path(b, path, (long long)gi(y, "path_length"));
            sb_puts(b, "\n");
        }
        const json_t *mem = json_object_get(y, "members");
        sb_puts(b, "  members:\n");
        for (size_t k = 0; k < json_array_size(mem); k++)
            sb_printf(b, "    %s\n", desc_of(json_array_get(mem, k)));
        if (gi(y, "members_omitted"))
            sb_printf(b, "    ... %lld more\n", (long long)gi(y, "members_omitted"));
        const json_t *hang = json_object_get(y, "hanging_off");
        if (json_array_size(hang)) {
            sb_puts(b, "  hanging off: ");
            text_type_hist(b, json_object_get(y, "hanging_types"));
            sb_puts(b, "\n");
            for (size_t k = 0; k < json_array_size(hang); k++) {
                const json_t *z = json_array_get(hang, k);
                const char *st = gs(z, "state");
                sb_printf(b, "    %s%s%s%s\n", desc_of(z), strcmp(st, "collectable") ? "  [" : "",
                          strcmp(st, "collectable") ? st : "", strcmp(st, "collectable") ? "]" : "");
            }
            if (gi(y, "hanging_omitted"))
                sb_printf(b, "    ... %lld more\n", (long long)gi(y, "hanging_omitted"));
        }
        const json_t *fin = json_object_get(y, "finalizers");
        if (gi(fin, "pep442") || gi(fin, "pep442_done") || gi(fin, "legacy"))
            sb_printf(b, "  finalizers: %lld PEP 442 to run (%lld already run), %lld legacy%s\n",
                      (long long)gi(fin, "pep442"), (long long)gi(fin, "pep442_done"),
                      (long long)gi(fin, "legacy"),
                      gi(fin, "legacy") ? " (legacy: uncollectable)" : "");
        const json_t *wcb = json_object_get(y, "weakref_callbacks");
        if (json_array_size(wcb)) {
            sb_puts(b, "  weakref callbacks that would fire:\n");
            for (size_t k = 0; k < json_array_size(wcb); k++) {
                const json_t *e = json_array_get(wcb, k);
                sb_printf(b, "    %s -> %s: %s\n", desc_of(json_object_get(e, "weakref")),
                          desc_of(json_object_get(e, "target")),
                          gs(json_object_get(e, "callback"), "desc"));
            }
        }
    }
    if (gi(o, "groups_omitted"))
        sb_printf(b, "... %lld more groups (--limit 0 lists all)\n",
                  (long long)gi(o, "groups_omitted"));
    text_warnings(b, o);
}

/* ---- garbage ---------------------------------------------------------------------------- */

static json_t *build_garbage(rs_heap *h, const cmdline *c)
{
    json_t *o = json_object();
    jset(o, "command", json_string("garbage"));
    bool saveall = (h->reg.gc.debug & RC_DEBUG_SAVEALL) != 0;
    jset(o, "saveall", json_boolean(saveall));
    uint32_t gl = h->obj_garbage;
    if (gl == RS_NONE) {
        jset(o, "list", json_null());
        jset(o, "count", jint(0));
        jset(o, "objects", json_array());
        add_warnings(h, o);
        return o;
    }
    jset(o, "list", jobj(h, gl));
    size_t n = h->nobj;
    uint32_t a = h->out_off[gl], b = h->out_off[gl + 1];
    jset(o, "count", jint(b - a));
    /* which garbage objects are on a cycle (the list itself left out) */
    uint8_t *in_set = rs_xmalloc(n ? n : 1);
    memset(in_set, 1, n ? n : 1);
    in_set[gl] = 0;
    size_t ncomps;
    uint32_t *csize;
    uint32_t *comp_of = rs_components(h, in_set, &ncomps, &csize);
    rs_xfree(in_set);
    /* what the legacy-finalizer objects in the list reach (multi-source BFS) */
    uint32_t *origin = rs_xmalloc((n ? n : 1) * sizeof *origin);
    uint32_t *queue = rs_xmalloc((n ? n : 1) * sizeof *queue);
    for (size_t i = 0; i < n; i++)
        origin[i] = RS_NONE;
    size_t qh = 0, qt = 0;
    for (uint32_t e = a; e < b; e++) {
        uint32_t v = h->out_dst[e];
        if (rs_obj_type(h, v)->legacy_del && origin[v] == RS_NONE) {
            origin[v] = v;
            queue[qt++] = v;
        }
    }
    while (qh < qt) {
        uint32_t v = queue[qh++];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            if (d != gl && origin[d] == RS_NONE) {
                origin[d] = origin[v];
                queue[qt++] = d;
            }
        }
    }
    rs_xfree(queue);
    json_t *arr = json_array();
    uint64_t by[4] = {0};
    size_t show = lim(c, b - a);
    for (uint32_t e = a; e < b; e++) {
        uint32_t v = h->out_dst[e];
        const char *reason, *detail;
        char buf[800];
        int r;
        uint32_t cyc = comp_of[v] != RS_NONE ? csize[comp_of[v]] : 0;
        if (rs_obj_type(h, v)->legacy_del) {
            r = 0;
            reason = "legacy-finalizer";
            if (cyc)
                snprintf(buf, sizeof buf,
                         "has a legacy finalizer (tp_del) and is in a reference cycle of %u "
                         "objects: the collector cannot finalize it safely, so it is "
                         "uncollectable",
                         cyc);
            else
                snprintf(buf, sizeof buf,
                         "has a legacy finalizer (tp_del) and was unreachable when collected "
                         "(reachable from a cycle): uncollectable");
            detail = buf;
        } else if (origin[v] != RS_NONE) {
            r = 1;
            reason = "reachable-from-legacy";
            char d[500];
            snprintf(buf, sizeof buf, "reachable from %s, which has a legacy finalizer: "
                     "uncollectable with it",
                     rs_describe(h, origin[v], d, sizeof d));
            detail = buf;
        } else if (saveall) {
            r = 2;
            reason = "saveall";
            detail = "DEBUG_SAVEALL is on: the collector keeps unreachable objects in gc.garbage "
                     "instead of freeing them";
        } else {
            r = 3;
            reason = "unknown";
            detail = "no legacy finalizer reaches it and DEBUG_SAVEALL is off: it was saved "
                     "while DEBUG_SAVEALL was on, or the program appended it";
        }
        by[r]++;
        if ((size_t)(e - a) >= show)
            continue;
        json_t *y = json_object();
        jset(y, "index", jint(RS_LAB_ELEM(rs_edge_lab(h, gl, e))));
        jset(y, "object", jobj(h, v));
        jset(y, "reason", json_string(reason));
        jset(y, "detail", jstr(detail));
        jset(y, "via", origin[v] != RS_NONE && origin[v] != v ? jobj(h, origin[v]) : json_null());
        jset(y, "cycle_objects", jint(cyc));
        json_array_append_new(arr, y);
    }
    rs_xfree(origin);
    rs_xfree(comp_of);
    rs_xfree(csize);
    jset(o, "objects", arr);
    jset(o, "omitted", jint((b - a) - json_array_size(arr)));
    json_t *br = json_object();
    jset(br, "legacy-finalizer", jint(by[0]));
    jset(br, "reachable-from-legacy", jint(by[1]));
    jset(br, "saveall", jint(by[2]));
    jset(br, "unknown", jint(by[3]));
    jset(o, "by_reason", br);
    add_warnings(h, o);
    return o;
}

static void text_garbage(sb *b, const json_t *o)
{
    const json_t *l = json_object_get(o, "list");
    if (!json_is_object(l)) {
        sb_puts(b, "gc.garbage: no garbage list (runtime not initialised?)\n");
        text_warnings(b, o);
        return;
    }
    sb_printf(b, "gc.garbage (%s): %lld objects%s\n", desc_of(l), (long long)gi(o, "count"),
              gb(o, "saveall") ? ", DEBUG_SAVEALL is on" : "");
    const json_t *arr = json_object_get(o, "objects");
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const json_t *y = json_array_get(arr, k);
        sb_printf(b, "  [%lld] %s: %s\n", (long long)gi(y, "index"),
                  desc_of(json_object_get(y, "object")), gs(y, "detail"));
    }
    if (gi(o, "omitted"))
        sb_printf(b, "  ... %lld more\n", (long long)gi(o, "omitted"));
    text_warnings(b, o);
}

/* ---- shared: top K by a key, dominator names ------------------------------------------------ */

/* The (at most) k indexes 0..n-1 with the largest key[i] (ties: smaller
 * index first), largest first, leaving out i where skip[i] is set, or
 * (without skip) where none[i] is RS_NONE; both may be NULL. A bounded
 * min-heap: O(n log k). */
static uint32_t *top_k(const uint64_t *key, const uint8_t *skip, const uint32_t *none, size_t n,
                       size_t k, size_t *out)
{
    uint32_t *heap = rs_xmalloc((k ? k : 1) * sizeof *heap);
    size_t hn = 0;
#define LESS(a, b) (key[a] < key[b] || (key[a] == key[b] && (a) > (b)))
    for (size_t i = 0; i < n && k; i++) {
        if (skip ? skip[i] : none && none[i] == RS_NONE)
            continue;
        uint32_t v = (uint32_t)i;
        if (hn < k) {
            size_t j = hn++;
            heap[j] = v;
            while (j && LESS(heap[j], heap[(j - 1) / 2])) {
                uint32_t t = heap[j];
                heap[j] = heap[(j - 1) / 2];
                heap[(j - 1) / 2] = t;
                j = (j - 1) / 2;
            }
        } else if (LESS(heap[0], v)) {
            heap[0] = v;
            size_t j = 0;
            for (;;) {
                size_t l = 2 * j + 1, r = l + 1, m = j;
                if (l < hn && LESS(heap[l], heap[m]))
                    m = l;
                if (r < hn && LESS(heap[r], heap[m]))
                    m = r;
                if (m == j)
                    break;
                uint32_t t = heap[j];
                heap[j] = heap[m];
                heap[m] = t;
                j = m;
            }
        }
    }
    /* heap sort, largest first */
    size_t total = hn;
    while (hn > 1) {
        uint32_t t = heap[0];
        heap[0] = heap[--hn];
        heap[hn] = t;
        size_t j = 0;
        for (;;) {
            size_t l = 2 * j + 1, r = l + 1, m = j;
            if (l < hn && LESS(heap[l], heap[m]))
                m = l;
            if (r < hn && LESS(heap[r], heap[m]))
                m = r;
            if (m == j)
                break;
            uint32_t tt = heap[j];
            heap[j] = heap[m];
            heap[m] = tt;
            j = m;
        }
    }
#undef LESS
    *out = total;
    return heap;
}

/* Who dominates node v, as JSON: {"object": ...} | {"root": ...} |
 * {"unexplained": true} | {"several_roots": true} | null. */
static json_t *jdominator(rs_heap *h, const rs_dom_result *D, uint32_t v)
{
    uint32_t d = D->idom[v];
    if (d == RS_NONE)
        return json_null();
    json_t *o = json_object();
    if (d < h->nobj)
        jset(o, "object", jobj(h, d));
    else if (d < rs_node_unexplained(h))
        jset(o, "root", jroot(h, d - h->nobj));
    else if (d == rs_node_unexplained(h))
        jset(o, "unexplained", json_true());
    else
        jset(o, "several_roots", json_true());
    return o;
}

static void text_dominator(sb *b, const json_t *d)
{
    if (!json_is_object(d))
        sb_puts(b, "nothing (not reachable from a root)");
    else if (json_object_get(d, "object"))
        sb_puts(b, desc_of(json_object_get(d, "object")));
    else if (json_object_get(d, "root"))
        sb_printf(b, "%s '%s'", gs(json_object_get(d, "root"), "kind"),
                  gs(json_object_get(d, "root"), "label"));
    else if (json_object_get(d, "unexplained"))
        sb_puts(b, "unexplained references");
    else
        sb_puts(b, "several roots");
}

static json_t *jretained(const rs_dom_result *D, uint32_t v)
{
    json_t *o = json_object();
    bool r = D->idom[v] != RS_NONE;
    jset(o, "reachable", json_boolean(r));
    jset(o, "bytes", jint(r ? D->retained[v] : 0));
    jset(o, "objects", jint(r ? D->rcount[v] : 0));
    return o;
}

/* ---- roots ---------------------------------------------------------------------------------- */

static bool is_closure_type(const rs_type *t)
{
    for (uint32_t k = 0; k < t->nfields; k++)
        if (t->fields[k].kind == RC_FIELD_NAMED_ARRAY)
            return true;
    return false;
}

static bool is_cell_type(const rs_type *t)
{
    return t->nfields == 1 && t->fields[0].kind == RC_FIELD_REF &&
           !strcmp(t->fields[0].name, "cell_contents");
}

static json_t *build_roots(rs_heap *h, const cmdline *c)
{
    const rs_dom_result *D = rs_dominators(h);
    size_t n = h->nobj;
    json_t *o = json_object();
    jset(o, "command", json_string("roots"));
    json_t *x = json_object();
    jset(x, "objects", jint(D->reach_objects));
    jset(x, "bytes", jint(D->reach_bytes));
    jset(o, "reachable", x);
    uint64_t tb = h->total_bytes;
    x = json_object();
    jset(x, "objects", jint(n - D->reach_objects));
    jset(x, "bytes", jint(tb - D->reach_bytes));
    jset(o, "unreachable", x);
    uint32_t un = rs_node_unexplained(h);
    x = json_object();
    jset(x, "objects", jint(D->idom[un] != RS_NONE ? D->rcount[un] : 0));
    jset(x, "bytes", jint(D->idom[un] != RS_NONE ? D->retained[un] : 0));
    jset(o, "unexplained", x);

    /* roots, largest retained first */
    uint64_t *key = rs_xcalloc(h->nroots ? h->nroots : 1, sizeof *key);
    for (size_t r = 0; r < h->nroots; r++)
        key[r] = D->retained[rs_node_of_root(h, r)];
    size_t nr;
    uint32_t *order = top_k(key, NULL, NULL, h->nroots, h->nroots, &nr);
    json_t *ra = json_array();
    for (size_t k = 0; k < nr && k < lim(c, nr); k++) {
        size_t r = order[k];
        json_t *y = jroot(h, r);
        jset(y, "object", jobj(h, h->roots[r].obj));
        jset(y, "retained", jretained(D, rs_node_of_root(h, r)));
        json_array_append_new(ra, y);
    }
    rs_xfree(order);
    rs_xfree(key);
    jset(o, "roots", ra);
    jset(o, "roots_total", jint(h->nroots));

    /* globals */
    json_t *ga = json_array();
    char lab[600];
    if (h->obj_globals != RS_NONE) {
        uint32_t g = h->obj_globals;
        uint32_t a = h->out_off[g], b = h->out_off[g + 1];
        uint64_t *gk = rs_xmalloc(((b - a) ? (b - a) : 1) * sizeof *gk);
        for (uint32_t e = a; e < b; e++)
            gk[e - a] = D->idom[h->out_dst[e]] != RS_NONE ? D->retained[h->out_dst[e]] : 0;
        size_t ng;
        uint32_t *go = top_k(gk, NULL, NULL, b - a, lim(c, b - a), &ng);
        for (size_t k = 0; k < ng; k++) {
            uint32_t e = a + go[k];
            uint32_t v = h->out_dst[e];
            json_t *y = json_object();
            jset(y, "label", jstr(edge_label(h, e, g, lab, sizeof lab)));
            jset(y, "object", jobj(h, v));
            jset(y, "retained", jretained(D, v));
            json_array_append_new(ga, y);
        }
        rs_xfree(go);
        rs_xfree(gk);
        jset(o, "globals_total", jint(b - a));
    } else {
        jset(o, "globals_total", jint(0));
    }
    jset(o, "globals", ga);

    /* closures and their cells */
    uint8_t *skip = rs_xmalloc(n ? n : 1);
    uint64_t *ck = rs_xcalloc(n ? n : 1, sizeof *ck);
    uint8_t *tclos = rs_xcalloc(h->ntypes ? h->ntypes : 1, 1);
    for (size_t t = 0; t < h->ntypes; t++)
        tclos[t] = is_closure_type(&h->types[t]);
    size_t nclos = 0;
    for (size_t i = 0; i < n; i++) {
        skip[i] = !tclos[h->tidx[i]];
        if (!skip[i]) {
            nclos++;
            ck[i] = D->idom[i] != RS_NONE ? D->retained[i] : 0;
        }
    }
    rs_xfree(tclos);
    size_t nc;
    uint32_t *co = top_k(ck, skip, NULL, n, lim(c, nclos), &nc);
    json_t *ca = json_array();
    for (size_t k = 0; k < nc; k++) {
        uint32_t v = co[k];
        json_t *y = json_object();
        jset(y, "closure", jobj(h, v));
        const char *nm = rs_instance_name(h, v);
        jset(y, "name", nm ? jstr(nm) : json_null());
        char code[300];
        const char *cd = rs_closure_code(h, v, code, sizeof code);
        jset(y, "code", cd ? jstr(cd) : json_null());
        jset(y, "retained", jretained(D, v));
        jset(y, "dominator", jdominator(h, D, v));
        json_t *cells = json_array();
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            json_t *z = json_object();
            jset(z, "label", jstr(edge_label(h, e, v, lab, sizeof lab)));
            jset(z, "object", jobj(h, d));
            jset(z, "retained", jretained(D, d));
            if (is_cell_type(rs_obj_type(h, d)) && rs_outdeg(h, d) == 1) {
                uint32_t cc = h->out_dst[h->out_off[d]];
                json_t *cz = json_object();
                jset(cz, "object", jobj(h, cc));
                jset(cz, "retained", jretained(D, cc));
                jset(z, "contents", cz);
            }
            json_array_append_new(cells, z);
        }
        jset(y, "cells", cells);
        json_array_append_new(ca, y);
    }
    rs_xfree(co);
    rs_xfree(ck);
    rs_xfree(skip);
    jset(o, "closures", ca);
    jset(o, "closures_total", jint(nclos));
    add_warnings(h, o);
    return o;
}

static void text_retained_cols(sb *b, const json_t *r)
{
    if (gb(r, "reachable"))
        sb_printf(b, "%12lld  %8lld", (long long)gi(r, "bytes"), (long long)gi(r, "objects"));
    else
        sb_printf(b, "%12s  %8s", "-", "-");
}

static void text_roots(sb *b, const json_t *o)
{
    const json_t *re = json_object_get(o, "reachable"), *un = json_object_get(o, "unreachable");
    sb_printf(b, "roots: %lld roots hold %lld objects (%lld bytes); %lld objects (%lld bytes) are "
                 "reachable from no root\n",
              (long long)gi(o, "roots_total"), (long long)gi(re, "objects"),
              (long long)gi(re, "bytes"), (long long)gi(un, "objects"), (long long)gi(un, "bytes"));
    sb_printf(b, "  %12s  %8s  %s\n", "retained", "objects", "root");
    const json_t *ra = json_object_get(o, "roots");
    for (size_t k = 0; k < json_array_size(ra); k++) {
        const json_t *y = json_array_get(ra, k);
        sb_puts(b, "  ");
        text_retained_cols(b, json_object_get(y, "retained"));
        sb_printf(b, "  %s '%s' -> %s%s\n", gs(y, "kind"), gs(y, "label"),
                  desc_of(json_object_get(y, "object")),
                  !gb(y, "counted") ? " (same slot as another root)"
                  : !gb(y, "holds") ? " (borrowed or stale: holds nothing)"
                                    : "");
    }
    if ((size_t)gi(o, "roots_total") > json_array_size(ra))
        sb_printf(b, "  ... %lld more\n",
                  (long long)((size_t)gi(o, "roots_total") - json_array_size(ra)));
    const json_t *ux = json_object_get(o, "unexplained");
    if (gi(ux, "objects"))
        sb_printf(b, "  %12lld  %8lld  held only by unexplained references (see leaks)\n",
                  (long long)gi(ux, "bytes"), (long long)gi(ux, "objects"));
    const json_t *ga = json_object_get(o, "globals");
    if (gi(o, "globals_total")) {
        sb_printf(b, "globals (%lld):\n", (long long)gi(o, "globals_total"));
        for (size_t k = 0; k < json_array_size(ga); k++) {
            const json_t *y = json_array_get(ga, k);
            sb_puts(b, "  ");
            text_retained_cols(b, json_object_get(y, "retained"));
            sb_printf(b, "  %s -> %s\n", gs(y, "label"), desc_of(json_object_get(y, "object")));
        }
        if ((size_t)gi(o, "globals_total") > json_array_size(ga))
            sb_printf(b, "  ... %lld more\n",
                      (long long)((size_t)gi(o, "globals_total") - json_array_size(ga)));
    }
    const json_t *ca = json_object_get(o, "closures");
    if (gi(o, "closures_total")) {
        sb_printf(b, "closures (%lld):\n", (long long)gi(o, "closures_total"));
        for (size_t k = 0; k < json_array_size(ca); k++) {
            const json_t *y = json_array_get(ca, k);
            const json_t *r = json_object_get(y, "retained");
            sb_printf(b, "  closure '%s' %s",
                      json_is_string(json_object_get(y, "name")) ? gs(y, "name") : "?",
                      desc_of(json_object_get(y, "closure")));
            if (json_is_string(json_object_get(y, "code")))
                sb_printf(b, " (code %s)", gs(y, "code"));
            sb_puts(b, ": ");
            if (gb(r, "reachable"))
                sb_printf(b, "retained %lld bytes in %lld objects, held by ",
                          (long long)gi(r, "bytes"), (long long)gi(r, "objects"));
            else
                sb_puts(b, "reachable from no root, ");
            text_dominator(b, json_object_get(y, "dominator"));
            sb_puts(b, "\n");
            const json_t *cells = json_object_get(y, "cells");
            for (size_t j = 0; j < json_array_size(cells); j++) {
                const json_t *z = json_array_get(cells, j);
                const json_t *zr = json_object_get(z, "retained");
                sb_printf(b, "    %s -> %s", gs(z, "label"), desc_of(json_object_get(z, "object")));
                const json_t *cz = json_object_get(z, "contents");
                if (cz) {
                    sb_printf(b, " -> %s", desc_of(json_object_get(cz, "object")));
                    zr = json_object_get(cz, "retained");
                }
                if (gb(zr, "reachable"))
                    sb_printf(b, ": retained %lld bytes\n", (long long)gi(zr, "bytes"));
                else
                    sb_puts(b, "\n");
            }
        }
        if ((size_t)gi(o, "closures_total") > json_array_size(ca))
            sb_printf(b, "  ... %lld more\n",
                      (long long)((size_t)gi(o, "closures_total") - json_array_size(ca)));
    }
    text_warnings(b, o);
}

/* ---- leaks ---------------------------------------------------------------------------------- */

typedef struct leak_key {
    int sign;
    uint32_t tidx, site, obj;
} leak_key;

static int leak_cmp(const void *a, const void *b)
{
    const leak_key *x = a, *y = b;
    if (x->sign != y->sign)
        return x->sign > y->sign ? -1 : 1;
    if (x->tidx != y->tidx)
        return x->tidx < y->tidx ? -1 : 1;
    if (x->site != y->site)
        return x->site < y->site ? -1 : 1;
    return x->obj < y->obj ? -1 : x->obj > y->obj;
}

typedef struct leak_group {
    size_t first, n;
    int sign;
    uint64_t refs, bytes, retained;
} leak_group;

static int leak_group_cmp(const void *a, const void *b)
{
    const leak_group *x = a, *y = b;
    if (x->sign != y->sign)
        return x->sign > y->sign ? -1 : 1;
    if (x->refs != y->refs)
        return x->refs > y->refs ? -1 : 1;
    if (x->retained != y->retained)
        return x->retained > y->retained ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

static json_t *build_leaks(rs_heap *h, const cmdline *c, int *status)
{
    const int32_t *unx = rs_unexplained(h);
    const rs_dom_result *D = rs_dominators(h);
    size_t n = h->nobj, nk = h->nunexplained + h->noverreleased;
    leak_key *keys = rs_xmalloc((nk ? nk : 1) * sizeof *keys);
    size_t want = nk;
    nk = 0;
    for (size_t i = 0; i < n && nk < want; i++)
        if (unx[i])
            keys[nk++] = (leak_key){unx[i] > 0 ? 1 : -1, h->tidx[i], rs_obj_site(h, (uint32_t)i),
                                    (uint32_t)i};
    RS_QSORT(keys, nk, sizeof *keys, leak_cmp);
    leak_group *groups = NULL;
    size_t ng = 0, capg = 0;
    uint64_t tot_obj[2] = {0}, tot_ref[2] = {0}, tot_bytes[2] = {0};
    for (size_t k = 0; k < nk;) {
        size_t j = k;
        leak_group g = {k, 0, keys[k].sign, 0, 0, 0};
        while (j < nk && keys[j].sign == keys[k].sign && keys[j].tidx == keys[k].tidx &&
               keys[j].site == keys[k].site) {
            uint32_t v = keys[j].obj;
            int32_t u = unx[v];
            g.refs += (uint64_t)(u > 0 ? u : -(int64_t)u);
            g.bytes += rs_bytes(h, v);
            if (D->idom[v] != RS_NONE && D->idom[v] >= n)
                g.retained += D->retained[v];
            j++;
        }
        g.n = j - k;
        int s = g.sign > 0 ? 0 : 1;
        tot_obj[s] += g.n;
        tot_ref[s] += g.refs;
        tot_bytes[s] += g.bytes;
        rs_grow(&groups, &capg, ng + 1, sizeof *groups);
        groups[ng++] = g;
        k = j;
    }
    RS_QSORT(groups, ng, sizeof *groups, leak_group_cmp);

    json_t *o = json_object();
    jset(o, "command", json_string("leaks"));
    json_t *x = json_object();
    jset(x, "objects", jint(tot_obj[0]));
    jset(x, "references", jint(tot_ref[0]));
    jset(x, "bytes", jint(tot_bytes[0]));
    jset(o, "unexplained", x);
    x = json_object();
    jset(x, "objects", jint(tot_obj[1]));
    jset(x, "references", jint(tot_ref[1]));
    jset(x, "bytes", jint(tot_bytes[1]));
    jset(o, "over_released", x);
    json_t *arrs[2] = {json_array(), json_array()};
    size_t shown[2] = {0, 0};
    for (size_t k = 0; k < ng; k++) {
        const leak_group *g = &groups[k];
        int s = g->sign > 0 ? 0 : 1;
        if (shown[s] >= lim(c, SIZE_MAX))
            continue;
        shown[s]++;
        uint32_t v0 = keys[g->first].obj;
        const rs_site *site = rs_get_site(h, rs_obj_site(h, v0));
        char sbuf[400];
        json_t *y = json_object();
        jset(y, "kind", json_string(s ? "over-released" : "unexplained"));
        jset(y, "type", jstr(rs_obj_type(h, v0)->name));
        jset(y, "site", jstr(rs_site_str(h, rs_obj_site(h, v0), sbuf, sizeof sbuf)));
        jset(y, "function", site ? jstr(site->func) : json_null());
        jset(y, "objects", jint(g->n));
        jset(y, "references", jint(g->refs));
        jset(y, "bytes", jint(g->bytes));
        jset(y, "retained", jint(g->retained));
        json_t *ex = json_array();
        size_t nex = c->limit == 0 ? g->n : (g->n < 10 ? g->n : 10);
        for (size_t j = 0; j < nex; j++) {
            uint32_t v = keys[g->first + j].obj;
            json_t *z = json_object();
            jset(z, "object", jobj(h, v));
            jset(z, "reconciliation", jreconcile(h, v));
            jset(z, "retained", jretained(D, v));
            json_array_append_new(ex, z);
        }
        jset(y, "examples", ex);
        json_array_append_new(arrs[s], y);
    }
    jset(o, "leaks", arrs[0]);
    jset(o, "over_released_groups", arrs[1]);
    /* references only stack slots explain: not findings (a frame may own
     * them), but a missing decref in a live frame looks exactly like this */
    size_t nrc;
    const rs_rootcount *rc = rs_rootcounts(h, &nrc);
    uint64_t sh_n = 0, sh_refs = 0;
    json_t *shx = json_array();
    for (size_t k = 0; k < nrc; k++) {
        uint32_t i = rc[k].obj;
        if (!rc[k].slots || unx[i] != 0 || h->refcnt[i] >= 0x80000000u)
            continue;
        int64_t excess = (int64_t)h->refcnt[i] - (int64_t)rs_indeg(h, i) - (int64_t)rc[k].roots;
        if (excess <= 0)
            continue;
        sh_n++;
        sh_refs += (uint64_t)excess;
        if (json_array_size(shx) < (c->limit == 0 ? SIZE_MAX : 10)) {
            json_t *z = json_object();
            jset(z, "object", jobj(h, (uint32_t)i));
            jset(z, "reconciliation", jreconcile(h, (uint32_t)i));
            json_array_append_new(shx, z);
        }
    }
    x = json_object();
    jset(x, "objects", jint(sh_n));
    jset(x, "references", jint(sh_refs));
    jset(x, "examples", shx);
    jset(o, "stack_held", x);
    rs_xfree(groups);
    rs_xfree(keys);
    add_warnings(h, o);
    if (status && (tot_obj[0] || tot_obj[1]))
        *status = 1;
    return o;
}

static void text_leak_groups(sb *b, const json_t *arr)
{
    sb_printf(b, "  %8s  %6s  %10s  %10s  %s\n", "objects", "refs", "bytes", "retained",
              "type at site");
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const json_t *y = json_array_get(arr, k);
        sb_printf(b, "  %8lld  %6lld  %10lld  %10lld  %s at %s", (long long)gi(y, "objects"),
                  (long long)gi(y, "references"), (long long)gi(y, "bytes"),
                  (long long)gi(y, "retained"), gs(y, "type"), gs(y, "site"));
        if (json_is_string(json_object_get(y, "function")))
            sb_printf(b, " in %s()", gs(y, "function"));
        sb_puts(b, "\n");
        const json_t *ex = json_object_get(y, "examples");
        for (size_t j = 0; j < json_array_size(ex); j++) {
            const json_t *z = json_array_get(ex, j);
            sb_printf(b, "      %s: ", desc_of(json_object_get(z, "object")));
            text_reconcile(b, json_object_get(z, "reconciliation"));
            const json_t *r = json_object_get(z, "retained");
            if (gb(r, "reachable"))
                sb_printf(b, "; retains %lld bytes", (long long)gi(r, "bytes"));
            sb_puts(b, "\n");
        }
        if ((size_t)gi(y, "objects") > json_array_size(ex))
            sb_printf(b, "      ... %lld more\n",
                      (long long)((size_t)gi(y, "objects") - json_array_size(ex)));
    }
}

static void text_leaks(sb *b, const json_t *o)
{
    const json_t *u = json_object_get(o, "unexplained"), *ov = json_object_get(o, "over_released");
    sb_printf(b, "leaks: %lld objects hold %lld references no holder explains; %lld objects are "
                 "over-released\n",
              (long long)gi(u, "objects"), (long long)gi(u, "references"),
              (long long)gi(ov, "objects"));
    const json_t *a = json_object_get(o, "leaks");
    if (json_array_size(a)) {
        sb_puts(b, "unexplained references (a missing decref, or a holder the engine cannot "
                   "see):\n");
        text_leak_groups(b, a);
    }
    a = json_object_get(o, "over_released_groups");
    if (json_array_size(a)) {
        sb_puts(b, "over-released (refcount lower than its holders: an extra decref):\n");
        text_leak_groups(b, a);
    }
    const json_t *sh = json_object_get(o, "stack_held");
    if (gi(sh, "objects")) {
        sb_printf(b, "held through stack slots only: %lld objects, %lld references (fine if those "
                     "frames own them; a missing decref if not):\n",
                  (long long)gi(sh, "objects"), (long long)gi(sh, "references"));
        const json_t *ex = json_object_get(sh, "examples");
        for (size_t k = 0; k < json_array_size(ex); k++) {
            const json_t *z = json_array_get(ex, k);
            sb_printf(b, "  %s: ", desc_of(json_object_get(z, "object")));
            text_reconcile(b, json_object_get(z, "reconciliation"));
            sb_puts(b, "\n");
        }
        if ((size_t)gi(sh, "objects") > json_array_size(ex))
            sb_printf(b, "  ... %lld more\n",
                      (long long)((size_t)gi(sh, "objects") - json_array_size(ex)));
    }
    text_warnings(b, o);
}

/* ---- path ------------------------------------------------------------------------------------ */

static json_t *build_path(rs_heap *h, uint32_t obj, const char *note)
{
    json_t *o = json_object();
    jset(o, "command", json_string("path"));
    if (note[0])
        jset(o, "note", jstr(note));
    jset(o, "object", jobj(h, obj));
    rs_step *steps;
    size_t ns = rs_shortest_path(h, obj, &steps);
    jset(o, "found", json_boolean(ns > 0));
    char lab[600];
    if (ns) {
        uint32_t rn = steps[0].node;
        bool unexp = rn == rs_node_unexplained(h);
        jset(o, "from_unexplained", json_boolean(unexp));
        json_t *arr = json_array();
        sb text = {0};
        if (unexp) {
            json_t *r = json_object();
            jset(r, "label", json_string("(unexplained references)"));
            jset(r, "kind", json_string("unexplained"));
            jset(o, "root", r);
            sb_puts(&text, "(unexplained references)");
        } else {
            jset(o, "root", jroot(h, rn - h->nobj));
            sb_puts(&text, h->roots[rn - h->nobj].label);
        }
        for (size_t k = 1; k < ns; k++) {
            json_t *y = json_object();
            if (k == 1) {
                jset(y, "label", unexp ? json_string("(unexplained references)")
                                       : jstr(h->roots[rn - h->nobj].label));
            } else {
                uint32_t e = steps[k].edge;
                edge_label(h, e, steps[k - 1].node, lab, sizeof lab);
                jset(y, "label", jstr(lab));
                sb_printf(&text, " -> %s", lab);
            }
            jset(y, "object", jobj(h, steps[k].node));
            json_array_append_new(arr, y);
        }
        jset(o, "steps", arr);
        jset(o, "text", jstr(text.s));
        rs_xfree(text.s);
        rs_xfree(steps);
    } else {
        const rs_gc_result *G = rs_gc_analyze(h);
        unsigned s = G->state[obj];
        char why[300];
        uint32_t gid = G->group[obj] != RS_NONE ? rs_group_id(G, &G->groups[G->group[obj]]) : 0;
        if (s == RS_GC_COLLECTABLE)
            snprintf(why, sizeof why, "in unreachable cycle %u: a full collection would free it",
                     gid);
        else if (s == RS_GC_LEGACY)
            snprintf(why, sizeof why, "in unreachable cycle %u, uncollectable (legacy finalizer)",
                     gid);
        else if (s == RS_GC_CASCADE)
            snprintf(why, sizeof why, "held only by unreachable cycle %u", gid);
        else
            snprintf(why, sizeof why, "held by nothing the engine can see");
        jset(o, "reason", json_string(why));
    }
    add_warnings(h, o);
    return o;
}

static void text_path_report(sb *b, const json_t *o)
{
    if (json_is_string(json_object_get(o, "note")))
        sb_printf(b, "(%s)\n", gs(o, "note"));
    const json_t *ob = json_object_get(o, "object");
    if (!gb(o, "found")) {
        sb_printf(b, "path to %s: no path from any root: %s\n", desc_of(ob), gs(o, "reason"));
        text_warnings(b, o);
        return;
    }
    sb_printf(b, "path to %s: %s\n", desc_of(ob), gs(o, "text"));
    const json_t *root = json_object_get(o, "root");
    const json_t *st = json_object_get(o, "steps");
    for (size_t k = 0; k < json_array_size(st); k++) {
        const json_t *y = json_array_get(st, k);
        if (k == 0)
            sb_printf(b, "  %s '%s'  ->  %s\n", gs(root, "kind"), gs(root, "label"),
                      desc_of(json_object_get(y, "object")));
        else
            sb_printf(b, "  %s  ->  %s\n", gs(y, "label"), desc_of(json_object_get(y, "object")));
    }
    text_warnings(b, o);
}

/* ---- retained ----------------------------------------------------------------------------------- */

static int by_bytes_desc(const void *a, const void *b, void *ctx)
{
    const rs_heap *h = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (rs_bytes(h, x) != rs_bytes(h, y))
        return rs_bytes(h, x) > rs_bytes(h, y) ? -1 : 1;
    return x < y ? -1 : x > y;
}

static json_t *build_retained(rs_heap *h, const cmdline *c, uint32_t obj, const char *note)
{
    const rs_dom_result *D = rs_dominators(h);
    json_t *o = json_object();
    jset(o, "command", json_string("retained"));
    if (note && note[0])
        jset(o, "note", jstr(note));
    if (obj == RS_NONE) {
        size_t n = h->nobj;
        uint64_t tb = h->total_bytes;
        json_t *x = json_object();
        jset(x, "objects", jint(D->reach_objects));
        jset(x, "bytes", jint(D->reach_bytes));
        jset(o, "reachable", x);
        x = json_object();
        jset(x, "objects", jint(n - D->reach_objects));
        jset(x, "bytes", jint(tb - D->reach_bytes));
        jset(o, "unreachable", x);
        size_t nt; /* (the objects no root reaches have no dominator) */
        uint32_t *top = top_k(D->retained, NULL, D->idom, n, lim(c, n), &nt);
        json_t *arr = json_array();
        for (size_t k = 0; k < nt; k++) {
            uint32_t v = top[k];
            json_t *y = json_object();
            jset(y, "object", jobj(h, v));
            jset(y, "retained", jretained(D, v));
            jset(y, "dominator", jdominator(h, D, v));
            json_array_append_new(arr, y);
        }
        rs_xfree(top);
        jset(o, "top", arr);
        add_warnings(h, o);
        return o;
    }
    jset(o, "object", jobj(h, obj));
    jset(o, "reachable_from_roots", json_boolean(D->idom[obj] != RS_NONE));
    jset(o, "dominator", jdominator(h, D, obj));
    size_t cnt;
    uint64_t bytes;
    uint32_t *set = rs_retained_set(h, obj, &cnt, &bytes);
    json_t *x = json_object();
    jset(x, "objects", jint(cnt));
    jset(x, "bytes", jint(bytes));
    jset(o, "retained", x);
    jset(o, "types", type_histogram(h, set, cnt, lim(c, SIZE_MAX) == SIZE_MAX ? 0 : lim(c, SIZE_MAX)));
    qsort_r(set, cnt, sizeof *set, by_bytes_desc, h);
    json_t *arr = json_array();
    for (size_t k = 0; k < lim(c, cnt); k++)
        json_array_append_new(arr, jobj(h, set[k]));
    jset(o, "objects", arr);
    jset(o, "objects_omitted", jint(cnt - json_array_size(arr)));
    rs_xfree(set);
    add_warnings(h, o);
    return o;
}

static void text_retained(sb *b, const json_t *o)
{
    if (json_is_string(json_object_get(o, "note")))
        sb_printf(b, "(%s)\n", gs(o, "note"));
    const json_t *ob = json_object_get(o, "object");
    if (!ob) {
        const json_t *re = json_object_get(o, "reachable"), *un = json_object_get(o, "unreachable");
        sb_printf(b, "retained sizes: %lld objects (%lld bytes) reachable from roots; %lld "
                     "objects (%lld bytes) reachable from none\n",
                  (long long)gi(re, "objects"), (long long)gi(re, "bytes"),
                  (long long)gi(un, "objects"), (long long)gi(un, "bytes"));
        sb_printf(b, "  %12s  %8s  %10s  %s\n", "retained", "objects", "self", "object (held by)");
        const json_t *top = json_object_get(o, "top");
        for (size_t k = 0; k < json_array_size(top); k++) {
            const json_t *y = json_array_get(top, k);
            const json_t *r = json_object_get(y, "retained"), *yo = json_object_get(y, "object");
            sb_printf(b, "  %12lld  %8lld  %10lld  %s (", (long long)gi(r, "bytes"),
                      (long long)gi(r, "objects"), (long long)gi(yo, "bytes"), desc_of(yo));
            text_dominator(b, json_object_get(y, "dominator"));
            sb_puts(b, ")\n");
        }
        text_warnings(b, o);
        return;
    }
    const json_t *r = json_object_get(o, "retained");
    sb_printf(b, "%s retains %lld objects, %lld bytes", desc_of(ob), (long long)gi(r, "objects"),
              (long long)gi(r, "bytes"));
    if (gb(o, "reachable_from_roots")) {
        sb_puts(b, "; held by ");
        text_dominator(b, json_object_get(o, "dominator"));
        sb_puts(b, "\n");
    } else {
        sb_puts(b, " (not reachable from any root: what it reaches that nothing else holds)\n");
    }
    sb_puts(b, "  types: ");
    text_type_hist(b, json_object_get(o, "types"));
    sb_puts(b, "\n  largest:\n");
    const json_t *arr = json_object_get(o, "objects");
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const json_t *y = json_array_get(arr, k);
        sb_printf(b, "    %10lld  %s\n", (long long)gi(y, "bytes"), desc_of(y));
    }
    if (gi(o, "objects_omitted"))
        sb_printf(b, "    ... %lld more\n", (long long)gi(o, "objects_omitted"));
    text_warnings(b, o);
}

/* ---- graph (DOT) --------------------------------------------------------------------------- */

typedef struct node_map {
    uint32_t *keys, *vals;
    size_t cap;
} node_map;

static void nm_init(node_map *m, size_t want)
{
    m->cap = 64;
    while (m->cap < want * 2)
        m->cap *= 2;
    m->keys = rs_xmalloc(m->cap * sizeof *m->keys);
    m->vals = rs_xmalloc(m->cap * sizeof *m->vals);
    for (size_t i = 0; i < m->cap; i++)
        m->keys[i] = RS_NONE;
}

static uint32_t nm_get(const node_map *m, uint32_t k)
{
    size_t mask = m->cap - 1;
    for (size_t s = (k * 2654435761u) & mask; m->keys[s] != RS_NONE; s = (s + 1) & mask)
        if (m->keys[s] == k)
            return m->vals[s];
    return RS_NONE;
}

static void nm_put(node_map *m, uint32_t k, uint32_t v)
{
    size_t mask = m->cap - 1;
    size_t s = (k * 2654435761u) & mask;
    while (m->keys[s] != RS_NONE && m->keys[s] != k)
        s = (s + 1) & mask;
    m->keys[s] = k;
    m->vals[s] = v;
}

static void dot_escape(sb *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(b, "\\%c", *s);
        else if (*s == '\n')
            sb_puts(b, "\\n");
        else if ((unsigned char)*s < 0x20)
            sb_puts(b, "?");
        else
            sb_printf(b, "%c", *s);
    }
}

static json_t *build_graph(rs_heap *h, const cmdline *c, uint32_t focus, const char *note,
                           char *err, size_t errsize)
{
    const rs_gc_result *G = rs_gc_analyze(h);
    size_t maxnodes = c->limit_given ? (c->limit ? (size_t)c->limit : h->nobj) : 100;
    uint32_t *nodes = rs_xmalloc((maxnodes + 1) * sizeof *nodes);
    size_t nn = 0;
    bool truncated = false;
    node_map m;
    nm_init(&m, maxnodes + 1);
    char title[600];
    if (c->cycle > 0) {
        if ((size_t)c->cycle > G->ngroups) {
            snprintf(err, errsize, "graph: there is no cycle %ld (%zu groups; see `cycles`)",
                     c->cycle, G->ngroups);
            rs_xfree(nodes);
            rs_xfree(m.keys);
            rs_xfree(m.vals);
            return NULL;
        }
        const rs_group *R = &G->groups[c->cycle - 1];
        for (int pass = 0; pass < 2; pass++) {
            const uint32_t *list = pass ? rs_group_hang(G, R) : rs_group_members(G, R);
            size_t n = pass ? R->nhang : R->nmembers;
            for (size_t k = 0; k < n; k++) {
                if (nn == maxnodes) {
                    truncated = true;
                    break;
                }
                nm_put(&m, list[k], (uint32_t)nn);
                nodes[nn++] = list[k];
            }
        }
        snprintf(title, sizeof title, "%s %u: %u objects, %llu bytes%s",
                 R->is_cycle ? "cycle" : "group", rs_group_id(G, R), R->nmembers,
                 (unsigned long long)R->bytes, R->uncollectable ? " (uncollectable)" : "");
    } else {
        /* BFS to --depth along references (and back references) */
        if (c->backrefs)
            rs_in_edges(h);
        uint32_t *depth = rs_xmalloc((maxnodes + 1) * sizeof *depth);
        nm_put(&m, focus, 0);
        nodes[nn] = focus;
        depth[nn++] = 0;
        for (size_t qh = 0; qh < nn && !truncated; qh++) {
            uint32_t v = nodes[qh];
            if (depth[qh] >= (uint32_t)c->depth)
                continue;
            for (int dir = 0; dir < (c->backrefs ? 2 : 1) && !truncated; dir++) {
                uint32_t a = dir ? h->in_off[v] : h->out_off[v];
                uint32_t b = dir ? h->in_off[v + 1] : h->out_off[v + 1];
                for (uint32_t k = a; k < b; k++) {
                    uint32_t d = dir ? h->in_src[k] : h->out_dst[k];
                    if (nm_get(&m, d) != RS_NONE)
                        continue;
                    if (nn == maxnodes) {
                        truncated = true;
                        break;
                    }
                    nm_put(&m, d, (uint32_t)nn);
                    depth[nn] = depth[qh] + 1;
                    nodes[nn++] = d;
                }
            }
        }
        rs_xfree(depth);
        char d[500];
        snprintf(title, sizeof title, "%s, depth %ld%s", rs_describe(h, focus, d, sizeof d),
                 c->depth, c->backrefs ? ", with referrers" : "");
    }

    sb dot = {0};
    json_t *jn = json_array(), *je = json_array();
    sb_puts(&dot, "digraph refscope {\n");
    sb_puts(&dot, "  graph [rankdir=LR, fontname=\"monospace\", fontsize=10, labelloc=t, label=\"");
    dot_escape(&dot, title);
    if (truncated)
        sb_printf(&dot, " (truncated at %zu objects)", maxnodes);
    sb_puts(&dot, "\"];\n");
    sb_puts(&dot, "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", "
                  "fontname=\"monospace\", fontsize=9];\n");
    sb_puts(&dot, "  edge [fontname=\"monospace\", fontsize=8];\n");
    char d[600], lab[600], site[300];
    for (size_t k = 0; k < nn; k++) {
        uint32_t v = nodes[k];
        unsigned st = G->state[v];
        const char *fill = st == RS_GC_COLLECTABLE ? "#ffc8c8"
                           : st == RS_GC_LEGACY    ? "#ffd890"
                           : st == RS_GC_CASCADE   ? "#ffe8e8"
                                                   : "#ffffff";
        const char *inst = rs_instance_name(h, v);
        sb_printf(&dot, "  n%zu [label=\"", k);
        snprintf(d, sizeof d, "%s%s%s@0x%llx\n%s\n%llu bytes, refcount %u",
                 rs_obj_type(h, v)->name, inst ? " " : "", inst ? inst : "",
                 (unsigned long long)h->addr[v], rs_site_str(h, rs_obj_site(h, v), site, sizeof site),
                 (unsigned long long)rs_bytes(h, v), h->refcnt[v]);
        dot_escape(&dot, d);
        sb_printf(&dot, "\", fillcolor=\"%s\"%s];\n", fill,
                  (c->cycle <= 0 && v == focus) ? ", penwidth=2.5" : "");
        json_t *x = jobj(h, v);
        jset(x, "id", jint(k));
        jset(x, "state", json_string(gc_state_name(st)));
        json_array_append_new(jn, x);
    }
    for (size_t k = 0; k < nn; k++) {
        uint32_t v = nodes[k];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t t = nm_get(&m, h->out_dst[e]);
            if (t == RS_NONE)
                continue;
            edge_label(h, e, v, lab, sizeof lab);
            sb_printf(&dot, "  n%zu -> n%u [label=\"", k, t);
            dot_escape(&dot, lab);
            sb_puts(&dot, "\"];\n");
            json_t *x = json_object();
            jset(x, "from", jint(k));
            jset(x, "to", jint(t));
            jset(x, "label", jstr(lab));
            json_array_append_new(je, x);
        }
    }
    for (size_t k = 0; k < h->nweak; k++) {
        uint32_t a = nm_get(&m, h->weak[k].src), b = nm_get(&m, h->weak[k].dst);
        if (a == RS_NONE || b == RS_NONE)
            continue;
        rs_edge_label(h, h->weak[k].src, h->weak[k].lab, true, lab, sizeof lab);
        sb_printf(&dot, "  n%u -> n%u [style=dashed, label=\"", a, b);
        dot_escape(&dot, lab);
        sb_puts(&dot, "\"];\n");
    }
    size_t nroot = 0;
    for (size_t r = 0; r < h->nroots; r++) {
        uint32_t t = nm_get(&m, h->roots[r].obj);
        if (t == RS_NONE || !h->roots[r].counted)
            continue;
        bool holds = rs_root_holds(h, r);
        snprintf(d, sizeof d, "%s '%s'", rs_root_kind_name(h->roots[r].kind), h->roots[r].label);
        sb_printf(&dot, "  r%zu [shape=ellipse, fillcolor=\"#d8e4ff\", label=\"", nroot);
        dot_escape(&dot, d);
        sb_printf(&dot, "\"%s];\n  r%zu -> n%u%s;\n", holds ? "" : ", style=\"dashed,filled\"",
                  nroot, t, holds ? "" : " [style=dashed]");
        nroot++;
    }
    sb_puts(&dot, "}\n");
    rs_xfree(nodes);
    rs_xfree(m.keys);
    rs_xfree(m.vals);
    json_t *o = json_object();
    jset(o, "command", json_string("graph"));
    if (note && note[0])
        jset(o, "note", jstr(note));
    jset(o, "truncated", json_boolean(truncated));
    jset(o, "nodes", jn);
    jset(o, "edges", je);
    jset(o, "dot", jstr(dot.s));
    rs_xfree(dot.s);
    add_warnings(h, o);
    return o;
}

/* ---- check --------------------------------------------------------------------------------- */

typedef struct problems {
    json_t *arr;
    uint64_t total;
    size_t show;
} problems;

static void problem(problems *P, rs_heap *h, uint64_t addr, uint32_t obj, const char *kind,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void problem(problems *P, rs_heap *h, uint64_t addr, uint32_t obj, const char *kind,
                    const char *fmt, ...)
{
    P->total++;
    if (json_array_size(P->arr) >= P->show)
        return;
    char msg[700], d[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *x = json_object();
    jset(x, "address", jhex(addr));
    jset(x, "object", obj != RS_NONE ? jstr(rs_describe(h, obj, d, sizeof d)) : json_null());
    jset(x, "kind", json_string(kind));
    jset(x, "message", jstr(msg));
    json_array_append_new(P->arr, x);
}

static const char *type_name_at(const rs_heap *h, uint64_t taddr)
{
    for (size_t t = 0; t < h->ntypes; t++)
        if (h->types[t].addr == taddr)
            return h->types[t].name;
    return NULL;
}

static void check_bad_edge(rs_heap *h, problems *P, const rs_badedge *b)
{
    char lab[600];
    rs_edge_label(h, b->src, b->lab, false, lab, sizeof lab);
    uint32_t in = rs_find_containing(h, b->dst);
    if (in != RS_NONE) {
        char d[500];
        problem(P, h, h->addr[b->src], b->src, "reference",
                "%s points at 0x%llx, inside %s (offset %lld), not at an object", lab,
                (unsigned long long)b->dst, rs_describe(h, in, d, sizeof d),
                (long long)(b->dst - h->addr[in]));
        return;
    }
    unsigned char head[16];
    if (rs_read_mem(h, b->dst, head, sizeof head) == sizeof head) {
        uint32_t rc;
        uint64_t tp;
        memcpy(&rc, head, 4);
        memcpy(&tp, head + 8, 8);
        if (rc == RC_REFCNT_FREED) {
            const char *tn = type_name_at(h, tp);
            problem(P, h, h->addr[b->src], b->src, "reference",
                    "%s points at 0x%llx, a freed %s object (use after free: a missing incref "
                    "or an extra decref)",
                    lab, (unsigned long long)b->dst, tn ? tn : "?");
            return;
        }
        problem(P, h, h->addr[b->src], b->src, "reference",
                "%s points at 0x%llx, which is no live object", lab, (unsigned long long)b->dst);
        return;
    }
    problem(P, h, h->addr[b->src], b->src, "reference",
            "%s points at 0x%llx, which is unreadable memory", lab, (unsigned long long)b->dst);
}

/* The address a collector link names (registry.h, rc_gchead), with the
 * link's flag bit kept in bit 0 (addresses of gc heads are 8-aligned). */
static uint64_t gc_link_addr(const rs_heap *h, uint32_t link)
{
    return (h->reg.gc.link_base + ((uint64_t)(link & ~RC_GC_LINK_FLAG) << RC_GC_LINK_SHIFT)) |
           (link & RC_GC_LINK_FLAG);
}

/* gnext/gprev of object idx from its gc head's bytes. */
static void read_gc_head(const rs_heap *h, const unsigned char *g, uint64_t *gnext,
                         uint64_t *gprev, uint32_t idx)
{
    rc_gchead head;
    memcpy(&head, g, sizeof head);
    gnext[idx] = gc_link_addr(h, head.gc_next);
    gprev[idx] = gc_link_addr(h, head.gc_prev);
}

static void check_arenas(rs_heap *h, problems *P, uint64_t *gnext, uint64_t *gprev, uint8_t *has_head)
{
    uint32_t n = h->reg.narenas;
    if (!h->reg.arenas || !n)
        return;
    if (n > RS_MAX_ARENAS)
        n = RS_MAX_ARENAS;
    rc_arena *tab = rs_xmalloc((size_t)n * sizeof *tab);
    size_t got = rs_read_mem(h, (uint64_t)(uintptr_t)h->reg.arenas, tab, (size_t)n * sizeof *tab) /
                 sizeof *tab;
    uint64_t in_use = 0;
    unsigned char *buf = rs_xmalloc(RC_ARENA_SIZE);
    for (size_t i = 0; i < got; i++) {
        const rc_arena *a = &tab[i];
        if (!a->address)
            continue;
        in_use++;
        uint64_t aaddr = (uint64_t)(uintptr_t)h->reg.arenas + i * sizeof *tab;
        if (a->address & (RC_ARENA_SIZE - 1)) {
            problem(P, h, a->address, RS_NONE, "arena", "arena %zu: address not aligned to 1 MiB",
                    i);
            continue;
        }
        if (a->ntotalpools != RC_POOLS_PER_ARENA || a->ncarved > a->ntotalpools ||
            a->nfreepools > a->ntotalpools) {
            problem(P, h, aaddr, RS_NONE, "arena",
                    "arena %zu at 0x%llx: %u pools, %u carved, %u free: inconsistent", i,
                    (unsigned long long)a->address, a->ntotalpools, a->ncarved, a->nfreepools);
            continue;
        }
        size_t want = (size_t)a->ncarved * RC_POOL_SIZE;
        size_t rgot = want ? rs_read_mem(h, a->address, buf, want) : 0;
        if (rgot < want)
            problem(P, h, a->address, RS_NONE, "arena",
                    "arena %zu: only %zu of %zu carved bytes readable", i, rgot, want);
        uint32_t nfree = a->ntotalpools - a->ncarved;
        for (uint32_t p = 0; p < a->ncarved; p++) {
            size_t off = (size_t)p * RC_POOL_SIZE;
            if (off + RC_POOL_HEADER_SIZE > rgot)
                break;
            uint64_t paddr = a->address + off;
            rc_pool ph;
            memcpy(&ph, buf + off, sizeof ph);
            if (ph.magic != RC_POOL_MAGIC) {
                if (ph.magic != 0 || ph.kind != RC_KIND_FREE)
                    problem(P, h, paddr, RS_NONE, "pool",
                            "pool header: bad magic 0x%x / kind %u (neither in use nor free)",
                            ph.magic, ph.kind);
                nfree++;
                continue;
            }
            if (ph.kind != RC_KIND_PLAIN && ph.kind != RC_KIND_GC && ph.kind != RC_KIND_RAW) {
                problem(P, h, paddr, RS_NONE, "pool", "pool header: bad kind %u", ph.kind);
                continue;
            }
            if (ph.szidx >= RC_NUM_CLASSES) {
                problem(P, h, paddr, RS_NONE, "pool", "pool header: bad size class %u", ph.szidx);
                continue;
            }
            size_t bsize = ((size_t)ph.szidx + 1) * RC_ALIGN;
            if (ph.arenaindex != i)
                problem(P, h, paddr, RS_NONE, "pool",
                        "pool header: arena index %u, but the pool is in arena %zu",
                        ph.arenaindex, i);
            if (ph.maxnextoffset != RC_POOL_SIZE - bsize)
                problem(P, h, paddr, RS_NONE, "pool",
                        "pool header: last block offset %u, expected %zu for %zu-byte blocks",
                        ph.maxnextoffset, RC_POOL_SIZE - bsize, bsize);
            if (ph.nextoffset < RC_POOL_HEADER_SIZE || ph.nextoffset > RC_POOL_SIZE ||
                (ph.nextoffset - RC_POOL_HEADER_SIZE) % bsize) {
                problem(P, h, paddr, RS_NONE, "pool",
                        "pool header: high-water offset %u is not on a block boundary",
                        ph.nextoffset);
                continue;
            }
            size_t nblocks = (ph.nextoffset - RC_POOL_HEADER_SIZE) / bsize;
            if (ph.nused > nblocks)
                problem(P, h, paddr, RS_NONE, "pool",
                        "pool header: %u blocks in use, but only %zu were ever handed out",
                        ph.nused, nblocks);
            if (ph.kind == RC_KIND_RAW)
                continue;
            size_t head = ph.kind == RC_KIND_GC ? sizeof(rc_gchead) : 0;
            size_t live = 0;
            for (size_t bo = RC_POOL_HEADER_SIZE; bo < ph.nextoffset && off + bo + bsize <= rgot;
                 bo += bsize) {
                const unsigned char *blk = buf + off + bo;
                uint32_t rc;
                memcpy(&rc, blk + head, 4);
                if (rc == RC_REFCNT_FREED)
                    continue;
                live++;
                if (head) {
                    uint32_t idx = rs_find_object(h, paddr + bo + head);
                    if (idx != RS_NONE) {
                        read_gc_head(h, blk, gnext, gprev, idx);
                        has_head[idx] = 1;
                    }
                }
            }
            if (live > ph.nused)
                problem(P, h, paddr, RS_NONE, "pool",
                        "pool header: %u blocks in use, but %zu live objects found", ph.nused,
                        live);
        }
        if (nfree != a->nfreepools)
            problem(P, h, a->address, RS_NONE, "arena",
                    "arena %zu: %u free pools recorded, %u found", i, a->nfreepools, nfree);
    }
    rs_xfree(buf);
    rs_xfree(tab);
    if (in_use != h->reg.alloc.arenas_in_use)
        problem(P, h, h->regaddr, RS_NONE, "registry",
                "allocator statistics: %llu arenas in use, %llu in the arena table",
                (unsigned long long)h->reg.alloc.arenas_in_use, (unsigned long long)in_use);
}

static void check_gen_lists(rs_heap *h, problems *P, const uint64_t *gnext, const uint64_t *gprev,
                            const uint8_t *has_head)
{
    size_t n = h->nobj;
    uint8_t *seen = rs_xcalloc(n ? n : 1, 1);
    uint64_t ntracked = 0, per_gen[4] = {0};
    for (size_t i = 0; i < n; i++) {
        if (rs_obj_tracked(h, (uint32_t)i)) {
            ntracked++;
            per_gen[rs_obj_gen(h, (uint32_t)i)]++;
        }
    }
    for (int g = 0; g < 4; g++) {
        uint64_t haddr = (uint64_t)(uintptr_t)(g < 3 ? h->reg.gc.generations[g].head
                                                     : h->reg.gc.permanent.head);
        const char *gname = g < 3 ? (g == 0 ? "generation 0" : g == 1 ? "generation 1"
                                                                      : "generation 2")
                                  : "permanent generation";
        if (!haddr && !h->reg.initialized)
            continue;
        rc_gchead head;
        if (rs_read_mem(h, haddr, &head, sizeof head) != sizeof head) {
            problem(P, h, haddr, RS_NONE, "gc-list", "%s list head at 0x%llx: unreadable", gname,
                    (unsigned long long)haddr);
            continue;
        }
        uint64_t head_prev = gc_link_addr(h, head.gc_prev);
        uint64_t cur = gc_link_addr(h, head.gc_next), prev = haddr, count = 0;
        while (cur != haddr) {
            if (count > ntracked) {
                problem(P, h, prev, RS_NONE, "gc-list", "%s list: longer than the %llu tracked "
                        "objects (a loop)", gname, (unsigned long long)ntracked);
                break;
            }
            uint32_t idx = rs_find_object(h, cur + sizeof(rc_gchead));
            if (idx == RS_NONE || !has_head[idx]) {
                problem(P, h, cur, RS_NONE, "gc-list",
                        "%s list: link 0x%llx (after 0x%llx) is not a tracked object", gname,
                        (unsigned long long)cur, (unsigned long long)prev);
                break;
            }
            if (seen[idx]) {
                problem(P, h, h->addr[idx], idx, "gc-list", "%s list: object listed twice", gname);
                break;
            }
            seen[idx] = 1;
            count++;
            if ((gprev[idx] & ~(uint64_t)RC_GC_LINK_FLAG) != prev)
                problem(P, h, h->addr[idx], idx, "gc-list",
                        "%s list: gc_prev 0x%llx, but the previous node is 0x%llx", gname,
                        (unsigned long long)gprev[idx], (unsigned long long)prev);
            if (!rs_obj_tracked(h, idx) || (int)rs_obj_gen(h, idx) != g)
                problem(P, h, h->addr[idx], idx, "gc-list",
                        "%s list holds an object whose flags say %s generation %u", gname,
                        rs_obj_tracked(h, idx) ? "tracked," : "untracked,", rs_obj_gen(h, idx));
            prev = cur;
            cur = gnext[idx];
        }
        if (cur == haddr && (head_prev & ~(uint64_t)RC_GC_LINK_FLAG) != prev)
            problem(P, h, haddr, RS_NONE, "gc-list",
                    "%s list head: gc_prev 0x%llx, but the last node is 0x%llx", gname,
                    (unsigned long long)head_prev, (unsigned long long)prev);
        if (cur == haddr && count != per_gen[g])
            problem(P, h, haddr, RS_NONE, "gc-list",
                    "%s list: %llu objects linked, %llu objects carry its generation bits", gname,
                    (unsigned long long)count, (unsigned long long)per_gen[g]);
    }
    for (size_t i = 0; i < n; i++)
        if (rs_obj_tracked(h, (uint32_t)i) && !seen[i] && has_head[i])
            problem(P, h, h->addr[i], (uint32_t)i, "gc-list",
                    "tracked, but on no generation list");
    if (ntracked != h->reg.gc.tracked)
        problem(P, h, h->regaddr, RS_NONE, "registry",
                "collector: %llu objects tracked by the count, %llu by their flags",
                (unsigned long long)h->reg.gc.tracked, (unsigned long long)ntracked);
    rs_xfree(seen);
}

static json_t *build_check(rs_heap *h, const cmdline *c, int *status)
{
    problems P = {json_array(), 0, c->limit == 0 ? SIZE_MAX : (size_t)(c->limit_given ? c->limit : 100)};
    size_t n = h->nobj;
    const int32_t *unx = rs_unexplained(h);
    uint8_t *in_garbage = rs_xcalloc(n ? n : 1, 1);
    if (h->obj_garbage != RS_NONE)
        for (uint32_t e = h->out_off[h->obj_garbage]; e < h->out_off[h->obj_garbage + 1]; e++)
            in_garbage[h->out_dst[e]] = 1;
    uint64_t nsmall = 0, nlarge = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)i;
        const rs_type *t = rs_obj_type(h, v);
        uint64_t a = h->addr[i];
        uint32_t rc = h->refcnt[i], info = h->info[i];
        bool large = rs_blk(h, i) > RC_SMALL_MAX;
        large ? nlarge++ : nsmall++;
        if (!t->valid) {
            problem(&P, h, a, v, "type", "type pointer 0x%llx is unreadable",
                    (unsigned long long)t->addr);
            continue;
        }
        if (!t->registered)
            problem(&P, h, a, v, "type",
                    "type %s at 0x%llx is not in the registry's type table (tp_id %u)", t->name,
                    (unsigned long long)t->addr, t->tp_id);
        if (t->size < sizeof(rc_object) || t->size > ((uint64_t)1 << 32))
            problem(&P, h, a, v, "type", "type %s has an implausible size %llu", t->name,
                    (unsigned long long)t->size);
        if (rc == 0)
            problem(&P, h, a, v, "refcount",
                    "refcount 0 on a live object (being deallocated, or corrupt)");
        else if (rc >= 0x80000000u)
            problem(&P, h, a, v, "refcount", "corrupt refcount %u", rc);
        else if (unx[i] < 0)
            problem(&P, h, a, v, "refcount",
                    "refcount %u but %u holders: over-released by %d (an extra decref)", rc,
                    rc + (uint32_t)(-unx[i]), -unx[i]);
        if ((info & RC_OBF_TRACKED) && !t->gc)
            problem(&P, h, a, v, "flags", "tracked, but its type %s holds no references", t->name);
        if (!(info & RC_OBF_TRACKED) && t->gc && rc > 0)
            problem(&P, h, a, v, "flags",
                    "its type %s has references, but it is not tracked by the collector",
                    t->name);
        if (!large) {
            uint64_t off = (a & (RC_POOL_SIZE - 1));
            bool gc_block = off >= RC_POOL_HEADER_SIZE + sizeof(rc_gchead) &&
                            (off - RC_POOL_HEADER_SIZE) % rs_blk(h, i) == sizeof(rc_gchead);
            if (gc_block != t->gc)
                problem(&P, h, a, v, "flags", "in a %s pool, but its type %s %s references",
                        gc_block ? "collected" : "plain", t->name, t->gc ? "has" : "has no");
        }
        if (((info & RC_OBF_LARGE) != 0) != large)
            problem(&P, h, a, v, "flags", "large flag %s, but the object is %s",
                    (info & RC_OBF_LARGE) ? "set" : "clear",
                    large ? "on the large list" : "in a pool");
        if (((info & RC_OBF_GARBAGE) != 0) != (in_garbage[i] != 0))
            problem(&P, h, a, v, "flags", "garbage flag %s, but it is %sin gc.garbage",
                    (info & RC_OBF_GARBAGE) ? "set" : "clear", in_garbage[i] ? "" : "not ");
        uint32_t site = info >> RC_SITE_SHIFT;
        if (site && site >= h->nsites)
            problem(&P, h, a, v, "site", "site id %u is beyond the site table (%u sites)", site,
                    h->nsites);
    }
    rs_xfree(in_garbage);
    for (size_t k = 0; k < h->nbad; k++)
        check_bad_edge(h, &P, &h->bad[k]);
    if (h->nbad_total > h->nbad)
        P.total += h->nbad_total - h->nbad;
    if (nlarge != h->reg.alloc.large_count)
        problem(&P, h, h->regaddr, RS_NONE, "registry",
                "allocator statistics: %llu large objects counted, %llu live on the large list",
                (unsigned long long)h->reg.alloc.large_count, (unsigned long long)nlarge);
    if (nsmall > h->reg.alloc.blocks_in_use)
        problem(&P, h, h->regaddr, RS_NONE, "registry",
                "allocator statistics: %llu blocks in use, but %llu live small objects",
                (unsigned long long)h->reg.alloc.blocks_in_use, (unsigned long long)nsmall);

    for (size_t ti = 0; ti < h->ntypes; ti++) { /* field tables against instance sizes */
        const rs_type *t = &h->types[ti];
        for (uint32_t k = 0; t->valid && t->size >= sizeof(rc_object) && k < t->nfields; k++)
            if (rs_field_outside(&t->fields[k], t->size))
                problem(&P, h, t->addr, RS_NONE, "type",
                        "type %s: field '%s' (offset %u) lies outside its %llu-byte instances",
                        t->name, t->fields[k].name, t->fields[k].offset,
                        (unsigned long long)t->size);
    }

    uint64_t *gnext = rs_xcalloc(n ? n : 1, sizeof *gnext);
    uint64_t *gprev = rs_xcalloc(n ? n : 1, sizeof *gprev);
    uint8_t *has_head = rs_xcalloc(n ? n : 1, 1);
    check_arenas(h, &P, gnext, gprev, has_head);
    for (size_t i = 0; i < n; i++) { /* gc heads of large collected objects */
        if (rs_blk(h, i) > RC_SMALL_MAX && rs_obj_type(h, (uint32_t)i)->gc) {
            unsigned char w[sizeof(rc_gchead)];
            if (rs_read_mem(h, h->addr[i] - sizeof(rc_gchead), w, sizeof w) == sizeof w) {
                read_gc_head(h, w, gnext, gprev, (uint32_t)i);
                has_head[i] = 1;
            }
        }
    }
    bool lists = !h->reg.gc.collecting;
    if (lists)
        check_gen_lists(h, &P, gnext, gprev, has_head);
    rs_xfree(gnext);
    rs_xfree(gprev);
    rs_xfree(has_head);

    json_t *o = json_object();
    jset(o, "command", json_string("check"));
    jset(o, "ok", json_boolean(P.total == 0));
    json_t *x = json_object();
    jset(x, "objects", jint(n));
    jset(x, "references", jint(h->nedges));
    jset(x, "arenas", jint(h->arenas_scanned));
    jset(x, "pools", jint(h->pools_scanned));
    jset(x, "generation_lists", json_boolean(lists));
    jset(o, "checked", x);
    jset(o, "problems_total", jint(P.total));
    jset(o, "problems", P.arr);
    add_warnings(h, o);
    if (status && P.total)
        *status = 1;
    return o;
}

static void text_check(sb *b, const json_t *o)
{
    const json_t *x = json_object_get(o, "checked");
    if (gb(o, "ok"))
        sb_printf(b, "check: ok (%lld objects, %lld references, %lld arenas, %lld pools%s)\n",
                  (long long)gi(x, "objects"), (long long)gi(x, "references"),
                  (long long)gi(x, "arenas"), (long long)gi(x, "pools"),
                  gb(x, "generation_lists") ? ", generation lists" : "");
    else
        sb_printf(b, "check: %lld problems (%lld objects, %lld references checked)\n",
                  (long long)gi(o, "problems_total"), (long long)gi(x, "objects"),
                  (long long)gi(x, "references"));
    if (!gb(x, "generation_lists"))
        sb_puts(b, "  (generation lists not checked: core taken during a collection)\n");
    const json_t *arr = json_object_get(o, "problems");
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const json_t *p = json_array_get(arr, k);
        sb_printf(b, "  %s  %s: %s", gs(p, "address"), gs(p, "kind"), gs(p, "message"));
        if (json_is_string(json_object_get(p, "object")))
            sb_printf(b, " [%s]", gs(p, "object"));
        sb_puts(b, "\n");
    }
    if ((size_t)gi(o, "problems_total") > json_array_size(arr))
        sb_printf(b, "  ... %lld more\n",
                  (long long)((size_t)gi(o, "problems_total") - json_array_size(arr)));
    text_warnings(b, o);
}

/* ---- snapshots and diff --------------------------------------------------------------------- */

/* A snapshot keeps, per object, what identifies it (address, type, site)
 * and its size; types and sites by name, so two heaps of the same program
 * compare even when their tables differ. */
struct rs_snapshot {
    size_t nobj;
    uint64_t *addr;
    uint32_t *type; /* index into names[] */
    uint32_t *site; /* index into sites[] */
    uint64_t *bytes;
    size_t ntypes;
    char **tnames;
    size_t nsites;
    char **skeys;   /* "file:line\tfunc" */
};

static char *site_key(rs_heap *h, uint32_t id)
{
    const rs_site *s = rs_get_site(h, id);
    char buf[1200];
    if (!s)
        snprintf(buf, sizeof buf, "unknown site\t");
    else
        snprintf(buf, sizeof buf, "%s:%u\t%s", s->file, s->line, s->func);
    return rs_xstrdup(buf);
}

RS_EXPORT rs_snapshot *rs_heap_snapshot(rs_heap *h)
{
    if (!h || !h->loaded)
        return NULL;
    rs_snapshot *s = rs_xcalloc(1, sizeof *s);
    size_t n = h->nobj;
    s->nobj = n;
    s->addr = rs_xmalloc((n ? n : 1) * sizeof *s->addr);
    s->type = rs_xmalloc((n ? n : 1) * sizeof *s->type);
    s->site = rs_xmalloc((n ? n : 1) * sizeof *s->site);
    s->bytes = rs_xmalloc((n ? n : 1) * sizeof *s->bytes);
    if (n) { /* (an empty heap has no arrays: no memcpy from NULL) */
        memcpy(s->addr, h->addr, n * sizeof *s->addr);
        memcpy(s->type, h->tidx, n * sizeof *s->type);
    }
    for (size_t i = 0; i < n; i++)
        s->bytes[i] = rs_bytes(h, (uint32_t)i);
    s->ntypes = h->ntypes;
    s->tnames = rs_xmalloc((h->ntypes ? h->ntypes : 1) * sizeof *s->tnames);
    for (size_t t = 0; t < h->ntypes; t++)
        s->tnames[t] = rs_xstrdup(h->types[t].name);
    /* sites: ids beyond the table all become "unknown" (index 0) */
    s->nsites = h->nsites ? h->nsites : 1;
    s->skeys = rs_xcalloc(s->nsites, sizeof *s->skeys);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = rs_obj_site(h, (uint32_t)i);
        if (id >= s->nsites)
            id = 0;
        s->site[i] = id;
        if (!s->skeys[id])
            s->skeys[id] = site_key(h, id);
    }
    return s;
}

RS_EXPORT void rs_snapshot_destroy(rs_snapshot *s)
{
    if (!s)
        return;
    for (size_t t = 0; t < s->ntypes; t++)
        rs_xfree(s->tnames[t]);
    for (size_t k = 0; k < s->nsites; k++)
        rs_xfree(s->skeys[k]);
    rs_xfree(s->tnames);
    rs_xfree(s->skeys);
    rs_xfree(s->addr);
    rs_xfree(s->type);
    rs_xfree(s->site);
    rs_xfree(s->bytes);
    rs_xfree(s);
}

/* A small string -> index map for the diff's keys. */
typedef struct str_map {
    const char **keys;
    uint32_t *vals;
    size_t cap, n;
} str_map;

static size_t str_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint32_t sm_get_or_add(str_map *m, const char *k)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t oc = m->cap;
        const char **ok = m->keys;
        uint32_t *ov = m->vals;
        m->cap = oc ? oc * 2 : 64;
        m->keys = rs_xcalloc(m->cap, sizeof *m->keys);
        m->vals = rs_xmalloc(m->cap * sizeof *m->vals);
        for (size_t i = 0; i < oc; i++) {
            if (!ok[i])
                continue;
            size_t s = str_hash(ok[i]) & (m->cap - 1);
            while (m->keys[s])
                s = (s + 1) & (m->cap - 1);
            m->keys[s] = ok[i];
            m->vals[s] = ov[i];
        }
        rs_xfree(ok);
        rs_xfree(ov);
    }
    size_t s = str_hash(k) & (m->cap - 1);
    while (m->keys[s]) {
        if (!strcmp(m->keys[s], k))
            return m->vals[s];
        s = (s + 1) & (m->cap - 1);
    }
    m->keys[s] = k;
    m->vals[s] = (uint32_t)m->n;
    return (uint32_t)m->n++;
}

typedef struct diff_row {
    uint32_t key;
    int64_t old_n, new_n, old_b, new_b;
} diff_row;

static int diff_row_cmp(const void *a, const void *b)
{
    const diff_row *x = a, *y = b;
    int64_t dx = x->new_b - x->old_b, dy = y->new_b - y->old_b;
    if (dx != dy)
        return dx > dy ? -1 : 1;
    int64_t cx = x->new_n - x->old_n, cy = y->new_n - y->old_n;
    if (cx != cy)
        return cx > cy ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static json_t *diff_rows(diff_row *rows, size_t n, const char **names, const char *what,
                         size_t show)
{
    RS_QSORT(rows, n, sizeof *rows, diff_row_cmp);
    json_t *a = json_array();
    size_t shown = 0;
    for (size_t k = 0; k < n && shown < show; k++) {
        const diff_row *r = &rows[k];
        if (r->old_n == r->new_n && r->old_b == r->new_b)
            continue;
        json_t *x = json_object();
        const char *nm = names[r->key];
        if (!strcmp(what, "site")) {
            const char *tab = strchr(nm, '\t');
            char buf[1200];
            snprintf(buf, sizeof buf, "%.*s", tab ? (int)(tab - nm) : (int)strlen(nm), nm);
            jset(x, "site", jstr(buf));
            jset(x, "function", tab && tab[1] ? jstr(tab + 1) : json_null());
        } else {
            jset(x, what, jstr(nm));
        }
        jset(x, "old_objects", jsint(r->old_n));
        jset(x, "new_objects", jsint(r->new_n));
        jset(x, "objects_delta", jsint(r->new_n - r->old_n));
        jset(x, "old_bytes", jsint(r->old_b));
        jset(x, "new_bytes", jsint(r->new_b));
        jset(x, "bytes_delta", jsint(r->new_b - r->old_b));
        json_array_append_new(a, x);
        shown++;
    }
    return a;
}

static json_t *build_diff(rs_heap *h, const rs_snapshot *old, const cmdline *c)
{
    size_t n = h->nobj;
    /* map old and new types and sites to shared keys */
    str_map tm = {0}, sm = {0};
    uint32_t *old_t = rs_xmalloc((old->ntypes ? old->ntypes : 1) * sizeof *old_t);
    for (size_t t = 0; t < old->ntypes; t++)
        old_t[t] = sm_get_or_add(&tm, old->tnames[t]);
    uint32_t *new_t = rs_xmalloc((h->ntypes ? h->ntypes : 1) * sizeof *new_t);
    for (size_t t = 0; t < h->ntypes; t++)
        new_t[t] = sm_get_or_add(&tm, h->types[t].name);
    uint32_t *old_s = rs_xmalloc(old->nsites * sizeof *old_s);
    for (size_t k = 0; k < old->nsites; k++)
        old_s[k] = old->skeys[k] ? sm_get_or_add(&sm, old->skeys[k]) : RS_NONE;
    size_t nsites_new = h->nsites ? h->nsites : 1;
    char **new_skeys = rs_xcalloc(nsites_new, sizeof *new_skeys);
    uint32_t *new_s = rs_xmalloc(nsites_new * sizeof *new_s);
    for (size_t k = 0; k < nsites_new; k++)
        new_s[k] = RS_NONE;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = rs_obj_site(h, (uint32_t)i);
        if (id >= nsites_new)
            id = 0;
        if (new_s[id] == RS_NONE) {
            new_skeys[id] = site_key(h, id);
            new_s[id] = sm_get_or_add(&sm, new_skeys[id]);
        }
    }
    diff_row *trows = rs_xcalloc(tm.n ? tm.n : 1, sizeof *trows);
    diff_row *srows = rs_xcalloc(sm.n ? sm.n : 1, sizeof *srows);
    for (size_t k = 0; k < tm.n; k++)
        trows[k].key = (uint32_t)k;
    for (size_t k = 0; k < sm.n; k++)
        srows[k].key = (uint32_t)k;
    int64_t old_tot_n = 0, old_tot_b = 0, new_tot_n = 0, new_tot_b = 0;
    for (size_t i = 0; i < old->nobj; i++) {
        trows[old_t[old->type[i]]].old_n++;
        trows[old_t[old->type[i]]].old_b += (int64_t)old->bytes[i];
        srows[old_s[old->site[i]]].old_n++;
        srows[old_s[old->site[i]]].old_b += (int64_t)old->bytes[i];
        old_tot_n++;
        old_tot_b += (int64_t)old->bytes[i];
    }
    /* born: no old object with the same address, type and site */
    uint32_t *born = rs_xmalloc((n ? n : 1) * sizeof *born);
    size_t nborn = 0;
    int64_t born_b = 0;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t tk = new_t[h->tidx[i]];
        uint32_t id = rs_obj_site(h, (uint32_t)i);
        uint32_t sk = new_s[id < nsites_new ? id : 0];
        trows[tk].new_n++;
        trows[tk].new_b += (int64_t)rs_bytes(h, i);
        srows[sk].new_n++;
        srows[sk].new_b += (int64_t)rs_bytes(h, i);
        new_tot_n++;
        new_tot_b += (int64_t)rs_bytes(h, i);
        while (j < old->nobj && old->addr[j] < h->addr[i])
            j++;
        bool same = j < old->nobj && old->addr[j] == h->addr[i] &&
                    old_t[old->type[j]] == tk && old_s[old->site[j]] == sk;
        if (!same) {
            born[nborn++] = (uint32_t)i;
            born_b += (int64_t)rs_bytes(h, i);
        }
    }
    int64_t gone_n = old_tot_n - (new_tot_n - (int64_t)nborn);
    int64_t gone_b = old_tot_b - (new_tot_b - born_b);
    size_t show = lim(c, SIZE_MAX);

    json_t *o = json_object();
    jset(o, "command", json_string("diff"));
    json_t *x = json_object();
    jset(x, "objects", jsint(old_tot_n));
    jset(x, "bytes", jsint(old_tot_b));
    jset(o, "old", x);
    x = json_object();
    jset(x, "objects", jsint(new_tot_n));
    jset(x, "bytes", jsint(new_tot_b));
    jset(o, "new", x);
    x = json_object();
    jset(x, "objects", jsint(new_tot_n - old_tot_n));
    jset(x, "bytes", jsint(new_tot_b - old_tot_b));
    jset(o, "delta", x);
    /* names by key, for the rows */
    const char **tnames = rs_xcalloc(tm.n ? tm.n : 1, sizeof *tnames);
    for (size_t k = 0; k < tm.cap; k++)
        if (tm.keys[k])
            tnames[tm.vals[k]] = tm.keys[k];
    const char **snames = rs_xcalloc(sm.n ? sm.n : 1, sizeof *snames);
    for (size_t k = 0; k < sm.cap; k++)
        if (sm.keys[k])
            snames[sm.vals[k]] = sm.keys[k];
    jset(o, "by_type", diff_rows(trows, tm.n, tnames, "type", show));
    jset(o, "by_site", diff_rows(srows, sm.n, snames, "site", show));
    x = json_object();
    jset(x, "objects", jint(nborn));
    jset(x, "bytes", jsint(born_b));
    jset(x, "types", type_histogram(h, born, nborn, show == SIZE_MAX ? 0 : show));
    json_t *ex = json_array();
    for (size_t k = 0; k < nborn && k < show; k++)
        json_array_append_new(ex, jobj(h, born[k]));
    jset(x, "examples", ex);
    jset(o, "born", x);
    x = json_object();
    jset(x, "objects", jsint(gone_n));
    jset(x, "bytes", jsint(gone_b));
    jset(o, "died", x);
    jset(o, "caveat", json_string("an object is the same if it has the same address, type and "
                                  "site; a freed object whose block was reused by a new object of "
                                  "the same type and site counts as old"));
    rs_xfree(tnames);
    rs_xfree(snames);
    rs_xfree(born);
    rs_xfree(trows);
    rs_xfree(srows);
    rs_xfree(old_t);
    rs_xfree(new_t);
    rs_xfree(old_s);
    rs_xfree(new_s);
    for (size_t k = 0; k < nsites_new; k++)
        rs_xfree(new_skeys[k]);
    rs_xfree(new_skeys);
    rs_xfree(tm.keys);
    rs_xfree(tm.vals);
    rs_xfree(sm.keys);
    rs_xfree(sm.vals);
    add_warnings(h, o);
    return o;
}

static void text_diff_rows(sb *b, const json_t *a, const char *what)
{
    sb_printf(b, "  %10s  %12s  %10s  %12s  %s\n", "objects", "bytes", "now", "bytes now", what);
    for (size_t k = 0; k < json_array_size(a); k++) {
        const json_t *r = json_array_get(a, k);
        sb_printf(b, "  %+10lld  %+12lld  %10lld  %12lld  %s", (long long)gi(r, "objects_delta"),
                  (long long)gi(r, "bytes_delta"), (long long)gi(r, "new_objects"),
                  (long long)gi(r, "new_bytes"), gs(r, what));
        if (json_is_string(json_object_get(r, "function")))
            sb_printf(b, " in %s()", gs(r, "function"));
        sb_puts(b, "\n");
    }
}

static void text_diff(sb *b, const json_t *o)
{
    const json_t *d = json_object_get(o, "delta"), *ol = json_object_get(o, "old"),
                 *nw = json_object_get(o, "new");
    sb_printf(b, "diff: %+lld objects, %+lld bytes (old: %lld objects, %lld bytes; new: %lld "
                 "objects, %lld bytes)\n",
              (long long)gi(d, "objects"), (long long)gi(d, "bytes"), (long long)gi(ol, "objects"),
              (long long)gi(ol, "bytes"), (long long)gi(nw, "objects"), (long long)gi(nw, "bytes"));
    sb_puts(b, "by type:\n");
    text_diff_rows(b, json_object_get(o, "by_type"), "type");
    sb_puts(b, "by site:\n");
    text_diff_rows(b, json_object_get(o, "by_site"), "site");
    const json_t *born = json_object_get(o, "born"), *died = json_object_get(o, "died");
    sb_printf(b, "born since the snapshot: %lld objects (%lld bytes): ",
              (long long)gi(born, "objects"), (long long)gi(born, "bytes"));
    text_type_hist(b, json_object_get(born, "types"));
    sb_puts(b, "\n");
    const json_t *ex = json_object_get(born, "examples");
    for (size_t k = 0; k < json_array_size(ex); k++)
        sb_printf(b, "  %s\n", desc_of(json_array_get(ex, k)));
    sb_printf(b, "died since the snapshot: %lld objects (%lld bytes)\n",
              (long long)gi(died, "objects"), (long long)gi(died, "bytes"));
    sb_printf(b, "(%s)\n", gs(o, "caveat"));
    text_warnings(b, o);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static const char help_text[] =
    "overview [--limit N]    summary, cycles, leaks and top retainers in one report (10 rows each)\n"
    "summary                 heap totals: generations, counts, thresholds, collector stats\n"
    "types [--limit N]       objects and bytes by type, largest first\n"
    "sites [--limit N]       objects and bytes by allocation site, largest first\n"
    "refs OBJ                an object: refcount reconciliation, referrers, referents\n"
    "cycles [--limit N]      what a full collection would free, by cycle (--limit 0: all)\n"
    "garbage                 gc.garbage and why each object is in it\n"
    "roots                   what holds memory: roots, globals, closures, retained sizes\n"
    "leaks                   references no holder explains (missing decref), over-released objects\n"
    "path OBJ                the shortest chain of references from a root to OBJ\n"
    "retained [OBJ]          dominator tree: top retainers, or what OBJ retains\n"
    "graph OBJ | --cycle N   Graphviz DOT of a neighbourhood (--depth D, --backrefs) or a cycle\n"
    "check                   heap and registry consistency\n"
    "diff                    growth by type and site since a snapshot (rs_heap_diff)\n"
    "Every command takes --json. OBJ is 0xADDR, or a root or global name.\n";

RS_EXPORT const char *rs_commands_help(void) { return help_text; }

static char *usage_error(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *usage_error(int *status, const char *fmt, ...)
{
    sb b = {0};
    sb_puts(&b, "refscope: ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    sb_puts(&b, "\n");
    if (status)
        *status = 2;
    return sb_take(&b);
}

/* ---- overview ------------------------------------------------------------------------- */

/*
 * A first look in one report: the summary, what a full collection would
 * free, the leaks, the top retainers (--limit rows each, 10 unless given).
 * The collector mirror and the dominators are computed side by side
 * (rs_heap_analyze: two threads on a large heap).
 */
static json_t *build_overview(rs_heap *h, const cmdline *c, int *status)
{
    cmdline each = *c;
    if (!each.limit_given) {
        each.limit = 10;
        each.limit_given = true;
    }
    rs_heap_analyze(h, RS_ANALYSIS_COLLECTOR | RS_ANALYSIS_DOMINATORS);
    json_t *o = json_object();
    jset(o, "command", json_string("overview"));
    jset(o, "summary", build_summary(h));
    jset(o, "cycles", build_cycles(h, &each));
    jset(o, "leaks", build_leaks(h, &each, status));
    jset(o, "retained", build_retained(h, &each, RS_NONE, ""));
    return o;
}

static void text_overview(sb *b, const json_t *o)
{
    text_summary(b, json_object_get(o, "summary"));
    sb_puts(b, "\n");
    text_cycles(b, json_object_get(o, "cycles"));
    sb_puts(b, "\n");
    text_leaks(b, json_object_get(o, "leaks"));
    sb_puts(b, "\n");
    text_retained(b, json_object_get(o, "retained"));
}

static char *finish(json_t *o, const cmdline *c, void (*text)(sb *, const json_t *))
{
    char *out;
    if (c->json) {
        char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        size_t l = js ? strlen(js) : 0;
        out = rs_xmalloc(l + 2);
        if (js)
            memcpy(out, js, l);
        out[l] = '\n';
        out[l + 1] = 0;
        rs_xfree(js);
    } else {
        sb b = {0};
        text(&b, o);
        out = sb_take(&b);
    }
    json_decref(o);
    return out;
}

static void text_graph(sb *b, const json_t *o)
{
    if (json_is_string(json_object_get(o, "note")))
        sb_printf(b, "// %s\n", gs(o, "note"));
    sb_puts(b, gs(o, "dot"));
}

RS_EXPORT char *rs_heap_report(rs_heap *h, const char *command_line, int *status)
{
    if (status)
        *status = 0;
    if (!h || !h->loaded)
        return usage_error(status, "the heap is not loaded (rs_heap_load failed or was not called)");
    cmdline c;
    memset(&c, 0, sizeof c);
    char *out = NULL;
    if (!tokenize(&c, command_line)) {
        out = usage_error(status, "%s", c.err);
        goto done;
    }
    if (c.ntok == 0) {
        out = usage_error(status, "no command (try 'help')");
        goto done;
    }
    c.name = c.tok[0];
    if (!parse_options(&c, 1)) {
        out = usage_error(status, "%s", c.err);
        goto done;
    }
    const char *name = c.name;
    int want_pos_min = 0, want_pos_max = 0;
    if (!strcmp(name, "refs") || !strcmp(name, "path"))
        want_pos_min = want_pos_max = 1;
    else if (!strcmp(name, "retained") || !strcmp(name, "graph"))
        want_pos_max = 1;
    if (c.npos < want_pos_min || c.npos > want_pos_max) {
        if (!strcmp(name, "summary") || !strcmp(name, "types") || !strcmp(name, "sites") ||
            !strcmp(name, "refs") || !strcmp(name, "cycles") || !strcmp(name, "garbage") ||
            !strcmp(name, "roots") || !strcmp(name, "leaks") || !strcmp(name, "path") ||
            !strcmp(name, "retained") || !strcmp(name, "graph") || !strcmp(name, "check") ||
            !strcmp(name, "overview")) {
            out = usage_error(status, "%s: %s", name,
                              c.npos < want_pos_min ? "which object? (0xADDR or a root or global name)"
                                                    : "too many arguments");
            goto done;
        }
    }
    uint32_t obj = RS_NONE;
    char note[600] = "", err[600] = "";
    if (c.npos == 1 && want_pos_max == 1) {
        obj = resolve_obj(h, c.pos[0], note, sizeof note, err, sizeof err);
        if (obj == RS_NONE) {
            out = usage_error(status, "%s: %s", name, err);
            goto done;
        }
    }
    if (!strcmp(name, "summary")) {
        out = finish(build_summary(h), &c, text_summary);
    } else if (!strcmp(name, "types")) {
        out = finish(build_hist(h, &c, false), &c, text_hist);
    } else if (!strcmp(name, "sites")) {
        out = finish(build_hist(h, &c, true), &c, text_hist);
    } else if (!strcmp(name, "refs")) {
        out = finish(build_refs(h, &c, obj, note), &c, text_refs);
    } else if (!strcmp(name, "cycles")) {
        out = finish(build_cycles(h, &c), &c, text_cycles);
    } else if (!strcmp(name, "garbage")) {
        out = finish(build_garbage(h, &c), &c, text_garbage);
    } else if (!strcmp(name, "roots")) {
        out = finish(build_roots(h, &c), &c, text_roots);
    } else if (!strcmp(name, "leaks")) {
        out = finish(build_leaks(h, &c, status), &c, text_leaks);
    } else if (!strcmp(name, "path")) {
        out = finish(build_path(h, obj, note), &c, text_path_report);
    } else if (!strcmp(name, "retained")) {
        out = finish(build_retained(h, &c, obj, note), &c, text_retained);
    } else if (!strcmp(name, "graph")) {
        if ((obj == RS_NONE) == (c.cycle <= 0)) {
            out = usage_error(status, "graph: give an object or --cycle N (one of them)");
            goto done;
        }
        json_t *o = build_graph(h, &c, obj, note, err, sizeof err);
        if (!o) {
            out = usage_error(status, "%s", err);
            goto done;
        }
        out = finish(o, &c, text_graph);
    } else if (!strcmp(name, "check")) {
        out = finish(build_check(h, &c, status), &c, text_check);
    } else if (!strcmp(name, "overview")) {
        out = finish(build_overview(h, &c, status), &c, text_overview);
    } else if (!strcmp(name, "help")) {
        out = rs_xstrdup(help_text);
    } else if (!strcmp(name, "diff")) {
        out = usage_error(status, "diff compares with a snapshot: the front end calls "
                                  "rs_heap_snapshot / rs_heap_diff");
    } else {
        out = usage_error(status, "unknown command '%s' (try 'help')", name);
    }
done:
    rs_xfree(c.buf);
    return out;
}

RS_EXPORT char *rs_heap_diff(rs_heap *h, const rs_snapshot *old, const char *options, int *status)
{
    if (status)
        *status = 0;
    if (!h || !h->loaded)
        return usage_error(status, "the heap is not loaded");
    if (!old)
        return usage_error(status, "diff: no snapshot to compare with");
    cmdline c;
    memset(&c, 0, sizeof c);
    char *out;
    if (!tokenize(&c, options)) {
        out = usage_error(status, "%s", c.err);
    } else {
        c.name = "diff";
        int first = c.ntok > 0 && !strcmp(c.tok[0], "diff") ? 1 : 0;
        if (!parse_options(&c, first))
            out = usage_error(status, "%s", c.err);
        else if (c.npos)
            out = usage_error(status, "diff: unexpected argument '%s'", c.pos[0]);
        else
            out = finish(build_diff(h, old, &c), &c, text_diff);
    }
    rs_xfree(c.buf);
    return out;
}
