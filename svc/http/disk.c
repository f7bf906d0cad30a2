/*
 * disk.c - the disk guard (see disk.h).
 *
 * DESIGN
 *   Threads: one guard thread re-reads the free space every STATVFS_MS and
 *   walks the data dir's folders every scan interval; the HTTP threads
 *   call admit/write (which may read the free space themselves) and stats.
 *   State: the free space and the stored bytes are atomics (read without
 *   a lock); the guard thread alone writes the stored bytes.
 *   Why a threshold and not only ENOSPC: a full disk fails everything at
 *   once, the store's writes (SQLite's journal) and the running jobs'
 *   outputs too, not just the upload that filled it. Refusing uploads
 *   while the free space stays above --min-free-bytes keeps room for
 *   the work already accepted.
 */
#define _GNU_SOURCE
#include "http/disk.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/log.h"

enum { STATVFS_MS = 1000, DISK_CHECK_BYTES = 1 << 20, WALK_FDS = 16 };

struct disk_guard {
    char dir[1024];
    int64_t min_free;
    double scan_interval;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop, with cond */
    pthread_cond_t cond;
    int stop;
    atomic_llong free_bytes, total_bytes;
    atomic_llong unchecked;          /* bytes written since the last statvfs */
    atomic_llong stored[DISK_NKINDS];
    atomic_llong refused;
    _Atomic double scan_at, scan_duration; /* monotonic; 0: no walk yet */
};

static const char *const kind_names[DISK_NKINDS] = {"inputs", "outputs", "tmp", "uploads"};

const char *disk_kind_name(enum disk_kind k)
{
    return (unsigned)k < DISK_NKINDS ? kind_names[k] : "?";
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read the free space into g; returns it (-1 if statvfs failed). */
static int64_t refresh_free(struct disk_guard *g)
{
    struct statvfs sv;
    if (statvfs(g->dir, &sv) < 0) {
        atomic_store(&g->free_bytes, -1);
        return -1;
    }
    int64_t avail = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
    atomic_store(&g->free_bytes, avail);
    atomic_store(&g->total_bytes, (int64_t)sv.f_blocks * (int64_t)sv.f_frsize);
    atomic_store(&g->unchecked, 0);
    return avail;
}

/* Only the guard thread walks, so nftw's context-free callback may sum
 * into a thread-local. */
static _Thread_local int64_t walk_sum;

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    /* Allocated blocks, not st_size: what the disk really holds (a sparse
     * or preallocated file differs). */
    if (flag == FTW_F || flag == FTW_SL)
        walk_sum += (int64_t)st->st_blocks * 512;
    return 0;
}

static void scan(struct disk_guard *g)
{
    double t0 = now_mono();
    for (int k = 0; k < DISK_NKINDS; k++) {
        char path[1200];
        if (snprintf(path, sizeof(path), "%s/%s", g->dir, kind_names[k]) >= (int)sizeof(path))
            continue;
        walk_sum = 0;
        /* A file removed during the walk is skipped (FTW_NS), never fatal;
         * a folder not there yet counts 0. */
        if (nftw(path, walk_one, WALK_FDS, FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
            log_debug("disk: cannot walk %s: %s", path, strerror(errno));
        atomic_store(&g->stored[k], walk_sum);
    }
    double t1 = now_mono();
    atomic_store(&g->scan_duration, t1 - t0);
    atomic_store(&g->scan_at, t1);
}

static void *guard_main(void *arg)
{
    struct disk_guard *g = arg;
    double next_scan = 0;
    int was_low = 0;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        pthread_mutex_unlock(&g->lock);
        int64_t avail = refresh_free(g);
        int low = g->min_free > 0 && avail >= 0 && avail < g->min_free;
        if (low != was_low)
            log_msg(low ? LOG_WARNING : LOG_INFO,
                    "disk: %lld bytes free in %s, %s --min-free-bytes %lld%s", (long long)avail,
                    g->dir, low ? "under" : "back over", (long long)g->min_free,
                    low ? ": uploads get 507" : "");
        was_low = low;
        double now = now_mono();
        if (now >= next_scan) {
            scan(g);
            double d = atomic_load(&g->scan_duration);
            /* A huge tree is walked less often, so the walk stays a small
             * share of one core. */
            next_scan = now_mono() + (g->scan_interval > 20 * d ? g->scan_interval : 20 * d);
        }
        pthread_mutex_lock(&g->lock);
        if (g->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)STATVFS_MS * 1000000L;
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int disk_guard_start(const char *data_dir, int64_t min_free, double scan_interval_s,
                     struct disk_guard **out)
{
    int ret = -1;
    pthread_condattr_t ca;
    int ca_init = 0, sync_init = 0;
    struct disk_guard *g = calloc(1, sizeof(*g));
    if (!g)
        goto out;
    if (snprintf(g->dir, sizeof(g->dir), "%s", data_dir) >= (int)sizeof(g->dir)) {
        log_error("disk: data dir path too long");
        goto out;
    }
    g->min_free = min_free;
    g->scan_interval = scan_interval_s;
    refresh_free(g);
    if (pthread_condattr_init(&ca) != 0)
        goto out;
    ca_init = 1;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&g->cond, &ca) != 0)
        goto out;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        pthread_cond_destroy(&g->cond);
        goto out;
    }
    sync_init = 1;
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        log_error("disk: cannot start the disk guard thread");
        goto out;
    }
    *out = g;
    g = NULL;
    ret = 0;
out:
    if (ca_init)
        pthread_condattr_destroy(&ca);
    if (g && sync_init) {
        pthread_mutex_destroy(&g->lock);
        pthread_cond_destroy(&g->cond);
    }
    free(g);
    return ret;
}

static int refuse(struct disk_guard *g)
{
    atomic_fetch_add(&g->refused, 1);
    return -1;
}

int disk_guard_admit(struct disk_guard *g, int64_t need)
{
    if (!g || g->min_free <= 0)
        return 0;
    int64_t avail = refresh_free(g);
    if (avail < 0) /* unknown: the write itself will tell (ENOSPC) */
        return 0;
    if (need < 0)
        need = 0;
    return avail - need < g->min_free ? refuse(g) : 0;
}

int disk_guard_write(struct disk_guard *g, size_t len)
{
    if (!g || g->min_free <= 0)
        return 0;
    int64_t pending = atomic_fetch_add(&g->unchecked, (long long)len) + (int64_t)len;
    int64_t avail = atomic_load(&g->free_bytes);
    /* The cached figure minus what was written since is an estimate; read
     * the real one when the estimate nears the threshold or is stale. */
    if (pending >= DISK_CHECK_BYTES || avail - pending < g->min_free) {
        int64_t now_free = refresh_free(g);
        if (now_free < 0) /* unknown: the write itself will tell (ENOSPC) */
            return 0;
        atomic_fetch_add(&g->unchecked, (long long)len); /* not on disk yet */
        avail = now_free - (int64_t)len;
    } else {
        avail -= pending;
    }
    return avail < g->min_free ? refuse(g) : 0;
}

void disk_guard_stats(struct disk_guard *g, struct disk_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->free_bytes = -1;
    out->scan_age_s = -1;
    if (!g)
        return;
    out->free_bytes = atomic_load(&g->free_bytes);
    out->total_bytes = atomic_load(&g->total_bytes);
    out->min_free_bytes = g->min_free;
    out->low = g->min_free > 0 && out->free_bytes >= 0 && out->free_bytes < g->min_free;
    for (int k = 0; k < DISK_NKINDS; k++)
        out->stored[k] = atomic_load(&g->stored[k]);
    double at = atomic_load(&g->scan_at);
    if (at > 0) {
        out->scan_age_s = now_mono() - at;
        out->scan_duration_s = atomic_load(&g->scan_duration);
    }
    out->refused = atomic_load(&g->refused);
}

void disk_guard_stop(struct disk_guard **pp)
{
    if (!pp || !*pp)
        return;
    struct disk_guard *g = *pp;
    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
    *pp = NULL;
}
