/*
 * token.h - unsubscribe tokens: unforgeable, opaque, long-lived.
 *
 * A token names (tenant, campaign, recipient) and carries an HMAC-SHA256
 * over them with a server key; it holds no address.  It is base64url
 * without padding, 87 characters:
 *     version (1 byte) | tenant | campaign | recipient (16 bytes each) | MAC (16 bytes)
 * Verification tries every key it is given (the current one and those
 * rotated out) and compares MACs in constant time.
 */
#ifndef MC_TOKEN_H
#define MC_TOKEN_H

#include <stdbool.h>

#include "crypto.h"

#define TOKEN_KEY_LEN 32
#define TOKEN_LEN 87
/* The recipient a token names when it names none (a test send). */
#define TOKEN_NIL_ID "00000000-0000-0000-0000-000000000000"

/* Writes the token for the three ids (canonical UUIDs) into out[TOKEN_LEN + 1]. */
void token_make(const unsigned char key[TOKEN_KEY_LEN], const char *tenant_id,
                const char *campaign_id, const char *recipient_id, char out[TOKEN_LEN + 1]);

/*
 * Checks token against each of nkeys keys; on success writes the three ids
 * (lowercase UUIDs) and returns true.  Anything malformed, truncated or
 * tampered with returns false.
 */
bool token_verify(const unsigned char (*keys)[TOKEN_KEY_LEN], int nkeys, const char *token,
                  char tenant_id[MC_UUID_LEN + 1], char campaign_id[MC_UUID_LEN + 1],
                  char recipient_id[MC_UUID_LEN + 1]);

#endif
