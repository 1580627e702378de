/*
 * email.c - address validation and normalisation (see email.h for the rules).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "email.h"
#include "util.h"

static bool
atext(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
local_ok(const char *s, size_t n, const char **reason)
{
    if (n == 0) {
        *reason = "the part before @ is empty";
        return false;
    }
    if (n > 64) {
        *reason = "the part before @ is longer than 64 octets";
        return false;
    }
    if (s[0] == '.' || s[n - 1] == '.') {
        *reason = "the part before @ starts or ends with a dot";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && s[i + 1] == '.') {
            *reason = "the part before @ has two dots in a row";
            return false;
        }
        if (c >= 0x80 || c == '.' || (c < 0x80 && atext(c)))
            continue;
        *reason = c <= ' ' || c == 0x7f ? "the address contains a space or control character"
                                       : "the part before @ has a character not allowed there";
        return false;
    }
    if (!str_valid_utf8(s, n, false)) {
        *reason = "the part before @ is not valid UTF-8";
        return false;
    }
    return true;
}

static bool
domain_ok(const char *d, const char **reason)
{
    size_t n = strlen(d), label = 0, labels = 0;
    bool alpha_tld = false;

    if (n == 0) {
        *reason = "the domain is empty";
        return false;
    }
    if (n > 253) {
        *reason = "the domain is longer than 253 octets";
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.' || c == '\0') {
            if (label == 0) {
                *reason = "the domain has an empty label";
                return false;
            }
            if (d[i - 1] == '-' || d[i - label] == '-') {
                *reason = "a domain label starts or ends with a hyphen";
                return false;
            }
            labels++;
            alpha_tld = false;
            for (size_t j = i - label; j < i; j++)
                if (isalpha((unsigned char)d[j]) || d[j] == '-')
                    alpha_tld = true;
            label = 0;
            continue;
        }
        if (!(isalnum(c) || c == '-')) {
            *reason = c <= ' ' ? "the address contains a space or control character"
                               : "the domain has a character not allowed in a host name";
            return false;
        }
        if (++label > 63) {
            *reason = "a domain label is longer than 63 octets";
            return false;
        }
    }
    if (labels < 2) {
        *reason = "the domain needs at least two labels (example.com)";
        return false;
    }
    if (!alpha_tld) {
        *reason = "the top-level domain is numeric";
        return false;
    }
    return true;
}

bool
email_normalize(const char *in, char out[EMAIL_MAX + 1], char lc[EMAIL_MAX + 1],
                const char **reason)
{
    const char *dummy, *at, *start, *end;
    char *domain = NULL, *ascii = NULL;
    size_t llen;
    bool ok = false;

    if (reason == NULL)
        reason = &dummy;
    start = in;
    while (*start == ' ' || *start == '\t')
        start++;
    end = start + strlen(start);
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == start) {
        *reason = "the address is empty";
        return false;
    }
    if ((size_t)(end - start) > 1024) {
        *reason = "the address is longer than 254 octets";
        return false;
    }
    at = NULL;
    for (const char *p = start; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL) {
        *reason = "the address has no @";
        return false;
    }
    llen = (size_t)(at - start);
    if (memchr(start, '@', llen) != NULL) {
        *reason = "the address has more than one @";
        return false;
    }
    if (!local_ok(start, llen, reason))
        return false;
    domain = xstrndup(at + 1, (size_t)(end - at - 1));
    if (!str_valid_utf8(domain, strlen(domain), false)) {
        *reason = "the domain is not valid UTF-8";
        goto out;
    }
    for (char *p = domain; *p; p++) {
        if ((unsigned char)*p >= 0x80) {
            int rc = idn2_to_ascii_8z(domain, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
            if (rc != IDN2_OK) {
                *reason = "the internationalised domain is not valid (IDNA2008)";
                goto out;
            }
            free(domain);
            domain = xstrdup(ascii);
            break;
        }
    }
    for (char *p = domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!domain_ok(domain, reason))
        goto out;
    if (llen + 1 + strlen(domain) > EMAIL_MAX) {
        *reason = "the address is longer than 254 octets";
        goto out;
    }
    memcpy(out, start, llen);
    out[llen] = '@';
    memcpy(out + llen + 1, domain, strlen(domain) + 1); /* length checked above */
    for (size_t i = 0;; i++) {
        lc[i] = (char)((unsigned char)out[i] < 0x80 ? tolower((unsigned char)out[i]) : out[i]);
        if (out[i] == '\0')
            break;
    }
    ok = true;
out:
    free(domain);
    idn2_free(ascii);
    return ok;
}

bool
email_needs_utf8(const char *addr)
{
    for (; *addr; addr++)
        if ((unsigned char)*addr >= 0x80)
            return true;
    return false;
}
