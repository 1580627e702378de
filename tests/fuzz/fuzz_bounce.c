/*
 * fuzz_bounce.c - libFuzzer target for the bounce parser: the input is one
 * message, parsed by bounce_parse; every recipient, reference and field
 * must come out bounded and valid UTF-8, and each recipient's class must
 * be one the classifier gives.  The same bytes go through the classifier
 * directly as a diagnostic, and through the reference and VERP readers.
 *
 * Built by `make fuzz` (clang, libFuzzer) and by `make fuzz-replay` (any
 * compiler, tests/fuzz/replay.c as the driver).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "bounce/parse.h"
#include "core/util.h"



static void
check_text(const char *s, size_t max)
{
    if (s == NULL)
        return;
    CHECK(strlen(s) <= max);
    CHECK(str_valid_utf8(s, strlen(s), true));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bounce_report r;
    char *s, ref[BOUNCE_REF_LEN + 1], id[MC_UUID_LEN + 1], st[16];
    static const unsigned char key[1][BOUNCE_REF_KEY_LEN];

    if (size > 1024 * 1024)
        return 0;
    bounce_parse((const char *)data, size, &r);
    CHECK(r.kind >= BOUNCE_KIND_NOT_BOUNCE && r.kind <= BOUNCE_KIND_OTHER);
    CHECK(r.nrcpts >= 0 && r.nrcpts <= BOUNCE_MAX_RCPTS);
    CHECK(r.nrefs >= 0 && r.nrefs <= BOUNCE_MAX_REFS);
    for (int i = 0; i < r.nrcpts; i++) {
        const struct bounce_rcpt *x = &r.rcpts[i];
        CHECK(x->email != NULL && strchr(x->email, '@') != NULL);
        check_text(x->email, 1024);
        check_text(x->diagnostic, BOUNCE_DIAG_MAX);
        check_text(x->action, BOUNCE_DIAG_MAX);
        check_text(x->remote_mta, 4 * BOUNCE_DIAG_MAX);
        CHECK(strlen(x->status) < sizeof(x->status));
        CHECK((unsigned)x->cls < BOUNCE_NCLASSES);
    }
    for (int i = 0; i < r.nrefs; i++) {
        CHECK(strlen(r.refs[i]) == BOUNCE_REF_LEN);
        CHECK(!bounce_ref_verify(key, 1, r.refs[i], id) || strlen(id) == MC_UUID_LEN);
    }
    bounce_report_cleanup(&r);

    s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    CHECK((unsigned)bounce_classify(s, (int)(size % 700), s, size % 2) < BOUNCE_NCLASSES);
    if (bounce_status_find(s, size, st))
        CHECK(strlen(st) >= 5 && strlen(st) < 16);
    (void)bounce_reply_code_find(s, size);
    if (bounce_ref_from_address(s, ref))
        CHECK(strlen(ref) == BOUNCE_REF_LEN);
    (void)bounce_ref_verify(key, 1, s, id);
    free(s);
    return 0;
}
