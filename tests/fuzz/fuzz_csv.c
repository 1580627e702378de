/*
 * fuzz_csv.c - libFuzzer target for the streaming CSV reader and writer.
 *
 * The first byte picks the chunk size the input is fed in (1-64 bytes, so
 * every split of a quote or CRLF across chunks is tried) and the second the
 * row limit.  Each row's fields must be NUL-terminated at their length.
 * Then every row read is written back with csv_write_field and read again:
 * the second reading must give the same rows (the writer quotes whatever
 * needs quoting, so a round trip loses nothing but what C strings cannot
 * hold: fields with NUL, and rows of one empty field, which come back as
 * blank lines).
 */
#include <string.h>

#include "core/csv.h"
#include "fuzz.h"

#define MAX_ROWS 64

struct rows {
    struct buf out; /* the rows written back as CSV */
    long n;
    bool lossy; /* a row the writer cannot give back: a field holding NUL, or one empty field */
};

static bool
on_row(void *ctx, long line, char **fields, size_t *lens, int nfields)
{
    struct rows *rs = ctx;

    CHECK(line >= 1);
    CHECK(nfields >= 1);
    if (nfields == 1 && lens[0] == 0)
        rs->lossy = true; /* written back as a blank line, which readers skip */
    for (int i = 0; i < nfields; i++) {
        CHECK(fields[i][lens[i]] == '\0');
        if (strlen(fields[i]) != lens[i])
            rs->lossy = true;
        if (i)
            buf_putc(&rs->out, ',');
        /* The writer takes C strings: a field holding NUL is cut there. */
        csv_write_field(&rs->out, fields[i], false);
    }
    buf_puts(&rs->out, "\r\n");
    return ++rs->n < MAX_ROWS;
}

/* Reads data in chunks of size chunk; the rows written back go to rs. */
static mc_err
read_all(const char *data, size_t size, size_t chunk, size_t max_row, struct rows *rs)
{
    struct csv_reader *r = csv_reader_new(max_row, on_row, rs);
    mc_err e = MC_ERR_OK;

    for (size_t i = 0; i < size && e == MC_ERR_OK; i += chunk)
        e = csv_reader_feed(r, data + i, size - i < chunk ? size - i : chunk);
    if (e == MC_ERR_OK)
        e = csv_reader_finish(r);
    if (e != MC_ERR_OK)
        CHECK(csv_reader_error(r)[0] != '\0');
    csv_reader_free(r);
    return e;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rows first = {0}, second = {0};
    size_t chunk, max_row;

    if (size < 2)
        return 0;
    chunk = (size_t)(data[0] % 64) + 1;
    max_row = (size_t)data[1] * 16 + 16;
    buf_init(&first.out, 0);
    buf_init(&second.out, 0);
    /* A BOM first, so a first field that looks like one is not taken for it. */
    buf_puts(&first.out, "\xef\xbb\xbf");
    buf_puts(&second.out, "\xef\xbb\xbf");
    if (read_all((const char *)data + 2, size - 2, chunk, max_row, &first) == MC_ERR_OK &&
        first.n < MAX_ROWS && !first.lossy && first.out.len > 3) {
        /* Written rows may be longer than read ones (quotes): no row limit here. */
        CHECK(read_all(first.out.data, first.out.len, 7, first.out.len + 16, &second) ==
              MC_ERR_OK);
        CHECK(second.out.len == first.out.len);
        CHECK(memcmp(second.out.data, first.out.data, first.out.len) == 0);
    }
    buf_cleanup(&first.out);
    buf_cleanup(&second.out);
    return 0;
}
