/*
 * cmd_worker.c - `mailcast worker`: the campaign engine and a delivery
 * worker, without the API, so many processes on many machines can share
 * one PostgreSQL database.  It needs nothing from http/: the secrets come
 * from the application layer (app/app.h).
 *
 * On SIGTERM or SIGINT (see daemon.c) the worker hands back what it has not
 * sent and the process exits 0.
 */
#include <stdio.h>

#include "app/app.h"
#include "bounce/listener.h"
#include "cli.h"
#include "core/log.h"
#include "store/store.h"
#include "worker/delivery.h"
#include "webhook/webhook.h"
#include "worker/engine.h"

int
cmd_worker(struct cli_ctx *c)
{
    struct app app = {0};
    struct delivery *delivery = NULL;
    struct bounce_listener *bounces = NULL;
    struct bounce_intake_ctx bounce_ctx;
    struct webhook_sender *webhooks = NULL; /* owned */
    sigset_t set;
    int rc;

    if ((rc = cli_daemon_open(c, "worker", &set, &app)) != 0)
        return rc;
    rc = 1;
    /* Workers move campaigns along too: any process may, all do it safely. */
    app.engine = engine_start(app.st, &c->cfg);
    delivery = app.engine ? delivery_start(app.st, &c->cfg, &app.secrets) : NULL;
    if (delivery == NULL) {
        fprintf(stderr, "mailcast worker: cannot start delivery; see the log line above\n");
        goto out;
    }
    if (!cli_bounce_listener_start(&app, &bounce_ctx, delivery, &bounces))
        goto out;
    if ((webhooks = webhook_sender_start(app.st, &c->cfg)) == NULL) {
        fprintf(stderr, "mailcast worker: cannot start the webhook sender; see the log line "
                        "above\n");
        goto out;
    }
    cli_daemon_wire(&app, delivery, webhooks);
    log_info("event=start version=%s role=worker backend=%s", MAILCAST_VERSION,
             store_backend(app.st));
    cli_daemon_wait(&set);
    bounce_listener_stop(bounces);
    bounces = NULL;
    cli_daemon_unwire(&app, delivery);
    delivery_stop(delivery, (int)c->cfg.shutdown_timeout);
    delivery = NULL;
    webhook_sender_stop(webhooks, (int)c->cfg.shutdown_timeout);
    webhooks = NULL;
    log_info("event=stopped");
    rc = 0;
out:
    cli_daemon_unwire(&app, delivery);
    bounce_listener_stop(bounces);
    delivery_stop(delivery, 0);
    webhook_sender_stop(webhooks, 0);
    engine_stop(app.engine);
    cli_daemon_close(&app);
    return rc;
}
