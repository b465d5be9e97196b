/*
 * victim.h -- the types of the target layer's test victim, shared with
 * test_target.c so the tests can compare DWARF answers with offsetof().
 * They mimic the runtime: an object starts with `struct rc_object ob_base`.
 */
#ifndef VICTIM_H
#define VICTIM_H

struct rc_object {
    unsigned a, b;
    void *t;
};
typedef struct rc_object rc_object;

typedef struct node {
    struct rc_object ob_base;   /* RC_OBJECT_HEAD */
    struct node *next;
    long value;
} node;

/* An object through a nested first member (node starts with rc_object). */
typedef struct {
    node base;
    int extra;
} derived;

struct handlers {
    node *first;
    rc_object *second;
    const char *label;          /* not an object pointer */
    int count;
};

struct config {
    const char *name;
    struct handlers handlers;
    node *items[4];
    union {
        node *u_node;
        long u_long;
    };
    unsigned flags : 3;
};

struct registry {
    int n;
    rc_object *items[8];
    node *grid[2][3];
};

typedef node *node_ref;

#define VICTIM_MAGIC 0x5eed1234abcdL
#define VICTIM_BIG_TABLE 300000     /* more than RS_ARRAY_CAP elements */

/* victimlib.c */
extern rc_object *lib_root;
extern long lib_magic;
void lib_set(rc_object *o);

#endif
