/*
 * api_dkim.c - a tenant's DKIM signing keys: create (generated RSA-2048, or
 * a PEM the tenant brings), list, delete.  The API returns the DNS record
 * to publish and never the private key, which is stored sealed with the
 * server's key-encryption key.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/email.h"
#include "core/log.h"
#include "http.h"
#include "smtp/dkim.h"

#define DKIM_BITS 2048

static json_t *
dkim_json(const struct dkim_key *k)
{
    char name[400];
    json_t *o;

    snprintf(name, sizeof(name), "%s._domainkey.%s", k->selector, k->domain);
    o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "id", k->id, "domain", k->domain,
                  "selector", k->selector, "algorithm", k->algorithm, "key_bits",
                  (json_int_t)k->key_bits, "dns_name", name, "dns_type", "TXT", "created_at",
                  json_time(k->created_at));
    char *rec = xasprintf("v=DKIM1; k=rsa; p=%s", k->public_key);
    json_object_set_new(o, "dns_record", json_string(rec));
    free(rec);
    return o;
}

static bool
selector_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-')
            return false;
    return true;
}

void
api_dkim_create(struct req *r)
{
    const char *domain = NULL, *selector = NULL, *pem = NULL, *why = NULL;
    char addr[300], norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    struct dkim_key k = {0};
    char *gen = NULL;
    int bits = DKIM_BITS;
    mc_err err;

    if (!field_string(r, r->json, "domain", F_REQUIRED | F_NONEMPTY | F_ONELINE, 253, &domain,
                      NULL) ||
        !field_string(r, r->json, "selector", F_REQUIRED | F_NONEMPTY | F_ONELINE, 63, &selector,
                      NULL) ||
        !field_string(r, r->json, "private_key", F_NULLABLE, 16384, &pem, NULL))
        return;
    /* The domain's rules are an address's: x@domain normalises it (IDN included). */
    snprintf(addr, sizeof(addr), "x@%s", domain);
    if (!email_normalize(addr, norm, lc, &why)) {
        reply_invalid(r, "domain", "domain is not a valid host name: %s", why);
        return;
    }
    if (!selector_ok(selector)) {
        reply_invalid(r, "selector", "selector must be 1-63 letters, digits and inner hyphens");
        return;
    }
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", TENANT(r));
    k.domain = xstrdup(lc + 2);
    /* DNS names ignore case: so does the selector's uniqueness. */
    k.selector = xstrdup(selector);
    for (char *c = k.selector; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    k.algorithm = xstrdup("rsa-sha256");
    if (pem != NULL) {
        if (dkim_key_from_pem(pem, &k.public_key, &bits) != MC_ERR_OK) {
            reply_invalid(r, "private_key",
                          "private_key must be a PEM RSA private key of at least %d bits",
                          DKIM_MIN_BITS);
            goto out;
        }
    } else if (dkim_key_generate(DKIM_BITS, &gen, &k.public_key) != MC_ERR_OK) {
        reply_error(r, MC_ERR_INTERNAL, "cannot generate a key");
        goto out;
    }
    k.key_bits = bits;
    k.private_key_enc = dkim_seal(r->app->secrets.dkim_kek, pem ? pem : gen);
    err = store_dkim_create(r->app->st, &k);
    if (err == MC_ERR_CONFLICT)
        reply_error(r, err, "the tenant already has a key for selector %s of %s", k.selector,
                    k.domain);
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "tenant");
    else {
        log_info("event=dkim_key_created tenant=%s domain=%s selector=%s", k.tenant_id, k.domain,
                 k.selector);
        reply_created(r, dkim_json(&k), k.id, NULL);
    }
out:
    crypto_wipe_str(gen);
    free(gen);
    dkim_key_cleanup(&k);
}

void
api_dkim_list(struct req *r)
{
    struct dkim_key_vec v = {0};
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    err = store_dkim_list(r->app->st, TENANT(r), &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, dkim_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    dkim_key_vec_cleanup(&v);
}

void
api_dkim_delete(struct req *r)
{
    mc_err err = store_dkim_delete(r->app->st, TENANT(r), req_param(r, "key_id"));

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "DKIM key");
    else
        reply_empty(r, 204);
}
