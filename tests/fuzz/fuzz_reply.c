/*
 * fuzz_reply.c - libFuzzer target for the SMTP reply parser: the input is
 * split into lines at LF (a CR before it stays in the line, as a sloppy
 * line reader would leave it), fed to smtp_reply_feed, and every finished
 * reply goes through smtp_reply_class, smtp_reply_queue_id and
 * smtp_ehlo_parse.  The first byte picks the text limit, so truncation is
 * exercised too.
 *
 * Built by `make fuzz` (clang, libFuzzer) and by `make fuzz-replay` (any
 * compiler, tests/fuzz/replay.c as the driver).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"
#include "fuzz.h"

static void
check_reply(const struct smtp_reply *r)
{
    struct smtp_ext ext;
    char id[64];
    int cls = smtp_reply_class(r);

    CHECK(cls >= 2 && cls <= 5);
    CHECK(r->code >= 200 && r->code <= 599);
    CHECK(strlen(r->enhanced) < sizeof(r->enhanced));
    CHECK(r->max_text == 0 || r->text.len <= r->max_text);
    CHECK(strlen(r->text.data) == r->text.len); /* no NUL inside */
    if (smtp_reply_queue_id(r, id, sizeof(id))) {
        CHECK(cls == 2);
        CHECK(id[0] != '\0' && strlen(id) < sizeof(id));
    }
    /* A tiny output buffer: truncation, never overflow. */
    if (smtp_reply_queue_id(r, id, 2))
        CHECK(strlen(id) == 1);
    smtp_ehlo_parse(r, &ext);
    CHECK(ext.size >= 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply r;
    size_t max_text, i = 0;

    if (size == 0)
        return 0;
    max_text = data[0] % 4 == 0 ? 0 : (size_t)data[0] * 2;
    data++;
    size--;
    smtp_reply_init(&r, max_text);
    while (i < size) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (data + i)) : size - i;

        switch (smtp_reply_feed(&r, (const char *)data + i, len)) {
        case SMTP_PARSE_MORE:
            CHECK(smtp_reply_class(&r) == 0);
            break;
        case SMTP_PARSE_DONE:
            check_reply(&r);
            smtp_reply_reset(&r);
            break;
        case SMTP_PARSE_ERROR:
            CHECK(smtp_reply_class(&r) == 0);
            /* Sticky until reset. */
            CHECK(smtp_reply_feed(&r, "250 ok", 6) == SMTP_PARSE_ERROR);
            smtp_reply_reset(&r);
            break;
        }
        i += len + 1;
    }
    smtp_reply_cleanup(&r);
    return 0;
}
