/*
 * bench_py WORKLOAD N [options]: the same workloads as bench_rc.c, on
 * CPython 3.11 embedded through its C API (the peer refscope is measured
 * against). Objects are built with PyTuple_New / PyList_New, or, with
 * --kind slots, as instances of `class Node: __slots__ = ('next', 'other')`,
 * whose layout is refscope's Node but for the gc head (16 B gc head + 16 B
 * head + two references = 48 B; refscope's gc head is 8 B: 40 B).
 *
 *   alloc N      batches of --batch (1000) tuples (parent_list, 1), then
 *                freed; the collector on with its default thresholds, as in
 *                bench_rc. --trace: with tracemalloc.start() (one frame).
 *   cycles N     N/2 unreachable two-object cycles of lists [other, 1]
 *                (tuples cannot be cleared by the collector: a tuple cycle
 *                is never freed), or of slots instances: one PyGC_Collect().
 *   reachable N  a root list of N tuples (previous, 1) -- tuple 0 refers to
 *                the root list, so CPython never untracks them -- or slots
 *                instances: one warm-up PyGC_Collect, then the median of
 *                --repeat (3).
 *   chain N      N tuples (previous, 1) (or slots instances) held by the last
 *                only: time the Py_DECREF that frees them.
 *   memory N     N live tuples (parent_list, 1) or slots instances: bytes per
 *                object from RSS and from sys.getsizeof.
 *
 * The collector is disabled while graphs are built (gc.disable()) and
 * enabled again before collecting: PyGC_Collect() does nothing while it is
 * disabled.
 *
 * Output: one line, see bench.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "bench.h"

#include <stdbool.h>

static bool use_slots;
static PyObject *node_class; /* class Node with __slots__ ('next', 'other') */

static void die(const char *what)
{
    if (PyErr_Occurred())
        PyErr_Print();
    fprintf(stderr, "bench_py: %s failed\n", what);
    exit(1);
}

static void run_python(const char *code)
{
    if (PyRun_SimpleString(code) != 0)
        die(code);
}

static PyObject *main_attr(const char *name)
{
    PyObject *m = PyImport_AddModule("__main__"); /* borrowed */
    PyObject *v = m ? PyObject_GetAttrString(m, name) : NULL;
    if (!v)
        die(name);
    return v;
}

/* A new object referring to next and other (new references taken). Tuples
 * are filled as C code fills a fresh tuple; instances through the slots. */
static inline PyObject *tuple2(PyObject *next, PyObject *other)
{
    PyObject *t = PyTuple_New(2);
    if (!t)
        die("PyTuple_New");
    Py_INCREF(next);
    PyTuple_SET_ITEM(t, 0, next);
    Py_INCREF(other);
    PyTuple_SET_ITEM(t, 1, other);
    return t;
}

static PyObject *name_next, *name_other; /* interned attribute names */

static PyObject *slots2(PyObject *next, PyObject *other)
{
    PyObject *o = PyObject_CallNoArgs(node_class);
    if (!o || PyObject_SetAttr(o, name_next, next) != 0 ||
        PyObject_SetAttr(o, name_other, other) != 0)
        die("Node()");
    return o;
}

static PyObject *list2(PyObject *next, PyObject *other)
{
    PyObject *l = PyList_New(2);
    if (!l)
        die("PyList_New");
    Py_INCREF(next);
    PyList_SET_ITEM(l, 0, next);
    Py_INCREF(other);
    PyList_SET_ITEM(l, 1, other);
    return l;
}

/* ---- alloc ------------------------------------------------------------------- */

static BENCH_REGION void bench_region_alloc(size_t n, size_t batch, PyObject **slots,
                                            PyObject *parent, PyObject *leaf)
{
    for (size_t done = 0; done < n; done += batch) {
        size_t b = n - done < batch ? n - done : batch;
        for (size_t i = 0; i < b; i++)
            slots[i] = tuple2(parent, leaf);
        for (size_t i = 0; i < b; i++)
            Py_DECREF(slots[i]);
    }
}

static void run_alloc(size_t n, size_t batch, bool trace)
{
    PyObject **slots = calloc(batch, sizeof *slots);
    PyObject *parent = PyList_New(0);
    PyObject *leaf = PyLong_FromLong(1);
    if (trace)
        run_python("import tracemalloc; tracemalloc.start(1)");
    bench_region_alloc(batch, batch, slots, parent, leaf);
    bench_time t = bench_start();
    bench_region_alloc(n, batch, slots, parent, leaf);
    t = bench_stop(t);
    if (trace)
        run_python("tracemalloc.stop()");
    printf("bench=alloc peer=cpython n=%zu batch=%zu trace=%d " BENCH_TIME_FMT " version=%s\n",
           n, batch, trace ? 1 : 0, BENCH_TIME_ARGS(t), PY_VERSION);
    Py_DECREF(parent);
    Py_DECREF(leaf);
    free(slots);
}

/* ---- the collector ----------------------------------------------------------- */

static BENCH_REGION Py_ssize_t bench_region_collect(void) { return PyGC_Collect(); }

static void run_cycles(size_t n)
{
    PyObject *leaf = PyLong_FromLong(1);
    PyGC_Disable();
    for (size_t i = 0; i + 1 < n; i += 2) {
        PyObject *a, *b;
        if (use_slots) {
            a = slots2(Py_None, leaf);
            b = slots2(a, leaf);
            if (PyObject_SetAttr(a, name_next, b) != 0)
                die("a.next = b");
        } else {
            a = list2(Py_None, leaf);
            b = list2(a, leaf);
            if (PyList_SetItem(a, 0, Py_NewRef(b)) != 0) /* drops the None */
                die("a[0] = b");
        }
        Py_DECREF(a);
        Py_DECREF(b);
    }
    PyGC_Enable();
    bench_time t = bench_start();
    Py_ssize_t collected = bench_region_collect();
    t = bench_stop(t);
    printf("bench=cycles peer=cpython kind=%s n=%zu " BENCH_TIME_FMT " collected=%zd\n",
           use_slots ? "slots" : "list", n, BENCH_TIME_ARGS(t), collected);
    Py_DECREF(leaf);
}

static void run_reachable(size_t n, int repeat)
{
    PyObject *leaf = PyLong_FromLong(1);
    PyObject *list = PyList_New(0);
    PyGC_Disable();
    PyObject *prev = list; /* tuple 0 refers to a tracked list: never untracked */
    for (size_t i = 0; i < n; i++) {
        PyObject *o = use_slots ? slots2(prev, leaf) : tuple2(prev, leaf);
        if (PyList_Append(list, o) != 0)
            die("append");
        Py_DECREF(o);
        prev = o;
    }
    PyGC_Enable();
    bench_time first = bench_start();
    Py_ssize_t collected = bench_region_collect();
    first = bench_stop(first);
    bench_time times[16];
    if (repeat > 16)
        repeat = 16;
    for (int i = 0; i < repeat; i++) {
        times[i] = bench_start();
        collected += bench_region_collect();
        times[i] = bench_stop(times[i]);
    }
    qsort(times, (size_t)repeat, sizeof times[0], bench_time_cmp);
    printf("bench=reachable peer=cpython kind=%s n=%zu " BENCH_TIME_FMT " first_cpu_ns=%llu "
           "collected=%zd\n",
           use_slots ? "slots" : "tuple", n, BENCH_TIME_ARGS(times[repeat / 2]),
           (unsigned long long)first.cpu_ns, collected);
    PyList_SetSlice(list, 0, PyList_GET_SIZE(list), NULL); /* break list <- tuple 0 */
    Py_DECREF(list);
    Py_DECREF(leaf);
}

/* ---- refcount death of a chain ------------------------------------------------ */

static BENCH_REGION void bench_region_decref(PyObject *o) { Py_DECREF(o); }

static void run_chain(size_t n)
{
    PyObject *leaf = PyLong_FromLong(1);
    PyGC_Disable();
    PyObject *last = Py_None;
    Py_INCREF(last);
    for (size_t i = 0; i < n; i++) {
        PyObject *o = use_slots ? slots2(last, leaf) : tuple2(last, leaf);
        Py_DECREF(last);
        last = o;
    }
    bench_time t = bench_start();
    bench_region_decref(last);
    t = bench_stop(t);
    printf("bench=chain peer=cpython kind=%s n=%zu " BENCH_TIME_FMT "\n",
           use_slots ? "slots" : "tuple", n, BENCH_TIME_ARGS(t));
    PyGC_Enable();
    Py_DECREF(leaf);
}

/* ---- memory --------------------------------------------------------------------- */

static void run_memory(size_t n)
{
    PyObject *leaf = PyLong_FromLong(1);
    PyObject *parent = PyList_New(0);
    PyObject **all = malloc(n * sizeof *all);
    memset(all, 0xff, n * sizeof *all); /* resident before the baseline */
    PyGC_Disable();
    uint64_t rss0 = bench_rss();
    bench_time t = bench_start();
    for (size_t i = 0; i < n; i++)
        all[i] = use_slots ? slots2(parent, leaf) : tuple2(parent, leaf);
    t = bench_stop(t);
    uint64_t rss1 = bench_rss();
    size_t size = _PySys_GetSizeOf(all[0]);
    printf("bench=memory peer=cpython kind=%s n=%zu " BENCH_TIME_FMT " sizeof=%zu "
           "rss_bytes=%.2f\n",
           use_slots ? "slots" : "tuple", n, BENCH_TIME_ARGS(t), size,
           (double)(rss1 - rss0) / (double)n);
    for (size_t i = 0; i < n; i++)
        Py_DECREF(all[i]);
    free(all);
    PyGC_Enable();
    Py_DECREF(parent);
    Py_DECREF(leaf);
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "bench_py alloc|cycles|reachable|chain|memory N [--kind tuple|list|slots] "
        "[--batch B] [--trace] [--repeat R]";
    if (argc < 3)
        bench_usage(usage);
    const char *w = argv[1];
    size_t n = bench_parse_count(argv[2]);
    size_t batch = 1000;
    int repeat = 3;
    bool trace = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--trace") == 0)
            trace = true;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = bench_parse_count(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = (int)bench_parse_count(argv[++i]);
        else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
            const char *k = argv[++i];
            if (strcmp(k, "slots") == 0)
                use_slots = true;
            else if (strcmp(k, "tuple") != 0 && strcmp(k, "list") != 0)
                bench_usage(usage);
        } else {
            bench_usage(usage);
        }
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    PyStatus status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);
    if (use_slots) {
        run_python("class Node:\n    __slots__ = ('next', 'other')\n");
        node_class = main_attr("Node");
        name_next = PyUnicode_InternFromString("next");
        name_other = PyUnicode_InternFromString("other");
        if (!name_next || !name_other)
            die("PyUnicode_InternFromString");
    }

    if (strcmp(w, "alloc") == 0)
        run_alloc(n, batch, trace);
    else if (strcmp(w, "cycles") == 0)
        run_cycles(n);
    else if (strcmp(w, "reachable") == 0)
        run_reachable(n, repeat);
    else if (strcmp(w, "chain") == 0)
        run_chain(n);
    else if (strcmp(w, "memory") == 0)
        run_memory(n);
    else
        bench_usage(usage);
    Py_XDECREF(node_class);
    Py_XDECREF(name_next);
    Py_XDECREF(name_other);
    if (Py_FinalizeEx() < 0)
        return 1;
    return 0;
}
