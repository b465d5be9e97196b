/*
 * Sizes (rc_sizeof, rc_sizeof_deep), allocator statistics
 * (rc_debug_mallocstats against the allocator's own counters), process
 * memory and the memory timeline in the registry.
 */
#include <refscope/rc.h>

#include "registry.h" /* the allocator's counters, the timeline ring */

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void setup(void) { rc_init(); }

TestSuite(memstats, .init = setup);

#define INT_SIZE 24u  /* rc_sizeof(int): 16-byte head + int64 */
#define GC_HEAD 8u

/* ---- sizes ------------------------------------------------------------------ */

static const char *const xy[] = {"x", "y", NULL};

Test(memstats, slotted_instance_is_smaller_than_dict_based)
{
    rc_object *Slotted = rc_class_new("Slotted", xy, NULL, 0);
    rc_object *Plain = rc_class_new("Plain", NULL, NULL, 0);
    rc_object *s = rc_instance_new(Slotted), *p = rc_instance_new(Plain);
    /* each instance gets its own two values */
    const char *const names[] = {"x", "y"};
    for (int i = 0; i < 2; i++) {
        rc_object *v = rc_int(i), *w = rc_int(i);
        cr_assert_eq(rc_setattr(s, names[i], v), 0);
        cr_assert_eq(rc_setattr(p, names[i], w), 0);
        rc_decref(v);
        rc_decref(w);
    }

    /* gc head + object head + __class__ + 2 slots */
    cr_assert_eq(rc_sizeof(s), GC_HEAD + 16 + 8 + 2 * 8);
    /* gc head + object head + __class__ + __dict__ (the dict is separate) */
    cr_assert_eq(rc_sizeof(p), GC_HEAD + 16 + 8 + 8);
    rc_object *dict = rc_getattr(p, "__dict__");
    cr_assert_not_null(dict);
    /* What an instance costs: a dict-based one always carries its dict. */
    cr_assert_lt(rc_sizeof(s), rc_sizeof(p) + rc_sizeof(dict));
    /* Deep sizes: the values are held only by the instances (the class is
     * held by our variable too, so it is not part of either). */
    cr_assert_eq(rc_sizeof_deep(s), rc_sizeof(s) + 2 * INT_SIZE);
    cr_assert_eq(rc_sizeof_deep(p), rc_sizeof(p) + rc_sizeof(dict) + 2 * INT_SIZE);
    cr_assert_lt(rc_sizeof_deep(s), rc_sizeof_deep(p));

    rc_decref(s);
    rc_decref(p);
    rc_decref(Slotted);
    rc_decref(Plain);
}

Test(memstats, deep_size_counts_what_only_the_container_holds)
{
    rc_object *l = rc_list_new();
    rc_object *shared = rc_int(7);
    for (int i = 0; i < 3; i++) {
        rc_object *x = rc_int(i);
        rc_list_append(l, x);
        rc_decref(x);
    }
    cr_assert_eq(rc_sizeof_deep(l), rc_sizeof(l) + 3 * INT_SIZE);
    rc_list_append(l, shared); /* we still hold it: not freed with the list */
    cr_assert_eq(rc_sizeof_deep(l), rc_sizeof(l) + 3 * INT_SIZE);

    /* nested: list -> tuple -> ints, all private */
    rc_object *a = rc_int(1), *b = rc_int(2);
    rc_object *t = rc_tuple_new(2, a, b);
    rc_decref(a);
    rc_decref(b);
    rc_list_append(l, t);
    rc_decref(t);
    cr_assert_eq(rc_sizeof_deep(l), rc_sizeof(l) + 3 * INT_SIZE + rc_sizeof(t) + 2 * INT_SIZE);
    /* the tuple twice in the list: both references come from the set */
    rc_list_append(l, t);
    cr_assert_eq(rc_sizeof_deep(l), rc_sizeof(l) + 3 * INT_SIZE + rc_sizeof(t) + 2 * INT_SIZE);

    cr_assert_eq(rc_sizeof_deep(shared), INT_SIZE);
    cr_assert_eq(rc_sizeof_deep(NULL), 0);
    rc_decref(l);
    rc_decref(shared);
}

Test(memstats, deep_size_follows_cycles)
{
    rc_object *a = rc_list_new(), *b = rc_list_new();
    rc_list_append(a, b);
    rc_list_append(b, a);
    rc_decref(b);
    /* a <-> b: b is held only by a, a by us and b */
    cr_assert_eq(rc_sizeof_deep(a), rc_sizeof(a) + rc_sizeof(b));
    rc_list_append(a, a); /* a self reference changes nothing */
    cr_assert_eq(rc_sizeof_deep(a), rc_sizeof(a) + rc_sizeof(b));
    rc_list_clear(a);
    rc_decref(a);
}

/* ---- allocator statistics ------------------------------------------------- */

static rc_object *keep;

static void populate(void)
{
    keep = rc_list_new();
    for (int i = 0; i < 3000; i++) {
        rc_object *x = (i % 3 == 0) ? rc_int(i) : (i % 3 == 1) ? rc_str("a string of some length")
                                                               : rc_bytes((size_t)(i % 700));
        rc_list_append(keep, x);
        rc_decref(x);
    }
    /* free a third to leave holes in the pools */
    for (size_t i = 0; i < 3000; i += 3) {
        rc_object *none = rc_int(-1);
        rc_list_set(keep, i, none);
        rc_decref(none);
    }
}

Test(memstats, mallocstats_totals_agree_with_the_allocator)
{
    populate();
    rc_mallocstats st;
    cr_assert_eq(rc_mallocstats_get(&st), 0);
    const rc_alloc_stats *a = &rc_debug_registry.alloc;
    cr_assert_eq(st.nclasses, 64);
    cr_assert_eq(st.blocks_in_use, a->blocks_in_use);
    cr_assert_eq(st.pools_in_use, a->pools_in_use);
    cr_assert_eq(st.allocated_bytes, a->small_bytes);
    for (unsigned i = 0; i < 64; i++) {
        cr_assert_eq(st.classes[i].size, (i + 1) * 8);
        cr_assert_eq(st.classes[i].blocks_in_use, a->blocks_by_class[i], "class %u", i);
        cr_assert_eq(st.classes[i].pools, a->pools_by_class[i], "class %u", i);
    }
    cr_assert_eq(st.arenas_allocated, a->arenas_allocated);
    cr_assert_eq(st.arenas_reclaimed, a->arenas_reclaimed);
    cr_assert_eq(st.arenas_highwater, a->arenas_highwater);
    cr_assert_eq(st.arenas_current, a->arenas_in_use);
    cr_assert_eq(st.large_count, a->large_count);
    cr_assert_eq(st.large_bytes, a->large_bytes);
    cr_assert_gt(st.large_count, 0);
    /* every byte of every arena is accounted for */
    cr_assert_eq(st.total, st.arenas_current * 1048576u);
    cr_assert_eq(st.arena_bytes, st.total);
    cr_assert_eq(st.alignment_bytes, 0);
    cr_assert_eq(st.pool_header_bytes, st.pools_in_use * 64);
    rc_decref(keep);
}

/* The value of a printone() line "label    =   1,234,567". */
static unsigned long long value_of(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    cr_assert_not_null(p, "no line \"%s\" in:\n%s", label, text);
    p = strchr(p, '=');
    cr_assert_not_null(p);
    unsigned long long v = 0;
    for (p++; *p && *p != '\n'; p++)
        if (*p >= '0' && *p <= '9')
            v = v * 10 + (unsigned)(*p - '0');
    return v;
}

Test(memstats, debug_mallocstats_prints_pythons_table)
{
    populate();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    rc_debug_mallocstats(out);
    fclose(out);
    const rc_alloc_stats *a = &rc_debug_registry.alloc;
    const char *header = "Small block threshold = 512, in 64 size classes.\n\n"
                         "class   size   num pools   blocks in use  avail blocks\n"
                         "-----   ----   ---------   -------------  ------------\n";
    cr_assert(strncmp(text, header, strlen(header)) == 0, "header:\n%s", text);
    char row[128];
    snprintf(row, sizeof row, "\n    2     24 %11llu %15llu ", (unsigned long long)a->pools_by_class[2],
             (unsigned long long)a->blocks_by_class[2]);
    cr_assert(strstr(text, row), "row of class 2 (%s) in:\n%s", row, text);
    cr_assert_eq(value_of(text, "# bytes in allocated blocks"), a->small_bytes);
    cr_assert_eq(value_of(text, "# arenas allocated total"), a->arenas_allocated);
    cr_assert_eq(value_of(text, "# arenas allocated current"), a->arenas_in_use);
    cr_assert_eq(value_of(text, "\nTotal"), a->arenas_in_use * 1048576u);
    cr_assert_eq(value_of(text, "# bytes in large objects"), a->large_bytes);
    /* obmalloc's layout: the label padded to 35 columns, then '=' and the
     * value right-aligned with thousands separators */
    char want[128];
    snprintf(want, sizeof want, "# arenas allocated current         =%21llu\n",
             (unsigned long long)a->arenas_in_use);
    cr_assert(strstr(text, want), "line \"%s\" in:\n%s", want, text);
    cr_assert(strstr(text, "1 arenas * 1048576 bytes/arena     =            1,048,576\n") ||
                  a->arenas_in_use != 1,
              "%s", text);
    free(text);
    rc_decref(keep);
}

/* ---- process memory ------------------------------------------------------ */

Test(memstats, process_memory_reads_statm)
{
    size_t rss, vms;
    cr_assert_eq(rc_process_memory(&rss, &vms), 0, "%s", rc_last_error());
    cr_assert_gt(rss, 0);
    cr_assert_geq(vms, rss);
    /* what /proc/self/statm says, in pages */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    cr_assert_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    long ps = sysconf(_SC_PAGESIZE);
    cr_assert_eq(vms, size * ps, "vms is the statm size");
    long diff = (long)(resident * ps) - (long)rss;
    cr_assert_lt(labs(diff), 1 << 20, "rss is the statm resident (%ld apart)", diff);

    /* 64 MiB written (rc_bytes zeroes it) shows in rss */
    rc_object *big = rc_bytes((size_t)64 << 20);
    size_t rss2;
    cr_assert_eq(rc_process_memory(&rss2, NULL), 0);
    cr_assert_gt(rss2, rss + ((size_t)48 << 20), "rss %zu -> %zu", rss, rss2);
    rc_memory_info mi;
    cr_assert_eq(rc_process_memory_info(&mi), 0);
    cr_assert_geq(mi.vms, mi.rss);
    cr_assert_gt(mi.text, 0);
    rc_decref(big);
}

/* ---- the timeline ------------------------------------------------------------ */

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
} Node;
static const rc_field node_fields[] = {RC_REF(Node, next), RC_FIELDS_END};
static rc_type node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields};

static size_t samples(rc_timeline_sample *out, size_t max) { return rc_timeline_get(out, max); }

Test(memstats, timeline_manual_samples)
{
    rc_timeline_clear();
    cr_assert_eq(rc_timeline_get(NULL, 0), 0);
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *x = rc_int(1);
    rc_timeline_sample_now();
    rc_timeline_sample s[4];
    cr_assert_eq(samples(s, 4), 1);
    cr_assert_eq(s[0].reason, RC_SAMPLE_MANUAL);
    cr_assert_eq(s[0].traced, 24, "the traced int");
    cr_assert_gt(s[0].rss, 0);
    cr_assert_gt(s[0].time_ns, 0);
    const rc_alloc_stats *a = &rc_debug_registry.alloc;
    cr_assert_eq(s[0].heap, a->small_bytes + a->large_bytes);
    cr_assert_eq(s[0].objects, a->blocks_in_use + a->large_count);
    cr_assert_eq(s[0].tracked, rc_debug_registry.gc.tracked);
    size_t counts[3];
    rc_gc_get_count(counts);
    cr_assert_eq(s[0].count[0], counts[0]);
    rc_decref(x);
    rc_trace_stop();
    rc_timeline_sample_now();
    cr_assert_eq(samples(s, 4), 2);
    cr_assert_eq(s[1].traced, 0, "not tracing");
    cr_assert_geq(s[1].time_ns, s[0].time_ns);
    /* the registry holds the same ring */
    const rc_trace_state *t = &rc_debug_registry.trace;
    cr_assert_not_null(t->timeline);
    cr_assert_eq(t->timeline_capacity, RC_TIMELINE_CAPACITY);
    cr_assert_eq(t->timeline_total, 2);
    cr_assert_eq(t->timeline[(t->timeline_head + t->timeline_capacity - 1) %
                             t->timeline_capacity].time_ns,
                 s[1].time_ns);
}

Test(memstats, timeline_ring_keeps_the_newest)
{
    rc_timeline_clear();
    size_t n = RC_TIMELINE_CAPACITY + 100;
    for (size_t i = 0; i < n; i++)
        rc_timeline_sample_now();
    cr_assert_eq(rc_timeline_total(), n);
    rc_timeline_sample *s = calloc(RC_TIMELINE_CAPACITY, sizeof *s);
    cr_assert_eq(rc_timeline_get(s, RC_TIMELINE_CAPACITY), RC_TIMELINE_CAPACITY);
    for (size_t i = 1; i < RC_TIMELINE_CAPACITY; i++)
        cr_assert_geq(s[i].time_ns, s[i - 1].time_ns, "oldest first");
    /* asking for fewer gives the newest */
    rc_timeline_sample last[2];
    cr_assert_eq(rc_timeline_get(last, 2), 2);
    cr_assert_eq(last[1].time_ns, s[RC_TIMELINE_CAPACITY - 1].time_ns);
    free(s);
    rc_timeline_enable(false);
    rc_timeline_sample_now();
    cr_assert_eq(rc_timeline_total(), n, "disabled: no samples");
    cr_assert_not(rc_timeline_is_enabled());
    rc_timeline_enable(true);
}

Test(memstats, timeline_samples_every_n_allocations)
{
    cr_assert_eq(rc_timeline_get_interval(), RC_TIMELINE_DEFAULT_INTERVAL);
    rc_gc_disable(); /* no collection samples in between */
    rc_timeline_set_interval(100);
    rc_timeline_clear();
    Node *v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = rc_new(Node, &node_type);
    rc_timeline_sample s[16];
    size_t n = samples(s, 16);
    cr_assert_eq(n, 10, "one sample per 100 tracked allocations");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(s[i].reason, RC_SAMPLE_ALLOCS);
    cr_assert_lt(s[0].tracked, s[9].tracked);
    for (int i = 0; i < 1000; i++)
        rc_decref(v[i]);
    rc_timeline_set_interval(0);
    rc_timeline_clear();
    for (int i = 0; i < 1000; i++)
        rc_decref(rc_new(Node, &node_type));
    cr_assert_eq(samples(s, 16), 0, "interval 0: no allocation samples");
    rc_gc_enable();
}

Test(memstats, timeline_samples_each_collection)
{
    rc_timeline_set_interval(0);
    rc_timeline_clear();
    rc_gc_collect(0);
    rc_gc_collect(2);
    rc_timeline_sample s[4];
    cr_assert_eq(samples(s, 4), 2);
    cr_assert_eq(s[0].reason, RC_SAMPLE_COLLECT | 0u << 8);
    cr_assert_eq(s[1].reason, RC_SAMPLE_COLLECT | 2u << 8);
    cr_assert_eq(s[1].collections, s[0].collections + 1);
}
