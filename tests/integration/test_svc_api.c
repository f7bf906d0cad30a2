/*
 * The service's endpoints and errors, end to end: a real `vidq serve` on a
 * loopback port, libcurl as the client, real media, outputs checked with
 * ffprobe. The same body runs with --isolation process and thread.
 * ctest-labels: integration
 * ctest-timeout: 240
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

static const char *const AUTH[] = {"Authorization: Bearer k3y", NULL};

static const char *err_code(const struct ts_http *r)
{
    static char code[64];
    json_t *j = ts_http_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(code, sizeof(code), "%s", c ? c : "(none)");
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    TS_CHECK(!c || (m && *m), "error without a message: %s", r->body);
    json_decref(j);
    return code;
}

#define EXPECT_ERROR(r, st, code)                                                          \
    TS_CHECK((r).status == (st) && strcmp(err_code(&(r)), (code)) == 0,                   \
             "expected %d %s, got %ld %s", (st), (code), (r).status, (r).body)

/* Job id from a 202 answer, checked against Location. */
static char *accepted_id(const struct ts_http *r)
{
    TS_CHECK(r->status == 202, "upload: %ld %s", r->status, r->body);
    json_t *j = ts_http_json(r);
    const char *id = json_string_value(json_object_get(j, "id"));
    TS_CHECK(id && strlen(id) >= 22, "job id: %s", r->body);
    char *loc = ts_http_header(r, "Location");
    char want[128];
    snprintf(want, sizeof(want), "/status/%s", id);
    TS_CHECK(loc && strcmp(loc, want) == 0, "Location %s", loc ? loc : "(none)");
    free(loc);
    const char *st = json_string_value(json_object_get(j, "status"));
    TS_CHECK(st && (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0), "status %s", st);
    char *out = strdup(id);
    json_decref(j);
    return out;
}

static void check_output_file(const char *file, int want_height, int want_audio)
{
    json_t *p = ts_ffprobe(file);
    TS_CHECK(p, "ffprobe failed on %s", file);
    json_t *streams = json_object_get(p, "streams");
    int video = 0, audio = 0;
    size_t i;
    json_t *s;
    json_array_foreach(streams, i, s) {
        const char *type = json_string_value(json_object_get(s, "codec_type"));
        if (type && strcmp(type, "video") == 0) {
            video++;
            TS_CHECK(strcmp(json_string_value(json_object_get(s, "codec_name")), "h264") == 0,
                     "video codec");
            TS_CHECK(json_integer_value(json_object_get(s, "height")) == want_height,
                     "height %lld, want %d", json_integer_value(json_object_get(s, "height")),
                     want_height);
        } else if (type && strcmp(type, "audio") == 0)
            audio++;
    }
    TS_CHECK(video == 1 && audio == want_audio, "streams v=%d a=%d", video, audio);
    double dur = strtod(json_string_value(json_object_get(json_object_get(p, "format"),
                                                          "duration")),
                        NULL);
    TS_CHECK(dur > 1.8 && dur < 2.3, "duration %f", dur);
    json_decref(p);
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* Answers without a body keep the connection open (HTTP/1.1 keep-alive):
 * a poller must not pay one TCP connection per status read. Errors too. */
static void check_keep_alive(const struct ts_server *s)
{
    static const struct {
        const char *method, *path, *body;
        int auth;
        long want;
    } reqs[] = {
        {"GET", "/healthz", NULL, 0, 200},
        {"GET", "/v1/presets", NULL, 1, 200},
        {"GET", "/v1/jobs", NULL, 0, 401},
        {"GET", "/status/0123456789abcdef0123456789abcdef", NULL, 1, 404},
        {"GET", "/no/such/endpoint", NULL, 1, 404},
        {"PUT", "/healthz", NULL, 1, 405},
        {"GET", "/v1/presets", "a body nobody asked for", 1, 200},
        {"GET", "/healthz", NULL, 0, 200},
    };
    CURL *c = curl_easy_init();
    TS_CHECK(c != NULL, "curl_easy_init");
    struct curl_slist *auth = curl_slist_append(NULL, "Authorization: Bearer k3y");
    char url[512];
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        snprintf(url, sizeof(url), "%s%s", s->base, reqs[i].path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, reqs[i].method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, reqs[i].auth ? auth : NULL);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, reqs[i].body);
        if (!reqs[i].body)
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        CURLcode rc = curl_easy_perform(c);
        long status = 0, connects = -1;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
        TS_EXPECT(rc == CURLE_OK && status == reqs[i].want, "keep-alive %s %s: curl %d, HTTP %ld",
                  reqs[i].method, reqs[i].path, (int)rc, status);
        TS_EXPECT(i == 0 || connects == 0,
                  "%s %s opened a new connection (%ld): the last answer closed it",
                  reqs[i].method, reqs[i].path, connects);
    }
    curl_slist_free_all(auth);
    curl_easy_cleanup(c);
}

static void run(const char *isolation)
{
    char tag[64];
    snprintf(tag, sizeof(tag), "svc-api-%s", isolation);
    char *dir = ts_mkdtemp(tag);
    char flags[256];
    snprintf(flags, sizeof(flags), "--isolation %s --api-key k3y --max-upload-bytes 3000000 "
             "--connection-timeout 3",
             isolation);
    struct ts_server s;
    ts_server_start(&s, dir, flags);
    s.auth = AUTH;
    struct ts_http r;
    char path[1024], file[4096], tmpdir[4200], inputs[4200];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", dir);
    snprintf(inputs, sizeof(inputs), "%s/inputs", dir);

    /* Health needs no key; everything else does. */
    ts_http(&s, &r, "GET", "/healthz", NULL, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, "\"ok\""), "healthz %ld", r.status);
    ts_http_free(&r);
    check_keep_alive(&s);
    ts_http(&s, &r, "GET", "/v1/presets", NULL, NULL, 0);
    EXPECT_ERROR(r, 401, "unauthorized");
    ts_http_free(&r);
    const char *bad_auth[] = {"Authorization: Bearer nope", NULL};
    ts_http(&s, &r, "GET", "/v1/jobs", bad_auth, NULL, 0);
    EXPECT_ERROR(r, 401, "unauthorized");
    ts_http_free(&r);
    ts_http_upload_raw(&s, &r, "/upload", ts_media("h264_aac_640x360.mp4"), "video/mp4", NULL);
    EXPECT_ERROR(r, 401, "unauthorized");
    ts_http_free(&r);

    ts_http(&s, &r, "GET", "/v1/presets", AUTH, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, "\"mp4-720p\""), "presets %ld", r.status);
    ts_http_free(&r);

    /* A raw upload and a multipart one, through to ffprobe-checked outputs. */
    ts_http_upload_raw(&s, &r, "/upload?preset=mp4-480p&filename=clip.mp4",
                       ts_media("h264_aac_640x360.mp4"), "video/mp4", AUTH);
    char *raw_id = accepted_id(&r);
    ts_http_free(&r);
    const char *fields[] = {
        "outputs",
        "[{\"name\":\"small\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\","
        "\"max_height\":240},\"audio\":null}]",
        "metadata", "{\"customer\":\"acme\",\"n\":7}", NULL};
    ts_http_upload_multipart(&s, &r, "/v1/jobs", ts_media("h264_aac_640x360.mp4"), fields, AUTH);
    char *mp_id = accepted_id(&r);
    ts_http_free(&r);

    json_t *job = ts_wait_job(&s, raw_id, 60);
    TS_CHECK(job && strcmp(json_string_value(json_object_get(job, "status")), "succeeded") == 0,
             "raw job did not succeed: %s", job ? json_dumps(job, 0) : "timeout");
    TS_CHECK(json_real_value(json_object_get(json_object_get(job, "progress"), "percent")) == 100,
             "percent 100 on success");
    TS_CHECK(json_integer_value(json_object_get(job, "attempts")) == 1, "attempts");
    json_t *in = json_object_get(job, "input");
    TS_CHECK(strcmp(json_string_value(json_object_get(in, "filename")), "clip.mp4") == 0,
             "input filename");
    TS_CHECK(json_integer_value(json_object_get(json_object_get(in, "video"), "width")) == 640,
             "input width");
    json_t *out0 = json_array_get(json_object_get(job, "outputs"), 0);
    const char *url = json_string_value(json_object_get(out0, "url"));
    json_int_t size = json_integer_value(json_object_get(out0, "size"));
    TS_CHECK(url && size > 1000, "output url/size");
    TS_CHECK(strcmp(json_string_value(json_object_get(out0, "mime")), "video/mp4") == 0, "mime");
    TS_CHECK(json_object_get(out0, "video") && json_is_object(json_object_get(out0, "video")),
             "output video from probe");
    snprintf(file, sizeof(file), "%s/raw-out.mp4", dir);
    TS_CHECK(ts_http_download(&s, url, file) == 401, "download needs the key");
    {
        ts_http(&s, &r, "GET", url, AUTH, NULL, 0);
        TS_CHECK(r.status == 200 && (json_int_t)r.len == size, "download %ld len %zu", r.status,
                 r.len);
        char *ct = ts_http_header(&r, "Content-Type");
        char *etag = ts_http_header(&r, "ETag");
        char *ar = ts_http_header(&r, "Accept-Ranges");
        TS_CHECK(ct && strcmp(ct, "video/mp4") == 0 && etag && ar && strcmp(ar, "bytes") == 0,
                 "download headers:\n%s", r.headers);
        FILE *f = fopen(file, "wb");
        fwrite(r.body, 1, r.len, f);
        fclose(f);
        check_output_file(file, 360, 1); /* never upscaled: the source is 360p */

        /* Range: 206 with the exact bytes; past the end 416; ETag 304. */
        char range_h[64], inm[256];
        snprintf(range_h, sizeof(range_h), "Range: bytes=10-109");
        const char *h1[] = {AUTH[0], range_h, NULL};
        struct ts_http r2;
        ts_http(&s, &r2, "GET", url, h1, NULL, 0);
        char *cr = ts_http_header(&r2, "Content-Range");
        char want[64];
        snprintf(want, sizeof(want), "bytes 10-109/%lld", (long long)size);
        TS_CHECK(r2.status == 206 && r2.len == 100 && memcmp(r2.body, r.body + 10, 100) == 0 &&
                     cr && strcmp(cr, want) == 0,
                 "range: %ld len %zu cr %s", r2.status, r2.len, cr ? cr : "-");
        free(cr);
        ts_http_free(&r2);
        snprintf(range_h, sizeof(range_h), "Range: bytes=-50");
        ts_http(&s, &r2, "GET", url, h1, NULL, 0);
        TS_CHECK(r2.status == 206 && r2.len == 50 && memcmp(r2.body, r.body + size - 50, 50) == 0,
                 "suffix range %ld", r2.status);
        ts_http_free(&r2);
        snprintf(range_h, sizeof(range_h), "Range: bytes=%lld-", (long long)size + 10);
        ts_http(&s, &r2, "GET", url, h1, NULL, 0);
        EXPECT_ERROR(r2, 416, "range_not_satisfiable");
        cr = ts_http_header(&r2, "Content-Range");
        snprintf(want, sizeof(want), "bytes */%lld", (long long)size);
        TS_CHECK(cr && strcmp(cr, want) == 0, "416 Content-Range %s", cr ? cr : "-");
        free(cr);
        ts_http_free(&r2);
        snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
        const char *h2[] = {AUTH[0], inm, NULL};
        ts_http(&s, &r2, "GET", url, h2, NULL, 0);
        TS_CHECK(r2.status == 304, "If-None-Match %ld", r2.status);
        ts_http_free(&r2);
        free(ct);
        free(etag);
        free(ar);
        ts_http_free(&r);
    }
    /* Paths never leave the job's folder. */
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/mp4-480p/../../../vidq.db", raw_id);
    ts_http(&s, &r, "GET", path, AUTH, NULL, 0);
    TS_CHECK(r.status == 404, "traversal: %ld", r.status);
    ts_http_free(&r);
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/..%%2F..%%2Fvidq.db", raw_id);
    ts_http(&s, &r, "GET", path, AUTH, NULL, 0);
    TS_CHECK(r.status == 404, "encoded traversal: %ld", r.status);
    ts_http_free(&r);
    snprintf(path, sizeof(path), "/v1/jobs/%s/outputs/nope", raw_id);
    ts_http(&s, &r, "GET", path, AUTH, NULL, 0);
    EXPECT_ERROR(r, 404, "not_found");
    ts_http_free(&r);
    json_decref(job);

    job = ts_wait_job(&s, mp_id, 60);
    TS_CHECK(job && strcmp(json_string_value(json_object_get(job, "status")), "succeeded") == 0,
             "multipart job: %s", job ? json_dumps(job, 0) : "timeout");
    json_t *meta = json_object_get(job, "metadata");
    TS_CHECK(strcmp(json_string_value(json_object_get(meta, "customer")), "acme") == 0 &&
                 json_integer_value(json_object_get(meta, "n")) == 7,
             "metadata echoed");
    TS_CHECK(strcmp(json_string_value(json_object_get(json_object_get(job, "input"),
                                                      "filename")),
                    "h264_aac_640x360.mp4") == 0,
             "multipart filename");
    out0 = json_array_get(json_object_get(job, "outputs"), 0);
    TS_CHECK(json_is_null(json_object_get(out0, "preset")) &&
                 strcmp(json_string_value(json_object_get(out0, "name")), "small") == 0,
             "custom output");
    snprintf(file, sizeof(file), "%s/mp-out.mp4", dir);
    {
        ts_http(&s, &r, "GET", json_string_value(json_object_get(out0, "url")), AUTH, NULL, 0);
        TS_CHECK(r.status == 200, "download small %ld", r.status);
        FILE *f = fopen(file, "wb");
        fwrite(r.body, 1, r.len, f);
        fclose(f);
        ts_http_free(&r);
        check_output_file(file, 240, 0);
    }
    json_decref(job);

    /* The alias, the list (newest first, paged), the events of an ended job. */
    snprintf(path, sizeof(path), "/v1/jobs/%s", raw_id);
    ts_http(&s, &r, "GET", path, AUTH, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, raw_id), "alias %ld", r.status);
    ts_http_free(&r);
    ts_http(&s, &r, "GET", "/v1/jobs?limit=1", AUTH, NULL, 0);
    json_t *list = ts_http_json(&r);
    ts_http_free(&r);
    TS_CHECK(list && json_array_size(json_object_get(list, "jobs")) == 1, "list page 1");
    TS_CHECK(strcmp(json_string_value(json_object_get(
                        json_array_get(json_object_get(list, "jobs"), 0), "id")),
                    mp_id) == 0,
             "newest first");
    const char *next = json_string_value(json_object_get(list, "next"));
    TS_CHECK(next, "a next cursor");
    snprintf(path, sizeof(path), "/v1/jobs?limit=1&after=%s", next);
    json_decref(list);
    ts_http(&s, &r, "GET", path, AUTH, NULL, 0);
    list = ts_http_json(&r);
    ts_http_free(&r);
    TS_CHECK(strcmp(json_string_value(json_object_get(
                        json_array_get(json_object_get(list, "jobs"), 0), "id")),
                    raw_id) == 0,
             "page 2");
    json_decref(list);
    ts_http(&s, &r, "GET", "/v1/jobs?status=succeeded&limit=10", AUTH, NULL, 0);
    list = ts_http_json(&r);
    TS_CHECK(json_array_size(json_object_get(list, "jobs")) == 2 &&
                 json_is_null(json_object_get(list, "next")),
             "status filter: %s", r.body);
    json_decref(list);
    ts_http_free(&r);
    ts_http(&s, &r, "GET", "/v1/jobs?status=bogus", AUTH, NULL, 0);
    EXPECT_ERROR(r, 400, "bad_request");
    ts_http_free(&r);

    snprintf(path, sizeof(path), "/v1/jobs/%s/events", raw_id);
    ts_http(&s, &r, "GET", path, AUTH, NULL, 0);
    char *ct = ts_http_header(&r, "Content-Type");
    TS_CHECK(r.status == 200 && ct && strncmp(ct, "text/event-stream", 17) == 0 &&
                 strstr(r.body, "event: status\ndata: {") && strstr(r.body, "\"succeeded\""),
             "events of an ended job: %s", r.body);
    free(ct);
    ts_http_free(&r);

    /* Several outputs from one upload: a poster and an audio rendition. */
    ts_http_upload_raw(&s, &r, "/upload?preset=thumbnail,audio-m4a", ts_media("h264_aac_640x360.mp4"),
                       "video/mp4", AUTH);
    char *multi_id = accepted_id(&r);
    ts_http_free(&r);
    job = ts_wait_job(&s, multi_id, 60);
    TS_CHECK(job && strcmp(json_string_value(json_object_get(job, "status")), "succeeded") == 0,
             "multi-output job: %s", job ? json_dumps(job, 0) : "timeout");
    TS_CHECK(json_array_size(json_object_get(job, "outputs")) == 2, "two outputs");
    for (size_t k = 0; k < 2; k++) {
        json_t *o = json_array_get(json_object_get(job, "outputs"), k);
        const char *name = json_string_value(json_object_get(o, "name"));
        int thumb = strcmp(name, "thumbnail") == 0;
        ts_http(&s, &r, "GET", json_string_value(json_object_get(o, "url")), AUTH, NULL, 0);
        char *ctype = ts_http_header(&r, "Content-Type");
        TS_CHECK(r.status == 200 && ctype &&
                     strcmp(ctype, thumb ? "image/jpeg" : "audio/mp4") == 0 &&
                     strcmp(json_string_value(json_object_get(o, "mime")), ctype) == 0,
                 "%s: %ld %s", name, r.status, ctype ? ctype : "-");
        snprintf(file, sizeof(file), "%s/multi-%s", dir, name);
        FILE *f = fopen(file, "wb");
        fwrite(r.body, 1, r.len, f);
        fclose(f);
        free(ctype);
        ts_http_free(&r);
        json_t *p = ts_ffprobe(file);
        json_t *st0 = json_array_get(json_object_get(p, "streams"), 0);
        TS_CHECK(p && json_array_size(json_object_get(p, "streams")) == 1 &&
                     strcmp(json_string_value(json_object_get(st0, "codec_name")),
                            thumb ? "mjpeg" : "aac") == 0,
                 "%s: ffprobe", name);
        json_decref(p);
    }
    json_decref(job);
    free(multi_id);

    /* Cancel of a finished job: 409, both forms. */
    snprintf(path, sizeof(path), "/v1/jobs/%s/cancel", raw_id);
    ts_http(&s, &r, "POST", path, AUTH, NULL, 0);
    EXPECT_ERROR(r, 409, "conflict");
    ts_http_free(&r);
    snprintf(path, sizeof(path), "/v1/jobs/%s", raw_id);
    ts_http(&s, &r, "DELETE", path, AUTH, NULL, 0);
    EXPECT_ERROR(r, 409, "conflict");
    ts_http_free(&r);

    /* Errors of uploads: each leaves no file and no job behind. */
    int inputs_before = ts_count_files(inputs);
    ts_http_upload_raw(&s, &r, "/upload?preset=no-such-preset", ts_media("h264_aac_640x360.mp4"),
                       "video/mp4", AUTH);
    EXPECT_ERROR(r, 400, "invalid_preset");
    ts_http_free(&r);
    ts_http_upload_raw(&s, &r, "/upload?outputs=%5B%7B%22name%22%3A1%7D%5D",
                       ts_media("h264_aac_640x360.mp4"), "video/mp4", AUTH);
    EXPECT_ERROR(r, 400, "invalid_output");
    ts_http_free(&r);
    const char *bad_fields[] = {"preset", "nope-preset", NULL};
    ts_http_upload_multipart(&s, &r, "/upload", ts_media("h264_aac_640x360.mp4"), bad_fields, AUTH);
    EXPECT_ERROR(r, 400, "invalid_preset");
    ts_http_free(&r);
    const char *no_file[] = {"preset", "mp4-480p", NULL};
    ts_http_upload_multipart(&s, &r, "/upload", NULL, no_file, AUTH);
    EXPECT_ERROR(r, 400, "bad_request");
    ts_http_free(&r);
    snprintf(file, sizeof(file), "%s/not-media.bin", dir);
    {
        FILE *f = fopen(file, "wb");
        for (int i = 0; i < 20000; i++)
            fputs("this is not a video\n", f);
        fclose(f);
    }
    ts_http_upload_raw(&s, &r, "/upload", file, "application/octet-stream", AUTH);
    EXPECT_ERROR(r, 415, "unsupported_media");
    ts_http_free(&r);
    ts_http_upload_multipart(&s, &r, "/upload", file, NULL, AUTH);
    EXPECT_ERROR(r, 415, "unsupported_media");
    ts_http_free(&r);
    ts_http_upload_raw(&s, &r, "/upload", ts_media("h264_aac_640x360.mp4"), "text/plain", AUTH);
    EXPECT_ERROR(r, 415, "unsupported_media");
    ts_http_free(&r);
    snprintf(file, sizeof(file), "%s/big.bin", dir);
    {
        FILE *f = fopen(file, "wb");
        char zero[65536] = {0};
        for (int i = 0; i < 60; i++)
            fwrite(zero, 1, sizeof(zero), f);
        fclose(f);
    }
    ts_http_upload_raw(&s, &r, "/upload", file, "video/mp4", AUTH);
    EXPECT_ERROR(r, 413, "too_large");
    ts_http_free(&r);
    /* Chunked: the size is only known while the body arrives. */
    {
        const char *chunked[] = {AUTH[0], "Transfer-Encoding: chunked", NULL};
        struct ts_http rc;
        ts_http_upload_raw(&s, &rc, "/upload", file, "video/mp4", chunked);
        EXPECT_ERROR(rc, 413, "too_large");
        ts_http_free(&rc);
    }
    TS_CHECK(ts_count_files(tmpdir) == 0, "tmp dir not empty after refused uploads");
    TS_CHECK(ts_count_files(inputs) == inputs_before, "a refused upload left an input");

    /* 411, a body cut off mid-way, unknown routes and methods. */
    char reply[4096];
    char req[512];
    snprintf(req, sizeof(req),
             "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\n"
             "Content-Type: video/mp4\r\nConnection: close\r\n\r\n");
    ts_raw_request(&s, req, strlen(req), 1, reply, sizeof(reply));
    TS_CHECK(strstr(reply, " 411 ") && strstr(reply, "length_required"), "411: %s", reply);
    {
        size_t hl;
        char *cut = malloc(300000);
        hl = (size_t)snprintf(cut, 300000,
                              "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\n"
                              "Content-Type: video/mp4\r\nContent-Length: 2000000\r\n\r\n");
        memset(cut + hl, 'x', 200000);
        ts_raw_request(&s, cut, hl + 200000, 0, NULL, 0);
        free(cut);
        /* The server may not have opened its temporary file yet when the
         * client is gone: give it a moment to appear (it may also come and
         * go before we look), then it must be removed, at the latest when
         * the connection times out (3 s). */
        double appear = ts_now() + 2;
        while (ts_now() < appear && ts_count_files(tmpdir) == 0)
            ts_sleep_ms(10);
        double deadline = ts_now() + 10;
        while (ts_now() < deadline && ts_count_files(tmpdir) != 0)
            ts_sleep_ms(20);
        TS_CHECK(ts_count_files(tmpdir) == 0, "a cut-off body left a file");
        TS_CHECK(ts_count_files(inputs) == inputs_before, "a cut-off body left an input");
    }
    ts_http(&s, &r, "GET", "/status/AAAAAAAAAAAAAAAAAAAAAA", AUTH, NULL, 0);
    EXPECT_ERROR(r, 404, "not_found");
    ts_http_free(&r);
    ts_http(&s, &r, "GET", "/status/../../etc/passwd", AUTH, NULL, 0);
    EXPECT_ERROR(r, 404, "not_found");
    ts_http_free(&r);
    ts_http(&s, &r, "GET", "/nope", AUTH, NULL, 0);
    EXPECT_ERROR(r, 404, "not_found");
    ts_http_free(&r);
    ts_http(&s, &r, "PUT", "/upload", AUTH, "x", 1);
    EXPECT_ERROR(r, 405, "method_not_allowed");
    ts_http_free(&r);
    snprintf(path, sizeof(path), "/status/%s", raw_id);
    ts_http(&s, &r, "POST", path, AUTH, NULL, 0);
    EXPECT_ERROR(r, 405, "method_not_allowed");
    ts_http_free(&r);

    /* Metrics. */
    ts_http(&s, &r, "GET", "/metrics", AUTH, NULL, 0);
    TS_CHECK(r.status == 200 && strstr(r.body, "vidq_jobs{status=\"succeeded\"} 3") &&
                 strstr(r.body, "vidq_queue_depth 0") && strstr(r.body, "vidq_jobs_running 0") &&
                 strstr(r.body, "vidq_job_duration_seconds_count 3") &&
                 strstr(r.body, "vidq_uploaded_bytes_total"),
             "metrics:\n%s", r.body);
    ts_http_free(&r);

    /* Still serving after all that; a clean stop exits 0. */
    ts_http(&s, &r, "GET", "/healthz", NULL, NULL, 0);
    TS_CHECK(r.status == 200, "healthz at the end");
    ts_http_free(&r);
    int st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "exit status %d", st);
    free(raw_id);
    free(mp_id);
    free(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run("process");
    run("thread");
    curl_global_cleanup();
    if (ts_failures) {
        fprintf(stderr, "%d checks failed\n", ts_failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
