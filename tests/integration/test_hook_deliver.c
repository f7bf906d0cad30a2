/*
 * Integration test of the webhook delivery engine (svc/hooks/deliver.c)
 * against a real receiver on loopback: tests/support/webhook_receiver.js,
 * which verifies every signature with the npm standardwebhooks package.
 *
 * Cases, all in flight at once on one engine: a verified delivery; retries
 * after 3 answers 500 with the same webhook-id; 410 stops; a timeout is
 * retried; a refused connection is retried until the max age; a redirect is
 * not followed; non-http URLs are refused; a wrong secret fails the
 * receiver's check; the deny-private target policy judges the address
 * connected to (localhost, 127.1, a mapped IPv6), and allow-loopback.
 *
 * ctest-labels: integration
 * ctest-timeout: 60
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "hooks/deliver.h"
#include "hooks/sign.h"
#include "test_support.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define OTHER_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
#define MAX_ATTEMPTS 256


/* Attempts reported by the engine (on its thread). */
struct record {
    int64_t key;
    unsigned attempt;
    int http_status;
    char error[HOOK_ERROR_MAX];
    enum hook_outcome outcome;
    char msg_id[64];
    double duration_s;
    int64_t started_ms, next_at_ms;
};
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct record records[MAX_ATTEMPTS];
static size_t n_records;

static void on_attempt(void *ctx, const struct hook_attempt *a)
{
    (void)ctx;
    pthread_mutex_lock(&rec_lock);
    if (n_records < MAX_ATTEMPTS) {
        struct record *r = &records[n_records++];
        r->key = a->key;
        r->attempt = a->attempt;
        r->http_status = a->http_status;
        snprintf(r->error, sizeof(r->error), "%s", a->error);
        r->outcome = a->outcome;
        snprintf(r->msg_id, sizeof(r->msg_id), "%s", a->msg_id);
        r->duration_s = a->duration_s;
        r->started_ms = a->started_ms;
        r->next_at_ms = a->next_at_ms;
    }
    pthread_mutex_unlock(&rec_lock);
}

/* Copy the records of one key; returns how many. */
static size_t records_of(int64_t key, struct record *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&rec_lock);
    for (size_t i = 0; i < n_records && n < cap; i++)
        if (records[i].key == key)
            out[n++] = records[i];
    pthread_mutex_unlock(&rec_lock);
    return n;
}

static int is_final(enum hook_outcome o) { return o != HOOK_RETRY; }

/* Wait until every key in keys has a final outcome, at most timeout_s. */
static int wait_final(const int64_t *keys, size_t n, int timeout_s)
{
    time_t end = time(NULL) + timeout_s;
    while (time(NULL) <= end) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++) {
            struct record r[MAX_ATTEMPTS];
            size_t k = records_of(keys[i], r, MAX_ATTEMPTS);
            if (k > 0 && is_final(r[k - 1].outcome))
                done++;
        }
        if (done == n)
            return 1;
        usleep(50 * 1000);
    }
    return 0;
}

/* Receiver log lines whose url starts with prefix. */
static json_t *requests_to(const char *log_path, const char *prefix)
{
    json_t *all = ts_receiver_log(log_path), *out = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) {
        const char *url = json_string_value(json_object_get(o, "url"));
        if (url && strncmp(url, prefix, strlen(prefix)) == 0)
            json_array_append(out, o);
    }
    json_decref(all);
    return out;
}

static const char *header(json_t *req, const char *name)
{
    return json_string_value(json_object_get(json_object_get(req, "headers"), name));
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("closed_port");
        exit(1);
    }
    int port = ntohs(a.sin_port);
    close(fd); /* nothing listens there now: connections are refused */
    return port;
}

static void submit(struct hook_deliverer *d, int64_t key, const char *url, const char *body,
                   char *msg_id_out)
{
    char id[HOOK_MSG_ID_MAX];
    hook_msg_id(id, sizeof(id));
    if (msg_id_out)
        snprintf(msg_id_out, HOOK_MSG_ID_MAX, "%s", id);
    struct hook_delivery del = {.key = key, .msg_id = id, .url = url, .body = body,
                                .body_len = strlen(body)};
    int r = hook_deliverer_submit(d, &del);
    TS_EXPECT(r == 0, "submit %s: %d", url, r);
}

static void check_policy_table(void)
{
    static const struct { const char *addr; int deny, allow_lo, want; } cases[] = {
        {"127.0.0.1", 0, 0, 1},       {"10.1.2.3", 0, 0, 1},
        {"127.0.0.1", 1, 0, 0},       {"127.0.0.1", 1, 1, 1},
        {"10.1.2.3", 1, 1, 0},        {"172.16.0.1", 1, 0, 0},
        {"172.32.0.1", 1, 0, 1},      {"192.168.1.1", 1, 0, 0},
        {"169.254.169.254", 1, 0, 0}, {"100.64.0.1", 1, 0, 0},
        {"0.0.0.0", 1, 1, 0},         {"224.0.0.1", 1, 0, 0},
        {"255.255.255.255", 1, 0, 0}, {"8.8.8.8", 1, 0, 1},
        {"::1", 1, 0, 0},             {"::1", 1, 1, 1},
        {"::", 1, 1, 0},              {"::ffff:127.0.0.1", 1, 0, 0},
        {"::ffff:10.0.0.1", 1, 1, 0}, {"::ffff:8.8.8.8", 1, 0, 1},
        {"fd00::1", 1, 0, 0},         {"fe80::1", 1, 0, 0},
        {"ff02::1", 1, 0, 0},         {"64:ff9b::a00:1", 1, 0, 0},
        {"2002:a00:1::1", 1, 0, 0},   {"2001:4860:4860::8888", 1, 0, 1},
        {"2001:db8::1", 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss = {0};
        if (strchr(cases[i].addr, ':')) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            TS_EXPECT(inet_pton(AF_INET6, cases[i].addr, &a->sin6_addr) == 1, "%s", cases[i].addr);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            TS_EXPECT(inet_pton(AF_INET, cases[i].addr, &a->sin_addr) == 1, "%s", cases[i].addr);
        }
        int got = hook_address_allowed((struct sockaddr *)&ss, cases[i].deny, cases[i].allow_lo);
        TS_EXPECT(got == cases[i].want, "%s deny=%d allow_lo=%d: got %d", cases[i].addr,
              cases[i].deny, cases[i].allow_lo, got);
    }
}

static void check_url_validation(struct hook_deliverer *d)
{
    static const char *bad[] = {
        "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/", "http://", "https://",
        "http://:80/x",      "not a url",          "/relative/path",      "",
        "javascript:alert(1)", "http://exa mple.com/", "dict://127.0.0.1:11211/",
    };
    char err[HOOK_ERROR_MAX];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        TS_EXPECT(hook_url_check(bad[i], err, sizeof(err)) == -EINVAL, "accepted %s", bad[i]);
        TS_EXPECT(strlen(err) > 5, "no message for %s", bad[i]);
        struct hook_delivery del = {.key = 999, .msg_id = "msg_x", .url = bad[i], .body = "{}",
                                    .body_len = 2};
        TS_EXPECT(hook_deliverer_submit(d, &del) == -EINVAL, "queued %s", bad[i]);
    }
    TS_EXPECT(hook_url_check("ftp://h/x", err, sizeof(err)) == -EINVAL && strstr(err, "http"),
          "message: %s", err);
    static const char *good[] = {"http://127.0.0.1:1/x", "https://example.com/hook?a=b",
                                 "HTTP://Example.COM", "http://[::1]:8080/",
                                 "http://user:pw@host.example/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        TS_EXPECT(hook_url_check(good[i], err, sizeof(err)) == 0, "refused %s: %s", good[i], err);
    char *huge = malloc(HOOK_URL_MAX + 64);
    memset(huge, 'a', HOOK_URL_MAX + 63);
    memcpy(huge, "http://h/", 9);
    huge[HOOK_URL_MAX + 63] = '\0';
    TS_EXPECT(hook_url_check(huge, err, sizeof(err)) == -EINVAL, "accepted a huge URL");
    free(huge);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = ts_mkdtemp("hook_deliver");
    char log_path[4200], base[64], url[256];
    snprintf(log_path, sizeof(log_path), "%s/receiver.jsonl", dir);
    int port = 0;
    int rpid = ts_receiver_start(SECRET, log_path, NULL, &port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

    check_policy_table();

    /* d: generous timeout and age (nothing there should time out, even on
     * a loaded machine); ds: 1 s timeout and 3 s max age, for the cases
     * that time out or give up. */
    struct hook_deliverer_config cfg = {
        .timeout_ms = 10000,
        .retry = {.min_ms = 150, .max_age_ms = 30000},
        .on_attempt = on_attempt,
    };
    char err[256];
    if (hook_secret_parse(SECRET, &cfg.secret, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct hook_deliverer *d = NULL, *ds = NULL, *strict = NULL, *strict_lo = NULL, *wrong = NULL;
    TS_EXPECT(hook_deliverer_start(&cfg, &d) == 0, "start");
    struct hook_deliverer_config short_cfg = cfg;
    short_cfg.timeout_ms = 1000;
    short_cfg.retry.max_age_ms = 3000;
    TS_EXPECT(hook_deliverer_start(&short_cfg, &ds) == 0, "start short");
    struct hook_deliverer_config scfg = cfg;
    scfg.deny_private = 1;
    TS_EXPECT(hook_deliverer_start(&scfg, &strict) == 0, "start strict");
    scfg.allow_loopback = 1;
    TS_EXPECT(hook_deliverer_start(&scfg, &strict_lo) == 0, "start strict+loopback");
    struct hook_deliverer_config wcfg = short_cfg;
    hook_secret_parse(OTHER_SECRET, &wcfg.secret, err, sizeof(err));
    TS_EXPECT(hook_deliverer_start(&wcfg, &wrong) == 0, "start wrong secret");

    check_url_validation(d);

    const char *body = "{\"type\":\"job.succeeded\",\"timestamp\":\"2026-11-22T05:00:00Z\","
                       "\"data\":{\"id\":\"j1\",\"status\":\"succeeded\"}}";
    char id_ok[HOOK_MSG_ID_MAX], id_retry[HOOK_MSG_ID_MAX], id_gone[HOOK_MSG_ID_MAX];
    char id_hang[HOOK_MSG_ID_MAX];
    enum { K_OK = 1, K_RETRY, K_GONE, K_HANG, K_REFUSED, K_REDIRECT, K_WRONG, K_DENY_IP,
           K_DENY_NAME, K_DENY_NUM, K_DENY_V6, K_ALLOW_LO };
    snprintf(url, sizeof(url), "%s/ok", base);
    submit(d, K_OK, url, body, id_ok);
    snprintf(url, sizeof(url), "%s/retry?fail=3&status=500", base);
    submit(d, K_RETRY, url, body, id_retry);
    snprintf(url, sizeof(url), "%s/gone?fail=100&status=410", base);
    submit(d, K_GONE, url, body, id_gone);
    snprintf(url, sizeof(url), "%s/hang?hang=1", base);
    submit(ds, K_HANG, url, body, id_hang);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/refused", closed_port());
    submit(ds, K_REFUSED, url, body, NULL);
    snprintf(url, sizeof(url), "%s/redirect?redirect=1", base);
    submit(ds, K_REDIRECT, url, body, NULL);
    snprintf(url, sizeof(url), "%s/wrong-secret?fail=1000&status=400", base);
    submit(wrong, K_WRONG, url, body, NULL);
    snprintf(url, sizeof(url), "%s/deny-ip", base);
    submit(strict, K_DENY_IP, url, body, NULL);
    /* names and spellings that only the connected address reveals */
    snprintf(url, sizeof(url), "http://localhost:%d/deny-name", port);
    submit(strict, K_DENY_NAME, url, body, NULL);
    snprintf(url, sizeof(url), "http://2130706433:%d/deny-num", port);
    submit(strict, K_DENY_NUM, url, body, NULL);
    snprintf(url, sizeof(url), "http://[::ffff:127.0.0.1]:%d/deny-v6", port);
    submit(strict, K_DENY_V6, url, body, NULL);
    snprintf(url, sizeof(url), "%s/allow-lo", base);
    submit(strict_lo, K_ALLOW_LO, url, body, NULL);

    int64_t keys[] = {K_OK, K_RETRY, K_GONE, K_HANG, K_REFUSED, K_REDIRECT, K_WRONG,
                      K_DENY_IP, K_DENY_NAME, K_DENY_NUM, K_DENY_V6, K_ALLOW_LO};
    TS_EXPECT(wait_final(keys, sizeof(keys) / sizeof(keys[0]), 20), "not all deliveries ended");

    struct record r[MAX_ATTEMPTS];
    size_t n;
    json_t *reqs;

    /* one verified delivery, body and headers as sent */
    n = records_of(K_OK, r, MAX_ATTEMPTS);
    TS_EXPECT(n == 1 && r[0].outcome == HOOK_DELIVERED && r[0].http_status == 200 &&
              r[0].error[0] == '\0' && r[0].attempt == 1 && r[0].duration_s > 0 &&
              r[0].duration_s < 10 && strcmp(r[0].msg_id, id_ok) == 0,
          "ok: n=%zu", n);
    reqs = requests_to(log_path, "/ok");
    TS_EXPECT(json_array_size(reqs) == 1, "ok requests %zu", json_array_size(reqs));
    if (json_array_size(reqs) == 1) {
        json_t *q = json_array_get(reqs, 0);
        TS_EXPECT(json_is_true(json_object_get(q, "verified")), "not verified: %s",
              json_string_value(json_object_get(q, "verify_error")));
        TS_EXPECT(strcmp(json_string_value(json_object_get(q, "method")), "POST") == 0, "method");
        TS_EXPECT(strcmp(json_string_value(json_object_get(q, "body")), body) == 0, "body");
        TS_EXPECT(header(q, "content-type") && strcmp(header(q, "content-type"), "application/json") == 0,
              "content-type");
        TS_EXPECT(header(q, "webhook-id") && strcmp(header(q, "webhook-id"), id_ok) == 0, "id");
        const char *ts = header(q, "webhook-timestamp");
        long long t = ts ? strtoll(ts, NULL, 10) : 0;
        TS_EXPECT(llabs(t - (long long)time(NULL)) < 30, "timestamp %s", ts ? ts : "(none)");
        TS_EXPECT(header(q, "webhook-signature") && strncmp(header(q, "webhook-signature"), "v1,", 3) == 0,
              "signature");
    }
    json_decref(reqs);

    /* 500 x3 then 200: four attempts, one webhook-id, all verified */
    n = records_of(K_RETRY, r, MAX_ATTEMPTS);
    TS_EXPECT(n == 4, "retry attempts %zu", n);
    for (size_t i = 0; i < n && i < 3; i++) {
        TS_EXPECT(r[i].outcome == HOOK_RETRY && r[i].http_status == 500 && r[i].attempt == i + 1,
              "retry #%zu outcome %d status %d", i, r[i].outcome, r[i].http_status);
        TS_EXPECT(strstr(r[i].error, "500") != NULL, "error '%s'", r[i].error);
        TS_EXPECT(r[i].next_at_ms >= r[i].started_ms + 150, "backoff below min");
    }
    if (n == 4)
        TS_EXPECT(r[3].outcome == HOOK_DELIVERED && r[3].http_status == 200, "retry final");
    reqs = requests_to(log_path, "/retry");
    TS_EXPECT(json_array_size(reqs) == 4, "retry requests %zu", json_array_size(reqs));
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        json_t *q = json_array_get(reqs, i);
        TS_EXPECT(header(q, "webhook-id") && strcmp(header(q, "webhook-id"), id_retry) == 0,
              "retry changed the webhook-id");
        TS_EXPECT(json_is_true(json_object_get(q, "verified")), "retry #%zu not verified", i);
    }
    json_decref(reqs);

    /* 410: one attempt, then stop */
    n = records_of(K_GONE, r, MAX_ATTEMPTS);
    TS_EXPECT(n == 1 && r[0].outcome == HOOK_GONE && r[0].http_status == 410, "gone n=%zu", n);
    reqs = requests_to(log_path, "/gone");
    TS_EXPECT(json_array_size(reqs) == 1, "gone requests %zu", json_array_size(reqs));
    json_decref(reqs);

    /* timeout (1 s) retried, then delivered */
    n = records_of(K_HANG, r, MAX_ATTEMPTS);
    TS_EXPECT(n == 2, "hang attempts %zu", n);
    if (n == 2) {
        TS_EXPECT(r[0].outcome == HOOK_RETRY && r[0].http_status == 0 && r[0].duration_s >= 0.9 &&
                  r[0].duration_s < 3 && strstr(r[0].error, "imed out"),
              "hang #1: %s %.3f", r[0].error, r[0].duration_s);
        TS_EXPECT(r[1].outcome == HOOK_DELIVERED, "hang #2");
    }

    /* refused connection: retried until the max age, then gave up */
    n = records_of(K_REFUSED, r, MAX_ATTEMPTS);
    TS_EXPECT(n >= 3, "refused attempts %zu", n);
    for (size_t i = 0; i + 1 < n; i++)
        TS_EXPECT(r[i].outcome == HOOK_RETRY && r[i].http_status == 0 &&
                  strstr(r[i].error, "onnect") != NULL,
              "refused #%zu: %s", i, r[i].error);
    if (n)
        TS_EXPECT(r[n - 1].outcome == HOOK_GAVE_UP && strstr(r[n - 1].error, "giving up"),
              "refused final: %d %s", r[n - 1].outcome, r[n - 1].error);

    /* redirect: a failed attempt (302), never followed */
    n = records_of(K_REDIRECT, r, MAX_ATTEMPTS);
    TS_EXPECT(n >= 2 && r[0].http_status == 302 && r[0].outcome == HOOK_RETRY, "redirect n=%zu", n);
    if (n)
        TS_EXPECT(r[n - 1].outcome == HOOK_GAVE_UP, "redirect final %d", r[n - 1].outcome);
    reqs = requests_to(log_path, "/redirect-target");
    TS_EXPECT(json_array_size(reqs) == 0, "redirect was followed");
    json_decref(reqs);

    /* a wrong secret fails the receiver's verification */
    reqs = requests_to(log_path, "/wrong-secret");
    TS_EXPECT(json_array_size(reqs) >= 1, "wrong-secret requests %zu", json_array_size(reqs));
    for (size_t i = 0; i < json_array_size(reqs); i++)
        TS_EXPECT(json_is_false(json_object_get(json_array_get(reqs, i), "verified")),
              "a signature with the wrong secret verified");
    json_decref(reqs);

    /* deny-private: refused by the connected address, no request made */
    int64_t denied[] = {K_DENY_IP, K_DENY_NAME, K_DENY_NUM, K_DENY_V6};
    for (size_t i = 0; i < 4; i++) {
        n = records_of(denied[i], r, MAX_ATTEMPTS);
        TS_EXPECT(n == 1 && r[0].outcome == HOOK_GAVE_UP && strstr(r[0].error, "not allowed"),
              "deny key %" PRId64 ": n=%zu %s", denied[i], n, n ? r[0].error : "");
    }
    reqs = requests_to(log_path, "/deny");
    TS_EXPECT(json_array_size(reqs) == 0, "a denied target was reached");
    json_decref(reqs);
    n = records_of(K_ALLOW_LO, r, MAX_ATTEMPTS);
    TS_EXPECT(n == 1 && r[0].outcome == HOOK_DELIVERED, "allow-loopback n=%zu", n);

    /* counters */
    struct hook_counters c;
    hook_deliverer_counters(d, &c); /* ok, retry (3 x 500), gone */
    TS_EXPECT(c.succeeded == 2 && c.gave_up == 1 && c.failed == 4, "d counters %" PRIu64 " %" PRIu64
          " %" PRIu64, c.succeeded, c.gave_up, c.failed);
    TS_EXPECT(c.queued == 0 && c.in_flight == 0, "gauges %" PRIu64 " %" PRIu64, c.queued, c.in_flight);
    char prom[2048];
    TS_EXPECT(hook_counters_prometheus(&c, prom, sizeof(prom)) > 0, "prometheus");
    TS_EXPECT(strstr(prom, "vidq_webhook_deliveries_total{outcome=\"succeeded\"} 2\n") != NULL &&
              strstr(prom, "vidq_webhook_deliveries_total{outcome=\"failed\"} 4\n") != NULL &&
              strstr(prom, "vidq_webhook_deliveries_total{outcome=\"gave_up\"} 1\n") != NULL,
          "prometheus text: %s", prom);
    hook_deliverer_counters(ds, &c); /* hang, refused, redirect */
    TS_EXPECT(c.succeeded == 1 && c.gave_up == 2 && c.failed >= 1 + 2 + 2,
          "ds counters %" PRIu64 " %" PRIu64 " %" PRIu64, c.succeeded, c.gave_up, c.failed);

    /* stop with deliveries still queued and in flight: no leak, no hang */
    snprintf(url, sizeof(url), "%s/late?hang=5", base);
    submit(d, 500, url, body, NULL);
    struct hook_delivery later = {.key = 501, .msg_id = "msg_later", .url = url, .body = body,
                                  .body_len = strlen(body), .next_at_ms = 4102444800000LL};
    TS_EXPECT(hook_deliverer_submit(d, &later) == 0, "submit later");
    usleep(300 * 1000);
    hook_deliverer_stop(&d);
    TS_EXPECT(d == NULL, "stop clears the handle");
    hook_deliverer_stop(&ds);
    hook_deliverer_stop(&strict);
    hook_deliverer_stop(&strict_lo);
    hook_deliverer_stop(&wrong);
    hook_deliverer_stop(&wrong); /* NULL-safe */

    ts_stop(rpid);
    free(dir);
    curl_global_cleanup();
    if (ts_failures) {
        fprintf(stderr, "%d check(s) failed\n", ts_failures);
        return 1;
    }
    printf("test_hook_deliver: all checks passed\n");
    return 0;
}
