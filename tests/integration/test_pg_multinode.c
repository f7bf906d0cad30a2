/*
 * Several vidq nodes sharing one PostgreSQL database and one --data-dir
 * (run only on PostgreSQL: ctest it.test_pg_multinode.pg, under
 * tests/support/with_pg.sh). Two `vidq serve` on two loopback ports:
 *   - a job uploaded to A is polled, listed and downloaded through B; the
 *     event stream of a job on one node, read through the other, ends
 *     with its final status;
 *   - both nodes take jobs from the shared queue, never the same job twice
 *     (every job starts once, attempts 1);
 *   - a node started while another runs a job leaves it alone;
 *   - a cancel sent to the node that does not run the job stops it;
 *   - webhooks: every final event delivered exactly once (one webhook-id,
 *     one request) although both nodes' senders poll the same outbox;
 *   - kill -9 of the node running a job: the other node requeues it
 *     (attempts 2) and finishes it.
 * ctest-labels: integration
 * ctest-timeout: 300
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* A few seconds: the 10 s clip with a medium x264 preset. */
static const char MEDIUM[] = "[{\"name\":\"med\",\"container\":\"mp4\",\"video\":{\"codec\":"
                             "\"h264\",\"speed\":\"medium\"},\"audio\":{\"codec\":\"aac\"}}]";
static const char SLOW[] = "[{\"name\":\"slow\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"h264\",\"speed\":\"veryslow\"},\"audio\":{\"codec\":\"aac\"}}]";

static char *submit(struct ts_server *s, const char *clip, const char *outputs)
{
    char path[2048];
    char *esc = curl_easy_escape(NULL, outputs, 0);
    snprintf(path, sizeof(path), "/upload?outputs=%s", esc);
    curl_free(esc);
    struct ts_http r;
    ts_http_upload_raw(s, &r, path, ts_media(clip), "video/mp4", NULL);
    TS_CHECK(r.status == 202, "upload to %s: %ld %s", s->base, r.status, r.body);
    json_t *j = ts_http_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ts_http_free(&r);
    return id;
}

static const char *status_of(json_t *j) { return json_string_value(json_object_get(j, "status")); }
static long attempts_of(json_t *j) { return (long)json_integer_value(json_object_get(j, "attempts")); }

/* Times the server's log says "job started id=<id>". */
static int started_in(const struct ts_server *s, const char *id)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "job started id=%s ", id);
    char *log = ts_server_log(s);
    int n = 0;
    for (char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

static int log_has(const struct ts_server *s, const char *what)
{
    char *log = ts_server_log(s);
    int has = strstr(log, what) != NULL;
    free(log);
    return has;
}

/* Which of the two runs id (waits until one says it started). */
static int runner_of(struct ts_server *n[2], const char *id)
{
    double deadline = ts_now() + 30;
    while (ts_now() < deadline) {
        for (int k = 0; k < 2; k++)
            if (started_in(n[k], id) > 0)
                return k;
        ts_sleep_ms(50);
    }
    TS_CHECK(0, "no node started %s", id);
    return -1;
}

static void check_output(const struct ts_server *s, const char *id, const char *name,
                         const char *dir)
{
    char path[512], file[4400];
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/%s", id, name);
    snprintf(file, sizeof(file), "%s/dl-%s.mp4", dir, id);
    long st = ts_http_download(s, path, file);
    TS_CHECK(st == 200, "download %s through %s: %ld", path, s->base, st);
    json_t *p = ts_ffprobe(file);
    TS_CHECK(p && json_array_size(json_object_get(p, "streams")) == 2, "ffprobe %s", file);
    double dur = strtod(json_string_value(json_object_get(json_object_get(p, "format"),
                                                          "duration")) ?: "0",
                        NULL);
    TS_CHECK(dur > 9 && dur < 11, "duration %f", dur);
    json_decref(p);
    unlink(file);
}

/* The receiver's requests for job id's event type. */
static int deliveries(const char *log, const char *id, const char *type, char *msg_id,
                      size_t cap)
{
    json_t *all = ts_receiver_log(log);
    int n = 0;
    size_t i;
    json_t *req;
    json_array_foreach(all, i, req) {
        json_t *body = json_loads(json_string_value(json_object_get(req, "body")) ?: "", 0, NULL);
        const char *t = json_string_value(json_object_get(body, "type"));
        const char *jid = json_string_value(json_object_get(json_object_get(body, "data"), "id"));
        if (t && jid && strcmp(t, type) == 0 && strcmp(jid, id) == 0) {
            TS_CHECK(json_is_true(json_object_get(req, "verified")), "unverified delivery");
            const char *m = json_string_value(json_object_get(json_object_get(req, "headers"),
                                                              "webhook-id"));
            if (msg_id && m)
                snprintf(msg_id, cap, "%s", m);
            n++;
        }
        json_decref(body);
    }
    json_decref(all);
    return n;
}

static void wait_delivered(const char *log, const char *id, const char *type)
{
    double deadline = ts_now() + 20;
    while (ts_now() < deadline && deliveries(log, id, type, NULL, 0) == 0)
        ts_sleep_ms(100);
    TS_CHECK(deliveries(log, id, type, NULL, 0) > 0, "%s of %s never delivered", type, id);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *pg = getenv("VIDQ_TEST_PG_HOST");
    if (!pg || !*pg) {
        fprintf(stderr, "test_pg_multinode runs under tests/support/with_pg.sh only\n");
        return 1;
    }
    char *dir = ts_mkdtemp("pg-multinode");
    char url[4400], flags[5000], log[4400];
    snprintf(url, sizeof(url), "%s", ts_store_url(dir));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 3 --max-concurrent 1 --isolation process "
             "--webhook-secret " SECRET " --webhook-retry-min 0.2 --webhook-targets any",
             url);
    snprintf(log, sizeof(log), "%s/receiver.jsonl", dir);
    int rport = 0;
    int rpid = ts_receiver_start(SECRET, log, NULL, &rport);

    struct ts_server a, b, c;
    struct ts_server *nodes[2] = {&a, &b};
    ts_server_start(&a, dir, flags);
    ts_server_start(&b, dir, flags);
    TS_CHECK(a.port != b.port, "two ports");

    /* One global webhook, registered on A, seen by both. */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"url\":\"http://127.0.0.1:%d/all\",\"events\":[\"job.started\","
             "\"job.succeeded\",\"job.failed\",\"job.canceled\"]}",
             rport);
    struct ts_http r;
    ts_http(&a, &r, "POST", "/v1/webhooks", NULL, body, strlen(body));
    TS_CHECK(r.status == 201, "register webhook: %ld %s", r.status, r.body);
    ts_http_free(&r);
    ts_http(&b, &r, "GET", "/v1/webhooks", NULL, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, "/all"), "B lists A's webhook: %s", r.body);
    ts_http_free(&r);

    /* ---- a job uploaded to A, followed and downloaded through B */
    char *j1 = submit(&a, "h264_aac_640x360_10s.mp4", MEDIUM);
    json_t *j = ts_wait_job(&b, j1, 120);
    TS_CHECK(j && strcmp(status_of(j), "succeeded") == 0 && attempts_of(j) == 1,
             "j1 through B: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    check_output(&b, j1, "med", dir);
    check_output(&a, j1, "med", dir);
    ts_http(&b, &r, "GET", "/v1/jobs?limit=5", NULL, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, j1), "B lists j1: %s", r.body);
    ts_http_free(&r);

    /* ---- both nodes take from the queue: 4 jobs uploaded to A only */
    enum { N = 4 };
    char *q[N];
    for (int i = 0; i < N; i++)
        q[i] = submit(&a, "h264_aac_640x360_10s.mp4", MEDIUM);
    int first = runner_of(nodes, q[0]);
    /* The event stream of the last one, through the node that does not
     * run it, follows it to its end. */
    int last = runner_of(nodes, q[N - 1]);
    static char sse[8192];
    int rc = ts_run(sse, sizeof(sse), "curl -sN --max-time 120 %s/v1/jobs/%s/events | tail -c 4000",
                    nodes[1 - last]->base, q[N - 1]);
    TS_CHECK(rc == 0 && strstr(sse, "event: status") && strstr(sse, "\"succeeded\""),
             "event stream through the other node: %s", sse);
    int ran[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        j = ts_wait_job(i % 2 ? &a : &b, q[i], 180);
        TS_CHECK(j && strcmp(status_of(j), "succeeded") == 0 && attempts_of(j) == 1,
                 "queued job %d: %s", i, j ? json_dumps(j, 0) : "none");
        json_decref(j);
        int sa = started_in(&a, q[i]), sb = started_in(&b, q[i]);
        TS_CHECK(sa + sb == 1, "job %d started %d+%d times", i, sa, sb);
        ran[0] += sa;
        ran[1] += sb;
    }
    printf("queue of %d: node A ran %d, node B ran %d (first on %c)\n", N, ran[0], ran[1],
           'A' + first);
    TS_CHECK(ran[0] > 0 && ran[1] > 0, "both nodes take jobs: A %d, B %d", ran[0], ran[1]);

    /* ---- cancel through the node that does not run the job */
    char *slow = submit(&b, "h264_aac_640x360_10s.mp4", SLOW);
    int owner = runner_of(nodes, slow);
    struct ts_server *other = nodes[1 - owner];
    /* A node that starts now (its start-up requeue) leaves it alone. */
    ts_server_start(&c, dir, flags);
    ts_sleep_ms(1500); /* a tick of its scheduler */
    j = ts_wait_status(&c, slow, "running", 5);
    TS_CHECK(j && strcmp(status_of(j), "running") == 0 && attempts_of(j) == 1,
             "a new node took over a live job: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    TS_CHECK(!log_has(&c, "requeued"), "a new node requeued a live node's job");
    TS_CHECK(ts_server_stop(&c, SIGTERM, 20) == 0, "the third node stops");
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", slow);
    double t0 = ts_now();
    ts_http(other, &r, "POST", path, NULL, NULL, 0);
    TS_CHECK(r.status == 202, "cancel via the other node: %ld %s", r.status, r.body);
    ts_http_free(&r);
    j = ts_wait_job(other, slow, 20);
    double took = ts_now() - t0;
    TS_CHECK(j && strcmp(status_of(j), "canceled") == 0, "canceled: %s",
             j ? json_dumps(j, 0) : "none");
    json_decref(j);
    printf("cancel through the other node took %.2f s\n", took);
    TS_CHECK(took < 5, "cancel took %.2f s", took);
    TS_CHECK(log_has(nodes[owner], "cancel requested id=") &&
                 log_has(nodes[owner], "through the store"),
             "the owner did not hear of the cancel through the store");
    char outdir[4400];
    snprintf(outdir, sizeof(outdir), "%s/outputs/%s", dir, slow);
    struct stat sb;
    double deadline = ts_now() + 5;
    while (ts_now() < deadline && stat(outdir, &sb) == 0)
        ts_sleep_ms(50);
    TS_CHECK(stat(outdir, &sb) != 0, "partial outputs of the canceled job remain");
    ts_http(other, &r, "POST", path, NULL, NULL, 0);
    TS_CHECK(r.status == 409, "second cancel: %ld", r.status);
    ts_http_free(&r);

    /* ---- webhooks: each final event exactly once across both senders */
    wait_delivered(log, j1, "job.succeeded");
    for (int i = 0; i < N; i++)
        wait_delivered(log, q[i], "job.succeeded");
    wait_delivered(log, slow, "job.canceled");
    ts_sleep_ms(1500); /* a duplicate would come by now (both poll every 200 ms) */
    TS_EXPECT(deliveries(log, j1, "job.succeeded", NULL, 0) == 1, "j1 delivered %d times",
              deliveries(log, j1, "job.succeeded", NULL, 0));
    for (int i = 0; i < N; i++)
        TS_EXPECT(deliveries(log, q[i], "job.succeeded", NULL, 0) == 1,
                  "job %d delivered %d times", i, deliveries(log, q[i], "job.succeeded", NULL, 0));
    TS_EXPECT(deliveries(log, slow, "job.canceled", NULL, 0) == 1, "cancel delivered %d times",
              deliveries(log, slow, "job.canceled", NULL, 0));
    for (int i = 0; i < N; i++)
        TS_EXPECT(deliveries(log, q[i], "job.started", NULL, 0) == 1,
                  "job.started of job %d: %d", i, deliveries(log, q[i], "job.started", NULL, 0));

    /* ---- kill -9 of the node running a job: the other one finishes it */
    char *k = submit(&a, "h264_aac_640x360_10s.mp4", MEDIUM);
    int victim = runner_of(nodes, k);
    struct ts_server *survivor = nodes[1 - victim];
    ts_sleep_ms(700);
    TS_CHECK(ts_server_stop(nodes[victim], SIGKILL, 10) == 128 + SIGKILL, "kill -9");
    t0 = ts_now();
    j = ts_wait_job(survivor, k, 120);
    TS_CHECK(j && strcmp(status_of(j), "succeeded") == 0 && attempts_of(j) == 2,
             "the killed node's job, finished by the other: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    char want[128];
    snprintf(want, sizeof(want), "job requeued id=%s (its node is gone)", k);
    TS_CHECK(log_has(survivor, want), "the survivor did not requeue %s", k);
    TS_CHECK(started_in(survivor, k) == 1, "the survivor started it once");
    check_output(survivor, k, "med", dir);
    wait_delivered(log, k, "job.succeeded");
    printf("kill -9: requeued and finished by the other node in %.1f s\n", ts_now() - t0);

    TS_CHECK(ts_server_stop(survivor, SIGTERM, 30) == 0, "the survivor stops cleanly");
    ts_stop(rpid);
    free(j1);
    for (int i = 0; i < N; i++)
        free(q[i]);
    free(slow);
    free(k);
    free(dir);
    curl_global_cleanup();
    if (ts_failures) {
        fprintf(stderr, "%d check(s) failed\n", ts_failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
