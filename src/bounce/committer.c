/*
 * committer.c - the bounce intake's parser and database threads (see committer.h).
 *
 * DESIGN
 * Three threads meet in three lists under mu: queued (jobs submitted by
 * the loop, not parsed yet), parsed (waiting for a commit) and done (jobs
 * committed or failed, waiting for the loop).  The parser thread takes
 * every queued job and parses it (so the loop, which may be the delivery
 * worker's, does only I/O); the committer thread takes every parsed job at
 * once and records all their reports in one transaction, so the commit
 * (and on SQLite its fsync) is paid once per batch, not once per message.
 * The two overlap: while one batch is in the database, the next messages
 * are parsed (one thread doing both left a core idle while it waited for
 * PostgreSQL), and the loop keeps reading.  No timer delays a lone
 * message.  A failed commit fails every job of the batch
 * (each sender gets 451 and retries); none of them was written.  The
 * batch is bounded by the sessions that can wait (one job per session,
 * bounce_max_connections).  The answer goes back through one event on the
 * loop's base (event_active is thread-safe with evthread_use_pthreads).
 */
#include <pthread.h>
#include <stdlib.h>

#include "committer.h"
#include "core/log.h"
#include "core/util.h"

struct bounce_committer {
    const struct bounce_intake_ctx *x; /* borrowed */
    bounce_job_done_fn done;
    void *arg;
    struct event *done_ev; /* owned: on the loop's base */
    pthread_t thread, parser;
    pthread_mutex_t mu;
    pthread_cond_t cv;                     /* the committer's: parsed jobs, or stopping */
    pthread_cond_t parse_cv;               /* the parser's: queued jobs, or stopping */
    bool stopping;                         /* under mu */
    struct bounce_job *queued, **queued_tail; /* owned, under mu: oldest first */
    struct bounce_job *parsed, **parsed_tail; /* owned, under mu: oldest first */
    struct bounce_job *done_list;          /* owned, under mu */
};

struct bounce_job *
bounce_job_new(void *owner, int n)
{
    struct bounce_job *j = xcalloc(1, sizeof(*j));

    j->owner = owner;
    j->n = n;
    j->ps = xcalloc((size_t)(n > 0 ? n : 1), sizeof(*j->ps));
    return j;
}

void
bounce_job_free(struct bounce_job *job)
{
    if (job == NULL)
        return;
    for (int i = 0; i < job->n; i++) {
        bounce_prepared_cleanup(&job->ps[i]);
        if (job->rcpts)
            free(job->rcpts[i]);
    }
    free(job->rcpts);
    free(job->data);
    free(job->ps);
    free(job);
}

static void
jobs_free(struct bounce_job *j)
{
    while (j) {
        struct bounce_job *next = j->next;
        bounce_job_free(j);
        j = next;
    }
}

/* Prepares a job's reports from the message as received, and frees the message. */
static void
job_parse(struct bounce_committer *c, struct bounce_job *j)
{
    if (j->data == NULL)
        return;
    for (int i = 0; i < j->n; i++)
        bounce_intake_prepare(c->x, j->data, j->len, j->source, j->rcpts[i], &j->ps[i]);
    free(j->data);
    j->data = NULL;
}

/* One batch: every report of every job in one transaction. */
static void
commit_batch(struct bounce_committer *c, struct bounce_job *jobs)
{
    struct bounce_prepared **ps = NULL; /* owned: borrowed pointers into the jobs */
    int n = 0, cap = 0, njobs = 0;
    mc_err err = MC_ERR_OK;

    for (struct bounce_job *j = jobs; j; j = j->next, njobs++)
        for (int i = 0; i < j->n; i++) {
            if (n == cap)
                ps = xrealloc(ps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof(*ps));
            ps[n++] = &j->ps[i];
        }
    if (n > 0)
        err = bounce_intake_commit(c->x, ps, n);
    log_debug("event=bounce_group_commit jobs=%d reports=%d ok=%d", njobs, n, err == MC_ERR_OK);
    for (struct bounce_job *j = jobs; j; j = j->next)
        j->err = err;
    free(ps);
}

/* The last job of a non-empty list. */
static struct bounce_job *
jobs_last(struct bounce_job *j)
{
    while (j->next)
        j = j->next;
    return j;
}

/* The parser thread: queued -> parsed. */
static void *
parse_run(void *arg)
{
    struct bounce_committer *c = arg;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->queued == NULL && !c->stopping)
            pthread_cond_wait(&c->parse_cv, &c->mu);
        if (c->stopping)
            break;
        struct bounce_job *list = c->queued;
        c->queued = NULL;
        c->queued_tail = &c->queued;
        pthread_mutex_unlock(&c->mu);
        for (struct bounce_job *j = list; j; j = j->next)
            job_parse(c, j);
        pthread_mutex_lock(&c->mu);
        *c->parsed_tail = list;
        c->parsed_tail = &jobs_last(list)->next;
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* The committer thread: parsed -> done, a batch a transaction. */
static void *
run(void *arg)
{
    struct bounce_committer *c = arg;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->parsed == NULL && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stopping)
            break;
        struct bounce_job *batch = c->parsed;
        c->parsed = NULL;
        c->parsed_tail = &c->parsed;
        pthread_mutex_unlock(&c->mu);
        commit_batch(c, batch);
        pthread_mutex_lock(&c->mu);
        jobs_last(batch)->next = c->done_list;
        c->done_list = batch;
        event_active(c->done_ev, EV_TIMEOUT, 0);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* On the loop: hands every finished job back. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bounce_committer *c = arg;
    struct bounce_job *list;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&c->mu);
    list = c->done_list;
    c->done_list = NULL;
    pthread_mutex_unlock(&c->mu);
    /* Any order: each job is a different session's one waiting message. */
    while (list) {
        struct bounce_job *next = list->next;
        list->next = NULL;
        c->done(list, c->arg);
        list = next;
    }
}

struct bounce_committer *
bounce_committer_start(struct event_base *base, const struct bounce_intake_ctx *x,
                       bounce_job_done_fn done, void *arg)
{
    struct bounce_committer *c = xcalloc(1, sizeof(*c));

    c->x = x;
    c->done = done;
    c->arg = arg;
    c->queued_tail = &c->queued;
    c->parsed_tail = &c->parsed;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->parse_cv, NULL);
    c->done_ev = event_new(base, -1, 0, done_cb, c);
    if (c->done_ev == NULL || pthread_create(&c->thread, NULL, run, c) != 0) {
        log_error("event=bounce_committer_failed error=\"cannot start the thread\"");
        goto fail;
    }
    if (pthread_create(&c->parser, NULL, parse_run, c) != 0) {
        log_error("event=bounce_committer_failed error=\"cannot start the parser thread\"");
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        goto fail;
    }
    return c;
fail:
    if (c->done_ev)
        event_free(c->done_ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->parse_cv);
    free(c);
    return NULL;
}

void
bounce_committer_submit(struct bounce_committer *c, struct bounce_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&c->mu);
    *c->queued_tail = job;
    c->queued_tail = &job->next;
    pthread_cond_signal(&c->parse_cv);
    pthread_mutex_unlock(&c->mu);
}

void
bounce_committer_stop(struct bounce_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_cond_signal(&c->parse_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_join(c->parser, NULL);
    jobs_free(c->queued);
    jobs_free(c->parsed);
    jobs_free(c->done_list);
    event_free(c->done_ev);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->parse_cv);
    free(c);
}
