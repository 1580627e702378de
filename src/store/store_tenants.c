/*
 * store_tenants.c - tenants and their rate limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

static const char *const tenant_status_names[] = {"active", "suspended", "deleted"};

const char *
tenant_status_str(enum tenant_status s)
{
    return tenant_status_names[s];
}

int
tenant_status_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, tenant_status_names[i]) == 0)
            return i;
    return -1;
}

void
tenant_cleanup(struct tenant *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t->slug);
    free(t->plan);
    free(t->settings);
    memset(t, 0, sizeof(*t));
}

void
tenant_list_cleanup(struct tenant_list *l)
{
    for (int i = 0; i < l->n; i++)
        tenant_cleanup(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

#define TENANT_COLS "id, name, slug, status, plan, settings, created_at, updated_at, egress_pool"

static void
tenant_row(struct db *d, struct db_res *r, void *out)
{
    struct tenant *t = out;
    int s;

    memset(t, 0, sizeof(*t));
    db_col_uuid(d, r, 0, t->id);
    t->name = db_col_dup(d, r, 1);
    t->slug = db_col_dup(d, r, 2);
    s = tenant_status_parse(d->ops->col_text(r, 3));
    t->status = s < 0 ? TENANT_SUSPENDED : (enum tenant_status)s;
    t->plan = db_col_dup(d, r, 4);
    t->settings = db_col_dup(d, r, 5);
    t->created_at = d->ops->col_time(r, 6);
    t->updated_at = d->ops->col_time(r, 7);
    snprintf(t->egress_pool, sizeof(t->egress_pool), "%s",
             d->ops->col_text(r, 8) ? d->ops->col_text(r, 8) : "default");
}

mc_err
store_tenant_create(struct store *st, struct tenant *t)
{
    struct db d;
    mc_err err;
    int64_t now = time_now_us();

    crypto_uuid(t->id);
    t->created_at = t->updated_at = now;
    struct db_param p[] = {P_TEXT(t->id),
                           P_TEXT(t->name),
                           P_TEXT(t->slug),
                           P_TEXT(tenant_status_str(t->status)),
                           P_TEXT(t->plan ? t->plan : "free"),
                           P_TEXT(t->settings ? t->settings : "{}"),
                           P_TIME(now),
                           P_TEXT(t->egress_pool[0] ? t->egress_pool : "default")};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "INSERT INTO tenants (" TENANT_COLS ") "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
                  p, NPARAMS(p), NULL);
    db_put(&d);
    if (err == MC_ERR_OK) {
        if (t->egress_pool[0] == '\0')
            snprintf(t->egress_pool, sizeof(t->egress_pool), "default");
        if (t->plan == NULL)
            t->plan = xstrdup("free");
        if (t->settings == NULL)
            t->settings = xstrdup("{}");
    }
    return err;
}

static mc_err
tenant_get(struct db *d, const char *id, struct tenant *out)
{
    struct db_param p[] = {P_TEXT(id)};
    struct db_res *r = NULL;
    bool row = false;
    mc_err err;

    err = db_query(d, "SELECT " TENANT_COLS " FROM tenants WHERE id = $1 AND status <> 'deleted'",
                   p, NPARAMS(p), &r);
    if (err == MC_ERR_OK)
        err = d->ops->next(r, &row);
    if (err == MC_ERR_OK && !row)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        tenant_row(d, r, out);
    if (r)
        d->ops->res_free(r);
    return err;
}

mc_err
store_tenant_get(struct store *st, const char *id, struct tenant *out)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = tenant_get(&d, id, out);
    db_put(&d);
    return err;
}

mc_err
store_tenant_list(struct store *st, int status, const struct page *pg, struct tenant_list *out)
{
    const char *sfilter = status >= 0 ? tenant_status_str(status) : NULL;
    struct db_param p[] = {P_TEXT(sfilter), P_INT(pg->limit), P_INT(pg->offset)};
    struct tenant_list l = {0};
    mc_err err;

    /* CAST: PostgreSQL cannot infer the type of a parameter that is only tested for NULL. */
    err = store_page(st,
                     "SELECT COUNT(*) FROM tenants WHERE status <> 'deleted' AND "
                     "(CAST($1 AS TEXT) IS NULL OR status = $1)",
                     "SELECT " TENANT_COLS " FROM tenants WHERE status <> 'deleted' AND "
                     "(CAST($1 AS TEXT) IS NULL OR status = $1) "
                     "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                     p, 1, NPARAMS(p), tenant_row, sizeof(*l.items), (void **)&l.items, &l.n,
                     &l.total);
    if (err == MC_ERR_OK)
        *out = l;
    else
        tenant_list_cleanup(&l);
    return err;
}

mc_err
store_tenant_update(struct store *st, const char *id, const struct tenant_patch *tp,
                    struct tenant *out)
{
    const char *status = tp->has_status ? tenant_status_str(tp->status) : NULL;
    struct db_param p[] = {P_TEXT(id),     P_TEXT(tp->name),     P_TEXT(tp->plan),
                           P_TEXT(status), P_TEXT(tp->settings), P_TIME(time_now_us()),
                           P_TEXT(tp->egress_pool)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "UPDATE tenants SET name = COALESCE($2, name), plan = COALESCE($3, plan), "
                  "status = COALESCE($4, status), settings = COALESCE($5, settings), "
                  "egress_pool = COALESCE($7, egress_pool), updated_at = $6 "
                  "WHERE id = $1 AND status <> 'deleted'",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = tenant_get(&d, id, out);
    db_put(&d);
    return err;
}

mc_err
store_tenant_delete(struct store *st, const char *id)
{
    struct db_param p[] = {P_TEXT(id), P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "UPDATE tenants SET status = 'deleted', updated_at = $2 "
                  "WHERE id = $1 AND status <> 'deleted'",
                  p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    return err;
}

/* ---- rate limits ---- */

mc_err
store_rate_limits_get(struct store *st, const char *tenant_id, struct rate_limits *out)
{
    struct db_param p[] = {P_TEXT(tenant_id)};
    struct db_res *r = NULL;
    bool row = false;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_query(&d,
                   "SELECT per_minute, per_hour, per_day, enabled, updated_at, per_second "
                   "FROM tenant_rate_limits WHERE tenant_id = $1",
                   p, NPARAMS(p), &r);
    if (err == MC_ERR_OK)
        err = d.ops->next(r, &row);
    if (err == MC_ERR_OK) {
        if (row) {
            out->per_minute = d.ops->col_int(r, 0);
            out->per_hour = d.ops->col_int(r, 1);
            out->per_day = d.ops->col_int(r, 2);
            out->enabled = d.ops->col_bool(r, 3);
            out->updated_at = d.ops->col_time(r, 4);
            out->per_second = d.ops->col_int(r, 5);
        } else {
            out->per_second = 0;
            out->per_minute = RATE_DEFAULT_MINUTE;
            out->per_hour = RATE_DEFAULT_HOUR;
            out->per_day = RATE_DEFAULT_DAY;
            out->enabled = true;
            out->updated_at = 0;
        }
    }
    if (r)
        d.ops->res_free(r);
    db_put(&d);
    return err;
}

mc_err
store_rate_limits_put(struct store *st, const char *tenant_id, const struct rate_limits *rl)
{
    char id[MC_UUID_LEN + 1];
    int64_t now = time_now_us();
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    crypto_uuid(id);
    struct db_param p[] = {P_TEXT(id),          P_TEXT(tenant_id), P_INT(rl->per_minute),
                           P_INT(rl->per_hour), P_INT(rl->per_day), P_BOOL(rl->enabled),
                           P_TIME(now), rl->per_second ? P_INT(rl->per_second) : P_NULL};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "INSERT INTO tenant_rate_limits (id, tenant_id, per_minute, per_hour, "
                  "per_day, enabled, created_at, updated_at, per_second) "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) "
                  "ON CONFLICT (tenant_id) DO UPDATE SET per_minute = excluded.per_minute, "
                  "per_hour = excluded.per_hour, per_day = excluded.per_day, "
                  "enabled = excluded.enabled, updated_at = excluded.updated_at, "
                  "per_second = excluded.per_second",
                  p, NPARAMS(p), NULL);
    db_put(&d);
    if (err == MC_ERR_INVALID) /* the foreign key: no such tenant */
        err = MC_ERR_NOT_FOUND;
    return err;
}
