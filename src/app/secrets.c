/*
 * secrets.c - the secrets every process shares through the database: the
 * operator key's hash, the unsubscribe-link keys and the DKIM
 * key-encryption key (see app.h).
 *
 * Each is a setting row made on first use with an insert that loses
 * cleanly to a racing process (store_setting_init answers CONFLICT), after
 * which the winner's value is read back, so processes starting together
 * agree.  This file does not check keys presented by API callers (that is
 * http/auth.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "app.h"
#include "core/crypto.h"

#define OPERATOR_SETTING "operator_key_sha256"
#define TOKEN_KEY "unsubscribe_key_v1"
#define TOKEN_KEY_PREVIOUS "unsubscribe_key_previous"
#define DKIM_KEK "dkim_kek_v1"

char *
app_operator_key_generate(void)
{
    unsigned char rnd[32];
    char hex[65], *key;

    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    key = xasprintf("mco_%s", hex);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_cleanse(hex, sizeof(hex));
    return key;
}

mc_err
app_operator_init(struct app *app, char **generated)
{
    char *stored = NULL, *key = NULL;
    char hash[65];
    mc_err err;

    *generated = NULL;
    if (app->cfg->operator_key != NULL) {
        crypto_sha256_hex(app->cfg->operator_key, strlen(app->cfg->operator_key),
                          app->operator_hash);
        return MC_ERR_OK;
    }
    err = store_setting_get(app->st, OPERATOR_SETTING, &stored);
    if (err == MC_ERR_NOT_FOUND) {
        key = app_operator_key_generate();
        crypto_sha256_hex(key, strlen(key), hash);
        err = store_setting_init(app->st, OPERATOR_SETTING, hash);
        if (err == MC_ERR_OK) {
            *generated = key;
            key = NULL;
            stored = xstrdup(hash);
        } else if (err == MC_ERR_CONFLICT) /* another process won the race */
            err = store_setting_get(app->st, OPERATOR_SETTING, &stored);
    }
    if (err == MC_ERR_OK) {
        if (stored == NULL || strlen(stored) != 64)
            err = MC_ERR_INTERNAL;
        else
            memcpy(app->operator_hash, stored, 65);
    }
    free(stored);
    if (key != NULL)
        OPENSSL_cleanse(key, strlen(key));
    free(key);
    return err;
}

/* Parses 64 hex digits into out; false when it is not that. */
static bool
hex32(const char *s, unsigned char out[32])
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            if (!isxdigit((unsigned char)c))
                return false;
            v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* A 32-byte secret kept (hex) in the settings table; made on first use. */
static mc_err
secret_load(struct store *st, const char *name, unsigned char out[32])
{
    unsigned char rnd[32];
    char hex[65], *stored = NULL;
    mc_err err;

    err = store_setting_get(st, name, &stored);
    if (err == MC_ERR_NOT_FOUND) {
        crypto_random(rnd, sizeof(rnd));
        crypto_hex(rnd, sizeof(rnd), hex);
        err = store_setting_init(st, name, hex);
        OPENSSL_cleanse(rnd, sizeof(rnd));
        OPENSSL_cleanse(hex, sizeof(hex));
        if (err == MC_ERR_OK || err == MC_ERR_CONFLICT) /* a racing process may have won */
            err = store_setting_get(st, name, &stored);
    }
    if (err == MC_ERR_OK && !hex32(stored, out))
        err = MC_ERR_INTERNAL;
    if (stored != NULL)
        OPENSSL_cleanse(stored, strlen(stored));
    free(stored);
    return err;
}

mc_err
app_secrets_load(struct store *st, struct secrets *out)
{
    struct secrets s = {0};
    char *prev = NULL;
    mc_err err = secret_load(st, TOKEN_KEY, s.token_keys[0]);

    if (err == MC_ERR_OK)
        s.ntoken_keys = 1;
    /* Links signed before the last rotation keep working. */
    if (err == MC_ERR_OK && store_setting_get(st, TOKEN_KEY_PREVIOUS, &prev) == MC_ERR_OK &&
        hex32(prev, s.token_keys[1]))
        s.ntoken_keys = 2;
    if (prev != NULL)
        OPENSSL_cleanse(prev, strlen(prev));
    free(prev);
    if (err == MC_ERR_OK)
        err = secret_load(st, DKIM_KEK, s.dkim_kek);
    if (err == MC_ERR_OK)
        *out = s;
    app_secrets_wipe(&s);
    return err;
}

void
app_secrets_wipe(struct secrets *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
}

mc_err
app_token_key_rotate(struct store *st)
{
    unsigned char rnd[32], cur[32];
    char hex[65];
    mc_err err;

    /* Make sure a current key exists before it becomes the previous one. */
    if ((err = secret_load(st, TOKEN_KEY, cur)) != MC_ERR_OK)
        return err;
    OPENSSL_cleanse(cur, sizeof(cur));
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    err = store_setting_rotate(st, TOKEN_KEY, TOKEN_KEY_PREVIOUS, hex);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_cleanse(hex, sizeof(hex));
    return err;
}

mc_err
app_secrets_peek(struct store *st, struct secrets *out)
{
    struct secrets s = {0};
    char *cur = NULL, *prev = NULL;
    mc_err err = store_setting_get(st, TOKEN_KEY, &cur);

    if (err == MC_ERR_OK && !hex32(cur, s.token_keys[0]))
        err = MC_ERR_INTERNAL;
    if (err == MC_ERR_OK) {
        s.ntoken_keys = 1;
        if (store_setting_get(st, TOKEN_KEY_PREVIOUS, &prev) == MC_ERR_OK &&
            hex32(prev, s.token_keys[1]))
            s.ntoken_keys = 2;
        *out = s;
    }
    if (cur != NULL)
        OPENSSL_cleanse(cur, strlen(cur));
    if (prev != NULL)
        OPENSSL_cleanse(prev, strlen(prev));
    free(cur);
    free(prev);
    app_secrets_wipe(&s);
    return err;
}
