/*
 * store.h - the only API the rest of mailcast uses to reach the database.
 *
 * One frontend (store.c and the store_<entity>.c files) and one backend per
 * database (store_sqlite.c, store_pg.c), chosen by URL: "sqlite:PATH" or
 * "postgres://...".  The frontend owns a pool of backend connections, so
 * every function here may be called from any thread.
 *
 * Conventions:
 *  - Every function that touches tenant data takes the tenant id and every
 *    statement filters on it; an object of another tenant is MC_ERR_NOT_FOUND.
 *  - Ids are canonical lowercase UUID strings; a malformed id is NOT_FOUND.
 *  - Times are int64 microseconds since the epoch (UTC); 0 means "none".
 *  - Structs returned through out-parameters own their strings; release them
 *    with the matching *_cleanup().  Nothing points into driver memory.
 *  - Errors: MC_ERR_NOT_FOUND, MC_ERR_CONFLICT (a uniqueness rule),
 *    MC_ERR_DB (logged where it happened), MC_ERR_BUSY.
 */
#ifndef MC_STORE_H
#define MC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/crypto.h"
#include "core/err.h"

struct store;

struct store_params {
    int pool_size;       /* connections kept open */
    int busy_timeout_ms; /* SQLite only */
};

/* Opens the database at url (does not migrate).  Caller owns *out. */
mc_err store_open(const char *url, const struct store_params *params, struct store **out);
/* Closes every connection; store_close(NULL) is a no-op. */
void store_close(struct store *st);
/* "sqlite" or "postgres". */
const char *store_backend(const struct store *st);

/*
 * Applies every migration newer than the database's version, in one
 * transaction, serialised against concurrent migrators.  *applied_out (may
 * be NULL) receives how many were applied.  MC_ERR_SCHEMA_NEWER when the
 * database was migrated by a newer mailcast.
 */
mc_err store_migrate(struct store *st, int *applied_out);
/* Database version and the newest version this binary knows. */
mc_err store_schema_version(struct store *st, int *db_version, int *binary_version);
/* Round trip to the database (readiness). */
mc_err store_ping(struct store *st);

/* ---- server settings: small named values (operator key hash, secrets) ---- */

/* *out is owned by the caller; MC_ERR_NOT_FOUND when unset. */
mc_err store_setting_get(struct store *st, const char *name, char **out);
/*
 * Sets name to value only when it is unset; MC_ERR_CONFLICT when it was
 * already set (so two processes starting at once agree on one value).
 */
mc_err store_setting_init(struct store *st, const char *name, const char *value);

/* ---- paging ---- */

struct page {
    int64_t limit;
    int64_t offset;
};

/* ---- tenants ---- */

enum tenant_status { TENANT_ACTIVE, TENANT_SUSPENDED, TENANT_DELETED };

struct tenant {
    char id[MC_UUID_LEN + 1];
    char *name;     /* owned */
    char *slug;     /* owned */
    char *plan;     /* owned */
    char *settings; /* owned, JSON object text */
    enum tenant_status status;
    int64_t created_at;
    int64_t updated_at;
};

struct tenant_list {
    struct tenant *items; /* owned, n of them */
    int n;
    int64_t total;
};

/* Fields of a tenant update; a NULL pointer or has_status false leaves it unchanged. */
struct tenant_patch {
    const char *name;
    const char *plan;
    const char *settings;
    bool has_status;
    enum tenant_status status;
};

const char *tenant_status_str(enum tenant_status s);
/* Returns -1 when s is not a tenant status. */
int tenant_status_parse(const char *s);

/* Inserts t (name, slug, plan, settings, status set by caller); fills id and times. */
mc_err store_tenant_create(struct store *st, struct tenant *t);
/* Deleted tenants are NOT_FOUND. */
mc_err store_tenant_get(struct store *st, const char *id, struct tenant *out);
/* Newest first; status filter optional (-1 = every status but deleted). */
mc_err store_tenant_list(struct store *st, int status, const struct page *pg,
                         struct tenant_list *out);
mc_err store_tenant_update(struct store *st, const char *id, const struct tenant_patch *p,
                           struct tenant *out);
/* Soft delete: status becomes deleted, its keys stop working. */
mc_err store_tenant_delete(struct store *st, const char *id);
void tenant_cleanup(struct tenant *t);
void tenant_list_cleanup(struct tenant_list *l);

/* ---- API keys ---- */

#define KEY_SCOPE_READ 1u
#define KEY_SCOPE_WRITE 2u

struct api_key {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char *name;       /* owned */
    char *key_prefix; /* owned: the visible start of the key */
    char *key_hash;   /* owned: hex SHA-256 of the whole key */
    unsigned scopes;  /* KEY_SCOPE_* */
    int64_t expires_at;
    int64_t last_used_at;
    int64_t revoked_at;
    int64_t created_at;
    enum tenant_status tenant_status; /* filled by store_key_find only */
};

struct api_key_list {
    struct api_key *items; /* owned */
    int n;
    int64_t total;
};

/* Inserts k (tenant_id, name, key_prefix, key_hash, scopes, expires_at); fills id, created_at. */
mc_err store_key_create(struct store *st, struct api_key *k);
/*
 * Finds the key with this prefix, whatever its tenant, for authentication:
 * includes revoked and expired keys (the caller decides), excludes keys of
 * deleted tenants.
 */
mc_err store_key_find(struct store *st, const char *prefix, struct api_key *out);
mc_err store_key_list(struct store *st, const char *tenant_id, const struct page *pg,
                      struct api_key_list *out);
mc_err store_key_get(struct store *st, const char *tenant_id, const char *key_id,
                     struct api_key *out);
/* Revokes the key; revoking twice is fine.  NOT_FOUND for another tenant's key. */
mc_err store_key_revoke(struct store *st, const char *tenant_id, const char *key_id);
/* Records a use; cheap enough to call per request (at most one write a minute per key). */
mc_err store_key_touch(struct store *st, const char *key_id, int64_t now);
void api_key_cleanup(struct api_key *k);
void api_key_list_cleanup(struct api_key_list *l);

/* ---- tenant rate limits ---- */

struct rate_limits {
    int64_t per_minute;
    int64_t per_hour;
    int64_t per_day;
    bool enabled;
    int64_t updated_at; /* 0 while the defaults apply */
};

#define RATE_DEFAULT_MINUTE 100
#define RATE_DEFAULT_HOUR 5000
#define RATE_DEFAULT_DAY 50000

/* The tenant's limits, or the defaults when none were set. */
mc_err store_rate_limits_get(struct store *st, const char *tenant_id, struct rate_limits *out);
mc_err store_rate_limits_put(struct store *st, const char *tenant_id,
                             const struct rate_limits *rl);

#endif
