/*
 * store_pg.c - the PostgreSQL backend: a small driver under the store
 * frontend, on libpq.  It knows connections, statements, parameters and
 * transactions, and nothing about mailcast's tables.
 *
 * DESIGN
 * Parameters travel as text with unspecified types, so the server infers
 * uuid, jsonb, timestamptz or integer from the column each is compared with
 * or stored into; the frontend writes $1..$n once for both backends.  Every
 * session runs in UTC with ISO dates so that timestamptz values read back
 * in one fixed format.  A whole result is fetched at once: queries that may
 * return many rows page through them.  Statements are prepared once per
 * connection, keyed by the address of their text (every query is a string
 * constant of the frontend), which saves a parse and plan per call: the
 * bulk paths run thousands of small statements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

#define STMT_CACHE 128

struct db_conn {
    PGconn *pg;
    const char *prepared[STMT_CACHE]; /* borrowed: statement texts, named "s<index>" */
    int nprepared;
};

struct db_res {
    PGresult *res;
    int row;  /* current row, -1 before the first */
    int nrow;
};

static mc_err
pg_result_err(struct db_conn *c, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state != NULL) {
        if (strcmp(state, "23505") == 0)
            return MC_ERR_CONFLICT;
        if (strcmp(state, "23503") == 0)
            return MC_ERR_INVALID;
        if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
            strcmp(state, "55P03") == 0) {
            log_warn("event=db backend=postgres sqlstate=%s what=\"%.80s\"", state, what);
            return MC_ERR_BUSY;
        }
    }
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
    char one[512];
    size_t n = strcspn(msg, "\n");
    snprintf(one, sizeof(one), "%.*s", (int)(n < 400 ? n : 400), msg);
    for (char *p = one; *p; p++)
        if (*p == '"')
            *p = '\'';
    log_error("event=db backend=postgres sqlstate=%s error=\"%s\" what=\"%.80s\"",
              state ? state : "-", one, what);
    return MC_ERR_DB;
}

static void
pg_disconnect(struct db_conn *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

static void
quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static mc_err
pg_connect(const char *url, const struct store_params *p, struct db_conn **out)
{
    struct db_conn *c = xcalloc(1, sizeof(*c));
    PGresult *res;

    (void)p;
    c->pg = PQconnectdb(url);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char one[400];
        const char *msg = PQerrorMessage(c->pg);
        snprintf(one, sizeof(one), "%.*s", (int)strcspn(msg, "\n"), msg);
        /* store.c logs it once per outage, not once per try */
        snprintf(db_connect_error, sizeof(db_connect_error), "cannot connect: %.250s", one);
        log_debug("event=db backend=postgres error=\"cannot connect: %s\"", one);
        pg_disconnect(c);
        return MC_ERR_DB;
    }
    PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
    res = PQexec(c->pg, "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; "
                        "SET client_min_messages = warning");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        mc_err err = pg_result_err(c, res, "session setup");
        PQclear(res);
        pg_disconnect(c);
        return err;
    }
    PQclear(res);
    *out = c;
    return MC_ERR_OK;
}

/* The prepared statement's name for sql, preparing it on first use; NULL to run it unprepared. */
static const char *
prepared(struct db_conn *c, const char *sql, int np, char name[16])
{
    PGresult *res;
    int i;

    for (i = 0; i < c->nprepared; i++) {
        if (c->prepared[i] == sql) {
            snprintf(name, 16, "s%d", i);
            return name;
        }
    }
    if (c->nprepared == STMT_CACHE)
        return NULL;
    snprintf(name, 16, "s%d", i);
    res = PQprepare(c->pg, name, sql, np, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        PQclear(res);
        return NULL; /* run unprepared: the error, if real, shows there */
    }
    PQclear(res);
    c->prepared[c->nprepared++] = sql;
    return name;
}

static PGresult *
run(struct db_conn *c, const char *sql, const struct db_param *p, int np)
{
    const char *vals[32];
    char ibuf[32][40], name[16];

    if (np > 32)
        abort(); /* programmer error: no query has that many parameters */
    for (int i = 0; i < np; i++) {
        switch (p[i].type) {
        case DB_NULL:
            vals[i] = NULL;
            break;
        case DB_TEXT:
            vals[i] = p[i].s;
            break;
        case DB_INT:
            snprintf(ibuf[i], sizeof(ibuf[i]), "%lld", (long long)p[i].i);
            vals[i] = ibuf[i];
            break;
        case DB_BOOL:
            vals[i] = p[i].i ? "true" : "false";
            break;
        case DB_TIME:
            time_format_rfc3339(p[i].i, ibuf[i], sizeof(ibuf[i]));
            vals[i] = ibuf[i];
            break;
        }
    }
    /* Inside a failed transaction nothing can be prepared: run it plainly. */
    if (PQtransactionStatus(c->pg) != PQTRANS_INERROR && prepared(c, sql, np, name) != NULL)
        return PQexecPrepared(c->pg, name, np, vals, NULL, NULL, 0);
    return PQexecParams(c->pg, sql, np, NULL, vals, NULL, NULL, 0);
}

static mc_err
pg_exec(struct db_conn *c, const char *sql, const struct db_param *p, int np, int64_t *changes)
{
    PGresult *res = run(c, sql, p, np);
    ExecStatusType st = PQresultStatus(res);
    mc_err err = MC_ERR_OK;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        err = pg_result_err(c, res, sql);
    else if (changes) {
        const char *n = PQcmdTuples(res);
        *changes = (n && *n) ? strtoll(n, NULL, 10) : 0;
    }
    PQclear(res);
    return err;
}

static mc_err
pg_query(struct db_conn *c, const char *sql, const struct db_param *p, int np,
         struct db_res **out)
{
    PGresult *res = run(c, sql, p, np);
    struct db_res *r;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        mc_err err = pg_result_err(c, res, sql);
        PQclear(res);
        return err;
    }
    r = xcalloc(1, sizeof(*r));
    r->res = res;
    r->row = -1;
    r->nrow = PQntuples(res);
    *out = r;
    return MC_ERR_OK;
}

static mc_err
pg_next(struct db_res *r, bool *row)
{
    if (r->row + 1 < r->nrow) {
        r->row++;
        *row = true;
    } else {
        r->row = r->nrow;
        *row = false;
    }
    return MC_ERR_OK;
}

static const char *
pg_col_text(struct db_res *r, int col)
{
    if (PQgetisnull(r->res, r->row, col))
        return NULL;
    return PQgetvalue(r->res, r->row, col);
}

static int64_t
pg_col_int(struct db_res *r, int col)
{
    const char *s = pg_col_text(r, col);

    return s ? strtoll(s, NULL, 10) : 0;
}

static bool
pg_col_bool(struct db_res *r, int col)
{
    const char *s = pg_col_text(r, col);

    return s && (s[0] == 't' || s[0] == '1');
}

/* Reads "2026-11-29 11:13:53.123456+00" (UTC, ISO DateStyle). */
static int64_t
pg_col_time(struct db_res *r, int col)
{
    const char *s = pg_col_text(r, col);
    char iso[48];
    size_t n;
    int64_t us;

    if (s == NULL)
        return 0;
    n = strlen(s);
    if (n < 22 || n > 40)
        return 0;
    memcpy(iso, s, n + 1);
    iso[10] = 'T';
    if (n >= 3 && (iso[n - 3] == '+' || iso[n - 3] == '-')) {
        memcpy(iso + n, ":00", 4);
    }
    return time_parse_rfc3339(iso, &us) ? us : 0;
}

static void
pg_res_free(struct db_res *r)
{
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

static mc_err
simple(struct db_conn *c, const char *sql)
{
    PGresult *res = PQexec(c->pg, sql);
    mc_err err = MC_ERR_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        err = pg_result_err(c, res, sql);
    PQclear(res);
    return err;
}

static mc_err
pg_begin(struct db_conn *c, bool immediate)
{
    (void)immediate; /* row locks do the work of SQLite's write lock */
    return simple(c, "BEGIN");
}

static mc_err
pg_commit(struct db_conn *c)
{
    return simple(c, "COMMIT");
}

static mc_err
pg_rollback(struct db_conn *c)
{
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return MC_ERR_OK;
    return simple(c, "ROLLBACK");
}

static bool
pg_reset(struct db_conn *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK)
        return false;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return pg_rollback(c) == MC_ERR_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    return true;
}

static mc_err
pg_exec_script(struct db_conn *c, const char *sql)
{
    return simple(c, sql);
}

const struct store_ops store_pg_ops = {
    .version = 1,
    .name = "postgres",
    .dialect = DB_PG,
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec = pg_exec,
    .query = pg_query,
    .next = pg_next,
    .col_text = pg_col_text,
    .col_int = pg_col_int,
    .col_bool = pg_col_bool,
    .col_time = pg_col_time,
    .res_free = pg_res_free,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .reset = pg_reset,
    .exec_script = pg_exec_script,
};
