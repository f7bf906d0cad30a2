/*
 * Queue positions and job counts on one node (SQLite; the several-node
 * PostgreSQL side is test_pg_status_cache):
 *   - four queued jobs of priorities 0, 5, 0, 10 behind a running one:
 *     queue_position 3, 2, 4, 1 in GET /status and GET /v1/jobs, and 2, -,
 *     3, 1 once the second is canceled; a bad priority is a 400 and
 *     changes nothing;
 *   - job counts: after a job that succeeded and was purged by retention,
 *     cancels of queued and running jobs and a requeue (kill -9 mid-job,
 *     then a restart), the job_counts table, a GROUP BY scan of jobs and
 *     /metrics agree.
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
#include <unistd.h>

#include "ts_nodes.h"

static char *submit_slow(struct ts_server *s, int priority)
{
    char extra[32];
    snprintf(extra, sizeof(extra), "&priority=%d", priority);
    return ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", TS_OUTPUTS_SLOW, extra, 202, NULL);
}

static const char *str(json_t *j, const char *k) { return ts_jstr(j, k); }

/* -2: not listed. */
static long position_in_list(struct ts_server *s, const char *id)
{
    return ts_list_position(s, "/v1/jobs?limit=100", id);
}

static void check_positions(struct ts_server *s, char *ids[], const long want[], int k)
{
    for (int i = 0; i < k; i++) {
        long st = ts_queue_position(s, ids[i]), li = position_in_list(s, ids[i]);
        if (want[i])
            TS_EXPECT(st == want[i] && li == want[i], "job %d: status %ld list %ld want %ld", i,
                      st, li, want[i]);
        else
            TS_EXPECT(st <= 0 && li <= 0 && li != -2, "job %d not queued: status %ld list %ld",
                      i, st, li);
    }
}

static void wait_status(struct ts_server *s, const char *id, const char *want, double timeout_s)
{
    json_t *j = ts_wait_status(s, id, want, timeout_s);
    TS_CHECK(j && strcmp(str(j, "status"), want) == 0, "%s: %s, want %s", id,
             j ? str(j, "status") : "none", want);
    json_decref(j);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (system("command -v sqlite3 >/dev/null") != 0) {
        fprintf(stderr, "sqlite3 missing\n");
        return 77;
    }
    char *dir = ts_mkdtemp("status-counts");
    const char *flags = "--max-concurrent 1 --retention 3600 --retention-records 1";
    struct ts_server s;
    ts_server_start(&s, dir, flags);

    /* ---- a job that succeeds, expires (ttl_s 1) and is purged */
    char *x = ts_submit(&s, "h264_aac_640x360.mp4", "/upload?preset=mp4-480p&ttl_s=1", 202, NULL);
    wait_status(&s, x, "succeeded", 60);
    long gone = 0;
    for (double t = ts_now() + 10; ts_now() < t && gone != 404;) {
        json_decref(ts_job_get(&s, x, &gone));
        ts_sleep_ms(100);
    }
    TS_EXPECT(gone == 404, "x purged: %ld", gone);

    /* ---- queue positions behind a running job */
    char *r0 = submit_slow(&s, 0);
    wait_status(&s, r0, "running", 30);
    char *q[4];
    q[0] = submit_slow(&s, 0);
    q[1] = submit_slow(&s, 5);
    q[2] = submit_slow(&s, 0);
    q[3] = submit_slow(&s, 10);
    const long want1[4] = {3, 2, 4, 1};
    check_positions(&s, q, want1, 4);
    struct ts_http r;
    ts_http_upload_raw(&s, &r, "/upload?priority=high", ts_media("h264_aac_640x360.mp4"),
                       "video/mp4", NULL);
    TS_EXPECT(r.status == 400 && strstr(r.body, "priority"), "bad priority: %ld %s", r.status,
              r.body);
    ts_http_free(&r);
    check_positions(&s, q, want1, 4);
    ts_job_cancel(&s, q[1], 0);
    const long want2[4] = {2, 0, 3, 1};
    check_positions(&s, q, want2, 4);

    /* ---- kill -9 mid-job, restart: r0 requeued, behind q[3] (priority
     * 10) and ahead of q[0] and q[2] (the same priority, older) */
    ts_server_stop(&s, SIGKILL, 5);
    ts_server_start(&s, dir, flags);
    wait_status(&s, q[3], "running", 30);
    char *ids[5] = {r0, q[0], q[1], q[2], q[3]};
    const long want3[5] = {1, 2, 0, 3, 0};
    check_positions(&s, ids, want3, 5);
    ts_job_cancel(&s, r0, 0);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            ts_job_cancel(&s, q[i], 0);
    wait_status(&s, r0, "canceled", 10);
    for (int i = 0; i < 4; i++)
        wait_status(&s, q[i], "canceled", 10);

    /* ---- counts: the counter table, a scan, /metrics */
    char counted[512] = "", scanned[512] = "";
    ts_run(counted, sizeof(counted),
           "sqlite3 '%s/vidq.db' \"SELECT group_concat(status || '=' || n, ',') FROM "
           "(SELECT status, n FROM job_counts WHERE n <> 0 ORDER BY status)\"",
           dir);
    ts_run(scanned, sizeof(scanned),
           "sqlite3 '%s/vidq.db' \"SELECT group_concat(status || '=' || c, ',') FROM "
           "(SELECT status, count(*) c FROM jobs GROUP BY status ORDER BY status)\"",
           dir);
    fprintf(stderr, "job_counts %s; scan %s", counted, scanned);
    TS_EXPECT(strcmp(counted, scanned) == 0, "job_counts %s, scan %s", counted, scanned);
    TS_EXPECT(strcmp(scanned, "canceled=5\n") == 0, "5 canceled, x purged: %s", scanned);
    ts_http(&s, &r, "GET", "/metrics", NULL, NULL, 0);
    TS_EXPECT(r.status == 200 && strstr(r.body, "vidq_jobs{status=\"canceled\"} 5\n") &&
                  strstr(r.body, "vidq_jobs{status=\"queued\"} 0\n") &&
                  strstr(r.body, "vidq_jobs{status=\"succeeded\"} 0\n") &&
                  strstr(r.body, "vidq_jobs{status=\"running\"} 0\n"),
              "/metrics: %s", r.body);
    ts_http_free(&r);

    ts_server_stop(&s, SIGTERM, 10);
    free(r0);
    for (int i = 0; i < 4; i++)
        free(q[i]);
    free(x);
    return ts_finish(dir, 0);
}
