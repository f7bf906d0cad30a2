/*
 * Connection exhaustion: 300 slowloris connections (a header byte a second,
 * reconnecting when closed, as an attacker would), 300 idle ones and 50
 * that send an upload's head at once and then its body a byte a second
 * (or nothing),
 * from ten loopback addresses (127.0.0.2-11, under the per-address cap),
 * against a server capped at 512 connections. Meanwhile a fresh client on
 * 127.0.0.1 times GET /healthz and GET /status/<id> every 200 ms: each must
 * answer 200 within 1 s. The server's RSS must stay bounded, and its
 * metrics must show the guard at work (heads timed out, waiters evicted).
 * Without the guard the 600 connections hold all 512 slots and the fresh
 * client waits in the kernel's backlog (README: Connection exhaustion).
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_support.h"

enum { N_SLOW = 300, N_IDLE = 300, N_BODY = 50, N_ADDRS = 10, FLOOD_S = 14 };

struct attacker {
    int fd;
    int sent;  /* bytes of the head sent so far */
    int addr;  /* 127.0.0.(2 + addr) */
    int reconnects;
};

static const char UPLOAD_HEAD[] = "POST /upload HTTP/1.1\r\nHost: vidq\r\nContent-Type: video/mp4\r\n"
                                  "Content-Length: 1000000\r\n\r\n";

static const char HEAD[] = "GET /healthz HTTP/1.1\r\nHost: vidq\r\nUser-Agent: slowloris\r\n"
                           "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/* A non-blocking connection from 127.0.0.(2+addr) to the server; -1 if
 * the kernel refused it at once. */
static int open_from(int port, int addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)addr);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 if the server closed fd (EOF or reset), without blocking. */
static int closed_by_server(int fd)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static long rss_kib(pid_t pid)
{
    char cmd[128], out[64];
    snprintf(cmd, sizeof(cmd), "awk '/^VmRSS:/ {print $2}' /proc/%d/status", (int)pid);
    if (ts_run(out, sizeof(out), "%s", cmd) != 0)
        return -1;
    return strtol(out, NULL, 10);
}

static long long metric(const struct ts_server *s, const char *name)
{
    struct ts_http r;
    long long v = -1;
    ts_http(s, &r, "GET", "/metrics", NULL, NULL, 0);
    const char *p = r.body ? strstr(r.body, name) : NULL;
    while (p && p > r.body && p[-1] != '\n') /* skip HELP lines */
        p = strstr(p + 1, name);
    if (p)
        v = strtoll(p + strlen(name) + 1, NULL, 10);
    ts_http_free(&r);
    return v;
}

static size_t drop(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* One GET on a new connection, given up after 3 s (a starved client would
 * otherwise wait in the backlog): returns the seconds it took. */
static double timed_get(const struct ts_server *s, const char *path, long *status)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    CURL *c = curl_easy_init();
    TS_CHECK(c, "curl_easy_init");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, drop);
    *status = 0;
    double t0 = ts_now();
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    double dt = ts_now() - t0;
    curl_easy_cleanup(c);
    return dt;
}

int main(void)
{
    /* Loopback addresses other than 127.0.0.1 need Linux's 127/8 route. */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a2 = {.sin_family = AF_INET};
    a2.sin_addr.s_addr = htonl(0x7f000002u);
    if (probe < 0 || bind(probe, (struct sockaddr *)&a2, sizeof(a2)) < 0) {
        fprintf(stderr, "skip: cannot bind 127.0.0.2\n");
        return 77;
    }
    close(probe);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = ts_mkdtemp("http-slowloris");
    struct ts_server s;
    ts_server_start(&s, dir,
                    "--isolation thread --max-connections 512 --max-connections-per-ip 100 "
                    "--header-timeout 4 --http-threads 2");

    /* A real job to read the status of. */
    struct ts_http r;
    ts_http_upload_raw(&s, &r, "/upload?preset=thumbnail", ts_media("h264_aac_640x360.mp4"),
                       "video/mp4", NULL);
    TS_CHECK(r.status == 202, "upload: %ld %s", r.status, r.body);
    json_t *j = ts_http_json(&r);
    char status_path[128];
    snprintf(status_path, sizeof(status_path), "/status/%s",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ts_http_free(&r);
    long rss0 = rss_kib(s.pid);

    static struct attacker slow[N_SLOW], body[N_BODY];
    static int idle[N_IDLE];
    int refused = 0;
    for (int i = 0; i < N_SLOW; i++) {
        slow[i].addr = i % N_ADDRS;
        slow[i].fd = open_from(s.port, slow[i].addr);
        refused += slow[i].fd < 0;
    }
    for (int i = 0; i < N_IDLE; i++) {
        idle[i] = open_from(s.port, i % N_ADDRS);
        refused += idle[i] < 0;
    }
    for (int i = 0; i < N_BODY; i++) {
        body[i].addr = i % N_ADDRS;
        body[i].fd = open_from(s.port, body[i].addr);
        refused += body[i].fd < 0;
    }
    TS_CHECK(refused == 0, "%d attack connections refused by the kernel", refused);
    ts_sleep_ms(100); /* connected: the heads of the slow bodies go at once */
    for (int i = 0; i < N_BODY; i++)
        send(body[i].fd, UPLOAD_HEAD, sizeof(UPLOAD_HEAD) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    int body_reconnects[2] = {0, 0}; /* trickling, silent after the head */

    double t_start = ts_now(), next_byte = t_start, worst = 0;
    int probes = 0, slow_reconnects = 0;
    long max_rss = rss0;
    while (ts_now() - t_start < FLOOD_S) {
        if (ts_now() >= next_byte) { /* a header byte a second on each */
            next_byte += 1.0;
            for (int i = 0; i < N_SLOW; i++) {
                if (slow[i].fd >= 0 && closed_by_server(slow[i].fd)) {
                    close(slow[i].fd);
                    slow[i].fd = open_from(s.port, slow[i].addr);
                    slow[i].sent = 0;
                    slow_reconnects++;
                }
                if (slow[i].fd < 0)
                    continue;
                int k = slow[i].sent % (int)(sizeof(HEAD) - 1);
                if (send(slow[i].fd, HEAD + k, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                    slow[i].sent++;
            }
            for (int i = 0; i < N_BODY; i++) { /* a body byte a second */
                if (body[i].fd >= 0 && closed_by_server(body[i].fd)) {
                    close(body[i].fd);
                    body[i].fd = open_from(s.port, body[i].addr);
                    body[i].sent = 0;
                    body_reconnects[i % 2]++;
                }
                if (body[i].fd < 0)
                    continue;
                if (body[i].sent == 0) {
                    if (send(body[i].fd, UPLOAD_HEAD, sizeof(UPLOAD_HEAD) - 1,
                             MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
                        body[i].sent = 1;
                } else if (i % 2 == 0 &&
                           send(body[i].fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
                    body[i].sent++;
                }
            }
        }
        long st;
        double d1 = timed_get(&s, "/healthz", &st);
        TS_EXPECT(st == 200, "healthz under the flood: status %ld after %.3f s", st, d1);
        double d2 = timed_get(&s, status_path, &st);
        TS_EXPECT(st == 200, "status under the flood: status %ld after %.3f s", st, d2);
        TS_EXPECT(d1 < 1.0 && d2 < 1.0, "slow answer under the flood: healthz %.3f s, status %.3f s",
                  d1, d2);
        if (d1 > worst)
            worst = d1;
        if (d2 > worst)
            worst = d2;
        probes += 2;
        long rss = rss_kib(s.pid);
        if (rss > max_rss)
            max_rss = rss;
        ts_sleep_ms(200);
    }
    long long timeouts = metric(&s, "vidq_http_header_timeouts_total");
    long long evicted = metric(&s, "vidq_http_evicted_total");
    long long open_now = metric(&s, "vidq_http_connections");
    long long slow_bodies = metric(&s, "vidq_http_slow_bodies_total");
    printf("probes=%d worst=%.3f s rss %ld -> max %ld KiB, head timeouts=%lld evicted=%lld "
           "open=%lld slow bodies cut=%lld; reconnects: slowloris %d, slow body %d, silent "
           "body %d\n",
           probes, worst, rss0, max_rss, timeouts, evicted, open_now, slow_bodies,
           slow_reconnects, body_reconnects[0], body_reconnects[1]);
    /* Both rules must have acted: 600 > 512 - 32 (eviction) and trickling
     * connections older than --header-timeout 4 (the head deadline). */
    TS_EXPECT(evicted > 0, "no connection evicted");
    TS_EXPECT(timeouts > 0, "no connection closed for a late head");
    TS_EXPECT(slow_reconnects >= N_SLOW, "slowloris connections were not cut: %d reconnects",
              slow_reconnects);
    TS_EXPECT(open_now <= 512, "open connections %lld over the cap", open_now);
    TS_EXPECT(slow_bodies >= N_BODY && body_reconnects[0] >= N_BODY / 2 &&
                  body_reconnects[1] >= N_BODY / 2,
              "slow bodies were not cut: %lld by the server, reconnects %d trickling, %d silent",
              slow_bodies, body_reconnects[0], body_reconnects[1]);
    TS_EXPECT(max_rss - rss0 < 64 * 1024, "RSS grew by %ld KiB", max_rss - rss0);

    for (int i = 0; i < N_SLOW; i++)
        if (slow[i].fd >= 0)
            close(slow[i].fd);
    for (int i = 0; i < N_IDLE; i++)
        if (idle[i] >= 0)
            close(idle[i]);
    for (int i = 0; i < N_BODY; i++)
        if (body[i].fd >= 0)
            close(body[i].fd);
    /* And it still serves normally afterwards. */
    long st;
    timed_get(&s, "/healthz", &st);
    TS_EXPECT(st == 200, "healthz after the flood: %ld", st);
    /* The cut uploads left no partial file. */
    char tmpdir[4200];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", dir);
    for (int i = 0; i < 20 && ts_count_files(tmpdir) > 0; i++)
        ts_sleep_ms(100);
    TS_EXPECT(ts_count_files(tmpdir) == 0, "%d upload files left in tmp/",
              ts_count_files(tmpdir));
    int ex = ts_server_stop(&s, SIGTERM, 20);
    TS_EXPECT(ex == 0, "server exit %d", ex);
    free(dir);
    curl_global_cleanup();
    if (ts_failures)
        return 1;
    printf("ok\n");
    return 0;
}
