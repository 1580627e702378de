/*
 * crypto.c - thin wrappers over libcrypto.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void
crypto_uuid(char out[MC_UUID_LEN + 1])
{
    unsigned char b[16];
    char h[33];

    crypto_random(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    crypto_hex(b, sizeof(b), h);
    snprintf(out, MC_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16,
             h + 20);
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
    char h[33];

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
    crypto_hex(b, sizeof(b), h);
    snprintf(out, MC_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16,
             h + 20);
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
