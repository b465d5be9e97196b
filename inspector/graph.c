/*
 * graph.c -- the analyses over the object graph.
 *
 *   rs_gc_analyze     what rc_gc_collect(2) would do now, step by step as
 *                     runtime/gc.c does it (see the comment there): the
 *                     candidates, gc_refs, the reachable closure, the legacy
 *                     finalizer closure, then what clearing the collectable
 *                     objects frees by refcount (the cascade); the result is
 *                     grouped by strongly connected component (iterative
 *                     Tarjan) into "cycles" with what hangs off them
 *   rs_unexplained    refcount reconciliation: refcount - (heap edges +
 *                     roots + stack slots) for every object
 *   rs_dominators     the dominator tree over a super root (semi-NCA: the
 *                     semidominators of Lengauer-Tarjan with iterative path
 *                     compression, then nearest common ancestors), retained
 *                     sizes bottom-up
 *   rs_shortest_path  BFS from the roots
 *   rs_heap_analyze   the collector mirror on the calling thread while a
 *                     second one reconciles refcounts and builds the
 *                     dominator tree (both are whole-heap passes of about
 *                     the same cost, and neither writes what the other reads)
 *
 * Node numbering for dominators and paths (engine_int.h): objects first,
 * then one node per root, the "unexplained references" pseudo root, the
 * super root. Nothing here recurses: every traversal keeps its own stack.
 */
#include "engine_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- reconciliation ------------------------------------------------------------ */

static int rootcount_cmp(const void *x, const void *y)
{
    const rs_rootcount *a = x, *b = y;
    return a->obj < b->obj ? -1 : a->obj > b->obj;
}

const rs_rootcount *rs_rootcounts(rs_heap *h, size_t *n)
{
    if (!h->rootcnt) {
        rs_rootcount *rc = rs_xmalloc((h->nroots ? h->nroots : 1) * sizeof *rc);
        size_t k = 0;
        for (size_t r = 0; r < h->nroots; r++) {
            const rs_root *R = &h->roots[r];
            if (!R->counted || R->obj == RS_NONE)
                continue;
            bool owns = rs_root_owns(R->kind);
            rc[k++] = (rs_rootcount){R->obj, owns, !owns, 0};
        }
        RS_QSORT(rc, k, sizeof *rc, rootcount_cmp);
        size_t m = 0; /* one entry per object */
        for (size_t i = 0; i < k; i++) {
            if (m && rc[m - 1].obj == rc[i].obj) {
                rc[m - 1].roots += rc[i].roots;
                rc[m - 1].slots += rc[i].slots;
            } else {
                rc[m++] = rc[i];
            }
        }
        h->rootcnt = rc;
        h->nrootcnt = m;
    }
    *n = h->nrootcnt;
    return h->rootcnt;
}

rs_rootcount rs_rootref(rs_heap *h, uint32_t obj)
{
    size_t n;
    const rs_rootcount *rc = rs_rootcounts(h, &n);
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rc[mid].obj < obj)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && rc[lo].obj == obj ? rc[lo] : (rs_rootcount){obj, 0, 0, 0};
}

bool rs_root_holds(rs_heap *h, size_t r)
{
    const rs_root *R = &h->roots[r];
    if (!R->counted || R->obj == RS_NONE)
        return false;
    if (rs_root_owns(R->kind))
        return true;
    uint32_t o = R->obj;
    if (h->refcnt[o] >= 0x80000000u)
        return true; /* corrupt count: assume the slot may hold it */
    int64_t excess = (int64_t)h->refcnt[o] - (int64_t)rs_indeg(h, o) - (int64_t)rs_rootref(h, o).roots;
    return excess > 0;
}

/* An object's unexplained references (see engine_int.h); 0 for a corrupt
 * count (2^31 or more: `check` says so; no leak finding). */
static inline int32_t unexplained_of(uint32_t refcnt, uint32_t indeg, uint32_t roots,
                                     uint32_t slots)
{
    if (refcnt >= 0x80000000u)
        return 0;
    int64_t d = (int64_t)refcnt - (int64_t)indeg - (int64_t)roots;
    if (d > 0)
        d -= d < (int64_t)slots ? d : (int64_t)slots;
    return d < INT32_MIN ? INT32_MIN : (int32_t)d; /* (d < 2^31: refcnt is) */
}

const int32_t *rs_unexplained(rs_heap *h)
{
    if (h->unexplained)
        return h->unexplained;
    size_t n = h->nobj, nrc, npos = 0, nneg = 0;
    rs_rootcounts(h, &nrc);
    rs_rootcount *rc = h->rootcnt;
    /* The result takes the words of the in-degrees (uint32_t and int32_t
     * may alias), each replaced by its object's result: the load's table
     * (rs_heap.deg), or counted here when the result is computed again
     * (the roots changed) -- no table of its own, which at a million
     * objects is 4 MB to fault in. (Its own after all while the collector
     * mirror reads the load's on another thread: rs_heap_analyze.) */
    uint32_t *deg = h->deg;
    int32_t *unx;
    if (deg && h->deg_shared) {
        /* the collector mirror reads the table on another thread */
        unx = rs_xmalloc((n ? n : 1) * sizeof *unx);
    } else {
        h->deg = NULL;
        if (!deg) {
            deg = rs_xcalloc(n ? n : 1, sizeof *deg);
            if (h->in_off)
                for (size_t i = 0; i < n; i++)
                    deg[i] = h->in_off[i + 1] - h->in_off[i];
            else
                for (size_t e = 0; e < h->nedges; e++)
                    deg[h->out_dst[e]]++;
        }
        unx = (int32_t *)deg;
    }
    /* the objects roots hold keep their in-degree (rs_indeg) */
    for (size_t k = 0; k < nrc; k++)
        rc[k].indeg = deg[rc[k].obj];
    /* every object as if no root held it (a loop without branches), then
     * the objects roots hold */
    for (size_t i = 0; i < n; i++) {
        int32_t u = unexplained_of(h->refcnt[i], deg[i], 0, 0);
        unx[i] = u;
        npos += u > 0;
        nneg += u < 0;
    }
    for (size_t k = 0; k < nrc; k++) {
        int32_t *u = &unx[rc[k].obj];
        npos -= *u > 0;
        nneg -= *u < 0;
        *u = unexplained_of(h->refcnt[rc[k].obj], rc[k].indeg, rc[k].roots, rc[k].slots);
        npos += *u > 0;
        nneg += *u < 0;
    }
    h->unexplained = unx;
    h->nunexplained = npos;
    h->noverreleased = nneg;
    return unx;
}

uint32_t rs_indeg(rs_heap *h, uint32_t i)
{
    if (!h->in_off) {
        /* An object no root points at has unexplained = refcount - indeg,
         * exactly unless the refcount is corrupt or the result was clamped;
         * rs_unexplained kept the root objects' own. */
        const int32_t *unx = rs_unexplained(h);
        rs_rootcount held = rs_rootref(h, i);
        if (held.roots || held.slots)
            return held.indeg;
        if (h->refcnt[i] < 0x80000000u && unx[i] != INT32_MIN)
            return (uint32_t)((int64_t)h->refcnt[i] - unx[i]);
        rs_in_offsets(h);
    }
    return h->in_off[i + 1] - h->in_off[i];
}

/* ---- the collector's unreachable set ---------------------------------------------- */

enum { CAND = 0x80 }; /* temporary bit in state[] */

typedef struct comp_info {
    uint32_t first;   /* index into comp_members */
    uint32_t n;
    bool cycle;
} comp_info;

/*
 * The order `cycles` lists groups in: collectable before uncollectable,
 * then by bytes (members + hanging off) descending, then by first member
 * (the smallest object index; 0 for a group without members), ties in
 * group order. Returns order[k] = the group at position k.
 *
 * Without a comparison sort of all groups (there are as many as half the
 * objects): the distinct (uncollectable, bytes) keys, usually few, are
 * sorted; a counting sort by key then takes the groups in first-member
 * order, which a scan of the grouped objects (gl, in index order) gives.
 */
typedef struct group_key {
    uint64_t bytes;
    uint32_t uncollectable;
    uint32_t index;       /* its index before the sort */
    uint32_t start;       /* groups with this key: count, then first position */
} group_key;

static int group_key_cmp(const void *a, const void *b)
{
    const group_key *x = a, *y = b;
    if (x->uncollectable != y->uncollectable)
        return x->uncollectable ? 1 : -1;
    return x->bytes > y->bytes ? -1 : x->bytes < y->bytes;
}

static uint32_t *group_order(const rs_group *groups, size_t ngroups, const uint32_t *group,
                             const uint8_t *role, const uint32_t *gl, size_t ngl)
{
    size_t cap = 16;
    while (cap < ngroups * 2)
        cap *= 2;
    uint32_t *slot = rs_xcalloc(cap, sizeof *slot); /* key index + 1; 0 empty */
    group_key *keys = rs_xmalloc((ngroups ? ngroups : 1) * sizeof *keys);
    uint32_t *key_of = rs_xmalloc((ngroups ? ngroups : 1) * sizeof *key_of);
    size_t nkeys = 0, mask = cap - 1;
    for (size_t g = 0; g < ngroups; g++) {
        uint64_t b = groups[g].bytes + groups[g].hang_bytes;
        uint32_t u = groups[g].uncollectable;
        size_t s = (size_t)(((b * 2 + u) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
        while (slot[s] && (keys[slot[s] - 1].bytes != b || keys[slot[s] - 1].uncollectable != u))
            s = (s + 1) & mask;
        if (!slot[s]) {
            keys[nkeys] = (group_key){b, u, (uint32_t)nkeys, 0};
            slot[s] = (uint32_t)++nkeys;
        }
        key_of[g] = slot[s] - 1;
        keys[slot[s] - 1].start++;
    }
    rs_xfree(slot);
    /* sort the keys, remembering where each went */
    uint32_t *rank = rs_xmalloc((nkeys ? nkeys : 1) * sizeof *rank);
    RS_QSORT(keys, nkeys, sizeof *keys, group_key_cmp);
    uint32_t pos = 0;
    for (size_t k = 0; k < nkeys; k++) {
        rank[keys[k].index] = (uint32_t)k;
        uint32_t c = keys[k].start;
        keys[k].start = pos;
        pos += c;
    }
    /* groups in first-member order: those without members and the one of
     * object 0 (first member 0, in group order), then by the scan */
    uint32_t *order = rs_xmalloc((ngroups ? ngroups : 1) * sizeof *order);
    uint8_t *placed = rs_xcalloc(ngroups ? ngroups : 1, 1);
    uint32_t g0 = ngl && gl[0] == 0 && role[0] == 1 ? group[0] : RS_NONE;
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].nmembers && g != g0)
            continue;
        order[keys[rank[key_of[g]]].start++] = (uint32_t)g;
        placed[g] = 1;
    }
    for (size_t k = 0; k < ngl; k++) {
        uint32_t i = gl[k], g = group[i];
        if (i == 0 || role[i] != 1 || placed[g])
            continue;
        order[keys[rank[key_of[g]]].start++] = g;
        placed[g] = 1;
    }
    rs_xfree(placed);
    rs_xfree(rank);
    rs_xfree(key_of);
    rs_xfree(keys);
    return order;
}

/*
 * Strongly connected components of the objects with in_set[v] set (edges
 * leaving the set are ignored): Tarjan's algorithm, iterative, with
 * Pearce's bookkeeping ("A space-efficient algorithm for finding strongly
 * connected components", 2016): one word per object, comp_of itself, holds
 * the DFS number, then the low link, then the component, instead of three
 * (at a million objects, 8 MB less to fault in and clear). The DFS and so
 * the order components complete in are Tarjan's: reverse topological. At
 * the end comp_of[v] is TJ_DONE - k for v in the k-th component to
 * complete (k from 0), RS_NONE outside the set (when list is NULL; with
 * a list of the set's objects, in index order, only their words are
 * touched: the others are left as they were). Returns
 * the number of components; their members are listed in *members_ret,
 * component c at (*comps_ret)[c].
 *
 * While it runs, comp_of[v] is 0 (in the set, not visited), a DFS number
 * or low link (1, 2, ... counting up; the count goes down again as objects
 * are assigned, so it stays below the number of objects visited and not
 * yet assigned, plus one), or a finished component (TJ_DONE - k for the
 * k-th, counting down). The two ranges cannot meet while there are fewer
 * than TJ_DONE - 1 objects, and a finished component's number is never
 * below a live low link, so the one comparison `comp_of[w] < comp_of[v]`
 * is Tarjan's "w is on the stack and earlier than v's low link".
 */
#define TJ_DONE (UINT32_MAX - 1)
static size_t tarjan(const rs_heap *h, const uint8_t *in_set, const uint32_t *list, size_t nlist,
                     uint32_t *comp_of, comp_info **comps_ret, uint32_t **members_ret)
{
    size_t n = list ? nlist : h->nobj, m = 0;
    uint32_t *rix = comp_of;
    if (list) {
        /* only the set's words are read, and only theirs are written */
        for (size_t k = 0; k < nlist; k++)
            rix[list[k]] = 0;
        m = nlist;
    } else {
        for (size_t i = 0; i < n; i++) {
            rix[i] = in_set[i] ? 0 : RS_NONE;
            m += in_set[i] != 0;
        }
    }
    /* the stacks, members and components are at most m long */
    uint32_t *stack = rs_xmalloc((m ? m : 1) * sizeof *stack);
    uint32_t *cs_v = rs_xmalloc((m ? m : 1) * sizeof *cs_v);
    uint32_t *cs_e = rs_xmalloc((m ? m : 1) * sizeof *cs_e);
    uint8_t *cs_root = rs_xmalloc(m ? m : 1); /* no edge has lowered its low link */
    uint32_t *members = rs_xmalloc((m ? m : 1) * sizeof *members);
    comp_info *comps = rs_xmalloc((m ? m : 1) * sizeof *comps);
    size_t ncomps = 0, nmem = 0;
    size_t sp = 0, csp = 0;
    uint32_t index = 1, done = TJ_DONE;

    for (size_t k = 0; k < n; k++) {
        size_t r = list ? list[k] : k;
        if (rix[r])
            continue; /* outside the set, or visited */
        rix[r] = index++;
        cs_v[csp] = (uint32_t)r;
        cs_e[csp] = h->out_off[r];
        cs_root[csp++] = 1;
        while (csp) {
            uint32_t v = cs_v[csp - 1];
            if (cs_e[csp - 1] < h->out_off[v + 1]) {
                uint32_t w = h->out_dst[cs_e[csp - 1]++];
                if (!in_set[w])
                    continue;
                if (!rix[w]) {
                    rix[w] = index++;
                    cs_v[csp] = w;
                    cs_e[csp] = h->out_off[w];
                    cs_root[csp++] = 1;
                } else if (rix[w] < rix[v]) {
                    rix[v] = rix[w];
                    cs_root[csp - 1] = 0;
                }
                continue;
            }
            csp--;
            if (cs_root[csp]) {
                /* v and what was left on the stack after it form a component */
                comp_info *c = &comps[ncomps];
                c->first = (uint32_t)nmem;
                index--;
                while (sp && rix[v] <= rix[stack[sp - 1]]) {
                    uint32_t w = stack[--sp];
                    rix[w] = done;
                    members[nmem++] = w;
                    index--;
                }
                rix[v] = done--;
                members[nmem++] = v;
                c->n = (uint32_t)(nmem - c->first);
                c->cycle = c->n > 1;
                for (uint32_t e = h->out_off[v]; !c->cycle && e < h->out_off[v + 1]; e++)
                    c->cycle = h->out_dst[e] == v;
                ncomps++;
            } else {
                stack[sp++] = v;
            }
            if (csp) {
                uint32_t u = cs_v[csp - 1];
                if (rix[v] < rix[u]) {
                    rix[u] = rix[v];
                    cs_root[csp - 1] = 0;
                }
            }
        }
    }
    rs_xfree(stack);
    rs_xfree(cs_v);
    rs_xfree(cs_e);
    rs_xfree(cs_root);
    *comps_ret = comps;
    *members_ret = members;
    return ncomps;
}

const rs_gc_result *rs_gc_analyze(rs_heap *h)
{
    if (h->gc)
        return h->gc;
    size_t n = h->nobj;
    rs_gc_result *R = rs_xcalloc(1, sizeof *R);
    uint8_t *state = rs_xmalloc(n ? n : 1);
    /* the in-degrees the load counted, unless rs_unexplained has taken them */
    const uint32_t *deg = h->deg;
    uint32_t *refs = deg ? rs_xcalloc(n ? n : 1, sizeof *refs)
                         : rs_xmalloc((n ? n : 1) * sizeof *refs);
    uint32_t *queue = rs_xmalloc((n ? n : 1) * sizeof *queue);
    /* per type: collected (its instances are candidates when tracked), has a legacy finalizer */
    enum { T_GC = 1, T_LEGACY = 2 };
    uint8_t *tf = rs_xmalloc(h->ntypes ? h->ntypes : 1);
    for (size_t t = 0; t < h->ntypes; t++)
        tf[t] = (uint8_t)((h->types[t].gc ? T_GC : 0) | (h->types[t].legacy_del ? T_LEGACY : 0));

    /* update_refs: gc_refs = refcount (0 is treated as 1, as gc.c does);
     * candidates of collect(2) are on the lists of generations 0..2:
     * tracked, of a collected type, not in the permanent generation.
     * With the load's in-degrees, subtract_refs needs only the references
     * from the other objects, which are few: what the candidates' leave of
     * a count is refcount - in-degree + those (gc.c stops a count at 0: the
     * sign test below does as well); refs[] (zeroed) counts them here. */
    for (size_t i = 0; i < n; i++) {
        uint32_t info = h->info[i];
        bool cand = (info & RC_OBF_TRACKED) && (info & RC_OBF_GEN_MASK) != RC_GEN_PERMANENT &&
                    (tf[h->tidx[i]] & T_GC);
        state[i] = cand ? CAND : 0;
        R->n_candidates += cand;
        if (deg) {
            if (!cand)
                for (uint32_t e = h->out_off[i]; e < h->out_off[i + 1]; e++)
                    refs[h->out_dst[e]]++;
        } else {
            refs[i] = !cand ? 0 : h->refcnt[i] ? h->refcnt[i] : 1;
        }
    }
    size_t qh = 0, qt = 0;
    if (deg) {
        for (size_t i = 0; i < n; i++) {
            if (!(state[i] & CAND))
                continue;
            int64_t left = (int64_t)(h->refcnt[i] ? h->refcnt[i] : 1) - deg[i] + refs[i];
            if (left > 0) {
                state[i] = CAND | RS_GC_REACHABLE;
                queue[qt++] = (uint32_t)i;
            }
        }
    } else {
        /* subtract_refs: references from candidates to candidates */
        for (size_t i = 0; i < n; i++) {
            if (!(state[i] & CAND))
                continue;
            for (uint32_t e = h->out_off[i]; e < h->out_off[i + 1]; e++) {
                uint32_t d = h->out_dst[e];
                if ((state[d] & CAND) && refs[d] > 0)
                    refs[d]--;
            }
        }
        for (size_t i = 0; i < n; i++) {
            if ((state[i] & CAND) && refs[i] > 0) {
                state[i] = CAND | RS_GC_REACHABLE;
                queue[qt++] = (uint32_t)i;
            }
        }
    }
    /* move_unreachable: what gc_refs > 0 reaches, through candidates, lives */
    while (qh < qt) {
        uint32_t v = queue[qh++];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            if (state[d] == CAND) {
                state[d] = CAND | RS_GC_REACHABLE;
                queue[qt++] = d;
            }
        }
    }
    /* move_legacy_finalizers + move_legacy_finalizer_reachable (a pass
     * over the objects only when some type has a legacy finalizer) */
    bool any_legacy = false;
    for (size_t t = 0; t < h->ntypes; t++)
        any_legacy |= (tf[t] & T_LEGACY) != 0;
    qh = qt = 0;
    for (size_t i = 0; any_legacy && i < n; i++) {
        if (state[i] == CAND && (tf[h->tidx[i]] & T_LEGACY)) {
            state[i] = CAND | RS_GC_LEGACY;
            queue[qt++] = (uint32_t)i;
        }
    }
    while (qh < qt) {
        uint32_t v = queue[qh++];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            if (state[d] == CAND) {
                state[d] = CAND | RS_GC_LEGACY;
                queue[qt++] = d;
            }
        }
    }
    rs_xfree(tf);
    /* What is left is collectable. In the same pass: the CAND bits go, the
     * unreachable set (in_u, and ulist: its objects in index order), no
     * groups yet, the cascade's counts (in refs, no longer needed) and its
     * start, the collectable objects in index order. */
    uint8_t *in_u = rs_xmalloc(n ? n : 1);
    uint32_t *group = rs_xmalloc((n ? n : 1) * sizeof *group);
    uint8_t *role = rs_xcalloc(n ? n : 1, 1);
    uint32_t *ulist = rs_xmalloc((n ? n : 1) * sizeof *ulist);
    size_t nu = 0;
    uint32_t *cnt = refs;
    qt = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned st = state[i] == CAND ? RS_GC_COLLECTABLE : state[i] & 0x7f;
        state[i] = (uint8_t)st;
        if (st == RS_GC_COLLECTABLE) {
            R->n_collectable++;
            R->b_collectable += rs_bytes(h, i);
            queue[qt++] = (uint32_t)i;
        } else if (st == RS_GC_LEGACY) {
            R->n_legacy++;
            R->b_legacy += rs_bytes(h, i);
        }
        in_u[i] = st == RS_GC_COLLECTABLE || st == RS_GC_LEGACY;
        if (in_u[i])
            ulist[nu++] = (uint32_t)i;
        group[i] = RS_NONE;
        cnt[i] = 0;
    }

    /* groups: strongly connected components of the unreachable set.
     * The most common garbage, two objects that refer to each other and
     * that nothing else refers to (each one's only heap reference is the
     * other's: the load's in-degrees say so), is a component without
     * Tarjan's search, and one that no other component refers to: these
     * pairs come first in topological order, last in Tarjan's, after the
     * components of the rest. */
    uint32_t *pairs = NULL, *tlist = ulist;
    size_t npairs = 0, tn = nu;
    if (deg) {
        for (size_t k = 0; k < nu; k++) {
            uint32_t v = ulist[k];
            if (deg[v] != 1 || !in_u[v])
                continue;
            for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
                uint32_t w = h->out_dst[e];
                if (w == v || deg[w] != 1 || !in_u[w])
                    continue;
                /* v is w's only referrer: is w v's? */
                uint32_t f = h->out_off[w];
                while (f < h->out_off[w + 1] && h->out_dst[f] != v)
                    f++;
                if (f == h->out_off[w + 1])
                    continue;
                if (!pairs)
                    pairs = rs_xmalloc(nu * sizeof *pairs);
                pairs[2 * npairs] = v;
                pairs[2 * npairs + 1] = w;
                npairs++;
                in_u[v] = in_u[w] = 0; /* (for Tarjan: back below) */
                break;
            }
        }
        if (npairs) {
            tlist = rs_xmalloc((nu - 2 * npairs ? nu - 2 * npairs : 1) * sizeof *tlist);
            tn = 0;
            for (size_t k = 0; k < nu; k++)
                if (in_u[ulist[k]])
                    tlist[tn++] = ulist[k];
        }
    }
    uint32_t *comp_of = rs_xmalloc((n ? n : 1) * sizeof *comp_of);
    comp_info *comps = NULL;
    uint32_t *cmem = NULL;
    size_t ncomps = tarjan(h, in_u, tlist, tn, comp_of, &comps, &cmem);
    if (npairs) {
        comps = rs_xrealloc(comps, (ncomps + npairs) * sizeof *comps);
        cmem = rs_xrealloc(cmem, (tn + 2 * npairs) * sizeof *cmem);
        for (size_t p = 0; p < npairs; p++) {
            uint32_t v = pairs[2 * p], w = pairs[2 * p + 1];
            comps[ncomps++] = (comp_info){(uint32_t)(tn + 2 * p), 2, true};
            cmem[tn + 2 * p] = v;
            cmem[tn + 2 * p + 1] = w;
            in_u[v] = in_u[w] = 1;
        }
        rs_xfree(tlist);
        rs_xfree(pairs);
    }
    size_t ngroups = 0;
    /* A component that is no cycle hangs off the group of its first
     * referrer (the smallest object index) in the unreachable set of the
     * same class: all its referrers there come before it in topological
     * order, so pushing each component's references forward finds it
     * without reverse edges. from[d] (comp_of, no longer needed): that
     * referrer so far, RS_NONE for none. Only when there is such a
     * component. */
    uint32_t *from = comp_of;
    size_t ntrivial = 0;
    for (size_t c = 0; c < ncomps; c++)
        ntrivial += !comps[c].cycle;
    if (ntrivial)
        for (size_t k = 0; k < nu; k++)
            from[ulist[k]] = RS_NONE;
    /* topological order = reverse of Tarjan's */
    for (size_t c = ncomps; c-- > 0;) {
        const comp_info *ci = &comps[c];
        uint32_t v0 = cmem[ci->first];
        unsigned cls = state[v0];
        uint32_t g = RS_NONE;
        if (!ci->cycle && from[v0] != RS_NONE)
            g = group[from[v0]];
        bool hang = g != RS_NONE;
        if (g == RS_NONE)
            g = (uint32_t)ngroups++;
        for (uint32_t k = 0; k < ci->n; k++) {
            uint32_t v = cmem[ci->first + k];
            group[v] = g;
            role[v] = hang ? 2 : 1;
            if (!ntrivial)
                continue;
            for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
                uint32_t d = h->out_dst[e];
                if (in_u[d] && group[d] == RS_NONE && state[d] == cls && v < from[d])
                    from[d] = v;
            }
        }
    }
    rs_xfree(comps);
    rs_xfree(cmem);
    rs_xfree(comp_of);

    /*
     * The cascade: what clearing the collectable set frees by refcount.
     * gc.c clears the collectable objects (delete_garbage) *before* it
     * counts what is left of the legacy set, as CPython does: an object set
     * aside for its legacy finalizer that only collectable garbage held is
     * freed then too (its finalizer runs in its deallocation), and is not
     * uncollectable after all. Survivors of the collection die the same
     * way when garbage held their last references (through a frozen or an
     * untracked object, say). So the cascade takes any object outside the
     * collectable set whose references all come from freed objects.
     */
    qh = 0; /* queue[0 .. qt) holds the collectable objects */
    while (qh < qt) {
        uint32_t v = queue[qh++];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            if (state[d] == RS_GC_COLLECTABLE || state[d] == RS_GC_CASCADE)
                continue; /* freed already */
            if (++cnt[d] == h->refcnt[d]) {
                if (state[d] == RS_GC_LEGACY) {
                    R->n_legacy--;
                    R->b_legacy -= rs_bytes(h, d);
                }
                state[d] = RS_GC_CASCADE;
                group[d] = group[v];
                role[d] = 2;
                queue[qt++] = d;
                R->n_cascade++;
                R->b_cascade += rs_bytes(h, d);
            }
        }
    }
    rs_xfree(refs);
    rs_xfree(queue);
    rs_xfree(in_u);

    /* The objects in groups, in index order: the unreachable set, and what
     * the cascade added (found by a scan when it added any). The passes
     * below go over this list only. */
    uint32_t *gl = ulist;
    size_t ngl = nu;
    if (R->n_cascade) {
        ngl = 0;
        for (size_t i = 0; i < n; i++)
            if (group[i] != RS_NONE)
                gl[ngl++] = (uint32_t)i;
    }

    /* A group whose members all went with the cascade keeps what hangs off
     * it as members; an empty group goes. (Without a cascade every group
     * has its component's members: nothing to count or drop.) */
    uint32_t *keep = NULL;
    if (R->n_cascade) {
        uint32_t *nmem = rs_xcalloc(ngroups ? ngroups : 1, sizeof *nmem);
        uint32_t *nhang = rs_xcalloc(ngroups ? ngroups : 1, sizeof *nhang);
        for (size_t k = 0; k < ngl; k++) {
            uint32_t i = gl[k];
            if (role[i] == 1)
                nmem[group[i]]++;
            else
                nhang[group[i]]++;
        }
        for (size_t k = 0; k < ngl; k++) {
            uint32_t i = gl[k];
            if (role[i] == 2 && !nmem[group[i]] && state[i] != RS_GC_CASCADE)
                role[i] = 1;
        }
        keep = rs_xmalloc((ngroups ? ngroups : 1) * sizeof *keep);
        size_t nkeep = 0;
        for (size_t g = 0; g < ngroups; g++)
            keep[g] = nmem[g] || nhang[g] ? (uint32_t)nkeep++ : RS_NONE;
        ngroups = nkeep;
        rs_xfree(nmem);
        rs_xfree(nhang);
    }

    /* totals per group (by its number so far; renumbered in the same pass) */
    rs_group *groups = rs_xcalloc(ngroups ? ngroups : 1, sizeof *groups);
    size_t nhanging = 0;
    for (size_t k = 0; k < ngl; k++) {
        uint32_t i = gl[k];
        if (keep)
            group[i] = keep[group[i]];
        rs_group *G = &groups[group[i]];
        if (role[i] == 1) {
            G->nmembers++;
            G->bytes += rs_bytes(h, i);
            if (state[i] == RS_GC_LEGACY)
                G->uncollectable = true;
        } else {
            G->nhang++;
            G->hang_bytes += rs_bytes(h, i);
            nhanging++;
        }
    }
    rs_xfree(keep);

    /* The report's order: members and hanging objects (in address order)
     * go to one array, group after group in that order; then the groups
     * themselves are put in that order, in place. */
    uint32_t *order = group_order(groups, ngroups, group, role, gl, ngl);
    uint32_t *renum = rs_xmalloc((ngroups ? ngroups : 1) * sizeof *renum);
    uint32_t *lists = rs_xmalloc((ngl ? ngl : 1) * sizeof *lists);
    /* where each group's next hanging object goes (its members' is
     * start + nmembers, counted up again) */
    uint32_t *hcur = nhanging ? rs_xmalloc((ngroups ? ngroups : 1) * sizeof *hcur) : NULL;
    size_t acc = 0;
    for (size_t k = 0; k < ngroups; k++) {
        rs_group *G = &groups[order[k]];
        renum[order[k]] = (uint32_t)k;
        G->start = (uint32_t)acc;
        if (hcur)
            hcur[order[k]] = (uint32_t)(acc + G->nmembers);
        acc += G->nmembers + G->nhang;
        G->nmembers = 0;
    }
    rs_xfree(order);
    for (size_t k = 0; k < ngl; k++) {
        uint32_t i = gl[k], g = group[i];
        rs_group *G = &groups[g];
        group[i] = renum[g];
        if (role[i] == 1)
            lists[G->start + G->nmembers++] = i;
        else
            lists[hcur[g]++] = i;
    }
    rs_xfree(hcur);
    rs_xfree(ulist);
    for (size_t g = 0; g < ngroups; g++) { /* follow the permutation's cycles */
        while (renum[g] != g) {
            uint32_t t = renum[g];
            rs_group tmp = groups[t];
            groups[t] = groups[g];
            groups[g] = tmp;
            renum[g] = renum[t];
            renum[t] = t;
        }
    }
    rs_xfree(renum);
    for (size_t g = 0; g < ngroups; g++) {
        rs_group *G = &groups[g];
        G->is_cycle = G->nmembers > 1;
        if (G->nmembers == 1) {
            uint32_t v = lists[G->start];
            for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++)
                if (h->out_dst[e] == v)
                    G->is_cycle = true;
        }
    }

    R->state = state;
    R->group = group;
    R->role = role;
    R->groups = groups;
    R->ngroups = ngroups;
    R->lists = lists;
    h->gc = R;
    return R;
}

/* ---- the shortest cycle through a component's first member ---------------------------- */

static size_t member_pos(const uint32_t *members, size_t n, uint32_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (members[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && members[lo] == v ? lo : SIZE_MAX;
}

uint32_t *rs_cycle_path(const rs_heap *h, const uint32_t *members, size_t nmembers, size_t *n)
{
    *n = 0;
    if (!nmembers)
        return NULL;
    uint32_t start = members[0];
    uint32_t *pedge = rs_xmalloc(nmembers * sizeof *pedge); /* edge that reached it */
    uint32_t *ppos = rs_xmalloc(nmembers * sizeof *ppos);   /* from which member */
    uint32_t *dist = rs_xmalloc(nmembers * sizeof *dist);
    uint32_t *queue = rs_xmalloc(nmembers * sizeof *queue);
    uint8_t *seen = rs_xcalloc(nmembers, 1);
    size_t qh = 0, qt = 0;
    queue[qt++] = 0;
    seen[0] = 1;
    dist[0] = 0;
    uint32_t closing = RS_NONE, closing_from = 0;
    while (qh < qt && closing == RS_NONE) {
        uint32_t vp = queue[qh++];
        uint32_t v = members[vp];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            if (d == start) {
                closing = e;
                closing_from = vp;
                break;
            }
            size_t dp = member_pos(members, nmembers, d);
            if (dp == SIZE_MAX || seen[dp])
                continue;
            seen[dp] = 1;
            pedge[dp] = e;
            ppos[dp] = vp;
            dist[dp] = dist[vp] + 1;
            queue[qt++] = (uint32_t)dp;
        }
    }
    uint32_t *path = NULL;
    if (closing != RS_NONE) {
        size_t len = (size_t)dist[closing_from] + 1;
        path = rs_xmalloc(len * sizeof *path);
        size_t k = len;
        path[--k] = closing;
        for (uint32_t p = closing_from; p != 0 && k > 0; p = ppos[p])
            path[--k] = pedge[p];
        *n = len;
    }
    rs_xfree(pedge);
    rs_xfree(ppos);
    rs_xfree(dist);
    rs_xfree(queue);
    rs_xfree(seen);
    return path;
}

/* ---- dominators ------------------------------------------------------------------------- */

/*
 * A graph for the dominator computation: the objects (their CSR edges) plus
 * nx extra nodes numbered n .. n+nx-1 with their own successor lists
 * (xs_off/xs_dst, which may point at objects or extra nodes). The root is
 * extra node `root`. Predecessors are found by dom_compute itself, for the
 * nodes its search reaches.
 */
typedef struct dom_graph {
    const rs_heap *h;
    uint32_t n, nx, root;
    const uint32_t *xs_off, *xs_dst;
} dom_graph;

/* Successor ranges: objects use the heap's CSR, extra nodes their own. */
static inline void succ_range(const dom_graph *G, uint32_t v, const uint32_t **arr, uint32_t *a,
                              uint32_t *b)
{
    if (v < G->n) {
        *arr = G->h->out_dst;
        *a = G->h->out_off[v];
        *b = G->h->out_off[v + 1];
    } else {
        *arr = G->xs_dst;
        *a = G->xs_off[v - G->n];
        *b = G->xs_off[v - G->n + 1];
    }
}

typedef struct dom_out {
    uint32_t *idom;     /* node space; RS_NONE unreachable; root: itself */
    uint64_t *retained;
    uint32_t *rcount;
    uint32_t *order;    /* preorder of the DFS (node ids), norder of them */
    uint32_t norder;
} dom_out;

/*
 * Semi-NCA. Numbers are DFS preorder numbers, 1-based; 0 means "not
 * reached". semi/label/anc are indexed by number; eval() compresses the
 * ancestor paths of the link-eval forest iteratively.
 */
static void dom_compute(const dom_graph *G, dom_out *out, bool want_order)
{
    const rs_heap *h = G->h;
    uint32_t V = G->n + G->nx;
    uint32_t *pre = rs_xcalloc(V, sizeof *pre);
    uint32_t *vert = rs_xmalloc(((size_t)V + 1) * sizeof *vert);
    uint32_t *parent = rs_xmalloc(((size_t)V + 1) * sizeof *parent);
    uint32_t N = 0;
    /* The predecessors of the reached nodes, by DFS number, as DFS numbers
     * (CSR: number j's are psrc[poff[j] .. poff[j + 1])): every successor
     * of a reached node is reached, and the semidominator pass then reads
     * them in the order it visits the nodes, without looking numbers up.
     * Counted by the DFS as it takes each edge, at j + 2, and placed
     * through poff[j + 1], which ends at where j + 1's start. (size_t: the
     * extra nodes' edges come on top of up to 2^32 - 2 of the heap's.
     * Sized for every node, but only the reached ones' words are touched.) */
    size_t *poff = rs_xmalloc(((size_t)V + 3) * sizeof *poff);
    poff[0] = poff[1] = poff[2] = 0; /* then poff[j + 2] as number j is given */

    /* iterative DFS */
    {
        /* the stack grows as deep as the DFS goes (a chain: as many as
         * there are nodes; usually far fewer) */
        size_t cap = V < 65536 ? V : 65536;
        uint32_t *sv = rs_xmalloc(cap * sizeof *sv);
        uint32_t *se = rs_xmalloc(cap * sizeof *se);
        size_t sp = 0;
        pre[G->root] = ++N;
        poff[N + 2] = 0;
        vert[N] = G->root;
        parent[N] = 0;
        sv[sp] = G->root;
        {
            const uint32_t *arr;
            uint32_t a, b;
            succ_range(G, G->root, &arr, &a, &b);
            se[sp++] = a;
        }
        while (sp) {
            /* the top frame's edges in a local loop, until one reaches a
             * node not seen yet: that node's frame goes on top */
            uint32_t v = sv[sp - 1];
            const uint32_t *arr;
            uint32_t a, b;
            succ_range(G, v, &arr, &a, &b);
            uint32_t e = se[sp - 1];
            while (e < b && pre[arr[e]])
                poff[pre[arr[e++]] + 2]++;
            if (e >= b) {
                sp--;
                continue;
            }
            uint32_t w = arr[e];
            se[sp - 1] = e + 1;
            pre[w] = ++N;
            poff[N + 2] = 1;
            vert[N] = w;
            parent[N] = pre[v];
            succ_range(G, w, &arr, &a, &b);
            if (sp == cap) { /* (sp < V: w was not on the stack) */
                cap = cap * 2 < V ? cap * 2 : V;
                sv = rs_xrealloc(sv, cap * sizeof *sv);
                se = rs_xrealloc(se, cap * sizeof *se);
            }
            sv[sp] = w;
            se[sp++] = a;
        }
        rs_xfree(sv);
        rs_xfree(se);
    }

    for (size_t j = 2; j <= (size_t)N + 2; j++)
        poff[j] += poff[j - 1];
    uint32_t *psrc = rs_xmalloc((poff[N + 2] ? poff[N + 2] : 1) * sizeof *psrc);
    for (uint32_t i = 1; i <= N; i++) {
        const uint32_t *arr;
        uint32_t a, b;
        succ_range(G, vert[i], &arr, &a, &b);
        for (uint32_t k = a; k < b; k++)
            psrc[poff[pre[arr[k]] + 1]++] = i;
    }
    rs_xfree(pre);

    uint32_t *semi = rs_xmalloc(((size_t)N + 1) * sizeof *semi);
    uint32_t *label = rs_xmalloc(((size_t)N + 1) * sizeof *label);
    uint32_t *anc = rs_xcalloc((size_t)N + 1, sizeof *anc);
    uint32_t *stack = rs_xmalloc(((size_t)N + 1) * sizeof *stack);
    for (uint32_t i = 1; i <= N; i++) {
        semi[i] = i;
        label[i] = i;
    }
#define EVAL(v0, res)                                                                          \
    do {                                                                                       \
        uint32_t v_ = (v0);                                                                    \
        if (!anc[v_]) {                                                                        \
            (res) = v_;                                                                        \
            break;                                                                             \
        }                                                                                      \
        size_t sp_ = 0;                                                                        \
        uint32_t x_ = v_;                                                                      \
        while (anc[anc[x_]]) {                                                                 \
            stack[sp_++] = x_;                                                                 \
            x_ = anc[x_];                                                                      \
        }                                                                                      \
        while (sp_) {                                                                          \
            x_ = stack[--sp_];                                                                 \
            uint32_t a_ = anc[x_];                                                             \
            if (semi[label[a_]] < semi[label[x_]])                                             \
                label[x_] = label[a_];                                                         \
            anc[x_] = anc[a_];                                                                 \
        }                                                                                      \
        (res) = label[v_];                                                                     \
    } while (0)

    for (uint32_t i = N; i >= 2; i--) {
        uint32_t s = semi[i];
        for (size_t k = poff[i]; k < poff[i + 1]; k++) {
            uint32_t u;
            EVAL(psrc[k], u);
            if (semi[u] < s)
                s = semi[u];
        }
        semi[i] = s;
        anc[i] = parent[i]; /* link */
    }
#undef EVAL
    rs_xfree(label);
    rs_xfree(anc);
    rs_xfree(stack);
    rs_xfree(poff);
    rs_xfree(psrc);

    /* NCA: idom(i) is the nearest ancestor of parent(i) not above semi(i).
     * In place: parent[i] becomes idn[i] (only idn[j], j < i, is read). */
    uint32_t *idn = parent;
    idn[1] = 1;
    for (uint32_t i = 2; i <= N; i++) {
        uint32_t j = parent[i];
        while (j > semi[i])
            j = idn[j];
        idn[i] = j;
    }
    rs_xfree(semi);

    /* into node space; retained sizes bottom-up (children have larger
     * numbers than their dominator) */
    out->idom = rs_xmalloc((size_t)V * sizeof *out->idom);
    out->retained = rs_xcalloc(V, sizeof *out->retained);
    out->rcount = rs_xcalloc(V, sizeof *out->rcount);
    memset(out->idom, 0xff, (size_t)V * sizeof *out->idom); /* RS_NONE */
    for (uint32_t i = 1; i <= N; i++) {
        uint32_t v = vert[i];
        out->idom[v] = vert[idn[i]];
        if (v < G->n) {
            out->retained[v] = rs_bytes(h, v);
            out->rcount[v] = 1;
        }
    }
    for (uint32_t i = N; i >= 2; i--) {
        uint32_t v = vert[i], d = vert[idn[i]];
        out->retained[d] += out->retained[v];
        out->rcount[d] += out->rcount[v];
    }
    if (want_order) {
        out->order = rs_xmalloc(((size_t)N + 1) * sizeof *out->order);
        for (uint32_t i = 1; i <= N; i++)
            out->order[i - 1] = vert[i];
        out->norder = N;
    } else {
        out->order = NULL;
        out->norder = 0;
    }
    rs_xfree(idn);
    rs_xfree(vert);
}

const rs_dom_result *rs_dominators(rs_heap *h)
{
    if (h->dom)
        return h->dom;
    const int32_t *unx = rs_unexplained(h);
    uint32_t n = (uint32_t)h->nobj;
    uint32_t nr = (uint32_t)h->nroots;
    uint32_t nx = nr + 2; /* roots, unexplained, super */
    size_t nunx = h->nunexplained;
    uint32_t *xs_off = rs_xmalloc(((size_t)nx + 1) * sizeof *xs_off);
    uint32_t *xs_dst = rs_xmalloc((nr + nunx + nr + 1 + 1) * sizeof *xs_dst);
    size_t k = 0;
    for (uint32_t r = 0; r < nr; r++) {
        xs_off[r] = (uint32_t)k;
        if (rs_root_holds(h, r))
            xs_dst[k++] = h->roots[r].obj;
    }
    xs_off[nr] = (uint32_t)k;
    for (uint32_t i = 0; i < n; i++)
        if (unx[i] > 0)
            xs_dst[k++] = i;
    xs_off[nr + 1] = (uint32_t)k;
    for (uint32_t r = 0; r < nr; r++)
        if (rs_root_holds(h, r))
            xs_dst[k++] = n + r;
    xs_dst[k++] = n + nr; /* the unexplained pseudo root, last */
    xs_off[nr + 2] = (uint32_t)k;

    dom_graph G = {.h = h, .n = n, .nx = nx, .root = n + nr + 1, .xs_off = xs_off,
                   .xs_dst = xs_dst};
    dom_out out;
    dom_compute(&G, &out, false);
    rs_xfree(xs_off);
    rs_xfree(xs_dst);

    rs_dom_result *D = rs_xcalloc(1, sizeof *D);
    D->nnodes = n + nx;
    D->idom = out.idom;
    D->retained = out.retained;
    D->rcount = out.rcount;
    D->reach_objects = out.rcount[n + nr + 1];
    D->reach_bytes = out.retained[n + nr + 1];
    h->dom = D;
    return D;
}

/* ---- the analyses on two threads -------------------------------------------------------- */

/* Heaps smaller than this are analysed on one thread: a thread's start and
 * the second table of rs_unexplained cost more than it saves there. */
#define PARALLEL_MIN_OBJECTS 100000

unsigned rs_threads(void)
{
    const char *e = getenv("REFSCOPE_THREADS");
    if (e && *e) {
        char *end;
        unsigned long v = strtoul(e, &end, 10);
        if (*end == 0 && v >= 1)
            return v > 2 ? 2 : (unsigned)v;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus >= 2 ? 2 : 1;
}

static void *dominators_thread(void *arg)
{
    rs_dominators(arg);
    return NULL;
}

RS_EXPORT void rs_heap_analyze(rs_heap *h, unsigned what)
{
    if (!h || !h->loaded)
        return;
    bool gc = (what & RS_ANALYSIS_COLLECTOR) && !h->gc;
    bool dom = (what & RS_ANALYSIS_DOMINATORS) && !h->dom;
    /* The collector mirror and the dominators (with the reconciliation)
     * read the same tables and write only their own, except the load's
     * in-degrees, which both read and the reconciliation would take over:
     * deg_shared makes it copy them instead. */
    if (gc && dom && h->nobj >= PARALLEL_MIN_OBJECTS && rs_threads() > 1) {
        pthread_t t;
        h->deg_shared = true;
        if (pthread_create(&t, NULL, dominators_thread, h) == 0) {
            rs_gc_analyze(h);
            pthread_join(t, NULL);
            h->deg_shared = false;
            rs_xfree(h->deg); /* (as if the reconciliation had taken it) */
            h->deg = NULL;
            return;
        }
        h->deg_shared = false;
    }
    if (gc)
        rs_gc_analyze(h);
    if (dom)
        rs_dominators(h);
}

/* The subtree of `top` in a dominator tree given by idom over V nodes,
 * objects only, top first. */
static uint32_t *dom_subtree(const rs_heap *h, const uint32_t *idom, uint32_t V, uint32_t top,
                             size_t *count, uint64_t *bytes)
{
    uint32_t *off = rs_xcalloc((size_t)V + 1, sizeof *off);
    for (uint32_t v = 0; v < V; v++)
        if (idom[v] != RS_NONE && idom[v] != v)
            off[idom[v]]++;
    uint32_t acc = 0;
    for (uint32_t v = 0; v < V; v++) {
        uint32_t c = off[v];
        off[v] = acc;
        acc += c;
    }
    off[V] = acc;
    uint32_t *kids = rs_xmalloc((acc ? acc : 1) * sizeof *kids);
    uint32_t *fill = rs_xmalloc((size_t)V * sizeof *fill);
    memcpy(fill, off, (size_t)V * sizeof *fill);
    for (uint32_t v = 0; v < V; v++)
        if (idom[v] != RS_NONE && idom[v] != v)
            kids[fill[idom[v]]++] = v;
    rs_xfree(fill);
    uint32_t *res = rs_xmalloc((size_t)(acc + 1) * sizeof *res);
    size_t nres = 0;
    uint64_t b = 0;
    uint32_t *stack = rs_xmalloc((size_t)(acc + 1) * sizeof *stack);
    size_t sp = 0;
    stack[sp++] = top;
    while (sp) {
        uint32_t v = stack[--sp];
        if (v < h->nobj) {
            res[nres++] = v;
            b += rs_bytes(h, v);
        }
        for (uint32_t k = off[v]; k < off[v + 1]; k++)
            stack[sp++] = kids[k];
    }
    rs_xfree(stack);
    rs_xfree(off);
    rs_xfree(kids);
    *count = nres;
    *bytes = b;
    return res;
}

uint32_t *rs_retained_set(rs_heap *h, uint32_t obj, size_t *count, uint64_t *bytes)
{
    const rs_dom_result *D = rs_dominators(h);
    if (D->idom[obj] != RS_NONE)
        return dom_subtree(h, D->idom, D->nnodes, obj, count, bytes);

    /* Not reachable from any root: dominators of what obj reaches, with a
     * local root that also holds every object reached that has a holder
     * outside that set (it would not be freed with obj). */
    size_t n = h->nobj;
    const int32_t *unx = rs_unexplained(h);
    uint8_t *in = rs_xcalloc(n ? n : 1, 1);
    uint32_t *list = rs_xmalloc((n ? n : 1) * sizeof *list);
    size_t nl = 0, qh = 0;
    list[nl++] = obj;
    in[obj] = 1;
    while (qh < nl) {
        uint32_t v = list[qh++];
        for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
            uint32_t d = h->out_dst[e];
            if (!in[d]) {
                in[d] = 1;
                list[nl++] = d;
            }
        }
    }
    uint32_t *xs_dst = rs_xmalloc((nl + 1) * sizeof *xs_dst);
    size_t k = 0;
    xs_dst[k++] = obj;
    rs_in_edges(h);
    for (size_t i = 1; i < nl; i++) {
        uint32_t v = list[i];
        rs_rootcount held = rs_rootref(h, v);
        int64_t excess = (int64_t)h->refcnt[v] - (int64_t)rs_indeg(h, v) - (int64_t)held.roots;
        bool outside = held.roots > 0 || (held.slots > 0 && excess > 0) || unx[v] > 0;
        for (uint32_t p = h->in_off[v]; p < h->in_off[v + 1] && !outside; p++)
            if (!in[h->in_src[p]])
                outside = true;
        if (outside)
            xs_dst[k++] = v;
    }
    rs_xfree(list);
    rs_xfree(in);
    uint32_t xs_off[2] = {0, (uint32_t)k};
    dom_graph G = {.h = h, .n = (uint32_t)n, .nx = 1, .root = (uint32_t)n, .xs_off = xs_off,
                   .xs_dst = xs_dst};
    dom_out out;
    dom_compute(&G, &out, false);
    rs_xfree(xs_dst);
    uint32_t *res = dom_subtree(h, out.idom, (uint32_t)n + 1, obj, count, bytes);
    rs_xfree(out.idom);
    rs_xfree(out.retained);
    rs_xfree(out.rcount);
    return res;
}

/* ---- shortest paths ------------------------------------------------------------------------ */

size_t rs_shortest_path(rs_heap *h, uint32_t obj, rs_step **steps)
{
    *steps = NULL;
    size_t n = h->nobj;
    const int32_t *unx = rs_unexplained(h);
    uint32_t *pnode = rs_xmalloc((n ? n : 1) * sizeof *pnode); /* node it was reached from */
    uint32_t *pedge = rs_xmalloc((n ? n : 1) * sizeof *pedge);
    uint32_t *queue = rs_xmalloc((n ? n : 1) * sizeof *queue);
    size_t found = 0;
    /* pass 0: from the owning roots (registered, globals, C globals);
     * pass 1: also from the stack slots, registers and locals that hold
     * their object (rs_root_holds); pass 2: also from the unexplained references
     * (objects held by something the engine cannot see) */
    for (int pass = 0; pass < 3 && !found; pass++) {
        for (size_t i = 0; i < n; i++)
            pnode[i] = RS_NONE;
        size_t qh = 0, qt = 0;
        for (size_t r = 0; r < h->nroots; r++) {
            const rs_root *R = &h->roots[r];
            if (!rs_root_holds(h, r) || pnode[R->obj] != RS_NONE ||
                (pass == 0 && !rs_root_owns(R->kind)))
                continue;
            pnode[R->obj] = rs_node_of_root(h, r);
            pedge[R->obj] = RS_NONE;
            queue[qt++] = R->obj;
        }
        if (pass == 2) {
            for (size_t i = 0; i < n; i++) {
                if (unx[i] > 0 && pnode[i] == RS_NONE) {
                    pnode[i] = rs_node_unexplained(h);
                    pedge[i] = RS_NONE;
                    queue[qt++] = (uint32_t)i;
                }
            }
        }
        while (qh < qt && pnode[obj] == RS_NONE) {
            uint32_t v = queue[qh++];
            for (uint32_t e = h->out_off[v]; e < h->out_off[v + 1]; e++) {
                uint32_t d = h->out_dst[e];
                if (pnode[d] != RS_NONE)
                    continue;
                pnode[d] = v;
                pedge[d] = e;
                queue[qt++] = d;
            }
        }
        if (pnode[obj] == RS_NONE)
            continue;
        size_t len = 1;
        for (uint32_t v = obj; v < n; v = pnode[v])
            len++;
        rs_step *s = rs_xmalloc(len * sizeof *s);
        size_t k = len;
        uint32_t v = obj;
        while (v < n) {
            s[--k] = (rs_step){v, pedge[v]};
            v = pnode[v];
        }
        s[--k] = (rs_step){v, RS_NONE};
        *steps = s;
        found = len;
    }
    rs_xfree(pnode);
    rs_xfree(pedge);
    rs_xfree(queue);
    return found;
}

/* ---- components of any object subset ------------------------------------------------------ */

uint32_t *rs_components(const rs_heap *h, const uint8_t *in_set, size_t *ncomps,
                        uint32_t **comp_size)
{
    uint32_t *comp_of = rs_xmalloc((h->nobj ? h->nobj : 1) * sizeof *comp_of);
    comp_info *comps = NULL;
    uint32_t *members = NULL;
    size_t nc = tarjan(h, in_set, NULL, 0, comp_of, &comps, &members);
    for (size_t i = 0; i < h->nobj; i++)
        if (comp_of[i] != RS_NONE)
            comp_of[i] = TJ_DONE - comp_of[i]; /* the k-th component: k */
    uint32_t *sz = rs_xmalloc((nc ? nc : 1) * sizeof *sz);
    for (size_t c = 0; c < nc; c++)
        sz[c] = comps[c].cycle ? comps[c].n : 0; /* 0: not on a cycle */
    rs_xfree(comps);
    rs_xfree(members);
    *ncomps = nc;
    *comp_size = sz;
    return comp_of;
}
