/*
 * config.h - mailcast's settings: one table of options, four layers.
 *
 * Each option has a default, may be set in a config file ("name = value"
 * lines), overridden by the environment (MAILCAST_NAME) and then by a
 * command-line flag (--name VALUE).  config_load() applies the layers in
 * that order and validates every option, reporting every problem at once.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

struct config {
    char *listen;        /* "HOST:PORT" as given */
    char *listen_host;   /* derived from listen */
    int listen_port;     /* derived from listen */
    char *database;      /* "sqlite:PATH" or "postgres://..." */
    char *operator_key;  /* NULL: generated and stored on first start */
    char *public_url;    /* base of links placed in mail, no trailing slash */
    char *log_level;
    int64_t http_threads;
    int64_t http_max_body;        /* bytes of a JSON request body */
    int64_t http_max_connections;
    int64_t http_timeout;         /* seconds an idle connection is kept */
    int64_t db_pool_size;
    int64_t db_busy_timeout_ms;
    int64_t shutdown_timeout;     /* seconds in-flight requests get on SIGTERM */
    int64_t max_page_size;        /* largest "limit" a list endpoint accepts */
    int64_t import_batch_size;    /* rows written per transaction by an import */
    int64_t import_max_row;       /* bytes of one CSV row */
    int64_t import_max_json;      /* bytes of a JSON import body */
    int64_t template_max;         /* bytes of one template (subject, html or text) */
    int64_t render_max;           /* bytes one template may render to */
    int64_t materialize_batch;    /* messages created per transaction */
    int64_t engine_poll_ms;       /* how often the campaign engine looks for work */
    int64_t idle_poll_max_ms;     /* an idle poller's longest interval (poll_backoff_ms) */
    /* Delivery */
    int64_t deliver;              /* 1: serve also delivers; 0: API only */
    char *relay;                  /* smtp://..., smtps://... or dir:PATH */
    char *return_path;            /* envelope sender; NULL: the campaign's From */
    char *helo_name;              /* NULL: this host's name */
    char *list_unsubscribe_mailto; /* a mailto: to add to List-Unsubscribe, or NULL */
    char *smtp_ca_file;           /* CA bundle for relay certificates, NULL: the system's */
    int64_t smtp_verify;          /* 1: verify the relay's certificate and name */
    int64_t smtp_connections;     /* connections to the relay */
    int64_t smtp_messages_per_connection;
    int64_t smtp_connect_timeout; /* seconds: connect and greeting */
    int64_t smtp_command_timeout; /* seconds: each command reply */
    int64_t smtp_data_timeout;    /* seconds: the reply after end of data (RFC 5321: 600) */
    int64_t delivery_inflight;    /* messages a worker has claimed and not yet recorded */
    int64_t delivery_batch;       /* messages claimed per claim */
    int64_t delivery_poll_ms;     /* how often an idle worker looks for due messages */
    int64_t lease_seconds;        /* how long a claim is held before another worker may retry */
    int64_t retry_base;           /* seconds before the first retry */
    int64_t retry_cap;            /* longest wait between retries, seconds */
    int64_t retry_max_attempts;   /* attempts before a message fails */
    int64_t dkim_required;        /* 1: a message whose From domain has no key fails */
    /* Hardening against hostile clients */
    int64_t http_max_connections_per_ip;
    int64_t http_header_timeout;  /* seconds for a request's whole header block */
    int64_t http_body_timeout;    /* seconds for a body, plus its size at the rate below */
    int64_t http_body_min_rate;   /* bytes per second */
    char *metrics_listen;         /* "HOST:PORT" of a key-less /metrics listener, or NULL */
    /* SMTP and fault hardening */
    int64_t smtp_idle_timeout;    /* seconds before an idle relay connection says QUIT */
    char *smtp_dns_server;        /* NULL: the system's resolvers */
    int64_t test_send_timeout;    /* seconds a test send waits for the relay at most */
    int64_t test_send_concurrency; /* test sends in progress at once, at most */
    int64_t lease_expiry_max;     /* lease expiries before a message fails as poison */
    /* Bounces and complaints */
    char *bounce_domain;          /* VERP domain; NULL: return_path as before */
    int64_t bounce_max_message;   /* bytes of one report taken in (listener SIZE, pipe) */
    int64_t bounce_raw_max;       /* bytes of the raw report kept with its record */
    int64_t bounce_retention_days; /* days records are kept */
    char *bounce_listen;          /* "HOST:PORT" of the SMTP listener, NULL: none */
    char *bounce_feedback_address; /* a feedback-loop address the listener accepts, or NULL */
    char *bounce_tls_cert, *bounce_tls_key; /* PEM files: STARTTLS offered, or NULL */
    int64_t bounce_max_connections; /* listener sessions at once */
    int64_t bounce_max_connections_per_ip; /* ... from one address */
    int64_t bounce_command_timeout; /* seconds for a command or a piece of DATA */
    int64_t bounce_session_timeout; /* seconds one session may last */
    /* The web console */
    int64_t timeline_max_points;  /* points of a campaign timeline at most */
    /* Pacing and shaping (issue 15) */
    int64_t pacing_burst;         /* messages a paced limit lets go at once after a pause */
    int64_t pacing_horizon_ms;    /* how far ahead of its slot a paced message is claimed */
    char *shaping;                /* a shaping file loaded at start, or NULL */
    /* Egresses and egress pools (issue 15) */
    int64_t egress_max;              /* egresses, 'default' included */
    int64_t egress_pool_max;         /* pools, 'default' included */
    int64_t egress_pool_members_max; /* members of one pool */
    int64_t egress_weight_max;       /* a member's largest weight */
    /* Events and webhooks */
    int64_t event_retention_days;    /* events older than this are pruned */
    int64_t webhook_max_endpoints;   /* endpoints a tenant may have */
    int64_t webhook_allow_http;      /* 1: http:// endpoints allowed (else https only) */
    char *webhook_allow_cidr;        /* comma-separated CIDRs exempt from the SSRF ranges */
    char *webhook_retry_schedule;    /* seconds before each retry, comma-separated */
    int64_t webhook_concurrency;     /* requests a worker has in flight at most */
    int64_t webhook_endpoint_concurrency; /* ... of them to one endpoint */
    int64_t webhook_connect_timeout; /* seconds */
    int64_t webhook_timeout;         /* seconds for a whole request */
    int64_t webhook_secret_grace_hours; /* the old secret still signs after a rotation */
    int64_t webhook_disable_after_hours; /* failing this long without a success disables */
    int64_t webhook_poll_ms;         /* how often an idle sender looks for due deliveries */
    int64_t webhook_replay_max;      /* deliveries one replay may queue */
};

/* One command-line override: the option's name (as in the file) and its value. */
struct config_override {
    const char *name;  /* borrowed */
    const char *value; /* borrowed */
};

/*
 * Fills cfg from defaults < file (path may be NULL) < environment <
 * overrides, then validates.  On failure every problem is appended to
 * errors, one line each, and MC_ERR_CONFIG is returned; cfg is then still
 * safe to config_cleanup().
 */
mc_err config_load(struct config *cfg, const char *path, const struct config_override *ov,
                   int nov, struct buf *errors);
void config_cleanup(struct config *cfg);
/*
 * Appends one "warning: ..." line per setting that is valid but unwise
 * (a non-https public_url with an SMTP relay); nothing when all is well.
 */
void config_warnings(const struct config *cfg, struct buf *out);
/* Splits "HOST:PORT" (or "[v6]:PORT"; port 0-65535): *host owned.  False when malformed. */
bool config_split_hostport(const char *s, char **host, int *port);


/*
 * Looks up a command-line flag ("--listen") and returns the option name
 * ("listen"), or NULL when the flag is not a config flag.
 */
const char *config_flag_option(const char *flag);

/* Writes the effective configuration, one "name = value" per line, secrets hidden. */
void config_dump(const struct config *cfg, struct buf *out);
/* Writes the option reference (flags, environment, defaults) for --help. */
void config_help(struct buf *out);

#endif
