/*
 * fuzz_shaping.c - libFuzzer target for the operator's shaping document
 * (app/shaping.c): domains, rules and automation rules with every trigger
 * form and action.
 *
 * A refusal names a field and a reason.  An accepted document written back
 * as JSON is accepted again and writes back the same (one canonical form,
 * fractions included).
 */
#include <string.h>

#include <jansson.h>

#include "app/app.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shaping sh = {0}, sh2 = {0};
    char field[320] = "", why[160] = "";
    json_t *doc, *out = NULL, *out2 = NULL;
    mc_err err;

    if (size > 65536)
        return 0;
    doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (doc == NULL)
        return 0;
    err = app_shaping_parse(doc, &sh, field, sizeof(field), why, sizeof(why));
    if (err != MC_ERR_OK) {
        CHECK(err == MC_ERR_INVALID);
        CHECK(field[0] != '\0' && why[0] != '\0');
    } else {
        out = app_shaping_json(&sh);
        CHECK(app_shaping_parse(out, &sh2, field, sizeof(field), why, sizeof(why)) == MC_ERR_OK);
        out2 = app_shaping_json(&sh2);
        CHECK(json_equal(out, out2));
    }
    json_decref(out);
    json_decref(out2);
    shaping_cleanup(&sh);
    shaping_cleanup(&sh2);
    json_decref(doc);
    return 0;
}
