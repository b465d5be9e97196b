/*
 * cycles: why reference counting alone leaks cycles, and how the cycle
 * collector frees them.
 *
 * Teaches: obj1 and obj2 refer to each other, so after every outside
 * reference is dropped each still has a count of 1 and nothing frees them;
 * obj3 is freed at once. gc.collect() (rc_gc_collect(2)) finds the
 * unreachable cycle, runs the PEP 442 finalizers (__del__) and frees both;
 * it returns the number of objects it found unreachable: 2. The Python it
 * mirrors:
 *
 *     class MyObject:
 *         __slots__ = ("name", "ref")
 *         def __init__(self, name):
 *             self.name = name; print(f"Object {name} created")
 *         def __del__(self):
 *             print(f"Object {self.name} deleted")
 *
 *     obj1 = MyObject("obj1"); obj2 = MyObject("obj2"); obj3 = MyObject("obj3")
 *     obj1.ref = obj2; obj2.ref = obj1
 *     del obj1, obj2, obj3          # only obj3 is deleted
 *     print("gc.collect() =", gc.collect())
 *
 * (__slots__: instances without a __dict__, so the collector counts 2
 * objects, not 4 -- CPython 3.11 prints 2 here too.)
 *
 * The leak point (--wait, --abort-at-end): after the del, before
 * gc.collect(): obj1 and obj2 (class MyObject, made in myobject_new) are an
 * unreachable cycle, what `refscope CORE cycles` lists.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

/* __del__: a PEP 442 finalizer, run once, before the object is freed. */
static void myobject_del(rc_object *self)
{
    rc_object *name = rc_getattr(self, "name");
    printf("Object %s deleted\n", name ? rc_str_value(name) : "?");
}

static rc_object *myobject_new(rc_object *cls, const char *name)
{
    rc_object *o = rc_instance_new(cls);
    rc_object *s = rc_str(name);
    rc_setattr(o, "name", s);
    rc_decref(s);
    printf("Object %s created\n", name);
    return o;
}

/* obj1..obj3 made, obj1 <-> obj2 linked, all three names dropped */
static SAMPLE_NOINLINE void plant_cycle(rc_object *MyObject)
{
    rc_object *obj1 = myobject_new(MyObject, "obj1");
    rc_object *obj2 = myobject_new(MyObject, "obj2");
    rc_object *obj3 = myobject_new(MyObject, "obj3");

    printf(">>> obj1.ref = obj2; obj2.ref = obj1\n");
    rc_setattr(obj1, "ref", obj2);
    rc_setattr(obj2, "ref", obj1);

    printf(">>> del obj1, obj2, obj3\n");
    rc_decref(obj1);
    rc_decref(obj2);
    rc_decref(obj3); /* count 0: finalized and freed right here */
    printf("obj1 and obj2 still hold each other: refcount %ld each, not freed\n",
           (long)rc_refcount(obj1));
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "cycles: a cycle refcounting cannot free, and gc.collect()");
    rc_init();
    static const char *const slots[] = {"name", "ref", NULL};
    rc_object *MyObject = rc_class_new("MyObject", slots, myobject_del, 0);

    plant_cycle(MyObject);

    sample_leak_planted();

    printf(">>> gc.collect()\n");
    fflush(stdout);
    size_t n = rc_gc_collect(2);
    printf("gc.collect() = %zu\n", n);

    rc_decref(MyObject);
    rc_shutdown();
    return 0;
}
