/*
 * store.c - the store.h calls, the same for every backend (see backend.h):
 * "sqlite:<path>" (sqlite.c) or "postgres://..." / "postgresql://..."
 * (pg.c), picked by the URL's scheme.
 *
 * DESIGN
 *   States: queued -> running -> succeeded | failed | canceled, plus
 *   running -> queued (requeue) and queued -> canceled; a refused tus
 *   upload is inserted as failed directly (with its job.failed rows).
 *   Transitions: every one is ONE guarded UPDATE ("... WHERE id = $n AND
 *   status = <the state it leaves>", and on a shared store "AND node_id =
 *   this node" for a running job) in one transaction (transition()), so
 *   two threads or nodes never both claim a job or end it twice. When the
 *   UPDATE changes nothing, the job's existence tells STORE_ECONFLICT from
 *   STORE_ENOTFOUND (update_one()).
 *   Outbox: the webhook delivery rows of a change are inserted in the
 *   change's transaction (claim -> job.started, progress -> job.progress
 *   at most once a second per job, the end -> its final event): the
 *   targets are the job's upload webhook_url (default events), its own
 *   registrations and the global ones; the payload is rendered once, from
 *   the job row as the transaction sees it, and stored with the row. A
 *   backend that needs it holds SQL_OUTBOX_LOCK from the first delivery
 *   insert to the commit (PostgreSQL: rows become visible in seq order).
 *   Rows: jobs, deliveries, attempts and registrations are read by column
 *   number (JOB_COLUMNS, DELIVERY_COLUMNS) through struct store_row, and
 *   written through struct store_params, so each exists once, here.
 *   SQL: the portable statements are below ($1..$n parameters); a backend
 *   writes the ones its dialect needs (BEGIN IMMEDIATE, SKIP LOCKED, the
 *   node guards) in its own sql[] table.
 *   Schema: backend.h's STORE_SCHEMA, the same tables in every dialect:
 *     jobs (seq = creation order and list cursor, id, status, priority,
 *       times as Unix seconds, NULL = not yet; attempts, the input, the
 *       outputs and their results as JSON text, metadata, webhook_url,
 *       p_* progress, error_code/error_message);
 *     webhooks (id, job_id NULL = global, url, events: a mask of
 *       store/hook_event.h, created_at);
 *     hook_deliveries (seq, msg_id, job_id, event, url, body = the payload
 *       fixed at the event, state pending|delivered|failed|gone,
 *       attempts, next_at); hook_attempts (one row per attempt).
 *   Threads: a call borrows one connection of the pool (at most
 *   STORE_POOL_MAX idle, here; the backend opens and vets them) for its
 *   length; nothing else is shared between calls. Row callbacks run while
 *   the call holds its connection: one that calls the store gets another.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/backend.h"
#include "store/hook_event.h"

enum { HOOKS_MAX_TARGETS = 256 };

/* The statements both dialects read alike. */
static const char *const portable_sql[SQL_N] = {
    [SQL_BEGIN] = "BEGIN",
    [SQL_COMMIT] = "COMMIT",
    [SQL_ROLLBACK] = "ROLLBACK",
    [SQL_JOB_INSERT] = "INSERT INTO jobs (id, status, priority, created_at, finished_at, "
                       "attempts, input_path, input_json, outputs_json, metadata_json, "
                       "webhook_url, error_code, error_message, ttl_s) "
                       "VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12, $13) "
                       "RETURNING seq",
    [SQL_JOB_CANCEL_QUEUED] = "UPDATE jobs SET status = 'canceled', finished_at = $1 "
                              "WHERE id = $2 AND status = 'queued'",
    [SQL_JOB_EXISTS] = "SELECT 1 FROM jobs WHERE id = $1",
    [SQL_JOB_STATUS] = "SELECT status FROM jobs WHERE id = $1",
    [SQL_JOB_STATUS_LOCKED] = "SELECT status FROM jobs WHERE id = $1",
    [SQL_JOB_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1",
    [SQL_JOB_GET_POSITION] =
        "SELECT " JOB_COLUMNS ", CASE WHEN j.status = 'queued' THEN (SELECT count(*) "
        "FROM jobs q WHERE q.status = 'queued' AND (q.priority > j.priority OR "
        "(q.priority = j.priority AND q.seq <= j.seq))) ELSE 0 END FROM jobs j WHERE j.id = $1",
    [SQL_JOB_LIST] = "SELECT " JOB_COLUMNS " FROM jobs WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
    [SQL_JOB_LIST_STATUS] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status = $3 AND seq < $1 "
                            "ORDER BY seq DESC LIMIT $2",
    [SQL_JOB_LIST_ACTIVE] = "SELECT " JOB_COLUMNS " FROM jobs WHERE status IN ('queued', "
                            "'running') ORDER BY seq",
    /* Kept by triggers on jobs (each driver's schema), not a scan. */
    [SQL_COUNT_BY_STATUS] = "SELECT status, n FROM job_counts",
    [SQL_QUEUE_POSITION] =
        "SELECT count(*) FROM jobs j JOIN jobs q ON q.status = 'queued' AND "
        "(q.priority > j.priority OR (q.priority = j.priority AND q.seq <= j.seq)) "
        "WHERE j.id = $1 AND j.status = 'queued'",
    [SQL_PROGRESS_RECENT] = "SELECT 1 FROM hook_deliveries WHERE job_id = $1 AND "
                            "event = 'job.progress' AND created_at > $2 LIMIT 1",
    [SQL_HOOK_TARGETS] =
        "SELECT webhook_url FROM jobs WHERE id = $1 AND webhook_url IS NOT NULL AND "
        "webhook_url <> '' AND (CAST($2 AS INTEGER) & CAST($3 AS INTEGER)) <> 0 "
        "UNION ALL SELECT url FROM webhooks WHERE (job_id = $1 OR job_id IS NULL) AND "
        "(events & CAST($2 AS INTEGER)) <> 0",
    [SQL_DELIVERY_INSERT] = "INSERT INTO hook_deliveries (msg_id, job_id, event, url, body, "
                            "created_at, state, attempts, next_at) "
                            "VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6)",
    [SQL_DELIVERY_LIST] = "SELECT " DELIVERY_COLUMNS " FROM hook_deliveries WHERE job_id = $1 "
                          "ORDER BY seq",
    [SQL_ATTEMPT_INSERT] = "INSERT INTO hook_attempts (delivery_seq, attempt, at, http_status, "
                           "error, duration_s, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    [SQL_DELIVERY_UPDATE] = "UPDATE hook_deliveries SET state = $1, attempts = $2, next_at = $3 "
                            "WHERE seq = $4",
    [SQL_ATTEMPT_LIST] = "SELECT a.delivery_seq, a.attempt, a.at, a.http_status, a.error, "
                         "a.duration_s, a.outcome FROM hook_attempts a JOIN hook_deliveries d "
                         "ON a.delivery_seq = d.seq WHERE d.job_id = $1 "
                         "ORDER BY a.delivery_seq, a.attempt",
    [SQL_WEBHOOK_INSERT] = "INSERT INTO webhooks (id, job_id, url, events, created_at) "
                           "VALUES ($1, $2, $3, $4, $5)",
    [SQL_WEBHOOK_DELETE] = "DELETE FROM webhooks WHERE id = $1 AND job_id IS NULL",
    [SQL_JOB_SET_EXPIRY] = "UPDATE jobs SET expires_at = finished_at + COALESCE(ttl_s, $2) "
                           "WHERE id = $1 AND finished_at IS NOT NULL AND expires_at IS NULL",
    [SQL_EXPIRY_BACKFILL] =
        "UPDATE jobs SET expires_at = finished_at + COALESCE(ttl_s, $1) WHERE id IN (SELECT id "
        "FROM jobs WHERE expired = 0 AND expires_at IS NULL AND finished_at IS NOT NULL "
        "LIMIT $2)",
    [SQL_EXPIRY_DUE] = "SELECT id, input_path FROM jobs WHERE expired = 0 AND expires_at <= $1 "
                       "ORDER BY expires_at LIMIT $2",
    [SQL_JOB_EXPIRE] = "UPDATE jobs SET expired = 1, expires_at = CASE WHEN expires_at IS NULL "
                       "OR expires_at > $2 THEN $2 ELSE expires_at END WHERE id = $1 AND "
                       "status IN ('succeeded', 'failed', 'canceled')",
    /* Newest first: a DELETE of files sets expires_at to its time, the
     * newest there is, so a limit never hides one behind old expiries. */
    [SQL_EXPIRED_SINCE] = "SELECT id FROM jobs WHERE expired = 1 AND expires_at > $1 "
                          "ORDER BY expires_at DESC LIMIT $2",
    /* Not while a delivery of the job is still being tried. */
    [SQL_RECORDS_DUE] = "SELECT id FROM jobs j WHERE expired = 1 AND finished_at < $1 AND NOT "
                        "EXISTS (SELECT 1 FROM hook_deliveries d WHERE d.job_id = j.id AND "
                        "d.state = 'pending') ORDER BY finished_at LIMIT $2",
    [SQL_RECORD_DEL_ATTEMPTS] = "DELETE FROM hook_attempts WHERE delivery_seq IN (SELECT seq "
                                "FROM hook_deliveries WHERE job_id = $1)",
    [SQL_RECORD_DEL_DELIVERIES] = "DELETE FROM hook_deliveries WHERE job_id = $1",
    [SQL_RECORD_DEL_WEBHOOKS] = "DELETE FROM webhooks WHERE job_id = $1",
    [SQL_RECORD_DEL_JOB] = "DELETE FROM jobs WHERE id = $1 AND expired = 1",
};

/* Names for the log. */
static const char *const sql_name[SQL_N] = {
    [SQL_BEGIN] = "begin", [SQL_BEGIN_READ] = "begin read", [SQL_COMMIT] = "commit",
    [SQL_ROLLBACK] = "rollback", [SQL_JOB_INSERT] = "insert job", [SQL_JOB_CLAIM] = "claim",
    [SQL_JOB_PROGRESS] = "progress", [SQL_JOB_SET_INPUT] = "set input", [SQL_JOB_FINISH] = "finish",
    [SQL_JOB_CANCEL_QUEUED] = "cancel", [SQL_JOB_REQUEUE] = "requeue",
    [SQL_REQUEUE_RUNNING] = "requeue running", [SQL_JOB_EXISTS] = "job exists",
    [SQL_JOB_STATUS] = "status", [SQL_JOB_STATUS_LOCKED] = "webhook job",
    [SQL_JOB_GET] = "get", [SQL_JOB_GET_POSITION] = "get", [SQL_JOB_LIST] = "list",
    [SQL_JOB_LIST_STATUS] = "list", [SQL_JOB_LIST_ACTIVE] = "list active",
    [SQL_COUNT_BY_STATUS] = "count", [SQL_QUEUE_POSITION] = "queue position",
    [SQL_CANCEL_RUNNING] = "cancel request", [SQL_CANCEL_REQUESTED] = "cancel requested",
    [SQL_OUTBOX_LOCK] = "outbox lock", [SQL_PROGRESS_RECENT] = "progress throttle",
    [SQL_HOOK_TARGETS] = "webhook targets", [SQL_DELIVERY_INSERT] = "insert webhook delivery",
    [SQL_DELIVERY_PENDING] = "pending deliveries", [SQL_DELIVERY_RELEASE] = "release delivery",
    [SQL_DELIVERY_LIST] = "delivery list", [SQL_ATTEMPT_INSERT] = "record delivery attempt",
    [SQL_DELIVERY_UPDATE] = "record delivery state", [SQL_ATTEMPT_LIST] = "attempt list",
    [SQL_WEBHOOK_INSERT] = "insert webhook", [SQL_WEBHOOK_LIST] = "webhook list",
    [SQL_WEBHOOK_DELETE] = "webhook delete", [SQL_JOB_SET_EXPIRY] = "set expiry",
    [SQL_EXPIRY_BACKFILL] = "expiry backfill", [SQL_EXPIRY_DUE] = "expiry due",
    [SQL_JOB_EXPIRE] = "expire", [SQL_EXPIRED_SINCE] = "expired since",
    [SQL_RECORDS_DUE] = "records due",
    [SQL_RECORD_DEL_ATTEMPTS] = "delete attempts", [SQL_RECORD_DEL_DELIVERIES] = "delete deliveries",
    [SQL_RECORD_DEL_WEBHOOKS] = "delete webhooks", [SQL_RECORD_DEL_JOB] = "delete job",
    [SQL_JOB_GET_MANY] = "get many",
};

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK: return "ok";
    case STORE_ENOTFOUND: return "no such job";
    case STORE_ECONFLICT: return "the job is not in a state that allows this";
    case STORE_EIO: return "database error";
    case STORE_ENOMEM: return "out of memory";
    case STORE_EINVAL: return "invalid argument";
    default: return "unknown store error";
    }
}

/* ------------------------------------------------------------ params */

int store_params_n(const struct store_params *p)
{
    int n = 0;
    while (p && n < STORE_MAX_PARAMS && p->v[n].type != STORE_P_UNSET)
        n++;
    return n;
}

/* -------------------------------------------------------------- rows */

static const char *col_text(const struct store_row *r, int col)
{
    return r->ops->text(r, col, NULL);
}

static double col_num(const struct store_row *r, int col) { return r->ops->num(r, col); }

static int64_t col_i64(const struct store_row *r, int col) { return r->ops->i64(r, col); }

static int col_dup(const struct store_row *r, int col, char **out)
{
    const char *v = col_text(r, col);
    *out = NULL;
    if (!v)
        return 0;
    *out = strdup(v);
    return *out ? 0 : -1;
}

/* Fill job from a row of JOB_COLUMNS; on failure job holds nothing. */
static int row_to_job(const struct store_row *r, struct job *job)
{
    memset(job, 0, sizeof(*job));
    const char *id = col_text(r, 1);
    snprintf(job->id, sizeof(job->id), "%s", id ? id : "");
    job->seq = col_i64(r, 0);
    int st = job_status_parse(col_text(r, 2));
    job->status = st < 0 ? JOB_FAILED : (enum job_status)st;
    job->priority = (int)col_i64(r, 3);
    job->created_at = col_num(r, 4);
    job->started_at = col_num(r, 5);
    job->finished_at = col_num(r, 6);
    job->attempts = (int)col_i64(r, 7);
    int bad = 0;
    bad |= col_dup(r, 8, &job->input_path);
    bad |= col_dup(r, 9, &job->input_json);
    bad |= col_dup(r, 10, &job->outputs_json);
    bad |= col_dup(r, 11, &job->results_json);
    bad |= col_dup(r, 12, &job->metadata_json);
    bad |= col_dup(r, 13, &job->webhook_url);
    job->progress.percent = col_num(r, 14);
    job->progress.out_time_s = col_num(r, 15);
    job->progress.frames = col_i64(r, 16);
    job->progress.fps = col_num(r, 17);
    job->progress.speed = col_num(r, 18);
    job->progress.eta_s = col_num(r, 19);
    bad |= col_dup(r, 20, &job->error_code);
    bad |= col_dup(r, 21, &job->error_message);
    job->ttl_s = col_num(r, 22);
    job->expires_at = col_num(r, 23);
    job->expired = col_i64(r, 24) != 0;
    if (bad) {
        job_clear(job);
        return STORE_ENOMEM;
    }
    return STORE_OK;
}

/* Strings borrowed from the row. */
static void row_to_delivery(const struct store_row *r, struct store_delivery *d)
{
    d->seq = col_i64(r, 0);
    d->msg_id = col_text(r, 1);
    d->job_id = col_text(r, 2);
    d->event = col_text(r, 3);
    d->url = col_text(r, 4);
    d->body = r->ops->text(r, 5, &d->body_len);
    d->state = col_text(r, 6);
    d->created_at = col_num(r, 7);
    d->next_at = col_num(r, 8);
    d->attempts = (int)col_i64(r, 9);
}

/* The first row of a job query: the job, and a number after its columns. */
struct one_job {
    struct job *job;
    int found;
    int extra_col; /* < 0: none */
    int64_t extra;
};

static int keep_job(void *opaque, const struct store_row *r)
{
    struct one_job *o = opaque;
    o->found = 1;
    o->job = calloc(1, sizeof(*o->job));
    if (o->job && row_to_job(r, o->job) != STORE_OK) {
        free(o->job);
        o->job = NULL;
    }
    if (o->extra_col >= 0)
        o->extra = col_i64(r, o->extra_col);
    return 1;
}

/* A row callback that keeps the first column of the first row as a number. */
static int keep_i64(void *opaque, const struct store_row *r)
{
    *(int64_t *)opaque = col_i64(r, 0);
    return 1;
}

/* ------------------------------------------------- calls and transactions */

/* One call's connection and, when it opened one, its transaction. */
struct call {
    struct store *st;
    void *c;
    int in_tx;
};

static const char *sql_of(const struct store *st, enum store_sql id)
{
    return st->drv->sql[id] ? st->drv->sql[id] : portable_sql[id];
}

static int has_sql(const struct store *st, enum store_sql id) { return sql_of(st, id) != NULL; }

/* Run statement id in the call (see store_driver.run). */
static int q(struct call *k, enum store_sql id, const struct store_params *p, store_row_fn row,
             void *opaque, int64_t *changes)
{
    const char *sql = sql_of(k->st, id);
    if (!sql)
        return STORE_EINVAL;
    return k->st->drv->run(k->c, sql_name[id], sql, p, row, opaque, changes);
}

void store_pool_init(struct store *st, const struct store_driver *drv)
{
    st->drv = drv;
    st->retention_s = STORE_RETENTION_DEFAULT_S;
    st->n_idle = 0;
    pthread_mutex_init(&st->pool_lock, NULL);
}

void store_pool_put(struct store *st, void *conn)
{
    if (!conn)
        return;
    if (!st->drv->conn_usable || st->drv->conn_usable(conn)) {
        pthread_mutex_lock(&st->pool_lock);
        if (st->n_idle < STORE_POOL_MAX) {
            st->idle[st->n_idle++] = conn;
            conn = NULL;
        }
        pthread_mutex_unlock(&st->pool_lock);
    }
    if (conn)
        st->drv->conn_close(conn); /* broken, inside a transaction, or one too many */
}

void store_pool_free(struct store *st)
{
    for (int i = 0; i < st->n_idle; i++)
        st->drv->conn_close(st->idle[i]);
    st->n_idle = 0;
    pthread_mutex_destroy(&st->pool_lock);
}

/* An idle connection that still works, or a new one (NULL: logged). */
static void *pool_get(struct store *st)
{
    void *conn = NULL;
    pthread_mutex_lock(&st->pool_lock);
    if (st->n_idle > 0)
        conn = st->idle[--st->n_idle];
    pthread_mutex_unlock(&st->pool_lock);
    if (conn && (!st->drv->conn_usable || st->drv->conn_usable(conn)))
        return conn;
    if (conn)
        st->drv->conn_close(conn);
    return st->drv->conn_open(st);
}

/* Borrow a connection and, unless begin is SQL_N or the backend has no
 * such statement, open a transaction with it. */
static int call_begin(struct store *st, struct call *k, enum store_sql begin)
{
    k->st = st;
    k->in_tx = 0;
    k->c = pool_get(st);
    if (!k->c)
        return STORE_EIO;
    if (begin == SQL_N || !has_sql(st, begin))
        return STORE_OK;
    int rc = q(k, begin, NULL, NULL, NULL, NULL);
    k->in_tx = rc == STORE_OK;
    return rc;
}

/* The tail of every call: commit when ret is STORE_OK and a transaction
 * is open, roll back when it did not commit, give the connection back.
 * Returns ret, or the commit's failure. */
static int call_end(struct call *k, int ret)
{
    if (k->in_tx && ret == STORE_OK) {
        ret = q(k, SQL_COMMIT, NULL, NULL, NULL, NULL);
        if (ret == STORE_OK)
            k->in_tx = 0;
    }
    if (k->in_tx)
        q(k, SQL_ROLLBACK, NULL, NULL, NULL, NULL);
    store_pool_put(k->st, k->c);
    k->c = NULL;
    return ret;
}

/* One statement in a call of its own (no transaction). */
static int run_one(struct store *st, enum store_sql id, const struct store_params *p,
                   store_row_fn row, void *opaque, int64_t *changes)
{
    struct call k;
    int ret = call_begin(st, &k, SQL_N);
    if (ret == STORE_OK)
        ret = q(&k, id, p, row, opaque, changes);
    return call_end(&k, ret);
}

/* The way in for the store's other modules (uploads.c): one statement of
 * their own text in a call of its own, outside any transaction. */
int store_exec(struct store *st, const char *what, const char *sql, const struct store_params *p,
               store_row_fn row, void *opaque, int64_t *changes)
{
    struct call k;
    int ret = call_begin(st, &k, SQL_N);
    if (ret == STORE_OK)
        ret = st->drv->run(k.c, what, sql, p, row, opaque, changes);
    return call_end(&k, ret);
}

/* Run a guarded UPDATE of job id: STORE_OK if it changed the row,
 * STORE_ECONFLICT if the job exists in another state, STORE_ENOTFOUND if
 * it does not exist. */
static int update_one(struct call *k, enum store_sql id, const struct store_params *p,
                      const char *job_id)
{
    int64_t changed = 0;
    int rc = q(k, id, p, NULL, NULL, &changed);
    if (rc != STORE_OK || changed == 1)
        return rc;
    struct store_params e = {{sp_text(job_id)}};
    int64_t exists = 0;
    rc = q(k, SQL_JOB_EXISTS, &e, keep_i64, &exists, NULL);
    if (rc != STORE_OK)
        return rc;
    return exists ? STORE_ECONFLICT : STORE_ENOTFOUND;
}

/* Run job query id and keep its one row: STORE_OK and *out (job_free),
 * STORE_ENOTFOUND, STORE_ENOMEM or the query's failure. With extra, the
 * column after JOB_COLUMNS too. */
static int get_job(struct call *k, enum store_sql id, const struct store_params *p,
                   struct job **out, int64_t *extra)
{
    struct one_job o = {NULL, 0, extra ? JOB_NCOLUMNS : -1, 0};
    int rc = q(k, id, p, keep_job, &o, NULL);
    if (rc == STORE_OK && !o.found)
        rc = STORE_ENOTFOUND;
    else if (rc == STORE_OK && !o.job)
        rc = STORE_ENOMEM;
    if (rc != STORE_OK) {
        job_free(&o.job);
        return rc;
    }
    *out = o.job;
    if (extra)
        *extra = o.extra;
    return STORE_OK;
}

/* ------------------------------------------------------------- outbox */

struct targets {
    char *urls[HOOKS_MAX_TARGETS];
    size_t n;
    int more, nomem;
};

static int add_target(void *opaque, const struct store_row *r)
{
    struct targets *t = opaque;
    if (t->n == HOOKS_MAX_TARGETS) {
        t->more = 1;
        return 1;
    }
    const char *url = col_text(r, 0);
    t->urls[t->n] = strdup(url ? url : "");
    if (!t->urls[t->n]) {
        t->nomem = 1;
        return 1;
    }
    t->n++;
    return 0;
}

/* Render event for job_id once, from the job row this transaction sees,
 * and queue it to each of urls. */
static int insert_event(struct call *k, const char *job_id, int event, const char *const *urls,
                        size_t n_urls)
{
    int ret = STORE_OK;
    struct job *job = NULL;
    json_t *obj = NULL;
    char *body = NULL;
    size_t body_len = 0;

    if (n_urls == 0)
        return STORE_OK;
    if (has_sql(k->st, SQL_OUTBOX_LOCK)) {
        ret = q(k, SQL_OUTBOX_LOCK, NULL, NULL, NULL, NULL);
        if (ret != STORE_OK)
            goto out;
    }
    struct store_params p = {{sp_text(job_id)}};
    ret = get_job(k, SQL_JOB_GET, &p, &job, NULL);
    if (ret != STORE_OK)
        goto out;
    ret = STORE_ENOMEM;
    double now = job_now();
    obj = job_to_json(job, 0);
    body = obj ? hook_event_body(event, obj, now, &body_len) : NULL;
    if (!body)
        goto out;
    for (size_t i = 0; i < n_urls; i++) {
        char msg_id[HOOK_MSG_ID_MAX];
        if (hook_msg_id(msg_id, sizeof(msg_id)) != 0) {
            ret = STORE_EIO;
            goto out;
        }
        struct store_params d = {{sp_text(msg_id), sp_text(job_id),
                                  sp_text(hook_event_name(event)), sp_text(urls[i]), sp_text(body),
                                  sp_double(now)}};
        ret = q(k, SQL_DELIVERY_INSERT, &d, NULL, NULL, NULL);
        if (ret != STORE_OK)
            goto out;
    }
    ret = STORE_OK;
out:
    free(body);
    json_decref(obj);
    job_free(&job);
    return ret;
}

/* Queue event of job_id to every webhook that wants it, inside the
 * call's transaction; one indexed query when nobody listens. job.progress
 * is queued at most once a second per job. */
static int enqueue(struct call *k, const char *job_id, int event)
{
    int ret = STORE_OK;
    struct targets t = {0};
    if (event == HOOK_EVENT_PROGRESS) {
        struct store_params p = {{sp_text(job_id), sp_double(job_now() - 1.0)}};
        int64_t recent = 0;
        ret = q(k, SQL_PROGRESS_RECENT, &p, keep_i64, &recent, NULL);
        if (ret != STORE_OK || recent)
            return ret;
    }
    struct store_params p = {{sp_text(job_id), sp_i64(event), sp_i64(HOOK_EVENTS_DEFAULT)}};
    ret = q(k, SQL_HOOK_TARGETS, &p, add_target, &t, NULL);
    if (ret == STORE_OK && t.nomem)
        ret = STORE_ENOMEM;
    if (ret != STORE_OK)
        goto out;
    if (t.more)
        log_warn("job %s has more than %d webhooks; the rest get no %s", job_id,
                 HOOKS_MAX_TARGETS, hook_event_name(event));
    ret = insert_event(k, job_id, event, (const char *const *)t.urls, t.n);
out:
    for (size_t i = 0; i < t.n; i++)
        free(t.urls[i]);
    return ret;
}

static int keep_text(void *opaque, const struct store_row *r)
{
    const char *v = col_text(r, 0);
    char **out = opaque;
    *out = strdup(v ? v : "");
    return 1;
}

/* The status of job_id as a new string in *status (NULL: no such job). */
static int job_status_of(struct call *k, enum store_sql id, const char *job_id, char **status)
{
    struct store_params p = {{sp_text(job_id)}};
    *status = NULL;
    return q(k, id, &p, keep_text, status, NULL);
}

/* After a transition of job_id: if it just ended, its expires_at
 * (finished_at + its ttl_s or the store's default) and its final event. */
static int after_transition(struct call *k, const char *job_id, int *ended)
{
    char *status = NULL;
    int ret = job_status_of(k, SQL_JOB_STATUS, job_id, &status);
    int event = hook_event_for_status(status);
    if (ended)
        *ended = job_status_parse(status);
    free(status);
    if (ret != STORE_OK || !event)
        return ret;
    struct store_params p = {{sp_text(job_id), sp_double(k->st->retention_s)}};
    ret = q(k, SQL_JOB_SET_EXPIRY, &p, NULL, NULL, NULL);
    if (ret != STORE_OK)
        return ret;
    return enqueue(k, job_id, event);
}

/* ------------------------------------------------------------ the calls */

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
    const struct store_driver *drv = NULL;
    *out = NULL;
    if (!url)
        url = "";
    if (strncmp(url, "sqlite:", 7) == 0)
        drv = &store_sqlite_driver;
    else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        drv = &store_pg_driver;
    if (!drv) {
        snprintf(err, errlen,
                 "unsupported store URL '%s' (expected sqlite:<path> or postgres://...)", url);
        return STORE_EINVAL;
    }
    int rc = drv->open(url, out, err, errlen);
    if (rc == STORE_OK) {
        log_info("job store open backend=%s", drv->name); /* not the URL: it may hold a password */
    }
    return rc;
}

void store_close(struct store **pp)
{
    if (!pp || !*pp)
        return;
    (*pp)->drv->close(*pp);
    *pp = NULL;
}

/* INSERT job in status (queued, or failed with finished_at = now and the
 * error), in the call's transaction if it has one. */
static int insert_job(struct call *k, struct job *job, enum job_status status,
                      const char *error_code, const char *error_message)
{
    double finished = status == JOB_QUEUED ? 0 : job_now();
    int64_t seq = 0;
    struct store_params p = {{sp_text(job->id), sp_text(job_status_name(status)),
                              sp_i64(job->priority), sp_double(job->created_at), sp_null(),
                              sp_text(job->input_path),
                              sp_text(job->input_json ? job->input_json : "{}"),
                              sp_text(job->outputs_json ? job->outputs_json : "[]"),
                              sp_text(job->metadata_json ? job->metadata_json : "{}"),
                              sp_text(job->webhook_url), sp_text(error_code),
                              sp_text(error_message), sp_null()}};
    if (job->ttl_s > 0)
        p.v[12] = sp_double(job->ttl_s);
    if (finished > 0)
        p.v[4] = sp_double(finished);
    int rc = q(k, SQL_JOB_INSERT, &p, keep_i64, &seq, NULL);
    if (rc != STORE_OK)
        return rc;
    job->seq = seq;
    job->status = status;
    job->attempts = 0;
    job->finished_at = finished;
    return STORE_OK;
}

int store_job_create(struct store *st, struct job *job)
{
    struct call k;
    int ret = call_begin(st, &k, SQL_N);
    if (ret == STORE_OK)
        ret = insert_job(&k, job, JOB_QUEUED, NULL, NULL);
    return call_end(&k, ret);
}

int store_job_create_failed(struct store *st, struct job *job)
{
    struct call k;
    if (!job->error_code)
        return STORE_EINVAL;
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = insert_job(&k, job, JOB_FAILED, job->error_code, job->error_message);
    if (ret == STORE_OK)
        ret = after_transition(&k, job->id, NULL); /* job.failed, same transaction */
    return call_end(&k, ret);
}

int store_job_claim_next(struct store *st, struct job **out)
{
    struct call k;
    struct job *job = NULL;
    struct store_params p = {{sp_double(job_now()), sp_text(store_node_id(st))}};
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = get_job(&k, SQL_JOB_CLAIM, &p, &job, NULL);
    if (ret == STORE_OK)
        ret = enqueue(&k, job->id, HOOK_EVENT_STARTED); /* same transaction */
    ret = call_end(&k, ret);
    if (ret == STORE_OK) {
        *out = job;
        job = NULL;
    }
    job_free(&job); /* its strings too (a failure after the claim) */
    return ret;
}

int store_job_progress(struct store *st, const char *id, const struct job_progress *pr)
{
    struct call k;
    struct store_params p = {{sp_double(pr->percent), sp_double(pr->out_time_s),
                              sp_i64(pr->frames), sp_double(pr->fps), sp_double(pr->speed),
                              sp_double(pr->eta_s), sp_text(id), sp_text(store_node_id(st))}};
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = update_one(&k, SQL_JOB_PROGRESS, &p, id);
    if (ret == STORE_OK)
        ret = enqueue(&k, id, HOOK_EVENT_PROGRESS); /* throttled to 1/s per job */
    return call_end(&k, ret);
}

int store_job_set_input(struct store *st, const char *id, const char *input_json)
{
    struct call k;
    struct store_params p = {{sp_text(input_json), sp_text(id)}};
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = update_one(&k, SQL_JOB_SET_INPUT, &p, id);
    return call_end(&k, ret);
}

/* One guarded UPDATE of job id and its outbox rows, in one transaction;
 * *ended (if not NULL) the status it left, as job_status_parse gives. */
static int transition(struct store *st, const char *id, enum store_sql sql,
                      const struct store_params *p, int *ended)
{
    struct call k;
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = update_one(&k, sql, p, id);
    if (ret == STORE_OK)
        ret = after_transition(&k, id, ended); /* same transaction */
    return call_end(&k, ret);
}

int store_job_finish(struct store *st, const char *id, enum job_status status,
                     const char *error_code, const char *error_message, const char *results_json)
{
    return store_job_finish_attempt(st, id, 0, status, error_code, error_message, results_json,
                                    NULL);
}

int store_job_finish_attempt(struct store *st, const char *id, int attempt,
                             enum job_status status, const char *error_code,
                             const char *error_message, const char *results_json,
                             enum job_status *ended)
{
    if (!job_status_is_final(status) || attempt < 0)
        return STORE_EINVAL;
    struct store_params p = {{sp_text(job_status_name(status)), sp_double(job_now()),
                              sp_text(error_code), sp_text(error_message), sp_text(results_json),
                              sp_i64(status == JOB_SUCCEEDED), sp_text(id),
                              sp_text(store_node_id(st)), sp_i64(attempt)}};
    int stored = -1;
    int ret = transition(st, id, SQL_JOB_FINISH, &p, &stored);
    if (ended)
        *ended = ret == STORE_OK && stored >= 0 ? (enum job_status)stored : status;
    return ret;
}

int store_job_cancel_queued(struct store *st, const char *id)
{
    struct store_params p = {{sp_double(job_now()), sp_text(id)}};
    return transition(st, id, SQL_JOB_CANCEL_QUEUED, &p, NULL);
}

int store_job_requeue(struct store *st, const char *id)
{
    struct store_params p = {{sp_text(id), sp_text(store_node_id(st))}};
    return transition(st, id, SQL_JOB_REQUEUE, &p, NULL);
}

struct ids {
    char (*id)[JOB_ID_SIZE];
    size_t n, cap;
    int nomem;
};

static int add_id(void *opaque, const struct store_row *r)
{
    struct ids *ids = opaque;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 16;
        void *grown = realloc(ids->id, cap * sizeof(ids->id[0]));
        if (!grown) {
            ids->nomem = 1;
            return 1;
        }
        ids->id = grown;
        ids->cap = cap;
    }
    const char *id = col_text(r, 0);
    snprintf(ids->id[ids->n++], JOB_ID_SIZE, "%s", id ? id : "");
    return 0;
}

/* Run statement sql (in a transaction when begin is SQL_BEGIN) and call
 * fn with each id it returns, after the commit and with no connection
 * held (fn may call the store). */
static int for_each_id(struct store *st, enum store_sql begin, enum store_sql sql,
                       const struct store_params *p, void (*fn)(void *opaque, const char *id),
                       void *opaque)
{
    struct call k;
    struct ids ids = {0};
    int ret = call_begin(st, &k, begin);
    if (ret == STORE_OK)
        ret = q(&k, sql, p, add_id, &ids, NULL);
    if (ret == STORE_OK && ids.nomem)
        ret = STORE_ENOMEM;
    ret = call_end(&k, ret);
    for (size_t i = 0; ret == STORE_OK && fn && i < ids.n; i++)
        fn(opaque, ids.id[i]);
    free(ids.id);
    return ret;
}

int store_requeue_running(struct store *st, void (*fn)(void *opaque, const char *id),
                          void *opaque)
{
    /* SQLite: every running job; a shared store: only those of dead nodes
     * (the backend's text). */
    struct store_params p = {{sp_text(store_node_id(st))}};
    return for_each_id(st, SQL_BEGIN, SQL_REQUEUE_RUNNING, &p, fn, opaque);
}

/* One job by id; with pos, on a shared store, its queue position too. */
static int job_get(struct store *st, const char *id, struct job **out, long *pos)
{
    struct call k;
    struct store_params p = {{sp_text(id)}};
    int64_t extra = 0;
    int with_pos = pos && store_is_shared(st);
    int ret = call_begin(st, &k, SQL_N);
    if (ret == STORE_OK)
        ret = get_job(&k, with_pos ? SQL_JOB_GET_POSITION : SQL_JOB_GET, &p, out,
                      with_pos ? &extra : NULL);
    ret = call_end(&k, ret);
    if (ret == STORE_OK && with_pos)
        *pos = (long)extra;
    return ret;
}

int store_job_get(struct store *st, const char *id, struct job **out)
{
    return job_get(st, id, out, NULL);
}

int store_job_get_position(struct store *st, const char *id, struct job **out, long *pos)
{
    *pos = 0;
    return job_get(st, id, out, pos);
}

struct walk {
    int (*fn)(void *opaque, const struct job *job);
    void *opaque;
    int nomem;
};

static int walk_row(void *opaque, const struct store_row *r)
{
    struct walk *w = opaque;
    struct job job;
    if (row_to_job(r, &job) != STORE_OK) {
        w->nomem = 1;
        return 1;
    }
    int stop = w->fn(w->opaque, &job);
    job_clear(&job);
    return stop;
}

/* Run a job query and call fn with each job (borrowed for the call). */
static int walk(struct store *st, enum store_sql sql, const struct store_params *p,
                int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    struct walk w = {fn, opaque, 0};
    int ret = run_one(st, sql, p, walk_row, &w, NULL);
    return ret == STORE_OK && w.nomem ? STORE_ENOMEM : ret;
}

int store_job_list(struct store *st, int status, int64_t before_seq, int limit,
                   int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    struct store_params p = {{sp_i64(before_seq > 0 ? before_seq : INT64_MAX), sp_i64(limit)}};
    if (status < 0)
        return walk(st, SQL_JOB_LIST, &p, fn, opaque);
    p.v[2] = sp_text(job_status_name((enum job_status)status));
    return walk(st, SQL_JOB_LIST_STATUS, &p, fn, opaque);
}

int store_job_list_active(struct store *st, int (*fn)(void *opaque, const struct job *job),
                          void *opaque)
{
    return walk(st, SQL_JOB_LIST_ACTIVE, NULL, fn, opaque);
}

static int add_count(void *opaque, const struct store_row *r)
{
    int64_t *counts = opaque;
    int k = job_status_parse(col_text(r, 0));
    if (k >= 0)
        counts[k] = col_i64(r, 1);
    return 0;
}

int store_count_by_status(struct store *st, int64_t counts[5])
{
    memset(counts, 0, 5 * sizeof(counts[0]));
    return run_one(st, SQL_COUNT_BY_STATUS, NULL, add_count, counts, NULL);
}

int store_job_get_many(struct store *st, const char *const *ids, size_t n,
                       int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    if (!store_is_shared(st) || !has_sql(st, SQL_JOB_GET_MANY))
        return STORE_EINVAL;
    if (n == 0)
        return STORE_OK;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_string(ids[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (!text)
        return STORE_ENOMEM;
    struct store_params p = {{sp_text(text)}};
    int ret = walk(st, SQL_JOB_GET_MANY, &p, fn, opaque);
    free(text);
    return ret;
}

struct store_watch {
    struct store *st;
    void *w;
};

int store_watch_open(struct store *st, struct store_watch **out)
{
    *out = NULL;
    if (!st->drv->watch_open)
        return STORE_EINVAL;
    struct store_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return STORE_ENOMEM;
    w->st = st;
    w->w = st->drv->watch_open(st);
    if (!w->w) {
        free(w);
        return STORE_EIO;
    }
    *out = w;
    return STORE_OK;
}

int store_watch_wait(struct store_watch *w, int timeout_ms,
                     void (*fn)(void *opaque, const char *id), void *opaque)
{
    return w->st->drv->watch_wait(w->w, timeout_ms, fn, opaque);
}

void store_watch_close(struct store_watch **pw)
{
    if (!pw || !*pw)
        return;
    (*pw)->st->drv->watch_close((*pw)->w);
    free(*pw);
    *pw = NULL;
}

/* ------------------------------------------------------- several nodes */

int store_is_shared(const struct store *st) { return st->drv->node_id != NULL; }

const char *store_node_id(const struct store *st)
{
    return st->drv->node_id ? st->drv->node_id(st) : "";
}

void store_set_node_lease(struct store *st, double seconds)
{
    if (st->drv->set_node_lease)
        st->drv->set_node_lease(st, seconds < 1 ? 1 : seconds);
}

int store_job_cancel_request(struct store *st, const char *id, int *running)
{
    struct call k;
    int64_t changed = 0;
    *running = 0;
    if (!store_is_shared(st))
        return STORE_EINVAL;
    struct store_params p = {{sp_double(job_now()), sp_text(id)}};
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = q(&k, SQL_JOB_CANCEL_QUEUED, &p, NULL, NULL, &changed);
    if (ret == STORE_OK && changed == 1) {
        ret = after_transition(&k, id, NULL); /* job.canceled, same transaction */
        return call_end(&k, ret);
    }
    if (ret == STORE_OK) {
        struct store_params r = {{sp_text(id)}};
        ret = update_one(&k, SQL_CANCEL_RUNNING, &r, id);
    }
    ret = call_end(&k, ret);
    if (ret == STORE_OK)
        *running = 1;
    return ret;
}

int store_cancel_requested(struct store *st, void (*fn)(void *opaque, const char *id),
                           void *opaque)
{
    if (!store_is_shared(st))
        return STORE_EINVAL;
    struct store_params p = {{sp_text(store_node_id(st))}};
    return for_each_id(st, SQL_N, SQL_CANCEL_REQUESTED, &p, fn, opaque);
}

int store_queue_position(struct store *st, const char *id, long *pos)
{
    int64_t n = 0;
    *pos = 0;
    if (!store_is_shared(st))
        return STORE_EINVAL;
    struct store_params p = {{sp_text(id)}};
    int ret = run_one(st, SQL_QUEUE_POSITION, &p, keep_i64, &n, NULL);
    if (ret == STORE_OK)
        *pos = (long)n;
    return ret;
}

/* ------------------------------------------------- webhooks and outbox */

static int new_webhook_id(char id[STORE_WEBHOOK_ID_SIZE])
{
    return hook_id_new("wh_", id, STORE_WEBHOOK_ID_SIZE) == 0 ? STORE_OK : STORE_EIO;
}

int store_webhook_add(struct store *st, const char *job_id, const char *url, int events,
                      struct store_webhook *out, int *queued)
{
    struct call k;
    char *status = NULL;
    *queued = 0;
    if (new_webhook_id(out->id) != STORE_OK)
        return STORE_EIO;
    out->created_at = job_now();
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK && job_id) {
        /* Locked: the job cannot end between this read and the insert
         * below, so its final event is queued exactly once (here, or by
         * the transition that ends it, which then sees this row). */
        ret = job_status_of(&k, SQL_JOB_STATUS_LOCKED, job_id, &status);
        if (ret == STORE_OK && !status)
            ret = STORE_ENOTFOUND;
    }
    if (ret == STORE_OK) {
        struct store_params p = {{sp_text(out->id), sp_text(job_id), sp_text(url), sp_i64(events),
                                  sp_double(out->created_at)}};
        ret = q(&k, SQL_WEBHOOK_INSERT, &p, NULL, NULL, NULL);
    }
    /* A job that already ended: its final event goes to this URL now. */
    int final_event = hook_event_for_status(status);
    if (ret == STORE_OK && (final_event & events)) {
        ret = insert_event(&k, job_id, final_event, &url, 1);
        *queued = ret == STORE_OK;
    }
    free(status);
    ret = call_end(&k, ret);
    if (ret != STORE_OK) {
        *queued = 0;
        return ret;
    }
    out->job_id = job_id;
    out->url = url;
    out->events = events;
    return STORE_OK;
}

struct webhook_walk {
    int (*fn)(void *opaque, const struct store_webhook *w);
    void *opaque;
};

static int webhook_row(void *opaque, const struct store_row *r)
{
    struct webhook_walk *ww = opaque;
    struct store_webhook w = {0};
    const char *id = col_text(r, 0);
    snprintf(w.id, sizeof(w.id), "%s", id ? id : "");
    w.job_id = col_text(r, 1);
    w.url = col_text(r, 2);
    w.events = (int)col_i64(r, 3);
    w.created_at = col_num(r, 4);
    return ww->fn(ww->opaque, &w);
}

int store_webhook_list(struct store *st, const char *job_id,
                       int (*fn)(void *opaque, const struct store_webhook *w), void *opaque)
{
    struct webhook_walk ww = {fn, opaque};
    struct store_params p = {{sp_text(job_id)}};
    return run_one(st, SQL_WEBHOOK_LIST, &p, webhook_row, &ww, NULL);
}

int store_webhook_delete(struct store *st, const char *id)
{
    int64_t changed = 0;
    struct store_params p = {{sp_text(id)}};
    int ret = run_one(st, SQL_WEBHOOK_DELETE, &p, NULL, NULL, &changed);
    return ret == STORE_OK && changed != 1 ? STORE_ENOTFOUND : ret;
}

struct delivery_walk {
    int (*fn_delivery)(void *opaque, const struct store_delivery *d);
    int (*fn_attempt)(void *opaque, const struct store_attempt *a);
    void *opaque;
};

static int delivery_row(void *opaque, const struct store_row *r)
{
    struct delivery_walk *dw = opaque;
    struct store_delivery d;
    row_to_delivery(r, &d);
    return dw->fn_delivery(dw->opaque, &d);
}

static int attempt_row(void *opaque, const struct store_row *r)
{
    struct delivery_walk *dw = opaque;
    struct store_attempt a = {
        .delivery_seq = col_i64(r, 0),
        .attempt = (int)col_i64(r, 1),
        .at = col_num(r, 2),
        .http_status = (int)col_i64(r, 3),
        .error = col_text(r, 4),
        .duration_s = col_num(r, 5),
        .outcome = col_text(r, 6),
    };
    return dw->fn_attempt(dw->opaque, &a);
}

int store_delivery_pending(struct store *st, int64_t after_seq, int limit,
                           int (*fn)(void *opaque, const struct store_delivery *d), void *opaque)
{
    struct delivery_walk dw = {fn, NULL, opaque};
    struct store_params p = {{sp_i64(after_seq), sp_i64(limit), sp_text(store_node_id(st))}};
    return run_one(st, SQL_DELIVERY_PENDING, &p, delivery_row, &dw, NULL);
}

int store_delivery_release(struct store *st, int64_t seq)
{
    if (!has_sql(st, SQL_DELIVERY_RELEASE))
        return STORE_OK; /* nothing is claimed in a store that is not shared */
    struct store_params p = {{sp_text(store_node_id(st)), sp_i64(seq)}};
    return run_one(st, SQL_DELIVERY_RELEASE, &p, NULL, NULL, NULL);
}

int store_delivery_attempt(struct store *st, const struct store_attempt *a)
{
    struct call k;
    struct store_params p = {{sp_i64(a->delivery_seq), sp_i64(a->attempt), sp_double(a->at),
                              sp_i64(a->http_status),
                              sp_text(a->error && *a->error ? a->error : NULL),
                              sp_double(a->duration_s), sp_text(a->outcome)}};
    struct store_params d = {{sp_text(a->state), sp_i64(a->attempt), sp_double(a->next_at),
                              sp_i64(a->delivery_seq)}};
    int ret = call_begin(st, &k, SQL_BEGIN);
    if (ret == STORE_OK)
        ret = q(&k, SQL_ATTEMPT_INSERT, &p, NULL, NULL, NULL);
    if (ret == STORE_OK)
        ret = q(&k, SQL_DELIVERY_UPDATE, &d, NULL, NULL, NULL);
    return call_end(&k, ret);
}

int store_delivery_list(struct store *st, const char *job_id,
                        int (*fn_delivery)(void *opaque, const struct store_delivery *d),
                        int (*fn_attempt)(void *opaque, const struct store_attempt *a),
                        void *opaque)
{
    struct call k;
    struct delivery_walk dw = {fn_delivery, fn_attempt, opaque};
    int64_t exists = 0;
    struct store_params p = {{sp_text(job_id)}};
    /* One snapshot for the three reads, where the backend has one. */
    int ret = call_begin(st, &k, SQL_BEGIN_READ);
    if (ret == STORE_OK)
        ret = q(&k, SQL_JOB_EXISTS, &p, keep_i64, &exists, NULL);
    if (ret == STORE_OK && !exists)
        ret = STORE_ENOTFOUND;
    if (ret == STORE_OK)
        ret = q(&k, SQL_DELIVERY_LIST, &p, delivery_row, &dw, NULL);
    if (ret == STORE_OK)
        ret = q(&k, SQL_ATTEMPT_LIST, &p, attempt_row, &dw, NULL);
    return call_end(&k, ret);
}

/* ---------------------------------------------------------- retention */

void store_set_retention(struct store *st, double seconds)
{
    st->retention_s = seconds >= 1 ? seconds : STORE_RETENTION_DEFAULT_S;
}

int store_expiry_backfill(struct store *st, int limit, int64_t *changed)
{
    struct store_params p = {{sp_double(st->retention_s), sp_i64(limit)}};
    *changed = 0;
    return run_one(st, SQL_EXPIRY_BACKFILL, &p, NULL, NULL, changed);
}

struct due {
    struct ids ids;
    char **paths; /* parallel to ids.id */
    size_t pcap;
};

static int add_due(void *opaque, const struct store_row *r)
{
    struct due *d = opaque;
    size_t n = d->ids.n;
    if (add_id(&d->ids, r) || d->ids.n == n)
        return 1;
    if (d->pcap < d->ids.cap) {
        char **grown = realloc(d->paths, d->ids.cap * sizeof(*grown));
        if (!grown) {
            d->ids.n = n; /* the id has no path slot */
            d->ids.nomem = 1;
            return 1;
        }
        d->paths = grown;
        d->pcap = d->ids.cap;
    }
    const char *path = col_text(r, 1);
    d->paths[n] = path ? strdup(path) : NULL;
    if (path && !d->paths[n]) {
        d->ids.nomem = 1;
        return 1;
    }
    return 0;
}

int store_expiry_due(struct store *st, double now, int limit,
                     void (*fn)(void *opaque, const char *id, const char *input_path),
                     void *opaque)
{
    struct due d = {{0}, NULL, 0};
    struct store_params p = {{sp_double(now), sp_i64(limit)}};
    int ret = run_one(st, SQL_EXPIRY_DUE, &p, add_due, &d, NULL);
    if (ret == STORE_OK && d.ids.nomem)
        ret = STORE_ENOMEM;
    for (size_t i = 0; i < d.ids.n; i++) {
        if (ret == STORE_OK)
            fn(opaque, d.ids.id[i], d.paths[i]);
        free(d.paths[i]);
    }
    free(d.paths);
    free(d.ids.id);
    return ret;
}

int store_job_expire(struct store *st, const char *id, double now)
{
    struct call k;
    struct store_params p = {{sp_text(id), sp_double(now)}};
    int ret = call_begin(st, &k, SQL_N);
    if (ret == STORE_OK)
        ret = update_one(&k, SQL_JOB_EXPIRE, &p, id);
    return call_end(&k, ret);
}

int store_expired_since(struct store *st, double since, int limit,
                        void (*fn)(void *opaque, const char *id), void *opaque)
{
    struct store_params p = {{sp_double(since), sp_i64(limit)}};
    return for_each_id(st, SQL_N, SQL_EXPIRED_SINCE, &p, fn, opaque);
}

int store_records_purge(struct store *st, double before, int limit, int64_t *deleted)
{
    static const enum store_sql order[] = {SQL_RECORD_DEL_ATTEMPTS, SQL_RECORD_DEL_DELIVERIES,
                                           SQL_RECORD_DEL_WEBHOOKS, SQL_RECORD_DEL_JOB};
    struct call k;
    struct ids ids = {0};
    struct store_params p = {{sp_double(before), sp_i64(limit)}};
    *deleted = 0;
    /* The candidates outside the transaction (a read); each DELETE below
     * re-checks what it needs (the job row only while expired), so a row
     * another node deleted in between is simply not there any more. */
    int ret = run_one(st, SQL_RECORDS_DUE, &p, add_id, &ids, NULL);
    if (ret == STORE_OK && ids.nomem)
        ret = STORE_ENOMEM;
    if (ret != STORE_OK || ids.n == 0)
        goto out;
    ret = call_begin(st, &k, SQL_BEGIN);
    for (size_t i = 0; ret == STORE_OK && i < ids.n; i++) {
        struct store_params one = {{sp_text(ids.id[i])}};
        int64_t changed = 0;
        for (size_t j = 0; ret == STORE_OK && j < sizeof(order) / sizeof(order[0]); j++)
            ret = q(&k, order[j], &one, NULL, NULL, &changed);
        *deleted += changed; /* the job row's DELETE, the last */
    }
    ret = call_end(&k, ret);
    if (ret != STORE_OK)
        *deleted = 0;
out:
    free(ids.id);
    return ret;
}
