/*
 * Reference counting: the counts Python's sys.getrefcount() would show
 * (minus one), what containers and rc_set do to them, which objects the
 * collector tracks, and the aborts that catch misuse.
 */
#include <refscope/rc.h>

#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void setup(void)
{
    rc_init();
}

TestSuite(refcount, .init = setup);

/* ---- counts -------------------------------------------------------------- */

Test(refcount, new_list_has_refcount_1)
{
    rc_object *l = rc_list_new();
    cr_assert_not_null(l);
    cr_assert_eq(rc_refcount(l), 1);
    cr_assert_eq(rc_incref(l), l, "rc_incref returns its argument");
    cr_assert_eq(rc_refcount(l), 2);
    rc_decref(l);
    cr_assert_eq(rc_refcount(l), 1);
    rc_decref(l);
}

Test(refcount, second_place_adds_one)
{
    rc_object *a = rc_list_new();
    rc_object *holder = rc_list_new();
    cr_assert_eq(rc_list_append(holder, a), 0);
    cr_assert_eq(rc_refcount(a), 2, "a list takes its own reference");
    cr_assert_eq(rc_list_append(holder, a), 0);
    cr_assert_eq(rc_refcount(a), 3);
    cr_assert_eq(rc_list_get(holder, 0), a);
    cr_assert_eq(rc_refcount(a), 3, "rc_list_get returns a borrowed reference");
    rc_object *popped = rc_list_pop(holder);
    cr_assert_eq(popped, a);
    cr_assert_eq(rc_refcount(a), 3, "pop hands the list's reference to the caller");
    rc_decref(popped);
    cr_assert_eq(rc_refcount(a), 2);
    cr_assert_eq(rc_list_clear(holder), 0);
    cr_assert_eq(rc_refcount(a), 1, "clear releases the items");
    cr_assert_eq(rc_list_len(holder), 0);
    rc_decref(holder);
    rc_decref(a);
}

Test(refcount, container_death_releases_items)
{
    rc_object *x = rc_str("x");
    rc_object *l = rc_list_new();
    rc_object *d = rc_dict_new();
    rc_list_append(l, x);
    rc_dict_set(d, "x", x);
    rc_object *t = rc_tuple_new(2, x, x);
    cr_assert_eq(rc_refcount(x), 5);
    rc_decref(t);
    cr_assert_eq(rc_refcount(x), 3);
    rc_decref(l);
    cr_assert_eq(rc_refcount(x), 2);
    cr_assert_eq(rc_dict_get(d, "x"), x);
    cr_assert_eq(rc_refcount(x), 2, "rc_dict_get returns a borrowed reference");
    cr_assert_eq(rc_dict_del(d, "x"), 0);
    cr_assert_eq(rc_refcount(x), 1);
    rc_decref(d);
    cr_assert_str_eq(rc_str_value(x), "x");
    rc_decref(x);
}

Test(refcount, replacing_an_item_releases_the_old_one)
{
    rc_object *a = rc_int(1), *b = rc_int(2);
    rc_object *l = rc_list_new();
    rc_list_append(l, a);
    rc_object *d = rc_dict_new();
    rc_dict_set(d, "k", a);
    cr_assert_eq(rc_refcount(a), 3);
    cr_assert_eq(rc_list_set(l, 0, b), 0);
    cr_assert_eq(rc_refcount(a), 2);
    cr_assert_eq(rc_refcount(b), 2);
    cr_assert_eq(rc_dict_set(d, "k", b), 0);
    cr_assert_eq(rc_refcount(a), 1);
    cr_assert_eq(rc_refcount(b), 3);
    cr_assert_eq(rc_dict_len(d), 1);
    rc_decref(l);
    rc_decref(d);
    cr_assert_eq(rc_refcount(b), 1);
    rc_decref(a);
    rc_decref(b);
}

Test(refcount, rc_set_semantics)
{
    rc_object *a = rc_list_new(), *b = rc_list_new();
    rc_object *slot = NULL;

    rc_set(&slot, a);
    cr_assert_eq(slot, a);
    cr_assert_eq(rc_refcount(a), 2, "rc_set increfs the new value");

    rc_set(&slot, b);
    cr_assert_eq(slot, b);
    cr_assert_eq(rc_refcount(a), 1, "rc_set decrefs the old value");
    cr_assert_eq(rc_refcount(b), 2);

    /* The slot holds the only reference: setting the same object again
     * must not free it (incref the new value before dropping the old). */
    rc_decref(b);
    cr_assert_eq(rc_refcount(b), 1);
    rc_set(&slot, b);
    cr_assert_eq(slot, b);
    cr_assert_eq(rc_refcount(b), 1);
    cr_assert_eq(rc_list_len(b), 0);

    rc_incref(b);
    rc_set(&slot, NULL);
    cr_assert_null(slot);
    cr_assert_eq(rc_refcount(b), 1);

    rc_set(&slot, NULL); /* NULL over NULL is fine */
    cr_assert_null(slot);
    rc_xdecref(NULL);    /* so is rc_xdecref(NULL) */
    rc_decref(a);
    rc_decref(b);
}

/* ---- tracking ------------------------------------------------------------ */

typedef struct Pair {
    RC_OBJECT_HEAD;
    rc_object *first;
    rc_object *second;
} Pair;
static const rc_field pair_fields[] = {RC_REF(Pair, first), RC_REF(Pair, second), RC_FIELDS_END};
static rc_type Pair_type = {.name = "Pair", .size = sizeof(Pair), .fields = pair_fields};

typedef struct Blob {
    RC_OBJECT_HEAD;
    double x;
} Blob;
static rc_type Blob_type = {.name = "Blob", .size = sizeof(Blob), .fields = NULL};
static const rc_field empty_fields[] = {RC_FIELDS_END};
static rc_type Empty_type = {.name = "Empty", .size = sizeof(Blob), .fields = empty_fields};

Test(refcount, atomic_objects_are_never_tracked)
{
    rc_object *i = rc_int(1), *s = rc_str("a"), *b = rc_bytes(10);
    cr_assert_not(rc_gc_is_tracked(i));
    cr_assert_not(rc_gc_is_tracked(s));
    cr_assert_not(rc_gc_is_tracked(b));
    Blob *blob = rc_new(Blob, &Blob_type);
    Blob *empty = rc_new(Blob, &Empty_type);
    cr_assert_not(rc_gc_is_tracked(RC_OBJ(blob)), "a type with fields == NULL is atomic");
    cr_assert_not(rc_gc_is_tracked(RC_OBJ(empty)), "a type with an empty field table is atomic");

    /* they stay untracked after a collection and never show in get_objects */
    rc_gc_collect(2);
    rc_object *all = rc_gc_get_objects(-1);
    for (size_t k = 0; k < rc_list_len(all); k++) {
        rc_object *o = rc_list_get(all, k);
        cr_assert(o != i && o != s && o != b && o != RC_OBJ(blob) && o != RC_OBJ(empty));
    }
    rc_decref(all);

    Pair *p = rc_new(Pair, &Pair_type);
    cr_assert(rc_gc_is_tracked(RC_OBJ(p)), "a type with references is tracked");
    rc_object *l = rc_list_new();
    cr_assert(rc_gc_is_tracked(l));
    rc_decref(p);
    rc_decref(l);
    rc_decref(blob);
    rc_decref(empty);
    rc_decref(i);
    rc_decref(s);
    rc_decref(b);
}

Test(refcount, user_type_fields_hold_references)
{
    rc_object *x = rc_int(42);
    Pair *p = rc_new(Pair, &Pair_type);
    cr_assert_null(p->first, "rc_new zeroes the instance");
    cr_assert_null(p->second);
    cr_assert_eq(rc_refcount(p), 1);
    rc_set(&p->first, x);
    rc_set(&p->second, x);
    cr_assert_eq(rc_refcount(x), 3);
    rc_decref(p); /* deallocation releases every described reference */
    cr_assert_eq(rc_refcount(x), 1);
    rc_decref(x);
}

/* ---- misuse aborts ------------------------------------------------------- */

Test(refcount, decref_below_zero_aborts, .signal = SIGABRT)
{
    rc_object *l = rc_list_new();
    rc_decref(l); /* frees it */
    rc_decref(l); /* below zero: must abort, never corrupt memory */
}

Test(refcount, decref_below_zero_aborts_atomic, .signal = SIGABRT)
{
    rc_object *i = rc_int(7);
    rc_decref(i);
    rc_decref(i);
}

Test(refcount, decref_below_zero_aborts_with_debug_checks, .signal = SIGABRT)
{
    rc_debug_set_checks(true);
    cr_assert(rc_debug_get_checks());
    rc_object *l = rc_list_new();
    rc_decref(l);
    rc_decref(l);
}

Test(refcount, incref_of_freed_object_aborts_with_debug_checks, .signal = SIGABRT)
{
    rc_debug_set_checks(true);
    rc_object *l = rc_list_new();
    rc_decref(l);
    rc_incref(l);
}

/* Run `body` in a child; return what it wrote on stderr (malloc'd) and its
 * wait status. */
static char *stderr_of_child(void (*body)(void), int *status)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        body();
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fds[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(fds[0]);
    cr_assert_eq(waitpid(pid, status, 0), pid);
    return buf;
}

static const int freed_line = __LINE__ + 3; /* the rc_list_new() below */
static void decref_freed_list(void)
{
    rc_object *l = rc_list_new();
    rc_decref(l);
    rc_decref(l);
}

Test(refcount, decref_of_freed_object_names_type_and_site)
{
    int status;
    char *err = stderr_of_child(decref_freed_list, &status);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "expected an abort, got status %#x; stderr: %s", status, err);
    cr_assert_not_null(strstr(err, "list@0x"), "the message names the object: %s", err);
    char site[64];
    snprintf(site, sizeof site, "test_refcount.c:%d)", freed_line);
    cr_assert_not_null(strstr(err, site), "the message names the allocation site %s: %s",
                       site, err);
    free(err);
}

/* ---- descriptions and sizes ---------------------------------------------- */

Test(refcount, describe_format)
{
    rc_object *l = rc_list_new(); int line = __LINE__;
    char buf[256];
    cr_assert_eq(rc_describe(l, buf, sizeof buf), buf);
    cr_assert(strncmp(buf, "list@0x", 7) == 0, "got %s", buf);
    uintptr_t addr = (uintptr_t)strtoull(buf + 5, NULL, 16);
    cr_assert_eq(addr, (uintptr_t)l, "the address is the object's: %s", buf);
    char site[64];
    snprintf(site, sizeof site, " (test_refcount.c:%d)", line);
    cr_assert_not_null(strstr(buf, site), "expected %s in %s", site, buf);
    cr_assert_eq(buf[strlen(buf) - 1], ')');
    cr_assert_str_eq(rc_type_name(l), "list");

    char small[8];
    memset(small, 'X', sizeof small);
    rc_describe(l, small, sizeof small);
    cr_assert_lt(strnlen(small, sizeof small), sizeof small, "truncated output is terminated");

    rc_object *i = rc_int(3); line = __LINE__;
    rc_describe(i, buf, sizeof buf);
    cr_assert(strncmp(buf, "int@0x", 6) == 0, "got %s", buf);
    snprintf(site, sizeof site, "test_refcount.c:%d)", line);
    cr_assert_not_null(strstr(buf, site), "expected %s in %s", site, buf);

    Pair *p = rc_new(Pair, &Pair_type); line = __LINE__;
    rc_describe(RC_OBJ(p), buf, sizeof buf);
    cr_assert(strncmp(buf, "Pair@0x", 7) == 0, "got %s", buf);
    snprintf(site, sizeof site, "test_refcount.c:%d)", line);
    cr_assert_not_null(strstr(buf, site), "expected %s in %s", site, buf);
    rc_decref(p);
    rc_decref(i);
    rc_decref(l);
}

Test(refcount, sizeof_list_grows_with_appends)
{
    rc_object *l = rc_list_new();
    size_t s0 = rc_sizeof(l);
    /* a tracked object: the collector head and the object head at least */
    cr_assert_geq(s0, 32, "sizeof(empty list) = %zu", s0);
    rc_object *x = rc_int(0);
    size_t prev = s0, grew = 0;
    for (int k = 0; k < 100; k++) {
        rc_list_append(l, x);
        size_t s = rc_sizeof(l);
        cr_assert_geq(s, prev, "sizeof never shrinks while appending");
        if (s > prev)
            grew++;
        prev = s;
    }
    cr_assert_gt(grew, 1, "the list's buffer grows several times (over-allocation)");
    cr_assert_geq(prev, s0 + 100 * sizeof(rc_object *),
                  "100 items take at least 100 pointers: %zu -> %zu", s0, prev);
    rc_list_clear(l);
    rc_decref(l);

    rc_object *big = rc_bytes(1000);
    cr_assert_geq(rc_sizeof(big), 1000 + sizeof(rc_object));
    cr_assert_eq(rc_bytes_len(big), 1000);
    rc_decref(big);
    cr_assert_geq(rc_sizeof(x), sizeof(rc_object));
    rc_decref(x);
}

/* Site id 0 means "unknown": the very first object the runtime makes (the
 * garbage list, at rc_init) still gets a real site. */
Test(refcount, first_object_has_a_site)
{
    char buf[256];
    rc_describe(rc_gc_garbage(), buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "(registry.c:"), "got %s", buf);
}
