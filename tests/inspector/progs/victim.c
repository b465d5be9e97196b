/*
 * victim.c -- the program whose cores and live process the target layer's
 * tests read. Plain C, no runtime: victim.h mimics the object head.
 *
 *   victim abort      print the facts line, then abort() in level2()
 *   victim sleep      print the facts line, wait for a line on stdin, exit 0
 *   victim big N      allocate and fill N MiB, print the facts line, abort()
 *
 * The facts line ("key=value ...") tells the test the addresses and values
 * it must find again in the core. A second thread blocks on a pipe so that
 * cores and live processes have two threads.
 */
#include "victim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long victim_magic = VICTIM_MAGIC;     /* a known value in .data */
node *cache;                          /* a global object pointer */
/* `used`: an optimized build must keep statics that are only written. */
__attribute__((used)) static struct config config; /* a static struct with pointer members */
struct registry registry;
derived *derived_ptr;
__attribute__((used)) static volatile node_ref vref; /* through a typedef and a qualifier */
char *not_an_object = "text";
void *opaque;
node *big_table[VICTIM_BIG_TABLE];
__attribute__((used)) static node nodes[8];
__attribute__((used)) static derived a_derived;
#ifdef VICTIM_VARIANT
long variant_extra = VICTIM_VARIANT;  /* a different build of the same program */
#endif

static int blocker[2], ready[2];

__attribute__((noinline)) int victim_marker(int x) {
    return x * 3 + 1;
}

static void *helper(void *arg)
{
    char c = 'r';
    (void)arg;
    if (write(ready[1], &c, 1) != 1)
        return NULL;
    while (read(blocker[0], &c, 1) < 0) {
    }
    return NULL;
}

static void *big_block(size_t mib)
{
    size_t n = mib << 20;
    unsigned char *p = malloc(n);
    if (!p)
        abort();
    for (size_t i = 0; i < n; i += 8) {
        unsigned long v = 0xB16B00B500000000UL | i;
        memcpy(p + i, &v, 8);
    }
    return p;
}

__attribute__((noinline)) static int level2(const char *mode, rc_object *counter, void *big)
{
    node *local = cache;
    printf("pid=%d cache=%p cache_addr=%p local_addr=%p counter=%p big=%p marker=%p "
           "registry_items3=%p lib_root=%p\n",
           (int)getpid(), (void *)local, (void *)&cache, (void *)&local, (void *)counter, big,
           (void *)victim_marker, (void *)&registry.items[3], (void *)lib_root);
    fflush(stdout);
    if (strcmp(mode, "sleep") == 0) {
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            return 1;
        return victim_marker(local != NULL) == 4 ? 0 : 1;
    }
    abort();
}

__attribute__((noinline)) static int level1(const char *mode, rc_object *counter, void *big)
{
    int r = level2(mode, counter, big);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return r;
}

int main(int argc, char **argv)
{
    __attribute__((used)) static rc_object *counter; /* a function-local static: main::counter */
    const char *mode = argc > 1 ? argv[1] : "abort";
    void *big = NULL;

    cache = &nodes[0];
    nodes[0].next = &nodes[1];
    nodes[0].value = 42;
    config.name = "config";
    config.handlers.first = &nodes[1];
    config.handlers.second = &nodes[2].ob_base;
    config.items[2] = &nodes[3];
    config.u_node = &nodes[6];
    registry.items[3] = &nodes[4].ob_base;
    registry.grid[1][2] = &nodes[5];
    counter = &nodes[5].ob_base;
    derived_ptr = &a_derived;
    vref = &nodes[6];
    big_table[VICTIM_BIG_TABLE - 1] = &nodes[7];
    opaque = &nodes[7];
    lib_set(&nodes[7].ob_base);
    if (strcmp(mode, "big") == 0)
        big = big_block(argc > 2 ? (size_t)atoi(argv[2]) : 64);

    if (pipe(blocker) != 0 || pipe(ready) != 0)
        return 2;
    pthread_t th;
    char c;
    if (pthread_create(&th, NULL, helper, NULL) != 0 || read(ready[0], &c, 1) != 1)
        return 2;
    int r = level1(mode, counter, big);
    __asm__ volatile("" ::: "memory");
    return r;
}
