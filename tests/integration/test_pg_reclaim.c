/*
 * A node presumed dead claims its own job again (run only on PostgreSQL:
 * ctest it.test_pg_reclaim.pg, under tests/support/with_pg.sh). Two
 * `vidq serve` on one database and one --data-dir, --node-lease 2:
 *   - B has one slot, held by a slow job of its own for the whole test,
 *     so it can requeue a dead node's job but never claim it;
 *   - A has two slots and runs job J. A freezes (SIGSTOP of the server
 *     and of J's child) past its lease; B requeues J. A's server comes
 *     back (J's old child still frozen) and, a slot free, claims J again
 *     (attempt 2) while its memory still holds attempt 1: the dispatcher
 *     stops the stale attempt and runs the new one in an entry of its
 *     own (sched.c, "claimed again"). Then: J succeeded once (attempts 2,
 *     percent 100, through both nodes), the download is attempt 2's file
 *     and the only folder left is .attempt-2, the stale child is gone,
 *     the stale runner discarded its attempt, one job.succeeded delivery
 *     reached the receiver, and A still runs a new job to its end and
 *     stops cleanly.
 * ctest-labels: integration
 * ctest-timeout: 180
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_nodes.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static const char MEDIUM[] = TS_OUTPUTS_MEDIUM;
/* Holds B's one slot for minutes (x265 veryslow, one thread); canceled at
 * the end. */
static const char HOLD[] = "[{\"name\":\"hold\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"hevc\",\"speed\":\"veryslow\"},\"audio\":{\"codec\":\"aac\"}}]";

static char *submit(struct ts_server *s, const char *outputs)
{
    return ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", outputs, NULL, 202, NULL);
}

/* The job's status through s, polled every 50 ms until it is want or
 * timeout_s passed; 1 if it was. */
static int wait_status(const struct ts_server *s, const char *id, const char *want,
                       double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    do {
        json_t *j = ts_job_get(s, id, NULL);
        int is = j && ts_job_status(j) && strcmp(ts_job_status(j), want) == 0;
        json_decref(j);
        if (is)
            return 1;
        ts_sleep_ms(50);
    } while (ts_now() < deadline);
    return 0;
}

static int wait_log(const struct ts_server *s, const char *needle, double timeout_s)
{
    double deadline = ts_now() + timeout_s;
    while (ts_now() < deadline && ts_log_count(s, needle) == 0)
        ts_sleep_ms(50);
    return ts_log_count(s, needle);
}

/* A failed check exits: no frozen or running node may outlive the test. */
static pid_t live[3];

int main(void)
{
    ts_pg_only("test_pg_reclaim");
    char url[4400], flags_a[5000], flags_b[5000], log[4400], path[4600], listing[1024];
    char needle[160];
    char *dir = ts_mkdtemp_store("pg-reclaim", url, sizeof(url));
    snprintf(flags_b, sizeof(flags_b),
             "--db %s --node-lease 2 --max-concurrent 1 --job-threads 1 --isolation "
             "process " TS_WEBHOOK_FLAGS(SECRET),
             url);
    snprintf(
        flags_a, sizeof(flags_a),
        "--db %s --node-lease 2 --max-concurrent 2 --isolation process " TS_WEBHOOK_FLAGS(SECRET),
        url);
    int rport = 0;
    int rpid = ts_hooks_start(dir, SECRET, log, sizeof(log), &rport);
    ts_kill_at_exit(live, 3);

    /* B alone first, so it is B that claims the job holding its slot. */
    struct ts_server a, b;
    ts_server_start(&b, dir, flags_b);
    live[1] = b.pid;
    ts_hooks_register(&b, rport, "[\"job.succeeded\"]");
    char *hold = submit(&b, HOLD);
    struct ts_server *only_b[1] = {&b};
    ts_runner_of(only_b, 1, hold, 30);
    ts_server_start(&a, dir, flags_a);
    live[0] = a.pid;

    double t0 = ts_now();
    char *id = submit(&a, MEDIUM);
    struct ts_server *only_a[1] = {&a};
    ts_runner_of(only_a, 1, id, 30);
    pid_t child = ts_worker_pid(&a, id, 20);
    live[2] = child;
    ts_wait_progress(&a, id, 0, 30);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-1", dir, id);
    TS_CHECK(ts_is_dir(path), "attempt 1 writes in its own folder %s", path);

    /* A freezes past its lease; B requeues J and cannot claim it. */
    TS_CHECK(kill(a.pid, SIGSTOP) == 0 && kill(child, SIGSTOP) == 0, "SIGSTOP");
    TS_CHECK(wait_status(&b, id, "queued", 30), "B did not requeue the frozen node's job");
    printf("frozen node's job requeued in %.1f s\n", ts_now() - t0);

    /* A's server comes back, its old child still frozen: it claims J
     * again while it still holds attempt 1. */
    TS_CHECK(kill(a.pid, SIGCONT) == 0, "SIGCONT of the server");
    snprintf(needle, sizeof(needle), "job claimed again id=%s attempt=2", id);
    TS_CHECK(wait_log(&a, needle, 20) == 1, "A did not claim its own job again (\"%s\")", needle);
    json_t *j = ts_wait_job(&a, id, 90);
    TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 2,
             "the job claimed again: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    snprintf(needle, sizeof(needle), "stale attempt discarded id=%s attempt=1", id);
    TS_EXPECT(wait_log(&a, needle, 20) == 1, "the stale runner did not discard attempt 1");
    double deadline = ts_now() + 10;
    while (ts_now() < deadline && kill(child, 0) == 0)
        ts_sleep_ms(50);
    TS_EXPECT(kill(child, 0) != 0, "the stale job child %d still runs", (int)child);
    live[2] = 0;
    printf("claimed again and finished in %.1f s\n", ts_now() - t0);

    ts_sleep_ms(1500); /* a late write or a duplicate delivery would come by now */
    char want[65], got[65];
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-2/med.mp4", dir, id);
    ts_sha256_file(path, want);
    TS_CHECK(want[0], "no attempt 2 file %s", path);
    struct ts_server *nodes[2] = {&a, &b};
    for (int n = 0; n < 2; n++) {
        ts_download_sha(nodes[n], id, "med", dir, got);
        TS_EXPECT(strcmp(want, got) == 0, "node %c serves other bytes than attempt 2's", 'A' + n);
        j = ts_job_get(nodes[n], id, NULL);
        TS_EXPECT(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 2 &&
                      json_number_value(
                          json_object_get(json_object_get(j, "progress"), "percent")) == 100,
                  "the job through node %c: %s", 'A' + n, j ? json_dumps(j, 0) : "none");
        json_decref(j);
    }
    listing[0] = '\0';
    ts_run(listing, sizeof(listing), "ls -A '%s/outputs/%s' 2>/dev/null | tr '\\n' ' '", dir, id);
    TS_EXPECT(strcmp(listing, ".attempt-2 ") == 0, "outputs/%s holds: %s", id, listing);
    ts_wait_delivered(log, id, "job.succeeded", 10);
    TS_EXPECT(ts_deliveries(log, id, "job.succeeded") == 1, "job.succeeded delivered %d times",
              ts_deliveries(log, id, "job.succeeded"));

    /* A's memory and slots are whole: a new job runs to its end. */
    char *next = submit(&a, MEDIUM);
    j = ts_wait_job(&a, next, 90);
    TS_EXPECT(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 1,
              "a new job on the node afterwards: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);

    ts_job_cancel(&b, hold, 0);
    TS_EXPECT(wait_status(&b, hold, "canceled", 30), "the job holding B's slot did not cancel");
    ts_serving_then_stop(&a, 30);
    ts_serving_then_stop(&b, 30);
    live[0] = live[1] = 0;
    ts_stop(rpid);
    free(hold);
    free(id);
    free(next);
    return ts_finish(dir, 0);
}
