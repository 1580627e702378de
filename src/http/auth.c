/*
 * auth.c - API keys: tenant key generation and the per-request check (the
 * operator key is made and loaded by the application layer, app/secrets.c).
 *
 * A tenant key is "mck_" + 12 hex digits (the visible prefix, used to find
 * the key) + "_" + 64 hex digits (256 random bits).  Only the SHA-256 of the
 * whole key is stored; a key this random needs no slow hash.  Hashes are
 * compared in constant time.  The operator key is "mco_" + 64 hex digits
 * when generated, or whatever the operator configured (24+ characters).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"

#define TENANT_PREFIX "mck_"
#define PREFIX_LEN 16 /* "mck_" + 12 hex */

void
auth_key_generate(char **secret, char **prefix, char hash[65])
{
    unsigned char rnd[6 + 32];
    char hex[2 * sizeof(rnd) + 1];

    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    *secret = xasprintf(TENANT_PREFIX "%.12s_%s", hex, hex + 12);
    *prefix = xstrndup(*secret, PREFIX_LEN);
    crypto_sha256_hex(*secret, strlen(*secret), hash);
}

/* The presented key: "Authorization: Bearer KEY" first, then "X-API-Key". */
static const char *
presented_key(struct req *r)
{
    const char *h = req_header(r, "Authorization");

    /* Another scheme (Basic, from a proxy) does not hide X-API-Key. */
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        return h;
    }
    h = req_header(r, "X-API-Key");
    return h ? h : "";
}

bool
auth_check(struct req *r)
{
    unsigned flags = r->route->flags;
    const char *key, *tid;
    struct api_key k = {0};
    char hash[65];
    int64_t now;
    mc_err err;
    bool ok = false;

    if ((flags & (R_AUTH_OPERATOR | R_AUTH_READ | R_AUTH_WRITE)) == 0)
        return true;
    key = presented_key(r);
    if (key == NULL || *key == '\0') {
        reply_error(r, MC_ERR_UNAUTHORIZED,
                    "missing API key: send \"Authorization: Bearer KEY\" or \"X-API-Key: KEY\"");
        return false;
    }
    crypto_sha256_hex(key, strlen(key), hash);
    tid = req_param(r, "tenant_id");
    if (crypto_equal(hash, r->app->operator_hash, 64)) {
        struct tenant t = {0};

        r->is_operator = true;
        r->scopes = KEY_SCOPE_READ | KEY_SCOPE_WRITE;
        /* The operator may act on any tenant, but only on one that exists. */
        if (tid != NULL) {
            err = store_tenant_get(r->app->st, tid, &t);
            tenant_cleanup(&t);
            if (err != MC_ERR_OK) {
                reply_store_error(r, err, "tenant");
                return false;
            }
        }
        return true;
    }
    if (strlen(key) != PREFIX_LEN + 1 + 64 || !str_prefix(key, TENANT_PREFIX) ||
        key[PREFIX_LEN] != '_') {
        reply_error(r, MC_ERR_UNAUTHORIZED, "invalid API key");
        return false;
    }
    char prefix[PREFIX_LEN + 1];
    memcpy(prefix, key, PREFIX_LEN);
    prefix[PREFIX_LEN] = '\0';
    err = store_key_find(r->app->st, prefix, &k);
    if (err == MC_ERR_NOT_FOUND || (err == MC_ERR_OK && !crypto_equal(hash, k.key_hash, 64))) {
        reply_error(r, MC_ERR_UNAUTHORIZED, "invalid API key");
        goto out;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "API key");
        goto out;
    }
    now = time_now_us();
    if (k.revoked_at != 0) {
        reply_error(r, MC_ERR_UNAUTHORIZED, "API key revoked");
        goto out;
    }
    if (k.expires_at != 0 && k.expires_at <= now) {
        reply_error(r, MC_ERR_UNAUTHORIZED, "API key expired");
        goto out;
    }
    if (flags & R_AUTH_OPERATOR) {
        reply_error(r, MC_ERR_FORBIDDEN, "this endpoint needs the operator key");
        goto out;
    }
    /* Another tenant's data does not exist for this key. */
    if (tid == NULL || strcmp(tid, k.tenant_id) != 0) {
        reply_error(r, MC_ERR_NOT_FOUND, "tenant not found");
        goto out;
    }
    if (k.tenant_status != TENANT_ACTIVE) {
        reply_error(r, MC_ERR_SUSPENDED, "tenant is suspended");
        goto out;
    }
    if ((flags & R_AUTH_WRITE) && !(k.scopes & KEY_SCOPE_WRITE)) {
        reply_error(r, MC_ERR_SCOPE, "this API key is read-only; the request needs write");
        goto out;
    }
    if (!(k.scopes & KEY_SCOPE_READ)) {
        reply_error(r, MC_ERR_SCOPE, "this API key lacks the read scope");
        goto out;
    }
    memcpy(r->tenant_id, k.tenant_id, sizeof(r->tenant_id));
    r->scopes = k.scopes;
    if (store_key_touch(r->app->st, k.id, now) != MC_ERR_OK)
        log_warn("event=auth warn=touch_failed key_id=%s", k.id);
    ok = true;
out:
    api_key_cleanup(&k);
    return ok;
}
