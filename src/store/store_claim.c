/*
 * store_claim.c - the claim side of delivery: find work, claim due messages
 * with leases inside the rate limits, count the rate windows.  Recording
 * results and recovering leases are store_delivery.c's.
 *
 * DESIGN
 * A claim is one short transaction per campaign, in steps that each do one
 * thing (store_delivery_claim reads as their list):
 *
 *   claim_ctx_load     lock the tenant's row (PostgreSQL: db_lock_tenant,
 *                      FOR NO KEY UPDATE, then PG_LOCK_SHAPING_HOLD shared,
 *                      which a suspension's lift takes exclusively; SQLite:
 *                      BEGIN IMMEDIATE serialises every writer anyway) and
 *                      read the campaign's and the tenant's state and limits
 *   claim_egresses     the tenant's pool's members this worker can send
 *                      through now (none: nothing is claimed)
 *   claim_allowance    what the minute, hour and day windows leave
 *   claim_egress_assign  each picked row an egress, at random by weight
 *   claim_take         the due rows, leased
 *   claim_recipients   the recipients' data for rendering, and who may be mailed
 *   claim_suppress     the taken rows whose recipient may no longer be mailed
 *   claim_count        what is handed out counts in the windows
 *   claim_assemble     the messages to send, with their recipients' data
 *
 * Because the tenant's row is locked first, two workers never count a
 * tenant's windows at the same time: the sliding-window counts and the
 * claim that follows them are atomic across every process sharing the
 * database.  Other tenants are not blocked: their claims lock other rows
 * (all wait, briefly, while an operator's lift of a suspension runs).
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
 * The take: PostgreSQL picks rows in a CTE with FOR UPDATE SKIP LOCKED and
 * updates exactly those (a LIMIT inside IN (SELECT ...) can over-claim),
 * found by id = ANY(ARRAY(...)): one primary-key probe each (joined to the
 * CTE, the generic plan merge-scanned the primary key from its start, a
 * cost that grew with every message already sent).  SQLite runs UPDATE ...
 * WHERE id IN (SELECT ... LIMIT n) RETURNING under its write lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "core/pace.h"
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

/*
 * A campaign whose messages may be claimed and sent (c: campaigns, t: its
 * tenant); ctx_row's test of the claim is the same in C.
 */
#define STILL_SENDING "c.status = 'sending' AND t.status = 'active'"

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
                       "ON t.id = c.tenant_id WHERE " STILL_SENDING " AND c.pending_count > 0 "
                       "ORDER BY c.tenant_id, c.id LIMIT $1",
                       p, NPARAMS(p), work_row, sizeof(*items), (void **)&items, n);
    db_put(&d);
    if (err == MC_ERR_OK && *n > 0)
        memcpy(out, items, (size_t)*n * sizeof(*items));
    free(items);
    return err;
}

mc_err
store_delivery_stopped(struct store *st, const struct delivery_work *w, int n,
                       struct delivery_work **out, int *nout)
{
    json_t *ids = json_array();
    char *ids_s;
    struct db d;
    mc_err err;

    *out = NULL;
    *nout = 0;
    for (int i = 0; i < n; i++)
        json_array_append_new(ids, json_pack("{s:s, s:s}", "t", w[i].tenant_id, "c",
                                             w[i].campaign_id));
    ids_s = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    if (ids_s == NULL)
        return MC_ERR_INTERNAL;
    struct db_param p[] = {P_TEXT(ids_s)};
    if ((err = db_get(st, &d)) == MC_ERR_OK) {
        err = db_fetch_all(&d,
                           d.ops->dialect == DB_PG
                               ? "SELECT x.t, x.c FROM jsonb_to_recordset($1::jsonb) AS "
                                 "x(t uuid, c uuid) WHERE NOT EXISTS (SELECT 1 FROM campaigns c "
                                 "JOIN tenants t ON t.id = c.tenant_id WHERE c.id = x.c AND "
                                 "c.tenant_id = x.t AND " STILL_SENDING ")"
                               : "SELECT x.value ->> '$.t', x.value ->> '$.c' FROM json_each($1) "
                                 "AS x WHERE NOT EXISTS (SELECT 1 FROM campaigns c JOIN tenants "
                                 "t ON t.id = c.tenant_id WHERE c.id = x.value ->> '$.c' AND "
                                 "c.tenant_id = x.value ->> '$.t' AND " STILL_SENDING ")",
                           p, NPARAMS(p), work_row, sizeof(**out), (void **)out, nout);
        db_put(&d);
    }
    free(ids_s);
    return err;
}

/* What the claim needs to know about the campaign, its tenant and their limits. */
struct claim_ctx {
    bool sending;
    int64_t c_minute, c_hour;            /* the campaign's own limits, 0 none */
    int64_t t_second, t_minute, t_hour, t_day; /* the tenant's limits (t_second 0: none) */
    bool t_enabled;
    char pool[SHAPING_NAME_MAX + 1]; /* the tenant's egress pool */
};

static void
ctx_row(struct db *d, struct db_res *r, void *out)
{
    struct claim_ctx *c = out;
    const char *cs = d->ops->col_text(r, 0), *ts = d->ops->col_text(r, 1);

    /* STILL_SENDING, in C */
    c->sending = cs && ts && strcmp(cs, "sending") == 0 && strcmp(ts, "active") == 0;
    c->c_minute = d->ops->col_int(r, 2);
    c->c_hour = d->ops->col_int(r, 3);
    if (d->ops->col_text(r, 4) != NULL) {
        c->t_minute = d->ops->col_int(r, 4);
        c->t_hour = d->ops->col_int(r, 5);
        c->t_day = d->ops->col_int(r, 6);
        c->t_enabled = d->ops->col_bool(r, 7);
        c->t_second = d->ops->col_int(r, 8);
    } else {
        c->t_minute = RATE_DEFAULT_MINUTE;
        c->t_hour = RATE_DEFAULT_HOUR;
        c->t_day = RATE_DEFAULT_DAY;
        c->t_enabled = true;
    }
    snprintf(c->pool, sizeof(c->pool), "%s",
             d->ops->col_text(r, 9) ? d->ops->col_text(r, 9) : "default");
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

mc_err
claim_window_return(struct db *d, const char *tenant_id, const char *campaign_id, int64_t at)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(campaign_id),
                           P_INT(bucket_of(&windows[0], at)), P_INT(bucket_of(&windows[1], at)),
                           P_INT(bucket_of(&windows[2], at))};

    return db_exec(d,
                   "UPDATE rate_usage SET n = n - 1 WHERE scope_id IN ($1, $2) AND n > 0 AND "
                   "((width = 1 AND bucket = $3) OR (width = 60 AND bucket = $4) OR "
                   "(width = 600 AND bucket = $5))",
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
    snprintf(m->site, sizeof(m->site), "%s", d->ops->col_text(r, 5) ? d->ops->col_text(r, 5) : "");
}

struct rcpt_data {
    char id[MC_UUID_LEN + 1];
    char *name, *first_name, *last_name, *attributes;
    bool mailable; /* active and not suppressed */
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
    x->mailable = d->ops->col_bool(r, 5);
}

/* The due rows, oldest first, locked on PostgreSQL (SKIP LOCKED: another worker's pick). */
static const char sql_pick[] =
    "SELECT id, site FROM scheduled_messages WHERE campaign_id = $1 AND status = 'pending' "
    "AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3";
static const char sql_pick_pg[] =
    "SELECT id, site FROM scheduled_messages WHERE campaign_id = $1 AND status = 'pending' "
    "AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED";
/* The picked rows ($3: their ids) leased: only 'pending' ones (the count move relies on it). */
static const char sql_take_pg[] =
    "UPDATE scheduled_messages m SET status = 'sending', lease_owner = $1, "
    "lease_expires_at = $2, attempts = m.attempts + 1, last_attempt_at = $4, updated_at = $4 "
    "WHERE m.id = ANY(ARRAY(SELECT jsonb_array_elements_text($3::jsonb)::uuid)) "
    "AND m.status = 'pending' "
    "RETURNING m.id, m.recipient_id, m.to_address, m.attempts, m.max_attempts, m.site";
static const char sql_take_sqlite[] =
    "UPDATE scheduled_messages SET status = 'sending', lease_owner = $1, "
    "lease_expires_at = $2, attempts = attempts + 1, last_attempt_at = $4, updated_at = $4 "
    "WHERE id IN (SELECT value FROM json_each($3)) AND status = 'pending' "
    "RETURNING id, recipient_id, to_address, attempts, max_attempts, site";
/* Picked rows held back by their site wait for their expected slot ($1: [{id, t}]). */
static const char sql_defer_pg[] =
    "UPDATE scheduled_messages m SET next_attempt_at = to_timestamp(x.t / 1000000.0) "
    "FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, t bigint) "
    "WHERE m.id = x.id AND m.status = 'pending'";
static const char sql_defer_sqlite[] =
    "UPDATE scheduled_messages SET next_attempt_at = x.t FROM (SELECT value ->> '$.id' AS id, "
    "value ->> '$.t' AS t FROM json_each($1)) AS x WHERE scheduled_messages.id = x.id "
    "AND scheduled_messages.status = 'pending'";
/* Pace state: rows made to exist, then read (and locked, in one order) ($1: scope ids). */
static const char sql_pace_ensure_pg[] =
    "INSERT INTO rate_pace (scope_id, tat) SELECT value, 0 FROM "
    "jsonb_array_elements_text($1::jsonb) ON CONFLICT (scope_id) DO NOTHING";
static const char sql_pace_ensure_sqlite[] =
    "INSERT INTO rate_pace (scope_id, tat) SELECT value, 0 FROM json_each($1) WHERE true "
    "ON CONFLICT (scope_id) DO NOTHING";
static const char sql_pace_read_pg[] =
    "SELECT scope_id, tat, interval_us FROM rate_pace WHERE scope_id IN (SELECT "
    "jsonb_array_elements_text($1::jsonb)) ORDER BY scope_id FOR UPDATE";
static const char sql_pace_read_sqlite[] =
    "SELECT scope_id, tat, interval_us FROM rate_pace WHERE scope_id IN "
    "(SELECT value FROM json_each($1))";

/*
 * Whether recipient r may be mailed: active, and its address not on the
 * tenant's suppression list.  The one condition: claim_recipients reads it
 * with the data it renders, and the suppression below checks it again.
 */
#define MAILABLE(r)                                                                               \
    "(" r ".status = 'active' AND NOT EXISTS (SELECT 1 FROM suppressions u WHERE "                \
    "u.tenant_id = " r ".tenant_id AND u.email_lc = " r ".email_lc))"

/*
 * The taken rows whose recipient may no longer be mailed (inactive,
 * suppressed, or deleted) become 'suppressed'.  Found by id alone ($3: the
 * ids claim_recipients found unmailable, almost always none, so the
 * statement rarely runs), and the update checks again.
 */
#define SUPPRESS_SET                                                                              \
    "UPDATE scheduled_messages SET status = 'suppressed', lease_owner = NULL, "                   \
    "lease_expires_at = NULL, last_attempt_at = NULL, attempts = attempts - 1, updated_at = $1 "
#define SUPPRESS_WHERE                                                                            \
    " AND lease_owner = $2 AND status = 'sending' AND NOT EXISTS (SELECT 1 FROM recipients r "    \
    "WHERE r.id = scheduled_messages.recipient_id AND " MAILABLE("r") ")" OUTCOME_COLS
static const char sql_suppress_sqlite[] =
    SUPPRESS_SET "WHERE id IN (SELECT value FROM json_each($3))" SUPPRESS_WHERE;
static const char sql_suppress_pg[] =
    SUPPRESS_SET "WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($3::jsonb)::uuid))"
    SUPPRESS_WHERE;

#define RCPT_COLS                                                                                 \
    "SELECT r.id, r.name, r.first_name, r.last_name, r.attributes, " MAILABLE("r")               \
    " FROM recipients r "
static const char sql_rcpts_sqlite[] =
    RCPT_COLS "WHERE r.id IN (SELECT value FROM json_each($1))";
static const char sql_rcpts_pg[] =
    RCPT_COLS "WHERE r.id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid))";

/* A due row picked for the claim, and what pacing made of it. */
struct pick {
    char id[MC_UUID_LEN + 1];
    char site[64];
    const char *egress; /* borrowed from the claim's members: the way out it was given */
    int scope;       /* its site's paced scope, or -1 */
    int64_t hold;    /* suspended (automation) until then, 0: not */
    int64_t slot;    /* when it may leave (0: at once) */
    bool take;       /* claimed now; otherwise it stays pending (deferred when slot != 0) */
};

/* A paced scope: the tenant, the campaign, or a site on the egress. */
struct scope {
    char id[96]; /* the rate_pace key */
    struct pace_scope p;
    int64_t tat0, interval0; /* as read, to write back only what changed */
    int64_t defer_at; /* the next expected slot handed to a deferred row */
};

/* A claim in progress: what its steps read and leave for the next. */
struct claim {
    struct db d;
    bool is_pg;
    const struct delivery_work *w;  /* borrowed */
    const char *owner;              /* borrowed */
    const struct claim_pacing *pc;  /* borrowed */
    int64_t now;
    struct claim_ctx ctx;
    struct pick *pk; /* owned */
    int npk;
    struct scope *sc; /* owned: [0, nfixed) the tenant's and campaign's, then sites' */
    int nsc, nfixed;
    struct delivery_vec v;         /* the taken rows */
    struct outcome_row *gone; /* owned: taken rows suppressed instead */
    int ngone;
    struct rcpt_data *rd; /* owned */
    int nrd;
    struct egress_member *eg; /* owned: the tenant's pool's members this process can reach */
    int neg;
    int64_t eg_total; /* their weights' sum */
};

/* The campaign's and its tenant's state and limits (ctx_row's columns). */
#define CTX_SELECT                                                                      \
    "SELECT c.status, t.status, c.rate_limit_per_minute, c.rate_limit_per_hour, "       \
    "l.per_minute, l.per_hour, l.per_day, l.enabled, l.per_second, t.egress_pool"
#define CTX_FROM                                                                        \
    "FROM campaigns c JOIN tenants t ON t.id = c.tenant_id LEFT JOIN tenant_rate_limits " \
    "l ON l.tenant_id = t.id WHERE c.tenant_id = $1 AND c.id = $2"

/* Takes the locks (the tenant's row, then PG_LOCK_SHAPING_HOLD shared), stamps the
 * claim and reads the campaign's and tenant's state. */
static mc_err
claim_ctx_load(struct claim *k)
{
    struct db_param p[] = {P_TEXT(k->w->tenant_id), P_TEXT(k->w->campaign_id),
                           P_INT(PG_LOCK_SHAPING_HOLD)};
    mc_err err = db_lock_tenant(&k->d, k->w->tenant_id);
    /* A claim that waited for the lock is stamped when it holds it, so
     * the windows it counts and adds to end at the same moment. */
    int64_t real = time_now_us();

    if (real > k->now)
        k->now = real;
    if (err != MC_ERR_OK)
        return err;
    /*
     * PostgreSQL: PG_LOCK_SHAPING_HOLD shared, in the same statement (a
     * round trip more cost a claim-bound worker 8 % of its rate), after the
     * tenant's row: a claim queued behind a lift then holds only its own
     * tenant's row, never a lock other tenants' claims need while it waits
     * for a long transaction on that row (an import).
     */
    return db_fetch_one(&k->d,
                        k->is_pg ? CTX_SELECT ", pg_advisory_xact_lock_shared($3) " CTX_FROM
                                 : CTX_SELECT " " CTX_FROM,
                        p, NPARAMS(p) - !k->is_pg, ctx_row, &k->ctx);
}

/* How many of max the tenant's and the campaign's windows leave (*allow). */
static mc_err
claim_allowance(struct claim *k, int64_t max, int64_t *allow)
{
    const struct claim_ctx *c = &k->ctx;
    struct window_counts tc = {0}, cc = {0};
    int64_t a = max;
    mc_err err = MC_ERR_OK;

    if (c->t_enabled)
        err = window_counts(&k->d, k->w->tenant_id, k->now, &tc);
    if (err == MC_ERR_OK && (c->c_minute || c->c_hour))
        err = window_counts(&k->d, k->w->campaign_id, k->now, &cc);
    if (err != MC_ERR_OK)
        return err;
    if (c->t_enabled) {
        int64_t r[3] = {room(c->t_minute, tc.minute), room(c->t_hour, tc.hour),
                        room(c->t_day, tc.day)};
        for (int i = 0; i < 3; i++)
            a = a < r[i] ? a : r[i];
    }
    if (c->c_minute && room(c->c_minute, cc.minute) < a)
        a = room(c->c_minute, cc.minute);
    if (c->c_hour && room(c->c_hour, cc.hour) < a)
        a = room(c->c_hour, cc.hour);
    *allow = a;
    return MC_ERR_OK;
}

static void
pick_row(struct db *d, struct db_res *r, void *out)
{
    struct pick *x = out;
    const char *site = d->ops->col_text(r, 1);

    db_col_uuid(d, r, 0, x->id);
    snprintf(x->site, sizeof(x->site), "%s", site ? site : "");
    x->scope = -1;
}

/* Up to n due rows of the campaign, oldest first (k->pk). */
static mc_err
claim_pick(struct claim *k, int64_t n)
{
    struct db_param p[] = {P_TEXT(k->w->campaign_id), P_TIME(k->now), P_INT(n)};

    return db_fetch_all(&k->d, k->is_pg ? sql_pick_pg : sql_pick, p, NPARAMS(p), pick_row,
                        sizeof(*k->pk), (void **)&k->pk, &k->npk);
}

static int
scope_add(struct claim *k, const char *id, int64_t interval)
{
    for (int i = 0; i < k->nsc; i++)
        if (strcmp(k->sc[i].id, id) == 0)
            return i;
    k->sc = xrealloc(k->sc, (size_t)(k->nsc + 1) * sizeof(*k->sc));
    memset(&k->sc[k->nsc], 0, sizeof(*k->sc));
    snprintf(k->sc[k->nsc].id, sizeof(k->sc[k->nsc].id), "%s", id);
    k->sc[k->nsc].p.interval_us = interval;
    return k->nsc++;
}

static int
scope_cmp(const void *a, const void *b)
{
    return strcmp(((const struct scope *)a)->id, ((const struct scope *)b)->id);
}

struct tat_row {
    char id[96];
    int64_t tat, interval; /* the interval the tat was kept under */
};

static void
tat_row(struct db *d, struct db_res *r, void *out)
{
    struct tat_row *t = out;
    const char *id = d->ops->col_text(r, 0);

    snprintf(t->id, sizeof(t->id), "%s", id ? id : "");
    t->tat = d->ops->col_int(r, 1);
    t->interval = d->ops->col_int(r, 2);
}

/*
 * Reads (PostgreSQL: locks, in key order, so two claims never wait on each
 * other's rows in a cycle) the pace state of scopes [from, k->nsc).
 */
static mc_err
pace_load(struct claim *k, int from)
{
    json_t *ids = json_array();
    struct tat_row *rows = NULL;
    char *ids_s = NULL;
    int n = 0;
    mc_err err;

    if (from >= k->nsc) {
        json_decref(ids);
        return MC_ERR_OK;
    }
    for (int i = from; i < k->nsc; i++)
        json_array_append_new(ids, json_string(k->sc[i].id));
    ids_s = json_dumps(ids, JSON_COMPACT);
    struct db_param p[] = {P_TEXT(ids_s)};
    err = db_exec(&k->d, k->is_pg ? sql_pace_ensure_pg : sql_pace_ensure_sqlite, p, 1, NULL);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&k->d, k->is_pg ? sql_pace_read_pg : sql_pace_read_sqlite, p, 1,
                           tat_row, sizeof(*rows), (void **)&rows, &n);
    for (int r = 0; r < n && err == MC_ERR_OK; r++)
        for (int i = from; i < k->nsc; i++)
            if (strcmp(k->sc[i].id, rows[r].id) == 0) {
                k->sc[i].p.tat = k->sc[i].tat0 = rows[r].tat;
                k->sc[i].interval0 = rows[r].interval;
                pace_rescale(&k->sc[i].p, rows[r].interval, k->now);
            }
    free(rows);
    free(ids_s);
    json_decref(ids);
    return err;
}

/*
 * The tenant's and the campaign's paced scopes, loaded; *cap: how many
 * messages they can let go within the horizon (the pick needs no more).
 */
static mc_err
claim_pace_fixed(struct claim *k, int64_t *cap)
{
    const struct claim_ctx *c = &k->ctx;
    int64_t t_iv = c->t_enabled ? pace_interval(c->t_second, c->t_minute) : 0;
    int64_t c_iv = pace_interval(0, c->c_minute);
    int64_t until = k->now + k->pc->horizon_us;
    mc_err err;

    if (t_iv > 0)
        scope_add(k, k->w->tenant_id, t_iv);
    if (c_iv > 0)
        scope_add(k, k->w->campaign_id, c_iv);
    k->nfixed = k->nsc;
    if ((err = pace_load(k, 0)) != MC_ERR_OK)
        return err;
    for (int i = 0; i < k->nfixed; i++) {
        const struct scope *s = &k->sc[i];
        int64_t e = pace_earliest(&s->p, k->pc->burst, k->now);
        /* Slots e, e + T, ... up to until, plus what the burst leaves. */
        int64_t n = e > until ? 0 : (until - e) / s->p.interval_us + k->pc->burst;
        *cap = n < *cap ? n : *cap;
    }
    return MC_ERR_OK;
}

struct site_rule {
    char site[64];
    int64_t per_second, per_minute;
    char egress[SHAPING_NAME_MAX + 1];
};

static void
site_rule_row(struct db *d, struct db_res *r, void *out)
{
    struct site_rule *x = out;
    const char *s = d->ops->col_text(r, 0), *eg = d->ops->col_text(r, 3);

    snprintf(x->site, sizeof(x->site), "%s", s ? s : "");
    x->per_second = d->ops->col_int(r, 1);
    x->per_minute = d->ops->col_int(r, 2);
    snprintf(x->egress, sizeof(x->egress), "%s", eg ? eg : "");
}

/* What automation has in force on the egress (store_automation.c). */
struct in_force {
    char egress[SHAPING_NAME_MAX + 1];
    char site[64];
    char tenant[MC_UUID_LEN + 1]; /* "": every tenant */
    bool suspend;                 /* else a rate */
    int64_t interval, until;
};

static void
in_force_row(struct db *d, struct db_res *r, void *out)
{
    struct in_force *x = out;
    const char *site = d->ops->col_text(r, 0), *tenant = d->ops->col_text(r, 1),
               *action = d->ops->col_text(r, 2);

    snprintf(x->site, sizeof(x->site), "%s", site ? site : "");
    snprintf(x->tenant, sizeof(x->tenant), "%s", tenant ? tenant : "");
    /* set_connections is the delivery worker's: neither a hold nor a rate here. */
    x->suspend = action && strncmp(action, "suspend_", 8) == 0;
    x->interval = pace_interval(d->ops->col_int(r, 3), d->ops->col_int(r, 4));
    x->until = d->ops->col_int(r, 5);
    snprintf(x->egress, sizeof(x->egress), "%s",
             d->ops->col_text(r, 6) ? d->ops->col_text(r, 6) : "");
}

/*
 * The paced interval of a picked row's site (its rule, else the egress's
 * '*', tightened by a rate automation put in force) and, when automation
 * suspended the site (for every tenant or for this one), until when.
 */
static int64_t
site_interval(const struct claim *k, const struct pick *x, const struct site_rule *rules,
              int nrules, const struct in_force *f, int nf, int64_t *hold)
{
    const struct site_rule *rule = NULL;
    int64_t iv = 0;

    for (int r = 0; r < nrules; r++) {
        if (strcmp(rules[r].egress, x->egress) != 0)
            continue;
        if (strcmp(rules[r].site, x->site) == 0)
            rule = &rules[r];
        else if (rule == NULL && strcmp(rules[r].site, "*") == 0)
            rule = &rules[r];
    }
    if (rule)
        iv = pace_interval(rule->per_second, rule->per_minute);
    for (int i = 0; i < nf; i++) {
        if (strcmp(f[i].site, x->site) != 0 || strcmp(f[i].egress, x->egress) != 0)
            continue;
        if (f[i].suspend && (f[i].tenant[0] == '\0' || strcmp(f[i].tenant, k->w->tenant_id) == 0))
            *hold = f[i].until > *hold ? f[i].until : *hold;
        else if (!f[i].suspend && f[i].interval > iv)
            iv = f[i].interval;
    }
    return iv;
}

static void
member_row(struct db *d, struct db_res *r, void *out)
{
    struct egress_member *x = out;
    const char *eg = d->ops->col_text(r, 0);

    snprintf(x->egress, sizeof(x->egress), "%s", eg ? eg : "");
    x->weight = d->ops->col_int(r, 1);
}

static bool
egress_up(const struct claim_pacing *pc, const char *name)
{
    if (pc->up == NULL)
        return true;
    for (int i = 0; i < pc->nup; i++)
        if (strcmp(pc->up[i], name) == 0)
            return true;
    return false;
}

/*
 * The tenant's pool's members this process can send through (k->eg:
 * known to it and not backing off): a member that is down gives its share
 * to the others.  When every member is down
 * (*none) nothing is claimed: the rows wait, their attempts unspent, until
 * one answers again.  A pool without members (none can be made through
 * the API) sends through 'default'.
 */
static mc_err
claim_egresses(struct claim *k, bool *none)
{
    struct db_param p[] = {P_TEXT(k->ctx.pool)};
    struct egress_member *all = NULL;
    int nall = 0;
    mc_err err;

    *none = false;
    err = db_fetch_all(&k->d,
                       "SELECT egress, weight FROM egress_pool_members WHERE pool = $1 "
                       "ORDER BY egress",
                       p, 1, member_row, sizeof(*all), (void **)&all, &nall);
    if (err != MC_ERR_OK) {
        free(all);
        return err;
    }
    if (nall == 0) {
        all = xrealloc(all, sizeof(*all));
        memset(all, 0, sizeof(*all));
        snprintf(all[0].egress, sizeof(all[0].egress), "default");
        all[0].weight = 1;
        nall = 1;
    }
    k->eg = xcalloc((size_t)nall, sizeof(*k->eg));
    for (int i = 0; i < nall; i++)
        if (egress_up(k->pc, all[i].egress)) {
            k->eg[k->neg++] = all[i];
            k->eg_total += all[i].weight;
        }
    free(all);
    *none = k->neg == 0;
    return MC_ERR_OK;
}

/* splitmix64: a well-spread sequence from any seed, for the weighted choice. */
static uint64_t
mix_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Gives each picked row an egress: member i with probability weight_i / total. */
static void
claim_egress_assign(struct claim *k)
{
    uint64_t state = (uint64_t)k->pc->seed ^ (uint64_t)k->now;

    for (int i = 0; i < k->npk; i++) {
        int64_t r = (int64_t)(mix_next(&state) % (uint64_t)k->eg_total);
        int m = 0;
        while (m < k->neg - 1 && r >= k->eg[m].weight)
            r -= k->eg[m++].weight;
        k->pk[i].egress = k->eg[m].egress;
    }
}

/* The sites' paced scopes of the picked rows, and the rows automation holds. */
static mc_err
claim_pace_sites(struct claim *k)
{
    struct db_param p[] = {P_INT(k->now)};
    struct site_rule *rules = NULL;
    struct in_force *f = NULL;
    int nrules = 0, nf = 0, from = k->nsc;
    char key[96];
    mc_err err;

    err = db_fetch_all(&k->d,
                       "SELECT site, per_second, per_minute, egress FROM shaping_rules WHERE "
                       "per_second IS NOT NULL OR per_minute IS NOT NULL",
                       NULL, 0, site_rule_row, sizeof(*rules), (void **)&rules, &nrules);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&k->d,
                           "SELECT site, tenant_key, action, per_second, per_minute, until_at, "
                           "egress FROM shaping_state WHERE until_at > $1",
                           p, NPARAMS(p), in_force_row, sizeof(*f), (void **)&f, &nf);
    for (int i = 0; i < k->npk && err == MC_ERR_OK && (nrules > 0 || nf > 0); i++) {
        int64_t iv;
        if (k->pk[i].site[0] == '\0')
            continue;
        iv = site_interval(k, &k->pk[i], rules, nrules, f, nf, &k->pk[i].hold);
        if (iv <= 0)
            continue;
        snprintf(key, sizeof(key), "site:%s/%s", k->pk[i].egress, k->pk[i].site);
        scope_add(k, key, iv);
    }
    free(rules);
    free(f);
    if (err != MC_ERR_OK)
        return err;
    if (k->nsc > from)
        qsort(k->sc + from, (size_t)(k->nsc - from), sizeof(*k->sc), scope_cmp);
    for (int i = 0; i < k->npk; i++) {
        if (k->pk[i].site[0] == '\0')
            continue;
        snprintf(key, sizeof(key), "site:%s/%s", k->pk[i].egress, k->pk[i].site);
        for (int s = from; s < k->nsc; s++)
            if (strcmp(k->sc[s].id, key) == 0)
                k->pk[i].scope = s;
    }
    return pace_load(k, from);
}

/*
 * Gives each picked row its slot, in order: the latest of what its paced
 * scopes allow.  A row whose slot lies past the horizon is not taken; when
 * its site is what holds it back it is deferred to its expected slot (and
 * the next row is tried), otherwise the tenant or campaign is spent and
 * the rest stay for a later claim.
 */
static void
claim_pace_assign(struct claim *k)
{
    int64_t until = k->now + k->pc->horizon_us, burst = k->pc->burst;

    for (int i = 0; i < k->npk; i++) {
        struct pick *x = &k->pk[i];
        int64_t t = k->now, t_fixed = k->now;
        if (x->hold > k->now) { /* suspended: waits, its attempt unspent */
            x->slot = x->hold;
            continue;
        }
        for (int s = 0; s < k->nfixed; s++) {
            int64_t e = pace_earliest(&k->sc[s].p, burst, k->now);
            t_fixed = e > t_fixed ? e : t_fixed;
        }
        t = t_fixed;
        if (x->scope >= 0) {
            int64_t e = pace_earliest(&k->sc[x->scope].p, burst, k->now);
            t = e > t ? e : t;
        }
        if (t_fixed > until)
            break;
        if (t > until) {
            struct scope *s = &k->sc[x->scope];
            s->defer_at = s->defer_at > t ? s->defer_at : t;
            x->slot = s->defer_at;
            s->defer_at += s->p.interval_us;
            continue;
        }
        for (int s = 0; s < k->nfixed; s++)
            pace_take(&k->sc[s].p, t);
        if (x->scope >= 0)
            pace_take(&k->sc[x->scope].p, t);
        x->take = true;
        x->slot = k->nsc > 0 ? t : 0;
    }
}

/* Writes back the scopes' advanced state and defers the rows held back by their site. */
static mc_err
claim_pace_save(struct claim *k)
{
    json_t *defer = json_array();
    mc_err err = MC_ERR_OK;

    for (int i = 0; i < k->nsc && err == MC_ERR_OK; i++) {
        const struct scope *x = &k->sc[i];
        struct db_param p[] = {P_TEXT(x->id), P_INT(x->p.tat), P_INT(x->p.interval_us)};
        if (x->p.tat != x->tat0 || x->p.interval_us != x->interval0)
            err = db_exec(&k->d, "UPDATE rate_pace SET tat = $2, interval_us = $3 "
                          "WHERE scope_id = $1", p, NPARAMS(p), NULL);
    }
    for (int i = 0; i < k->npk; i++)
        if (!k->pk[i].take && k->pk[i].slot > 0)
            json_array_append_new(defer, json_pack("{s:s, s:I}", "id", k->pk[i].id, "t",
                                                   (json_int_t)k->pk[i].slot));
    if (err == MC_ERR_OK && json_array_size(defer) > 0) {
        char *s = json_dumps(defer, JSON_COMPACT);
        struct db_param p[] = {P_TEXT(s)};
        err = db_exec(&k->d, k->is_pg ? sql_defer_pg : sql_defer_sqlite, p, 1, NULL);
        free(s);
    }
    json_decref(defer);
    return err;
}

/* The intervals of the scopes that paced x: how late the worker may still send it. */
static void
claim_paced_by(const struct claim *k, const struct pick *x, struct delivery_msg *m)
{
    if (x->slot == 0)
        return;
    for (int s = 0; s < k->nfixed; s++) {
        if (strcmp(k->sc[s].id, k->w->tenant_id) == 0)
            m->pace_tenant_us = k->sc[s].p.interval_us;
        else if (strcmp(k->sc[s].id, k->w->campaign_id) == 0)
            m->pace_campaign_us = k->sc[s].p.interval_us;
    }
    if (x->scope >= 0)
        m->pace_site_us = k->sc[x->scope].p.interval_us;
}

/* Orders pointers to picks by id (ids are lowercase: strcmp is exact). */
static int
pick_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct pick *const *)a)->id, (*(const struct pick *const *)b)->id);
}

/* Leases the picked rows pacing let go (k->v), each with its slot. */
static mc_err
claim_take(struct claim *k, int64_t lease_us)
{
    json_t *ids = json_array();
    char *ids_s;
    mc_err err;

    for (int i = 0; i < k->npk; i++)
        if (k->pk[i].take)
            json_array_append_new(ids, json_string(k->pk[i].id));
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        return MC_ERR_OK;
    }
    ids_s = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    if (ids_s == NULL)
        return MC_ERR_INTERNAL;
    struct db_param p[] = {P_TEXT(k->owner), P_TIME(k->now + lease_us), P_TEXT(ids_s),
                           P_TIME(k->now)};
    /* SQLite: the claim counts what it took itself (store_int.h), not row by row. */
    if ((err = db_count_trigger_pause(&k->d)) == MC_ERR_OK) {
        mc_err resumed;
        err = db_fetch_all(&k->d, k->is_pg ? sql_take_pg : sql_take_sqlite, p, NPARAMS(p),
                           msg_row, sizeof(*k->v.items), (void **)&k->v.items, &k->v.n);
        resumed = db_count_trigger_resume(&k->d);
        if (err == MC_ERR_OK)
            err = resumed;
    }
    if (err == MC_ERR_OK)
        err = db_counts_move(&k->d, k->w->campaign_id, COUNT_PENDING_TO_SENDING, k->v.n);
    free(ids_s);
    /* Each taken row's slot and egress from its pick, found by binary search
     * (a scan per row was a measurable share of a claim's CPU). */
    const struct pick **by_id = xcalloc((size_t)(k->npk > 0 ? k->npk : 1), sizeof(*by_id));
    int nby = 0;
    for (int j = 0; j < k->npk; j++)
        if (k->pk[j].take)
            by_id[nby++] = &k->pk[j];
    qsort(by_id, (size_t)nby, sizeof(*by_id), pick_cmp);
    for (int i = 0; i < k->v.n && err == MC_ERR_OK; i++) {
        struct pick key, *kp = &key;
        const struct pick **hit;
        snprintf(key.id, sizeof(key.id), "%s", k->v.items[i].id);
        hit = bsearch(&kp, by_id, (size_t)nby, sizeof(*by_id), pick_cmp);
        if (hit == NULL)
            continue;
        k->v.items[i].not_before = (*hit)->slot;
        claim_paced_by(k, *hit, &k->v.items[i]);
        snprintf(k->v.items[i].egress, sizeof(k->v.items[i].egress), "%s", (*hit)->egress);
    }
    free(by_id);
    return err;
}

/* A JSON array (owned text) of the taken rows' ids, or of their recipients' ids. */
static char *
claim_ids_json(const struct claim *k, bool recipients)
{
    json_t *a = json_array();
    char *s;

    for (int i = 0; i < k->v.n; i++) {
        const char *id = recipients ? k->v.items[i].recipient_id : k->v.items[i].id;
        if (id[0])
            json_array_append_new(a, json_string(id));
    }
    s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

static int
rcpt_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rcpt_data *)a)->id, ((const struct rcpt_data *)b)->id);
}

/* The recipients' data for rendering (k->rd, sorted by id), and whether each may be mailed. */
static mc_err
claim_recipients(struct claim *k)
{
    char *ids = claim_ids_json(k, true);
    struct db_param p[] = {P_TEXT(ids)};
    mc_err err = ids == NULL ? MC_ERR_INTERNAL
                             : db_fetch_all(&k->d, k->is_pg ? sql_rcpts_pg : sql_rcpts_sqlite, p,
                                            NPARAMS(p), rcpt_row, sizeof(*k->rd),
                                            (void **)&k->rd, &k->nrd);

    free(ids);
    if (err == MC_ERR_OK && k->nrd > 1) /* (qsort and bsearch take no NULL, even for 0) */
        qsort(k->rd, (size_t)k->nrd, sizeof(*k->rd), rcpt_cmp);
    return err;
}

/* The taken row m's recipient data, or NULL (deleted). */
static struct rcpt_data *
claim_rcpt(const struct claim *k, const struct delivery_msg *m)
{
    struct rcpt_data key;

    if (m->recipient_id[0] == '\0')
        return NULL;
    snprintf(key.id, sizeof(key.id), "%s", m->recipient_id);
    return k->nrd > 0 ? bsearch(&key, k->rd, (size_t)k->nrd, sizeof(*k->rd), rcpt_cmp) : NULL;
}

/* True when the taken row m has a recipient claim_recipients found mailable. */
static bool
claim_mailable(const struct claim *k, const struct delivery_msg *m)
{
    const struct rcpt_data *x = claim_rcpt(k, m);

    return x != NULL && x->mailable;
}

/* The taken rows whose recipient may no longer be mailed become 'suppressed' (k->gone). */
static mc_err
claim_suppress(struct claim *k)
{
    json_t *a = json_array();
    char *ids;
    mc_err err = MC_ERR_OK;

    for (int i = 0; i < k->v.n; i++)
        if (!claim_mailable(k, &k->v.items[i]))
            json_array_append_new(a, json_string(k->v.items[i].id));
    if (json_array_size(a) == 0) {
        json_decref(a);
        return MC_ERR_OK;
    }
    ids = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    struct db_param p[] = {P_TIME(k->now), P_TEXT(k->owner), P_TEXT(ids)};
    /* Never bind NULL as the list: it would match nothing and suppress nobody. */
    err = ids == NULL ? MC_ERR_INTERNAL
                      : db_fetch_all(&k->d, k->is_pg ? sql_suppress_pg : sql_suppress_sqlite, p,
                                     NPARAMS(p), outcome_row, sizeof(*k->gone),
                                     (void **)&k->gone, &k->ngone);
    /* message.suppressed, in the claim's transaction. */
    if (err == MC_ERR_OK && k->ngone > 0) {
        struct event_batch ev;
        db_events_init(&ev);
        for (int g = 0; g < k->ngone; g++) {
            struct event_ref ref = {k->gone[g].campaign_id, k->gone[g].id,
                                    k->gone[g].recipient_id, k->gone[g].to_address};
            db_events_add(&ev, k->gone[g].tenant_id, "message.suppressed", &ref,
                          json_pack("{s:s}", "reason",
                                    "the recipient is no longer active or its address is "
                                    "suppressed"));
        }
        err = db_events_write(&k->d, &ev, k->now);
        db_events_cleanup(&ev);
    }
    free(ids);
    return err;
}

/* What is handed out counts in the windows; the tenant's always (its
 * limits can be switched on later), the campaign's when it has limits. */
static mc_err
claim_count(struct claim *k)
{
    int64_t n = k->v.n - k->ngone;
    mc_err err = MC_ERR_OK;

    if (n <= 0)
        return MC_ERR_OK;
    err = window_add(&k->d, k->w->tenant_id, k->now, n);
    if (err == MC_ERR_OK && (k->ctx.c_minute || k->ctx.c_hour))
        err = window_add(&k->d, k->w->campaign_id, k->now, n);
    return err;
}

/* Keeps in k->v what is to be sent, each with its recipient's data (moved from k->rd). */
static void
claim_assemble(struct claim *k)
{
    struct delivery_vec *v = &k->v;
    int keep = 0;

    for (int i = 0; i < v->n; i++) {
        struct delivery_msg *m = &v->items[i];
        bool suppressed = false;
        for (int g = 0; g < k->ngone && !suppressed; g++)
            suppressed = strcmp(k->gone[g].id, m->id) == 0;
        if (suppressed) {
            free(m->to_address);
            continue;
        }
        memcpy(m->tenant_id, k->w->tenant_id, sizeof(m->tenant_id));
        memcpy(m->campaign_id, k->w->campaign_id, sizeof(m->campaign_id));
        m->claimed_at = k->now;
        struct rcpt_data *x = claim_rcpt(k, m);
        if (x != NULL) {
            m->name = x->name;
            m->first_name = x->first_name;
            m->last_name = x->last_name;
            m->attributes = x->attributes;
            x->name = x->first_name = x->last_name = x->attributes = NULL;
        }
        v->items[keep++] = *m;
    }
    v->n = keep;
}

mc_err
store_delivery_claim(struct store *st, const struct delivery_work *w, const char *owner,
                     int64_t now, int64_t lease_us, int max, const struct claim_pacing *pc,
                     struct delivery_vec *out)
{
    struct claim k = {.w = w, .owner = owner, .pc = pc, .now = now};
    int64_t allow = 0;
    bool no_egress = false;
    mc_err err;

    memset(out, 0, sizeof(*out));
    if ((err = db_get(st, &k.d)) != MC_ERR_OK)
        return err;
    k.is_pg = k.d.ops->dialect == DB_PG;
    if ((err = db_begin(&k.d, true)) != MC_ERR_OK)
        goto out;
    if ((err = claim_ctx_load(&k)) != MC_ERR_OK || !k.ctx.sending)
        goto rollback;
    if ((err = claim_egresses(&k, &no_egress)) != MC_ERR_OK || no_egress)
        goto rollback;
    if ((err = claim_allowance(&k, max, &allow)) != MC_ERR_OK || allow <= 0)
        goto rollback;
    if ((err = claim_pace_fixed(&k, &allow)) != MC_ERR_OK || allow <= 0)
        goto rollback;
    if ((err = claim_pick(&k, allow)) != MC_ERR_OK || k.npk == 0)
        goto rollback;
    claim_egress_assign(&k);
    if ((err = claim_pace_sites(&k)) != MC_ERR_OK)
        goto rollback;
    claim_pace_assign(&k);
    if ((err = claim_pace_save(&k)) != MC_ERR_OK || (err = claim_take(&k, lease_us)) != MC_ERR_OK)
        goto rollback;
    if (k.v.n == 0) { /* only deferrals */
        err = db_commit(&k.d);
        goto out;
    }
    if ((err = claim_recipients(&k)) == MC_ERR_OK && (err = claim_suppress(&k)) == MC_ERR_OK &&
        (err = claim_count(&k)) == MC_ERR_OK)
        err = db_commit(&k.d);
    if (err != MC_ERR_OK)
        goto rollback;
    claim_assemble(&k);
    if (k.ngone > 0)
        log_info("event=suppressed_at_claim tenant=%s campaign=%s n=%d", w->tenant_id,
                 w->campaign_id, k.ngone);
    *out = k.v;
    memset(&k.v, 0, sizeof(k.v));
    goto out;
rollback:
    db_rollback(&k.d);
out:
    db_put(&k.d);
    for (int r = 0; r < k.nrd; r++) {
        free(k.rd[r].name);
        free(k.rd[r].first_name);
        free(k.rd[r].last_name);
        free(k.rd[r].attributes);
    }
    free(k.rd);
    outcome_rows_free(k.gone, k.ngone);
    free(k.pk);
    free(k.sc);
    free(k.eg);
    delivery_vec_cleanup(&k.v);
    return err;
}

mc_err
claim_rate_usage_prune(struct db *d, int64_t now)
{
    struct db_param p[] = {P_INT(window_floor(&windows[0], now)),
                           P_INT(window_floor(&windows[1], now)),
                           P_INT(window_floor(&windows[2], now))};

    return db_exec(d,
                   "DELETE FROM rate_usage WHERE (width = 1 AND bucket < $1) OR "
                   "(width = 60 AND bucket < $2) OR (width = 600 AND bucket < $3)",
                   p, NPARAMS(p), NULL);
}
