/*
 * daemon.c - what `mailcast serve` and `mailcast worker` share: the store
 * opened and migrated, the secrets loaded into the process state, signals
 * set up, and the wait for the one that stops the process.
 *
 * DESIGN
 * SIGTERM and SIGINT are blocked before any thread starts, so every thread
 * inherits the mask and only the main thread, in sigwait(), receives them.
 * SIGPIPE is ignored: a peer that goes away is an error on its socket.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "bounce/listener.h"
#include "cli.h"
#include "core/log.h"
#include "store/store.h"
#include "webhook/webhook.h"
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

int
cli_daemon_open(struct cli_ctx *c, const char *name, sigset_t *set, struct app *app)
{
    mc_err err;

    memset(app, 0, sizeof(*app));
    if (c->argc > 0) {
        fprintf(stderr, "mailcast %s: unexpected argument \"%s\"\n", name, c->argv[0]);
        return 2;
    }
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    app->cfg = &c->cfg;
    app->st = cli_open_store(&c->cfg);
    if (app->st == NULL)
        return 1;
    if ((err = app_secrets_load(app->st, &app->secrets)) != MC_ERR_OK) {
        fprintf(stderr, "mailcast: cannot set up the server's secrets: %s\n", mc_err_str(err));
        cli_daemon_close(app);
        return 1;
    }
    if (c->cfg.shaping != NULL) {
        char why[512];
        if (app_shaping_load_file(app->st, c->cfg.shaping, why, sizeof(why)) != MC_ERR_OK) {
            fprintf(stderr, "mailcast: --shaping: %s\n", why);
            cli_daemon_close(app);
            return 1;
        }
        log_info("event=shaping_loaded");
    }
    return 0;
}

void
cli_daemon_wait(sigset_t *set)
{
    int sig = 0;

    while (sigwait(set, &sig) != 0)
        ;
    log_info("event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
}

static void
after_commit(void *arg)
{
    struct app *app = arg;

    engine_nudge(app->engine);
    webhook_sender_nudge(app->webhooks);
}

void
cli_daemon_wire(struct app *app, struct delivery *delivery, struct webhook_sender *webhooks)
{
    app->webhooks = webhooks;
    engine_on_work(app->engine, delivery_wake, delivery);
    delivery_on_commit(delivery, after_commit, app);
}

void
cli_daemon_unwire(struct app *app, struct delivery *delivery)
{
    delivery_on_commit(delivery, NULL, NULL);
    engine_on_work(app->engine, NULL, NULL);
}

void
cli_daemon_close(struct app *app)
{
    app_secrets_wipe(&app->secrets);
    store_close(app->st);
    app->st = NULL;
}

bool
cli_bounce_listener_start(struct app *app, struct bounce_intake_ctx *x,
                          struct delivery *delivery, struct bounce_listener **out)
{
    *out = NULL;
    if (app->cfg->bounce_listen == NULL)
        return true;
    *x = (struct bounce_intake_ctx){
        .st = app->st,
        .keys = (const unsigned char(*)[BOUNCE_REF_KEY_LEN])app->secrets.token_keys,
        .nkeys = app->secrets.ntoken_keys,
        .raw_max = (size_t)app->cfg->bounce_raw_max,
        .stats = &app->bounce_stats,
    };
    /* On the delivery worker's loop when this process delivers (issue 10). */
    *out = bounce_listener_start(app->cfg, x, delivery ? delivery_event_base(delivery) : NULL);
    if (*out == NULL)
        fprintf(stderr, "mailcast: cannot listen for bounces on %s; see the log line above\n",
                app->cfg->bounce_listen);
    return *out != NULL;
}
