/*
 * outputs.c - GET /v1/jobs/<id>/outputs/<name>[/<file>]: the finished
 * output files, with ETag, Range (206/416) and the file's MIME type. Only a
 * succeeded job's outputs are served (they are complete by then: the
 * library renames them into place). Paths never leave the job's folder;
 * on several nodes they are read from the folder of the attempt that
 * succeeded (job_served_dir), so a stale attempt's files never are.
 * A folder output (hls, sprite) serves its files by relative path, its
 * index file (master.m3u8, thumbnails.vtt) when none is given. Once the
 * job's files expired (retention) its outputs answer 410 expired.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "http/internal.h"
#include "http/range.h"

/* A safe relative path: segments of [A-Za-z0-9._-], none "." or "..",
 * none starting with a dot. */
static int safe_relpath(const char *p)
{
    if (!*p || *p == '/')
        return 0;
    const char *seg = p;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t l = (size_t)(c - seg);
            if (l == 0 || seg[0] == '.')
                return 0;
            if (*c == '\0')
                return 1;
            seg = c + 1;
            continue;
        }
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return 0;
    }
}

/* See range.h. */
int http_range_parse(const char *h, int64_t size, int64_t *from, int64_t *to)
{
    if (!h || strncmp(h, "bytes=", 6) != 0)
        return 0;
    h += 6;
    if (strchr(h, ','))
        return 0; /* several ranges: the whole file is a valid answer */
    char *end = NULL;
    errno = 0;
    if (*h == '-') {
        long long n = strtoll(h + 1, &end, 10);
        if (errno || end == h + 1 || *end || n <= 0)
            return n == 0 && !errno && end != h + 1 && !*end ? -1 : 0;
        if (size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    long long a = strtoll(h, &end, 10);
    if (errno || end == h || *end != '-' || a < 0)
        return 0;
    const char *bp = end + 1;
    long long b = size - 1;
    if (*bp) {
        b = strtoll(bp, &end, 10);
        if (errno || end == bp || *end || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *from = a;
    *to = b;
    return 1;
}

/* 410 expired, saying when. */
static enum MHD_Result fail_expired(struct MHD_Connection *conn, const struct job *job)
{
    char when[40] = "";
    time_t t = (time_t)job_expires_at(job);
    struct tm tm;
    if (t > 0 && gmtime_r(&t, &tm))
        strftime(when, sizeof(when), " at %Y-%m-%dT%H:%M:%SZ", &tm);
    return http_fail(conn, "expired", "the outputs of job %s expired%s and were deleted",
                     job->id, when);
}

enum MHD_Result outputs_handle(struct http_server *h, struct MHD_Connection *conn,
                               struct request *rq, const char *d, size_t *ds)
{
    const char *id = rq->params[0];
    const char *name = rq->params[1];
    struct job *job = NULL;
    json_t *outs = NULL;
    enum MHD_Result ret;
    char path[2600];
    int fd = -1;

    if (!job_id_valid(id) || sched_job_get(h->sched, id, &job) != SCHED_OK) {
        ret = http_fail(conn, "not_found", "no job with id '%s'", id);
        goto out;
    }
    outs = json_loads(job->outputs_json ? job->outputs_json : "[]", 0, NULL);
    const char *container = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o) {
        json_t *spec = json_object_get(o, "spec");
        const char *n = json_string_value(json_object_get(spec, "name"));
        if (n && strcmp(n, name) == 0)
            container = json_string_value(json_object_get(spec, "container"));
    }
    if (!container) {
        ret = http_fail(conn, "not_found", "job %s has no output named '%.64s'", id, name);
        goto out;
    }
    if (!job_outputs_kept(job)) {
        ret = http_fail(conn, "not_found", "output '%s' is not ready: the job is %s", name,
                        job_status_name(job->status));
        goto out;
    }
    if (job_is_expired(job, job_now())) {
        ret = fail_expired(conn, job);
        goto out;
    }
    int is_folder = tc_container_is_folder(container);
    char base[1400], dir[1400];
    /* The winning attempt's folder (job.h "Fenced attempts"): a stale
     * attempt's files, in a folder of their own, are never served. */
    if (job_served_dir(dir, sizeof(dir), h->cfg->data_dir, job) < 0 ||
        snprintf(base, sizeof(base), "%s/%s%s%s", dir, name, is_folder ? "" : ".",
                 is_folder ? "" : tc_container_ext(container)) >= (int)sizeof(base)) {
        ret = http_fail(conn, "not_found", "no such output");
        goto out;
    }
    const char *mime;
    if (is_folder) {
        const char *rel = rq->tail[0] ? rq->tail : tc_container_index(container);
        if (!safe_relpath(rel)) {
            ret = http_fail(conn, "not_found", "no such file in output '%s'", name);
            goto out;
        }
        snprintf(path, sizeof(path), "%s/%s", base, rel);
        mime = tc_file_mime(rel);
    } else {
        if (rq->tail[0]) {
            ret = http_fail(conn, "not_found", "output '%s' is a single file", name);
            goto out;
        }
        snprintf(path, sizeof(path), "%s", base);
        mime = tc_container_mime(container);
    }
    struct stat st;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        /* Gone since the job was read: deleted (DELETE .../files, the
         * sweeper) on another node, which this node's copy of the job
         * hears of only within a second. The store says whether. */
        struct job *stored = NULL;
        if (sched_job_get_stored(h->sched, id, &stored) == SCHED_OK &&
            job_is_expired(stored, job_now())) {
            ret = fail_expired(conn, stored);
            job_free(&stored);
            goto out;
        }
        job_free(&stored);
    }
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret = http_fail(conn, "not_found", "no such file in output '%s'", name);
        goto out;
    }
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    const char *inm =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    struct MHD_Response *resp;
    unsigned status = MHD_HTTP_OK;
    if (inm && strcmp(inm, etag) == 0) {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_MODIFIED;
    } else {
        int64_t size = st.st_size, from = 0, to = size - 1;
        const char *range =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
        const char *if_range =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
        int r = if_range && strcmp(if_range, etag) != 0
                    ? 0
                    : http_range_parse(range, size, &from, &to);
        if (r < 0) {
            char cr[64];
            snprintf(cr, sizeof(cr), "bytes */%" PRId64, size);
            struct api_error e;
            api_error_set(&e, "range_not_satisfiable", "the range is outside the %" PRId64
                          "-byte file", size);
            json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", e.code, "message",
                                     e.message);
            char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
            json_decref(body);
            if (!text) {
                ret = MHD_NO;
                goto out;
            }
            resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
            if (!resp) {
                free(text);
                ret = MHD_NO;
                goto out;
            }
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "application/json; charset=utf-8");
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            ret = MHD_queue_response(conn, http_status_for(e.code), resp);
            MHD_destroy_response(resp);
            goto out;
        }
        uint64_t len = size == 0 ? 0 : (uint64_t)(to - from + 1);
        resp = MHD_create_response_from_fd_at_offset64(len, fd, (uint64_t)from);
        if (resp)
            fd = -1; /* the response owns it */
        if (resp && r == 1) {
            char cr[96];
            snprintf(cr, sizeof(cr), "bytes %" PRId64 "-%" PRId64 "/%" PRId64, from, to, size);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            status = MHD_HTTP_PARTIAL_CONTENT;
        }
    }
    if (!resp) {
        ret = MHD_NO;
        goto out;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "private, max-age=3600");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
out:
    if (fd >= 0)
        close(fd);
    json_decref(outs);
    job_free(&job);
    return ret;
}
