/*
 * slots: what __slots__ saves per instance.
 *
 * Teaches: an instance of an ordinary class keeps its attributes in a
 * per-instance dict (__dict__): a second object with its own hash table,
 * sized for growth. A class with __slots__ = ('x', 'y') gives each instance
 * a fixed place for exactly those attributes and no dict, so each instance
 * is one small object. With many small instances (points, records, nodes)
 * that is the difference between the memory of 2 objects and of 1. The
 * lesson quotes "~40-50% per object" for CPython, whose instance dicts
 * share their keys with the class; the runtime's dicts do not, so the
 * saving here is larger (about 77% with the ints counted, 83% without).
 * The price: no attributes other than the declared ones.
 *
 * The Python it mirrors:
 *
 *     class PointRegular:
 *         def __init__(self, x, y): self.x = x; self.y = y
 *     class PointSlots:
 *         __slots__ = ['x', 'y']
 *         def __init__(self, x, y): self.x = x; self.y = y
 *
 *     sys.getsizeof(regular), sys.getsizeof(regular.__dict__), sys.getsizeof(slotted)
 *     points = [PointSlots(i, i) for i in range(100000)]   # vs PointRegular
 *
 * Sizes are the runtime's: sys.getsizeof is rc_sizeof (headers and owned
 * buffers included), and the memory of 100 000 points is measured with
 * tracemalloc plus the dict tables (which tracemalloc does not trace here).
 *
 * The leak point (--wait, --abort-at-end): both lists of 100 000 points
 * alive, held by the C globals `regular_points` and `slotted_points`
 * (`refscope CORE types` shows the two classes side by side).
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

#define NPOINTS 100000

SAMPLE_KEEP static rc_object *regular_points;
SAMPLE_KEEP static rc_object *slotted_points;

/* Point(x, y): the shared ints x and y are the caller's */
static rc_object *point_new(rc_object *cls, rc_object *x, rc_object *y)
{
    rc_object *p = rc_instance_new(cls);
    rc_setattr(p, "x", x);
    rc_setattr(p, "y", y);
    return p;
}

/* [cls(i, i) for i in range(n)], and the bytes it took per point */
static SAMPLE_NOINLINE rc_object *make_points(rc_object *cls, size_t n, double *per_point)
{
    size_t before, after;
    rc_trace_get_memory(&before, NULL);
    size_t untraced = 0; /* dict tables: malloc'd buffers, not traced */
    rc_object *empty = rc_dict_new();
    size_t dict_block = rc_sizeof(empty); /* a dict without a table: its object alone */
    rc_decref(empty);
    rc_object *list = rc_list_new();
    for (size_t i = 0; i < n; i++) {
        rc_object *v = rc_int((int64_t)i);
        rc_object *p = point_new(cls, v, v);
        rc_object *dict = rc_getattr(p, "__dict__");
        if (dict) /* the dict's size beyond its object block */
            untraced += rc_sizeof(dict) - dict_block;
        rc_list_append(list, p);
        rc_decref(p);
        rc_decref(v);
    }
    rc_trace_get_memory(&after, NULL);
    *per_point = (double)(after - before + untraced) / (double)n;
    return list;
}

static SAMPLE_NOINLINE void compare_one(rc_object *PointRegular, rc_object *PointSlots)
{
    rc_object *one = rc_int(1), *two = rc_int(2);
    sample_py("regular = PointRegular(1, 2); slotted = PointSlots(1, 2)");
    rc_object *regular = point_new(PointRegular, one, two);
    rc_object *slotted = point_new(PointSlots, one, two);
    size_t inst = rc_sizeof(regular), dict = rc_sizeof(rc_getattr(regular, "__dict__"));
    size_t slot = rc_sizeof(slotted);
    printf("sys.getsizeof(regular) = %zu\n", inst);
    printf("sys.getsizeof(regular.__dict__) = %zu\n", dict);
    printf("sys.getsizeof(slotted) = %zu\n", slot);
    printf("hasattr(slotted, '__dict__') = %s\n",
           rc_getattr(slotted, "__dict__") ? "True" : "False");
    printf("per instance: regular %zu bytes (object + __dict__), slotted %zu bytes: "
           "%.0f%% saved\n",
           inst + dict, slot, 100.0 * (double)(inst + dict - slot) / (double)(inst + dict));
    sample_py("slotted.z = 3");
    rc_object *three = rc_int(3);
    if (rc_setattr(slotted, "z", three) < 0)
        printf("AttributeError: %s\n", rc_last_error());
    rc_decref(three);
    rc_decref(regular);
    rc_decref(slotted);
    rc_decref(one);
    rc_decref(two);
}

static SAMPLE_NOINLINE void compare_many(rc_object *PointRegular, rc_object *PointSlots)
{
    printf("\n-- %d points of each\n", NPOINTS);
    double per_regular, per_slotted;
    sample_py("regular_points = [PointRegular(i, i) for i in range(%d)]", NPOINTS);
    regular_points = make_points(PointRegular, NPOINTS, &per_regular);
    sample_py("slotted_points = [PointSlots(i, i) for i in range(%d)]", NPOINTS);
    slotted_points = make_points(PointSlots, NPOINTS, &per_slotted);
    char a[32], b[32];
    printf("PointRegular: %s for %d points, %.0f bytes per point\n",
           rc_format_size(per_regular * NPOINTS, false, a, sizeof a), NPOINTS, per_regular);
    printf("PointSlots:   %s for %d points, %.0f bytes per point\n",
           rc_format_size(per_slotted * NPOINTS, false, b, sizeof b), NPOINTS, per_slotted);
    printf("__slots__ saves %.0f%% per point\n", 100.0 * (per_regular - per_slotted) / per_regular);
}

static SAMPLE_NOINLINE void make_classes(void)
{
    static const char *const slots[] = {"x", "y", NULL};
    rc_object *PointRegular = rc_class_new("PointRegular", NULL, NULL, 0);
    rc_object *PointSlots = rc_class_new("PointSlots", slots, NULL, 0);
    compare_one(PointRegular, PointSlots);
    compare_many(PointRegular, PointSlots);
    rc_decref(PointRegular); /* the instances keep their classes */
    rc_decref(PointSlots);
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "slots: memory per instance, dict-based vs slotted");
    rc_init();
    rc_trace_start(1);

    make_classes();

    sample_leak_planted();

    rc_decref(regular_points);
    rc_decref(slotted_points);
    regular_points = slotted_points = NULL;
    rc_trace_stop();
    rc_shutdown();
    return 0;
}
