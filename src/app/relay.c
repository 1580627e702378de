/*
 * relay.c - the SMTP client's parameters from the configuration (see
 * app.h): one place for the delivery worker and the test sends, so both
 * talk to the relay alike.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

mc_err
app_relay_params(const struct config *cfg, struct smtp_params *p, char *err, size_t errlen)
{
    char host[64] = "localhost";
    mc_err e;

    memset(p, 0, sizeof(*p));
    if ((e = smtp_params_parse(cfg->relay, p, err, errlen)) != MC_ERR_OK)
        return e;
    gethostname(host, sizeof(host) - 1);
    p->verify = cfg->smtp_verify != 0;
    p->ca_file = cfg->smtp_ca_file;
    snprintf(p->helo_name, sizeof(p->helo_name), "%s", cfg->helo_name ? cfg->helo_name : host);
    p->connect_timeout = (int)cfg->smtp_connect_timeout;
    p->command_timeout = (int)cfg->smtp_command_timeout;
    p->data_timeout = (int)cfg->smtp_data_timeout;
    p->max_connections = (int)cfg->smtp_connections;
    p->max_messages = (int)cfg->smtp_messages_per_connection;
    return MC_ERR_OK;
}
