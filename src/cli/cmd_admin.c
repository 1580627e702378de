/*
 * cmd_admin.c - administrative commands that work on the database directly:
 * migrate, tenant create|list|show, key create|list|revoke, config check.
 * Results are printed as JSON, the same objects the API returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "cli.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/http.h"
#include "store/store.h"

static void
print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2));

    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(v);
}

/* Reports err in the API's words about what ("tenant", "API key"); returns 1. */
static int
fail(const char *cmd, mc_err err, const char *what)
{
    char msg[256];

    store_error_text(err, what, msg, sizeof(msg));
    fprintf(stderr, "mailcast %s: %s\n", cmd, msg);
    return 1;
}

const char *
cli_opt_value(struct cli_ctx *c, const char *name)
{
    for (int i = 0; i + 1 < c->argc; i++)
        if (strcmp(c->argv[i], name) == 0)
            return c->argv[i + 1];
    return NULL;
}

bool
cli_opt_flag(struct cli_ctx *c, const char *name)
{
    for (int i = 0; i < c->argc; i++)
        if (strcmp(c->argv[i], name) == 0)
            return true;
    return false;
}

int
cmd_migrate(struct cli_ctx *c)
{
    struct store *st = cli_open_store(&c->cfg);
    int dbv = 0, binv = 0;

    if (st == NULL)
        return 1;
    if (store_schema_version(st, &dbv, &binv) == MC_ERR_OK)
        printf("database schema version %d (this mailcast knows up to %d)\n", dbv, binv);
    store_close(st);
    return 0;
}

int
cmd_tenant_create(struct cli_ctx *c)
{
    struct tenant t = {0};
    const char *slug = cli_opt_value(c, "--slug");
    struct store *st;
    mc_err err;

    if (c->argc < 1 || c->argv[0][0] == '-') {
        fprintf(stderr, "usage: mailcast tenant create NAME [--slug SLUG]\n");
        return 2;
    }
    if (slug != NULL && !tenant_slug_valid(slug)) {
        fprintf(stderr, "mailcast: --slug must be 1-63 lowercase letters, digits and inner "
                        "hyphens\n");
        return 2;
    }
    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    t.name = xstrdup(c->argv[0]);
    t.slug = slug ? xstrdup(slug) : tenant_slug_from_name(c->argv[0]);
    t.status = TENANT_ACTIVE;
    err = tenant_create(st, &t, slug != NULL);
    if (err == MC_ERR_OK)
        print_json(tenant_json(&t));
    else if (err == MC_ERR_CONFLICT)
        fprintf(stderr, "mailcast tenant create: a tenant with slug \"%s\" already exists\n",
                t.slug);
    else
        fail("tenant create", err, "tenant");
    tenant_cleanup(&t);
    store_close(st);
    return err == MC_ERR_OK ? 0 : 1;
}

int
cmd_tenant_list(struct cli_ctx *c)
{
    struct page pg = {.limit = 1000, .offset = 0};
    struct tenant_list l = {0};
    struct store *st;
    json_t *arr;
    mc_err err;

    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    err = store_tenant_list(st, -1, &pg, &l);
    if (err == MC_ERR_OK) {
        arr = json_array();
        for (int i = 0; i < l.n; i++)
            json_array_append_new(arr, tenant_json(&l.items[i]));
        print_json(arr);
    }
    tenant_list_cleanup(&l);
    store_close(st);
    return err == MC_ERR_OK ? 0 : fail("tenant list", err, "tenant");
}

int
cmd_tenant_show(struct cli_ctx *c)
{
    struct tenant t = {0};
    struct store *st;
    mc_err err;

    if (c->argc != 1) {
        fprintf(stderr, "usage: mailcast tenant show TENANT_ID\n");
        return 2;
    }
    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    err = store_tenant_get(st, c->argv[0], &t);
    if (err == MC_ERR_OK)
        print_json(tenant_json(&t));
    tenant_cleanup(&t);
    store_close(st);
    return err == MC_ERR_OK ? 0 : fail("tenant show", err, "tenant");
}

int
cmd_key_create(struct cli_ctx *c)
{
    const char *name = cli_opt_value(c, "--name"), *exp = cli_opt_value(c, "--expires");
    struct api_key k = {0};
    char *secret = NULL;
    char hash[65];
    struct store *st;
    json_t *obj;
    mc_err err;

    if (c->argc < 1 || c->argv[0][0] == '-') {
        fprintf(stderr, "usage: mailcast key create TENANT_ID [--name NAME] [--read-only] "
                        "[--expires RFC3339]\n");
        return 2;
    }
    if (exp && (!time_parse_rfc3339(exp, &k.expires_at) || k.expires_at <= time_now_us())) {
        fprintf(stderr, "mailcast: --expires must be an RFC 3339 time in the future\n");
        return 2;
    }
    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", c->argv[0]);
    k.name = xstrdup(name ? name : "default");
    k.scopes = cli_opt_flag(c, "--read-only") ? KEY_SCOPE_READ : KEY_SCOPE_READ | KEY_SCOPE_WRITE;
    auth_key_generate(&secret, &k.key_prefix, hash);
    k.key_hash = xstrdup(hash);
    err = store_key_create(st, &k);
    if (err == MC_ERR_OK) {
        obj = api_key_json(&k);
        json_object_set_new(obj, "key", json_string(secret));
        print_json(obj);
    }
    free(secret);
    api_key_cleanup(&k);
    store_close(st);
    return err == MC_ERR_OK ? 0 : fail("key create", err, "tenant");
}

int
cmd_key_list(struct cli_ctx *c)
{
    struct page pg = {.limit = 1000, .offset = 0};
    struct api_key_list l = {0};
    struct store *st;
    json_t *arr;
    mc_err err;

    if (c->argc != 1) {
        fprintf(stderr, "usage: mailcast key list TENANT_ID\n");
        return 2;
    }
    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    struct tenant t = {0};
    err = store_tenant_get(st, c->argv[0], &t);
    tenant_cleanup(&t);
    if (err == MC_ERR_OK)
        err = store_key_list(st, c->argv[0], &pg, &l);
    if (err == MC_ERR_OK) {
        arr = json_array();
        for (int i = 0; i < l.n; i++)
            json_array_append_new(arr, api_key_json(&l.items[i]));
        print_json(arr);
    }
    api_key_list_cleanup(&l);
    store_close(st);
    return err == MC_ERR_OK ? 0 : fail("key list", err, "tenant");
}

int
cmd_key_revoke(struct cli_ctx *c)
{
    struct store *st;
    mc_err err;

    if (c->argc != 2) {
        fprintf(stderr, "usage: mailcast key revoke TENANT_ID KEY_ID\n");
        return 2;
    }
    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    err = store_key_revoke(st, c->argv[0], c->argv[1]);
    store_close(st);
    if (err == MC_ERR_OK)
        printf("revoked\n");
    return err == MC_ERR_OK ? 0 : fail("key revoke", err, "API key");
}

int
cmd_config_check(struct cli_ctx *c)
{
    struct buf out;

    buf_init(&out, 0);
    config_warnings(&c->cfg, &out);
    if (out.len > 0)
        fputs(out.data, stderr);
    buf_reset(&out);
    config_dump(&c->cfg, &out);
    printf("configuration OK\n%s", out.data ? out.data : "");
    buf_cleanup(&out);
    return 0;
}

int
cmd_secret_rotate(struct cli_ctx *c)
{
    struct store *st;
    mc_err err;

    if ((st = cli_open_store(&c->cfg)) == NULL)
        return 1;
    err = app_token_key_rotate(st);
    store_close(st);
    if (err != MC_ERR_OK)
        return fail("secret rotate", err, "secret");
    printf("the unsubscribe-link key was rotated; restart every mailcast process to sign with "
           "the new key (links signed with the previous key keep working)\n");
    return 0;
}
