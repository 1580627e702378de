/*
 * test_html_text.c - the text alternative made from an HTML body.
 */
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include "template/html_text.h"

static char *
text_of(const char *html)
{
    struct buf b;

    buf_init(&b, 0);
    assert_int_equal(tpl_html_to_text(html, strlen(html), &b), MC_ERR_OK);
    buf_putc(&b, '\0');
    return b.data;
}

static void
expect(const char *html, const char *want)
{
    char *got = text_of(html);

    if (strcmp(got, want) != 0)
        fail_msg("HTML %s\n gives \"%s\"\n want \"%s\"", html, got, want);
    free(got);
}

static void
test_blocks_links_and_entities(void **state)
{
    (void)state;
    expect("<p>Hello <b>Ann</b>,</p><p>news &amp; more&nbsp;here</p>",
           "Hello Ann,\n\nnews & more\xc2\xa0here\n");
    expect("<html><head><title>T</title><style>p{color:red}</style></head>"
           "<body><script>alert(1)</script><div>a</div><div>b</div><!-- c --></body></html>",
           "a\nb\n");
    expect("<a href=\"https://ex.test/u/abc\">Unsubscribe</a>",
           "Unsubscribe (https://ex.test/u/abc)\n");
    expect("<a href=\"https://ex.test/\">https://ex.test/</a>", "https://ex.test/\n");
    expect("<a href=\"mailto:a@b.test\">a@b.test</a> <a href=\"javascript:x()\">x</a>",
           "a@b.test x\n");
    expect("<ul><li>one</li><li>two <i>2</i></li></ul>after", "- one\n- two 2\n\nafter\n");
    expect("line<br>next<br/><br>last", "line\nnext\nlast\n");
    expect("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc\n");
    expect("<pre>  keep\n  this</pre>", "  keep\n  this\n");
    expect("<p>x</p><hr><img src=\"l.png\" alt=\"Logo\">", "x\n\n----\n\nLogo\n");
    expect("Grüße <em>日本語</em> 🎉", "Grüße 日本語 🎉\n");
}

/* Broken HTML still gives text (libxml2's parser recovers), never a crash. */
static void
test_malformed(void **state)
{
    (void)state;
    expect("<p>open <b>bold <i>both</p> after", "open bold both\n\nafter\n");
    char *got = text_of("<<<>>> &bogus; <p");
    assert_non_null(strstr(got, "&bogus;"));
    free(got);
    expect("", "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_links_and_entities),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
