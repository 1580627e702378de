/*
 * dkim.h - DKIM (RFC 6376): key generation and sealing, and signing the
 * exact bytes that are sent, with libopendkim.
 *
 * Signatures are rsa-sha256, relaxed/relaxed, over From, To, Subject, Date,
 * Message-ID, MIME-Version, Content-Type, Reply-To, List-Unsubscribe and
 * List-Unsubscribe-Post (RFC 8058 §4 requires the last two).
 */
#ifndef MC_DKIM_H
#define MC_DKIM_H

#include <stddef.h>

#include "core/err.h"
#include "core/util.h"

#define DKIM_MIN_BITS 1024

/* Generates an RSA key: *pem (owned) the private key, *pub (owned) base64 DER for p=. */
mc_err dkim_key_generate(int bits, char **pem, char **pub);
/* Reads a PEM private key: *pub (owned) and *bits.  MC_ERR_INVALID unless RSA of 1024+ bits. */
mc_err dkim_key_from_pem(const char *pem, char **pub, int *bits);

/* AES-256-GCM under kek: base64 of nonce | tag | ciphertext (owned). */
char *dkim_seal(const unsigned char kek[32], const char *plain);
/* Opens what dkim_seal made; MC_ERR_INVALID when it was altered or the key is wrong. */
mc_err dkim_open(const unsigned char kek[32], const char *sealed, char **plain);

/* A signing context; one per thread. */
struct dkim_signer;
struct dkim_signer *dkim_signer_new(void);
void dkim_signer_free(struct dkim_signer *s);

/*
 * Appends a DKIM-Signature header and then msg (a complete CRLF message)
 * to out.  MC_ERR_INVALID when libopendkim refuses (a bad key: logged).
 */
mc_err dkim_sign_message(struct dkim_signer *s, const char *domain, const char *selector,
                         const char *pem, const char *msg, size_t len, struct buf *out);

#endif
