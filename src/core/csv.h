/*
 * csv.h - RFC 4180 CSV: a streaming reader on libcsv that knows line
 * numbers, and a writer that neutralises spreadsheet formulas.
 *
 * The reader takes the input in chunks of any size and calls back once per
 * row with its fields and the line the row starts on.  It accepts a UTF-8
 * BOM, CRLF or LF, quoted fields with embedded newlines and doubled quotes,
 * and skips blank lines.  Memory is bounded by the longest row it is allowed
 * (max_row), never by the input.
 */
#ifndef MC_CSV_H
#define MC_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "util.h"

struct csv_reader;

/*
 * One row: fields[i] is NUL-terminated (lens[i] is its length, it may hold
 * NUL bytes).  Return false to stop reading (csv_reader_feed then returns
 * MC_ERR_OK and ignores the rest).
 */
typedef bool (*csv_row_fn)(void *ctx, long line, char **fields, size_t *lens, int nfields);

struct csv_reader *csv_reader_new(size_t max_row, csv_row_fn fn, void *ctx);
void csv_reader_free(struct csv_reader *r);
/* Feeds the next chunk.  MC_ERR_BAD_REQUEST on a structural error (see csv_reader_error). */
mc_err csv_reader_feed(struct csv_reader *r, const char *data, size_t len);
/* Ends the input: delivers the last row; an unterminated quote is an error. */
mc_err csv_reader_finish(struct csv_reader *r);
/* What went wrong, naming the line ("unterminated quoted field starting at line 7"). */
const char *csv_reader_error(const struct csv_reader *r);
/* Rows delivered so far. */
long csv_reader_rows(const struct csv_reader *r);

/*
 * Appends s as one field: quoted when it holds a comma, quote, CR, LF or
 * leading/trailing blank.  With neutralise, a value that a spreadsheet
 * would run as a formula (starting with = + - @, tab or CR) gets a leading
 * apostrophe; csv_unneutralise() undoes exactly that.
 */
void csv_write_field(struct buf *b, const char *s, bool neutralise);
/* Strips the apostrophe that csv_write_field added; returns s, changed in place. */
char *csv_unneutralise(char *s);

#endif
