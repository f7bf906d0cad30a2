/*
 * tus_store.c - durable upload state, per-upload locks and the expiry
 * sweep. See the DESIGN comment in tus_store.h.
 */
#define _GNU_SOURCE
#include "uploads/tus_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "store/uploads.h"
#include "uploads/tus_meta.h"

enum { KICK_BYTES = 2 * 1024 * 1024, SWEEP_BATCH = 200 };

struct tus_store {
    char dir[1024];
    int dir_fd;
    struct store *st; /* the upload rows (borrowed) */
    double expiry_s, lease_s;
    int sync_each; /* fsync chunks (--tus-fsync) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int sweeping, stop;
    double sweep_period;
    void (*recover)(void *opaque, const char *id);
    void *recover_opaque;
    pthread_t sweeper;
};

struct tus_write {
    struct tus_store *ts;
    struct tus_lock *lk;
    int fd;
    int64_t start, length, count, kicked;
    int64_t row_offset; /* the commit's guard */
    struct tus_digest *digest;
};

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int tus_id_valid(const char *id)
{
    size_t n = 0;
    if (!id)
        return 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (n >= TUS_ID_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                 (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return n > 0;
}

static int path_of(const struct tus_store *ts, const char *id, const char *ext, char *buf,
                   size_t cap)
{
    if (!tus_id_valid(id))
        return TUS_EINVAL;
    int n = snprintf(buf, cap, "%s/%s%s", ts->dir, id, ext);
    return n < 0 || (size_t)n >= cap ? TUS_EINVAL : TUS_OK;
}

int tus_store_data_path(const struct tus_store *ts, const char *id, char *buf, size_t cap)
{
    return path_of(ts, id, ".bin", buf, cap);
}

static int io_error(const char *what, const char *path)
{
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
        return TUS_ENOSPC;
    log_error("tus: %s %s: %s", what, path, strerror(e));
    return TUS_EIO;
}

static int from_store(int rc)
{
    switch (rc) {
    case STORE_OK:
        return TUS_OK;
    case STORE_ENOTFOUND:
        return TUS_ENOTFOUND;
    case STORE_ECONFLICT:
        return TUS_ELOCKED;
    case STORE_ENOMEM:
        return TUS_ENOMEM;
    default:
        return TUS_EIO;
    }
}

static int lock_init(struct tus_lock *lk, const char *id);

/* ------------------------------------------------ records of before */

/* Uploads written by a vidq from before the store held them: <id>.json
 * (the state) and <id>.off (the offset while partial: a 32-byte record
 * with a check word). Imported into the store once at open, then removed,
 * so an upgrade keeps uploads in flight. */
struct legacy_offset {
    char magic[8];
    int64_t offset;
    double expires_at;
    uint64_t check;
};

static int legacy_offset(const char *path, struct legacy_offset *r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, r, sizeof(*r), 0);
    close(fd);
    uint64_t e;
    memcpy(&e, &r->expires_at, sizeof(e));
    uint64_t check = ((uint64_t)r->offset * 0x9E3779B97F4A7C15ull) ^ e ^ 0x7475732d6f666673ull;
    return n == (ssize_t)sizeof(*r) && memcmp(r->magic, "TUSOFF1", 8) == 0 && r->check == check
               ? 0
               : -1;
}

static const char *const legacy_phases[] = {"partial", "complete", "done", "failed"};

/* Import one legacy record into the store: 1 if the files may go. */
static int import_one(struct tus_store *ts, const char *id, const char *json_path)
{
    json_error_t jerr;
    json_t *o = json_load_file(json_path, 0, &jerr);
    json_int_t off = -1, len = -1;
    double c = 0, x = 0, fin = 0;
    const char *phase = NULL, *meta = NULL, *ec = "", *em = "";
    int done = 0;
    struct store_upload r;
    memset(&r, 0, sizeof(r));
    if (!o || json_unpack(o, "{s:I, s:I, s:F, s:F, s?F, s:s, s?s, s?s, s?s}", "offset", &off,
                          "length", &len, "created_at", &c, "expires_at", &x, "finished_at", &fin,
                          "phase", &phase, "metadata", &meta, "error_code", &ec,
                          "error_message", &em) < 0 ||
        off < 0 || len < 0 || off > len) {
        log_error("tus: bad state file %s; left as is", json_path);
        goto out;
    }
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.length = len;
    r.offset = off;
    r.created_at = c;
    r.expires_at = x;
    r.finished_at = fin;
    for (int i = 0; i < 4; i++)
        if (strcmp(phase, legacy_phases[i]) == 0)
            r.phase = i;
    if (meta && *meta && !(r.metadata = strdup(meta)))
        goto out;
    snprintf(r.error_code, sizeof(r.error_code), "%s", ec);
    snprintf(r.error_message, sizeof(r.error_message), "%s", em);
    char off_path[1200];
    struct legacy_offset lr;
    if (r.phase == STORE_UPLOAD_PARTIAL && path_of(ts, id, ".off", off_path, sizeof(off_path)) == 0 &&
        legacy_offset(off_path, &lr) == 0 && lr.offset >= 0 && lr.offset <= len) {
        r.offset = lr.offset;
        r.expires_at = lr.expires_at;
    }
    struct tus_lock lk;
    if (lock_init(&lk, id) != TUS_OK)
        goto out;
    int rc = store_upload_insert(ts->st, &r, lk.token, ts->lease_s);
    if (rc == STORE_ECONFLICT) { /* another node imported it first */
        done = 1;
        goto out;
    }
    if (rc == STORE_OK)
        rc = store_upload_commit(ts->st, id, lk.token, 0, r.offset, r.expires_at, r.phase);
    if (rc == STORE_OK)
        rc = store_upload_save(ts->st, &r, lk.token);
    store_upload_unlock(ts->st, id, lk.token);
    if (rc == STORE_OK) {
        log_info("tus: upload %s (%s, %lld of %lld bytes) moved into the store", id, phase,
                 (long long)r.offset, (long long)r.length);
        done = 1;
    } else {
        log_error("tus: cannot move upload %s into the store: %s", id, store_strerror(rc));
    }
out:
    store_upload_clear(&r);
    json_decref(o);
    return done;
}

static void import_legacy(struct tus_store *ts)
{
    DIR *d = opendir(ts->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        char id[TUS_ID_MAX + 1], path[1200];
        if (l <= 5 || l - 5 > TUS_ID_MAX || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        memcpy(id, e->d_name, l - 5);
        id[l - 5] = '\0';
        if (!tus_id_valid(id) || path_of(ts, id, ".json", path, sizeof(path)) < 0 ||
            !import_one(ts, id, path))
            continue;
        char other[1200];
        if (path_of(ts, id, ".off", other, sizeof(other)) == 0)
            unlink(other);
        unlink(path);
    }
    closedir(d);
}

int tus_store_open(const char *dir, struct store *st, double expiry_s, double lease_s,
                   int sync_each, struct tus_store **out)
{
    *out = NULL;
    struct tus_store *ts = calloc(1, sizeof(*ts));
    if (!ts)
        return TUS_ENOMEM;
    ts->dir_fd = -1;
    if (snprintf(ts->dir, sizeof(ts->dir), "%s", dir) >= (int)sizeof(ts->dir)) {
        free(ts);
        return TUS_EINVAL;
    }
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        int rc = io_error("cannot create", dir);
        free(ts);
        return rc;
    }
    ts->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ts->dir_fd < 0) {
        int rc = io_error("cannot open", dir);
        free(ts);
        return rc;
    }
    int rc = store_uploads_init(st);
    if (rc != STORE_OK) {
        log_error("tus: cannot set up the uploads table: %s", store_strerror(rc));
        close(ts->dir_fd);
        free(ts);
        return TUS_EIO;
    }
    ts->st = st;
    ts->expiry_s = expiry_s;
    ts->lease_s = lease_s >= 1 ? lease_s : 1;
    ts->sync_each = sync_each;
    import_legacy(ts);
    pthread_mutex_init(&ts->mu, NULL);
    pthread_cond_init(&ts->cond, NULL);
    *out = ts;
    return TUS_OK;
}

void tus_store_close(struct tus_store **pp)
{
    if (!pp || !*pp)
        return;
    struct tus_store *ts = *pp;
    pthread_mutex_lock(&ts->mu);
    ts->stop = 1;
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->mu);
    if (ts->sweeping)
        pthread_join(ts->sweeper, NULL);
    pthread_cond_destroy(&ts->cond);
    pthread_mutex_destroy(&ts->mu);
    if (ts->dir_fd >= 0)
        close(ts->dir_fd);
    free(ts);
    *pp = NULL;
}

double tus_store_expiry(const struct tus_store *ts)
{
    return ts->expiry_s;
}

void tus_upload_clear(struct tus_upload *u)
{
    free(u->metadata);
    u->metadata = NULL;
}

/* --------------------------------------------------------------- locks */

/* A fresh lock for id: a token no other request has (node-free: 128
 * random bits). */
static int lock_init(struct tus_lock *lk, const char *id)
{
    unsigned char r[16];
    memset(lk, 0, sizeof(*lk));
    if (!tus_id_valid(id))
        return TUS_EINVAL;
    if (RAND_bytes(r, sizeof(r)) != 1)
        return TUS_EIO;
    snprintf(lk->id, sizeof(lk->id), "%s", id);
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(lk->token + 2 * i, 3, "%02x", r[i]);
    return TUS_OK;
}

int tus_store_lock(struct tus_store *ts, const char *id, struct tus_lock *lk)
{
    int rc = lock_init(lk, id);
    if (rc != TUS_OK)
        return rc == TUS_EINVAL ? TUS_ENOTFOUND : rc;
    double t = mono_s(); /* before the UPDATE: the local lease ends first */
    rc = from_store(store_upload_lock(ts->st, id, lk->token, ts->lease_s));
    if (rc == TUS_OK) {
        lk->held = 1;
        lk->taken_mono = t;
    }
    return rc;
}

int tus_store_lock_valid(struct tus_store *ts, struct tus_lock *lk)
{
    if (!lk->held)
        return 0;
    double t = mono_s();
    if (t - lk->taken_mono < ts->lease_s / 3)
        return 1;
    int rc = store_upload_renew(ts->st, lk->id, lk->token, ts->lease_s);
    if (rc == STORE_OK) {
        lk->taken_mono = t;
        return 1;
    }
    if (rc == STORE_ECONFLICT || rc == STORE_ENOTFOUND) {
        log_warn("tus: upload %s: the lock was taken by another request; stopping", lk->id);
        lk->held = 0;
        return 0;
    }
    /* The store did not answer: keep writing while the lease surely holds. */
    return mono_s() - lk->taken_mono < ts->lease_s * 0.8;
}

void tus_store_unlock(struct tus_store *ts, struct tus_lock *lk)
{
    if (!lk->held)
        return;
    lk->held = 0;
    int rc = store_upload_unlock(ts->st, lk->id, lk->token);
    if (rc != STORE_OK && rc != STORE_ECONFLICT && rc != STORE_ENOTFOUND)
        log_warn("tus: upload %s: cannot release its lock (it lapses in %.0f s)", lk->id,
                 ts->lease_s);
}

/* --------------------------------------------------------------- state */

static void to_row(const struct tus_upload *u, struct store_upload *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", u->id);
    r->offset = u->offset;
    r->length = u->length;
    r->created_at = u->created_at;
    r->expires_at = u->expires_at;
    r->finished_at = u->finished_at;
    r->phase = (int)u->phase;
    r->metadata = u->metadata; /* borrowed */
    snprintf(r->error_code, sizeof(r->error_code), "%s", u->error_code);
    snprintf(r->error_message, sizeof(r->error_message), "%s", u->error_message);
}

int tus_store_save(struct tus_store *ts, const struct tus_upload *u, const struct tus_lock *lk)
{
    struct store_upload r;
    to_row(u, &r);
    return from_store(store_upload_save(ts->st, &r, lk->token));
}

int tus_store_get(struct tus_store *ts, const char *id, struct tus_upload *u)
{
    struct store_upload r;
    memset(u, 0, sizeof(*u));
    if (!tus_id_valid(id))
        return TUS_ENOTFOUND;
    int rc = from_store(store_upload_get(ts->st, id, &r));
    if (rc != TUS_OK)
        return rc;
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->offset = r.offset;
    u->row_offset = r.offset;
    u->length = r.length;
    u->created_at = r.created_at;
    u->expires_at = r.expires_at;
    u->finished_at = r.finished_at;
    u->phase = (enum tus_phase)r.phase;
    u->metadata = r.metadata; /* ownership moves */
    snprintf(u->error_code, sizeof(u->error_code), "%s", r.error_code);
    snprintf(u->error_message, sizeof(u->error_message), "%s", r.error_message);
    /* Never claim bytes the data file does not hold (a power cut without
     * --tus-fsync may lose the data's last pages but keep the row). */
    struct stat sb;
    char data[1200];
    if (u->phase == TUS_PARTIAL && tus_store_data_path(ts, id, data, sizeof(data)) == 0 &&
        stat(data, &sb) == 0 && (int64_t)sb.st_size < u->offset) {
        log_warn("tus: upload %s: offset %lld past its data (%lld bytes); resuming at the data", id,
                 (long long)u->offset, (long long)sb.st_size);
        u->offset = (int64_t)sb.st_size;
    }
    return TUS_OK;
}

int tus_store_create(struct tus_store *ts, struct tus_upload *u, struct tus_lock *lk)
{
    char path[1200];
    int rc = tus_store_data_path(ts, u->id, path, sizeof(path));
    if (rc < 0)
        return rc;
    if ((rc = lock_init(lk, u->id)) != TUS_OK)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return io_error("cannot create", path);
    close(fd);
    if (ts->sync_each && fsync(ts->dir_fd) < 0) /* the data file's name */
        log_warn("tus: cannot fsync %s: %s", ts->dir, strerror(errno));
    u->offset = 0;
    u->row_offset = 0;
    u->phase = TUS_PARTIAL;
    u->created_at = now_s();
    u->expires_at = u->created_at + ts->expiry_s;
    struct store_upload r;
    to_row(u, &r);
    double t = mono_s();
    rc = from_store(store_upload_insert(ts->st, &r, lk->token, ts->lease_s));
    if (rc < 0) {
        unlink(path);
        return rc == TUS_ELOCKED ? TUS_EINVAL : rc; /* the id exists */
    }
    lk->held = 1;
    lk->taken_mono = t;
    return TUS_OK;
}

void tus_store_remove_data(struct tus_store *ts, const char *id)
{
    char path[1200];
    if (tus_store_data_path(ts, id, path, sizeof(path)) == 0)
        unlink(path);
}

int tus_store_remove(struct tus_store *ts, struct tus_lock *lk)
{
    if (!lk->held)
        return TUS_ELOCKED;
    /* The bytes first: a crash between leaves a row whose data is gone
     * (HEAD tells offset 0; the sweep removes it), never an orphan file. */
    tus_store_remove_data(ts, lk->id);
    int rc = from_store(store_upload_delete(ts->st, lk->id, lk->token));
    if (rc == TUS_OK)
        lk->held = 0;
    return rc;
}

struct sweep_ctx {
    struct tus_store *ts;
    double now;
    int removed;
};

static void sweep_one(void *opaque, const char *id)
{
    struct sweep_ctx *c = opaque;
    struct tus_upload u;
    struct tus_lock lk;
    /* Under the lock: a writer that just came never loses its bytes to a
     * sweep, and two nodes' sweeps never both remove it. */
    if (tus_store_lock(c->ts, id, &lk) != TUS_OK)
        return;
    if (tus_store_get(c->ts, id, &u) == TUS_OK && u.expires_at <= c->now &&
        u.phase != TUS_COMPLETE && tus_store_remove(c->ts, &lk) == TUS_OK) {
        log_info("tus: upload %s expired (%lld of %lld bytes); removed", id, (long long)u.offset,
                 (long long)u.length);
        c->removed++;
    }
    tus_upload_clear(&u);
    tus_store_unlock(c->ts, &lk);
}

int tus_store_sweep(struct tus_store *ts, double now)
{
    struct sweep_ctx c = {ts, now, 0};
    int rc = store_upload_list(ts->st, STORE_UPLOADS_EXPIRED, now, SWEEP_BATCH, sweep_one, &c);
    return rc == STORE_OK ? c.removed : from_store(rc);
}

int tus_store_each_complete(struct tus_store *ts, int all,
                            void (*fn)(void *opaque, const char *id), void *opaque)
{
    int rc = store_upload_list(ts->st, all ? STORE_UPLOADS_UNFINISHED : STORE_UPLOADS_COMPLETE, 0,
                               SWEEP_BATCH, fn, opaque);
    return from_store(rc);
}

static void *sweep_main(void *arg)
{
    struct tus_store *ts = arg;
    pthread_mutex_lock(&ts->mu);
    while (!ts->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double t = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + ts->sweep_period;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        pthread_cond_timedwait(&ts->cond, &ts->mu, &until);
        if (ts->stop)
            break;
        pthread_mutex_unlock(&ts->mu);
        tus_store_sweep(ts, now_s());
        if (ts->recover)
            tus_store_each_complete(ts, 0, ts->recover, ts->recover_opaque);
        pthread_mutex_lock(&ts->mu);
    }
    pthread_mutex_unlock(&ts->mu);
    return NULL;
}

int tus_store_sweep_start(struct tus_store *ts, double period_s,
                          void (*recover)(void *opaque, const char *id), void *opaque)
{
    ts->sweep_period = period_s > 0.05 ? period_s : 0.05;
    ts->recover = recover;
    ts->recover_opaque = opaque;
    if (pthread_create(&ts->sweeper, NULL, sweep_main, ts) != 0)
        return TUS_EIO;
    ts->sweeping = 1;
    return TUS_OK;
}

/* --------------------------------------------------------------- writes */

int tus_write_begin(struct tus_store *ts, const struct tus_upload *u, struct tus_lock *lk,
                    const char *algo, struct tus_write **out)
{
    char path[1200];
    *out = NULL;
    int rc = tus_store_data_path(ts, u->id, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (!tus_store_lock_valid(ts, lk))
        return TUS_ELOCKED;
    struct tus_write *w = calloc(1, sizeof(*w));
    if (!w)
        return TUS_ENOMEM;
    w->ts = ts;
    w->lk = lk;
    w->start = u->offset;
    w->row_offset = u->row_offset;
    w->length = u->length;
    w->fd = open(path, O_WRONLY | O_CLOEXEC);
    if (w->fd < 0) {
        rc = errno == ENOENT ? TUS_ENOTFOUND : io_error("cannot open", path);
        tus_write_free(&w);
        return rc;
    }
    /* Bytes past the offset were never acknowledged (a writer that died
     * or lost its lock left them): drop them. */
    if (ftruncate(w->fd, (off_t)w->start) < 0) {
        rc = io_error("cannot truncate", path);
        tus_write_free(&w);
        return rc;
    }
    if (algo && tus_digest_new(algo, &w->digest) < 0) {
        tus_write_free(&w);
        return TUS_ENOMEM;
    }
    *out = w;
    return TUS_OK;
}

int64_t tus_write_count(const struct tus_write *w)
{
    return w->count;
}

int tus_write_data(struct tus_write *w, const void *buf, size_t len)
{
    if ((int64_t)len > w->length - w->start - w->count)
        return TUS_ETOOBIG;
    /* Never a byte once another may hold the upload (see Locks). */
    if (!tus_store_lock_valid(w->ts, w->lk))
        return TUS_ELOCKED;
    if (w->digest && tus_digest_update(w->digest, buf, len) < 0)
        return TUS_ENOMEM;
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(w->fd, p, len, (off_t)(w->start + w->count));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_error("cannot write", "an upload's data file");
        p += n;
        len -= (size_t)n;
        w->count += n;
    }
    /* With sync_each, start the writeback of what came so far, so that
     * the fdatasync before the answer has little left to wait for. */
    if (w->ts->sync_each && w->count - w->kicked >= KICK_BYTES) {
        sync_file_range(w->fd, (off_t)(w->start + w->kicked), (off_t)(w->count - w->kicked),
                        SYNC_FILE_RANGE_WRITE);
        w->kicked = w->count;
    }
    return TUS_OK;
}

int tus_write_commit(struct tus_write **pw, struct tus_upload *u, const unsigned char *want,
                     size_t wlen)
{
    struct tus_write *w = *pw;
    int rc;
    if (want) {
        int m = w->digest ? tus_digest_matches(w->digest, want, wlen) : -1;
        if (m != 1) {
            tus_write_free(pw);
            return m == 0 ? TUS_ECHECKSUM : TUS_EIO;
        }
    }
    if (w->ts->sync_each && w->count > 0 && fdatasync(w->fd) < 0) {
        rc = io_error("cannot fdatasync", "an upload's data file");
        tus_write_free(pw);
        return rc;
    }
    /* Bytes first, then the offset: closed (a network filesystem flushes
     * on close) before the store says they are there. */
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0) {
        rc = io_error("cannot close", "an upload's data file");
        tus_write_free(pw);
        return rc;
    }
    int64_t offset = w->start + w->count;
    double expires = now_s() + w->ts->expiry_s;
    enum tus_phase phase = offset == u->length ? TUS_COMPLETE : u->phase;
    rc = from_store(store_upload_commit(w->ts->st, u->id, w->lk->token, w->row_offset, offset, expires,
                                        (int)phase));
    if (rc == TUS_OK) {
        u->offset = offset;
        u->row_offset = offset;
        u->expires_at = expires;
        u->phase = phase;
    } else if (rc == TUS_ELOCKED) {
        log_warn("tus: upload %s: lost its lock before the commit; %lld bytes not kept", u->id,
                 (long long)w->count);
        w->lk->held = 0;
    }
    tus_write_free(pw);
    return rc;
}

void tus_write_free(struct tus_write **pp)
{
    if (!pp || !*pp)
        return;
    struct tus_write *w = *pp;
    if (w->fd >= 0) {
        /* Drop what was not acknowledged, only while the upload is still
         * ours: after another took it, these bytes are its to overwrite. */
        if (w->count > 0 && tus_store_lock_valid(w->ts, w->lk) &&
            ftruncate(w->fd, (off_t)w->start) < 0)
            log_warn("tus: cannot drop unacknowledged bytes: %s", strerror(errno));
        close(w->fd);
    }
    tus_digest_free(&w->digest);
    free(w);
    *pp = NULL;
}
