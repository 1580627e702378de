/*
 * metrics.c - request counters and latency histograms per route, rendered
 * in the Prometheus text format.  One mutex: an increment under it costs
 * less than the request's own work by orders of magnitude.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define NSTATUS 24
static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,   0.25,   0.5,   1,    2.5,   5, 10};
#define NBUCKETS ((int)(sizeof(bounds) / sizeof(bounds[0])))

struct route_stats {
    int status[NSTATUS];
    uint64_t count[NSTATUS];
    uint64_t bucket[NBUCKETS]; /* cumulative at render time, plain here */
    uint64_t n;
    double sum;
};

struct metrics {
    pthread_mutex_t mu;
    long connections;       /* open HTTP connections */
    int nroutes;
    struct route_stats *rs; /* owned: nroutes + 1, the last for unmatched requests */
};

struct metrics *
metrics_new(int n)
{
    struct metrics *m = xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->mu, NULL);
    m->nroutes = n;
    m->rs = xcalloc((size_t)n + 1, sizeof(*m->rs));
    return m;
}

void
metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->rs);
    free(m);
}

void
metrics_observe(struct metrics *m, int route, int status, int64_t dur_us)
{
    struct route_stats *s;
    double secs = (double)dur_us / 1e6;

    if (route < 0 || route >= m->nroutes)
        route = m->nroutes;
    pthread_mutex_lock(&m->mu);
    s = &m->rs[route];
    for (int i = 0; i < NSTATUS; i++) {
        if (s->status[i] == status || s->status[i] == 0) {
            s->status[i] = status;
            s->count[i]++;
            break;
        }
    }
    for (int i = 0; i < NBUCKETS; i++) {
        if (secs <= bounds[i]) {
            s->bucket[i]++;
            break;
        }
    }
    s->n++;
    s->sum += secs;
    pthread_mutex_unlock(&m->mu);
}

static const char *
route_label(struct metrics *m, int i)
{
    return i < m->nroutes ? routes[i].pattern : "unmatched";
}

static const char *
route_method(struct metrics *m, int i)
{
    return i < m->nroutes ? routes[i].method : "";
}

void
metrics_connections_add(struct metrics *m, int delta)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->connections += delta;
    pthread_mutex_unlock(&m->mu);
}

void
metrics_render(struct metrics *m, struct buf *out)
{
    pthread_mutex_lock(&m->mu);
    buf_printf(out, "# HELP mailcast_http_connections Open HTTP connections.\n"
                    "# TYPE mailcast_http_connections gauge\n"
                    "mailcast_http_connections %ld\n",
               m->connections);
    buf_puts(out, "# HELP mailcast_http_requests_total HTTP requests by route and status.\n"
                  "# TYPE mailcast_http_requests_total counter\n");
    for (int i = 0; i <= m->nroutes; i++)
        for (int j = 0; j < NSTATUS && m->rs[i].status[j]; j++)
            buf_printf(out,
                       "mailcast_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} "
                       "%llu\n",
                       route_method(m, i), route_label(m, i), m->rs[i].status[j],
                       (unsigned long long)m->rs[i].count[j]);
    buf_puts(out, "# HELP mailcast_http_request_duration_seconds HTTP request latency.\n"
                  "# TYPE mailcast_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= m->nroutes; i++) {
        const struct route_stats *s = &m->rs[i];
        uint64_t cum = 0;

        if (s->n == 0)
            continue;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += s->bucket[b];
            buf_printf(out,
                       "mailcast_http_request_duration_seconds_bucket{method=\"%s\","
                       "route=\"%s\",le=\"%g\"} %llu\n",
                       route_method(m, i), route_label(m, i), bounds[b],
                       (unsigned long long)cum);
        }
        buf_printf(out,
                   "mailcast_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                   "le=\"+Inf\"} %llu\n",
                   route_method(m, i), route_label(m, i), (unsigned long long)s->n);
        buf_printf(out,
                   "mailcast_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n",
                   route_method(m, i), route_label(m, i), s->sum);
        buf_printf(out,
                   "mailcast_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} "
                   "%llu\n",
                   route_method(m, i), route_label(m, i), (unsigned long long)s->n);
    }
    pthread_mutex_unlock(&m->mu);
}
