/*
 * api_webhooks.c - a tenant's webhook endpoints: create, list, get, patch,
 * delete, rotate the secret, send a test, list deliveries, retry one,
 * replay a time range.  Handlers validate, call the store, reply.
 *
 * The secret is shown once, in the answer to create and rotate-secret.
 * Sending is src/webhook/'s; the URL guard is too (webhook_url_check), run
 * here on create and on every URL change.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"
#include "webhook/webhook.h"

#define WEBHOOK(r) req_param((r), "webhook_id")
#define MAX_TYPES 32

json_t *
webhook_json(const struct webhook *w)
{
    json_t *types = json_array();

    if (w->event_types && strcmp(w->event_types, "*") == 0) {
        json_array_append_new(types, json_string("*"));
    } else if (w->event_types) {
        const char *p = w->event_types;
        while (*p) {
            size_t n;
            p += *p == ',';
            n = strcspn(p, ",");
            if (n > 0)
                json_array_append_new(types, json_stringn(p, n));
            p += n;
        }
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o}", "id", w->id, "url",
                     w->url ? w->url : "", "description", json_str_or_null(w->description),
                     "events", types, "enabled", w->enabled, "disabled_reason",
                     json_str_or_null(w->disabled_reason), "previous_secret_expires_at",
                     json_time(w->previous_expires_at), "failing_since",
                     json_time(w->failing_since), "last_success_at",
                     json_time(w->last_success_at), "created_at", json_time(w->created_at),
                     "updated_at", json_time(w->updated_at));
}

/* Reads "url": checked against the guard, host resolved.  false after replying 422. */
static bool
read_url(struct req *r, unsigned flags, const char **out)
{
    struct webhook_guard g;
    const char *why = NULL;

    if (!field_string(r, r->json, "url", flags | F_NONEMPTY | F_ONELINE, 2048, out, NULL))
        return false;
    if (*out == NULL)
        return true;
    if (webhook_guard_init(&g, r->app->cfg) != MC_ERR_OK) {
        reply_error(r, MC_ERR_CONFIG, "the server's webhook settings are invalid");
        return false;
    }
    if (!webhook_url_check(&g, *out, true, &why)) {
        reply_invalid(r, "url", "%s", why);
        return false;
    }
    return true;
}

/* Reads "events" into the stored form (owned *out, NULL when absent). */
static bool
read_events(struct req *r, char **out)
{
    json_t *a = json_object_get(r->json, "events"), *v;
    struct buf b;
    size_t i;

    *out = NULL;
    if (a == NULL)
        return true;
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAX_TYPES) {
        reply_invalid(r, "events", "events must be a list of 1 to %d event types, or [\"*\"]",
                      MAX_TYPES);
        return false;
    }
    buf_init(&b, 4096);
    buf_append(&b, ",", 1);
    json_array_foreach(a, i, v)
    {
        const char *t = json_string_value(v);
        if (t && strcmp(t, "*") == 0 && json_array_size(a) == 1) {
            buf_cleanup(&b);
            *out = xstrdup("*");
            return true;
        }
        if (t == NULL || !event_type_valid(t) || strcmp(t, "webhook.test") == 0) {
            buf_cleanup(&b);
            reply_invalid(r, "events",
                          "events[%zu] is not an event type one can subscribe to (such as "
                          "message.sent), or \"*\" alone",
                          i);
            return false;
        }
        buf_append(&b, t, strlen(t));
        buf_append(&b, ",", 1);
    }
    *out = buf_steal(&b);
    return true;
}

void
api_webhook_create(struct req *r)
{
    const char *url = NULL, *desc = NULL;
    struct webhook w = {0};
    char *types = NULL, *secret = NULL;
    bool enabled = true, has_enabled = false;
    json_t *out;
    mc_err err;

    if (!read_url(r, F_REQUIRED, &url) ||
        !field_string(r, r->json, "description", F_NULLABLE, 1000, &desc, NULL) ||
        !field_bool(r, r->json, "enabled", 0, &enabled, &has_enabled) || !read_events(r, &types))
        goto out;
    memcpy(w.tenant_id, TENANT(r), sizeof(w.tenant_id) - 1);
    w.url = xstrdup(url);
    w.description = desc ? xstrdup(desc) : NULL;
    w.event_types = types ? types : xstrdup("*");
    types = NULL;
    w.enabled = enabled;
    secret = webhook_secret_new();
    err = store_webhook_create(r->app->st, &w, secret, (int)r->app->cfg->webhook_max_endpoints);
    if (err == MC_ERR_LIMIT) {
        reply_error(r, err, "a tenant may have at most %lld webhook endpoints",
                    (long long)r->app->cfg->webhook_max_endpoints);
        goto out;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        goto out;
    }
    log_info("event=webhook_created tenant=%s webhook=%s", w.tenant_id, w.id);
    out = webhook_json(&w);
    json_object_set_new(out, "secret", json_string(secret));
    reply_created(r, out, w.id, NULL);
out:
    if (secret) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    free(types);
    webhook_cleanup(&w);
}

void
api_webhook_list(struct req *r)
{
    struct webhook_vec v = {0};
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    err = store_webhook_list(r->app->st, TENANT(r), &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, webhook_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    webhook_vec_cleanup(&v);
}

void
api_webhook_get(struct req *r)
{
    struct webhook w = {0};
    mc_err err = store_webhook_get(r->app->st, TENANT(r), WEBHOOK(r), &w);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "webhook");
    else
        reply_json(r, 200, webhook_json(&w));
    webhook_cleanup(&w);
}

void
api_webhook_patch(struct req *r)
{
    struct webhook_patch p = {0};
    struct webhook w = {0};
    char *types = NULL;
    bool has_desc = false;
    mc_err err;

    if (!read_url(r, 0, &p.url) ||
        !field_string(r, r->json, "description", F_NULLABLE, 1000, &p.description, &has_desc) ||
        !field_bool(r, r->json, "enabled", 0, &p.enabled, &p.has_enabled) ||
        !read_events(r, &types))
        goto out;
    p.set_description = has_desc;
    p.event_types = types;
    err = store_webhook_update(r->app->st, TENANT(r), WEBHOOK(r), &p, &w);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "webhook");
        goto out;
    }
    reply_json(r, 200, webhook_json(&w));
out:
    free(types);
    webhook_cleanup(&w);
}

void
api_webhook_delete(struct req *r)
{
    mc_err err = store_webhook_delete(r->app->st, TENANT(r), WEBHOOK(r));

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "webhook");
    else {
        log_info("event=webhook_deleted tenant=%s webhook=%s", TENANT(r), WEBHOOK(r));
        reply_empty(r, 204);
    }
}

void
api_webhook_rotate(struct req *r)
{
    int64_t grace = r->app->cfg->webhook_secret_grace_hours * 3600;
    struct webhook w = {0};
    char *secret = NULL;
    json_t *out;
    mc_err err;

    /* The grace period may be shortened (0: the old secret stops signing now). */
    if (r->json && !field_int(r, r->json, "grace_seconds", 0, 0, grace, &grace, NULL))
        return;
    secret = webhook_secret_new();
    err = store_webhook_rotate(r->app->st, TENANT(r), WEBHOOK(r), secret,
                               grace > 0 ? time_now_us() + grace * 1000000LL : 0, &w);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "webhook");
    } else {
        log_info("event=webhook_secret_rotated tenant=%s webhook=%s", TENANT(r), WEBHOOK(r));
        out = webhook_json(&w);
        json_object_set_new(out, "secret", json_string(secret));
        reply_json(r, 200, out);
    }
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    webhook_cleanup(&w);
}

void
api_webhook_test(struct req *r)
{
    char event_id[MC_UUID_LEN + 1];
    mc_err err = store_webhook_test(r->app->st, TENANT(r), WEBHOOK(r), event_id);

    if (err == MC_ERR_STATE)
        reply_error(r, err, "the webhook is disabled; enable it first");
    else if (err == MC_ERR_LIMIT)
        reply_error(r, err, "%d tests still wait for this endpoint; see its deliveries",
                    WEBHOOK_TESTS_WAITING_MAX);
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "webhook");
    else
        reply_json(r, 202, json_pack("{s:s}", "event_id", event_id));
}

static json_t *
delivery_json(const struct webhook_delivery *x)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", x->id,
                     "event_id", x->event_id, "event_type", x->event_type, "status", x->status,
                     "attempts", x->attempts, "last_status_code",
                     x->last_status_code ? json_integer(x->last_status_code) : json_null(),
                     "last_latency_ms",
                     x->last_attempt_at ? json_integer(x->last_latency_ms) : json_null(),
                     "last_error_class", json_str_or_null(x->last_error), "next_attempt_at",
                     json_time(x->next_attempt_at), "last_attempt_at",
                     json_time(x->last_attempt_at), "created_at", json_time(x->created_at),
                     "completed_at", json_time(x->completed_at));
}

void
api_webhook_deliveries(struct req *r)
{
    static const char *const statuses[] = {"pending", "sending", "succeeded", "failed"};
    const char *status = req_query(r, "status");
    struct webhook_delivery_vec v = {0};
    bool ok = status == NULL || *status == '\0';
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    for (size_t i = 0; !ok && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        ok = strcmp(status, statuses[i]) == 0;
    if (!ok) {
        reply_invalid(r, "status", "status must be pending, sending, succeeded or failed");
        return;
    }
    err = store_webhook_deliveries(r->app->st, TENANT(r), WEBHOOK(r),
                                   status && *status ? status : NULL, &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "webhook");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, delivery_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    webhook_delivery_vec_cleanup(&v);
}

void
api_webhook_delivery_retry(struct req *r)
{
    mc_err err = store_webhook_delivery_retry(r->app->st, TENANT(r), WEBHOOK(r),
                                              req_param(r, "delivery_id"));

    if (err == MC_ERR_STATE)
        reply_error(r, err, "the delivery is still pending or being sent");
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "delivery");
    else
        reply_json(r, 202, json_pack("{s:s}", "status", "pending"));
}

void
api_webhook_replay(struct req *r)
{
    const char *from_s = NULL, *to_s = NULL;
    int64_t from = 0, to = 0, queued = 0;
    mc_err err;

    if (!field_string(r, r->json, "from", F_REQUIRED, 64, &from_s, NULL) ||
        !field_string(r, r->json, "to", 0, 64, &to_s, NULL))
        return;
    if (!time_parse_rfc3339(from_s, &from)) {
        reply_invalid(r, "from", "from must be an RFC 3339 time");
        return;
    }
    if (to_s != NULL && !time_parse_rfc3339(to_s, &to)) {
        reply_invalid(r, "to", "to must be an RFC 3339 time");
        return;
    }
    if (to_s == NULL)
        to = time_now_us();
    if (to <= from) {
        reply_invalid(r, "to", "to must be after from");
        return;
    }
    err = store_webhook_replay(r->app->st, TENANT(r), WEBHOOK(r), from, to,
                               (int)r->app->cfg->webhook_replay_max, &queued);
    if (err == MC_ERR_LIMIT)
        reply_error(r, err, "the range holds more than %lld events; replay a shorter one",
                    (long long)r->app->cfg->webhook_replay_max);
    else if (err == MC_ERR_STATE)
        reply_error(r, err, "the webhook is disabled; enable it first");
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "webhook");
    else {
        log_info("event=webhook_replay tenant=%s webhook=%s queued=%lld", TENANT(r), WEBHOOK(r),
                 (long long)queued);
        reply_json(r, 202, json_pack("{s:I}", "queued", (json_int_t)queued));
    }
}
