/*
 * fuzz_smtpd.c - libFuzzer target for the bounce listener's command reader
 * (src/bounce/smtpd_cmd.c): the input is split into lines at LF (a CR
 * before it is dropped, as the listener's line reader does) and each line
 * is parsed; whatever comes out must be bounded and consistent.
 *
 * Built by `make fuzz` (clang, libFuzzer) and by `make fuzz-replay` (any
 * compiler, tests/fuzz/replay.c as the driver).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce/smtpd_cmd.h"
#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i = 0;

    while (i < size) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (data + i)) : size - i;
        struct smtpd_cmd c;
        size_t n = len;
        enum smtpd_parse p;

        if (n > 0 && data[i + n - 1] == '\r')
            n--;
        p = smtpd_cmd_parse((const char *)data + i, n, &c);
        CHECK(p == SMTPD_OK || p == SMTPD_SYNTAX || p == SMTPD_TOO_LONG || p == SMTPD_PARAM);
        /* Only MAIL and RCPT carry parameters to refuse (555). */
        CHECK(p != SMTPD_PARAM || c.verb == SMTPD_MAIL || c.verb == SMTPD_RCPT);
        CHECK(p != SMTPD_TOO_LONG || n > SMTPD_LINE_MAX);
        CHECK(strlen(c.arg) <= SMTPD_LINE_MAX);
        CHECK(strlen(c.path) <= SMTPD_PATH_MAX);
        CHECK(c.size >= -1);
        if (p == SMTPD_OK && c.verb == SMTPD_RCPT)
            CHECK(c.path[0] != '\0');
        if (p == SMTPD_OK && (c.verb == SMTPD_MAIL || c.verb == SMTPD_RCPT))
            for (const char *q = c.path; *q; q++)
                CHECK((unsigned char)*q > 0x20 && *q != '<');
        i += len + 1;
    }
    return 0;
}
