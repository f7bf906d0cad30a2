/*
 * End-to-end test of webhooks: the real `vidq serve`, real uploads and
 * transcodes, and a real receiver (tests/support/webhook_receiver.js) that
 * verifies every signature with the npm standardwebhooks package.
 *   - registration: webhook_url at upload (multipart field, query
 *     parameter, tus Upload-Metadata), per job, global (POST/GET/DELETE /v1/webhooks); bad
 *     URLs, bad events and bad bodies get 400, unknown jobs 404;
 *   - one verified delivery per event (job.started, job.succeeded,
 *     job.canceled) with the job object as data;
 *   - retries after 500s reach the receiver with the same webhook-id;
 *   - registering after completion delivers at once;
 *   - GET /v1/jobs/<id>/deliveries lists every attempt; /metrics counts;
 *   - a tampered body fails the receiver's own check;
 *   - the receiver is down while the server is killed with -9 and
 *     restarted: the delivery still arrives, signed with the generated
 *     secret the server kept in its data dir.
 *
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "test_support.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define CLIP "h264_aac_640x360.mp4"
#define PRESET "thumbnail"

static char log_path[4300], rbase[64];
static const char *json_hdr[] = {"Content-Type: application/json", NULL};

static json_t *requests_to(const char *log, const char *path, const char *job_id)
{
    json_t *all = ts_receiver_log(log), *out = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) {
        const char *p = json_string_value(json_object_get(o, "path"));
        if (!p || strcmp(p, path) != 0)
            continue;
        if (job_id) {
            json_t *b = json_loads(json_string_value(json_object_get(o, "body")), 0, NULL);
            const char *id = json_string_value(json_object_get(json_object_get(b, "data"), "id"));
            int match = id && strcmp(id, job_id) == 0;
            json_decref(b);
            if (!match)
                continue;
        }
        json_array_append(out, o);
    }
    json_decref(all);
    return out;
}

/* Wait until path has n requests answered 200 (for job_id if not NULL). */
static json_t *wait_delivered(const char *log, const char *path, const char *job_id, size_t n,
                              double timeout_s)
{
    double end = ts_now() + timeout_s;
    for (;;) {
        json_t *r = requests_to(log, path, job_id);
        size_t ok = 0, i;
        json_t *o;
        json_array_foreach(r, i, o) {
            if (json_integer_value(json_object_get(o, "answer")) == 200)
                ok++;
        }
        if (ok >= n || ts_now() > end)
            return r;
        json_decref(r);
        ts_sleep_ms(50);
    }
}

static const char *hdr(json_t *req, const char *name)
{
    const char *v = json_string_value(json_object_get(json_object_get(req, "headers"), name));
    return v ? v : "";
}

static json_t *body_of(json_t *req)
{
    return json_loads(json_string_value(json_object_get(req, "body")), 0, NULL);
}

static void check_verified(json_t *reqs, const char *what)
{
    size_t i;
    json_t *o;
    json_array_foreach(reqs, i, o) {
        TS_CHECK(json_is_true(json_object_get(o, "verified")), "%s #%zu not verified: %s", what,
                 i, json_string_value(json_object_get(o, "verify_error")));
    }
}

/* POST a JSON text; returns the status, *out the answer's JSON. */
static long post_json(const struct ts_server *s, const char *path, const char *body, json_t **out)
{
    struct ts_http r;
    ts_http(s, &r, "POST", path, json_hdr, body, strlen(body));
    long st = r.status;
    if (out)
        *out = ts_http_json(&r);
    ts_http_free(&r);
    return st;
}

static void expect_error(const struct ts_server *s, const char *method, const char *path,
                         const char *body, long want_status, const char *want_code,
                         const char *want_in_message)
{
    struct ts_http r;
    ts_http(s, &r, method, path, body ? json_hdr : NULL, body, body ? strlen(body) : 0);
    json_t *j = ts_http_json(&r);
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    TS_CHECK(r.status == want_status && code && strcmp(code, want_code) == 0 && msg &&
                 (!want_in_message || strstr(msg, want_in_message)),
             "%s %s %s: got %ld %s", method, path, body ? body : "", r.status, r.body);
    json_decref(j);
    ts_http_free(&r);
}

static char *upload_multipart(const struct ts_server *s, const char *file, const char *hook_url)
{
    struct ts_http r;
    const char *fields[] = {"preset", PRESET, "webhook_url", hook_url, NULL};
    ts_http_upload_multipart(s, &r, "/upload", file, fields, NULL);
    TS_CHECK(r.status == 202, "multipart upload: %ld %s", r.status, r.body);
    json_t *j = ts_http_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ts_http_free(&r);
    return id;
}

static char *upload_raw(const struct ts_server *s, const char *file, const char *preset,
                        const char *hook_url, long want)
{
    char path[2048];
    if (hook_url) {
        char *esc = curl_easy_escape(NULL, hook_url, 0);
        snprintf(path, sizeof(path), "/upload?preset=%s&webhook_url=%s", preset, esc);
        curl_free(esc);
    } else {
        snprintf(path, sizeof(path), "/upload?preset=%s", preset);
    }
    struct ts_http r;
    ts_http_upload_raw(s, &r, path, file, "video/mp4", NULL);
    TS_CHECK(r.status == want, "raw upload: %ld %s", r.status, r.body);
    json_t *j = ts_http_json(&r);
    const char *id = json_string_value(json_object_get(j, "id"));
    char *out = id ? strdup(id) : NULL;
    json_decref(j);
    ts_http_free(&r);
    return out;
}

/* A tus upload in one creation-with-upload request, webhook_url in its
 * Upload-Metadata; returns the upload id (= the job id). */
static char *upload_tus(const struct ts_server *s, const char *file, const char *hook_url)
{
    FILE *f = fopen(file, "rb");
    TS_CHECK(f, "open %s", file);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size);
    TS_CHECK(data && fread(data, 1, (size_t)size, f) == (size_t)size, "read %s", file);
    fclose(f);
    unsigned char b64u[1500], b64p[64];
    EVP_EncodeBlock(b64u, (const unsigned char *)hook_url, (int)strlen(hook_url));
    EVP_EncodeBlock(b64p, (const unsigned char *)PRESET, (int)strlen(PRESET));
    char meta[1700], len_h[64];
    snprintf(meta, sizeof(meta), "Upload-Metadata: filename Y2xpcC5tcDQ=,preset %s,webhook_url %s",
             b64p, b64u);
    snprintf(len_h, sizeof(len_h), "Upload-Length: %ld", size);
    const char *hdrs[] = {"Tus-Resumable: 1.0.0", len_h, meta,
                          "Content-Type: application/offset+octet-stream", NULL};
    struct ts_http r;
    ts_http(s, &r, "POST", "/v1/uploads/", hdrs, data, (size_t)size);
    free(data);
    char *loc = ts_http_header(&r, "Location");
    TS_CHECK(r.status == 201 && loc, "tus creation-with-upload: %ld %s", r.status, r.body);
    const char *slash = strrchr(loc, '/');
    char *id = strdup(slash ? slash + 1 : loc);
    id[strcspn(id, "\r\n ")] = '\0';
    free(loc);
    ts_http_free(&r);
    return id;
}

static void wait_status(const struct ts_server *s, const char *id, const char *want)
{
    json_t *j = ts_wait_job(s, id, 60);
    const char *st = json_string_value(json_object_get(j, "status"));
    TS_CHECK(st && strcmp(st, want) == 0, "job %s: %s", id, st ? st : "(none)");
    json_decref(j);
}

static json_t *deliveries(const struct ts_server *s, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/deliveries", id);
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0);
    TS_CHECK(r.status == 200, "deliveries: %ld %s", r.status, r.body);
    json_t *j = ts_http_json(&r);
    ts_http_free(&r);
    return j;
}

/* The delivery of a job to a URL whose path is `path`. Borrowed from list. */
static json_t *delivery_to(json_t *list, const char *path)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "deliveries"), i, d) {
        const char *url = json_string_value(json_object_get(d, "url"));
        const char *p = url ? strchr(url + strlen("http://"), '/') : NULL;
        if (p && strncmp(p, path, strlen(path)) == 0 &&
            (p[strlen(path)] == '\0' || p[strlen(path)] == '?'))
            return d;
    }
    return NULL;
}

static void tampered_body_fails(json_t *req, const char *dir, const char *secret)
{
    const char *src = ts_env("VIDQ_SRC");
    char file[4300], out[512];
    const char *body = json_string_value(json_object_get(req, "body"));
    for (int tamper = 0; tamper < 2; tamper++) {
        snprintf(file, sizeof(file), "%s/body-%d.json", dir, tamper);
        FILE *f = fopen(file, "w");
        TS_CHECK(f, "open %s", file);
        fputs(body, f);
        if (tamper)
            fputs(" ", f); /* one added byte */
        fclose(f);
        int rc = ts_run(out, sizeof(out),
                        "node '%s/tests/support/webhook_receiver.js' verify --secret '%s' --id '%s' "
                        "--timestamp '%s' --signature '%s' --body-file '%s'",
                        src, secret, hdr(req, "webhook-id"), hdr(req, "webhook-timestamp"),
                        hdr(req, "webhook-signature"), file);
        TS_CHECK(rc == (tamper ? 1 : 0), "verify (tampered=%d) exit %d: %s", tamper, rc, out);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char clip[4200], data1[4300], data2[4300], url[1024], body[2048], path[512];
    snprintf(clip, sizeof(clip), "%s/%s", ts_env("VIDQ_MEDIA"), CLIP);
    char *dir = ts_mkdtemp("hook_e2e");
    snprintf(log_path, sizeof(log_path), "%s/receiver.jsonl", dir);
    snprintf(data1, sizeof(data1), "%s/data1", dir);
    snprintf(data2, sizeof(data2), "%s/data2", dir);
    int rport = 0;
    int rpid = ts_receiver_start(SECRET, log_path, NULL, &rport);
    snprintf(rbase, sizeof(rbase), "http://127.0.0.1:%d", rport);

    struct ts_server s;
    ts_server_start(&s, data1,
                    "--webhook-secret " SECRET " --webhook-retry-min 0.2 "
                    "--webhook-retry-max-age 120 --max-concurrent 2");

    /* ---- bad requests: clear 400/404, nothing stored, server keeps serving */
    expect_error(&s, "POST", "/v1/webhooks", "{\"url\":\"ftp://127.0.0.1/x\"}", 400,
                 "bad_request", "http");
    expect_error(&s, "POST", "/v1/webhooks", "{\"url\":\"http://\"}", 400, "bad_request", NULL);
    expect_error(&s, "POST", "/v1/webhooks",
                 "{\"url\":\"http://127.0.0.1/x\",\"events\":[\"job.nope\"]}", 400, "bad_request",
                 "job.nope");
    expect_error(&s, "POST", "/v1/webhooks", "{\"url\":\"http://127.0.0.1/x\",\"events\":[]}", 400,
                 "bad_request", NULL);
    expect_error(&s, "POST", "/v1/webhooks", "not json", 400, "bad_request", NULL);
    expect_error(&s, "POST", "/v1/webhooks", "", 400, "bad_request", NULL);
    expect_error(&s, "POST", "/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/webhooks",
                 "{\"url\":\"http://127.0.0.1/x\"}", 404, "not_found", NULL);
    expect_error(&s, "GET", "/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/deliveries", NULL, 404, "not_found",
                 NULL);
    expect_error(&s, "DELETE", "/v1/webhooks/wh_nope", NULL, 404, "not_found", NULL);
    char *huge = malloc(70000);
    memset(huge, ' ', 69999);
    huge[69999] = '\0';
    expect_error(&s, "POST", "/v1/webhooks", huge, 413, "too_large", NULL);
    free(huge);
    char *bad = upload_raw(&s, clip, PRESET, "ftp://127.0.0.1/x", 400);
    free(bad);
    struct ts_http r;
    ts_http(&s, &r, "GET", "/v1/webhooks", NULL, NULL, 0);
    json_t *j = ts_http_json(&r);
    TS_CHECK(r.status == 200 && json_array_size(json_object_get(j, "webhooks")) == 0,
             "webhooks after bad requests: %s", r.body);
    json_decref(j);
    ts_http_free(&r);

    /* ---- a global webhook for every event but progress */
    snprintf(body, sizeof(body),
             "{\"url\":\"%s/global\",\"events\":[\"job.started\",\"job.succeeded\","
             "\"job.failed\",\"job.canceled\"]}",
             rbase);
    json_t *created = NULL;
    TS_CHECK(post_json(&s, "/v1/webhooks", body, &created) == 201, "global registration");
    char global_id[64];
    snprintf(global_id, sizeof(global_id), "%s",
             json_string_value(json_object_get(created, "id")) ?: "");
    TS_CHECK(strncmp(global_id, "wh_", 3) == 0, "global id '%s'", global_id);
    json_decref(created);
    ts_http(&s, &r, "GET", "/v1/webhooks", NULL, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, global_id), "GET /v1/webhooks: %s", r.body);
    ts_http_free(&r);

    /* ---- webhook_url at upload: multipart (2 x 500 first) and query */
    snprintf(url, sizeof(url), "%s/multipart?fail=2&status=500", rbase);
    char *id1 = upload_multipart(&s, clip, url);
    snprintf(url, sizeof(url), "%s/query", rbase);
    char *id2 = upload_raw(&s, clip, PRESET, url, 202);
    wait_status(&s, id1, "succeeded");
    wait_status(&s, id2, "succeeded");

    json_t *mp = wait_delivered(log_path, "/multipart", NULL, 1, 20);
    TS_CHECK(json_array_size(mp) == 3, "multipart got %zu requests", json_array_size(mp));
    check_verified(mp, "multipart");
    for (size_t i = 1; i < 3; i++)
        TS_CHECK(strcmp(hdr(json_array_get(mp, 0), "webhook-id"),
                        hdr(json_array_get(mp, i), "webhook-id")) == 0,
                 "retry %zu changed the webhook-id", i);
    json_t *b = body_of(json_array_get(mp, 2));
    json_t *data = json_object_get(b, "data");
    TS_CHECK(strcmp(json_string_value(json_object_get(b, "type")) ?: "", "job.succeeded") == 0,
             "multipart type");
    TS_CHECK(strcmp(json_string_value(json_object_get(data, "id")) ?: "", id1) == 0 &&
                 strcmp(json_string_value(json_object_get(data, "status")) ?: "", "succeeded") == 0 &&
                 json_array_size(json_object_get(data, "outputs")) == 1 &&
                 json_is_string(json_object_get(b, "timestamp")),
             "multipart payload: %s", json_string_value(json_object_get(json_array_get(mp, 2), "body")));
    json_decref(b);
    char mp_msg_id[64];
    snprintf(mp_msg_id, sizeof(mp_msg_id), "%s", hdr(json_array_get(mp, 0), "webhook-id"));
    json_decref(mp);

    json_t *q = wait_delivered(log_path, "/query", NULL, 1, 20);
    TS_CHECK(json_array_size(q) == 1, "query got %zu", json_array_size(q));
    check_verified(q, "query");
    tampered_body_fails(json_array_get(q, 0), dir, SECRET);
    json_decref(q);

    /* webhook_url in tus Upload-Metadata */
    snprintf(url, sizeof(url), "%s/tus", rbase);
    char *id_tus = upload_tus(&s, clip, url);
    wait_status(&s, id_tus, "succeeded");
    json_t *tq = wait_delivered(log_path, "/tus", id_tus, 1, 20);
    TS_CHECK(json_array_size(tq) == 1, "tus webhook got %zu", json_array_size(tq));
    check_verified(tq, "tus");
    json_decref(tq);
    free(id_tus);

    /* the global webhook: job.started then job.succeeded, for each job */
    const char *ids[] = {id1, id2};
    for (size_t k = 0; k < 2; k++) {
        json_t *g = wait_delivered(log_path, "/global", ids[k], 2, 20);
        TS_CHECK(json_array_size(g) == 2, "global for %s: %zu", ids[k], json_array_size(g));
        check_verified(g, "global");
        json_t *b0 = body_of(json_array_get(g, 0)), *b1 = body_of(json_array_get(g, 1));
        TS_CHECK(strcmp(json_string_value(json_object_get(b0, "type")) ?: "", "job.started") == 0 &&
                     strcmp(json_string_value(json_object_get(b1, "type")) ?: "", "job.succeeded") == 0,
                 "global event order");
        TS_CHECK(strcmp(json_string_value(json_object_get(json_object_get(b0, "data"), "status")) ?: "",
                        "running") == 0,
                 "job.started data is not the running job");
        json_decref(b0);
        json_decref(b1);
        json_decref(g);
    }

    /* ---- registering after completion delivers the final event at once */
    snprintf(path, sizeof(path), "/v1/jobs/%s/webhooks", id2);
    snprintf(body, sizeof(body), "{\"url\":\"%s/late\"}", rbase);
    TS_CHECK(post_json(&s, path, body, &created) == 201, "late registration");
    TS_CHECK(strcmp(json_string_value(json_object_get(created, "job_id")) ?: "", id2) == 0,
             "late job_id");
    json_decref(created);
    json_t *late = wait_delivered(log_path, "/late", id2, 1, 20);
    TS_CHECK(json_array_size(late) == 1, "late got %zu", json_array_size(late));
    check_verified(late, "late");
    json_decref(late);
    snprintf(body, sizeof(body), "{\"url\":\"%s/late\",\"events\":[\"job.done\"]}", rbase);
    expect_error(&s, "POST", path, body, 400, "bad_request", "job.done");

    /* ---- job.progress on request (a 10 s clip: progress is reported while it runs) */
    char long_clip[4200];
    snprintf(long_clip, sizeof(long_clip), "%s/h264_aac_640x360_10s.mp4", ts_env("VIDQ_MEDIA"));
    snprintf(body, sizeof(body), "{\"url\":\"%s/progress\",\"events\":[\"job.progress\"]}", rbase);
    TS_CHECK(post_json(&s, "/v1/webhooks", body, &created) == 201, "progress registration");
    char progress_id[64];
    snprintf(progress_id, sizeof(progress_id), "%s",
             json_string_value(json_object_get(created, "id")) ?: "");
    json_decref(created);
    char *id5 = upload_raw(&s, long_clip, "mp4-480p", NULL, 202);
    wait_status(&s, id5, "succeeded");
    json_t *pr = wait_delivered(log_path, "/progress", id5, 1, 20);
    TS_CHECK(json_array_size(pr) >= 1, "no job.progress event");
    check_verified(pr, "progress");
    double last_pc = -1;
    for (size_t i = 0; i < json_array_size(pr); i++) {
        b = body_of(json_array_get(pr, i));
        data = json_object_get(b, "data");
        double pc = json_number_value(json_object_get(json_object_get(data, "progress"), "percent"));
        TS_CHECK(strcmp(json_string_value(json_object_get(b, "type")) ?: "", "job.progress") == 0 &&
                     strcmp(json_string_value(json_object_get(data, "status")) ?: "", "running") == 0 &&
                     pc >= last_pc && pc < 100,
                 "progress event %zu", i);
        last_pc = pc;
        json_decref(b);
    }
    json_decref(pr);
    snprintf(path, sizeof(path), "/v1/webhooks/%s", progress_id);
    ts_http(&s, &r, "DELETE", path, NULL, NULL, 0);
    TS_CHECK(r.status == 204, "delete progress webhook: %ld", r.status);
    ts_http_free(&r);

    /* ---- per-job registration, then cancel: job.canceled */
    snprintf(url, sizeof(url), "%s/unused", rbase);
    char *id3 = upload_raw(&s, long_clip, "mp4-480p", url, 202);
    snprintf(path, sizeof(path), "/v1/jobs/%s/webhooks", id3);
    snprintf(body, sizeof(body), "{\"url\":\"%s/perjob\",\"events\":[\"job.canceled\"]}", rbase);
    TS_CHECK(post_json(&s, path, body, NULL) == 201, "per-job registration");
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", id3);
    ts_http(&s, &r, "POST", path, NULL, NULL, 0);
    TS_CHECK(r.status == 202, "cancel: %ld %s", r.status, r.body);
    ts_http_free(&r);
    wait_status(&s, id3, "canceled");
    json_t *pj = wait_delivered(log_path, "/perjob", id3, 1, 20);
    TS_CHECK(json_array_size(pj) == 1, "per-job got %zu", json_array_size(pj));
    b = body_of(json_array_get(pj, 0));
    TS_CHECK(strcmp(json_string_value(json_object_get(b, "type")) ?: "", "job.canceled") == 0,
             "per-job type");
    json_decref(b);
    check_verified(pj, "per-job");
    json_decref(pj);
    json_t *unused = wait_delivered(log_path, "/unused", id3, 1, 20);
    TS_CHECK(json_array_size(unused) == 1, "upload webhook_url of the canceled job: %zu",
             json_array_size(unused));
    json_decref(unused);

    /* ---- every attempt listed */
    json_t *dl = deliveries(&s, id1);
    json_t *d = delivery_to(dl, "/multipart");
    TS_CHECK(d, "no delivery to /multipart listed");
    json_t *at = json_object_get(d, "attempts");
    TS_CHECK(strcmp(json_string_value(json_object_get(d, "id")) ?: "", mp_msg_id) == 0 &&
                 strcmp(json_string_value(json_object_get(d, "status")) ?: "", "delivered") == 0 &&
                 strcmp(json_string_value(json_object_get(d, "event")) ?: "", "job.succeeded") == 0 &&
                 json_array_size(at) == 3,
             "multipart delivery: %s", json_dumps(d, JSON_COMPACT));
    for (size_t i = 0; i < json_array_size(at); i++) {
        json_t *x = json_array_get(at, i);
        TS_CHECK(json_integer_value(json_object_get(x, "http_status")) == (i < 2 ? 500 : 200) &&
                     json_is_string(json_object_get(x, "at")) &&
                     json_is_number(json_object_get(x, "duration_s")) &&
                     (i < 2) == json_is_string(json_object_get(x, "error")),
                 "attempt %zu: %s", i, json_dumps(x, JSON_COMPACT));
    }
    TS_CHECK(delivery_to(dl, "/global"), "global deliveries not listed");
    json_decref(dl);

    /* ---- metrics */
    ts_http(&s, &r, "GET", "/metrics", NULL, NULL, 0);
    const char *m = strstr(r.body ? r.body : "", "vidq_webhook_deliveries_total{outcome=\"succeeded\"} ");
    long succeeded = m ? strtol(m + strlen("vidq_webhook_deliveries_total{outcome=\"succeeded\"} "), NULL, 10) : -1;
    const char *mf = strstr(r.body ? r.body : "", "vidq_webhook_deliveries_total{outcome=\"failed\"} ");
    long failed = mf ? strtol(mf + strlen("vidq_webhook_deliveries_total{outcome=\"failed\"} "), NULL, 10) : -1;
    TS_CHECK(succeeded >= 9 && failed >= 2, "metrics succeeded=%ld failed=%ld", succeeded, failed);
    ts_http_free(&r);

    /* ---- unregister */
    snprintf(path, sizeof(path), "/v1/webhooks/%s", global_id);
    ts_http(&s, &r, "DELETE", path, NULL, NULL, 0);
    TS_CHECK(r.status == 204, "delete: %ld", r.status);
    ts_http_free(&r);
    ts_http(&s, &r, "GET", "/v1/webhooks", NULL, NULL, 0);
    TS_CHECK(!strstr(r.body ? r.body : "", global_id), "still listed after delete");
    ts_http_free(&r);
    int st1 = ts_server_stop(&s, SIGTERM, 30);
    TS_CHECK(st1 == 0, "server exit status %d after SIGTERM (see %s)", st1, s.log_path);

    /* ---- receiver down + kill -9 + restart: still delivered */
    struct ts_server s2;
    ts_server_start(&s2, data2, "--webhook-retry-min 0.3 --webhook-retry-max-age 120");
    char secret_path[4400], secret[128] = "";
    snprintf(secret_path, sizeof(secret_path), "%s/webhook_secret", data2);
    struct stat sb;
    TS_CHECK(stat(secret_path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
             "generated secret file missing or not 0600");
    FILE *f = fopen(secret_path, "r");
    TS_CHECK(f && fgets(secret, sizeof(secret), f), "read secret");
    fclose(f);
    secret[strcspn(secret, "\n")] = '\0';
    TS_CHECK(strncmp(secret, "whsec_", 6) == 0, "secret '%s'", secret);

    char log2[4400];
    snprintf(log2, sizeof(log2), "%s/receiver2.jsonl", dir);
    int port2 = 0;
    int r2 = ts_receiver_start(secret, log2, NULL, &port2);
    ts_stop(r2); /* down: connections to port2 are refused */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/durable", port2);
    char *id4 = upload_raw(&s2, clip, PRESET, url, 202);
    wait_status(&s2, id4, "succeeded");
    double end = ts_now() + 20;
    int failed_attempts = 0;
    while (ts_now() < end && failed_attempts < 1) {
        json_t *l = deliveries(&s2, id4);
        json_t *dd = delivery_to(l, "/durable");
        failed_attempts = dd ? (int)json_array_size(json_object_get(dd, "attempts")) : 0;
        json_decref(l);
        ts_sleep_ms(50);
    }
    TS_CHECK(failed_attempts >= 1, "no failed attempt recorded while the receiver was down");
    int st = ts_server_stop(&s2, SIGKILL, 10);
    TS_CHECK(st == 128 + SIGKILL, "kill -9: status %d", st);
    char port_arg[16];
    snprintf(port_arg, sizeof(port_arg), "%d", port2);
    const char *extra[] = {"--port", port_arg, NULL};
    r2 = ts_receiver_start(secret, log2, extra, &port2);
    ts_server_start(&s2, data2, "--webhook-retry-min 0.3 --webhook-retry-max-age 120");
    json_t *dur = wait_delivered(log2, "/durable", id4, 1, 30);
    TS_CHECK(json_array_size(dur) >= 1, "not delivered after kill -9 and restart");
    check_verified(dur, "durable (generated secret reused after restart)");
    json_t *l = deliveries(&s2, id4);
    d = delivery_to(l, "/durable");
    TS_CHECK(d && strcmp(json_string_value(json_object_get(d, "id")) ?: "",
                         hdr(json_array_get(dur, 0), "webhook-id")) == 0,
             "webhook-id differs from the listed delivery id");
    json_decref(l);
    json_decref(dur);
    ts_sleep_ms(300); /* the 200 is recorded just after the answer */
    l = deliveries(&s2, id4);
    d = delivery_to(l, "/durable");
    at = json_object_get(d, "attempts");
    size_t na = json_array_size(at);
    TS_CHECK(na >= 2 &&
                 json_integer_value(json_object_get(json_array_get(at, na - 1), "http_status")) == 200 &&
                 json_is_null(json_object_get(json_array_get(at, 0), "http_status")) &&
                 strcmp(json_string_value(json_object_get(d, "status")) ?: "", "delivered") == 0,
             "durable attempts: %s", json_dumps(d, JSON_COMPACT));
    json_decref(l);
    st = ts_server_stop(&s2, SIGTERM, 30);
    TS_CHECK(st == 0, "restarted server exit status %d after SIGTERM (see %s)", st, s2.log_path);

    /* ---- --webhook-targets public: loopback refused by the connected address */
    char data3[4300];
    snprintf(data3, sizeof(data3), "%s/data3", dir);
    struct ts_server s3;
    ts_server_start(&s3, data3, "--webhook-secret " SECRET " --webhook-targets public");
    snprintf(url, sizeof(url), "http://localhost:%d/public-only", rport);
    char *id6 = upload_raw(&s3, clip, PRESET, url, 202);
    wait_status(&s3, id6, "succeeded");
    end = ts_now() + 20;
    const char *dstate = "";
    json_t *l3 = NULL;
    while (ts_now() < end) {
        json_decref(l3);
        l3 = deliveries(&s3, id6);
        d = delivery_to(l3, "/public-only");
        dstate = d ? json_string_value(json_object_get(d, "status")) ?: "" : "";
        if (strcmp(dstate, "failed") == 0)
            break;
        ts_sleep_ms(50);
    }
    at = json_object_get(d, "attempts");
    TS_CHECK(strcmp(dstate, "failed") == 0 && json_array_size(at) == 1 &&
                 strstr(json_string_value(json_object_get(json_array_get(at, 0), "error")) ?: "",
                        "not allowed"),
             "public-only delivery: %s", d ? json_dumps(d, JSON_COMPACT) : "(none)");
    json_decref(l3);
    json_t *po = requests_to(log_path, "/public-only", NULL);
    TS_CHECK(json_array_size(po) == 0, "a refused target was reached");
    json_decref(po);
    st = ts_server_stop(&s3, SIGTERM, 30);
    TS_CHECK(st == 0, "public server exit status %d", st);
    free(id6);

    /* ---- bad webhook flags: the server refuses to start, with a reason */
    static const struct { const char *flags, *want; } bad_flags[] = {
        {"--webhook-secret whsec_short", "--webhook-secret"},
        {"--webhook-secret notasecret", "--webhook-secret"},
        {"--webhook-targets private", "--webhook-targets"},
        {"--webhook-retry-min 0", "--webhook-retry-min"},
        {"--webhook-timeout x", "--webhook-timeout"},
    };
    for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
        char outb[2048];
        int rc = ts_run(outb, sizeof(outb), "'%s' serve --listen 127.0.0.1:0 --data-dir '%s' %s 2>&1",
                        ts_env("VIDQ_BIN"), data3, bad_flags[i].flags);
        TS_CHECK((rc == 1 || rc == 2) && strstr(outb, bad_flags[i].want),
                 "%s: exit %d: %s", bad_flags[i].flags, rc, outb);
    }

    ts_stop(r2);
    ts_stop(rpid);
    free(id1);
    free(id2);
    free(id3);
    free(id4);
    free(id5);
    free(dir);
    curl_global_cleanup();
    printf("test_hook_e2e: all checks passed\n");
    return 0;
}
