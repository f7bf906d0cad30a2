/*
 * offload.h - a request's slow step off the HTTP threads.
 *
 * An upload's probe waits for a child: milliseconds for real media, up to
 * its 30 s timeout for a hostile file. An HTTP thread serves many
 * connections, so a few such steps run in it would stall the whole API
 * (GET /status included). offload_start suspends the request's connection
 * and runs the step in a thread of its own, then resumes the connection;
 * MHD calls the handler again, which answers with what the step kept in
 * the request's state. At most --http-threads steps run at once, as when
 * the HTTP threads ran them (more at once only compete for the same
 * cores, and on SQLite their overlapping transactions starve the WAL's
 * checkpoints); the others wait for a turn, holding no HTTP thread.
 *
 * Ownership: the step owns the request's state until it returns; then the
 * HTTP thread has it again (it may answer and free it at once), so the
 * step must not touch it after returning. Each offload_start is matched
 * by one offload_end when that state is freed (MHD's completed callback),
 * and offload_wait, before MHD_stop_daemon (which must not find a
 * suspended connection), waits for every one, so a step under way at
 * shutdown still gets its answer out.
 *
 * Threading: offload_start from an access handler; offload_end from any
 * thread; offload_wait from the thread that stops the daemon.
 * Errors: none; if no thread can start, the step runs in the caller's.
 */
#ifndef VIDQ_HTTP_OFFLOAD_H
#define VIDQ_HTTP_OFFLOAD_H

#include <pthread.h>

#include <microhttpd.h>

struct offload {
    pthread_mutex_t lock;
    pthread_cond_t ended;   /* pending reached 0 */
    pthread_cond_t turn;    /* running fell below the limit */
    int pending;            /* started and not yet ended */
    int running;            /* steps running now */
    int limit;
};

void offload_init(struct offload *o, int limit);
void offload_destroy(struct offload *o);

/* Suspend conn, then run step(arg) in its turn in a thread of its own,
 * then resume conn. */
void offload_start(struct offload *o, struct MHD_Connection *conn, void (*step)(void *arg),
                   void *arg);

/* A request that called offload_start has ended. */
void offload_end(struct offload *o);

/* Wait until every started request has ended. */
void offload_wait(struct offload *o);

#endif
