/*
 * tus_store.h - the durable state of resumable (tus) uploads.
 *
 * DESIGN
 * The state of each upload is a row of the job store (store/uploads.h:
 * offset, length, raw Upload-Metadata, created and expiry times, phase,
 * error, and its lock), so every node that shares the store (PostgreSQL,
 * the same --data-dir on a shared filesystem) serves any upload. Its bytes
 * are one file in the data dir: <data-dir>/uploads/<id>.bin, written with
 * pwrite at the offset.
 *
 * Durability: a PATCH writes its bytes past the offset (write() has
 * returned for every byte; the file is closed, which a network filesystem
 * flushes) and only then stores the new offset, then answers 204. So the
 * offset the store holds (what HEAD tells, on any node) never claims bytes
 * that are not in the file; a kill -9 at any moment leaves the old offset
 * (the bytes past it are dropped by the next write) or the new one. A
 * stored offset above the data file's size (a power cut without
 * --tus-fsync) is clamped on read. With sync_each (--tus-fsync 1) every
 * chunk is fdatasync'd before its offset is stored.
 *
 * Phases: PARTIAL (bytes missing) -> COMPLETE (every byte on disk, the job
 * not yet made) -> DONE (the job exists; the data file belongs to it) or
 * FAILED (the file was refused, e.g. not media; bytes removed, the error
 * kept for GET /status). The commit of the last byte moves the phase to
 * COMPLETE in the guarded UPDATE of its offset, so exactly one PATCH, on
 * whichever node, makes the job.
 *
 * Locks (struct tus_lock): a lease in the upload's row with a token per
 * holder (one request), lease_s long by the database's clock, taken with
 * one guarded UPDATE; a second request (this node or another) gets
 * TUS_ELOCKED. A writer renews it every lease / 3 while bytes come in and
 * writes a byte only while its lock is valid by its own monotonic clock
 * (started before the UPDATE that took or renewed it, ending at 0.8 x the
 * lease: before the database lets anyone else take it). A holder that
 * died leaves the lock to lapse; it is never taken sooner (a node cut off
 * from the database may still be writing). Every change by a holder is
 * guarded by its token (a
 * commit also by the offset it started from): one that lost its lock
 * changes nothing, and never truncates the file.
 * Residual: a process frozen (SIGSTOP) between its last check and a
 * pwrite longer than 0.2 x the lease may write that one chunk into a
 * region a new holder rewrites; its commit is refused either way.
 *
 * Expiry: every PATCH moves expires_at to now + expiry; the sweep (every
 * node runs one; each removal is taken under the upload's lock, so two
 * sweepers never both act) removes uploads whose expires_at passed, data
 * file first, skipping locked ones; it also makes the job of a COMPLETE
 * upload whose holder died before it did.
 *
 * Threading: every function may be called from any thread; one upload is
 * written by the holder of its lock only. The sweep runs on its own thread
 * between tus_store_sweep_start and tus_store_close.
 */
#ifndef VIDQ_TUS_STORE_H
#define VIDQ_TUS_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

enum {
    TUS_OK = 0,
    TUS_ENOTFOUND = -1,
    TUS_ELOCKED = -2,   /* another request holds the upload */
    TUS_ECHECKSUM = -3, /* the body's digest differs from Upload-Checksum */
    TUS_ENOSPC = -4,    /* disk full */
    TUS_EIO = -5,       /* a file operation failed (logged) */
    TUS_ENOMEM = -6,
    TUS_EINVAL = -7,  /* bad id or argument */
    TUS_ETOOBIG = -8, /* bytes past Upload-Length */
};

enum { TUS_ID_MAX = 63 };

enum tus_phase { TUS_PARTIAL, TUS_COMPLETE, TUS_DONE, TUS_FAILED };

struct tus_upload {
    char id[TUS_ID_MAX + 1];
    int64_t offset, length;
    int64_t row_offset;            /* the row's offset (offset may be clamped below it):
                                    * what a commit expects to find */
    double created_at, expires_at; /* Unix seconds */
    double finished_at;            /* DONE/FAILED: when; else 0 */
    enum tus_phase phase;
    char *metadata;      /* raw Upload-Metadata header, owned, or NULL */
    char error_code[48]; /* FAILED only */
    char error_message[256];
};

/* A lock on one upload, held by one request (see Locks). */
struct tus_lock {
    char id[TUS_ID_MAX + 1];
    char token[64];
    double taken_mono; /* CLOCK_MONOTONIC when the last take/renew was sent */
    int held;
};

struct tus_store;
struct tus_write;

/* Open (creating) the folder dir for the data files, the upload rows in
 * st (borrowed; outlives the tus store). Uploads expire expiry_s after
 * their last write; locks last lease_s unless renewed. sync_each: fsync
 * every chunk (see DESIGN). Returns 0 or a TUS_E* code. */
int tus_store_open(const char *dir, struct store *st, double expiry_s, double lease_s,
                   int sync_each, struct tus_store **out);

/* Stop the sweep and free; accepts NULL and sets *pp = NULL. */
void tus_store_close(struct tus_store **pp);

/* Seconds an upload lives after its last write. */
double tus_store_expiry(const struct tus_store *ts);

/* 1 if id is a usable upload id (URL-safe, 1..TUS_ID_MAX chars). */
int tus_id_valid(const char *id);

/* Create upload u (id, length, metadata set by the caller; offset 0): an
 * empty data file and its row, locked by lk (released with
 * tus_store_unlock). Sets created/expires. */
int tus_store_create(struct tus_store *ts, struct tus_upload *u, struct tus_lock *lk);

/* Read the state of id into u (tus_upload_clear it). TUS_ENOTFOUND. */
int tus_store_get(struct tus_store *ts, const char *id, struct tus_upload *u);

/* Store u's phase, times and error (the caller holds lk on u->id). */
int tus_store_save(struct tus_store *ts, const struct tus_upload *u, const struct tus_lock *lk);

/* Remove the data file and the row of lk's upload (lk held; the row is
 * gone after, so lk is no longer held). TUS_ENOTFOUND if no row. */
int tus_store_remove(struct tus_store *ts, struct tus_lock *lk);

/* Remove the data file only (e.g. a refused upload's bytes). */
void tus_store_remove_data(struct tus_store *ts, const char *id);

/* The path of id's data file. Returns 0 or TUS_EINVAL (too long). */
int tus_store_data_path(const struct tus_store *ts, const char *id, char *buf, size_t cap);

/* Take id's lock into *lk: TUS_OK, TUS_ELOCKED (another request, on any
 * node, holds it), TUS_ENOTFOUND, TUS_EIO. */
int tus_store_lock(struct tus_store *ts, const char *id, struct tus_lock *lk);

/* 1 while lk may still be written under (renewing it when due), 0 once
 * it lapsed or was taken by another. */
int tus_store_lock_valid(struct tus_store *ts, struct tus_lock *lk);

/* Release lk if held (accepts one not held). */
void tus_store_unlock(struct tus_store *ts, struct tus_lock *lk);

/* Remove every expired upload not locked (now in Unix seconds); returns
 * the number removed. Phase DONE/FAILED records expire too (the job lives
 * on in the job store). */
int tus_store_sweep(struct tus_store *ts, double now);

/* Run tus_store_sweep every period_s seconds on a thread until close;
 * each round also calls recover (when not NULL) with the id of each
 * COMPLETE upload whose holder is gone (tus_store_each_complete). */
int tus_store_sweep_start(struct tus_store *ts, double period_s,
                          void (*recover)(void *opaque, const char *id), void *opaque);

/* Call fn with the id of every upload in phase COMPLETE or FAILED (with
 * all: else COMPLETE only) whose lock is free (recovery after a crash
 * between the last byte and the job, or a refusal whose failed job could
 * not be stored). fn takes the lock itself. */
int tus_store_each_complete(struct tus_store *ts, int all,
                            void (*fn)(void *opaque, const char *id), void *opaque);

/* Free what u owns (metadata). */
void tus_upload_clear(struct tus_upload *u);

/* Start writing to u at u->offset under lk (held; borrowed until the
 * write is freed). With algo (an Upload-Checksum algorithm) the bytes are
 * digested. */
int tus_write_begin(struct tus_store *ts, const struct tus_upload *u, struct tus_lock *lk,
                    const char *algo, struct tus_write **out);

/* Append len bytes (TUS_ETOOBIG past the length, TUS_ENOSPC, TUS_EIO,
 * TUS_ELOCKED: the lock was lost, nothing more is written). */
int tus_write_data(struct tus_write *w, const void *buf, size_t len);

/* Bytes written so far by w. */
int64_t tus_write_count(const struct tus_write *w);

/* Finish: when want is not NULL and the digest differs, the bytes are
 * discarded and TUS_ECHECKSUM returned (u unchanged). Else (the bytes
 * fdatasync'd first with sync_each) u->offset advances, u->expires_at
 * moves, and the state is saved (phase COMPLETE when the last byte came);
 * TUS_ELOCKED if the lock was lost meanwhile (nothing stored). Frees w;
 * the lock stays held. */
int tus_write_commit(struct tus_write **w, struct tus_upload *u, const unsigned char *want,
                     size_t wlen);

/* Give up: the bytes written are discarded (state unchanged). Accepts
 * NULL and sets *pp = NULL. */
void tus_write_free(struct tus_write **pp);

#endif
