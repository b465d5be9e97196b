/*
 * Misuse is caught: refcount operations that would corrupt memory abort
 * with a message naming the object as "Type@0xADDR (file.c:LINE)", its
 * allocation site; and freed blocks are poisoned so a use after free shows.
 *
 * Debug checks are turned on both ways a user can: rc_debug_set_checks()
 * and RCSCOPE_DEBUG=1 in the environment (read when the runtime starts).
 * Each misuse runs in a forked child whose stderr the test reads; the
 * Criterion worker itself never starts the runtime before forking, so the
 * child's first call is the one that reads the environment.
 */
#include <refscope/rc.h>

#include "internal.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct Node {
    RC_OBJECT_HEAD;
    rc_object *next;
    rc_object *payload;
    uint64_t data[3];
} Node;

static const rc_field node_fields[] = {RC_REF(Node, next), RC_REF(Node, payload), RC_FIELDS_END};

static bool release_self_in_destroy; /* the bug of the below-zero tests */
static void node_destroy(rc_object *self)
{
    if (release_self_in_destroy)
        rc_decref(self); /* refcount is 0 here: one decref too many */
}

static rc_type Node_type = {.name = "Node", .size = sizeof(Node), .fields = node_fields,
                            .destroy = node_destroy};

/* Every Node of these tests is born on this line. */
static const int node_line = __LINE__ + 3;
static Node *make_node(void)
{
    Node *n = rc_new(Node, &Node_type);
    return n;
}

/* ---- children ----------------------------------------------------------------- */

enum { CHECKS_BY_CALL, CHECKS_BY_ENV };

typedef struct {
    int status;
    char *err; /* what the child wrote on stderr */
} child_result;

/* Exit codes of a child that did not abort. */
#define CHILD_SURVIVED 0
#define CHILD_NO_CHECKS 3

/* Run `body` in a child with debug checks on (by call or by environment). */
static child_result run_child(void (*body)(void), int how)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        if (how == CHECKS_BY_ENV) {
            setenv("RCSCOPE_DEBUG", "1", 1);
            rc_init(); /* the runtime's first start: reads RCSCOPE_DEBUG */
        } else {
            rc_debug_set_checks(true);
        }
        if (!rc_debug_get_checks()) {
            fputs("debug checks are off\n", stderr);
            _exit(CHILD_NO_CHECKS);
        }
        body();
        _exit(CHILD_SURVIVED);
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
    child_result r = {0, buf};
    cr_assert_eq(waitpid(pid, &r.status, 0), pid);
    return r;
}

/* The child aborted with `what`, naming a Node and its allocation site. */
static void expect_abort(void (*body)(void), int how, const char *what)
{
    child_result r = run_child(body, how);
    cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
              "expected an abort (%s), got status %#x; stderr:\n%s", what, r.status, r.err);
    cr_assert_not_null(strstr(r.err, "refscope: fatal: "), "stderr:\n%s", r.err);
    cr_assert_not_null(strstr(r.err, what), "expected \"%s\" in:\n%s", what, r.err);
    cr_assert_not_null(strstr(r.err, "Node@0x"), "the message names the type: %s", r.err);
    char site[64];
    snprintf(site, sizeof site, "(test_misuse.c:%d)", node_line);
    cr_assert_not_null(strstr(r.err, site), "the message names the site %s: %s", site, r.err);
    free(r.err);
}

/* ---- the misuses ------------------------------------------------------------------ */

static void incref_freed(void)
{
    Node *keep = make_node(); /* the pool stays in use */
    Node *n = make_node();
    rc_decref(n);
    rc_incref(n);
    rc_decref(keep);
}

static void decref_freed(void)
{
    Node *keep = make_node();
    Node *n = make_node();
    rc_decref(n);
    rc_decref(n);
    rc_decref(keep);
}

static void xdecref_freed(void)
{
    Node *n = make_node();
    rc_decref(n);
    rc_xdecref(n);
}

/* rc_set takes a reference to the value: a freed value is an incref. */
static void set_freed_value(void)
{
    Node *holder = make_node();
    Node *n = make_node();
    rc_decref(n);
    rc_set(&holder->next, RC_OBJ(n));
}

/* A freed object in a container: appending increfs it. */
static void append_freed(void)
{
    rc_object *l = rc_list_new();
    Node *n = make_node();
    rc_decref(n);
    rc_list_append(l, RC_OBJ(n));
}

/* A live object whose count is already 0: its own destroy hook releases it. */
static void decref_below_zero(void)
{
    release_self_in_destroy = true;
    Node *n = make_node();
    rc_decref(n);
}

Test(misuse, incref_of_freed_object_aborts)
{
    expect_abort(incref_freed, CHECKS_BY_CALL, "rc_incref on a freed object");
}

Test(misuse, incref_of_freed_object_aborts_with_env)
{
    expect_abort(incref_freed, CHECKS_BY_ENV, "rc_incref on a freed object");
}

Test(misuse, decref_of_freed_object_aborts)
{
    expect_abort(decref_freed, CHECKS_BY_CALL, "rc_decref on a freed object");
}

Test(misuse, decref_of_freed_object_aborts_with_env)
{
    expect_abort(decref_freed, CHECKS_BY_ENV, "rc_decref on a freed object");
}

Test(misuse, xdecref_of_freed_object_aborts)
{
    expect_abort(xdecref_freed, CHECKS_BY_ENV, "rc_decref on a freed object");
}

Test(misuse, rc_set_of_freed_value_aborts)
{
    expect_abort(set_freed_value, CHECKS_BY_CALL, "rc_incref on a freed object");
}

Test(misuse, list_append_of_freed_item_aborts)
{
    expect_abort(append_freed, CHECKS_BY_ENV, "rc_incref on a freed object");
}

Test(misuse, decref_below_zero_aborts)
{
    expect_abort(decref_below_zero, CHECKS_BY_CALL, "rc_decref below zero");
}

Test(misuse, decref_below_zero_aborts_with_env)
{
    expect_abort(decref_below_zero, CHECKS_BY_ENV, "rc_decref below zero");
}

/* RCSCOPE_DEBUG=0 leaves the checks off. */
Test(misuse, env_zero_leaves_checks_off)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        setenv("RCSCOPE_DEBUG", "0", 1);
        rc_init();
        _exit(rc_debug_get_checks() ? 1 : 0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}

/* ---- poisoned blocks ------------------------------------------------------------------ */

/* Bytes [from, to) of p are all 0xDF. */
static void assert_poisoned(const void *p, size_t from, size_t to, const char *what)
{
    const unsigned char *b = p;
    for (size_t i = from; i < to; i++)
        cr_assert_eq(b[i], 0xDF, "%s: byte %zu of the freed block is %#x, not 0xDF", what, i,
                     b[i]);
}

Test(misuse, freed_blocks_are_filled_with_checks_on)
{
    rc_debug_set_checks(true);
    Node *keep = make_node();
    Node *n = make_node();
    rc_object *payload = rc_str("payload");
    rc_set(&n->payload, payload);
    rc_decref(payload);
    rc_set(&n->next, RC_OBJ(keep));
    n->data[0] = n->data[1] = n->data[2] = 0x0123456789abcdefULL;
    rc_object *i = rc_int(42);
    rc_object *big = rc_bytes(4096); /* a large block, outside the arenas */
    memset(rc_bytes_data(big), 0x11, 4096);

    rc_decref(n);
    rc_decref(i);
    rc_decref(big);

    /* The head keeps type and site for diagnostics; the refcount says freed. */
    cr_assert_eq(RC_OBJ(n)->ob_refcnt, RC_REFCNT_FREED);
    cr_assert_str_eq(rc_type_name(RC_OBJ(n)), "Node");
    /* Everything after the head, and the collector's head before it. */
    assert_poisoned(n, sizeof(rc_object), sizeof(Node), "Node body");
    assert_poisoned(AS_GC(RC_OBJ(n)), 0, sizeof(rc_gchead), "Node gc head");
    cr_assert_eq(i->ob_refcnt, RC_REFCNT_FREED);
    assert_poisoned(i, sizeof(rc_object), rc_int_type.size, "int body");
    cr_assert_eq(big->ob_refcnt, RC_REFCNT_FREED);
    assert_poisoned(big, sizeof(rc_object), sizeof(rc_object) + 4096, "bytes body");
    /* What it referred to was released normally. */
    cr_assert_eq(rc_refcount(keep), 1);
    rc_decref(keep);
}

Test(misuse, freed_blocks_are_marked_with_checks_off)
{
    cr_assert_not(rc_debug_get_checks());
    Node *keep = make_node();
    Node *n = make_node();
    rc_object *i = rc_int(42);
    rc_object *keep_i = rc_int(43);
    rc_decref(n);
    rc_decref(i);
    /* No quarantine: the block is back on its pool's free list, but the
     * head is marked until the block is reused. */
    cr_assert_eq(RC_OBJ(n)->ob_refcnt, RC_REFCNT_FREED);
    cr_assert_eq(i->ob_refcnt, RC_REFCNT_FREED);
    rc_decref(keep);
    rc_decref(keep_i);
}
