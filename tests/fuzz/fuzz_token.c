/*
 * fuzz_token.c - libFuzzer target for unsubscribe tokens.
 *
 * Any input verifies only if it is exactly a token made with one of the
 * keys; the three ids it yields are canonical lowercase UUIDs.  The first
 * 48 bytes of a long enough input also become three ids whose token must
 * verify back to them, and fail with any one character changed.  A
 * preview's token never verifies as a link's.
 */
#include <string.h>

#include "core/crypto.h"
#include "core/token.h"
#include "core/util.h"
#include "fuzz.h"

static const unsigned char keys[2][TOKEN_KEY_LEN] = {
    "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"};

static void
uuid_from(const uint8_t *b, char out[MC_UUID_LEN + 1])
{
    char h[33];

    crypto_hex(b, 16, h);
    snprintf(out, MC_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char t[MC_UUID_LEN + 1], c[MC_UUID_LEN + 1], r[MC_UUID_LEN + 1];
    char t2[MC_UUID_LEN + 1], c2[MC_UUID_LEN + 1], r2[MC_UUID_LEN + 1];
    char tok[TOKEN_LEN + 1], *in;

    if (size > 512)
        return 0;
    in = xstrndup((const char *)data, size);
    if (token_verify(keys, 2, in, t, c, r)) {
        CHECK(crypto_uuid_valid(t) && crypto_uuid_valid(c) && crypto_uuid_valid(r));
        token_make(keys[0], t, c, r, tok);
        if (strcmp(tok, in) != 0) {
            token_make(keys[1], t, c, r, tok);
            CHECK(strcmp(tok, in) == 0);
        }
    }
    /* A preview's token never also passes as a link's. */
    CHECK(!(token_is_preview(keys, 2, in) && token_verify(keys, 2, in, t, c, r)));
    free(in);
    if (size >= 49) {
        uuid_from(data, t);
        uuid_from(data + 16, c);
        uuid_from(data + 32, r);
        token_make(keys[data[48] & 1], t, c, r, tok);
        CHECK(strlen(tok) == TOKEN_LEN);
        CHECK(token_verify(keys, 2, tok, t2, c2, r2));
        CHECK(strcmp(t, t2) == 0 && strcmp(c, c2) == 0 && strcmp(r, r2) == 0);
        tok[data[48] % TOKEN_LEN] ^= 0x01; /* still base64url or not: must fail either way */
        CHECK(!token_verify(keys, 2, tok, t2, c2, r2));
    }
    return 0;
}
