/*
 * dkim.c - DKIM keys and signatures (see dkim.h).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <opendkim/dkim.h>

#include "core/log.h"
#include "dkim.h"

#define NONCE 12
#define TAG 16

struct dkim_signer {
    DKIM_LIB *lib;
};

static char *
b64(const unsigned char *p, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static unsigned char *
unb64(const char *s, size_t *n)
{
    size_t len = strlen(s);
    unsigned char *out = xmalloc(3 * (len / 4) + 3);
    int r;

    if (len % 4 != 0)
        goto bad;
    r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (r < 0)
        goto bad;
    /* EVP_DecodeBlock counts padding as data. */
    if (len >= 1 && s[len - 1] == '=')
        r--;
    if (len >= 2 && s[len - 2] == '=')
        r--;
    *n = (size_t)r;
    return out;
bad:
    free(out);
    return NULL;
}

static char *
public_b64(EVP_PKEY *k)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    char *out;

    if (n <= 0)
        return NULL;
    out = b64(der, (size_t)n);
    OPENSSL_free(der);
    return out;
}

static char *
private_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    long n;

    if (bio && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1) {
        n = BIO_get_mem_data(bio, &data);
        out = xstrndup(data, (size_t)n);
    }
    BIO_free(bio);
    return out;
}

mc_err
dkim_key_generate(int bits, char **pem, char **pub)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);

    if (k == NULL)
        return MC_ERR_INTERNAL;
    *pem = private_pem(k);
    *pub = public_b64(k);
    EVP_PKEY_free(k);
    if (*pem == NULL || *pub == NULL) {
        free(*pem);
        free(*pub);
        return MC_ERR_INTERNAL;
    }
    return MC_ERR_OK;
}

/* An encrypted key is refused: without this, OpenSSL would ask a terminal for a pass phrase. */
static int
no_pass_phrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* True when the private and public halves belong together (a damaged key does not). */
static bool
key_consistent(EVP_PKEY *k)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    bool ok = ctx != NULL && EVP_PKEY_check(ctx) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

mc_err
dkim_key_from_pem(const char *pem, char **pub, int *bits)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_pass_phrase, NULL) : NULL;
    mc_err err = MC_ERR_INVALID;

    if (k && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) >= DKIM_MIN_BITS &&
        key_consistent(k)) {
        *bits = EVP_PKEY_get_bits(k);
        *pub = public_b64(k);
        err = *pub ? MC_ERR_OK : MC_ERR_INTERNAL;
    }
    EVP_PKEY_free(k);
    BIO_free(bio);
    return err;
}

char *
dkim_seal(const unsigned char kek[32], const char *plain)
{
    size_t n = strlen(plain);
    unsigned char *buf = xmalloc(NONCE + TAG + n);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    char *out = NULL;

    if (ctx == NULL || RAND_bytes(buf, NONCE) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kek, buf) != 1 ||
        EVP_EncryptUpdate(ctx, buf + NONCE + TAG, &len, (const unsigned char *)plain, (int)n) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + NONCE + TAG + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, buf + NONCE) != 1)
        abort(); /* nothing here fails but a broken libcrypto */
    out = b64(buf, NONCE + TAG + n);
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    return out;
}

mc_err
dkim_open(const unsigned char kek[32], const char *sealed, char **plain)
{
    size_t n = 0;
    unsigned char *buf = unb64(sealed, &n);
    EVP_CIPHER_CTX *ctx = NULL;
    char *out = NULL;
    int len = 0, fin = 0;
    mc_err err = MC_ERR_INVALID;

    if (buf == NULL || n < NONCE + TAG)
        goto out;
    out = xmalloc(n - NONCE - TAG + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kek, buf) == 1 &&
        EVP_DecryptUpdate(ctx, (unsigned char *)out, &len, buf + NONCE + TAG,
                          (int)(n - NONCE - TAG)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, buf + NONCE) == 1 &&
        EVP_DecryptFinal_ex(ctx, (unsigned char *)out + len, &fin) == 1) {
        out[len + fin] = '\0';
        *plain = out;
        out = NULL;
        err = MC_ERR_OK;
    }
out:
    EVP_CIPHER_CTX_free(ctx);
    free(out);
    free(buf);
    return err;
}

struct dkim_signer *
dkim_signer_new(void)
{
    static const char *const hdrs[] = {"from",          "to",          "subject",
                                       "date",          "message-id",  "mime-version",
                                       "content-type",  "reply-to",    "list-unsubscribe",
                                       "list-unsubscribe-post", "x-mailcast-ref", NULL};
    struct dkim_signer *s = xcalloc(1, sizeof(*s));

    s->lib = dkim_init(NULL, NULL);
    if (s->lib == NULL) {
        free(s);
        return NULL;
    }
    /* Every signed header is signed once more than it occurs (RFC 6376 8.15): a
     * second From, Subject, List-Unsubscribe or reference added on the way breaks
     * the signature instead of being shown to the reader or to a bounce parser
     * (one absent, such as Reply-To, is signed as absent). */
    static const char *const *const over = hdrs;
    /* The length is that of the pointer, not of the array: with sizeof(hdrs) the call
     * fails (DKIM_STAT_INVALID) and the library's default list is signed instead. */
    if (dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)hdrs, sizeof(char **)) !=
            DKIM_STAT_OK ||
        dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, (void *)over,
                     sizeof(char **)) != DKIM_STAT_OK) {
        log_error("event=dkim error=\"cannot set the signed header list\"");
        dkim_close(s->lib);
        free(s);
        return NULL;
    }
    return s;
}

void
dkim_signer_free(struct dkim_signer *s)
{
    if (s == NULL)
        return;
    dkim_close(s->lib);
    free(s);
}

mc_err
dkim_sign_message(struct dkim_signer *s, const char *domain, const char *selector,
                  const char *pem, const char *msg, size_t len, struct buf *out)
{
    DKIM_STAT st = DKIM_STAT_OK;
    u_char *hdr = NULL;
    size_t hlen = 0;
    DKIM *dk;
    mc_err err = MC_ERR_INVALID;

    dk = dkim_sign(s->lib, (const unsigned char *)"mailcast", NULL, (dkim_sigkey_t)pem,
                   (const unsigned char *)selector, (const unsigned char *)domain,
                   DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    if (dk == NULL)
        goto out;
    if ((st = dkim_chunk(dk, (u_char *)msg, len)) != DKIM_STAT_OK ||
        (st = dkim_chunk(dk, NULL, 0)) != DKIM_STAT_OK || (st = dkim_eom(dk, NULL)) != DKIM_STAT_OK ||
        (st = dkim_getsighdr_d(dk, strlen("DKIM-Signature: "), &hdr, &hlen)) != DKIM_STAT_OK)
        goto out;
    buf_puts(out, "DKIM-Signature: ");
    /* The library folds with bare LF: a message carries CRLF only. */
    for (size_t i = 0; i < hlen; i++) {
        if (hdr[i] == '\r')
            continue;
        if (hdr[i] == '\n')
            buf_putc(out, '\r');
        buf_putc(out, (char)hdr[i]);
    }
    buf_puts(out, "\r\n");
    buf_append(out, msg, len);
    err = out->err;
out:
    if (err != MC_ERR_OK && out->err == MC_ERR_OK)
        log_error("event=dkim error=\"cannot sign: %s\" domain=%s selector=%s",
                  dk ? dkim_geterror(dk) ? dkim_geterror(dk) : dkim_getresultstr(st)
                     : dkim_getresultstr(st),
                  domain, selector);
    if (dk)
        dkim_free(dk);
    return err;
}
