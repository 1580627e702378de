/*
 * api_events.c - the tenant's event log (GET .../events, a cursor over
 * time-ordered ids) and a campaign's messages (GET .../campaigns/{id}/messages,
 * "who did not get it").  Handlers validate, call the store, reply.
 *
 * Events are written by the store functions that make the changes
 * (store_events.c); nothing here writes.
 */
#include <string.h>

#include "core/email.h"
#include "http.h"


static const char *const message_statuses[] = {"pending", "sending", "sent",      "delivered",
                                               "bounced", "failed",  "cancelled", "suppressed"};

/* An event as the API and webhooks show it: id, type, created_at and data. */
json_t *
event_json(const struct event *e)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "id", e->id, "type", e->type, "created_at",
                     json_time(e->created_at), "data", json_from_text(e->data));
}

/* Reads ?email= into lc; false after replying 422. */
static bool
query_email(struct req *r, char lc[EMAIL_MAX + 1], bool *present)
{
    const char *email = req_query(r, "email"), *why = NULL;
    char norm[EMAIL_MAX + 1];

    *present = email != NULL && *email != '\0';
    if (!*present)
        return true;
    if (!email_normalize(email, norm, lc, &why)) {
        reply_invalid(r, "email", "email is not a valid address: %s", why);
        return false;
    }
    return true;
}

void
api_event_list(struct req *r)
{
    const char *after = req_query(r, "after"), *type = req_query(r, "type"),
               *cid = req_query(r, "campaign_id"), *order = req_query(r, "order"),
               *limit = req_query(r, "limit");
    struct event_filter f = {.limit = 100};
    int64_t max = r->app->cfg->max_page_size, lim = max < 100 ? max : 100;
    char lc[EMAIL_MAX + 1];
    struct event_vec v = {0};
    bool has_email;
    json_t *items;
    mc_err err;

    if (limit != NULL && !parse_int64(limit, 1, max, &lim)) {
        reply_invalid(r, "limit", "limit must be an integer from 1 to %lld", (long long)max);
        return;
    }
    f.limit = (int)lim;
    if (after != NULL && *after && !crypto_uuid_valid(after)) {
        reply_invalid(r, "after", "after must be an event id");
        return;
    }
    /* Ids compare as stored, lowercase (SQLite compares text exactly). */
    char after_lc[MC_UUID_LEN + 1] = "", cid_lc[MC_UUID_LEN + 1] = "";
    if (after != NULL && *after) {
        memcpy(after_lc, after, sizeof(after_lc));
        crypto_uuid_lower(after_lc);
        after = after_lc;
    }
    if (type != NULL && *type && !event_type_valid(type)) {
        reply_invalid(r, "type", "type must be an event type, such as message.sent");
        return;
    }
    if (cid != NULL && *cid && !crypto_uuid_valid(cid)) {
        reply_invalid(r, "campaign_id", "campaign_id must be a campaign id");
        return;
    }
    if (cid != NULL && *cid) {
        memcpy(cid_lc, cid, sizeof(cid_lc));
        crypto_uuid_lower(cid_lc);
        cid = cid_lc;
    }
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        reply_invalid(r, "order", "order must be asc (oldest first) or desc (newest first)");
        return;
    }
    if (!query_email(r, lc, &has_email))
        return;
    f.after = after && *after ? after : NULL;
    f.type = type && *type ? type : NULL;
    f.campaign_id = cid && *cid ? cid : NULL;
    f.email_lc = has_email ? lc : NULL;
    f.ascending = order != NULL && strcmp(order, "asc") == 0;
    err = store_event_list(r->app->st, TENANT(r), &f, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, event_json(&v.items[i]));
    /* A full page may have more behind it: its last id is the next cursor. */
    reply_json(r, 200,
               json_pack("{s:o, s:I, s:o}", "data", items, "limit", (json_int_t)f.limit,
                         "next_after",
                         v.n == f.limit ? json_string(v.items[v.n - 1].id) : json_null()));
    event_vec_cleanup(&v);
}

static json_t *
message_json(const struct message_info *m)
{
    return json_pack("{s:s, s:o, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", m->id,
                     "recipient_id",
                     json_str_or_null(m->recipient_id[0] ? m->recipient_id : NULL), "email",
                     m->email ? m->email : "", "status", m->status, "attempts", m->attempts,
                     "last_smtp_code",
                     m->last_reply_code ? json_integer(m->last_reply_code) : json_null(),
                     "last_smtp_reply", json_str_or_null(m->last_error), "relay_queue_id",
                     json_str_or_null(m->relay_queue_id), "sent_at", json_time(m->sent_at),
                     "failed_at", json_time(m->failed_at), "next_attempt_at",
                     json_time(m->next_attempt_at), "created_at", json_time(m->created_at));
}

void
api_campaign_messages(struct req *r)
{
    const char *status = req_query(r, "status");
    struct message_vec v = {0};
    char lc[EMAIL_MAX + 1];
    bool has_email, ok = status == NULL || *status == '\0';
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    for (size_t i = 0; !ok && i < sizeof(message_statuses) / sizeof(message_statuses[0]); i++)
        ok = strcmp(status, message_statuses[i]) == 0;
    if (!ok) {
        reply_invalid(r, "status",
                      "status must be pending, sending, sent, delivered, bounced, failed, "
                      "cancelled or suppressed");
        return;
    }
    if (!query_email(r, lc, &has_email))
        return;
    err = store_campaign_messages(r->app->st, TENANT(r), req_param(r, "campaign_id"),
                                  status && *status ? status : NULL, has_email ? lc : NULL, &pg,
                                  &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "campaign");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, message_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    message_vec_cleanup(&v);
}
