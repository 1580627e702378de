/*
 * test_store_automation.c - automation's counting on both backends (issue
 * 15): the attempts per (egress, site) each group commit hands over, the
 * deferral-ratio trigger at its limits (too few attempts, exactly the
 * ratio, over it, a period that has passed, counting afresh after a
 * firing), what scale_rate and set_connections put in force, and the
 * pruning of old counts.  Every test runs on SQLite and on PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mctest.h"
#include "storefix.h"

#include "core/timeutil.h"
#include "store/store_int.h"

#define S(x) ((int64_t)(x) * 1000000LL)

/* Replaces the shaping document with one rule pacing every site and these automation rules. */
static void
put_autos(struct store *st, const struct shaping_auto *autos, int n, int64_t per_second)
{
    struct shaping_rule rule = {.egress = "default", .site = "*", .per_second = per_second};
    struct shaping sh = {.rules = &rule, .nrules = per_second > 0, .autos = (void *)autos,
                         .nautos = n};

    assert_int_equal(store_shaping_put(st, &sh), MC_ERR_OK);
}

/* Hands one batch's tally for site to the store; returns how many rules fired. */
static int
observe(struct store *st, const char *site, int64_t attempts, int64_t deferrals, int64_t now)
{
    struct shaping_tally t = {.egress = "default", .attempts = attempts, .deferrals = deferrals};
    struct shaping_obs o = {.egress = "default", .code = 451, .enhanced = "4.7.1",
                            .text = "try again later"};
    int fired = -1;

    snprintf(t.site, sizeof(t.site), "%s", site);
    snprintf(o.site, sizeof(o.site), "%s", site);
    assert_int_equal(store_shaping_observe(st, "default", &o, deferrals > 0, &t, 1, now, &fired),
                     MC_ERR_OK);
    return fired;
}

/* The state in force at now for (site, action), into *out; false when there is none. */
static bool
state_of(struct store *st, const char *site, const char *action, int64_t now,
         struct shaping_state *out)
{
    struct shaping_state *s = NULL;
    bool found = false;
    int n = 0;

    assert_int_equal(store_shaping_state_list(st, now, &s, &n), MC_ERR_OK);
    for (int i = 0; i < n && !found; i++)
        if (strcmp(s[i].site, site) == 0 && strcmp(s[i].action, action) == 0) {
            *out = s[i];
            found = true;
        }
    free(s);
    return found;
}

static const struct shaping_auto halve = {
    .egress = "default", .site = "*", .trigger_count = 1, .trigger_period_s = 600,
    .ratio_ppm = 300000, .min_attempts = 50, .action = "scale_rate", .factor_ppm = 500000,
    .duration_s = 60};

static void
test_ratio_needs_its_minimum_of_attempts(void **state)
{
    struct store *st = st_of(state);
    int64_t t0 = time_now_us();
    struct shaping_state s;

    put_autos(st, &halve, 1, 20);
    /* 49 attempts, all deferred: under the minimum, nothing fires. */
    assert_int_equal(observe(st, "few", 49, 49, t0), 0);
    assert_false(state_of(st, "few", "scale_rate", t0, &s));
    /* One more, accepted, in another batch: the counts add up, 49 of 50. */
    assert_int_equal(observe(st, "few", 1, 0, t0 + S(1)), 1);
    assert_true(state_of(st, "few", "scale_rate", t0 + S(1), &s));
    /* 20 a second is 1200 a minute: halved. */
    assert_int_equal(s.per_minute, 600);
    assert_int_equal(s.per_second, 0);
    assert_int_equal(s.attempts, 50);
    assert_int_equal(s.deferrals, 49);
    assert_int_equal(s.until, t0 + S(1) + S(60));
    /* The last deferral of the batch that fired it (none in that batch: no text). */
    assert_string_equal(s.last_reply, "");
    /* One row per second and site, not one per attempt. */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM shaping_attempts WHERE site = $1",
                               "few"),
                     2);
}

static void
test_ratio_exactly_at_the_limit_does_not_fire(void **state)
{
    struct store *st = st_of(state);
    int64_t t0 = time_now_us();
    struct shaping_state s;

    put_autos(st, &halve, 1, 20);
    /* 15 of 50 is exactly 30 %: not over it. */
    assert_int_equal(observe(st, "exact", 50, 15, t0), 0);
    assert_false(state_of(st, "exact", "scale_rate", t0, &s));
    /* 16 of 51 is over. */
    assert_int_equal(observe(st, "exact", 1, 1, t0 + S(2)), 1);
    assert_true(state_of(st, "exact", "scale_rate", t0 + S(2), &s));
    assert_int_equal(s.attempts, 51);
    assert_int_equal(s.deferrals, 16);
    assert_string_equal(s.last_reply, "451 4.7.1 try again later");
    /* Another site's counts are its own: 15 of 50 there too, nothing fires. */
    assert_int_equal(observe(st, "exact2", 50, 15, t0 + S(2)), 0);
    assert_false(state_of(st, "exact2", "scale_rate", t0 + S(2), &s));
}

static void
test_ratio_counts_only_its_period(void **state)
{
    struct store *st = st_of(state);
    int64_t t0 = time_now_us();
    struct shaping_state s;

    put_autos(st, &halve, 1, 20);
    assert_int_equal(observe(st, "gone", 40, 40, t0), 0);
    assert_int_equal(observe(st, "kept", 40, 40, t0), 0);
    /* 600 s later the first second has left the period; 599 s later it has not. */
    assert_int_equal(observe(st, "gone", 10, 10, t0 + S(600)), 0);
    assert_false(state_of(st, "gone", "scale_rate", t0 + S(600), &s));
    assert_int_equal(observe(st, "kept", 10, 10, t0 + S(599)), 1);
    assert_true(state_of(st, "kept", "scale_rate", t0 + S(599), &s));
    assert_int_equal(s.attempts, 50);
}

static void
test_ratio_counts_afresh_after_firing_and_halves_again(void **state)
{
    struct store *st = st_of(state);
    int64_t t0 = time_now_us();
    struct shaping_state s;

    put_autos(st, &halve, 1, 20);
    assert_int_equal(observe(st, "again", 50, 50, t0), 1);
    assert_true(state_of(st, "again", "scale_rate", t0, &s));
    assert_int_equal(s.per_minute, 600);
    /* The attempts before the firing count no more: 49 new ones are too few. */
    assert_int_equal(observe(st, "again", 49, 49, t0 + S(1)), 0);
    /* The 50th: fires again, halving the rate in force (600), extending it. */
    assert_int_equal(observe(st, "again", 1, 1, t0 + S(2)), 1);
    assert_true(state_of(st, "again", "scale_rate", t0 + S(2), &s));
    assert_int_equal(s.per_minute, 300);
    assert_int_equal(s.since, t0);
    assert_int_equal(s.until, t0 + S(2) + S(60));
    /* Expired: gone from the list; lifted: gone at once. */
    assert_false(state_of(st, "again", "scale_rate", t0 + S(63), &s));
    assert_int_equal(store_shaping_state_lift(st, s.id), MC_ERR_OK);
    assert_false(state_of(st, "again", "scale_rate", t0 + S(2), &s));
}

static void
test_scale_without_a_rule_uses_the_measured_rate(void **state)
{
    struct store *st = st_of(state);
    struct shaping_auto a = {.egress = "default", .site = "*", .match_code = 451,
                             .trigger_count = 1, .action = "scale_rate", .factor_ppm = 500000,
                             .duration_s = 30};
    int64_t t0 = time_now_us();
    struct shaping_state s;

    /*
     * No rate for any site: the rate is what arrived, over the seconds it
     * took, not over the whole minute: 120 in 2 s is 3,600 a minute (the
     * minute would have said 120), halved to 1,800.
     */
    put_autos(st, &a, 1, 0);
    assert_int_equal(observe(st, "norule", 119, 0, t0), 0);
    assert_int_equal(observe(st, "norule", 1, 1, t0 + S(1)), 1);
    assert_true(state_of(st, "norule", "scale_rate", t0 + S(1), &s));
    assert_int_equal(s.per_minute, 1800);
    /* A reply's trigger: no counts shown. */
    assert_int_equal(s.attempts, 0);
    assert_string_equal(s.last_reply, "451 4.7.1 try again later");
}

static void
test_set_connections_is_put_in_force(void **state)
{
    struct store *st = st_of(state);
    struct shaping_auto a[2] = {
        {.egress = "default", .site = "capped", .match_code = 451, .trigger_count = 1,
         .action = "set_connections", .max_connections = 1, .duration_s = 30},
        {.egress = "default", .site = "ratio", .trigger_count = 1, .trigger_period_s = 60,
         .ratio_ppm = 500000, .min_attempts = 10, .action = "set_connections",
         .max_connections = 2, .duration_s = 30}};
    int64_t t0 = time_now_us();
    struct shaping_state s;
    struct shaping got = {0};

    put_autos(st, a, 2, 0);
    /* The document keeps every field. */
    assert_int_equal(store_shaping_get(st, &got), MC_ERR_OK);
    assert_int_equal(got.nautos, 2);
    assert_int_equal(got.autos[0].max_connections, 1);
    assert_int_equal(got.autos[1].ratio_ppm, 500000);
    assert_int_equal(got.autos[1].min_attempts, 10);
    assert_int_equal(got.autos[1].trigger_period_s, 60);
    shaping_cleanup(&got);
    assert_int_equal(observe(st, "capped", 1, 1, t0), 1);
    assert_true(state_of(st, "capped", "set_connections", t0, &s));
    assert_int_equal(s.max_connections, 1);
    assert_int_equal(s.per_minute, 0);
    assert_string_equal(s.last_reply, "451 4.7.1 try again later");
    /* No rule counts the attempts at "capped": none are kept. */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM shaping_attempts WHERE site = $1",
                               "capped"),
                     0);
    /* 5 of 10 is not over a half; 6 of 11 is. */
    assert_int_equal(observe(st, "ratio", 10, 5, t0), 0);
    assert_int_equal(observe(st, "ratio", 1, 1, t0), 1);
    assert_true(state_of(st, "ratio", "set_connections", t0, &s));
    assert_int_equal(s.max_connections, 2);
    assert_int_equal(s.deferrals, 6);
    /* A set_connections holds no message: the claim reads it as neither hold nor rate. */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM shaping_state WHERE action = $1 AND "
                                   "per_second IS NULL AND per_minute IS NULL",
                               "set_connections"),
                     2);
}

static void
test_old_counts_are_pruned_and_a_new_document_counts_afresh(void **state)
{
    struct store *st = st_of(state);
    int64_t t0 = time_now_us();
    int n = 0;

    put_autos(st, &halve, 1, 20);
    assert_int_equal(observe(st, "old", 10, 1, t0), 0);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM shaping_attempts WHERE site = $1", "old"),
                     1);
    /* Past the longest ratio period (an hour) the lease sweep deletes them. */
    assert_int_equal(store_delivery_recover(st, t0 + S(3700), 5, &n), MC_ERR_OK);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM shaping_attempts WHERE site = $1", "old"),
                     0);
    assert_int_equal(observe(st, "old", 10, 1, t0), 0);
    put_autos(st, &halve, 1, 20);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM shaping_attempts WHERE site = $1", "old"),
                     0);
}

/* The fixture's store, migrated (the store tests' first test does it in test_store.c). */
static int
setup_sqlite_migrated(void **state)
{
    int applied = 0;

    if (setup_sqlite(state) != 0)
        return -1;
    return store_migrate(st_of(state), &applied) == MC_ERR_OK ? 0 : -1;
}

static int
setup_pg_migrated(void **state)
{
    int applied = 0;

    if (setup_pg(state) != 0)
        return -1;
    return store_migrate(st_of(state), &applied) == MC_ERR_OK ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratio_needs_its_minimum_of_attempts),
        cmocka_unit_test(test_ratio_exactly_at_the_limit_does_not_fire),
        cmocka_unit_test(test_ratio_counts_only_its_period),
        cmocka_unit_test(test_ratio_counts_afresh_after_firing_and_halves_again),
        cmocka_unit_test(test_scale_without_a_rule_uses_the_measured_rate),
        cmocka_unit_test(test_set_connections_is_put_in_force),
        cmocka_unit_test(test_old_counts_are_pruned_and_a_new_document_counts_afresh),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("store_automation/sqlite", tests,
                                          setup_sqlite_migrated, teardown);
    failed += cmocka_run_group_tests_name("store_automation/postgres", tests, setup_pg_migrated,
                                          teardown);
    return failed;
}
