/*
 * reply.h - the SMTP reply parser (RFC 5321 §4.2, enhanced status codes of
 * RFC 2034/3463), the relay's queue id in a reply to end of data, and the
 * extensions an EHLO reply advertises.
 *
 * The parser is fed one line at a time (the client's line reader owns the
 * socket and the line length limit) and does no I/O and no allocation
 * beyond its bounded text buffer.  It never trusts the peer: a malformed
 * line is SMTP_PARSE_ERROR, over-long text is truncated, and control
 * characters in the text become '?' so the text is safe to log and store.
 */
#ifndef MC_SMTP_REPLY_H
#define MC_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* One reply, embedded in its owner; smtp_reply_init/smtp_reply_cleanup. */
struct smtp_reply {
    int code;          /* 3 digits, 0 until the first line is parsed */
    char enhanced[16]; /* "5.1.1" when the reply carries an enhanced status code, else "" */
    struct buf text;   /* owned: the text of every line (after "NNN-"/"NNN " and after the
                        * enhanced code, if any), joined by "\n"; bounded by max_text;
                        * text.data is a C string from init to cleanup */
    bool truncated;    /* text was cut at max_text */
    /* Parser state: private. */
    size_t max_text;
    unsigned lines;
    int state;
};

/* Sets up an empty reply whose text keeps at most max_text bytes (0: no limit). */
void smtp_reply_init(struct smtp_reply *r, size_t max_text);
/* Empties r for the next reply; keeps its memory and limit. */
void smtp_reply_reset(struct smtp_reply *r);
/* Frees what r owns; r can be initialised again. */
void smtp_reply_cleanup(struct smtp_reply *r);

enum smtp_parse { SMTP_PARSE_MORE, SMTP_PARSE_DONE, SMTP_PARSE_ERROR };

/*
 * Feeds one line of a reply (without CRLF; one trailing CR is ignored).
 * A line is three digits (the first 2-5) then "-" and text (more lines
 * follow), or " " and text, or nothing (the last line; a bare "250" is
 * valid).  Every line must carry the code of the first.  Returns
 * SMTP_PARSE_MORE after a continuation line, SMTP_PARSE_DONE after the last
 * line, and SMTP_PARSE_ERROR on anything else; an error is sticky, and so
 * is DONE: feeding a finished reply is an error until smtp_reply_reset.
 * Text beyond max_text is truncated (r->truncated), not an error.
 *
 * An enhanced status code ("2.1.5") at the start of a line's text is
 * recognised when its class equals the reply code's first digit; it is
 * removed from the text, and the first one found is kept in r->enhanced.
 */
enum smtp_parse smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);

/*
 * Extracts the relay's queue id from a complete 2xx reply to end of data:
 *   Postfix   "250 2.0.0 Ok: queued as 4ZxYv1"      -> 4ZxYv1
 *   generic   "... queued as <X>" or "queued as X"  -> X
 *   Exim      "250 OK id=1u2v3w-000abc-Xy"          -> 1u2v3w-000abc-Xy
 *   Sendmail  "250 2.0.0 5BCDE123 Message accepted for delivery" -> 5BCDE123
 * An unbracketed id is a run of letters, digits and "._@-" (trailing dots
 * dropped); a bracketed one any printable ASCII up to ">".  Copies at most
 * n-1 bytes and a NUL into out (n > 0).  Returns false, leaving out
 * untouched, when the reply is incomplete, not 2xx, or names no id.
 */
bool smtp_reply_queue_id(const struct smtp_reply *r, char *out, size_t n);

/*
 * The class of a complete reply: 2 success, 3 intermediate (354 to DATA),
 * 4 transient, 5 permanent; 0 while the reply is incomplete or invalid.
 */
int smtp_reply_class(const struct smtp_reply *r);

/* What an EHLO reply advertises. */
struct smtp_ext {
    bool pipelining, starttls, eightbitmime, smtputf8, enhancedstatuscodes, dsn;
    bool auth_plain, auth_login;
    int64_t size; /* SIZE limit in octets; 0 when unknown, unadvertised or "no limit" */
};

/*
 * Reads the extensions from a complete 2xx EHLO reply (every line after
 * the first; keywords case-insensitive; "AUTH mech..." and the old
 * "AUTH=mech..." form; "SIZE" with an optional number).  Always fills
 * *out: all false and 0 for anything else.  A line cut by truncation is
 * ignored rather than misread.
 */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *out);

#endif
