/*
 * webhook.h - outgoing webhooks: signatures (Standard Webhooks), the SSRF
 * guard for endpoint URLs and addresses, and the sender thread.
 *
 * The store keeps endpoints and the delivery outbox (store_webhooks.c);
 * this module signs, checks and sends.  The HTTP API uses the signature
 * and guard functions when an endpoint is created or changed; `mailcast
 * serve` and `mailcast worker` run a sender.
 */
#ifndef MC_WEBHOOK_H
#define MC_WEBHOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"
#include "core/util.h"
#include "store/store.h"

/* ---- sign.c ---- */

#define WEBHOOK_SECRET_PREFIX "whsec_"
/* "v1," and the base64 of a SHA-256 HMAC, with its NUL. */
#define WEBHOOK_SIG_LEN (3 + 44 + 1)

/* A new secret (owned): "whsec_" and the base64 of 24 random bytes. */
char *webhook_secret_new(void);
/*
 * The Standard Webhooks signature "v1,<base64 HMAC-SHA256>" of
 * "id.timestamp.body", keyed with the base64-decoded part of secret after
 * "whsec_" (the whole secret decoded when it has no prefix).  MC_ERR_INVALID
 * when the secret is not base64.
 */
mc_err webhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
                    char out[WEBHOOK_SIG_LEN]);

/* ---- guard.c: what a webhook may reach ---- */

#define WEBHOOK_MAX_CIDRS 16

struct webhook_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
};

struct webhook_guard {
    bool allow_http;
    int ncidr;
    struct webhook_cidr cidr[WEBHOOK_MAX_CIDRS]; /* exempt from the refused ranges */
};

/* From webhook_allow_http and webhook_allow_cidr; MC_ERR_CONFIG (logged) for a bad CIDR. */
mc_err webhook_guard_init(struct webhook_guard *g, const struct config *cfg);
/*
 * True when a connection to sa is allowed: not loopback, private,
 * link-local, CGNAT, multicast, reserved, documentation or unspecified
 * (IPv4-mapped and -compatible IPv6 judged as their IPv4), unless an
 * allowed CIDR holds it.
 */
bool webhook_addr_allowed(const struct webhook_guard *g, const struct sockaddr *sa);
/*
 * Checks an endpoint URL: http or https (https unless allow_http), a host,
 * no user-info, at most 2048 bytes; with resolve, every address the host
 * resolves to must be allowed.  false with *why (static) when not.
 */
bool webhook_url_check(const struct webhook_guard *g, const char *url, bool resolve,
                       const char **why);

/* ---- sender.c ---- */

struct webhook_sender;

/* Starts the sender thread; NULL (logged) on a bad configuration. */
struct webhook_sender *webhook_sender_start(struct store *st, const struct config *cfg);
/*
 * Stops claiming, lets requests in flight finish within timeout_s, records
 * them, and joins the thread.  NULL is a no-op.
 */
void webhook_sender_stop(struct webhook_sender *s, int timeout_s);
/*
 * Tells a sender that has been backing off (empty claims) to claim again at
 * webhook_poll_ms: this process committed events.  For any thread; arg:
 * the sender or NULL.
 */
void webhook_sender_nudge(void *arg);

/* Steps of webhook_retry_schedule at most, and the longest step (30 days). */
#define WEBHOOK_SCHEDULE_MAX 32
#define WEBHOOK_SCHEDULE_STEP_MAX_S (30 * 86400)

/*
 * Parses the retry schedule ("5,300,...", seconds, each at most 30 days)
 * into out (at most max); returns how many, or -1 when malformed.
 */
int webhook_schedule_parse(const char *s, int64_t *out, int max);

/*
 * The webhook settings checked by the parsers that use them (the retry
 * schedule, the allowed CIDRs), one line each appended to errors: so
 * `mailcast config check` and every command refuse what serve would.
 */
void webhook_config_check(const struct config *cfg, struct buf *errors);

#endif
