/*
 * err.h - the one error type of mailcast.
 *
 * Every fallible function returns mc_err.  Library codes (errno, SQLite,
 * libpq, OpenSSL) are converted where they happen, after logging their
 * context there, once.  The HTTP layer maps an mc_err to a status and an
 * API error code with the functions below.
 */
#ifndef MC_ERR_H
#define MC_ERR_H

typedef enum {
#define XX(name, num, http, code, msg) MC_ERR_##name = num,
#include "err.def"
#undef XX
} mc_err;

/* Default human message for e; never NULL. */
const char *mc_err_str(mc_err e);
/* Stable API code ("not_found", ...) for e; never NULL. */
const char *mc_err_code(mc_err e);
/* HTTP status for e. */
int mc_err_http(mc_err e);
/* Symbolic name ("NOT_FOUND") for e; never NULL. */
const char *mc_err_name(mc_err e);

#endif
