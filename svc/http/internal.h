/*
 * internal.h - what the modules of svc/http/ share: the server state, the
 * per-request state, the route handler signature and the answer helpers.
 * Not for use outside svc/http/.
 *
 * Threading: handlers run on libmicrohttpd's pool threads; a struct request
 * belongs to its connection (one thread at a time); struct http_server is
 * read-only after http_listen except its atomics.
 */
#ifndef VIDQ_HTTP_INTERNAL_H
#define VIDQ_HTTP_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "common/config.h"
#include "http/http.h"
#include "http/offload.h"
#include "jobs/sched.h"

struct events;
struct upload;
struct tus_request;
struct tus_store;
struct hook_outbox;
struct disk_guard;
struct conns;

struct http_server {
    const struct config *cfg;
    struct sched *sched;
    struct MHD_Daemon *daemon;
    struct events *events;
    struct tus_store *tus;              /* resumable uploads (tus.c) */
    atomic_int draining;
    atomic_llong bytes_uploaded;
    char tmp_dir[1100];
    char inputs_dir[1100];
    struct hook_outbox *hooks;          /* webhooks (borrowed; http_set_hooks) */
    struct disk_guard *disk;            /* --min-free-bytes, disk metrics (disk.c) */
    struct conns *conns;                /* head deadline, slot reserve (conns.c) */
    struct offload offload;             /* probes off the HTTP threads (offload.c) */
};

enum { ROUTE_MAX_PARAMS = 4 };

/* An API error: code (API.md's snake_case) and a human sentence. */
struct api_error {
    const char *code;
    char message[256];
};

/* One request's state (MHD's con_cls), freed when the request completes. */
struct request {
    const struct route *route;
    char params[ROUTE_MAX_PARAMS][256]; /* captured path segments */
    char tail[1024];                    /* a "*" route's rest of the path */
    struct upload *upload;              /* POST /upload in progress */
    struct tus_request *tus;            /* a /v1/uploads/ request (tus.c) */
    char *body;                         /* a small JSON body (webhooks.c), owned */
    size_t body_len;
    int body_started, body_too_large;
    int rejected;                       /* answer `reject` once the body is read */
    struct api_error reject;
    uint64_t dropped;                   /* body bytes read and dropped */
};

typedef enum MHD_Result (*route_fn)(struct http_server *h, struct MHD_Connection *conn,
                                    struct request *rq, const char *upload_data,
                                    size_t *upload_data_size);

struct route {
    const char *method;
    const char *pattern;    /* ":x" captures a segment, a final "*" the rest */
    route_fn fn;
    int flags;
};

/* ROUTE_NO_AUTH: open without the API key. ROUTE_AUTH_IN_HANDLER: the
 * handler checks http_authorized itself in its first call, before
 * anything else (tus: its 401 needs tus headers). ROUTE_BODY: has a body. */
enum { ROUTE_NO_AUTH = 1, ROUTE_BODY = 2, ROUTE_AUTH_IN_HANDLER = 4 };

/* The most body bytes read and dropped to answer a refused request (or one
 * sent to an endpoint that takes no body); past it the connection is closed. */
enum { HTTP_DRAIN_MAX = 1 << 20 };


/* Fill e; returns -1 so callers can `return api_error_set(...)`. */
int api_error_set(struct api_error *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The HTTP status of an API error code: the one mapping in the service. */
unsigned http_status_for(const char *code);

/* The API error code of a transcode library error (TC_E*). */
const char *http_code_for_tc(int tc_code);

/* The API error code of a scheduler error (SCHED_E*). */
const char *http_code_for_sched(int sched_code);

/* Answer {"error": {...}} with the status of e->code. */
enum MHD_Result http_send_error(struct MHD_Connection *conn, const struct api_error *e);

/* Shorthand: build the error then send it. */
enum MHD_Result http_fail(struct MHD_Connection *conn, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuse a request before its body was read. A small body (<= 1 MiB) is
 * read and dropped first and the error answered after it, so that a
 * client still sending it gets the answer instead of a reset connection;
 * a larger one is answered at once (such clients use Expect: 100-continue)
 * and the connection closed. Use at the first call of a request. */
enum MHD_Result http_reject(struct MHD_Connection *conn, struct request *rq,
                            const struct api_error *e);
enum MHD_Result http_rejectf(struct MHD_Connection *conn, struct request *rq, const char *code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* For a request refused by http_reject: drop body bytes, then answer. */
enum MHD_Result http_reject_continue(struct MHD_Connection *conn, struct request *rq,
                                     size_t *upload_data_size);

/* Read and drop a body nobody wants (counted in rq->dropped); MHD_NO, which
 * closes the connection, past HTTP_DRAIN_MAX. */
enum MHD_Result http_drop_body(struct request *rq, size_t *upload_data_size);

/* Answer with a JSON text; takes ownership of json (malloc'd). location
 * may be NULL. */
enum MHD_Result http_send_json(struct MHD_Connection *conn, unsigned status, char *json,
                               size_t len, const char *location);

/* Answer with a jansson value (reference stolen). */
enum MHD_Result http_send_value(struct MHD_Connection *conn, unsigned status, json_t *value);

/* 1 if the request carries the API key (or the server has none). */
int http_authorized(struct http_server *h, struct MHD_Connection *conn);

/* Route handlers, by module. */
enum MHD_Result upload_handle(struct http_server *h, struct MHD_Connection *conn,
                              struct request *rq, const char *upload_data,
                              size_t *upload_data_size);
void upload_free(struct upload **pp);
/* DELETE /v1/jobs/<id>/files (retention.c). */
enum MHD_Result retention_delete_files(struct http_server *h, struct MHD_Connection *conn,
                                       struct request *rq, const char *d, size_t *ds);

enum MHD_Result outputs_handle(struct http_server *h, struct MHD_Connection *conn,
                               struct request *rq, const char *upload_data,
                               size_t *upload_data_size);
enum MHD_Result events_handle(struct http_server *h, struct MHD_Connection *conn,
                              struct request *rq, const char *upload_data,
                              size_t *upload_data_size);
/* GET /: the embedded web page (web.c); needs no API key. */
enum MHD_Result web_handle(struct http_server *h, struct MHD_Connection *conn, struct request *rq,
                           const char *upload_data, size_t *upload_data_size);
/* GET /openapi.json: the embedded OpenAPI document (openapi.c); no API key. */
enum MHD_Result openapi_handle(struct http_server *h, struct MHD_Connection *conn,
                               struct request *rq, const char *upload_data,
                               size_t *upload_data_size);

/* The webhook endpoints (webhooks.c). */
enum MHD_Result webhooks_job_add(struct http_server *h, struct MHD_Connection *conn,
                                 struct request *rq, const char *data, size_t *size);
enum MHD_Result webhooks_job_deliveries(struct http_server *h, struct MHD_Connection *conn,
                                        struct request *rq, const char *data, size_t *size);
enum MHD_Result webhooks_global_add(struct http_server *h, struct MHD_Connection *conn,
                                    struct request *rq, const char *data, size_t *size);
enum MHD_Result webhooks_global_list(struct http_server *h, struct MHD_Connection *conn,
                                     struct request *rq, const char *data, size_t *size);
enum MHD_Result webhooks_global_delete(struct http_server *h, struct MHD_Connection *conn,
                                       struct request *rq, const char *data, size_t *size);

/* The event-stream registry (events.c). */
int events_create(struct events **out);
/* Wake the streams of job_id (NULL: every stream). */
void events_notify(struct events *ev, const char *job_id);
void events_shutdown(struct events *ev);
void events_free(struct events **pp);

/* The access handler (routes.c). */
enum MHD_Result routes_dispatch(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls);
void routes_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);

#endif
