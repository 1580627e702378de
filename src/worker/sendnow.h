/*
 * sendnow.h - sending a few messages right now, outside any campaign's
 * queue (the campaign test-send endpoint), through the configured relay.
 */
#ifndef MC_SENDNOW_H
#define MC_SENDNOW_H

#include "core/config.h"
#include "smtp/client.h"
#include "store/store.h"

/*
 * Sends every job (built by compose_job) and blocks
 * until each has its result (job->result, code, text), at most the relay
 * timeouts.  A dir: relay writes the files.
 */
/* eg (borrowed; NULL: 'default') is the egress they leave through. */
mc_err send_now(const struct config *cfg, const struct egress *eg, struct smtp_job **jobs,
                int n);

#endif
