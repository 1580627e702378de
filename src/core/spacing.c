/*
 * spacing.c - late paced messages keep their spacing (see spacing.h).  It
 * does not give slots (pace.h and store_claim.c do) nor hold messages on
 * timers (the delivery loop does).
 */
#include "core/spacing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static const struct spacing_scope *
find(const struct spacing *sp, const char *key)
{
    for (int i = 0; i < sp->n; i++)
        if (strcmp(sp->s[i].key, key) == 0)
            return &sp->s[i];
    return NULL;
}

/*
 * The lateness that is not yet a shift: timer jitter, or under one pace
 * interval (a message at most one slot late adds at most one to any window,
 * which the windows' allowance covers; counting each millisecond of jitter
 * as a shift made a scope at 100 a second drift behind, message by message,
 * to 84 % of its rate).
 */
static int64_t
late_after(int64_t interval)
{
    return interval > SPACING_TOLERANCE_US ? interval : SPACING_TOLERANCE_US;
}

/* How much of the slots' gap a late scope keeps (see spacing.h). */
static int64_t
kept(int64_t gap, int64_t interval)
{
    int64_t k = gap * 9 / 10;

    if (interval <= 0)
        return 0;
    if (gap < 0) /* an older slot, after a newer one: it still keeps T */
        return interval;
    if (gap <= interval)
        return gap;
    k = k > interval ? k : interval;
    return k < 2 * interval ? k : 2 * interval;
}

int64_t
spacing_slot_due(const struct spacing *sp, const struct spacing_key *keys, int nkeys,
                 int64_t slot)
{
    int64_t due = slot;

    for (int i = 0; i < nkeys; i++) {
        const struct spacing_scope *s = find(sp, keys[i].key);
        if (s == NULL)
            continue;
        int64_t t = s->left + kept(slot - s->slot, keys[i].interval);
        due = t > due ? t : due;
    }
    return due;
}

void
spacing_slot_taken(struct spacing *sp, const struct spacing_key *keys, int nkeys, int64_t slot,
                   int64_t now)
{
    for (int i = 0; i < nkeys; i++) {
        struct spacing_scope *s = (struct spacing_scope *)find(sp, keys[i].key);
        if (s == NULL) {
            if (now <= slot + late_after(keys[i].interval))
                continue; /* on time, and was: nothing to remember */
            if (sp->n == sp->cap) {
                sp->cap = sp->cap ? 2 * sp->cap : 8;
                sp->s = xrealloc(sp->s, (size_t)sp->cap * sizeof(*sp->s));
            }
            s = &sp->s[sp->n++];
            snprintf(s->key, sizeof(s->key), "%s", keys[i].key);
        } else if (slot < s->slot) {
            /* An older slot left after a newer one: the newer one still paces. */
            s->left = now > s->left ? now : s->left;
            continue;
        }
        s->slot = slot;
        s->left = now;
        s->interval = keys[i].interval;
    }
    /* A scope back on time, or whose shift has run out (no gap keeps more
     * than 2 T), binds nothing any more. */
    for (int i = 0; i < sp->n;) {
        const struct spacing_scope *s = &sp->s[i];
        if (s->left <= s->slot + late_after(s->interval) || now > s->left + 2 * s->interval)
            sp->s[i] = sp->s[--sp->n];
        else
            i++;
    }
}

void
spacing_cleanup(struct spacing *sp)
{
    free(sp->s);
    sp->s = NULL;
    sp->n = sp->cap = 0;
}
