/*
 * cmd_bounce.c - `mailcast bounce`: a report about a sent message, from a
 * file or standard input, for an MTA's pipe transport or an alias.  It
 * goes through the one intake pipeline (bounce/intake.c); exit 0 when it
 * was taken or deliberately ignored, 75 (EX_TEMPFAIL) when the database
 * failed, so the MTA retries.  With --explain it only parses the message
 * and prints what the parser makes of it as one JSON object: nothing is
 * written, and the database is read (for the reference keys) only when it
 * already exists.  --explain takes several files too (a directory of
 * bounces, one process): one object a line, in the files' order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "app/app.h"
#include "bounce/intake.h"
#include "bounce/parse.h"
#include "cli.h"
#include "core/util.h"
#include "store/store.h"

#define EX_NOINPUT 66  /* sysexits.h */
#define EX_TEMPFAIL 75 /* sysexits.h: the MTA keeps the message and tries again */

/*
 * Reads all of fp into b, keeping the first max bytes (MC_ERR_TOO_LARGE
 * when there were more; the rest is read and dropped, so a pipe's writer
 * is not cut off).
 */
static mc_err
read_all(FILE *fp, size_t max, struct buf *b)
{
    char chunk[65536];
    size_t n;
    bool over = false;

    buf_init(b, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        if (b->len + n > max) {
            n = max - b->len;
            over = true;
        }
        buf_append(b, chunk, n);
    }
    if (ferror(fp))
        return MC_ERR_IO;
    return over ? MC_ERR_TOO_LARGE : MC_ERR_OK;
}

static json_t *
str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The report as the JSON object `bounce --explain` prints. */
static json_t *
explain_json(const struct bounce_report *r, const char *reference)
{
    json_t *rc = json_array();

    for (int i = 0; i < r->nrcpts; i++) {
        const struct bounce_rcpt *x = &r->rcpts[i];
        json_array_append_new(
            rc, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "email", x->email, "class",
                          bounce_class_str(x->cls), "status",
                          x->status[0] ? json_string(x->status) : json_null(), "action",
                          str_or_null(x->action), "diagnostic", str_or_null(x->diagnostic),
                          "remote_mta", str_or_null(x->remote_mta)));
    }
    return json_pack("{s:s, s:o, s:o}", "kind", bounce_kind_str(r->kind), "reference",
                     str_or_null(reference), "recipients", rc);
}

/*
 * The reference keys for --explain, read (never made) from the configured
 * database when it already exists; none when it does not: --explain never
 * creates or changes a database.
 */
static void
explain_keys(const struct config *cfg, struct secrets *out)
{
    struct store_params sp = {.pool_size = 1, .busy_timeout_ms = (int)cfg->db_busy_timeout_ms};
    struct store *st = NULL;

    memset(out, 0, sizeof(*out));
    if (str_prefix(cfg->database, "sqlite:") && access(cfg->database + 7, R_OK) != 0)
        return;
    if (store_open(cfg->database, &sp, &st) == MC_ERR_OK)
        (void)app_secrets_peek(st, out);
    store_close(st);
}

/*
 * Prints the JSON object for one message on a line of its own, whatever the
 * number of messages, so a reader of a directory's files splits at newlines
 * (ASCII only: no U+2028 or U+0085 in a line).
 */
static void
explain_one(struct cli_ctx *c, const struct secrets *keys, const struct buf *msg)
{
    struct bounce_report r;
    char id[MC_UUID_LEN + 1];
    const char *rcpt = cli_opt_value(c, "--recipient");
    json_t *j;
    char *s;
    struct bounce_intake_ctx x = {
        .keys = (const unsigned char(*)[BOUNCE_REF_KEY_LEN])keys->token_keys,
        .nkeys = keys->ntoken_keys,
    };

    bounce_parse(msg->data ? msg->data : "", msg->len, &r);
    j = explain_json(&r, bounce_intake_reference(&x, &r, rcpt, id) ? id : NULL);
    s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(j);
    bounce_report_cleanup(&r);
}

/* The pipe: exit 0 when the report was taken (or deliberately ignored), 75 to be retried. */
static int
intake(struct cli_ctx *c, const struct buf *in)
{
    const char *rcpt = cli_opt_value(c, "--recipient");
    char env[1024];
    struct secrets keys;
    struct store *st;
    mc_err err;

    if (rcpt == NULL && bounce_envelope_recipient(in->data ? in->data : "", in->len, env,
                                                  sizeof(env)))
        rcpt = env;
    if ((st = cli_open_store(&c->cfg)) == NULL)
        return EX_TEMPFAIL;
    if ((err = app_secrets_load(st, &keys)) == MC_ERR_OK) {
        struct bounce_intake_ctx x = {
            .st = st,
            .keys = (const unsigned char(*)[BOUNCE_REF_KEY_LEN])keys.token_keys,
            .nkeys = keys.ntoken_keys,
            .raw_max = (size_t)c->cfg.bounce_raw_max,
        };
        err = bounce_intake_message(&x, in->data ? in->data : "", in->len, "pipe", rcpt, NULL);
        app_secrets_wipe(&keys);
    }
    store_close(st);
    if (err != MC_ERR_OK) {
        fprintf(stderr, "mailcast: bounce: not recorded (%s); the MTA should try again\n",
                mc_err_str(err));
        return EX_TEMPFAIL;
    }
    return 0;
}

/*
 * Reads a message from path (stdin when NULL) into msg, which the caller
 * cleans up in any case: 0, or (said on stderr) EX_NOINPUT when the file
 * cannot be opened, EX_TEMPFAIL when it cannot be read.
 */
static int
read_message(const struct cli_ctx *c, const char *path, struct buf *msg)
{
    FILE *fp = stdin;
    mc_err err;

    buf_init(msg, 0);
    if (path && (fp = fopen(path, "rb")) == NULL) {
        fprintf(stderr, "mailcast: bounce: cannot open %s\n", path);
        return EX_NOINPUT;
    }
    /* A message past the limit is cut there, not refused: an MTA would only retry it. */
    err = read_all(fp, (size_t)c->cfg.bounce_max_message, msg);
    if (fp != stdin)
        fclose(fp);
    if (err != MC_ERR_OK && err != MC_ERR_TOO_LARGE) {
        fprintf(stderr, "mailcast: bounce: cannot read %s: %s\n", path ? path : "the message",
                mc_err_str(err));
        return EX_TEMPFAIL;
    }
    return 0;
}

/* The i-th FILE argument (i from 0), NULL past the last. */
static const char *
file_arg(const struct cli_ctx *c, int i)
{
    for (int k = 0; k < c->argc; k++) {
        if (strcmp(c->argv[k], "--recipient") == 0)
            k++;
        else if (strcmp(c->argv[k], "--explain") != 0 && i-- == 0)
            return c->argv[k];
    }
    return NULL;
}

/*
 * --explain: each file's object (stdin's without one), a line each; at the
 * first file that cannot be read, 1 (the objects before it are printed).
 */
static int
explain(struct cli_ctx *c)
{
    struct secrets keys;
    struct buf msg;
    const char *path = file_arg(c, 0);
    int rc = 0;

    explain_keys(&c->cfg, &keys);
    for (int i = 0; rc == 0 && (i == 0 || path); path = file_arg(c, ++i)) {
        if (read_message(c, path, &msg) == 0)
            explain_one(c, &keys, &msg);
        else
            rc = 1;
        buf_cleanup(&msg);
    }
    fflush(stdout);
    app_secrets_wipe(&keys);
    return rc;
}

int
cmd_bounce(struct cli_ctx *c)
{
    bool ex = cli_opt_flag(c, "--explain");
    struct buf msg;
    int rc;

    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], "--recipient") == 0)
            i++;
        else if (c->argv[i][0] == '-' && strcmp(c->argv[i], "--explain") != 0) {
            fprintf(stderr, "usage: mailcast bounce [--explain] [--recipient ADDR] [FILE%s]\n",
                    ex ? "..." : "");
            return 2;
        }
    }
    if (ex)
        return explain(c);
    if (file_arg(c, 1) != NULL) {
        fprintf(stderr, "mailcast: bounce: one message at a time (--explain takes several)\n");
        return 2;
    }
    if ((rc = read_message(c, file_arg(c, 0), &msg)) == 0)
        rc = intake(c, &msg);
    buf_cleanup(&msg);
    return rc;
}
