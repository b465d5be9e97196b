/*
 * refcounts: what sys.getrefcount() shows, and why it starts at 2.
 *
 * Teaches: every object carries a reference count; taking a second
 * reference (b = a) raises it, dropping it (del b) lowers it; the object is
 * freed when the count reaches zero. Python's sys.getrefcount(a) shows one
 * more than the count, because passing `a` as the argument takes a
 * temporary reference. rc_refcount() is the count itself, so this program
 * prints rc_refcount(a) + 1 to show exactly what Python prints for:
 *
 *     a = []
 *     print(sys.getrefcount(a))   # 2
 *     b = a
 *     print(sys.getrefcount(a))   # 3
 *     del b
 *     print(sys.getrefcount(a))   # 2
 *
 * With --wait or --abort-at-end it stops while `a` has two references
 * (after b = a): `refscope CORE refs OBJ` shows the count and its holders.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>

/* sys.getrefcount(o): the count plus the argument's own temporary reference */
static long getrefcount(rc_object *o)
{
    return (long)rc_refcount(o) + 1;
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "refcounts: what sys.getrefcount() shows");
    rc_init();

    printf(">>> a = []\n");
    rc_object *a = rc_list_new();
    printf("sys.getrefcount(a) = %ld\n", getrefcount(a));

    printf(">>> b = a\n");
    rc_object *b = rc_incref(a); /* a second name for the same list */
    printf("sys.getrefcount(a) = %ld\n", getrefcount(a));

    sample_leak_planted(); /* a is held twice, by a and b */

    printf(">>> del b\n");
    rc_decref(b);
    b = NULL;
    printf("sys.getrefcount(a) = %ld\n", getrefcount(a));

    /* A container takes its own reference to what you put in it. */
    printf(">>> c = [a]\n");
    rc_object *c = rc_list_new();
    rc_list_append(c, a);
    printf("sys.getrefcount(a) = %ld\n", getrefcount(a));
    printf(">>> del c\n");
    rc_decref(c); /* the list dies and releases its items */
    printf("sys.getrefcount(a) = %ld\n", getrefcount(a));

    printf(">>> del a\n");
    rc_decref(a); /* count 0: freed now, no collector needed */

    rc_shutdown();
    return 0;
}
