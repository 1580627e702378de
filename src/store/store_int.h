/*
 * store_int.h - what the store frontend and its backends share.
 *
 * A backend is a small SQL driver: connect, run a statement with typed
 * parameters, walk the rows, transactions.  The frontend writes each query
 * once with $1..$n placeholders (SQLite binds them by name), and branches on
 * the dialect only where the two databases really differ.
 */
#ifndef MC_STORE_INT_H
#define MC_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/util.h"
#include "store.h"

enum db_dialect { DB_SQLITE, DB_PG };

/*
 * Parameter types.  DB_TIME is microseconds: SQLite stores an integer,
 * PostgreSQL a timestamptz.  DB_BOOL: SQLite 0/1, PostgreSQL boolean.
 */
enum db_type { DB_NULL, DB_TEXT, DB_INT, DB_BOOL, DB_TIME };

struct db_param {
    enum db_type type;
    const char *s; /* borrowed */
    int64_t i;
};

static inline struct db_param
db_text_param(const char *s)
{
    return (struct db_param){s ? DB_TEXT : DB_NULL, s, 0};
}

#define P_TEXT(x) db_text_param(x)
#define P_INT(x) ((struct db_param){DB_INT, NULL, (x)})
#define P_BOOL(x) ((struct db_param){DB_BOOL, NULL, (x) ? 1 : 0})
/* A time; 0 is NULL. */
#define P_TIME(x) ((struct db_param){(x) ? DB_TIME : DB_NULL, NULL, (x)})
#define P_NULL ((struct db_param){DB_NULL, NULL, 0})

#define NPARAMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct db_conn;
struct db_res;

struct store_ops {
    int version; /* 1 */
    const char *name;
    enum db_dialect dialect;
    mc_err (*connect)(const char *url, const struct store_params *p, struct db_conn **out);
    void (*disconnect)(struct db_conn *c);
    /* Runs one statement; *changes (may be NULL) gets the rows it changed. */
    mc_err (*exec)(struct db_conn *c, const char *sql, const struct db_param *p, int np,
                   int64_t *changes);
    /* Runs one statement that returns rows; the caller owns *out (res_free). */
    mc_err (*query)(struct db_conn *c, const char *sql, const struct db_param *p, int np,
                    struct db_res **out);
    /* Advances to the next row: *row is false at the end. */
    mc_err (*next)(struct db_res *r, bool *row);
    /* Column accessors for the current row; text is NULL for SQL NULL and
     * valid until the next call of next() or res_free(). */
    const char *(*col_text)(struct db_res *r, int col);
    int64_t (*col_int)(struct db_res *r, int col);
    bool (*col_bool)(struct db_res *r, int col);
    int64_t (*col_time)(struct db_res *r, int col); /* 0 for NULL */
    void (*res_free)(struct db_res *r);
    /* immediate: take the write lock now (SQLite BEGIN IMMEDIATE). */
    mc_err (*begin)(struct db_conn *c, bool immediate);
    mc_err (*commit)(struct db_conn *c);
    mc_err (*rollback)(struct db_conn *c);
    /* Rolls back an open transaction; false when the connection is broken. */
    bool (*reset)(struct db_conn *c);
    /* Runs a script of several statements without parameters (migrations). */
    mc_err (*exec_script)(struct db_conn *c, const char *sql);
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* A connection borrowed from the pool, with the ops to drive it. */
struct db {
    const struct store_ops *ops;
    struct db_conn *conn;
    struct store *st;
};

/* Borrows a connection (blocks while all are in use); db_put returns it. */
mc_err db_get(struct store *st, struct db *out);
/* A backend's connect writes why it failed here (this thread's), for store.c's outage log. */
extern _Thread_local char db_connect_error[300];
/* Returns the connection; a connection left inside a transaction is rolled back. */
void db_put(struct db *d);

/* Shorthands over d->ops. */
mc_err db_exec(struct db *d, const char *sql, const struct db_param *p, int np,
               int64_t *changes);
mc_err db_query(struct db *d, const char *sql, const struct db_param *p, int np,
                struct db_res **out);
mc_err db_begin(struct db *d, bool immediate);
mc_err db_commit(struct db *d);
void db_rollback(struct db *d);
/*
 * For the rest of the transaction, PostgreSQL runs prepared statements on
 * their generic plans, plans no sequential scan where an index can serve,
 * and compiles nothing (SQLite: nothing to do).  PostgreSQL re-plans a
 * prepared statement on every execution while it judges a custom plan
 * cheaper, which it does for small batches over arrays (the generic plan's
 * estimate is 10 rows); for the webhook claim and record, the bounce batch
 * and the event prune that planning cost more than running them.  A
 * generic plan, though, is kept until the table's statistics change: made
 * while a table was new and nearly empty, it read the whole table by
 * sequential scan on every call, more each call as the table grew (the
 * webhook claim at 13 ms a call, the bounce duplicates' INSERT growing
 * round by round).  Without sequential scans the plan probes indexes
 * whatever the statistics say; jit is off because a scan with no index
 * left would cost enough to be compiled on every call.
 *
 * The settings end with the transaction, but a plan made under them is
 * kept for the connection (statements are prepared once per connection):
 * the guarantee holds for statements run only in such transactions, as the
 * ones above are; a statement also run elsewhere keeps whichever plan its
 * connection made first.  A semi-join that would hash a whole table is
 * kept a correlated probe by the statement itself (store_bounces.c's
 * DUP_WHERE).
 */
mc_err db_plans_generic(struct db *d);

/*
 * Runs a query that returns at most one row and copies its first column as
 * text (*out owned, NULL for SQL NULL) or as an integer.  MC_ERR_NOT_FOUND
 * when there is no row.
 */
mc_err db_one_text(struct db *d, const char *sql, const struct db_param *p, int np, char **out);
mc_err db_one_int(struct db *d, const char *sql, const struct db_param *p, int np,
                  int64_t *out);

/* Fills out (a struct of the caller's) from the current row. */
typedef void (*db_row_fn)(struct db *d, struct db_res *r, void *out);

/* Runs a query expecting one row and hands it to fn; MC_ERR_NOT_FOUND without a row. */
mc_err db_fetch_one(struct db *d, const char *sql, const struct db_param *p, int np,
                    db_row_fn fn, void *out);
/*
 * Runs a query and hands every row to fn, into a growing array of elements
 * of elem bytes: *items (owned by the caller, zeroed elements) and *n.
 */
mc_err db_fetch_all(struct db *d, const char *sql, const struct db_param *p, int np,
                    db_row_fn fn, size_t elem, void **items, int *n);

/*
 * A list endpoint's page: borrows a connection, counts with count_sql (its
 * first np_count parameters), fetches the page with page_sql (all np) into
 * a growing array as db_fetch_all does.  On failure the array is the
 * caller's to free as well.
 */
mc_err store_page(struct store *st, const char *count_sql, const char *page_sql,
                  const struct db_param *p, int np_count, int np, db_row_fn fn, size_t elem,
                  void **items, int *n, int64_t *total);

/*
 * A LIKE pattern (owned) matching values that contain q, with "%", "_" and
 * "\\" taken literally (ESCAPE '\\'); lower folds ASCII letters to lowercase.
 */
char *db_like_contains(const char *q, bool lower);

/* MC_ERR_OK when the tenant has the list, MC_ERR_NOT_FOUND when not. */
mc_err db_list_exists(struct db *d, const char *tenant_id, const char *list_id);

/* Copies of a column (owned by the caller), NULL for SQL NULL. */
char *db_col_dup(struct db *d, struct db_res *r, int col);
/* Copies a UUID column into a fixed buffer. */
void db_col_uuid(struct db *d, struct db_res *r, int col, char out[MC_UUID_LEN + 1]);

/*
 * SQLite's count trigger costs about 10 us a status change; the delivery hot
 * path (a claim's take, a flush's 'sent' updates) pauses it around its
 * statement inside its own transaction (a row in counts_by_caller, migration
 * 19: never committed, since resume runs before anything else and an error
 * rolls the transaction back) and moves the counts itself: n of
 * campaign_id's messages, exact because those statements change only rows
 * in the move's first status.  All three do nothing on PostgreSQL, whose
 * trigger is statement-level.  A migration that recreates the trigger must
 * keep its NOT EXISTS (SELECT 1 FROM counts_by_caller) condition.
 */
enum count_move { COUNT_PENDING_TO_SENDING, COUNT_SENDING_TO_SENT };
mc_err db_count_trigger_pause(struct db *d);
mc_err db_count_trigger_resume(struct db *d);
mc_err db_counts_move(struct db *d, const char *campaign_id, enum count_move m, int64_t n);

/*
 * Inside a transaction: serialises, on PostgreSQL, the writers of one
 * tenant's recipients and suppression list, so that "is it suppressed?"
 * and the write that follows cannot interleave with a suppression being
 * added (SQLite's BEGIN IMMEDIATE already serialises every writer).  Bounce
 * intake takes the same lock for a whole batch's tenants at once, in its
 * lookup statement (store_bounces.c, sql_lookup_lock_pg).
 */
mc_err db_lock_tenant(struct db *d, const char *tenant_id);

/*
 * The end of an INSERT INTO unsubscribes: an address already there keeps
 * its entry, unless that entry is temporary (a soft-bounce suppression) and
 * the new one lasts longer or for ever, which then replaces it.  (An
 * expired entry is deleted by a trigger before the insert.)
 */
#define UNSUB_ON_CONFLICT                                                                         \
    " ON CONFLICT (tenant_id, email_lc) DO UPDATE SET source = excluded.source, "                 \
    "cause = excluded.cause, expires_at = excluded.expires_at, "                                  \
    "message_id = excluded.message_id, campaign_id = excluded.campaign_id, "                      \
    "reason = excluded.reason, unsubscribed_at = excluded.unsubscribed_at "                       \
    "WHERE unsubscribes.expires_at IS NOT NULL AND (excluded.expires_at IS NULL OR "              \
    "unsubscribes.expires_at < excluded.expires_at)"

/* store_claim.c: deletes the rate_usage buckets no window ending at now reaches. */
mc_err claim_rate_usage_prune(struct db *d, int64_t now);

/* store_shaping.c: every automation rule, in document order (*out owned). */
struct shaping_auto;
mc_err shaping_autos_read(struct db *d, struct shaping_auto **out, int *n);

/*
 * store_claim.c: gives back the one message a claim at `at` counted in the
 * tenant's and the campaign's windows (a message handed back unsent); a
 * bucket no window reaches any more is gone already, and nothing changes.
 */
mc_err claim_window_return(struct db *d, const char *tenant_id, const char *campaign_id,
                           int64_t at);

/* store_automation.c: deletes expired states and hits no trigger counts any more. */
mc_err shaping_state_prune(struct db *d, int64_t now);

/*
 * PostgreSQL: the advisory lock between a claim, which reads the
 * suspensions in force and defers the messages they hold to their ends,
 * and the lift of one, which brings those back: claims hold it shared from
 * their first statement to their commit, a lift exclusively, so no claim
 * defers a message for a suspension already lifted (SQLite serialises
 * writers anyway).
 */
#define PG_LOCK_SHAPING_HOLD 7461636174LL
/* PostgreSQL: the advisory lock migrations run under (store_migrate). */
#define PG_LOCK_MIGRATE 7461636173LL

/* True when id is a well-formed UUID (the frontend's guard before any SQL). */
bool store_id_ok(const char *id);

/* ---- the event log (store_events.c), written inside the caller's transaction ---- */

/*
 * Events gathered for one transaction, written by db_events_write() in one
 * multi-row INSERT (and one INSERT that queues them for every enabled
 * webhook endpoint of their tenant subscribed to their type).
 */
/* One event waiting in a batch: its columns, data as JSON text. */
struct event_row {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char type[32];
    char campaign_id[MC_UUID_LEN + 1]; /* "" for none */
    char message_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char *email_lc; /* owned, NULL for none */
    char *data;     /* owned: a JSON object */
};

struct event_batch {
    struct event_row *rows; /* owned */
    int n, cap;
};

/* Ids and address of what an event talks about; NULL or "" when none (all borrowed). */
struct event_ref {
    const char *campaign_id;
    const char *message_id;
    const char *recipient_id;
    const char *email;
};

void db_events_init(struct event_batch *b);
/*
 * Adds one event of tenant_id: data (a json_t object, stolen; NULL for
 * {}) gets the ids and address of ref too.  The event's id is a fresh
 * time-ordered UUID.
 */
void db_events_add(struct event_batch *b, const char *tenant_id, const char *type,
                   const struct event_ref *ref, void *data);
/*
 * The same with data given as JSON text: fields (borrowed, NULL or "" for
 * none) is the members after the ids, without braces ("\"attempt\":1,...").
 * The delivery group commit uses it to build no jansson object per message.
 */
void db_events_add_text(struct event_batch *b, const char *tenant_id, const char *type,
                        const struct event_ref *ref, const char *fields);
/* s when it is non-empty UTF-8 (what jansson takes), else NULL. */
const char *db_utf8_or_null(const char *s);
/*
 * Appends s (NULL: NULL) as the next element of a PostgreSQL array literal
 * being built in a (empty: the opening brace comes first); the caller
 * closes it with '}'.
 */
void db_pg_array_put(struct buf *a, const char *s);
/* Appends s to b as a JSON string (jansson's escaping), or null when s is NULL or not UTF-8. */
void db_json_string_put(struct buf *b, const char *s);
/* Writes and empties the batch (nothing when empty); inside the caller's transaction. */
mc_err db_events_write(struct db *d, struct event_batch *b, int64_t now);
void db_events_cleanup(struct event_batch *b);

/*
 * An address going on the suppression list (store_unsubscribes.c): the one
 * path of every bounce and complaint, at send time or reported later.
 */
struct suppress_req {
    const char *tenant_id;
    const char *email;
    const char *email_lc;
    const char *source;      /* unsubscribes.source: bounce, complaint */
    const char *cause;       /* hard_bounce, soft_bounce, complaint */
    const char *campaign_id; /* NULL when none */
    const char *message_id;  /* NULL when none */
    const char *reason;      /* the diagnostic; NULL when none */
    int64_t expires;         /* 0: for ever */
    int64_t now;
};
/* Lists it (or lengthens an expiring entry, UNSUB_ON_CONFLICT) and queues
 * suppression.created to ev when the list changed. */
mc_err db_suppress(struct db *d, const struct suppress_req *s, struct event_batch *ev);
/* Sets the address's active recipient rows in all the tenant's lists to status. */
mc_err db_recipients_mark(struct db *d, const char *tenant_id, const char *email_lc,
                          const char *status, int64_t now);

/*
 * message.bounced or message.complained for the tenant's scheduled message
 * msg_id, written at once inside the caller's transaction (the bounce and
 * complaint intake calls this with its own status change): the campaign,
 * recipient and address come from the message row, detail (a json_t object,
 * borrowed, may be NULL) adds what the intake knows (bounce type, reason,
 * the DSN's status and diagnostic).  NOT_FOUND without the message.
 */
mc_err db_event_message(struct db *d, const char *tenant_id, const char *msg_id,
                        const char *type, const void *detail, int64_t now);

/*
 * store_delivery.c: the columns an outcome or a claim's suppression
 * returns, what its event needs, and the row they are read into.
 */
#define OUTCOME_COLS " RETURNING id, tenant_id, campaign_id, recipient_id, to_address, status"
struct outcome_row {
    char id[MC_UUID_LEN + 1];
    char tenant_id[MC_UUID_LEN + 1];
    char campaign_id[MC_UUID_LEN + 1];
    char recipient_id[MC_UUID_LEN + 1];
    char *to_address; /* owned */
    char status[16];
};
void outcome_row(struct db *d, struct db_res *r, void *out);
void outcome_rows_free(struct outcome_row *o, int n);

#endif
