/*
 * test_net_fetch - the fetcher (svc/net/fetch.c) against a real HTTP origin
 * on loopback (tests/support/fetch_origin.py): a plain download, a
 * connection cut in the middle resumed with Range, a server without Range,
 * redirects (each hop judged by the rule, at most 5), the size cap, HTTP
 * errors with and without retries, cancel, and every address class refused
 * under --fetch-targets public before any byte is sent.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "net/fetch.h"
#include "test_support.h"

static char dir[4096], log_path[4200], blob[4200], dest[4200];
static int port;
static const long BLOB_SIZE = 3 * 1024 * 1024 + 123;

static long log_lines(void)
{
    FILE *f = fopen(log_path, "r");
    long n = 0;
    int c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int log_has(const char *needle)
{
    char cmd[8400];
    snprintf(cmd, sizeof(cmd), "grep -qF -- '%s' '%s'", needle, log_path);
    return system(cmd) == 0;
}

static int same_as_blob(const char *path)
{
    char out[64];
    return ts_run(out, sizeof(out), "cmp -s '%s' '%s'", blob, path) == 0;
}

static int fetch(const char *url, const char *targets, int64_t max_bytes, unsigned retries,
                 const char *resolve, struct net_fetch_result *res)
{
    struct net_fetch_params p = {.url = url, .path = dest, .max_bytes = max_bytes,
                                 .max_retries = retries, .resolve = resolve,
                                 .connect_timeout_s = 3, .stall_timeout_s = 5};
    TS_CHECK(net_targets_parse(targets, &p.rule) == 0, "%s", targets);
    unlink(dest);
    int rc = net_fetch(&p, res);
    fprintf(stderr, "fetch %s [%s] -> %d (%s) bytes=%lld attempts=%u resumes=%u error=%s\n", url, targets,
            rc, net_fetch_code(rc), (long long)res->bytes, res->attempts, res->resumes, res->error);
    return rc;
}

static void plain_and_resume(void)
{
    struct net_fetch_result r;
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/file/blob", port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 0, NULL, &r) == NET_FETCH_OK, "%s", r.error);
    TS_EXPECT(r.bytes == BLOB_SIZE && r.total == BLOB_SIZE && same_as_blob(dest), "bytes %lld",
              (long long)r.bytes);
    TS_EXPECT(fetch(url, "any", 0, 0, NULL, &r) == NET_FETCH_OK, "any: %s", r.error);

    /* Cut after 100000 bytes: the second transfer asks for the rest. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/drop/blob?after=100000", port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 3, NULL, &r) == NET_FETCH_OK, "%s", r.error);
    TS_EXPECT(r.resumes == 1 && r.attempts == 2, "resumes %u attempts %u", r.resumes, r.attempts);
    TS_EXPECT(log_has("range=bytes=100000-"), "no Range request in the origin's log");
    TS_EXPECT(same_as_blob(dest), "resumed file differs");

    /* Bytes already on disk, a server that ignores Range: start over. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/norange/blob", port);
    struct net_fetch_params p = {.url = url, .path = dest, .max_retries = 1};
    net_targets_parse("public+loopback", &p.rule);
    FILE *f = fopen(dest, "w");
    fputs("garbage that is not the start of the blob", f);
    fclose(f);
    TS_EXPECT(net_fetch(&p, &r) == NET_FETCH_OK, "norange: %s", r.error);
    TS_EXPECT(same_as_blob(dest), "norange: file differs (size %lld)", (long long)r.bytes);

    /* A file already complete: 416 from the origin, fetched again whole. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/file/blob", port);
    TS_EXPECT(net_fetch(&p, &r) == NET_FETCH_OK && same_as_blob(dest), "complete: %s", r.error);
}

static void refused(void)
{
    struct net_fetch_result r;
    char url[512];
    long before = log_lines();
    const char *hosts[] = {
        "127.0.0.1",  "127.9.9.9",    "localhost",       "[::1]",          "2130706433",
        "0x7f.1",     "[::ffff:127.0.0.1]", "0.0.0.0",   "[::]",           "10.0.0.1",
        "172.16.0.1", "192.168.1.1",  "169.254.169.254", "100.64.0.1",     "[fd00::1]",
        "[fe80::1]",  "224.0.0.1",    "[ff02::1]",       "255.255.255.255", "[::ffff:10.0.0.1]",
        "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]",
    };
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        snprintf(url, sizeof(url), "http://%s:%d/file/blob", hosts[i], port);
        int rc = fetch(url, "public", 0, 2, NULL, &r);
        TS_EXPECT(rc == NET_FETCH_REFUSED, "%s: %d %s", hosts[i], rc, r.error);
        TS_EXPECT(strstr(r.error, "not allowed") && strstr(r.error, "--fetch-targets"), "%s: %s",
                  hosts[i], r.error);
        TS_EXPECT(r.attempts == 1, "%s: refused but retried (%u)", hosts[i], r.attempts);
    }
    TS_EXPECT(log_lines() == before, "a refused fetch reached the origin");

    /* A name that resolves to a private address (resolver override). */
    char resolve[128];
    snprintf(resolve, sizeof(resolve), "media.example.com:%d:10.20.30.40", port);
    snprintf(url, sizeof(url), "http://media.example.com:%d/file/blob", port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 2, resolve, &r) == NET_FETCH_REFUSED &&
                  strstr(r.error, "10.20.30.40"), "%s", r.error);
    /* The same name to loopback under public+loopback: allowed. */
    snprintf(resolve, sizeof(resolve), "media.example.com:%d:127.0.0.1", port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 0, resolve, &r) == NET_FETCH_OK, "%s", r.error);
    TS_EXPECT(fetch(url, "public", 0, 0, resolve, &r) == NET_FETCH_REFUSED, "%s", r.error);

    /* Schemes. */
    const char *bad[] = {"ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/",
                         "dict://127.0.0.1:11211/", "not a url", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        TS_EXPECT(fetch(bad[i], "any", 0, 0, NULL, &r) == NET_FETCH_REFUSED, "%s accepted",
                  bad[i]);
    TS_EXPECT(access(dest, F_OK) != 0, "a refused URL left a file");
}

static void redirects(void)
{
    struct net_fetch_result r;
    char url[1024], to[512], enc[600];
    /* Each hop is judged: origin (allowed under public+loopback) -> the
     * metadata address, -> a name resolving to a private one. */
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%d/redirect?to=http%%3A%%2F%%2F169.254.169.254%%2Flatest%%2Fmeta-data",
             port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 2, NULL, &r) == NET_FETCH_REFUSED &&
                  strstr(r.error, "169.254.169.254"), "%s", r.error);
    TS_EXPECT(log_has("GET /redirect?to=http%3A%2F%2F169.254.169.254"), "first hop not made");
    char resolve[128];
    snprintf(resolve, sizeof(resolve), "inside.example.com:%d:192.168.7.7", port);
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%d/redirect?to=http%%3A%%2F%%2Finside.example.com%%3A%d%%2Ffile%%2Fblob",
             port, port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 2, resolve, &r) == NET_FETCH_REFUSED &&
                  strstr(r.error, "192.168.7.7"), "%s", r.error);
    /* Under "any" the same redirect to the origin by another name works. */
    snprintf(resolve, sizeof(resolve), "inside.example.com:%d:127.0.0.1", port);
    TS_EXPECT(fetch(url, "any", 0, 2, resolve, &r) == NET_FETCH_OK && same_as_blob(dest), "%s",
              r.error);
    /* Only http(s) on a redirect. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect?to=file%%3A%%2F%%2F%%2Fetc%%2Fpasswd",
             port);
    TS_EXPECT(fetch(url, "any", 0, 2, NULL, &r) == NET_FETCH_REFUSED, "%s", r.error);
    /* 5 redirects pass, 6 do not. */
    snprintf(to, sizeof(to), "http://127.0.0.1:%d/file/blob", port);
    char *e = curl_easy_escape(NULL, to, 0);
    snprintf(enc, sizeof(enc), "%s", e);
    curl_free(e);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect?to=%s&repeat=4", port, enc);
    TS_EXPECT(fetch(url, "public+loopback", 0, 0, NULL, &r) == NET_FETCH_OK, "5 hops: %s",
              r.error);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect?to=%s&repeat=5", port, enc);
    TS_EXPECT(fetch(url, "public+loopback", 0, 2, NULL, &r) == NET_FETCH_UNREACHABLE &&
                  strstr(r.error, "redirected more than 5"), "6 hops: %s", r.error);
}

static int stop_at_1mb(void *ctx, int64_t have, int64_t total)
{
    (void)ctx;
    (void)total;
    return have > 1024 * 1024;
}

static void limits_and_errors(void)
{
    struct net_fetch_result r;
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/huge", port);
    TS_EXPECT(fetch(url, "public+loopback", 1 << 20, 2, NULL, &r) == NET_FETCH_TOO_LARGE &&
                  r.bytes == 0, "%lld %s", (long long)r.bytes, r.error);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/file/blob", port);
    TS_EXPECT(fetch(url, "public+loopback", BLOB_SIZE - 1, 2, NULL, &r) == NET_FETCH_TOO_LARGE,
              "%s", r.error);
    TS_EXPECT(fetch(url, "public+loopback", BLOB_SIZE, 2, NULL, &r) == NET_FETCH_OK, "%s", r.error);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/status/404", port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 3, NULL, &r) == NET_FETCH_UNREACHABLE &&
                  r.attempts == 1 && strstr(r.error, "HTTP 404"), "%u %s", r.attempts, r.error);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/status/503", port);
    TS_EXPECT(fetch(url, "public+loopback", 0, 2, NULL, &r) == NET_FETCH_UNREACHABLE &&
                  r.attempts == 3 && strstr(r.error, "HTTP 503"), "%u %s", r.attempts, r.error);
    /* Nobody listens on port 1. */
    TS_EXPECT(fetch("http://127.0.0.1:1/x", "public+loopback", 0, 1, NULL, &r) ==
                  NET_FETCH_UNREACHABLE && r.attempts == 2, "%u %s", r.attempts, r.error);
    TS_EXPECT(fetch("http://no-such-host.invalid/x", "any", 0, 0, NULL, &r) == NET_FETCH_UNREACHABLE,
              "%s", r.error);

    /* Cancel through on_progress. */
    struct net_fetch_params p = {.url = url, .path = dest, .on_progress = stop_at_1mb};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/file/blob", port);
    net_targets_parse("public+loopback", &p.rule);
    unlink(dest);
    TS_EXPECT(net_fetch(&p, &r) == NET_FETCH_CANCELED, "cancel: %s", r.error);
}

int main(void)
{
    const char *src = ts_env("VIDQ_SRC");
    char *tmp = ts_mkdtemp("net_fetch");
    char script[4200], line[128];
    snprintf(dir, sizeof(dir), "%s", tmp);
    free(tmp);
    snprintf(log_path, sizeof(log_path), "%s/origin.log", dir);
    snprintf(blob, sizeof(blob), "%s/blob", dir);
    snprintf(dest, sizeof(dest), "%s/dest", dir);
    snprintf(script, sizeof(script), "%s/tests/support/fetch_origin.py", src);
    TS_CHECK(ts_run(NULL, 0, "head -c %ld /dev/urandom > '%s'", BLOB_SIZE, blob) == 0, "blob");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *argv[] = {"python3", script, dir, log_path, NULL};
    int pid = ts_spawn_line(argv, line, sizeof(line), 10);
    TS_CHECK(pid > 0 && sscanf(line, "port %d", &port) == 1, "origin did not start: %s", line);

    plain_and_resume();
    refused();
    redirects();
    limits_and_errors();

    ts_stop(pid);
    curl_global_cleanup();
    if (ts_failures)
        fprintf(stderr, "%d check(s) failed\n", ts_failures);
    return ts_failures ? 1 : 0;
}
