/*
 * smtpd_cmd.h - reads one command line of the bounce listener's SMTP
 * server side (RFC 5321 §4.1): the verb and, for MAIL and RCPT, the path
 * and the ESMTP parameters.  Pure: no I/O, no state; every field bounded.
 * It does not decide what a command means in a session (listener.c).
 */
#ifndef MC_BOUNCE_SMTPD_CMD_H
#define MC_BOUNCE_SMTPD_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtpd_verb {
    SMTPD_UNKNOWN,
    SMTPD_EHLO,
    SMTPD_HELO,
    SMTPD_MAIL,
    SMTPD_RCPT,
    SMTPD_DATA,
    SMTPD_RSET,
    SMTPD_NOOP,
    SMTPD_QUIT,
    SMTPD_STARTTLS,
    SMTPD_VRFY,
    SMTPD_HELP,
};

#define SMTPD_PATH_MAX 320
#define SMTPD_LINE_MAX 1000 /* with CRLF (RFC 5321 §4.5.3.1.4) is 1000; we allow as much */

struct smtpd_cmd {
    enum smtpd_verb verb;
    char arg[SMTPD_LINE_MAX + 1]; /* the rest of the line after the verb, trimmed */
    /* MAIL and RCPT: */
    char path[SMTPD_PATH_MAX + 1]; /* between < and >; "" for the null path <> */
    int64_t size;                  /* MAIL SIZE=, -1 when absent */
    bool body_8bit, smtputf8;
    bool path_utf8; /* the path has octets over 127 */
};

enum smtpd_parse {
    SMTPD_OK,
    SMTPD_SYNTAX,   /* 501: arguments malformed */
    SMTPD_TOO_LONG, /* 500: line too long */
    SMTPD_PARAM,    /* 555: a MAIL or RCPT parameter not advertised */
};

/*
 * Parses line[0..len) (without its CRLF) into *out.  An unknown verb is
 * SMTPD_OK with SMTPD_UNKNOWN (the caller answers 500 or 502).
 */
enum smtpd_parse smtpd_cmd_parse(const char *line, size_t len, struct smtpd_cmd *out);

#endif
