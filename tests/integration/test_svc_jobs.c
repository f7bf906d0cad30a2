/*
 * The service's queue, end to end, in both isolation modes: progress
 * through the event stream (monotonic, several intermediate values), the
 * concurrency cap with 6 jobs and N=2, priority and queue_position,
 * --max-queued (429), cancel of queued and running jobs (both forms), and
 * cancels racing a job's end (202 means canceled, else 409 and succeeded).
 * ctest-labels: integration
 * ctest-timeout: 240
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_nodes.h"

/* A few seconds: the 10 s clip with a medium x264 preset. */
static const char MEDIUM[] = TS_OUTPUTS_MEDIUM;
/* Longer: the 10 s clip with x264 veryslow. */
static const char SLOW[] = TS_OUTPUTS_SLOW;
/* About a second: the 2 s clip, slow preset. */
static const char MED[] = "[{\"name\":\"m\",\"container\":\"mp4\",\"video\":{\"codec\":"
                          "\"h264\",\"speed\":\"slow\"},\"audio\":{\"codec\":\"aac\"}}]";

static double rfc3339(json_t *v)
{
    const char *t = json_string_value(v);
    if (!t)
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = 0;
    if (sscanf(t, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

static void progress_stream(struct ts_server *s)
{
    char *id = ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", MEDIUM, NULL, 202, NULL);
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s/events", id);
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0); /* returns when the job ended */
    TS_CHECK(r.status == 200, "events %ld", r.status);
    int n_status = 0, n_progress = 0, distinct = 0, saw_running = 0;
    double last = -1;
    char last_event[32] = "";
    json_t *final = NULL;
    char *save = NULL;
    for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "event: ", 7) == 0) {
            snprintf(last_event, sizeof(last_event), "%s", line + 7);
            continue;
        }
        if (strncmp(line, "data: ", 6) != 0)
            continue;
        json_t *j = json_loads(line + 6, 0, NULL);
        TS_CHECK(j, "event data is JSON: %s", line);
        if (strcmp(last_event, "status") == 0)
            n_status++;
        else if (strcmp(last_event, "progress") == 0)
            n_progress++;
        else
            TS_CHECK(0, "unknown event %s", last_event);
        if (strcmp(ts_job_status(j), "running") == 0)
            saw_running = 1;
        double pct = json_real_value(json_object_get(json_object_get(j, "progress"), "percent"));
        if (strcmp(ts_job_status(j), "running") == 0) {
            TS_CHECK(pct >= last, "percent went down: %f after %f", pct, last);
            if (pct > last && pct > 0 && pct < 100)
                distinct++;
            last = pct;
        }
        json_decref(final);
        final = j;
    }
    TS_CHECK(final && strcmp(ts_job_status(final), "succeeded") == 0 &&
                 json_real_value(json_object_get(json_object_get(final, "progress"),
                                                 "percent")) == 100 &&
                 strcmp(last_event, "status") == 0,
             "the stream ends with the succeeded status event");
    TS_CHECK(saw_running && n_status >= 2, "status events: %d", n_status);
    TS_CHECK(n_progress >= 3 && distinct >= 3, "progress events %d, distinct values %d",
             n_progress, distinct);
    json_decref(final);
    ts_http_free(&r);
    free(id);
}

static void concurrency_and_queue(struct ts_server *s)
{
    enum { N = 6 };
    char *ids[N + 1];
    json_t *first = NULL;
    for (int i = 0; i < N; i++) {
        json_t *j = NULL;
        /* The first two hold both slots for a few seconds, so the queue
         * checks below hold even on a loaded machine. */
        if (i < 2)
            ids[i] = ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", MEDIUM, NULL, 202, &j);
        else
            ids[i] = ts_submit_outputs(s, "h264_aac_640x360.mp4", MED, NULL, 202, &j);
        if (i == 1) { /* both slots taken before the queue fills */
            for (int k = 0; k < 2; k++) {
                json_t *w = ts_wait_status(s, ids[k], "running", 30);
                TS_CHECK(w && strcmp(ts_job_status(w), "running") == 0, "job %d runs", k);
                json_decref(w);
            }
        }
        if (i == N - 1)
            TS_CHECK(json_integer_value(json_object_get(j, "queue_position")) == 4,
                     "the 6th job is 4th in the queue: %s", json_dumps(j, 0));
        if (i == 0)
            first = j;
        else
            json_decref(j);
    }
    json_decref(first);
    /* 2 running + 4 queued: the queue is full. */
    ts_submit_outputs(s, "h264_aac_640x360.mp4", MED, NULL, 429, NULL);
    /* Cancel a queued one (DELETE form); a higher priority job goes first. */
    char path[256];
    snprintf(path, sizeof(path), "/v1/jobs/%s", ids[4]);
    struct ts_http r;
    ts_http(s, &r, "DELETE", path, NULL, NULL, 0);
    json_t *c = ts_http_json(&r);
    TS_CHECK(r.status == 202 && strcmp(ts_job_status(c), "canceled") == 0, "cancel queued: %s",
             r.body);
    json_decref(c);
    ts_http_free(&r);
    json_t *pj = NULL;
    ids[N] = ts_submit_outputs(s, "h264_aac_640x360.mp4", MED, "&priority=5", 202, &pj);
    TS_CHECK(json_integer_value(json_object_get(pj, "queue_position")) == 1,
             "priority job is next: %s", json_dumps(pj, 0));
    json_decref(pj);

    /* Watch: never more than 2 running. */
    int max_running = 0, done = 0;
    double deadline = ts_now() + 90;
    while (!done && ts_now() < deadline) {
        ts_http(s, &r, "GET", "/v1/jobs?status=running&limit=100", NULL, NULL, 0);
        json_t *l = ts_http_json(&r);
        ts_http_free(&r);
        int running = (int)json_array_size(json_object_get(l, "jobs"));
        json_decref(l);
        if (running > max_running)
            max_running = running;
        ts_http(s, &r, "GET", "/metrics", NULL, NULL, 0);
        const char *m = strstr(r.body, "\nvidq_jobs_running ");
        int mr = m ? (int)strtol(m + 19, NULL, 10) : -1;
        TS_CHECK(mr >= 0 && mr <= 2, "metrics running %d", mr);
        ts_http_free(&r);
        done = 1;
        for (int i = 0; i <= N; i++) {
            json_t *j = ts_job_must(s, ids[i]);
            const char *st = ts_job_status(j);
            if (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0)
                done = 0;
            json_decref(j);
        }
        ts_sleep_ms(20);
    }
    TS_CHECK(done, "jobs did not finish");
    TS_CHECK(max_running <= 2, "%d jobs ran at once", max_running);

    /* From the records: intervals never overlap more than 2 deep. */
    double start[N + 1], end[N + 1];
    for (int i = 0; i <= N; i++) {
        json_t *j = ts_job_must(s, ids[i]);
        if (i == 4) {
            TS_CHECK(strcmp(ts_job_status(j), "canceled") == 0 &&
                         json_is_null(json_object_get(j, "started_at")) &&
                         json_integer_value(json_object_get(j, "attempts")) == 0,
                     "a canceled queued job never starts: %s", json_dumps(j, 0));
            start[i] = end[i] = 0;
        } else {
            TS_CHECK(strcmp(ts_job_status(j), "succeeded") == 0, "job %d: %s", i, json_dumps(j, 0));
            start[i] = rfc3339(json_object_get(j, "started_at"));
            end[i] = rfc3339(json_object_get(j, "finished_at"));
            TS_CHECK(start[i] > 0 && end[i] >= start[i], "times of job %d", i);
        }
        json_decref(j);
    }
    for (int i = 0; i <= N; i++) {
        if (i == 4)
            continue;
        int overlap = 0;
        for (int k = 0; k <= N; k++)
            if (k != 4 && start[k] <= start[i] && end[k] > start[i])
                overlap++;
        TS_CHECK(overlap <= 2, "%d jobs overlapped at the start of job %d", overlap, i);
    }
    /* The priority job started before the FIFO job queued last. */
    TS_CHECK(start[N] <= start[5], "priority: %.3f vs %.3f", start[N], start[5]);
    for (int i = 0; i <= N; i++)
        free(ids[i]);
}

static void cancel_running(struct ts_server *s, double max_cancel_s)
{
    char *a = ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", SLOW, NULL, 202, NULL);
    char *b = ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", SLOW, NULL, 202, NULL);
    char *q = ts_submit_outputs(s, "h264_aac_640x360_10s.mp4", SLOW, NULL, 202, NULL);
    char outdir[4400];
    json_t *j = ts_wait_status(s, a, "running", 20);
    TS_CHECK(j && strcmp(ts_job_status(j), "running") == 0, "a runs");
    json_decref(j);
    /* Let it write some output first. */
    double until = ts_now() + 10;
    while (ts_now() < until) {
        j = ts_job_must(s, a);
        double pct = json_real_value(json_object_get(json_object_get(j, "progress"), "percent"));
        json_decref(j);
        if (pct > 5)
            break;
        ts_sleep_ms(20);
    }
    char path[256];
    struct ts_http r;
    /* Queued: canceled at once, never starts. */
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", q);
    ts_http(s, &r, "POST", path, NULL, NULL, 0);
    TS_CHECK(r.status == 202 && strstr(r.body, "\"canceled\""), "cancel queued %ld %s", r.status,
             r.body);
    ts_http_free(&r);
    /* Running: stops within a second, outputs removed. */
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", a);
    double t0 = ts_now();
    ts_http(s, &r, "POST", path, NULL, NULL, 0);
    TS_CHECK(r.status == 202, "cancel running %ld %s", r.status, r.body);
    ts_http_free(&r);
    j = ts_wait_job(s, a, 15);
    double took = ts_now() - t0;
    TS_CHECK(j && strcmp(ts_job_status(j), "canceled") == 0, "canceled: %s", json_dumps(j, 0));
    TS_CHECK(took < max_cancel_s, "cancel took %.2f s", took);
    printf("cancel of a running job took %.3f s\n", took);
    json_decref(j);
    snprintf(outdir, sizeof(outdir), "%s/outputs/%s", s->data_dir, a);
    struct stat st;
    TS_CHECK(stat(outdir, &st) != 0, "partial outputs of a canceled job remain in %s", outdir);
    snprintf(path, sizeof(path), "/v1/jobs/%s", b);
    ts_http(s, &r, "DELETE", path, NULL, NULL, 0);
    TS_CHECK(r.status == 202, "cancel b");
    ts_http_free(&r);
    j = ts_wait_job(s, b, 15);
    TS_CHECK(j && strcmp(ts_job_status(j), "canceled") == 0, "b canceled");
    json_decref(j);
    ts_sleep_ms(300);
    j = ts_job_must(s, q);
    TS_CHECK(strcmp(ts_job_status(j), "canceled") == 0 && json_is_null(json_object_get(j, "started_at")),
             "the canceled queued job never started: %s", json_dumps(j, 0));
    json_decref(j);
    free(a);
    free(b);
    free(q);
}

/* A cancel that races the job's end, at many timings: a 202 means the job
 * ends canceled with no outputs left, a 409 that it had already ended
 * succeeded; never a 202 and then succeeded. */
static void cancel_at_the_end(struct ts_server *s)
{
    static const char FAST[] = "[{\"name\":\"f\",\"container\":\"mp4\",\"video\":{\"codec\":"
                               "\"h264\",\"speed\":\"ultrafast\"},\"audio\":{\"codec\":\"aac\"}}]";
    enum { ROUNDS = 16 };
    /* How long one job takes here, from submit to its end as seen here. */
    double t0 = ts_now();
    char *id = ts_submit_outputs(s, "h264_aac_640x360.mp4", FAST, NULL, 202, NULL);
    json_t *j = ts_wait_job(s, id, 30);
    TS_CHECK(j && strcmp(ts_job_status(j), "succeeded") == 0, "the fast job: %s",
             j ? json_dumps(j, 0) : "none");
    json_decref(j);
    free(id);
    double span = ts_now() - t0;
    int accepted = 0, late = 0;
    for (int i = 0; i < ROUNDS; i++) {
        id = ts_submit_outputs(s, "h264_aac_640x360.mp4", FAST, NULL, 202, NULL);
        /* Every fourth round at once (the claim), the others spread over
         * the second half of a job's span (its end). */
        double wait = i % 4 == 0 ? 0 : span * (0.5 + 0.6 * i / ROUNDS);
        ts_sleep_ms((int)(wait * 1000));
        char path[256];
        snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", id);
        struct ts_http r;
        ts_http(s, &r, "POST", path, NULL, NULL, 0);
        long answer = r.status;
        ts_http_free(&r);
        j = ts_wait_job(s, id, 30);
        const char *st = j ? ts_job_status(j) : NULL;
        if (answer == 202) {
            accepted++;
            TS_CHECK(st && strcmp(st, "canceled") == 0, "round %d: cancel answered 202, job %s",
                     i, st ? st : "(none)");
            char outdir[4400];
            struct stat sb;
            snprintf(outdir, sizeof(outdir), "%s/outputs/%s", s->data_dir, id);
            TS_CHECK(stat(outdir, &sb) != 0, "round %d: outputs of a canceled job remain", i);
        } else {
            late++;
            TS_CHECK(answer == 409 && st && strcmp(st, "succeeded") == 0,
                     "round %d: cancel answered %ld, job %s", i, answer, st ? st : "(none)");
        }
        json_decref(j);
        free(id);
    }
    printf("cancel at the end (job span %.3f s): %d accepted and canceled, %d too late\n", span,
           accepted, late);
}

static void run(const char *isolation)
{
    struct ts_server s;
    char *dir = ts_start_isolated(&s, "svc-jobs", isolation, "--max-concurrent 2 --max-queued 4");
    progress_stream(&s);
    concurrency_and_queue(&s);
    /* A child is killed at once; a thread stops when the library next
     * checks its cancel flag (within 1 s; slack for a loaded machine). */
    cancel_running(&s, strcmp(isolation, "process") == 0 ? 1.0 : 5.0);
    cancel_at_the_end(&s);
    int st = ts_server_stop(&s, SIGTERM, 30);
    TS_CHECK(st == 0, "exit status %d", st);
    free(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run("process");
    run("thread");
    curl_global_cleanup();
    printf("ok\n");
    return 0;
}
