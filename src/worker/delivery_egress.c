/*
 * delivery_egress.c - the worker's egresses (issue 15, item 5): a pool per
 * egress besides 'default' (whose pool is the worker's main pool, made from
 * the configuration's --relay), and which egresses can take mail now.
 *
 * It does not choose a message's egress (the claim does, from the tenant's
 * pool: store_claim.c) or apply the per-site limits (delivery_sites.c).
 *
 * DESIGN
 * The loop thread owns the pools.  The egress table comes from the
 * database at start and again with every lease sweep (delivery_db.c); an
 * egress whose parameters changed gets a new pool and the old one retires:
 * it finishes what it holds and is freed once empty.  Failover: an egress
 * whose pool is backing off (its relay refused or could not be reached,
 * client.c's circuit breaker) is left out of the list each claim gets, so
 * its share of a pool goes to the other members; the messages it held come
 * back NOT_SENT, pending again without an attempt spent, and are claimed
 * through the others.  The breaker's probe finds the relay back, and the
 * egress is in the list again.  This is per process: each worker finds out
 * for itself.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "delivery_int.h"

static struct egress_out *
find(struct delivery *d, const char *name)
{
    for (int i = 0; i < d->neg; i++)
        if (!d->eg[i].retired && strcmp(d->eg[i].name, name) == 0)
            return &d->eg[i];
    return NULL;
}

static bool
is_default(const char *name)
{
    return name == NULL || name[0] == '\0' || strcmp(name, "default") == 0;
}

void
delivery_egress_set(struct delivery *d, const struct egress *list, int n)
{
    /* Gone or changed: retire. */
    for (int i = 0; i < d->neg; i++) {
        struct egress_out *o = &d->eg[i];
        bool keep = false;
        for (int k = 0; k < n && !keep && !o->retired; k++) {
            struct smtp_params p;
            char err[160];
            if (strcmp(list[k].name, o->name) != 0)
                continue;
            keep = app_egress_params(d->cfg, &list[k], &p, err, sizeof(err)) == MC_ERR_OK &&
                   memcmp(&p, &o->p, sizeof(p)) == 0;
        }
        if (!o->retired && !keep) {
            o->retired = true;
            log_info("event=egress_retired egress=%s", o->name);
            /* Its sites' pools were made from its old parameters: they retire too. */
            for (int k = 0; k < d->nspools; k++)
                if (strcmp(d->spools[k].egress, o->name) == 0)
                    d->spools[k].retired = true;
        }
    }
    /* New (or changed): a pool of its own. */
    for (int k = 0; k < n; k++) {
        struct egress_out *o;
        char err[160];
        if (is_default(list[k].name) || find(d, list[k].name) != NULL)
            continue;
        if (d->neg == MAX_EGRESSES) {
            log_warn("event=egress_skipped egress=%s reason=\"too many egresses\"", list[k].name);
            continue;
        }
        o = &d->eg[d->neg];
        memset(o, 0, sizeof(*o));
        if (app_egress_params(d->cfg, &list[k], &o->p, err, sizeof(err)) != MC_ERR_OK) {
            log_warn("event=egress_skipped egress=%s error=\"%s\"", list[k].name, err);
            continue;
        }
        o->pool = smtp_pool_new(d->base, &o->p, delivery_job_done, d);
        if (o->pool == NULL)
            continue;
        snprintf(o->name, sizeof(o->name), "%s", list[k].name);
        d->neg++;
        log_info("event=egress egress=%s relay=%s:%d max_connections=%d source=%s", o->name,
                 o->p.host, o->p.port, o->p.max_connections,
                 o->p.source_address[0] ? o->p.source_address : "-");
    }
}

struct smtp_pool *
delivery_egress_pool(struct delivery *d, const char *name)
{
    struct egress_out *o;

    if (is_default(name))
        return d->pool;
    o = find(d, name);
    return o ? o->pool : NULL;
}

const struct smtp_params *
delivery_egress_params(const struct delivery *d, const char *name)
{
    if (is_default(name))
        return &d->relay;
    for (int i = 0; i < d->neg; i++)
        if (!d->eg[i].retired && strcmp(d->eg[i].name, name) == 0)
            return &d->eg[i].p;
    return NULL;
}

int
delivery_egress_up(struct delivery *d)
{
    int n = 0;

    if (d->pool == NULL || !smtp_pool_backing_off(d->pool))
        snprintf(d->up_loop[n++], sizeof(d->up_loop[0]), "default");
    for (int i = 0; i < d->neg; i++)
        if (!d->eg[i].retired && !smtp_pool_backing_off(d->eg[i].pool))
            snprintf(d->up_loop[n++], sizeof(d->up_loop[0]), "%s", d->eg[i].name);
    d->nup_loop = n;
    return n;
}

int
delivery_egress_busy(const struct delivery *d)
{
    int n = 0;

    for (int i = 0; i < d->neg; i++)
        n += smtp_pool_busy(d->eg[i].pool);
    return n;
}

int
delivery_egress_conns(const struct delivery *d)
{
    int n = 0;

    for (int i = 0; i < d->neg; i++)
        n += smtp_pool_conns(d->eg[i].pool);
    return n;
}

void
delivery_egress_reap(struct delivery *d)
{
    for (int i = 0; i < d->neg;) {
        if (d->eg[i].retired && smtp_pool_busy(d->eg[i].pool) == 0) {
            smtp_pool_free(d->eg[i].pool);
            d->eg[i] = d->eg[--d->neg];
            continue;
        }
        i++;
    }
}

void
delivery_egress_drain(struct delivery *d)
{
    for (int i = 0; i < d->neg; i++)
        smtp_pool_drain(d->eg[i].pool);
}

void
delivery_egress_quit(struct delivery *d)
{
    for (int i = 0; i < d->neg; i++)
        smtp_pool_quit(d->eg[i].pool, NULL, NULL);
}

void
delivery_egress_free(struct delivery *d)
{
    for (int i = 0; i < d->neg; i++)
        smtp_pool_free(d->eg[i].pool);
    d->neg = 0;
}

bool
delivery_egress_take(struct delivery *d, struct egress **out, int *n)
{
    bool got;

    pthread_mutex_lock(&d->dbmu);
    got = d->eg_ready;
    if (got) {
        *out = d->eg_next;
        *n = d->neg_next;
        d->eg_next = NULL;
        d->neg_next = 0;
        d->eg_ready = false;
    }
    pthread_mutex_unlock(&d->dbmu);
    return got;
}
