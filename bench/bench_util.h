/*
 * bench_util.h - small helpers shared by the C baseline programs of
 * bench/: a monotonic clock, a fast non-cryptographic UUID, a growing
 * COPY buffer for libpq, and error exits.
 *
 * The baselines are deliberately the simplest fast way to do the same work
 * (one prepared statement in one transaction, or COPY), so they must stay
 * free of anything mailcast itself does on top.  Everything here is static
 * and header-only: each program is one translation unit.
 */
#ifndef MC_BENCH_UTIL_H
#define MC_BENCH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

static inline double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void
bench_die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* xorshift64*: the baselines need unique ids, not unguessable ones. */
static inline uint64_t
bench_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* A random version-4 UUID as 36 characters and a NUL. */
static inline void
bench_uuid(uint64_t *s, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t a = bench_rand(s), c = bench_rand(s);
    int k = 0;

    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}

static inline void
bench_sqlite_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        bench_die("sqlite: %s: %s", msg ? msg : "?", sql);
}

/* Opens path with the pragmas mailcast's SQLite store uses. */
static inline sqlite3 *
bench_sqlite_open(const char *path)
{
    sqlite3 *db = NULL;

    if (sqlite3_open(path, &db) != SQLITE_OK)
        bench_die("sqlite: cannot open %s", path);
    bench_sqlite_exec(db, "PRAGMA journal_mode=WAL");
    bench_sqlite_exec(db, "PRAGMA synchronous=NORMAL");
    bench_sqlite_exec(db, "PRAGMA temp_store=MEMORY");
    return db;
}

static inline PGconn *
bench_pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);

    if (PQstatus(c) != CONNECTION_OK)
        bench_die("postgres: %s", PQerrorMessage(c));
    return c;
}

static inline void
bench_pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_COPY_IN)
        bench_die("postgres: %s: %s", PQerrorMessage(c), sql);
    PQclear(r);
}

/* COPY rows accumulate here and go to the server 1 MiB at a time. */
struct bench_copy {
    PGconn *conn; /* borrowed */
    char *data;   /* owned */
    size_t len, cap;
};

static inline void
bench_copy_flush(struct bench_copy *b)
{
    if (b->len > 0 && PQputCopyData(b->conn, b->data, (int)b->len) != 1)
        bench_die("postgres: COPY: %s", PQerrorMessage(b->conn));
    b->len = 0;
}

/* Appends one formatted piece (a row, or part of one). */
__attribute__((format(printf, 2, 3))) static inline void
bench_copy_printf(struct bench_copy *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->data == NULL) {
        b->cap = 1 << 20;
        b->data = malloc(b->cap);
        if (b->data == NULL)
            bench_die("out of memory");
    }
    if (b->cap - b->len < 4096)
        bench_copy_flush(b);
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        bench_die("COPY row longer than the buffer");
    b->len += (size_t)n;
}

static inline void
bench_copy_end(struct bench_copy *b)
{
    PGresult *r;

    bench_copy_flush(b);
    if (PQputCopyEnd(b->conn, NULL) != 1)
        bench_die("postgres: COPY end: %s", PQerrorMessage(b->conn));
    while ((r = PQgetResult(b->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            bench_die("postgres: COPY: %s", PQerrorMessage(b->conn));
        PQclear(r);
    }
    free(b->data);
    b->data = NULL;
}

#endif
