/*
 * uploads.h - the rows of resumable (tus) uploads in the job store: one
 * row per upload (table tus_uploads, the same in SQLite and PostgreSQL)
 * with its offset, length, metadata, times, phase and a lock per upload,
 * so that every node sharing the store serves HEAD and PATCH of any
 * upload (the bytes are in the shared data dir; uploads/tus_store.h).
 *
 * The lock is a lease in the row: locked_by (a token per holder: one
 * request), lock_node (the node of the holder) and locked_until (the
 * database's clock + the lease). It is taken with one guarded UPDATE
 * ("WHERE id = $1 AND (free OR mine OR lapsed)"), renewed while the holder
 * writes, and released at the end. A holder that died leaves it to lapse
 * (never sooner: see uploads.c). Every change a holder makes is guarded by its
 * token (and a commit by the offset it started from), so a holder that
 * lost its lock changes nothing.
 *
 * Threading: as store.h (any thread). Errors: STORE_OK or STORE_E*;
 * STORE_ECONFLICT = the lock is another's (or ours was lost), STORE_ENOTFOUND
 * = no such upload.
 */
#ifndef VIDQ_STORE_UPLOADS_H
#define VIDQ_STORE_UPLOADS_H

#include <stdint.h>

#include "store/store.h"

enum { STORE_UPLOAD_ID_MAX = 63, STORE_UPLOAD_TOKEN_MAX = 63 };

/* Phases, as uploads/tus_store.h's enum tus_phase. */
enum { STORE_UPLOAD_PARTIAL, STORE_UPLOAD_COMPLETE, STORE_UPLOAD_DONE, STORE_UPLOAD_FAILED };

struct store_upload {
    char id[STORE_UPLOAD_ID_MAX + 1];
    int64_t offset, length;
    double created_at, expires_at, finished_at; /* Unix seconds; finished 0 = not yet */
    int phase;
    char *metadata; /* owned (free), or NULL */
    char error_code[48];
    char error_message[256];
};

/* Create the table and its indexes if missing (idempotent; nodes starting
 * together do not race). On a store that is not shared (SQLite: one
 * node), every lock left by a process that died is released. */
int store_uploads_init(struct store *st);

/* Insert u, locked by token for lease_s. STORE_ECONFLICT if the id exists. */
int store_upload_insert(struct store *st, const struct store_upload *u, const char *token,
                        double lease_s);

/* Read upload id into *u (metadata malloc'd). */
int store_upload_get(struct store *st, const char *id, struct store_upload *u);

/* Take id's lock for token (free, lapsed, or already token's), lease_s
 * from now by the database's clock. */
int store_upload_lock(struct store *st, const char *id, const char *token, double lease_s);

/* Extend token's lock of id by lease_s from now, only while token still
 * holds it (even lapsed, if nobody took it since): STORE_ECONFLICT once
 * another took it, so a holder that was too slow never takes it back. */
int store_upload_renew(struct store *st, const char *id, const char *token, double lease_s);

/* Release id's lock if token holds it. */
int store_upload_unlock(struct store *st, const char *id, const char *token);

/* The holder's commit: the offset moves from old_offset to new_offset,
 * expires_at and phase set, only while token holds the lock and the
 * offset is still old_offset; STORE_ECONFLICT otherwise. */
int store_upload_commit(struct store *st, const char *id, const char *token, int64_t old_offset,
                        int64_t new_offset, double expires_at, int phase);

/* Write u's phase, times and error (guarded by token when not NULL). */
int store_upload_save(struct store *st, const struct store_upload *u, const char *token);

/* Delete id's row while token holds its lock. */
int store_upload_delete(struct store *st, const char *id, const char *token);

/* Call fn with the ids (borrowed for the call) of at most limit uploads:
 * EXPIRED those whose expires_at <= now, not complete, whose lock is free
 * or lapsed; COMPLETE those complete (bytes in, job not made), UNFINISHED
 * those complete or failed, whose lock is free (on PostgreSQL also: held
 * by a node that is dead; never one of a live node, whose lease may have
 * lapsed while it probes the file). fn runs after the read (no connection
 * held). Returns STORE_OK or an error. */
enum store_upload_list { STORE_UPLOADS_EXPIRED, STORE_UPLOADS_COMPLETE, STORE_UPLOADS_UNFINISHED };
int store_upload_list(struct store *st, enum store_upload_list which, double now, int limit,
                      void (*fn)(void *opaque, const char *id), void *opaque);

/* Free what u owns. */
void store_upload_clear(struct store_upload *u);

#endif
