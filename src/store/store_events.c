/*
 * store_events.c - the event log: events gathered by the store functions
 * that make the changes, written in those functions' transactions; the
 * list endpoint's query, the campaign's message list and retention.
 *
 * It does not deliver anything: store_webhooks.c claims and records the
 * deliveries queued here, src/webhook/ sends them.
 *
 * DESIGN
 * The log is an outbox.  A store function that changes state adds its
 * events to an event_batch and db_events_write() inserts them, in the same
 * transaction, in one multi-row INSERT from a JSON array (SQLite json_each,
 * PostgreSQL jsonb_to_recordset), followed by one INSERT ... SELECT that
 * queues a webhook delivery per (event, enabled endpoint of its tenant
 * subscribed to its type).  So an event, and each delivery of it, exists
 * exactly when its change committed: a crash can neither lose nor invent
 * one, and the delivery worker's group commit stays one statement per
 * flush for its events as for its 'sent' outcomes.
 *
 * Ids are UUID version 7 made here (crypto_uuid7): time-ordered, so the
 * primary key is the list's cursor and the retention sweep's bound.  Ids
 * made by concurrent transactions may commit out of order, so a reader
 * polling with ?after= may see a late event behind its cursor: the log is
 * for looking up and auditing; webhooks (queued in the transaction) are the
 * complete feed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

static const char *const type_names[] = {
    "message.sent",        "message.deferred",      "message.failed",
    "message.bounced",     "message.complained",    "message.suppressed",
    "recipient.unsubscribed", "suppression.created", "suppression.deleted",
    "campaign.scheduled",  "campaign.started",      "campaign.paused",
    "campaign.resumed",    "campaign.cancelled",    "campaign.completed",
    "campaign.failed",     "webhook.test",
};

bool
event_type_valid(const char *s)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (s != NULL && strcmp(s, type_names[i]) == 0)
            return true;
    return false;
}

void
db_events_init(struct event_batch *b)
{
    b->rows = json_array();
    b->n = 0;
}

void
db_events_cleanup(struct event_batch *b)
{
    json_decref(b->rows);
    b->rows = NULL;
    b->n = 0;
}

static json_t *
id_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

void
db_events_add(struct event_batch *b, const char *tenant_id, const char *type,
              const struct event_ref *ref, void *data)
{
    static const struct event_ref none = {0};
    json_t *d = data ? data : json_object();
    char id[MC_UUID_LEN + 1];
    char *lc = NULL;

    if (ref == NULL)
        ref = &none;
    crypto_uuid7(id);
    /* The ids an integration acts on come first in data, whatever the type. */
    if (ref->campaign_id && *ref->campaign_id)
        json_object_set_new(d, "campaign_id", json_string(ref->campaign_id));
    if (ref->message_id && *ref->message_id)
        json_object_set_new(d, "message_id", json_string(ref->message_id));
    if (ref->recipient_id && *ref->recipient_id)
        json_object_set_new(d, "recipient_id", json_string(ref->recipient_id));
    if (ref->email && *ref->email) {
        json_object_set_new(d, "email", json_string(ref->email));
        lc = xstrdup(ref->email);
        for (char *p = lc; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    json_array_append_new(b->rows,
                          json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id", id, "t",
                                    tenant_id, "type", type, "c", id_or_null(ref->campaign_id),
                                    "m", id_or_null(ref->message_id), "r",
                                    id_or_null(ref->recipient_id), "e", id_or_null(lc), "d", d));
    free(lc);
    b->n++;
}

static const char sql_ins_sqlite[] =
    "INSERT INTO events (id, tenant_id, type, campaign_id, message_id, recipient_id, email_lc, "
    "data, created_at) SELECT value ->> '$.id', value ->> '$.t', value ->> '$.type', "
    "value ->> '$.c', value ->> '$.m', value ->> '$.r', value ->> '$.e', value -> '$.d', $2 "
    "FROM json_each($1)";
static const char sql_ins_pg[] =
    "INSERT INTO events (id, tenant_id, type, campaign_id, message_id, recipient_id, email_lc, "
    "data, created_at) SELECT x.id, x.t, x.type, x.c, x.m, x.r, x.e, x.d, $2 "
    "FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, t uuid, type text, c uuid, m uuid, "
    "r uuid, e text, d jsonb)";
/* webhook.test goes only to the endpoint tested (store_webhook_test). */
#define FANOUT_TAIL                                                                           \
    " JOIN webhook_endpoints w ON w.tenant_id = x.t AND w.enabled AND x.type <> 'webhook.test' " \
    "AND (w.event_types = '*' OR w.event_types LIKE '%,' || x.type || ',%')"
static const char sql_fanout_sqlite[] =
    "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, status, attempts, "
    "next_attempt_at, created_at, updated_at) SELECT mc_uuid7(), w.tenant_id, w.id, x.id, "
    "'pending', 0, $2, $2, $2 FROM (SELECT value ->> '$.id' AS id, value ->> '$.t' AS t, "
    "value ->> '$.type' AS type FROM json_each($1)) AS x" FANOUT_TAIL;
static const char sql_fanout_pg[] =
    "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, status, attempts, "
    "next_attempt_at, created_at, updated_at) SELECT mc_uuid7(), w.tenant_id, w.id, x.id, "
    "'pending', 0, $2, $2, $2 FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, t uuid, "
    "type text)" FANOUT_TAIL;

mc_err
db_events_write(struct db *d, struct event_batch *b, int64_t now)
{
    bool pg = d->ops->dialect == DB_PG;
    char *s;
    mc_err err;

    if (b->n == 0)
        return MC_ERR_OK;
    s = json_dumps(b->rows, JSON_COMPACT);
    if (s == NULL)
        abort();
    struct db_param p[] = {P_TEXT(s), P_TIME(now)};
    err = db_exec(d, pg ? sql_ins_pg : sql_ins_sqlite, p, NPARAMS(p), NULL);
    if (err == MC_ERR_OK)
        err = db_exec(d, pg ? sql_fanout_pg : sql_fanout_sqlite, p, NPARAMS(p), NULL);
    free(s);
    json_array_clear(b->rows);
    b->n = 0;
    return err;
}

struct msg_ref {
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char *email;
};

static void
msg_ref_row(struct db *d, struct db_res *r, void *out)
{
    struct msg_ref *m = out;

    db_col_uuid(d, r, 0, m->campaign_id);
    db_col_uuid(d, r, 1, m->recipient_id);
    m->email = db_col_dup(d, r, 2);
}

mc_err
db_event_message(struct db *d, const char *tenant_id, const char *msg_id, const char *type,
                 const void *detail, int64_t now)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(msg_id)};
    struct msg_ref m = {0};
    struct event_batch b;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(msg_id) || !event_type_valid(type))
        return MC_ERR_NOT_FOUND;
    err = db_fetch_one(d,
                       "SELECT campaign_id, recipient_id, to_address FROM scheduled_messages "
                       "WHERE tenant_id = $1 AND id = $2",
                       p, NPARAMS(p), msg_ref_row, &m);
    if (err != MC_ERR_OK)
        goto out;
    db_events_init(&b);
    json_t *data = detail ? json_deep_copy((const json_t *)detail) : json_object();
    struct event_ref ref = {m.campaign_id, msg_id, m.recipient_id, m.email};
    db_events_add(&b, tenant_id, type, &ref, data);
    err = db_events_write(d, &b, now);
    db_events_cleanup(&b);
out:
    free(m.email);
    return err;
}

/* ---- reading the log ---- */

void
event_vec_cleanup(struct event_vec *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->items[i].data);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void
event_row(struct db *d, struct db_res *r, void *out)
{
    struct event *e = out;
    const char *t = d->ops->col_text(r, 1);

    db_col_uuid(d, r, 0, e->id);
    snprintf(e->type, sizeof(e->type), "%s", t ? t : "");
    e->data = db_col_dup(d, r, 2);
    e->created_at = d->ops->col_time(r, 3);
}

mc_err
store_event_list(struct store *st, const char *tenant_id, const struct event_filter *f,
                 struct event_vec *out)
{
    struct event_vec v = {0};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((f->after && !store_id_ok(f->after)) || (f->campaign_id && !store_id_ok(f->campaign_id)))
        return MC_ERR_INVALID;
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(f->after), P_TEXT(f->type),
                           P_TEXT(f->campaign_id), P_TEXT(f->email_lc), P_INT(f->limit)};
    /* Each filter is "param IS NULL OR column = param", so one statement per order. */
#define EV_WHERE(UUID)                                                                        \
    " FROM events WHERE tenant_id = $1 AND (CAST($3 AS TEXT) IS NULL OR type = $3) "          \
    "AND (" UUID("$4") " IS NULL OR campaign_id = $4) AND (CAST($5 AS TEXT) IS NULL OR "      \
    "email_lc = $5) AND (" UUID("$2") " IS NULL OR "
#define AS_IS(x) x
#define AS_UUID(x) "CAST(" x " AS uuid)"
    static const char asc[] = "SELECT id, type, data, created_at" EV_WHERE(AS_IS)
        "id > $2) ORDER BY id LIMIT $6";
    static const char desc[] = "SELECT id, type, data, created_at" EV_WHERE(AS_IS)
        "id < $2) ORDER BY id DESC LIMIT $6";
    static const char asc_pg[] = "SELECT id, type, data, created_at" EV_WHERE(AS_UUID)
        "id > $2) ORDER BY id LIMIT $6";
    static const char desc_pg[] = "SELECT id, type, data, created_at" EV_WHERE(AS_UUID)
        "id < $2) ORDER BY id DESC LIMIT $6";
#undef AS_IS
#undef AS_UUID
#undef EV_WHERE
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    {
        int64_t one = 0;
        err = db_one_int(&d, "SELECT 1 FROM tenants WHERE id = $1 AND status <> 'deleted'", p, 1,
                         &one);
    }
    if (err == MC_ERR_OK) {
        const char *sql = d.ops->dialect == DB_PG ? (f->ascending ? asc_pg : desc_pg)
                                                  : (f->ascending ? asc : desc);
        err = db_fetch_all(&d, sql, p, NPARAMS(p), event_row, sizeof(*v.items),
                           (void **)&v.items, &v.n);
    }
    db_put(&d);
    if (err == MC_ERR_OK)
        *out = v;
    else
        event_vec_cleanup(&v);
    return err;
}

/*
 * The smallest id a UUID version 7 made at or after us can have: its
 * leading 48 bits are the Unix milliseconds.
 */
static void
uuid7_floor(int64_t us, char out[MC_UUID_LEN + 1])
{
    uint64_t ms = (uint64_t)(us / 1000);

    snprintf(out, MC_UUID_LEN + 1, "%08x-%04x-0000-0000-000000000000",
             (unsigned)((ms >> 16) & 0xffffffffu), (unsigned)(ms & 0xffffu));
}

mc_err
store_event_prune(struct store *st, int64_t before, int batch, int *n)
{
    char bound[MC_UUID_LEN + 1];
    int64_t changes = 0;
    struct db d;
    mc_err err;

    uuid7_floor(before, bound);
    struct db_param p[] = {P_TEXT(bound), P_INT(batch)};
    *n = 0;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /*
     * One small batch of each, in primary-key order: short transactions
     * however old the log.  Deliveries first (their ids are time-ordered
     * too, and never older than their event), then the events; then any
     * pending delivery whose event is gone (a replay of an event that just
     * expired), which could never be sent.
     */
    err = db_exec(&d,
                  "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
                  "WHERE id < $1 ORDER BY id LIMIT $2)",
                  p, NPARAMS(p), NULL);
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                      "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < $1 "
                      "ORDER BY id LIMIT $2)",
                      p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes > 0)
        err = db_exec(&d,
                      "DELETE FROM webhook_deliveries WHERE id IN (SELECT x.id FROM "
                      "webhook_deliveries x WHERE x.status = 'pending' AND NOT EXISTS (SELECT 1 "
                      "FROM events e WHERE e.id = x.event_id) AND $1 = $1 LIMIT $2)",
                      p, NPARAMS(p), NULL);
    db_put(&d);
    if (err == MC_ERR_OK)
        *n = (int)changes;
    return err;
}

/* ---- a campaign's messages ---- */

void
message_vec_cleanup(struct message_vec *v)
{
    for (int i = 0; i < v->n; i++) {
        free(v->items[i].email);
        free(v->items[i].last_error);
        free(v->items[i].relay_queue_id);
    }
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void
message_row(struct db *d, struct db_res *r, void *out)
{
    struct message_info *m = out;
    const char *s = d->ops->col_text(r, 3);

    db_col_uuid(d, r, 0, m->id);
    db_col_uuid(d, r, 1, m->recipient_id);
    m->email = db_col_dup(d, r, 2);
    snprintf(m->status, sizeof(m->status), "%s", s ? s : "");
    m->attempts = (int)d->ops->col_int(r, 4);
    m->last_reply_code = (int)d->ops->col_int(r, 5);
    m->last_error = db_col_dup(d, r, 6);
    m->relay_queue_id = db_col_dup(d, r, 7);
    m->sent_at = d->ops->col_time(r, 8);
    m->failed_at = d->ops->col_time(r, 9);
    m->next_attempt_at = d->ops->col_time(r, 10);
    m->created_at = d->ops->col_time(r, 11);
}

mc_err
store_campaign_messages(struct store *st, const char *tenant_id, const char *campaign_id,
                        const char *status, const char *email_lc, const struct page *pg,
                        struct message_vec *out)
{
    struct message_vec v = {0};
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id) || !store_id_ok(campaign_id))
        return MC_ERR_NOT_FOUND;
    {
        struct db_param pc[] = {P_TEXT(tenant_id), P_TEXT(campaign_id)};
        int64_t one = 0;
        if ((err = db_get(st, &d)) != MC_ERR_OK)
            return err;
        err = db_one_int(&d, "SELECT 1 FROM campaigns WHERE tenant_id = $1 AND id = $2", pc,
                         NPARAMS(pc), &one);
        db_put(&d);
        if (err != MC_ERR_OK)
            return err;
    }
    struct db_param p[] = {P_TEXT(tenant_id),    P_TEXT(campaign_id), P_TEXT(status),
                           P_TEXT(email_lc),     P_INT(pg->limit),    P_INT(pg->offset)};
#define MSG_WHERE                                                                             \
    " FROM scheduled_messages WHERE tenant_id = $1 AND campaign_id = $2 AND "                \
    "(CAST($3 AS TEXT) IS NULL OR status = $3) AND "                                           \
    "(CAST($4 AS TEXT) IS NULL OR lower(to_address) = $4)"
    err = store_page(st, "SELECT COUNT(*)" MSG_WHERE,
                     "SELECT id, recipient_id, to_address, status, attempts, "
                     "COALESCE(last_reply_code, 0), last_error, relay_queue_id, sent_at, "
                     "CASE WHEN status IN ('failed', 'bounced') THEN updated_at END, "
                     "CASE WHEN status = 'pending' THEN next_attempt_at END, created_at" MSG_WHERE
                     " ORDER BY id LIMIT $5 OFFSET $6",
                     p, 4, NPARAMS(p), message_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
#undef MSG_WHERE
    if (err == MC_ERR_OK)
        *out = v;
    else
        message_vec_cleanup(&v);
    return err;
}
