/*
 * delivery_outcome.c - what an SMTP verdict means for a message, when a
 * retry may run, and the buffer of outcomes that the next group commit
 * records (delivery_db.c hands it over).
 *
 * 2xx: sent.  5xx: failed, or bounced for 5.1.x (the address is bad: the
 * store suppresses it).  4xx or a lost connection: pending again after an
 * exponential backoff with jitter, failed once the attempts are spent (the
 * store decides that).  A relay never reached: released, no attempt spent.
 */
#include <stdio.h>
#include <string.h>

#include "bounce/classify.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "delivery_int.h"

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

/* Adds m's outcome to the buffer the next group commit records. */
void
delivery_result_add(struct delivery *d, const struct dmsg *m, enum delivery_outcome out,
                    int64_t next, int code, const char *error, const char *queue_id)
{
    struct delivery_result *r;

    if (d->nresults == d->capresults) {
        d->capresults = d->capresults ? d->capresults * 2 : 256;
        d->results = xrealloc(d->results, (size_t)d->capresults * sizeof(*r));
    }
    r = &d->results[d->nresults++];
    delivery_metrics_observe(d, m->tenant_id, out, m->started);
    memset(r, 0, sizeof(*r));
    memcpy(r->id, m->id, sizeof(r->id));
    memcpy(r->tenant_id, m->tenant_id, sizeof(r->tenant_id));
    memcpy(r->campaign_id, m->campaign_id, sizeof(r->campaign_id));
    memcpy(r->recipient_id, m->recipient_id, sizeof(r->recipient_id));
    memcpy(r->to_address, m->to_address, sizeof(r->to_address));
    r->attempts = m->attempts;
    r->outcome = out;
    r->next_attempt_at = next;
    r->claimed_at = m->claimed_at;
    r->reply_code = code;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    snprintf(r->queue_id, sizeof(r->queue_id), "%s", queue_id ? queue_id : "");
    snprintf(r->message_id, sizeof(r->message_id), "%s", m->message_id);
}

/*
 * Keeps a refusal for the automation rules (store_shaping_observe), only
 * when it is the relay's own reply: what mailcast concludes itself (a lost
 * connection, a timeout, a SIZE check) must never trigger a rule.  Classify
 * with the bounce classification table here once it lands (issue 7).
 */
static void
observe(struct delivery *d, const struct dmsg *m)
{
    const struct smtp_job *job = &m->job;
    struct shaping_obs *o;

    if (!job->from_relay || job->code < 400)
        return;
    if (job->code < 500)
        delivery_metrics_deferral(d, m->site);
    if (d->nobs == d->capobs) {
        d->capobs = d->capobs ? d->capobs * 2 : 64;
        d->obs = xrealloc(d->obs, (size_t)d->capobs * sizeof(*d->obs));
    }
    o = &d->obs[d->nobs++];
    memset(o, 0, sizeof(*o));
    snprintf(o->site, sizeof(o->site), "%s", m->site);
    snprintf(o->egress, sizeof(o->egress), "%s", m->egress);
    memcpy(o->tenant_id, m->tenant_id, sizeof(o->tenant_id));
    o->code = job->code;
    snprintf(o->enhanced, sizeof(o->enhanced), "%s", job->enhanced);
    snprintf(o->text, sizeof(o->text), "%s", job->text);
}

/*
 * Counts the relay's reply to an attempt at m's (egress, site) for the
 * deferral ratios: one tally per (egress, site) and flush, found by a
 * linear search that compares a hash of the two names first (a flush sees
 * few sites), so the store gets a row per site, not per message.
 * Only replies of the relay to a transaction count: a connection never
 * made, a timeout or mailcast's own refusal is no attempt the receiver saw.
 */
static void
tally(struct delivery *d, const struct dmsg *m)
{
    const struct smtp_job *job = &m->job;
    struct shaping_tally *t = NULL;
    uint32_t h = 2166136261u; /* FNV-1a over "egress/site" */

    if (!job->from_relay || job->result == SMTP_NOT_SENT || m->site[0] == '\0')
        return;
    for (const char *p = m->egress; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const char *p = m->site; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (int i = d->ntally - 1; i >= 0 && t == NULL; i--)
        if (d->tally_h[i] == h && strcmp(d->tally[i].site, m->site) == 0 &&
            strcmp(d->tally[i].egress, m->egress) == 0)
            t = &d->tally[i];
    if (t == NULL) {
        if (d->ntally == d->captally) {
            d->captally = d->captally ? d->captally * 2 : 16;
            d->tally = xrealloc(d->tally, (size_t)d->captally * sizeof(*d->tally));
            d->tally_h = xrealloc(d->tally_h, (size_t)d->captally * sizeof(*d->tally_h));
        }
        d->tally_h[d->ntally] = h;
        t = &d->tally[d->ntally++];
        memset(t, 0, sizeof(*t));
        snprintf(t->egress, sizeof(t->egress), "%s", m->egress);
        snprintf(t->site, sizeof(t->site), "%s", m->site);
    }
    t->attempts++;
    t->deferrals += job->result == SMTP_TEMPFAIL;
}

void
delivery_result_of_job(struct delivery *d, const struct dmsg *m)
{
    const struct smtp_job *job = &m->job;
    int64_t now = time_now_us();
    char err[320];

    observe(d, m);
    tally(d, m);
    snprintf(err, sizeof(err), "%d%s%s %s", job->code, job->enhanced[0] ? " " : "", job->enhanced,
             job->text);
    switch (job->result) {
    case SMTP_SENT:
        delivery_result_add(d, m, OUT_SENT, 0, job->code, NULL, job->queue_id);
        break;
    case SMTP_PERMFAIL:
        /* The one classification (bounce/classify.def) that asynchronous reports
         * use too: only a hard failure bounces the recipient; a block is the
         * sender's problem and suppresses nobody. */
        delivery_result_add(
            d, m,
            bounce_classify(job->enhanced, job->code, job->text, false) == BOUNCE_HARD
                ? OUT_BOUNCED
                : OUT_FAILED,
            0, job->code, err, NULL);
        break;
    case SMTP_TEMPFAIL:
        delivery_result_add(d, m, OUT_RETRY,
                            now + delivery_backoff_us(m->attempts, d->cfg->retry_base,
                                                      d->cfg->retry_cap, uniform()),
                            job->code, job->code ? err : job->text, NULL);
        break;
    case SMTP_NOT_SENT:
        /* The relay was never reached: no attempt is spent; try again after a pause. */
        delivery_result_add(d, m, OUT_RELEASE, now + 2 * 1000000LL, 0, job->text, NULL);
        break;
    }
}
