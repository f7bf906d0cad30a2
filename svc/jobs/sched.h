/*
 * sched.h - the scheduler: the queue of jobs, at most N running at once,
 * and the in-memory view of every active (and recently finished) job that
 * status reads are served from.
 *
 * Threading: every function may be called from any thread (HTTP threads
 * call submit, cancel and the read functions); sched_stop and sched_free
 * from the thread that started it, sched_free after the HTTP server
 * stopped (status reads go on during the grace period). Observers are called on
 * scheduler threads, never with the scheduler's lock held.
 */
#ifndef VIDQ_SCHED_H
#define VIDQ_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "store/job.h"
#include "store/store.h"
#include "jobs/worker.h"
#include "net/target.h"

enum {
    SCHED_OK = 0,
    SCHED_ENOTFOUND = -1,   /* no such job */
    SCHED_ECONFLICT = -2,   /* the job already ended (cancel) */
    SCHED_EQUEUE_FULL = -3, /* --max-queued jobs are waiting */
    SCHED_ESHUTDOWN = -4,   /* the scheduler is stopping */
    SCHED_EIO = -5,         /* the store failed */
    SCHED_ENOMEM = -6,
};

struct sched_config {
    const char *data_dir;          /* borrowed for the scheduler's life */
    const char *exe;               /* the vidq binary for worker children */
    int max_concurrent;
    int max_queued;
    int status_cache_jobs;         /* shared store: the status cache's cap
                                    * (queued and other nodes' jobs); 0 =
                                    * 20000 */
    enum worker_isolation isolation;
    double job_timeout_s;
    int64_t worker_max_memory;
    int worker_nice;
    /* Jobs from a URL (input.url): the target rule (--fetch-targets) and
     * the size cap (--max-upload-bytes) of the fetch, their first phase. */
    struct net_targets fetch_rule;
    int64_t fetch_max_bytes;
    int job_threads;               /* codec thread budget per job; 0 = the
                                    * cores this process may use divided by
                                    * max_concurrent, at least 1 */
    /* Told about every change of a job (state or progress); final is 1
     * when the job just ended. job_id NULL (a shared store, once a tick):
     * jobs other nodes run may have changed. May be NULL. */
    void (*observer)(void *opaque, const char *job_id, int final);
    void *observer_opaque;
};

struct sched;

/* Load the active jobs from st and start the dispatcher. The store is
 * borrowed until sched_free. Returns 0 or a negative SCHED_E* code. */
int sched_start(struct store *st, const struct sched_config *cfg, struct sched **out);

/* Stop: no new job starts; running jobs get grace_s seconds to finish,
 * then are stopped and put back in the queue for the next start. Joins
 * every thread; reads, cancels and accepted submits still work after it
 * (until sched_free). Accepts NULL; a second call does nothing. */
void sched_stop(struct sched *s, double grace_s);

/* Free everything, after sched_stop (called here if it was not) and once
 * nothing else (the HTTP server) can call in. Accepts NULL; sets *pp = NULL. */
void sched_free(struct sched **pp);

/* 1 if --max-queued jobs are waiting (a hint before taking an upload). */
int sched_queue_full(struct sched *s);

/* Store job (status queued; id, input, outputs, metadata filled by the
 * caller) and queue it. On success job->seq and the rest are set, and
 * *json (if not NULL) receives the rendered job object (malloc'd).
 * accepted: the upload's bytes were taken under an earlier check (a tus
 * upload passed the queue cap at creation), so neither --max-queued nor a
 * shutdown in progress refuses it: it is stored and queued (a stopping
 * scheduler starts it at the next start). */
int sched_submit(struct sched *s, struct job *job, int accepted, char **json, size_t *json_len);

/* Store job as failed from the start (a complete tus upload that was
 * refused; id, input, outputs, metadata, webhook_url and error_code/
 * error_message filled by the caller), its job.failed webhooks queued in
 * the same transaction; it is never queued. Observers hear of it as a
 * final change. On success *json (if not NULL) receives the job object
 * (malloc'd). */
int sched_record_failed(struct sched *s, struct job *job, char **json, size_t *json_len);

/* The job object of id as JSON text (malloc'd, caller frees). */
int sched_job_json(struct sched *s, const char *id, char **json, size_t *json_len);

/* The job object plus its status (for the events stream). */
int sched_job_json_status(struct sched *s, const char *id, char **json, size_t *json_len,
                          enum job_status *status);

/* A copy of a job's record (job_free), from memory or the store: current,
 * unlike a status read, which may serve the status cache's copy of
 * another node's job (up to a second old). */
int sched_job_get(struct sched *s, const char *id, struct job **out);

/* The store's record of id, never memory's: for a caller that found the
 * job's files gone and must know whether another node expired them (this
 * node's copy of a finished job hears of that within a second). */
int sched_job_get_stored(struct sched *s, const char *id, struct job **out);

/* Cancel: a queued job never starts, a running one is stopped (within a
 * second) and its partial outputs removed. SCHED_ECONFLICT if it already
 * ended. *json receives the job object after the request. */
int sched_cancel(struct sched *s, const char *id, char **json, size_t *json_len);

/* {"jobs": [...], "next": cursor|null}: newest first, status < 0 for
 * all, before_seq 0 for the newest. */
int sched_list(struct sched *s, int status, int64_t before_seq, int limit, char **json,
               size_t *json_len);

struct sched_metrics {
    int64_t by_status[5];          /* jobs in each status (store + since) */
    int64_t queued, running;
    double duration_bounds[12];    /* seconds; histogram upper bounds */
    int64_t duration_buckets[12];  /* cumulative counts, last = +Inf */
    size_t n_buckets;
    double duration_sum;
    int64_t duration_count;
};

/* A snapshot of the counters for /metrics. */
void sched_get_metrics(struct sched *s, struct sched_metrics *m);

/* Drop finished job id from memory (its files were deleted or its row
 * forgotten: retention), so the next read is the store's. */
void sched_forget(struct sched *s, const char *id);

/* The store the scheduler was started with (borrowed). */
struct store *sched_store(struct sched *s);

#endif
