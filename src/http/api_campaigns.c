/*
 * api_campaigns.c - campaigns: CRUD with template validation, the lifecycle
 * endpoints (schedule, send, pause, resume, cancel), statistics and preview.
 * Status changes go through store_campaign_transition() only.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/email.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/token.h"
#include "template/template.h"
#include "smtp/dkim.h"
#include "worker/compose.h"
#include "worker/engine.h"
#include "worker/sendnow.h"
#include "http.h"

#define CAMPAIGN(r) req_param((r), "campaign_id")
#define RATE_MAX 1000000000
#define MAX_TAGS 50

static double
progress(const struct campaign *c)
{
    const struct campaign_counts *k = &c->counts;
    int64_t done = k->sent + k->delivered + k->bounced + k->failed + k->cancelled + k->suppressed;

    if (c->status == CAMP_COMPLETED || c->status == CAMP_FAILED)
        return 100.0;
    if (c->total_recipients <= 0)
        return 0.0;
    return round(10000.0 * (double)done / (double)c->total_recipients) / 100.0;
}

static json_t *
int_or_null(int64_t v)
{
    return v ? json_integer(v) : json_null();
}

/*
 * The message counts a campaign and its stats both show, by one name each:
 * recipient_count and <status>_count.  "delivered" is left out until
 * something tells delivered from sent (it is always 0 today), and so are
 * opens and clicks, which nothing tracks.
 */
static const struct {
    const char *name;
    size_t off;
} count_fields[] = {
    {"pending_count", offsetof(struct campaign_counts, pending)},
    {"sending_count", offsetof(struct campaign_counts, sending)},
    {"sent_count", offsetof(struct campaign_counts, sent)},
    {"bounced_count", offsetof(struct campaign_counts, bounced)},
    {"failed_count", offsetof(struct campaign_counts, failed)},
    {"cancelled_count", offsetof(struct campaign_counts, cancelled)},
    {"suppressed_count", offsetof(struct campaign_counts, suppressed)},
    {"bounced_hard_count", offsetof(struct campaign_counts, bounced_hard)},
    {"bounced_soft_count", offsetof(struct campaign_counts, bounced_soft)},
    {"complained_count", offsetof(struct campaign_counts, complained)},
    {"blocked_count", offsetof(struct campaign_counts, blocked)},
};

/*
 * Adds recipient_count, the <status>_count fields and the seed's name for
 * the recipient count, total_recipients (the original API's campaign and
 * stats objects both have it; kept for its clients, documented as such).
 */
static void
counts_json(json_t *o, const struct campaign *c)
{
    json_object_set_new(o, "recipient_count", json_integer(c->total_recipients));
    json_object_set_new(o, "total_recipients", json_integer(c->total_recipients));
    for (size_t i = 0; i < sizeof(count_fields) / sizeof(count_fields[0]); i++)
        json_object_set_new(o, count_fields[i].name,
                            json_integer(*(const int64_t *)((const char *)&c->counts +
                                                            count_fields[i].off)));
}

json_t *
campaign_json(const struct campaign *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(c->id));
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "description", json_str_or_null(c->description));
    json_object_set_new(o, "subject", json_string(c->subject));
    json_object_set_new(o, "from_address", json_string(c->from_address));
    json_object_set_new(o, "from_name", json_str_or_null(c->from_name));
    json_object_set_new(o, "reply_to", json_str_or_null(c->reply_to));
    json_object_set_new(o, "html_body", json_str_or_null(c->html_body));
    json_object_set_new(o, "text_body", json_str_or_null(c->text_body));
    json_object_set_new(o, "recipient_list_id", json_str_or_null(c->list_id[0] ? c->list_id : NULL));
    json_object_set_new(o, "scheduled_at", json_time(c->scheduled_at));
    json_object_set_new(o, "rate_limit_per_minute", int_or_null(c->rate_limit_per_minute));
    json_object_set_new(o, "rate_limit_per_hour", int_or_null(c->rate_limit_per_hour));
    json_object_set_new(o, "tags", json_from_text(c->tags));
    json_object_set_new(o, "metadata", json_from_text(c->metadata));
    json_object_set_new(o, "status", json_string(campaign_status_str(c->status)));
    counts_json(o, c);
    json_object_set_new(o, "progress_percentage", json_real(progress(c)));
    json_object_set_new(o, "materialized", json_boolean(c->materialized_at != 0));
    json_object_set_new(o, "created_at", json_time(c->created_at));
    json_object_set_new(o, "updated_at", json_time(c->updated_at));
    json_object_set_new(o, "started_at", json_time(c->started_at));
    json_object_set_new(o, "completed_at", json_time(c->completed_at));
    return o;
}

static void
set_owned(char **field, const char *v)
{
    free(*field);
    *field = xstrdup(v);
}

/* A nullable string field: absent leaves *dst, null clears it, a string replaces it. */
static bool
nullable_str(struct req *r, const char *name, unsigned flags, size_t max, char **dst)
{
    const char *v = NULL;
    bool present = false;

    if (!field_string(r, r->json, name, flags | F_NULLABLE, max, &v, &present))
        return false;
    if (present)
        set_owned(dst, v && *v ? v : NULL);
    return true;
}

/* An address field; `required` on create, `nullable` when it may be cleared. */
static bool
address_field(struct req *r, const char *name, bool required, bool nullable, char **dst)
{
    const char *v = NULL, *why = NULL;
    bool present = false;
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];

    if (!field_string(r, r->json, name, (required ? F_REQUIRED : 0) | F_NULLABLE, 1024, &v,
                      &present))
        return false;
    if (!present)
        return true;
    if (v == NULL || *v == '\0') {
        if (required || !nullable) {
            reply_invalid(r, name, "%s is required", name);
            return false;
        }
        set_owned(dst, NULL);
        return true;
    }
    if (!email_normalize(v, norm, lc, &why)) {
        reply_invalid(r, name, "%s is not a valid address: %s", name, why);
        return false;
    }
    set_owned(dst, norm);
    return true;
}

static bool
rate_field(struct req *r, const char *name, int64_t *dst)
{
    json_t *v = json_object_get(r->json, name);
    int64_t x = 0;

    if (v == NULL)
        return true;
    if (json_is_null(v)) {
        *dst = 0;
        return true;
    }
    if (!field_int(r, r->json, name, 0, 1, RATE_MAX, &x, NULL))
        return false;
    *dst = x;
    return true;
}

static bool
time_field(struct req *r, const char *name, int64_t *dst, bool *present)
{
    const char *v = NULL;
    int64_t t;

    if (!field_string(r, r->json, name, F_NULLABLE, 64, &v, present))
        return false;
    if (!*present)
        return true;
    if (v == NULL) {
        *dst = 0;
        return true;
    }
    if (!time_parse_rfc3339(v, &t)) {
        reply_invalid(r, name, "%s must be an RFC 3339 date-time (2026-12-01T09:00:00Z)", name);
        return false;
    }
    if (t < time_now_us()) {
        reply_invalid(r, name, "%s is in the past", name);
        return false;
    }
    *dst = t;
    return true;
}

static bool
tags_field(struct req *r, struct campaign *c)
{
    json_t *v = json_object_get(r->json, "tags"), *e;
    size_t i;

    if (v == NULL)
        return true;
    if (json_is_null(v)) {
        set_owned(&c->tags, "[]");
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) > MAX_TAGS) {
        reply_invalid(r, "tags", "tags must be an array of at most %d strings", MAX_TAGS);
        return false;
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 100) {
            reply_invalid(r, "tags", "every tag must be a string of 1 to 100 bytes");
            return false;
        }
    }
    char *s = json_dumps(v, JSON_COMPACT);
    free(c->tags);
    c->tags = s;
    return true;
}

/* Applies the body's fields onto c (a new draft, or the current one for PUT). */
static bool
apply_fields(struct req *r, struct campaign *c, bool create)
{
    unsigned req = create ? F_REQUIRED : 0;
    const char *name = NULL, *subject = NULL, *list = NULL;
    bool has_list = false, has_time = false;
    char *meta = NULL;
    bool has_meta = false;

    if (!field_string(r, r->json, "name", req | F_NONEMPTY, 255, &name, NULL) ||
        !field_string(r, r->json, "subject", req | F_NONEMPTY | F_ONELINE, 998, &subject, NULL) ||
        !nullable_str(r, "description", 0, 10000, &c->description) ||
        !address_field(r, "from_address", create, false, &c->from_address) ||
        !nullable_str(r, "from_name", F_ONELINE, 255, &c->from_name) ||
        !address_field(r, "reply_to", false, true, &c->reply_to) ||
        !nullable_str(r, "html_body", 0, (size_t)r->app->cfg->template_max, &c->html_body) ||
        !nullable_str(r, "text_body", 0, (size_t)r->app->cfg->template_max, &c->text_body) ||
        !field_string(r, r->json, "recipient_list_id", F_NULLABLE, 64, &list, &has_list) ||
        !time_field(r, "scheduled_at", &c->scheduled_at, &has_time) ||
        !rate_field(r, "rate_limit_per_minute", &c->rate_limit_per_minute) ||
        !rate_field(r, "rate_limit_per_hour", &c->rate_limit_per_hour) || !tags_field(r, c) ||
        !field_json(r, r->json, "metadata", F_NULLABLE, false, &meta, &has_meta))
        return false;
    if (name)
        set_owned(&c->name, name);
    if (subject)
        set_owned(&c->subject, subject);
    if (has_meta) {
        free(c->metadata);
        c->metadata = meta ? meta : xstrdup("{}");
    }
    if (has_list) {
        if (list != NULL && !crypto_uuid_valid(list)) {
            reply_invalid(r, "recipient_list_id", "recipient_list_id is not a list id");
            return false;
        }
        snprintf(c->list_id, sizeof(c->list_id), "%s", list ? list : "");
        crypto_uuid_lower(c->list_id);
    }
    return true;
}

/* 422 naming the field, with the line and column of a template error. */
static void
reply_template_error(struct req *r, const char *field, const struct tpl_error *e)
{
    char msg[256];
    json_t *err;

    snprintf(msg, sizeof(msg), "%s: line %d, column %d: %s", field, e->line, e->column,
             e->message);
    err = json_pack("{s:s, s:s, s:s, s:i, s:i}", "code", mc_err_code(MC_ERR_INVALID), "message",
                    msg, "field", field, "line", e->line, "column", e->column);
    reply_json(r, 422, json_pack("{s:o}", "error", err));
}

/* Compiles one template; replies 422 with line and column when it does not. */
static bool
check_template(struct req *r, const char *field, const char *src, enum tpl_ctx ctx)
{
    struct tpl *t = NULL;
    struct tpl_error e;

    if (src == NULL)
        return true;
    if (tpl_compile(src, strlen(src), ctx, (size_t)r->app->cfg->template_max,
                    (size_t)r->app->cfg->render_max, &t, &e) == MC_ERR_OK) {
        tpl_free(t);
        return true;
    }
    reply_template_error(r, field, &e);
    return false;
}

static bool
validate(struct req *r, const struct campaign *c)
{
    if ((c->html_body == NULL || *c->html_body == '\0') &&
        (c->text_body == NULL || *c->text_body == '\0')) {
        reply_invalid(r, "html_body", "a campaign needs an html_body, a text_body or both");
        return false;
    }
    return check_template(r, "subject", c->subject, TPL_SUBJECT) &&
           check_template(r, "html_body", c->html_body, TPL_HTML) &&
           check_template(r, "text_body", c->text_body, TPL_TEXT);
}

static void
reply_state(struct req *r, const char *action, enum campaign_status cur)
{
    char msg[160];
    json_t *err;

    snprintf(msg, sizeof(msg), "cannot %s a campaign that is %s", action,
             campaign_status_str(cur));
    err = json_pack("{s:s, s:s, s:s}", "code", mc_err_code(MC_ERR_STATE), "message", msg,
                    "status", campaign_status_str(cur));
    reply_json(r, 409, json_pack("{s:o}", "error", err));
}

/* Store errors of campaign writes: a list that is not the tenant's is a 422 on its field. */
static void
reply_write_error(struct req *r, mc_err err)
{
    if (err == MC_ERR_NOT_FOUND)
        reply_invalid(r, "recipient_list_id", "no such recipient list");
    else
        reply_store_error(r, err, "campaign");
}

void
api_campaign_create(struct req *r)
{
    struct campaign c = {0};
    mc_err err;

    snprintf(c.tenant_id, sizeof(c.tenant_id), "%s", TENANT(r));
    c.tags = xstrdup("[]");
    c.metadata = xstrdup("{}");
    if (!apply_fields(r, &c, true) || !validate(r, &c))
        goto out;
    err = store_campaign_create(r->app->st, &c);
    if (err != MC_ERR_OK) {
        reply_write_error(r, err);
        goto out;
    }
    log_info("event=campaign_created tenant=%s campaign=%s", c.tenant_id, c.id);
    reply_created(r, campaign_json(&c), c.id, NULL);
out:
    campaign_cleanup(&c);
}

void
api_campaign_list(struct req *r)
{
    const char *s = req_query(r, "status");
    struct campaign_vec v = {0};
    struct page pg;
    int status = -1;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    if (s != NULL && (status = campaign_status_parse(s)) < 0) {
        reply_invalid(r, "status", "status must be draft, scheduled, sending, paused, "
                                   "completed, cancelled or failed");
        return;
    }
    err = store_campaign_list(r->app->st, TENANT(r), status, &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, campaign_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    campaign_vec_cleanup(&v);
}

void
api_campaign_get(struct req *r)
{
    struct campaign c = {0};
    mc_err err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "campaign");
    else
        reply_json(r, 200, campaign_json(&c));
    campaign_cleanup(&c);
}

void
api_campaign_update(struct req *r)
{
    enum campaign_status cur = CAMP_DRAFT;
    struct campaign c = {0};
    mc_err err;

    err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        goto out;
    }
    if (c.status != CAMP_DRAFT) {
        reply_state(r, "edit", c.status);
        goto out;
    }
    if (!apply_fields(r, &c, false) || !validate(r, &c))
        goto out;
    err = store_campaign_update(r->app->st, &c, &cur);
    if (err == MC_ERR_STATE) {
        reply_state(r, "edit", cur);
        goto out;
    }
    if (err == MC_ERR_OK) {
        campaign_cleanup(&c);
        err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);
    }
    if (err != MC_ERR_OK)
        reply_write_error(r, err);
    else
        reply_json(r, 200, campaign_json(&c));
out:
    campaign_cleanup(&c);
}

void
api_campaign_delete(struct req *r)
{
    enum campaign_status cur = CAMP_DRAFT;
    mc_err err = store_campaign_delete(r->app->st, TENANT(r), CAMPAIGN(r), &cur);

    if (err == MC_ERR_STATE)
        reply_state(r, "delete", cur);
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "campaign");
    else {
        log_info("event=campaign_deleted tenant=%s campaign=%s", TENANT(r), CAMPAIGN(r));
        reply_empty(r, 204);
    }
}

/* ---- lifecycle ---- */

/*
 * 202 Accepted for send and schedule: the work happens later, in the
 * campaign engine and the delivery workers, so the answer says what happens
 * next and where to follow it (also the Location header) rather than
 * showing counts that are not there yet.
 */
static void
reply_accepted(struct req *r, const struct campaign *c, const char *action)
{
    char *campaign_url = req_location(r, NULL, action);
    char *stats_url = req_location(r, "stats", action);
    const char *next =
        c->status == CAMP_SCHEDULED
            ? "At scheduled_at the campaign engine starts the campaign: it creates one message "
              "per active, unsuppressed recipient of the list, and the delivery workers send "
              "them within the rate limits. Follow the progress at stats_url."
            : "The campaign engine is creating one message per active, unsuppressed recipient "
              "of the list; the delivery workers send them within the rate limits. Follow the "
              "progress at stats_url; the campaign is completed when every message is done.";
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "campaign_id", c->id, "status",
                          campaign_status_str(c->status), "scheduled_at",
                          json_time(c->scheduled_at), "next", next, "campaign_url",
                          campaign_url, "stats_url", stats_url);

    r->resp_location = stats_url;
    reply_json(r, 202, o);
    free(campaign_url);
}

static void
transition(struct req *r, enum campaign_event ev, const char *action, int64_t when)
{
    enum campaign_status cur = CAMP_DRAFT;
    struct campaign c = {0};
    mc_err err = store_campaign_transition(r->app->st, TENANT(r), CAMPAIGN(r), ev, when, &c, &cur);

    if (err == MC_ERR_STATE)
        reply_state(r, action, cur);
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "campaign");
    else {
        if (ev == CEV_SCHEDULE || ev == CEV_SEND || ev == CEV_RESUME)
            engine_wake(r->app->engine);
        if (ev == CEV_SCHEDULE || ev == CEV_SEND)
            reply_accepted(r, &c, ev == CEV_SEND ? "/send" : "/schedule");
        else
            reply_json(r, 200, campaign_json(&c));
    }
    campaign_cleanup(&c);
}

/* A draft needs a list with someone to send to before it leaves the draft state. */
static bool
ready_to_leave_draft(struct req *r, const struct campaign *c)
{
    struct recipient_list l = {0};
    mc_err err;

    if (c->status != CAMP_DRAFT)
        return true;
    if (c->list_id[0] == '\0') {
        reply_invalid(r, "recipient_list_id", "the campaign needs a recipient list first");
        return false;
    }
    err = store_list_get(r->app->st, c->tenant_id, c->list_id, &l);
    if (err == MC_ERR_OK && l.active_count == 0) {
        reply_invalid(r, "recipient_list_id", "the recipient list has no active recipients");
        err = MC_ERR_INVALID;
    } else if (err == MC_ERR_NOT_FOUND)
        reply_invalid(r, "recipient_list_id", "the recipient list no longer exists");
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient list");
    recipient_list_cleanup(&l);
    return err == MC_ERR_OK;
}

void
api_campaign_schedule(struct req *r)
{
    struct campaign c = {0};
    int64_t when = 0;
    bool has_time = false;
    mc_err err;

    err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        goto out;
    }
    if (c.status != CAMP_DRAFT) {
        reply_state(r, "schedule", c.status);
        goto out;
    }
    if (!time_field(r, "scheduled_at", &when, &has_time))
        goto out;
    /* One source of truth: the request's time, else the campaign's, else now. */
    if (!has_time || when == 0) {
        when = c.scheduled_at ? c.scheduled_at : time_now_us();
        if (when < time_now_us() - 1000000) {
            reply_invalid(r, "scheduled_at",
                          "the campaign's scheduled_at has passed; give a new one or use /send");
            goto out;
        }
    }
    if (!ready_to_leave_draft(r, &c))
        goto out;
    transition(r, CEV_SCHEDULE, "schedule", when);
out:
    campaign_cleanup(&c);
}

void
api_campaign_send(struct req *r)
{
    struct campaign c = {0};
    mc_err err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "campaign");
    else if (ready_to_leave_draft(r, &c))
        transition(r, CEV_SEND, "send", time_now_us());
    campaign_cleanup(&c);
}

void
api_campaign_pause(struct req *r)
{
    transition(r, CEV_PAUSE, "pause", 0);
}

void
api_campaign_resume(struct req *r)
{
    transition(r, CEV_RESUME, "resume", 0);
}

void
api_campaign_cancel(struct req *r)
{
    transition(r, CEV_CANCEL, "cancel", 0);
}

/* ---- statistics ---- */

/* Messages a minute the tightest enabled limit allows; 0 when nothing limits. */
static double
effective_rate(const struct campaign *c, const struct rate_limits *rl)
{
    double rate = 0;

    if (c->rate_limit_per_minute)
        rate = (double)c->rate_limit_per_minute;
    if (c->rate_limit_per_hour && (rate == 0 || c->rate_limit_per_hour / 60.0 < rate))
        rate = c->rate_limit_per_hour / 60.0;
    if (rl->enabled) {
        double t[3] = {(double)rl->per_minute, rl->per_hour / 60.0, rl->per_day / 1440.0};
        for (int i = 0; i < 3; i++)
            if (t[i] > 0 && (rate == 0 || t[i] < rate))
                rate = t[i];
    }
    return rate;
}

void
api_campaign_stats(struct req *r)
{
    struct campaign c = {0};
    struct rate_limits rl;
    int64_t now = time_now_us(), last_minute = 0, eta = 0;
    double rate;
    json_t *o;
    mc_err err;

    err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);
    if (err == MC_ERR_OK)
        err = store_campaign_sent_since(r->app->st, TENANT(r), CAMPAIGN(r), now - 60 * 1000000LL,
                                        &last_minute);
    if (err == MC_ERR_OK)
        err = store_rate_limits_get(r->app->st, TENANT(r), &rl);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        goto out;
    }
    rate = effective_rate(&c, &rl);
    int64_t remaining = c.counts.pending + c.counts.sending;
    if ((c.status == CAMP_SENDING || c.status == CAMP_SCHEDULED) && remaining > 0 && rate > 0) {
        double minutes = (double)remaining / rate;
        int64_t start = c.status == CAMP_SCHEDULED && c.scheduled_at > now ? c.scheduled_at : now;
        /* Bounded, so a tiny rate can never overflow the time arithmetic. */
        if (minutes < 60.0 * 24 * 365 * 100)
            eta = start + (int64_t)(minutes * 60e6);
    }
    o = json_pack("{s:s, s:s, s:b}", "campaign_id", c.id, "status",
                  campaign_status_str(c.status), "materialized", c.materialized_at != 0);
    counts_json(o, &c);
    /* The seed's CampaignStats names for three of the counts, kept for its clients. */
    json_object_set_new(o, "sent", json_integer(c.counts.sent));
    json_object_set_new(o, "bounced", json_integer(c.counts.bounced));
    json_object_set_new(o, "failed", json_integer(c.counts.failed));
    json_object_set_new(o, "bounced_hard", json_integer(c.counts.bounced_hard));
    json_object_set_new(o, "bounced_soft", json_integer(c.counts.bounced_soft));
    json_object_set_new(o, "complained", json_integer(c.counts.complained));
    json_object_set_new(o, "blocked", json_integer(c.counts.blocked));
    json_object_set_new(o, "progress_percentage", json_real(progress(&c)));
    json_object_set_new(o, "sent_last_minute", json_integer(last_minute));
    json_object_set_new(o, "effective_rate_per_minute",
                        rate > 0 ? json_real(round(rate * 100) / 100) : json_null());
    json_object_set_new(o, "estimated_completion_at", json_time(eta));
    json_object_set_new(o, "started_at", json_time(c.started_at));
    json_object_set_new(o, "completed_at", json_time(c.completed_at));
    reply_json(r, 200, o);
out:
    campaign_cleanup(&c);
}

/* ---- preview ---- */

/* Who the preview is for: a recipient of the campaign's list, or one described in the body. */
static bool
preview_recipient(struct req *r, const struct campaign *c, struct recipient *x,
                  struct compose_recipient *out, char norm[EMAIL_MAX + 1], char **attrs)
{
    const char *rid = NULL, *email = NULL, *why = NULL;
    char lc[EMAIL_MAX + 1];
    mc_err err;

    if (!field_string(r, r->json, "recipient_id", 0, 64, &rid, NULL))
        return false;
    if (rid != NULL && !crypto_uuid_valid(rid)) {
        /* Refused, not cut: a longer value must not name another recipient. */
        reply_invalid(r, "recipient_id", "recipient_id must be a UUID");
        return false;
    }
    if (rid != NULL) {
        char id[MC_UUID_LEN + 1];
        memcpy(id, rid, sizeof(id)); /* a valid UUID is exactly MC_UUID_LEN */
        crypto_uuid_lower(id);
        err = c->list_id[0] ? store_recipient_get(r->app->st, c->tenant_id, c->list_id, id, x)
                            : MC_ERR_NOT_FOUND;
        if (err == MC_ERR_NOT_FOUND) {
            reply_invalid(r, "recipient_id", "no such recipient in the campaign's list");
            return false;
        }
        if (err != MC_ERR_OK) {
            reply_store_error(r, err, "recipient");
            return false;
        }
        *out = (struct compose_recipient){.recipient_id = x->id, .email = x->email,
                                          .name = x->name, .first_name = x->first_name,
                                          .last_name = x->last_name, .attributes = x->attributes,
                                          .preview_link = true};
        return true;
    }
    *out = (struct compose_recipient){.preview_link = true};
    if (!field_string(r, r->json, "email", F_REQUIRED, 1024, &email, NULL) ||
        !field_string(r, r->json, "name", F_NULLABLE | F_ONELINE, 255, &out->name, NULL) ||
        !field_string(r, r->json, "first_name", F_NULLABLE | F_ONELINE, 255, &out->first_name,
                      NULL) ||
        !field_string(r, r->json, "last_name", F_NULLABLE | F_ONELINE, 255, &out->last_name,
                      NULL) ||
        !field_json(r, r->json, "attributes", F_NULLABLE, false, attrs, NULL))
        return false;
    if (!email_normalize(email, norm, lc, &why)) {
        reply_invalid(r, "email", "email is not a valid address: %s", why);
        return false;
    }
    out->email = norm;
    out->attributes = *attrs;
    return true;
}

/* A part as JSON: its rendered text, or null when the campaign has none. */
static json_t *
part_json(bool has, const struct buf *b)
{
    return has ? json_stringn(b->data ? b->data : "", b->len) : json_null();
}

/*
 * Renders the campaign for one recipient with the builder the delivery
 * worker uses (compose.h), so a preview is what the recipient gets.
 */
void
api_campaign_preview(struct req *r)
{
    struct compose_campaign *cc = NULL;
    struct compose_recipient who;
    struct compose_parts parts = {0};
    struct compose_error ce;
    struct recipient x = {0};
    struct campaign c = {0};
    char norm[EMAIL_MAX + 1], *attrs = NULL;
    const char *why = NULL;
    mc_err err;

    err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        goto done;
    }
    if (!preview_recipient(r, &c, &x, &who, norm, &attrs))
        goto done;
    err = compose_campaign_from(r->app->st, r->app->cfg, NULL, &c, &cc, &ce);
    if (err != MC_ERR_OK) {
        if (ce.field != NULL)
            reply_template_error(r, ce.field, &ce.tpl);
        else
            reply_invalid(r, "html_body", "the campaign has no subject or no body");
        goto done;
    }
    err = compose_render(cc, r->app->cfg, r->app->secrets.token_keys[0], &who, &parts, &why);
    if (err != MC_ERR_OK) {
        reply_invalid(r, parts.too_large, "%s renders to more than %lld bytes", parts.too_large,
                      (long long)r->app->cfg->render_max);
        goto done;
    }
    reply_json(r, 200,
               json_pack("{s:s, s:s, s:o, s:o, s:o}", "to", who.email, "unsubscribe_url",
                         parts.unsubscribe_url, "subject", part_json(true, &parts.subject),
                         "html", part_json(parts.has_html, &parts.html), "text",
                         part_json(parts.has_text, &parts.text)));
done:
    compose_parts_cleanup(&parts);
    compose_campaign_free(cc);
    free(attrs);
    recipient_cleanup(&x);
    campaign_cleanup(&c);
}

/* ---- test sends ---- */

#define TEST_MAX_TO 10

/*
 * Sends the campaign, rendered as a recipient would get it, to up to ten
 * addresses now: outside the queue, the statistics and the rate limits.
 */
void
api_campaign_test(struct req *r)
{
    struct compose_campaign *cc = NULL;
    struct dkim_signer *signer = NULL;
    struct egress eg = {0};
    struct smtp_job jobs[TEST_MAX_TO], *jp[TEST_MAX_TO];
    json_t *to = json_object_get(r->json, "to"), *e, *results;
    const char *name = NULL, *why = NULL;
    char norm[TEST_MAX_TO][EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    size_t i, n;
    char *attrs = NULL;
    /* A test send holds this thread until the relay answers: never more at
     * once than test_send_concurrency, nor half the threads, so slow relays
     * cannot take every thread (and /healthz) with them. */
    int cap = (int)r->app->cfg->test_send_concurrency, half = (int)r->app->cfg->http_threads / 2;
    mc_err err;

    if (cap > half)
        cap = half > 0 ? half : 1;
    if (atomic_fetch_add(&r->app->test_sends, 1) >= cap) {
        atomic_fetch_sub(&r->app->test_sends, 1);
        reply_error(r, MC_ERR_TOO_MANY, "%d test sends are in progress (test_send_concurrency); "
                    "try again when one has finished", cap);
        return;
    }
    memset(jobs, 0, sizeof(jobs));
    if (!json_is_array(to) || json_array_size(to) == 0 || json_array_size(to) > TEST_MAX_TO) {
        reply_invalid(r, "to", "to must be an array of 1 to %d addresses", TEST_MAX_TO);
        goto out;
    }
    n = json_array_size(to);
    json_array_foreach(to, i, e)
    {
        if (!json_is_string(e) || !email_normalize(json_string_value(e), norm[i], lc, &why)) {
            reply_invalid(r, "to", "to[%zu] is not a valid address%s%s", i, why ? ": " : "",
                          why ? why : "");
            goto out;
        }
    }
    if (!field_string(r, r->json, "name", F_NULLABLE | F_ONELINE, 255, &name, NULL) ||
        !field_json(r, r->json, "attributes", F_NULLABLE, false, &attrs, NULL))
        goto out;
    err = compose_campaign_load(r->app->st, r->app->cfg, r->app->secrets.dkim_kek, TENANT(r),
                                CAMPAIGN(r), &cc, NULL);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        goto out;
    }
    signer = dkim_signer_new();
    for (i = 0; i < n; i++) {
        struct compose_recipient rc = {.email = norm[i], .name = name, .attributes = attrs};
        char key[MC_UUID_LEN + 1], mid[128];
        crypto_uuid(key);
        if (compose_job(cc, r->app->cfg, signer, r->app->secrets.token_keys[0], &rc, key, &jobs[i],
                        mid, sizeof(mid), &why) != MC_ERR_OK) {
            reply_invalid(r, "to", "the message cannot be built: %s", why);
            goto out;
        }
        jp[i] = &jobs[i];
    }
    /* Through the tenant's pool, like its campaigns' mail. */
    if ((err = store_tenant_egress(r->app->st, TENANT(r), &eg)) != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        goto out;
    }
    if ((err = send_now(r->app->cfg, &eg, jp, (int)n)) != MC_ERR_OK) {
        reply_error(r, err, "the relay cannot be used: %s", mc_err_str(err));
        goto out;
    }
    results = json_array();
    for (i = 0; i < n; i++) {
        char reply[320];
        snprintf(reply, sizeof(reply), "%d%s%s %s", jobs[i].code, jobs[i].enhanced[0] ? " " : "",
                 jobs[i].enhanced, jobs[i].text);
        json_array_append_new(results,
                              json_pack("{s:s, s:s, s:s}", "to", norm[i], "status",
                                        jobs[i].result == SMTP_SENT ? "sent" : "failed", "reply",
                                        jobs[i].code ? reply : jobs[i].text));
    }
    log_info("event=test_send tenant=%s campaign=%s n=%zu", TENANT(r), CAMPAIGN(r), n);
    reply_json(r, 200, json_pack("{s:o}", "results", results));
out:
    for (i = 0; i < TEST_MAX_TO; i++)
        compose_job_cleanup(&jobs[i]);
    free(attrs);
    egress_cleanup(&eg);
    dkim_signer_free(signer);
    compose_campaign_free(cc);
    atomic_fetch_sub(&r->app->test_sends, 1);
}

/*
 * Messages sent per minute over the campaign's life, for the console's
 * chart: from its start to its completion (or now), in buckets of whole
 * minutes, one minute each until there would be more than
 * timeline_max_points of them, wider after.  Every bucket is listed, empty
 * ones with 0, so a client draws it as it is.
 */
void
api_campaign_timeline(struct req *r)
{
    struct campaign c = {0};
    int64_t *counts = NULL, start, end, width = 60 * 1000000LL, max;
    json_t *points, *o;
    int n = 0;
    mc_err err;

    max = r->app->cfg->timeline_max_points;
    err = store_campaign_get(r->app->st, TENANT(r), CAMPAIGN(r), &c);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        goto out;
    }
    start = c.started_at;
    end = c.completed_at ? c.completed_at : time_now_us();
    if (start != 0) {
        int64_t span = end > start ? end - start : 1;
        int64_t minutes = (span + width - 1) / width;
        width *= (minutes + max - 1) / max;
        n = (int)((span + width - 1) / width);
        counts = xcalloc((size_t)n, sizeof(*counts));
        err = store_campaign_timeline(r->app->st, TENANT(r), CAMPAIGN(r), start, width, n,
                                      counts);
        if (err != MC_ERR_OK) {
            reply_store_error(r, err, "campaign");
            goto out;
        }
    }
    points = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(points, json_pack("{s:o, s:I}", "at", json_time(start + i * width),
                                                "sent", (json_int_t)counts[i]));
    o = json_pack("{s:s, s:s, s:I, s:o, s:o, s:o}", "campaign_id", c.id, "status",
                  campaign_status_str(c.status), "bucket_seconds", (json_int_t)(width / 1000000),
                  "start", json_time(start), "end", json_time(start ? end : 0), "points", points);
    reply_json(r, 200, o);
out:
    free(counts);
    campaign_cleanup(&c);
}
