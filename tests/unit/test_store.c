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
#include <unistd.h>

#include <cmocka.h>

#include "jobs/store.h"
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

    /* A crash while b runs: requeued at start-up, attempts grow on claim. */
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

    /* Durable: a second open sees everything; running comes back queued. */
    struct store *st2 = NULL;
    char err[256];
    assert_int_equal(store_open(db_url, &st2, err, sizeof(err)), STORE_OK);
    s.n = 0;
    assert_int_equal(store_requeue_running(st2, requeued_ids, &s), STORE_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], js[0].id);
    store_close(&st2);
    for (int i = 0; i < 5; i++)
        job_clear(&js[i]);
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
        cmocka_unit_test_setup_teardown(list_pages_and_reopen, setup, teardown),
        cmocka_unit_test(bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
