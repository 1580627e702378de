/*
 * pace.c - GCRA arithmetic (see pace.h).  Does not store or share state.
 */
#include "pace.h"

/* Rounded up, so a paced scope never goes faster than its rate. */
static int64_t
interval_of(int64_t per, int64_t span_us)
{
    return per > 0 ? (span_us + per - 1) / per : 0;
}

int64_t
pace_interval(int64_t per_second, int64_t per_minute)
{
    int64_t a = interval_of(per_second, 1000000), b = interval_of(per_minute, 60000000);
    int64_t iv = a > b ? a : b;

    /* Faster than any worker sends ("unlimited" limits such as 2^31-1 a
     * minute): not paced, so such scopes cost a claim no state at all. */
    return iv < PACE_MIN_INTERVAL_US ? 0 : iv;
}

int64_t
pace_earliest(const struct pace_scope *s, int64_t burst, int64_t now)
{
    int64_t e;

    if (s->interval_us <= 0)
        return now;
    e = s->tat - (burst > 1 ? burst - 1 : 0) * s->interval_us;
    return e > now ? e : now;
}

void
pace_rescale(struct pace_scope *s, int64_t old_interval_us, int64_t now)
{
    if (s->interval_us <= 0 || old_interval_us <= 0 || old_interval_us == s->interval_us ||
        s->tat <= now)
        return;
    s->tat = now + (int64_t)((double)(s->tat - now) * (double)s->interval_us /
                             (double)old_interval_us);
}

void
pace_take(struct pace_scope *s, int64_t t)
{
    if (s->interval_us <= 0)
        return;
    s->tat = (s->tat > t ? s->tat : t) + s->interval_us;
}
