/*
 * The tus 1.0.0 endpoint's protocol edges, against a real `vidq serve` with
 * libcurl: OPTIONS, 412 on a missing/wrong Tus-Resumable, creation errors
 * (400/413, preset checked before any byte), 415 on a wrong Content-Type,
 * 409 on an offset mismatch (nothing changed), 460 on a bad checksum (chunk
 * discarded), bytes past Upload-Length, X-HTTP-Method-Override,
 * creation-with-upload, termination (204 then 404), two PATCHes racing on
 * one upload (one wins, the other 409/423, no corruption), auth (with
 * --api-key every method but OPTIONS answers 401 with the error JSON,
 * Tus-Resumable and WWW-Authenticate without the key, and works with it),
 * and expiry (the sweep removes the partial upload).
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

static const char *const TUS[] = {"Tus-Resumable: 1.0.0", NULL};

static const char *err_code(const struct ts_http *r)
{
    static char code[64];
    json_t *j = ts_http_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(code, sizeof(code), "%s", c ? c : "(none)");
    json_decref(j);
    return code;
}

#define EXPECT(r, st, code)                                                                        \
    TS_CHECK((r).status == (st) && (!(code)[0] || strcmp(err_code(&(r)), (code)) == 0),            \
             "line %d: expected %d %s, got %ld %s", __LINE__, (st), (code), (r).status, (r).body)

static void expect_tus_header(const struct ts_http *r)
{
    char *v = ts_http_header(r, "Tus-Resumable");
    TS_CHECK(v && strcmp(v, "1.0.0") == 0, "no Tus-Resumable on a %ld answer", r->status);
    free(v);
}

/* Files in dir whose name contains part. */
static int count_files(const char *dir, const char *part)
{
    char cmd[4400], out[32] = "";
    snprintf(cmd, sizeof(cmd), "ls '%s' 2>/dev/null | grep -c -- '%s'", dir, part);
    ts_run(out, sizeof(out), "%s", cmd);
    return atoi(out);
}

/* POST a creation; returns the upload path (malloc'd) or NULL, r kept. */
static char *create(const struct ts_server *s, struct ts_http *r, long long length,
                    const char *meta, const char *const *extra)
{
    char len_h[64], meta_h[512];
    const char *hdrs[12];
    int n = 0;
    hdrs[n++] = "Tus-Resumable: 1.0.0";
    snprintf(len_h, sizeof(len_h), "Upload-Length: %lld", length);
    hdrs[n++] = len_h;
    if (meta) {
        snprintf(meta_h, sizeof(meta_h), "Upload-Metadata: %s", meta);
        hdrs[n++] = meta_h;
    }
    for (int i = 0; extra && extra[i] && n < 11; i++)
        hdrs[n++] = extra[i];
    hdrs[n] = NULL;
    ts_http(s, r, "POST", "/v1/uploads/", hdrs, NULL, 0);
    if (r->status != 201)
        return NULL;
    return ts_http_header(r, "Location");
}

static long long head_offset(const struct ts_server *s, const char *loc, long *status)
{
    struct ts_http r;
    ts_http(s, &r, "HEAD", loc, TUS, NULL, 0);
    *status = r.status;
    expect_tus_header(&r);
    char *v = ts_http_header(&r, "Upload-Offset");
    long long off = v ? atoll(v) : -1;
    if (r.status == 200) {
        char *cc = ts_http_header(&r, "Cache-Control");
        TS_CHECK(cc && strcmp(cc, "no-store") == 0, "HEAD without Cache-Control: no-store");
        free(cc);
        char *ex = ts_http_header(&r, "Upload-Expires");
        TS_CHECK(ex && strstr(ex, "GMT"), "HEAD without Upload-Expires");
        free(ex);
    }
    free(v);
    ts_http_free(&r);
    return off;
}

static void patch(const struct ts_server *s, struct ts_http *r, const char *loc, long long off,
                  const void *body, size_t len, const char *ctype, const char *checksum)
{
    char off_h[64], ct_h[128], ck_h[256];
    const char *hdrs[6];
    int n = 0;
    hdrs[n++] = "Tus-Resumable: 1.0.0";
    snprintf(off_h, sizeof(off_h), "Upload-Offset: %lld", off);
    hdrs[n++] = off_h;
    snprintf(ct_h, sizeof(ct_h), "Content-Type: %s", ctype);
    hdrs[n++] = ct_h;
    if (checksum) {
        snprintf(ck_h, sizeof(ck_h), "Upload-Checksum: %s", checksum);
        hdrs[n++] = ck_h;
    }
    hdrs[n] = NULL;
    ts_http(s, r, "PATCH", loc, hdrs, body, len);
    expect_tus_header(r);
}

static void sha1_b64(const void *buf, size_t len, char out[64])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_Digest(buf, len, d, &dl, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, d, (int)dl);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ------------------------------------------------- a slow racing PATCH */

struct racer {
    const struct ts_server *s;
    const char *loc;
    const unsigned char *body;
    size_t len, pos;
    int slow;
    long status;
};

static size_t slow_read(char *buf, size_t size, size_t nitems, void *opaque)
{
    struct racer *rc = opaque;
    size_t n = size * nitems;
    if (n > 16384)
        n = 16384;
    if (n > rc->len - rc->pos)
        n = rc->len - rc->pos;
    memcpy(buf, rc->body + rc->pos, n);
    rc->pos += n;
    if (rc->slow)
        usleep(30000);
    return n;
}

static size_t sink(char *p, size_t s, size_t n, void *o)
{
    return s * n;
}

static void *race_main(void *arg)
{
    struct racer *rc = arg;
    char url[512];
    snprintf(url, sizeof(url), "%s%s", rc->s->base, rc->loc);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Tus-Resumable: 1.0.0");
    h = curl_slist_append(h, "Upload-Offset: 0");
    h = curl_slist_append(h, "Content-Type: application/offset+octet-stream");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rc->len);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, slow_read);
    curl_easy_setopt(c, CURLOPT_READDATA, rc);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rc->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* ------------------------------------------------------------- cases */

static void protocol(void)
{
    char *dir = ts_mkdtemp("tus-protocol");
    struct ts_server s;
    ts_server_start(&s, dir, "--max-upload-bytes 4000000 --max-concurrent 1");
    struct ts_http r;
    char uploads[4200];
    snprintf(uploads, sizeof(uploads), "%s/uploads", dir);

    /* OPTIONS: the server's capabilities, no Tus-Resumable needed */
    ts_http(&s, &r, "OPTIONS", "/v1/uploads/", NULL, NULL, 0);
    EXPECT(r, 204, "");
    expect_tus_header(&r);
    char *v = ts_http_header(&r, "Tus-Version");
    TS_CHECK(v && strstr(v, "1.0.0"), "Tus-Version");
    free(v);
    v = ts_http_header(&r, "Tus-Extension");
    TS_CHECK(v && strstr(v, "creation") && strstr(v, "creation-with-upload") &&
                 strstr(v, "termination") && strstr(v, "expiration") && strstr(v, "checksum"),
             "Tus-Extension %s", v ? v : "(none)");
    free(v);
    v = ts_http_header(&r, "Tus-Max-Size");
    TS_CHECK(v && strcmp(v, "4000000") == 0, "Tus-Max-Size %s", v ? v : "(none)");
    free(v);
    v = ts_http_header(&r, "Tus-Checksum-Algorithm");
    TS_CHECK(v && strstr(v, "sha1"), "Tus-Checksum-Algorithm");
    free(v);
    v = ts_http_header(&r, "Access-Control-Expose-Headers");
    TS_CHECK(v && strstr(v, "Upload-Offset") && strstr(v, "Location"), "CORS expose headers");
    free(v);
    ts_http_free(&r);

    /* 412 + Tus-Version: missing or unsupported Tus-Resumable */
    const char *len_only[] = {"Upload-Length: 100", NULL};
    ts_http(&s, &r, "POST", "/v1/uploads/", len_only, NULL, 0);
    EXPECT(r, 412, "unsupported_version");
    expect_tus_header(&r);
    v = ts_http_header(&r, "Tus-Version");
    TS_CHECK(v && strcmp(v, "1.0.0") == 0, "412 without Tus-Version");
    free(v);
    ts_http_free(&r);
    const char *old_ver[] = {"Tus-Resumable: 0.2.2", "Upload-Length: 100", NULL};
    ts_http(&s, &r, "POST", "/v1/uploads/", old_ver, NULL, 0);
    EXPECT(r, 412, "unsupported_version");
    ts_http_free(&r);

    /* creation errors: nothing is created */
    ts_http(&s, &r, "POST", "/v1/uploads/", TUS, NULL, 0);
    EXPECT(r, 400, "bad_request"); /* no Upload-Length */
    expect_tus_header(&r);
    ts_http_free(&r);
    const char *defer[] = {"Tus-Resumable: 1.0.0", "Upload-Defer-Length: 1", NULL};
    ts_http(&s, &r, "POST", "/v1/uploads/", defer, NULL, 0);
    EXPECT(r, 400, "bad_request");
    TS_CHECK(strstr(r.body, "Defer"), "defer message: %s", r.body);
    ts_http_free(&r);
    TS_CHECK(!create(&s, &r, -5, NULL, NULL), "negative length");
    EXPECT(r, 400, "bad_request");
    ts_http_free(&r);
    TS_CHECK(!create(&s, &r, 4000001, NULL, NULL), "oversize");
    EXPECT(r, 413, "too_large");
    expect_tus_header(&r);
    ts_http_free(&r);
    TS_CHECK(!create(&s, &r, 100, "filename not*base64", NULL), "bad metadata");
    EXPECT(r, 400, "bad_request");
    ts_http_free(&r);
    TS_CHECK(!create(&s, &r, 100, "preset bm9wZS1wcmVzZXQ=", NULL), "bad preset"); /* nope-preset */
    EXPECT(r, 400, "invalid_preset");
    ts_http_free(&r);
    TS_CHECK(!create(&s, &r, 100, "outputs W3sibmFtZSI6MX1d", NULL),
             "bad outputs"); /* [{"name":1}] */
    TS_CHECK(r.status == 400, "bad outputs: %ld %s", r.status, r.body);
    ts_http_free(&r);
    TS_CHECK(count_files(uploads, ".json") == 0, "a refused creation left state behind");

    /* a good one */
    enum { LEN = 300000 };
    unsigned char *data = malloc(LEN);
    for (size_t i = 0; i < LEN; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 9));
    char *loc = create(&s, &r, LEN, "filename YS5iaW4=", NULL);
    TS_CHECK(loc && strncmp(loc, "/v1/uploads/", 12) == 0, "create: %ld %s", r.status, r.body);
    expect_tus_header(&r);
    ts_http_free(&r);
    char bin[4400];
    snprintf(bin, sizeof(bin), "%s/%s.bin", uploads, loc + 12);
    long hs = 0;
    TS_CHECK(head_offset(&s, loc, &hs) == 0 && hs == 200, "HEAD of a new upload");

    /* wrong Content-Type: 415; missing Upload-Offset: 400 */
    patch(&s, &r, loc, 0, data, 1000, "application/octet-stream", NULL);
    EXPECT(r, 415, "unsupported_media");
    ts_http_free(&r);
    const char *no_off[] = {"Tus-Resumable: 1.0.0", "Content-Type: application/offset+octet-stream",
                            NULL};
    ts_http(&s, &r, "PATCH", loc, no_off, data, 1000);
    EXPECT(r, 400, "bad_request");
    ts_http_free(&r);
    const char *no_ver[] = {"Upload-Offset: 0", "Content-Type: application/offset+octet-stream",
                            NULL};
    ts_http(&s, &r, "PATCH", loc, no_ver, data, 1000);
    EXPECT(r, 412, "unsupported_version");
    ts_http_free(&r);

    /* first chunk with a good sha1 */
    char ck[64], hdr[128];
    sha1_b64(data, 100000, ck);
    snprintf(hdr, sizeof(hdr), "sha1 %s", ck);
    patch(&s, &r, loc, 0, data, 100000, "application/offset+octet-stream", hdr);
    EXPECT(r, 204, "");
    v = ts_http_header(&r, "Upload-Offset");
    TS_CHECK(v && strcmp(v, "100000") == 0, "offset after a PATCH: %s", v ? v : "(none)");
    free(v);
    ts_http_free(&r);

    /* offset mismatch: 409, nothing changed */
    patch(&s, &r, loc, 5, data + 5, 1000, "application/offset+octet-stream", NULL);
    EXPECT(r, 409, "conflict");
    ts_http_free(&r);
    TS_CHECK(head_offset(&s, loc, &hs) == 100000, "offset moved after a 409");
    TS_CHECK(file_size(bin) == 100000, "data changed after a 409: %lld", file_size(bin));

    /* bad checksum: 460, chunk discarded, offset unchanged */
    sha1_b64(data, 10, ck); /* the digest of other bytes */
    snprintf(hdr, sizeof(hdr), "sha1 %s", ck);
    patch(&s, &r, loc, 100000, data + 100000, 50000, "application/offset+octet-stream", hdr);
    EXPECT(r, 460, "checksum_mismatch");
    ts_http_free(&r);
    TS_CHECK(head_offset(&s, loc, &hs) == 100000, "offset moved after a 460");
    TS_CHECK(file_size(bin) == 100000, "data kept after a 460: %lld", file_size(bin));
    patch(&s, &r, loc, 100000, data + 100000, 50000, "application/offset+octet-stream",
          "crc99 AAAA");
    EXPECT(r, 400, "bad_request");
    ts_http_free(&r);

    /* bytes past Upload-Length: refused, nothing kept */
    patch(&s, &r, loc, 100000, data, LEN, "application/offset+octet-stream", NULL);
    EXPECT(r, 413, "too_large");
    ts_http_free(&r);
    TS_CHECK(head_offset(&s, loc, &hs) == 100000, "offset moved after a 413");

    /* X-HTTP-Method-Override: a POST that is a PATCH */
    const char *ovr[] = {"Tus-Resumable: 1.0.0", "X-HTTP-Method-Override: PATCH",
                         "Upload-Offset: 100000", "Content-Type: application/offset+octet-stream",
                         NULL};
    ts_http(&s, &r, "POST", loc, ovr, data + 100000, 100000);
    EXPECT(r, 204, "");
    ts_http_free(&r);
    TS_CHECK(head_offset(&s, loc, &hs) == 200000, "override PATCH");

    /* GET on an upload: 405 (status is /status/<id>) */
    ts_http(&s, &r, "GET", loc, TUS, NULL, 0);
    EXPECT(r, 405, "method_not_allowed");
    ts_http_free(&r);
    /* incomplete: /status says so with 404 */
    char path[512];
    snprintf(path, sizeof(path), "/status/%s", loc + 12);
    ts_http(&s, &r, "GET", path, NULL, NULL, 0);
    EXPECT(r, 404, "not_found");
    TS_CHECK(strstr(r.body, "incomplete: 200000 of 300000"), "status: %s", r.body);
    ts_http_free(&r);

    /* termination: 204, then 404 everywhere, bytes gone */
    ts_http(&s, &r, "DELETE", loc, TUS, NULL, 0);
    EXPECT(r, 204, "");
    expect_tus_header(&r);
    ts_http_free(&r);
    head_offset(&s, loc, &hs);
    TS_CHECK(hs == 404, "HEAD after DELETE: %ld", hs);
    patch(&s, &r, loc, 200000, data, 10, "application/offset+octet-stream", NULL);
    EXPECT(r, 404, "not_found");
    ts_http_free(&r);
    ts_http(&s, &r, "DELETE", loc, TUS, NULL, 0);
    EXPECT(r, 404, "not_found");
    ts_http_free(&r);
    TS_CHECK(file_size(bin) == -1, "bytes kept after termination");
    free(loc);

    /* creation-with-upload */
    const char *cwu[] = {"Content-Type: application/offset+octet-stream", NULL};
    char len_h[64];
    snprintf(len_h, sizeof(len_h), "Upload-Length: %d", LEN);
    const char *cwu_h[] = {"Tus-Resumable: 1.0.0", len_h, cwu[0], NULL};
    ts_http(&s, &r, "POST", "/v1/uploads/", cwu_h, data, 64000);
    EXPECT(r, 201, "");
    v = ts_http_header(&r, "Upload-Offset");
    TS_CHECK(v && strcmp(v, "64000") == 0, "creation-with-upload offset %s", v ? v : "(none)");
    free(v);
    loc = ts_http_header(&r, "Location");
    ts_http_free(&r);
    TS_CHECK(head_offset(&s, loc, &hs) == 64000, "HEAD after creation-with-upload");
    ts_http(&s, &r, "DELETE", loc, TUS, NULL, 0);
    ts_http_free(&r);
    free(loc);

    /* two PATCHes racing on one upload: one wins, the other 409/423 */
    loc = create(&s, &r, LEN, NULL, NULL);
    TS_CHECK(loc, "create for the race");
    ts_http_free(&r);
    unsigned char *other = malloc(LEN);
    memset(other, 0xAB, LEN);
    struct racer a = {&s, loc, data, 200000, 0, 1, 0};
    struct racer b = {&s, loc, other, 200000, 0, 0, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race_main, &a);
    usleep(100000); /* a is mid-body: its 200 KB take ~0.4 s */
    pthread_create(&tb, NULL, race_main, &b);
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    TS_CHECK((a.status == 204 && (b.status == 409 || b.status == 423)) ||
                 (b.status == 204 && (a.status == 409 || a.status == 423)),
             "race: %ld and %ld", a.status, b.status);
    TS_CHECK(head_offset(&s, loc, &hs) == 200000, "offset after the race");
    snprintf(bin, sizeof(bin), "%s/%s.bin", uploads, loc + 12);
    FILE *fp = fopen(bin, "rb");
    unsigned char *got = malloc(LEN);
    size_t n = fp ? fread(got, 1, LEN, fp) : 0;
    if (fp)
        fclose(fp);
    const unsigned char *winner = a.status == 204 ? data : other;
    TS_CHECK(n == 200000 && memcmp(got, winner, n) == 0, "the race corrupted the upload");
    free(got);
    free(other);
    free(loc);

    /* the server kept serving */
    ts_http(&s, &r, "GET", "/healthz", NULL, NULL, 0);
    EXPECT(r, 200, "");
    ts_http_free(&r);
    free(data);
    int st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "server exit %d", st);
    free(dir);
}

static void auth_and_expiry(void)
{
    char *dir = ts_mkdtemp("tus-expiry");
    struct ts_server s;
    ts_server_start(&s, dir, "--api-key s3cret --tus-expiry 1");
    struct ts_http r;
    char uploads[4200];
    snprintf(uploads, sizeof(uploads), "%s/uploads", dir);

    /* 401 before any tus logic, still with Tus-Resumable */
    ts_http(&s, &r, "POST", "/v1/uploads/", TUS, NULL, 0);
    EXPECT(r, 401, "unauthorized");
    expect_tus_header(&r);
    ts_http_free(&r);
    ts_http(&s, &r, "HEAD", "/v1/uploads/whatever", TUS, NULL, 0);
    TS_CHECK(r.status == 401, "HEAD without key: %ld", r.status);
    ts_http_free(&r);
    /* a CORS preflight needs no key */
    const char *pre[] = {"Origin: http://example.com", "Access-Control-Request-Method: POST", NULL};
    ts_http(&s, &r, "OPTIONS", "/v1/uploads/", pre, NULL, 0);
    EXPECT(r, 204, "");
    ts_http_free(&r);

    const char *key[] = {"Authorization: Bearer s3cret", NULL};
    char *loc = create(&s, &r, 50000, NULL, key);
    TS_CHECK(loc, "create with the key: %ld %s", r.status, r.body);
    ts_http_free(&r);
    const char *p_h[] = {"Tus-Resumable: 1.0.0", "Authorization: Bearer s3cret", "Upload-Offset: 0",
                         "Content-Type: application/offset+octet-stream", NULL};
    char buf[1000];
    memset(buf, 7, sizeof(buf));
    ts_http(&s, &r, "PATCH", loc, p_h, buf, sizeof(buf));
    EXPECT(r, 204, "");
    ts_http_free(&r);
    char bin[4400];
    snprintf(bin, sizeof(bin), "%s/%s.bin", uploads, loc + 12);
    TS_CHECK(file_size(bin) == 1000, "partial data on disk");
    /* expired a second after its last byte; the sweep (every 0.25 s) removes it */
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        usleep(100000);
        gone = file_size(bin) < 0 && count_files(uploads, loc + 12) == 0;
    }
    TS_CHECK(gone, "the sweep did not remove an expired upload");
    const char *h_h[] = {"Tus-Resumable: 1.0.0", "Authorization: Bearer s3cret", NULL};
    ts_http(&s, &r, "HEAD", loc, h_h, NULL, 0);
    TS_CHECK(r.status == 404, "HEAD of an expired upload: %ld", r.status);
    ts_http_free(&r);
    free(loc);
    int st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "server exit %d", st);
    free(dir);
}

/* With --api-key every method but OPTIONS needs the key: 401 with the
 * API's error JSON, Tus-Resumable and WWW-Authenticate, nothing changed. */
static void expect_401(const struct ts_server *s, const char *method, const char *path,
                       const char *const *hdrs, const void *body, size_t len)
{
    struct ts_http r;
    ts_http(s, &r, method, path, hdrs, body, len);
    if (strcmp(method, "HEAD") == 0)
        TS_CHECK(r.status == 401, "%s %s without the key: %ld", method, path, r.status);
    else
        EXPECT(r, 401, "unauthorized");
    expect_tus_header(&r);
    char *wa = ts_http_header(&r, "WWW-Authenticate");
    TS_CHECK(wa && strcmp(wa, "Bearer") == 0, "%s %s: no WWW-Authenticate", method, path);
    free(wa);
    ts_http_free(&r);
}

static void auth(void)
{
    char *dir = ts_mkdtemp("tus-auth");
    struct ts_server s;
    ts_server_start(&s, dir, "--api-key s3cret");
    struct ts_http r;
    const char *key[] = {"Authorization: Bearer s3cret", NULL};
    const char *wrong[] = {"Tus-Resumable: 1.0.0", "Authorization: Bearer s3cre", NULL};
    const char *basic[] = {"Tus-Resumable: 1.0.0", "Authorization: Basic czNjcmV0", NULL};
    const char *create_h[] = {"Tus-Resumable: 1.0.0", "Upload-Length: 3000", NULL};

    /* discovery and preflight are open */
    ts_http(&s, &r, "OPTIONS", "/v1/uploads/", NULL, NULL, 0);
    EXPECT(r, 204, "");
    char *tv = ts_http_header(&r, "Tus-Version");
    TS_CHECK(tv && strcmp(tv, "1.0.0") == 0, "OPTIONS without Tus-Version");
    free(tv);
    ts_http_free(&r);

    /* creation: no key, a wrong key, another scheme: 401 and nothing stored */
    expect_401(&s, "POST", "/v1/uploads/", create_h, NULL, 0);
    expect_401(&s, "POST", "/v1/uploads/", wrong, NULL, 0);
    expect_401(&s, "POST", "/v1/uploads/", basic, NULL, 0);
    char uploads[4200];
    snprintf(uploads, sizeof(uploads), "%s/uploads", dir);
    TS_CHECK(ts_count_files(uploads) == 0, "an upload was stored without the key");

    char *loc = create(&s, &r, 3000, NULL, key);
    TS_CHECK(loc, "create with the key: %ld %s", r.status, r.body);
    ts_http_free(&r);
    char buf[1000];
    memset(buf, 9, sizeof(buf));
    const char *p_nokey[] = {"Tus-Resumable: 1.0.0", "Upload-Offset: 0",
                             "Content-Type: application/offset+octet-stream", NULL};
    expect_401(&s, "PATCH", loc, p_nokey, buf, sizeof(buf));
    expect_401(&s, "HEAD", loc, TUS, NULL, 0);
    expect_401(&s, "DELETE", loc, TUS, NULL, 0);
    expect_401(&s, "GET", loc, TUS, NULL, 0);
    /* X-HTTP-Method-Override does not get around it */
    const char *ov[] = {"Tus-Resumable: 1.0.0", "X-HTTP-Method-Override: DELETE", NULL};
    expect_401(&s, "POST", loc, ov, NULL, 0);

    /* with the key: the upload is untouched (offset 0), then PATCH, HEAD,
     * DELETE work */
    const char *h_key[] = {"Tus-Resumable: 1.0.0", "Authorization: Bearer s3cret", NULL};
    ts_http(&s, &r, "HEAD", loc, h_key, NULL, 0);
    char *off = ts_http_header(&r, "Upload-Offset");
    TS_CHECK(r.status == 200 && off && strcmp(off, "0") == 0, "HEAD with the key: %ld %s", r.status,
             off ? off : "-");
    free(off);
    ts_http_free(&r);
    const char *p_key[] = {"Tus-Resumable: 1.0.0", "Authorization: Bearer s3cret",
                           "Upload-Offset: 0", "Content-Type: application/offset+octet-stream",
                           NULL};
    ts_http(&s, &r, "PATCH", loc, p_key, buf, sizeof(buf));
    EXPECT(r, 204, "");
    ts_http_free(&r);
    ts_http(&s, &r, "DELETE", loc, h_key, NULL, 0);
    EXPECT(r, 204, "");
    ts_http_free(&r);
    ts_http(&s, &r, "HEAD", loc, h_key, NULL, 0);
    TS_CHECK(r.status == 404, "HEAD after DELETE: %ld", r.status);
    ts_http_free(&r);
    TS_CHECK(ts_count_files(uploads) == 0, "files left after DELETE");
    free(loc);
    int st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "server exit %d", st);
    free(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    protocol();
    auth_and_expiry();
    auth();
    curl_global_cleanup();
    printf("ok\n");
    return 0;
}
