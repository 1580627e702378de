/*
 * reply.c - parses SMTP replies line by line, and reads queue ids and EHLO
 * extensions out of a parsed reply.  It does not read from sockets, limit
 * line lengths or decide what a reply means for a message: the client
 * state machine does.
 *
 * DESIGN
 * The reply is a small state machine (EMPTY -> MORE ... -> DONE, or
 * FAILED) so that a caller feeding lines as they arrive cannot mix two
 * replies: after DONE or FAILED only smtp_reply_reset starts again.  The
 * text is stored sanitised (no control characters, lines joined by "\n"),
 * which lets the helpers below treat it as a plain C string.
 */
#include <string.h>
#include <strings.h>

#include "reply.h"

enum state { ST_EMPTY, ST_MORE, ST_DONE, ST_FAILED };

void
smtp_reply_init(struct smtp_reply *r, size_t max_text)
{
    memset(r, 0, sizeof(*r));
    r->max_text = max_text;
    /* No buf limit: append_text truncates at max_text instead of failing. */
    buf_init(&r->text, 0);
    buf_append(&r->text, "", 0); /* text.data is never NULL */
    r->state = ST_EMPTY;
}

void
smtp_reply_reset(struct smtp_reply *r)
{
    r->code = 0;
    r->enhanced[0] = '\0';
    buf_reset(&r->text);
    r->truncated = false;
    r->lines = 0;
    r->state = ST_EMPTY;
}

void
smtp_reply_cleanup(struct smtp_reply *r)
{
    buf_cleanup(&r->text);
    memset(r, 0, sizeof(*r));
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Length of an RFC 3463 status code "c.s.d" at p (1-3 digits for subject
 * and detail) followed by a space or the end, whose class is cls; else 0.
 */
static size_t
enhanced_len(const char *p, size_t n, char cls)
{
    size_t i, k;

    if (n < 5 || p[0] != cls || p[1] != '.')
        return 0;
    i = 2;
    for (k = 0; i < n && k < 3 && is_digit(p[i]); k++)
        i++;
    if (k == 0 || i >= n || p[i] != '.')
        return 0;
    i++;
    for (k = 0; i < n && k < 3 && is_digit(p[i]); k++)
        i++;
    if (k == 0 || (i < n && p[i] != ' '))
        return 0;
    return i;
}

/*
 * Appends as much of p as the limit allows, control characters as '?'
 * unless raw (the line separator).
 */
static void
append_text(struct smtp_reply *r, const char *p, size_t n, bool raw)
{
    if (r->max_text && r->text.len + n > r->max_text) {
        n = r->max_text > r->text.len ? r->max_text - r->text.len : 0;
        r->truncated = true;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        buf_putc(&r->text, !raw && (c < 0x20 || c == 0x7f) ? '?' : (char)c);
    }
}

enum smtp_parse
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
    int code;
    bool last;
    size_t off, elen;

    if (r->state == ST_DONE || r->state == ST_FAILED)
        goto fail;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    /*
     * The class must be 2-5; the grammar of §4.2 also limits the second
     * digit to 0-5, but clients act on the first digit (§4.2.1), so an odd
     * second digit is tolerated rather than fatal to the session.
     */
    if (len < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]))
        goto fail;
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (len == 3)
        last = true;
    else if (line[3] == ' ')
        last = true;
    else if (line[3] == '-')
        last = false;
    else
        goto fail;
    if (r->state == ST_MORE && code != r->code)
        goto fail;
    r->code = code;

    off = len > 3 ? 4 : 3;
    elen = enhanced_len(line + off, len - off, line[0]);
    if (elen > 0) {
        if (r->enhanced[0] == '\0') {
            memcpy(r->enhanced, line + off, elen);
            r->enhanced[elen] = '\0';
        }
        off += elen;
        while (off < len && line[off] == ' ')
            off++;
    }
    if (r->lines++ > 0)
        append_text(r, "\n", 1, true);
    append_text(r, line + off, len - off, false);
    r->state = last ? ST_DONE : ST_MORE;
    return last ? SMTP_PARSE_DONE : SMTP_PARSE_MORE;

fail:
    r->state = ST_FAILED;
    return SMTP_PARSE_ERROR;
}

int
smtp_reply_class(const struct smtp_reply *r)
{
    if (r->state != ST_DONE)
        return 0;
    return r->code / 100;
}

static const char *
text_of(const struct smtp_reply *r)
{
    return r->text.data ? r->text.data : ""; /* NULL only after cleanup */
}

/* Case-insensitive strstr. */
static const char *
find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

static bool
id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
           c == '_' || c == '@' || c == '-';
}

/* Length of the unbracketed id at p, trailing dots excluded. */
static size_t
id_len(const char *p)
{
    size_t n = 0;

    while (id_char(p[n]))
        n++;
    while (n > 0 && p[n - 1] == '.')
        n--;
    return n;
}

/* Copies the id at p (bracketed or not) into out; false when there is none. */
static bool
copy_id(const char *p, char *out, size_t n)
{
    size_t len = 0;

    if (*p == '<') {
        p++;
        while (p[len] > 0x20 && p[len] < 0x7f && p[len] != '>')
            len++;
        if (p[len] != '>')
            return false;
    } else
        len = id_len(p);
    if (len == 0)
        return false;
    if (len > n - 1)
        len = n - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

bool
smtp_reply_queue_id(const struct smtp_reply *r, char *out, size_t n)
{
    const char *t = text_of(r), *p;

    if (n == 0 || smtp_reply_class(r) != 2)
        return false;

    /* Postfix and many others. */
    for (p = t; (p = find_ci(p, "queued as")) != NULL; p++) {
        const char *q = p + strlen("queued as");
        if (*q != ' ')
            continue;
        while (*q == ' ')
            q++;
        if (copy_id(q, out, n))
            return true;
    }
    /* Exim: "id=" as a word of its own, so "msgid=" does not count. */
    for (p = t; (p = find_ci(p, "id=")) != NULL; p++)
        if ((p == t || p[-1] == ' ' || p[-1] == '\n') && copy_id(p + 3, out, n))
            return true;
    /* Sendmail: the first word, then the fixed sentence. */
    size_t len = id_len(t);
    if (len > 0 && t[len] == ' ' &&
        strncasecmp(t + len + 1, "Message accepted for delivery",
                    strlen("Message accepted for delivery")) == 0)
        return copy_id(t, out, n);
    return false;
}

/* True when the word at p (ending at a space, '=' or end) is kw. */
static bool
keyword_is(const char *p, size_t n, const char *kw)
{
    size_t k = strlen(kw);

    return n == k && strncasecmp(p, kw, k) == 0;
}

static void
parse_auth(const char *p, const char *end, struct smtp_ext *out)
{
    while (p < end) {
        const char *w;

        while (p < end && *p == ' ')
            p++;
        w = p;
        while (p < end && *p != ' ')
            p++;
        if (keyword_is(w, (size_t)(p - w), "PLAIN"))
            out->auth_plain = true;
        else if (keyword_is(w, (size_t)(p - w), "LOGIN"))
            out->auth_login = true;
    }
}

static int64_t
parse_size(const char *p, const char *end)
{
    char num[24];
    size_t n;
    int64_t v;

    while (p < end && *p == ' ')
        p++;
    n = (size_t)(end - p);
    while (n > 0 && p[n - 1] == ' ')
        n--;
    if (n == 0 || n >= sizeof(num))
        return 0;
    memcpy(num, p, n);
    num[n] = '\0';
    if (!is_digit(num[0]) || !parse_int64(num, 0, INT64_MAX, &v))
        return 0;
    return v;
}

static void
parse_ext_line(const char *p, const char *end, struct smtp_ext *out)
{
    const char *w = p;
    size_t n;

    while (p < end && *p != ' ' && *p != '=')
        p++;
    n = (size_t)(p - w);
    if (keyword_is(w, n, "PIPELINING"))
        out->pipelining = true;
    else if (keyword_is(w, n, "STARTTLS"))
        out->starttls = true;
    else if (keyword_is(w, n, "8BITMIME"))
        out->eightbitmime = true;
    else if (keyword_is(w, n, "SMTPUTF8"))
        out->smtputf8 = true;
    else if (keyword_is(w, n, "ENHANCEDSTATUSCODES"))
        out->enhancedstatuscodes = true;
    else if (keyword_is(w, n, "DSN"))
        out->dsn = true;
    else if (keyword_is(w, n, "AUTH"))
        parse_auth(p < end ? p + 1 : p, end, out);
    else if (keyword_is(w, n, "SIZE") && (p == end || *p == ' '))
        out->size = parse_size(p, end);
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *out)
{
    const char *t = text_of(r), *p, *nl;

    memset(out, 0, sizeof(*out));
    if (smtp_reply_class(r) != 2)
        return;
    /* The first line greets; extensions follow, one per line. */
    p = strchr(t, '\n');
    while (p != NULL) {
        p++;
        nl = strchr(p, '\n');
        if (nl == NULL && r->truncated)
            break;
        parse_ext_line(p, nl ? nl : p + strlen(p), out);
        p = nl;
    }
}
