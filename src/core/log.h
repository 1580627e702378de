/*
 * log.h - one line per event, key=value, to stderr.
 *
 *     log_info("event=http status=%d", status);
 *
 * prints "ts=2026-11-29T11:13:53.123Z level=info event=http status=200".
 * Never log API keys, passwords, DKIM keys, message bodies or recipient
 * lists.  Thread-safe: each line is written with one write(2).
 */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level printed (default LOG_INFO). */
void log_set_level(enum log_level lvl);
/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes s into out (outlen bytes) as it may stand inside a quoted value:
 * '"' and '\\' backslashed, every control and non-ASCII byte as \xNN, cut
 * with "..." when it does not fit.  Returns out.  Every value from outside
 * (a path, a header, a relay's reply) goes through it before it is logged,
 * so it can neither end its field nor start a line.
 */
const char *log_escape(const char *s, char *out, size_t outlen);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
