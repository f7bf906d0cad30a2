/*
 * Three vidq nodes on loopback sharing one PostgreSQL database and one
 * --data-dir, behind Debian's nginx configured from deploy/nginx/vidq.conf:
 * round-robin, no stickiness (issue #17 part 4; run only on PostgreSQL:
 * ctest it.test_pg_lb.pg, under tests/support/with_pg.sh). Every request
 * of the test goes through the balancer:
 *   - bad requests (unknown job, non-media body, bad outputs) get their
 *     error, and the nodes keep serving;
 *   - uploads: multipart, raw with Content-Length, raw chunked; the stored
 *     input has every byte; nginx never spooled a body to its disk (its
 *     error log would say "buffered to a temporary file");
 *   - GET /status/<id> and GET /v1/jobs answer the same on whichever node
 *     gets them (the access log shows all three served);
 *   - the event stream of a running job, to its end: each event in order
 *     (status queued/running/succeeded never backwards, percent never down,
 *     the final status last, then the stream ends), and live (the first
 *     event arrives before the job's finished_at: nothing held it back);
 *   - downloads: the whole output (ffprobe), Range (206, the same bytes as
 *     the whole file, on each node), a suffix range, 416;
 *   - cancel of a queued job (never starts) and of a running one;
 *   - webhooks: each final event delivered once, signed (verified by the
 *     standardwebhooks receiver), job.started once per job;
 *   - kill -9 of the node running a job while uploads keep coming: the job
 *     completes on another node (attempts 2), every upload that got its 202
 *     completes with every byte of its input, reads keep answering.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ts_lb.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define CLIP "h264_aac_640x360.mp4"    /* 2 s */
#define LONG "h264_aac_640x360_10s.mp4" /* 10 s */

/* Well under a second on the 2 s clip. */
static const char FAST[] = "[{\"name\":\"fast\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"h264\",\"speed\":\"veryfast\",\"max_height\":240},"
                           "\"audio\":{\"codec\":\"aac\"}}]";
/* A second or two on the 10 s clip: long enough to watch and to kill. */
static const char MED[] = "[{\"name\":\"med\",\"container\":\"mp4\",\"video\":{\"codec\":"
                          "\"h264\",\"speed\":\"fast\",\"max_height\":360},"
                          "\"audio\":{\"codec\":\"aac\"}}]";
/* A few seconds on the 10 s clip: still running when its node is killed. */
static const char MED_SLOWER[] = "[{\"name\":\"med\",\"container\":\"mp4\",\"video\":{\"codec\":"
                                 "\"h264\",\"speed\":\"medium\",\"max_height\":360},"
                                 "\"audio\":{\"codec\":\"aac\"}}]";
/* Runs far longer than the test waits: only ever canceled. */
static const char SLOW[] = "[{\"name\":\"slow\",\"container\":\"mp4\",\"video\":{\"codec\":"
                           "\"h264\",\"speed\":\"veryslow\"},\"audio\":{\"codec\":\"aac\"}}]";

static struct ts_lb C;
static const struct ts_server *LB;

static char *id_of_answer(struct ts_http *r, const char *what)
{
    TS_CHECK(r->status == 202, "%s: %ld %s", what, r->status, r->body);
    json_t *j = ts_http_json(r);
    const char *id = json_string_value(json_object_get(j, "id"));
    TS_CHECK(id, "%s: no id in %s", what, r->body);
    char *out = strdup(id);
    json_decref(j);
    ts_http_free(r);
    return out;
}

static char *submit(const char *clip, const char *outputs)
{
    return ts_submit_outputs(LB, clip, outputs, NULL, 202, NULL);
}

static json_t *wait_final(const char *id, double timeout_s)
{
    json_t *j = ts_wait_job(LB, id, timeout_s);
    TS_CHECK(j && ts_job_status(j), "no final status for %s", id);
    return j;
}

static void expect_succeeded(const char *id, long attempts, const char *what)
{
    json_t *j = wait_final(id, 60);
    char *dump = json_dumps(j, JSON_COMPACT);
    TS_EXPECT(strcmp(ts_job_status(j), "succeeded") == 0 && (!attempts || ts_job_attempts(j) == attempts),
              "%s: %s", what, dump);
    free(dump);
    json_decref(j);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static char *read_all(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    TS_CHECK(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    TS_CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    b[n] = '\0';
    fclose(f);
    *len = n;
    return b;
}

/* ------------------------------------------------------------ webhooks */

/* ------------------------------------------------------------ the event stream */

/* An RFC 3339 UTC time with milliseconds ("2026-12-02T21:44:54.480Z") as
 * Unix seconds, or 0. */
static double rfc3339(const char *t)
{
    struct tm tm = {0};
    const char *rest = t ? strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return 0;
    return (double)timegm(&tm) + (*rest == '.' ? strtod(rest, NULL) : 0);
}

/* Reads the stream of id through the balancer to its end; checks the
 * order of its events. Returns how long before the job's finished_at the
 * first event arrived (seconds; negative: only after the job had ended,
 * so the stream was held back). */
static double check_events(const char *dir, const char *id)
{
    char out[4400], hdr[4400];
    snprintf(out, sizeof(out), "%s/sse-%s.txt", dir, id);
    snprintf(hdr, sizeof(hdr), "%s/sse-%s.hdr", dir, id);
    /* Each line stamped with its arrival time (the test's clock). */
    int rc = ts_run(NULL, 0,
                    "bash -c 'set -o pipefail; curl -sN --max-time 60 -D %s %s/v1/jobs/%s/events"
                    " | while IFS= read -r l; do echo \"$(date +%%s.%%N) $l\"; done > %s'",
                    hdr, LB->base, id, out);
    TS_CHECK(rc == 0, "the event stream of %s did not end by itself (curl: %d)", id, rc);
    long hl;
    char *h = read_all(hdr, &hl);
    TS_EXPECT(strcasestr(h, "content-type: text/event-stream") != NULL, "stream headers: %s", h);
    free(h);
    FILE *f = fopen(out, "r");
    TS_CHECK(f, "open %s", out);
    static const char *const order[] = {"queued", "running", "succeeded"};
    int rank = -1, events = 0, progress = 0, finals = 0, after_final = 0;
    double pct = -1, first_t = 0, last_t = 0, finished = 0;
    char ev[64] = "";
    char line[65536];
    while (fgets(line, sizeof(line), f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        double t = strtod(line, NULL);
        char *l = sp + 1;
        l[strcspn(l, "\r\n")] = '\0';
        if (strncmp(l, "event: ", 7) == 0) {
            snprintf(ev, sizeof(ev), "%s", l + 7);
            continue;
        }
        if (strncmp(l, "data: ", 6) != 0)
            continue;
        if (finals)
            after_final++;
        json_t *j = json_loads(l + 6, 0, NULL);
        TS_CHECK(j, "event data is not JSON: %s", l);
        events++;
        if (!first_t)
            first_t = t;
        last_t = t;
        const char *st = ts_job_status(j);
        int r = -1;
        for (int i = 0; i < 3; i++)
            if (st && strcmp(st, order[i]) == 0)
                r = i;
        TS_EXPECT(r >= 0, "event %d of %s: status %s", events, id, st ? st : "none");
        TS_EXPECT(r >= rank, "event %d of %s: status %s after %s", events, id, st,
                  rank >= 0 ? order[rank] : "-");
        if (r > rank)
            TS_EXPECT(strcmp(ev, "status") == 0, "status %s came as event '%s'", st, ev);
        rank = r > rank ? r : rank;
        double p = json_number_value(json_object_get(json_object_get(j, "progress"), "percent"));
        TS_EXPECT(p + 1e-9 >= pct, "percent went down: %.2f after %.2f", p, pct);
        pct = p;
        if (strcmp(ev, "progress") == 0)
            progress++;
        if (r == 2) {
            finals++;
            finished = rfc3339(json_string_value(json_object_get(j, "finished_at")));
        }
        json_decref(j);
    }
    fclose(f);
    TS_EXPECT(finals == 1 && after_final == 0, "final status events %d, then %d more", finals,
              after_final);
    TS_EXPECT(rank == 2 && pct == 100, "the stream ended at %s, %.1f%%",
              rank >= 0 ? order[rank] : "-", pct);
    TS_EXPECT(progress >= 1, "no progress event among %d", events);
    TS_EXPECT(finished > 0, "no finished_at in the final event");
    printf("event stream through nginx: %d events (%d progress), %.2f s from first to last, "
           "the first %.2f s before the job ended\n",
           events, progress, last_t - first_t, finished - first_t);
    return finished - first_t;
}

/* ------------------------------------------------------------ downloads */

static void check_download(const char *dir, const char *id, const char *name, double dur_min,
                           double dur_max)
{
    char path[512], file[4400];
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/%s", id, name);
    snprintf(file, sizeof(file), "%s/dl-%s.mp4", dir, id);
    long st = ts_http_download(LB, path, file);
    TS_CHECK(st == 200, "download %s: %ld", path, st);
    json_t *p = ts_ffprobe(file);
    TS_CHECK(p && json_array_size(json_object_get(p, "streams")) == 2, "ffprobe %s", file);
    double dur = strtod(
        json_string_value(json_object_get(json_object_get(p, "format"), "duration")) ?: "0", NULL);
    TS_EXPECT(dur > dur_min && dur < dur_max, "duration %f", dur);
    json_decref(p);
    long len;
    char *whole = read_all(file, &len);
    TS_CHECK(len > 3000, "output of %ld bytes", len);

    /* The same range on each node in turn (round-robin: 3 requests). */
    for (int i = 0; i < C.n; i++) {
        const char *h[] = {"Range: bytes=1000-2999", NULL};
        struct ts_http r;
        ts_http(LB, &r, "GET", path, h, NULL, 0);
        TS_EXPECT(r.status == 206 && r.len == 2000 && memcmp(r.body, whole + 1000, 2000) == 0,
                  "range %d: %ld, %zu bytes", i, r.status, r.len);
        char *cr = ts_http_header(&r, "Content-Range");
        char want[64];
        snprintf(want, sizeof(want), "bytes 1000-2999/%ld", len);
        TS_EXPECT(cr && strcmp(cr, want) == 0, "Content-Range %s, want %s", cr ? cr : "none",
                  want);
        free(cr);
        ts_http_free(&r);
    }
    const char *suffix[] = {"Range: bytes=-500", NULL};
    struct ts_http r;
    ts_http(LB, &r, "GET", path, suffix, NULL, 0);
    TS_EXPECT(r.status == 206 && r.len == 500 && memcmp(r.body, whole + len - 500, 500) == 0,
              "suffix range: %ld, %zu bytes", r.status, r.len);
    ts_http_free(&r);
    char past[64];
    snprintf(past, sizeof(past), "Range: bytes=%ld-", len + 10);
    const char *bad[] = {past, NULL};
    ts_http(LB, &r, "GET", path, bad, NULL, 0);
    TS_EXPECT(r.status == 416, "range past the end: %ld", r.status);
    ts_http_free(&r);
    const char *const ranged[] = {"/outputs/", NULL};
    int ups = 0;
    ts_lb_access(&C, ranged, &ups);
    TS_EXPECT(ups == C.n, "downloads served by %d of %d nodes", ups, C.n);
    free(whole);
    unlink(file);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    ts_pg_only("test_pg_lb");
    double t_start = ts_now();
    char url[4400], flags[5000], log[4400];
    char *dir = ts_mkdtemp_store("pg-lb", url, sizeof(url));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 3 --max-concurrent 1 --isolation process "
             TS_WEBHOOK_FLAGS(SECRET), url);
    int rport = 0;
    int rpid = ts_hooks_start(dir, SECRET, log, sizeof(log), &rport);
    ts_lb_start(&C, dir, 3, flags);
    LB = &C.lb;
    printf("3 nodes and nginx up in %.2f s (balancer %s)\n", ts_now() - t_start, LB->base);

    /* ---- a global webhook, registered through one node, seen by all */
    ts_hooks_register(LB, rport,
                      "[\"job.started\",\"job.succeeded\",\"job.failed\",\"job.canceled\"]");
    struct ts_http r;
    for (int i = 0; i < C.n; i++) {
        ts_http(LB, &r, "GET", "/v1/webhooks", NULL, NULL, 0);
        TS_EXPECT(r.status == 200 && strstr(r.body, "/all"), "webhook list %d: %s", i, r.body);
        ts_http_free(&r);
    }

    /* ---- bad requests through the balancer */
    ts_http(LB, &r, "GET", "/status/AAAAAAAAAAAAAAAAAAAAAA", NULL, NULL, 0);
    TS_EXPECT(r.status == 404 && strstr(r.body, "\"not_found\""), "unknown job: %ld %s", r.status,
              r.body);
    ts_http_free(&r);
    static const char junk[] = "this is not a video, just some bytes that no demuxer will take";
    const char *octet[] = {"Content-Type: application/octet-stream", NULL};
    ts_http(LB, &r, "POST", "/upload", octet, junk, sizeof(junk));
    TS_EXPECT(r.status == 415 && strstr(r.body, "\"unsupported_media\""), "junk upload: %ld %s",
              r.status, r.body);
    ts_http_free(&r);
    ts_http_upload_raw(LB, &r, "/upload?outputs=%5B%7B%22name%22%3A1%7D%5D", ts_media(CLIP),
                       "video/mp4", NULL);
    TS_EXPECT(r.status == 400 && strstr(r.body, "\"error\""), "bad outputs: %ld %s", r.status,
              r.body);
    ts_http_free(&r);
    ts_http(LB, &r, "POST", "/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/cancel", NULL, NULL, 0);
    TS_EXPECT(r.status == 404, "cancel of an unknown job: %ld", r.status);
    ts_http_free(&r);

    /* ---- uploads three ways; the stream of the first one, live */
    const char *fields[] = {"outputs", MED, "metadata", "{\"via\":\"lb\"}", NULL};
    ts_http_upload_multipart(LB, &r, "/upload", ts_media(LONG), fields, NULL);
    char *j1 = id_of_answer(&r, "multipart upload");
    double ahead = check_events(dir, j1);
    TS_EXPECT(ahead > 0, "the stream's first event came %.2f s after the job ended", -ahead);
    char path[2048];
    char *esc = curl_easy_escape(NULL, FAST, 0);
    snprintf(path, sizeof(path), "/upload?outputs=%s", esc);
    curl_free(esc);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    ts_http_upload_raw(LB, &r, path, ts_media(CLIP), "video/mp4", chunked);
    char *j2 = id_of_answer(&r, "chunked raw upload");
    char *j3 = submit(CLIP, FAST);
    char *ok_jobs[] = {j1, j2, j3};
    for (int i = 0; i < 3; i++) {
        json_t *j = wait_final(ok_jobs[i], 60);
        char *dump = json_dumps(j, JSON_COMPACT);
        TS_EXPECT(strcmp(ts_job_status(j), "succeeded") == 0 && ts_job_attempts(j) == 1, "job %d: %s",
                  i, dump);
        long want = file_size(ts_media(i == 0 ? LONG : CLIP));
        long got = (long)json_integer_value(json_object_get(json_object_get(j, "input"), "size"));
        TS_EXPECT(got == want, "job %d: input size %ld, sent %ld", i, got, want);
        free(dump);
        json_decref(j);
        TS_EXPECT(ts_lb_started(&C, ok_jobs[i]) == 1, "job %d started %d times", i,
                  ts_lb_started(&C, ok_jobs[i]));
    }
    json_t *j = ts_job_must(LB, j1);
    TS_EXPECT(json_is_object(json_object_get(j, "metadata")) &&
                  strcmp(json_string_value(json_object_get(json_object_get(j, "metadata"), "via"))
                             ?: "",
                         "lb") == 0,
              "metadata through the balancer");
    json_decref(j);

    /* ---- status and list on each node in turn: the same answer */
    for (int i = 0; i < C.n; i++) {
        ts_http(LB, &r, "GET", "/v1/jobs?limit=10", NULL, NULL, 0);
        TS_EXPECT(r.status == 200 && strstr(r.body, j1) && strstr(r.body, j2) &&
                      strstr(r.body, j3),
                  "list %d: %ld %s", i, r.status, r.body);
        ts_http_free(&r);
        for (int k = 0; k < 3; k++) {
            j = ts_job_must(LB, ok_jobs[k]);
            TS_EXPECT(strcmp(ts_job_status(j), "succeeded") == 0, "status of job %d, read %d", k, i);
            json_decref(j);
        }
    }
    int ups = 0;
    const char *const lists[] = {"GET /v1/jobs?limit=10 200", NULL};
    ts_lb_access(&C, lists, &ups);
    TS_EXPECT(ups == C.n, "lists served by %d of %d nodes", ups, C.n);
    const char *const statuses[] = {"GET /status/", " 200 ", NULL};
    ts_lb_access(&C, statuses, &ups);
    TS_EXPECT(ups == C.n, "status reads served by %d of %d nodes", ups, C.n);

    /* ---- downloads */
    check_download(dir, j1, "med", 9, 11);
    printf("uploads, status, events, downloads done at %.1f s\n", ts_now() - t_start);

    /* ---- cancel: all three nodes busy, a fourth job queued */
    char *slow[3];
    for (int i = 0; i < 3; i++)
        slow[i] = submit(LONG, SLOW);
    int busy[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        busy[ts_lb_runner_of(&C, slow[i], 20)]++;
    TS_EXPECT(busy[0] == 1 && busy[1] == 1 && busy[2] == 1, "slow jobs per node: %d %d %d",
              busy[0], busy[1], busy[2]);
    char *queued = submit(CLIP, FAST);
    j = ts_job_must(LB, queued);
    TS_EXPECT(strcmp(ts_job_status(j), "queued") == 0 &&
                  json_integer_value(json_object_get(j, "queue_position")) == 1,
              "the fourth job waits first in line: %s", json_dumps(j, JSON_COMPACT));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", queued);
    ts_http(LB, &r, "POST", path, NULL, NULL, 0);
    TS_EXPECT(r.status == 202, "cancel queued: %ld %s", r.status, r.body);
    ts_http_free(&r);
    double t0 = ts_now();
    for (int i = 0; i < 3; i++) {
        /* the first with DELETE, the alias */
        snprintf(path, sizeof(path), i == 0 ? "/v1/jobs/%s" : "/v1/jobs/%s/cancel", slow[i]);
        ts_http(LB, &r, i == 0 ? "DELETE" : "POST", path, NULL, NULL, 0);
        TS_EXPECT(r.status == 202, "cancel running %d: %ld %s", i, r.status, r.body);
        ts_http_free(&r);
    }
    for (int i = 0; i < 3; i++) {
        j = wait_final(slow[i], 20);
        TS_EXPECT(strcmp(ts_job_status(j), "canceled") == 0, "slow %d: %s", i, ts_job_status(j));
        json_decref(j);
    }
    printf("three running jobs canceled through nginx in %.2f s\n", ts_now() - t0);
    j = wait_final(queued, 5);
    TS_EXPECT(strcmp(ts_job_status(j), "canceled") == 0 && json_is_null(json_object_get(j, "started_at")),
              "queued job: %s", json_dumps(j, JSON_COMPACT));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", queued);
    ts_http(LB, &r, "POST", path, NULL, NULL, 0);
    TS_EXPECT(r.status == 409, "second cancel: %ld", r.status);
    ts_http_free(&r);
    for (int i = 0; i < 3; i++) {
        char outdir[4400];
        snprintf(outdir, sizeof(outdir), "%s/outputs/%s", dir, slow[i]);
        struct stat sb;
        double deadline = ts_now() + 5;
        while (ts_now() < deadline && stat(outdir, &sb) == 0)
            ts_sleep_ms(50);
        TS_EXPECT(stat(outdir, &sb) != 0, "partial outputs of canceled %d remain", i);
    }

    /* ---- kill -9 of the node running a job, uploads coming all along */
    char *k1 = submit(LONG, MED_SLOWER);
    int victim = ts_lb_runner_of(&C, k1, 20);
    char ulog[4400];
    snprintf(ulog, sizeof(ulog), "%s/uploads.txt", dir);
    /* the loop runs in the background: a child shell */
    char *fe = curl_easy_escape(NULL, FAST, 0);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "for i in 1 2 3 4 5 6; do curl -s -o %s/up-$i.json -w '%%{http_code}\\n'"
             " -H 'Content-Type: video/mp4' --data-binary @%s '%s/upload?outputs=%s' >> %s;"
             " done",
             dir, ts_media(CLIP), LB->base, fe, ulog);
    curl_free(fe);
    pid_t up = fork();
    TS_CHECK(up >= 0, "fork");
    if (up == 0) {
        execl("/bin/bash", "bash", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* kill while the job runs and the first upload is under way (its bytes
     * arrive in tmp/), or done if it was quicker than this poll */
    char tmpdir[4400];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", dir);
    double deadline = ts_now() + 20;
    while (ts_now() < deadline && ts_count_files(tmpdir) <= 0 && file_size(ulog) <= 0)
        ts_sleep_ms(10);
    j = ts_job_must(LB, k1);
    TS_CHECK(strcmp(ts_job_status(j), "running") == 0, "k1 not running at the kill: %s",
             json_dumps(j, JSON_COMPACT));
    json_decref(j);
    int st = ts_lb_stop_node(&C, victim, SIGKILL, 10);
    TS_CHECK(st == 128 + SIGKILL, "kill -9 node %d: %d", victim + 1, st);
    double t_kill = ts_now();
    /* reads keep answering: nginx passes them to the others */
    for (int i = 0; i < 6; i++) {
        j = ts_job_must(LB, k1);
        json_decref(j);
    }
    int wst;
    TS_CHECK(waitpid(up, &wst, 0) == up && WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
             "the upload loop failed");
    expect_succeeded(k1, 2, "the killed node's job");
    printf("kill -9 of node %d: its job finished elsewhere %.1f s later\n", victim + 1,
           ts_now() - t_kill);
    TS_EXPECT(ts_started_count(&C.node[victim], k1) == 1 && ts_lb_started(&C, k1) == 2, "k1 started %d times",
              ts_lb_started(&C, k1));
    check_download(dir, k1, "med", 9, 11);
    char *loop_ids[6];
    int acked = 0;
    FILE *uf = fopen(ulog, "r");
    TS_CHECK(uf, "no %s", ulog);
    for (int i = 0; i < 6; i++) {
        long code = 0;
        TS_CHECK(fscanf(uf, "%ld", &code) == 1, "upload %d: no status", i + 1);
        loop_ids[i] = NULL;
        char f[4400];
        snprintf(f, sizeof(f), "%s/up-%d.json", dir, i + 1);
        long n;
        char *b = read_all(f, &n);
        if (code == 202) {
            json_t *a = json_loads(b, 0, NULL);
            const char *lid = json_string_value(json_object_get(a, "id"));
            TS_CHECK(lid && *lid, "upload %d: 202 without an id: %s", i + 1, b);
            loop_ids[i] = strdup(lid);
            json_decref(a);
            acked++;
        } else {
            /* only an upload cut by the kill may fail, with the balancer's 502 */
            TS_EXPECT(code == 502, "upload %d: %ld %s", i + 1, code, b);
        }
        free(b);
    }
    fclose(uf);
    TS_EXPECT(acked >= 5, "%d of 6 uploads acknowledged across the kill", acked);
    for (int i = 0; i < 6; i++) {
        if (!loop_ids[i])
            continue;
        j = wait_final(loop_ids[i], 60);
        long got = (long)json_integer_value(json_object_get(json_object_get(j, "input"), "size"));
        TS_EXPECT(strcmp(ts_job_status(j), "succeeded") == 0 && got == file_size(ts_media(CLIP)),
                  "acknowledged upload %d: %s, input %ld bytes", i + 1, ts_job_status(j), got);
        json_decref(j);
    }
    printf("uploads across the kill: %d of 6 acknowledged, all completed\n", acked);

    /* ---- webhooks: one delivery per event, signed */
    for (int i = 0; i < 3; i++)
        ts_wait_delivered(log, ok_jobs[i], "job.succeeded", 20);
    for (int i = 0; i < 3; i++)
        ts_wait_delivered(log, slow[i], "job.canceled", 20);
    ts_wait_delivered(log, queued, "job.canceled", 20);
    ts_wait_delivered(log, k1, "job.succeeded", 20);
    for (int i = 0; i < 6; i++)
        if (loop_ids[i])
            ts_wait_delivered(log, loop_ids[i], "job.succeeded", 20);
    ts_sleep_ms(1000); /* a duplicate would come by now (the senders poll every 200 ms) */
    for (int i = 0; i < 3; i++) {
        TS_EXPECT(ts_deliveries(log, ok_jobs[i], "job.succeeded") == 1, "job %d: %d deliveries", i,
                  ts_deliveries(log, ok_jobs[i], "job.succeeded"));
        TS_EXPECT(ts_deliveries(log, ok_jobs[i], "job.started") == 1, "job %d: %d job.started", i,
                  ts_deliveries(log, ok_jobs[i], "job.started"));
        TS_EXPECT(ts_deliveries(log, slow[i], "job.canceled") == 1, "slow %d: %d deliveries", i,
                  ts_deliveries(log, slow[i], "job.canceled"));
    }
    TS_EXPECT(ts_deliveries(log, queued, "job.canceled") == 1 &&
                  ts_deliveries(log, queued, "job.started") == 0,
              "queued job: %d canceled, %d started", ts_deliveries(log, queued, "job.canceled"),
              ts_deliveries(log, queued, "job.started"));
    TS_EXPECT(ts_deliveries(log, k1, "job.succeeded") == 1, "k1: %d deliveries",
              ts_deliveries(log, k1, "job.succeeded"));
    for (int i = 0; i < 6; i++)
        if (loop_ids[i])
            TS_EXPECT(ts_deliveries(log, loop_ids[i], "job.succeeded") == 1,
                      "upload %d: %d deliveries", i + 1,
                      ts_deliveries(log, loop_ids[i], "job.succeeded"));

    /* ---- nginx streamed every body (never spooled one to its disk) */
    char *nlog = ts_server_log(&C.lb);
    TS_EXPECT(!strstr(nlog, "buffered to a temporary file"), "nginx spooled: %s", nlog);
    free(nlog);

    /* ---- the survivors stop cleanly */
    ts_lb_stop_all(&C, victim, 30);
    ts_stop(rpid);
    printf("whole test: %.1f s\n", ts_now() - t_start);
    for (int i = 0; i < 3; i++) {
        free(ok_jobs[i]);
        free(slow[i]);
    }
    for (int i = 0; i < 6; i++)
        free(loop_ids[i]);
    free(queued);
    free(k1);
    return ts_finish(dir, 1); /* removes the inputs and outputs of a dozen jobs */
}
