/*
 * conns.h - the connection guard of the HTTP server: a deadline for a
 * request's head (slowloris) and a reserve of free connection slots (a
 * flood of idle connections), on top of libmicrohttpd's own limits.
 *
 * libmicrohttpd's connection timeout is an idle timeout: every byte
 * restarts it, so a client that sends a header byte a second holds its
 * connection for ever. The guard closes a connection whose request head
 * is not complete within --header-timeout seconds (a later request on a
 * kept-alive connection: within --connection-timeout of the previous
 * answer), a request whose body averages under 1 KiB/s once that time
 * has passed, and past a soft limit below --max-connections it closes the
 * connection that has waited longest for a head, so that a client sending
 * its request at once always finds a slot. See conns.c's DESIGN.
 *
 * Threading: conns_started / conns_closed (MHD's connection notification),
 * conns_request_begin / conns_request_end (the access handler and the
 * completion callback) and conns_counters may be called from any thread.
 * conns_create and conns_free from the main thread only.
 */
#ifndef VIDQ_HTTP_CONNS_H
#define VIDQ_HTTP_CONNS_H

#include <stdint.h>

#include <microhttpd.h>

struct conns;

struct conns_counters {
    int64_t open;            /* connections open now */
    int64_t header_timeouts; /* closed: no complete request head in time */
    int64_t evicted;         /* closed to keep a slot free for others */
    int64_t slow_bodies;     /* closed: a request body slower than 1 KiB/s */
};

/* Start the guard (and its reaper thread): header_timeout_s for a first
 * request head, idle_timeout_s for a later one on the same connection,
 * max_connections as given to MHD. Returns 0 or -1 (logged). */
int conns_create(double header_timeout_s, double idle_timeout_s, unsigned max_connections,
                 struct conns **out);

/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the struct conns. */
void conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code);

/* A request's head is complete (the first call of the access handler);
 * has_body: it announced a body (Content-Length > 0 or chunked), whose
 * pace is then watched from now on. */
void conns_request_begin(struct conns *c, struct MHD_Connection *conn, int has_body);

/* n more bytes of the request's body arrived (a later call of the access
 * handler with data). */
void conns_body_bytes(struct conns *c, struct MHD_Connection *conn, size_t n);

/* The request's body is complete (the access handler's last call). */
void conns_body_end(struct conns *c, struct MHD_Connection *conn);

/* A request ended (the completion callback): the connection waits for its
 * next request head. */
void conns_request_end(struct conns *c, struct MHD_Connection *conn);

void conns_get_counters(struct conns *c, struct conns_counters *out);

/* Stop the reaper and free; call after MHD_stop_daemon. Accepts NULL and
 * sets *pp = NULL. */
void conns_free(struct conns **pp);

#endif
