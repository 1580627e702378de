/*
 * delivery_int.h - what the delivery worker's files share (see delivery.h
 * for the worker itself and delivery.c's DESIGN for how they fit):
 *
 *   delivery.c          the loop thread: start, stop protocol, claims asked
 *                       for, messages composed and handed to the relay
 *   delivery_db.c       the database thread, and the request slots both
 *                       threads use (each function says which thread calls it)
 *   delivery_outcome.c  an SMTP verdict -> an outcome, backoff, the buffer
 *                       of outcomes waiting for their group commit
 *   delivery_metrics.c  counters and their Prometheus text
 */
#ifndef MC_DELIVERY_INT_H
#define MC_DELIVERY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "app/app.h"
#include "compose.h"
#include "delivery.h"
#include "smtp/client.h"

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
#define NLATENCY 12 /* latency buckets, see delivery_metrics.c */

/* Counters the /metrics endpoint reads from another thread (under mu). */
struct dmetrics {
    char tenants[METRIC_TENANTS][MC_UUID_LEN + 1]; /* "" ends the list */
    uint64_t outcomes[METRIC_TENANTS][NOUTCOMES];
    int ntenants;
    uint64_t lat_bucket[NLATENCY], lat_n;
    double lat_sum;
    uint64_t lease_expiries;
};

struct delivery {
    struct store *st;          /* borrowed */
    const struct config *cfg;  /* borrowed */
    struct secrets secrets;     /* a copy, wiped at the stop */
    struct dkim_signer *signer; /* owned */
    char owner[96];
    pthread_t thread;
    struct event_base *base;
    struct event *tick, *flush, *stop_ev;
    struct event *kick; /* a fill soon, after the callback that asks for it returns */
    struct smtp_pool *pool;    /* NULL for dir: */
    bool quit_asked;           /* the stop has asked the pool's connections to QUIT */
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

static inline bool
delivery_stopping(const struct delivery *d)
{
    return d->stop_deadline != 0;
}

/* ---- delivery_outcome.c ---- */

/*
 * Adds m's outcome to the outcomes waiting for the group commit (and to
 * the metrics); next is when a retry or release may run again.
 */
void delivery_result_add(struct delivery *d, const struct dmsg *m, enum delivery_outcome out,
                         int64_t next, int code, const char *error, const char *queue_id);
/* Adds the outcome that m's SMTP verdict (m->job's result and reply) means. */
void delivery_result_of_job(struct delivery *d, const struct dmsg *m);

/* ---- delivery_db.c ---- */

/* Starts the database thread; false when it cannot. */
bool delivery_db_start(struct delivery *d);
/* Stops the database thread once it has nothing left to do; a no-op when not started. */
void delivery_db_end(struct delivery *d);
/*
 * Hands the collected outcomes to the database thread, unless it is still
 * recording the previous ones (its answer flushes again).
 */
void delivery_results_flush(struct delivery *d);
/* Asks for a claim of up to max messages (claim_busy until its answer is taken). */
void delivery_claim_ask(struct delivery *d, int max);
/* Asks for the sweep of expired leases (no answer). */
void delivery_recover_ask(struct delivery *d);
/*
 * Takes what the database thread has finished: a record's result (applied
 * here) and a claim, moved into *claimed.  Returns how many were claimed,
 * or -1 when no claim was answered.
 */
int delivery_answers_take(struct delivery *d, struct delivery_vec *claimed);
/* Waits until the database thread has answered everything asked of it. */
void delivery_db_quiesce(struct delivery *d);

/* ---- delivery_metrics.c ---- */

/* Counts one outcome for tenant_id; started (monotonic, 0: never sent) feeds the latency. */
void delivery_metrics_observe(struct delivery *d, const char *tenant_id,
                              enum delivery_outcome out, int64_t started);
void delivery_metrics_lease_expiries(struct delivery *d, int n);

#endif
