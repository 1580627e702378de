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
#include "core/email.h"
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
 * False while the database cannot be reached (an outage store.c has logged
 * and backs off from); callers skip logging their own failures then.
 */
bool store_reachable(struct store *st);

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

/*
 * Whether the database can take a write now: for SQLite, at least
 * STORE_MIN_FREE bytes free beside the database file (SQLite grows its
 * journal and file as it writes); on both stores a probe row of 16 KiB
 * written and removed in one transaction.  MC_ERR_STORAGE_FULL when there
 * is no space, another error when the database fails otherwise.
 */
#define STORE_MIN_FREE (1024 * 1024)
mc_err store_write_check(struct store *st);

/* ---- server settings: small named values (operator key hash, secrets) ---- */

/* *out is owned by the caller; MC_ERR_NOT_FOUND when unset. */
mc_err store_setting_get(struct store *st, const char *name, char **out);
/*
 * Sets name to value only when it is unset; MC_ERR_CONFLICT when it was
 * already set (so two processes starting at once agree on one value).
 */
mc_err store_setting_init(struct store *st, const char *name, const char *value);
/*
 * Rotates a secret in one transaction: the value of `current` moves to
 * `previous` and `current` becomes value.  MC_ERR_NOT_FOUND when `current`
 * was never set.
 */
mc_err store_setting_rotate(struct store *st, const char *current, const char *previous,
                            const char *value);

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
    char egress_pool[64]; /* the egress pool its mail leaves through ("" on create: default) */
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
    const char *egress_pool; /* NULL: unchanged; the caller checked the pool exists */
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
/* Revokes the key.  NOT_FOUND for an unknown key, another tenant's, or one already revoked. */
mc_err store_key_revoke(struct store *st, const char *tenant_id, const char *key_id);
/* Records a use; cheap enough to call per request (at most one write a minute per key). */
mc_err store_key_touch(struct store *st, const char *key_id, int64_t now);
void api_key_cleanup(struct api_key *k);
void api_key_list_cleanup(struct api_key_list *l);

/* ---- tenant rate limits ---- */

struct rate_limits {
    int64_t per_second; /* 0: none */
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

/* ---- shaping (issue 15): destination sites and rules per (egress, site) ---- */

#define SHAPING_NAME_MAX 63  /* an egress's or a site's name */
#define SHAPING_DOMAIN_MAX 253

struct site_domain {
    char domain[SHAPING_DOMAIN_MAX + 1]; /* lowercase; it and its subdomains one level down */
    char site[SHAPING_NAME_MAX + 1];
};

struct shaping_rule {
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1]; /* "*": every site without a rule of its own */
    int64_t max_connections;         /* per process; 0: the egress's own limit */
    int64_t max_per_connection;      /* 0: the egress's own limit */
    int64_t per_second, per_minute;  /* paced rates, 0: none */
};

/* An automation rule (issue 15): a reply pattern, a trigger and an action. */
#define SHAPING_REGEX_MAX 255
struct shaping_auto {
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1]; /* "*": any site */
    int match_code;                  /* 0: any */
    char match_enhanced[16];         /* a prefix of the enhanced status; "": any */
    char match_regex[SHAPING_REGEX_MAX + 1]; /* POSIX ERE, case-insensitive; "": any */
    int64_t trigger_count;           /* 1 with period 0: at once */
    int64_t trigger_period_s;
    /* A deferral-ratio trigger (0: a count trigger): more than ratio_ppm per
     * million of at least min_attempts attempts at a site in the period deferred. */
    int64_t ratio_ppm, min_attempts;
    char action[16]; /* set_rate, suspend_site, suspend_tenant, set_connections, scale_rate */
    int64_t per_second, per_minute;  /* set_rate's rate */
    int64_t max_connections;         /* set_connections' cap, per process */
    int64_t factor_ppm;              /* scale_rate's factor, per million */
    int64_t duration_s;
};
#define SHAPING_RATIO_PERIOD_MAX 3600 /* a deferral ratio's longest period (s) */

struct shaping {
    struct site_domain *domains; /* owned */
    int ndomains;
    struct shaping_rule *rules; /* owned */
    int nrules;
    struct shaping_auto *autos; /* owned */
    int nautos;
};

/* A reply from the relay to one delivery attempt, for the automation rules. */
struct shaping_obs {
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1];
    char tenant_id[MC_UUID_LEN + 1];
    int code;
    char enhanced[16];
    char text[256];
};

/*
 * The relay's replies to attempts at one (egress, site) since the last
 * group commit: how many, and how many were deferrals (4xx).  Replies
 * mailcast makes up itself are in neither.
 */
struct shaping_tally {
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1];
    int64_t attempts, deferrals;
};

/* An adjustment or suspension in force (GET /api/v1/shaping/state). */
struct shaping_state {
    char id[MC_UUID_LEN + 1];
    char egress[SHAPING_NAME_MAX + 1];
    char site[SHAPING_NAME_MAX + 1];
    char tenant_id[MC_UUID_LEN + 1]; /* "": every tenant */
    char action[16];
    int64_t per_second, per_minute; /* set_rate's, or the rate scale_rate left */
    int64_t max_connections;        /* set_connections' cap */
    int64_t attempts, deferrals;    /* what a deferral-ratio trigger fired on (0: none) */
    int position; /* the automation rule's index */
    char last_reply[320];
    int64_t since, until;
};

/* The whole table (*out owned by the caller: shaping_cleanup). */
mc_err store_shaping_get(struct store *st, struct shaping *out);
/*
 * Replaces the whole table in one transaction (validated by the caller:
 * app/shaping.c).  Messages already created keep their site; new ones are
 * given sites from the new domains.
 */
mc_err store_shaping_put(struct store *st, const struct shaping *sh);
void shaping_cleanup(struct shaping *sh);
/*
 * Matches the relay's refusals (obs) against egress's automation rules
 * (store_automation.c): each match is counted, and a rule whose trigger is
 * reached puts its action in force until now + its duration (extending one
 * already in force).  The tallies (every attempt's reply per site) are
 * added up for the sites a deferral-ratio or scale_rate rule covers, and
 * the ratio rules of those sites are checked.  *fired: how many actions
 * were put in force.  An observation's egress, when set, is the one it
 * went through; egress is for those without one.
 */
mc_err store_shaping_observe(struct store *st, const char *egress,
                             const struct shaping_obs *obs, int n,
                             const struct shaping_tally *tl, int ntl, int64_t now, int *fired);
/* What is in force at now, soonest to end first (*out owned by the caller, free()). */
mc_err store_shaping_state_list(struct store *st, int64_t now, struct shaping_state **out,
                                int *n);
/* Lifts one; MC_ERR_NOT_FOUND when there is no such id in force. */
mc_err store_shaping_state_lift(struct store *st, const char *id);

/* ---- egresses and egress pools (issue 15, item 5; store_egress.c) ---- */

#define EGRESS_RELAY_MAX 512
#define EGRESS_ADDRESS_MAX 64

/* One way out.  'default' has no relay of its own (NULL: the configuration's --relay). */
struct egress {
    char name[SHAPING_NAME_MAX + 1];
    char *relay;          /* owned, NULL for 'default' */
    char *ehlo_name;      /* owned, NULL: the process's default */
    char *source_address; /* owned, NULL: the system chooses */
    int64_t max_connections; /* per process, 0: the smtp_connections option */
    int64_t created_at, updated_at;
};

struct egress_member {
    char egress[SHAPING_NAME_MAX + 1];
    int64_t weight;
};

struct egress_pool {
    char name[SHAPING_NAME_MAX + 1];
    struct egress_member *members; /* owned */
    int nmembers;
    int64_t created_at, updated_at;
};

void egress_cleanup(struct egress *e);
void egress_pool_cleanup(struct egress_pool *p);

/* Inserts e (times filled); CONFLICT when the name is taken, LIMIT at max egresses. */
mc_err store_egress_create(struct store *st, struct egress *e, int max);
mc_err store_egress_get(struct store *st, const char *name, struct egress *out);
/* Every egress, by name (*out owned: egress_cleanup each, then free). */
mc_err store_egress_list(struct store *st, struct egress **out, int *n);
/*
 * Replaces the fields of name with e's (relay, ehlo_name, source_address,
 * max_connections), out the row as stored.  NOT_FOUND without it.
 */
mc_err store_egress_update(struct store *st, const char *name, const struct egress *e,
                           struct egress *out);
/*
 * The egress a tenant's one-off mail (test sends) leaves through: its
 * pool's heaviest member (by name on a tie).  NOT_FOUND without the tenant.
 */
mc_err store_tenant_egress(struct store *st, const char *tenant_id, struct egress *out);
/* NOT_FOUND without it; CONFLICT while a pool has it as a member. */
mc_err store_egress_delete(struct store *st, const char *name);

/*
 * Inserts p with its members (times filled); CONFLICT when the name is
 * taken, LIMIT at max pools, INVALID when a member is no egress.
 */
mc_err store_egress_pool_create(struct store *st, struct egress_pool *p, int max);
mc_err store_egress_pool_get(struct store *st, const char *name, struct egress_pool *out);
/* Every pool with its members, by name (*out owned: egress_pool_cleanup each, then free). */
mc_err store_egress_pool_list(struct store *st, struct egress_pool **out, int *n);
/* Replaces the members of pool name with p's; NOT_FOUND, INVALID as create. */
mc_err store_egress_pool_update(struct store *st, const char *name, const struct egress_pool *p,
                                struct egress_pool *out);
/* NOT_FOUND without it; CONFLICT while a tenant (not deleted) is assigned it. */
mc_err store_egress_pool_delete(struct store *st, const char *name);

/* ---- recipient lists ---- */

struct recipient_list {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char *name;        /* owned */
    char *description; /* owned, may be NULL */
    char *metadata;    /* owned, JSON object text */
    int64_t recipient_count;
    int64_t active_count;
    int64_t created_at;
    int64_t updated_at;
};

struct recipient_list_vec {
    struct recipient_list *items; /* owned */
    int n;
    int64_t total;
};

/* A list update: NULL leaves a field; set_description with NULL clears it. */
struct list_patch {
    const char *name;
    bool set_description;
    const char *description;
    const char *metadata;
};

/* Inserts l (tenant_id, name, description, metadata); fills id, counts and times. */
mc_err store_list_create(struct store *st, struct recipient_list *l);
mc_err store_list_get(struct store *st, const char *tenant_id, const char *id,
                      struct recipient_list *out);
/* Newest first. */
mc_err store_list_list(struct store *st, const char *tenant_id, const struct page *pg,
                       struct recipient_list_vec *out);
mc_err store_list_update(struct store *st, const char *tenant_id, const char *id,
                         const struct list_patch *p, struct recipient_list *out);
/* MC_ERR_STATE while a scheduled, sending or paused campaign uses the list. */
mc_err store_list_delete(struct store *st, const char *tenant_id, const char *id);
/*
 * The distinct top-level attribute keys of the list's recipients, sorted,
 * at most max of them (*n_out receives how many; MC_ERR_TOO_LARGE past max).
 */
mc_err store_list_attribute_keys(struct store *st, const char *tenant_id, const char *id,
                                 int max, char ***keys_out, int *n_out);
void recipient_list_cleanup(struct recipient_list *l);
void recipient_list_vec_cleanup(struct recipient_list_vec *v);

/* ---- recipients ---- */

enum recipient_status { RCPT_ACTIVE, RCPT_UNSUBSCRIBED, RCPT_BOUNCED, RCPT_COMPLAINED };

const char *recipient_status_str(enum recipient_status s);
/* Returns -1 when s is not a recipient status. */
int recipient_status_parse(const char *s);

struct recipient {
    char id[MC_UUID_LEN + 1];
    char list_id[MC_UUID_LEN + 1];
    char *email;      /* owned: normalised (see core/email.h) */
    char *email_lc;   /* owned: lowercase twin */
    char *name;       /* owned, may be NULL */
    char *first_name; /* owned, may be NULL */
    char *last_name;  /* owned, may be NULL */
    char *attributes; /* owned, JSON object text */
    enum recipient_status status;
    int64_t subscribed_at;
    int64_t unsubscribed_at;
    int64_t created_at;
    int64_t updated_at;
};

struct recipient_vec {
    struct recipient *items; /* owned */
    int n;
    int64_t total;
};

/* A recipient update; set_* with NULL clears a nullable field. */
struct recipient_patch {
    bool set_name, set_first_name, set_last_name;
    const char *name, *first_name, *last_name;
    const char *attributes; /* NULL: unchanged; replaces the object */
    bool has_status;
    enum recipient_status status;
};

/* Filters for listing: status -1 for any; q matches an email prefix or a substring. */
struct recipient_filter {
    int status;
    const char *q;
};

/*
 * Inserts r (email, email_lc, names, attributes) into the tenant's list.
 * An address on the tenant's suppression list is stored as unsubscribed.
 * MC_ERR_CONFLICT when the list has the address; NOT_FOUND without the list.
 */
mc_err store_recipient_create(struct store *st, const char *tenant_id, const char *list_id,
                              struct recipient *r);
mc_err store_recipient_get(struct store *st, const char *tenant_id, const char *list_id,
                           const char *id, struct recipient *out);
/*
 * MC_ERR_STATE when the patch would make a suppressed address active.
 * A change to unsubscribed stamps unsubscribed_at.
 */
/* A recipient of the tenant in any of its lists (for unsubscribe links). */
mc_err store_recipient_find(struct store *st, const char *tenant_id, const char *id,
                            struct recipient *out);
mc_err store_recipient_update(struct store *st, const char *tenant_id, const char *list_id,
                              const char *id, const struct recipient_patch *p,
                              struct recipient *out);
mc_err store_recipient_delete(struct store *st, const char *tenant_id, const char *list_id,
                              const char *id);
/* Newest first, with the total for the filter. */
mc_err store_recipient_list(struct store *st, const char *tenant_id, const char *list_id,
                            const struct recipient_filter *f, const struct page *pg,
                            struct recipient_vec *out);
/*
 * Up to limit recipients with id greater than after (NULL or "" for the
 * first page), in id order: a keyset walk that streams a list of any size.
 */
mc_err store_recipient_after(struct store *st, const char *tenant_id, const char *list_id,
                             int status, const char *after, int limit, struct recipient_vec *out);
void recipient_cleanup(struct recipient *r);
void recipient_vec_cleanup(struct recipient_vec *v);

/* One row of a bulk import; all pointers borrowed. */
struct import_row {
    const char *email;
    const char *email_lc;
    const char *name, *first_name, *last_name; /* NULL: not given */
    const char *attributes;                    /* JSON object text, NULL: none */
};

enum import_mode { IMPORT_SKIP, IMPORT_UPSERT };

struct import_counts {
    int64_t imported;
    int64_t updated;
    int64_t skipped_duplicates;
    int64_t skipped_suppressed;
};

/*
 * Writes one batch in one transaction.  Rows must have distinct email_lc.
 * Suppressed addresses are skipped; existing addresses are skipped
 * (IMPORT_SKIP) or get the given names and their attributes merged, the
 * new top-level keys replacing old ones (IMPORT_UPSERT).  Adds to *acc.
 */
mc_err store_recipient_import(struct store *st, const char *tenant_id, const char *list_id,
                              enum import_mode mode, const struct import_row *rows, int n,
                              struct import_counts *acc);

/* ---- the tenant's suppression list ---- */

enum unsub_source { UNSUB_MANUAL, UNSUB_LINK, UNSUB_BOUNCE, UNSUB_COMPLAINT, UNSUB_IMPORT };

const char *unsub_source_str(enum unsub_source s);
int unsub_source_parse(const char *s);

/* Why an address is suppressed (the source says where the entry came from). */
enum unsub_cause { CAUSE_UNSUBSCRIBED, CAUSE_HARD_BOUNCE, CAUSE_SOFT_BOUNCE, CAUSE_COMPLAINT,
                   CAUSE_MANUAL };

const char *unsub_cause_str(enum unsub_cause c);
int unsub_cause_parse(const char *s);

struct unsubscribe {
    char id[MC_UUID_LEN + 1];
    char *email; /* owned */
    enum unsub_source source;
    enum unsub_cause cause;
    char campaign_id[MC_UUID_LEN + 1]; /* "" when none */
    char message_id[MC_UUID_LEN + 1];  /* the message whose bounce caused it, "" when none */
    char *reason; /* owned, may be NULL */
    int64_t unsubscribed_at;
    int64_t expires_at; /* 0: never; an expired entry no longer suppresses */
};

struct unsubscribe_vec {
    struct unsubscribe *items; /* owned */
    int n;
    int64_t total;
};

/*
 * Adds the address (normalised, with its lowercase twin) and, in the same
 * transaction, marks every active recipient with it in the tenant's lists
 * unsubscribed.  An address already there keeps its entry (*created false,
 * the reason updated when one is given).  *out (may be NULL) gets the entry.
 */
mc_err store_unsub_add(struct store *st, const char *tenant_id, const char *email,
                       const char *email_lc, enum unsub_source source, const char *campaign_id,
                       const char *reason, bool *created, struct unsubscribe *out);
mc_err store_unsub_get(struct store *st, const char *tenant_id, const char *email_lc,
                       struct unsubscribe *out);
/* source -1 for any; q matches an email prefix or substring.  Newest first. */
mc_err store_unsub_list(struct store *st, const char *tenant_id, int source, const char *q,
                        const struct page *pg, struct unsubscribe_vec *out);
/* Removes the entry; recipient rows stay as they are. */
mc_err store_unsub_delete(struct store *st, const char *tenant_id, const char *email_lc);
/* One batch of an import (distinct email_lc); adds new entries to *added, others to *dups. */
mc_err store_unsub_import(struct store *st, const char *tenant_id, const struct import_row *rows,
                          const char *const *reasons, int n, int64_t *added, int64_t *dups);
void unsubscribe_cleanup(struct unsubscribe *u);
void unsubscribe_vec_cleanup(struct unsubscribe_vec *v);

/* ---- bounces and complaints ---- */

/* A tenant's bounce policy; a tenant without one has the defaults. */
struct bounce_policy {
    int64_t soft_limit;         /* soft bounces on distinct messages before suppressing (3) */
    int64_t soft_window_days;   /* ... counted within this many days (30) */
    int64_t soft_suppress_days; /* how long a soft suppression lasts (30) */
    char *bounce_domain;        /* owned, may be NULL: the tenant's own VERP domain */
    int64_t updated_at;         /* 0 while the defaults apply */
};

#define BOUNCE_POLICY_DEFAULTS {3, 30, 30, NULL, 0}

mc_err store_bounce_policy_get(struct store *st, const char *tenant_id, struct bounce_policy *out);
/* Replaces the tenant's policy (validated by the caller); *out gets the stored one. */
mc_err store_bounce_policy_put(struct store *st, const char *tenant_id,
                               const struct bounce_policy *p, struct bounce_policy *out);
void bounce_policy_cleanup(struct bounce_policy *p);

/* One recipient of a report, as the intake hands it to the store; all borrowed. */
struct bounce_item {
    const char *email;    /* NULL: the referenced message's own recipient */
    const char *class;    /* "hard", "soft", ... (bounce_class_str) */
    const char *status, *action, *diagnostic, *remote_mta; /* may be NULL */
};

/* A whole report; all borrowed. */
struct bounce_report_in {
    const char *tenant_id;  /* NULL: whoever the message belongs to (only then may it be none) */
    const char *message_id; /* a verified reference, or NULL */
    const char *kind;       /* "dsn", "arf", "auto_reply", "other", "not_bounce", "api" */
    const char *source;     /* "smtp", "pipe", "api" */
    const char *reporting_mta, *feedback_type; /* may be NULL */
    const char *raw;        /* may be NULL: the message as text, already bounded */
    bool raw_truncated;
    const struct bounce_item *items;
    int n;
    int64_t now;
};

/* What the report changed, per item (same order). */
enum bounce_outcome {
    BOUNCE_OUT_SUPPRESSED,   /* the address is now suppressed (hard, complaint, soft limit) */
    BOUNCE_OUT_COUNTED,      /* recorded and counted; nothing suppressed (soft under the limit, block) */
    BOUNCE_OUT_RECORDED,     /* recorded only (auto-reply, other feedback, not a bounce) */
    BOUNCE_OUT_STRANGER,     /* names someone other than the message's recipient: changes nothing */
    BOUNCE_OUT_UNREFERENCED, /* no valid reference: kept for the operator only */
    BOUNCE_OUT_DUPLICATE,    /* the same report about the same message again: changes nothing */
};

const char *bounce_outcome_str(enum bounce_outcome o);

struct bounce_applied {
    char tenant_id[MC_UUID_LEN + 1];   /* "" when unreferenced */
    char campaign_id[MC_UUID_LEN + 1]; /* "" when none */
    char message_id[MC_UUID_LEN + 1];  /* "" when none */
    int n;
    struct bounce_applied_item {
        char id[MC_UUID_LEN + 1]; /* the bounce record */
        enum bounce_outcome outcome;
    } items[64];
};

/*
 * Records a report and applies the tenant's policy, all in one transaction:
 * finds the message (and through it tenant, campaign and recipient), writes
 * one bounces row per item (one row when there are none), and for an item
 * naming the message's recipient: hard -> suppressed (cause hard_bounce),
 * the recipient 'bounced', the message 'bounced'; complaint -> suppressed
 * for every list (cause complaint), the recipient 'complained'; soft and
 * undetermined -> counted, and suppressed for soft_suppress_days once
 * soft_limit soft bounces on distinct messages fall within soft_window_days
 * with no delivery since; block -> counted only.  Campaign counters follow.
 * At most 64 items.  MC_ERR_NOT_FOUND when tenant_id is given and the
 * message is not the tenant's (or, without a message, the tenant is gone).
 */
mc_err store_bounce_record(struct store *st, const struct bounce_report_in *in,
                           struct bounce_applied *out);

/*
 * Records n reports in one transaction (group commit: one commit, and on
 * SQLite one fsync, for all of them), each as store_bounce_record does;
 * outs[i] says what ins[i] changed.  All or nothing: on any error nothing
 * is written and outs are zeroed.
 */
mc_err store_bounce_record_batch(struct store *st, const struct bounce_report_in *const *ins,
                                 int n, struct bounce_applied *outs);

struct bounce_rec {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char message_id[MC_UUID_LEN + 1];   /* "" when none */
    char campaign_id[MC_UUID_LEN + 1];  /* "" when none */
    char recipient_id[MC_UUID_LEN + 1]; /* "" when none */
    char *email;                        /* owned, may be NULL */
    char *kind, *class, *status, *action, *diagnostic, *reporting_mta, *remote_mta;
    char *feedback_type, *source, *outcome; /* owned, may be NULL */
    char *raw;                          /* owned, only from store_bounce_get */
    bool raw_truncated;
    int64_t received_at;
};

struct bounce_rec_vec {
    struct bounce_rec *items; /* owned */
    int n;
    int64_t total;
};

struct bounce_filter {
    const char *campaign_id; /* NULL: any */
    const char *class;       /* NULL: any */
    const char *email_lc;    /* NULL: any */
    int64_t since;           /* 0: any */
};

/* Newest first, without the raw message. */
mc_err store_bounce_list(struct store *st, const char *tenant_id, const struct bounce_filter *f,
                         const struct page *pg, struct bounce_rec_vec *out);
/* One record with its raw message. */
mc_err store_bounce_get(struct store *st, const char *tenant_id, const char *id,
                        struct bounce_rec *out);
/*
 * The reports that named no message by a valid reference (no tenant: kept
 * for the operator only, pruned like the others), newest first, received at
 * or after since (0 for any); and one of them with its raw message
 * (MC_ERR_NOT_FOUND for a malformed, unknown or a tenant's record's id).
 */
mc_err store_bounce_unmatched_list(struct store *st, int64_t since, const struct page *pg,
                                   struct bounce_rec_vec *out);
mc_err store_bounce_unmatched_get(struct store *st, const char *id, struct bounce_rec *out);
/*
 * The bounce domain of the tenant whose message this is (*out owned, NULL
 * when the tenant has none); MC_ERR_NOT_FOUND without the message.
 */
mc_err store_bounce_domain_of(struct store *st, const char *message_id, char **out);
/* Deletes records received before the given time; *n (may be NULL) gets how many. */
mc_err store_bounce_prune(struct store *st, int64_t before, int64_t *n);
void bounce_rec_cleanup(struct bounce_rec *b);
void bounce_rec_vec_cleanup(struct bounce_rec_vec *v);

/* ---- campaigns ---- */

enum campaign_status {
    CAMP_DRAFT,
    CAMP_SCHEDULED,
    CAMP_SENDING,
    CAMP_PAUSED,
    CAMP_COMPLETED,
    CAMP_CANCELLED,
    CAMP_FAILED,
};

const char *campaign_status_str(enum campaign_status s);
int campaign_status_parse(const char *s);

/* Per-status message counts, kept by triggers (O(1) to read). */
struct campaign_counts {
    int64_t pending, sending, sent, delivered, bounced, failed, cancelled, suppressed;
    int64_t opened, clicked;
    int64_t bounced_hard, bounced_soft, complained, blocked; /* from bounce reports */
};

struct campaign {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char list_id[MC_UUID_LEN + 1]; /* "" when none */
    char *name, *description, *subject;
    char *from_address, *from_name, *reply_to;
    char *html_body, *text_body;
    char *tags;     /* JSON array text */
    char *metadata; /* JSON object text */
    int64_t scheduled_at;
    int64_t rate_limit_per_minute; /* 0: none of the campaign's own */
    int64_t rate_limit_per_hour;
    enum campaign_status status;
    int64_t total_recipients;
    struct campaign_counts counts;
    int64_t created_at, updated_at, started_at, completed_at, materialized_at;
};

struct campaign_vec {
    struct campaign *items; /* owned */
    int n;
    int64_t total;
};

/* Lifecycle events; each is one conditional update (see store_campaign_transition). */
enum campaign_event {
    CEV_SCHEDULE, /* draft -> scheduled, at `when` */
    CEV_SEND,     /* draft|scheduled -> sending, now */
    CEV_PAUSE,    /* sending -> paused */
    CEV_RESUME,   /* paused -> sending */
    CEV_CANCEL,   /* scheduled|sending|paused -> cancelled; pending messages cancelled */
    CEV_START,    /* scheduled -> sending, when scheduled_at has come */
};

void campaign_cleanup(struct campaign *c);
void campaign_vec_cleanup(struct campaign_vec *v);

/* Inserts c as a draft; fills id and times.  NOT_FOUND when its list is not the tenant's. */
mc_err store_campaign_create(struct store *st, struct campaign *c);
mc_err store_campaign_get(struct store *st, const char *tenant_id, const char *id,
                          struct campaign *out);
/* Newest first; status -1 for any. */
mc_err store_campaign_list(struct store *st, const char *tenant_id, int status,
                           const struct page *pg, struct campaign_vec *out);
/*
 * Writes every editable field of c, only while it is a draft: MC_ERR_STATE
 * (and *cur) otherwise.  NOT_FOUND when the list is not the tenant's.
 */
mc_err store_campaign_update(struct store *st, const struct campaign *c,
                             enum campaign_status *cur);
/* Deletes a draft, completed, cancelled or failed campaign; MC_ERR_STATE (and *cur) otherwise. */
mc_err store_campaign_delete(struct store *st, const char *tenant_id, const char *id,
                             enum campaign_status *cur);
/*
 * Applies ev as one conditional update; logs old -> new.  MC_ERR_STATE with
 * *cur when the campaign's status does not allow it, NOT_FOUND without the
 * campaign.  `when` is the schedule time for CEV_SCHEDULE and "now" for the
 * others.  *out (may be NULL) gets the campaign after the change.
 */
mc_err store_campaign_transition(struct store *st, const char *tenant_id, const char *id,
                                 enum campaign_event ev, int64_t when, struct campaign *out,
                                 enum campaign_status *cur);
/* Messages of the campaign sent since `since` (index-backed, O(rate)). */
mc_err store_campaign_sent_since(struct store *st, const char *tenant_id, const char *id,
                                 int64_t since, int64_t *out);
/*
 * Messages of the campaign sent per bucket: counts[i] (n of them, zeroed
 * by the caller) gets those with start + i*width <= sent_at < start +
 * (i+1)*width; messages past the last bucket count in it.  One range scan
 * of the (campaign, sent_at) index, O(messages sent); the caller bounds n.
 */
mc_err store_campaign_timeline(struct store *st, const char *tenant_id, const char *id,
                               int64_t start, int64_t width, int n, int64_t *counts);

/* ---- the campaign engine ---- */

/* A campaign the engine has work for. */
struct campaign_ref {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
};

/* Moves every scheduled campaign whose time has come to sending; *n started. */
mc_err store_engine_start_due(struct store *st, int64_t now, int *n);
/* Up to max campaigns still being materialised (scheduled, sending or paused). */
mc_err store_engine_to_materialize(struct store *st, int max, struct campaign_ref *out, int *n);
/*
 * Creates the next batch (at most `batch`) of the campaign's messages: one
 * per active, unsuppressed recipient of its list, in recipient id order, in
 * one transaction that also advances the cursor.  Idempotent: UNIQUE
 * (campaign_id, recipient_id) drops a repeat.  *done is true once every
 * recipient is covered (then materialized_at is set).
 */
mc_err store_engine_materialize(struct store *st, const struct campaign_ref *c, int batch,
                                int max_attempts, int64_t now, int64_t *inserted, bool *done);
/* Completes sending campaigns with nothing pending or in flight; *n completed. */
mc_err store_engine_complete(struct store *st, int64_t now, int *n);

/* ---- delivery ---- */

/* A sending campaign of an active tenant that has pending messages. */
struct delivery_work {
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
};

/* A claimed message with what rendering it needs. */
struct delivery_msg {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char *to_address;              /* owned */
    char *name, *first_name, *last_name; /* owned, may be NULL */
    char *attributes;              /* owned, JSON object text */
    int attempts;                  /* this attempt's number (the fence) */
    int max_attempts;
    char site[64];                 /* the destination site ("" for messages older than sites) */
    char egress[SHAPING_NAME_MAX + 1]; /* the egress the claim chose from the tenant's pool */
    int64_t not_before;            /* its paced slot (Unix microseconds), 0: at once */
    int64_t claimed_at;            /* the claim's time, when the windows counted it */
    /* the intervals of the scopes that paced it (0: not paced by that one) */
    int64_t pace_tenant_us, pace_campaign_us, pace_site_us;
};

/* How claims pace (issue 15): see store_claim.c. */
struct claim_pacing {
    int64_t burst;      /* messages a paced scope lets go at once after a pause, >= 1 */
    int64_t horizon_us; /* a message is claimed at most this long before its slot */
    const char *const *up; /* borrowed: the egresses this process can send through now; */
    int nup;                /* up NULL: every egress */
    int64_t seed;            /* varies the weighted choice between claims */
};

struct delivery_vec {
    struct delivery_msg *items; /* owned */
    int n;
};

enum delivery_outcome {
    OUT_SENT,    /* 2xx: the relay took it */
    OUT_RETRY,   /* transient: pending again at next_attempt_at, or failed when attempts are spent */
    OUT_FAILED,  /* permanent */
    OUT_BOUNCED, /* permanent and hard (bounce_classify): the recipient bounces, the address is suppressed */
    OUT_RELEASE, /* never handed to the relay: pending again, the attempt not counted */
};

struct delivery_result {
    char id[MC_UUID_LEN + 1];
    /*
     * From the claim, and only from it: what the message's events name (a
     * 'sent' update on SQLite returns nothing) and whose counts it moves;
     * the update is fenced on the campaign and tenant too.
     */
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1]; /* "" when none */
    char to_address[EMAIL_MAX + 1];
    int attempts; /* from the claim: results are fenced on owner and attempt */
    enum delivery_outcome outcome;
    int64_t next_attempt_at; /* OUT_RETRY, OUT_RELEASE */
    int64_t claimed_at; /* from the claim: OUT_RELEASE gives the windows it counted in back
                           (0: none) */
    int reply_code;
    char error[256];    /* the relay's reply or the local reason, "" when none (OUT_RELEASE: the
                           message keeps its last error) */
    char queue_id[64];  /* the relay's queue id, "" when unknown */
    char message_id[128];
};

void delivery_vec_cleanup(struct delivery_vec *v);

/* Up to max (tenant, campaign) pairs with sending work, in a stable order. */
mc_err store_delivery_work(struct store *st, int max, struct delivery_work *out, int *n);
/*
 * Of the n (tenant, campaign) pairs in w, those whose messages may no
 * longer be sent (*out owned): the campaign paused, cancelled, ended or
 * gone, or its tenant no longer active.  A worker holding paced messages of
 * one for their slots hands them back instead of sending them.
 */
mc_err store_delivery_stopped(struct store *st, const struct delivery_work *w, int n,
                              struct delivery_work **out, int *nout);
/*
 * Claims up to max due messages of one campaign for owner, with a lease
 * until now + lease_us, in one short transaction that first takes the
 * tenant's claim lock (so every worker sharing the database counts the same
 * sliding windows) and grants only what the tenant's and the campaign's
 * rate limits leave in the last minute, hour and day.  now is the caller's
 * clock, or the moment the claim holds the lock if that is later.
 *
 * Every paced scope (the tenant's per_second and per_minute, the
 * campaign's per minute, the message's site's rule for pc->egress) spaces
 * its messages evenly (core/pace.h) with state shared in the database:
 * each claimed message gets the slot it may leave at (not_before), and only
 * messages whose slot is within pc->horizon_us are claimed.  A message held
 * back by its site alone waits (next_attempt_at moves to its expected
 * slot, no attempt spent) so other sites' messages are claimed.  Messages whose
 * recipient is no longer active, was deleted, or whose address is on the
 * suppression list become 'suppressed' instead.  Nothing is claimed unless
 * the campaign is sending and its tenant active.
 */
mc_err store_delivery_claim(struct store *st, const struct delivery_work *w, const char *owner,
                            int64_t now, int64_t lease_us, int max, const struct claim_pacing *pc,
                            struct delivery_vec *out);
/*
 * Records results in one transaction, each fenced on (id, owner, attempt,
 * status 'sending'): a worker that lost its lease changes nothing.  A retry
 * of a cancelled campaign's message becomes cancelled.  *applied counts
 * the results that took effect.
 */
mc_err store_delivery_record(struct store *st, const char *owner, int64_t now,
                             const struct delivery_result *res, int n, int *applied);
/* Messages waiting (pending) and in flight (sending) across every campaign. */
mc_err store_queue_depth(struct store *st, int64_t *pending, int64_t *sending);
/*
 * Returns expired leases to pending (*n returned) and deletes rate buckets
 * older than every window.  An expiry does not spend the message's attempt
 * (max_attempts grows by one) while max_attempts is below attempts_cap
 * (retry_max_attempts + lease_expiry_max); at the cap, a message whose
 * attempts are spent fails as a poison message.
 */
mc_err store_delivery_recover(struct store *st, int64_t now, int attempts_cap, int *n);

/* ---- DKIM keys ---- */

struct dkim_key {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char *domain;          /* owned, lowercase ASCII */
    char *selector;        /* owned */
    char *algorithm;       /* owned: "rsa-sha256" */
    int64_t key_bits;
    char *private_key_enc; /* owned: encrypted, never leaves the server */
    char *public_key;      /* owned: base64 DER SubjectPublicKeyInfo (the DNS p= value) */
    int64_t created_at;
};

struct dkim_key_vec {
    struct dkim_key *items; /* owned */
    int n;
    int64_t total;
};

/* Inserts k; fills id and created_at.  CONFLICT for a (domain, selector) the tenant has. */
mc_err store_dkim_create(struct store *st, struct dkim_key *k);
mc_err store_dkim_list(struct store *st, const char *tenant_id, const struct page *pg,
                       struct dkim_key_vec *out);
mc_err store_dkim_get(struct store *st, const char *tenant_id, const char *id,
                      struct dkim_key *out);
mc_err store_dkim_delete(struct store *st, const char *tenant_id, const char *id);
/* The newest key of the tenant for domain; NOT_FOUND when it has none. */
mc_err store_dkim_for_domain(struct store *st, const char *tenant_id, const char *domain,
                             struct dkim_key *out);
void dkim_key_cleanup(struct dkim_key *k);
void dkim_key_vec_cleanup(struct dkim_key_vec *v);

/* ---- the event log (store_events.c) ---- */

/* True when s is one of the event types (message.sent, campaign.started, ...). */
bool event_type_valid(const char *s);

struct event {
    char id[MC_UUID_LEN + 1]; /* time-ordered: also the cursor */
    char type[32];
    char *data; /* owned, JSON object text */
    int64_t created_at;
};

struct event_vec {
    struct event *items; /* owned */
    int n;
};

/* Filters of the event list; NULL pointers do not filter (all borrowed). */
struct event_filter {
    const char *after; /* cursor: ids after it in the list's order */
    const char *type;
    const char *campaign_id;
    const char *email_lc;
    int limit;
    bool ascending; /* oldest first; else newest first */
};

/* MC_ERR_INVALID for a malformed cursor or campaign id; NOT_FOUND without the tenant. */
mc_err store_event_list(struct store *st, const char *tenant_id, const struct event_filter *f,
                        struct event_vec *out);
/* Deletes up to batch events, and batch webhook deliveries, older than before; *n events. */
mc_err store_event_prune(struct store *st, int64_t before, int batch, int *n);
void event_vec_cleanup(struct event_vec *v);

/* One message of a campaign, for "who did not get it". */
struct message_info {
    char id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1]; /* "" once the recipient was deleted */
    char *email;                        /* owned */
    char status[16];
    int attempts;
    int last_reply_code; /* 0: none */
    char *last_error;    /* owned, may be NULL: the last SMTP reply or local reason */
    char *relay_queue_id; /* owned, may be NULL */
    int64_t sent_at, failed_at, next_attempt_at, created_at;
};

struct message_vec {
    struct message_info *items; /* owned */
    int n;
    int64_t total;
};

/* In id order; status and email_lc (NULL: any) filter.  NOT_FOUND without the campaign. */
mc_err store_campaign_messages(struct store *st, const char *tenant_id, const char *campaign_id,
                               const char *status, const char *email_lc, const struct page *pg,
                               struct message_vec *out);
void message_vec_cleanup(struct message_vec *v);

/* ---- webhooks (store_webhooks.c) ---- */

struct webhook {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char *url;             /* owned */
    char *description;     /* owned, may be NULL */
    char *event_types;     /* owned: "*" or ",type,type," */
    bool enabled;
    char *disabled_reason; /* owned, may be NULL */
    int64_t previous_expires_at; /* the rotated-out secret signs until then; 0 none */
    int64_t failing_since, last_success_at, created_at, updated_at;
};

struct webhook_vec {
    struct webhook *items; /* owned */
    int n;
    int64_t total;
};

/* NULL / false leave a field unchanged; enabling clears the reason and the failure clock. */
struct webhook_patch {
    const char *url;
    bool set_description;
    const char *description;
    const char *event_types;
    bool has_enabled, enabled;
};

/*
 * Inserts w (tenant_id, url, description, event_types, enabled) with its
 * secret (borrowed, never read back); fills the rest.  MC_ERR_LIMIT when
 * the tenant has max endpoints already, NOT_FOUND without the tenant.
 */
mc_err store_webhook_create(struct store *st, struct webhook *w, const char *secret, int max);
mc_err store_webhook_get(struct store *st, const char *tenant_id, const char *id,
                         struct webhook *out);
/* Newest first. */
mc_err store_webhook_list(struct store *st, const char *tenant_id, const struct page *pg,
                          struct webhook_vec *out);
mc_err store_webhook_update(struct store *st, const char *tenant_id, const char *id,
                            const struct webhook_patch *p, struct webhook *out);
/* Deletes the endpoint and its deliveries. */
mc_err store_webhook_delete(struct store *st, const char *tenant_id, const char *id);
/* secret becomes the signing secret; the old one also signs until grace_until (0: not at all). */
mc_err store_webhook_rotate(struct store *st, const char *tenant_id, const char *id,
                            const char *secret, int64_t grace_until, struct webhook *out);
/* Tests waiting for one endpoint at most; one more is MC_ERR_LIMIT. */
#define WEBHOOK_TESTS_WAITING_MAX 5
/*
 * Records a webhook.test event queued for this endpoint only; STATE when
 * disabled, LIMIT while WEBHOOK_TESTS_WAITING_MAX tests still wait for it.
 */
mc_err store_webhook_test(struct store *st, const char *tenant_id, const char *id,
                          char event_id[MC_UUID_LEN + 1]);

/* One delivery of an event to an endpoint (never the receiver's response body). */
struct webhook_delivery {
    char id[MC_UUID_LEN + 1];
    char event_id[MC_UUID_LEN + 1];
    char event_type[32];
    char status[12]; /* pending, sending, succeeded, failed */
    int attempts;
    int last_status_code; /* 0: no HTTP answer */
    int last_latency_ms;
    char *last_error; /* owned, may be NULL: the error class */
    int64_t next_attempt_at, last_attempt_at, created_at, completed_at;
};

struct webhook_delivery_vec {
    struct webhook_delivery *items; /* owned */
    int n;
    int64_t total;
};

/* Newest first; status NULL for any.  NOT_FOUND without the endpoint. */
mc_err store_webhook_deliveries(struct store *st, const char *tenant_id, const char *webhook_id,
                                const char *status, const struct page *pg,
                                struct webhook_delivery_vec *out);
/* A finished delivery becomes due now with a fresh round of attempts; STATE while in progress. */
mc_err store_webhook_delivery_retry(struct store *st, const char *tenant_id,
                                    const char *webhook_id, const char *delivery_id);
/*
 * Queues a new delivery to the endpoint of every event of [from, to) it
 * subscribes to.  MC_ERR_LIMIT (nothing queued) past max; STATE when the
 * endpoint is disabled.
 */
mc_err store_webhook_replay(struct store *st, const char *tenant_id, const char *webhook_id,
                            int64_t from, int64_t to, int max, int64_t *queued);
void webhook_cleanup(struct webhook *w);
void webhook_vec_cleanup(struct webhook_vec *v);
void webhook_delivery_vec_cleanup(struct webhook_delivery_vec *v);

/* A claimed delivery with what sending it needs (all owned). */
struct webhook_job {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char endpoint_id[MC_UUID_LEN + 1];
    char event_id[MC_UUID_LEN + 1]; /* the webhook-id header, the same on every retry */
    int attempts;                   /* this attempt's number (the fence) */
    int64_t created_at;             /* the event's */
    char *url;
    char *secret;          /* whsec_... */
    char *previous_secret; /* NULL, or still signing during a rotation's grace */
    char *body;            /* {"type","timestamp","data"} */
};

struct webhook_job_vec {
    struct webhook_job *items; /* owned */
    int n;
};

enum webhook_result_kind { WH_RESULT_OK, WH_RESULT_FAIL, WH_RESULT_GONE };

struct webhook_result {
    char id[MC_UUID_LEN + 1];
    char endpoint_id[MC_UUID_LEN + 1];
    int attempts; /* from the claim */
    enum webhook_result_kind kind;
    int status_code; /* 0: no HTTP answer */
    int latency_ms;
    char error[64];          /* the error class, "" on success */
    int64_t next_attempt_at; /* FAIL: when to try again, 0: failed for good */
};

/*
 * Claims up to max due deliveries of enabled endpoints for owner, with a
 * lease until now + lease_us, at most per_endpoint minus busy_json's count
 * ({"endpoint id": deliveries the caller holds already}) for each endpoint.
 */
mc_err store_webhook_claim(struct store *st, const char *owner, int64_t now, int64_t lease_us,
                           int max, int per_endpoint, const char *busy_json,
                           struct webhook_job_vec *out);
/*
 * Records results in one transaction, fenced on (id, owner, attempt): a
 * success resets its endpoint's failure clock; GONE disables the endpoint;
 * a failure starts the clock, and an endpoint failing for disable_after_us
 * without a success is disabled.
 */
mc_err store_webhook_record(struct store *st, const char *owner, int64_t now,
                            const struct webhook_result *res, int n, int64_t disable_after_us);
/*
 * Gives back claimed deliveries that were never sent (the sender's local
 * queue on stop, or one that waited too long in it): pending again at once,
 * the claim's attempt not counted, fenced on (id, owner, attempt) like a
 * result.  *n (may be NULL) of them were given back.
 */
mc_err store_webhook_release(struct store *st, const char *owner, int64_t now,
                             const struct webhook_job *jobs, int njobs, int *n);
/* Expired leases become pending again (their attempt counted); *n of them. */
mc_err store_webhook_recover(struct store *st, int64_t now, int *n);
void webhook_job_cleanup(struct webhook_job *j);
void webhook_job_vec_cleanup(struct webhook_job_vec *v);

#endif
