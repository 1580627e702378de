/*
 * router.c - the route table and path matching.
 *
 * Adding an endpoint is adding a line here and writing its handler.  A
 * pattern is a literal path whose "{name}" segments capture one segment
 * each.  Matching is a linear scan: the table is small, and the scan is
 * cheaper than the JSON the request carries.
 *
 * Routing is on the raw path, as the client sent it: "%2F" never splits a
 * segment and an escaped literal never matches one ("/tenants/X%2Fcampaigns"
 * is one odd tenant id, not the campaign list).  Only the captures are
 * decoded, after the match; "%00" and malformed escapes are refused.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define T "/api/v1/tenants/{tenant_id}"
#define L T "/recipient-lists"
#define U T "/unsubscribes"
#define C T "/campaigns"
#define W T "/webhooks"

/* clang-format off */
const struct route routes[] = {
    {"GET",    "/healthz",                      api_healthz,         R_AUTH_NONE},
    {"GET",    "/readyz",                       api_readyz,          R_AUTH_NONE},
    {"GET",    "/metrics",                      api_metrics,         R_AUTH_OPERATOR},
    {"GET",    "/u/{token}",                    api_unsubscribe_page, R_AUTH_NONE},
    {"POST",   "/u/{token}",                    api_unsubscribe_post, R_AUTH_NONE | R_BODY_RAW},

    /* The web console (console.c) and who the caller's key is. */
    {"GET",    "/",                             console_index,       R_AUTH_NONE},
    {"GET",    "/assets/{asset*}",              console_asset,       R_AUTH_NONE},
    {"GET",    "/api/v1/whoami",                api_whoami,          R_AUTH_READ | R_AUTH_SELF},
    {"GET",    C "/{campaign_id}/timeline",     api_campaign_timeline, R_AUTH_READ},

    {"POST",   "/api/v1/tenants",               api_tenant_create,   R_AUTH_OPERATOR | R_BODY},
    {"GET",    "/api/v1/tenants",               api_tenant_list,     R_AUTH_OPERATOR},
    {"GET",    T,                               api_tenant_get,      R_AUTH_OPERATOR},
    {"PATCH",  T,                               api_tenant_patch,    R_AUTH_OPERATOR | R_BODY},
    {"DELETE", T,                               api_tenant_delete,   R_AUTH_OPERATOR},
    {"POST",   T "/api-keys",                   api_key_create,      R_AUTH_OPERATOR | R_BODY_OPTIONAL},
    {"GET",    T "/api-keys",                   api_key_list,        R_AUTH_OPERATOR},
    {"DELETE", T "/api-keys/{key_id}",          api_key_revoke,      R_AUTH_OPERATOR},
    {"GET",    T "/rate-limits",                api_rate_limits_get, R_AUTH_READ},
    {"PUT",    T "/rate-limits",                api_rate_limits_put, R_AUTH_OPERATOR | R_BODY},

    {"GET",    L,                               api_list_list,       R_AUTH_READ},
    {"POST",   L,                               api_list_create,     R_AUTH_WRITE | R_BODY},
    {"GET",    L "/{list_id}",                  api_list_get,        R_AUTH_READ},
    {"PUT",    L "/{list_id}",                  api_list_update,     R_AUTH_WRITE | R_BODY},
    {"DELETE", L "/{list_id}",                  api_list_delete,     R_AUTH_WRITE},
    {"GET",    L "/{list_id}/recipients",       api_recipient_list,  R_AUTH_READ},
    {"POST",   L "/{list_id}/recipients",       api_recipient_create, R_AUTH_WRITE | R_BODY},
    {"POST",   L "/{list_id}/recipients/import", api_recipient_import, R_AUTH_WRITE | R_STREAM},
    {"GET",    L "/{list_id}/recipients/export", api_recipient_export, R_AUTH_READ},
    {"GET",    L "/{list_id}/recipients/{recipient_id}", api_recipient_get, R_AUTH_READ},
    {"PUT",    L "/{list_id}/recipients/{recipient_id}", api_recipient_update, R_AUTH_WRITE | R_BODY},
    {"DELETE", L "/{list_id}/recipients/{recipient_id}", api_recipient_delete, R_AUTH_WRITE},

    {"GET",    C,                               api_campaign_list,   R_AUTH_READ},
    {"POST",   C,                               api_campaign_create, R_AUTH_WRITE | R_BODY},
    {"GET",    C "/{campaign_id}",              api_campaign_get,    R_AUTH_READ},
    {"PUT",    C "/{campaign_id}",              api_campaign_update, R_AUTH_WRITE | R_BODY},
    {"DELETE", C "/{campaign_id}",              api_campaign_delete, R_AUTH_WRITE},
    {"POST",   C "/{campaign_id}/schedule",     api_campaign_schedule, R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"POST",   C "/{campaign_id}/send",         api_campaign_send,   R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"POST",   C "/{campaign_id}/pause",        api_campaign_pause,  R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"POST",   C "/{campaign_id}/resume",       api_campaign_resume, R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"POST",   C "/{campaign_id}/cancel",       api_campaign_cancel, R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"GET",    C "/{campaign_id}/stats",        api_campaign_stats,  R_AUTH_READ},
    {"POST",   C "/{campaign_id}/preview",      api_campaign_preview, R_AUTH_READ | R_BODY},
    {"POST",   C "/{campaign_id}/test",         api_campaign_test,   R_AUTH_WRITE | R_BODY},

    {"GET",    T "/dkim-keys",                  api_dkim_list,       R_AUTH_READ},
    {"POST",   T "/dkim-keys",                  api_dkim_create,     R_AUTH_WRITE | R_BODY},
    {"DELETE", T "/dkim-keys/{key_id}",         api_dkim_delete,     R_AUTH_WRITE},

    {"GET",    U,                               api_unsub_list,      R_AUTH_READ},
    {"POST",   U,                               api_unsub_create,    R_AUTH_WRITE | R_BODY},
    {"POST",   U "/import",                     api_unsub_import,    R_AUTH_WRITE | R_STREAM},
    {"DELETE", U "/{email*}",                   api_unsub_delete,    R_AUTH_WRITE},
    /* PATCH: the partial updates above, by their REST name (PUT stays, the seed's). */
    {"PATCH",  T "/rate-limits",                api_rate_limits_put, R_AUTH_OPERATOR | R_BODY},
    {"PATCH",  L "/{list_id}",                  api_list_update,     R_AUTH_WRITE | R_BODY},
    {"PATCH",  L "/{list_id}/recipients/{recipient_id}", api_recipient_update, R_AUTH_WRITE | R_BODY},
    {"PATCH",  C "/{campaign_id}",              api_campaign_update, R_AUTH_WRITE | R_BODY},

    {"GET",    T "/bounces",                    api_bounce_list,     R_AUTH_READ},
    {"POST",   T "/bounces",                    api_bounce_create,   R_AUTH_WRITE | R_BODY},
    {"GET",    T "/bounces/{bounce_id}",        api_bounce_get,      R_AUTH_READ},
    {"GET",    T "/bounce-policy",              api_bounce_policy_get, R_AUTH_READ},
    {"PUT",    T "/bounce-policy",              api_bounce_policy_put, R_AUTH_WRITE | R_BODY},
    {"GET",    "/api/v1/bounces/unmatched",     api_bounce_unmatched_list, R_AUTH_OPERATOR},
    {"GET",    "/api/v1/bounces/unmatched/{bounce_id}", api_bounce_unmatched_get, R_AUTH_OPERATOR},
    /* Pacing and shaping (issue 15) */
    {"GET",    "/api/v1/shaping",               api_shaping_get,     R_AUTH_OPERATOR},
    {"PUT",    "/api/v1/shaping",               api_shaping_put,     R_AUTH_OPERATOR | R_BODY},
    {"GET",    "/api/v1/shaping/state",         api_shaping_state_list, R_AUTH_OPERATOR},
    {"DELETE", "/api/v1/shaping/state/{state_id}", api_shaping_state_lift, R_AUTH_OPERATOR},
    /* Egresses and egress pools (issue 15) */
    {"GET",    "/api/v1/egresses",              api_egress_list,     R_AUTH_OPERATOR},
    {"POST",   "/api/v1/egresses",              api_egress_create,   R_AUTH_OPERATOR | R_BODY},
    {"GET",    "/api/v1/egresses/{egress}",     api_egress_get,      R_AUTH_OPERATOR},
    {"PATCH",  "/api/v1/egresses/{egress}",     api_egress_patch,    R_AUTH_OPERATOR | R_BODY},
    {"DELETE", "/api/v1/egresses/{egress}",     api_egress_delete,   R_AUTH_OPERATOR},
    {"GET",    "/api/v1/egress-pools",          api_egress_pool_list, R_AUTH_OPERATOR},
    {"POST",   "/api/v1/egress-pools",          api_egress_pool_create, R_AUTH_OPERATOR | R_BODY},
    {"GET",    "/api/v1/egress-pools/{pool}",   api_egress_pool_get, R_AUTH_OPERATOR},
    {"PATCH",  "/api/v1/egress-pools/{pool}",   api_egress_pool_patch, R_AUTH_OPERATOR | R_BODY},
    {"DELETE", "/api/v1/egress-pools/{pool}",   api_egress_pool_delete, R_AUTH_OPERATOR},
    {"GET",    T "/events",                     api_event_list,      R_AUTH_READ},
    {"GET",    C "/{campaign_id}/messages",     api_campaign_messages, R_AUTH_READ},
    {"GET",    W,                               api_webhook_list,    R_AUTH_READ},
    {"POST",   W,                               api_webhook_create,  R_AUTH_WRITE | R_BODY},
    {"GET",    W "/{webhook_id}",               api_webhook_get,     R_AUTH_READ},
    {"PATCH",  W "/{webhook_id}",               api_webhook_patch,   R_AUTH_WRITE | R_BODY},
    {"DELETE", W "/{webhook_id}",               api_webhook_delete,  R_AUTH_WRITE},
    {"POST",   W "/{webhook_id}/rotate-secret", api_webhook_rotate,  R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"POST",   W "/{webhook_id}/test",          api_webhook_test,    R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"GET",    W "/{webhook_id}/deliveries",    api_webhook_deliveries, R_AUTH_READ},
    {"POST",   W "/{webhook_id}/deliveries/{delivery_id}/retry", api_webhook_delivery_retry, R_AUTH_WRITE | R_BODY_OPTIONAL},
    {"POST",   W "/{webhook_id}/replay",        api_webhook_replay,  R_AUTH_WRITE | R_BODY},
};
/* clang-format on */

const int nroutes = (int)(sizeof(routes) / sizeof(routes[0]));

/*
 * Matches path against pattern; on success fills params (owned by the
 * caller).  "{name}" takes one segment; "{name*}", last in a pattern, takes
 * the rest of the path, slashes included (an address may hold a "/").
 */
static bool
match(const char *pattern, const char *path, char **params, int *nparams)
{
    const char *p = pattern, *s = path;
    int n = 0;

    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            bool rest = pe && pe[-1] == '*';
            size_t len = rest ? strlen(s) : strcspn(s, "/");
            if (pe == NULL || len == 0 || n == REQ_MAX_PARAMS)
                goto fail;
            params[n++] = xstrndup(s, len);
            p = pe + 1;
            s += len;
            continue;
        }
        if (*p != *s)
            goto fail;
        p++;
        s++;
    }
    if (*p != '\0' || *s != '\0')
        goto fail;
    *nparams = n;
    return true;
fail:
    while (n > 0)
        free(params[--n]);
    return false;
}

int
router_captures(const char *pattern)
{
    int n = 0;

    for (; *pattern; pattern++)
        n += *pattern == '{';
    return n;
}

static bool
method_ok(const struct route *rt, const char *method)
{
    /* HEAD is GET without the body, which libmicrohttpd drops. */
    return strcmp(rt->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool
router_segment_decode(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (*s == '%') {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return false;
            *o++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return true;
}

int
router_match(const char *method, const char *path, char **params, int *nparams, char **allow)
{
    int best = -1, fewest = 1000;
    struct buf methods;

    /*
     * The most literal patterns win: ".../recipients/export" is that route,
     * never a recipient called "export", whatever the method.
     */
    for (int i = 0; i < nroutes; i++) {
        char *tmp[REQ_MAX_PARAMS];
        int ntmp = 0, np = router_captures(routes[i].pattern);

        if (np > fewest || !match(routes[i].pattern, path, tmp, &ntmp))
            continue;
        for (int j = 0; j < ntmp; j++)
            free(tmp[j]);
        if (np < fewest) {
            fewest = np;
            best = -1;
        }
        if (best < 0 && method_ok(&routes[i], method))
            best = i;
    }
    if (fewest == 1000)
        return -1;
    if (best >= 0) {
        match(routes[best].pattern, path, params, nparams);
        for (int i = 0; i < *nparams; i++) {
            if (!router_segment_decode(params[i])) {
                while (*nparams > 0)
                    free(params[--*nparams]);
                return ROUTER_BAD_PATH;
            }
        }
        return best;
    }
    buf_init(&methods, 0);
    for (int i = 0; i < nroutes; i++) {
        char *tmp[REQ_MAX_PARAMS];
        int ntmp = 0;

        if (router_captures(routes[i].pattern) != fewest || !match(routes[i].pattern, path, tmp, &ntmp))
            continue;
        for (int j = 0; j < ntmp; j++)
            free(tmp[j]);
        if (methods.data && strstr(methods.data, routes[i].method))
            continue;
        if (methods.len)
            buf_puts(&methods, ", ");
        buf_puts(&methods, routes[i].method);
    }
    *allow = buf_steal(&methods);
    return -2;
}
