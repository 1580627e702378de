/*
 * test_timeutil.c - RFC 3339 parsing and formatting.
 */
#include <string.h>

#include "mctest.h"

#include "core/timeutil.h"

static void
test_parse_basic(void **state)
{
    int64_t us;

    (void)state;
    assert_true(time_parse_rfc3339("1970-01-01T00:00:00Z", &us));
    assert_int_equal(us, 0);
    assert_true(time_parse_rfc3339("2026-11-29T11:13:53Z", &us));
    assert_int_equal(us, 1795950833LL * 1000000);
    assert_true(time_parse_rfc3339("2026-11-29t11:13:53z", &us));
    assert_int_equal(us, 1795950833LL * 1000000);
}

static void
test_parse_offsets_and_fractions(void **state)
{
    int64_t a, b;

    (void)state;
    assert_true(time_parse_rfc3339("2026-11-29T12:13:53.5+01:00", &a));
    assert_true(time_parse_rfc3339("2026-11-29T11:13:53.500000Z", &b));
    assert_int_equal(a, b);
    assert_true(time_parse_rfc3339("2026-11-29T06:13:53.123456789-05:00", &a));
    assert_int_equal(a % 1000000, 123456); /* beyond microseconds is dropped */
}

static void
test_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "2026-11-29",
        "2026-11-29 11:13:53Z",    /* space instead of T */
        "2026-11-29T11:13:53",     /* no zone */
        "2026-13-01T00:00:00Z",    /* month */
        "2026-02-29T00:00:00Z",    /* not a leap year */
        "2026-04-31T00:00:00Z",    /* April has 30 days */
        "2026-11-29T24:00:00Z",
        "2026-11-29T11:60:00Z",
        "2026-11-29T11:13:53.Z",   /* empty fraction */
        "2026-11-29T11:13:53+0100",
        "2026-11-29T11:13:53Zjunk",
        "tomorrow",
    };
    int64_t us;

    (void)state;
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(time_parse_rfc3339(bad[i], &us));
    assert_true(time_parse_rfc3339("2024-02-29T00:00:00Z", &us)); /* leap year */
}

static void
test_format_roundtrip(void **state)
{
    char s[40];
    int64_t us, back;

    (void)state;
    time_format_rfc3339(0, s, sizeof(s));
    assert_string_equal(s, "1970-01-01T00:00:00Z");
    us = 1795950833LL * 1000000 + 42;
    time_format_rfc3339(us, s, sizeof(s));
    assert_string_equal(s, "2026-11-29T11:13:53.000042Z");
    assert_true(time_parse_rfc3339(s, &back));
    assert_int_equal(back, us);
    /* Every day over four centuries survives the round trip. */
    for (int64_t d = -146097; d < 146097 * 2; d += 7) {
        us = d * 86400 * 1000000LL + 3723000001LL;
        time_format_rfc3339(us, s, sizeof(s));
        assert_true(time_parse_rfc3339(s, &back));
        assert_int_equal(back, us);
    }
}

/* Found by fuzz_time: an offset must not carry a time out of years 0000-9999. */
static void
test_parse_refuses_offsets_past_the_years(void **state)
{
    char s[40];
    int64_t us;

    (void)state;
    assert_false(time_parse_rfc3339("9999-12-31T23:59:00-23:59", &us));
    assert_false(time_parse_rfc3339("0000-01-01T00:00:00+00:01", &us));
    assert_true(time_parse_rfc3339("9999-12-31T23:59:59.999999Z", &us));
    time_format_rfc3339(us, s, sizeof(s));
    assert_string_equal(s, "9999-12-31T23:59:59.999999Z");
    assert_true(time_parse_rfc3339("9999-12-31T23:59:00+23:59", &us));
    assert_true(time_parse_rfc3339("0000-01-01T00:00:00Z", &us));
    time_format_rfc3339(us, s, sizeof(s));
    assert_string_equal(s, "0000-01-01T00:00:00Z");
}

/* An idle poller's wait doubles from its poll interval up to the cap. */
static void
test_poll_backoff(void **state)
{
    (void)state;
    assert_int_equal(poll_backoff_ms(50, 400, 0), 50);
    assert_int_equal(poll_backoff_ms(50, 400, 1), 100);
    assert_int_equal(poll_backoff_ms(50, 400, 3), 400);
    assert_int_equal(poll_backoff_ms(50, 400, 4), 400);
    assert_int_equal(poll_backoff_ms(50, 300, 3), 300);   /* capped, not doubled past it */
    assert_int_equal(poll_backoff_ms(500, 200, 5), 500);  /* a cap below the poll: the poll */
    assert_int_equal(poll_backoff_ms(10, 60000, 30), 60000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_offsets_and_fractions),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_parse_refuses_offsets_past_the_years),
        cmocka_unit_test(test_poll_backoff),
    };
    return cmocka_run_group_tests_name("core/timeutil", tests, NULL, NULL);
}
