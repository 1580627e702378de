/*
 * store_keys.c - tenant API keys.  Only a key's hash and visible prefix are
 * stored; the secret is shown once, by the caller, at creation.
 */
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

#define KEY_TOUCH_INTERVAL_US (60 * 1000000LL)

void
api_key_cleanup(struct api_key *k)
{
    if (k == NULL)
        return;
    free(k->name);
    free(k->key_prefix);
    free(k->key_hash);
    memset(k, 0, sizeof(*k));
}

void
api_key_list_cleanup(struct api_key_list *l)
{
    for (int i = 0; i < l->n; i++)
        api_key_cleanup(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static const char *
scopes_json(unsigned scopes)
{
    if (scopes & KEY_SCOPE_WRITE)
        return "[\"read\",\"write\"]";
    return "[\"read\"]";
}

static unsigned
scopes_parse(const char *json)
{
    unsigned s = 0;

    if (json == NULL)
        return 0;
    if (strstr(json, "\"read\""))
        s |= KEY_SCOPE_READ;
    if (strstr(json, "\"write\""))
        s |= KEY_SCOPE_WRITE | KEY_SCOPE_READ;
    return s;
}

#define KEY_COLS                                                                              \
    "k.id, k.tenant_id, k.name, k.key_prefix, k.key_hash, k.scopes, k.expires_at, "          \
    "k.last_used_at, k.revoked_at, k.created_at"

static void
key_row(struct db *d, struct db_res *r, void *out)
{
    struct api_key *k = out;

    memset(k, 0, sizeof(*k));
    db_col_uuid(d, r, 0, k->id);
    db_col_uuid(d, r, 1, k->tenant_id);
    k->name = db_col_dup(d, r, 2);
    k->key_prefix = db_col_dup(d, r, 3);
    k->key_hash = db_col_dup(d, r, 4);
    k->scopes = scopes_parse(d->ops->col_text(r, 5));
    k->expires_at = d->ops->col_time(r, 6);
    k->last_used_at = d->ops->col_time(r, 7);
    k->revoked_at = d->ops->col_time(r, 8);
    k->created_at = d->ops->col_time(r, 9);
}

mc_err
store_key_create(struct store *st, struct api_key *k)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(k->tenant_id))
        return MC_ERR_NOT_FOUND;
    crypto_uuid(k->id);
    k->created_at = time_now_us();
    struct db_param p[] = {P_TEXT(k->id),         P_TEXT(k->tenant_id),
                           P_TEXT(k->name),       P_TEXT(k->key_prefix),
                           P_TEXT(k->key_hash),   P_TEXT(scopes_json(k->scopes)),
                           P_TIME(k->expires_at), P_TIME(k->created_at)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* The tenant must exist and not be deleted: the INSERT ... SELECT adds no row otherwise. */
    int64_t changes = 0;
    err = db_exec(&d,
                  "INSERT INTO api_keys (id, tenant_id, name, key_prefix, key_hash, scopes, "
                  "expires_at, created_at) SELECT $1, id, $3, $4, $5, $6, $7, $8 "
                  "FROM tenants WHERE id = $2 AND status <> 'deleted'",
                  p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    return err;
}

static mc_err
key_query_one(struct store *st, const char *sql, const struct db_param *p, int np,
              struct api_key *out, bool with_tenant_status)
{
    struct db_res *r = NULL;
    bool row = false;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_query(&d, sql, p, np, &r);
    if (err == MC_ERR_OK)
        err = d.ops->next(r, &row);
    if (err == MC_ERR_OK && !row)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK) {
        key_row(&d, r, out);
        if (with_tenant_status) {
            int s = tenant_status_parse(d.ops->col_text(r, 10));
            out->tenant_status = s < 0 ? TENANT_SUSPENDED : (enum tenant_status)s;
        }
    }
    if (r)
        d.ops->res_free(r);
    db_put(&d);
    return err;
}

mc_err
store_key_find(struct store *st, const char *prefix, struct api_key *out)
{
    struct db_param p[] = {P_TEXT(prefix)};

    return key_query_one(st,
                         "SELECT " KEY_COLS ", t.status FROM api_keys k "
                         "JOIN tenants t ON t.id = k.tenant_id "
                         "WHERE k.key_prefix = $1 AND t.status <> 'deleted'",
                         p, NPARAMS(p), out, true);
}

mc_err
store_key_get(struct store *st, const char *tenant_id, const char *key_id, struct api_key *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(key_id)};

    if (!store_id_ok(tenant_id) || !store_id_ok(key_id))
        return MC_ERR_NOT_FOUND;
    return key_query_one(st,
                         "SELECT " KEY_COLS " FROM api_keys k "
                         "WHERE k.tenant_id = $1 AND k.id = $2",
                         p, NPARAMS(p), out, false);
}

mc_err
store_key_list(struct store *st, const char *tenant_id, const struct page *pg,
               struct api_key_list *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_INT(pg->limit), P_INT(pg->offset)};
    struct api_key_list l = {0};
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    err = store_page(st, "SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1",
                     "SELECT " KEY_COLS " FROM api_keys k WHERE k.tenant_id = $1 "
                     "ORDER BY k.created_at DESC, k.id LIMIT $2 OFFSET $3",
                     p, 1, NPARAMS(p), key_row, sizeof(*l.items), (void **)&l.items, &l.n,
                     &l.total);
    if (err == MC_ERR_OK)
        *out = l;
    else
        api_key_list_cleanup(&l);
    return err;
}

mc_err
store_key_revoke(struct store *st, const char *tenant_id, const char *key_id)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(key_id), P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(key_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "UPDATE api_keys SET revoked_at = $3 "
                  "WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
                  p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    return err;
}

mc_err
store_key_touch(struct store *st, const char *key_id, int64_t now)
{
    struct db_param p[] = {P_TEXT(key_id), P_TIME(now), P_TIME(now - KEY_TOUCH_INTERVAL_US)};
    struct db d;
    mc_err err;

    if (!store_id_ok(key_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* At most one write a minute per key: reads stay reads under load. */
    err = db_exec(&d,
                  "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND "
                  "(last_used_at IS NULL OR last_used_at < $3)",
                  p, NPARAMS(p), NULL);
    db_put(&d);
    return err;
}
