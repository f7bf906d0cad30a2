/*
 * deliver.h - the webhook delivery engine: signed POSTs over libcurl's multi
 * interface, in one thread of its own, with retries.
 *
 * DESIGN
 *   Threads: one delivery thread owns a CURLM and every easy handle. Other
 *   threads only call hook_deliverer_submit(), which queues a copy of the
 *   delivery under a mutex and wakes the thread (curl_multi_wakeup); nothing
 *   here ever blocks an HTTP thread or the scheduler on the network.
 *   States of one delivery: queued (waiting for its next_at) -> in flight
 *   (an easy handle in the multi, at most max_in_flight of them) -> done
 *   (delivered, gave up) or queued again with a later next_at (retry; the
 *   policy is retry.h). Every finished attempt is reported to on_attempt,
 *   on the delivery thread, with the outcome and, for a retry, its time:
 *   the outbox makes that durable, so that after a restart the queue is
 *   rebuilt from the store with the same schedule.
 *   Requests: POST, Content-Type application/json, the Standard Webhooks
 *   headers (sign.h) with the same webhook-id on every attempt and a fresh
 *   webhook-timestamp and signature per attempt; a timeout per attempt
 *   (15 s by default); redirects are never followed (a 3xx is a failed
 *   attempt); only http and https (CURLOPT_PROTOCOLS_STR, also for any
 *   redirect); proxies from the environment are ignored, so the address
 *   checked below is the receiver's; the answer body is discarded as it
 *   arrives.
 *   Any 2xx delivers. 410 Gone stops retrying that URL for that event.
 *
 * TARGET POLICY (what a webhook may reach), --webhook-targets (the rule and
 * its code are net/target.h, the same as --fetch-targets):
 *   URLs must be absolute http:// or https:// URLs with a host, validated
 *   with libcurl's URL API (hook_url_check); registration answers 400 for
 *   anything else.
 *   "any" (the default): any address, loopback and private networks
 *   included. vidq typically runs next to the application that receives
 *   its webhooks, and only clients holding the API key can register URLs.
 *   "public": for a shared deployment. The address libcurl is about to
 *   connect to - after name resolution, judged in CURLOPT_OPENSOCKETFUNCTION,
 *   so neither a hostname that resolves to 10.0.0.1, nor odd spellings
 *   (2130706433, [::ffff:127.0.0.1]), nor DNS rebinding get around it -
 *   must not be loopback (127/8, ::1), private (10/8, 172.16/12,
 *   192.168/16, fc00::/7), link-local (169.254/16 with the cloud metadata
 *   address, fe80::/10), CGNAT (100.64/10), "this network" (0/8, ::),
 *   multicast, reserved (240/4, broadcast), documentation or benchmarking
 *   ranges, or an IPv4-mapped, -compatible, NAT64 or 6to4 form of those.
 *   "public+loopback": the same, loopback allowed (a receiver on the same
 *   host). A refused address ends the delivery at once (gave up, error
 *   "target address ... is not allowed"); no connection is made.
 *
 * Threading: hook_deliverer_submit, hook_deliverer_counters and
 * hook_url_check may be called from any thread; start/stop from one
 * controlling thread. on_attempt runs on the delivery thread.
 */
#ifndef VIDQ_HOOK_DELIVER_H
#define VIDQ_HOOK_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "hooks/retry.h"
#include "hooks/sign.h"

#define HOOK_TIMEOUT_DEFAULT_MS 15000
#define HOOK_URL_MAX 2048
#define HOOK_BODY_MAX (1024 * 1024)
#define HOOK_QUEUE_MAX 100000
#define HOOK_ERROR_MAX 256

struct hook_deliverer;

/* How an attempt ended. */
enum hook_outcome {
    HOOK_DELIVERED = 0, /* a 2xx answer */
    HOOK_RETRY,         /* failed; another attempt at next_at_ms */
    HOOK_GAVE_UP,       /* failed; no more attempts (max age, refused target, bad URL) */
    HOOK_GONE,          /* 410 Gone: no more attempts to this URL for this event */
};

/* "delivered", "retry", "gave_up", "gone". */
const char *hook_outcome_name(enum hook_outcome outcome);

/* One delivery: one event to one URL. Borrowed by submit, which copies it. */
struct hook_delivery {
    int64_t key;        /* caller's id (the outbox row); echoed in attempts */
    const char *msg_id; /* webhook-id, the same on every attempt */
    const char *url;
    const char *body; /* the JSON payload, sent as is */
    size_t body_len;
    int64_t created_ms; /* when the event happened: the give-up age counts from here */
    unsigned attempts;  /* attempts already made (0 for a new event) */
    int64_t next_at_ms; /* not before this time (0: now) */
};

/* One finished attempt, reported on the delivery thread. Pointers are
 * valid only during the callback. */
struct hook_attempt {
    int64_t key;
    const char *msg_id;
    const char *url;
    unsigned attempt;      /* 1-based */
    int64_t started_ms;    /* Unix ms */
    double duration_s;
    int http_status;       /* 0 when no answer came */
    const char *error;     /* "" when the receiver answered 2xx; else why it failed */
    enum hook_outcome outcome;
    int64_t next_at_ms;    /* HOOK_RETRY: when the next attempt starts; else 0 */
};

/* Counters of attempts by outcome, since start. */
struct hook_counters {
    uint64_t succeeded; /* attempts answered 2xx */
    uint64_t failed;    /* failed attempts (each retry, give-up and 410 counts once) */
    uint64_t gave_up;   /* deliveries abandoned: max age, 410, refused target */
    uint64_t queued;    /* gauge: waiting for their next attempt */
    uint64_t in_flight; /* gauge: requests on the wire */
};

struct hook_deliverer_config {
    struct hook_secret secret;
    int64_t timeout_ms;     /* per attempt; 0: HOOK_TIMEOUT_DEFAULT_MS */
    struct hook_retry_policy retry; /* 0 fields: the defaults of retry.h */
    unsigned max_in_flight; /* 0: 64 */
    int deny_private;       /* refuse non-public target addresses (TARGET POLICY) */
    int allow_loopback;     /* with deny_private: still allow loopback */
    /* Called after every attempt on the delivery thread; may be NULL. It
     * may block briefly (a store write) but must not call back into the
     * deliverer except hook_deliverer_submit/counters. */
    void (*on_attempt)(void *ctx, const struct hook_attempt *attempt);
    void *ctx;
};

/* Start the delivery thread. curl_global_init must have run. On success
 * *out owns the thread; free with hook_deliverer_stop. */
int hook_deliverer_start(const struct hook_deliverer_config *config, struct hook_deliverer **out);

/* Stop the thread and free everything; transfers still in flight are
 * aborted and not reported (the store still has them pending, so they are
 * retried after a restart). NULL-safe; sets *d to NULL. */
void hook_deliverer_stop(struct hook_deliverer **d);

/* Queue a copy of `delivery`. Each delivery must be submitted once (the
 * engine does not deduplicate by key). Returns 0, -EINVAL for a URL that
 * hook_url_check refuses or a body over HOOK_BODY_MAX, -EAGAIN when the
 * queue holds HOOK_QUEUE_MAX deliveries, -ENOMEM. */
int hook_deliverer_submit(struct hook_deliverer *d, const struct hook_delivery *delivery);

/* A snapshot of the counters. */
void hook_deliverer_counters(struct hook_deliverer *d, struct hook_counters *out);

/* The counters in Prometheus text format (vidq_webhook_deliveries_total
 * {outcome=...}, vidq_webhook_deliveries_queued, ..._in_flight), appended
 * to out at most cap bytes; returns the length written or -ENOSPC. */
int hook_counters_prometheus(const struct hook_counters *c, char *out, size_t cap);

/* Check a webhook URL with libcurl's URL API: an absolute http or https URL
 * with a host, at most HOOK_URL_MAX bytes. 0, or -EINVAL with a sentence
 * in err ("webhook url must be http or https"). */
int hook_url_check(const char *url, char *err, size_t err_cap);

/* Parse --webhook-targets: "any", "public" or "public+loopback" into the
 * two flags above. 0, or -EINVAL for anything else. */
int hook_targets_parse(const char *text, int *deny_private, int *allow_loopback);

/* The target-policy test used on connect, exposed for tests: 1 if the
 * socket address may be connected to under (deny_private, allow_loopback). */
struct sockaddr;
int hook_address_allowed(const struct sockaddr *addr, int deny_private, int allow_loopback);

#endif
