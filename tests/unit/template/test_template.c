/*
 * test_template.c - every construct, every escaping context, compile errors
 * with positions, and the size limits.
 */
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include "template/template.h"

static char *
render_ctx(enum tpl_ctx ctx, const char *src, const struct tpl_data *d)
{
    struct tpl *t = NULL;
    struct tpl_error e;
    struct buf out;

    if (tpl_compile(src, strlen(src), ctx, 1 << 20, 1 << 20, &t, &e) != MC_ERR_OK)
        fail_msg("compile \"%s\": %d:%d %s", src, e.line, e.column, e.message);
    buf_init(&out, 0);
    assert_int_equal(tpl_render(t, d, &out), MC_ERR_OK);
    tpl_free(t);
    return buf_steal(&out);
}

static void
expect(enum tpl_ctx ctx, const char *src, const struct tpl_data *d, const char *want)
{
    char *got = render_ctx(ctx, src, d);

    if (strcmp(got, want) != 0)
        fail_msg("\"%s\" rendered \"%s\", want \"%s\"", src, got, want);
    free(got);
}

static void
expect_error(const char *src, int line, int col, const char *fragment)
{
    struct tpl *t = NULL;
    struct tpl_error e;

    if (tpl_compile(src, strlen(src), TPL_HTML, 1 << 20, 1 << 20, &t, &e) == MC_ERR_OK) {
        tpl_free(t);
        fail_msg("\"%s\" compiled", src);
    }
    if (e.line != line || e.column != col || strstr(e.message, fragment) == NULL)
        fail_msg("\"%s\": got %d:%d \"%s\", want %d:%d \"%s\"", src, e.line, e.column, e.message,
                 line, col, fragment);
}

static struct tpl_data
sample(json_t *attrs)
{
    struct tpl_data d = {
        .email = "ann@example.com",
        .name = "Ann Marie Smith",
        .unsubscribe_url = "https://mail.example.com/u/TOKEN",
        .campaign_name = "Winter <Sale>",
        .campaign_id = "0f0f0f0f-0000-4000-8000-000000000000",
        .attributes = attrs,
    };
    return d;
}

static void
test_variables(void **state)
{
    json_t *a = json_pack("{s:s, s:i, s:b, s:{s:s}, s:f}", "city", "Oslo", "visits", 42, "vip", 1,
                          "address", "zip", "0150", "score", 2.5);
    struct tpl_data d = sample(a);

    (void)state;
    expect(TPL_TEXT, "Hi {{name}} <{{email}}>", &d, "Hi Ann Marie Smith <ann@example.com>");
    expect(TPL_TEXT, "{{first_name}}|{{last_name}}", &d, "Ann|Marie Smith");
    expect(TPL_TEXT, "{{ attributes.city }} {{attributes.visits}} {{attributes.vip}} "
                     "{{attributes.address.zip}} {{attributes.score}}",
           &d, "Oslo 42 true 0150 2.5");
    expect(TPL_TEXT, "{{campaign.name}}/{{campaign.id}}/{{unsubscribe_url}}", &d,
           "Winter <Sale>/0f0f0f0f-0000-4000-8000-000000000000/https://mail.example.com/u/TOKEN");
    /* Explicit first and last names win over the derived ones. */
    d.first_name = "Annie";
    d.last_name = "S.";
    expect(TPL_TEXT, "{{first_name}} {{last_name}}", &d, "Annie S.");
    /* A known variable without a value renders empty. */
    expect(TPL_TEXT, "[{{attributes.missing}}][{{attributes.address.nope}}]", &d, "[][]");
    d.name = NULL;
    d.first_name = NULL;
    expect(TPL_TEXT, "Hello {{first_name | default:\"friend\"}}!", &d, "Hello friend!");
    expect(TPL_TEXT, "{{ first_name|default:\"x\" }}", &d, "x");
    json_decref(a);
}

static void
test_sections(void **state)
{
    json_t *a = json_pack("{s:b, s:b, s:s, s:[i], s:[], s:i}", "vip", 1, "off", 0, "empty", "",
                          "list", 1, "none", "zero", 0);
    struct tpl_data d = sample(a);

    (void)state;
    expect(TPL_TEXT, "{{#attributes.vip}}VIP {{first_name}}{{/attributes.vip}}.", &d, "VIP Ann.");
    expect(TPL_TEXT, "{{#attributes.off}}x{{/attributes.off}}.", &d, ".");
    expect(TPL_TEXT, "{{^attributes.off}}not off{{/attributes.off}}", &d, "not off");
    expect(TPL_TEXT, "{{^attributes.missing}}none{{/attributes.missing}}", &d, "none");
    expect(TPL_TEXT, "{{#attributes.empty}}x{{/attributes.empty}}", &d, "");
    expect(TPL_TEXT, "{{#attributes.list}}a{{/attributes.list}}{{#attributes.none}}b{{/attributes.none}}",
           &d, "a");
    expect(TPL_TEXT, "{{#attributes.zero}}a{{/attributes.zero}}", &d, "");
    expect(TPL_TEXT, "{{#email}}{{#attributes.vip}}1{{^attributes.off}}2{{/attributes.off}}"
                     "{{/attributes.vip}}3{{/email}}",
           &d, "123");
    expect(TPL_TEXT, "{{! a comment }}kept", &d, "kept");
    json_decref(a);
}

static void
test_escaping_by_context(void **state)
{
    json_t *a = json_pack("{s:s}", "evil", "<b>\"Tom\" & 'Jerry'</b>");
    struct tpl_data d = sample(a);

    (void)state;
    expect(TPL_HTML, "<p>{{attributes.evil}}</p>", &d,
           "<p>&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;</p>");
    expect(TPL_HTML, "<p>{{{attributes.evil}}}</p>", &d, "<p><b>\"Tom\" & 'Jerry'</b></p>");
    expect(TPL_TEXT, "{{attributes.evil}}", &d, "<b>\"Tom\" & 'Jerry'</b>");
    expect(TPL_HTML, "{{campaign.name}}", &d, "Winter &lt;Sale&gt;");
    json_decref(a);

    /* The subject can never carry a line break, from the template or a value. */
    a = json_pack("{s:s}", "inj", "x\r\nBcc: victim@example.com");
    d = sample(a);
    expect(TPL_SUBJECT, "Hi {{attributes.inj}}", &d, "Hi x  Bcc: victim@example.com");
    expect(TPL_SUBJECT, "Line\r\nTwo {{{attributes.inj}}}", &d,
           "Line  Two x  Bcc: victim@example.com");
    json_decref(a);
}

static void
test_values_are_not_expanded_again(void **state)
{
    json_t *a = json_pack("{s:s}", "trick", "{{email}} {{#x}}");
    struct tpl_data d = sample(a);

    (void)state;
    d.name = "{{unsubscribe_url}}";
    expect(TPL_TEXT, "{{attributes.trick}}|{{name}}", &d, "{{email}} {{#x}}|{{unsubscribe_url}}");
    json_decref(a);
}

static void
test_compile_errors_have_positions(void **state)
{
    (void)state;
    expect_error("Hello {{nmae}}", 1, 7, "unknown variable \"nmae\"");
    expect_error("line one\n  {{ attributes. }}", 2, 3, "unknown variable");
    expect_error("a {{email", 1, 3, "unclosed tag");
    expect_error("a {{{email}}", 1, 3, "unclosed tag");
    expect_error("{{#attributes.vip}}x", 1, 1, "never closed");
    expect_error("x\n{{/email}}", 2, 1, "not opened");
    expect_error("{{#email}}{{/name}}", 1, 11, "different section");
    expect_error("{{email | upper}}", 1, 1, "default:");
    expect_error("{{email | default:friend}}", 1, 1, "quoted");
    expect_error("{{email extra}}", 1, 1, "unexpected text");
    expect_error("{{}}", 1, 1, "expected a variable name");
    expect_error("{{campaign.owner}}", 1, 1, "unknown variable");
}

static void
test_limits(void **state)
{
    struct tpl *t = NULL;
    struct tpl_error e;
    struct buf out;
    struct tpl_data d = sample(NULL);
    const char *src = "{{email}}{{email}}{{email}}"; /* 45 bytes out */

    (void)state;
    assert_int_equal(tpl_compile(src, strlen(src), TPL_TEXT, 10, 100, &t, &e), MC_ERR_TOO_LARGE);
    assert_non_null(strstr(e.message, "larger than 10 bytes"));
    assert_int_equal(tpl_compile(src, strlen(src), TPL_TEXT, strlen(src), 45, &t, &e), MC_ERR_OK);
    buf_init(&out, 0);
    assert_int_equal(tpl_render(t, &d, &out), MC_ERR_OK); /* exactly at the limit */
    assert_int_equal(out.len, 45);
    buf_cleanup(&out);
    tpl_free(t);
    assert_int_equal(tpl_compile(src, strlen(src), TPL_TEXT, 100, 44, &t, &e), MC_ERR_OK);
    buf_init(&out, 0);
    assert_int_equal(tpl_render(t, &d, &out), MC_ERR_TOO_LARGE);
    buf_cleanup(&out);
    tpl_free(t);
    /* Not text at all. */
    assert_int_equal(tpl_compile("a\0b", 3, TPL_TEXT, 100, 100, &t, &e), MC_ERR_INVALID);
    assert_int_equal(tpl_compile("\xff", 1, TPL_TEXT, 100, 100, &t, &e), MC_ERR_INVALID);
}

static void
test_render_many_reuses_program(void **state)
{
    struct tpl *t = NULL;
    struct tpl_error e;
    struct buf out;
    const char *src = "Dear {{first_name | default:\"reader\"}},{{#attributes.vip}} VIP{{/attributes.vip}}";

    (void)state;
    assert_int_equal(tpl_compile(src, strlen(src), TPL_HTML, 1000, 1000, &t, &e), MC_ERR_OK);
    buf_init(&out, 0);
    for (int i = 0; i < 1000; i++) {
        json_t *a = json_pack("{s:b}", "vip", i % 2);
        struct tpl_data d = sample(a);
        d.name = i % 3 ? "Bo Ek" : NULL;
        buf_reset(&out);
        assert_int_equal(tpl_render(t, &d, &out), MC_ERR_OK);
        const char *want = i % 3 ? (i % 2 ? "Dear Bo, VIP" : "Dear Bo,")
                                 : (i % 2 ? "Dear reader, VIP" : "Dear reader,");
        assert_string_equal(out.data, want);
        json_decref(a);
    }
    buf_cleanup(&out);
    tpl_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_escaping_by_context),
        cmocka_unit_test(test_values_are_not_expanded_again),
        cmocka_unit_test(test_compile_errors_have_positions),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_render_many_reuses_program),
    };
    return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
