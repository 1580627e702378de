/*
 * test_ref.c - signed message references: round trip in any case, every
 * alteration refused, the rotated key still accepted, VERP addresses.
 */
#include <stdio.h>
#include <string.h>

#include "mctest.h"

#include "bounce/ref.h"

static const char M[] = "0190f3a2-7b4c-7def-8123-456789abcdef";

static void
test_roundtrip_any_case(void **state)
{
    unsigned char keys[1][BOUNCE_REF_KEY_LEN];
    char ref[BOUNCE_REF_LEN + 1], up[BOUNCE_REF_LEN + 1], id[MC_UUID_LEN + 1];
    const unsigned char(*k)[BOUNCE_REF_KEY_LEN] = (const unsigned char(*)[BOUNCE_REF_KEY_LEN])keys;

    (void)state;
    crypto_random(keys[0], BOUNCE_REF_KEY_LEN);
    bounce_ref_make(keys[0], M, ref);
    assert_int_equal(strlen(ref), BOUNCE_REF_LEN);
    for (int i = 0; ref[i]; i++)
        assert_true((ref[i] >= 'a' && ref[i] <= 'z') || (ref[i] >= '2' && ref[i] <= '7'));
    assert_true(bounce_ref_verify(k, 1, ref, id));
    assert_string_equal(id, M);
    /* MTAs may uppercase or lowercase a local part. */
    for (int i = 0; i <= BOUNCE_REF_LEN; i++)
        up[i] = (ref[i] >= 'a' && ref[i] <= 'z') ? (char)(ref[i] - 32) : ref[i];
    assert_true(bounce_ref_verify(k, 1, up, id));
}

static void
test_alterations_refused(void **state)
{
    unsigned char keys[2][BOUNCE_REF_KEY_LEN];
    char ref[BOUNCE_REF_LEN + 1], bad[BOUNCE_REF_LEN + 2], id[MC_UUID_LEN + 1];
    const unsigned char(*k)[BOUNCE_REF_KEY_LEN] = (const unsigned char(*)[BOUNCE_REF_KEY_LEN])keys;

    (void)state;
    crypto_random(keys[0], BOUNCE_REF_KEY_LEN);
    crypto_random(keys[1], BOUNCE_REF_KEY_LEN);
    bounce_ref_make(keys[0], M, ref);
    for (int i = 0; i < BOUNCE_REF_LEN; i++) {
        memcpy(bad, ref, sizeof(ref));
        bad[i] = bad[i] == 'a' ? 'b' : 'a';
        assert_false(bounce_ref_verify(k, 1, bad, id));
    }
    memcpy(bad, ref, sizeof(ref));
    bad[BOUNCE_REF_LEN - 1] = '\0';
    assert_false(bounce_ref_verify(k, 1, bad, id)); /* truncated */
    memcpy(bad, ref, sizeof(ref));
    bad[BOUNCE_REF_LEN] = 'a';
    bad[BOUNCE_REF_LEN + 1] = '\0';
    assert_false(bounce_ref_verify(k, 1, bad, id)); /* too long */
    assert_false(bounce_ref_verify(k, 1, "", id));
    assert_false(bounce_ref_verify(k, 1, NULL, id));
    /* Signed with the previous key: refused with only the new one, accepted with both. */
    bounce_ref_make(keys[1], M, ref);
    assert_false(bounce_ref_verify(k, 1, ref, id));
    assert_true(bounce_ref_verify(k, 2, ref, id));
    assert_string_equal(id, M);
}

static void
test_address(void **state)
{
    char ref[BOUNCE_REF_LEN + 1], out[BOUNCE_REF_LEN + 1], addr[128];
    unsigned char key[BOUNCE_REF_KEY_LEN];

    (void)state;
    crypto_random(key, BOUNCE_REF_KEY_LEN);
    bounce_ref_make(key, M, ref);
    snprintf(addr, sizeof(addr), "MCB-%s@Bounces.Example.com", ref);
    assert_true(bounce_ref_from_address(addr, out));
    assert_string_equal(out, ref);
    snprintf(addr, sizeof(addr), "<mcb-%s@bounces.example.com>", ref);
    assert_true(bounce_ref_from_address(addr, out));
    snprintf(addr, sizeof(addr), "mcb-%sx@bounces.example.com", ref);
    assert_false(bounce_ref_from_address(addr, out));
    assert_false(bounce_ref_from_address("postmaster@example.com", out));
    assert_false(bounce_ref_from_address("mcb-short@example.com", out));
    assert_false(bounce_ref_from_address(NULL, out));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_any_case),
        cmocka_unit_test(test_alterations_refused),
        cmocka_unit_test(test_address),
    };
    return cmocka_run_group_tests_name("bounce/ref", tests, NULL, NULL);
}
