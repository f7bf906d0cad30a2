/*
 * The disk guard (--min-free-bytes) on a real small filesystem: the data
 * dir is a 32 MiB tmpfs (skipped where mounting is not allowed), the
 * threshold 2 MiB. Uploads that would go under it get 507
 * insufficient_storage (raw with a length: before the body; chunked and
 * multipart: mid-way; tus creation and PATCH, before or mid-way) and
 * leave nothing behind;
 * /healthz says degraded (still 200) and /metrics tells free and stored
 * bytes; a job whose output hits a full disk fails with no_space and
 * leaves no output; the server serves on throughout.
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "test_support.h"

enum { MIB = 1 << 20, MIN_FREE = 2 * MIB };

static const char *data_dir;

static const char *err_code(const struct ts_http *r)
{
    static char code[64];
    json_t *j = ts_http_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(code, sizeof(code), "%s", c ? c : "(none)");
    json_decref(j);
    return code;
}

#define EXPECT_507(r, what)                                                                 \
    TS_EXPECT((r).status == 507 && strcmp(err_code(&(r)), "insufficient_storage") == 0,    \
              "%s: expected 507 insufficient_storage, got %ld %s", (what), (r).status,      \
              (r).body)

static long long free_now(void)
{
    struct statvfs sv;
    TS_CHECK(statvfs(data_dir, &sv) == 0, "statvfs");
    return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

/* Write a file of size bytes (a byte pattern, not media). */
static void make_file(const char *path, long long size)
{
    FILE *f = fopen(path, "wb");
    TS_CHECK(f, "cannot create %s", path);
    static char chunk[65536];
    memset(chunk, 7, sizeof(chunk));
    for (long long left = size; left > 0;) {
        size_t n = left < (long long)sizeof(chunk) ? (size_t)left : sizeof(chunk);
        TS_CHECK(fwrite(chunk, 1, n, f) == n, "writing %s", path);
        left -= (long long)n;
    }
    TS_CHECK(fclose(f) == 0, "closing %s", path);
}

/* Leave about `leave` bytes free on the tmpfs with a filler file. */
static void fill_to(const char *filler, long long leave)
{
    unlink(filler);
    long long size = free_now() - leave;
    TS_CHECK(size > 0, "cannot leave %lld free", leave);
    make_file(filler, size);
}

static void expect_no_leftovers(const char *what)
{
    char tmp[4300], inputs[4300];
    snprintf(tmp, sizeof(tmp), "%s/tmp", data_dir);
    snprintf(inputs, sizeof(inputs), "%s/inputs", data_dir);
    TS_EXPECT(ts_count_files(tmp) == 0, "%s: files left in tmp/", what);
    TS_EXPECT(ts_count_files(inputs) <= 0, "%s: files left in inputs/", what);
}

static json_t *get_json(const struct ts_server *s, const char *path, long *status)
{
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0);
    *status = r.status;
    json_t *j = ts_http_json(&r);
    ts_http_free(&r);
    return j;
}

/* Poll /healthz until its status is want (the guard's cache is refreshed
 * every second); returns 1 when it was, and checks it stayed 200. */
static int wait_health(const struct ts_server *s, const char *want)
{
    for (int i = 0; i < 40; i++) {
        long st;
        json_t *j = get_json(s, "/healthz", &st);
        TS_EXPECT(st == 200, "healthz answered %ld", st);
        const char *v = json_string_value(json_object_get(j, "status"));
        int ok = v && strcmp(v, want) == 0;
        json_decref(j);
        if (ok)
            return 1;
        ts_sleep_ms(100);
    }
    return 0;
}

static long long metric(const struct ts_server *s, const char *name)
{
    struct ts_http r;
    long long v = -1;
    ts_http(s, &r, "GET", "/metrics", NULL, NULL, 0);
    size_t nl = strlen(name);
    for (const char *p = r.body; p && *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            v = strtoll(p + nl + 1, NULL, 10);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    ts_http_free(&r);
    return v;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        TS_CHECK(w > 0, "send to the server failed");
        p += w;
        len -= (size_t)w;
    }
}

static void send_zeros(int fd, size_t len)
{
    static char zeros[65536];
    while (len > 0) {
        size_t n = len < sizeof(zeros) ? len : sizeof(zeros);
        send_all(fd, zeros, n);
        len -= n;
    }
}

/* A tus PATCH whose disk gets low while its body arrives: the first 4 MiB
 * go with space, then a filler leaves little, then the rest. Refused
 * mid-way with 507; the upload's offset stays 0 and its file holds
 * nothing of the request. */
static void tus_patch_refused_midway(const struct ts_server *s, const char *filler)
{
    enum { LEN = 20 * MIB, FIRST = 4 * MIB };
    struct ts_http r;
    const char *const create[] = {"Tus-Resumable: 1.0.0", "Upload-Length: 20971520", NULL};
    ts_http(s, &r, "POST", "/v1/uploads/", create, NULL, 0);
    TS_CHECK(r.status == 201, "tus creation (20 MiB): %ld %s", r.status, r.body);
    char *loc = ts_http_header(&r, "Location");
    TS_CHECK(loc, "Location");
    ts_http_free(&r);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    TS_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect");
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "PATCH %s HTTP/1.1\r\nHost: vidq\r\nTus-Resumable: 1.0.0\r\n"
                      "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n",
                      loc, (int)LEN);
    send_all(fd, head, (size_t)hl);
    send_zeros(fd, FIRST);
    ts_sleep_ms(300); /* the server has written what came */
    fill_to(filler, MIN_FREE + MIB);
    send_zeros(fd, LEN - FIRST);
    char resp[4096];
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    resp[got] = '\0';
    close(fd);
    TS_EXPECT(strncmp(resp, "HTTP/1.1 507", 12) == 0 && strstr(resp, "insufficient_storage"),
              "tus PATCH refused mid-way: %.200s", resp);
    const char *const head_req[] = {"Tus-Resumable: 1.0.0", NULL};
    ts_http(s, &r, "HEAD", loc, head_req, NULL, 0);
    char *off = ts_http_header(&r, "Upload-Offset");
    TS_EXPECT(off && strcmp(off, "0") == 0, "offset after the mid-way 507: %s", off ? off : "-");
    free(off);
    ts_http_free(&r);
    /* Nothing of the refused body stays on disk. */
    long long sz = -1;
    char cmd[4400], out[64];
    snprintf(cmd, sizeof(cmd), "du -sb %s/uploads | cut -f1", data_dir);
    if (ts_run(out, sizeof(out), "%s", cmd) == 0)
        sz = strtoll(out, NULL, 10);
    TS_EXPECT(sz >= 0 && sz < 256 * 1024, "uploads/ holds %lld bytes after the refused PATCH", sz);
    ts_http(s, &r, "DELETE", loc, head_req, NULL, 0);
    TS_EXPECT(r.status == 204, "tus DELETE: %ld", r.status);
    ts_http_free(&r);
    unlink(filler);
    free(loc);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    TS_CHECK(f, "open %s", path);
    struct stat st;
    fstat(fileno(f), &st);
    char *buf = malloc((size_t)st.st_size);
    TS_CHECK(buf && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size, "read %s", path);
    fclose(f);
    *len = (size_t)st.st_size;
    return buf;
}

int main(void)
{
    char *dir = ts_mkdtemp("svc-disk-guard");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=32m") != 0) {
        perror("skip: cannot mount a small tmpfs");
        rmdir(dir);
        free(dir);
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char data[4200], big[4200], filler[4300];
    snprintf(data, sizeof(data), "%s/data", dir);
    data_dir = data;
    snprintf(big, sizeof(big), "%s/../svc-disk-guard-big.bin", dir); /* not on the tmpfs */
    snprintf(filler, sizeof(filler), "%s/filler", dir);               /* on it, beside data/ */
    make_file(big, 30LL * MIB);

    struct ts_server s;
    char flags[256];
    snprintf(flags, sizeof(flags), "--min-free-bytes %d --disk-scan-interval 0.3", (int)MIN_FREE);
    ts_server_start(&s, data, flags);
    struct ts_http r;
    long st;

    /* 1. A raw body with a length that does not fit: refused before a
     * byte of it is stored (nothing counted as uploaded). */
    long long up0 = metric(&s, "vidq_uploaded_bytes_total");
    ts_http_upload_raw(&s, &r, "/upload", big, "video/mp4", NULL);
    EXPECT_507(r, "raw with Content-Length");
    ts_http_free(&r);
    TS_EXPECT(metric(&s, "vidq_uploaded_bytes_total") == up0, "bytes stored before the 507");
    expect_no_leftovers("raw");

    /* 2. Chunked (no length): refused mid-way, the partial file deleted,
     * and the disk never went far under the threshold. */
    const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
    ts_http_upload_raw(&s, &r, "/upload", big, "video/mp4", chunked);
    EXPECT_507(r, "raw chunked");
    ts_http_free(&r);
    long long up1 = metric(&s, "vidq_uploaded_bytes_total");
    TS_EXPECT(up1 - up0 > 20LL * MIB && up1 - up0 < 30LL * MIB,
              "chunked: %lld bytes stored before the 507", up1 - up0);
    expect_no_leftovers("chunked");

    /* 3. Multipart. */
    ts_http_upload_multipart(&s, &r, "/upload", big, NULL, NULL);
    EXPECT_507(r, "multipart");
    ts_http_free(&r);
    expect_no_leftovers("multipart");

    /* 4. tus: a creation whose Upload-Length does not fit. */
    const char *const tus_big[] = {"Tus-Resumable: 1.0.0", "Upload-Length: 31457280", NULL};
    ts_http(&s, &r, "POST", "/v1/uploads/", tus_big, NULL, 0);
    EXPECT_507(r, "tus creation");
    ts_http_free(&r);

    tus_patch_refused_midway(&s, filler);
    TS_EXPECT(wait_health(&s, "ok"), "healthz not ok after the filler went");

    /* A small tus upload is created; then the disk gets low. */
    size_t media_len;
    char *media = read_all(ts_media("h264_aac_640x360.mp4"), &media_len);
    char ulen[64];
    snprintf(ulen, sizeof(ulen), "Upload-Length: %zu", media_len);
    const char *const tus_small[] = {"Tus-Resumable: 1.0.0", ulen,
                                     "Upload-Metadata: preset dGh1bWJuYWls", NULL}; /* thumbnail */
    ts_http(&s, &r, "POST", "/v1/uploads/", tus_small, NULL, 0);
    TS_CHECK(r.status == 201, "tus creation: %ld %s", r.status, r.body);
    char *loc = ts_http_header(&r, "Location");
    TS_CHECK(loc, "tus Location");
    ts_http_free(&r);
    TS_EXPECT(wait_health(&s, "ok"), "healthz not ok with free disk");

    fill_to(filler, MIN_FREE - MIB / 2);
    TS_EXPECT(wait_health(&s, "degraded"), "healthz not degraded under the threshold");
    json_t *hz = get_json(&s, "/healthz", &st);
    TS_EXPECT(json_string_value(json_object_get(json_object_get(hz, "checks"), "disk")) &&
                  !strcmp(json_string_value(json_object_get(json_object_get(hz, "checks"), "disk")),
                          "low"),
              "healthz checks.disk");
    json_decref(hz);
    TS_EXPECT(metric(&s, "vidq_disk_low") == 1, "vidq_disk_low not 1");
    long long mfree = metric(&s, "vidq_disk_free_bytes");
    TS_EXPECT(mfree >= 0 && llabs(mfree - free_now()) < MIB, "vidq_disk_free_bytes %lld vs %lld",
              mfree, free_now());

    const char *const patch0[] = {"Tus-Resumable: 1.0.0", "Upload-Offset: 0",
                                  "Content-Type: application/offset+octet-stream", NULL};
    ts_http(&s, &r, "PATCH", loc, patch0, media, media_len);
    EXPECT_507(r, "tus PATCH under the threshold");
    ts_http_free(&r);
    ts_http(&s, &r, "HEAD", loc, patch0, NULL, 0);
    char *off = ts_http_header(&r, "Upload-Offset");
    TS_EXPECT(off && strcmp(off, "0") == 0, "offset after the refused PATCH: %s", off ? off : "-");
    free(off);
    ts_http_free(&r);
    /* Even a small raw upload is refused now. */
    ts_http_upload_raw(&s, &r, "/upload?preset=thumbnail", ts_media("h264_aac_640x360.mp4"),
                       "video/mp4", NULL);
    EXPECT_507(r, "small raw upload under the threshold");
    ts_http_free(&r);
    expect_no_leftovers("under the threshold");
    TS_EXPECT(metric(&s, "vidq_disk_refused_total") >= 6, "refusals not counted");
    /* Reads still work. */
    ts_http(&s, &r, "GET", "/v1/jobs", NULL, NULL, 0);
    TS_EXPECT(r.status == 200, "list while degraded: %ld", r.status);
    ts_http_free(&r);

    /* Space again: the upload resumes and its job runs. */
    unlink(filler);
    TS_EXPECT(wait_health(&s, "ok"), "healthz not ok again after space came back");
    ts_http(&s, &r, "PATCH", loc, patch0, media, media_len);
    TS_EXPECT(r.status == 204, "tus PATCH with space: %ld %s", r.status, r.body);
    ts_http_free(&r);
    const char *id = strrchr(loc, '/') + 1;
    json_t *job = ts_wait_job(&s, id, 60);
    TS_EXPECT(job && !strcmp(json_string_value(json_object_get(job, "status")), "succeeded"),
              "the tus job did not succeed");
    json_decref(job);
    /* The walk sees the input and the output (scan every 0.3 s). */
    long long in_b = -1, out_b = -1;
    for (int i = 0; i < 30 && (in_b < (long long)media_len || out_b <= 0); i++) {
        ts_sleep_ms(100);
        in_b = metric(&s, "vidq_stored_bytes{kind=\"inputs\"}");
        out_b = metric(&s, "vidq_stored_bytes{kind=\"outputs\"}");
    }
    TS_EXPECT(in_b >= (long long)media_len && in_b < (long long)media_len + MIB,
              "stored inputs %lld, want about %zu", in_b, media_len);
    TS_EXPECT(out_b > 0, "stored outputs %lld", out_b);

    /* 5. A job whose output does not fit: admitted (its input fits above
     * the threshold), then its encoder hits ENOSPC. It fails with no_space
     * and its partial output is removed. */
    const char *input = ts_media("h264_aac_640x360_10s.mp4");
    struct stat ist;
    TS_CHECK(stat(input, &ist) == 0, "stat %s", input);
    fill_to(filler, MIN_FREE + (long long)ist.st_size + MIB / 2);
    const char *spec = "/upload?outputs=%5B%7B%22name%22%3A%22big%22%2C%22container%22%3A%22mkv%22"
                       "%2C%22video%22%3A%7B%22codec%22%3A%22h264%22%2C%22crf%22%3A1%2C%22speed%22"
                       "%3A%22ultrafast%22%7D%7D%5D";
    ts_http_upload_raw(&s, &r, spec, input, "video/mp4", NULL);
    TS_CHECK(r.status == 202, "big-output upload: %ld %s", r.status, r.body);
    json_t *acc = ts_http_json(&r);
    char jid[64];
    snprintf(jid, sizeof(jid), "%s", json_string_value(json_object_get(acc, "id")));
    json_decref(acc);
    ts_http_free(&r);
    job = ts_wait_job(&s, jid, 90);
    const char *code =
        json_string_value(json_object_get(json_object_get(job, "error"), "code"));
    TS_EXPECT(job && !strcmp(json_string_value(json_object_get(job, "status")), "failed") && code &&
                  !strcmp(code, "no_space"),
              "ENOSPC job: status %s code %s",
              job ? json_string_value(json_object_get(job, "status")) : "-", code ? code : "-");
    json_decref(job);
    char outdir[4400];
    snprintf(outdir, sizeof(outdir), "%s/outputs/%s", data, jid);
    struct stat ost;
    TS_EXPECT(stat(outdir, &ost) != 0, "the failed job's output folder is still there");
    char tmpd[4300];
    snprintf(tmpd, sizeof(tmpd), "%s/tmp", data);
    TS_EXPECT(ts_count_files(tmpd) == 0, "tmp leftovers after the ENOSPC job");
    ts_http(&s, &r, "GET", "/healthz", NULL, NULL, 0);
    TS_EXPECT(r.status == 200, "healthz after the ENOSPC job: %ld", r.status);
    ts_http_free(&r);
    unlink(filler);

    int ex = ts_server_stop(&s, SIGTERM, 20);
    TS_EXPECT(ex == 0, "server exit %d", ex);
    free(loc);
    free(media);
    unlink(big);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
    curl_global_cleanup();
    if (ts_failures)
        return 1;
    printf("ok\n");
    return 0;
}
