/* Unit tests of progress (progress.c): the arithmetic, the seqlock's
 * monotonic percent, 100 only when said. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <transcode/tc.h>

#include "internal.h"

static void init_is_zero_and_unknown_eta(void **state)
{
    (void)state;
    struct tc_progress p;
    struct tc_progress_snapshot s;
    tc_progress_init(&p);
    tc_progress_read(&p, &s);
    assert_true(s.percent == 0.0);
    assert_true(s.eta_s < 0.0);
    assert_int_equal(s.frames, 0);
}

static void compute_figures(void **state)
{
    (void)state;
    struct tc_progress_snapshot s;
    tc_progress_compute(5.0, 10.0, 2.5, 125, &s);
    assert_float_equal(s.percent, 50.0, 1e-9);
    assert_float_equal(s.speed, 2.0, 1e-9);
    assert_float_equal(s.fps, 50.0, 1e-9);
    assert_float_equal(s.eta_s, 2.5, 1e-9);
    assert_float_equal(s.out_time_s, 5.0, 1e-9);
    assert_int_equal(s.frames, 125);
}

static void compute_never_says_100(void **state)
{
    (void)state;
    struct tc_progress_snapshot s;
    tc_progress_compute(10.0, 10.0, 1.0, 0, &s);
    assert_true(s.percent < 100.0);
    tc_progress_compute(12.0, 10.0, 1.0, 0, &s);
    assert_true(s.percent < 100.0);
    assert_true(s.eta_s >= 0.0);
}

static void compute_unknown_duration(void **state)
{
    (void)state;
    struct tc_progress_snapshot s;
    tc_progress_compute(3.0, 0.0, 1.0, 10, &s);
    assert_true(s.percent == 0.0);
    assert_true(s.eta_s < 0.0);
    tc_progress_compute(0.0, 10.0, 0.0, 0, &s);
    assert_true(s.eta_s < 0.0);
    assert_true(s.speed == 0.0);
    tc_progress_compute(-1.0, 10.0, 1.0, 0, &s);
    assert_true(s.percent == 0.0);
}

static void write_keeps_percent_monotonic(void **state)
{
    (void)state;
    struct tc_progress p;
    struct tc_progress_snapshot in = {0}, out;
    tc_progress_init(&p);
    in.percent = 40.0;
    in.eta_s = 3.0;
    tc_progress_write(&p, &in);
    in.percent = 30.0;
    in.frames = 7;
    tc_progress_write(&p, &in);
    tc_progress_read(&p, &out);
    assert_true(out.percent == 40.0);
    assert_int_equal(out.frames, 7);
    in.percent = 250.0;
    tc_progress_write(&p, &in);
    tc_progress_read(&p, &out);
    assert_true(out.percent == 100.0);
    assert_int_equal(atomic_load(&p.seq) % 2, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_is_zero_and_unknown_eta),
        cmocka_unit_test(compute_figures),
        cmocka_unit_test(compute_never_says_100),
        cmocka_unit_test(compute_unknown_duration),
        cmocka_unit_test(write_keeps_percent_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
