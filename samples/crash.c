/*
 * crash: a server that dies of a bug while it holds leaked memory, and
 * leaves a core dump to find the leaks in afterwards.
 *
 * Teaches: a crashed program can still be asked where its memory went. A
 * core dump is the process's memory at the moment it died; the runtime
 * keeps a debug registry in that memory (every object, type, site, root,
 * the collector's state) that refscope and gdb read without running any
 * code, so the same leak questions can be answered after the fact:
 *
 *   - closed sessions are never freed: each Session refers to its
 *     Connection and back, and the server disabled the cycle collector "for
 *     latency" (as some servers do), so every closed session is an
 *     unreachable cycle that only a collection would free;
 *   - open sessions are held by the C global `sessions`;
 *   - every user name has one reference too many: open_session() increfs
 *     what intern_user() already returned as a new reference (the bug of
 *     missing_decref.c), so the names can never be freed;
 *   - the request being handled is held by the crashing frame,
 *     handle_request().
 *
 * The Python it mirrors:
 *
 *     gc.disable()                                # "for latency"
 *     sessions = []
 *     def open_session(user):
 *         s = Session(intern_user(user))          # (+1 reference too many in C)
 *         s.connection = Connection(s)            # a cycle
 *         sessions.append(s); return s
 *     def close_session(s):
 *         sessions.remove(s)                      # the cycle stays
 *     def handle_request(s, size):
 *         request = Request(s, size)
 *         validate(request)                       # dies on size < 0
 *
 * It always aborts (exit by SIGABRT, a core where core dumps are enabled:
 * `ulimit -c unlimited`). With --wait it first waits at the crash point
 * so gdb or `refscope --pid` can attach.
 *
 * The leak: 3 unreachable Session <-> Connection cycles (closed sessions,
 * made in open_session), 2 open Sessions held by the C global `sessions`,
 * 5 user-name strs (made in intern_user) with a reference no holder
 * explains, and a Request (made in handle_request) held by
 * handle_request's frame.
 */
#include "sample.h"

#include <refscope/rc.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct Session {
    RC_OBJECT_HEAD;
    rc_object *user;
    rc_object *connection;
    int64_t requests;
} Session;

typedef struct Connection {
    RC_OBJECT_HEAD;
    rc_object *session; /* back to its session: the cycle */
    rc_object *buffer;  /* the receive buffer */
} Connection;

typedef struct Request {
    RC_OBJECT_HEAD;
    rc_object *session;
    rc_object *payload;
    int64_t id, size;
} Request;

static const rc_field session_fields[] = {
    RC_REF(Session, user),
    RC_REF(Session, connection),
    RC_FIELDS_END,
};
static const rc_field connection_fields[] = {
    RC_REF(Connection, session),
    RC_REF(Connection, buffer),
    RC_FIELDS_END,
};
static const rc_field request_fields[] = {
    RC_REF(Request, session),
    RC_REF(Request, payload),
    RC_FIELDS_END,
};

static rc_type Session_type = {.name = "Session", .size = sizeof(Session),
                               .fields = session_fields};
static rc_type Connection_type = {.name = "Connection", .size = sizeof(Connection),
                                  .fields = connection_fields};
static rc_type Request_type = {.name = "Request", .size = sizeof(Request),
                               .fields = request_fields};

#define BUFFER_SIZE 16384

/* sessions = []: the open sessions */
SAMPLE_KEEP static rc_object *sessions;
/* users = {}: one str per user name, shared by all the user's sessions */
SAMPLE_KEEP static rc_object *users;
static int64_t next_request_id = 1;

/* intern_user(name): a NEW reference to the one str for `name` */
static SAMPLE_NOINLINE rc_object *intern_user(const char *name)
{
    rc_object *s = rc_dict_get(users, name); /* borrowed */
    if (!s) {
        s = rc_str(name);
        rc_dict_set(users, name, s);
        rc_decref(s); /* the dict holds it */
    }
    return rc_incref(s);
}

static SAMPLE_NOINLINE rc_object *open_session(const char *user)
{
    Session *s = rc_new(Session, &Session_type);
    s->user = rc_incref(intern_user(user)); /* BUG: intern_user's reference is already ours */
    Connection *c = rc_new(Connection, &Connection_type);
    c->buffer = rc_bytes(BUFFER_SIZE);
    rc_set(&c->session, RC_OBJ(s));
    s->connection = RC_OBJ(c); /* takes our reference to c: s <-> c */
    rc_list_append(sessions, RC_OBJ(s));
    printf("open session for %s\n", user);
    return RC_OBJ(s);
}

/* sessions.remove(s) -- and nothing breaks the Session <-> Connection cycle */
static SAMPLE_NOINLINE void close_session(rc_object *s)
{
    for (size_t i = 0; i < rc_list_len(sessions); i++) {
        if (rc_list_get(sessions, i) == s) {
            rc_object *last = rc_list_pop(sessions);
            if (i < rc_list_len(sessions))
                rc_list_set(sessions, i, last);
            rc_decref(last);
            break;
        }
    }
    printf("close session for %s (refcount now %ld: its connection still refers to it)\n",
           rc_str_value(((Session *)s)->user), (long)rc_refcount(s) - 1 /* ours */);
}

/* The bug the server dies of. */
static SAMPLE_NOINLINE void validate(Request *req)
{
    if (req->size < 0) {
        fprintf(stderr, "crash: fatal: request %lld has a negative size (%lld)\n",
                (long long)req->id, (long long)req->size);
        printf("request %lld: size %lld: fatal error, aborting (the leaks are still held)\n",
               (long long)req->id, (long long)req->size);
        fflush(stdout);
        sample_leak_planted(); /* the checkpoint; waits here with --wait */
        abort();
    }
}

static SAMPLE_NOINLINE void handle_request(rc_object *session, int64_t size)
{
    Request *request = rc_new(Request, &Request_type);
    request->id = next_request_id++;
    request->size = size;
    rc_set(&request->session, session);
    request->payload = rc_bytes(size > 0 ? (size_t)size : 64);
    validate(request);
    ((Session *)session)->requests++;
    printf("request %lld from %s: %lld bytes, ok\n", (long long)request->id,
           rc_str_value(((Session *)session)->user), (long long)size);
    rc_decref(request);
}

static SAMPLE_NOINLINE void serve(void)
{
    static const char *const names[] = {"alice", "bob", "carol", "dave", "erin"};
    rc_object *open[5];
    for (int i = 0; i < 5; i++) {
        open[i] = open_session(names[i]);
        handle_request(open[i], 512 * (i + 1));
    }
    for (int i = 0; i < 3; i++) { /* alice, bob and carol log out */
        close_session(open[i]);
        rc_decref(open[i]);
        open[i] = NULL;
    }
    printf("open sessions: %zu; closed sessions still in memory: 3 (the collector is off)\n",
           rc_list_len(sessions));
    handle_request(open[3], 4096);
    handle_request(open[4], -1); /* the bad request: never returns */
}

int main(int argc, char **argv)
{
    sample_options(argc, argv, "crash: a server aborts while holding leaks (a core dump)");
    rc_init();
    printf(">>> gc.disable()   # for latency\n");
    rc_gc_disable();
    sessions = rc_list_new();
    users = rc_dict_new();
    serve();
    return 0; /* not reached */
}
