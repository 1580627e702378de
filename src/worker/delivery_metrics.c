/*
 * delivery_metrics.c - the delivery worker's counters (outcomes by tenant,
 * SMTP latency, lease expiries, deferrals by site) and their Prometheus text.  The loop and
 * database threads write them and /metrics reads them from an HTTP
 * thread, all under d->mu.  This file decides nothing about delivery.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/timeutil.h"
#include "delivery_int.h"

static const char *const outcome_names[NOUTCOMES] = {"sent", "retry", "failed", "bounced",
                                                     "released"};
static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,    2.5,   5,    10,  30};
#define NLAT NLATENCY
_Static_assert(sizeof(latency_bounds) / sizeof(latency_bounds[0]) == NLAT,
               "one counter per latency bucket");

void
delivery_metrics_observe(struct delivery *d, const char *tenant_id, enum delivery_outcome out,
                         int64_t started)
{
    int t = 0;

    pthread_mutex_lock(&d->mu);
    while (t < d->m.ntenants && strcmp(d->m.tenants[t], tenant_id) != 0)
        t++;
    if (t == d->m.ntenants && t < METRIC_TENANTS)
        memcpy(d->m.tenants[d->m.ntenants++], tenant_id, MC_UUID_LEN + 1);
    if (t < METRIC_TENANTS)
        d->m.outcomes[t][out]++;
    if (started && out != OUT_RELEASE) {
        double secs = (double)(time_mono_us() - started) / 1e6;
        for (int b = 0; b < NLAT; b++)
            if (secs <= latency_bounds[b]) {
                d->m.lat_bucket[b]++;
                break;
            }
        d->m.lat_n++;
        d->m.lat_sum += secs;
    }
    pthread_mutex_unlock(&d->mu);
}

void
delivery_metrics_lease_expiries(struct delivery *d, int n)
{
    pthread_mutex_lock(&d->mu);
    d->m.lease_expiries += (uint64_t)n;
    pthread_mutex_unlock(&d->mu);
}

void
delivery_metrics_reslot(struct delivery *d)
{
    pthread_mutex_lock(&d->mu);
    d->m.reslots++;
    pthread_mutex_unlock(&d->mu);
}

void
delivery_metrics_deferral(struct delivery *d, const char *site)
{
    int s = 0;

    if (site[0] == '\0')
        return;
    pthread_mutex_lock(&d->mu);
    while (s < d->m.nsites && strcmp(d->m.sites[s], site) != 0)
        s++;
    if (s == d->m.nsites && s < METRIC_SITES)
        snprintf(d->m.sites[d->m.nsites++], sizeof(d->m.sites[0]), "%s", site);
    if (s < METRIC_SITES)
        d->m.site_deferrals[s]++;
    pthread_mutex_unlock(&d->mu);
}

void
delivery_metrics(struct delivery *d, struct buf *out)
{
    uint64_t cum = 0;

    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    buf_puts(out, "# HELP mailcast_messages_total Delivery outcomes by tenant.\n"
                  "# TYPE mailcast_messages_total counter\n");
    for (int t = 0; t < d->m.ntenants; t++)
        for (int o = 0; o < NOUTCOMES; o++)
            if (d->m.outcomes[t][o])
                buf_printf(out, "mailcast_messages_total{tenant=\"%s\",outcome=\"%s\"} %llu\n",
                           d->m.tenants[t], outcome_names[o],
                           (unsigned long long)d->m.outcomes[t][o]);
    buf_puts(out, "# HELP mailcast_smtp_duration_seconds From handing a message to the relay "
                  "to its final reply.\n# TYPE mailcast_smtp_duration_seconds histogram\n");
    for (int b = 0; b < NLAT; b++) {
        cum += d->m.lat_bucket[b];
        buf_printf(out, "mailcast_smtp_duration_seconds_bucket{le=\"%g\"} %llu\n",
                   latency_bounds[b], (unsigned long long)cum);
    }
    buf_printf(out,
               "mailcast_smtp_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
               "mailcast_smtp_duration_seconds_sum %.6f\n"
               "mailcast_smtp_duration_seconds_count %llu\n",
               (unsigned long long)d->m.lat_n, d->m.lat_sum, (unsigned long long)d->m.lat_n);
    buf_printf(out,
               "# HELP mailcast_lease_expiries_total Claims that expired and went back to "
               "pending.\n# TYPE mailcast_lease_expiries_total counter\n"
               "mailcast_lease_expiries_total %llu\n",
               (unsigned long long)d->m.lease_expiries);
    buf_printf(out,
               "# HELP mailcast_paced_reslots_total Paced messages that missed their slots "
               "and went back for new ones.\n# TYPE mailcast_paced_reslots_total counter\n"
               "mailcast_paced_reslots_total %llu\n",
               (unsigned long long)d->m.reslots);
    buf_puts(out, "# HELP mailcast_site_deferrals_total The relay's 4xx replies by destination "
                  "site (this process).\n# TYPE mailcast_site_deferrals_total counter\n");
    for (int s = 0; s < d->m.nsites; s++)
        buf_printf(out, "mailcast_site_deferrals_total{site=\"%s\"} %llu\n", d->m.sites[s],
                   (unsigned long long)d->m.site_deferrals[s]);
    pthread_mutex_unlock(&d->mu);
}
