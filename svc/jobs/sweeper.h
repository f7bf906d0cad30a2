/*
 * sweeper.h - retention: deletes the files of jobs past their expires_at
 * and, later, the records of jobs past --retention-records (README
 * "Retention").
 *
 * Threading: one thread of its own, started by sweeper_start and joined
 * by sweeper_stop; sweeper_run_once may be called by one other thread at
 * a time (tests, benchmarks) while none is started.
 * Errors: sweeper_start returns 0 or -1 (logged); a failed round is
 * logged and tried again at the next one.
 */
#ifndef VIDQ_SWEEPER_H
#define VIDQ_SWEEPER_H

#include <stdint.h>

#include "jobs/sched.h"
#include "store/store.h"

struct sweeper_config {
    struct store *store;        /* borrowed; outlives the sweeper */
    struct sched *sched;        /* borrowed, may be NULL: its cache of finished jobs */
    const char *data_dir;       /* borrowed: inputs/, outputs/, tmp/ */
    double records_s;           /* --retention-records */
    double interval_s;          /* between rounds (0: 1 s) */
    int batch;                  /* jobs per store call (0: 100) */
};

/* What one round did. */
struct sweep_counts {
    int64_t expired;   /* jobs whose files were deleted */
    int64_t forgotten; /* jobs whose rows were deleted */
    int64_t tmp_files; /* leftovers removed from tmp/ */
};

struct sweeper;

/* Start the sweeper thread. cfg is copied (its pointers stay borrowed). */
int sweeper_start(const struct sweeper_config *cfg, struct sweeper **out);

/* Stop and join the thread, free; accepts NULL and sets *pp = NULL. */
void sweeper_stop(struct sweeper **pp);

/* One round without a thread (cfg as for sweeper_start); counts may be
 * NULL. Returns 0 or a negative STORE_E* code of the first failure. */
int sweeper_run_once(const struct sweeper_config *cfg, struct sweep_counts *counts);

/* DELETE /v1/jobs/<id>/files: delete the files of ended job id now and
 * mark it expired. Any thread. SCHED_OK, SCHED_ENOTFOUND, SCHED_ECONFLICT
 * while the job is queued or running (nothing deleted), SCHED_EIO. */
int sweeper_delete_files(struct sched *s, const char *data_dir, const char *id);

#endif
