/*
 * compose.c - render and assemble one message (see compose.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bounce/ref.h"
#include "compose.h"
#include "core/crypto.h"
#include "core/email.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/token.h"
#include "smtp/client.h"
#include "smtp/dkim.h"
#include "smtp/mime.h"
#include "template/html_text.h"


/*
 * Compiles src (NULL or empty: no part).  A failure is logged when nobody
 * asks why (the delivery worker: a campaign that compiled when it was saved
 * no longer does), and noted in *why otherwise (a preview answers with it).
 */
static struct tpl *
compile(const struct config *cfg, const struct campaign *c, const char *field, const char *src,
        enum tpl_ctx ctx, bool *ok, struct compose_error *why)
{
    struct tpl *t = NULL;
    struct tpl_error e;

    if (src == NULL || *src == '\0')
        return NULL;
    if (tpl_compile(src, strlen(src), ctx, (size_t)cfg->template_max, (size_t)cfg->render_max, &t,
                    &e) != MC_ERR_OK) {
        if (why == NULL)
            log_error("event=template_broken tenant=%s campaign=%s field=%s line=%d column=%d",
                      c->tenant_id, c->id, field, e.line, e.column);
        if (*ok && why != NULL) {
            why->field = field;
            why->tpl = e;
        }
        *ok = false;
    }
    return t;
}

/*
 * The tenant's key for the From domain, opened, into x; a missing key is
 * fine.  MC_ERR_INVALID when the key cannot be opened; a store error as is
 * (the database is away: the caller tries again later).
 */
static mc_err
load_dkim(struct store *st, const unsigned char kek[32], const char *tenant_id,
          struct compose_campaign *x)
{
    const char *at = strrchr(x->from_address, '@');
    struct dkim_key k = {0};
    mc_err err;

    if (at == NULL)
        return MC_ERR_OK;
    err = store_dkim_for_domain(st, tenant_id, at + 1, &k);
    if (err == MC_ERR_NOT_FOUND)
        return MC_ERR_OK;
    if (err == MC_ERR_OK) {
        if (dkim_open(kek, k.private_key_enc, &x->dkim_pem) == MC_ERR_OK) {
            x->dkim_domain = xstrdup(k.domain);
            x->dkim_selector = xstrdup(k.selector);
        } else {
            log_error("event=dkim error=\"cannot open the key of %s (another server secret?)\"",
                      at + 1);
            err = MC_ERR_INVALID;
        }
    }
    dkim_key_cleanup(&k);
    return err;
}

mc_err
compose_campaign_from(struct store *st, const struct config *cfg, const unsigned char *kek,
                      const struct campaign *c, struct compose_campaign **out,
                      struct compose_error *why)
{
    struct compose_campaign *x = xcalloc(1, sizeof(*x));
    bool ok = true;
    mc_err err = MC_ERR_OK;

    if (why != NULL)
        memset(why, 0, sizeof(*why));
    memcpy(x->id, c->id, sizeof(x->id));
    memcpy(x->tenant_id, c->tenant_id, sizeof(x->tenant_id));
    x->name = xstrdup(c->name);
    x->from_address = xstrdup(c->from_address);
    x->from_name = xstrdup(c->from_name);
    x->reply_to = xstrdup(c->reply_to);
    x->subject = compile(cfg, c, "subject", c->subject, TPL_SUBJECT, &ok, why);
    x->html = compile(cfg, c, "html_body", c->html_body, TPL_HTML, &ok, why);
    x->text = compile(cfg, c, "text_body", c->text_body, TPL_TEXT, &ok, why);
    if (ok && kek != NULL)
        err = load_dkim(st, kek, c->tenant_id, x);
    if (ok && err == MC_ERR_OK && kek != NULL) {
        /* Sending: the tenant's own bounce domain, when it has one; unread, no
         * message goes (it would leave with another envelope sender). */
        struct bounce_policy pol = BOUNCE_POLICY_DEFAULTS;
        err = store_bounce_policy_get(st, c->tenant_id, &pol);
        if (err == MC_ERR_OK) {
            x->bounce_domain = pol.bounce_domain;
            pol.bounce_domain = NULL;
        }
        bounce_policy_cleanup(&pol);
    }
    if (err == MC_ERR_OK &&
        (!ok || x->subject == NULL || (x->html == NULL && x->text == NULL)))
        err = MC_ERR_INVALID;
    if (err != MC_ERR_OK) {
        compose_campaign_free(x);
        return err;
    }
    *out = x;
    return MC_ERR_OK;
}

mc_err
compose_campaign_load(struct store *st, const struct config *cfg, const unsigned char *kek,
                      const char *tenant_id, const char *campaign_id,
                      struct compose_campaign **out, struct compose_error *why)
{
    struct campaign c = {0};
    mc_err err;

    if ((err = store_campaign_get(st, tenant_id, campaign_id, &c)) != MC_ERR_OK)
        return err;
    err = compose_campaign_from(st, cfg, kek, &c, out, why);
    campaign_cleanup(&c);
    return err;
}

void
compose_campaign_free(struct compose_campaign *c)
{
    if (c == NULL)
        return;
    free(c->name);
    free(c->from_address);
    free(c->from_name);
    free(c->reply_to);
    tpl_free(c->subject);
    tpl_free(c->html);
    tpl_free(c->text);
    free(c->dkim_domain);
    free(c->dkim_selector);
    free(c->bounce_domain);
    if (c->dkim_pem)
        OPENSSL_cleanse(c->dkim_pem, strlen(c->dkim_pem));
    free(c->dkim_pem);
    free(c);
}

/* Stable for one message across its retries, unguessable without the key. */
static void
message_id(const unsigned char key[32], const char *msg_key, const char *from, char *out, size_t n)
{
    unsigned char md[32];
    char hex[65];
    const char *at = strrchr(from, '@');

    crypto_hmac_sha256(key, 32, msg_key, strlen(msg_key), md);
    crypto_hex(md, 16, hex);
    snprintf(out, n, "%s@%s", hex, at ? at + 1 : "mailcast.invalid");
}

static bool
render(const struct tpl *t, const struct tpl_data *td, struct buf *out)
{
    return t == NULL || tpl_render(t, td, out) == MC_ERR_OK;
}

mc_err
compose_render(const struct compose_campaign *c, const struct config *cfg,
               const unsigned char key[32], const struct compose_recipient *r,
               struct compose_parts *out, const char **why)
{
    char tok[TOKEN_LEN + 1];
    struct tpl_data td = {0};
    mc_err err = MC_ERR_OK;

    memset(out, 0, sizeof(*out));
    buf_init(&out->subject, 0);
    buf_init(&out->html, 0);
    buf_init(&out->text, 0);
    out->has_html = c->html != NULL;
    out->has_text = c->text != NULL;
    (r->preview_link ? token_make_preview : token_make)(
        key, c->tenant_id, c->id, r->recipient_id ? r->recipient_id : TOKEN_NIL_ID, tok);
    out->unsubscribe_url = xasprintf("%s/u/%s", cfg->public_url, tok);
    td.email = r->email;
    td.name = r->name;
    td.first_name = r->first_name;
    td.last_name = r->last_name;
    td.unsubscribe_url = out->unsubscribe_url;
    td.campaign_name = c->name;
    td.campaign_id = c->id;
    td.attributes = json_loads(r->attributes ? r->attributes : "{}", 0, NULL);
    if (!render(c->subject, &td, &out->subject))
        out->too_large = "subject";
    else if (!render(c->html, &td, &out->html))
        out->too_large = "html_body";
    else if (!render(c->text, &td, &out->text))
        out->too_large = "text_body";
    if (out->too_large != NULL) {
        *why = "the message renders larger than render_max";
        err = MC_ERR_TOO_LARGE;
    }
    json_decref(td.attributes);
    return err;
}

void
compose_parts_cleanup(struct compose_parts *p)
{
    free(p->unsubscribe_url);
    p->unsubscribe_url = NULL;
    buf_cleanup(&p->subject);
    buf_cleanup(&p->html);
    buf_cleanup(&p->text);
}

/* Appends the whole message for r to out (bounded by the caller). */
static mc_err
compose_message(const struct compose_campaign *c, const struct config *cfg,
                struct dkim_signer *signer, const unsigned char key[32],
                const struct compose_recipient *r, const char *msg_key, const char *ref,
                char *mid, size_t mid_len, struct buf *out, const char **why)
{
    struct compose_parts parts;
    struct mime_msg mm = {0};
    unsigned char rnd[12];
    char boundary[40];
    mc_err err;

    if ((err = compose_render(c, cfg, key, r, &parts, why)) != MC_ERR_OK)
        goto out;
    /* HTML alone: a text alternative from the HTML, so text clients read it too. */
    if (parts.has_html && !parts.has_text &&
        tpl_html_to_text(parts.html.data ? parts.html.data : "", parts.html.len, &parts.text) ==
            MC_ERR_OK)
        parts.has_text = true;
    message_id(key, msg_key, c->from_address, mid, mid_len);
    crypto_random(rnd, sizeof(rnd));
    memcpy(boundary, "=_mc_", 5);
    crypto_hex(rnd, sizeof(rnd), boundary + 5);
    mm.from_addr = c->from_address;
    mm.from_name = c->from_name;
    mm.to_addr = r->email;
    mm.to_name = r->name;
    mm.reply_to = c->reply_to;
    mm.subject = parts.subject.data ? parts.subject.data : "";
    mm.html = parts.has_html ? (parts.html.data ? parts.html.data : "") : NULL;
    mm.text = parts.has_text ? (parts.text.data ? parts.text.data : "") : NULL;
    mm.message_id = mid;
    mm.list_unsubscribe_url = parts.unsubscribe_url;
    mm.list_unsubscribe_mailto = cfg->list_unsubscribe_mailto;
    mm.date_us = time_now_us();
    mm.boundary = boundary;
    mm.ref = ref;
    if (c->dkim_pem == NULL && cfg->dkim_required) {
        *why = "no DKIM key for the From domain, and dkim_required is set";
        err = MC_ERR_INVALID;
        goto out;
    }
    if (c->dkim_pem == NULL || signer == NULL) {
        err = mime_build(&mm, out);
    } else {
        /* Signed over the exact bytes that go out. */
        struct buf raw;
        buf_init(&raw, out->max);
        err = mime_build(&mm, &raw);
        if (err == MC_ERR_OK)
            err = dkim_sign_message(signer, c->dkim_domain, c->dkim_selector, c->dkim_pem,
                                    raw.data, raw.len, out);
        buf_cleanup(&raw);
    }
    if (err != MC_ERR_OK)
        *why = err == MC_ERR_TOO_LARGE ? "the message is too large"
                                       : "the message cannot be assembled or signed";
out:
    compose_parts_cleanup(&parts);
    return err;
}

mc_err
compose_job(const struct compose_campaign *c, const struct config *cfg,
            struct dkim_signer *signer, const unsigned char key[32],
            const struct compose_recipient *r, const char *msg_key, struct smtp_job *job,
            char *mid, size_t mid_len, const char **why)
{
    const char *domain = c->bounce_domain ? c->bounce_domain : cfg->bounce_domain;
    char ref[BOUNCE_REF_LEN + 1];
    bool has_ref = crypto_uuid_valid(msg_key);

    buf_init(&job->data, (size_t)cfg->render_max * 3);
    if (has_ref)
        bounce_ref_make(key, msg_key, ref);
    if (has_ref && domain)
        job->mail_from = xasprintf("%s%s@%s", BOUNCE_REF_PREFIX, ref, domain);
    else
        job->mail_from = xstrdup(cfg->return_path ? cfg->return_path : c->from_address);
    job->rcpt_to = xstrdup(r->email);
    job->envid = xstrdup(msg_key);
    job->utf8 = email_needs_utf8(r->email) || email_needs_utf8(job->mail_from);
    return compose_message(c, cfg, signer, key, r, msg_key, has_ref ? ref : NULL, mid, mid_len,
                           &job->data, why);
}

void
compose_job_cleanup(struct smtp_job *job)
{
    free(job->mail_from);
    free(job->rcpt_to);
    free(job->envid);
    job->mail_from = job->rcpt_to = job->envid = NULL;
    buf_cleanup(&job->data);
}
