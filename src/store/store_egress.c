/*
 * store_egress.c - egresses and egress pools (issue 15, item 5): the
 * operator's table of ways out and the weighted pools tenants are given.
 *
 * It does not validate URLs, names or addresses (the HTTP layer does,
 * http/api_egress.c), choose an egress for a message (the claim does,
 * store_claim.c) or talk SMTP (the worker does, worker/delivery_egress.c).
 *
 * DESIGN
 * Creating one counts the rows and inserts under a lock on the 'default'
 * row (which always exists), so two creates cannot both pass the limit;
 * SQLite's BEGIN IMMEDIATE serialises writers anyway.  A pool's members are
 * replaced whole, in the pool's transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

void
egress_cleanup(struct egress *e)
{
    if (e == NULL)
        return;
    free(e->relay);
    free(e->ehlo_name);
    free(e->source_address);
    memset(e, 0, sizeof(*e));
}

void
egress_pool_cleanup(struct egress_pool *p)
{
    if (p == NULL)
        return;
    free(p->members);
    memset(p, 0, sizeof(*p));
}

#define EGRESS_COLS                                                                           \
    "name, relay, ehlo_name, source_address, max_connections, created_at, updated_at"

static void
egress_row(struct db *d, struct db_res *r, void *out)
{
    struct egress *e = out;
    const char *name = d->ops->col_text(r, 0);

    snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
    e->relay = db_col_dup(d, r, 1);
    e->ehlo_name = db_col_dup(d, r, 2);
    e->source_address = db_col_dup(d, r, 3);
    e->max_connections = d->ops->col_int(r, 4);
    e->created_at = d->ops->col_time(r, 5);
    e->updated_at = d->ops->col_time(r, 6);
}

/*
 * Locks the row every create serialises on (PostgreSQL; SQLite's writer
 * lock does it); sql selects it FOR UPDATE.  Statements are literals: the
 * store caches prepared statements by their text's address.
 */
static mc_err
lock_creates(struct db *d, const char *sql)
{
    int64_t one = 0;
    mc_err err;

    if (d->ops->dialect != DB_PG)
        return MC_ERR_OK;
    err = db_one_int(d, sql, NULL, 0, &one);
    return err == MC_ERR_NOT_FOUND ? MC_ERR_OK : err;
}

/*
 * The create's transaction up to its insert: begun, the creates lock taken
 * (lock_sql), the rows counted (count_sql); LIMIT at max.  The caller
 * inserts and then ends it with create_end.
 */
static mc_err
create_begin(struct db *d, const char *lock_sql, const char *count_sql, int max)
{
    int64_t count = 0;
    mc_err err = db_begin(d, true);

    if (err == MC_ERR_OK && (err = lock_creates(d, lock_sql)) == MC_ERR_OK)
        err = db_one_int(d, count_sql, NULL, 0, &count);
    if (err == MC_ERR_OK && count >= max)
        err = MC_ERR_LIMIT;
    return err;
}

/* Ends a write transaction: commits on success, else rolls back; gives the connection back. */
static mc_err
tx_end(struct db *d, mc_err err)
{
    if (err == MC_ERR_OK)
        err = db_commit(d);
    else
        db_rollback(d);
    db_put(d);
    return err;
}

static mc_err
egress_get(struct db *d, const char *name, struct egress *out)
{
    struct db_param p[] = {P_TEXT(name)};

    return db_fetch_one(d, "SELECT " EGRESS_COLS " FROM egresses WHERE name = $1", p, 1,
                        egress_row, out);
}

mc_err
store_egress_create(struct store *st, struct egress *e, int max)
{
    int64_t now = time_now_us();
    struct db_param p[] = {P_TEXT(e->name),           P_TEXT(e->relay),
                           P_TEXT(e->ehlo_name),      P_TEXT(e->source_address),
                           e->max_connections > 0 ? P_INT(e->max_connections) : P_NULL,
                           P_TIME(now)};
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = create_begin(&d, "SELECT 1 FROM egresses WHERE name = 'default' FOR UPDATE",
                       "SELECT COUNT(*) FROM egresses", max);
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                      "INSERT INTO egresses (" EGRESS_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $6)",
                      p, NPARAMS(p), NULL);
    if ((err = tx_end(&d, err)) == MC_ERR_OK)
        e->created_at = e->updated_at = now;
    return err;
}

mc_err
store_egress_get(struct store *st, const char *name, struct egress *out)
{
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = egress_get(&d, name, out);
    db_put(&d);
    return err;
}

mc_err
store_tenant_egress(struct store *st, const char *tenant_id, struct egress *out)
{
    struct db_param p[] = {P_TEXT(tenant_id)};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_one(&d,
                       "SELECT e.name, e.relay, e.ehlo_name, e.source_address, "
                       "e.max_connections, e.created_at, e.updated_at FROM tenants t "
                       "JOIN egress_pool_members m ON m.pool = t.egress_pool "
                       "JOIN egresses e ON e.name = m.egress WHERE t.id = $1 "
                       "ORDER BY m.weight DESC, e.name LIMIT 1",
                       p, 1, egress_row, out);
    db_put(&d);
    return err;
}

mc_err
store_egress_list(struct store *st, struct egress **out, int *n)
{
    struct db d;
    mc_err err;

    *out = NULL;
    *n = 0;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_all(&d, "SELECT " EGRESS_COLS " FROM egresses ORDER BY name", NULL, 0,
                       egress_row, sizeof(**out), (void **)out, n);
    db_put(&d);
    return err;
}

mc_err
store_egress_update(struct store *st, const char *name, const struct egress *e,
                    struct egress *out)
{
    int64_t changes = 0;
    struct db_param p[] = {P_TEXT(name),           P_TEXT(e->relay),
                           P_TEXT(e->ehlo_name),   P_TEXT(e->source_address),
                           e->max_connections > 0 ? P_INT(e->max_connections) : P_NULL,
                           P_TIME(time_now_us())};
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "UPDATE egresses SET relay = $2, ehlo_name = $3, source_address = $4, "
                  "max_connections = $5, updated_at = $6 WHERE name = $1",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = egress_get(&d, name, out);
    db_put(&d);
    return err;
}

/*
 * Deletes a row with sql ($1: name) unless in_use_sql counts a user; first
 * runs before_sql (NULL: nothing), for what hangs on the row.  All three
 * are literals (see lock_creates).
 */
static mc_err
delete_unused(struct store *st, const char *sql, const char *name, const char *in_use_sql,
              const char *before_sql)
{
    struct db_param p[] = {P_TEXT(name)};
    int64_t used = 0, changes = 0;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_one_int(&d, in_use_sql, p, 1, &used);
    if (err == MC_ERR_OK && used > 0)
        err = MC_ERR_CONFLICT;
    if (err == MC_ERR_OK && before_sql)
        err = db_exec(&d, before_sql, p, 1, NULL);
    if (err == MC_ERR_OK)
        err = db_exec(&d, sql, p, 1, &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    return tx_end(&d, err);
out:
    db_put(&d);
    return err;
}

mc_err
store_egress_delete(struct store *st, const char *name)
{
    return delete_unused(st, "DELETE FROM egresses WHERE name = $1", name,
                         "SELECT COUNT(*) FROM egress_pool_members WHERE egress = $1", NULL);
}

/* ---- pools ---- */

struct pool_row {
    char name[SHAPING_NAME_MAX + 1];
    int64_t created_at, updated_at;
};

static void
pool_row(struct db *d, struct db_res *r, void *out)
{
    struct pool_row *x = out;
    const char *name = d->ops->col_text(r, 0);

    snprintf(x->name, sizeof(x->name), "%s", name ? name : "");
    x->created_at = d->ops->col_time(r, 1);
    x->updated_at = d->ops->col_time(r, 2);
}

struct member_row {
    char pool[SHAPING_NAME_MAX + 1];
    struct egress_member m;
};

static void
member_row(struct db *d, struct db_res *r, void *out)
{
    struct member_row *x = out;
    const char *pool = d->ops->col_text(r, 0), *eg = d->ops->col_text(r, 1);

    snprintf(x->pool, sizeof(x->pool), "%s", pool ? pool : "");
    snprintf(x->m.egress, sizeof(x->m.egress), "%s", eg ? eg : "");
    x->m.weight = d->ops->col_int(r, 2);
}

/* The pools named name (NULL: all), each with its members, by name. */
static mc_err
pools_read(struct db *d, const char *name, struct egress_pool **out, int *n)
{
    struct db_param p[] = {P_TEXT(name)};
    struct pool_row *pr = NULL;
    struct member_row *mr = NULL;
    struct egress_pool *pools = NULL;
    int npr = 0, nmr = 0;
    mc_err err;

    err = db_fetch_all(d,
                       "SELECT name, created_at, updated_at FROM egress_pools WHERE "
                       "(CAST($1 AS TEXT) IS NULL OR name = $1) ORDER BY name",
                       p, 1, pool_row, sizeof(*pr), (void **)&pr, &npr);
    if (err == MC_ERR_OK)
        err = db_fetch_all(d,
                           "SELECT pool, egress, weight FROM egress_pool_members WHERE "
                           "(CAST($1 AS TEXT) IS NULL OR pool = $1) ORDER BY pool, egress",
                           p, 1, member_row, sizeof(*mr), (void **)&mr, &nmr);
    if (err == MC_ERR_OK) {
        pools = xcalloc((size_t)npr + 1, sizeof(*pools));
        for (int i = 0; i < npr; i++) {
            struct egress_pool *x = &pools[i];
            memcpy(x->name, pr[i].name, sizeof(x->name));
            x->created_at = pr[i].created_at;
            x->updated_at = pr[i].updated_at;
            x->members = xcalloc((size_t)nmr + 1, sizeof(*x->members));
            for (int k = 0; k < nmr; k++)
                if (strcmp(mr[k].pool, x->name) == 0)
                    x->members[x->nmembers++] = mr[k].m;
        }
        *out = pools;
        *n = npr;
    }
    free(pr);
    free(mr);
    return err;
}

/* Replaces pool p's members; INVALID when one is no egress. */
static mc_err
members_put(struct db *d, const char *pool, const struct egress_pool *p)
{
    struct db_param dp[] = {P_TEXT(pool)};
    mc_err err = db_exec(d, "DELETE FROM egress_pool_members WHERE pool = $1", dp, 1, NULL);

    for (int i = 0; i < p->nmembers && err == MC_ERR_OK; i++) {
        struct db_param mp[] = {P_TEXT(pool), P_TEXT(p->members[i].egress),
                                P_INT(p->members[i].weight)};
        int64_t changes = 0;
        err = db_exec(d,
                      "INSERT INTO egress_pool_members (pool, egress, weight) SELECT $1, name, "
                      "$3 FROM egresses WHERE name = $2",
                      mp, NPARAMS(mp), &changes);
        if (err == MC_ERR_OK && changes == 0)
            err = MC_ERR_INVALID;
    }
    return err;
}

/* Reads pool name into out (one pool), NOT_FOUND without it. */
static mc_err
pool_get(struct db *d, const char *name, struct egress_pool *out)
{
    struct egress_pool *pools = NULL;
    int n = 0;
    mc_err err = pools_read(d, name, &pools, &n);

    if (err == MC_ERR_OK && n == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK) {
        *out = pools[0];
        pools[0].members = NULL;
    }
    for (int i = 0; i < n; i++)
        egress_pool_cleanup(&pools[i]);
    free(pools);
    return err;
}

mc_err
store_egress_pool_create(struct store *st, struct egress_pool *p, int max)
{
    int64_t now = time_now_us();
    struct db_param ip[] = {P_TEXT(p->name), P_TIME(now)};
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = create_begin(&d, "SELECT 1 FROM egress_pools WHERE name = 'default' FOR UPDATE",
                       "SELECT COUNT(*) FROM egress_pools", max);
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                      "INSERT INTO egress_pools (name, created_at, updated_at) VALUES ($1, $2, $2)",
                      ip, NPARAMS(ip), NULL);
    if (err == MC_ERR_OK)
        err = members_put(&d, p->name, p);
    if ((err = tx_end(&d, err)) == MC_ERR_OK)
        p->created_at = p->updated_at = now;
    return err;
}

mc_err
store_egress_pool_get(struct store *st, const char *name, struct egress_pool *out)
{
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = pool_get(&d, name, out);
    db_put(&d);
    return err;
}

mc_err
store_egress_pool_list(struct store *st, struct egress_pool **out, int *n)
{
    struct db d;
    mc_err err;

    *out = NULL;
    *n = 0;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = pools_read(&d, NULL, out, n);
    db_put(&d);
    return err;
}

mc_err
store_egress_pool_update(struct store *st, const char *name, const struct egress_pool *p,
                         struct egress_pool *out)
{
    struct db_param up[] = {P_TEXT(name), P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_exec(&d, "UPDATE egress_pools SET updated_at = $2 WHERE name = $1", up,
                  NPARAMS(up), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = members_put(&d, name, p);
    if (err == MC_ERR_OK)
        err = pool_get(&d, name, out);
    return tx_end(&d, err);
out:
    db_put(&d);
    return err;
}

mc_err
store_egress_pool_delete(struct store *st, const char *name)
{
    return delete_unused(st, "DELETE FROM egress_pools WHERE name = $1", name,
                         "SELECT COUNT(*) FROM tenants WHERE egress_pool = $1 AND "
                         "status <> 'deleted'",
                         "DELETE FROM egress_pool_members WHERE pool = $1");
}
