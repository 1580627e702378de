/*
 * delivery_db.c - the delivery worker's database thread (see delivery.c's
 * DESIGN): claims and group commits run here, so the SMTP connections on
 * the loop thread never wait on the database.
 *
 * DESIGN
 * The loop thread and this one meet in request slots under dbmu: one
 * claim (claim_req, answered in claimed), one record (rec, answered in
 * rec_err) and one check of the held messages' campaigns (stopped_req,
 * answered in stopped) at a time, plus a request for the lease sweep that
 * needs no answer.  This thread answers by setting *_done and waking the loop (the
 * dbdone event); the loop takes the answers with delivery_answers_take().
 * While a record is in progress the loop keeps collecting outcomes in its
 * own buffer; the two buffers are swapped, never copied, on each hand-off
 * (the automation tallies, one per site, are copied).
 * A failed record is merged back in front of the newer outcomes and tried
 * again with the next flush.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "delivery_int.h"


/* Moves the items of v to the end of out. */
/* ---- the database thread ---- */

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
    struct shaping sh = {0};
    struct egress *eg = NULL;
    int n = 0, neg = 0;
    mc_err err = store_delivery_recover(
        d->st, time_now_us(), (int)(d->cfg->retry_max_attempts + d->cfg->lease_expiry_max), &n);

    if (err != MC_ERR_OK) /* the next tick tries again; the leases stay expired till then */
        log_warn("event=lease_recover error=%s", mc_err_code(err));
    delivery_metrics_lease_expiries(d, n);
    /* The shaping rules too, so an operator's change reaches this worker. */
    if (store_shaping_get(d->st, &sh) == MC_ERR_OK) {
        pthread_mutex_lock(&d->dbmu);
        shaping_cleanup(&d->rules_next);
        d->rules_next = sh;
        d->rules_ready = true;
        pthread_mutex_unlock(&d->dbmu);
        event_active(d->dbdone, EV_TIMEOUT, 0);
    }
    /* And the egresses, so a new or changed one is used without a restart. */
    if (store_egress_list(d->st, &eg, &neg) == MC_ERR_OK) {
        pthread_mutex_lock(&d->dbmu);
        for (int i = 0; i < d->neg_next; i++)
            egress_cleanup(&d->eg_next[i]);
        free(d->eg_next);
        d->eg_next = eg;
        d->neg_next = neg;
        d->eg_ready = true;
        pthread_mutex_unlock(&d->dbmu);
        event_active(d->dbdone, EV_TIMEOUT, 0);
    }
}

/*
 * Claims up to max messages: one claim per (tenant, campaign) in turn, pass
 * after pass over the work list, until max is reached or a whole pass
 * claims nothing.  *found: some (tenant, campaign) had due messages, taken
 * or not (suppressed, limited, deferred).
 */
static void
claim_round(struct delivery *d, int max, struct delivery_vec *out, bool *found)
{
    bool pass_started = false, claimed_in_pass = false;

    *found = false;
    while (out->n < max && !delivery_stopping(d)) {
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
        *found = true;
        struct delivery_vec v = {0};
        int n = max - out->n < d->cfg->delivery_batch ? max - out->n
                                                       : (int)d->cfg->delivery_batch;

        if (store_delivery_claim(d->st, w, d->owner, time_now_us(),
                                 d->cfg->lease_seconds * 1000000LL, n, &d->pacing, &v) !=
            MC_ERR_OK)
            break;
        claimed_in_pass |= v.n > 0;
        vec_append(out, &v);
    }
}

/*
 * The set_connections caps in force (into out, at most MAX_SITE_CAPS);
 * false when they cannot be read (the loop keeps those it has).
 */
static bool
caps_read(struct delivery *d, struct site_cap *out, int *n)
{
    struct shaping_state *s = NULL;
    int ns = 0;

    *n = 0;
    if (store_shaping_state_list(d->st, time_now_us(), &s, &ns) != MC_ERR_OK) {
        free(s);
        return false;
    }
    for (int i = 0; i < ns && *n < MAX_SITE_CAPS; i++) {
        if (strcmp(s[i].action, "set_connections") != 0 || s[i].max_connections <= 0)
            continue;
        struct site_cap *c = &out[(*n)++];
        snprintf(c->egress, sizeof(c->egress), "%s", s[i].egress);
        snprintf(c->site, sizeof(c->site), "%s", s[i].site);
        c->max_connections = s[i].max_connections;
        c->until = s[i].until;
    }
    free(s);
    return true;
}

/*
 * Answers the loop's question of which campaigns of its held messages
 * stopped sending (called and returning with dbmu held).  Unanswerable (the
 * database failed): none, and the held messages go on.
 */
static void
serve_stopped(struct delivery *d)
{
    struct delivery_work *ask = d->stopped_ask, *out = NULL;
    int n = d->nstopped_ask, nout = 0;

    d->stopped_req = false;
    d->stopped_ask = NULL;
    d->nstopped_ask = 0;
    pthread_mutex_unlock(&d->dbmu);
    if (store_delivery_stopped(d->st, ask, n, &out, &nout) != MC_ERR_OK) {
        free(out);
        out = NULL;
        nout = 0;
    }
    free(ask);
    pthread_mutex_lock(&d->dbmu);
    free(d->stopped);
    d->stopped = out;
    d->nstopped = nout;
    d->stopped_done = true;
    pthread_cond_broadcast(&d->dbcv);
    event_active(d->dbdone, EV_TIMEOUT, 0);
}

static void *
db_run(void *arg)
{
    struct delivery *d = arg;
    struct site_cap caps_buf[MAX_SITE_CAPS]; /* a claim's caps, before the hand-over */
    int ncaps = 0;

    pthread_mutex_lock(&d->dbmu);
    for (;;) {
        while (!d->dbquit && d->claim_req == 0 && !d->rec_req && !d->recover_req &&
               !d->stopped_req)
            pthread_cond_wait(&d->dbcv, &d->dbmu);
        if (d->stopped_req) {
            serve_stopped(d);
            continue;
        }
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
            int fired = 0;
            mc_err err = store_delivery_record(d->st, d->owner, time_now_us(), d->rec, d->nrec,
                                               &applied);
            /* The relay's replies feed the automation rules, recorded or not. */
            if (store_shaping_observe(d->st, "default", d->obs_rec, d->nobs_rec, d->tally_rec,
                                      d->ntally_rec, time_now_us(), &fired) != MC_ERR_OK)
                log_warn("event=shaping_observe_failed n=%d sites=%d", d->nobs_rec,
                         d->ntally_rec);
            d->nobs_rec = 0;
            d->ntally_rec = 0;
            /* Others in this process may act on the outcomes now (the
             * engine completes campaigns, the webhook sender sends events). */
            if (err == MC_ERR_OK && applied > 0) {
                pthread_mutex_lock(&d->mu);
                if (d->on_commit != NULL)
                    d->on_commit(d->on_commit_arg);
                pthread_mutex_unlock(&d->mu);
            }
            pthread_mutex_lock(&d->dbmu);
            d->rec_err = err;
            d->rec_done = true;
        } else if (d->claim_req > 0) {
            struct delivery_vec v = {0};
            int max = d->claim_req;
            d->claim_req = 0;
            memcpy(d->up_db, d->up_req, sizeof(d->up_db));
            for (int i = 0; i < d->nup_req; i++)
                d->up_ptr[i] = d->up_db[i];
            d->pacing.up = d->up_ptr;
            d->pacing.nup = d->nup_req;
            d->pacing.seed++;
            pthread_mutex_unlock(&d->dbmu);
            bool found;
            claim_round(d, max, &v, &found);
            /* Read with what is claimed, so the loop applies a cap before sending. */
            bool caps = v.n > 0 && caps_read(d, caps_buf, &ncaps);
            pthread_mutex_lock(&d->dbmu);
            if (caps) {
                memcpy(d->caps_next, caps_buf, (size_t)ncaps * sizeof(*caps_buf));
                d->ncaps_next = ncaps;
                d->caps_ready = true;
            }
            d->claimed = v;
            d->claim_found = found;
            d->claim_done = true;
        } else
            break; /* asked to quit, nothing left to do */
        pthread_cond_broadcast(&d->dbcv);
        event_active(d->dbdone, EV_TIMEOUT, 0);
    }
    pthread_mutex_unlock(&d->dbmu);
    return NULL;
}

/* ---- the rest runs on the loop thread ---- */

bool
delivery_db_start(struct delivery *d)
{
    if (pthread_create(&d->dbthread, NULL, db_run, d) != 0)
        return false;
    d->dbthread_started = true;
    return true;
}

void
delivery_db_end(struct delivery *d)
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

void
delivery_results_flush(struct delivery *d)
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
    {
        struct shaping_obs *o = d->obs_rec;
        d->obs_rec = d->obs, d->obs = o;
        cap = d->capobs_rec, d->capobs_rec = d->capobs, d->capobs = cap;
        d->nobs_rec = d->nobs;
        d->nobs = 0;
    }
    if (d->captally_rec < d->ntally) {
        d->captally_rec = d->ntally;
        d->tally_rec = xrealloc(d->tally_rec, (size_t)d->captally_rec * sizeof(*d->tally_rec));
    }
    if (d->ntally > 0)
        memcpy(d->tally_rec, d->tally, (size_t)d->ntally * sizeof(*d->tally));
    d->ntally_rec = d->ntally;
    d->ntally = 0;
    d->nrec = d->nresults;
    d->nresults = 0;
    d->rec_busy = d->rec_req = true;
    pthread_cond_broadcast(&d->dbcv);
    pthread_mutex_unlock(&d->dbmu);
}

void
delivery_claim_ask(struct delivery *d, int max)
{
    pthread_mutex_lock(&d->dbmu);
    d->claim_busy = true;
    d->claim_req = max;
    memcpy(d->up_req, d->up_loop, sizeof(d->up_req));
    d->nup_req = d->nup_loop;
    pthread_cond_broadcast(&d->dbcv);
    pthread_mutex_unlock(&d->dbmu);
}

void
delivery_stopped_ask(struct delivery *d, struct delivery_work *w, int n)
{
    pthread_mutex_lock(&d->dbmu);
    free(d->stopped_ask); /* an ask not served yet (none: stopped_busy) */
    d->stopped_busy = true;
    d->stopped_req = true;
    d->stopped_ask = w;
    d->nstopped_ask = n;
    pthread_cond_broadcast(&d->dbcv);
    pthread_mutex_unlock(&d->dbmu);
}

bool
delivery_stopped_take(struct delivery *d, struct delivery_work **out, int *n)
{
    bool done;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&d->dbmu);
    done = d->stopped_done;
    if (done) {
        *out = d->stopped;
        *n = d->nstopped;
        d->stopped = NULL;
        d->nstopped = 0;
        d->stopped_done = d->stopped_busy = false;
    }
    pthread_mutex_unlock(&d->dbmu);
    return done;
}

void
delivery_recover_ask(struct delivery *d)
{
    pthread_mutex_lock(&d->dbmu);
    d->recover_req = true;
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
    if (store_reachable(d->st)) /* an outage is logged once, by the store */
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

int
delivery_answers_take(struct delivery *d, struct delivery_vec *claimed)
{
    bool claim = false, rec = false;
    mc_err rec_err = MC_ERR_OK;

    memset(claimed, 0, sizeof(*claimed));
    pthread_mutex_lock(&d->dbmu);
    if (d->claim_done) {
        *claimed = d->claimed;
        memset(&d->claimed, 0, sizeof(d->claimed));
        d->found_work = d->claim_found;
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
    return claim ? claimed->n : -1;
}

bool
delivery_caps_take(struct delivery *d)
{
    bool got;

    pthread_mutex_lock(&d->dbmu);
    got = d->caps_ready;
    if (got) {
        memcpy(d->caps, d->caps_next, (size_t)d->ncaps_next * sizeof(*d->caps));
        d->ncaps = d->ncaps_next;
        d->caps_ready = false;
    }
    pthread_mutex_unlock(&d->dbmu);
    return got;
}

bool
delivery_rules_take(struct delivery *d, struct shaping *out)
{
    bool got;

    pthread_mutex_lock(&d->dbmu);
    got = d->rules_ready;
    if (got) {
        *out = d->rules_next;
        memset(&d->rules_next, 0, sizeof(d->rules_next));
        d->rules_ready = false;
    }
    pthread_mutex_unlock(&d->dbmu);
    return got;
}

void
delivery_db_quiesce(struct delivery *d)
{
    pthread_mutex_lock(&d->dbmu);
    while ((d->claim_busy && !d->claim_done) || (d->rec_busy && !d->rec_done) ||
           (d->stopped_busy && !d->stopped_done))
        pthread_cond_wait(&d->dbcv, &d->dbmu);
    pthread_mutex_unlock(&d->dbmu);
}
