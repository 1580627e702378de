/*
 * main.c - the mailcast program: option parsing and the command table.
 *
 * Global options may stand anywhere: --config FILE, and every config option
 * as --name VALUE or --name=VALUE (see `mailcast --help`).  The remaining
 * words pick a command from the table; what follows them is the command's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/log.h"
#include "webhook/webhook.h"

struct command {
    const char *words; /* "tenant create" */
    int (*fn)(struct cli_ctx *c);
    const char *args;
    const char *help;
};

/* clang-format off */
static const struct command commands[] = {
    {"serve",         cmd_serve,         "",                 "run the API, the campaign engine and a delivery worker (--deliver 0: no worker)"},
    {"worker",        cmd_worker,        "",                 "run the campaign engine and a delivery worker, without the API"},
    {"migrate",       cmd_migrate,       "",                 "apply database migrations and exit"},
    {"tenant create", cmd_tenant_create, "NAME [--slug SLUG]", "create a tenant"},
    {"tenant list",   cmd_tenant_list,   "",                 "list tenants"},
    {"tenant show",   cmd_tenant_show,   "TENANT_ID",        "show one tenant"},
    {"key create",    cmd_key_create,    "TENANT_ID [--name NAME] [--read-only] [--expires RFC3339]",
                                                             "create a tenant API key (printed once)"},
    {"key list",      cmd_key_list,      "TENANT_ID",        "list a tenant's API keys"},
    {"key revoke",    cmd_key_revoke,    "TENANT_ID KEY_ID", "revoke an API key"},
    {"config check",  cmd_config_check,  "",                 "validate the configuration and print it"},
    {"secret rotate", cmd_secret_rotate, "",                 "new unsubscribe-link key; links already sent keep working"},
    {"bounce",        cmd_bounce,        "[--explain] [--recipient ADDR] [FILE]",
                                                             "take in a bounce or complaint (stdin without FILE); "
                                                             "--explain FILE...: only print what each says, a JSON line each"},
};
/* clang-format on */

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *fp)
{
    struct buf b;

    buf_init(&b, 0);
    config_help(&b);
    fprintf(fp, "usage: mailcast [--config FILE] [OPTIONS] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(fp, "  %s%s%s\n      %s\n", commands[i].words, commands[i].args[0] ? " " : "",
                commands[i].args, commands[i].help);
    fprintf(fp,
            "\noptions (flag and environment variable; flags beat the environment, which "
            "beats the config file; numbers show their limits):\n"
            "  %-40s read settings from FILE (\"name = value\" lines)\n%s"
            "  --version, --help\n",
            "--config FILE", b.data);
    buf_cleanup(&b);
}

/* Number of leading words of argv that name command cmd, or 0. */
static int
command_match(const struct command *cmd, int argc, char **argv)
{
    const char *w = cmd->words;
    int n = 0;

    while (*w) {
        size_t len = strcspn(w, " ");
        if (n >= argc || strlen(argv[n]) != len || strncmp(argv[n], w, len) != 0)
            return 0;
        n++;
        w += len;
        while (*w == ' ')
            w++;
    }
    return n;
}

int
main(int argc, char **argv)
{
    struct config_override ov[64];
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    const char *config_path = NULL;
    struct cli_ctx c;
    struct buf errors;
    int nov = 0, nrest = 0, rc = 2;

    if (rest == NULL)
        return 1;
    util_json_alloc_init();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            free(rest);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("mailcast %s\n", MAILCAST_VERSION);
            free(rest);
            return 0;
        }
        if (strcmp(a, "--config") == 0 || str_prefix(a, "--config=")) {
            if (a[8] == '=')
                config_path = a + 9;
            else if (i + 1 < argc)
                config_path = argv[++i];
            else {
                fprintf(stderr, "mailcast: --config needs a file\n");
                goto out;
            }
            continue;
        }
        if ((name = config_flag_option(a)) != NULL && nov < 64) {
            const char *eq = strchr(a, '=');
            if (eq)
                ov[nov].value = eq + 1;
            else if (i + 1 < argc)
                ov[nov].value = argv[++i];
            else {
                fprintf(stderr, "mailcast: %s needs a value\n", a);
                goto out;
            }
            ov[nov++].name = name;
            continue;
        }
        rest[nrest++] = argv[i];
    }
    if (nrest == 0) {
        usage(stderr);
        goto out;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int n = command_match(&commands[i], nrest, rest);
        if (n == 0)
            continue;
        buf_init(&errors, 0);
        bool bad = config_load(&c.cfg, config_path, ov, nov, &errors) != MC_ERR_OK;
        if (!bad) {
            webhook_config_check(&c.cfg, &errors); /* by the parsers serve uses */
            bad = errors.len > 0;
        }
        if (bad) {
            fprintf(stderr, "mailcast: invalid configuration:\n%s", errors.data);
            buf_cleanup(&errors);
            config_cleanup(&c.cfg);
            rc = 2;
            goto out;
        }
        buf_cleanup(&errors);
        log_set_level((enum log_level)log_level_parse(c.cfg.log_level));
        c.argc = nrest - n;
        c.argv = rest + n;
        if (commands[i].args[0] == '\0' && c.argc > 0) {
            fprintf(stderr, "mailcast %s: unexpected %s \"%s\" (see mailcast --help)\n",
                    commands[i].words, c.argv[0][0] == '-' ? "option" : "argument", c.argv[0]);
            config_cleanup(&c.cfg);
            rc = 2;
            goto out;
        }
        rc = commands[i].fn(&c);
        config_cleanup(&c.cfg);
        goto out;
    }
    fprintf(stderr, "mailcast: unknown %s \"%s\" (see mailcast --help)\n",
            rest[0][0] == '-' ? "option" : "command", rest[0]);
out:
    free(rest);
    return rc;
}
