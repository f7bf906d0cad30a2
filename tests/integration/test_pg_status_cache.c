/*
 * The status cache of several nodes on one PostgreSQL (run only on
 * PostgreSQL: ctest it.test_pg_status_cache.pg, under
 * tests/support/with_pg.sh). Two `vidq serve`, A and B, one database:
 *   - a job's status read through both nodes, polled every 20 ms, goes
 *     queued -> running -> succeeded -> expired -> 404 (its row purged) on
 *     each within 1 s of the other (one of them runs it: its memory is the
 *     truth; the other hears of each change by NOTIFY);
 *   - queue_position with several queued jobs of different priorities,
 *     submitted through both nodes: exact in GET /status and GET /v1/jobs
 *     of both, and again within 1 s after a cancel;
 *   - status reads of queued jobs come from memory: they answer while a
 *     psql session holds jobs locked (ACCESS EXCLUSIVE);
 *   - B has --status-cache-jobs 4: with 5 active jobs its cache turns off
 *     (its reads, positions included, come from the database and stay
 *     exact) and back on once none is left;
 *   - the LISTEN connections killed (pg_terminate_backend): a cancel is
 *     still seen on the other node within 1 s, and both listen again;
 *   - job counts: after a mixed workload (succeeded, cancels of queued and
 *     running jobs, requeue of a node killed with -9, a retention purge)
 *     job_counts, /metrics and a GROUP BY scan of jobs agree.
 * About 25 s on a quiet machine (the lock is held 5 s).
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
#include <sys/wait.h>
#include <unistd.h>

#include "ts_nodes.h"

static char db_url[4400];

static char *submit(struct ts_server *s, const char *clip, const char *query)
{
    return ts_submit(s, clip, query, 202, NULL);
}

/* Long enough to hold a node's one slot until the test cancels it: x265
 * veryslow on the 10 s clip, half a minute or more. (TS_OUTPUTS_SLOW, x264
 * veryslow, now ends in about 9 s, before the test is done with the slot:
 * the freed slot let a queued job start and moved the queue positions.) */
static const char SLOW[] = "[{\"name\":\"slow\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"hevc\",\"speed\":\"veryslow\"},\"audio\":{\"codec\":\"aac\"}}]";

static char *submit_slow(struct ts_server *s, int priority)
{
    char extra[32];
    snprintf(extra, sizeof(extra), "&priority=%d", priority);
    return ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", SLOW, extra, 202, NULL);
}

static const char *str(json_t *j, const char *k) { return ts_jstr(j, k); }

/* What a node shows: the status, "expired", or "gone" (404). */
static void state_of(struct ts_server *s, const char *id, char *out, size_t cap)
{
    long code = 0;
    json_t *j = ts_job_get(s, id, &code);
    if (code == 404)
        snprintf(out, cap, "gone");
    else if (j && json_is_true(json_object_get(j, "expired")))
        snprintf(out, cap, "expired");
    else
        snprintf(out, cap, "%s", j && str(j, "status") ? str(j, "status") : "?");
    json_decref(j);
}

/* Queued jobs only: -1 when not (or no longer) queued. */
static long position_in_list(struct ts_server *s, const char *id)
{
    long pos = ts_list_position(s, "/v1/jobs?status=queued&limit=100", id);
    return pos == -2 ? -1 : pos;
}

/* Every node shows the positions want[] (0: not queued) of ids[] in both
 * reads, within timeout_s. */
static int positions_are(struct ts_server *n[2], char *ids[], const long want[], int k,
                         double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    for (;;) {
        int ok = 1;
        for (int x = 0; x < 2 && ok; x++)
            for (int i = 0; i < k && ok; i++) {
                long w = want[i] ? want[i] : -1;
                long st = ts_queue_position(n[x], ids[i]);
                ok = (want[i] ? st == w : st <= 0) && position_in_list(n[x], ids[i]) == w;
            }
        if (ok)
            return 1;
        if (ts_now() > deadline) {
            for (int x = 0; x < 2; x++)
                for (int i = 0; i < k; i++)
                    fprintf(stderr, "node %d job %d: status %ld list %ld want %ld\n", x, i,
                            ts_queue_position(n[x], ids[i]), position_in_list(n[x], ids[i]),
                            want[i]);
            return 0;
        }
        ts_sleep_ms(50);
    }
}

static int psql(char *out, size_t cap, const char *sql)
{
    return ts_run(out, cap, "psql -X -q -A -t -d '%s' -c \"%s\" 2>&1", db_url, sql);
}

/* Wait until a node shows status want for id. */
static void wait_state(struct ts_server *s, const char *id, const char *want, double timeout_s)
{
    char got[32] = "";
    double deadline = ts_now() + timeout_s;
    while (ts_now() < deadline) {
        state_of(s, id, got, sizeof(got));
        if (strcmp(got, want) == 0)
            return;
        ts_sleep_ms(20);
    }
    TS_CHECK(0, "%s on %s: %s, want %s", id, s->base, got, want);
}

int main(void)
{
    ts_pg_only("test_pg_status_cache");
    char flags[5000];
    char *dir = ts_mkdtemp_store("pg-status-cache", db_url, sizeof(db_url));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 3 --max-concurrent 1 --isolation process "
             "--retention 3600 --retention-records 1",
             db_url);
    struct ts_server a, b;
    struct ts_server *n[2] = {&a, &b};
    ts_server_start(&a, dir, flags);
    char flags_b[5100];
    snprintf(flags_b, sizeof(flags_b), "%s --status-cache-jobs 4", flags);
    ts_server_start(&b, dir, flags_b);

    /* ---- both slots busy (r[0], r[1]), then x queued behind them */
    char *r[3];
    r[0] = submit_slow(&a, 0);
    r[1] = submit_slow(&b, 0);
    wait_state(&a, r[0], "running", 30);
    wait_state(&a, r[1], "running", 30);
    char *x = submit(&b, "h264_aac_640x360.mp4", "/upload?preset=mp4-480p&ttl_s=1");

    /* ---- x through both nodes: each state within 1 s of the other */
    static const char *const order[] = {"queued", "running", "succeeded", "expired", "gone"};
    enum { NSTATES = 5 };
    double first[2][NSTATES] = {{0}};
    int canceled = 0;
    double deadline = ts_now() + 60;
    while (ts_now() < deadline && !(first[0][NSTATES - 1] > 0 && first[1][NSTATES - 1] > 0)) {
        for (int k = 0; k < 2; k++) {
            char st[32];
            state_of(n[k], x, st, sizeof(st));
            double t = ts_now();
            for (int i = 0; i < NSTATES; i++)
                if (strcmp(st, order[i]) == 0 && first[k][i] == 0)
                    first[k][i] = t;
            TS_CHECK(strcmp(st, "failed") != 0 && strcmp(st, "canceled") != 0 &&
                         strcmp(st, "?") != 0,
                     "x on node %d: %s", k, st);
        }
        if (!canceled && first[0][0] > 0 && first[1][0] > 0 && ts_now() - first[0][0] > 0.5) {
            ts_job_cancel(&a, r[0], 1); /* frees a slot: x runs next */
            canceled = 1;
        }
        ts_sleep_ms(20);
    }
    for (int i = 0; i < NSTATES; i++) {
        /* A state can be too short to be seen (expired shortly before the
         * purge); a node that skipped it saw the next one. */
        if (first[0][i] == 0 || first[1][i] == 0) {
            TS_EXPECT(i == 3 || i == 1, "x %s never seen (A %.3f, B %.3f)", order[i], first[0][i],
                      first[1][i]);
            continue;
        }
        double d = first[0][i] - first[1][i];
        fprintf(stderr, "x %s: A %+.3f s after B\n", order[i], d);
        TS_EXPECT(d < 1.0 && d > -1.0, "x %s seen %.3f s apart on A and B", order[i], d);
    }
    TS_CHECK(first[0][4] > 0 && first[1][4] > 0, "x never purged on both nodes");

    /* ---- queue positions: the free slot busy again, four queued */
    r[2] = submit_slow(&a, 0);
    for (double t = ts_now() + 30; ts_now() < t;) {
        char s1[32], s2[32];
        state_of(&a, r[1], s1, sizeof(s1));
        state_of(&a, r[2], s2, sizeof(s2));
        if (strcmp(s1, "running") == 0 && strcmp(s2, "running") == 0)
            break;
        ts_sleep_ms(50);
    }
    wait_state(&b, r[2], "running", 2);
    char *q[4];
    q[0] = submit_slow(&a, 0);
    q[1] = submit_slow(&b, 5);
    q[2] = submit_slow(&a, 0);
    q[3] = submit_slow(&b, 10);
    const long want1[4] = {3, 2, 4, 1};
    TS_EXPECT(positions_are(n, q, want1, 4, 1.5), "positions 3 2 4 1");
    TS_EXPECT(ts_log_count(&b, "status cache: more than 4 active jobs") == 1,
              "B's cache (4 jobs at most) turned off");

    /* ---- reads of queued jobs from memory, with jobs locked: they all
     * answer while the lock is still held (a read from the database would
     * wait for its release) */
    int lockpid = fork();
    if (lockpid == 0) {
        char out[256];
        psql(out, sizeof(out), "BEGIN; LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE; "
                               "SELECT pg_sleep(5); COMMIT;");
        _exit(0);
    }
    char locked[64] = "";
    for (double t = ts_now() + 10; ts_now() < t && atoi(locked) != 1;) {
        psql(locked, sizeof(locked),
             "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE "
             "c.relname = 'jobs' AND l.mode = 'AccessExclusiveLock' AND l.granted");
        ts_sleep_ms(20);
    }
    TS_CHECK(atoi(locked) == 1, "jobs not locked: %s", locked);
    double t0 = ts_now();
    for (int i = 0; i < 20; i++) /* A: B's cache is off */
        TS_EXPECT(ts_queue_position(&a, q[i % 4]) == want1[i % 4], "read under the lock");
    double took = ts_now() - t0;
    int still_locked = waitpid(lockpid, NULL, WNOHANG) == 0;
    fprintf(stderr, "20 reads with jobs locked: %.3f s\n", took);
    TS_EXPECT(still_locked, "status reads waited for the database (%.3f s)", took);
    if (still_locked)
        waitpid(lockpid, NULL, 0);

    /* ---- a cancel through A, seen on B within 1 s */
    ts_job_cancel(&a, q[1], 1);
    wait_state(&b, q[1], "canceled", 1.0);
    const long want2[4] = {2, 0, 3, 1};
    TS_EXPECT(positions_are(n, q, want2, 4, 1.0), "positions 2 - 3 1");

    /* ---- the LISTEN connections killed */
    char out[4096];
    psql(out, sizeof(out),
         "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
         "WHERE application_name = 'vidq-watch'");
    TS_CHECK(atoi(out) == 2, "two watch connections terminated: %s", out);
    ts_job_cancel(&a, q[2], 1);
    wait_state(&b, q[2], "canceled", 1.0);
    wait_state(&a, q[2], "canceled", 1.0);
    for (double t = ts_now() + 5; ts_now() < t;) {
        if (ts_log_count(&a, "listening for job changes") >= 2 &&
            ts_log_count(&b, "listening for job changes") >= 2)
            break;
        ts_sleep_ms(50);
    }
    TS_EXPECT(ts_log_count(&a, "watch connection broke") >= 1 &&
                  ts_log_count(&b, "watch connection broke") >= 1,
              "the broken watch was noticed");
    TS_EXPECT(ts_log_count(&a, "listening for job changes") >= 2 &&
                  ts_log_count(&b, "listening for job changes") >= 2,
              "both nodes listen again");
    const long want3[4] = {2, 0, 0, 1};
    TS_EXPECT(positions_are(n, q, want3, 4, 1.0), "positions 2 - - 1");
    ts_job_cancel(&b, q[0], 1);
    wait_state(&a, q[0], "canceled", 1.0);

    /* ---- kill -9 A (it runs r[1] or r[2]): B requeues its job */
    char needle[128];
    snprintf(needle, sizeof(needle), "job started id=%s ", r[1]);
    const char *orphan = ts_log_count(&a, needle) > 0 ? r[1] : r[2];
    struct ts_server *live = &b;
    ts_server_stop(&a, SIGKILL, 5);
    wait_state(live, orphan, "queued", 15);
    for (int i = 0; i < 3; i++)
        ts_job_cancel(live, r[i], 1);
    ts_job_cancel(live, q[3], 1);
    for (int i = 0; i < 3; i++)
        wait_state(live, r[i], "canceled", 10);
    wait_state(live, q[3], "canceled", 2);

    /* ---- counts: the counter table, a scan, /metrics */
    char counted[512] = "", scanned[512] = "";
    int same = 0;
    for (double t = ts_now() + 5; ts_now() < t && !same;) {
        psql(counted, sizeof(counted),
             "SELECT string_agg(status || '=' || n, ',' ORDER BY status) FROM job_counts "
             "WHERE n <> 0");
        psql(scanned, sizeof(scanned),
             "SELECT string_agg(status || '=' || c, ',' ORDER BY status) FROM "
             "(SELECT status, count(*) c FROM jobs GROUP BY status) s");
        same = strcmp(counted, scanned) == 0;
        if (!same)
            ts_sleep_ms(100);
    }
    fprintf(stderr, "job_counts %s; scan %s", counted, scanned);
    TS_EXPECT(same, "job_counts %s, scan %s", counted, scanned);
    TS_EXPECT(strstr(scanned, "canceled=7") != NULL && strstr(scanned, "succeeded") == NULL,
              "7 canceled, x purged: %s", scanned);
    int metrics_ok = 0;
    for (double t = ts_now() + 4; ts_now() < t && !metrics_ok;) {
        struct ts_http m;
        ts_http(live, &m, "GET", "/metrics", NULL, NULL, 0);
        metrics_ok = m.status == 200 && strstr(m.body, "vidq_jobs{status=\"canceled\"} 7\n") &&
                     strstr(m.body, "vidq_jobs{status=\"queued\"} 0\n") &&
                     strstr(m.body, "vidq_jobs{status=\"succeeded\"} 0\n");
        if (!metrics_ok && ts_now() + 0.2 >= t)
            fprintf(stderr, "metrics: %s\n", m.body);
        ts_http_free(&m);
        if (!metrics_ok)
            ts_sleep_ms(200);
    }
    TS_EXPECT(metrics_ok, "/metrics counts match");
    for (double t = ts_now() + 5; ts_now() < t && !ts_log_count(&b, "status cache: back on");)
        ts_sleep_ms(100);
    TS_EXPECT(ts_log_count(&b, "status cache: back on") == 1, "B's cache back on, no job left");

    ts_server_stop(live, SIGTERM, 10);
    for (int i = 0; i < 3; i++)
        free(r[i]);
    for (int i = 0; i < 4; i++)
        free(q[i]);
    free(x);
    return ts_finish(dir, 0);
}
