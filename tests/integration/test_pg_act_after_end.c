/*
 * Acting on a job the moment another node ended it (run only on
 * PostgreSQL: ctest it.test_pg_act_after_end.pg, under
 * tests/support/with_pg.sh). Two `vidq serve`, A and B, one database and
 * one --data-dir, as behind a round-robin balancer: a client polls the
 * node that runs a job, sees it succeed, and its very next request lands
 * on the other node, whose status cache may still hold the job as running
 * (a copy up to a second old, right for status reads). That next request
 * must act on the store's state:
 *   - a download of the output is 200 with the runner's bytes (it was a
 *     404 "not ready" in CI once: test_pg_lb, 2026-12-02);
 *   - DELETE /v1/jobs/<id>/files is 200 (not a 409 "still running"), and
 *     at once both nodes answer a download with 410 expired (the runner's
 *     own copy of the finished job hears of the deletion only later: it
 *     answered 404 "no such file").
 * The race is hit only when the request beats the other node's cache
 * update (a NOTIFY and a read, a few ms): without the fix about one round
 * in eight failed here, so ROUNDS jobs are tried.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_nodes.h"

#define ROUNDS 24
#define CLIP "h264_aac_640x360.mp4" /* 2 s */

/* A fraction of a second on the 2 s clip. */
static const char FAST[] = "[{\"name\":\"fast\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"h264\",\"speed\":\"ultrafast\",\"max_height\":144},"
                           "\"audio\":{\"codec\":\"aac\"}}]";

static char db_url[4400];

/* The status of id on s, read as fast as the loop can: 1 ms apart. */
static void poll_until_succeeded(struct ts_server *s, const char *id, double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    for (;;) {
        json_t *j = ts_job_must(s, id);
        const char *st = ts_job_status(j);
        int done = strcmp(st, "succeeded") == 0;
        TS_CHECK(done || strcmp(st, "queued") == 0 || strcmp(st, "running") == 0,
                 "job %s on %s: %s", id, s->base, st);
        json_decref(j);
        if (done)
            return;
        TS_CHECK(ts_now() < deadline, "job %s not done within %.0f s", id, timeout_s);
        ts_sleep_ms(1);
    }
}

int main(void)
{
    ts_pg_only("test_pg_act_after_end");
    char flags[5000];
    char *dir = ts_mkdtemp_store("pg-act-after-end", db_url, sizeof(db_url));
    snprintf(flags, sizeof(flags), "--db %s --node-lease 3 --max-concurrent 1", db_url);
    struct ts_server a, b;
    struct ts_server *n[2] = {&a, &b};
    ts_server_start(&a, dir, flags);
    ts_server_start(&b, dir, flags);

    for (int round = 0; round < ROUNDS; round++) {
        char *id = ts_submit_outputs(round % 2 ? &b : &a, CLIP, FAST, "", 202, NULL);
        int k = ts_runner_of(n, 2, id, 30);
        struct ts_server *runner = n[k], *other = n[1 - k];
        poll_until_succeeded(runner, id, 30);

        /* The other node, at once. */
        char path[256];
        struct ts_http r;
        if (round % 2 == 0) {
            snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/fast", id);
            ts_http(other, &r, "GET", path, NULL, NULL, 0);
            TS_EXPECT(r.status == 200 && r.len > 1000, "round %d: download from the other node: "
                      "%ld %.200s", round, r.status, r.status == 200 ? "" : r.body);
            struct ts_http w;
            ts_http(runner, &w, "GET", path, NULL, NULL, 0);
            TS_EXPECT(w.status == 200 && w.len == r.len && memcmp(w.body, r.body, w.len) == 0,
                      "round %d: the runner's bytes differ (%ld, %zu vs %zu)", round, w.status,
                      w.len, r.len);
            ts_http_free(&w);
        } else {
            snprintf(path, sizeof(path), "/v1/jobs/%s/files", id);
            ts_http(other, &r, "DELETE", path, NULL, NULL, 0);
            TS_EXPECT(r.status == 200, "round %d: DELETE files on the other node: %ld %.200s",
                      round, r.status, r.body);
            snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/fast", id);
            for (int i = 0; i < 2; i++) {
                struct ts_http g;
                ts_http(n[i], &g, "GET", path, NULL, NULL, 0);
                TS_EXPECT(g.status == 410, "round %d: download after DELETE on node %d: %ld",
                          round, i, g.status);
                ts_http_free(&g);
            }
        }
        ts_http_free(&r);
        free(id);
    }

    ts_server_stop(&a, SIGTERM, 10);
    ts_server_stop(&b, SIGTERM, 10);
    return ts_finish(dir, 0);
}
