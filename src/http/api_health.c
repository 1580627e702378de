/*
 * api_health.c - liveness, readiness and metrics; no API key needed.
 */
#include "core/util.h"
#include "http.h"
#include "worker/delivery.h"
#include "worker/engine.h"

void
api_healthz(struct req *r)
{
    reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void
api_readyz(struct req *r)
{
    mc_err err = store_ping(r->app->st);

    if (err != MC_ERR_OK) {
        reply_error(r, MC_ERR_DB, "the database is not reachable");
        return;
    }
    reply_json(r, 200,
               json_pack("{s:s, s:s}", "status", "ready", "database", store_backend(r->app->st)));
}

void
api_metrics(struct req *r)
{
    struct buf out;

    int64_t pending = 0, sending = 0;

    buf_init(&out, 0);
    metrics_render(r->app->metrics, &out);
    delivery_metrics(r->app->delivery, &out);
    engine_metrics(r->app->engine, &out);
    bounce_metrics(&r->app->bounce_stats, &out);
    if (store_queue_depth(r->app->st, &pending, &sending) == MC_ERR_OK)
        buf_printf(&out,
                   "# HELP mailcast_queue_messages Messages of live campaigns by state.\n"
                   "# TYPE mailcast_queue_messages gauge\n"
                   "mailcast_queue_messages{state=\"pending\"} %lld\n"
                   "mailcast_queue_messages{state=\"sending\"} %lld\n",
                   (long long)pending, (long long)sending);
    r->status = 200;
    r->resp_body = buf_steal(&out);
    r->resp_type = "text/plain; version=0.0.4; charset=utf-8";
    r->answered = true;
}
