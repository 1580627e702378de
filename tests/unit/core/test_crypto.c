/*
 * test_crypto.c - ids, hashes and constant-time comparison.
 */
#include <string.h>

#include "mctest.h"

#include "core/crypto.h"

static void
test_uuid_shape_and_uniqueness(void **state)
{
    char a[MC_UUID_LEN + 1], b[MC_UUID_LEN + 1];

    (void)state;
    crypto_uuid(a);
    crypto_uuid(b);
    assert_int_equal(strlen(a), 36);
    assert_true(crypto_uuid_valid(a));
    assert_int_equal(a[14], '4');                   /* version 4 */
    assert_non_null(strchr("89ab", a[19]));         /* RFC 4122 variant */
    assert_string_not_equal(a, b);
}

static void
test_uuid_valid(void **state)
{
    char up[] = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";

    (void)state;
    assert_true(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c3301"));
    assert_true(crypto_uuid_valid(up));
    crypto_uuid_lower(up);
    assert_string_equal(up, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_false(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c330"));
    assert_false(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c33011"));
    assert_false(crypto_uuid_valid("3f2504e0x4f89-41d3-9a0c-0305e82c3301"));
    assert_false(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c330g"));
    assert_false(crypto_uuid_valid("' OR 1=1 --"));
}

static void
test_sha256_known_vector(void **state)
{
    char h[65];

    (void)state;
    crypto_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_equal(void **state)
{
    (void)state;
    assert_true(crypto_equal("abcdef", "abcdef", 6));
    assert_false(crypto_equal("abcdef", "abcdeg", 6));
    assert_false(crypto_equal("xbcdef", "abcdef", 6));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_shape_and_uniqueness),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_sha256_known_vector),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests_name("core/crypto", tests, NULL, NULL);
}
