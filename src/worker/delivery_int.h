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
 *   delivery_sites.c    per-site pools: the shaping rules' connection limits
 *   delivery_egress.c   the egresses' pools (issue 15): one per egress besides
 *                       the default's (the main pool), and which can be used
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
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char to_address[EMAIL_MAX + 1];
    char site[SHAPING_NAME_MAX + 1];
    char egress[SHAPING_NAME_MAX + 1]; /* the egress the claim gave it */
    int64_t started; /* monotonic, when handed to the relay */
    int64_t claimed_at; /* the claim's time (the windows counted it then) */
    int attempts;
    char message_id[128];
};

/*
 * A claimed message waiting in the loop for its paced slot, or parked: its
 * slot has come but its pool has a paced job waiting for a connection
 * already (delivery.c: paced messages leave onto the wire, not into a queue).
 */
#define RESLOT_RING 256

struct held {
    struct delivery *d;
    struct event *ev;       /* owned: fires at the slot, or when a parked one is too late */
    struct delivery_msg dm; /* owned, strings included */
    struct held *prev, *next;
    bool parked;
    int64_t since; /* monotonic: when it was held (a stopped campaign's check asked later
                      hands it back) */
};

/* A pool carrying one site's mail with its rule's connection limits (delivery_sites.c). */
#define MAX_SITE_POOLS 64
struct site_pool {
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1];
    /* The rule's, 0: the relay's (both 0: made for a set_connections cap alone). */
    int64_t max_connections, max_per_connection;
    int conns;              /* its connection limit now: egress, rule and cap, the least */
    struct smtp_pool *pool; /* owned */
    bool retired; /* its rule changed: takes nothing new, freed once empty */
};

/* A set_connections cap automation has in force (issue 15), per process. */
#define MAX_SITE_CAPS 64
struct site_cap {
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1];
    int64_t max_connections;
    int64_t until; /* wall clock, microseconds */
};

/* An egress other than 'default' and its pool (delivery_egress.c). */
#define MAX_EGRESSES 64
struct egress_out {
    char name[SHAPING_NAME_MAX + 1];
    struct smtp_params p;
    struct smtp_pool *pool; /* owned */
    bool retired;           /* removed or changed: takes nothing new, freed once empty */
};

#define METRIC_TENANTS 1024
#define METRIC_SITES 256
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
    uint64_t reslots; /* paced messages that missed their slots, back for new ones */
    char sites[METRIC_SITES][SHAPING_NAME_MAX + 1]; /* sites with deferrals, in order seen */
    uint64_t site_deferrals[METRIC_SITES];
    int nsites;
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
    struct event *wake; /* delivery_wake: a fill now, from any thread, and the tick at its base */
    int idle;           /* the loop's: claims in a row that saw nothing due, nothing in hand */
    bool found_work;    /* the loop's: the last claim taken saw due messages */
    struct smtp_pool *pool;    /* NULL for dir: */
    bool quit_asked;           /* the stop has asked the pool's connections to QUIT */
    struct smtp_params relay;  /* the main pool's parameters, copied for site pools */
    struct site_pool spools[MAX_SITE_POOLS];
    int nspools;
    struct shaping_rule *site_rules; /* owned: the rules with connection limits */
    int nsite_rules;
    struct egress_out eg[MAX_EGRESSES]; /* the egresses besides 'default' (d->pool) */
    int neg;
    const char *outbox;        /* borrowed from cfg: the dir: path, or NULL */
    int inflight;
    struct held *held; /* owned list: claimed, waiting for their slots (not in inflight) */
    int nheld;
    int nparked;          /* of them, parked: their pool has a paced job waiting */
    struct event *unpark; /* looks at the parked ones again (a paced job started, a job ended) */
    /* ids of the messages this process sent back for a new slot (a ring): the
     * second time one is late it goes (delivery.c, turn_of) */
    char reslot[RESLOT_RING][MC_UUID_LEN + 1];
    int reslot_next;
    int64_t forced_next; /* Unix us: the next message late twice may leave no sooner */
    struct delivery_result *results; /* owned, pending record */
    int nresults, capresults;
    struct shaping_obs *obs; /* owned: the relay's refusals since the last flush */
    int nobs, capobs;
    /* owned: the relay's replies per (egress, site) since the last flush, and
     * a hash of each (egress, site) for the lookup (delivery_outcome.c) */
    struct shaping_tally *tally;
    uint32_t *tally_h;
    int ntally, captally;
    struct site_cap caps[MAX_SITE_CAPS]; /* the caps in force, as the last claim read them */
    int ncaps;
    struct camp cache[CACHE_MAX];
    int ncache;
    bool refill; /* fill again when the claim in progress comes back */
    int64_t rate_t0; /* monotonic: start of the completions being counted */
    int rate_n;      /* completions since rate_t0 */
    double rate;     /* completions per second, smoothed */

    /* The database thread and its request slots, under dbmu. */
    pthread_t dbthread;
    bool dbthread_started;
    pthread_mutex_t dbmu;
    pthread_cond_t dbcv;    /* requests (to the thread) and answers (to a waiter) */
    struct event *dbdone;   /* wakes the loop when an answer is ready */
    bool dbquit;
    int claim_req;          /* > 0: claim up to this many, not yet started */
    bool claim_busy;        /* asked for and its answer not yet taken */
    bool claim_done;
    bool claim_found;       /* the claim saw due messages, whether it took any or not */
    struct delivery_vec claimed;
    struct delivery_result *rec; /* owned: the outcomes being recorded */
    int nrec, caprec;
    struct shaping_obs *obs_rec; /* owned: the refusals handed over with rec */
    int nobs_rec, capobs_rec;
    struct shaping_tally *tally_rec; /* owned: the tallies handed over with rec */
    int ntally_rec, captally_rec;
    struct site_cap caps_next[MAX_SITE_CAPS]; /* read after a claim, for the loop to take */
    int ncaps_next;
    bool caps_ready;
    bool rec_req, rec_busy, rec_done;
    mc_err rec_err;
    bool recover_req;       /* return expired leases (no answer) */
    /* Which campaigns of held messages stopped sending (paused, cancelled):
     * asked with their (tenant, campaign) pairs (owned, handed over),
     * answered with those stopped (owned). */
    bool stopped_req, stopped_busy, stopped_done;
    struct delivery_work *stopped_ask;
    int nstopped_ask;
    struct delivery_work *stopped;
    int nstopped;
    int64_t stopped_asked; /* the loop's: monotonic, when it asked */
    struct shaping rules_next; /* read with the sweep, for the loop to take */
    bool rules_ready;
    struct egress *eg_next; /* owned: the egresses read with the sweep, for the loop */
    int neg_next;
    bool eg_ready;
    /* The egresses a claim may give messages: the loop's (delivery_egress_up),
     * copied under dbmu with each ask, and the database thread's copy. */
    char up_loop[MAX_EGRESSES + 1][SHAPING_NAME_MAX + 1];
    int nup_loop;
    char up_req[MAX_EGRESSES + 1][SHAPING_NAME_MAX + 1];
    int nup_req;
    char up_db[MAX_EGRESSES + 1][SHAPING_NAME_MAX + 1]; /* the database thread's copy */
    const char *up_ptr[MAX_EGRESSES + 1];
    int64_t recover_asked;  /* the loop's: monotonic, when it last asked */
    /* The database thread's own. */
    struct claim_pacing pacing; /* from cfg, set at start */
    struct delivery_work work[MAX_WORK];
    int nwork, next_work;
    _Atomic int64_t stop_deadline; /* monotonic; 0 while running; set by delivery_stop */
    pthread_mutex_t mu; /* guards m and on_commit */
    struct dmetrics m;
    void (*on_commit)(void *); /* called by the database thread after outcomes committed */
    void *on_commit_arg;
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
/* Asks which of the n campaigns of held messages stopped sending (w handed over; stopped_busy
 * until the answer is taken). */
void delivery_stopped_ask(struct delivery *d, struct delivery_work *w, int n);
/* Takes the answer: true when there is one, *out (owned) the campaigns stopped. */
bool delivery_stopped_take(struct delivery *d, struct delivery_work **out, int *n);
/*
 * Takes what the database thread has finished: a record's result (applied
 * here) and a claim, moved into *claimed.  Returns how many were claimed,
 * or -1 when no claim was answered.
 */
int delivery_answers_take(struct delivery *d, struct delivery_vec *claimed);
/* Waits until the database thread has answered everything asked of it. */
void delivery_db_quiesce(struct delivery *d);

/* Takes the shaping rules the last sweep read (into *out, owned); false when none are new. */
bool delivery_rules_take(struct delivery *d, struct shaping *out);
/* Takes the set_connections caps the last claim read into d->caps; false when none are new. */
bool delivery_caps_take(struct delivery *d);

/* ---- delivery_sites.c (loop thread) ---- */

/* Takes new rules: keeps those with connection limits, retires pools whose limits changed. */
void delivery_sites_set(struct delivery *d, const struct shaping *sh);
/*
 * The pool for a message to site through egress: the (egress, site)'s own
 * (made on first use) or the egress's pool; NULL when the egress is unknown.
 */
struct smtp_pool *delivery_sites_pool(struct delivery *d, const char *egress, const char *site,
                                      smtp_done_fn done);
/* Jobs queued or in flight in the site pools. */
int delivery_sites_busy(const struct delivery *d);
/* Frees retired pools that are empty. */
void delivery_sites_reap(struct delivery *d);
/*
 * Applies d->caps (dropping expired ones) to the site pools: each takes
 * the least of its egress's, its rule's and its cap's connection limit; a
 * pool made for a cap alone retires once the cap is gone.
 */
void delivery_sites_caps(struct delivery *d);
/* Ends the jobs still waiting in the site pools (a stop). */
void delivery_sites_drain(struct delivery *d);
/* Frees every site pool (their jobs end through done) and the rules. */
void delivery_sites_free(struct delivery *d);

/* ---- delivery.c ---- */

/* Every pool's verdict on one of its messages (a struct dmsg): recorded, then freed. */
void delivery_job_done(struct smtp_job *job, void *arg);

/* ---- delivery_egress.c (loop thread) ---- */

/* Takes the egresses read from the store: new pools made, changed or removed ones retired. */
void delivery_egress_set(struct delivery *d, const struct egress *list, int n);
/* The pool of egress name ('default' or "": the main pool, NULL for dir:); NULL when unknown. */
struct smtp_pool *delivery_egress_pool(struct delivery *d, const char *name);
/* The parameters egress name's pools are made with (NULL when unknown). */
const struct smtp_params *delivery_egress_params(const struct delivery *d, const char *name);
/* Fills d->up_loop with the egresses that can take mail now (known, not backing off). */
int delivery_egress_up(struct delivery *d);
/* Jobs queued or in flight, and connections open, in the egress pools (not the main one). */
int delivery_egress_busy(const struct delivery *d);
int delivery_egress_conns(const struct delivery *d);
/* Frees retired pools that are empty. */
void delivery_egress_reap(struct delivery *d);
/* A stop: drain, then quit, then free every egress pool. */
void delivery_egress_drain(struct delivery *d);
void delivery_egress_quit(struct delivery *d);
void delivery_egress_free(struct delivery *d);
/* Takes the egresses the last sweep read (*out owned); false when none are new. */
bool delivery_egress_take(struct delivery *d, struct egress **out, int *n);

/* ---- delivery_metrics.c ---- */

/* Counts one outcome for tenant_id; started (monotonic, 0: never sent) feeds the latency. */
void delivery_metrics_observe(struct delivery *d, const char *tenant_id,
                              enum delivery_outcome out, int64_t started);
void delivery_metrics_lease_expiries(struct delivery *d, int n);
/* Counts one paced message sent back for a new slot. */
void delivery_metrics_reslot(struct delivery *d);
/* Counts one deferral (a 4xx reply of the relay) for site. */
void delivery_metrics_deferral(struct delivery *d, const char *site);

#endif
