/* ts_nodes.c - see ts_nodes.h. */
#define _GNU_SOURCE
#include "ts_nodes.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

/* ------------------------------------------------------------ the frame */

void ts_pg_only(const char *test)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *pg = getenv("VIDQ_TEST_PG_HOST");
    if (!pg || !*pg) {
        fprintf(stderr, "%s runs under tests/support/with_pg.sh only\n", test);
        exit(1);
    }
}

char *ts_mkdtemp_store(const char *tag, char *url, size_t cap)
{
    char *dir = ts_mkdtemp(tag);
    snprintf(url, cap, "%s", ts_store_url(dir));
    return dir;
}

int ts_finish(char *dir, int remove)
{
    curl_global_cleanup();
    int rc = 0;
    if (ts_failures) {
        fprintf(stderr, "%d check(s) failed (logs kept in %s)\n", ts_failures,
                dir ? dir : "-");
        rc = 1;
        goto out;
    }
    if (remove && dir)
        ts_run(NULL, 0, "rm -rf '%s'", dir); /* inputs and outputs of the test's jobs */
    printf("ok\n");
out:
    free(dir);
    return rc;
}

char *ts_start_isolated(struct ts_server *s, const char *tag, const char *isolation,
                        const char *flags)
{
    char name[128], all[1024];
    snprintf(name, sizeof(name), "%s-%s", tag, isolation);
    char *dir = ts_mkdtemp(name);
    snprintf(all, sizeof(all), "--isolation %s %s", isolation, flags ? flags : "");
    ts_server_start(s, dir, all);
    return dir;
}

void ts_serving_then_stop(struct ts_server *s, double timeout_s)
{
    struct ts_http r;
    ts_http(s, &r, "GET", "/healthz", s->auth, NULL, 0);
    TS_EXPECT(r.status == 200, "healthz of %s: %ld", s->base, r.status);
    ts_http_free(&r);
    int code = ts_server_stop(s, SIGTERM, timeout_s);
    TS_EXPECT(code == 0, "server %s exit %d", s->base, code);
}

/* ------------------------------------------------------------ jobs */

const char *ts_jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

const char *ts_job_status(json_t *job) { return ts_jstr(job, "status"); }

long ts_job_attempts(json_t *job)
{
    return (long)json_integer_value(json_object_get(job, "attempts"));
}

char *ts_submit(const struct ts_server *s, const char *clip, const char *query, long want,
                json_t **answer)
{
    struct ts_http r;
    ts_http_upload_raw(s, &r, query, ts_media(clip), "video/mp4", s->auth);
    TS_CHECK(r.status == want, "upload %s to %s: want %ld, got %ld %s", query, s->base, want,
             r.status, r.body);
    json_t *j = ts_http_json(&r);
    char *id = NULL;
    if (r.status == 202) {
        const char *v = ts_jstr(j, "id");
        TS_CHECK(v, "upload to %s: no id in %s", s->base, r.body);
        id = strdup(v);
    }
    ts_http_free(&r);
    if (answer)
        *answer = j;
    else
        json_decref(j);
    return id;
}

char *ts_submit_outputs(const struct ts_server *s, const char *clip, const char *outputs,
                        const char *extra, long want, json_t **answer)
{
    char *esc = curl_easy_escape(NULL, outputs, 0);
    TS_CHECK(esc, "escape outputs");
    size_t cap = strlen(esc) + (extra ? strlen(extra) : 0) + 32;
    char *query = malloc(cap);
    TS_CHECK(query, "out of memory");
    snprintf(query, cap, "/upload?outputs=%s%s", esc, extra ? extra : "");
    curl_free(esc);
    char *id = ts_submit(s, clip, query, want, answer);
    free(query);
    return id;
}

json_t *ts_job_get(const struct ts_server *s, const char *id, long *status)
{
    char path[256];
    snprintf(path, sizeof(path), "/status/%s", id);
    struct ts_http r;
    ts_http(s, &r, "GET", path, s->auth, NULL, 0);
    if (status)
        *status = r.status;
    json_t *j = r.status == 200 ? ts_http_json(&r) : NULL;
    ts_http_free(&r);
    return j;
}

json_t *ts_job_must(const struct ts_server *s, const char *id)
{
    long code = 0;
    json_t *j = ts_job_get(s, id, &code);
    TS_CHECK(j, "GET /status/%s through %s: %ld", id, s->base, code);
    return j;
}

void ts_job_cancel(const struct ts_server *s, const char *id, int allow_final)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", id);
    struct ts_http r;
    ts_http(s, &r, "POST", path, s->auth, NULL, 0);
    TS_CHECK(r.status == 200 || r.status == 202 || (allow_final && r.status == 409),
             "cancel %s through %s: %ld %s", id, s->base, r.status, r.body);
    ts_http_free(&r);
}

/* queue_position of a job object: -1 when it has none. */
static long position_of(json_t *job)
{
    json_t *p = json_object_get(job, "queue_position");
    return json_is_integer(p) ? (long)json_integer_value(p) : -1;
}

long ts_queue_position(const struct ts_server *s, const char *id)
{
    json_t *j = ts_job_get(s, id, NULL);
    long pos = position_of(j);
    json_decref(j);
    return pos;
}

long ts_list_position(const struct ts_server *s, const char *list_path, const char *id)
{
    struct ts_http r;
    ts_http(s, &r, "GET", list_path, s->auth, NULL, 0);
    json_t *body = ts_http_json(&r);
    ts_http_free(&r);
    long pos = -2;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(body, "jobs"), i, o)
        if (ts_jstr(o, "id") && strcmp(ts_jstr(o, "id"), id) == 0)
            pos = position_of(o);
    json_decref(body);
    return pos;
}

void ts_wait_progress(const struct ts_server *s, const char *id, double min_pct,
                      double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    while (ts_now() < deadline) {
        json_t *j = ts_job_get(s, id, NULL);
        double pct = json_number_value(json_object_get(json_object_get(j, "progress"), "percent"));
        int running = ts_job_status(j) && strcmp(ts_job_status(j), "running") == 0;
        json_decref(j);
        if (running && pct > 0 && pct >= min_pct)
            return;
        ts_sleep_ms(20);
    }
    TS_CHECK(0, "job %s made no progress (>= %.1f%%) on %s", id, min_pct, s->base);
}

/* ------------------------------------------------------------ node logs */

int ts_log_count(const struct ts_server *s, const char *needle)
{
    char *log = ts_server_log(s);
    int n = 0;
    for (char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

int ts_log_has(const struct ts_server *s, const char *needle)
{
    return ts_log_count(s, needle) > 0;
}

int ts_started_count(const struct ts_server *s, const char *id)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "job started id=%s ", id);
    return ts_log_count(s, needle);
}

int ts_runner_of(struct ts_server *const nodes[], int n, const char *id, double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    for (;;) {
        for (int k = 0; k < n; k++)
            if (ts_started_count(nodes[k], id) > 0)
                return k;
        if (timeout_s <= 0)
            return -1;
        TS_CHECK(ts_now() < deadline, "no node started %s within %.0f s", id, timeout_s);
        ts_sleep_ms(30);
    }
}

pid_t ts_worker_pid(const struct ts_server *s, const char *id, double timeout_s)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "id=%s worker_pid=", id);
    double deadline = ts_now() + timeout_s;
    while (ts_now() < deadline) {
        char *log = ts_server_log(s);
        char *p = strstr(log, needle);
        pid_t pid = p ? (pid_t)strtol(p + strlen(needle), NULL, 10) : 0;
        free(log);
        if (pid > 0)
            return pid;
        ts_sleep_ms(20);
    }
    TS_CHECK(0, "no worker_pid logged for %s on %s", id, s->base);
    return 0;
}

/* ------------------------------------------------------------ webhooks */

int ts_hooks_start(const char *dir, const char *secret, char *log, size_t cap, int *port)
{
    snprintf(log, cap, "%s/receiver.jsonl", dir);
    return ts_receiver_start(secret, log, NULL, port);
}

void ts_hooks_register(const struct ts_server *s, int port, const char *events)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/all\",\"events\":%s}", port,
             events);
    struct ts_http r;
    ts_http(s, &r, "POST", "/v1/webhooks", s->auth, body, strlen(body));
    TS_CHECK(r.status == 201, "register webhook on %s: %ld %s", s->base, r.status, r.body);
    ts_http_free(&r);
}

int ts_deliveries(const char *log, const char *id, const char *type)
{
    json_t *all = ts_receiver_log(log);
    int n = 0;
    size_t i;
    json_t *req;
    json_array_foreach(all, i, req) {
        json_t *body = json_loads(ts_jstr(req, "body") ?: "", 0, NULL);
        const char *t = ts_jstr(body, "type");
        const char *jid = ts_jstr(json_object_get(body, "data"), "id");
        if (t && jid && strcmp(t, type) == 0 && strcmp(jid, id) == 0) {
            TS_EXPECT(json_is_true(json_object_get(req, "verified")),
                      "unverified delivery of %s %s", type, id);
            n++;
        }
        json_decref(body);
    }
    json_decref(all);
    return n;
}

void ts_wait_delivered(const char *log, const char *id, const char *type, double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    while (ts_now() < deadline && ts_deliveries(log, id, type) == 0)
        ts_sleep_ms(100);
    TS_EXPECT(ts_deliveries(log, id, type) > 0, "%s of %s never delivered", type, id);
}

/* ------------------------------------------------------------ files */

void ts_sha256_file(const char *file, char out[65])
{
    char line[256] = "";
    out[0] = '\0';
    if (ts_run(line, sizeof(line), "sha256sum '%s' 2>/dev/null", file) == 0 && strlen(line) >= 64)
        snprintf(out, 65, "%.64s", line);
}

void ts_download_sha(const struct ts_server *s, const char *id, const char *name,
                     const char *dir, char out[65])
{
    char path[512], file[4400];
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/%s", id, name);
    snprintf(file, sizeof(file), "%s/dl-%s-%d", dir, id, s->port);
    long st = ts_http_download(s, path, file);
    TS_CHECK(st == 200, "download %s through %s: %ld", path, s->base, st);
    ts_sha256_file(file, out);
    TS_CHECK(out[0], "no checksum of %s", file);
    unlink(file);
}

int ts_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static pid_t *exit_pids;
static int n_exit_pids;

static void kill_exit_pids(void)
{
    for (int i = 0; i < n_exit_pids; i++)
        if (exit_pids[i] > 0 && kill(exit_pids[i], 0) == 0) {
            kill(exit_pids[i], SIGKILL);
            kill(exit_pids[i], SIGCONT);
        }
}

void ts_kill_at_exit(pid_t *pids, int n)
{
    exit_pids = pids;
    n_exit_pids = n;
    atexit(kill_exit_pids);
}

/* ------------------------------------------------------------ tus uploads */

void ts_b64(const char *in, char *out, size_t cap)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    if (cap)
        out[o] = '\0';
}

char *ts_tus_create(const struct ts_server *s, long long length, const char *const *kv)
{
    char meta[4096] = "Upload-Metadata: ", len_h[64], enc[1024];
    for (int i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        ts_b64(kv[i + 1], enc, sizeof(enc));
        size_t n = strlen(meta);
        snprintf(meta + n, sizeof(meta) - n, "%s%s %s", i ? "," : "", kv[i], enc);
    }
    snprintf(len_h, sizeof(len_h), "Upload-Length: %lld", length);
    const char *hdrs[] = {"Tus-Resumable: 1.0.0", len_h, meta, NULL};
    struct ts_http r;
    ts_http(s, &r, "POST", "/v1/uploads/", hdrs, NULL, 0);
    char *loc = ts_http_header(&r, "Location");
    TS_CHECK(r.status == 201 && loc, "create on %s: %ld %s", s->base, r.status, r.body);
    ts_http_free(&r);
    return loc;
}

long ts_tus_patch(const struct ts_server *s, const char *loc, long long off, const void *body,
                  size_t len, long long *new_off)
{
    char off_h[64];
    snprintf(off_h, sizeof(off_h), "Upload-Offset: %lld", off);
    const char *hdrs[] = {"Tus-Resumable: 1.0.0", "Content-Type: application/offset+octet-stream",
                          off_h, NULL};
    struct ts_http r;
    ts_http(s, &r, "PATCH", loc, hdrs, body, len);
    char *v = ts_http_header(&r, "Upload-Offset");
    if (new_off)
        *new_off = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    long st = r.status;
    ts_http_free(&r);
    return st;
}

long ts_tus_head(const struct ts_server *s, const char *loc, long long *off)
{
    const char *hdrs[] = {"Tus-Resumable: 1.0.0", NULL};
    struct ts_http r;
    ts_http(s, &r, "HEAD", loc, hdrs, NULL, 0);
    char *v = ts_http_header(&r, "Upload-Offset");
    *off = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    long st = r.status;
    ts_http_free(&r);
    return st;
}
