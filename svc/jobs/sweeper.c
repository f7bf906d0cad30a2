/*
 * sweeper.c - retention (see sweeper.h).
 *
 * DESIGN
 *   Thread: one, waking every interval_s (1 s) or at stop. A round:
 *     1. once after start, expires_at for ended jobs of a store made
 *        before retention (store_expiry_backfill, batches);
 *     2. files: the jobs due (expires_at <= now, not expired), a batch at
 *        a time: delete the input, then the output folder, then mark the
 *        job expired in the store, then drop it from the scheduler's
 *        memory. Files go first: a crash between the two leaves a job
 *        that is due and not marked, which the next round (or the next
 *        process) deletes again; deleting what is already gone is not an
 *        error. Only jobs past their expires_at are ever touched, so a
 *        crash mid-sweep loses nothing that was not due.
 *     3. records: expired jobs that ended more than records_s ago and
 *        have no webhook delivery still being tried lose their attempts,
 *        deliveries, registrations and row (one transaction a batch).
 *     4. tmp/: files untouched for TMP_LEFTOVER_AGE_S (an upload that
 *        is still arriving writes to its file all the time; an idle
 *        connection is closed long before). Unfinished tus uploads have
 *        their own expiry (tus_store, --tus-expiry).
 *   The API never waits long on it: each store call is one short
 *   statement or a transaction over at most `batch` jobs, the connection
 *   is given back between calls, and a round does at most ROUND_BATCHES
 *   batches of each kind before it sleeps, so a backlog of 100,000 expired
 *   jobs is worked off over many rounds, never in one lock.
 *   Several nodes (PostgreSQL): every node sweeps; each step is
 *   idempotent (unlink of a missing file, a guarded UPDATE, DELETEs of
 *   rows that may be gone), so two nodes on the same rows only repeat
 *   work, never lose any. Each round first asks the store for the jobs
 *   marked expired in the last SHARED_LOOKBACK_S and drops them from the
 *   scheduler's memory: a DELETE of files through another node is seen
 *   here within a round even if the status cache missed its NOTIFY
 *   (test_pg_retention_nodes). With a shared store the data dir is shared too
 *   (see cli_serve.c), so any node may delete any job's files.
 */
#define _GNU_SOURCE
#include "jobs/sweeper.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

enum { ROUND_BATCHES = 10, TMP_LEFTOVER_AGE_S = 3600, BACKFILL_BATCH = 500 };

/* Shared store: how far back each round looks for jobs other nodes
 * marked expired (a DELETE of files sets expires_at to that node's
 * clock): a round's interval, plus room for the nodes' clocks to differ
 * and for a read that re-cached a job just before the mark committed.
 * Forgetting a job twice costs a hash lookup. */
#define SHARED_LOOKBACK_S 15.0
enum { SHARED_FORGET_LIMIT = 1000 };

struct sweeper {
    struct sweeper_config cfg;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;
    int stop;
    int backfilled;
};

static int delete_files(const char *data_dir, const char *id, const char *input_path);

struct expire_ctx {
    const struct sweeper_config *cfg;
    double now;
    int64_t n;
    int failed;
};

static void remove_file(const char *path)
{
    if (path && *path && unlink(path) != 0 && errno != ENOENT)
        log_warn("retention: cannot remove %s: %s", path, strerror(errno));
}

static void expire_one(void *opaque, const char *id, const char *input_path)
{
    struct expire_ctx *x = opaque;
    if (delete_files(x->cfg->data_dir, id, input_path) < 0) {
        x->failed = 1; /* not marked: tried again next round */
        return;
    }
    int rc = store_job_expire(x->cfg->store, id, x->now);
    if (rc != STORE_OK && rc != STORE_ENOTFOUND) {
        x->failed = 1;
        return;
    }
    if (x->cfg->sched)
        sched_forget(x->cfg->sched, id);
    x->n++;
    log_info("job files expired id=%s", id);
}

/* Delete the files of job id (its input, then its output folder). */
static int delete_files(const char *data_dir, const char *id, const char *input_path)
{
    char path[1400];
    if (job_input_path(path, sizeof(path), data_dir, id) == 0)
        remove_file(path);
    if (input_path && strcmp(input_path, path) != 0)
        remove_file(input_path);
    return job_remove_outputs(data_dir, id);
}

static void forget_one(void *opaque, const char *id) { sched_forget(opaque, id); }

/* Shared store: drop from this node's memory the ended jobs whose files
 * another node deleted (DELETE /v1/jobs/<id>/files there). The status
 * cache hears of it first (NOTIFY on the row's change, sched_nodes.c);
 * this covers a notification lost while the LISTEN connection was down,
 * since its reconnect refreshes only active jobs and the memory holds
 * ended jobs as final: the node would otherwise serve the job as
 * unexpired (outputs 200 for files that are gone) until its original
 * expires_at. */
static int forget_expired_elsewhere(const struct sweeper_config *cfg)
{
    if (!cfg->sched || !store_is_shared(cfg->store))
        return STORE_OK;
    return store_expired_since(cfg->store, job_now() - SHARED_LOOKBACK_S, SHARED_FORGET_LIMIT,
                               forget_one, cfg->sched);
}

int sweeper_delete_files(struct sched *s, const char *data_dir, const char *id)
{
    struct job *job = NULL;
    int ret = sched_job_get(s, id, &job);
    if (ret != SCHED_OK)
        goto out;
    /* An ended job never starts again, so nothing can write its files
     * once this check passed. */
    ret = SCHED_ECONFLICT;
    if (!job_status_is_final(job->status))
        goto out;
    ret = SCHED_EIO;
    if (delete_files(data_dir, id, job->input_path) < 0)
        goto out;
    int rc = store_job_expire(sched_store(s), id, job_now());
    ret = rc == STORE_OK ? SCHED_OK : rc == STORE_ENOTFOUND ? SCHED_ENOTFOUND : SCHED_EIO;
    sched_forget(s, id);
    if (ret == SCHED_OK)
        log_info("job files deleted on request id=%s", id);
out:
    job_free(&job);
    return ret;
}

static int sweep_tmp(const struct sweeper_config *cfg, double now, int64_t *n)
{
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/tmp", cfg->data_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char f[1600];
        struct stat sb;
        if (e->d_name[0] == '.')
            continue;
        snprintf(f, sizeof(f), "%s/%s", dir, e->d_name);
        if (lstat(f, &sb) == 0 && S_ISREG(sb.st_mode) &&
            now - (double)sb.st_mtime > TMP_LEFTOVER_AGE_S && unlink(f) == 0)
            (*n)++;
    }
    if (d)
        closedir(d);
    return 0;
}

static int run_round(const struct sweeper_config *cfg, int *backfilled, struct sweep_counts *c)
{
    int batch = cfg->batch > 0 ? cfg->batch : 100;
    int rc = forget_expired_elsewhere(cfg);
    if (rc != STORE_OK)
        return rc;
    for (int i = 0; !*backfilled && i < ROUND_BATCHES; i++) {
        int64_t changed = 0;
        rc = store_expiry_backfill(cfg->store, BACKFILL_BATCH, &changed);
        if (rc != STORE_OK)
            return rc;
        if (changed < BACKFILL_BATCH)
            *backfilled = 1;
    }
    for (int i = 0; i < ROUND_BATCHES; i++) {
        struct expire_ctx x = {cfg, job_now(), 0, 0};
        rc = store_expiry_due(cfg->store, x.now, batch, expire_one, &x);
        c->expired += x.n;
        if (rc != STORE_OK)
            return rc;
        if (x.failed || x.n < batch)
            break; /* nothing more due (or a failure: next round) */
    }
    for (int i = 0; i < ROUND_BATCHES; i++) {
        int64_t deleted = 0;
        rc = store_records_purge(cfg->store, job_now() - cfg->records_s, batch, &deleted);
        c->forgotten += deleted;
        if (rc != STORE_OK)
            return rc;
        if (deleted < batch)
            break;
    }
    if (c->forgotten > 0)
        log_info("retention: forgot %lld jobs past --retention-records", (long long)c->forgotten);
    return sweep_tmp(cfg, job_now(), &c->tmp_files);
}

int sweeper_run_once(const struct sweeper_config *cfg, struct sweep_counts *counts)
{
    struct sweep_counts c = {0};
    int backfilled = 0;
    int rc = run_round(cfg, &backfilled, &c);
    if (counts)
        *counts = c;
    return rc;
}

static void *sweeper_main(void *arg)
{
    struct sweeper *sw = arg;
    double interval = sw->cfg.interval_s > 0 ? sw->cfg.interval_s : 1.0;
    pthread_mutex_lock(&sw->lock);
    while (!sw->stop) {
        pthread_mutex_unlock(&sw->lock);
        struct sweep_counts c = {0};
        int rc = run_round(&sw->cfg, &sw->backfilled, &c);
        if (rc != STORE_OK)
            log_warn("retention: sweep failed: %s (tried again)", store_strerror(rc));
        struct timespec until = clock_deadline(interval);
        pthread_mutex_lock(&sw->lock);
        while (!sw->stop && pthread_cond_timedwait(&sw->wake, &sw->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&sw->lock);
    return NULL;
}

int sweeper_start(const struct sweeper_config *cfg, struct sweeper **out)
{
    struct sweeper *sw = calloc(1, sizeof(*sw));
    *out = NULL;
    if (!sw) {
        log_error("retention: out of memory");
        return -1;
    }
    sw->cfg = *cfg;
    pthread_mutex_init(&sw->lock, NULL);
    pthread_cond_init(&sw->wake, NULL);
    if (pthread_create(&sw->thread, NULL, sweeper_main, sw) != 0) {
        log_error("retention: cannot start the sweeper thread");
        pthread_cond_destroy(&sw->wake);
        pthread_mutex_destroy(&sw->lock);
        free(sw);
        return -1;
    }
    *out = sw;
    return 0;
}

void sweeper_stop(struct sweeper **pp)
{
    struct sweeper *sw = pp ? *pp : NULL;
    if (!sw)
        return;
    pthread_mutex_lock(&sw->lock);
    sw->stop = 1;
    pthread_cond_broadcast(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    pthread_join(sw->thread, NULL);
    pthread_cond_destroy(&sw->wake);
    pthread_mutex_destroy(&sw->lock);
    free(sw);
    *pp = NULL;
}
