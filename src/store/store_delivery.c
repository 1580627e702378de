/*
 * store_delivery.c - what the delivery workers do to the database after a
 * claim (store_claim.c): record fenced results, recover expired leases,
 * report the queue's depth.
 *
 * DESIGN
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

/* ---- the rows an outcome or a claim returns (store_int.h) ---- */

void
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

void
outcome_rows_free(struct outcome_row *o, int n)
{
    for (int i = 0; i < n; i++)
        free(o[i].to_address);
    free(o);
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
    "last_error = COALESCE($5, last_error), updated_at = $4" FENCE;

/*
 * The 'sent' outcomes of a flush (the common case by far), fenced like the
 * per-row statements.  SQLite: one cached statement bound per row, without
 * RETURNING (its temporary table cost a third of the statement) and without
 * the count trigger (counted per campaign by the caller instead: another
 * third); what the row's event names comes from the result, which the claim
 * filled, and the fence checks its campaign and tenant too, so a result
 * naming others changes nothing (it is fenced out).  Only 'sending' rows
 * change: the count move relies on it.  PostgreSQL: one statement per flush
 * over arrays, RETURNING which rows took effect, so its count trigger runs
 * once per flush, not once per message (a statement per message cost about
 * a millisecond each).  Its rows are found by the primary key (= ANY) and
 * matched to the results by a hash join: statistics taken before the
 * campaign started count no 'sending' rows of this owner, so the planner
 * expected one row and joined by a nested loop that re-read the results
 * for every row (38 ms for a flush of 240, a sequential scan of the table
 * beneath it), and nothing but enable_nestloop tells it otherwise.  The
 * setting is the statement's alone: set back before the next one, and the
 * count trigger it fires plans with its own (migration 0023), since a
 * trigger's plan is kept for the connection.
 */
static const char sql_sent_one_sqlite[] =
    "UPDATE scheduled_messages SET status = 'sent', sent_at = $1, lease_owner = NULL, "
    "lease_expires_at = NULL, last_reply_code = $5, last_error = NULL, relay_queue_id = $6, "
    "message_id = $7, updated_at = $1 WHERE id = $3 AND lease_owner = $2 AND attempts = $4 "
    "AND status = 'sending' AND campaign_id = $8 AND tenant_id = $9";
static const char sql_sent_many_pg[] =
    "UPDATE scheduled_messages m SET status = 'sent', sent_at = $1, lease_owner = NULL, "
    "lease_expires_at = NULL, last_reply_code = x.code, last_error = NULL, "
    "relay_queue_id = x.qid, message_id = x.mid, updated_at = $1 "
    "FROM unnest($3::uuid[], $4::int[], $5::int[], $6::text[], $7::text[]) "
    "AS x(id, attempts, code, qid, mid) WHERE m.id = ANY($3::uuid[]) AND m.id = x.id "
    "AND m.lease_owner = $2 "
    "AND m.attempts = x.attempts AND m.status = 'sending' RETURNING m.id, m.tenant_id, "
    "m.campaign_id, m.recipient_id, m.to_address, m.status";

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
    struct buf f;

    /* data's text is built here: a jansson object per message cost more than its SQL. */
    buf_init(&f, 0);
    buf_printf(&f, "\"attempt\":%d,\"smtp_code\":", x->attempts);
    if (x->reply_code)
        buf_printf(&f, "%d", x->reply_code);
    else
        buf_puts(&f, "null");
    buf_puts(&f, ",\"smtp_reply\":");
    db_json_string_put(&f, x->error[0] ? x->error : NULL);
    if (strcmp(o->status, "sent") == 0) {
        type = "message.sent";
        buf_puts(&f, ",\"relay_queue_id\":");
        db_json_string_put(&f, x->queue_id[0] ? x->queue_id : NULL);
        buf_puts(&f, ",\"message_id_header\":");
        db_json_string_put(&f, x->message_id[0] ? x->message_id : NULL);
    } else if (strcmp(o->status, "pending") == 0) {
        char t[40];
        type = "message.deferred";
        time_format_rfc3339(x->next_attempt_at, t, sizeof(t));
        buf_puts(&f, ",\"next_attempt_at\":");
        db_json_string_put(&f, t);
    } else if (strcmp(o->status, "failed") == 0) {
        type = "message.failed";
    } else if (strcmp(o->status, "bounced") == 0) {
        type = "message.bounced";
        buf_puts(&f, ",\"bounce_type\":\"hard\",\"source\":\"smtp\"");
    } else {
        goto out;
    }
    db_events_add_text(ev, o->tenant_id, type, &ref, f.data);
out:
    buf_cleanup(&f);
}

/* A campaign's count of messages a flush sent (SQLite counts them itself: see above). */
struct sent_count {
    const char *campaign_id; /* borrowed from the results */
    int64_t n;
};

static mc_err
sent_sqlite(struct db *d, const char *owner, int64_t now, const struct delivery_result *res,
            int n, struct outcome_row **done, int *ndone)
{
    struct sent_count *counts = NULL; /* owned */
    mc_err err, err2;
    int cap = 0, ncounts = 0;

    if ((err = db_count_trigger_pause(d)) != MC_ERR_OK)
        return err;
    for (int i = 0; i < n && err == MC_ERR_OK; i++) {
        const struct delivery_result *x = &res[i];
        int64_t changes = 0;
        int c;
        if (x->outcome != OUT_SENT)
            continue;
        /* The queue id comes from the relay: not UTF-8, it is stored as null. */
        struct db_param p[] = {P_TIME(now),
                               P_TEXT(owner),
                               P_TEXT(x->id),
                               P_INT(x->attempts),
                               x->reply_code ? P_INT(x->reply_code) : P_NULL,
                               P_TEXT(db_utf8_or_null(x->queue_id)),
                               P_TEXT(db_utf8_or_null(x->message_id)),
                               P_TEXT(x->campaign_id),
                               P_TEXT(x->tenant_id)};
        err = db_exec(d, sql_sent_one_sqlite, p, NPARAMS(p), &changes);
        /* An error ends the loop (its condition); no change: fenced out, the caller logs it. */
        if (err != MC_ERR_OK || changes == 0)
            continue;
        if (*ndone == cap) {
            cap = cap ? cap * 2 : 64;
            *done = xrealloc(*done, (size_t)cap * sizeof(**done));
        }
        struct outcome_row *o = &(*done)[(*ndone)++];
        memcpy(o->id, x->id, sizeof(o->id));
        memcpy(o->tenant_id, x->tenant_id, sizeof(o->tenant_id));
        memcpy(o->campaign_id, x->campaign_id, sizeof(o->campaign_id));
        memcpy(o->recipient_id, x->recipient_id, sizeof(o->recipient_id));
        o->to_address = xstrdup(x->to_address);
        snprintf(o->status, sizeof(o->status), "sent");
        /* A flush holds a few campaigns at most: a short search. */
        for (c = 0; c < ncounts && strcmp(counts[c].campaign_id, x->campaign_id) != 0; c++)
            ;
        if (c == ncounts) {
            counts = xrealloc(counts, (size_t)(ncounts + 1) * sizeof(*counts));
            counts[ncounts++] = (struct sent_count){x->campaign_id, 0};
        }
        counts[c].n++;
    }
    /* Back on before anything else runs in this transaction, whatever happened. */
    err2 = db_count_trigger_resume(d);
    if (err == MC_ERR_OK)
        err = err2;
    for (int c = 0; c < ncounts && err == MC_ERR_OK; c++)
        err = db_counts_move(d, counts[c].campaign_id, COUNT_SENDING_TO_SENT, counts[c].n);
    free(counts);
    return err;
}

static mc_err
sent_pg(struct db *d, const char *owner, int64_t now, const struct delivery_result *res, int n,
        struct outcome_row **done, int *ndone)
{
    struct buf a[5];
    mc_err err = MC_ERR_OK;
    int k;

    for (k = 0; k < 5; k++)
        buf_init(&a[k], 0);
    for (int i = 0; i < n; i++) {
        const struct delivery_result *x = &res[i];
        char att[24], code[24];
        if (x->outcome != OUT_SENT)
            continue;
        snprintf(att, sizeof(att), "%d", x->attempts);
        snprintf(code, sizeof(code), "%d", x->reply_code);
        const char *v[5] = {x->id, att, x->reply_code ? code : NULL,
                            db_utf8_or_null(x->queue_id), db_utf8_or_null(x->message_id)};
        for (k = 0; k < 5; k++)
            db_pg_array_put(&a[k], v[k]);
    }
    if (a[0].len > 0) {
        for (k = 0; k < 5; k++)
            buf_putc(&a[k], '}');
        struct db_param p[] = {P_TIME(now),       P_TEXT(owner),     P_TEXT(a[0].data),
                               P_TEXT(a[1].data), P_TEXT(a[2].data), P_TEXT(a[3].data),
                               P_TEXT(a[4].data)};
        /* A hash join, whatever the statistics say (see sql_sent_many_pg). */
        err = db_exec(d, "SET LOCAL enable_nestloop = off", NULL, 0, NULL);
        if (err == MC_ERR_OK)
            err = db_fetch_all(d, sql_sent_many_pg, p, NPARAMS(p), outcome_row, sizeof(**done),
                               (void **)done, ndone);
        if (err == MC_ERR_OK)
            err = db_exec(d, "SET LOCAL enable_nestloop TO DEFAULT", NULL, 0, NULL);
    }
    for (k = 0; k < 5; k++)
        buf_cleanup(&a[k]);
    return err;
}

/* The 'sent' updates and their events; *applied counts, fenced-out ones are logged. */
static mc_err
record_sent(struct db *d, const char *owner, int64_t now, const struct delivery_result *res,
            int n, struct event_batch *ev, int *applied)
{
    struct outcome_row *done = NULL;
    int ndone = 0, k = 0;
    mc_err err;

    err = (d->ops->dialect == DB_PG ? sent_pg : sent_sqlite)(d, owner, now, res, n, &done,
                                                             &ndone);
    if (err == MC_ERR_OK) {
        *applied += ndone;
        for (int i = 0; i < n; i++) {
            bool found = res[i].outcome != OUT_SENT;
            /* Rows come back mostly in the results' order: search on from the last match. */
            for (int j = 0; j < ndone && !found; j++, k = (k + 1) % ndone) {
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
    return err;
}

/* The address and its lowercase twin of a recipient. */
struct rcpt_addr {
    char *email;
    char *email_lc;
};

static void
rcpt_addr_row(struct db *d, struct db_res *r, void *out)
{
    struct rcpt_addr *a = out;

    a->email = db_col_dup(d, r, 0);
    a->email_lc = db_col_dup(d, r, 1);
}

/*
 * A hard bounce at send time: the address is suppressed and its recipients
 * bounced, as for one reported later (store_bounces.c), through the same
 * db_suppress().
 */
static mc_err
bounce(struct db *d, const struct outcome_row *b, const char *reason, int64_t now,
       struct event_batch *ev)
{
    struct db_param p[] = {P_TEXT(b->recipient_id), P_TEXT(b->tenant_id)};
    struct rcpt_addr a = {0};
    mc_err err;

    if (b->recipient_id[0] == '\0')
        return MC_ERR_OK;
    err = db_fetch_one(d, "SELECT email, email_lc FROM recipients WHERE id = $1 AND tenant_id = $2",
                       p, NPARAMS(p), rcpt_addr_row, &a);
    if (err == MC_ERR_NOT_FOUND)
        return MC_ERR_OK; /* deleted meanwhile: nobody to suppress */
    if (err == MC_ERR_OK) {
        struct suppress_req r = {b->tenant_id, a.email,  a.email_lc, "bounce", "hard_bounce",
                                 b->campaign_id, b->id,  reason,     0,        now};
        err = db_suppress(d, &r, ev);
    }
    if (err == MC_ERR_OK)
        err = db_recipients_mark(d, b->tenant_id, a.email_lc, "bounced", now);
    free(a.email);
    free(a.email_lc);
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
            /* Never handed to the relay: the windows do not count it (the
             * claim that sends it will). */
            if (err == MC_ERR_OK && changes == 1 && x->claimed_at > 0)
                err = claim_window_return(&d, x->tenant_id, x->campaign_id, x->claimed_at);
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
        err = claim_rate_usage_prune(&d, now); /* buckets no window reaches any more */
    if (err == MC_ERR_OK)
        err = shaping_state_prune(&d, now);
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
