/*
 * crypto.c - thin wrappers over libcrypto.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto.h"

void
crypto_random(void *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1) {
        fprintf(stderr, "mailcast: the system random generator failed\n");
        abort();
    }
}

/*
 * HMAC-SHA256 with the algorithm fetched once per process: HMAC() fetches
 * it on every call, which took most of the time of the two MACs each
 * delivered message needs (unsubscribe token, Message-ID).
 */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void
hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

void
crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                   unsigned char out[32])
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                            (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx;
    size_t len = 0;

    pthread_once(&hmac_once, hmac_fetch);
    if (hmac_alg == NULL || (ctx = EVP_MAC_CTX_new(hmac_alg)) == NULL) {
        fprintf(stderr, "mailcast: HMAC-SHA256 is not available from libcrypto\n");
        abort();
    }
    if (EVP_MAC_init(ctx, key, keylen, params) != 1 || EVP_MAC_update(ctx, data, n) != 1 ||
        EVP_MAC_final(ctx, out, &len, 32) != 1 || len != 32) {
        fprintf(stderr, "mailcast: HMAC-SHA256 failed\n");
        abort();
    }
    EVP_MAC_CTX_free(ctx);
}

void
crypto_hex(const void *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The canonical 8-4-4-4-12 lowercase form of the 16 bytes b. */
static void
uuid_format(const unsigned char b[16], char out[MC_UUID_LEN + 1])
{
    char h[33];

    crypto_hex(b, 16, h);
    snprintf(out, MC_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16,
             h + 20);
}

void
crypto_uuid(char out[MC_UUID_LEN + 1])
{
    unsigned char b[16];

    crypto_random(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_format(b, out);
}

/*
 * Version 7 (RFC 9562 5.7): 48 bits of Unix milliseconds, then 12 bits that
 * count up within a millisecond on this thread (method 3 of section 6.2,
 * seeded at random each new millisecond), then 62 random bits.  Ids made in
 * a row sort in the order they were made, so bulk inserts append to the
 * primary-key index instead of landing on a random page of it.
 */
void
crypto_uuid7(char out[MC_UUID_LEN + 1])
{
    static _Thread_local uint64_t last_ms;
    static _Thread_local unsigned seq;
    struct timespec ts;
    unsigned char b[16];
    uint64_t ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    crypto_random(b, sizeof(b));
    if (ms > last_ms) {
        last_ms = ms;
        seq = ((unsigned)b[6] << 8 | b[7]) & 0x3ff;  /* leave room to count */
    } else if (++seq > 0xfff) {
        last_ms++;                 /* clock stood still or stepped back */
        seq = 0;
    }
    ms = last_ms;
    for (int i = 5; i >= 0; i--) {
        b[i] = (unsigned char)(ms & 0xff);
        ms >>= 8;
    }
    b[6] = (unsigned char)(0x70 | (seq >> 8));
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_format(b, out);
}

bool
crypto_uuid_valid(const char *s)
{
    for (int i = 0; i < MC_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i]))
            return false;
    }
    return s[MC_UUID_LEN] == '\0';
}

void
crypto_uuid_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

void
crypto_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;

    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        abort();
    crypto_hex(md, 32, out);
}

bool
crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void
crypto_uuid_bytes(const char *id, unsigned char out[16])
{
    int n = 0;

    for (const char *p = id; *p && n < 32; p++) {
        int v;
        if (*p == '-')
            continue;
        v = (*p >= '0' && *p <= '9') ? *p - '0' : ((*p | 0x20) - 'a' + 10);
        if (n % 2 == 0)
            out[n / 2] = (unsigned char)(v << 4);
        else
            out[n / 2] |= (unsigned char)v;
        n++;
    }
}

void
crypto_uuid_text(const unsigned char b[16], char out[MC_UUID_LEN + 1])
{
    char h[33];

    crypto_hex(b, 16, h);
    memcpy(out, h, 8);
    out[8] = '-';
    memcpy(out + 9, h + 8, 4);
    out[13] = '-';
    memcpy(out + 14, h + 12, 4);
    out[18] = '-';
    memcpy(out + 19, h + 16, 4);
    out[23] = '-';
    memcpy(out + 24, h + 20, 12);
    out[36] = '\0';
}
