/*
 * retry.h - the webhook retry policy, as pure functions (no clock, no
 * randomness of its own) so that it can be tested exactly.
 *
 * DESIGN
 *   An event is delivered to one URL by attempts 1, 2, 3, ... Attempt 1 runs
 *   as soon as the event exists. After failed attempt n (a non-2xx answer
 *   other than 410, a timeout, a refused connection, a TLS or DNS error) the
 *   next one waits a delay drawn uniformly ("full jitter") from
 *       [min, min(cap, min * 2^(n-1))]
 *   where min is --webhook-retry-min and cap is HOOK_RETRY_CAP_MS (1 h, or
 *   min if larger). The jitter spreads the retries of many events that
 *   failed together (a receiver that was down) instead of hammering it in
 *   waves. No attempt starts later than created + --webhook-retry-max-age:
 *   a retry that would fall after that deadline is moved onto it (one last
 *   try), and a failure at or after the deadline gives up. A 410 Gone
 *   answer gives up at once, for that URL and that event only.
 *
 * Threading: pure functions; any thread.
 */
#ifndef VIDQ_HOOK_RETRY_H
#define VIDQ_HOOK_RETRY_H

#include <stdint.h>

#define HOOK_RETRY_MIN_DEFAULT_MS 5000           /* --webhook-retry-min 5 */
#define HOOK_RETRY_MAX_AGE_DEFAULT_MS 86400000LL /* --webhook-retry-max-age 86400 */
#define HOOK_RETRY_CAP_MS 3600000LL              /* longest single wait */

struct hook_retry_policy {
    int64_t min_ms;     /* first wait, > 0 */
    int64_t max_age_ms; /* give up this long after the event was created, > 0 */
};

/* The upper bound of the wait after failed attempt `attempt` (1-based):
 * min(cap, min * 2^(attempt-1)), never below min. */
int64_t hook_retry_ceiling_ms(const struct hook_retry_policy *p, unsigned attempt);

/* The wait after failed attempt `attempt`, with rnd a uniformly random
 * 64-bit number: a value in [min, ceiling]. */
int64_t hook_retry_delay_ms(const struct hook_retry_policy *p, unsigned attempt, uint64_t rnd);

/* What to do after failed attempt `attempt` that ended at now_ms, for an
 * event created at created_ms: returns 1 and sets *next_ms (the time of the
 * next attempt) to retry, or 0 to give up. */
int hook_retry_next(const struct hook_retry_policy *p, int64_t created_ms, int64_t now_ms,
                    unsigned attempt, uint64_t rnd, int64_t *next_ms);

#endif
