/*
 * storefix.h - the cmocka fixture for tests that need a store, on both
 * backends: setup_sqlite makes a SQLite file of its own, setup_pg a fresh
 * database on the throwaway PostgreSQL cluster (MAILCAST_TEST_PG_URL, set
 * by tests/run.sh); teardown removes either.  Run a test group once with
 * each setup, so every store test runs on both.
 */
#ifndef MC_STOREFIX_H
#define MC_STOREFIX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/crypto.h"
#include "core/util.h"
#include "store/store.h"
#include "store/store_int.h"

struct fixture {
    struct store *st;
    char *url;
    char *pg_server; /* server URL to drop the database, PG only */
    char dbname[40];
};

static inline struct store *
open_store(const char *url)
{
    struct store_params sp = {.pool_size = 4, .busy_timeout_ms = 5000};
    struct store *st = NULL;

    assert_int_equal(store_open(url, &sp, &st), MC_ERR_OK);
    return st;
}

static inline int
setup_sqlite(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->url = xasprintf("sqlite:/tmp/mc-store-test-%d.db", (int)getpid());
    unlink(f->url + 7);
    f->st = open_store(f->url);
    *state = f;
    return 0;
}

static inline void
pg_admin(const char *server, const char *sql)
{
    PGconn *c = PQconnectdb(server);
    PGresult *r;

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "storefix: cannot connect to %s: %s", server, PQerrorMessage(c));
        abort();
    }
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "storefix: %s: %s", sql, PQerrorMessage(c));
        abort();
    }
    PQclear(r);
    PQfinish(c);
}

static inline int
setup_pg(void **state)
{
    const char *server = getenv("MAILCAST_TEST_PG_URL");
    struct fixture *f;
    unsigned char rnd[6];
    char hex[13], sql[128];
    const char *q;

    if (server == NULL || strstr(server, "///postgres") == NULL) {
        fprintf(stderr, "storefix: MAILCAST_TEST_PG_URL is not set (tests/run.sh sets it); "
                        "the PostgreSQL half of the store tests cannot run\n");
        return -1; /* the group fails: a store test must run on both backends */
    }
    f = xcalloc(1, sizeof(*f));
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    snprintf(f->dbname, sizeof(f->dbname), "mc_unit_%s", hex);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
    pg_admin(server, sql);
    q = strstr(server, "///postgres") + strlen("///postgres");
    f->url = xasprintf("%.*s///%s%s", (int)(strstr(server, "///") - server), server, f->dbname,
                       q);
    f->pg_server = xstrdup(server);
    f->st = open_store(f->url);
    *state = f;
    return 0;
}

static inline int
teardown(void **state)
{
    struct fixture *f = *state;
    char sql[128];

    if (f == NULL)
        return 0;
    store_close(f->st);
    if (f->pg_server) {
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->dbname);
        pg_admin(f->pg_server, sql);
    } else
        unlink(f->url + 7);
    free(f->url);
    free(f->pg_server);
    free(f);
    return 0;
}

static inline struct store *
st_of(void **state)
{
    return ((struct fixture *)*state)->st;
}

/* Creates an active tenant named and slugged slug into t (clean it with tenant_cleanup). */
static inline void
make_tenant(struct store *st, const char *slug, struct tenant *t)
{
    memset(t, 0, sizeof(*t));
    t->name = xstrdup(slug);
    t->slug = xstrdup(slug);
    t->status = TENANT_ACTIVE;
    assert_int_equal(store_tenant_create(st, t), MC_ERR_OK);
}

/* The one integer sql returns with $1 = id (a test's count or field). */
static inline int64_t
one_int(struct store *st, const char *sql, const char *id)
{
    struct db_param p[] = {P_TEXT(id)};
    int64_t v = -1;
    struct db d;

    assert_int_equal(db_get(st, &d), MC_ERR_OK);
    assert_int_equal(db_one_int(&d, sql, p, 1, &v), MC_ERR_OK);
    db_put(&d);
    return v;
}

#endif
