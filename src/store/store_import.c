/*
 * store_import.c - bulk import of recipients, one batch per transaction.
 *
 * DESIGN
 * Each batch is one BEGIN IMMEDIATE transaction that, for its rows,
 *   1. skips the addresses on the tenant's suppression list,
 *   2. (upsert) finds which are already in the list, with their attributes,
 *   3. inserts the new ones (ON CONFLICT DO NOTHING: a concurrent import of
 *      the same address counts as a duplicate, never as an error) with
 *      time-ordered ids (crypto_uuid7), so the primary key and the (list, id)
 *      index grow at their right edge instead of at random pages,
 *   4. (upsert) updates the existing ones, attributes merged here in C so
 *      both backends merge alike (top-level keys of the new object win).
 * The backends differ in how rows travel.  SQLite runs in-process, so a
 * statement per row costs no round trip: each row is bound straight into
 * cached statements (import_sqlite).  PostgreSQL gets the batch as one JSON
 * array and set-based statements (jsonb_to_recordset), a few round trips a
 * batch (import_pg).
 * The list's counters follow from the recipients triggers.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

/* Joined from the batch's addresses, so each is one probe of a unique index. */
static const char sql_suppressed_pg[] =
    "SELECT u.email_lc FROM jsonb_array_elements_text($2::jsonb) AS e(v) "
    "JOIN suppressions u ON u.tenant_id = $1 AND u.email_lc = e.v";

static const char sql_existing_pg[] =
    "SELECT r.email_lc, r.id, r.attributes FROM jsonb_array_elements_text($2::jsonb) AS e(v) "
    "JOIN recipients r ON r.recipient_list_id = $3 AND r.email_lc = e.v WHERE r.tenant_id = $1";

static const char sql_insert_pg[] =
    "INSERT INTO recipients (id, tenant_id, recipient_list_id, email, email_lc, name, "
    "first_name, last_name, status, attributes, subscribed_at, created_at, updated_at) "
    "SELECT x.id, $1, $2, x.email, x.email_lc, x.name, x.first_name, x.last_name, 'active', "
    "COALESCE(x.attributes, '{}'), $3, $3, $3 "
    "FROM jsonb_to_recordset($4::jsonb) AS x(id uuid, email text, email_lc text, name text, "
    "first_name text, last_name text, attributes jsonb) WHERE EXISTS "
    "(SELECT 1 FROM recipient_lists l WHERE l.id = $2 AND l.tenant_id = $1) "
    "ON CONFLICT (recipient_list_id, email_lc) DO NOTHING";

/*
 * Upsert updates.  SQLite plans UPDATE ... FROM json_each() as a walk of
 * the whole list per batch row, so it gets one cached statement per row
 * (microseconds each inside the transaction).  PostgreSQL gets one
 * statement per batch joined on the primary key alone: with the tenant and
 * list in the join, stale statistics could turn it into a nested loop that
 * re-reads the batch for every recipient of the list.  The ids come from
 * the lookup above, which filtered on tenant and list in this transaction,
 * under the tenant's lock.
 */
static const char sql_update_pg[] =
    "UPDATE recipients r SET name = COALESCE(x.name, r.name), "
    "first_name = COALESCE(x.first_name, r.first_name), "
    "last_name = COALESCE(x.last_name, r.last_name), attributes = x.attributes, "
    "updated_at = $1 FROM jsonb_to_recordset($2::jsonb) AS x(id uuid, name text, "
    "first_name text, last_name text, attributes jsonb) WHERE r.id = x.id";
/* SQLite, one row at a time (import_sqlite). */
static const char sql_is_suppressed[] =
    "SELECT 1 FROM suppressions WHERE tenant_id = $1 AND email_lc = $2";
static const char sql_find_existing[] =
    "SELECT email_lc, id, attributes FROM recipients WHERE recipient_list_id = $2 "
    "AND email_lc = $3 AND tenant_id = $1";
/*
 * The suppression check is part of the insert: one statement a row.  (The
 * recipients count trigger gives every INSERT a statement journal; a second
 * statement per row would pay for it twice.)  When nothing was inserted the
 * caller asks which of the two it was.
 */
static const char sql_insert_row[] =
    "INSERT INTO recipients (id, tenant_id, recipient_list_id, email, email_lc, name, "
    "first_name, last_name, status, attributes, subscribed_at, created_at, updated_at) "
    "SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $10, $10 WHERE NOT EXISTS "
    "(SELECT 1 FROM unsubscribes WHERE tenant_id = $2 AND email_lc = $5 AND "
    "(expires_at IS NULL OR expires_at > $10)) "
    "ON CONFLICT (recipient_list_id, email_lc) DO NOTHING";
static const char sql_update[] =
    "UPDATE recipients SET name = COALESCE($4, name), first_name = COALESCE($5, first_name), "
    "last_name = COALESCE($6, last_name), attributes = $7, updated_at = $3 "
    "WHERE tenant_id = $1 AND recipient_list_id = $2 AND id = $8";

/* An address found by a lookup, with what the upsert needs of it. */
struct found {
    char *email_lc;   /* owned */
    char id[MC_UUID_LEN + 1];
    char *attributes; /* owned */
};

static void
found_row(struct db *d, struct db_res *r, void *out)
{
    struct found *f = out;

    f->email_lc = db_col_dup(d, r, 0);
    if (d->ops->col_text(r, 1) != NULL) {
        db_col_uuid(d, r, 1, f->id);
        f->attributes = db_col_dup(d, r, 2);
    }
}

static int
found_cmp(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->email_lc, ((const struct found *)b)->email_lc);
}

static struct found *
found_lookup(struct found *v, int n, const char *email_lc)
{
    struct found key = {.email_lc = (char *)email_lc};

    return n ? bsearch(&key, v, (size_t)n, sizeof(*v), found_cmp) : NULL;
}

static void
found_free_one(struct found *f)
{
    free(f->email_lc);
    free(f->attributes);
}

static void
found_free(struct found *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].email_lc);
        free(v[i].attributes);
    }
    free(v);
}

/* Runs a lookup of the batch's addresses and sorts the result for bsearch. */
static mc_err
lookup(struct db *d, const char *sql, const char *tenant_id, const char *addrs,
       const char *list_id, struct found **out, int *n)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(addrs), P_TEXT(list_id)};
    mc_err err;

    *out = NULL;
    *n = 0;
    err = db_fetch_all(d, sql, p, list_id ? 3 : 2, found_row, sizeof(**out), (void **)out, n);
    if (err == MC_ERR_OK && *n > 1)
        qsort(*out, (size_t)*n, sizeof(**out), found_cmp);
    return err;
}

static json_t *
json_str_opt(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The merged attributes (new top-level keys replace old ones), as owned JSON text. */
static json_t *
merge_attributes(const char *old, const char *add)
{
    json_t *o = old ? json_loads(old, 0, NULL) : NULL;
    json_t *a = add ? json_loads(add, 0, NULL) : NULL;

    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    if (json_is_object(a))
        json_object_update(o, a);
    json_decref(a);
    return o;
}

static char *
dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);

    if (s == NULL)
        abort();
    return s;
}

/*
 * SQLite: a row is one INSERT through a cached statement, bound straight
 * from the row (an upsert first probes for suppression and an existing
 * row).  Inside the batch's transaction each is a few microseconds, and
 * nothing is built as JSON only to be taken apart again.
 * BEGIN IMMEDIATE holds the write lock, so the list checked at the start of
 * the batch cannot go away before its rows are written.
 */
static mc_err
import_sqlite(struct db *d, const char *tenant_id, const char *list_id, enum import_mode mode,
              const struct import_row *rows, int n, int64_t now, struct import_counts *c)
{
    int64_t changes = 0, one = 0;
    mc_err err;

    for (int i = 0; i < n; i++) {
        const struct import_row *r = &rows[i];
        struct db_param ps[] = {P_TEXT(tenant_id), P_TEXT(r->email_lc)};
        struct found e = {0};

        /* An upsert must not touch a suppressed address; an insert checks itself. */
        if (mode == IMPORT_UPSERT) {
            err = db_one_int(d, sql_is_suppressed, ps, NPARAMS(ps), &one);
            if (err == MC_ERR_OK) {
                c->skipped_suppressed++;
                continue;
            }
            if (err != MC_ERR_NOT_FOUND)
                return err;
            struct db_param pe[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TEXT(r->email_lc)};
            err = db_fetch_one(d, sql_find_existing, pe, NPARAMS(pe), found_row, &e);
            if (err == MC_ERR_OK) {
                json_t *m = merge_attributes(e.attributes, r->attributes);
                char *attrs = dump(m);
                struct db_param pu[] = {P_TEXT(tenant_id),     P_TEXT(list_id),
                                        P_TIME(now),           P_TEXT(r->name),
                                        P_TEXT(r->first_name), P_TEXT(r->last_name),
                                        P_TEXT(attrs),         P_TEXT(e.id)};
                err = db_exec(d, sql_update, pu, NPARAMS(pu), &changes);
                json_decref(m);
                free(attrs);
                found_free_one(&e);
                if (err != MC_ERR_OK)
                    return err;
                c->updated += changes;
                continue;
            }
            found_free_one(&e);
            if (err != MC_ERR_NOT_FOUND)
                return err;
        }
        char id[MC_UUID_LEN + 1];
        crypto_uuid7(id);
        struct db_param pi[] = {P_TEXT(id),
                                P_TEXT(tenant_id),
                                P_TEXT(list_id),
                                P_TEXT(r->email),
                                P_TEXT(r->email_lc),
                                P_TEXT(r->name),
                                P_TEXT(r->first_name),
                                P_TEXT(r->last_name),
                                P_TEXT(r->attributes ? r->attributes : "{}"),
                                P_TIME(now)};
        err = db_exec(d, sql_insert_row, pi, NPARAMS(pi), &changes);
        if (err != MC_ERR_OK)
            return err;
        if (changes > 0) {
            c->imported++;
            continue;
        }
        /* Rare: a duplicate or, unless the upsert checked already, a suppressed address. */
        err = mode == IMPORT_SKIP ? db_one_int(d, sql_is_suppressed, ps, NPARAMS(ps), &one)
                                  : MC_ERR_NOT_FOUND;
        if (err == MC_ERR_OK)
            c->skipped_suppressed++;
        else if (err == MC_ERR_NOT_FOUND)
            c->skipped_duplicates++;
        else
            return err;
    }
    return MC_ERR_OK;
}

/*
 * PostgreSQL: a batch is one JSON array parameter and a few set-based
 * statements, so a batch costs a few round trips, not one per row.
 */
static mc_err
import_pg(struct db *d, const char *tenant_id, const char *list_id, enum import_mode mode,
          const struct import_row *rows, int n, int64_t now, struct import_counts *c)
{
    json_t *addrs = json_array(), *ins = json_array(), *upd = json_array();
    struct found *supp = NULL, *exist = NULL;
    int nsupp = 0, nexist = 0, nins = 0;
    char *addrs_s = NULL, *ins_s = NULL, *upd_s = NULL;
    int64_t changes = 0;
    mc_err err;

    for (int i = 0; i < n; i++)
        json_array_append_new(addrs, json_string(rows[i].email_lc));
    addrs_s = dump(addrs);
    err = lookup(d, sql_suppressed_pg, tenant_id, addrs_s, NULL, &supp, &nsupp);
    if (err == MC_ERR_OK && mode == IMPORT_UPSERT)
        err = lookup(d, sql_existing_pg, tenant_id, addrs_s, list_id, &exist, &nexist);
    if (err != MC_ERR_OK)
        goto out;

    for (int i = 0; i < n; i++) {
        const struct import_row *r = &rows[i];
        struct found *e;
        json_t *row;

        if (found_lookup(supp, nsupp, r->email_lc)) {
            c->skipped_suppressed++;
            continue;
        }
        if ((e = found_lookup(exist, nexist, r->email_lc)) != NULL) {
            row = json_pack("{s:s, s:o, s:o, s:o, s:o}", "id", e->id, "name",
                            json_str_opt(r->name), "first_name", json_str_opt(r->first_name),
                            "last_name", json_str_opt(r->last_name), "attributes",
                            merge_attributes(e->attributes, r->attributes));
            json_array_append_new(upd, row);
            continue;
        }
        char id[MC_UUID_LEN + 1];
        crypto_uuid7(id);
        json_t *attrs = r->attributes ? json_loads(r->attributes, 0, NULL) : json_object();
        row = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", id, "email", r->email,
                        "email_lc", r->email_lc, "name", json_str_opt(r->name), "first_name",
                        json_str_opt(r->first_name), "last_name", json_str_opt(r->last_name),
                        "attributes", attrs ? attrs : json_object());
        json_array_append_new(ins, row);
        nins++;
    }
    if (nins > 0) {
        ins_s = dump(ins);
        struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(list_id), P_TIME(now), P_TEXT(ins_s)};
        err = db_exec(d, sql_insert_pg, p, NPARAMS(p), &changes);
        if (err != MC_ERR_OK)
            goto out;
        c->imported += changes;
        c->skipped_duplicates += nins - changes;
    }
    if (json_array_size(upd) > 0) {
        upd_s = dump(upd);
        struct db_param p[] = {P_TIME(now), P_TEXT(upd_s)};
        err = db_exec(d, sql_update_pg, p, NPARAMS(p), &changes);
        if (err != MC_ERR_OK)
            goto out;
        c->updated += changes;
    }
out:
    found_free(supp, nsupp);
    found_free(exist, nexist);
    json_decref(addrs);
    json_decref(ins);
    json_decref(upd);
    free(addrs_s);
    free(ins_s);
    free(upd_s);
    return err;
}

mc_err
store_recipient_import(struct store *st, const char *tenant_id, const char *list_id,
                       enum import_mode mode, const struct import_row *rows, int n,
                       struct import_counts *acc)
{
    struct import_counts c = {0};
    int64_t now = time_now_us();
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(list_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    if ((err = db_lock_tenant(&d, tenant_id)) != MC_ERR_OK)
        goto rollback;
    /* The list may be deleted while an import streams in: say so, not "duplicates". */
    if ((err = db_list_exists(&d, tenant_id, list_id)) != MC_ERR_OK)
        goto rollback;
    if (d.ops->dialect == DB_PG)
        err = import_pg(&d, tenant_id, list_id, mode, rows, n, now, &c);
    else
        err = import_sqlite(&d, tenant_id, list_id, mode, rows, n, now, &c);
    if (err != MC_ERR_OK)
        goto rollback;
    err = db_commit(&d);
    if (err == MC_ERR_OK) {
        acc->imported += c.imported;
        acc->updated += c.updated;
        acc->skipped_duplicates += c.skipped_duplicates;
        acc->skipped_suppressed += c.skipped_suppressed;
    }
    goto out;
rollback:
    db_rollback(&d);
out:
    db_put(&d);
    return err;
}
