/*
 * token.c - unsubscribe tokens (see token.h).
 */
#include <string.h>

#include "crypto.h"
#include "token.h"

#define RAW_LEN (1 + 16 * 3 + 16)
#define MAC_LEN 16
#define VERSION 1

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
mac(const unsigned char key[TOKEN_KEY_LEN], const unsigned char *data, size_t n,
    unsigned char out[MAC_LEN])
{
    unsigned char md[32];

    crypto_hmac_sha256(key, TOKEN_KEY_LEN, data, n, md);
    memcpy(out, md, MAC_LEN);
}

void
token_make(const unsigned char key[TOKEN_KEY_LEN], const char *tenant_id,
           const char *campaign_id, const char *recipient_id, char out[TOKEN_LEN + 1])
{
    unsigned char raw[RAW_LEN];
    size_t o = 0;

    raw[0] = VERSION;
    crypto_uuid_bytes(tenant_id, raw + 1);
    crypto_uuid_bytes(campaign_id, raw + 17);
    crypto_uuid_bytes(recipient_id, raw + 33);
    mac(key, raw, 49, raw + 49);
    for (size_t i = 0; i < RAW_LEN; i += 3) {
        unsigned v = (unsigned)raw[i] << 16;
        size_t n = RAW_LEN - i < 3 ? RAW_LEN - i : 3;
        if (n > 1)
            v |= (unsigned)raw[i + 1] << 8;
        if (n > 2)
            v |= raw[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (n > 1)
            out[o++] = b64[(v >> 6) & 63];
        if (n > 2)
            out[o++] = b64[v & 63];
    }
    out[o] = '\0';
}

static int
b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;

    return p ? (int)(p - b64) : -1;
}

bool
token_verify(const unsigned char (*keys)[TOKEN_KEY_LEN], int nkeys, const char *token,
             char tenant_id[MC_UUID_LEN + 1], char campaign_id[MC_UUID_LEN + 1],
             char recipient_id[MC_UUID_LEN + 1])
{
    unsigned char raw[RAW_LEN + 2], want[MAC_LEN];
    size_t o = 0;
    bool ok = false;

    if (token == NULL || strlen(token) != TOKEN_LEN)
        return false;
    for (size_t i = 0; i < TOKEN_LEN; i += 4) {
        size_t n = TOKEN_LEN - i < 4 ? TOKEN_LEN - i : 4;
        unsigned v = 0;
        for (size_t k = 0; k < 4; k++) {
            int x = k < n ? b64val(token[i + k]) : 0;
            if (x < 0)
                return false;
            v = (v << 6) | (unsigned)x;
        }
        /* Only the canonical spelling: unused low bits must be zero. */
        if ((n == 3 && (v & 0xff) != 0) || n == 2 || n == 1)
            return false;
        raw[o++] = (unsigned char)(v >> 16);
        if (n > 2)
            raw[o++] = (unsigned char)(v >> 8);
        if (n > 3)
            raw[o++] = (unsigned char)v;
    }
    if (o != RAW_LEN || raw[0] != VERSION)
        return false;
    /* Every key is tried, so the time taken does not say which one matched. */
    for (int k = 0; k < nkeys; k++) {
        mac(keys[k], raw, 49, want);
        ok |= crypto_equal(want, raw + 49, MAC_LEN);
    }
    if (!ok)
        return false;
    crypto_uuid_text(raw + 1, tenant_id);
    crypto_uuid_text(raw + 17, campaign_id);
    crypto_uuid_text(raw + 33, recipient_id);
    return true;
}
