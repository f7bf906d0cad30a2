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

#include "ts_nodes.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

#define CLIP10 "h264_aac_640x360_10s.mp4"

static char *submit(struct ts_server *s, const char *outputs)
{
    return ts_submit_outputs(s, CLIP10, outputs, NULL, 202, NULL);
}

/* Which of the two runs id (waits until one says it started). */
static int runner_of(struct ts_server *n[2], const char *id) { return ts_runner_of(n, 2, id, 30); }

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

int main(void)
{
    ts_pg_only("test_pg_multinode");
    char url[4400], flags[5000], log[4400];
    char *dir = ts_mkdtemp_store("pg-multinode", url, sizeof(url));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 3 --max-concurrent 1 --isolation process "
             TS_WEBHOOK_FLAGS(SECRET), url);
    int rport = 0;
    int rpid = ts_hooks_start(dir, SECRET, log, sizeof(log), &rport);

    struct ts_server a, b, c;
    struct ts_server *nodes[2] = {&a, &b};
    ts_server_start(&a, dir, flags);
    ts_server_start(&b, dir, flags);
    TS_CHECK(a.port != b.port, "two ports");

    /* One global webhook, registered on A, seen by both. */
    ts_hooks_register(&a, rport,
                      "[\"job.started\",\"job.succeeded\",\"job.failed\",\"job.canceled\"]");
    struct ts_http r;
    ts_http(&b, &r, "GET", "/v1/webhooks", NULL, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, "/all"), "B lists A's webhook: %s", r.body);
    ts_http_free(&r);

    /* ---- a job uploaded to A, followed and downloaded through B */
    char *j1 = submit(&a, TS_OUTPUTS_MEDIUM);
    json_t *j = ts_wait_job(&b, j1, 120);
    TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 1,
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
        q[i] = submit(&a, TS_OUTPUTS_MEDIUM);
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
        TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 1,
                 "queued job %d: %s", i, j ? json_dumps(j, 0) : "none");
        json_decref(j);
        int sa = ts_started_count(&a, q[i]), sb = ts_started_count(&b, q[i]);
        TS_CHECK(sa + sb == 1, "job %d started %d+%d times", i, sa, sb);
        ran[0] += sa;
        ran[1] += sb;
    }
    printf("queue of %d: node A ran %d, node B ran %d (first on %c)\n", N, ran[0], ran[1],
           'A' + first);
    TS_CHECK(ran[0] > 0 && ran[1] > 0, "both nodes take jobs: A %d, B %d", ran[0], ran[1]);

    /* ---- cancel through the node that does not run the job */
    char *slow = submit(&b, TS_OUTPUTS_SLOW);
    int owner = runner_of(nodes, slow);
    struct ts_server *other = nodes[1 - owner];
    /* A node that starts now (its start-up requeue) leaves it alone. */
    ts_server_start(&c, dir, flags);
    ts_sleep_ms(1500); /* a tick of its scheduler */
    j = ts_wait_status(&c, slow, "running", 5);
    TS_CHECK(j && strcmp(ts_job_status(j), "running") == 0 && ts_job_attempts(j) == 1,
             "a new node took over a live job: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    TS_CHECK(!ts_log_has(&c, "requeued"), "a new node requeued a live node's job");
    TS_CHECK(ts_server_stop(&c, SIGTERM, 20) == 0, "the third node stops");
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", slow);
    double t0 = ts_now();
    ts_http(other, &r, "POST", path, NULL, NULL, 0);
    TS_CHECK(r.status == 202, "cancel via the other node: %ld %s", r.status, r.body);
    ts_http_free(&r);
    j = ts_wait_job(other, slow, 20);
    double took = ts_now() - t0;
    TS_CHECK(j && strcmp(ts_job_status(j), "canceled") == 0, "canceled: %s",
             j ? json_dumps(j, 0) : "none");
    json_decref(j);
    printf("cancel through the other node took %.2f s\n", took);
    TS_CHECK(took < 5, "cancel took %.2f s", took);
    TS_CHECK(ts_log_has(nodes[owner], "cancel requested id=") &&
                 ts_log_has(nodes[owner], "through the store"),
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
    ts_wait_delivered(log, j1, "job.succeeded", 20);
    for (int i = 0; i < N; i++)
        ts_wait_delivered(log, q[i], "job.succeeded", 20);
    ts_wait_delivered(log, slow, "job.canceled", 20);
    ts_sleep_ms(1500); /* a duplicate would come by now (both poll every 200 ms) */
    TS_EXPECT(ts_deliveries(log, j1, "job.succeeded") == 1, "j1 delivered %d times",
              ts_deliveries(log, j1, "job.succeeded"));
    for (int i = 0; i < N; i++)
        TS_EXPECT(ts_deliveries(log, q[i], "job.succeeded") == 1,
                  "job %d delivered %d times", i, ts_deliveries(log, q[i], "job.succeeded"));
    TS_EXPECT(ts_deliveries(log, slow, "job.canceled") == 1, "cancel delivered %d times",
              ts_deliveries(log, slow, "job.canceled"));
    for (int i = 0; i < N; i++)
        TS_EXPECT(ts_deliveries(log, q[i], "job.started") == 1,
                  "job.started of job %d: %d", i, ts_deliveries(log, q[i], "job.started"));

    /* ---- kill -9 of the node running a job: the other one finishes it */
    char *k = submit(&a, TS_OUTPUTS_MEDIUM);
    int victim = runner_of(nodes, k);
    struct ts_server *survivor = nodes[1 - victim];
    ts_sleep_ms(700);
    TS_CHECK(ts_server_stop(nodes[victim], SIGKILL, 10) == 128 + SIGKILL, "kill -9");
    t0 = ts_now();
    j = ts_wait_job(survivor, k, 120);
    TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 2,
             "the killed node's job, finished by the other: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    char want[128];
    snprintf(want, sizeof(want), "job requeued id=%s (its node is gone)", k);
    TS_CHECK(ts_log_has(survivor, want), "the survivor did not requeue %s", k);
    TS_CHECK(ts_started_count(survivor, k) == 1, "the survivor started it once");
    check_output(survivor, k, "med", dir);
    ts_wait_delivered(log, k, "job.succeeded", 20);
    printf("kill -9: requeued and finished by the other node in %.1f s\n", ts_now() - t0);

    TS_CHECK(ts_server_stop(survivor, SIGTERM, 30) == 0, "the survivor stops cleanly");
    ts_stop(rpid);
    free(j1);
    for (int i = 0; i < N; i++)
        free(q[i]);
    free(slow);
    free(k);
    return ts_finish(dir, 0);
}
