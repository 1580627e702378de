/*
 * server.c - the HTTP server on libmicrohttpd: request lifecycle, body
 * limits, JSON parsing, dispatch, access log and graceful stop.
 *
 * DESIGN
 * libmicrohttpd runs a pool of threads on epoll; each request is handled on
 * one of them from start to end, so a handler may block on the database.
 * A request goes through three calls of access_cb:
 *  1. headers: the request context is made, the route matched and the
 *     caller authenticated; a failure is remembered, not sent yet;
 *  2. body chunks: appended to a bounded buffer, or drained when the request
 *     already failed or is too large (answering before the client finished
 *     sending would make it see a reset instead of our error);
 *  3. end: the body is checked and parsed, the handler runs, the answer goes.
 * Every request ends in completed_cb, which writes the access log line,
 * records metrics and frees the context.  Stopping quiesces the listening
 * socket, waits for in-flight requests (bounded), then stops the threads.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http.h"

struct http_server {
    struct MHD_Daemon *d;
    struct app *app;
    atomic_int inflight;
};

static void
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

/* Headers arrived: match the route and authenticate. */
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
    if (cl != NULL && parse_int64(cl, 0, INT64_MAX, &n) && n > r->app->cfg->http_max_body)
        r->body.err = MC_ERR_TOO_LARGE;

    /* "/api/v1/tenants/" is "/api/v1/tenants". */
    path = xstrdup(r->path);
    len = strlen(path);
    if (len > 1 && path[len - 1] == '/')
        path[len - 1] = '\0';
    r->route_index = router_match(r->method, path, r->params, &r->nparams, &r->resp_allow);
    free(path);
    if (r->route_index == -1) {
        reply_error(r, MC_ERR_NO_ROUTE, "no endpoint %s %s", r->method, r->path);
        return;
    }
    if (r->route_index == -2) {
        reply_error(r, MC_ERR_METHOD, "%s is not allowed here; allowed: %s", r->method,
                    r->resp_allow);
        return;
    }
    r->route = &routes[r->route_index];
    for (int i = 0; i < r->nparams; i++)
        if (crypto_uuid_valid(r->params[i]))
            crypto_uuid_lower(r->params[i]);
    if (auth_check(r) && (r->route->flags & R_STREAM)) {
        r->route->fn(r);
        if (!r->answered && r->on_end == NULL) {
            log_error("event=http error=stream_not_set route=\"%s\"", r->route->pattern);
            reply_error(r, MC_ERR_INTERNAL, "internal error");
        }
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

static enum MHD_Result
send_reply(struct MHD_Connection *conn, struct req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t len = r->resp_body ? strlen(r->resp_body) : 0;

    if (r->resp_reader) {
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
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size,
          void **con_cls)
{
    struct http_server *srv = cls;
    struct req *r = *con_cls;

    (void)version;
    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        r->app = srv->app;
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->route_index = -1;
        r->start_us = time_mono_us();
        *con_cls = r;
        atomic_fetch_add(&srv->inflight, 1);
        begin(r);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!r->answered && r->on_data)
            r->on_data(r, upload_data, *upload_data_size);
        else if (!r->answered)
            buf_append(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!r->answered && r->on_end)
        r->on_end(r);
    else if (!r->answered)
        dispatch(r);
    return send_reply(conn, r);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct req *r = *con_cls;
    int64_t dur;

    (void)conn;
    if (r == NULL)
        return;
    dur = time_mono_us() - r->start_us;
    if (!r->answered || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        r->status = r->answered ? r->status : 499;
    log_info("event=http method=%s path=\"%s\" route=\"%s\" status=%d dur_ms=%.2f "
             "request_id=%s%s%s%s",
             r->method, r->path, r->route ? r->route->pattern : "-", r->status,
             (double)dur / 1000.0, r->request_id, r->tenant_id[0] ? " tenant=" : "",
             r->tenant_id, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    metrics_observe(srv->app->metrics, r->route ? r->route_index : -1, r->status, dur);
    req_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
    log_warn("event=http_server msg=\"%s\"", msg);
}

struct http_server *
http_server_start(struct app *app)
{
    const struct config *cfg = app->cfg;
    struct addrinfo hints = {0}, *ai = NULL;
    struct http_server *srv;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    char port[16];
    int rc;

    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        log_error("event=http error=\"cannot resolve listen address %s: %s\"", cfg->listen,
                  gai_strerror(rc));
        return NULL;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv = xcalloc(1, sizeof(*srv));
    srv->app = app;
    app->metrics = metrics_new(nroutes);
    srv->d = MHD_start_daemon(
        flags, 0, NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->http_max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->http_timeout, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, srv,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (srv->d == NULL) {
        log_error("event=http error=\"cannot listen on %s (in use, or not an address of this "
                  "machine?)\"",
                  cfg->listen);
        metrics_free(app->metrics);
        app->metrics = NULL;
        free(srv);
        return NULL;
    }
    return srv;
}

void
http_server_stop(struct http_server *srv, int timeout_s)
{
    int64_t deadline;
    MHD_socket ls;

    if (srv == NULL)
        return;
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
    metrics_free(srv->app->metrics);
    srv->app->metrics = NULL;
    free(srv);
}
