/*
 * fuzz_mime.c - libFuzzer target for MIME assembly (smtp/mime.c): the
 * input is split at 0xFF bytes into subject, display names, text and HTML
 * bodies; the message is built, then parsed back and compared:
 *
 *   - every line ends in CRLF (no bare CR or LF) and is at most 998 octets;
 *   - the header block holds exactly one Subject; unfolded and with its
 *     encoded-words decoded it is the subject as mime.c cleans it (controls
 *     and U+0085/2028/2029 as spaces, outer spaces trimmed);
 *   - no header line of the body part starts with "From " (mbox);
 *   - a single-part text message's body, quoted-printable decoded, is the
 *     text with its line breaks made CRLF.
 *
 * Built by `make fuzz` (clang, libFuzzer) and by `make fuzz-replay`.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/mime.h"
#include "fuzz.h"

static int
b64v(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Appends the base64 payload s[0..n) decoded. */
static void
b64_decode(const char *s, size_t n, struct buf *out)
{
    unsigned v = 0;
    int bits = 0;

    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int d = b64v(s[i]);
        CHECK(d >= 0);
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((v >> bits) & 0xff));
        }
    }
}

/* The unfolded value of a header field, decoded when it is all encoded-words. */
static void
decode_value(const char *v, size_t n, struct buf *out)
{
    struct buf unf;

    buf_init(&unf, 0);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\r' && i + 2 < n + 1 && v[i + 1] == '\n')
            i++; /* unfolding: CRLF before WSP goes */
        else
            buf_putc(&unf, v[i]);
    }
    buf_append(&unf, "", 0);
    if (strncmp(unf.data, "=?utf-8?B?", 10) != 0) {
        buf_append(out, unf.data, unf.len);
    } else {
        const char *p = unf.data;
        while ((p = strstr(p, "=?utf-8?B?")) != NULL) {
            const char *e = strstr(p + 10, "?=");
            CHECK(e != NULL);
            b64_decode(p + 10, (size_t)(e - p - 10), out);
            p = e + 2;
        }
    }
    buf_cleanup(&unf);
}

/* What mime.c makes of a header value: controls and line separators as spaces, trimmed. */
static void
cleaned(const char *s, struct buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = out->len, a, z;

    for (size_t i = 0; u[i]; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f)
            buf_putc(out, ' ');
        else if (u[i] == 0xc2 && u[i + 1] == 0x85)
            buf_putc(out, ' '), i++;
        else if (u[i] == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
            buf_putc(out, ' '), i += 2;
        else
            buf_putc(out, (char)u[i]);
    }
    a = start;
    z = out->len;
    while (a < z && out->data[a] == ' ')
        a++;
    while (z > a && out->data[z - 1] == ' ')
        z--;
    memmove(out->data + start, out->data + a, z - a);
    out->len = start + (z - a);
}

static int
hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void
qp_decode(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
        } else if (s[i] == '=') {
            CHECK(i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0);
            buf_putc(out, (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2])));
            i += 2;
        } else
            buf_putc(out, s[i]);
    }
}

static void
crlf(const char *s, struct buf *out)
{
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            if (s[i] == '\r' && s[i + 1] == '\n')
                i++;
            buf_puts(out, "\r\n");
        } else
            buf_putc(out, s[i]);
    }
}

static void
check_message(const struct mime_msg *m, const struct buf *msg)
{
    const char *s = msg->data, *hdr_end, *subj = NULL, *body;
    size_t n = msg->len, subj_len = 0;
    int subjects = 0;
    struct buf a, b;

    /* Lines: CRLF only, at most 998 octets. */
    for (size_t i = 0, line = 0; i < n; i++) {
        if (s[i] == '\n') {
            CHECK(i > 0 && s[i - 1] == '\r');
            line = 0;
        } else if (s[i] == '\r') {
            CHECK(i + 1 < n && s[i + 1] == '\n');
        } else
            CHECK(++line <= 998);
    }
    CHECK(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
    hdr_end = strstr(s, "\r\n\r\n");
    CHECK(hdr_end != NULL);
    body = hdr_end + 4;
    for (const char *l = s; l < hdr_end + 2; l = strstr(l, "\r\n") + 2) {
        if (strncmp(l, "Subject:", 8) == 0) {
            const char *e = l;
            subjects++;
            /* The value runs until a line that does not start with WSP. */
            while ((e = strstr(e, "\r\n")) != NULL && (e[2] == ' ' || e[2] == '\t'))
                e += 2;
            subj = l + 8 + (l[8] == ' ');
            subj_len = (size_t)(e - subj);
        }
    }
    CHECK(subjects == 1);
    buf_init(&a, 0);
    buf_init(&b, 0);
    decode_value(subj, subj_len, &a);
    cleaned(m->subject ? m->subject : "", &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    for (const char *l = body; l && *l; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL)
        CHECK(strncmp(l, "From ", 5) != 0);
    if (m->html == NULL) {
        buf_reset(&a);
        buf_reset(&b);
        qp_decode(body, n - (size_t)(body - s), &a);
        crlf(m->text, &b);
        /* A body without a final line break ends with a soft one. */
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    }
    buf_cleanup(&a);
    buf_cleanup(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *fields[5] = {0};
    const uint8_t *p = data, *end = data + size;
    struct mime_msg m = {0};
    struct buf out;

    for (int i = 0; i < 5; i++) {
        const uint8_t *sep = p < end ? memchr(p, 0xff, (size_t)(end - p)) : NULL;
        const uint8_t *e = sep ? sep : end;
        size_t len = p < end ? (size_t)(e - p) : 0;
        fields[i] = malloc(len + 1);
        if (len)
            memcpy(fields[i], p, len);
        fields[i][len] = '\0';
        /* NUL ends a C string early: what mime.c sees is what is compared. */
        p = sep ? sep + 1 : end;
    }
    m.from_addr = "news@example.com";
    m.to_addr = "ann@example.org";
    m.message_id = "abc.123@example.com";
    m.subject = fields[0];
    m.from_name = fields[1][0] ? fields[1] : NULL;
    m.to_name = fields[2][0] ? fields[2] : NULL;
    m.text = fields[3];
    m.html = fields[4][0] ? fields[4] : NULL;
    m.boundary = "=_mc_0123456789abcdef01234567";
    m.list_unsubscribe_url = "https://mc.example.test/u/token";
    m.date_us = 1700000000000000LL;
    buf_init(&out, 0);
    if (mime_build(&m, &out) == MC_ERR_OK)
        check_message(&m, &out);
    buf_cleanup(&out);
    for (int i = 0; i < 5; i++)
        free(fields[i]);
    return 0;
}
