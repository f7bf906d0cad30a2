/* Unit tests of the job store: states, order, guards, paging, bad URLs.
 * The same cases run on SQLite and, under tests/support/with_pg.sh (ctest
 * unit.test_store.pg), on PostgreSQL: ts_store_url picks the backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "store/store.h"
#include "test_support.h"

static char db_url[4200];

static int setup(void **state)
{
    const char *tmp = getenv("VIDQ_TEST_TMP");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(db_url, sizeof(db_url), "%s", ts_store_url(dir));
    struct store *st = NULL;
    char err[256];
    assert_int_equal(store_open(db_url, &st, err, sizeof(err)), STORE_OK);
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    struct store *st = *state;
    store_close(&st);
    assert_null(st);
    store_close(&st); /* NULL is fine */
    return 0;
}

static void new_job(struct store *st, const char *id, int priority, struct job *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->priority = priority;
    out->created_at = 1700000000.5;
    out->input_path = strdup("/data/inputs/x");
    out->input_json = strdup("{\"format\":\"mp4\"}");
    out->outputs_json = strdup("[{\"preset\":\"mp4-720p\",\"spec\":{\"name\":\"a\"}}]");
    out->metadata_json = strdup("{\"k\":1}");
    assert_int_equal(store_job_create(st, out), STORE_OK);
    assert_true(out->seq > 0);
}

static long long wal_size(const char *db)
{
    char path[4300];
    struct stat stt;
    snprintf(path, sizeof(path), "%s-wal", db);
    return stat(path, &stt) == 0 ? (long long)stt.st_size : -1;
}

/* SQLite's write-ahead log stays bounded:
 *   - job creations (INSERT ... RETURNING, autocommit) checkpoint it as
 *     they go: 3,000 of them leave it at about SQLite's automatic
 *     checkpoint size (1,000 pages), not growing (it was 86 MB);
 *   - a reader that holds a snapshot keeps the checkpoints from resetting
 *     it, and it grows past STORE_SQLITE_WAL_LIMIT; once the reader is
 *     gone, the next writes checkpoint and cut the file back to the limit
 *     (journal_size_limit; without it the file kept its size for ever). */
static void sqlite_wal_bounded(void **state)
{
    struct store *st = *state;
    if (strncmp(db_url, "sqlite:", 7) != 0) {
        skip(); /* PostgreSQL has no such file */
        return;
    }
    const char *db = db_url + 7;
    struct job j;
    char id[32];
    for (int n = 0; n < 3000; n++) {
        snprintf(id, sizeof(id), "walflat%06d", n);
        new_job(st, id, 0, &j);
        job_clear(&j);
    }
    long long flat = wal_size(db);
    assert_true(flat > 0 && flat < 8LL << 20);

    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(db, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM jobs;", NULL, NULL, NULL),
                     SQLITE_OK);
    int n = 0;
    while (wal_size(db) <= STORE_SQLITE_WAL_LIMIT && n < 100000) {
        snprintf(id, sizeof(id), "walgrow%06d", n++);
        new_job(st, id, 0, &j);
        job_clear(&j);
    }
    long long grown = wal_size(db);
    assert_true(grown > STORE_SQLITE_WAL_LIMIT);
    assert_int_equal(sqlite3_exec(reader, "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    /* The commit after the reader left checkpoints the whole log; the
     * write after that restarts it and truncates the file. */
    for (int i = 0; i < 4 && wal_size(db) > STORE_SQLITE_WAL_LIMIT; i++) {
        snprintf(id, sizeof(id), "walcut%d", i);
        new_job(st, id, 0, &j);
        job_clear(&j);
    }
    long long cut = wal_size(db);
    assert_true(cut >= 0 && cut <= STORE_SQLITE_WAL_LIMIT);
    printf("# WAL: %lld bytes after 3000 jobs; %lld behind a reader (%d jobs more), then %lld\n",
           flat, grown, n, cut);
}

static void claim_order_and_states(void **state)
{
    struct store *st = *state;
    struct job a, b, c;
    new_job(st, "AAAAAAAAAAAAAAAAAAAAAA", 0, &a);
    new_job(st, "BBBBBBBBBBBBBBBBBBBBBB", 5, &b);
    new_job(st, "CCCCCCCCCCCCCCCCCCCCCC", 0, &c);
    assert_true(a.seq < b.seq && b.seq < c.seq);
    struct job dup;
    memset(&dup, 0, sizeof(dup));
    snprintf(dup.id, sizeof(dup.id), "%s", a.id);
    dup.input_path = strdup("x");
    assert_int_equal(store_job_create(st, &dup), STORE_ECONFLICT);
    job_clear(&dup);

    /* Higher priority first, then first come first served. */
    struct job *j = NULL;
    assert_int_equal(store_job_claim_next(st, &j), STORE_OK);
    assert_string_equal(j->id, b.id);
    assert_int_equal(j->status, JOB_RUNNING);
    assert_int_equal(j->attempts, 1);
    assert_true(j->started_at > 0);
    assert_string_equal(j->metadata_json, "{\"k\":1}");
    job_free(&j);
    assert_null(j);
    assert_int_equal(store_job_claim_next(st, &j), STORE_OK);
    assert_string_equal(j->id, a.id);
    job_free(&j);

    /* Guards: a running job is not "queued" any more. */
    assert_int_equal(store_job_cancel_queued(st, a.id), STORE_ECONFLICT);
    assert_int_equal(store_job_cancel_queued(st, c.id), STORE_OK);
    assert_int_equal(store_job_claim_next(st, &j), STORE_ENOTFOUND);
    assert_int_equal(store_job_cancel_queued(st, "nope"), STORE_ENOTFOUND);

    struct job_progress p = {42.5, 1.5, 3.0, 1.2, 2.0, 30};
    assert_int_equal(store_job_progress(st, a.id, &p), STORE_OK);
    assert_int_equal(store_job_progress(st, c.id, &p), STORE_ECONFLICT);
    assert_int_equal(store_job_get(st, a.id, &j), STORE_OK);
    assert_true(j->progress.percent == 42.5 && j->progress.frames == 30);
    job_free(&j);

    assert_int_equal(store_job_finish(st, a.id, JOB_SUCCEEDED, NULL, NULL, "[{\"size\":1}]"),
                     STORE_OK);
    assert_int_equal(store_job_finish(st, a.id, JOB_FAILED, "x", "y", NULL), STORE_ECONFLICT);
    assert_int_equal(store_job_finish(st, a.id, JOB_RUNNING, NULL, NULL, NULL), STORE_EINVAL);
    assert_int_equal(store_job_get(st, a.id, &j), STORE_OK);
    assert_int_equal(j->status, JOB_SUCCEEDED);
    assert_true(j->progress.percent == 100);
    assert_true(j->finished_at > 0);
    assert_string_equal(j->results_json, "[{\"size\":1}]");
    job_free(&j);

    /* A crash while b runs: requeued at start-up, attempts grow on claim.
     * A shared store requeues only the jobs of nodes that are gone: this
     * node goes (close) and a new one starts. */
    if (store_is_shared(st)) {
        char err[256];
        store_close(&st);
        assert_int_equal(store_open(db_url, &st, err, sizeof(err)), STORE_OK);
        *state = st;
    }
    assert_int_equal(store_requeue_running(st, NULL, NULL), STORE_OK);
    assert_int_equal(store_job_get(st, b.id, &j), STORE_OK);
    assert_int_equal(j->status, JOB_QUEUED);
    assert_true(j->started_at == 0);
    job_free(&j);
    assert_int_equal(store_job_claim_next(st, &j), STORE_OK);
    assert_string_equal(j->id, b.id);
    assert_int_equal(j->attempts, 2);
    job_free(&j);
    assert_int_equal(store_job_requeue(st, b.id), STORE_OK);
    assert_int_equal(store_job_requeue(st, b.id), STORE_ECONFLICT);
    if (store_is_shared(st)) {
        /* A shared store ends only jobs this node runs. */
        assert_int_equal(store_job_finish(st, b.id, JOB_FAILED, "x", "y", NULL), STORE_ECONFLICT);
        assert_int_equal(store_job_claim_next(st, &j), STORE_OK);
        job_free(&j);
    }
    assert_int_equal(store_job_finish(st, b.id, JOB_FAILED, "worker_crashed", "signal 11", NULL),
                     STORE_OK);
    assert_int_equal(store_job_get(st, b.id, &j), STORE_OK);
    assert_string_equal(j->error_code, "worker_crashed");
    assert_string_equal(j->error_message, "signal 11");
    job_free(&j);

    int64_t counts[5];
    assert_int_equal(store_count_by_status(st, counts), STORE_OK);
    assert_int_equal(counts[JOB_SUCCEEDED], 1);
    assert_int_equal(counts[JOB_FAILED], 1);
    assert_int_equal(counts[JOB_CANCELED], 1);
    assert_int_equal(counts[JOB_QUEUED], 0);
    assert_int_equal(store_job_get(st, "nope", &j), STORE_ENOTFOUND);
    long pos = -1;
    assert_int_equal(store_job_get_position(st, b.id, &j, &pos), STORE_OK);
    assert_int_equal(pos, 0); /* ended */
    job_free(&j);
    job_clear(&a);
    job_clear(&b);
    job_clear(&c);
}

struct seen {
    char ids[10][JOB_ID_SIZE];
    int n;
};

static int collect(void *opaque, const struct job *job)
{
    struct seen *s = opaque;
    snprintf(s->ids[s->n++], JOB_ID_SIZE, "%s", job->id);
    return s->n >= 10;
}

static void requeued_ids(void *opaque, const char *id)
{
    struct seen *s = opaque;
    snprintf(s->ids[s->n++], JOB_ID_SIZE, "%s", id);
}

static void list_pages_and_reopen(void **state)
{
    struct store *st = *state;
    struct job js[5];
    char id[JOB_ID_SIZE];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "JOB%019d", i);
        new_job(st, id, 0, &js[i]);
    }
    struct seen s = {.n = 0};
    assert_int_equal(store_job_list(st, -1, 0, 2, collect, &s), STORE_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], js[4].id); /* newest first */
    assert_string_equal(s.ids[1], js[3].id);
    s.n = 0;
    assert_int_equal(store_job_list(st, -1, js[3].seq, 10, collect, &s), STORE_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], js[2].id);
    struct job *j = NULL;
    assert_int_equal(store_job_claim_next(st, &j), STORE_OK);
    assert_string_equal(j->id, js[0].id);
    job_free(&j);
    s.n = 0;
    assert_int_equal(store_job_list(st, JOB_RUNNING, 0, 10, collect, &s), STORE_OK);
    assert_int_equal(s.n, 1);
    s.n = 0;
    assert_int_equal(store_job_list_active(st, collect, &s), STORE_OK);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.ids[0], js[0].id); /* oldest first */

    /* Durable: a second open sees everything; running comes back queued
     * (a shared store: once the node that runs it is gone). */
    struct store *st2 = NULL;
    char err[256];
    if (store_is_shared(st)) {
        store_close(&st);
        *state = NULL;
    }
    assert_int_equal(store_open(db_url, &st2, err, sizeof(err)), STORE_OK);
    s.n = 0;
    assert_int_equal(store_requeue_running(st2, requeued_ids, &s), STORE_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], js[0].id);
    store_close(&st2);
    for (int i = 0; i < 5; i++)
        job_clear(&js[i]);
}


/* ------------------------------------------------- several nodes (pg) */

struct claimer {
    struct store *st;
    char ids[40][JOB_ID_SIZE];
    int n;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    struct job *j = NULL;
    int rc;
    while ((rc = store_job_claim_next(c->st, &j)) == STORE_OK) {
        snprintf(c->ids[c->n++], JOB_ID_SIZE, "%s", j->id);
        /* the claimer's node ends it; finishing is guarded by node */
        if (store_job_finish(c->st, j->id, JOB_SUCCEEDED, NULL, NULL, "[]") != STORE_OK)
            c->n = -1000;
        job_free(&j);
        if (c->n >= 40)
            break;
    }
    return NULL;
}

static int count_delivery(void *opaque, const struct store_delivery *d)
{
    int64_t *seqs = opaque;
    seqs[++seqs[0]] = d->seq;
    return 0;
}

static void one_id(void *opaque, const char *id)
{
    snprintf(opaque, JOB_ID_SIZE, "%s", id);
}

static void exec_sql(const char *url, const char *sql, const char *param)
{
    /* The URL as libpq takes it (a store URL is a libpq URL). */
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    const char *v[1] = {param};
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

static void shared_nodes(void **state)
{
    struct store *a = *state, *b = NULL;
    char err[256];
    assert_true(store_is_shared(a));
    assert_int_equal(store_open(db_url, &b, err, sizeof(err)), STORE_OK);
    assert_true(store_node_id(a)[0] && strcmp(store_node_id(a), store_node_id(b)) != 0);

    /* Four claimers on two nodes drain one queue: every job once. */
    struct job js[30];
    char id[JOB_ID_SIZE];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "Q%021d", i);
        new_job(a, id, i % 3, &js[i]);
    }
    struct claimer cs[4] = {{.st = a}, {.st = b}, {.st = a}, {.st = b}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, claim_all, &cs[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int total = 0;
    for (int i = 0; i < 30; i++) {
        int seen = 0;
        for (int k = 0; k < 4; k++)
            for (int m = 0; m < cs[k].n; m++)
                seen += strcmp(cs[k].ids[m], js[i].id) == 0;
        assert_int_equal(seen, 1);
        total += seen;
        job_clear(&js[i]);
    }
    assert_int_equal(total, 30);
    assert_true(cs[0].n >= 0 && cs[1].n >= 0 && cs[2].n >= 0 && cs[3].n >= 0);

    /* Queue position across nodes: priority, then first come. */
    struct job p1, p2, p3, x;
    new_job(a, "P1AAAAAAAAAAAAAAAAAAAA", 0, &p1);
    new_job(b, "P2AAAAAAAAAAAAAAAAAAAA", 5, &p2);
    new_job(a, "P3AAAAAAAAAAAAAAAAAAAA", 0, &p3);
    long pos = -1;
    assert_int_equal(store_queue_position(b, p2.id, &pos), STORE_OK);
    assert_int_equal(pos, 1);
    assert_int_equal(store_queue_position(b, p1.id, &pos), STORE_OK);
    assert_int_equal(pos, 2);
    assert_int_equal(store_queue_position(a, p3.id, &pos), STORE_OK);
    assert_int_equal(pos, 3);
    assert_int_equal(store_queue_position(a, "nope", &pos), STORE_OK);
    assert_int_equal(pos, 0);
    struct job *got = NULL;
    assert_int_equal(store_job_get_position(b, p1.id, &got, &pos), STORE_OK);
    assert_string_equal(got->id, p1.id);
    assert_int_equal(got->status, JOB_QUEUED);
    assert_int_equal(pos, 2);
    job_free(&got);
    assert_int_equal(store_job_get_position(b, "nope", &got, &pos), STORE_ENOTFOUND);

    /* A claims p2; only A may move it on. */
    struct job *j = NULL;
    assert_int_equal(store_job_claim_next(a, &j), STORE_OK);
    assert_string_equal(j->id, p2.id);
    job_free(&j);
    assert_int_equal(store_queue_position(b, p2.id, &pos), STORE_OK);
    assert_int_equal(pos, 0);
    assert_int_equal(store_queue_position(b, p1.id, &pos), STORE_OK);
    assert_int_equal(pos, 1);
    struct job_progress pr = {10, 1, 1, 1, 1, 1};
    assert_int_equal(store_job_progress(b, p2.id, &pr), STORE_ECONFLICT);
    assert_int_equal(store_job_finish(b, p2.id, JOB_FAILED, "x", "y", NULL), STORE_ECONFLICT);
    assert_int_equal(store_job_requeue(b, p2.id), STORE_ECONFLICT);
    assert_int_equal(store_job_progress(a, p2.id, &pr), STORE_OK);
    /* A is alive: B's requeue of dead nodes' jobs leaves it. */
    struct seen sn = {.n = 0};
    assert_int_equal(store_requeue_running(b, requeued_ids, &sn), STORE_OK);
    assert_int_equal(sn.n, 0);

    /* Cancel through the store: B asks, A sees it, A ends the job. */
    int running = -1;
    char asked[JOB_ID_SIZE] = "";
    assert_int_equal(store_cancel_requested(a, one_id, asked), STORE_OK);
    assert_string_equal(asked, "");
    assert_int_equal(store_job_cancel_request(b, p2.id, &running), STORE_OK);
    assert_int_equal(running, 1);
    assert_int_equal(store_cancel_requested(b, one_id, asked), STORE_OK);
    assert_string_equal(asked, "");
    assert_int_equal(store_cancel_requested(a, one_id, asked), STORE_OK);
    assert_string_equal(asked, p2.id);
    /* The worker had succeeded before A saw the request: the cancel the
     * client was answered 202 for still wins, without results. */
    enum job_status ended = JOB_QUEUED;
    assert_int_equal(store_job_finish_attempt(a, p2.id, 0, JOB_SUCCEEDED, NULL, NULL,
                                              "[{\"size\":1}]", &ended),
                     STORE_OK);
    assert_int_equal(ended, JOB_CANCELED);
    assert_int_equal(store_job_get(b, p2.id, &j), STORE_OK);
    assert_int_equal(j->status, JOB_CANCELED);
    assert_null(j->results_json);
    assert_null(j->error_code);
    job_free(&j);
    assert_int_equal(store_job_cancel_request(b, p2.id, &running), STORE_ECONFLICT);
    assert_int_equal(store_job_cancel_request(b, "nope", &running), STORE_ENOTFOUND);
    /* A queued job is canceled at once, by any node. */
    assert_int_equal(store_job_cancel_request(b, p3.id, &running), STORE_OK);
    assert_int_equal(running, 0);
    assert_int_equal(store_job_get(a, p3.id, &j), STORE_OK);
    assert_int_equal(j->status, JOB_CANCELED);
    job_free(&j);

    /* Webhook deliveries: claimed by the node that reads them first. */
    struct store_webhook w;
    int queued = 0;
    assert_int_equal(store_webhook_add(a, NULL, "http://127.0.0.1:9/x", 0x7, &w, &queued),
                     STORE_OK);
    assert_int_equal(store_job_claim_next(b, &j), STORE_OK); /* p1 */
    assert_string_equal(j->id, p1.id);
    job_free(&j);
    assert_int_equal(store_job_finish(b, p1.id, JOB_SUCCEEDED, NULL, NULL, "[]"), STORE_OK);
    int64_t got_a[64] = {0}, got_b[64] = {0};
    assert_int_equal(store_delivery_pending(a, 0, 50, count_delivery, got_a), STORE_OK);
    assert_int_equal(store_delivery_pending(b, 0, 50, count_delivery, got_b), STORE_OK);
    assert_true(got_a[0] >= 1);
    assert_int_equal(got_b[0], 0);
    /* A gives one back: B gets it, A does not get it again. */
    assert_int_equal(store_delivery_release(a, got_a[1]), STORE_OK);
    got_b[0] = 0;
    assert_int_equal(store_delivery_pending(b, 0, 50, count_delivery, got_b), STORE_OK);
    assert_int_equal(got_b[0], 1);
    assert_true(got_b[1] == got_a[1]);

    /* A node presumed dead (its lease ran out, here by hand): its running
     * job is requeued by another node, and its own writes are refused. */
    new_job(a, "XAAAAAAAAAAAAAAAAAAAAA", 9, &x);
    assert_int_equal(store_job_claim_next(a, &j), STORE_OK);
    assert_string_equal(j->id, x.id);
    job_free(&j);
    store_set_node_lease(a, 3600); /* no renewal during the rest */
    ts_sleep_ms(300);
    exec_sql(db_url, "UPDATE nodes SET alive_until = 0 WHERE id = $1", store_node_id(a));
    sn.n = 0;
    assert_int_equal(store_requeue_running(b, requeued_ids, &sn), STORE_OK);
    assert_int_equal(sn.n, 1);
    assert_string_equal(sn.ids[0], x.id);
    assert_int_equal(store_job_finish(a, x.id, JOB_SUCCEEDED, NULL, NULL, "[]"), STORE_ECONFLICT);
    assert_int_equal(store_job_claim_next(b, &j), STORE_OK);
    assert_string_equal(j->id, x.id);
    assert_int_equal(j->attempts, 2);
    job_free(&j);
    assert_int_equal(store_job_progress(a, x.id, &pr), STORE_ECONFLICT);
    /* Fenced attempts: an older attempt cannot end the job, even on the
     * node that has it now; the current one can. */
    assert_int_equal(store_job_finish_attempt(b, x.id, 1, JOB_SUCCEEDED, NULL, NULL, "[]", NULL),
                     STORE_ECONFLICT);
    assert_int_equal(store_job_finish_attempt(b, x.id, 2, JOB_SUCCEEDED, NULL, NULL, "[]", &ended),
                     STORE_OK);
    assert_int_equal(ended, JOB_SUCCEEDED);
    assert_int_equal(store_job_get(b, x.id, &j), STORE_OK);
    assert_int_equal(j->status, JOB_SUCCEEDED);
    assert_int_equal(j->attempts, 2);
    job_free(&j);
    /* ... and the deliveries it had claimed are taken over. */
    got_b[0] = 0;
    assert_int_equal(store_delivery_pending(b, 0, 50, count_delivery, got_b), STORE_OK);
    assert_true(got_b[0] >= got_a[0] - 1);

    /* A node that closes is gone at once: its running job goes back. */
    struct job y;
    new_job(b, "YAAAAAAAAAAAAAAAAAAAAA", 9, &y);
    assert_int_equal(store_job_claim_next(b, &j), STORE_OK);
    assert_string_equal(j->id, y.id);
    job_free(&j);
    store_close(&b);
    sn.n = 0;
    assert_int_equal(store_requeue_running(a, requeued_ids, &sn), STORE_OK);
    assert_int_equal(sn.n, 1);
    assert_string_equal(sn.ids[0], y.id);
    job_clear(&p1);
    job_clear(&p2);
    job_clear(&p3);
    job_clear(&x);
    job_clear(&y);
}

static void bad_urls(void **state)
{
    (void)state;
    struct store *st = NULL;
    char err[256];
    assert_int_equal(store_open("mysql://x", &st, err, sizeof(err)), STORE_EINVAL);
    assert_non_null(strstr(err, "sqlite:"));
    assert_non_null(strstr(err, "postgres://"));
    assert_int_equal(store_open("", &st, err, sizeof(err)), STORE_EINVAL);
    assert_int_equal(store_open("sqlite:", &st, err, sizeof(err)), STORE_EINVAL);
    assert_int_equal(store_open("sqlite:/nonexistent/dir/x.db", &st, err, sizeof(err)),
                     STORE_EIO);
    assert_null(st);
    /* PostgreSQL that cannot be reached: the reason, not a hang; the
     * password of the URL is not repeated. */
    assert_int_equal(store_open("postgres://u:s3cret@nohost.invalid/x", &st, err, sizeof(err)),
                     STORE_EIO);
    assert_non_null(strstr(err, "nohost.invalid"));
    assert_null(strstr(err, "s3cret"));
    assert_int_equal(store_open("postgresql:///x?host=/nonexistent", &st, err, sizeof(err)),
                     STORE_EIO);
    assert_non_null(strstr(err, "/nonexistent"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(store_open("postgres://127.0.0.1:1/x", &st, err, sizeof(err)), STORE_EIO);
    assert_non_null(strstr(err, "refused"));
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(claim_order_and_states, setup, teardown),
        cmocka_unit_test_setup_teardown(sqlite_wal_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_and_reopen, setup, teardown),
        cmocka_unit_test(bad_urls),
    };
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup_teardown(shared_nodes, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* Several nodes: a PostgreSQL store only (unit.test_store.pg). */
    const char *pg = getenv("VIDQ_TEST_PG_HOST");
    if (pg && *pg)
        failed += cmocka_run_group_tests(pg_tests, NULL, NULL);
    return failed;
}
