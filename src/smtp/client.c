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
 * Every state change goes through enter_state(), which logs old -> new at
 * debug level.  A connection left with nothing to do for idle_timeout
 * (shorter than a relay's own idle timeout) says QUIT rather than being
 * dropped, and smtp_pool_quit() does the same for every idle connection at a
 * stop (RFC 5321 4.1.1.10).  The relay's name is resolved with evdns on the
 * loop, so a slow DNS answer stalls no other connection.
 *
 * Failures: a reply of 4xx or 5xx ends that job; a lost connection ends its
 * jobs as TEMPFAIL (after end of data the outcome is unknown: the message
 * will be retried, at least once semantics).  A connection that fails
 * before READY trips the circuit breaker: no job is taken for a while
 * (1 s doubling to 60 s) and every queued job comes back NOT_SENT.  While
 * the breaker is open, a probe connection (no job) is opened every
 * min(backoff, PROBE_MAX_US), so a relay that has recovered is used again
 * within seconds, not at the end of a 60 s backoff; the outage is logged
 * once when it starts and once when the relay is reachable again (with its
 * length and the number of failures not logged in between).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/crypto.h>
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
#define PROBE_MAX_US (5 * 1000000LL)

enum cstate { C_CONNECTING, C_GREETING, C_EHLO, C_STARTTLS, C_AUTH, C_AUTH_LOGIN, C_READY, C_QUIT };

static const char *const cstate_names[] = {"CONNECTING", "GREETING", "EHLO", "STARTTLS",
                                           "AUTH",       "AUTH_LOGIN", "READY", "QUIT"};

enum ekind { E_MAIL, E_RCPT, E_DATA, E_BODY, E_RSET, E_QUIT, E_AUTH_USER, E_AUTH_PASS };

struct expect {
    enum ekind kind;
    struct smtp_job *job;
    char *cmd;    /* owned: the command to write, NULL for BODY */
    bool written;
    bool secret;  /* carries credentials: wiped before it is freed */
};

/*
 * A connection keeps its body buffer for the next message up to this size:
 * at most 2 MB with the default 8 connections.
 */
#define BODY_KEEP_MAX (256 * 1024)

struct conn {
    struct smtp_pool *pool;
    struct bufferevent *bev;
    enum cstate state;
    struct smtp_reply reply;
    struct smtp_ext ext;
    bool tls_on;
    bool helo;       /* EHLO was refused: HELO went instead (RFC 5321 §3.2), no extensions */
    bool ready_once; /* reached READY: failures after that do not trip the breaker */
    bool closing;    /* the relay said 421, or the pool shrank: no new job goes on it */
    bool probe;      /* opened by the breaker to see whether the relay is back */
    struct evdns_getaddrinfo_request *dns_req; /* the relay's name being resolved */
    bool opening;    /* inside conn_open: a resolution that completes at once is stashed */
    int sync_err;
    struct evutil_addrinfo *sync_ai;
    int sent;
    struct expect q[MAX_EXPECT];
    int qlen;
    struct smtp_job *jobs[2]; /* jobs on this connection, oldest first */
    int njobs;
    struct buf body; /* the dot-stuffed body being written, kept to be reused */
    struct conn *next;
};

struct smtp_pool {
    struct event_base *base; /* borrowed */
    struct smtp_params p;
    smtp_done_fn done;
    void *arg;
    SSL_CTX *ssl;
    struct smtp_job *head, *tail; /* queued jobs */
    int queued, queued_paced;
    struct conn *conns;
    int nconns;
    int64_t backoff_until; /* monotonic us */
    int64_t backoff;
    struct event *retry_ev;
    struct evdns_base *dns; /* owned */
    int64_t outage_since;   /* monotonic us when the relay became unreachable; 0: reachable */
    int outage_repeats;     /* failures during the outage not logged */
    bool quitting;          /* smtp_pool_quit(): no new connection, idle ones say QUIT */
    void (*closed)(void *); /* called once when quitting and the last connection is gone */
    void *closed_arg;
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

/* ---- states ---- */

/* The one place a connection's state changes. */
static void
enter_state(struct conn *c, enum cstate st)
{
    log_debug("event=smtp_state relay=%s:%d conn=%p state=%s->%s", c->pool->p.host,
              c->pool->p.port, (void *)c, cstate_names[c->state], cstate_names[st]);
    c->state = st;
}

static bool
conn_idle(const struct conn *c)
{
    return c->state == C_READY && c->qlen == 0 && c->njobs == 0;
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
    else if (conn_idle(c))
        secs = c->pool->p.idle_timeout; /* its expiry says QUIT (event_cb) */
    tv.tv_sec = secs;
    tv.tv_usec = 0;
    bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void
cmd_free(struct expect *e)
{
    if (e->cmd && e->secret)
        OPENSSL_cleanse(e->cmd, strlen(e->cmd));
    free(e->cmd);
    e->cmd = NULL;
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
    c->q[c->qlen].secret = false;
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

/* send_cmd() for a line with credentials in it: wiped once answered. */
static void
send_secret(struct conn *c, enum ekind kind, char *line)
{
    push(c, kind, NULL, line);
    if (c->qlen > 0 && c->q[c->qlen - 1].cmd == line)
        c->q[c->qlen - 1].secret = true;
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
    /* The body is 7-bit (quoted-printable, base64) unless its headers carry UTF-8
     * under SMTPUTF8; a bounce needs only the headers, where the reference is. */
    snprintf(line, sizeof(line), "MAIL FROM:<%s>%s%s%s%s%s%s\r\n", job->mail_from, size,
             job->utf8 && c->ext.smtputf8 ? " SMTPUTF8" : "",
             job->utf8 && c->ext.eightbitmime ? " BODY=8BITMIME" : "",
             c->ext.dsn ? " RET=HDRS" : "", envid ? " ENVID=" : "", envid ? job->envid : "");
    push(c, E_MAIL, job, xstrdup(line));
    snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", job->rcpt_to);
    push(c, E_RCPT, job, xstrdup(line));
    push(c, E_DATA, job, xstrdup("DATA\r\n"));
    flush_commands(c);
}

static void
write_body(struct conn *c, struct smtp_job *job)
{
    /* The connection's buffer, grown once, not for every message (bufferevent_write copies it). */
    buf_reset(&c->body);
    smtp_dot_stuff(job->data.data ? job->data.data : "", job->data.len, &c->body);
    bufferevent_write(c->bev, c->body.data, c->body.len);
    if (c->body.cap > BODY_KEEP_MAX) /* a rare large message's buffer is not kept */
        buf_cleanup(&c->body);
    push(c, E_BODY, job, NULL);
}

static void
quit(struct conn *c)
{
    enter_state(c, C_QUIT);
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
    if (c->dns_req) /* its callback sees EVUTIL_EAI_CANCEL and leaves c alone */
        evdns_getaddrinfo_cancel(c->dns_req);
    for (int i = 0; i < c->qlen; i++)
        cmd_free(&c->q[i]);
    if (c->bev)
        bufferevent_free(c->bev);
    smtp_reply_cleanup(&c->reply);
    buf_cleanup(&c->body);
    free(c);
    if (pool->quitting && pool->nconns == 0 && pool->closed) {
        void (*fn)(void *) = pool->closed;
        pool->closed = NULL;
        fn(pool->closed_arg);
    }
}

static void conn_open(struct smtp_pool *pool, bool probe);

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_pool *pool = arg;
    bool connecting = false;

    (void)fd;
    (void)what;
    for (struct conn *c = pool->conns; c; c = c->next)
        connecting |= c->state != C_READY && c->state != C_QUIT;
    /* The relay is still marked unreachable: one probe, no job at stake. */
    if (pool->outage_since && !pool->quitting && !connecting &&
        pool->nconns < pool->p.max_connections)
        conn_open(pool, true);
    else
        dispatch(pool);
}

/* The first queued job, taken off the queue (NULL: none). */
static struct smtp_job *
queue_pop(struct smtp_pool *pool)
{
    struct smtp_job *job = pool->head;

    if (job == NULL)
        return NULL;
    pool->head = job->next;
    if (pool->head == NULL)
        pool->tail = NULL;
    pool->queued--;
    pool->queued_paced -= job->paced;
    job->next = NULL;
    return job;
}

static void
queue_push(struct smtp_pool *pool, struct smtp_job *job)
{
    job->next = NULL;
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pool->queued_paced += job->paced;
}

static void
hand_back_queued(struct smtp_pool *pool, const char *why)
{
    struct smtp_job *job;

    while ((job = queue_pop(pool)) != NULL)
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, why);
}

/*
 * The relay could not be reached: back off and hand every queued job back.
 * The outage is logged when it starts; later failures only count, until
 * ready() logs that the relay is back.
 */
static void
trip_breaker(struct smtp_pool *pool, const char *why)
{
    int64_t now = time_mono_us();
    int64_t probe;
    struct timeval tv;

    if (pool->outage_since == 0) {
        pool->outage_since = now;
        pool->outage_repeats = 0;
        log_warn("event=relay_unreachable relay=%s:%d reason=\"%s\"", pool->p.host, pool->p.port,
                 why);
    } else {
        pool->outage_repeats++;
        log_debug("event=relay_still_unreachable relay=%s:%d reason=\"%s\"", pool->p.host,
                  pool->p.port, why);
    }
    /* Connections opened together fail together: one outage doubles the wait once. */
    if (now >= pool->backoff_until) {
        pool->backoff = pool->backoff ? pool->backoff * 2 : BACKOFF_MIN_US;
        if (pool->backoff > BACKOFF_MAX_US)
            pool->backoff = BACKOFF_MAX_US;
        pool->backoff_until = now + pool->backoff;
    }
    hand_back_queued(pool, why);
    if (pool->retry_ev && !evtimer_pending(pool->retry_ev, NULL)) {
        probe = pool->backoff < PROBE_MAX_US ? pool->backoff : PROBE_MAX_US;
        tv.tv_sec = probe / 1000000;
        tv.tv_usec = probe % 1000000;
        evtimer_add(pool->retry_ev, &tv);
    }
}

static void
conn_fail(struct conn *c, const char *why)
{
    struct smtp_pool *pool = c->pool;
    bool before_ready = !c->ready_once;
    char reason[300];

    snprintf(reason, sizeof(reason), "%s", why);
    enter_state(c, C_QUIT); /* nothing is dispatched to it from the callbacks below */
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
    if (before_ready && !pool->quitting)
        trip_breaker(pool, reason);
    dispatch(pool);
}

/* True for an IPv4 or IPv6 literal, which TLS must not send as SNI (RFC 6066 3). */
static bool
is_ip_literal(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static SSL *
new_ssl(struct smtp_pool *pool)
{
    SSL *ssl = SSL_new(pool->ssl);
    bool ip = is_ip_literal(pool->p.host);

    if (ssl == NULL)
        return NULL;
    if (!ip)
        SSL_set_tlsext_host_name(ssl, pool->p.host);
    if (pool->p.verify) {
        if (ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), pool->p.host);
        else
            SSL_set1_host(ssl, pool->p.host);
    }
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
    bufferevent_setcb(tls, read_cb, NULL, event_cb, c);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    set_timeout(c);
    return true;
}

static void
send_ehlo(struct conn *c)
{
    enter_state(c, C_EHLO);
    /* The entry is a reply slot; the connection's state says what it answers. */
    send_cmd(c, E_RSET, xasprintf("EHLO %s\r\n", c->pool->p.helo_name));
}

/* base64 of n bytes of s; the caller wipes and frees it. */
static char *
b64(const char *s, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static void
b64_free(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void
ready(struct conn *c)
{
    struct smtp_pool *pool = c->pool;

    enter_state(c, C_READY);
    if (!c->ready_once) {
        c->ready_once = true;
        pool->backoff = 0;
        pool->backoff_until = 0;
        if (pool->outage_since) {
            int64_t secs = (time_mono_us() - pool->outage_since) / 1000000;
            log_info("event=relay_reachable relay=%s:%d after_s=%lld failures_not_logged=%d",
                     pool->p.host, pool->p.port, (long long)secs, pool->outage_repeats);
            pool->outage_since = 0;
            pool->outage_repeats = 0;
        }
    }
    if (pool->quitting || c->closing) {
        quit(c);
        return;
    }
    set_timeout(c);
    dispatch(pool);
}

/* Sends AUTH PLAIN or starts AUTH LOGIN.  Returns false when c is gone. */
static bool
start_auth(struct conn *c)
{
    const struct smtp_params *p = &c->pool->p;

    if (c->ext.auth_plain) {
        char creds[600];
        int n = snprintf(creds, sizeof(creds), "%c%s%c%s", 0, p->user, 0, p->pass);
        char *enc = b64(creds, (size_t)n);
        OPENSSL_cleanse(creds, sizeof(creds));
        enter_state(c, C_AUTH);
        send_secret(c, E_RSET, xasprintf("AUTH PLAIN %s\r\n", enc));
        b64_free(enc);
    } else if (c->ext.auth_login) {
        enter_state(c, C_AUTH_LOGIN);
        send_cmd(c, E_AUTH_USER, xstrdup("AUTH LOGIN\r\n"));
    } else {
        conn_fail(c, "the relay offers neither AUTH PLAIN nor AUTH LOGIN");
        return false;
    }
    return true;
}

/* Returns false when the connection failed (and is gone). */
static bool
after_ehlo(struct conn *c)
{
    const struct smtp_params *p = &c->pool->p;

    if (!c->tls_on && (p->tls == SMTP_TLS_REQUIRE || p->tls == SMTP_TLS_AUTO) &&
        c->ext.starttls) {
        enter_state(c, C_STARTTLS);
        send_cmd(c, E_RSET, xstrdup("STARTTLS\r\n"));
        return true;
    }
    if (!c->tls_on && p->tls == SMTP_TLS_REQUIRE) {
        conn_fail(c, "the relay does not offer STARTTLS, which the relay URL requires");
        return false;
    }
    if (p->user[0])
        return start_auth(c);
    ready(c);
    return true;
}

/* ---- replies ---- */

/*
 * The relay refused the session (greeting or EHLO/HELO): QUIT, as the
 * server waits for it (RFC 5321 §3.1), then the failure.  Written to the
 * socket at once, best effort: nothing else is in flight at this point, and
 * on TLS the session's bytes are not ours to write around.
 */
static void
conn_refused(struct conn *c, const char *why)
{
    if (c->bev && !c->tls_on && c->pool->p.tls != SMTP_TLS_IMPLICIT &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        (void)send(bufferevent_getfd(c->bev), "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
    conn_fail(c, why);
}

/* The greeting (no command asked for it).  Returns false when c is gone. */
static bool
on_greeting(struct conn *c)
{
    struct smtp_reply *r = &c->reply;

    if (r->code != 220) {
        char why[300];
        snprintf(why, sizeof(why), "greeting %d%s%s %.200s", r->code, r->enhanced[0] ? " " : "",
                 r->enhanced, r->text.data ? r->text.data : "");
        conn_refused(c, why);
        return false;
    }
    send_ehlo(c);
    return true;
}

/* The next step of AUTH LOGIN after a reply to e.  Returns false when c is gone. */
static bool
on_auth_login(struct conn *c, const struct expect *e)
{
    const struct smtp_params *p = &c->pool->p;
    int code = c->reply.code;

    if (e->kind == E_AUTH_USER && code == 334) {
        char *enc = b64(p->user, strlen(p->user));
        send_secret(c, E_AUTH_PASS, xasprintf("%s\r\n", enc));
        b64_free(enc);
    } else if (e->kind == E_AUTH_PASS && code == 334) {
        char *enc = b64(p->pass, strlen(p->pass));
        enter_state(c, C_AUTH);
        send_secret(c, E_RSET, xasprintf("%s\r\n", enc));
        b64_free(enc);
    } else {
        conn_fail(c, "the relay refused AUTH LOGIN");
        return false;
    }
    return true;
}

/*
 * A reply during the session's setup (EHLO, STARTTLS, AUTH): the state says
 * what it answers.  Returns false when c is gone.
 */
static bool
on_setup_reply(struct conn *c, const struct expect *e)
{
    struct smtp_reply *r = &c->reply;

    switch (c->state) {
    case C_EHLO:
        if (smtp_reply_class(r) != 2 && !c->helo && r->code >= 500 && r->code <= 504) {
            /* An old server that does not know EHLO: HELO, without extensions. */
            c->helo = true;
            send_cmd(c, E_RSET, xasprintf("HELO %s\r\n", c->pool->p.helo_name));
            return true;
        }
        if (smtp_reply_class(r) != 2) {
            conn_refused(c, c->helo ? "the relay refused EHLO and HELO" : "the relay refused EHLO");
            return false;
        }
        if (c->helo)
            memset(&c->ext, 0, sizeof(c->ext));
        else
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
        return on_auth_login(c, e);
    default:
        return true;
    }
}

/* Drops what is left of a refused job from the FIFO (no PIPELINING) and resets. */
static void
drop_job(struct conn *c, struct smtp_job *job)
{
    for (int i = 0; i < c->qlen;) {
        if (c->q[i].job == job) {
            cmd_free(&c->q[i]);
            memmove(&c->q[i], &c->q[i + 1], (size_t)(c->qlen - i - 1) * sizeof(c->q[0]));
            c->qlen--;
        } else
            i++;
    }
    remove_job(c, job);
    push(c, E_RSET, NULL, xstrdup("RSET\r\n"));
    c->pool->done(job, c->pool->arg);
}

/* The reply to DATA: the body goes out, or the job ends. */
static void
on_data_reply(struct conn *c, struct smtp_job *job)
{
    struct smtp_reply *r = &c->reply;
    int cls = smtp_reply_class(r);

    if (r->code == 354 && !job->failed) {
        write_body(c, job);
        return;
    }
    if (r->code == 354) {
        /* RFC 2920: a 354 after a refused recipient still needs an end of data. */
        bufferevent_write(c->bev, ".\r\n", 3);
        push(c, E_RSET, NULL, NULL);
    } else {
        if (!job->failed)
            record_reply(c, job, cls == 5 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
        push(c, E_RSET, NULL, xstrdup("RSET\r\n"));
    }
    remove_job(c, job);
    c->pool->done(job, c->pool->arg);
}

/* A reply within a transaction (or to QUIT).  Returns false when c is gone. */
static bool
on_txn_reply(struct conn *c, const struct expect *e)
{
    struct smtp_reply *r = &c->reply;
    int cls = smtp_reply_class(r);

    switch (e->kind) {
    case E_MAIL:
    case E_RCPT:
        if (cls != 2 && !e->job->failed) {
            e->job->failed = true;
            record_reply(c, e->job, cls == 5 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
        }
        /* Without pipelining nothing else of this job is on the wire. */
        if (e->job->failed && !c->ext.pipelining)
            drop_job(c, e->job);
        break;
    case E_DATA:
        on_data_reply(c, e->job);
        break;
    case E_BODY:
        remove_job(c, e->job);
        c->sent++;
        if (cls == 2)
            smtp_reply_queue_id(r, e->job->queue_id, sizeof(e->job->queue_id));
        record_reply(c, e->job,
                     cls == 2 ? SMTP_SENT : cls == 5 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
        c->pool->done(e->job, c->pool->arg);
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
    return true;
}

/* After a transaction's reply: close when the connection is done, else write on. */
static void
after_txn_reply(struct conn *c)
{
    struct smtp_pool *pool = c->pool;

    /* 421 (RFC 5321 3.8): the relay is closing the channel.  A message
     * dispatched to it now would meet the close and spend an attempt. */
    if (c->reply.code == 421 && c->state == C_READY)
        c->closing = true;
    if (c->state == C_READY && c->njobs == 0 &&
        (c->closing || pool->quitting || (c->sent >= pool->p.max_messages && c->qlen == 0)))
        quit(c);
    flush_commands(c);
    dispatch(pool);
}

/* A whole reply arrived for the head of the FIFO.  Returns false when c is gone. */
static bool
on_reply(struct conn *c)
{
    struct expect e;

    if (c->state == C_GREETING)
        return on_greeting(c);
    if (c->qlen == 0) {
        conn_fail(c, "a reply came that no command asked for");
        return false;
    }
    e = c->q[0];
    memmove(&c->q[0], &c->q[1], (size_t)(c->qlen - 1) * sizeof(c->q[0]));
    c->qlen--;
    cmd_free(&e);

    if (c->state != C_READY && c->state != C_QUIT)
        return on_setup_reply(c, &e);
    if (!on_txn_reply(c, &e))
        return false;
    after_txn_reply(c);
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

/* Why a connection failed with BEV_EVENT_ERROR: TLS (with the verify reason), or I/O. */
static void
error_reason(struct conn *c, char *why, size_t n)
{
    unsigned long ssl_err = bufferevent_get_openssl_error(c->bev);

    if (ssl_err) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (ERR_GET_REASON(ssl_err) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
            snprintf(why, n, "TLS: certificate verify failed: %s",
                     X509_verify_cert_error_string(vr));
        else
            snprintf(why, n, "TLS: %s", ERR_reason_error_string(ssl_err));
        ERR_clear_error();
        return;
    }
    snprintf(why, n, "connection error: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    char why[256];

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == C_CONNECTING) {
            enter_state(c, C_GREETING);
            c->tls_on = c->pool->p.tls == SMTP_TLS_IMPLICIT;
            set_timeout(c);
        } else if (c->state == C_STARTTLS) {
            c->tls_on = true;
            memset(&c->ext, 0, sizeof(c->ext));
            send_ehlo(c);
        }
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && conn_idle(c)) {
        /* Idle past smtp_idle_timeout: close politely before the relay does. */
        quit(c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE); /* a timeout disables reading */
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof(why), "timed out waiting for the relay (%s)",
                 c->qlen && c->q[0].kind == E_BODY ? "after end of data" : "command");
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof(why), "the relay closed the connection");
    else
        error_reason(c, why, sizeof(why));
    if (c->state == C_QUIT) {
        struct smtp_pool *pool = c->pool;
        conn_free(c);
        dispatch(pool);
        return;
    }
    conn_fail(c, why);
}

/*
 * Gives the connection a socket of family bound to the egress's source
 * address (port chosen by the system), so the relay sees that address;
 * -1 when the address is not of that family or cannot be bound.
 */
static int
bind_source(struct conn *c, int family)
{
    struct sockaddr_storage sa = {0};
    socklen_t len;
    evutil_socket_t fd;

    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        in->sin_family = AF_INET;
        if (inet_pton(AF_INET, c->pool->p.source_address, &in->sin_addr) != 1)
            return -1;
        len = sizeof(*in);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        in6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, c->pool->p.source_address, &in6->sin6_addr) != 1)
            return -1;
        len = sizeof(*in6);
    } else
        return -1;
    fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, len) != 0 || evutil_make_socket_nonblocking(fd) != 0 ||
        evutil_make_socket_closeonexec(fd) != 0 || bufferevent_setfd(c->bev, fd) != 0) {
        log_warn("event=egress_bind source=%s errno=%d", c->pool->p.source_address, errno);
        evutil_closesocket(fd);
        return -1;
    }
    return 0;
}

/* Connects to the resolved address (or fails the connection); takes ai. */
static void
connect_to(struct conn *c, int err, struct evutil_addrinfo *ai)
{
    char why[200];
    int rc;

    if (err != 0 || ai == NULL) {
        snprintf(why, sizeof(why), "cannot resolve the relay's host name: %s",
                 err ? evutil_gai_strerror(err) : "no address");
        if (ai)
            evutil_freeaddrinfo(ai);
        conn_fail(c, why);
        return;
    }
    if (c->pool->p.source_address[0] && bind_source(c, ai->ai_family) != 0) {
        evutil_freeaddrinfo(ai);
        conn_fail(c, "cannot bind the egress's source address");
        return;
    }
    rc = bufferevent_socket_connect(c->bev, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (rc != 0)
        conn_fail(c, "cannot connect to the relay");
}

static void
resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct conn *c = arg;

    if (err == EVUTIL_EAI_CANCEL) { /* c is being freed */
        if (ai)
            evutil_freeaddrinfo(ai);
        return;
    }
    if (c->opening) { /* answered at once (a numeric host, /etc/hosts): conn_open goes on */
        c->sync_err = err;
        c->sync_ai = ai;
        return;
    }
    c->dns_req = NULL;
    connect_to(c, err, ai);
}

static void
conn_open(struct smtp_pool *pool, bool probe)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    struct evutil_addrinfo hints = {0};
    struct evdns_getaddrinfo_request *req;
    char port[8];

    buf_init(&c->body, 0);
    c->pool = pool;
    c->probe = probe;
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
    if (probe)
        log_debug("event=relay_probe relay=%s:%d", pool->p.host, pool->p.port);
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    set_timeout(c); /* connect_timeout covers the name's resolution too */
    /* evdns on this loop: a numeric address needs no query, a name never blocks the loop.
     * The request is ours (not bufferevent_socket_connect_hostname's), so a connection
     * freed mid-resolution cancels it instead of leaking it. */
    snprintf(port, sizeof(port), "%d", pool->p.port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    c->opening = true;
    req = evdns_getaddrinfo(pool->dns, pool->p.host, port, &hints, resolved, c);
    c->opening = false;
    if (req != NULL)
        c->dns_req = req;
    else
        connect_to(c, c->sync_err, c->sync_ai);
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
            if (!pool->quitting && pool->nconns < pool->p.max_connections &&
                opening < pool->queued && time_mono_us() >= pool->backoff_until)
                conn_open(pool, false);
            return;
        }
        struct smtp_job *job = queue_pop(pool);
        /* Larger than the relay takes (SIZE, RFC 1870): it would be refused after DATA. */
        if (best->ext.size > 0 && (int64_t)job->data.len > best->ext.size) {
            finish(pool, job, SMTP_PERMFAIL, 552, "5.3.4",
                   "the message is larger than the relay's SIZE limit");
            continue;
        }
        /* An address in UTF-8 needs SMTPUTF8 (RFC 6531 §3.2): without it, no send. */
        if (job->utf8 && !best->ext.smtputf8) {
            finish(pool, job, SMTP_PERMFAIL, 553, "5.6.7",
                   "the address is not ASCII and the relay does not offer SMTPUTF8");
            continue;
        }
        /* Waited so long that its claim could expire mid-send: hand it back unsent. */
        if (job->deadline && time_mono_us() > job->deadline) {
            finish(pool, job, SMTP_NOT_SENT, 0, NULL,
                   "waited too long for a connection; handed back before sending");
            continue;
        }
        if (job->started) /* before the job can end */
            job->started(job);
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
    if (pool->ssl == NULL)
        goto fail;
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
    if (pool->retry_ev == NULL)
        goto fail;
    if (p->dns_server[0]) {
        /* A named nameserver (tests, split-horizon setups); /etc/hosts still applies. */
        pool->dns = evdns_base_new(base, 0);
        if (pool->dns && evdns_base_nameserver_ip_add(pool->dns, p->dns_server) != 0) {
            log_error("event=relay error=\"cannot use smtp_dns_server\" server=%s", p->dns_server);
            goto fail;
        }
        if (pool->dns)
            evdns_base_load_hosts(pool->dns, NULL);
    } else
        pool->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (pool->dns == NULL)
        goto fail;
    return pool;
fail:
    if (pool->dns)
        evdns_base_free(pool->dns, 0);
    if (pool->retry_ev)
        event_free(pool->retry_ev);
    SSL_CTX_free(pool->ssl);
    OPENSSL_cleanse(&pool->p, sizeof(pool->p));
    free(pool);
    return NULL;
}

void
smtp_pool_submit(struct smtp_pool *pool, struct smtp_job *job)
{
    job->next = NULL;
    if (time_mono_us() < pool->backoff_until || pool->quitting) {
        finish(pool, job, SMTP_NOT_SENT, 0, NULL,
               pool->quitting ? "mailcast is stopping" : "the relay is being backed off");
        return;
    }
    queue_push(pool, job);
    dispatch(pool);
}

void
smtp_pool_set_max_connections(struct smtp_pool *pool, int n)
{
    int keep = 0;

    if (n < 1)
        n = 1;
    if (n == pool->p.max_connections)
        return;
    pool->p.max_connections = n;
    /* Ready connections first, then those still opening; the rest close. */
    for (int pass = 0; pass < 2; pass++)
        for (struct conn *c = pool->conns; c; c = c->next) {
            if (c->closing || c->state == C_QUIT || (c->state == C_READY) != (pass == 0))
                continue;
            if (keep < n) {
                keep++;
                continue;
            }
            c->closing = true;
            if (c->state == C_READY && c->njobs == 0)
                quit(c);
        }
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

int
smtp_pool_waiting_paced(const struct smtp_pool *pool)
{
    return pool->queued_paced;
}

void
smtp_pool_drain(struct smtp_pool *pool)
{
    struct smtp_job *job;

    while (pool && (job = queue_pop(pool)) != NULL)
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, "mailcast is stopping; handed back unsent");
}

void
smtp_pool_quit(struct smtp_pool *pool, void (*closed)(void *), void *arg)
{
    struct conn *next;

    if (pool == NULL)
        return;
    pool->quitting = true;
    pool->closed = closed;
    pool->closed_arg = arg;
    if (pool->retry_ev)
        evtimer_del(pool->retry_ev);
    for (struct conn *c = pool->conns; c; c = next) {
        next = c->next;
        if (conn_idle(c))
            quit(c);
        else if (c->state != C_READY && c->state != C_QUIT && c->njobs == 0)
            conn_free(c); /* still opening: nothing to say goodbye to yet */
        /* busy ones say QUIT after their last reply (after_txn_reply) */
    }
    if (pool->nconns == 0 && pool->closed) {
        pool->closed = NULL;
        closed(arg);
    }
}

int
smtp_pool_conns(const struct smtp_pool *pool)
{
    return pool ? pool->nconns : 0;
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
    for (struct smtp_job *job; (job = queue_pop(pool)) != NULL;)
        finish(pool, job, SMTP_NOT_SENT, 0, NULL, "mailcast is stopping");
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
    if (pool->dns)
        evdns_base_free(pool->dns, 1); /* no request is left: conn_free cancelled them */
    SSL_CTX_free(pool->ssl);
    OPENSSL_cleanse(&pool->p, sizeof(pool->p)); /* the relay's credentials */
    free(pool);
}
