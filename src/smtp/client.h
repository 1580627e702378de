/*
 * client.h - our SMTP client: a pool of pipelining connections to one
 * relay, on libevent and OpenSSL.
 *
 * A job is one message to one recipient.  The pool queues jobs, opens up to
 * max_connections connections, and sends each job as MAIL, RCPT and DATA in
 * one round trip when the relay offers PIPELINING (RFC 2920), writing the
 * next job's commands right after the previous job's end of data.  Every
 * job ends exactly once in the done callback with one of four results.
 *
 * SMTP_NOT_SENT means the job never reached a transaction (connection
 * refused, 421 at greeting, TLS or AUTH failure): the pool then backs off
 * as a whole (a circuit breaker) and the caller should not count the
 * attempt.
 */
#ifndef MC_SMTP_CLIENT_H
#define MC_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/err.h"
#include "core/util.h"

enum smtp_tls {
    SMTP_TLS_OFF,      /* never */
    SMTP_TLS_AUTO,     /* STARTTLS when offered */
    SMTP_TLS_REQUIRE,  /* STARTTLS or fail */
    SMTP_TLS_IMPLICIT, /* smtps: TLS from the first byte */
};

struct smtp_params {
    char host[256];
    int port;
    enum smtp_tls tls;
    bool verify;          /* check the certificate chain and the host name */
    const char *ca_file;  /* borrowed; NULL: the system's CAs */
    char user[256];       /* "" when no AUTH */
    char pass[256];
    char helo_name[256];
    char dns_server[64];  /* nameserver IP[:port] for the relay's name; "" the system's */
    int connect_timeout;  /* seconds */
    int command_timeout;
    int data_timeout;     /* the reply after end of data */
    int idle_timeout;     /* an idle connection says QUIT after this many seconds */
    int max_connections;
    int max_messages;     /* per connection */
    char source_address[64]; /* a local IP literal to bind before connecting; "" none */
};

/*
 * Parses smtp://[user:pass@]host[:port][?starttls=require|auto|off] and
 * smtps://[user:pass@]host[:port] into p (other fields untouched).  On
 * failure writes the reason into err.
 */
mc_err smtp_params_parse(const char *url, struct smtp_params *p, char *err, size_t errlen);

enum smtp_result { SMTP_SENT, SMTP_TEMPFAIL, SMTP_PERMFAIL, SMTP_NOT_SENT };

struct smtp_job {
    /* Set by the caller; the pool never frees them. */
    char *mail_from;
    char *rcpt_to;
    char *envid;       /* DSN ENVID when the relay offers DSN; may be NULL */
    bool utf8;         /* needs SMTPUTF8 */
    int64_t deadline;  /* monotonic us: not started after this (NOT_SENT); 0 none */
    bool paced;        /* counted apart while queued (smtp_pool_waiting_paced) */
    void (*started)(struct smtp_job *job); /* NULL, or called when it goes onto a connection
                                              (it must not submit) */
    struct buf data;   /* the message, CRLF lines, not dot-stuffed */
    void *cookie;
    /* Set by the pool before done. */
    enum smtp_result result;
    int code;
    char enhanced[16];
    char text[256];
    char queue_id[64];
    bool from_relay;   /* code and text are the relay's reply, not mailcast's own verdict */
    /* The pool's. */
    struct smtp_job *next;
    bool failed;       /* a reply before DATA refused it */
};

struct smtp_pool;
typedef void (*smtp_done_fn)(struct smtp_job *job, void *arg);

/* A pool on base (the caller runs the loop); p is copied. */
struct smtp_pool *smtp_pool_new(struct event_base *base, const struct smtp_params *p,
                                smtp_done_fn done, void *arg);
/* Queues job (the caller keeps ownership until done is called for it). */
void smtp_pool_submit(struct smtp_pool *pool, struct smtp_job *job);
/*
 * Changes the pool's connection limit (at least 1).  Lowered, the
 * connections above it take no new job: idle ones say QUIT at once, busy
 * ones after their last reply, ones still opening when they are ready;
 * until they are gone no new connection opens.  Raised, dispatch opens
 * more as jobs wait.
 */
void smtp_pool_set_max_connections(struct smtp_pool *pool, int n);
/* Jobs queued or in flight. */
int smtp_pool_busy(const struct smtp_pool *pool);
/* Paced jobs queued and not yet on a connection. */
int smtp_pool_waiting_paced(const struct smtp_pool *pool);
/* Ends every job still waiting for a connection with SMTP_NOT_SENT (a stop). */
void smtp_pool_drain(struct smtp_pool *pool);
/*
 * Closes the pool politely: no new connection or job from now on; every
 * idle connection says QUIT at once, busy ones after their last reply,
 * ones still opening are closed.  closed(arg) (may be NULL) is called once
 * when the last connection is gone, possibly before this returns.
 */
void smtp_pool_quit(struct smtp_pool *pool, void (*closed)(void *), void *arg);
/* Connections open or opening. */
int smtp_pool_conns(const struct smtp_pool *pool);
/* True while the circuit breaker holds new connections back. */
bool smtp_pool_backing_off(const struct smtp_pool *pool);
/* Ends every job still in the pool (done with SMTP_NOT_SENT or SMTP_TEMPFAIL) and frees it. */
void smtp_pool_free(struct smtp_pool *pool);

#endif
