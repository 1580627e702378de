/*
 * test_smtpd_cmd.c - the bounce listener's command reader: verbs, paths,
 * ESMTP parameters, and what it refuses.
 */
#include <string.h>

#include "mctest.h"

#include "bounce/smtpd_cmd.h"

static enum smtpd_parse
P(const char *line, struct smtpd_cmd *c)
{
    return smtpd_cmd_parse(line, strlen(line), c);
}

static void
test_verbs(void **state)
{
    struct smtpd_cmd c;

    (void)state;
    assert_int_equal(P("EHLO client.example", &c), SMTPD_OK);
    assert_int_equal(c.verb, SMTPD_EHLO);
    assert_string_equal(c.arg, "client.example");
    assert_int_equal(P("helo x", &c), SMTPD_OK);
    assert_int_equal(c.verb, SMTPD_HELO);
    assert_int_equal(P("EHLO", &c), SMTPD_SYNTAX);
    assert_int_equal(P("DATA", &c), SMTPD_OK);
    assert_int_equal(c.verb, SMTPD_DATA);
    assert_int_equal(P("DATA now", &c), SMTPD_SYNTAX);
    assert_int_equal(P("quit", &c), SMTPD_OK);
    assert_int_equal(c.verb, SMTPD_QUIT);
    assert_int_equal(P("XYZZY", &c), SMTPD_OK);
    assert_int_equal(c.verb, SMTPD_UNKNOWN);
    assert_int_equal(P("", &c), SMTPD_OK);
    assert_int_equal(c.verb, SMTPD_UNKNOWN);
}

static void
test_paths_and_parameters(void **state)
{
    struct smtpd_cmd c;

    (void)state;
    assert_int_equal(P("MAIL FROM:<>", &c), SMTPD_OK);
    assert_string_equal(c.path, "");
    assert_int_equal(c.size, -1);
    assert_int_equal(P("MAIL FROM:<a@b.example> SIZE=2048 BODY=8BITMIME SMTPUTF8", &c), SMTPD_OK);
    assert_string_equal(c.path, "a@b.example");
    assert_int_equal(c.size, 2048);
    assert_true(c.body_8bit && c.smtputf8);
    assert_int_equal(P("mail from: <a@b.example>", &c), SMTPD_OK);
    assert_int_equal(P("RCPT TO:<@r1.example,@r2.example:u@d.example>", &c), SMTPD_OK);
    assert_string_equal(c.path, "u@d.example"); /* source route dropped */
    assert_false(c.path_utf8);
    /* Parameters of extensions not advertised (no DSN): 555. */
    assert_int_equal(P("RCPT TO:<u@d.example> NOTIFY=NEVER", &c), SMTPD_PARAM);
    assert_int_equal(P("MAIL FROM:<> RET=HDRS", &c), SMTPD_PARAM);
    assert_int_equal(P("MAIL FROM:<> BODY=BINARYMIME", &c), SMTPD_PARAM);
    assert_int_equal(P("MAIL FROM:<> FOO=bar", &c), SMTPD_PARAM);
    assert_int_equal(P("MAIL FROM:<> body=7bit", &c), SMTPD_OK);
    assert_int_equal(P("MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", &c), SMTPD_OK);
    assert_true(c.path_utf8 && c.smtputf8);
    assert_int_equal(P("RCPT TO:<>", &c), SMTPD_SYNTAX);
    assert_int_equal(P("MAIL FROM:a@b", &c), SMTPD_SYNTAX);
    assert_int_equal(P("MAIL TO:<a@b>", &c), SMTPD_SYNTAX);
    assert_int_equal(P("MAIL FROM:<a b@c>", &c), SMTPD_SYNTAX);
    assert_int_equal(P("MAIL FROM:<a@b> SIZE=x", &c), SMTPD_SYNTAX);
    assert_int_equal(P("MAIL FROM:<a@b> SIZE=99999999999999999999", &c), SMTPD_SYNTAX);
}

static void
test_bounds(void **state)
{
    struct smtpd_cmd c;
    char line[SMTPD_LINE_MAX + 2], path[SMTPD_PATH_MAX + 40];

    (void)state;
    memset(line, 'A', sizeof(line));
    assert_int_equal(smtpd_cmd_parse(line, SMTPD_LINE_MAX + 1, &c), SMTPD_TOO_LONG);
    memcpy(line, "NOOP ", 5);
    assert_int_equal(smtpd_cmd_parse(line, SMTPD_LINE_MAX, &c), SMTPD_OK);
    assert_int_equal(strlen(c.arg), SMTPD_LINE_MAX - 5);
    memcpy(path, "RCPT TO:<", 9);
    memset(path + 9, 'x', SMTPD_PATH_MAX + 1);
    memcpy(path + 9 + SMTPD_PATH_MAX + 1, ">", 2);
    assert_int_equal(P(path, &c), SMTPD_SYNTAX);
    assert_int_equal(smtpd_cmd_parse("NOOP \0x", 7, &c), SMTPD_SYNTAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_paths_and_parameters),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests_name("bounce/smtpd_cmd", tests, NULL, NULL);
}
