/*
 * store.h - the durable job store: the one place jobs are written to disk.
 *
 * A narrow interface so that another backend (PostgreSQL for several
 * nodes) can sit behind it; every SQL statement lives in the backend's .c
 * (store_sqlite.c). Each state change is ONE transaction, so that later
 * additions written "in the same transaction" (a webhook outbox row) go
 * into the same function.
 *
 * Threading: a struct store may be used from any thread at once; it hands
 * each calling thread a connection of its own for the length of a call
 * (SQLite connections are never shared between threads mid-statement).
 *
 * Errors: functions return 0 or a negative STORE_E* code.
 */
#ifndef VIDQ_STORE_H
#define VIDQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/job.h"

enum {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1,  /* no such job */
    STORE_ECONFLICT = -2,  /* the job is not in the state the call needs */
    STORE_EIO = -3,        /* the database failed (message in the log) */
    STORE_ENOMEM = -4,
    STORE_EINVAL = -5,     /* bad URL or argument */
};

struct store;

/* Open (creating if needed) the store at url ("sqlite:<path>"). Returns 0
 * and *out, or a negative code with a reason in err. */
int store_open(const char *url, struct store **out, char *err, size_t errlen);

/* Close and free; accepts NULL and sets *pp = NULL. Callers first stop every
 * thread that uses the store. */
void store_close(struct store **pp);

/* Insert a new job (status queued, attempts 0). The store assigns job->seq.
 * job->id must be unique. */
int store_job_create(struct store *st, struct job *job);

/* Claim the next queued job (highest priority, then oldest): in one
 * transaction it becomes running, started_at = now, attempts + 1, progress
 * reset. *out receives a heap copy (caller frees with job_free).
 * STORE_ENOTFOUND when nothing is queued. */
int store_job_claim_next(struct store *st, struct job **out);

/* Record the progress of a running job. STORE_ECONFLICT if not running. */
int store_job_progress(struct store *st, const char *id, const struct job_progress *p);

/* End a job: status (succeeded, failed or canceled), the error (NULL for
 * none) and the output results JSON (NULL for none), finished_at = now.
 * Only from queued or running; STORE_ECONFLICT if the job already ended. */
int store_job_finish(struct store *st, const char *id, enum job_status status,
                     const char *error_code, const char *error_message,
                     const char *results_json);

/* Cancel a job that is still queued, in one transaction. STORE_ECONFLICT
 * if it is not queued (already claimed or ended). */
int store_job_cancel_queued(struct store *st, const char *id);

/* Put one running job back in the queue (shutdown). */
int store_job_requeue(struct store *st, const char *id);

/* Put every running job back in the queue (start-up after a crash) and
 * call fn for each (so the caller can delete partial outputs). */
int store_requeue_running(struct store *st, void (*fn)(void *opaque, const char *id),
                          void *opaque);

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

/* Number of jobs in each status (counts[JOB_QUEUED] ...). */
int store_count_by_status(struct store *st, int64_t counts[5]);

/* A human name for a STORE_E* code. */
const char *store_strerror(int code);

#endif
