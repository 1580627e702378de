/*
 * store_dkim.c - DKIM signing keys per tenant and domain.
 */
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

void
dkim_key_cleanup(struct dkim_key *k)
{
    if (k == NULL)
        return;
    free(k->domain);
    free(k->selector);
    free(k->algorithm);
    crypto_wipe_str(k->private_key_enc);
    free(k->private_key_enc);
    free(k->public_key);
    memset(k, 0, sizeof(*k));
}

void
dkim_key_vec_cleanup(struct dkim_key_vec *v)
{
    for (int i = 0; i < v->n; i++)
        dkim_key_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

#define DKIM_COLS                                                                             \
    "id, tenant_id, domain, selector, algorithm, key_bits, private_key_enc, public_key, "    \
    "created_at"

static void
dkim_row(struct db *d, struct db_res *r, void *out)
{
    struct dkim_key *k = out;

    db_col_uuid(d, r, 0, k->id);
    db_col_uuid(d, r, 1, k->tenant_id);
    k->domain = db_col_dup(d, r, 2);
    k->selector = db_col_dup(d, r, 3);
    k->algorithm = db_col_dup(d, r, 4);
    k->key_bits = d->ops->col_int(r, 5);
    k->private_key_enc = db_col_dup(d, r, 6);
    k->public_key = db_col_dup(d, r, 7);
    k->created_at = d->ops->col_time(r, 8);
}

mc_err
store_dkim_create(struct store *st, struct dkim_key *k)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(k->tenant_id))
        return MC_ERR_NOT_FOUND;
    crypto_uuid(k->id);
    k->created_at = time_now_us();
    struct db_param p[] = {P_TEXT(k->id),       P_TEXT(k->tenant_id),       P_TEXT(k->domain),
                           P_TEXT(k->selector), P_TEXT(k->algorithm),       P_INT(k->key_bits),
                           P_TEXT(k->private_key_enc), P_TEXT(k->public_key), P_TIME(k->created_at)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "INSERT INTO dkim_keys (" DKIM_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                  p, NPARAMS(p), NULL);
    db_put(&d);
    if (err == MC_ERR_INVALID)
        err = MC_ERR_NOT_FOUND;
    return err;
}

mc_err
store_dkim_list(struct store *st, const char *tenant_id, const struct page *pg,
                struct dkim_key_vec *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_INT(pg->limit), P_INT(pg->offset)};
    struct dkim_key_vec v = {0};
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    err = store_page(st, "SELECT COUNT(*) FROM dkim_keys WHERE tenant_id = $1",
                     "SELECT " DKIM_COLS " FROM dkim_keys WHERE tenant_id = $1 "
                     "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                     p, 1, NPARAMS(p), dkim_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
    if (err == MC_ERR_OK)
        *out = v;
    else
        dkim_key_vec_cleanup(&v);
    return err;
}

mc_err
store_dkim_get(struct store *st, const char *tenant_id, const char *id, struct dkim_key *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_one(&d, "SELECT " DKIM_COLS " FROM dkim_keys WHERE tenant_id = $1 AND id = $2",
                       p, NPARAMS(p), dkim_row, out);
    db_put(&d);
    return err;
}

mc_err
store_dkim_delete(struct store *st, const char *tenant_id, const char *id)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d, "DELETE FROM dkim_keys WHERE tenant_id = $1 AND id = $2", p, NPARAMS(p),
                  &changes);
    db_put(&d);
    return err == MC_ERR_OK && changes == 0 ? MC_ERR_NOT_FOUND : err;
}

mc_err
store_dkim_for_domain(struct store *st, const char *tenant_id, const char *domain,
                      struct dkim_key *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(domain)};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_one(&d,
                       "SELECT " DKIM_COLS " FROM dkim_keys WHERE tenant_id = $1 AND domain = $2 "
                       "ORDER BY created_at DESC, id LIMIT 1",
                       p, NPARAMS(p), dkim_row, out);
    db_put(&d);
    return err;
}
