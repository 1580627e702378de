/*
 * api_unsubscribes.c - the tenant's suppression list: list, add, remove.
 * Imports are in api_import.c; the public one-click endpoints come with
 * the unsubscribe issue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/email.h"
#include "core/log.h"
#include "http.h"


json_t *
unsubscribe_json(const struct unsubscribe *u)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", u->id, "email", u->email,
                          "source", unsub_source_str(u->source), "campaign_id",
                          json_str_or_null(u->campaign_id[0] ? u->campaign_id : NULL), "reason",
                          json_str_or_null(u->reason), "unsubscribed_at",
                          json_time(u->unsubscribed_at));

    json_object_set_new(o, "cause", json_string(unsub_cause_str(u->cause)));
    json_object_set_new(o, "message_id",
                        json_str_or_null(u->message_id[0] ? u->message_id : NULL));
    json_object_set_new(o, "expires_at", json_time(u->expires_at));
    return o;
}

void
api_unsub_list(struct req *r)
{
    const char *source = req_query(r, "source"), *q = req_query(r, "q");
    struct unsubscribe_vec v = {0};
    struct page pg;
    int src = -1;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    if (source != NULL && (src = unsub_source_parse(source)) < 0) {
        reply_invalid(r, "source", "source must be manual, link, bounce, complaint or import");
        return;
    }
    if (q != NULL && strlen(q) > 254) {
        reply_invalid(r, "q", "q must be at most 254 bytes");
        return;
    }
    err = store_unsub_list(r->app->st, TENANT(r), src, q && *q ? q : NULL, &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, unsubscribe_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    unsubscribe_vec_cleanup(&v);
}

void
api_unsub_create(struct req *r)
{
    const char *email = NULL, *reason = NULL, *why = NULL;
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    struct unsubscribe u = {0};
    bool created = false;
    mc_err err;

    if (!field_string(r, r->json, "email", F_REQUIRED, 1024, &email, NULL) ||
        !field_string(r, r->json, "reason", F_NULLABLE, 1000, &reason, NULL))
        return;
    if (!email_normalize(email, norm, lc, &why)) {
        reply_invalid(r, "email", "email is not a valid address: %s", why);
        return;
    }
    err = store_unsub_add(r->app->st, TENANT(r), norm, lc, UNSUB_MANUAL, NULL, reason, &created,
                          &u);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    log_info("event=suppressed tenant=%s source=manual new=%d", TENANT(r), created);
    if (created)
        reply_created(r, unsubscribe_json(&u), u.email, NULL);
    else
        reply_json(r, 200, unsubscribe_json(&u));
    unsubscribe_cleanup(&u);
}

void
api_unsub_delete(struct req *r)
{
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    const char *why = NULL;
    mc_err err;

    if (!email_normalize(req_param(r, "email"), norm, lc, &why)) {
        reply_error(r, MC_ERR_NOT_FOUND, "that address is not on the suppression list");
        return;
    }
    err = store_unsub_delete(r->app->st, TENANT(r), lc);
    if (err == MC_ERR_NOT_FOUND)
        reply_error(r, err, "that address is not on the suppression list");
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "tenant");
    else {
        log_info("event=unsuppressed tenant=%s", TENANT(r));
        reply_empty(r, 204);
    }
}
