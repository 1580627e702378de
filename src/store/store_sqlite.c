/*
 * store_sqlite.c - the SQLite backend: a small driver under the store
 * frontend.  It knows connections, statements, parameters and transactions,
 * and nothing about mailcast's tables.
 *
 * DESIGN
 * Each connection runs in WAL mode with a busy timeout, foreign keys on and
 * synchronous=NORMAL (durable at checkpoints, safe against corruption).
 * Prepared statements are cached per connection, keyed by the SQL text's
 * address: every query is a string constant of the frontend, so the pointer
 * identifies it.  Parameters are written $1..$n and bound by name (each
 * name's index is found once, when the statement is prepared), which is what
 * lets one SQL text serve both backends.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "store_int.h"

#define STMT_CACHE 96
#define MAX_PARAMS 32 /* $1..$32: more than any statement of the frontend uses */

/*
 * A prepared statement with, for each $k, its SQLite parameter index
 * (0: the statement does not use $k).  Found once at prepare time: looking
 * the names up at every bind was a measurable share of a bulk import.
 */
struct cached {
    const char *sql; /* borrowed: a string constant */
    sqlite3_stmt *stmt;
    unsigned char idx[MAX_PARAMS];
};

struct db_conn {
    sqlite3 *db;
    struct cached cache[STMT_CACHE];
    int ncache;
};

struct db_res {
    struct db_conn *c;
    sqlite3_stmt *stmt;
    bool cached; /* reset, not finalized, on free */
};

static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/*
 * Process-wide settings, before SQLite initialises.  Memory statistics make
 * every sqlite3_malloc and sqlite3_free take a global mutex; mailcast never
 * reads them.  Ignored (SQLITE_MISUSE) if something initialised SQLite first.
 */
static void
config_sqlite(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static mc_err
sqlite_err(struct db_conn *c, int rc, const char *what)
{
    int ext = sqlite3_extended_errcode(c->db);

    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return MC_ERR_CONFLICT;
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        return MC_ERR_INVALID;
    if (rc == SQLITE_FULL) {
        /* No space: not a passing outage, so not "try again" (issue 12 finding 18). */
        log_error("event=db backend=sqlite error=storage_full rc=%d what=\"%.80s\"", ext, what);
        return MC_ERR_STORAGE_FULL;
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        log_warn("event=db backend=sqlite error=busy what=\"%s\"", what);
        return MC_ERR_BUSY;
    }
    log_error("event=db backend=sqlite rc=%d error=\"%s\" what=\"%.80s\"", ext,
              sqlite3_errmsg(c->db), what);
    return MC_ERR_DB;
}

/* Creates the directory holding path when it is missing (one level). */
static void
ensure_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;

    if (slash == NULL || slash == path)
        return;
    dir = xstrndup(path, (size_t)(slash - path));
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        log_warn("event=db backend=sqlite mkdir=\"%s\" error=\"%s\"", dir, strerror(errno));
    free(dir);
}

/*
 * gen_random_uuid(), as PostgreSQL has it, so one SQL text serves both, and
 * mc_uuid7(), a time-ordered id (migration 0006 gives PostgreSQL the same):
 * the function's user data points at its generator.
 */
typedef void (*uuid_gen)(char out[MC_UUID_LEN + 1]);
static const uuid_gen gen_v4 = crypto_uuid, gen_v7 = crypto_uuid7;

static void
fn_uuid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const uuid_gen *gen = sqlite3_user_data(ctx);
    char id[MC_UUID_LEN + 1];

    (void)argc;
    (void)argv;
    (*gen)(id);
    sqlite3_result_text(ctx, id, MC_UUID_LEN, SQLITE_TRANSIENT);
}

static void
sq_disconnect(struct db_conn *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].stmt);
    sqlite3_close_v2(c->db);
    free(c);
}

static mc_err
sq_connect(const char *url, const struct store_params *p, struct db_conn **out)
{
    static const char *const pragmas[] = {
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA cache_size=-16384", /* 16 MiB a connection: bulk paths re-read pages otherwise */
    };
    const char *path = url + strlen("sqlite:");
    struct db_conn *c;
    int rc;

    pthread_once(&config_once, config_sqlite);
    if (str_prefix(path, "//"))
        path += 2;
    ensure_dir(path);
    c = xcalloc(1, sizeof(*c));
    rc = sqlite3_open_v2(path, &c->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                         NULL);
    if (rc != SQLITE_OK) {
        log_error("event=db backend=sqlite error=\"cannot open %s: %s\"", path,
                  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sq_disconnect(c);
        return MC_ERR_DB;
    }
    sqlite3_busy_timeout(c->db, p->busy_timeout_ms);
    sqlite3_create_function(c->db, "gen_random_uuid", 0, SQLITE_UTF8, (void *)&gen_v4, fn_uuid,
                            NULL, NULL);
    sqlite3_create_function(c->db, "mc_uuid7", 0, SQLITE_UTF8, (void *)&gen_v7, fn_uuid, NULL,
                            NULL);
    sqlite3_extended_result_codes(c->db, 1);
    for (unsigned i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
        rc = sqlite3_exec(c->db, pragmas[i], NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            mc_err err = sqlite_err(c, rc, pragmas[i]);
            sq_disconnect(c);
            return err;
        }
    }
    *out = c;
    return MC_ERR_OK;
}

/* Fills c->idx from the statement's parameter names ($1..$n). */
static void
map_params(struct cached *c)
{
    int n = sqlite3_bind_parameter_count(c->stmt);

    memset(c->idx, 0, sizeof(c->idx));
    for (int j = 1; j <= n; j++) {
        const char *name = sqlite3_bind_parameter_name(c->stmt, j);
        int64_t k;

        if (name != NULL && name[0] == '$' && parse_int64(name + 1, 1, MAX_PARAMS, &k))
            c->idx[k - 1] = (unsigned char)j;
    }
}

/*
 * Finds or prepares sql.  *out points into the connection's cache, or (the
 * cache full) at tmp, whose statement the caller finalizes.
 */
static mc_err
prepare(struct db_conn *c, const char *sql, struct cached *tmp, struct cached **out,
        bool *cached)
{
    sqlite3_stmt *stmt;
    struct cached *e;
    int rc;

    for (int i = 0; i < c->ncache; i++) {
        if (c->cache[i].sql == sql) {
            *out = &c->cache[i];
            *cached = true;
            return MC_ERR_OK;
        }
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    if (rc != SQLITE_OK)
        return sqlite_err(c, rc, sql);
    *cached = c->ncache < STMT_CACHE;
    e = *cached ? &c->cache[c->ncache++] : tmp;
    e->sql = sql;
    e->stmt = stmt;
    map_params(e);
    *out = e;
    return MC_ERR_OK;
}

static mc_err
bind(struct db_conn *c, const struct cached *e, const struct db_param *p, int np)
{
    sqlite3_stmt *stmt = e->stmt;

    for (int i = 0; i < np; i++) {
        int idx, rc;

        if (i >= MAX_PARAMS)
            return sqlite_err(c, SQLITE_RANGE, e->sql); /* a frontend bug: say so */
        idx = e->idx[i];

        if (idx == 0)
            continue; /* the statement does not use this parameter */
        switch (p[i].type) {
        case DB_NULL:
            rc = sqlite3_bind_null(stmt, idx);
            break;
        case DB_TEXT:
            rc = sqlite3_bind_text(stmt, idx, p[i].s, -1, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_int64(stmt, idx, p[i].i);
            break;
        }
        if (rc != SQLITE_OK)
            return sqlite_err(c, rc, "bind");
    }
    return MC_ERR_OK;
}

static void
release(sqlite3_stmt *stmt, bool cached)
{
    if (cached) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    } else
        sqlite3_finalize(stmt);
}

static mc_err
sq_query(struct db_conn *c, const char *sql, const struct db_param *p, int np,
         struct db_res **out)
{
    struct cached tmp, *e = NULL;
    bool cached = false;
    struct db_res *r;
    mc_err err;

    err = prepare(c, sql, &tmp, &e, &cached);
    if (err != MC_ERR_OK)
        return err;
    assert(np <= MAX_PARAMS);
    err = bind(c, e, p, np);
    if (err != MC_ERR_OK) {
        release(e->stmt, cached);
        return err;
    }
    r = xcalloc(1, sizeof(*r));
    r->c = c;
    r->stmt = e->stmt;
    r->cached = cached;
    *out = r;
    return MC_ERR_OK;
}

static mc_err
sq_next(struct db_res *r, bool *row)
{
    int rc = sqlite3_step(r->stmt);

    if (rc == SQLITE_ROW) {
        *row = true;
        return MC_ERR_OK;
    }
    *row = false;
    if (rc == SQLITE_DONE)
        return MC_ERR_OK;
    return sqlite_err(r->c, rc, sqlite3_sql(r->stmt));
}

static void
sq_res_free(struct db_res *r)
{
    if (r == NULL)
        return;
    release(r->stmt, r->cached);
    free(r);
}

static mc_err
sq_exec(struct db_conn *c, const char *sql, const struct db_param *p, int np, int64_t *changes)
{
    struct db_res *r = NULL;
    bool row = true;
    mc_err err;

    err = sq_query(c, sql, p, np, &r);
    while (err == MC_ERR_OK && row)
        err = sq_next(r, &row);
    sq_res_free(r);
    if (err == MC_ERR_OK && changes)
        *changes = sqlite3_changes64(c->db);
    return err;
}

static const char *
sq_col_text(struct db_res *r, int col)
{
    return (const char *)sqlite3_column_text(r->stmt, col);
}

static int64_t
sq_col_int(struct db_res *r, int col)
{
    return sqlite3_column_int64(r->stmt, col);
}

static bool
sq_col_bool(struct db_res *r, int col)
{
    return sqlite3_column_int64(r->stmt, col) != 0;
}

static mc_err
simple(struct db_conn *c, const char *sql)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? MC_ERR_OK : sqlite_err(c, rc, sql);
}

static mc_err
sq_begin(struct db_conn *c, bool immediate)
{
    return simple(c, immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

static mc_err
sq_commit(struct db_conn *c)
{
    mc_err err = simple(c, "COMMIT");

    if (err != MC_ERR_OK && !sqlite3_get_autocommit(c->db))
        simple(c, "ROLLBACK");
    return err;
}

static mc_err
sq_rollback(struct db_conn *c)
{
    if (sqlite3_get_autocommit(c->db))
        return MC_ERR_OK;
    return simple(c, "ROLLBACK");
}

static bool
sq_reset(struct db_conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        return sq_rollback(c) == MC_ERR_OK;
    return true;
}

static mc_err
sq_exec_script(struct db_conn *c, const char *sql)
{
    return simple(c, sql);
}

const struct store_ops store_sqlite_ops = {
    .version = 1,
    .name = "sqlite",
    .dialect = DB_SQLITE,
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .exec = sq_exec,
    .query = sq_query,
    .next = sq_next,
    .col_text = sq_col_text,
    .col_int = sq_col_int,
    .col_bool = sq_col_bool,
    .col_time = sq_col_int,
    .res_free = sq_res_free,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .reset = sq_reset,
    .exec_script = sq_exec_script,
};
