/*
 * engine.c - the campaign engine thread (see engine.h).
 *
 * DESIGN
 * One thread, woken by engine_wake() or every engine_poll_ms; while rounds
 * find nothing to do the wait doubles up to idle_poll_max_ms, and
 * engine_nudge() (outcomes recorded by this process's delivery) brings it
 * back to engine_poll_ms.  After a round that started campaigns, created
 * messages or was woken, the on_work callback tells this process's
 * delivery worker to claim now.  A round:
 *  1. start due campaigns (scheduled -> sending, one statement);
 *  2. materialise: for each campaign still missing messages, create batches
 *     of materialize_batch messages, each batch its own short transaction,
 *     until the campaign is done or the round's time budget is spent, so a
 *     million-recipient campaign never holds a lock for long and a stop
 *     request is honoured between batches;
 *  3. complete sending campaigns with nothing pending or in flight;
 *  4. prune events past event_retention_days, PRUNE_BATCH a round while
 *     batches come back full, else once every PRUNE_IDLE_ROUNDS rounds (an
 *     idle server pruned nothing 20 times a second at a 50 ms poll: a
 *     third of its statements).
 * Errors are logged and retried next round; nothing here is lost by a
 * crash, because progress (the cursor) commits with each batch.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "engine.h"

#define ROUND_BUDGET_US (2 * 1000000)
#define MAX_CAMPAIGNS 16
#define PRUNE_EVERY_US (60 * 1000000LL)
#define PRUNE_BATCH 1000
#define PRUNE_IDLE_ROUNDS 20

struct engine {
    struct store *st;        /* borrowed */
    const struct config *cfg; /* borrowed */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, woken, nudged;
    int idle;                /* rounds in a row that found nothing */
    void (*on_work)(void *); /* under mu: after a round with work for delivery */
    void *on_work_arg;
    uint64_t rounds; /* rounds finished, under mu: /metrics shows it */
    int64_t next_prune; /* monotonic time of the next bounce-record sweep */
    int event_prune_in; /* rounds until the next event prune (0: this one) */
};

static bool
stopping(struct engine *e)
{
    bool s;

    pthread_mutex_lock(&e->mu);
    s = e->stop;
    pthread_mutex_unlock(&e->mu);
    return s;
}

/* Returns true when a campaign still has messages to create; *created:
 * how many this call made. */
static bool
materialize(struct engine *e, int64_t deadline, int64_t *created)
{
    struct campaign_ref refs[MAX_CAMPAIGNS];
    bool more = false;
    int n = 0;

    if (store_engine_to_materialize(e->st, MAX_CAMPAIGNS, refs, &n) != MC_ERR_OK)
        return false;
    for (int i = 0; i < n; i++) {
        bool done = false;
        while (!done && !stopping(e) && time_mono_us() < deadline) {
            int64_t inserted = 0;
            if (store_engine_materialize(e->st, &refs[i], (int)e->cfg->materialize_batch,
                                         (int)e->cfg->retry_max_attempts, time_now_us(),
                                         &inserted, &done) != MC_ERR_OK) {
                if (store_reachable(e->st)) /* an outage is logged once, by the store */
                    log_warn("event=materialize_failed tenant=%s campaign=%s", refs[i].tenant_id,
                         refs[i].id);
                done = true; /* retried at the next poll, not in a tight loop */
                break;
            }
            *created += inserted;
        }
        more = more || !done;
    }
    return more;
}

/* One round; returns true when materialisation stopped at the round's
 * budget with work left, so the next round starts without waiting.
 * *sent: campaigns started or messages created (work for delivery);
 * *worked: that, or anything else done. */
static bool
round_once(struct engine *e, bool *sent, bool *worked)
{
    int64_t deadline = time_mono_us() + ROUND_BUDGET_US, created = 0;
    bool more;
    int n = 0, started = 0;

    if (store_engine_start_due(e->st, time_now_us(), &started) != MC_ERR_OK &&
        store_reachable(e->st))
        log_warn("event=engine warn=start_due_failed");
    more = materialize(e, deadline, &created);
    *sent = started > 0 || created > 0;
    if (store_engine_complete(e->st, time_now_us(), &n) != MC_ERR_OK && store_reachable(e->st))
        log_warn("event=engine warn=complete_failed");
    *worked = *sent || n > 0;
    /* Bounce records past their retention, once a minute or so. */
    if (time_mono_us() >= e->next_prune) {
        int64_t keep = e->cfg->bounce_retention_days * 86400LL * 1000000LL;
        if (store_bounce_prune(e->st, time_now_us() - keep, NULL) != MC_ERR_OK &&
            store_reachable(e->st))
            log_warn("event=engine warn=bounce_prune_failed");
        e->next_prune = time_mono_us() + PRUNE_EVERY_US;
    }
    /* Retention: one small batch a round, so the log never holds a long lock. */
    if (e->event_prune_in > 0) {
        e->event_prune_in--;
        return more;
    }
    n = 0;
    if (store_event_prune(e->st, time_now_us() - e->cfg->event_retention_days * 86400000000LL,
                          PRUNE_BATCH, &n) != MC_ERR_OK) {
        if (store_reachable(e->st)) /* an outage is logged once, by the store */
            log_warn("event=engine warn=event_prune_failed");
    }
    else if (n > 0) {
        log_info("event=events_pruned n=%d", n);
        *worked = true;
    }
    e->event_prune_in = n >= PRUNE_BATCH ? 0 : PRUNE_IDLE_ROUNDS;
    return more;
}

/*
 * Waits, under e->mu, for the next round: at once after more work or a
 * wake; else engine_poll_ms after the round, doubled for each idle round
 * before it (poll_backoff_ms), or engine_poll_ms after it once nudged.
 */
static void
wait_round(struct engine *e, bool more)
{
    int64_t ended = time_mono_us();

    while (!e->stop && !e->woken && !more) {
        int64_t wait_ms = e->nudged ? e->cfg->engine_poll_ms
                                    : poll_backoff_ms(e->cfg->engine_poll_ms,
                                                      e->cfg->idle_poll_max_ms, e->idle);
        int64_t at = ended + wait_ms * 1000, now = time_mono_us();
        struct timespec ts;

        if (e->nudged)
            e->idle = 0;
        e->nudged = false;
        if (now >= at)
            break;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (at - now) * 1000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) != 0 && !e->nudged)
            break; /* timed out */
    }
}

static void *
run(void *arg)
{
    struct engine *e = arg;
    bool woken = false;

    for (;;) {
        bool sent = false, worked = false, more = round_once(e, &sent, &worked);
        pthread_mutex_lock(&e->mu);
        e->rounds++;
        e->idle = worked || more ? 0 : e->idle < 30 ? e->idle + 1 : e->idle;
        /* Under mu, so engine_on_work(NULL) returns only once no call is running. */
        if ((sent || woken) && e->on_work != NULL)
            e->on_work(e->on_work_arg);
        wait_round(e, more);
        woken = e->woken;
        if (woken)
            e->idle = 0;
        e->woken = false;
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
    }
    return NULL;
}

void
engine_metrics(struct engine *e, struct buf *out)
{
    uint64_t n;

    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    n = e->rounds;
    pthread_mutex_unlock(&e->mu);
    buf_printf(out,
               "# HELP mailcast_engine_rounds_total Rounds the campaign engine finished "
               "(start due campaigns, create messages, complete finished ones).\n"
               "# TYPE mailcast_engine_rounds_total counter\n"
               "mailcast_engine_rounds_total %llu\n",
               (unsigned long long)n);
}

struct engine *
engine_start(struct store *st, const struct config *cfg)
{
    struct engine *e = xcalloc(1, sizeof(*e));

    e->st = st;
    e->cfg = cfg;
    pthread_mutex_init(&e->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (pthread_create(&e->thread, NULL, run, e) != 0) {
        log_error("event=engine error=\"cannot start the engine thread\"");
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        return NULL;
    }
    return e;
}

void
engine_wake(struct engine *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->woken = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void
engine_nudge(void *arg)
{
    struct engine *e = arg;

    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->nudged = true; /* (kept while busy: the next wait is the base one) */
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void
engine_on_work(struct engine *e, void (*fn)(void *), void *arg)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->on_work = fn;
    e->on_work_arg = arg;
    pthread_mutex_unlock(&e->mu);
}

void
engine_stop(struct engine *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
