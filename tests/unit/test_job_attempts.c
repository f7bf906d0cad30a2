/* Unit tests of the fenced-attempt folders (svc/store/job.c): where an
 * attempt writes, which folder a succeeded job is served from, and what
 * the clean-ups remove (and never remove). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/job.h"

#define ID "AAAAAAAAAAAAAAAAAAAAAA"

static char data[256];

static int exists(const char *rel)
{
    char p[600];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/outputs/" ID "/%s", data, rel);
    return stat(p, &sb) == 0;
}

static void touch(const char *rel)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/outputs/" ID "/%s", data, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void mk(const char *rel)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/outputs/" ID "%s%s", data, *rel ? "/" : "", rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(data, sizeof(data), "/tmp/vidq-attempts-XXXXXX");
    assert_non_null(mkdtemp(data));
    char p[600];
    snprintf(p, sizeof(p), "%s/outputs", data);
    assert_int_equal(mkdir(p, 0755), 0);
    mk("");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    job_remove_outputs(data, ID);
    char p[600];
    snprintf(p, sizeof(p), "%s/outputs", data);
    rmdir(p);
    rmdir(data);
    return 0;
}

static void paths(void **state)
{
    (void)state;
    char buf[600], want[600];
    assert_int_equal(job_attempt_dir(buf, sizeof(buf), "/d", ID, 0), 0);
    assert_string_equal(buf, "/d/outputs/" ID);
    assert_int_equal(job_attempt_dir(buf, sizeof(buf), "/d", ID, 3), 0);
    assert_string_equal(buf, "/d/outputs/" ID "/.attempt-3");
    assert_int_equal(job_attempt_output_path(buf, sizeof(buf), "/d", ID, 3, "med", "mp4"), 0);
    assert_string_equal(buf, "/d/outputs/" ID "/.attempt-3/med.mp4");
    assert_int_equal(job_attempt_output_path(buf, sizeof(buf), "/d", ID, 2, "h", "hls"), 0);
    assert_string_equal(buf, "/d/outputs/" ID "/.attempt-2/h");
    /* attempt 0 is the plain layout, as job_output_path. */
    assert_int_equal(job_attempt_output_path(buf, sizeof(buf), "/d", ID, 0, "med", "mp4"), 0);
    assert_int_equal(job_output_path(want, sizeof(want), "/d", ID, "med", "mp4"), 0);
    assert_string_equal(buf, want);
    /* Too small: refused, never cut. */
    assert_int_equal(job_attempt_dir(buf, 20, "/d", ID, 3), -1);
    assert_int_equal(job_attempt_output_path(buf, 40, "/d", ID, 3, "med", "mp4"), -1);
}

static void served_and_cleaned(void **state)
{
    (void)state;
    struct job job;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), ID);
    char buf[600], want[600];

    /* No attempt folder (one node, or a job from before them): plain. */
    job.attempts = 2;
    assert_int_equal(job_served_dir(buf, sizeof(buf), data, &job), 0);
    snprintf(want, sizeof(want), "%s/outputs/" ID, data);
    assert_string_equal(buf, want);

    /* A killed attempt 1, the winner 2, a name this code never makes,
     * and a plain-layout file. */
    mk(".attempt-1");
    touch(".attempt-1/med.mp4.part");
    mk(".attempt-2");
    touch(".attempt-2/med.mp4");
    mk(".attempt-x");
    touch("med.mp4");
    assert_int_equal(job_served_dir(buf, sizeof(buf), data, &job), 0);
    snprintf(want, sizeof(want), "%s/outputs/" ID "/.attempt-2", data);
    assert_string_equal(buf, want);
    /* A file where the winner's folder would be is not a folder. */
    job.attempts = 3;
    touch(".attempt-3");
    assert_int_equal(job_served_dir(buf, sizeof(buf), data, &job), 0);
    snprintf(want, sizeof(want), "%s/outputs/" ID, data);
    assert_string_equal(buf, want);

    assert_int_equal(job_remove_other_attempts(data, ID, 2), 0);
    assert_false(exists(".attempt-1"));
    assert_true(exists(".attempt-2/med.mp4"));
    assert_false(exists(".attempt-3"));
    assert_true(exists(".attempt-x"));
    assert_true(exists("med.mp4"));

    assert_int_equal(job_remove_attempt(data, ID, 2), 0);
    assert_false(exists(".attempt-2"));
    assert_true(exists("med.mp4"));
    assert_int_equal(job_remove_attempt(data, ID, 0), -1); /* never the plain folder */
    assert_true(exists("med.mp4"));
    /* Nothing there: nothing to do. */
    assert_int_equal(job_remove_attempt(data, ID, 7), 0);
    assert_int_equal(job_remove_other_attempts(data, "BBBBBBBBBBBBBBBBBBBBBB", 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths),
        cmocka_unit_test_setup_teardown(served_and_cleaned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
