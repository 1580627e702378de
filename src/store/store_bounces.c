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

/*
 * What a report may keep of its raw text.  Reports that change nothing must
 * not fill the disk (an attacker review wrote 4 MB a second through one
 * session): a duplicate keeps none (the first has it), an unreferenced one
 * (anyone can write to postmaster) keeps BOUNCE_RAW_UNMATCHED_MAX bytes.
 */
#define BOUNCE_RAW_UNMATCHED_MAX (16 * 1024)

/* The columns of a bounces row, in the order every INSERT below gives them. */
#define BOUNCE_INSERT_COLS                                                                        \
    "INSERT INTO bounces (id, tenant_id, message_id, campaign_id, recipient_id, email, "          \
    "email_lc, kind, class, status, action, diagnostic, reporting_mta, remote_mta, "              \
    "feedback_type, source, outcome, raw, raw_truncated, received_at) "

/* Inserts one record; id was chosen by the caller (so a batch's ids keep its order). */
static mc_err
insert_record(struct db *d, const struct bounce_report_in *in, const char *tenant_id,
              const struct msg_row *m, const struct bounce_item *it, const char *email,
              const char *email_lc, enum bounce_outcome outcome, const char *id)
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
                  BOUNCE_INSERT_COLS
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

#define ITEMS_MAX ((int)(sizeof(((struct bounce_applied *)0)->items) /                           \
                         sizeof(((struct bounce_applied *)0)->items[0])))

/*
 * A batch being recorded.  Its reports are resolved first (their messages
 * looked up and, on PostgreSQL, the tenants they name locked in id order,
 * all in one statement), then every item that only a
 * duplicate check stands between it and the policy is checked and, when it
 * is a duplicate, written as such, all in one statement (dup_prewrite):
 * the common case of an MTA sending a report again costs no statement of
 * its own.  What is left goes item by item as before.  A duplicate of an
 * item recorded earlier in the same batch is found in `seen`, since the
 * one statement ran before that item was written.
 */
struct batch_rep {
    struct msg_row m;      /* the message's row; m.to_address owned */
    bool found;            /* the message exists and is the report's tenant's */
    const char *tenant_id; /* borrowed: m.tenant_id or the report's; NULL when none */
};

/* A record of the batch that later items of the same message are duplicates of. */
struct batch_key {
    const char *message_id; /* borrowed from the report */
    const char *cls;        /* borrowed from the item */
    char *email_lc;         /* owned */
};

struct batch {
    const struct bounce_report_in *const *ins; /* borrowed */
    int n;
    struct bounce_applied *outs;     /* borrowed: ids chosen up front, outcomes as decided */
    struct batch_rep *reps;          /* owned, n of them */
    unsigned char *pre_dup;          /* owned, n * ITEMS_MAX: written as a duplicate already */
    struct batch_key *seen;          /* owned */
    int nseen, capseen;
    char pol_tenant[MC_UUID_LEN + 1]; /* whose policy pol is; "" when none yet */
    struct bounce_policy pol;        /* owned */
};

/* What an item is before the policy: the one place that decides it (both passes use it). */
enum item_path {
    PATH_UNREFERENCED, /* no tenant */
    PATH_STRANGER,     /* names someone other than the message's recipient */
    PATH_RECORDED,     /* no address, or a delay warning: recorded only */
    PATH_POLICY,       /* a duplicate check (with a message), then the policy */
};

static const struct bounce_item item_none = {NULL, "undetermined", NULL, NULL, NULL, NULL};

static const struct bounce_item *
item_of(const struct bounce_report_in *in, int i)
{
    return in->n > 0 ? &in->items[i] : &item_none;
}

/* The address an item is about: its own, or the message's recipient's; NULL when none. */
static const char *
item_email(const struct batch_rep *b, const struct bounce_item *it)
{
    return it->email ? it->email : (b->found ? b->m.to_address : NULL);
}

static enum item_path
item_path(const struct batch_rep *b, const struct bounce_item *it)
{
    if (b->tenant_id == NULL)
        return PATH_UNREFERENCED;
    if (b->found && it->email && !str_ieq(it->email, b->m.to_address))
        return PATH_STRANGER; /* a forged or misdirected report suppresses nobody */
    if (item_email(b, it) == NULL)
        return PATH_RECORDED;
    if (it->action && strncasecmp(it->action, "delayed", 7) == 0)
        return PATH_RECORDED; /* a delay warning: the message may still arrive */
    return PATH_POLICY;
}

static void
uuid_row(struct db *d, struct db_res *r, void *out)
{
    db_col_uuid(d, r, 0, out);
}

/* A message row with its id, as the batched lookup returns it. */
struct msg_hit {
    char id[MC_UUID_LEN + 1];
    struct msg_row m;
};

static void
msg_hit_row(struct db *d, struct db_res *r, void *out)
{
    struct msg_hit *h = out;

    db_col_uuid(d, r, 0, h->id);
    db_col_uuid(d, r, 1, h->m.tenant_id);
    db_col_uuid(d, r, 2, h->m.campaign_id);
    db_col_uuid(d, r, 3, h->m.recipient_id);
    h->m.to_address = db_col_dup(d, r, 4);
}

/*
 * PostgreSQL: the batch's messages and, in the same statement, the tenants
 * they belong to and the tenants the reports name, locked (db_lock_tenant's
 * lock) in id order, so two batches cannot wait on each other.  That is the
 * set batch_resolve settles on (a message of another tenant than its report
 * names fails the batch, which then locked one tenant too many for
 * nothing).  Always one row, with NULLs when no message was found.
 */
static const char sql_lookup_lock_pg[] =
    "WITH l AS (SELECT t.id FROM tenants t WHERE t.id IN (SELECT x.tenant_id FROM "
    "scheduled_messages x WHERE x.id = ANY($1::uuid[])) OR t.id = ANY($2::uuid[]) "
    "ORDER BY t.id FOR NO KEY UPDATE), k AS (SELECT count(*) AS n FROM l) "
    "SELECT m.id, m.tenant_id, m.campaign_id, m.recipient_id, m.to_address FROM k "
    "LEFT JOIN scheduled_messages m ON m.id = ANY($1::uuid[])";

/*
 * Every report's message (found is left to batch_resolve), and on
 * PostgreSQL the batch's tenants locked, all in one statement
 * (sql_lookup_lock_pg); SQLite one probe each (no round trip to save there;
 * BEGIN IMMEDIATE already serialises every writer).
 */
static mc_err
batch_lookup(struct db *d, struct batch *b)
{
    struct msg_hit *hits = NULL;
    struct buf a, t;
    int nhits = 0;
    mc_err err = MC_ERR_OK;

    if (d->ops->dialect != DB_PG) {
        for (int r = 0; r < b->n && err == MC_ERR_OK; r++) {
            const char *id = b->ins[r]->message_id;
            if (!id || !store_id_ok(id))
                continue;
            struct db_param p[] = {P_TEXT(id)};
            err = db_fetch_one(d,
                               "SELECT tenant_id, campaign_id, recipient_id, to_address FROM "
                               "scheduled_messages WHERE id = $1",
                               p, NPARAMS(p), msg_row, &b->reps[r].m);
            b->reps[r].found = err == MC_ERR_OK;
            if (err == MC_ERR_NOT_FOUND)
                err = MC_ERR_OK;
        }
        return err;
    }
    buf_init(&a, 0);
    buf_init(&t, 0);
    for (int r = 0; r < b->n; r++) {
        if (b->ins[r]->message_id && store_id_ok(b->ins[r]->message_id))
            db_pg_array_put(&a, b->ins[r]->message_id);
        if (b->ins[r]->tenant_id)
            db_pg_array_put(&t, b->ins[r]->tenant_id);
    }
    if (a.len > 0 || t.len > 0) {
        buf_puts(&a, a.len > 0 ? "}" : "{}");
        buf_puts(&t, t.len > 0 ? "}" : "{}");
        struct db_param p[] = {P_TEXT(a.data), P_TEXT(t.data)};
        err = db_fetch_all(d, sql_lookup_lock_pg, p, NPARAMS(p), msg_hit_row, sizeof(*hits),
                           (void **)&hits, &nhits);
    }
    for (int r = 0; r < b->n && err == MC_ERR_OK; r++) {
        const char *id = b->ins[r]->message_id;
        for (int k = 0; id && k < nhits && !b->reps[r].found; k++) {
            if (strcasecmp(hits[k].id, id) != 0)
                continue;
            b->reps[r].m = hits[k].m;
            b->reps[r].m.to_address = xstrdup(hits[k].m.to_address);
            b->reps[r].found = true;
        }
    }
    for (int k = 0; k < nhits; k++)
        free(hits[k].m.to_address);
    free(hits);
    buf_cleanup(&a);
    buf_cleanup(&t);
    return err;
}

/* Each report's tenant, from its message or its caller; NOT_FOUND as store_bounce_record says. */
static mc_err
batch_resolve(struct db *d, struct batch *b)
{
    mc_err err = batch_lookup(d, b);

    for (int r = 0; r < b->n && err == MC_ERR_OK; r++) {
        const struct bounce_report_in *in = b->ins[r];
        struct batch_rep *rep = &b->reps[r];
        /* Another tenant's message is no message of this tenant's. */
        if (rep->found && in->tenant_id && strcmp(rep->m.tenant_id, in->tenant_id) != 0) {
            rep->found = false;
            free(rep->m.to_address);
            memset(&rep->m, 0, sizeof(rep->m));
        }
        if (!rep->found && in->tenant_id) {
            if (in->message_id && store_id_ok(in->message_id))
                return MC_ERR_NOT_FOUND;
            struct db_param p[] = {P_TEXT(in->tenant_id)};
            int64_t one = 0;
            err = db_one_int(d, "SELECT 1 FROM tenants WHERE id = $1", p, NPARAMS(p), &one);
        }
        rep->tenant_id = rep->found ? rep->m.tenant_id : in->tenant_id;
    }
    return err;
}

/*
 * The duplicate check and the duplicate's record in one statement: a row
 * goes in as 'duplicate' only when a record of the same class about the same
 * message and address that is not itself a duplicate is there already
 * (idx_bounces_dedup, migration 0018).  $1..$16 are insert_record's $1..$16
 * and $17 its received_at ($20 there); the rules that make a record's values
 * (an empty status as NULL, the campaign only if it still exists, no raw
 * text for a duplicate) are insert_record's too: a change to one is a
 * change to both.  On PostgreSQL the check's OFFSET 0 keeps it a probe of
 * that index per row: as a semi-join, the generic plan (db_plans_generic)
 * may hash every record.
 */
#define DUP_WHERE(tail)                                                                           \
    " WHERE EXISTS (SELECT 1 FROM bounces b WHERE b.message_id = u.message_id AND "               \
    "b.class = u.class AND b.email_lc = u.email_lc AND b.outcome <> 'duplicate'" tail ")"
static const char sql_dup_sqlite[] =
    BOUNCE_INSERT_COLS
    "SELECT u.id, u.tenant_id, u.message_id, (SELECT c.id FROM campaigns c WHERE "
    "c.id = u.campaign_id), u.recipient_id, u.email, u.email_lc, u.kind, u.class, u.status, "
    "u.action, u.diagnostic, u.reporting_mta, u.remote_mta, u.feedback_type, u.source, "
    "'duplicate', NULL, 0, u.received_at FROM (SELECT $1 AS id, $2 AS tenant_id, "
    "$3 AS message_id, $4 AS campaign_id, $5 AS recipient_id, $6 AS email, $7 AS email_lc, "
    "$8 AS kind, $9 AS class, $10 AS status, $11 AS action, $12 AS diagnostic, "
    "$13 AS reporting_mta, $14 AS remote_mta, $15 AS feedback_type, $16 AS source, "
    "$17 AS received_at) AS u" DUP_WHERE("") " RETURNING id";
static const char sql_dup_pg[] =
    BOUNCE_INSERT_COLS
    "SELECT u.id, u.tenant_id, u.message_id, (SELECT c.id FROM campaigns c WHERE "
    "c.id = u.campaign_id), u.recipient_id, u.email, u.email_lc, u.kind, u.class, u.status, "
    "u.action, u.diagnostic, u.reporting_mta, u.remote_mta, u.feedback_type, u.source, "
    "'duplicate', NULL, false, u.received_at FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], "
    "$4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
    "$11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], "
    "$17::timestamptz[]) AS u(id, tenant_id, message_id, campaign_id, recipient_id, email, "
    "email_lc, kind, class, status, action, diagnostic, reporting_mta, remote_mta, "
    "feedback_type, source, received_at)" DUP_WHERE(" OFFSET 0") " RETURNING id";

#define DUP_NCOLS 17

/* Marks the item whose record id is id as written already (a duplicate). */
static void
batch_mark_dup(struct batch *b, const char *id)
{
    for (int r = 0; r < b->n; r++)
        for (int i = 0; i < b->outs[r].n; i++)
            if (strcasecmp(b->outs[r].items[i].id, id) == 0) {
                b->pre_dup[r * ITEMS_MAX + i] = 1;
                return;
            }
}

/*
 * Every item that a duplicate check comes to (PATH_POLICY, with a message),
 * checked against what is in the database now, and written when it is a
 * duplicate.  Runs after batch_lookup's lock: no other transaction can add a record
 * about these messages until this one ends.
 */
static mc_err
dup_prewrite(struct db *d, struct batch *b)
{
    bool pg = d->ops->dialect == DB_PG;
    struct buf a[DUP_NCOLS];
    char(*ids)[MC_UUID_LEN + 1] = NULL;
    int nids = 0;
    mc_err err = MC_ERR_OK;

    for (int k = 0; k < DUP_NCOLS; k++)
        buf_init(&a[k], 0);
    for (int r = 0; r < b->n && err == MC_ERR_OK; r++) {
        const struct bounce_report_in *in = b->ins[r];
        const struct batch_rep *rep = &b->reps[r];
        if (!rep->found)
            continue;
        for (int i = 0; i < b->outs[r].n && err == MC_ERR_OK; i++) {
            const struct bounce_item *it = item_of(in, i);
            if (item_path(rep, it) != PATH_POLICY)
                continue;
            char *lc = lower_dup(item_email(rep, it)), ts[40];
            time_format_rfc3339(in->now, ts, sizeof(ts));
            const char *v[DUP_NCOLS] = {
                b->outs[r].items[i].id, rep->tenant_id, in->message_id,
                rep->m.campaign_id[0] ? rep->m.campaign_id : NULL,
                rep->m.recipient_id[0] ? rep->m.recipient_id : NULL, item_email(rep, it), lc,
                in->kind, it->class, it->status && *it->status ? it->status : NULL, it->action,
                it->diagnostic, in->reporting_mta, it->remote_mta, in->feedback_type, in->source,
                ts};
            if (pg) {
                for (int k = 0; k < DUP_NCOLS; k++)
                    db_pg_array_put(&a[k], v[k]);
            } else {
                struct db_param p[DUP_NCOLS];
                for (int k = 0; k < DUP_NCOLS - 1; k++)
                    p[k] = P_TEXT(v[k]);
                p[DUP_NCOLS - 1] = P_TIME(in->now);
                err = db_fetch_all(d, sql_dup_sqlite, p, DUP_NCOLS, uuid_row, sizeof(*ids),
                                   (void **)&ids, &nids);
            }
            free(lc);
        }
    }
    if (err == MC_ERR_OK && pg && a[0].len > 0) {
        struct db_param p[DUP_NCOLS];
        for (int k = 0; k < DUP_NCOLS; k++) {
            buf_putc(&a[k], '}');
            p[k] = P_TEXT(a[k].data);
        }
        err = db_fetch_all(d, sql_dup_pg, p, DUP_NCOLS, uuid_row, sizeof(*ids), (void **)&ids,
                           &nids);
    }
    for (int k = 0; k < nids && err == MC_ERR_OK; k++)
        batch_mark_dup(b, ids[k]);
    for (int k = 0; k < DUP_NCOLS; k++)
        buf_cleanup(&a[k]);
    free(ids);
    return err;
}

/* True when an item of this batch already recorded (not as a duplicate) has this key. */
static bool
batch_seen(const struct batch *b, const char *message_id, const char *cls, const char *email_lc)
{
    for (int k = 0; k < b->nseen; k++)
        if (strcasecmp(b->seen[k].message_id, message_id) == 0 &&
            strcmp(b->seen[k].cls, cls) == 0 && strcmp(b->seen[k].email_lc, email_lc) == 0)
            return true;
    return false;
}

static void
batch_see(struct batch *b, const char *message_id, const char *cls, const char *email_lc)
{
    if (b->nseen == b->capseen) {
        b->capseen = b->capseen ? 2 * b->capseen : 16;
        b->seen = xrealloc(b->seen, (size_t)b->capseen * sizeof(*b->seen));
    }
    b->seen[b->nseen++] = (struct batch_key){message_id, cls, xstrdup(email_lc)};
}

/* The tenant's policy, read once while the batch stays with the same tenant. */
static mc_err
batch_policy(struct db *d, struct batch *b, const char *tenant_id)
{
    mc_err err;

    if (strcmp(b->pol_tenant, tenant_id) == 0)
        return MC_ERR_OK;
    b->pol_tenant[0] = '\0';
    bounce_policy_cleanup(&b->pol);
    err = policy_get(d, tenant_id, &b->pol);
    if (err == MC_ERR_OK)
        memcpy(b->pol_tenant, tenant_id, MC_UUID_LEN + 1);
    return err;
}

/* Records report r's items that dup_prewrite did not, inside the caller's transaction. */
static mc_err
record_one(struct db *d, struct batch *b, int r)
{
    const struct bounce_report_in *in = b->ins[r];
    const struct batch_rep *rep = &b->reps[r];
    struct bounce_applied *out = &b->outs[r];
    const char *tenant_id = rep->tenant_id;
    mc_err err = MC_ERR_OK;

    for (int i = 0; i < out->n && err == MC_ERR_OK; i++) {
        const struct bounce_item *it = item_of(in, i);
        const char *email = item_email(rep, it);
        char *lc = email ? lower_dup(email) : NULL;
        enum bounce_outcome oc = BOUNCE_OUT_RECORDED;
        struct target t = {tenant_id, rep->found && rep->m.campaign_id[0] ? rep->m.campaign_id
                                                                         : NULL,
                           rep->found ? in->message_id : NULL, email, lc, it->diagnostic,
                           in->now};

        switch (item_path(rep, it)) {
        case PATH_UNREFERENCED:
            oc = BOUNCE_OUT_UNREFERENCED;
            break;
        case PATH_STRANGER:
            oc = BOUNCE_OUT_STRANGER;
            break;
        case PATH_RECORDED:
            break;
        case PATH_POLICY:
            if (b->pre_dup[r * ITEMS_MAX + i] ||
                (t.message_id && batch_seen(b, t.message_id, it->class, lc)))
                oc = BOUNCE_OUT_DUPLICATE;
            else if ((err = batch_policy(d, b, tenant_id)) == MC_ERR_OK)
                err = apply(d, &t, it->class, in->kind, &b->pol, &oc);
            break;
        }
        if (err == MC_ERR_OK && !b->pre_dup[r * ITEMS_MAX + i])
            err = insert_record(d, in, tenant_id, rep->found ? &rep->m : NULL, it, email, lc,
                                oc, out->items[i].id);
        if (err == MC_ERR_OK && oc != BOUNCE_OUT_DUPLICATE && t.message_id && lc)
            batch_see(b, t.message_id, it->class, lc);
        out->items[i].outcome = oc;
        free(lc);
    }
    if (err == MC_ERR_OK) {
        if (tenant_id)
            memcpy(out->tenant_id, tenant_id, MC_UUID_LEN + 1);
        if (rep->found) {
            memcpy(out->campaign_id, rep->m.campaign_id, MC_UUID_LEN + 1);
            memcpy(out->message_id, in->message_id, MC_UUID_LEN);
            out->message_id[MC_UUID_LEN] = '\0';
        }
    }
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
    struct batch b = {.ins = ins, .n = n, .outs = outs, .pol = BOUNCE_POLICY_DEFAULTS};
    struct db d;
    mc_err err;

    for (int i = 0; i < n; i++)
        if ((err = record_check(ins[i])) != MC_ERR_OK)
            return err;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    b.reps = xcalloc((size_t)(n > 0 ? n : 1), sizeof(*b.reps));
    b.pre_dup = xcalloc((size_t)(n > 0 ? n : 1) * ITEMS_MAX, 1);
    /* Every record's id up front, in the batch's order (time-ordered ids sort the list). */
    for (int r = 0; r < n; r++) {
        memset(&outs[r], 0, sizeof(outs[r]));
        outs[r].n = ins[r]->n > 0 ? ins[r]->n : 1;
        for (int i = 0; i < outs[r].n; i++)
            crypto_uuid7(outs[r].items[i].id);
    }
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    /* Batches are mostly 1-8 reports: planning each statement cost more than running it. */
    if ((err = db_plans_generic(&d)) == MC_ERR_OK)
        err = batch_resolve(&d, &b);
    if (err == MC_ERR_OK)
        err = dup_prewrite(&d, &b);
    for (int r = 0; r < n && err == MC_ERR_OK; r++)
        err = record_one(&d, &b, r);
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    if (err != MC_ERR_OK)
        for (int r = 0; r < n; r++)
            memset(&outs[r], 0, sizeof(outs[r]));
    for (int r = 0; r < n; r++)
        free(b.reps[r].m.to_address);
    for (int k = 0; k < b.nseen; k++)
        free(b.seen[k].email_lc);
    free(b.seen);
    free(b.reps);
    free(b.pre_dup);
    bounce_policy_cleanup(&b.pol);
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
