/*
 * outbox.h - webhooks in the service: registrations, the durable outbox
 * and the delivery engine, behind one handle that cli_serve starts after
 * the store and stops before it.
 *
 * DESIGN
 *   Durability: the store inserts one delivery row per (event, URL) in the
 *   same transaction as the job change that causes it (store.h), so a
 *   crash between "job finished" and "webhook sent" loses nothing. This
 *   module's thread reads pending rows from the store (all of them at
 *   start, then the new ones every 200 ms or when notified) and hands them
 *   to the delivery engine (deliver.h) with their attempt count and next
 *   attempt time; the engine reports every attempt back on its thread and
 *   this module records it (store_delivery_attempt): the attempt row, and
 *   the delivery's new state and next_at. After a restart the schedule
 *   resumes where it was; an attempt that was on the wire when the process
 *   died is simply made again (at-least-once: receivers dedupe on
 *   webhook-id, which is the row's msg_id, the same on every attempt).
 *   Several nodes (a shared store): reading pending rows claims them for
 *   this node in the store, so no two nodes send the same row; every
 *   RESCAN_MS the outbox also reads from the first row, to take over the
 *   pending rows of a node that died (their claims lapse with its lease).
 *   A row the engine cannot take now (queue full) is released again.
 *   Threads: the outbox thread (store reads, submit), the delivery thread
 *   (network, store writes of attempts), and callers of the API functions
 *   (HTTP threads: registrations and listings go straight to the store).
 *
 * Threading: every function but start/stop may be called from any thread.
 */
#ifndef VIDQ_HOOK_OUTBOX_H
#define VIDQ_HOOK_OUTBOX_H

#include <stddef.h>

#include <jansson.h>

#include "hooks/deliver.h"

struct store;
struct hook_outbox;

struct hook_outbox_config {
    struct store *store;       /* borrowed; outlives the outbox */
    const char *data_dir;      /* where webhook_secret is kept when secret is "" */
    const char *secret;        /* --webhook-secret text, or "" / NULL */
    double retry_min_s;        /* --webhook-retry-min (0: default) */
    double retry_max_age_s;    /* --webhook-retry-max-age (0: default) */
    double timeout_s;          /* --webhook-timeout (0: 15 s) */
    const char *targets;       /* --webhook-targets any|public|public+loopback (NULL: any) */
};

/* Errors of the API functions, mapped to HTTP by the caller. */
enum {
    HOOK_OK = 0,
    HOOK_EBAD_REQUEST = -1, /* 400 bad_request; err says why */
    HOOK_ENOT_FOUND = -2,   /* 404 not_found */
    HOOK_EFAILED = -3,      /* 500: the store failed */
};

/* Load or create the secret, start the delivery engine and the outbox
 * thread (which queues every pending delivery of the store). Returns 0, or
 * -1 with a sentence in err (a malformed --webhook-secret, an unreadable
 * secret file, ...). */
int hook_outbox_start(const struct hook_outbox_config *cfg, struct hook_outbox **out, char *err,
                      size_t err_cap);

/* Stop both threads (in-flight attempts are abandoned and made again after
 * the next start). NULL-safe; sets *pp = NULL. */
void hook_outbox_stop(struct hook_outbox **pp);

/* New delivery rows may be in the store: look now rather than at the next
 * poll. Cheap; never blocks. NULL-safe. */
void hook_outbox_notify(struct hook_outbox *o);

/* A snapshot of the delivery counters (zeros for NULL). */
void hook_outbox_counters(struct hook_outbox *o, struct hook_counters *out);

/* Register a webhook from a request body {"url": s, "events": [..]}, for
 * job_id or, with job_id NULL, for every job. *created receives the new
 * registration as JSON ({"id","job_id","url","events","created_at"}). */
int hook_outbox_register(struct hook_outbox *o, const char *job_id, const char *body,
                         size_t body_len, json_t **created, char *err, size_t err_cap);

/* {"webhooks": [...]}: the global registrations. */
int hook_outbox_list(struct hook_outbox *o, json_t **out);

/* Remove a global registration (its queued deliveries still go out). */
int hook_outbox_unregister(struct hook_outbox *o, const char *id);

/* {"deliveries": [...]}: every delivery of a job with every attempt. */
int hook_outbox_deliveries(struct hook_outbox *o, const char *job_id, json_t **out);

#endif
