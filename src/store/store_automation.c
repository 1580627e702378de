/*
 * store_automation.c - automation on receivers' replies (issue 15): match
 * the relay's replies against the shaping document's automation rules,
 * count them, put actions in force, list and lift them.  Claims obey what
 * is in force (store_claim.c); this file does not pace or hold anything.
 *
 * DESIGN
 * A matching reply adds a row to shaping_hits; when a rule's trigger count
 * is reached within its period, its hits are deleted (the next firing needs
 * as many again) and its action is upserted into shaping_state, keyed on
 * (egress, site, tenant, action): a rule firing again while in force
 * extends it.  Everything runs in one transaction per batch of replies (one
 * per group commit), so workers sharing the database count together.
 * Replies mailcast makes up itself (a connection refused, a timeout, a
 * SIZE refusal) never reach here: the caller passes only the relay's.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

static bool
rule_matches(const struct shaping_auto *a, const regex_t *re, const struct shaping_obs *o)
{
    if (strcmp(a->site, "*") != 0 && strcmp(a->site, o->site) != 0)
        return false;
    if (a->match_code && a->match_code != o->code)
        return false;
    if (a->match_enhanced[0] && strncmp(o->enhanced, a->match_enhanced,
                                        strlen(a->match_enhanced)) != 0)
        return false;
    return re == NULL || regexec(re, o->text, 0, NULL, 0) == 0;
}

/* Counts one matching reply; fires the rule when its trigger is reached. */
static mc_err
hit(struct db *d, int pos, const struct shaping_auto *a, const struct shaping_obs *o,
    int64_t now, int *fired)
{
    const char *tenant = strcmp(a->action, "suspend_tenant") == 0 ? o->tenant_id : "";
    int64_t since = now - a->trigger_period_s * 1000000LL, n = 0;
    /* The rule's hits: position, egress, site, tenant; then the time. */
    struct db_param p[] = {P_INT(pos), P_TEXT(a->egress), P_TEXT(o->site), P_TEXT(tenant),
                           P_INT(now)};
    struct db_param pc[] = {p[0], p[1], p[2], p[3], P_INT(since)};
    char id[MC_UUID_LEN + 1], reply[320];
    mc_err err;

    err = db_exec(d,
                  "INSERT INTO shaping_hits (position, egress, site, tenant_key, at) "
                  "VALUES ($1, $2, $3, $4, $5)",
                  p, 5, NULL);
    if (err == MC_ERR_OK)
        err = db_one_int(d,
                         "SELECT COUNT(*) FROM shaping_hits WHERE position = $1 AND egress = $2 "
                         "AND site = $3 AND tenant_key = $4 AND at >= $5",
                         pc, NPARAMS(pc), &n);
    if (err != MC_ERR_OK || n < a->trigger_count)
        return err;
    err = db_exec(d,
                  "DELETE FROM shaping_hits WHERE position = $1 AND egress = $2 AND site = $3 "
                  "AND tenant_key = $4",
                  p, 4, NULL);
    crypto_uuid(id);
    snprintf(reply, sizeof(reply), "%d%s%s %s", o->code, o->enhanced[0] ? " " : "",
             o->enhanced, o->text);
    struct db_param q[] = {P_TEXT(id),
                           P_TEXT(a->egress),
                           P_TEXT(o->site),
                           P_TEXT(tenant),
                           P_TEXT(a->action),
                           a->per_second ? P_INT(a->per_second) : P_NULL,
                           a->per_minute ? P_INT(a->per_minute) : P_NULL,
                           P_INT(pos),
                           P_TEXT(reply),
                           P_INT(now),
                           P_INT(now + a->duration_s * 1000000LL)};
    if (err == MC_ERR_OK)
        err = db_exec(d,
                      "INSERT INTO shaping_state (id, egress, site, tenant_key, action, "
                      "per_second, per_minute, position, last_reply, since_at, until_at) "
                      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                      "ON CONFLICT (egress, site, tenant_key, action) DO UPDATE SET "
                      "per_second = excluded.per_second, per_minute = excluded.per_minute, "
                      "position = excluded.position, last_reply = excluded.last_reply, "
                      "since_at = CASE WHEN shaping_state.until_at > excluded.since_at "
                      "THEN shaping_state.since_at ELSE excluded.since_at END, "
                      "until_at = excluded.until_at",
                      q, NPARAMS(q), NULL);
    if (err == MC_ERR_OK) {
        (*fired)++;
        log_warn("event=shaping_fired rule=%d egress=%s site=%s tenant=%s action=%s "
                 "duration_s=%lld code=%d",
                 pos, a->egress, o->site, tenant[0] ? tenant : "*", a->action,
                 (long long)a->duration_s, o->code);
    }
    return err;
}

mc_err
store_shaping_observe(struct store *st, const char *egress, const struct shaping_obs *obs, int n,
                      int64_t now, int *fired)
{
    struct shaping_auto *autos = NULL;
    regex_t *re = NULL;
    bool *re_ok = NULL;
    int nautos = 0;
    struct db d;
    mc_err err;

    *fired = 0;
    if (n == 0)
        return MC_ERR_OK;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    if ((err = shaping_autos_read(&d, &autos, &nautos)) != MC_ERR_OK || nautos == 0)
        goto done;
    re = xcalloc((size_t)nautos, sizeof(*re));
    re_ok = xcalloc((size_t)nautos, sizeof(*re_ok));
    for (int i = 0; i < nautos; i++)
        if (autos[i].match_regex[0])
            re_ok[i] = regcomp(&re[i], autos[i].match_regex,
                               REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
    for (int k = 0; k < n && err == MC_ERR_OK; k++)
        for (int i = 0; i < nautos && err == MC_ERR_OK; i++) {
            /* An observation names the egress it went through; else the argument's. */
            if (strcmp(autos[i].egress, obs[k].egress[0] ? obs[k].egress : egress) != 0)
                continue;
            if (autos[i].match_regex[0] && !re_ok[i])
                continue; /* validated at PUT; a regex this libc refuses matches nothing */
            /* The document's position is the rule's stored position. */
            if (rule_matches(&autos[i], autos[i].match_regex[0] ? &re[i] : NULL, &obs[k]))
                err = hit(&d, i, &autos[i], &obs[k], now, fired);
        }
done:
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_put(&d);
    for (int i = 0; re_ok && i < nautos; i++)
        if (re_ok[i])
            regfree(&re[i]);
    free(re);
    free(re_ok);
    free(autos);
    return err;
}

static void
state_row(struct db *d, struct db_res *r, void *out)
{
    struct shaping_state *x = out;
    const char *s;

#define TXT(col, dst) snprintf(dst, sizeof(dst), "%s", (s = d->ops->col_text(r, col)) ? s : "")
    TXT(0, x->id);
    TXT(1, x->egress);
    TXT(2, x->site);
    TXT(3, x->tenant_id);
    TXT(4, x->action);
    x->per_second = d->ops->col_int(r, 5);
    x->per_minute = d->ops->col_int(r, 6);
    x->position = (int)d->ops->col_int(r, 7);
    TXT(8, x->last_reply);
    x->since = d->ops->col_int(r, 9);
    x->until = d->ops->col_int(r, 10);
#undef TXT
}

mc_err
store_shaping_state_list(struct store *st, int64_t now, struct shaping_state **out, int *n)
{
    struct db_param p[] = {P_INT(now)};
    struct db d;
    mc_err err;

    *out = NULL;
    *n = 0;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    err = db_fetch_all(&d,
                       "SELECT id, egress, site, tenant_key, action, per_second, per_minute, "
                       "position, last_reply, since_at, until_at FROM shaping_state "
                       "WHERE until_at > $1 ORDER BY until_at, id",
                       p, NPARAMS(p), state_row, sizeof(**out), (void **)out, n);
    db_put(&d);
    return err;
}

/*
 * Messages a suspension held wait with their next attempt at its end (the
 * claim's slot); lifting it brings those of its site (and tenant) back at
 * once, not an hour later.  A second either side covers the conversion of
 * the slot to a timestamp.
 */
static const char sql_unhold_sqlite[] =
    "UPDATE scheduled_messages SET next_attempt_at = $2 WHERE status = 'pending' AND EXISTS "
    "(SELECT 1 FROM shaping_state s WHERE s.id = $1 AND s.action <> 'set_rate' AND "
    "s.until_at > $2 AND scheduled_messages.site = s.site AND (s.tenant_key IN ('', '*') OR "
    "s.tenant_key = scheduled_messages.tenant_id) AND scheduled_messages.next_attempt_at "
    "BETWEEN s.until_at - 1000000 AND s.until_at + 1000000)";
static const char sql_unhold_pg[] =
    "UPDATE scheduled_messages m SET next_attempt_at = to_timestamp($2 / 1000000.0) "
    "FROM shaping_state s WHERE s.id = $1 AND s.action <> 'set_rate' AND s.until_at > $2 AND "
    "m.status = 'pending' AND m.site = s.site AND (s.tenant_key IN ('', '*') OR "
    "s.tenant_key = m.tenant_id::text) AND m.next_attempt_at BETWEEN "
    "to_timestamp((s.until_at - 1000000) / 1000000.0) AND "
    "to_timestamp((s.until_at + 1000000) / 1000000.0)";

mc_err
store_shaping_state_lift(struct store *st, const char *id)
{
    struct db_param p[] = {P_TEXT(id), P_INT(time_now_us())};
    int64_t changes = 0;
    struct db d;
    mc_err err;

    if (!store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    err = db_exec(&d, d.ops->dialect == DB_PG ? sql_unhold_pg : sql_unhold_sqlite, p,
                  NPARAMS(p), NULL);
    if (err == MC_ERR_OK)
        err = db_exec(&d, "DELETE FROM shaping_state WHERE id = $1 AND until_at > $2", p,
                      NPARAMS(p), &changes);
    if (err == MC_ERR_OK && changes == 0)
        err = MC_ERR_NOT_FOUND;
    if (err == MC_ERR_OK)
        err = db_commit(&d);
    else
        db_rollback(&d);
out:
    db_put(&d);
    if (err == MC_ERR_OK)
        log_info("event=shaping_lifted id=%s", id);
    return err;
}

mc_err
shaping_state_prune(struct db *d, int64_t now)
{
    struct db_param p[] = {P_INT(now), P_INT(now - 86400 * 1000000LL)};
    mc_err err = db_exec(d, "DELETE FROM shaping_state WHERE until_at <= $1", p, 1, NULL);

    /* Hits older than a day count for no trigger (periods are at most a day). */
    if (err == MC_ERR_OK)
        err = db_exec(d, "DELETE FROM shaping_hits WHERE at < $1", p + 1, 1, NULL);
    return err;
}
