/*
 * Integration test of the webhook outbox (svc/hooks/outbox.c) on a real
 * job store (SQLite, or PostgreSQL under with_pg.sh: it.test_hook_outbox.pg) and a real receiver (tests/support/webhook_receiver.js,
 * verifying with the npm standardwebhooks package):
 *   - events come out of the store's job transitions: job.started at
 *     claim, the final event at finish/cancel, to the upload webhook_url
 *     (final events only), per-job and global registrations;
 *   - retries after 500s reach the receiver with the same webhook-id, and
 *     the attempts are listed;
 *   - registering on a finished job delivers its final event at once;
 *   - deliveries written while no outbox runs (a crash between the job
 *     change and the send) go out after the next start; a retry scheduled
 *     before a restart keeps its webhook-id and attempt count after it;
 *   - bad registrations are refused with a reason; an unregistered global
 *     webhook gets nothing more.
 *
 * ctest-labels: integration
 * ctest-timeout: 60
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "store/hook_event.h"
#include "hooks/outbox.h"
#include "store/job.h"
#include "store/store.h"
#include "test_support.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


static char log_path[4200], base[64];

/* Receiver requests to path (exact path, query ignored). */
static json_t *requests_to(const char *path)
{
    json_t *all = ts_receiver_log(log_path), *out = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) {
        const char *p = json_string_value(json_object_get(o, "path"));
        if (p && strcmp(p, path) == 0)
            json_array_append(out, o);
    }
    json_decref(all);
    return out;
}

/* Wait until path got at least n requests answered 200; returns them. */
static json_t *wait_delivered(const char *path, size_t n, int timeout_s)
{
    time_t end = time(NULL) + timeout_s;
    for (;;) {
        json_t *r = requests_to(path);
        size_t ok = 0, i;
        json_t *o;
        json_array_foreach(r, i, o) {
            if (json_integer_value(json_object_get(o, "answer")) == 200)
                ok++;
        }
        if (ok >= n || time(NULL) > end)
            return r;
        json_decref(r);
        usleep(50 * 1000);
    }
}

static const char *hdr(json_t *req, const char *name)
{
    return json_string_value(json_object_get(json_object_get(req, "headers"), name));
}

/* The "type" of a logged request's body. */
static char *body_type(json_t *req)
{
    static char type[64];
    json_t *b = json_loads(json_string_value(json_object_get(req, "body")), 0, NULL);
    snprintf(type, sizeof(type), "%s",
             b ? json_string_value(json_object_get(b, "type")) ?: "(none)" : "(bad json)");
    json_decref(b);
    return type;
}

static void check_all_verified(json_t *reqs, const char *what)
{
    size_t i;
    json_t *o;
    json_array_foreach(reqs, i, o) {
        TS_EXPECT(json_is_true(json_object_get(o, "verified")), "%s #%zu not verified: %s", what, i,
              json_string_value(json_object_get(o, "verify_error")));
    }
}

static void new_job(struct store *st, char id[JOB_ID_SIZE], const char *webhook_url)
{
    struct job job;
    memset(&job, 0, sizeof(job));
    job_id_new(job.id);
    job.created_at = job_now();
    job.input_path = "/nonexistent/input";
    job.input_json = "{\"filename\":\"clip.mp4\"}";
    job.outputs_json = "[{\"preset\":\"mp4-720p\"}]";
    job.metadata_json = "{}";
    job.webhook_url = (char *)(uintptr_t)webhook_url;
    int r = store_job_create(st, &job);
    TS_EXPECT(r == STORE_OK, "create job: %d", r);
    memcpy(id, job.id, JOB_ID_SIZE);
}

static void claim(struct store *st, const char *want_id)
{
    struct job *j = NULL;
    int r = store_job_claim_next(st, &j);
    TS_EXPECT(r == STORE_OK && j && strcmp(j->id, want_id) == 0, "claim %s: %d", want_id, r);
    job_free(&j);
}

static int reg(struct hook_outbox *o, const char *job_id, const char *body, json_t **created,
               char *err, size_t cap)
{
    json_t *c = NULL;
    int r = hook_outbox_register(o, job_id, body, strlen(body), &c, err, cap);
    if (created)
        *created = c;
    else
        json_decref(c);
    return r;
}

static struct hook_outbox *start(struct store *st, const char *dir, double retry_min)
{
    struct hook_outbox_config cfg = {
        .store = st,
        .data_dir = dir,
        .secret = SECRET,
        .retry_min_s = retry_min,
        .retry_max_age_s = 30,
        .timeout_s = 10,
    };
    char err[256];
    struct hook_outbox *o = NULL;
    if (hook_outbox_start(&cfg, &o, err, sizeof(err)) != 0) {
        fprintf(stderr, "outbox start: %s\n", err);
        exit(1);
    }
    return o;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = ts_mkdtemp("hook_outbox");
    char db[4200], url[512], body[1024], err[512];
    snprintf(log_path, sizeof(log_path), "%s/receiver.jsonl", dir);
    snprintf(db, sizeof(db), "%s", ts_store_url(dir));
    int port = 0;
    int rpid = ts_receiver_start(SECRET, log_path, NULL, &port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

    struct store *st = NULL;
    if (store_open(db, &st, err, sizeof(err)) != STORE_OK) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }

    /* a bad --webhook-secret is refused with a reason */
    struct hook_outbox_config bad_cfg = {.store = st, .data_dir = dir, .secret = "whsec_short"};
    struct hook_outbox *bad = NULL;
    err[0] = '\0';
    TS_EXPECT(hook_outbox_start(&bad_cfg, &bad, err, sizeof(err)) != 0 && !bad &&
              strstr(err, "--webhook-secret"),
          "bad secret accepted: %s", err);

    struct hook_outbox *o = start(st, dir, 0.2);

    /* ---- registrations: bad input */
    static const struct { const char *body; const char *want; } bad_regs[] = {
        {"", "JSON body"},
        {"not json", "JSON object"},
        {"[1,2]", "JSON object"},
        {"{\"events\":[\"job.succeeded\"]}", "\"url\""},
        {"{\"url\": 42}", "\"url\""},
        {"{\"url\":\"ftp://127.0.0.1/x\"}", "http"},
        {"{\"url\":\"http://\"}", "url"},
        {"{\"url\":\"http://127.0.0.1/x\",\"events\":[\"job.exploded\"]}", "job.exploded"},
        {"{\"url\":\"http://127.0.0.1/x\",\"events\":[]}", "empty"},
        {"{\"url\":\"http://127.0.0.1/x\",\"events\":\"job.succeeded\"}", "array"},
        {"{\"url\":\"http://127.0.0.1/x\",\"events\":[7]}", "unknown event"},
        {"{\"url\":\"http://a\",\"url\":\"http://b\"}", "JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad_regs) / sizeof(bad_regs[0]); i++) {
        err[0] = '\0';
        int r = reg(o, NULL, bad_regs[i].body, NULL, err, sizeof(err));
        TS_EXPECT(r == HOOK_EBAD_REQUEST && strstr(err, bad_regs[i].want), "body %s: %d '%s'",
              bad_regs[i].body, r, err);
    }
    TS_EXPECT(reg(o, "AAAAAAAAAAAAAAAAAAAAAA", "{\"url\":\"http://127.0.0.1/x\"}", NULL, err,
              sizeof(err)) == HOOK_ENOT_FOUND,
          "registration on an unknown job");
    json_t *list = NULL;
    TS_EXPECT(hook_outbox_list(o, &list) == HOOK_OK &&
              json_array_size(json_object_get(list, "webhooks")) == 0,
          "a refused registration was stored");
    json_decref(list);

    /* ---- global webhook for started + succeeded */
    json_t *created = NULL;
    snprintf(body, sizeof(body), "{\"url\":\"%s/global\",\"events\":[\"job.started\",\"job.succeeded\"]}",
             base);
    TS_EXPECT(reg(o, NULL, body, &created, err, sizeof(err)) == HOOK_OK, "global: %s", err);
    const char *gid = json_string_value(json_object_get(created, "id"));
    char global_id[64];
    snprintf(global_id, sizeof(global_id), "%s", gid ? gid : "");
    TS_EXPECT(strncmp(global_id, "wh_", 3) == 0, "global id %s", global_id);
    TS_EXPECT(json_is_null(json_object_get(created, "job_id")), "global job_id");
    TS_EXPECT(json_array_size(json_object_get(created, "events")) == 2, "global events");
    json_decref(created);

    /* ---- job A: upload webhook_url (final events only) */
    char a[JOB_ID_SIZE];
    snprintf(url, sizeof(url), "%s/upload", base);
    new_job(st, a, url);
    claim(st, a);
    TS_EXPECT(store_job_finish(st, a, JOB_SUCCEEDED, NULL, NULL, "[]") == STORE_OK, "finish a");
    json_t *up = wait_delivered("/upload", 1, 10);
    json_t *gl = wait_delivered("/global", 2, 10);
    TS_EXPECT(json_array_size(up) == 1, "upload webhook got %zu", json_array_size(up));
    if (json_array_size(up) == 1) {
        json_t *q = json_array_get(up, 0);
        TS_EXPECT(strcmp(body_type(q), "job.succeeded") == 0, "upload type %s", body_type(q));
        json_t *b = json_loads(json_string_value(json_object_get(q, "body")), 0, NULL);
        json_t *data = json_object_get(b, "data");
        TS_EXPECT(json_is_string(json_object_get(data, "id")) &&
                  strcmp(json_string_value(json_object_get(data, "id")), a) == 0 &&
                  strcmp(json_string_value(json_object_get(data, "status")), "succeeded") == 0,
              "payload data is not the finished job");
        TS_EXPECT(json_is_string(json_object_get(b, "timestamp")), "payload timestamp");
        json_decref(b);
    }
    check_all_verified(up, "upload");
    TS_EXPECT(json_array_size(gl) == 2, "global got %zu", json_array_size(gl));
    if (json_array_size(gl) == 2) {
        TS_EXPECT(strcmp(body_type(json_array_get(gl, 0)), "job.started") == 0, "global #1 %s",
              body_type(json_array_get(gl, 0)));
        TS_EXPECT(strcmp(body_type(json_array_get(gl, 1)), "job.succeeded") == 0, "global #2");
        TS_EXPECT(strcmp(hdr(json_array_get(gl, 0), "webhook-id"),
                     hdr(json_array_get(gl, 1), "webhook-id")) != 0,
              "two events share a webhook-id");
    }
    check_all_verified(gl, "global");
    json_decref(up);
    json_decref(gl);

    /* ---- job B: per-job registration for job.canceled, 2 x 500 first */
    char b_id[JOB_ID_SIZE];
    new_job(st, b_id, NULL);
    snprintf(body, sizeof(body),
             "{\"url\":\"%s/perjob?fail=2&status=500\",\"events\":[\"job.canceled\"]}", base);
    TS_EXPECT(reg(o, b_id, body, &created, err, sizeof(err)) == HOOK_OK, "per-job: %s", err);
    TS_EXPECT(json_is_string(json_object_get(created, "job_id")), "per-job job_id");
    json_decref(created);
    TS_EXPECT(store_job_cancel_queued(st, b_id) == STORE_OK, "cancel b");
    json_t *pj = wait_delivered("/perjob", 1, 15);
    TS_EXPECT(json_array_size(pj) == 3, "per-job requests %zu", json_array_size(pj));
    for (size_t i = 1; i < json_array_size(pj); i++)
        TS_EXPECT(strcmp(hdr(json_array_get(pj, 0), "webhook-id"),
                     hdr(json_array_get(pj, i), "webhook-id")) == 0,
              "retry #%zu changed the webhook-id", i);
    check_all_verified(pj, "per-job");
    json_decref(pj);
    /* the global webhook did not want job.canceled */
    gl = requests_to("/global");
    TS_EXPECT(json_array_size(gl) == 2, "global got a canceled event");
    json_decref(gl);

    /* deliveries of B: one, with three attempts (500, 500, 200) */
    usleep(200 * 1000); /* the last attempt is recorded just after the answer */
    json_t *dl = NULL;
    TS_EXPECT(hook_outbox_deliveries(o, b_id, &dl) == HOOK_OK, "deliveries b");
    json_t *ds = json_object_get(dl, "deliveries");
    TS_EXPECT(json_array_size(ds) == 1, "b deliveries %zu", json_array_size(ds));
    if (json_array_size(ds) == 1) {
        json_t *d = json_array_get(ds, 0);
        json_t *at = json_object_get(d, "attempts");
        TS_EXPECT(strcmp(json_string_value(json_object_get(d, "status")), "delivered") == 0,
              "b status %s", json_string_value(json_object_get(d, "status")));
        TS_EXPECT(strcmp(json_string_value(json_object_get(d, "event")), "job.canceled") == 0, "event");
        TS_EXPECT(json_is_null(json_object_get(d, "next_attempt_at")), "next_attempt_at");
        TS_EXPECT(json_array_size(at) == 3, "b attempts %zu", json_array_size(at));
        for (size_t i = 0; i < json_array_size(at); i++) {
            json_t *x = json_array_get(at, i);
            int want = i < 2 ? 500 : 200;
            TS_EXPECT(json_integer_value(json_object_get(x, "http_status")) == want &&
                      json_integer_value(json_object_get(x, "attempt")) == (json_int_t)i + 1 &&
                      json_is_string(json_object_get(x, "at")) &&
                      json_real_value(json_object_get(x, "duration_s")) > 0,
                  "b attempt %zu", i);
            TS_EXPECT(i < 2 ? json_is_string(json_object_get(x, "error"))
                        : json_is_null(json_object_get(x, "error")),
                  "b attempt %zu error", i);
        }
    }
    json_decref(dl);
    TS_EXPECT(hook_outbox_deliveries(o, "AAAAAAAAAAAAAAAAAAAAAA", &dl) == HOOK_ENOT_FOUND,
          "deliveries of an unknown job");

    /* ---- registering on a finished job delivers its final event at once */
    snprintf(body, sizeof(body), "{\"url\":\"%s/late\"}", base);
    TS_EXPECT(reg(o, a, body, NULL, err, sizeof(err)) == HOOK_OK, "late: %s", err);
    json_t *late = wait_delivered("/late", 1, 10);
    TS_EXPECT(json_array_size(late) == 1 && strcmp(body_type(json_array_get(late, 0)), "job.succeeded") == 0,
          "late got %zu", json_array_size(late));
    check_all_verified(late, "late");
    json_decref(late);
    /* ... but not when it does not want that event */
    snprintf(body, sizeof(body), "{\"url\":\"%s/late-failed\",\"events\":[\"job.failed\"]}", base);
    TS_EXPECT(reg(o, a, body, NULL, err, sizeof(err)) == HOOK_OK, "late-failed: %s", err);

    /* ---- unregister the global webhook: job C reaches only its own URL */
    TS_EXPECT(hook_outbox_unregister(o, global_id) == HOOK_OK, "unregister");
    TS_EXPECT(hook_outbox_unregister(o, global_id) == HOOK_ENOT_FOUND, "unregister twice");

    /* ---- job.progress on request, at most once a second per job */
    snprintf(body, sizeof(body), "{\"url\":\"%s/progress\",\"events\":[\"job.progress\"]}", base);
    TS_EXPECT(reg(o, NULL, body, &created, err, sizeof(err)) == HOOK_OK, "progress: %s", err);
    char progress_id[64];
    snprintf(progress_id, sizeof(progress_id), "%s",
             json_string_value(json_object_get(created, "id")) ?: "");
    json_decref(created);
    char e_id[JOB_ID_SIZE];
    new_job(st, e_id, NULL);
    claim(st, e_id);
    for (int i = 0; i < 5; i++) {
        struct job_progress p = {.percent = 10.0 * (i + 1), .eta_s = -1};
        TS_EXPECT(store_job_progress(st, e_id, &p) == STORE_OK, "progress %d", i);
    }
    usleep(1100 * 1000);
    struct job_progress p2 = {.percent = 70.0, .eta_s = -1};
    TS_EXPECT(store_job_progress(st, e_id, &p2) == STORE_OK, "progress after 1 s");
    json_t *pr = wait_delivered("/progress", 2, 10);
    TS_EXPECT(json_array_size(pr) == 2, "progress events %zu (want 2: throttled)", json_array_size(pr));
    if (json_array_size(pr) == 2) {
        json_t *p0 = json_loads(json_string_value(json_object_get(json_array_get(pr, 0), "body")), 0, NULL);
        json_t *p1 = json_loads(json_string_value(json_object_get(json_array_get(pr, 1), "body")), 0, NULL);
        double pc0 = json_number_value(json_object_get(json_object_get(json_object_get(p0, "data"), "progress"), "percent"));
        double pc1 = json_number_value(json_object_get(json_object_get(json_object_get(p1, "data"), "progress"), "percent"));
        TS_EXPECT(pc0 == 10.0 && pc1 == 70.0, "progress payloads %.1f %.1f", pc0, pc1);
        TS_EXPECT(strcmp(json_string_value(json_object_get(p0, "type")), "job.progress") == 0, "type");
        json_decref(p0);
        json_decref(p1);
    }
    check_all_verified(pr, "progress");
    json_decref(pr);
    TS_EXPECT(store_job_finish(st, e_id, JOB_SUCCEEDED, NULL, NULL, "[]") == STORE_OK, "finish e");
    TS_EXPECT(hook_outbox_unregister(o, progress_id) == HOOK_OK, "unregister progress");


    /* ---- crash between the job change and the send */
    hook_outbox_stop(&o);
    char c_id[JOB_ID_SIZE];
    snprintf(url, sizeof(url), "%s/durable", base);
    new_job(st, c_id, url);
    claim(st, c_id);
    TS_EXPECT(store_job_finish(st, c_id, JOB_FAILED, "decode_failed", "broken input", NULL) == STORE_OK,
          "finish c");
    usleep(300 * 1000);
    json_t *dur = requests_to("/durable");
    TS_EXPECT(json_array_size(dur) == 0, "delivered with no outbox running");
    json_decref(dur);
    o = start(st, dir, 2.0); /* a slow retry for the next case */
    dur = wait_delivered("/durable", 1, 10);
    TS_EXPECT(json_array_size(dur) == 1 && strcmp(body_type(json_array_get(dur, 0)), "job.failed") == 0,
          "durable got %zu", json_array_size(dur));
    check_all_verified(dur, "durable");
    json_decref(dur);
    gl = requests_to("/global");
    TS_EXPECT(json_array_size(gl) == 2, "an unregistered webhook got more");
    json_decref(gl);
    json_t *lf = requests_to("/late-failed");
    TS_EXPECT(json_array_size(lf) == 0, "late-failed got an event it did not ask for");
    json_decref(lf);

    /* ---- a retry scheduled before a restart resumes after it */
    char d_id[JOB_ID_SIZE];
    snprintf(url, sizeof(url), "%s/resume?fail=1&status=503", base);
    new_job(st, d_id, url);
    TS_EXPECT(store_job_cancel_queued(st, d_id) == STORE_OK, "cancel d");
    json_t *rs = NULL;
    time_t end = time(NULL) + 10;
    do { /* until the first (failed) attempt is recorded */
        json_decref(rs);
        usleep(50 * 1000);
        rs = NULL;
        hook_outbox_deliveries(o, d_id, &rs);
    } while (json_array_size(json_object_get(json_array_get(json_object_get(rs, "deliveries"), 0),
                                             "attempts")) < 1 &&
             time(NULL) < end);
    json_t *d0 = json_array_get(json_object_get(rs, "deliveries"), 0);
    TS_EXPECT(d0 && strcmp(json_string_value(json_object_get(d0, "status")), "pending") == 0 &&
              json_is_string(json_object_get(d0, "next_attempt_at")),
          "d not pending after a 503");
    json_decref(rs);
    hook_outbox_stop(&o);
    o = start(st, dir, 0.2);
    json_t *res = wait_delivered("/resume", 1, 10);
    TS_EXPECT(json_array_size(res) == 2, "resume requests %zu", json_array_size(res));
    if (json_array_size(res) == 2)
        TS_EXPECT(strcmp(hdr(json_array_get(res, 0), "webhook-id"),
                     hdr(json_array_get(res, 1), "webhook-id")) == 0,
              "the webhook-id changed across the restart");
    check_all_verified(res, "resume");
    json_decref(res);
    usleep(200 * 1000);
    rs = NULL;
    hook_outbox_deliveries(o, d_id, &rs);
    d0 = json_array_get(json_object_get(rs, "deliveries"), 0);
    TS_EXPECT(json_array_size(json_object_get(d0, "attempts")) == 2, "d attempts across restart");
    json_decref(rs);

    struct hook_counters hc;
    hook_outbox_counters(o, &hc);
    TS_EXPECT(hc.succeeded >= 1, "counters after restart: %" PRIu64, hc.succeeded);

    hook_outbox_stop(&o);
    store_close(&st);
    ts_stop(rpid);
    free(dir);
    curl_global_cleanup();
    if (ts_failures) {
        fprintf(stderr, "%d check(s) failed\n", ts_failures);
        return 1;
    }
    printf("test_hook_outbox: all checks passed\n");
    return 0;
}
