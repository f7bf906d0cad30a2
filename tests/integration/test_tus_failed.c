/*
 * A complete tus upload that is refused is a real failed job: a non-media
 * file uploaded through /v1/uploads/ in two PATCHes (between them GET
 * /status answers 404 "incomplete: N of M bytes" and /v1/jobs does not list
 * it; the last one still answers 204 with Upload-Offset = Upload-Length:
 * its bytes were stored before the probe refused them), then
 *   - GET /status/<id> and /v1/jobs/<id>: status failed, error.code
 *     unsupported_media with a message, the upload's filename, size and
 *     metadata, finished_at set, attempts 0;
 *   - GET /v1/jobs (all, and ?status=failed) lists it; /metrics counts it;
 *   - a global webhook and the upload's webhook_url (Upload-Metadata) each
 *     get one job.failed, verified by the reference receiver
 *     (tests/support/webhook_receiver.js); /v1/jobs/<id>/deliveries lists it;
 *   - its bytes are gone (uploads/<id>.bin, inputs/<id>);
 *   - a second PATCH gets 409, HEAD still answers the full offset;
 *   - a media file whose output does not fit it (audio-m4a of a video
 *     without audio) fails the same way with invalid_output and the probed
 *     input;
 *   - after a restart the jobs are read back from the store (no second
 *     webhook), and a refusal whose job was never stored (a crash between
 *     the two writes, simulated by a hand-written record) becomes a failed
 *     job at start, with its job.failed.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ts_nodes.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static char log_path[4300], rbase[64];

/* The whole file (malloc'd); *size its length. */
static char *slurp(const char *file, long *size)
{
    FILE *f = fopen(file, "rb");
    TS_CHECK(f, "open %s", file);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*size);
    TS_CHECK(buf && fread(buf, 1, (size_t)*size, f) == (size_t)*size, "read %s", file);
    fclose(f);
    return buf;
}

/* Upload a whole file in two PATCHes; returns the upload id (malloc'd). */
static char *upload_file(const struct ts_server *s, const char *file, const char *const *kv)
{
    long size = 0;
    char *buf = slurp(file, &size);
    char *loc = ts_tus_create(s, size, kv);
    long long off = -1;
    long half = size / 2;
    TS_CHECK(ts_tus_patch(s, loc, 0, buf, (size_t)half, &off) == 204 && off == half, "first PATCH");
    /* incomplete: no job yet; /status says how far it got */
    char path[256], want[128];
    snprintf(path, sizeof(path), "/status/%s", loc + strlen("/v1/uploads/"));
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0);
    snprintf(want, sizeof(want), "incomplete: %ld of %ld bytes", half, size);
    TS_EXPECT(r.status == 404 && strstr(r.body, "\"code\":\"not_found\"") && strstr(r.body, want),
              "status of an incomplete upload: %ld %s", r.status, r.body);
    ts_http_free(&r);
    ts_http(s, &r, "GET", "/v1/jobs?limit=100", NULL, NULL, 0);
    TS_EXPECT(r.status == 200 && !strstr(r.body, loc + strlen("/v1/uploads/")),
              "an incomplete upload is listed: %s", r.body);
    ts_http_free(&r);
    /* the last PATCH answers 204 with the full offset, refused or not */
    TS_CHECK(ts_tus_patch(s, loc, half, buf + half, (size_t)(size - half), &off) == 204 && off == size,
             "last PATCH: offset %lld of %ld", off, size);
    free(buf);
    char *id = strdup(loc + strlen("/v1/uploads/"));
    free(loc);
    return id;
}

static json_t *get_json(const struct ts_server *s, const char *path, long want)
{
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0);
    TS_CHECK(r.status == want, "GET %s: %ld %s", path, r.status, r.body);
    json_t *j = ts_http_json(&r);
    TS_CHECK(j, "GET %s: not JSON: %s", path, r.body);
    ts_http_free(&r);
    return j;
}

static const char *jstr(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    return json_string_value(v) ? json_string_value(v) : "";
}

/* The job as GET /status/<id> and /v1/jobs/<id> show it: failed with code. */
static json_t *expect_failed(const struct ts_server *s, const char *id, const char *code)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/jobs/%s", id);
    json_t *a = get_json(s, path, 200);
    snprintf(path, sizeof(path), "/status/%s", id);
    json_t *j = get_json(s, path, 200);
    TS_EXPECT(strcmp(jstr(j, "id", NULL), id) == 0, "id %s", jstr(j, "id", NULL));
    TS_EXPECT(strcmp(jstr(j, "status", NULL), "failed") == 0, "status %s", jstr(j, "status", NULL));
    TS_EXPECT(strcmp(jstr(j, "error", "code"), code) == 0, "error.code %s (want %s)",
              jstr(j, "error", "code"), code);
    TS_EXPECT(strlen(jstr(j, "error", "message")) > 10, "no error message");
    TS_EXPECT(json_is_string(json_object_get(j, "finished_at")), "no finished_at");
    TS_EXPECT(json_integer_value(json_object_get(j, "attempts")) == 0, "attempts");
    TS_EXPECT(json_equal(json_object_get(a, "error"), json_object_get(j, "error")),
              "/v1/jobs/<id> and /status/<id> differ");
    json_decref(a);
    return j;
}

/* 1 if GET /v1/jobs<query> lists id. */
static int listed(const struct ts_server *s, const char *query, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs%s", query);
    json_t *l = get_json(s, path, 200);
    size_t i;
    json_t *o;
    int found = 0;
    json_array_foreach(json_object_get(l, "jobs"), i, o) found |=
        strcmp(jstr(o, "id", NULL), id) == 0 && strcmp(jstr(o, "status", NULL), "failed") == 0;
    json_decref(l);
    return found;
}

/* Verified job.failed deliveries of id to path (waits up to wait_s for
 * want of them). */
static int failed_events(const char *path, const char *id, const char *code, int want,
                         double wait_s)
{
    int n = 0;
    for (int tries = 0; tries < wait_s * 10; tries++) {
        json_t *all = ts_receiver_log(log_path);
        size_t i;
        json_t *o;
        n = 0;
        json_array_foreach(all, i, o)
        {
            if (strcmp(jstr(o, "path", NULL), path) != 0)
                continue;
            json_t *b = json_loads(jstr(o, "body", NULL), 0, NULL);
            json_t *d = json_object_get(b, "data");
            if (strcmp(jstr(b, "type", NULL), "job.failed") == 0 &&
                strcmp(jstr(d, "id", NULL), id) == 0) {
                TS_EXPECT(json_is_true(json_object_get(o, "verified")), "unverified delivery");
                TS_EXPECT(strcmp(jstr(d, "error", "code"), code) == 0, "event error.code %s",
                          jstr(d, "error", "code"));
                TS_EXPECT(strcmp(jstr(d, "status", NULL), "failed") == 0, "event status");
                n++;
            }
            json_decref(b);
        }
        json_decref(all);
        if (n >= want)
            break;
        ts_sleep_ms(100);
    }
    return n;
}

static int exists(const char *dir, const char *sub, const char *name)
{
    char p[8300];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s/%s", dir, sub, name);
    return stat(p, &st) == 0;
}

/* An upload whose creation passed the queue cap is queued when its last
 * byte lands, even if the queue has filled up meanwhile: the client was
 * told yes, and its bytes are not thrown away for a cap it already met. */
static void accepted_despite_full_queue(const char *dir)
{
    char data[4300];
    snprintf(data, sizeof(data), "%s/data-full", dir);
    struct ts_server s;
    ts_server_start(&s, data, "--max-concurrent 1 --max-queued 1 --shutdown-grace 1");
    const char *file = ts_media("h264_aac_640x360.mp4");
    long size = 0;
    char *buf = slurp(file, &size);
    const char *kv[] = {"filename", "late.mp4", "preset", "audio-m4a", NULL};
    char *loc = ts_tus_create(&s, size, kv);
    long long off = -1;
    TS_CHECK(ts_tus_patch(&s, loc, 0, buf, (size_t)(size / 2), &off) == 204, "first PATCH");

    /* Fill the queue: one job runs (a slow one: x265 veryslow, so that it
     * still runs at the last PATCH), one waits; a third is 429. */
    struct ts_http r;
    char *running = ts_submit_outputs(&s, "h264_aac_640x360_10s.mp4",
                                      "[{\"name\":\"slow\",\"container\":\"mp4\",\"video\":"
                                      "{\"codec\":\"hevc\",\"speed\":\"veryslow\"},\"audio\":null}]",
                                      NULL, 202, NULL);
    json_decref(ts_wait_status(&s, running, "running", 30));
    free(running);
    free(ts_submit(&s, "h264_aac_640x360_10s.mp4", "/upload?preset=hevc-1080p", 202, NULL));
    ts_http_upload_raw(&s, &r, "/upload?preset=audio-m4a", file, "video/mp4", NULL);
    TS_CHECK(r.status == 429, "the queue is not full: %ld %s", r.status, r.body);
    ts_http_free(&r);

    TS_CHECK(ts_tus_patch(&s, loc, size / 2, buf + size / 2, (size_t)(size - size / 2), &off) == 204 &&
                 off == size,
             "last PATCH with the queue full: offset %lld", off);
    char path[256];
    snprintf(path, sizeof(path), "/status/%s", loc + strlen("/v1/uploads/"));
    json_t *j = get_json(&s, path, 200);
    TS_EXPECT(strcmp(jstr(j, "status", NULL), "queued") == 0,
              "a complete upload refused for a full queue: %s", json_dumps(j, 0));
    json_decref(j);
    TS_EXPECT(exists(data, "inputs", loc + strlen("/v1/uploads/")), "its bytes are gone");
    TS_CHECK(ts_server_stop(&s, SIGTERM, 20) == 0, "server exit");
    free(buf);
    free(loc);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = ts_mkdtemp("tus_failed");
    char data[4300], noise[4300], url[256], body[512];
    snprintf(log_path, sizeof(log_path), "%s/receiver.jsonl", dir);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(noise, sizeof(noise), "%s/noise.bin", dir);
    int rport = 0;
    int rpid = ts_receiver_start(SECRET, log_path, NULL, &rport);
    snprintf(rbase, sizeof(rbase), "http://127.0.0.1:%d", rport);
    struct ts_server s;
    ts_server_start(&s, data, "--webhook-secret " SECRET " --webhook-retry-min 0.2");
    struct ts_http r;

    /* a global webhook for job.failed */
    snprintf(body, sizeof(body), "{\"url\":\"%s/global\",\"events\":[\"job.failed\"]}", rbase);
    const char *jh[] = {"Content-Type: application/json", NULL};
    ts_http(&s, &r, "POST", "/v1/webhooks", jh, body, strlen(body));
    TS_CHECK(r.status == 201, "global webhook: %ld %s", r.status, r.body);
    ts_http_free(&r);

    /* ---- 1. not media */
    TS_CHECK(ts_run(NULL, 0, "head -c 150000 /dev/urandom > '%s'", noise) == 0, "noise");
    snprintf(url, sizeof(url), "%s/perjob", rbase);
    const char *kv[] = {"filename", "noise.bin", "preset",        "mp4-480p", "webhook_url",
                        url,        "metadata",  "{\"k\":\"v\"}", NULL};
    char *id = upload_file(&s, noise, kv);
    json_t *j = expect_failed(&s, id, "unsupported_media");
    json_t *in = json_object_get(j, "input");
    TS_EXPECT(strcmp(jstr(in, "filename", NULL), "noise.bin") == 0, "filename %s",
              jstr(in, "filename", NULL));
    TS_EXPECT(json_integer_value(json_object_get(in, "size")) == 150000, "size");
    TS_EXPECT(strcmp(jstr(j, "metadata", "k"), "v") == 0, "metadata lost");
    TS_EXPECT(strstr(jstr(j, "error", "message"), "not a decodable audio/video file"), "message %s",
              jstr(j, "error", "message"));
    json_decref(j);
    TS_EXPECT(listed(&s, "", id), "not in GET /v1/jobs");
    TS_EXPECT(listed(&s, "?status=failed", id), "not in GET /v1/jobs?status=failed");
    TS_EXPECT(!exists(data, "uploads", id) && !exists(data, "inputs", id), "bytes kept");
    char bin[128];
    snprintf(bin, sizeof(bin), "%s.bin", id);
    TS_EXPECT(!exists(data, "uploads", bin), "uploads/%s kept", bin);
    TS_EXPECT(failed_events("/global", id, "unsupported_media", 1, 15) == 1, "global job.failed");
    TS_EXPECT(failed_events("/perjob", id, "unsupported_media", 1, 15) == 1, "per-job job.failed");
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/deliveries", id);
    j = get_json(&s, path, 200);
    TS_EXPECT(json_array_size(json_object_get(j, "deliveries")) == 2, "deliveries: %zu",
              json_array_size(json_object_get(j, "deliveries")));
    json_decref(j);
    /* the upload itself: complete (HEAD), no more PATCH */
    char loc[128];
    snprintf(loc, sizeof(loc), "/v1/uploads/%s", id);
    const char *th[] = {"Tus-Resumable: 1.0.0", NULL};
    ts_http(&s, &r, "HEAD", loc, th, NULL, 0);
    char *off = ts_http_header(&r, "Upload-Offset");
    TS_EXPECT(r.status == 200 && off && strcmp(off, "150000") == 0, "HEAD: %ld %s", r.status,
              off ? off : "-");
    free(off);
    ts_http_free(&r);
    TS_EXPECT(ts_tus_patch(&s, loc, 150000, "x", 1, NULL) == 409, "PATCH after the end");
    ts_http(&s, &r, "GET", "/metrics", NULL, NULL, 0);
    TS_EXPECT(strstr(r.body, "vidq_jobs{status=\"failed\"} 1\n"), "metrics: failed not counted");
    ts_http_free(&r);

    /* ---- 2. media whose output does not fit it: audio of a silent video */
    const char *kv2[] = {"filename", "v.mp4", "preset", "audio-m4a", NULL};
    char *id2 = upload_file(&s, ts_media("video_only.mp4"), kv2);
    j = expect_failed(&s, id2, "invalid_output");
    TS_EXPECT(json_is_object(json_object_get(json_object_get(j, "input"), "video")),
              "the probed input is not shown");
    json_decref(j);
    TS_EXPECT(!exists(data, "inputs", id2), "refused media kept");
    TS_EXPECT(failed_events("/global", id2, "invalid_output", 1, 15) == 1, "global job.failed (2)");

    /* ---- 3. restart: read back from the store; a refusal whose job was
     * never stored (hand-written record) becomes one at start */
    int st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "server exit %d", st);
    const char *rid = "refusedAAAAAAAAAAAAAAA";
    char rec[8400];
    snprintf(rec, sizeof(rec), "%s/uploads/%s.json", data, rid);
    FILE *f = fopen(rec, "w");
    TS_CHECK(f, "write %s", rec);
    double now = (double)time(NULL);
    char fn[64];
    ts_b64("crash.bin", fn, sizeof(fn));
    fprintf(f,
            "{\"id\":\"%s\",\"offset\":9,\"length\":9,\"created_at\":%.0f,\"expires_at\":%.0f,"
            "\"finished_at\":%.0f,\"phase\":\"failed\",\"metadata\":\"filename %s\","
            "\"error_code\":\"unsupported_media\",\"error_message\":\"the upload is not a "
            "decodable audio/video file: test\"}",
            rid, now, now + 3600, now, fn);
    fclose(f);
    ts_server_start(&s, data, "--webhook-secret " SECRET " --webhook-retry-min 0.2");
    json_decref(expect_failed(&s, id, "unsupported_media"));
    json_decref(expect_failed(&s, id2, "invalid_output"));
    j = expect_failed(&s, rid, "unsupported_media");
    TS_EXPECT(strcmp(jstr(json_object_get(j, "input"), "filename", NULL), "crash.bin") == 0,
              "recovered filename");
    json_decref(j);
    TS_EXPECT(listed(&s, "?status=failed", rid), "recovered job not listed");
    TS_EXPECT(failed_events("/global", rid, "unsupported_media", 1, 15) == 1,
              "recovered job.failed");
    /* no second event for the first ones; a second start adds no job */
    TS_EXPECT(failed_events("/global", id, "unsupported_media", 2, 1) == 1, "job.failed repeated");
    st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "server exit %d", st);
    ts_server_start(&s, data, "--webhook-secret " SECRET);
    TS_EXPECT(failed_events("/global", rid, "unsupported_media", 2, 1) == 1, "recovery ran twice");

    /* the server kept serving */
    ts_serving_then_stop(&s, 20);
    ts_stop(rpid);
    accepted_despite_full_queue(dir);
    free(id);
    free(id2);
    return ts_finish(dir, 0);
}
