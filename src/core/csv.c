/*
 * csv.c - streaming CSV reader (on libcsv) and writer.
 *
 * DESIGN
 * libcsv parses incrementally but does not say where a row began.  We hand
 * it one physical line at a time (buffering a partial line between chunks)
 * and count lines ourselves: a row starts on the first non-blank line after
 * the previous row ended, and it ends during the call that fed the line
 * holding its terminating newline.  A quoted field may span lines; its row
 * keeps its start line.  The bytes of the row in progress are bounded by
 * max_row, which is also what stops an unterminated quote from swallowing
 * the rest of a large file into memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#include "csv.h"

#define LIBCSV_FIELD_BEGUN 2

struct csv_reader {
    struct csv_parser p;
    csv_row_fn fn;
    void *ctx;
    size_t max_row;
    struct buf line;    /* the partial physical line */
    long lineno;        /* physical lines fed so far */
    long row_start;     /* first line of the row in progress, 0 when none */
    size_t row_bytes;   /* bytes of the row in progress */
    bool bom_checked;
    bool stopped;
    long rows;
    /* The row being assembled. */
    struct buf fields;  /* field bytes, each NUL-terminated */
    size_t *offs;       /* owned: start of each field in fields */
    size_t *lens;       /* owned */
    char **ptrs;        /* owned */
    int nfields, cap;
    char error[160];
};

static void
on_field(void *s, size_t len, void *data)
{
    struct csv_reader *r = data;

    if (r->nfields == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->offs = xrealloc(r->offs, (size_t)r->cap * sizeof(*r->offs));
        r->lens = xrealloc(r->lens, (size_t)r->cap * sizeof(*r->lens));
        r->ptrs = xrealloc(r->ptrs, (size_t)r->cap * sizeof(*r->ptrs));
    }
    r->offs[r->nfields] = r->fields.len;
    r->lens[r->nfields] = len;
    buf_append(&r->fields, s ? s : "", len);
    buf_putc(&r->fields, '\0');
    r->nfields++;
}

static void
on_row(int c, void *data)
{
    struct csv_reader *r = data;

    (void)c;
    if (!r->stopped) {
        for (int i = 0; i < r->nfields; i++)
            r->ptrs[i] = r->fields.data + r->offs[i];
        r->rows++;
        if (!r->fn(r->ctx, r->row_start ? r->row_start : r->lineno, r->ptrs, r->lens,
                   r->nfields))
            r->stopped = true;
    }
    r->nfields = 0;
    buf_reset(&r->fields);
    r->row_start = 0;
    r->row_bytes = 0;
}

struct csv_reader *
csv_reader_new(size_t max_row, csv_row_fn fn, void *ctx)
{
    struct csv_reader *r = xcalloc(1, sizeof(*r));

    if (csv_init(&r->p, CSV_APPEND_NULL) != 0)
        abort();
    r->fn = fn;
    r->ctx = ctx;
    r->max_row = max_row;
    buf_init(&r->line, 0);
    buf_init(&r->fields, 0);
    return r;
}

void
csv_reader_free(struct csv_reader *r)
{
    if (r == NULL)
        return;
    csv_free(&r->p);
    buf_cleanup(&r->line);
    buf_cleanup(&r->fields);
    free(r->offs);
    free(r->lens);
    free(r->ptrs);
    free(r);
}

#define FAIL(r, ...)                                                                          \
    do {                                                                                      \
        snprintf((r)->error, sizeof((r)->error), __VA_ARGS__);                                \
        return MC_ERR_BAD_REQUEST;                                                            \
    } while (0)

/* Feeds one physical line (with its newline, if any) to libcsv. */
static mc_err
feed_line(struct csv_reader *r, const char *s, size_t n)
{
    r->lineno++;
    if (r->row_start == 0 && strspn(s, "\r\n") < n)
        r->row_start = r->lineno;
    r->row_bytes += n;
    if (r->row_bytes > r->max_row)
        FAIL(r, "the row starting at line %ld is longer than %zu bytes (an unterminated quote?)",
             r->row_start ? r->row_start : r->lineno, r->max_row);
    if (csv_parse(&r->p, s, n, on_field, on_row, r) != n)
        FAIL(r, "malformed CSV at line %ld", r->lineno);
    return MC_ERR_OK;
}

mc_err
csv_reader_feed(struct csv_reader *r, const char *data, size_t len)
{
    const char *p = data, *end = data + len;

    while (p < end && !r->stopped) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

        if (r->line.len + n > r->max_row + 2) {
            r->lineno++;
            FAIL(r, "line %ld is longer than %zu bytes", r->lineno, r->max_row);
        }
        buf_append(&r->line, p, n);
        p += n;
        if (nl == NULL)
            break;
        const char *s = r->line.data;
        size_t sn = r->line.len;
        if (!r->bom_checked) {
            r->bom_checked = true;
            if (sn >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
                s += 3;
                sn -= 3;
            }
        }
        mc_err err = feed_line(r, s, sn);
        buf_reset(&r->line);
        if (err != MC_ERR_OK)
            return err;
    }
    return MC_ERR_OK;
}

mc_err
csv_reader_finish(struct csv_reader *r)
{
    mc_err err = MC_ERR_OK;

    if (r->line.len > 0 && !r->stopped) {
        const char *s = r->line.data;
        size_t sn = r->line.len;
        if (!r->bom_checked && sn >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
            s += 3;
            sn -= 3;
        }
        r->bom_checked = true;
        err = feed_line(r, s, sn);
        buf_reset(&r->line);
        if (err != MC_ERR_OK)
            return err;
    }
    if (r->stopped)
        return MC_ERR_OK;
    /*
     * libcsv's CSV_STRICT_FINI needs CSV_STRICT, which would also refuse a
     * stray quote inside an unquoted field (John "JJ" Smith) that every
     * spreadsheet accepts.  So we ask the parser's state ourselves: inside
     * a quoted field that has begun (libcsv's FIELD_BEGUN, 2) means the
     * closing quote never came.
     */
    if (r->p.quoted && r->p.pstate == LIBCSV_FIELD_BEGUN)
        FAIL(r, "unterminated quoted field in the row starting at line %ld",
             r->row_start ? r->row_start : r->lineno);
    if (csv_fini(&r->p, on_field, on_row, r) != 0)
        FAIL(r, "unterminated quoted field in the row starting at line %ld",
             r->row_start ? r->row_start : r->lineno);
    return MC_ERR_OK;
}

const char *
csv_reader_error(const struct csv_reader *r)
{
    return r->error;
}

long
csv_reader_rows(const struct csv_reader *r)
{
    return r->rows;
}

static bool
formula_start(char c)
{
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

void
csv_write_field(struct buf *b, const char *s, bool neutralise)
{
    size_t n = strlen(s);
    /* libcsv trims unquoted blanks, spaces and tabs alike (found by fuzz_csv). */
    bool quote = strpbrk(s, ",\"\r\n") != NULL ||
                 (n > 0 && (strchr(" \t", s[0]) != NULL || strchr(" \t", s[n - 1]) != NULL));
    bool prefix = neutralise && n > 0 && formula_start(s[0]);

    if (prefix)
        quote = true;
    if (!quote) {
        buf_append(b, s, n);
        return;
    }
    buf_putc(b, '"');
    if (prefix)
        buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

char *
csv_unneutralise(char *s)
{
    if (s[0] == '\'' && formula_start(s[1]))
        memmove(s, s + 1, strlen(s));
    return s;
}
