/*
 * import.c - the bulk import pipeline (see import.h).
 *
 * DESIGN
 * CSV goes through the streaming reader (core/csv.h) straight into batches
 * of import_batch_size rows, each written in one transaction
 * (store_recipient_import, store_unsub_import), so memory holds one batch
 * and one row, whatever the file's size.  JSON bodies are bounded by
 * import_max_json and parsed whole.  A bad row is counted and reported (the
 * first 100), never fatal; a structurally broken CSV stops the import,
 * after writing every row before it.  Duplicates inside one payload are
 * found with a set of 64-bit hashes of the lowercase addresses (bounded:
 * past its capacity the database's uniqueness still holds, and only the
 * upsert counts may then call a repeat an update).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/csv.h"
#include "core/email.h"
#include "core/log.h"
#include "core/util.h"
#include "import.h"

#define MAX_ERRORS 100
#define SEEN_MAX_SLOTS (1u << 21) /* 16 MiB: exact for a million distinct addresses */

/* An open-addressing set of 64-bit hashes; 0 marks an empty slot. */
struct seen {
    uint64_t *slots; /* owned */
    size_t nslots, n;
    uint64_t seed;
    bool full;
};

struct import {
    struct store *st;          /* borrowed */
    const struct config *cfg;  /* borrowed */
    enum import_kind kind;
    char tenant_id[MC_UUID_LEN + 1];
    char list_id[MC_UUID_LEN + 1];
    enum import_mode mode;
    bool is_csv;
    struct csv_reader *csv;
    struct buf json;
    /* CSV header */
    bool have_header;
    char **cols; /* owned */
    int ncols;
    int c_email, c_name, c_first, c_last, c_reason;
    /* The batch being filled: rows and the strings they point to. */
    struct import_row *rows;
    char **reasons;
    char **strs; /* owned: every string of the batch */
    int n, nstrs, cap;
    struct seen seen;
    /* Report */
    int64_t total, invalid, imported_unsubs, dup_unsubs;
    struct import_counts c;
    json_t *errors;
    /* Why it stopped: a structural, request or database error. */
    bool stopped;
    mc_err err;
    bool with_report;
    const char *field; /* static */
    char msg[320];
};

/* ---- the seen-set ---- */

static uint64_t
hash64(uint64_t seed, const char *s)
{
    uint64_t h = 1469598103934665603ULL ^ seed;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static void
seen_insert_raw(struct seen *s, uint64_t h)
{
    size_t i = h & (s->nslots - 1);

    while (s->slots[i] != 0)
        i = (i + 1) & (s->nslots - 1);
    s->slots[i] = h;
    s->n++;
}

/* True when email_lc was seen before in this payload; remembers it otherwise. */
static bool
seen_check(struct seen *s, const char *email_lc)
{
    uint64_t h = hash64(s->seed, email_lc);
    size_t i;

    if (s->slots == NULL) {
        s->nslots = 4096;
        s->slots = xcalloc(s->nslots, sizeof(*s->slots));
    }
    for (i = h & (s->nslots - 1); s->slots[i] != 0; i = (i + 1) & (s->nslots - 1))
        if (s->slots[i] == h)
            return true;
    if (s->full)
        return false;
    if ((s->n + 1) * 2 > s->nslots) {
        if (s->nslots >= SEEN_MAX_SLOTS) {
            s->full = true;
            return false;
        }
        uint64_t *old = s->slots;
        size_t nold = s->nslots;
        s->nslots *= 2;
        s->slots = xcalloc(s->nslots, sizeof(*s->slots));
        s->n = 0;
        for (size_t j = 0; j < nold; j++)
            if (old[j])
                seen_insert_raw(s, old[j]);
        free(old);
    }
    seen_insert_raw(s, h);
    return false;
}

/* ---- reporting ---- */

/* A copy fit for JSON: invalid UTF-8 bytes become '?', at most 254 bytes. */
static json_t *
safe_string(const char *s)
{
    char out[EMAIL_MAX + 1];
    size_t n = 0;

    for (const char *p = s ? s : ""; *p && n < EMAIL_MAX;) {
        size_t len = 1;
        unsigned char c = (unsigned char)*p;
        if (c >= 0xc0)
            len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c >= 0x80 && (n + len > EMAIL_MAX || !str_valid_utf8(p, len, false) ||
                          strnlen(p, len) < len))
            len = 0;
        if (len == 0 || c < 0x20) {
            out[n++] = '?';
            p++;
            continue;
        }
        memcpy(out + n, p, len);
        n += len;
        p += len;
    }
    out[n] = '\0';
    return json_string(out);
}

static void
row_invalid(struct import *im, long line, const char *email, const char *reason)
{
    im->invalid++;
    if (json_array_size(im->errors) < MAX_ERRORS)
        json_array_append_new(im->errors, json_pack("{s:I, s:o, s:s}", "line", (json_int_t)line,
                                                    "email", safe_string(email), "reason",
                                                    reason));
}

json_t *
import_report(const struct import *im)
{
    json_t *o = json_pack("{s:I, s:I}", "total", (json_int_t)im->total, "invalid",
                          (json_int_t)im->invalid);

    if (im->kind == IMPORT_RECIPIENTS) {
        json_object_set_new(o, "imported", json_integer(im->c.imported));
        json_object_set_new(o, "updated", json_integer(im->c.updated));
        json_object_set_new(o, "skipped_duplicates", json_integer(im->c.skipped_duplicates));
        json_object_set_new(o, "skipped_suppressed", json_integer(im->c.skipped_suppressed));
    } else {
        json_object_set_new(o, "imported", json_integer(im->imported_unsubs));
        json_object_set_new(o, "skipped_duplicates", json_integer(im->dup_unsubs));
    }
    json_object_set(o, "errors", im->errors);
    return o;
}

/* Stops the import with err; the first reason is kept. */
static void
stop(struct import *im, mc_err err, bool with_report, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
stop(struct import *im, mc_err err, bool with_report, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (im->stopped)
        return;
    im->stopped = true;
    im->err = err;
    im->with_report = with_report;
    im->field = field;
    va_start(ap, fmt);
    vsnprintf(im->msg, sizeof(im->msg), fmt, ap);
    va_end(ap);
}

/* ---- batches ---- */

static char *
keep(struct import *im, char *s)
{
    if (s != NULL)
        im->strs[im->nstrs++] = s;
    return s;
}

static void
batch_reset(struct import *im)
{
    for (int i = 0; i < im->nstrs; i++)
        free(im->strs[i]);
    im->nstrs = 0;
    im->n = 0;
}

static bool
flush(struct import *im)
{
    mc_err err;

    if (im->n == 0)
        return true;
    if (im->kind == IMPORT_RECIPIENTS)
        err = store_recipient_import(im->st, im->tenant_id, im->list_id, im->mode, im->rows,
                                     im->n, &im->c);
    else
        err = store_unsub_import(im->st, im->tenant_id, im->rows,
                                 (const char *const *)im->reasons, im->n, &im->imported_unsubs,
                                 &im->dup_unsubs);
    batch_reset(im);
    if (err != MC_ERR_OK) {
        log_error("event=import error=\"%s\" tenant=%s", mc_err_str(err), im->tenant_id);
        stop(im, err == MC_ERR_NOT_FOUND || err == MC_ERR_BUSY ? err : MC_ERR_DB, true, NULL, "%s",
             err == MC_ERR_NOT_FOUND ? "the recipient list was deleted during the import"
                                     : "the database failed during the import; the counts show "
                                       "what was written before the batch that failed");
        return false;
    }
    return true;
}

/* Text field: NULL when empty; false (and the reason) when unusable. */
static bool
text_field(const char *s, const char **out, const char *what, const char **why)
{
    static char msg[96];

    *out = NULL;
    if (s == NULL || *s == '\0')
        return true;
    if (strlen(s) > 255 || strpbrk(s, "\r\n") != NULL) {
        snprintf(msg, sizeof(msg), "%s is longer than 255 bytes or has a line break", what);
        *why = msg;
        return false;
    }
    *out = s;
    return true;
}

/*
 * Adds one row.  Strings are copied into the batch.  attrs (owned, JSON
 * object text or NULL) is taken.
 */
static bool
add_row(struct import *im, long line, const char *email, const char *name,
        const char *first, const char *last, char *attrs, const char *reason)
{
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    const char *why = NULL, *n1, *n2, *n3, *rs;

    im->total++;
    if (email == NULL || !email_normalize(email, norm, lc, &why)) {
        row_invalid(im, line, email, why ? why : "the email is missing");
        free(attrs);
        return true;
    }
    if (!text_field(name, &n1, "name", &why) || !text_field(first, &n2, "first_name", &why) ||
        !text_field(last, &n3, "last_name", &why)) {
        row_invalid(im, line, email, why);
        free(attrs);
        return true;
    }
    if (reason != NULL && strlen(reason) > 1000) {
        row_invalid(im, line, email, "reason is longer than 1000 bytes");
        free(attrs);
        return true;
    }
    rs = reason && *reason ? reason : NULL;
    if (seen_check(&im->seen, lc)) {
        if (im->kind == IMPORT_RECIPIENTS)
            im->c.skipped_duplicates++;
        else
            im->dup_unsubs++;
        free(attrs);
        return true;
    }
    struct import_row *row = &im->rows[im->n];
    row->email = keep(im, xstrdup(norm));
    row->email_lc = keep(im, xstrdup(lc));
    row->name = keep(im, xstrdup(n1));
    row->first_name = keep(im, xstrdup(n2));
    row->last_name = keep(im, xstrdup(n3));
    row->attributes = keep(im, attrs);
    im->reasons[im->n] = keep(im, xstrdup(rs));
    im->n++;
    return im->n < im->cap || flush(im);
}

/* ---- CSV ---- */

/*
 * The header row.  email, name, first_name, last_name and reason are found
 * whatever their case and surrounding blanks; every other column name is an
 * attribute key and is kept exactly (only the apostrophe an export puts in
 * front of a formula-like name is taken off), so export and import
 * round-trip.
 */
static bool
csv_header(struct import *im, char **fields, int n)
{
    static const char *const fixed[] = {"email", "name", "first_name", "last_name", "reason"};
    int *slots[] = {&im->c_email, &im->c_name, &im->c_first, &im->c_last, &im->c_reason};

    im->c_email = im->c_name = im->c_first = im->c_last = im->c_reason = -1;
    im->cols = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char *c = fields[i];
        size_t len;
        bool bad;

        im->cols[i] = xstrdup(csv_unneutralise(c));
        im->ncols = i + 1;
        while (*c == ' ' || *c == '\t')
            c++;
        len = strlen(c);
        while (len > 0 && (c[len - 1] == ' ' || c[len - 1] == '\t'))
            len--;
        for (int k = 0; k < 5; k++) {
            if (strlen(fixed[k]) == len && strncasecmp(c, fixed[k], len) == 0) {
                if (*slots[k] >= 0)
                    im->cols[i][0] = '\0'; /* a second "email": refused below */
                *slots[k] = i;
            }
        }
        bad = im->cols[i][0] == '\0' ||
              !str_valid_utf8(im->cols[i], strlen(im->cols[i]), false);
        for (int k = 0; k < i && !bad; k++)
            bad = strcmp(im->cols[k], im->cols[i]) == 0;
        if (bad) {
            stop(im, MC_ERR_BAD_REQUEST, true, NULL, "%s",
                 "the CSV header (line 1) has an empty, duplicate or invalid column name");
            return false;
        }
    }
    if (im->c_email < 0) {
        stop(im, MC_ERR_BAD_REQUEST, true, NULL, "%s",
             "the CSV header (line 1) has no \"email\" column");
        return false;
    }
    im->have_header = true;
    return true;
}

static const char *
cell(char **fields, int n, int col)
{
    return col >= 0 && col < n ? fields[col] : NULL;
}

static bool
csv_row(void *ctx, long line, char **fields, size_t *lens, int n)
{
    struct import *im = ctx;
    bool blank = true;
    char *attrs = NULL;

    if (im->stopped)
        return false;
    if (!im->have_header) {
        return csv_header(im, fields, n);
    }
    for (int i = 0; i < n; i++)
        if (strspn(fields[i], " \t") != lens[i])
            blank = false;
    if (blank)
        return true;
    for (int i = 0; i < n; i++) {
        if (strlen(fields[i]) != lens[i] || !str_valid_utf8(fields[i], lens[i], true)) {
            im->total++;
            row_invalid(im, line, cell(fields, n, im->c_email),
                        "the row is not valid UTF-8 text");
            return true;
        }
        csv_unneutralise(fields[i]);
    }
    if (im->kind == IMPORT_RECIPIENTS) {
        json_t *o = json_object();
        for (int i = 0; i < n && i < im->ncols; i++) {
            if (i == im->c_email || i == im->c_name || i == im->c_first || i == im->c_last ||
                fields[i][0] == '\0')
                continue;
            json_object_set_new(o, im->cols[i], json_string(fields[i]));
        }
        attrs = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return add_row(im, line, cell(fields, n, im->c_email), cell(fields, n, im->c_name),
                       cell(fields, n, im->c_first), cell(fields, n, im->c_last), attrs, NULL);
    }
    return add_row(im, line, cell(fields, n, im->c_email), NULL, NULL, NULL, NULL,
                   cell(fields, n, im->c_reason));
}

/* ---- JSON ---- */

static const char *
json_str_member(json_t *o, const char *k, bool *bad)
{
    json_t *v = json_object_get(o, k);

    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

static void
json_rows(struct import *im, json_t *arr)
{
    size_t i;
    json_t *e;

    json_array_foreach(arr, i, e)
    {
        long line = (long)i + 1;
        bool bad = false;
        const char *email, *name, *first, *last, *reason;
        json_t *attrs;
        char *attrs_s = NULL;

        if (json_is_string(e) && im->kind == IMPORT_SUPPRESSIONS) {
            if (!add_row(im, line, json_string_value(e), NULL, NULL, NULL, NULL, NULL))
                return;
            continue;
        }
        if (!json_is_object(e)) {
            im->total++;
            row_invalid(im, line, NULL, "the entry is not an object");
            continue;
        }
        /* Each import reads only its own fields. */
        bool rcpt = im->kind == IMPORT_RECIPIENTS;
        email = json_str_member(e, "email", &bad);
        name = rcpt ? json_str_member(e, "name", &bad) : NULL;
        first = rcpt ? json_str_member(e, "first_name", &bad) : NULL;
        last = rcpt ? json_str_member(e, "last_name", &bad) : NULL;
        reason = rcpt ? NULL : json_str_member(e, "reason", &bad);
        attrs = rcpt ? json_object_get(e, "attributes") : NULL;
        if (attrs != NULL && !json_is_null(attrs) && !json_is_object(attrs))
            bad = true;
        if (bad) {
            im->total++;
            row_invalid(im, line, email,
                        "a field has the wrong type (strings, and an object for attributes)");
            continue;
        }
        if (json_is_object(attrs))
            attrs_s = json_dumps(attrs, JSON_COMPACT);
        if (!add_row(im, line, email, name, first, last, attrs_s, reason))
            return;
    }
}

static void
json_finish(struct import *im)
{
    const char *key = im->kind == IMPORT_RECIPIENTS ? "recipients" : "emails";
    json_error_t jerr;
    json_t *doc, *arr;

    doc = json_loadb(im->json.data ? im->json.data : "", im->json.len, JSON_REJECT_DUPLICATES,
                     &jerr);
    if (doc == NULL) {
        stop(im, MC_ERR_BAD_JSON, false, NULL,
             "malformed JSON at line %d, column %d (byte %d): %s", jerr.line, jerr.column,
             jerr.position, jerr.text);
        return;
    }
    arr = json_object_get(doc, key);
    if (arr == NULL && im->kind == IMPORT_SUPPRESSIONS)
        arr = json_object_get(doc, key = "unsubscribes");
    if (!json_is_array(arr)) {
        stop(im, MC_ERR_INVALID, false, key, "the body must be an object with an array \"%s\"",
             key);
        json_decref(doc);
        return;
    }
    buf_cleanup(&im->json); /* the tree holds what is needed now */
    json_rows(im, arr);
    json_decref(doc);
}

/* ---- the pipeline ---- */

struct import *
import_new(struct store *st, const struct config *cfg, enum import_kind kind,
           enum import_format fmt, const char *tenant_id, const char *list_id,
           enum import_mode mode)
{
    struct import *im = xcalloc(1, sizeof(*im));

    im->st = st;
    im->cfg = cfg;
    im->kind = kind;
    im->is_csv = fmt == IMPORT_CSV;
    snprintf(im->tenant_id, sizeof(im->tenant_id), "%s", tenant_id);
    if (list_id != NULL)
        snprintf(im->list_id, sizeof(im->list_id), "%s", list_id);
    im->mode = mode;
    im->cap = (int)cfg->import_batch_size;
    im->rows = xcalloc((size_t)im->cap, sizeof(*im->rows));
    im->reasons = xcalloc((size_t)im->cap, sizeof(*im->reasons));
    im->strs = xcalloc((size_t)im->cap * 7, sizeof(*im->strs));
    crypto_random(&im->seen.seed, sizeof(im->seen.seed));
    im->errors = json_array();
    buf_init(&im->json, (size_t)cfg->import_max_json);
    if (im->is_csv)
        im->csv = csv_reader_new((size_t)cfg->import_max_row, csv_row, im);
    return im;
}

mc_err
import_feed(struct import *im, const char *data, size_t len)
{
    if (im->stopped)
        return im->err;
    if (!im->is_csv) {
        buf_append(&im->json, data, len);
        if (im->json.err == MC_ERR_TOO_LARGE)
            stop(im, MC_ERR_TOO_LARGE, false, NULL,
                 "a JSON import is limited to %lld bytes; send CSV for larger imports",
                 (long long)im->cfg->import_max_json);
    } else if (csv_reader_feed(im->csv, data, len) != MC_ERR_OK && !im->stopped) {
        /* The rows before the broken one are written, then the import stops. */
        if (flush(im))
            stop(im, MC_ERR_BAD_REQUEST, true, NULL, "%s", csv_reader_error(im->csv));
    }
    return im->stopped ? im->err : MC_ERR_OK;
}

mc_err
import_finish(struct import *im)
{
    if (im->stopped)
        return im->err;
    if (!im->is_csv)
        json_finish(im);
    else if (csv_reader_finish(im->csv) != MC_ERR_OK && !im->stopped) {
        if (flush(im))
            stop(im, MC_ERR_BAD_REQUEST, true, NULL, "%s", csv_reader_error(im->csv));
    } else if (!im->stopped && !im->have_header)
        stop(im, MC_ERR_BAD_REQUEST, true, NULL, "%s", "the CSV is empty: it needs a header row");
    if (im->stopped || !flush(im))
        return im->err;
    log_info("event=import kind=%s tenant=%s total=%lld invalid=%lld",
             im->kind == IMPORT_RECIPIENTS ? "recipients" : "unsubscribes", im->tenant_id,
             (long long)im->total, (long long)im->invalid);
    return MC_ERR_OK;
}

const char *
import_error(const struct import *im, const char **field, bool *with_report)
{
    *field = im->field;
    *with_report = im->with_report;
    return im->msg;
}

void
import_free(struct import *im)
{
    if (im == NULL)
        return;
    batch_reset(im);
    csv_reader_free(im->csv);
    buf_cleanup(&im->json);
    for (int i = 0; i < im->ncols; i++)
        free(im->cols[i]);
    free(im->cols);
    free(im->rows);
    free(im->reasons);
    free(im->strs);
    free(im->seen.slots);
    json_decref(im->errors);
    free(im);
}
