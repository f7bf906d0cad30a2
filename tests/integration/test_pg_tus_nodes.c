/*
 * Resumable (tus) uploads on several nodes sharing one PostgreSQL database
 * and one --data-dir (run only on PostgreSQL: ctest it.test_pg_tus_nodes.pg,
 * under tests/support/with_pg.sh). Two `vidq serve` on two loopback ports:
 *   - created on A, half PATCHed on A, HEAD on B tells that offset, the
 *     rest PATCHed on B: the job runs and succeeds, its output is checked
 *     with ffprobe and its input is byte-identical to the source;
 *   - bad inputs on the other node: a wrong offset (409), an unknown id
 *     (404 for HEAD, PATCH and DELETE), a PATCH after the last byte (409);
 *   - one PATCH on A holds the upload while its body streams: a PATCH on B
 *     meanwhile gets 423, A's PATCH completes; then two PATCHes of the
 *     whole file at once on A and B: one 204, the other 409 or 423, the
 *     bytes never interleave (the job's input equals the source) and the
 *     job is made once;
 *   - A frozen (SIGSTOP) in the middle of a PATCH: B gets 423 until A's
 *     lease lapses, then takes the upload over and completes it; A, let go
 *     on (SIGCONT), answers its PATCH 423 and changes no byte;
 *   - kill -9 of A in the middle of a PATCH: B tells the acknowledged
 *     offset, takes the upload over once A's lock lapsed (half of
 *     --node-lease 3), and the upload completes there, byte-identical;
 *   - expiry across nodes: an upload created on C (a short --tus-expiry),
 *     C stopped, D removes it (row and bytes); then HEAD and PATCH on D
 *     answer 404.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_nodes.h"

static unsigned char *src;
static size_t src_len;

/* POST /v1/uploads/ on s: the upload's id (malloc'd). */
static char *create(const struct ts_server *s)
{
    static const char *const kv[] = {"filename", "clip.mp4", "preset", "mp4-480p", NULL};
    char *loc = ts_tus_create(s, (long long)src_len, kv);
    char *id = strdup(strrchr(loc, '/') + 1);
    free(loc);
    return id;
}

/* PATCH src[off, off+len) on s; returns the status, *new_off the
 * Upload-Offset it answered (-1 without). */
static long patch(const struct ts_server *s, const char *id, size_t off, size_t len,
                  long long *new_off)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/uploads/%s", id);
    return ts_tus_patch(s, path, (long long)off, src + off, len, new_off);
}

/* HEAD on s: the status, *off the Upload-Offset. */
static long head(const struct ts_server *s, const char *id, long long *off)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/uploads/%s", id);
    return ts_tus_head(s, path, off);
}

static int file_equals_src(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char *buf = malloc(src_len + 1);
    size_t n = fread(buf, 1, src_len + 1, f);
    fclose(f);
    int eq = n == src_len && memcmp(buf, src, src_len) == 0;
    free(buf);
    return eq;
}

/* The job of a completed upload succeeded (waited on s), its input is the
 * source byte for byte, and its output (downloaded through t) probes as
 * a 2 s video with sound. */
static void check_job(const struct ts_server *s, const struct ts_server *t, const char *id,
                      const char *dir)
{
    json_t *j = ts_wait_job(s, id, 60);
    const char *st = j ? json_string_value(json_object_get(j, "status")) : NULL;
    TS_CHECK(st && strcmp(st, "succeeded") == 0, "job %s: %s", id, j ? json_dumps(j, 0) : "none");
    TS_EXPECT(json_integer_value(json_object_get(j, "attempts")) == 1, "job %s attempts", id);
    char in[4400];
    snprintf(in, sizeof(in), "%s/inputs/%s", dir, id);
    TS_EXPECT(file_equals_src(in), "job %s: its input differs from the source", id);
    const char *url =
        json_string_value(json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "url"));
    TS_CHECK(url, "no output url: %s", json_dumps(j, 0));
    char file[4400];
    snprintf(file, sizeof(file), "%s/dl-%s.mp4", dir, id);
    long code = ts_http_download(t, url, file);
    TS_CHECK(code == 200, "download %s through %s: %ld", url, t->base, code);
    json_t *p = ts_ffprobe(file);
    TS_CHECK(p && json_array_size(json_object_get(p, "streams")) == 2, "ffprobe %s", file);
    double dur = strtod(
        json_string_value(json_object_get(json_object_get(p, "format"), "duration")) ?: "0", NULL);
    TS_EXPECT(dur > 1.5 && dur < 2.5, "output duration %f", dur);
    json_decref(p);
    json_decref(j);
    unlink(file);
}

/* A PATCH written by hand: its headers and the first `first` bytes of the
 * body from off, Content-Length announcing len; the socket is returned
 * open (the server holds the upload until the body ends or the socket
 * closes). */
static int raw_patch_start(const struct ts_server *s, const char *id, size_t off, size_t len,
                           size_t first)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    TS_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect");
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "PATCH /v1/uploads/%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                     "Content-Type: application/offset+octet-stream\r\nUpload-Offset: %zu\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     id, off, len);
    TS_CHECK(write(fd, hdr, (size_t)n) == n, "write headers");
    TS_CHECK(write(fd, src + off, first) == (ssize_t)first, "write body");
    return fd;
}

/* Send the rest of a raw PATCH and read its status line's code. */
static int raw_patch_finish(int fd, size_t from, size_t to)
{
    size_t done = from;
    while (done < to) {
        ssize_t w = write(fd, src + done, to - done);
        TS_CHECK(w > 0, "write rest");
        done += (size_t)w;
    }
    char buf[1024] = {0};
    size_t got = 0;
    double deadline = ts_now() + 10;
    while (got < sizeof(buf) - 1 && !strstr(buf, "\r\n\r\n") && ts_now() < deadline) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    int code = 0;
    sscanf(buf, "HTTP/1.1 %d", &code);
    return code;
}

static long long data_size(const char *dir, const char *id)
{
    char p[4400];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/uploads/%s.bin", dir, id);
    return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

struct racer {
    const struct ts_server *s;
    const char *id;
    long status;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    r->status = patch(r->s, r->id, 0, src_len, NULL);
    return NULL;
}

int main(void)
{
    ts_pg_only("test_pg_tus_nodes");
    FILE *f = fopen(ts_media("h264_aac_640x360.mp4"), "rb");
    TS_CHECK(f, "media");
    src = malloc(1 << 21);
    src_len = fread(src, 1, 1 << 21, f);
    fclose(f);
    TS_CHECK(src_len > 100000 && src_len < (1 << 21), "media size %zu", src_len);

    char url[4400], flags[5000];
    char *dir = ts_mkdtemp_store("pg-tus-nodes", url, sizeof(url));
    snprintf(flags, sizeof(flags),
             "--db %s --node-lease 3 --max-concurrent 2 --isolation process", url);
    struct ts_server a, b;
    ts_server_start(&a, dir, flags);
    ts_server_start(&b, dir, flags);
    TS_CHECK(a.port != b.port, "two ports");
    long long off = 0;
    size_t half = src_len / 2;

    /* ---- 1. created on A, half on A, HEAD on B, the rest on B */
    char *id1 = create(&a);
    TS_EXPECT(patch(&a, id1, 0, half, &off) == 204 && off == (long long)half, "PATCH 1 on A: %lld",
              off);
    TS_EXPECT(head(&b, id1, &off) == 200 && off == (long long)half, "HEAD on B: offset %lld", off);
    /* bad inputs, on the node that did not create it */
    TS_EXPECT(patch(&b, id1, 0, 1000, NULL) == 409, "a wrong offset on B");
    TS_EXPECT(patch(&b, id1, half + 10, 1000, NULL) == 409, "an offset ahead on B");
    TS_EXPECT(head(&b, "nosuchuploadAAAAAAAAAA", &off) == 404, "HEAD of an unknown id");
    TS_EXPECT(patch(&b, "nosuchuploadAAAAAAAAAA", 0, 10, NULL) == 404, "PATCH of an unknown id");
    TS_EXPECT(head(&a, id1, &off) == 200 && off == (long long)half, "offset kept: %lld", off);
    TS_EXPECT(patch(&b, id1, half, src_len - half, &off) == 204 && off == (long long)src_len,
              "PATCH 2 on B: %lld", off);
    TS_EXPECT(patch(&a, id1, src_len, 0, NULL) == 409, "a PATCH after the last byte");
    check_job(&a, &b, id1, dir);

    /* ---- 2. a PATCH streaming on A holds the upload: B gets 423 */
    char *id2 = create(&b);
    int fd = raw_patch_start(&a, id2, 0, src_len, 4096);
    for (int i = 0; i < 100 && data_size(dir, id2) < 4096; i++)
        ts_sleep_ms(20); /* A has the lock and wrote the first bytes */
    TS_EXPECT(patch(&b, id2, 0, src_len, NULL) == 423, "a second writer on B while A writes");
    TS_EXPECT(head(&b, id2, &off) == 200 && off == 0, "HEAD on B mid-PATCH: %lld", off);
    TS_EXPECT(raw_patch_finish(fd, 4096, src_len) == 204, "A's PATCH completes");
    check_job(&b, &a, id2, dir);

    /* ---- 3. two whole-file PATCHes at once, on A and on B */
    char *id3 = create(&a);
    struct racer r1 = {&a, id3, 0}, r2 = {&b, id3, 0};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, race, &r1);
    pthread_create(&t2, NULL, race, &r2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    int wins = (r1.status == 204) + (r2.status == 204);
    long loser = r1.status == 204 ? r2.status : r1.status;
    TS_EXPECT(wins == 1 && (loser == 409 || loser == 423), "race: A %ld, B %ld", r1.status,
              r2.status);
    check_job(&a, &b, id3, dir);
    char made[128];
    snprintf(made, sizeof(made), "tus: upload %s complete", id3);
    TS_EXPECT(ts_log_count(&a, made) + ts_log_count(&b, made) == 1, "the job of %s made once", id3);

    /* ---- 4. A frozen (SIGSTOP) in the middle of a PATCH, past its lease:
     * B gets 423 until the lease lapses, then takes the upload over and
     * completes it; A, let go on, stops writing (its lock was taken),
     * answers 423 and changes no byte of B's */
    char *id6 = create(&a);
    fd = raw_patch_start(&a, id6, 0, src_len, 50000);
    for (int i = 0; i < 100 && data_size(dir, id6) < 50000; i++)
        ts_sleep_ms(20);
    TS_EXPECT(data_size(dir, id6) == 50000, "A wrote the first bytes");
    kill(a.pid, SIGSTOP);
    double frozen = ts_now();
    TS_EXPECT(patch(&b, id6, 0, src_len, NULL) == 423, "B while frozen A's lease holds");
    long st = 0;
    while ((st = patch(&b, id6, 0, src_len, &off)) == 423 && ts_now() < frozen + 15)
        ts_sleep_ms(100);
    double lapse = ts_now() - frozen;
    TS_EXPECT(st == 204 && off == (long long)src_len, "B took over: %ld, offset %lld", st, off);
    printf("SIGSTOP to a PATCH accepted on the other node: %.2f s (lock lease 1.5 s)\n", lapse);
    TS_EXPECT(lapse > 1, "B waited for the lease (%.2f s)", lapse);
    kill(a.pid, SIGCONT);
    int code = raw_patch_finish(fd, 50000, src_len);
    TS_EXPECT(code == 423, "A's stale PATCH, let go on: %d", code);
    check_job(&b, &a, id6, dir);

    /* ---- 5. kill -9 of A in the middle of a PATCH */
    char *id4 = create(&a);
    size_t q = src_len / 4;
    TS_EXPECT(patch(&a, id4, 0, q, &off) == 204 && off == (long long)q, "first quarter on A");
    fd = raw_patch_start(&a, id4, q, src_len - q, 50000);
    for (int i = 0; i < 100 && data_size(dir, id4) < (long long)(q + 50000); i++)
        ts_sleep_ms(20);
    TS_EXPECT(data_size(dir, id4) == (long long)(q + 50000), "A wrote the unacknowledged bytes");
    ts_server_stop(&a, SIGKILL, 10);
    close(fd);
    double killed = ts_now();
    TS_EXPECT(head(&b, id4, &off) == 200 && off == (long long)q,
              "HEAD on B after the kill: %lld (the acknowledged %zu)", off, q);
    while ((st = patch(&b, id4, q, src_len - q, &off)) == 423 && ts_now() < killed + 10)
        ts_sleep_ms(100);
    double took = ts_now() - killed;
    TS_EXPECT(st == 204 && off == (long long)src_len, "resumed on B: %ld, offset %lld", st, off);
    printf("kill -9 to a PATCH accepted on the other node: %.2f s\n", took);
    TS_EXPECT(took < 5, "the lock of a killed node lapses within its lease (%.2f s)", took);
    check_job(&b, &b, id4, dir);
    ts_server_stop(&b, SIGTERM, 20);

    /* ---- 6. expiry across nodes: made on C, C gone, D removes it */
    struct ts_server c, d;
    char short_flags[5200];
    snprintf(short_flags, sizeof(short_flags), "%s --tus-expiry 3", flags);
    ts_server_start(&c, dir, short_flags);
    char *id5 = create(&c);
    TS_EXPECT(patch(&c, id5, 0, 1000, &off) == 204 && off == 1000, "a start on C");
    ts_server_stop(&c, SIGTERM, 20);
    ts_server_start(&d, dir, short_flags);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = head(&d, id5, &off) == 404;
        if (!gone)
            ts_sleep_ms(100);
    }
    TS_EXPECT(gone, "D removed C's expired upload");
    TS_EXPECT(data_size(dir, id5) == -1, "its bytes are gone");
    TS_EXPECT(patch(&d, id5, 1000, 1000, NULL) == 404, "PATCH after expiry: 404");
    TS_EXPECT(ts_log_count(&d, "expired (1000 of") == 1, "D's log names the expiry");

    /* the node kept serving */
    ts_serving_then_stop(&d, 20);
    free(id1);
    free(id2);
    free(id3);
    free(id4);
    free(id5);
    free(id6);
    free(src);
    return ts_finish(dir, 0);
}
