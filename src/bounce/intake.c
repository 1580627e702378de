/*
 * intake.c - the bounce intake pipeline (see intake.h): parse, verify the
 * reference, record and apply the policy through the store, count.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/util.h"
#include "intake.h"
#include "parse.h"

/*
 * The first max bytes of data as text for the record: a NUL or a byte
 * that is not part of a UTF-8 sequence becomes U+FFFD.  Owned.
 */
static char *
raw_text(const char *data, size_t len, size_t max, bool *truncated)
{
    struct buf b;
    size_t i = 0;

    *truncated = len > max;
    if (len > max)
        len = max;
    buf_init(&b, 0);
    while (i < len) {
        unsigned char c = (unsigned char)data[i];
        size_t run = i;

        /* A run of printable ASCII and line ends is copied as it is, at once. */
        while (run < len && ((data[run] >= 0x20 && data[run] < 0x7f) || data[run] == '\r' ||
                             data[run] == '\n' || data[run] == '\t'))
            run++;
        if (run > i) {
            buf_append(&b, data + i, run - i);
            i = run;
            continue;
        }
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                              : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (c != 0 && n > 0 && i + n <= len && str_valid_utf8(data + i, n, true)) {
            buf_append(&b, data + i, n);
            i += n;
        } else if (c == '\r' || c == '\n' || c == '\t' || (c >= 0x20 && c < 0x80)) {
            buf_putc(&b, (char)c); /* str_valid_utf8 refuses CR; keep the message's lines */
            i++;
        } else {
            buf_puts(&b, "\xef\xbf\xbd");
            i++;
        }
    }
    return buf_steal(&b);
}

bool
bounce_intake_reference(const struct bounce_intake_ctx *x, const struct bounce_report *r,
                        const char *envelope_rcpt, char out[MC_UUID_LEN + 1])
{
    char ref[BOUNCE_REF_LEN + 1];

    if (x->nkeys <= 0)
        return false;
    if (envelope_rcpt && bounce_ref_from_address(envelope_rcpt, ref) &&
        bounce_ref_verify(x->keys, x->nkeys, ref, out))
        return true;
    for (int i = 0; r && i < r->nrefs; i++)
        if (bounce_ref_verify(x->keys, x->nkeys, r->refs[i], out))
            return true;
    return false;
}

static void
count(const struct bounce_intake_ctx *x, const struct bounce_report_in *in,
      const struct bounce_applied *a)
{
    if (x->stats == NULL)
        return;
    for (int i = 0; i < a->n; i++) {
        int c = bounce_class_parse(in->n > 0 ? in->items[i].class : "undetermined");
        if (c >= 0)
            atomic_fetch_add(&x->stats->by_class[c], 1);
        if (a->items[i].outcome == BOUNCE_OUT_UNREFERENCED)
            atomic_fetch_add(&x->stats->unreferenced, 1);
        if (a->items[i].outcome == BOUNCE_OUT_SUPPRESSED)
            atomic_fetch_add(&x->stats->suppressed, 1);
    }
}

/* Logs what a report changed, one line per item (addresses are not logged). */
static void
log_applied(const struct bounce_report_in *in, const struct bounce_applied *a)
{
    for (int i = 0; i < a->n; i++)
        log_info("event=bounce tenant=%s campaign=%s msg=%s source=%s kind=%s class=%s outcome=%s",
                 a->tenant_id[0] ? a->tenant_id : "-", a->campaign_id[0] ? a->campaign_id : "-",
                 a->message_id[0] ? a->message_id : "-", in->source, in->kind,
                 in->n > 0 ? in->items[i].class : "undetermined",
                 bounce_outcome_str(a->items[i].outcome));
}

void
bounce_intake_prepare(const struct bounce_intake_ctx *x, const char *data, size_t len,
                      const char *source, const char *envelope_rcpt, struct bounce_prepared *out)
{
    struct bounce_report *r = &out->r;
    struct bounce_report_in *in = &out->in;
    bool truncated = false;

    memset(out, 0, sizeof(*out));
    bounce_parse(data, len, r);
    in->message_id = bounce_intake_reference(x, r, envelope_rcpt, out->msg_id) ? out->msg_id
                                                                                : NULL;
    in->kind = bounce_kind_str(r->kind);
    in->source = source;
    in->reporting_mta = r->reporting_mta;
    in->feedback_type = r->feedback_type;
    for (int i = 0; i < r->nrcpts && in->n < BOUNCE_PREPARED_MAX; i++) {
        const struct bounce_rcpt *y = &r->rcpts[i];
        out->items[in->n++] = (struct bounce_item){
            y->email, bounce_class_str(y->cls), y->status, y->action, y->diagnostic,
            y->remote_mta};
    }
    /* A feedback report that redacted the recipient: the reference names them. */
    if (in->n == 0 && r->kind == BOUNCE_KIND_ARF)
        out->items[in->n++] = (struct bounce_item){
            NULL, bounce_class_str(bounce_classify_feedback(r->feedback_type)), NULL,
            r->feedback_type, NULL, NULL};
    in->items = out->items;
    out->raw = raw_text(data, len, x->raw_max, &truncated);
    in->raw = out->raw;
    in->raw_truncated = truncated;
}

void
bounce_prepared_cleanup(struct bounce_prepared *p)
{
    if (p == NULL)
        return;
    free(p->raw);
    p->raw = NULL;
    bounce_report_cleanup(&p->r);
}

mc_err
bounce_intake_commit(const struct bounce_intake_ctx *x, struct bounce_prepared *const *ps, int n)
{
    const struct bounce_report_in **ins = xcalloc((size_t)n, sizeof(*ins)); /* owned */
    struct bounce_applied *outs = xcalloc((size_t)n, sizeof(*outs));        /* owned */
    int64_t now = time_now_us();
    mc_err err;

    for (int i = 0; i < n; i++) {
        ps[i]->in.now = now;
        ins[i] = &ps[i]->in;
    }
    err = store_bounce_record_batch(x->st, ins, n, outs);
    for (int i = 0; i < n && err == MC_ERR_OK; i++) {
        ps[i]->a = outs[i];
        count(x, ins[i], &outs[i]);
        log_applied(ins[i], &outs[i]);
    }
    if (err != MC_ERR_OK)
        log_error("event=bounce_intake_failed source=%s n=%d error=\"%s\"",
                  n > 0 ? ins[0]->source : "-", n, mc_err_str(err));
    free(ins);
    free(outs);
    return err;
}

mc_err
bounce_intake_message(const struct bounce_intake_ctx *x, const char *data, size_t len,
                      const char *source, const char *envelope_rcpt, struct bounce_applied *out)
{
    struct bounce_prepared *p = xmalloc(sizeof(*p)); /* owned */
    mc_err err;

    bounce_intake_prepare(x, data, len, source, envelope_rcpt, p);
    err = bounce_intake_commit(x, &p, 1);
    if (err == MC_ERR_OK && out)
        *out = p->a;
    bounce_prepared_cleanup(p);
    free(p);
    return err;
}

mc_err
bounce_intake_api(const struct bounce_intake_ctx *x, const char *tenant_id, const char *message_id,
                  const char *email, const char *cls, const char *status, const char *diagnostic,
                  struct bounce_applied *out)
{
    struct bounce_item item = {email, cls, status, NULL, diagnostic, NULL};
    struct bounce_report_in in;
    struct bounce_applied a;
    mc_err err;

    memset(&in, 0, sizeof(in));
    in.tenant_id = tenant_id;
    in.message_id = message_id;
    in.kind = "api";
    in.source = "api";
    in.feedback_type = strcmp(cls, "complaint") == 0 ? "abuse" : NULL;
    in.items = &item;
    in.n = 1;
    in.now = time_now_us();
    err = store_bounce_record(x->st, &in, &a);
    if (err == MC_ERR_OK) {
        count(x, &in, &a);
        log_applied(&in, &a);
        if (out)
            *out = a;
    }
    return err;
}

bool
bounce_envelope_recipient(const char *data, size_t len, char *out, size_t outlen)
{
    static const char *const names[] = {"Delivered-To:", "X-Original-To:"};

    for (int k = 0; k < 2; k++) {
        size_t nl = strlen(names[k]);
        for (size_t i = 0; i + nl < len; i++) {
            if (i > 0 && data[i - 1] != '\n')
                continue;
            if (data[i] == '\n' || (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n'))
                break; /* the end of the header */
            if (strncasecmp(data + i, names[k], nl) != 0)
                continue;
            size_t a = i + nl, e;
            while (a < len && (data[a] == ' ' || data[a] == '\t' || data[a] == '<'))
                a++;
            for (e = a; e < len && data[e] != '\r' && data[e] != '\n' && data[e] != '>' &&
                        data[e] != ' ';
                 e++)
                ;
            if (e == a || e - a >= outlen)
                continue;
            memcpy(out, data + a, e - a);
            out[e - a] = '\0';
            return true;
        }
    }
    return false;
}
