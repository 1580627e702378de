/*
 * sendnow.c - blocking sends for the test-send endpoint (see sendnow.h).
 *
 * It runs a private libevent loop with its own connection pool in the
 * calling thread, so a test send neither waits behind a campaign's queue
 * nor counts against any rate limit or statistic.  It leaves through the
 * egress it is given (the tenant's pool's heaviest member).
 *
 * The calling thread is an HTTP thread, so the whole wait is bounded by
 * test_send_timeout (config-checked below http_timeout), not by the 600 s
 * data timeout: a job the relay has not answered by then ends as failed,
 * saying so.  When every job has ended the connection says QUIT.
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
    struct smtp_pool *pool;
    int left;
    bool timed_out;
    int timeout_s;
};

static void
closed(void *arg)
{
    struct waiter *w = arg;

    event_base_loopbreak(w->base);
}

static void
quit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;

    (void)fd;
    (void)what;
    smtp_pool_quit(w->pool, closed, w);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;

    (void)fd;
    (void)what;
    w->timed_out = true;
    event_base_loopbreak(w->base);
}

static void
done(struct smtp_job *job, void *arg)
{
    struct waiter *w = arg;
    struct timeval now = {0, 0};

    if (w->timed_out) {
        job->result = SMTP_TEMPFAIL;
        job->code = 0;
        snprintf(job->text, sizeof(job->text),
                 "no answer from the relay within %d s (test_send_timeout); the message may "
                 "still be delivered",
                 w->timeout_s);
    }
    /* The QUIT goes out from the loop, not from inside the pool's callback. */
    if (--w->left == 0 && !w->timed_out)
        event_base_once(w->base, -1, EV_TIMEOUT, quit_cb, w, &now);
}

mc_err
send_now(const struct config *cfg, const struct egress *eg, struct smtp_job **jobs, int n)
{
    struct waiter w = {.left = n, .timeout_s = (int)cfg->test_send_timeout};
    struct timeval tv = {cfg->test_send_timeout, 0};
    struct event *timer = NULL;
    struct smtp_params p;
    struct smtp_pool *pool;
    char err[160];
    mc_err e;

    struct egress dflt = {.name = "default"};

    if (eg == NULL)
        eg = &dflt;
    if (eg->relay == NULL && str_prefix(cfg->relay, "dir:")) {
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
    if ((e = app_egress_params(cfg, eg, &p, err, sizeof(err))) != MC_ERR_OK)
        return e;
    /* One connection is plenty for a handful of messages. */
    p.max_connections = 1;
    w.base = event_base_new();
    if (w.base == NULL)
        return MC_ERR_INTERNAL;
    pool = smtp_pool_new(w.base, &p, done, &w);
    timer = evtimer_new(w.base, timeout_cb, &w);
    if (pool == NULL || timer == NULL) {
        smtp_pool_free(pool);
        if (timer)
            event_free(timer);
        event_base_free(w.base);
        return MC_ERR_INTERNAL;
    }
    w.pool = pool;
    evtimer_add(timer, &tv);
    for (int i = 0; i < n; i++)
        smtp_pool_submit(pool, jobs[i]);
    event_base_dispatch(w.base);
    w.timed_out = w.left > 0; /* what is left is ended by the free, as unanswered */
    if (w.timed_out)
        log_warn("event=test_send_timeout timeout_s=%d unanswered=%d", w.timeout_s, w.left);
    /* Cancels a resolution still running; one turn of the loop runs its callback. */
    smtp_pool_quit(pool, NULL, NULL);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    smtp_pool_free(pool);
    event_free(timer);
    event_base_free(w.base);
    return MC_ERR_OK;
}
