/*
 * store_automation.c - automation on receivers' replies (issue 15): match
 * the relay's replies against the shaping document's automation rules,
 * count them, put actions in force, list and lift them.  Claims obey what
 * is in force (store_claim.c), the delivery worker the connection caps
 * (delivery_sites.c); this file does not pace or hold anything.
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
 *
 * Deferral ratios: each group commit also hands over, per (egress, site),
 * how many of the relay's replies it saw and how many were deferrals.  For
 * sites a ratio or scale_rate rule covers they are added to one row per
 * second in shaping_attempts (one upsert per site and batch, never a row
 * per message).  A ratio rule sums the seconds of its period since its
 * last firing (a row of its own in shaping_hits) and fires when at least
 * min_attempts were seen and more than its ratio of them deferred.
 * scale_rate scales the rate in force at the site at that moment: its
 * shaping rule's rate tightened by any rate automation has in force (so a
 * second firing halves again), or, when the site has neither, the rate its
 * attempts arrived at: their count over the seconds from the first of them
 * in the trigger's period (at least a minute) to now.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/pace.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "store_int.h"

#define PPM 1000000LL

static bool
site_covered(const struct shaping_auto *a, const char *site)
{
    return strcmp(a->site, "*") == 0 || strcmp(a->site, site) == 0;
}

/* Rules that need the attempts counted at the sites they cover. */
static bool
counts_attempts(const struct shaping_auto *a)
{
    return a->ratio_ppm > 0 || strcmp(a->action, "scale_rate") == 0;
}

static bool
rule_matches(const struct shaping_auto *a, const regex_t *re, const struct shaping_obs *o)
{
    if (!site_covered(a, o->site))
        return false;
    if (a->match_code && a->match_code != o->code)
        return false;
    if (a->match_enhanced[0] && strncmp(o->enhanced, a->match_enhanced,
                                        strlen(a->match_enhanced)) != 0)
        return false;
    return re == NULL || regexec(re, o->text, 0, NULL, 0) == 0;
}

/* Why a rule fires: where, for whom, on which reply or counts. */
struct firing {
    const char *egress, *site;
    const char *tenant; /* "": every tenant */
    char reply[320];
    int code;                     /* the reply's, for the log; 0: none */
    int64_t attempts, deferrals;  /* a deferral ratio's counts; 0: a count trigger */
};

struct two_ints {
    int64_t a, b;
};

static void
two_ints_row(struct db *d, struct db_res *r, void *out)
{
    struct two_ints *x = out;

    x->a = d->ops->col_int(r, 0);
    x->b = d->ops->col_int(r, 1);
}

struct rate_row {
    char site[SHAPING_NAME_MAX + 1];
    int64_t per_second, per_minute;
};

static void
rate_row(struct db *d, struct db_res *r, void *out)
{
    struct rate_row *x = out;
    const char *s = d->ops->col_text(r, 2);

    x->per_second = d->ops->col_int(r, 0);
    x->per_minute = d->ops->col_int(r, 1);
    snprintf(x->site, sizeof(x->site), "%s", s ? s : "");
}

/* Attempts and deferrals at (egress, site) in the seconds from from_s on. */
static mc_err
attempts_since(struct db *d, const char *egress, const char *site, int64_t from_s,
               struct two_ints *out)
{
    struct db_param p[] = {P_TEXT(egress), P_TEXT(site), P_INT(from_s)};

    memset(out, 0, sizeof(*out));
    return db_fetch_one(d,
                        "SELECT COALESCE(SUM(attempts), 0), COALESCE(SUM(deferrals), 0) FROM "
                        "shaping_attempts WHERE egress = $1 AND site = $2 AND second >= $3",
                        p, NPARAMS(p), two_ints_row, out);
}

/*
 * The rate scale_rate leaves at (egress, site), a per minute (0: nothing
 * to scale): see the DESIGN above for what the rate in force is.  The
 * result is whole messages a minute, at least one.
 */
static mc_err
scaled_rate(struct db *d, const struct shaping_auto *a, const char *egress, const char *site,
            int64_t now, int64_t *per_minute)
{
    struct db_param p[] = {P_TEXT(egress), P_TEXT(site), P_INT(now)};
    struct rate_row *rules = NULL, *states = NULL;
    int nrules = 0, nstates = 0;
    int64_t iv = 0, rule_iv = 0;
    mc_err err;

    *per_minute = 0;
    /* As the claim reads them: the site's rule with a rate, else the egress's '*'. */
    err = db_fetch_all(d,
                       "SELECT per_second, per_minute, site FROM shaping_rules WHERE egress = $1 "
                       "AND site IN ($2, '*') AND (per_second IS NOT NULL OR "
                       "per_minute IS NOT NULL)",
                       p, 2, rate_row, sizeof(*rules), (void **)&rules, &nrules);
    if (err == MC_ERR_OK)
        err = db_fetch_all(d,
                           "SELECT per_second, per_minute, site FROM shaping_state WHERE "
                           "egress = $1 AND site = $2 AND action IN ('set_rate', 'scale_rate') "
                           "AND until_at > $3",
                           p, 3, rate_row, sizeof(*states), (void **)&states, &nstates);
    for (int i = 0; i < nrules; i++)
        if (strcmp(rules[i].site, site) == 0 || rule_iv == 0)
            rule_iv = pace_interval(rules[i].per_second, rules[i].per_minute);
    iv = rule_iv;
    for (int i = 0; i < nstates; i++) {
        int64_t s_iv = pace_interval(states[i].per_second, states[i].per_minute);
        iv = s_iv > iv ? s_iv : iv;
    }
    free(rules);
    free(states);
    if (err == MC_ERR_OK && iv == 0) {
        /* The rate its attempts arrived at, over the seconds they span in the window. */
        int64_t w = a->trigger_period_s > 60 ? a->trigger_period_s : 60;
        int64_t from = now / 1000000 - w + 1, first = from;
        struct db_param pf[] = {P_TEXT(egress), P_TEXT(site), P_INT(from)};
        struct two_ints seen;
        err = attempts_since(d, egress, site, from, &seen);
        if (err == MC_ERR_OK && seen.a > 0)
            err = db_one_int(d,
                             "SELECT COALESCE(MIN(second), $3) FROM shaping_attempts WHERE "
                             "egress = $1 AND site = $2 AND second >= $3",
                             pf, NPARAMS(pf), &first);
        if (err == MC_ERR_OK && seen.a > 0) {
            int64_t span = now / 1000000 - first + 1;
            iv = (span > 0 ? span : 1) * 1000000 / seen.a;
        }
    }
    if (err != MC_ERR_OK || iv <= 0)
        return err;
    /* The interval grows as the rate shrinks: T / factor. */
    iv = iv * PPM / a->factor_ppm;
    *per_minute = iv > 0 ? 60 * 1000000 / iv : 1;
    if (*per_minute < 1)
        *per_minute = 1;
    return MC_ERR_OK;
}

static struct db_param
opt_int(int64_t v)
{
    return v > 0 ? P_INT(v) : P_NULL;
}

/* Puts rule pos's action in force for f (or extends it), *fired + 1. */
static mc_err
fire(struct db *d, int pos, const struct shaping_auto *a, const struct firing *f, int64_t now,
     int *fired)
{
    int64_t per_second = 0, per_minute = 0, max_conns = 0;
    char id[MC_UUID_LEN + 1];
    mc_err err = MC_ERR_OK;

    if (strcmp(a->action, "set_rate") == 0) {
        per_second = a->per_second;
        per_minute = a->per_minute;
    } else if (strcmp(a->action, "scale_rate") == 0) {
        if ((err = scaled_rate(d, a, f->egress, f->site, now, &per_minute)) != MC_ERR_OK)
            return err;
        if (per_minute == 0) {
            log_warn("event=shaping_not_fired rule=%d egress=%s site=%s "
                     "why=\"no rate to scale\"",
                     pos, f->egress, f->site);
            return MC_ERR_OK;
        }
    } else if (strcmp(a->action, "set_connections") == 0)
        max_conns = a->max_connections;
    crypto_uuid(id);
    struct db_param q[] = {P_TEXT(id),
                           P_TEXT(f->egress),
                           P_TEXT(f->site),
                           P_TEXT(f->tenant),
                           P_TEXT(a->action),
                           opt_int(per_second),
                           opt_int(per_minute),
                           P_INT(pos),
                           P_TEXT(f->reply),
                           P_INT(now),
                           P_INT(now + a->duration_s * 1000000LL),
                           opt_int(max_conns),
                           opt_int(f->attempts),
                           f->attempts > 0 ? P_INT(f->deferrals) : P_NULL};
    err = db_exec(d,
                  "INSERT INTO shaping_state (id, egress, site, tenant_key, action, "
                  "per_second, per_minute, position, last_reply, since_at, until_at, "
                  "max_connections, attempts, deferrals) "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
                  "ON CONFLICT (egress, site, tenant_key, action) DO UPDATE SET "
                  "per_second = excluded.per_second, per_minute = excluded.per_minute, "
                  "max_connections = excluded.max_connections, attempts = excluded.attempts, "
                  "deferrals = excluded.deferrals, "
                  "position = excluded.position, last_reply = excluded.last_reply, "
                  "since_at = CASE WHEN shaping_state.until_at > excluded.since_at "
                  "THEN shaping_state.since_at ELSE excluded.since_at END, "
                  "until_at = excluded.until_at",
                  q, NPARAMS(q), NULL);
    if (err == MC_ERR_OK) {
        (*fired)++;
        log_warn("event=shaping_fired rule=%d egress=%s site=%s tenant=%s action=%s "
                 "duration_s=%lld code=%d attempts=%lld deferrals=%lld per_minute=%lld "
                 "max_connections=%lld",
                 pos, f->egress, f->site, f->tenant[0] ? f->tenant : "*", a->action,
                 (long long)a->duration_s, f->code, (long long)f->attempts,
                 (long long)f->deferrals, (long long)per_minute, (long long)max_conns);
    }
    return err;
}

static void
reply_text(char *dst, size_t len, const struct shaping_obs *o)
{
    snprintf(dst, len, "%d%s%s %s", o->code, o->enhanced[0] ? " " : "", o->enhanced, o->text);
}

/* Counts one matching reply; fires the rule when its trigger is reached. */
static mc_err
hit(struct db *d, int pos, const struct shaping_auto *a, const struct shaping_obs *o,
    const char *egress, int64_t now, int *fired)
{
    const char *tenant = strcmp(a->action, "suspend_tenant") == 0 ? o->tenant_id : "";
    int64_t since = now - a->trigger_period_s * 1000000LL, n = 0;
    /* The rule's hits: position, egress, site, tenant; then the time. */
    struct db_param p[] = {P_INT(pos), P_TEXT(egress), P_TEXT(o->site), P_TEXT(tenant),
                           P_INT(now)};
    struct db_param pc[] = {p[0], p[1], p[2], p[3], P_INT(since)};
    struct firing f = {.egress = egress, .site = o->site, .tenant = tenant, .code = o->code};
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
    reply_text(f.reply, sizeof(f.reply), o);
    if (err == MC_ERR_OK)
        err = fire(d, pos, a, &f, now, fired);
    return err;
}

/*
 * Checks ratio rule pos at (egress, site): the attempts of its period since
 * its last firing.  The reply shown is the last deferral of this batch at
 * the site, if there is one.
 */
static mc_err
ratio_check(struct db *d, int pos, const struct shaping_auto *a, const char *egress,
            const char *site, const struct shaping_obs *obs, int n, const char *obs_egress,
            int64_t now, int *fired)
{
    struct db_param p[] = {P_INT(pos), P_TEXT(egress), P_TEXT(site), P_INT(now)};
    int64_t from_s = now / 1000000 - a->trigger_period_s + 1, last = 0;
    struct firing f = {.egress = egress, .site = site, .tenant = ""};
    struct two_ints seen;
    mc_err err;

    err = db_one_int(d,
                     "SELECT COALESCE(MAX(at), 0) FROM shaping_hits WHERE position = $1 AND "
                     "egress = $2 AND site = $3 AND tenant_key = ''",
                     p, 3, &last);
    /* The second of the last firing counted for it. */
    if (err == MC_ERR_OK && last / 1000000 + 1 > from_s)
        from_s = last / 1000000 + 1;
    if (err == MC_ERR_OK)
        err = attempts_since(d, egress, site, from_s, &seen);
    if (err != MC_ERR_OK || seen.a < a->min_attempts || seen.b * PPM <= a->ratio_ppm * seen.a)
        return err;
    err = db_exec(d,
                  "DELETE FROM shaping_hits WHERE position = $1 AND egress = $2 AND site = $3 "
                  "AND tenant_key = ''",
                  p, 3, NULL);
    if (err == MC_ERR_OK)
        err = db_exec(d,
                      "INSERT INTO shaping_hits (position, egress, site, tenant_key, at) "
                      "VALUES ($1, $2, $3, '', $4)",
                      p, NPARAMS(p), NULL);
    f.attempts = seen.a;
    f.deferrals = seen.b;
    for (int k = n - 1; k >= 0; k--) {
        const char *oe = obs[k].egress[0] ? obs[k].egress : obs_egress;
        if (obs[k].code >= 400 && obs[k].code < 500 && strcmp(obs[k].site, site) == 0 &&
            strcmp(oe, egress) == 0) {
            reply_text(f.reply, sizeof(f.reply), &obs[k]);
            f.code = obs[k].code;
            break;
        }
    }
    if (err == MC_ERR_OK)
        err = fire(d, pos, a, &f, now, fired);
    return err;
}

/* Whether any rule of autos counts the attempts of tally t. */
static bool
tally_needed(const struct shaping_auto *autos, int nautos, const struct shaping_tally *t,
             const char *egress)
{
    for (int i = 0; i < nautos; i++)
        if (counts_attempts(&autos[i]) && strcmp(autos[i].egress, egress) == 0 &&
            site_covered(&autos[i], t->site))
            return true;
    return false;
}

static const char *
tally_egress(const struct shaping_tally *t, const char *egress)
{
    return t->egress[0] ? t->egress : egress;
}

/* Adds the tallies some rule needs to their site's second (before any rule fires on them). */
static mc_err
tallies_add(struct db *d, const struct shaping_auto *autos, int nautos,
            const struct shaping_tally *tl, int ntl, const char *egress, int64_t now)
{
    mc_err err = MC_ERR_OK;

    for (int k = 0; k < ntl && err == MC_ERR_OK; k++) {
        const char *eg = tally_egress(&tl[k], egress);
        struct db_param p[] = {P_TEXT(eg), P_TEXT(tl[k].site), P_INT(now / 1000000),
                               P_INT(tl[k].attempts), P_INT(tl[k].deferrals)};
        if (tl[k].attempts <= 0 || !tally_needed(autos, nautos, &tl[k], eg))
            continue;
        err = db_exec(d,
                      "INSERT INTO shaping_attempts (egress, site, second, attempts, deferrals) "
                      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (egress, site, second) DO UPDATE "
                      "SET attempts = shaping_attempts.attempts + excluded.attempts, "
                      "deferrals = shaping_attempts.deferrals + excluded.deferrals",
                      p, NPARAMS(p), NULL);
    }
    return err;
}

/* Checks the ratio rules at the sites of this batch's tallies. */
static mc_err
ratios_check(struct db *d, const struct shaping_auto *autos, int nautos,
             const struct shaping_obs *obs, int n, const struct shaping_tally *tl, int ntl,
             const char *egress, int64_t now, int *fired)
{
    mc_err err = MC_ERR_OK;

    for (int i = 0; i < nautos && err == MC_ERR_OK; i++) {
        if (autos[i].ratio_ppm == 0)
            continue;
        for (int k = 0; k < ntl && err == MC_ERR_OK; k++) {
            const char *eg = tally_egress(&tl[k], egress);
            if (tl[k].attempts > 0 && strcmp(autos[i].egress, eg) == 0 &&
                site_covered(&autos[i], tl[k].site))
                err = ratio_check(d, i, &autos[i], eg, tl[k].site, obs, n, egress, now, fired);
        }
    }
    return err;
}

mc_err
store_shaping_observe(struct store *st, const char *egress, const struct shaping_obs *obs, int n,
                      const struct shaping_tally *tl, int ntl, int64_t now, int *fired)
{
    struct shaping_auto *autos = NULL;
    regex_t *re = NULL;
    bool *re_ok = NULL, needed = n > 0;
    int nautos = 0;
    struct db d;
    mc_err err;

    *fired = 0;
    if (n == 0 && ntl == 0)
        return MC_ERR_OK;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    /* Most batches hold only acceptances at sites no rule counts: a read, no write lock. */
    if ((err = shaping_autos_read(&d, &autos, &nautos)) != MC_ERR_OK || nautos == 0)
        goto out;
    for (int k = 0; k < ntl && !needed; k++)
        needed = tally_needed(autos, nautos, &tl[k], tally_egress(&tl[k], egress));
    free(autos);
    autos = NULL;
    nautos = 0;
    if (!needed)
        goto out;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    /* Again inside the transaction: a PUT in between renumbers the rules. */
    if ((err = shaping_autos_read(&d, &autos, &nautos)) != MC_ERR_OK || nautos == 0)
        goto done;
    re = xcalloc((size_t)nautos, sizeof(*re));
    re_ok = xcalloc((size_t)nautos, sizeof(*re_ok));
    for (int i = 0; i < nautos; i++)
        if (autos[i].match_regex[0])
            re_ok[i] = regcomp(&re[i], autos[i].match_regex,
                               REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
    err = tallies_add(&d, autos, nautos, tl, ntl, egress, now);
    for (int k = 0; k < n && err == MC_ERR_OK; k++)
        for (int i = 0; i < nautos && err == MC_ERR_OK; i++) {
            /* An observation names the egress it went through; else the argument's. */
            const char *eg = obs[k].egress[0] ? obs[k].egress : egress;
            if (autos[i].ratio_ppm > 0 || strcmp(autos[i].egress, eg) != 0)
                continue;
            if (autos[i].match_regex[0] && !re_ok[i])
                continue; /* validated at PUT; a regex this libc refuses matches nothing */
            /* The document's position is the rule's stored position. */
            if (rule_matches(&autos[i], autos[i].match_regex[0] ? &re[i] : NULL, &obs[k]))
                err = hit(&d, i, &autos[i], &obs[k], eg, now, fired);
        }
    if (err == MC_ERR_OK)
        err = ratios_check(&d, autos, nautos, obs, n, tl, ntl, egress, now, fired);
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

/* A state's columns, in state_row's order. */
#define STATE_COLUMNS                                                                    \
    "id, egress, site, tenant_key, action, per_second, per_minute, position, last_reply, " \
    "since_at, until_at, max_connections, attempts, deferrals"

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
    x->max_connections = d->ops->col_int(r, 11);
    x->attempts = d->ops->col_int(r, 12);
    x->deferrals = d->ops->col_int(r, 13);
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
                       "SELECT " STATE_COLUMNS " FROM shaping_state "
                       "WHERE until_at > $1 ORDER BY until_at, id",
                       p, NPARAMS(p), state_row, sizeof(**out), (void **)out, n);
    db_put(&d);
    return err;
}

/*
 * Messages a suspension held wait with their next attempt at its end (the
 * claim's slot); lifting it brings those of its site (and tenant) back at
 * once, not an hour later.  A second either side covers the conversion of
 * the slot to a timestamp.  On PostgreSQL the lift first waits for the
 * claims in flight (PG_LOCK_SHAPING_HOLD), so a claim that read the
 * suspension before the lift has deferred its messages by the time they
 * are brought back, and none after it reads it.  Held messages belong to
 * campaigns sending (or paused since): through those, each campaign's due
 * index finds them by time, not a scan of every pending message while the
 * claims wait.
 */
static const char sql_unhold_sqlite[] =
    "UPDATE scheduled_messages SET next_attempt_at = $1 WHERE campaign_id IN "
    "(SELECT id FROM campaigns WHERE status IN ('sending', 'paused') AND "
    "($3 IN ('', '*') OR tenant_id = $3)) AND status = 'pending' AND "
    "next_attempt_at BETWEEN $4 - 1000000 AND $4 + 1000000 AND site = $2";
static const char sql_unhold_pg[] =
    "UPDATE scheduled_messages SET next_attempt_at = to_timestamp($1::bigint / 1000000.0) "
    "WHERE campaign_id IN (SELECT id FROM campaigns WHERE status IN ('sending', 'paused') AND "
    "($3 IN ('', '*') OR tenant_id::text = $3)) AND status = 'pending' AND "
    "next_attempt_at BETWEEN to_timestamp(($4::bigint - 1000000) / 1000000.0) AND "
    "to_timestamp(($4::bigint + 1000000) / 1000000.0) AND site = $2";

mc_err
store_shaping_state_lift(struct store *st, const char *id)
{
    int64_t now = time_now_us();
    struct db_param p[] = {P_TEXT(id), P_INT(now)};
    struct db_param pl[] = {P_INT(PG_LOCK_SHAPING_HOLD)};
    struct shaping_state x = {0};
    struct db d;
    mc_err err = MC_ERR_OK;

    if (!store_id_ok(id))
        return MC_ERR_NOT_FOUND;
    if ((err = db_get(st, &d)) != MC_ERR_OK)
        return err;
    if ((err = db_begin(&d, true)) != MC_ERR_OK)
        goto out;
    if (d.ops->dialect == DB_PG)
        err = db_exec(&d, "SELECT pg_advisory_xact_lock($1)", pl, 1, NULL);
    if (err == MC_ERR_OK)
        err = db_fetch_one(&d,
                           "DELETE FROM shaping_state WHERE id = $1 AND until_at > $2 RETURNING "
                           STATE_COLUMNS,
                           p, NPARAMS(p), state_row, &x);
    if (err == MC_ERR_OK && strncmp(x.action, "suspend_", 8) == 0) {
        struct db_param pu[] = {P_INT(now), P_TEXT(x.site), P_TEXT(x.tenant_id),
                                P_INT(x.until)};
        err = db_exec(&d, d.ops->dialect == DB_PG ? sql_unhold_pg : sql_unhold_sqlite, pu,
                      NPARAMS(pu), NULL);
    }
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

    struct db_param pa[] = {P_INT(now / 1000000 - SHAPING_RATIO_PERIOD_MAX - 60)};

    /* Hits older than a day count for no trigger (periods are at most a day). */
    if (err == MC_ERR_OK)
        err = db_exec(d, "DELETE FROM shaping_hits WHERE at < $1", p + 1, 1, NULL);
    /* Attempts older than the longest ratio period count for none. */
    if (err == MC_ERR_OK)
        err = db_exec(d, "DELETE FROM shaping_attempts WHERE second < $1", pa, 1, NULL);
    return err;
}
