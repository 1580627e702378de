/*
 * relay.c - the SMTP client's parameters from the configuration (see
 * app.h): one place for the delivery worker and the test sends, so both
 * talk to the relay alike.
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

void
app_helo_default(char *out, size_t n)
{
    char host[256] = "localhost";
    struct addrinfo hints = {0}, *ai = NULL;

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (strchr(host, '.') != NULL) {
        snprintf(out, n, "%s", host);
        return;
    }
    /* The canonical name from the resolver (/etc/hosts first), once per process start
     * or test send; a relay that checks EHLO wants a fully qualified name. */
    hints.ai_flags = AI_CANONNAME;
    hints.ai_family = AF_UNSPEC;
    if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname &&
        strchr(ai->ai_canonname, '.') != NULL && strlen(ai->ai_canonname) < n) {
        snprintf(out, n, "%s", ai->ai_canonname);
        freeaddrinfo(ai);
        return;
    }
    if (ai)
        freeaddrinfo(ai);
    /* No domain anywhere: Postfix's convention for such hosts. */
    snprintf(out, n, "%.200s.localdomain", host);
}

mc_err
app_relay_params(const struct config *cfg, struct smtp_params *p, char *err, size_t errlen)
{
    struct egress e = {.name = "default"};

    return app_egress_params(cfg, &e, p, err, errlen);
}

mc_err
app_egress_params(const struct config *cfg, const struct egress *eg, struct smtp_params *p,
                  char *err, size_t errlen)
{
    const char *ehlo = eg->ehlo_name ? eg->ehlo_name : cfg->helo_name;
    mc_err e;

    memset(p, 0, sizeof(*p));
    if ((e = smtp_params_parse(eg->relay ? eg->relay : cfg->relay, p, err, errlen)) != MC_ERR_OK)
        return e;
    p->verify = cfg->smtp_verify != 0;
    p->ca_file = cfg->smtp_ca_file;
    if (ehlo)
        snprintf(p->helo_name, sizeof(p->helo_name), "%s", ehlo);
    else
        app_helo_default(p->helo_name, sizeof(p->helo_name));
    snprintf(p->source_address, sizeof(p->source_address), "%s",
             eg->source_address ? eg->source_address : "");
    snprintf(p->dns_server, sizeof(p->dns_server), "%s",
             cfg->smtp_dns_server ? cfg->smtp_dns_server : "");
    p->idle_timeout = (int)cfg->smtp_idle_timeout;
    p->connect_timeout = (int)cfg->smtp_connect_timeout;
    p->command_timeout = (int)cfg->smtp_command_timeout;
    p->data_timeout = (int)cfg->smtp_data_timeout;
    p->max_connections =
        (int)(eg->max_connections > 0 ? eg->max_connections : cfg->smtp_connections);
    p->max_messages = (int)cfg->smtp_messages_per_connection;
    return MC_ERR_OK;
}
