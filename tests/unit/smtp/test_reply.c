/*
 * test_reply.c - the SMTP reply parser: single and multi-line replies,
 * malformed lines, enhanced status codes, the text limit, queue ids of the
 * common relays, and EHLO extensions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include "smtp/reply.h"

/*
 * Feeds the lines of s (separated by "\n") to r; returns the result of
 * the last line.  r must have been initialised.
 */
static enum smtp_parse
feed_all(struct smtp_reply *r, const char *s)
{
    enum smtp_parse st = SMTP_PARSE_ERROR;

    for (;;) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        st = smtp_reply_feed(r, s, len);
        if (nl == NULL || st != SMTP_PARSE_MORE)
            return st;
        s = nl + 1;
    }
}

/* Parses s as one complete reply into r (initialised with max_text). */
static void
parse_ok(struct smtp_reply *r, size_t max_text, const char *s)
{
    smtp_reply_init(r, max_text);
    if (feed_all(r, s) != SMTP_PARSE_DONE)
        fail_msg("not a complete reply: %s", s);
}

static void
test_single_line(void **state)
{
    struct smtp_reply r;

    (void)state;
    parse_ok(&r, 512, "220 mail.example.com ESMTP Postfix");
    assert_int_equal(r.code, 220);
    assert_string_equal(r.enhanced, "");
    assert_string_equal(r.text.data, "mail.example.com ESMTP Postfix");
    assert_int_equal(smtp_reply_class(&r), 2);
    assert_false(r.truncated);
    smtp_reply_cleanup(&r);

    /* A bare code and a code with an empty text are both complete. */
    parse_ok(&r, 512, "250");
    assert_int_equal(r.code, 250);
    assert_string_equal(r.text.data, "");
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, "354 ", 4), SMTP_PARSE_DONE);
    assert_int_equal(r.code, 354);
    assert_int_equal(smtp_reply_class(&r), 3);
    assert_string_equal(r.text.data, "");
    smtp_reply_reset(&r);
    /* One trailing CR (a reader that split at LF) is not part of the text. */
    assert_int_equal(smtp_reply_feed(&r, "421 busy\r", 9), SMTP_PARSE_DONE);
    assert_string_equal(r.text.data, "busy");
    assert_int_equal(smtp_reply_class(&r), 4);
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, "554 no\r", 7), SMTP_PARSE_DONE);
    assert_int_equal(smtp_reply_class(&r), 5);
    smtp_reply_cleanup(&r);
}

static void
test_multi_line(void **state)
{
    struct smtp_reply r;

    (void)state;
    smtp_reply_init(&r, 512);
    assert_int_equal(smtp_reply_feed(&r, "250-first", 9), SMTP_PARSE_MORE);
    assert_int_equal(r.code, 250);
    /* Not complete yet: no class. */
    assert_int_equal(smtp_reply_class(&r), 0);
    assert_int_equal(smtp_reply_feed(&r, "250-", 4), SMTP_PARSE_MORE);
    assert_int_equal(smtp_reply_feed(&r, "250 last", 8), SMTP_PARSE_DONE);
    assert_string_equal(r.text.data, "first\n\nlast");
    assert_int_equal(smtp_reply_class(&r), 2);
    /* A finished reply takes no more lines until reset. */
    assert_int_equal(smtp_reply_feed(&r, "250 again", 9), SMTP_PARSE_ERROR);
    assert_int_equal(smtp_reply_class(&r), 0);
    smtp_reply_reset(&r);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.text.data, "");
    assert_int_equal(feed_all(&r, "250-a\n250 b"), SMTP_PARSE_DONE);
    assert_string_equal(r.text.data, "a\nb");
    smtp_reply_cleanup(&r);
}

static void
test_malformed(void **state)
{
    static const char *const bad[] = {
        "",        /* empty */
        "25",      /* too short */
        "2500 x",  /* four digits */
        "250OK",   /* missing space */
        "250_x",   /* wrong separator */
        "abc def", /* garbage */
        "150 x",   /* class 1 does not exist in SMTP */
        "650 x",   /* nor class 6 */
        "25a ok",  /* not digits */
        " 250 ok", /* leading space */
        "HTTP/1.1 400 Bad Request",
    };
    struct smtp_reply r;

    (void)state;
    smtp_reply_init(&r, 512);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        smtp_reply_reset(&r);
        if (smtp_reply_feed(&r, bad[i], strlen(bad[i])) != SMTP_PARSE_ERROR)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(smtp_reply_class(&r), 0);
        /* Sticky. */
        assert_int_equal(smtp_reply_feed(&r, "250 ok", 6), SMTP_PARSE_ERROR);
    }
    /* Mismatched codes in a multi-line reply. */
    smtp_reply_reset(&r);
    assert_int_equal(feed_all(&r, "250-a\n251 b"), SMTP_PARSE_ERROR);
    smtp_reply_reset(&r);
    assert_int_equal(feed_all(&r, "250-a\n550-b\n550 c"), SMTP_PARSE_ERROR);
    smtp_reply_reset(&r);
    assert_int_equal(feed_all(&r, "250-a\n250x"), SMTP_PARSE_ERROR);
    smtp_reply_reset(&r);
    /* A NUL byte in the code is garbage; in the text it is harmless. */
    assert_int_equal(smtp_reply_feed(&r, "2\0000 x", 5), SMTP_PARSE_ERROR);
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, "250 a\0b\033c\x7f", 10), SMTP_PARSE_DONE);
    assert_string_equal(r.text.data, "a?b?c?");
    assert_int_equal(r.text.len, 6);
    smtp_reply_cleanup(&r);
}

static void
test_enhanced_codes(void **state)
{
    struct smtp_reply r;

    (void)state;
    parse_ok(&r, 512, "250 2.1.5 Ok");
    assert_string_equal(r.enhanced, "2.1.5");
    assert_string_equal(r.text.data, "Ok");
    smtp_reply_cleanup(&r);

    /* Gmail repeats the code on every line; it is stripped from each. */
    parse_ok(&r, 512,
             "550-5.1.1 The email account that you tried to reach does not exist.\n"
             "550-5.1.1 Please try double-checking the recipient's email address\n"
             "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser x1si2 - gsmtp");
    assert_int_equal(r.code, 550);
    assert_string_equal(r.enhanced, "5.1.1");
    assert_string_equal(r.text.data, "The email account that you tried to reach does not exist.\n"
                                     "Please try double-checking the recipient's email address\n"
                                     "https://support.google.com/mail/?p=NoSuchUser x1si2 - gsmtp");
    assert_int_equal(smtp_reply_class(&r), 5);
    smtp_reply_cleanup(&r);

    /* Three-digit subject and detail; a code alone on the line. */
    parse_ok(&r, 512, "452 4.523.100");
    assert_string_equal(r.enhanced, "4.523.100");
    assert_string_equal(r.text.data, "");
    smtp_reply_cleanup(&r);

    /* Only the first line's code is kept. */
    parse_ok(&r, 512, "451-4.3.0 first\n451 4.7.1 second");
    assert_string_equal(r.enhanced, "4.3.0");
    assert_string_equal(r.text.data, "first\nsecond");
    smtp_reply_cleanup(&r);

    /* Not enhanced codes: class mismatch, four digits, no space after, IP-like text. */
    static const char *const not_codes[] = {
        "250 5.1.1 text", "250 2.1234.5 x", "250 2.1.5x",  "250 2.1.5.6 x",
        "250 2..5 x",     "250 2.1. x",     "250 1.2.3.4",
    };
    for (size_t i = 0; i < sizeof(not_codes) / sizeof(not_codes[0]); i++) {
        parse_ok(&r, 512, not_codes[i]);
        if (r.enhanced[0] != '\0')
            fail_msg("\"%s\" gave enhanced code %s", not_codes[i], r.enhanced);
        assert_string_equal(r.text.data, not_codes[i] + 4);
        smtp_reply_cleanup(&r);
    }
}

static void
test_truncation(void **state)
{
    struct smtp_reply r;
    char line[600];

    (void)state;
    memset(line, 'x', sizeof(line));
    memcpy(line, "250-", 4);
    smtp_reply_init(&r, 100);
    assert_int_equal(smtp_reply_feed(&r, line, sizeof(line)), SMTP_PARSE_MORE);
    assert_int_equal(r.text.len, 100);
    assert_true(r.truncated);
    line[3] = ' ';
    assert_int_equal(smtp_reply_feed(&r, line, sizeof(line)), SMTP_PARSE_DONE);
    assert_int_equal(r.text.len, 100);
    assert_int_equal(strlen(r.text.data), 100);
    assert_int_equal(r.text.err, MC_ERR_OK);
    assert_int_equal(smtp_reply_class(&r), 2);

    /* The limit counts the separators; exactly at the limit is not truncated. */
    smtp_reply_reset(&r);
    assert_false(r.truncated);
    smtp_reply_cleanup(&r);
    smtp_reply_init(&r, 5);
    assert_int_equal(feed_all(&r, "250-ab\n250 cd"), SMTP_PARSE_DONE);
    assert_string_equal(r.text.data, "ab\ncd");
    assert_false(r.truncated);
    smtp_reply_reset(&r);
    assert_int_equal(feed_all(&r, "250-ab\n250 cde"), SMTP_PARSE_DONE);
    assert_string_equal(r.text.data, "ab\ncd");
    assert_true(r.truncated);
    smtp_reply_cleanup(&r);
}

/* The queue id of s, or "(none)". */
static void
check_queue_id(const char *s, const char *want)
{
    struct smtp_reply r;
    char id[64];

    parse_ok(&r, 512, s);
    snprintf(id, sizeof(id), "(none)");
    if (!smtp_reply_queue_id(&r, id, sizeof(id)))
        assert_string_equal(id, "(none)"); /* untouched on failure */
    if (strcmp(id, want) != 0)
        fail_msg("reply \"%s\": queue id \"%s\", want \"%s\"", s, id, want);
    smtp_reply_cleanup(&r);
}

static void
test_queue_id(void **state)
{
    (void)state;
    check_queue_id("250 2.0.0 Ok: queued as 4ZxYv1", "4ZxYv1");
    check_queue_id("250 2.0.0 Ok: queued as 4ZxYv1Abcdz9kLm", "4ZxYv1Abcdz9kLm");
    check_queue_id("250 OK id=1u2v3w-000abc-Xy", "1u2v3w-000abc-Xy");
    check_queue_id("250 2.0.0 5BCDE123 Message accepted for delivery", "5BCDE123");
    check_queue_id("250 2.0.0 u8TJ4k2T012345 Message accepted for delivery", "u8TJ4k2T012345");
    check_queue_id("250 Message queued as QID77", "QID77");
    check_queue_id("250 2.6.0 Queued as <20260101.ABCD+x@relay.example>",
                   "20260101.ABCD+x@relay.example");
    check_queue_id("250 queued as ABC123.", "ABC123"); /* sentence full stop */
    check_queue_id("250-first line\n250 ok: queued as MULTI1", "MULTI1");
    /* Nothing to find, or not a success. */
    check_queue_id("250 2.0.0 Ok", "(none)");
    check_queue_id("250 2.0.0 Message accepted for delivery", "(none)");
    check_queue_id("250 queued as", "(none)");
    check_queue_id("250 queued as <>", "(none)");
    check_queue_id("250 queued as <unterminated", "(none)");
    check_queue_id("250 msgid=notthis", "(none)");
    check_queue_id("250 queued asABC", "(none)");
    check_queue_id("550 5.7.1 rejected: queued as 123", "(none)");
    check_queue_id("451 4.3.0 id=temp", "(none)");
    check_queue_id("354 go ahead queued as X", "(none)");
}

static void
test_queue_id_bounds(void **state)
{
    struct smtp_reply r;
    char id[8];

    (void)state;
    parse_ok(&r, 512, "250 Ok: queued as ABCDEFGHIJKLMNOP");
    memset(id, 'z', sizeof(id));
    assert_true(smtp_reply_queue_id(&r, id, sizeof(id)));
    assert_string_equal(id, "ABCDEFG");
    assert_true(smtp_reply_queue_id(&r, id, 1));
    assert_string_equal(id, "");
    assert_false(smtp_reply_queue_id(&r, id, 0));
    smtp_reply_cleanup(&r);

    /* An incomplete reply has no id. */
    smtp_reply_init(&r, 512);
    assert_int_equal(smtp_reply_feed(&r, "250-queued as X", 15), SMTP_PARSE_MORE);
    assert_false(smtp_reply_queue_id(&r, id, sizeof(id)));
    smtp_reply_cleanup(&r);
}

static void
test_ehlo(void **state)
{
    struct smtp_reply r;
    struct smtp_ext e;

    (void)state;
    parse_ok(&r, 4096,
             "250-mail.example.com\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n"
             "250-STARTTLS\n250-ENHANCEDSTATUSCODES\n250-8BITMIME\n250-DSN\n250-SMTPUTF8\n"
             "250 CHUNKING");
    smtp_ehlo_parse(&r, &e);
    assert_true(e.pipelining);
    assert_true(e.starttls);
    assert_true(e.eightbitmime);
    assert_true(e.smtputf8);
    assert_true(e.enhancedstatuscodes);
    assert_true(e.dsn);
    assert_false(e.auth_plain);
    assert_false(e.auth_login);
    assert_int_equal(e.size, 10240000);
    smtp_reply_cleanup(&r);

    /* Lowercase keywords, AUTH in both forms, SIZE without a number. */
    parse_ok(&r, 4096,
             "250-mx.example.org Hello [192.0.2.1]\n250-size\n250-auth=login\n"
             "250-Auth CRAM-MD5 plain\n250 pipelining");
    smtp_ehlo_parse(&r, &e);
    assert_true(e.pipelining);
    assert_true(e.auth_plain);
    assert_true(e.auth_login);
    assert_false(e.starttls);
    assert_int_equal(e.size, 0);
    smtp_reply_cleanup(&r);

    /* The greeting line is not an extension; look-alikes do not count. */
    parse_ok(&r, 4096,
             "250-PIPELINING\n250-STARTTLSX\n250-AUTH XOAUTH2 PLAINTEXT LOGINS\n250-SIZE 12x\n"
             "250 DSNX");
    smtp_ehlo_parse(&r, &e);
    assert_false(e.pipelining);
    assert_false(e.starttls);
    assert_false(e.auth_plain);
    assert_false(e.auth_login);
    assert_false(e.dsn);
    assert_int_equal(e.size, 0);
    smtp_reply_cleanup(&r);

    /* SIZE beyond int64 is unknown, not wrapped. */
    parse_ok(&r, 4096, "250-x\n250 SIZE 99999999999999999999999");
    smtp_ehlo_parse(&r, &e);
    assert_int_equal(e.size, 0);
    smtp_reply_cleanup(&r);

    /* A single-line EHLO reply advertises nothing; a refusal neither. */
    parse_ok(&r, 4096, "250 mail.example.com");
    smtp_ehlo_parse(&r, &e);
    assert_false(e.pipelining);
    smtp_reply_cleanup(&r);
    parse_ok(&r, 4096, "502-5.5.1 no\n502 5.5.1 PIPELINING");
    smtp_ehlo_parse(&r, &e);
    assert_false(e.pipelining);
    smtp_reply_cleanup(&r);

    /* A line cut by the limit is ignored, not read as "SIZE 1000". */
    parse_ok(&r, 22, "250-x\n250-PIPELINING\n250 SIZE 1000000");
    assert_true(r.truncated);
    assert_string_equal(r.text.data, "x\nPIPELINING\nSIZE 1000");
    smtp_ehlo_parse(&r, &e);
    assert_true(e.pipelining);
    assert_int_equal(e.size, 0);
    smtp_reply_cleanup(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),     cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_enhanced_codes),
        cmocka_unit_test(test_truncation),      cmocka_unit_test(test_queue_id),
        cmocka_unit_test(test_queue_id_bounds), cmocka_unit_test(test_ehlo),
    };
    return cmocka_run_group_tests_name("smtp/reply", tests, NULL, NULL);
}
