/*
 * sender.c - the webhook sender: one thread that claims due deliveries from
 * the outbox, POSTs them with libcurl's multi interface and records the
 * results.  It does not decide what is queued (the store does, with the
 * events) and never keeps a receiver's response body.
 *
 * DESIGN
 * One thread, one CURLM: requests run concurrently (webhook_concurrency in
 * flight, webhook_endpoint_concurrency to one endpoint), and the multi
 * handle's connection cache reuses connections to an endpoint.  A round:
 * recover expired leases now and then; claim when there is room (at once
 * after a full claim, else every webhook_poll_ms, or when a batch's worth
 * finished; while claims come back empty with nothing in flight the
 * interval doubles up to idle_poll_max_ms, and webhook_sender_nudge(), after
 * this process committed outcomes or an API change, puts the next claim at
 * webhook_poll_ms after the last); drive the transfers; record every
 * finished one in one transaction (each result fenced on owner and
 * attempt); wait in curl_multi_poll, which webhook_sender_stop() interrupts.
 * Events written elsewhere (the bounce listener, the engine, another
 * process) wait for the next claim, at most idle_poll_max_ms.
 *
 * Claims are bigger than one endpoint's cap: the sender holds up to twice
 * the cap per endpoint (and at most webhook_concurrency in all), starting
 * what the cap allows and keeping the rest in a local queue (FIFO) that
 * starts each one as soon as a request to its endpoint ends.  So a claim
 * and a record take a whole cap's worth (a transaction per 16 webhooks by
 * default, not per 8) while never more than the cap is in flight to an
 * endpoint.  The leases still cover it: since at most a cap's worth waits
 * per endpoint and the total held never exceeds webhook_concurrency (a
 * queued job never waits for a slot in all), a queued job starts once the
 * cap of requests ahead of it ended, within one request timeout of its
 * claim; its own request takes another at most, inside the lease of twice
 * the timeout and 5 s.  One that waited longer anyway (a clock jump, a
 * stalled thread) is not sent but given back (store_webhook_release), as
 * is the whole queue on stop.
 *
 * Each request: POST with the Standard Webhooks headers (webhook-id is the
 * event's id, the same on every attempt; webhook-timestamp is the
 * attempt's; webhook-signature has one "v1,..." per signing secret), no
 * redirects, no proxy, http(s) only, connect timeout and total timeout from
 * the configuration, at most 64 KB of the response read (then cut).  Every
 * socket's address passes webhook_addr_allowed() in the open-socket
 * callback, so a host that resolves somewhere private at send time is
 * refused however it resolved when the endpoint was saved.
 *
 * Outcomes: 2xx succeeds; 410 disables the endpoint; 429 and 503 retry
 * after Retry-After (seconds or an HTTP date) when given; anything else
 * (3xx included) retries on the schedule with +-20 % jitter, and after the
 * schedule's last step the delivery fails for good (kept for replay).
 *
 * A killed worker loses nothing: its claims' leases (twice the request
 * timeout and 5 s, so a live request always ends first) expire and any
 * worker makes them pending again.  On stop, no new claims; requests in flight get
 * up to the stop timeout, then whatever is left is abandoned to its lease.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "webhook.h"

#define RESPONSE_CAP (64 * 1024)
#define RECOVER_EVERY_US (5 * 1000000LL)
#define RETRY_AFTER_CAP_S 86400
#define RECORD_EVERY_US (100 * 1000LL)

struct inflight {
    struct webhook_sender *s; /* borrowed */
    CURL *h;                  /* owned */
    struct curl_slist *headers; /* owned */
    struct webhook_job job;   /* owned */
    size_t got;               /* response bytes read (then dropped) */
    int64_t retry_after_s;    /* from a Retry-After header, 0 none */
    int64_t start_us;         /* monotonic */
    bool blocked;             /* the open-socket guard refused an address */
};

/* A claimed delivery waiting for a slot to its endpoint. */
struct queued {
    struct webhook_job job; /* owned */
    int64_t claimed_us;     /* monotonic */
};

struct webhook_sender {
    struct store *st;         /* borrowed */
    const struct config *cfg; /* borrowed */
    struct webhook_guard guard;
    int64_t schedule[WEBHOOK_SCHEDULE_MAX];
    int nschedule;
    char owner[96];
    CURLM *multi;             /* owned */
    struct inflight **live;   /* owned, nlive of them */
    int nlive;
    struct queued *queue;     /* owned, nqueue of them, oldest first */
    int nqueue;
    struct webhook_result *done; /* results not yet recorded */
    int ndone;
    int64_t first_done_us;    /* monotonic: when the oldest of them finished */
    int freed;                /* transfers finished since the last claim */
    int idle;                 /* empty claims in a row with nothing in hand */
    int64_t last_claim_us;    /* monotonic */
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop;
    bool nudged;              /* under mu: webhook_sender_nudge() was called */
    int stop_timeout_s;
};

int
webhook_schedule_parse(const char *s, int64_t *out, int max)
{
    int n = 0;

    while (s && *s) {
        char buf[24];
        size_t len = strcspn(s, ",");
        int64_t v;
        if (len == 0 || len >= sizeof(buf) || n == max)
            return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        if (!parse_int64(buf, 0, WEBHOOK_SCHEDULE_STEP_MAX_S, &v))
            return -1;
        out[n++] = v;
        s += len;
        if (*s == ',' && *++s == '\0')
            return -1;
    }
    return n > 0 ? n : -1;
}

void
webhook_config_check(const struct config *cfg, struct buf *errors)
{
    int64_t steps[WEBHOOK_SCHEDULE_MAX];
    struct webhook_guard g;

    if (webhook_schedule_parse(cfg->webhook_retry_schedule, steps, WEBHOOK_SCHEDULE_MAX) < 0)
        buf_printf(errors, "webhook_retry_schedule: must be 1 to %d comma-separated numbers of "
                           "seconds, each at most %d (30 days)\n",
                   WEBHOOK_SCHEDULE_MAX, WEBHOOK_SCHEDULE_STEP_MAX_S);
    if (webhook_guard_init(&g, cfg) != MC_ERR_OK)
        buf_printf(errors, "webhook_allow_cidr: must be at most %d comma-separated CIDRs "
                           "(127.0.0.1/32, 10.0.0.0/8, ::1/128)\n",
                   WEBHOOK_MAX_CIDRS);
}

static bool
stopping(struct webhook_sender *s)
{
    bool v;

    pthread_mutex_lock(&s->mu);
    v = s->stop;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static bool
take_nudge(struct webhook_sender *s)
{
    bool v;

    pthread_mutex_lock(&s->mu);
    v = s->nudged;
    s->nudged = false;
    pthread_mutex_unlock(&s->mu);
    return v;
}

void
webhook_sender_nudge(void *arg)
{
    struct webhook_sender *s = arg;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->nudged = true;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
}

/* The wait before attempt n + 1 after attempt n failed, jittered; 0 when none is left. */
static int64_t
next_attempt(const struct webhook_sender *s, int attempts, int64_t retry_after_s, int64_t now)
{
    uint32_t r;
    double f;

    if (attempts < 1 || attempts > s->nschedule)
        return 0;
    if (retry_after_s > 0)
        return now + (retry_after_s > RETRY_AFTER_CAP_S ? RETRY_AFTER_CAP_S : retry_after_s) *
                         1000000LL;
    crypto_random(&r, sizeof(r));
    f = 0.8 + 0.4 * ((double)r / 4294967295.0);
    return now + (int64_t)((double)s->schedule[attempts - 1] * 1000000.0 * f);
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
    struct inflight *f = arg;

    (void)p;
    f->got += size * n;
    /* Past the cap the transfer stops: the status line is all that counts. */
    return f->got > RESPONSE_CAP ? 0 : size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
    struct inflight *f = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";

    if (len > sizeof(name) && len < 200 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        char v[200];
        int64_t secs;
        size_t i = sizeof(name) - 1, k = 0;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (i < len && p[i] != '\r' && p[i] != '\n' && k < sizeof(v) - 1)
            v[k++] = p[i++];
        v[k] = '\0';
        if (parse_int64(v, 0, INT64_MAX / 2000000, &secs))
            f->retry_after_s = secs;
        else {
            time_t t = curl_getdate(v, NULL);
            if (t > 0 && t > time(NULL))
                f->retry_after_s = (int64_t)(t - time(NULL));
        }
    }
    return len;
}

static curl_socket_t
on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct inflight *f = arg;

    (void)purpose;
    if (!webhook_addr_allowed(&f->s->guard, &a->addr)) {
        f->blocked = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static void
inflight_free(struct inflight *f)
{
    if (f == NULL)
        return;
    if (f->h) {
        curl_multi_remove_handle(f->s->multi, f->h);
        curl_easy_cleanup(f->h);
    }
    curl_slist_free_all(f->headers);
    webhook_job_cleanup(&f->job);
    free(f);
}

/* Starts one request; false (and a result recorded) when it cannot start. */
static bool
start(struct webhook_sender *s, struct webhook_job *job)
{
    struct inflight *f = xcalloc(1, sizeof(*f));
    char sig[WEBHOOK_SIG_LEN], sig2[WEBHOOK_SIG_LEN];
    int64_t ts = time_now_us() / 1000000;
    char *h;

    f->s = s;
    f->job = *job;
    memset(job, 0, sizeof(*job));
    if (webhook_sign(f->job.secret, f->job.event_id, ts, f->job.body, sig) != MC_ERR_OK) {
        /* A stored secret that does not decode: fail the delivery, do not hold its lease. */
        log_error("event=webhook_sign_failed endpoint=%s", f->job.endpoint_id);
        if (s->ndone == 0)
            s->first_done_us = time_mono_us();
        s->done = xrealloc(s->done, (size_t)(s->ndone + 1) * sizeof(*s->done));
        struct webhook_result *x = &s->done[s->ndone++];
        memset(x, 0, sizeof(*x));
        memcpy(x->id, f->job.id, sizeof(x->id));
        memcpy(x->endpoint_id, f->job.endpoint_id, sizeof(x->endpoint_id));
        x->attempts = f->job.attempts;
        x->kind = WH_RESULT_FAIL;
        snprintf(x->error, sizeof(x->error), "bad_secret");
        inflight_free(f);
        return false;
    }
    f->headers = curl_slist_append(f->headers, "Content-Type: application/json");
    f->headers = curl_slist_append(f->headers, "User-Agent: mailcast-webhooks/1");
    h = xasprintf("webhook-id: %s", f->job.event_id);
    f->headers = curl_slist_append(f->headers, h);
    free(h);
    h = xasprintf("webhook-timestamp: %" PRId64, ts);
    f->headers = curl_slist_append(f->headers, h);
    free(h);
    /* During a rotation's grace both secrets sign: either verifies. */
    if (f->job.previous_secret &&
        webhook_sign(f->job.previous_secret, f->job.event_id, ts, f->job.body, sig2) ==
            MC_ERR_OK)
        h = xasprintf("webhook-signature: %s %s", sig, sig2);
    else
        h = xasprintf("webhook-signature: %s", sig);
    f->headers = curl_slist_append(f->headers, h);
    free(h);
    f->headers = curl_slist_append(f->headers, "Expect:");

    f->h = curl_easy_init();
    if (f->h == NULL)
        abort();
    curl_easy_setopt(f->h, CURLOPT_URL, f->job.url);
    curl_easy_setopt(f->h, CURLOPT_POST, 1L);
    curl_easy_setopt(f->h, CURLOPT_POSTFIELDS, f->job.body);
    curl_easy_setopt(f->h, CURLOPT_POSTFIELDSIZE, (long)strlen(f->job.body));
    curl_easy_setopt(f->h, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->h, CURLOPT_PROTOCOLS_STR, s->guard.allow_http ? "http,https" : "https");
    curl_easy_setopt(f->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(f->h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(f->h, CURLOPT_PROXY, "");
    curl_easy_setopt(f->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->h, CURLOPT_CONNECTTIMEOUT, (long)s->cfg->webhook_connect_timeout);
    curl_easy_setopt(f->h, CURLOPT_TIMEOUT, (long)s->cfg->webhook_timeout);
    curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(f->h, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(f->h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(f->h, CURLOPT_OPENSOCKETDATA, f);
    curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
    f->start_us = time_mono_us();
    curl_multi_add_handle(s->multi, f->h);
    s->live = xrealloc(s->live, (size_t)(s->nlive + 1) * sizeof(*s->live));
    s->live[s->nlive++] = f;
    return true;
}

/* The result of a finished transfer. */
static void
finish(struct webhook_sender *s, struct inflight *f, CURLcode rc)
{
    struct webhook_result *x;
    long code = 0;
    int64_t now = time_now_us();

    if (s->ndone == 0)
        s->first_done_us = time_mono_us();
    s->done = xrealloc(s->done, (size_t)(s->ndone + 1) * sizeof(*s->done));
    x = &s->done[s->ndone++];
    s->freed++;
    memset(x, 0, sizeof(*x));
    memcpy(x->id, f->job.id, sizeof(x->id));
    memcpy(x->endpoint_id, f->job.endpoint_id, sizeof(x->endpoint_id));
    x->attempts = f->job.attempts;
    x->latency_ms = (int)((time_mono_us() - f->start_us) / 1000);
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code);
    x->status_code = (int)code;
    if (code >= 200 && code < 300 && (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)) {
        x->kind = WH_RESULT_OK;
    } else if (code == 410) {
        x->kind = WH_RESULT_GONE;
        snprintf(x->error, sizeof(x->error), "gone");
    } else {
        x->kind = WH_RESULT_FAIL;
        const char *cls = "network";
        if (f->blocked)
            cls = "blocked_address";
        else if (code >= 300 && code < 400)
            cls = "redirect";
        else if (code >= 400)
            cls = "http_status";
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            cls = "timeout";
        else if (rc == CURLE_COULDNT_RESOLVE_HOST)
            cls = "dns";
        else if (rc == CURLE_COULDNT_CONNECT)
            cls = "connect";
        else if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION)
            cls = "tls";
        else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
            cls = "scheme";
        snprintf(x->error, sizeof(x->error), "%s", cls);
        x->next_attempt_at = next_attempt(s, x->attempts,
                                          code == 429 || code == 503 ? f->retry_after_s : 0, now);
        /* An endpoint whose address is refused gets no further attempts either way. */
    }
    log_info("event=webhook_attempt endpoint=%s delivery=%s attempt=%d status=%ld result=%s "
             "ms=%d",
             x->endpoint_id, x->id, x->attempts, code,
             x->kind == WH_RESULT_OK ? "ok" : x->error, x->latency_ms);
}

/*
 * Claims and records go in batches of what can be in flight (to one
 * endpoint, or in all, whichever is less), so a busy sender takes the
 * database's write lock a few times a second, not once per request.
 */
static int
batch_size(const struct webhook_sender *s)
{
    int64_t c = s->cfg->webhook_concurrency, e = s->cfg->webhook_endpoint_concurrency;

    return (int)(c < e ? c : e);
}

/* Records what finished: in batches, at most RECORD_EVERY_US after the oldest result. */
static void
record(struct webhook_sender *s, bool now)
{
    if (s->ndone == 0 ||
        (!now && s->ndone < batch_size(s) && time_mono_us() - s->first_done_us < RECORD_EVERY_US))
        return;
    mc_err err = store_webhook_record(s->st, s->owner, time_now_us(), s->done, s->ndone,
                                      s->cfg->webhook_disable_after_hours * 3600000000LL);
    if (err != MC_ERR_OK && store_reachable(s->st))
        log_warn("event=webhook_record_failed n=%d error=\"%s\"", s->ndone, mc_err_str(err));
    /* On failure the leases expire and the deliveries are tried again: at least once. */
    s->ndone = 0;
}

static void
drain(struct webhook_sender *s)
{
    CURLMsg *m;
    int left, running;

    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        struct inflight *f = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        finish(s, f, m->data.result);
        for (int i = 0; i < s->nlive; i++) {
            if (s->live[i] == f) {
                s->live[i] = s->live[--s->nlive];
                break;
            }
        }
        inflight_free(f);
    }
}

/* {"endpoint id": deliveries held (in flight or queued)} for the claim's per-endpoint cap. */
static char *
busy_json(struct webhook_sender *s)
{
    json_t *o = json_object();
    char *out;

    for (int i = 0; i < s->nlive + s->nqueue; i++) {
        const char *e = i < s->nlive ? s->live[i]->job.endpoint_id
                                     : s->queue[i - s->nlive].job.endpoint_id;
        json_t *v = json_object_get(o, e);
        json_object_set_new(o, e, json_integer(v ? json_integer_value(v) + 1 : 1));
    }
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* Requests in flight to one endpoint. */
static int
live_to(const struct webhook_sender *s, const char *endpoint_id)
{
    int n = 0;

    for (int i = 0; i < s->nlive; i++)
        n += strcmp(s->live[i]->job.endpoint_id, endpoint_id) == 0;
    return n;
}

/* Gives queued jobs back to the database (the first n of the ones in jobs); frees them. */
static void
release(struct webhook_sender *s, struct webhook_job *jobs, int n)
{
    int back = 0;
    mc_err err;

    if (n == 0)
        return;
    err = store_webhook_release(s->st, s->owner, time_now_us(), jobs, n, &back);
    if (err != MC_ERR_OK) {
        /* A database outage is logged once, by the store (db_unreachable). */
        if (store_reachable(s->st))
            log_warn("event=webhook_release_failed n=%d error=\"%s\"", n, mc_err_str(err));
    } else {
        log_info("event=webhook_released n=%d", back);
    }
    /* On failure their leases expire and they are tried again: at least once. */
    for (int i = 0; i < n; i++)
        webhook_job_cleanup(&jobs[i]);
}

/*
 * Starts every queued job its endpoint's cap (and the total) has room for,
 * oldest first; gives back, unsent, any that waited longer than a request
 * timeout and 2 s since its claim began (see DESIGN: it would not end inside
 * its lease for sure).
 */
static void
pump(struct webhook_sender *s)
{
    int64_t mono = time_mono_us(), late = (s->cfg->webhook_timeout + 2) * 1000000LL;
    struct webhook_job *stale = NULL; /* owned */
    int kept = 0, nstale = 0;

    for (int i = 0; i < s->nqueue; i++) {
        struct queued *q = &s->queue[i];
        if (mono - q->claimed_us > late) {
            stale = xrealloc(stale, (size_t)(nstale + 1) * sizeof(*stale));
            stale[nstale++] = q->job;
        } else if (s->nlive < s->cfg->webhook_concurrency &&
                   live_to(s, q->job.endpoint_id) < s->cfg->webhook_endpoint_concurrency) {
            start(s, &q->job); /* takes the job */
        } else {
            s->queue[kept++] = *q;
        }
    }
    s->nqueue = kept;
    if (nstale > 0)
        log_warn("event=webhook_queue_stale n=%d (given back unsent)", nstale);
    release(s, stale, nstale);
    free(stale);
}

/* Gives the whole queue back: on stop, what waits goes to another worker at once. */
static void
release_queue(struct webhook_sender *s)
{
    struct webhook_job *jobs; /* owned */

    if (s->nqueue == 0)
        return;
    jobs = xcalloc((size_t)s->nqueue, sizeof(*jobs));
    for (int i = 0; i < s->nqueue; i++)
        jobs[i] = s->queue[i].job;
    release(s, jobs, s->nqueue);
    s->nqueue = 0;
    free(jobs);
}

static void
claim(struct webhook_sender *s, int64_t *next_claim_us)
{
    /* Never more held than can be in flight in all: a queued job waits only for its endpoint. */
    int room = (int)s->cfg->webhook_concurrency - s->nlive - s->nqueue;
    struct webhook_job_vec v = {0};
    int64_t mono, claimed;
    char *busy;
    mc_err err;

    if (room <= 0)
        return;
    busy = busy_json(s);
    s->freed = 0;
    /* The queue's clock starts with the lease's, before the claim (which may wait for a lock). */
    claimed = time_mono_us();
    err = store_webhook_claim(s->st, s->owner, time_now_us(),
                              (2 * s->cfg->webhook_timeout + 5) * 1000000LL, room,
                              2 * (int)s->cfg->webhook_endpoint_concurrency, busy, &v);
    free(busy);
    /* A database outage is logged once, by the store (db_unreachable). */
    if (err != MC_ERR_OK && store_reachable(s->st))
        log_warn("event=webhook_claim_failed error=\"%s\"", mc_err_str(err));
    mono = time_mono_us();
    if (v.n > 0)
        s->queue = xrealloc(s->queue, (size_t)(s->nqueue + v.n) * sizeof(*s->queue));
    for (int i = 0; i < v.n; i++) {
        s->queue[s->nqueue++] = (struct queued){v.items[i], claimed};
        memset(&v.items[i], 0, sizeof(v.items[i])); /* moved */
    }
    pump(s);
    /* A full claim: more may be due at once; else wait for the poll,
     * longer while there is nothing to do. */
    if (v.n > 0 || s->nlive > 0 || s->nqueue > 0)
        s->idle = 0;
    else if (s->idle < 30)
        s->idle++;
    s->last_claim_us = mono;
    *next_claim_us = mono + (v.n == room ? 0
                                         : poll_backoff_ms(s->cfg->webhook_poll_ms,
                                                           s->cfg->idle_poll_max_ms, s->idle) *
                                               1000LL);
    webhook_job_vec_cleanup(&v);
}

static void *
run(void *arg)
{
    struct webhook_sender *s = arg;
    int64_t next_claim = 0, next_recover = 0, deadline = 0;

    for (;;) {
        int64_t mono = time_mono_us();
        bool stop = stopping(s);
        if (stop && deadline == 0)
            deadline = mono + s->stop_timeout_s * 1000000LL;
        if (stop && (s->nlive == 0 || mono >= deadline))
            break;
        if (!stop && mono >= next_recover) {
            int n = 0;
            store_webhook_recover(s->st, time_now_us(), &n);
            next_recover = mono + RECOVER_EVERY_US;
        }
        if (take_nudge(s) && s->idle > 0) {
            int64_t at = s->last_claim_us + s->cfg->webhook_poll_ms * 1000LL;
            s->idle = 0;
            if (at < next_claim)
                next_claim = at;
        }
        drain(s);
        if (stop)
            release_queue(s); /* no new requests on stop */
        else
            pump(s);
        /* Results first, so a claim sees the slots they freed. */
        record(s, false);
        if (!stop && (mono >= next_claim || s->freed >= batch_size(s)))
            claim(s, &next_claim);
        int64_t wait_ms = (next_claim - time_mono_us()) / 1000;
        if (s->ndone > 0 && (s->first_done_us + RECORD_EVERY_US - time_mono_us()) / 1000 < wait_ms)
            wait_ms = (s->first_done_us + RECORD_EVERY_US - time_mono_us()) / 1000;
        if (wait_ms < 0)
            wait_ms = 0;
        if (wait_ms > 100)
            wait_ms = 100;
        curl_multi_poll(s->multi, NULL, 0, (int)wait_ms, NULL);
    }
    drain(s);
    release_queue(s);
    record(s, true);
    if (s->nlive > 0)
        log_warn("event=webhook_stop abandoned=%d (their leases expire and they are retried)",
                 s->nlive);
    while (s->nlive > 0)
        inflight_free(s->live[--s->nlive]);
    return NULL;
}

struct webhook_sender *
webhook_sender_start(struct store *st, const struct config *cfg)
{
    struct webhook_sender *s = xcalloc(1, sizeof(*s));

    s->st = st;
    s->cfg = cfg;
    if (webhook_guard_init(&s->guard, cfg) != MC_ERR_OK)
        goto fail;
    s->nschedule =
        webhook_schedule_parse(cfg->webhook_retry_schedule, s->schedule, WEBHOOK_SCHEDULE_MAX);
    if (s->nschedule < 0) {
        log_error("event=config error=\"webhook_retry_schedule: comma-separated seconds, at most "
                  "%d\"",
                  WEBHOOK_SCHEDULE_MAX);
        goto fail;
    }
    crypto_owner_name("wh-", s->owner, sizeof(s->owner));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->multi = curl_multi_init();
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->webhook_concurrency);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        log_error("event=webhook error=\"cannot start the sender thread\"");
        curl_multi_cleanup(s->multi);
        pthread_mutex_destroy(&s->mu);
        goto fail;
    }
    log_info("event=webhook_sender_start owner=%s", s->owner);
    return s;
fail:
    free(s);
    return NULL;
}

void
webhook_sender_stop(struct webhook_sender *s, int timeout_s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    s->stop_timeout_s = timeout_s;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
    pthread_join(s->thread, NULL);
    curl_multi_cleanup(s->multi);
    pthread_mutex_destroy(&s->mu);
    free(s->live);
    free(s->queue);
    free(s->done);
    free(s);
}
