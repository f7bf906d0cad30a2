/* retry.c - see retry.h. */
#include "hooks/retry.h"

int64_t hook_retry_ceiling_ms(const struct hook_retry_policy *p, unsigned attempt)
{
    int64_t min = p->min_ms > 0 ? p->min_ms : 1;
    int64_t cap = HOOK_RETRY_CAP_MS > min ? HOOK_RETRY_CAP_MS : min;
    int64_t c = min;
    /* Double step by step so that a large attempt count cannot overflow. */
    for (unsigned i = 1; i < attempt && c < cap; i++)
        c = c > cap / 2 ? cap : c * 2;
    return c < cap ? c : cap;
}

int64_t hook_retry_delay_ms(const struct hook_retry_policy *p, unsigned attempt, uint64_t rnd)
{
    int64_t min = p->min_ms > 0 ? p->min_ms : 1;
    int64_t ceil = hook_retry_ceiling_ms(p, attempt);
    uint64_t span = (uint64_t)(ceil - min) + 1;
    return min + (int64_t)(rnd % span);
}

int hook_retry_next(const struct hook_retry_policy *p, int64_t created_ms, int64_t now_ms,
                    unsigned attempt, uint64_t rnd, int64_t *next_ms)
{
    int64_t deadline = created_ms + p->max_age_ms;
    if (now_ms >= deadline)
        return 0;
    int64_t next = now_ms + hook_retry_delay_ms(p, attempt, rnd);
    *next_ms = next < deadline ? next : deadline;
    return 1;
}
