/*
 * http.h - the HTTP API of `vidq serve` on libmicrohttpd (see API.md).
 *
 * Life cycle, driven by cli_serve: http_create (before the scheduler, whose
 * observer is http_job_changed), http_listen (once the scheduler runs),
 * http_drain on SIGTERM (new uploads get 503), http_destroy after the
 * scheduler stopped.
 *
 * Threading: libmicrohttpd's internal thread pool (epoll) runs every
 * handler; handlers validate, store, enqueue and answer, never transcode or
 * wait. http_job_changed may be called from any thread. The others are
 * called by the main thread only.
 */
#ifndef VIDQ_HTTP_H
#define VIDQ_HTTP_H

#include "common/config.h"
#include "jobs/sched.h"

struct http_server;

/* Allocate the server (no socket yet). cfg is borrowed for its life.
 * Returns 0 or -1 (logged). */
int http_create(const struct config *cfg, struct http_server **out);

/* Bind and start serving with the scheduler s. Returns 0 and the bound
 * port in *port, or -1 with a reason logged. */
int http_listen(struct http_server *h, struct sched *s, int *port);

/* Serve the webhook endpoints and metrics with o (borrowed; it outlives
 * the server). Call before http_listen. */
struct hook_outbox;
void http_set_hooks(struct http_server *h, struct hook_outbox *o);

/* Stop taking uploads (503 shutting_down); other requests still served. */
void http_drain(struct http_server *h);

/* Scheduler observer: a job changed (wakes its event streams; job_id NULL:
 * any job may have changed, every stream re-reads its job). */
void http_job_changed(void *opaque, const char *job_id, int final);

/* End the event streams, stop the daemon, free; accepts NULL and sets
 * *pp = NULL. */
void http_destroy(struct http_server **pp);

#endif
