/*
 * smtpd_cmd.c - the bounce listener's command reader (see smtpd_cmd.h).
 */
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "smtpd_cmd.h"

static const struct {
    const char *word;
    enum smtpd_verb verb;
} verbs[] = {
    {"EHLO", SMTPD_EHLO}, {"HELO", SMTPD_HELO}, {"MAIL", SMTPD_MAIL},
    {"RCPT", SMTPD_RCPT}, {"DATA", SMTPD_DATA}, {"RSET", SMTPD_RSET},
    {"NOOP", SMTPD_NOOP}, {"QUIT", SMTPD_QUIT}, {"STARTTLS", SMTPD_STARTTLS},
    {"VRFY", SMTPD_VRFY}, {"HELP", SMTPD_HELP},
};

/*
 * "FROM:<path> params" (or "TO:"): path into out->path, then the parameters.
 * Only those of extensions the listener advertises (SIZE, 8BITMIME,
 * SMTPUTF8, on MAIL) are taken; any other is SMTPD_PARAM (555, RFC 5321
 * §4.1.1.11): no DSN is advertised, so no RET, ENVID, NOTIFY or ORCPT.
 */
static enum smtpd_parse
parse_path(const char *s, const char *prefix, struct smtpd_cmd *out)
{
    size_t plen = strlen(prefix), n;
    bool mail = out->verb == SMTPD_MAIL;
    const char *e, *p;

    if (strncasecmp(s, prefix, plen) != 0)
        return SMTPD_SYNTAX;
    s += plen;
    while (*s == ' ')
        s++; /* some clients write "FROM: <a@b>" */
    if (*s != '<' || (e = strchr(s, '>')) == NULL)
        return SMTPD_SYNTAX;
    n = (size_t)(e - s - 1);
    if (n > SMTPD_PATH_MAX)
        return SMTPD_SYNTAX;
    memcpy(out->path, s + 1, n);
    out->path[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)out->path[i] < 0x21 || out->path[i] == '<')
            return SMTPD_SYNTAX;
        if ((unsigned char)out->path[i] >= 0x80)
            out->path_utf8 = true;
    }
    /* A source route ("<@a,@b:u@d>") is dropped, as RFC 5321 allows. */
    if (out->path[0] == '@' && (p = strchr(out->path, ':')) != NULL)
        memmove(out->path, p + 1, strlen(p + 1) + 1);
    for (p = e + 1; *p;) {
        const char *w;
        size_t len;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        w = p;
        while (*p && *p != ' ')
            p++;
        len = (size_t)(p - w);
        if (!mail)
            return SMTPD_PARAM;
        if (len > 5 && strncasecmp(w, "SIZE=", 5) == 0) {
            char num[24];
            if (len - 5 >= sizeof(num))
                return SMTPD_SYNTAX;
            memcpy(num, w + 5, len - 5);
            num[len - 5] = '\0';
            if (!parse_int64(num, 0, INT64_MAX, &out->size))
                return SMTPD_SYNTAX;
        } else if (len == 13 && strncasecmp(w, "BODY=8BITMIME", 13) == 0) {
            out->body_8bit = true;
        } else if (len == 8 && strncasecmp(w, "SMTPUTF8", 8) == 0) {
            out->smtputf8 = true;
        } else if (len != 9 || strncasecmp(w, "BODY=7BIT", 9) != 0) {
            return SMTPD_PARAM;
        }
    }
    return SMTPD_OK;
}

enum smtpd_parse
smtpd_cmd_parse(const char *line, size_t len, struct smtpd_cmd *out)
{
    size_t w = 0, a;

    memset(out, 0, sizeof(*out));
    out->size = -1;
    if (len > SMTPD_LINE_MAX)
        return SMTPD_TOO_LONG;
    while (w < len && line[w] != ' ')
        w++;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i].word) == w && strncasecmp(line, verbs[i].word, w) == 0)
            out->verb = verbs[i].verb;
    a = w;
    while (a < len && line[a] == ' ')
        a++;
    while (len > a && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    memcpy(out->arg, line + a, len - a);
    out->arg[len - a] = '\0';
    if (memchr(out->arg, '\0', len - a) != NULL)
        return SMTPD_SYNTAX;
    switch (out->verb) {
    case SMTPD_EHLO:
    case SMTPD_HELO:
        return out->arg[0] ? SMTPD_OK : SMTPD_SYNTAX;
    case SMTPD_MAIL:
        return parse_path(out->arg, "FROM:", out);
    case SMTPD_RCPT: {
        enum smtpd_parse r = parse_path(out->arg, "TO:", out);
        return r == SMTPD_OK && out->path[0] == '\0' ? SMTPD_SYNTAX : r;
    }
    case SMTPD_DATA:
    case SMTPD_RSET:
    case SMTPD_QUIT:
    case SMTPD_STARTTLS:
        return out->arg[0] ? SMTPD_SYNTAX : SMTPD_OK;
    default:
        return SMTPD_OK;
    }
}
