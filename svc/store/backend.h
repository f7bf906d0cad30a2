/*
 * backend.h - what a job store backend provides: a driver (internal to
 * svc/store/; callers use store.h only).
 *
 * store.c holds everything that does not depend on the database: the
 * store.h calls, the transition rules (a guarded UPDATE, then the outbox
 * rows of the change, in one transaction), turning rows into jobs,
 * deliveries and attempts and jobs into parameters, and building the
 * outbox rows. It runs statements by id (enum store_sql). A backend
 * provides only what its driver must:
 *   - the SQL text of the statements that its dialect writes its own way
 *     (sql[id]; store.c holds the portable text of the others, written
 *     with $1..$n parameters, which both PostgreSQL and SQLite read);
 *   - connections (a pool: conn_get / conn_put), binding parameters and
 *     running one statement (run), reading a result row (struct
 *     store_row);
 *   - open (the schema) and close, and what several nodes need (node_id,
 *     set_node_lease; NULL in a backend that is not shared).
 * A backend's handle embeds struct store as its first member, so the
 * backend casts the struct store * it is given back to its own type.
 */
#ifndef VIDQ_STORE_BACKEND_H
#define VIDQ_STORE_BACKEND_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The columns of a job row, in the order store.c's row_to_job reads them. */
#define JOB_COLUMNS                                                                          \
    "seq, id, status, priority, created_at, started_at, finished_at, attempts, input_path, " \
    "input_json, outputs_json, results_json, metadata_json, webhook_url, p_percent, "        \
    "p_out_time, p_frames, p_fps, p_speed, p_eta, error_code, error_message, ttl_s, "        \
    "expires_at, expired"

/* Columns of jobs after the JOB_COLUMNS (a query's extra column). */
enum { JOB_NCOLUMNS = 25 };

/* The columns of a delivery row (row_to_delivery). */
#define DELIVERY_COLUMNS                                                                  \
    "seq, msg_id, job_id, event, url, body, state, created_at, next_at, attempts"

/* A running job's progress, back to the start (claim, requeue). */
#define PROGRESS_RESET                                                                    \
    "p_percent = 0, p_out_time = 0, p_frames = 0, p_fps = 0, p_speed = 0, p_eta = -1"

/* The tables and indexes, the same in every backend but for the dialect's
 * types: SEQ the seq column of jobs and hook_deliveries (creation order),
 * REAL Unix seconds and progress, I64 a frame count or a seq; JOBS_MORE,
 * WEBHOOKS_FIRST and DELIVERIES_MORE are columns a shared store adds
 * ("" or ", col TYPE" / "col TYPE,"). A backend adds its own tables. */
#define STORE_SCHEMA(SEQ, REAL, I64, JOBS_MORE, WEBHOOKS_FIRST, DELIVERIES_MORE)             \
    "CREATE TABLE IF NOT EXISTS jobs ("                                                    \
    " seq " SEQ ", id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,"                         \
    " priority INTEGER NOT NULL DEFAULT 0, created_at " REAL " NOT NULL,"                  \
    " started_at " REAL ", finished_at " REAL ", attempts INTEGER NOT NULL DEFAULT 0,"     \
    " input_path TEXT NOT NULL, input_json TEXT NOT NULL, outputs_json TEXT NOT NULL,"     \
    " results_json TEXT, metadata_json TEXT NOT NULL DEFAULT '{}', webhook_url TEXT,"      \
    " p_percent " REAL " NOT NULL DEFAULT 0, p_out_time " REAL " NOT NULL DEFAULT 0,"      \
    " p_frames " I64 " NOT NULL DEFAULT 0, p_fps " REAL " NOT NULL DEFAULT 0,"             \
    " p_speed " REAL " NOT NULL DEFAULT 0, p_eta " REAL " NOT NULL DEFAULT -1,"            \
    " error_code TEXT, error_message TEXT, ttl_s " REAL ", expires_at " REAL ","           \
    " expired INTEGER NOT NULL DEFAULT 0" JOBS_MORE ");"                                   \
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, priority DESC, seq);"           \
    "CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs(status, seq);"                     \
    "CREATE TABLE IF NOT EXISTS webhooks (" WEBHOOKS_FIRST                                  \
    " id TEXT PRIMARY KEY, job_id TEXT, url TEXT NOT NULL,"                                \
    " events INTEGER NOT NULL, created_at " REAL " NOT NULL);"                             \
    "CREATE INDEX IF NOT EXISTS webhooks_job ON webhooks(job_id);"                         \
    "CREATE TABLE IF NOT EXISTS hook_deliveries (seq " SEQ ","                             \
    " msg_id TEXT NOT NULL, job_id TEXT NOT NULL, event TEXT NOT NULL,"                    \
    " url TEXT NOT NULL, body TEXT NOT NULL, created_at " REAL " NOT NULL,"                \
    " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"         \
    " next_at " REAL " NOT NULL" DELIVERIES_MORE ");"                                      \
    "CREATE INDEX IF NOT EXISTS hook_deliveries_state ON hook_deliveries(state, seq);"     \
    "CREATE INDEX IF NOT EXISTS hook_deliveries_job ON "                                   \
    "hook_deliveries(job_id, event, created_at);"                                          \
    "CREATE TABLE IF NOT EXISTS hook_attempts ("                                           \
    " delivery_seq " I64 " NOT NULL, attempt INTEGER NOT NULL, at " REAL " NOT NULL,"      \
    " http_status INTEGER NOT NULL, error TEXT, duration_s " REAL " NOT NULL,"             \
    " outcome TEXT NOT NULL);"                                                             \
    "CREATE INDEX IF NOT EXISTS hook_attempts_delivery ON hook_attempts(delivery_seq, attempt);"

/* Retention (store.c's DESIGN): the columns a store made before them
 * lacks (a driver adds each one that is missing, in its dialect: SQLite
 * from this list, PostgreSQL with ADD COLUMN IF NOT EXISTS), then the
 * indexes of the sweeper's
 * two batch queries, run after those columns exist. The change is
 * additive: an older vidq still reads and writes the store. */
#define STORE_RETENTION_COLUMNS(REAL) \
    {"ttl_s", REAL}, {"expires_at", REAL}, {"expired", "INTEGER NOT NULL DEFAULT 0"}
#define STORE_RETENTION_INDEXES                                                            \
    "CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs(expired, expires_at);"                 \
    "CREATE INDEX IF NOT EXISTS jobs_records ON jobs(expired, finished_at);"

/* The statements store.c runs. The parameters each one gets are listed;
 * a backend's text may leave out the ones it does not need (SQLite has no
 * node), but PostgreSQL's text must use every one it is given. Statements
 * marked "shared" exist only in a backend that several nodes may share. */
enum store_sql {
    SQL_BEGIN,              /* a write transaction */
    SQL_BEGIN_READ,         /* a read-only snapshot; NULL: reads run without one */
    SQL_COMMIT,
    SQL_ROLLBACK,
    SQL_JOB_INSERT,         /* $1 id .. $12 error_message, $13 ttl_s; returns seq */
    SQL_JOB_CLAIM,          /* $1 now, $2 node; returns JOB_COLUMNS or no row */
    SQL_JOB_PROGRESS,       /* $1..$6 progress, $7 id, $8 node */
    SQL_JOB_FINISH,         /* $1 status, $2 now, $3 code, $4 message, $5 results,
                             * $6 succeeded (0/1), $7 id, $8 node, $9 attempt
                             * (0 = any; shared: attempts must equal it) */
    SQL_JOB_CANCEL_QUEUED,  /* $1 now, $2 id */
    SQL_JOB_REQUEUE,        /* $1 id, $2 node */
    SQL_REQUEUE_RUNNING,    /* $1 node; returns the ids requeued */
    SQL_JOB_EXISTS,         /* $1 id */
    SQL_JOB_STATUS,         /* $1 id; returns status */
    SQL_JOB_STATUS_LOCKED,  /* the same, the row kept from changing to the commit */
    SQL_JOB_GET,            /* $1 id; returns JOB_COLUMNS */
    SQL_JOB_GET_POSITION,   /* $1 id; JOB_COLUMNS and the queue position (shared) */
    SQL_JOB_LIST,           /* $1 before seq, $2 limit */
    SQL_JOB_LIST_STATUS,    /* $1 before seq, $2 limit, $3 status */
    SQL_JOB_LIST_ACTIVE,
    SQL_COUNT_BY_STATUS,    /* returns status, count */
    SQL_QUEUE_POSITION,     /* $1 id; returns the position (shared) */
    SQL_CANCEL_RUNNING,     /* $1 id: flag a running job (shared) */
    SQL_CANCEL_REQUESTED,   /* $1 node; returns the ids flagged (shared) */
    SQL_OUTBOX_LOCK,        /* held to the commit before delivery rows are
                             * inserted; NULL: the transaction is enough */
    SQL_PROGRESS_RECENT,    /* $1 job id, $2 since: a job.progress row after it */
    SQL_HOOK_TARGETS,       /* $1 job id, $2 event, $3 default events; returns urls */
    SQL_DELIVERY_INSERT,    /* $1 msg id, $2 job id, $3 event, $4 url, $5 body, $6 now */
    SQL_DELIVERY_PENDING,   /* $1 after seq, $2 limit, $3 node; DELIVERY_COLUMNS */
    SQL_DELIVERY_RELEASE,   /* $1 node, $2 seq or 0 (shared) */
    SQL_DELIVERY_LIST,      /* $1 job id; DELIVERY_COLUMNS */
    SQL_ATTEMPT_INSERT,     /* $1 delivery seq, $2 attempt, $3 at, $4 http status,
                             * $5 error, $6 duration, $7 outcome */
    SQL_DELIVERY_UPDATE,    /* $1 state, $2 attempts, $3 next_at, $4 seq */
    SQL_ATTEMPT_LIST,       /* $1 job id */
    SQL_WEBHOOK_INSERT,     /* $1 id, $2 job id, $3 url, $4 events, $5 created_at */
    SQL_WEBHOOK_LIST,       /* $1 job id or NULL; id, job_id, url, events, created_at */
    SQL_WEBHOOK_DELETE,     /* $1 id */
    SQL_JOB_SET_EXPIRY,     /* $1 id, $2 default ttl: expires_at of a job that ended */
    SQL_EXPIRY_BACKFILL,    /* $1 default ttl, $2 limit: the same, rows from before it */
    SQL_EXPIRY_DUE,         /* $1 now, $2 limit; returns id, input_path */
    SQL_JOB_EXPIRE,         /* $1 id, $2 now: files gone */
    SQL_EXPIRED_SINCE,      /* $1 since, $2 limit; ids marked expired, expires_at > since */
    SQL_RECORDS_DUE,        /* $1 finished before, $2 limit; returns ids */
    SQL_RECORD_DEL_ATTEMPTS, /* $1 job id (the four: one job's rows) */
    SQL_RECORD_DEL_DELIVERIES,
    SQL_RECORD_DEL_WEBHOOKS,
    SQL_RECORD_DEL_JOB,
    SQL_JOB_SET_INPUT,      /* $1 input_json, $2 id (a running job, fetched from its URL) */
    SQL_JOB_GET_MANY,       /* $1 a JSON array of ids; JOB_COLUMNS (shared) */
    SQL_N
};

/* The parameters of one statement: $1 is v[0], up to the first unset
 * one. Written as an initializer, {{sp_text(id), sp_double(now)}}; a text
 * is borrowed until the statement ran. */
enum { STORE_MAX_PARAMS = 16 };

struct store_params {
    struct store_param {
        enum { STORE_P_UNSET, STORE_P_NULL, STORE_P_TEXT, STORE_P_DOUBLE, STORE_P_I64 } type;
        const char *text;
        double d;
        int64_t i;
    } v[STORE_MAX_PARAMS];
};

static inline struct store_param sp_null(void) { return (struct store_param){STORE_P_NULL}; }

/* NULL: SQL NULL. */
static inline struct store_param sp_text(const char *s)
{
    return (struct store_param){.type = s ? STORE_P_TEXT : STORE_P_NULL, .text = s};
}

static inline struct store_param sp_double(double d)
{
    return (struct store_param){.type = STORE_P_DOUBLE, .d = d};
}

static inline struct store_param sp_i64(int64_t i)
{
    return (struct store_param){.type = STORE_P_I64, .i = i};
}

/* How many parameters p holds (0 for NULL). */
int store_params_n(const struct store_params *p);

/* One row of a result, valid for the length of the row callback. */
struct store_row {
    const struct store_row_ops *ops;
    void *res;       /* the backend's statement or result */
    int i;           /* its row number, where the backend needs one */
};

struct store_row_ops {
    const char *(*text)(const struct store_row *r, int col, size_t *len); /* NULL: SQL NULL */
    double (*num)(const struct store_row *r, int col);                    /* 0 for NULL */
    int64_t (*i64)(const struct store_row *r, int col);                   /* 0 for NULL */
};

/* Called for each row; a non-zero return stops the walk. */
typedef int (*store_row_fn)(void *opaque, const struct store_row *r);

struct store_driver {
    const char *name; /* "sqlite", "postgres" (logs) */
    /* The backend's own text of a statement; NULL: store.c's portable
     * text (or, where store.c has none, the backend lacks it). */
    const char *const *sql;
    int (*open)(const char *url, struct store **out, char *err, size_t errlen);
    void (*close)(struct store *st);
    /* A new connection (NULL on failure, logged); close one; whether one
     * may (still) serve a call: NULL for always. store.c pools them. */
    void *(*conn_open)(struct store *st);
    void (*conn_close)(void *conn);
    int (*conn_usable)(void *conn);
    /* Run sql with p on conn and call row (may be NULL) for each result
     * row; *changes (if not NULL) receives the rows the statement changed.
     * STORE_OK; STORE_ECONFLICT for a uniqueness (or, SQLite, another
     * constraint) violation, not logged; STORE_EIO otherwise, logged with
     * what. A row callback's own failure is the caller's to keep. */
    int (*run)(void *conn, const char *what, const char *sql, const struct store_params *p,
               store_row_fn row, void *opaque, int64_t *changes);
    /* Several nodes; NULL in a backend that is not shared. */
    const char *(*node_id)(const struct store *st);
    void (*set_node_lease)(struct store *st, double seconds);
    /* The watch on job changes (store_watch_*); NULL: none. wait calls
     * fn with each changed job's id; STORE_EIO once the connection broke. */
    void *(*watch_open)(struct store *st);
    int (*watch_wait)(void *w, int timeout_ms, void (*fn)(void *opaque, const char *id),
                      void *opaque);
    void (*watch_close)(void *w);
};

enum { STORE_POOL_MAX = 16 };

/* The head of every backend's handle: its driver and the pool of idle
 * connections (at most STORE_POOL_MAX; a call borrows one for its length). */
struct store {
    const struct store_driver *drv;
    double retention_s; /* store_set_retention */
    pthread_mutex_t pool_lock;
    void *idle[STORE_POOL_MAX];
    int n_idle;
};

/* The backend's open starts with store_pool_init and may give the
 * connection it set the schema up with to store_pool_put; its close ends
 * with store_pool_free (which closes the idle connections). */
void store_pool_init(struct store *st, const struct store_driver *drv);
void store_pool_put(struct store *st, void *conn);
void store_pool_free(struct store *st);

/* Run sql (text written by the caller, a module of svc/store/ such as
 * uploads.c, for st->drv's dialect) with p in a call of its own, outside
 * any transaction; as store_driver.run. */
int store_exec(struct store *st, const char *what, const char *sql, const struct store_params *p,
               store_row_fn row, void *opaque, int64_t *changes);

extern const struct store_driver store_sqlite_driver;
extern const struct store_driver store_pg_driver;

#endif
