/*
 * sched_nodes.c - the scheduler's several-node side (see sched.h): what a
 * node does when the store is shared (store_is_shared: PostgreSQL) and
 * other nodes claim from the same queue.
 *
 * DESIGN
 *   The queue lives in the store only, since other nodes claim from it
 *   too; sched.c's memory holds this node's running jobs and the finished
 *   ones (final, so never stale); a queued job or another node's running
 *   job is read from the store (its queue_position by a count query). The
 *   dispatcher (sched.c) claims when a slot is free and it was poked (a
 *   local submit) or SHARED_POLL_MS passed.
 *   Ticker: one thread, every TICK_MS, from sched_start to sched_stop:
 *     - remote cancel: stops local jobs whose cancel another node
 *       requested (store_cancel_requested);
 *     - dead nodes: requeues the running jobs of nodes that are no longer
 *       alive (store_requeue_running; their partial outputs removed);
 *     - counts: refreshes /metrics and the --max-queued count from the
 *       store, but only after a quiet tick (no local queue change under
 *       way, shared_inflight / shared_gen), so a count taken while this
 *       node queued, claimed or canceled a job cannot undo that change;
 *     - tells observers that jobs other nodes run may have changed.
 *   A 429 is confirmed by counting the store's queue again (the ticker's
 *   count can run ahead of it). A cancel of a job this node does not hold
 *   goes through the store (store_job_cancel_request): a queued job ends
 *   there, a running one is flagged for its node's ticker.
 *   Threads and locking: the ticker takes s->lock as sched.c does, never
 *   across a store or observer call.
 */
#include "jobs/sched_internal.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

enum { TICK_MS = 1000 };

static void on_remote_cancel(void *opaque, const char *id)
{
    struct sched *s = opaque;
    pthread_mutex_lock(&s->lock);
    struct sjob *j = sched_find(s, id);
    if (j && j->job.status == JOB_RUNNING && !j->cancel_requested) {
        j->cancel_requested = 1;
        j->dirty = 1;
        sched_stop_job(j);
        log_info("job cancel requested id=%s (through the store)", id);
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_orphan_requeued(void *opaque, const char *id)
{
    struct sched *s = opaque;
    log_info("job requeued id=%s (its node is gone)", id);
    job_remove_outputs(s->data_dir, id);
}

static void *ticker_main(void *arg)
{
    struct sched *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        uint64_t gen = s->shared_gen;
        int quiet = s->shared_inflight == 0;
        pthread_mutex_unlock(&s->lock);
        int64_t counts[5];
        if (store_cancel_requested(s->st, on_remote_cancel, s) != STORE_OK)
            log_error("cannot read the cancels requested through the store");
        if (store_requeue_running(s->st, on_orphan_requeued, s) != STORE_OK)
            log_error("cannot requeue the jobs of dead nodes");
        int counted = store_count_by_status(s->st, counts) == STORE_OK;
        pthread_mutex_lock(&s->lock);
        /* A count taken while this node queued, claimed or canceled a
         * job may miss that change: keep ours until a quiet tick. */
        if (counted && quiet && s->shared_inflight == 0 && gen == s->shared_gen) {
            memcpy(s->by_status, counts, sizeof(counts));
            s->shared_queued = counts[JOB_QUEUED];
            if (counts[JOB_QUEUED] > 0)
                pthread_cond_signal(&s->wake); /* a requeued or remote job may wait */
        }
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->lock);
        sched_notify(s, NULL, 0); /* event streams of jobs that other nodes run */
        pthread_mutex_lock(&s->lock);
        if (s->stopping)
            break;
        struct timespec ts = clock_deadline(TICK_MS / 1000.0);
        pthread_cond_timedwait(&s->changed, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int sched_nodes_start(struct sched *s)
{
    if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0)
        return -1;
    s->has_ticker = 1;
    return 0;
}

void sched_nodes_stop(struct sched *s)
{
    if (!s->has_ticker)
        return;
    pthread_join(s->ticker, NULL);
    s->has_ticker = 0;
}

/* With a shared store the queued count is the last quiet tick's and can
 * run ahead of the store (a claim or cancel between the count and its
 * use): before refusing with 429, count again. Called unlocked; on a
 * store error the refusal stands. */
int sched_nodes_still_full(struct sched *s)
{
    int64_t counts[5];
    if (store_count_by_status(s->st, counts) != STORE_OK)
        return 1;
    pthread_mutex_lock(&s->lock);
    int full = counts[JOB_QUEUED] + s->n_reserved >= s->cfg.max_queued;
    pthread_mutex_unlock(&s->lock);
    return full;
}

int sched_nodes_cancel(struct sched *s, const char *id, char **json, size_t *json_len)
{
    int ret;
    s->shared_inflight++; /* before the lock is let go: no tick sees a gap */
    pthread_mutex_unlock(&s->lock);
    int running = 0;
    int rc = store_job_cancel_request(s->st, id, &running);
    pthread_mutex_lock(&s->lock);
    s->shared_inflight--;
    s->shared_gen++;
    if (rc == STORE_OK && !running && s->shared_queued > 0)
        s->shared_queued--;
    pthread_mutex_unlock(&s->lock);
    struct job *job = NULL;
    ret = sched_from_store(store_job_get(s->st, id, &job));
    if (ret == SCHED_OK) {
        if (sched_dump_stored(s, job, -1, json, json_len) < 0)
            ret = SCHED_ENOMEM;
        else if (rc != STORE_OK)
            ret = sched_from_store(rc);
    }
    if (rc == STORE_OK && !running) {
        pthread_mutex_lock(&s->lock);
        sched_count_move(s, JOB_QUEUED, JOB_CANCELED);
        pthread_mutex_unlock(&s->lock);
        log_info("job canceled id=%s (queued)", id);
        sched_notify(s, id, 1);
    } else if (rc == STORE_OK) {
        log_info("job cancel requested id=%s (running on another node)", id);
    }
    job_free(&job);
    return ret;
}
