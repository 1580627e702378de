/*
 * mime.h - assembling one campaign message (RFC 5322 headers, MIME bodies
 * in quoted-printable) and SMTP transparency for sending it.
 *
 * What comes out is safe to put on the wire as it is: CRLF line endings
 * only, no line longer than 998 octets, no way for tenant or recipient
 * data to add a header or end the DATA phase early (RFC 5321 §4.5.2,
 * SMTP smuggling).  Signing (DKIM) is done on these exact bytes, later.
 */
#ifndef MC_SMTP_MIME_H
#define MC_SMTP_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/util.h"

/* One message to build; every pointer borrowed, strings NUL-terminated. */
struct mime_msg {
    const char *from_addr, *from_name;   /* name may be NULL */
    const char *to_addr, *to_name;       /* name may be NULL */
    const char *reply_to;                /* may be NULL */
    const char *subject;                 /* rendered; UTF-8; NULL is empty */
    const char *html, *text;             /* rendered bodies; either may be NULL, not both */
    const char *message_id;              /* "left@domain" without <> */
    const char *list_unsubscribe_url;    /* https URL; may be NULL (then no List-Unsubscribe) */
    const char *list_unsubscribe_mailto; /* "mailto:..."; may be NULL */
    int64_t date_us;                     /* Date header */
    const char *boundary;                /* multipart boundary (caller supplies a random one) */
    const char *ref;                     /* X-Mailcast-Ref (bounce/ref.h), or NULL */
};

/*
 * Appends the complete message (headers, blank line, body) to out.
 *
 * Headers, in this order: Date (RFC 5322, UTC "+0000"), From, To,
 * Reply-To (when given), Subject, Message-ID, X-Mailcast-Ref (when given:
 * the signed reference that bounces and feedback reports name the message
 * by; only base32 characters), MIME-Version: 1.0,
 * List-Unsubscribe: <url>[, <mailto>] and List-Unsubscribe-Post:
 * List-Unsubscribe=One-Click (when a URL is given), Content-Type and
 * Content-Transfer-Encoding.  Header lines are folded at whitespace to at
 * most 78 octets where the value allows it; never inside "<...>".
 *
 * Header values: control characters (CR and LF included), U+0085, U+2028
 * and U+2029 in the subject and display names become spaces, so they can
 * never start a header; surrounding blanks are dropped.  Display names are
 * atoms, a quoted-string, or RFC 2047 encoded-words (UTF-8, "B"); the
 * subject is plain, or encoded-words when it is not ASCII, contains "=?" or
 * has a word too long to fold at 78.
 *
 * Body: text/plain or text/html alone, or multipart/alternative (text
 * first, then html) when both exist; charset=utf-8, quoted-printable
 * (RFC 2045 §6.7): lines of at most 76 octets with soft breaks, "=" as
 * =3D, whitespace before a line break encoded, CR, LF and CRLF all kept as
 * hard line breaks.
 *
 * Errors: MC_ERR_INVALID (out unchanged) when a required field is missing
 * (from_addr, to_addr, message_id, both bodies, boundary when both bodies
 * exist), an address, the message id or a List-Unsubscribe URI is empty,
 * too long or holds a space, control character, '<' or '>', the URL is not
 * http(s):// or the mailto not mailto:, the boundary is not 1-70 RFC 2046
 * characters without space or occurs in an encoded body, or a header line
 * (List-Unsubscribe in practice) would pass 998 octets.  MC_ERR_TOO_LARGE
 * when out's bound is hit (out then holds a truncated prefix).
 */
mc_err mime_build(const struct mime_msg *m, struct buf *out);

/*
 * SMTP transparency (RFC 5321 §4.5.2): appends msg[0..len) to out with
 * every line that starts with '.' given a second one, then the end of data
 * "\r\n.\r\n" (the CRLF only when msg does not already end with one; an
 * empty msg gives ".\r\n").  A bare CR or LF in msg is written as CRLF, so
 * no input can make a lenient receiver see an end of data early.  Check
 * out->err afterwards.
 */
void smtp_dot_stuff(const char *msg, size_t len, struct buf *out);

/*
 * Formats us (microseconds since the epoch) as an RFC 5322 date in UTC,
 * "Sun, 29 Nov 2026 11:13:53 +0000", into out (n >= 40 is always enough).
 */
void mime_date(int64_t us, char *out, size_t n);

#endif
