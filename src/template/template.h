/*
 * template.h - campaign templates: compiled once, rendered per recipient.
 *
 * Syntax (a Mustache subset):
 *   {{ var }}            the value, escaped for the context
 *   {{{ var }}}          the value unescaped (HTML context only matters)
 *   {{ var | default:"friend" }}   a fallback when the value is empty
 *   {{# var }}…{{/ var }}          the block when the value is truthy
 *   {{^ var }}…{{/ var }}          the block when it is not
 *   {{! comment }}
 * Variables: email, name, first_name, last_name, unsubscribe_url,
 * campaign.name, campaign.id, and attributes.KEY[.KEY...].  Any other name
 * is a compile error, so a typo never sends blank text.  Whitespace inside
 * the braces is allowed.
 *
 * Contexts: TPL_HTML escapes & < > " ' in values; TPL_TEXT inserts them as
 * they are; TPL_SUBJECT replaces CR and LF in values (and in the template)
 * with spaces, so no header can be injected.  Substituted values are never
 * expanded again.
 *
 * Rendering does no parsing and allocates nothing but the output buffer.
 */
#ifndef MC_TEMPLATE_H
#define MC_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"
#include "core/util.h"

enum tpl_ctx { TPL_HTML, TPL_TEXT, TPL_SUBJECT };

struct tpl;

struct tpl_error {
    int line;   /* 1-based */
    int column; /* 1-based, in bytes */
    char message[160];
};

/* What one render sees; every pointer borrowed, NULL when unknown. */
struct tpl_data {
    const char *email;
    const char *name;
    const char *first_name; /* NULL: derived from name (its first word) */
    const char *last_name;  /* NULL: derived from name (the rest) */
    const char *unsubscribe_url;
    const char *campaign_name;
    const char *campaign_id;
    json_t *attributes; /* an object, or NULL */
};

/*
 * Compiles src[0..len) for ctx.  max_src bounds the template's size,
 * max_out every render's output.  On failure returns MC_ERR_INVALID (or
 * MC_ERR_TOO_LARGE) and fills *e with the position and the reason.
 */
mc_err tpl_compile(const char *src, size_t len, enum tpl_ctx ctx, size_t max_src, size_t max_out,
                   struct tpl **out, struct tpl_error *e);
void tpl_free(struct tpl *t);

/*
 * Appends the rendering to out.  MC_ERR_TOO_LARGE when it would pass the
 * compile-time max_out (out then holds a truncated prefix).
 */
mc_err tpl_render(const struct tpl *t, const struct tpl_data *d, struct buf *out);

#endif
