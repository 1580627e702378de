/*
 * store_unsubscribes.c - the tenant's suppression list.  Adding an address
 * marks every active recipient with it, in every list of the tenant,
 * unsubscribed, in the same transaction; removing it changes no recipient.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

static const char *const source_names[] = {"manual", "link", "bounce", "complaint", "import"};

const char *
unsub_source_str(enum unsub_source s)
{
    return source_names[s];
}

int
unsub_source_parse(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(s, source_names[i]) == 0)
            return i;
    return -1;
}

static const char *const cause_names[] = {"unsubscribed", "hard_bounce", "soft_bounce",
                                          "complaint", "manual"};

const char *
unsub_cause_str(enum unsub_cause c)
{
    return cause_names[c];
}

int
unsub_cause_parse(const char *s)
{
    for (int i = 0; s && i < 5; i++)
        if (strcmp(s, cause_names[i]) == 0)
            return i;
    return -1;
}

/* The cause of an entry added by hand, by a link or by the delivery worker. */
static enum unsub_cause
cause_of(enum unsub_source source)
{
    switch (source) {
    case UNSUB_LINK:
        return CAUSE_UNSUBSCRIBED;
    case UNSUB_BOUNCE:
        return CAUSE_HARD_BOUNCE;
    case UNSUB_COMPLAINT:
        return CAUSE_COMPLAINT;
    default:
        return CAUSE_MANUAL;
    }
}

void
unsubscribe_cleanup(struct unsubscribe *u)
{
    if (u == NULL)
        return;
    free(u->email);
    free(u->reason);
    memset(u, 0, sizeof(*u));
}

void
unsubscribe_vec_cleanup(struct unsubscribe_vec *v)
{
    for (int i = 0; i < v->n; i++)
        unsubscribe_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

#define UNSUB_COLS                                                                            \
    "id, email, source, campaign_id, reason, unsubscribed_at, cause, message_id, expires_at"

static void
unsub_row(struct db *d, struct db_res *r, void *out)
{
    struct unsubscribe *u = out;
    int s;

    db_col_uuid(d, r, 0, u->id);
    u->email = db_col_dup(d, r, 1);
    s = unsub_source_parse(d->ops->col_text(r, 2));
    u->source = s < 0 ? UNSUB_MANUAL : (enum unsub_source)s;
    db_col_uuid(d, r, 3, u->campaign_id);
    u->reason = db_col_dup(d, r, 4);
    u->unsubscribed_at = d->ops->col_time(r, 5);
    s = unsub_cause_parse(d->ops->col_text(r, 6));
    u->cause = s < 0 ? CAUSE_MANUAL : (enum unsub_cause)s;
    db_col_uuid(d, r, 7, u->message_id);
    u->expires_at = d->ops->col_time(r, 8);
}

static mc_err
unsub_get(struct db *d, const char *tenant_id, const char *email_lc, struct unsubscribe *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(email_lc)};

    return db_fetch_one(d, "SELECT " UNSUB_COLS " FROM unsubscribes "
                           "WHERE tenant_id = $1 AND email_lc = $2",
                        p, NPARAMS(p), unsub_row, out);
}

#define MARKED_COLS " RETURNING id, recipient_list_id, email"
static const char sql_mark_one[] =
    "UPDATE recipients SET status = 'unsubscribed', unsubscribed_at = $3, updated_at = $3 "
    "WHERE tenant_id = $1 AND email_lc = $2 AND status = 'active'" MARKED_COLS;

/* A recipient row an unsubscribe marked, or an address a suppression added. */
struct marked {
    char id[MC_UUID_LEN + 1];
    char list_id[MC_UUID_LEN + 1];
    char *email; /* owned */
};

static void
marked_row(struct db *d, struct db_res *r, void *out)
{
    struct marked *m = out;

    db_col_uuid(d, r, 0, m->id);
    db_col_uuid(d, r, 1, m->list_id);
    m->email = db_col_dup(d, r, 2);
}

static void
email_row(struct db *d, struct db_res *r, void *out)
{
    ((struct marked *)out)->email = db_col_dup(d, r, 0);
}

static void
marked_free(struct marked *m, int n)
{
    for (int i = 0; i < n; i++)
        free(m[i].email);
    free(m);
}

/* recipient.unsubscribed for each marked row. */
static void
marked_events(struct event_batch *eb, const char *tenant_id, const struct marked *m, int n,
              enum unsub_source source, const char *campaign_id)
{
    for (int i = 0; i < n; i++) {
        struct event_ref ref = {campaign_id, NULL, m[i].id, m[i].email};
        db_events_add(eb, tenant_id, "recipient.unsubscribed", &ref,
                      json_pack("{s:s, s:s}", "list_id", m[i].list_id, "source",
                                source_names[source]));
    }
}

mc_err
store_unsub_add(struct store *st, const char *tenant_id, const char *email, const char *email_lc,
                enum unsub_source source, const char *campaign_id, const char *reason,
                bool *created, struct unsubscribe *out)
{
    char id[MC_UUID_LEN + 1];
    int64_t now = time_now_us(), changes = 0;
    struct marked *m = NULL;
    struct event_batch eb;
    int nm = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if (campaign_id != NULL && (*campaign_id == '\0' || !store_id_ok(campaign_id)))
        campaign_id = NULL;
    crypto_uuid(id);
    struct db_param p[] = {P_TEXT(id),
                           P_TEXT(tenant_id),
                           P_TEXT(email),
                           P_TEXT(email_lc),
                           P_TEXT(unsub_source_str(source)),
                           P_TEXT(campaign_id),
                           P_TEXT(reason),
                           P_TIME(now),
                           P_TEXT(unsub_cause_str(cause_of(source)))};
    struct db_param pm[] = {P_TEXT(tenant_id), P_TEXT(email_lc), P_TIME(now)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_lock_tenant(&d, tenant_id);
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                  /* The campaign may be gone (links outlive campaigns): then no campaign. */
                  "INSERT INTO unsubscribes (id, tenant_id, email, email_lc, source, campaign_id, "
                  "reason, unsubscribed_at, cause) SELECT $1, t.id, $3, $4, $5, (SELECT c.id FROM "
                  "campaigns c WHERE c.id = $6 AND c.tenant_id = t.id), $7, $8, $9 FROM tenants t "
                  "WHERE t.id = $2" UNSUB_ON_CONFLICT,
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0 && reason != NULL) {
        struct db_param pr[] = {P_TEXT(tenant_id), P_TEXT(email_lc), P_TEXT(reason)};
        err = db_exec(&d, "UPDATE unsubscribes SET reason = $3 WHERE tenant_id = $1 AND email_lc = $2",
                      pr, NPARAMS(pr), NULL);
    }
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d, sql_mark_one, pm, NPARAMS(pm), marked_row, sizeof(*m),
                           (void **)&m, &nm);
    if (err == MC_ERR_OK && out)
        err = unsub_get(&d, tenant_id, email_lc, out);
    db_events_init(&eb);
    if (err == MC_ERR_OK && changes > 0) {
        struct event_ref ref = {campaign_id, NULL, NULL, email};
        db_events_add(&eb, tenant_id, "suppression.created", &ref,
                      json_pack("{s:s, s:o}", "source", source_names[source], "reason",
                                reason ? json_string(reason) : json_null()));
    }
    marked_events(&eb, tenant_id, m, nm, source, campaign_id);
    if (err == MC_ERR_OK)
        err = db_events_write(&d, &eb, now);
    db_events_cleanup(&eb);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    if (err == MC_ERR_OK && created)
        *created = changes > 0;
out:
    marked_free(m, nm);
    db_put(&d);
    return err;
}

mc_err
store_unsub_get(struct store *st, const char *tenant_id, const char *email_lc,
                struct unsubscribe *out)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = unsub_get(&d, tenant_id, email_lc, out);
    db_put(&d);
    return err;
}

mc_err
store_unsub_list(struct store *st, const char *tenant_id, int source, const char *q,
                 const struct page *pg, struct unsubscribe_vec *out)
{
    const char *s = source >= 0 ? unsub_source_str(source) : NULL;
    struct unsubscribe_vec v = {0};
    char *like;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    /* Addresses are matched on their lowercase twin, so LIKE needs no ILIKE here. */
    like = q ? db_like_contains(q, true) : NULL;
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(s), P_TEXT(like), P_INT(pg->limit),
                           P_INT(pg->offset)};
#define UNSUB_WHERE                                                                           \
    " WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR source = $2) AND "               \
    "(CAST($3 AS TEXT) IS NULL OR email_lc LIKE $3 ESCAPE '\\')"
    err = store_page(st, "SELECT COUNT(*) FROM unsubscribes" UNSUB_WHERE,
                     "SELECT " UNSUB_COLS " FROM unsubscribes" UNSUB_WHERE
                     " ORDER BY unsubscribed_at DESC, id LIMIT $4 OFFSET $5",
                     p, 3, NPARAMS(p), unsub_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
    free(like);
    if (err == MC_ERR_OK)
        *out = v;
    else
        unsubscribe_vec_cleanup(&v);
    return err;
}

mc_err
store_unsub_delete(struct store *st, const char *tenant_id, const char *email_lc)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(email_lc)};
    struct event_batch eb;
    char *email = NULL;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    db_events_init(&eb);
    if ((err = db_begin(&d, true)) == MC_ERR_OK)
        err = db_one_text(&d,
                          "DELETE FROM unsubscribes WHERE tenant_id = $1 AND email_lc = $2 "
                          "RETURNING email",
                          p, NPARAMS(p), &email);
    if (err == MC_ERR_OK) {
        struct event_ref ref = {.email = email};
        db_events_add(&eb, tenant_id, "suppression.deleted", &ref, NULL);
        err = db_events_write(&d, &eb, time_now_us());
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    db_events_cleanup(&eb);
    free(email);
    db_put(&d);
    return err;
}

static const char sql_unsub_import_sqlite[] =
    "INSERT INTO unsubscribes (id, tenant_id, email, email_lc, source, reason, unsubscribed_at) "
    "SELECT json_extract(j.value, '$.id'), $1, json_extract(j.value, '$.email'), "
    "json_extract(j.value, '$.email_lc'), 'import', json_extract(j.value, '$.reason'), $2 "
    "FROM json_each($3) j WHERE true ON CONFLICT (tenant_id, email_lc) DO NOTHING "
    "RETURNING email";
static const char sql_unsub_import_pg[] =
    "INSERT INTO unsubscribes (id, tenant_id, email, email_lc, source, reason, unsubscribed_at) "
    "SELECT x.id, $1, x.email, x.email_lc, 'import', x.reason, $2 "
    "FROM jsonb_to_recordset($3::jsonb) AS x(id uuid, email text, email_lc text, reason text) "
    "ON CONFLICT (tenant_id, email_lc) DO NOTHING RETURNING email";
static const char sql_mark_many_sqlite[] =
    "UPDATE recipients SET status = 'unsubscribed', unsubscribed_at = $2, updated_at = $2 "
    "WHERE tenant_id = $1 AND status = 'active' AND email_lc IN "
    "(SELECT json_extract(value, '$.email_lc') FROM json_each($3))" MARKED_COLS;
static const char sql_mark_many_pg[] =
    "UPDATE recipients SET status = 'unsubscribed', unsubscribed_at = $2, updated_at = $2 "
    "WHERE tenant_id = $1 AND status = 'active' AND email_lc = ANY(ARRAY("
    "SELECT x.email_lc FROM jsonb_to_recordset($3::jsonb) AS x(email_lc text)))" MARKED_COLS;

mc_err
store_unsub_import(struct store *st, const char *tenant_id, const struct import_row *rows,
                   const char *const *reasons, int n, int64_t *added, int64_t *dups)
{
    json_t *arr = json_array();
    char *arr_s = NULL;
    int64_t now = time_now_us(), changes = 0;
    struct marked *m = NULL, *added_rows = NULL;
    struct event_batch eb;
    int nm = 0, nadded = 0;
    bool is_pg;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    for (int i = 0; i < n; i++) {
        char id[MC_UUID_LEN + 1];
        crypto_uuid(id);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o}", "id", id, "email",
                                             rows[i].email, "email_lc", rows[i].email_lc,
                                             "reason",
                                             reasons && reasons[i] ? json_string(reasons[i])
                                                                   : json_null()));
    }
    arr_s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (arr_s == NULL)
        abort();
    struct db_param p[] = {P_TEXT(tenant_id), P_TIME(now), P_TEXT(arr_s)};
    if ((err = db_get(st, &d)) != MC_ERR_OK) {
        free(arr_s);
        return err;
    }
    is_pg = d.ops->dialect == DB_PG;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_lock_tenant(&d, tenant_id);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d, is_pg ? sql_unsub_import_pg : sql_unsub_import_sqlite, p,
                           NPARAMS(p), email_row, sizeof(*added_rows), (void **)&added_rows,
                           &nadded);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d, is_pg ? sql_mark_many_pg : sql_mark_many_sqlite, p, NPARAMS(p),
                           marked_row, sizeof(*m), (void **)&m, &nm);
    changes = nadded;
    db_events_init(&eb);
    for (int i = 0; i < nadded; i++) {
        struct event_ref ref = {.email = added_rows[i].email};
        db_events_add(&eb, tenant_id, "suppression.created", &ref,
                      json_pack("{s:s}", "source", "import"));
    }
    marked_events(&eb, tenant_id, m, nm, UNSUB_IMPORT, NULL);
    if (err == MC_ERR_OK)
        err = db_events_write(&d, &eb, now);
    db_events_cleanup(&eb);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    if (err == MC_ERR_OK) {
        *added += changes;
        *dups += n - changes;
    }
out:
    marked_free(m, nm);
    marked_free(added_rows, nadded);
    db_put(&d);
    free(arr_s);
    return err;
}

mc_err
db_suppress(struct db *d, const struct suppress_req *s, struct event_batch *ev)
{
    char id[MC_UUID_LEN + 1];
    char *email = NULL;
    mc_err err;

    crypto_uuid(id);
    struct db_param p[] = {P_TEXT(id),          P_TEXT(s->tenant_id),  P_TEXT(s->email),
                           P_TEXT(s->email_lc), P_TEXT(s->source),     P_TEXT(s->campaign_id),
                           P_TEXT(s->reason),   P_TIME(s->now),        P_TEXT(s->cause),
                           P_TEXT(s->message_id), P_TIME(s->expires)};
    err = db_one_text(d,
                      "INSERT INTO unsubscribes (id, tenant_id, email, email_lc, source, "
                      "campaign_id, reason, unsubscribed_at, cause, message_id, expires_at) "
                      "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE true"
                      UNSUB_ON_CONFLICT " RETURNING email",
                      p, NPARAMS(p), &email);
    if (err == MC_ERR_NOT_FOUND)
        return MC_ERR_OK; /* listed already, for at least as long */
    if (err == MC_ERR_OK) {
        struct event_ref ref = {s->campaign_id, NULL, NULL, email};
        db_events_add(ev, s->tenant_id, "suppression.created", &ref,
                      json_pack("{s:s, s:s, s:o}", "source", s->source, "cause", s->cause,
                                "reason",
                                s->reason && *s->reason ? json_string(s->reason) : json_null()));
    }
    free(email);
    return err;
}

mc_err
db_recipients_mark(struct db *d, const char *tenant_id, const char *email_lc, const char *status,
                   int64_t now)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(email_lc), P_TIME(now), P_TEXT(status)};

    return db_exec(d,
                   "UPDATE recipients SET status = $4, updated_at = $3 WHERE tenant_id = $1 AND "
                   "email_lc = $2 AND status = 'active'",
                   p, NPARAMS(p), NULL);
}
