/*
 * pace.h - even spacing of messages under a rate (GCRA, the generic cell
 * rate algorithm): pure arithmetic on one scope's state, no I/O.  Where the
 * state lives (the database's rate_pace table) and who shares it is the
 * caller's business (store_claim.c).
 *
 * A scope with interval T keeps its theoretical arrival time (tat): the
 * moment its next message would go if messages had always left exactly T
 * apart.  A message may go at t when t >= tat - (burst - 1) * T; taking the
 * slot moves tat to max(tat, t) + T.  So after a pause `burst` messages may
 * go at once, and from then on one every T: any window of W seconds holds
 * at most floor(W / T) + burst of them.
 */
#ifndef MC_PACE_H
#define MC_PACE_H

#include <stdint.h>

struct pace_scope {
    int64_t interval_us; /* T; 0: not paced */
    int64_t tat;         /* microseconds (the caller's clock) */
};

/* Intervals under 10 us (rates above about 100,000 a second) are not paced; the windows
 * still cap them. */
#define PACE_MIN_INTERVAL_US 10

/* The interval of the tightest of the two rates (0 each: none); 0 when neither is set
 * or when it is shorter than PACE_MIN_INTERVAL_US. */
int64_t pace_interval(int64_t per_second, int64_t per_minute);
/* The earliest moment >= now a message may go under s with the given burst (>= 1). */
int64_t pace_earliest(const struct pace_scope *s, int64_t burst, int64_t now);
/* Takes the slot at t (t >= pace_earliest): advances s->tat. */
void pace_take(struct pace_scope *s, int64_t t);
/*
 * Moves a tat kept under an earlier interval (old_interval_us, 0: unknown)
 * to the current one: the backlog ahead of now shrinks or grows with the
 * rate, so a rate raised applies at once, not after the old rate's backlog.
 */
void pace_rescale(struct pace_scope *s, int64_t old_interval_us, int64_t now);

#endif
