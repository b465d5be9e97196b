/*
 * forgotten_closure: a small function that keeps a huge dataset alive
 * because it captured it, and is itself kept in a global list.
 *
 * Teaches: a closure holds a reference to every variable it captures (its
 * cells), so the memory of a captured object lives as long as the closure
 * does -- even if the closure only needed one small fact about it. Put the
 * closure in a global list of handlers and the dataset lives for ever. The
 * collector cannot help (nothing is unreachable); the tools have to show
 * the chain: global `handlers` -> closure 'process' -> cell 'huge_data' ->
 * 4 MiB of bytes.
 *
 * The Python it mirrors (the lesson's "forgotten closures"):
 *
 *     handlers = []                         # global
 *     def create_processor():
 *         huge_data = load_huge_dataset()   # captured by the closure!
 *         def process(x):
 *             return x in huge_data
 *         return process
 *
 *     for _ in range(3):
 *         handlers.append(create_processor())
 *
 * The fix: capture only what the function needs (here a 256-byte index of
 * which byte values occur), and let the dataset go when create_processor
 * returns.
 *
 * The leak: three bytes objects of 4 MiB (made in load_huge_dataset), each
 * held by the cell 'huge_data' of a closure 'process' (made in
 * create_processor), the closures held by the list in the C global
 * `handlers` (also registered as the root "handlers").
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>
#include <string.h>

#define HUGE_SIZE ((size_t)4 << 20)
#define NHANDLERS 3

/* handlers = []: the registered event handlers, for the program's life */
SAMPLE_KEEP static rc_object *handlers;

/* load_huge_dataset(): 4 MiB of bytes with a pattern in them */
static SAMPLE_NOINLINE rc_object *load_huge_dataset(void)
{
    rc_object *data = rc_bytes(HUGE_SIZE);
    unsigned char *p = rc_bytes_data(data);
    for (size_t i = 0; i < HUGE_SIZE; i += 4096)
        p[i] = (unsigned char)(i / 4096 % 200); /* byte values 0..199 occur */
    return data;
}

/* def process(x): return x in huge_data   (x: a byte value) */
static rc_object *process(rc_object *self, rc_object *arg)
{
    rc_object *huge_data = rc_closure_cell(self, "huge_data");
    int64_t x = rc_int_value(arg);
    bool found = memchr(rc_bytes_data(huge_data), (int)x, rc_bytes_len(huge_data)) != NULL;
    return rc_int(found);
}

/* create_processor(): the closure `process`, capturing huge_data */
static SAMPLE_NOINLINE rc_object *create_processor(void)
{
    rc_object *huge_data = load_huge_dataset();
    static const char *const cell_names[] = {"huge_data"};
    rc_object *cells[] = {huge_data};
    rc_object *closure = rc_closure_new(process, "process", 1, cell_names, cells);
    rc_decref(huge_data); /* the local goes; the closure's cell keeps it */
    return closure;
}

/* the fixed process(x): looks x up in a 256-byte index */
static rc_object *process_indexed(rc_object *self, rc_object *arg)
{
    rc_object *index = rc_closure_cell(self, "index");
    int64_t x = rc_int_value(arg);
    return rc_int(x >= 0 && x < 256 && rc_bytes_data(index)[x]);
}

/* create_processor_fixed(): captures only an index of huge_data */
static SAMPLE_NOINLINE rc_object *create_processor_fixed(void)
{
    rc_object *huge_data = load_huge_dataset();
    rc_object *index = rc_bytes(256);
    unsigned char *data = rc_bytes_data(huge_data), *idx = rc_bytes_data(index);
    for (size_t i = 0; i < rc_bytes_len(huge_data); i++)
        idx[data[i]] = 1;
    static const char *const cell_names[] = {"index"};
    rc_object *cells[] = {index};
    rc_object *closure = rc_closure_new(process_indexed, "process", 1, cell_names, cells);
    rc_decref(index);
    rc_decref(huge_data); /* freed now: nothing captured it */
    return closure;
}

static void print_memory(const char *when)
{
    size_t current;
    char buf[32];
    rc_trace_get_memory(&current, NULL);
    printf("%s: traced memory %s\n", when, rc_format_size((double)current, false, buf, sizeof buf));
}

static void call_handlers(int x)
{
    for (size_t i = 0; i < rc_list_len(handlers); i++) {
        rc_object *arg = rc_int(x);
        rc_object *r = rc_closure_call(rc_list_get(handlers, i), arg);
        printf("handlers[%zu](%d) = %s\n", i, x, rc_int_value(r) ? "True" : "False");
        rc_decref(r);
        rc_decref(arg);
    }
}

/* handlers.append(create_processor()), three times */
static SAMPLE_NOINLINE void plant_handlers(void)
{
    sample_py("handlers = []");
    handlers = rc_list_new();
    rc_root_add(&handlers, "handlers");

    sample_py("for _ in range(%d): handlers.append(create_processor())", NHANDLERS);
    for (int i = 0; i < NHANDLERS; i++) {
        rc_object *h = create_processor();
        rc_list_append(handlers, h);
        rc_decref(h);
    }
    print_memory("with 3 handlers");
    call_handlers(42);

    rc_object *first = rc_list_get(handlers, 0);
    rc_object *captured = rc_closure_cell(first, "huge_data");
    printf("closure %s cell 'huge_data': %s of %zu bytes\n", rc_closure_name(first),
           rc_type_name(captured), rc_bytes_len(captured));
    printf("Each handler needs to answer `x in huge_data`, and keeps all 4 MiB for it.\n");
    sample_py("gc.collect()");
    printf("gc.collect() = %zu\n", rc_gc_collect(2));
}

static SAMPLE_NOINLINE void show_fix(void)
{
    printf("\n-- the fix: capture only what the handler needs\n");
    sample_py("handlers.clear()");
    rc_list_clear(handlers);
    print_memory("no handlers");
    for (int i = 0; i < NHANDLERS; i++) {
        rc_object *h = create_processor_fixed();
        rc_list_append(handlers, h);
        rc_decref(h);
    }
    print_memory("with 3 fixed handlers");
    call_handlers(42);
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "forgotten_closure: a handler closure keeps a huge dataset alive");
    rc_init();
    rc_trace_start(1);

    plant_handlers();
    sample_leak_planted();
    show_fix();

    rc_root_remove(&handlers);
    rc_decref(handlers);
    handlers = NULL;
    rc_trace_stop();
    rc_shutdown();
    return 0;
}
