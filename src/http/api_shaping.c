/*
 * api_shaping.c - the operator's shaping table (issue 15): GET and PUT
 * /api/v1/shaping.  Validate, call, reply: the document's rules are
 * app/shaping.c's, the table is the store's.
 */
#include "core/log.h"
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
