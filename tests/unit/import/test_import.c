/*
 * test_import.c - the import pipeline (src/import/) on both backends:
 * batching across chunk and batch boundaries, the report, and what a
 * broken body leaves written.  The HTTP tests (test_import.py) cover the
 * routes; these pin the pipeline's own contract, which any caller gets.
 */
#include "mctest.h"
#include "storefix.h"

#include "import/import.h"

struct ctx {
    struct store *st;
    struct config cfg;
    struct tenant a, b;
    struct recipient_list la;
};

static void
ctx_init(void **state, struct ctx *c, const char *slug)
{
    char s[64];

    memset(c, 0, sizeof(*c));
    c->st = ((struct fixture *)*state)->st;
    assert_int_equal(store_migrate(c->st, NULL), MC_ERR_OK);
    c->cfg.import_batch_size = 2; /* several batches from a few rows */
    c->cfg.import_max_row = 256;
    c->cfg.import_max_json = 4096;
    snprintf(s, sizeof(s), "%s-a", slug);
    make_tenant(c->st, s, &c->a);
    snprintf(s, sizeof(s), "%s-b", slug);
    make_tenant(c->st, s, &c->b);
    memcpy(c->la.tenant_id, c->a.id, sizeof(c->la.tenant_id));
    c->la.name = xstrdup("list");
    assert_int_equal(store_list_create(c->st, &c->la), MC_ERR_OK);
}

static void
ctx_cleanup(struct ctx *c)
{
    tenant_cleanup(&c->a);
    tenant_cleanup(&c->b);
    recipient_list_cleanup(&c->la);
}

/* Feeds body in chunks of n bytes (splitting rows and fields), then finishes. */
static mc_err
run(struct import *im, const char *body, size_t n)
{
    size_t len = strlen(body);
    mc_err e = MC_ERR_OK;

    for (size_t off = 0; off < len && e == MC_ERR_OK; off += n)
        e = import_feed(im, body + off, len - off < n ? len - off : n);
    return e == MC_ERR_OK ? import_finish(im) : e;
}

static json_int_t
num(json_t *report, const char *k)
{
    return json_integer_value(json_object_get(report, k));
}

static int64_t
list_count(struct ctx *c)
{
    struct recipient_list l = {0};
    int64_t n;

    assert_int_equal(store_list_get(c->st, c->a.id, c->la.id, &l), MC_ERR_OK);
    n = l.recipient_count;
    recipient_list_cleanup(&l);
    return n;
}

static void
test_csv_batches_and_report(void **state)
{
    static const char body[] = "Email,Name,city\r\n"
                               "ada@example.com,Ada,London\r\n"
                               "not-an-address,Bob,Paris\r\n"
                               "ADA@example.com,Ada again,\r\n"
                               "cy@example.com,\"Cy, the third\",Oslo\r\n"
                               "\r\n"
                               "di@example.com,Di,\r\n";
    struct ctx c;
    struct import *im;
    json_t *rep, *err0;

    ctx_init(state, &c, "imp-csv");
    /* Chunks of 5 bytes split rows, quoted fields and CRLFs. */
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_CSV, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, body, 5), MC_ERR_OK);
    rep = import_report(im);
    assert_int_equal(num(rep, "total"), 5);
    assert_int_equal(num(rep, "invalid"), 1);
    assert_int_equal(num(rep, "imported"), 3);
    assert_int_equal(num(rep, "skipped_duplicates"), 1);
    err0 = json_array_get(json_object_get(rep, "errors"), 0);
    assert_int_equal(json_integer_value(json_object_get(err0, "line")), 3);
    assert_string_equal(json_string_value(json_object_get(err0, "email")), "not-an-address");
    assert_int_equal(list_count(&c), 3);
    json_decref(rep);
    import_free(im);
    ctx_cleanup(&c);
}

static void
test_csv_broken_row_keeps_what_came_before(void **state)
{
    static const char body[] = "email\n"
                               "one@example.com\n"
                               "two@example.com\n"
                               "three@example.com\n"
                               "\"four@example.com\n"
                               "five@example.com\n";
    const char *field, *msg;
    bool with_report = false;
    struct ctx c;
    struct import *im;
    json_t *rep;

    ctx_init(state, &c, "imp-broken");
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_CSV, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, body, 7), MC_ERR_BAD_REQUEST);
    msg = import_error(im, &field, &with_report);
    assert_null(field);
    assert_true(with_report);
    assert_non_null(strstr(msg, "unterminated quoted field"));
    /* Every row before the broken one is written, in batches of two. */
    rep = import_report(im);
    assert_int_equal(num(rep, "imported"), 3);
    assert_int_equal(list_count(&c), 3);
    /* Stopped: more bytes change nothing and give the same error. */
    assert_int_equal(import_feed(im, "six@example.com\n", 16), MC_ERR_BAD_REQUEST);
    assert_int_equal(list_count(&c), 3);
    json_decref(rep);
    import_free(im);
    ctx_cleanup(&c);
}

static void
test_csv_header_and_empty(void **state)
{
    const char *field, *msg;
    bool with_report;
    struct ctx c;
    struct import *im;

    ctx_init(state, &c, "imp-header");
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_CSV, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, "name,city\nAda,London\n", 64), MC_ERR_BAD_REQUEST);
    msg = import_error(im, &field, &with_report);
    assert_non_null(strstr(msg, "no \"email\" column"));
    import_free(im);
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_CSV, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, "", 64), MC_ERR_BAD_REQUEST);
    msg = import_error(im, &field, &with_report);
    assert_non_null(strstr(msg, "empty"));
    assert_int_equal(list_count(&c), 0);
    import_free(im);
    ctx_cleanup(&c);
}

static void
test_json_errors(void **state)
{
    const char *field, *msg;
    bool with_report = true;
    struct ctx c;
    struct import *im;
    char big[5000];

    ctx_init(state, &c, "imp-json");
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_JSON, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, "{\"recipients\": [", 64), MC_ERR_BAD_JSON);
    msg = import_error(im, &field, &with_report);
    assert_false(with_report);
    assert_non_null(strstr(msg, "line 1"));
    import_free(im);

    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_JSON, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, "{\"emails\": []}", 64), MC_ERR_INVALID);
    import_error(im, &field, &with_report);
    assert_string_equal(field, "recipients");
    import_free(im);

    /* import_max_json (4096 here) bounds the body, whatever the chunking. */
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_JSON, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, big, 1000), MC_ERR_TOO_LARGE);
    import_free(im);

    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_JSON, c.a.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im,
                         "{\"recipients\": [{\"email\": \"j1@example.com\", \"attributes\": "
                         "{\"k\": 1}}, 7, {\"email\": 3}, {\"email\": \"j2@example.com\"}, "
                         "{\"email\": \"J1@example.com\"}]}",
                         9),
                     MC_ERR_OK);
    json_t *rep = import_report(im);
    assert_int_equal(num(rep, "total"), 5);
    assert_int_equal(num(rep, "invalid"), 2);
    assert_int_equal(num(rep, "imported"), 2);
    assert_int_equal(num(rep, "skipped_duplicates"), 1);
    assert_int_equal(list_count(&c), 2);
    json_decref(rep);
    import_free(im);
    ctx_cleanup(&c);
}

static void
test_suppressions_and_tenants(void **state)
{
    struct unsubscribe u = {0};
    struct ctx c;
    struct import *im;
    json_t *rep;

    ctx_init(state, &c, "imp-supp");
    im = import_new(c.st, &c.cfg, IMPORT_SUPPRESSIONS, IMPORT_CSV, c.a.id, NULL, IMPORT_SKIP);
    assert_int_equal(run(im, "email,reason\nx@example.com,asked\ny@example.com,\n", 4),
                     MC_ERR_OK);
    rep = import_report(im);
    assert_int_equal(num(rep, "imported"), 2);
    json_decref(rep);
    import_free(im);
    assert_int_equal(store_unsub_get(c.st, c.a.id, "x@example.com", &u), MC_ERR_OK);
    assert_string_equal(u.reason, "asked");
    unsubscribe_cleanup(&u);
    /* The other tenant has none of them. */
    assert_int_equal(store_unsub_get(c.st, c.b.id, "x@example.com", &u), MC_ERR_NOT_FOUND);
    /* Nor can it import into the first tenant's list: nothing is written. */
    im = import_new(c.st, &c.cfg, IMPORT_RECIPIENTS, IMPORT_CSV, c.b.id, c.la.id, IMPORT_SKIP);
    assert_int_equal(run(im, "email\nz@example.com\n", 64), MC_ERR_NOT_FOUND);
    import_free(im);
    assert_int_equal(list_count(&c), 0);
    ctx_cleanup(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_batches_and_report),
        cmocka_unit_test(test_csv_broken_row_keeps_what_came_before),
        cmocka_unit_test(test_csv_header_and_empty),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_suppressions_and_tenants),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("import/sqlite", tests, setup_sqlite, teardown);
    failed += cmocka_run_group_tests_name("import/postgres", tests, setup_pg, teardown);
    return failed;
}
