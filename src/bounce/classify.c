/*
 * classify.c - combines the rows of classify.def into one class (see
 * classify.h).  It does not read messages.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "core/util.h"

enum rule_kind { STATUS, PHRASE, MAILBOX, FEEDBACK };

struct rule {
    enum rule_kind kind;
    const char *pattern;
    enum bounce_class cls;
};

#define HARD BOUNCE_HARD
#define SOFT BOUNCE_SOFT
#define BLOCK BOUNCE_BLOCK
#define COMPLAINT BOUNCE_COMPLAINT
#define UNDETERMINED BOUNCE_UNDETERMINED
static const struct rule rules[] = {
#define CL(kind, pattern, cls) {kind, pattern, cls},
#include "classify.def"
#undef CL
};
#undef HARD
#undef SOFT
#undef BLOCK
#undef COMPLAINT
#undef UNDETERMINED

#define NRULES (sizeof(rules) / sizeof(rules[0]))

static const char *const class_names[BOUNCE_NCLASSES] = {
    "undetermined", "hard", "soft", "block", "complaint", "auto_reply",
};

const char *
bounce_class_str(enum bounce_class c)
{
    return (unsigned)c < BOUNCE_NCLASSES ? class_names[c] : "undetermined";
}

int
bounce_class_parse(const char *s)
{
    for (int i = 0; s && i < BOUNCE_NCLASSES; i++)
        if (strcmp(s, class_names[i]) == 0)
            return i;
    return -1;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the enhanced code at s ("5.1.10"), 0 when s does not start one. */
static size_t
status_len(const char *s, size_t n)
{
    size_t i = 0, dots = 0, digits = 0;

    if (n == 0 || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
        return 0;
    i = 1;
    while (i < n && dots < 2) {
        if (s[i] != '.')
            return 0;
        i++, dots++;
        digits = 0;
        while (i < n && is_digit(s[i]) && digits < 3)
            i++, digits++;
        if (digits == 0)
            return 0;
    }
    if (dots < 2)
        return 0; /* "5.1" at the end of the text */
    if (i < n && (is_digit(s[i]) || (s[i] == '.' && i + 1 < n && is_digit(s[i + 1]))))
        return 0; /* longer: a version or an address */
    return i;
}

bool
bounce_status_find(const char *s, size_t n, char out[16])
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (i > 0 && (is_digit(s[i - 1]) || s[i - 1] == '.'))
            continue;
        if ((len = status_len(s + i, n - i)) > 0 && len < 16) {
            memcpy(out, s + i, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

int
bounce_reply_code_find(const char *s, size_t n)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i + 3 <= n; i++) {
        if ((s[i] == '4' || s[i] == '5') && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
            (i == 0 || s[i - 1] == ' ' || s[i - 1] == ':' || s[i - 1] == ';' ||
             s[i - 1] == '\n' || s[i - 1] == '(' || s[i - 1] == '\t' || s[i - 1] == '#') &&
            (i + 3 == n || s[i + 3] == ' ' || s[i + 3] == '-' || s[i + 3] == '\r' ||
             s[i + 3] == '\n' || s[i + 3] == ')' || s[i + 3] == '.'))
            return (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
    }
    return 0;
}

/*
 * The most specific STATUS row for code: an exact row, else the longest
 * "x.y." or "x." prefix.  *specific says an exact row matched.
 */
static int
status_rule(const char *code, bool *specific)
{
    int best = -1;
    size_t best_len = 0;

    *specific = false;
    for (size_t i = 0; i < NRULES; i++) {
        const char *p = rules[i].pattern;
        size_t len = strlen(p);
        if (rules[i].kind != STATUS)
            continue;
        if (strcmp(code, p) == 0) {
            *specific = true;
            return (int)i;
        }
        if (p[len - 1] == '.' && strncmp(code, p, len) == 0 && len > best_len) {
            best = (int)i;
            best_len = len;
        }
    }
    return best;
}

/*
 * The first PHRASE row (and MAILBOX row, when mailbox) that text contains,
 * or -1; case is ignored.  The text is lowered once and each row found by
 * memmem: a case-blind comparison at every position for every row was a
 * quarter of the bounce listener's time.
 */
static int
phrase_rule(const char *text, bool mailbox)
{
    size_t n;
    char *low; /* owned */
    int found = -1;

    if (text == NULL || *text == '\0')
        return -1;
    n = strlen(text);
    low = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)text[i]);
    for (size_t i = 0; i < NRULES && found < 0; i++) {
        char pat[128];
        size_t m = strlen(rules[i].pattern);
        if (rules[i].kind != PHRASE && !(mailbox && rules[i].kind == MAILBOX))
            continue;
        if (m >= sizeof(pat)) { /* no row is this long; correct all the same */
            if (str_contains_ci(text, n, rules[i].pattern))
                found = (int)i;
            continue;
        }
        for (size_t j = 0; j < m; j++)
            pat[j] = (char)tolower((unsigned char)rules[i].pattern[j]);
        if (memmem(low, n, pat, m) != NULL)
            found = (int)i;
    }
    free(low);
    return found;
}

enum bounce_class
bounce_classify(const char *status, int reply_code, const char *diagnostic, bool transient)
{
    char code[16] = "";
    bool specific = false, generic, enhanced;
    int sr = -1, pr;
    enum bounce_class c;

    if (status && bounce_status_find(status, strlen(status), code) &&
        strcmp(code + 1, ".0.0") == 0 && diagnostic) {
        char better[16];
        /* "5.0.0" says nothing: a code in the text may say more. */
        if (bounce_status_find(diagnostic, strlen(diagnostic), better) && better[0] == code[0])
            memcpy(code, better, sizeof(code));
    }
    if (code[0] == '\0' && diagnostic)
        bounce_status_find(diagnostic, strlen(diagnostic), code);
    enhanced = code[0] == '5';
    if (code[0] == '\0' && reply_code >= 400 && reply_code < 600) {
        code[0] = (char)('0' + reply_code / 100);
        code[1] = '.';
        code[2] = '\0';
    }
    if (reply_code == 0 && diagnostic)
        reply_code = bounce_reply_code_find(diagnostic, strlen(diagnostic));
    if (code[0] == '4' || (reply_code >= 400 && reply_code < 500))
        transient = true;
    if (code[0])
        sr = status_rule(code, &specific);
    pr = phrase_rule(diagnostic, enhanced);
    generic = sr < 0 || rules[sr].cls == BOUNCE_UNDETERMINED;

    if (!generic) {
        c = rules[sr].cls;
        /* A subject-level row (5.2., 5.3.) gives way to a phrase that knows better
         * (many servers answer "5.2.1 User unknown"); a specific one only to a
         * phrase that suppresses less (a spam block coded 5.1.1, a DNS failure
         * coded 5.4.4). */
        if (pr >= 0 && (!specific || (c == BOUNCE_HARD && rules[pr].cls != BOUNCE_HARD)) &&
            !(c == BOUNCE_BLOCK && rules[pr].cls == BOUNCE_HARD))
            c = rules[pr].cls;
    } else {
        c = pr >= 0 ? rules[pr].cls : BOUNCE_UNDETERMINED;
    }
    if (transient && (c == BOUNCE_HARD || c == BOUNCE_UNDETERMINED))
        c = BOUNCE_SOFT;
    return c;
}

enum bounce_class
bounce_classify_feedback(const char *feedback_type)
{
    for (size_t i = 0; feedback_type && i < NRULES; i++)
        if (rules[i].kind == FEEDBACK && str_ieq(rules[i].pattern, feedback_type))
            return rules[i].cls;
    return BOUNCE_UNDETERMINED;
}
