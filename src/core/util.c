/*
 * util.c - allocation, bounded buffers and checked integer parsing.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "util.h"

static void
oom(size_t n)
{
    fprintf(stderr, "mailcast: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *
xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void
buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void
buf_cleanup(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void
buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = MC_ERR_OK;
    if (b->data)
        b->data[0] = '\0';
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
    size_t need;

    if (b->err != MC_ERR_OK)
        return;
    if (b->max && (n > b->max || b->len > b->max - n)) {
        b->err = MC_ERR_TOO_LARGE;
        return;
    }
    need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = MC_ERR_INTERNAL;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        buf_append(b, small, (size_t)n);
        return;
    }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_append(b, big, (size_t)n);
    free(big);
}

char *
buf_steal(struct buf *b)
{
    char *p = b->data ? b->data : xstrdup("");
    size_t max = b->max;

    memset(b, 0, sizeof(*b));
    b->max = max;
    return p;
}

bool
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool
str_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

bool
str_contains_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    char lo, up;

    if (m == 0)
        return true;
    lo = (char)tolower((unsigned char)needle[0]);
    up = (char)toupper((unsigned char)needle[0]);
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if ((hay[i] == lo || hay[i] == up) && strncasecmp(hay + i + 1, needle + 1, m - 1) == 0)
            return true;
    return false;
}

bool
str_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
str_valid_utf8(const char *s, size_t n, bool allow_newlines)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;

    while (p < e) {
        unsigned c = *p;
        int len;
        unsigned cp;

        if (c < 0x80) {
            if (c == 0x7f || (c < 0x20 && c != '\t' &&
                              !(allow_newlines && (c == '\n' || c == '\r'))))
                return false;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else
            return false;
        if (e - p < len)
            return false;
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += len;
    }
    return true;
}

void
util_json_alloc_init(void)
{
    json_set_alloc_funcs(xmalloc, free);
}
