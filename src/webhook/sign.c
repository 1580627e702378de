/*
 * sign.c - Standard Webhooks signatures and secrets.
 *
 * The signed content is "msg_id.timestamp.body"; the key is the secret's
 * base64 part after "whsec_", decoded.  Nothing here sends or stores.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/crypto.h"
#include "webhook.h"

#define SECRET_BYTES 24

char *
webhook_secret_new(void)
{
    unsigned char raw[SECRET_BYTES];
    char b64[4 * ((SECRET_BYTES + 2) / 3) + 1];
    char *out;

    crypto_random(raw, sizeof(raw));
    EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    out = xasprintf("%s%s", WEBHOOK_SECRET_PREFIX, b64);
    OPENSSL_cleanse(b64, sizeof(b64));
    return out;
}

/* Decodes standard base64 (with padding); -1 when malformed. */
static int
b64_decode(const char *in, unsigned char *out, size_t outmax)
{
    size_t n = strlen(in);
    int len, pad = 0;

    if (n == 0 || n % 4 != 0 || n / 4 * 3 > outmax)
        return -1;
    len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    pad = (in[n - 1] == '=') + (in[n - 2] == '=');
    return len - pad;
}

mc_err
webhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
             char out[WEBHOOK_SIG_LEN])
{
    unsigned char key[256], mac[32];
    char *msg;
    int klen;

    if (strncmp(secret, WEBHOOK_SECRET_PREFIX, strlen(WEBHOOK_SECRET_PREFIX)) == 0)
        secret += strlen(WEBHOOK_SECRET_PREFIX);
    if (strlen(secret) > 4 * sizeof(key) / 3 || (klen = b64_decode(secret, key, sizeof(key))) <= 0)
        return MC_ERR_INVALID;
    msg = xasprintf("%s.%" PRId64 ".%s", id, timestamp, body);
    crypto_hmac_sha256(key, (size_t)klen, msg, strlen(msg), mac);
    OPENSSL_cleanse(key, sizeof(key));
    free(msg);
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, sizeof(mac));
    return MC_ERR_OK;
}
