/*
 * router.c - the route table and path matching.
 *
 * Adding an endpoint is adding a line here and writing its handler.  A
 * pattern is a literal path whose "{name}" segments capture one segment
 * each.  Matching is a linear scan: the table is small, and the scan is
 * cheaper than the JSON the request carries.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define T "/api/v1/tenants/{tenant_id}"
#define L T "/recipient-lists"
#define U T "/unsubscribes"

/* clang-format off */
const struct route routes[] = {
    {"GET",    "/healthz",                      api_healthz,         R_AUTH_NONE},
    {"GET",    "/readyz",                       api_readyz,          R_AUTH_NONE},
    {"GET",    "/metrics",                      api_metrics,         R_AUTH_NONE},

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

    {"GET",    U,                               api_unsub_list,      R_AUTH_READ},
    {"POST",   U,                               api_unsub_create,    R_AUTH_WRITE | R_BODY},
    {"POST",   U "/import",                     api_unsub_import,    R_AUTH_WRITE | R_STREAM},
    {"DELETE", U "/{email}",                    api_unsub_delete,    R_AUTH_WRITE},
};
/* clang-format on */

const int nroutes = (int)(sizeof(routes) / sizeof(routes[0]));

/* Matches path against pattern; on success fills params (owned by the caller). */
static bool
match(const char *pattern, const char *path, char **params, int *nparams)
{
    const char *p = pattern, *s = path;
    int n = 0;

    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            size_t len = strcspn(s, "/");
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
router_match(const char *method, const char *path, char **params, int *nparams, char **allow)
{
    struct buf methods;
    int found = -1;

    buf_init(&methods, 0);
    for (int i = 0; i < nroutes; i++) {
        char *tmp[REQ_MAX_PARAMS];
        int ntmp = 0;

        if (!match(routes[i].pattern, path, tmp, &ntmp))
            continue;
        /* HEAD is GET without the body, which libmicrohttpd drops. */
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            for (int j = 0; j < ntmp; j++)
                params[j] = tmp[j];
            *nparams = ntmp;
            found = i;
            break;
        }
        for (int j = 0; j < ntmp; j++)
            free(tmp[j]);
        if (methods.len)
            buf_puts(&methods, ", ");
        buf_puts(&methods, routes[i].method);
        found = -2;
    }
    if (found == -2)
        *allow = buf_steal(&methods);
    buf_cleanup(&methods);
    return found;
}
