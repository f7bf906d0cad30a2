/* deliver.c - see deliver.h for the design and the target policy. */
#include "hooks/deliver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "net/target.h"

#ifndef VIDQ_VERSION
#define VIDQ_VERSION "dev"
#endif

#define MAX_IN_FLIGHT_DEFAULT 64
#define CONNECT_TIMEOUT_MAX_MS 10000
#define IDLE_WAIT_MS 1000

/* A queued delivery: an owned copy of struct hook_delivery. */
struct item {
    int64_t key;
    char *msg_id;
    char *url;
    char *body;
    size_t body_len;
    int64_t created_ms;
    unsigned attempts;
    int64_t next_at_ms;
};

/* One attempt on the wire. */
struct transfer {
    struct hook_deliverer *d;
    struct item *item;
    CURL *easy;
    struct curl_slist *headers;
    int64_t started_ms;
    struct timespec t0;
    struct net_guard guard; /* the target rule on every connect */
    char errbuf[CURL_ERROR_SIZE];
    struct transfer *prev, *next;
};

struct hook_deliverer {
    struct hook_deliverer_config cfg;
    pthread_t thread;
    int thread_started;
    CURLM *multi;
    atomic_int stop;

    pthread_mutex_t lock; /* guards heap and n_queued */
    struct item **heap;   /* min-heap on next_at_ms */
    size_t n_queued, heap_cap;

    /* Delivery thread only. */
    struct transfer *transfers;
    unsigned in_flight;

    atomic_uint_fast64_t succeeded, failed, gave_up, queued_gauge, in_flight_gauge;
};

const char *hook_outcome_name(enum hook_outcome outcome)
{
    switch (outcome) {
    case HOOK_DELIVERED: return "delivered";
    case HOOK_RETRY: return "retry";
    case HOOK_GAVE_UP: return "gave_up";
    case HOOK_GONE: return "gone";
    }
    return "unknown";
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double since_s(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ------------------------------------------------------------ URL check */

int hook_url_check(const char *url, char *err, size_t err_cap)
{
    return net_url_check(url, "webhook url", err, err_cap);
}

/* -------------------------------------------------------- target policy */

/* The rule itself is net/target.c, shared with fetches: these keep the
 * names the webhook code and its tests use. */
int hook_targets_parse(const char *text, int *deny_private, int *allow_loopback)
{
    struct net_targets rule;
    if (net_targets_parse(text, &rule) != 0)
        return -EINVAL;
    *deny_private = rule.deny_private;
    *allow_loopback = rule.allow_loopback;
    return 0;
}

int hook_address_allowed(const struct sockaddr *addr, int deny_private, int allow_loopback)
{
    struct net_targets rule = {deny_private, allow_loopback};
    return net_address_allowed(addr, &rule);
}

/* ---------------------------------------------------------------- queue */

static void item_free(struct item **pp)
{
    struct item *it = *pp;
    if (!it)
        return;
    free(it->msg_id);
    free(it->url);
    free(it->body);
    free(it);
    *pp = NULL;
}

/* Caller holds d->lock. */
static int heap_push(struct hook_deliverer *d, struct item *it)
{
    if (d->n_queued >= HOOK_QUEUE_MAX)
        return -EAGAIN;
    if (d->n_queued == d->heap_cap) {
        size_t cap = d->heap_cap ? d->heap_cap * 2 : 64;
        struct item **h = realloc(d->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        d->heap = h;
        d->heap_cap = cap;
    }
    size_t i = d->n_queued++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (d->heap[parent]->next_at_ms <= it->next_at_ms)
            break;
        d->heap[i] = d->heap[parent];
        i = parent;
    }
    d->heap[i] = it;
    atomic_store(&d->queued_gauge, d->n_queued);
    return 0;
}

/* Caller holds d->lock; the heap is not empty. */
static struct item *heap_pop(struct hook_deliverer *d)
{
    struct item *top = d->heap[0];
    struct item *last = d->heap[--d->n_queued];
    size_t i = 0, n = d->n_queued;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && d->heap[c + 1]->next_at_ms < d->heap[c]->next_at_ms)
            c++;
        if (last->next_at_ms <= d->heap[c]->next_at_ms)
            break;
        d->heap[i] = d->heap[c];
        i = c;
    }
    if (n > 0)
        d->heap[i] = last;
    atomic_store(&d->queued_gauge, d->n_queued);
    return top;
}

int hook_deliverer_submit(struct hook_deliverer *d, const struct hook_delivery *del)
{
    char err[HOOK_ERROR_MAX];
    struct item *it = NULL;
    int ret = -EINVAL;

    if (!del->msg_id || !*del->msg_id || strlen(del->msg_id) > 256 ||
        (!del->body && del->body_len) || del->body_len > HOOK_BODY_MAX)
        goto out;
    if (hook_url_check(del->url, err, sizeof(err)) != 0) {
        log_warn("webhook not queued: %s key=%" PRId64, err, del->key);
        goto out;
    }
    ret = -ENOMEM;
    it = calloc(1, sizeof(*it));
    if (!it)
        goto out;
    it->key = del->key;
    it->msg_id = strdup(del->msg_id);
    it->url = strdup(del->url);
    it->body = malloc(del->body_len + 1);
    if (!it->msg_id || !it->url || !it->body)
        goto out;
    if (del->body_len)
        memcpy(it->body, del->body, del->body_len);
    it->body[del->body_len] = '\0';
    it->body_len = del->body_len;
    it->created_ms = del->created_ms ? del->created_ms : wall_ms();
    it->attempts = del->attempts;
    it->next_at_ms = del->next_at_ms;

    pthread_mutex_lock(&d->lock);
    ret = heap_push(d, it);
    pthread_mutex_unlock(&d->lock);
    if (ret != 0)
        goto out;
    it = NULL;
    curl_multi_wakeup(d->multi);
out:
    item_free(&it);
    return ret;
}

/* ------------------------------------------------------------ transfers */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static void transfer_free(struct hook_deliverer *d, struct transfer **pp)
{
    struct transfer *t = *pp;
    if (!t)
        return;
    if (t->easy) {
        curl_multi_remove_handle(d->multi, t->easy);
        curl_easy_cleanup(t->easy);
    }
    curl_slist_free_all(t->headers);
    if (d->transfers == t)
        d->transfers = t->next;
    if (t->prev)
        t->prev->next = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
    *pp = NULL;
}

static int add_header(struct curl_slist **list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int add_header(struct curl_slist **list, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -EINVAL;
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return -ENOMEM;
    *list = l;
    return 0;
}

static void report(struct hook_deliverer *d, const struct item *it, const struct transfer *t,
                   int http_status, const char *error, enum hook_outcome outcome,
                   int64_t next_at_ms, double duration_s)
{
    if (outcome == HOOK_DELIVERED) {
        atomic_fetch_add(&d->succeeded, 1);
    } else {
        atomic_fetch_add(&d->failed, 1);
        if (outcome != HOOK_RETRY)
            atomic_fetch_add(&d->gave_up, 1);
    }
    if (outcome == HOOK_DELIVERED)
        log_info("webhook delivered msg_id=%s status=%d attempt=%u duration=%.3f",
                 it->msg_id, http_status, it->attempts, duration_s);
    else
        log_info("webhook attempt failed msg_id=%s attempt=%u status=%d error=\"%s\" outcome=%s",
                 it->msg_id, it->attempts, http_status, error, hook_outcome_name(outcome));
    if (!d->cfg.on_attempt)
        return;
    struct hook_attempt a = {
        .key = it->key,
        .msg_id = it->msg_id,
        .url = it->url,
        .attempt = it->attempts,
        .started_ms = t ? t->started_ms : wall_ms(),
        .duration_s = duration_s,
        .http_status = http_status,
        .error = error,
        .outcome = outcome,
        .next_at_ms = next_at_ms,
    };
    d->cfg.on_attempt(d->cfg.ctx, &a);
}

/* Decide what follows a failed attempt, report it, and requeue or free the
 * item (ownership of *itp is taken). */
static void attempt_failed(struct hook_deliverer *d, struct item **itp, const struct transfer *t,
                           int http_status, const char *error, int permanent, double duration_s)
{
    struct item *it = *itp;
    *itp = NULL;
    int64_t now = wall_ms();
    int64_t next = 0;
    uint64_t rnd = 0;
    enum hook_outcome outcome = HOOK_GAVE_UP;
    char why[HOOK_ERROR_MAX];

    if (http_status == 410) {
        outcome = HOOK_GONE;
    } else if (!permanent) {
        if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
            rnd = (uint64_t)now * 2654435761u;
        if (hook_retry_next(&d->cfg.retry, it->created_ms, now, it->attempts, rnd, &next))
            outcome = HOOK_RETRY;
    }
    if (outcome == HOOK_GAVE_UP && !permanent) {
        snprintf(why, sizeof(why), "%s; giving up: older than the retry max age", error);
        error = why;
    }
    report(d, it, t, http_status, error, outcome, outcome == HOOK_RETRY ? next : 0, duration_s);
    if (outcome == HOOK_RETRY) {
        it->next_at_ms = next;
        pthread_mutex_lock(&d->lock);
        int r = heap_push(d, it);
        pthread_mutex_unlock(&d->lock);
        if (r == 0)
            return;
        /* Queue full: the outbox still has it pending; it comes back after
         * a restart. */
        log_warn("webhook retry dropped from memory (queue full) msg_id=%s", it->msg_id);
    }
    item_free(&it);
}

static void transfer_start(struct hook_deliverer *d, struct item *it)
{
    struct transfer *t = NULL;
    char sig[HOOK_SIGNATURE_MAX];
    const char *error = "out of memory";

    it->attempts++;
    t = calloc(1, sizeof(*t));
    if (!t)
        goto fail;
    t->d = d;
    t->item = it;
    t->started_ms = wall_ms();
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    int64_t ts = t->started_ms / 1000;
    if (hook_sign(&d->cfg.secret, it->msg_id, ts, it->body, it->body_len, sig, sizeof(sig)) != 0) {
        error = "cannot sign the payload";
        goto fail;
    }
    if (add_header(&t->headers, "Content-Type: application/json") ||
        add_header(&t->headers, "webhook-id: %s", it->msg_id) ||
        add_header(&t->headers, "webhook-timestamp: %" PRId64, ts) ||
        add_header(&t->headers, "webhook-signature: %s", sig) ||
        add_header(&t->headers, "User-Agent: vidq-webhooks/%s", VIDQ_VERSION) ||
        add_header(&t->headers, "Expect:")) /* no 100-continue round trip */
        goto fail;
    t->easy = curl_easy_init();
    if (!t->easy)
        goto fail;
    int64_t timeout = d->cfg.timeout_ms;
    CURL *e = t->easy;
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(e, CURLOPT_URL, it->url);
    t->guard.rule = (struct net_targets){d->cfg.deny_private, d->cfg.allow_loopback};
    rc |= net_guard_attach(e, &t->guard) ? CURLE_BAD_FUNCTION_ARGUMENT : CURLE_OK;
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body);
    rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->body_len);
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                           (long)(timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : CONNECT_TIMEOUT_MAX_MS));
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    if (rc != CURLE_OK) {
        error = "cannot set up the request";
        goto fail;
    }
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK) {
        error = "cannot start the request";
        goto fail;
    }
    t->next = d->transfers;
    if (d->transfers)
        d->transfers->prev = t;
    d->transfers = t;
    d->in_flight++;
    atomic_store(&d->in_flight_gauge, d->in_flight);
    return;
fail:
    if (t) {
        curl_slist_free_all(t->headers);
        if (t->easy)
            curl_easy_cleanup(t->easy);
        free(t);
    }
    attempt_failed(d, &it, NULL, 0, error, 0, 0.0);
}

static void transfer_done(struct hook_deliverer *d, CURL *easy, CURLcode result)
{
    struct transfer *t = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    if (!t)
        return;
    struct item *it = t->item;
    t->item = NULL;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    double duration = since_s(&t->t0);
    char error[HOOK_ERROR_MAX];

    if (result == CURLE_OK && status >= 200 && status < 300) {
        report(d, it, t, (int)status, "", HOOK_DELIVERED, 0, duration);
        item_free(&it);
    } else if (result != CURLE_OK && t->guard.blocked) {
        snprintf(error, sizeof(error),
                 "target address %s is not allowed (--webhook-targets)", t->guard.blocked_addr);
        attempt_failed(d, &it, t, 0, error, 1, duration);
    } else if (result != CURLE_OK) {
        snprintf(error, sizeof(error), "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        attempt_failed(d, &it, t, (int)status, error, 0, duration);
    } else {
        snprintf(error, sizeof(error), "HTTP %ld", status);
        attempt_failed(d, &it, t, (int)status, error, 0, duration);
    }
    d->in_flight--;
    atomic_store(&d->in_flight_gauge, d->in_flight);
    transfer_free(d, &t);
}

/* --------------------------------------------------------------- thread */

static void *delivery_thread(void *arg)
{
    struct hook_deliverer *d = arg;
    struct item *due[64];

    while (!atomic_load(&d->stop)) {
        int running = 0;
        curl_multi_perform(d->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(d->multi, &left)))
            if (msg->msg == CURLMSG_DONE)
                transfer_done(d, msg->easy_handle, msg->data.result);

        int64_t now = wall_ms();
        int64_t wait = IDLE_WAIT_MS;
        size_t n_due = 0;
        unsigned room = d->cfg.max_in_flight - d->in_flight;
        pthread_mutex_lock(&d->lock);
        while (n_due < room && n_due < sizeof(due) / sizeof(due[0]) && d->n_queued > 0 &&
               d->heap[0]->next_at_ms <= now)
            due[n_due++] = heap_pop(d);
        if (d->n_queued > 0 && n_due < room) {
            int64_t until = d->heap[0]->next_at_ms - now;
            wait = until < 0 ? 0 : (until < wait ? until : wait);
        }
        pthread_mutex_unlock(&d->lock);
        for (size_t i = 0; i < n_due; i++)
            transfer_start(d, due[i]);
        if (n_due > 0)
            continue; /* kick the new transfers off at once */
        curl_multi_poll(d->multi, NULL, 0, (int)wait, NULL);
    }
    return NULL;
}

int hook_deliverer_start(const struct hook_deliverer_config *config, struct hook_deliverer **out)
{
    struct hook_deliverer *d = NULL;
    int ret = -ENOMEM;

    *out = NULL;
    if (config->secret.len == 0)
        return -EINVAL;
    d = calloc(1, sizeof(*d));
    if (!d)
        goto out;
    d->cfg = *config;
    if (d->cfg.timeout_ms <= 0)
        d->cfg.timeout_ms = HOOK_TIMEOUT_DEFAULT_MS;
    if (d->cfg.retry.min_ms <= 0)
        d->cfg.retry.min_ms = HOOK_RETRY_MIN_DEFAULT_MS;
    if (d->cfg.retry.max_age_ms <= 0)
        d->cfg.retry.max_age_ms = HOOK_RETRY_MAX_AGE_DEFAULT_MS;
    if (d->cfg.max_in_flight == 0)
        d->cfg.max_in_flight = MAX_IN_FLIGHT_DEFAULT;
    pthread_mutex_init(&d->lock, NULL);
    d->multi = curl_multi_init();
    if (!d->multi)
        goto out;
    curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)d->cfg.max_in_flight);
    if (pthread_create(&d->thread, NULL, delivery_thread, d) != 0) {
        ret = -EAGAIN;
        goto out;
    }
    d->thread_started = 1;
    *out = d;
    d = NULL;
    ret = 0;
out:
    hook_deliverer_stop(&d);
    return ret;
}

void hook_deliverer_stop(struct hook_deliverer **dp)
{
    struct hook_deliverer *d = *dp;
    if (!d)
        return;
    if (d->thread_started) {
        atomic_store(&d->stop, 1);
        curl_multi_wakeup(d->multi);
        pthread_join(d->thread, NULL);
    }
    while (d->transfers) {
        struct transfer *t = d->transfers;
        item_free(&t->item);
        transfer_free(d, &t);
    }
    for (size_t i = 0; i < d->n_queued; i++)
        item_free(&d->heap[i]);
    free(d->heap);
    if (d->multi)
        curl_multi_cleanup(d->multi);
    pthread_mutex_destroy(&d->lock);
    free(d);
    *dp = NULL;
}

void hook_deliverer_counters(struct hook_deliverer *d, struct hook_counters *out)
{
    memset(out, 0, sizeof(*out));
    if (!d)
        return;
    out->succeeded = atomic_load(&d->succeeded);
    out->failed = atomic_load(&d->failed);
    out->gave_up = atomic_load(&d->gave_up);
    out->queued = atomic_load(&d->queued_gauge);
    out->in_flight = atomic_load(&d->in_flight_gauge);
}

int hook_counters_prometheus(const struct hook_counters *c, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# HELP vidq_webhook_deliveries_total Webhook delivery attempts by outcome.\n"
                     "# TYPE vidq_webhook_deliveries_total counter\n"
                     "vidq_webhook_deliveries_total{outcome=\"succeeded\"} %" PRIu64 "\n"
                     "vidq_webhook_deliveries_total{outcome=\"failed\"} %" PRIu64 "\n"
                     "vidq_webhook_deliveries_total{outcome=\"gave_up\"} %" PRIu64 "\n"
                     "# HELP vidq_webhook_deliveries_queued Webhook deliveries waiting for "
                     "their next attempt.\n"
                     "# TYPE vidq_webhook_deliveries_queued gauge\n"
                     "vidq_webhook_deliveries_queued %" PRIu64 "\n"
                     "# HELP vidq_webhook_deliveries_in_flight Webhook requests on the wire.\n"
                     "# TYPE vidq_webhook_deliveries_in_flight gauge\n"
                     "vidq_webhook_deliveries_in_flight %" PRIu64 "\n",
                     c->succeeded, c->failed, c->gave_up, c->queued, c->in_flight);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}
