/*
 * fuzz_json.c - libFuzzer target for JSON request bodies: each resource's
 * validation, reached through its real handler against a real SQLite
 * store (a temporary file, one per process).
 *
 * The first byte picks the route among those that take a JSON body (all
 * but test sends, which talk to a relay, and DKIM keys, whose key
 * generation would swamp the run); the rest is the body, parsed as the
 * server parses it.  The handler runs as the operator on a tenant, list,
 * recipient and campaign made at start.  Invariants: the handler answers
 * exactly once, never with a 5xx (bad input is the client's error), and an
 * error answer is {"error":{"code","message"}} with the table's code.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "fuzz.h"
#include "http/http.h"

/* The handlers fuzzed; their routes are found in the table at start. */
static const struct {
    const char *name;
    handler_fn fn;
} handlers[] = {
    {"api_tenant_create", api_tenant_create}, {"api_tenant_patch", api_tenant_patch},
    {"api_key_create", api_key_create}, {"api_rate_limits_put", api_rate_limits_put},
    {"api_list_create", api_list_create}, {"api_list_update", api_list_update},
    {"api_recipient_create", api_recipient_create}, {"api_recipient_update", api_recipient_update},
    {"api_campaign_create", api_campaign_create}, {"api_campaign_update", api_campaign_update},
    {"api_campaign_schedule", api_campaign_schedule}, {"api_campaign_preview", api_campaign_preview},
    {"api_unsub_create", api_unsub_create},
};
#define NFUZZED ((int)(sizeof(handlers) / sizeof(handlers[0])))

static struct config cfg;
static struct app app;
static int route_of[NFUZZED];
/* Ids made at start, by capture name. */
static char tenant_id[MC_UUID_LEN + 1], list_id[MC_UUID_LEN + 1], recipient_id[MC_UUID_LEN + 1],
    campaign_id[MC_UUID_LEN + 1];
static char dbpath[64];

static void
cleanup_db(void)
{
    unlink(dbpath);
}

/* Runs route i with body (stolen); returns the request for checking (caller frees). */
static struct req *
run(int route, json_t *body)
{
    struct req *r = xcalloc(1, sizeof(*r));
    const char *p = routes[route].pattern;
    struct buf path;

    r->app = &app;
    r->route = &routes[route];
    r->route_index = route;
    r->method = routes[route].method;
    r->json = body;
    r->is_operator = true;
    r->scopes = KEY_SCOPE_READ | KEY_SCOPE_WRITE;
    buf_init(&r->body, 0);
    snprintf(r->request_id, sizeof(r->request_id), "fuzz");
    buf_init(&path, 0);
    while (*p) {
        const char *id, *end;

        if (*p != '{') {
            buf_putc(&path, *p++);
            continue;
        }
        id = str_prefix(p, "{tenant_id}")      ? tenant_id
             : str_prefix(p, "{list_id}")      ? list_id
             : str_prefix(p, "{recipient_id}") ? recipient_id
                                               : campaign_id;
        end = strchr(p, '}');
        r->params[r->nparams++] = xstrdup(id);
        buf_puts(&path, id);
        p = end + 1;
    }
    r->raw_path = buf_steal(&path); /* Location headers are made from it */
    routes[route].fn(r);
    return r;
}

static int
find_route(handler_fn fn)
{
    for (int i = 0; i < nroutes; i++)
        if (routes[i].fn == fn)
            return i;
    return -1;
}

/* Makes a fixture through its handler; copies the new id into out. */
static void
make(handler_fn fn, const char *body, char out[MC_UUID_LEN + 1])
{
    struct req *r = run(find_route(fn), json_loads(body, 0, NULL));
    json_t *resp = json_loads(r->resp_body ? r->resp_body : "", 0, NULL);
    const char *id = json_string_value(json_object_get(resp, "id"));

    if (r->status != 201 || id == NULL) {
        fprintf(stderr, "fuzz_json: fixture failed: %d %s\n", r->status, r->resp_body);
        abort();
    }
    snprintf(out, MC_UUID_LEN + 1, "%s", id);
    json_decref(resp);
    req_free(r);
}

static void
init(void)
{
    struct store_params sp = {.pool_size = 2, .busy_timeout_ms = 5000};
    struct config_override ov[2];
    struct buf errors;
    char *url;

    snprintf(dbpath, sizeof(dbpath), "/tmp/mailcast-fuzz-json-%d.db", (int)getpid());
    unlink(dbpath);
    atexit(cleanup_db);
    url = xasprintf("sqlite:%s", dbpath);
    ov[0] = (struct config_override){"database", url};
    ov[1] = (struct config_override){"log_level", "error"};
    buf_init(&errors, 0);
    CHECK(config_load(&cfg, NULL, ov, 2, &errors) == MC_ERR_OK);
    buf_cleanup(&errors);
    log_set_level(LOG_ERROR);
    app.cfg = &cfg;
    CHECK(store_open(url, &sp, &app.st) == MC_ERR_OK);
    CHECK(store_migrate(app.st, NULL) == MC_ERR_OK);
    free(url);
    CHECK(app_secrets_load(app.st, &app.secrets) == MC_ERR_OK);
    for (int i = 0; i < NFUZZED; i++) {
        route_of[i] = find_route(handlers[i].fn);
        CHECK(route_of[i] >= 0);
    }
    make(api_tenant_create, "{\"name\": \"Fuzz Co\"}", tenant_id);
    make(api_list_create, "{\"name\": \"Fuzz list\"}", list_id);
    make(api_recipient_create, "{\"email\": \"fuzz@example.com\", \"name\": \"Fu Zz\"}",
         recipient_id);
    {
        char *body = xasprintf("{\"name\": \"c\", \"subject\": \"Hi {{name}}\", \"from_address\": "
                               "\"news@example.com\", \"html_body\": \"<p>{{name}}</p>\", "
                               "\"recipient_list_id\": \"%s\"}",
                               list_id);
        make(api_campaign_create, body, campaign_id);
        free(body);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    json_error_t jerr;
    json_t *body, *resp, *err;
    struct req *r;
    const char *code;

    if (!ready) {
        init();
        ready = true;
    }
    if (size < 1 || size > 16384)
        return 0;
    body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    r = run(route_of[data[0] % NFUZZED], body);
    CHECK(r->answered);
    if (r->status >= 500)
        fprintf(stderr, "fuzz_json: %s answered %d %s\n", handlers[data[0] % NFUZZED].name, r->status,
                r->resp_body);
    CHECK(r->status >= 200 && r->status < 500);
    if (r->status >= 400) {
        resp = json_loads(r->resp_body ? r->resp_body : "", 0, NULL);
        err = json_object_get(resp, "error");
        code = json_string_value(json_object_get(err, "code"));
        CHECK(code != NULL && json_is_string(json_object_get(err, "message")));
        json_decref(resp);
    }
    req_free(r);
    return 0;
}
