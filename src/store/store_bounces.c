/*
 * store_bounces.c - bounce and complaint records, the tenants' bounce
 * policies, and the one transaction that records a report and applies the
 * policy (see store.h).  It does not parse reports or verify references:
 * the intake pipeline (bounce/intake.c) hands it a verified message id.
 *
 * DESIGN
 * A report names a message by its signed reference; that message alone
 * decides tenant, campaign and recipient.  An item naming another address
 * is recorded as a stranger and changes nothing, so a forged DSN cannot
 * suppress anyone.  The same report about the same message again (an MTA
 * retrying after a lost 250) is recorded as a duplicate and changes nothing
 * either.  Soft bounces are counted from the records themselves: distinct
 * messages within the window, received after the address's last delivery
 * (a message sent and never reported), so nothing on the delivery path
 * writes bounce state.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

#define DAY_US (86400LL * 1000000LL)

static const char *const outcome_names[] = {"suppressed", "counted",   "recorded",
                                            "stranger",   "unreferenced", "duplicate"};

const char *
bounce_outcome_str(enum bounce_outcome o)
{
    return outcome_names[o];
}

void
bounce_policy_cleanup(struct bounce_policy *p)
{
    if (p == NULL)
        return;
    free(p->bounce_domain);
    p->bounce_domain = NULL;
}

void
bounce_rec_cleanup(struct bounce_rec *b)
{
    if (b == NULL)
        return;
    free(b->email);
    free(b->kind);
    free(b->class);
    free(b->status);
    free(b->action);
    free(b->diagnostic);
    free(b->reporting_mta);
    free(b->remote_mta);
    free(b->feedback_type);
    free(b->source);
    free(b->outcome);
    free(b->raw);
    memset(b, 0, sizeof(*b));
}

void
bounce_rec_vec_cleanup(struct bounce_rec_vec *v)
{
    for (int i = 0; i < v->n; i++)
        bounce_rec_cleanup(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

/* ---- policies ---- */

static void
policy_row(struct db *d, struct db_res *r, void *out)
{
    struct bounce_policy *p = out;

    p->soft_limit = d->ops->col_int(r, 0);
    p->soft_window_days = d->ops->col_int(r, 1);
    p->soft_suppress_days = d->ops->col_int(r, 2);
    p->bounce_domain = db_col_dup(d, r, 3);
    p->updated_at = d->ops->col_time(r, 4);
}

static mc_err
policy_get(struct db *d, const char *tenant_id, struct bounce_policy *out)
{
    struct db_param p[] = {P_TEXT(tenant_id)};
    struct bounce_policy def = BOUNCE_POLICY_DEFAULTS;
    mc_err err;

    *out = def;
    err = db_fetch_one(d,
                       "SELECT soft_limit, soft_window_days, soft_suppress_days, bounce_domain, "
                       "updated_at FROM bounce_policies WHERE tenant_id = $1",
                       p, NPARAMS(p), policy_row, out);
    return err == MC_ERR_NOT_FOUND ? MC_ERR_OK : err;
}

mc_err
store_bounce_policy_get(struct store *st, const char *tenant_id, struct bounce_policy *out)
{
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = policy_get(&d, tenant_id, out);
    db_put(&d);
    return err;
}

mc_err
store_bounce_policy_put(struct store *st, const char *tenant_id, const struct bounce_policy *pol,
                        struct bounce_policy *out)
{
    struct db_param p[] = {P_TEXT(tenant_id),           P_INT(pol->soft_limit),
                           P_INT(pol->soft_window_days), P_INT(pol->soft_suppress_days),
                           P_TEXT(pol->bounce_domain),   P_TIME(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(tenant_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d,
                  "INSERT INTO bounce_policies (tenant_id, soft_limit, soft_window_days, "
                  "soft_suppress_days, bounce_domain, updated_at) SELECT t.id, $2, $3, $4, $5, $6 "
                  "FROM tenants t WHERE t.id = $1 ON CONFLICT (tenant_id) DO UPDATE SET "
                  "soft_limit = excluded.soft_limit, soft_window_days = excluded.soft_window_days, "
                  "soft_suppress_days = excluded.soft_suppress_days, "
                  "bounce_domain = excluded.bounce_domain, updated_at = excluded.updated_at",
                  p, NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK && out)
        err = policy_get(&d, tenant_id, out);
    db_put(&d);
    return err;
}

/* ---- recording a report ---- */

struct msg_row {
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char *to_address; /* owned */
};

static void
msg_row(struct db *d, struct db_res *r, void *out)
{
    struct msg_row *m = out;

    db_col_uuid(d, r, 0, m->tenant_id);
    db_col_uuid(d, r, 1, m->campaign_id);
    db_col_uuid(d, r, 2, m->recipient_id);
    m->to_address = db_col_dup(d, r, 3);
}

static void
time_row(struct db *d, struct db_res *r, void *out)
{
    *(int64_t *)out = d->ops->col_time(r, 0);
}

/* A lowercase copy (ASCII letters only: the stored twins are made the same way). */
static char *
lower_dup(const char *s)
{
    char *l = xstrdup(s);

    for (char *p = l; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    return l;
}

/* The campaign counter a class adds to, or NULL. */
static const char *
counter_of(const char *cls)
{
    if (strcmp(cls, "hard") == 0)
        return "UPDATE campaigns SET bounced_hard_count = bounced_hard_count + 1 WHERE id = $1";
    if (strcmp(cls, "soft") == 0 || strcmp(cls, "undetermined") == 0)
        return "UPDATE campaigns SET bounced_soft_count = bounced_soft_count + 1 WHERE id = $1";
    if (strcmp(cls, "complaint") == 0)
        return "UPDATE campaigns SET complained_count = complained_count + 1 WHERE id = $1";
    if (strcmp(cls, "block") == 0)
        return "UPDATE campaigns SET blocked_count = blocked_count + 1 WHERE id = $1";
    return NULL;
}

/* What one item is about, for the policy. */
struct target {
    const char *tenant_id;
    const char *campaign_id; /* NULL when none */
    const char *message_id;  /* NULL when none */
    const char *email;
    const char *email_lc;
    const char *diagnostic;
    int64_t now;
};

/* Suppresses t's address (db_suppress); expires 0 is for ever. */
static mc_err
suppress(struct db *d, const struct target *t, const char *source, const char *cause,
         int64_t expires, struct event_batch *ev)
{
    struct suppress_req r = {t->tenant_id, t->email,      t->email_lc,   source, cause,
                             t->campaign_id, t->message_id, t->diagnostic, expires, t->now};

    return db_suppress(d, &r, ev);
}

/*
 * Soft bounces of t's address that count: on distinct messages (other than
 * this one), within the window, received after its last delivery.
 */
static mc_err
soft_count(struct db *d, const struct target *t, const struct bounce_policy *pol, int64_t *n)
{
    int64_t since = t->now - pol->soft_window_days * DAY_US, delivered = 0;
    struct db_param pd[] = {P_TEXT(t->tenant_id), P_TEXT(t->email_lc), P_TIME(since),
                            P_TEXT(t->message_id)};
    mc_err err;

    /* Through the address's recipient rows and their lists' campaigns, so each
     * message is one probe of UNIQUE (campaign_id, recipient_id). */
    err = db_fetch_one(d,
                       "SELECT MAX(m.sent_at) FROM recipients r JOIN campaigns c ON "
                       "c.recipient_list_id = r.recipient_list_id AND c.tenant_id = r.tenant_id "
                       "JOIN scheduled_messages m ON m.campaign_id = c.id AND "
                       "m.recipient_id = r.id "
                       "WHERE r.tenant_id = $1 AND r.email_lc = $2 AND m.status = 'sent' AND "
                       "m.sent_at >= $3 AND (m.id <> $4 OR $4 IS NULL) AND NOT EXISTS "
                       "(SELECT 1 FROM bounces b WHERE b.message_id = m.id)",
                       pd, NPARAMS(pd), time_row, &delivered);
    if (err != MC_ERR_OK)
        return err;
    if (delivered > since)
        since = delivered;
    struct db_param pc[] = {P_TEXT(t->tenant_id), P_TEXT(t->email_lc), P_TIME(since),
                            P_TEXT(t->message_id)};
    return db_one_int(d,
                      "SELECT COUNT(DISTINCT COALESCE(message_id, id)) FROM bounces WHERE "
                      "tenant_id = $1 AND email_lc = $2 AND class IN ('soft', 'undetermined') AND "
                      "outcome IN ('counted', 'suppressed') AND received_at > $3 AND "
                      "(message_id <> $4 OR message_id IS NULL OR $4 IS NULL)",
                      pc, NPARAMS(pc), n);
}

/*
 * The policy for one item that names the message's recipient (or the
 * tenant's address, from the API): what it suppresses and counts.
 * The one place every applied bounce passes, so its event is written here.
 */
static mc_err
apply(struct db *d, const struct target *t, const char *cls, const char *kind,
      const struct bounce_policy *pol, enum bounce_outcome *out)
{
    const char *counter = counter_of(cls);
    struct event_batch ev;
    mc_err err = MC_ERR_OK;

    *out = BOUNCE_OUT_RECORDED;
    if (strcmp(kind, "auto_reply") == 0 || strcmp(kind, "not_bounce") == 0)
        return MC_ERR_OK;
    /* A feedback report other than abuse, fraud or a virus is recorded only. */
    if (strcmp(kind, "arf") == 0 && strcmp(cls, "complaint") != 0)
        return MC_ERR_OK;
    if (counter == NULL)
        return MC_ERR_OK;
    if (t->campaign_id) {
        struct db_param pc[] = {P_TEXT(t->campaign_id)};
        err = db_exec(d, counter, pc, NPARAMS(pc), NULL);
    }
    *out = BOUNCE_OUT_COUNTED;
    if (err != MC_ERR_OK)
        return err;
    db_events_init(&ev);
    if (strcmp(cls, "hard") == 0) {
        err = suppress(d, t, "bounce", "hard_bounce", 0, &ev);
        if (err == MC_ERR_OK)
            err = db_recipients_mark(d, t->tenant_id, t->email_lc, "bounced", t->now);
        *out = BOUNCE_OUT_SUPPRESSED;
    } else if (strcmp(cls, "complaint") == 0) {
        err = suppress(d, t, "complaint", "complaint", 0, &ev);
        if (err == MC_ERR_OK)
            err = db_recipients_mark(d, t->tenant_id, t->email_lc, "complained", t->now);
        *out = BOUNCE_OUT_SUPPRESSED;
    } else if (strcmp(cls, "soft") == 0 || strcmp(cls, "undetermined") == 0) {
        int64_t n = 0;
        err = soft_count(d, t, pol, &n);
        if (err == MC_ERR_OK && n + 1 >= pol->soft_limit) {
            err = suppress(d, t, "bounce", "soft_bounce",
                           t->now + pol->soft_suppress_days * DAY_US, &ev);
            *out = BOUNCE_OUT_SUPPRESSED;
        }
    }
    if (err == MC_ERR_OK)
        err = db_events_write(d, &ev, t->now);
    db_events_cleanup(&ev);
    if (err == MC_ERR_OK && t->message_id && strcmp(cls, "block") != 0) {
        struct db_param pm[] = {P_TEXT(t->message_id), P_TIME(t->now), P_TEXT(cls),
                                P_TEXT(t->diagnostic)};
        /* Not a status change: the message stays 'sent'; these say what came back. */
        err = db_exec(d,
                      "UPDATE scheduled_messages SET bounced_at = $2, bounce_type = $3, "
                      "bounce_reason = $4 WHERE id = $1",
                      pm, NPARAMS(pm), NULL);
    }
    /* message.bounced or message.complained, in the intake's transaction. */
    if (err == MC_ERR_OK && t->message_id) {
        json_t *detail = json_pack("{s:s, s:s, s:o, s:b}", "bounce_type", cls, "kind", kind,
                                   "diagnostic",
                                   t->diagnostic ? json_string(t->diagnostic) : json_null(),
                                   "suppressed", *out == BOUNCE_OUT_SUPPRESSED);
        err = db_event_message(d, t->tenant_id, t->message_id,
                               strcmp(cls, "complaint") == 0 ? "message.complained"
                                                             : "message.bounced",
                               detail, t->now);
        json_decref(detail);
    }
    return err;
}

/* A record of the same class about the same message and address already there? */
static mc_err
is_duplicate(struct db *d, const struct target *t, const char *cls, bool *dup)
{
    struct db_param p[] = {P_TEXT(t->message_id), P_TEXT(cls), P_TEXT(t->email_lc)};
    int64_t n = 0;
    mc_err err;

    *dup = false;
    if (t->message_id == NULL)
        return MC_ERR_OK;
    err = db_one_int(d,
                     "SELECT COUNT(*) FROM (SELECT 1 FROM bounces WHERE message_id = $1 AND "
                     "class = $2 AND email_lc = $3 AND outcome <> 'duplicate' LIMIT 1) x",
                     p, NPARAMS(p), &n);
    *dup = n > 0;
    return err;
}

/*
 * What a report may keep of its raw text.  Reports that change nothing must
 * not fill the disk (an attacker review wrote 4 MB a second through one
 * session): a duplicate keeps none (the first has it), an unreferenced one
 * (anyone can write to postmaster) keeps BOUNCE_RAW_UNMATCHED_MAX bytes.
 */
#define BOUNCE_RAW_UNMATCHED_MAX (16 * 1024)

static mc_err
insert_record(struct db *d, const struct bounce_report_in *in, const char *tenant_id,
              const struct msg_row *m, const struct bounce_item *it, const char *email,
              const char *email_lc, enum bounce_outcome outcome, char id[MC_UUID_LEN + 1])
{
    const char *raw = outcome == BOUNCE_OUT_DUPLICATE ? NULL : in->raw;
    bool truncated = raw != NULL && in->raw_truncated;
    char *cut = NULL;
    mc_err err;

    if (raw && outcome == BOUNCE_OUT_UNREFERENCED && strlen(raw) > BOUNCE_RAW_UNMATCHED_MAX) {
        size_t n = BOUNCE_RAW_UNMATCHED_MAX;
        while (n > 0 && ((unsigned char)raw[n] & 0xC0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
        raw = cut = xstrndup(raw, n);
        truncated = true;
    }
    crypto_uuid7(id);
    struct db_param p[] = {P_TEXT(id),
                           P_TEXT(tenant_id),
                           P_TEXT(m && m->tenant_id[0] ? in->message_id : NULL),
                           P_TEXT(m && m->campaign_id[0] ? m->campaign_id : NULL),
                           P_TEXT(m && m->recipient_id[0] ? m->recipient_id : NULL),
                           P_TEXT(email),
                           P_TEXT(email_lc),
                           P_TEXT(in->kind),
                           P_TEXT(it->class),
                           P_TEXT(it->status && *it->status ? it->status : NULL),
                           P_TEXT(it->action),
                           P_TEXT(it->diagnostic),
                           P_TEXT(in->reporting_mta),
                           P_TEXT(it->remote_mta),
                           P_TEXT(in->feedback_type),
                           P_TEXT(in->source),
                           P_TEXT(bounce_outcome_str(outcome)),
                           P_TEXT(raw),
                           P_BOOL(truncated),
                           P_TIME(in->now)};
    err = db_exec(d,
                  "INSERT INTO bounces (id, tenant_id, message_id, campaign_id, recipient_id, "
                  "email, email_lc, kind, class, status, action, diagnostic, reporting_mta, "
                  "remote_mta, feedback_type, source, outcome, raw, raw_truncated, received_at) "
                  "VALUES ($1, $2, $3, (SELECT c.id FROM campaigns c WHERE c.id = $4), $5, $6, "
                  "$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                  p, NPARAMS(p), NULL);
    free(cut);
    return err;
}

/* Whether a report can be recorded at all (checked before any transaction). */
static mc_err
record_check(const struct bounce_report_in *in)
{
    int n = in->n > 0 ? in->n : 1;

    if (n > (int)(sizeof(((struct bounce_applied *)0)->items) /
                  sizeof(((struct bounce_applied *)0)->items[0])))
        return MC_ERR_INVALID;
    if (in->tenant_id && !store_id_ok(in->tenant_id))
        return MC_ERR_NOT_FOUND;
    return MC_ERR_OK;
}

/*
 * The tenant a batch last locked and its policy: the next report of the
 * same tenant in the transaction needs neither again (two round trips a
 * report fewer on PostgreSQL; the lock is held until the commit).
 */
struct batch_tenant {
    char tenant_id[MC_UUID_LEN + 1]; /* "" when none yet */
    struct bounce_policy pol;        /* owned */
};

/* Records one report inside the caller's transaction; *out written whatever happens. */
static mc_err
record_one(struct db *d, struct batch_tenant *bt, const struct bounce_report_in *in,
           struct bounce_applied *out)
{
    static const struct bounce_item none = {NULL, "undetermined", NULL, NULL, NULL, NULL};
    struct bounce_policy pol = BOUNCE_POLICY_DEFAULTS;
    struct msg_row m;
    const char *tenant_id = NULL;
    bool found = false;
    int n = in->n > 0 ? in->n : 1;
    mc_err err = MC_ERR_OK;

    memset(out, 0, sizeof(*out));
    memset(&m, 0, sizeof(m));
    if (in->message_id && store_id_ok(in->message_id)) {
        struct db_param p[] = {P_TEXT(in->message_id)};
        err = db_fetch_one(d,
                           "SELECT tenant_id, campaign_id, recipient_id, to_address FROM "
                           "scheduled_messages WHERE id = $1",
                           p, NPARAMS(p), msg_row, &m);
        found = err == MC_ERR_OK;
        if (err == MC_ERR_NOT_FOUND)
            err = MC_ERR_OK;
        /* Another tenant's message is no message of this tenant's. */
        if (found && in->tenant_id && strcmp(m.tenant_id, in->tenant_id) != 0) {
            found = false;
            free(m.to_address);
            memset(&m, 0, sizeof(m));
        }
        if (err == MC_ERR_OK && !found && in->tenant_id)
            err = MC_ERR_NOT_FOUND;
    }
    if (err == MC_ERR_OK && !found && in->tenant_id) {
        struct db_param p[] = {P_TEXT(in->tenant_id)};
        int64_t one = 0;
        err = db_one_int(d, "SELECT 1 FROM tenants WHERE id = $1", p, NPARAMS(p), &one);
    }
    tenant_id = found ? m.tenant_id : in->tenant_id;
    if (err == MC_ERR_OK && tenant_id && strcmp(bt->tenant_id, tenant_id) != 0) {
        bt->tenant_id[0] = '\0';
        bounce_policy_cleanup(&bt->pol);
        err = db_lock_tenant(d, tenant_id);
        if (err == MC_ERR_OK)
            err = policy_get(d, tenant_id, &bt->pol);
        if (err == MC_ERR_OK)
            memcpy(bt->tenant_id, tenant_id, MC_UUID_LEN + 1);
    }
    if (tenant_id)
        pol = bt->pol; /* borrowed: soft_count and apply read its numbers only */
    for (int i = 0; i < n && err == MC_ERR_OK; i++) {
        const struct bounce_item *it = in->n > 0 ? &in->items[i] : &none;
        const char *email = it->email ? it->email : (found ? m.to_address : NULL);
        char *lc = email ? lower_dup(email) : NULL;
        enum bounce_outcome oc = BOUNCE_OUT_RECORDED;
        bool dup = false;
        struct target t = {tenant_id, found && m.campaign_id[0] ? m.campaign_id : NULL,
                           found ? in->message_id : NULL, email, lc, it->diagnostic, in->now};

        if (tenant_id == NULL)
            oc = BOUNCE_OUT_UNREFERENCED;
        else if (found && it->email && !str_ieq(it->email, m.to_address))
            oc = BOUNCE_OUT_STRANGER; /* a forged or misdirected report suppresses nobody */
        else if (email == NULL)
            oc = BOUNCE_OUT_RECORDED;
        else if (it->action && strncasecmp(it->action, "delayed", 7) == 0)
            oc = BOUNCE_OUT_RECORDED; /* a delay warning: the message may still arrive */
        else if ((err = is_duplicate(d, &t, it->class, &dup)) == MC_ERR_OK && dup)
            oc = BOUNCE_OUT_DUPLICATE;
        else if (err == MC_ERR_OK)
            err = apply(d, &t, it->class, in->kind, &pol, &oc);
        if (err == MC_ERR_OK)
            err = insert_record(d, in, tenant_id, found ? &m : NULL, it, email, lc, oc,
                                out->items[i].id);
        out->items[i].outcome = oc;
        free(lc);
    }
    if (err == MC_ERR_OK) {
        out->n = n;
        if (tenant_id)
            memcpy(out->tenant_id, tenant_id, MC_UUID_LEN + 1);
        if (found) {
            memcpy(out->campaign_id, m.campaign_id, MC_UUID_LEN + 1);
            memcpy(out->message_id, in->message_id, MC_UUID_LEN);
            out->message_id[MC_UUID_LEN] = '\0';
        }
    }
    free(m.to_address);
    return err;
}

mc_err
store_bounce_record(struct store *st, const struct bounce_report_in *in,
                    struct bounce_applied *out)
{
    return store_bounce_record_batch(st, &in, 1, out);
}

mc_err
store_bounce_record_batch(struct store *st, const struct bounce_report_in *const *ins, int n,
                          struct bounce_applied *outs)
{
    struct batch_tenant bt = {.pol = BOUNCE_POLICY_DEFAULTS};
    struct db d;
    mc_err err;

    for (int i = 0; i < n; i++)
        if ((err = record_check(ins[i])) != MC_ERR_OK)
            return err;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    for (int i = 0; i < n && err == MC_ERR_OK; i++)
        err = record_one(&d, &bt, ins[i], &outs[i]);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
    if (err != MC_ERR_OK)
        for (int i = 0; i < n; i++)
            memset(&outs[i], 0, sizeof(outs[i]));
out:
    bounce_policy_cleanup(&bt.pol);
    db_put(&d);
    return err;
}

/* ---- reading ---- */

#define BOUNCE_COLS                                                                               \
    "id, tenant_id, message_id, campaign_id, recipient_id, email, kind, class, status, action, "  \
    "diagnostic, reporting_mta, remote_mta, feedback_type, source, outcome, raw_truncated, "      \
    "received_at"

static void
bounce_row(struct db *d, struct db_res *r, void *out)
{
    struct bounce_rec *b = out;

    db_col_uuid(d, r, 0, b->id);
    db_col_uuid(d, r, 1, b->tenant_id);
    db_col_uuid(d, r, 2, b->message_id);
    db_col_uuid(d, r, 3, b->campaign_id);
    db_col_uuid(d, r, 4, b->recipient_id);
    b->email = db_col_dup(d, r, 5);
    b->kind = db_col_dup(d, r, 6);
    b->class = db_col_dup(d, r, 7);
    b->status = db_col_dup(d, r, 8);
    b->action = db_col_dup(d, r, 9);
    b->diagnostic = db_col_dup(d, r, 10);
    b->reporting_mta = db_col_dup(d, r, 11);
    b->remote_mta = db_col_dup(d, r, 12);
    b->feedback_type = db_col_dup(d, r, 13);
    b->source = db_col_dup(d, r, 14);
    b->outcome = db_col_dup(d, r, 15);
    b->raw_truncated = d->ops->col_bool(r, 16);
    b->received_at = d->ops->col_time(r, 17);
}

static void
bounce_raw_row(struct db *d, struct db_res *r, void *out)
{
    struct bounce_rec *b = out;

    bounce_row(d, r, out);
    b->raw = db_col_dup(d, r, 18);
}

/* $1 tenant, $2 campaign, $3 class, $4 email_lc, $5 since (each NULL for any; each
 * compared before its IS NULL, so PostgreSQL takes the column's type for it). */
#define BOUNCE_WHERE                                                                              \
    " WHERE tenant_id = $1 AND (campaign_id = $2 OR $2 IS NULL) AND (class = $3 OR $3 IS NULL) "  \
    "AND (email_lc = $4 OR $4 IS NULL) AND (received_at >= $5 OR $5 IS NULL)"

mc_err
store_bounce_list(struct store *st, const char *tenant_id, const struct bounce_filter *f,
                  const struct page *pg, struct bounce_rec_vec *out)
{
    struct bounce_rec_vec v = {0};
    mc_err err;

    if (!store_id_ok(tenant_id) || (f->campaign_id && !store_id_ok(f->campaign_id)))
        return store_id_ok(tenant_id) ? (*out = v, MC_ERR_OK) : MC_ERR_NOT_FOUND;
    struct db_param p[] = {P_TEXT(tenant_id),   P_TEXT(f->campaign_id), P_TEXT(f->class),
                           P_TEXT(f->email_lc), P_TIME(f->since),       P_INT(pg->limit),
                           P_INT(pg->offset)};
    err = store_page(st, "SELECT COUNT(*) FROM bounces" BOUNCE_WHERE,
                     "SELECT " BOUNCE_COLS " FROM bounces" BOUNCE_WHERE
                     " ORDER BY received_at DESC, id DESC LIMIT $6 OFFSET $7",
                     p, 5, NPARAMS(p), bounce_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
    if (err != MC_ERR_OK) {
        bounce_rec_vec_cleanup(&v);
        return err;
    }
    *out = v;
    return MC_ERR_OK;
}

/* One record with its raw message, by a statement whose last parameter is the id. */
static mc_err
record_get(struct store *st, const char *sql, const struct db_param *p, int np,
           struct bounce_rec *out)
{
    struct bounce_rec b;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    memset(&b, 0, sizeof(b));
    err = db_fetch_one(&d, sql, p, np, bounce_raw_row, &b);
    db_put(&d);
    if (err != MC_ERR_OK)
        bounce_rec_cleanup(&b);
    else
        *out = b;
    return err;
}

mc_err
store_bounce_get(struct store *st, const char *tenant_id, const char *id, struct bounce_rec *out)
{
    struct db_param p[] = {P_TEXT(tenant_id), P_TEXT(id)};

    if (!store_id_ok(tenant_id) || !store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    return record_get(st,
                      "SELECT " BOUNCE_COLS ", raw FROM bounces WHERE tenant_id = $1 AND id = $2",
                      p, NPARAMS(p), out);
}

/* Unmatched: no tenant (no valid reference); $1 since (NULL for any). */
#define UNMATCHED_WHERE " WHERE tenant_id IS NULL AND (received_at >= $1 OR $1 IS NULL)"

mc_err
store_bounce_unmatched_list(struct store *st, int64_t since, const struct page *pg,
                            struct bounce_rec_vec *out)
{
    struct db_param p[] = {P_TIME(since), P_INT(pg->limit), P_INT(pg->offset)};
    struct bounce_rec_vec v = {0};
    mc_err err;

    err = store_page(st, "SELECT COUNT(*) FROM bounces" UNMATCHED_WHERE,
                     "SELECT " BOUNCE_COLS " FROM bounces" UNMATCHED_WHERE
                     " ORDER BY received_at DESC, id DESC LIMIT $2 OFFSET $3",
                     p, 1, NPARAMS(p), bounce_row, sizeof(*v.items), (void **)&v.items, &v.n,
                     &v.total);
    if (err != MC_ERR_OK) {
        bounce_rec_vec_cleanup(&v);
        return err;
    }
    *out = v;
    return MC_ERR_OK;
}

mc_err
store_bounce_unmatched_get(struct store *st, const char *id, struct bounce_rec *out)
{
    struct db_param p[] = {P_TEXT(id)};

    if (!store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    return record_get(st,
                      "SELECT " BOUNCE_COLS ", raw FROM bounces WHERE tenant_id IS NULL AND "
                      "id = $1",
                      p, NPARAMS(p), out);
}

mc_err
store_bounce_domain_of(struct store *st, const char *message_id, char **out)
{
    struct db_param p[] = {P_TEXT(message_id)};
    struct db d;
    mc_err err;

    *out = NULL;
    if (!store_id_ok(message_id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_one_text(&d,
                      "SELECT p.bounce_domain FROM scheduled_messages m LEFT JOIN "
                      "bounce_policies p ON p.tenant_id = m.tenant_id WHERE m.id = $1",
                      p, NPARAMS(p), out);
    db_put(&d);
    return err;
}

mc_err
store_bounce_prune(struct store *st, int64_t before, int64_t *n)
{
    struct db_param p[] = {P_TIME(before)};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_exec(&d, "DELETE FROM bounces WHERE received_at < $1", p, NPARAMS(p), &changes);
    db_put(&d);
    if (err == MC_ERR_OK && changes > 0)
        log_info("event=bounces_pruned n=%lld", (long long)changes);
    if (n)
        *n = changes;
    return err;
}
