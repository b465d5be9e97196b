/*
 * Allocation tracing (tracemalloc): traced memory, snapshots, statistics,
 * compare_to, filters, dump/load, object tracebacks and tracemalloc's
 * printed formats, with exact numbers.
 *
 * Sizes are block sizes: an int (16-byte head + 8) is a 24-byte request
 * and block; a list (8-byte gc head + 16 + items, len, capacity) is 48
 * bytes, a 48-byte block.
 */
#include <refscope/rc.h>

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INT_BLOCK 24u
#define LIST_BLOCK 48u
/* __FILE__ as the tracer prints it: leading "./" and "../" removed (meson
 * compiles "../tests/runtime/test_trace.c": "tests/runtime/test_trace.c"). */
static const char *this_file(void)
{
    const char *p = __FILE__;
    while (p[0] == '.' && (p[1] == '/' || (p[1] == '.' && p[2] == '/')))
        p += p[1] == '/' ? 2 : 3;
    return p;
}
#define THIS_FILE this_file()

static void setup(void) { rc_init(); }

TestSuite(trace, .init = setup);

static size_t current(void)
{
    size_t c, p;
    rc_trace_get_memory(&c, &p);
    return c;
}

static size_t peak(void)
{
    size_t c, p;
    rc_trace_get_memory(&c, &p);
    return p;
}

/* n ints made on one line; *line gets that line. */
static void make_ints(rc_object **out, int n, int *line)
{
    for (int i = 0; i < n; i++) {
        *line = __LINE__; out[i] = rc_int(i);
    }
}

static void decref_all(rc_object **v, int n)
{
    for (int i = 0; i < n; i++)
        rc_decref(v[i]);
}

static char *tmp_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/rc_trace_test_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    return path;
}

/* ---- start / stop ---------------------------------------------------------- */

Test(trace, start_stop)
{
    cr_assert_not(rc_trace_is_tracing());
    cr_assert_eq(current(), 0);
    cr_assert_eq(peak(), 0);
    cr_assert_eq(rc_trace_get_traceback_limit(), 1, "1 before any start, as tracemalloc");
    cr_assert_eq(rc_trace_start(1), 0);
    cr_assert(rc_trace_is_tracing());
    cr_assert_eq(rc_trace_get_traceback_limit(), 1);
    rc_trace_stop();
    cr_assert_not(rc_trace_is_tracing());
}

Test(trace, bad_nframes_is_an_error)
{
    const int bad[] = {0, -1, 65536, 1000000};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(rc_trace_start(bad[i]), -1, "nframes %d", bad[i]);
        cr_assert(strstr(rc_last_error(), "the number of frames must be in range [1; 65535]"),
                  "message: %s", rc_last_error());
        cr_assert_not(rc_trace_is_tracing());
    }
    cr_assert_eq(rc_trace_start(65535), 0);
    cr_assert_eq(rc_trace_get_traceback_limit(), 65535);
    rc_trace_stop();
}

Test(trace, start_while_tracing_changes_nothing)
{
    cr_assert_eq(rc_trace_start(3), 0);
    cr_assert_eq(rc_trace_start(7), 0);
    cr_assert_eq(rc_trace_get_traceback_limit(), 3);
    rc_trace_stop();
}

/* ---- current and peak ------------------------------------------------------ */

Test(trace, current_and_peak_follow_allocations)
{
    rc_object *v[10];
    int line;
    cr_assert_eq(rc_trace_start(1), 0);
    cr_assert_eq(current(), 0);
    make_ints(v, 10, &line);
    cr_assert_eq(current(), 10 * INT_BLOCK);
    cr_assert_eq(peak(), 10 * INT_BLOCK);
    decref_all(v, 5);
    cr_assert_eq(current(), 5 * INT_BLOCK, "frees lower current");
    cr_assert_eq(peak(), 10 * INT_BLOCK, "the peak stays after frees");
    rc_trace_reset_peak();
    cr_assert_eq(peak(), 5 * INT_BLOCK, "reset_peak: peak = current");
    rc_object *l = rc_list_new();
    cr_assert_eq(current(), 5 * INT_BLOCK + LIST_BLOCK);
    cr_assert_eq(peak(), 5 * INT_BLOCK + LIST_BLOCK);
    rc_decref(l);
    decref_all(v + 5, 5);
    cr_assert_eq(current(), 0, "current returns exactly to where it started");
    cr_assert_eq(peak(), 5 * INT_BLOCK + LIST_BLOCK);
    rc_trace_stop();
    cr_assert_eq(current(), 0);
    cr_assert_eq(peak(), 0, "(0, 0) when not tracing");
}

Test(trace, objects_from_before_start_are_not_counted)
{
    rc_object *before = rc_int(1);
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *during = rc_int(2);
    cr_assert_eq(current(), INT_BLOCK);
    rc_decref(before);
    cr_assert_eq(current(), INT_BLOCK, "an untraced free changes nothing");
    rc_decref(during);
    cr_assert_eq(current(), 0);
    rc_trace_stop();
}

Test(trace, stop_forgets_traces)
{
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *a = rc_int(1);
    rc_trace_stop();
    cr_assert_eq(current(), 0);
    cr_assert_eq(rc_trace_start(1), 0);
    cr_assert_eq(current(), 0);
    rc_decref(a); /* traced by the previous session: not ours */
    cr_assert_eq(current(), 0);
    rc_trace_stop();
}

Test(trace, clear_traces_keeps_tracing)
{
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *a = rc_int(1);
    rc_trace_clear_traces();
    cr_assert(rc_trace_is_tracing());
    cr_assert_eq(current(), 0);
    cr_assert_eq(peak(), 0);
    rc_decref(a);
    cr_assert_eq(current(), 0);
    rc_object *b = rc_int(2);
    cr_assert_eq(current(), INT_BLOCK);
    rc_decref(b);
    rc_trace_stop();
}

Test(trace, containers_and_collections_return_current_exactly)
{
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *l = rc_list_new();
    for (int i = 0; i < 1000; i++) {
        rc_object *x = rc_int(i);
        rc_list_append(l, x);
        rc_decref(x);
    }
    rc_list_append(l, l); /* a cycle: freed by the collector */
    cr_assert_eq(current(), LIST_BLOCK + 1000 * INT_BLOCK);
    rc_decref(l);
    cr_assert_eq(current(), LIST_BLOCK + 1000 * INT_BLOCK);
    rc_gc_collect(2);
    cr_assert_eq(current(), 0);
    cr_assert_eq(peak(), LIST_BLOCK + 1000 * INT_BLOCK);
    rc_trace_stop();
}

/* ---- snapshots and statistics -------------------------------------------- */

Test(trace, snapshot_while_stopped_is_an_error)
{
    cr_assert_null(rc_trace_snapshot());
    cr_assert(strstr(rc_last_error(), "not tracing"), "message: %s", rc_last_error());
}

Test(trace, statistics_by_lineno)
{
    rc_object *v[11];
    int line;
    cr_assert_eq(rc_trace_start(1), 0);
    int list_line = __LINE__; rc_object *l = rc_list_new();
    make_ints(v, 11, &line);
    rc_snapshot *s = rc_trace_snapshot();
    cr_assert_not_null(s);
    cr_assert_eq(rc_snapshot_traceback_limit(s), 1);
    size_t ntraces;
    rc_snapshot_traces(s, &ntraces);
    cr_assert_eq(ntraces, 12);

    size_t n;
    rc_statistic *st = rc_snapshot_statistics(s, RC_BY_LINENO, false, &n);
    cr_assert_not_null(st);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(st[0].traceback.frames[0].filename, THIS_FILE);
    cr_assert_eq(st[0].traceback.frames[0].lineno, (uint32_t)line);
    cr_assert_eq(st[0].traceback.nframes, 1);
    cr_assert_eq(st[0].size, 11 * INT_BLOCK);
    cr_assert_eq(st[0].count, 11);
    cr_assert_eq(st[1].traceback.frames[0].lineno, (uint32_t)list_line);
    cr_assert_eq(st[1].size, LIST_BLOCK);
    cr_assert_eq(st[1].count, 1);

    char buf[256], want[256];
    snprintf(want, sizeof want, "%s:%d: size=264 B, count=11, average=24 B", THIS_FILE, line);
    cr_assert_str_eq(rc_statistic_str(&st[0], buf, sizeof buf), want);
    snprintf(want, sizeof want, "%s:%d: size=48 B, count=1, average=48 B", THIS_FILE, list_line);
    cr_assert_str_eq(rc_statistic_str(&st[1], buf, sizeof buf), want);
    rc_statistics_free(st);
    rc_snapshot_free(s);
    decref_all(v, 11);
    rc_decref(l);
    rc_trace_stop();
}

Test(trace, statistics_ties_sort_by_traceback_descending)
{
    cr_assert_eq(rc_trace_start(1), 0);
    int la = __LINE__; rc_object *a = rc_int(1);
    int lb = __LINE__; rc_object *b = rc_int(2);
    rc_snapshot *s = rc_trace_snapshot();
    size_t n;
    rc_statistic *st = rc_snapshot_statistics(s, RC_BY_LINENO, false, &n);
    cr_assert_eq(n, 2);
    /* same size and count: (filename, lineno) decides, largest first */
    cr_assert_eq(st[0].traceback.frames[0].lineno, (uint32_t)lb);
    cr_assert_eq(st[1].traceback.frames[0].lineno, (uint32_t)la);
    rc_statistics_free(st);
    rc_snapshot_free(s);
    rc_decref(a);
    rc_decref(b);
    rc_trace_stop();
}

Test(trace, statistics_by_filename)
{
    rc_object *v[4];
    int line;
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *l = rc_list_new();
    make_ints(v, 4, &line);
    rc_snapshot *s = rc_trace_snapshot();
    size_t n;
    rc_statistic *st = rc_snapshot_statistics(s, RC_BY_FILENAME, false, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(st[0].size, LIST_BLOCK + 4 * INT_BLOCK);
    cr_assert_eq(st[0].count, 5);
    char buf[256];
    char want[256];
    snprintf(want, sizeof want, "%s:0: size=144 B, count=5, average=29 B", THIS_FILE);
    cr_assert_str_eq(rc_statistic_str(&st[0], buf, sizeof buf), want);
    rc_statistics_free(st);

    /* cumulative with one frame per trace: the same as not cumulative */
    st = rc_snapshot_statistics(s, RC_BY_LINENO, true, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(st[0].size, 4 * INT_BLOCK);
    rc_statistics_free(st);
    rc_snapshot_free(s);
    decref_all(v, 4);
    rc_decref(l);
    rc_trace_stop();
}

Test(trace, cumulative_by_traceback_is_an_error)
{
    cr_assert_eq(rc_trace_start(1), 0);
    rc_snapshot *s = rc_trace_snapshot();
    size_t n = 99;
    cr_assert_null(rc_snapshot_statistics(s, RC_BY_TRACEBACK, true, &n));
    cr_assert(strstr(rc_last_error(), "cumulative mode cannot be used"), "message: %s",
              rc_last_error());
    cr_assert_null(rc_snapshot_compare_to(s, s, RC_BY_TRACEBACK, true, &n));
    cr_assert_null(rc_snapshot_statistics(s, (rc_key_type)7, false, &n));
    rc_snapshot_free(s);
    rc_trace_stop();
}

Test(trace, empty_snapshot_has_no_statistics)
{
    cr_assert_eq(rc_trace_start(1), 0);
    rc_snapshot *s = rc_trace_snapshot();
    size_t n = 99;
    rc_statistic *st = rc_snapshot_statistics(s, RC_BY_LINENO, false, &n);
    cr_assert_not_null(st, "an empty result is not an error");
    cr_assert_eq(n, 0);
    rc_statistics_free(st);
    rc_snapshot_free(s);
    rc_trace_stop();
}

Test(trace, compare_to_shows_growth)
{
    rc_object *v1[5], *v2[4], *v3[2];
    int l1, l2, l3;
    cr_assert_eq(rc_trace_start(1), 0);
    make_ints(v1, 3, &l1);
    for (int i = 0; i < 2; i++) {
        l3 = __LINE__; v3[i] = rc_int(i);
    }
    rc_snapshot *old = rc_trace_snapshot();
    make_ints(v1 + 3, 2, &l1);
    for (int i = 0; i < 4; i++) {
        l2 = __LINE__; v2[i] = rc_int(i);
    }
    decref_all(v3, 2);
    rc_snapshot *now = rc_trace_snapshot();

    size_t n;
    rc_statistic_diff *d = rc_snapshot_compare_to(now, old, RC_BY_LINENO, false, &n);
    cr_assert_not_null(d);
    cr_assert_eq(n, 3);
    char buf[256], want[256];
    /* sorted by (|size_diff|, size, |count_diff|, count, traceback) descending */
    snprintf(want, sizeof want, "%s:%d: size=96 B (+96 B), count=4 (+4), average=24 B",
             THIS_FILE, l2);
    cr_assert_str_eq(rc_statistic_diff_str(&d[0], buf, sizeof buf), want);
    snprintf(want, sizeof want, "%s:%d: size=120 B (+48 B), count=5 (+2), average=24 B",
             THIS_FILE, l1);
    cr_assert_str_eq(rc_statistic_diff_str(&d[1], buf, sizeof buf), want);
    snprintf(want, sizeof want, "%s:%d: size=0 B (-48 B), count=0 (-2)", THIS_FILE, l3);
    cr_assert_str_eq(rc_statistic_diff_str(&d[2], buf, sizeof buf), want);
    cr_assert_eq(d[0].size_diff, 96);
    cr_assert_eq(d[0].count_diff, 4);
    cr_assert_eq(d[2].size, 0);
    cr_assert_eq(d[2].size_diff, -48);
    rc_statistics_free(d);

    /* unchanged lines show +0 */
    d = rc_snapshot_compare_to(now, now, RC_BY_LINENO, false, &n);
    cr_assert_eq(n, 2);
    snprintf(want, sizeof want, "%s:%d: size=120 B (+0 B), count=5 (+0), average=24 B",
             THIS_FILE, l1);
    cr_assert_str_eq(rc_statistic_diff_str(&d[0], buf, sizeof buf), want);
    rc_statistics_free(d);

    rc_snapshot_free(old);
    rc_snapshot_free(now);
    decref_all(v1, 5);
    decref_all(v2, 4);
    rc_trace_stop();
}

/* ---- filters ----------------------------------------------------------------- */

Test(trace, filter_traces)
{
    rc_object *v[3];
    int line;
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *l = rc_list_new();
    make_ints(v, 3, &line);
    rc_snapshot *s = rc_trace_snapshot();
    size_t n;

    rc_filter only_ints[] = {{true, "*test_trace.c", (uint32_t)line, false}};
    rc_snapshot *f = rc_snapshot_filter_traces(s, only_ints, 1);
    cr_assert_not_null(f);
    rc_snapshot_traces(f, &n);
    cr_assert_eq(n, 3);
    rc_snapshot_free(f);

    rc_filter no_ints[] = {{false, THIS_FILE, (uint32_t)line, false}};
    f = rc_snapshot_filter_traces(s, no_ints, 1);
    rc_statistic *st = rc_snapshot_statistics(f, RC_BY_LINENO, false, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(st[0].size, LIST_BLOCK);
    rc_statistics_free(st);
    rc_snapshot_free(f);

    rc_filter other_file[] = {{true, "samples/*", 0, false}};
    f = rc_snapshot_filter_traces(s, other_file, 1);
    rc_snapshot_traces(f, &n);
    cr_assert_eq(n, 0);
    rc_snapshot_free(f);

    /* include the file, exclude the ints' line: the list is left */
    rc_filter both[] = {{true, "*tests/runtime/*", 0, false}, {false, "*", (uint32_t)line, false}};
    f = rc_snapshot_filter_traces(s, both, 2);
    rc_snapshot_traces(f, &n);
    cr_assert_eq(n, 1);
    rc_snapshot_free(f);

    f = rc_snapshot_filter_traces(s, NULL, 0);
    rc_snapshot_traces(f, &n);
    cr_assert_eq(n, 4, "no filters: a copy");
    rc_snapshot_free(f);

    rc_snapshot_free(s);
    decref_all(v, 3);
    rc_decref(l);
    rc_trace_stop();
}

/* ---- dump / load ------------------------------------------------------------- */

static void assert_same_statistics(const rc_snapshot *a, const rc_snapshot *b, rc_key_type key,
                                   bool cumulative)
{
    size_t na, nb;
    rc_statistic *sa = rc_snapshot_statistics(a, key, cumulative, &na);
    rc_statistic *sb = rc_snapshot_statistics(b, key, cumulative, &nb);
    cr_assert_not_null(sa);
    cr_assert_not_null(sb);
    cr_assert_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        char x[512], y[512];
        cr_assert_str_eq(rc_statistic_str(&sa[i], x, sizeof x),
                         rc_statistic_str(&sb[i], y, sizeof y));
        cr_assert_eq(sa[i].size, sb[i].size);
        cr_assert_eq(sa[i].count, sb[i].count);
        cr_assert_eq(sa[i].traceback.nframes, sb[i].traceback.nframes);
        for (size_t k = 0; k < sa[i].traceback.nframes; k++) {
            rc_frame_str(&sa[i].traceback.frames[k], x, sizeof x);
            rc_frame_str(&sb[i].traceback.frames[k], y, sizeof y);
            cr_assert_str_eq(x, y);
        }
    }
    rc_statistics_free(sa);
    rc_statistics_free(sb);
}

Test(trace, dump_and_load_round_trip)
{
    rc_object *v[7];
    int line;
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *l = rc_list_new();
    make_ints(v, 7, &line);
    rc_snapshot *s = rc_trace_snapshot();
    char *path = tmp_path();
    cr_assert_eq(rc_snapshot_dump(s, path), 0, "%s", rc_last_error());
    rc_snapshot *back = rc_snapshot_load(path);
    cr_assert_not_null(back, "%s", rc_last_error());
    cr_assert_eq(rc_snapshot_traceback_limit(back), 1);
    size_t n1, n2;
    rc_snapshot_traces(s, &n1);
    rc_snapshot_traces(back, &n2);
    cr_assert_eq(n1, n2);
    assert_same_statistics(s, back, RC_BY_LINENO, false);
    assert_same_statistics(s, back, RC_BY_FILENAME, false);
    assert_same_statistics(s, back, RC_BY_TRACEBACK, false);
    size_t n;
    rc_statistic_diff *d = rc_snapshot_compare_to(back, s, RC_BY_LINENO, false, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(d[0].size_diff, 0);
    cr_assert_eq(d[1].count_diff, 0);
    rc_statistics_free(d);
    unlink(path);
    rc_snapshot_free(s);
    /* a loaded snapshot outlives tracing */
    rc_trace_stop();
    rc_statistic *st = rc_snapshot_statistics(back, RC_BY_LINENO, false, &n);
    cr_assert_eq(st[0].count, 7);
    cr_assert_str_eq(st[0].traceback.frames[0].filename, THIS_FILE);
    cr_assert_eq(st[0].traceback.frames[0].lineno, (uint32_t)line);
    rc_statistics_free(st);
    rc_snapshot_free(back);
    decref_all(v, 7);
    rc_decref(l);
}

Test(trace, load_rejects_bad_files)
{
    cr_assert_null(rc_snapshot_load("/nonexistent/snapshot"));
    cr_assert(strstr(rc_last_error(), "cannot open"), "%s", rc_last_error());

    char *path = tmp_path();
    FILE *f = fopen(path, "wb");
    fputs("this is not a snapshot, just text long enough for a header", f);
    fclose(f);
    cr_assert_null(rc_snapshot_load(path));
    cr_assert(strstr(rc_last_error(), "bad magic"), "%s", rc_last_error());

    /* a real dump cut short */
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *a = rc_int(1);
    rc_snapshot *s = rc_trace_snapshot();
    cr_assert_eq(rc_snapshot_dump(s, path), 0);
    FILE *g = fopen(path, "rb");
    char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, g);
    fclose(g);
    g = fopen(path, "wb");
    fwrite(buf, 1, len - 5, g);
    fclose(g);
    cr_assert_null(rc_snapshot_load(path));
    cr_assert(strstr(rc_last_error(), "truncated"), "%s", rc_last_error());
    unlink(path);
    rc_snapshot_free(s);
    rc_decref(a);
    rc_trace_stop();
}

/* ---- object tracebacks ---------------------------------------------------- */

Test(trace, object_traceback_is_the_site)
{
    cr_assert_eq(rc_trace_start(1), 0);
    int line = __LINE__; rc_object *a = rc_int(1);
    rc_traceback *tb = rc_trace_get_object_traceback(a);
    cr_assert_not_null(tb, "%s", rc_last_error());
    cr_assert_eq(tb->nframes, 1);
    cr_assert_str_eq(tb->frames[0].filename, THIS_FILE);
    cr_assert_eq(tb->frames[0].lineno, (uint32_t)line);
    char buf[256], want[256];
    snprintf(want, sizeof want, "%s:%d", THIS_FILE, line);
    cr_assert_str_eq(rc_frame_str(&tb->frames[0], buf, sizeof buf), want);
    rc_traceback_free(tb);
    rc_trace_stop();
    cr_assert_null(rc_trace_get_object_traceback(a), "not tracing: no traceback");
    rc_decref(a);
}

Test(trace, untraced_object_has_no_traceback)
{
    rc_object *a = rc_int(1);
    cr_assert_eq(rc_trace_start(1), 0);
    cr_assert_null(rc_trace_get_object_traceback(a));
    cr_assert(strstr(rc_last_error(), "was not allocated while tracing"), "%s", rc_last_error());
    rc_decref(a);
    rc_trace_stop();
}

static int helper_line;

__attribute__((noinline)) static rc_object *make_in_helper(void)
{
    helper_line = __LINE__; rc_object *o = rc_int(42);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return o;
}

Test(trace, deeper_frames_name_the_callers)
{
    cr_assert_eq(rc_trace_start(8), 0);
    cr_assert_eq(rc_trace_get_traceback_limit(), 8);
    int call_line = __LINE__; rc_object *a = make_in_helper();
    cr_assert_gt(rc_trace_get_tracemalloc_memory(), 0, "tracebacks are stored");

    rc_traceback *tb = rc_trace_get_object_traceback(a);
    cr_assert_not_null(tb, "%s", rc_last_error());
    cr_assert_geq(tb->nframes, 2);
    cr_assert_leq(tb->nframes, 8);
    cr_assert_str_eq(tb->frames[0].filename, THIS_FILE);
    cr_assert_eq(tb->frames[0].lineno, (uint32_t)helper_line, "frame 0: the exact site");
    cr_assert_str_eq(tb->frames[0].function, "make_in_helper");
    cr_assert_not_null(tb->frames[1].filename, "the test is built with debug info");
    cr_assert_str_eq(tb->frames[1].filename, THIS_FILE);
    cr_assert_eq(tb->frames[1].lineno, (uint32_t)call_line, "frame 1: the call of the helper");
    cr_assert_neq(tb->frames[1].address, 0);

    /* Traceback.format: oldest first, the site last, with its source line */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int lines = rc_traceback_print(tb, out, 2, false);
    fclose(out);
    cr_assert_geq(lines, 2);
    char want[256];
    snprintf(want, sizeof want, "  File \"%s\", line %d\n", THIS_FILE, call_line);
    cr_assert(strstr(text, want) == text, "first the caller:\n%s", text);
    snprintf(want, sizeof want, "  File \"%s\", line %d\n", THIS_FILE, helper_line);
    cr_assert(strstr(text, want), "then the site:\n%s", text);
    free(text);
    rc_traceback_free(tb);

    /* statistics by traceback: the deeper frames are part of the key */
    rc_snapshot *s = rc_trace_snapshot();
    size_t n;
    rc_statistic *st = rc_snapshot_statistics(s, RC_BY_TRACEBACK, false, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(st[0].size, INT_BLOCK);
    cr_assert_geq(st[0].traceback.nframes, 2);
    cr_assert_eq(st[0].traceback.frames[1].lineno, (uint32_t)call_line);
    rc_statistics_free(st);
    /* cumulative: the site's line and the caller's line both hold the int */
    st = rc_snapshot_statistics(s, RC_BY_LINENO, true, &n);
    bool site = false, caller = false;
    for (size_t i = 0; i < n; i++) {
        const rc_frame *f = &st[i].traceback.frames[0];
        if (f->filename && strcmp(f->filename, THIS_FILE) == 0) {
            site |= f->lineno == (uint32_t)helper_line && st[i].size == INT_BLOCK;
            caller |= f->lineno == (uint32_t)call_line && st[i].size == INT_BLOCK;
        }
    }
    cr_assert(site && caller);
    rc_statistics_free(st);
    /* filter over all frames: the caller's line selects it */
    rc_filter by_caller[] = {{true, THIS_FILE, (uint32_t)call_line, true}};
    rc_snapshot *f = rc_snapshot_filter_traces(s, by_caller, 1);
    rc_snapshot_traces(f, &n);
    cr_assert_eq(n, 1);
    rc_snapshot_free(f);
    /* a dump keeps the names */
    char *path = tmp_path();
    cr_assert_eq(rc_snapshot_dump(s, path), 0);
    rc_snapshot *back = rc_snapshot_load(path);
    cr_assert_not_null(back);
    assert_same_statistics(s, back, RC_BY_TRACEBACK, false);
    assert_same_statistics(s, back, RC_BY_LINENO, true);
    unlink(path);
    rc_snapshot_free(back);
    rc_snapshot_free(s);

    rc_decref(a);
    cr_assert_eq(current(), 0);
    rc_trace_stop();
    cr_assert_eq(rc_trace_get_tracemalloc_memory(), 0, "stop releases the tracer's tables");
}

Test(trace, nframes_1_stores_nothing_per_object)
{
    cr_assert_eq(rc_trace_start(1), 0);
    rc_object *l = rc_list_new();
    for (int i = 0; i < 1000; i++) {
        rc_object *x = rc_int(i);
        rc_list_append(l, x);
        rc_decref(x);
    }
    cr_assert_eq(rc_trace_get_tracemalloc_memory(), 0);
    rc_decref(l);
    rc_trace_stop();
}

Test(trace, many_deep_traces_free_cleanly)
{
    cr_assert_eq(rc_trace_start(4), 0);
    rc_object *l = rc_list_new();
    for (int i = 0; i < 5000; i++) {
        rc_object *x = make_in_helper();
        rc_list_append(l, x);
        rc_decref(x);
    }
    cr_assert_eq(current(), LIST_BLOCK + 5000 * INT_BLOCK);
    /* every object still finds its traceback after the side table grew */
    for (size_t i = 0; i < 5000; i += 499) {
        rc_traceback *tb = rc_trace_get_object_traceback(rc_list_get(l, i));
        cr_assert_not_null(tb);
        cr_assert_geq(tb->nframes, 2);
        rc_traceback_free(tb);
    }
    /* free every other one: lookups of the rest survive the deletions */
    for (size_t i = 0; i < 5000; i += 2) {
        rc_object *x = rc_int(-1);
        rc_list_set(l, i, x);
        rc_decref(x);
    }
    for (size_t i = 1; i < 5000; i += 2) {
        rc_traceback *tb = rc_trace_get_object_traceback(rc_list_get(l, i));
        cr_assert_not_null(tb);
        cr_assert_eq(tb->frames[0].lineno, (uint32_t)helper_line);
        cr_assert_geq(tb->nframes, 2);
        rc_traceback_free(tb);
    }
    rc_decref(l);
    cr_assert_eq(current(), 0);
    rc_trace_stop();
}

/* ---- formats ---------------------------------------------------------------- */

Test(trace, format_size_matches_tracemalloc)
{
    /* expected strings printed by CPython 3.11's tracemalloc._format_size */
    static const struct {
        double size;
        const char *plain, *sign;
    } cases[] = {
        {0, "0 B", "+0 B"},
        {1, "1 B", "+1 B"},
        {496, "496 B", "+496 B"},
        {5458, "5458 B", "+5458 B"},
        {5458.0 / 11, "496 B", "+496 B"},
        {1023.5, "1024 B", "+1024 B"},
        {10239, "10239 B", "+10239 B"},
        {10240, "10.0 KiB", "+10.0 KiB"},
        {10291, "10.0 KiB", "+10.0 KiB"},
        {102399, "100.0 KiB", "+100.0 KiB"},
        {102400, "100 KiB", "+100 KiB"},
        {1048575, "1024 KiB", "+1024 KiB"},
        {10485759, "10240 KiB", "+10240 KiB"},
        {10485760, "10.0 MiB", "+10.0 MiB"},
        {5368709120.0, "5120 MiB", "+5120 MiB"},
        {164926744166400.0, "150 TiB", "+150 TiB"},
        {-64, "-64 B", "-64 B"},
        {-10240, "-10.0 KiB", "-10.0 KiB"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_str_eq(rc_format_size(cases[i].size, false, buf, sizeof buf), cases[i].plain);
        cr_assert_str_eq(rc_format_size(cases[i].size, true, buf, sizeof buf), cases[i].sign);
    }
}

Test(trace, statistic_strings_match_tracemalloc)
{
    rc_frame fr = {.filename = "samples/leak.c", .lineno = 25};
    rc_statistic st = {{1, &fr}, 5458, 11};
    char buf[256];
    cr_assert_str_eq(rc_statistic_str(&st, buf, sizeof buf),
                     "samples/leak.c:25: size=5458 B, count=11, average=496 B");
    rc_statistic_diff d = {{1, &fr}, 5458, 5458, 11, 11};
    cr_assert_str_eq(rc_statistic_diff_str(&d, buf, sizeof buf),
                     "samples/leak.c:25: size=5458 B (+5458 B), count=11 (+11), average=496 B");
    rc_statistic big = {{1, &fr}, 3 * 1024 * 1024 + 100, 40000};
    cr_assert_str_eq(rc_statistic_str(&big, buf, sizeof buf),
                     "samples/leak.c:25: size=3072 KiB, count=40000, average=79 B");
    rc_frame nofile = {.function = "make_node", .offset = 0x1f, .address = 0x401234};
    cr_assert_str_eq(rc_frame_str(&nofile, buf, sizeof buf), "make_node+0x1f");
}
