/*
 * uncollectable: a cycle whose objects have a legacy finalizer ends up in
 * gc.garbage instead of being freed.
 *
 * Teaches: since Python 3.4 (PEP 442) objects with __del__ in a cycle are
 * collected: the collector runs each finalizer once, then breaks the cycle.
 * A *legacy* finalizer (tp_del, what C extension types and Python 2's
 * __del__ had) is different: the collector cannot know in which order to
 * run them or whether one will need an object another one freed, so it
 * runs none, frees nothing of the cycle, and appends the objects to
 * gc.garbage -- the memory is kept until the program breaks the cycle
 * itself. gc.set_debug(gc.DEBUG_UNCOLLECTABLE) prints them when found, and
 * they are reported again at shutdown.
 *
 * The Python it mirrors (the lesson's "circular references with __del__"):
 *
 *     class Leaky:
 *         def __init__(self, name, other=None):
 *             self.name = name; self.other = other
 *         def __del__(self):
 *             print(f"Cleaning up {self.name}")
 *
 *     a = Leaky("a"); b = Leaky("b", a); a.other = b   # a cycle
 *     del a, b
 *     gc.set_debug(gc.DEBUG_UNCOLLECTABLE)
 *     gc.collect()      # 2: both unreachable, both uncollectable
 *     gc.garbage        # [<Leaky ...>, <Leaky ...>]
 *
 * The leak: two Leaky instances (class Leaky, made in leaky_new) held by
 * gc.garbage. `refscope CORE garbage` says why each one is there.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

static void cleaning_up(rc_object *self)
{
    rc_object *name = rc_getattr(self, "name");
    printf("Cleaning up %s\n", name ? rc_str_value(name) : "?");
}

/* Leaky(name, other) */
static SAMPLE_NOINLINE rc_object *leaky_new(rc_object *cls, const char *name, rc_object *other)
{
    rc_object *self = rc_instance_new(cls);
    rc_object *s = rc_str(name);
    rc_setattr(self, "name", s);
    rc_decref(s);
    if (other)
        rc_setattr(self, "other", other);
    return self;
}

/* a = cls("a"); b = cls("b", a); a.other = b; del a, b */
static SAMPLE_NOINLINE void make_cycle(rc_object *cls, const char *na, const char *nb)
{
    rc_object *a = leaky_new(cls, na, NULL);
    rc_object *b = leaky_new(cls, nb, a);
    rc_setattr(a, "other", b);
    rc_decref(a);
    rc_decref(b);
}

static void print_garbage(void)
{
    rc_object *garbage = rc_gc_garbage();
    size_t n = rc_list_len(garbage);
    printf("gc.garbage = [");
    for (size_t i = 0; i < n; i++) {
        rc_object *o = rc_list_get(garbage, i);
        rc_object *name = rc_getattr(o, "name");
        printf("%s<%s %s at %p>", i ? ", " : "", rc_type_name(o),
               name ? rc_str_value(name) : "?", (void *)o);
    }
    printf("]\n");
    printf("len(gc.garbage) = %zu\n", n);
}

/* Objects with __del__ in a cycle, since PEP 442: finalized, then freed. */
static SAMPLE_NOINLINE void show_pep442(const char *const *slots)
{
    printf("-- a cycle with a PEP 442 finalizer (__del__ today): collected\n");
    rc_object *Modern = rc_class_new("Modern", slots, cleaning_up, 0);
    sample_py("c = Modern(\"c\"); d = Modern(\"d\", c); c.other = d; del c, d");
    make_cycle(Modern, "c", "d");
    rc_decref(Modern);
    sample_py("gc.collect()");
    fflush(stdout);
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    print_garbage();
}

/* The same cycle with a legacy finalizer: found, kept in gc.garbage. */
static SAMPLE_NOINLINE void plant_legacy_cycle(const char *const *slots)
{
    printf("\n-- the same cycle with a legacy finalizer (tp_del): uncollectable\n");
    rc_object *Leaky = rc_class_new("Leaky", slots, cleaning_up, RC_CLASS_LEGACY_DEL);
    sample_py("a = Leaky(\"a\"); b = Leaky(\"b\", a); a.other = b; del a, b");
    make_cycle(Leaky, "a", "b");
    rc_decref(Leaky); /* the instances keep their class alive */
    sample_py("gc.set_debug(gc.DEBUG_UNCOLLECTABLE)");
    rc_gc_set_debug(RC_DEBUG_UNCOLLECTABLE);
    sample_py("gc.collect()");
    fflush(stdout);
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
    print_garbage();
    rc_gc_stats st[3];
    rc_gc_get_stats(st);
    printf("gc.get_stats()[2] = {'collections': %zu, 'collected': %zu, 'uncollectable': %zu}\n",
           st[2].collections, st[2].collected, st[2].uncollectable);
    printf("No \"Cleaning up a\": a legacy finalizer in a cycle is never run; the pair\n"
           "stays in gc.garbage (and so in memory) until the program breaks the cycle.\n");
}

int main(int argc, char **argv)
{
    sample_options(argc, argv,
                   "uncollectable: a legacy-finalizer cycle lands in gc.garbage");
    rc_init();
    rc_gc_disable(); /* only our explicit collections run */
    rc_gc_set_debug_stream(stdout);
    static const char *const slots[] = {"name", "other", NULL};

    show_pep442(slots);
    plant_legacy_cycle(slots);

    sample_leak_planted();

    printf("\n-- at exit, the runtime reports what is still uncollectable\n");
    fflush(stdout);
    rc_shutdown();
    return 0;
}
