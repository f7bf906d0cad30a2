/*
 * tus.c - resumable uploads: the tus 1.0.0 protocol at /v1/uploads/ (core,
 * creation, creation-with-upload, termination, expiration, checksum) on
 * the durable state of uploads/tus_store.h. When the last byte lands the
 * file goes through upload_submit, like any upload, and the upload id
 * becomes the job id.
 *
 * One request, one state (struct tus_request in the request's con_cls):
 * the first call (headers) checks auth (the router leaves it to this
 * module, so that a 401 carries Tus-Resumable and the CORS headers a
 * browser needs to read it; only OPTIONS is open), Tus-Resumable, the
 * method and the headers, and for a PATCH takes the upload's lock and opens the write;
 * later calls append the body (never held in memory); the last call
 * commits (the new offset, after every byte was written; with --tus-fsync
 * after an fdatasync) and answers. A body cut off mid-way (the client went
 * away) ends in tus_request_free, which keeps the bytes that arrived when
 * no checksum was asked for; the lock is released there in every case.
 *
 * GET /status/<id> of an upload that is not complete answers 404 with the
 * code not_found and a message that says how many bytes arrived; a
 * complete upload is a job; a complete upload that was refused (not media,
 * an output that does not fit it) is a job in the job store in status
 * failed whose error says why (the last PATCH still answers 204: its bytes
 * were stored).
 */
#define _GNU_SOURCE
#include "http/tus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "http/disk.h"
#include "http/upload.h"
#include "jobs/sched.h"
#include "store/store.h"
#include "uploads/tus_meta.h"
#include "uploads/tus_store.h"

#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS "creation,creation-with-upload,termination,expiration,checksum"
#define TUS_OFFSET_TYPE "application/offset+octet-stream"

struct tus_request {
    struct http_server *h;
    int answered; /* a response was queued in the first call */
    struct tus_lock lk; /* u.id's lock, when held */
    int creating; /* POST: answer 201 */
    struct tus_upload u;
    struct tus_write *w;
    int has_checksum;
    char algo[16];
    unsigned char want[TUS_DIGEST_MAX];
    size_t wlen;
    int failed;
    uint64_t dropped; /* body bytes read and dropped after a failure */
    char fail_code[48];
    char fail_msg[300];
    int capped; /* refused before the body: drop at most DRAIN_MAX */
    int offloaded; /* the last PATCH's probe (finish_step): 1 running, 2 done */
};

/* ------------------------------------------------------------- answers */

static void add_common_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Tus-Resumable", TUS_VERSION);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Expose-Headers",
                            "Upload-Offset, Location, Upload-Length, Tus-Version, "
                            "Tus-Resumable, Tus-Max-Size, Tus-Extension, Upload-Metadata, "
                            "Upload-Expires, Tus-Checksum-Algorithm");
}

static void fmt_http_date(double t, char *buf, size_t cap)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Queue an answer: an error body when code is set (the API's error JSON),
 * else none; hdrs is a NULL-terminated name, value, ... list (may be
 * NULL). */
static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *code,
                              const char *msg, const char *const *hdrs)
{
    struct MHD_Response *r;
    char *body = NULL;
    size_t len = 0;
    if (code) {
        json_t *v = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg ? msg : "");
        body = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        if (!body)
            return MHD_NO;
        len = strlen(body);
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    } else {
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(body);
        return MHD_NO;
    }
    add_common_headers(r);
    if (code)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    for (size_t i = 0; hdrs && hdrs[i] && hdrs[i + 1]; i += 2)
        MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Drop what this request holds (its write, its lock) before it answers:
 * MHD calls the completion callback only after the answer went out, and
 * a client's next PATCH must not find the upload still locked. */
static void release(struct tus_request *t)
{
    tus_write_free(&t->w);
    tus_store_unlock(t->h->tus, &t->lk);
}

/* Remember an error found while the body streams in; answered at the end. */
static void fail_later(struct tus_request *t, const char *code, const char *msg)
{
    if (t->failed)
        return;
    t->failed = 1;
    snprintf(t->fail_code, sizeof(t->fail_code), "%s", code);
    snprintf(t->fail_msg, sizeof(t->fail_msg), "%s", msg);
    tus_write_free(&t->w); /* drops what this request wrote */
}

enum { DRAIN_MAX = 1 << 20 };

/* 1 if the request has a body small enough to read and drop before the
 * answer (as errors.c's http_reject does): a client still sending its body
 * may miss an answer sent before it (the connection is closed after it). */
static int drain_body(struct MHD_Connection *conn)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(cl, &end, 10);
        return !errno && end != cl && !*end && v > 0 && v <= DRAIN_MAX;
    }
    return te && strcasestr(te, "chunked") != NULL;
}

/* The headers an error answer adds for code (NULL-terminated list). */
static const char *const *error_headers(const char *code)
{
    static const char *const version[] = {"Tus-Version", TUS_VERSION, NULL};
    static const char *const auth[] = {"WWW-Authenticate", "Bearer", NULL};
    if (strcmp(code, "unsupported_version") == 0)
        return version;
    if (strcmp(code, "unauthorized") == 0)
        return auth;
    return NULL;
}

static enum MHD_Result fail_now(struct tus_request *t, struct MHD_Connection *conn,
                                const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Answer an API error code (status from errors.c's one mapping). */
static enum MHD_Result fail_now(struct tus_request *t, struct MHD_Connection *conn,
                                const char *code, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    release(t);
    if (drain_body(conn)) { /* answered by the last call */
        fail_later(t, code, msg);
        t->capped = 1;
        return MHD_YES;
    }
    t->answered = 1;
    return answer(conn, http_status_for(code), code, msg, error_headers(code));
}

static const char *code_for_tus(int rc)
{
    switch (rc) {
    case TUS_ENOTFOUND:
        return "not_found";
    case TUS_ELOCKED:
        return "locked";
    case TUS_ECHECKSUM:
        return "checksum_mismatch";
    case TUS_ENOSPC:
        return "insufficient_storage";
    case TUS_ETOOBIG:
        return "too_large";
    case TUS_EINVAL:
        return "bad_request";
    default:
        return "internal_error";
    }
}

/* ------------------------------------------------------------ helpers */

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

int tus_header_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    /* Digits only: strtoll alone would take leading white space (a form
     * feed, a tab) and a sign ("\f+5"), found by tests/fuzz/fuzz_tus. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* The upload options of a tus Upload-Metadata header (already parsed). */
int tus_options_from_meta(const struct tus_meta *m, struct upload_options *o,
                             struct api_error *e)
{
    static const char *keys[] = {"filename", "preset",   "outputs", "webhook_url",
                                 "metadata", "priority", "clip",     "ttl_s"};
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t len = 0;
        const char *v = tus_meta_get(m, keys[i], &len);
        if (!v && strcmp(keys[i], "filename") == 0)
            v = tus_meta_get(m, "name", &len); /* Uppy's name for it */
        if (!v)
            continue;
        if (memchr(v, '\0', len)) {
            upload_options_clear(o);
            return api_error_set(e, "bad_request", "the metadata value of '%s' holds a NUL byte",
                                 keys[i]);
        }
        if (upload_options_set(o, keys[i], v, len, e) < 0) {
            upload_options_clear(o);
            return -1;
        }
    }
    return 0;
}

static void upload_headers(const struct tus_upload *u, char off[24], char len[24], char exp[64])
{
    snprintf(off, 24, "%lld", (long long)u->offset);
    snprintf(len, 24, "%lld", (long long)u->length);
    fmt_http_date(u->expires_at, exp, 64);
}

/* ------------------------------------------------------ the last byte */

/* The upload options of u's metadata, with u->id as the job id. Returns 0,
 * or -1 with e filled (o then holds the job id alone). */
static int options_of(const struct tus_upload *u, struct upload_options *o, struct api_error *e)
{
    struct tus_meta m;
    char err[256];
    int rc = -1;
    memset(o, 0, sizeof(*o));
    if (tus_meta_parse(u->metadata, &m, err, sizeof(err)) < 0) {
        api_error_set(e, "bad_request", "%s", err);
    } else {
        rc = tus_options_from_meta(&m, o, e);
        tus_meta_clear(&m);
    }
    if (job_id_valid(u->id))
        memcpy(o->job_id, u->id, JOB_ID_SIZE); /* job_id_valid: JOB_ID_LEN chars */
    return rc;
}

/* Make the job of a complete upload (the caller holds its lock lk): probe,
 * store, queue, as for any upload. A refused file (not media, outputs
 * that do not fit it) becomes a job in status failed with the reason
 * (upload_submit records it: GET /status, /v1/jobs, job.failed), and its
 * bytes are removed; the record keeps phase FAILED and the reason. */
static void finish_upload(struct http_server *h, struct tus_upload *u, const struct tus_lock *lk)
{
    struct upload_options o;
    struct api_error e;
    char path[1200], id[JOB_ID_SIZE];
    char *json = NULL;
    size_t len = 0;
    int rc = -1, failed_job = 0;
    memset(&e, 0, sizeof(e));
    memset(&o, 0, sizeof(o));
    if (!job_id_valid(u->id))
        api_error_set(&e, "internal_error", "the upload id is not a job id");
    else if (tus_store_data_path(h->tus, u->id, path, sizeof(path)) < 0)
        api_error_set(&e, "internal_error", "the upload's path is too long");
    else if (options_of(u, &o, &e) == 0)
        rc = upload_submit(h, path, &o, u->length, &json, &len, id, &e, &failed_job);
    else /* checked at creation: only a damaged record gets here */
        failed_job = upload_record_failed(h, &o, u->length, NULL, &e) == 0;
    upload_options_clear(&o);
    free(json);
    if (rc == 0) {
        u->phase = TUS_DONE;
        log_info("tus: upload %s complete (%lld bytes): job queued", u->id, (long long)u->length);
    } else {
        u->phase = TUS_FAILED;
        snprintf(u->error_code, sizeof(u->error_code), "%s", e.code ? e.code : "internal_error");
        snprintf(u->error_message, sizeof(u->error_message), "%s", e.message);
        tus_store_remove_data(h->tus, u->id);
        log_info("tus: upload %s complete but refused: %s (%s)%s", u->id, u->error_code,
                 u->error_message, failed_job ? "; failed job recorded" : "");
    }
    u->finished_at = (double)time(NULL);
    if (tus_store_save(h->tus, u, lk) < 0)
        log_error("tus: cannot record the end of upload %s", u->id);
}

/* An upload whose last byte arrived but whose job is missing: at start
 * (a crash in between, or the job store failed), and on a shared store
 * every sweep (its node died in between; any node takes it over). */
static void recover_one(void *opaque, const char *id)
{
    struct http_server *h = opaque;
    struct job *job = NULL;
    struct tus_lock lk;
    struct tus_upload u;
    memset(&u, 0, sizeof(u));
    if (tus_store_lock(h->tus, id, &lk) != TUS_OK)
        return;
    /* Read under the lock: another node may have finished it meanwhile. */
    if (tus_store_get(h->tus, id, &u) != TUS_OK ||
        (u.phase != TUS_COMPLETE && u.phase != TUS_FAILED))
        goto out;
    /* Once its job exists the row says DONE, so that it is not listed
     * again at every start (the list is capped: rows that stayed would
     * push newer ones out of it). */
    if (sched_job_get(h->sched, u.id, &job) == SCHED_OK) {
        u.phase = TUS_DONE; /* only the record's last write was lost */
        tus_store_save(h->tus, &u, &lk);
        job_free(&job);
    } else if (u.phase == TUS_COMPLETE) {
        log_info("tus: upload %s was complete but has no job; making its job", u.id);
        finish_upload(h, &u, &lk);
    } else { /* FAILED, its job not recorded */
        struct upload_options o;
        struct api_error e;
        memset(&e, 0, sizeof(e));
        options_of(&u, &o, &e);
        api_error_set(&e, u.error_code[0] ? u.error_code : "internal_error", "%s",
                      u.error_message);
        if (upload_record_failed(h, &o, u.length, NULL, &e) == 0) {
            log_info("tus: upload %s: its refusal (%s) recorded as a failed job", u.id,
                     u.error_code);
            u.phase = TUS_DONE;
            tus_store_save(h->tus, &u, &lk);
        }
        upload_options_clear(&o);
    }
out:
    tus_upload_clear(&u);
    tus_store_unlock(h->tus, &lk);
}

/* ------------------------------------------------------------ methods */

static enum MHD_Result do_options(struct tus_request *t, struct MHD_Connection *conn)
{
    char max[32];
    snprintf(max, sizeof(max), "%lld", (long long)t->h->cfg->max_upload_bytes);
    const char *hdrs[] = {
        "Tus-Version",
        TUS_VERSION,
        "Tus-Extension",
        TUS_EXTENSIONS,
        "Tus-Max-Size",
        max,
        "Tus-Checksum-Algorithm",
        tus_checksum_algorithms(),
        "Access-Control-Allow-Methods",
        "POST, GET, HEAD, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers",
        "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, "
        "Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, "
        "Upload-Defer-Length, Upload-Concat, Upload-Checksum",
        "Access-Control-Max-Age",
        "86400",
        NULL};
    t->answered = 1;
    return answer(conn, MHD_HTTP_NO_CONTENT, NULL, NULL, hdrs);
}

static enum MHD_Result do_head(struct tus_request *t, struct MHD_Connection *conn, const char *id)
{
    struct tus_upload u;
    int rc = tus_store_get(t->h->tus, id, &u);
    if (rc < 0)
        return fail_now(t, conn, code_for_tus(rc), "no upload with id '%s'", id);
    char off[24], len[24], exp[64];
    upload_headers(&u, off, len, exp);
    const char *hdrs[] = {"Upload-Offset",
                          off,
                          "Upload-Length",
                          len,
                          "Cache-Control",
                          "no-store",
                          "Upload-Expires",
                          exp,
                          u.metadata ? "Upload-Metadata" : NULL,
                          u.metadata,
                          NULL};
    t->answered = 1;
    enum MHD_Result r = answer(conn, MHD_HTTP_OK, NULL, NULL, hdrs);
    tus_upload_clear(&u);
    return r;
}

static enum MHD_Result do_delete(struct tus_request *t, struct MHD_Connection *conn, const char *id)
{
    struct tus_lock lk;
    int rc = tus_store_lock(t->h->tus, id, &lk);
    if (rc == TUS_ELOCKED)
        return fail_now(t, conn, "locked", "upload '%s' is busy with another request", id);
    if (rc == TUS_OK)
        rc = tus_store_remove(t->h->tus, &lk);
    tus_store_unlock(t->h->tus, &lk);
    if (rc < 0)
        return fail_now(t, conn, code_for_tus(rc), "no upload with id '%s'", id);
    log_info("tus: upload %s terminated", id);
    t->answered = 1;
    return answer(conn, MHD_HTTP_NO_CONTENT, NULL, NULL, NULL);
}

/* Checks shared by PATCH and creation-with-upload: Upload-Checksum. */
static int read_checksum(struct tus_request *t, struct MHD_Connection *conn, char *err,
                         size_t errlen)
{
    const char *ck = header(conn, "Upload-Checksum");
    if (!ck)
        return 0;
    if (tus_checksum_parse(ck, t->algo, t->want, &t->wlen, err, errlen) < 0)
        return -1;
    t->has_checksum = 1;
    return 0;
}

static int offset_body(struct MHD_Connection *conn)
{
    const char *ct = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && strncasecmp(ct, TUS_OFFSET_TYPE, strlen(TUS_OFFSET_TYPE)) == 0;
}

/* Content-Length when given (-1 when not; -2 when malformed). */
static int64_t content_length(struct MHD_Connection *conn)
{
    const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t v = -1;
    if (!cl)
        return -1;
    return tus_header_i64(cl, &v) < 0 ? -2 : v;
}

static enum MHD_Result do_create(struct tus_request *t, struct MHD_Connection *conn)
{
    struct http_server *h = t->h;
    char err[256];
    struct tus_meta m;
    struct upload_options o;
    struct api_error e;
    int64_t length = 0;
    memset(&e, 0, sizeof(e));

    if (atomic_load(&h->draining))
        return fail_now(t, conn, "shutting_down", "the server is shutting down; upload later");
    const char *ul = header(conn, "Upload-Length");
    if (!ul) {
        if (header(conn, "Upload-Defer-Length"))
            return fail_now(t, conn, "bad_request",
                            "Upload-Defer-Length is not supported: send Upload-Length");
        return fail_now(t, conn, "bad_request", "Upload-Length is required");
    }
    if (tus_header_i64(ul, &length) < 0)
        return fail_now(t, conn, "bad_request", "Upload-Length must be a non-negative integer");
    if (length > h->cfg->max_upload_bytes)
        return fail_now(t, conn, "too_large",
                        "the upload (%lld bytes) is larger than this server's limit of %lld "
                        "bytes",
                        (long long)length, (long long)h->cfg->max_upload_bytes);
    if (length == 0)
        return fail_now(t, conn, "bad_request", "the upload is empty");
    int64_t cl = content_length(conn);
    if (cl == -2)
        return fail_now(t, conn, "bad_request", "bad Content-Length");
    int with_body = cl > 0 || (cl < 0 && header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING));
    if (with_body && !offset_body(conn))
        return fail_now(t, conn, "unsupported_media",
                        "a creation request's body must be " TUS_OFFSET_TYPE);
    if (cl > length)
        return fail_now(t, conn, "too_large", "the body is longer than Upload-Length");
    if (with_body && read_checksum(t, conn, err, sizeof(err)) < 0)
        return fail_now(t, conn, "bad_request", "%s", err);
    const char *meta = header(conn, "Upload-Metadata");
    if (tus_meta_parse(meta, &m, err, sizeof(err)) < 0)
        return fail_now(t, conn, "bad_request", "%s", err);
    /* The options are checked now: no byte is stored for a job that
     * cannot be. */
    int rc = tus_options_from_meta(&m, &o, &e);
    tus_meta_clear(&m);
    if (rc == 0) {
        rc = upload_options_check(&o, NULL, &e);
        upload_options_clear(&o);
    }
    if (rc < 0)
        return fail_now(t, conn, e.code, "%s", e.message);
    if (sched_queue_full(h->sched))
        return fail_now(t, conn, "queue_full", "the queue is full; try again later");
    /* The whole upload must fit above the threshold, not only this body. */
    if (disk_guard_admit(h->disk, length) < 0)
        return fail_now(t, conn, "insufficient_storage",
                        "the server's disk is nearly full (under its --min-free-bytes); "
                        "retry later");

    char id[JOB_ID_SIZE];
    if (job_id_new(id) < 0)
        return fail_now(t, conn, "internal_error", "no random id available");
    memset(&t->u, 0, sizeof(t->u));
    snprintf(t->u.id, sizeof(t->u.id), "%s", id);
    t->u.length = length;
    if (meta && *meta && !(t->u.metadata = strdup(meta)))
        return fail_now(t, conn, "internal_error", "out of memory");
    rc = tus_store_create(h->tus, &t->u, &t->lk);
    if (rc < 0)
        return fail_now(t, conn, code_for_tus(rc), "cannot store the upload");
    log_info("tus: upload %s created (%lld bytes)", id, (long long)length);
    t->creating = 1;
    if (with_body) {
        rc = tus_write_begin(h->tus, &t->u, &t->lk, t->has_checksum ? t->algo : NULL, &t->w);
        if (rc < 0)
            return fail_now(t, conn, code_for_tus(rc), "cannot write the upload");
    }
    return MHD_YES; /* answered by the last call */
}

static enum MHD_Result do_patch(struct tus_request *t, struct MHD_Connection *conn, const char *id)
{
    struct http_server *h = t->h;
    char err[256];
    int64_t off = 0;
    if (atomic_load(&h->draining))
        return fail_now(t, conn, "shutting_down", "the server is shutting down; resume later");
    if (!offset_body(conn))
        return fail_now(t, conn, "unsupported_media",
                        "a PATCH body must have Content-Type " TUS_OFFSET_TYPE);
    const char *uo = header(conn, "Upload-Offset");
    if (!uo)
        return fail_now(t, conn, "bad_request", "Upload-Offset is required");
    if (tus_header_i64(uo, &off) < 0)
        return fail_now(t, conn, "bad_request", "Upload-Offset must be a non-negative integer");
    int64_t cl = content_length(conn);
    if (cl == -2)
        return fail_now(t, conn, "bad_request", "bad Content-Length");
    if (read_checksum(t, conn, err, sizeof(err)) < 0)
        return fail_now(t, conn, "bad_request", "%s", err);
    if (!tus_id_valid(id))
        return fail_now(t, conn, "not_found", "no upload with id '%s'", id);
    int rc = tus_store_lock(h->tus, id, &t->lk);
    if (rc == TUS_ELOCKED)
        return fail_now(t, conn, "locked",
                        "upload '%s' is being written by another request; retry later", id);
    if (rc == TUS_ENOTFOUND)
        return fail_now(t, conn, "not_found", "no upload with id '%s'", id);
    if (rc < 0)
        return fail_now(t, conn, code_for_tus(rc), "cannot lock upload '%s'", id);
    rc = tus_store_get(h->tus, id, &t->u);
    snprintf(t->u.id, sizeof(t->u.id), "%s", id);
    if (rc < 0)
        return fail_now(t, conn, code_for_tus(rc), "no upload with id '%s'", id);
    if (t->u.phase != TUS_PARTIAL)
        return fail_now(t, conn, "conflict", "upload '%s' is already complete", id);
    if (off != t->u.offset)
        return fail_now(t, conn, "conflict",
                        "Upload-Offset %lld does not match the upload's offset %lld",
                        (long long)off, (long long)t->u.offset);
    if (cl > t->u.length - t->u.offset)
        return fail_now(t, conn, "too_large",
                        "the body (%lld bytes) goes past Upload-Length (%lld bytes left)",
                        (long long)cl, (long long)(t->u.length - t->u.offset));
    if (disk_guard_admit(h->disk, cl > 0 ? cl : t->u.length - t->u.offset) < 0)
        return fail_now(t, conn, "insufficient_storage",
                        "the server's disk is nearly full (under its --min-free-bytes); "
                        "resume later");
    rc = tus_write_begin(h->tus, &t->u, &t->lk, t->has_checksum ? t->algo : NULL, &t->w);
    if (rc < 0)
        return fail_now(t, conn, code_for_tus(rc), "cannot write upload '%s'", id);
    return MHD_YES;
}

/* The success answer of a PATCH or a POST: 201 (created) or 204. */
static enum MHD_Result answer_stored(struct tus_request *t, struct MHD_Connection *conn)
{
    char off[24], len[24], exp[64], loc[96];
    upload_headers(&t->u, off, len, exp);
    if (t->creating) {
        snprintf(loc, sizeof(loc), "/v1/uploads/%s", t->u.id);
        const char *hdrs[] = {"Location", loc, "Upload-Offset", off, "Upload-Expires", exp, NULL};
        return answer(conn, MHD_HTTP_CREATED, NULL, NULL, hdrs);
    }
    const char *hdrs[] = {"Upload-Offset", off, "Upload-Expires", exp, NULL};
    return answer(conn, MHD_HTTP_NO_CONTENT, NULL, NULL, hdrs);
}

/* The job of a complete upload, off the HTTP thread (offload.h): the
 * probe may take up to its timeout. Answered when the connection is
 * resumed (tus_handle). */
static void finish_step(void *arg)
{
    struct tus_request *t = arg;
    finish_upload(t->h, &t->u, &t->lk);
    release(t);
    t->offloaded = 2;
}

/* The last call of a PATCH or a POST: commit and answer. */
static enum MHD_Result finish(struct tus_request *t, struct MHD_Connection *conn)
{
    t->answered = 1;
    if (t->failed) {
        release(t);
        return answer(conn, http_status_for(t->fail_code), t->fail_code, t->fail_msg,
                      error_headers(t->fail_code));
    }
    if (t->w) {
        int rc = tus_write_commit(&t->w, &t->u, t->has_checksum ? t->want : NULL, t->wlen);
        if (rc == TUS_OK && t->u.phase == TUS_COMPLETE) {
            t->offloaded = 1;
            offload_start(&t->h->offload, conn, finish_step, t);
            return MHD_YES;
        }
        release(t);
        if (rc == TUS_ELOCKED)
            return answer(conn, http_status_for("locked"), "locked",
                          "another request took this upload over while this one was slow; "
                          "nothing of it was kept: HEAD for the offset and resume",
                          NULL);
        if (rc == TUS_ECHECKSUM)
            return answer(conn, http_status_for("checksum_mismatch"), "checksum_mismatch",
                          "the body does not match Upload-Checksum; it was discarded", NULL);
        if (rc < 0)
            return answer(conn, http_status_for(code_for_tus(rc)), code_for_tus(rc),
                          "cannot store the upload", NULL);
    }
    release(t);
    return answer_stored(t, conn);
}

/* The first call of a request: everything but the body. */
static enum MHD_Result begin(struct tus_request *t, struct MHD_Connection *conn, struct request *rq)
{
    const char *method = rq->route->method;
    const char *ov = header(conn, "X-HTTP-Method-Override");
    if (ov && strcmp(method, "POST") == 0)
        method = ov;
    int options = strcmp(method, "OPTIONS") == 0;
    /* Every method but OPTIONS needs the API key. OPTIONS (tus discovery,
     * a browser's CORS preflight, which carries no credentials) tells the
     * server's capabilities only, never an upload. */
    if (!options && !http_authorized(t->h, conn))
        return fail_now(t, conn, "unauthorized",
                        "this server needs an API key: Authorization: Bearer <key>");
    if (options)
        return do_options(t, conn);
    const char *tv = header(conn, "Tus-Resumable");
    if (!tv || strcmp(tv, TUS_VERSION) != 0)
        return fail_now(t, conn, "unsupported_version",
                        "this server speaks tus " TUS_VERSION ": send Tus-Resumable: " TUS_VERSION);
    const char *id = rq->params[0];
    if (!id[0]) { /* the collection */
        if (strcmp(method, "POST") == 0)
            return do_create(t, conn);
        return fail_now(t, conn, "method_not_allowed", "%s is not allowed on /v1/uploads/", method);
    }
    if (strcmp(method, "HEAD") == 0)
        return do_head(t, conn, id);
    if (strcmp(method, "PATCH") == 0)
        return do_patch(t, conn, id);
    if (strcmp(method, "DELETE") == 0)
        return do_delete(t, conn, id);
    return fail_now(t, conn, "method_not_allowed", "%s is not allowed on an upload", method);
}

enum MHD_Result tus_handle(struct http_server *h, struct MHD_Connection *conn, struct request *rq,
                           const char *upload_data, size_t *upload_data_size)
{
    struct tus_request *t = rq->tus;
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t)
            return MHD_NO;
        t->h = h;
        rq->tus = t;
        return begin(t, conn, rq);
    }
    if (t->offloaded == 2) { /* resumed: finish_step made the job */
        t->offloaded = 3;
        return answer_stored(t, conn);
    }
    if (t->answered) { /* drop a body nobody wants */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size == 0)
        return finish(t, conn);
    if (t->failed) {
        t->dropped += *upload_data_size;
        *upload_data_size = 0;
        /* a failed request's body is dropped up to a cap, then cut */
        return t->capped && t->dropped > DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (!t->w) {
        fail_later(t, "bad_request", "this request takes no body");
    } else if (disk_guard_write(h->disk, *upload_data_size) < 0) {
        fail_later(t, "insufficient_storage",
                   "the server's disk is nearly full (under its --min-free-bytes); nothing of "
                   "this request was kept; resume later");
    } else {
        int rc = tus_write_data(t->w, upload_data, *upload_data_size);
        if (rc == TUS_ETOOBIG)
            fail_later(t, "too_large", "the body goes past Upload-Length; nothing was kept");
        else if (rc == TUS_ELOCKED)
            fail_later(t, "locked",
                       "another request took this upload over while this one was slow; "
                       "nothing more of it is kept: HEAD for the offset and resume");
        else if (rc == TUS_ENOSPC)
            fail_later(t, "insufficient_storage", "the server's disk is full; retry later");
        else if (rc < 0)
            fail_later(t, "internal_error", "cannot store the upload");
        else
            atomic_fetch_add(&h->bytes_uploaded, (long long)*upload_data_size);
    }
    *upload_data_size = 0;
    return MHD_YES;
}

void tus_request_free(struct tus_request **pp)
{
    if (!pp || !*pp)
        return;
    struct tus_request *t = *pp;
    if (t->w) {
        /* The client went away mid-body: keep what arrived, as tus asks,
         * unless a checksum must vouch for it. */
        if (!t->has_checksum && !t->failed && tus_write_count(t->w) > 0) {
            if (tus_write_commit(&t->w, &t->u, NULL, 0) == TUS_OK) {
                log_info("tus: upload %s interrupted at %lld bytes", t->u.id,
                         (long long)t->u.offset);
                if (t->u.phase == TUS_COMPLETE)
                    finish_upload(t->h, &t->u, &t->lk);
            }
        }
        tus_write_free(&t->w);
    }
    tus_store_unlock(t->h->tus, &t->lk);
    tus_upload_clear(&t->u);
    if (t->offloaded)
        offload_end(&t->h->offload);
    free(t);
    *pp = NULL;
}

enum MHD_Result tus_status_answer(struct http_server *h, struct MHD_Connection *conn,
                                  const char *id)
{
    struct tus_upload u;
    if (!tus_id_valid(id) || tus_store_get(h->tus, id, &u) < 0)
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    enum MHD_Result r;
    if (u.phase == TUS_DONE) /* the job record is the truth; it is gone */
        r = http_fail(conn, "not_found", "no job with id '%s'", id);
    else if (u.phase == TUS_FAILED) /* its failed job could not be stored */
        r = http_fail(conn, "not_found",
                      "upload %s was refused (%s: %s); its job could not be recorded", id,
                      u.error_code, u.error_message);
    else
        r = http_fail(conn, "not_found",
                      "upload %s is incomplete: %lld of %lld bytes received; its job starts "
                      "when the last byte lands",
                      id, (long long)u.offset, (long long)u.length);
    tus_upload_clear(&u);
    return r;
}

/* The uploads folder; the tus store itself opens in tus_start, once the
 * job store is there (its rows live in it). */
static int uploads_dir(const struct http_server *h, char *dir, size_t cap)
{
    int n = snprintf(dir, cap, "%s/uploads", h->cfg->data_dir);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int tus_open(struct http_server *h)
{
    char dir[1100];
    if (uploads_dir(h, dir, sizeof(dir)) < 0 || (mkdir(dir, 0750) < 0 && errno != EEXIST)) {
        log_error("tus: cannot create the uploads folder %s", dir);
        return -1;
    }
    return 0;
}

/* The lease of an upload's lock: half the node lease (default 5 s), at
 * least 1 s. A writer renews it every third of it while its body streams
 * in; a PATCH cut off by a node's death is resumable elsewhere after it. */
static double lock_lease(const struct config *cfg)
{
    return cfg->node_lease / 2 > 1 ? cfg->node_lease / 2 : 1;
}

int tus_start(struct http_server *h)
{
    char dir[1100];
    if (uploads_dir(h, dir, sizeof(dir)) < 0 ||
        tus_store_open(dir, sched_store(h->sched), h->cfg->tus_expiry, lock_lease(h->cfg),
                       h->cfg->tus_fsync, &h->tus) < 0) {
        log_error("tus: cannot open the uploads in %s and the job store", dir);
        return -1;
    }
    tus_store_each_complete(h->tus, 1, recover_one, h);
    double period = h->cfg->tus_expiry / 4;
    if (period > 60)
        period = 60;
    if (period < 0.2)
        period = 0.2;
    /* A shared store: a node that died between an upload's last byte and
     * its job leaves it to the others. One node: only at start, above. */
    return tus_store_sweep_start(h->tus, period,
                                 store_is_shared(sched_store(h->sched)) ? recover_one : NULL,
                                 h) == TUS_OK
               ? 0
               : -1;
}

void tus_close(struct http_server *h)
{
    tus_store_close(&h->tus);
}
