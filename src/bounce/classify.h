/*
 * classify.h - one classification of delivery failures for everything
 * that reports one: the relay's synchronous reply to the delivery worker,
 * and the asynchronous reports (DSNs, non-standard bounces, feedback
 * reports) that the bounce parser reads.  The rules are data, in
 * classify.def; this file only combines them.  It does not parse messages
 * or decide what a class does to a recipient (that is the tenant's policy).
 */
#ifndef MC_BOUNCE_CLASSIFY_H
#define MC_BOUNCE_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

enum bounce_class {
    BOUNCE_UNDETERMINED, /* treated as soft */
    BOUNCE_HARD,         /* the address or domain does not exist: suppress */
    BOUNCE_SOFT,         /* could succeed later: suppress only after repeats */
    BOUNCE_BLOCK,        /* the sender's problem (policy, spam, reputation): never suppresses */
    BOUNCE_COMPLAINT,    /* a feedback report of abuse, fraud or a virus */
    BOUNCE_AUTO_REPLY,   /* an RFC 3834 auto-reply: no action */
};
#define BOUNCE_NCLASSES 6

/* "hard", "soft", ... (the API's and the log's names). */
const char *bounce_class_str(enum bounce_class c);
/* Returns -1 when s names no class. */
int bounce_class_parse(const char *s);

/*
 * Classifies one failure from what is known of it; every argument may be
 * NULL or 0.  status is an enhanced status code ("5.1.1", possibly with
 * trailing text); when it is missing or generic (x.0.0) a code found in the
 * diagnostic text is used.  reply_code is the SMTP reply code (550).
 * transient says the report itself called the failure temporary (a DSN's
 * Action: delayed): a transient failure is never hard.
 *
 * The most specific status row decides.  A phrase overrides a
 * subject-level row ("5.2.1 User unknown" is hard) and overrides an exact
 * row only to suppress less (a spam block coded 5.1.1 is a block); a
 * policy row (5.7.x) never becomes hard, whatever the words.  A
 * generic or unknown status leaves the decision to the phrases.
 */
enum bounce_class bounce_classify(const char *status, int reply_code, const char *diagnostic,
                                  bool transient);

/* The class of an RFC 5965 Feedback-Type (NULL or unknown: UNDETERMINED). */
enum bounce_class bounce_classify_feedback(const char *feedback_type);

/*
 * Finds the first enhanced status code ("5.1.1") in s[0..n) and copies it
 * into out (NUL-terminated, at most 15 characters); returns false when
 * there is none.  Codes whose first digit is not 2, 4 or 5, and numbers
 * that are part of a longer dotted number (an IP address), do not count.
 */
bool bounce_status_find(const char *s, size_t n, char out[16]);

/* The first SMTP reply code (a 4xx or 5xx number standing alone) in s[0..n), or 0. */
int bounce_reply_code_find(const char *s, size_t n);

#endif
