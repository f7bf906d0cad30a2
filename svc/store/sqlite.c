/*
 * sqlite.c - the job store's SQLite driver (see backend.h): one node.
 *
 * DESIGN
 *   Schema: backend.h's STORE_SCHEMA with SQLite's types (seq INTEGER
 *   PRIMARY KEY AUTOINCREMENT, REAL times), version 1 in PRAGMA
 *   user_version; jobs_queue(status, priority DESC, seq) serves claim-next,
 *   jobs_status_seq(status, seq) the filtered list.
 *   Transactions: BEGIN IMMEDIATE, so a write transaction holds the
 *   database's write lock from its first statement: the guarded UPDATEs of
 *   store.c (states, outbox) never race, and a busy database is waited for
 *   (busy timeout 10 s) rather than failing mid-transaction.
 *   Parameters: store.c's $1..$n are SQLite named parameters; each is bound
 *   by its name, and a statement may leave some out (there is no node).
 *   Durability: WAL with synchronous=NORMAL: a committed job survives a
 *   crash of the process (kill -9); a power cut may lose the last commits.
 *   The WAL is cut back to STORE_SQLITE_WAL_LIMIT after it outgrew it.
 *   Threads: a small pool of connections; a call borrows one for its length.
 */
#include "store/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/log.h"

struct sqlite_store {
    struct store base; /* first: store.c sees only this */
    char path[1100];
};

static const char schema_sql[] =
    STORE_SCHEMA("INTEGER PRIMARY KEY AUTOINCREMENT", "REAL", "INTEGER", "", "", "")
    "PRAGMA user_version = 1;";

/* The statements SQLite writes its own way (the rest: store.c). */
static const char *const sqlite_sql[SQL_N] = {
    [SQL_BEGIN] = "BEGIN IMMEDIATE",
    [SQL_JOB_CLAIM] = "UPDATE jobs SET status = 'running', started_at = $1, "
                      "attempts = attempts + 1, " PROGRESS_RESET " WHERE id = (SELECT id "
                      "FROM jobs WHERE status = 'queued' ORDER BY priority DESC, seq LIMIT 1) "
                      "AND status = 'queued' RETURNING " JOB_COLUMNS,
    [SQL_JOB_SET_INPUT] = "UPDATE jobs SET input_json = $1 WHERE id = $2 AND status = 'running'",
    [SQL_JOB_PROGRESS] = "UPDATE jobs SET p_percent = $1, p_out_time = $2, p_frames = $3, "
                         "p_fps = $4, p_speed = $5, p_eta = $6 "
                         "WHERE id = $7 AND status = 'running'",
    [SQL_JOB_FINISH] = "UPDATE jobs SET status = $1, finished_at = $2, error_code = $3, "
                       "error_message = $4, results_json = $5, "
                       "p_percent = CASE WHEN $6 THEN 100 ELSE p_percent END, p_eta = -1 "
                       "WHERE id = $7 AND status IN ('queued', 'running')",
    [SQL_JOB_REQUEUE] = "UPDATE jobs SET status = 'queued', started_at = NULL, " PROGRESS_RESET
                        " WHERE id = $1 AND status = 'running'",
    /* One node: every running job is an orphan of the last run. */
    [SQL_REQUEUE_RUNNING] = "UPDATE jobs SET status = 'queued', started_at = NULL, "
                            PROGRESS_RESET " WHERE status = 'running' RETURNING id",
    [SQL_DELIVERY_PENDING] = "SELECT " DELIVERY_COLUMNS " FROM hook_deliveries "
                             "WHERE state = 'pending' AND seq > $1 ORDER BY seq LIMIT $2",
    [SQL_WEBHOOK_LIST] = "SELECT id, job_id, url, events, created_at FROM webhooks "
                         "WHERE job_id IS $1 ORDER BY created_at, rowid",
};

/* job_counts: the count of each status, kept by triggers in the
 * transaction of each insert, status change and delete (store_count_by_
 * status reads it instead of scanning jobs); filled from a scan once, when
 * it is made, in the transaction that makes the triggers. */
static const char counts_sql[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS job_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO job_counts (status, n) SELECT s.column1, (SELECT count(*) FROM jobs "
    "WHERE jobs.status = s.column1) FROM (VALUES ('queued'), ('running'), ('succeeded'), "
    "('failed'), ('canceled')) AS s;"
    "CREATE TRIGGER IF NOT EXISTS jobs_count_insert AFTER INSERT ON jobs BEGIN "
    "UPDATE job_counts SET n = n + 1 WHERE status = NEW.status; END;"
    "CREATE TRIGGER IF NOT EXISTS jobs_count_update AFTER UPDATE OF status ON jobs "
    "WHEN OLD.status <> NEW.status BEGIN "
    "UPDATE job_counts SET n = n - 1 WHERE status = OLD.status; "
    "UPDATE job_counts SET n = n + 1 WHERE status = NEW.status; END;"
    "CREATE TRIGGER IF NOT EXISTS jobs_count_delete AFTER DELETE ON jobs BEGIN "
    "UPDATE job_counts SET n = n - 1 WHERE status = OLD.status; END;"
    "COMMIT;";

/* The WAL's checkpoints. SQLite's own (PASSIVE at 1000 pages) copies back
 * what no reader still needs, but the log starts again from its beginning
 * only once a checkpoint finished with no reader in the WAL: under
 * overlapping transactions that moment may never come, and the file grows
 * (it.test_retention_soak's 8 uploads at a time, once their probes ran off
 * the HTTP threads, took it past 18 MB). So past WAL_RESTART_PAGES a
 * commit asks for a RESTART checkpoint, which waits for the readers of
 * the moment, but for WAL_RESTART_WAIT_MS at most (a long read, such as a
 * sweep of 100,000 rows, must not stall every commit): the next write
 * then starts the log again at its beginning. */
enum { WAL_AUTO_PAGES = 1000, WAL_RESTART_PAGES = 2000, WAL_RESTART_WAIT_MS = 20,
       BUSY_TIMEOUT_MS = 10000 };

static int wal_hook(void *opaque, sqlite3 *db, const char *name, int pages)
{
    (void)opaque;
    if (pages >= WAL_RESTART_PAGES) {
        sqlite3_busy_timeout(db, WAL_RESTART_WAIT_MS);
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
        if (rc == SQLITE_OK || rc == SQLITE_BUSY)
            return SQLITE_OK; /* BUSY: a reader stayed; the next commit tries again */
        log_warn("store: checkpoint: %s", sqlite3_errmsg(db));
    } else if (pages >= WAL_AUTO_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    return SQLITE_OK;
}

static sqlite3 *conn_open(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        if (err)
            snprintf(err, errlen, "cannot open %.300s: %s", path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    char *msg = NULL;
    /* journal_size_limit: the WAL grows while a long read holds back its
     * checkpoints (a sweep of 100,000 rows, a backup); without a limit it
     * keeps that size for ever. With one, the next reset after a full
     * checkpoint truncates it back. */
    char pragmas[128];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=%ld;",
             (long)STORE_SQLITE_WAL_LIMIT);
    if (sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        if (err)
            snprintf(err, errlen, "cannot set up %.300s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_wal_hook(db, wal_hook, NULL); /* in place of wal_autocheckpoint's */
    return db;
}

/* A store made before retention gets its columns (SQLite 3.40 has no ADD
 * COLUMN IF NOT EXISTS: a column already there is the one error let
 * through), then the sweeper's indexes. */
static int add_retention(sqlite3 *db, char **msg)
{
    static const struct {
        const char *name, *type;
    } cols[] = {STORE_RETENTION_COLUMNS("REAL")};
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        char sql[160];
        snprintf(sql, sizeof(sql), "ALTER TABLE jobs ADD COLUMN %s %s", cols[i].name, cols[i].type);
        int rc = sqlite3_exec(db, sql, NULL, NULL, msg);
        if (rc != SQLITE_OK && !(*msg && strstr(*msg, "duplicate column")))
            return rc;
        sqlite3_free(*msg);
        *msg = NULL;
    }
    return sqlite3_exec(db, STORE_RETENTION_INDEXES, NULL, NULL, msg);
}

static void *sq_conn_open(struct store *base)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    char err[512];
    sqlite3 *db = conn_open(st->path, err, sizeof(err));
    if (!db)
        log_error("store: %s", err);
    return db;
}

static void sq_conn_close(void *conn) { sqlite3_close(conn); }

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
    store_pool_init(&st->base, &store_sqlite_driver);
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
    if (sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK ||
        add_retention(db, &msg) != SQLITE_OK ||
        sqlite3_exec(db, counts_sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        snprintf(err, errlen, "cannot create the schema in %s: %s", st->path, msg ? msg : "?");
        goto out;
    }
    store_pool_put(&st->base, db);
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
    store_pool_free(base);
    free(base);
}

/* ---------------------------------------------------------- statements */

static const char *row_text(const struct store_row *r, int col, size_t *len)
{
    sqlite3_stmt *s = r->res;
    const char *v = (const char *)sqlite3_column_text(s, col);
    if (len)
        *len = v ? (size_t)sqlite3_column_bytes(s, col) : 0;
    return v;
}

static double row_num(const struct store_row *r, int col)
{
    return sqlite3_column_double(r->res, col);
}

static int64_t row_i64(const struct store_row *r, int col)
{
    return sqlite3_column_int64(r->res, col);
}

static const struct store_row_ops row_ops = {row_text, row_num, row_i64};

static int bind(sqlite3_stmt *s, const struct store_params *p)
{
    for (int i = 0, n = store_params_n(p); i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "$%d", i + 1);
        int k = sqlite3_bind_parameter_index(s, name);
        const struct store_param *v = &p->v[i];
        int rc = SQLITE_OK;
        if (k == 0)
            continue; /* not used by this statement */
        switch (v->type) {
        case STORE_P_TEXT: rc = sqlite3_bind_text(s, k, v->text, -1, SQLITE_STATIC); break;
        case STORE_P_DOUBLE: rc = sqlite3_bind_double(s, k, v->d); break;
        case STORE_P_I64: rc = sqlite3_bind_int64(s, k, v->i); break;
        default: rc = sqlite3_bind_null(s, k); break;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static int sq_run(void *conn, const char *what, const char *sql, const struct store_params *p,
                  store_row_fn row, void *opaque, int64_t *changes)
{
    sqlite3 *db = conn;
    sqlite3_stmt *s = NULL;
    int ret = STORE_EIO;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = bind(s, p);
    if (rc != SQLITE_OK)
        goto out;
    struct store_row r = {&row_ops, s, 0};
    int want = 1;
    /* A write (INSERT ... RETURNING) is stepped to SQLITE_DONE even when
     * the caller has its row: in autocommit mode SQLite runs the WAL hook,
     * and so the automatic checkpoint, only from a step that returns
     * DONE. Finalized after its first row, every such commit left the WAL
     * unchecked and it grew for ever (86 MB after 3,000 job creations).
     * A read may stop early: it committed nothing. */
    int drain = !sqlite3_stmt_readonly(s);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (want && row && row(opaque, &r)) {
            want = 0;
            if (!drain) {
                rc = SQLITE_DONE;
                break;
            }
        }
    }
    if (rc == SQLITE_CONSTRAINT) {
        ret = STORE_ECONFLICT;
        goto out;
    }
    if (rc != SQLITE_DONE)
        goto out;
    if (changes)
        *changes = sqlite3_changes(db);
    ret = STORE_OK;
out:
    if (ret == STORE_EIO)
        log_error("store: %s: %s", what, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return ret;
}

const struct store_driver store_sqlite_driver = {
    .name = "sqlite", .sql = sqlite_sql, .open = sq_open, .close = sq_close,
    .conn_open = sq_conn_open, .conn_close = sq_conn_close, .run = sq_run,
};
