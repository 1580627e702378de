/*
 * test_email.c - address validation and normalisation.
 */
#include <string.h>

#include "mctest.h"

#include "core/email.h"

static void
ok(const char *in, const char *want, const char *want_lc)
{
    char out[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    const char *reason = NULL;

    if (!email_normalize(in, out, lc, &reason))
        fail_msg("\"%s\" refused: %s", in, reason);
    assert_string_equal(out, want);
    assert_string_equal(lc, want_lc);
}

static void
bad(const char *in)
{
    char out[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    const char *reason = NULL;

    if (email_normalize(in, out, lc, &reason))
        fail_msg("\"%s\" accepted as \"%s\"", in, out);
    assert_non_null(reason);
}

static void
test_accepts_and_normalises(void **state)
{
    (void)state;
    ok("user@example.com", "user@example.com", "user@example.com");
    ok("  John.Smith@EXAMPLE.Com ", "John.Smith@example.com", "john.smith@example.com");
    ok("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk");
    ok("o'brien@example.ie", "o'brien@example.ie", "o'brien@example.ie");
    ok("x@xn--bcher-kva.example", "x@xn--bcher-kva.example", "x@xn--bcher-kva.example");
    ok("x@b\xc3\xbc" "cher.example", "x@xn--bcher-kva.example", "x@xn--bcher-kva.example");
    ok("x@B\xc3\x9c" "CHER.example", "x@xn--bcher-kva.example", "x@xn--bcher-kva.example");
    /* A UTF-8 local part is kept as is (SMTPUTF8). */
    ok("j\xc3\xb6rg@example.de", "j\xc3\xb6rg@example.de", "j\xc3\xb6rg@example.de");
    assert_true(email_needs_utf8("j\xc3\xb6rg@example.de"));
    assert_false(email_needs_utf8("jorg@example.de"));
}

static void
test_refuses(void **state)
{
    char longlocal[80], longlabel[80], longaddr[300];

    (void)state;
    bad("");
    bad("   ");
    bad("plainaddress");
    bad("@example.com");
    bad("user@");
    bad("user@@example.com");
    bad("a@b@example.com");
    bad("user name@example.com");
    bad("user@exa mple.com");
    bad("user\t@example.com");
    bad("user\r\n@example.com");
    bad(".user@example.com");
    bad("user.@example.com");
    bad("us..er@example.com");
    bad("user@localhost");
    bad("user@-example.com");
    bad("user@example-.com");
    bad("user@exa_mple.com");
    bad("user@example..com");
    bad("user@[127.0.0.1]");
    bad("\"quoted\"@example.com");
    bad("user@127.0.0.1");
    bad("us\xc3(er@example.com"); /* invalid UTF-8 */
    bad("<user@example.com>");
    bad("user@example.com,other@example.com");
    memset(longlocal, 'a', 65);
    memcpy(longlocal + 65, "@example.com", 13);
    bad(longlocal); /* 65-octet local part */
    longlocal[64] = '@';
    memcpy(longlocal + 64, "@example.com", 13);
    ok(longlocal, longlocal, longlocal); /* 64 is fine */
    memset(longlabel, 'b', 66);
    memcpy(longlabel, "u@", 2);
    memcpy(longlabel + 66, ".com", 5);
    bad(longlabel); /* a 64-octet label */
    longlabel[65] = 'x';
    longlabel[64] = '.';
    ok(longlabel, longlabel, longlabel); /* labels of 62 and 2 */
    /* 254 octets in all is the limit. */
    memset(longaddr, 'c', sizeof(longaddr));
    memcpy(longaddr, "u@", 2);
    for (int i = 2 + 60; i < 250; i += 61)
        longaddr[i] = '.';
    memcpy(longaddr + 251, ".io", 4); /* 254 octets */
    {
        char out[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
        assert_int_equal(strlen(longaddr), 254);
        assert_true(email_normalize(longaddr, out, lc, NULL));
    }
    memcpy(longaddr + 251, "x.io", 5); /* 255 octets */
    bad(longaddr);
}

/* Finding 10 of issue 12: line and paragraph separators, C1 controls, invisible characters. */
static void
test_refuses_separators_and_controls(void **state)
{
    (void)state;
    bad("a\xe2\x80\xa8" "b@example.com"); /* U+2028 LINE SEPARATOR */
    bad("a\xe2\x80\xa9" "b@example.com"); /* U+2029 PARAGRAPH SEPARATOR */
    bad("a\xc2\x85" "b@example.com");     /* U+0085 NEXT LINE */
    bad("a\xc2\x9b" "b@example.com");     /* U+009B, a C1 control */
    bad("a\xc2\xa0" "b@example.com");     /* U+00A0 NO-BREAK SPACE */
    bad("a\xe3\x80\x80" "b@example.com"); /* U+3000 IDEOGRAPHIC SPACE */
    bad("a\xe2\x80\x8b" "b@example.com"); /* U+200B ZERO WIDTH SPACE */
    bad("a\xe2\x80\xae" "b@example.com"); /* U+202E RIGHT-TO-LEFT OVERRIDE */
    bad("a\xef\xbb\xbf" "b@example.com"); /* U+FEFF */
    bad("a\x7f" "b@example.com");           /* DEL */
    bad("a\xe2\x80\xa8" "b@exa\xe2\x80\xa8mple.com");
    /* Letters beyond ASCII stay accepted. */
    ok("j\xc3\xb6rg@example.de", "j\xc3\xb6rg@example.de", "j\xc3\xb6rg@example.de");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_and_normalises),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_refuses_separators_and_controls),
    };
    return cmocka_run_group_tests_name("core/email", tests, NULL, NULL);
}
