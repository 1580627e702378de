/*
 * fuzz_template.c - libFuzzer target for the template compiler and renderer.
 *
 * The first byte picks the context (HTML, text, subject) and the output
 * limit; the rest is the template.  A refused template names a position
 * inside it; a compiled one renders with values full of markup, braces and
 * line breaks, never past the limit (a TOO_LARGE render is cut at it), and
 * a subject never holds CR or LF.  Values are never expanded again: a value
 * "{{email}}" appears as such.
 */
#include <string.h>

#include "fuzz.h"
#include "template/template.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum tpl_ctx ctx;
    size_t max_out;
    struct tpl *t = NULL;
    struct tpl_error e;
    struct tpl_data d = {0};
    struct buf out;
    mc_err err;

    if (size < 1 || size > 8192)
        return 0;
    ctx = (enum tpl_ctx)(data[0] % 3);
    max_out = (size_t)(data[0] / 3 + 1) * 64;
    memset(&e, 0, sizeof(e));
    err = tpl_compile((const char *)data + 1, size - 1, ctx, 4096, max_out, &t, &e);
    if (err != MC_ERR_OK) {
        CHECK(t == NULL);
        CHECK(err == MC_ERR_INVALID || err == MC_ERR_TOO_LARGE);
        CHECK(e.message[0] != '\0' && e.line >= 1 && e.column >= 1);
        return 0;
    }
    d.email = "a&b@example.com";
    d.name = "Ann <b>O'Neil</b>\r\nBcc: x@example.com";
    d.unsubscribe_url = "https://example.com/u/{{email}}";
    d.campaign_name = "{{{name}}}";
    d.campaign_id = "0190a3c4-0000-7000-8000-000000000000";
    d.attributes = json_pack("{s:s, s:{s:i, s:b}, s:[i]}", "plan", "pro\n\"x\"", "nested", "n",
                             42, "ok", 1, "list", 1);
    buf_init(&out, 0);
    err = tpl_render(t, &d, &out);
    CHECK(err == MC_ERR_OK || err == MC_ERR_TOO_LARGE);
    CHECK(out.len <= max_out);
    if (ctx == TPL_SUBJECT && out.len)
        CHECK(memchr(out.data, '\r', out.len) == NULL && memchr(out.data, '\n', out.len) == NULL);
    buf_cleanup(&out);
    json_decref(d.attributes);
    tpl_free(t);
    return 0;
}
