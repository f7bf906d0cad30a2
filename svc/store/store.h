/*
 * store.h - the durable job store: the one place jobs are written to disk.
 *
 * A narrow interface with two backends behind it, picked by the URL's
 * scheme in store.c: SQLite (sqlite.c, one node) and PostgreSQL
 * (pg.c, one or several nodes sharing the database). store.c does all
 * that does not depend on the database (states, transitions, rows, the
 * outbox rows); a backend is a driver (backend.h): its dialect's SQL,
 * binding, connections, transactions, locking. Each state change is ONE
 * transaction, so that additions written "in the same transaction" (a
 * webhook outbox row) go into the same function.
 *
 * Threading: a struct store may be used from any thread at once; it hands
 * each calling thread a connection of its own for the length of a call
 * (connections are never shared between threads mid-statement).
 *
 * Errors: functions return 0 or a negative STORE_E* code.
 */
#ifndef VIDQ_STORE_H
#define VIDQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/job.h"

enum {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1,  /* no such job */
    STORE_ECONFLICT = -2,  /* the job is not in the state the call needs */
    STORE_EIO = -3,        /* the database failed (message in the log) */
    STORE_ENOMEM = -4,
    STORE_EINVAL = -5,     /* bad URL or argument */
};

struct store;

/* Open (creating the schema if needed) the store at url: "sqlite:<path>"
 * or a libpq URL "postgres://..." / "postgresql://...". Returns 0 and
 * *out, or a negative code with a reason in err: STORE_EINVAL for an
 * unknown scheme or a schema version this build does not know, STORE_EIO
 * when the database cannot be opened or reached (err names the problem
 * but never repeats the URL, which may hold a password). */
int store_open(const char *url, struct store **out, char *err, size_t errlen);

/* Close and free; accepts NULL and sets *pp = NULL. Callers first stop every
 * thread that uses the store. */
void store_close(struct store **pp);

/* Insert a new job (status queued, attempts 0). The store assigns job->seq.
 * job->id must be unique. */
int store_job_create(struct store *st, struct job *job);

/* Insert a job that failed before it could be queued (a complete tus
 * upload that was refused: not media, ...), in status failed with
 * finished_at = now, attempts 0 and job->error_code/error_message (the
 * code is required), in one transaction with its job.failed outbox rows.
 * The store assigns job->seq and finished_at. STORE_ECONFLICT if the id
 * exists. */
int store_job_create_failed(struct store *st, struct job *job);

/* Claim the next queued job (highest priority, then oldest): in one
 * transaction it becomes running, started_at = now, attempts + 1, progress
 * reset. *out receives a heap copy (caller frees with job_free).
 * STORE_ENOTFOUND when nothing is queued. */
int store_job_claim_next(struct store *st, struct job **out);

/* Record the progress of a running job. STORE_ECONFLICT if not running. */
int store_job_progress(struct store *st, const char *id, const struct job_progress *p);

/* Replace the "input" object of running job id (a job from a URL, once
 * its input was fetched and probed). STORE_OK, STORE_ECONFLICT if it is
 * not running, or an error. */
int store_job_set_input(struct store *st, const char *id, const char *input_json);

/* End a job: status (succeeded, failed or canceled), the error (NULL for
 * none) and the output results JSON (NULL for none), finished_at = now.
 * Only from queued or running (a shared store: only a job this node runs,
 * so that a node presumed dead cannot end a job that was requeued);
 * STORE_ECONFLICT if the job already ended. */
int store_job_finish(struct store *st, const char *id, enum job_status status,
                     const char *error_code, const char *error_message,
                     const char *results_json);

/* store_job_finish fenced by attempt too (attempt > 0; 0 = any): on a
 * shared store the UPDATE also requires attempts = attempt, so only the
 * job's current attempt can end it, even one this same node claimed again
 * after it was presumed dead. A succeeded job's attempts is then the
 * attempt whose files are its outputs (job_served_dir). SQLite, one node
 * and one attempt at a time, ignores attempt.
 * On a shared store a job whose cancel was requested through the store
 * (store_job_cancel_request, which answered the client 202) ends canceled
 * whatever status is given, without results or error: the request may
 * have come after the worker's end but before this call. *ended (if not
 * NULL) is the status stored, so the caller can remove the outputs. */
int store_job_finish_attempt(struct store *st, const char *id, int attempt,
                             enum job_status status, const char *error_code,
                             const char *error_message, const char *results_json,
                             enum job_status *ended);

/* SQLite: the size in bytes its write-ahead log is cut back to after a
 * long read let it grow past it (PRAGMA journal_size_limit). */
#define STORE_SQLITE_WAL_LIMIT (64L << 20)

/* Cancel a job that is still queued, in one transaction. STORE_ECONFLICT
 * if it is not queued (already claimed or ended). */
int store_job_cancel_queued(struct store *st, const char *id);

/* Put one running job back in the queue (shutdown). */
int store_job_requeue(struct store *st, const char *id);

/* Put running jobs back in the queue and call fn for each (so the caller
 * can delete partial outputs). SQLite: every running job (start-up after
 * a crash). Shared store: only the jobs of nodes that are no longer alive
 * (their lease ran out, or they closed the store), never this node's nor
 * another live node's; the scheduler also calls it periodically. */
int store_requeue_running(struct store *st, void (*fn)(void *opaque, const char *id),
                          void *opaque);

/* ------------------------------------------------------ several nodes
 * A shared store (PostgreSQL) may be used by several vidq nodes at once.
 * Each open store is one node with a random id; it stays alive while its
 * process renews its lease (a thread of the store does, every lease / 4).
 * A running job belongs to the node that claimed it: progress, finish and
 * requeue of a running job succeed only for that node (STORE_ECONFLICT
 * otherwise), so a node that was presumed dead cannot overwrite the job's
 * next attempt. Times of leases are the database server's clock. */

/* 1 for a store that several nodes may share (PostgreSQL), 0 (SQLite). */
int store_is_shared(const struct store *st);

/* This node's id (a shared store), "" otherwise. Borrowed. */
const char *store_node_id(const struct store *st);

/* How long this node stays alive without renewing (default 10 s, at
 * least 1 s); no effect on SQLite. */
void store_set_node_lease(struct store *st, double seconds);

/* Shared store: cancel a job whichever node has it, in one transaction. A
 * queued job becomes canceled (with its outbox rows; *running = 0); a
 * running one is flagged (*running = 1) and its node stops it when it
 * sees the flag (store_cancel_requested). STORE_ECONFLICT if it already
 * ended, STORE_EINVAL on SQLite. */
int store_job_cancel_request(struct store *st, const char *id, int *running);

/* Shared store: call fn with each job this node runs whose cancel was
 * requested. STORE_EINVAL on SQLite. */
int store_cancel_requested(struct store *st, void (*fn)(void *opaque, const char *id),
                           void *opaque);

/* Shared store: the 1-based position of queued job id in the claim order,
 * 0 if it is not queued. STORE_EINVAL on SQLite. */
int store_queue_position(struct store *st, const char *id, long *pos);

/* store_job_get plus, on a shared store, the queue position of a queued
 * job (0 otherwise, and always 0 on SQLite) in one query. */
int store_job_get_position(struct store *st, const char *id, struct job **out, long *pos);

/* One job by id; *out is a heap copy (job_free). */
int store_job_get(struct store *st, const char *id, struct job **out);

/* Jobs newest first: status < 0 for all, else that status only; seq below
 * before_seq (0 = from the newest); at most limit. fn is called with each
 * job (borrowed for the call); a non-zero return stops the walk. */
int store_job_list(struct store *st, int status, int64_t before_seq, int limit,
                   int (*fn)(void *opaque, const struct job *job), void *opaque);

/* Every queued and running job, oldest first (to rebuild the scheduler's
 * view at start-up). */
int store_job_list_active(struct store *st, int (*fn)(void *opaque, const struct job *job),
                          void *opaque);

/* Number of jobs in each status (counts[JOB_QUEUED] ...), read from the
 * job_counts table that triggers on jobs keep in the same transaction as
 * each insert, status change and delete (not a scan). */
int store_count_by_status(struct store *st, int64_t counts[5]);

/* Shared store: the jobs with these ids that exist (deleted ones are
 * simply missing), in one query; fn as store_job_list's. STORE_EINVAL on
 * SQLite. */
int store_job_get_many(struct store *st, const char *const *ids, size_t n,
                       int (*fn)(void *opaque, const struct job *job), void *opaque);

/* Shared store: a watch on job changes, on a connection of its own
 * (PostgreSQL LISTEN on the channel the jobs trigger NOTIFYs in the
 * transaction of each insert, update and delete; the payload is
 * "<id> <status|deleted> <seq>"). One thread uses a watch. open:
 * STORE_OK, STORE_EINVAL (SQLite) or STORE_EIO (logged). wait: up to
 * timeout_ms for changes, then fn with the id of each one received
 * (the same id may come more than once); STORE_EIO once the connection
 * broke (close it and open a new one; changes in between are missed). */
struct store_watch;
int store_watch_open(struct store *st, struct store_watch **out);
int store_watch_wait(struct store_watch *w, int timeout_ms,
                     void (*fn)(void *opaque, const char *id), void *opaque);
void store_watch_close(struct store_watch **pw); /* accepts NULL */

/* A human name for a STORE_E* code. */
const char *store_strerror(int code);

/* ------------------------------------------------- webhooks and outbox
 * Registrations (global, or for one job) and the outbox of deliveries:
 * one row per event and URL, inserted in the same transaction as the job
 * change that causes it (claim -> job.started, finish/cancel -> the final
 * event, progress -> job.progress at most once a second per job), so a
 * crash after the change still delivers after the restart. Event masks are
 * store/hook_event.h's HOOK_EVENT_* bits. The jobs.webhook_url given at upload
 * counts as a registration of that job for the default (final) events. */

enum { STORE_WEBHOOK_ID_SIZE = 40 };

struct store_webhook {
    char id[STORE_WEBHOOK_ID_SIZE]; /* "wh_<hex>" */
    const char *job_id;             /* NULL for a global webhook */
    const char *url;
    int events;
    double created_at;
};

/* Register url for events, for job_id (NULL: every job). Fills out->id
 * and out->created_at. For a job: STORE_ENOTFOUND if it does not exist; if
 * it already ended and events include its final event, that event's
 * delivery is queued in the same transaction and *queued is set to 1. */
int store_webhook_add(struct store *st, const char *job_id, const char *url, int events,
                      struct store_webhook *out, int *queued);

/* The webhooks of job_id (NULL: the global ones), oldest first. */
int store_webhook_list(struct store *st, const char *job_id,
                       int (*fn)(void *opaque, const struct store_webhook *w), void *opaque);

/* Remove a global webhook. STORE_ENOTFOUND if there is none with id. */
int store_webhook_delete(struct store *st, const char *id);

/* One outbox row (strings borrowed for the callback). state: "pending",
 * "delivered", "failed" (gave up) or "gone" (410). */
struct store_delivery {
    int64_t seq;
    const char *msg_id, *job_id, *event, *url, *body, *state;
    size_t body_len;
    double created_at, next_at; /* next_at: when the next attempt is due */
    int attempts;
};

/* One attempt at a delivery, and the state it leaves the delivery in. */
struct store_attempt {
    int64_t delivery_seq;
    int attempt;          /* 1-based */
    double at;            /* Unix s */
    int http_status;      /* 0: no answer */
    const char *error;    /* "" or NULL when delivered */
    double duration_s;
    const char *outcome;  /* hook_outcome_name() */
    const char *state;    /* the delivery's state after it */
    double next_at;       /* when state is pending */
};

/* Pending deliveries with seq > after_seq, by seq, at most limit. A
 * shared store claims them for this node in the same statement: rows
 * claimed by this node or another live node are left out, rows of a dead
 * node are taken over; so two nodes never send the same row. */
int store_delivery_pending(struct store *st, int64_t after_seq, int limit,
                           int (*fn)(void *opaque, const struct store_delivery *d), void *opaque);

/* Shared store: give back this node's claim on delivery seq (one the
 * caller could not take after all), or on all its pending rows when seq
 * is 0 (an outbox that starts owns none). No effect on SQLite. */
int store_delivery_release(struct store *st, int64_t seq);

/* Record an attempt and move its delivery to a->state, in one transaction. */
int store_delivery_attempt(struct store *st, const struct store_attempt *a);

/* The deliveries of a job (fn_delivery, by seq) then all their attempts
 * (fn_attempt, by delivery and attempt). STORE_ENOTFOUND if no such job. */
int store_delivery_list(struct store *st, const char *job_id,
                        int (*fn_delivery)(void *opaque, const struct store_delivery *d),
                        int (*fn_attempt)(void *opaque, const struct store_attempt *a),
                        void *opaque);

/* ---------------------------------------------------------- retention
 * A job's files are kept for its ttl_s (given at upload; NULL in the row:
 * the store's default, store_set_retention) after it ends: the
 * transition that ends it sets expires_at = finished_at + ttl in the same
 * transaction. The sweeper (jobs/sweeper.h) deletes the files of due jobs
 * and marks them expired, then later deletes the rows of expired jobs.
 * Every call here is one short statement or one small transaction, and
 * each is idempotent, so several nodes may sweep one shared store at once
 * (two of them deleting the same files or rows is harmless). */

enum { STORE_RETENTION_DEFAULT_S = 7 * 86400 };

/* The ttl of jobs that carry none (default 7 days). Call before threads
 * use the store. */
void store_set_retention(struct store *st, double seconds);

/* Set expires_at of at most limit ended jobs that have none (rows written
 * before retention existed); *changed receives how many. */
int store_expiry_backfill(struct store *st, int limit, int64_t *changed);

/* Call fn with the id and input path (borrowed for the call; may be NULL)
 * of at most limit jobs whose expires_at is <= now and that are not
 * expired yet, soonest first, after the read (no connection held). */
int store_expiry_due(struct store *st, double now, int limit,
                     void (*fn)(void *opaque, const char *id, const char *input_path),
                     void *opaque);

/* Mark an ended job expired (its files are gone), expires_at = now if it
 * was later. STORE_ECONFLICT if the job has not ended, STORE_ENOTFOUND. */
int store_job_expire(struct store *st, const char *id, double now);

/* Call fn with the id of at most limit jobs marked expired whose
 * expires_at is after since, newest first, after the read. Another
 * node's DELETE of a job's files sets expires_at to its time, so this is
 * how a node of a shared store hears of one (the sweeper drops those
 * jobs from its memory). */
int store_expired_since(struct store *st, double since, int limit,
                        void (*fn)(void *opaque, const char *id), void *opaque);

/* Forget at most limit expired jobs that ended before `before` and have no
 * delivery still being tried: their attempts, deliveries, registrations
 * and row, in one transaction. *deleted receives how many jobs. */
int store_records_purge(struct store *st, double before, int limit, int64_t *deleted);

#endif
