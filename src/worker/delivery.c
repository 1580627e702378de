/*
 * delivery.c - the delivery worker (see delivery.h).
 *
 * DESIGN
 * Two threads.  The loop thread runs a libevent loop that owns the SMTP
 * pool, composes the claimed messages and collects their outcomes; the
 * database thread does the claims and the group commits, so neither stalls
 * the SMTP connections.  They meet in two request slots under dbmu (one
 * claim and one record at a time); the database thread answers by waking
 * the loop (the dbdone event).  Nothing else is shared but the stop request
 * and the metrics.
 *
 * A tick (every delivery_poll_ms, or at once when a connection's queue runs
 * low) asks for a claim of what the capacity allows, and every few seconds
 * for the sweep that returns expired leases to pending (it runs even when
 * nothing can be claimed).  For a claim the database thread walks the
 * (tenant, campaign) pairs that have work, one claim each in turn, so a
 * tenant held back by its rate limit costs the others one cheap claim that
 * returns nothing and never delays them.  Claimed messages are composed
 * (compose.h) from the campaign's compiled templates, cached per campaign,
 * and handed to the relay.
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
#include "core/email.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "compose.h"
#include "delivery.h"
#include "sendnow.h"
#include "smtp/client.h"
#include "smtp/dkim.h"
#include "smtp/outbox.h"

#define FLUSH_MS 100
#define FLUSH_MAX 200
#define RECOVER_EVERY_US (5 * 1000000LL)
#define MAX_WORK 256
#define CACHE_MAX 64
#define STOP_CHECK_MS 20
/*
 * How many messages wait per SMTP connection: about QUEUE_US of sending at
 * the rate the relay has been taking them, between QUEUE_MIN and QUEUE_MAX.
 * A claim tops the pool up to that depth once it has drained to half of it,
 * so against a fast relay claims come in batches of hundreds (each claim's
 * fixed cost spread over them), while against a slow one few messages wait:
 * a pause or cancel holds back everything not yet started.
 */
#define QUEUE_US 100000
#define QUEUE_MIN 2
#define QUEUE_MAX 64
#define RATE_EVERY_US 100000

/* A cached campaign, with when it was last used (for eviction). */
struct camp {
    struct compose_campaign *c; /* owned */
    int64_t used;
};

struct dmsg {
    struct smtp_job job; /* first: the pool hands back &job */
    struct delivery *d;
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    int64_t started; /* monotonic, when handed to the relay */
    int attempts;
    char message_id[128];
};

#define METRIC_TENANTS 1024
#define NOUTCOMES 5
static const char *const outcome_names[NOUTCOMES] = {"sent", "retry", "failed", "bounced",
                                                     "released"};
static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define NLAT ((int)(sizeof(latency_bounds) / sizeof(latency_bounds[0])))

/* Counters the /metrics endpoint reads from another thread (under mu). */
struct dmetrics {
    char tenants[METRIC_TENANTS][MC_UUID_LEN + 1]; /* "" ends the list */
    uint64_t outcomes[METRIC_TENANTS][NOUTCOMES];
    int ntenants;
    uint64_t lat_bucket[NLAT], lat_n;
    double lat_sum;
    uint64_t lease_expiries;
};

struct delivery {
    struct store *st;          /* borrowed */
    const struct config *cfg;  /* borrowed */
    unsigned char key[32];
    unsigned char kek[32];
    struct dkim_signer *signer; /* owned */
    char owner[96];
    pthread_t thread;
    struct event_base *base;
    struct event *tick, *flush, *stop_ev;
    struct event *kick; /* a fill soon, after the callback that asks for it returns */
    struct smtp_pool *pool;    /* NULL for dir: */
    const char *outbox;        /* borrowed from cfg: the dir: path, or NULL */
    int inflight;
    struct delivery_result *results; /* owned, pending record */
    int nresults, capresults;
    struct camp cache[CACHE_MAX];
    int ncache;
    bool refill; /* fill again when the claim in progress comes back */
    int64_t rate_t0; /* monotonic: start of the completions being counted */
    int rate_n;      /* completions since rate_t0 */
    double rate;     /* completions per second, smoothed */

    /* The database thread and its two request slots, under dbmu. */
    pthread_t dbthread;
    bool dbthread_started;
    pthread_mutex_t dbmu;
    pthread_cond_t dbcv;    /* requests (to the thread) and answers (to a waiter) */
    struct event *dbdone;   /* wakes the loop when an answer is ready */
    bool dbquit;
    int claim_req;          /* > 0: claim up to this many, not yet started */
    bool claim_busy;        /* asked for and its answer not yet taken */
    bool claim_done;
    struct delivery_vec claimed;
    struct delivery_result *rec; /* owned: the outcomes being recorded */
    int nrec, caprec;
    bool rec_req, rec_busy, rec_done;
    mc_err rec_err;
    bool recover_req;       /* return expired leases (no answer) */
    int64_t recover_asked;  /* the loop's: monotonic, when it last asked */
    /* The database thread's own. */
    struct delivery_work work[MAX_WORK];
    int nwork, next_work;
    _Atomic int64_t stop_deadline; /* monotonic; 0 while running; set by delivery_stop */
    pthread_mutex_t mu; /* guards m */
    struct dmetrics m;
};

int64_t
delivery_backoff_us(int attempt, int64_t base_s, int64_t cap_s, double u)
{
    double d = (double)base_s;

    for (int i = 1; i < attempt && d < (double)cap_s; i++)
        d *= 2;
    if (d > (double)cap_s)
        d = (double)cap_s;
    d *= 1.0 + (u * 0.4 - 0.2);
    return (int64_t)(d * 1e6);
}

static double
uniform(void)
{
    uint32_t x;

    crypto_random(&x, sizeof(x));
    return (double)x / 4294967296.0;
}

/* ---- campaigns ---- */

/*
 * The campaign's compiled sending data, from the cache or loaded.  A
 * campaign's content cannot change once it has left the draft state, so an
 * entry never goes stale; the least recently used one is evicted.
 */
static struct compose_campaign *
camp_get(struct delivery *d, const char *tenant_id, const char *id)
{
    struct compose_campaign *c = NULL;
    int victim = 0;

    for (int i = 0; i < d->ncache; i++) {
        if (strcmp(d->cache[i].c->id, id) == 0) {
            d->cache[i].used = time_mono_us();
            return d->cache[i].c;
        }
        if (d->cache[i].used < d->cache[victim].used)
            victim = i;
    }
    if (compose_campaign_load(d->st, d->cfg, d->kek, tenant_id, id, &c) != MC_ERR_OK)
        return NULL;
    if (d->ncache == CACHE_MAX)
        compose_campaign_free(d->cache[victim].c);
    else
        victim = d->ncache++;
    d->cache[victim].c = c;
    d->cache[victim].used = time_mono_us();
    return c;
}

static bool
stopping(struct delivery *d)
{
    return d->stop_deadline != 0;
}

/* ---- outcomes ---- */

static void
add_result(struct delivery *d, const struct dmsg *m, enum delivery_outcome out, int64_t next,
           int code, const char *error, const char *queue_id)
{
    struct delivery_result *r;

    if (d->nresults == d->capresults) {
        d->capresults = d->capresults ? d->capresults * 2 : 256;
        d->results = xrealloc(d->results, (size_t)d->capresults * sizeof(*r));
    }
    r = &d->results[d->nresults++];
    pthread_mutex_lock(&d->mu);
    int t = 0;
    while (t < d->m.ntenants && strcmp(d->m.tenants[t], m->tenant_id) != 0)
        t++;
    if (t == d->m.ntenants && t < METRIC_TENANTS)
        memcpy(d->m.tenants[d->m.ntenants++], m->tenant_id, MC_UUID_LEN + 1);
    if (t < METRIC_TENANTS)
        d->m.outcomes[t][out]++;
    if (m->started && out != OUT_RELEASE) {
        double secs = (double)(time_mono_us() - m->started) / 1e6;
        for (int b = 0; b < NLAT; b++)
            if (secs <= latency_bounds[b]) {
                d->m.lat_bucket[b]++;
                break;
            }
        d->m.lat_n++;
        d->m.lat_sum += secs;
    }
    pthread_mutex_unlock(&d->mu);
    memset(r, 0, sizeof(*r));
    memcpy(r->id, m->id, sizeof(r->id));
    r->attempts = m->attempts;
    r->outcome = out;
    r->next_attempt_at = next;
    r->reply_code = code;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    snprintf(r->queue_id, sizeof(r->queue_id), "%s", queue_id ? queue_id : "");
    snprintf(r->message_id, sizeof(r->message_id), "%s", m->message_id);
}

/* Hands the collected outcomes to the database thread, unless it is still
 * recording the previous ones (the answer flushes again). */
static void
flush_results(struct delivery *d)
{
    struct delivery_result *t;
    int cap;

    if (d->nresults == 0)
        return;
    pthread_mutex_lock(&d->dbmu);
    if (d->rec_busy) {
        pthread_mutex_unlock(&d->dbmu);
        return;
    }
    t = d->rec, d->rec = d->results, d->results = t;
    cap = d->caprec, d->caprec = d->capresults, d->capresults = cap;
    d->nrec = d->nresults;
    d->nresults = 0;
    d->rec_busy = d->rec_req = true;
    pthread_cond_broadcast(&d->dbcv);
    pthread_mutex_unlock(&d->dbmu);
}

/* The loop thread takes back a finished record. */
static void
record_done(struct delivery *d, mc_err err)
{
    if (err == MC_ERR_OK) {
        /* A message stops counting as in flight only once its outcome is
         * committed: that is what bounds the duplicates a kill -9 can cause. */
        d->inflight -= d->nrec;
        d->nrec = 0;
        return;
    }
    log_warn("event=record_failed n=%d (kept for the next flush)", d->nrec);
    if (d->caprec < d->nrec + d->nresults) {
        d->caprec = d->nrec + d->nresults;
        d->rec = xrealloc(d->rec, (size_t)d->caprec * sizeof(*d->rec));
    }
    memcpy(d->rec + d->nrec, d->results, (size_t)d->nresults * sizeof(*d->rec));
    struct delivery_result *t = d->results;
    int cap = d->capresults;
    d->results = d->rec, d->capresults = d->caprec;
    d->nresults = d->nrec + d->nresults;
    d->rec = t, d->caprec = cap, d->nrec = 0;
}

static void
dmsg_free(struct dmsg *m)
{
    free(m->job.mail_from);
    free(m->job.rcpt_to);
    free(m->job.envid);
    buf_cleanup(&m->job.data);
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

/* The pool's verdict on one message. */
static void
job_done(struct smtp_job *job, void *arg)
{
    struct dmsg *m = (struct dmsg *)job;
    struct delivery *d = arg;
    int64_t now = time_now_us();
    char err[320];

    snprintf(err, sizeof(err), "%d%s%s %s", job->code, job->enhanced[0] ? " " : "", job->enhanced,
             job->text);
    switch (job->result) {
    case SMTP_SENT:
        add_result(d, m, OUT_SENT, 0, job->code, NULL, job->queue_id);
        break;
    case SMTP_PERMFAIL:
        add_result(d, m, str_prefix(job->enhanced, "5.1.") ? OUT_BOUNCED : OUT_FAILED, 0,
                   job->code, err, NULL);
        break;
    case SMTP_TEMPFAIL:
        add_result(d, m, OUT_RETRY,
                   now + delivery_backoff_us(m->attempts, d->cfg->retry_base, d->cfg->retry_cap,
                                             uniform()),
                   job->code, job->code ? err : job->text, NULL);
        break;
    case SMTP_NOT_SENT:
        /* The relay was never reached: no attempt is spent; try again after a pause. */
        add_result(d, m, OUT_RELEASE, now + 2 * 1000000LL, 0, job->text, NULL);
        break;
    }
    dmsg_free(m);
    if (d->nresults >= FLUSH_MAX)
        flush_results(d);
    /* A connection is free: refill now, not at the next tick (never from inside
     * the pool's callback, which must not submit). */
    d->rate_n++;
    if (d->pool && !stopping(d) &&
        2 * smtp_pool_busy(d->pool) < queue_depth(d) * d->cfg->smtp_connections &&
        !event_pending(d->kick, EV_TIMEOUT, NULL))
        event_active(d->kick, EV_TIMEOUT, 0);
}

/* ---- rendering ---- */

/* Builds the message for m; false (and an outcome recorded) when it cannot be. */
static bool
build(struct delivery *d, struct dmsg *m, const struct delivery_msg *dm)
{
    struct compose_campaign *c = camp_get(d, dm->tenant_id, dm->campaign_id);
    struct compose_recipient r = {
        .recipient_id = dm->recipient_id[0] ? dm->recipient_id : NULL,
        .email = dm->to_address,
        .name = dm->name,
        .first_name = dm->first_name,
        .last_name = dm->last_name,
        .attributes = dm->attributes,
    };
    const char *why = NULL;

    if (c == NULL) {
        add_result(d, m, OUT_FAILED, 0, 0, "the campaign's templates cannot be used", NULL);
        return false;
    }
    buf_init(&m->job.data, (size_t)d->cfg->render_max * 3);
    if (compose_message(c, d->cfg, d->signer, d->key, &r, m->id, m->message_id, sizeof(m->message_id),
                        &m->job.data, &why) != MC_ERR_OK) {
        add_result(d, m, OUT_FAILED, 0, 0, why, NULL);
        return false;
    }
    m->job.mail_from = xstrdup(d->cfg->return_path ? d->cfg->return_path : c->from_address);
    m->job.rcpt_to = xstrdup(dm->to_address);
    m->job.envid = xstrdup(m->id);
    m->job.utf8 = email_needs_utf8(dm->to_address) || email_needs_utf8(m->job.mail_from);
    return true;
}

static void
send_one(struct delivery *d, const struct delivery_msg *dm)
{
    struct dmsg *m = xcalloc(1, sizeof(*m));

    m->d = d;
    memcpy(m->id, dm->id, sizeof(m->id));
    memcpy(m->tenant_id, dm->tenant_id, sizeof(m->tenant_id));
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
    if (d->pool) {
        smtp_pool_submit(d->pool, &m->job);
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
    job_done(&m->job, d);
}

/* Stops the database thread once it has nothing left to do. */
static void
db_thread_end(struct delivery *d)
{
    if (!d->dbthread_started)
        return;
    pthread_mutex_lock(&d->dbmu);
    d->dbquit = true;
    pthread_cond_broadcast(&d->dbcv);
    pthread_mutex_unlock(&d->dbmu);
    pthread_join(d->dbthread, NULL);
    d->dbthread_started = false;
}

/* ---- the loop ---- */


/* ---- the database thread ---- */

/* Moves the items of v to the end of out. */
static void
vec_append(struct delivery_vec *out, struct delivery_vec *v)
{
    if (v->n == 0)
        return;
    out->items = xrealloc(out->items, (size_t)(out->n + v->n) * sizeof(*out->items));
    memcpy(out->items + out->n, v->items, (size_t)v->n * sizeof(*v->items));
    out->n += v->n;
    free(v->items);
    memset(v, 0, sizeof(*v));
}

/* Expired leases (any worker's) back to pending; old rate buckets deleted. */
static void
recover(struct delivery *d)
{
    int n = 0;
    mc_err err = store_delivery_recover(d->st, time_now_us(), &n);

    if (err != MC_ERR_OK) /* the next tick tries again; the leases stay expired till then */
        log_warn("event=lease_recover error=%s", mc_err_code(err));
    pthread_mutex_lock(&d->mu);
    d->m.lease_expiries += (uint64_t)n;
    pthread_mutex_unlock(&d->mu);
}

/*
 * Claims up to max messages: one claim per (tenant, campaign) in turn, pass
 * after pass over the work list, until max is reached or a whole pass
 * claims nothing.
 */
static void
claim_round(struct delivery *d, int max, struct delivery_vec *out)
{
    bool pass_started = false, claimed_in_pass = false;

    while (out->n < max && !stopping(d)) {
        if (d->next_work >= d->nwork) {
            if (pass_started && !claimed_in_pass)
                break;
            if (store_delivery_work(d->st, MAX_WORK, d->work, &d->nwork) != MC_ERR_OK ||
                d->nwork == 0)
                break;
            d->next_work = 0;
            pass_started = true;
            claimed_in_pass = false;
        }
        const struct delivery_work *w = &d->work[d->next_work++];
        struct delivery_vec v = {0};
        int n = max - out->n < d->cfg->delivery_batch ? max - out->n
                                                       : (int)d->cfg->delivery_batch;

        if (store_delivery_claim(d->st, w, d->owner, time_now_us(),
                                 d->cfg->lease_seconds * 1000000LL, n, &v) != MC_ERR_OK)
            break;
        claimed_in_pass |= v.n > 0;
        vec_append(out, &v);
    }
}

static void *
db_run(void *arg)
{
    struct delivery *d = arg;

    pthread_mutex_lock(&d->dbmu);
    for (;;) {
        while (!d->dbquit && d->claim_req == 0 && !d->rec_req && !d->recover_req)
            pthread_cond_wait(&d->dbcv, &d->dbmu);
        if (d->recover_req) {
            d->recover_req = false;
            pthread_mutex_unlock(&d->dbmu);
            recover(d);
            pthread_mutex_lock(&d->dbmu);
            continue; /* nothing to answer */
        }
        if (d->rec_req) {
            int applied = 0;
            d->rec_req = false;
            pthread_mutex_unlock(&d->dbmu);
            mc_err err = store_delivery_record(d->st, d->owner, time_now_us(), d->rec, d->nrec,
                                               &applied);
            pthread_mutex_lock(&d->dbmu);
            d->rec_err = err;
            d->rec_done = true;
        } else if (d->claim_req > 0) {
            struct delivery_vec v = {0};
            int max = d->claim_req;
            d->claim_req = 0;
            pthread_mutex_unlock(&d->dbmu);
            claim_round(d, max, &v);
            pthread_mutex_lock(&d->dbmu);
            d->claimed = v;
            d->claim_done = true;
        } else
            break; /* asked to quit, nothing left to do */
        pthread_cond_broadcast(&d->dbcv);
        event_active(d->dbdone, EV_TIMEOUT, 0);
    }
    pthread_mutex_unlock(&d->dbmu);
    return NULL;
}

/* Ends a claimed message that will not be sent: back to pending, no attempt used. */
static void
release_unsent(struct delivery *d, const struct delivery_msg *dm)
{
    struct dmsg m = {0};

    memcpy(m.id, dm->id, sizeof(m.id));
    memcpy(m.tenant_id, dm->tenant_id, sizeof(m.tenant_id));
    m.attempts = dm->attempts;
    d->inflight++;
    add_result(d, &m, OUT_RELEASE, time_now_us(), 0, "the worker is stopping", NULL);
}

/* The loop thread takes what the database thread has finished; *got: claimed. */
static void
take_answers(struct delivery *d, int *got)
{
    struct delivery_vec v = {0};
    bool claim = false, rec = false;
    mc_err rec_err = MC_ERR_OK;

    pthread_mutex_lock(&d->dbmu);
    if (d->claim_done) {
        v = d->claimed;
        memset(&d->claimed, 0, sizeof(d->claimed));
        d->claim_done = d->claim_busy = false;
        claim = true;
    }
    if (d->rec_done) {
        rec_err = d->rec_err;
        d->rec_done = d->rec_busy = false;
        rec = true;
    }
    pthread_mutex_unlock(&d->dbmu);
    if (rec)
        record_done(d, rec_err);
    for (int i = 0; i < v.n; i++) {
        if (stopping(d))
            release_unsent(d, &v.items[i]);
        else
            send_one(d, &v.items[i]);
    }
    *got = claim ? v.n : -1;
    delivery_vec_cleanup(&v);
}

/* Waits until the database thread has answered everything asked of it. */
static void
db_quiesce(struct delivery *d)
{
    pthread_mutex_lock(&d->dbmu);
    while ((d->claim_busy && !d->claim_done) || (d->rec_busy && !d->rec_done))
        pthread_cond_wait(&d->dbcv, &d->dbmu);
    pthread_mutex_unlock(&d->dbmu);
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

    if (stopping(d) || (d->pool != NULL && smtp_pool_backing_off(d->pool)))
        return;
    if (d->claim_busy) {
        d->refill = true;
        return;
    }
    /* Outcomes waiting for their group commit hold in-flight room: when that
     * is what stops the claims, commit them now rather than at the timer. */
    if (d->inflight >= d->cfg->delivery_inflight && d->nresults > 0)
        flush_results(d);
    room = (int)(d->cfg->delivery_inflight - d->inflight);
    if (room <= 0)
        return;
    max = room;
    if (d->pool) {
        /* Top up once the queue has drained to half its depth: a claim's
         * fixed cost is then spread over half a queue, not a few messages. */
        int cap = queue_depth(d) * (int)d->cfg->smtp_connections, busy = smtp_pool_busy(d->pool);
        if (2 * busy >= cap)
            return;
        max = max < cap - busy ? max : cap - busy;
    }
    d->refill = false;
    pthread_mutex_lock(&d->dbmu);
    d->claim_busy = true;
    d->claim_req = max;
    pthread_cond_broadcast(&d->dbcv);
    pthread_mutex_unlock(&d->dbmu);
}

static void
dbdone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;
    int got = 0;

    (void)fd;
    (void)what;
    take_answers(d, &got);
    if (d->nresults >= FLUSH_MAX)
        flush_results(d);
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

    (void)fd;
    (void)what;
    if (!stopping(d) && now - d->recover_asked > RECOVER_EVERY_US) {
        d->recover_asked = now;
        pthread_mutex_lock(&d->dbmu);
        d->recover_req = true;
        pthread_cond_broadcast(&d->dbcv);
        pthread_mutex_unlock(&d->dbmu);
    }
    fill(d);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delivery *d = arg;

    (void)fd;
    (void)what;
    flush_results(d);
    if (!stopping(d) && d->inflight < d->cfg->delivery_inflight / 2)
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
    /* The database thread finishes what it is doing; its answers are taken
     * here (a claim that comes back now is released unsent). */
    db_quiesce(d);
    take_answers(d, &got);
    if (d->inflight > d->nresults)
        log_warn("event=delivery_stop in_flight=%d (handed back)", d->inflight - d->nresults);
    smtp_pool_free(d->pool); /* ends what is left through job_done */
    d->pool = NULL;
    db_quiesce(d); /* job_done may have handed a flush over */
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
delivery_start(struct store *st, const struct config *cfg, const unsigned char token_key[32],
               const unsigned char dkim_kek[32])
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    struct timeval tick = {cfg->delivery_poll_ms / 1000, (cfg->delivery_poll_ms % 1000) * 1000};
    struct timeval flush = {0, FLUSH_MS * 1000};
    char host[64] = "host";
    unsigned char rnd[4];
    char hex[9];

    evthread_use_pthreads();
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->dbmu, NULL);
    pthread_cond_init(&d->dbcv, NULL);
    d->st = st;
    d->cfg = cfg;
    memcpy(d->key, token_key, sizeof(d->key));
    memcpy(d->kek, dkim_kek, sizeof(d->kek));
    d->signer = dkim_signer_new();
    if (d->signer == NULL)
        goto fail;
    gethostname(host, sizeof(host) - 1);
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    snprintf(d->owner, sizeof(d->owner), "%.60s:%d:%s", host, (int)getpid(), hex);
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
        if (relay_params(cfg, &p, err, sizeof(err)) != MC_ERR_OK) {
            log_error("event=relay error=\"%s\"", err);
            goto fail;
        }
        d->pool = smtp_pool_new(d->base, &p, job_done, d);
        if (d->pool == NULL)
            goto fail;
    }
    d->tick = event_new(d->base, -1, EV_PERSIST, tick_cb, d);
    d->flush = event_new(d->base, -1, EV_PERSIST, flush_cb, d);
    d->stop_ev = evtimer_new(d->base, stop_cb, d);
    d->kick = event_new(d->base, -1, 0, tick_cb, d);
    d->dbdone = event_new(d->base, -1, 0, dbdone_cb, d);
    evtimer_add(d->tick, &tick);
    evtimer_add(d->flush, &flush);
    if (pthread_create(&d->dbthread, NULL, db_run, d) != 0)
        goto fail;
    d->dbthread_started = true;
    if (pthread_create(&d->thread, NULL, run, d) != 0)
        goto fail;
    log_info("event=delivery_start owner=%s relay=%s", d->owner,
             d->outbox ? cfg->relay : "smtp");
    return d;
fail:
    log_error("event=delivery error=\"cannot start delivery\"");
    db_thread_end(d);
    smtp_pool_free(d->pool);
    if (d->tick)
        event_free(d->tick);
    if (d->flush)
        event_free(d->flush);
    if (d->stop_ev)
        event_free(d->stop_ev);
    if (d->kick)
        event_free(d->kick);
    if (d->dbdone)
        event_free(d->dbdone);
    if (d->base)
        event_base_free(d->base);
    dkim_signer_free(d->signer);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->dbmu);
    pthread_cond_destroy(&d->dbcv);
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
    stop_cb(fd, what, d);
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
    db_thread_end(d);
    event_free(d->tick);
    event_free(d->flush);
    event_free(d->stop_ev);
    event_free(d->kick);
    event_free(d->dbdone);
    for (int i = 0; i < d->ncache; i++)
        compose_campaign_free(d->cache[i].c);
    free(d->results);
    free(d->rec);
    delivery_vec_cleanup(&d->claimed);
    event_base_free(d->base);
    dkim_signer_free(d->signer);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->dbmu);
    pthread_cond_destroy(&d->dbcv);
    free(d);
}

void
delivery_metrics(struct delivery *d, struct buf *out)
{
    uint64_t cum = 0;

    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    buf_puts(out, "# HELP mailcast_messages_total Delivery outcomes by tenant.\n"
                  "# TYPE mailcast_messages_total counter\n");
    for (int t = 0; t < d->m.ntenants; t++)
        for (int o = 0; o < NOUTCOMES; o++)
            if (d->m.outcomes[t][o])
                buf_printf(out, "mailcast_messages_total{tenant=\"%s\",outcome=\"%s\"} %llu\n",
                           d->m.tenants[t], outcome_names[o],
                           (unsigned long long)d->m.outcomes[t][o]);
    buf_puts(out, "# HELP mailcast_smtp_duration_seconds From handing a message to the relay "
                  "to its final reply.\n# TYPE mailcast_smtp_duration_seconds histogram\n");
    for (int b = 0; b < NLAT; b++) {
        cum += d->m.lat_bucket[b];
        buf_printf(out, "mailcast_smtp_duration_seconds_bucket{le=\"%g\"} %llu\n",
                   latency_bounds[b], (unsigned long long)cum);
    }
    buf_printf(out,
               "mailcast_smtp_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
               "mailcast_smtp_duration_seconds_sum %.6f\n"
               "mailcast_smtp_duration_seconds_count %llu\n",
               (unsigned long long)d->m.lat_n, d->m.lat_sum, (unsigned long long)d->m.lat_n);
    buf_printf(out,
               "# HELP mailcast_lease_expiries_total Claims that expired and went back to "
               "pending.\n# TYPE mailcast_lease_expiries_total counter\n"
               "mailcast_lease_expiries_total %llu\n",
               (unsigned long long)d->m.lease_expiries);
    pthread_mutex_unlock(&d->mu);
}
