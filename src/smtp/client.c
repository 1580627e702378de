/*
 * client.c - the pipelining SMTP client pool (see client.h).
 *
 * DESIGN
 * Each connection is a state machine driven by the relay's replies:
 *   CONNECTING -> GREETING -> EHLO -> [STARTTLS -> EHLO] -> [AUTH] -> READY
 * and in READY it runs transactions.  Commands that await a reply sit in a
 * FIFO of expectations (MAIL, RCPT, DATA, BODY, RSET, QUIT); a reply is
 * matched to the head.  With PIPELINING every command is written at once;
 * without it, only the head of the FIFO is on the wire.  After a 354 the
 * body goes out and, when pipelining, the next job's MAIL/RCPT/DATA follow
 * at once, so a connection keeps at most two jobs: one waiting for its
 * final reply, one in its envelope.
 *
 * Timeouts are per phase: connect_timeout for connect and greeting,
 * command_timeout for each command, data_timeout (RFC 5321 says at least
 * 10 minutes) while the final reply after end of data is awaited, because
 * giving up there is what duplicates mail.
 *
 * Failures: a reply of 4xx or 5xx ends that job; a lost connection ends its
 * jobs as TEMPFAIL (after end of data the outcome is unknown: the message
 * will be retried, at least once semantics).  A connection that fails
 * before READY trips the circuit breaker: no new connection for a while
 * (1 s doubling to 60 s) and every queued job comes back NOT_SENT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "mime.h"
#include "reply.h"

#define MAX_LINE 65536
#define MAX_EXPECT 8
#define BACKOFF_MIN_US 1000000LL
#define BACKOFF_MAX_US (60 * 1000000LL)

enum cstate { C_CONNECTING, C_GREETING, C_EHLO, C_STARTTLS, C_AUTH, C_AUTH_LOGIN, C_READY, C_QUIT };

enum ekind { E_MAIL, E_RCPT, E_DATA, E_BODY, E_RSET, E_QUIT, E_AUTH_USER, E_AUTH_PASS };

struct expect {
    enum ekind kind;
    struct smtp_job *job;
    char *cmd;    /* owned: the command to write, NULL for BODY */
    bool written;
};

struct conn {
    struct smtp_pool *pool;
    struct bufferevent *bev;
    enum cstate state;
    struct smtp_reply reply;
    struct smtp_ext ext;
    bool tls_on;
    bool ready_once; /* reached READY: failures after that do not trip the breaker */
    bool closing;    /* the relay said 421: no new job goes on this connection */
    int sent;
    struct expect q[MAX_EXPECT];
    int qlen;
    struct smtp_job *jobs[2]; /* jobs on this connection, oldest first */
    int njobs;
    struct conn *next;
};

struct smtp_pool {
    struct event_base *base; /* borrowed */
    struct smtp_params p;
    smtp_done_fn done;
    void *arg;
    SSL_CTX *ssl;
    struct smtp_job *head, *tail; /* queued jobs */
    int queued;
    struct conn *conns;
    int nconns;
    int64_t backoff_until; /* monotonic us */
    int64_t backoff;
    struct event *retry_ev;
};

static void conn_fail(struct conn *c, const char *why);
static void dispatch(struct smtp_pool *pool);

/* ---- URL ---- */

static bool
pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n + 1 && i + 2 <= n - 1 + 1 && i + 2 < n + 2) {
            char h[3] = {s[i + 1], i + 2 < n ? s[i + 2] : 0, 0};
            char *end;
            long v = strtol(h, &end, 16);
            if (*end != '\0' || end != h + 2)
                return false;
            c = (char)v;
            i += 2;
        }
        if (o + 1 >= outlen)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

mc_err
smtp_params_parse(const char *url, struct smtp_params *p, char *err, size_t errlen)
{
    const char *s, *at, *hostend, *q;
    bool implicit;
    long port;

    if (str_prefix(url, "smtp://")) {
        implicit = false;
        s = url + 7;
    } else if (str_prefix(url, "smtps://")) {
        implicit = true;
        s = url + 8;
    } else {
        snprintf(err, errlen, "the relay URL must start with smtp:// or smtps://");
        return MC_ERR_CONFIG;
    }
    q = strchr(s, '?');
    hostend = q ? q : s + strlen(s);
    at = NULL;
    for (const char *x = s; x < hostend; x++)
        if (*x == '@')
            at = x;
    p->user[0] = p->pass[0] = '\0';
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon == NULL || !pct_decode(s, (size_t)(colon - s), p->user, sizeof(p->user)) ||
            !pct_decode(colon + 1, (size_t)(at - colon - 1), p->pass, sizeof(p->pass)) ||
            p->user[0] == '\0') {
            snprintf(err, errlen, "the relay URL's credentials must be user:password@");
            return MC_ERR_CONFIG;
        }
        s = at + 1;
    }
    const char *colon = memchr(s, ':', (size_t)(hostend - s));
    const char *hend = colon ? colon : hostend;
    if (hend == s || (size_t)(hend - s) >= sizeof(p->host)) {
        snprintf(err, errlen, "the relay URL has no host");
        return MC_ERR_CONFIG;
    }
    memcpy(p->host, s, (size_t)(hend - s));
    p->host[hend - s] = '\0';
    port = implicit ? 465 : 25;
    if (colon) {
        char buf[8];
        char *end;
        size_t n = (size_t)(hostend - colon - 1);
        if (n == 0 || n >= sizeof(buf)) {
            snprintf(err, errlen, "the relay URL's port is not a number 1-65535");
            return MC_ERR_CONFIG;
        }
        memcpy(buf, colon + 1, n);
        buf[n] = '\0';
        port = strtol(buf, &end, 10);
        if (*end != '\0' || port < 1 || port > 65535) {
            snprintf(err, errlen, "the relay URL's port is not a number 1-65535");
            return MC_ERR_CONFIG;
        }
    }
    p->port = (int)port;
    p->tls = implicit ? SMTP_TLS_IMPLICIT : SMTP_TLS_AUTO;
    if (q) {
        q++;
        if (implicit) {
            snprintf(err, errlen, "smtps:// takes no starttls= option");
            return MC_ERR_CONFIG;
        }
        if (strcmp(q, "starttls=require") == 0)
            p->tls = SMTP_TLS_REQUIRE;
        else if (strcmp(q, "starttls=auto") == 0)
            p->tls = SMTP_TLS_AUTO;
        else if (strcmp(q, "starttls=off") == 0)
            p->tls = SMTP_TLS_OFF;
        else {
            snprintf(err, errlen, "the relay URL's option must be starttls=require|auto|off");
            return MC_ERR_CONFIG;
        }
    }
    return MC_ERR_OK;
}

/* ---- jobs ---- */

/* Notes a job's outcome without ending it (it may still be on a connection). */
static void
record(struct smtp_job *job, enum smtp_result res, int code, const char *enhanced,
       const char *text)
{
    job->result = res;
    job->from_relay = false;
    job->code = code;
    snprintf(job->enhanced, sizeof(job->enhanced), "%s", enhanced ? enhanced : "");
    snprintf(job->text, sizeof(job->text), "%s", text ? text : "");
    for (char *p = job->text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* Ends a job: it is off every connection and queue, and the caller may free it. */
static void
finish(struct smtp_pool *pool, struct smtp_job *job, enum smtp_result res, int code,
       const char *enhanced, const char *text)
{
    record(job, res, code, enhanced, text);
    pool->done(job, pool->arg);
}

static void
record_reply(struct conn *c, struct smtp_job *job, enum smtp_result res)
{
    record(job, res, c->reply.code, c->reply.enhanced,
           c->reply.text.data ? c->reply.text.data : "");
    job->from_relay = true;
}

static void
remove_job(struct conn *c, struct smtp_job *job)
{
    for (int i = 0; i < c->njobs; i++) {
        if (c->jobs[i] == job) {
            memmove(&c->jobs[i], &c->jobs[i + 1], (size_t)(c->njobs - i - 1) * sizeof(job));
            c->njobs--;
            return;
        }
    }
}

/* ---- writing ---- */

static void
set_timeout(struct conn *c)
{
    int secs = c->pool->p.command_timeout;
    struct timeval tv;

    if (c->state == C_CONNECTING || c->state == C_GREETING)
        secs = c->pool->p.connect_timeout;
    else if (c->qlen > 0 && c->q[0].kind == E_BODY)
        secs = c->pool->p.data_timeout;
    tv.tv_sec = secs;
    tv.tv_usec = 0;
    bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void
push(struct conn *c, enum ekind kind, struct smtp_job *job, char *cmd)
{
    if (c->qlen == MAX_EXPECT) { /* cannot happen: at most two jobs of four entries */
        free(cmd);
        conn_fail(c, "internal error: too many commands outstanding");
        return;
    }
    c->q[c->qlen].kind = kind;
    c->q[c->qlen].job = job;
    c->q[c->qlen].cmd = cmd;
    c->q[c->qlen].written = cmd == NULL;
    c->qlen++;
}

/* Writes the commands that may go out now: all with PIPELINING, else only the head. */
static void
flush_commands(struct conn *c)
{
    bool pipe = c->ext.pipelining && c->state == C_READY;

    for (int i = 0; i < c->qlen; i++) {
        if (!c->q[i].written) {
            if (i > 0 && !pipe)
                break;
            bufferevent_write(c->bev, c->q[i].cmd, strlen(c->q[i].cmd));
            c->q[i].written = true;
        }
        if (!pipe && i == 0)
            break;
    }
    set_timeout(c);
}

/* Queues and writes one command line (owned by the FIFO from here on). */
static void
send_cmd(struct conn *c, enum ekind kind, char *line)
{
    push(c, kind, NULL, line);
    flush_commands(c);
}

static void
start_job(struct conn *c, struct smtp_job *job)
{
    char line[1200];
    bool envid = c->ext.dsn && job->envid != NULL;

    c->jobs[c->njobs++] = job;
    job->failed = false;
    char size[32] = "";
    if (c->ext.size > 0)
        snprintf(size, sizeof(size), " SIZE=%zu", job->data.len);
    snprintf(line, sizeof(line), "MAIL FROM:<%s>%s%s%s%s%s\r\n", job->mail_from, size,
             job->utf8 && c->ext.smtputf8 ? " SMTPUTF8" : "",
             c->ext.eightbitmime ? " BODY=8BITMIME" : "", envid ? " ENVID=" : "",
             envid ? job->envid : "");
    push(c, E_MAIL, job, xstrdup(line));
    snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", job->rcpt_to);
    push(c, E_RCPT, job, xstrdup(line));
    push(c, E_DATA, job, xstrdup("DATA\r\n"));
    flush_commands(c);
}

static void
write_body(struct conn *c, struct smtp_job *job)
{
    struct buf out;

    buf_init(&out, 0);
    smtp_dot_stuff(job->data.data ? job->data.data : "", job->data.len, &out);
    bufferevent_write(c->bev, out.data, out.len);
    buf_cleanup(&out);
    push(c, E_BODY, job, NULL);
}

static void
quit(struct conn *c)
{
    c->state = C_QUIT;
    push(c, E_QUIT, NULL, xstrdup("QUIT\r\n"));
    flush_commands(c);
}

/* ---- connection life ---- */

static void
conn_free(struct conn *c)
{
    struct smtp_pool *pool = c->pool;

    for (struct conn **pp = &pool->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pool->nconns--;
    for (int i = 0; i < c->qlen; i++)
        free(c->q[i].cmd);
    if (c->bev)
        bufferevent_free(c->bev);
    smtp_reply_cleanup(&c->reply);
    free(c);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dispatch(arg);
}

/* The relay could not be reached: back off and hand every queued job back. */
static void
trip_breaker(struct smtp_pool *pool, const char *why)
{
    int64_t now = time_mono_us();
    struct timeval tv;

    /* Connections opened together fail together: one outage doubles the wait once. */
    if (now < pool->backoff_until) {
        while (pool->head) {
            struct smtp_job *job = pool->head;
            pool->head = job->next;
            pool->queued--;
            finish(pool, job, SMTP_NOT_SENT, 0, NULL, why);
        }
        pool->tail = NULL;
        return;
    }
    pool->backoff = pool->backoff ? pool->backoff * 2 : BACKOFF_MIN_US;
    if (pool->backoff > BACKOFF_MAX_US)
        pool->backoff = BACKOFF_MAX_US;
    pool->backoff_until = now + pool->backoff;
    log_warn("event=relay_unreachable relay=%s:%d backoff_ms=%lld reason=\"%s\"", pool->p.host,
             pool->p.port, (long long)(pool->backoff / 1000), why);
    while (pool->head) {
        struct smtp_job *job = pool->head;
        pool->head = job->next;
        pool->queued--;
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, why);
    }
    pool->tail = NULL;
    tv.tv_sec = pool->backoff / 1000000;
    tv.tv_usec = pool->backoff % 1000000;
    evtimer_add(pool->retry_ev, &tv);
}

static void
conn_fail(struct conn *c, const char *why)
{
    struct smtp_pool *pool = c->pool;
    bool before_ready = !c->ready_once;
    char reason[300];

    snprintf(reason, sizeof(reason), "%s", why);
    c->state = C_QUIT; /* nothing is dispatched to it from the callbacks below */
    while (c->njobs > 0) {
        struct smtp_job *job = c->jobs[0];
        bool body_out = false;
        for (int i = 0; i < c->qlen; i++)
            if (c->q[i].job == job && c->q[i].kind == E_BODY)
                body_out = true;
        remove_job(c, job);
        if (job->failed) /* a definite refusal came before the connection went */
            pool->done(job, pool->arg);
        else if (before_ready)
            finish(pool, job, SMTP_NOT_SENT, 0, NULL, reason);
        else
            finish(pool, job, SMTP_TEMPFAIL, 0, NULL,
                   body_out ? "connection lost after end of data: the outcome is unknown"
                            : reason);
    }
    conn_free(c);
    if (before_ready)
        trip_breaker(pool, reason);
    dispatch(pool);
}

static SSL *
new_ssl(struct smtp_pool *pool)
{
    SSL *ssl = SSL_new(pool->ssl);

    if (ssl == NULL)
        return NULL;
    SSL_set_tlsext_host_name(ssl, pool->p.host);
    if (pool->p.verify)
        SSL_set1_host(ssl, pool->p.host);
    return ssl;
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* Returns false when the connection failed (and is gone). */
static bool
start_tls(struct conn *c)
{
    SSL *ssl = new_ssl(c->pool);
    struct bufferevent *tls;

    if (ssl == NULL) {
        conn_fail(c, "cannot create a TLS session");
        return false;
    }
    tls = bufferevent_openssl_filter_new(c->pool->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL) {
        SSL_free(ssl);
        conn_fail(c, "cannot start TLS");
        return false;
    }
    c->bev = tls; /* the filter owns the socket bufferevent now */
    c->state = C_STARTTLS;
    bufferevent_setcb(tls, read_cb, NULL, event_cb, c);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    set_timeout(c);
    return true;
}

static void
send_ehlo(struct conn *c)
{
    c->state = C_EHLO;
    /* The entry is a reply slot; the connection's state says what it answers. */
    send_cmd(c, E_RSET, xasprintf("EHLO %s\r\n", c->pool->p.helo_name));
}

static char *
b64(const char *s, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static void
ready(struct conn *c)
{
    c->state = C_READY;
    if (!c->ready_once) {
        c->ready_once = true;
        c->pool->backoff = 0;
    }
    dispatch(c->pool);
}

/* Returns false when the connection failed (and is gone). */
static bool
after_ehlo(struct conn *c)
{
    const struct smtp_params *p = &c->pool->p;

    if (!c->tls_on && (p->tls == SMTP_TLS_REQUIRE || p->tls == SMTP_TLS_AUTO) &&
        c->ext.starttls) {
        c->state = C_STARTTLS;
        send_cmd(c, E_RSET, xstrdup("STARTTLS\r\n"));
        return true;
    }
    if (!c->tls_on && p->tls == SMTP_TLS_REQUIRE) {
        conn_fail(c, "the relay does not offer STARTTLS, which the relay URL requires");
        return false;
    }
    if (p->user[0]) {
        if (c->ext.auth_plain) {
            char creds[600];
            size_t n = (size_t)snprintf(creds, sizeof(creds), "%c%s%c%s", 0, p->user, 0, p->pass);
            char *enc = b64(creds, n);
            c->state = C_AUTH;
            send_cmd(c, E_RSET, xasprintf("AUTH PLAIN %s\r\n", enc));
            free(enc);
            memset(creds, 0, sizeof(creds));
        } else if (c->ext.auth_login) {
            c->state = C_AUTH_LOGIN;
            send_cmd(c, E_AUTH_USER, xstrdup("AUTH LOGIN\r\n"));
        } else {
            conn_fail(c, "the relay offers neither AUTH PLAIN nor AUTH LOGIN");
            return false;
        }
        return true;
    }
    ready(c);
    return true;
}

/* A whole reply arrived for the head of the FIFO.  Returns false when c is gone. */
static bool
on_reply(struct conn *c)
{
    struct smtp_reply *r = &c->reply;
    int cls = smtp_reply_class(r);
    struct expect e;

    if (c->state == C_GREETING) {
        if (r->code != 220) {
            char why[300];
            snprintf(why, sizeof(why), "greeting %d %.200s", r->code, r->text.data ? r->text.data : "");
            conn_fail(c, why);
            return false;
        }
        send_ehlo(c);
        return true;
    }
    if (c->qlen == 0) {
        conn_fail(c, "a reply came that no command asked for");
        return false;
    }
    e = c->q[0];
    memmove(&c->q[0], &c->q[1], (size_t)(c->qlen - 1) * sizeof(c->q[0]));
    c->qlen--;
    free(e.cmd);

    switch (c->state) {
    case C_EHLO:
        if (cls != 2) {
            conn_fail(c, "the relay refused EHLO");
            return false;
        }
        smtp_ehlo_parse(r, &c->ext);
        return after_ehlo(c);
    case C_STARTTLS:
        if (r->code != 220) {
            if (c->pool->p.tls == SMTP_TLS_REQUIRE) {
                conn_fail(c, "the relay refused STARTTLS");
                return false;
            }
            c->ext.starttls = false;
            return after_ehlo(c);
        }
        return start_tls(c);
    case C_AUTH:
        if (r->code != 235) {
            conn_fail(c, "the relay refused our credentials");
            return false;
        }
        ready(c);
        return true;
    case C_AUTH_LOGIN:
        if (e.kind == E_AUTH_USER && r->code == 334) {
            char *enc = b64(c->pool->p.user, strlen(c->pool->p.user));
            send_cmd(c, E_AUTH_PASS, xasprintf("%s\r\n", enc));
            free(enc);
        } else if (e.kind == E_AUTH_PASS && r->code == 334) {
            char *enc = b64(c->pool->p.pass, strlen(c->pool->p.pass));
            c->state = C_AUTH;
            send_cmd(c, E_RSET, xasprintf("%s\r\n", enc));
            free(enc);
        } else {
            conn_fail(c, "the relay refused AUTH LOGIN");
            return false;
        }
        return true;
    case C_QUIT:
    case C_READY:
    case C_CONNECTING:
    case C_GREETING:
        break;
    }

    switch (e.kind) {
    case E_MAIL:
    case E_RCPT:
        if (cls != 2 && !e.job->failed) {
            e.job->failed = true;
            record_reply(c, e.job, cls == 5 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
        }
        if (e.job->failed && !c->ext.pipelining) {
            /* Nothing else of this job is on the wire: drop it and reset. */
            for (int i = 0; i < c->qlen;) {
                if (c->q[i].job == e.job) {
                    free(c->q[i].cmd);
                    memmove(&c->q[i], &c->q[i + 1], (size_t)(c->qlen - i - 1) * sizeof(c->q[0]));
                    c->qlen--;
                } else
                    i++;
            }
            remove_job(c, e.job);
            push(c, E_RSET, NULL, xstrdup("RSET\r\n"));
            c->pool->done(e.job, c->pool->arg);
        }
        break;
    case E_DATA:
        if (r->code == 354 && !e.job->failed) {
            write_body(c, e.job);
            break;
        }
        if (r->code == 354) {
            /* RFC 2920: a 354 after a refused recipient still needs an end of data. */
            bufferevent_write(c->bev, ".\r\n", 3);
            push(c, E_RSET, NULL, NULL);
        } else {
            if (!e.job->failed)
                record_reply(c, e.job, cls == 5 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
            push(c, E_RSET, NULL, xstrdup("RSET\r\n"));
        }
        remove_job(c, e.job);
        c->pool->done(e.job, c->pool->arg);
        break;
    case E_BODY:
        remove_job(c, e.job);
        c->sent++;
        if (cls == 2)
            smtp_reply_queue_id(r, e.job->queue_id, sizeof(e.job->queue_id));
        record_reply(c, e.job, cls == 2 ? SMTP_SENT : cls == 5 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
        c->pool->done(e.job, c->pool->arg);
        break;
    case E_RSET:
    case E_AUTH_USER:
    case E_AUTH_PASS:
        break;
    case E_QUIT: {
        /* Its place in the pool is free now: queued messages may need it. */
        struct smtp_pool *pool = c->pool;
        conn_free(c);
        dispatch(pool);
        return false;
    }
    }
    /* 421 (RFC 5321 3.8): the relay is closing the channel.  A message
     * dispatched to it now would meet the close and spend an attempt. */
    if (r->code == 421 && c->state == C_READY)
        c->closing = true;
    if (c->state == C_READY && c->njobs == 0 &&
        (c->closing || (c->sent >= c->pool->p.max_messages && c->qlen == 0)))
        quit(c);
    flush_commands(c);
    dispatch(c->pool);
    return true;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line;

    while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
        enum smtp_parse st = smtp_reply_feed(&c->reply, line, len);
        free(line);
        if (st == SMTP_PARSE_ERROR) {
            conn_fail(c, "the relay sent a malformed reply");
            return;
        }
        if (st == SMTP_PARSE_DONE) {
            if (!on_reply(c))
                return; /* c is gone */
            smtp_reply_reset(&c->reply);
        }
    }
    if (evbuffer_get_length(in) > MAX_LINE)
        conn_fail(c, "the relay sent a line longer than 64 KiB");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    char why[256];

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == C_CONNECTING) {
            c->state = C_GREETING;
            c->tls_on = c->pool->p.tls == SMTP_TLS_IMPLICIT;
            set_timeout(c);
        } else if (c->state == C_STARTTLS) {
            c->tls_on = true;
            memset(&c->ext, 0, sizeof(c->ext));
            send_ehlo(c);
        }
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof(why), "timed out waiting for the relay (%s)",
                 c->qlen && c->q[0].kind == E_BODY ? "after end of data" : "command");
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof(why), "the relay closed the connection");
    else {
        unsigned long ssl_err = bufferevent_get_openssl_error(c->bev);
        if (ssl_err)
            snprintf(why, sizeof(why), "TLS: %s", ERR_reason_error_string(ssl_err));
        else
            snprintf(why, sizeof(why), "connection error: %s",
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    if (c->state == C_QUIT) {
        struct smtp_pool *pool = c->pool;
        conn_free(c);
        dispatch(pool);
        return;
    }
    conn_fail(c, why);
}

static void
conn_open(struct smtp_pool *pool)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    char port[8];

    c->pool = pool;
    smtp_reply_init(&c->reply, 4096);
    if (pool->p.tls == SMTP_TLS_IMPLICIT) {
        SSL *ssl = new_ssl(pool);
        c->bev = ssl ? bufferevent_openssl_socket_new(pool->base, -1, ssl,
                                                      BUFFEREVENT_SSL_CONNECTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
    } else
        c->bev = bufferevent_socket_new(pool->base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->next = pool->conns;
    pool->conns = c;
    pool->nconns++;
    if (c->bev == NULL) {
        conn_fail(c, "cannot create a connection");
        return;
    }
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    set_timeout(c);
    snprintf(port, sizeof(port), "%d", pool->p.port);
    /* Connects by name: numeric addresses need no resolver; others resolve synchronously. */
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (evutil_getaddrinfo(pool->p.host, port, &hints, &ai) != 0 || ai == NULL) {
        conn_fail(c, "cannot resolve the relay's host name");
        return;
    }
    int rc = bufferevent_socket_connect(c->bev, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (rc != 0)
        conn_fail(c, "cannot connect to the relay");
}

/* Hands queued jobs to connections that can take one, opening connections as needed. */
static void
dispatch(struct smtp_pool *pool)
{
    while (pool->head) {
        struct conn *best = NULL;
        for (struct conn *c = pool->conns; c; c = c->next) {
            if (c->state != C_READY || c->closing || c->sent + c->njobs >= pool->p.max_messages)
                continue;
            /* One job in its envelope at a time; a second only behind a body in flight. */
            int limit = c->ext.pipelining ? 2 : 1;
            if (c->njobs >= limit)
                continue;
            if (c->njobs == 1) {
                bool body_out = false;
                for (int i = 0; i < c->qlen; i++)
                    body_out |= c->q[i].kind == E_BODY;
                if (!body_out)
                    continue;
            }
            if (best == NULL || c->njobs < best->njobs)
                best = c;
        }
        if (best == NULL) {
            int opening = 0;
            for (struct conn *c = pool->conns; c; c = c->next)
                opening += c->state != C_READY && c->state != C_QUIT;
            if (pool->nconns < pool->p.max_connections && opening < pool->queued &&
                time_mono_us() >= pool->backoff_until)
                conn_open(pool);
            return;
        }
        struct smtp_job *job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
        job->next = NULL;
        /* Larger than the relay takes (SIZE, RFC 1870): it would be refused after DATA. */
        if (best->ext.size > 0 && (int64_t)job->data.len > best->ext.size) {
            finish(pool, job, SMTP_PERMFAIL, 552, "5.3.4",
                   "the message is larger than the relay's SIZE limit");
            continue;
        }
        /* Waited so long that its claim could expire mid-send: hand it back unsent. */
        if (job->deadline && time_mono_us() > job->deadline) {
            finish(pool, job, SMTP_NOT_SENT, 0, NULL,
                   "waited too long for a connection; handed back before sending");
            continue;
        }
        start_job(best, job);
    }
}

/* ---- the pool ---- */

struct smtp_pool *
smtp_pool_new(struct event_base *base, const struct smtp_params *p, smtp_done_fn done, void *arg)
{
    struct smtp_pool *pool = xcalloc(1, sizeof(*pool));

    pool->base = base;
    pool->p = *p;
    pool->done = done;
    pool->arg = arg;
    pool->ssl = SSL_CTX_new(TLS_client_method());
    if (pool->ssl == NULL) {
        free(pool);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(pool->ssl, TLS1_2_VERSION);
    if (p->verify) {
        SSL_CTX_set_verify(pool->ssl, SSL_VERIFY_PEER, NULL);
        if (p->ca_file ? SSL_CTX_load_verify_locations(pool->ssl, p->ca_file, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(pool->ssl) != 1)
            log_warn("event=tls warn=\"cannot load CA certificates%s%s\"", p->ca_file ? " from " : "",
                     p->ca_file ? p->ca_file : "");
    } else
        SSL_CTX_set_verify(pool->ssl, SSL_VERIFY_NONE, NULL);
    pool->retry_ev = evtimer_new(base, retry_cb, pool);
    return pool;
}

void
smtp_pool_submit(struct smtp_pool *pool, struct smtp_job *job)
{
    job->next = NULL;
    if (time_mono_us() < pool->backoff_until) {
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, "the relay is being backed off");
        return;
    }
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    dispatch(pool);
}

int
smtp_pool_busy(const struct smtp_pool *pool)
{
    int n = pool->queued;

    for (const struct conn *c = pool->conns; c; c = c->next)
        n += c->njobs;
    return n;
}

void
smtp_pool_drain(struct smtp_pool *pool)
{
    while (pool && pool->head) {
        struct smtp_job *job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, "mailcast is stopping; handed back unsent");
    }
}

bool
smtp_pool_backing_off(const struct smtp_pool *pool)
{
    return time_mono_us() < pool->backoff_until;
}

void
smtp_pool_free(struct smtp_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->head) {
        struct smtp_job *job = pool->head;
        pool->head = job->next;
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, "mailcast is stopping");
    }
    while (pool->conns) {
        struct conn *c = pool->conns;
        c->ready_once = true; /* a stop is no reason to trip the breaker */
        while (c->njobs > 0) {
            struct smtp_job *job = c->jobs[0];
            remove_job(c, job);
            finish(pool, job, SMTP_TEMPFAIL, 0, NULL, "mailcast stopped before the relay answered");
        }
        conn_free(c);
    }
    if (pool->retry_ev)
        event_free(pool->retry_ev);
    SSL_CTX_free(pool->ssl);
    free(pool);
}
