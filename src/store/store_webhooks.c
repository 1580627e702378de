/*
 * store_webhooks.c - webhook endpoints (CRUD, secret rotation, test,
 * replay) and the delivery outbox's claims and results.
 *
 * It does not build requests or talk HTTP (src/webhook/ does), and it
 * queues the deliveries of ordinary events in store_events.c, with them.
 *
 * DESIGN
 * webhook_deliveries is claimed like scheduled_messages: a claim moves due
 * rows to 'sending' with a lease (owner, expiry) and attempt + 1 in one
 * short transaction (PostgreSQL: candidates FOR UPDATE SKIP LOCKED, so any
 * number of workers share the outbox; SQLite: BEGIN IMMEDIATE).  Results
 * are fenced on (id, lease owner, attempt, 'sending'): a worker whose lease
 * expired changes nothing.  A killed worker's leases expire and
 * store_webhook_recover() makes them pending again: at least once.
 *
 * The per-endpoint concurrency cap: the claim ranks the candidates of each
 * endpoint and takes only as many as the endpoint has room for in this
 * worker (its in-flight counts come in as JSON).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

void
webhook_cleanup(struct webhook *w)
{
    if (w == NULL)
        return;
    free(w->url);
    free(w->description);
    free(w->event_types);
    free(w->disabled_reason);
    memset(w, 0, sizeof(*w));
}

void
webhook_vec_cleanup(struct webhook_vec *v)
{
    for (int i = 0; i < v->n; i++)
        webhook_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

#define WH_COLS                                                                               \
    "id, tenant_id, url, description, event_types, enabled, disabled_reason, "                \
    "previous_expires_at, failing_since, last_success_at, created_at, updated_at"

static void
wh_row(struct db *d, struct db_res *r, void *out)
{
    struct webhook *w = out;
    const struct store_ops *o = d->ops;

    db_col_uuid(d, r, 0, w->id);
    db_col_uuid(d, r, 1, w->tenant_id);
    w->url = db_col_dup(d, r, 2);
    w->description = db_col_dup(d, r, 3);
    w->event_types = db_col_dup(d, r, 4);
    w->enabled = o->col_bool(r, 5);
    w->disabled_reason = db_col_dup(d, r, 6);
    w->previous_expires_at = o->col_time(r, 7);
    w->failing_since = o->col_time(r, 8);
    w->last_success_at = o->col_time(r, 9);
    w->created_at = o->col_time(r, 10);
    w->updated_at = o->col_time(r, 11);
}

static mc_err
wh_get(struct db *d, const char *tenant_id, const char *id, struct webhook *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};

    return db_fetch_one(d, "SELECT " WH_COLS " FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
                        p, NPARAMS(p), wh_row, out);
}

/* After an UPDATE of one endpoint: NOT_FOUND when it changed nothing, else the row re-read. */
static mc_err
updated_get(struct db *d, mc_err err, int64_t changes, const char *tenant_id, const char *id,
            struct webhook *out)
{
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK && out)
        err = wh_get(d, tenant_id, id, out);
    return err;
}

mc_err
store_webhook_create(struct store *st, struct webhook *w, const char *secret, int max)
{
    int64_t now = time_now_us(), count = 0, changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(w->tenant_id))
        return MC_ERR_NOT_FOUND;
    crypto_uuid7(w->id);
    struct db_param p[] = {P_TEXT(w->id),          P_TEXT(w->tenant_id),
                           P_TEXT(w->url),         P_TEXT(w->description),
                           P_TEXT(w->event_types), P_BOOL(w->enabled),
                           P_TEXT(secret),         P_TIME(now)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    /* The count and the insert under the tenant's lock: two creates cannot both pass. */
    err = db_lock_tenant(&d, w->tenant_id);
    if (err == MC_ERR_OK)
        err = db_one_int(&d, "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $1", p + 1,
                         1, &count);
    if (err == MC_ERR_OK && count >= max)
        err = MC_ERR_LIMIT;
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                      "INSERT INTO webhook_endpoints (id, tenant_id, url, description, "
                      "event_types, enabled, secret, created_at, updated_at) SELECT $1, t.id, $3, "
                      "$4, $5, $6, $7, $8, $8 FROM tenants t WHERE t.id = $2 AND t.status <> "
                      "'deleted'",
                      p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK) {
        char id[MC_UUID_LEN + 1], tid[MC_UUID_LEN + 1];
        memcpy(id, w->id, sizeof(id));
        memcpy(tid, w->tenant_id, sizeof(tid));
        webhook_cleanup(w);
        err = wh_get(&d, tid, id, w);
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_put(&d);
    return err;
}

mc_err
store_webhook_get(struct store *st, const char *tenant_id, const char *id, struct webhook *out)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = wh_get(&d, tenant_id, id, out);
    db_put(&d);
    return err;
}

mc_err
store_webhook_list(struct store *st, const char *tenant_id, const struct page *pg,
                   struct webhook_vec *out)
{
    struct webhook_vec v = {0};
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    struct db_param p[] = {P_TEXT(tenant_id), P_INT(pg->limit), P_INT(pg->offset)};
    err = store_page(st, "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $1",
                     "SELECT " WH_COLS " FROM webhook_endpoints WHERE tenant_id = $1 "
                     "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                     p, 1, NPARAMS(p), wh_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
    if (err == MC_ERR_OK)
        *out = v;
    else
        webhook_vec_cleanup(&v);
    return err;
}

mc_err
store_webhook_update(struct store *st, const char *tenant_id, const char *id,
                     const struct webhook_patch *pt, struct webhook *out)
{
    int64_t now = time_now_us(), changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    /*
     * Re-enabling clears the reason and the failure clock: the operator
     * says the receiver works again.
     */
    struct db_param p[] = {P_TEXT(tenant_id),
                           P_TEXT(id),
                           P_TEXT(pt->url),
                           P_BOOL(pt->set_description),
                           P_TEXT(pt->description),
                           P_TEXT(pt->event_types),
                           P_INT(pt->has_enabled ? (pt->enabled ? 1 : 0) : -1),
                           P_TIME(now)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "UPDATE webhook_endpoints SET url = COALESCE($3, url), description = CASE WHEN "
                  "$4 THEN $5 ELSE description END, event_types = COALESCE($6, event_types), "
                  "enabled = CASE WHEN $7 = 1 THEN true WHEN $7 = 0 THEN false ELSE enabled END, "
                  "disabled_reason = CASE WHEN $7 >= 0 THEN NULL ELSE disabled_reason END, "
                  "failing_since = CASE WHEN $7 = 1 THEN NULL ELSE failing_since END, "
                  "updated_at = $8 WHERE tenant_id = $1 AND id = $2",
                  p, NPARAMS(p), &changes);
    err = updated_get(&d, err, changes, tenant_id, id, out);
    db_put(&d);
    return err;
}

mc_err
store_webhook_delete(struct store *st, const char *tenant_id, const char *id)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* The deliveries go with it (no foreign key: see migrations 0010). */
    if ((err = db_begin(&d, true)) == MC_ERR_OK)
        err = db_exec(&d, "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2", p,
                      NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes > 0)
        err = db_exec(&d, "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2",
                      p, NPARAMS(p), NULL);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    db_put(&d);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    return err;
}

mc_err
store_webhook_rotate(struct store *st, const char *tenant_id, const char *id, const char *secret,
                     int64_t grace_until, struct webhook *out)
{
    int64_t now = time_now_us(), changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id),          P_TEXT(secret),
                           P_TIME(grace_until), P_TIME(now), P_BOOL(grace_until != 0)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* No grace: the old secret stops signing at once. */
    err = db_exec(&d,
                  "UPDATE webhook_endpoints SET previous_secret = CASE WHEN $6 THEN secret END, "
                  "previous_expires_at = $4, secret = $3, updated_at = $5 "
                  "WHERE tenant_id = $1 AND id = $2",
                  p, NPARAMS(p), &changes);
    err = updated_get(&d, err, changes, tenant_id, id, out);
    db_put(&d);
    return err;
}

mc_err
store_webhook_test(struct store *st, const char *tenant_id, const char *id,
                   char event_id[MC_UUID_LEN + 1])
{
    int64_t now = time_now_us(), changes = 0;
    struct event_batch eb;
    struct webhook w = {0};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    db_events_init(&eb);
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = wh_get(&d, tenant_id, id, &w);
    if (err == MC_ERR_OK && !w.enabled)
        err = MC_ERR_STATE;
    if (err == MC_ERR_OK) {
        /* Tests still waiting for the endpoint are enough: no flood through it. */
        struct db_param pt[] = {P_TEXT(id)};
        int64_t waiting = 0;
        err = db_one_int(&d,
                         "SELECT COUNT(*) FROM webhook_deliveries q JOIN events e ON e.id = "
                         "q.event_id WHERE q.endpoint_id = $1 AND q.status IN ('pending', "
                         "'sending') AND e.type = 'webhook.test'",
                         pt, NPARAMS(pt), &waiting);
        if (err == MC_ERR_OK && waiting >= WEBHOOK_TESTS_WAITING_MAX)
            err = MC_ERR_LIMIT;
    }
    if (err == MC_ERR_OK) {
        db_events_add(&eb, tenant_id, "webhook.test", NULL,
                      json_pack("{s:s, s:s}", "webhook_id", id, "message",
                                "a test event from mailcast"));
        snprintf(event_id, MC_UUID_LEN + 1, "%s", eb.rows[0].id);
        err = db_events_write(&d, &eb, now);
    }
    if (err == MC_ERR_OK) {
        char did[MC_UUID_LEN + 1];
        crypto_uuid7(did);
        struct db_param p[] = {P_TEXT(did), P_TEXT(tenant_id), P_TEXT(id), P_TEXT(event_id),
                               P_TIME(now)};
        err = db_exec(&d,
                      "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, "
                      "status, attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, "
                      "$3, $4, 'pending', 0, $5, $5, $5)",
                      p, NPARAMS(p), &changes);
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_events_cleanup(&eb);
    webhook_cleanup(&w);
    db_put(&d);
    return err;
}

/* ---- the delivery list, retry and replay ---- */

void
webhook_delivery_vec_cleanup(struct webhook_delivery_vec *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->items[i].last_error);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void
dlv_row(struct db *d, struct db_res *r, void *out)
{
    struct webhook_delivery *x = out;
    const struct store_ops *o = d->ops;
    const char *t = o->col_text(r, 2), *s = o->col_text(r, 3);

    db_col_uuid(d, r, 0, x->id);
    db_col_uuid(d, r, 1, x->event_id);
    snprintf(x->event_type, sizeof(x->event_type), "%s", t ? t : "");
    snprintf(x->status, sizeof(x->status), "%s", s ? s : "");
    x->attempts = (int)o->col_int(r, 4);
    x->last_status_code = (int)o->col_int(r, 5);
    x->last_latency_ms = (int)o->col_int(r, 6);
    x->last_error = db_col_dup(d, r, 7);
    x->next_attempt_at = o->col_time(r, 8);
    x->last_attempt_at = o->col_time(r, 9);
    x->created_at = o->col_time(r, 10);
    x->completed_at = o->col_time(r, 11);
}

mc_err
store_webhook_deliveries(struct store *st, const char *tenant_id, const char *webhook_id,
                         const char *status, const struct page *pg,
                         struct webhook_delivery_vec *out)
{
    struct webhook_delivery_vec v = {0};
    struct webhook w = {0};
    mc_err err;

    if ((err = store_webhook_get(st, tenant_id, webhook_id, &w)) != MC_ERR_OK)
        return err;
    webhook_cleanup(&w);
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(webhook_id), P_TEXT(status),
                           P_INT(pg->limit), P_INT(pg->offset)};
#define DLV_WHERE                                                                             \
    " FROM webhook_deliveries x JOIN events e ON e.id = x.event_id WHERE x.tenant_id = $1 "   \
    "AND x.endpoint_id = $2 AND (CAST($3 AS TEXT) IS NULL OR x.status = $3)"
    err = store_page(st, "SELECT COUNT(*)" DLV_WHERE,
                     "SELECT x.id, x.event_id, e.type, x.status, x.attempts, "
                     "COALESCE(x.last_status_code, 0), COALESCE(x.last_latency_ms, 0), "
                     "x.last_error, CASE WHEN x.status = 'pending' THEN x.next_attempt_at END, "
                     "x.last_attempt_at, x.created_at, x.completed_at" DLV_WHERE
                     " ORDER BY x.id DESC LIMIT $4 OFFSET $5",
                     p, 3, NPARAMS(p), dlv_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
#undef DLV_WHERE
    if (err == MC_ERR_OK)
        *out = v;
    else
        webhook_delivery_vec_cleanup(&v);
    return err;
}

mc_err
store_webhook_delivery_retry(struct store *st, const char *tenant_id, const char *webhook_id,
                             const char *delivery_id)
{
    int64_t now = time_now_us(), changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(webhook_id) || !store_id_ok(delivery_id))
        return MC_ERR_NOT_FOUND;
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(webhook_id), P_TEXT(delivery_id),
                           P_TIME(now)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* A new round of attempts, due now; only a finished delivery (else STATE). */
    err = db_exec(&d,
                  "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                  "next_attempt_at = $4, completed_at = NULL, updated_at = $4 WHERE "
                  "tenant_id = $1 AND endpoint_id = $2 AND id = $3 AND status IN ('failed', "
                  "'succeeded')",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0) {
        int64_t one = 0;
        err = db_one_int(&d,
                         "SELECT 1 FROM webhook_deliveries WHERE tenant_id = $1 AND "
                         "endpoint_id = $2 AND id = $3",
                         p, 3, &one);
        if (err == MC_ERR_OK)
            err = MC_ERR_STATE;
    }
    db_put(&d);
    return err;
}

mc_err
store_webhook_replay(struct store *st, const char *tenant_id, const char *webhook_id,
                     int64_t from, int64_t to, int max, int64_t *queued)
{
    int64_t now = time_now_us(), changes = 0, count = 0;
    struct webhook w = {0};
    struct db d;
    mc_err err;

    *queued = 0;
    if (!store_id_ok(tenant_id) || !store_id_ok(webhook_id))
        return MC_ERR_NOT_FOUND;
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(webhook_id), P_TIME(from), P_TIME(to),
                           P_TIME(now), P_INT(max)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = wh_get(&d, tenant_id, webhook_id, &w);
    if (err == MC_ERR_OK && !w.enabled)
        err = MC_ERR_STATE;
    /* Events of the range the endpoint subscribes to, less those already waiting
     * for it (replaying twice queues nothing twice); too many is refused whole. */
#define REPLAY_FROM                                                                           \
    " FROM events e WHERE e.tenant_id = $1 AND e.created_at >= $3 AND e.created_at < $4 AND " \
    "e.type <> 'webhook.test' AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = $2 " \
    "AND (w.event_types = '*' OR w.event_types LIKE '%,' || e.type || ',%')) AND NOT EXISTS " \
    "(SELECT 1 FROM webhook_deliveries q WHERE q.endpoint_id = $2 AND q.event_id = e.id AND "  \
    "q.status IN ('pending', 'sending'))"
    if (err == MC_ERR_OK)
        err = db_one_int(&d, "SELECT COUNT(*)" REPLAY_FROM, p, 4, &count);
    if (err == MC_ERR_OK && count > max)
        err = MC_ERR_LIMIT;
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                      "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, "
                      "status, attempts, next_attempt_at, created_at, updated_at) SELECT "
                      "mc_uuid7(), $1, $2, e.id, 'pending', 0, $5, $5, $5" REPLAY_FROM
                      " AND $6 = $6",
                      p, NPARAMS(p), &changes);
#undef REPLAY_FROM
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    if (err == MC_ERR_OK)
        *queued = changes;
out:
    webhook_cleanup(&w);
    db_put(&d);
    return err;
}

/* ---- the sender's side ---- */

void
webhook_job_cleanup(struct webhook_job *j)
{
    if (j == NULL)
        return;
    free(j->url);
    free(j->body);
    if (j->secret)
        OPENSSL_cleanse(j->secret, strlen(j->secret));
    if (j->previous_secret)
        OPENSSL_cleanse(j->previous_secret, strlen(j->previous_secret));
    free(j->secret);
    free(j->previous_secret);
    memset(j, 0, sizeof(*j));
}

void
webhook_job_vec_cleanup(struct webhook_job_vec *v)
{
    for (int i = 0; i < v->n; i++)
        webhook_job_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

/* What sending a delivery needs (see job_row); the previous secret while its grace lasts. */
#define JOB_COLS                                                                              \
    "d.id, d.tenant_id, d.endpoint_id, d.event_id, d.attempts, w.url, w.secret, e.type, "     \
    "e.data, e.created_at, CASE WHEN w.previous_expires_at > $1 THEN w.previous_secret END"

/*
 * The claim takes, from every enabled endpoint, its oldest due deliveries
 * up to the room its cap leaves ($6 less what this sender holds of it,
 * $5), then the oldest $3 of those: one endpoint's backlog, however deep
 * and old, cannot keep another endpoint's deliveries out of the claim (a
 * plain "oldest $3 due" could hold nothing but a saturated endpoint's).
 * One index probe an enabled endpoint (idx_webhook_deliveries_endpoint_due,
 * migration 0020); endpoints are few (webhook_max_endpoints a tenant).
 * PostgreSQL claims and reads what sending needs in one statement (SQLite
 * cannot return columns of an UPDATE's FROM tables: a SELECT follows).
 */
static const char sql_claim_pg[] =
    "WITH busy AS (SELECT key::uuid AS endpoint_id, value::int AS n FROM "
    "jsonb_each_text($5::jsonb)), "
    "cand AS (SELECT x.id, x.next_attempt_at FROM webhook_endpoints w LEFT JOIN busy b "
    "ON b.endpoint_id = w.id CROSS JOIN LATERAL (SELECT y.id, y.next_attempt_at FROM "
    "webhook_deliveries y WHERE y.endpoint_id = w.id AND y.status = 'pending' AND "
    "y.next_attempt_at <= $1 ORDER BY y.next_attempt_at LIMIT GREATEST($6 - COALESCE(b.n, 0), 0) "
    "FOR UPDATE OF y SKIP LOCKED) x WHERE w.enabled ORDER BY x.next_attempt_at LIMIT $3) "
    "UPDATE webhook_deliveries d SET status = 'sending', lease_owner = $2, "
    "lease_expires_at = $4, attempts = d.attempts + 1, last_attempt_at = $1, updated_at = $1 "
    "FROM webhook_endpoints w, events e WHERE d.id = ANY(ARRAY(SELECT id FROM cand)) "
    "AND w.id = d.endpoint_id AND e.id = d.event_id RETURNING " JOB_COLS;
static const char sql_claim_sqlite[] =
    "UPDATE webhook_deliveries SET status = 'sending', lease_owner = $2, lease_expires_at = $4, "
    "attempts = attempts + 1, last_attempt_at = $1, updated_at = $1 WHERE id IN ("
    "SELECT id FROM (SELECT y.id, y.endpoint_id, y.next_attempt_at, row_number() OVER "
    "(PARTITION BY y.endpoint_id ORDER BY y.next_attempt_at, y.id) AS rn FROM webhook_endpoints w "
    "JOIN webhook_deliveries y ON y.id IN (SELECT z.id FROM webhook_deliveries z WHERE "
    "z.endpoint_id = w.id AND z.status = 'pending' AND z.next_attempt_at <= $1 ORDER BY "
    "z.next_attempt_at LIMIT $6) WHERE w.enabled) AS r WHERE r.rn <= $6 - COALESCE((SELECT "
    "b.value FROM json_each($5) b WHERE b.key = r.endpoint_id), 0) ORDER BY r.next_attempt_at "
    "LIMIT $3) RETURNING id";

static void
uuid_row(struct db *d, struct db_res *r, void *out)
{
    db_col_uuid(d, r, 0, out);
}

static void
job_row(struct db *d, struct db_res *r, void *out)
{
    struct webhook_job *j = out;
    const struct store_ops *o = d->ops;
    const char *type = o->col_text(r, 7), *data = o->col_text(r, 8);
    char ts[40];
    json_t *body, *dj;

    db_col_uuid(d, r, 0, j->id);
    db_col_uuid(d, r, 1, j->tenant_id);
    db_col_uuid(d, r, 2, j->endpoint_id);
    db_col_uuid(d, r, 3, j->event_id);
    j->attempts = (int)o->col_int(r, 4);
    j->url = db_col_dup(d, r, 5);
    j->secret = db_col_dup(d, r, 6);
    j->previous_secret = db_col_dup(d, r, 10);
    j->created_at = o->col_time(r, 9);
    /* The Standard Webhooks body: type, timestamp, data. */
    time_format_rfc3339(j->created_at, ts, sizeof(ts));
    dj = json_loads(data ? data : "{}", 0, NULL);
    body = json_pack("{s:s, s:s, s:o}", "type", type ? type : "", "timestamp", ts, "data",
                     dj ? dj : json_object());
    j->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
}

mc_err
store_webhook_claim(struct store *st, const char *owner, int64_t now, int64_t lease_us, int max,
                    int per_endpoint, const char *busy_json, struct webhook_job_vec *out)
{
    char(*ids)[MC_UUID_LEN + 1] = NULL;
    struct webhook_job_vec v = {0};
    json_t *arr = NULL;
    char *arr_s = NULL;
    int nids = 0;
    struct db d;
    mc_err err;

    memset(out, 0, sizeof(*out));
    struct db_param p[] = {P_TIME(now),    P_TEXT(owner),        P_INT(max),
                           P_TIME(now + lease_us), P_TEXT(busy_json), P_INT(per_endpoint)};
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_plans_generic(&d);
    if (err == MC_ERR_OK && d.ops->dialect == DB_PG)
        err = db_fetch_all(&d, sql_claim_pg, p, NPARAMS(p), job_row, sizeof(*v.items),
                           (void **)&v.items, &v.n);
    else if (err == MC_ERR_OK)
        err = db_fetch_all(&d, sql_claim_sqlite, p, NPARAMS(p), uuid_row, sizeof(*ids),
                           (void **)&ids, &nids);
    if (err == MC_ERR_OK && nids > 0) {
        arr = json_array();
        for (int i = 0; i < nids; i++)
            json_array_append_new(arr, json_string(ids[i]));
        arr_s = json_dumps(arr, JSON_COMPACT);
        struct db_param pj[] = {P_TIME(now), P_TEXT(arr_s)};
        err = db_fetch_all(&d,
                           "SELECT " JOB_COLS " FROM webhook_deliveries d JOIN webhook_endpoints w "
                           "ON w.id = d.endpoint_id JOIN events e ON e.id = d.event_id "
                           "WHERE d.id IN (SELECT value FROM json_each($2))",
                           pj, NPARAMS(pj), job_row, sizeof(*v.items), (void **)&v.items, &v.n);
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    if (err == MC_ERR_OK) {
        *out = v;
        memset(&v, 0, sizeof(v));
    }
out:
    webhook_job_vec_cleanup(&v);
    json_decref(arr);
    free(arr_s);
    free(ids);
    db_put(&d);
    return err;
}


/* What a flush's results say about one endpoint. */
struct endpoint_news {
    const char *id; /* borrowed from the results */
    bool ok, gone, failed;
};

/* The endpoint's health from a flush: one update or two per endpoint, not per result. */
static mc_err
endpoint_update(struct db *d, const struct endpoint_news *e, int64_t now, int64_t disable_after_us)
{
    struct db_param p[] = {P_TEXT(e->id), P_TIME(now), P_TIME(now - disable_after_us)};
    int64_t off = 0;
    mc_err err = MC_ERR_OK;

    /* A success resets the failure clock, whatever else happened in the flush. */
    if (e->ok)
        err = db_exec(d,
                      "UPDATE webhook_endpoints SET last_success_at = $2, failing_since = NULL "
                      "WHERE id = $1 AND $3 = $3",
                      p, NPARAMS(p), NULL);
    else if (e->failed || e->gone)
        err = db_exec(d,
                      "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) "
                      "WHERE id = $1 AND $3 = $3",
                      p, NPARAMS(p), NULL);
    if (err == MC_ERR_OK && e->gone) {
        err = db_exec(d,
                      "UPDATE webhook_endpoints SET enabled = false, disabled_reason = "
                      "'the endpoint answered 410 Gone', updated_at = $2 WHERE id = $1 "
                      "AND enabled AND $3 = $3",
                      p, NPARAMS(p), &off);
        if (err == MC_ERR_OK && off > 0)
            log_warn("event=webhook_disabled endpoint=%s reason=gone", e->id);
    } else if (err == MC_ERR_OK && !e->ok) {
        err = db_exec(d,
                      "UPDATE webhook_endpoints SET enabled = false, disabled_reason = "
                      "'failing without a success for too long', updated_at = $2 "
                      "WHERE id = $1 AND enabled AND failing_since <= $3",
                      p, NPARAMS(p), &off);
        if (err == MC_ERR_OK && off > 0)
            log_warn("event=webhook_disabled endpoint=%s reason=failing", e->id);
    }
    return err;
}

/*
 * A flush's results in one statement (as the delivery worker records its
 * 'sent' outcomes): joined on the primary key, fenced on owner, attempt and
 * 'sending'; RETURNING says which took effect.  PostgreSQL takes columns as
 * arrays and names the ids with = ANY as well: the generic plan (see
 * db_plans_generic) of a join with a function's rows otherwise scanned the
 * whole table per flush (its estimate of "this owner's 'sending' rows" is
 * one row), a cost that grew with every delivery kept.
 */
static const char sql_record_pg[] =
    "UPDATE webhook_deliveries d SET status = x.status, lease_owner = NULL, "
    "lease_expires_at = NULL, last_status_code = x.code, last_latency_ms = x.ms, "
    "last_error = x.err, next_attempt_at = COALESCE(x.next, $2), updated_at = $2, "
    "completed_at = CASE WHEN x.status = 'pending' THEN d.completed_at ELSE $2 END "
    "FROM unnest($3::uuid[], $4::int[], $5::text[], $6::int[], $7::int[], $8::text[], "
    "$9::timestamptz[]) AS x(id, attempts, status, code, ms, err, next) "
    "WHERE d.id = ANY($3::uuid[]) AND d.id = x.id AND d.lease_owner = $1 "
    "AND d.attempts = x.attempts AND d.status = 'sending' RETURNING d.id";
#define RECORD_NCOLS 7
static const char sql_record_sqlite[] =
    "UPDATE webhook_deliveries SET status = x.status, lease_owner = NULL, "
    "lease_expires_at = NULL, last_status_code = x.code, last_latency_ms = x.ms, "
    "last_error = x.err, next_attempt_at = COALESCE(x.next, $2), updated_at = $2, "
    "completed_at = CASE WHEN x.status = 'pending' THEN webhook_deliveries.completed_at "
    "ELSE $2 END FROM (SELECT value ->> '$.id' AS id, value ->> '$.attempts' AS attempts, "
    "value ->> '$.status' AS status, value ->> '$.code' AS code, value ->> '$.ms' AS ms, "
    "value ->> '$.err' AS err, value ->> '$.next' AS next FROM json_each($3)) AS x "
    "WHERE webhook_deliveries.id = x.id AND webhook_deliveries.lease_owner = $1 "
    "AND webhook_deliveries.attempts = x.attempts AND webhook_deliveries.status = 'sending' "
    "RETURNING webhook_deliveries.id";

mc_err
store_webhook_record(struct store *st, const char *owner, int64_t now,
                     const struct webhook_result *res, int n, int64_t disable_after_us)
{
    char(*done)[MC_UUID_LEN + 1] = NULL;
    struct endpoint_news *news = NULL;
    struct buf a[RECORD_NCOLS]; /* PostgreSQL's columns */
    json_t *arr = json_array(); /* SQLite's rows */
    int nnews = 0, ndone = 0;
    char *arr_s = NULL;
    bool pg;
    struct db d;
    mc_err err;

    if (n == 0) {
        json_decref(arr);
        return MC_ERR_OK;
    }
    if ((err = db_get(st, &d)) != MC_ERR_OK) {
        json_decref(arr);
        return err;
    }
    pg = d.ops->dialect == DB_PG;
    for (int k = 0; k < RECORD_NCOLS; k++)
        buf_init(&a[k], 0);
    for (int i = 0; i < n; i++) {
        const struct webhook_result *x = &res[i];
        bool ok = x->kind == WH_RESULT_OK;
        const char *status = ok ? "succeeded" : x->next_attempt_at ? "pending" : "failed";
        char t[40] = "", att[24], code[24], ms[24];
        if (!ok && x->next_attempt_at)
            time_format_rfc3339(x->next_attempt_at, t, sizeof(t));
        if (pg) {
            snprintf(att, sizeof(att), "%d", x->attempts);
            snprintf(code, sizeof(code), "%d", x->status_code);
            snprintf(ms, sizeof(ms), "%d", x->latency_ms);
            const char *v[RECORD_NCOLS] = {x->id, att, status, x->status_code ? code : NULL, ms,
                                           x->error[0] ? x->error : NULL, t[0] ? t : NULL};
            for (int k = 0; k < RECORD_NCOLS; k++)
                db_pg_array_put(&a[k], v[k]);
            continue;
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:i, s:s, s:o, s:i, s:o, s:o}", "id", x->id, "attempts",
                           x->attempts, "status", status, "code",
                           x->status_code ? json_integer(x->status_code) : json_null(), "ms",
                           x->latency_ms, "err", x->error[0] ? json_string(x->error) : json_null(),
                           "next", t[0] ? json_integer(x->next_attempt_at) : json_null()));
    }
    struct db_param p[3 + RECORD_NCOLS - 1] = {P_TEXT(owner), P_TIME(now)};
    if (pg) {
        for (int k = 0; k < RECORD_NCOLS; k++) {
            buf_putc(&a[k], '}');
            p[2 + k] = P_TEXT(a[k].data);
        }
    } else {
        arr_s = json_dumps(arr, JSON_COMPACT);
        p[2] = P_TEXT(arr_s);
    }
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_plans_generic(&d);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d, pg ? sql_record_pg : sql_record_sqlite, p, pg ? 2 + RECORD_NCOLS : 3,
                           uuid_row, sizeof(*done), (void **)&done, &ndone);
    news = xcalloc((size_t)n, sizeof(*news));
    for (int i = 0; i < n && err == MC_ERR_OK; i++) {
        const struct webhook_result *x = &res[i];
        bool applied = false;
        for (int k = 0; k < ndone && !applied; k++)
            applied = strcmp(done[k], x->id) == 0;
        if (!applied) {
            log_warn("event=webhook_fenced_out delivery=%s attempt=%d", x->id, x->attempts);
            continue;
        }
        int k = 0;
        while (k < nnews && strcmp(news[k].id, x->endpoint_id) != 0)
            k++;
        if (k == nnews)
            news[nnews++].id = x->endpoint_id;
        news[k].ok |= x->kind == WH_RESULT_OK;
        news[k].gone |= x->kind == WH_RESULT_GONE;
        news[k].failed |= x->kind == WH_RESULT_FAIL;
    }
    for (int k = 0; k < nnews && err == MC_ERR_OK; k++)
        err = endpoint_update(&d, &news[k], now, disable_after_us);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    for (int k = 0; k < RECORD_NCOLS; k++)
        buf_cleanup(&a[k]);
    free(news);
    free(done);
    free(arr_s);
    json_decref(arr);
    db_put(&d);
    return err;
}

mc_err
store_webhook_release(struct store *st, const char *owner, int64_t now,
                      const struct webhook_job *jobs, int njobs, int *n)
{
    int64_t total = 0;
    struct db d;
    mc_err err;

    if (n)
        *n = 0;
    if (njobs == 0)
        return MC_ERR_OK;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /*
     * Rare (a stop, a job kept too long): one statement each, in one
     * transaction.  The claim wrote last_attempt_at for an attempt never
     * made: it goes back to NULL, as a released message's does.
     */
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    for (int i = 0; i < njobs && err == MC_ERR_OK; i++) {
        struct db_param p[] = {P_TEXT(jobs[i].id), P_TEXT(owner), P_INT(jobs[i].attempts),
                               P_TIME(now)};
        int64_t changes = 0;
        err = db_exec(&d,
                      "UPDATE webhook_deliveries SET status = 'pending', lease_owner = NULL, "
                      "lease_expires_at = NULL, attempts = attempts - 1, next_attempt_at = $4, "
                      "last_attempt_at = NULL, updated_at = $4 WHERE id = $1 "
                      "AND lease_owner = $2 AND attempts = $3 "
                      "AND status = 'sending'",
                      p, NPARAMS(p), &changes);
        total += changes;
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    if (err == MC_ERR_OK && n)
        *n = (int)total;
out:
    db_put(&d);
    return err;
}

mc_err
store_webhook_recover(struct store *st, int64_t now, int *n)
{
    struct db_param p[] = {P_TIME(now)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    *n = 0;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* The attempt counted at the claim stays counted: the receiver may have had it. */
    err = db_exec(&d,
                  "UPDATE webhook_deliveries SET status = 'pending', lease_owner = NULL, "
                  "lease_expires_at = NULL, next_attempt_at = $1, updated_at = $1 "
                  "WHERE status = 'sending' AND lease_expires_at < $1",
                  p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes > 0) {
        *n = (int)changes;
        log_warn("event=webhook_lease_expired n=%lld", (long long)changes);
    }
    return err;
}
