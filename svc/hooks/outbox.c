/* outbox.c - see outbox.h for the design. */
#include "hooks/outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "store/hook_event.h"
#include "hooks/sign.h"
#include "store/store.h"

#define POLL_MS 200
#define BATCH 500
#define RESCAN_MS 5000 /* shared store: look for rows of dead nodes */
#define BODY_MAX (64 * 1024)

struct hook_outbox {
    struct store *st;
    struct hook_deliverer *deliverer;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock; /* guards stop, poke */
    pthread_cond_t cond;
    int stop, poke;
    int64_t watermark; /* outbox thread only: highest seq handed over */
    int shared;        /* several nodes share the store (claims, rescans) */
};

static const char *state_for(enum hook_outcome outcome)
{
    switch (outcome) {
    case HOOK_DELIVERED: return "delivered";
    case HOOK_RETRY: return "pending";
    case HOOK_GONE: return "gone";
    case HOOK_GAVE_UP: break;
    }
    return "failed";
}

/* Delivery thread: make the attempt durable. */
static void on_attempt(void *ctx, const struct hook_attempt *a)
{
    struct hook_outbox *o = ctx;
    struct store_attempt sa = {
        .delivery_seq = a->key,
        .attempt = (int)a->attempt,
        .at = (double)a->started_ms / 1000.0,
        .http_status = a->http_status,
        .error = a->error,
        .duration_s = a->duration_s,
        .outcome = hook_outcome_name(a->outcome),
        .state = state_for(a->outcome),
        .next_at = (double)a->next_at_ms / 1000.0,
    };
    int r = store_delivery_attempt(o->st, &sa);
    if (r != STORE_OK)
        log_error("webhook attempt not recorded msg_id=%s: %s", a->msg_id, store_strerror(r));
}

struct poll_ctx {
    struct hook_outbox *o;
    int64_t cursor; /* this pass: highest seq seen */
    int n, full;
};

static int submit_row(void *opaque, const struct store_delivery *row)
{
    struct poll_ctx *c = opaque;
    struct hook_delivery del = {
        .key = row->seq,
        .msg_id = row->msg_id,
        .url = row->url,
        .body = row->body,
        .body_len = row->body_len,
        .created_ms = (int64_t)(row->created_at * 1000.0),
        .attempts = row->attempts > 0 ? (unsigned)row->attempts : 0,
        .next_at_ms = (int64_t)(row->next_at * 1000.0),
    };
    int r = hook_deliverer_submit(c->o->deliverer, &del);
    if (r == -EAGAIN || r == -ENOMEM) {
        c->full = 1; /* try again at the next poll, from this row */
        store_delivery_release(c->o->st, row->seq); /* claimed, not taken */
        return 1;
    }
    if (r != 0) {
        /* A row the engine refuses (a URL that no longer passes the check):
         * close it with a recorded reason rather than retrying forever. */
        struct store_attempt sa = {
            .delivery_seq = row->seq,
            .attempt = row->attempts + 1,
            .at = (double)time(NULL),
            .error = "invalid webhook URL or payload",
            .outcome = hook_outcome_name(HOOK_GAVE_UP),
            .state = "failed",
        };
        store_delivery_attempt(c->o->st, &sa);
    }
    c->cursor = row->seq;
    if (row->seq > c->o->watermark)
        c->o->watermark = row->seq;
    c->n++;
    return 0;
}

static void *outbox_thread(void *arg)
{
    struct hook_outbox *o = arg;
    struct timespec last_rescan;
    clock_gettime(CLOCK_MONOTONIC, &last_rescan);
    for (;;) {
        struct poll_ctx c = {.o = o, .cursor = o->watermark};
        if (o->shared) {
            /* Rows below the watermark that a node which died had
             * claimed: from the start now and then (the store hands out
             * only rows that are free; never this node's own). */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - last_rescan.tv_sec) * 1000 +
                    (now.tv_nsec - last_rescan.tv_nsec) / 1000000 >= RESCAN_MS) {
                c.cursor = 0;
                last_rescan = now;
            }
        }
        do {
            c.n = 0;
            int r = store_delivery_pending(o->st, c.cursor, BATCH, submit_row, &c);
            if (r != STORE_OK)
                log_error("webhook outbox: cannot read pending deliveries: %s",
                          store_strerror(r));
        } while (c.n == BATCH && !c.full);

        pthread_mutex_lock(&o->lock);
        if (!o->stop && !o->poke) {
            struct timespec until = clock_deadline(POLL_MS / 1000.0);
            pthread_cond_timedwait(&o->cond, &o->lock, &until);
        }
        o->poke = 0;
        int stop = o->stop;
        pthread_mutex_unlock(&o->lock);
        if (stop)
            break;
    }
    return NULL;
}

int hook_outbox_start(const struct hook_outbox_config *cfg, struct hook_outbox **out, char *err,
                      size_t err_cap)
{
    struct hook_outbox *o = NULL;
    struct hook_deliverer_config dc = {0};
    char perr[512];
    int ret = -1;

    *out = NULL;
    if (cfg->secret && *cfg->secret) {
        if (hook_secret_parse(cfg->secret, &dc.secret, perr, sizeof(perr)) != 0) {
            snprintf(err, err_cap, "--webhook-secret: %s", perr);
            goto out;
        }
    } else if (hook_secret_load_or_create(cfg->data_dir, &dc.secret, perr, sizeof(perr)) != 0) {
        snprintf(err, err_cap, "webhook secret: %s", perr);
        goto out;
    }
    if (hook_targets_parse(cfg->targets, &dc.deny_private, &dc.allow_loopback) != 0) {
        snprintf(err, err_cap, "--webhook-targets: expected any, public or public+loopback, got '%s'",
                 cfg->targets);
        goto out;
    }
    o = calloc(1, sizeof(*o));
    if (!o) {
        snprintf(err, err_cap, "out of memory");
        goto out;
    }
    o->st = cfg->store;
    o->shared = store_is_shared(o->st);
    /* A new outbox owns no delivery yet (a restart of the outbox on the
     * same store: the rows the old one had in flight are free again). */
    if (store_delivery_release(o->st, 0) != STORE_OK)
        log_warn("webhook outbox: could not release this node's earlier claims");
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
    dc.timeout_ms = (int64_t)(cfg->timeout_s * 1000.0);
    dc.retry.min_ms = (int64_t)(cfg->retry_min_s * 1000.0);
    dc.retry.max_age_ms = (int64_t)(cfg->retry_max_age_s * 1000.0);
    dc.on_attempt = on_attempt;
    dc.ctx = o;
    if (hook_deliverer_start(&dc, &o->deliverer) != 0) {
        snprintf(err, err_cap, "cannot start the webhook delivery thread");
        goto out;
    }
    if (pthread_create(&o->thread, NULL, outbox_thread, o) != 0) {
        snprintf(err, err_cap, "cannot start the webhook outbox thread");
        goto out;
    }
    o->thread_started = 1;
    log_info("webhooks ready retry_min=%.3gs max_age=%.0fs timeout=%.3gs targets=%s",
             cfg->retry_min_s > 0 ? cfg->retry_min_s : HOOK_RETRY_MIN_DEFAULT_MS / 1000.0,
             cfg->retry_max_age_s > 0 ? cfg->retry_max_age_s
                                      : HOOK_RETRY_MAX_AGE_DEFAULT_MS / 1000.0,
             cfg->timeout_s > 0 ? cfg->timeout_s : HOOK_TIMEOUT_DEFAULT_MS / 1000.0,
             !dc.deny_private ? "any" : dc.allow_loopback ? "public+loopback" : "public");
    *out = o;
    o = NULL;
    ret = 0;
out:
    hook_outbox_stop(&o);
    memset(&dc.secret, 0, sizeof(dc.secret));
    return ret;
}

/* Raise flag (stop or poke) and wake the outbox thread. */
static void wake(struct hook_outbox *o, int *flag)
{
    pthread_mutex_lock(&o->lock);
    *flag = 1;
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

void hook_outbox_stop(struct hook_outbox **pp)
{
    struct hook_outbox *o = *pp;
    if (!o)
        return;
    if (o->thread_started) {
        wake(o, &o->stop);
        pthread_join(o->thread, NULL);
    }
    /* After the outbox thread: it is the one that submits. */
    hook_deliverer_stop(&o->deliverer);
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->lock);
    free(o);
    *pp = NULL;
}

void hook_outbox_notify(struct hook_outbox *o)
{
    if (o)
        wake(o, &o->poke);
}

void hook_outbox_counters(struct hook_outbox *o, struct hook_counters *out)
{
    hook_deliverer_counters(o ? o->deliverer : NULL, out);
}

/* ------------------------------------------------------------- the API */

static json_t *time_or_null(double t)
{
    char buf[40];
    if (t <= 0)
        return json_null();
    hook_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *webhook_json(const struct store_webhook *w)
{
    return json_pack("{s:s, s:o, s:s, s:o, s:o}", "id", w->id, "job_id",
                     w->job_id ? json_string(w->job_id) : json_null(), "url", w->url, "events",
                     hook_events_to_json(w->events), "created_at", time_or_null(w->created_at));
}

static int map_store(int r)
{
    return r == STORE_OK ? HOOK_OK : r == STORE_ENOTFOUND ? HOOK_ENOT_FOUND : HOOK_EFAILED;
}

int hook_outbox_register(struct hook_outbox *o, const char *job_id, const char *body,
                         size_t body_len, json_t **created, char *err, size_t err_cap)
{
    json_t *req = NULL;
    json_error_t jerr;
    int ret = HOOK_EBAD_REQUEST;

    *created = NULL;
    if (!body || body_len == 0) {
        snprintf(err, err_cap, "send a JSON body {\"url\": \"https://...\", \"events\": [...]}");
        goto out;
    }
    if (body_len > BODY_MAX) {
        snprintf(err, err_cap, "the request body is larger than %d bytes", BODY_MAX);
        goto out;
    }
    req = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(req)) {
        snprintf(err, err_cap, "the body must be a JSON object {\"url\": ..., \"events\": [...]}%s%s",
                 req ? "" : ": ", req ? "" : jerr.text);
        goto out;
    }
    const json_t *url = json_object_get(req, "url");
    if (!json_is_string(url)) {
        snprintf(err, err_cap, "\"url\" is required and must be a string");
        goto out;
    }
    if (hook_url_check(json_string_value(url), err, err_cap) != 0)
        goto out;
    int events = hook_events_from_json(json_object_get(req, "events"), err, err_cap);
    if (events < 0)
        goto out;
    struct store_webhook w = {0};
    int queued = 0;
    int r = store_webhook_add(o->st, job_id, json_string_value(url), events, &w, &queued);
    ret = map_store(r);
    if (ret != HOOK_OK) {
        snprintf(err, err_cap, "%s", r == STORE_ENOTFOUND ? "no such job" : store_strerror(r));
        goto out;
    }
    if (queued)
        hook_outbox_notify(o);
    log_info("webhook registered id=%s job_id=%s url=%s queued_final=%d", w.id,
             job_id ? job_id : "(all)", w.url, queued);
    *created = webhook_json(&w);
    if (!*created)
        ret = HOOK_EFAILED;
out:
    json_decref(req);
    return ret;
}

static int add_webhook(void *opaque, const struct store_webhook *w)
{
    json_t *o = webhook_json(w);
    return o ? json_array_append_new(opaque, o) : 1;
}

int hook_outbox_list(struct hook_outbox *o, json_t **out)
{
    json_t *list = json_array();
    *out = NULL;
    if (!list)
        return HOOK_EFAILED;
    int r = store_webhook_list(o->st, NULL, add_webhook, list);
    if (r != STORE_OK) {
        json_decref(list);
        return map_store(r);
    }
    *out = json_pack("{s:o}", "webhooks", list);
    return *out ? HOOK_OK : HOOK_EFAILED;
}

int hook_outbox_unregister(struct hook_outbox *o, const char *id)
{
    return map_store(store_webhook_delete(o->st, id));
}

struct list_ctx {
    json_t *deliveries;
    json_t *seqs; /* the seq of each delivery, same order */
    size_t cursor;
};

static int add_delivery(void *opaque, const struct store_delivery *d)
{
    struct list_ctx *c = opaque;
    int pending = strcmp(d->state, "pending") == 0;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:[]}", "id", d->msg_id, "event",
                          d->event, "url", d->url, "status", d->state, "created_at",
                          time_or_null(d->created_at), "next_attempt_at",
                          pending ? time_or_null(d->next_at) : json_null(), "attempts");
    if (!o || json_array_append_new(c->deliveries, o) != 0 ||
        json_array_append_new(c->seqs, json_integer(d->seq)) != 0)
        return 1;
    return 0;
}

static int add_attempt(void *opaque, const struct store_attempt *a)
{
    struct list_ctx *c = opaque;
    /* Attempts come ordered by delivery seq, as the deliveries did. */
    while (c->cursor < json_array_size(c->seqs) &&
           json_integer_value(json_array_get(c->seqs, c->cursor)) != a->delivery_seq)
        c->cursor++;
    if (c->cursor >= json_array_size(c->seqs))
        return 1;
    json_t *list = json_object_get(json_array_get(c->deliveries, c->cursor), "attempts");
    json_t *o = json_pack("{s:i, s:o, s:o, s:o, s:f, s:s}", "attempt", a->attempt, "at",
                          time_or_null(a->at), "http_status",
                          a->http_status ? json_integer(a->http_status) : json_null(), "error",
                          a->error && *a->error ? json_string(a->error) : json_null(),
                          "duration_s", a->duration_s, "outcome", a->outcome ? a->outcome : "");
    return o ? json_array_append_new(list, o) : 1;
}

int hook_outbox_deliveries(struct hook_outbox *o, const char *job_id, json_t **out)
{
    struct list_ctx c = {json_array(), json_array(), 0};
    int ret = HOOK_EFAILED;
    *out = NULL;
    if (!c.deliveries || !c.seqs)
        goto out;
    ret = map_store(store_delivery_list(o->st, job_id, add_delivery, add_attempt, &c));
    if (ret != HOOK_OK)
        goto out;
    *out = json_pack("{s:O}", "deliveries", c.deliveries);
    ret = *out ? HOOK_OK : HOOK_EFAILED;
out:
    json_decref(c.deliveries);
    json_decref(c.seqs);
    return ret;
}
