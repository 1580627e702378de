/*
 * test_util.c - bounded buffers, integer parsing, UTF-8 checks, the error table.
 */
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

static void
test_buf_grows_and_terminates(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        buf_puts(&b, "abc");
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[3000], '\0');
    assert_int_equal(b.err, MC_ERR_OK);
    buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data + 3000, "42-x");
    buf_cleanup(&b);
}

static void
test_buf_limit_is_sticky(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 10);
    buf_puts(&b, "0123456789");
    assert_int_equal(b.err, MC_ERR_OK);
    assert_int_equal(b.len, 10);
    buf_putc(&b, 'x'); /* one past the limit */
    assert_int_equal(b.err, MC_ERR_TOO_LARGE);
    assert_int_equal(b.len, 10);
    buf_puts(&b, ""); /* every later append is a no-op */
    buf_putc(&b, 'y');
    assert_int_equal(b.len, 10);
    assert_int_equal(b.err, MC_ERR_TOO_LARGE);
    buf_reset(&b);
    assert_int_equal(b.err, MC_ERR_OK);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b);
}

static void
test_buf_printf_long(void **state)
{
    struct buf b;
    char big[1000];

    (void)state;
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 0);
    buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[1000], '>');
    char *s = buf_steal(&b);
    assert_int_equal(strlen(s), 1001);
    assert_null(b.data);
    free(s);
}

static void
test_parse_int64(void **state)
{
    int64_t v = -1;

    (void)state;
    assert_true(parse_int64("0", 0, 10, &v));
    assert_int_equal(v, 0);
    assert_true(parse_int64("-5", -10, 10, &v));
    assert_int_equal(v, -5);
    assert_true(parse_int64("9223372036854775807", 0, INT64_MAX, &v));
    assert_false(parse_int64("9223372036854775808", 0, INT64_MAX, &v)); /* overflow */
    assert_false(parse_int64("", 0, 10, &v));
    assert_false(parse_int64(NULL, 0, 10, &v));
    assert_false(parse_int64(" 1", 0, 10, &v));
    assert_false(parse_int64("1 ", 0, 10, &v));
    assert_false(parse_int64("1x", 0, 10, &v));
    assert_false(parse_int64("11", 0, 10, &v)); /* boundary: max is 10 */
    assert_true(parse_int64("10", 0, 10, &v));
    assert_false(parse_int64("-1", 0, 10, &v));
}

static void
test_utf8(void **state)
{
    (void)state;
    assert_true(str_valid_utf8("plain ascii", 11, false));
    assert_true(str_valid_utf8("caf\xc3\xa9", 5, false));
    assert_true(str_valid_utf8("\xf0\x9f\x98\x80", 4, false)); /* emoji */
    assert_false(str_valid_utf8("\xc3", 1, false));            /* truncated */
    assert_false(str_valid_utf8("\xc0\xaf", 2, false));        /* overlong */
    assert_false(str_valid_utf8("\xed\xa0\x80", 3, false));    /* surrogate */
    assert_false(str_valid_utf8("\xf4\x90\x80\x80", 4, false)); /* > U+10FFFF */
    assert_false(str_valid_utf8("a\nb", 3, false));
    assert_true(str_valid_utf8("a\r\nb", 4, true));
    assert_false(str_valid_utf8("a\0b", 3, true));
}

static void
test_err_table(void **state)
{
    (void)state;
    assert_int_equal(mc_err_http(MC_ERR_NOT_FOUND), 404);
    assert_string_equal(mc_err_code(MC_ERR_NOT_FOUND), "not_found");
    assert_int_equal(mc_err_http(MC_ERR_INVALID), 422);
    assert_int_equal(mc_err_http(MC_ERR_TOO_LARGE), 413);
    assert_int_equal(mc_err_http(MC_ERR_MEDIA_TYPE), 415);
    assert_int_equal(mc_err_http(MC_ERR_METHOD), 405);
    assert_string_equal(mc_err_name(MC_ERR_CONFLICT), "CONFLICT");
    /* An unknown number falls back to an internal error, never NULL. */
    assert_int_equal(mc_err_http((mc_err)9999), 500);
}

/* Issue 12 finding 20: jansson allocates through xmalloc. */
static void
test_json_alloc_through_xmalloc(void **state)
{
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    json_t *v;

    (void)state;
    util_json_alloc_init();
    json_get_alloc_funcs(&m, &f);
    assert_ptr_equal(m, xmalloc);
    assert_ptr_equal(f, free);
    v = json_pack("{s:s}", "a", "b");
    assert_non_null(v);
    json_decref(v);
}

/* Issue 12 finding 5: a logged value can neither end its field nor start a line. */
static void
test_log_escape(void **state)
{
    char out[64], tiny[8];

    (void)state;
    assert_string_equal(log_escape("/a\"b\\c\nts=x\x7f\xc3\xa9", out, sizeof(out)),
                        "/a\\\"b\\\\c\\x0ats=x\\x7f\\xc3\\xa9");
    assert_string_equal(log_escape("plain-value_1.2", out, sizeof(out)), "plain-value_1.2");
    assert_string_equal(log_escape(NULL, out, sizeof(out)), "");
    assert_string_equal(log_escape("abcdefghij", tiny, sizeof(tiny)), "abcd...");
    assert_string_equal(log_escape("\n\n\n", tiny, sizeof(tiny)), "\\x0a...");
}

/* Case-blind substring search: edges, both cases of the first byte, bounds. */
static void
test_str_contains_ci(void **state)
{
    const char *h = "550 5.1.1 User Unknown";

    (void)state;
    assert_true(str_contains_ci(h, strlen(h), "user unknown"));
    assert_true(str_contains_ci(h, strlen(h), "USER UNKNOWN"));
    assert_true(str_contains_ci(h, strlen(h), "unknown"));   /* at the very end */
    assert_true(str_contains_ci(h, strlen(h), "550"));       /* at the start, a digit */
    assert_true(str_contains_ci(h, strlen(h), ""));
    assert_false(str_contains_ci(h, strlen(h), "unknowns")); /* runs past the end */
    assert_false(str_contains_ci(h, 10, "user"));            /* past n, though in the string */
    assert_false(str_contains_ci("", 0, "a"));
    assert_false(str_contains_ci("ab", 2, "abc"));
    assert_true(str_contains_ci("aAb", 3, "ab"));            /* a failed first try, then a match */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_and_terminates),
        cmocka_unit_test(test_buf_limit_is_sticky),
        cmocka_unit_test(test_buf_printf_long),
        cmocka_unit_test(test_parse_int64),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_json_alloc_through_xmalloc),
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_str_contains_ci),
    };
    return cmocka_run_group_tests_name("core/util", tests, NULL, NULL);
}
