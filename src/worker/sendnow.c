/*
 * sendnow.c - blocking sends for the test-send endpoint (see sendnow.h).
 *
 * It runs a private libevent loop with its own connection pool in the
 * calling thread, so a test send neither waits behind a campaign's queue
 * nor counts against any rate limit or statistic.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/crypto.h"
#include "core/log.h"
#include "app/app.h"
#include "sendnow.h"
#include "smtp/outbox.h"

struct waiter {
    struct event_base *base;
    int left;
};

static void
done(struct smtp_job *job, void *arg)
{
    struct waiter *w = arg;

    (void)job;
    if (--w->left == 0)
        event_base_loopbreak(w->base);
}

mc_err
send_now(const struct config *cfg, struct smtp_job **jobs, int n)
{
    struct waiter w = {NULL, n};
    struct smtp_params p;
    struct smtp_pool *pool;
    char err[160];
    mc_err e;

    if (str_prefix(cfg->relay, "dir:")) {
        const char *dir = cfg->relay + 4;
        for (int i = 0; i < n; i++) {
            unsigned char rnd[8];
            char name[32] = "test-";
            crypto_random(rnd, sizeof(rnd));
            crypto_hex(rnd, sizeof(rnd), name + 5);
            bool ok = outbox_open(dir) == MC_ERR_OK &&
                      outbox_write(dir, name, jobs[i]->data.data, jobs[i]->data.len) == MC_ERR_OK;
            jobs[i]->result = ok ? SMTP_SENT : SMTP_TEMPFAIL;
            jobs[i]->code = ok ? 250 : 0;
            snprintf(jobs[i]->text, sizeof(jobs[i]->text), "%s%s.eml",
                     ok ? "written to the outbox as " : "cannot write ", name);
        }
        return MC_ERR_OK;
    }
    if ((e = app_relay_params(cfg, &p, err, sizeof(err))) != MC_ERR_OK)
        return e;
    /* One connection is plenty for a handful of messages. */
    p.max_connections = 1;
    w.base = event_base_new();
    if (w.base == NULL)
        return MC_ERR_INTERNAL;
    pool = smtp_pool_new(w.base, &p, done, &w);
    if (pool == NULL) {
        event_base_free(w.base);
        return MC_ERR_INTERNAL;
    }
    for (int i = 0; i < n; i++)
        smtp_pool_submit(pool, jobs[i]);
    if (w.left > 0)
        event_base_dispatch(w.base);
    smtp_pool_free(pool);
    event_base_free(w.base);
    return MC_ERR_OK;
}
