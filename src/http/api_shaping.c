/*
 * api_shaping.c - the operator's shaping table (issue 15): GET and PUT
 * /api/v1/shaping, and what automation has in force (GET
 * /api/v1/shaping/state, DELETE .../state/{id} to lift one).  Validate, call, reply: the document's rules are
 * app/shaping.c's, the table is the store's.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"

void
api_shaping_get(struct req *r)
{
    struct shaping sh = {0};
    mc_err err = store_shaping_get(r->app->st, &sh);

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "shaping");
        return;
    }
    reply_json(r, 200, app_shaping_json(&sh));
    shaping_cleanup(&sh);
}

void
api_shaping_put(struct req *r)
{
    struct shaping sh = {0};
    char field[320], why[160];
    mc_err err;

    if (!json_is_object(r->json)) {
        reply_invalid(r, "domains", "the body must be an object with domains and rules");
        return;
    }
    if (app_shaping_parse(r->json, &sh, field, sizeof(field), why, sizeof(why)) != MC_ERR_OK) {
        reply_invalid(r, field, "%s", why);
        return;
    }
    err = store_shaping_put(r->app->st, &sh);
    shaping_cleanup(&sh);
    if (err == MC_ERR_OK)
        err = store_shaping_get(r->app->st, &sh);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "shaping");
        return;
    }
    log_info("event=shaping_put domains=%d rules=%d", sh.ndomains, sh.nrules);
    reply_json(r, 200, app_shaping_json(&sh));
    shaping_cleanup(&sh);
}

static json_t *
state_json(const struct shaping_state *s)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:s, s:o, s:o}", "id", s->id,
                          "egress", s->egress, "site", s->site, "tenant_id",
                          s->tenant_id[0] ? json_string(s->tenant_id) : json_null(), "action",
                          s->action, "rule", s->position, "last_reply", s->last_reply, "since",
                          json_time(s->since), "until", json_time(s->until));

    if (strcmp(s->action, "set_rate") == 0 || strcmp(s->action, "scale_rate") == 0) {
        json_object_set_new(o, "per_second",
                            s->per_second ? json_integer(s->per_second) : json_null());
        json_object_set_new(o, "per_minute",
                            s->per_minute ? json_integer(s->per_minute) : json_null());
    } else if (strcmp(s->action, "set_connections") == 0)
        json_object_set_new(o, "max_connections", json_integer(s->max_connections));
    /* What a deferral-ratio trigger fired on; null for a reply's trigger. */
    json_object_set_new(o, "attempts", s->attempts ? json_integer(s->attempts) : json_null());
    json_object_set_new(o, "deferrals", s->attempts ? json_integer(s->deferrals) : json_null());
    return o;
}

void
api_shaping_state_list(struct req *r)
{
    struct shaping_state *s = NULL;
    json_t *items;
    int n = 0;
    mc_err err = store_shaping_state_list(r->app->st, time_now_us(), &s, &n);

    if (err != MC_ERR_OK) {
        free(s);
        reply_store_error(r, err, "shaping state");
        return;
    }
    items = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(items, state_json(&s[i]));
    free(s);
    reply_json(r, 200, json_pack("{s:o}", "data", items));
}

void
api_shaping_state_lift(struct req *r)
{
    const char *id = req_param(r, "state_id");
    mc_err err = store_shaping_state_lift(r->app->st, id);

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "shaping state");
        return;
    }
    reply_empty(r, 204);
}
