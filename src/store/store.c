/*
 * store.c - the store frontend: backend choice, the connection pool,
 * migrations, settings and the helpers every store_<entity>.c uses.
 *
 * DESIGN
 * Connections are opened lazily up to pool_size and kept.  A thread borrows
 * one for the duration of one store call (db_get/db_put), so a store call is
 * also the unit of a transaction: nothing holds a connection between calls.
 * Migrations run in one transaction; on PostgreSQL an advisory lock inside
 * it serialises processes that start at the same time, on SQLite BEGIN
 * IMMEDIATE does.
 *
 * A database that cannot be reached is an outage, not a stream of errors:
 * the first failed connect logs db_unreachable with its reason, and further
 * connects wait a capped exponential backoff with jitter (250 ms doubling
 * to 30 s, each wait drawn from its upper half); a store call in between
 * fails at once with MC_ERR_DB without touching the network or the log.
 * The first connect that works logs db_reachable with the outage's length
 * and how many failures were not logged.  Callers ask store_reachable()
 * before logging a failure of their own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "migrations.h"
#include "store_int.h"

struct store {
    const struct store_ops *ops;
    char *url; /* owned */
    struct store_params params;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_conn **idle; /* owned, params.pool_size slots */
    int nidle;
    int nopen;
    /* Outage state, under mu. */
    int64_t down_since; /* monotonic us of the first failed connect; 0: reachable */
    int64_t next_try;   /* monotonic us: no connect before */
    int64_t delay;      /* the current backoff, us */
    int not_logged;     /* failures since the outage was logged */
};

#define DB_BACKOFF_MIN_US 250000LL
#define DB_BACKOFF_MAX_US (30 * 1000000LL)

_Thread_local char db_connect_error[300];

/* A connect failed (under st->mu): log the outage once, back off with jitter. */
static void
outage_failed(struct store *st)
{
    int64_t now = time_mono_us();
    unsigned char r[2];

    if (st->down_since == 0) {
        st->down_since = now;
        st->not_logged = 0;
        st->delay = 0;
        log_error("event=db_unreachable backend=%s reason=\"%s\"", st->ops->name,
                  db_connect_error[0] ? db_connect_error : "cannot connect");
    } else
        st->not_logged++;
    st->delay = st->delay ? st->delay * 2 : DB_BACKOFF_MIN_US;
    if (st->delay > DB_BACKOFF_MAX_US)
        st->delay = DB_BACKOFF_MAX_US;
    crypto_random(r, sizeof(r));
    /* Full wait in [delay/2, delay): processes that lost the database together spread out. */
    st->next_try = now + st->delay / 2 + (st->delay / 2) * (((int64_t)r[0] << 8) | r[1]) / 65536;
}

/* A connect worked (under st->mu): end the outage, saying how long it was. */
static void
outage_over(struct store *st)
{
    if (st->down_since == 0)
        return;
    log_info("event=db_reachable backend=%s after_s=%lld failures_not_logged=%d", st->ops->name,
             (long long)((time_mono_us() - st->down_since) / 1000000), st->not_logged);
    st->down_since = 0;
    st->delay = 0;
    st->not_logged = 0;
}

bool
store_reachable(struct store *st)
{
    bool up;

    pthread_mutex_lock(&st->mu);
    up = st->down_since == 0;
    pthread_mutex_unlock(&st->mu);
    return up;
}

mc_err
store_open(const char *url, const struct store_params *params, struct store **out)
{
    const struct store_ops *ops;
    struct store *st;
    struct db d;
    mc_err err;

    if (str_prefix(url, "sqlite:"))
        ops = &store_sqlite_ops;
    else if (str_prefix(url, "postgres://") || str_prefix(url, "postgresql://"))
        ops = &store_pg_ops;
    else
        return MC_ERR_CONFIG;
    st = xcalloc(1, sizeof(*st));
    st->ops = ops;
    st->url = xstrdup(url);
    st->params = *params;
    if (st->params.pool_size < 1)
        st->params.pool_size = 1;
    st->idle = xcalloc((size_t)st->params.pool_size, sizeof(*st->idle));
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    /* Open one connection now so a bad URL fails at start, not at first use. */
    err = db_get(st, &d);
    if (err != MC_ERR_OK) {
        store_close(st);
        return err;
    }
    db_put(&d);
    *out = st;
    return MC_ERR_OK;
}

void
store_close(struct store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < st->nidle; i++)
        st->ops->disconnect(st->idle[i]);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st->idle);
    free(st->url);
    free(st);
}

const char *
store_backend(const struct store *st)
{
    return st->ops->name;
}

mc_err
db_get(struct store *st, struct db *out)
{
    struct db_conn *c = NULL;
    mc_err err;

    pthread_mutex_lock(&st->mu);
    while (st->nidle == 0 && st->nopen >= st->params.pool_size)
        pthread_cond_wait(&st->cv, &st->mu);
    if (st->nidle > 0) {
        c = st->idle[--st->nidle];
        pthread_mutex_unlock(&st->mu);
    } else if (st->down_since && time_mono_us() < st->next_try) {
        st->not_logged++; /* backing off: fail without trying */
        pthread_mutex_unlock(&st->mu);
        return MC_ERR_DB;
    } else {
        st->nopen++;
        pthread_mutex_unlock(&st->mu);
        db_connect_error[0] = '\0';
        err = st->ops->connect(st->url, &st->params, &c);
        pthread_mutex_lock(&st->mu);
        if (err != MC_ERR_OK) {
            st->nopen--;
            if (err == MC_ERR_DB)
                outage_failed(st);
            pthread_cond_signal(&st->cv);
            pthread_mutex_unlock(&st->mu);
            return err;
        }
        outage_over(st);
        pthread_mutex_unlock(&st->mu);
    }
    out->ops = st->ops;
    out->conn = c;
    out->st = st;
    return MC_ERR_OK;
}

void
db_put(struct db *d)
{
    struct store *st = d->st;

    if (d->conn == NULL)
        return;
    /* A connection left in a transaction is rolled back; a broken one is dropped. */
    if (!d->ops->reset(d->conn)) {
        d->ops->disconnect(d->conn);
        pthread_mutex_lock(&st->mu);
        st->nopen--;
        goto out;
    }
    pthread_mutex_lock(&st->mu);
    st->idle[st->nidle++] = d->conn;
out:
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    d->conn = NULL;
}

mc_err
db_exec(struct db *d, const char *sql, const struct db_param *p, int np, int64_t *changes)
{
    return d->ops->exec(d->conn, sql, p, np, changes);
}

mc_err
db_query(struct db *d, const char *sql, const struct db_param *p, int np, struct db_res **out)
{
    return d->ops->query(d->conn, sql, p, np, out);
}

mc_err
db_begin(struct db *d, bool immediate)
{
    return d->ops->begin(d->conn, immediate);
}

mc_err
db_plans_generic(struct db *d)
{
    if (d->ops->dialect != DB_PG)
        return MC_ERR_OK;
    return db_exec(d,
                   "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), "
                   "set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)",
                   NULL, 0, NULL);
}

mc_err
db_commit(struct db *d)
{
    return d->ops->commit(d->conn);
}

void
db_rollback(struct db *d)
{
    d->ops->rollback(d->conn);
}

static mc_err
one_row(struct db *d, const char *sql, const struct db_param *p, int np, struct db_res **out)
{
    struct db_res *r = NULL;
    bool row = false;
    mc_err err;

    err = db_query(d, sql, p, np, &r);
    if (err != MC_ERR_OK)
        return err;
    err = d->ops->next(r, &row);
    if (err == MC_ERR_OK && !row)
        err = MC_ERR_NOT_FOUND;
    if (err != MC_ERR_OK) {
        d->ops->res_free(r);
        return err;
    }
    *out = r;
    return MC_ERR_OK;
}

mc_err
db_one_text(struct db *d, const char *sql, const struct db_param *p, int np, char **out)
{
    struct db_res *r;
    mc_err err = one_row(d, sql, p, np, &r);

    if (err != MC_ERR_OK)
        return err;
    *out = xstrdup(d->ops->col_text(r, 0));
    d->ops->res_free(r);
    return MC_ERR_OK;
}

mc_err
db_one_int(struct db *d, const char *sql, const struct db_param *p, int np, int64_t *out)
{
    struct db_res *r;
    mc_err err = one_row(d, sql, p, np, &r);

    if (err != MC_ERR_OK)
        return err;
    *out = d->ops->col_int(r, 0);
    d->ops->res_free(r);
    return MC_ERR_OK;
}

mc_err
db_fetch_one(struct db *d, const char *sql, const struct db_param *p, int np, db_row_fn fn,
             void *out)
{
    struct db_res *r;
    mc_err err = one_row(d, sql, p, np, &r);

    if (err != MC_ERR_OK)
        return err;
    fn(d, r, out);
    d->ops->res_free(r);
    return MC_ERR_OK;
}

mc_err
db_fetch_all(struct db *d, const char *sql, const struct db_param *p, int np, db_row_fn fn,
             size_t elem, void **items, int *n)
{
    struct db_res *r = NULL;
    bool row = false;
    int cap = *n;
    mc_err err;

    err = db_query(d, sql, p, np, &r);
    if (err != MC_ERR_OK)
        return err;
    while ((err = d->ops->next(r, &row)) == MC_ERR_OK && row) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *items = xrealloc(*items, (size_t)cap * elem);
        }
        char *slot = (char *)*items + (size_t)*n * elem;
        memset(slot, 0, elem);
        fn(d, r, slot);
        (*n)++;
    }
    d->ops->res_free(r);
    return err;
}

char *
db_like_contains(const char *q, bool lower)
{
    struct buf b;

    buf_init(&b, 0);
    buf_putc(&b, '%');
    for (; *q; q++) {
        if (*q == '%' || *q == '_' || *q == '\\')
            buf_putc(&b, '\\');
        buf_putc(&b, (char)(lower && *q >= 'A' && *q <= 'Z' ? *q - 'A' + 'a' : *q));
    }
    buf_putc(&b, '%');
    return buf_steal(&b);
}

mc_err
store_page(struct store *st, const char *count_sql, const char *page_sql,
           const struct db_param *p, int np_count, int np, db_row_fn fn, size_t elem,
           void **items, int *n, int64_t *total)
{
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_one_int(&d, count_sql, p, np_count, total);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d, page_sql, p, np, fn, elem, items, n);
    db_put(&d);
    return err;
}

char *
db_col_dup(struct db *d, struct db_res *r, int col)
{
    return xstrdup(d->ops->col_text(r, col));
}

void
db_col_uuid(struct db *d, struct db_res *r, int col, char out[MC_UUID_LEN + 1])
{
    const char *s = d->ops->col_text(r, col);

    out[0] = '\0';
    if (s != NULL && strlen(s) == MC_UUID_LEN)
        memcpy(out, s, MC_UUID_LEN + 1);
}

mc_err
db_lock_tenant(struct db *d, const char *tenant_id)
{
    struct db_param p[] = {P_TEXT(tenant_id)};
    int64_t one = 0;
    mc_err err;

    if (d->ops->dialect != DB_PG)
        return MC_ERR_OK;
    /* NO KEY UPDATE: it excludes other lockers but not the KEY SHARE locks that
     * foreign-key checks take on the tenant, which would deadlock with it. */
    err = db_one_int(d, "SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", p, NPARAMS(p),
                     &one);
    return err == MC_ERR_NOT_FOUND ? MC_ERR_OK : err;
}

/*
 * The moves a caller may count itself (enum count_move), each with its
 * statement: string constants, since SQLite's statement cache is keyed by
 * the text's address.
 */
static const char *const count_move_sql[] = {
    [COUNT_PENDING_TO_SENDING] = "UPDATE campaigns SET pending_count = pending_count - $2, "
                                 "sending_count = sending_count + $2 WHERE id = $1",
    [COUNT_SENDING_TO_SENT] = "UPDATE campaigns SET sending_count = sending_count - $2, "
                              "sent_count = sent_count + $2 WHERE id = $1",
};

mc_err
db_count_trigger_pause(struct db *d)
{
    if (d->ops->dialect == DB_PG)
        return MC_ERR_OK;
    return db_exec(d, "INSERT INTO counts_by_caller (flag) VALUES (1)", NULL, 0, NULL);
}

mc_err
db_count_trigger_resume(struct db *d)
{
    if (d->ops->dialect == DB_PG)
        return MC_ERR_OK;
    return db_exec(d, "DELETE FROM counts_by_caller", NULL, 0, NULL);
}

mc_err
db_counts_move(struct db *d, const char *campaign_id, enum count_move m, int64_t n)
{
    struct db_param p[] = {P_TEXT(campaign_id), P_INT(n)};

    if (d->ops->dialect == DB_PG || n == 0)
        return MC_ERR_OK;
    return db_exec(d, count_move_sql[m], p, NPARAMS(p), NULL);
}

bool
store_id_ok(const char *id)
{
    return id != NULL && crypto_uuid_valid(id);
}

/* ---- migrations ---- */

static void
migration_set(const struct store *st, const struct migration **m, int *n)
{
    if (st->ops->dialect == DB_PG) {
        *m = mc_migrations_pg;
        *n = mc_migrations_pg_n;
    } else {
        *m = mc_migrations_sqlite;
        *n = mc_migrations_sqlite_n;
    }
}

static const char create_versions[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

mc_err
store_migrate(struct store *st, int *applied_out)
{
    const struct migration *m;
    int n, applied = 0;
    int64_t cur = 0;
    struct db_param pl[] = {P_INT(PG_LOCK_MIGRATE)};
    struct db d;
    mc_err err;

    migration_set(st, &m, &n);
    err = db_get(st, &d);
    if (err != MC_ERR_OK)
        return err;
    err = db_begin(&d, true);
    if (err != MC_ERR_OK)
        goto out;
    if (st->ops->dialect == DB_PG &&
        (err = db_exec(&d, "SELECT pg_advisory_xact_lock($1)", pl, 1, NULL)) != MC_ERR_OK)
        goto rollback;
    if ((err = db_exec(&d, create_versions, NULL, 0, NULL)) != MC_ERR_OK)
        goto rollback;
    err = db_one_int(&d, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0,
                     &cur);
    if (err != MC_ERR_OK)
        goto rollback;
    if (cur > m[n - 1].version) {
        log_error("event=migrate error=schema_newer db_version=%lld binary_version=%d",
                  (long long)cur, m[n - 1].version);
        err = MC_ERR_SCHEMA_NEWER;
        goto rollback;
    }
    for (int i = 0; i < n; i++) {
        /* Applied already?  Versions are reserved per branch, so one below
         * the newest may land later (see scripts/embed_sql.sh). */
        int64_t have = 0;
        struct db_param pv[] = {P_INT(m[i].version)};
        if (m[i].version <= cur &&
            (err = db_one_int(&d, "SELECT COUNT(*) FROM schema_migrations WHERE version = $1",
                              pv, NPARAMS(pv), &have)) != MC_ERR_OK)
            goto rollback;
        if (m[i].version <= cur && have > 0)
            continue;
        err = st->ops->exec_script(d.conn, m[i].sql);
        if (err != MC_ERR_OK) {
            log_error("event=migrate error=failed version=%d name=%s", m[i].version,
                      m[i].name);
            goto rollback;
        }
        struct db_param p[] = {P_INT(m[i].version), P_TEXT(m[i].name),
                               P_INT(time_now_us())};
        err = db_exec(&d,
                      "INSERT INTO schema_migrations (version, name, applied_at) "
                      "VALUES ($1, $2, $3)",
                      p, NPARAMS(p), NULL);
        if (err != MC_ERR_OK)
            goto rollback;
        log_info("event=migrate version=%d name=%s", m[i].version, m[i].name);
        applied++;
    }
    err = db_commit(&d);
    if (err == MC_ERR_OK && applied_out)
        *applied_out = applied;
    goto out;
rollback:
    db_rollback(&d);
out:
    db_put(&d);
    return err;
}

mc_err
store_schema_version(struct store *st, int *db_version, int *binary_version)
{
    const struct migration *m;
    int n;
    int64_t v = 0;
    struct db d;
    mc_err err;

    migration_set(st, &m, &n);
    err = db_get(st, &d);
    if (err != MC_ERR_OK)
        return err;
    err = db_exec(&d, create_versions, NULL, 0, NULL);
    if (err == MC_ERR_OK)
        err = db_one_int(&d, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL,
                         0, &v);
    db_put(&d);
    if (err != MC_ERR_OK)
        return err;
    *db_version = (int)v;
    *binary_version = m[n - 1].version;
    return MC_ERR_OK;
}

mc_err
store_ping(struct store *st)
{
    struct db d;
    int64_t one = 0;
    mc_err err = db_get(st, &d);

    if (err != MC_ERR_OK)
        return err;
    err = db_one_int(&d, "SELECT 1", NULL, 0, &one);
    db_put(&d);
    return err;
}

/* Free bytes on the file system holding the SQLite file of url; -1 when unknown. */
static int64_t
sqlite_free_bytes(const char *url)
{
    char *dir = xstrdup(url + strlen("sqlite:")), *slash = strrchr(dir, '/');
    struct statvfs sv;
    int64_t n = -1;

    if (slash == NULL)
        snprintf(dir, 2, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    if (statvfs(dir, &sv) == 0)
        n = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
    free(dir);
    return n;
}

mc_err
store_write_check(struct store *st)
{
    unsigned char rnd[8192];
    char *hex = xmalloc(2 * sizeof(rnd) + 1);
    struct db_param p[] = {P_TEXT(hex), P_TIME(time_now_us())};
    struct db d;
    mc_err err;

    if (str_prefix(st->url, "sqlite:")) {
        int64_t free_bytes = sqlite_free_bytes(st->url);
        if (free_bytes >= 0 && free_bytes < STORE_MIN_FREE) {
            free(hex);
            return MC_ERR_STORAGE_FULL;
        }
    }
    crypto_random(rnd, sizeof(rnd)); /* random: no compression makes it smaller */
    crypto_hex(rnd, sizeof(rnd), hex);
    if ((err = db_get(st, &d)) != MC_ERR_OK) {
        free(hex);
        return err;
    }
    if ((err = db_begin(&d, true)) == MC_ERR_OK) {
        err = db_exec(&d,
                      "INSERT INTO server_settings (name, value, updated_at) "
                      "VALUES ('write_probe', $1, $2) ON CONFLICT (name) DO UPDATE SET "
                      "value = excluded.value, updated_at = excluded.updated_at",
                      p, NPARAMS(p), NULL);
        if (err == MC_ERR_OK)
            err = db_exec(&d, "DELETE FROM server_settings WHERE name = 'write_probe'", NULL, 0,
                          NULL);
        if (err == MC_ERR_OK)
            err = db_commit(&d);
        else
            db_rollback(&d);
    }
    db_put(&d);
    free(hex);
    return err;
}

/* ---- settings ---- */

mc_err
store_setting_get(struct store *st, const char *name, char **out)
{
    struct db_param p[] = {P_TEXT(name)};
    struct db d;
    mc_err err = db_get(st, &d);

    if (err != MC_ERR_OK)
        return err;
    err = db_one_text(&d, "SELECT value FROM server_settings WHERE name = $1", p, NPARAMS(p),
                      out);
    db_put(&d);
    return err;
}

mc_err
store_setting_init(struct store *st, const char *name, const char *value)
{
    struct db_param p[] = {P_TEXT(name), P_TEXT(value), P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err = db_get(st, &d);

    if (err != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "INSERT INTO server_settings (name, value, updated_at) VALUES ($1, $2, $3) "
                  "ON CONFLICT (name) DO NOTHING",
                  p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_CONFLICT;
    return err;
}

mc_err
store_setting_rotate(struct store *st, const char *current, const char *previous,
                     const char *value)
{
    struct db_param p[] = {P_TEXT(current), P_TEXT(previous), P_TEXT(value),
                           P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_exec(&d,
                  "INSERT INTO server_settings (name, value, updated_at) SELECT $2, value, $4 "
                  "FROM server_settings WHERE name = $1 ON CONFLICT (name) DO UPDATE SET "
                  "value = excluded.value, updated_at = excluded.updated_at",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK) {
        struct db_param pu[] = {P_TEXT(current), P_TEXT(value), P_TIME(time_now_us())};
        err = db_exec(&d, "UPDATE server_settings SET value = $2, updated_at = $3 WHERE name = $1",
                      pu, NPARAMS(pu), NULL);
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_put(&d);
    return err;
}
