/*
 * compose.h - turning a campaign and a recipient into the exact bytes that
 * are sent: templates rendered, headers (with the unsubscribe link and a
 * stable Message-ID) and MIME assembled.  Used by the delivery worker and
 * by the campaign test-send endpoint, so a test message is what a
 * recipient gets.
 */
#ifndef MC_COMPOSE_H
#define MC_COMPOSE_H

#include <stddef.h>

#include "core/config.h"
#include "core/util.h"
#include "store/store.h"
#include "template/template.h"

/* A campaign's sending data with its templates compiled once. */
struct compose_campaign {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char *name, *from_address, *from_name, *reply_to; /* owned */
    struct tpl *subject, *html, *text;                /* owned; html or text may be NULL */
    char *dkim_domain, *dkim_selector, *dkim_pem;     /* owned: the From domain's key, or NULL */
};

/* Who a message is for; every pointer borrowed, NULL when unknown. */
struct compose_recipient {
    const char *recipient_id; /* names the unsubscribe token's recipient */
    const char *email;
    const char *name, *first_name, *last_name;
    const char *attributes; /* JSON object text */
};

/*
 * Loads and compiles the campaign, with the tenant's DKIM key for its From
 * domain (opened with kek) when there is one.  MC_ERR_NOT_FOUND without it,
 * MC_ERR_INVALID when a template no longer compiles or the key cannot be
 * opened (logged).
 */
mc_err compose_campaign_load(struct store *st, const struct config *cfg,
                             const unsigned char kek[32], const char *tenant_id,
                             const char *campaign_id, struct compose_campaign **out);
void compose_campaign_free(struct compose_campaign *c);

/*
 * Appends the whole message for r to out (bounded by the caller).  key
 * signs the unsubscribe link and, with msg_key (the scheduled message's id:
 * stable across retries), the Message-ID, which is written to
 * message_id[mid_len].  On failure returns MC_ERR_TOO_LARGE or
 * MC_ERR_INVALID and points *why at a reason.
 */
struct dkim_signer;
/* signer may be NULL (nothing is signed); with dkim_required a campaign without a key fails. */
mc_err compose_message(const struct compose_campaign *c, const struct config *cfg,
                       struct dkim_signer *signer, const unsigned char key[32],
                       const struct compose_recipient *r,
                       const char *msg_key, char *message_id, size_t mid_len, struct buf *out,
                       const char **why);

#endif
