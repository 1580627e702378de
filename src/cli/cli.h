/*
 * cli.h - mailcast's subcommands.  Each command gets its own arguments
 * (after the command words) and the loaded, validated configuration, and
 * returns the process exit status.
 */
#ifndef MC_CLI_H
#define MC_CLI_H

#include <signal.h>

#include "core/config.h"

#define MAILCAST_VERSION "0.1.0"

struct cli_ctx {
    struct config cfg;
    int argc;    /* arguments after the command words */
    char **argv; /* borrowed */
};

int cmd_serve(struct cli_ctx *c);
int cmd_worker(struct cli_ctx *c);
int cmd_migrate(struct cli_ctx *c);
int cmd_tenant_create(struct cli_ctx *c);
int cmd_tenant_list(struct cli_ctx *c);
int cmd_tenant_show(struct cli_ctx *c);
int cmd_key_create(struct cli_ctx *c);
int cmd_key_list(struct cli_ctx *c);
int cmd_key_revoke(struct cli_ctx *c);
int cmd_config_check(struct cli_ctx *c);
int cmd_secret_rotate(struct cli_ctx *c);
int cmd_bounce(struct cli_ctx *c);

/* The value after "--name" in the command's arguments, or NULL. */
const char *cli_opt_value(struct cli_ctx *c, const char *name);
/* True when "--name" stands among the command's arguments. */
bool cli_opt_flag(struct cli_ctx *c, const char *name);

struct store;
struct app;
/* Opens the configured database and migrates it; prints the reason and returns NULL on failure. */
struct store *cli_open_store(const struct config *cfg);

/*
 * For the long-running commands (daemon.c): refuses extra arguments,
 * blocks SIGTERM and SIGINT (call before starting any thread), fills app
 * with the configuration, the opened store and the secrets.  Returns 0, or
 * the exit status after printing why.
 */
int cli_daemon_open(struct cli_ctx *c, const char *name, sigset_t *set, struct app *app);
/* Waits for SIGTERM or SIGINT and logs which. */
void cli_daemon_wait(sigset_t *set);
struct bounce_listener;
struct bounce_intake_ctx;
struct delivery;
/*
 * Starts the bounce listener when bounce_listen is set (*out NULL when it
 * is not), on delivery's event loop when delivery (borrowed, may be NULL)
 * runs; x (the intake's context, filled here) must outlive it.  False
 * (reported) when it cannot start.
 */
bool cli_bounce_listener_start(struct app *app, struct bounce_intake_ctx *x,
                               struct delivery *delivery, struct bounce_listener **out);
struct webhook_sender;
/*
 * Lets the process's pollers tell each other about work, so each can back
 * off while idle: the engine wakes the delivery worker when it made
 * messages, and outcomes the worker committed nudge the engine and the
 * webhook sender (also set in app, for the API's changes).  delivery and
 * webhooks may be NULL.  cli_daemon_unwire undoes it before any of them
 * stops (safe to call twice).
 */
void cli_daemon_wire(struct app *app, struct delivery *delivery, struct webhook_sender *webhooks);
void cli_daemon_unwire(struct app *app, struct delivery *delivery);
/* Wipes the secrets and closes the store (what cli_daemon_open opened). */
void cli_daemon_close(struct app *app);

#endif
