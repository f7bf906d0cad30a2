/*
 * sched_nodes.c - the scheduler's several-node side (see sched.h): what a
 * node does when the store is shared (store_is_shared: PostgreSQL) and
 * other nodes claim from the same queue.
 *
 * DESIGN
 *   The queue lives in the store, since other nodes claim from it too;
 *   sched.c's memory holds this node's running jobs and the finished ones
 *   (final, so never stale), and the status cache below holds copies of
 *   the queued jobs and of other nodes' running ones. The dispatcher
 *   (sched.c) claims when a slot is free and it was poked (a local
 *   submit) or SHARED_POLL_MS passed.
 *   STATUS CACHE: status reads of queued and remote jobs, and their
 *   queue_position, answered from memory within 1 s of the store. The
 *   watcher thread LISTENs (store_watch_*: a connection of its own; the
 *   store NOTIFYs each insert, update and delete of a job row in its
 *   transaction, payload id + status + seq) and refetches the jobs it
 *   hears of, FETCH_BATCH ids a query (sched_cache_apply: a queued copy
 *   goes into s->queue in claim order, a running one stays out of it, an
 *   ended one moves to the finished FIFO or is dropped, a deleted one is
 *   dropped). Local changes (submit, cancel through the store, requeue)
 *   touch the id too, so a read on this node right after its own change
 *   is current. Start, and each (re)open of the watch: LISTEN first, then
 *   a full refresh (every queued and running job; the cached ones it did
 *   not see are refetched, and the finished ones held: one may have
 *   expired or been deleted meanwhile), so no change falls between the
 *   two. Without a watch connection (lost: a database restart,
 *   pg_terminate_backend) a full refresh every FALLBACK_MS keeps active
 *   jobs within the 1 s bound until it is back (finished ones held are
 *   read again at the reconnect; meanwhile the sweeper drops those that
 *   expired, sweeper.c).
 *   Bounded: finished jobs in the FIFO's cap (older ones read from the
 *   store); at most --status-cache-jobs cached jobs, beyond which the cache
 *   turns off (copies dropped, reads and positions from the store, as
 *   before it) until the active jobs are down to half of it.
 *   Ticker: one thread, every TICK_MS, from sched_start to sched_stop:
 *     - remote cancel: stops local jobs whose cancel another node
 *       requested (store_cancel_requested);
 *     - dead nodes: requeues the running jobs of nodes that are no longer
 *       alive (store_requeue_running; the next attempt removes their files);
 *     - counts: refreshes /metrics and the --max-queued count from the
 *       store's job_counts (five rows kept by a trigger: no scan), but
 *       only after a quiet tick (no local queue change under
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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

enum {
    TICK_MS = 1000,
    WATCH_WAIT_MS = 200,      /* the watcher's longest sleep (stop, touched ids) */
    FALLBACK_MS = 500,        /* full refreshes while no watch connection */
    FETCH_BATCH = 256,        /* ids per refetch query */
};

/* ------------------------------------------------------- status cache */

static void on_change(void *opaque, const char *id)
{
    struct sched *s = opaque;
    pthread_mutex_lock(&s->lock);
    sched_cache_touch(s, id);
    pthread_mutex_unlock(&s->lock);
}

struct fetched {
    struct sched *s;
    const char *const *ids;
    size_t n;
    char *got;     /* got[i]: ids[i] came back */
    char *changed; /* changed[i]: memory changed for ids[i] (observers) */
    int *final;    /* final[i]: it ended */
    uint64_t gen;
};

static int on_row(void *opaque, const struct job *job)
{
    struct fetched *f = opaque;
    size_t i = 0;
    while (i < f->n && strcmp(f->ids[i], job->id) != 0)
        i++;
    pthread_mutex_lock(&f->s->lock);
    int changed = sched_cache_apply(f->s, job, f->gen);
    pthread_mutex_unlock(&f->s->lock);
    if (i < f->n) {
        f->got[i] = 1;
        f->changed[i] = (char)changed;
        f->final[i] = job_status_is_final(job->status);
    }
    return 0;
}

/* Read back ids[0..n) (one query each FETCH_BATCH), drop the ones gone,
 * tell observers. 0, or -1 if the store failed (they are touched again). */
static int refetch(struct sched *s, const char *const *ids, size_t n, uint64_t gen)
{
    int ret = 0;
    char *got = calloc(n ? n : 1, 2);
    int *final = calloc(n ? n : 1, sizeof(int));
    if (!got || !final) {
        ret = -1;
        goto out;
    }
    for (size_t at = 0; at < n; at += FETCH_BATCH) {
        size_t k = n - at < FETCH_BATCH ? n - at : FETCH_BATCH;
        struct fetched f = {s, ids + at, k, got + at, got + n + at, final + at, gen};
        if (store_job_get_many(s->st, ids + at, k, on_row, &f) != STORE_OK) {
            ret = -1;
            pthread_mutex_lock(&s->lock);
            for (size_t i = at; i < n; i++)
                sched_cache_touch(s, ids[i]);
            pthread_mutex_unlock(&s->lock);
            n = at; /* the rest is touched again: no verdict on them */
            break;
        }
    }
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++)
        if (!got[i]) /* deleted (retention) */
            sched_cache_gone(s, ids[i]);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++)
        if (got[n + i] || !got[i])
            sched_notify(s, ids[i], got[i] ? final[i] : 1);
out:
    free(got);
    free(final);
    return ret;
}

/* Refetch the touched ids. */
static void refetch_touched(struct sched *s)
{
    pthread_mutex_lock(&s->lock);
    char (*ids)[JOB_ID_SIZE] = s->pend;
    size_t n = s->n_pend;
    s->pend = NULL;
    s->n_pend = s->cap_pend = 0;
    pthread_mutex_unlock(&s->lock);
    const char **ptrs = n ? malloc(n * sizeof(*ptrs)) : NULL;
    if (n && !ptrs) {
        pthread_mutex_lock(&s->lock);
        s->pend_all = 1;
        pthread_mutex_unlock(&s->lock);
    }
    for (size_t i = 0; ptrs && i < n; i++)
        ptrs[i] = ids[i];
    if (ptrs)
        refetch(s, ptrs, n, 0);
    free(ptrs);
    free(ids);
}

static int on_active(void *opaque, const struct job *job)
{
    struct fetched *f = opaque;
    pthread_mutex_lock(&f->s->lock);
    sched_cache_apply(f->s, job, f->gen);
    pthread_mutex_unlock(&f->s->lock);
    return 0;
}

/* Every queued and running job read again; the cached ones it did not
 * see (they ended or were deleted meanwhile) refetched, and with
 * finished (a watch just (re)opened: changes may have been missed) the
 * finished ones held too (expired or deleted meanwhile). */
static void full_refresh(struct sched *s, int finished)
{
    pthread_mutex_lock(&s->lock);
    s->pend_all = 0;
    if (!s->cache_on && s->by_status[JOB_QUEUED] + s->by_status[JOB_RUNNING] <
                            s->cache_cap / 2) {
        s->cache_on = 1;
        log_info("status cache: back on (%lld active jobs)",
                 (long long)(s->by_status[JOB_QUEUED] + s->by_status[JOB_RUNNING]));
    }
    uint64_t gen = ++s->cache_gen;
    int on = s->cache_on;
    pthread_mutex_unlock(&s->lock);
    if (!on)
        return;
    struct fetched f = {s, NULL, 0, NULL, NULL, NULL, gen};
    if (store_job_list_active(s->st, on_active, &f) != STORE_OK) {
        log_error("status cache: cannot read the active jobs");
        pthread_mutex_lock(&s->lock);
        s->pend_all = 1;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_lock(&s->lock);
    for (unsigned b = 0; b < NBUCKETS; b++)
        for (struct sjob *j = s->buckets[b]; j; j = j->hnext)
            if ((j->cached && j->seen != gen) || (finished && j->in_finished))
                sched_cache_touch(s, j->job.id);
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, NULL, 0);
}

/* The watcher: LISTEN for job changes and refetch each changed job; while
 * there is no watch connection (not open yet, lost, the database down), a
 * full refresh every FALLBACK_MS instead. See STATUS CACHE. */
static void *watcher_main(void *arg)
{
    struct sched *s = arg;
    struct store_watch *w = NULL;
    double next_full = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        pthread_mutex_unlock(&s->lock);
        int full = 0, opened = 0;
        if (!w) {
            int rc = store_watch_open(s->st, &w);
            if (rc == STORE_OK)
                log_info("status cache: listening for job changes");
            /* LISTEN first, then read: a change after it is heard, one
             * before it is in the read. */
            opened = rc == STORE_OK;
            full = opened || job_now() >= next_full;
        }
        pthread_mutex_lock(&s->lock);
        full |= s->pend_all;
        /* Off (too many active jobs): back on when they are down to half. */
        full |= !s->cache_on && job_now() >= next_full &&
                s->by_status[JOB_QUEUED] + s->by_status[JOB_RUNNING] < s->cache_cap / 2;
        pthread_mutex_unlock(&s->lock);
        if (full) {
            full_refresh(s, opened);
            next_full = job_now() + FALLBACK_MS / 1000.0;
        }
        if (w) {
            if (store_watch_wait(w, WATCH_WAIT_MS, on_change, s) != STORE_OK) {
                log_warn("status cache: the watch connection broke; refreshing every %d ms "
                         "until it is back",
                         FALLBACK_MS);
                store_watch_close(&w);
            }
        } else {
            pthread_mutex_lock(&s->lock);
            struct timespec ts = clock_deadline(WATCH_WAIT_MS / 1000.0);
            if (!s->stopping)
                pthread_cond_timedwait(&s->changed, &s->lock, &ts);
            pthread_mutex_unlock(&s->lock);
        }
        refetch_touched(s);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    store_watch_close(&w);
    return NULL;
}

static void on_remote_cancel(void *opaque, const char *id)
{
    struct sched *s = opaque;
    pthread_mutex_lock(&s->lock);
    struct sjob *j = sched_find(s, id);
    if (j && j->job.status == JOB_RUNNING && !j->cached && !j->cancel_requested) {
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
    /* Its files stay: the job may already be claimed again, and its next
     * attempt, in a folder of its own, removes the older ones (job.h). */
    (void)s;
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
    if (pthread_create(&s->watcher, NULL, watcher_main, s) != 0) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        sched_nodes_stop(s);
        return -1;
    }
    s->has_watcher = 1;
    return 0;
}

/* Called once s->stopping is set. */
void sched_nodes_stop(struct sched *s)
{
    if (s->has_ticker) {
        pthread_join(s->ticker, NULL);
        s->has_ticker = 0;
    }
    if (s->has_watcher) {
        pthread_join(s->watcher, NULL);
        s->has_watcher = 0;
    }
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
        /* The status cache sees the change now (a read on this node right
         * after it), as well as when its notification comes. */
        pthread_mutex_lock(&s->lock);
        sched_cache_apply(s, job, 0);
        pthread_mutex_unlock(&s->lock);
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
        /* Claimed by this node between the lookup and the request: stop
         * it now rather than at the next tick. Claimed here but not yet
         * in memory: the tick stops it, or its end is stored canceled
         * (store_job_finish_attempt). */
        on_remote_cancel(s, id);
        log_info("job cancel requested id=%s (running)", id);
    }
    job_free(&job);
    return ret;
}
