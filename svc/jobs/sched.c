/*
 * sched.c - the scheduler (see sched.h): the local queue, the dispatcher
 * and the public calls; a running job's thread (its runner) is
 * sched_runner.c, the several-node side sched_nodes.c.
 *
 * DESIGN
 *   Threads: one dispatcher thread; one runner thread per running job
 *   (it supervises the job's worker, see worker.c; the dispatcher joins it
 *   when it ends); callers from
 *   the HTTP threads. One mutex (s->lock) guards all in-memory state; it is
 *   never held across a store call, a worker call or an observer call.
 *   State: the store is the durable truth; memory holds a view of every
 *   queued and running job and of the last FINISHED_CAP finished ones
 *   (older ones are read back from the store). Each cached job keeps its
 *   rendered JSON, re-rendered lazily when it changed (dirty) or, for a
 *   queued job, when the queue changed (qver), so a status read is a hash
 *   lookup and a memcpy under the lock.
 *   Queue: queued jobs in a list ordered by (priority desc, seq asc), the
 *   same order as the store's claim-next, so queue_position is exact.
 *   Start of a job: the dispatcher sleeps on a condition variable until a
 *   slot is free and a job is ready; submit, cancel and a runner's end
 *   signal it, so a freed slot starts the next job at once (no polling).
 *   It claims the next job in the store (one transaction: queued ->
 *   running, attempts + 1), then starts a runner.
 *   Cancel of a queued job goes through the store first (queued ->
 *   canceled only if still queued); if the dispatcher claimed it in the
 *   meantime the job is flagged and its runner stops it at once.
 *   End of a job: the runner writes the outcome to the store (one
 *   transaction), then updates memory and wakes the dispatcher.
 *   Stop: no new claims; running jobs get the grace period, then are
 *   stopped and requeued in the store (their partial outputs removed).
 *   Shared store (several nodes on one PostgreSQL, store_is_shared): the
 *   queue is the store's. Memory holds this node's running jobs (their
 *   truth), the finished ones, and, as copies flagged cached, every
 *   queued job (in s->queue, so queue_position is computed as above) and
 *   the jobs other nodes run: the status cache, kept within a second of
 *   the store by sched_nodes.c (sched_cache_* below apply what it reads).
 *   The dispatcher claims when a slot is free and a local submit poked it
 *   or SHARED_POLL_MS passed (a cached copy it claims becomes its own),
 *   and a runner writes a job's end before removing its files. Each
 *   attempt writes in a folder of its own and ends the job fenced on its
 *   attempt number (job.h "Fenced attempts"). The rest
 *   of it (the ticker: remote cancels, requeue of dead nodes, counts; the
 *   status cache's watcher; cancels through the store) is in
 *   sched_nodes.c.
 */
#define _GNU_SOURCE /* also sched_getaffinity, CPU_COUNT */
#include "jobs/sched.h"
#include "jobs/sched_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"

/* PEND_MAX: ids waiting to be refetched; beyond, a full refresh. */
enum { PEND_MAX = 65536, FINISHED_CAP = 4096, SHARED_POLL_MS = 500 };

static const double duration_bounds[N_DURATION] = {1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

/* ------------------------------------------------------ memory helpers */

static unsigned hash_id(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % NBUCKETS;
}

struct sjob *sched_find(struct sched *s, const char *id)
{
    for (struct sjob *j = s->buckets[hash_id(id)]; j; j = j->hnext)
        if (strcmp(j->job.id, id) == 0)
            return j;
    return NULL;
}

/* sched_find(), but a finished job whose files expired is left to the store,
 * which knows whether it was swept or forgotten since (retention). */
static struct sjob *find_unexpired(struct sched *s, const char *id)
{
    struct sjob *j = sched_find(s, id);
    if (j && j->in_finished && job_is_expired(&j->job, job_now()))
        return NULL;
    return j;
}

static void hash_insert(struct sched *s, struct sjob *j)
{
    unsigned h = hash_id(j->job.id);
    j->hnext = s->buckets[h];
    s->buckets[h] = j;
}

void sched_hash_remove(struct sched *s, struct sjob *j)
{
    struct sjob **pp = &s->buckets[hash_id(j->job.id)];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = j->hnext;
}

static void list_unlink(struct list_head *l, struct sjob *j)
{
    *(j->prev ? &j->prev->next : &l->head) = j->next;
    *(j->next ? &j->next->prev : &l->tail) = j->prev;
    j->prev = j->next = NULL;
    l->n--;
}

static void list_insert_after(struct list_head *l, struct sjob *after, struct sjob *j)
{
    j->prev = after;
    j->next = after ? after->next : l->head;
    if (j->next)
        j->next->prev = j;
    else
        l->tail = j;
    if (after)
        after->next = j;
    else
        l->head = j;
    l->n++;
}

static int runs_before(const struct job *a, const struct job *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->seq < b->seq);
}

static void queue_insert(struct sched *s, struct sjob *j)
{
    struct sjob *after = s->queue.tail;
    while (after && runs_before(&j->job, &after->job))
        after = after->prev;
    list_insert_after(&s->queue, after, j);
    j->in_queue = 1;
    if (!j->cancel_pending)
        s->n_ready++;
    s->qver++;
}

static void queue_remove(struct sched *s, struct sjob *j)
{
    if (!j->in_queue)
        return;
    list_unlink(&s->queue, j);
    j->in_queue = 0;
    if (!j->cancel_pending)
        s->n_ready--;
    s->qver++;
}

void sched_sjob_free(struct sjob *j)
{
    if (!j)
        return;
    job_clear(&j->job);
    free(j->json);
    free(j);
}

static struct sjob *sjob_new(struct sched *s, const struct job *job)
{
    struct sjob *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    if (job_copy(&j->job, job) < 0) {
        free(j);
        return NULL;
    }
    j->sched = s;
    j->dirty = 1;
    j->wake_fd = -1;
    return j;
}

/* A job ended: keep it among the recent finished ones, evicting the
 * oldest beyond the cap. */
void sched_finished_add(struct sched *s, struct sjob *j)
{
    list_insert_after(&s->finished, s->finished.tail, j);
    j->in_finished = 1;
    while (s->finished.n > FINISHED_CAP) {
        struct sjob *old = s->finished.head;
        list_unlink(&s->finished, old);
        sched_hash_remove(s, old);
        sched_sjob_free(old);
    }
}

static long queue_position(struct sched *s, const struct sjob *j)
{
    long pos = 0;
    for (const struct sjob *q = s->queue.head; q; q = q->next) {
        if (!q->cancel_pending)
            pos++;
        if (q == j)
            return pos;
    }
    return 0;
}

/* ----------------------------------------------- the status cache's side */

/* j's record becomes row's (on failure it stays as it was). */
static int sjob_set(struct sjob *j, const struct job *row)
{
    struct job copy;
    if (job_copy(&copy, row) < 0)
        return -1;
    job_clear(&j->job);
    j->job = copy;
    j->dirty = 1;
    return 0;
}

/* Forget cached job j (out of the queue, the table and memory). */
static void cache_drop(struct sched *s, struct sjob *j)
{
    queue_remove(s, j);
    sched_hash_remove(s, j);
    if (j->cached)
        s->n_cached--;
    sched_sjob_free(j);
}

void sched_cache_clear(struct sched *s)
{
    for (unsigned b = 0; b < NBUCKETS; b++)
        for (struct sjob *j = s->buckets[b], *nx; j; j = nx) {
            nx = j->hnext;
            if (j->cached)
                cache_drop(s, j);
        }
}

int sched_cache_apply(struct sched *s, const struct job *row, uint64_t gen)
{
    struct sjob *j = sched_find(s, row->id);
    if (j && !j->cached && !j->in_finished)
        return 0; /* this node runs it */
    if (job_status_is_final(row->status)) {
        /* A final job is kept only if it was held already (the others
         * are read from the store when asked, then kept). */
        if (!j)
            return 0;
        if (sjob_set(j, row) < 0) { /* better missing (read from the store) than stale */
            sched_cache_gone(s, row->id);
            return 1;
        }
        queue_remove(s, j);
        if (j->cached) {
            j->cached = 0;
            s->n_cached--;
        }
        if (!j->in_finished)
            sched_finished_add(s, j);
        return 1;
    }
    if (j && j->in_finished)
        return 0; /* ended: never active again (a stale row) */
    if (!s->cache_on) {
        if (j)
            cache_drop(s, j);
        return 0;
    }
    if (!j) {
        if (s->n_cached >= s->cache_cap) {
            log_warn("status cache: more than %d active jobs, reads of queued jobs and of "
                     "other nodes' go to the store until they are down to %d",
                     s->cache_cap, s->cache_cap / 2);
            s->cache_on = 0;
            sched_cache_clear(s);
            return 0;
        }
        j = sjob_new(s, row);
        if (!j)
            return 0;
        j->cached = 1;
        s->n_cached++;
        hash_insert(s, j);
    } else {
        int moved = j->in_queue && (j->job.priority != row->priority || j->job.seq != row->seq);
        if (moved)
            queue_remove(s, j);
        if (sjob_set(j, row) < 0) {
            cache_drop(s, j); /* better missing (read from the store) than stale */
            return 1;
        }
    }
    j->seen = gen;
    if (row->status == JOB_QUEUED && !j->in_queue)
        queue_insert(s, j);
    else if (row->status != JOB_QUEUED && j->in_queue)
        queue_remove(s, j);
    return 1;
}

void sched_cache_gone(struct sched *s, const char *id)
{
    struct sjob *j = sched_find(s, id);
    if (!j || (!j->cached && !j->in_finished))
        return;
    if (j->in_finished) {
        list_unlink(&s->finished, j);
        j->in_finished = 0;
        sched_hash_remove(s, j);
        sched_sjob_free(j);
        return;
    }
    cache_drop(s, j);
}

void sched_cache_touch(struct sched *s, const char *id)
{
    if (!s->shared)
        return;
    for (size_t i = 0; i < s->n_pend; i++)
        if (strcmp(s->pend[i], id) == 0)
            return;
    if (s->n_pend == s->cap_pend) {
        size_t cap = s->cap_pend ? 2 * s->cap_pend : 64;
        void *grown = cap <= PEND_MAX ? realloc(s->pend, cap * sizeof(s->pend[0])) : NULL;
        if (!grown) {
            s->pend_all = 1; /* a full refresh covers it */
            return;
        }
        s->pend = grown;
        s->cap_pend = cap;
    }
    snprintf(s->pend[s->n_pend++], JOB_ID_SIZE, "%s", id);
}

/* Make j->json current. Caller holds the lock. */
static int render(struct sched *s, struct sjob *j)
{
    if (!j->dirty && j->json && (j->job.status != JOB_QUEUED || j->qver == s->qver))
        return 0;
    json_t *obj = job_to_json(&j->job, j->job.status == JOB_QUEUED ? queue_position(s, j) : 0);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return -1;
    free(j->json);
    j->json = text;
    j->json_len = strlen(text);
    j->dirty = 0;
    j->qver = s->qver;
    return 0;
}

static int copy_json(struct sched *s, struct sjob *j, char **json, size_t *len)
{
    if (!json)
        return 0;
    if (render(s, j) < 0)
        return SCHED_ENOMEM;
    *json = malloc(j->json_len + 1);
    if (!*json)
        return SCHED_ENOMEM;
    memcpy(*json, j->json, j->json_len + 1);
    if (len)
        *len = j->json_len;
    return 0;
}

int sched_dump_stored(struct sched *s, const struct job *job, long pos, char **json,
                      size_t *len)
{
    if (!json)
        return 0;
    if (pos < 0 && (job->status != JOB_QUEUED || !s->shared ||
                    store_queue_position(s->st, job->id, &pos) != STORE_OK))
        pos = 0;
    json_t *obj = job_to_json(job, pos);
    *json = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!*json)
        return SCHED_ENOMEM;
    if (len)
        *len = strlen(*json);
    return 0;
}

/* Ask the runner of j to stop its worker now. Caller holds the lock. */
void sched_stop_job(struct sjob *j)
{
    atomic_store(&j->stop, 1);
    if (j->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(j->wake_fd, &one, sizeof(one));
        (void)w;
    }
}

void sched_notify(struct sched *s, const char *id, int final)
{
    if (s->cfg.observer)
        s->cfg.observer(s->cfg.observer_opaque, id, final);
}

void sched_count_move(struct sched *s, int from, int to)
{
    if (from >= 0 && s->by_status[from] > 0)
        s->by_status[from]--;
    if (to >= 0)
        s->by_status[to]++;
}

void sched_count_duration(struct sched *s, double d)
{
    for (int b = 0; b <= N_DURATION; b++)
        if (b == N_DURATION || d <= duration_bounds[b])
            s->dur_buckets[b]++;
    s->dur_sum += d;
    s->dur_count++;
}

int sched_from_store(int rc)
{
    switch (rc) {
    case STORE_OK: return SCHED_OK;
    case STORE_ENOTFOUND: return SCHED_ENOTFOUND;
    case STORE_ECONFLICT: return SCHED_ECONFLICT;
    case STORE_ENOMEM: return SCHED_ENOMEM;
    default: return SCHED_EIO;
    }
}

/* CPUs this process may run on (its affinity mask), at least 1. */
static int usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* --------------------------------------------------------- dispatcher */

/* Join the runners that ended. Caller holds the lock; it is released
 * while joining. */
static void join_ended(struct sched *s)
{
    while (s->n_ended > 0) {
        pthread_t th = s->ended[--s->n_ended];
        pthread_mutex_unlock(&s->lock);
        pthread_join(th, NULL);
        pthread_mutex_lock(&s->lock);
    }
}

static void *dispatcher_main(void *arg)
{
    struct sched *s = arg;
    pthread_mutex_lock(&s->lock);
    double next_poll = 0; /* shared store: when to look for work again */
    for (;;) {
        join_ended(s);
        if (s->shared) {
            /* The queue is in the store: claim when a slot is free and a
             * submit poked us or the poll interval passed. */
            while (!s->stopping && s->n_ended == 0 &&
                   !(s->n_running < s->cfg.max_concurrent &&
                     (s->poke || job_now() >= next_poll))) {
                if (s->n_running >= s->cfg.max_concurrent) {
                    pthread_cond_wait(&s->wake, &s->lock);
                    continue;
                }
                struct timespec ts;
                double until = next_poll;
                ts.tv_sec = (time_t)until;
                ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
                pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            }
            s->poke = 0;
        } else {
            while (!s->stopping && s->n_ended == 0 &&
                   !(s->n_running < s->cfg.max_concurrent && s->n_ready > 0))
                pthread_cond_wait(&s->wake, &s->lock);
        }
        if (s->n_ended > 0 && !s->stopping)
            continue;
        if (s->stopping)
            break;
        s->n_running++; /* the slot is ours while we claim */
        s->shared_inflight++;
        pthread_mutex_unlock(&s->lock);

        struct job *claimed = NULL;
        int rc = store_job_claim_next(s->st, &claimed);

        pthread_mutex_lock(&s->lock);
        s->shared_inflight--;
        s->shared_gen++;
        if (rc != STORE_OK && s->shared) {
            /* Nothing queued in the store (or it failed): look again at
             * the next poll or submit. */
            s->n_running--;
            next_poll = job_now() + SHARED_POLL_MS / 1000.0;
            if (rc != STORE_ENOTFOUND)
                log_error("claiming the next job failed: %s", store_strerror(rc));
            continue;
        }
        next_poll = 0; /* claimed: there may be more */
        if (rc == STORE_OK && s->shared && s->shared_queued > 0)
            s->shared_queued--;
        if (rc != STORE_OK) {
            s->n_running--;
            /* Nothing claimable although memory says ready: a cancel or a
             * submit is between the store and memory; look again shortly. */
            struct timespec ts = clock_deadline(rc == STORE_ENOTFOUND ? 0.005 : 0.5);
            if (rc != STORE_ENOTFOUND)
                log_error("claiming the next job failed: %s", store_strerror(rc));
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            continue;
        }
        struct sjob *j = sched_find(s, claimed->id);
        if (j && s->shared && !j->cached && j->job.status == JOB_RUNNING) {
            /* A runner here still has an older attempt: this node was
             * presumed dead, and took the job again. That attempt is
             * stale (its end would be refused): stop it, and let the new
             * attempt have an entry of its own. */
            log_warn("job claimed again id=%s attempt=%d: stopping the stale attempt here",
                     claimed->id, claimed->attempts);
            j->lost = 1;
            sched_stop_job(j);
            sched_hash_remove(s, j);
            j = NULL;
        }
        if (!j) { /* claimed before its submit reached memory */
            j = sjob_new(s, claimed);
            if (j)
                hash_insert(s, j);
        } else {
            queue_remove(s, j);
            if (j->cached) { /* the status cache's copy: this node's job now */
                j->cached = 0;
                s->n_cached--;
            }
            if (!s->shared || sjob_set(j, claimed) < 0) {
                j->job.status = JOB_RUNNING;
                j->job.started_at = claimed->started_at;
                j->job.attempts = claimed->attempts;
                memset(&j->job.progress, 0, sizeof(j->job.progress));
                j->job.progress.eta_s = -1;
            }
        }
        struct sched_runner *r = j ? calloc(1, sizeof(*r)) : NULL;
        pthread_t th;
        if (r) {
            r->j = j;
            r->s = s;
            snprintf(r->id, sizeof(r->id), "%s", claimed->id);
            j->dirty = 1;
            if (j->cancel_pending || j->cancel_requested)
                sched_stop_job(j);
            sched_count_move(s, JOB_QUEUED, JOB_RUNNING);
        }
        if (!r || pthread_create(&th, NULL, sched_runner_main, r) != 0) {
            /* Cannot run it now: back to the queue in the store. */
            log_error("cannot start a runner for job %s", claimed->id);
            free(r);
            s->n_running--;
            pthread_mutex_unlock(&s->lock);
            store_job_requeue(s->st, claimed->id);
            pthread_mutex_lock(&s->lock);
            if (j && s->shared) {
                sched_hash_remove(s, j); /* the store's again */
                sched_sjob_free(j);
                sched_cache_touch(s, claimed->id);
            } else if (j) {
                j->job.status = JOB_QUEUED;
                queue_insert(s, j);
            }
        } else {
            log_info("job started id=%s attempt=%d", claimed->id, claimed->attempts);
        }
        char id[JOB_ID_SIZE];
        snprintf(id, sizeof(id), "%s", claimed->id);
        job_free(&claimed);
        pthread_mutex_unlock(&s->lock);
        sched_notify(s, id, 0);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* -------------------------------------------------------------- public */

/* Free s and every job it holds (no thread of it left). */
static void destroy(struct sched *s)
{
    for (unsigned b = 0; b < NBUCKETS; b++)
        for (struct sjob *j = s->buckets[b], *nx; j; j = nx) {
            nx = j->hnext;
            sched_sjob_free(j);
        }
    free(s->pend);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int load_active(void *opaque, const struct job *job)
{
    struct sched *s = opaque;
    if (job->status != JOB_QUEUED) /* running ones were requeued by the caller */
        return 0;
    struct sjob *j = sjob_new(s, job);
    if (!j)
        return 1;
    hash_insert(s, j);
    queue_insert(s, j);
    return 0;
}

int sched_start(struct store *st, const struct sched_config *cfg, struct sched **out)
{
    int ret = SCHED_ENOMEM;
    struct sched *s = calloc(1, sizeof(*s));
    if (!s)
        return ret;
    s->cfg = *cfg;
    snprintf(s->data_dir, sizeof(s->data_dir), "%s", cfg->data_dir);
    snprintf(s->exe, sizeof(s->exe), "%s", cfg->exe ? cfg->exe : "/proc/self/exe");
    s->cfg.data_dir = s->data_dir;
    s->cfg.exe = s->exe;
    if (s->cfg.max_concurrent < 1)
        s->cfg.max_concurrent = 1;
    int cores = usable_cores();
    if (s->cfg.job_threads <= 0 && cores / s->cfg.max_concurrent < cores) {
        /* N jobs on C cores: C/N cores' worth of codec threads each, so
         * that the jobs together keep every core busy without C x N
         * threads fighting. One job at a time keeps 0: every codec picks
         * its own count for all the cores, exactly as the ffmpeg CLI. */
        s->cfg.job_threads = cores / s->cfg.max_concurrent;
        if (s->cfg.job_threads < 1)
            s->cfg.job_threads = 1;
    }
    s->st = st;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->shared = store_is_shared(st);
    s->cache_on = s->shared;
    s->cache_cap = cfg->status_cache_jobs > 0 ? cfg->status_cache_jobs : SCHED_CACHE_JOBS;
    s->pend_all = s->shared; /* the status cache's first fill */
    ret = SCHED_EIO;
    /* Shared store: nothing to load, the queue stays in the store. */
    if (store_count_by_status(st, s->by_status) != STORE_OK ||
        (!s->shared && store_job_list_active(st, load_active, s) != STORE_OK))
        goto fail;
    s->shared_queued = s->by_status[JOB_QUEUED];
    if (pthread_create(&s->dispatcher, NULL, dispatcher_main, s) != 0)
        goto fail;
    if (s->shared && sched_nodes_start(s) != 0) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        pthread_cond_broadcast(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->dispatcher, NULL);
        goto fail;
    }
    log_info("scheduler started queued=%lld max_concurrent=%d isolation=%s cores=%d "
             "job_threads=%d shared=%d node_id=%s",
             (long long)(s->shared ? s->shared_queued : s->queue.n), s->cfg.max_concurrent,
             s->cfg.isolation == WORKER_THREAD ? "thread" : "process", cores, s->cfg.job_threads,
             s->shared, s->shared ? store_node_id(st) : "-");
    *out = s;
    return SCHED_OK;
fail:
    s->stopping = 1;
    destroy(s);
    return ret;
}

void sched_stop(struct sched *s, double grace_s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->stopping = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->dispatcher, NULL);
    /* Before the grace period: a cancel from another node during it is
     * not seen (the job is requeued or ends on its own). */
    sched_nodes_stop(s);

    struct timespec deadline = clock_deadline(grace_s);
    pthread_mutex_lock(&s->lock);
    if (s->n_running > 0)
        log_info("stopping: %d running job(s) get %.0f s to finish", s->n_running, grace_s);
    while (s->n_running > 0)
        if (pthread_cond_timedwait(&s->changed, &s->lock, &deadline) == ETIMEDOUT)
            break;
    for (unsigned b = 0; b < NBUCKETS; b++)
        for (struct sjob *j = s->buckets[b]; j; j = j->hnext)
            if (j->job.status == JOB_RUNNING && !j->cached) { /* not another node's */
                j->requeue = 1;
                sched_stop_job(j);
            }
    while (s->n_running > 0)
        pthread_cond_wait(&s->changed, &s->lock);
    join_ended(s);
    s->stopped = 1;
    pthread_mutex_unlock(&s->lock);
}

void sched_free(struct sched **pp)
{
    if (!pp || !*pp)
        return;
    struct sched *s = *pp;
    sched_stop(s, 0);
    destroy(s);
    *pp = NULL;
}

int sched_queue_full(struct sched *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t queued = s->shared ? s->shared_queued : s->queue.n;
    int full = queued + s->n_reserved >= s->cfg.max_queued;
    pthread_mutex_unlock(&s->lock);
    return full && s->shared ? sched_nodes_still_full(s) : full;
}

int sched_submit(struct sched *s, struct job *job, int accepted, char **json, size_t *json_len)
{
    int ret;
    pthread_mutex_lock(&s->lock);
    if (s->stopping && !accepted)
        ret = SCHED_ESHUTDOWN;
    else if ((s->shared ? s->shared_queued : s->queue.n) + s->n_reserved >= s->cfg.max_queued &&
             !accepted)
        ret = SCHED_EQUEUE_FULL;
    else {
        s->n_reserved++;
        s->shared_inflight++;
        ret = SCHED_OK;
    }
    pthread_mutex_unlock(&s->lock);
    if (ret == SCHED_EQUEUE_FULL && s->shared && !sched_nodes_still_full(s)) {
        pthread_mutex_lock(&s->lock);
        s->n_reserved++;
        s->shared_inflight++;
        pthread_mutex_unlock(&s->lock);
        ret = SCHED_OK;
    }
    if (ret != SCHED_OK)
        return ret;

    job->created_at = job_now();
    int rc = store_job_create(s->st, job);

    pthread_mutex_lock(&s->lock);
    s->n_reserved--;
    s->shared_inflight--;
    s->shared_gen++;
    if (rc != STORE_OK) {
        ret = sched_from_store(rc);
        goto out;
    }
    s->by_status[JOB_QUEUED]++;
    if (s->shared) {
        /* The store's queue: the dispatcher claims it (or another node). */
        s->shared_queued++;
        s->poke = 1;
        pthread_cond_signal(&s->wake);
        /* Into the status cache now (a read on this node right after sees
         * it), and read back by it, since another node may claim it
         * before or after this copy is made. */
        struct sjob *c = sched_find(s, job->id);
        if (!c && s->cache_on && s->n_cached < s->cache_cap && (c = sjob_new(s, job))) {
            c->cached = 1;
            s->n_cached++;
            hash_insert(s, c);
            queue_insert(s, c);
        }
        sched_cache_touch(s, job->id);
        if (c) {
            ret = copy_json(s, c, json, json_len);
            goto out;
        }
        pthread_mutex_unlock(&s->lock);
        ret = sched_dump_stored(s, job, -1, json, json_len);
        pthread_mutex_lock(&s->lock);
        goto out;
    }
    struct sjob *j = sched_find(s, job->id);
    if (!j) {
        j = sjob_new(s, job);
        if (!j) {
            ret = SCHED_ENOMEM; /* stored: the next start picks it up */
            goto out;
        }
        hash_insert(s, j);
        queue_insert(s, j);
        pthread_cond_signal(&s->wake);
    }
    ret = copy_json(s, j, json, json_len);
out:
    pthread_mutex_unlock(&s->lock);
    if (ret == SCHED_OK) {
        log_info("job queued id=%s priority=%d", job->id, job->priority);
        sched_notify(s, job->id, 0);
    }
    return ret;
}

int sched_record_failed(struct sched *s, struct job *job, char **json, size_t *json_len)
{
    int ret;
    job->created_at = job_now();
    int rc = store_job_create_failed(s->st, job);
    if (rc != STORE_OK)
        return sched_from_store(rc);
    pthread_mutex_lock(&s->lock);
    s->by_status[JOB_FAILED]++;
    struct sjob *j = sched_find(s, job->id);
    ret = SCHED_OK;
    if (!j) {
        j = sjob_new(s, job);
        if (j) {
            hash_insert(s, j);
            sched_finished_add(s, j);
        }
    }
    /* Not cached (out of memory): reads fall back to the store. */
    if (json)
        ret = j ? copy_json(s, j, json, json_len) : SCHED_ENOMEM;
    pthread_mutex_unlock(&s->lock);
    log_info("job failed id=%s error=%s (refused before it was queued)", job->id,
             job->error_code);
    sched_notify(s, job->id, 1);
    return ret;
}

int sched_job_json_status(struct sched *s, const char *id, char **json, size_t *json_len,
                          enum job_status *status)
{
    int ret;
    pthread_mutex_lock(&s->lock);
    struct sjob *j = find_unexpired(s, id);
    if (j) {
        if (status)
            *status = j->job.status;
        ret = copy_json(s, j, json, json_len);
        pthread_mutex_unlock(&s->lock);
        return ret;
    }
    pthread_mutex_unlock(&s->lock);

    /* Not held here: a job another node runs or a queued one (shared
     * store), or an old one. One query, the position with it. */
    struct job *job = NULL;
    long pos = 0;
    ret = sched_from_store(store_job_get_position(s->st, id, &job, &pos));
    if (ret != SCHED_OK)
        return ret;
    if (status)
        *status = job->status;
    ret = sched_dump_stored(s, job, pos, json, json_len);
    /* Keep it for the next read if it ended (active ones are always in
     * memory; one missing here is being submitted right now). */
    if (job_status_is_final(job->status) && !job_is_expired(job, job_now())) {
        pthread_mutex_lock(&s->lock);
        if (!sched_find(s, id)) {
            struct sjob *j2 = sjob_new(s, job);
            if (j2) {
                hash_insert(s, j2);
                sched_finished_add(s, j2);
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    job_free(&job);
    return ret;
}

int sched_job_json(struct sched *s, const char *id, char **json, size_t *json_len)
{
    return sched_job_json_status(s, id, json, json_len, NULL);
}

int sched_job_get(struct sched *s, const char *id, struct job **out)
{
    pthread_mutex_lock(&s->lock);
    struct sjob *j = find_unexpired(s, id);
    /* A cached copy of a job another node runs may be up to a second
     * behind the store: right for a status read, wrong for a caller that
     * acts on the state (a download right after the job succeeded there
     * would get "not ready"; a DELETE of its files a 409). Those read the
     * store; a final state never changes, so a final copy is kept. */
    if (j && j->cached && !job_status_is_final(j->job.status))
        j = NULL;
    if (j) {
        struct job *copy = calloc(1, sizeof(*copy));
        int ok = copy && job_copy(copy, &j->job) == 0;
        pthread_mutex_unlock(&s->lock);
        if (!ok) {
            free(copy);
            return SCHED_ENOMEM;
        }
        *out = copy;
        return SCHED_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return sched_from_store(store_job_get(s->st, id, out));
}

int sched_job_get_stored(struct sched *s, const char *id, struct job **out)
{
    return sched_from_store(store_job_get(s->st, id, out));
}

int sched_cancel(struct sched *s, const char *id, char **json, size_t *json_len)
{
    int ret;
    pthread_mutex_lock(&s->lock);
    struct sjob *j = sched_find(s, id);
    if ((!j || j->cached) && s->shared) /* queued (the store's) or another node's */
        return sched_nodes_cancel(s, id, json, json_len); /* unlocks */
    if (!j) {
        pthread_mutex_unlock(&s->lock);
        struct job *job = NULL;
        ret = sched_from_store(store_job_get(s->st, id, &job));
        if (ret == SCHED_OK) {
            /* Not in memory: it ended long ago (or is being submitted). */
            ret = job_status_is_final(job->status) ? SCHED_ECONFLICT : SCHED_ENOTFOUND;
            if (sched_dump_stored(s, job, 0, json, json_len) < 0)
                ret = SCHED_ENOMEM;
        }
        job_free(&job);
        return ret;
    }
    if (job_status_is_final(j->job.status) || j->ending) {
        ret = copy_json(s, j, json, json_len);
        pthread_mutex_unlock(&s->lock);
        return ret < 0 ? ret : SCHED_ECONFLICT;
    }
    int notify_final = 0;
    if (j->job.status == JOB_QUEUED && !j->cancel_pending) {
        j->cancel_pending = 1;
        if (j->in_queue) {
            s->n_ready--;
            s->qver++;
        }
        pthread_mutex_unlock(&s->lock);
        int rc = store_job_cancel_queued(s->st, id);
        pthread_mutex_lock(&s->lock);
        if (rc == STORE_OK) {
            if (j->in_queue) {
                list_unlink(&s->queue, j);
                j->in_queue = 0;
                s->qver++;
            }
            j->job.status = JOB_CANCELED;
            j->job.finished_at = job_now();
            sched_count_move(s, JOB_QUEUED, JOB_CANCELED);
            sched_finished_add(s, j);
            notify_final = 1;
            log_info("job canceled id=%s (queued)", id);
        } else if (rc == STORE_ECONFLICT) {
            /* Claimed in the meantime: the runner stops it at once. */
            j->cancel_requested = 1;
            sched_stop_job(j);
        } else {
            j->cancel_pending = 0;
            if (j->in_queue) {
                s->n_ready++;
                s->qver++;
                pthread_cond_signal(&s->wake);
            }
            pthread_mutex_unlock(&s->lock);
            return sched_from_store(rc);
        }
    } else {
        j->cancel_requested = 1;
        sched_stop_job(j);
        log_info("job cancel requested id=%s", id);
    }
    j->dirty = 1;
    ret = copy_json(s, j, json, json_len);
    pthread_mutex_unlock(&s->lock);
    sched_notify(s, id, notify_final);
    return ret;
}

struct list_ctx {
    struct sched *s;
    json_t *jobs;
    int64_t last_seq;
    int n;
};

static int list_one(void *opaque, const struct job *job)
{
    struct list_ctx *c = opaque;
    struct sched *s = c->s;
    json_t *obj = NULL;
    pthread_mutex_lock(&s->lock);
    struct sjob *j = sched_find(s, job->id);
    if (j)
        obj = job_to_json(&j->job,
                          j->job.status == JOB_QUEUED ? queue_position(s, j) : 0);
    pthread_mutex_unlock(&s->lock);
    /* Not in memory: a queued job's position from the store (a shared
     * store whose status cache is off, or a job submitted just now). */
    long pos = 0;
    if (!obj && job->status == JOB_QUEUED && s->shared &&
        store_queue_position(s->st, job->id, &pos) != STORE_OK)
        pos = 0;
    if (!obj)
        obj = job_to_json(job, pos);
    if (!obj)
        return 1;
    json_array_append_new(c->jobs, obj);
    c->last_seq = job->seq;
    c->n++;
    return 0;
}

struct store *sched_store(struct sched *s) { return s->st; }

void sched_forget(struct sched *s, const char *id)
{
    pthread_mutex_lock(&s->lock);
    struct sjob *j = sched_find(s, id);
    if (j && j->in_finished) {
        list_unlink(&s->finished, j);
        sched_hash_remove(s, j);
    } else {
        j = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    sched_sjob_free(j);
}

int sched_list(struct sched *s, int status, int64_t before_seq, int limit, char **json,
               size_t *json_len)
{
    int ret = SCHED_ENOMEM;
    struct list_ctx c = {s, json_array(), 0, 0};
    json_t *out = NULL;
    if (!c.jobs)
        goto out;
    /* One more than asked tells whether there is a next page. */
    int rc = store_job_list(s->st, status, before_seq, limit, list_one, &c);
    if (rc != STORE_OK) {
        ret = sched_from_store(rc);
        goto out;
    }
    /* A full page may have more after it; the next page may be empty. */
    int more = c.n == limit;
    char cursor[32];
    snprintf(cursor, sizeof(cursor), "%lld", (long long)c.last_seq);
    out = json_pack("{s:O, s:o}", "jobs", c.jobs, "next",
                    more && c.last_seq > 1 ? json_string(cursor) : json_null());
    if (!out)
        goto out;
    *json = json_dumps(out, JSON_COMPACT);
    if (!*json)
        goto out;
    *json_len = strlen(*json);
    ret = SCHED_OK;
out:
    json_decref(out);
    json_decref(c.jobs);
    return ret;
}

void sched_get_metrics(struct sched *s, struct sched_metrics *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_lock(&s->lock);
    memcpy(m->by_status, s->by_status, sizeof(m->by_status));
    m->queued = s->shared ? s->shared_queued : s->queue.n;
    m->running = s->n_running;
    m->n_buckets = N_DURATION + 1;
    for (int b = 0; b < N_DURATION; b++)
        m->duration_bounds[b] = duration_bounds[b];
    memcpy(m->duration_buckets, s->dur_buckets, sizeof(s->dur_buckets));
    m->duration_sum = s->dur_sum;
    m->duration_count = s->dur_count;
    pthread_mutex_unlock(&s->lock);
}
