/*
 * store_lists.c - recipient lists and single recipients.  Bulk import lives
 * in store_import.c, the suppression list in store_unsubscribes.c.
 *
 * Every statement filters on the tenant; recipients carry tenant_id so that
 * no query needs a join to stay inside the tenant.
 */
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

/* A scheduled, sending or paused campaign still reads its list. */
#define LIST_IN_USE                                                                           \
    "EXISTS (SELECT 1 FROM campaigns c WHERE c.recipient_list_id = recipient_lists.id "      \
    "AND c.status IN ('scheduled', 'sending', 'paused'))"

static const char *const rcpt_status_names[] = {"active", "unsubscribed", "bounced",
                                                "complained"};

const char *
recipient_status_str(enum recipient_status s)
{
    return rcpt_status_names[s];
}

int
recipient_status_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, rcpt_status_names[i]) == 0)
            return i;
    return -1;
}

void
recipient_list_cleanup(struct recipient_list *l)
{
    if (l == NULL)
        return;
    free(l->name);
    free(l->description);
    free(l->metadata);
    memset(l, 0, sizeof(*l));
}

void
recipient_list_vec_cleanup(struct recipient_list_vec *v)
{
    for (int i = 0; i < v->n; i++)
        recipient_list_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

void
recipient_cleanup(struct recipient *r)
{
    if (r == NULL)
        return;
    free(r->email);
    free(r->email_lc);
    free(r->name);
    free(r->first_name);
    free(r->last_name);
    free(r->attributes);
    memset(r, 0, sizeof(*r));
}

void
recipient_vec_cleanup(struct recipient_vec *v)
{
    for (int i = 0; i < v->n; i++)
        recipient_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

/* ---- lists ---- */

#define LIST_COLS                                                                             \
    "id, tenant_id, name, description, metadata, recipient_count, active_count, created_at, " \
    "updated_at"

static void
list_row(struct db *d, struct db_res *r, void *out)
{
    struct recipient_list *l = out;

    db_col_uuid(d, r, 0, l->id);
    db_col_uuid(d, r, 1, l->tenant_id);
    l->name = db_col_dup(d, r, 2);
    l->description = db_col_dup(d, r, 3);
    l->metadata = db_col_dup(d, r, 4);
    l->recipient_count = d->ops->col_int(r, 5);
    l->active_count = d->ops->col_int(r, 6);
    l->created_at = d->ops->col_time(r, 7);
    l->updated_at = d->ops->col_time(r, 8);
}

static mc_err
list_get(struct db *d, const char *tenant_id, const char *id, struct recipient_list *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};

    return db_fetch_one(d, "SELECT " LIST_COLS " FROM recipient_lists "
                           "WHERE tenant_id = $1 AND id = $2",
                        p, NPARAMS(p), list_row, out);
}

mc_err
store_list_create(struct store *st, struct recipient_list *l)
{
    int64_t now = time_now_us();
    struct db d;
    mc_err err;

    if (!store_id_ok(l->tenant_id))
        return MC_ERR_NOT_FOUND;
    crypto_uuid(l->id);
    if (l->metadata == NULL)
        l->metadata = xstrdup("{}");
    struct db_param p[] = {P_TEXT(l->id),          P_TEXT(l->tenant_id), P_TEXT(l->name),
                           P_TEXT(l->description), P_TEXT(l->metadata),  P_TIME(now)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "INSERT INTO recipient_lists (id, tenant_id, name, description, metadata, "
                  "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                  p, NPARAMS(p), NULL);
    db_put(&d);
    if (err == MC_ERR_INVALID)
        err = MC_ERR_NOT_FOUND; /* no such tenant */
    if (err == MC_ERR_OK) {
        l->recipient_count = l->active_count = 0;
        l->created_at = l->updated_at = now;
    }
    return err;
}

mc_err
store_list_get(struct store *st, const char *tenant_id, const char *id,
               struct recipient_list *out)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = list_get(&d, tenant_id, id, out);
    db_put(&d);
    return err;
}

mc_err
store_list_list(struct store *st, const char *tenant_id, const struct page *pg,
                struct recipient_list_vec *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_INT(pg->limit), P_INT(pg->offset)};
    struct recipient_list_vec v = {0};
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    err = store_page(st, "SELECT COUNT(*) FROM recipient_lists WHERE tenant_id = $1",
                     "SELECT " LIST_COLS " FROM recipient_lists WHERE tenant_id = $1 "
                     "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                     p, 1, NPARAMS(p), list_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
    if (err == MC_ERR_OK)
        *out = v;
    else
        recipient_list_vec_cleanup(&v);
    return err;
}

mc_err
store_list_update(struct store *st, const char *tenant_id, const char *id,
                  const struct list_patch *lp, struct recipient_list *out)
{
    struct db_param p[] = {P_TEXT(tenant_id),         P_TEXT(id),
                           P_TEXT(lp->name),          P_BOOL(lp->set_description),
                           P_TEXT(lp->description),   P_TEXT(lp->metadata),
                           P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "UPDATE recipient_lists SET name = COALESCE($3, name), "
                  "description = CASE WHEN $4 THEN $5 ELSE description END, "
                  "metadata = COALESCE($6, metadata), updated_at = $7 "
                  "WHERE tenant_id = $1 AND id = $2",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = list_get(&d, tenant_id, id, out);
    db_put(&d);
    return err;
}

mc_err
store_list_delete(struct store *st, const char *tenant_id, const char *id)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* One statement decides: a campaign scheduled in between cannot slip through. */
    err = db_exec(&d,
                  "DELETE FROM recipient_lists WHERE tenant_id = $1 AND id = $2 AND NOT " LIST_IN_USE,
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0) {
        err = db_list_exists(&d, tenant_id, id);
        if (err == MC_ERR_OK)
            err = MC_ERR_STATE;
    }
    db_put(&d);
    return err;
}

static void
key_row(struct db *d, struct db_res *r, void *out)
{
    *(char **)out = db_col_dup(d, r, 0);
}

mc_err
store_list_attribute_keys(struct store *st, const char *tenant_id, const char *id, int max,
                          char ***keys_out, int *n_out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id), P_INT(max + 1)};
    char **keys = NULL;
    int n = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_all(&d,
                       d.ops->dialect == DB_PG
                           ? "SELECT DISTINCT k FROM recipients r, "
                             "jsonb_object_keys(r.attributes) AS k "
                             "WHERE r.tenant_id = $1 AND r.recipient_list_id = $2 "
                             "ORDER BY k LIMIT $3"
                           : "SELECT DISTINCT j.key FROM recipients r, json_each(r.attributes) j "
                             "WHERE r.tenant_id = $1 AND r.recipient_list_id = $2 "
                             "ORDER BY j.key LIMIT $3",
                       p, NPARAMS(p), key_row, sizeof(char *), (void **)&keys, &n);
    db_put(&d);
    if (err == MC_ERR_OK && n > max)
        err = MC_ERR_TOO_LARGE;
    if (err != MC_ERR_OK) {
        for (int i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        return err;
    }
    *keys_out = keys;
    *n_out = n;
    return MC_ERR_OK;
}

/* ---- recipients ---- */

#define RCPT_COLS                                                                             \
    "id, recipient_list_id, email, email_lc, name, first_name, last_name, attributes, "      \
    "status, subscribed_at, unsubscribed_at, created_at, updated_at"

static void
rcpt_row(struct db *d, struct db_res *r, void *out)
{
    struct recipient *x = out;
    int s;

    db_col_uuid(d, r, 0, x->id);
    db_col_uuid(d, r, 1, x->list_id);
    x->email = db_col_dup(d, r, 2);
    x->email_lc = db_col_dup(d, r, 3);
    x->name = db_col_dup(d, r, 4);
    x->first_name = db_col_dup(d, r, 5);
    x->last_name = db_col_dup(d, r, 6);
    x->attributes = db_col_dup(d, r, 7);
    s = recipient_status_parse(d->ops->col_text(r, 8));
    x->status = s < 0 ? RCPT_UNSUBSCRIBED : (enum recipient_status)s;
    x->subscribed_at = d->ops->col_time(r, 9);
    x->unsubscribed_at = d->ops->col_time(r, 10);
    x->created_at = d->ops->col_time(r, 11);
    x->updated_at = d->ops->col_time(r, 12);
}

static mc_err
rcpt_get(struct db *d, const char *tenant_id, const char *list_id, const char *id,
         struct recipient *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TEXT(id)};

    return db_fetch_one(d, "SELECT " RCPT_COLS " FROM recipients "
                           "WHERE tenant_id = $1 AND recipient_list_id = $2 AND id = $3",
                        p, NPARAMS(p), rcpt_row, out);
}

mc_err
db_list_exists(struct db *d, const char *tenant_id, const char *list_id)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(list_id)};
    int64_t n = 0;
    mc_err err = db_one_int(d, "SELECT COUNT(*) FROM recipient_lists WHERE tenant_id = $1 AND id = $2",
                            p, NPARAMS(p), &n);

    return err != MC_ERR_OK ? err : n ? MC_ERR_OK : MC_ERR_NOT_FOUND;
}

mc_err
store_recipient_create(struct store *st, const char *tenant_id, const char *list_id,
                       struct recipient *r)
{
    int64_t now = time_now_us(), changes = 0, suppressed = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id))
        return MC_ERR_NOT_FOUND;
    crypto_uuid7(r->id);
    if (r->attributes == NULL)
        r->attributes = xstrdup("{}");
    struct db_param ps[] = {P_TEXT(tenant_id), P_TEXT(r->email_lc)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    if ((err = db_lock_tenant(&d, tenant_id)) != MC_ERR_OK)
        goto rollback;
    /* An address on the suppression list is recorded, but never as active. */
    err = db_one_int(&d, "SELECT COUNT(*) FROM suppressions WHERE tenant_id = $1 AND email_lc = $2",
                     ps, NPARAMS(ps), &suppressed);
    if (err != MC_ERR_OK)
        goto rollback;
    struct db_param p[] = {P_TEXT(r->id),
                           P_TEXT(tenant_id),
                           P_TEXT(list_id),
                           P_TEXT(r->email),
                           P_TEXT(r->email_lc),
                           P_TEXT(r->name),
                           P_TEXT(r->first_name),
                           P_TEXT(r->last_name),
                           P_TEXT(r->attributes),
                           P_TEXT(suppressed ? "unsubscribed" : "active"),
                           P_TIME(now),
                           P_TIME(suppressed ? now : 0)};
    /* The list check and the insert are one statement. */
    err = db_exec(&d,
                  "INSERT INTO recipients (id, tenant_id, recipient_list_id, email, email_lc, "
                  "name, first_name, last_name, attributes, status, subscribed_at, "
                  "unsubscribed_at, created_at, updated_at) "
                  "SELECT $1, l.tenant_id, l.id, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, $11 "
                  "FROM recipient_lists l WHERE l.tenant_id = $2 AND l.id = $3",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    if (err != MC_ERR_OK)
        goto rollback;
    struct recipient got = {0};
    err = rcpt_get(&d, tenant_id, list_id, r->id, &got);
    if (err == MC_ERR_OK) {
        recipient_cleanup(r);
        *r = got;
    }
    goto out;
rollback:
    db_rollback(&d);
out:
    db_put(&d);
    return err;
}

mc_err
store_recipient_get(struct store *st, const char *tenant_id, const char *list_id,
                    const char *id, struct recipient *out)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = rcpt_get(&d, tenant_id, list_id, id, out);
    db_put(&d);
    return err;
}

mc_err
store_recipient_find(struct store *st, const char *tenant_id, const char *id,
                     struct recipient *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_one(&d, "SELECT " RCPT_COLS " FROM recipients WHERE tenant_id = $1 AND id = $2",
                       p, NPARAMS(p), rcpt_row, out);
    db_put(&d);
    return err;
}

mc_err
store_recipient_update(struct store *st, const char *tenant_id, const char *list_id,
                       const char *id, const struct recipient_patch *rp, struct recipient *out)
{
    const char *status = rp->has_status ? recipient_status_str(rp->status) : NULL;
    int64_t now = time_now_us(), changes = 0, suppressed = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    struct db_param p[] = {P_TEXT(tenant_id),       P_TEXT(list_id),
                           P_TEXT(id),              P_BOOL(rp->set_name),
                           P_TEXT(rp->name),        P_BOOL(rp->set_first_name),
                           P_TEXT(rp->first_name),  P_BOOL(rp->set_last_name),
                           P_TEXT(rp->last_name),   P_TEXT(rp->attributes),
                           P_TEXT(status),          P_TIME(now)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    if (rp->has_status && rp->status == RCPT_ACTIVE &&
        (err = db_lock_tenant(&d, tenant_id)) != MC_ERR_OK)
        goto rollback;
    if (rp->has_status && rp->status == RCPT_ACTIVE) {
        struct db_param q[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TEXT(id)};
        err = db_one_int(&d,
                         "SELECT COUNT(*) FROM recipients r JOIN suppressions u "
                         "ON u.tenant_id = r.tenant_id AND u.email_lc = r.email_lc "
                         "WHERE r.tenant_id = $1 AND r.recipient_list_id = $2 AND r.id = $3",
                         q, NPARAMS(q), &suppressed);
        if (err == MC_ERR_OK && suppressed)
            err = MC_ERR_STATE;
        if (err != MC_ERR_OK)
            goto rollback;
    }
    err = db_exec(&d,
                  "UPDATE recipients SET "
                  "name = CASE WHEN $4 THEN $5 ELSE name END, "
                  "first_name = CASE WHEN $6 THEN $7 ELSE first_name END, "
                  "last_name = CASE WHEN $8 THEN $9 ELSE last_name END, "
                  "attributes = COALESCE($10, attributes), "
                  "unsubscribed_at = CASE WHEN $11 = 'unsubscribed' AND status <> 'unsubscribed' "
                  "THEN $12 WHEN $11 = 'active' THEN NULL ELSE unsubscribed_at END, "
                  "status = COALESCE($11, status), updated_at = $12 "
                  "WHERE tenant_id = $1 AND recipient_list_id = $2 AND id = $3",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    if (err == MC_ERR_OK)
        err = rcpt_get(&d, tenant_id, list_id, id, out);
    goto out;
rollback:
    db_rollback(&d);
out:
    db_put(&d);
    return err;
}

mc_err
store_recipient_delete(struct store *st, const char *tenant_id, const char *list_id,
                       const char *id)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TEXT(id)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "DELETE FROM recipients WHERE tenant_id = $1 AND recipient_list_id = $2 "
                  "AND id = $3",
                  p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    return err;
}


mc_err
store_recipient_list(struct store *st, const char *tenant_id, const char *list_id,
                     const struct recipient_filter *f, const struct page *pg,
                     struct recipient_vec *out)
{
    const char *status = f->status >= 0 ? recipient_status_str(f->status) : NULL;
    char *contains = f->q ? db_like_contains(f->q, false) : NULL;
    struct recipient_vec v = {0};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id)) {
        free(contains);
        return MC_ERR_NOT_FOUND;
    }
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TEXT(status),
                           P_TEXT(contains),  P_INT(pg->limit), P_INT(pg->offset)};
    if ((err = db_get(st, &d)) != MC_ERR_OK) {
        free(contains);
        return err;
    }
    /* LIKE is case-insensitive for ASCII in SQLite; PostgreSQL needs ILIKE. */
#define RCPT_WHERE_PG                                                                         \
    " WHERE tenant_id = $1 AND recipient_list_id = $2 AND "                                   \
    "(CAST($3 AS TEXT) IS NULL OR status = $3) AND (CAST($4 AS TEXT) IS NULL OR "              \
    "email_lc ILIKE $4 ESCAPE '\\' OR name ILIKE $4 ESCAPE '\\' OR "                          \
    "first_name ILIKE $4 ESCAPE '\\' OR last_name ILIKE $4 ESCAPE '\\')"
#define RCPT_WHERE_SQLITE                                                                     \
    " WHERE tenant_id = $1 AND recipient_list_id = $2 AND "                                   \
    "($3 IS NULL OR status = $3) AND ($4 IS NULL OR "                                          \
    "email_lc LIKE $4 ESCAPE '\\' OR name LIKE $4 ESCAPE '\\' OR "                            \
    "first_name LIKE $4 ESCAPE '\\' OR last_name LIKE $4 ESCAPE '\\')"
    bool is_pg = d.ops->dialect == DB_PG;
    err = db_list_exists(&d, tenant_id, list_id);
    if (err == MC_ERR_OK)
        err = db_one_int(&d,
                         is_pg ? "SELECT COUNT(*) FROM recipients" RCPT_WHERE_PG
                            : "SELECT COUNT(*) FROM recipients" RCPT_WHERE_SQLITE,
                         p, 4, &v.total);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d,
                           is_pg ? "SELECT " RCPT_COLS " FROM recipients" RCPT_WHERE_PG
                                " ORDER BY created_at DESC, id LIMIT $5 OFFSET $6"
                              : "SELECT " RCPT_COLS " FROM recipients" RCPT_WHERE_SQLITE
                                " ORDER BY created_at DESC, id LIMIT $5 OFFSET $6",
                           p, NPARAMS(p), rcpt_row, sizeof(*v.items), (void **)&v.items, &v.n);
    db_put(&d);
    free(contains);
    if (err == MC_ERR_OK)
        *out = v;
    else
        recipient_vec_cleanup(&v);
    return err;
}

mc_err
store_recipient_after(struct store *st, const char *tenant_id, const char *list_id, int status,
                      const char *after, int limit, struct recipient_vec *out)
{
    const char *s = status >= 0 ? recipient_status_str(status) : NULL;
    struct recipient_vec v = {0};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id))
        return MC_ERR_NOT_FOUND;
    if (after == NULL || *after == '\0')
        after = "00000000-0000-0000-0000-000000000000";
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TEXT(after), P_TEXT(s),
                           P_INT(limit)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_all(&d,
                       "SELECT " RCPT_COLS " FROM recipients WHERE tenant_id = $1 AND "
                       "recipient_list_id = $2 AND id > $3 AND "
                       "(CAST($4 AS TEXT) IS NULL OR status = $4) ORDER BY id LIMIT $5",
                       p, NPARAMS(p), rcpt_row, sizeof(*v.items), (void **)&v.items, &v.n);
    db_put(&d);
    if (err == MC_ERR_OK)
        *out = v;
    else
        recipient_vec_cleanup(&v);
    return err;
}
