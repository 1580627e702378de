/*
 * fuzz_path.c - libFuzzer target for the request path decoder: the router
 * matching a raw (still escaped) path and decoding its captures.
 *
 * The first byte picks the method.  Invariants: the result is a route
 * index, -1, -2 (with an Allow list) or ROUTER_BAD_PATH; a matched route
 * has one non-empty capture per "{...}" of its pattern; and escaping the
 * decoded captures again and putting them back into the pattern matches the
 * same route with the same captures (what the router decodes, a client can
 * always address).
 */
#include <string.h>

#include "fuzz.h"
#include "http/http.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};

/* Appends s with every byte but the unreserved ones (RFC 3986) as %XX. */
static void
escape(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c) != NULL) {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

/* The path that pattern gives with params in place of its captures (owned). */
static char *
rebuild(const char *pattern, char **params)
{
    struct buf b;
    int i = 0;

    buf_init(&b, 0);
    while (*pattern) {
        if (*pattern == '{') {
            escape(&b, params[i++]);
            pattern = strchr(pattern, '}') + 1;
        } else {
            buf_putc(&b, *pattern++);
        }
    }
    buf_putc(&b, '\0');
    return buf_steal(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *params[REQ_MAX_PARAMS], *params2[REQ_MAX_PARAMS], *allow = NULL, *path, *again;
    const char *method;
    int n = 0, n2 = 0, rc, rc2;

    if (size < 1 || size > 4096)
        return 0;
    method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    path = xstrndup((const char *)data + 1, size - 1);
    rc = router_match(method, path, params, &n, &allow);
    CHECK(rc >= ROUTER_BAD_PATH && rc < nroutes);
    if (rc == -2) {
        CHECK(allow != NULL && allow[0] != '\0');
        free(allow);
    }
    if (rc >= 0) {
        CHECK(n == router_captures(routes[rc].pattern));
        for (int i = 0; i < n; i++)
            CHECK(params[i][0] != '\0');
        again = rebuild(routes[rc].pattern, params);
        rc2 = router_match(method, again, params2, &n2, &allow);
        CHECK(rc2 == rc && n2 == n);
        for (int i = 0; i < n; i++) {
            CHECK(strcmp(params[i], params2[i]) == 0);
            free(params2[i]);
        }
        free(again);
        for (int i = 0; i < n; i++)
            free(params[i]);
    }
    free(path);
    return 0;
}
