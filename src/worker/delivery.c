/*
 * delivery.c - the delivery worker (see delivery.h): its loop thread, start
 * and stop.  delivery_int.h lists the other files and what each does.
 *
 * DESIGN
 * Two threads.  The loop thread runs a libevent loop that owns the SMTP
 * pool, composes the claimed messages and collects their outcomes; the
 * database thread does the claims and the group commits, so neither stalls
 * the SMTP connections.  They meet in request slots under dbmu (one claim,
 * one record and one check of held messages' campaigns at a time:
 * delivery_db.c); the database thread answers by waking the loop (the
 * dbdone event).  Nothing else is shared but the stop request
 * and the metrics.
 *
 * A tick (every delivery_poll_ms, or at once when a connection's queue runs
 * low or delivery_wake() says the engine made messages) asks for a claim of
 * what the capacity allows; while claims see nothing due and nothing is in
 * hand, the tick's interval doubles up to idle_poll_max_ms.  Every few
 * seconds a tick also asks for the sweep that returns expired leases to
 * pending (it runs even when nothing can be claimed).  For a claim the
 * database thread walks the (tenant, campaign) pairs that have work, one
 * claim each in turn, so a
 * tenant held back by its rate limit costs the others one cheap claim that
 * returns nothing and never delays them.  Claimed messages are composed
 * (compose.h) from the campaign's compiled templates, cached per campaign,
 * and handed to the relay.
 *
 * Pacing happens at the hand-off: a claim gives each message the slot its
 * paced limits (tenant, campaign, site: see store_claim.c) allow it to leave
 * at, at most pacing_horizon_ms ahead, and the loop holds it on a timer
 * until then.  Held messages count against the claim's room like those in
 * flight, and a stop hands them back unsent; so does a pause or cancel of
 * their campaign, which each tick asks the database about while any are
 * held (held_check_ask, held_check_take).  At its slot a paced message
 * leaves onto the wire, or parks while its pool has a paced job waiting
 * for a connection; one that missed its slot (the loop, the database or the
 * relay fell behind) goes back to pending for a new slot (turn_of).
 * Unpaced messages (no slot) never wait.
 *
 * Outcomes gather in memory and are recorded in one transaction every
 * 100 ms or 200 outcomes (group commit), each fenced on lease owner and
 * attempt.  A message counts as in flight from its claim until its outcome
 * is committed; in-flight work is bounded by delivery_inflight, which also
 * bounds the duplicates a kill -9 can cause.
 *
 * A stop request ends claiming, waits (bounded) for messages in flight and
 * for the database thread, ends the rest (those never handed to the relay
 * go back to pending without using an attempt), records everything and
 * leaves the loop.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "delivery_int.h"
#include "smtp/dkim.h"
#include "smtp/outbox.h"

/* ---- campaigns ---- */

/*
 * The campaign's compiled sending data, from the cache or loaded.  A
 * campaign's content cannot change once it has left the draft state, so an
 * entry never goes stale; the least recently used one is evicted.
 * compose_campaign_load's errors as they come (a store error is transient).
 */
static mc_err
camp_get(struct delivery *d, const char *tenant_id, const char *id, struct compose_campaign **out)
{
    struct compose_campaign *c = NULL;
    int victim = 0;
    mc_err err;

    for (int i = 0; i < d->ncache; i++) {
        if (strcmp(d->cache[i].c->id, id) == 0) {
            d->cache[i].used = time_mono_us();
            *out = d->cache[i].c;
            return MC_ERR_OK;
        }
        if (d->cache[i].used < d->cache[victim].used)
            victim = i;
    }
    err = compose_campaign_load(d->st, d->cfg, d->secrets.dkim_kek, tenant_id, id, &c, NULL);
    if (err != MC_ERR_OK)
        return err;
    if (d->ncache == CACHE_MAX)
        compose_campaign_free(d->cache[victim].c);
    else
        victim = d->ncache++;
    d->cache[victim].c = c;
    d->cache[victim].used = time_mono_us();
    *out = c;
    return MC_ERR_OK;
}

static void
dmsg_free(struct dmsg *m)
{
    compose_job_cleanup(&m->job);
    free(m);
}

/* Messages the pool should hold per connection (see QUEUE_US). */
static int
queue_depth(struct delivery *d)
{
    int64_t now = time_mono_us();
    double per;

    if (now - d->rate_t0 >= RATE_EVERY_US) {
        double r = d->rate_n * 1e6 / (double)(now - d->rate_t0);
        d->rate = 0.5 * d->rate + 0.5 * r;
        d->rate_n = 0;
        d->rate_t0 = now;
    }
    per = d->rate * QUEUE_US / 1e6 / (double)d->cfg->smtp_connections;
    return per < QUEUE_MIN ? QUEUE_MIN : per > QUEUE_MAX ? QUEUE_MAX : (int)per;
}

/* Jobs queued or in flight in every pool. */
static int
pools_busy(const struct delivery *d)
{
    return smtp_pool_busy(d->pool) + delivery_sites_busy(d) + delivery_egress_busy(d);
}

/* Connections the worker may open: the main pool's and each other egress's. */
static int
conns_total(const struct delivery *d)
{
    int n = (int)d->cfg->smtp_connections;

    for (int i = 0; i < d->neg; i++)
        if (!d->eg[i].retired)
            n += d->eg[i].p.max_connections;
    return n;
}

/* The pool's verdict on one message. */
void
delivery_job_done(struct smtp_job *job, void *arg)
{
    struct dmsg *m = (struct dmsg *)job;
    struct delivery *d = arg;

    delivery_result_of_job(d, m);
    dmsg_free(m);
    if (d->nresults >= FLUSH_MAX)
        delivery_results_flush(d);
    /* A connection is free: refill now, not at the next tick (never from inside
     * the pool's callback, which must not submit). */
    d->rate_n++;
    if (d->pool && !delivery_stopping(d) && 2 * pools_busy(d) < queue_depth(d) * conns_total(d) &&
        !event_pending(d->kick, EV_TIMEOUT, NULL))
        event_active(d->kick, EV_TIMEOUT, 0);
    /* A connection may have room for a parked message now. */
    if (d->nparked > 0 && !event_pending(d->unpark, EV_TIMEOUT, NULL))
        event_active(d->unpark, EV_TIMEOUT, 0);
}

/* ---- rendering and hand-off ---- */

/* Builds the message for m; false (and an outcome recorded) when it cannot be. */
static bool
build(struct delivery *d, struct dmsg *m, const struct delivery_msg *dm)
{
    struct compose_campaign *c = NULL;
    mc_err err = camp_get(d, dm->tenant_id, dm->campaign_id, &c);
    struct compose_recipient r = {
        .recipient_id = dm->recipient_id[0] ? dm->recipient_id : NULL,
        .email = dm->to_address,
        .name = dm->name,
        .first_name = dm->first_name,
        .last_name = dm->last_name,
        .attributes = dm->attributes,
    };
    const char *why = NULL;

    if (err == MC_ERR_INVALID || err == MC_ERR_NOT_FOUND) {
        delivery_result_add(d, m, OUT_FAILED, 0, 0, "the campaign's templates cannot be used",
                            NULL);
        return false;
    }
    if (err != MC_ERR_OK) {
        /* The database, not the campaign: back unsent, the attempt not spent. */
        delivery_result_add(d, m, OUT_RELEASE, time_now_us() + 2 * 1000000LL, 0,
                            "the campaign could not be read from the database", NULL);
        return false;
    }
    if (compose_job(c, d->cfg, d->signer, d->secrets.token_keys[0], &r, m->id, &m->job,
                    m->message_id, sizeof(m->message_id), &why) != MC_ERR_OK) {
        delivery_result_add(d, m, OUT_FAILED, 0, 0, why, NULL);
        return false;
    }
    return true;
}

/* What the outcome's events name: the message, its tenant, campaign, recipient, address. */
static void
dmsg_names(struct dmsg *m, const struct delivery_msg *dm)
{
    memcpy(m->id, dm->id, sizeof(m->id));
    memcpy(m->tenant_id, dm->tenant_id, sizeof(m->tenant_id));
    memcpy(m->campaign_id, dm->campaign_id, sizeof(m->campaign_id));
    memcpy(m->recipient_id, dm->recipient_id, sizeof(m->recipient_id));
    snprintf(m->to_address, sizeof(m->to_address), "%s", dm->to_address);
    m->claimed_at = dm->claimed_at;
}

/* A paced job went onto a connection: a message parked behind it may go now. */
static void
paced_started(struct smtp_job *job)
{
    struct delivery *d = ((struct dmsg *)job)->d;

    if (d->nparked > 0 && !event_pending(d->unpark, EV_TIMEOUT, NULL))
        event_active(d->unpark, EV_TIMEOUT, 0);
}

static void
send_one(struct delivery *d, const struct delivery_msg *dm)
{
    struct dmsg *m = xcalloc(1, sizeof(*m));

    m->d = d;
    dmsg_names(m, dm);
    memcpy(m->site, dm->site, sizeof(m->site));
    snprintf(m->egress, sizeof(m->egress), "%s", dm->egress[0] ? dm->egress : "default");
    m->attempts = dm->attempts;
    d->inflight++;
    if (!build(d, m, dm)) { /* its outcome is recorded; it counts until then */
        dmsg_free(m);
        return;
    }
    m->started = time_mono_us();
    /*
     * A message must be on the wire early enough to finish inside its lease;
     * one still queued after that goes back unsent rather than risk a
     * second worker sending it too.
     */
    m->job.deadline = m->started + d->cfg->lease_seconds * 1000000LL -
                      (d->cfg->smtp_data_timeout + 2 * d->cfg->smtp_command_timeout) * 1000000LL;
    m->job.paced = dm->not_before != 0;
    if (m->job.paced)
        m->job.started = paced_started;
    if (d->pool || strcmp(m->egress, "default") != 0) {
        struct smtp_pool *pool = delivery_sites_pool(d, m->egress, dm->site, delivery_job_done);
        if (pool != NULL) {
            smtp_pool_submit(pool, &m->job);
            return;
        }
        /* An egress this process no longer has (removed meanwhile): pending again, unsent. */
        m->job.result = SMTP_NOT_SENT;
        snprintf(m->job.text, sizeof(m->job.text), "the egress %s is not known here",
                 m->egress);
        delivery_job_done(&m->job, d);
        return;
    }
    /* dir: written now, atomically; the file name is the message's id. */
    if (outbox_write(d->outbox, m->id, m->job.data.data, m->job.data.len) == MC_ERR_OK)
        m->job.result = SMTP_SENT, m->job.code = 250;
    else
        m->job.result = SMTP_TEMPFAIL;
    snprintf(m->job.queue_id, sizeof(m->job.queue_id), "%s.eml", m->id);
    snprintf(m->job.text, sizeof(m->job.text), "%s",
             m->job.result == SMTP_SENT ? "written to the outbox" : "cannot write to the outbox");
    delivery_job_done(&m->job, d);
}

/* Ends a claimed message that will not be sent: back to pending, no attempt used. */
static void
release_unsent(struct delivery *d, const struct delivery_msg *dm, const char *why)
{
    struct dmsg m = {0};

    dmsg_names(&m, dm);
    m.attempts = dm->attempts;
    d->inflight++;
    delivery_result_add(d, &m, OUT_RELEASE, time_now_us(), 0, why, NULL);
}

static void
msg_strings_free(struct delivery_msg *m)
{
    free(m->to_address);
    free(m->name);
    free(m->first_name);
    free(m->last_name);
    free(m->attributes);
}

static void
held_unlink(struct delivery *d, struct held *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        d->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
    d->nheld--;
    if (h->parked)
        d->nparked--;
    event_free(h->ev);
}

/*
 * How late a paced message may leave, in microseconds: the shortest
 * interval of the scopes that paced it, and at least PACE_LATE_MIN_US (a
 * scope faster than 40 a second may thus see up to 25 ms of its messages
 * more in a window, per worker).  Later than that it goes back for a new
 * slot (see turn_of).
 */
#define PACE_LATE_MIN_US 25000
/* A slot this close (microseconds) has come: a timer would fire no sooner. */
#define PACE_SLACK_US 1000

static int64_t
late_limit(const struct delivery_msg *dm)
{
    const int64_t iv[3] = {dm->pace_tenant_us, dm->pace_campaign_us, dm->pace_site_us};
    int64_t t = 0;

    for (int i = 0; i < 3; i++)
        if (iv[i] > 0 && (t == 0 || iv[i] < t))
            t = iv[i];
    return t > PACE_LATE_MIN_US ? t : PACE_LATE_MIN_US;
}

/*
 * Whether dm's pool already has a paced job waiting for a connection (a
 * relay slow to answer, a connection still opening).  A paced message
 * leaves onto the wire, or it is the one paced job its pool queues: queued
 * behind another, it would leave when the relay caught up, together with
 * the others queued, a burst no pace allows.  So the next ones park until
 * the waiting job starts or a job ends (paced_started, delivery_job_done).
 * Unpaced jobs queue for throughput; the queue is short (fill: about
 * 100 ms of sending), so a paced job behind them waits little
 * (test_pacing.py: 20 a second beside a flood of unlimited mail).
 */
static bool
pool_has_paced_waiting(struct delivery *d, const struct delivery_msg *dm)
{
    const char *eg = dm->egress[0] ? dm->egress : "default";
    struct smtp_pool *pool;

    if (d->pool == NULL && strcmp(eg, "default") == 0)
        return false; /* the dir: outbox: written at once */
    pool = delivery_sites_pool(d, eg, dm->site, delivery_job_done);
    return pool != NULL && smtp_pool_waiting_paced(pool) > 0;
}

enum turn {
    TURN_GO,   /* leaves now */
    TURN_WAIT, /* its slot is still ahead: *us until it */
    TURN_PARK, /* its slot has come, its pool has no room: until a job starts or ends,
                  at most *us */
    TURN_LATE  /* missed its slot: back to pending for a new one */
};

/* Whether this process sent dm back for a new slot lately (the ring of reslot). */
static bool
reslotted(const struct delivery *d, const struct delivery_msg *dm)
{
    for (int i = 0; i < RESLOT_RING; i++)
        if (strcmp(d->reslot[i], dm->id) == 0)
            return true;
    return false;
}

/* Sends dm back to pending, attempt unspent, for a new slot (see turn_of). */
static void
reslot(struct delivery *d, const struct delivery_msg *dm)
{
    snprintf(d->reslot[d->reslot_next], sizeof(d->reslot[0]), "%s", dm->id);
    d->reslot_next = (d->reslot_next + 1) % RESLOT_RING;
    delivery_metrics_reslot(d);
    release_unsent(d, dm, ""); /* its last error stays: a retry keeps the relay's reply */
}

/*
 * What a claimed message does now.  Unpaced messages always go.  A paced
 * one waits for its slot, then leaves if it is on time and its pool can
 * start it.  One that missed its slot by more than late_limit (the loop or
 * the database fell behind, or the relay was slow to answer while it was
 * parked) goes back to pending, its attempt unspent, for a new slot from
 * the claim: the slots are shared by every worker of its scopes, so a late
 * message sent late would take another's slot, and two workers late
 * together would send at twice the rate.  The missed slot stays spent (a
 * stall costs its scope, it never lets more through); the windows (minute,
 * hour, day) give the message back when the release is recorded.  The
 * second time this process finds the same message late it goes anyway, so
 * a loop that is always late (starved, or busy with other mail) still
 * sends; those forced through leave one late_limit apart (forced_next).
 * Lateness up to late_limit is timer jitter: at T or more apart, one
 * message more in any window at most, per worker.
 */
static enum turn
turn_of(struct delivery *d, const struct delivery_msg *dm, int64_t now, int64_t *us)
{
    int64_t late;
    bool forced;

    if (dm->not_before == 0)
        return TURN_GO;
    late = now - dm->not_before;
    if (late < -PACE_SLACK_US) {
        *us = -late;
        return TURN_WAIT;
    }
    forced = late > late_limit(dm);
    if (forced && !reslotted(d, dm))
        return TURN_LATE;
    /* Late again: it goes, but the ones forced through leave one interval
     * apart, not together when a stopped loop wakes. */
    if (forced && now < d->forced_next - PACE_SLACK_US) {
        *us = d->forced_next - now;
        return TURN_WAIT;
    }
    if (!forced && pool_has_paced_waiting(d, dm)) {
        *us = late_limit(dm) - late + 1;
        return TURN_PARK;
    }
    if (forced)
        d->forced_next = now + late_limit(dm);
    return TURN_GO;
}

static struct timeval
tv_of(int64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    return tv;
}

static void
park(struct delivery *d, struct held *h, bool parked, int64_t us)
{
    struct timeval tv = tv_of(us);

    if (parked != h->parked)
        d->nparked += parked ? 1 : -1;
    h->parked = parked;
    evtimer_add(h->ev, &tv);
}

/*
 * A held message's slot has come, or a parked one is looked at again (a
 * job ended, or it has waited as long as it may).
 */
static void
held_cb(evutil_socket_t fd, short what, void *arg)
{
    struct held *h = arg;
    struct delivery *d = h->d;
    int64_t us = 0;
    enum turn turn = delivery_stopping(d) ? TURN_LATE : turn_of(d, &h->dm, time_now_us(), &us);

    (void)fd;
    (void)what;
    if (turn == TURN_WAIT || turn == TURN_PARK) {
        park(d, h, turn == TURN_PARK, us);
        return;
    }
    held_unlink(d, h);
    if (delivery_stopping(d))
        release_unsent(d, &h->dm, "the worker is stopping");
    else if (turn == TURN_LATE)
        reslot(d, &h->dm);
    else
        send_one(d, &h->dm);
    msg_strings_free(&h->dm);
    free(h);
}

/* Holds dm (its strings moved in): for us microseconds, parked or not. */
static void
hold(struct delivery *d, struct delivery_msg *dm, bool parked, int64_t us)
{
    struct held *h = xcalloc(1, sizeof(*h));

    h->d = d;
    h->dm = *dm;
    dm->to_address = dm->name = dm->first_name = dm->last_name = dm->attributes = NULL;
    h->ev = evtimer_new(d->base, held_cb, h);
    h->since = time_mono_us();
    h->next = d->held;
    if (d->held)
        d->held->prev = h;
    d->held = h;
    d->nheld++;
    park(d, h, parked, us);
}

static int
held_slot_cmp(const void *a, const void *b)
{
    const struct held *x = *(struct held *const *)a, *y = *(struct held *const *)b;

    return (x->dm.not_before > y->dm.not_before) - (x->dm.not_before < y->dm.not_before);
}

/* A paced job started or a job ended: the parked messages are looked at
 * again, earliest slot first. */
static void
unpark_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    struct held **p;
    int n = 0;

    if (d->nparked == 0)
        return;
    p = xcalloc((size_t)d->nparked, sizeof(*p));
    for (struct held *h = d->held; h != NULL && n < d->nparked; h = h->next)
        if (h->parked)
            p[n++] = h;
    qsort(p, (size_t)n, sizeof(*p), held_slot_cmp);
    for (int i = 0; i < n; i++)
        held_cb(fd, what, p[i]); /* parks it again, sends or releases it */
    free(p);
}

/* Hands every held message back unsent (the worker is stopping). */
static void
held_release_all(struct delivery *d)
{
    while (d->held) {
        struct held *h = d->held;
        held_unlink(d, h);
        release_unsent(d, &h->dm, "the worker is stopping");
        msg_strings_free(&h->dm);
        free(h);
    }
}

/*
 * Asks whether the campaigns of held messages still send, each once: a
 * pause or cancel reaches paced messages claimed for later slots within a
 * poll, not only the next claim.
 */
static void
held_check_ask(struct delivery *d)
{
    struct delivery_work *w;
    int n = 0;

    if (d->nheld == 0 || d->stopped_busy || delivery_stopping(d))
        return;
    w = xcalloc((size_t)d->nheld, sizeof(*w));
    for (struct held *h = d->held; h != NULL; h = h->next) {
        bool seen = false;
        for (int i = n - 1; i >= 0 && !seen; i--)
            seen = strcmp(w[i].campaign_id, h->dm.campaign_id) == 0;
        if (seen)
            continue;
        memcpy(w[n].tenant_id, h->dm.tenant_id, sizeof(w[n].tenant_id));
        memcpy(w[n].campaign_id, h->dm.campaign_id, sizeof(w[n].campaign_id));
        n++;
    }
    d->stopped_asked = time_mono_us();
    delivery_stopped_ask(d, w, n);
}

/*
 * Hands back, unsent and their attempts unspent, the held messages of the
 * campaigns found stopped; only those held when the question was asked (a
 * message claimed after a quick resume keeps its slot).
 */
static void
held_check_take(struct delivery *d)
{
    struct delivery_work *w = NULL;
    int n = 0;

    if (!delivery_stopped_take(d, &w, &n))
        return;
    for (struct held *h = d->held, *next; h != NULL && n > 0; h = next) {
        bool stopped = false;
        next = h->next;
        for (int i = 0; i < n && !stopped; i++)
            stopped = strcmp(w[i].campaign_id, h->dm.campaign_id) == 0;
        if (!stopped || h->since > d->stopped_asked)
            continue;
        held_unlink(d, h);
        release_unsent(d, &h->dm, ""); /* its last error stays */
        msg_strings_free(&h->dm);
        free(h);
    }
    free(w);
}

/* The loop takes the database thread's answers: claimed messages are sent
 * (or, while stopping, handed back); *got: how many were claimed, -1 none. */
static void
take_answers(struct delivery *d, int *got)
{
    struct delivery_vec v;

    struct shaping sh;
    struct egress *eg = NULL;
    int neg = 0;

    if (delivery_egress_take(d, &eg, &neg)) {
        delivery_egress_set(d, eg, neg);
        for (int i = 0; i < neg; i++)
            egress_cleanup(&eg[i]);
        free(eg);
    }
    if (delivery_rules_take(d, &sh)) {
        delivery_sites_set(d, &sh);
        shaping_cleanup(&sh);
    }
    held_check_take(d);
    *got = delivery_answers_take(d, &v);
    if (delivery_caps_take(d))
        delivery_sites_caps(d);
    for (int i = 0; i < v.n; i++) {
        int64_t us = 0;
        enum turn turn = TURN_GO;

        if (!delivery_stopping(d))
            turn = turn_of(d, &v.items[i], time_now_us(), &us);
        if (delivery_stopping(d))
            release_unsent(d, &v.items[i], "the worker is stopping");
        else if (turn == TURN_WAIT || turn == TURN_PARK)
            hold(d, &v.items[i], turn == TURN_PARK, us);
        else if (turn == TURN_LATE)
            reslot(d, &v.items[i]);
        else
            send_one(d, &v.items[i]);
    }
    delivery_vec_cleanup(&v);
}

/* ---- the loop ---- */

/*
 * Asks the database thread for a claim of what there is room for: the
 * in-flight bound and, with a relay, what the connections will start soon
 * (a long queue inside the worker would age its leases).
 */
static void
fill(struct delivery *d)
{
    int room, max;

    /* No egress can take mail (every relay backing off): nothing to claim for. */
    if (delivery_stopping(d) || delivery_egress_up(d) == 0)
        return;
    if (d->claim_busy) {
        d->refill = true;
        return;
    }
    /* Outcomes waiting for their group commit hold in-flight room: when that
     * is what stops the claims, commit them now rather than at the timer. */
    if (d->inflight >= d->cfg->delivery_inflight && d->nresults > 0)
        delivery_results_flush(d);
    room = (int)(d->cfg->delivery_inflight - d->inflight - d->nheld);
    if (room <= 0)
        return;
    max = room;
    if (d->pool) {
        /* Top up once the queue has drained to half its depth: a claim's
         * fixed cost is then spread over half a queue, not a few messages. */
        int cap = queue_depth(d) * conns_total(d),
            busy = pools_busy(d) + d->nheld;
        if (2 * busy >= cap)
            return;
        max = max < cap - busy ? max : cap - busy;
    }
    d->refill = false;
    delivery_claim_ask(d, max);
}

static void
dbdone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    int got = 0;

    (void)fd;
    (void)what;
    take_answers(d, &got);
    /* Idle only when a claim saw nothing due at all: one that suppressed or
     * deferred every row it looked at has more to look at. */
    if (got > 0 || (got == 0 && d->found_work)) {
        if (d->idle > 0) { /* the tick back at its base now, not after the long wait */
            struct timeval tv = {d->cfg->delivery_poll_ms / 1000,
                                 (d->cfg->delivery_poll_ms % 1000) * 1000};
            evtimer_add(d->tick, &tv);
        }
        d->idle = 0;
    } else if (got == 0 && d->inflight == 0 && d->nheld == 0 && d->idle < 30)
        d->idle++;
    if (d->nresults >= FLUSH_MAX)
        delivery_results_flush(d);
    /* Claimed something (there may be more), committed outcomes (room freed),
     * or was asked again meanwhile; an empty claim waits for the tick. */
    if (got != 0 || d->refill)
        fill(d);
}

/*
 * The poll: asks for a claim and, every few seconds, for the lease sweep,
 * which runs even when nothing can be claimed (a relay backed off, the
 * pool full), so other workers' expired leases come back regardless.
 */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    int64_t now = time_mono_us();
    int64_t ms = poll_backoff_ms(d->cfg->delivery_poll_ms, d->cfg->idle_poll_max_ms, d->idle);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    (void)fd;
    (void)what;
    evtimer_add(d->tick, &tv); /* (re)armed from a kick or a wake too */
    if (!delivery_stopping(d) && now - d->recover_asked > RECOVER_EVERY_US) {
        d->recover_asked = now;
        delivery_recover_ask(d);
    }
    if (d->ncaps > 0) /* a cap that ran out ends here, claims or not */
        delivery_sites_caps(d);
    held_check_ask(d);
    delivery_sites_reap(d);
    delivery_egress_reap(d);
    fill(d);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;

    d->idle = 0;
    tick_cb(fd, what, arg);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    bool busy = d->inflight > 0 || d->found_work;

    (void)fd;
    (void)what;
    delivery_results_flush(d);
    /* Room freed by committed outcomes, or due messages the last claim did
     * not take (suppressed, limited); a worker that saw none claims at its tick. */
    if (!delivery_stopping(d) && busy && d->inflight < d->cfg->delivery_inflight / 2)
        fill(d);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    struct timeval tv = {0, STOP_CHECK_MS * 1000};
    int got = 0;

    (void)fd;
    (void)what;
    if ((d->inflight > 0 || d->claim_busy) && time_mono_us() < d->stop_deadline) {
        evtimer_add(d->stop_ev, &tv);
        return;
    }
    /* Idle connections say QUIT and wait (bounded) for the relay's answer. */
    if (d->pool && !d->quit_asked) {
        d->quit_asked = true;
        smtp_pool_quit(d->pool, NULL, NULL);
        delivery_egress_quit(d);
        /* One more turn of the loop in any case: it runs the callbacks of the
         * name resolutions the quit cancelled, which free them. */
        evtimer_add(d->stop_ev, &tv);
        return;
    }
    if (smtp_pool_conns(d->pool) + delivery_egress_conns(d) > 0 &&
        time_mono_us() < d->stop_deadline) {
        evtimer_add(d->stop_ev, &tv);
        return;
    }
    /* The database thread finishes what it is doing; its answers are taken
     * here (a claim that comes back now is released unsent). */
    delivery_db_quiesce(d);
    take_answers(d, &got);
    if (d->inflight > d->nresults)
        log_warn("event=delivery_stop in_flight=%d (handed back)", d->inflight - d->nresults);
    delivery_sites_free(d); /* ends what is left through job_done */
    delivery_egress_free(d);
    smtp_pool_free(d->pool);
    d->pool = NULL;
    delivery_db_quiesce(d); /* job_done may have handed a flush over */
    take_answers(d, &got);
    /* The last record, here: the database thread is idle. */
    if (d->nresults > 0) {
        int applied = 0;
        if (store_delivery_record(d->st, d->owner, time_now_us(), d->results, d->nresults,
                                  &applied) == MC_ERR_OK) {
            d->inflight -= d->nresults;
            d->nresults = 0;
        } else
            log_warn("event=record_failed n=%d (the leases will expire)", d->nresults);
    }
    event_base_loopbreak(d->base);
}

static void *
run(void *arg)
{
    struct delivery *d = arg;

    event_base_dispatch(d->base);
    return NULL;
}

struct delivery *
delivery_start(struct store *st, const struct config *cfg, const struct secrets *secrets)
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    struct timeval tick = {cfg->delivery_poll_ms / 1000, (cfg->delivery_poll_ms % 1000) * 1000};
    struct timeval flush = {0, FLUSH_MS * 1000};

    evthread_use_pthreads();
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->dbmu, NULL);
    pthread_cond_init(&d->dbcv, NULL);
    d->st = st;
    d->cfg = cfg;
    d->secrets = *secrets;
    d->signer = dkim_signer_new();
    if (d->signer == NULL)
        goto fail;
    crypto_owner_name("", d->owner, sizeof(d->owner));
    d->base = event_base_new();
    if (d->base == NULL)
        goto fail;
    if (str_prefix(cfg->relay, "dir:")) {
        d->outbox = cfg->relay + 4;
        if (outbox_open(d->outbox) != MC_ERR_OK)
            goto fail;
    } else {
        struct smtp_params p;
        char err[160];
        if (app_relay_params(cfg, &p, err, sizeof(err)) != MC_ERR_OK) {
            log_error("event=relay error=\"%s\"", err);
            goto fail;
        }
        d->pool = smtp_pool_new(d->base, &p, delivery_job_done, d);
        if (d->pool == NULL)
            goto fail;
        d->relay = p;
    }
    d->pacing.burst = cfg->pacing_burst;
    d->pacing.horizon_us = cfg->pacing_horizon_ms * 1000;
    {
        struct shaping sh = {0};
        struct egress *eg = NULL;
        int neg = 0;
        if (store_egress_list(st, &eg, &neg) == MC_ERR_OK)
            delivery_egress_set(d, eg, neg);
        for (int i = 0; i < neg; i++)
            egress_cleanup(&eg[i]);
        free(eg);
        if (store_shaping_get(st, &sh) == MC_ERR_OK)
            delivery_sites_set(d, &sh);
        shaping_cleanup(&sh);
    }
    d->tick = evtimer_new(d->base, tick_cb, d);
    d->flush = event_new(d->base, -1, EV_PERSIST, flush_cb, d);
    d->stop_ev = evtimer_new(d->base, stop_cb, d);
    d->kick = event_new(d->base, -1, 0, tick_cb, d);
    d->wake = event_new(d->base, -1, 0, wake_cb, d);
    d->dbdone = event_new(d->base, -1, 0, dbdone_cb, d);
    d->unpark = event_new(d->base, -1, 0, unpark_cb, d);
    if (!d->tick || !d->flush || !d->stop_ev || !d->kick || !d->wake || !d->dbdone ||
        !d->unpark)
        goto fail;
    evtimer_add(d->tick, &tick);
    evtimer_add(d->flush, &flush);
    if (!delivery_db_start(d))
        goto fail;
    if (pthread_create(&d->thread, NULL, run, d) != 0)
        goto fail;
    log_info("event=delivery_start owner=%s relay=%s", d->owner,
             d->outbox ? cfg->relay : "smtp");
    return d;
fail:
    log_error("event=delivery error=\"cannot start delivery\"");
    delivery_db_end(d);
    delivery_sites_free(d);
    delivery_egress_free(d);
    shaping_cleanup(&d->rules_next);
    smtp_pool_free(d->pool);
    if (d->tick)
        event_free(d->tick);
    if (d->flush)
        event_free(d->flush);
    if (d->stop_ev)
        event_free(d->stop_ev);
    if (d->kick)
        event_free(d->kick);
    if (d->wake)
        event_free(d->wake);
    if (d->dbdone)
        event_free(d->dbdone);
    if (d->unpark)
        event_free(d->unpark);
    if (d->base)
        event_base_free(d->base);
    dkim_signer_free(d->signer);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->dbmu);
    pthread_cond_destroy(&d->dbcv);
    app_secrets_wipe(&d->secrets);
    free(d);
    return NULL;
}

static void
begin_stop(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;

    (void)fd;
    (void)what;
    smtp_pool_drain(d->pool); /* what has not started goes back at once */
    delivery_sites_drain(d);
    delivery_egress_drain(d);
    held_release_all(d);
    stop_cb(fd, what, d);
}

struct event_base *
delivery_event_base(struct delivery *d)
{
    return d->base;
}

void
delivery_wake(void *arg)
{
    struct delivery *d = arg;

    if (d != NULL)
        event_active(d->wake, EV_TIMEOUT, 0);
}

void
delivery_on_commit(struct delivery *d, void (*fn)(void *), void *arg)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->on_commit = fn;
    d->on_commit_arg = arg;
    pthread_mutex_unlock(&d->mu);
}

void
delivery_stop(struct delivery *d, int timeout_s)
{
    if (d == NULL)
        return;
    /* Runs in the loop's thread: the deadline is set there, then the wait polls. */
    d->stop_deadline = time_mono_us() + (int64_t)timeout_s * 1000000;
    event_base_once(d->base, -1, EV_TIMEOUT, begin_stop, d, NULL);
    pthread_join(d->thread, NULL);
    delivery_db_end(d);
    event_free(d->tick);
    event_free(d->flush);
    event_free(d->stop_ev);
    event_free(d->kick);
    event_free(d->wake);
    event_free(d->dbdone);
    event_free(d->unpark);
    for (int i = 0; i < d->ncache; i++)
        compose_campaign_free(d->cache[i].c);
    free(d->results);
    free(d->rec);
    free(d->obs);
    free(d->obs_rec);
    free(d->tally);
    free(d->tally_h);
    free(d->tally_rec);
    delivery_sites_free(d); /* the rules; the pools went at the stop */
    shaping_cleanup(&d->rules_next);
    for (int i = 0; i < d->neg_next; i++)
        egress_cleanup(&d->eg_next[i]);
    free(d->eg_next);
    free(d->stopped);
    free(d->stopped_ask);
    delivery_vec_cleanup(&d->claimed);
    event_base_free(d->base);
    dkim_signer_free(d->signer);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->dbmu);
    pthread_cond_destroy(&d->dbcv);
    app_secrets_wipe(&d->secrets);
    free(d);
}
