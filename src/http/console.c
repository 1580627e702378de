/*
 * console.c - serves the embedded web console: GET / (index.html, never
 * cached) and GET /assets/HASH/... (immutable: HASH changes with any file).
 *
 * Every console response carries a strict Content-Security-Policy: scripts
 * and styles only from this origin (no inline ones), API calls only to this
 * origin, no framing of the console.  The console itself holds no secret and
 * has no privilege: it calls the public API with the key the user typed.
 * This file does not touch the API, keys or the store.
 */
#include <string.h>

#include "console.h"
#include "http.h"

/* clang-format off */
static const char *const security_headers[] = {
    "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    /* nosniff, DENY and no-referrer come with every response (server.c). */
    NULL,
};

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js",   "text/javascript; charset=utf-8"},
    {".css",  "text/css; charset=utf-8"},
    {".svg",  "image/svg+xml"},
    {".png",  "image/png"},
    {".txt",  "text/plain; charset=utf-8"},
};
/* clang-format on */

static const char *
type_of(const char *path)
{
    size_t n = strlen(path);

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcmp(path + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

static void
serve(struct req *r, const struct console_file *f, const char *cache)
{
    r->status = 200;
    r->resp_static = f->data;
    r->resp_static_len = f->len;
    r->resp_type = type_of(f->path);
    r->resp_cache = cache;
    r->resp_headers = security_headers;
    r->answered = true;
}

void
console_index(struct req *r)
{
    serve(r, &console_files[0], "no-store");
}

void
console_asset(struct req *r)
{
    /* The capture is "HASH/name"; the prefix is "/assets/HASH/". */
    const char *p = req_param(r, "asset");
    const char *hash = console_asset_prefix + strlen("/assets/");
    size_t hlen = strlen(hash);

    if (p != NULL && strncmp(p, hash, hlen) == 0) {
        for (int i = 1; i < console_nfiles; i++)
            if (strcmp(p + hlen, console_files[i].path) == 0) {
                serve(r, &console_files[i], "public, max-age=31536000, immutable");
                return;
            }
    }
    reply_error(r, MC_ERR_NO_ROUTE, "no console asset %s", r->raw_path);
}
