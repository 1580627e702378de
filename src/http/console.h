/*
 * console.h - the web console's files, embedded in the binary at build time
 * by scripts/embed_console.sh (build/gen/console_gen.c).
 *
 * The console is a static single-page application that talks only to the
 * public API under /api/v1; the server's part is serving these bytes.
 */
#ifndef MC_HTTP_CONSOLE_H
#define MC_HTTP_CONSOLE_H

#include <stddef.h>

struct console_file {
    const char *path;          /* "index.html", or an asset's path under the prefix */
    const unsigned char *data; /* static */
    size_t len;
};

/* "/assets/HASH/": HASH is the digest of every asset, so names are immutable. */
extern const char console_asset_prefix[];
extern const struct console_file console_files[];
extern const int console_nfiles;

#endif
