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

/*
 * Code points refused in a UTF-8 local part: controls, separators and
 * invisible format characters.  None belongs in an address a person types,
 * and each can hide text or break a line in a header, a log or a page
 * (U+0085, U+2028 and U+2029 are line breaks to some readers).
 */
static const struct {
    unsigned lo, hi;
} refused_cp[] = {
    {0x0080, 0x00A0}, /* C1 controls (U+0085 NEL among them), no-break space */
    {0x00AD, 0x00AD}, /* soft hyphen */
    {0x034F, 0x034F}, /* combining grapheme joiner */
    {0x061C, 0x061C}, /* Arabic letter mark */
    {0x1680, 0x1680}, /* Ogham space mark */
    {0x180E, 0x180E}, /* Mongolian vowel separator */
    {0x2000, 0x200F}, /* spaces, zero-width characters, LRM/RLM */
    {0x2028, 0x202F}, /* line and paragraph separators, bidi embeddings, narrow space */
    {0x205F, 0x206F}, /* medium space, word joiner, invisible operators, bidi isolates */
    {0x3000, 0x3000}, /* ideographic space */
    {0xD800, 0xDFFF}, /* surrogates (str_valid_utf8 refuses them too) */
    {0xFE00, 0xFE0F}, /* variation selectors */
    {0xFEFF, 0xFEFF}, /* byte order mark, zero-width no-break space */
    {0xFFF0, 0xFFFF}, /* specials, noncharacters */
    {0xE0000, 0xE0FFF}, /* tags, variation selectors supplement */
    {0xF0000, 0x10FFFF}, /* private use planes */
};

/* Decodes one code point of valid UTF-8 at s; returns its length. */
static size_t
utf8_next(const unsigned char *s, unsigned *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((unsigned)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((unsigned)(s[0] & 0x0F) << 12) | ((unsigned)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((unsigned)(s[0] & 0x07) << 18) | ((unsigned)(s[1] & 0x3F) << 12) |
          ((unsigned)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

static bool
cp_refused(unsigned cp)
{
    for (size_t i = 0; i < sizeof(refused_cp) / sizeof(refused_cp[0]); i++)
        if (cp >= refused_cp[i].lo && cp <= refused_cp[i].hi)
            return true;
    return (cp & 0xFFFE) == 0xFFFE; /* the noncharacters ending every plane */
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
    for (size_t i = 0; i < n;) {
        unsigned cp;
        i += utf8_next((const unsigned char *)s + i, &cp);
        if (cp_refused(cp)) {
            *reason = "the address contains a space, separator or control character";
            return false;
        }
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
