/*
 * ref.h - the signed reference a sent message carries so that a report
 * about it can name it: in the VERP envelope sender
 * ("mcb-<ref>@bounce.example.com") and in the X-Mailcast-Ref header.
 *
 * A reference is the message's id (16 bytes) and the first 10 bytes of
 * HMAC-SHA256("bounce" | id) under the unsubscribe-link key set, in
 * lowercase RFC 4648 base32 without padding: 42 characters that survive an
 * MTA lowercasing the local part.  Verification tries every key given (the
 * current one and the one rotated out), in constant time.  It does not
 * know tenants or the database: the message id it yields decides that.
 */
#ifndef MC_BOUNCE_REF_H
#define MC_BOUNCE_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/crypto.h"

#define BOUNCE_REF_LEN 42
#define BOUNCE_REF_PREFIX "mcb-"
#define BOUNCE_REF_HEADER "X-Mailcast-Ref"
#define BOUNCE_REF_KEY_LEN 32

/* Writes the reference of message_id (a canonical UUID) into out[BOUNCE_REF_LEN + 1]. */
void bounce_ref_make(const unsigned char key[BOUNCE_REF_KEY_LEN], const char *message_id,
                     char out[BOUNCE_REF_LEN + 1]);

/*
 * Checks ref (exactly BOUNCE_REF_LEN base32 characters, any case) against
 * each of nkeys keys; on success writes the message id (lowercase UUID)
 * and returns true.  Anything malformed or altered returns false.
 */
bool bounce_ref_verify(const unsigned char (*keys)[BOUNCE_REF_KEY_LEN], int nkeys, const char *ref,
                       char message_id[MC_UUID_LEN + 1]);

/*
 * The reference in a VERP address: "mcb-<ref>@domain" (any case) gives
 * ref, lowercased, in out; false when addr is not of that form.  The
 * domain is not checked here.
 */
bool bounce_ref_from_address(const char *addr, char out[BOUNCE_REF_LEN + 1]);

#endif
