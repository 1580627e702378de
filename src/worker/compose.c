/*
 * compose.c - render and assemble one message (see compose.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "compose.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/token.h"
#include "smtp/dkim.h"
#include "smtp/mime.h"

#define NIL_UUID "00000000-0000-0000-0000-000000000000"

static struct tpl *
compile(const struct config *cfg, const char *src, enum tpl_ctx ctx, bool *ok)
{
    struct tpl *t = NULL;
    struct tpl_error e;

    if (src == NULL || *src == '\0')
        return NULL;
    if (tpl_compile(src, strlen(src), ctx, (size_t)cfg->template_max, (size_t)cfg->render_max, &t,
                    &e) != MC_ERR_OK) {
        log_error("event=template_broken line=%d column=%d error=\"%s\"", e.line, e.column,
                  e.message);
        *ok = false;
    }
    return t;
}

/* The tenant's key for the From domain, opened, into x; a missing key is fine. */
static bool
load_dkim(struct store *st, const unsigned char kek[32], const char *tenant_id,
          struct compose_campaign *x)
{
    const char *at = strrchr(x->from_address, '@');
    struct dkim_key k = {0};
    mc_err err;

    if (at == NULL)
        return true;
    err = store_dkim_for_domain(st, tenant_id, at + 1, &k);
    if (err == MC_ERR_NOT_FOUND)
        return true;
    if (err == MC_ERR_OK && dkim_open(kek, k.private_key_enc, &x->dkim_pem) == MC_ERR_OK) {
        x->dkim_domain = xstrdup(k.domain);
        x->dkim_selector = xstrdup(k.selector);
    } else {
        log_error("event=dkim error=\"cannot open the key of %s (another server secret?)\"",
                  at + 1);
        err = MC_ERR_INVALID;
    }
    dkim_key_cleanup(&k);
    return err == MC_ERR_OK;
}

mc_err
compose_campaign_load(struct store *st, const struct config *cfg, const unsigned char kek[32],
                      const char *tenant_id, const char *campaign_id,
                      struct compose_campaign **out)
{
    struct campaign c = {0};
    struct compose_campaign *x;
    bool ok = true;
    mc_err err;

    if ((err = store_campaign_get(st, tenant_id, campaign_id, &c)) != MC_ERR_OK)
        return err;
    x = xcalloc(1, sizeof(*x));
    memcpy(x->id, c.id, sizeof(x->id));
    memcpy(x->tenant_id, c.tenant_id, sizeof(x->tenant_id));
    x->name = xstrdup(c.name);
    x->from_address = xstrdup(c.from_address);
    x->from_name = xstrdup(c.from_name);
    x->reply_to = xstrdup(c.reply_to);
    x->subject = compile(cfg, c.subject, TPL_SUBJECT, &ok);
    x->html = compile(cfg, c.html_body, TPL_HTML, &ok);
    x->text = compile(cfg, c.text_body, TPL_TEXT, &ok);
    campaign_cleanup(&c);
    if (ok)
        ok = load_dkim(st, kek, tenant_id, x);
    if (!ok || x->subject == NULL || (x->html == NULL && x->text == NULL)) {
        compose_campaign_free(x);
        return MC_ERR_INVALID;
    }
    *out = x;
    return MC_ERR_OK;
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
    crypto_wipe_str(c->dkim_pem);
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
compose_message(const struct compose_campaign *c, const struct config *cfg,
                struct dkim_signer *signer, const unsigned char key[32],
                const struct compose_recipient *r,
                const char *msg_key, char *mid, size_t mid_len, struct buf *out, const char **why)
{
    char tok[TOKEN_LEN + 1], boundary[40];
    struct buf subject, html, text;
    struct tpl_data td = {0};
    struct mime_msg mm = {0};
    unsigned char rnd[12];
    char *url;
    mc_err err = MC_ERR_OK;

    buf_init(&subject, 0);
    buf_init(&html, 0);
    buf_init(&text, 0);
    token_make(key, c->tenant_id, c->id, r->recipient_id ? r->recipient_id : NIL_UUID, tok);
    url = xasprintf("%s/u/%s", cfg->public_url, tok);
    td.email = r->email;
    td.name = r->name;
    td.first_name = r->first_name;
    td.last_name = r->last_name;
    td.unsubscribe_url = url;
    td.campaign_name = c->name;
    td.campaign_id = c->id;
    td.attributes = json_loads(r->attributes ? r->attributes : "{}", 0, NULL);
    if (!render(c->subject, &td, &subject) || !render(c->html, &td, &html) ||
        !render(c->text, &td, &text)) {
        *why = "the message renders larger than render_max";
        err = MC_ERR_TOO_LARGE;
        goto out;
    }
    message_id(key, msg_key, c->from_address, mid, mid_len);
    crypto_random(rnd, sizeof(rnd));
    memcpy(boundary, "=_mc_", 5);
    crypto_hex(rnd, sizeof(rnd), boundary + 5);
    mm.from_addr = c->from_address;
    mm.from_name = c->from_name;
    mm.to_addr = r->email;
    mm.to_name = r->name;
    mm.reply_to = c->reply_to;
    mm.subject = subject.data ? subject.data : "";
    mm.html = c->html ? (html.data ? html.data : "") : NULL;
    mm.text = c->text ? (text.data ? text.data : "") : NULL;
    mm.message_id = mid;
    mm.list_unsubscribe_url = url;
    mm.list_unsubscribe_mailto = cfg->list_unsubscribe_mailto;
    mm.date_us = time_now_us();
    mm.boundary = boundary;
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
    json_decref(td.attributes);
    free(url);
    buf_cleanup(&subject);
    buf_cleanup(&html);
    buf_cleanup(&text);
    return err;
}
