/*
 * sqlite.c - the job store on SQLite (see store.h).
 *
 * DESIGN
 *   Schema (version 1, PRAGMA user_version):
 *     jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT   -- creation order, list cursor
 *          id TEXT UNIQUE, status TEXT, priority INTEGER,
 *          created_at/started_at/finished_at REAL (Unix s, NULL = not yet),
 *          attempts INTEGER, input_path TEXT, input_json TEXT,
 *          outputs_json TEXT, results_json TEXT, metadata_json TEXT,
 *          webhook_url TEXT, p_* progress columns, error_code TEXT,
 *          error_message TEXT)
 *     index jobs_queue(status, priority DESC, seq) serves claim-next;
 *     index jobs_status_seq(status, seq) serves the filtered list.
 *   States: queued -> running -> succeeded | failed | canceled, plus
 *   running -> queued (requeue) and queued -> canceled; a refused tus
 *   upload is inserted as failed directly (with its job.failed rows). Every transition is
 *   one UPDATE guarded by the expected old status inside one transaction
 *   (BEGIN IMMEDIATE), so two threads can never both claim a job or end it
 *   twice; a later outbox row (webhooks) joins that same transaction.
 *   Durability: WAL with synchronous=NORMAL: a committed job survives a
 *   crash of the process (kill -9); a power cut may lose the last commits.
 *   Threads: a small pool of connections; a call borrows one for its length.
 */
#include "store/store.h"
#include "store/backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/log.h"
#include "store/hook_event.h"

enum { POOL_MAX = 16 };

struct sqlite_store {
    struct store base; /* first: store.c sees only this */
    char path[1100];
    pthread_mutex_t lock;
    sqlite3 *idle[POOL_MAX];
    int n_idle;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " status TEXT NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " created_at REAL NOT NULL,"
    " started_at REAL, finished_at REAL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " input_path TEXT NOT NULL,"
    " input_json TEXT NOT NULL,"
    " outputs_json TEXT NOT NULL,"
    " results_json TEXT,"
    " metadata_json TEXT NOT NULL DEFAULT '{}',"
    " webhook_url TEXT,"
    " p_percent REAL NOT NULL DEFAULT 0, p_out_time REAL NOT NULL DEFAULT 0,"
    " p_frames INTEGER NOT NULL DEFAULT 0, p_fps REAL NOT NULL DEFAULT 0,"
    " p_speed REAL NOT NULL DEFAULT 0, p_eta REAL NOT NULL DEFAULT -1,"
    " error_code TEXT, error_message TEXT);"
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, priority DESC, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs(status, seq);"
    "PRAGMA user_version = 1;";

static int hooks_schema(sqlite3 *db);
static int hooks_enqueue(sqlite3 *db, const char *job_id, int event);
static int hooks_after_transition(sqlite3 *db, const char *job_id);

#define JOB_COLUMNS                                                                          \
    "seq, id, status, priority, created_at, started_at, finished_at, attempts, input_path, " \
    "input_json, outputs_json, results_json, metadata_json, webhook_url, p_percent, "        \
    "p_out_time, p_frames, p_fps, p_speed, p_eta, error_code, error_message"

static sqlite3 *conn_open(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        if (err)
            snprintf(err, errlen, "cannot open %s: %s", path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &msg) != SQLITE_OK) {
        if (err)
            snprintf(err, errlen, "cannot set up %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* Borrow a connection for this thread; NULL on failure (logged). */
static sqlite3 *conn_get(struct store *base)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    sqlite3 *db = NULL;
    pthread_mutex_lock(&st->lock);
    if (st->n_idle > 0)
        db = st->idle[--st->n_idle];
    pthread_mutex_unlock(&st->lock);
    if (db)
        return db;
    char err[512];
    db = conn_open(st->path, err, sizeof(err));
    if (!db)
        log_error("store: %s", err);
    return db;
}

static void conn_put(struct store *base, sqlite3 *db)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    if (!db)
        return;
    pthread_mutex_lock(&st->lock);
    if (st->n_idle < POOL_MAX) {
        st->idle[st->n_idle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&st->lock);
    sqlite3_close(db);
}

static void sq_close(struct store *base);

static int sq_open(const char *url, struct store **out, char *err, size_t errlen)
{
    int ret = STORE_EINVAL;
    struct sqlite_store *st = NULL;
    sqlite3 *db = NULL;
    char *msg = NULL;

    if (strncmp(url, "sqlite:", 7) != 0 || url[7] == '\0') {
        snprintf(err, errlen, "unsupported store URL '%s' (expected sqlite:<path>)", url);
        goto out;
    }
    ret = STORE_ENOMEM;
    st = calloc(1, sizeof(*st));
    if (!st)
        goto out;
    pthread_mutex_init(&st->lock, NULL);
    ret = STORE_EINVAL;
    if (strlen(url + 7) >= sizeof(st->path)) {
        snprintf(err, errlen, "store path too long");
        goto out;
    }
    snprintf(st->path, sizeof(st->path), "%s", url + 7);
    ret = STORE_EIO;
    db = conn_open(st->path, err, errlen);
    if (!db)
        goto out;
    if (sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create the schema in %s: %s", st->path, msg ? msg : "?");
        goto out;
    }
    if (hooks_schema(db) != STORE_OK) {
        snprintf(err, errlen, "cannot create the webhook tables in %s", st->path);
        goto out;
    }
    st->idle[st->n_idle++] = db;
    db = NULL;
    *out = &st->base;
    st = NULL;
    ret = STORE_OK;
out:
    sqlite3_free(msg);
    sqlite3_close(db);
    if (st)
        sq_close(&st->base);
    return ret;
}

static void sq_close(struct store *base)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    for (int i = 0; i < st->n_idle; i++)
        sqlite3_close(st->idle[i]);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* ------------------------------------------------------------- helpers */

static int fail(sqlite3 *db, const char *what)
{
    log_error("store: %s: %s", what, sqlite3_errmsg(db));
    return STORE_EIO;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("store: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return STORE_EIO;
    }
    return STORE_OK;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static int col_dup(sqlite3_stmt *s, int i, char **out)
{
    const unsigned char *v = sqlite3_column_text(s, i);
    *out = NULL;
    if (!v)
        return 0;
    *out = strdup((const char *)v);
    return *out ? 0 : -1;
}

/* Fill job from a row selected with JOB_COLUMNS. */
static int row_to_job(sqlite3_stmt *s, struct job *job)
{
    memset(job, 0, sizeof(*job));
    job->seq = sqlite3_column_int64(s, 0);
    snprintf(job->id, sizeof(job->id), "%s", (const char *)sqlite3_column_text(s, 1));
    int st = job_status_parse((const char *)sqlite3_column_text(s, 2));
    job->status = st < 0 ? JOB_FAILED : (enum job_status)st;
    job->priority = sqlite3_column_int(s, 3);
    job->created_at = sqlite3_column_double(s, 4);
    job->started_at = sqlite3_column_double(s, 5);
    job->finished_at = sqlite3_column_double(s, 6);
    job->attempts = sqlite3_column_int(s, 7);
    int bad = 0;
    bad |= col_dup(s, 8, &job->input_path);
    bad |= col_dup(s, 9, &job->input_json);
    bad |= col_dup(s, 10, &job->outputs_json);
    bad |= col_dup(s, 11, &job->results_json);
    bad |= col_dup(s, 12, &job->metadata_json);
    bad |= col_dup(s, 13, &job->webhook_url);
    job->progress.percent = sqlite3_column_double(s, 14);
    job->progress.out_time_s = sqlite3_column_double(s, 15);
    job->progress.frames = sqlite3_column_int64(s, 16);
    job->progress.fps = sqlite3_column_double(s, 17);
    job->progress.speed = sqlite3_column_double(s, 18);
    job->progress.eta_s = sqlite3_column_double(s, 19);
    bad |= col_dup(s, 20, &job->error_code);
    bad |= col_dup(s, 21, &job->error_message);
    if (bad) {
        job_clear(job);
        return STORE_ENOMEM;
    }
    return STORE_OK;
}

/* Run one UPDATE guarded by status inside its own transaction; returns
 * STORE_OK if a row changed, STORE_ECONFLICT if the job exists but was not
 * in the expected state, STORE_ENOTFOUND if it does not exist. */
static int update_one(sqlite3 *db, sqlite3_stmt *s, const char *id)
{
    int ret = STORE_EIO;
    if (sqlite3_step(s) != SQLITE_DONE)
        return fail(db, "update");
    if (sqlite3_changes(db) == 1)
        return STORE_OK;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM jobs WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
        return fail(db, "prepare");
    bind_text(q, 1, id);
    int rc = sqlite3_step(q);
    ret = rc == SQLITE_ROW ? STORE_ECONFLICT : rc == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    sqlite3_finalize(q);
    return ret;
}

/* ------------------------------------------------------------ the calls */

/* INSERT job in status (queued, or failed with finished_at = now and the
 * error); the caller runs the transaction, if any. */
static int insert_job(sqlite3 *db, struct job *job, enum job_status status,
                      const char *error_code, const char *error_message)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    double finished = status == JOB_QUEUED ? 0 : job_now();
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO jobs (id, status, priority, created_at, finished_at, "
                           "attempts, input_path, input_json, outputs_json, metadata_json, "
                           "webhook_url, error_code, error_message) "
                           "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare insert");
        goto out;
    }
    bind_text(s, 1, job->id);
    bind_text(s, 2, job_status_name(status));
    sqlite3_bind_int(s, 3, job->priority);
    sqlite3_bind_double(s, 4, job->created_at);
    if (finished > 0)
        sqlite3_bind_double(s, 5, finished);
    bind_text(s, 6, job->input_path);
    bind_text(s, 7, job->input_json ? job->input_json : "{}");
    bind_text(s, 8, job->outputs_json ? job->outputs_json : "[]");
    bind_text(s, 9, job->metadata_json ? job->metadata_json : "{}");
    bind_text(s, 10, job->webhook_url);
    bind_text(s, 11, error_code);
    bind_text(s, 12, error_message);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT) {
        ret = STORE_ECONFLICT;
        goto out;
    }
    if (rc != SQLITE_DONE) {
        ret = fail(db, "insert job");
        goto out;
    }
    job->seq = sqlite3_last_insert_rowid(db);
    job->status = status;
    job->attempts = 0;
    job->finished_at = finished;
    ret = STORE_OK;
out:
    sqlite3_finalize(s);
    return ret;
}

static int sq_job_create(struct store *st, struct job *job)
{
    int ret = STORE_EIO;
    sqlite3 *db = conn_get(st);
    if (db)
        ret = insert_job(db, job, JOB_QUEUED, NULL, NULL);
    conn_put(st, db);
    return ret;
}

static int sq_job_create_failed(struct store *st, struct job *job)
{
    int ret = STORE_EIO;
    int in_tx = 0;
    sqlite3 *db = conn_get(st);
    if (!job->error_code) {
        ret = STORE_EINVAL;
        goto out;
    }
    if (!db)
        goto out;
    if (exec(db, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    in_tx = 1;
    ret = insert_job(db, job, JOB_FAILED, job->error_code, job->error_message);
    if (ret != STORE_OK)
        goto out;
    /* job.failed to its webhooks, in the same transaction */
    ret = hooks_after_transition(db, job->id);
    if (ret != STORE_OK)
        goto out;
    ret = exec(db, "COMMIT");
    if (ret == STORE_OK)
        in_tx = 0;
out:
    if (in_tx)
        exec(db, "ROLLBACK");
    conn_put(st, db);
    return ret;
}

static int sq_job_claim_next(struct store *st, struct job **out)
{
    int ret = STORE_EIO;
    int in_tx = 0;
    sqlite3_stmt *sel = NULL, *upd = NULL;
    struct job *job = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (exec(db, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    in_tx = 1;
    if (sqlite3_prepare_v2(db,
                           "SELECT id FROM jobs WHERE status = 'queued' "
                           "ORDER BY priority DESC, seq LIMIT 1",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "UPDATE jobs SET status = 'running', started_at = ?, "
                           "attempts = attempts + 1, p_percent = 0, p_out_time = 0, "
                           "p_frames = 0, p_fps = 0, p_speed = 0, p_eta = -1 "
                           "WHERE id = ? AND status = 'queued' RETURNING " JOB_COLUMNS,
                           -1, &upd, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare claim");
        goto out;
    }
    int rc = sqlite3_step(sel);
    if (rc == SQLITE_DONE) {
        ret = STORE_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = fail(db, "select next");
        goto out;
    }
    sqlite3_bind_double(upd, 1, job_now());
    sqlite3_bind_text(upd, 2, (const char *)sqlite3_column_text(sel, 0), -1, SQLITE_TRANSIENT);
    sqlite3_reset(sel);
    if (sqlite3_step(upd) != SQLITE_ROW) {
        ret = fail(db, "claim");
        goto out;
    }
    ret = STORE_ENOMEM;
    job = calloc(1, sizeof(*job));
    if (!job || row_to_job(upd, job) != STORE_OK)
        goto out;
    sqlite3_reset(upd);
    ret = hooks_enqueue(db, job->id, HOOK_EVENT_STARTED); /* same transaction */
    if (ret != STORE_OK)
        goto out;
    ret = exec(db, "COMMIT");
    if (ret != STORE_OK)
        goto out;
    in_tx = 0;
    *out = job;
    job = NULL;
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    if (in_tx && db)
        exec(db, "ROLLBACK");
    job_free(&job); /* its strings too (a failure after row_to_job) */
    conn_put(st, db);
    return ret;
}

static int sq_job_progress(struct store *st, const char *id, const struct job_progress *p)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "UPDATE jobs SET p_percent = ?, p_out_time = ?, p_frames = ?, "
                           "p_fps = ?, p_speed = ?, p_eta = ? WHERE id = ? AND status = 'running'",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare progress");
        goto out;
    }
    sqlite3_bind_double(s, 1, p->percent);
    sqlite3_bind_double(s, 2, p->out_time_s);
    sqlite3_bind_int64(s, 3, p->frames);
    sqlite3_bind_double(s, 4, p->fps);
    sqlite3_bind_double(s, 5, p->speed);
    sqlite3_bind_double(s, 6, p->eta_s);
    bind_text(s, 7, id);
    ret = update_one(db, s, id);
    if (ret == STORE_OK)
        ret = hooks_enqueue(db, id, HOOK_EVENT_PROGRESS); /* throttled to 1/s per job */
out:
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

/* One guarded UPDATE in its own IMMEDIATE transaction. */
static int transition(struct store *st, const char *id, const char *sql,
                      void (*bind)(sqlite3_stmt *, const void *), const void *arg)
{
    int ret = STORE_EIO;
    int in_tx = 0;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (exec(db, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    in_tx = 1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare transition");
        goto out;
    }
    if (bind)
        bind(s, arg);
    ret = update_one(db, s, id);
    if (ret != STORE_OK)
        goto out;
    /* The webhook outbox rows of this change, in the same transaction. */
    ret = hooks_after_transition(db, id);
    if (ret != STORE_OK)
        goto out;
    ret = exec(db, "COMMIT");
    if (ret == STORE_OK)
        in_tx = 0;
out:
    sqlite3_finalize(s);
    if (in_tx && db)
        exec(db, "ROLLBACK");
    conn_put(st, db);
    return ret;
}

struct finish_args {
    const char *id;
    enum job_status status;
    const char *code, *message, *results;
};

static void bind_finish(sqlite3_stmt *s, const void *arg)
{
    const struct finish_args *a = arg;
    bind_text(s, 1, job_status_name(a->status));
    sqlite3_bind_double(s, 2, job_now());
    bind_text(s, 3, a->code);
    bind_text(s, 4, a->message);
    bind_text(s, 5, a->results);
    sqlite3_bind_int(s, 6, a->status == JOB_SUCCEEDED);
    bind_text(s, 7, a->id);
}

static int sq_job_finish(struct store *st, const char *id, enum job_status status,
                     const char *error_code, const char *error_message, const char *results_json)
{
    if (!job_status_is_final(status))
        return STORE_EINVAL;
    struct finish_args a = {id, status, error_code, error_message, results_json};
    return transition(st, id,
                      "UPDATE jobs SET status = ?, finished_at = ?, error_code = ?, "
                      "error_message = ?, results_json = ?, "
                      "p_percent = CASE WHEN ? THEN 100 ELSE p_percent END, p_eta = -1 "
                      "WHERE id = ? AND status IN ('queued', 'running')",
                      bind_finish, &a);
}

static void bind_id(sqlite3_stmt *s, const void *arg) { bind_text(s, 1, arg); }

static void bind_time_id(sqlite3_stmt *s, const void *arg)
{
    sqlite3_bind_double(s, 1, job_now());
    bind_text(s, 2, arg);
}

static int sq_job_cancel_queued(struct store *st, const char *id)
{
    return transition(st, id,
                      "UPDATE jobs SET status = 'canceled', finished_at = ? "
                      "WHERE id = ? AND status = 'queued'",
                      bind_time_id, id);
}

static int sq_job_requeue(struct store *st, const char *id)
{
    return transition(st, id,
                      "UPDATE jobs SET status = 'queued', started_at = NULL, p_percent = 0, "
                      "p_out_time = 0, p_frames = 0, p_fps = 0, p_speed = 0, p_eta = -1 "
                      "WHERE id = ? AND status = 'running'",
                      bind_id, id);
}

static int sq_requeue_running(struct store *st, void (*fn)(void *opaque, const char *id),
                          void *opaque)
{
    int ret = STORE_EIO;
    int in_tx = 0;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (exec(db, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    in_tx = 1;
    if (sqlite3_prepare_v2(db,
                           "UPDATE jobs SET status = 'queued', started_at = NULL, p_percent = 0, "
                           "p_out_time = 0, p_frames = 0, p_fps = 0, p_speed = 0, p_eta = -1 "
                           "WHERE status = 'running' RETURNING id",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare requeue");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn)
            fn(opaque, (const char *)sqlite3_column_text(s, 0));
    if (rc != SQLITE_DONE) {
        ret = fail(db, "requeue");
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    ret = exec(db, "COMMIT");
    if (ret == STORE_OK)
        in_tx = 0;
out:
    sqlite3_finalize(s);
    if (in_tx && db)
        exec(db, "ROLLBACK");
    conn_put(st, db);
    return ret;
}

static int sq_job_get(struct store *st, const char *id, struct job **out)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    struct job *job = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", -1, &s, NULL) !=
        SQLITE_OK) {
        ret = fail(db, "prepare get");
        goto out;
    }
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        ret = STORE_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = fail(db, "get");
        goto out;
    }
    ret = STORE_ENOMEM;
    job = calloc(1, sizeof(*job));
    if (!job || row_to_job(s, job) != STORE_OK)
        goto out;
    *out = job;
    job = NULL;
    ret = STORE_OK;
out:
    job_free(&job); /* its strings too (a failure after row_to_job) */
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

static int walk(struct store *st, const char *sql, void (*bind)(sqlite3_stmt *, const void *),
                const void *arg, int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare list");
        goto out;
    }
    if (bind)
        bind(s, arg);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct job job;
        if (row_to_job(s, &job) != STORE_OK) {
            ret = STORE_ENOMEM;
            goto out;
        }
        int stop = fn(opaque, &job);
        job_clear(&job);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) {
        ret = fail(db, "list");
        goto out;
    }
    ret = STORE_OK;
out:
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

struct list_args {
    int status;
    int64_t before;
    int limit;
};

static void bind_list(sqlite3_stmt *s, const void *arg)
{
    const struct list_args *a = arg;
    if (a->status >= 0)
        bind_text(s, 1, job_status_name((enum job_status)a->status));
    else
        sqlite3_bind_null(s, 1);
    sqlite3_bind_int64(s, 2, a->before > 0 ? a->before : INT64_MAX);
    sqlite3_bind_int(s, 3, a->limit);
}

static int sq_job_list(struct store *st, int status, int64_t before_seq, int limit,
                   int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    struct list_args a = {status, before_seq, limit};
    const char *sql = status >= 0 ? "SELECT " JOB_COLUMNS " FROM jobs WHERE status = ?1 AND "
                                    "seq < ?2 ORDER BY seq DESC LIMIT ?3"
                                  : "SELECT " JOB_COLUMNS " FROM jobs WHERE ?1 IS NULL AND "
                                    "seq < ?2 ORDER BY seq DESC LIMIT ?3";
    return walk(st, sql, bind_list, &a, fn, opaque);
}

static int sq_job_list_active(struct store *st, int (*fn)(void *opaque, const struct job *job),
                          void *opaque)
{
    return walk(st,
                "SELECT " JOB_COLUMNS " FROM jobs WHERE status IN ('queued', 'running') "
                "ORDER BY seq",
                NULL, NULL, fn, opaque);
}

static int sq_count_by_status(struct store *st, int64_t counts[5])
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    memset(counts, 0, 5 * sizeof(counts[0]));
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db, "SELECT status, count(*) FROM jobs GROUP BY status", -1, &s,
                           NULL) != SQLITE_OK) {
        ret = fail(db, "prepare count");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int k = job_status_parse((const char *)sqlite3_column_text(s, 0));
        if (k >= 0)
            counts[k] = sqlite3_column_int64(s, 1);
    }
    ret = rc == SQLITE_DONE ? STORE_OK : fail(db, "count");
out:
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

/* ============================================================= webhooks
 * Webhook registrations and the delivery outbox (see store.h).
 *   webhooks(id TEXT PRIMARY KEY, job_id TEXT NULL = global, url TEXT,
 *            events INTEGER mask of store/hook_event.h, created_at REAL)
 *   hook_deliveries(seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT,
 *            job_id, event, url, body TEXT (payload fixed at the event),
 *            created_at REAL, state TEXT pending|delivered|failed|gone,
 *            attempts INTEGER, next_at REAL)
 *   hook_attempts(delivery_seq, attempt, at, http_status, error,
 *            duration_s, outcome)
 * Rows of hook_deliveries are inserted by hooks_enqueue inside the
 * transaction of the job change (transition, claim); the outbox thread
 * (hooks/outbox.c) reads the pending ones and records every attempt. */

static const char hooks_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS webhooks ("
    " id TEXT PRIMARY KEY, job_id TEXT, url TEXT NOT NULL,"
    " events INTEGER NOT NULL, created_at REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS webhooks_job ON webhooks(job_id);"
    "CREATE TABLE IF NOT EXISTS hook_deliveries ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " msg_id TEXT NOT NULL, job_id TEXT NOT NULL, event TEXT NOT NULL,"
    " url TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
    " next_at REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS hook_deliveries_state ON hook_deliveries(state, seq);"
    "CREATE INDEX IF NOT EXISTS hook_deliveries_job ON hook_deliveries(job_id, event, created_at);"
    "CREATE TABLE IF NOT EXISTS hook_attempts ("
    " delivery_seq INTEGER NOT NULL, attempt INTEGER NOT NULL, at REAL NOT NULL,"
    " http_status INTEGER NOT NULL, error TEXT, duration_s REAL NOT NULL,"
    " outcome TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS hook_attempts_delivery ON hook_attempts(delivery_seq, attempt);";

enum { HOOKS_MAX_TARGETS = 256 };

static int hooks_schema(sqlite3 *db) { return exec(db, hooks_schema_sql); }

/* Render event for job_id once and queue it to each of urls, inside the
 * caller's transaction. */
static int hooks_insert_event(sqlite3 *db, const char *job_id, int event, char **urls,
                              size_t n_urls)
{
    int ret = STORE_EIO;
    sqlite3_stmt *sel = NULL, *ins = NULL;
    struct job job;
    int have_job = 0;
    json_t *obj = NULL;
    char *body = NULL;
    size_t body_len = 0;

    if (n_urls == 0)
        return STORE_OK;
    if (sqlite3_prepare_v2(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", -1, &sel,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO hook_deliveries (msg_id, job_id, event, url, body, "
                           "created_at, state, attempts, next_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
                           -1, &ins, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare webhook event");
        goto out;
    }
    bind_text(sel, 1, job_id);
    int rc = sqlite3_step(sel);
    if (rc != SQLITE_ROW) {
        ret = rc == SQLITE_DONE ? STORE_ENOTFOUND : fail(db, "webhook event job");
        goto out;
    }
    ret = STORE_ENOMEM;
    if (row_to_job(sel, &job) != STORE_OK)
        goto out;
    have_job = 1;
    double now = job_now();
    obj = job_to_json(&job, 0);
    body = obj ? hook_event_body(event, obj, now, &body_len) : NULL;
    if (!body)
        goto out;
    for (size_t i = 0; i < n_urls; i++) {
        char msg_id[HOOK_MSG_ID_MAX];
        if (hook_msg_id(msg_id, sizeof(msg_id)) != 0) {
            ret = STORE_EIO;
            goto out;
        }
        sqlite3_reset(ins);
        bind_text(ins, 1, msg_id);
        bind_text(ins, 2, job_id);
        bind_text(ins, 3, hook_event_name(event));
        bind_text(ins, 4, urls[i]);
        sqlite3_bind_text(ins, 5, body, (int)body_len, SQLITE_STATIC);
        sqlite3_bind_double(ins, 6, now);
        sqlite3_bind_double(ins, 7, now);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            ret = fail(db, "insert webhook delivery");
            goto out;
        }
    }
    ret = STORE_OK;
out:
    free(body);
    json_decref(obj);
    if (have_job)
        job_clear(&job);
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    return ret;
}

/* Queue event of job_id to every webhook that wants it: the job's upload
 * webhook_url (default events), its own registrations and the global ones.
 * Runs inside the caller's transaction; costs one indexed query when
 * nobody listens. job.progress is queued at most once a second per job. */
static int hooks_enqueue(sqlite3 *db, const char *job_id, int event)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    char *urls[HOOKS_MAX_TARGETS];
    size_t n = 0;

    if (event == HOOK_EVENT_PROGRESS) {
        if (sqlite3_prepare_v2(db,
                               "SELECT 1 FROM hook_deliveries WHERE job_id = ? AND "
                               "event = 'job.progress' AND created_at > ? LIMIT 1",
                               -1, &s, NULL) != SQLITE_OK) {
            ret = fail(db, "prepare progress throttle");
            goto out;
        }
        bind_text(s, 1, job_id);
        sqlite3_bind_double(s, 2, job_now() - 1.0);
        int rc = sqlite3_step(s);
        sqlite3_finalize(s);
        s = NULL;
        if (rc == SQLITE_ROW)
            return STORE_OK;
        if (rc != SQLITE_DONE)
            return fail(db, "progress throttle");
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT webhook_url FROM jobs WHERE id = ?1 AND webhook_url IS NOT "
                           "NULL AND webhook_url <> '' AND (?2 & ?3) <> 0 "
                           "UNION ALL SELECT url FROM webhooks WHERE (job_id = ?1 OR job_id IS "
                           "NULL) AND (events & ?2) <> 0",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare webhook targets");
        goto out;
    }
    bind_text(s, 1, job_id);
    sqlite3_bind_int(s, 2, event);
    sqlite3_bind_int(s, 3, HOOK_EVENTS_DEFAULT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < HOOKS_MAX_TARGETS) {
        urls[n] = strdup((const char *)sqlite3_column_text(s, 0));
        if (!urls[n]) {
            ret = STORE_ENOMEM;
            goto out;
        }
        n++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        ret = fail(db, "webhook targets");
        goto out;
    }
    if (rc == SQLITE_ROW)
        log_warn("job %s has more than %d webhooks; the rest get no %s", job_id,
                 HOOKS_MAX_TARGETS, hook_event_name(event));
    ret = hooks_insert_event(db, job_id, event, urls, n);
out:
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    sqlite3_finalize(s);
    return ret;
}

/* After a transition of job_id: queue its final event if it just ended. */
static int hooks_after_transition(sqlite3 *db, const char *job_id)
{
    sqlite3_stmt *s = NULL;
    int event = 0;
    if (sqlite3_prepare_v2(db, "SELECT status FROM jobs WHERE id = ?", -1, &s, NULL) != SQLITE_OK)
        return fail(db, "prepare status");
    bind_text(s, 1, job_id);
    if (sqlite3_step(s) == SQLITE_ROW)
        event = hook_event_for_status((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return event ? hooks_enqueue(db, job_id, event) : STORE_OK;
}

static int sq_webhook_add(struct store *st, const char *job_id, const char *url, int events,
                      struct store_webhook *out, int *queued)
{
    int ret = STORE_EIO;
    int in_tx = 0;
    sqlite3_stmt *s = NULL;
    char *status = NULL;
    sqlite3 *db = conn_get(st);

    *queued = 0;
    if (!db)
        goto out;
    if (store_new_webhook_id(out->id) != STORE_OK)
        goto out;
    out->created_at = job_now();
    if (exec(db, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    in_tx = 1;
    if (job_id) {
        if (sqlite3_prepare_v2(db, "SELECT status FROM jobs WHERE id = ?", -1, &s, NULL) !=
            SQLITE_OK) {
            ret = fail(db, "prepare webhook job");
            goto out;
        }
        bind_text(s, 1, job_id);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            ret = rc == SQLITE_DONE ? STORE_ENOTFOUND : fail(db, "webhook job");
            goto out;
        }
        status = strdup((const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        s = NULL;
        if (!status) {
            ret = STORE_ENOMEM;
            goto out;
        }
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO webhooks (id, job_id, url, events, created_at) "
                           "VALUES (?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare webhook insert");
        goto out;
    }
    bind_text(s, 1, out->id);
    bind_text(s, 2, job_id);
    bind_text(s, 3, url);
    sqlite3_bind_int(s, 4, events);
    sqlite3_bind_double(s, 5, out->created_at);
    if (sqlite3_step(s) != SQLITE_DONE) {
        ret = fail(db, "insert webhook");
        goto out;
    }
    /* A job that already ended: its final event goes to this URL now. */
    int final_event = hook_event_for_status(status);
    if (final_event & events) {
        char *one = (char *)(uintptr_t)url;
        ret = hooks_insert_event(db, job_id, final_event, &one, 1);
        if (ret != STORE_OK)
            goto out;
        *queued = 1;
    }
    ret = exec(db, "COMMIT");
    if (ret == STORE_OK)
        in_tx = 0;
    out->job_id = job_id;
    out->url = url;
    out->events = events;
out:
    free(status);
    sqlite3_finalize(s);
    if (in_tx && db)
        exec(db, "ROLLBACK");
    conn_put(st, db);
    return ret;
}

static int sq_webhook_list(struct store *st, const char *job_id,
                       int (*fn)(void *opaque, const struct store_webhook *w), void *opaque)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, job_id, url, events, created_at FROM webhooks "
                           "WHERE job_id IS ? ORDER BY created_at, rowid",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare webhook list");
        goto out;
    }
    bind_text(s, 1, job_id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_webhook w = {0};
        snprintf(w.id, sizeof(w.id), "%s", (const char *)sqlite3_column_text(s, 0));
        w.job_id = (const char *)sqlite3_column_text(s, 1);
        w.url = (const char *)sqlite3_column_text(s, 2);
        w.events = sqlite3_column_int(s, 3);
        w.created_at = sqlite3_column_double(s, 4);
        if (fn(opaque, &w)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    ret = rc == SQLITE_DONE ? STORE_OK : fail(db, "webhook list");
out:
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

static int sq_webhook_delete(struct store *st, const char *id)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db, "DELETE FROM webhooks WHERE id = ? AND job_id IS NULL", -1, &s,
                           NULL) != SQLITE_OK) {
        ret = fail(db, "prepare webhook delete");
        goto out;
    }
    bind_text(s, 1, id);
    if (sqlite3_step(s) != SQLITE_DONE) {
        ret = fail(db, "webhook delete");
        goto out;
    }
    ret = sqlite3_changes(db) == 1 ? STORE_OK : STORE_ENOTFOUND;
out:
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

#define DELIVERY_COLUMNS                                                                  \
    "seq, msg_id, job_id, event, url, body, state, created_at, next_at, attempts"

static void row_to_delivery(sqlite3_stmt *s, struct store_delivery *d)
{
    d->seq = sqlite3_column_int64(s, 0);
    d->msg_id = (const char *)sqlite3_column_text(s, 1);
    d->job_id = (const char *)sqlite3_column_text(s, 2);
    d->event = (const char *)sqlite3_column_text(s, 3);
    d->url = (const char *)sqlite3_column_text(s, 4);
    d->body = (const char *)sqlite3_column_text(s, 5);
    d->body_len = (size_t)sqlite3_column_bytes(s, 5);
    d->state = (const char *)sqlite3_column_text(s, 6);
    d->created_at = sqlite3_column_double(s, 7);
    d->next_at = sqlite3_column_double(s, 8);
    d->attempts = sqlite3_column_int(s, 9);
}

static int sq_delivery_pending(struct store *st, int64_t after_seq, int limit,
                           int (*fn)(void *opaque, const struct store_delivery *d), void *opaque)
{
    int ret = STORE_EIO;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT " DELIVERY_COLUMNS " FROM hook_deliveries "
                           "WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
                           -1, &s, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare pending deliveries");
        goto out;
    }
    sqlite3_bind_int64(s, 1, after_seq);
    sqlite3_bind_int(s, 2, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_delivery d;
        row_to_delivery(s, &d);
        if (fn(opaque, &d)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    ret = rc == SQLITE_DONE ? STORE_OK : fail(db, "pending deliveries");
out:
    sqlite3_finalize(s);
    conn_put(st, db);
    return ret;
}

static int sq_delivery_attempt(struct store *st, const struct store_attempt *a)
{
    int ret = STORE_EIO;
    int in_tx = 0;
    sqlite3_stmt *ins = NULL, *upd = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (exec(db, "BEGIN IMMEDIATE") != STORE_OK)
        goto out;
    in_tx = 1;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO hook_attempts (delivery_seq, attempt, at, http_status, "
                           "error, duration_s, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "UPDATE hook_deliveries SET state = ?, attempts = ?, next_at = ? "
                           "WHERE seq = ?",
                           -1, &upd, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare delivery attempt");
        goto out;
    }
    sqlite3_bind_int64(ins, 1, a->delivery_seq);
    sqlite3_bind_int(ins, 2, a->attempt);
    sqlite3_bind_double(ins, 3, a->at);
    sqlite3_bind_int(ins, 4, a->http_status);
    bind_text(ins, 5, a->error && *a->error ? a->error : NULL);
    sqlite3_bind_double(ins, 6, a->duration_s);
    bind_text(ins, 7, a->outcome);
    bind_text(upd, 1, a->state);
    sqlite3_bind_int(upd, 2, a->attempt);
    sqlite3_bind_double(upd, 3, a->next_at);
    sqlite3_bind_int64(upd, 4, a->delivery_seq);
    if (sqlite3_step(ins) != SQLITE_DONE || sqlite3_step(upd) != SQLITE_DONE) {
        ret = fail(db, "record delivery attempt");
        goto out;
    }
    ret = exec(db, "COMMIT");
    if (ret == STORE_OK)
        in_tx = 0;
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    if (in_tx && db)
        exec(db, "ROLLBACK");
    conn_put(st, db);
    return ret;
}

static int sq_delivery_list(struct store *st, const char *job_id,
                        int (*fn_delivery)(void *opaque, const struct store_delivery *d),
                        int (*fn_attempt)(void *opaque, const struct store_attempt *a),
                        void *opaque)
{
    int ret = STORE_EIO;
    sqlite3_stmt *q = NULL, *ds = NULL, *as = NULL;
    sqlite3 *db = conn_get(st);
    if (!db)
        goto out;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM jobs WHERE id = ?", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT " DELIVERY_COLUMNS " FROM hook_deliveries "
                           "WHERE job_id = ? ORDER BY seq",
                           -1, &ds, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT a.delivery_seq, a.attempt, a.at, a.http_status, a.error, "
                           "a.duration_s, a.outcome FROM hook_attempts a JOIN hook_deliveries d "
                           "ON a.delivery_seq = d.seq WHERE d.job_id = ? "
                           "ORDER BY a.delivery_seq, a.attempt",
                           -1, &as, NULL) != SQLITE_OK) {
        ret = fail(db, "prepare delivery list");
        goto out;
    }
    bind_text(q, 1, job_id);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        ret = rc == SQLITE_DONE ? STORE_ENOTFOUND : fail(db, "delivery list job");
        goto out;
    }
    bind_text(ds, 1, job_id);
    while ((rc = sqlite3_step(ds)) == SQLITE_ROW) {
        struct store_delivery d;
        row_to_delivery(ds, &d);
        if (fn_delivery(opaque, &d))
            break;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        ret = fail(db, "delivery list");
        goto out;
    }
    bind_text(as, 1, job_id);
    while ((rc = sqlite3_step(as)) == SQLITE_ROW) {
        struct store_attempt a = {
            .delivery_seq = sqlite3_column_int64(as, 0),
            .attempt = sqlite3_column_int(as, 1),
            .at = sqlite3_column_double(as, 2),
            .http_status = sqlite3_column_int(as, 3),
            .error = (const char *)sqlite3_column_text(as, 4),
            .duration_s = sqlite3_column_double(as, 5),
            .outcome = (const char *)sqlite3_column_text(as, 6),
        };
        if (fn_attempt(opaque, &a))
            break;
    }
    ret = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? STORE_OK : fail(db, "attempt list");
out:
    sqlite3_finalize(q);
    sqlite3_finalize(ds);
    sqlite3_finalize(as);
    conn_put(st, db);
    return ret;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .job_create = sq_job_create,
    .job_create_failed = sq_job_create_failed,
    .job_claim_next = sq_job_claim_next,
    .job_progress = sq_job_progress,
    .job_finish = sq_job_finish,
    .job_cancel_queued = sq_job_cancel_queued,
    .job_requeue = sq_job_requeue,
    .requeue_running = sq_requeue_running,
    .job_get = sq_job_get,
    .job_list = sq_job_list,
    .job_list_active = sq_job_list_active,
    .count_by_status = sq_count_by_status,
    .webhook_add = sq_webhook_add,
    .webhook_list = sq_webhook_list,
    .webhook_delete = sq_webhook_delete,
    .delivery_pending = sq_delivery_pending,
    .delivery_attempt = sq_delivery_attempt,
    .delivery_list = sq_delivery_list,
};
