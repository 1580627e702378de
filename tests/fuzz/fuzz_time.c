/*
 * fuzz_time.c - libFuzzer target for the RFC 3339 parser.
 *
 * An accepted time formats back to text that parses to the same instant,
 * and that text formats to itself (one canonical form).
 */
#include <string.h>

#include "core/timeutil.h"
#include "core/util.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in, text[32], text2[32];
    int64_t us, us2;

    if (size > 256)
        return 0;
    in = xstrndup((const char *)data, size);
    if (time_parse_rfc3339(in, &us)) {
        time_format_rfc3339(us, text, sizeof(text));
        CHECK(time_parse_rfc3339(text, &us2));
        CHECK(us2 == us);
        time_format_rfc3339(us2, text2, sizeof(text2));
        CHECK(strcmp(text, text2) == 0);
    }
    free(in);
    return 0;
}
