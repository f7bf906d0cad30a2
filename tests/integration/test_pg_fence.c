/*
 * Fenced attempts on several nodes (run only on PostgreSQL: ctest
 * it.test_pg_fence.pg, under tests/support/with_pg.sh). Two `vidq serve`
 * on one database and one --data-dir, --node-lease 2:
 *   - a hung node: the node running a job is frozen (SIGSTOP of the server
 *     and of its job child) mid-job, past its lease; the other node takes
 *     the job over (attempts 2) and finishes it; then the frozen node is
 *     resumed (SIGCONT) and given time to act. The outputs stay the
 *     taker's byte for byte (SHA-256 taken when it finished, through both
 *     nodes and on disk), the job ended once (succeeded, attempts 2), one
 *     job.succeeded delivery reached the receiver, and the stale
 *     attempt's folder is gone;
 *   - bad input: kill -9 of the node running a job (an mp4 and an hls
 *     output) leaves its attempt folder with partial files; the next
 *     attempt removes it, and files planted where a stale attempt or the
 *     old layout would put them are never served.
 * ctest-labels: integration
 * ctest-timeout: 180
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

/* A few seconds on the 10 s clip: long enough to freeze it mid-job. */
static const char MEDIUM[] = TS_OUTPUTS_MEDIUM;
/* The same plus a folder output. */
static const char WITH_HLS[] =
    "[{\"name\":\"med\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"speed\":"
    "\"medium\"},\"audio\":{\"codec\":\"aac\"}},{\"name\":\"h\",\"preset\":\"hls\"}]";

static char *submit(struct ts_server *s, const char *outputs)
{
    return ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", outputs, NULL, 202, NULL);
}

/* The entries of outputs/<id> (names, space-separated) into out. */
static void list_outputs(const char *data, const char *id, char *out, size_t cap)
{
    out[0] = '\0';
    ts_run(out, cap, "ls -A '%s/outputs/%s' 2>/dev/null | tr '\\n' ' '", data, id);
}

static void write_junk(const char *path)
{
    FILE *f = fopen(path, "w");
    TS_CHECK(f != NULL, "cannot plant %s", path);
    if (f) {
        fputs("junk from a stale attempt\n", f);
        fclose(f);
    }
}

/* A failed check exits: no frozen or running node may outlive the test. */
static pid_t live[3];

int main(void)
{
    ts_pg_only("test_pg_fence");
    char url[4400], flags[5000], log[4400], path[4600], listing[1024];
    char *dir = ts_mkdtemp_store("pg-fence", url, sizeof(url));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 2 --max-concurrent 1 --isolation process "
             TS_WEBHOOK_FLAGS(SECRET), url);
    int rport = 0;
    int rpid = ts_hooks_start(dir, SECRET, log, sizeof(log), &rport);

    struct ts_server a, b;
    struct ts_server *nodes[2] = {&a, &b};
    ts_server_start(&a, dir, flags);
    ts_server_start(&b, dir, flags);
    live[0] = a.pid;
    live[1] = b.pid;
    ts_kill_at_exit(live, 3);

    ts_hooks_register(&a, rport, "[\"job.succeeded\"]");
    struct ts_http r;

    /* ---- a node hangs mid-job past its lease, then comes back */
    double t0 = ts_now();
    char *id = submit(&a, MEDIUM);
    int k = ts_runner_of(nodes, 2, id, 30);
    struct ts_server *hung = nodes[k], *taker = nodes[1 - k];
    pid_t child = ts_worker_pid(hung, id, 20);
    live[2] = child;
    ts_wait_progress(taker, id, 0, 30);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-1", dir, id);
    TS_CHECK(ts_is_dir(path), "attempt 1 writes in its own folder %s", path);
    /* The whole node freezes (a paused VM): server and job child. */
    TS_CHECK(kill(hung->pid, SIGSTOP) == 0 && kill(child, SIGSTOP) == 0, "SIGSTOP");
    json_t *j = ts_wait_job(taker, id, 90);
    TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 2,
             "taken over and finished by the other node: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    char want[65], got[65], disk[65];
    ts_download_sha(taker, id, "med", dir, want);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-2/med.mp4", dir, id);
    ts_sha256_file(path, disk);
    TS_CHECK(strcmp(want, disk) == 0, "the download is attempt 2's file (%s vs %s)", want, disk);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-1", dir, id);
    TS_CHECK(!ts_is_dir(path), "the hung attempt's folder was left after the takeover");
    printf("hung node: taken over and finished in %.1f s\n", ts_now() - t0);

    /* Back to life: its child goes on writing, its runner goes on. */
    TS_CHECK(kill(child, SIGCONT) == 0 && kill(hung->pid, SIGCONT) == 0, "SIGCONT");
    char needle[128];
    snprintf(needle, sizeof(needle), "stale attempt discarded id=%s attempt=1", id);
    double deadline = ts_now() + 20;
    while (ts_now() < deadline && ts_log_count(hung, needle) == 0)
        ts_sleep_ms(50);
    TS_CHECK(ts_log_count(hung, needle) == 1, "the resumed node did not discard its attempt");
    ts_sleep_ms(1500); /* a late write or a duplicate delivery would come by now */
    for (int n = 0; n < 2; n++) {
        ts_download_sha(nodes[n], id, "med", dir, got);
        TS_CHECK(strcmp(want, got) == 0, "node %c serves other bytes after the resume", 'A' + n);
        snprintf(path, sizeof(path), "/v1/jobs/%s", id);
        ts_http(nodes[n], &r, "GET", path, NULL, NULL, 0);
        j = ts_http_json(&r);
        ts_http_free(&r);
        TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 2 &&
                     json_number_value(json_object_get(json_object_get(j, "progress"),
                                                       "percent")) == 100,
                 "the job through node %c after the resume: %s", 'A' + n,
                 j ? json_dumps(j, 0) : "none");
        json_decref(j);
    }
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-2/med.mp4", dir, id);
    ts_sha256_file(path, disk);
    TS_CHECK(strcmp(want, disk) == 0, "attempt 2's file changed on disk");
    list_outputs(dir, id, listing, sizeof(listing));
    TS_CHECK(strcmp(listing, ".attempt-2 ") == 0, "outputs/%s holds: %s", id, listing);
    TS_CHECK(kill(child, 0) != 0, "the stale job child %d still runs", (int)child);
    ts_wait_delivered(log, id, "job.succeeded", 10);
    TS_CHECK(ts_deliveries(log, id, "job.succeeded") == 1, "job.succeeded delivered %d times",
             ts_deliveries(log, id, "job.succeeded"));
    printf("hung node resumed: outputs unchanged, one job.succeeded (%.1f s in all)\n",
           ts_now() - t0);

    /* ---- bad input: a killed attempt's folder, files planted where a
     * stale attempt or the old layout would put them */
    t0 = ts_now();
    char *kid = submit(&b, WITH_HLS);
    k = ts_runner_of(nodes, 2, kid, 30);
    struct ts_server *victim = nodes[k], *survivor = nodes[1 - k];
    ts_wait_progress(survivor, kid, 0, 30);
    TS_CHECK(ts_server_stop(victim, SIGKILL, 10) == 128 + SIGKILL, "kill -9");
    live[k] = 0;
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-1", dir, kid);
    TS_CHECK(ts_is_dir(path), "the killed attempt left no folder (%s)", path);
    j = ts_wait_job(survivor, kid, 90);
    TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 2,
             "the killed node's job, finished by the other: %s", j ? json_dumps(j, 0) : "none");
    json_decref(j);
    TS_CHECK(!ts_is_dir(path), "the killed attempt's folder remains");
    list_outputs(dir, kid, listing, sizeof(listing));
    TS_CHECK(strcmp(listing, ".attempt-2 ") == 0, "outputs/%s holds: %s", kid, listing);
    ts_download_sha(survivor, kid, "med", dir, want);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-2/med.mp4", dir, kid);
    ts_sha256_file(path, disk);
    TS_CHECK(strcmp(want, disk) == 0, "the download is attempt 2's file");
    char hls_want[65];
    ts_download_sha(survivor, kid, "h", dir, hls_want);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-2/h/master.m3u8", dir, kid);
    ts_sha256_file(path, disk);
    TS_CHECK(strcmp(hls_want, disk) == 0, "the hls master is attempt 2's");
    /* Planted: a stale attempt's folder, and the pre-attempt layout. */
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-1", dir, kid);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/outputs/%s/.attempt-1/med.mp4", dir, kid);
    write_junk(path);
    snprintf(path, sizeof(path), "%s/outputs/%s/med.mp4", dir, kid);
    write_junk(path);
    snprintf(path, sizeof(path), "%s/outputs/%s/h", dir, kid);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/outputs/%s/h/master.m3u8", dir, kid);
    write_junk(path);
    ts_download_sha(survivor, kid, "med", dir, got);
    TS_CHECK(strcmp(want, got) == 0, "a planted file was served");
    ts_download_sha(survivor, kid, "h", dir, got);
    TS_CHECK(strcmp(hls_want, got) == 0, "a planted hls master was served");
    /* A path that would reach into an attempt folder is refused. */
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/h/..%%2F.attempt-1%%2Fmed.mp4", kid);
    ts_http(survivor, &r, "GET", path, NULL, NULL, 0);
    TS_CHECK(r.status == 404, "reaching into another folder: %ld", r.status);
    ts_http_free(&r);
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/.attempt-1", kid);
    ts_http(survivor, &r, "GET", path, NULL, NULL, 0);
    TS_CHECK(r.status == 404, "an attempt folder as an output name: %ld", r.status);
    ts_http_free(&r);
    printf("killed attempt: its folder removed, planted files never served (%.1f s)\n",
           ts_now() - t0);

    /* The server keeps serving, then stops cleanly. */
    ts_serving_then_stop(survivor, 30);
    live[0] = live[1] = 0;
    ts_stop(rpid);
    free(id);
    free(kid);
    return ts_finish(dir, 0);
}
