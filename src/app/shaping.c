/*
 * shaping.c - the operator's shaping document (issue 15) <-> the store's
 * table: parsed and validated in one place for PUT /api/v1/shaping and for
 * `--shaping FILE` at start, written back as JSON for GET.  Does not apply
 * the rules: claims pace by them (store_claim.c), the delivery worker
 * limits connections by them.
 *
 *   {"domains": {"gmail.com": "google", ...},
 *    "rules": [{"egress": "default", "site": "google", "max_connections": 10,
 *               "max_per_connection": 50, "per_second": 20, "per_minute": null}]}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/util.h"

#define INT_FIELDS 4
static const char *const int_names[INT_FIELDS] = {"max_connections", "max_per_connection",
                                                  "per_second", "per_minute"};

static bool
char_ok(char c, bool dots)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           (dots && (c == '.' || c == '_'));
}

/* A site's or an egress's name: 1-63 of [a-z0-9._-]. */
static bool
name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SHAPING_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!char_ok(s[i], true))
            return false;
    return true;
}

/* A lowercase domain: labels of [a-z0-9-], dot-separated, 1-253 characters. */
static bool
domain_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SHAPING_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && s[i + 1] == '.')
            return false;
        if (s[i] != '.' && !char_ok(s[i], false))
            return false;
    }
    return true;
}

static mc_err
bad(char *field, size_t flen, char *why, size_t wlen, const char *f, const char *w)
{
    snprintf(field, flen, "%s", f);
    snprintf(why, wlen, "%s", w);
    return MC_ERR_INVALID;
}

static mc_err
parse_rule(json_t *o, int i, struct shaping_rule *x, char *field, size_t flen, char *why,
           size_t wlen)
{
    const char *eg = json_string_value(json_object_get(o, "egress"));
    const char *site = json_string_value(json_object_get(o, "site"));
    int64_t *dst[INT_FIELDS] = {&x->max_connections, &x->max_per_connection, &x->per_second,
                                &x->per_minute};
    char f[64];

    snprintf(f, sizeof(f), "rules[%d]", i);
    if (!json_is_object(o))
        return bad(field, flen, why, wlen, f, "a rule must be an object");
    snprintf(f, sizeof(f), "rules[%d].egress", i);
    if (eg == NULL || !name_ok(eg))
        return bad(field, flen, why, wlen, f, "egress must be a name of 1-63 of a-z 0-9 . _ -");
    snprintf(f, sizeof(f), "rules[%d].site", i);
    if (site == NULL || (strcmp(site, "*") != 0 && !name_ok(site)))
        return bad(field, flen, why, wlen, f,
                   "site must be \"*\" or a name of 1-63 of a-z 0-9 . _ -");
    snprintf(x->egress, sizeof(x->egress), "%s", eg);
    snprintf(x->site, sizeof(x->site), "%s", site);
    for (int k = 0; k < INT_FIELDS; k++) {
        json_t *v = json_object_get(o, int_names[k]);
        snprintf(f, sizeof(f), "rules[%d].%s", i, int_names[k]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > INT32_MAX)
            return bad(field, flen, why, wlen, f, "must be null or an integer from 1 to 2147483647");
        *dst[k] = json_integer_value(v);
    }
    return MC_ERR_OK;
}

mc_err
app_shaping_parse(json_t *doc, struct shaping *out, char *field, size_t flen, char *why,
                  size_t wlen)
{
    json_t *domains = json_object_get(doc, "domains"), *rules = json_object_get(doc, "rules");
    struct shaping sh = {0};
    const char *dom;
    json_t *v;
    mc_err err = MC_ERR_OK;

    if (!json_is_object(domains))
        return bad(field, flen, why, wlen, "domains", "domains must be an object of domain: site");
    if (!json_is_array(rules))
        return bad(field, flen, why, wlen, "rules", "rules must be an array");
    sh.domains = xcalloc(json_object_size(domains) + 1, sizeof(*sh.domains));
    sh.rules = xcalloc(json_array_size(rules) + 1, sizeof(*sh.rules));
    json_object_foreach(domains, dom, v)
    {
        const char *site = json_string_value(v);
        char f[300];
        snprintf(f, sizeof(f), "domains.%s", dom);
        if (!domain_ok(dom)) {
            err = bad(field, flen, why, wlen, f, "a domain must be lowercase a-z 0-9 - labels");
            goto out;
        }
        if (site == NULL || !name_ok(site)) {
            err = bad(field, flen, why, wlen, f, "a site must be a name of 1-63 of a-z 0-9 . _ -");
            goto out;
        }
        snprintf(sh.domains[sh.ndomains].domain, sizeof(sh.domains[0].domain), "%s", dom);
        snprintf(sh.domains[sh.ndomains].site, sizeof(sh.domains[0].site), "%s", site);
        sh.ndomains++;
    }
    for (size_t i = 0; i < json_array_size(rules); i++) {
        struct shaping_rule *x = &sh.rules[sh.nrules];
        if ((err = parse_rule(json_array_get(rules, i), (int)i, x, field, flen, why, wlen)) !=
            MC_ERR_OK)
            goto out;
        for (int k = 0; k < sh.nrules; k++)
            if (strcmp(sh.rules[k].egress, x->egress) == 0 &&
                strcmp(sh.rules[k].site, x->site) == 0) {
                char f[64];
                snprintf(f, sizeof(f), "rules[%zu].site", i);
                err = bad(field, flen, why, wlen, f, "a second rule for the same egress and site");
                goto out;
            }
        sh.nrules++;
    }
    *out = sh;
    memset(&sh, 0, sizeof(sh));
out:
    shaping_cleanup(&sh);
    return err;
}

static json_t *
int_or_null(int64_t v)
{
    return v > 0 ? json_integer(v) : json_null();
}

json_t *
app_shaping_json(const struct shaping *sh)
{
    json_t *domains = json_object(), *rules = json_array();

    for (int i = 0; i < sh->ndomains; i++)
        json_object_set_new(domains, sh->domains[i].domain, json_string(sh->domains[i].site));
    for (int i = 0; i < sh->nrules; i++) {
        const struct shaping_rule *x = &sh->rules[i];
        json_array_append_new(
            rules, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "egress", x->egress, "site",
                             x->site, "max_connections", int_or_null(x->max_connections),
                             "max_per_connection", int_or_null(x->max_per_connection),
                             "per_second", int_or_null(x->per_second), "per_minute",
                             int_or_null(x->per_minute)));
    }
    return json_pack("{s:o, s:o}", "domains", domains, "rules", rules);
}

mc_err
app_shaping_load_file(struct store *st, const char *path, char *why, size_t wlen)
{
    struct shaping sh = {0};
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    char field[320], reason[160];
    mc_err err;

    if (doc == NULL) {
        snprintf(why, wlen, "%s: line %d: %s", path, jerr.line, jerr.text);
        return MC_ERR_INVALID;
    }
    err = app_shaping_parse(doc, &sh, field, sizeof(field), reason, sizeof(reason));
    json_decref(doc);
    if (err != MC_ERR_OK) {
        snprintf(why, wlen, "%s: %s: %s", path, field, reason);
        return err;
    }
    err = store_shaping_put(st, &sh);
    if (err != MC_ERR_OK)
        snprintf(why, wlen, "%s: cannot store it: %s", path, mc_err_str(err));
    shaping_cleanup(&sh);
    return err;
}
