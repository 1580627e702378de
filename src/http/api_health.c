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

/* Whether a and b are about the same (egress, site), and, with action, the same action. */
static bool
same_series(const struct shaping_state *a, const struct shaping_state *b, bool action)
{
    return strcmp(a->egress, b->egress) == 0 && strcmp(a->site, b->site) == 0 &&
           (!action || strcmp(a->action, b->action) == 0);
}

static bool
sets_rate(const struct shaping_state *x)
{
    return strcmp(x->action, "set_rate") == 0 || strcmp(x->action, "scale_rate") == 0;
}

/*
 * What automation has in force, one series per label set (Prometheus
 * refuses a scrape that repeats one): the actions in force counted per
 * (egress, site, action), since several tenants' may share a site, and a
 * site's rate the least of the rates set for it (set_rate and scale_rate
 * may both be in force).  Each family's lines stay together.  Written at a
 * series' first state; the states are few.
 */
static void
shaping_metrics(struct app *app, struct buf *out)
{
    struct shaping_state *s = NULL; /* owned */
    int n = 0;

    if (store_shaping_state_list(app->st, time_now_us(), &s, &n) != MC_ERR_OK) {
        free(s);
        return;
    }
    buf_puts(out, "# HELP mailcast_shaping_in_force Automation actions in force by site "
                  "(GET /api/v1/shaping/state).\n# TYPE mailcast_shaping_in_force gauge\n");
    for (int i = 0; i < n; i++) {
        int count = 0, j;
        for (j = 0; j < i && !same_series(&s[j], &s[i], true); j++)
            ;
        if (j < i)
            continue;
        for (j = i; j < n; j++)
            count += same_series(&s[j], &s[i], true);
        buf_printf(out, "mailcast_shaping_in_force{egress=\"%s\",site=\"%s\",action=\"%s\"} %d\n",
                   s[i].egress, s[i].site, s[i].action, count);
    }
    buf_puts(out, "# HELP mailcast_shaping_rate_per_second The rate automation set for a site "
                  "(the least, when several are in force).\n"
                  "# TYPE mailcast_shaping_rate_per_second gauge\n");
    for (int i = 0; i < n; i++) {
        double least = 1e18;
        int j;
        if (!sets_rate(&s[i]))
            continue;
        for (j = 0; j < i && !(sets_rate(&s[j]) && same_series(&s[j], &s[i], false)); j++)
            ;
        if (j < i)
            continue;
        for (j = i; j < n; j++) {
            if (!sets_rate(&s[j]) || !same_series(&s[j], &s[i], false))
                continue;
            double ps = s[j].per_second ? (double)s[j].per_second : 1e18;
            double pm = s[j].per_minute ? (double)s[j].per_minute / 60 : 1e18;
            least = ps < least ? ps : least;
            least = pm < least ? pm : least;
        }
        buf_printf(out, "mailcast_shaping_rate_per_second{egress=\"%s\",site=\"%s\"} %g\n",
                   s[i].egress, s[i].site, least);
    }
    free(s);
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
    shaping_metrics(app, &out);
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
