/*
 * shaping.c - the operator's shaping document (issue 15) <-> the store's
 * table: parsed and validated in one place for PUT /api/v1/shaping and for
 * `--shaping FILE` at start, written back as JSON for GET.  Does not apply
 * the rules: claims pace by them (store_claim.c), the delivery worker
 * limits connections by them.
 *
 *   {"domains": {"gmail.com": "google", ...},
 *    "rules": [{"egress": "default", "site": "google", "max_connections": 10,
 *               "max_per_connection": 50, "per_second": 20, "per_minute": null}],
 *    "automation": [{"egress": "default", "site": "google",
 *                    "match": {"code": 421, "enhanced": "4.7.28", "regex": "unusual rate"},
 *                    "trigger": {"count": 2, "period_s": 3600},   (or "immediate")
 *                    "action": {"type": "set_rate", "per_minute": 10},
 *                                (or {"type": "suspend_site"}, {"type": "suspend_tenant"},
 *                                 {"type": "set_connections", "max_connections": 1},
 *                                 {"type": "scale_rate", "factor": 0.5})
 *                    "duration_s": 1800}]}
 *
 *   A trigger may also be a deferral ratio (no match then: it counts every
 *   reply at the site): {"deferral_ratio": 0.3, "min_attempts": 50,
 *   "period_s": 600} fires when more than 30 % of at least 50 attempts at
 *   a site within 10 minutes were deferred.
 */
#include <regex.h>
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

bool
app_shaping_name_ok(const char *s)
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
    if (eg == NULL || !app_shaping_name_ok(eg))
        return bad(field, flen, why, wlen, f, "egress must be a name of 1-63 of a-z 0-9 . _ -");
    snprintf(f, sizeof(f), "rules[%d].site", i);
    if (site == NULL || (strcmp(site, "*") != 0 && !app_shaping_name_ok(site)))
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

#define DURATION_MAX (7 * 86400)

/* An integer field of o within [lo, hi]; absent or null leaves *dst (returns false when bad). */
static bool
int_in(json_t *o, const char *name, int64_t lo, int64_t hi, int64_t *dst)
{
    json_t *v = json_object_get(o, name);

    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *dst = json_integer_value(v);
    return true;
}

/* An enhanced status code prefix: class, then up to two numbers ("4", "4.7", "4.7.28"). */
static bool
enhanced_ok(const char *s)
{
    int dots = 0, digits = 0;

    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return false;
    for (const char *p = s + 1; *p; p++) {
        if (*p == '.') {
            if ((p > s + 1 && digits == 0) || ++dots > 2)
                return false;
            digits = 0;
        } else if (*p >= '0' && *p <= '9' && ++digits <= 3 && dots > 0)
            continue;
        else
            return false;
    }
    return dots == 0 || digits > 0;
}

static mc_err
parse_match(json_t *m, struct shaping_auto *x, const char *f, char *field, size_t flen, char *why,
            size_t wlen)
{
    const char *enh, *rx;
    int64_t code = 0;
    char ff[96];
    regex_t re;

    snprintf(ff, sizeof(ff), "%s.match", f);
    if (!json_is_object(m))
        return bad(field, flen, why, wlen, ff, "match must be an object of code, enhanced, regex");
    snprintf(ff, sizeof(ff), "%s.match.code", f);
    if (!int_in(m, "code", 400, 599, &code))
        return bad(field, flen, why, wlen, ff, "code must be null or a reply code from 400 to 599");
    x->match_code = (int)code;
    snprintf(ff, sizeof(ff), "%s.match.enhanced", f);
    enh = json_string_value(json_object_get(m, "enhanced"));
    if (json_object_get(m, "enhanced") && !json_is_null(json_object_get(m, "enhanced")) &&
        (enh == NULL || strlen(enh) >= sizeof(x->match_enhanced) || !enhanced_ok(enh)))
        return bad(field, flen, why, wlen, ff,
                   "enhanced must be null or a status code prefix such as 4.7 or 4.7.28");
    snprintf(x->match_enhanced, sizeof(x->match_enhanced), "%s", enh ? enh : "");
    snprintf(ff, sizeof(ff), "%s.match.regex", f);
    rx = json_string_value(json_object_get(m, "regex"));
    if (json_object_get(m, "regex") && !json_is_null(json_object_get(m, "regex"))) {
        if (rx == NULL || rx[0] == '\0' || strlen(rx) > SHAPING_REGEX_MAX)
            return bad(field, flen, why, wlen, ff, "regex must be null or 1-255 characters");
        if (regcomp(&re, rx, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
            return bad(field, flen, why, wlen, ff, "regex is not a valid POSIX extended expression");
        regfree(&re);
        snprintf(x->match_regex, sizeof(x->match_regex), "%s", rx);
    }
    return MC_ERR_OK;
}

/*
 * A fraction in (0, 1) given as a JSON number, in parts per million (1 to
 * 999999); false when v is not one.
 */
static bool
fraction_ppm(json_t *v, int64_t *out)
{
    double f;
    int64_t ppm;

    if (!json_is_number(v))
        return false;
    f = json_number_value(v);
    if (!(f > 0 && f < 1))
        return false;
    ppm = (int64_t)(f * 1e6 + 0.5);
    if (ppm < 1 || ppm > 999999)
        return false;
    *out = ppm;
    return true;
}

/* A JSON value that is absent, null or an object whose code, enhanced and regex are null. */
static bool
match_empty(json_t *m)
{
    static const char *const keys[] = {"code", "enhanced", "regex"};

    if (m == NULL || json_is_null(m))
        return true;
    if (!json_is_object(m))
        return false;
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *v = json_object_get(m, keys[k]);
        if (v != NULL && !json_is_null(v))
            return false;
    }
    return true;
}

/*
 * The trigger: "immediate", {count, period_s}, or {deferral_ratio,
 * min_attempts, period_s} (the share of the relay's replies to attempts at
 * the site that were deferrals).
 */
static bool
parse_trigger(json_t *trig, struct shaping_auto *x)
{
    x->trigger_count = 1;
    x->trigger_period_s = 0;
    if (json_is_string(trig) && strcmp(json_string_value(trig), "immediate") == 0)
        return true;
    if (!json_is_object(trig) || !json_is_integer(json_object_get(trig, "period_s")))
        return false;
    if (json_object_get(trig, "deferral_ratio") != NULL)
        return json_object_get(trig, "count") == NULL &&
               fraction_ppm(json_object_get(trig, "deferral_ratio"), &x->ratio_ppm) &&
               json_is_integer(json_object_get(trig, "min_attempts")) &&
               int_in(trig, "min_attempts", 1, 100000, &x->min_attempts) &&
               int_in(trig, "period_s", 1, SHAPING_RATIO_PERIOD_MAX, &x->trigger_period_s);
    return json_is_integer(json_object_get(trig, "count")) &&
           int_in(trig, "count", 1, 100000, &x->trigger_count) &&
           int_in(trig, "period_s", 1, 86400, &x->trigger_period_s);
}

/* The action and what it needs (f: the rule's field name, for errors). */
static mc_err
parse_action(json_t *act, struct shaping_auto *x, const char *f, char *field, size_t flen,
             char *why, size_t wlen)
{
    static const char *const actions[] = {"set_rate", "suspend_site", "suspend_tenant",
                                          "set_connections", "scale_rate"};
    const char *type = json_string_value(json_object_get(act, "type"));
    char ff[96];

    snprintf(ff, sizeof(ff), "%s.action", f);
    for (size_t k = 0; type && k < sizeof(actions) / sizeof(actions[0]); k++)
        if (strcmp(type, actions[k]) == 0)
            snprintf(x->action, sizeof(x->action), "%s", actions[k]);
    if (!json_is_object(act) || x->action[0] == '\0')
        return bad(field, flen, why, wlen, ff,
                   "action must be {type: set_rate | suspend_site | suspend_tenant | "
                   "set_connections | scale_rate}");
    if (!int_in(act, "per_second", 1, INT32_MAX, &x->per_second) ||
        !int_in(act, "per_minute", 1, INT32_MAX, &x->per_minute))
        return bad(field, flen, why, wlen, ff,
                   "per_second and per_minute must be null or integers from 1 to 2147483647");
    if (strcmp(x->action, "set_rate") == 0 && x->per_second == 0 && x->per_minute == 0)
        return bad(field, flen, why, wlen, ff, "set_rate needs per_second or per_minute");
    if (strcmp(x->action, "set_connections") == 0) {
        snprintf(ff, sizeof(ff), "%s.action.max_connections", f);
        if (!json_is_integer(json_object_get(act, "max_connections")) ||
            !int_in(act, "max_connections", 1, INT32_MAX, &x->max_connections))
            return bad(field, flen, why, wlen, ff,
                       "set_connections needs max_connections, an integer from 1 to 2147483647");
    }
    if (strcmp(x->action, "scale_rate") == 0) {
        snprintf(ff, sizeof(ff), "%s.action.factor", f);
        if (!fraction_ppm(json_object_get(act, "factor"), &x->factor_ppm))
            return bad(field, flen, why, wlen, ff,
                       "scale_rate needs factor, a number from 0.000001 to 0.999999");
    }
    return MC_ERR_OK;
}

static mc_err
parse_auto(json_t *o, int i, struct shaping_auto *x, char *field, size_t flen, char *why,
           size_t wlen)
{
    json_t *trig = json_object_get(o, "trigger"), *m = json_object_get(o, "match");
    const char *eg = json_string_value(json_object_get(o, "egress"));
    const char *site = json_string_value(json_object_get(o, "site"));
    char f[48], ff[96];
    mc_err err;

    snprintf(f, sizeof(f), "automation[%d]", i);
    if (!json_is_object(o))
        return bad(field, flen, why, wlen, f, "an automation rule must be an object");
    snprintf(ff, sizeof(ff), "%s.egress", f);
    if (eg == NULL || !app_shaping_name_ok(eg))
        return bad(field, flen, why, wlen, ff, "egress must be a name of 1-63 of a-z 0-9 . _ -");
    snprintf(ff, sizeof(ff), "%s.site", f);
    if (site == NULL || (strcmp(site, "*") != 0 && !app_shaping_name_ok(site)))
        return bad(field, flen, why, wlen, ff,
                   "site must be \"*\" or a name of 1-63 of a-z 0-9 . _ -");
    snprintf(x->egress, sizeof(x->egress), "%s", eg);
    snprintf(x->site, sizeof(x->site), "%s", site);
    snprintf(ff, sizeof(ff), "%s.trigger", f);
    if (!parse_trigger(trig, x))
        return bad(field, flen, why, wlen, ff,
                   "trigger must be \"immediate\", {count: 1-100000, period_s: 1-86400} or "
                   "{deferral_ratio: 0.000001-0.999999, min_attempts: 1-100000, "
                   "period_s: 1-3600}");
    if (x->ratio_ppm > 0) {
        /* A ratio counts every attempt and deferral at the site: no reply to match. */
        snprintf(ff, sizeof(ff), "%s.match", f);
        if (!match_empty(m))
            return bad(field, flen, why, wlen, ff,
                       "a deferral_ratio trigger counts every deferral at the site: match must "
                       "be absent or empty");
    } else if ((err = parse_match(m, x, f, field, flen, why, wlen)) != MC_ERR_OK)
        return err;
    if ((err = parse_action(json_object_get(o, "action"), x, f, field, flen, why, wlen)) !=
        MC_ERR_OK)
        return err;
    if (x->ratio_ppm > 0 && strcmp(x->action, "suspend_tenant") == 0) {
        snprintf(ff, sizeof(ff), "%s.action", f);
        return bad(field, flen, why, wlen, ff,
                   "suspend_tenant needs a reply that names its tenant: not with a "
                   "deferral_ratio trigger");
    }
    snprintf(ff, sizeof(ff), "%s.duration_s", f);
    if (!json_is_integer(json_object_get(o, "duration_s")) ||
        !int_in(o, "duration_s", 1, DURATION_MAX, &x->duration_s))
        return bad(field, flen, why, wlen, ff, "duration_s must be an integer from 1 to 604800");
    return MC_ERR_OK;
}

mc_err
app_shaping_parse(json_t *doc, struct shaping *out, char *field, size_t flen, char *why,
                  size_t wlen)
{
    json_t *domains = json_object_get(doc, "domains"), *rules = json_object_get(doc, "rules");
    json_t *autos;
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
    autos = json_object_get(doc, "automation");
    if (autos != NULL && !json_is_null(autos) && !json_is_array(autos)) {
        err = bad(field, flen, why, wlen, "automation", "automation must be an array");
        goto out;
    }
    sh.autos = xcalloc(json_array_size(autos) + 1, sizeof(*sh.autos));
    for (size_t i = 0; i < json_array_size(autos); i++) {
        if ((err = parse_auto(json_array_get(autos, i), (int)i, &sh.autos[i], field, flen, why,
                              wlen)) != MC_ERR_OK)
            goto out;
        sh.nautos++;
    }
    json_object_foreach(domains, dom, v)
    {
        const char *site = json_string_value(v);
        char f[300];
        snprintf(f, sizeof(f), "domains.%s", dom);
        if (!domain_ok(dom)) {
            err = bad(field, flen, why, wlen, f, "a domain must be lowercase a-z 0-9 - labels");
            goto out;
        }
        if (site == NULL || !app_shaping_name_ok(site)) {
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
    json_t *autos = json_array();
    for (int i = 0; i < sh->nautos; i++) {
        const struct shaping_auto *a = &sh->autos[i];
        json_t *trig;
        if (a->ratio_ppm > 0)
            trig = json_pack("{s:f, s:I, s:I}", "deferral_ratio", (double)a->ratio_ppm / 1e6,
                             "min_attempts", (json_int_t)a->min_attempts, "period_s",
                             (json_int_t)a->trigger_period_s);
        else if (a->trigger_period_s == 0 && a->trigger_count == 1)
            trig = json_string("immediate");
        else
            trig = json_pack("{s:I, s:I}", "count", (json_int_t)a->trigger_count, "period_s",
                             (json_int_t)a->trigger_period_s);
        json_t *act = json_pack("{s:s}", "type", a->action);
        if (strcmp(a->action, "set_rate") == 0) {
            json_object_set_new(act, "per_second", int_or_null(a->per_second));
            json_object_set_new(act, "per_minute", int_or_null(a->per_minute));
        } else if (strcmp(a->action, "set_connections") == 0)
            json_object_set_new(act, "max_connections", json_integer(a->max_connections));
        else if (strcmp(a->action, "scale_rate") == 0)
            json_object_set_new(act, "factor", json_real((double)a->factor_ppm / 1e6));
        json_array_append_new(
            autos, json_pack("{s:s, s:s, s:{s:o, s:o, s:o}, s:o, s:o, s:I}", "egress", a->egress,
                             "site", a->site, "match", "code", int_or_null(a->match_code),
                             "enhanced",
                             a->match_enhanced[0] ? json_string(a->match_enhanced) : json_null(),
                             "regex", a->match_regex[0] ? json_string(a->match_regex) : json_null(),
                             "trigger", trig, "action", act, "duration_s",
                             (json_int_t)a->duration_s));
    }
    return json_pack("{s:o, s:o, s:o}", "domains", domains, "rules", rules, "automation", autos);
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
