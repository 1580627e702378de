/*
 * log.c - key=value log lines on stderr.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

static _Atomic int min_level = LOG_INFO;

static const char *const names[] = {"debug", "info", "warn", "error"};

void
log_set_level(enum log_level lvl)
{
    min_level = lvl;
}

int
log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
    char line[2048], ts[40];
    va_list ap;
    int n, m;

    if ((int)lvl < min_level)
        return;
    time_format_rfc3339(time_now_us(), ts, sizeof(ts));
    n = snprintf(line, sizeof(line), "ts=%s level=%s ", ts, names[lvl]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}
