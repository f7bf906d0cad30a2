/*
 * pg.c - the job store's PostgreSQL driver (see backend.h), for one or
 * several vidq nodes sharing one database.
 *
 * DESIGN
 *   Schema (version 1, in vidq_meta(key, value) under 'schema_version'),
 *   backend.h's STORE_SCHEMA with PostgreSQL types
 *   (Unix-second times as double precision, seq as identity columns),
 *   plus webhooks.seq (registration order) and what several nodes need:
 *   nodes(id, alive_until), jobs.node_id (the node running the job),
 *   jobs.cancel_requested, hook_deliveries.claimed_by (see NODES), and
 *   job_counts with the jobs_changed trigger that keeps it and NOTIFYs
 *   each change (JOB COUNTS AND CHANGES). Created on open, idempotently,
 *   under an advisory lock so that nodes starting together do not race.
 *   States and guards: store.c's, every transition is one UPDATE
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
 *   Threads: a pool of connections (store.c's, at most 16 idle); a call borrows
 *   one for its length. A connection that broke or is left inside a
 *   transaction is closed, not pooled; the next call opens a new one.
 *   Errors: libpq's messages go to the log; callers get STORE_EIO.
 */
#include "store/backend.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

#include "common/clock.h"
#include "common/log.h"

enum { SCHEMA_VERSION = 1 };

/* Arbitrary constants naming vidq's advisory locks. */
#define SCHEMA_LOCK "7617710001"
#define OUTBOX_LOCK "7617710002"

struct pg_store {
    struct store base; /* first: store.c sees only this */
    char *url;
    char node_id[128];
    pthread_mutex_t lock; /* guards lease, stop */
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

/* JOB COUNTS AND CHANGES: one trigger on jobs, in the transaction of
 * each insert, update and delete (so also of writes by statements this
 * file never sees, and of an older vidq's):
 *   - job_counts(status, n): the count of each status (store_count_by_
 *     status reads it instead of scanning jobs). A status change locks
 *     its two rows in name order and a delete locks all five in that
 *     order first (a purge deletes jobs of several statuses in one
 *     transaction), so two transactions never wait for each other in a
 *     cycle. Filled from a scan once, when the table is made (the CREATE
 *     TRIGGER before it locks jobs against writes to the commit).
 *   - NOTIFY vidq_jobs '<id> <status|deleted> <seq>': the nodes' status
 *     caches (sched_nodes.c) refetch that job. Sent at the commit, in
 *     commit order; identical payloads of one transaction are sent once. */
#define COUNTS_AND_NOTIFY                                                                  \
    "CREATE TABLE IF NOT EXISTS job_counts (status TEXT PRIMARY KEY, n BIGINT NOT NULL);"  \
    "CREATE OR REPLACE FUNCTION vidq_jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$ " \
    "BEGIN "                                                                               \
    " IF TG_OP = 'INSERT' THEN"                                                            \
    "  UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;"                         \
    " ELSIF TG_OP = 'DELETE' THEN"                                                         \
    "  PERFORM 1 FROM job_counts ORDER BY status FOR UPDATE;"                              \
    "  UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;"                         \
    " ELSIF NEW.status <> OLD.status THEN"                                                 \
    "  IF OLD.status < NEW.status THEN"                                                    \
    "   UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;"                        \
    "   UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;"                        \
    "  ELSE"                                                                               \
    "   UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;"                        \
    "   UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;"                        \
    "  END IF;"                                                                            \
    " END IF;"                                                                             \
    " IF TG_OP = 'DELETE' THEN"                                                            \
    "  PERFORM pg_notify('vidq_jobs', OLD.id || ' deleted ' || OLD.seq);"                  \
    " ELSE"                                                                                \
    "  PERFORM pg_notify('vidq_jobs', NEW.id || ' ' || NEW.status || ' ' || NEW.seq);"     \
    " END IF;"                                                                             \
    " RETURN NULL; "                                                                       \
    "END $$;"                                                                              \
    "CREATE OR REPLACE TRIGGER jobs_changed AFTER INSERT OR UPDATE OR DELETE ON jobs "     \
    "FOR EACH ROW EXECUTE FUNCTION vidq_jobs_changed();"                                   \
    "INSERT INTO job_counts (status, n) SELECT s, (SELECT count(*) FROM jobs "             \
    "WHERE jobs.status = s) FROM unnest(ARRAY['queued', 'running', 'succeeded', 'failed', " \
    "'canceled']) AS s ON CONFLICT (status) DO NOTHING;"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS vidq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    STORE_SCHEMA("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "DOUBLE PRECISION", "BIGINT",
                 ", node_id TEXT, cancel_requested BOOLEAN NOT NULL DEFAULT false",
                 " seq BIGINT GENERATED ALWAYS AS IDENTITY,", ", claimed_by TEXT")
    "CREATE INDEX IF NOT EXISTS jobs_running_node ON jobs(node_id) WHERE status = 'running';"
    /* Retention, added to a store made before it (additive: version 1). */
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS ttl_s DOUBLE PRECISION,"
    " ADD COLUMN IF NOT EXISTS expires_at DOUBLE PRECISION,"
    " ADD COLUMN IF NOT EXISTS expired INTEGER NOT NULL DEFAULT 0;"
    STORE_RETENTION_INDEXES
    "CREATE TABLE IF NOT EXISTS nodes ("
    " id TEXT PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL,"
    " alive_until DOUBLE PRECISION NOT NULL);"
    COUNTS_AND_NOTIFY;

static struct pg_store *pg(struct store *st) { return (struct pg_store *)st; }

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

/* Open a connection. lease_s > 0: the server ends this session's
 * transaction once it sits idle for that long (a node paused mid-
 * transaction, by SIGSTOP or a frozen VM, would otherwise hold its row
 * locks for as long as its connection lives, and every other node's
 * requeue of its jobs would wait on them: found by test_pg_reclaim). A
 * healthy node's transactions last milliseconds; one stalled past its
 * lease is presumed dead anyway, its writes refused. */
static PGconn *conn_open(const char *url, double lease_s, char *err, size_t errlen)
{
    /* Later keywords override earlier ones: the URL's own settings win
     * over these defaults (a dead host fails in 10 s, not the OS's TCP
     * timeout). */
    char options[80];
    snprintf(options, sizeof(options), "-c idle_in_transaction_session_timeout=%ld",
             lease_s > 0 ? (long)(lease_s * 1000) : 0L);
    const char *const keys[] = {"connect_timeout", "application_name", "options", "dbname", NULL};
    const char *const vals[] = {"10", "vidq", options, url, NULL};
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

static void *pg_conn_open(struct store *st)
{
    char err[512];
    struct pg_store *ps = pg(st);
    pthread_mutex_lock(&ps->lock);
    double lease = ps->lease;
    pthread_mutex_unlock(&ps->lock);
    PGconn *c = conn_open(ps->url, lease, err, sizeof(err));
    if (!c)
        log_error("store: %s", err);
    return c;
}

static void pg_conn_close(void *conn) { PQfinish(conn); }

/* A connection that broke or is left inside a transaction is not pooled. */
static int pg_conn_usable(void *conn)
{
    return PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
}

/* ------------------------------------------------------------ queries */

/* Run sql with p's parameters, sent as text. Returns the result (PQclear
 * it) when the statement succeeded, else NULL; the error is logged unless
 * it is a unique violation (SQLSTATE 23505, which *unique then says). */
static PGresult *exec_params(PGconn *c, const char *what, const char *sql,
                             const struct store_params *p, int *unique)
{
    const char *v[STORE_MAX_PARAMS];
    char buf[STORE_MAX_PARAMS][40];
    int n = store_params_n(p);
    for (int i = 0; i < n; i++) {
        const struct store_param *x = &p->v[i];
        v[i] = buf[i];
        switch (x->type) {
        case STORE_P_TEXT: v[i] = x->text; break;
        case STORE_P_DOUBLE: snprintf(buf[i], sizeof(buf[i]), "%.17g", x->d); break;
        case STORE_P_I64: snprintf(buf[i], sizeof(buf[i]), "%" PRId64, x->i); break;
        default: v[i] = NULL; break; /* SQL NULL */
        }
    }
    PGresult *r = PQexecParams(c, sql, n, NULL, n ? v : NULL, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (r && (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK))
        return r;
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int dup = code && strcmp(code, "23505") == 0;
    if (unique)
        *unique = dup;
    if (!dup) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        chomp(msg);
        log_error("store: %s: %s", what, msg);
    }
    PQclear(r);
    return NULL;
}

static const char *row_text(const struct store_row *r, int col, size_t *len)
{
    const PGresult *res = r->res;
    int isnull = PQgetisnull(res, r->i, col);
    if (len)
        *len = isnull ? 0 : (size_t)PQgetlength(res, r->i, col);
    return isnull ? NULL : PQgetvalue(res, r->i, col);
}

static double row_num(const struct store_row *r, int col)
{
    const char *v = row_text(r, col, NULL);
    return v ? strtod(v, NULL) : 0;
}

static int64_t row_i64(const struct store_row *r, int col)
{
    const char *v = row_text(r, col, NULL);
    return v ? (int64_t)strtoll(v, NULL, 10) : 0;
}

static const struct store_row_ops row_ops = {row_text, row_num, row_i64};

static int pg_run(void *conn, const char *what, const char *sql, const struct store_params *p,
                  store_row_fn row, void *opaque, int64_t *changes)
{
    int unique = 0;
    PGresult *r = exec_params(conn, what, sql, p, &unique);
    if (!r)
        return unique ? STORE_ECONFLICT : STORE_EIO;
    struct store_row sr = {&row_ops, r, 0};
    for (; row && sr.i < PQntuples(r); sr.i++)
        if (row(opaque, &sr))
            break;
    if (changes)
        *changes = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return STORE_OK;
}

/* A statement of this file's own (schema, nodes). */
static int exec(PGconn *c, const char *what, const char *sql, const struct store_params *p)
{
    return pg_run(c, what, sql, p, NULL, NULL, NULL);
}

static int begin(PGconn *c) { return exec(c, "begin", "BEGIN", NULL); }
static int commit(PGconn *c) { return exec(c, "commit", "COMMIT", NULL); }
static void rollback(PGconn *c)
{
    if (c && PQtransactionStatus(c) != PQTRANS_IDLE)
        exec(c, "rollback", "ROLLBACK", NULL);
}

/* --------------------------------------------------------- open/close */

/* Wake the heartbeat thread with a new lease (> 0), or to stop. */
static void heartbeat_wake(struct pg_store *st, double lease, int stop)
{
    pthread_mutex_lock(&st->lock);
    if (lease > 0)
        st->lease = lease;
    st->stop |= stop;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->lock);
}

static void pg_close(struct store *base)
{
    struct pg_store *st = pg(base);
    if (st->heartbeat_started) {
        heartbeat_wake(st, 0, 1);
        pthread_join(st->heartbeat, NULL);
        /* Dead at once (its jobs and deliveries are free for the other
         * nodes now, rather than when the lease runs out). */
        PGconn *c = st->presence;
        struct store_params p = {{sp_text(st->node_id)}};
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
    store_pool_free(base);
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
    r = exec_params(c, "schema version",
                    "SELECT value FROM vidq_meta WHERE key = 'schema_version'", NULL, NULL);
    if (!r) {
        snprintf(err, errlen, "cannot read the schema version: %s", PQerrorMessage(c));
        goto out;
    }
    if (PQntuples(r) == 0) {
        struct store_params p = {{sp_i64(SCHEMA_VERSION)}};
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
    struct store_params p = {{sp_text(node_id), sp_double(lease)}};
    return exec(c, "node lease",
                "INSERT INTO nodes (id, started_at, alive_until) VALUES ($1, " DB_NOW ", " DB_NOW
                " + $2) ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until",
                &p);
}

/* Open the presence connection and take the node's lock on it. */
static int presence_open(struct pg_store *st, char *err, size_t errlen)
{
    st->presence = conn_open(st->url, 0, err, errlen);
    if (!st->presence)
        return STORE_EIO;
    struct store_params p = {{sp_text(st->node_id)}};
    if (exec(st->presence, "presence lock",
             "SELECT pg_advisory_lock(" PRESENCE_LOCK ", hashtext($1))", &p) != STORE_OK) {
        snprintf(err, errlen, "cannot take the presence lock of node %s", st->node_id);
        PQfinish(st->presence);
        st->presence = NULL;
        return STORE_EIO;
    }
    return STORE_OK;
}

/* The lease to renew with, or 0 once the store is closing. */
static double heartbeat_lease(struct pg_store *st)
{
    pthread_mutex_lock(&st->lock);
    double lease = st->stop ? 0 : st->lease;
    pthread_mutex_unlock(&st->lock);
    return lease;
}

/* Sleep lease / 4, or less when the lease changes or the store closes. */
static void heartbeat_sleep(struct pg_store *st, double lease)
{
    struct timespec ts = clock_deadline(lease / 4);
    pthread_mutex_lock(&st->lock);
    if (!st->stop && st->lease == lease)
        pthread_cond_timedwait(&st->wake, &st->lock, &ts);
    pthread_mutex_unlock(&st->lock);
}

static void *heartbeat_main(void *arg)
{
    struct pg_store *st = arg;
    double lease;
    while ((lease = heartbeat_lease(st)) > 0) {
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
        heartbeat_sleep(st, lease);
    }
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
    store_pool_init(&st->base, &store_pg_driver);
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
    c = conn_open(url, 0, err, errlen);
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
    /* Not pooled: the pool's connections are opened with the lease
     * (conn_open), which store_set_node_lease may change right after. */
    PQfinish(c);
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

/* ---------------------------------------------------------- statements
 * The ones PostgreSQL writes its own way (the rest: store.c): the node
 * guards, SKIP LOCKED claims, the outbox lock, the read snapshot. */

static const char *const pg_sql[SQL_N] = {
    [SQL_BEGIN_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    /* SKIP LOCKED: a row another transaction is claiming is passed over,
     * so concurrent claimers get different jobs without waiting. */
    [SQL_JOB_CLAIM] = "UPDATE jobs SET status = 'running', started_at = $1, "
                      "attempts = attempts + 1, node_id = $2, cancel_requested = false, "
                      PROGRESS_RESET " WHERE seq = (SELECT seq FROM jobs WHERE status = "
                      "'queued' ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
                      "AND status = 'queued' RETURNING " JOB_COLUMNS,
    [SQL_JOB_SET_INPUT] = "UPDATE jobs SET input_json = $1 WHERE id = $2 AND status = 'running'",
    [SQL_JOB_PROGRESS] = "UPDATE jobs SET p_percent = $1, p_out_time = $2, p_frames = $3, "
                         "p_fps = $4, p_speed = $5, p_eta = $6 "
                         "WHERE id = $7 AND status = 'running' AND node_id = $8",
    /* A cancel requested through the store wins (store.h). */
    [SQL_JOB_FINISH] = "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'canceled' "
                       "ELSE $1 END, finished_at = $2, "
                       "error_code = CASE WHEN cancel_requested THEN NULL ELSE $3 END, "
                       "error_message = CASE WHEN cancel_requested THEN NULL ELSE $4 END, "
                       "results_json = CASE WHEN cancel_requested THEN NULL ELSE $5 END, "
                       "p_percent = CASE WHEN $6::boolean AND NOT cancel_requested THEN 100 "
                       "ELSE p_percent END, "
                       "p_eta = -1 WHERE id = $7 AND status = 'running' AND node_id = $8 "
                       "AND ($9::integer = 0 OR attempts = $9::integer)",
    [SQL_JOB_REQUEUE] = "UPDATE jobs SET status = 'queued', started_at = NULL, " PROGRESS_RESET
                        ", node_id = NULL WHERE id = $1 AND status = 'running' AND node_id = $2",
    /* Only jobs whose node is gone: its lease ran out or it closed. */
    [SQL_REQUEUE_RUNNING] = "UPDATE jobs SET status = 'queued', started_at = NULL, "
                            PROGRESS_RESET ", node_id = NULL WHERE status = 'running' AND "
                            "(node_id IS NULL OR (node_id <> $1 AND node_id NOT IN " LIVE_NODES
                            ")) RETURNING id",
    /* FOR SHARE: see store_webhook_add. */
    [SQL_JOB_STATUS_LOCKED] = "SELECT status FROM jobs WHERE id = $1 FOR SHARE",
    [SQL_CANCEL_RUNNING] = "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND "
                           "status = 'running'",
    [SQL_CANCEL_REQUESTED] = "SELECT id FROM jobs WHERE status = 'running' AND node_id = $1 "
                             "AND cancel_requested",
    [SQL_OUTBOX_LOCK] = "SELECT pg_advisory_xact_lock(" OUTBOX_LOCK ")",
    /* Read and claim in one statement; SKIP LOCKED: two nodes polling at
     * once split the rows rather than wait. */
    [SQL_DELIVERY_PENDING] =
        "WITH claimed AS (UPDATE hook_deliveries SET claimed_by = $3 WHERE seq IN ("
        "SELECT seq FROM hook_deliveries WHERE state = 'pending' AND seq > $1 AND "
        "(claimed_by IS NULL OR (claimed_by <> $3 AND claimed_by NOT IN " LIVE_NODES "))"
        " ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING " DELIVERY_COLUMNS ") "
        "SELECT * FROM claimed ORDER BY seq",
    [SQL_DELIVERY_RELEASE] = "UPDATE hook_deliveries SET claimed_by = NULL WHERE claimed_by = "
                             "$1 AND state = 'pending' AND ($2 = 0 OR seq = $2)",
    [SQL_WEBHOOK_LIST] = "SELECT id, job_id, url, events, created_at FROM webhooks "
                         "WHERE job_id IS NOT DISTINCT FROM $1::text ORDER BY created_at, seq",
    [SQL_JOB_GET_MANY] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id IN "
                         "(SELECT json_array_elements_text($1::json))",
};

/* ------------------------------------------------------------- watch
 * LISTEN vidq_jobs on a connection of its own (store_watch_*; see JOB
 * COUNTS AND CHANGES). application_name vidq-watch names it in
 * pg_stat_activity. */

static void *pg_watch_open(struct store *base)
{
    char err[512];
    PGconn *c = conn_open(pg(base)->url, 0, err, sizeof(err));
    if (!c) {
        log_error("store: watch: %s", err);
        return NULL;
    }
    if (exec(c, "watch", "SET application_name = 'vidq-watch'", NULL) != STORE_OK ||
        exec(c, "watch", "LISTEN vidq_jobs", NULL) != STORE_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Call fn with the id of each notification libpq holds; how many. */
static int watch_drain(PGconn *c, void (*fn)(void *opaque, const char *id), void *opaque)
{
    int n = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(c)) != NULL) {
        char id[64];
        size_t len = strcspn(nt->extra, " ");
        if (len > 0 && len < sizeof(id)) {
            memcpy(id, nt->extra, len);
            id[len] = '\0';
            fn(opaque, id);
            n++;
        }
        PQfreemem(nt);
    }
    return n;
}

static int pg_watch_wait(void *w, int timeout_ms, void (*fn)(void *opaque, const char *id),
                         void *opaque)
{
    PGconn *c = w;
    if (PQstatus(c) != CONNECTION_OK)
        return STORE_EIO;
    if (watch_drain(c, fn, opaque) > 0)
        return STORE_OK;
    struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
    if (pfd.fd < 0)
        return STORE_EIO;
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0 && errno != EINTR)
        return STORE_EIO;
    if (rc > 0 && !PQconsumeInput(c)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        chomp(msg);
        log_warn("store: watch connection lost: %s", msg);
        return STORE_EIO;
    }
    watch_drain(c, fn, opaque);
    return PQstatus(c) == CONNECTION_OK ? STORE_OK : STORE_EIO;
}

static void pg_watch_close(void *w) { PQfinish(w); }

static const char *pg_node_id(const struct store *st)
{
    return ((const struct pg_store *)st)->node_id;
}

static void pg_set_node_lease(struct store *base, double seconds)
{
    heartbeat_wake(pg(base), seconds, 0); /* renew with the new lease now */
}

const struct store_driver store_pg_driver = {
    .name = "postgres", .sql = pg_sql, .open = pg_open, .close = pg_close,
    .conn_open = pg_conn_open, .conn_close = pg_conn_close, .conn_usable = pg_conn_usable,
    .run = pg_run, .node_id = pg_node_id, .set_node_lease = pg_set_node_lease,
    .watch_open = pg_watch_open, .watch_wait = pg_watch_wait, .watch_close = pg_watch_close,
};
