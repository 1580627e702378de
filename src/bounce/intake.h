/*
 * intake.h - the one pipeline every report about a sent message goes
 * through, whichever way it came in (the SMTP listener, `mailcast bounce`
 * from an MTA's pipe, the API's webhook endpoint): parse, find the message
 * by its signed reference, record and apply the tenant's policy in one
 * transaction (store_bounce_record), count.  It does not speak SMTP or
 * HTTP, and it never suppresses an address the reference does not name.
 */
#ifndef MC_BOUNCE_INTAKE_H
#define MC_BOUNCE_INTAKE_H

#include <stdatomic.h>
#include <stddef.h>

#include "classify.h"
#include "core/err.h"
#include "parse.h"
#include "ref.h"
#include "store/store.h"

/* Reports taken in by class, for the metrics; owned by the process (struct app). */
struct bounce_stats {
    atomic_llong by_class[BOUNCE_NCLASSES];
    atomic_llong unreferenced;
    atomic_llong suppressed;
};

/* What the intake needs besides the message; all borrowed. */
struct bounce_intake_ctx {
    struct store *st;
    const unsigned char (*keys)[BOUNCE_REF_KEY_LEN]; /* the secret set: current, previous */
    int nkeys;
    size_t raw_max;             /* bytes of the raw message kept (bounce_raw_max) */
    struct bounce_stats *stats; /* may be NULL */
};

/*
 * Takes in one message: source is "smtp" or "pipe"; envelope_rcpt (may be
 * NULL) is the address it was delivered to, where a VERP reference is
 * looked for first.  Reports without a valid reference are recorded for
 * the operator only.  *out (may be NULL) says what changed.  Errors are the
 * store's (MC_ERR_DB, MC_ERR_BUSY: the sender should try again later).
 */
mc_err bounce_intake_message(const struct bounce_intake_ctx *x, const char *data, size_t len,
                             const char *source, const char *envelope_rcpt,
                             struct bounce_applied *out);

#define BOUNCE_PREPARED_MAX 64 /* recipients of one report taken (the store's limit) */

/*
 * One message parsed and made ready for the store: in borrows from the
 * other fields, so a prepared report never moves (allocate it, then
 * prepare it in place).  a is what bounce_intake_commit recorded.
 */
struct bounce_prepared {
    struct bounce_report r; /* owned: the parse */
    struct bounce_item items[BOUNCE_PREPARED_MAX];
    char msg_id[MC_UUID_LEN + 1];
    char *raw;                  /* owned: the message as bounded text */
    struct bounce_report_in in; /* borrows from the fields above */
    struct bounce_applied a;
};

/*
 * The first half of bounce_intake_message, without the database: parses
 * data and finds its reference into *out (cleaned up with
 * bounce_prepared_cleanup).  Thread-safe; data is not kept.
 */
void bounce_intake_prepare(const struct bounce_intake_ctx *x, const char *data, size_t len,
                           const char *source, const char *envelope_rcpt,
                           struct bounce_prepared *out);

/*
 * The second half: records n prepared reports in one transaction (group
 * commit), then counts and logs them; each ps[i]->a says what changed.
 * All or nothing: an error (the store's) means none was recorded.
 */
mc_err bounce_intake_commit(const struct bounce_intake_ctx *x, struct bounce_prepared *const *ps,
                            int n);

void bounce_prepared_cleanup(struct bounce_prepared *p);

/*
 * A report from a tenant's provider by webhook: the tenant's message (by
 * id) or the tenant's address, with a class ("hard", "soft", "complaint").
 * MC_ERR_NOT_FOUND when the message is not the tenant's.
 */
mc_err bounce_intake_api(const struct bounce_intake_ctx *x, const char *tenant_id,
                         const char *message_id, const char *email, const char *cls,
                         const char *status, const char *diagnostic, struct bounce_applied *out);

/* Whether the message carries a verifiable reference for these keys: the message id into out. */
bool bounce_intake_reference(const struct bounce_intake_ctx *x, const struct bounce_report *r,
                             const char *envelope_rcpt, char out[MC_UUID_LEN + 1]);

/*
 * The envelope recipient an MTA recorded in the message (Delivered-To, then
 * X-Original-To), into out (NUL-terminated); false when there is none.
 */
bool bounce_envelope_recipient(const char *data, size_t len, char *out, size_t outlen);

#endif
