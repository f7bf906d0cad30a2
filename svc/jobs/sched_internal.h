/*
 * sched_internal.h - what the scheduler's three files share (internal to
 * svc/jobs/sched*.c; callers use sched.h): sched.c, the local queue, the
 * dispatcher and the public calls; sched_runner.c, a running job's thread;
 * sched_nodes.c, the coordination of several nodes on a shared store. The state and its locking are told in sched.c's
 * DESIGN comment.
 */
#ifndef VIDQ_SCHED_INTERNAL_H
#define VIDQ_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobs/sched.h"

enum { NBUCKETS = 4096, RUNNERS_MAX = 512 };

enum { N_DURATION = 11 }; /* sched.c's duration_bounds */

struct sjob {
    struct job job;
    struct sched *sched;
    struct sjob *hnext;            /* hash chain */
    struct sjob *prev, *next;      /* the queue, or the finished FIFO */
    int in_queue, in_finished;
    int cancel_pending;            /* a cancel of this queued job is in the store */
    int cancel_requested;          /* stop it as soon as it runs */
    int requeue;                   /* stopping for shutdown, not cancel */
    int ending;                    /* its runner decided the outcome: a
                                    * cancel now is too late (409) */
    int lost;                      /* shared store: another node has it now */
    atomic_int stop;               /* read by the worker's supervisor */
    int wake_fd;                   /* eventfd that wakes the supervisor; -1 */
    pid_t pid;
    double last_persist;
    char *json;                    /* rendered job object */
    size_t json_len;
    int dirty;
    uint64_t qver;                 /* s->qver when rendered (queued jobs) */
    int cached;                    /* shared store: a copy of the store's row
                                    * (queued, or run by another node), kept
                                    * current by the status cache */
    uint64_t seen;                 /* the cache's refresh that last saw it */
};

struct list_head {
    struct sjob *head, *tail;
    int n;
};

struct sched {
    struct sched_config cfg;
    char data_dir[1024];
    char exe[1024];
    struct store *st;
    pthread_mutex_t lock;
    pthread_cond_t wake;           /* dispatcher: slot freed / job ready / stop */
    pthread_cond_t changed;        /* sched_stop: a runner ended */
    struct sjob *buckets[NBUCKETS];
    struct list_head queue;        /* queued jobs, in start order */
    struct list_head finished;     /* finished jobs kept for fast reads */
    int n_ready;                   /* queued and not being canceled */
    int n_reserved;                /* submits between the check and the insert */
    int n_running;
    uint64_t qver;
    int stopping;
    int stopped;                   /* sched_stop is done: no thread left */
    pthread_t dispatcher;
    pthread_t ended[RUNNERS_MAX];  /* runners that ended, to be joined */
    int n_ended;
    int64_t by_status[5];
    int64_t dur_buckets[N_DURATION + 1];
    double dur_sum;
    int64_t dur_count;
    /* shared store only */
    int shared;
    int poke;                      /* a submit: claim now */
    int64_t shared_queued;         /* queued jobs in the store, last tick
                                    * plus this node's changes since */
    uint64_t shared_gen;           /* bumped by each local change of it */
    int shared_inflight;           /* store calls that change it, under way */
    pthread_t ticker;
    int has_ticker;
    /* shared store: the status cache (sched_nodes.c's STATUS CACHE) */
    int cache_on;                  /* s->queue holds every queued job */
    int cache_cap;                 /* cfg.status_cache_jobs or the default */
    int n_cached;                  /* jobs with cached set */
    uint64_t cache_gen;            /* full refreshes */
    char (*pend)[JOB_ID_SIZE];     /* ids to refetch */
    size_t n_pend, cap_pend;
    int pend_all;                  /* a full refresh is due */
    pthread_t watcher;
    int has_watcher;
};

/* Jobs the status cache holds at most (queued and other nodes' running)
 * unless cfg.status_cache_jobs says; beyond it, it stops (reads go to the
 * store) until the store's active jobs are down to half. */
enum { SCHED_CACHE_JOBS = 20000 };

/* sched.c. Caller holds s->lock for sched_find and sched_stop_job, and not
 * for sched_notify. */
struct sjob *sched_find(struct sched *s, const char *id);
void sched_stop_job(struct sjob *j);           /* ask j's runner to stop now */
void sched_notify(struct sched *s, const char *id, int final);
void sched_count_move(struct sched *s, int from, int to); /* by_status; -1: none */
int sched_from_store(int rc);                  /* STORE_E* -> SCHED_E* */

/* Memory, for sched_runner.c (sched.c; caller holds s->lock): take j out
 * of the id hash, keep it among the finished jobs, free a job no longer
 * linked anywhere (NULL: nothing), and count a finished run's duration. */
void sched_hash_remove(struct sched *s, struct sjob *j);
void sched_finished_add(struct sched *s, struct sjob *j);
void sched_sjob_free(struct sjob *j);
void sched_count_duration(struct sched *s, double seconds);

/* sched_runner.c: the thread of one running job, from the dispatcher's
 * claim to its end in the store and in memory. arg is a malloc'd struct
 * sched_runner, which it frees; its last act is to free the job's slot
 * and ask the dispatcher to join it. */
struct sched_runner {
    struct sjob *j;
    struct sched *s;
    char id[JOB_ID_SIZE];
};
void *sched_runner_main(void *arg);

/* The status cache's side of memory (sched.c; caller holds s->lock):
 * apply a row just read from the store (1 if memory changed, observers
 * to tell; gen: the refresh it belongs to, or 0), drop a job that is gone
 * from the store, queue an id to refetch (0, or -1 out of memory: a full
 * refresh is then due), and drop every cached job (the cache stops). Jobs
 * this node runs are left alone: memory is their truth. */
int sched_cache_apply(struct sched *s, const struct job *row, uint64_t gen);
void sched_cache_gone(struct sched *s, const char *id);
void sched_cache_touch(struct sched *s, const char *id);
void sched_cache_clear(struct sched *s);

/* The job object of a job this node does not hold (with its queue
 * position when queued: pos, or < 0 to ask a shared store) into *json
 * (malloc'd) and *len; nothing when json is NULL. */
int sched_dump_stored(struct sched *s, const struct job *job, long pos, char **json,
                      size_t *len);

/* sched_nodes.c: the ticker thread (0, or -1 if it cannot start) and its
 * join; a 429 confirmed against the store (called unlocked); a cancel of
 * a job this node does not hold (sched_cancel's contract; called with
 * s->lock held, returns with it released). */
int sched_nodes_start(struct sched *s);
void sched_nodes_stop(struct sched *s);
int sched_nodes_still_full(struct sched *s);
int sched_nodes_cancel(struct sched *s, const char *id, char **json, size_t *json_len);

#endif
