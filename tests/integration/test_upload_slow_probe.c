/*
 * An upload's probe runs off the HTTP threads. Simulated hostile files
 * (VIDQ_FAULT_PROBE=spin:3: each probe child first uses the CPU for 3 s, as
 * a decoder stuck on a crafted file would) are uploaded 4 at a time,
 * 150 ms apart (two with tus, each in one request; two as raw
 * bodies), to a server with 2 HTTP threads:
 *   - meanwhile GET /healthz and GET /v1/jobs answer quickly (before, the
 *     two HTTP threads waited for the probes and every request with them);
 *   - each of those uploads still gets its 202 and a queued job;
 *   - SIGTERM while a probe is under way: that upload still gets an answer
 *     (its 202, or 503 if the scheduler stopped first), the server exits 0,
 *     and no temporary file stays.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ts_nodes.h"

enum { UPLOADS = 4 };

static char clip[4200]; /* ts_media's buffer is not for threads */

struct upload_try {
    const struct ts_server *s;
    long status;
    char id[64];
    double answered; /* ts_now() */
};

static void *upload_main(void *arg)
{
    struct upload_try *t = arg;
    struct ts_http r;
    ts_http_upload_raw(t->s, &r, "/upload?preset=thumbnail", clip, "video/mp4", NULL);
    t->status = r.status;
    t->answered = ts_now();
    json_t *j = ts_http_json(&r);
    const char *id = json_string_value(json_object_get(j, "id"));
    snprintf(t->id, sizeof(t->id), "%s", id ? id : "");
    json_decref(j);
    ts_http_free(&r);
    return NULL;
}

/* The same as a tus upload in one request (creation-with-upload): its
 * probe runs when its last byte is in, before the 201. */
static void *tus_main(void *arg)
{
    struct upload_try *t = arg;
    FILE *f = fopen(clip, "rb");
    static char data[1 << 20];
    size_t n = f ? fread(data, 1, sizeof(data), f) : 0;
    if (f)
        fclose(f);
    char length[64];
    snprintf(length, sizeof(length), "Upload-Length: %zu", n);
    const char *hdrs[] = {"Tus-Resumable: 1.0.0", length,
                          "Upload-Metadata: preset dGh1bWJuYWls", /* thumbnail */
                          "Content-Type: application/offset+octet-stream", NULL};
    struct ts_http r;
    ts_http(t->s, &r, "POST", "/v1/uploads/", hdrs, data, n);
    t->status = r.status == 201 ? 202 : r.status; /* 201: created, job made */
    t->answered = ts_now();
    char *loc = ts_http_header(&r, "Location");
    const char *slash = loc ? strrchr(loc, '/') : NULL;
    snprintf(t->id, sizeof(t->id), "%s", slash ? slash + 1 : "");
    t->id[strcspn(t->id, "\r\n ")] = '\0';
    free(loc);
    ts_http_free(&r);
    return NULL;
}

/* The slowest of n GETs of path, spaced 50 ms apart, in seconds. */
static double slowest_get(const struct ts_server *s, const char *path, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        struct ts_http r;
        double t0 = ts_now();
        ts_http(s, &r, "GET", path, NULL, NULL, 0);
        double took = ts_now() - t0;
        TS_CHECK(r.status == 200, "GET %s during stuck probes: %ld", path, r.status);
        ts_http_free(&r);
        if (took > worst)
            worst = took;
        ts_sleep_ms(50);
    }
    return worst;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = ts_mkdtemp("slow-probe");
    snprintf(clip, sizeof(clip), "%s", ts_media("h264_aac_640x360.mp4"));
    struct ts_server s;
    setenv("VIDQ_FAULT_PROBE", "spin:3", 1);
    ts_server_start(&s, dir, "--isolation process --http-threads 2 --max-concurrent 1");
    unsetenv("VIDQ_FAULT_PROBE");

    struct upload_try tries[UPLOADS];
    pthread_t th[UPLOADS];
    /* A little apart, so that (before) each HTTP thread had taken one by
     * the time the GETs come: a thread stuck in a probe accepts nothing,
     * so new connections went to a free one while there was one. */
    for (int i = 0; i < UPLOADS; i++) {
        tries[i] = (struct upload_try){.s = &s};
        TS_CHECK(pthread_create(&th[i], NULL, i < 2 ? tus_main : upload_main, &tries[i]) == 0,
                 "thread");
        ts_sleep_ms(150);
    }
    double health = slowest_get(&s, "/healthz", 10);
    double jobs = slowest_get(&s, "/v1/jobs", 5);
    double gets_end = ts_now();
    printf("while %d probes were stuck: GET /healthz at worst %.3f s, GET /v1/jobs %.3f s\n",
           UPLOADS, health, jobs);
    TS_CHECK(health < 0.5 && jobs < 0.5,
             "the API waited for the probes: /healthz %.3f s, /v1/jobs %.3f s", health, jobs);
    for (int i = 0; i < UPLOADS; i++) {
        pthread_join(th[i], NULL);
        TS_CHECK(tries[i].answered > gets_end,
                 "upload %d was answered %.2f s before the GETs ended: they did not run "
                 "during its probe", i, gets_end - tries[i].answered);
        TS_CHECK(tries[i].status == 202 && tries[i].id[0], "stuck upload %d: %ld", i,
                 tries[i].status);
        json_t *j = ts_job_get(&s, tries[i].id, NULL);
        TS_CHECK(j, "no job for stuck upload %d", i);
        json_decref(j);
    }

    /* SIGTERM while a probe is under way. */
    struct upload_try last = {.s = &s};
    pthread_t lt;
    TS_CHECK(pthread_create(&lt, NULL, upload_main, &last) == 0, "thread");
    ts_sleep_ms(500);
    int st = ts_server_stop(&s, SIGTERM, 30);
    pthread_join(lt, NULL);
    printf("the upload probed during shutdown got %ld\n", last.status);
    TS_CHECK(st == 0, "exit status %d after SIGTERM during a probe (see %s)", st, s.log_path);
    TS_CHECK(last.status == 202 || last.status == 503,
             "the upload probed during shutdown got %ld, not an answer", last.status);
    char sub[4200];
    snprintf(sub, sizeof(sub), "%s/tmp", dir);
    TS_CHECK(ts_count_files(sub) == 0, "a temporary file stayed in tmp/");
    free(dir);
    curl_global_cleanup();
    printf("ok\n");
    return 0;
}
