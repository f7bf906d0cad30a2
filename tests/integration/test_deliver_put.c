/*
 * test_deliver_put - the PUT of one file (svc/net/put.c) against real
 * receivers on loopback (tests/support/put_receiver.py): the body arrives
 * byte-identical with Content-Type and Content-Length (no chunked body);
 * a receiver failing twice gets it on the third try; one always failing
 * gets exactly the number of tries asked; a 403 is not retried; a
 * redirect is not followed (the redirect's target sees nothing); under
 * --fetch-targets public every refused address (literals in several
 * spellings, localhost, names resolved by CURLOPT_RESOLVE to loopback or
 * a private address) fails before any byte reaches the receiver; bad
 * input (not http(s), no file, a folder) is answered; cancel stops it; an
 * empty file is sent as Content-Length 0.
 * ctest-labels: integration
 * ctest-timeout: 60
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "net/put.h"
#include "test_support.h"

static char dir[4096], blob[4200], empty[4200], script[4200];

struct receiver {
    int pid, port;
    char root[4200], log[4200];
};

/* Start a receiver; opt and val: one option and its value ("" for none). */
static void receiver_start(struct receiver *r, const char *name, const char *opt, const char *val)
{
    char line[64], o[32], v[512];
    snprintf(r->root, sizeof(r->root), "%s/%s", dir, name);
    snprintf(r->log, sizeof(r->log), "%s/%s.log", dir, name);
    snprintf(o, sizeof(o), "%s", opt);
    snprintf(v, sizeof(v), "%s", val);
    char python[] = "python3", a_root[] = "--root", a_log[] = "--log";
    char *argv[] = {python, script, a_root, r->root, a_log, r->log, o, v, NULL};
    if (!o[0])
        argv[6] = NULL;
    r->pid = ts_spawn_line(argv, line, sizeof(line), 10);
    TS_CHECK(r->pid > 0 && sscanf(line, "%d", &r->port) == 1, "receiver %s: %s", name, line);
}

/* The receiver's requests so far (a JSON array). */
static json_t *requests(const struct receiver *r)
{
    json_t *all = json_array();
    FILE *f = fopen(r->log, "r");
    char line[2048];
    while (f && fgets(line, sizeof(line), f))
        json_array_append_new(all, json_loads(line, 0, NULL));
    if (f)
        fclose(f);
    return all;
}

static size_t n_requests(const struct receiver *r)
{
    json_t *all = requests(r);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

static int put(const char *url, const char *path, const char *targets, unsigned tries,
               const char *resolve, struct net_put_result *res)
{
    struct net_put_params p = {.url = url, .path = path, .content_type = "video/mp4",
                               .tries = tries, .resolve = resolve, .connect_timeout_s = 3,
                               .stall_timeout_s = 5};
    TS_CHECK(net_targets_parse(targets, &p.rule) == 0, "%s", targets);
    return net_put(&p, res);
}

static int stop_at_once(void *ctx, int64_t sent, int64_t size)
{
    (void)sent;
    (void)size;
    (*(int *)ctx)++;
    return 1;
}

int main(void)
{
    const char *src = ts_env("VIDQ_SRC");
    char *tmp = ts_mkdtemp("deliver_put");
    char url[512], cmp[9000];
    struct net_put_result res;
    struct receiver ok, flaky, down, forbidden, redir;
    snprintf(dir, sizeof(dir), "%s", tmp);
    free(tmp);
    snprintf(blob, sizeof(blob), "%s/blob", dir);
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    snprintf(script, sizeof(script), "%s/tests/support/put_receiver.py", src);
    TS_CHECK(ts_run(NULL, 0, "head -c 3145851 /dev/urandom > '%s' && : > '%s'", blob, empty) == 0,
             "blob");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    receiver_start(&ok, "ok", "", "");
    receiver_start(&flaky, "flaky", "--fail-first", "2");
    receiver_start(&down, "down", "--always", "503");
    receiver_start(&forbidden, "forbidden", "--always", "403");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/moved.bin", ok.port);
    receiver_start(&redir, "redir", "--redirect", url);

    /* Delivered, byte-identical, with the headers. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/a/b/c.mp4", ok.port);
    TS_EXPECT(put(url, blob, "public+loopback", 3, NULL, &res) == NET_PUT_OK, "%s", res.error);
    TS_EXPECT(res.tries == 1 && res.http_status == 201 && res.size == 3145851, "tries %u status %ld",
              res.tries, res.http_status);
    snprintf(cmp, sizeof(cmp), "cmp -s '%s' '%s/a/b/c.mp4'", blob, ok.root);
    TS_EXPECT(ts_run(NULL, 0, "%s", cmp) == 0, "the received file differs");
    json_t *all = requests(&ok);
    json_t *r0 = json_array_get(all, 0);
    TS_EXPECT(r0 && strcmp(json_string_value(json_object_get(r0, "method")), "PUT") == 0 &&
                  strcmp(json_string_value(json_object_get(r0, "content_type")), "video/mp4") == 0 &&
                  strcmp(json_string_value(json_object_get(r0, "content_length")), "3145851") == 0 &&
                  json_is_null(json_object_get(r0, "transfer_encoding")),
              "request headers");
    json_decref(all);
    /* An empty file: Content-Length 0. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/empty", ok.port);
    TS_EXPECT(put(url, empty, "public+loopback", 1, NULL, &res) == NET_PUT_OK, "%s", res.error);

    /* Failing twice, then taken. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/f.mp4", flaky.port);
    double t0 = ts_now();
    TS_EXPECT(put(url, blob, "public+loopback", 3, NULL, &res) == NET_PUT_OK, "%s", res.error);
    TS_EXPECT(res.tries == 3 && n_requests(&flaky) == 3, "flaky: %u tries", res.tries);
    TS_EXPECT(ts_now() - t0 >= 1.4, "no backoff between tries (%.2f s)", ts_now() - t0);
    /* Always 503: exactly the tries asked. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/d.mp4", down.port);
    TS_EXPECT(put(url, blob, "public+loopback", 3, NULL, &res) == NET_PUT_FAILED, "down");
    TS_EXPECT(res.tries == 3 && n_requests(&down) == 3 && strstr(res.error, "HTTP 503"),
              "down: %u tries: %s", res.tries, res.error);
    /* 403: not retried. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x.mp4", forbidden.port);
    TS_EXPECT(put(url, blob, "public+loopback", 3, NULL, &res) == NET_PUT_FAILED, "403");
    TS_EXPECT(res.tries == 1 && n_requests(&forbidden) == 1, "403 retried: %u", res.tries);
    /* A redirect: not followed. */
    size_t before = n_requests(&ok);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/r.mp4", redir.port);
    TS_EXPECT(put(url, blob, "public+loopback", 3, NULL, &res) == NET_PUT_FAILED, "redirect");
    TS_EXPECT(res.tries == 1 && strstr(res.error, "redirect"), "redirect: %s", res.error);
    TS_EXPECT(n_requests(&ok) == before, "the redirect was followed");

    /* Refused under public, before a byte is sent. */
    before = n_requests(&ok);
    static const char *const hosts[] = {"127.0.0.1", "[::ffff:127.0.0.1]", "2130706433",
                                        "0x7f.0.0.1", "127.0.0.2", "localhost"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(*hosts); i++) {
        snprintf(url, sizeof(url), "http://%s:%d/no.mp4", hosts[i], ok.port);
        int rc = put(url, blob, "public", 3, NULL, &res);
        TS_EXPECT(rc == NET_PUT_REFUSED && strstr(res.error, "not allowed"), "%s: %d %s", url, rc,
                  res.error);
    }
    char resolve[256];
    snprintf(resolve, sizeof(resolve), "media.example.com:%d:127.0.0.1", ok.port);
    snprintf(url, sizeof(url), "http://media.example.com:%d/no.mp4", ok.port);
    TS_EXPECT(put(url, blob, "public", 3, resolve, &res) == NET_PUT_REFUSED &&
                  strstr(res.error, "127.0.0.1"),
              "name -> loopback: %s", res.error);
    static const char *const private_addrs[] = {"10.20.30.40", "192.168.7.7", "169.254.169.254",
                                                "100.64.1.1", "[fd00::1]", "[fe80::1]"};
    for (size_t i = 0; i < sizeof(private_addrs) / sizeof(*private_addrs); i++) {
        snprintf(resolve, sizeof(resolve), "store.example.com:80:%s", private_addrs[i]);
        TS_EXPECT(put("http://store.example.com/o.mp4", blob, "public", 3, resolve, &res) ==
                      NET_PUT_REFUSED,
                  "name -> %s: %s", private_addrs[i], res.error);
        TS_EXPECT(res.tries == 1, "a refusal was retried");
    }
    TS_EXPECT(n_requests(&ok) == before, "a refused PUT reached the receiver");
    /* The same name under public+loopback, for contrast: delivered. */
    snprintf(resolve, sizeof(resolve), "media.example.com:%d:127.0.0.1", ok.port);
    snprintf(url, sizeof(url), "http://media.example.com:%d/yes.mp4", ok.port);
    TS_EXPECT(put(url, blob, "public+loopback", 1, resolve, &res) == NET_PUT_OK, "%s", res.error);

    /* Bad input. */
    TS_EXPECT(put("ftp://127.0.0.1/x", blob, "any", 1, NULL, &res) == NET_PUT_REFUSED, "ftp");
    TS_EXPECT(put("file:///tmp/x", blob, "any", 1, NULL, &res) == NET_PUT_REFUSED, "file");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/m.mp4", ok.port);
    TS_EXPECT(put(url, "/nonexistent/file", "any", 1, NULL, &res) == NET_PUT_IO, "no file");
    TS_EXPECT(put(url, dir, "any", 1, NULL, &res) == NET_PUT_IO, "a folder");
    /* Cancel. */
    int calls = 0;
    struct net_put_params cp = {.url = url, .path = blob, .tries = 3,
                                .on_progress = stop_at_once, .ctx = &calls};
    net_targets_parse("any", &cp.rule);
    TS_EXPECT(net_put(&cp, &res) == NET_PUT_CANCELED && calls >= 1, "cancel: %s", res.error);

    ts_stop(ok.pid);
    ts_stop(flaky.pid);
    ts_stop(down.pid);
    ts_stop(forbidden.pid);
    ts_stop(redir.pid);
    curl_global_cleanup();
    if (ts_failures)
        fprintf(stderr, "%d check(s) failed\n", ts_failures);
    return ts_failures ? 1 : 0;
}
