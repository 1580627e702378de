/*
 * listener.h - the receive-only SMTP listener for bounces and complaints
 * (`--bounce-listen HOST:PORT`), run by `mailcast serve` and `mailcast
 * worker`.  It accepts mail only for valid signed VERP addresses (and the
 * configured feedback-loop address), so it is never a relay, and answers
 * 250 to a message only once the intake pipeline has committed it (451
 * 4.3.0 when the database fails).  It does not parse reports itself
 * (bounce/parse.c) nor decide what they change (bounce/intake.c).
 */
#ifndef MC_BOUNCE_LISTENER_H
#define MC_BOUNCE_LISTENER_H

#include "core/config.h"
#include "core/err.h"
#include "intake.h"

struct bounce_listener;

/*
 * Binds cfg->bounce_listen and starts serving: on base (borrowed: the
 * delivery worker's, whose loop runs on another thread) when given, else
 * on a thread and base of its own (a process that does not deliver).  A
 * parser thread and a database thread of its own (committer.h) parse and
 * commit.  x (borrowed, with everything it points to) must outlive the
 * listener, and base's loop must run until bounce_listener_stop returns.
 * NULL (logged) when the address cannot be bound or the TLS certificate
 * cannot be loaded.
 */
struct bounce_listener *bounce_listener_start(const struct config *cfg,
                                              const struct bounce_intake_ctx *x,
                                              struct event_base *base);
/* The port bound (useful with port 0). */
int bounce_listener_port(const struct bounce_listener *l);
/* Stops accepting, closes every session (a message not yet answered 250 was not
 * taken: its sender retries) and frees; NULL is a no-op. */
void bounce_listener_stop(struct bounce_listener *l);

#endif
