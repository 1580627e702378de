/*
 * compose.h - turning a campaign and a recipient into the exact bytes that
 * are sent: templates rendered, headers (with the unsubscribe link and a
 * stable Message-ID) and MIME assembled.  The one builder for every caller:
 * the delivery worker and the test-send endpoint (compose_job), and the
 * preview endpoint (compose_render), so a preview and a test message are
 * what a recipient gets.
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
    char *bounce_domain; /* owned: the tenant's own VERP domain (bounce policy), or NULL */
};

/* Who a message is for; every pointer borrowed, NULL when unknown. */
struct compose_recipient {
    const char *recipient_id; /* names the unsubscribe token's recipient */
    const char *email;
    const char *name, *first_name, *last_name;
    const char *attributes; /* JSON object text */
    /*
     * A preview's link: looks like the real one but never unsubscribes anyone
     * (a read-only key may preview; token_make_preview).
     */
    bool preview_link;
};

/* Where a campaign's templates fail to compile. */
struct compose_error {
    const char *field; /* "subject", "html_body" or "text_body" (static) */
    struct tpl_error tpl;
};

/*
 * Compiles campaign c's templates into *out (owned), with the tenant's DKIM
 * key for its From domain when kek is not NULL and there is one (a preview
 * passes NULL: it signs nothing).  MC_ERR_INVALID when a template does not
 * compile (*why, when not NULL, names the field, line and column) or the
 * key cannot be opened (logged; why->field NULL); a store error (MC_ERR_DB,
 * MC_ERR_BUSY, ...) as it came when the key or the bounce policy could not
 * be read: nothing is wrong with the campaign, try again later.
 */
mc_err compose_campaign_from(struct store *st, const struct config *cfg,
                             const unsigned char *kek, const struct campaign *c,
                             struct compose_campaign **out, struct compose_error *why);
/* The same for a campaign read from the store: MC_ERR_NOT_FOUND without it. */
mc_err compose_campaign_load(struct store *st, const struct config *cfg,
                             const unsigned char *kek, const char *tenant_id,
                             const char *campaign_id, struct compose_campaign **out,
                             struct compose_error *why);
void compose_campaign_free(struct compose_campaign *c);

/* One message's rendered parts: what a preview shows and what MIME assembles. */
struct compose_parts {
    char *unsubscribe_url; /* owned: public_url + "/u/" + the recipient's token */
    struct buf subject, html, text;
    bool has_html, has_text; /* the campaign has that part */
    const char *too_large;   /* static: the field that rendered past render_max, or NULL */
};

/*
 * Renders c's templates for r into out (initialised here; clean it with
 * compose_parts_cleanup whatever the result).  key signs the unsubscribe
 * token, which names r->recipient_id (the nil UUID when NULL).
 * MC_ERR_TOO_LARGE (and *why) when a part renders larger than render_max.
 */
mc_err compose_render(const struct compose_campaign *c, const struct config *cfg,
                      const unsigned char key[32], const struct compose_recipient *r,
                      struct compose_parts *out, const char **why);
void compose_parts_cleanup(struct compose_parts *p);

/*
 * The one builder of a campaign message, for every sender (the delivery
 * worker, test sends): fills job with the whole message for r (rendered,
 * assembled, DKIM-signed by signer when the campaign has a key; bounded by
 * 3 x render_max), the envelope sender, the recipient, the DSN ENVID
 * (msg_key) and whether SMTPUTF8 is needed.  key signs the unsubscribe link
 * and, with msg_key (the scheduled message's id: stable across retries),
 * the Message-ID, which is written to message_id[mid_len], and the signed
 * reference (bounce/ref.h) in the X-Mailcast-Ref header, which the DKIM
 * signature covers.  With a bounce domain (the tenant's, else the
 * configured bounce_domain) the envelope sender is the VERP address
 * "mcb-<reference>@domain"; without one it is return_path or the From.  job must be
 * zeroed (or cleaned) before; its strings and data are owned by the caller
 * afterwards, also on failure (free them with compose_job_cleanup).  On failure returns MC_ERR_TOO_LARGE or
 * MC_ERR_INVALID and points *why at a reason.
 */
struct dkim_signer;
struct smtp_job;
mc_err compose_job(const struct compose_campaign *c, const struct config *cfg,
                   struct dkim_signer *signer, const unsigned char key[32],
                   const struct compose_recipient *r, const char *msg_key, struct smtp_job *job,
                   char *message_id, size_t mid_len, const char **why);
/* Frees what compose_job put in job (not job itself). */
void compose_job_cleanup(struct smtp_job *job);

#endif
