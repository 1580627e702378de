/*
 * api_bounces.c - a tenant's bounces and complaints: the records (list with
 * filters, one with its raw message), the operator's unmatched reports,
 * the webhook endpoint for providers that report bounces by HTTP, and the
 * tenant's bounce policy.  Handlers
 * validate and call: the webhook goes through the intake pipeline
 * (bounce/intake.c) like every other report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce/intake.h"
#include "core/email.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"


static json_t *
bounce_json(const struct bounce_rec *b, bool with_raw)
{
    json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
                          "id", b->id, "message_id",
                          json_str_or_null(b->message_id[0] ? b->message_id : NULL),
                          "campaign_id",
                          json_str_or_null(b->campaign_id[0] ? b->campaign_id : NULL),
                          "recipient_id",
                          json_str_or_null(b->recipient_id[0] ? b->recipient_id : NULL), "email",
                          json_str_or_null(b->email), "kind", b->kind ? b->kind : "other",
                          "class", b->class ? b->class : "undetermined", "status",
                          json_str_or_null(b->status), "action", json_str_or_null(b->action),
                          "diagnostic", json_str_or_null(b->diagnostic), "reporting_mta",
                          json_str_or_null(b->reporting_mta), "remote_mta",
                          json_str_or_null(b->remote_mta), "feedback_type",
                          json_str_or_null(b->feedback_type));
    json_object_set_new(o, "source", json_str_or_null(b->source));
    json_object_set_new(o, "outcome", json_str_or_null(b->outcome));
    json_object_set_new(o, "received_at", json_time(b->received_at));
    if (with_raw) {
        json_object_set_new(o, "raw", json_str_or_null(b->raw));
        json_object_set_new(o, "raw_truncated", json_boolean(b->raw_truncated));
    }
    return o;
}

void
api_bounce_list(struct req *r)
{
    const char *campaign = req_query(r, "campaign_id"), *cls = req_query(r, "class");
    const char *email = req_query(r, "email"), *since = req_query(r, "since"), *why = NULL;
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1], cid[MC_UUID_LEN + 1];
    struct bounce_filter f = {0};
    struct bounce_rec_vec v = {0};
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    if (campaign && !crypto_uuid_valid(campaign)) {
        reply_invalid(r, "campaign_id", "campaign_id must be a UUID");
        return;
    }
    if (cls && bounce_class_parse(cls) < 0) {
        reply_invalid(r, "class",
                      "class must be hard, soft, block, complaint, auto_reply or undetermined");
        return;
    }
    if (email && !email_normalize(email, norm, lc, &why)) {
        reply_invalid(r, "email", "email is not a valid address: %s", why);
        return;
    }
    if (since && !time_parse_rfc3339(since, &f.since)) {
        reply_invalid(r, "since", "since must be an RFC 3339 time");
        return;
    }
    if (campaign) {
        memcpy(cid, campaign, sizeof(cid));
        crypto_uuid_lower(cid); /* as stored */
        f.campaign_id = cid;
    }
    f.class = cls;
    f.email_lc = email ? lc : NULL;
    err = store_bounce_list(r->app->st, TENANT(r), &f, &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, bounce_json(&v.items[i], false));
    reply_json(r, 200, json_page(items, v.total, &pg));
    bounce_rec_vec_cleanup(&v);
}

void
api_bounce_get(struct req *r)
{
    struct bounce_rec b = {0};
    mc_err err = store_bounce_get(r->app->st, TENANT(r), req_param(r, "bounce_id"), &b);

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "bounce");
        return;
    }
    reply_json(r, 200, bounce_json(&b, true));
    bounce_rec_cleanup(&b);
}

/* The operator's unmatched reports (no valid reference, so no tenant's), newest first. */
void
api_bounce_unmatched_list(struct req *r)
{
    const char *since = req_query(r, "since");
    struct bounce_rec_vec v = {0};
    struct page pg;
    int64_t t = 0;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    if (since && !time_parse_rfc3339(since, &t)) {
        reply_invalid(r, "since", "since must be an RFC 3339 time");
        return;
    }
    err = store_bounce_unmatched_list(r->app->st, t, &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "bounce");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, bounce_json(&v.items[i], false));
    reply_json(r, 200, json_page(items, v.total, &pg));
    bounce_rec_vec_cleanup(&v);
}

void
api_bounce_unmatched_get(struct req *r)
{
    struct bounce_rec b = {0};
    mc_err err = store_bounce_unmatched_get(r->app->st, req_param(r, "bounce_id"), &b);

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "bounce");
        return;
    }
    reply_json(r, 200, bounce_json(&b, true));
    bounce_rec_cleanup(&b);
}

/* The intake's context for a request of this process. */
static struct bounce_intake_ctx
intake_ctx(struct req *r)
{
    return (struct bounce_intake_ctx){
        .st = r->app->st,
        .keys = (const unsigned char(*)[BOUNCE_REF_KEY_LEN])r->app->secrets.token_keys,
        .nkeys = r->app->secrets.ntoken_keys,
        .raw_max = (size_t)r->app->cfg->bounce_raw_max,
        .stats = &r->app->bounce_stats,
    };
}

void
api_bounce_create(struct req *r)
{
    const char *email = NULL, *msg = NULL, *type = NULL, *status = NULL, *diag = NULL;
    const char *why = NULL;
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1], st16[16], mid[MC_UUID_LEN + 1];
    struct bounce_intake_ctx x = intake_ctx(r);
    struct bounce_applied a;
    struct bounce_rec b = {0};
    mc_err err;

    if (!field_string(r, r->json, "email", F_NULLABLE, 1024, &email, NULL) ||
        !field_string(r, r->json, "message_id", F_NULLABLE, 64, &msg, NULL) ||
        !field_string(r, r->json, "type", F_REQUIRED, 16, &type, NULL) ||
        !field_string(r, r->json, "status", F_NULLABLE | F_ONELINE, 15, &status, NULL) ||
        !field_string(r, r->json, "diagnostic", F_NULLABLE, 1000, &diag, NULL))
        return;
    if (strcmp(type, "hard") != 0 && strcmp(type, "soft") != 0 && strcmp(type, "complaint") != 0) {
        reply_invalid(r, "type", "type must be hard, soft or complaint");
        return;
    }
    if (email == NULL && msg == NULL) {
        reply_invalid(r, "email", "give email or message_id");
        return;
    }
    if (email && !email_normalize(email, norm, lc, &why)) {
        reply_invalid(r, "email", "email is not a valid address: %s", why);
        return;
    }
    if (msg && !crypto_uuid_valid(msg)) {
        reply_invalid(r, "message_id", "message_id must be a UUID");
        return;
    }
    if (status && (!bounce_status_find(status, strlen(status), st16) ||
                   strcmp(st16, status) != 0 || (status[0] != '4' && status[0] != '5'))) {
        reply_invalid(r, "status", "status must be an enhanced status code such as 5.1.1");
        return;
    }
    if (msg) {
        memcpy(mid, msg, sizeof(mid));
        crypto_uuid_lower(mid);
    }
    err = bounce_intake_api(&x, TENANT(r), msg ? mid : NULL, email ? norm : NULL, type, status,
                            diag, &a);
    if (err == MC_ERR_OK)
        err = store_bounce_get(r->app->st, TENANT(r), a.items[0].id, &b);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, msg ? "message" : "tenant");
        return;
    }
    reply_created(r, bounce_json(&b, false), b.id, NULL);
    bounce_rec_cleanup(&b);
}

static json_t *
policy_json(const struct bounce_policy *p)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:o}", "soft_limit", (json_int_t)p->soft_limit,
                          "soft_window_days", (json_int_t)p->soft_window_days,
                          "soft_suppress_days", (json_int_t)p->soft_suppress_days,
                          "bounce_domain", json_str_or_null(p->bounce_domain));
    json_object_set_new(o, "updated_at", json_time(p->updated_at));
    return o;
}

void
api_bounce_policy_get(struct req *r)
{
    struct bounce_policy p = BOUNCE_POLICY_DEFAULTS;
    mc_err err = store_bounce_policy_get(r->app->st, TENANT(r), &p);

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    reply_json(r, 200, policy_json(&p));
    bounce_policy_cleanup(&p);
}

void
api_bounce_policy_put(struct req *r)
{
    struct bounce_policy p = BOUNCE_POLICY_DEFAULTS, out = BOUNCE_POLICY_DEFAULTS;
    const char *domain = NULL, *why = NULL;
    char addr[300], norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    bool has_domain = false;
    mc_err err;

    /* Absent fields keep their value; whatever is sent must be valid. */
    if ((err = store_bounce_policy_get(r->app->st, TENANT(r), &p)) != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    if (!field_int(r, r->json, "soft_limit", 0, 1, 100, &p.soft_limit, NULL) ||
        !field_int(r, r->json, "soft_window_days", 0, 1, 365, &p.soft_window_days, NULL) ||
        !field_int(r, r->json, "soft_suppress_days", 0, 1, 3650, &p.soft_suppress_days, NULL) ||
        !field_string(r, r->json, "bounce_domain", F_NULLABLE | F_NONEMPTY | F_ONELINE, 253,
                      &domain, &has_domain))
        goto out;
    if (has_domain) {
        free(p.bounce_domain);
        p.bounce_domain = NULL;
        if (domain) {
            /* A domain's rules are an address's: x@domain normalises it (IDN included). */
            snprintf(addr, sizeof(addr), "x@%s", domain);
            if (!email_normalize(addr, norm, lc, &why)) {
                reply_invalid(r, "bounce_domain", "bounce_domain is not a valid host name: %s",
                              why);
                goto out;
            }
            p.bounce_domain = xstrdup(lc + 2);
        }
    }
    err = store_bounce_policy_put(r->app->st, TENANT(r), &p, &out);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        goto out;
    }
    log_info("event=bounce_policy tenant=%s soft_limit=%lld soft_window_days=%lld "
             "soft_suppress_days=%lld",
             TENANT(r), (long long)out.soft_limit, (long long)out.soft_window_days,
             (long long)out.soft_suppress_days);
    reply_json(r, 200, policy_json(&out));
out:
    bounce_policy_cleanup(&p);
    bounce_policy_cleanup(&out);
}

void
bounce_metrics(const struct bounce_stats *s, struct buf *out)
{
    buf_puts(out, "# HELP mailcast_bounces_total Bounce and complaint reports taken in, by class.\n"
                  "# TYPE mailcast_bounces_total counter\n");
    for (int i = 0; i < BOUNCE_NCLASSES; i++)
        buf_printf(out, "mailcast_bounces_total{class=\"%s\"} %lld\n",
                   bounce_class_str((enum bounce_class)i), (long long)atomic_load(&s->by_class[i]));
    buf_printf(out,
               "# HELP mailcast_bounces_unreferenced_total Reports without a valid reference.\n"
               "# TYPE mailcast_bounces_unreferenced_total counter\n"
               "mailcast_bounces_unreferenced_total %lld\n"
               "# HELP mailcast_bounce_suppressions_total Addresses suppressed by reports.\n"
               "# TYPE mailcast_bounce_suppressions_total counter\n"
               "mailcast_bounce_suppressions_total %lld\n",
               (long long)atomic_load(&s->unreferenced), (long long)atomic_load(&s->suppressed));
}
