/*
 * pg.c - the job store on PostgreSQL (see store.h), for one or
 * several vidq nodes sharing one database.
 *
 * DESIGN
 *   Schema (version 1, in vidq_meta(key, value) under 'schema_version'),
 *   the same tables and columns as sqlite.c with PostgreSQL types
 *   (Unix-second times as double precision, seq as identity columns),
 *   plus webhooks.seq (registration order) and what several nodes need:
 *   nodes(id, alive_until), jobs.node_id (the node running the job),
 *   jobs.cancel_requested, hook_deliveries.claimed_by (see NODES). Created on open, idempotently,
 *   under an advisory lock so that nodes starting together do not race.
 *   States and guards: as in SQLite, every transition is one UPDATE
 *   guarded by the expected old status in one transaction (READ
 *   COMMITTED: a concurrent writer of the same row waits for ours and then
 *   re-checks the guard on the new row, so a job never ends twice). The
 *   claim picks the next queued job with SELECT ... FOR UPDATE SKIP
 *   LOCKED, so two nodes (or threads) never claim the same job and never
 *   wait for each other.
 *   Outbox: delivery rows are inserted in the job change's transaction,
 *   after taking a transaction-scoped advisory lock (OUTBOX_LOCK) held to
 *   the commit; so rows become visible in seq order, which the outbox's
 *   "seq > watermark" reads rely on (without it, two transactions could
 *   commit seq 11 before seq 10 and a reader past 11 would skip 10).
 *   SQL: parameterised only (PQexecParams, text parameters); no value is
 *   ever spliced into SQL text.
 *   NODES: each open store is a node (id "<host>-<pid>-<random>") with a
 *   row in nodes and a presence connection of its own that holds a session
 *   advisory lock keyed by the id; a heartbeat thread renews alive_until =
 *   db now + lease on it every lease / 4 (lease 10 s unless set). A node
 *   is alive while it holds its lock AND alive_until is ahead of the
 *   database's clock: a process killed (-9, OOM, crash) drops its
 *   connection and so its lock at once; a hung or cut-off one loses it
 *   when the lease runs out (the nodes' own clocks never enter). Claims write jobs.node_id; progress, finish and requeue
 *   of a running job are guarded by node_id = this node (a node presumed
 *   dead cannot overwrite the next attempt). requeue_running takes only
 *   jobs of dead nodes. A cancel from another node sets cancel_requested;
 *   the owner reads it (cancel_requested). Delivery rows are claimed
 *   (claimed_by) in the statement that reads them: rows of live nodes are
 *   left alone, rows of dead nodes taken over. Closing the store marks
 *   the node dead at once and releases its claims.
 *   Threads: a pool of connections (at most POOL_MAX idle); a call borrows
 *   one for its length. A connection that broke or is left inside a
 *   transaction is closed, not pooled; the next call opens a new one.
 *   Errors: libpq's messages go to the log; callers get STORE_EIO.
 */
#include "store/store.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "store/hook_event.h"
#include "store/backend.h"

enum { POOL_MAX = 16, SCHEMA_VERSION = 1, MAX_PARAMS = 16, HOOKS_MAX_TARGETS = 256 };

/* Arbitrary constants naming vidq's advisory locks. */
#define SCHEMA_LOCK "7617710001"
#define OUTBOX_LOCK "7617710002"

struct pg_store {
    struct store base; /* first: store.c sees only this */
    char *url;
    char node_id[128];
    pthread_mutex_t lock; /* guards idle, n_idle, lease, stop */
    PGconn *idle[POOL_MAX];
    int n_idle;
    pthread_cond_t wake;  /* heartbeat thread: lease changed or stop */
    pthread_t heartbeat;
    int heartbeat_started, stop;
    double lease;
    PGconn *presence; /* heartbeat thread (and open/close): holds the lock */
};

/* The database server's clock, Unix seconds: leases are compared with it. */
#define DB_NOW "extract(epoch from clock_timestamp())::double precision"
/* The advisory lock (PRESENCE_LOCK, hashtext(node id)) that a node holds
 * on its presence connection for its life. */
#define PRESENCE_LOCK "7617"
/* Nodes that are alive: their lease holds AND their presence lock is held
 * (a process that died lost its connection, so its lock is gone at once;
 * one that hangs or is cut off keeps it until its lease runs out). A hash
 * collision only makes a dead node look locked: its lease still ends it. */
#define LIVE_NODES                                                                       \
    "(SELECT n.id FROM nodes n WHERE n.alive_until > " DB_NOW " AND EXISTS (SELECT 1 "   \
    "FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND " \
    "l.classid = " PRESENCE_LOCK "::oid AND "                                            \
    "l.objid = (hashtext(n.id)::bigint & 4294967295)::oid))"

enum { LEASE_DEFAULT_S = 10 };

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS vidq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " status TEXT NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " created_at DOUBLE PRECISION NOT NULL,"
    " started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " input_path TEXT NOT NULL,"
    " input_json TEXT NOT NULL,"
    " outputs_json TEXT NOT NULL,"
    " results_json TEXT,"
    " metadata_json TEXT NOT NULL DEFAULT '{}',"
    " webhook_url TEXT,"
    " p_percent DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " p_out_time DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " p_frames BIGINT NOT NULL DEFAULT 0, p_fps DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " p_speed DOUBLE PRECISION NOT NULL DEFAULT 0, p_eta DOUBLE PRECISION NOT NULL DEFAULT -1,"
    " error_code TEXT, error_message TEXT,"
    " node_id TEXT, cancel_requested BOOLEAN NOT NULL DEFAULT false);"
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, priority DESC, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs(status, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_running_node ON jobs(node_id) WHERE status = 'running';"
    "CREATE TABLE IF NOT EXISTS nodes ("
    " id TEXT PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL,"
    " alive_until DOUBLE PRECISION NOT NULL);"
    "CREATE TABLE IF NOT EXISTS webhooks ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY,"
    " id TEXT PRIMARY KEY, job_id TEXT, url TEXT NOT NULL,"
    " events INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL);"
    "CREATE INDEX IF NOT EXISTS webhooks_job ON webhooks(job_id);"
    "CREATE TABLE IF NOT EXISTS hook_deliveries ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " msg_id TEXT NOT NULL, job_id TEXT NOT NULL, event TEXT NOT NULL,"
    " url TEXT NOT NULL, body TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
    " next_at DOUBLE PRECISION NOT NULL, claimed_by TEXT);"
    "CREATE INDEX IF NOT EXISTS hook_deliveries_state ON hook_deliveries(state, seq);"
    "CREATE INDEX IF NOT EXISTS hook_deliveries_job ON hook_deliveries(job_id, event, created_at);"
    "CREATE TABLE IF NOT EXISTS hook_attempts ("
    " delivery_seq BIGINT NOT NULL, attempt INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL,"
    " http_status INTEGER NOT NULL, error TEXT, duration_s DOUBLE PRECISION NOT NULL,"
    " outcome TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS hook_attempts_delivery ON hook_attempts(delivery_seq, attempt);";

#define JOB_COLUMNS                                                                          \
    "seq, id, status, priority, created_at, started_at, finished_at, attempts, input_path, " \
    "input_json, outputs_json, results_json, metadata_json, webhook_url, p_percent, "        \
    "p_out_time, p_frames, p_fps, p_speed, p_eta, error_code, error_message"

#define PROGRESS_RESET "p_percent = 0, p_out_time = 0, p_frames = 0, p_fps = 0, p_speed = 0, p_eta = -1"

static struct pg_store *pg(struct store *st) { return (struct pg_store *)st; }

/* ------------------------------------------------------------ params */

/* Text parameters of one statement; numbers are formatted into buf. */
struct params {
    const char *v[MAX_PARAMS];
    char buf[MAX_PARAMS][40];
    int n;
};

static void p_text(struct params *p, const char *s)
{
    assert(p->n < MAX_PARAMS);
    p->v[p->n++] = s; /* NULL is SQL NULL */
}

static void p_double(struct params *p, double d)
{
    assert(p->n < MAX_PARAMS);
    snprintf(p->buf[p->n], sizeof(p->buf[0]), "%.17g", d);
    p->v[p->n] = p->buf[p->n];
    p->n++;
}

static void p_i64(struct params *p, int64_t i)
{
    assert(p->n < MAX_PARAMS);
    snprintf(p->buf[p->n], sizeof(p->buf[0]), "%" PRId64, i);
    p->v[p->n] = p->buf[p->n];
    p->n++;
}

/* ------------------------------------------------------- connections */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("store: postgres notice: %s", message);
}

/* libpq's messages on one line (they end in a newline and may hold a
 * "\n\tIs the server running..." hint). */
static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
}

static PGconn *conn_open(const char *url, char *err, size_t errlen)
{
    /* Later keywords override earlier ones: the URL's own settings win
     * over these defaults (a dead host fails in 10 s, not the OS's TCP
     * timeout). */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"10", "vidq", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        /* libpq names the problem (host, socket, auth, database); the URL
         * itself is not repeated: it may hold a password. */
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        chomp(err);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    return c;
}

static PGconn *conn_get(struct store *base)
{
    struct pg_store *st = pg(base);
    PGconn *c = NULL;
    pthread_mutex_lock(&st->lock);
    if (st->n_idle > 0)
        c = st->idle[--st->n_idle];
    pthread_mutex_unlock(&st->lock);
    if (c && PQstatus(c) == CONNECTION_OK)
        return c;
    PQfinish(c);
    char err[512];
    c = conn_open(st->url, err, sizeof(err));
    if (!c)
        log_error("store: %s", err);
    return c;
}

static void conn_put(struct store *base, PGconn *c)
{
    struct pg_store *st = pg(base);
    if (!c)
        return;
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
        pthread_mutex_lock(&st->lock);
        if (st->n_idle < POOL_MAX) {
            st->idle[st->n_idle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&st->lock);
    }
    PQfinish(c);
}

/* ------------------------------------------------------------ queries */

/* Run sql with p's parameters. Returns the result (PQclear it) when the
 * statement succeeded, else NULL; the error is logged unless its SQLSTATE
 * is quiet_state (e.g. "23505" for a unique violation the caller maps),
 * and the SQLSTATE is copied to state (6 bytes) when state is not NULL. */
static PGresult *run(PGconn *c, const char *what, const char *sql, const struct params *p,
                     const char *quiet_state, char *state)
{
    PGresult *r = PQexecParams(c, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (r && (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK))
        return r;
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state)
        snprintf(state, 6, "%s", code ? code : "");
    if (!quiet_state || !code || strcmp(code, quiet_state) != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        chomp(msg);
        log_error("store: %s: %s", what, msg);
    }
    PQclear(r);
    return NULL;
}

/* A statement whose rows are not needed. */
static int exec(PGconn *c, const char *what, const char *sql, const struct params *p)
{
    PGresult *r = run(c, what, sql, p, NULL, NULL);
    if (!r)
        return STORE_EIO;
    PQclear(r);
    return STORE_OK;
}

static int begin(PGconn *c) { return exec(c, "begin", "BEGIN", NULL); }
static int commit(PGconn *c) { return exec(c, "commit", "COMMIT", NULL); }
static void rollback(PGconn *c)
{
    if (c && PQtransactionStatus(c) != PQTRANS_IDLE)
        exec(c, "rollback", "ROLLBACK", NULL);
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static double num(const PGresult *r, int row, int col)
{
    const char *v = val(r, row, col);
    return v ? strtod(v, NULL) : 0;
}

static int64_t i64(const PGresult *r, int row, int col)
{
    const char *v = val(r, row, col);
    return v ? (int64_t)strtoll(v, NULL, 10) : 0;
}

static int col_dup(const PGresult *r, int row, int col, char **out)
{
    const char *v = val(r, row, col);
    *out = NULL;
    if (!v)
        return 0;
    *out = strdup(v);
    return *out ? 0 : -1;
}

/* Fill job from row `row` of a result selected with JOB_COLUMNS. */
static int row_to_job(const PGresult *r, int row, struct job *job)
{
    memset(job, 0, sizeof(*job));
    job->seq = i64(r, row, 0);
    snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(r, row, 1));
    int st = job_status_parse(PQgetvalue(r, row, 2));
    job->status = st < 0 ? JOB_FAILED : (enum job_status)st;
    job->priority = (int)i64(r, row, 3);
    job->created_at = num(r, row, 4);
    job->started_at = num(r, row, 5);
    job->finished_at = num(r, row, 6);
    job->attempts = (int)i64(r, row, 7);
    int bad = 0;
    bad |= col_dup(r, row, 8, &job->input_path);
    bad |= col_dup(r, row, 9, &job->input_json);
    bad |= col_dup(r, row, 10, &job->outputs_json);
    bad |= col_dup(r, row, 11, &job->results_json);
    bad |= col_dup(r, row, 12, &job->metadata_json);
    bad |= col_dup(r, row, 13, &job->webhook_url);
    job->progress.percent = num(r, row, 14);
    job->progress.out_time_s = num(r, row, 15);
    job->progress.frames = i64(r, row, 16);
    job->progress.fps = num(r, row, 17);
    job->progress.speed = num(r, row, 18);
    job->progress.eta_s = num(r, row, 19);
    bad |= col_dup(r, row, 20, &job->error_code);
    bad |= col_dup(r, row, 21, &job->error_message);
    if (bad) {
        job_clear(job);
        return STORE_ENOMEM;
    }
    return STORE_OK;
}

/* Run a guarded UPDATE of job id; STORE_OK if it changed the row,
 * STORE_ECONFLICT if the job exists in another state, STORE_ENOTFOUND if
 * it does not exist. */
static int update_one(PGconn *c, const char *what, const char *sql, const struct params *p,
                      const char *id)
{
    PGresult *r = run(c, what, sql, p, NULL, NULL);
    if (!r)
        return STORE_EIO;
    int changed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (changed)
        return STORE_OK;
    struct params q = {0};
    p_text(&q, id);
    r = run(c, "job exists", "SELECT 1 FROM jobs WHERE id = $1", &q, NULL, NULL);
    if (!r)
        return STORE_EIO;
    int ret = PQntuples(r) > 0 ? STORE_ECONFLICT : STORE_ENOTFOUND;
    PQclear(r);
    return ret;
}

/* --------------------------------------------------------- open/close */

static void pg_close(struct store *base)
{
    struct pg_store *st = pg(base);
    if (st->heartbeat_started) {
        pthread_mutex_lock(&st->lock);
        st->stop = 1;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->heartbeat, NULL);
        /* Dead at once (its jobs and deliveries are free for the other
         * nodes now, rather than when the lease runs out). */
        PGconn *c = st->presence;
        struct params p = {0};
        p_text(&p, st->node_id);
        if (!c || exec(c, "node stop", "UPDATE nodes SET alive_until = 0 WHERE id = $1", &p) !=
                      STORE_OK ||
            exec(c, "release deliveries",
                 "UPDATE hook_deliveries SET claimed_by = NULL WHERE claimed_by = $1 AND "
                 "state = 'pending'",
                 &p) != STORE_OK)
            log_warn("store: node %s not marked stopped (its lease runs out instead)",
                     st->node_id);
    }
    PQfinish(st->presence); /* and its lock goes with it */
    for (int i = 0; i < st->n_idle; i++)
        PQfinish(st->idle[i]);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->lock);
    free(st->url);
    free(st);
}

/* Create the schema if needed and check its version; one transaction
 * under SCHEMA_LOCK (CREATE ... IF NOT EXISTS alone races between two
 * nodes starting at once). */
static int schema_setup(PGconn *c, char *err, size_t errlen)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    if (begin(c) != STORE_OK ||
        exec(c, "schema lock", "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")", NULL) !=
            STORE_OK) {
        snprintf(err, errlen, "cannot lock the schema: %s", PQerrorMessage(c));
        goto out;
    }
    /* Several statements in one string: PQexec (no parameters here). */
    r = PQexec(c, schema_sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "cannot create the schema: %s",
                 r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        goto out;
    }
    PQclear(r);
    r = run(c, "schema version", "SELECT value FROM vidq_meta WHERE key = 'schema_version'",
            NULL, NULL, NULL);
    if (!r) {
        snprintf(err, errlen, "cannot read the schema version: %s", PQerrorMessage(c));
        goto out;
    }
    if (PQntuples(r) == 0) {
        struct params p = {0};
        p_i64(&p, SCHEMA_VERSION);
        if (exec(c, "schema version",
                 "INSERT INTO vidq_meta (key, value) VALUES ('schema_version', $1)", &p) !=
            STORE_OK) {
            snprintf(err, errlen, "cannot record the schema version");
            goto out;
        }
    } else {
        long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        if (v != SCHEMA_VERSION) {
            snprintf(err, errlen,
                     "the database has vidq schema version %ld; this vidq knows version %d",
                     v, SCHEMA_VERSION);
            ret = STORE_EINVAL;
            goto out;
        }
    }
    if (commit(c) != STORE_OK) {
        snprintf(err, errlen, "cannot commit the schema: %s", PQerrorMessage(c));
        goto out;
    }
    ret = STORE_OK;
out:
    PQclear(r);
    rollback(c);
    chomp(err);
    return ret;
}

/* Renew this node's lease (insert its row the first time). */
static int node_renew(PGconn *c, const char *node_id, double lease)
{
    struct params p = {0};
    p_text(&p, node_id);
    p_double(&p, lease);
    return exec(c, "node lease",
                "INSERT INTO nodes (id, started_at, alive_until) VALUES ($1, " DB_NOW ", " DB_NOW
                " + $2) ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until",
                &p);
}

/* Open the presence connection and take the node's lock on it. */
static int presence_open(struct pg_store *st, char *err, size_t errlen)
{
    st->presence = conn_open(st->url, err, errlen);
    if (!st->presence)
        return STORE_EIO;
    struct params p = {0};
    p_text(&p, st->node_id);
    if (exec(st->presence, "presence lock",
             "SELECT pg_advisory_lock(" PRESENCE_LOCK ", hashtext($1))", &p) != STORE_OK) {
        snprintf(err, errlen, "cannot take the presence lock of node %s", st->node_id);
        PQfinish(st->presence);
        st->presence = NULL;
        return STORE_EIO;
    }
    return STORE_OK;
}

static void *heartbeat_main(void *arg)
{
    struct pg_store *st = arg;
    pthread_mutex_lock(&st->lock);
    while (!st->stop) {
        double lease = st->lease;
        pthread_mutex_unlock(&st->lock);
        if (!st->presence || PQstatus(st->presence) != CONNECTION_OK) {
            /* Lost (a database restart): the other nodes saw this node
             * die and may have requeued its jobs (its writes to them are
             * refused); it comes back as the same node. */
            char err[512];
            PQfinish(st->presence);
            st->presence = NULL;
            if (presence_open(st, err, sizeof(err)) != STORE_OK)
                log_error("store: %s", err);
            else
                log_warn("store: presence of node %s restored", st->node_id);
        }
        if (!st->presence || node_renew(st->presence, st->node_id, lease) != STORE_OK)
            log_error("store: cannot renew the lease of node %s", st->node_id);
        pthread_mutex_lock(&st->lock);
        if (st->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = st->lease / 4;
        ts.tv_sec += (time_t)wait;
        ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (st->lease == lease)
            pthread_cond_timedwait(&st->wake, &st->lock, &ts);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static int node_id_new(char *out, size_t cap)
{
    unsigned char rnd[4];
    char host[64] = "";
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "node");
    host[sizeof(host) - 1] = '\0';
    snprintf(out, cap, "%s-%d-%02x%02x%02x%02x", host, (int)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3]);
    return 0;
}

static int pg_open(const char *url, struct store **out, char *err, size_t errlen)
{
    int ret = STORE_ENOMEM;
    struct pg_store *st = NULL;
    PGconn *c = NULL;

    if (!PQisthreadsafe()) {
        snprintf(err, errlen, "this libpq is not thread-safe");
        return STORE_EINVAL;
    }
    st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->wake, NULL);
    st->lease = LEASE_DEFAULT_S;
    if (node_id_new(st->node_id, sizeof(st->node_id)) != 0) {
        snprintf(err, errlen, "cannot make a node id");
        ret = STORE_EIO;
        goto out;
    }
    if (!(st->url = strdup(url))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ret = STORE_EIO;
    c = conn_open(url, err, errlen);
    if (!c)
        goto out;
    ret = schema_setup(c, err, errlen);
    if (ret != STORE_OK)
        goto out;
    ret = presence_open(st, err, errlen);
    if (ret != STORE_OK)
        goto out;
    if (node_renew(st->presence, st->node_id, st->lease) != STORE_OK) {
        snprintf(err, errlen, "cannot register node %s: %s", st->node_id,
                 PQerrorMessage(st->presence));
        chomp(err);
        ret = STORE_EIO;
        goto out;
    }
    st->idle[st->n_idle++] = c;
    c = NULL;
    if (pthread_create(&st->heartbeat, NULL, heartbeat_main, st) != 0) {
        snprintf(err, errlen, "cannot start the store's heartbeat thread");
        ret = STORE_EIO;
        goto out;
    }
    st->heartbeat_started = 1;
    log_info("store node registered node_id=%s", st->node_id);
    *out = &st->base;
    st = NULL;
    ret = STORE_OK;
out:
    PQfinish(c);
    if (st)
        pg_close(&st->base);
    return ret;
}

/* ------------------------------------------------------------ webhooks
 * (declared here: the job calls below queue outbox rows) */

static int hooks_enqueue(PGconn *c, const char *job_id, int event);
static int hooks_after_transition(PGconn *c, const char *job_id);

/* ------------------------------------------------------------ the calls */

/* INSERT job in status (queued, or failed with finished_at = now and the
 * error); the caller runs the transaction, if any. */
static int insert_job(PGconn *c, struct job *job, enum job_status status,
                      const char *error_code, const char *error_message)
{
    double finished = status == JOB_QUEUED ? 0 : job_now();
    struct params p = {0};
    char state[6] = "";
    p_text(&p, job->id);
    p_text(&p, job_status_name(status));
    p_i64(&p, job->priority);
    p_double(&p, job->created_at);
    if (finished > 0)
        p_double(&p, finished);
    else
        p_text(&p, NULL);
    p_text(&p, job->input_path);
    p_text(&p, job->input_json ? job->input_json : "{}");
    p_text(&p, job->outputs_json ? job->outputs_json : "[]");
    p_text(&p, job->metadata_json ? job->metadata_json : "{}");
    p_text(&p, job->webhook_url);
    p_text(&p, error_code);
    p_text(&p, error_message);
    PGresult *r = run(c, "insert job",
                      "INSERT INTO jobs (id, status, priority, created_at, finished_at, "
                      "attempts, input_path, input_json, outputs_json, metadata_json, "
                      "webhook_url, error_code, error_message) "
                      "VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12) "
                      "RETURNING seq",
                      &p, "23505", state);
    if (!r)
        return strcmp(state, "23505") == 0 ? STORE_ECONFLICT : STORE_EIO;
    job->seq = i64(r, 0, 0);
    PQclear(r);
    job->status = status;
    job->attempts = 0;
    job->finished_at = finished;
    return STORE_OK;
}

static int pg_job_create(struct store *st, struct job *job)
{
    int ret = STORE_EIO;
    PGconn *c = conn_get(st);
    if (c)
        ret = insert_job(c, job, JOB_QUEUED, NULL, NULL);
    conn_put(st, c);
    return ret;
}

static int pg_job_create_failed(struct store *st, struct job *job)
{
    int ret = STORE_EINVAL;
    PGconn *c = NULL;
    if (!job->error_code)
        goto out;
    ret = STORE_EIO;
    c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    ret = insert_job(c, job, JOB_FAILED, job->error_code, job->error_message);
    if (ret != STORE_OK)
        goto out;
    ret = hooks_after_transition(c, job->id); /* job.failed, same transaction */
    if (ret != STORE_OK)
        goto out;
    ret = commit(c);
out:
    rollback(c);
    conn_put(st, c);
    return ret;
}

static int pg_job_claim_next(struct store *st, struct job **out)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    struct job *job = NULL;
    PGconn *c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    struct params p = {0};
    p_double(&p, job_now());
    p_text(&p, pg(st)->node_id);
    /* SKIP LOCKED: a row another transaction is claiming is passed over,
     * so concurrent claimers get different jobs without waiting. */
    r = run(c, "claim",
            "UPDATE jobs SET status = 'running', started_at = $1, attempts = attempts + 1, "
            "node_id = $2, cancel_requested = false, "
            PROGRESS_RESET " WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' "
            "ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "AND status = 'queued' RETURNING " JOB_COLUMNS,
            &p, NULL, NULL);
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        ret = STORE_ENOTFOUND;
        goto out;
    }
    ret = STORE_ENOMEM;
    job = calloc(1, sizeof(*job));
    if (!job || row_to_job(r, 0, job) != STORE_OK)
        goto out;
    ret = hooks_enqueue(c, job->id, HOOK_EVENT_STARTED); /* same transaction */
    if (ret != STORE_OK)
        goto out;
    ret = commit(c);
    if (ret != STORE_OK)
        goto out;
    *out = job;
    job = NULL;
out:
    PQclear(r);
    rollback(c);
    job_free(&job); /* its strings too (a failure after row_to_job) */
    conn_put(st, c);
    return ret;
}

static int pg_job_progress(struct store *st, const char *id, const struct job_progress *pr)
{
    int ret = STORE_EIO;
    PGconn *c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    struct params p = {0};
    p_double(&p, pr->percent);
    p_double(&p, pr->out_time_s);
    p_i64(&p, pr->frames);
    p_double(&p, pr->fps);
    p_double(&p, pr->speed);
    p_double(&p, pr->eta_s);
    p_text(&p, id);
    p_text(&p, pg(st)->node_id);
    ret = update_one(c, "progress",
                     "UPDATE jobs SET p_percent = $1, p_out_time = $2, p_frames = $3, "
                     "p_fps = $4, p_speed = $5, p_eta = $6 "
                     "WHERE id = $7 AND status = 'running' AND node_id = $8",
                     &p, id);
    if (ret == STORE_OK)
        ret = hooks_enqueue(c, id, HOOK_EVENT_PROGRESS); /* throttled to 1/s per job */
    if (ret == STORE_OK)
        ret = commit(c);
out:
    rollback(c);
    conn_put(st, c);
    return ret;
}

/* One guarded UPDATE and its outbox rows in one transaction. */
static int transition(struct store *st, const char *id, const char *what, const char *sql,
                      const struct params *p)
{
    int ret = STORE_EIO;
    PGconn *c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    ret = update_one(c, what, sql, p, id);
    if (ret != STORE_OK)
        goto out;
    ret = hooks_after_transition(c, id); /* same transaction */
    if (ret != STORE_OK)
        goto out;
    ret = commit(c);
out:
    rollback(c);
    conn_put(st, c);
    return ret;
}

static int pg_job_finish(struct store *st, const char *id, enum job_status status,
                         const char *error_code, const char *error_message,
                         const char *results_json)
{
    if (!job_status_is_final(status))
        return STORE_EINVAL;
    struct params p = {0};
    p_text(&p, job_status_name(status));
    p_double(&p, job_now());
    p_text(&p, error_code);
    p_text(&p, error_message);
    p_text(&p, results_json);
    p_text(&p, status == JOB_SUCCEEDED ? "true" : "false");
    p_text(&p, id);
    p_text(&p, pg(st)->node_id);
    return transition(st, id, "finish",
                      "UPDATE jobs SET status = $1, finished_at = $2, error_code = $3, "
                      "error_message = $4, results_json = $5, "
                      "p_percent = CASE WHEN $6::boolean THEN 100 ELSE p_percent END, "
                      "p_eta = -1 "
                      "WHERE id = $7 AND status = 'running' AND node_id = $8",
                      &p);
}

static int pg_job_cancel_queued(struct store *st, const char *id)
{
    struct params p = {0};
    p_double(&p, job_now());
    p_text(&p, id);
    return transition(st, id, "cancel",
                      "UPDATE jobs SET status = 'canceled', finished_at = $1 "
                      "WHERE id = $2 AND status = 'queued'",
                      &p);
}

static int pg_job_requeue(struct store *st, const char *id)
{
    struct params p = {0};
    p_text(&p, id);
    p_text(&p, pg(st)->node_id);
    return transition(st, id, "requeue",
                      "UPDATE jobs SET status = 'queued', started_at = NULL, " PROGRESS_RESET
                      ", node_id = NULL "
                      "WHERE id = $1 AND status = 'running' AND node_id = $2",
                      &p);
}

static int pg_requeue_running(struct store *st, void (*fn)(void *opaque, const char *id),
                              void *opaque)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    struct params p = {0};
    p_text(&p, pg(st)->node_id);
    /* Only jobs whose node is gone: its lease ran out or it closed. */
    r = run(c, "requeue running",
            "UPDATE jobs SET status = 'queued', started_at = NULL, " PROGRESS_RESET
            ", node_id = NULL WHERE status = 'running' AND (node_id IS NULL OR "
            "(node_id <> $1 AND node_id NOT IN " LIVE_NODES ")) RETURNING id",
            &p, NULL, NULL);
    if (!r)
        goto out;
    ret = commit(c);
    if (ret != STORE_OK)
        goto out;
    for (int i = 0; fn && i < PQntuples(r); i++)
        fn(opaque, PQgetvalue(r, i, 0));
out:
    PQclear(r);
    rollback(c);
    conn_put(st, c);
    return ret;
}

/* One job by id; with pos, also its queue position, in the same query
 * (one round trip: the status of a queued job is read this way). */
static int job_get(struct store *st, const char *id, struct job **out, long *pos)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    struct job *job = NULL;
    PGconn *c = conn_get(st);
    if (!c)
        goto out;
    struct params p = {0};
    p_text(&p, id);
    r = run(c, "get",
            pos ? "SELECT " JOB_COLUMNS ", CASE WHEN j.status = 'queued' THEN (SELECT count(*) "
                  "FROM jobs q WHERE q.status = 'queued' AND (q.priority > j.priority OR "
                  "(q.priority = j.priority AND q.seq <= j.seq))) ELSE 0 END "
                  "FROM jobs j WHERE j.id = $1"
                : "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1",
            &p, NULL, NULL);
    /* The connection is not needed for the copy below. */
    conn_put(st, c);
    c = NULL;
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        ret = STORE_ENOTFOUND;
        goto out;
    }
    ret = STORE_ENOMEM;
    job = calloc(1, sizeof(*job));
    if (!job || row_to_job(r, 0, job) != STORE_OK)
        goto out;
    if (pos)
        *pos = (long)i64(r, 0, 22);
    *out = job;
    job = NULL;
    ret = STORE_OK;
out:
    job_free(&job); /* its strings too (a failure after row_to_job) */
    PQclear(r);
    conn_put(st, c);
    return ret;
}

static int pg_job_get(struct store *st, const char *id, struct job **out)
{
    return job_get(st, id, out, NULL);
}

static int pg_job_get_position(struct store *st, const char *id, struct job **out, long *pos)
{
    return job_get(st, id, out, pos);
}

/* Run a job SELECT and call fn for each row (the result is fetched whole
 * and the connection returned before the callbacks run). */
static int walk(struct store *st, const char *what, const char *sql, const struct params *p,
                int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    if (!c)
        goto out;
    r = run(c, what, sql, p, NULL, NULL);
    conn_put(st, c);
    if (!r)
        goto out;
    ret = STORE_OK;
    for (int i = 0; i < PQntuples(r); i++) {
        struct job job;
        if (row_to_job(r, i, &job) != STORE_OK) {
            ret = STORE_ENOMEM;
            break;
        }
        int stop = fn(opaque, &job);
        job_clear(&job);
        if (stop)
            break;
    }
out:
    PQclear(r);
    return ret;
}

static int pg_job_list(struct store *st, int status, int64_t before_seq, int limit,
                       int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    struct params p = {0};
    p_i64(&p, before_seq > 0 ? before_seq : INT64_MAX);
    p_i64(&p, limit);
    if (status >= 0) {
        p_text(&p, job_status_name((enum job_status)status));
        return walk(st, "list",
                    "SELECT " JOB_COLUMNS " FROM jobs WHERE status = $3 AND seq < $1 "
                    "ORDER BY seq DESC LIMIT $2",
                    &p, fn, opaque);
    }
    return walk(st, "list",
                "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                &p, fn, opaque);
}

static int pg_job_list_active(struct store *st, int (*fn)(void *opaque, const struct job *job),
                              void *opaque)
{
    return walk(st, "list active",
                "SELECT " JOB_COLUMNS " FROM jobs WHERE status IN ('queued', 'running') "
                "ORDER BY seq",
                NULL, fn, opaque);
}

static int pg_count_by_status(struct store *st, int64_t counts[5])
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    memset(counts, 0, 5 * sizeof(counts[0]));
    if (!c)
        goto out;
    r = run(c, "count", "SELECT status, count(*) FROM jobs GROUP BY status", NULL, NULL, NULL);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        int k = job_status_parse(PQgetvalue(r, i, 0));
        if (k >= 0)
            counts[k] = i64(r, i, 1);
    }
    ret = STORE_OK;
out:
    PQclear(r);
    conn_put(st, c);
    return ret;
}

/* ============================================================= webhooks
 * The same tables and rules as sqlite.c's; the outbox rows are
 * inserted under OUTBOX_LOCK (see DESIGN). */

/* Render event for job_id once and queue it to each of urls, inside the
 * caller's transaction. */
static int hooks_insert_event(PGconn *c, const char *job_id, int event, char **urls,
                              size_t n_urls)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    struct job job;
    int have_job = 0;
    json_t *obj = NULL;
    char *body = NULL;
    size_t body_len = 0;

    if (n_urls == 0)
        return STORE_OK;
    if (exec(c, "outbox lock", "SELECT pg_advisory_xact_lock(" OUTBOX_LOCK ")", NULL) !=
        STORE_OK)
        goto out;
    struct params p = {0};
    p_text(&p, job_id);
    r = run(c, "webhook event job", "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1", &p, NULL,
            NULL);
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        ret = STORE_ENOTFOUND;
        goto out;
    }
    ret = STORE_ENOMEM;
    if (row_to_job(r, 0, &job) != STORE_OK)
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
        struct params q = {0};
        p_text(&q, msg_id);
        p_text(&q, job_id);
        p_text(&q, hook_event_name(event));
        p_text(&q, urls[i]);
        p_text(&q, body);
        p_double(&q, now);
        ret = exec(c, "insert webhook delivery",
                   "INSERT INTO hook_deliveries (msg_id, job_id, event, url, body, "
                   "created_at, state, attempts, next_at) "
                   "VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6)",
                   &q);
        if (ret != STORE_OK)
            goto out;
    }
    ret = STORE_OK;
out:
    free(body);
    json_decref(obj);
    if (have_job)
        job_clear(&job);
    PQclear(r);
    return ret;
}

/* Queue event of job_id to every webhook that wants it (see
 * sqlite.c's hooks_enqueue), inside the caller's transaction. */
static int hooks_enqueue(PGconn *c, const char *job_id, int event)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    char *urls[HOOKS_MAX_TARGETS];
    size_t n = 0;

    if (event == HOOK_EVENT_PROGRESS) {
        struct params p = {0};
        p_text(&p, job_id);
        p_double(&p, job_now() - 1.0);
        r = run(c, "progress throttle",
                "SELECT 1 FROM hook_deliveries WHERE job_id = $1 AND "
                "event = 'job.progress' AND created_at > $2 LIMIT 1",
                &p, NULL, NULL);
        if (!r)
            return STORE_EIO;
        int recent = PQntuples(r) > 0;
        PQclear(r);
        r = NULL;
        if (recent)
            return STORE_OK;
    }
    struct params p = {0};
    p_text(&p, job_id);
    p_i64(&p, event);
    p_i64(&p, HOOK_EVENTS_DEFAULT);
    r = run(c, "webhook targets",
            "SELECT webhook_url FROM jobs WHERE id = $1 AND webhook_url IS NOT NULL AND "
            "webhook_url <> '' AND ($2::integer & $3::integer) <> 0 "
            "UNION ALL SELECT url FROM webhooks WHERE (job_id = $1 OR job_id IS NULL) AND "
            "(events & $2::integer) <> 0",
            &p, NULL, NULL);
    if (!r)
        goto out;
    int rows = PQntuples(r);
    for (int i = 0; i < rows && n < HOOKS_MAX_TARGETS; i++) {
        urls[n] = strdup(PQgetvalue(r, i, 0));
        if (!urls[n]) {
            ret = STORE_ENOMEM;
            goto out;
        }
        n++;
    }
    if (rows > HOOKS_MAX_TARGETS)
        log_warn("job %s has more than %d webhooks; the rest get no %s", job_id,
                 HOOKS_MAX_TARGETS, hook_event_name(event));
    ret = hooks_insert_event(c, job_id, event, urls, n);
out:
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    PQclear(r);
    return ret;
}

/* After a transition of job_id: queue its final event if it just ended. */
static int hooks_after_transition(PGconn *c, const char *job_id)
{
    struct params p = {0};
    p_text(&p, job_id);
    PGresult *r = run(c, "status", "SELECT status FROM jobs WHERE id = $1", &p, NULL, NULL);
    if (!r)
        return STORE_EIO;
    int event = PQntuples(r) > 0 ? hook_event_for_status(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return event ? hooks_enqueue(c, job_id, event) : STORE_OK;
}

static int pg_webhook_add(struct store *st, const char *job_id, const char *url, int events,
                          struct store_webhook *out, int *queued)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    char *status = NULL;
    PGconn *c = conn_get(st);

    *queued = 0;
    if (!c || store_new_webhook_id(out->id) != STORE_OK)
        goto out;
    out->created_at = job_now();
    if (begin(c) != STORE_OK)
        goto out;
    if (job_id) {
        struct params p = {0};
        p_text(&p, job_id);
        /* FOR SHARE: the job cannot end between this read and the
         * insert below, so its final event is queued exactly once (here,
         * or by the transition that ends it, which then sees this row). */
        r = run(c, "webhook job", "SELECT status FROM jobs WHERE id = $1 FOR SHARE", &p, NULL,
                NULL);
        if (!r)
            goto out;
        if (PQntuples(r) == 0) {
            ret = STORE_ENOTFOUND;
            goto out;
        }
        status = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        r = NULL;
        if (!status) {
            ret = STORE_ENOMEM;
            goto out;
        }
    }
    struct params p = {0};
    p_text(&p, out->id);
    p_text(&p, job_id);
    p_text(&p, url);
    p_i64(&p, events);
    p_double(&p, out->created_at);
    ret = exec(c, "insert webhook",
               "INSERT INTO webhooks (id, job_id, url, events, created_at) "
               "VALUES ($1, $2, $3, $4, $5)",
               &p);
    if (ret != STORE_OK)
        goto out;
    /* A job that already ended: its final event goes to this URL now. */
    int final_event = hook_event_for_status(status);
    if (final_event & events) {
        char *one = (char *)(uintptr_t)url;
        ret = hooks_insert_event(c, job_id, final_event, &one, 1);
        if (ret != STORE_OK)
            goto out;
        *queued = 1;
    }
    ret = commit(c);
    if (ret != STORE_OK) {
        *queued = 0;
        goto out;
    }
    out->job_id = job_id;
    out->url = url;
    out->events = events;
out:
    free(status);
    PQclear(r);
    rollback(c);
    conn_put(st, c);
    return ret;
}

static int pg_webhook_list(struct store *st, const char *job_id,
                           int (*fn)(void *opaque, const struct store_webhook *w), void *opaque)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    if (!c)
        goto out;
    struct params p = {0};
    p_text(&p, job_id);
    r = run(c, "webhook list",
            "SELECT id, job_id, url, events, created_at FROM webhooks "
            "WHERE job_id IS NOT DISTINCT FROM $1::text ORDER BY created_at, seq",
            &p, NULL, NULL);
    conn_put(st, c);
    c = NULL;
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_webhook w = {0};
        snprintf(w.id, sizeof(w.id), "%s", PQgetvalue(r, i, 0));
        w.job_id = val(r, i, 1);
        w.url = PQgetvalue(r, i, 2);
        w.events = (int)i64(r, i, 3);
        w.created_at = num(r, i, 4);
        if (fn(opaque, &w))
            break;
    }
    ret = STORE_OK;
out:
    PQclear(r);
    conn_put(st, c);
    return ret;
}

static int pg_webhook_delete(struct store *st, const char *id)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    if (!c)
        goto out;
    struct params p = {0};
    p_text(&p, id);
    r = run(c, "webhook delete", "DELETE FROM webhooks WHERE id = $1 AND job_id IS NULL", &p,
            NULL, NULL);
    if (!r)
        goto out;
    ret = strcmp(PQcmdTuples(r), "1") == 0 ? STORE_OK : STORE_ENOTFOUND;
out:
    PQclear(r);
    conn_put(st, c);
    return ret;
}

#define DELIVERY_COLUMNS                                                                  \
    "seq, msg_id, job_id, event, url, body, state, created_at, next_at, attempts"

static void row_to_delivery(const PGresult *r, int i, struct store_delivery *d)
{
    d->seq = i64(r, i, 0);
    d->msg_id = PQgetvalue(r, i, 1);
    d->job_id = PQgetvalue(r, i, 2);
    d->event = PQgetvalue(r, i, 3);
    d->url = PQgetvalue(r, i, 4);
    d->body = PQgetvalue(r, i, 5);
    d->body_len = (size_t)PQgetlength(r, i, 5);
    d->state = PQgetvalue(r, i, 6);
    d->created_at = num(r, i, 7);
    d->next_at = num(r, i, 8);
    d->attempts = (int)i64(r, i, 9);
}

static int pg_delivery_pending(struct store *st, int64_t after_seq, int limit,
                               int (*fn)(void *opaque, const struct store_delivery *d),
                               void *opaque)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    if (!c)
        goto out;
    struct params p = {0};
    p_i64(&p, after_seq);
    p_i64(&p, limit);
    p_text(&p, pg(st)->node_id);
    /* Read and claim in one statement; SKIP LOCKED: two nodes polling at
     * once split the rows rather than wait. */
    r = run(c, "pending deliveries",
            "WITH claimed AS (UPDATE hook_deliveries SET claimed_by = $3 WHERE seq IN ("
            "SELECT seq FROM hook_deliveries WHERE state = 'pending' AND seq > $1 AND "
            "(claimed_by IS NULL OR (claimed_by <> $3 AND claimed_by NOT IN " LIVE_NODES "))"
            " ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING " DELIVERY_COLUMNS ") "
            "SELECT * FROM claimed ORDER BY seq",
            &p, NULL, NULL);
    conn_put(st, c);
    c = NULL;
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_delivery d;
        row_to_delivery(r, i, &d);
        if (fn(opaque, &d))
            break;
    }
    ret = STORE_OK;
out:
    PQclear(r);
    conn_put(st, c);
    return ret;
}

static int pg_delivery_attempt(struct store *st, const struct store_attempt *a)
{
    int ret = STORE_EIO;
    PGconn *c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    struct params p = {0};
    p_i64(&p, a->delivery_seq);
    p_i64(&p, a->attempt);
    p_double(&p, a->at);
    p_i64(&p, a->http_status);
    p_text(&p, a->error && *a->error ? a->error : NULL);
    p_double(&p, a->duration_s);
    p_text(&p, a->outcome);
    struct params q = {0};
    p_text(&q, a->state);
    p_i64(&q, a->attempt);
    p_double(&q, a->next_at);
    p_i64(&q, a->delivery_seq);
    if (exec(c, "record delivery attempt",
             "INSERT INTO hook_attempts (delivery_seq, attempt, at, http_status, "
             "error, duration_s, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)",
             &p) != STORE_OK ||
        exec(c, "record delivery state",
             "UPDATE hook_deliveries SET state = $1, attempts = $2, next_at = $3 WHERE seq = $4",
             &q) != STORE_OK)
        goto out;
    ret = commit(c);
out:
    rollback(c);
    conn_put(st, c);
    return ret;
}

static int pg_delivery_list(struct store *st, const char *job_id,
                            int (*fn_delivery)(void *opaque, const struct store_delivery *d),
                            int (*fn_attempt)(void *opaque, const struct store_attempt *a),
                            void *opaque)
{
    int ret = STORE_EIO;
    PGresult *q = NULL, *ds = NULL, *as = NULL;
    PGconn *c = conn_get(st);
    if (!c)
        goto out;
    struct params p = {0};
    p_text(&p, job_id);
    /* One snapshot for the three reads. */
    if (exec(c, "delivery list", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL) !=
        STORE_OK)
        goto out;
    q = run(c, "delivery list job", "SELECT 1 FROM jobs WHERE id = $1", &p, NULL, NULL);
    if (!q)
        goto out;
    if (PQntuples(q) == 0) {
        ret = STORE_ENOTFOUND;
        goto out;
    }
    ds = run(c, "delivery list",
             "SELECT " DELIVERY_COLUMNS " FROM hook_deliveries WHERE job_id = $1 ORDER BY seq",
             &p, NULL, NULL);
    as = ds ? run(c, "attempt list",
                  "SELECT a.delivery_seq, a.attempt, a.at, a.http_status, a.error, "
                  "a.duration_s, a.outcome FROM hook_attempts a JOIN hook_deliveries d "
                  "ON a.delivery_seq = d.seq WHERE d.job_id = $1 "
                  "ORDER BY a.delivery_seq, a.attempt",
                  &p, NULL, NULL)
            : NULL;
    if (!ds || !as || commit(c) != STORE_OK)
        goto out;
    conn_put(st, c);
    c = NULL;
    for (int i = 0; i < PQntuples(ds); i++) {
        struct store_delivery d;
        row_to_delivery(ds, i, &d);
        if (fn_delivery(opaque, &d))
            break;
    }
    for (int i = 0; i < PQntuples(as); i++) {
        struct store_attempt a = {
            .delivery_seq = i64(as, i, 0),
            .attempt = (int)i64(as, i, 1),
            .at = num(as, i, 2),
            .http_status = (int)i64(as, i, 3),
            .error = val(as, i, 4),
            .duration_s = num(as, i, 5),
            .outcome = PQgetvalue(as, i, 6),
        };
        if (fn_attempt(opaque, &a))
            break;
    }
    ret = STORE_OK;
out:
    PQclear(q);
    PQclear(ds);
    PQclear(as);
    rollback(c);
    conn_put(st, c);
    return ret;
}

static int pg_delivery_release(struct store *st, int64_t seq)
{
    int ret = STORE_EIO;
    PGconn *c = conn_get(st);
    if (!c)
        return ret;
    struct params p = {0};
    p_text(&p, pg(st)->node_id);
    p_i64(&p, seq);
    ret = exec(c, "release delivery",
               "UPDATE hook_deliveries SET claimed_by = NULL WHERE claimed_by = $1 AND "
               "state = 'pending' AND ($2 = 0 OR seq = $2)",
               &p);
    conn_put(st, c);
    return ret;
}

static const char *pg_node_id(const struct store *st)
{
    return ((const struct pg_store *)st)->node_id;
}

static void pg_set_node_lease(struct store *base, double seconds)
{
    struct pg_store *st = pg(base);
    pthread_mutex_lock(&st->lock);
    st->lease = seconds;
    pthread_cond_signal(&st->wake); /* renew with the new lease now */
    pthread_mutex_unlock(&st->lock);
}

static int pg_job_cancel_request(struct store *st, const char *id, int *running)
{
    int ret = STORE_EIO;
    PGresult *r = NULL;
    PGconn *c = conn_get(st);
    if (!c || begin(c) != STORE_OK)
        goto out;
    struct params p = {0};
    p_double(&p, job_now());
    p_text(&p, id);
    r = run(c, "cancel request",
            "UPDATE jobs SET status = 'canceled', finished_at = $1 "
            "WHERE id = $2 AND status = 'queued'",
            &p, NULL, NULL);
    if (!r)
        goto out;
    if (strcmp(PQcmdTuples(r), "1") == 0) {
        ret = hooks_after_transition(c, id); /* job.canceled, same transaction */
        if (ret == STORE_OK)
            ret = commit(c);
        goto out;
    }
    struct params q = {0};
    p_text(&q, id);
    ret = update_one(c, "cancel request",
                     "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND status = 'running'",
                     &q, id);
    if (ret == STORE_OK)
        ret = commit(c);
    if (ret == STORE_OK)
        *running = 1;
out:
    PQclear(r);
    rollback(c);
    conn_put(st, c);
    return ret;
}

static int pg_cancel_requested(struct store *st, void (*fn)(void *opaque, const char *id),
                               void *opaque)
{
    PGconn *c = conn_get(st);
    if (!c)
        return STORE_EIO;
    struct params p = {0};
    p_text(&p, pg(st)->node_id);
    PGresult *r = run(c, "cancel requested",
                      "SELECT id FROM jobs WHERE status = 'running' AND node_id = $1 AND "
                      "cancel_requested",
                      &p, NULL, NULL);
    conn_put(st, c);
    if (!r)
        return STORE_EIO;
    for (int i = 0; i < PQntuples(r); i++)
        fn(opaque, PQgetvalue(r, i, 0));
    PQclear(r);
    return STORE_OK;
}

static int pg_queue_position(struct store *st, const char *id, long *pos)
{
    PGconn *c = conn_get(st);
    if (!c)
        return STORE_EIO;
    struct params p = {0};
    p_text(&p, id);
    PGresult *r = run(c, "queue position",
                      "SELECT count(*) FROM jobs j JOIN jobs q ON q.status = 'queued' AND "
                      "(q.priority > j.priority OR (q.priority = j.priority AND q.seq <= j.seq)) "
                      "WHERE j.id = $1 AND j.status = 'queued'",
                      &p, NULL, NULL);
    conn_put(st, c);
    if (!r)
        return STORE_EIO;
    *pos = PQntuples(r) > 0 ? (long)i64(r, 0, 0) : 0;
    PQclear(r);
    return STORE_OK;
}

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .job_create = pg_job_create,
    .job_create_failed = pg_job_create_failed,
    .job_claim_next = pg_job_claim_next,
    .job_progress = pg_job_progress,
    .job_finish = pg_job_finish,
    .job_cancel_queued = pg_job_cancel_queued,
    .job_requeue = pg_job_requeue,
    .requeue_running = pg_requeue_running,
    .job_get = pg_job_get,
    .job_list = pg_job_list,
    .job_list_active = pg_job_list_active,
    .count_by_status = pg_count_by_status,
    .webhook_add = pg_webhook_add,
    .webhook_list = pg_webhook_list,
    .webhook_delete = pg_webhook_delete,
    .delivery_pending = pg_delivery_pending,
    .delivery_attempt = pg_delivery_attempt,
    .delivery_list = pg_delivery_list,
    .node_id = pg_node_id,
    .set_node_lease = pg_set_node_lease,
    .job_cancel_request = pg_job_cancel_request,
    .cancel_requested = pg_cancel_requested,
    .queue_position = pg_queue_position,
    .job_get_position = pg_job_get_position,
    .delivery_release = pg_delivery_release,
};
