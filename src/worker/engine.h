/*
 * engine.h - the campaign engine: the background thread that moves
 * campaigns along without an HTTP request waiting on it.
 *
 * Each round it starts scheduled campaigns whose time has come, creates the
 * messages of newly scheduled campaigns in batches (materialisation), and
 * completes sending campaigns that have nothing left pending or in flight.
 * Every step is a conditional, idempotent database update, so any number of
 * mailcast processes may run an engine against one database.
 */
#ifndef MC_ENGINE_H
#define MC_ENGINE_H

#include "core/config.h"
#include "store/store.h"

struct engine;

/* Starts the thread; NULL on failure (logged). */
struct engine *engine_start(struct store *st, const struct config *cfg);
/* Asks for a round now (after a campaign was scheduled or sent). */
void engine_wake(struct engine *e);
/*
 * Tells an engine that has been backing off (rounds that found nothing)
 * to look again at its poll interval: outcomes were recorded, so a
 * campaign may be complete.  Cheap, for any thread; arg: the engine or NULL.
 */
void engine_nudge(void *arg);
/*
 * Sets fn(arg), called by the engine's thread after a round that started
 * campaigns, created messages or was woken (this process's delivery
 * worker should claim now); NULL unsets it, returning once no call is
 * running.  fn runs under the engine's mutex: it must be quick and must
 * not call back into the engine (delivery_wake only activates an event).
 */
void engine_on_work(struct engine *e, void (*fn)(void *), void *arg);
/* Finishes the current step and stops; engine_stop(NULL) is a no-op. */
void engine_stop(struct engine *e);
/*
 * Appends the engine's counters in Prometheus text (rounds finished, so a
 * test can wait for the engine to have looked again); NULL: nothing.
 */
void engine_metrics(struct engine *e, struct buf *out);

#endif
