/*
 * store_shaping.c - the shaping table (issue 15): which site a recipient
 * domain belongs to (site_domains) and the rules per (egress, site)
 * (shaping_rules).  Read whole and replaced whole: the operator's document
 * is small.  How rules pace claims is store_claim.c's; how connection
 * limits apply is the delivery worker's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store_int.h"

void
shaping_cleanup(struct shaping *sh)
{
    free(sh->domains);
    free(sh->rules);
    free(sh->autos);
    memset(sh, 0, sizeof(*sh));
}

static void
domain_row(struct db *d, struct db_res *r, void *out)
{
    struct site_domain *x = out;
    const char *dom = d->ops->col_text(r, 0), *site = d->ops->col_text(r, 1);

    snprintf(x->domain, sizeof(x->domain), "%s", dom ? dom : "");
    snprintf(x->site, sizeof(x->site), "%s", site ? site : "");
}

static void
rule_row(struct db *d, struct db_res *r, void *out)
{
    struct shaping_rule *x = out;
    const char *eg = d->ops->col_text(r, 0), *site = d->ops->col_text(r, 1);

    snprintf(x->egress, sizeof(x->egress), "%s", eg ? eg : "");
    snprintf(x->site, sizeof(x->site), "%s", site ? site : "");
    x->max_connections = d->ops->col_int(r, 2);
    x->max_per_connection = d->ops->col_int(r, 3);
    x->per_second = d->ops->col_int(r, 4);
    x->per_minute = d->ops->col_int(r, 5);
}

static void
copy_text(struct db *d, struct db_res *r, int col, char *dst, size_t len)
{
    const char *s = d->ops->col_text(r, col);

    snprintf(dst, len, "%s", s ? s : "");
}

static void
auto_row(struct db *d, struct db_res *r, void *out)
{
    struct shaping_auto *x = out;

    copy_text(d, r, 0, x->egress, sizeof(x->egress));
    copy_text(d, r, 1, x->site, sizeof(x->site));
    x->match_code = (int)d->ops->col_int(r, 2);
    copy_text(d, r, 3, x->match_enhanced, sizeof(x->match_enhanced));
    copy_text(d, r, 4, x->match_regex, sizeof(x->match_regex));
    x->trigger_count = d->ops->col_int(r, 5);
    x->trigger_period_s = d->ops->col_int(r, 6);
    copy_text(d, r, 7, x->action, sizeof(x->action));
    x->per_second = d->ops->col_int(r, 8);
    x->per_minute = d->ops->col_int(r, 9);
    x->duration_s = d->ops->col_int(r, 10);
    x->ratio_ppm = d->ops->col_int(r, 11);
    x->min_attempts = d->ops->col_int(r, 12);
    x->max_connections = d->ops->col_int(r, 13);
    x->factor_ppm = d->ops->col_int(r, 14);
}

#define AUTO_COLS                                                                                \
    "egress, site, match_code, match_enhanced, match_regex, trigger_count, trigger_period_s, "    \
    "action, per_second, per_minute, duration_s, deferral_ratio_ppm, min_attempts, "             \
    "max_connections, factor_ppm"

mc_err
shaping_autos_read(struct db *d, struct shaping_auto **out, int *n)
{
    return db_fetch_all(d, "SELECT " AUTO_COLS " FROM shaping_automation ORDER BY position",
                        NULL, 0, auto_row, sizeof(**out), (void **)out, n);
}

mc_err
store_shaping_get(struct store *st, struct shaping *out)
{
    struct shaping sh = {0};
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_all(&d, "SELECT domain, site FROM site_domains ORDER BY site, domain", NULL,
                       0, domain_row, sizeof(*sh.domains), (void **)&sh.domains, &sh.ndomains);
    if (err == MC_ERR_OK)
        err = db_fetch_all(&d,
                           "SELECT egress, site, max_connections, max_per_connection, "
                           "per_second, per_minute FROM shaping_rules ORDER BY egress, site",
                           NULL, 0, rule_row, sizeof(*sh.rules), (void **)&sh.rules, &sh.nrules);
    if (err == MC_ERR_OK)
        err = shaping_autos_read(&d, &sh.autos, &sh.nautos);
    db_put(&d);
    if (err == MC_ERR_OK)
        *out = sh;
    else
        shaping_cleanup(&sh);
    return err;
}

static struct db_param
opt_int(int64_t v)
{
    return v > 0 ? P_INT(v) : P_NULL;
}

mc_err
store_shaping_put(struct store *st, const struct shaping *sh)
{
    struct db d;
    mc_err err;

    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_exec(&d, "DELETE FROM site_domains", NULL, 0, NULL);
    if (err == MC_ERR_OK)
        err = db_exec(&d, "DELETE FROM shaping_rules", NULL, 0, NULL);
    if (err == MC_ERR_OK)
        err = db_exec(&d, "DELETE FROM shaping_automation", NULL, 0, NULL);
    /* Hits are counted per rule position: a new document's rules count afresh
     * (a reordered one would otherwise inherit another rule's hits). */
    if (err == MC_ERR_OK)
        err = db_exec(&d, "DELETE FROM shaping_hits", NULL, 0, NULL);
    /* Deferral ratios too: a rule's last firing is one of the hits. */
    if (err == MC_ERR_OK)
        err = db_exec(&d, "DELETE FROM shaping_attempts", NULL, 0, NULL);
    for (int i = 0; i < sh->nautos && err == MC_ERR_OK; i++) {
        const struct shaping_auto *a = &sh->autos[i];
        struct db_param p[] = {P_INT(i),
                               P_TEXT(a->egress),
                               P_TEXT(a->site),
                               opt_int(a->match_code),
                               P_TEXT(a->match_enhanced[0] ? a->match_enhanced : NULL),
                               P_TEXT(a->match_regex[0] ? a->match_regex : NULL),
                               P_INT(a->trigger_count),
                               P_INT(a->trigger_period_s),
                               P_TEXT(a->action),
                               opt_int(a->per_second),
                               opt_int(a->per_minute),
                               P_INT(a->duration_s),
                               opt_int(a->ratio_ppm),
                               opt_int(a->min_attempts),
                               opt_int(a->max_connections),
                               opt_int(a->factor_ppm)};
        err = db_exec(&d,
                      "INSERT INTO shaping_automation (position, " AUTO_COLS ") VALUES ($1, $2, "
                      "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                      p, NPARAMS(p), NULL);
    }
    for (int i = 0; i < sh->ndomains && err == MC_ERR_OK; i++) {
        struct db_param p[] = {P_TEXT(sh->domains[i].domain), P_TEXT(sh->domains[i].site)};
        err = db_exec(&d, "INSERT INTO site_domains (domain, site) VALUES ($1, $2)", p,
                      NPARAMS(p), NULL);
    }
    for (int i = 0; i < sh->nrules && err == MC_ERR_OK; i++) {
        const struct shaping_rule *x = &sh->rules[i];
        struct db_param p[] = {P_TEXT(x->egress),
                               P_TEXT(x->site),
                               opt_int(x->max_connections),
                               opt_int(x->max_per_connection),
                               opt_int(x->per_second),
                               opt_int(x->per_minute)};
        err = db_exec(&d,
                      "INSERT INTO shaping_rules (egress, site, max_connections, "
                      "max_per_connection, per_second, per_minute) VALUES ($1, $2, $3, $4, $5, $6)",
                      p, NPARAMS(p), NULL);
    }
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_put(&d);
    return err;
}
