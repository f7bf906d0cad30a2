/*
 * disk.h - the disk guard: uploads are refused (507 insufficient_storage)
 * before they would leave less than --min-free-bytes free in the data dir,
 * and the disk's state is known cheaply for /healthz and /metrics.
 *
 * Free space comes from statvfs(2) of the data dir: fresh for an upload's
 * admission, at least every DISK_CHECK_BYTES written by uploads, and every
 * second by the guard's thread (what /healthz and /metrics read, so they
 * never touch the disk). The bytes stored per kind (inputs, outputs, tmp,
 * uploads) come from a walk of those folders by the same thread, every
 * scan_interval seconds (--disk-scan-interval), or 20 times the last
 * walk's duration if that is longer, so a scrape never walks the tree.
 *
 * Threading: every function but disk_guard_start/_stop may be called from
 * any thread; those two from the main thread only.
 */
#ifndef VIDQ_HTTP_DISK_H
#define VIDQ_HTTP_DISK_H

#include <stddef.h>
#include <stdint.h>

struct disk_guard;

enum disk_kind { DISK_INPUTS = 0, DISK_OUTPUTS, DISK_TMP, DISK_UPLOADS, DISK_NKINDS };

struct disk_stats {
    int64_t free_bytes;              /* available to vidq now (-1 unknown) */
    int64_t total_bytes;             /* size of the data dir's filesystem */
    int64_t min_free_bytes;          /* the threshold (0: guard off) */
    int low;                         /* 1: free_bytes < min_free_bytes */
    int64_t stored[DISK_NKINDS];     /* bytes on disk per kind at the last walk */
    double scan_age_s;               /* seconds since that walk (-1: none yet) */
    double scan_duration_s;          /* how long it took */
    int64_t refused;                 /* uploads refused by the guard so far */
};

/* The name of a kind as /metrics labels it ("inputs", ...). */
const char *disk_kind_name(enum disk_kind k);

/* Start the guard on data_dir (copied) with a threshold of min_free bytes
 * (0: only a full disk refuses) and start its thread, which walks the
 * folders every scan_interval_s. Returns 0 or -1 (logged). */
int disk_guard_start(const char *data_dir, int64_t min_free, double scan_interval_s,
                     struct disk_guard **out);

/* May an upload of need bytes (0 if not known yet) start? Reads the free
 * space now. Returns 0, or -1 if it would leave less than the threshold
 * (counted as refused). */
int disk_guard_admit(struct disk_guard *g, int64_t need);

/* Before an upload writes len more bytes: -1 if that would go under the
 * threshold (counted as refused), else 0. Re-reads the free space at least
 * every DISK_CHECK_BYTES written by all uploads together, so an upload
 * overshoots the threshold by at most that much per concurrent writer. */
int disk_guard_write(struct disk_guard *g, size_t len);

/* The cached state (no disk access). */
void disk_guard_stats(struct disk_guard *g, struct disk_stats *out);

/* Stop the thread and free; accepts NULL and sets *pp = NULL. */
void disk_guard_stop(struct disk_guard **pp);

#endif
