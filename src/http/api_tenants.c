/*
 * api_tenants.c - operator endpoints for tenants and their API keys, and
 * the tenant's rate limits.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"

#define SLUG_MAX 63

json_t *
tenant_json(const struct tenant *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o}", "id", t->id, "name",
                     t->name, "slug", t->slug, "status", tenant_status_str(t->status), "plan",
                     t->plan, "settings", json_from_text(t->settings), "egress_pool",
                     t->egress_pool[0] ? t->egress_pool : "default", "created_at",
                     json_time(t->created_at), "updated_at", json_time(t->updated_at));
}

bool
tenant_slug_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SLUG_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-'))
            return false;
    return true;
}

/*
 * ASCII for the Latin letters of U+00C0..U+017F (Latin-1 Supplement and
 * Latin Extended-A), lowercase: the base letter of each (NFKD without its
 * marks), or the usual spelling where there is none (ae, oe, ss, th, ij).
 * A small table rather than iconv's //TRANSLIT, whose output depends on the
 * process locale.  Other scripts have no ASCII spelling here: their letters
 * separate words like punctuation.
 */
static const char *const latin_ascii[0x180 - 0xC0] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", /* U+00C0 */
    "e", "e", "e", "e", "i", "i", "i", "i", /* U+00C8 */
    "d", "n", "o", "o", "o", "o", "o", "",  /* U+00D0 */
    "o", "u", "u", "u", "u", "y", "th", "ss", /* U+00D8 */
    "a", "a", "a", "a", "a", "a", "ae", "c", /* U+00E0 */
    "e", "e", "e", "e", "i", "i", "i", "i", /* U+00E8 */
    "d", "n", "o", "o", "o", "o", "o", "",  /* U+00F0 */
    "o", "u", "u", "u", "u", "y", "th", "y", /* U+00F8 */
    "a", "a", "a", "a", "a", "a", "c", "c", /* U+0100 */
    "c", "c", "c", "c", "c", "c", "d", "d", /* U+0108 */
    "d", "d", "e", "e", "e", "e", "e", "e", /* U+0110 */
    "e", "e", "e", "e", "g", "g", "g", "g", /* U+0118 */
    "g", "g", "g", "g", "h", "h", "h", "h", /* U+0120 */
    "i", "i", "i", "i", "i", "i", "i", "i", /* U+0128 */
    "i", "i", "ij", "ij", "j", "j", "k", "k", /* U+0130 */
    "k", "l", "l", "l", "l", "l", "l", "l", /* U+0138 */
    "l", "l", "l", "n", "n", "n", "n", "n", /* U+0140 */
    "n", "n", "n", "n", "o", "o", "o", "o", /* U+0148 */
    "o", "o", "oe", "oe", "r", "r", "r", "r", /* U+0150 */
    "r", "r", "s", "s", "s", "s", "s", "s", /* U+0158 */
    "s", "s", "t", "t", "t", "t", "t", "t", /* U+0160 */
    "u", "u", "u", "u", "u", "u", "u", "u", /* U+0168 */
    "u", "u", "u", "u", "w", "w", "y", "y", /* U+0170 */
    "y", "z", "z", "z", "z", "z", "z", "s", /* U+0178 */
};

/* The ASCII spelling of the UTF-8 character at *p (advancing *p past it), or NULL. */
static const char *
slug_char_ascii(const char **p, char one[2])
{
    const unsigned char *s = (const unsigned char *)*p;
    unsigned cp;

    if (s[0] < 0x80) {
        *p += 1;
        one[0] = (char)tolower(s[0]);
        one[1] = '\0';
        return isalnum(s[0]) ? one : NULL;
    }
    /* Two-byte sequences cover U+0080..U+07FF; longer ones are skipped whole. */
    if ((s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        *p += 2;
        cp = ((unsigned)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return cp >= 0xC0 && cp < 0x180 && latin_ascii[cp - 0xC0][0] ? latin_ascii[cp - 0xC0]
                                                                    : NULL;
    }
    *p += 1;
    while ((**p & 0xC0) == 0x80)
        *p += 1;
    return NULL;
}

/*
 * A slug from a display name: lowercase ASCII letters and digits, '-'
 * between words; accented Latin letters become their base letters
 * ("Café Øst" -> "cafe-ost").
 */
char *
tenant_slug_from_name(const char *name)
{
    char *s = xmalloc(SLUG_MAX + 1);
    size_t n = 0;

    while (*name && n < SLUG_MAX) {
        char one[2];
        const char *a = slug_char_ascii(&name, one);

        if (a == NULL) {
            if (n > 0 && s[n - 1] != '-')
                s[n++] = '-';
            continue;
        }
        for (; *a && n < SLUG_MAX; a++)
            s[n++] = *a;
    }
    while (n > 0 && s[n - 1] == '-')
        n--;
    s[n] = '\0';
    if (n == 0) {
        free(s);
        return xstrdup("tenant");
    }
    return s;
}

mc_err
tenant_create(struct store *st, struct tenant *t, bool slug_chosen)
{
    mc_err err = store_tenant_create(st, t);

    /* A derived slug that is taken gets a random suffix; a chosen one is a conflict. */
    for (int i = 0; i < 5 && err == MC_ERR_CONFLICT && !slug_chosen; i++) {
        unsigned char rnd[3];
        char hex[7];
        char *base = tenant_slug_from_name(t->name);

        crypto_random(rnd, sizeof(rnd));
        crypto_hex(rnd, sizeof(rnd), hex);
        if (strlen(base) > SLUG_MAX - 7)
            base[SLUG_MAX - 7] = '\0';
        free(t->slug);
        t->slug = xasprintf("%s-%s", base, hex);
        free(base);
        err = store_tenant_create(st, t);
    }
    return err;
}

void
api_tenant_create(struct req *r)
{
    const char *name = NULL, *slug = NULL, *plan = NULL;
    struct tenant t = {0};
    bool has_slug = false, has_pool = false;
    char *settings = NULL;
    mc_err err;

    if (!field_string(r, r->json, "name", F_REQUIRED | F_NONEMPTY | F_ONELINE, 255, &name,
                      NULL) ||
        !api_tenant_pool_field(r, t.egress_pool, &has_pool) ||
        !field_string(r, r->json, "slug", 0, SLUG_MAX, &slug, &has_slug) ||
        !field_string(r, r->json, "plan", F_NONEMPTY | F_ONELINE, 50, &plan, NULL) ||
        !field_json(r, r->json, "settings", 0, false, &settings, NULL))
        goto out;
    if (has_slug && !tenant_slug_valid(slug)) {
        reply_invalid(r, "slug",
                      "slug must be 1-63 lowercase letters, digits and inner hyphens");
        goto out;
    }
    t.name = xstrdup(name);
    t.plan = xstrdup(plan);
    t.settings = settings;
    settings = NULL;
    t.status = TENANT_ACTIVE;
    t.slug = has_slug ? xstrdup(slug) : tenant_slug_from_name(name);
    err = tenant_create(r->app->st, &t, has_slug);
    if (err == MC_ERR_CONFLICT) {
        reply_error(r, err, "a tenant with slug \"%s\" already exists", t.slug);
        goto out;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        goto out;
    }
    log_info("event=tenant_created tenant=%s slug=%s", t.id, t.slug);
    reply_created(r, tenant_json(&t), t.id, NULL);
out:
    free(settings);
    tenant_cleanup(&t);
}

void
api_tenant_list(struct req *r)
{
    const char *s = req_query(r, "status");
    struct tenant_list l = {0};
    struct page pg;
    int status = -1;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    if (s != NULL && ((status = tenant_status_parse(s)) < 0 || status == TENANT_DELETED)) {
        reply_invalid(r, "status", "status must be active or suspended");
        return;
    }
    err = store_tenant_list(r->app->st, status, &pg, &l);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < l.n; i++)
        json_array_append_new(items, tenant_json(&l.items[i]));
    reply_json(r, 200, json_page(items, l.total, &pg));
    tenant_list_cleanup(&l);
}

void
api_tenant_get(struct req *r)
{
    struct tenant t = {0};
    mc_err err = store_tenant_get(r->app->st, req_param(r, "tenant_id"), &t);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "tenant");
    else
        reply_json(r, 200, tenant_json(&t));
    tenant_cleanup(&t);
}

void
api_tenant_patch(struct req *r)
{
    struct tenant_patch tp = {0};
    const char *status = NULL;
    bool has_status = false, has_pool = false;
    struct tenant t = {0};
    char pool[SHAPING_NAME_MAX + 1] = "";
    char *settings = NULL;
    mc_err err;

    if (!field_string(r, r->json, "name", F_NONEMPTY | F_ONELINE, 255, &tp.name, NULL) ||
        !field_string(r, r->json, "plan", F_NONEMPTY | F_ONELINE, 50, &tp.plan, NULL) ||
        !field_string(r, r->json, "status", 0, 20, &status, &has_status) ||
        !field_json(r, r->json, "settings", 0, false, &settings, NULL) ||
        !api_tenant_pool_field(r, pool, &has_pool))
        goto out;
    if (has_pool)
        tp.egress_pool = pool;
    if (has_status) {
        int s = tenant_status_parse(status);
        if (s != TENANT_ACTIVE && s != TENANT_SUSPENDED) {
            reply_invalid(r, "status", "status must be active or suspended");
            goto out;
        }
        tp.has_status = true;
        tp.status = (enum tenant_status)s;
    }
    tp.settings = settings;
    err = store_tenant_update(r->app->st, req_param(r, "tenant_id"), &tp, &t);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        goto out;
    }
    if (has_status)
        log_info("event=tenant_status tenant=%s status=%s", t.id, tenant_status_str(t.status));
    if (has_pool)
        log_info("event=tenant_egress_pool tenant=%s pool=%s", t.id, t.egress_pool);
    reply_json(r, 200, tenant_json(&t));
out:
    free(settings);
    tenant_cleanup(&t);
}

void
api_tenant_delete(struct req *r)
{
    mc_err err = store_tenant_delete(r->app->st, req_param(r, "tenant_id"));

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    log_info("event=tenant_deleted tenant=%s", req_param(r, "tenant_id"));
    reply_empty(r, 204);
}

/* ---- API keys ---- */

json_t *
api_key_json(const struct api_key *k)
{
    json_t *scopes = json_array();
    const char *state = "active";

    json_array_append_new(scopes, json_string("read"));
    if (k->scopes & KEY_SCOPE_WRITE)
        json_array_append_new(scopes, json_string("write"));
    if (k->revoked_at)
        state = "revoked";
    else if (k->expires_at && k->expires_at <= time_now_us())
        state = "expired";
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o}", "id", k->id,
                     "tenant_id", k->tenant_id, "name", k->name, "prefix", k->key_prefix,
                     "scopes", scopes, "status", state, "expires_at", json_time(k->expires_at),
                     "last_used_at", json_time(k->last_used_at), "revoked_at",
                     json_time(k->revoked_at), "created_at", json_time(k->created_at));
}

static bool
parse_scopes(struct req *r, unsigned *out)
{
    json_t *v = json_object_get(r->json, "scopes"), *s;
    size_t i;
    unsigned scopes = 0;

    if (v == NULL) {
        *out = KEY_SCOPE_READ | KEY_SCOPE_WRITE;
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        reply_invalid(r, "scopes", "scopes must be a non-empty array of \"read\" and \"write\"");
        return false;
    }
    json_array_foreach(v, i, s)
    {
        const char *name = json_string_value(s);
        if (name && strcmp(name, "read") == 0)
            scopes |= KEY_SCOPE_READ;
        else if (name && strcmp(name, "write") == 0)
            scopes |= KEY_SCOPE_WRITE | KEY_SCOPE_READ;
        else {
            reply_invalid(r, "scopes", "unknown scope; scopes are \"read\" and \"write\"");
            return false;
        }
    }
    *out = scopes;
    return true;
}

void
api_key_create(struct req *r)
{
    const char *name = "default", *expires = NULL;
    struct api_key k = {0};
    char *secret = NULL;
    char hash[65];
    json_t *obj;
    mc_err err;

    if (!field_string(r, r->json, "name", F_NONEMPTY | F_ONELINE, 255, &name, NULL) ||
        !field_string(r, r->json, "expires_at", F_NULLABLE, 64, &expires, NULL) ||
        !parse_scopes(r, &k.scopes))
        goto out;
    if (expires != NULL) {
        if (!time_parse_rfc3339(expires, &k.expires_at)) {
            reply_invalid(r, "expires_at", "expires_at must be an RFC 3339 date-time");
            goto out;
        }
        if (k.expires_at <= time_now_us()) {
            reply_invalid(r, "expires_at", "expires_at must be in the future");
            goto out;
        }
    }
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", req_param(r, "tenant_id"));
    k.name = xstrdup(name);
    auth_key_generate(&secret, &k.key_prefix, hash);
    k.key_hash = xstrdup(hash);
    err = store_key_create(r->app->st, &k);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        goto out;
    }
    log_info("event=key_created tenant=%s key_id=%s prefix=%s", k.tenant_id, k.id,
             k.key_prefix);
    obj = api_key_json(&k);
    json_object_set_new(obj, "key", json_string(secret));
    reply_created(r, obj, k.id, NULL);
out:
    free(secret);
    api_key_cleanup(&k);
}

void
api_key_list(struct req *r)
{
    const char *tid = req_param(r, "tenant_id");
    struct api_key_list l = {0};
    struct tenant t = {0};
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    err = store_tenant_get(r->app->st, tid, &t);
    tenant_cleanup(&t);
    if (err == MC_ERR_OK)
        err = store_key_list(r->app->st, tid, &pg, &l);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < l.n; i++)
        json_array_append_new(items, api_key_json(&l.items[i]));
    reply_json(r, 200, json_page(items, l.total, &pg));
    api_key_list_cleanup(&l);
}

void
api_key_revoke(struct req *r)
{
    mc_err err = store_key_revoke(r->app->st, req_param(r, "tenant_id"), req_param(r, "key_id"));

    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "API key");
        return;
    }
    log_info("event=key_revoked tenant=%s key_id=%s", req_param(r, "tenant_id"),
             req_param(r, "key_id"));
    reply_empty(r, 204);
}

/* ---- rate limits ---- */

static json_t *
rate_limits_json(const struct rate_limits *rl)
{
    return json_pack("{s:o, s:I, s:I, s:I, s:b, s:o}", "per_second",
                     rl->per_second ? json_integer(rl->per_second) : json_null(), "per_minute",
                     (json_int_t)rl->per_minute, "per_hour", (json_int_t)rl->per_hour, "per_day",
                     (json_int_t)rl->per_day, "enabled", rl->enabled, "updated_at",
                     json_time(rl->updated_at));
}

void
api_rate_limits_get(struct req *r)
{
    struct rate_limits rl;
    mc_err err = store_rate_limits_get(r->app->st, req_param(r, "tenant_id"), &rl);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "tenant");
    else
        reply_json(r, 200, rate_limits_json(&rl));
}

void
api_rate_limits_put(struct req *r)
{
    const char *tid = req_param(r, "tenant_id");
    struct rate_limits rl;
    bool a = false, b = false, c = false, d = false, e = false;
    mc_err err;

    /* Absent fields keep their value; whatever is sent must be valid. */
    if ((err = store_rate_limits_get(r->app->st, tid, &rl)) != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    /* per_second: null removes it. */
    if (!field_int(r, r->json, "per_second", F_NULLABLE, 1, INT32_MAX, &rl.per_second, &e))
        return;
    if (e && json_is_null(json_object_get(r->json, "per_second")))
        rl.per_second = 0;
    if (!field_int(r, r->json, "per_minute", 0, 1, INT32_MAX, &rl.per_minute, &a) ||
        !field_int(r, r->json, "per_hour", 0, 1, INT32_MAX, &rl.per_hour, &b) ||
        !field_int(r, r->json, "per_day", 0, 1, INT32_MAX, &rl.per_day, &c) ||
        !field_bool(r, r->json, "enabled", 0, &rl.enabled, &d))
        return;
    if (!a && !b && !c && !d && !e) {
        reply_invalid(r, "per_minute",
                      "send at least one of per_second, per_minute, per_hour, per_day, enabled");
        return;
    }
    err = store_rate_limits_put(r->app->st, tid, &rl);
    if (err == MC_ERR_OK)
        err = store_rate_limits_get(r->app->st, tid, &rl);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    log_info("event=rate_limits tenant=%s per_second=%lld per_minute=%lld per_hour=%lld "
             "per_day=%lld enabled=%d",
             tid, (long long)rl.per_second, (long long)rl.per_minute, (long long)rl.per_hour, (long long)rl.per_day,
             rl.enabled);
    reply_json(r, 200, rate_limits_json(&rl));
}

/* ---- who am I ---- */

/*
 * The caller's role, tenant and scopes, so a client (the web console) can
 * tell an operator key from a tenant key and a read-only key from a
 * writing one without trying a write.
 */
void
api_whoami(struct req *r)
{
    struct tenant t = {0};
    json_t *scopes = json_array(), *o;
    mc_err err;

    json_array_append_new(scopes, json_string("read"));
    if (r->scopes & KEY_SCOPE_WRITE)
        json_array_append_new(scopes, json_string("write"));
    if (r->is_operator) {
        reply_json(r, 200, json_pack("{s:s, s:o}", "role", "operator", "scopes", scopes));
        return;
    }
    err = store_tenant_get(r->app->st, r->tenant_id, &t);
    if (err != MC_ERR_OK) {
        json_decref(scopes);
        reply_store_error(r, err, "tenant");
        return;
    }
    o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "role", "tenant", "tenant_id", t.id, "tenant_name",
                  t.name, "tenant_slug", t.slug, "scopes", scopes);
    tenant_cleanup(&t);
    reply_json(r, 200, o);
}
