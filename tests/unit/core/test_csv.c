/*
 * test_csv.c - the streaming CSV reader (chunking, quoting, line numbers,
 * limits) and the writer (quoting, formula neutralisation, round trip).
 */
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include "core/csv.h"

struct rows {
    struct buf out; /* "line:f1|f2|...\n" per row */
    int stop_after;
    int n;
};

static bool
collect(void *ctx, long line, char **fields, size_t *lens, int nfields)
{
    struct rows *r = ctx;

    buf_printf(&r->out, "%ld:", line);
    for (int i = 0; i < nfields; i++) {
        if (i)
            buf_putc(&r->out, '|');
        buf_append(&r->out, fields[i], lens[i]);
    }
    buf_putc(&r->out, '\n');
    r->n++;
    return r->stop_after == 0 || r->n < r->stop_after;
}

/* Parses input fed in chunks of size chunk; returns the rows, or the error text. */
static char *
parse(const char *input, size_t chunk, size_t max_row)
{
    struct rows rows = {0};
    struct csv_reader *r;
    size_t len = strlen(input);
    mc_err err = MC_ERR_OK;

    buf_init(&rows.out, 0);
    r = csv_reader_new(max_row, collect, &rows);
    for (size_t off = 0; off < len && err == MC_ERR_OK; off += chunk)
        err = csv_reader_feed(r, input + off, len - off < chunk ? len - off : chunk);
    if (err == MC_ERR_OK)
        err = csv_reader_finish(r);
    if (err != MC_ERR_OK) {
        buf_reset(&rows.out);
        buf_printf(&rows.out, "ERROR %s", csv_reader_error(r));
    }
    csv_reader_free(r);
    return buf_steal(&rows.out);
}

static void
check(const char *input, const char *want)
{
    /* Every chunking gives the same answer. */
    for (size_t chunk = 1; chunk <= strlen(input) + 1; chunk++) {
        char *got = parse(input, chunk, 1000);
        if (strcmp(got, want) != 0)
            fail_msg("chunk %zu: got\n%s\nwant\n%s", chunk, got, want);
        free(got);
    }
}

static void
test_basic_rows(void **state)
{
    (void)state;
    check("email,name\na@x.io,Ann\nb@x.io,Bob\n", "1:email|name\n2:a@x.io|Ann\n3:b@x.io|Bob\n");
    check("email,name\r\na@x.io,Ann\r\n", "1:email|name\n2:a@x.io|Ann\n");
    check("email\na@x.io", "1:email\n2:a@x.io\n"); /* no final newline */
    check("\xef\xbb\xbf" "email\na@x.io\n", "1:email\n2:a@x.io\n"); /* BOM */
    check("email\n\n\na@x.io\n\r\nb@x.io\n", "1:email\n4:a@x.io\n6:b@x.io\n"); /* blanks */
}

static void
test_quoting(void **state)
{
    (void)state;
    check("a,b\n\"x, y\",\"he said \"\"hi\"\"\"\n", "1:a|b\n2:x, y|he said \"hi\"\n");
    /* An embedded newline keeps the row's start line; the next row's line is right. */
    check("a,b\n\"line1\nline2\",z\nq,r\n", "1:a|b\n2:line1\nline2|z\n4:q|r\n");
    check("a\n\"\"\n", "1:a\n2:\n");
    check("a,b,c\n1,,3\n", "1:a|b|c\n2:1||3\n");
}

static void
test_unterminated_quote_names_line(void **state)
{
    char *got;

    (void)state;
    got = parse("email,name\na@x.io,Ann\nb@x.io,\"Bob\nc@x.io,Cy\n", 7, 1000);
    assert_string_equal(got, "ERROR unterminated quoted field in the row starting at line 3");
    free(got);
}

static void
test_row_limit(void **state)
{
    char big[300];
    char *got;

    (void)state;
    memset(big, 'x', sizeof(big));
    memcpy(big, "a\n", 2);
    big[sizeof(big) - 2] = '\n';
    big[sizeof(big) - 1] = '\0';
    got = parse(big, 16, 100);
    assert_non_null(strstr(got, "ERROR line 2 is longer than 100 bytes"));
    free(got);
    /* A quote left open is stopped by the limit, not by memory. */
    got = parse("a\n\"open\nmore\nmore\nmore\nmore\nmore\nmore\n", 5, 20);
    assert_non_null(strstr(got, "ERROR the row starting at line 2 is longer than 20 bytes"));
    free(got);
}

static void
test_stop(void **state)
{
    struct rows rows = {0};
    struct csv_reader *r;

    (void)state;
    buf_init(&rows.out, 0);
    rows.stop_after = 2;
    r = csv_reader_new(100, collect, &rows);
    assert_int_equal(csv_reader_feed(r, "a\nb\nc\nd\n", 8), MC_ERR_OK);
    assert_int_equal(csv_reader_finish(r), MC_ERR_OK);
    assert_int_equal(rows.n, 2);
    csv_reader_free(r);
    buf_cleanup(&rows.out);
}

static void
test_writer(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    csv_write_field(&b, "plain", true);
    buf_putc(&b, ',');
    csv_write_field(&b, "a,b", true);
    buf_putc(&b, ',');
    csv_write_field(&b, "say \"x\"", true);
    buf_putc(&b, ',');
    csv_write_field(&b, "=HYPERLINK(\"http://evil\")", true);
    buf_putc(&b, ',');
    csv_write_field(&b, "+1", true);
    buf_putc(&b, ',');
    csv_write_field(&b, "-1", false);
    buf_putc(&b, ',');
    csv_write_field(&b, "@SUM(A1)", true);
    buf_putc(&b, ',');
    csv_write_field(&b, "two\nlines", true);
    assert_string_equal(b.data, "plain,\"a,b\",\"say \"\"x\"\"\",\"'=HYPERLINK(\"\"http://evil\"\")\","
                                "\"'+1\",-1,\"'@SUM(A1)\",\"two\nlines\"");
    /* What the writer wrote, the reader and csv_unneutralise give back. */
    buf_putc(&b, '\n');
    char *got = parse(b.data, 3, 1000);
    assert_string_equal(got, "1:plain|a,b|say \"x\"|'=HYPERLINK(\"http://evil\")|'+1|-1|'@SUM(A1)|"
                             "two\nlines\n");
    free(got);
    char s1[] = "'=x", s2[] = "'plain", s3[] = "'-", s4[] = "=";
    assert_string_equal(csv_unneutralise(s1), "=x");
    assert_string_equal(csv_unneutralise(s2), "'plain");
    assert_string_equal(csv_unneutralise(s3), "-");
    assert_string_equal(csv_unneutralise(s4), "=");
    buf_cleanup(&b);
}

/* Found by fuzz_csv: the reader trims unquoted tabs, so the writer must quote them. */
static void
test_writer_keeps_edge_tabs(void **state)
{
    struct buf b;
    char *got;

    (void)state;
    buf_init(&b, 0);
    csv_write_field(&b, "a", false);
    buf_putc(&b, ',');
    csv_write_field(&b, "\t", false);
    buf_putc(&b, ',');
    csv_write_field(&b, "x\t", false);
    buf_putc(&b, ',');
    csv_write_field(&b, "in\tside", false);
    buf_putc(&b, '\n');
    assert_string_equal(b.data, "a,\"\t\",\"x\t\",in\tside\n");
    got = parse(b.data, 2, 1000);
    assert_string_equal(got, "1:a|\t|x\t|in\tside\n");
    free(got);
    buf_cleanup(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_rows),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_unterminated_quote_names_line),
        cmocka_unit_test(test_row_limit),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_writer_keeps_edge_tabs),
    };
    return cmocka_run_group_tests_name("core/csv", tests, NULL, NULL);
}
