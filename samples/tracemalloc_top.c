/*
 * tracemalloc_top: which lines allocated the memory, and which line keeps
 * allocating more.
 *
 * Teaches: tracemalloc records where every object was allocated (file and
 * line of the constructor call). A snapshot groups the live objects by
 * line: the "top 10" says which lines hold the most memory now. Two
 * snapshots compared say which lines *grew* in between -- the way to find a
 * leak in a program that keeps running: do the suspect work between two
 * snapshots, and the leaking line comes out on top with "+N" objects, even
 * when the work also allocated (and freed) much more elsewhere. With more
 * than one frame per traceback it also says who called that line.
 *
 * The Python it mirrors:
 *
 *     tracemalloc.start(4)
 *     data = create_list()              # [i for i in range(10000)]
 *     snapshot = tracemalloc.take_snapshot()
 *     print("[Top 10]")
 *     for stat in snapshot.statistics("lineno")[:10]:
 *         print(stat)
 *
 *     snapshot1 = tracemalloc.take_snapshot()
 *     for i in range(1000):
 *         handle_request(i)             # forgets one log entry per request
 *     snapshot2 = tracemalloc.take_snapshot()
 *     print("[Top 10 differences]")
 *     for stat in snapshot2.compare_to(snapshot1, "lineno")[:10]:
 *         print(stat)
 *
 * The leak: 1000 str log entries made in remember(), held by the list in
 * the C global `request_log`.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

SAMPLE_KEEP static rc_object *data;        /* create_list()'s result, kept */
SAMPLE_KEEP static rc_object *request_log; /* every request remembered: the leak */

/* [i for i in range(n)] */
static SAMPLE_NOINLINE rc_object *create_list(int n)
{
    rc_object *list = rc_list_new();
    for (int i = 0; i < n; i++) {
        rc_object *v = rc_int(i);
        rc_list_append(list, v);
        rc_decref(v);
    }
    return list;
}

/* request_log.append(f"request {i}: ok") */
static SAMPLE_NOINLINE void remember(int i)
{
    char text[64];
    snprintf(text, sizeof text, "request %d: ok, served from the handler cache", i);
    rc_object *entry = rc_str(text);
    rc_list_append(request_log, entry);
    rc_decref(entry);
}

/* Does real work (a temporary dict and list, freed on return) and, by
 * mistake, remembers every request for ever. */
static SAMPLE_NOINLINE void handle_request(int i)
{
    rc_object *headers = rc_dict_new();
    rc_object *body = rc_bytes(2048);
    rc_dict_set(headers, "body", body);
    rc_object *parts = rc_list_new();
    for (int k = 0; k < 8; k++) {
        rc_object *v = rc_int(i * 8 + k);
        rc_list_append(parts, v);
        rc_decref(v);
    }
    remember(i);
    rc_decref(parts);
    rc_decref(body);
    rc_decref(headers);
}

static void print_top(const rc_snapshot *snap, int limit)
{
    size_t n;
    rc_statistic *stats = rc_snapshot_statistics(snap, RC_BY_LINENO, false, &n);
    for (size_t i = 0; i < n && i < (size_t)limit; i++) {
        char line[512];
        printf("%s\n", rc_statistic_str(&stats[i], line, sizeof line));
    }
    rc_statistics_free(stats);
}

static SAMPLE_NOINLINE void top_ten(void)
{
    sample_py("data = create_list()");
    data = create_list(10000);
    rc_object *names = rc_list_new();
    for (int i = 0; i < 100; i++) {
        char s[32];
        snprintf(s, sizeof s, "name-%d", i);
        rc_object *v = rc_str(s);
        rc_list_append(names, v);
        rc_decref(v);
    }
    sample_py("snapshot = tracemalloc.take_snapshot()");
    rc_snapshot *snap = rc_trace_snapshot();
    sample_py("for stat in snapshot.statistics('lineno')[:10]: print(stat)");
    printf("[Top 10]\n");
    print_top(snap, 10);
    rc_snapshot_free(snap);
    rc_decref(names);
}

static SAMPLE_NOINLINE void find_the_leak(void)
{
    printf("\n-- finding a leak: compare a snapshot before and after the work\n");
    request_log = rc_list_new();
    sample_py("snapshot1 = tracemalloc.take_snapshot()");
    rc_snapshot *snap1 = rc_trace_snapshot();
    sample_py("for i in range(1000): handle_request(i)");
    for (int i = 0; i < 1000; i++)
        handle_request(i);
    sample_py("snapshot2 = tracemalloc.take_snapshot()");
    rc_snapshot *snap2 = rc_trace_snapshot();
    sample_py("for stat in snapshot2.compare_to(snapshot1, 'lineno')[:10]: print(stat)");
    printf("[Top 10 differences]\n");
    size_t n;
    rc_statistic_diff *diffs = rc_snapshot_compare_to(snap2, snap1, RC_BY_LINENO, false, &n);
    for (size_t i = 0; i < n && i < 10; i++) {
        char line[512];
        printf("%s\n", rc_statistic_diff_str(&diffs[i], line, sizeof line));
    }
    if (n > 0) {
        const rc_frame *site = &diffs[0].traceback.frames[0];
        printf("the line that grew the most is in %s()\n", site->function);
    }
    rc_statistics_free(diffs);

    printf("\n-- who called it: the same comparison by traceback\n");
    sample_py("stat = snapshot2.compare_to(snapshot1, 'traceback')[0]");
    rc_statistic_diff *tb = rc_snapshot_compare_to(snap2, snap1, RC_BY_TRACEBACK, false, &n);
    if (n > 0) {
        printf("%zu new objects (+%lld), allocated at:\n", tb[0].count,
               (long long)tb[0].count_diff);
        sample_py("for line in stat.traceback.format(): print(line)");
        rc_traceback_print(&tb[0].traceback, stdout, 0, false);
    }
    rc_statistics_free(tb);
    rc_snapshot_free(snap1);
    rc_snapshot_free(snap2);
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "tracemalloc_top: the top 10 lines, and a snapshot comparison "
                               "that shows the leaking line");
    rc_init();
    sample_py("tracemalloc.start(4)");
    rc_trace_start(4);

    top_ten();
    find_the_leak();

    sample_leak_planted();

    rc_decref(request_log);
    rc_decref(data);
    request_log = data = NULL;
    rc_trace_stop();
    rc_shutdown();
    return 0;
}
