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
    /* One event, one line, whatever a caller formatted into it. */
    for (int i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = ' ';
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

const char *
log_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (outlen == 0)
        return out;
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[4];
        size_t n = 0;

        if (c == '"' || c == '\\') {
            tmp[n++] = '\\';
            tmp[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            tmp[n++] = '\\';
            tmp[n++] = 'x';
            tmp[n++] = hex[c >> 4];
            tmp[n++] = hex[c & 15];
        } else {
            tmp[n++] = (char)c;
        }
        if (o + n + 4 > outlen) { /* room for "..." and the NUL */
            if (outlen >= 4) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o < outlen ? o : outlen - 1] = '\0';
    return out;
}
