/*
 * config.c - the option table and its four layers.
 *
 * Adding an option is adding a line to opts[] and a field to struct
 * config.  The file format is deliberately small: "name = value" lines,
 * '#' comments, blank lines; values may be double-quoted.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "email.h"
#include "log.h"

enum opt_type { OPT_STR, OPT_INT };

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    const char *def; /* NULL: unset */
    int64_t min, max;
    bool secret;
    const char *help;
    const char *unset; /* for --help: what an option without a default means when unset */
};

#define STR(f) OPT_STR, offsetof(struct config, f)
#define INT(f) OPT_INT, offsetof(struct config, f)

static const struct opt opts[] = {
    {"listen", STR(listen), "127.0.0.1:8080", 0, 0, false, "HOST:PORT the API listens on", NULL},
    {"database", STR(database), "sqlite:./var/mailcast.db", 0, 0, true,
     "sqlite:PATH or postgres://USER@HOST/DB", NULL},
    {"operator_key", STR(operator_key), NULL, 0, 0, true,
     "operator key (at least 24 characters)", "generated and printed on the first start"},
    {"public_url", STR(public_url), "http://127.0.0.1:8080", 0, 0, false,
     "base URL of links placed in mail", NULL},
    {"log_level", STR(log_level), "info", 0, 0, false, "debug, info, warn or error", NULL},
    {"http_threads", INT(http_threads), "4", 1, 256, false, "HTTP worker threads", NULL},
    {"http_max_body", INT(http_max_body), "1048576", 1024, 1073741824, false,
     "largest JSON request body, bytes", NULL},
    {"http_max_connections", INT(http_max_connections), "4096", 1, 65536, false,
     "concurrent HTTP connections", NULL},
    {"http_timeout", INT(http_timeout), "60", 1, 3600, false,
     "seconds an idle HTTP connection is kept", NULL},
    {"db_pool_size", INT(db_pool_size), "8", 1, 256, false, "database connections", NULL},
    {"db_busy_timeout_ms", INT(db_busy_timeout_ms), "10000", 0, 600000, false,
     "SQLite busy timeout, milliseconds", NULL},
    {"shutdown_timeout", INT(shutdown_timeout), "30", 1, 3600, false,
     "seconds in-flight work gets on SIGTERM", NULL},
    {"max_page_size", INT(max_page_size), "1000", 1, 100000, false,
     "largest page a list endpoint returns", NULL},
    {"import_batch_size", INT(import_batch_size), "1000", 1, 100000, false,
     "rows an import writes per transaction", NULL},
    {"import_max_row", INT(import_max_row), "65536", 256, 16777216, false,
     "largest CSV row an import accepts, bytes", NULL},
    {"import_max_json", INT(import_max_json), "16777216", 1024, 1073741824, false,
     "largest JSON import body, bytes (use CSV beyond)", NULL},
    {"template_max", INT(template_max), "524288", 64, 16777216, false,
     "largest template (subject, html or text body), bytes", NULL},
    {"render_max", INT(render_max), "2097152", 256, 67108864, false,
     "largest rendering of one template, bytes", NULL},
    {"materialize_batch", INT(materialize_batch), "10000", 1, 1000000, false,
     "messages the campaign engine creates per transaction", NULL},
    {"engine_poll_ms", INT(engine_poll_ms), "500", 10, 60000, false,
     "how often the campaign engine looks for due work, ms (idle: see idle_poll_max_ms)", NULL},
    {"idle_poll_max_ms", INT(idle_poll_max_ms), "2000", 10, 60000, false,
     "an idle poller (engine, delivery, webhooks) doubles its interval up to this, ms; "
     "work found, or news from this process, brings it back", NULL},
    {"deliver", INT(deliver), "1", 0, 1, false, "1: serve also delivers mail; 0: API only", NULL},
    {"relay", STR(relay), "dir:./var/outbox", 0, 0, true,
     "smtp://[user:pass@]host[:port][?starttls=require|auto|off], smtps://..., or dir:PATH", NULL},
    {"return_path", STR(return_path), NULL, 0, 0, false,
     "envelope sender", "the campaign's From"},
    {"helo_name", STR(helo_name), NULL, 0, 0, false, "name given in EHLO",
     "this host's fully qualified name (else <hostname>.localdomain)"},
    {"list_unsubscribe_mailto", STR(list_unsubscribe_mailto), NULL, 0, 0, false,
     "a mailto: address added to List-Unsubscribe", "none"},
    {"smtp_ca_file", STR(smtp_ca_file), NULL, 0, 0, false,
     "CA bundle to verify the relay's certificate", "the system's"},
    {"smtp_verify", INT(smtp_verify), "1", 0, 1, false,
     "1: verify the relay's certificate and host name", NULL},
    {"smtp_connections", INT(smtp_connections), "8", 1, 1024, false,
     "connections to the relay at most", NULL},
    {"smtp_messages_per_connection", INT(smtp_messages_per_connection), "1000", 1, 1000000,
     false, "messages sent over one connection before it is renewed", NULL},
    {"smtp_connect_timeout", INT(smtp_connect_timeout), "30", 1, 600, false,
     "seconds for connect and greeting", NULL},
    {"smtp_command_timeout", INT(smtp_command_timeout), "60", 1, 600, false,
     "seconds for each command's reply", NULL},
    {"smtp_data_timeout", INT(smtp_data_timeout), "600", 1, 3600, false,
     "seconds for the reply after end of data (RFC 5321 says 600)", NULL},
    {"delivery_inflight", INT(delivery_inflight), "1024", 1, 100000, false,
     "messages a worker holds claimed at once (bounds duplicates after a crash)", NULL},
    {"delivery_batch", INT(delivery_batch), "256", 1, 10000, false,
     "messages claimed in one claim", NULL},
    {"delivery_poll_ms", INT(delivery_poll_ms), "200", 10, 60000, false,
     "how often a worker looks for due messages, ms (idle: see idle_poll_max_ms)", NULL},
    {"lease_seconds", INT(lease_seconds), "900", 2, 86400, false,
     "seconds a claim is held before another worker may take the message", NULL},
    {"retry_base", INT(retry_base), "30", 1, 86400, false, "seconds before the first retry", NULL},
    {"retry_cap", INT(retry_cap), "1800", 1, 604800, false, "longest wait between retries, s", NULL},
    {"retry_max_attempts", INT(retry_max_attempts), "5", 1, 100, false,
     "attempts before a message fails", NULL},
    {"dkim_required", INT(dkim_required), "0", 0, 1, false,
     "1: never send a campaign message unsigned (its From domain needs a DKIM key)", NULL},
    /* SMTP and fault hardening (issue 12) */
    {"smtp_idle_timeout", INT(smtp_idle_timeout), "30", 1, 3600, false,
     "seconds an idle relay connection is kept before QUIT (below the relay's own timeout)", NULL},
    {"smtp_dns_server", STR(smtp_dns_server), NULL, 0, 0, false,
     "nameserver IP[:port] that resolves the relay's name", "the system's (/etc/resolv.conf)"},
    {"test_send_timeout", INT(test_send_timeout), "20", 1, 3600, false,
     "seconds a test send waits for the relay at most (it holds an HTTP thread)", NULL},
    {"test_send_concurrency", INT(test_send_concurrency), "2", 1, 64, false,
     "test sends in progress at once (never more than half the HTTP threads)", NULL},
    {"lease_expiry_max", INT(lease_expiry_max), "10", 1, 1000, false,
     "lease expiries (worker crashes mid-send) before a message fails as poison", NULL},
    /* Bounces and complaints */
    {"bounce_domain", STR(bounce_domain), NULL, 0, 0, false,
     "domain of the VERP envelope senders", "return_path or the campaign's From"},
    {"bounce_max_message", INT(bounce_max_message), "10485760", 1024, 1073741824, false,
     "largest bounce or complaint message taken in, bytes (the listener's SIZE)", NULL},
    {"bounce_raw_max", INT(bounce_raw_max), "262144", 0, 16777216, false,
     "bytes of a report's raw message kept with its record", NULL},
    {"bounce_retention_days", INT(bounce_retention_days), "30", 1, 3650, false,
     "days bounce and complaint records are kept", NULL},
    {"bounce_listen", STR(bounce_listen), NULL, 0, 0, false,
     "HOST:PORT of the SMTP listener for bounces and complaints", "no listener"},
    {"bounce_feedback_address", STR(bounce_feedback_address), NULL, 0, 0, false,
     "a feedback-loop address the listener also accepts mail for", "none"},
    {"bounce_tls_cert", STR(bounce_tls_cert), NULL, 0, 0, false,
     "PEM certificate chain: the listener offers STARTTLS", "no STARTTLS"},
    {"bounce_tls_key", STR(bounce_tls_key), NULL, 0, 0, false,
     "PEM private key of bounce_tls_cert", "none"},
    {"bounce_max_connections", INT(bounce_max_connections), "100", 1, 100000, false,
     "concurrent SMTP sessions the listener serves (421 beyond)", NULL},
    {"bounce_max_connections_per_ip", INT(bounce_max_connections_per_ip), "10", 1, 100000,
     false, "listener sessions at once from one address", NULL},
    {"bounce_command_timeout", INT(bounce_command_timeout), "300", 1, 3600, false,
     "seconds the listener waits for a command or a piece of DATA", NULL},
    {"bounce_session_timeout", INT(bounce_session_timeout), "1800", 1, 86400, false,
     "seconds one listener session may last", NULL},
    /* The web console. */
    {"timeline_max_points", INT(timeline_max_points), "720", 2, 100000, false,
     "most points a campaign's timeline returns (its buckets widen past that)", NULL},
    /* Hardening against hostile clients (issue 12). */
    {"http_max_connections_per_ip", INT(http_max_connections_per_ip), "64", 1, 65536, false,
     "concurrent HTTP connections from one address", NULL},
    {"http_header_timeout", INT(http_header_timeout), "10", 1, 3600, false,
     "seconds a connection gets to send a request's whole header block", NULL},
    {"http_body_timeout", INT(http_body_timeout), "30", 1, 86400, false,
     "seconds a request body gets, plus its size at http_body_min_rate", NULL},
    {"http_body_min_rate", INT(http_body_min_rate), "16384", 1, 1073741824, false,
     "slowest body upload allowed, bytes per second", NULL},
    {"metrics_listen", STR(metrics_listen), NULL, 0, 0, false,
     "HOST:PORT serving /metrics without a key", "/metrics on the API port, operator key"},
    /* Pacing and shaping (issue 15) */
    {"pacing_burst", INT(pacing_burst), "5", 1, 10000, false,
     "messages a paced limit lets go at once after a pause (the rest are evenly spaced)", NULL},
    {"pacing_horizon_ms", INT(pacing_horizon_ms), "1000", 10, 1000, false,
     "how far ahead of its slot a paced message may be claimed, ms", NULL},
    {"shaping", STR(shaping), NULL, 0, 0, false,
     "JSON file of destination sites and shaping rules loaded at start (replaces the table)",
     "the table in the database is kept"},
    /* Egresses and egress pools (issue 15) */
    {"egress_max", INT(egress_max), "16", 1, 64, false,
     "egresses the operator may define, 'default' included", NULL},
    {"egress_pool_max", INT(egress_pool_max), "64", 1, 10000, false,
     "egress pools the operator may define, 'default' included", NULL},
    {"egress_pool_members_max", INT(egress_pool_members_max), "8", 1, 64, false,
     "egresses one pool may have", NULL},
    {"egress_weight_max", INT(egress_weight_max), "1000", 1, 1000000, false,
     "largest weight of a pool's member", NULL},
    /* Events and webhooks */
    {"event_retention_days", INT(event_retention_days), "30", 1, 3650, false,
     "days the event log keeps an event", NULL},
    {"webhook_max_endpoints", INT(webhook_max_endpoints), "10", 0, 1000, false,
     "webhook endpoints a tenant may have", NULL},
    {"webhook_allow_http", INT(webhook_allow_http), "0", 0, 1, false,
     "1: allow http:// webhook URLs (otherwise https only)", NULL},
    {"webhook_allow_cidr", STR(webhook_allow_cidr), NULL, 0, 0, false,
     "comma-separated CIDRs webhooks may reach despite the private-range guard", NULL},
    {"webhook_retry_schedule", STR(webhook_retry_schedule),
     "5,300,1800,7200,18000,36000,36000,50400,72000,86400", 0, 0, false,
     "seconds before each webhook retry (each +-20 %), comma-separated", NULL},
    {"webhook_concurrency", INT(webhook_concurrency), "64", 1, 1024, false,
     "webhook requests a worker has in flight at most", NULL},
    {"webhook_endpoint_concurrency", INT(webhook_endpoint_concurrency), "16", 1, 256, false,
     "webhook requests a process has in flight to one endpoint at most (per process)", NULL},
    {"webhook_connect_timeout", INT(webhook_connect_timeout), "5", 1, 60, false,
     "seconds to connect to a webhook endpoint", NULL},
    {"webhook_timeout", INT(webhook_timeout), "15", 1, 300, false,
     "seconds for a whole webhook request", NULL},
    {"webhook_secret_grace_hours", INT(webhook_secret_grace_hours), "24", 0, 720, false,
     "hours a rotated-out webhook secret still signs", NULL},
    {"webhook_disable_after_hours", INT(webhook_disable_after_hours), "120", 1, 8760, false,
     "hours of failures without a success that disable a webhook endpoint", NULL},
    {"webhook_poll_ms", INT(webhook_poll_ms), "200", 10, 60000, false,
     "how often the webhook sender looks for due deliveries, ms (idle: see idle_poll_max_ms)",
     NULL},
    {"webhook_replay_max", INT(webhook_replay_max), "10000", 1, 1000000, false,
     "deliveries one webhook replay may queue", NULL},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Raw string value of every option while the layers are applied. */
struct layered {
    char *val[NOPTS];        /* owned */
    const char *from[NOPTS]; /* where it came from, for messages */
};

static const struct opt *
find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

static void
set_raw(struct layered *l, const struct opt *o, const char *v, const char *from)
{
    size_t i = (size_t)(o - opts);

    free(l->val[i]);
    l->val[i] = xstrdup(v);
    l->from[i] = from;
}

static char *
trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static void
read_file(struct layered *l, const char *path, struct buf *errors)
{
    char line[4096];
    FILE *fp;
    int lineno = 0;

    fp = fopen(path, "r");
    if (fp == NULL) {
        buf_printf(errors, "config file %s: %s\n", path, strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *s, *eq, *name, *val;
        const struct opt *o;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(fp)) {
            buf_printf(errors, "%s:%d: line too long\n", path, lineno);
            break;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (eq == NULL) {
            buf_printf(errors, "%s:%d: expected \"name = value\"\n", path, lineno);
            continue;
        }
        *eq = '\0';
        name = trim(s);
        val = trim(eq + 1);
        if (*val == '"') {
            size_t n = strlen(val);
            if (n < 2 || val[n - 1] != '"') {
                buf_printf(errors, "%s:%d: unterminated quoted value\n", path, lineno);
                continue;
            }
            val[n - 1] = '\0';
            val++;
        }
        o = find_opt(name, strlen(name));
        if (o == NULL) {
            buf_printf(errors, "%s:%d: unknown option \"%s\"\n", path, lineno, name);
            continue;
        }
        set_raw(l, o, val, "config file");
    }
    fclose(fp);
}

static void
env_name(const struct opt *o, char *out, size_t n)
{
    size_t i = 0;
    const char *p;

    snprintf(out, n, "MAILCAST_");
    i = strlen(out);
    for (p = o->name; *p && i + 1 < n; p++)
        out[i++] = (char)toupper((unsigned char)*p);
    out[i] = '\0';
}

const char *
config_flag_option(const char *flag)
{
    char name[64];
    size_t n;

    if (!str_prefix(flag, "--"))
        return NULL;
    flag += 2;
    n = strcspn(flag, "=");
    if (n >= sizeof(name))
        return NULL;
    for (size_t i = 0; i < n; i++)
        name[i] = flag[i] == '-' ? '_' : flag[i];
    name[n] = '\0';
    const struct opt *o = find_opt(name, n);
    return o ? o->name : NULL;
}

bool
config_split_hostport(const char *s, char **host_out, int *port_out)
{
    const char *colon = strrchr(s, ':');
    int64_t port;
    const char *host = s;
    size_t hlen;

    if (colon == NULL || !parse_int64(colon + 1, 0, 65535, &port))
        return false;
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen == 0)
        return false;
    *host_out = xstrndup(host, hlen);
    *port_out = (int)port;
    return true;
}

static bool
parse_listen(struct config *cfg)
{
    return config_split_hostport(cfg->listen, &cfg->listen_host, &cfg->listen_port) &&
           cfg->listen_port > 0;
}

/*
 * return_path goes into MAIL FROM and helo_name into EHLO: a CR or LF would
 * inject SMTP commands, and a value past the client's buffers would lose
 * the line's CRLF.  So return_path must be an address and helo_name a host
 * name (or an address literal), each within the protocol's limits.
 */
static void
validate_envelope(struct config *cfg, struct buf *errors)
{
    char norm[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    const char *why = NULL;

    if (cfg->return_path != NULL && !email_normalize(cfg->return_path, norm, lc, &why))
        buf_printf(errors, "return_path: not an address: %s\n", why);
    else if (cfg->return_path != NULL && strcmp(norm, cfg->return_path) != 0)
        buf_printf(errors, "return_path: write it as %s (no blanks, domain in lowercase ASCII)\n",
                   norm);
    if (cfg->helo_name != NULL) {
        size_t n = strlen(cfg->helo_name);
        bool literal = n > 2 && cfg->helo_name[0] == '[' && cfg->helo_name[n - 1] == ']';
        const char *allowed = literal ? "0123456789abcdefABCDEF.:IPv" : "abcdefghijklmnopqrstuvwxyz"
                                                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                      "0123456789.-";
        size_t inner = literal ? n - 2 : n;

        if (n == 0 || n > 253 || strspn(cfg->helo_name + literal, allowed) != inner ||
            (!literal && (cfg->helo_name[0] == '.' || cfg->helo_name[0] == '-' ||
                          strstr(cfg->helo_name, "..") != NULL ||
                          cfg->helo_name[n - 1] == '.')))
            buf_printf(errors, "helo_name: must be a host name (letters, digits, dots, hyphens; "
                               "at most 253) or an address literal like [192.0.2.1]\n");
    }
}

static void
validate(struct config *cfg, struct layered *l, struct buf *errors)
{
    size_t len;

    if (!parse_listen(cfg))
        buf_printf(errors, "listen: \"%s\" (from %s) is not HOST:PORT with a port 1-65535\n",
                   cfg->listen, l->from[0]);
    if (cfg->bounce_listen) {
        char *h = NULL;
        int port = 0;
        if (!config_split_hostport(cfg->bounce_listen, &h, &port))
            buf_printf(errors, "bounce_listen: \"%s\" is not HOST:PORT with a port 0-65535\n",
                       cfg->bounce_listen);
        free(h);
    }
    if ((cfg->bounce_tls_cert == NULL) != (cfg->bounce_tls_key == NULL))
        buf_printf(errors, "bounce_tls_cert: goes with bounce_tls_key, both or neither\n");
    if (cfg->bounce_domain && (strchr(cfg->bounce_domain, '@') || strchr(cfg->bounce_domain, ' ') ||
                               !strchr(cfg->bounce_domain, '.')))
        buf_printf(errors, "bounce_domain: \"%s\" is not a domain name\n", cfg->bounce_domain);
    if (!str_prefix(cfg->database, "sqlite:") && !str_prefix(cfg->database, "postgres://") &&
        !str_prefix(cfg->database, "postgresql://"))
        buf_printf(errors, "database: must start with sqlite: or postgres://\n");
    else if (strcmp(cfg->database, "sqlite:") == 0)
        buf_printf(errors, "database: sqlite: needs a path\n");
    if (cfg->operator_key != NULL && strlen(cfg->operator_key) < 24)
        buf_printf(errors, "operator_key: must be at least 24 characters\n");
    len = strlen(cfg->public_url);
    while (len > 0 && cfg->public_url[len - 1] == '/')
        cfg->public_url[--len] = '\0';
    if ((!str_prefix(cfg->public_url, "http://") && !str_prefix(cfg->public_url, "https://")) ||
        strpbrk(cfg->public_url, " \t\r\n\"<>") != NULL || strlen(cfg->public_url) < 9)
        buf_printf(errors, "public_url: \"%s\" is not an http:// or https:// URL\n",
                   cfg->public_url);
    if (!str_prefix(cfg->relay, "smtp://") && !str_prefix(cfg->relay, "smtps://") &&
        !(str_prefix(cfg->relay, "dir:") && cfg->relay[4] != '\0'))
        buf_printf(errors, "relay: must be smtp://..., smtps://... or dir:PATH\n");
    if (cfg->lease_seconds <= cfg->smtp_data_timeout + 2 * cfg->smtp_command_timeout)
        buf_printf(errors,
                   "lease_seconds (%lld) must exceed smtp_data_timeout + 2 * "
                   "smtp_command_timeout (%lld), or a slow relay would see duplicates\n",
                   (long long)cfg->lease_seconds,
                   (long long)(cfg->smtp_data_timeout + 2 * cfg->smtp_command_timeout));
    if (cfg->list_unsubscribe_mailto != NULL &&
        (!str_prefix(cfg->list_unsubscribe_mailto, "mailto:") ||
         strchr(cfg->list_unsubscribe_mailto, '@') == NULL ||
         strpbrk(cfg->list_unsubscribe_mailto, " \t\r\n<>,\"") != NULL))
        buf_printf(errors, "list_unsubscribe_mailto: must be a mailto: URI "
                           "(mailto:unsubscribe@example.com)\n");
    validate_envelope(cfg, errors);
    if (cfg->metrics_listen != NULL) {
        char *h = NULL;
        int port;

        if (!config_split_hostport(cfg->metrics_listen, &h, &port) || port == 0)
            buf_printf(errors, "metrics_listen: \"%s\" is not HOST:PORT with a port 1-65535\n",
                       cfg->metrics_listen);
        else if (strcmp(cfg->metrics_listen, cfg->listen) == 0)
            buf_printf(errors, "metrics_listen: must differ from listen\n");
        free(h);
    }
    if (cfg->test_send_timeout >= cfg->http_timeout)
        buf_printf(errors, "test_send_timeout (%lld) must be below http_timeout (%lld)\n",
                   (long long)cfg->test_send_timeout, (long long)cfg->http_timeout);
    if (cfg->retry_cap < cfg->retry_base)
        buf_printf(errors, "retry_cap must be at least retry_base\n");
    if (log_level_parse(cfg->log_level) < 0)
        buf_printf(errors, "log_level: \"%s\" is not debug, info, warn or error\n",
                   cfg->log_level);
}

mc_err
config_load(struct config *cfg, const char *path, const struct config_override *ov, int nov,
            struct buf *errors)
{
    struct layered l;
    size_t before = errors->len;

    memset(cfg, 0, sizeof(*cfg));
    memset(&l, 0, sizeof(l));
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def)
            set_raw(&l, &opts[i], opts[i].def, "default");
    if (path)
        read_file(&l, path, errors);
    for (size_t i = 0; i < NOPTS; i++) {
        char name[80];
        const char *v;

        env_name(&opts[i], name, sizeof(name));
        v = getenv(name);
        if (v != NULL)
            set_raw(&l, &opts[i], v, "environment");
    }
    for (int i = 0; i < nov; i++) {
        const struct opt *o = find_opt(ov[i].name, strlen(ov[i].name));
        if (o == NULL)
            buf_printf(errors, "unknown option \"%s\"\n", ov[i].name);
        else
            set_raw(&l, o, ov[i].value, "command line");
    }
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char *field = (char *)cfg + o->off;

        if (o->type == OPT_STR) {
            *(char **)field = l.val[i];
            l.val[i] = NULL;
            if (*(char **)field != NULL && **(char **)field == '\0' && o->def == NULL) {
                free(*(char **)field);
                *(char **)field = NULL;
            }
            if (*(char **)field == NULL && o->def != NULL) {
                buf_printf(errors, "%s: must not be empty\n", o->name);
                *(char **)field = xstrdup(o->def);
            }
        } else {
            int64_t v;
            if (!parse_int64(l.val[i], o->min, o->max, &v)) {
                buf_printf(errors, "%s: \"%s\" (from %s) is not an integer in %lld..%lld\n",
                           o->name, l.val[i], l.from[i], (long long)o->min,
                           (long long)o->max);
                parse_int64(o->def, o->min, o->max, &v);
            }
            *(int64_t *)field = v;
        }
    }
    validate(cfg, &l, errors);
    for (size_t i = 0; i < NOPTS; i++)
        free(l.val[i]);
    return errors->len > before ? MC_ERR_CONFIG : MC_ERR_OK;
}

void
config_warnings(const struct config *cfg, struct buf *out)
{
    if ((str_prefix(cfg->relay, "smtp://") || str_prefix(cfg->relay, "smtps://")) &&
        !str_prefix(cfg->public_url, "https://"))
        buf_printf(out,
                   "warning: public_url \"%s\" is not https:// while mail goes to an SMTP "
                   "relay: one-click unsubscribe (RFC 8058 3.1) needs an HTTPS link, and "
                   "receivers ignore List-Unsubscribe-Post without it\n",
                   cfg->public_url);
    /* RFC 5321 4.1.1.1: EHLO takes a fully qualified name (or an address literal). */
    if (cfg->helo_name != NULL && cfg->helo_name[0] != '[' && strchr(cfg->helo_name, '.') == NULL)
        buf_printf(out, "warning: helo_name \"%s\" is not a fully qualified domain name; "
                        "relays may refuse or score an EHLO without one\n",
                   cfg->helo_name);
}

void
config_cleanup(struct config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == OPT_STR)
            free(*(char **)((char *)cfg + opts[i].off));
    free(cfg->listen_host);
    memset(cfg, 0, sizeof(*cfg));
}

void
config_dump(const struct config *cfg, struct buf *out)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        const char *field = (const char *)cfg + o->off;

        if (o->type == OPT_INT) {
            buf_printf(out, "%s = %lld\n", o->name, (long long)*(const int64_t *)field);
            continue;
        }
        const char *v = *(char *const *)field;
        if (v == NULL)
            buf_printf(out, "%s = (unset)\n", o->name);
        else if (o->secret && (strcmp(o->name, "database") == 0 || strcmp(o->name, "relay") == 0) &&
                 (strchr(v, '@') != NULL || strstr(v, "password") != NULL))
            buf_printf(out, "%s = (hidden: contains credentials)\n", o->name);
        else if (o->secret && strcmp(o->name, "database") != 0 && strcmp(o->name, "relay") != 0)
            buf_printf(out, "%s = (set, hidden)\n", o->name);
        else
            buf_printf(out, "%s = %s\n", o->name, v);
    }
}

void
config_help(struct buf *out)
{
    for (size_t i = 0; i < NOPTS; i++) {
        char env[80], flag[64];
        const struct opt *o = &opts[i];
        size_t j;

        env_name(o, env, sizeof(env));
        snprintf(flag, sizeof(flag), "--%s %s", o->name, o->type == OPT_INT ? "N" : "VALUE");
        for (j = 2; flag[j] != ' '; j++)
            if (flag[j] == '_')
                flag[j] = '-';
        buf_printf(out, "  %-40s %s\n      %s", flag, env, o->help);
        if (o->type == OPT_INT)
            buf_printf(out, "; %lld..%lld", (long long)o->min, (long long)o->max);
        buf_printf(out, " (default: %s)\n", o->def ? o->def : o->unset ? o->unset : "unset");
    }
}
