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
 * events to an event_batch (columns and the data text, no jansson object
 * kept) and db_events_write() inserts them in the same transaction, with an
 * INSERT ... SELECT that queues a webhook delivery per (event, enabled
 * endpoint of its tenant subscribed to its type).  SQLite: a cached INSERT
 * bound per row, the fan-out per row only for a tenant found to have an
 * enabled endpoint (one look-up per tenant of the batch, inside the
 * transaction, so an endpoint created concurrently is either seen or
 * committed after the batch).  PostgreSQL: one statement per batch, the
 * columns as arrays through unnest and the fan-out in the same statement.
 * So an event, and each delivery of it, exists exactly when its change
 * committed: a crash can neither lose nor invent one.
 *
 * Ids are UUID version 7 made here (crypto_uuid7): time-ordered, so the
 * primary key is the list's cursor and the retention sweep's bound.  Ids
 * made by concurrent transactions may commit out of order, so a reader
 * polling with ?after= may see a late event behind its cursor: the log is
 * for looking up and auditing; webhooks (queued in the transaction) are the
 * complete feed.
 */
#include <ctype.h>
#include <stddef.h>
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
    memset(b, 0, sizeof(*b));
}

void
db_events_cleanup(struct event_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->rows[i].email_lc);
        free(b->rows[i].data);
    }
    free(b->rows);
    memset(b, 0, sizeof(*b));
}

/* True when s (NUL-terminated) is printable ASCII: most ids, addresses and replies. */
static bool
plain_ascii(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p >= 0x20 && *p < 0x7f)
        p++;
    return *p == '\0';
}

const char *
db_utf8_or_null(const char *s)
{
    json_t *v;

    if (s == NULL || *s == '\0')
        return NULL;
    if (plain_ascii(s))
        return s;
    v = json_string(s);
    json_decref(v);
    return v ? s : NULL;
}

void
db_json_string_put(struct buf *b, const char *s)
{
    const unsigned char *p;
    json_t *v;
    char *t;

    if (s == NULL) {
        buf_puts(b, "null");
        return;
    }
    /* Printable ASCII: quoted here. */
    if (plain_ascii(s)) {
        buf_putc(b, '"');
        for (p = (const unsigned char *)s; *p; p++) {
            if (*p == '"' || *p == '\\')
                buf_putc(b, '\\');
            buf_putc(b, (char)*p);
        }
        buf_putc(b, '"');
        return;
    }
    /* Anything else as jansson writes it (null when it is not UTF-8). */
    v = json_string(s);
    t = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    buf_puts(b, t ? t : "null");
    free(t);
    json_decref(v);
}

static void
id_put(char out[MC_UUID_LEN + 1], const char *s)
{
    snprintf(out, MC_UUID_LEN + 1, "%s", s ? s : "");
}

void
db_events_add_text(struct event_batch *b, const char *tenant_id, const char *type,
                   const struct event_ref *ref, const char *fields)
{
    static const struct event_ref none = {0};
    /* The ids an integration acts on come first in data, whatever the type. */
    static const struct {
        const char *key;
        size_t off;
    } ids[] = {
        {"\"campaign_id\":", offsetof(struct event_ref, campaign_id)},
        {"\"message_id\":", offsetof(struct event_ref, message_id)},
        {"\"recipient_id\":", offsetof(struct event_ref, recipient_id)},
        {"\"email\":", offsetof(struct event_ref, email)},
    };
    struct event_row *e;
    struct buf d;
    bool first = true;

    if (ref == NULL)
        ref = &none;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->rows = xrealloc(b->rows, (size_t)b->cap * sizeof(*b->rows));
    }
    e = &b->rows[b->n++];
    memset(e, 0, sizeof(*e));
    crypto_uuid7(e->id);
    id_put(e->tenant_id, tenant_id);
    snprintf(e->type, sizeof(e->type), "%s", type);
    id_put(e->campaign_id, ref->campaign_id);
    id_put(e->message_id, ref->message_id);
    id_put(e->recipient_id, ref->recipient_id);
    buf_init(&d, 0);
    buf_putc(&d, '{');
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const char *v = *(const char *const *)((const char *)ref + ids[i].off);
        if (v == NULL || *v == '\0')
            continue;
        if (!first)
            buf_putc(&d, ',');
        first = false;
        buf_puts(&d, ids[i].key);
        db_json_string_put(&d, v);
    }
    if (fields && *fields) {
        if (!first)
            buf_putc(&d, ',');
        buf_puts(&d, fields);
    }
    buf_putc(&d, '}');
    e->data = buf_steal(&d);
    if (ref->email && *ref->email) {
        e->email_lc = xstrdup(ref->email);
        for (char *p = e->email_lc; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
}

void
db_events_add(struct event_batch *b, const char *tenant_id, const char *type,
              const struct event_ref *ref, void *data)
{
    char *s = data ? json_dumps((json_t *)data, JSON_COMPACT) : NULL;
    size_t n = s ? strlen(s) : 0;

    /* Its members without the braces: "{...}" -> "...". */
    if (n >= 2) {
        s[n - 1] = '\0';
        db_events_add_text(b, tenant_id, type, ref, s + 1);
    } else {
        db_events_add_text(b, tenant_id, type, ref, NULL);
    }
    free(s);
    json_decref((json_t *)data);
}

/*
 * SQLite: one cached INSERT bound per row (no JSON to build and take apart),
 * and the fan-out, per row too, only for a tenant that has an enabled
 * endpoint: looked up once per tenant of the batch, in the transaction.
 */
static const char sql_ins_sqlite[] =
    "INSERT INTO events (id, tenant_id, type, campaign_id, message_id, recipient_id, email_lc, "
    "data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
static const char sql_has_endpoint_sqlite[] =
    "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $1 AND enabled";
/* webhook.test goes only to the endpoint tested (store_webhook_test). */
#define FANOUT_WHERE(T, TYPE)                                                                 \
    " w.tenant_id = " T " AND w.enabled AND " TYPE " <> 'webhook.test' AND (w.event_types = "  \
    "'*' OR w.event_types LIKE '%,' || " TYPE " || ',%')"
static const char sql_fanout_sqlite[] =
    "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, status, attempts, "
    "next_attempt_at, created_at, updated_at) SELECT mc_uuid7(), w.tenant_id, w.id, $1, "
    "'pending', 0, $4, $4, $4 FROM webhook_endpoints w WHERE" FANOUT_WHERE("$2", "$3");
/*
 * PostgreSQL: one statement per batch, the columns as arrays (cheaper to
 * take apart than a JSON document), and the fan-out from the same rows in
 * the same statement.
 */
static const char sql_ins_pg[] =
    "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], "
    "$5::uuid[], $6::uuid[], $7::text[], $8::text[]) AS x(id, t, type, c, m, r, e, d)), "
    "ins AS (INSERT INTO events (id, tenant_id, type, campaign_id, message_id, recipient_id, "
    "email_lc, data, created_at) SELECT id, t, type, c, m, r, e, d::jsonb, $9 FROM x) "
    "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, status, attempts, "
    "next_attempt_at, created_at, updated_at) SELECT mc_uuid7(), w.tenant_id, w.id, x.id, "
    "'pending', 0, $9, $9, $9 FROM x JOIN webhook_endpoints w ON" FANOUT_WHERE("x.t", "x.type");

static const char *
or_null(const char *s)
{
    return s && *s ? s : NULL;
}

static mc_err
write_sqlite(struct db *d, struct event_batch *b, int64_t now)
{
    /* The batch's tenants, and whether each has an enabled endpoint. */
    const char *tenants[8];
    bool hooked[8];
    int nt = 0;
    mc_err err = MC_ERR_OK;

    for (int i = 0; i < b->n && err == MC_ERR_OK; i++) {
        const struct event_row *e = &b->rows[i];
        struct db_param p[] = {P_TEXT(e->id),
                               P_TEXT(e->tenant_id),
                               P_TEXT(e->type),
                               P_TEXT(or_null(e->campaign_id)),
                               P_TEXT(or_null(e->message_id)),
                               P_TEXT(or_null(e->recipient_id)),
                               P_TEXT(e->email_lc),
                               P_TEXT(e->data),
                               P_TIME(now)};
        bool hook = true;
        int k;

        err = db_exec(d, sql_ins_sqlite, p, NPARAMS(p), NULL);
        for (k = 0; k < nt && strcmp(tenants[k], e->tenant_id) != 0; k++)
            ;
        if (err == MC_ERR_OK && k < nt) {
            hook = hooked[k];
        } else if (err == MC_ERR_OK) {
            int64_t count = 0;
            err = db_one_int(d, sql_has_endpoint_sqlite, &p[1], 1, &count);
            hook = count > 0;
            if (nt < (int)(sizeof(tenants) / sizeof(tenants[0]))) {
                tenants[nt] = e->tenant_id;
                hooked[nt++] = hook;
            }
        }
        if (err == MC_ERR_OK && hook) {
            struct db_param pf[] = {p[0], p[1], p[2], P_TIME(now)};
            err = db_exec(d, sql_fanout_sqlite, pf, NPARAMS(pf), NULL);
        }
    }
    return err;
}

void
db_pg_array_put(struct buf *a, const char *s)
{
    buf_putc(a, a->len > 0 ? ',' : '{');
    if (s == NULL) {
        buf_puts(a, "NULL");
        return;
    }
    buf_putc(a, '"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(a, '\\');
        buf_putc(a, *p);
    }
    buf_putc(a, '"');
}

static mc_err
write_pg(struct db *d, struct event_batch *b, int64_t now)
{
    struct buf a[8];
    mc_err err;

    for (int k = 0; k < 8; k++)
        buf_init(&a[k], 0);
    for (int i = 0; i < b->n; i++) {
        const struct event_row *e = &b->rows[i];
        const char *v[8] = {e->id,
                            e->tenant_id,
                            e->type,
                            or_null(e->campaign_id),
                            or_null(e->message_id),
                            or_null(e->recipient_id),
                            e->email_lc,
                            e->data};
        for (int k = 0; k < 8; k++)
            db_pg_array_put(&a[k], v[k]);
    }
    for (int k = 0; k < 8; k++)
        buf_putc(&a[k], '}');
    struct db_param p[] = {P_TEXT(a[0].data), P_TEXT(a[1].data), P_TEXT(a[2].data),
                           P_TEXT(a[3].data), P_TEXT(a[4].data), P_TEXT(a[5].data),
                           P_TEXT(a[6].data), P_TEXT(a[7].data), P_TIME(now)};
    err = db_exec(d, sql_ins_pg, p, NPARAMS(p), NULL);
    for (int k = 0; k < 8; k++)
        buf_cleanup(&a[k]);
    return err;
}

mc_err
db_events_write(struct db *d, struct event_batch *b, int64_t now)
{
    mc_err err;

    if (b->n == 0)
        return MC_ERR_OK;
    err = d->ops->dialect == DB_PG ? write_pg(d, b, now) : write_sqlite(d, b, now);
    db_events_cleanup(b);
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
     * One small batch of each, in primary-key order: a short transaction
     * however old the log, by the primary key whatever the statistics say
     * (db_plans_generic: a plan made while the log was small scanned all of
     * it).  Deliveries first (their ids are time-ordered too, and never
     * older than their event), then the events; then any pending delivery
     * whose event is gone (a replay of an event that just expired), which
     * could never be sent.
     */
    if ((err = db_begin(&d, true)) == MC_ERR_OK)
        err = db_plans_generic(&d);
    if (err == MC_ERR_OK)
        err = db_exec(&d,
                      "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM "
                      "webhook_deliveries WHERE id < $1 ORDER BY id LIMIT $2)",
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
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    db_put(&d); /* rolls back what did not commit */
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
