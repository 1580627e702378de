/*
 * listener.c - the receive-only SMTP listener for bounces and complaints
 * (see listener.h).
 *
 * DESIGN
 * The sessions run on the delivery worker's event base when the process
 * delivers (issue 10: the same loop as the client side), else on a thread
 * and base of the listener's own; either way the loop only does SMTP I/O.
 * A session is a small state machine (GREETED -> READY (after EHLO/HELO) ->
 * MAIL -> RCPT -> DATA), changed only by enter_state(), which logs old ->
 * new at debug level.  Commands are read a line at a time (smtpd_cmd.c), so
 * pipelined commands are answered in order.  At the end of data the
 * message goes as it is to the committer (committer.c), whose parser
 * thread parses it and whose database thread records every message parsed
 * and waiting in one transaction (group commit); meanwhile the session reads nothing more (s->job is set),
 * and the loop serves the other sessions.  The 250 is written only when the
 * job comes back committed, 451 4.3.0 when the commit failed, so a crash
 * between DATA and 250 loses nothing the sender was told was accepted (it
 * retries).  A session that ends while its job is out is freed when the job
 * comes back.  Only RCPT may ask the store on the loop: for a VERP address
 * at a tenant's own bounce domain, one indexed lookup.  Bounded everywhere: a
 * command line (1000 bytes), a message (bounce_max_message: past it the
 * rest is read and dropped, then 552), the recipients of one transaction,
 * the sessions at once, the time per command and per session, and the
 * errors a session may make.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <netdb.h>

#include "core/log.h"
#include "core/util.h"
#include "committer.h"
#include "listener.h"
#include "ref.h"
#include "smtpd_cmd.h"

#define MAX_RCPTS 100
#define MAX_ERRORS 20
#define DATA_CHUNK 65536

enum sess_state { S_GREETED, S_READY, S_MAIL, S_RCPT, S_DATA, S_CLOSING };

static const char *const state_names[] = {"greeted", "ready", "mail", "rcpt", "data", "closing"};

struct bounce_listener {
    const struct config *cfg;        /* borrowed */
    const struct bounce_intake_ctx *x; /* borrowed */
    struct event_base *base;         /* owned, or the delivery worker's (shared) */
    bool shared;                     /* base is the delivery worker's: no thread here */
    struct evconnlistener *lev;      /* owned */
    struct event *stop_ev;           /* owned, own base only */
    pthread_mutex_t mu;              /* shared base: the stop's hand-shake */
    pthread_cond_t cv;
    bool torn_down;                  /* under mu */
    SSL_CTX *tls;                    /* owned, NULL without a certificate */
    struct bounce_committer *committer; /* owned */
    bool stopping;                   /* 421 sent to every session: the loop ends with them */
    pthread_t thread;
    int port;
    int nsess;
    struct sess *sessions; /* owned: a list of the open sessions */
};

struct sess {
    struct bounce_listener *l; /* borrowed */
    struct bufferevent *bev;   /* owned */
    struct event *deadline;    /* owned: the session's time limit */
    enum sess_state state;
    bool tls, utf8;
    int errors;
    char rcpts[MAX_RCPTS][SMTPD_PATH_MAX + 1];
    int nrcpt;
    struct buf data; /* the message, dot-stuffing undone */
    bool over;       /* the message passed bounce_max_message */
    bool bol;        /* DATA: at the start of a line */
    struct bounce_job *job; /* borrowed: the message out for its commit, NULL when none */
    bool gone;              /* ended while its job was out: freed when the job returns */
    bool skip;       /* the rest of a command line too long was answered: drop it */
    unsigned char addr[16]; /* the peer's address (IPv4 in the first 4), for the per-address cap */
    struct sess *next;
};

static void sess_read(struct bufferevent *bev, void *arg);
static void sess_event(struct bufferevent *bev, short what, void *arg);
static void sess_write(struct bufferevent *bev, void *arg);

/* The one setter of a session's state. */
static void
enter_state(struct sess *s, enum sess_state to)
{
    if (s->state != to)
        log_debug("event=bounce_smtp_state old=%s new=%s", state_names[s->state],
                  state_names[to]);
    s->state = to;
}

static void
reply(struct sess *s, const char *line)
{
    evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
}

static void
sess_free(struct sess *s)
{
    struct sess **pp;

    if (s->job) {
        /* The committer holds the job: the session waits for it, silent
         * (closing: it no longer counts against its address's limit). */
        s->gone = true;
        enter_state(s, S_CLOSING);
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        event_del(s->deadline);
        return;
    }
    for (pp = &s->l->sessions; *pp && *pp != s; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = s->next;
    s->l->nsess--;
    bufferevent_free(s->bev);
    event_free(s->deadline);
    buf_cleanup(&s->data);
    if (s->l->stopping && !s->l->shared && s->l->nsess == 0)
        event_base_loopbreak(s->l->base);
    free(s);
}

/* Ends the session once what was written has gone out. */
static void
sess_close(struct sess *s)
{
    enter_state(s, S_CLOSING);
    if (s->tls) {
        /* What the TLS filter passed on may still sit below it: the client's
         * close (or a short timeout) ends the session. */
        bufferevent_set_timeouts(s->bev, &(struct timeval){.tv_sec = 2},
                                 &(struct timeval){.tv_sec = 2});
        return;
    }
    bufferevent_disable(s->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
        sess_free(s);
}

static void
transaction_reset(struct sess *s)
{
    s->nrcpt = 0;
    s->over = false;
    buf_reset(&s->data);
    enter_state(s, s->state == S_GREETED ? S_GREETED : S_READY);
}

/* Counts a client error; too many end the session. */
static bool
error_counted(struct sess *s)
{
    if (++s->errors < MAX_ERRORS)
        return true;
    reply(s, "421 4.7.0 Too many errors, closing");
    sess_close(s);
    return false;
}

/*
 * Whether mail for addr is taken: the feedback-loop address, or a VERP
 * address whose reference verifies, at the configured bounce domain or at
 * the bounce domain of the tenant whose message it names.
 */
static bool
rcpt_ok(struct sess *s, const char *addr)
{
    const struct config *cfg = s->l->cfg;
    const struct bounce_intake_ctx *x = s->l->x;
    char ref[BOUNCE_REF_LEN + 1], id[MC_UUID_LEN + 1], *domain = NULL;
    const char *at = strrchr(addr, '@');
    bool ok;

    if (cfg->bounce_feedback_address && str_ieq(addr, cfg->bounce_feedback_address))
        return true;
    /* RFC 5321 §4.5.1: postmaster is accepted; what it gets is taken in as any
     * report (one with no valid reference is kept for the operator only). */
    if (str_ieq(addr, "postmaster") ||
        (at && cfg->bounce_domain && (size_t)(at - addr) == 10 &&
         strncasecmp(addr, "postmaster", 10) == 0 && str_ieq(at + 1, cfg->bounce_domain)))
        return true;
    if (at == NULL || !bounce_ref_from_address(addr, ref) ||
        !bounce_ref_verify(x->keys, x->nkeys, ref, id))
        return false;
    if (cfg->bounce_domain && str_ieq(at + 1, cfg->bounce_domain))
        return true;
    /* Another domain must be the bounce domain of the message's own tenant. */
    ok = store_bounce_domain_of(x->st, id, &domain) == MC_ERR_OK && domain &&
         str_ieq(at + 1, domain);
    free(domain);
    return ok;
}

static void
ehlo(struct sess *s, const struct smtpd_cmd *c)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    const char *name = s->l->cfg->helo_name ? s->l->cfg->helo_name : "mailcast";

    if (c->verb == SMTPD_HELO) {
        evbuffer_add_printf(out, "250 %s\r\n", name);
    } else {
        evbuffer_add_printf(out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %lld\r\n250-8BITMIME\r\n"
                                 "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n",
                            name, (long long)s->l->cfg->bounce_max_message);
        if (s->l->tls && !s->tls)
            evbuffer_add(out, "250-STARTTLS\r\n", 14);
        evbuffer_add_printf(out, "250 HELP\r\n");
    }
    s->nrcpt = 0;
    buf_reset(&s->data);
    enter_state(s, S_READY);
}

static void
starttls(struct sess *s)
{
    SSL *ssl;
    struct bufferevent *tls;

    if (s->l->tls == NULL || s->tls) {
        reply(s, "502 5.5.1 STARTTLS not available");
        error_counted(s);
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* RFC 3207: whatever the client pipelined after STARTTLS is discarded. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    ssl = SSL_new(s->l->tls);
    tls = ssl ? bufferevent_openssl_filter_new(s->l->base, s->bev, ssl,
                                               BUFFEREVENT_SSL_ACCEPTING,
                                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
              : NULL;
    if (tls == NULL) {
        if (ssl)
            SSL_free(ssl);
        sess_close(s);
        return;
    }
    s->bev = tls;
    s->tls = true;
    bufferevent_setcb(s->bev, sess_read, sess_write, sess_event, s);
    bufferevent_set_timeouts(s->bev,
                             &(struct timeval){.tv_sec = s->l->cfg->bounce_command_timeout},
                             &(struct timeval){.tv_sec = s->l->cfg->bounce_command_timeout});
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    enter_state(s, S_GREETED);
}

/*
 * Hands the message, with its recipients, to the committer (which parses it
 * once per recipient); the session reads nothing more until job_done answers.
 */
static void
data_done(struct sess *s)
{
    struct bounce_job *job;

    if (s->over) {
        reply(s, "552 5.3.4 Message too big");
        transaction_reset(s);
        return;
    }
    job = bounce_job_new(s, s->nrcpt);
    job->len = s->data.len;
    job->data = s->data.data ? buf_steal(&s->data) : xstrdup("");
    job->source = "smtp";
    job->rcpts = xcalloc((size_t)s->nrcpt, sizeof(*job->rcpts));
    for (int i = 0; i < s->nrcpt; i++)
        job->rcpts[i] = xstrdup(s->rcpts[i]);
    /* Reading stays on (turning it off and on costs two epoll_ctl a message):
     * sess_read leaves what comes meanwhile in the buffer, up to its
     * watermark, and a read timeout while the job is out is ignored. */
    s->job = job;
    log_debug("event=bounce_smtp_queued rcpts=%d", s->nrcpt);
    bounce_committer_submit(s->l->committer, job);
}

/* A job back from the committer (on the loop): 250 only if it committed. */
static void
job_done(struct bounce_job *job, void *arg)
{
    struct sess *s = job->owner;

    (void)arg;
    s->job = NULL;
    if (s->gone) {
        sess_free(s);
    } else {
        reply(s, job->err == MC_ERR_OK ? "250 2.0.0 Ok: taken"
                                       : "451 4.3.0 Temporary failure, try again later");
        transaction_reset(s);
        sess_read(s->bev, s); /* what the client pipelined meanwhile */
    }
    bounce_job_free(job);
}

/* One line of DATA (without its line end, eol false for a piece of a long line). */
static void
data_line(struct sess *s, const char *line, size_t n, bool eol)
{
    size_t max = (size_t)s->l->cfg->bounce_max_message;

    if (s->bol && eol && n == 1 && line[0] == '.') {
        data_done(s);
        return;
    }
    if (s->bol && n > 0 && line[0] == '.')
        line++, n--;
    if (!s->over && s->data.len + n + 2 > max)
        s->over = true;
    if (!s->over) {
        buf_append(&s->data, line, n);
        if (eol)
            buf_append(&s->data, "\r\n", 2);
    }
    s->bol = eol;
}

static void
command(struct sess *s, const char *line, size_t n)
{
    struct smtpd_cmd c;
    enum smtpd_parse p = smtpd_cmd_parse(line, n, &c);

    if (p == SMTPD_TOO_LONG) {
        reply(s, "500 5.5.2 Line too long");
        error_counted(s);
        return;
    }
    if (p == SMTPD_SYNTAX) {
        reply(s, "501 5.5.4 Syntax error in parameters or arguments");
        error_counted(s);
        return;
    }
    if (p == SMTPD_PARAM) {
        reply(s, "555 5.5.4 Parameter not recognized");
        error_counted(s);
        return;
    }
    switch (c.verb) {
    case SMTPD_EHLO:
    case SMTPD_HELO:
        ehlo(s, &c);
        return;
    case SMTPD_NOOP:
        reply(s, "250 2.0.0 Ok");
        return;
    case SMTPD_RSET:
        transaction_reset(s);
        reply(s, "250 2.0.0 Ok");
        return;
    case SMTPD_QUIT:
        reply(s, "221 2.0.0 Bye");
        sess_close(s);
        return;
    case SMTPD_VRFY:
        reply(s, "252 2.5.0 Cannot VRFY");
        return;
    case SMTPD_HELP:
        reply(s, "214 2.0.0 This server takes bounces and complaints only");
        return;
    case SMTPD_STARTTLS:
        starttls(s);
        return;
    case SMTPD_MAIL:
        if (s->state != S_READY) {
            reply(s, s->state == S_GREETED ? "503 5.5.1 EHLO first" : "503 5.5.1 Nested MAIL");
            error_counted(s);
        } else if (c.size > s->l->cfg->bounce_max_message) {
            reply(s, "552 5.3.4 Message too big");
        } else if (c.path_utf8 && !c.smtputf8) {
            reply(s, "553 5.6.7 Non-ASCII address without SMTPUTF8");
        } else {
            s->utf8 = c.smtputf8;
            reply(s, "250 2.1.0 Ok");
            enter_state(s, S_MAIL);
        }
        return;
    case SMTPD_RCPT:
        if (s->state != S_MAIL && s->state != S_RCPT) {
            reply(s, "503 5.5.1 MAIL first");
            error_counted(s);
        } else if (s->nrcpt >= MAX_RCPTS) {
            reply(s, "452 4.5.3 Too many recipients");
        } else if (c.path_utf8 && !s->utf8) {
            reply(s, "553 5.6.7 Non-ASCII address without SMTPUTF8");
        } else if (!rcpt_ok(s, c.path)) {
            reply(s, "550 5.1.1 No such recipient here");
            error_counted(s);
        } else {
            memcpy(s->rcpts[s->nrcpt++], c.path, sizeof(c.path));
            reply(s, "250 2.1.5 Ok");
            enter_state(s, S_RCPT);
        }
        return;
    case SMTPD_DATA:
        if (s->state != S_RCPT) {
            reply(s, s->state == S_MAIL ? "554 5.5.1 No valid recipients"
                                        : "503 5.5.1 MAIL and RCPT first");
            error_counted(s);
            return;
        }
        reply(s, "354 End data with <CR><LF>.<CR><LF>");
        buf_reset(&s->data);
        s->over = false;
        s->bol = true;
        enter_state(s, S_DATA);
        return;
    case SMTPD_UNKNOWN:
        reply(s, "500 5.5.2 Command not recognized");
        error_counted(s);
        return;
    }
}

static void
sess_read(struct bufferevent *bev, void *arg)
{
    struct sess *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (s->state != S_CLOSING && s->job == NULL && evbuffer_get_length(in) > 0) {
        size_t eol_len = 0;
        /* Only CRLF ends a line of DATA (RFC 5321 §2.3.8): a bare LF must not
         * end the message ("<LF>.<LF>" smuggling); commands take a bare LF too. */
        struct evbuffer_ptr e =
            evbuffer_search_eol(in, NULL, &eol_len,
                                s->state == S_DATA ? EVBUFFER_EOL_CRLF_STRICT
                                                   : EVBUFFER_EOL_CRLF);
        size_t n = e.pos < 0 ? evbuffer_get_length(in) : (size_t)e.pos;
        char *line;

        if (s->state == S_DATA) {
            if (e.pos < 0 && n < DATA_CHUNK)
                return; /* wait for the rest of the line */
            if (e.pos < 0 || n > DATA_CHUNK)
                n = DATA_CHUNK, eol_len = 0;
            line = xmalloc(n + 1);
            evbuffer_remove(in, line, n);
            evbuffer_drain(in, eol_len);
            data_line(s, line, n, eol_len > 0);
            free(line);
            continue;
        }
        if (s->skip) {
            /* The rest of a line already answered 500: no second reply. */
            evbuffer_drain(in, n + eol_len);
            if (e.pos < 0)
                return;
            s->skip = false;
            continue;
        }
        if (e.pos < 0) {
            if (n > SMTPD_LINE_MAX + 2) {
                /* A command line without end: drop what came, answer once. */
                evbuffer_drain(in, n);
                reply(s, "500 5.5.2 Line too long");
                error_counted(s);
                s->skip = true;
            }
            return;
        }
        line = xmalloc(n + 1);
        evbuffer_remove(in, line, n);
        evbuffer_drain(in, eol_len);
        line[n] = '\0';
        command(s, line, n);
        free(line);
    }
}

static void
sess_write(struct bufferevent *bev, void *arg)
{
    struct sess *s = arg;

    if (s->state == S_CLOSING && !s->tls && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        sess_free(s);
}

static void
sess_event(struct bufferevent *bev, short what, void *arg)
{
    struct sess *s = arg;

    (void)bev;
    if (what == BEV_EVENT_CONNECTED)
        return; /* the TLS handshake is done */
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && s->job && !s->gone) {
        bufferevent_enable(bev, EV_READ); /* the client waits for our answer */
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        log_info("event=bounce_smtp_timeout state=%s", state_names[s->state]);
        if (s->state != S_CLOSING) {
            reply(s, "421 4.4.2 Timeout, closing");
            bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){.tv_sec = 5});
            enter_state(s, S_CLOSING);
            bufferevent_enable(s->bev, EV_WRITE);
            bufferevent_disable(s->bev, EV_READ);
            return;
        }
    }
    sess_free(s); /* EOF, error, or a timeout while closing */
}

static void
sess_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct sess *s = arg;

    (void)fd;
    (void)what;
    if (s->job) { /* the commit's answer comes first */
        evtimer_add(s->deadline, &(struct timeval){.tv_sec = 1});
        return;
    }
    log_info("event=bounce_smtp_session_timeout state=%s", state_names[s->state]);
    if (s->state == S_CLOSING) {
        sess_free(s);
        return;
    }
    reply(s, "421 4.4.2 Session too long, closing");
    sess_close(s);
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
          void *arg)
{
    struct bounce_listener *l = arg;
    struct sess *s;
    struct timeval cmd = {.tv_sec = l->cfg->bounce_command_timeout};
    struct timeval whole = {.tv_sec = l->cfg->bounce_session_timeout};

    (void)lev;
    (void)salen;
    s = xcalloc(1, sizeof(*s));
    s->l = l;
    if (sa->sa_family == AF_INET)
        memcpy(s->addr, &((struct sockaddr_in *)sa)->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(s->addr, &((struct sockaddr_in6 *)sa)->sin6_addr, 16);
    s->bev = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->deadline = evtimer_new(l->base, sess_deadline, s);
    buf_init(&s->data, 0);
    s->next = l->sessions;
    l->sessions = s;
    l->nsess++;
    bufferevent_setcb(s->bev, sess_read, sess_write, sess_event, s);
    bufferevent_set_timeouts(s->bev, &cmd, &cmd);
    /* Read no further ahead than a chunk of DATA or a few lines. */
    bufferevent_setwatermark(s->bev, EV_READ, 0, 4 * DATA_CHUNK);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    evtimer_add(s->deadline, &whole);
    if (l->nsess > l->cfg->bounce_max_connections) {
        reply(s, "421 4.7.0 Too many connections, try again later");
        sess_close(s);
        return;
    }
    int same = 0;
    for (struct sess *o = l->sessions; o; o = o->next)
        same += o->state != S_CLOSING && memcmp(o->addr, s->addr, sizeof(s->addr)) == 0;
    if (same > l->cfg->bounce_max_connections_per_ip) {
        reply(s, "421 4.7.0 Too many connections from your address, try again later");
        sess_close(s);
        return;
    }
    evbuffer_add_printf(bufferevent_get_output(s->bev), "220 %s ESMTP mailcast bounces\r\n",
                        l->cfg->helo_name ? l->cfg->helo_name : "mailcast");
}

/*
 * Shutdown: no new connection; every open session hears 421 (RFC 5321
 * §3.8) and ends once it is written, a second at most; a message whose
 * 250 was not sent is the sender's to retry.
 */
static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bounce_listener *l = arg;

    (void)fd;
    (void)what;
    evconnlistener_disable(l->lev);
    l->stopping = true;
    if (l->nsess == 0) {
        event_base_loopbreak(l->base);
        return;
    }
    for (struct sess *s = l->sessions, *next; s; s = next) {
        next = s->next; /* sess_close may free s */
        if (s->state != S_CLOSING) {
            reply(s, "421 4.3.2 Service shutting down");
            sess_close(s);
        }
    }
    event_base_loopexit(l->base, &(struct timeval){.tv_sec = 1});
}

/* Closes everything on the base (on its loop's thread, or once it has stopped). */
static void
teardown(struct bounce_listener *l)
{
    evconnlistener_free(l->lev);
    l->lev = NULL;
    bounce_committer_stop(l->committer); /* frees the jobs still out */
    l->committer = NULL;
    for (struct sess *s = l->sessions; s; s = s->next)
        s->job = NULL;
    while (l->sessions)
        sess_free(l->sessions);
}

/* The stop on a shared base: runs on the delivery worker's loop. */
static void
teardown_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bounce_listener *l = arg;

    (void)fd;
    (void)what;
    /* The loop goes on for the client side: each session hears 421 now, as
     * far as its socket takes it (TLS sessions are just closed). */
    for (struct sess *s = l->sessions; s; s = s->next)
        if (s->state != S_CLOSING && !s->tls && !s->gone) {
            struct evbuffer *out = bufferevent_get_output(s->bev);
            reply(s, "421 4.3.2 Service shutting down");
            size_t n = evbuffer_get_length(out);
            if (send(bufferevent_getfd(s->bev), evbuffer_pullup(out, -1), n,
                     MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                log_debug("event=bounce_smtp_421_unsent");
        }
    teardown(l);
    pthread_mutex_lock(&l->mu);
    l->torn_down = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void *
run(void *arg)
{
    struct bounce_listener *l = arg;

    event_base_dispatch(l->base);
    return NULL;
}

static SSL_CTX *
tls_context(const struct config *cfg)
{
    SSL_CTX *ctx;

    if (cfg->bounce_tls_cert == NULL)
        return NULL;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cfg->bounce_tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->bounce_tls_key, SSL_FILETYPE_PEM) != 1) {
        log_error("event=bounce_listen_failed error=\"cannot load bounce_tls_cert or "
                  "bounce_tls_key\"");
        SSL_CTX_free(ctx);
        return (SSL_CTX *)-1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    return ctx;
}

struct bounce_listener *
bounce_listener_start(const struct config *cfg, const struct bounce_intake_ctx *x,
                      struct event_base *base)
{
    struct bounce_listener *l = xcalloc(1, sizeof(*l));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char *host = NULL, port[8];
    int p = 0;

    l->cfg = cfg;
    l->x = x;
    l->shared = base != NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    evthread_use_pthreads();
    if (!config_split_hostport(cfg->bounce_listen, &host, &p)) {
        log_error("event=bounce_listen_failed error=\"bounce_listen is not HOST:PORT\"");
        goto fail;
    }
    if ((l->tls = tls_context(cfg)) == (SSL_CTX *)-1) {
        l->tls = NULL;
        goto fail;
    }
    snprintf(port, sizeof(port), "%d", p);
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        log_error("event=bounce_listen_failed error=\"cannot resolve the address\"");
        goto fail;
    }
    l->base = base ? base : event_base_new();
    l->lev = evconnlistener_new_bind(l->base, accept_cb, l,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                         LEV_OPT_CLOSE_ON_EXEC,
                                     128, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (l->lev == NULL) {
        log_error("event=bounce_listen_failed error=\"cannot bind the address\"");
        goto fail;
    }
    if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss, &sl) == 0)
        l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    l->committer = bounce_committer_start(l->base, x, job_done, l);
    if (l->committer == NULL)
        goto fail;
    if (!l->shared)
        l->stop_ev = event_new(l->base, -1, 0, stop_cb, l);
    if (!l->shared && pthread_create(&l->thread, NULL, run, l) != 0) {
        log_error("event=bounce_listen_failed error=\"cannot start the listener thread\"");
        goto fail;
    }
    log_info("event=bounce_listening host=%s port=%d tls=%d loop=%s", host, l->port,
             l->tls != NULL, l->shared ? "delivery" : "own");
    free(host);
    return l;
fail:
    free(host);
    bounce_committer_stop(l->committer);
    if (l->stop_ev)
        event_free(l->stop_ev);
    if (l->lev)
        evconnlistener_free(l->lev);
    if (l->base && !l->shared)
        event_base_free(l->base);
    SSL_CTX_free(l->tls);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return NULL;
}

int
bounce_listener_port(const struct bounce_listener *l)
{
    return l->port;
}

void
bounce_listener_stop(struct bounce_listener *l)
{
    if (l == NULL)
        return;
    if (l->shared) {
        /* The sessions' callbacks run on the delivery worker's loop: so does the end. */
        event_base_once(l->base, -1, EV_TIMEOUT, teardown_cb, l, NULL);
        pthread_mutex_lock(&l->mu);
        while (!l->torn_down)
            pthread_cond_wait(&l->cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
    } else {
        event_active(l->stop_ev, EV_TIMEOUT, 0);
        pthread_join(l->thread, NULL);
        teardown(l);
        event_free(l->stop_ev);
        event_base_free(l->base);
    }
    SSL_CTX_free(l->tls);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}
