/*
 * test_mime.c - message assembly: the exact shape of simple messages, the
 * wire rules (CRLF only, line limits), folding, RFC 2047 encoded-words,
 * header injection, quoted-printable round trips (with a decoder written
 * here), multipart structure, List-Unsubscribe, errors and dot-stuffing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include "smtp/mime.h"

#define T0 1795950833000000LL /* 2026-11-29T11:13:53Z */

static struct mime_msg
base_msg(void)
{
    struct mime_msg m = {
        .from_addr = "news@example.com",
        .from_name = "Example News",
        .to_addr = "ann@example.org",
        .to_name = "Ann",
        .subject = "Hello",
        .text = "Hi Ann\n",
        .message_id = "abc123@example.com",
        .date_us = T0,
        .boundary = "=_mc_0123456789abcdef",
    };
    return m;
}

/* Builds m, which must succeed; the caller frees the result. */
static char *
build(const struct mime_msg *m)
{
    struct buf b;
    mc_err err;

    buf_init(&b, 0);
    err = mime_build(m, &b);
    if (err != MC_ERR_OK)
        fail_msg("mime_build: %s", mc_err_name(err));
    return buf_steal(&b);
}

static mc_err
build_err(const struct mime_msg *m)
{
    struct buf b;
    mc_err err;

    buf_init(&b, 0);
    buf_puts(&b, "keep");
    err = mime_build(m, &b);
    if (err == MC_ERR_INVALID)
        assert_string_equal(b.data, "keep"); /* out unchanged */
    buf_cleanup(&b);
    return err;
}

/*
 * The wire rules for a whole message: CR and LF only as CRLF, no line over
 * 998 octets, no NUL; header lines (up to the first empty line) at most
 * hdr_max octets.
 */
static void
check_wire(const char *msg, size_t hdr_max)
{
    size_t len = strlen(msg), line = 0;
    bool in_headers = true;

    assert_true(len >= 2);
    assert_memory_equal(msg + len - 2, "\r\n", 2);
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\r') {
            if (msg[i + 1] != '\n')
                fail_msg("bare CR at %zu", i);
            continue;
        }
        if (msg[i] == '\n') {
            if (i == 0 || msg[i - 1] != '\r')
                fail_msg("bare LF at %zu", i);
            if (line == 0)
                in_headers = false;
            line = 0;
            continue;
        }
        line++;
        if (line > 998)
            fail_msg("line over 998 octets at %zu", i);
        if (in_headers && line > hdr_max)
            fail_msg("header line over %zu octets at %zu: %.100s", hdr_max, i, msg + i - line + 1);
    }
}

/* Length of the header block including its final CRLF (before the empty line). */
static size_t
header_len(const char *msg)
{
    const char *e = strstr(msg, "\r\n\r\n");

    assert_non_null(e);
    return (size_t)(e - msg) + 2;
}

/*
 * The unfolded value of header name (after "Name: "), in new memory, or
 * NULL; *count gets the number of such fields.
 */
static char *
header(const char *msg, const char *name, int *count)
{
    size_t hl = header_len(msg), nl = strlen(name);
    char *found = NULL;
    int n = 0;

    for (size_t i = 0; i < hl; i++) {
        if ((i == 0 || msg[i - 1] == '\n') && strncasecmp(msg + i, name, nl) == 0 &&
            msg[i + nl] == ':') {
            struct buf v;
            size_t j = i + nl + 1;
            buf_init(&v, 0);
            buf_append(&v, "", 0);
            if (msg[j] == ' ')
                j++;
            for (; j < hl; j++) {
                if (msg[j] == '\r' && msg[j + 1] == '\n' &&
                    (msg[j + 2] == ' ' || msg[j + 2] == '\t'))
                    j++; /* unfold: drop the CRLF, keep the whitespace */
                else if (msg[j] == '\r')
                    break;
                else
                    buf_putc(&v, msg[j]);
            }
            n++;
            free(found);
            found = buf_steal(&v);
        }
    }
    if (count)
        *count = n;
    return found;
}

/* Every header field name, one per line ("Date\nFrom\n..."). */
static char *
header_names(const char *msg)
{
    size_t hl = header_len(msg);
    struct buf b;

    buf_init(&b, 0);
    for (size_t i = 0; i < hl; i++) {
        if ((i == 0 || msg[i - 1] == '\n') && msg[i] != ' ' && msg[i] != '\t') {
            const char *colon = memchr(msg + i, ':', hl - i);
            const char *eol = strstr(msg + i, "\r\n");
            if (colon == NULL || colon > eol)
                fail_msg("a header line without a name: %.60s", msg + i);
            buf_append(&b, msg + i, (size_t)(colon - (msg + i)));
            buf_putc(&b, '\n');
        }
    }
    return buf_steal(&b);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lowercase hex is not what the encoder writes */
}

/*
 * Decodes quoted-printable s[0..n) as RFC 2045 §6.7 says, checking the
 * encoder's side of the rules on the way: lines of at most 76 octets,
 * printable ASCII only, no trailing whitespace, well-formed "=XX".
 */
static char *
qp_decode(const char *s, size_t n)
{
    struct buf out;
    size_t i = 0;

    buf_init(&out, 0);
    buf_append(&out, "", 0);
    while (i < n) {
        const char *eol = strstr(s + i, "\r\n");
        size_t end = eol && (size_t)(eol - s) < n ? (size_t)(eol - s) : n;
        size_t len = end - i;
        bool soft = len > 0 && s[end - 1] == '=';

        if (len > 76)
            fail_msg("QP line of %zu octets", len);
        if (len > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            fail_msg("QP line with trailing whitespace");
        size_t lim = end - (soft ? 1 : 0);
        for (size_t j = i; j < lim; j++) {
            unsigned char c = (unsigned char)s[j];
            if (c == '=') {
                int hi, lo;
                if (j + 2 >= lim)
                    fail_msg("truncated =XX");
                hi = hexval(s[j + 1]);
                lo = hexval(s[j + 2]);
                if (hi < 0 || lo < 0)
                    fail_msg("bad =XX");
                buf_putc(&out, (char)(hi * 16 + lo));
                j += 2;
            } else if ((c < 33 || c > 126) && c != ' ' && c != '\t') {
                fail_msg("unencoded octet 0x%02x in QP", c);
            } else
                buf_putc(&out, (char)c);
        }
        if (eol && (size_t)(eol - s) < n) {
            if (!soft)
                buf_append(&out, "\r\n", 2);
            i = end + 2;
        } else
            i = n;
    }
    return buf_steal(&out);
}

/* s with CR, LF and CRLF all as CRLF. */
static char *
crlf(const char *s)
{
    struct buf b;

    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (; *s; s++) {
        if (*s == '\r' || *s == '\n') {
            if (*s == '\r' && s[1] == '\n')
                s++;
            buf_append(&b, "\r\n", 2);
        } else
            buf_putc(&b, *s);
    }
    return buf_steal(&b);
}

static int
b64val(char c)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(tab, c) : NULL;
    return p ? (int)(p - tab) : -1;
}

/*
 * Decodes an unfolded unstructured value made of RFC 2047 "B" words and
 * plain words: whitespace between two encoded-words is dropped.  Checks
 * that every encoded-word is at most 75 octets.
 */
static char *
rfc2047_decode(const char *v)
{
    struct buf out, ws;
    bool prev_ew = false;

    buf_init(&out, 0);
    buf_init(&ws, 0);
    buf_append(&out, "", 0);
    while (*v) {
        size_t w = 0;
        buf_reset(&ws);
        while (*v == ' ' || *v == '\t')
            buf_putc(&ws, *v++);
        while (v[w] && v[w] != ' ' && v[w] != '\t')
            w++;
        if (w == 0)
            break;
        if (w >= 12 && strncasecmp(v, "=?utf-8?B?", 10) == 0 && v[w - 2] == '?' &&
            v[w - 1] == '=') {
            unsigned acc = 0;
            int bits = 0;
            if (w > 75)
                fail_msg("encoded-word of %zu octets", w);
            if (!prev_ew && ws.len)
                buf_append(&out, ws.data, ws.len);
            for (size_t i = 10; i < w - 2 && v[i] != '='; i++) {
                int x = b64val(v[i]);
                if (x < 0)
                    fail_msg("bad base64 in %.*s", (int)w, v);
                acc = (acc << 6) | (unsigned)x;
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    buf_putc(&out, (char)((acc >> bits) & 0xff));
                }
            }
            prev_ew = true;
        } else {
            if (ws.len)
                buf_append(&out, ws.data, ws.len);
            buf_append(&out, v, w);
            prev_ew = false;
        }
        v += w;
    }
    buf_cleanup(&ws);
    return buf_steal(&out);
}

/* ---- tests ---- */

static void
test_date(void **state)
{
    char d[40];

    (void)state;
    mime_date(T0, d, sizeof(d));
    assert_string_equal(d, "Sun, 29 Nov 2026 11:13:53 +0000");
    mime_date(T0 + 999999, d, sizeof(d));
    assert_string_equal(d, "Sun, 29 Nov 2026 11:13:53 +0000");
    mime_date(0, d, sizeof(d));
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
    mime_date(-1, d, sizeof(d));
    assert_string_equal(d, "Wed, 31 Dec 1969 23:59:59 +0000");
    mime_date(951782400000000LL, d, sizeof(d)); /* leap day */
    assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 +0000");
}

static void
test_single_part_exact(void **state)
{
    struct mime_msg m = base_msg();
    char *msg;

    (void)state;
    msg = build(&m);
    assert_string_equal(msg, "Date: Sun, 29 Nov 2026 11:13:53 +0000\r\n"
                             "From: Example News <news@example.com>\r\n"
                             "To: Ann <ann@example.org>\r\n"
                             "Subject: Hello\r\n"
                             "Message-ID: <abc123@example.com>\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n"
                             "\r\n"
                             "Hi Ann\r\n");
    free(msg);

    /* HTML only, no names, a Reply-To, a body without a final newline. */
    m.text = NULL;
    m.html = "<p>x=1</p>";
    m.from_name = NULL;
    m.to_name = "  ";
    m.reply_to = "replies@example.com";
    msg = build(&m);
    assert_string_equal(msg, "Date: Sun, 29 Nov 2026 11:13:53 +0000\r\n"
                             "From: news@example.com\r\n"
                             "To: ann@example.org\r\n"
                             "Reply-To: replies@example.com\r\n"
                             "Subject: Hello\r\n"
                             "Message-ID: <abc123@example.com>\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: text/html; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n"
                             "\r\n"
                             "<p>x=3D1</p>=\r\n");
    free(msg);
}

static void
test_multipart_exact(void **state)
{
    struct mime_msg m = base_msg();
    char *msg, *ct;
    const char *body;

    (void)state;
    m.html = "<p>Hi Ann</p>";
    m.list_unsubscribe_url = "https://mail.example.com/u/v1.abc";
    msg = build(&m);
    check_wire(msg, 78);
    ct = header(msg, "Content-Type", NULL);
    assert_string_equal(ct, "multipart/alternative; boundary=\"=_mc_0123456789abcdef\"");
    free(ct);
    body = msg + header_len(msg) + 2;
    assert_string_equal(body, "--=_mc_0123456789abcdef\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Transfer-Encoding: quoted-printable\r\n"
                              "\r\n"
                              "Hi Ann\r\n"
                              "\r\n"
                              "--=_mc_0123456789abcdef\r\n"
                              "Content-Type: text/html; charset=utf-8\r\n"
                              "Content-Transfer-Encoding: quoted-printable\r\n"
                              "\r\n"
                              "<p>Hi Ann</p>\r\n"
                              "--=_mc_0123456789abcdef--\r\n");
    {
        char *names = header_names(msg);
        assert_string_equal(names, "Date\nFrom\nTo\nSubject\nMessage-ID\nMIME-Version\n"
                                   "List-Unsubscribe\nList-Unsubscribe-Post\nContent-Type\n");
        free(names);
    }
    free(msg);

    /* A long boundary folds the Content-Type before "boundary=" (and cannot be split). */
    m.boundary = "=_0123456789012345678901234567890123456789012345678901234567890123456";
    msg = build(&m);
    check_wire(msg, 998);
    assert_non_null(strstr(msg, "Content-Type: multipart/alternative;\r\n boundary=\"=_0123"));
    free(msg);
}

static void
test_display_names(void **state)
{
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"Ann Example", "Ann Example <x@example.org>"},
        {"O'Neil-Smith", "O'Neil-Smith <x@example.org>"},
        {"Smith, John", "\"Smith, John\" <x@example.org>"},
        {"Dr. Who", "\"Dr. Who\" <x@example.org>"},
        {"say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\" <x@example.org>"},
        {"two  spaces", "\"two  spaces\" <x@example.org>"},
        {"  trimmed\t", "trimmed <x@example.org>"},
        {"", "x@example.org"},
    };
    struct mime_msg m = base_msg();

    (void)state;
    m.to_addr = "x@example.org";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *msg, *to;
        m.to_name = cases[i].name;
        msg = build(&m);
        to = header(msg, "To", NULL);
        if (strcmp(to, cases[i].want) != 0)
            fail_msg("name \"%s\": To: %s, want %s", cases[i].name, to, cases[i].want);
        free(to);
        free(msg);
    }
}

static void
test_encoded_words(void **state)
{
    static const char *const subjects[] = {
        "Grüße aus Köln",
        "日本語のニュースレター：今週のお知らせと特別キャンペーンのご案内、ぜひご覧ください！",
        "Emoji 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 done",
        "=?utf-8?B?SGk=?= looks encoded",
        "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongwordnofold",
        "ascii then é at the end",
    };
    struct mime_msg m = base_msg();

    (void)state;
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
        char *msg, *v, *dec;
        m.subject = subjects[i];
        msg = build(&m);
        check_wire(msg, 78);
        v = header(msg, "Subject", NULL);
        if (strncmp(v, "=?utf-8?B?", 10) != 0)
            fail_msg("subject %zu not encoded: %s", i, v);
        dec = rfc2047_decode(v);
        assert_string_equal(dec, subjects[i]);
        free(dec);
        free(v);
        free(msg);
    }

    /* Display names too, and the address stays outside the encoding. */
    m.subject = "x";
    m.from_name = "Zoë Müller-Lüdenscheidt, Redaktion „Neuigkeiten“ der Gemeinde Ölbronn-Dürrn";
    {
        char *msg = build(&m), *v, *dec, *lt;
        check_wire(msg, 78);
        v = header(msg, "From", NULL);
        lt = strrchr(v, ' ');
        assert_string_equal(lt, " <news@example.com>");
        *lt = '\0';
        dec = rfc2047_decode(v);
        assert_string_equal(dec, m.from_name);
        free(dec);
        free(v);
        free(msg);
    }
}

static void
test_folding(void **state)
{
    struct mime_msg m = base_msg();
    struct buf s;
    char *msg, *v;

    (void)state;
    buf_init(&s, 0);
    for (int i = 0; i < 60; i++)
        buf_printf(&s, "%sword%d", i ? (i % 7 ? " " : "   ") : "", i);
    m.subject = s.data;
    m.from_name = s.data;
    m.to_name = "Name, With Comma and a good number of words to make it fold over the line";
    msg = build(&m);
    check_wire(msg, 78);
    /* Plain ASCII stays plain; unfolding gives back the value exactly. */
    v = header(msg, "Subject", NULL);
    assert_string_equal(v, s.data);
    free(v);
    /* Runs of spaces make the name a quoted-string, folded inside the quotes. */
    v = header(msg, "From", NULL);
    assert_int_equal(v[0], '"');
    assert_int_equal(strncmp(v + 1, s.data, s.len), 0);
    assert_string_equal(v + 1 + s.len, "\" <news@example.com>");
    free(v);
    v = header(msg, "To", NULL);
    assert_string_equal(
        v, "\"Name, With Comma and a good number of words to make it fold over the line\" "
           "<ann@example.org>");
    free(v);
    /* And it was folded: more header lines than fields. */
    assert_non_null(strstr(msg, "\r\n word"));
    free(msg);
    buf_cleanup(&s);
}

static void
test_header_injection(void **state)
{
    static const char *const payloads[] = {
        "Hi\r\nBcc: victim@evil.example",
        "Hi\nBcc: victim@evil.example",
        "Hi\rBcc: victim@evil.example",
        "Hi\r\n\r\nBody injected",
        "Hi\342\200\250Bcc: victim@evil.example" /* U+2028 */,
        "Hi\302\205Bcc: victim@evil.example" /* U+0085 */,
        "Hi\r\n Bcc: continuation",
        "Zoë\r\nBcc: victim@evil.example",
    };
    struct mime_msg m = base_msg();

    (void)state;
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *msg, *names, *v;
        m.subject = payloads[i];
        m.from_name = payloads[i];
        m.to_name = payloads[i];
        msg = build(&m);
        check_wire(msg, 78);
        names = header_names(msg);
        if (strcmp(names, "Date\nFrom\nTo\nSubject\nMessage-ID\nMIME-Version\nContent-Type\n"
                          "Content-Transfer-Encoding\n") != 0)
            fail_msg("payload %zu changed the headers:\n%s", i, names);
        free(names);
        /* The body is still the body. */
        assert_string_equal(msg + header_len(msg), "\r\nHi Ann\r\n");
        v = header(msg, "Subject", NULL);
        if (strncmp(v, "=?", 2) != 0)
            assert_null(strchr(v, '\r'));
        free(v);
        free(msg);
    }

    /* Addresses and ids are not cleaned but refused. */
    m = base_msg();
    m.to_addr = "ann@example.org\r\nBcc: victim@evil.example";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.from_addr = "news@example.com>\r\n";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.reply_to = "a@b.c d@e.f";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.message_id = "abc@x>\r\nBcc: y";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.list_unsubscribe_url = "https://x.example/u\r\nBcc: y";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
}

/* Builds a text-only message with body x and checks that it decodes to x. */
static void
roundtrip_single(const char *x)
{
    struct mime_msg m = base_msg();
    char *msg, *dec, *want;

    m.text = x;
    msg = build(&m);
    check_wire(msg, 78);
    dec = qp_decode(msg + header_len(msg) + 2, strlen(msg + header_len(msg) + 2));
    want = crlf(x);
    if (strcmp(dec, want) != 0)
        fail_msg("QP round trip (single part) of a %zu-octet body differs", strlen(x));
    free(want);
    free(dec);
    free(msg);
}

/* The same in a multipart message, for both parts. */
static void
roundtrip_multi(const char *x)
{
    struct mime_msg m = base_msg();
    char *msg, *want;
    const char *p;

    m.text = x;
    m.html = x;
    msg = build(&m);
    check_wire(msg, 78);
    want = crlf(x);
    p = msg + header_len(msg);
    for (int part = 0; part < 2; part++) {
        const char *start, *end;
        char *dec;
        start = strstr(p, "quoted-printable\r\n\r\n");
        assert_non_null(start);
        start += strlen("quoted-printable\r\n\r\n");
        end = strstr(start, "\r\n--=_mc_0123456789abcdef");
        assert_non_null(end);
        dec = qp_decode(start, (size_t)(end - start));
        if (strcmp(dec, want) != 0)
            fail_msg("QP round trip (part %d) of a %zu-octet body differs", part, strlen(x));
        free(dec);
        p = end + 2;
    }
    assert_string_equal(p, "--=_mc_0123456789abcdef--\r\n");
    free(want);
    free(msg);
}

static void
roundtrip(const char *x)
{
    roundtrip_single(x);
    roundtrip_multi(x);
}

static void
test_qp_roundtrip(void **state)
{
    static const char *const fixed[] = {
        "",
        "a",
        "a=b==c=",
        "trailing space \nand tab\t\nand both \t \r\nend ",
        "   \n\t\n \r\n",
        "line1\rline2\nline3\r\nline4\n\rline6\r\r\n",
        "Grüße, 日本語, 🎉 and = signs",
        ".dot at start\n..two\n.\nend",
        "From the start of a line\n",
        "=3D is not decoded twice: =3D=41",
        "\x01\x02\x7f control characters\x1b[0m",
    };
    struct buf x;
    unsigned seed = 12345;

    (void)state;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        roundtrip(fixed[i]);

    /* Long lines: exactly around the 76 limit, and 1000+ octets, with '=' and spaces. */
    buf_init(&x, 0);
    for (size_t len = 70; len <= 80; len++) {
        for (char fill = ' '; fill <= '='; fill += '=' - ' ') {
            buf_reset(&x);
            for (size_t k = 0; k < len; k++)
                buf_putc(&x, k % 3 ? 'a' : fill);
            roundtrip(x.data);
            buf_putc(&x, '\n');
            roundtrip(x.data);
        }
    }
    buf_reset(&x);
    for (int k = 0; k < 5000; k++)
        buf_putc(&x, k % 7 == 0 ? '=' : k % 11 == 0 ? ' ' : (char)('a' + k % 26));
    buf_puts(&x, "   \n");
    for (int k = 0; k < 1200; k++)
        buf_puts(&x, "é");
    roundtrip(x.data);

    /* Random octets (no NUL), with line breaks of every kind. */
    for (int round = 0; round < 200; round++) {
        buf_reset(&x);
        int n = (int)(seed % 3000);
        for (int k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            unsigned char c = (unsigned char)(seed >> 16);
            if (c == 0)
                c = (seed >> 8) & 1 ? '\r' : '\n';
            buf_putc(&x, (char)c);
        }
        buf_append(&x, "", 0);
        roundtrip(x.data);
    }
    buf_cleanup(&x);
}

/* No encoded line of the body starts with "From " (mbox would turn it into ">From "). */
static void
test_qp_from_line(void **state)
{
    static const char *const bodies[] = {
        "From the start\nFrom again\n",
        "x\r\nFrom here",
        /* "From " right after a soft break: the first line is 75 encoded octets. */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaFrom x\n",
    };
    struct mime_msg m = base_msg();

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *msg;
        m.text = bodies[i];
        msg = build(&m);
        for (const char *p = msg; p; p = strstr(p, "\r\n")) {
            p += p == msg ? 0 : 2;
            if (strncmp(p, "From ", 5) == 0)
                fail_msg("body %zu: an encoded line starts with \"From \"", i);
            if (*p == '\0')
                break;
        }
        assert_non_null(strstr(msg, "=46rom "));
        free(msg);
        roundtrip(bodies[i]);
    }
}

/* Encoded-words end after a space, so none cuts a word in two. */
static void
test_encoded_words_split_at_spaces(void **state)
{
    static const char *const subjects[] = {
        "Grüße aus Köln und Düsseldorf, Neuigkeiten über unsere Sommerangebote für Sie",
        "Zoë Ångström wünscht Ihnen schöne Feiertage und einen guten Start ins neue Jahr",
    };
    struct mime_msg m = base_msg();

    (void)state;
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
        char *msg, *v, *p, *dec;
        int words = 0;
        m.subject = subjects[i];
        msg = build(&m);
        v = header(msg, "Subject", NULL);
        dec = rfc2047_decode(v);
        assert_string_equal(dec, subjects[i]);
        free(dec);
        /* Each encoded-word but the last decodes to text ending with a space. */
        for (p = strstr(v, "=?utf-8?B?"); p; p = strstr(p + 1, "=?utf-8?B?")) {
            char *end = strstr(p, "?=");
            char *next = strstr(p + 1, "=?utf-8?B?");
            assert_non_null(end);
            if (next != NULL) {
                char *one = strndup(p, (size_t)(end + 2 - p));
                char *d = rfc2047_decode(one);
                size_t dl = strlen(d);
                if (dl == 0 || d[dl - 1] != ' ')
                    fail_msg("subject %zu: encoded-word \"%s\" ends mid-word", i, d);
                free(d);
                free(one);
            }
            words++;
        }
        assert_true(words > 1);
        free(v);
        free(msg);
    }
}

static void
test_list_unsubscribe(void **state)
{
    struct mime_msg m = base_msg();
    struct buf url;
    char *msg, *v;
    int n;

    (void)state;
    m.list_unsubscribe_url = "https://mail.example.com/u/v1.AbC_-123";
    m.list_unsubscribe_mailto = "mailto:unsubscribe@example.com?subject=unsubscribe";
    msg = build(&m);
    check_wire(msg, 998);
    v = header(msg, "List-Unsubscribe", &n);
    assert_int_equal(n, 1);
    assert_string_equal(v, "<https://mail.example.com/u/v1.AbC_-123>, "
                           "<mailto:unsubscribe@example.com?subject=unsubscribe>");
    free(v);
    v = header(msg, "List-Unsubscribe-Post", &n);
    assert_int_equal(n, 1);
    assert_string_equal(v, "List-Unsubscribe=One-Click");
    free(v);
    free(msg);

    /* Without the mailto; without the URL no header at all, even with a mailto. */
    m.list_unsubscribe_mailto = NULL;
    msg = build(&m);
    assert_non_null(strstr(msg, "\r\nList-Unsubscribe: <https://mail.example.com/u/v1.AbC_-123>\r\n"
                                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    free(msg);
    m.list_unsubscribe_url = NULL;
    m.list_unsubscribe_mailto = "mailto:u@example.com";
    msg = build(&m);
    v = header(msg, "List-Unsubscribe", &n);
    assert_null(v);
    v = header(msg, "List-Unsubscribe-Post", &n);
    assert_null(v);
    free(msg);

    /* A long URL stays whole on one line; the fold comes only between the URIs. */
    buf_init(&url, 0);
    buf_puts(&url, "https://mail.example.com/u/");
    for (int i = 0; i < 200; i++)
        buf_putc(&url, (char)('a' + i % 26));
    m.list_unsubscribe_url = url.data;
    msg = build(&m);
    check_wire(msg, 998);
    {
        struct buf want;
        buf_init(&want, 0);
        buf_printf(&want, "\r\nList-Unsubscribe: <%s>,\r\n <mailto:u@example.com>\r\n", url.data);
        assert_non_null(strstr(msg, want.data));
        buf_cleanup(&want);
    }
    free(msg);

    /* Up to 998 octets on the line is fine; one more is an error. */
    m.list_unsubscribe_mailto = NULL;
    buf_reset(&url);
    buf_puts(&url, "https://x.example/");
    while (url.len < 998 - strlen("List-Unsubscribe: <>"))
        buf_putc(&url, 'a');
    m.list_unsubscribe_url = url.data;
    msg = build(&m);
    check_wire(msg, 998);
    free(msg);
    buf_putc(&url, 'a');
    m.list_unsubscribe_url = url.data;
    assert_int_equal(build_err(&m), MC_ERR_INVALID);

    /* Only http(s) URLs and mailto: URIs, nothing that leaves the brackets. */
    static const char *const bad_urls[] = {
        "javascript:alert(1)", "ftp://x.example/u", "https://x.example/a b", "https://x/a>b",
        "https://x/<a",        "https://x/a,b",     "https://x/\xc3\xa9",    "https://",
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        m.list_unsubscribe_url = bad_urls[i];
        if (build_err(&m) != MC_ERR_INVALID)
            fail_msg("accepted URL %s", bad_urls[i]);
    }
    m.list_unsubscribe_url = "HTTPS://x.example/u";
    m.list_unsubscribe_mailto = "u@example.com";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m.list_unsubscribe_mailto = "MAILTO:u@example.com";
    assert_int_equal(build_err(&m), MC_ERR_OK);
    buf_cleanup(&url);
}

static void
test_errors(void **state)
{
    struct mime_msg m;
    struct buf b;

    (void)state;
    m = base_msg();
    m.text = NULL;
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.from_addr = NULL;
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.to_addr = "no-at-sign";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m = base_msg();
    m.message_id = NULL;
    assert_int_equal(build_err(&m), MC_ERR_INVALID);

    /* The boundary: needed only for two parts, then 1-70 RFC 2046 characters. */
    m = base_msg();
    m.boundary = NULL;
    assert_int_equal(build_err(&m), MC_ERR_OK);
    m.html = "<p>x</p>";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m.boundary = "has space";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m.boundary = "quote\"";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m.boundary = "0123456789012345678901234567890123456789012345678901234567890123456789x";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m.boundary = "0123456789012345678901234567890123456789012345678901234567890123456789";
    assert_int_equal(build_err(&m), MC_ERR_OK);
    /* A body that contains the boundary line is refused, not sent broken. */
    m.boundary = "b1";
    m.text = "before\n--b1\nafter";
    assert_int_equal(build_err(&m), MC_ERR_INVALID);
    m.text = "before --b1 inside a line is fine";
    assert_int_equal(build_err(&m), MC_ERR_OK);

    /* The output bound. */
    m = base_msg();
    buf_init(&b, 100);
    assert_int_equal(mime_build(&m, &b), MC_ERR_TOO_LARGE);
    buf_cleanup(&b);
    buf_init(&b, 1000);
    assert_int_equal(mime_build(&m, &b), MC_ERR_OK);
    /* Appends to what is there. */
    assert_int_equal(mime_build(&m, &b), MC_ERR_OK);
    assert_non_null(strstr(b.data + 1, "Date: "));
    buf_cleanup(&b);
}

/* Undoes dot-stuffing: drops the end of data and one leading dot per line. */
static char *
unstuff(const char *s)
{
    size_t n = strlen(s);
    struct buf b;
    bool bol = true;

    assert_true(n >= 3);
    assert_string_equal(s + n - 3, ".\r\n");
    n -= 3;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (bol && s[i] == '.') {
            assert_int_equal(s[i + 1], '.');
            i++;
        }
        buf_putc(&b, s[i]);
        bol = s[i] == '\n';
    }
    return buf_steal(&b);
}

static void
check_stuff(const char *in, const char *want)
{
    struct buf b;

    buf_init(&b, 0);
    smtp_dot_stuff(in, strlen(in), &b);
    assert_string_equal(b.data, want);
    buf_cleanup(&b);
}

static void
test_dot_stuff(void **state)
{
    struct mime_msg m = base_msg();
    struct buf b;
    char *msg, *back;
    const char *end;

    (void)state;
    check_stuff("a\r\n.b\r\n..c\r\n.\r\n", "a\r\n..b\r\n...c\r\n..\r\n.\r\n");
    check_stuff(".first", "..first\r\n.\r\n");
    check_stuff("no newline", "no newline\r\n.\r\n");
    check_stuff("ends\r\n", "ends\r\n.\r\n");
    check_stuff("", ".\r\n");
    check_stuff("mid.dle\r\n", "mid.dle\r\n.\r\n");
    /* CRLF-only input takes the run-copying path: the same bytes. */
    check_stuff("\r\n.x", "\r\n..x\r\n.\r\n");
    check_stuff("a\r\n.", "a\r\n..\r\n.\r\n");
    check_stuff("..\r\n", "...\r\n.\r\n");
    check_stuff("a\r\nb\r\n.c\r\nd", "a\r\nb\r\n..c\r\nd\r\n.\r\n");
    check_stuff("a\r\r\n.b", "a\r\n\r\n..b\r\n.\r\n"); /* a bare CR first: the byte path */
    /* Bare LF and CR are written as CRLF, so "\n.\n" cannot end the data (smuggling). */
    check_stuff("x\n.\ny", "x\r\n..\r\ny\r\n.\r\n");
    check_stuff("x\r.\rmail from:<a@b>\r\n", "x\r\n..\r\nmail from:<a@b>\r\n.\r\n");
    check_stuff("x\n.\r\n", "x\r\n..\r\n.\r\n");

    /* A whole message with dot lines in the body: one end of data, at the end. */
    m.text = ".hidden\n.\nlast line\n..\n";
    msg = build(&m);
    buf_init(&b, 0);
    smtp_dot_stuff(msg, strlen(msg), &b);
    end = strstr(b.data, "\r\n.\r\n");
    assert_non_null(end);
    assert_int_equal((size_t)(end - b.data) + 5, b.len);
    assert_non_null(strstr(b.data, "\r\n\r\n..hidden\r\n..\r\nlast line\r\n...\r\n.\r\n"));
    back = unstuff(b.data);
    assert_string_equal(back, msg);
    free(back);
    buf_cleanup(&b);
    free(msg);

    /* The bound of out is honoured. */
    buf_init(&b, 4);
    smtp_dot_stuff("hello", 5, &b);
    assert_int_equal(b.err, MC_ERR_TOO_LARGE);
    buf_cleanup(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_single_part_exact),
        cmocka_unit_test(test_multipart_exact),
        cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_folding),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_qp_roundtrip),
        cmocka_unit_test(test_qp_from_line),
        cmocka_unit_test(test_encoded_words_split_at_spaces),
        cmocka_unit_test(test_list_unsubscribe),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_dot_stuff),
    };
    return cmocka_run_group_tests_name("smtp/mime", tests, NULL, NULL);
}
