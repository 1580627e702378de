/*
 * delivery.h - a delivery worker: claims due messages, renders them, hands
 * them to the relay, records the outcomes.
 *
 * `mailcast serve` runs one beside the API; `mailcast worker` runs one
 * alone.  Any number may share one database: claims are leases, results
 * are fenced, rate limits are counted in the database.
 */
#ifndef MC_DELIVERY_H
#define MC_DELIVERY_H

#include <stdint.h>

#include "core/config.h"
#include "core/util.h"
#include "store/store.h"

struct delivery;

struct secrets;

/*
 * Starts the worker thread.  The secrets (copied) sign unsubscribe links
 * and Message-IDs and open the tenants' DKIM keys.  NULL on failure
 * (logged: a bad relay URL, an outbox that cannot be written).
 */
struct delivery *delivery_start(struct store *st, const struct config *cfg,
                                const struct secrets *secrets);
/*
 * Stops claiming, lets messages in flight finish for up to timeout_s,
 * hands the rest back (pending again), records every outcome and joins the
 * thread.  delivery_stop(NULL) is a no-op.
 */
void delivery_stop(struct delivery *d, int timeout_s);
/*
 * The worker's event base (borrowed), for the bounce listener's sessions,
 * which share the client side's loop: events may be added from any thread
 * (evthread is on), and must all be gone before delivery_stop.
 */
struct event_base *delivery_event_base(struct delivery *d);
/*
 * Asks for a claim now and puts the poll back at delivery_poll_ms (the
 * engine made messages or started campaigns); for any thread, arg: the
 * worker or NULL.
 */
void delivery_wake(void *arg);
/*
 * Sets fn(arg), called by the worker's database thread after it committed
 * outcomes; NULL unsets it.  fn runs under the worker's metrics mutex (the
 * lock order is worker, then engine, then libevent's): it must be quick and
 * must not call back into the worker.
 */
void delivery_on_commit(struct delivery *d, void (*fn)(void *), void *arg);

/* Appends the worker's metrics (Prometheus text): outcomes by tenant, SMTP latency, lease expiries. */
void delivery_metrics(struct delivery *d, struct buf *out);

/*
 * The wait before retry number `attempt` (1 = the first retry):
 * min(cap, base * 2^(attempt-1)) scaled by (1 + jitter), jitter in
 * [-0.2, 0.2] drawn from u in [0, 1).  Microseconds.
 */
int64_t delivery_backoff_us(int attempt, int64_t base_s, int64_t cap_s, double u);

#endif
