/*
 * tus_store.h - the durable state of resumable (tus) uploads.
 *
 * DESIGN
 * Each upload is two files in one folder (<data-dir>/uploads/):
 *   <id>.bin   the bytes received so far (pwrite at the offset);
 *   <id>.json  its state: offset, length, raw Upload-Metadata, created and
 *              expiry times, phase, error. Replaced atomically: written to
 *              <id>.json.tmp, renamed over.
 *   <id>.off   while PARTIAL, the committed offset and expiry: a 32-byte
 *              record with a check word, rewritten in place per chunk
 *              (cheaper than replacing <id>.json); it wins over the offset
 *              in <id>.json when valid.
 * Durability: a PATCH writes its bytes past the offset (write() has
 * returned for every byte) and only then stores the new offset, then
 * answers 204. Both are in the page cache, so a kill -9 of the server at
 * any moment leaves either the old offset (the bytes past it are dropped
 * by the next write) or the new one, whose bytes are in the file: every
 * acknowledged byte survives a process crash. A torn record fails its
 * check word and the older offset of <id>.json is used; a stored offset
 * is never above the data file's size (clamped on read), so it never
 * claims bytes that are not there. Nothing is fsync'd on that path: a
 * power cut may lose the last seconds of acknowledged bytes. With
 * sync_each (--tus-fsync 1) every chunk is fdatasync'd before its offset
 * is stored, and the state and folder are fsync'd: acknowledged bytes
 * then survive a power cut too, at the disk's sync speed.
 *
 * Phases: PARTIAL (bytes missing) -> COMPLETE (every byte on disk, the job
 * not yet made) -> DONE (the job exists; the data file belongs to it) or
 * FAILED (the file was refused, e.g. not media; bytes removed, the error
 * kept for GET /status).
 *
 * Locks: one in-memory lock per upload id, held by a PATCH (or a DELETE,
 * or the sweep) for its whole run, so two writers never interleave; a
 * second one gets TUS_ELOCKED. Expiry: every PATCH moves expires_at to
 * now + expiry; the sweep removes uploads whose expires_at passed (their
 * data file with them), skipping locked ones.
 *
 * Threading: every function may be called from any thread; one upload is
 * written by the holder of its lock only. The sweep runs on its own thread
 * between tus_store_sweep_start and tus_store_close.
 */
#ifndef VIDQ_TUS_STORE_H
#define VIDQ_TUS_STORE_H

#include <stddef.h>
#include <stdint.h>

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
    double created_at, expires_at; /* Unix seconds */
    double finished_at;            /* DONE/FAILED: when; else 0 */
    enum tus_phase phase;
    char *metadata;      /* raw Upload-Metadata header, owned, or NULL */
    char error_code[48]; /* FAILED only */
    char error_message[256];
};

struct tus_store;
struct tus_write;

/* Open (creating) the folder dir; uploads expire expiry_s after their last
 * write. sync_each: fsync every chunk and state change (see DESIGN).
 * Returns 0 or a TUS_E* code. */
int tus_store_open(const char *dir, double expiry_s, int sync_each, struct tus_store **out);

/* Stop the sweep and free; accepts NULL and sets *pp = NULL. */
void tus_store_close(struct tus_store **pp);

/* Seconds an upload lives after its last write. */
double tus_store_expiry(const struct tus_store *ts);

/* 1 if id is a usable upload id (URL-safe, 1..TUS_ID_MAX chars). */
int tus_id_valid(const char *id);

/* Create upload u (id, length, metadata set by the caller; offset 0): an
 * empty data file and the state. Sets created/expires. */
int tus_store_create(struct tus_store *ts, struct tus_upload *u);

/* Read the state of id into u (tus_upload_clear it). TUS_ENOTFOUND. */
int tus_store_get(struct tus_store *ts, const char *id, struct tus_upload *u);

/* Replace the state of u->id atomically. */
int tus_store_save(struct tus_store *ts, const struct tus_upload *u);

/* Remove the data file and the state of id. TUS_ENOTFOUND if no state. */
int tus_store_remove(struct tus_store *ts, const char *id);

/* Remove the data file only (e.g. a refused upload's bytes). */
void tus_store_remove_data(struct tus_store *ts, const char *id);

/* The path of id's data file. Returns 0 or TUS_EINVAL (too long). */
int tus_store_data_path(const struct tus_store *ts, const char *id, char *buf, size_t cap);

/* Take id's lock: TUS_OK or TUS_ELOCKED. */
int tus_store_lock(struct tus_store *ts, const char *id);

/* Release id's lock (must be held). */
void tus_store_unlock(struct tus_store *ts, const char *id);

/* Remove every expired upload not locked (now in Unix seconds); returns
 * the number removed. Phase DONE/FAILED records expire too (the job lives
 * on in the job store). */
int tus_store_sweep(struct tus_store *ts, double now);

/* Run tus_store_sweep every period_s seconds on a thread until close. */
int tus_store_sweep_start(struct tus_store *ts, double period_s);

/* Call fn for every upload in phase COMPLETE or FAILED (recovery after a
 * crash between the last byte and the job, or a refusal whose failed job
 * could not be stored). */
int tus_store_each_complete(struct tus_store *ts, void (*fn)(void *opaque, struct tus_upload *u),
                            void *opaque);

/* Free what u owns (metadata). */
void tus_upload_clear(struct tus_upload *u);

/* Start writing to u at u->offset (the caller holds u's lock). With algo
 * (an Upload-Checksum algorithm) the bytes are digested. */
int tus_write_begin(struct tus_store *ts, const struct tus_upload *u, const char *algo,
                    struct tus_write **out);

/* Append len bytes (TUS_ETOOBIG past the length, TUS_ENOSPC, TUS_EIO). */
int tus_write_data(struct tus_write *w, const void *buf, size_t len);

/* Bytes written so far by w. */
int64_t tus_write_count(const struct tus_write *w);

/* Finish: when want is not NULL and the digest differs, the bytes are
 * discarded and TUS_ECHECKSUM returned (u unchanged). Else (the bytes
 * fdatasync'd first with sync_each) u->offset advances, u->expires_at
 * moves, and the state is saved (phase COMPLETE when the last byte came).
 * Frees w. */
int tus_write_commit(struct tus_write **w, struct tus_upload *u, const unsigned char *want,
                     size_t wlen);

/* Give up: the bytes written are discarded (state unchanged). Accepts
 * NULL and sets *pp = NULL. */
void tus_write_free(struct tus_write **pp);

#endif
