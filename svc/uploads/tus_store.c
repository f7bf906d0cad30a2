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

#include "common/log.h"
#include "uploads/tus_meta.h"

enum { LOCKS_MAX = 4096, KICK_BYTES = 2 * 1024 * 1024 };

/* The offset record, <id>.off: what a PATCH commits while the upload is
 * PARTIAL. Rewritten in place (one small pwrite; with sync_each one
 * fdatasync) instead of the whole state (write, rename; with sync_each
 * fsync of the file and the folder). */
struct offset_record {
    char magic[8];
    int64_t offset;
    double expires_at;
    uint64_t check;
};

static const char OFF_MAGIC[8] = "TUSOFF1";

static uint64_t record_check(const struct offset_record *r)
{
    uint64_t e;
    memcpy(&e, &r->expires_at, sizeof(e));
    return ((uint64_t)r->offset * 0x9E3779B97F4A7C15ull) ^ e ^ 0x7475732d6f666673ull;
}

struct tus_store {
    char dir[1024];
    int dir_fd;
    double expiry_s;
    int sync_each; /* fsync chunks and states (--tus-fsync) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char (*locked)[TUS_ID_MAX + 1]; /* ids held; "" = free slot */
    size_t n_locked_slots;
    int sweeping, stop;
    double sweep_period;
    pthread_t sweeper;
};

struct tus_write {
    struct tus_store *ts;
    int fd, off_fd;
    int64_t start, length, count, kicked;
    struct tus_digest *digest;
};

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

int tus_store_open(const char *dir, double expiry_s, int sync_each, struct tus_store **out)
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
    ts->expiry_s = expiry_s;
    ts->sync_each = sync_each;
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
    free(ts->locked);
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

int tus_store_lock(struct tus_store *ts, const char *id)
{
    int rc = TUS_ELOCKED;
    size_t free_slot = (size_t)-1;
    if (!tus_id_valid(id))
        return TUS_EINVAL;
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->n_locked_slots; i++) {
        if (!ts->locked[i][0]) {
            if (free_slot == (size_t)-1)
                free_slot = i;
        } else if (strcmp(ts->locked[i], id) == 0) {
            goto out;
        }
    }
    if (free_slot == (size_t)-1) {
        if (ts->n_locked_slots >= LOCKS_MAX) {
            rc = TUS_ENOMEM;
            goto out;
        }
        size_t n = ts->n_locked_slots ? ts->n_locked_slots * 2 : 16;
        void *p = realloc(ts->locked, n * sizeof(ts->locked[0]));
        if (!p) {
            rc = TUS_ENOMEM;
            goto out;
        }
        ts->locked = p;
        memset(ts->locked + ts->n_locked_slots, 0,
               (n - ts->n_locked_slots) * sizeof(ts->locked[0]));
        free_slot = ts->n_locked_slots;
        ts->n_locked_slots = n;
    }
    snprintf(ts->locked[free_slot], sizeof(ts->locked[0]), "%s", id);
    rc = TUS_OK;
out:
    pthread_mutex_unlock(&ts->mu);
    return rc;
}

void tus_store_unlock(struct tus_store *ts, const char *id)
{
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->n_locked_slots; i++) {
        if (strcmp(ts->locked[i], id) == 0) {
            ts->locked[i][0] = '\0';
            break;
        }
    }
    pthread_mutex_unlock(&ts->mu);
}

/* --------------------------------------------------------------- state */

static const char *phase_names[] = {"partial", "complete", "done", "failed"};

/* Store offset and expiry in fd (an open <id>.off), fdatasync'd with
 * sync_each. One pwrite of one record: a process killed during it leaves
 * the old record or the new one (a torn one fails the check word). */
static int write_offset_fd(int fd, int64_t offset, double expires_at, int sync_each)
{
    struct offset_record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.magic, OFF_MAGIC, sizeof(r.magic));
    r.offset = offset;
    r.expires_at = expires_at;
    r.check = record_check(&r);
    ssize_t n;
    do
        n = pwrite(fd, &r, sizeof(r), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(r) || (sync_each && fdatasync(fd) < 0))
        return io_error("cannot store the offset of", "an upload");
    return TUS_OK;
}

static int write_offset(struct tus_store *ts, const char *id, int64_t offset, double expires_at,
                        int create)
{
    char path[1200];
    if (path_of(ts, id, ".off", path, sizeof(path)) < 0)
        return TUS_EINVAL;
    int fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
    if (fd < 0)
        return io_error("cannot open", path);
    int rc = write_offset_fd(fd, offset, expires_at, ts->sync_each);
    close(fd);
    return rc;
}

/* The offset record of id, if there is a valid one: 0, else -1. */
static int read_offset(struct tus_store *ts, const char *id, struct offset_record *r)
{
    char path[1200];
    if (path_of(ts, id, ".off", path, sizeof(path)) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, r, sizeof(*r), 0);
    close(fd);
    if (n != (ssize_t)sizeof(*r) || memcmp(r->magic, OFF_MAGIC, sizeof(OFF_MAGIC)) != 0 ||
        r->check != record_check(r))
        return -1;
    return 0;
}

int tus_store_save(struct tus_store *ts, const struct tus_upload *u)
{
    int ret = TUS_EIO;
    char path[1200], tmp[1300];
    char *text = NULL;
    int fd = -1;
    json_t *o = NULL;
    if (path_of(ts, u->id, ".json", path, sizeof(path)) < 0 ||
        path_of(ts, u->id, ".json.tmp", tmp, sizeof(tmp)) < 0)
        return TUS_EINVAL;
    o = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:s, s:s, s:s, s:s}", "id", u->id, "offset",
                  (json_int_t)u->offset, "length", (json_int_t)u->length, "created_at",
                  u->created_at, "expires_at", u->expires_at, "finished_at", u->finished_at,
                  "phase", phase_names[u->phase], "metadata", u->metadata ? u->metadata : "",
                  "error_code", u->error_code, "error_message", u->error_message);
    if (!o || !(text = json_dumps(o, JSON_COMPACT))) {
        ret = TUS_ENOMEM;
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        ret = io_error("cannot create", tmp);
        goto out;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            ret = io_error("cannot write", tmp);
            goto out;
        }
        done += (size_t)w;
    }
    if (ts->sync_each && fsync(fd) < 0) {
        ret = io_error("cannot fsync", tmp);
        goto out;
    }
    close(fd);
    fd = -1;
    /* The offset record first; with sync_each the folder's fsync below
     * makes its name durable with the state's. */
    if (u->phase == TUS_PARTIAL &&
        (ret = write_offset(ts, u->id, u->offset, u->expires_at, 1)) != TUS_OK)
        goto out;
    ret = TUS_EIO;
    if (rename(tmp, path) < 0) {
        ret = io_error("cannot rename", tmp);
        goto out;
    }
    tmp[0] = '\0';
    if (ts->sync_each && fsync(ts->dir_fd) < 0) {
        ret = io_error("cannot fsync", ts->dir);
        goto out;
    }
    ret = TUS_OK;
out:
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlink(tmp);
    free(text);
    json_decref(o);
    return ret;
}

int tus_store_get(struct tus_store *ts, const char *id, struct tus_upload *u)
{
    char path[1200];
    json_error_t jerr;
    memset(u, 0, sizeof(*u));
    if (path_of(ts, id, ".json", path, sizeof(path)) < 0)
        return TUS_ENOTFOUND;
    json_t *o = json_load_file(path, 0, &jerr);
    if (!o)
        return access(path, F_OK) == 0 ? TUS_EIO : TUS_ENOTFOUND;
    int ret = TUS_EIO;
    json_int_t off = -1, len = -1;
    double c = 0, x = 0, fin = 0;
    const char *phase = NULL, *meta = NULL, *ec = "", *em = "";
    if (json_unpack(o, "{s:I, s:I, s:F, s:F, s?F, s:s, s?s, s?s, s?s}", "offset", &off, "length",
                    &len, "created_at", &c, "expires_at", &x, "finished_at", &fin, "phase", &phase,
                    "metadata", &meta, "error_code", &ec, "error_message", &em) < 0 ||
        off < 0 || len < 0 || off > len) {
        log_error("tus: bad state file %s", path);
        goto out;
    }
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->offset = off;
    u->length = len;
    u->created_at = c;
    u->expires_at = x;
    u->finished_at = fin;
    u->phase = TUS_PARTIAL;
    for (int i = 0; i < 4; i++)
        if (strcmp(phase, phase_names[i]) == 0)
            u->phase = (enum tus_phase)i;
    struct offset_record rec;
    if (u->phase == TUS_PARTIAL && read_offset(ts, id, &rec) == 0 && rec.offset >= 0 &&
        rec.offset <= u->length) {
        u->offset = rec.offset;
        u->expires_at = rec.expires_at;
    }
    /* Never claim bytes the data file does not hold (a power cut without
     * --tus-fsync may lose the data's last pages but keep the record). */
    struct stat sb;
    char data[1200];
    if (u->phase == TUS_PARTIAL && tus_store_data_path(ts, id, data, sizeof(data)) == 0 &&
        stat(data, &sb) == 0 && (int64_t)sb.st_size < u->offset) {
        log_warn("tus: upload %s: offset %lld past its data (%lld bytes); resuming at the data", id,
                 (long long)u->offset, (long long)sb.st_size);
        u->offset = (int64_t)sb.st_size;
    }
    snprintf(u->error_code, sizeof(u->error_code), "%s", ec);
    snprintf(u->error_message, sizeof(u->error_message), "%s", em);
    if (meta && *meta && !(u->metadata = strdup(meta))) {
        ret = TUS_ENOMEM;
        goto out;
    }
    ret = TUS_OK;
out:
    json_decref(o);
    return ret;
}

int tus_store_create(struct tus_store *ts, struct tus_upload *u)
{
    char path[1200];
    int rc = tus_store_data_path(ts, u->id, path, sizeof(path));
    if (rc < 0)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return io_error("cannot create", path);
    close(fd);
    u->offset = 0;
    u->phase = TUS_PARTIAL;
    u->created_at = now_s();
    u->expires_at = u->created_at + ts->expiry_s;
    rc = tus_store_save(ts, u); /* with sync_each, fsyncs the folder: the data file's name too */
    if (rc < 0)
        unlink(path);
    return rc;
}

void tus_store_remove_data(struct tus_store *ts, const char *id)
{
    char path[1200];
    if (tus_store_data_path(ts, id, path, sizeof(path)) == 0)
        unlink(path);
}

int tus_store_remove(struct tus_store *ts, const char *id)
{
    char path[1200];
    if (path_of(ts, id, ".json", path, sizeof(path)) < 0)
        return TUS_ENOTFOUND;
    tus_store_remove_data(ts, id);
    char off[1200];
    if (path_of(ts, id, ".off", off, sizeof(off)) == 0)
        unlink(off);
    if (unlink(path) < 0)
        return errno == ENOENT ? TUS_ENOTFOUND : io_error("cannot remove", path);
    if (ts->sync_each)
        fsync(ts->dir_fd);
    return TUS_OK;
}

/* Call fn(opaque, id) for every state file of the folder. */
static int each_id(struct tus_store *ts, int (*fn)(void *opaque, const char *id), void *opaque)
{
    DIR *d = opendir(ts->dir);
    if (!d)
        return io_error("cannot list", ts->dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || l - 5 > TUS_ID_MAX || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char id[TUS_ID_MAX + 1];
        memcpy(id, e->d_name, l - 5);
        id[l - 5] = '\0';
        if (tus_id_valid(id))
            n += fn(opaque, id);
    }
    closedir(d);
    return n;
}

struct sweep_ctx {
    struct tus_store *ts;
    double now;
};

static int sweep_one(void *opaque, const char *id)
{
    struct sweep_ctx *c = opaque;
    struct tus_upload u;
    int removed = 0;
    /* Look without the lock first: a live upload's writer must never see
     * 423 because the sweep happened to pass by. */
    int expired = tus_store_get(c->ts, id, &u) == TUS_OK && u.expires_at <= c->now;
    tus_upload_clear(&u);
    if (!expired || tus_store_lock(c->ts, id) != TUS_OK)
        return 0;
    if (tus_store_get(c->ts, id, &u) == TUS_OK && u.expires_at <= c->now &&
        u.phase != TUS_COMPLETE) {
        if (tus_store_remove(c->ts, id) == TUS_OK) {
            log_info("tus: upload %s expired (%lld of %lld bytes); removed", id,
                     (long long)u.offset, (long long)u.length);
            removed = 1;
        }
    }
    tus_upload_clear(&u);
    tus_store_unlock(c->ts, id);
    return removed;
}

int tus_store_sweep(struct tus_store *ts, double now)
{
    struct sweep_ctx c = {ts, now};
    return each_id(ts, sweep_one, &c);
}

struct complete_ctx {
    struct tus_store *ts;
    void (*fn)(void *opaque, struct tus_upload *u);
    void *opaque;
};

static int complete_one(void *opaque, const char *id)
{
    struct complete_ctx *c = opaque;
    struct tus_upload u;
    if (tus_store_get(c->ts, id, &u) == TUS_OK &&
        (u.phase == TUS_COMPLETE || u.phase == TUS_FAILED))
        c->fn(c->opaque, &u);
    tus_upload_clear(&u);
    return 1;
}

int tus_store_each_complete(struct tus_store *ts, void (*fn)(void *opaque, struct tus_upload *u),
                            void *opaque)
{
    struct complete_ctx c = {ts, fn, opaque};
    int rc = each_id(ts, complete_one, &c);
    return rc < 0 ? rc : TUS_OK;
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
        pthread_mutex_lock(&ts->mu);
    }
    pthread_mutex_unlock(&ts->mu);
    return NULL;
}

int tus_store_sweep_start(struct tus_store *ts, double period_s)
{
    ts->sweep_period = period_s > 0.05 ? period_s : 0.05;
    if (pthread_create(&ts->sweeper, NULL, sweep_main, ts) != 0)
        return TUS_EIO;
    ts->sweeping = 1;
    return TUS_OK;
}

/* --------------------------------------------------------------- writes */

int tus_write_begin(struct tus_store *ts, const struct tus_upload *u, const char *algo,
                    struct tus_write **out)
{
    char path[1200];
    *out = NULL;
    int rc = tus_store_data_path(ts, u->id, path, sizeof(path));
    if (rc < 0)
        return rc;
    struct tus_write *w = calloc(1, sizeof(*w));
    if (!w)
        return TUS_ENOMEM;
    w->ts = ts;
    w->start = u->offset;
    w->length = u->length;
    w->off_fd = -1;
    char off_path[1200];
    if (path_of(ts, u->id, ".off", off_path, sizeof(off_path)) == 0)
        w->off_fd = open(off_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    w->fd = open(path, O_WRONLY | O_CLOEXEC);
    if (w->fd < 0 || w->off_fd < 0) {
        rc = errno == ENOENT ? TUS_ENOTFOUND : io_error("cannot open", path);
        tus_write_free(&w);
        return rc;
    }
    /* Bytes past the offset were never acknowledged: drop them. */
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
    struct tus_upload next = *u;
    next.offset = w->start + w->count;
    next.expires_at = now_s() + w->ts->expiry_s;
    if (next.offset == next.length)
        next.phase = TUS_COMPLETE;
    if (next.phase == TUS_PARTIAL)
        rc = write_offset_fd(w->off_fd, next.offset, next.expires_at, w->ts->sync_each);
    else
        rc = tus_store_save(w->ts, &next);
    if (rc == TUS_OK) {
        u->offset = next.offset;
        u->expires_at = next.expires_at;
        u->phase = next.phase;
        w->count = 0; /* kept: nothing to drop */
        w->start = u->offset;
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
        if (w->count > 0 && ftruncate(w->fd, (off_t)w->start) < 0)
            log_warn("tus: cannot drop unacknowledged bytes: %s", strerror(errno));
        close(w->fd);
    }
    if (w->off_fd >= 0)
        close(w->off_fd);
    tus_digest_free(&w->digest);
    free(w);
    *pp = NULL;
}
