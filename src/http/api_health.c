/*
 * api_health.c - liveness and readiness (no API key needed) and metrics (the
 * operator key, or a listener of their own).
 */
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "http.h"
#include "worker/delivery.h"
#include "worker/engine.h"

void
api_healthz(struct req *r)
{
    reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/*
 * Ready means the database answers and can take a write: a full disk is no
 * passing outage, and monitoring must see it (issue 12 finding 18).
 */
void
api_readyz(struct req *r)
{
    mc_err err = store_ping(r->app->st);

    if (err != MC_ERR_OK) {
        reply_error(r, MC_ERR_DB, "the database is not reachable");
        return;
    }
    err = store_write_check(r->app->st);
    if (err == MC_ERR_STORAGE_FULL) {
        reply_json(r, 503,
                   json_pack("{s:{s:s, s:s}, s:s, s:s, s:b}", "error", "code",
                             mc_err_code(err), "message",
                             "the database has no space left: writes fail until space is freed",
                             "status", "not_ready", "database", store_backend(r->app->st),
                             "writable", 0));
        return;
    }
    if (err != MC_ERR_OK) {
        reply_error(r, MC_ERR_DB, "the database does not take writes");
        return;
    }
    reply_json(r, 200,
               json_pack("{s:s, s:s}", "status", "ready", "database", store_backend(r->app->st)));
}

char *
api_metrics_text(struct app *app)
{
    struct buf out;
    int64_t pending = 0, sending = 0;

    buf_init(&out, 0);
    metrics_render(app->metrics, &out);
    delivery_metrics(app->delivery, &out);
    engine_metrics(app->engine, &out);
    bounce_metrics(&app->bounce_stats, &out);
    if (store_queue_depth(app->st, &pending, &sending) == MC_ERR_OK)
        buf_printf(&out,
                   "# HELP mailcast_queue_messages Messages of live campaigns by state.\n"
                   "# TYPE mailcast_queue_messages gauge\n"
                   "mailcast_queue_messages{state=\"pending\"} %lld\n"
                   "mailcast_queue_messages{state=\"sending\"} %lld\n",
                   (long long)pending, (long long)sending);
    {
        struct shaping_state *s = NULL;
        int n = 0;
        if (store_shaping_state_list(app->st, time_now_us(), &s, &n) == MC_ERR_OK) {
            buf_puts(&out, "# HELP mailcast_shaping_in_force Automation actions in force by "
                           "site (GET /api/v1/shaping/state).\n"
                           "# TYPE mailcast_shaping_in_force gauge\n"
                           "# HELP mailcast_shaping_rate_per_second The rate automation set "
                           "for a site.\n# TYPE mailcast_shaping_rate_per_second gauge\n");
            for (int i = 0; i < n; i++) {
                buf_printf(&out,
                           "mailcast_shaping_in_force{egress=\"%s\",site=\"%s\",action=\"%s\"} "
                           "1\n",
                           s[i].egress, s[i].site, s[i].action);
                if (strcmp(s[i].action, "set_rate") == 0 ||
                    strcmp(s[i].action, "scale_rate") == 0) {
                    double ps = s[i].per_second ? (double)s[i].per_second : 1e18;
                    double pm = s[i].per_minute ? (double)s[i].per_minute / 60 : 1e18;
                    buf_printf(&out,
                               "mailcast_shaping_rate_per_second{egress=\"%s\",site=\"%s\"} "
                               "%g\n",
                               s[i].egress, s[i].site, ps < pm ? ps : pm);
                }
            }
        }
        free(s);
    }
    return buf_steal(&out);
}

/*
 * Tenant ids and volumes are no public matter: on the API port /metrics
 * takes the operator key (the route's flag), and with --metrics-listen it
 * is served there only, without a key, and is not found here.
 */
void
api_metrics(struct req *r)
{
    if (r->app->cfg->metrics_listen != NULL) {
        reply_error(r, MC_ERR_NO_ROUTE, "metrics are served on metrics_listen");
        return;
    }
    r->status = 200;
    r->resp_body = api_metrics_text(r->app);
    r->resp_type = METRICS_CONTENT_TYPE;
    r->answered = true;
}
