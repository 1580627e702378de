/*
 * store_delivery.c - what the delivery workers do to the database: find
 * work, claim with leases inside the rate limits, record fenced results,
 * recover expired leases.
 *
 * DESIGN
 * A claim is one short transaction per campaign.  It starts by locking the
 * tenant's row (PostgreSQL: db_lock_tenant, FOR NO KEY UPDATE; SQLite: BEGIN IMMEDIATE
 * serialises every writer anyway), so two workers never count a tenant's
 * windows at the same time: the sliding-window counts and the claim that
 * follows them are atomic across every process sharing the database.  Other
 * tenants are not blocked: their claims lock other rows.
 *
 * Windows are counted in rate_usage: every claim adds the messages it hands
 * out to its tenant's (and its limited campaign's) current 1-second,
 * 1-minute and 10-minute buckets.  A window of W seconds ending now sums
 * every bucket that overlaps (now - W - margin, now], so it can only
 * over-count (by the part of its oldest bucket that lies outside): no real
 * window ever holds more than the limit, and a sender held at its limit
 * still gets W / (W + margin + width) of it (96.8 % a minute, 98.3 % an
 * hour, 99.3 % a day).  A claim reads at most about 270 bucket rows,
 * however much the windows hold.
 *
 * The claim itself: PostgreSQL picks rows in a CTE with FOR UPDATE SKIP
 * LOCKED and updates exactly those (a LIMIT inside IN (SELECT ...) can
 * over-claim), found by id = ANY(ARRAY(...)): one primary-key probe each
 * (joined to the CTE, the generic plan merge-scanned the primary key from
 * its start, a cost that grew with every message already sent).  SQLite
 * runs UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING under its
 * write lock.
 *
 * Every result update carries WHERE id = ? AND lease_owner = ? AND
 * attempts = ? AND status = 'sending': a worker whose lease expired and was
 * taken over cannot overwrite the newer state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

/*
 * Windows are counted over their length plus a margin: a message reaches
 * the relay a little after its claim, so claims spaced exactly one window
 * apart could land inside one window at the relay.  One second covers the
 * hand-off at the relay's usual pace (a worker queues about 100 ms of
 * sending, see delivery.c).  A relay slower than that delays messages past
 * their claim: the windows still bound the claims, and what the relay sees
 * is shifted by the delay.  Each window is summed from buckets of the width
 * beside it.
 */
#define MARGIN_S 1
static const struct rate_window {
    int64_t seconds, width;
} windows[3] = {{60, 1}, {3600, 60}, {86400, 600}};

/* The start of the oldest bucket window w must sum at now (microseconds). */
static int64_t
window_floor(const struct rate_window *w, int64_t now)
{
    int64_t lo = now / 1000000 - w->seconds - MARGIN_S;

    return lo - lo % w->width;
}

/* The start of the bucket of width w that holds now. */
static int64_t
bucket_of(const struct rate_window *w, int64_t now)
{
    int64_t s = now / 1000000;

    return s - s % w->width;
}

void
delivery_vec_cleanup(struct delivery_vec *v)
{
    for (int i = 0; i < v->n; i++) {
        free(v->items[i].to_address);
        free(v->items[i].name);
        free(v->items[i].first_name);
        free(v->items[i].last_name);
        free(v->items[i].attributes);
    }
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void
work_row(struct db *d, struct db_res *r, void *out)
{
    struct delivery_work *w = out;

    db_col_uuid(d, r, 0, w->tenant_id);
    db_col_uuid(d, r, 1, w->campaign_id);
}

mc_err
store_delivery_work(struct store *st, int max, struct delivery_work *out, int *n)
{
    struct db_param p[] = {P_INT(max)};
    struct delivery_work *items = NULL;
    struct db d;
    mc_err err;

    *n = 0;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_all(&d,
                       "SELECT c.tenant_id, c.id FROM campaigns c JOIN tenants t "
                       "ON t.id = c.tenant_id WHERE c.status = 'sending' AND c.pending_count > 0 "
                       "AND t.status = 'active' ORDER BY c.tenant_id, c.id LIMIT $1",
                       p, NPARAMS(p), work_row, sizeof(*items), (void **)&items, n);
    db_put(&d);
    if (err == MC_ERR_OK && *n > 0)
        memcpy(out, items, (size_t)*n * sizeof(*items));
    free(items);
    return err;
}

/* What the claim needs to know about the campaign, its tenant and their limits. */
struct claim_ctx {
    bool sending;
    int64_t c_minute, c_hour;            /* the campaign's own limits, 0 none */
    int64_t t_minute, t_hour, t_day;     /* the tenant's limits */
    bool t_enabled;
};

static void
ctx_row(struct db *d, struct db_res *r, void *out)
{
    struct claim_ctx *c = out;
    const char *cs = d->ops->col_text(r, 0), *ts = d->ops->col_text(r, 1);

    c->sending = cs && ts && strcmp(cs, "sending") == 0 && strcmp(ts, "active") == 0;
    c->c_minute = d->ops->col_int(r, 2);
    c->c_hour = d->ops->col_int(r, 3);
    if (d->ops->col_text(r, 4) != NULL) {
        c->t_minute = d->ops->col_int(r, 4);
        c->t_hour = d->ops->col_int(r, 5);
        c->t_day = d->ops->col_int(r, 6);
        c->t_enabled = d->ops->col_bool(r, 7);
    } else {
        c->t_minute = RATE_DEFAULT_MINUTE;
        c->t_hour = RATE_DEFAULT_HOUR;
        c->t_day = RATE_DEFAULT_DAY;
        c->t_enabled = true;
    }
}

struct window_counts {
    int64_t minute, hour, day;
};

static void
counts_row(struct db *d, struct db_res *r, void *out)
{
    struct window_counts *w = out;

    w->minute = d->ops->col_int(r, 0);
    w->hour = d->ops->col_int(r, 1);
    w->day = d->ops->col_int(r, 2);
}

/* The messages handed out in scope's windows ending at now. */
static mc_err
window_counts(struct db *d, const char *scope, int64_t now, struct window_counts *out)
{
    struct db_param p[] = {P_TEXT(scope), P_INT(window_floor(&windows[0], now)),
                           P_INT(window_floor(&windows[1], now)),
                           P_INT(window_floor(&windows[2], now))};

    return db_fetch_one(d,
                        "SELECT COALESCE(SUM(CASE WHEN width = 1 THEN n END), 0), "
                        "COALESCE(SUM(CASE WHEN width = 60 THEN n END), 0), "
                        "COALESCE(SUM(CASE WHEN width = 600 THEN n END), 0) FROM rate_usage "
                        "WHERE scope_id = $1 AND ((width = 1 AND bucket >= $2) OR "
                        "(width = 60 AND bucket >= $3) OR (width = 600 AND bucket >= $4))",
                        p, NPARAMS(p), counts_row, out);
}

/* Adds n messages handed out at now to scope's current buckets. */
static mc_err
window_add(struct db *d, const char *scope, int64_t now, int64_t n)
{
    struct db_param p[] = {P_TEXT(scope), P_INT(bucket_of(&windows[0], now)),
                           P_INT(bucket_of(&windows[1], now)),
                           P_INT(bucket_of(&windows[2], now)), P_INT(n)};

    return db_exec(d,
                   "INSERT INTO rate_usage (scope_id, width, bucket, n) VALUES "
                   "($1, 1, $2, $5), ($1, 60, $3, $5), ($1, 600, $4, $5) "
                   "ON CONFLICT (scope_id, width, bucket) DO UPDATE SET n = rate_usage.n + "
                   "excluded.n",
                   p, NPARAMS(p), NULL);
}

static int64_t
room(int64_t limit, int64_t used)
{
    return limit - used > 0 ? limit - used : 0;
}

static void
msg_row(struct db *d, struct db_res *r, void *out)
{
    struct delivery_msg *m = out;

    db_col_uuid(d, r, 0, m->id);
    db_col_uuid(d, r, 1, m->recipient_id);
    m->to_address = db_col_dup(d, r, 2);
    m->attempts = (int)d->ops->col_int(r, 3);
    m->max_attempts = (int)d->ops->col_int(r, 4);
}

struct rcpt_data {
    char id[MC_UUID_LEN + 1];
    char *name, *first_name, *last_name, *attributes;
};

static void
rcpt_row(struct db *d, struct db_res *r, void *out)
{
    struct rcpt_data *x = out;

    db_col_uuid(d, r, 0, x->id);
    x->name = db_col_dup(d, r, 1);
    x->first_name = db_col_dup(d, r, 2);
    x->last_name = db_col_dup(d, r, 3);
    x->attributes = db_col_dup(d, r, 4);
}

static const char sql_claim_pg[] =
    "WITH picked AS (SELECT id FROM scheduled_messages WHERE campaign_id = $1 "
    "AND status = 'pending' AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE scheduled_messages m SET status = 'sending', lease_owner = $4, "
    "lease_expires_at = $5, attempts = m.attempts + 1, last_attempt_at = $2, updated_at = $2 "
    "WHERE m.id = ANY(ARRAY(SELECT id FROM picked)) "
    "RETURNING m.id, m.recipient_id, m.to_address, m.attempts, m.max_attempts";
static const char sql_claim_sqlite[] =
    "UPDATE scheduled_messages SET status = 'sending', lease_owner = $4, "
    "lease_expires_at = $5, attempts = attempts + 1, last_attempt_at = $2, updated_at = $2 "
    "WHERE id IN (SELECT id FROM scheduled_messages WHERE campaign_id = $1 "
    "AND status = 'pending' AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3) "
    "RETURNING id, recipient_id, to_address, attempts, max_attempts";

/*
 * The claimed rows whose recipient may no longer be mailed (inactive,
 * suppressed, or deleted) become 'suppressed'.  Found by id alone ($3: the
 * claimed ids), so the plan is a primary-key lookup per row, not a walk of
 * the campaign.
 */
/* What an outcome's event needs (see outcome_row). */
#define OUTCOME_COLS " RETURNING id, tenant_id, campaign_id, recipient_id, to_address, status"

/* A message a claim or an outcome changed, as its RETURNING clause gives it. */
struct outcome_row {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char *to_address; /* owned */
    char status[16];
};

static void
outcome_row(struct db *d, struct db_res *r, void *out)
{
    struct outcome_row *o = out;
    const char *s = d->ops->col_text(r, 5);

    db_col_uuid(d, r, 0, o->id);
    db_col_uuid(d, r, 1, o->tenant_id);
    db_col_uuid(d, r, 2, o->campaign_id);
    db_col_uuid(d, r, 3, o->recipient_id);
    o->to_address = db_col_dup(d, r, 4);
    snprintf(o->status, sizeof(o->status), "%s", s ? s : "");
}

static void
outcome_rows_free(struct outcome_row *o, int n)
{
    for (int i = 0; i < n; i++)
        free(o[i].to_address);
    free(o);
}

static const char sql_suppress_sqlite[] =
    "UPDATE scheduled_messages SET status = 'suppressed', lease_owner = NULL, "
    "lease_expires_at = NULL, last_attempt_at = NULL, attempts = attempts - 1, updated_at = $1 "
    "WHERE id IN (SELECT value FROM json_each($3)) AND lease_owner = $2 AND status = 'sending' "
    "AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.id = scheduled_messages.recipient_id "
    "AND r.status = 'active' AND NOT EXISTS (SELECT 1 FROM suppressions u WHERE "
    "u.tenant_id = r.tenant_id AND u.email_lc = r.email_lc))" OUTCOME_COLS;
static const char sql_suppress_pg[] =
    "UPDATE scheduled_messages SET status = 'suppressed', lease_owner = NULL, "
    "lease_expires_at = NULL, last_attempt_at = NULL, attempts = attempts - 1, updated_at = $1 "
    "WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($3::jsonb)::uuid)) "
    "AND lease_owner = $2 AND status = 'sending' AND NOT EXISTS (SELECT 1 FROM recipients r "
    "WHERE r.id = scheduled_messages.recipient_id AND r.status = 'active' AND NOT EXISTS "
    "(SELECT 1 FROM suppressions u WHERE u.tenant_id = r.tenant_id AND "
    "u.email_lc = r.email_lc))" OUTCOME_COLS;

static const char sql_rcpts_sqlite[] =
    "SELECT id, name, first_name, last_name, attributes FROM recipients "
    "WHERE id IN (SELECT value FROM json_each($1))";
static const char sql_rcpts_pg[] =
    "SELECT id, name, first_name, last_name, attributes FROM recipients "
    "WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid))";

mc_err
store_delivery_claim(struct store *st, const struct delivery_work *w, const char *owner,
                     int64_t now, int64_t lease_us, int max, struct delivery_vec *out)
{
    struct claim_ctx ctx = {0};
    struct window_counts tc = {0}, cc = {0};
    struct delivery_vec v = {0};
    struct outcome_row *gone = NULL;
    struct event_batch ev;
    struct rcpt_data *rd = NULL;
    int ngone = 0, nrd = 0;
    json_t *ids = NULL;
    char *ids_s = NULL;
    int64_t allow = max;
    bool is_pg;
    struct db d;
    mc_err err;

    memset(out, 0, sizeof(*out));
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    db_events_init(&ev);
    is_pg = d.ops->dialect == DB_PG;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    {
        struct db_param p[] = {P_TEXT(w->tenant_id), P_TEXT(w->campaign_id)};
        err = db_lock_tenant(&d, w->tenant_id);
        /* A claim that waited for the lock is stamped when it holds it, so
         * the windows it counts and adds to end at the same moment. */
        int64_t real = time_now_us();
        if (real > now)
            now = real;
        if (err == MC_ERR_OK)
            err = db_fetch_one(&d,
                               "SELECT c.status, t.status, c.rate_limit_per_minute, "
                               "c.rate_limit_per_hour, l.per_minute, l.per_hour, l.per_day, "
                               "l.enabled FROM campaigns c JOIN tenants t ON t.id = c.tenant_id "
                               "LEFT JOIN tenant_rate_limits l ON l.tenant_id = t.id "
                               "WHERE c.tenant_id = $1 AND c.id = $2",
                               p, NPARAMS(p), ctx_row, &ctx);
    }
    if (err != MC_ERR_OK || !ctx.sending)
        goto rollback;
    if (ctx.t_enabled)
        err = window_counts(&d, w->tenant_id, now, &tc);
    if (err == MC_ERR_OK && (ctx.c_minute || ctx.c_hour))
        err = window_counts(&d, w->campaign_id, now, &cc);
    if (err != MC_ERR_OK)
        goto rollback;
    if (ctx.t_enabled) {
        int64_t a = room(ctx.t_minute, tc.minute), b = room(ctx.t_hour, tc.hour),
                c = room(ctx.t_day, tc.day);
        allow = allow < a ? allow : a;
        allow = allow < b ? allow : b;
        allow = allow < c ? allow : c;
    }
    if (ctx.c_minute && room(ctx.c_minute, cc.minute) < allow)
        allow = room(ctx.c_minute, cc.minute);
    if (ctx.c_hour && room(ctx.c_hour, cc.hour) < allow)
        allow = room(ctx.c_hour, cc.hour);
    if (allow <= 0)
        goto rollback;
    {
        struct db_param p[] = {P_TEXT(w->campaign_id), P_TIME(now), P_INT(allow), P_TEXT(owner),
                               P_TIME(now + lease_us)};
        err = db_fetch_all(&d, is_pg ? sql_claim_pg : sql_claim_sqlite, p, NPARAMS(p), msg_row,
                           sizeof(*v.items), (void **)&v.items, &v.n);
        if (err != MC_ERR_OK || v.n == 0)
            goto rollback;
    }
    ids = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(ids, json_string(v.items[i].id));
    ids_s = json_dumps(ids, JSON_COMPACT);
    {
        struct db_param p[] = {P_TIME(now), P_TEXT(owner), P_TEXT(ids_s)};
        err = db_fetch_all(&d, is_pg ? sql_suppress_pg : sql_suppress_sqlite, p, NPARAMS(p),
                           outcome_row, sizeof(*gone), (void **)&gone, &ngone);
    }
    if (err == MC_ERR_OK) {
        /* The recipients' data for rendering; ids of deleted recipients were suppressed. */
        json_t *rids = json_array();
        for (int i = 0; i < v.n; i++)
            if (v.items[i].recipient_id[0])
                json_array_append_new(rids, json_string(v.items[i].recipient_id));
        char *rids_s = json_dumps(rids, JSON_COMPACT);
        json_decref(rids);
        struct db_param p[] = {P_TEXT(rids_s)};
        err = db_fetch_all(&d, is_pg ? sql_rcpts_pg : sql_rcpts_sqlite, p, NPARAMS(p), rcpt_row,
                           sizeof(*rd), (void **)&rd, &nrd);
        free(rids_s);
    }
    /* What is handed out counts in the windows; the tenant's always (its
     * limits can be switched on later), the campaign's when it has limits. */
    /* message.suppressed, in the claim's transaction. */
    for (int k = 0; k < ngone && err == MC_ERR_OK; k++) {
        struct event_ref ref = {gone[k].campaign_id, gone[k].id, gone[k].recipient_id,
                                gone[k].to_address};
        db_events_add(&ev, gone[k].tenant_id, "message.suppressed", &ref,
                      json_pack("{s:s}", "reason", "the recipient is no longer active or its "
                                                   "address is suppressed"));
    }
    if (err == MC_ERR_OK)
        err = db_events_write(&d, &ev, now);
    if (err == MC_ERR_OK && v.n > ngone)
        err = window_add(&d, w->tenant_id, now, v.n - ngone);
    if (err == MC_ERR_OK && v.n > ngone && (ctx.c_minute || ctx.c_hour))
        err = window_add(&d, w->campaign_id, now, v.n - ngone);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    if (err != MC_ERR_OK)
        goto rollback;
    /* Keep what is to be sent, with its recipient's data. */
    int keep = 0;
    for (int i = 0; i < v.n; i++) {
        struct delivery_msg *m = &v.items[i];
        bool suppressed = false;
        for (int k = 0; k < ngone && !suppressed; k++)
            suppressed = strcmp(gone[k].id, m->id) == 0;
        if (suppressed) {
            free(m->to_address);
            continue;
        }
        memcpy(m->tenant_id, w->tenant_id, sizeof(m->tenant_id));
        memcpy(m->campaign_id, w->campaign_id, sizeof(m->campaign_id));
        for (int k = 0; k < nrd; k++) {
            if (strcmp(rd[k].id, m->recipient_id) == 0) {
                m->name = rd[k].name;
                m->first_name = rd[k].first_name;
                m->last_name = rd[k].last_name;
                m->attributes = rd[k].attributes;
                rd[k].name = rd[k].first_name = rd[k].last_name = rd[k].attributes = NULL;
                break;
            }
        }
        v.items[keep++] = *m;
    }
    v.n = keep;
    if (ngone > 0)
        log_info("event=suppressed_at_claim tenant=%s campaign=%s n=%d", w->tenant_id,
                 w->campaign_id, ngone);
    *out = v;
    memset(&v, 0, sizeof(v));
    goto out;
rollback:
    db_rollback(&d);
out:
    db_put(&d);
    for (int k = 0; k < nrd; k++) {
        free(rd[k].name);
        free(rd[k].first_name);
        free(rd[k].last_name);
        free(rd[k].attributes);
    }
    free(rd);
    outcome_rows_free(gone, ngone);
    db_events_cleanup(&ev);
    json_decref(ids);
    free(ids_s);
    delivery_vec_cleanup(&v);
    return err;
}

/* ---- results ---- */

#define FENCE " WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'sending'"

static const char sql_retry[] =
    "UPDATE scheduled_messages SET status = CASE "
    "WHEN (SELECT c.status FROM campaigns c WHERE c.id = scheduled_messages.campaign_id) "
    "= 'cancelled' THEN 'cancelled' WHEN attempts >= max_attempts THEN 'failed' "
    "ELSE 'pending' END, next_attempt_at = $8, lease_owner = NULL, lease_expires_at = NULL, "
    "last_reply_code = $5, last_error = $6, message_id = $7, updated_at = $4" FENCE OUTCOME_COLS;
static const char sql_failed[] =
    "UPDATE scheduled_messages SET status = 'failed', lease_owner = NULL, "
    "lease_expires_at = NULL, last_reply_code = $5, last_error = $6, message_id = $7, "
    "updated_at = $4" FENCE OUTCOME_COLS;
static const char sql_bounced[] =
    "UPDATE scheduled_messages SET status = 'bounced', bounced_at = $4, bounce_type = 'hard', "
    "bounce_reason = $6, lease_owner = NULL, lease_expires_at = NULL, last_reply_code = $5, "
    "last_error = $6, message_id = $7, updated_at = $4" FENCE OUTCOME_COLS;
static const char sql_release[] =
    "UPDATE scheduled_messages SET status = CASE "
    "WHEN (SELECT c.status FROM campaigns c WHERE c.id = scheduled_messages.campaign_id) "
    "= 'cancelled' THEN 'cancelled' ELSE 'pending' END, attempts = attempts - 1, "
    "next_attempt_at = $6, last_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL, "
    "last_error = $5, updated_at = $4" FENCE;

/*
 * Every 'sent' outcome of a flush is recorded in one statement (the common
 * case by far): PostgreSQL's count trigger then runs once per flush, not
 * once per message (a statement per message cost about a millisecond each),
 * and SQLite saves a statement execution per message.  Joined on the
 * primary key, fenced like the per-row statements; RETURNING says which
 * took effect.
 */
static const char sql_sent_many_sqlite[] =
    "UPDATE scheduled_messages SET status = 'sent', sent_at = $1, lease_owner = NULL, "
    "lease_expires_at = NULL, last_reply_code = x.code, last_error = NULL, "
    "relay_queue_id = x.qid, message_id = x.mid, updated_at = $1 "
    "FROM (SELECT value ->> '$.id' AS id, value ->> '$.attempts' AS attempts, "
    "value ->> '$.code' AS code, value ->> '$.qid' AS qid, value ->> '$.mid' AS mid "
    "FROM json_each($3)) AS x WHERE scheduled_messages.id = x.id "
    "AND scheduled_messages.lease_owner = $2 AND scheduled_messages.attempts = x.attempts "
    "AND scheduled_messages.status = 'sending' RETURNING scheduled_messages.id, "
    "scheduled_messages.tenant_id, scheduled_messages.campaign_id, "
    "scheduled_messages.recipient_id, scheduled_messages.to_address, scheduled_messages.status";
static const char sql_sent_many_pg[] =
    "UPDATE scheduled_messages m SET status = 'sent', sent_at = $1, lease_owner = NULL, "
    "lease_expires_at = NULL, last_reply_code = x.code, last_error = NULL, "
    "relay_queue_id = x.qid, message_id = x.mid, updated_at = $1 "
    "FROM jsonb_to_recordset($3::jsonb) AS x(id uuid, attempts int, code int, qid text, "
    "mid text) WHERE m.id = x.id AND m.lease_owner = $2 AND m.attempts = x.attempts "
    "AND m.status = 'sending' RETURNING m.id, m.tenant_id, m.campaign_id, m.recipient_id, "
    "m.to_address, m.status";

/*
 * The event of one recorded outcome: message.sent, message.deferred
 * (pending again), message.failed or message.bounced, by the status the
 * update left (a retry of a cancelled campaign's message has none).
 */
static void
outcome_event(struct event_batch *ev, const struct outcome_row *o,
              const struct delivery_result *x)
{
    struct event_ref ref = {o->campaign_id, o->id, o->recipient_id, o->to_address};
    const char *type;
    json_t *data = json_pack("{s:i, s:o, s:o}", "attempt", x->attempts, "smtp_code",
                             x->reply_code ? json_integer(x->reply_code) : json_null(),
                             "smtp_reply", x->error[0] ? json_string(x->error) : json_null());

    if (strcmp(o->status, "sent") == 0) {
        type = "message.sent";
        json_object_set_new(data, "relay_queue_id",
                            x->queue_id[0] ? json_string(x->queue_id) : json_null());
        json_object_set_new(data, "message_id_header",
                            x->message_id[0] ? json_string(x->message_id) : json_null());
    } else if (strcmp(o->status, "pending") == 0) {
        char t[40];
        type = "message.deferred";
        time_format_rfc3339(x->next_attempt_at, t, sizeof(t));
        json_object_set_new(data, "next_attempt_at", json_string(t));
    } else if (strcmp(o->status, "failed") == 0) {
        type = "message.failed";
    } else if (strcmp(o->status, "bounced") == 0) {
        type = "message.bounced";
        json_object_set_new(data, "bounce_type", json_string("hard"));
        json_object_set_new(data, "source", json_string("smtp"));
    } else {
        json_decref(data);
        return;
    }
    db_events_add(ev, o->tenant_id, type, &ref, data);
}

/* The set-based 'sent' update and its events; *applied counts, fenced-out ones are logged. */
static mc_err
record_sent(struct db *d, const char *owner, int64_t now, const struct delivery_result *res,
            int n, struct event_batch *ev, int *applied)
{
    json_t *arr = json_array();
    struct outcome_row *done = NULL;
    int ndone = 0;
    char *arr_s;
    mc_err err;

    for (int i = 0; i < n; i++) {
        const struct delivery_result *x = &res[i];
        if (x->outcome != OUT_SENT)
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:i, s:o, s:o, s:o}", "id", x->id,
                                             "attempts", x->attempts, "code",
                                             x->reply_code ? json_integer(x->reply_code)
                                                           : json_null(),
                                             "qid", x->queue_id[0] ? json_string(x->queue_id)
                                                                   : json_null(),
                                             "mid", x->message_id[0]
                                                        ? json_string(x->message_id)
                                                        : json_null()));
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return MC_ERR_OK;
    }
    arr_s = json_dumps(arr, JSON_COMPACT);
    struct db_param p[] = {P_TIME(now), P_TEXT(owner), P_TEXT(arr_s)};
    err = db_fetch_all(d, d->ops->dialect == DB_PG ? sql_sent_many_pg : sql_sent_many_sqlite, p,
                       NPARAMS(p), outcome_row, sizeof(*done), (void **)&done, &ndone);
    if (err == MC_ERR_OK) {
        *applied += ndone;
        for (int i = 0; i < n; i++) {
            bool found = res[i].outcome != OUT_SENT;
            for (int k = 0; k < ndone && !found; k++) {
                if (strcmp(done[k].id, res[i].id) == 0) {
                    outcome_event(ev, &done[k], &res[i]);
                    found = true;
                }
            }
            if (!found)
                log_warn("event=fenced_out msg=%s attempt=%d owner=%s", res[i].id,
                         res[i].attempts, owner);
        }
    }
    outcome_rows_free(done, ndone);
    free(arr_s);
    json_decref(arr);
    return err;
}

/*
 * A hard bounce: the recipient is bounced and its address suppressed
 * (source bounce), with suppression.created when the address is new there.
 */
static mc_err
bounce(struct db *d, const struct outcome_row *b, const char *reason, int64_t now,
       struct event_batch *ev)
{
    struct db_param p[] = {P_TEXT(b->recipient_id), P_TIME(now), P_TEXT(b->campaign_id),
                           P_TEXT(reason), P_TEXT(b->id)};
    char *email = NULL;
    mc_err err;

    if (b->recipient_id[0] == '\0')
        return MC_ERR_OK;
    err = db_exec(d, "UPDATE recipients SET status = 'bounced', updated_at = $2 WHERE id = $1", p,
                  2, NULL);
    if (err == MC_ERR_OK)
        err = db_one_text(d,
                          "INSERT INTO unsubscribes (id, tenant_id, email, email_lc, source, "
                          "campaign_id, reason, unsubscribed_at, cause, message_id) SELECT "
                          "gen_random_uuid(), r.tenant_id, r.email, r.email_lc, 'bounce', $3, $4, "
                          "$2, 'hard_bounce', $5 FROM recipients r WHERE r.id = $1"
                          UNSUB_ON_CONFLICT " RETURNING email",
                          p, NPARAMS(p), &email);
    if (err == MC_ERR_NOT_FOUND)
        return MC_ERR_OK; /* on the list already */
    if (err == MC_ERR_OK) {
        struct event_ref ref = {b->campaign_id, NULL, NULL, email};
        db_events_add(ev, b->tenant_id, "suppression.created", &ref,
                      json_pack("{s:s, s:o}", "source", "bounce", "reason",
                                reason && *reason ? json_string(reason) : json_null()));
    }
    free(email);
    return err;
}

mc_err
store_delivery_record(struct store *st, const char *owner, int64_t now,
                      const struct delivery_result *res, int n, int *applied)
{
    struct event_batch ev;
    struct db d;
    mc_err err;

    *applied = 0;
    if (n == 0)
        return MC_ERR_OK;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    db_events_init(&ev);
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = record_sent(&d, owner, now, res, n, &ev, applied);
    for (int i = 0; i < n && err == MC_ERR_OK; i++) {
        const struct delivery_result *x = &res[i];
        struct outcome_row *o = NULL;
        int64_t changes = 0;
        int no = 0;
        if (x->outcome == OUT_SENT)
            continue; /* recorded above, in one statement */
        struct db_param p[] = {P_TEXT(x->id),
                               P_TEXT(owner),
                               P_INT(x->attempts),
                               P_TIME(now),
                               x->reply_code ? P_INT(x->reply_code) : P_NULL,
                               P_TEXT(x->error[0] ? x->error : NULL),
                               P_TEXT(x->message_id[0] ? x->message_id : NULL),
                               P_TIME(x->next_attempt_at ? x->next_attempt_at : now)};
        switch (x->outcome) {
        case OUT_SENT:
            break;
        case OUT_RETRY:
        case OUT_FAILED:
            err = db_fetch_all(&d, x->outcome == OUT_RETRY ? sql_retry : sql_failed, p,
                               NPARAMS(p) - (x->outcome == OUT_FAILED), outcome_row, sizeof(*o),
                               (void **)&o, &no);
            if (err == MC_ERR_OK && no == 1)
                outcome_event(&ev, o, x);
            changes = no;
            break;
        case OUT_RELEASE: {
            struct db_param pr[] = {p[0], p[1], p[2], p[3], P_TEXT(x->error[0] ? x->error : NULL),
                                    p[7]};
            err = db_exec(&d, sql_release, pr, NPARAMS(pr), &changes);
            break;
        }
        case OUT_BOUNCED:
            err = db_fetch_all(&d, sql_bounced, p, NPARAMS(p) - 1, outcome_row, sizeof(*o),
                               (void **)&o, &no);
            if (err == MC_ERR_OK && no == 1) {
                outcome_event(&ev, o, x);
                err = bounce(&d, o, x->error, now, &ev);
            }
            changes = no;
            break;
        }
        outcome_rows_free(o, no);
        if (err == MC_ERR_OK && changes == 1)
            (*applied)++;
        else if (err == MC_ERR_OK)
            log_warn("event=fenced_out msg=%s attempt=%d owner=%s", x->id, x->attempts, owner);
    }
    /* The flush's events: one INSERT, in the transaction of the outcomes. */
    if (err == MC_ERR_OK)
        err = db_events_write(&d, &ev, now);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_events_cleanup(&ev);
    db_put(&d);
    return err;
}

mc_err
store_delivery_recover(struct store *st, int64_t now, int attempts_cap, int *n)
{
    struct db_param p[] = {P_TIME(now), P_INT(attempts_cap)};
    struct outcome_row *o = NULL;
    struct event_batch ev;
    int64_t changes = 0;
    int no = 0;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    db_events_init(&ev);
    /*
     * A lease expiry is not the relay's verdict: the attempt it used is given back by
     * raising max_attempts, up to attempts_cap; a message that keeps killing its
     * workers meets the cap and fails as poison (SQLite and PostgreSQL both read the
     * old row on the right of every SET).  A message that fails here gets its
     * message.failed in the same transaction.
     */
    if ((err = db_begin(&d, true)) == MC_ERR_OK)
        err = db_fetch_all(&d,
                           "UPDATE scheduled_messages SET status = CASE "
                           "WHEN (SELECT c.status FROM campaigns c WHERE c.id = "
                           "scheduled_messages.campaign_id) = 'cancelled' THEN 'cancelled' "
                           "WHEN max_attempts >= $2 AND attempts >= max_attempts THEN 'failed' "
                           "ELSE 'pending' END, "
                           "max_attempts = CASE WHEN max_attempts < $2 THEN max_attempts + 1 "
                           "ELSE max_attempts END, "
                           "lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = $1, "
                           "last_error = CASE WHEN max_attempts >= $2 AND attempts >= "
                           "max_attempts THEN 'the lease expired again: failed as a poison "
                           "message (lease_expiry_max)' "
                           "ELSE 'the lease expired: the worker stopped or crashed mid-send' END, "
                           "updated_at = $1 WHERE status = 'sending' AND lease_expires_at < $1"
                           OUTCOME_COLS,
                           p, NPARAMS(p), outcome_row, sizeof(*o), (void **)&o, &no);
    for (int i = 0; i < no && err == MC_ERR_OK; i++) {
        if (strcmp(o[i].status, "failed") != 0)
            continue;
        struct event_ref ref = {o[i].campaign_id, o[i].id, o[i].recipient_id, o[i].to_address};
        db_events_add(&ev, o[i].tenant_id, "message.failed", &ref,
                      json_pack("{s:s}", "smtp_reply",
                                "the lease expired again: failed as a poison message"));
    }
    if (err == MC_ERR_OK)
        err = db_events_write(&d, &ev, now);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    changes = no;
    outcome_rows_free(o, no);
    db_events_cleanup(&ev);
    if (err == MC_ERR_OK) {
        /* Buckets no window reaches any more. */
        struct db_param pb[] = {P_INT(window_floor(&windows[0], now)),
                                P_INT(window_floor(&windows[1], now)),
                                P_INT(window_floor(&windows[2], now))};
        err = db_exec(&d,
                      "DELETE FROM rate_usage WHERE (width = 1 AND bucket < $1) OR "
                      "(width = 60 AND bucket < $2) OR (width = 600 AND bucket < $3)",
                      pb, NPARAMS(pb), NULL);
    }
    db_put(&d);
    *n = (int)changes;
    if (err == MC_ERR_OK && changes > 0)
        log_warn("event=lease_expired n=%lld", (long long)changes);
    return err;
}

static void
depth_row(struct db *d, struct db_res *r, void *out)
{
    int64_t *v = out;

    v[0] = d->ops->col_int(r, 0);
    v[1] = d->ops->col_int(r, 1);
}

mc_err
store_queue_depth(struct store *st, int64_t *pending, int64_t *sending)
{
    int64_t v[2] = {0, 0};
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* Campaign counters: one row per campaign, never a scan of the messages. */
    err = db_fetch_one(&d,
                       "SELECT COALESCE(SUM(pending_count), 0), COALESCE(SUM(sending_count), 0) "
                       "FROM campaigns WHERE status IN ('scheduled', 'sending', 'paused')",
                       NULL, 0, depth_row, v);
    db_put(&d);
    if (err == MC_ERR_OK) {
        *pending = v[0];
        *sending = v[1];
    }
    return err;
}
