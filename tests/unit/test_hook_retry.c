/* Unit tests of the webhook retry policy (svc/hooks/retry.c): exponential
 * bounds, full-jitter range, the cap, and giving up at the max age. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hooks/retry.h"

static void ceiling_doubles_up_to_cap(void **state)
{
    (void)state;
    struct hook_retry_policy p = {.min_ms = 1000, .max_age_ms = 86400000};
    assert_int_equal(hook_retry_ceiling_ms(&p, 1), 1000);
    assert_int_equal(hook_retry_ceiling_ms(&p, 2), 2000);
    assert_int_equal(hook_retry_ceiling_ms(&p, 3), 4000);
    assert_int_equal(hook_retry_ceiling_ms(&p, 10), 512000);
    assert_int_equal(hook_retry_ceiling_ms(&p, 13), HOOK_RETRY_CAP_MS);
    assert_int_equal(hook_retry_ceiling_ms(&p, 1000000), HOOK_RETRY_CAP_MS);
    assert_int_equal(hook_retry_ceiling_ms(&p, 0), 1000);
    /* a min above the cap is honoured */
    struct hook_retry_policy big = {.min_ms = 2 * HOOK_RETRY_CAP_MS, .max_age_ms = 1};
    assert_int_equal(hook_retry_ceiling_ms(&big, 5), 2 * HOOK_RETRY_CAP_MS);
}

static void jitter_stays_in_range_and_spreads(void **state)
{
    (void)state;
    struct hook_retry_policy p = {.min_ms = 200, .max_age_ms = 86400000};
    for (unsigned attempt = 1; attempt < 40; attempt++) {
        int64_t lo = INT64_MAX, hi = 0;
        int64_t ceil = hook_retry_ceiling_ms(&p, attempt);
        uint64_t x = 88172645463325252ull; /* xorshift64: deterministic spread */
        for (int i = 0; i < 2000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int64_t d = hook_retry_delay_ms(&p, attempt, x);
            assert_true(d >= p.min_ms);
            assert_true(d <= ceil);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        if (ceil - p.min_ms >= 100) {
            /* full jitter: the draws cover most of the range */
            assert_true(lo < p.min_ms + (ceil - p.min_ms) / 10);
            assert_true(hi > ceil - (ceil - p.min_ms) / 10);
        }
    }
    /* extremes of rnd hit both ends */
    assert_int_equal(hook_retry_delay_ms(&p, 3, 0), 200);
    assert_int_equal(hook_retry_delay_ms(&p, 3, 601), 200);
    assert_int_equal(hook_retry_delay_ms(&p, 3, 600), 800);
    assert_int_equal(hook_retry_delay_ms(&p, 3, UINT64_MAX), 200 + (int64_t)(UINT64_MAX % 601));
}

static void gives_up_at_max_age(void **state)
{
    (void)state;
    struct hook_retry_policy p = {.min_ms = 1000, .max_age_ms = 10000};
    int64_t created = 1700000000000, next = 0;
    /* early on: next within [now+min, now+ceiling] */
    assert_int_equal(hook_retry_next(&p, created, created + 100, 1, 0, &next), 1);
    assert_int_equal(next, created + 1100);
    /* a retry that would land after the deadline is moved onto it */
    assert_int_equal(hook_retry_next(&p, created, created + 9500, 5, 12345, &next), 1);
    assert_int_equal(next, created + 10000);
    /* at or after the deadline: give up */
    assert_int_equal(hook_retry_next(&p, created, created + 10000, 6, 0, &next), 0);
    assert_int_equal(hook_retry_next(&p, created, created + 99999, 2, 0, &next), 0);
    /* the whole schedule of a 24 h policy ends by the deadline and has a
     * sensible number of attempts */
    struct hook_retry_policy day = {.min_ms = 5000, .max_age_ms = 86400000};
    int64_t now = created;
    unsigned attempts = 1;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    while (hook_retry_next(&day, created, now, attempts, x, &next)) {
        assert_true(next > now);
        assert_true(next <= created + day.max_age_ms);
        now = next;
        attempts++;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        assert_true(attempts < 1000);
    }
    assert_int_equal(now, created + day.max_age_ms);
    assert_true(attempts >= 20);
    assert_true(attempts <= 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ceiling_doubles_up_to_cap),
        cmocka_unit_test(jitter_stays_in_range_and_spreads),
        cmocka_unit_test(gives_up_at_max_age),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
