/*
 * http.h - the HTTP API: server, router, request helpers and the handlers.
 *
 * A handler gets a struct req whose route, path parameters, authenticated
 * caller and parsed JSON body are ready, and answers exactly once with
 * reply_json(), reply_empty() or one of the reply_error*() functions.
 * Handlers never see libmicrohttpd.
 */
#ifndef MC_HTTP_H
#define MC_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"
#include "app/app.h"
#include "core/util.h"
#include "store/store.h"

struct http_server;

/* Route flags. */
#define R_AUTH_NONE 0x00u
#define R_AUTH_OPERATOR 0x01u /* operator key only */
#define R_AUTH_READ 0x02u     /* tenant key with read, or the operator key */
#define R_AUTH_WRITE 0x04u    /* tenant key with write, or the operator key */
#define R_BODY 0x10u          /* a JSON object body is required */
#define R_BODY_OPTIONAL 0x20u /* a JSON object body may be sent */
#define R_STREAM 0x40u        /* the handler runs on the headers and takes the body itself */
#define R_BODY_RAW 0x80u      /* any body, kept as bytes in r->body (bounded), not parsed */
#define R_AUTH_SELF 0x100u    /* with R_AUTH_READ: a tenant key, on a path without a tenant */

struct req;
typedef void (*handler_fn)(struct req *r);

struct route {
    const char *method;
    const char *pattern; /* "/api/v1/tenants/{tenant_id}"; {x} matches one segment */
    handler_fn fn;
    unsigned flags;
};

#define REQ_MAX_PARAMS 4

struct req {
    struct app *app;                /* borrowed */
    const char *method;             /* borrowed from MHD */
    void *conn;                     /* the MHD connection, for headers and query */
    const struct route *route;      /* NULL when unmatched */
    int route_index;
    char *params[REQ_MAX_PARAMS];   /* owned: path captures in pattern order */
    int nparams;
    struct buf body;                /* the raw request body */
    json_t *json;                   /* owned: the parsed body (R_BODY*), or NULL */
    char request_id[72];
    int64_t start_us;               /* monotonic */
    /* The authenticated caller. */
    bool is_operator;
    char tenant_id[MC_UUID_LEN + 1]; /* a tenant key's tenant, else "" */
    unsigned scopes;
    /*
     * R_STREAM routes: the handler, run when the headers arrive, either
     * answers at once or sets these; on_data gets each body chunk (and may
     * answer, after which the rest of the body is drained), on_end runs at
     * the end and must answer, on_free always runs last.
     */
    void (*on_data)(struct req *r, const char *data, size_t len);
    void (*on_end)(struct req *r);
    void (*on_free)(struct req *r);
    void *stream; /* the handler's state, freed by on_free */
    /* A streamed response (reply_stream). */
    ssize_t (*resp_reader)(void *cls, uint64_t pos, char *buf, size_t max);
    void (*resp_reader_free)(void *cls);
    void *resp_cls;
    const char *resp_disposition; /* static or owned by resp_cls */
    /* The response. */
    int status;
    char *resp_body;                /* owned */
    const char *resp_type;          /* static */
    const unsigned char *resp_static; /* static body (embedded files), used when set */
    size_t resp_static_len;
    const char *resp_cache;         /* static Cache-Control; NULL is "no-store" */
    const char *const *resp_headers; /* static name, value, ..., NULL; or NULL */
    char *resp_allow;               /* owned: Allow header for 405 */
    char *resp_location;            /* owned: Location header (201, 202) */
    bool answered;
    /* Set by the server. */
    char *raw_path;                 /* owned: the path as sent, still escaped, no query */
    bool query_nul;                 /* the query string holds an encoded NUL (%00) */
    bool begun;                     /* the headers were seen */
    bool close;                     /* answered from the headers: close after the answer */
    int64_t body_expected;          /* the declared Content-Length, 0 when chunked */
    int64_t body_received;
    int64_t body_start_us;          /* monotonic: when the headers were complete */
};

/* ---- router.c ---- */

extern const struct route routes[];
extern const int nroutes;

/*
 * Finds the route for method and the raw (still escaped) path.  Returns
 * its index and fills the captures, decoded, or -1 when no pattern matches
 * the path (MC_ERR_NO_ROUTE), -2 when patterns match but not with this
 * method (*allow gets "GET, POST"), ROUTER_BAD_PATH when a capture holds
 * "%00" or a malformed escape.
 */
#define ROUTER_BAD_PATH (-3)
int router_match(const char *method, const char *path, char **params, int *nparams,
                 char **allow);
/* How many "{...}" captures pattern has. */
int router_captures(const char *pattern);
/* Decodes the %XX escapes of s in place; false on "%00" or a malformed escape. */
bool router_segment_decode(char *s);

/* ---- server.c ---- */

/* Frees a request context and all it owns; req_free(NULL) is a no-op. */
void req_free(struct req *r);
/* Starts listening (threads of its own); NULL and logged on failure. */
struct http_server *http_server_start(struct app *app);
/* Stops accepting, lets in-flight requests finish within timeout_s, stops. */
void http_server_stop(struct http_server *srv, int timeout_s);

/* ---- request helpers (response.c) ---- */

/* Sends obj (stolen) with status. */
void reply_json(struct req *r, int status, json_t *obj);
/*
 * 201 Created with obj (stolen) and a Location header: the request path
 * (without a trailing slash, and without its last segment when that is
 * drop, e.g. "/import") followed by "/" and segment, percent-encoded, when
 * segment is not NULL.
 */
void reply_created(struct req *r, json_t *obj, const char *segment, const char *drop);
/* r's path as reply_created() makes it (owned). */
char *req_location(const struct req *r, const char *segment, const char *drop);
void reply_empty(struct req *r, int status);
/*
 * Answers with a body produced piece by piece: reader fills buf with up to
 * max bytes and returns how many, REPLY_STREAM_END at the end or
 * REPLY_STREAM_ERROR to cut the connection; free_fn(cls) runs once after.
 */
#define REPLY_STREAM_END ((ssize_t)-1)
#define REPLY_STREAM_ERROR ((ssize_t)-2)
void reply_stream(struct req *r, int status, const char *type,
                  ssize_t (*reader)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
                  void (*free_fn)(void *cls));
/* An error with the table's status and code and a formatted message. */
void reply_error(struct req *r, mc_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 422 naming the field. */
void reply_invalid(struct req *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replies for a store error: NOT_FOUND as "<what> not found", others by the table. */
void reply_store_error(struct req *r, mc_err e, const char *what);
/* The message reply_store_error() gives for e about what ("tenant"), for the CLI too. */
void store_error_text(mc_err e, const char *what, char *out, size_t n);

/* The path capture named in the pattern, e.g. "tenant_id"; NULL if absent. */
const char *req_param(const struct req *r, const char *name);
/* The tenant of a /api/v1/tenants/{tenant_id}/... route (checked by auth.c). */
#define TENANT(r) req_param((r), "tenant_id")
/* A query-string argument, or NULL. */
const char *req_query(const struct req *r, const char *name);
/* A request header, or NULL. */
const char *req_header(const struct req *r, const char *name);
/* Reads limit/offset into pg; on a bad value replies 422 and returns false. */
bool req_page(struct req *r, struct page *pg);

/* ---- JSON helpers (response.c) ---- */

/* "2026-11-29T11:13:53Z", or JSON null for 0. */
json_t *json_time(int64_t us);
/* A JSON value parsed from stored JSON text, or null. */
json_t *json_from_text(const char *text);
/* A string or null. */
json_t *json_str_or_null(const char *s);
/* The standard list envelope {"data":items,"total","limit","offset"}; steals items. */
json_t *json_page(json_t *items, int64_t total, const struct page *pg);

/*
 * Field readers for request bodies.  Each returns true when the field is
 * valid or absent (then *present, if not NULL, is false), and false after
 * replying 422 naming the field.
 */
#define F_REQUIRED 0x1u
#define F_NONEMPTY 0x2u
#define F_NULLABLE 0x4u /* JSON null is allowed (reported as present with NULL) */
#define F_ONELINE 0x8u  /* no CR or LF */
bool field_string(struct req *r, json_t *obj, const char *name, unsigned flags, size_t maxlen,
                  const char **out, bool *present);
bool field_int(struct req *r, json_t *obj, const char *name, unsigned flags, int64_t min,
               int64_t max, int64_t *out, bool *present);
bool field_bool(struct req *r, json_t *obj, const char *name, unsigned flags, bool *out,
                bool *present);
/* An object (or array when want_array), serialised compactly into *out (owned). */
bool field_json(struct req *r, json_t *obj, const char *name, unsigned flags, bool want_array,
                char **out, bool *present);

/* ---- auth.c ---- */

/*
 * Authenticates the request for its route: fills r->is_operator,
 * r->tenant_id and r->scopes, or replies 401/403/404 and returns false.
 */
bool auth_check(struct req *r);
/*
 * Makes a new tenant key: *secret (owned) is shown once, prefix and hash
 * are stored.
 */
void auth_key_generate(char **secret, char **prefix, char hash[65]);

/* ---- metrics.c ---- */

struct metrics *metrics_new(int nroutes);
void metrics_free(struct metrics *m);
/* Records one request; route -1 for unmatched. */
void metrics_observe(struct metrics *m, int route, int status, int64_t dur_us);
/* Prometheus text exposition. */
void metrics_render(struct metrics *m, struct buf *out);
/* Counts open HTTP connections (delta +1 or -1). */
void metrics_connections_add(struct metrics *m, int delta);

/* ---- handlers: api_health.c ---- */
void api_healthz(struct req *r);
void api_readyz(struct req *r);
void api_metrics(struct req *r);
/* The metrics page (owned), for /metrics and the --metrics-listen listener. */
char *api_metrics_text(struct app *app);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- handlers: api_tenants.c ---- */
void api_tenant_create(struct req *r);
void api_tenant_list(struct req *r);
void api_tenant_get(struct req *r);
void api_tenant_patch(struct req *r);
void api_tenant_delete(struct req *r);
void api_key_create(struct req *r);
void api_key_list(struct req *r);
void api_key_revoke(struct req *r);
void api_rate_limits_get(struct req *r);
void api_rate_limits_put(struct req *r);
void api_whoami(struct req *r);

/* ---- handlers: api_lists.c, api_import.c, api_unsubscribes.c ---- */
void api_list_create(struct req *r);
void api_list_list(struct req *r);
void api_list_get(struct req *r);
void api_list_update(struct req *r);
void api_list_delete(struct req *r);
void api_recipient_create(struct req *r);
void api_recipient_list(struct req *r);
void api_recipient_get(struct req *r);
void api_recipient_update(struct req *r);
void api_recipient_delete(struct req *r);
void api_recipient_export(struct req *r);
void api_recipient_import(struct req *r);
void api_unsub_list(struct req *r);
void api_unsub_create(struct req *r);
void api_unsub_delete(struct req *r);
void api_unsub_import(struct req *r);
json_t *list_json(const struct recipient_list *l);
json_t *recipient_json(const struct recipient *x);
json_t *unsubscribe_json(const struct unsubscribe *u);

/* Slug rules (shared with the CLI): 1-63 of [a-z0-9-], no hyphen at either end. */
bool tenant_slug_valid(const char *s);
/* A valid slug made from a display name (owned). */
char *tenant_slug_from_name(const char *name);
/*
 * Creates tenant t (name, slug, plan, settings, status set) as the API and
 * the CLI do: when the slug was derived from the name (!slug_chosen) and is
 * taken, retries with a random suffix.  MC_ERR_CONFLICT: the slug is taken.
 */
mc_err tenant_create(struct store *st, struct tenant *t, bool slug_chosen);

/* ---- handlers: api_campaigns.c ---- */
void api_campaign_create(struct req *r);
void api_campaign_list(struct req *r);
void api_campaign_get(struct req *r);
void api_campaign_update(struct req *r);
void api_campaign_delete(struct req *r);
void api_campaign_schedule(struct req *r);
void api_campaign_send(struct req *r);
void api_campaign_pause(struct req *r);
void api_campaign_resume(struct req *r);
void api_campaign_cancel(struct req *r);
void api_campaign_stats(struct req *r);
void api_campaign_preview(struct req *r);
void api_campaign_test(struct req *r);
void api_campaign_timeline(struct req *r);

/* ---- handlers: api_unsubscribe_link.c (public, no key) ---- */
void api_unsubscribe_page(struct req *r);
void api_unsubscribe_post(struct req *r);

/* ---- handlers: api_bounces.c ---- */
void api_bounce_list(struct req *r);
void api_bounce_create(struct req *r);
void api_bounce_get(struct req *r);
/* The operator's reports that matched no valid reference. */
void api_bounce_unmatched_list(struct req *r);
void api_bounce_unmatched_get(struct req *r);
void api_bounce_policy_get(struct req *r);
void api_bounce_policy_put(struct req *r);
struct bounce_stats;
/* Prometheus lines for the bounce counters. */
void bounce_metrics(const struct bounce_stats *s, struct buf *out);

/* ---- handlers: console.c (the embedded web console) ---- */
void console_index(struct req *r);
void console_asset(struct req *r);

/* ---- handlers: api_dkim.c ---- */
void api_dkim_create(struct req *r);
void api_dkim_list(struct req *r);
void api_dkim_delete(struct req *r);
json_t *campaign_json(const struct campaign *c);

/* ---- handlers: api_shaping.c (operator) ---- */
void api_shaping_get(struct req *r);
void api_shaping_put(struct req *r);
void api_shaping_state_list(struct req *r);
void api_shaping_state_lift(struct req *r);

/* ---- handlers: api_egress.c (operator) ---- */
void api_egress_create(struct req *r);
void api_egress_list(struct req *r);
void api_egress_get(struct req *r);
void api_egress_patch(struct req *r);
void api_egress_delete(struct req *r);
void api_egress_pool_create(struct req *r);
void api_egress_pool_list(struct req *r);
void api_egress_pool_get(struct req *r);
void api_egress_pool_patch(struct req *r);
void api_egress_pool_delete(struct req *r);
/*
 * The tenant's "egress_pool" field of a create or PATCH body: a pool's
 * name that exists, copied into out (*present: it was there); false after
 * replying 422.
 */
bool api_tenant_pool_field(struct req *r, char out[SHAPING_NAME_MAX + 1], bool *present);

/* ---- handlers: api_events.c, api_webhooks.c ---- */
void api_event_list(struct req *r);
void api_campaign_messages(struct req *r);
json_t *event_json(const struct event *e);
json_t *webhook_json(const struct webhook *w);
void api_webhook_create(struct req *r);
void api_webhook_list(struct req *r);
void api_webhook_get(struct req *r);
void api_webhook_patch(struct req *r);
void api_webhook_delete(struct req *r);
void api_webhook_rotate(struct req *r);
void api_webhook_test(struct req *r);
void api_webhook_deliveries(struct req *r);
void api_webhook_delivery_retry(struct req *r);
void api_webhook_replay(struct req *r);

/* Tenant and key as API JSON (shared with the CLI). */
json_t *tenant_json(const struct tenant *t);
json_t *api_key_json(const struct api_key *k);

#endif
