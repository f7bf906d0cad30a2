/*
 * Retention on several nodes (run only on PostgreSQL: ctest
 * it.test_pg_retention_nodes.pg, under tests/support/with_pg.sh). Two
 * `vidq serve` on one database and one --data-dir. DELETE
 * /v1/jobs/<id>/files done through one node must hold on the other one
 * too, although that node keeps ended jobs in its memory (the job it ran
 * itself, or one it read once): afterwards the job read through the other
 * node says "expired": true and its outputs answer 410 expired (API.md,
 * Retention), never 200 from a stale memory or a 404/500 for a file that
 * is gone. Both directions: deleted through the node that did not run the
 * job (read back through the one that did), and through the one that ran
 * it (read back through the other, which had read the job before).
 * Bad input through the node that does not hold the job: a DELETE of a
 * running job is 409 conflict and deletes nothing, an unknown id is 404,
 * and a second DELETE is 200 again.
 * ctest-labels: integration
 * ctest-timeout: 120
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

/* A few seconds of encoding: the 10 s clip with a slow x264 preset. */
static const char SLOW[] = "[{\"name\":\"slow\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"h264\",\"speed\":\"veryslow\"},\"audio\":null}]";

static char *submit(struct ts_server *s, const char *query)
{
    return ts_submit(s, "h264_aac_640x360.mp4", query, 202, NULL);
}

static const char *str(json_t *j, const char *k) { return ts_jstr(j, k); }

/* GET path through s: the status, and the body's "expired" (-1 absent)
 * and error code (into code, "" if none). */
static long get(struct ts_server *s, const char *path, int *expired, char *code, size_t cap)
{
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0);
    json_t *j = ts_http_json(&r);
    json_t *e = json_object_get(j, "expired");
    if (expired)
        *expired = json_is_boolean(e) ? json_is_true(e) : -1;
    if (code)
        snprintf(code, cap, "%s", str(json_object_get(j, "error"), "code") ?: "");
    long st = r.status;
    json_decref(j);
    ts_http_free(&r);
    return st;
}

static long del_files(struct ts_server *s, const char *id, char *body, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/files", id);
    struct ts_http r;
    ts_http(s, &r, "DELETE", path, NULL, NULL, 0);
    if (body)
        snprintf(body, cap, "%s", r.body ? r.body : "");
    long st = r.status;
    ts_http_free(&r);
    return st;
}

static int exists(const char *dir, const char *kind, const char *id)
{
    char p[4400];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s/%s", dir, kind, id);
    return stat(p, &sb) == 0;
}

/* After the DELETE through `by`, the job as `via` sees it: expired within
 * a few seconds (its memory may lag by the time it takes to hear of the
 * change), its output 410 expired, its status read consistent. */
static void check_deleted_via(struct ts_server *via, const char *id, const char *via_name)
{
    char path[256], code[64];
    int expired = -1;
    snprintf(path, sizeof(path), "/v1/jobs/%s", id);
    double t0 = ts_now(), deadline = t0 + 5;
    long st;
    while ((st = get(via, path, &expired, NULL, 0)) == 200 && expired != 1 && ts_now() < deadline)
        ts_sleep_ms(50);
    double lag = ts_now() - t0;
    TS_CHECK(st == 200 && expired == 1, "%s: GET %s: %ld, expired %d after %.1f s", via_name, path,
             st, expired, lag);
    printf("%s saw the deletion after %.2f s\n", via_name, lag);
    snprintf(path, sizeof(path), "/status/%s", id);
    st = get(via, path, &expired, NULL, 0);
    TS_CHECK(st == 200 && expired == 1, "%s: GET %s: %ld, expired %d", via_name, path, st, expired);
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/thumbnail", id);
    st = get(via, path, NULL, code, sizeof(code));
    TS_CHECK(st == 410 && strcmp(code, "expired") == 0, "%s: GET %s: %ld %s (want 410 expired)",
             via_name, path, st, code);
    /* The list reads the store: it must agree. */
    struct ts_http r;
    ts_http(via, &r, "GET", "/v1/jobs?limit=20", NULL, NULL, 0);
    json_t *l = ts_http_json(&r);
    json_t *jobs = json_object_get(l, "jobs");
    size_t i;
    json_t *e;
    int seen = 0;
    json_array_foreach(jobs, i, e) {
        if (str(e, "id") && strcmp(str(e, "id"), id) == 0) {
            seen = 1;
            TS_CHECK(json_is_true(json_object_get(e, "expired")), "%s lists %s unexpired",
                     via_name, id);
        }
    }
    TS_CHECK(r.status == 200 && seen, "%s lists %s: %ld", via_name, id, r.status);
    json_decref(l);
    ts_http_free(&r);
}

int main(void)
{
    ts_pg_only("test_pg_retention_nodes");
    char url[4400], flags[5000];
    char *dir = ts_mkdtemp_store("pg-retention-nodes", url, sizeof(url));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 3 --max-concurrent 1 --isolation thread --max-retention 86400",
             url);
    struct ts_server a, b;
    struct ts_server *nodes[2] = {&a, &b};
    const char *names[2] = {"node A", "node B"};
    ts_server_start(&a, dir, flags);
    ts_server_start(&b, dir, flags);

    /* ---- two ended jobs, each read through both nodes (both hold them) */
    char *id[2];
    int ran[2];
    for (int k = 0; k < 2; k++) {
        id[k] = submit(nodes[k], "/v1/jobs?preset=thumbnail&ttl_s=3600");
        for (int n = 0; n < 2; n++) {
            json_t *j = ts_wait_job(nodes[n], id[k], 60);
            TS_CHECK(j && strcmp(str(j, "status") ?: "", "succeeded") == 0 &&
                         json_is_false(json_object_get(j, "expired")),
                     "job %d through %s: %s", k, names[n], j ? json_dumps(j, 0) : "none");
            json_decref(j);
            char path[256];
            snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/thumbnail", id[k]);
            long st = get(nodes[n], path, NULL, NULL, 0);
            TS_CHECK(st == 200, "job %d's thumbnail through %s: %ld", k, names[n], st);
        }
        ran[k] = ts_runner_of(nodes, 2, id[k], 0);
        TS_CHECK(ran[k] >= 0, "no node says it ran job %d", k);
        if (ran[k] < 0)
            ran[k] = 0;
        TS_CHECK(exists(dir, "inputs", id[k]) && exists(dir, "outputs", id[k]),
                 "job %d's files are not in the shared data dir", k);
    }

    /* ---- job 0: deleted through the node that did not run it, read back
     * through the node that ran it (its memory holds the job it finished) */
    char body[4096];
    struct ts_server *other = nodes[1 - ran[0]], *runner = nodes[ran[0]];
    long st = del_files(other, id[0], body, sizeof(body));
    TS_CHECK(st == 200 && strstr(body, "\"expired\":true"), "DELETE files through %s: %ld %s",
             names[1 - ran[0]], st, body);
    TS_CHECK(!exists(dir, "inputs", id[0]) && !exists(dir, "outputs", id[0]),
             "job 0's files are still there after the 200");
    check_deleted_via(runner, id[0], names[ran[0]]);
    check_deleted_via(other, id[0], names[1 - ran[0]]);

    /* ---- job 1: deleted through the node that ran it, read back through
     * the other one (which read it, and its output, before) */
    runner = nodes[ran[1]];
    other = nodes[1 - ran[1]];
    st = del_files(runner, id[1], body, sizeof(body));
    TS_CHECK(st == 200 && strstr(body, "\"expired\":true"), "DELETE files through %s: %ld %s",
             names[ran[1]], st, body);
    check_deleted_via(other, id[1], names[1 - ran[1]]);
    /* Again, through the other node: 200, the same job. */
    st = del_files(other, id[1], body, sizeof(body));
    TS_CHECK(st == 200 && strstr(body, "\"expired\":true"), "second DELETE through %s: %ld %s",
             names[1 - ran[1]], st, body);

    /* ---- bad input through the node that does not hold the job */
    st = del_files(&b, "AAAAAAAAAAAAAAAAAAAAAA", body, sizeof(body));
    TS_CHECK(st == 404 && strstr(body, "not_found"), "unknown id: %ld %s", st, body);
    char *slow_q = curl_easy_escape(NULL, SLOW, 0);
    char q[1024];
    snprintf(q, sizeof(q), "/v1/jobs?ttl_s=3600&outputs=%s", slow_q);
    curl_free(slow_q);
    char *busy = submit(&a, q);
    json_t *j = ts_wait_status(&a, busy, "running", 30);
    TS_CHECK(j && strcmp(str(j, "status") ?: "", "running") == 0, "the slow job runs: %s",
             j ? json_dumps(j, 0) : "none");
    json_decref(j);
    int r = ts_runner_of(nodes, 2, busy, 0);
    TS_CHECK(r >= 0, "no node says it runs the slow job");
    struct ts_server *not_runner = nodes[r == 0 ? 1 : 0];
    st = del_files(not_runner, busy, body, sizeof(body));
    TS_CHECK(st == 409 && strstr(body, "conflict"), "DELETE files of a running job through %s: %ld %s",
             names[r == 0 ? 1 : 0], st, body);
    TS_CHECK(exists(dir, "inputs", busy), "the running job's input was deleted by a 409");
    j = ts_wait_status(not_runner, busy, "running", 5);
    TS_CHECK(j && strcmp(str(j, "status") ?: "", "running") == 0 &&
                 json_is_false(json_object_get(j, "expired")),
             "the running job after the 409: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    ts_job_cancel(not_runner, busy, 1);
    j = ts_wait_job(nodes[r < 0 ? 0 : r], busy, 20);
    TS_CHECK(j && strcmp(str(j, "status") ?: "", "canceled") == 0, "the slow job canceled: %s",
             j ? json_dumps(j, 0) : "none");
    json_decref(j);

    for (int k = 0; k < 2; k++)
        TS_CHECK(ts_server_stop(nodes[k], SIGTERM, 30) == 0, "%s stops cleanly", names[k]);
    for (int k = 0; k < 2; k++)
        free(id[k]);
    free(busy);
    return ts_finish(dir, 0);
}
