/*
 * mime.c - builds one message: RFC 5322 headers (folding, RFC 2047
 * encoded-words, quoted display names), quoted-printable MIME bodies, and
 * the dot-stuffed DATA payload.  It does not render templates, choose
 * boundaries or message ids, or sign: callers pass those in, and DKIM
 * signs the bytes produced here.
 *
 * DESIGN
 * Headers go through one small writer (struct hdr) that places tokens and
 * folds only in front of the whitespace that precedes a token, so
 * unfolding always gives back the value; it never breaks a token, and
 * every "<...>" is one token.  A value is first checked in a dry run
 * (words_fit): when some word cannot be placed within 78 octets, it is
 * written as encoded-words instead, which can be split anywhere between
 * characters.  The only header that can still pass 998 octets is
 * List-Unsubscribe (a URI cannot be split), and that is an error.
 *
 * Bodies are encoded a line at a time in a local array, so the output
 * buffer sees one append per encoded line, not per byte.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/email.h"
#include "mime.h"

#define LINE_SOFT 78   /* RFC 5322 §2.1.1 SHOULD */
#define LINE_HARD 998  /* RFC 5322 §2.1.1 MUST */
#define QP_LINE 76     /* RFC 2045 §6.7 (5), the soft break's "=" included */
#define EW_MAX 75      /* RFC 2047 §2 */
#define EW_OVERHEAD 12 /* "=?utf-8?B?" and "?=" */
#define MSGID_MAX 250
#define BOUNDARY_MAX 70 /* RFC 2046 §5.1.1 */

static const char hex[] = "0123456789ABCDEF";

/* ---- validation ---- */

/* An address or msg-id: 1..max octets, one '@', nothing that could leave "<...>". */
static bool
valid_addr(const char *s, size_t max)
{
    size_t n;

    if (s == NULL)
        return false;
    n = strlen(s);
    if (n == 0 || n > max || strchr(s, '@') == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
            return false;
    }
    return true;
}

/* A List-Unsubscribe URI: the scheme, then printable ASCII that cannot leave "<...>". */
static bool
valid_uri(const char *s, const char *scheme1, const char *scheme2)
{
    size_t n1 = strlen(scheme1), n2 = scheme2 ? strlen(scheme2) : 0, n = strlen(s);

    if (!((n > n1 && strncasecmp(s, scheme1, n1) == 0) ||
          (scheme2 && n > n2 && strncasecmp(s, scheme2, n2) == 0)))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == ',')
            return false;
    }
    return true;
}

static bool
valid_boundary(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > BOUNDARY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("'()+_,-./:=?", c) != NULL))
            return false;
    }
    return true;
}

/*
 * Copies s into b with every control character, DEL, U+0085, U+2028 and
 * U+2029 as a space, and points *p and *n at the copy without surrounding
 * spaces.  NULL is empty.
 */
static void
clean_value(const char *s, struct buf *b, const char **p, size_t *n)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t a = 0, z;

    buf_reset(b);
    buf_append(b, "", 0);
    for (size_t i = 0; u[i]; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f)
            buf_putc(b, ' ');
        else if (u[i] == 0xc2 && u[i + 1] == 0x85) {
            buf_putc(b, ' ');
            i++;
        } else if (u[i] == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9)) {
            buf_putc(b, ' ');
            i += 2;
        } else
            buf_putc(b, (char)u[i]);
    }
    z = b->len;
    while (a < z && b->data[a] == ' ')
        a++;
    while (z > a && b->data[z - 1] == ' ')
        z--;
    *p = b->data + a;
    *n = z - a;
}

static bool
has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

/* ---- the header writer ---- */

struct hdr {
    struct buf *out; /* borrowed */
    size_t line;     /* octets on the current line */
    bool first;      /* no token placed in this header yet */
    bool too_long;   /* sticky: some line passed LINE_HARD */
};

static void
hdr_begin(struct hdr *h, const char *name)
{
    buf_puts(h->out, name);
    buf_putc(h->out, ':');
    h->line = strlen(name) + 1;
    h->first = true;
}

/*
 * Places one token: the first after a single space, the others after their
 * whitespace ws, on a new line (ws then being the folding whitespace) when
 * they would pass LINE_SOFT on this one.  ws is never empty after the first.
 */
static void
hdr_tok(struct hdr *h, const char *ws, size_t wslen, const char *tok, size_t len)
{
    if (h->first) {
        buf_putc(h->out, ' ');
        h->line += 1;
        h->first = false;
    } else if (h->line + wslen + len > LINE_SOFT) {
        buf_append(h->out, "\r\n", 2);
        buf_append(h->out, ws, wslen);
        h->line = wslen;
    } else {
        buf_append(h->out, ws, wslen);
        h->line += wslen;
    }
    buf_append(h->out, tok, len);
    h->line += len;
    if (h->line > LINE_HARD)
        h->too_long = true;
}

static void
hdr_end(struct hdr *h)
{
    buf_append(h->out, "\r\n", 2);
}

/* Splits s at spaces into (whitespace, word) tokens; s has no surrounding spaces. */
static size_t
next_word(const char *s, size_t n, size_t i, size_t *ws, size_t *w)
{
    size_t j = i;

    while (j < n && s[j] == ' ')
        j++;
    *ws = j - i;
    i = j;
    while (j < n && s[j] != ' ')
        j++;
    *w = j - i;
    return j;
}

/* Dry run of hdr_words: can every word be placed within LINE_SOFT? */
static bool
words_fit(size_t line, const char *s, size_t n)
{
    size_t i = 0, ws, w;
    bool first = true;

    while (i < n) {
        i = next_word(s, n, i, &ws, &w);
        if (first) {
            line += 1 + w;
            first = false;
        } else if (line + ws + w <= LINE_SOFT)
            line += ws + w;
        else
            line = ws + w;
        if (line > LINE_SOFT)
            return false;
    }
    return true;
}

static void
hdr_words(struct hdr *h, const char *s, size_t n)
{
    size_t i = 0, ws, w, j;

    while (i < n) {
        j = next_word(s, n, i, &ws, &w);
        hdr_tok(h, s + i, ws, s + i + ws, w);
        i = j;
    }
}

/* Octets of the (possibly invalid) UTF-8 character at p, so none is split. */
static size_t
char_len(const unsigned char *p, size_t n)
{
    size_t k = 1;

    if (p[0] >= 0xc0)
        while (k < n && k < 4 && (p[k] & 0xc0) == 0x80)
            k++;
    return k;
}

static size_t
base64(const unsigned char *p, size_t n, char *out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    return o;
}

/*
 * Writes s as RFC 2047 "B" encoded-words of whole characters, each sized
 * to the room left on its line (RFC 2047 §5 allows them in unstructured
 * text and in a phrase; the space between two of them is not part of the
 * value).
 */
static void
hdr_encoded(struct hdr *h, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char word[EW_MAX + 8];
    size_t i = 0;

    while (i < n) {
        size_t room = h->line + 1 < LINE_SOFT ? LINE_SOFT - h->line - 1 : 0;
        size_t payload, maxbytes, take = 0, len;

        if (!h->first && room < EW_OVERHEAD + 4)
            room = LINE_SOFT - 1; /* hdr_tok will fold */
        payload = room > EW_OVERHEAD + 4 ? room - EW_OVERHEAD : 4;
        if (payload > EW_MAX - EW_OVERHEAD)
            payload = EW_MAX - EW_OVERHEAD;
        maxbytes = payload / 4 * 3;
        while (i + take < n) {
            size_t c = char_len(u + i + take, n - i - take);
            if (take > 0 && take + c > maxbytes)
                break;
            take += c;
        }
        /* Split after a space, not inside a word, so each encoded-word holds whole
         * words; only a word longer than one encoded-word is split between characters. */
        if (i + take < n && u[i + take] != ' ') {
            size_t sp = take;
            while (sp > 0 && u[i + sp - 1] != ' ')
                sp--;
            if (sp > 0)
                take = sp;
        }
        memcpy(word, "=?utf-8?B?", 10);
        len = 10 + base64(u + i, take, word + 10);
        memcpy(word + len, "?=", 2);
        len += 2;
        hdr_tok(h, " ", 1, word, len);
        i += take;
    }
}

static bool
is_atext(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A display name (cleaned, not empty): atoms, a quoted-string or encoded-words. */
static void
hdr_phrase(struct hdr *h, const char *s, size_t n, struct buf *tmp)
{
    bool atoms = true;

    if (has_8bit(s, n) || memmem(s, n, "=?", 2) != NULL) {
        hdr_encoded(h, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' ? s[i + 1] == ' ' : !is_atext(s[i]))
            atoms = false;
    buf_reset(tmp);
    if (atoms)
        buf_append(tmp, s, n);
    else {
        buf_putc(tmp, '"');
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\')
                buf_putc(tmp, '\\');
            buf_putc(tmp, s[i]);
        }
        buf_putc(tmp, '"');
    }
    if (tmp->err != MC_ERR_OK || !words_fit(h->line, tmp->data, tmp->len))
        hdr_encoded(h, s, n);
    else
        hdr_words(h, tmp->data, tmp->len);
}

static void
addr_header(struct hdr *h, const char *name, const char *display, const char *addr, struct buf *tmp,
            struct buf *val)
{
    const char *p;
    size_t n;

    hdr_begin(h, name);
    clean_value(display, val, &p, &n);
    if (n > 0) {
        hdr_phrase(h, p, n, tmp);
        buf_reset(tmp);
        buf_printf(tmp, "<%s>", addr);
        hdr_tok(h, " ", 1, tmp->data, tmp->len);
    } else
        hdr_tok(h, "", 0, addr, strlen(addr));
    hdr_end(h);
}

static void
subject_header(struct hdr *h, const char *subject, struct buf *val)
{
    const char *p;
    size_t n;

    hdr_begin(h, "Subject");
    clean_value(subject, val, &p, &n);
    if (has_8bit(p, n) || memmem(p, n, "=?", 2) != NULL || !words_fit(h->line, p, n))
        hdr_encoded(h, p, n);
    else
        hdr_words(h, p, n);
    hdr_end(h);
}

static void
unsubscribe_headers(struct hdr *h, const char *url, const char *mailto, struct buf *tmp)
{
    hdr_begin(h, "List-Unsubscribe");
    buf_reset(tmp);
    buf_printf(tmp, "<%s>%s", url, mailto ? "," : "");
    hdr_tok(h, "", 0, tmp->data, tmp->len);
    if (mailto) {
        buf_reset(tmp);
        buf_printf(tmp, "<%s>", mailto);
        hdr_tok(h, " ", 1, tmp->data, tmp->len);
    }
    hdr_end(h);
    buf_puts(h->out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
}

/* ---- bodies ---- */

/*
 * Appends s as quoted-printable.  With end_soft, a body that does not end
 * with a line break ends with a soft one, so the output ends with CRLF and
 * still decodes to exactly s.
 */
static void
qp_encode(const char *s, size_t n, bool end_soft, struct buf *out)
{
    char line[QP_LINE + 4];
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char unit[3];
        size_t ulen;
        bool eol;

        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++;
            line[len++] = '\r';
            line[len++] = '\n';
            buf_append(out, line, len);
            len = 0;
            continue;
        }
        eol = i + 1 == n || s[i + 1] == '\r' || s[i + 1] == '\n';
        /* "From " opening an encoded line would be mangled to ">From " by mbox
         * tools on the way: its F goes encoded (RFC 2045 6.8 advises it). */
        bool from = len == 0 && c == 'F' && n - i >= 5 && memcmp(s + i, "From ", 5) == 0;
        bool literal =
            !from && ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol));
        /* The common case, a literal byte with room on the line, straight in
         * with the run of printable bytes after it (no '=', no space: those
         * need the look at what follows), as far as the line has room. */
        if (literal && len + 1 <= QP_LINE - 1) {
            size_t j = i + 1, room = QP_LINE - 1 - len;
            while (j < n && j - i < room && s[j] >= 33 && s[j] <= 126 && s[j] != '=')
                j++;
            memcpy(line + len, s + i, j - i);
            len += j - i;
            i = j - 1;
            continue;
        }
        if (literal) {
            unit[0] = (char)c;
            ulen = 1;
        } else {
            unit[0] = '=';
            unit[1] = hex[c >> 4];
            unit[2] = hex[c & 15];
            ulen = 3;
        }
        /* Keep room for a soft break's "="; never split a unit. */
        if (len + ulen > QP_LINE - 1) {
            memcpy(line + len, "=\r\n", 3);
            buf_append(out, line, len + 3);
            len = 0;
            if (ulen == 1 && c == 'F' && n - i >= 5 && memcmp(s + i, "From ", 5) == 0) {
                unit[0] = '=';
                unit[1] = hex[c >> 4];
                unit[2] = hex[c & 15];
                ulen = 3;
            }
        }
        memcpy(line + len, unit, ulen);
        len += ulen;
    }
    if (len > 0) {
        if (end_soft) {
            memcpy(line + len, "=\r\n", 3);
            len += 3;
        }
        buf_append(out, line, len);
    }
}

/* True when a line of out[from..) starts with "--" boundary. */
static bool
boundary_in(const struct buf *out, size_t from, const char *boundary)
{
    size_t bl = strlen(boundary);

    if (out->err != MC_ERR_OK)
        return false;
    for (size_t i = from; i + 2 + bl <= out->len; i++) {
        if ((i == from || out->data[i - 1] == '\n') && out->data[i] == '-' &&
            out->data[i + 1] == '-' && memcmp(out->data + i + 2, boundary, bl) == 0)
            return true;
    }
    return false;
}

static bool
body_part(struct buf *out, const char *type, const char *body, const char *boundary)
{
    size_t from;

    buf_printf(out, "--%s\r\n", boundary);
    buf_printf(out, "Content-Type: %s; charset=utf-8\r\n", type);
    buf_puts(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    from = out->len;
    qp_encode(body, strlen(body), false, out);
    buf_puts(out, "\r\n");
    return !boundary_in(out, from, boundary);
}

mc_err
mime_build(const struct mime_msg *m, struct buf *out)
{
    struct hdr h = {.out = out};
    struct buf tmp, val;
    size_t start = out->len;
    bool multi = m->html != NULL && m->text != NULL;
    const char *mailto = m->list_unsubscribe_mailto;
    char date[48];
    mc_err err = MC_ERR_OK;

    if (out->err != MC_ERR_OK)
        return out->err;
    if (!valid_addr(m->from_addr, EMAIL_MAX) || !valid_addr(m->to_addr, EMAIL_MAX) ||
        (m->reply_to && !valid_addr(m->reply_to, EMAIL_MAX)) ||
        !valid_addr(m->message_id, MSGID_MAX) || (m->html == NULL && m->text == NULL) ||
        (multi && !valid_boundary(m->boundary)))
        return MC_ERR_INVALID;
    if (m->list_unsubscribe_url) {
        /* http:// too: the default public_url of a development setup is one. */
        if (!valid_uri(m->list_unsubscribe_url, "https://", "http://") ||
            (mailto && !valid_uri(mailto, "mailto:", NULL)))
            return MC_ERR_INVALID;
    }
    buf_init(&tmp, 0);
    buf_init(&val, 0);

    mime_date(m->date_us, date, sizeof(date));
    buf_printf(out, "Date: %s\r\n", date);
    addr_header(&h, "From", m->from_name, m->from_addr, &tmp, &val);
    addr_header(&h, "To", m->to_name, m->to_addr, &tmp, &val);
    if (m->reply_to)
        addr_header(&h, "Reply-To", NULL, m->reply_to, &tmp, &val);
    subject_header(&h, m->subject, &val);
    buf_printf(out, "Message-ID: <%s>\r\n", m->message_id);
    if (m->ref) {
        size_t rl = strlen(m->ref);
        if (rl == 0 || rl > 64 || strspn(m->ref, "abcdefghijklmnopqrstuvwxyz234567") != rl) {
            err = MC_ERR_INVALID;
            goto out;
        }
        buf_printf(out, "X-Mailcast-Ref: %s\r\n", m->ref);
    }
    buf_puts(out, "MIME-Version: 1.0\r\n");
    if (m->list_unsubscribe_url)
        unsubscribe_headers(&h, m->list_unsubscribe_url, mailto, &tmp);
    if (h.too_long) {
        err = MC_ERR_INVALID;
        goto out;
    }

    if (multi) {
        hdr_begin(&h, "Content-Type");
        hdr_tok(&h, "", 0, "multipart/alternative;", strlen("multipart/alternative;"));
        buf_reset(&tmp);
        buf_printf(&tmp, "boundary=\"%s\"", m->boundary);
        hdr_tok(&h, " ", 1, tmp.data, tmp.len);
        hdr_end(&h);
        buf_puts(out, "\r\n");
        if (!body_part(out, "text/plain", m->text, m->boundary) ||
            !body_part(out, "text/html", m->html, m->boundary)) {
            err = MC_ERR_INVALID;
            goto out;
        }
        buf_printf(out, "--%s--\r\n", m->boundary);
    } else {
        const char *body = m->text ? m->text : m->html;
        buf_printf(out, "Content-Type: %s; charset=utf-8\r\n",
                   m->text ? "text/plain" : "text/html");
        buf_puts(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        qp_encode(body, strlen(body), true, out);
    }

out:
    buf_cleanup(&tmp);
    buf_cleanup(&val);
    if (out->err != MC_ERR_OK)
        return out->err;
    if (err != MC_ERR_OK) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return err;
}

/* True when every CR of msg[0..len) opens a CRLF and every LF closes one. */
static bool
crlf_clean(const char *msg, size_t len)
{
    const char *p, *end = msg + len;

    for (p = msg; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        if (p == msg || p[-1] != '\r')
            return false;
    for (p = msg; (p = memchr(p, '\r', (size_t)(end - p))) != NULL; p++)
        if (p + 1 == end || p[1] != '\n')
            return false;
    return true;
}

void
smtp_dot_stuff(const char *msg, size_t len, struct buf *out)
{
    size_t i = 0, run;
    bool bol = true; /* at the beginning of a line */

    /* What mime_build makes (CRLF only): copied in runs between the lines
     * that open with a dot, found by memchr (the byte loop below was 2 % of
     * the delivering process). */
    if (crlf_clean(msg, len)) {
        const char *p, *end = msg + len;
        size_t from = 0;
        if (len > 0 && msg[0] == '.')
            buf_putc(out, '.');
        for (p = msg; (p = memchr(p, '\n', (size_t)(end - p))) != NULL;) {
            p++;
            if (p < end && *p == '.') {
                buf_append(out, msg + from, (size_t)(p - msg) - from);
                buf_putc(out, '.');
                from = (size_t)(p - msg);
            }
        }
        buf_append(out, msg + from, len - from);
        if (len > 0 && msg[len - 1] != '\n')
            buf_append(out, "\r\n", 2);
        buf_append(out, ".\r\n", 3);
        return;
    }

    while (i < len) {
        if (msg[i] == '\r' || msg[i] == '\n') {
            i += msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n' ? 2 : 1;
            buf_append(out, "\r\n", 2);
            bol = true;
            continue;
        }
        if (bol && msg[i] == '.')
            buf_putc(out, '.');
        for (run = i; run < len && msg[run] != '\r' && msg[run] != '\n'; run++)
            ;
        buf_append(out, msg + i, run - i);
        i = run;
        bol = false;
    }
    if (len > 0 && !bol)
        buf_append(out, "\r\n", 2);
    buf_append(out, ".\r\n", 3);
}

void
mime_date(int64_t us, char *out, size_t n)
{
    static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t secs = us / 1000000 - (us % 1000000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;

    /* gmtime_r is pure arithmetic on UTC; it fails only past year 2^31. */
    if (gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000", wday[tm.tm_wday], tm.tm_mday,
             mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
