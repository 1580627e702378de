/*
 * api_lists.c - recipient lists and recipients: CRUD, search and the
 * streamed CSV export.  Imports are in api_import.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/csv.h"
#include "core/email.h"
#include "core/log.h"
#include "http.h"

#define NAME_MAX_LEN 255
#define DESCRIPTION_MAX 10000
#define EXPORT_PAGE 1000
#define EXPORT_MAX_COLUMNS 1000

#define LIST(r) req_param((r), "list_id")

json_t *
list_json(const struct recipient_list *l)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:o, s:o}", "id", l->id, "name", l->name,
                     "description", json_str_or_null(l->description), "metadata",
                     json_from_text(l->metadata), "recipient_count",
                     (json_int_t)l->recipient_count, "active_count",
                     (json_int_t)l->active_count, "created_at", json_time(l->created_at),
                     "updated_at", json_time(l->updated_at));
}

json_t *
recipient_json(const struct recipient *x)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o}", "id", x->id,
                          "recipient_list_id", x->list_id, "email", x->email, "name",
                          json_str_or_null(x->name), "first_name", json_str_or_null(x->first_name),
                          "last_name", json_str_or_null(x->last_name), "status",
                          recipient_status_str(x->status), "attributes",
                          json_from_text(x->attributes));

    json_object_set_new(o, "subscribed_at", json_time(x->subscribed_at));
    json_object_set_new(o, "unsubscribed_at", json_time(x->unsubscribed_at));
    json_object_set_new(o, "created_at", json_time(x->created_at));
    json_object_set_new(o, "updated_at", json_time(x->updated_at));
    return o;
}

/* ---- lists ---- */

void
api_list_create(struct req *r)
{
    struct recipient_list l = {0};
    const char *name = NULL, *desc = NULL;
    char *meta = NULL;
    mc_err err;

    if (!field_string(r, r->json, "name", F_REQUIRED | F_NONEMPTY | F_ONELINE, NAME_MAX_LEN, &name,
                      NULL) ||
        !field_string(r, r->json, "description", F_NULLABLE, DESCRIPTION_MAX, &desc, NULL) ||
        !field_json(r, r->json, "metadata", F_NULLABLE, false, &meta, NULL))
        goto out;
    snprintf(l.tenant_id, sizeof(l.tenant_id), "%s", TENANT(r));
    l.name = xstrdup(name);
    l.description = xstrdup(desc);
    l.metadata = meta;
    meta = NULL;
    err = store_list_create(r->app->st, &l);
    if (err != MC_ERR_OK)
        reply_store_error(r, err, "tenant");
    else
        reply_created(r, list_json(&l), l.id, NULL);
out:
    free(meta);
    recipient_list_cleanup(&l);
}

void
api_list_list(struct req *r)
{
    struct recipient_list_vec v = {0};
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    err = store_list_list(r->app->st, TENANT(r), &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "tenant");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, list_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    recipient_list_vec_cleanup(&v);
}

void
api_list_get(struct req *r)
{
    struct recipient_list l = {0};
    mc_err err = store_list_get(r->app->st, TENANT(r), LIST(r), &l);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient list");
    else
        reply_json(r, 200, list_json(&l));
    recipient_list_cleanup(&l);
}

void
api_list_update(struct req *r)
{
    struct list_patch lp = {0};
    struct recipient_list l = {0};
    char *meta = NULL;
    bool has_meta = false;
    mc_err err;

    if (!field_string(r, r->json, "name", F_NONEMPTY | F_ONELINE, NAME_MAX_LEN, &lp.name, NULL) ||
        !field_string(r, r->json, "description", F_NULLABLE, DESCRIPTION_MAX, &lp.description,
                      &lp.set_description) ||
        !field_json(r, r->json, "metadata", F_NULLABLE, false, &meta, &has_meta))
        goto out;
    /* metadata is never null: an explicit null empties it. */
    lp.metadata = meta ? meta : has_meta ? "{}" : NULL;
    err = store_list_update(r->app->st, TENANT(r), LIST(r), &lp, &l);
    if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient list");
    else
        reply_json(r, 200, list_json(&l));
out:
    free(meta);
    recipient_list_cleanup(&l);
}

void
api_list_delete(struct req *r)
{
    mc_err err = store_list_delete(r->app->st, TENANT(r), LIST(r));

    if (err == MC_ERR_STATE)
        reply_error(r, MC_ERR_CONFLICT,
                    "the list is used by a scheduled, sending or paused campaign");
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient list");
    else {
        log_info("event=list_deleted tenant=%s list=%s", TENANT(r), LIST(r));
        reply_empty(r, 204);
    }
}

/* ---- recipients ---- */

/* Reads name, first_name and last_name (nullable, one line) into p. */
static bool
name_fields(struct req *r, struct recipient_patch *p)
{
    bool ok = field_string(r, r->json, "name", F_NULLABLE | F_ONELINE, NAME_MAX_LEN, &p->name,
                           &p->set_name) &&
              field_string(r, r->json, "first_name", F_NULLABLE | F_ONELINE, NAME_MAX_LEN,
                           &p->first_name, &p->set_first_name) &&
              field_string(r, r->json, "last_name", F_NULLABLE | F_ONELINE, NAME_MAX_LEN,
                           &p->last_name, &p->set_last_name);

    /* An empty name is no name, as in an import. */
    if (p->name && *p->name == '\0')
        p->name = NULL;
    if (p->first_name && *p->first_name == '\0')
        p->first_name = NULL;
    if (p->last_name && *p->last_name == '\0')
        p->last_name = NULL;
    return ok;
}

/* Validates the "email" field into out/lc; replies 422 and returns false when bad. */
static bool
email_field(struct req *r, bool required, char out[EMAIL_MAX + 1], char lc[EMAIL_MAX + 1],
            bool *present)
{
    const char *email = NULL, *why = NULL;

    if (!field_string(r, r->json, "email", required ? F_REQUIRED : 0, 1024, &email, present))
        return false;
    if (email == NULL)
        return true;
    if (!email_normalize(email, out, lc, &why)) {
        reply_invalid(r, "email", "email is not a valid address: %s", why);
        return false;
    }
    return true;
}

static bool
status_field(struct req *r, struct recipient_patch *p)
{
    const char *s = NULL;
    int v;

    if (!field_string(r, r->json, "status", 0, 32, &s, &p->has_status))
        return false;
    if (!p->has_status)
        return true;
    if ((v = recipient_status_parse(s)) < 0) {
        reply_invalid(r, "status", "status must be active, unsubscribed, bounced or complained");
        return false;
    }
    p->status = (enum recipient_status)v;
    return true;
}

void
api_recipient_create(struct req *r)
{
    struct recipient_patch p = {0};
    struct recipient x = {0};
    char email[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    char *attrs = NULL;
    mc_err err;

    if (!email_field(r, true, email, lc, NULL) || !name_fields(r, &p) ||
        !field_json(r, r->json, "attributes", F_NULLABLE, false, &attrs, NULL))
        goto out;
    x.email = xstrdup(email);
    x.email_lc = xstrdup(lc);
    x.name = xstrdup(p.name);
    x.first_name = xstrdup(p.first_name);
    x.last_name = xstrdup(p.last_name);
    x.attributes = attrs;
    attrs = NULL;
    err = store_recipient_create(r->app->st, TENANT(r), LIST(r), &x);
    if (err == MC_ERR_CONFLICT)
        reply_error(r, err, "%s is already in this list", email);
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient list");
    else
        reply_created(r, recipient_json(&x), x.id, NULL);
out:
    free(attrs);
    recipient_cleanup(&x);
}

void
api_recipient_list(struct req *r)
{
    struct recipient_filter f = {.status = -1, .q = req_query(r, "q")};
    const char *status = req_query(r, "status");
    struct recipient_vec v = {0};
    struct page pg;
    json_t *items;
    mc_err err;

    if (!req_page(r, &pg))
        return;
    if (status != NULL && (f.status = recipient_status_parse(status)) < 0) {
        reply_invalid(r, "status", "status must be active, unsubscribed, bounced or complained");
        return;
    }
    if (f.q != NULL && strlen(f.q) > 254) {
        reply_invalid(r, "q", "q must be at most 254 bytes");
        return;
    }
    if (f.q != NULL && *f.q == '\0')
        f.q = NULL;
    err = store_recipient_list(r->app->st, TENANT(r), LIST(r), &f, &pg, &v);
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "recipient list");
        return;
    }
    items = json_array();
    for (int i = 0; i < v.n; i++)
        json_array_append_new(items, recipient_json(&v.items[i]));
    reply_json(r, 200, json_page(items, v.total, &pg));
    recipient_vec_cleanup(&v);
}

void
api_recipient_get(struct req *r)
{
    struct recipient x = {0};
    mc_err err = store_recipient_get(r->app->st, TENANT(r), LIST(r),
                                     req_param(r, "recipient_id"), &x);

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient");
    else
        reply_json(r, 200, recipient_json(&x));
    recipient_cleanup(&x);
}

void
api_recipient_update(struct req *r)
{
    const char *id = req_param(r, "recipient_id");
    struct recipient_patch p = {0};
    struct recipient x = {0};
    char email[EMAIL_MAX + 1], lc[EMAIL_MAX + 1];
    char *attrs = NULL;
    bool has_email = false, has_attrs = false;
    mc_err err;

    if (!email_field(r, false, email, lc, &has_email) || !name_fields(r, &p) ||
        !status_field(r, &p) ||
        !field_json(r, r->json, "attributes", F_NULLABLE, false, &attrs, &has_attrs))
        goto out;
    p.attributes = attrs ? attrs : has_attrs ? "{}" : NULL;
    if (has_email) {
        /* The address is the recipient's identity in the list: it does not change. */
        err = store_recipient_get(r->app->st, TENANT(r), LIST(r), id, &x);
        if (err != MC_ERR_OK) {
            reply_store_error(r, err, "recipient");
            goto out;
        }
        if (strcmp(x.email_lc, lc) != 0) {
            reply_invalid(r, "email", "email cannot be changed; add a new recipient instead");
            goto out;
        }
        recipient_cleanup(&x);
    }
    err = store_recipient_update(r->app->st, TENANT(r), LIST(r), id, &p, &x);
    if (err == MC_ERR_STATE)
        reply_error(r, MC_ERR_CONFLICT,
                    "the address is on the tenant's suppression list; remove it from "
                    "/unsubscribes before making it active");
    else if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient");
    else
        reply_json(r, 200, recipient_json(&x));
out:
    free(attrs);
    recipient_cleanup(&x);
}

void
api_recipient_delete(struct req *r)
{
    mc_err err = store_recipient_delete(r->app->st, TENANT(r), LIST(r),
                                        req_param(r, "recipient_id"));

    if (err != MC_ERR_OK)
        reply_store_error(r, err, "recipient");
    else
        reply_empty(r, 204);
}

/* ---- export ---- */

struct export {
    struct app *app; /* borrowed */
    char tenant_id[MC_UUID_LEN + 1];
    char list_id[MC_UUID_LEN + 1];
    int status;
    char after[MC_UUID_LEN + 1];
    char **keys; /* owned: attribute columns */
    int nkeys;
    struct buf out;
    size_t pos;
    bool done;
};

static void
export_free(void *cls)
{
    struct export *e = cls;

    for (int i = 0; i < e->nkeys; i++)
        free(e->keys[i]);
    free(e->keys);
    buf_cleanup(&e->out);
    free(e);
}

static void
export_header(struct export *e)
{
    static const char *const fixed[] = {"email", "name", "first_name", "last_name"};

    for (int i = 0; i < 4; i++) {
        buf_puts(&e->out, fixed[i]);
        buf_putc(&e->out, ',');
    }
    for (int i = 0; i < e->nkeys; i++) {
        if (e->keys[i] == NULL)
            continue;
        csv_write_field(&e->out, e->keys[i], true);
        buf_putc(&e->out, ',');
    }
    e->out.len--; /* the last comma */
    buf_puts(&e->out, "\r\n");
}

static void
export_row(struct export *e, const struct recipient *x)
{
    json_t *attrs = json_loads(x->attributes ? x->attributes : "{}", 0, NULL);

    csv_write_field(&e->out, x->email, true);
    buf_putc(&e->out, ',');
    csv_write_field(&e->out, x->name ? x->name : "", true);
    buf_putc(&e->out, ',');
    csv_write_field(&e->out, x->first_name ? x->first_name : "", true);
    buf_putc(&e->out, ',');
    csv_write_field(&e->out, x->last_name ? x->last_name : "", true);
    for (int i = 0; i < e->nkeys; i++) {
        if (e->keys[i] == NULL)
            continue;
        json_t *v = json_object_get(attrs, e->keys[i]);
        buf_putc(&e->out, ',');
        if (json_is_string(v))
            csv_write_field(&e->out, json_string_value(v), true);
        else if (v != NULL && !json_is_null(v)) {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            csv_write_field(&e->out, s ? s : "", true);
            free(s);
        }
    }
    buf_puts(&e->out, "\r\n");
    json_decref(attrs);
}

/* Fills the buffer with the next page of rows; false at the end or on error. */
static bool
export_fill(struct export *e)
{
    struct recipient_vec v = {0};
    mc_err err;

    buf_reset(&e->out);
    e->pos = 0;
    err = store_recipient_after(e->app->st, e->tenant_id, e->list_id, e->status, e->after,
                                EXPORT_PAGE, &v);
    if (err != MC_ERR_OK) {
        log_error("event=export error=\"%s\" tenant=%s list=%s", mc_err_str(err), e->tenant_id,
                  e->list_id);
        return false;
    }
    for (int i = 0; i < v.n; i++)
        export_row(e, &v.items[i]);
    if (v.n > 0)
        memcpy(e->after, v.items[v.n - 1].id, sizeof(e->after));
    if (v.n < EXPORT_PAGE)
        e->done = true;
    recipient_vec_cleanup(&v);
    return true;
}

static ssize_t
export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct export *e = cls;
    size_t n;

    (void)pos;
    while (e->pos == e->out.len) {
        if (e->done)
            return REPLY_STREAM_END;
        if (!export_fill(e))
            return REPLY_STREAM_ERROR;
    }
    n = e->out.len - e->pos;
    if (n > max)
        n = max;
    memcpy(buf, e->out.data + e->pos, n);
    e->pos += n;
    return (ssize_t)n;
}

void
api_recipient_export(struct req *r)
{
    const char *status = req_query(r, "status");
    struct recipient_list l = {0};
    struct export *e;
    mc_err err;

    e = xcalloc(1, sizeof(*e));
    e->app = r->app;
    e->status = -1;
    snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", TENANT(r));
    snprintf(e->list_id, sizeof(e->list_id), "%s", LIST(r));
    buf_init(&e->out, 0);
    if (status != NULL && (e->status = recipient_status_parse(status)) < 0) {
        reply_invalid(r, "status", "status must be active, unsubscribed, bounced or complained");
        goto fail;
    }
    err = store_list_get(r->app->st, e->tenant_id, e->list_id, &l);
    recipient_list_cleanup(&l);
    if (err == MC_ERR_OK)
        err = store_list_attribute_keys(r->app->st, e->tenant_id, e->list_id, EXPORT_MAX_COLUMNS,
                                        &e->keys, &e->nkeys);
    if (err == MC_ERR_TOO_LARGE) {
        reply_error(r, MC_ERR_INVALID, "the list's attributes have more than %d distinct keys",
                    EXPORT_MAX_COLUMNS);
        goto fail;
    }
    if (err != MC_ERR_OK) {
        reply_store_error(r, err, "recipient list");
        goto fail;
    }
    /*
     * An attribute named like a fixed column (or differing only in case or
     * blanks, which an import folds) cannot survive a round trip as its own
     * column: it is left out rather than written twice.
     */
    for (int i = 0; i < e->nkeys; i++) {
        static const char *const fixed[] = {"email", "name", "first_name", "last_name"};
        for (int k = 0; k < 4 && e->keys[i]; k++) {
            if (strcasecmp(e->keys[i], fixed[k]) == 0) {
                free(e->keys[i]);
                e->keys[i] = NULL;
            }
        }
    }
    export_header(e);
    r->resp_disposition = "attachment; filename=\"recipients.csv\"";
    reply_stream(r, 200, "text/csv; charset=utf-8", export_read, e, export_free);
    return;
fail:
    export_free(e);
}
