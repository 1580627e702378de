/*
 * test_token.c - unsubscribe tokens: round trip, every tampering refused,
 * rotated keys still accepted.
 */
#include <string.h>

#include "mctest.h"

#include "core/token.h"

static const char T[] = "11111111-2222-4333-8444-555555555555";
static const char C[] = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
static const char R[] = "01234567-89ab-4cde-8f01-23456789abcd";

static void
test_roundtrip(void **state)
{
    unsigned char keys[1][TOKEN_KEY_LEN];
    char tok[TOKEN_LEN + 1], t[37], c[37], r[37];

    (void)state;
    crypto_random(keys[0], TOKEN_KEY_LEN);
    token_make(keys[0], T, C, R, tok);
    assert_int_equal(strlen(tok), TOKEN_LEN);
    assert_null(strpbrk(tok, "+/=@."));
    assert_null(strstr(tok, "@")); /* no address, no ids in clear */
    assert_true(token_verify((const unsigned char(*)[TOKEN_KEY_LEN])keys, 1, tok, t, c, r));
    assert_string_equal(t, T);
    assert_string_equal(c, C);
    assert_string_equal(r, R);
}

static void
test_tampering_refused(void **state)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char keys[1][TOKEN_KEY_LEN];
    char tok[TOKEN_LEN + 1], bad[TOKEN_LEN + 2], t[37], c[37], r[37];
    const unsigned char(*k)[TOKEN_KEY_LEN] = (const unsigned char(*)[TOKEN_KEY_LEN])keys;

    (void)state;
    crypto_random(keys[0], TOKEN_KEY_LEN);
    token_make(keys[0], T, C, R, tok);
    /* Every single-character change anywhere is refused. */
    for (int i = 0; i < TOKEN_LEN; i++) {
        for (int a = 0; a < 64; a++) {
            if (alphabet[a] == tok[i])
                continue;
            memcpy(bad, tok, sizeof(tok));
            bad[i] = alphabet[a];
            if (token_verify(k, 1, bad, t, c, r))
                fail_msg("accepted a change at %d to %c", i, alphabet[a]);
        }
    }
    assert_false(token_verify(k, 1, "", t, c, r));
    memcpy(bad, tok, sizeof(tok));
    bad[TOKEN_LEN - 1] = '\0';
    assert_false(token_verify(k, 1, bad, t, c, r)); /* truncated */
    memcpy(bad, tok, sizeof(tok));
    bad[TOKEN_LEN] = 'A';
    bad[TOKEN_LEN + 1] = '\0';
    assert_false(token_verify(k, 1, bad, t, c, r)); /* extended */
    memcpy(bad, tok, sizeof(tok));
    bad[5] = '+';
    assert_false(token_verify(k, 1, bad, t, c, r)); /* not base64url */
}

static void
test_rotation(void **state)
{
    unsigned char keys[2][TOKEN_KEY_LEN];
    char tok[TOKEN_LEN + 1], t[37], c[37], r[37];
    const unsigned char(*k)[TOKEN_KEY_LEN] = (const unsigned char(*)[TOKEN_KEY_LEN])keys;

    (void)state;
    crypto_random(keys[0], TOKEN_KEY_LEN);
    crypto_random(keys[1], TOKEN_KEY_LEN);
    token_make(keys[1], T, C, R, tok); /* signed with the previous key */
    assert_false(token_verify(k, 1, tok, t, c, r));
    assert_true(token_verify(k, 2, tok, t, c, r));
    assert_string_equal(r, R);
}

/* Issue 12 finding 3: a preview's token looks alike and never passes as a link's. */
static void
test_preview_tokens_are_not_links(void **state)
{
    unsigned char keys[1][TOKEN_KEY_LEN];
    char tok[TOKEN_LEN + 1], link[TOKEN_LEN + 1], t[MC_UUID_LEN + 1], c[MC_UUID_LEN + 1],
        r[MC_UUID_LEN + 1];

    (void)state;
    crypto_random(keys[0], TOKEN_KEY_LEN);
    token_make_preview(keys[0], T, C, R, tok);
    token_make(keys[0], T, C, R, link);
    assert_int_equal(strlen(tok), TOKEN_LEN);
    assert_string_not_equal(tok, link);
    assert_false(token_verify((const unsigned char(*)[TOKEN_KEY_LEN])keys, 1, tok, t, c, r));
    assert_true(token_is_preview((const unsigned char(*)[TOKEN_KEY_LEN])keys, 1, tok));
    assert_false(token_is_preview((const unsigned char(*)[TOKEN_KEY_LEN])keys, 1, link));
    /* The version byte is the first 6 bits of the first character: 'A' + 0, 'A' + 1 ("AQ"/"Ag"). */
    tok[1] = link[1];
    assert_false(token_verify((const unsigned char(*)[TOKEN_KEY_LEN])keys, 1, tok, t, c, r));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_tampering_refused),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_preview_tokens_are_not_links),
    };
    return cmocka_run_group_tests_name("core/token", tests, NULL, NULL);
}
