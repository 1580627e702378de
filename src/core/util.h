/*
 * util.h - allocation that never fails, bounded string buffers, and small
 * checked parsers.
 *
 * The x*alloc functions abort the process with a message when memory runs
 * out: mailcast is a server, and no caller checks for NULL.
 */
#ifndef MC_UTIL_H
#define MC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Copy of s; xstrdup(NULL) is NULL. */
char *xstrdup(const char *s);
/*
 * Routes jansson's allocations through xmalloc (out of memory aborts, as
 * everywhere else): a NULL from jansson then means bad input, never a lost
 * allocation.  Called once, first thing in main().
 */
void util_json_alloc_init(void);
char *xstrndup(const char *s, size_t n);
/* Formatted string in new memory (caller owns). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A growable byte buffer with a hard size limit (0 = no limit).  After the
 * first error (the limit was hit) every append is a no-op and buf.err stays
 * set, so a caller checks once at the end.  The data is always
 * NUL-terminated once anything was appended.
 */
struct buf {
    char *data; /* owned */
    size_t len;
    size_t cap;
    size_t max;
    mc_err err;
};

void buf_init(struct buf *b, size_t max);
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (NUL-terminated, never NULL) and resets b. */
char *buf_steal(struct buf *b);

/*
 * Parses a whole decimal integer in [min, max]; leading/trailing garbage,
 * empty strings and overflow are errors.  Returns true on success.
 */
bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Case-insensitive ASCII equality. */
bool str_ieq(const char *a, const char *b);
/*
 * True when needle occurs in hay[0..n), ASCII case ignored.  Compares only
 * where the first byte matches: the bounce parser runs a table of phrases
 * over every report's text, and a comparison at every position was a
 * quarter of the listener's time.
 */
bool str_contains_ci(const char *hay, size_t n, const char *needle);
/* True when s starts with prefix. */
bool str_prefix(const char *s, const char *prefix);
/* True when s is valid UTF-8 of length n, without NUL or C0 controls other than tab. */
bool str_valid_utf8(const char *s, size_t n, bool allow_newlines);

#endif
