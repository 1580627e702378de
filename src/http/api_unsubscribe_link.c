/*
 * api_unsubscribe_link.c - the public unsubscribe link (RFC 8058).
 *
 * GET /u/{token} shows a page that names the address and asks for a click;
 * it changes nothing, because link scanners follow links.  POST /u/{token}
 * with List-Unsubscribe=One-Click (form-urlencoded or multipart, as a mail
 * provider sends it, or from the page's button) unsubscribes at once and
 * answers 200: no redirect, no cookie, no session, idempotent.  A token
 * that does not verify (forged, truncated, tampered) gets a 404 page and
 * changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/email.h"
#include "core/log.h"
#include "core/token.h"
#include "http.h"


struct link {
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    struct tenant tenant;
    struct recipient rcpt;
};

static void
html_escape(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': buf_puts(b, "&amp;"); break;
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&#39;"); break;
        default: buf_putc(b, *s);
        }
    }
}

static void
page(struct req *r, int status, const char *title, const char *body_html)
{
    struct buf b;

    buf_init(&b, 0);
    buf_puts(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                 "<meta name=\"robots\" content=\"noindex\"><title>");
    html_escape(&b, title);
    buf_puts(&b, "</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;"
                 "margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}"
                 "button{font-size:1.1rem;padding:.7rem 1.4rem;border-radius:.4rem;"
                 "border:0;background:#b3261e;color:#fff;cursor:pointer}"
                 ".addr{font-weight:600;word-break:break-all}</style></head><body>");
    buf_puts(&b, body_html);
    buf_puts(&b, "</body></html>\n");
    r->status = status;
    free(r->resp_body);
    r->resp_body = buf_steal(&b);
    r->resp_type = "text/html; charset=utf-8";
    r->answered = true;
}

static void
not_found(struct req *r)
{
    page(r, 404, "Link not valid",
         "<h1>This link is not valid</h1><p>The unsubscribe link is incomplete or has been "
         "changed. Please use the link from the message itself.</p>");
}

static void
link_cleanup(struct link *l)
{
    tenant_cleanup(&l->tenant);
    recipient_cleanup(&l->rcpt);
}

/* Verifies the token and loads the tenant and the recipient; false after a 404 page. */
static bool
resolve(struct req *r, struct link *l)
{
    const char *tok = req_param(r, "token");
    mc_err err = MC_ERR_NOT_FOUND;

    memset(l, 0, sizeof(*l));
    if (token_verify((const unsigned char(*)[TOKEN_KEY_LEN])r->app->secrets.token_keys,
                     r->app->secrets.ntoken_keys, tok, l->tenant_id, l->campaign_id, l->recipient_id) &&
        strcmp(l->recipient_id, TOKEN_NIL_ID) != 0) {
        err = store_tenant_get(r->app->st, l->tenant_id, &l->tenant);
        if (err == MC_ERR_OK)
            err = store_recipient_find(r->app->st, l->tenant_id, l->recipient_id, &l->rcpt);
    }
    if (err == MC_ERR_OK)
        return true;
    if (err == MC_ERR_NOT_FOUND)
        not_found(r);
    else
        page(r, 503, "Please try again",
             "<h1>Please try again</h1><p>We could not look this link up just now.</p>");
    link_cleanup(l);
    return false;
}


void
api_unsubscribe_page(struct req *r)
{
    struct link l;
    struct buf b;

    if (!resolve(r, &l))
        return;
    buf_init(&b, 0);
    buf_puts(&b, "<h1>Unsubscribe</h1><p>Stop all mail from <strong>");
    html_escape(&b, l.tenant.name);
    buf_puts(&b, "</strong> to <span class=\"addr\">");
    html_escape(&b, l.rcpt.email);
    buf_puts(&b, "</span>?</p><form method=\"post\">"
                 "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                 "<button type=\"submit\">Unsubscribe</button></form>"
                 "<p><small>Nothing changes until you press the button.</small></p>");
    page(r, 200, "Unsubscribe", b.data);
    buf_cleanup(&b);
    link_cleanup(&l);
}

/* RFC 8058: the body carries List-Unsubscribe=One-Click, urlencoded or as a multipart field. */
static bool
one_click(const struct req *r)
{
    const char *b = r->body.data;

    return b != NULL && (strstr(b, "List-Unsubscribe=One-Click") != NULL ||
                         (strstr(b, "name=\"List-Unsubscribe\"") != NULL &&
                          strstr(b, "One-Click") != NULL));
}

void
api_unsubscribe_post(struct req *r)
{
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    bool created = false;
    struct link l;
    struct buf b;
    mc_err err;

    if (!one_click(r)) {
        page(r, 400, "Unsubscribe",
             "<h1>Nothing was changed</h1><p>This address takes the one-click "
             "unsubscribe form (List-Unsubscribe=One-Click).</p>");
        return;
    }
    if (!resolve(r, &l))
        return;
    if (!email_normalize(l.rcpt.email, norm, lc, NULL)) {
        not_found(r);
        link_cleanup(&l);
        return;
    }
    err = store_unsub_add(r->app->st, l.tenant_id, norm, lc, UNSUB_LINK, l.campaign_id, NULL,
                          &created, NULL);
    if (err != MC_ERR_OK) {
        page(r, 503, "Please try again",
             "<h1>Please try again</h1><p>We could not record your request just now.</p>");
        link_cleanup(&l);
        return;
    }
    log_info("event=unsubscribed source=link tenant=%s campaign=%s new=%d", l.tenant_id,
             l.campaign_id, created);
    buf_init(&b, 0);
    buf_puts(&b, "<h1>You are unsubscribed</h1><p><span class=\"addr\">");
    html_escape(&b, l.rcpt.email);
    buf_puts(&b, "</span> will get no more mail from <strong>");
    html_escape(&b, l.tenant.name);
    buf_puts(&b, "</strong>.</p>");
    page(r, 200, "Unsubscribed", b.data);
    buf_cleanup(&b);
    link_cleanup(&l);
}
