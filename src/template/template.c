/*
 * template.c - the template compiler and renderer.
 *
 * DESIGN
 * Compilation turns the source into a flat program of ops: literal text
 * (a slice of a pool), a variable (which one, its attribute path, raw or
 * escaped, a default) and section jumps.  A section's BEGIN op holds the
 * index just past its END, so rendering is one loop over the ops with no
 * recursion, no lookups by name except attribute keys, and no allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

enum op_kind { OP_TEXT, OP_VAR, OP_BEGIN, OP_END };

enum var_id {
    V_EMAIL,
    V_NAME,
    V_FIRST_NAME,
    V_LAST_NAME,
    V_UNSUBSCRIBE_URL,
    V_CAMPAIGN_NAME,
    V_CAMPAIGN_ID,
    V_ATTRIBUTE,
};

static const char *const var_names[] = {"email",           "name",          "first_name",
                                        "last_name",       "unsubscribe_url", "campaign.name",
                                        "campaign.id"};

struct op {
    enum op_kind kind;
    enum var_id var;
    bool raw;      /* OP_VAR: no escaping */
    bool inverted; /* OP_BEGIN */
    size_t off, len;         /* OP_TEXT: the slice; OP_VAR: the default; OP_BEGIN: source offset */
    int seg, nseg;           /* OP_VAR/BEGIN with V_ATTRIBUTE: path segments */
    int jump;                /* OP_BEGIN: index after the matching OP_END */
};

struct tpl {
    enum tpl_ctx ctx;
    size_t max_out;
    struct op *ops; /* owned */
    int nops, capops;
    struct buf pool;   /* literal text, defaults and path segments (NUL-separated) */
    size_t *segs;      /* owned: offsets of path segments in pool */
    int nsegs, capsegs;
};

/* ---- compiling ---- */

struct parser {
    const char *src, *p, *end;
    struct tpl *t;
    struct tpl_error *e;
    int stack[64]; /* open sections: op indexes */
    int depth;
};

static void
position(struct parser *ps, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *q = ps->src; q < at; q++) {
        if (*q == '\n') {
            (*line)++;
            *col = 1;
        } else
            (*col)++;
    }
}

static mc_err
error_at(struct parser *ps, const char *at, const char *msg)
{
    position(ps, at, &ps->e->line, &ps->e->column);
    snprintf(ps->e->message, sizeof(ps->e->message), "%s", msg);
    return MC_ERR_INVALID;
}

static struct op *
emit(struct tpl *t, enum op_kind kind)
{
    if (t->nops == t->capops) {
        t->capops = t->capops ? t->capops * 2 : 16;
        t->ops = xrealloc(t->ops, (size_t)t->capops * sizeof(*t->ops));
    }
    struct op *o = &t->ops[t->nops++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    return o;
}

static void
emit_text(struct tpl *t, const char *s, size_t n)
{
    struct op *o;

    if (n == 0)
        return;
    o = emit(t, OP_TEXT);
    o->off = t->pool.len;
    o->len = n;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (t->ctx == TPL_SUBJECT && (c == '\r' || c == '\n'))
            c = ' ';
        buf_putc(&t->pool, c);
    }
}

static bool
ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* Resolves the name s[0..n) into o (var, seg, nseg). */
static bool
resolve(struct tpl *t, const char *s, size_t n, struct op *o)
{
    for (int i = 0; i < (int)(sizeof(var_names) / sizeof(var_names[0])); i++) {
        if (strlen(var_names[i]) == n && memcmp(var_names[i], s, n) == 0) {
            o->var = (enum var_id)i;
            return true;
        }
    }
    if (n <= 11 || memcmp(s, "attributes.", 11) != 0)
        return false;
    o->var = V_ATTRIBUTE;
    o->seg = t->nsegs;
    s += 11;
    n -= 11;
    while (n > 0) {
        size_t k = 0;
        while (k < n && ident_char(s[k]))
            k++;
        if (k == 0 || (k < n && s[k] != '.') || (k + 1 == n && s[k] == '.'))
            return false;
        if (t->nsegs == t->capsegs) {
            t->capsegs = t->capsegs ? t->capsegs * 2 : 8;
            t->segs = xrealloc(t->segs, (size_t)t->capsegs * sizeof(*t->segs));
        }
        t->segs[t->nsegs++] = t->pool.len;
        buf_append(&t->pool, s, k);
        buf_putc(&t->pool, '\0');
        o->nseg++;
        s += k;
        n -= k;
        if (n > 0) { /* the dot */
            s++;
            n--;
        }
    }
    return o->nseg > 0;
}

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* Parses `name [| default:"text"]` in [p, end); fills o. */
static mc_err
parse_var(struct parser *ps, const char *tag, const char *p, const char *end, struct op *o,
          bool allow_default)
{
    const char *name, *q;
    char shown[64];

    p = skip_ws(p, end);
    name = p;
    while (p < end && (ident_char(*p) || *p == '.'))
        p++;
    snprintf(shown, sizeof(shown), "%.*s", (int)(p - name < 60 ? p - name : 60), name);
    if (p == name)
        return error_at(ps, tag, "expected a variable name");
    if (!resolve(ps->t, name, (size_t)(p - name), o)) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "unknown variable \"%.40s\" (known: email, name, first_name, last_name, "
                 "unsubscribe_url, campaign.*, attributes.*)",
                 shown);
        return error_at(ps, tag, msg);
    }
    q = skip_ws(p, end);
    if (q < end && *q == '|' && allow_default) {
        q = skip_ws(q + 1, end);
        if ((size_t)(end - q) < 9 || memcmp(q, "default:", 8) != 0)
            return error_at(ps, tag, "expected default:\"text\" after |");
        q = skip_ws(q + 8, end);
        if (q >= end || *q != '"')
            return error_at(ps, tag, "the default must be a quoted string");
        const char *v = ++q;
        while (q < end && *q != '"')
            q++;
        if (q >= end)
            return error_at(ps, tag, "unterminated default string");
        o->off = ps->t->pool.len;
        o->len = (size_t)(q - v);
        buf_append(&ps->t->pool, v, o->len);
        q = skip_ws(q + 1, end);
    }
    if (q != end) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unexpected text after the variable name \"%.40s\"", shown);
        return error_at(ps, tag, msg);
    }
    return MC_ERR_OK;
}

static bool
same_var(const struct tpl *t, const struct op *a, const struct op *b)
{
    if (a->var != b->var)
        return false;
    if (a->var != V_ATTRIBUTE)
        return true;
    if (a->nseg != b->nseg)
        return false;
    for (int i = 0; i < a->nseg; i++)
        if (strcmp(t->pool.data + t->segs[a->seg + i], t->pool.data + t->segs[b->seg + i]) != 0)
            return false;
    return true;
}

static mc_err
parse_tag(struct parser *ps, const char *tag)
{
    struct tpl *t = ps->t;
    bool triple = ps->end - tag >= 3 && tag[2] == '{';
    const char *open_end = tag + (triple ? 3 : 2);
    const char *close = NULL;
    const char *closer = triple ? "}}}" : "}}";
    size_t clen = triple ? 3 : 2;
    mc_err err;

    for (const char *q = open_end; q + clen <= ps->end; q++) {
        if (memcmp(q, closer, clen) == 0) {
            close = q;
            break;
        }
        if (q[0] == '{' && q[1] == '{')
            break;
    }
    if (close == NULL)
        return error_at(ps, tag, triple ? "unclosed tag: expected \"}}}\""
                                        : "unclosed tag: expected \"}}\"");
    ps->p = close + clen;
    const char *body = skip_ws(open_end, close);
    if (triple) {
        struct op *o = emit(t, OP_VAR);
        o->raw = true;
        return parse_var(ps, tag, body, close, o, true);
    }
    if (body < close && *body == '!')
        return MC_ERR_OK;
    if (body < close && (*body == '#' || *body == '^')) {
        if (ps->depth == (int)(sizeof(ps->stack) / sizeof(ps->stack[0])))
            return error_at(ps, tag, "sections nested too deeply");
        struct op *o = emit(t, OP_BEGIN);
        o->inverted = *body == '^';
        o->off = (size_t)(tag - ps->src); /* where it opened, for an unclosed-section error */
        ps->stack[ps->depth++] = t->nops - 1;
        return parse_var(ps, tag, body + 1, close, o, false);
    }
    if (body < close && *body == '/') {
        struct op probe = {0};
        if ((err = parse_var(ps, tag, body + 1, close, &probe, false)) != MC_ERR_OK)
            return err;
        if (ps->depth == 0)
            return error_at(ps, tag, "closing a section that was not opened");
        int begin = ps->stack[ps->depth - 1];
        if (!same_var(t, &t->ops[begin], &probe))
            return error_at(ps, tag, "this closes a different section than the one open");
        ps->depth--;
        emit(t, OP_END);
        t->ops[begin].jump = t->nops;
        return MC_ERR_OK;
    }
    return parse_var(ps, tag, body, close, emit(t, OP_VAR), true);
}

mc_err
tpl_compile(const char *src, size_t len, enum tpl_ctx ctx, size_t max_src, size_t max_out,
            struct tpl **out, struct tpl_error *e)
{
    struct parser ps = {.src = src, .p = src, .end = src + len, .e = e};
    struct tpl *t;
    mc_err err = MC_ERR_OK;

    memset(e, 0, sizeof(*e));
    if (len > max_src) {
        e->line = 1;
        e->column = 1;
        snprintf(e->message, sizeof(e->message), "the template is larger than %zu bytes",
                 max_src);
        return MC_ERR_TOO_LARGE;
    }
    if (memchr(src, '\0', len) != NULL || !str_valid_utf8(src, len, true)) {
        e->line = 1;
        e->column = 1;
        snprintf(e->message, sizeof(e->message), "the template is not valid UTF-8 text");
        return MC_ERR_INVALID;
    }
    t = xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->max_out = max_out;
    buf_init(&t->pool, 0);
    ps.t = t;
    while (ps.p < ps.end) {
        const char *tag = NULL;
        for (const char *q = ps.p; q + 1 < ps.end; q++)
            if (q[0] == '{' && q[1] == '{') {
                tag = q;
                break;
            }
        if (tag == NULL) {
            emit_text(t, ps.p, (size_t)(ps.end - ps.p));
            break;
        }
        emit_text(t, ps.p, (size_t)(tag - ps.p));
        if ((err = parse_tag(&ps, tag)) != MC_ERR_OK)
            break;
    }
    if (err == MC_ERR_OK && ps.depth > 0) /* name the section that was left open */
        err = error_at(&ps, ps.src + ps.t->ops[ps.stack[ps.depth - 1]].off,
                       "a section is never closed (missing {{/...}})");
    if (err != MC_ERR_OK) {
        tpl_free(t);
        return err;
    }
    *out = t;
    return MC_ERR_OK;
}

void
tpl_free(struct tpl *t)
{
    if (t == NULL)
        return;
    free(t->ops);
    free(t->segs);
    buf_cleanup(&t->pool);
    free(t);
}

/* ---- rendering ---- */

struct value {
    const char *s;
    size_t len;
    bool truthy;
    char num[32]; /* a formatted number lives here */
};

static void
set_str(struct value *v, const char *s)
{
    v->s = s ? s : "";
    v->len = s ? strlen(s) : 0;
    v->truthy = v->len > 0;
}

/* The first word of name, or the rest after it. */
static void
split_name(const char *name, bool first, struct value *v)
{
    const char *sp;

    set_str(v, NULL);
    if (name == NULL)
        return;
    while (*name == ' ')
        name++;
    sp = strchr(name, ' ');
    if (first) {
        v->s = name;
        v->len = sp ? (size_t)(sp - name) : strlen(name);
    } else if (sp) {
        while (*sp == ' ')
            sp++;
        v->s = sp;
        v->len = strlen(sp);
    }
    v->truthy = v->len > 0;
}

static void
lookup(const struct tpl *t, const struct op *o, const struct tpl_data *d, struct value *v)
{
    json_t *j = d->attributes;

    switch (o->var) {
    case V_EMAIL:
        return set_str(v, d->email);
    case V_NAME:
        return set_str(v, d->name);
    case V_FIRST_NAME:
        return d->first_name ? set_str(v, d->first_name) : split_name(d->name, true, v);
    case V_LAST_NAME:
        return d->last_name ? set_str(v, d->last_name) : split_name(d->name, false, v);
    case V_UNSUBSCRIBE_URL:
        return set_str(v, d->unsubscribe_url);
    case V_CAMPAIGN_NAME:
        return set_str(v, d->campaign_name);
    case V_CAMPAIGN_ID:
        return set_str(v, d->campaign_id);
    case V_ATTRIBUTE:
        break;
    }
    for (int i = 0; i < o->nseg && j != NULL; i++)
        j = json_is_object(j) ? json_object_get(j, t->pool.data + t->segs[o->seg + i]) : NULL;
    set_str(v, NULL);
    if (json_is_string(j)) {
        v->s = json_string_value(j);
        v->len = json_string_length(j);
        v->truthy = v->len > 0;
    } else if (json_is_integer(j)) {
        v->len = (size_t)snprintf(v->num, sizeof(v->num), "%" JSON_INTEGER_FORMAT,
                                  json_integer_value(j));
        v->s = v->num;
        v->truthy = json_integer_value(j) != 0;
    } else if (json_is_real(j)) {
        v->len = (size_t)snprintf(v->num, sizeof(v->num), "%.15g", json_real_value(j));
        v->s = v->num;
        v->truthy = json_real_value(j) != 0;
    } else if (json_is_boolean(j)) {
        set_str(v, json_is_true(j) ? "true" : "false");
        v->truthy = json_is_true(j);
    } else if (json_is_array(j)) {
        v->truthy = json_array_size(j) > 0;
    } else if (json_is_object(j)) {
        v->truthy = json_object_size(j) > 0;
    }
}

/* What a value's characters become in HTML and in a subject (every other one goes as it is). */
static const struct {
    enum tpl_ctx ctx;
    char c;
    const char *as;
} replacements[] = {
    {TPL_HTML, '&', "&amp;"},     {TPL_HTML, '<', "&lt;"},    {TPL_HTML, '>', "&gt;"},
    {TPL_HTML, '"', "&quot;"},    {TPL_HTML, '\'', "&#39;"},  {TPL_SUBJECT, '\r', " "},
    {TPL_SUBJECT, '\n', " "},
};

/* c's replacement in ctx, or NULL when it goes as it is. */
static const char *
replacement(enum tpl_ctx ctx, char c)
{
    for (size_t i = 0; i < sizeof(replacements) / sizeof(replacements[0]); i++)
        if (replacements[i].ctx == ctx && replacements[i].c == c)
            return replacements[i].as;
    return NULL;
}

static void
put_value(const struct tpl *t, const struct op *o, const char *s, size_t n, struct buf *out)
{
    if (t->ctx == TPL_TEXT || (t->ctx == TPL_HTML && o->raw)) {
        buf_append(out, s, n);
        return;
    }
    /* Runs of characters that stay as they are go in one append. */
    for (size_t i = 0; i < n;) {
        const char *as = NULL;
        size_t run = 0;
        while (i + run < n && (as = replacement(t->ctx, s[i + run])) == NULL)
            run++;
        buf_append(out, s + i, run);
        i += run;
        if (as != NULL) {
            buf_puts(out, as);
            i++;
        }
    }
}

mc_err
tpl_render(const struct tpl *t, const struct tpl_data *d, struct buf *out)
{
    size_t saved_max = out->max, start = out->len;

    /* The template's own bound applies to what this render adds. */
    out->max = start + t->max_out;
    for (int i = 0; i < t->nops && out->err == MC_ERR_OK;) {
        const struct op *o = &t->ops[i];
        struct value v;

        switch (o->kind) {
        case OP_TEXT:
            buf_append(out, t->pool.data + o->off, o->len);
            i++;
            break;
        case OP_VAR:
            lookup(t, o, d, &v);
            if (v.len == 0 && o->len > 0)
                put_value(t, o, t->pool.data + o->off, o->len, out);
            else
                put_value(t, o, v.s, v.len, out);
            i++;
            break;
        case OP_BEGIN:
            lookup(t, o, d, &v);
            i = (v.truthy != o->inverted) ? i + 1 : o->jump;
            break;
        case OP_END:
            i++;
            break;
        }
    }
    out->max = saved_max;
    return out->err;
}
