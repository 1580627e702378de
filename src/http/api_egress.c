/*
 * api_egress.c - the operator's egresses and egress pools (issue 15, item
 * 5): POST/GET/PATCH/DELETE /api/v1/egresses[/{name}] and
 * /api/v1/egress-pools[/{name}].  Validate, call, reply: the rows are the
 * store's (store_egress.c), the pools the worker makes from them are
 * worker/delivery_egress.c's.
 *
 * 'default' is the configuration's --relay: it is listed (its relay shown
 * as configured) but neither changed nor deleted here.  The 'default' pool
 * can be changed, not deleted.  A relay URL's password is never shown.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"

/* The relay URL with its password (user:PASSWORD@) shown as "***" (owned). */
static char *
relay_masked(const char *url)
{
    const char *scheme = strstr(url, "://"), *at, *colon, *end;
    char *out;

    if (scheme == NULL)
        return xstrdup(url);
    end = scheme + 3 + strcspn(scheme + 3, "/?");
    at = memchr(scheme + 3, '@', (size_t)(end - scheme - 3));
    if (at == NULL)
        return xstrdup(url);
    colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
    if (colon == NULL)
        return xstrdup(url);
    out = xmalloc(strlen(url) + 4);
    snprintf(out, strlen(url) + 4, "%.*s***%s", (int)(colon + 1 - url), url, at);
    return out;
}

static json_t *
egress_json(const struct req *r, const struct egress *e)
{
    const char *relay = e->relay ? e->relay : r->app->cfg->relay;
    char *masked = relay_masked(relay ? relay : "");
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:b, s:o, s:o}", "name", e->name, "relay",
                          masked, "ehlo_name", json_str_or_null(e->ehlo_name), "source_address",
                          json_str_or_null(e->source_address), "max_connections",
                          e->max_connections > 0 ? json_integer(e->max_connections)
                                                 : json_null(),
                          "configured", e->relay == NULL, "created_at", json_time(e->created_at),
                          "updated_at", json_time(e->updated_at));

    free(masked);
    return o;
}

/* An EHLO name: a host name (letters, digits, dots, hyphens) or an address literal [..]. */
static bool
ehlo_ok(const char *s)
{
    size_t n = strlen(s);
    unsigned char a[16];

    if (n >= 3 && s[0] == '[' && s[n - 1] == ']') {
        char ip[64];
        if (n - 2 >= sizeof(ip))
            return false;
        memcpy(ip, s + 1, n - 2);
        ip[n - 2] = '\0';
        return inet_pton(AF_INET, ip, a) == 1 ||
               (strncmp(ip, "IPv6:", 5) == 0 && inet_pton(AF_INET6, ip + 5, a) == 1);
    }
    if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.') ||
            (c == '.' && s[i + 1] == '.'))
            return false;
    }
    return true;
}

/*
 * Reads the egress fields present in the body into e (over what it holds);
 * false after replying 422.  create: relay is required.
 */
static bool
egress_fields(struct req *r, struct egress *e, bool create)
{
    const char *relay = NULL, *ehlo = NULL, *src = NULL;
    bool has_relay = false, has_ehlo = false, has_src = false, has_max = false;
    int64_t maxc = 0;
    unsigned char a[16];
    struct smtp_params p;
    char why[160];

    if (!field_string(r, r->json, "relay", (create ? F_REQUIRED : 0) | F_NONEMPTY | F_ONELINE,
                      EGRESS_RELAY_MAX, &relay, &has_relay) ||
        !field_string(r, r->json, "ehlo_name", F_NULLABLE | F_NONEMPTY | F_ONELINE, 255, &ehlo,
                      &has_ehlo) ||
        !field_string(r, r->json, "source_address", F_NULLABLE | F_NONEMPTY | F_ONELINE,
                      EGRESS_ADDRESS_MAX - 1, &src, &has_src) ||
        !field_int(r, r->json, "max_connections", F_NULLABLE, 1, 10000, &maxc, &has_max))
        return false;
    if (has_relay) {
        memset(&p, 0, sizeof(p));
        if (strncmp(relay, "smtp://", 7) != 0 && strncmp(relay, "smtps://", 8) != 0) {
            reply_invalid(r, "relay", "relay must be an smtp:// or smtps:// URL");
            return false;
        }
        if (smtp_params_parse(relay, &p, why, sizeof(why)) != MC_ERR_OK) {
            reply_invalid(r, "relay", "relay is not a relay URL: %s", why);
            return false;
        }
        OPENSSL_cleanse(p.pass, sizeof(p.pass));
        free(e->relay);
        e->relay = xstrdup(relay);
    }
    if (has_ehlo && ehlo != NULL && !ehlo_ok(ehlo)) {
        reply_invalid(r, "ehlo_name",
                      "ehlo_name must be a host name or an address literal such as [192.0.2.1]");
        return false;
    }
    if (has_ehlo) {
        free(e->ehlo_name);
        e->ehlo_name = ehlo ? xstrdup(ehlo) : NULL;
    }
    if (has_src && src != NULL && inet_pton(AF_INET, src, a) != 1 &&
        inet_pton(AF_INET6, src, a) != 1) {
        reply_invalid(r, "source_address", "source_address must be an IPv4 or IPv6 address");
        return false;
    }
    if (has_src) {
        free(e->source_address);
        e->source_address = src ? xstrdup(src) : NULL;
    }
    if (has_max)
        e->max_connections = maxc;
    return true;
}

/* Reads the body's "name" for a create into out; false after replying 422. */
static bool
create_name(struct req *r, char out[SHAPING_NAME_MAX + 1])
{
    const char *name = NULL;

    if (!field_string(r, r->json, "name", F_REQUIRED | F_NONEMPTY, SHAPING_NAME_MAX, &name,
                      NULL))
        return false;
    if (!app_shaping_name_ok(name)) {
        reply_invalid(r, "name", "name must be 1-63 of a-z, 0-9, '.', '_' and '-'");
        return false;
    }
    snprintf(out, SHAPING_NAME_MAX + 1, "%s", name);
    return true;
}

/* Replies for a create's store error: the name taken, the limit (option opt) reached. */
static void
reply_create_error(struct req *r, mc_err err, const char *what, const char *name,
                   const char *opt, int64_t limit)
{
    if (err == MC_ERR_CONFLICT)
        reply_error(r, err, "an %s named \"%s\" already exists", what, name);
    else if (err == MC_ERR_LIMIT)
        reply_error(r, err, "at most %lld of them (%s)", (long long)limit, opt);
    else if (err == MC_ERR_INVALID)
        reply_invalid(r, "members", "a member is no longer an egress");
    else
        reply_store_error(r, err, what);
}

static bool
not_default(struct req *r, const char *name, const char *what)
{
    if (strcmp(name, "default") != 0)
        return true;
    reply_error(r, MC_ERR_CONFLICT,
                "the default egress is the configuration's relay (--relay); it cannot be %s "
                "through the API",
                what);
    return false;
}

void
api_egress_create(struct req *r)
{
    struct egress e = {0};
    mc_err err;

    if (!create_name(r, e.name) || !egress_fields(r, &e, true))
        goto out;
    err = store_egress_create(r->app->st, &e, (int)r->app->cfg->egress_max);
    if (err != MC_ERR_OK) {
        reply_create_error(r, err, "egress", e.name, "egress_max", r->app->cfg->egress_max);
        goto out;
    }
    log_info("event=egress_created egress=%s", e.name);
    reply_created(r, egress_json(r, &e), e.name, NULL);
out:
    egress_cleanup(&e);
}

void
api_egress_list(struct req *r)
{
    struct egress *l = NULL;
    json_t *items;
    int n = 0;
    mc_err err = store_egress_list(r->app->st, &l, &n);

    items = json_array();
    for (int i = 0; i < n; i++) {
        if (err == MC_ERR_OK)
            json_array_append_new(items, egress_json(r, &l[i]));
        egress_cleanup(&l[i]);
    }
    free(l);
    if (err != MC_ERR_OK) {
        json_decref(items);
        reply_store_error(r, err, "egress");
        return;
    }
    reply_json(r, 200, json_pack("{s:o}", "data", items));
}

void
api_egress_get(struct req *r)
{
    struct egress e = {0};
    mc_err err = store_egress_get(r->app->st, req_param(r, "egress"), &e);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "egress");
    else
        reply_json(r, 200, egress_json(r, &e));
    egress_cleanup(&e);
}

void
api_egress_patch(struct req *r)
{
    const char *name = req_param(r, "egress");
    struct egress e = {0}, out = {0};
    mc_err err;

    if ((err = store_egress_get(r->app->st, name, &e)) != MC_ERR_OK) {
        reply_store_error(r, err, "egress");
        goto out;
    }
    if (!not_default(r, name, "changed") || !egress_fields(r, &e, false))
        goto out;
    if ((err = store_egress_update(r->app->st, name, &e, &out)) != MC_ERR_OK) {
        reply_store_error(r, err, "egress");
        goto out;
    }
    log_info("event=egress_updated egress=%s", out.name);
    reply_json(r, 200, egress_json(r, &out));
out:
    egress_cleanup(&e);
    egress_cleanup(&out);
}

void
api_egress_delete(struct req *r)
{
    const char *name = req_param(r, "egress");
    mc_err err;

    if (!not_default(r, name, "deleted"))
        return;
    err = store_egress_delete(r->app->st, name);
    if (err == MC_ERR_CONFLICT) {
        reply_error(r, err, "the egress \"%s\" is a member of a pool: remove it there first",
                    name);
        return;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "egress");
        return;
    }
    log_info("event=egress_deleted egress=%s", name);
    reply_empty(r, 204);
}

/* ---- pools ---- */

static json_t *
pool_json(const struct egress_pool *p)
{
    json_t *m = json_array();

    for (int i = 0; i < p->nmembers; i++)
        json_array_append_new(m, json_pack("{s:s, s:I}", "egress", p->members[i].egress,
                                           "weight", (json_int_t)p->members[i].weight));
    return json_pack("{s:s, s:o, s:o, s:o}", "name", p->name, "members", m, "created_at",
                     json_time(p->created_at), "updated_at", json_time(p->updated_at));
}

/* Reads and checks "members" into p; false after replying 422. */
static bool
pool_members(struct req *r, struct egress_pool *p)
{
    json_t *a = json_object_get(r->json, "members"), *m;
    int64_t max = r->app->cfg->egress_pool_members_max;
    size_t i;
    char field[64];

    if (!json_is_array(a) || json_array_size(a) == 0) {
        reply_invalid(r, "members", "members must be a non-empty array of {egress, weight}");
        return false;
    }
    if ((int64_t)json_array_size(a) > max) {
        reply_invalid(r, "members", "a pool has at most %lld members (egress_pool_members_max)",
                      (long long)max);
        return false;
    }
    p->members = xcalloc(json_array_size(a), sizeof(*p->members));
    json_array_foreach(a, i, m) {
        const char *eg = NULL;
        int64_t w = 1;
        struct egress e = {0};
        mc_err err;
        snprintf(field, sizeof(field), "members[%zu]", i);
        if (!json_is_object(m)) {
            reply_invalid(r, field, "each member must be an object {egress, weight}");
            return false;
        }
        snprintf(field, sizeof(field), "members[%zu].egress", i);
        eg = json_string_value(json_object_get(m, "egress"));
        if (eg == NULL || !app_shaping_name_ok(eg)) {
            reply_invalid(r, field, "egress must be an egress's name");
            return false;
        }
        for (int k = 0; k < p->nmembers; k++)
            if (strcmp(p->members[k].egress, eg) == 0) {
                reply_invalid(r, field, "the egress \"%s\" is listed twice", eg);
                return false;
            }
        if ((err = store_egress_get(r->app->st, eg, &e)) != MC_ERR_OK) {
            if (err == MC_ERR_NOT_FOUND)
                reply_invalid(r, field, "there is no egress named \"%s\"", eg);
            else
                reply_store_error(r, err, "egress");
            return false;
        }
        egress_cleanup(&e);
        snprintf(field, sizeof(field), "members[%zu].weight", i);
        if (json_object_get(m, "weight") != NULL) {
            json_t *wv = json_object_get(m, "weight");
            if (!json_is_integer(wv) || json_integer_value(wv) < 1 ||
                json_integer_value(wv) > r->app->cfg->egress_weight_max) {
                reply_invalid(r, field, "weight must be an integer from 1 to %lld",
                              (long long)r->app->cfg->egress_weight_max);
                return false;
            }
            w = json_integer_value(wv);
        }
        snprintf(p->members[p->nmembers].egress, sizeof(p->members[0].egress), "%s", eg);
        p->members[p->nmembers++].weight = w;
    }
    return true;
}

void
api_egress_pool_create(struct req *r)
{
    struct egress_pool p = {0};
    mc_err err;

    if (!create_name(r, p.name) || !pool_members(r, &p))
        goto out;
    err = store_egress_pool_create(r->app->st, &p, (int)r->app->cfg->egress_pool_max);
    if (err != MC_ERR_OK) {
        reply_create_error(r, err, "egress pool", p.name, "egress_pool_max",
                           r->app->cfg->egress_pool_max);
        goto out;
    }
    log_info("event=egress_pool_created pool=%s members=%d", p.name, p.nmembers);
    reply_created(r, pool_json(&p), p.name, NULL);
out:
    egress_pool_cleanup(&p);
}

void
api_egress_pool_list(struct req *r)
{
    struct egress_pool *l = NULL;
    json_t *items = json_array();
    int n = 0;
    mc_err err = store_egress_pool_list(r->app->st, &l, &n);

    for (int i = 0; i < n; i++) {
        json_array_append_new(items, pool_json(&l[i]));
        egress_pool_cleanup(&l[i]);
    }
    free(l);
    if (err != MC_ERR_OK) {
        json_decref(items);
        reply_store_error(r, err, "egress pool");
        return;
    }
    reply_json(r, 200, json_pack("{s:o}", "data", items));
}

void
api_egress_pool_get(struct req *r)
{
    struct egress_pool p = {0};
    mc_err err = store_egress_pool_get(r->app->st, req_param(r, "pool"), &p);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "egress pool");
    else
        reply_json(r, 200, pool_json(&p));
    egress_pool_cleanup(&p);
}

void
api_egress_pool_patch(struct req *r)
{
    const char *name = req_param(r, "pool");
    struct egress_pool p = {0}, out = {0};
    mc_err err;

    if ((err = store_egress_pool_get(r->app->st, name, &out)) != MC_ERR_OK) {
        reply_store_error(r, err, "egress pool");
        goto out;
    }
    egress_pool_cleanup(&out);
    if (!pool_members(r, &p))
        goto out;
    err = store_egress_pool_update(r->app->st, name, &p, &out);
    if (err != MC_ERR_OK) {
        reply_create_error(r, err, "egress pool", name, NULL, 0);
        goto out;
    }
    log_info("event=egress_pool_updated pool=%s members=%d", out.name, out.nmembers);
    reply_json(r, 200, pool_json(&out));
out:
    egress_pool_cleanup(&p);
    egress_pool_cleanup(&out);
}

void
api_egress_pool_delete(struct req *r)
{
    const char *name = req_param(r, "pool");
    mc_err err;

    if (strcmp(name, "default") == 0) {
        reply_error(r, MC_ERR_CONFLICT, "the default pool cannot be deleted");
        return;
    }
    err = store_egress_pool_delete(r->app->st, name);
    if (err == MC_ERR_CONFLICT) {
        reply_error(r, err, "tenants are assigned the pool \"%s\": move them first", name);
        return;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "egress pool");
        return;
    }
    log_info("event=egress_pool_deleted pool=%s", name);
    reply_empty(r, 204);
}

bool
api_tenant_pool_field(struct req *r, char out[SHAPING_NAME_MAX + 1], bool *present)
{
    const char *pool = NULL;
    struct egress_pool p = {0};
    mc_err err;

    *present = false;
    if (!field_string(r, r->json, "egress_pool", F_NONEMPTY, SHAPING_NAME_MAX, &pool, present))
        return false;
    if (!*present)
        return true;
    if (!app_shaping_name_ok(pool)) {
        reply_invalid(r, "egress_pool", "egress_pool must be an egress pool's name");
        return false;
    }
    err = store_egress_pool_get(r->app->st, pool, &p);
    egress_pool_cleanup(&p);
    if (err == MC_ERR_NOT_FOUND) {
        reply_invalid(r, "egress_pool", "there is no egress pool named \"%s\"", pool);
        return false;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "egress pool");
        return false;
    }
    snprintf(out, SHAPING_NAME_MAX + 1, "%s", pool);
    return true;
}
