/*
 * test_store.c - the store API on both backends.  Every test runs once on
 * SQLite and once on a fresh database of the throwaway PostgreSQL cluster
 * (MAILCAST_TEST_PG_URL, set by tests/run.sh), and each has a two-tenant
 * check: one tenant never reads or changes the other's rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "mctest.h"
#include "storefix.h"

#include "core/crypto.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store/store.h"
#include "store/store_int.h"

/* ---- tests ---- */

static void
test_migrate_idempotent(void **state)
{
    struct store *st = st_of(state);
    int applied = -1, dbv = 0, binv = 0;

    assert_int_equal(store_migrate(st, &applied), MC_ERR_OK);
    assert_true(applied >= 1);
    assert_int_equal(store_migrate(st, &applied), MC_ERR_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(store_schema_version(st, &dbv, &binv), MC_ERR_OK);
    assert_int_equal(dbv, binv);
    assert_int_equal(store_ping(st), MC_ERR_OK);
}

static void
test_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b, dup, got = {0};
    struct tenant_list l = {0};
    struct page pg = {.limit = 10, .offset = 0};
    struct tenant_patch tp = {.name = "Alpha Renamed"};

    make_tenant(st, "alpha", &a);
    make_tenant(st, "beta", &b);
    assert_true(crypto_uuid_valid(a.id));
    assert_string_not_equal(a.id, b.id);

    memset(&dup, 0, sizeof(dup));
    dup.name = xstrdup("x");
    dup.slug = xstrdup("alpha");
    assert_int_equal(store_tenant_create(st, &dup), MC_ERR_CONFLICT);
    tenant_cleanup(&dup);

    assert_int_equal(store_tenant_get(st, a.id, &got), MC_ERR_OK);
    assert_string_equal(got.slug, "alpha");
    assert_string_equal(got.plan, "free");
    assert_string_equal(got.settings, "{}");
    assert_int_equal(got.created_at, a.created_at);
    tenant_cleanup(&got);

    assert_int_equal(store_tenant_get(st, "not-a-uuid", &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_tenant_get(st, "00000000-0000-4000-8000-000000000000", &got),
                     MC_ERR_NOT_FOUND);

    /* A partial update changes only what it names, and only that tenant. */
    assert_int_equal(store_tenant_update(st, a.id, &tp, &got), MC_ERR_OK);
    assert_string_equal(got.name, "Alpha Renamed");
    assert_string_equal(got.slug, "alpha");
    assert_int_equal(got.status, TENANT_ACTIVE);
    tenant_cleanup(&got);
    assert_int_equal(store_tenant_get(st, b.id, &got), MC_ERR_OK);
    assert_string_equal(got.name, "beta");
    tenant_cleanup(&got);

    assert_int_equal(store_tenant_list(st, -1, &pg, &l), MC_ERR_OK);
    assert_int_equal(l.total, 2);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, b.id); /* newest first */
    tenant_list_cleanup(&l);

    pg.limit = 1;
    pg.offset = 1;
    assert_int_equal(store_tenant_list(st, -1, &pg, &l), MC_ERR_OK);
    assert_int_equal(l.total, 2);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, a.id);
    tenant_list_cleanup(&l);

    struct tenant_patch sus = {.has_status = true, .status = TENANT_SUSPENDED};
    assert_int_equal(store_tenant_update(st, b.id, &sus, &got), MC_ERR_OK);
    tenant_cleanup(&got);
    pg.limit = 10;
    pg.offset = 0;
    assert_int_equal(store_tenant_list(st, TENANT_SUSPENDED, &pg, &l), MC_ERR_OK);
    assert_int_equal(l.total, 1);
    assert_string_equal(l.items[0].id, b.id);
    tenant_list_cleanup(&l);

    /* Deleting is soft, hides the tenant, and is not repeatable. */
    assert_int_equal(store_tenant_delete(st, b.id), MC_ERR_OK);
    assert_int_equal(store_tenant_get(st, b.id, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_tenant_delete(st, b.id), MC_ERR_NOT_FOUND);
    assert_int_equal(store_tenant_update(st, b.id, &tp, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_tenant_list(st, -1, &pg, &l), MC_ERR_OK);
    assert_int_equal(l.total, 1);
    tenant_list_cleanup(&l);

    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
make_key(struct store *st, const char *tenant_id, unsigned scopes, struct api_key *k)
{
    unsigned char rnd[6];
    char hex[13], hash[65];

    memset(k, 0, sizeof(*k));
    memcpy(k->tenant_id, tenant_id, MC_UUID_LEN + 1);
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), hex);
    k->key_prefix = xasprintf("mck_%s", hex);
    crypto_sha256_hex(hex, 12, hash);
    k->key_hash = xstrdup(hash);
    k->name = xstrdup("test");
    k->scopes = scopes;
    assert_int_equal(store_key_create(st, k), MC_ERR_OK);
}

static void
test_keys_two_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct api_key ka, kb, got = {0};
    struct api_key_list l = {0};
    struct page pg = {.limit = 50, .offset = 0};
    int64_t now = time_now_us();

    make_tenant(st, "keys-a", &a);
    make_tenant(st, "keys-b", &b);
    make_key(st, a.id, KEY_SCOPE_READ, &ka);
    make_key(st, b.id, KEY_SCOPE_READ | KEY_SCOPE_WRITE, &kb);

    assert_int_equal(store_key_find(st, ka.key_prefix, &got), MC_ERR_OK);
    assert_string_equal(got.tenant_id, a.id);
    assert_string_equal(got.key_hash, ka.key_hash);
    assert_int_equal(got.scopes, KEY_SCOPE_READ);
    assert_int_equal(got.tenant_status, TENANT_ACTIVE);
    api_key_cleanup(&got);
    assert_int_equal(store_key_find(st, "mck_000000000000", &got), MC_ERR_NOT_FOUND);

    /* Tenant A sees and revokes only its own keys. */
    assert_int_equal(store_key_list(st, a.id, &pg, &l), MC_ERR_OK);
    assert_int_equal(l.total, 1);
    assert_string_equal(l.items[0].id, ka.id);
    api_key_list_cleanup(&l);
    assert_int_equal(store_key_get(st, a.id, kb.id, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_key_revoke(st, a.id, kb.id), MC_ERR_NOT_FOUND);
    assert_int_equal(store_key_get(st, b.id, kb.id, &got), MC_ERR_OK);
    assert_int_equal(got.revoked_at, 0);
    assert_int_equal(got.scopes, KEY_SCOPE_READ | KEY_SCOPE_WRITE);
    api_key_cleanup(&got);

    /* Revoking is stamped once; a second revoke finds nothing to revoke. */
    assert_int_equal(store_key_revoke(st, a.id, ka.id), MC_ERR_OK);
    assert_int_equal(store_key_get(st, a.id, ka.id, &got), MC_ERR_OK);
    int64_t first = got.revoked_at;
    assert_true(first >= now);
    api_key_cleanup(&got);
    assert_int_equal(store_key_revoke(st, a.id, ka.id), MC_ERR_NOT_FOUND);
    assert_int_equal(store_key_get(st, a.id, ka.id, &got), MC_ERR_OK);
    assert_int_equal(got.revoked_at, first);
    api_key_cleanup(&got);

    /* last_used_at is written at most once a minute. */
    assert_int_equal(store_key_touch(st, kb.id, now), MC_ERR_OK);
    assert_int_equal(store_key_touch(st, kb.id, now + 1000000), MC_ERR_OK);
    assert_int_equal(store_key_get(st, b.id, kb.id, &got), MC_ERR_OK);
    assert_true(got.last_used_at / 1000 == now / 1000);
    api_key_cleanup(&got);
    assert_int_equal(store_key_touch(st, kb.id, now + 61000000), MC_ERR_OK);
    assert_int_equal(store_key_get(st, b.id, kb.id, &got), MC_ERR_OK);
    assert_true(got.last_used_at / 1000 == (now + 61000000) / 1000);
    api_key_cleanup(&got);

    /* A deleted tenant's keys cannot be found, and it gets no new ones. */
    assert_int_equal(store_tenant_delete(st, b.id), MC_ERR_OK);
    assert_int_equal(store_key_find(st, kb.key_prefix, &got), MC_ERR_NOT_FOUND);
    struct api_key kc = {0};
    memcpy(kc.tenant_id, b.id, sizeof(kc.tenant_id));
    kc.name = xstrdup("late");
    kc.key_prefix = xstrdup("mck_ffffffffffff");
    kc.key_hash = xstrdup("00");
    assert_int_equal(store_key_create(st, &kc), MC_ERR_NOT_FOUND);
    api_key_cleanup(&kc);

    api_key_cleanup(&ka);
    api_key_cleanup(&kb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_rate_limits(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct rate_limits rl, got;

    make_tenant(st, "rl-a", &a);
    make_tenant(st, "rl-b", &b);
    assert_int_equal(store_rate_limits_get(st, a.id, &got), MC_ERR_OK);
    assert_int_equal(got.per_minute, 100);
    assert_int_equal(got.per_hour, 5000);
    assert_int_equal(got.per_day, 50000);
    assert_true(got.enabled);
    assert_int_equal(got.updated_at, 0);

    rl = (struct rate_limits){.per_minute = 7, .per_hour = 70, .per_day = 700, .enabled = false};
    assert_int_equal(store_rate_limits_put(st, a.id, &rl), MC_ERR_OK);
    rl.per_minute = 8; /* the second put updates the same row */
    assert_int_equal(store_rate_limits_put(st, a.id, &rl), MC_ERR_OK);
    assert_int_equal(store_rate_limits_get(st, a.id, &got), MC_ERR_OK);
    assert_int_equal(got.per_minute, 8);
    assert_int_equal(got.per_hour, 70);
    assert_int_equal(got.per_day, 700);
    assert_false(got.enabled);
    assert_true(got.updated_at > 0);
    assert_int_equal(got.per_second, 0); /* none unless set */
    rl.per_second = 14;
    assert_int_equal(store_rate_limits_put(st, a.id, &rl), MC_ERR_OK);
    assert_int_equal(store_rate_limits_get(st, a.id, &got), MC_ERR_OK);
    assert_int_equal(got.per_second, 14);
    rl.per_second = 0;

    /* Tenant B still has the defaults. */
    assert_int_equal(store_rate_limits_get(st, b.id, &got), MC_ERR_OK);
    assert_int_equal(got.per_minute, 100);
    assert_true(got.enabled);

    assert_int_equal(store_rate_limits_put(st, "00000000-0000-4000-8000-000000000000", &rl),
                     MC_ERR_NOT_FOUND);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_settings(void **state)
{
    struct store *st = st_of(state);
    char *v = NULL;

    assert_int_equal(store_setting_get(st, "t.one", &v), MC_ERR_NOT_FOUND);
    assert_int_equal(store_setting_init(st, "t.one", "first"), MC_ERR_OK);
    assert_int_equal(store_setting_init(st, "t.one", "second"), MC_ERR_CONFLICT);
    assert_int_equal(store_setting_get(st, "t.one", &v), MC_ERR_OK);
    assert_string_equal(v, "first");
    free(v);
}

/* ---- counters kept by the schema's triggers ---- */

static void
exec_sql(struct store *st, const char *sql, const struct db_param *p, int np)
{
    struct db d;

    assert_int_equal(db_get(st, &d), MC_ERR_OK);
    assert_int_equal(db_exec(&d, sql, p, np, NULL), MC_ERR_OK);
    db_put(&d);
}

static void
make_list(struct store *st, const char *tenant_id, char id[MC_UUID_LEN + 1])
{
    crypto_uuid(id);
    struct db_param p[] = {P_TEXT(id), P_TEXT(tenant_id), P_TIME(time_now_us())};
    exec_sql(st,
             "INSERT INTO recipient_lists (id, tenant_id, name, created_at, updated_at) "
             "VALUES ($1, $2, 'l', $3, $3)",
             p, NPARAMS(p));
}

static void
add_recipient(struct store *st, const char *tenant_id, const char *list_id, const char *email,
              const char *status, char id[MC_UUID_LEN + 1])
{
    crypto_uuid(id);
    struct db_param p[] = {P_TEXT(id),     P_TEXT(tenant_id), P_TEXT(list_id),
                           P_TEXT(email),  P_TEXT(status),    P_TIME(time_now_us()),
                           P_TEXT(email)};
    exec_sql(st,
             "INSERT INTO recipients (id, tenant_id, recipient_list_id, email, email_lc, status, "
             "subscribed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $7, $5, $6, "
             "$6, $6)",
             p, NPARAMS(p));
}

#define LIST_COUNT "SELECT recipient_count FROM recipient_lists WHERE id = $1"
#define LIST_ACTIVE "SELECT active_count FROM recipient_lists WHERE id = $1"

static void
test_list_counts_two_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    char la[37], lb[37], r1[37], r2[37], r3[37], rb[37];

    make_tenant(st, "cnt-a", &a);
    make_tenant(st, "cnt-b", &b);
    make_list(st, a.id, la);
    make_list(st, b.id, lb);
    add_recipient(st, a.id, la, "one@example.com", "active", r1);
    add_recipient(st, a.id, la, "two@example.com", "active", r2);
    add_recipient(st, a.id, la, "three@example.com", "bounced", r3);
    add_recipient(st, b.id, lb, "one@example.com", "active", rb);
    assert_int_equal(one_int(st, LIST_COUNT, la), 3);
    assert_int_equal(one_int(st, LIST_ACTIVE, la), 2);
    assert_int_equal(one_int(st, LIST_COUNT, lb), 1);

    /* Case-insensitive uniqueness within a list; other lists unaffected. */
    {
        char dup[37];
        struct db d;
        crypto_uuid(dup);
        struct db_param p[] = {P_TEXT(dup), P_TEXT(a.id), P_TEXT(la), P_TIME(time_now_us())};
        assert_int_equal(db_get(st, &d), MC_ERR_OK);
        assert_int_equal(db_exec(&d,
                                 "INSERT INTO recipients (id, tenant_id, recipient_list_id, "
                                 "email, email_lc, subscribed_at, created_at, updated_at) "
                                 "VALUES ($1, $2, $3, 'ONE@example.com', 'one@example.com', $4, "
                                 "$4, $4)",
                                 p, NPARAMS(p), NULL),
                         MC_ERR_CONFLICT);
        db_put(&d);
    }
    assert_int_equal(one_int(st, LIST_COUNT, la), 3);

    struct db_param pu[] = {P_TEXT(r1)};
    exec_sql(st, "UPDATE recipients SET status = 'unsubscribed' WHERE id = $1", pu, 1);
    assert_int_equal(one_int(st, LIST_COUNT, la), 3);
    assert_int_equal(one_int(st, LIST_ACTIVE, la), 1);
    exec_sql(st, "UPDATE recipients SET name = 'renamed' WHERE id = $1", pu, 1);
    assert_int_equal(one_int(st, LIST_ACTIVE, la), 1);

    /* One statement changing many rows (a bulk path). */
    struct db_param pl[] = {P_TEXT(la)};
    exec_sql(st, "UPDATE recipients SET status = 'active' WHERE recipient_list_id = $1", pl, 1);
    assert_int_equal(one_int(st, LIST_ACTIVE, la), 3);
    struct db_param pd[] = {P_TEXT(r2)};
    exec_sql(st, "DELETE FROM recipients WHERE id = $1", pd, 1);
    assert_int_equal(one_int(st, LIST_COUNT, la), 2);
    assert_int_equal(one_int(st, LIST_ACTIVE, la), 2);

    /* Tenant B's list never moved. */
    assert_int_equal(one_int(st, LIST_COUNT, lb), 1);
    assert_int_equal(one_int(st, LIST_ACTIVE, lb), 1);
    (void)r3;
    (void)rb;
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_campaign_counts(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    char list[37], camp[37], r[4][37];
    int64_t now = time_now_us();

    make_tenant(st, "camp-a", &a);
    make_list(st, a.id, list);
    crypto_uuid(camp);
    struct db_param pc[] = {P_TEXT(camp), P_TEXT(a.id), P_TEXT(list), P_TIME(now)};
    exec_sql(st,
             "INSERT INTO campaigns (id, tenant_id, name, subject, from_address, "
             "recipient_list_id, created_at, updated_at) "
             "VALUES ($1, $2, 'c', 's', 'a@example.com', $3, $4, $4)",
             pc, NPARAMS(pc));
    for (int i = 0; i < 4; i++) {
        char email[32];
        snprintf(email, sizeof(email), "r%d@example.com", i);
        add_recipient(st, a.id, list, email, "active", r[i]);
    }
    /* Materialise with one INSERT ... SELECT, as the campaign engine will. */
    struct db_param pm[] = {P_TEXT(camp), P_TEXT(list), P_TIME(now)};
    exec_sql(st,
             "INSERT INTO scheduled_messages (id, tenant_id, campaign_id, recipient_id, "
             "to_address, next_attempt_at, created_at, updated_at) "
             "SELECT r.id, r.tenant_id, $1, r.id, r.email, $3, $3, $3 FROM recipients r "
             "WHERE r.recipient_list_id = $2",
             pm, NPARAMS(pm));
    assert_int_equal(one_int(st, "SELECT pending_count FROM campaigns WHERE id = $1", camp), 4);

    struct db_param p0[] = {P_TEXT(r[0])};
    exec_sql(st, "UPDATE scheduled_messages SET status = 'sending' WHERE id = $1", p0, 1);
    exec_sql(st, "UPDATE scheduled_messages SET status = 'sent' WHERE id = $1", p0, 1);
    struct db_param p1[] = {P_TEXT(r[1])};
    exec_sql(st, "UPDATE scheduled_messages SET status = 'failed' WHERE id = $1", p1, 1);
    struct db_param pcx[] = {P_TEXT(camp)};
    exec_sql(st,
             "UPDATE scheduled_messages SET status = 'cancelled' "
             "WHERE campaign_id = $1 AND status = 'pending'",
             pcx, 1);
    assert_int_equal(one_int(st, "SELECT pending_count FROM campaigns WHERE id = $1", camp), 0);
    assert_int_equal(one_int(st, "SELECT sending_count FROM campaigns WHERE id = $1", camp), 0);
    assert_int_equal(one_int(st, "SELECT sent_count FROM campaigns WHERE id = $1", camp), 1);
    assert_int_equal(one_int(st, "SELECT failed_count FROM campaigns WHERE id = $1", camp), 1);
    assert_int_equal(one_int(st, "SELECT cancelled_count FROM campaigns WHERE id = $1", camp), 2);

    /* UNIQUE(campaign_id, recipient_id): a second message for a recipient is refused. */
    {
        char dup[37];
        struct db d;
        crypto_uuid(dup);
        struct db_param pdup[] = {P_TEXT(dup), P_TEXT(a.id), P_TEXT(camp), P_TEXT(r[2]),
                                  P_TIME(now)};
        assert_int_equal(db_get(st, &d), MC_ERR_OK);
        assert_int_equal(db_exec(&d,
                                 "INSERT INTO scheduled_messages (id, tenant_id, campaign_id, "
                                 "recipient_id, to_address, next_attempt_at, created_at, "
                                 "updated_at) VALUES ($1, $2, $3, $4, 'x@example.com', $5, $5, $5)",
                                 pdup, NPARAMS(pdup), NULL),
                         MC_ERR_CONFLICT);
        db_put(&d);
    }
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = $1",
                             camp),
                     4);
    tenant_cleanup(&a);
}

/* ---- lists, recipients, imports, suppression ---- */

static void
new_list(struct store *st, const char *tenant_id, const char *name, struct recipient_list *l)
{
    memset(l, 0, sizeof(*l));
    memcpy(l->tenant_id, tenant_id, MC_UUID_LEN + 1);
    l->name = xstrdup(name);
    assert_int_equal(store_list_create(st, l), MC_ERR_OK);
}

static mc_err
new_recipient(struct store *st, const char *tenant_id, const char *list_id, const char *email,
              struct recipient *x)
{
    char lc[300];
    size_t i;

    for (i = 0; email[i]; i++)
        lc[i] = (char)((email[i] >= 'A' && email[i] <= 'Z') ? email[i] - 'A' + 'a' : email[i]);
    lc[i] = '\0';
    memset(x, 0, sizeof(*x));
    x->email = xstrdup(email);
    x->email_lc = xstrdup(lc);
    return store_recipient_create(st, tenant_id, list_id, x);
}

static void
test_lists_two_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, got = {0};
    struct recipient_list_vec v = {0};
    struct page pg = {.limit = 10, .offset = 0};
    struct list_patch lp = {.name = "Renamed", .set_description = true, .description = "d"};

    make_tenant(st, "lists-a", &a);
    make_tenant(st, "lists-b", &b);
    new_list(st, a.id, "News", &la);
    assert_string_equal(la.metadata, "{}");
    assert_int_equal(store_list_get(st, b.id, la.id, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_list_update(st, b.id, la.id, &lp, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_list_delete(st, b.id, la.id), MC_ERR_NOT_FOUND);
    assert_int_equal(store_list_list(st, b.id, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    recipient_list_vec_cleanup(&v);

    assert_int_equal(store_list_update(st, a.id, la.id, &lp, &got), MC_ERR_OK);
    assert_string_equal(got.name, "Renamed");
    assert_string_equal(got.description, "d");
    recipient_list_cleanup(&got);
    struct list_patch clear = {.set_description = true};
    assert_int_equal(store_list_update(st, a.id, la.id, &clear, &got), MC_ERR_OK);
    assert_string_equal(got.name, "Renamed");
    assert_null(got.description);
    recipient_list_cleanup(&got);

    /* A list under a scheduled campaign cannot be deleted; under a draft it can. */
    char camp[37];
    crypto_uuid(camp);
    struct db_param pc[] = {P_TEXT(camp), P_TEXT(a.id), P_TEXT(la.id), P_TIME(time_now_us())};
    exec_sql(st,
             "INSERT INTO campaigns (id, tenant_id, name, subject, from_address, "
             "recipient_list_id, status, created_at, updated_at) "
             "VALUES ($1, $2, 'c', 's', 'a@example.com', $3, 'scheduled', $4, $4)",
             pc, NPARAMS(pc));
    assert_int_equal(store_list_delete(st, a.id, la.id), MC_ERR_STATE);
    struct db_param pd[] = {P_TEXT(camp)};
    exec_sql(st, "UPDATE campaigns SET status = 'draft' WHERE id = $1", pd, 1);
    assert_int_equal(store_list_delete(st, a.id, la.id), MC_ERR_OK);
    assert_int_equal(store_list_get(st, a.id, la.id, &got), MC_ERR_NOT_FOUND);
    recipient_list_cleanup(&la);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_recipients_two_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct recipient x, y, got = {0};
    struct recipient_vec v = {0};
    struct recipient_filter f = {.status = -1};
    struct page pg = {.limit = 10, .offset = 0};

    make_tenant(st, "rcpt-a", &a);
    make_tenant(st, "rcpt-b", &b);
    new_list(st, a.id, "A", &la);
    new_list(st, b.id, "B", &lb);
    assert_int_equal(new_recipient(st, a.id, la.id, "Ann@example.com", &x), MC_ERR_OK);
    assert_int_equal(x.status, RCPT_ACTIVE);
    assert_string_equal(x.attributes, "{}");
    recipient_cleanup(&got);
    assert_int_equal(new_recipient(st, a.id, la.id, "ANN@example.com", &got), MC_ERR_CONFLICT);
    recipient_cleanup(&got);
    /* Tenant B cannot add to, read or change tenant A's list. */
    assert_int_equal(new_recipient(st, b.id, la.id, "b@example.com", &got), MC_ERR_NOT_FOUND);
    recipient_cleanup(&got);
    assert_int_equal(store_recipient_get(st, b.id, la.id, x.id, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_recipient_delete(st, b.id, la.id, x.id), MC_ERR_NOT_FOUND);
    assert_int_equal(store_recipient_list(st, b.id, la.id, &f, &pg, &v), MC_ERR_NOT_FOUND);

    assert_int_equal(new_recipient(st, a.id, la.id, "bob@example.org", &y), MC_ERR_OK);
    struct recipient_patch rp = {.has_status = true, .status = RCPT_UNSUBSCRIBED,
                                 .set_name = true, .name = "Bob"};
    assert_int_equal(store_recipient_update(st, a.id, la.id, y.id, &rp, &got), MC_ERR_OK);
    assert_int_equal(got.status, RCPT_UNSUBSCRIBED);
    assert_true(got.unsubscribed_at > 0);
    assert_string_equal(got.name, "Bob");
    recipient_cleanup(&got);

    f.q = "ann";
    assert_int_equal(store_recipient_list(st, a.id, la.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 1);
    assert_string_equal(v.items[0].id, x.id);
    recipient_vec_cleanup(&v);
    f.q = "bo%";  /* % is literal */
    assert_int_equal(store_recipient_list(st, a.id, la.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    recipient_vec_cleanup(&v);
    f.q = NULL;
    f.status = RCPT_UNSUBSCRIBED;
    assert_int_equal(store_recipient_list(st, a.id, la.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 1);
    assert_string_equal(v.items[0].id, y.id);
    recipient_vec_cleanup(&v);

    /* The keyset walk visits every row once, in id order. */
    struct recipient_vec p1 = {0}, p2 = {0}, p3 = {0};
    assert_int_equal(store_recipient_after(st, a.id, la.id, -1, NULL, 1, &p1), MC_ERR_OK);
    assert_int_equal(p1.n, 1);
    assert_int_equal(store_recipient_after(st, a.id, la.id, -1, p1.items[0].id, 1, &p2), MC_ERR_OK);
    assert_int_equal(p2.n, 1);
    assert_true(strcmp(p1.items[0].id, p2.items[0].id) < 0);
    assert_int_equal(store_recipient_after(st, a.id, la.id, -1, p2.items[0].id, 1, &p3), MC_ERR_OK);
    assert_int_equal(p3.n, 0);
    recipient_vec_cleanup(&p1);
    recipient_vec_cleanup(&p2);
    recipient_vec_cleanup(&p3);

    assert_int_equal(store_recipient_delete(st, a.id, la.id, x.id), MC_ERR_OK);
    struct recipient_list after = {0};
    assert_int_equal(store_list_get(st, a.id, la.id, &after), MC_ERR_OK);
    assert_int_equal(after.recipient_count, 1);
    assert_int_equal(after.active_count, 0);
    recipient_list_cleanup(&after);
    recipient_cleanup(&x);
    recipient_cleanup(&y);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_import_and_suppression(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, la2, lb, got = {0};
    struct recipient x = {0};
    struct import_counts c = {0};
    bool created = false;

    make_tenant(st, "imp-a", &a);
    make_tenant(st, "imp-b", &b);
    new_list(st, a.id, "A", &la);
    new_list(st, a.id, "A2", &la2);
    new_list(st, b.id, "B", &lb);
    assert_int_equal(store_unsub_add(st, a.id, "gone@example.com", "gone@example.com",
                                     UNSUB_MANUAL, NULL, "asked", &created, NULL),
                     MC_ERR_OK);
    assert_true(created);

    struct import_row rows[] = {
        {"one@example.com", "one@example.com", "One", NULL, NULL, "{\"city\":\"Oslo\"}"},
        {"Two@example.com", "two@example.com", NULL, "T", "Wo", NULL},
        {"gone@example.com", "gone@example.com", NULL, NULL, NULL, NULL},
    };
    assert_int_equal(store_recipient_import(st, a.id, la.id, IMPORT_SKIP, rows, 3, &c), MC_ERR_OK);
    assert_int_equal(c.imported, 2);
    assert_int_equal(c.skipped_suppressed, 1);
    /* Again, as skip: duplicates; as upsert: updates with merged attributes. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_recipient_import(st, a.id, la.id, IMPORT_SKIP, rows, 3, &c), MC_ERR_OK);
    assert_int_equal(c.imported, 0);
    assert_int_equal(c.skipped_duplicates, 2);
    struct import_row up[] = {
        {"one@example.com", "one@example.com", "Uno", NULL, NULL, "{\"plan\":\"pro\"}"},
        {"three@example.com", "three@example.com", NULL, NULL, NULL, NULL},
    };
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_recipient_import(st, a.id, la.id, IMPORT_UPSERT, up, 2, &c), MC_ERR_OK);
    assert_int_equal(c.imported, 1);
    assert_int_equal(c.updated, 1);
    struct recipient_filter f = {.status = -1, .q = "one@"};
    struct page pg = {.limit = 5, .offset = 0};
    struct recipient_vec v = {0};
    assert_int_equal(store_recipient_list(st, a.id, la.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.items[0].name, "Uno");
    assert_non_null(strstr(v.items[0].attributes, "Oslo"));
    assert_non_null(strstr(v.items[0].attributes, "pro"));
    recipient_vec_cleanup(&v);
    assert_int_equal(store_list_get(st, a.id, la.id, &got), MC_ERR_OK);
    assert_int_equal(got.recipient_count, 3);
    assert_int_equal(got.active_count, 3);
    recipient_list_cleanup(&got);

    /* Tenant B cannot import into tenant A's list. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_recipient_import(st, b.id, la.id, IMPORT_SKIP, up + 1, 1, &c),
                     MC_ERR_NOT_FOUND);
    assert_int_equal(c.imported, 0);
    assert_int_equal(store_list_get(st, a.id, la.id, &got), MC_ERR_OK);
    assert_int_equal(got.recipient_count, 3);
    recipient_list_cleanup(&got);

    /* A single add of a suppressed address is stored unsubscribed. */
    assert_int_equal(new_recipient(st, a.id, la2.id, "GONE@example.com", &x), MC_ERR_OK);
    assert_int_equal(x.status, RCPT_UNSUBSCRIBED);
    struct recipient_patch act = {.has_status = true, .status = RCPT_ACTIVE};
    struct recipient y = {0};
    assert_int_equal(store_recipient_update(st, a.id, la2.id, x.id, &act, &y), MC_ERR_STATE);
    recipient_cleanup(&x);

    /* Suppressing marks the address in every list of the tenant, not in another tenant's. */
    assert_int_equal(new_recipient(st, a.id, la2.id, "one@example.com", &x), MC_ERR_OK);
    recipient_cleanup(&x);
    assert_int_equal(new_recipient(st, b.id, lb.id, "one@example.com", &x), MC_ERR_OK);
    recipient_cleanup(&x);
    assert_int_equal(store_unsub_add(st, a.id, "ONE@example.com", "one@example.com", UNSUB_LINK,
                                     NULL, NULL, &created, NULL),
                     MC_ERR_OK);
    assert_true(created);
    assert_int_equal(store_list_get(st, a.id, la.id, &got), MC_ERR_OK);
    assert_int_equal(got.active_count, 2);
    recipient_list_cleanup(&got);
    assert_int_equal(store_list_get(st, a.id, la2.id, &got), MC_ERR_OK);
    assert_int_equal(got.active_count, 0);
    recipient_list_cleanup(&got);
    assert_int_equal(store_list_get(st, b.id, lb.id, &got), MC_ERR_OK);
    assert_int_equal(got.active_count, 1);
    recipient_list_cleanup(&got);
    assert_int_equal(store_unsub_add(st, a.id, "one@example.com", "one@example.com", UNSUB_MANUAL,
                                     NULL, "again", &created, NULL),
                     MC_ERR_OK);
    assert_false(created);

    /* Listing, filtering, deleting; tenant B sees none of it. */
    struct unsubscribe_vec uv = {0};
    assert_int_equal(store_unsub_list(st, a.id, UNSUB_LINK, NULL, &pg, &uv), MC_ERR_OK);
    assert_int_equal(uv.total, 1);
    assert_string_equal(uv.items[0].email, "ONE@example.com");
    assert_string_equal(uv.items[0].reason, "again");
    unsubscribe_vec_cleanup(&uv);
    assert_int_equal(store_unsub_list(st, b.id, -1, NULL, &pg, &uv), MC_ERR_OK);
    assert_int_equal(uv.total, 0);
    unsubscribe_vec_cleanup(&uv);
    assert_int_equal(store_unsub_delete(st, b.id, "one@example.com"), MC_ERR_NOT_FOUND);
    assert_int_equal(store_unsub_delete(st, a.id, "one@example.com"), MC_ERR_OK);
    assert_int_equal(store_unsub_delete(st, a.id, "one@example.com"), MC_ERR_NOT_FOUND);
    assert_int_equal(store_list_get(st, a.id, la2.id, &got), MC_ERR_OK);
    assert_int_equal(got.active_count, 0); /* rows stay as they are */
    recipient_list_cleanup(&got);

    /* A batch import of addresses. */
    int64_t added = 0, dups = 0;
    struct import_row ur[] = {{"gone@example.com", "gone@example.com", NULL, NULL, NULL, NULL},
                              {"three@example.com", "three@example.com", NULL, NULL, NULL, NULL}};
    const char *reasons[] = {NULL, "bulk"};
    assert_int_equal(store_unsub_import(st, a.id, ur, reasons, 2, &added, &dups), MC_ERR_OK);
    assert_int_equal(added, 1);
    assert_int_equal(dups, 1);
    assert_int_equal(store_list_get(st, a.id, la.id, &got), MC_ERR_OK);
    assert_int_equal(got.active_count, 1);
    recipient_list_cleanup(&got);

    recipient_list_cleanup(&la);
    recipient_list_cleanup(&la2);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/* ---- campaigns ---- */

/* A new list "L" with n recipients PREFIXnn@example.com. */
static void
list_with(struct store *st, const char *tenant_id, const char *prefix, int n,
          struct recipient_list *l)
{
    struct recipient x = {0};
    char email[64];

    new_list(st, tenant_id, "L", l);
    for (int i = 0; i < n; i++) {
        snprintf(email, sizeof(email), "%s%02d@example.com", prefix, i);
        assert_int_equal(new_recipient(st, tenant_id, l->id, email, &x), MC_ERR_OK);
        recipient_cleanup(&x);
    }
}

static void
new_campaign(struct store *st, const char *tenant_id, const char *list_id, struct campaign *c)
{
    memset(c, 0, sizeof(*c));
    memcpy(c->tenant_id, tenant_id, MC_UUID_LEN + 1);
    if (list_id)
        memcpy(c->list_id, list_id, MC_UUID_LEN + 1);
    c->name = xstrdup("Winter");
    c->subject = xstrdup("Hi {{name}}");
    c->from_address = xstrdup("news@example.com");
    c->text_body = xstrdup("Hello");
    assert_int_equal(store_campaign_create(st, c), MC_ERR_OK);
}

static void
set_status(struct store *st, const char *id, const char *status)
{
    struct db_param p[] = {P_TEXT(id), P_TEXT(status)};
    exec_sql(st, "UPDATE campaigns SET status = $2 WHERE id = $1", p, NPARAMS(p));
}

/* True when id is a canonical version 7 UUID (RFC 9562: version nibble 7, variant 10). */
static bool
is_uuid7(const char *id)
{
    return crypto_uuid_valid(id) && id[14] == '7' && strchr("89ab", id[19]) != NULL;
}

/*
 * New recipients get time-ordered ids, so walking a list by id (as the
 * campaign engine does) meets them in the order they were written, and a
 * batch that mixes new, duplicate and suppressed rows counts each once.
 */
static void
test_import_ids_time_ordered(void **state)
{
    struct store *st = st_of(state);
    enum { N = 40 };
    struct tenant a;
    struct recipient_list l, got = {0};
    struct recipient x = {0};
    struct import_counts c = {0};
    struct import_row rows[N];
    char email[N][32];
    bool created = false;

    make_tenant(st, "ord-a", &a);
    new_list(st, a.id, "ordered", &l);
    assert_int_equal(store_unsub_add(st, a.id, "sup@example.com", "sup@example.com",
                                     UNSUB_MANUAL, NULL, NULL, &created, NULL),
                     MC_ERR_OK);
    /* Addresses in descending order, so id order cannot come from them. */
    for (int i = 0; i < N; i++) {
        snprintf(email[i], sizeof(email[i]), "r%02d@example.com", N - i);
        rows[i] = (struct import_row){email[i], email[i], NULL, NULL, NULL, NULL};
    }
    assert_int_equal(store_recipient_import(st, a.id, l.id, IMPORT_SKIP, rows, N / 2, &c),
                     MC_ERR_OK);
    assert_int_equal(c.imported, N / 2);
    /* A second batch: one repeat of the first, one suppressed address, the rest new. */
    struct import_row mixed[N / 2 + 2];
    memcpy(mixed, rows + N / 2, sizeof(rows[0]) * (N / 2));
    mixed[N / 2] = rows[0];
    mixed[N / 2 + 1] = (struct import_row){"sup@example.com", "sup@example.com", NULL, NULL,
                                           NULL, NULL};
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_recipient_import(st, a.id, l.id, IMPORT_SKIP, mixed, N / 2 + 2, &c),
                     MC_ERR_OK);
    assert_int_equal(c.imported, N / 2);
    assert_int_equal(c.skipped_duplicates, 1);
    assert_int_equal(c.skipped_suppressed, 1);
    /* A single add after the imports. */
    assert_int_equal(new_recipient(st, a.id, l.id, "last@example.com", &x), MC_ERR_OK);
    assert_true(is_uuid7(x.id));

    struct recipient_vec v = {0};
    assert_int_equal(store_recipient_after(st, a.id, l.id, -1, NULL, N + 10, &v), MC_ERR_OK);
    assert_int_equal(v.n, N + 1);
    for (int i = 0; i < N; i++) {
        assert_true(is_uuid7(v.items[i].id));
        assert_string_equal(v.items[i].email, email[i]);
    }
    assert_string_equal(v.items[N].id, x.id);
    recipient_vec_cleanup(&v);
    recipient_cleanup(&x);

    assert_int_equal(store_list_get(st, a.id, l.id, &got), MC_ERR_OK);
    assert_int_equal(got.recipient_count, N + 1);
    assert_int_equal(got.active_count, N + 1);
    recipient_list_cleanup(&got);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
}

static void
test_campaign_state_machine(void **state)
{
    /* allowed[event][status]: 1 when the event may leave that status. */
    static const int allowed[6][7] = {
        /*               draft sched send pause compl cancel fail */
        [CEV_SCHEDULE] = {1, 0, 0, 0, 0, 0, 0},
        [CEV_SEND] = {1, 1, 0, 0, 0, 0, 0},
        [CEV_PAUSE] = {0, 0, 1, 0, 0, 0, 0},
        [CEV_RESUME] = {0, 0, 0, 1, 0, 0, 0},
        [CEV_CANCEL] = {0, 1, 1, 1, 0, 0, 0},
        [CEV_START] = {0, 1, 0, 0, 0, 0, 0},
    };
    static const enum campaign_status to[6] = {CAMP_SCHEDULED, CAMP_SENDING, CAMP_PAUSED,
                                               CAMP_SENDING,   CAMP_CANCELLED, CAMP_SENDING};
    struct store *st = st_of(state);
    struct tenant a, b;
    struct campaign c, got = {0};

    make_tenant(st, "sm-a", &a);
    make_tenant(st, "sm-b", &b);
    new_campaign(st, a.id, NULL, &c);
    assert_int_equal(c.status, CAMP_DRAFT);
    for (int ev = 0; ev < 6; ev++) {
        for (int s = 0; s < 7; s++) {
            enum campaign_status cur = CAMP_DRAFT;
            set_status(st, c.id, campaign_status_str(s));
            /* Another tenant can never move it. */
            assert_int_equal(store_campaign_transition(st, b.id, c.id, ev, 0, NULL, &cur),
                             MC_ERR_NOT_FOUND);
            mc_err err = store_campaign_transition(st, a.id, c.id, ev, 0, &got, &cur);
            if (allowed[ev][s]) {
                if (err != MC_ERR_OK)
                    fail_msg("event %d from %s refused", ev, campaign_status_str(s));
                assert_int_equal(got.status, to[ev]);
                campaign_cleanup(&got);
            } else {
                if (err != MC_ERR_STATE)
                    fail_msg("event %d from %s allowed", ev, campaign_status_str(s));
                assert_int_equal(cur, s);
            }
        }
    }
    campaign_cleanup(&c);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_campaign_crud_two_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct campaign c, got = {0};
    struct campaign_vec v = {0};
    struct page pg = {.limit = 10, .offset = 0};
    enum campaign_status cur;

    make_tenant(st, "cc-a", &a);
    make_tenant(st, "cc-b", &b);
    new_list(st, a.id, "A", &la);
    new_list(st, b.id, "B", &lb);
    /* Tenant A cannot point a campaign at tenant B's list. */
    struct campaign bad = {0};
    memcpy(bad.tenant_id, a.id, sizeof(bad.tenant_id));
    memcpy(bad.list_id, lb.id, sizeof(bad.list_id));
    bad.name = xstrdup("x");
    bad.subject = xstrdup("x");
    bad.from_address = xstrdup("x@example.com");
    assert_int_equal(store_campaign_create(st, &bad), MC_ERR_NOT_FOUND);
    campaign_cleanup(&bad);

    new_campaign(st, a.id, la.id, &c);
    assert_string_equal(c.list_id, la.id);
    assert_string_equal(c.tags, "[]");
    assert_int_equal(store_campaign_get(st, b.id, c.id, &got), MC_ERR_NOT_FOUND);
    assert_int_equal(store_campaign_list(st, b.id, -1, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    campaign_vec_cleanup(&v);
    assert_int_equal(store_campaign_delete(st, b.id, c.id, &cur), MC_ERR_NOT_FOUND);

    /* Updates apply to drafts only. */
    free(c.subject);
    c.subject = xstrdup("New subject");
    c.rate_limit_per_minute = 60;
    assert_int_equal(store_campaign_update(st, &c, &cur), MC_ERR_OK);
    assert_int_equal(store_campaign_get(st, a.id, c.id, &got), MC_ERR_OK);
    assert_string_equal(got.subject, "New subject");
    assert_int_equal(got.rate_limit_per_minute, 60);
    campaign_cleanup(&got);
    memcpy(c.list_id, lb.id, sizeof(c.list_id));
    assert_int_equal(store_campaign_update(st, &c, &cur), MC_ERR_NOT_FOUND);
    memcpy(c.list_id, la.id, sizeof(c.list_id));
    set_status(st, c.id, "sending");
    assert_int_equal(store_campaign_update(st, &c, &cur), MC_ERR_STATE);
    assert_int_equal(cur, CAMP_SENDING);
    assert_int_equal(store_campaign_delete(st, a.id, c.id, &cur), MC_ERR_STATE);
    assert_int_equal(cur, CAMP_SENDING);
    set_status(st, c.id, "completed");
    assert_int_equal(store_campaign_delete(st, a.id, c.id, &cur), MC_ERR_OK);
    assert_int_equal(store_campaign_get(st, a.id, c.id, &got), MC_ERR_NOT_FOUND);

    campaign_cleanup(&c);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_materialize_and_complete(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    struct recipient_list l;
    struct campaign c, got = {0};
    struct recipient x = {0};
    struct campaign_ref ref;
    int64_t inserted, total = 0;
    bool done = false, created;
    int n, rounds = 0;
    char email[64];

    make_tenant(st, "mat-a", &a);
    new_list(st, a.id, "L", &l);
    for (int i = 0; i < 25; i++) {
        snprintf(email, sizeof(email), "m%02d@example.com", i);
        assert_int_equal(new_recipient(st, a.id, l.id, email, &x), MC_ERR_OK);
        recipient_cleanup(&x);
    }
    /* One suppressed, one unsubscribed in the list: neither gets a message. */
    assert_int_equal(store_unsub_add(st, a.id, "m03@example.com", "m03@example.com", UNSUB_MANUAL,
                                     NULL, NULL, &created, NULL),
                     MC_ERR_OK);
    exec_sql(st, "UPDATE recipients SET status = 'bounced' WHERE email = 'm07@example.com'", NULL,
             0);
    new_campaign(st, a.id, l.id, &c);
    memcpy(ref.id, c.id, sizeof(ref.id));
    memcpy(ref.tenant_id, a.id, sizeof(ref.tenant_id));

    /* A draft is not materialised. */
    assert_int_equal(store_engine_materialize(st, &ref, 10, 5, time_now_us(), &inserted, &done),
                     MC_ERR_OK);
    assert_true(done);
    assert_int_equal(inserted, 0);

    assert_int_equal(store_campaign_transition(st, a.id, c.id, CEV_SEND, time_now_us(), NULL, NULL),
                     MC_ERR_OK);
    struct campaign_ref todo[4];
    assert_int_equal(store_engine_to_materialize(st, 4, todo, &n), MC_ERR_OK);
    assert_true(n >= 1);
    done = false;
    while (!done) {
        assert_int_equal(store_engine_materialize(st, &ref, 10, 5, time_now_us(), &inserted, &done),
                         MC_ERR_OK);
        total += inserted;
        rounds++;
    }
    assert_int_equal(total, 23);
    assert_int_equal(rounds, 3);
    /* Running it again adds nothing. */
    assert_int_equal(store_engine_materialize(st, &ref, 10, 5, time_now_us(), &inserted, &done),
                     MC_ERR_OK);
    assert_int_equal(inserted, 0);
    assert_int_equal(store_campaign_get(st, a.id, c.id, &got), MC_ERR_OK);
    assert_int_equal(got.total_recipients, 23);
    assert_int_equal(got.counts.pending, 23);
    assert_true(got.materialized_at > 0);
    campaign_cleanup(&got);

    /* Nothing completes while messages are pending; then exactly once. */
    assert_int_equal(store_engine_complete(st, time_now_us(), &n), MC_ERR_OK);
    assert_int_equal(n, 0);
    struct db_param pc[] = {P_TEXT(c.id)};
    exec_sql(st, "UPDATE scheduled_messages SET status = 'failed' WHERE campaign_id = $1", pc, 1);
    assert_int_equal(store_engine_complete(st, time_now_us(), &n), MC_ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_engine_complete(st, time_now_us(), &n), MC_ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_campaign_get(st, a.id, c.id, &got), MC_ERR_OK);
    assert_int_equal(got.status, CAMP_FAILED); /* every message failed */
    assert_int_equal(got.counts.failed, 23);
    campaign_cleanup(&got);

    /* A scheduled campaign starts when its time comes, not before. */
    struct campaign c2;
    new_campaign(st, a.id, l.id, &c2);
    int64_t at = time_now_us() + 3600 * 1000000LL;
    assert_int_equal(store_campaign_transition(st, a.id, c2.id, CEV_SCHEDULE, at, NULL, NULL),
                     MC_ERR_OK);
    assert_int_equal(store_engine_start_due(st, time_now_us(), &n), MC_ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_engine_start_due(st, at + 1, &n), MC_ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_campaign_get(st, a.id, c2.id, &got), MC_ERR_OK);
    assert_int_equal(got.status, CAMP_SENDING);
    campaign_cleanup(&got);
    campaign_cleanup(&c2);

    campaign_cleanup(&c);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
}

/*
 * A tenant (t, owned by the caller) with limits rl and a sending campaign
 * to n recipients at DOMAIN plus n_ex at example.com, materialised; *w is
 * its work item.
 */
static void
sending_campaign(struct store *st, const char *slug, const char *domain, int n, int n_ex,
                 const struct rate_limits *rl, struct tenant *t, struct delivery_work *w)
{
    struct recipient_list l;
    struct recipient x = {0};
    struct campaign c;
    struct campaign_ref ref;
    int64_t inserted;
    bool done = false;
    char email[128];

    make_tenant(st, slug, t);
    new_list(st, t->id, "L", &l);
    for (int i = 0; i < n + n_ex; i++) {
        snprintf(email, sizeof(email), "w%02d@%s", i, i < n ? domain : "example.com");
        assert_int_equal(new_recipient(st, t->id, l.id, email, &x), MC_ERR_OK);
        recipient_cleanup(&x);
    }
    new_campaign(st, t->id, l.id, &c);
    memcpy(ref.id, c.id, sizeof(ref.id));
    memcpy(ref.tenant_id, t->id, sizeof(ref.tenant_id));
    memcpy(w->campaign_id, c.id, sizeof(w->campaign_id));
    memcpy(w->tenant_id, t->id, sizeof(w->tenant_id));
    assert_int_equal(store_rate_limits_put(st, t->id, rl), MC_ERR_OK);
    assert_int_equal(store_campaign_transition(st, t->id, c.id, CEV_SEND, time_now_us(), NULL,
                                               NULL),
                     MC_ERR_OK);
    while (!done)
        assert_int_equal(store_engine_materialize(st, &ref, 100, 5, time_now_us(), &inserted,
                                                  &done),
                         MC_ERR_OK);
    campaign_cleanup(&c);
    recipient_list_cleanup(&l);
}

/*
 * Rate windows from rate_usage buckets: per minute 5, per hour 8.  A claim
 * gets what the windows leave, a window that has passed frees its share,
 * and the recovery sweep deletes buckets no window reaches.
 */
static void
test_claim_rate_windows(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    struct delivery_work w;
    struct delivery_vec v = {0};
    struct rate_limits rl = {.per_minute = 5, .per_hour = 8, .per_day = 1000, .enabled = true};
    /* A burst as large as the windows: this test is about the windows alone. */
    const struct claim_pacing pc = {.burst = 100, .horizon_us = 1000000};
    int64_t lease = 60 * 1000000LL, t0;
    int n = 0;

    sending_campaign(st, "win-a", "example.com", 12, 0, &rl, &a, &w);
    t0 = time_now_us();

    assert_int_equal(store_delivery_claim(st, &w, "w1", t0, lease, 100, &pc, &v), MC_ERR_OK);
    assert_int_equal(v.n, 5); /* the minute's limit */
    delivery_vec_cleanup(&v);
    assert_int_equal(store_delivery_claim(st, &w, "w1", t0 + 30 * 1000000LL, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 0); /* the same minute */
    delivery_vec_cleanup(&v);
    assert_int_equal(store_delivery_claim(st, &w, "w1", t0 + 63 * 1000000LL, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 3); /* a new minute, but the hour's limit is 8 */
    delivery_vec_cleanup(&v);
    assert_int_equal(store_delivery_claim(st, &w, "w1", t0 + 7200 * 1000000LL, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 4); /* a new hour: what is left of the 12 */
    delivery_vec_cleanup(&v);
    assert_true(one_int(st, "SELECT COUNT(*) FROM rate_usage WHERE scope_id = $1", a.id) > 0);

    /* Two days on, every bucket is older than every window. */
    assert_int_equal(store_delivery_recover(st, t0 + 2 * 86400 * 1000000LL, 100, &n), MC_ERR_OK);
    assert_int_equal(n, 12); /* the leases expired too */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM rate_usage WHERE scope_id = $1", a.id), 0);

    tenant_cleanup(&a);
}

/*
 * Pacing at the claim: per_minute 600 is one slot every 100 ms; burst 3 lets
 * three go at once, the horizon (1 s) bounds how far ahead slots are
 * handed out, and the state is shared through the database (a second claim
 * continues the first one's sequence).
 */
static void
test_claim_pacing(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    struct delivery_work w;
    struct delivery_vec v = {0};
    struct rate_limits rl = {.per_minute = 600, .per_hour = 100000, .per_day = 1000000,
                             .enabled = true};
    const struct claim_pacing pc = {.burst = 3, .horizon_us = 1000000};
    /* An hour ahead: a claim's stamp never moves to the real clock. */
    int64_t lease = 7200 * 1000000LL, t0 = time_now_us() + 3600 * 1000000LL;

    sending_campaign(st, "pace-a", "example.com", 40, 0, &rl, &a, &w);
    assert_int_equal(store_delivery_claim(st, &w, "w1", t0, lease, 100, &pc, &v), MC_ERR_OK);
    assert_int_equal(v.n, 13); /* three at once, then t0 + 100 ms ... t0 + 1 s */
    for (int i = 0; i < v.n; i++) {
        int64_t want = i < 3 ? t0 : t0 + (i - 2) * 100000LL;
        assert_int_equal(v.items[i].not_before, want);
        assert_string_equal(v.items[i].site, "example.com");
    }
    delivery_vec_cleanup(&v);
    /* Nothing more within the same horizon. */
    assert_int_equal(store_delivery_claim(st, &w, "w2", t0 + 1000, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 0);
    delivery_vec_cleanup(&v);
    /* Half a second on, another worker continues the sequence. */
    assert_int_equal(store_delivery_claim(st, &w, "w2", t0 + 500000, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 5);
    for (int i = 0; i < v.n; i++)
        assert_int_equal(v.items[i].not_before, t0 + (11 + i) * 100000LL);
    delivery_vec_cleanup(&v);
    /* per_second tighter than the minute: 2 a second is one every 500 ms. */
    rl.per_second = 2;
    assert_int_equal(store_rate_limits_put(st, a.id, &rl), MC_ERR_OK);
    assert_int_equal(store_delivery_claim(st, &w, "w2", t0 + 10000000, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 5); /* three at once, then +500 ms, +1 s */
    assert_int_equal(v.items[4].not_before - v.items[3].not_before, 500000);
    delivery_vec_cleanup(&v);
    tenant_cleanup(&a);
}

/*
 * A site's rule paces its messages across tenants, and a site held back
 * never holds back another site: its rows wait (next_attempt_at moves on,
 * no attempt spent) and the other site's rows are claimed.
 */
static void
test_claim_site_pacing(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct delivery_work wa, wb;
    struct delivery_vec v = {0};
    struct rate_limits off = {.per_minute = 1, .per_hour = 1, .per_day = 1, .enabled = false};
    const struct claim_pacing pc = {.burst = 1, .horizon_us = 1000000};
    int64_t lease = 7200 * 1000000LL, t0 = time_now_us() + 3600 * 1000000LL;
    struct db_param p[] = {P_TEXT("default"), P_TEXT("site-test")};
    int google = 0, other = 0;

    exec_sql(st, "INSERT INTO site_domains (domain, site) VALUES ('pace.test', $1) "
             "ON CONFLICT (domain) DO NOTHING", p + 1, 1);
    exec_sql(st, "INSERT INTO shaping_rules (egress, site, per_second) VALUES ($1, $2, 2) "
             "ON CONFLICT (egress, site) DO NOTHING", p, NPARAMS(p));
    sending_campaign(st, "site-a", "mx.pace.test", 6, 6, &off, &a, &wa);
    sending_campaign(st, "site-b", "pace.test", 6, 0, &off, &b, &wb);
    assert_int_equal(store_delivery_claim(st, &wa, "w1", t0, lease, 100, &pc, &v), MC_ERR_OK);
    for (int i = 0; i < v.n; i++) {
        if (strcmp(v.items[i].site, "site-test") == 0)
            google++;
        else
            other++;
    }
    assert_int_equal(google, 3); /* t0, +500 ms, +1 s */
    assert_int_equal(other, 6);  /* example.com: no rule */
    delivery_vec_cleanup(&v);
    /* The other tenant shares the site's slots: nothing left in this horizon. */
    assert_int_equal(store_delivery_claim(st, &wb, "w1", t0 + 1000, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 0);
    delivery_vec_cleanup(&v);
    /* Held rows wait for their expected slot, their attempts unspent. */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM scheduled_messages WHERE tenant_id = $1 "
                                 "AND status = 'pending' AND attempts = 0 AND site = 'site-test'",
                             a.id),
                     3);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM scheduled_messages WHERE tenant_id = $1 "
                                 "AND status = 'pending' AND attempts = 0",
                             b.id),
                     6);
    /* Later, tenant B's rows get the site's next slots. */
    assert_int_equal(store_delivery_claim(st, &wb, "w1", t0 + 5000000, lease, 100, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.items[1].not_before - v.items[0].not_before, 500000);
    delivery_vec_cleanup(&v);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/*
 * A lease expiry gives the attempt back (max_attempts + 1) until max_attempts
 * reaches the cap; then a message with its attempts spent fails as poison.
 * Here: 2 attempts, cap 4 (two expiries forgiven).
 */
static void
test_lease_expiry_poison_bound(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    struct recipient_list l;
    struct recipient x = {0};
    struct campaign c;
    struct campaign_ref ref;
    struct delivery_work w;
    struct delivery_vec v = {0};
    struct rate_limits rl = {.per_minute = 1000, .per_hour = 1000, .per_day = 1000,
                             .enabled = false};
    const struct claim_pacing pc = {.burst = 1, .horizon_us = 1000000};
    int64_t inserted, lease = 1000000LL, t = 0;
    bool done = false;
    int n = 0;

    make_tenant(st, "poison", &a);
    new_list(st, a.id, "L", &l);
    assert_int_equal(new_recipient(st, a.id, l.id, "p@example.com", &x), MC_ERR_OK);
    recipient_cleanup(&x);
    new_campaign(st, a.id, l.id, &c);
    memcpy(ref.id, c.id, sizeof(ref.id));
    memcpy(ref.tenant_id, a.id, sizeof(ref.tenant_id));
    memcpy(w.campaign_id, c.id, sizeof(w.campaign_id));
    memcpy(w.tenant_id, a.id, sizeof(w.tenant_id));
    assert_int_equal(store_rate_limits_put(st, a.id, &rl), MC_ERR_OK);
    assert_int_equal(store_campaign_transition(st, a.id, c.id, CEV_SEND, time_now_us(), NULL, NULL),
                     MC_ERR_OK);
    while (!done)
        assert_int_equal(store_engine_materialize(st, &ref, 100, 2, time_now_us(), &inserted,
                                                  &done),
                         MC_ERR_OK);
    t = time_now_us();
    /* Killed mid-send four times: the first two expiries are forgiven (attempts 1 of 3,
     * 2 of 4), the third leaves attempts 3 of 4, the fourth fails it at 4 of 4. */
    for (int kill = 1; kill <= 4; kill++) {
        assert_int_equal(store_delivery_claim(st, &w, "w1", t, lease, 10, &pc, &v), MC_ERR_OK);
        assert_int_equal(v.n, 1);
        assert_int_equal(v.items[0].attempts, kill);
        delivery_vec_cleanup(&v);
        t += 2 * lease;
        assert_int_equal(store_delivery_recover(st, t, 4, &n), MC_ERR_OK);
        assert_int_equal(n, 1);
        if (kill < 4) {
            assert_int_equal(one_int(st, "SELECT COUNT(*) FROM scheduled_messages WHERE "
                                         "campaign_id = $1 AND status = 'pending'", c.id),
                             1);
        }
        t += 1;
    }
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = $1 "
                                 "AND status = 'failed' AND max_attempts = 4 AND attempts = 4",
                             c.id),
                     1);
    campaign_cleanup(&c);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
}

/* ---- bounces ---- */

/* A message of campaign c to recipient x, already sent. */
static void
sent_message(struct store *st, const char *tenant_id, const char *campaign_id,
             const struct recipient *x, int64_t sent_at, char id[MC_UUID_LEN + 1])
{
    crypto_uuid7(id);
    struct db_param p[] = {P_TEXT(id), P_TEXT(tenant_id), P_TEXT(campaign_id), P_TEXT(x->id),
                           P_TEXT(x->email), P_TIME(sent_at)};
    exec_sql(st,
             "INSERT INTO scheduled_messages (id, tenant_id, campaign_id, recipient_id, "
             "to_address, status, next_attempt_at, sent_at, created_at, updated_at) VALUES "
             "($1, $2, $3, $4, $5, 'sent', $6, $6, $6, $6)",
             p, NPARAMS(p));
}

static enum bounce_outcome
report(struct store *st, const char *tenant_id, const char *msg, const char *kind,
       const char *email, const char *cls, struct bounce_applied *a)
{
    struct bounce_item it = {email, cls, "5.1.1", "failed", "550 5.1.1 user unknown", NULL};
    struct bounce_report_in in = {.tenant_id = tenant_id,
                                  .message_id = msg,
                                  .kind = kind,
                                  .source = "smtp",
                                  .raw = "From: MAILER-DAEMON\r\n\r\nraw",
                                  .items = &it,
                                  .n = 1,
                                  .now = time_now_us()};

    assert_int_equal(store_bounce_record(st, &in, a), MC_ERR_OK);
    assert_int_equal(a->n, 1);
    return a->items[0].outcome;
}

static enum unsub_cause
suppressed_for(struct store *st, const char *tenant_id, const char *email_lc, int64_t *expires)
{
    struct unsubscribe u = {0};
    enum unsub_cause c;

    if (store_unsub_get(st, tenant_id, email_lc, &u) != MC_ERR_OK)
        return (enum unsub_cause)-1;
    c = u.cause;
    if (expires)
        *expires = u.expires_at;
    unsubscribe_cleanup(&u);
    return c;
}

static const char *
rcpt_status(struct store *st, const char *id)
{
    static const char *const names[] = {"active", "unsubscribed", "bounced", "complained"};
    return names[one_int(st,
                         "SELECT CASE status WHEN 'active' THEN 0 WHEN 'unsubscribed' THEN 1 "
                         "WHEN 'bounced' THEN 2 ELSE 3 END FROM recipients WHERE id = $1",
                         id)];
}

/*
 * Group commit: a batch of reports is one transaction, all or nothing; a
 * report later in the batch sees what an earlier one wrote (the second
 * report about the same message is a duplicate).
 */
static void
test_bounce_batch_all_or_nothing(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct recipient x = {0}, y = {0};
    struct campaign ca, cb;
    struct bounce_applied outs[3];
    char ma[MC_UUID_LEN + 1], mb[MC_UUID_LEN + 1];
    int64_t now = time_now_us();
    struct bounce_item hard = {"gc@example.com", "hard", "5.1.1", "failed", "550 5.1.1", NULL};
    struct bounce_item soft = {NULL, "soft", "4.2.2", "failed", "452 full", NULL};
    struct bounce_report_in r0 = {.message_id = NULL, .kind = "dsn", .source = "smtp",
                                  .raw = "raw", .items = &hard, .n = 1, .now = now};
    struct bounce_report_in r1 = r0, r2 = r0;
    const struct bounce_report_in *ins[3] = {&r0, &r1, &r2};

    make_tenant(st, "gc-a", &a);
    make_tenant(st, "gc-b", &b);
    new_list(st, a.id, "A", &la);
    new_list(st, b.id, "B", &lb);
    new_campaign(st, a.id, la.id, &ca);
    new_campaign(st, b.id, lb.id, &cb);
    assert_int_equal(new_recipient(st, a.id, la.id, "gc@example.com", &x), MC_ERR_OK);
    assert_int_equal(new_recipient(st, b.id, lb.id, "gc@example.com", &y), MC_ERR_OK);
    sent_message(st, a.id, ca.id, &x, now - 1000, ma);
    sent_message(st, b.id, cb.id, &y, now - 1000, mb);

    /* A failing report (another tenant's message through a's API) takes the batch with it. */
    r0.message_id = ma;
    r1.message_id = mb;
    r1.tenant_id = a.id;
    r1.kind = "api";
    r2.message_id = mb;
    r2.items = &soft;
    assert_int_equal(store_bounce_record_batch(st, ins, 3, outs), MC_ERR_NOT_FOUND);
    assert_int_equal(outs[0].n, 0);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE message_id = $1", ma), 0);
    assert_int_equal((int)suppressed_for(st, a.id, "gc@example.com", NULL), -1);

    /* The same reports as one good batch: each applied, the repeat a duplicate. */
    r1 = r0;
    assert_int_equal(store_bounce_record_batch(st, ins, 3, outs), MC_ERR_OK);
    assert_int_equal(outs[0].items[0].outcome, BOUNCE_OUT_SUPPRESSED);
    assert_int_equal(outs[1].items[0].outcome, BOUNCE_OUT_DUPLICATE);
    assert_int_equal(outs[2].items[0].outcome, BOUNCE_OUT_COUNTED);
    assert_string_equal(outs[0].tenant_id, a.id);
    assert_string_equal(outs[2].tenant_id, b.id);
    assert_int_equal(suppressed_for(st, a.id, "gc@example.com", NULL), CAUSE_HARD_BOUNCE);
    assert_int_equal((int)suppressed_for(st, b.id, "gc@example.com", NULL), -1);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE message_id = $1", ma), 2);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE message_id = $1", mb), 1);

    recipient_cleanup(&x);
    recipient_cleanup(&y);
    campaign_cleanup(&ca);
    campaign_cleanup(&cb);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/*
 * Duplicates in one group commit (issue 10's PostgreSQL work checks them for
 * a whole batch in one statement): a repeat of a record already stored, of
 * one written earlier in the same batch (another report or the same
 * report's next item, the address in another case), are duplicates;
 * another class, a stranger, a delay warning and another tenant's message
 * are not; a duplicate keeps no raw text; the records list in batch order.
 */
static void
test_bounce_batch_duplicates(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct recipient p = {0}, q = {0}, y = {0};
    struct campaign ca, cb;
    char mp[MC_UUID_LEN + 1], mq[MC_UUID_LEN + 1], mb[MC_UUID_LEN + 1];
    int64_t now = time_now_us();
    struct bounce_applied one, outs[8];
    struct bounce_item soft = {NULL, "soft", "4.2.2", "failed", "452 full", NULL};
    struct bounce_item hard_q = {"dq@example.com", "hard", "5.1.1", "failed", "550", NULL};
    struct bounce_item hard_qc = {"DQ@Example.COM", "hard", "5.1.1", "failed", "550", NULL};
    struct bounce_item block_q = {"dq@example.com", "block", "5.7.1", "failed", "550", NULL};
    struct bounce_item stranger = {"other@example.org", "hard", "5.1.1", "failed", "550", NULL};
    struct bounce_item delayed = {NULL, "soft", "4.4.1", "delayed", "no answer", NULL};
    struct bounce_item two_hard[2] = {{NULL, "hard", "5.1.1", "failed", "550", NULL},
                                      {NULL, "hard", "5.1.1", "failed", "550", NULL}};
    struct bounce_report_in base = {.kind = "dsn", .source = "smtp", .raw = "raw", .n = 1,
                                    .now = now};
    struct bounce_report_in r[8];
    const struct bounce_report_in *ins[8];

    make_tenant(st, "dup-a", &a);
    make_tenant(st, "dup-b", &b);
    new_list(st, a.id, "A", &la);
    new_list(st, b.id, "B", &lb);
    new_campaign(st, a.id, la.id, &ca);
    new_campaign(st, b.id, lb.id, &cb);
    assert_int_equal(new_recipient(st, a.id, la.id, "dp@example.com", &p), MC_ERR_OK);
    assert_int_equal(new_recipient(st, a.id, la.id, "dq@example.com", &q), MC_ERR_OK);
    assert_int_equal(new_recipient(st, b.id, lb.id, "dq@example.com", &y), MC_ERR_OK);
    sent_message(st, a.id, ca.id, &p, now - 1000, mp);
    sent_message(st, a.id, ca.id, &q, now - 1000, mq);
    sent_message(st, b.id, cb.id, &y, now - 1000, mb);

    /* A soft bounce of mp stored before the batch. */
    r[0] = base;
    r[0].message_id = mp;
    r[0].items = &soft;
    ins[0] = &r[0];
    assert_int_equal(store_bounce_record_batch(st, ins, 1, &one), MC_ERR_OK);
    assert_int_equal(one.items[0].outcome, BOUNCE_OUT_COUNTED);

    for (int i = 0; i < 8; i++) {
        r[i] = base;
        ins[i] = &r[i];
    }
    r[0].message_id = mp; /* the stored one again: a duplicate */
    r[0].items = &soft;
    r[1].message_id = mq; /* new: applied */
    r[1].items = &hard_q;
    r[2].message_id = mq; /* the one just above, the address in another case */
    r[2].items = &hard_qc;
    r[3].message_id = mq; /* another class: not a duplicate */
    r[3].items = &block_q;
    r[4].message_id = mq; /* a stranger: recorded as such, never a duplicate */
    r[4].items = &stranger;
    r[5].message_id = mp; /* a delay warning: recorded only */
    r[5].items = &delayed;
    r[6].message_id = mb; /* another tenant's message to the same address: applied */
    r[6].items = &hard_q;
    r[7].message_id = mp; /* two items of one report: the second a duplicate of the first */
    r[7].items = two_hard;
    r[7].n = 2;
    assert_int_equal(store_bounce_record_batch(st, ins, 8, outs), MC_ERR_OK);
    assert_int_equal(outs[0].items[0].outcome, BOUNCE_OUT_DUPLICATE);
    assert_int_equal(outs[1].items[0].outcome, BOUNCE_OUT_SUPPRESSED);
    assert_int_equal(outs[2].items[0].outcome, BOUNCE_OUT_DUPLICATE);
    assert_int_equal(outs[3].items[0].outcome, BOUNCE_OUT_COUNTED);
    assert_int_equal(outs[4].items[0].outcome, BOUNCE_OUT_STRANGER);
    assert_int_equal(outs[5].items[0].outcome, BOUNCE_OUT_RECORDED);
    assert_int_equal(outs[6].items[0].outcome, BOUNCE_OUT_SUPPRESSED);
    assert_int_equal(outs[7].n, 2);
    assert_int_equal(outs[7].items[0].outcome, BOUNCE_OUT_SUPPRESSED);
    assert_int_equal(outs[7].items[1].outcome, BOUNCE_OUT_DUPLICATE);
    assert_string_equal(outs[0].tenant_id, a.id);
    assert_string_equal(outs[0].message_id, mp);
    assert_string_equal(outs[6].tenant_id, b.id);
    assert_string_equal(outs[6].campaign_id, cb.id);

    /* What was written: one row per item, duplicates without raw text, counted once. */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE tenant_id = $1", a.id), 9);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE tenant_id = $1 AND "
                                 "outcome = 'duplicate' AND raw IS NULL", a.id), 3);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE tenant_id = $1 AND "
                                 "raw IS NOT NULL", a.id), 6);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM bounces WHERE message_id = $1 AND "
                                 "outcome = 'duplicate' AND campaign_id IS NOT NULL AND "
                                 "recipient_id IS NOT NULL AND email_lc = 'dp@example.com'", mp),
                     2);
    struct campaign c = {0};
    assert_int_equal(store_campaign_get(st, a.id, ca.id, &c), MC_ERR_OK);
    assert_int_equal(c.counts.bounced_hard, 2); /* mq and mp, once each */
    assert_int_equal(c.counts.blocked, 1);
    assert_int_equal(c.counts.bounced_soft, 1); /* the first soft only */
    campaign_cleanup(&c);
    assert_int_equal(suppressed_for(st, a.id, "dq@example.com", NULL), CAUSE_HARD_BOUNCE);
    assert_int_equal(suppressed_for(st, b.id, "dq@example.com", NULL), CAUSE_HARD_BOUNCE);
    assert_int_equal(suppressed_for(st, a.id, "dp@example.com", NULL), CAUSE_HARD_BOUNCE);
    assert_int_equal((int)suppressed_for(st, a.id, "other@example.org", NULL), -1);

    /* Newest first: the batch's items in reverse order, then the one before it. */
    struct bounce_rec_vec v = {0};
    struct bounce_filter f = {0};
    struct page pg = {100, 0};
    const char *want[9];
    int k = 0;
    want[k++] = outs[7].items[1].id;
    want[k++] = outs[7].items[0].id;
    for (int i = 5; i >= 0; i--)
        if (i != 6)
            want[k++] = outs[i].items[0].id;
    want[k++] = one.items[0].id;
    assert_int_equal(store_bounce_list(st, a.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, k);
    for (int i = 0; i < k; i++)
        assert_string_equal(v.items[i].id, want[i]);
    bounce_rec_vec_cleanup(&v);
    /* B sees its own one record only. */
    assert_int_equal(store_bounce_list(st, b.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 1);
    assert_string_equal(v.items[0].id, outs[6].items[0].id);
    bounce_rec_vec_cleanup(&v);

    recipient_cleanup(&p);
    recipient_cleanup(&q);
    recipient_cleanup(&y);
    campaign_cleanup(&ca);
    campaign_cleanup(&cb);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/*
 * The intake's transaction: the referenced message decides everything; a
 * stranger, a duplicate, an unreferenced report change nothing; hard and
 * complaint suppress at once, soft after the policy's limit and for a
 * while, block never; another tenant neither sees nor changes any of it.
 */
static void
test_bounces_two_tenants(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct recipient x[5], y = {0};
    struct campaign ca, ca2, cb;
    struct bounce_applied ap;
    struct bounce_policy pol = BOUNCE_POLICY_DEFAULTS, got = {0};
    char m[5][MC_UUID_LEN + 1], m2[MC_UUID_LEN + 1], mb[MC_UUID_LEN + 1], email[64];
    int64_t now = time_now_us(), exp = 0;
    struct campaign c = {0};

    make_tenant(st, "bnc-a", &a);
    make_tenant(st, "bnc-b", &b);
    new_list(st, a.id, "A", &la);
    new_list(st, b.id, "B", &lb);
    new_campaign(st, a.id, la.id, &ca);
    new_campaign(st, a.id, la.id, &ca2);
    new_campaign(st, b.id, lb.id, &cb);
    for (int i = 0; i < 5; i++) {
        snprintf(email, sizeof(email), "Bx%d@Example.com", i);
        assert_int_equal(new_recipient(st, a.id, la.id, email, &x[i]), MC_ERR_OK);
        sent_message(st, a.id, ca.id, &x[i], now - 1000, m[i]);
    }
    assert_int_equal(new_recipient(st, b.id, lb.id, "bx0@example.com", &y), MC_ERR_OK);
    sent_message(st, b.id, cb.id, &y, now - 1000, mb);

    /* Hard: suppressed at once, the recipient bounced, counted once. */
    assert_int_equal(report(st, NULL, m[0], "dsn", "bx0@example.com", "hard", &ap),
                     BOUNCE_OUT_SUPPRESSED);
    assert_string_equal(ap.tenant_id, a.id);
    assert_string_equal(ap.campaign_id, ca.id);
    assert_int_equal(suppressed_for(st, a.id, "bx0@example.com", &exp), CAUSE_HARD_BOUNCE);
    assert_int_equal(exp, 0);
    assert_string_equal(rcpt_status(st, x[0].id), "bounced");
    assert_int_equal((int)suppressed_for(st, b.id, "bx0@example.com", NULL), -1);
    assert_string_equal(rcpt_status(st, y.id), "active");
    /* The same report again changes nothing. */
    assert_int_equal(report(st, NULL, m[0], "dsn", "bx0@example.com", "hard", &ap),
                     BOUNCE_OUT_DUPLICATE);

    /* A report naming someone else than the message's recipient suppresses nobody. */
    assert_int_equal(report(st, NULL, m[1], "dsn", "stranger@example.org", "hard", &ap),
                     BOUNCE_OUT_STRANGER);
    assert_int_equal((int)suppressed_for(st, a.id, "stranger@example.org", NULL), -1);
    assert_int_equal((int)suppressed_for(st, a.id, "bx1@example.com", NULL), -1);
    /* No valid reference: kept for the operator, no tenant's. */
    assert_int_equal(report(st, NULL, NULL, "dsn", "bx1@example.com", "hard", &ap),
                     BOUNCE_OUT_UNREFERENCED);
    assert_string_equal(ap.tenant_id, "");
    assert_int_equal((int)suppressed_for(st, a.id, "bx1@example.com", NULL), -1);
    /* Another tenant's message, named through the API of this one: not found. */
    struct bounce_item it = {NULL, "hard", NULL, NULL, NULL, NULL};
    struct bounce_report_in in = {.tenant_id = a.id, .message_id = mb, .kind = "api",
                                  .source = "api", .items = &it, .n = 1, .now = now};
    assert_int_equal(store_bounce_record(st, &in, &ap), MC_ERR_NOT_FOUND);
    assert_int_equal((int)suppressed_for(st, b.id, "bx0@example.com", NULL), -1);

    /* A complaint (a feedback report with the recipient redacted): every list. */
    assert_int_equal(report(st, NULL, m[2], "arf", NULL, "complaint", &ap),
                     BOUNCE_OUT_SUPPRESSED);
    assert_int_equal(suppressed_for(st, a.id, "bx2@example.com", NULL), CAUSE_COMPLAINT);
    assert_string_equal(rcpt_status(st, x[2].id), "complained");
    /* Other feedback is recorded only; so is an auto-reply. */
    assert_int_equal(report(st, NULL, m[3], "arf", NULL, "undetermined", &ap),
                     BOUNCE_OUT_RECORDED);
    assert_int_equal(report(st, NULL, m[3], "auto_reply", "bx3@example.com", "auto_reply", &ap),
                     BOUNCE_OUT_RECORDED);
    /* A block is counted, never suppressing. */
    assert_int_equal(report(st, NULL, m[3], "dsn", "bx3@example.com", "block", &ap),
                     BOUNCE_OUT_COUNTED);
    assert_int_equal((int)suppressed_for(st, a.id, "bx3@example.com", NULL), -1);
    assert_string_equal(rcpt_status(st, x[3].id), "active");

    /* Soft: the policy's limit of 2 on distinct messages, then suppressed for a while. */
    assert_int_equal(store_bounce_policy_get(st, a.id, &got), MC_ERR_OK);
    assert_int_equal(got.soft_limit, 3);
    assert_int_equal(got.updated_at, 0);
    pol.soft_limit = 2;
    pol.soft_suppress_days = 7;
    assert_int_equal(store_bounce_policy_put(st, a.id, &pol, &got), MC_ERR_OK);
    assert_int_equal(got.soft_limit, 2);
    assert_true(got.updated_at > 0);
    assert_int_equal(report(st, NULL, m[4], "dsn", "bx4@example.com", "soft", &ap),
                     BOUNCE_OUT_COUNTED);
    /* The same message again is no second message. */
    assert_int_equal(report(st, NULL, m[4], "dsn", "bx4@example.com", "undetermined", &ap),
                     BOUNCE_OUT_COUNTED);
    assert_int_equal((int)suppressed_for(st, a.id, "bx4@example.com", NULL), -1);
    sent_message(st, a.id, ca2.id, &x[4], time_now_us(), m2);
    assert_int_equal(report(st, NULL, m2, "dsn", "bx4@example.com", "soft", &ap),
                     BOUNCE_OUT_SUPPRESSED);
    assert_int_equal(suppressed_for(st, a.id, "bx4@example.com", &exp), CAUSE_SOFT_BOUNCE);
    assert_true(exp > now + 6 * 86400LL * 1000000 && exp < now + 8 * 86400LL * 1000000);
    assert_string_equal(rcpt_status(st, x[4].id), "active"); /* only for a while */
    /* B's policy is untouched. */
    bounce_policy_cleanup(&got);
    assert_int_equal(store_bounce_policy_get(st, b.id, &got), MC_ERR_OK);
    assert_int_equal(got.soft_limit, 3);

    /* An expired suppression no longer suppresses: a new recipient stays active ... */
    struct db_param pe[] = {P_TEXT(a.id), P_TIME(now - 1000)};
    exec_sql(st, "UPDATE unsubscribes SET expires_at = $2 WHERE tenant_id = $1 AND "
                 "email_lc = 'bx4@example.com'", pe, NPARAMS(pe));
    struct recipient_list l2;
    struct recipient z = {0};
    new_list(st, a.id, "A2", &l2);
    assert_int_equal(new_recipient(st, a.id, l2.id, "bx4@example.com", &z), MC_ERR_OK);
    assert_int_equal(z.status, RCPT_ACTIVE);
    /* ... and a new entry for the address replaces the expired one. */
    bool created = false;
    assert_int_equal(store_unsub_add(st, a.id, "bx4@example.com", "bx4@example.com", UNSUB_MANUAL,
                                     NULL, NULL, &created, NULL),
                     MC_ERR_OK);
    assert_true(created);
    assert_int_equal(suppressed_for(st, a.id, "bx4@example.com", &exp), CAUSE_MANUAL);
    assert_int_equal(exp, 0);

    /* Campaign counters. */
    assert_int_equal(store_campaign_get(st, a.id, ca.id, &c), MC_ERR_OK);
    assert_int_equal(c.counts.bounced_hard, 1);
    assert_int_equal(c.counts.complained, 1);
    assert_int_equal(c.counts.blocked, 1);
    assert_int_equal(c.counts.bounced_soft, 2);
    campaign_cleanup(&c);

    /* The records: the tenant's only, filtered, with the raw message one at a time. */
    struct bounce_rec_vec v = {0};
    struct bounce_filter f = {0};
    struct page pg = {100, 0};
    assert_int_equal(store_bounce_list(st, a.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 10); /* not the unreferenced one */
    assert_null(v.items[0].raw);
    bounce_rec_vec_cleanup(&v);
    f.class = "hard";
    assert_int_equal(store_bounce_list(st, a.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 3); /* the first, its duplicate, the stranger */
    f.email_lc = "bx0@example.com";
    bounce_rec_vec_cleanup(&v);
    assert_int_equal(store_bounce_list(st, a.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 2);
    assert_string_equal(v.items[1].outcome, "suppressed");
    struct bounce_rec r = {0};
    assert_int_equal(store_bounce_get(st, a.id, v.items[1].id, &r), MC_ERR_OK);
    assert_string_equal(r.raw, "From: MAILER-DAEMON\r\n\r\nraw");
    assert_string_equal(r.message_id, m[0]);
    bounce_rec_cleanup(&r);
    assert_int_equal(store_bounce_get(st, b.id, v.items[1].id, &r), MC_ERR_NOT_FOUND);
    char tenants_rec[MC_UUID_LEN + 1];
    memcpy(tenants_rec, v.items[1].id, sizeof(tenants_rec));
    bounce_rec_vec_cleanup(&v);
    /* The unreferenced report is the operator's alone: no tenant, its raw message kept. */
    assert_int_equal(store_bounce_unmatched_list(st, now, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 1);
    assert_string_equal(v.items[0].tenant_id, "");
    assert_string_equal(v.items[0].outcome, "unreferenced");
    assert_string_equal(v.items[0].email, "bx1@example.com");
    assert_null(v.items[0].raw);
    assert_int_equal(store_bounce_unmatched_get(st, v.items[0].id, &r), MC_ERR_OK);
    assert_string_equal(r.raw, "From: MAILER-DAEMON\r\n\r\nraw");
    bounce_rec_cleanup(&r);
    assert_int_equal(store_bounce_get(st, a.id, v.items[0].id, &r), MC_ERR_NOT_FOUND);
    bounce_rec_vec_cleanup(&v);
    assert_int_equal(store_bounce_unmatched_list(st, time_now_us() + 1000000, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    bounce_rec_vec_cleanup(&v);
    /* A tenant's record is not unmatched; a malformed id is nobody's. */
    assert_int_equal(store_bounce_unmatched_get(st, tenants_rec, &r), MC_ERR_NOT_FOUND);
    assert_int_equal(store_bounce_unmatched_get(st, "not-an-id", &r), MC_ERR_NOT_FOUND);
    f.class = NULL;
    f.email_lc = NULL;
    f.campaign_id = cb.id;
    assert_int_equal(store_bounce_list(st, a.id, &f, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    bounce_rec_vec_cleanup(&v);
    assert_int_equal(store_bounce_list(st, b.id, &(struct bounce_filter){0}, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    bounce_rec_vec_cleanup(&v);

    /* Pruning by age. */
    int64_t pruned = 0;
    assert_int_equal(store_bounce_prune(st, now - 1, &pruned), MC_ERR_OK);
    assert_int_equal(pruned, 0);
    assert_int_equal(store_bounce_prune(st, time_now_us() + 1, &pruned), MC_ERR_OK);
    assert_int_equal(pruned, 11); /* the unreferenced one too */
    assert_int_equal(store_bounce_unmatched_list(st, now, &pg, &v), MC_ERR_OK);
    assert_int_equal(v.total, 0);
    bounce_rec_vec_cleanup(&v);

    bounce_policy_cleanup(&got);
    recipient_cleanup(&z);
    recipient_list_cleanup(&l2);
    for (int i = 0; i < 5; i++)
        recipient_cleanup(&x[i]);
    recipient_cleanup(&y);
    campaign_cleanup(&ca);
    campaign_cleanup(&ca2);
    campaign_cleanup(&cb);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/*
 * The timeline counts sent messages per bucket from the start, puts late
 * ones in the last bucket, and sees nothing of another tenant's campaign.
 */
static void
test_campaign_timeline(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list l;
    struct campaign c;
    struct campaign_ref ref;
    int64_t counts[3] = {0}, inserted, t0 = 1700000000000000LL, min = 60000000LL;
    bool done = false;

    make_tenant(st, "tl-a", &a);
    make_tenant(st, "tl-b", &b);
    list_with(st, a.id, "t", 6, &l);
    new_campaign(st, a.id, l.id, &c);
    memcpy(ref.id, c.id, sizeof(ref.id));
    memcpy(ref.tenant_id, a.id, sizeof(ref.tenant_id));
    assert_int_equal(store_campaign_transition(st, a.id, c.id, CEV_SEND, time_now_us(), NULL, NULL),
                     MC_ERR_OK);
    while (!done)
        assert_int_equal(store_engine_materialize(st, &ref, 10, 5, time_now_us(), &inserted, &done),
                         MC_ERR_OK);
    /* Sent at t0+10s, t0+20s (bucket 0), t0+70s (1), t0+500s (past the end: 2); two unsent. */
    int64_t at[] = {t0 + 10000000, t0 + 20000000, t0 + min + 10000000, t0 + 500000000};
    for (int i = 0; i < 4; i++) {
        struct db_param p[] = {P_TEXT(c.id), P_TIME(at[i])};
        exec_sql(st,
                 "UPDATE scheduled_messages SET sent_at = $2 WHERE id = (SELECT id FROM "
                 "scheduled_messages WHERE campaign_id = $1 AND sent_at IS NULL ORDER BY id "
                 "LIMIT 1)",
                 p, NPARAMS(p));
    }
    assert_int_equal(store_campaign_timeline(st, a.id, c.id, t0, min, 3, counts), MC_ERR_OK);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 1);
    /* Later start: the earlier messages are not counted. */
    memset(counts, 0, sizeof(counts));
    assert_int_equal(store_campaign_timeline(st, a.id, c.id, t0 + min, min, 3, counts), MC_ERR_OK);
    assert_int_equal(counts[0] + counts[1] + counts[2], 2);
    /* Another tenant sees nothing. */
    memset(counts, 0, sizeof(counts));
    assert_int_equal(store_campaign_timeline(st, b.id, c.id, t0, min, 3, counts), MC_ERR_OK);
    assert_int_equal(counts[0] + counts[1] + counts[2], 0);

    campaign_cleanup(&c);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

static void
test_schema_newer_is_refused(void **state)
{
    struct store *st = st_of(state);
    struct db_param p[] = {P_INT(9999), P_TEXT("future"), P_INT(0)};

    exec_sql(st, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
             p, NPARAMS(p));
    assert_int_equal(store_migrate(st, NULL), MC_ERR_SCHEMA_NEWER);
}


/* Sends campaign_id of tenant_id and makes all its messages; *w names it for claims. */
static void
send_campaign(struct store *st, const char *tenant_id, const char *campaign_id, int64_t now,
              struct delivery_work *w)
{
    struct campaign_ref ref;
    int64_t inserted;
    bool done = false;

    memcpy(ref.id, campaign_id, sizeof(ref.id));
    memcpy(ref.tenant_id, tenant_id, sizeof(ref.tenant_id));
    memcpy(w->campaign_id, campaign_id, sizeof(w->campaign_id));
    memcpy(w->tenant_id, tenant_id, sizeof(w->tenant_id));
    assert_int_equal(store_campaign_transition(st, tenant_id, campaign_id, CEV_SEND, now, NULL,
                                               NULL),
                     MC_ERR_OK);
    while (!done)
        assert_int_equal(store_engine_materialize(st, &ref, 100, 5, now, &inserted, &done),
                         MC_ERR_OK);
}
/*
 * Issue 12 finding 21: a hard bounce marks the message's recipient bounced
 * and suppresses its address, filtering on the message's tenant too.  A
 * message whose recipient id names another tenant's recipient (a damaged
 * row) must not touch that tenant.
 */
static void
test_bounce_stays_in_its_tenant(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct recipient xa = {0}, xb = {0};
    struct campaign c;
    struct delivery_work w;
    struct delivery_vec v = {0};
    struct delivery_result res = {0};
    int64_t now = time_now_us();
    int applied = 0;

    make_tenant(st, "bounce-a", &a);
    make_tenant(st, "bounce-b", &b);
    new_list(st, a.id, "L", &la);
    new_list(st, b.id, "L", &lb);
    assert_int_equal(new_recipient(st, a.id, la.id, "same@example.com", &xa), MC_ERR_OK);
    assert_int_equal(new_recipient(st, b.id, lb.id, "other@example.com", &xb), MC_ERR_OK);
    new_campaign(st, a.id, la.id, &c);
    send_campaign(st, a.id, c.id, now, &w);
    const struct claim_pacing pc = {.burst = 100, .horizon_us = 1000000};
    assert_int_equal(store_delivery_claim(st, &w, "w1", now, 60 * 1000000LL, 10, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 1);
    /* The damage: tenant A's message names tenant B's recipient. */
    struct db_param pd[] = {P_TEXT(xb.id), P_TEXT(v.items[0].id)};
    exec_sql(st, "UPDATE scheduled_messages SET recipient_id = $1 WHERE id = $2", pd, 2);

    memcpy(res.id, v.items[0].id, sizeof(res.id));
    res.attempts = v.items[0].attempts;
    res.outcome = OUT_BOUNCED;
    res.reply_code = 550;
    snprintf(res.error, sizeof(res.error), "550 5.1.1 no such user");
    assert_int_equal(store_delivery_record(st, "w1", now, &res, 1, &applied), MC_ERR_OK);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM recipients WHERE id = $1 AND "
                                 "status = 'bounced'",
                             xb.id),
                     0);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM unsubscribes WHERE tenant_id = $1", b.id),
                     0);

    delivery_vec_cleanup(&v);
    campaign_cleanup(&c);
    recipient_cleanup(&xa);
    recipient_cleanup(&xb);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/*
 * A worker holding paced messages asks which of their campaigns stopped
 * sending: a paused one, one that no longer exists, one whose tenant was
 * suspended; not one still sending.
 */
static void
test_stopped_names_campaigns_no_longer_sending(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list la, lb;
    struct recipient x = {0}, y = {0};
    struct campaign going, paused, other;
    struct delivery_work w[4], *out = NULL;
    int64_t now = time_now_us();
    int n = 0;

    make_tenant(st, "stopped-a", &a);
    make_tenant(st, "stopped-b", &b);
    new_list(st, a.id, "L", &la);
    new_list(st, b.id, "L", &lb);
    assert_int_equal(new_recipient(st, a.id, la.id, "one@example.com", &x), MC_ERR_OK);
    assert_int_equal(new_recipient(st, b.id, lb.id, "two@example.com", &y), MC_ERR_OK);
    new_campaign(st, a.id, la.id, &going);
    new_campaign(st, a.id, la.id, &paused);
    new_campaign(st, b.id, lb.id, &other);
    send_campaign(st, a.id, going.id, now, &w[0]);
    send_campaign(st, a.id, paused.id, now, &w[1]);
    send_campaign(st, b.id, other.id, now, &w[2]);
    assert_int_equal(store_campaign_transition(st, a.id, paused.id, CEV_PAUSE, now, NULL, NULL),
                     MC_ERR_OK);
    struct db_param pb[] = {P_TEXT(b.id)};
    exec_sql(st, "UPDATE tenants SET status = 'suspended' WHERE id = $1", pb, 1);
    memcpy(w[3].tenant_id, a.id, sizeof(w[3].tenant_id));
    snprintf(w[3].campaign_id, sizeof(w[3].campaign_id), "%s",
             "00000000-0000-4000-8000-000000000000");

    assert_int_equal(store_delivery_stopped(st, w, 4, &out, &n), MC_ERR_OK);
    assert_int_equal(n, 3);
    for (int i = 1; i < 4; i++) { /* each stopped one named once, with its tenant */
        int found = 0;
        for (int j = 0; j < n; j++)
            found += strcmp(out[j].campaign_id, w[i].campaign_id) == 0 &&
                     strcmp(out[j].tenant_id, w[i].tenant_id) == 0;
        assert_int_equal(found, 1);
    }
    free(out);
    /* A campaign named with another tenant is not that tenant's: stopped for it. */
    memcpy(w[0].tenant_id, b.id, sizeof(w[0].tenant_id));
    assert_int_equal(store_delivery_stopped(st, w, 1, &out, &n), MC_ERR_OK);
    assert_int_equal(n, 1);
    free(out);
    memcpy(w[0].tenant_id, a.id, sizeof(w[0].tenant_id));
    assert_int_equal(store_delivery_stopped(st, w, 1, &out, &n), MC_ERR_OK);
    assert_int_equal(n, 0);
    free(out);

    campaign_cleanup(&going);
    campaign_cleanup(&paused);
    campaign_cleanup(&other);
    recipient_cleanup(&x);
    recipient_cleanup(&y);
    recipient_list_cleanup(&la);
    recipient_list_cleanup(&lb);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

/* The campaign's counts are what its rows say, status by status (SQLite counts the hot path itself). */
static void
assert_counts_true(struct store *st, const char *campaign_id)
{
    static const char *const sql[][2] = {
        {"SELECT pending_count FROM campaigns WHERE id = $1",
         "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = $1 AND status = 'pending'"},
        {"SELECT sending_count FROM campaigns WHERE id = $1",
         "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = $1 AND status = 'sending'"},
        {"SELECT sent_count FROM campaigns WHERE id = $1",
         "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = $1 AND status = 'sent'"},
    };

    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
        assert_int_equal(one_int(st, sql[i][0], campaign_id), one_int(st, sql[i][1], campaign_id));
}

/* A claimed message's outcome, named as the worker names it (from the claim). */
static void
result_of(const struct delivery_msg *m, enum delivery_outcome out, struct delivery_result *r)
{
    memset(r, 0, sizeof(*r));
    memcpy(r->id, m->id, sizeof(r->id));
    memcpy(r->tenant_id, m->tenant_id, sizeof(r->tenant_id));
    memcpy(r->campaign_id, m->campaign_id, sizeof(r->campaign_id));
    memcpy(r->recipient_id, m->recipient_id, sizeof(r->recipient_id));
    snprintf(r->to_address, sizeof(r->to_address), "%s", m->to_address);
    r->attempts = m->attempts;
    r->outcome = out;
    r->reply_code = out == OUT_SENT ? 250 : 451;
}

/*
 * A message handed back unsent (OUT_RELEASE) keeps its attempts and, when
 * the worker gives no reason (a paced message sent back for a new slot),
 * its last error: a retry keeps the relay's reply.  The windows its claim
 * counted it in give it back.
 */
static void
test_release_keeps_attempts_and_last_error(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    struct recipient_list l;
    struct recipient x = {0};
    struct campaign c;
    struct delivery_work w;
    struct delivery_vec v = {0}, v2 = {0};
    struct delivery_result r;
    int64_t now = time_now_us();
    int applied = 0;
    const struct claim_pacing pc = {.burst = 100, .horizon_us = 1000000};

    make_tenant(st, "release", &a);
    new_list(st, a.id, "L", &l);
    assert_int_equal(new_recipient(st, a.id, l.id, "kept@example.com", &x), MC_ERR_OK);
    new_campaign(st, a.id, l.id, &c);
    send_campaign(st, a.id, c.id, now, &w);
    assert_int_equal(store_delivery_claim(st, &w, "w1", now, 60 * 1000000LL, 10, &pc, &v),
                     MC_ERR_OK);
    assert_int_equal(v.n, 1);
    result_of(&v.items[0], OUT_RETRY, &r);
    snprintf(r.error, sizeof(r.error), "451 4.3.0 try again later");
    r.next_attempt_at = now;
    assert_int_equal(store_delivery_record(st, "w1", now, &r, 1, &applied), MC_ERR_OK);
    assert_int_equal(applied, 1);

    now += 1000000;
    assert_int_equal(store_delivery_claim(st, &w, "w1", now, 60 * 1000000LL, 10, &pc, &v2),
                     MC_ERR_OK);
    assert_int_equal(v2.n, 1);
    assert_int_equal(v2.items[0].attempts, 2);
    /* Each claim counted the message in the tenant's windows. */
    static const char windows[] = "SELECT COALESCE(SUM(n), 0) FROM rate_usage WHERE "
                                  "scope_id = $1 AND width = 60";
    assert_int_equal(one_int(st, windows, a.id), 2);
    result_of(&v2.items[0], OUT_RELEASE, &r);
    r.next_attempt_at = now;
    r.claimed_at = v2.items[0].claimed_at;
    applied = 0;
    assert_int_equal(store_delivery_record(st, "w1", now, &r, 1, &applied), MC_ERR_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM scheduled_messages WHERE id = $1 AND "
                                 "status = 'pending' AND attempts = 1 AND "
                                 "last_error = '451 4.3.0 try again later'",
                             v2.items[0].id),
                     1);
    /* Handed back unsent, it no longer counts in them; a second (fenced-out) record gives
     * nothing back twice. */
    assert_int_equal(one_int(st, windows, a.id), 1);
    assert_int_equal(store_delivery_record(st, "w1", now, &r, 1, &applied), MC_ERR_OK);
    assert_int_equal(one_int(st, windows, a.id), 1);

    delivery_vec_cleanup(&v);
    delivery_vec_cleanup(&v2);
    campaign_cleanup(&c);
    recipient_cleanup(&x);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
}

/*
 * A claim and a flush of 'sent' outcomes over two campaigns: each
 * campaign's counts move by what took effect (a fenced-out result moves
 * nothing), every sent message has its event naming its address, and
 * other statements are counted by the trigger again afterwards.
 */
static void
test_counts_follow_claims_and_sends(void **state)
{
    struct store *st = st_of(state);
    struct tenant a;
    struct recipient_list l;
    struct recipient x[3];
    struct campaign c[2];
    struct delivery_vec v[2] = {{0}};
    struct delivery_result res[4];
    int64_t now = time_now_us();
    int applied = 0, nres = 0;
    char email[64];

    memset(x, 0, sizeof(x));
    make_tenant(st, "counts", &a);
    new_list(st, a.id, "L", &l);
    for (int i = 0; i < 3; i++) {
        snprintf(email, sizeof(email), "reader%d@example.com", i);
        assert_int_equal(new_recipient(st, a.id, l.id, email, &x[i]), MC_ERR_OK);
    }
    for (int k = 0; k < 2; k++) {
        struct delivery_work w;
        const struct claim_pacing pc = {.burst = 100, .horizon_us = 1000000};

        new_campaign(st, a.id, l.id, &c[k]);
        send_campaign(st, a.id, c[k].id, now, &w);
        assert_counts_true(st, c[k].id);
        assert_int_equal(store_delivery_claim(st, &w, "w1", now, 60 * 1000000LL, 10, &pc, &v[k]),
                         MC_ERR_OK);
        assert_int_equal(v[k].n, 3);
        assert_int_equal(one_int(st, "SELECT sending_count FROM campaigns WHERE id = $1",
                                 c[k].id), 3);
        assert_counts_true(st, c[k].id);
    }
    /* Campaign 0: one sent, one fenced out (a stale attempt), one to retry; campaign 1: one sent. */
    const struct {
        int k, i, attempts_off;
        enum delivery_outcome out;
    } plan[] = {{0, 0, 0, OUT_SENT}, {0, 1, 1, OUT_SENT}, {1, 0, 0, OUT_SENT},
                {0, 2, 0, OUT_RETRY}};
    for (size_t j = 0; j < sizeof(plan) / sizeof(plan[0]); j++) {
        struct delivery_result *r = &res[nres++];
        result_of(&v[plan[j].k].items[plan[j].i], plan[j].out, r);
        r->attempts += plan[j].attempts_off;
        r->next_attempt_at = now + 60 * 1000000LL;
    }
    assert_int_equal(store_delivery_record(st, "w1", now, res, nres, &applied), MC_ERR_OK);
    assert_int_equal(applied, 3);
    for (int k = 0; k < 2; k++)
        assert_counts_true(st, c[k].id);
    assert_int_equal(one_int(st, "SELECT sent_count FROM campaigns WHERE id = $1", c[0].id), 1);
    assert_int_equal(one_int(st, "SELECT sending_count FROM campaigns WHERE id = $1", c[0].id), 1);
    assert_int_equal(one_int(st, "SELECT pending_count FROM campaigns WHERE id = $1", c[0].id), 1);
    assert_int_equal(one_int(st, "SELECT sent_count FROM campaigns WHERE id = $1", c[1].id), 1);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM events WHERE type = 'message.sent' AND "
                                 "tenant_id = $1 AND email_lc LIKE 'reader%@example.com' AND "
                                 "recipient_id IS NOT NULL",
                             a.id),
                     2);
    /* A flush whose second 'sent' update fails changes nothing, and leaves the trigger on. */
    {
        struct db d;
        assert_int_equal(db_get(st, &d), MC_ERR_OK);
        bool pg = d.ops->dialect == DB_PG;
        db_put(&d);
        if (pg) {
            exec_sql(st,
                     "CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS "
                     "'BEGIN IF NEW.status = ''sent'' AND (SELECT count(*) FROM "
                     "scheduled_messages WHERE status = ''sent'') >= 3 THEN RAISE EXCEPTION "
                     "''boom''; END IF; RETURN NEW; END'",
                     NULL, 0);
            exec_sql(st,
                     "CREATE TRIGGER test_boom BEFORE UPDATE ON scheduled_messages FOR EACH ROW "
                     "EXECUTE FUNCTION test_boom()",
                     NULL, 0);
        } else {
            exec_sql(st,
                     "CREATE TRIGGER test_boom BEFORE UPDATE OF status ON scheduled_messages "
                     "WHEN NEW.status = 'sent' AND (SELECT COUNT(*) FROM scheduled_messages "
                     "WHERE status = 'sent') >= 3 BEGIN SELECT RAISE(ABORT, 'boom'); END",
                     NULL, 0);
        }
        nres = 0;
        for (int i = 1; i < 3; i++) {
            result_of(&v[1].items[i], OUT_SENT, &res[nres++]);
        }
        assert_int_not_equal(store_delivery_record(st, "w1", now, res, nres, &applied),
                             MC_ERR_OK);
        if (pg) {
            exec_sql(st, "DROP TRIGGER test_boom ON scheduled_messages", NULL, 0);
            exec_sql(st, "DROP FUNCTION test_boom()", NULL, 0);
        } else {
            exec_sql(st, "DROP TRIGGER test_boom", NULL, 0);
            assert_int_equal(one_int(st, "SELECT COUNT(*) FROM counts_by_caller WHERE $1 = $1",
                                     "x"), 0);
        }
        assert_int_equal(one_int(st, "SELECT sent_count FROM campaigns WHERE id = $1", c[1].id),
                         1);
        for (int k = 0; k < 2; k++)
            assert_counts_true(st, c[k].id);
    }
    /* The trigger counts other statements again: nothing was left turned off. */
    exec_sql(st, "UPDATE scheduled_messages SET status = 'cancelled' WHERE status = 'pending'",
             NULL, 0);
    for (int k = 0; k < 2; k++)
        assert_counts_true(st, c[k].id);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM campaigns WHERE tenant_id = $1 AND "
                                 "cancelled_count = 1",
                             a.id),
                     1);

    for (int k = 0; k < 2; k++) {
        delivery_vec_cleanup(&v[k]);
        campaign_cleanup(&c[k]);
    }
    for (int i = 0; i < 3; i++)
        recipient_cleanup(&x[i]);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
}

/*
 * The event outbox: db_event_message (what bounce and complaint intake
 * call inside their own transaction) writes the event and queues it for
 * subscribed endpoints only, exactly when the transaction commits; another
 * tenant's message is not found.  Then the webhook claim (leases, the
 * per-endpoint cap), a fenced record, and lease recovery.
 */
static void
test_events_outbox_and_webhook_claims(void **state)
{
    struct store *st = st_of(state);
    struct tenant a, b;
    struct recipient_list l;
    struct recipient x = {0};
    struct campaign c;
    struct campaign_ref ref;
    struct webhook all = {0}, sent_only = {0};
    struct webhook_job_vec jobs = {0};
    int64_t inserted, now = time_now_us();
    bool done = false;
    char msg[MC_UUID_LEN + 1];
    struct db d;
    int n = 0;

    make_tenant(st, "ev-a", &a);
    make_tenant(st, "ev-b", &b);
    new_list(st, a.id, "L", &l);
    assert_int_equal(new_recipient(st, a.id, l.id, "Ev@example.com", &x), MC_ERR_OK);
    recipient_cleanup(&x);
    new_campaign(st, a.id, l.id, &c);
    memcpy(ref.id, c.id, sizeof(ref.id));
    memcpy(ref.tenant_id, a.id, sizeof(ref.tenant_id));
    memcpy(all.tenant_id, a.id, sizeof(all.tenant_id));
    all.url = xstrdup("https://a.example.com/");
    all.event_types = xstrdup("*");
    all.enabled = true;
    assert_int_equal(store_webhook_create(st, &all, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 2),
                     MC_ERR_OK);
    memcpy(sent_only.tenant_id, a.id, sizeof(sent_only.tenant_id));
    sent_only.url = xstrdup("https://b.example.com/");
    sent_only.event_types = xstrdup(",message.sent,");
    sent_only.enabled = true;
    assert_int_equal(
        store_webhook_create(st, &sent_only, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 2),
        MC_ERR_OK);
    /* The tenant's limit is 2 here. */
    struct webhook third = {.url = xstrdup("https://c.example.com/"), .event_types = xstrdup("*")};
    memcpy(third.tenant_id, a.id, sizeof(third.tenant_id));
    assert_int_equal(store_webhook_create(st, &third, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 2),
                     MC_ERR_LIMIT);
    webhook_cleanup(&third);
    /* campaign.started: queued for "*" only. */
    assert_int_equal(store_campaign_transition(st, a.id, c.id, CEV_SEND, now, NULL, NULL),
                     MC_ERR_OK);
    while (!done)
        assert_int_equal(store_engine_materialize(st, &ref, 100, 5, now, &inserted, &done),
                         MC_ERR_OK);

    assert_int_equal(db_get(st, &d), MC_ERR_OK);
    {
        char *s = NULL;
        struct db_param p[] = {P_TEXT(c.id)};
        assert_int_equal(db_one_text(&d, "SELECT id FROM scheduled_messages WHERE campaign_id = $1",
                                     p, 1, &s),
                         MC_ERR_OK);
        snprintf(msg, sizeof(msg), "%s", s);
        free(s);
    }
    /* Rolled back: neither the event nor its delivery exists. */
    json_t *detail = json_pack("{s:s, s:s}", "bounce_type", "hard", "reason", "5.1.1 no user");
    assert_int_equal(db_begin(&d, true), MC_ERR_OK);
    assert_int_equal(db_event_message(&d, a.id, msg, "message.bounced", detail, now), MC_ERR_OK);
    db_rollback(&d);
    db_put(&d);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM events WHERE type = 'message.bounced' "
                                 "AND tenant_id = $1", a.id), 0);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE tenant_id = $1",
                             a.id), 1); /* campaign.started's */
    /* Committed: one event, one delivery (to the endpoint subscribed to everything). */
    assert_int_equal(db_get(st, &d), MC_ERR_OK);
    assert_int_equal(db_begin(&d, true), MC_ERR_OK);
    assert_int_equal(db_event_message(&d, a.id, msg, "message.bounced", detail, now), MC_ERR_OK);
    assert_int_equal(db_event_message(&d, b.id, msg, "message.bounced", detail, now),
                     MC_ERR_NOT_FOUND);
    assert_int_equal(db_event_message(&d, a.id, msg, "message.lost", detail, now),
                     MC_ERR_NOT_FOUND);
    assert_int_equal(db_commit(&d), MC_ERR_OK);
    db_put(&d);
    json_decref(detail);
    struct event_filter f = {.type = "message.bounced", .limit = 10};
    struct event_vec ev = {0};
    assert_int_equal(store_event_list(st, a.id, &f, &ev), MC_ERR_OK);
    assert_int_equal(ev.n, 1);
    json_t *data = json_loads(ev.items[0].data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(data, "message_id")), msg);
    assert_string_equal(json_string_value(json_object_get(data, "campaign_id")), c.id);
    assert_string_equal(json_string_value(json_object_get(data, "email")), "Ev@example.com");
    assert_string_equal(json_string_value(json_object_get(data, "reason")), "5.1.1 no user");
    json_decref(data);
    event_vec_cleanup(&ev);
    assert_int_equal(store_event_list(st, b.id, &f, &ev), MC_ERR_OK);
    assert_int_equal(ev.n, 0); /* the other tenant sees none */
    event_vec_cleanup(&ev);
    /* campaign.started went to "*" too: two deliveries, none to the message.sent endpoint. */
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1",
                             all.id), 2);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1",
                             sent_only.id), 0);

    /* Claims: a cap of 1 per endpoint, leases, fencing, recovery. */
    now = time_now_us();
    assert_int_equal(store_webhook_claim(st, "o1", now, 1000000, 10, 1, "{}", &jobs), MC_ERR_OK);
    assert_int_equal(jobs.n, 1);
    assert_string_equal(jobs.items[0].endpoint_id, all.id);
    assert_int_equal(jobs.items[0].attempts, 1);
    assert_non_null(strstr(jobs.items[0].body, "\"type\":"));
    struct webhook_result res = {.kind = WH_RESULT_OK, .status_code = 200, .attempts = 1};
    memcpy(res.id, jobs.items[0].id, sizeof(res.id));
    memcpy(res.endpoint_id, all.id, sizeof(res.endpoint_id));
    webhook_job_vec_cleanup(&jobs);
    char busy[80];
    snprintf(busy, sizeof(busy), "{\"%s\": 1}", all.id);
    assert_int_equal(store_webhook_claim(st, "o2", now, 1000000, 10, 1, busy, &jobs), MC_ERR_OK);
    assert_int_equal(jobs.n, 0); /* the endpoint is at its cap in this worker */
    webhook_job_vec_cleanup(&jobs);
    assert_int_equal(store_webhook_claim(st, "o2", now, 1000000, 10, 1, "{}", &jobs), MC_ERR_OK);
    assert_int_equal(jobs.n, 1);
    webhook_job_vec_cleanup(&jobs);
    /* A record under another owner changes nothing; the right one succeeds. */
    assert_int_equal(store_webhook_record(st, "o2", now, &res, 1, 1), MC_ERR_OK);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 "
                                 "AND status = 'succeeded'", all.id), 0);
    assert_int_equal(store_webhook_record(st, "o1", now, &res, 1, 1), MC_ERR_OK);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 "
                                 "AND status = 'succeeded'", all.id), 1);
    /* o2's lease expires: pending again, its attempt counted. */
    assert_int_equal(store_webhook_recover(st, now + 2000000, &n), MC_ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 "
                                 "AND status = 'pending' AND attempts = 1", all.id), 1);
    /* Released unsent (the sender's queue on stop): pending at once, the claim not
     * counted; fenced on owner and attempt like a result. */
    assert_int_equal(store_webhook_claim(st, "o3", now + 2000000, 1000000, 10, 1, "{}", &jobs),
                     MC_ERR_OK);
    assert_int_equal(jobs.n, 1);
    assert_int_equal(jobs.items[0].attempts, 2);
    assert_int_equal(store_webhook_release(st, "o2", now, jobs.items, 1, &n), MC_ERR_OK);
    assert_int_equal(n, 0);
    jobs.items[0].attempts = 1;
    assert_int_equal(store_webhook_release(st, "o3", now, jobs.items, 1, &n), MC_ERR_OK);
    assert_int_equal(n, 0);
    jobs.items[0].attempts = 2;
    assert_int_equal(store_webhook_release(st, "o3", now, jobs.items, 1, &n), MC_ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 "
                                 "AND status = 'pending' AND attempts = 1 AND lease_owner IS NULL",
                             all.id), 1);
    webhook_job_vec_cleanup(&jobs);
    /* A failure recorded: pending again at its next attempt, the error kept, no status code. */
    assert_int_equal(store_webhook_claim(st, "o4", now + 2000000, 1000000, 10, 1, "{}", &jobs),
                     MC_ERR_OK);
    assert_int_equal(jobs.n, 1);
    struct webhook_result fail = {.kind = WH_RESULT_FAIL, .attempts = 2, .latency_ms = 7,
                                  .error = "connect", .next_attempt_at = now + 60000000};
    memcpy(fail.id, jobs.items[0].id, sizeof(fail.id));
    memcpy(fail.endpoint_id, all.id, sizeof(fail.endpoint_id));
    webhook_job_vec_cleanup(&jobs);
    assert_int_equal(store_webhook_record(st, "o4", now, &fail, 1, 1000000000), MC_ERR_OK);
    assert_int_equal(one_int(st, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 "
                                 "AND status = 'pending' AND attempts = 2 AND last_error = 'connect' "
                                 "AND last_status_code IS NULL AND last_latency_ms = 7",
                             all.id), 1);
    struct db_param pn[] = {P_TEXT(all.id), P_TIME(now + 60000000)};
    assert_int_equal(db_get(st, &d), MC_ERR_OK);
    int64_t due = 0;
    assert_int_equal(db_one_int(&d, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = "
                                    "$1 AND next_attempt_at = $2", pn, NPARAMS(pn), &due),
                     MC_ERR_OK);
    db_put(&d);
    assert_int_equal(due, 1);

    webhook_cleanup(&all);
    webhook_cleanup(&sent_only);
    campaign_cleanup(&c);
    recipient_list_cleanup(&l);
    tenant_cleanup(&a);
    tenant_cleanup(&b);
}

int
main(void)
{
    /* Order matters: migrate first, the schema-version check last. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_idempotent),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_keys_two_tenants),
        cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_list_counts_two_tenants),
        cmocka_unit_test(test_campaign_counts),
        cmocka_unit_test(test_lists_two_tenants),
        cmocka_unit_test(test_recipients_two_tenants),
        cmocka_unit_test(test_import_and_suppression),
        cmocka_unit_test(test_import_ids_time_ordered),
        cmocka_unit_test(test_campaign_state_machine),
        cmocka_unit_test(test_campaign_crud_two_tenants),
        cmocka_unit_test(test_materialize_and_complete),
        cmocka_unit_test(test_claim_rate_windows),
        cmocka_unit_test(test_bounce_stays_in_its_tenant),
        cmocka_unit_test(test_claim_pacing),
        cmocka_unit_test(test_claim_site_pacing),
        cmocka_unit_test(test_lease_expiry_poison_bound),
        cmocka_unit_test(test_bounces_two_tenants),
        cmocka_unit_test(test_bounce_batch_all_or_nothing),
        cmocka_unit_test(test_bounce_batch_duplicates),
        cmocka_unit_test(test_counts_follow_claims_and_sends),
        cmocka_unit_test(test_release_keeps_attempts_and_last_error),
        cmocka_unit_test(test_stopped_names_campaigns_no_longer_sending),
        cmocka_unit_test(test_campaign_timeline),
        cmocka_unit_test(test_events_outbox_and_webhook_claims),
        cmocka_unit_test(test_schema_newer_is_refused),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("store/sqlite", tests, setup_sqlite, teardown);
    failed += cmocka_run_group_tests_name("store/postgres", tests, setup_pg, teardown);
    return failed;
}
