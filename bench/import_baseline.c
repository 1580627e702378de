/*
 * import_baseline.c - the floor bench/import compares mailcast's CSV import
 * with: the same rows written the simplest fast way.
 *
 *   import_baseline [--full-schema] sqlite:PATH CSV
 *   import_baseline [--full-schema] postgresql://... CSV
 *
 * Reads CSV (email,name,city,plan,score, as bench/import generates it: no
 * quoting), builds for each row what mailcast stores (a UUID, the address
 * with its domain lowercased, its lowercase form, the name, the three other
 * columns as a JSON object of attributes, timestamps) and writes it into a
 * fresh table shaped like mailcast's recipients, with its primary key and
 * its unique index (recipient_list_id, email_lc):
 *   SQLite: one prepared INSERT, stepped per row, in one transaction, with
 *           the pragmas mailcast's store uses (WAL, synchronous=NORMAL);
 *   PostgreSQL: one COPY ... FROM STDIN (PQputCopyData) in one transaction.
 * --full-schema adds mailcast's three other indexes on recipients, to show
 * what they cost; the benchmark's ratio uses the default (unique index only).
 *
 * Prints one line: rows=N seconds=S rows_per_s=R.  The timed part is the
 * parse and the write, BEGIN to COMMIT; reading the file and creating the
 * table are not timed.  No triggers, no foreign keys, no HTTP, no JSON
 * library: this is a floor, not a model of mailcast.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define TENANT "6f1c0d7e-2b4a-4c8e-9d3f-0a1b2c3d4e5f"
#define LIST "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#define MAX_FIELD 512

struct row {
    char email[MAX_FIELD], email_lc[MAX_FIELD], name[MAX_FIELD], attrs[3 * MAX_FIELD + 64];
};

static char *
read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data;
    long n;

    if (fp == NULL)
        bench_die("cannot open %s", path);
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
        bench_die("cannot size %s", path);
    data = malloc((size_t)n + 1);
    if (data == NULL || fread(data, 1, (size_t)n, fp) != (size_t)n)
        bench_die("cannot read %s", path);
    data[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return data;
}

/* Copies the next comma-separated field of the line at *p into out. */
static void
field(const char **p, const char *end, char *out)
{
    size_t n = 0;

    while (*p < end && **p != ',' && **p != '\n' && **p != '\r') {
        if (n + 1 < MAX_FIELD)
            out[n++] = **p;
        (*p)++;
    }
    out[n] = '\0';
    if (*p < end && **p == ',')
        (*p)++;
}

/* Parses the line at *p into r and moves *p past it; false at the end. */
static bool
next_row(const char **p, const char *end, struct row *r)
{
    char city[MAX_FIELD], plan[MAX_FIELD], score[MAX_FIELD];
    char *at;

    if (*p >= end)
        return false;
    field(p, end, r->email);
    field(p, end, r->name);
    field(p, end, city);
    field(p, end, plan);
    field(p, end, score);
    while (*p < end && **p != '\n')
        (*p)++;
    if (*p < end)
        (*p)++;
    at = strrchr(r->email, '@');
    for (char *q = at ? at : r->email + strlen(r->email); *q; q++)
        *q = (char)tolower((unsigned char)*q);
    for (size_t i = 0;; i++) {
        r->email_lc[i] = (char)tolower((unsigned char)r->email[i]);
        if (r->email[i] == '\0')
            break;
    }
    snprintf(r->attrs, sizeof(r->attrs), "{\"city\":\"%s\",\"plan\":\"%s\",\"score\":\"%s\"}",
             city, plan, score);
    return true;
}

static const char *const extra_indexes[] = {
    "CREATE INDEX r_tenant_email ON recipients (tenant_id, email_lc)",
    "CREATE INDEX r_list_created ON recipients (recipient_list_id, created_at)",
    "CREATE INDEX r_list_id ON recipients (recipient_list_id, id)",
};

static long
run_sqlite(const char *path, const char *p, const char *end, bool full, double *secs)
{
    sqlite3 *db = bench_sqlite_open(path);
    sqlite3_stmt *st = NULL;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    struct row r;
    char id[37];
    long n = 0;
    double t0;
    const sqlite3_int64 now = 1795953600000000LL; /* 2026-11-29, microseconds */

    bench_sqlite_exec(db, "CREATE TABLE recipients (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, "
                          "recipient_list_id TEXT NOT NULL, email TEXT NOT NULL, "
                          "email_lc TEXT NOT NULL, name TEXT, first_name TEXT, last_name TEXT, "
                          "status TEXT NOT NULL DEFAULT 'active', "
                          "attributes TEXT NOT NULL DEFAULT '{}', subscribed_at INTEGER NOT NULL, "
                          "unsubscribed_at INTEGER, created_at INTEGER NOT NULL, "
                          "updated_at INTEGER NOT NULL, UNIQUE (recipient_list_id, email_lc))");
    for (size_t i = 0; full && i < sizeof(extra_indexes) / sizeof(extra_indexes[0]); i++)
        bench_sqlite_exec(db, extra_indexes[i]);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO recipients (id, tenant_id, recipient_list_id, email, "
                           "email_lc, name, status, attributes, subscribed_at, created_at, "
                           "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8, ?8, ?8)",
                           -1, &st, NULL) != SQLITE_OK)
        bench_die("sqlite: %s", sqlite3_errmsg(db));
    t0 = bench_now();
    bench_sqlite_exec(db, "BEGIN");
    next_row(&p, end, &r); /* the header */
    while (next_row(&p, end, &r)) {
        if (r.email[0] == '\0')
            continue;
        bench_uuid(&seed, id);
        sqlite3_bind_text(st, 1, id, 36, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, TENANT, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, LIST, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r.email, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r.email_lc, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, r.name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, r.attrs, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, now);
        if (sqlite3_step(st) != SQLITE_DONE)
            bench_die("sqlite: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        n++;
    }
    bench_sqlite_exec(db, "COMMIT");
    *secs = bench_now() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static long
run_pg(const char *url, const char *p, const char *end, bool full, double *secs)
{
    PGconn *c = bench_pg_connect(url);
    struct bench_copy b = {.conn = c};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    struct row r;
    char id[37];
    long n = 0;
    double t0;

    bench_pg_exec(c, "DROP TABLE IF EXISTS recipients");
    bench_pg_exec(c, "CREATE TABLE recipients (id UUID PRIMARY KEY, tenant_id UUID NOT NULL, "
                     "recipient_list_id UUID NOT NULL, email VARCHAR(254) NOT NULL, "
                     "email_lc VARCHAR(254) NOT NULL, name TEXT, first_name TEXT, "
                     "last_name TEXT, status VARCHAR(20) NOT NULL DEFAULT 'active', "
                     "attributes JSONB NOT NULL DEFAULT '{}', subscribed_at TIMESTAMPTZ NOT NULL, "
                     "unsubscribed_at TIMESTAMPTZ, created_at TIMESTAMPTZ NOT NULL, "
                     "updated_at TIMESTAMPTZ NOT NULL, UNIQUE (recipient_list_id, email_lc))");
    for (size_t i = 0; full && i < sizeof(extra_indexes) / sizeof(extra_indexes[0]); i++)
        bench_pg_exec(c, extra_indexes[i]);
    t0 = bench_now();
    bench_pg_exec(c, "BEGIN");
    bench_pg_exec(c, "COPY recipients (id, tenant_id, recipient_list_id, email, email_lc, name, "
                     "status, attributes, subscribed_at, created_at, updated_at) FROM STDIN");
    next_row(&p, end, &r);
    while (next_row(&p, end, &r)) {
        if (r.email[0] == '\0')
            continue;
        bench_uuid(&seed, id);
        /* The generated CSV has no tab, backslash or newline to escape. */
        bench_copy_printf(&b,
                          "%s\t" TENANT "\t" LIST "\t%s\t%s\t%s\tactive\t%s\t"
                          "2026-11-29 12:00:00+00\t2026-11-29 12:00:00+00\t"
                          "2026-11-29 12:00:00+00\n",
                          id, r.email, r.email_lc, r.name, r.attrs);
        n++;
    }
    bench_copy_end(&b);
    bench_pg_exec(c, "COMMIT");
    *secs = bench_now() - t0;
    PQfinish(c);
    return n;
}

int
main(int argc, char **argv)
{
    bool full = false;
    size_t len = 0;
    char *data;
    double secs = 0;
    long n;

    if (argc > 1 && strcmp(argv[1], "--full-schema") == 0) {
        full = true;
        argc--;
        argv++;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: import_baseline [--full-schema] sqlite:PATH|postgresql://URL CSV\n");
        return 2;
    }
    data = read_all(argv[2], &len);
    if (strncmp(argv[1], "sqlite:", 7) == 0)
        n = run_sqlite(argv[1] + 7, data, data + len, full, &secs);
    else
        n = run_pg(argv[1], data, data + len, full, &secs);
    printf("rows=%ld seconds=%.3f rows_per_s=%.0f\n", n, secs, (double)n / secs);
    free(data);
    return 0;
}
