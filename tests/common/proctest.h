/*
 * proctest.h -- what the tests of whole programs share (tests/cli,
 * tests/corrupt): a temp dir per test, child processes that die with the
 * test, running a command with its output captured, the "fact NAME VALUE"
 * lines victim programs print, and finding the core a program dumped.
 *
 * A suite uses it as
 *     static void setup(void) { pt_setup("refscope-cli"); }
 *     TestSuite(x, .init = setup, .fini = pt_teardown, ...);
 * Everything asserts with Criterion: a helper that fails ends the test.
 */
#ifndef REFSCOPE_PROCTEST_H
#define REFSCOPE_PROCTEST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CHILD_TIMEOUT_MS 60000 /* no single command may take longer */

/* The test's temp dir (commands run there); "" outside a test. */
extern char tmp[PATH_MAX];

/* Fixture: make TMPDIR/PREFIX.XXXXXX; kill the children left and remove
 * the dir. */
void pt_setup(const char *prefix);
void pt_teardown(void);

/* Children the fixture kills if the test ends first. */
void track_child(pid_t pid);
void forget_child(pid_t pid);
/* waitpid with CHILD_TIMEOUT_MS (then kill it, and fail: a hang). */
void wait_child(pid_t pid, int *status);

/* An environment variable meson sets (fails the test if unset). */
const char *env(const char *name);
/* tmp/RELATIVE (malloc'd). */
char *path_in(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The whole file (malloc'd); "" if it cannot be opened. */
char *read_file(const char *path);
double now(void); /* CLOCK_MONOTONIC, seconds */
/* The value of "fact NAME VALUE" in a program's output (malloc'd). */
char *fact(const char *out, const char *name);

typedef struct result {
    int code;      /* exit status, or 128 + signal */
    char *out;
    char *err;
    double seconds;
} result;

/* Run argv with stdin /dev/null, stdout and stderr captured, in tmp. */
result run_argv(char *const argv[]);
void result_free(result *r);

/* An ELF core file? The first core file in dir (malloc'd), or NULL. */
bool is_core_file(const char *path);
char *find_core(const char *dir);

#endif /* REFSCOPE_PROCTEST_H */
