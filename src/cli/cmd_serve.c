/*
 * cmd_serve.c - `mailcast serve`: the API, the campaign engine and a delivery
 * worker in one process (cmd_worker.c runs the last two alone).
 *
 * On SIGTERM or SIGINT (see daemon.c) the HTTP server stops accepting, lets
 * in-flight requests finish (bounded by shutdown_timeout), the delivery
 * worker hands back what it has not sent, and the process exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "bounce/listener.h"
#include "cli.h"
#include "core/log.h"
#include "http/http.h"
#include "store/store.h"
#include "worker/delivery.h"
#include "webhook/webhook.h"
#include "worker/engine.h"

static void
print_banner(const struct config *cfg, const char *generated)
{
    printf("mailcast %s serving http://%s/ (database %s)\n", MAILCAST_VERSION, cfg->listen,
           str_prefix(cfg->database, "sqlite:") ? cfg->database : "postgres");
    if (generated != NULL) {
        printf("\nA new operator key was generated. It is shown only this once; keep it:\n\n"
               "    export OP=%s\n\n"
               "Try the API:\n"
               "    curl -s -H \"Authorization: Bearer $OP\" "
               "-H 'Content-Type: application/json' \\\n"
               "         -d '{\"name\":\"Acme\"}' http://%s/api/v1/tenants\n"
               "    curl -s -H \"Authorization: Bearer $OP\" http://%s/api/v1/tenants\n"
               "\nREADME.md has the full tour; docs/openapi.yaml every endpoint.\n",
               generated, cfg->listen, cfg->listen);
    } else {
        printf("Operator key: %s. Health: curl http://%s/healthz\n",
               cfg->operator_key ? "from MAILCAST_OPERATOR_KEY / configuration"
                                 : "the one printed at the first start",
               cfg->listen);
    }
    fflush(stdout);
}

int
cmd_serve(struct cli_ctx *c)
{
    struct app app = {0};
    struct http_server *srv = NULL;
    struct delivery *delivery = NULL;
    struct bounce_listener *bounces = NULL;
    struct bounce_intake_ctx bounce_ctx;
    struct webhook_sender *webhooks = NULL; /* owned */
    char *generated = NULL;
    sigset_t set;
    int rc;
    mc_err err;

    if ((rc = cli_daemon_open(c, "serve", &set, &app)) != 0)
        return rc;
    rc = 1;
    err = app_operator_init(&app, &generated);
    if (err != MC_ERR_OK) {
        fprintf(stderr, "mailcast: cannot set up the operator key: %s\n", mc_err_str(err));
        goto out;
    }
    app.engine = engine_start(app.st, &c->cfg);
    if (app.engine == NULL)
        goto out;
    if (c->cfg.deliver) {
        delivery = delivery_start(app.st, &c->cfg, &app.secrets);
        app.delivery = delivery;
        if (delivery == NULL) {
            fprintf(stderr, "mailcast: cannot start delivery (relay %s); see the log line above\n",
                    str_prefix(c->cfg.relay, "dir:") ? c->cfg.relay : "smtp");
            goto out;
        }
    }
    if (!cli_bounce_listener_start(&app, &bounce_ctx, delivery, &bounces))
        goto out;
    /* Webhooks go out from every process that delivers mail. */
    if (c->cfg.deliver && (webhooks = webhook_sender_start(app.st, &c->cfg)) == NULL) {
        fprintf(stderr, "mailcast: cannot start the webhook sender; see the log line above\n");
        goto out;
    }
    cli_daemon_wire(&app, delivery, webhooks);
    srv = http_server_start(&app);
    if (srv == NULL) {
        fprintf(stderr, "mailcast: cannot listen on %s; see the log line above\n",
                c->cfg.listen);
        goto out;
    }
    log_info("event=start version=%s listen=%s backend=%s", MAILCAST_VERSION, c->cfg.listen,
             store_backend(app.st));
    print_banner(&c->cfg, generated);
    cli_daemon_wait(&set);
    http_server_stop(srv, (int)c->cfg.shutdown_timeout);
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
    if (rc != 0 && generated != NULL) /* its hash is stored: show it, or it is lost */
        fprintf(stderr, "mailcast: the operator key generated at this first start is %s\n",
                generated);
    delivery_stop(delivery, 0);
    webhook_sender_stop(webhooks, 0);
    engine_stop(app.engine);
    free(generated);
    cli_daemon_close(&app);
    return rc;
}
