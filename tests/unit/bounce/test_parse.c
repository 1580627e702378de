/*
 * test_parse.c - the report parser on messages written here: an RFC 3464
 * DSN, an RFC 6533 global DSN, a feedback report, an auto-reply, plain-text
 * bounces, references in every place they may hide, and hostile input.
 */
#include <stdio.h>
#include <string.h>

#include "mctest.h"

#include "bounce/parse.h"
#include "core/util.h"

/* A well-formed reference (its signature is not checked by the parser). */
#define REF "abcdefghijklmnopqrstuvwxyz234567abcdefghij"

static void
parse(const char *msg, struct bounce_report *r)
{
    bounce_parse(msg, strlen(msg), r);
}

static const char dsn[] =
    "From: MAILER-DAEMON@relay.example.net (Mail Delivery System)\r\n"
    "To: mcb-" REF "@bounces.example.com\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n"
    "\r\n"
    "--B\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "<gone@example.org>: host mx.example.org said: 550 5.1.1 User unknown\r\n"
    "--B\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; relay.example.net\r\n"
    "\r\n"
    "Final-Recipient: rfc822; gone@Example.ORG\r\n"
    "Original-Recipient: rfc822;gone@example.org\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Remote-MTA: dns; mx.example.org\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address\r\n"
    "    rejected: User unknown in virtual mailbox table\r\n"
    "\r\n"
    "Final-Recipient: rfc822; full@example.org\r\n"
    "Action: delayed\r\n"
    "Status: 4.2.2\r\n"
    "Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n"
    "\r\n"
    "Final-Recipient: rfc822; ok@example.org\r\n"
    "Action: delivered\r\n"
    "Status: 2.0.0\r\n"
    "--B\r\n"
    "Content-Type: text/rfc822-headers\r\n"
    "\r\n"
    "From: news@example.com\r\n"
    "To: gone@example.org\r\n"
    "--B--\r\n";

static void
test_dsn(void **state)
{
    struct bounce_report r;

    (void)state;
    parse(dsn, &r);
    assert_int_equal(r.kind, BOUNCE_KIND_DSN);
    assert_int_equal(r.nrcpts, 2); /* the delivered one is no failure */
    assert_string_equal(r.rcpts[0].email, "gone@example.org");
    assert_int_equal(r.rcpts[0].cls, BOUNCE_HARD);
    assert_string_equal(r.rcpts[0].status, "5.1.1");
    assert_string_equal(r.rcpts[0].action, "failed");
    assert_string_equal(r.rcpts[0].remote_mta, "mx.example.org");
    assert_non_null(strstr(r.rcpts[0].diagnostic, "Recipient address rejected: User unknown"));
    assert_string_equal(r.rcpts[1].email, "full@example.org");
    assert_int_equal(r.rcpts[1].cls, BOUNCE_SOFT);
    assert_string_equal(r.reporting_mta, "relay.example.net");
    assert_int_equal(r.nrefs, 1);
    assert_string_equal(r.refs[0], REF);
    bounce_report_cleanup(&r);
}

static void
test_global_dsn_and_ref_in_original(void **state)
{
    /* RFC 6533: UTF-8 in the fields; the reference only in the returned
     * message's header, base64-encoded inside message/global. */
    static const char msg[] =
        "From: postmaster@relay.example.net\r\n"
        "To: sender@example.com\r\n"
        "Subject: Delivery Status Notification\r\n"
        "Content-Type: multipart/report; report-type=global-delivery-status; boundary=G\r\n"
        "\r\n"
        "--G\r\n"
        "Content-Type: message/global-delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n"
        "\r\n"
        "Final-Recipient: utf-8; j\xc3\xb6rg@example.de\r\n"
        "Action: failed\r\n"
        "Status: 5.1.10\r\n"
        "\r\n"
        "--G\r\n"
        "Content-Type: message/global\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        /* "X-Mailcast-Ref: <REF>\r\nSubject: hi\r\n\r\nbody\r\n" */
        "WC1NYWlsY2FzdC1SZWY6IGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MjM0NTY3YWJjZGVmZ2hp\r\n"
        "ag0KU3ViamVjdDogaGkNCg0KYm9keQ0K\r\n"
        "--G--\r\n";
    struct bounce_report r;

    (void)state;
    parse(msg, &r);
    assert_int_equal(r.kind, BOUNCE_KIND_DSN);
    assert_int_equal(r.nrcpts, 1);
    assert_string_equal(r.rcpts[0].email, "j\xc3\xb6rg@example.de");
    assert_int_equal(r.rcpts[0].cls, BOUNCE_HARD);
    assert_int_equal(r.nrefs, 1);
    assert_string_equal(r.refs[0], REF);
    bounce_report_cleanup(&r);
}

static void
test_arf(void **state)
{
    static const char msg[] =
        "From: feedback@isp.example\r\n"
        "To: fbl@example.com\r\n"
        "Subject: complaint\r\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n"
        "\r\n"
        "--F\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "This is an abuse report.\r\n"
        "--F\r\n"
        "Content-Type: message/feedback-report\r\n"
        "\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: isp-fbl/1.0\r\n"
        "Version: 1\r\n"
        "--F\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        "From: news@example.com\r\n"
        "To: Reader <reader@isp.example>\r\n"
        "X-Mailcast-Ref: " REF "\r\n"
        "--F--\r\n";
    struct bounce_report r;

    (void)state;
    parse(msg, &r);
    assert_int_equal(r.kind, BOUNCE_KIND_ARF);
    assert_int_equal(r.nrcpts, 1);
    assert_string_equal(r.rcpts[0].email, "reader@isp.example");
    assert_int_equal(r.rcpts[0].cls, BOUNCE_COMPLAINT);
    assert_string_equal(r.feedback_type, "abuse");
    assert_int_equal(r.nrefs, 1);
    bounce_report_cleanup(&r);
}

static void
test_auto_reply_and_not_bounce(void **state)
{
    struct bounce_report r;

    (void)state;
    parse("From: Jo <jo@example.org>\r\nTo: news@example.com\r\nSubject: Out of Office\r\n"
          "Auto-Submitted: auto-replied\r\n\r\nI am away.\r\n",
          &r);
    assert_int_equal(r.kind, BOUNCE_KIND_AUTO_REPLY);
    assert_int_equal(r.nrcpts, 1);
    assert_int_equal(r.rcpts[0].cls, BOUNCE_AUTO_REPLY);
    bounce_report_cleanup(&r);

    parse("From: jo@example.org\r\nTo: news@example.com\r\nSubject: Re: hello\r\n\r\n"
          "Thanks, write to bob@example.net too.\r\n",
          &r);
    assert_int_equal(r.kind, BOUNCE_KIND_NOT_BOUNCE);
    assert_int_equal(r.nrcpts, 0);
    bounce_report_cleanup(&r);
}

static void
test_plain_text_bounce(void **state)
{
    static const char qmail[] =
        "From: MAILER-DAEMON@mx.example.net\r\n"
        "To: mcb-" REF "@bounces.example.com\r\n"
        "Subject: failure notice\r\n"
        "\r\n"
        "Hi. This is the qmail-send program at mx.example.net.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "\r\n"
        "<nobody@example.org>:\r\n"
        "192.0.2.1 does not like recipient.\r\n"
        "Remote host said: 550 5.1.1 <nobody@example.org>... no such user\r\n"
        "\r\n"
        "--- Below this line is a copy of the message.\r\n"
        "\r\n"
        "From: news@example.com\r\n"
        "To: other@example.org\r\n";
    struct bounce_report r;

    (void)state;
    parse(qmail, &r);
    assert_int_equal(r.kind, BOUNCE_KIND_OTHER);
    assert_int_equal(r.nrcpts, 1); /* the copy's To is not a failed recipient */
    assert_string_equal(r.rcpts[0].email, "nobody@example.org");
    assert_int_equal(r.rcpts[0].cls, BOUNCE_HARD);
    assert_string_equal(r.rcpts[0].status, "5.1.1");
    assert_int_equal(r.nrefs, 1);
    bounce_report_cleanup(&r);
}

static void
test_hostile(void **state)
{
    struct bounce_report r;
    static char big[300000];

    (void)state;
    parse("", &r);
    assert_int_equal(r.kind, BOUNCE_KIND_NOT_BOUNCE);
    bounce_report_cleanup(&r);
    bounce_parse("\0\0\0", 3, &r);
    bounce_report_cleanup(&r);
    /* Many recipients and a long field: bounded. */
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; x@", 69);
    parse(big, &r);
    assert_true(r.nrcpts <= BOUNCE_MAX_RCPTS);
    bounce_report_cleanup(&r);
    {
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "From: MAILER-DAEMON@x.example\r\nSubject: failure notice\r\n\r\n");
        for (int i = 0; i < 500; i++)
            buf_printf(&b, "<u%d@example.org>: 550 5.1.1 unknown\r\n", i);
        bounce_parse(b.data, b.len, &r);
        assert_int_equal(r.nrcpts, BOUNCE_MAX_RCPTS);
        for (int i = 0; i < r.nrcpts; i++)
            assert_true(strlen(r.rcpts[i].diagnostic) <= BOUNCE_DIAG_MAX);
        bounce_report_cleanup(&r);
        buf_cleanup(&b);
    }
    /* Shapes that cost GMime seconds (an attacker review: 160,000 nested
     * multiparts, 650,000 header lines) are not given to GMime: kind other. */
    {
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, "From: MAILER-DAEMON@x.example\r\nMIME-Version: 1.0\r\n");
        for (int i = 0; i < 20000; i++)
            buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n",
                       i, i);
        bounce_parse(b.data, b.len, &r);
        assert_int_equal(r.kind, BOUNCE_KIND_OTHER);
        assert_int_equal(r.nrcpts, 0);
        bounce_report_cleanup(&r);
        buf_reset(&b);
        for (int i = 0; i < 6000; i++)
            buf_printf(&b, "X-H%d: v\r\n", i);
        buf_puts(&b, "\r\nbody\r\n");
        bounce_parse(b.data, b.len, &r);
        assert_int_equal(r.kind, BOUNCE_KIND_OTHER);
        bounce_report_cleanup(&r);
        buf_cleanup(&b);
    }
    bounce_report_cleanup(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsn),
        cmocka_unit_test(test_global_dsn_and_ref_in_original),
        cmocka_unit_test(test_arf),
        cmocka_unit_test(test_auto_reply_and_not_bounce),
        cmocka_unit_test(test_plain_text_bounce),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests_name("bounce/parse", tests, NULL, NULL);
}
