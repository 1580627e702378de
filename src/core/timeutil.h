/*
 * timeutil.h - wall-clock time as int64 microseconds since the Unix epoch,
 * and RFC 3339 formatting and parsing.  All times in mailcast are UTC.
 */
#ifndef MC_TIMEUTIL_H
#define MC_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Microseconds since the epoch, from CLOCK_REALTIME. */
int64_t time_now_us(void);
/* Monotonic microseconds, for durations. */
int64_t time_mono_us(void);
/*
 * The wait of a poller after `idle` looks in a row that found nothing:
 * base_ms doubled each time up to max_ms, and never less than base_ms.
 */
int64_t poll_backoff_ms(int64_t base_ms, int64_t max_ms, int idle);

/*
 * Writes "2026-11-29T11:13:53.123456Z" (microseconds omitted when zero,
 * milliseconds kept otherwise) into out, which needs 32 bytes.
 */
void time_format_rfc3339(int64_t us, char *out, size_t outlen);

/*
 * Parses an RFC 3339 date-time ("2026-11-29T11:13:53Z",
 * "2026-11-29T12:13:53.5+01:00", lowercase t and z accepted) into
 * microseconds.  Returns false on anything else, including impossible
 * dates.
 */
bool time_parse_rfc3339(const char *s, int64_t *out);

#endif
