/*
 * response.c - building responses and reading request fields.
 *
 * Every error leaves as {"error":{"code":"...","message":"..."}} (plus
 * "field" for a 422), with the status from the error table.
 */
#include <ctype.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "http.h"

static void
set_body(struct req *r, int status, char *body, const char *type)
{
    if (r->answered) /* a handler answered twice: keep the first answer */
        return;
    r->status = status;
    free(r->resp_body);
    r->resp_body = body;
    r->resp_type = type;
    r->answered = true;
}

void
reply_json(struct req *r, int status, json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(12));
    size_t n;

    json_decref(obj);
    if (s == NULL)
        abort(); /* out of memory inside jansson */
    /* A final newline, so `curl` output in a terminal ends its line. */
    n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = '\0';
    set_body(r, status, s, "application/json");
}

char *
req_location(const struct req *r, const char *segment, const char *drop)
{
    size_t n = strlen(r->path), dn = drop ? strlen(drop) : 0;
    struct buf b;

    while (n > 1 && r->path[n - 1] == '/')
        n--;
    if (dn > 0 && n > dn && strncmp(r->path + n - dn, drop, dn) == 0)
        n -= dn;
    buf_init(&b, 0);
    buf_append(&b, r->path, n);
    if (segment != NULL) {
        buf_append(&b, "/", 1);
        /* RFC 3986 unreserved characters, "@" and "+" (allowed in a segment) stay. */
        for (const unsigned char *p = (const unsigned char *)segment; *p; p++) {
            if (isalnum(*p) || strchr("-._~@+", *p) != NULL)
                buf_append(&b, (const char *)p, 1);
            else
                buf_printf(&b, "%%%02X", *p);
        }
    }
    return buf_steal(&b);
}

void
reply_created(struct req *r, json_t *obj, const char *segment, const char *drop)
{
    if (!r->answered) {
        free(r->resp_location);
        r->resp_location = req_location(r, segment, drop);
    }
    reply_json(r, 201, obj);
}

void
reply_empty(struct req *r, int status)
{
    set_body(r, status, NULL, NULL);
}

void
reply_stream(struct req *r, int status, const char *type,
             ssize_t (*reader)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
             void (*free_fn)(void *cls))
{
    if (r->answered) {
        free_fn(cls);
        return;
    }
    set_body(r, status, NULL, type);
    r->resp_reader = reader;
    r->resp_reader_free = free_fn;
    r->resp_cls = cls;
}

static void
error_v(struct req *r, mc_err e, const char *field, const char *fmt, va_list ap)
{
    char msg[512];
    json_t *err;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    err = json_pack("{s:s, s:s}", "code", mc_err_code(e), "message", msg);
    if (field)
        json_object_set_new(err, "field", json_string(field));
    reply_json(r, mc_err_http(e), json_pack("{s:o}", "error", err));
}

void
reply_error(struct req *r, mc_err e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_v(r, e, NULL, fmt, ap);
    va_end(ap);
}

void
reply_invalid(struct req *r, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_v(r, MC_ERR_INVALID, field, fmt, ap);
    va_end(ap);
}

void
store_error_text(mc_err e, const char *what, char *out, size_t n)
{
    if (e == MC_ERR_NOT_FOUND)
        snprintf(out, n, "%s not found", what);
    else if (e == MC_ERR_DB || e == MC_ERR_BUSY)
        snprintf(out, n, "the database is unavailable; try again");
    else
        snprintf(out, n, "%s", mc_err_str(e));
}

void
reply_store_error(struct req *r, mc_err e, const char *what)
{
    char msg[256];

    store_error_text(e, what, msg, sizeof(msg));
    reply_error(r, e, "%s", msg);
}

const char *
req_param(const struct req *r, const char *name)
{
    const char *p = r->route ? r->route->pattern : "";
    size_t nlen = strlen(name);
    int i = 0;

    while ((p = strchr(p, '{')) != NULL) {
        if (strncmp(p + 1, name, nlen) == 0 &&
            (p[1 + nlen] == '}' || (p[1 + nlen] == '*' && p[2 + nlen] == '}')))
            return i < r->nparams ? r->params[i] : NULL;
        i++;
        p++;
    }
    return NULL;
}

const char *
req_query(const struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
req_header(const struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

bool
req_page(struct req *r, struct page *pg)
{
    const char *l = req_query(r, "limit"), *o = req_query(r, "offset");
    int64_t max = r->app->cfg->max_page_size;

    pg->limit = max < 50 ? max : 50;
    pg->offset = 0;
    if (l != NULL && !parse_int64(l, 1, max, &pg->limit)) {
        reply_invalid(r, "limit", "limit must be an integer from 1 to %lld", (long long)max);
        return false;
    }
    if (o != NULL && !parse_int64(o, 0, INT64_MAX / 2, &pg->offset)) {
        reply_invalid(r, "offset", "offset must be a non-negative integer");
        return false;
    }
    return true;
}

json_t *
json_time(int64_t us)
{
    char s[40];

    if (us == 0)
        return json_null();
    time_format_rfc3339(us, s, sizeof(s));
    return json_string(s);
}

json_t *
json_from_text(const char *text)
{
    json_t *v;

    if (text == NULL)
        return json_null();
    v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

json_t *
json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *
json_page(json_t *items, int64_t total, const struct page *pg)
{
    return json_pack("{s:o, s:I, s:I, s:I}", "data", items, "total", (json_int_t)total, "limit",
                     (json_int_t)pg->limit, "offset", (json_int_t)pg->offset);
}

/* Looks the field up; false (after replying) when it is required and missing. */
static bool
field_get(struct req *r, json_t *obj, const char *name, unsigned flags, json_t **v,
          bool *present)
{
    *v = obj ? json_object_get(obj, name) : NULL;
    if (present)
        *present = *v != NULL;
    if (*v == NULL && (flags & F_REQUIRED)) {
        reply_invalid(r, name, "%s is required", name);
        return false;
    }
    return true;
}

static bool
null_ok(struct req *r, const char *name, unsigned flags)
{
    if (flags & F_NULLABLE)
        return true;
    reply_invalid(r, name, "%s must not be null", name);
    return false;
}

bool
field_string(struct req *r, json_t *obj, const char *name, unsigned flags, size_t maxlen,
             const char **out, bool *present)
{
    json_t *v;
    const char *s;
    size_t len;

    if (!field_get(r, obj, name, flags, &v, present))
        return false;
    if (v == NULL)
        return true;
    if (json_is_null(v)) {
        *out = NULL;
        return null_ok(r, name, flags);
    }
    if (!json_is_string(v)) {
        reply_invalid(r, name, "%s must be a string", name);
        return false;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if ((flags & F_NONEMPTY) && strspn(s, " \t\r\n") == len) {
        reply_invalid(r, name, "%s must not be empty", name);
        return false;
    }
    if (len > maxlen) {
        reply_invalid(r, name, "%s must be at most %zu bytes", name, maxlen);
        return false;
    }
    if ((flags & F_ONELINE) && strpbrk(s, "\r\n") != NULL) {
        reply_invalid(r, name, "%s must not contain line breaks", name);
        return false;
    }
    *out = s;
    return true;
}

bool
field_int(struct req *r, json_t *obj, const char *name, unsigned flags, int64_t min, int64_t max,
          int64_t *out, bool *present)
{
    json_t *v;
    json_int_t i;

    if (!field_get(r, obj, name, flags, &v, present))
        return false;
    if (v == NULL)
        return true;
    if (json_is_null(v))
        return null_ok(r, name, flags);
    if (!json_is_integer(v)) {
        reply_invalid(r, name, "%s must be an integer from %lld to %lld", name, (long long)min,
                      (long long)max);
        return false;
    }
    i = json_integer_value(v);
    if (i < min || i > max) {
        reply_invalid(r, name, "%s must be an integer from %lld to %lld", name, (long long)min,
                      (long long)max);
        return false;
    }
    *out = i;
    return true;
}

bool
field_bool(struct req *r, json_t *obj, const char *name, unsigned flags, bool *out,
           bool *present)
{
    json_t *v;

    if (!field_get(r, obj, name, flags, &v, present))
        return false;
    if (v == NULL)
        return true;
    if (json_is_null(v))
        return null_ok(r, name, flags);
    if (!json_is_boolean(v)) {
        reply_invalid(r, name, "%s must be true or false", name);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

bool
field_json(struct req *r, json_t *obj, const char *name, unsigned flags, bool want_array,
           char **out, bool *present)
{
    json_t *v;

    *out = NULL;
    if (!field_get(r, obj, name, flags, &v, present))
        return false;
    if (v == NULL)
        return true;
    if (json_is_null(v))
        return null_ok(r, name, flags);
    if (want_array ? !json_is_array(v) : !json_is_object(v)) {
        reply_invalid(r, name, "%s must be a JSON %s", name, want_array ? "array" : "object");
        return false;
    }
    *out = json_dumps(v, JSON_COMPACT);
    if (*out == NULL)
        abort();
    return true;
}
