/*
 * crypto.h - random bytes, ids, hashing and constant-time comparison, all
 * on OpenSSL's libcrypto.
 */
#ifndef MC_CRYPTO_H
#define MC_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define MC_UUID_LEN 36

/* Fills p with n cryptographically random bytes; aborts if the CSPRNG fails. */
void crypto_random(void *p, size_t n);
/* Writes a random (version 4) UUID, lowercase, NUL-terminated, into out[37]. */
void crypto_uuid(char out[MC_UUID_LEN + 1]);
/* Writes a time-ordered (version 7) UUID: later calls on one thread sort after
 * earlier ones.  For rows inserted in bulk. */
void crypto_uuid7(char out[MC_UUID_LEN + 1]);
/* True when s is a UUID in canonical 8-4-4-4-12 hex form (either case). */
bool crypto_uuid_valid(const char *s);
/* Lowercases a valid UUID in place. */
void crypto_uuid_lower(char *s);
/* The 16 bytes of a valid UUID (check it first with crypto_uuid_valid). */
void crypto_uuid_bytes(const char *id, unsigned char out[16]);
/* The canonical lowercase text of 16 UUID bytes into out[37]. */
void crypto_uuid_text(const unsigned char b[16], char out[MC_UUID_LEN + 1]);
/* SHA-256 of p[0..n) as 64 lowercase hex digits into out[65]. */
void crypto_sha256_hex(const void *p, size_t n, char out[65]);
/* HMAC-SHA256 of data[0..n) under key into out[32]; aborts if libcrypto fails. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                        unsigned char out[32]);
/* Lowercase hex of p[0..n) into out, which needs 2n+1 bytes. */
void crypto_hex(const void *p, size_t n, char *out);
/*
 * A lease owner's name for this process: prefix, the host name, the pid and
 * 8 random hex digits ("vm:1234:0a1b2c3d"), so a restarted process (same
 * pid reused) never takes over its predecessor's leases.
 */
void crypto_owner_name(const char *prefix, char *out, size_t n);
/*
 * Wipes secret bytes with OPENSSL_cleanse, which the compiler may not drop
 * as a dead store (a memset before free may be).  crypto_wipe_str wipes a
 * NUL-terminated string (NULL is a no-op).
 */
void crypto_wipe(void *p, size_t n);
void crypto_wipe_str(char *s);
/* Constant-time equality of two buffers of the same length n. */
bool crypto_equal(const void *a, const void *b, size_t n);

#endif
