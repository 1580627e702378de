/*
 * committer.h - the bounce intake's parser and database threads: take
 * messages (or prepared reports) from an event loop, parse what is raw
 * (bounce_intake_prepare, on the parser thread), record all that wait in
 * one transaction (group commit), and hand each job back to the loop with
 * its result.  It does not speak SMTP.
 */
#ifndef MC_BOUNCE_COMMITTER_H
#define MC_BOUNCE_COMMITTER_H

#include <event2/event.h>

#include "intake.h"

/* One message waiting for its commit: the reports of its recipients. */
struct bounce_job {
    void *owner;                /* borrowed: who waits (the listener's session) */
    int n;
    struct bounce_prepared *ps; /* owned: n prepared reports, never moved */
    /* The message as received, not parsed yet (the committer prepares ps
     * from it, one per envelope recipient, then frees it); NULL when ps
     * were prepared by the caller. */
    char *data;      /* owned */
    size_t len;
    char **rcpts;    /* owned: n envelope recipients */
    const char *source; /* static: "smtp" */
    mc_err err;                 /* the commit's result, set before done is called */
    struct bounce_job *next;    /* the committer's queues */
};

/* Called on the loop's thread with a job whose commit is over; it owns the job. */
typedef void (*bounce_job_done_fn)(struct bounce_job *job, void *arg);

struct bounce_committer;

/* A job of n reports to prepare in place (owned by the caller until submitted). */
struct bounce_job *bounce_job_new(void *owner, int n);
/* Frees a job and its reports; NULL is a no-op. */
void bounce_job_free(struct bounce_job *job);

/*
 * Starts the parser and database threads; done(job, arg) runs on base's loop (base
 * must have been made after evthread_use_pthreads()).  NULL when the
 * thread cannot start.  x is borrowed and must outlive the committer.
 */
struct bounce_committer *bounce_committer_start(struct event_base *base,
                                                const struct bounce_intake_ctx *x,
                                                bounce_job_done_fn done, void *arg);

/* Queues a job (ownership moves to the committer until done gets it back). */
void bounce_committer_submit(struct bounce_committer *c, struct bounce_job *job);

/*
 * Stops the threads after the work in progress (call it once base's loop
 * has stopped) and frees every job it still holds, answered or not: their
 * senders saw no 250, so they send again.  NULL is a no-op.
 */
void bounce_committer_stop(struct bounce_committer *c);

#endif
