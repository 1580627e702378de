/*
 * test_pace.c - GCRA spacing: the burst after a pause, even spacing after
 * it, no credit saved beyond the burst, and the window bound of pace.h.
 */
#include "mctest.h"

#include "core/pace.h"

static void
test_interval_is_the_tightest_rate(void **state)
{
    (void)state;
    assert_int_equal(pace_interval(0, 0), 0);
    assert_int_equal(pace_interval(0, 600), 100000);
    assert_int_equal(pace_interval(14, 0), 71429); /* rounded up: never faster */
    assert_int_equal(pace_interval(20, 600), 100000);
    assert_int_equal(pace_interval(5, 600), 200000);
    /* "Unlimited" limits are not paced: intervals under 10 us. */
    assert_int_equal(pace_interval(0, 2147483647), 0);
    assert_int_equal(pace_interval(100000, 0), 10);
    assert_int_equal(pace_interval(111112, 0), 0); /* 9 us, rounded up */
}

/* Takes n slots as early as allowed, starting at now; returns the last one. */
static int64_t
take_n(struct pace_scope *s, int64_t burst, int64_t now, int n, int64_t *slots)
{
    int64_t t = now;

    for (int i = 0; i < n; i++) {
        t = pace_earliest(s, burst, now);
        pace_take(s, t);
        if (slots)
            slots[i] = t;
    }
    return t;
}

static void
test_burst_then_even_spacing(void **state)
{
    struct pace_scope s = {.interval_us = 100000, .tat = 0};
    int64_t slots[20], now = 1000000000;

    (void)state;
    take_n(&s, 3, now, 20, slots);
    for (int i = 0; i < 3; i++)
        assert_int_equal(slots[i], now); /* the burst */
    for (int i = 3; i < 20; i++)
        assert_int_equal(slots[i] - slots[i - 1], 100000);
    /* Any 1-second window holds at most 10 + burst. */
    for (int i = 0; i < 20; i++) {
        int in = 0;
        for (int k = i; k < 20 && slots[k] < slots[i] + 1000000; k++)
            in++;
        assert_true(in <= 10 + 3);
    }
}

static void
test_a_pause_saves_no_more_than_the_burst(void **state)
{
    struct pace_scope s = {.interval_us = 100000, .tat = 0};
    int64_t slots[8], now = 5000000;

    (void)state;
    take_n(&s, 2, now, 4, NULL);
    /* An hour later: only two go at once again. */
    now += 3600LL * 1000000;
    take_n(&s, 2, now, 8, slots);
    assert_int_equal(slots[0], now);
    assert_int_equal(slots[1], now);
    assert_int_equal(slots[2], now + 100000);
    assert_int_equal(slots[7], now + 600000);
}

static void
test_a_raised_rate_applies_at_once(void **state)
{
    /* A minute apart at 1/min: the tat is a minute ahead. */
    struct pace_scope s = {.interval_us = 60000000, .tat = 0};
    int64_t now = 1000000000;

    (void)state;
    take_n(&s, 1, now, 1, NULL);
    assert_int_equal(s.tat, now + 60000000);
    /* Raised to 1000/min (60 ms): the minute ahead becomes 60 ms. */
    s.interval_us = 60000;
    pace_rescale(&s, 60000000, now);
    assert_int_equal(s.tat, now + 60000);
    assert_int_equal(pace_earliest(&s, 1, now), now + 60000);
    /* Unchanged, unknown, or already behind: left alone. */
    s.tat = now + 500000;
    pace_rescale(&s, 60000, now);
    pace_rescale(&s, 0, now);
    assert_int_equal(s.tat, now + 500000);
    pace_rescale(&s, 120000, now + 600000);
    assert_int_equal(s.tat, now + 500000);
}

static void
test_unpaced_scope_never_waits(void **state)
{
    struct pace_scope s = {0};

    (void)state;
    assert_int_equal(take_n(&s, 1, 42, 1000, NULL), 42);
    assert_int_equal(s.tat, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval_is_the_tightest_rate),
        cmocka_unit_test(test_burst_then_even_spacing),
        cmocka_unit_test(test_a_pause_saves_no_more_than_the_burst),
        cmocka_unit_test(test_a_raised_rate_applies_at_once),
        cmocka_unit_test(test_unpaced_scope_never_waits),
    };

    return cmocka_run_group_tests_name("core/pace", tests, NULL, NULL);
}
