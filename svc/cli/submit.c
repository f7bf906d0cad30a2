/*
 * submit.c - the HTTP client of `vidq submit`; see submit.h.
 *
 * Every request is one curl easy handle (made, performed, freed) through
 * xfer_run, which collects the status, the headers the client reads
 * (Location, Upload-Offset) and the body (capped) or streams the body to
 * a sink (a download's file, the event stream's line parser). The retry
 * loops live in the callers, each with its own count: the tus upload
 * resets it after every acknowledged chunk, so a long upload over a bad
 * link goes on as long as it makes progress.
 */
#define _GNU_SOURCE
#include "cli/submit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

enum {
    BODY_CAP = 4 << 20,    /* answers kept in memory (a job list, an error) */
    LINE_CAP = 4 << 20,    /* one event-stream line (a job object) */
    MAX_TREE_FILES = 100000, /* files of one folder output */
    PATH_CAP = 4096,
    LOCKED_WAIT_S = 120, /* longest wait for the server to release a dropped PATCH */
};

/* ------------------------------------------------------------ transfers */

struct xfer {
    const struct submit_server *s;
    long status;
    char *body;
    size_t len;
    int body_too_big;
    char location[2048];
    long long upload_offset; /* -1: no header */
    long live_status;        /* of the answer being received (its status line) */
    /* upload body: [read_pos, read_end) of read_fd */
    int read_fd;
    uint64_t read_pos, read_end, upload_base, upload_total;
    /* a body sink instead of the buffer; returns 0 or -1 */
    int (*sink)(struct xfer *x, const char *data, size_t n);
    void *sink_ctx;
    int sink_failed; /* the sink could not write: a local error */
    char curl_err[CURL_ERROR_SIZE];
};

static int canceled(const struct submit_server *s)
{
    return s->cancel && atomic_load(s->cancel);
}

static void xfer_reset(struct xfer *x, const struct submit_server *s)
{
    free(x->body);
    memset(x, 0, sizeof(*x));
    x->s = s;
    x->upload_offset = -1;
    x->read_fd = -1;
}

static void xfer_free(struct xfer *x)
{
    free(x->body);
    x->body = NULL;
}

static size_t on_header(char *buf, size_t size, size_t n, void *opaque)
{
    struct xfer *x = opaque;
    size_t len = size * n;
    char line[2200];
    size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
    memcpy(line, buf, l);
    line[l] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) { /* a new answer (after a redirect, 100) */
        const char *sp = strchr(line, ' ');
        x->live_status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->location[0] = '\0';
        x->upload_offset = -1;
    } else if (strncasecmp(line, "Location:", 9) == 0) {
        const char *v = line + 9 + strspn(line + 9, " \t");
        snprintf(x->location, sizeof(x->location), "%s", v);
    } else if (strncasecmp(line, "Upload-Offset:", 14) == 0) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(line + 14, &end, 10);
        if (!errno && end != line + 14 && v >= 0)
            x->upload_offset = v;
    }
    return len;
}

/* Keep len bytes of the answer (at most BODY_CAP in all). */
static int body_append(struct xfer *x, const char *buf, size_t len)
{
    if (x->len + len > BODY_CAP) {
        x->body_too_big = 1;
        return -1;
    }
    char *nb = realloc(x->body, x->len + len + 1);
    if (!nb)
        return -1;
    memcpy(nb + x->len, buf, len);
    x->body = nb;
    x->len += len;
    x->body[x->len] = '\0';
    return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *opaque)
{
    struct xfer *x = opaque;
    size_t len = size * n;
    if (x->sink)
        return x->sink(x, buf, len) == 0 ? len : 0;
    return body_append(x, buf, len) == 0 ? len : 0;
}

static size_t on_read(char *buf, size_t size, size_t n, void *opaque)
{
    struct xfer *x = opaque;
    size_t want = size * n;
    if (x->read_end - x->read_pos < want)
        want = (size_t)(x->read_end - x->read_pos);
    if (want == 0)
        return 0;
    ssize_t got = pread(x->read_fd, buf, want, (off_t)x->read_pos);
    if (got <= 0) {
        x->sink_failed = 1;
        return CURL_READFUNC_ABORT;
    }
    x->read_pos += (uint64_t)got;
    return (size_t)got;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    struct xfer *x = opaque;
    if (canceled(x->s))
        return 1;
    if (x->upload_total && x->s->report.upload && ulnow > 0)
        x->s->report.upload(x->s->report.opaque, x->upload_base + (uint64_t)ulnow,
                            x->upload_total);
    return 0;
}

static void set_error(struct submit_error *e, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(struct submit_error *e, long status, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->http_status = status;
    snprintf(e->code, sizeof(e->code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* The server's {"error": {"code", "message"}} of a failed answer, or a
 * description of the status. */
static void error_from_answer(struct submit_error *e, const struct xfer *x, const char *what)
{
    json_t *j = x->body ? json_loads(x->body, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (code && msg)
        set_error(e, x->status, code, "%s: the server answered %ld: %s", what, x->status, msg);
    else
        set_error(e, x->status, x->status >= 500 ? "server_error" : "bad_answer",
                  "%s: the server answered HTTP %ld%s%.200s", what, x->status,
                  x->len ? ": " : "", x->body ? x->body : "");
    json_decref(j);
}

/* Perform one request. method NULL = GET; body/len for a small body; an
 * upload body comes from x->read_fd. Returns SUBMIT_OK when an answer
 * came (any status), else SUBMIT_EUNREACHABLE / ECANCELED / EIO. */
static int xfer_run(struct xfer *x, const char *method, const char *url,
                    const char *const *headers, const char *body, size_t len, int head_only,
                    struct submit_error *e)
{
    const struct submit_server *s = x->s;
    int ret = SUBMIT_EUNREACHABLE;
    struct curl_slist *hl = NULL, *tmp;
    CURL *c = curl_easy_init();
    char auth[1100];
    if (!c) {
        set_error(e, 0, "out_of_memory", "cannot make a curl handle");
        return SUBMIT_EFAILED;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (!(tmp = curl_slist_append(hl, headers[i])))
            goto oom;
        hl = tmp;
    }
    if (s->api_key && s->api_key[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->api_key);
        if (!(tmp = curl_slist_append(hl, auth)))
            goto oom;
        hl = tmp;
    }
    /* no "Expect: 100-continue" round trip before every chunk */
    if (!(tmp = curl_slist_append(hl, "Expect:")))
        goto oom;
    hl = tmp;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    /* a stalled connection counts as dropped (the event stream gets a
     * comment every 15 s) */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->curl_err);
    if (head_only)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (x->read_fd >= 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(x->read_end - x->read_pos));
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);

    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
    if (canceled(s)) {
        set_error(e, 0, "interrupted", "interrupted by a signal");
        ret = SUBMIT_ECANCELED;
    } else if (x->sink_failed) {
        ret = SUBMIT_EIO; /* the sink or reader set e */
    } else if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && x->body_too_big)) {
        ret = SUBMIT_OK;
    } else {
        set_error(e, x->status, "server_unreachable", "%s %s: %s", method ? method : "GET", url,
                  x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc));
        ret = SUBMIT_EUNREACHABLE;
    }
    goto out;
oom:
    set_error(e, 0, "out_of_memory", "out of memory");
    ret = SUBMIT_EFAILED;
out:
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return ret;
}

/* Wait before retry n (1-based): 0.5 s, 1 s, 2 s; 0 if canceled meanwhile. */
static int backoff(const struct submit_server *s, int n)
{
    long ms = 500L << (n > 1 ? n - 1 : 0);
    for (long t = 0; t < ms; t += 50) {
        if (canceled(s))
            return 0;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !canceled(s);
}

/* A status worth retrying: the server is there but cannot answer now. 507
 * (no disk) and 501 (not implemented) will not change by retrying. */
static int retryable_status(long st)
{
    return st >= 500 && st != 501 && st != 507;
}

static void url_of(char *out, size_t cap, const struct submit_server *s, const char *path)
{
    if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0)
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "%s%s", s->base, path);
}

static void report_retry(const struct submit_server *s, const char *what, uint64_t at,
                         const char *why)
{
    if (s->report.retry)
        s->report.retry(s->report.opaque, what, at, why);
}

/* ----------------------------------------------------------------- tus */

char *submit_tus_metadata(const char *const *kv)
{
    size_t cap = 1, n = 0;
    for (size_t i = 0; kv[i]; i += 2)
        if (kv[i + 1])
            cap += strlen(kv[i]) + 2 + (strlen(kv[i + 1]) + 2) / 3 * 4 + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; kv[i]; i += 2) {
        if (!kv[i + 1])
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s ", n ? "," : "", kv[i]);
        n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, (const unsigned char *)kv[i + 1],
                                     (int)strlen(kv[i + 1]));
    }
    return out;
}

/* HEAD the upload: its offset into *offset. */
static int tus_offset(const struct submit_server *s, const char *url, long long *offset,
                      struct submit_error *e)
{
    static const char *const h[] = {"Tus-Resumable: 1.0.0", NULL};
    struct xfer x = {0};
    xfer_reset(&x, s);
    int ret = xfer_run(&x, "HEAD", url, h, NULL, 0, 1, e);
    if (ret == SUBMIT_OK && (x.status != 200 || x.upload_offset < 0)) {
        set_error(e, x.status, x.status == 404 ? "not_found" : "bad_answer",
                  "HEAD %s answered %ld%s", url, x.status,
                  x.status == 404 ? " (the upload expired or was removed)" : "");
        ret = retryable_status(x.status) ? SUBMIT_EUNREACHABLE : SUBMIT_EFAILED;
    }
    if (ret == SUBMIT_OK)
        *offset = x.upload_offset;
    xfer_free(&x);
    return ret;
}

int submit_tus_upload(const struct submit_server *s, const char *path, const char *metadata,
                      const char *resume_url, size_t chunk, char *id, size_t cap, int *resumes,
                      struct submit_error *e)
{
    int ret = SUBMIT_EIO, fd = -1;
    struct xfer x = {0};
    char url[2600], len_h[64], off_h[64];
    char *meta_h = NULL;
    struct stat st;
    *resumes = 0;
    id[0] = '\0';
    xfer_reset(&x, s);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_error(e, 0, "bad_request", "cannot read %s: %s", path,
                  fd < 0 ? strerror(errno) : "not a regular file");
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    snprintf(len_h, sizeof(len_h), "Upload-Length: %llu", (unsigned long long)size);
    if (metadata && *metadata) {
        size_t ml = strlen(metadata) + 32;
        if (!(meta_h = malloc(ml))) {
            set_error(e, 0, "out_of_memory", "out of memory");
            ret = SUBMIT_EFAILED;
            goto out;
        }
        snprintf(meta_h, ml, "Upload-Metadata: %s", metadata);
    }
    const char *create_h[] = {"Tus-Resumable: 1.0.0", len_h, meta_h, NULL};

    char upload_url[2600];
    uint64_t offset = 0;
    int fails = 0, need_head = 0, sent_any = 0, locked_waits = 0;
    if (resume_url && resume_url[0]) {
        /* an earlier run's upload: where is it? */
        long long at = -1;
        url_of(upload_url, sizeof(upload_url), s, resume_url);
        ret = tus_offset(s, upload_url, &at, e);
        if (ret == SUBMIT_ECANCELED || ret == SUBMIT_EUNREACHABLE)
            goto out;
        if (ret == SUBMIT_OK && (uint64_t)at <= size) {
            offset = (uint64_t)at;
            sent_any = offset > 0;
            (*resumes)++;
            report_retry(s, "earlier", offset, upload_url);
            goto patches;
        }
        /* gone (expired, removed, another server): start over */
    }

    /* creation */
    url_of(url, sizeof(url), s, "/v1/uploads/");
    for (int cfails = 0;;) {
        xfer_reset(&x, s);
        ret = xfer_run(&x, "POST", url, create_h, "", 0, 0, e);
        if (ret == SUBMIT_OK && x.status == 201 && x.location[0])
            break;
        if (ret == SUBMIT_ECANCELED || ret == SUBMIT_EIO)
            goto out;
        if (ret == SUBMIT_OK) {
            error_from_answer(e, &x, "creating the upload");
            if (!retryable_status(x.status)) {
                ret = SUBMIT_EFAILED;
                goto out;
            }
            ret = SUBMIT_EUNREACHABLE;
        }
        if (++cfails > SUBMIT_RETRIES || (report_retry(s, "create", 0, e->message), 0) ||
            !backoff(s, cfails)) {
            if (canceled(s))
                ret = SUBMIT_ECANCELED;
            goto out;
        }
    }
    url_of(upload_url, sizeof(upload_url), s, x.location);
    if (s->report.created)
        s->report.created(s->report.opaque, upload_url);

patches:;
    const char *slash = strrchr(upload_url, '/');
    snprintf(id, cap, "%s", slash ? slash + 1 : upload_url);
    if (!id[0]) {
        set_error(e, x.status, "bad_answer", "the upload's URL has no id: %s", upload_url);
        ret = SUBMIT_EFAILED;
        goto out;
    }

    /* PATCHes; after a failure, HEAD first */
    while (offset < size || !sent_any) {
        if (need_head) {
            long long at = -1;
            ret = tus_offset(s, upload_url, &at, e);
            if (ret == SUBMIT_ECANCELED || ret == SUBMIT_EFAILED)
                goto out;
            if (ret == SUBMIT_OK && (uint64_t)at > size) {
                set_error(e, 200, "bad_answer", "the server has %lld bytes of a %llu-byte file", at,
                          (unsigned long long)size);
                ret = SUBMIT_EFAILED;
                goto out;
            }
            if (ret != SUBMIT_OK) {
                if (++fails > SUBMIT_RETRIES || !backoff(s, fails)) {
                    if (canceled(s))
                        ret = SUBMIT_ECANCELED;
                    goto out;
                }
                continue;
            }
            need_head = 0;
            if (locked_waits == 0 || (uint64_t)at != offset) {
                (*resumes)++;
                report_retry(s, "upload", (uint64_t)at, e->message);
            }
            offset = (uint64_t)at;
            if (offset == size && sent_any)
                break;
        }
        uint64_t n = size - offset < chunk ? size - offset : chunk;
        snprintf(off_h, sizeof(off_h), "Upload-Offset: %llu", (unsigned long long)offset);
        const char *patch_h[] = {"Tus-Resumable: 1.0.0",
                                 "Content-Type: application/offset+octet-stream", off_h, NULL};
        xfer_reset(&x, s);
        x.read_fd = fd;
        x.read_pos = offset;
        x.read_end = offset + n;
        x.upload_base = offset;
        x.upload_total = size;
        ret = xfer_run(&x, "PATCH", upload_url, patch_h, NULL, 0, 0, e);
        if (ret == SUBMIT_ECANCELED)
            goto out;
        if (ret == SUBMIT_EIO) {
            set_error(e, 0, "io_error", "cannot read %s at %llu: %s", path,
                      (unsigned long long)x.read_pos, strerror(errno));
            goto out;
        }
        if (ret == SUBMIT_OK && x.status == 204) {
            uint64_t now = x.upload_offset >= 0 ? (uint64_t)x.upload_offset : offset + n;
            if (now < offset || now > size) {
                set_error(e, 204, "bad_answer", "the server acknowledged offset %llu of %llu",
                          (unsigned long long)now, (unsigned long long)size);
                ret = SUBMIT_EFAILED;
                goto out;
            }
            offset = now;
            sent_any = 1;
            fails = 0;
            locked_waits = 0;
            if (s->report.upload)
                s->report.upload(s->report.opaque, offset, size);
            continue;
        }
        if (ret == SUBMIT_OK && x.status == 423) {
            /* Our dropped request still holds the upload on the server
             * until it notices the connection is gone (at worst its
             * --connection-timeout): wait for that, a second at a time,
             * without spending a retry. */
            error_from_answer(e, &x, "uploading");
            if (locked_waits == 0)
                report_retry(s, "locked", offset, e->message);
            if (++locked_waits > LOCKED_WAIT_S) {
                ret = SUBMIT_EFAILED;
                goto out;
            }
            if (!backoff(s, 2)) {
                ret = SUBMIT_ECANCELED;
                goto out;
            }
            need_head = 1;
            continue;
        }
        if (ret == SUBMIT_OK) {
            error_from_answer(e, &x, "uploading");
            /* 409: the offset is not the server's: ask it where it is */
            if (!retryable_status(x.status) && x.status != 409) {
                ret = SUBMIT_EFAILED;
                goto out;
            }
            ret = SUBMIT_EUNREACHABLE;
        }
        if (++fails > SUBMIT_RETRIES || !backoff(s, fails)) {
            if (canceled(s))
                ret = SUBMIT_ECANCELED;
            goto out;
        }
        need_head = 1;
    }
    ret = SUBMIT_OK;
out:
    xfer_free(&x);
    free(meta_h);
    if (fd >= 0)
        close(fd);
    return ret;
}

/* ---------------------------------------------------------------- JSON */

int submit_post_json(const struct submit_server *s, const char *path, const json_t *body,
                     json_t **answer, struct submit_error *e)
{
    static const char *const h[] = {"Content-Type: application/json", "Accept: application/json",
                                    NULL};
    struct xfer x = {0};
    char url[2600];
    *answer = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        set_error(e, 0, "out_of_memory", "out of memory");
        return SUBMIT_EFAILED;
    }
    url_of(url, sizeof(url), s, path);
    int ret = SUBMIT_EUNREACHABLE;
    for (int fails = 0;;) {
        xfer_reset(&x, s);
        ret = xfer_run(&x, "POST", url, h, text, strlen(text), 0, e);
        if (ret == SUBMIT_OK) {
            if (x.status >= 200 && x.status < 300 && x.body &&
                (*answer = json_loads(x.body, 0, NULL)) != NULL)
                break;
            error_from_answer(e, &x, path);
            ret = SUBMIT_EFAILED;
            if (!retryable_status(x.status))
                break;
        }
        if (ret == SUBMIT_ECANCELED || ++fails > SUBMIT_RETRIES || !backoff(s, fails))
            break;
    }
    xfer_free(&x);
    free(text);
    return ret;
}

int submit_get_job(const struct submit_server *s, const char *id, json_t **job,
                   struct submit_error *e)
{
    struct xfer x = {0};
    char url[2600], path[300];
    *job = NULL;
    snprintf(path, sizeof(path), "/status/%s", id);
    url_of(url, sizeof(url), s, path);
    xfer_reset(&x, s);
    int ret = xfer_run(&x, NULL, url, NULL, NULL, 0, 0, e);
    if (ret == SUBMIT_OK) {
        if (x.status == 200 && x.body && (*job = json_loads(x.body, 0, NULL)) != NULL &&
            json_is_object(*job)) {
            ret = SUBMIT_OK;
        } else {
            json_decref(*job);
            *job = NULL;
            error_from_answer(e, &x, "GET /status");
            ret = retryable_status(x.status) ? SUBMIT_EUNREACHABLE : SUBMIT_EFAILED;
        }
    }
    xfer_free(&x);
    return ret;
}

/* ------------------------------------------------------------- follow */

static int job_final(const json_t *job)
{
    const char *st = json_string_value(json_object_get(job, "status"));
    return st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                  strcmp(st, "canceled") == 0);
}

struct sse {
    char *line;
    size_t len;
    char *data; /* the data lines of the event being read */
    size_t dlen;
    json_t *final;
    int bad;
};

static int sse_append(char **buf, size_t *len, const char *p, size_t n)
{
    if (*len + n + 2 > LINE_CAP)
        return -1;
    char *nb = realloc(*buf, *len + n + 2);
    if (!nb)
        return -1;
    memcpy(nb + *len, p, n);
    *buf = nb;
    *len += n;
    nb[*len] = '\0';
    return 0;
}

static int sse_line(struct xfer *x, struct sse *ev, const char *line)
{
    if (line[0] == '\0') { /* end of an event */
        if (ev->dlen) {
            json_t *job = json_loads(ev->data, 0, NULL);
            if (job && json_is_object(job)) {
                if (x->s->report.job)
                    x->s->report.job(x->s->report.opaque, job);
                if (job_final(job)) {
                    json_decref(ev->final);
                    ev->final = json_incref(job);
                }
            }
            json_decref(job);
        }
        ev->dlen = 0;
        return 0;
    }
    if (strncmp(line, "data:", 5) == 0) {
        const char *d = line + 5 + (line[5] == ' ');
        if (ev->dlen && sse_append(&ev->data, &ev->dlen, "\n", 1) < 0)
            return -1;
        return sse_append(&ev->data, &ev->dlen, d, strlen(d));
    }
    return 0; /* event:, id:, retry:, comments */
}

static int sse_sink(struct xfer *x, const char *data, size_t n)
{
    struct sse *ev = x->sink_ctx;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (ev->len && ev->line[ev->len - 1] == '\r')
                ev->line[--ev->len] = '\0';
            if (sse_line(x, ev, ev->line ? ev->line : "") < 0)
                return -1;
            ev->len = 0;
            if (ev->line)
                ev->line[0] = '\0';
        } else if (sse_append(&ev->line, &ev->len, data + i, 1) < 0) {
            return -1;
        }
    }
    /* keep the start: an error answer is not a stream */
    if (x->len < 2048)
        body_append(x, data, n < 2048 - x->len ? n : 2048 - x->len);
    return 0;
}

int submit_follow(const struct submit_server *s, const char *id, json_t **final,
                  struct submit_error *e)
{
    static const char *const h[] = {"Accept: text/event-stream", NULL};
    struct xfer x = {0};
    struct sse ev = {0};
    char url[2600], path[300];
    *final = NULL;
    snprintf(path, sizeof(path), "/v1/jobs/%s/events", id);
    url_of(url, sizeof(url), s, path);
    xfer_reset(&x, s);
    x.sink = sse_sink;
    x.sink_ctx = &ev;
    int ret = xfer_run(&x, NULL, url, h, NULL, 0, 0, e);
    if (ret == SUBMIT_ECANCELED)
        goto out;
    if (ev.final) {
        *final = ev.final;
        ev.final = NULL;
        ret = SUBMIT_OK;
        goto out;
    }
    if (ret == SUBMIT_OK && x.status >= 400 && x.status < 500) {
        error_from_answer(e, &x, "following the job");
        ret = SUBMIT_EFAILED;
        goto out;
    }
    /* The stream broke (or never came): poll until the job ends. */
    for (int fails = 0;;) {
        json_t *job = NULL;
        ret = submit_get_job(s, id, &job, e);
        if (ret == SUBMIT_OK) {
            fails = 0;
            if (s->report.job)
                s->report.job(s->report.opaque, job);
            if (job_final(job)) {
                *final = job;
                goto out;
            }
            json_decref(job);
            if (!backoff(s, 2)) { /* 1 s between polls */
                ret = SUBMIT_ECANCELED;
                goto out;
            }
            continue;
        }
        if (ret != SUBMIT_EUNREACHABLE)
            goto out;
        if (++fails > SUBMIT_RETRIES || (report_retry(s, "status", 0, e->message), 0) ||
            !backoff(s, fails)) {
            if (canceled(s))
                ret = SUBMIT_ECANCELED;
            goto out;
        }
    }
out:
    json_decref(ev.final);
    free(ev.line);
    free(ev.data);
    xfer_free(&x);
    return ret;
}

/* ------------------------------------------------------------ download */

struct file_sink {
    int fd;
    uint64_t have;  /* bytes of the .part when the request started */
    int decided;    /* the status was looked at */
    int writing;    /* 200/206: the body goes to the file */
    uint64_t wrote;
    const char *path;
    struct submit_error *e;
};

static int file_sink(struct xfer *x, const char *data, size_t n)
{
    struct file_sink *f = x->sink_ctx;
    if (!f->decided) {
        f->decided = 1;
        /* CURLINFO_RESPONSE_CODE is final only after the transfer: the
         * status line's, seen by on_header */
        f->writing = x->live_status == 206 || x->live_status == 200;
        if (x->live_status == 200 && f->have) { /* the server sent it all again */
            if (ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) < 0) {
                set_error(f->e, 0, "io_error", "cannot truncate %s: %s", f->path,
                          strerror(errno));
                x->sink_failed = 1;
                return -1;
            }
            f->have = 0;
        }
    }
    if (!f->writing) /* an error body: keep it for the message */
        return body_append(x, data, n);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(f->fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            set_error(f->e, 0, "io_error", "cannot write %s: %s", f->path, strerror(errno));
            x->sink_failed = 1;
            return -1;
        }
        off += (size_t)w;
    }
    f->wrote += n;
    return 0;
}

static int mkdirs(const char *path, struct submit_error *e)
{
    char tmp[PATH_CAP];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        goto fail;
    return 0;
fail:
    set_error(e, 0, "io_error", "cannot create %s: %s", tmp, strerror(errno));
    return SUBMIT_EIO;
}

/* GET url_path into dest via dest.part, resuming an existing .part. */
static int download_file(const struct submit_server *s, const char *url_path, const char *dest,
                         struct submit_error *e)
{
    char url[2600], part[PATH_CAP + 8], range[64];
    struct xfer x = {0};
    int ret = SUBMIT_EIO;
    if (snprintf(part, sizeof(part), "%s.part", dest) >= (int)sizeof(part)) {
        set_error(e, 0, "io_error", "path too long: %s", dest);
        return SUBMIT_EIO;
    }
    url_of(url, sizeof(url), s, url_path);
    for (int fails = 0;;) {
        struct file_sink f = {.fd = -1, .path = part, .e = e};
        struct stat st;
        f.fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (f.fd < 0 || fstat(f.fd, &st) != 0) {
            set_error(e, 0, "io_error", "cannot write %s: %s", part, strerror(errno));
            if (f.fd >= 0)
                close(f.fd);
            ret = SUBMIT_EIO;
            break;
        }
        f.have = (uint64_t)st.st_size;
        snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)f.have);
        const char *h[] = {f.have ? range : NULL, NULL};
        xfer_reset(&x, s);
        x.sink = file_sink;
        x.sink_ctx = &f;
        ret = xfer_run(&x, NULL, url, h, NULL, 0, 0, e);
        close(f.fd);
        if (ret == SUBMIT_ECANCELED || ret == SUBMIT_EIO)
            break;
        if (ret == SUBMIT_OK && (x.status == 200 || x.status == 206)) {
            if (rename(part, dest) != 0) {
                set_error(e, 0, "io_error", "cannot rename %s: %s", part, strerror(errno));
                ret = SUBMIT_EIO;
                break;
            }
            if (s->report.downloaded) {
                struct stat ds;
                s->report.downloaded(s->report.opaque, dest,
                                     stat(dest, &ds) == 0 ? (uint64_t)ds.st_size : 0);
            }
            ret = SUBMIT_OK;
            break;
        }
        if (ret == SUBMIT_OK) {
            error_from_answer(e, &x, url_path);
            if (x.status == 416) { /* the .part is not a prefix of it: start over */
                unlink(part);
            } else if (!retryable_status(x.status)) {
                ret = SUBMIT_EFAILED;
                break;
            }
            ret = SUBMIT_EUNREACHABLE;
        }
        if (++fails > SUBMIT_RETRIES)
            break;
        struct stat ps;
        report_retry(s, "download", stat(part, &ps) == 0 ? (uint64_t)ps.st_size : 0, e->message);
        if (!backoff(s, fails)) {
            ret = SUBMIT_ECANCELED;
            break;
        }
    }
    xfer_free(&x);
    return ret;
}

/* A relative reference of an index (a playlist's URI, a WebVTT cue's
 * image) that stays inside its folder: no scheme, no absolute path, no
 * "..", no query. */
static int safe_relative(const char *ref)
{
    if (!ref[0] || ref[0] == '/' || strstr(ref, "://") || strchr(ref, '?') || strchr(ref, '\\'))
        return 0;
    const char *p = ref;
    while (*p) {
        size_t l = strcspn(p, "/");
        if ((l == 2 && p[0] == '.' && p[1] == '.') || (l == 1 && p[0] == '.') || l == 0)
            return 0;
        p += l;
        if (*p == '/')
            p++;
    }
    return 1;
}

struct tree {
    const struct submit_server *s;
    const char *url;   /* the folder's URL path, no trailing slash */
    const char *local; /* the local folder */
    char **seen;
    size_t n_seen;
    struct submit_error *e;
};

static int tree_fetch(struct tree *t, const char *rel, int depth);

/* The references of an index file (m3u8 or vtt) at path, each fetched
 * relative to the folder of rel. */
static int tree_index(struct tree *t, const char *path, const char *rel, int depth)
{
    FILE *f = fopen(path, "r");
    char line[4096], ref[4096], full[PATH_CAP];
    int ret = SUBMIT_OK;
    if (!f) {
        set_error(t->e, 0, "io_error", "cannot read %s: %s", path, strerror(errno));
        return SUBMIT_EIO;
    }
    size_t dir_len = strrchr(rel, '/') ? (size_t)(strrchr(rel, '/') - rel) + 1 : 0;
    while (ret == SUBMIT_OK && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *u = NULL;
        char *q;
        if (line[0] == '#') {
            if ((u = strstr(line, "URI=\"")) == NULL)
                continue;
            u += 5;
            snprintf(ref, sizeof(ref), "%s", u);
            if ((q = strchr(ref, '"')) != NULL)
                *q = '\0';
        } else if (strstr(line, "#xywh=")) {
            snprintf(ref, sizeof(ref), "%s", line);
            ref[strcspn(ref, "#")] = '\0';
        } else if (line[0] && strstr(path, ".m3u8") && !strstr(line, "-->")) {
            snprintf(ref, sizeof(ref), "%s", line);
        } else {
            continue;
        }
        if (!safe_relative(ref)) {
            set_error(t->e, 0, "bad_answer", "%s names '%s', outside its folder", rel, ref);
            ret = SUBMIT_EFAILED;
            break;
        }
        if (snprintf(full, sizeof(full), "%.*s%s", (int)dir_len, rel, ref) >= (int)sizeof(full))
            continue;
        ret = tree_fetch(t, full, depth + 1);
    }
    fclose(f);
    return ret;
}

static int tree_fetch(struct tree *t, const char *rel, int depth)
{
    char url[PATH_CAP], dest[PATH_CAP];
    for (size_t i = 0; i < t->n_seen; i++)
        if (strcmp(t->seen[i], rel) == 0)
            return SUBMIT_OK;
    if (t->n_seen >= MAX_TREE_FILES || depth > 3) {
        set_error(t->e, 0, "bad_answer", "the folder output names too many files");
        return SUBMIT_EFAILED;
    }
    char **ns = realloc(t->seen, (t->n_seen + 1) * sizeof(*ns));
    if (!ns || !(ns[t->n_seen] = strdup(rel))) {
        if (ns)
            t->seen = ns;
        set_error(t->e, 0, "out_of_memory", "out of memory");
        return SUBMIT_EFAILED;
    }
    t->seen = ns;
    t->n_seen++;
    if (snprintf(url, sizeof(url), "%s/%s", t->url, rel) >= (int)sizeof(url) ||
        snprintf(dest, sizeof(dest), "%s/%s", t->local, rel) >= (int)sizeof(dest)) {
        set_error(t->e, 0, "io_error", "path too long: %s", rel);
        return SUBMIT_EIO;
    }
    char *slash = strrchr(dest, '/');
    *slash = '\0';
    int ret = mkdirs(dest, t->e);
    *slash = '/';
    if (ret == SUBMIT_OK)
        ret = download_file(t->s, url, dest, t->e);
    size_t l = strlen(rel);
    if (ret == SUBMIT_OK && ((l > 5 && strcmp(rel + l - 5, ".m3u8") == 0) ||
                             (l > 4 && strcmp(rel + l - 4, ".vtt") == 0)))
        ret = tree_index(t, dest, rel, depth);
    return ret;
}

static const char *file_ext(const char *container)
{
    static const char *const known[] = {"mp4", "webm", "mkv", "m4a", "mp3", "ogg", "jpg"};
    for (size_t i = 0; container && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(container, known[i]) == 0)
            return known[i];
    return "bin";
}

int submit_download_outputs(const struct submit_server *s, const json_t *job, const char *dir,
                            struct submit_error *e)
{
    const char *id = json_string_value(json_object_get(job, "id"));
    json_t *outs = json_object_get(job, "outputs");
    char file_url[PATH_CAP], dest[PATH_CAP];
    size_t i;
    json_t *o;
    int ret = mkdirs(dir, e);
    if (ret != SUBMIT_OK)
        return ret;
    json_array_foreach(outs, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *url = json_string_value(json_object_get(o, "url"));
        const char *container = json_string_value(json_object_get(o, "container"));
        if (!id || !name || !url || url[0] != '/' || !safe_relative(name) || strchr(name, '/')) {
            set_error(e, 0, "bad_answer", "output %zu of the job has no usable name or url", i);
            return SUBMIT_EFAILED;
        }
        snprintf(file_url, sizeof(file_url), "/v1/jobs/%s/outputs/%s", id, name);
        if (strcmp(url, file_url) == 0) { /* one file */
            if (snprintf(dest, sizeof(dest), "%s/%s.%s", dir, name, file_ext(container)) >=
                (int)sizeof(dest)) {
                set_error(e, 0, "io_error", "path too long in %s", dir);
                return SUBMIT_EIO;
            }
            ret = download_file(s, url, dest, e);
        } else if (strncmp(url, file_url, strlen(file_url)) == 0 &&
                   url[strlen(file_url)] == '/') { /* a folder: its index, then what it names */
            struct tree t = {.s = s, .url = file_url, .local = dest, .e = e};
            snprintf(dest, sizeof(dest), "%s/%s", dir, name);
            ret = tree_fetch(&t, url + strlen(file_url) + 1, 0);
            for (size_t k = 0; k < t.n_seen; k++)
                free(t.seen[k]);
            free(t.seen);
        } else {
            set_error(e, 0, "bad_answer", "output %s has an unexpected url %s", name, url);
            return SUBMIT_EFAILED;
        }
        if (ret != SUBMIT_OK)
            return ret;
    }
    return SUBMIT_OK;
}
