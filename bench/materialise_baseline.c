/*
 * materialise_baseline.c - the floor bench/materialise compares the
 * campaign engine with: N message rows written the simplest fast way.
 *
 *   materialise_baseline sqlite:PATH N
 *   materialise_baseline postgresql://... N
 *
 * Creates a fresh table shaped like mailcast's scheduled_messages (same
 * columns, primary key, UNIQUE (campaign_id, recipient_id) and the same
 * secondary indexes, partial ones included; no triggers, no foreign keys)
 * and writes N pending messages of one campaign into it:
 *   SQLite: one prepared INSERT, stepped per row, in one transaction, with
 *           the pragmas mailcast's store uses;
 *   PostgreSQL: one COPY ... FROM STDIN in one transaction (a per-row
 *           INSERT loop over libpq would measure round trips, not writes).
 * The rows are generated in C (a UUID, a recipient UUID, an address), so
 * unlike mailcast nothing is read from recipients or checked against the
 * suppression list.
 *
 * Prints one line: rows=N seconds=S rows_per_s=R (BEGIN to COMMIT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define TENANT "6f1c0d7e-2b4a-4c8e-9d3f-0a1b2c3d4e5f"
#define CAMPAIGN "3c2b1a09-8f7e-4d6c-9b5a-493827160504"

static const char *const sqlite_schema[] = {
    "CREATE TABLE scheduled_messages (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, "
    "campaign_id TEXT NOT NULL, recipient_id TEXT, to_address TEXT NOT NULL, "
    "status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', "
    "'delivered', 'bounced', 'failed', 'cancelled', 'suppressed')), "
    "attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5, "
    "next_attempt_at INTEGER NOT NULL, lease_owner TEXT, lease_expires_at INTEGER, "
    "last_attempt_at INTEGER, last_error TEXT, last_reply_code INTEGER, message_id TEXT, "
    "relay_queue_id TEXT, sent_at INTEGER, delivered_at INTEGER, bounced_at INTEGER, "
    "bounce_type TEXT, bounce_reason TEXT, created_at INTEGER NOT NULL, "
    "updated_at INTEGER NOT NULL, UNIQUE (campaign_id, recipient_id))",
    NULL,
};

static const char *const pg_schema[] = {
    "DROP TABLE IF EXISTS scheduled_messages",
    "CREATE TABLE scheduled_messages (id UUID PRIMARY KEY, tenant_id UUID NOT NULL, "
    "campaign_id UUID NOT NULL, recipient_id UUID, to_address VARCHAR(254) NOT NULL, "
    "status VARCHAR(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', "
    "'sent', 'delivered', 'bounced', 'failed', 'cancelled', 'suppressed')), "
    "attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5, "
    "next_attempt_at TIMESTAMPTZ NOT NULL, lease_owner TEXT, lease_expires_at TIMESTAMPTZ, "
    "last_attempt_at TIMESTAMPTZ, last_error TEXT, last_reply_code INTEGER, message_id TEXT, "
    "relay_queue_id TEXT, sent_at TIMESTAMPTZ, delivered_at TIMESTAMPTZ, "
    "bounced_at TIMESTAMPTZ, bounce_type VARCHAR(50), bounce_reason TEXT, "
    "created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, "
    "UNIQUE (campaign_id, recipient_id))",
    NULL,
};

/* The secondary indexes of migrations 0001-0003, identical on both stores. */
static const char *const indexes[] = {
    "CREATE INDEX sm_due ON scheduled_messages (campaign_id, next_attempt_at) "
    "WHERE status = 'pending'",
    "CREATE INDEX sm_lease ON scheduled_messages (lease_expires_at) WHERE status = 'sending'",
    "CREATE INDEX sm_tenant_addr ON scheduled_messages (tenant_id, to_address)",
    "CREATE INDEX sm_sent ON scheduled_messages (campaign_id, sent_at) WHERE sent_at IS NOT NULL",
    "CREATE INDEX sm_tenant_attempt ON scheduled_messages (tenant_id, last_attempt_at) "
    "WHERE last_attempt_at IS NOT NULL",
    "CREATE INDEX sm_campaign_attempt ON scheduled_messages (campaign_id, last_attempt_at) "
    "WHERE last_attempt_at IS NOT NULL",
    NULL,
};

static void
address(long i, char *out, size_t n)
{
    snprintf(out, n, "user.%ld@example%ld.com", i, i % 97);
}

static double
run_sqlite(const char *path, long n)
{
    sqlite3 *db = bench_sqlite_open(path);
    sqlite3_stmt *st = NULL;
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    const sqlite3_int64 now = 1795953600000000LL;
    char id[37], rid[37], addr[64];
    double t0, secs;

    for (int i = 0; sqlite_schema[i]; i++)
        bench_sqlite_exec(db, sqlite_schema[i]);
    for (int i = 0; indexes[i]; i++)
        bench_sqlite_exec(db, indexes[i]);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO scheduled_messages (id, tenant_id, campaign_id, "
                           "recipient_id, to_address, status, max_attempts, next_attempt_at, "
                           "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 5, "
                           "?6, ?6, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        bench_die("sqlite: %s", sqlite3_errmsg(db));
    t0 = bench_now();
    bench_sqlite_exec(db, "BEGIN");
    for (long i = 0; i < n; i++) {
        bench_uuid(&seed, id);
        bench_uuid(&seed, rid);
        address(i, addr, sizeof(addr));
        sqlite3_bind_text(st, 1, id, 36, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, TENANT, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, CAMPAIGN, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, rid, 36, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, addr, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, now);
        if (sqlite3_step(st) != SQLITE_DONE)
            bench_die("sqlite: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
    }
    bench_sqlite_exec(db, "COMMIT");
    secs = bench_now() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return secs;
}

static double
run_pg(const char *url, long n)
{
    PGconn *c = bench_pg_connect(url);
    struct bench_copy b = {.conn = c};
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    char id[37], rid[37], addr[64];
    double t0, secs;

    for (int i = 0; pg_schema[i]; i++)
        bench_pg_exec(c, pg_schema[i]);
    for (int i = 0; indexes[i]; i++)
        bench_pg_exec(c, indexes[i]);
    t0 = bench_now();
    bench_pg_exec(c, "BEGIN");
    bench_pg_exec(c, "COPY scheduled_messages (id, tenant_id, campaign_id, recipient_id, "
                     "to_address, status, max_attempts, next_attempt_at, created_at, "
                     "updated_at) FROM STDIN");
    for (long i = 0; i < n; i++) {
        bench_uuid(&seed, id);
        bench_uuid(&seed, rid);
        address(i, addr, sizeof(addr));
        bench_copy_printf(&b,
                          "%s\t" TENANT "\t" CAMPAIGN "\t%s\t%s\tpending\t5\t"
                          "2026-11-29 12:00:00+00\t2026-11-29 12:00:00+00\t"
                          "2026-11-29 12:00:00+00\n",
                          id, rid, addr);
    }
    bench_copy_end(&b);
    bench_pg_exec(c, "COMMIT");
    secs = bench_now() - t0;
    PQfinish(c);
    return secs;
}

int
main(int argc, char **argv)
{
    char *end = NULL;
    long n;
    double secs;

    if (argc != 3 || (n = strtol(argv[2], &end, 10)) <= 0 || *end != '\0') {
        fprintf(stderr, "usage: materialise_baseline sqlite:PATH|postgresql://URL N\n");
        return 2;
    }
    if (strncmp(argv[1], "sqlite:", 7) == 0)
        secs = run_sqlite(argv[1] + 7, n);
    else
        secs = run_pg(argv[1], n);
    printf("rows=%ld seconds=%.3f rows_per_s=%.0f\n", n, secs, (double)n / secs);
    return 0;
}
