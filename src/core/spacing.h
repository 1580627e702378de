/*
 * spacing.h - late paced messages keep their spacing: the hand-off side of
 * pacing (pace.h gives each message its slot; this decides when a message
 * whose slot has already passed may leave).  Pure arithmetic on a small
 * table of scopes; no clock, no I/O, no locking (one thread owns a table).
 *
 * A process that falls behind (a loop starved of CPU, a slow database)
 * finds several messages whose slots are past; sent at once they would
 * leave together.  Instead each late scope (a key such as the tenant or the
 * site) remembers its last message's slot and the moment it actually left,
 * and the next one leaves no sooner than that moment plus the gap between
 * the two slots: the schedule shifts rather than bursts.  Only the scopes
 * that paced a message count for it (one site's lateness does not slow
 * another site of the same tenant).  The gap is kept
 * whole up to the message's pace interval T (the same slot, a burst the
 * store allowed, keeps none; an older slot keeps T) and 90 % beyond (gaps of
 * two T are another process's share of a shared scope), never more than
 * 2 T (a longer gap is idle time, or a retry's wait, the store's schedule
 * already counted: a late first attempt must not delay its retry), so
 * a shifted scope catches up with gaps no shorter than 90 % of its slots'
 * (2 T for longer ones) and is forgotten once it has.  Late means more than
 * T (or SPACING_TOLERANCE_US, if more) after the slot: a message at most
 * one slot late adds at most one to any window, and counting each
 * millisecond of timer jitter as a shift made a scope at 100 a second drift
 * behind to 84 % of its rate (bench/delivery's paced case).  A scope that
 * is on time has no entry and costs nothing: slots that conform go at their
 * slot, bursts included.
 */
#ifndef MC_SPACING_H
#define MC_SPACING_H

#include <stdint.h>

#define SPACING_KEY_MAX 128
/* Lateness under this is timer jitter, not a shift (microseconds). */
#define SPACING_TOLERANCE_US 1000

struct spacing_scope {
    char key[SPACING_KEY_MAX];
    int64_t slot;     /* the slot of its last message */
    int64_t left;     /* when that message left (late: over T, or the tolerance, after slot) */
    int64_t interval; /* the scope's pace interval */
};

/* One scope a message was paced by: its key and interval (> 0). */
struct spacing_key {
    const char *key; /* borrowed */
    int64_t interval;
};

struct spacing {
    struct spacing_scope *s; /* owned */
    int n, cap;
};

/*
 * The earliest moment a message with this slot may leave, given the scopes
 * that paced it: slot itself unless one of them is late.  The caller sends
 * it when that is <= now + tolerance, and otherwise waits until then and
 * asks again.
 */
int64_t spacing_slot_due(const struct spacing *sp, const struct spacing_key *keys, int nkeys,
                         int64_t slot);
/*
 * Records that the message left at now (its scopes and slot as given to
 * spacing_slot_due); forgets the scopes no longer late.
 */
void spacing_slot_taken(struct spacing *sp, const struct spacing_key *keys, int nkeys,
                        int64_t slot, int64_t now);
/* Frees the table; the struct may be reused (zeroed). */
void spacing_cleanup(struct spacing *sp);

#endif
