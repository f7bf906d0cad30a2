/*
 * routes.c - the routing table and the small handlers (status, list,
 * cancel, presets, health, metrics). Adding an endpoint is adding a row to
 * `routes` (and its handler here or in its own module).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <transcode/tc.h>

#include "common/log.h"
#include "hooks/outbox.h"
#include "http/conns.h"
#include "http/disk.h"
#include "http/internal.h"
#include "http/tus.h"

/* ------------------------------------------------------------ handlers */

static enum MHD_Result send_sched_error(struct MHD_Connection *conn, int rc, const char *id)
{
    switch (rc) {
    case SCHED_ENOTFOUND: return http_fail(conn, "not_found", "no job with id '%s'", id);
    case SCHED_EQUEUE_FULL:
        return http_fail(conn, "queue_full", "the queue is full; try again later");
    case SCHED_ESHUTDOWN: return http_fail(conn, "shutting_down", "the server is shutting down");
    default: return http_fail(conn, "internal_error", "the job store failed");
    }
}

static enum MHD_Result h_status(struct http_server *h, struct MHD_Connection *conn,
                                struct request *rq, const char *d, size_t *ds)
{
    char *json = NULL;
    size_t len = 0;
    const char *id = rq->params[0];
    if (!job_id_valid(id))
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    int rc = sched_job_json(h->sched, id, &json, &len);
    if (rc == SCHED_ENOTFOUND) /* an upload still arriving, or refused */
        return tus_status_answer(h, conn, id);
    if (rc != SCHED_OK)
        return send_sched_error(conn, rc, id);
    return http_send_json(conn, MHD_HTTP_OK, json, len, NULL);
}

static enum MHD_Result h_cancel(struct http_server *h, struct MHD_Connection *conn,
                                struct request *rq, const char *d, size_t *ds)
{
    char *json = NULL;
    size_t len = 0;
    const char *id = rq->params[0];
    if (!job_id_valid(id))
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    int rc = sched_cancel(h->sched, id, &json, &len);
    if (rc == SCHED_ECONFLICT) {
        free(json);
        return http_fail(conn, "conflict", "job %s already ended; it cannot be canceled", id);
    }
    if (rc != SCHED_OK) {
        free(json);
        return send_sched_error(conn, rc, id);
    }
    return http_send_json(conn, MHD_HTTP_ACCEPTED, json, len, NULL);
}

static int parse_int_arg(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static enum MHD_Result h_list(struct http_server *h, struct MHD_Connection *conn,
                              struct request *rq, const char *d, size_t *ds)
{
    const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
    const char *limit_s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
    int st = -1;
    long long limit = 20, before = 0;
    if (status && *status && (st = job_status_parse(status)) < 0)
        return http_fail(conn, "bad_request",
                         "status must be queued, running, succeeded, failed or canceled");
    if (limit_s && parse_int_arg(limit_s, 1, 100, &limit) < 0)
        return http_fail(conn, "bad_request", "limit must be an integer from 1 to 100");
    if (after && *after && parse_int_arg(after, 1, INT64_MAX, &before) < 0)
        return http_fail(conn, "bad_request", "after must be a cursor from a previous page");
    char *json = NULL;
    size_t len = 0;
    int rc = sched_list(h->sched, st, before, (int)limit, &json, &len);
    if (rc != SCHED_OK)
        return send_sched_error(conn, rc, "");
    return http_send_json(conn, MHD_HTTP_OK, json, len, NULL);
}

static enum MHD_Result h_presets(struct http_server *h, struct MHD_Connection *conn,
                                 struct request *rq, const char *d, size_t *ds)
{
    return http_send_value(conn, MHD_HTTP_OK, tc_presets_to_json());
}

/* Degraded is still 200: a load balancer must not take a node out (and
 * back, and out) because its disk is low; the node still serves status
 * reads and downloads, and refuses uploads with 507 itself. Cached state
 * only: it answers even when the disk is slow. */
static enum MHD_Result h_healthz(struct http_server *h, struct MHD_Connection *conn,
                                 struct request *rq, const char *d, size_t *ds)
{
    struct disk_stats ds_;
    disk_guard_stats(h->disk, &ds_);
    if (ds_.low)
        return http_send_value(
            conn, MHD_HTTP_OK,
            json_pack("{s:s, s:{s:s, s:s}}", "status", "degraded", "checks", "disk", "low",
                      "message", "free disk space is under --min-free-bytes: uploads get 507"));
    return http_send_value(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static enum MHD_Result h_metrics(struct http_server *h, struct MHD_Connection *conn,
                                 struct request *rq, const char *d, size_t *ds)
{
    struct sched_metrics m;
    sched_get_metrics(h->sched, &m);
    size_t cap = 12288, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return MHD_NO;
#define OUT(...)                                                          \
    do {                                                                  \
        int w_ = snprintf(buf + n, cap - n, __VA_ARGS__);                 \
        if (w_ > 0 && (size_t)w_ < cap - n)                               \
            n += (size_t)w_;                                              \
    } while (0)
    OUT("# HELP vidq_jobs Jobs by status.\n# TYPE vidq_jobs gauge\n");
    for (int k = 0; k < 5; k++)
        OUT("vidq_jobs{status=\"%s\"} %lld\n", job_status_name((enum job_status)k),
            (long long)m.by_status[k]);
    OUT("# HELP vidq_queue_depth Jobs waiting to start.\n# TYPE vidq_queue_depth gauge\n"
        "vidq_queue_depth %lld\n",
        (long long)m.queued);
    OUT("# HELP vidq_jobs_running Jobs running now.\n# TYPE vidq_jobs_running gauge\n"
        "vidq_jobs_running %lld\n",
        (long long)m.running);
    OUT("# HELP vidq_job_duration_seconds Run time of ended jobs.\n"
        "# TYPE vidq_job_duration_seconds histogram\n");
    for (size_t b = 0; b < m.n_buckets; b++) {
        if (b + 1 == m.n_buckets)
            OUT("vidq_job_duration_seconds_bucket{le=\"+Inf\"} %lld\n",
                (long long)m.duration_buckets[b]);
        else
            OUT("vidq_job_duration_seconds_bucket{le=\"%g\"} %lld\n", m.duration_bounds[b],
                (long long)m.duration_buckets[b]);
    }
    OUT("vidq_job_duration_seconds_sum %.3f\nvidq_job_duration_seconds_count %lld\n",
        m.duration_sum, (long long)m.duration_count);
    OUT("# HELP vidq_uploaded_bytes_total Bytes of upload bodies received.\n"
        "# TYPE vidq_uploaded_bytes_total counter\nvidq_uploaded_bytes_total %lld\n",
        (long long)atomic_load(&h->bytes_uploaded));
    struct disk_stats dst;
    disk_guard_stats(h->disk, &dst);
    OUT("# HELP vidq_disk_free_bytes Free bytes on the data dir's filesystem (for vidq).\n"
        "# TYPE vidq_disk_free_bytes gauge\nvidq_disk_free_bytes %lld\n"
        "# HELP vidq_disk_size_bytes Size of the data dir's filesystem.\n"
        "# TYPE vidq_disk_size_bytes gauge\nvidq_disk_size_bytes %lld\n"
        "# HELP vidq_disk_min_free_bytes Uploads are refused under this much free (--min-free-bytes).\n"
        "# TYPE vidq_disk_min_free_bytes gauge\nvidq_disk_min_free_bytes %lld\n"
        "# HELP vidq_disk_low 1 while free bytes are under --min-free-bytes.\n"
        "# TYPE vidq_disk_low gauge\nvidq_disk_low %d\n"
        "# HELP vidq_disk_refused_total Uploads refused with 507 by the disk guard.\n"
        "# TYPE vidq_disk_refused_total counter\nvidq_disk_refused_total %lld\n",
        (long long)dst.free_bytes, (long long)dst.total_bytes, (long long)dst.min_free_bytes,
        dst.low, (long long)dst.refused);
    OUT("# HELP vidq_stored_bytes Bytes on disk per kind, from the last walk of the data dir.\n"
        "# TYPE vidq_stored_bytes gauge\n");
    for (int k = 0; k < DISK_NKINDS; k++)
        OUT("vidq_stored_bytes{kind=\"%s\"} %lld\n", disk_kind_name((enum disk_kind)k),
            (long long)dst.stored[k]);
    OUT("# HELP vidq_stored_scan_age_seconds Age of that walk (-1: none yet).\n"
        "# TYPE vidq_stored_scan_age_seconds gauge\nvidq_stored_scan_age_seconds %.3f\n"
        "# HELP vidq_stored_scan_duration_seconds How long that walk took.\n"
        "# TYPE vidq_stored_scan_duration_seconds gauge\nvidq_stored_scan_duration_seconds %.6f\n",
        dst.scan_age_s, dst.scan_duration_s);
    struct conns_counters cc;
    conns_get_counters(h->conns, &cc);
    OUT("# HELP vidq_http_connections Open HTTP connections.\n"
        "# TYPE vidq_http_connections gauge\nvidq_http_connections %lld\n"
        "# HELP vidq_http_header_timeouts_total Connections closed for no complete request head "
        "within --header-timeout.\n"
        "# TYPE vidq_http_header_timeouts_total counter\nvidq_http_header_timeouts_total %lld\n"
        "# HELP vidq_http_evicted_total Waiting connections closed to keep slots free under "
        "--max-connections.\n"
        "# TYPE vidq_http_evicted_total counter\nvidq_http_evicted_total %lld\n"
        "# HELP vidq_http_slow_bodies_total Connections closed for a request body slower "
        "than 1 KiB/s.\n"
        "# TYPE vidq_http_slow_bodies_total counter\nvidq_http_slow_bodies_total %lld\n",
        (long long)cc.open, (long long)cc.header_timeouts, (long long)cc.evicted,
        (long long)cc.slow_bodies);
    int cw = worker_children_prometheus(buf + n, cap - n);
    if (cw > 0 && (size_t)cw < cap - n)
        n += (size_t)cw;
    struct hook_counters hc;
    hook_outbox_counters(h->hooks, &hc);
    int hw = hook_counters_prometheus(&hc, buf + n, cap - n);
    if (hw > 0)
        n += (size_t)hw;
#undef OUT
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

/* --------------------------------------------------------------- table */

static const struct route routes[] = {
    {"GET", "/", web_handle, ROUTE_NO_AUTH},
    {"HEAD", "/", web_handle, ROUTE_NO_AUTH},
    {"POST", "/upload", upload_handle, ROUTE_BODY},
    {"POST", "/v1/jobs", upload_handle, ROUTE_BODY},
    {"GET", "/v1/jobs", h_list, 0},
    {"GET", "/status/:id", h_status, 0},
    {"GET", "/v1/jobs/:id", h_status, 0},
    {"DELETE", "/v1/jobs/:id", h_cancel, 0},
    {"POST", "/v1/jobs/:id/cancel", h_cancel, 0},
    {"DELETE", "/v1/jobs/:id/files", retention_delete_files, 0},
    {"GET", "/v1/jobs/:id/events", events_handle, 0},
    {"GET", "/v1/jobs/:id/outputs/:name", outputs_handle, 0},
    {"HEAD", "/v1/jobs/:id/outputs/:name", outputs_handle, 0},
    {"GET", "/v1/jobs/:id/outputs/:name/*", outputs_handle, 0},
    {"HEAD", "/v1/jobs/:id/outputs/:name/*", outputs_handle, 0},
    {"GET", "/v1/presets", h_presets, 0},
    {"GET", "/healthz", h_healthz, ROUTE_NO_AUTH},
    {"GET", "/openapi.json", openapi_handle, ROUTE_NO_AUTH},
    {"GET", "/metrics", h_metrics, 0},
    /* tus: OPTIONS (discovery, CORS preflight) needs no key; the other
     * methods need it, checked by tus_handle itself so that a 401 carries
     * Tus-Resumable and the CORS headers (ROUTE_AUTH_IN_HANDLER). */
    {"OPTIONS", "/v1/uploads", tus_handle, ROUTE_NO_AUTH},
    {"OPTIONS", "/v1/uploads/", tus_handle, ROUTE_NO_AUTH},
    {"POST", "/v1/uploads", tus_handle, ROUTE_AUTH_IN_HANDLER | ROUTE_BODY},
    {"POST", "/v1/uploads/", tus_handle, ROUTE_AUTH_IN_HANDLER | ROUTE_BODY},
    {"OPTIONS", "/v1/uploads/:id", tus_handle, ROUTE_NO_AUTH},
    {"HEAD", "/v1/uploads/:id", tus_handle, ROUTE_AUTH_IN_HANDLER},
    {"PATCH", "/v1/uploads/:id", tus_handle, ROUTE_AUTH_IN_HANDLER | ROUTE_BODY},
    {"DELETE", "/v1/uploads/:id", tus_handle, ROUTE_AUTH_IN_HANDLER},
    /* X-HTTP-Method-Override */
    {"POST", "/v1/uploads/:id", tus_handle, ROUTE_AUTH_IN_HANDLER | ROUTE_BODY},
    {"GET", "/v1/uploads/:id", tus_handle, ROUTE_AUTH_IN_HANDLER},
    {"POST", "/v1/jobs/:id/webhooks", webhooks_job_add, ROUTE_BODY},
    {"GET", "/v1/jobs/:id/deliveries", webhooks_job_deliveries, 0},
    {"POST", "/v1/webhooks", webhooks_global_add, ROUTE_BODY},
    {"GET", "/v1/webhooks", webhooks_global_list, 0},
    {"DELETE", "/v1/webhooks/:id", webhooks_global_delete, 0},
};

/* Match url against pattern, capturing ":x" segments and a "*" tail.
 * Returns 1 on a match. */
static int match(const char *pattern, const char *url, struct request *rq)
{
    int np = 0;
    const char *p = pattern, *u = url;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return 0;
        p++;
        u++;
        const char *pe = strchr(p, '/');
        const char *ue = strchr(u, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t ul = ue ? (size_t)(ue - u) : strlen(u);
        if (pl == 1 && p[0] == '*') {
            if (ul == 0 || strlen(u) >= sizeof(rq->tail))
                return 0;
            snprintf(rq->tail, sizeof(rq->tail), "%s", u);
            return 1;
        }
        if (p[0] == ':') {
            if (ul == 0 || ul >= sizeof(rq->params[0]) || np >= ROUTE_MAX_PARAMS)
                return 0;
            memcpy(rq->params[np], u, ul);
            rq->params[np][ul] = '\0';
            np++;
        } else if (pl != ul || strncmp(p, u, pl) != 0) {
            return 0;
        }
        p += pl;
        u += ul;
    }
    return *p == '\0' && *u == '\0';
}

int http_authorized(struct http_server *h, struct MHD_Connection *conn)
{
    const char *key = h->cfg->api_key;
    if (!key[0])
        return 1;
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return 0;
    auth += 7;
    size_t kl = strlen(key);
    return strlen(auth) == kl && CRYPTO_memcmp(auth, key, kl) == 0;
}

enum MHD_Result routes_dispatch(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    struct http_server *h = cls;
    struct request *rq = *con_cls;
    if (rq) { /* the body's pace, for the connection guard */
        if (*upload_data_size)
            conns_body_bytes(h->conns, conn, *upload_data_size);
        else
            conns_body_end(h->conns, conn);
    }
    if (rq && rq->rejected)
        return http_reject_continue(conn, rq, upload_data_size);
    if (rq) { /* a later call: body data, or the end of the request */
        if (!rq->route)
            return MHD_NO;
        if (!(rq->route->flags & ROUTE_BODY) && *upload_data_size)
            return http_drop_body(rq, upload_data_size);
        return rq->route->fn(h, conn, rq, upload_data, upload_data_size);
    }

    /* The head is complete: the connection guard stops its head clock
     * and, if a body comes, watches its pace. */
    const char *clen =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    conns_request_begin(h->conns, conn, (clen && strcmp(clen, "0") != 0) || te);
    rq = calloc(1, sizeof(*rq));
    if (!rq)
        return MHD_NO;
    *con_cls = rq;
    int path_matched = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!match(routes[i].pattern, url, rq))
            continue;
        path_matched = 1;
        if (strcmp(routes[i].method, method) != 0)
            continue;
        rq->route = &routes[i];
        break;
    }
    if (!rq->route) {
        if (path_matched)
            return http_rejectf(conn, rq, "method_not_allowed", "%s is not allowed on %s", method,
                                url);
        return http_rejectf(conn, rq, "not_found", "no such endpoint: %s %s", method, url);
    }
    if (!(rq->route->flags & (ROUTE_NO_AUTH | ROUTE_AUTH_IN_HANDLER)) &&
        !http_authorized(h, conn)) {
        rq->route = NULL;
        return http_rejectf(conn, rq, "unauthorized",
                            "this server needs an API key: Authorization: Bearer <key>");
    }
    /* libmicrohttpd 0.9.75 closes the connection after a response queued in
     * the first call (it cannot know the request is over), so requests
     * without a body answer in the last call: keep-alive then works, and a
     * status poller costs one request, not one TCP connection. */
    if (!(rq->route->flags & ROUTE_BODY))
        return MHD_YES;
    return rq->route->fn(h, conn, rq, upload_data, upload_data_size);
}

void routes_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *h = cls;
    struct request *rq = *con_cls;
    conns_request_end(h->conns, conn);
    if (!rq)
        return;
    upload_free(&rq->upload);
    tus_request_free(&rq->tus);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}
