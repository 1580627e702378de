/*
 * crypto.c - thin wrappers over libcrypto.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

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
 * HMAC-SHA256 (RFC 2104) over SHA-256 fetched once per process.  HMAC()
 * fetches its algorithms on every call, and so does EVP_MAC_init (the
 * digest, by name): either took most of the time of the three MACs each
 * delivered message needs (unsubscribe token, Message-ID, bounce ref).
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
/* Each thread's digest context, kept between calls (freed when the thread ends). */
static pthread_key_t sha256_ctx_key;

static void
sha256_ctx_free(void *p)
{
    EVP_MD_CTX_free(p);
}

static void
sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha256_ctx_key, sha256_ctx_free) != 0)
        sha256_md = NULL;
}

/* This thread's context; NULL when libcrypto has no SHA-256. */
static EVP_MD_CTX *
sha256_ctx(void)
{
    EVP_MD_CTX *ctx;

    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md == NULL)
        return NULL;
    if ((ctx = pthread_getspecific(sha256_ctx_key)) == NULL &&
        (ctx = EVP_MD_CTX_new()) != NULL && pthread_setspecific(sha256_ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

void
crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                   unsigned char out[32])
{
    unsigned char k[64] = {0}, pad[64], inner[32];
    unsigned int len = 0;
    EVP_MD_CTX *ctx;
    bool ok;

    if ((ctx = sha256_ctx()) == NULL) {
        fprintf(stderr, "mailcast: SHA-256 is not available from libcrypto\n");
        abort();
    }
    /* A key longer than the block is hashed first. */
    if (keylen > sizeof(k))
        ok = EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, keylen) == 1 && EVP_DigestFinal_ex(ctx, k, &len) == 1;
    else
        ok = (keylen == 0 || memcpy(k, key, keylen) != NULL);
    for (size_t i = 0; i < sizeof(k); i++)
        pad[i] = k[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 &&
         EVP_DigestUpdate(ctx, pad, sizeof(pad)) == 1 && EVP_DigestUpdate(ctx, data, n) == 1 &&
         EVP_DigestFinal_ex(ctx, inner, &len) == 1 && len == 32;
    for (size_t i = 0; i < sizeof(k); i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 &&
         EVP_DigestUpdate(ctx, pad, sizeof(pad)) == 1 &&
         EVP_DigestUpdate(ctx, inner, sizeof(inner)) == 1 &&
         EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == 32;
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok) {
        fprintf(stderr, "mailcast: HMAC-SHA256 failed\n");
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
 * Random bytes for version 7 ids, drawn from the generator 1 KiB at a time:
 * a draw costs about 3 us whatever its size, and every delivered message
 * makes an id for its event.  Ids need uniqueness, not secrecy; the pool is
 * per thread and refilled in a forked child, so no two processes share it:
 * a fork handler moves the generation on (a getpid() per id was a system
 * call each, 1 % of the delivering process).
 */
static atomic_uint uuid_fork_gen = 1;
static pthread_once_t uuid_fork_once = PTHREAD_ONCE_INIT;

static void
uuid_forked(void)
{
    atomic_fetch_add(&uuid_fork_gen, 1);
}

static void
uuid_fork_watch(void)
{
    pthread_atfork(NULL, NULL, uuid_forked);
}

static void
uuid_random(unsigned char *b, size_t n)
{
    static _Thread_local unsigned char pool[1024];
    static _Thread_local size_t left;
    static _Thread_local unsigned gen; /* the generation the pool was drawn in, 0: never */
    unsigned now;

    pthread_once(&uuid_fork_once, uuid_fork_watch);
    now = atomic_load_explicit(&uuid_fork_gen, memory_order_relaxed);
    if (left < n || gen != now) {
        crypto_random(pool, sizeof(pool));
        left = sizeof(pool);
        gen = now;
    }
    memcpy(b, pool + sizeof(pool) - left, n);
    left -= n;
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
    uuid_random(b, sizeof(b));
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
crypto_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

void
crypto_wipe_str(char *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, strlen(s));
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

void
crypto_owner_name(const char *prefix, char *out, size_t n)
{
    char host[64] = "host", hex[9];
    unsigned char rnd[4];

    gethostname(host, sizeof(host) - 1);
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    snprintf(out, n, "%s%.60s:%d:%s", prefix, host, (int)getpid(), hex);
}
