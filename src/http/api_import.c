/*
 * api_import.c - the bulk import routes: recipients into a list and
 * addresses into the tenant's suppression list, from CSV (streamed) or
 * JSON.  The pipeline itself is src/import/; this file checks the request
 * (list, mode, content type), feeds the body to it chunk by chunk and
 * answers with its report.
 *
 * An import route is R_STREAM: its handler runs on the headers and sets up
 * the import, which then receives the body as it arrives.
 */
#include <string.h>
#include <strings.h>

#include "http.h"
#include "import/import.h"

/* Answers for an import that stopped, with its report when rows were read. */
static void
reply_stopped(struct req *r, struct import *im, mc_err e)
{
    const char *field, *msg;
    bool with_report;
    json_t *o;

    msg = import_error(im, &field, &with_report);
    if (field != NULL) {
        reply_invalid(r, field, "%s", msg);
        return;
    }
    if (!with_report) {
        reply_error(r, e, "%s", msg);
        return;
    }
    o = import_report(im);
    json_object_set_new(o, "error",
                        json_pack("{s:s, s:s}", "code", mc_err_code(e), "message", msg));
    reply_json(r, mc_err_http(e), o);
}

/*
 * A finished import's answer: 201 with the collection as Location when it
 * created anything, else 200 (updates and skips create nothing).
 */
static void
reply_finished(struct req *r, json_t *report)
{
    if (json_integer_value(json_object_get(report, "imported")) == 0)
        reply_json(r, 200, report);
    else
        reply_created(r, report, NULL, "/import");
}

static void
on_data(struct req *r, const char *data, size_t len)
{
    mc_err e;

    if (r->answered)
        return;
    if ((e = import_feed(r->stream, data, len)) != MC_ERR_OK)
        reply_stopped(r, r->stream, e);
}

static void
on_end(struct req *r)
{
    mc_err e;

    if (r->answered)
        return;
    if ((e = import_finish(r->stream)) != MC_ERR_OK)
        reply_stopped(r, r->stream, e);
    else
        reply_finished(r, import_report(r->stream));
}

static void
on_free(struct req *r)
{
    import_free(r->stream);
    r->stream = NULL;
}

static bool
media_type(struct req *r, const char *want)
{
    const char *ct = req_header(r, "Content-Type");
    size_t n = strlen(want);

    while (ct && *ct == ' ')
        ct++;
    return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void
start(struct req *r, enum import_kind kind)
{
    const char *mode = req_query(r, "mode");
    bool csv = media_type(r, "text/csv"), json = media_type(r, "application/json");

    if (kind == IMPORT_RECIPIENTS && mode != NULL && strcmp(mode, "skip") != 0 &&
        strcmp(mode, "upsert") != 0) {
        reply_invalid(r, "mode", "mode must be skip or upsert");
        return;
    }
    if (kind == IMPORT_RECIPIENTS) {
        struct recipient_list l = {0};
        mc_err err = store_list_get(r->app->st, req_param(r, "tenant_id"),
                                    req_param(r, "list_id"), &l);
        recipient_list_cleanup(&l);
        if (err != MC_ERR_OK) {
            reply_store_error(r, err, "recipient list");
            return;
        }
    }
    if (!csv && !json) {
        reply_error(r, MC_ERR_MEDIA_TYPE, "Content-Type must be text/csv or application/json");
        return;
    }
    r->stream = import_new(r->app->st, r->app->cfg, kind, csv ? IMPORT_CSV : IMPORT_JSON,
                           req_param(r, "tenant_id"),
                           kind == IMPORT_RECIPIENTS ? req_param(r, "list_id") : NULL,
                           mode && strcmp(mode, "upsert") == 0 ? IMPORT_UPSERT : IMPORT_SKIP);
    r->on_data = on_data;
    r->on_end = on_end;
    r->on_free = on_free;
}

void
api_recipient_import(struct req *r)
{
    start(r, IMPORT_RECIPIENTS);
}

void
api_unsub_import(struct req *r)
{
    start(r, IMPORT_SUPPRESSIONS);
}
