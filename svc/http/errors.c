/*
 * errors.c - API errors: the ONE place that maps an error code to an HTTP
 * status, and the JSON answer helpers (jansson only).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "http/internal.h"

static const struct {
    const char *code;
    unsigned status;
} statuses[] = {
    {"bad_request", 400},
    {"invalid_preset", 400},
    {"invalid_output", 400},
    {"not_remuxable", 400},
    {"unauthorized", 401},
    {"not_found", 404},
    {"method_not_allowed", 405},
    {"conflict", 409},
    {"expired", 410},             /* retention: the job's files were deleted */
    {"unsupported_version", 412}, /* tus: Tus-Resumable */
    {"locked", 423},              /* tus: another request holds the upload */
    {"checksum_mismatch", 460},   /* tus: Upload-Checksum */
    {"length_required", 411},
    {"too_large", 413},
    {"unsupported_media", 415},
    {"sandbox_violation", 415},   /* the upload's probe broke its sandbox */
    {"range_not_satisfiable", 416},
    {"queue_full", 429},
    {"internal_error", 500},
    {"io_error", 500},
    {"out_of_memory", 500},
    {"output_undeliverable", 502}, /* a job's error: an upload_url did not take an output */
    {"shutting_down", 503},
    {"insufficient_storage", 507},
    {"no_space", 507},            /* a job's error (TC_ENOSPC); uploads say insufficient_storage */
};

unsigned http_status_for(const char *code)
{
    for (size_t i = 0; code && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(code, statuses[i].code) == 0)
            return statuses[i].status;
    return 500;
}

const char *http_code_for_tc(int tc_code)
{
    switch (tc_code) {
    case TC_EINVAL: return "bad_request";
    case TC_EINVALID_PRESET: return "invalid_preset";
    case TC_EINVALID_OUTPUT: return "invalid_output";
    case TC_ENOT_REMUXABLE: return "not_remuxable";
    case TC_EUNSUPPORTED:
    case TC_EDECODE: return "unsupported_media";
    case TC_ENOSPC: return "insufficient_storage";
    default: return "internal_error";
    }
}

const char *http_code_for_sched(int sched_code)
{
    switch (sched_code) {
    case SCHED_ENOTFOUND: return "not_found";
    case SCHED_ECONFLICT: return "conflict";
    case SCHED_EQUEUE_FULL: return "queue_full";
    case SCHED_ESHUTDOWN: return "shutting_down";
    default: return "internal_error";
    }
}

int api_error_set(struct api_error *e, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

enum MHD_Result http_send_json(struct MHD_Connection *conn, unsigned status, char *json,
                               size_t len, const char *location)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, json, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json; charset=utf-8");
    if (location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result http_send_value(struct MHD_Connection *conn, unsigned status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (!text)
        return MHD_NO;
    return http_send_json(conn, status, text, strlen(text), NULL);
}

enum MHD_Result http_send_error(struct MHD_Connection *conn, const struct api_error *e)
{
    unsigned status = http_status_for(e->code);
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", e->code, "message", e->message);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json; charset=utf-8");
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result http_fail(struct MHD_Connection *conn, const char *code, const char *fmt, ...)
{
    struct api_error e;
    va_list ap;
    e.code = code;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return http_send_error(conn, &e);
}

enum MHD_Result http_reject(struct MHD_Connection *conn, struct request *rq,
                            const struct api_error *e)
{
    const char *clen =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    /* No body at all: answer in the request's last call, which keeps the
     * connection alive (see routes_dispatch). */
    int drain = !clen && !te;
    if (clen) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(clen, &end, 10);
        drain = !errno && end != clen && !*end && v >= 0 && v <= HTTP_DRAIN_MAX;
    } else if (te && strcasestr(te, "chunked")) {
        drain = 1; /* up to the cap, then the connection is closed */
    }
    if (!drain)
        return http_send_error(conn, e);
    rq->rejected = 1;
    rq->reject = *e;
    return MHD_YES;
}

enum MHD_Result http_rejectf(struct MHD_Connection *conn, struct request *rq, const char *code,
                             const char *fmt, ...)
{
    struct api_error e;
    va_list ap;
    e.code = code;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return http_reject(conn, rq, &e);
}

enum MHD_Result http_reject_continue(struct MHD_Connection *conn, struct request *rq,
                                     size_t *upload_data_size)
{
    if (*upload_data_size == 0)
        return http_send_error(conn, &rq->reject);
    return http_drop_body(rq, upload_data_size);
}

enum MHD_Result http_drop_body(struct request *rq, size_t *upload_data_size)
{
    rq->dropped += *upload_data_size;
    *upload_data_size = 0;
    return rq->dropped > HTTP_DRAIN_MAX ? MHD_NO : MHD_YES;
}
