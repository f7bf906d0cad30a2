/*
 * test_fetch_jobs - jobs from a URL through the real server (API.md
 * "Inputs from a URL"): input_url as a JSON body, a query parameter and a
 * multipart field, answered 202 at once with input.url; the fetch phase
 * seen in progress (phase, bytes); a connection cut mid-way resumed with
 * Range; errors input_refused (default --fetch-targets public),
 * input_unreachable, unsupported_media, too_large; bad requests answered
 * 400 with nothing queued; cancel during the fetch; kill -9 of the server
 * during a fetch, then a restart: the job still succeeds.
 * The origin is tests/support/fetch_origin.py on loopback.
 * ctest-labels: integration
 * ctest-timeout: 240
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

static char dir[4096], origin_dir[4200], log_path[4200];
static int port;

static int log_has(const char *needle)
{
    char cmd[8400];
    snprintf(cmd, sizeof(cmd), "grep -qF -- '%s' '%s'", needle, log_path);
    return system(cmd) == 0;
}

/* POST a JSON body; the job id into id (or "" when not 202). */
static long post_json(const struct ts_server *s, const char *body, char *id, json_t **job)
{
    struct ts_http r;
    const char *h[] = {"Content-Type: application/json", NULL};
    ts_http(s, &r, "POST", "/v1/jobs", h, body, strlen(body));
    json_t *j = ts_http_json(&r);
    const char *v = json_string_value(json_object_get(j, "id"));
    snprintf(id, 32, "%s", r.status == 202 && v ? v : "");
    if (r.status != 202)
        fprintf(stderr, "POST %s -> %ld %s\n", body, r.status, r.body ? r.body : "");
    long st = r.status;
    if (job)
        *job = j;
    else
        json_decref(j);
    ts_http_free(&r);
    return st;
}

static const char *job_error(json_t *job)
{
    const char *c = json_string_value(json_object_get(json_object_get(job, "error"), "code"));
    return c ? c : "";
}

static void check_output(const struct ts_server *s, const char *id, const char *name)
{
    char path[256], file[4400];
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/%s", id, name);
    snprintf(file, sizeof(file), "%s/%s-%s", dir, id, name);
    TS_EXPECT(ts_http_download(s, path, file) == 200, "download %s", path);
    json_t *p = ts_ffprobe(file);
    TS_EXPECT(p && json_array_size(json_object_get(p, "streams")) >= 1, "ffprobe %s", file);
    json_decref(p);
}

static void three_ways(const struct ts_server *s)
{
    char body[1024], id[32], path[1024];
    json_t *job = NULL;
    /* JSON body, with a cut connection. */
    snprintf(body, sizeof(body),
             "{\"input_url\": \"http://127.0.0.1:%d/drop/in.mp4?after=60000\", "
             "\"preset\": [\"mp4-480p\"], \"metadata\": {\"k\": \"v\"}}", port);
    TS_EXPECT(post_json(s, body, id, &job) == 202, "json body");
    TS_EXPECT(strcmp(json_string_value(json_object_get(job, "status")), "queued") == 0, "queued");
    TS_EXPECT(json_is_string(json_object_get(json_object_get(job, "input"), "url")), "input.url");
    json_decref(job);
    char id_json[32];
    snprintf(id_json, sizeof(id_json), "%s", id);

    /* Query parameter, no body. */
    struct ts_http r;
    snprintf(path, sizeof(path), "/v1/jobs?preset=thumbnail&input_url=http%%3A%%2F%%2F127.0.0.1%%3A%d%%2Ffile%%2Fin.mp4", port);
    ts_http(s, &r, "POST", path, NULL, NULL, 0);
    TS_EXPECT(r.status == 202, "query: %ld %s", r.status, r.body);
    job = ts_http_json(&r);
    char id_query[32];
    snprintf(id_query, sizeof(id_query), "%s", json_string_value(json_object_get(job, "id")) ?: "");
    json_decref(job);
    ts_http_free(&r);

    /* Multipart text part. */
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/file/in.mp4", port);
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof(cmd), "curl -s -F input_url=%s -F preset=audio-m4a %s/v1/jobs", url, s->base);
    TS_EXPECT(ts_run(out, sizeof(out), "%s", cmd) == 0, "curl");
    job = json_loads(out, 0, NULL);
    char id_multi[32];
    snprintf(id_multi, sizeof(id_multi), "%s", json_string_value(json_object_get(job, "id")) ?: "");
    TS_EXPECT(id_multi[0], "multipart: %s", out);
    json_decref(job);

    const char *ids[] = {id_json, id_query, id_multi};
    const char *outs[] = {"mp4-480p", "thumbnail", "audio-m4a"};
    for (int i = 0; i < 3; i++) {
        job = ts_wait_job(s, ids[i], 90);
        const char *st = json_string_value(json_object_get(job, "status"));
        TS_EXPECT(st && strcmp(st, "succeeded") == 0, "%s: %s %s", ids[i], st ? st : "?", job_error(job));
        json_t *in = json_object_get(job, "input");
        TS_EXPECT(json_is_string(json_object_get(in, "url")) && json_is_string(json_object_get(in, "format")) &&
                      json_integer_value(json_object_get(in, "size")) > 0,
                  "input after the fetch: %s", json_dumps(in, 0));
        json_decref(job);
        check_output(s, ids[i], outs[i]);
    }
    TS_EXPECT(log_has("GET /drop/in.mp4?after=60000 range=bytes=60000-"), "no Range request");
}

static void failures(const struct ts_server *s)
{
    char body[1024], id[32];
    struct {
        const char *path;
        const char *code;
    } cases[] = {
        {"/status/404", "input_unreachable"},
        {"/file/notmedia.txt", "unsupported_media"},
        {"/huge", "too_large"},
        {"/redirect?to=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data", "input_refused"},
        {"/redirect?to=file%3A%2F%2F%2Fetc%2Fpasswd", "input_refused"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body), "{\"input_url\": \"http://127.0.0.1:%d%s\"}", port, cases[i].path);
        TS_EXPECT(post_json(s, body, id, NULL) == 202, "%s", cases[i].path);
        json_t *job = ts_wait_job(s, id, 60);
        TS_EXPECT(strcmp(json_string_value(json_object_get(job, "status")) ?: "", "failed") == 0 &&
                      strcmp(job_error(job), cases[i].code) == 0,
                  "%s: want %s, got %s", cases[i].path, cases[i].code, job_error(job));
        json_decref(job);
        char input[4400];
        snprintf(input, sizeof(input), "%s/data/inputs/%s", dir, id);
        TS_EXPECT(access(input, F_OK) != 0, "%s: an input was kept", cases[i].path);
    }
}

static void bad_requests(const struct ts_server *s)
{
    char id[32];
    const char *bodies[] = {
        "{\"input_url\": \"ftp://example.com/a.mp4\"}",
        "{\"input_url\": \"file:///etc/passwd\"}",
        "{\"input_url\": \"not a url\"}",
        "{\"input_url\": 5}",
        "{\"preset\": \"mp4-480p\"}",
        "[\"input_url\"]",
        "{\"input_url\": \"http://h/x\", \"preset\": \"nope\"}",
        "{\"input_url\": \"http://h/x\",",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        long st = post_json(s, bodies[i], id, NULL);
        TS_EXPECT(st == 400, "%s: %ld", bodies[i], st);
    }
    struct ts_http r;
    ts_http(s, &r, "POST", "/v1/jobs?input_url=http%3A%2F%2Fh%2Fx", (const char *[]){"Content-Type: video/mp4", NULL},
            "abc", 3);
    TS_EXPECT(r.status == 400, "query url with a body: %ld", r.status);
    ts_http_free(&r);
    char out[4096];
    ts_run(out, sizeof(out), "curl -s -F input_url=http://h/x -F file=@%s/in.mp4 %s/v1/jobs", origin_dir, s->base);
    TS_EXPECT(strstr(out, "bad_request") && strstr(out, "not both"), "file and url: %s", out);
    ts_http(s, &r, "GET", "/healthz", NULL, NULL, 0);
    TS_EXPECT(r.status == 200, "healthz after bad requests");
    ts_http_free(&r);
}

/* Default --fetch-targets public: loopback refused, the origin never asked. */
static void refused_by_default(void)
{
    struct ts_server s;
    char data[4400], body[512], id[32];
    snprintf(data, sizeof(data), "%s/public", dir);
    ts_server_start(&s, data, "--max-concurrent 1");
    const char *hosts[] = {"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        snprintf(body, sizeof(body), "{\"input_url\": \"http://%s:%d/file/in.mp4?refused=%zu\"}", hosts[i],
                 port, i);
        TS_EXPECT(post_json(&s, body, id, NULL) == 202, "%s", hosts[i]);
        json_t *job = ts_wait_job(&s, id, 30);
        TS_EXPECT(strcmp(job_error(job), "input_refused") == 0, "%s: %s", hosts[i], job_error(job));
        const char *msg = json_string_value(json_object_get(json_object_get(job, "error"), "message"));
        TS_EXPECT(msg && strstr(msg, "--fetch-targets"), "message: %s", msg ? msg : "");
        json_decref(job);
        char needle[64];
        snprintf(needle, sizeof(needle), "refused=%zu", i);
        TS_EXPECT(!log_has(needle), "%s reached the origin", hosts[i]);
    }
    ts_server_stop(&s, SIGTERM, 20);
}

static const char *phase_of(json_t *job)
{
    return json_string_value(json_object_get(json_object_get(job, "progress"), "phase")) ?: "";
}

/* Cancel while fetching; kill -9 while fetching, restart, success. */
static void cancel_and_crash(void)
{
    struct ts_server s;
    char data[4400], body[512], id[32], path[128];
    snprintf(data, sizeof(data), "%s/crash", dir);
    ts_server_start(&s, data, "--fetch-targets public+loopback --max-concurrent 1");
    snprintf(body, sizeof(body), "{\"input_url\": \"http://127.0.0.1:%d/slow/in.mp4?bps=60000\", \"preset\": \"thumbnail\"}", port);

    TS_EXPECT(post_json(&s, body, id, NULL) == 202, "slow job");
    json_t *job = ts_wait_status(&s, id, "running", 20);
    double t0 = ts_now();
    while (ts_now() - t0 < 10) { /* until some bytes are in */
        json_decref(job);
        job = ts_wait_status(&s, id, "running", 5);
        json_t *f = json_object_get(json_object_get(job, "progress"), "fetch");
        if (json_integer_value(json_object_get(f, "bytes")) > 0)
            break;
        ts_sleep_ms(200);
    }
    json_t *f = json_object_get(json_object_get(job, "progress"), "fetch");
    TS_EXPECT(strcmp(phase_of(job), "fetching") == 0 && json_integer_value(json_object_get(f, "bytes")) > 0 &&
                  json_integer_value(json_object_get(f, "total")) > 0,
              "progress while fetching: %s", json_dumps(json_object_get(job, "progress"), 0));
    json_decref(job);
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", id);
    struct ts_http r;
    ts_http(&s, &r, "POST", path, NULL, NULL, 0);
    ts_http_free(&r);
    t0 = ts_now();
    job = ts_wait_job(&s, id, 10);
    TS_EXPECT(strcmp(json_string_value(json_object_get(job, "status")) ?: "", "canceled") == 0 && ts_now() - t0 < 3,
              "cancel during the fetch: %s after %.1fs", json_string_value(json_object_get(job, "status")),
              ts_now() - t0);
    json_decref(job);

    TS_EXPECT(post_json(&s, body, id, NULL) == 202, "slow job 2");
    job = ts_wait_status(&s, id, "running", 20);
    json_decref(job);
    ts_sleep_ms(1500);
    ts_server_stop(&s, SIGKILL, 5);
    ts_server_start(&s, data, "--fetch-targets public+loopback --max-concurrent 1");
    job = ts_wait_job(&s, id, 90);
    TS_EXPECT(strcmp(json_string_value(json_object_get(job, "status")) ?: "", "succeeded") == 0 &&
                  json_integer_value(json_object_get(job, "attempts")) == 2,
              "after kill -9: %s attempts %lld %s", json_string_value(json_object_get(job, "status")),
              (long long)json_integer_value(json_object_get(job, "attempts")), job_error(job));
    json_decref(job);
    check_output(&s, id, "thumbnail");
    ts_server_stop(&s, SIGTERM, 20);
}

int main(void)
{
    const char *src = ts_env("VIDQ_SRC");
    char *tmp = ts_mkdtemp("fetch_jobs");
    char script[4200], line[128];
    snprintf(dir, sizeof(dir), "%s", tmp);
    free(tmp);
    snprintf(origin_dir, sizeof(origin_dir), "%s/origin", dir);
    snprintf(log_path, sizeof(log_path), "%s/origin.log", dir);
    snprintf(script, sizeof(script), "%s/tests/support/fetch_origin.py", src);
    TS_CHECK(ts_run(NULL, 0, "mkdir -p '%s' && cp '%s' '%s/in.mp4' && echo 'not media at all' > '%s/notmedia.txt'",
                    origin_dir, ts_media("h264_aac_640x360.mp4"), origin_dir, origin_dir) == 0, "origin dir");
    char *argv[] = {"python3", script, origin_dir, log_path, NULL};
    int pid = ts_spawn_line(argv, line, sizeof(line), 10);
    TS_CHECK(pid > 0 && sscanf(line, "port %d", &port) == 1, "origin did not start: %s", line);

    struct ts_server s;
    char data[4400];
    snprintf(data, sizeof(data), "%s/data", dir);
    ts_server_start(&s, data, "--fetch-targets public+loopback");
    three_ways(&s);
    failures(&s);
    bad_requests(&s);
    ts_server_stop(&s, SIGTERM, 20);
    refused_by_default();
    cancel_and_crash();

    ts_stop(pid);
    if (ts_failures)
        fprintf(stderr, "%d check(s) failed\n", ts_failures);
    return ts_failures ? 1 : 0;
}
