/*
 * cmd_bounce.c - `mailcast bounce`: a report about a sent message, from a
 * file or standard input.  With --explain it parses the message and prints
 * what the parser makes of it as one JSON object (no database, nothing
 * changes); the intake through the database is in bounce/intake.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bounce/parse.h"
#include "cli.h"
#include "core/util.h"

/* The largest message read from a file or standard input. */
#define READ_MAX (64 * 1024 * 1024)

/* Reads all of fp (up to max bytes: MC_ERR_TOO_LARGE past it) into b. */
static mc_err
read_all(FILE *fp, size_t max, struct buf *b)
{
    char chunk[65536];
    size_t n;

    buf_init(b, max);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        buf_append(b, chunk, n);
    if (ferror(fp))
        return MC_ERR_IO;
    return b->err;
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

int
cmd_bounce(struct cli_ctx *c)
{
    const char *file = NULL;
    struct bounce_report r;
    struct buf in;
    FILE *fp = stdin;
    json_t *j;
    char *s;
    mc_err err;

    for (int i = 0; i < c->argc; i++)
        if (c->argv[i][0] != '-' && (i == 0 || strcmp(c->argv[i - 1], "--recipient") != 0))
            file = c->argv[i];
    if (!cli_opt_flag(c, "--explain")) {
        fprintf(stderr, "mailcast: bounce: only --explain is available in this build\n");
        return 2;
    }
    if (file && (fp = fopen(file, "rb")) == NULL) {
        fprintf(stderr, "mailcast: bounce: cannot open %s\n", file);
        return 1;
    }
    err = read_all(fp, READ_MAX, &in);
    if (fp != stdin)
        fclose(fp);
    if (err != MC_ERR_OK) {
        fprintf(stderr, "mailcast: bounce: cannot read the message: %s\n", mc_err_str(err));
        buf_cleanup(&in);
        return 1;
    }
    bounce_parse(in.data ? in.data : "", in.len, &r);
    j = explain_json(&r, NULL);
    s = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(j);
    bounce_report_cleanup(&r);
    buf_cleanup(&in);
    return 0;
}
