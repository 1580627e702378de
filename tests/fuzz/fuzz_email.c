/*
 * fuzz_email.c - libFuzzer target for address validation and normalisation.
 *
 * Invariants: an accepted address fits EMAIL_MAX, has one "@", holds no
 * byte below 0x21 and no DEL, is valid UTF-8 without line or paragraph
 * separators or C1 controls, its lowercase twin differs only in ASCII
 * case, and normalising it again gives it back unchanged (idempotent).
 */
#include <ctype.h>
#include <string.h>

#include "core/email.h"
#include "core/util.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in, out[EMAIL_MAX + 1], lc[EMAIL_MAX + 1], out2[EMAIL_MAX + 1], lc2[EMAIL_MAX + 1];
    const char *reason = NULL;
    size_t n;

    if (size > 2048)
        return 0;
    in = xstrndup((const char *)data, size); /* stops at an embedded NUL, as C callers do */
    if (!email_normalize(in, out, lc, &reason)) {
        CHECK(reason != NULL && reason[0] != '\0');
        free(in);
        return 0;
    }
    n = strlen(out);
    CHECK(n <= EMAIL_MAX && strlen(lc) == n);
    CHECK(strchr(out, '@') != NULL && strchr(out, '@') == strrchr(out, '@'));
    CHECK(str_valid_utf8(out, n, false));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c > 0x20 && c != 0x7f);
        CHECK(c >= 0x80 ? lc[i] == out[i] : lc[i] == (char)tolower(c));
        /* U+0085 (C2 85), U+2028/U+2029 (E2 80 A8/A9) */
        CHECK(!(c == 0xc2 && i + 1 < n && (unsigned char)out[i + 1] < 0xa0));
        CHECK(!(c == 0xe2 && i + 2 < n && (unsigned char)out[i + 1] == 0x80 &&
                ((unsigned char)out[i + 2] == 0xa8 || (unsigned char)out[i + 2] == 0xa9)));
    }
    CHECK(email_normalize(out, out2, lc2, NULL));
    CHECK(strcmp(out, out2) == 0 && strcmp(lc, lc2) == 0);
    free(in);
    return 0;
}
