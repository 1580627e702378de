/*
 * cmd_serve.c - `mailcast serve` and `mailcast worker`.
 *
 * DESIGN
 * SIGTERM and SIGINT are blocked before any thread starts, so every thread
 * inherits the mask and only the main thread, in sigwait(), receives them.
 * On either signal the HTTP server stops accepting, lets in-flight requests
 * finish (bounded by shutdown_timeout) and the process exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/log.h"
#include "http/http.h"
#include "webhook/webhook.h"
#include "store/store.h"
#include "worker/delivery.h"
#include "worker/engine.h"

struct store *
cli_open_store(const struct config *cfg)
{
    struct store_params sp = {.pool_size = (int)cfg->db_pool_size,
                              .busy_timeout_ms = (int)cfg->db_busy_timeout_ms};
    struct store *st = NULL;
    int dbv = 0, binv = 0;
    mc_err err;

    err = store_open(cfg->database, &sp, &st);
    if (err != MC_ERR_OK) {
        fprintf(stderr, "mailcast: cannot open the database (%s); see the log line above\n",
                mc_err_str(err));
        return NULL;
    }
    err = store_migrate(st, NULL);
    if (err == MC_ERR_SCHEMA_NEWER && store_schema_version(st, &dbv, &binv) == MC_ERR_OK) {
        fprintf(stderr,
                "mailcast: the database is at schema version %d, newer than this mailcast "
                "(%s, schema %d). Upgrade mailcast; refusing to run.\n",
                dbv, MAILCAST_VERSION, binv);
    } else if (err != MC_ERR_OK)
        fprintf(stderr, "mailcast: cannot migrate the database: %s\n", mc_err_str(err));
    if (err != MC_ERR_OK) {
        store_close(st);
        return NULL;
    }
    return st;
}

static void
print_banner(const struct config *cfg, const char *generated)
{
    printf("mailcast %s serving http://%s/ (database %s)\n", MAILCAST_VERSION, cfg->listen,
           str_prefix(cfg->database, "sqlite:") ? cfg->database : "postgres");
    if (generated != NULL) {
        printf("\nA new operator key was generated. It is shown only this once; keep it:\n\n"
               "    export MAILCAST_KEY=%s\n\n"
               "Try the API:\n"
               "    curl -s -H \"Authorization: Bearer $MAILCAST_KEY\" "
               "-H 'Content-Type: application/json' \\\n"
               "         -d '{\"name\":\"Acme\"}' http://%s/api/v1/tenants\n"
               "    curl -s -H \"Authorization: Bearer $MAILCAST_KEY\" http://%s/api/v1/tenants\n"
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
    struct webhook_sender *webhooks = NULL;
    char *generated = NULL;
    sigset_t set;
    int sig = 0, rc = 1;
    mc_err err;

    if (c->argc > 0) {
        fprintf(stderr, "mailcast serve: unexpected argument \"%s\"\n", c->argv[0]);
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    app.cfg = &c->cfg;
    app.st = cli_open_store(&c->cfg);
    if (app.st == NULL)
        return 1;
    err = auth_operator_init(&app, &generated);
    if (err != MC_ERR_OK) {
        fprintf(stderr, "mailcast: cannot set up the operator key: %s\n", mc_err_str(err));
        goto out;
    }
    err = auth_secrets_init(&app);
    if (err != MC_ERR_OK) {
        fprintf(stderr, "mailcast: cannot set up the server's secrets: %s\n", mc_err_str(err));
        goto out;
    }
    app.engine = engine_start(app.st, &c->cfg);
    if (app.engine == NULL)
        goto out;
    if (c->cfg.deliver) {
        delivery = delivery_start(app.st, &c->cfg, app.token_keys[0], app.dkim_kek);
        app.delivery = delivery;
        if (delivery == NULL) {
            fprintf(stderr, "mailcast: cannot start delivery (relay %s); see the log line above\n",
                    str_prefix(c->cfg.relay, "dir:") ? c->cfg.relay : "smtp");
            goto out;
        }
    }
    /* Webhooks go out from every process that delivers mail. */
    if (c->cfg.deliver && (webhooks = webhook_sender_start(app.st, &c->cfg)) == NULL) {
        fprintf(stderr, "mailcast: cannot start the webhook sender; see the log line above\n");
        goto out;
    }
    srv = http_server_start(&app);
    if (srv == NULL) {
        fprintf(stderr, "mailcast: cannot listen on %s; see the log line above\n",
                c->cfg.listen);
        goto out;
    }
    log_info("event=start version=%s listen=%s backend=%s", MAILCAST_VERSION, c->cfg.listen,
             store_backend(app.st));
    print_banner(&c->cfg, generated);
    while (sigwait(&set, &sig) != 0)
        ;
    log_info("event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
    http_server_stop(srv, (int)c->cfg.shutdown_timeout);
    delivery_stop(delivery, (int)c->cfg.shutdown_timeout);
    delivery = NULL;
    webhook_sender_stop(webhooks, (int)c->cfg.shutdown_timeout);
    webhooks = NULL;
    log_info("event=stopped");
    rc = 0;
out:
    delivery_stop(delivery, 0);
    webhook_sender_stop(webhooks, 0);
    engine_stop(app.engine);
    free(generated);
    store_close(app.st);
    return rc;
}

int
cmd_worker(struct cli_ctx *c)
{
    struct app app = {0};
    struct delivery *delivery = NULL;
    struct webhook_sender *webhooks = NULL;
    sigset_t set;
    int sig = 0, rc = 1;

    if (c->argc > 0) {
        fprintf(stderr, "mailcast worker: unexpected argument \"%s\"\n", c->argv[0]);
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    app.cfg = &c->cfg;
    app.st = cli_open_store(&c->cfg);
    if (app.st == NULL)
        return 1;
    if (auth_secrets_init(&app) != MC_ERR_OK) {
        fprintf(stderr, "mailcast: cannot set up the server's secrets\n");
        goto out;
    }
    /* Workers move campaigns along too: any process may, all do it safely. */
    app.engine = engine_start(app.st, &c->cfg);
    delivery = app.engine ? delivery_start(app.st, &c->cfg, app.token_keys[0], app.dkim_kek)
                          : NULL;
    if (delivery == NULL) {
        fprintf(stderr, "mailcast worker: cannot start delivery; see the log line above\n");
        goto out;
    }
    if ((webhooks = webhook_sender_start(app.st, &c->cfg)) == NULL) {
        fprintf(stderr, "mailcast worker: cannot start the webhook sender; see the log line "
                        "above\n");
        goto out;
    }
    log_info("event=start version=%s role=worker backend=%s", MAILCAST_VERSION,
             store_backend(app.st));
    while (sigwait(&set, &sig) != 0)
        ;
    log_info("event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
    delivery_stop(delivery, (int)c->cfg.shutdown_timeout);
    delivery = NULL;
    webhook_sender_stop(webhooks, (int)c->cfg.shutdown_timeout);
    webhooks = NULL;
    log_info("event=stopped");
    rc = 0;
out:
    delivery_stop(delivery, 0);
    webhook_sender_stop(webhooks, 0);
    engine_stop(app.engine);
    store_close(app.st);
    return rc;
}
