/*
 * test_spacing.c - late paced messages keep their spacing: slots on time go
 * at their slot (bursts too), slots a starved loop finds past leave one
 * interval apart instead of together, other processes' shares (gaps of a
 * few intervals) are mostly kept, a shifted scope catches up and is
 * forgotten, and scopes do not hold each other up.
 */
#include "mctest.h"

#include "core/spacing.h"

#define MS 1000LL
#define T (100 * MS) /* 600 a minute */

/*
 * Drives one scope's messages (slots[i]) the way the delivery loop does:
 * each is looked at when the loop gets to it (no sooner than `awake`, the
 * end of a stall), and leaves when it is due.  left[i]: when it left.
 */
static void
drive(struct spacing *sp, const char *key, const int64_t *slots, int n, int64_t awake,
      int64_t *left)
{
    const struct spacing_key keys[] = {{key, T}};

    for (int i = 0; i < n; i++) {
        int64_t now = slots[i] > awake ? slots[i] : awake;
        int64_t due = spacing_slot_due(sp, keys, 1, slots[i]);
        now = due > now ? due : now; /* held on a timer until due */
        spacing_slot_taken(sp, keys, 1, slots[i], now);
        left[i] = now;
        /* the loop is the clock: nothing leaves before what left already */
        awake = now > awake ? now : awake;
    }
}

static void
test_on_time_slots_go_at_their_slot_bursts_included(void **state)
{
    struct spacing sp = {0};
    int64_t slots[] = {0, 0, 0, T, 2 * T, 3 * T}, left[6];

    (void)state;
    drive(&sp, "tenant", slots, 6, 0, left);
    for (int i = 0; i < 6; i++)
        assert_int_equal(left[i], slots[i]);
    assert_int_equal(sp.n, 0); /* nothing late, nothing remembered */
    spacing_cleanup(&sp);
}

static void
test_late_slots_leave_an_interval_apart_not_together(void **state)
{
    struct spacing sp = {0};
    int64_t slots[20], left[20];

    (void)state;
    for (int i = 0; i < 20; i++)
        slots[i] = i * T;
    /* The loop stalls until 1.05 s: ten slots have passed meanwhile. */
    drive(&sp, "tenant", slots, 20, 1050 * MS, left);
    assert_int_equal(left[0], 1050 * MS);
    for (int i = 1; i < 20; i++)
        assert_true(left[i] - left[i - 1] >= T); /* the whole run stays shifted */
    /* Without the shift the ten would have left at 1.05 s together. */
    assert_int_equal(left[10], 1050 * MS + 10 * T);
    spacing_cleanup(&sp);
}

static void
test_a_late_burst_stays_a_burst_shifted(void **state)
{
    struct spacing sp = {0};
    /* A claim's burst (one slot) and the claim after it, 200 ms later, both
     * arriving 150 ms late (a slow claim: more than T, so a shift). */
    int64_t slots[] = {0, 0, 0, 0, 2 * T, 2 * T, 3 * T}, left[7];

    (void)state;
    drive(&sp, "tenant", slots, 7, 150 * MS, left);
    for (int i = 0; i < 4; i++)
        assert_int_equal(left[i], 150 * MS);
    /* 90 % of a gap over T is kept, the whole of one up to T */
    assert_int_equal(left[4], 330 * MS);
    assert_int_equal(left[5], 330 * MS);
    assert_int_equal(left[6], 430 * MS);
    spacing_cleanup(&sp);

    /* Up to T late is jitter, not a shift: each message at once. */
    drive(&sp, "tenant", slots, 7, 50 * MS, left);
    assert_int_equal(left[4], 2 * T);
    assert_int_equal(left[6], 3 * T);
    spacing_cleanup(&sp);
}

static void
test_a_late_scope_catches_up_and_is_forgotten(void **state)
{
    struct spacing sp = {0};
    const struct spacing_key keys[] = {{"tenant", T}};
    int64_t slots[40], left[40];

    (void)state;
    /* A share of a scope paced for two processes: every other interval. */
    for (int i = 0; i < 40; i++)
        slots[i] = i * 2 * T;
    drive(&sp, "tenant", slots, 40, 450 * MS, left);
    for (int i = 1; i < 40; i++) {
        /* 90 % of the gap is kept while over T late; T at least once within it */
        if (left[i - 1] > slots[i - 1] + T)
            assert_true(left[i] - left[i - 1] >= 2 * T * 9 / 10);
        assert_true(left[i] - left[i - 1] >= T);
    }
    assert_int_equal(left[39], slots[39]); /* back on time */
    assert_int_equal(sp.n, 0);
    /* A long idle gap is not kept whole: the store counted it already. */
    spacing_slot_taken(&sp, keys, 1, 0, 500 * MS);
    assert_int_equal(spacing_slot_due(&sp, keys, 1, 10000 * MS), 10000 * MS);
    assert_int_equal(spacing_slot_due(&sp, keys, 1, 600 * MS), 500 * MS + 2 * T);
    spacing_cleanup(&sp);
}

static void
test_scopes_are_independent_and_each_binds(void **state)
{
    struct spacing sp = {0};
    const struct spacing_key a[] = {{"tenant-a", T}}, b[] = {{"tenant-b", T}};
    const struct spacing_key ab[] = {{"tenant-b", T}, {"site\ngmail", 2 * T}};
    const struct spacing_key site[] = {{"site\ngmail", 2 * T}};

    (void)state;
    spacing_slot_taken(&sp, a, 1, 0, 500 * MS); /* a is 500 ms late */
    assert_int_equal(spacing_slot_due(&sp, a, 1, T), 600 * MS);
    assert_int_equal(spacing_slot_due(&sp, b, 1, T), T); /* b is not */
    spacing_slot_taken(&sp, ab, 2, 0, 300 * MS); /* b and the site 300 ms late */
    assert_int_equal(spacing_slot_due(&sp, site, 1, 50 * MS), 350 * MS);
    assert_int_equal(spacing_slot_due(&sp, b, 1, 50 * MS), 350 * MS);
    /* The tightest binds: the site keeps its own (longer) interval. */
    assert_int_equal(spacing_slot_due(&sp, ab, 2, -T), 300 * MS + 2 * T);
    /* An older slot that leaves later does not pull the scope back, and
     * while late, an older slot's message still keeps T; the same slot (a
     * burst the store allowed) keeps none. */
    spacing_slot_taken(&sp, a, 1, -T, 700 * MS);
    assert_int_equal(spacing_slot_due(&sp, a, 1, T), 800 * MS);
    assert_int_equal(spacing_slot_due(&sp, a, 1, -2 * T), 800 * MS);
    assert_int_equal(spacing_slot_due(&sp, a, 1, 0), 700 * MS);
    spacing_cleanup(&sp);
    assert_null(sp.s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_on_time_slots_go_at_their_slot_bursts_included),
        cmocka_unit_test(test_late_slots_leave_an_interval_apart_not_together),
        cmocka_unit_test(test_a_late_burst_stays_a_burst_shifted),
        cmocka_unit_test(test_a_late_scope_catches_up_and_is_forgotten),
        cmocka_unit_test(test_scopes_are_independent_and_each_binds),
    };

    return cmocka_run_group_tests_name("core/spacing", tests, NULL, NULL);
}
