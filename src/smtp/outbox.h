/*
 * outbox.h - the dir: relay: every message becomes one .eml file in a
 * directory, written atomically (a temporary file, fsync, rename, fsync of
 * the directory), so a reader never sees half a message and a crash never
 * leaves one.
 */
#ifndef MC_OUTBOX_H
#define MC_OUTBOX_H

#include <stddef.h>

#include "core/err.h"

/* Creates dir (and its parents) when missing.  MC_ERR_IO when it cannot be used. */
mc_err outbox_open(const char *dir);
/* Writes data as DIR/name.eml (name: letters, digits, '-', '.'). */
mc_err outbox_write(const char *dir, const char *name, const char *data, size_t len);

#endif
