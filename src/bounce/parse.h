/*
 * parse.h - reads one report about a sent message: an RFC 3464 delivery
 * status notification (and its RFC 6533 global form), an RFC 5965
 * feedback report, an RFC 3834 auto-reply, or a bounce written as plain
 * text by a mail server that follows no standard (rules.def).  MIME is
 * GMime's; this module reads the report fields and the text.
 *
 * It decides what the report says, per recipient and class (classify.h),
 * and collects the candidate signed references it carries (ref.h), still
 * unverified.  It does not verify them, touch the database, or decide what
 * the report changes (that is the intake pipeline's and the tenant's
 * policy).  Safe on any input: nothing is trusted, every field is bounded.
 */
#ifndef MC_BOUNCE_PARSE_H
#define MC_BOUNCE_PARSE_H

#include <stddef.h>

#include "classify.h"
#include "ref.h"

enum bounce_kind {
    BOUNCE_KIND_NOT_BOUNCE, /* nothing a sender must act on */
    BOUNCE_KIND_DSN,        /* RFC 3464 / RFC 6533 */
    BOUNCE_KIND_ARF,        /* RFC 5965 */
    BOUNCE_KIND_AUTO_REPLY, /* RFC 3834 or an auto-reply's wording */
    BOUNCE_KIND_OTHER,      /* a bounce in no standard format */
};

/* "dsn", "arf", "auto_reply", "other", "not_bounce". */
const char *bounce_kind_str(enum bounce_kind k);

#define BOUNCE_MAX_RCPTS 64
#define BOUNCE_MAX_REFS 8
#define BOUNCE_DIAG_MAX 512

struct bounce_rcpt {
    char *email;       /* owned: as the report gives it, lowercase domain */
    enum bounce_class cls;
    char status[16];   /* enhanced status code, "" when none */
    char *action;      /* owned, may be NULL: "failed", "delayed", ... */
    char *diagnostic;  /* owned, may be NULL: unfolded, valid UTF-8, at most BOUNCE_DIAG_MAX */
    char *remote_mta;  /* owned, may be NULL */
};

struct bounce_report {
    enum bounce_kind kind;
    struct bounce_rcpt *rcpts; /* owned */
    int nrcpts;
    char *feedback_type;  /* owned, ARF only */
    char *reporting_mta;  /* owned, may be NULL */
    /* Unverified references, in the order found (headers of the report, then parts). */
    char refs[BOUNCE_MAX_REFS][BOUNCE_REF_LEN + 1];
    int nrefs;
};

/*
 * Parses data[0..len) into *out (which the caller cleans up with
 * bounce_report_cleanup, whatever the result).  Never fails on content:
 * what is not a report comes back as BOUNCE_KIND_NOT_BOUNCE.  Thread-safe.
 */
void bounce_parse(const char *data, size_t len, struct bounce_report *out);

void bounce_report_cleanup(struct bounce_report *r);

#endif
