/*
 * delivery_sites.c - per-site connection limits (issue 15): the mail of a
 * site whose shaping rule on an egress limits connections or messages per
 * connection goes through a pool of its own on that egress, made with those
 * limits (and never more connections than the egress's own cap), so at
 * most max_connections connections of this process carry the site's mail
 * through that egress, each for at most max_per_connection messages.  Every
 * other message goes through its egress's pool.  Limits are per process (each worker
 * opens its own connections); rates are shared through the database
 * (store_claim.c), not here.
 *
 * DESIGN
 * The loop thread owns the pools.  The rules come from the database at
 * start and again with every lease sweep (delivery_db.c); a site whose
 * limits changed gets a new pool, and the old one is retired: it finishes
 * what it holds and is freed once empty (delivery_sites_reap, on the tick).
 * Rules for site "*" pace every site but open no pools: a pool per domain
 * would be unbounded.  At most MAX_SITE_POOLS pools exist; beyond that a
 * site's mail goes through the main pool.
 *
 * Automation's set_connections caps (d->caps, read with every claim that
 * took something, so a cap holds before the next message goes) lower a
 * site pool's limit in place (smtp_pool_set_max_connections: the
 * connections above it finish what they carry and close), or make a pool
 * for a site without a rule; when the cap ends the limit goes back, and a
 * pool made for the cap alone retires.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "delivery_int.h"

static const struct shaping_rule *
rule_of(const struct delivery *d, const char *egress, const char *site)
{
    for (int k = 0; k < d->nsite_rules; k++)
        if (strcmp(d->site_rules[k].site, site) == 0 &&
            strcmp(d->site_rules[k].egress, egress) == 0)
            return &d->site_rules[k];
    return NULL;
}

/* The set_connections cap on (egress, site), 0: none (expired ones go on the tick). */
static int64_t
cap_of(const struct delivery *d, const char *egress, const char *site)
{
    int64_t cap = 0;

    for (int i = 0; i < d->ncaps; i++)
        if (strcmp(d->caps[i].site, site) == 0 && strcmp(d->caps[i].egress, egress) == 0 &&
            (cap == 0 || d->caps[i].max_connections < cap))
            cap = d->caps[i].max_connections;
    return cap;
}

/* The least of the egress's connection limit, the rule's and the cap. */
static int
limit_of(const struct smtp_params *base, const struct shaping_rule *r, int64_t cap)
{
    int n = base->max_connections;

    if (r && r->max_connections > 0 && r->max_connections < n)
        n = (int)r->max_connections;
    if (cap > 0 && cap < n)
        n = (int)cap;
    return n;
}

/* Gives sp the limit its egress, rule and cap allow now. */
static void
pool_limit(struct site_pool *sp, const struct smtp_params *base,
           const struct shaping_rule *r, int64_t cap)
{
    int n = limit_of(base, r, cap);

    if (n == sp->conns)
        return;
    smtp_pool_set_max_connections(sp->pool, n);
    log_info("event=site_pool_limit egress=%s site=%s max_connections=%d was=%d cap=%lld",
             sp->egress, sp->site, n, sp->conns, (long long)cap);
    sp->conns = n;
}

void
delivery_sites_caps(struct delivery *d)
{
    int64_t now = time_now_us();
    int n = 0;

    for (int i = 0; i < d->ncaps; i++)
        if (d->caps[i].until > now)
            d->caps[n++] = d->caps[i];
    d->ncaps = n;
    for (int i = 0; i < d->nspools; i++) {
        struct site_pool *sp = &d->spools[i];
        const struct smtp_params *base = delivery_egress_params(d, sp->egress);
        const struct shaping_rule *r = rule_of(d, sp->egress, sp->site);
        int64_t cap = cap_of(d, sp->egress, sp->site);
        if (sp->retired || base == NULL)
            continue;
        if (r == NULL && cap == 0) { /* made for a cap that has ended */
            sp->retired = true;
            log_info("event=site_pool_retired egress=%s site=%s why=cap_ended", sp->egress,
                     sp->site);
            continue;
        }
        pool_limit(sp, base, r, cap);
    }
}

void
delivery_sites_set(struct delivery *d, const struct shaping *sh)
{
    struct shaping_rule *old = d->site_rules;
    int n = 0, nold = d->nsite_rules;

    d->site_rules = xcalloc((size_t)sh->nrules + 1, sizeof(*d->site_rules));
    for (int i = 0; i < sh->nrules; i++) {
        const struct shaping_rule *r = &sh->rules[i];
        bool known = false;
        if (strcmp(r->site, "*") == 0 ||
            (r->max_connections <= 0 && r->max_per_connection <= 0))
            continue;
        d->site_rules[n++] = *r;
        for (int k = 0; k < nold && !known; k++)
            known = memcmp(&old[k], r, sizeof(*r)) == 0;
        if (!known) /* once per rule taken: the operator sees a change arrive */
            log_info("event=site_rule egress=%s site=%s max_connections=%lld "
                     "max_per_connection=%lld",
                     r->egress, r->site, (long long)r->max_connections,
                     (long long)r->max_per_connection);
    }
    free(old);
    d->nsite_rules = n;
    /* Pools whose limits are no longer the rule's retire. */
    for (int i = 0; i < d->nspools; i++) {
        struct site_pool *sp = &d->spools[i];
        const struct shaping_rule *r = rule_of(d, sp->egress, sp->site);
        /* A pool made for a cap alone stays while the cap does (delivery_sites_caps). */
        if (r == NULL && sp->max_connections == 0 && sp->max_per_connection == 0 &&
            cap_of(d, sp->egress, sp->site) > 0)
            continue;
        if (!sp->retired && (r == NULL || r->max_connections != sp->max_connections ||
                             r->max_per_connection != sp->max_per_connection)) {
            sp->retired = true;
            log_info("event=site_pool_retired egress=%s site=%s", sp->egress, sp->site);
        }
    }
}

struct smtp_pool *
delivery_sites_pool(struct delivery *d, const char *egress, const char *site, smtp_done_fn done)
{
    const char *eg = egress && egress[0] ? egress : "default";
    struct smtp_pool *main = delivery_egress_pool(d, eg);
    const struct smtp_params *base = delivery_egress_params(d, eg);
    const struct shaping_rule *r = NULL;
    struct smtp_params p;
    struct site_pool *sp;
    int64_t cap;

    if (main == NULL || base == NULL || site == NULL || site[0] == '\0')
        return main;
    r = rule_of(d, eg, site);
    cap = cap_of(d, eg, site);
    if (r == NULL && cap == 0)
        return main;
    for (int i = 0; i < d->nspools; i++)
        if (!d->spools[i].retired && strcmp(d->spools[i].site, site) == 0 &&
            strcmp(d->spools[i].egress, eg) == 0) {
            pool_limit(&d->spools[i], base, r, cap);
            return d->spools[i].pool;
        }
    if (d->nspools == MAX_SITE_POOLS)
        return main;
    p = *base;
    /* The rule's limit and the cap, never above the egress's own. */
    p.max_connections = limit_of(base, r, cap);
    if (r && r->max_per_connection > 0)
        p.max_messages = (int)r->max_per_connection;
    sp = &d->spools[d->nspools];
    memset(sp, 0, sizeof(*sp));
    sp->pool = smtp_pool_new(d->base, &p, done, d);
    if (sp->pool == NULL)
        return main;
    snprintf(sp->site, sizeof(sp->site), "%s", site);
    snprintf(sp->egress, sizeof(sp->egress), "%s", eg);
    sp->max_connections = r ? r->max_connections : 0;
    sp->max_per_connection = r ? r->max_per_connection : 0;
    sp->conns = p.max_connections;
    d->nspools++;
    log_info("event=site_pool egress=%s site=%s max_connections=%d max_per_connection=%d", eg,
             site,
             p.max_connections, p.max_messages);
    return sp->pool;
}

int
delivery_sites_busy(const struct delivery *d)
{
    int n = 0;

    for (int i = 0; i < d->nspools; i++)
        n += smtp_pool_busy(d->spools[i].pool);
    return n;
}

void
delivery_sites_reap(struct delivery *d)
{
    for (int i = 0; i < d->nspools;) {
        if (d->spools[i].retired && smtp_pool_busy(d->spools[i].pool) == 0) {
            smtp_pool_free(d->spools[i].pool);
            d->spools[i] = d->spools[--d->nspools];
            continue;
        }
        i++;
    }
}

void
delivery_sites_drain(struct delivery *d)
{
    for (int i = 0; i < d->nspools; i++)
        smtp_pool_drain(d->spools[i].pool);
}

void
delivery_sites_free(struct delivery *d)
{
    for (int i = 0; i < d->nspools; i++)
        smtp_pool_free(d->spools[i].pool);
    d->nspools = 0;
    free(d->site_rules);
    d->site_rules = NULL;
    d->nsite_rules = 0;
}
