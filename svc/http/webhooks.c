/*
 * webhooks.c - the webhook endpoints (API.md "Webhooks"):
 *   POST   /v1/jobs/<id>/webhooks   {"url","events"} -> 201 registration
 *   GET    /v1/jobs/<id>/deliveries -> every delivery and attempt of a job
 *   POST   /v1/webhooks             {"url","events"} -> 201 global registration
 *   GET    /v1/webhooks             -> {"webhooks": [...]}
 *   DELETE /v1/webhooks/<id>        -> 204
 * Handlers validate and hand over to hooks/outbox.h; they never touch the
 * network (deliveries go out on the delivery thread).
 */
#include <stdlib.h>
#include <string.h>

#include "hooks/outbox.h"
#include "http/internal.h"

#define BODY_CAP (64 * 1024)

/* Collect a small JSON request body across MHD's calls (the first call has
 * the headers only, the last one no data). Returns 1 when the body is
 * complete, 0 to keep reading, -1 on out-of-memory. Past BODY_CAP the rest
 * is read and dropped and rq->body_too_large is set, for a 413 at the end. */
static int body_step(struct request *rq, const char *data, size_t *size)
{
    if (!rq->body_started) {
        rq->body_started = 1;
        return 0;
    }
    if (*size == 0)
        return 1;
    if (rq->body_len + *size > BODY_CAP) {
        *size = 0;
        rq->body_too_large = 1;
        return 0;
    }
    char *b = realloc(rq->body, rq->body_len + *size + 1);
    if (!b)
        return -1;
    memcpy(b + rq->body_len, data, *size);
    rq->body = b;
    rq->body_len += *size;
    rq->body[rq->body_len] = '\0';
    *size = 0;
    return 0;
}

static enum MHD_Result send_hook_error(struct MHD_Connection *conn, int rc, const char *err,
                                       const char *what)
{
    switch (rc) {
    case HOOK_EBAD_REQUEST: return http_fail(conn, "bad_request", "%s", err);
    case HOOK_ENOT_FOUND: return http_fail(conn, "not_found", "%s", what);
    default: return http_fail(conn, "internal_error", "the job store failed");
    }
}

static enum MHD_Result register_common(struct http_server *h, struct MHD_Connection *conn,
                                       struct request *rq, const char *job_id,
                                       const char *data, size_t *size)
{
    int step = body_step(rq, data, size);
    if (step < 0)
        return MHD_NO;
    if (step == 0)
        return MHD_YES;
    if (rq->body_too_large)
        return http_fail(conn, "too_large", "the request body is larger than %d bytes", BODY_CAP);
    char err[512] = "";
    char what[128];
    json_t *created = NULL;
    snprintf(what, sizeof(what), "no job with id '%s'", job_id ? job_id : "");
    int rc = hook_outbox_register(h->hooks, job_id, rq->body, rq->body_len, &created, err,
                                  sizeof(err));
    if (rc != HOOK_OK)
        return send_hook_error(conn, rc, err, what);
    return http_send_value(conn, MHD_HTTP_CREATED, created);
}

enum MHD_Result webhooks_job_add(struct http_server *h, struct MHD_Connection *conn,
                                 struct request *rq, const char *data, size_t *size)
{
    const char *id = rq->params[0];
    if (!job_id_valid(id))
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    return register_common(h, conn, rq, id, data, size);
}

enum MHD_Result webhooks_global_add(struct http_server *h, struct MHD_Connection *conn,
                                    struct request *rq, const char *data, size_t *size)
{
    return register_common(h, conn, rq, NULL, data, size);
}

enum MHD_Result webhooks_global_list(struct http_server *h, struct MHD_Connection *conn,
                                     struct request *rq, const char *data, size_t *size)
{
    json_t *list = NULL;
    int rc = hook_outbox_list(h->hooks, &list);
    if (rc != HOOK_OK)
        return send_hook_error(conn, rc, "", "");
    return http_send_value(conn, MHD_HTTP_OK, list);
}

enum MHD_Result webhooks_global_delete(struct http_server *h, struct MHD_Connection *conn,
                                       struct request *rq, const char *data, size_t *size)
{
    const char *id = rq->params[0];
    char what[320];
    snprintf(what, sizeof(what), "no global webhook with id '%s'", id);
    int rc = hook_outbox_unregister(h->hooks, id);
    if (rc != HOOK_OK)
        return send_hook_error(conn, rc, "", what);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result webhooks_job_deliveries(struct http_server *h, struct MHD_Connection *conn,
                                        struct request *rq, const char *data, size_t *size)
{
    const char *id = rq->params[0];
    char what[320];
    snprintf(what, sizeof(what), "no job with id '%s'", id);
    if (!job_id_valid(id))
        return http_fail(conn, "not_found", "%s", what);
    json_t *list = NULL;
    int rc = hook_outbox_deliveries(h->hooks, id, &list);
    if (rc != HOOK_OK)
        return send_hook_error(conn, rc, "", what);
    return http_send_value(conn, MHD_HTTP_OK, list);
}

void http_set_hooks(struct http_server *h, struct hook_outbox *o) { h->hooks = o; }
