/*
 * test_classify.c - the one classification table: status codes, phrases,
 * their combination, and the rules that keep a mistake from suppressing.
 */
#include <string.h>

#include "mctest.h"

#include "bounce/classify.h"

#define C(status, code, diag, transient) bounce_classify(status, code, diag, transient)

static void
test_status_codes(void **state)
{
    (void)state;
    assert_int_equal(C("5.1.1", 550, "", false), BOUNCE_HARD);
    assert_int_equal(C("5.1.2", 0, NULL, false), BOUNCE_HARD);
    assert_int_equal(C("5.1.10", 550, "Recipient address has null MX", false), BOUNCE_HARD);
    assert_int_equal(C("5.4.4", 0, NULL, false), BOUNCE_HARD);
    assert_int_equal(C("5.2.2", 552, "Mailbox full", false), BOUNCE_SOFT);
    assert_int_equal(C("5.7.1", 554, "Message refused", false), BOUNCE_BLOCK);
    assert_int_equal(C("5.1.7", 553, "", false), BOUNCE_BLOCK); /* the sender's address */
    assert_int_equal(C("4.2.2", 452, "Mailbox full", false), BOUNCE_SOFT);
    assert_int_equal(C("5.0.0", 550, "", false), BOUNCE_UNDETERMINED);
    assert_int_equal(C(NULL, 0, NULL, false), BOUNCE_UNDETERMINED);
}

static void
test_transient_never_hard(void **state)
{
    (void)state;
    assert_int_equal(C("4.1.1", 450, "User unknown", false), BOUNCE_SOFT);
    assert_int_equal(C("5.1.1", 550, "User unknown", true), BOUNCE_SOFT);
    assert_int_equal(C(NULL, 451, "no such user", false), BOUNCE_SOFT);
}

static void
test_phrases(void **state)
{
    (void)state;
    /* A generic code leaves it to the words. */
    assert_int_equal(C("5.0.0", 550, "smtp; 550 5.1.1 <a@b.example>: User unknown", false),
                     BOUNCE_HARD);
    assert_int_equal(C(NULL, 0, "550 5.1.1 The email account that you tried to reach does not exist",
                       false),
                     BOUNCE_HARD);
    assert_int_equal(C(NULL, 0, "Host or domain name not found. Name service error", false),
                     BOUNCE_HARD);
    /* A spam block must never suppress, whatever the code says. */
    assert_int_equal(C("5.1.1", 550, "blocked using zen.spamhaus.org", false), BOUNCE_BLOCK);
    assert_int_equal(C(NULL, 554, "554 Service unavailable; Client host blocked", false),
                     BOUNCE_BLOCK);
    /* A policy code never becomes hard. */
    assert_int_equal(C("5.7.1", 550, "Recipient address rejected: User unknown", false),
                     BOUNCE_BLOCK);
    /* "5.2.1 User unknown": the subject-level row gives way to the words. */
    assert_int_equal(C("5.2.1", 550, "550 5.2.1 <a@b.example>... User Unknown", false),
                     BOUNCE_HARD);
    /* A DNS failure coded 5.4.4 is not a missing domain. */
    assert_int_equal(C("5.4.4", 0, "Malformed or unexpected name server reply", false),
                     BOUNCE_SOFT);
    assert_int_equal(C(NULL, 0, "552 Error: disk quota exceeded", false), BOUNCE_SOFT);
}

static void
test_mailbox_words_need_a_code(void **state)
{
    (void)state;
    /* Some servers say "user unknown" of mail they filtered: words alone do not suppress. */
    assert_int_equal(C(NULL, 550, "550 Unknown user a@b.example", false), BOUNCE_UNDETERMINED);
    assert_int_equal(C(NULL, 0, "[User unknown]", false), BOUNCE_UNDETERMINED);
    assert_int_equal(C(NULL, 550, "550 5.1.1 Unknown user", false), BOUNCE_HARD);
    /* Refused after DATA: a filter, not a missing mailbox. */
    assert_int_equal(C("5.1.1", 550, ">>> DATA <<< 550 5.1.1 User unknown", false), BOUNCE_BLOCK);
    /* ... unless the pipelined transcript shows the RCPT was refused. */
    assert_int_equal(
        C("5.1.1", 550, ">>> DATA <<< 550 5.1.1 User unknown <<< 554 no valid recipients", false),
        BOUNCE_HARD);
}

static void
test_feedback_and_names(void **state)
{
    (void)state;
    assert_int_equal(bounce_classify_feedback("abuse"), BOUNCE_COMPLAINT);
    assert_int_equal(bounce_classify_feedback("Fraud"), BOUNCE_COMPLAINT);
    assert_int_equal(bounce_classify_feedback("virus"), BOUNCE_COMPLAINT);
    assert_int_equal(bounce_classify_feedback("not-spam"), BOUNCE_UNDETERMINED);
    assert_int_equal(bounce_classify_feedback(NULL), BOUNCE_UNDETERMINED);
    for (int i = 0; i < BOUNCE_NCLASSES; i++)
        assert_int_equal(bounce_class_parse(bounce_class_str((enum bounce_class)i)), i);
    assert_int_equal(bounce_class_parse("nope"), -1);
    assert_string_equal(bounce_class_str(BOUNCE_AUTO_REPLY), "auto_reply");
}

static void
test_code_finders(void **state)
{
    char st[16];

    (void)state;
    assert_true(bounce_status_find("smtp; 550 5.1.10 null MX", 24, st));
    assert_string_equal(st, "5.1.10");
    assert_false(bounce_status_find("host 192.0.2.1 said", 19, st)); /* an address, not a code */
    assert_false(bounce_status_find("version 5.1.1.2", 15, st));
    assert_false(bounce_status_find("3.1.1", 5, st));
    assert_false(bounce_status_find("code 5.1", 8, st)); /* cut short */
    assert_false(bounce_status_find("5.", 2, st));
    assert_int_equal(bounce_reply_code_find("said: 550 <a@b>", 15), 550);
    assert_int_equal(bounce_reply_code_find("id 45512", 8), 0);
    assert_int_equal(bounce_reply_code_find(NULL, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_transient_never_hard),
        cmocka_unit_test(test_phrases),
        cmocka_unit_test(test_mailbox_words_need_a_code),
        cmocka_unit_test(test_feedback_and_names),
        cmocka_unit_test(test_code_finders),
    };
    return cmocka_run_group_tests_name("bounce/classify", tests, NULL, NULL);
}
