/*
 * server.c - the HTTP server on libmicrohttpd: request lifecycle, body
 * limits, JSON parsing, dispatch, access log and graceful stop.
 *
 * DESIGN
 * libmicrohttpd runs a pool of threads on epoll; each request is handled on
 * one of them from start to end, so a handler may block on the database.
 * The request context is made when the request line arrives (uri_log_cb),
 * so it keeps the raw path: routing is on that, never on libmicrohttpd's
 * decoded copy.  Then three calls of access_cb:
 *  1. headers: framing checked (conflicting Content-Length, Content-Length
 *     with Transfer-Encoding: 400), the route matched, the caller
 *     authenticated, a declared body over the limit refused.  Any of these
 *     answers at once with "Connection: close": the body is never read and
 *     "100 Continue" is never sent for a request that is refused;
 *  2. body chunks: appended to a bounded buffer, or drained when too large;
 *  3. end: the body is checked and parsed, the handler runs, the answer goes.
 * Every request ends in completed_cb, which writes the access log line
 * (values escaped, unsubscribe tokens cut to a prefix), records metrics and
 * frees the context.  Stopping quiesces the listening socket, waits for
 * in-flight requests (bounded), then stops the threads.
 *
 * Slow clients: libmicrohttpd's idle timeout restarts on every byte, so a
 * client sending a byte a second holds a connection for ever.  Each
 * connection therefore has a deadline kept here (conn_track): the whole
 * header block within http_header_timeout of the connection's start (or of
 * the previous response, plus http_timeout, on a kept-alive connection), the
 * body within http_body_timeout plus its size at http_body_min_rate.  A
 * watchdog thread shuts down the socket of a connection past its deadline;
 * libmicrohttpd then sees the end of the stream and closes it.  The socket
 * is shut down under the same lock that the connection's close notification
 * takes, so a descriptor is never touched after libmicrohttpd closed it.
 * With one address limited to http_max_connections_per_ip, one client
 * cannot fill the server.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"
#include "webhook/webhook.h"

/* One open connection's deadline (see DESIGN). */
struct conn_track {
    struct conn_track *prev, *next;
    int fd;               /* borrowed from libmicrohttpd */
    int64_t deadline_us;  /* monotonic; 0 while a response is being sent */
    const char *phase;    /* "headers" or "body", for the log */
    bool cut;             /* shut down by the watchdog */
};

struct http_server {
    struct MHD_Daemon *d;
    struct MHD_Daemon *metrics_d; /* --metrics-listen, or NULL */
    struct app *app;
    atomic_int inflight;
    /* Connection deadlines. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct conn_track *conns; /* owned, a list under mu */
    int nconns;
    bool stopping;
    pthread_t watchdog;
    bool watchdog_started;
};

/* The two phases a connection can be cut in, and the log's words for them. */
static const char PHASE_HEADERS[] = "headers", PHASE_BODY[] = "body";

void
req_free(struct req *r)
{
    if (r == NULL)
        return;
    if (r->on_free)
        r->on_free(r);
    if (r->resp_reader_free && r->resp_cls) /* never handed to MHD */
        r->resp_reader_free(r->resp_cls);
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    free(r->raw_path);
    buf_cleanup(&r->body);
    json_decref(r->json);
    free(r->resp_body);
    free(r->resp_allow);
    free(r->resp_location);
    free(r);
}

static bool
request_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
              ('0' <= *s && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* Media type of the request, compared without parameters ("; charset=utf-8"). */
static bool
content_type_is(struct req *r, const char *want)
{
    const char *ct = req_header(r, "Content-Type");
    size_t n = strlen(want);

    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

struct framing {
    int content_lengths;
    const char *content_length;
    bool conflicting;
    const char *transfer_encoding;
};

static enum MHD_Result
framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct framing *f = cls;

    (void)kind;
    if (strcasecmp(key, "Content-Length") == 0) {
        if (f->content_lengths++ > 0 && strcmp(f->content_length, value ? value : "") != 0)
            f->conflicting = true;
        if (f->content_lengths == 1)
            f->content_length = value ? value : "";
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        if (f->transfer_encoding != NULL)
            f->conflicting = true; /* two lists: refused like two lengths */
        f->transfer_encoding = value ? value : "";
    }
    return MHD_YES;
}

/*
 * RFC 9112 section 6.3: a message with both Transfer-Encoding and
 * Content-Length, with Content-Lengths that differ, or with a transfer
 * coding other than chunked, has no trustworthy length: a proxy in front
 * may frame it otherwise (request smuggling).  Refused with 400 and the
 * connection closed.
 */
static bool
framing_ok(struct req *r)
{
    struct framing f = {0};

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_header, &f);
    if (f.conflicting || (f.transfer_encoding && f.content_length)) {
        reply_error(r, MC_ERR_BAD_REQUEST,
                    "conflicting message framing (Content-Length with Transfer-Encoding, or "
                    "differing Content-Length headers)");
        return false;
    }
    if (f.transfer_encoding && strcasecmp(f.transfer_encoding, "chunked") != 0) {
        reply_error(r, MC_ERR_BAD_REQUEST, "only Transfer-Encoding: chunked is accepted");
        return false;
    }
    return true;
}

/* Headers arrived: check the framing, match the route, authenticate. */
static void
begin(struct req *r)
{
    const char *rid = req_header(r, "X-Request-Id");
    const char *cl = req_header(r, "Content-Length");
    char *path = NULL;
    size_t len;
    int64_t n;

    if (request_id_ok(rid))
        snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    else {
        unsigned char rnd[8];
        crypto_random(rnd, sizeof(rnd));
        crypto_hex(rnd, sizeof(rnd), r->request_id);
    }
    buf_init(&r->body, (size_t)r->app->cfg->http_max_body);
    if (!framing_ok(r))
        return;
    if (strstr(r->raw_path, "%00") != NULL) {
        reply_error(r, MC_ERR_BAD_REQUEST, "the path holds an encoded NUL (%%00)");
        return;
    }
    if (r->query_nul) {
        reply_error(r, MC_ERR_BAD_REQUEST, "the query string holds an encoded NUL (%%00)");
        return;
    }

    /* "/api/v1/tenants/" is "/api/v1/tenants". */
    path = xstrdup(r->raw_path);
    len = strlen(path);
    if (len > 1 && path[len - 1] == '/')
        path[len - 1] = '\0';
    r->route_index = router_match(r->method, path, r->params, &r->nparams, &r->resp_allow);
    free(path);
    if (r->route_index == -1) {
        reply_error(r, MC_ERR_NO_ROUTE, "no endpoint %s %s", r->method, r->raw_path);
        return;
    }
    if (r->route_index == -2) {
        reply_error(r, MC_ERR_METHOD, "%s is not allowed here; allowed: %s", r->method,
                    r->resp_allow);
        return;
    }
    if (r->route_index == ROUTER_BAD_PATH) {
        r->route_index = -1;
        reply_error(r, MC_ERR_BAD_REQUEST, "the path holds a malformed escape");
        return;
    }
    r->route = &routes[r->route_index];
    for (int i = 0; i < r->nparams; i++)
        if (crypto_uuid_valid(r->params[i]))
            crypto_uuid_lower(r->params[i]);
    if (!auth_check(r))
        return;
    if (r->route->flags & R_STREAM) {
        r->route->fn(r);
        if (!r->answered && r->on_end == NULL) {
            log_error("event=http error=stream_not_set route=\"%s\"", r->route->pattern);
            reply_error(r, MC_ERR_INTERNAL, "internal error");
        }
    } else if (cl != NULL && parse_int64(cl, 0, INT64_MAX, &n) &&
               n > r->app->cfg->http_max_body) {
        reply_error(r, MC_ERR_TOO_LARGE, "request body is larger than %lld bytes",
                    (long long)r->app->cfg->http_max_body);
    }
}

/* The body is complete: check and parse it, then run the handler. */
static void
dispatch(struct req *r)
{
    unsigned flags = r->route->flags;
    json_error_t jerr;

    if (r->body.err == MC_ERR_TOO_LARGE) {
        reply_error(r, MC_ERR_TOO_LARGE, "request body is larger than %lld bytes",
                    (long long)r->app->cfg->http_max_body);
        return;
    }
    if (flags & (R_BODY | R_BODY_OPTIONAL)) {
        if (r->body.len == 0) {
            if (flags & R_BODY) {
                reply_error(r, MC_ERR_BAD_REQUEST, "a JSON object body is required");
                return;
            }
            r->json = json_object();
        } else {
            if (!content_type_is(r, "application/json")) {
                reply_error(r, MC_ERR_MEDIA_TYPE, "Content-Type must be application/json");
                return;
            }
            r->json = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
            if (r->json == NULL) {
                reply_error(r, MC_ERR_BAD_JSON,
                            "malformed JSON at line %d, column %d (byte %d): %s", jerr.line,
                            jerr.column, jerr.position, jerr.text);
                return;
            }
            if (!json_is_object(r->json)) {
                reply_error(r, MC_ERR_BAD_JSON, "the request body must be a JSON object");
                return;
            }
        }
    }
    if ((flags & R_BODY_RAW) && r->body.len == 0)
        buf_append(&r->body, "", 0); /* handlers may rely on a NUL-terminated buffer */
    r->route->fn(r);
    if (!r->answered) {
        log_error("event=http error=no_answer route=\"%s\"", r->route->pattern);
        reply_error(r, MC_ERR_INTERNAL, "internal error");
    }
}

/* Sent with every response of ours (issue 12 finding 9). */
static const char *const security_headers[][2] = {
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"}, /* an unsubscribe link is a capability */
};
#define CSP_API "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
#define CSP_PAGE                                                                                   \
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "                          \
    "frame-ancestors 'none'; base-uri 'none'"

static enum MHD_Result
send_reply(struct MHD_Connection *conn, struct req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t len = r->resp_body ? strlen(r->resp_body) : 0;

    if (r->resp_static) {
        resp = MHD_create_response_from_buffer(r->resp_static_len, (void *)r->resp_static,
                                               MHD_RESPMEM_PERSISTENT);
        if (resp == NULL)
            return MHD_NO;
    } else if (r->resp_reader) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                                 r->resp_reader,
                                                 r->resp_cls, r->resp_reader_free);
        if (resp == NULL)
            return MHD_NO;
        r->resp_cls = NULL; /* MHD owns it now and frees it */
    } else {
        resp = MHD_create_response_from_buffer(len, r->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            return MHD_NO;
        r->resp_body = NULL; /* MHD owns it now */
    }
    if (r->resp_disposition)
        MHD_add_response_header(resp, "Content-Disposition", r->resp_disposition);
    if (r->resp_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->resp_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (r->status == 405 && r->resp_allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->resp_allow);
    if (r->resp_location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->resp_location);
    /* RFC 9110 15.5.2: a 401 names the scheme the client should use. */
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"mailcast\"");
    bool own_csp = false;
    for (const char *const *h = r->resp_headers; h && h[0]; h += 2) {
        MHD_add_response_header(resp, h[0], h[1]);
        own_csp |= strcasecmp(h[0], "Content-Security-Policy") == 0;
    }
    MHD_add_response_header(resp, "Cache-Control", r->resp_cache ? r->resp_cache : "no-store");
    for (size_t i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++)
        MHD_add_response_header(resp, security_headers[i][0], security_headers[i][1]);
    /* The unsubscribe page needs its inline style and its form posting back
     * here; the console's responses bring their own policy (console.c). */
    if (!own_csp)
        MHD_add_response_header(resp, "Content-Security-Policy",
                                r->resp_type && str_prefix(r->resp_type, "text/html") ? CSP_PAGE
                                                                                      : CSP_API);
    if (r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    /* A change may have written events: this process's webhook sender, if
     * it has been backing off, looks again at its poll interval. */
    if (r->status >= 200 && r->status < 300 && r->method != NULL &&
        strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        webhook_sender_nudge(r->app->webhooks);
    ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The deadline tracker of conn, set when it connected. */
static struct conn_track *
track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

/* Moves conn to phase with a deadline at the monotonic time at_us (phase NULL: none). */
static void
track_set(struct http_server *srv, struct MHD_Connection *conn, const char *phase, int64_t at_us)
{
    struct conn_track *t = track_of(conn);

    if (t == NULL)
        return;
    pthread_mutex_lock(&srv->mu);
    t->phase = phase;
    t->deadline_us = phase ? at_us : 0;
    pthread_mutex_unlock(&srv->mu);
}

/*
 * When the body of r must have arrived: http_body_timeout after the headers,
 * plus its size at http_body_min_rate (the declared length, or what a
 * chunked body has sent so far, so a chunked sender must keep the rate).
 */
static int64_t
body_deadline_us(const struct config *cfg, const struct req *r)
{
    int64_t size = r->body_expected > r->body_received ? r->body_expected : r->body_received;

    return r->body_start_us + cfg->http_body_timeout * 1000000 +
           size / cfg->http_body_min_rate * 1000000 +
           size % cfg->http_body_min_rate * 1000000 / cfg->http_body_min_rate;
}

/* The request line arrived: the context starts here, holding the raw path. */
static void *
uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *srv = cls;
    struct req *r = xcalloc(1, sizeof(*r));

    r->app = srv->app;
    r->conn = conn;
    r->raw_path = xstrndup(uri, strcspn(uri, "?"));
    /* A decoded query value ends at a NUL: "status=sent%00x" would read as "sent". */
    r->query_nul = strstr(uri + strlen(r->raw_path), "%00") != NULL;
    r->route_index = -1;
    r->start_us = time_mono_us();
    return r;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size,
          void **con_cls)
{
    struct http_server *srv = cls;
    const struct config *cfg = srv->app->cfg;
    struct req *r = *con_cls;
    int64_t n;

    (void)version;
    (void)url; /* decoded: routing uses r->raw_path */
    if (r == NULL) /* uri_log_cb always runs first */
        return MHD_NO;
    if (!r->begun) {
        const char *cl = req_header(r, "Content-Length");

        r->begun = true;
        r->method = method;
        /* In flight from its headers on: a stop does not wait for half-sent requests. */
        atomic_fetch_add(&srv->inflight, 1);
        begin(r);
        if (r->answered) {
            /* Decided by the headers: answer now, read no body, close. */
            r->close = true;
            return send_reply(conn, r);
        }
        if (cl == NULL || !parse_int64(cl, 0, INT64_MAX / 2, &n))
            n = 0; /* chunked: the allowance grows as the body arrives */
        r->body_expected = n;
        r->body_start_us = time_mono_us();
        track_set(srv, conn, PHASE_BODY, body_deadline_us(cfg, r));
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        r->body_received += (int64_t)*upload_data_size;
        if (r->body_received > r->body_expected)
            track_set(srv, conn, PHASE_BODY, body_deadline_us(cfg, r));
        if (!r->answered && r->on_data)
            r->on_data(r, upload_data, *upload_data_size);
        else if (!r->answered)
            buf_append(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    track_set(srv, conn, NULL, 0);
    if (!r->answered && r->on_end)
        r->on_end(r);
    else if (!r->answered)
        dispatch(r);
    return send_reply(conn, r);
}

/*
 * The path as it may be logged: escaped, and for an unsubscribe link only
 * the token's first 8 characters (the whole token is a working link).
 */
static void
log_path(const struct req *r, char *out, size_t outlen)
{
    const char *p = r->raw_path ? r->raw_path : "";
    char cut[16];

    if (str_prefix(p, "/u/") && strlen(p) > 11) {
        snprintf(cut, sizeof(cut), "/u/%.8s", p + 3);
        log_escape(cut, out, outlen);
        if (strlen(out) + 4 <= outlen)
            memcpy(out + strlen(out), "...", 4);
        return;
    }
    log_escape(p, out, outlen);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct req *r = *con_cls;
    char path[600], method[40];
    int64_t dur;
    bool begun;

    if (r == NULL)
        return;
    /* A kept-alive connection: the next header block is awaited from now. */
    track_set(srv, conn, PHASE_HEADERS,
              time_mono_us() +
                  (srv->app->cfg->http_timeout + srv->app->cfg->http_header_timeout) * 1000000);
    dur = time_mono_us() - r->start_us;
    if (!r->answered || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        r->status = r->answered ? r->status : 499;
    log_path(r, path, sizeof(path));
    log_info("event=http method=%s path=\"%s\" route=\"%s\" status=%d dur_ms=%.2f "
             "request_id=%s%s%s%s",
             log_escape(r->method ? r->method : "-", method, sizeof(method)), path,
             r->route ? r->route->pattern : "-", r->status, (double)dur / 1000.0, r->request_id,
             r->tenant_id[0] ? " tenant=" : "", r->tenant_id,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    metrics_observe(srv->app->metrics, r->route ? r->route_index : -1, r->status, dur);
    begun = r->begun;
    req_free(r);
    *con_cls = NULL;
    if (begun)
        atomic_fetch_sub(&srv->inflight, 1);
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512], esc[1024];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("event=http_server msg=\"%s\"", log_escape(msg, esc, sizeof(esc)));
}

/* Connections come and go: each gets its header deadline (see DESIGN). */
static void
notify_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    struct conn_track *t = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

        t = xcalloc(1, sizeof(*t));
        t->fd = ci ? ci->connect_fd : -1;
        t->phase = PHASE_HEADERS;
        t->deadline_us = time_mono_us() + srv->app->cfg->http_header_timeout * 1000000;
        pthread_mutex_lock(&srv->mu);
        t->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = t;
        srv->conns = t;
        srv->nconns++;
        pthread_mutex_unlock(&srv->mu);
        metrics_connections_add(srv->app->metrics, 1);
        *socket_context = t;
        return;
    }
    if (t == NULL)
        return;
    /* Closed: libmicrohttpd closes the descriptor after this returns. */
    pthread_mutex_lock(&srv->mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        srv->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    srv->nconns--;
    pthread_mutex_unlock(&srv->mu);
    metrics_connections_add(srv->app->metrics, -1);
    free(t);
    *socket_context = NULL;
}

static void server_free(struct http_server *srv);

/* Every 100 ms: shuts down the sockets of connections past their deadline. */
static void *
watchdog_main(void *arg)
{
    struct http_server *srv = arg;

    pthread_mutex_lock(&srv->mu);
    while (!srv->stopping) {
        struct timespec ts;
        int64_t now = time_mono_us();
        int cut = 0;
        const char *phase = NULL;

        for (struct conn_track *t = srv->conns; t; t = t->next) {
            if (t->cut || t->deadline_us == 0 || now < t->deadline_us || t->fd < 0)
                continue;
            shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
            phase = t->phase;
            cut++;
        }
        if (cut)
            log_warn("event=http_deadline cut=%d phase=%s open=%d", cut, phase, srv->nconns);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&srv->cond, &srv->mu, &ts);
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* The key-less /metrics listener (--metrics-listen): that one path, nothing else. */
static enum MHD_Result
metrics_access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                  const char *version, const char *upload_data, size_t *upload_data_size,
                  void **con_cls)
{
    struct http_server *srv = cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char *body;
    unsigned status = 200;

    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* headers: answer on the next call */
        *con_cls = srv;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") != 0 || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) {
        status = strcmp(url, "/metrics") == 0 ? 405 : 404;
        body = xstrdup(status == 405 ? "method not allowed\n" : "not found\n");
    } else {
        body = api_metrics_text(srv->app);
    }
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            status == 200 ? METRICS_CONTENT_TYPE : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Starts a libmicrohttpd daemon on "HOST:PORT"; NULL and logged on failure. */
static struct MHD_Daemon *
daemon_start(struct http_server *srv, const char *hostport, bool api)
{
    const struct config *cfg = srv->app->cfg;
    struct addrinfo hints = {0}, *ai = NULL;
    struct MHD_Daemon *d;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    char port[16], *host = NULL;
    int portnum, rc;

    if (!config_split_hostport(hostport, &host, &portnum))
        return NULL; /* validated at load */
    snprintf(port, sizeof(port), "%d", portnum);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &ai);
    free(host);
    if (rc != 0 || ai == NULL) {
        log_error("event=http error=\"cannot resolve listen address %s: %s\"", hostport,
                  gai_strerror(rc));
        return NULL;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (api)
        d = MHD_start_daemon(
            flags, 0, NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE,
            (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)cfg->http_max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            (unsigned)cfg->http_max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)cfg->http_timeout, MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, srv,
            MHD_OPTION_NOTIFY_CONNECTION, notify_cb, srv, MHD_OPTION_NOTIFY_COMPLETED,
            completed_cb, srv, MHD_OPTION_END);
    else
        d = MHD_start_daemon(flags, 0, NULL, NULL, metrics_access_cb, srv,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                             ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, 64u,
                             MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (d == NULL)
        log_error("event=http error=\"cannot listen on %s (in use, or not an address of this "
                  "machine?)\"",
                  hostport);
    return d;
}

/* Room for every connection allowed: the soft descriptor limit raised up to the hard one. */
static void
raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->http_max_connections + 512; /* the database, relay, logs */

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        log_warn("event=http warn=\"open files limited to %llu: fewer than "
                 "http_max_connections (%lld) can be served\"",
                 (unsigned long long)rl.rlim_cur, (long long)cfg->http_max_connections);
}

struct http_server *
http_server_start(struct app *app)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));

    raise_fd_limit(app->cfg);
    srv->app = app;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cond, NULL);
    app->metrics = metrics_new(nroutes);
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
        log_error("event=http error=\"cannot start the connection watchdog\"");
        goto fail;
    }
    srv->watchdog_started = true;
    srv->d = daemon_start(srv, app->cfg->listen, true);
    if (srv->d == NULL)
        goto fail;
    if (app->cfg->metrics_listen != NULL) {
        srv->metrics_d = daemon_start(srv, app->cfg->metrics_listen, false);
        if (srv->metrics_d == NULL)
            goto fail;
    }
    return srv;
fail:
    if (srv->d)
        MHD_stop_daemon(srv->d);
    server_free(srv);
    return NULL;
}

/* Stops the watchdog and frees what http_server_start made (the daemons already stopped). */
static void
server_free(struct http_server *srv)
{
    if (srv->watchdog_started) {
        pthread_mutex_lock(&srv->mu);
        srv->stopping = true;
        pthread_cond_signal(&srv->cond);
        pthread_mutex_unlock(&srv->mu);
        pthread_join(srv->watchdog, NULL);
    }
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->mu);
    metrics_free(srv->app->metrics);
    srv->app->metrics = NULL;
    free(srv);
}

void
http_server_stop(struct http_server *srv, int timeout_s)
{
    int64_t deadline;
    MHD_socket ls;

    if (srv == NULL)
        return;
    if (srv->metrics_d)
        MHD_stop_daemon(srv->metrics_d);
    ls = MHD_quiesce_daemon(srv->d);
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    deadline = time_mono_us() + (int64_t)timeout_s * 1000000;
    while (atomic_load(&srv->inflight) > 0 && time_mono_us() < deadline)
        usleep(10000);
    if (atomic_load(&srv->inflight) > 0)
        log_warn("event=shutdown warn=\"%d requests still in flight after %ds\"",
                 atomic_load(&srv->inflight), timeout_s);
    MHD_stop_daemon(srv->d);
    server_free(srv);
}
