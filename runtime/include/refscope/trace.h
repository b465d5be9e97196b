/*
 * refscope runtime: allocation tracing (Python's tracemalloc), sizes,
 * allocator statistics (sys._debugmallocstats), process memory (psutil's
 * memory_info) and the memory timeline.
 *
 * Included at the end of <refscope/rc.h>; including it first works too.
 *
 * Conventions are rc.h's: errors return NULL / -1 and leave a message in
 * rc_last_error(). Everything the tracer records lives in the debug
 * registry (rc_debug_registry.trace, see registry.h), so the inspector and
 * GDB show it from a core.
 *
 * What a trace measures. A traced object's size is the memory its block
 * really occupies: object head, collector head (tracked types) and the
 * allocator's rounding up to its size class (8-byte steps up to 512 B;
 * larger objects count their malloc'd size without the 32-byte rc_large
 * header). It is the same number at allocation and at free, so `current`
 * returns exactly to its old value when what was allocated is freed. That
 * is what matters for leaks; buffers a built-in mallocs (list items, dict
 * tables) are not traced (rc_sizeof counts them).
 *
 * Tracebacks. Frame 0 is always the exact allocation site recorded by the
 * constructor macro (file, line, function). With nframes > 1, the deeper
 * frames are the return addresses of the callers of the site's function
 * (glibc backtrace(), the runtime's own frames skipped using the symbol
 * table: a stripped program shows them). Tracebacks are interned: an object
 * costs one 16-byte slot in a side table, never a copy of its frames.
 * Deeper frames are turned into file:line only when something needs their
 * names (statistics by traceback or cumulative, filters over all frames,
 * dump, object tracebacks), by running `addr2line` once per object file on
 * every address not seen before; without debug info they read
 * `function+0x1f` (or `libfoo.so+0x1234` outside any symbol).
 *
 * File names are __FILE__ with leading "./" and "../" removed (meson passes
 * "../samples/leak.c"), so statistics read `samples/leak.c:25: size=...`.
 *
 * Cost: with nframes == 1 (the default, as in tracemalloc) tracing adds a
 * few instructions per allocation and free and stores nothing per object:
 * allocating and freeing 10M small tracked objects took 1.10-1.15x the time
 * with tracing on (measured interleaved in one run, about 33 vs 38 ns per
 * pair on a loaded 2-core VM). With nframes > 1 each allocation pays for
 * backtrace(): about 1.6 us with nframes = 16.
 */
#ifndef REFSCOPE_TRACE_H
#define REFSCOPE_TRACE_H

#include <refscope/rc.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Tracing: tracemalloc.start / stop / get_traced_memory ...
 * --------------------------------------------------------------------- */

#define RC_TRACE_MAX_NFRAME 65535

/* Start tracing, keeping `nframes` frames per traceback (1..65535; anything
 * else is an error, "the number of frames must be in range [1; 65535]").
 * Like tracemalloc.start(), starting while already tracing changes
 * nothing and returns 0. */
int rc_trace_start(int nframes);
/* Stop tracing and forget every trace (current and peak go to 0). */
void rc_trace_stop(void);
bool rc_trace_is_tracing(void);
/* tracemalloc.clear_traces(): forget every trace, keep tracing. */
void rc_trace_clear_traces(void);
/* Traced bytes now and at the peak; both 0 when not tracing. NULL allowed. */
void rc_trace_get_memory(size_t *current, size_t *peak);
/* peak = current (nothing when not tracing). */
void rc_trace_reset_peak(void);
/* The nframes of the last rc_trace_start (1 before any). */
int rc_trace_get_traceback_limit(void);
/* Bytes the tracer itself uses for its tables (traceback table, frame
 * pool, object side table, symbol tables, caches). */
size_t rc_trace_get_tracemalloc_memory(void);

/* ------------------------------------------------------------------------
 * Frames and tracebacks
 * --------------------------------------------------------------------- */

/*
 * One frame. Frame 0 of a traceback is the allocation site: filename and
 * lineno from the constructor macro, function = the site's __func__,
 * address 0. Deeper frames carry their return address and, once resolved,
 * filename:lineno from the debug info; without debug info filename is NULL
 * and function+offset names the place (function is the object file's name
 * and offset the address in it when no symbol covers the address).
 */
typedef struct rc_frame {
    const char *filename; /* NULL: no file known */
    const char *function; /* NULL: nothing known */
    uintptr_t address;    /* return address; 0 for frame 0 and loaded frames of file groups */
    uint32_t lineno;      /* 0: unknown (and in RC_BY_FILENAME groups) */
    uint32_t offset;      /* address - start of `function` (deeper frames) */
} rc_frame;

/* frames[0] is the most recent frame (the allocation site), frames[nframes
 * - 1] the oldest. (tracemalloc's Python Traceback lists the same frames
 * oldest first.) */
typedef struct rc_traceback {
    size_t nframes;
    const rc_frame *frames;
} rc_traceback;

/* Frame.__str__: "file:line", else "function+0x1f", else "0x7f..." */
char *rc_frame_str(const rc_frame *f, char *buf, size_t n);
/* Traceback.format(limit, most_recent_first) printed to `out`, one
 * `  File "samples/leak.c", line 25` per frame, each followed by its
 * source line (stripped, 4 spaces in) when the file can be read. limit 0:
 * all frames; > 0: the `limit` most recent; < 0: the -limit oldest.
 * Oldest frame first unless most_recent_first. Returns the lines printed. */
int rc_traceback_print(const rc_traceback *tb, FILE *out, int limit, bool most_recent_first);

/* tracemalloc.get_object_traceback(): where `o` was allocated, frames
 * resolved. NULL (and rc_last_error() says why) when `o` was not allocated
 * while tracing. The result is one block: free it with rc_traceback_free. */
rc_traceback *rc_trace_get_object_traceback(rc_object *o);
void rc_traceback_free(rc_traceback *tb);

/* ------------------------------------------------------------------------
 * Snapshots: tracemalloc.Snapshot
 * --------------------------------------------------------------------- */

typedef struct rc_snapshot rc_snapshot;

/* One traced object: Snapshot.traces[i]. */
typedef struct rc_trace {
    size_t size;
    const rc_traceback *traceback; /* owned by the snapshot */
} rc_trace;

/* tracemalloc.take_snapshot(): a copy of every trace (the live traced
 * objects) and of the tracebacks they use. An error when not tracing. The
 * snapshot owns all it points to; it stays valid after rc_trace_stop and
 * rc_shutdown. */
rc_snapshot *rc_trace_snapshot(void);
void rc_snapshot_free(rc_snapshot *s);
int rc_snapshot_traceback_limit(const rc_snapshot *s);
/* The traces, in no particular order (*n gets their number). */
const rc_trace *rc_snapshot_traces(const rc_snapshot *s, size_t *n);

typedef enum rc_key_type {
    RC_BY_LINENO = 0,    /* 'lineno': frame 0's file and line */
    RC_BY_FILENAME = 1,  /* 'filename': frame 0's file, line 0 */
    RC_BY_TRACEBACK = 2, /* 'traceback': the whole traceback */
} rc_key_type;

/* Statistic: memory of the traces that share a key. The traceback printed
 * (rc_statistic_str) is frames[nframes - 1], the oldest frame, as
 * tracemalloc's str(Traceback) does; for lineno and filename keys there is
 * one frame. */
typedef struct rc_statistic {
    rc_traceback traceback;
    size_t size;
    size_t count;
} rc_statistic;

/* StatisticDiff: a key's memory in the new snapshot and its change since
 * the old one (a key only in the old snapshot has size 0, count 0). */
typedef struct rc_statistic_diff {
    rc_traceback traceback;
    size_t size;
    int64_t size_diff;
    size_t count;
    int64_t count_diff;
} rc_statistic_diff;

/*
 * Snapshot.statistics(key_type, cumulative): one rc_statistic per key,
 * sorted as tracemalloc sorts them: by (size, count, traceback) descending,
 * tracebacks compared frame by frame from the oldest, frames by (file,
 * line). Cumulative mode counts a trace once for each of its frames (the
 * key of each frame), and is an error with RC_BY_TRACEBACK, as in Python.
 * Returns one allocated block (empty results are not NULL), self-contained:
 * free it with rc_statistics_free. Deeper frames compare by file:line once
 * resolved, by function+offset without debug info.
 */
rc_statistic *rc_snapshot_statistics(const rc_snapshot *s, rc_key_type key, bool cumulative,
                                     size_t *n);
/*
 * Snapshot.compare_to(old, key_type, cumulative): the keys of `s` with
 * their change since `old`, then the keys only `old` has; sorted by
 * (|size_diff|, size, |count_diff|, count, traceback) descending. Free with
 * rc_statistics_free.
 */
rc_statistic_diff *rc_snapshot_compare_to(const rc_snapshot *s, const rc_snapshot *old,
                                          rc_key_type key, bool cumulative, size_t *n);
void rc_statistics_free(void *stats);

/* Statistic.__str__:  "samples/leak.c:25: size=5458 B, count=11, average=496 B"
 * (no average when count is 0). Returns buf. */
char *rc_statistic_str(const rc_statistic *st, char *buf, size_t n);
/* StatisticDiff.__str__:
 *   "samples/leak.c:25: size=5458 B (+5458 B), count=11 (+11), average=496 B" */
char *rc_statistic_diff_str(const rc_statistic_diff *st, char *buf, size_t n);
/* tracemalloc._format_size: B below 10 KiB ("5458 B"), then the first unit
 * (KiB, MiB, GiB, TiB) giving a value below 100 with one decimal ("10.0
 * KiB", "99.9 MiB"), else below 10240 with none ("100 KiB", "5120 KiB");
 * `sign` adds + or -. Rounding is printf's, as Python's % formatting. */
char *rc_format_size(double size, bool sign, char *buf, size_t n);

/* tracemalloc.Filter: keep (inclusive) or drop (exclusive) the traces whose
 * frame 0 (or, with all_frames, any frame) has a file matching
 * filename_pattern (fnmatch(3) without flags: '*' matches '/' too) and, if
 * lineno != 0, that line. As in Snapshot.filter_traces, a trace is kept if
 * it matches at least one inclusive filter (when there is one) and no
 * exclusive filter. */
typedef struct rc_filter {
    bool inclusive;
    const char *filename_pattern;
    uint32_t lineno; /* 0: any line */
    bool all_frames;
} rc_filter;

/* Snapshot.filter_traces(): a new snapshot (nfilters 0: a copy). */
rc_snapshot *rc_snapshot_filter_traces(const rc_snapshot *s, const rc_filter *filters,
                                       size_t nfilters);

/*
 * Snapshot.dump / Snapshot.load, in this binary format (all integers
 * little-endian, no padding; the inspector reads it too):
 *
 *   header   char magic[8] = "RCSNAP1\0"; u32 version = 1;
 *            u32 traceback_limit; u32 nstrings; u32 ntracebacks; u64 ntraces
 *   strings  nstrings x { u32 len; len bytes, no NUL }          id = index
 *   tracebacks  ntracebacks x { u32 nframes; nframes x frame }  id = index
 *            frame = { u32 filename; u32 function;   string ids, 0xFFFFFFFF = none
 *                      u32 lineno; u32 offset; u64 address }
 *   traces   ntraces x { u64 size; u32 traceback }
 *
 * Deeper frames are resolved before they are written, so a file read in
 * another process prints the same lines. Errors (I/O, bad magic, version,
 * truncation, an id out of range) return -1 / NULL.
 */
int rc_snapshot_dump(const rc_snapshot *s, const char *path);
rc_snapshot *rc_snapshot_load(const char *path);

/* ------------------------------------------------------------------------
 * Sizes, allocator statistics, process memory
 * --------------------------------------------------------------------- */

/* pympler's asizeof for one object: rc_sizeof of `o` plus that of every
 * object that would be freed with it -- starting from {o}, an object
 * referenced from the set joins it when all its references come from the
 * set (refcount == references from the set), to a fixpoint. Shared
 * objects are not counted. 0 for NULL. */
size_t rc_sizeof_deep(rc_object *o);

#define RC_MALLOCSTATS_NCLASSES 64

typedef struct rc_mallocstats_class {
    uint32_t size;             /* block size of the class */
    uint32_t reserved;
    uint64_t pools;            /* pools of this class in use (all kinds) */
    uint64_t blocks_in_use;
    uint64_t blocks_available; /* free blocks of those pools (never used ones too) */
} rc_mallocstats_class;

/* The numbers of sys._debugmallocstats(), computed by walking the arenas.
 * Invariant: total == arenas_current * arena size. */
typedef struct rc_mallocstats {
    uint32_t nclasses;          /* 64: 8 .. 512 bytes */
    uint32_t small_max;         /* 512 */
    rc_mallocstats_class classes[RC_MALLOCSTATS_NCLASSES];
    uint64_t arenas_allocated;  /* # arenas allocated total */
    uint64_t arenas_reclaimed;  /* # arenas reclaimed */
    uint64_t arenas_highwater;  /* # arenas highwater mark */
    uint64_t arenas_current;    /* # arenas allocated current */
    uint64_t arena_bytes;       /* arenas_current * arena size */
    uint64_t allocated_bytes;   /* # bytes in allocated blocks */
    uint64_t available_bytes;   /* # bytes in available blocks */
    uint64_t unused_pools;      /* pools not in use (never carved ones too) */
    uint64_t unused_pool_bytes;
    uint64_t pool_header_bytes; /* # bytes lost to pool headers */
    uint64_t quantization_bytes;/* # bytes lost to quantization (pool tails) */
    uint64_t alignment_bytes;   /* # bytes lost to arena alignment (0: arenas are aligned) */
    uint64_t total;             /* the sum of the six lines above it */
    uint64_t pools_in_use;
    uint64_t blocks_in_use;
    uint64_t large_count;       /* objects outside the arenas */
    uint64_t large_bytes;       /* their sizes, rc_large headers excluded */
} rc_mallocstats;

int rc_mallocstats_get(rc_mallocstats *out);
/* sys._debugmallocstats() in its format: the per-class table (classes with
 * no pool omitted), then "name  = value" lines (values right-aligned with
 * thousands separators), then the large-object lines refscope adds. */
void rc_debug_mallocstats(FILE *out);

/* psutil.Process().memory_info() on Linux, from /proc/self/statm (bytes). */
typedef struct rc_memory_info {
    uint64_t rss, vms, shared, text, data;
} rc_memory_info;
int rc_process_memory_info(rc_memory_info *out);
/* RSS and VMS only; NULL allowed. */
int rc_process_memory(size_t *rss, size_t *vms);

/* ------------------------------------------------------------------------
 * The memory timeline
 * --------------------------------------------------------------------- */

/*
 * A fixed ring of samples in the registry (rc_debug_registry.trace.timeline,
 * RC_TIMELINE_CAPACITY entries; `refscope timeline` plots it from a core).
 * A sample is taken at the end of every collection, every `interval`
 * allocations of tracked objects (default 10000) and by
 * rc_timeline_sample_now(). When the ring is full the oldest sample is
 * overwritten. The layout is part of the registry contract: 104 bytes.
 */
#define RC_TIMELINE_CAPACITY 1024u
#define RC_TIMELINE_DEFAULT_INTERVAL 10000u

/* sample.reason, low byte; for collections bits 8..15 hold the generation. */
#define RC_SAMPLE_ALLOCS 1u  /* `interval` tracked allocations since the last one */
#define RC_SAMPLE_COLLECT 2u /* end of a collection */
#define RC_SAMPLE_MANUAL 3u  /* rc_timeline_sample_now() */

typedef struct rc_timeline_sample {
    uint64_t time_ns;     /* CLOCK_MONOTONIC, nanoseconds */
    uint64_t traced;      /* rc_trace_get_memory's current (0 when not tracing) */
    uint64_t rss;         /* resident set size, bytes (0 if /proc is unreadable) */
    uint64_t heap;        /* bytes in object blocks: small blocks + large objects */
    uint64_t objects;     /* live objects (blocks in use + large objects) */
    uint64_t tracked;     /* objects in the collector's generation lists */
    uint64_t collections; /* collections so far, all generations */
    uint32_t count[3];    /* per generation, gc.get_count(): the collector's counters */
    uint32_t reason;      /* RC_SAMPLE_* | generation << 8 */
    uint64_t gen_objects[4]; /* objects in generations 0, 1, 2 and the permanent one */
} rc_timeline_sample;

/* Copy up to `max` samples, oldest first; returns how many were copied.
 * With max == 0 (out may be NULL), returns how many there are. */
size_t rc_timeline_get(rc_timeline_sample *out, size_t max);
/* Samples ever taken (the ring keeps the last RC_TIMELINE_CAPACITY). */
uint64_t rc_timeline_total(void);
void rc_timeline_sample_now(void);
/* Tracked allocations between samples; 0: no allocation samples. */
void rc_timeline_set_interval(size_t allocations);
size_t rc_timeline_get_interval(void);
/* Off: no samples at all (on by default). */
void rc_timeline_enable(bool on);
bool rc_timeline_is_enabled(void);
void rc_timeline_clear(void);

/* ------------------------------------------------------------------------
 * Runtime-internal hooks (only the runtime's sources see these: they
 * include internal.h first)
 * --------------------------------------------------------------------- */
#ifdef REFSCOPE_INTERNAL_H
/* gc.c, at the end of every collection of `generation`. */
__attribute__((visibility("hidden"))) void _rc_timeline_on_collect(int generation);
/* gc.c, when rc_debug_registry.trace.timeline_countdown reaches 0 in
 * _rc_gc_on_alloc: takes a sample and re-arms the countdown. */
__attribute__((visibility("hidden"))) void _rc_timeline_tick(void);
/* trace.c -> memstats.c: release the timeline's resources (rc_shutdown). */
__attribute__((visibility("hidden"))) void _rc_memstats_shutdown(void);
#endif

#ifdef __cplusplus
}
#endif

#endif /* REFSCOPE_TRACE_H */
