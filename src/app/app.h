/*
 * app.h - the application layer: process state that belongs to neither the
 * HTTP server nor the delivery worker, which both borrow it.
 *
 * `mailcast serve` fills one struct app (configuration, store, secrets,
 * its engine and delivery worker) and hands it to the HTTP server;
 * `mailcast worker` fills the same struct without the HTTP parts.  The
 * secrets every process must share (the unsubscribe-link keys, the key
 * that seals DKIM keys) live in the database and are loaded here, so a
 * worker never reaches into http/ for them.  The relay parameters are made
 * here too, from the configuration, for the worker and the test sends.
 */
#ifndef MC_APP_H
#define MC_APP_H

#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>

#include "bounce/intake.h"
#include "core/config.h"
#include "core/err.h"
#include "smtp/client.h"
#include "store/store.h"

struct metrics;
struct engine;
struct delivery;
struct webhook_sender;

/* The secrets every process sharing a database signs and opens with. */
struct secrets {
    unsigned char token_keys[2][32]; /* unsubscribe-link keys: current, previous */
    int ntoken_keys;                 /* 1, or 2 after a rotation */
    unsigned char dkim_kek[32];      /* seals the tenants' DKIM private keys */
};

/* Process state; owned by the serve or worker command, borrowed by everything else. */
struct app {
    const struct config *cfg;  /* borrowed */
    struct store *st;          /* borrowed */
    char operator_hash[65];    /* hex SHA-256 of the operator key (serve only) */
    struct secrets secrets;
    struct metrics *metrics;   /* owned by the HTTP server, or NULL */
    struct engine *engine;     /* borrowed: woken when a campaign is scheduled */
    struct delivery *delivery; /* borrowed: this process's worker, or NULL */
    struct webhook_sender *webhooks; /* borrowed: nudged after changes, or NULL */
    struct bounce_stats bounce_stats; /* reports taken in by this process, by class */
    atomic_int test_sends;     /* test sends holding an HTTP thread now */
};

/*
 * Loads the secrets from the database into out, generating and storing each
 * on first start (a racing process's copy wins), so every process sharing
 * the database signs and opens alike.
 */
mc_err app_secrets_load(struct store *st, struct secrets *out);
/*
 * Reads the unsubscribe-link (and reference) keys only, never making one:
 * for tools that must not write, such as `mailcast bounce --explain`.
 * MC_ERR_NOT_FOUND when the database has none yet.
 */
mc_err app_secrets_peek(struct store *st, struct secrets *out);
/* Wipes the secrets (OPENSSL_cleanse). */
void app_secrets_wipe(struct secrets *s);
/*
 * Replaces the unsubscribe-link key with a new one and keeps the old one as
 * the previous key, which still verifies: links already sent keep working.
 * Running processes pick the change up when they restart.
 */
mc_err app_token_key_rotate(struct store *st);

/* Makes a new operator key (owned): "mco_" + 64 hex digits. */
char *app_operator_key_generate(void);
/*
 * Sets app->operator_hash from the configured key, or from the database,
 * generating and storing a key on first start; *generated (owned, may be
 * NULL) is the new key to show once.
 */
mc_err app_operator_init(struct app *app, char **generated);

/*
 * Writes the default EHLO name into out: the host name when it is fully
 * qualified, else its canonical name from the resolver, else
 * "<hostname>.localdomain" (never a bare single label).
 */
void app_helo_default(char *out, size_t n);
/*
 * The SMTP client's parameters from the configuration's relay URL and
 * options.  MC_ERR_INVALID with a reason in err[errlen] for a bad URL.
 */
mc_err app_relay_params(const struct config *cfg, struct smtp_params *p, char *err,
                        size_t errlen);
/*
 * The SMTP client's parameters for egress eg (issue 15): its relay URL
 * (NULL: the configuration's), EHLO name, source address and connection
 * cap over the configuration's.  MC_ERR_INVALID with a reason for a bad URL.
 */
mc_err app_egress_params(const struct config *cfg, const struct egress *eg,
                         struct smtp_params *p, char *err, size_t errlen);
/* An egress's, a pool's or a site's name: 1-63 of [a-z0-9._-]. */
bool app_shaping_name_ok(const char *s);

/*
 * The shaping document (issue 15; see shaping.c for its shape) parsed and
 * validated into out (owned by the caller: shaping_cleanup).  On
 * MC_ERR_INVALID, field names the first bad field (e.g. "rules[2].site")
 * and why says what is wrong.
 */
mc_err app_shaping_parse(json_t *doc, struct shaping *out, char *field, size_t flen, char *why,
                         size_t wlen);
/* The table as the document GET /api/v1/shaping returns (owned). */
json_t *app_shaping_json(const struct shaping *sh);
/* Reads a shaping file and replaces the table with it (`--shaping FILE`); why on failure. */
mc_err app_shaping_load_file(struct store *st, const char *path, char *why, size_t wlen);

#endif
