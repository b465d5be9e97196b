/*
 * sample.h: what every sample program shares -- the options that let the
 * tools look at a sample while it holds its leak.
 *
 *   --wait           at the leak point, print "ready" and wait (for EOF on
 *                    stdin, or SIGUSR1 / SIGINT / SIGTERM) so that
 *                    `refscope --pid PID` or `gdb -p PID` can look; then go on
 *   --abort-at-end   at the leak point, abort(): a core dump (also when the
 *                    environment has REFSCOPE_SAMPLE_ABORT=1)
 *
 * The leak point is sample_leak_planted(): every sample calls it once, where
 * its leak is complete and still held, before it cleans up. It always calls
 * rc_debug_checkpoint("leak planted"), so a debugger can also stop there
 * with `break rc_debug_checkpoint`.
 *
 * Without options a sample runs to the end and exits 0.
 */
#ifndef REFSCOPE_SAMPLE_H
#define REFSCOPE_SAMPLE_H

/* Keep a store-only static global in the program (and in DWARF) at -O2. */
#define SAMPLE_KEEP __attribute__((used))
/* Keep a helper a real function: its frame and name show in a core. */
#define SAMPLE_NOINLINE __attribute__((noinline))

/* Parse the common options (exits with a usage message on anything else).
 * `teaches` is a one-line description for --help. */
void sample_options(int argc, char **argv, const char *teaches);

/* The leak is planted: checkpoint, then abort or wait if asked to. */
void sample_leak_planted(void);

/* Print a ">>> python" line showing the Python the next C lines mirror. */
void sample_py(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
