/*
 * email.h - address validation and normalisation, as RFC 5321/5322 allow in
 * practice for bulk mail.
 *
 * Accepted: a dot-atom local part (ASCII atext or UTF-8, at most 64 octets,
 * no leading, trailing or double dot), "@", and a domain of at least two
 * labels (letters, digits, inner hyphens, 1-63 octets each, at most 253 in
 * all).  An internationalised domain is converted to its ASCII (xn--) form
 * with libidn2.  The whole address is at most 254 octets.  Quoted local
 * parts, comments and address literals are refused: nobody subscribes to a
 * newsletter with them, and relays treat them inconsistently.
 */
#ifndef MC_EMAIL_H
#define MC_EMAIL_H

#include <stdbool.h>
#include <stddef.h>

#define EMAIL_MAX 254

/*
 * Validates in (surrounding blanks ignored) and writes the normalised
 * address (domain lowercased, ASCII form) into out and its lowercase twin,
 * the key for case-insensitive comparison, into lc.  Both need EMAIL_MAX+1
 * bytes.  On failure returns false and points *reason (may be NULL) at a
 * static explanation.
 */
bool email_normalize(const char *in, char out[EMAIL_MAX + 1], char lc[EMAIL_MAX + 1],
                     const char **reason);

/* True when the normalised address needs SMTPUTF8 (a non-ASCII local part). */
bool email_needs_utf8(const char *addr);

#endif
