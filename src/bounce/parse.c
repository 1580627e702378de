/*
 * parse.c - reads bounces, feedback reports and auto-replies (see parse.h).
 *
 * DESIGN
 * GMime builds the MIME tree; one walk (bounded in depth and parts)
 * collects what the report is made of: the RFC 3464/6533 status fields,
 * the RFC 5965 feedback fields, the human-readable text of the report
 * itself (never the returned original), and the returned original's
 * headers.  Then one of three readers decides: a DSN's fields when there
 * are any, else a feedback report's, else a provider's JSON notification
 * (Amazon SES), else the text of a bounce that rules.def recognises, else
 * an auto-reply.  References are looked for in
 * every header block and every decoded part, the original included.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <jansson.h>

#include "core/util.h"
#include "parse.h"

#define MAX_DEPTH 8
#define MAX_PARTS 256
#define MAX_TEXT (256 * 1024)
/* Past these a message is not given to GMime at all: a report has a few
 * parts and a few dozen header lines, while 160,000 nested multiparts or
 * 650,000 header lines in 10 MB cost GMime seconds of the listener's time. */
#define MAX_CONTENT_TYPES 1000
#define MAX_LINES_BEFORE_BODY 5000

enum rule_kind { FROM, SUBJECT, ORIGINAL, SYSTEM, AUTO_SUBJ };

struct rule {
    enum rule_kind kind;
    const char *pattern;
};

static const struct rule rules[] = {
#define RULE(kind, pattern) {kind, pattern},
#include "rules.def"
#undef RULE
};

#define NRULES (sizeof(rules) / sizeof(rules[0]))

static const char *const kind_names[] = {"not_bounce", "dsn", "arf", "auto_reply", "other"};

const char *
bounce_kind_str(enum bounce_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "other";
}

/* What the walk collects; every buffer bounded by MAX_TEXT. */
struct walk {
    struct buf status;    /* delivery-status fields, blocks separated by blank lines */
    struct buf feedback;  /* feedback-report fields */
    struct buf text;      /* the report's own human-readable text */
    struct buf orig_hdrs; /* the returned original's headers */
    bool has_status;
    bool has_feedback;
    bool report_dsn; /* multipart/report; report-type=delivery-status */
    bool report_arf;
    int parts;
    struct bounce_report *r;
};

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
    g_mime_init();
}

static bool
rule_match(enum rule_kind kind, const char *s, size_t n)
{
    for (size_t i = 0; s && i < NRULES; i++)
        if (rules[i].kind == kind && str_contains_ci(s, n, rules[i].pattern))
            return true;
    return false;
}

/* True when s[0..n) starts with a pattern of kind (case-insensitive). */
static bool
rule_starts(enum rule_kind kind, const char *s, size_t n)
{
    for (size_t i = 0; i < NRULES; i++) {
        size_t m = strlen(rules[i].pattern);
        if (rules[i].kind == kind && m <= n && strncasecmp(s, rules[i].pattern, m) == 0)
            return true;
    }
    return false;
}

/* ---- references ---- */

static bool
is_b32(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
}

static void
ref_add(struct bounce_report *r, const char *s)
{
    char ref[BOUNCE_REF_LEN + 1];

    for (int i = 0; i < BOUNCE_REF_LEN; i++)
        ref[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
    ref[BOUNCE_REF_LEN] = '\0';
    for (int i = 0; i < r->nrefs; i++)
        if (strcmp(r->refs[i], ref) == 0)
            return;
    if (r->nrefs < BOUNCE_MAX_REFS)
        memcpy(r->refs[r->nrefs++], ref, sizeof(ref));
}

/* A run of exactly BOUNCE_REF_LEN base32 characters at s[0..n)? */
static bool
ref_at(const char *s, size_t n)
{
    if (n < BOUNCE_REF_LEN)
        return false;
    for (int i = 0; i < BOUNCE_REF_LEN; i++)
        if (!is_b32(s[i]))
            return false;
    return n == BOUNCE_REF_LEN || !is_b32(s[BOUNCE_REF_LEN]);
}

/* Every "mcb-<ref>" and "X-Mailcast-Ref: <ref>" in s[0..n). */
/* Whether s (left bytes) starts with lit's first two characters, ignoring ASCII case. */
static bool
two_ci(const char *s, size_t left, const char *lit)
{
    return left >= 2 && (s[0] | 0x20) == (lit[0] | 0x20) && (s[1] | 0x20) == (lit[1] | 0x20);
}

static void
refs_scan(struct bounce_report *r, const char *s, size_t n)
{
    size_t plen = strlen(BOUNCE_REF_PREFIX), hlen = strlen(BOUNCE_REF_HEADER);

    for (size_t i = 0; i < n && r->nrefs < BOUNCE_MAX_REFS; i++) {
        /* Most bytes start neither: two comparisons each (this loop was the
         * listener's hottest spot under perf). */
        if (!two_ci(s + i, n - i, BOUNCE_REF_PREFIX) && !two_ci(s + i, n - i, BOUNCE_REF_HEADER))
            continue;
        if (i + plen <= n && strncasecmp(s + i, BOUNCE_REF_PREFIX, plen) == 0 &&
            (i == 0 || !is_b32(s[i - 1])) && ref_at(s + i + plen, n - i - plen)) {
            ref_add(r, s + i + plen);
            i += plen + BOUNCE_REF_LEN - 1;
        } else if (i + hlen + 1 <= n && strncasecmp(s + i, BOUNCE_REF_HEADER, hlen) == 0 &&
                   s[i + hlen] == ':') {
            size_t j = i + hlen + 1;
            while (j < n && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (ref_at(s + j, n - j))
                ref_add(r, s + j);
        }
    }
}

/* ---- the MIME walk ---- */

static void
headers_append(struct buf *b, GMimeObject *o)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(o);
    int n = hl ? g_mime_header_list_get_count(hl) : 0;

    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *v = g_mime_header_get_value(h);
        buf_printf(b, "%s: %s\n", g_mime_header_get_name(h), v ? v : "");
    }
}

/* The decoded content of a leaf part, as UTF-8 (converted when it is text). */
static char *
part_content(GMimePart *part, size_t *n)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GMimeStream *mem;
    GByteArray *arr;
    char *s = NULL, *valid;

    if (GMIME_IS_TEXT_PART(part)) {
        s = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
    } else if (w != NULL) {
        mem = g_mime_stream_mem_new();
        g_mime_data_wrapper_write_to_stream(w, mem);
        arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        s = g_strndup((const char *)arr->data, arr->len > MAX_TEXT ? MAX_TEXT : arr->len);
        g_object_unref(mem);
    }
    if (s == NULL)
        return NULL;
    valid = g_utf8_make_valid(s, -1);
    g_free(s);
    *n = strlen(valid);
    return valid;
}

static void walk_object(struct walk *w, GMimeObject *o, int depth, bool in_original);

static void
walk_message(struct walk *w, GMimeMessage *m, int depth, bool in_original)
{
    struct buf h;

    if (m == NULL)
        return;
    buf_init(&h, MAX_TEXT);
    headers_append(&h, GMIME_OBJECT(m));
    if (h.len)
        refs_scan(w->r, h.data, h.len);
    if (in_original && h.len)
        buf_append(&w->orig_hdrs, h.data, h.len);
    buf_cleanup(&h);
    walk_object(w, g_mime_message_get_mime_part(m), depth + 1, in_original);
}

/* Parses bytes as a message and walks it (message/rfc822 that GMime left as a leaf). */
static void
walk_bytes_as_message(struct walk *w, const char *s, size_t n, int depth)
{
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(s, n);
    GMimeParser *p = g_mime_parser_new_with_stream(st);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);

    walk_message(w, m, depth, true);
    if (m)
        g_object_unref(m);
    g_object_unref(p);
    g_object_unref(st);
}

static void
walk_object(struct walk *w, GMimeObject *o, int depth, bool in_original)
{
    GMimeContentType *ct;
    char *s;
    size_t n = 0;

    if (o == NULL || depth > MAX_DEPTH || ++w->parts > MAX_PARTS)
        return;
    ct = g_mime_object_get_content_type(o);
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        if (!in_original && ct && g_mime_content_type_is_type(ct, "multipart", "report")) {
            const char *rt = g_mime_content_type_get_parameter(ct, "report-type");
            if (rt && (str_ieq(rt, "delivery-status") || str_ieq(rt, "global-delivery-status")))
                w->report_dsn = true;
            if (rt && str_ieq(rt, "feedback-report"))
                w->report_arf = true;
        }
        for (int i = 0; i < g_mime_multipart_get_count(mp); i++)
            walk_object(w, g_mime_multipart_get_part(mp, i), depth + 1, in_original);
        if (g_mime_multipart_get_count(mp) == 0 && !in_original) {
            /* A boundary that never comes (mangled in transit): the body is all prologue. */
            const char *pro = g_mime_multipart_get_prologue(mp);
            if (pro) {
                refs_scan(w->r, pro, strlen(pro));
                buf_puts(&w->text, pro);
            }
        }
        return;
    }
    if (GMIME_IS_MESSAGE_PART(o)) {
        walk_message(w, g_mime_message_part_get_message(GMIME_MESSAGE_PART(o)), depth, true);
        return;
    }
    if (!GMIME_IS_PART(o) || (s = part_content(GMIME_PART(o), &n)) == NULL)
        return;
    refs_scan(w->r, s, n);
    if (ct && (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
               g_mime_content_type_is_type(ct, "message", "global-delivery-status"))) {
        if (!in_original) {
            w->has_status = true;
            buf_append(&w->status, s, n);
            buf_puts(&w->status, "\n\n");
        }
    } else if (ct && g_mime_content_type_is_type(ct, "message", "feedback-report")) {
        if (!in_original) {
            w->has_feedback = true;
            buf_append(&w->feedback, s, n);
            buf_putc(&w->feedback, '\n');
        }
    } else if (ct && (g_mime_content_type_is_type(ct, "text", "rfc822-headers") ||
                      g_mime_content_type_is_type(ct, "message", "global-headers"))) {
        buf_append(&w->orig_hdrs, s, n);
        buf_putc(&w->orig_hdrs, '\n');
    } else if (ct && (g_mime_content_type_is_type(ct, "message", "rfc822") ||
                      g_mime_content_type_is_type(ct, "message", "global"))) {
        walk_bytes_as_message(w, s, n, depth + 1);
    } else if (!in_original && (ct == NULL || g_mime_content_type_is_type(ct, "text", "*"))) {
        if (ct == NULL || !g_mime_content_type_is_type(ct, "text", "html") || w->text.len == 0)
            buf_append(&w->text, s, n), buf_putc(&w->text, '\n');
    }
    g_free(s);
}

/* ---- header-style fields (RFC 3464 blocks, RFC 5965) ---- */

struct field {
    const char *name;
    size_t name_len;
    struct buf value; /* unfolded */
};

#define MAX_FIELDS 32

struct block {
    struct field f[MAX_FIELDS];
    int n;
};

static void
block_cleanup(struct block *b)
{
    for (int i = 0; i < b->n; i++)
        buf_cleanup(&b->f[i].value);
    b->n = 0;
}

/*
 * Reads one block of "Name: value" lines (continuations folded in) from
 * s[*pos..n), up to a blank line; returns false at the end of the text.
 */
static bool
block_next(const char *s, size_t n, size_t *pos, struct block *b)
{
    size_t i = *pos;
    struct field *cur = NULL;

    while (i < n && (s[i] == '\n' || s[i] == '\r'))
        i++; /* blank lines between blocks */
    if (i >= n) {
        *pos = n;
        return false;
    }
    while (i < n) {
        size_t e = i, colon;
        while (e < n && s[e] != '\n')
            e++;
        size_t len = e - i;
        if (len > 0 && s[i + len - 1] == '\r')
            len--;
        bool blank = true;
        for (size_t k = 0; k < len && blank; k++)
            blank = s[i + k] == ' ' || s[i + k] == '\t';
        if (blank) {
            i = e < n ? e + 1 : e;
            break;
        }
        if ((s[i] == ' ' || s[i] == '\t') && cur) {
            buf_putc(&cur->value, ' ');
            size_t k = 0;
            while (k < len && (s[i + k] == ' ' || s[i + k] == '\t'))
                k++;
            buf_append(&cur->value, s + i + k, len - k);
        } else {
            for (colon = 0; colon < len && s[i + colon] != ':'; colon++)
                ;
            cur = NULL;
            if (colon < len && colon > 0 && b->n < MAX_FIELDS) {
                cur = &b->f[b->n++];
                cur->name = s + i;
                cur->name_len = colon;
                buf_init(&cur->value, BOUNCE_DIAG_MAX * 4);
                size_t k = colon + 1;
                while (k < len && (s[i + k] == ' ' || s[i + k] == '\t'))
                    k++;
                buf_append(&cur->value, s + i + k, len - k);
            }
        }
        i = e < n ? e + 1 : e;
    }
    *pos = i;
    return true;
}

/* The value of the first field called name (case-insensitive), or NULL. */
static const char *
block_get(const struct block *b, const char *name)
{
    size_t n = strlen(name);

    for (int i = 0; i < b->n; i++)
        if (b->f[i].name_len == n && strncasecmp(b->f[i].name, name, n) == 0)
            return b->f[i].value.err == MC_ERR_OK && b->f[i].value.data ? b->f[i].value.data
                                                                         : "";
    return NULL;
}

static char *text_clean(const char *s, size_t n, size_t max);

/* White space or a control character: text_clean makes runs of them one space. */
static bool
is_blank(unsigned char c)
{
    return c == ' ' || c < 0x20 || c == 0x7f;
}

/* "rfc822; a@b" -> "a@b"; "dns; mx.example" -> "mx.example" (new memory, trimmed, no controls). */
static char *
typed_value(const char *v)
{
    const char *semi, *e;

    if (v == NULL)
        return NULL;
    if ((semi = strchr(v, ';')) != NULL)
        v = semi + 1;
    while (*v == ' ' || *v == '\t' || *v == '<')
        v++;
    e = v + strlen(v);
    while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '>' || e[-1] == '\r'))
        e--;
    return e > v ? text_clean(v, (size_t)(e - v), 255) : NULL;
}

/* ---- recipients ---- */

static bool
local_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL || (unsigned char)c >= 0x80;
}

/* ASCII only: reports write internationalised domains as A-labels, and text
 * running on after an address ("a@example.jp您好") is not part of it. */
static bool
domain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-';
}

/*
 * The address around the '@' at s[at] in s[0..n): *start and *end bound
 * it.  False when either side is empty or the domain has no dot.
 */
static bool
address_at(const char *s, size_t n, size_t at, size_t *start, size_t *end)
{
    size_t a = at, e = at + 1;
    bool dot = false;

    while (a > 0 && local_char(s[a - 1]) && at - a < 64)
        a--;
    while (a < at && s[a] == '.')
        a++;
    while (e < n && domain_char(s[e]) && e - at < 255)
        dot |= s[e++] == '.';
    while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-'))
        e--;
    if (a == at || e <= at + 1 || !dot || s[e - 1] == '.')
        return false;
    {
        /* the last label must contain a letter (not an IP literal or a version) */
        size_t k = e;
        bool alpha = false;
        while (k > at + 1 && s[k - 1] != '.')
            alpha |= (s[k - 1] | 0x20) >= 'a' && (s[k - 1] | 0x20) <= 'z', k--;
        if (!alpha)
            return false;
    }
    *start = a;
    *end = e;
    return true;
}

/* A new copy of the address with its domain lowercased. */
static char *
address_norm(const char *s, size_t n)
{
    char *a = xstrndup(s, n), *at = strrchr(a, '@');

    for (char *p = at; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    return a;
}

/* Cleans a diagnostic: collapses whitespace, trims, bounds, keeps UTF-8 whole. */
static char *
text_clean(const char *s, size_t n, size_t max)
{
    struct buf b;
    bool space = false;

    if (s == NULL)
        return NULL;
    buf_init(&b, 0);
    /* What is left of the address's own brackets and separators. */
    while (n > 0 && *s && strchr(">:;,)]. \t\r\n", *s) != NULL)
        s++, n--;
    for (size_t i = 0; i < n && b.len + 2 <= max;) {
        size_t j = i, take;
        if (is_blank((unsigned char)s[i])) {
            space = b.len > 0;
            i++;
            continue;
        }
        if (space)
            buf_putc(&b, ' ');
        space = false;
        /* The word at once, as much of it as fits. */
        while (j < n && !is_blank((unsigned char)s[j]))
            j++;
        take = j - i < max - 1 - b.len ? j - i : max - 1 - b.len;
        if (take == 0)
            break;
        buf_append(&b, s + i, take);
        i += take;
    }
    if (b.len == 0) {
        buf_cleanup(&b);
        return NULL;
    }
    /* Do not cut a UTF-8 sequence in two. */
    while (b.len > 0 && !str_valid_utf8(b.data, b.len, false))
        b.data[--b.len] = '\0';
    return b.len ? buf_steal(&b) : (buf_cleanup(&b), NULL);
}

static char *
diag_clean(const char *s, size_t n)
{
    return text_clean(s, n, BOUNCE_DIAG_MAX);
}

static struct bounce_rcpt *
rcpt_add(struct bounce_report *r, const char *email)
{
    struct bounce_rcpt *x;

    for (int i = 0; i < r->nrcpts; i++)
        if (str_ieq(r->rcpts[i].email, email))
            return NULL;
    if (r->nrcpts >= BOUNCE_MAX_RCPTS || !str_valid_utf8(email, strlen(email), false))
        return NULL;
    r->rcpts = xrealloc(r->rcpts, sizeof(*r->rcpts) * (size_t)(r->nrcpts + 1));
    x = &r->rcpts[r->nrcpts++];
    memset(x, 0, sizeof(*x));
    x->email = address_norm(email, strlen(email));
    return x;
}

static void
rcpt_drop_last(struct bounce_report *r)
{
    struct bounce_rcpt *x = &r->rcpts[--r->nrcpts];

    free(x->email);
    free(x->action);
    free(x->diagnostic);
    free(x->remote_mta);
}

/* A recipient's status, action and diagnostic ("smtp; 550 ..." loses its type) as reported. */
static void
rcpt_fields(struct bounce_rcpt *x, const char *status, const char *action, const char *diag)
{
    if (status)
        bounce_status_find(status, strlen(status), x->status);
    x->action = action ? diag_clean(action, strlen(action)) : NULL;
    if (diag) {
        const char *semi = strchr(diag, ';');
        x->diagnostic = diag_clean(semi ? semi + 1 : diag, strlen(semi ? semi + 1 : diag));
    }
}

/* The text after addr in the report's text, up to the next address (for a DSN lacking one). */
static char *
text_about(const struct buf *text, const char *addr)
{
    size_t alen = strlen(addr), start, end;

    if (text->len == 0 || alen == 0)
        return NULL;
    for (size_t i = 0; i + alen <= text->len; i++) {
        if (strncasecmp(text->data + i, addr, alen) != 0)
            continue;
        size_t e = i + alen, k;
        for (k = e; k < text->len && k - e < 1024; k++)
            if (text->data[k] == '@' && address_at(text->data, text->len, k, &start, &end))
                break;
        if (k < text->len && text->data[k] == '@')
            k = start > e ? start : e; /* the next address may begin inside this one */
        return diag_clean(text->data + e, k - e);
    }
    return NULL;
}

/* The transcript lines just before the first mention of addr and the text after it. */
static char *
text_around(const struct buf *text, const char *addr)
{
    size_t alen = strlen(addr), b;

    for (size_t i = 0; text->len && i + alen <= text->len; i++) {
        if (strncasecmp(text->data + i, addr, alen) != 0)
            continue;
        b = i > 160 ? i - 160 : 0;
        return text_clean(text->data + b, text->len - b, 1024);
    }
    return NULL;
}

/* ---- the three readers ---- */

/* The first address in a header value like "Name <a@b>" (new memory), or NULL. */
static char *
first_address(const char *v)
{
    size_t start, end, n;

    if (v == NULL)
        return NULL;
    n = strlen(v);
    for (size_t i = 0; i < n; i++)
        if (v[i] == '@' && address_at(v, n, i, &start, &end))
            return xstrndup(v + start, end - start);
    return NULL;
}


static void
read_dsn(struct walk *w, const char *s, size_t n)
{
    struct bounce_report *r = w->r;
    size_t pos = 0;
    struct block b = {.n = 0};

    while (block_next(s, n, &pos, &b)) {
        const char *v, *action = block_get(&b, "Action");
        char *email = NULL;
        struct bounce_rcpt *x;

        if ((v = block_get(&b, "Reporting-MTA")) && r->reporting_mta == NULL)
            r->reporting_mta = typed_value(v);
        if ((v = block_get(&b, "Final-Recipient")) == NULL || !strchr(v, '@'))
            v = block_get(&b, "Original-Recipient");
        if (v == NULL || (email = first_address(v)) == NULL ||
            (action && (str_contains_ci(action, strlen(action), "delivered") ||
                        str_contains_ci(action, strlen(action), "relayed") ||
                        str_contains_ci(action, strlen(action), "expanded")))) {
            free(email);
            block_cleanup(&b);
            continue;
        }
        if ((x = rcpt_add(r, email)) != NULL) {
            const char *st = block_get(&b, "Status");
            const char *dc = block_get(&b, "Diagnostic-Code");
            bool delayed = action && str_contains_ci(action, strlen(action), "delayed");
            rcpt_fields(x, st, action, dc);
            if (x->diagnostic == NULL)
                x->diagnostic = text_about(&w->text, x->email);
            x->remote_mta = typed_value(block_get(&b, "Remote-MTA"));
            x->cls = bounce_classify(x->status, 0, x->diagnostic, delayed);
            if (x->cls == BOUNCE_HARD) {
                /* The transcript around the address may show the refusal came
                 * after the content (">>> DATA"): a filter, not a missing mailbox. */
                char *around = text_around(&w->text, x->email);
                if (around && bounce_classify(NULL, 0, around, false) == BOUNCE_BLOCK)
                    x->cls = BOUNCE_BLOCK;
                free(around);
            }
        }
        free(email);
        block_cleanup(&b);
    }
}

/* The value of header name in a block of header text, or NULL (new memory). */
static char *
header_in(const struct buf *h, const char *name)
{
    size_t pos = 0;
    struct block b = {.n = 0};
    char *out = NULL;

    if (h->len == 0)
        return NULL;
    while (out == NULL && block_next(h->data, h->len, &pos, &b)) {
        const char *v = block_get(&b, name);
        if (v)
            out = xstrdup(v);
        block_cleanup(&b);
    }
    return out;
}

static void
read_arf(struct walk *w)
{
    struct bounce_report *r = w->r;
    size_t pos = 0;
    struct block b = {.n = 0};
    char *rcpt = NULL;

    while (block_next(w->feedback.data, w->feedback.len, &pos, &b)) {
        const char *v;
        if ((v = block_get(&b, "Feedback-Type")) && r->feedback_type == NULL)
            r->feedback_type = diag_clean(v, strlen(v));
        if ((v = block_get(&b, "Reporting-MTA")) && r->reporting_mta == NULL)
            r->reporting_mta = typed_value(v);
        if (rcpt == NULL && (v = block_get(&b, "Original-Rcpt-To")))
            rcpt = first_address(v);
        if (rcpt == NULL && (v = block_get(&b, "Removal-Recipient")))
            rcpt = first_address(v);
        block_cleanup(&b);
    }
    if (rcpt == NULL) {
        char *to = header_in(&w->orig_hdrs, "To");
        rcpt = first_address(to);
        free(to);
    }
    if (rcpt) {
        struct bounce_rcpt *x = rcpt_add(r, rcpt);
        if (x) {
            x->cls = bounce_classify_feedback(r->feedback_type);
            x->action = r->feedback_type ? xstrdup(r->feedback_type) : NULL;
        }
    }
    free(rcpt);
}

/* True when s[0..n) holds an address equal to addr (case-insensitive). */
static bool
same_address(const char *a, size_t n, const char *addr)
{
    return addr && strlen(addr) == n && strncasecmp(a, addr, n) == 0;
}

/* Where the returned original starts in the text (its length when it does not). */
static size_t
original_start(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n')
            e++;
        size_t b = i;
        while (b < e && strchr("-=*_ \t>", s[b]) != NULL)
            b++;
        if (rule_starts(ORIGINAL, s + b, e - b))
            return i;
        /* A header block ("Received:" or "Return-Path:" at a line start) is the original too. */
        if ((e - i > 9 && strncasecmp(s + i, "Received:", 9) == 0) ||
            (e - i > 12 && strncasecmp(s + i, "Return-Path:", 12) == 0))
            return i;
        i = e + 1;
    }
    return n;
}

/* Where a line starting with field (case-insensitive) begins in s[0..n), or n. */
static size_t
line_starting(const char *s, size_t n, const char *field)
{
    size_t f = strlen(field);

    for (size_t i = 0; i + f <= n; i++)
        if ((i == 0 || s[i - 1] == '\n') && strncasecmp(s + i, field, f) == 0)
            return i;
    return n;
}

/* Classifies x from its diagnostic, or from context when that says nothing. */
static void
classify_text(struct bounce_rcpt *x, const char *context)
{
    const char *d = x->diagnostic ? x->diagnostic : "";

    if (x->status[0] == '\0')
        bounce_status_find(d, strlen(d), x->status);
    x->cls = bounce_classify(x->status, bounce_reply_code_find(d, strlen(d)), d, false);
    if (x->cls == BOUNCE_UNDETERMINED && context) {
        size_t n = strlen(context);
        x->cls = bounce_classify(NULL, 0, context,
                                 str_contains_ci(context, n, "temporar") ||
                                     str_contains_ci(context, n, "will retry") ||
                                     str_contains_ci(context, n, "delayed"));
    }
}

/* An address standing in the text at [a, e): not the report's own parties, not a mail system. */
static bool
text_recipient(const char *s, size_t a, size_t e, const char *from)
{
    char *local;
    bool sys;

    size_t b = a > 12 ? a - 12 : 0;

    /* "MAIL FROM:<sender>" in a transcript names the sender, not a recipient. */
    if (str_contains_ci(s + b, a - b, "from:"))
        return false;
    if (same_address(s + a, e - a, from) ||
        (e - a > strlen(BOUNCE_REF_PREFIX) &&
         strncasecmp(s + a, BOUNCE_REF_PREFIX, strlen(BOUNCE_REF_PREFIX)) == 0))
        return false;
    local = xstrndup(s + a, e - a);
    *strchr(local, '@') = '\0';
    sys = rule_match(SYSTEM, local, strlen(local));
    free(local);
    return !sys;
}

/*
 * A bounce in no standard format: every address in the report's text
 * (before the returned original) is a failed recipient, and the text after
 * each of its mentions, up to the next other address, is its diagnostic.
 * A text that names nobody falls back on the returned original's To.
 */
static void
read_text_bounce(struct walk *w, const char *from, const char *to)
{
    struct bounce_report *r = w->r;
    const char *s = w->text.data;
    size_t n = original_start(s, w->text.len), first = n, fr;
    size_t starts[BOUNCE_MAX_RCPTS * 2], ends[BOUNCE_MAX_RCPTS * 2];
    int na = 0, nbefore;
    char *pre = NULL;

    /* DSN fields written into the text (no message/delivery-status part). */
    if ((fr = line_starting(s, n, "Final-Recipient:")) < n ||
        (fr = line_starting(s, n, "Original-Recipient:")) < n) {
        size_t b = fr;
        while (b > 0 && !(s[b - 1] == '\n' && b >= 2 && (s[b - 2] == '\n' || s[b - 2] == '\r')))
            b--;
        read_dsn(w, s + b, n - b);
        if (r->nrcpts > 0)
            return;
    }
    for (size_t i = 0; i < n && na < BOUNCE_MAX_RCPTS * 2; i++) {
        size_t a, e;
        if (s[i] != '@' || !address_at(s, n, i, &a, &e))
            continue;
        if (na > 0 && a < ends[na - 1])
            a = ends[na - 1]; /* never overlapping the one before */
        if (a >= i) {
            i = e;
            continue;
        }
        i = e;
        if (!text_recipient(s, a, e, from))
            continue;
        if (first == n)
            first = a;
        starts[na] = a;
        ends[na++] = e;
    }
    pre = first > 0 ? text_clean(s, first, 2048) : NULL;
    nbefore = r->nrcpts;
    for (int k = 0; k < na; k++) {
        char *email = xstrndup(s + starts[k], ends[k] - starts[k]);
        struct bounce_rcpt *x = rcpt_add(r, email);
        struct buf d;
        free(email);
        if (x == NULL)
            continue;
        buf_init(&d, 0);
        /* Every mention of the address adds the text up to the next other address. */
        for (int j = k; j < na; j++) {
            size_t seg_end;
            int m = j + 1;
            if (ends[j] - starts[j] != ends[k] - starts[k] ||
                strncasecmp(s + starts[j], s + starts[k], ends[k] - starts[k]) != 0)
                continue;
            while (m < na && ends[m] - starts[m] == ends[k] - starts[k] &&
                   strncasecmp(s + starts[m], s + starts[k], ends[k] - starts[k]) == 0)
                m++;
            seg_end = m < na ? starts[m] : n;
            if (seg_end < ends[j])
                seg_end = ends[j];
            if (seg_end - ends[j] > 2048)
                seg_end = ends[j] + 2048;
            buf_append(&d, s + ends[j], seg_end - ends[j]);
            buf_putc(&d, ' ');
            j = m - 1;
        }
        x->diagnostic = diag_clean(d.data, d.len);
        buf_cleanup(&d);
        if (same_address(x->email, strlen(x->email), to) &&
            bounce_reply_code_find(x->diagnostic ? x->diagnostic : "",
                                   x->diagnostic ? strlen(x->diagnostic) : 0) == 0) {
            /* The report's own addressee, greeted or quoted, unless a reply follows it. */
            rcpt_drop_last(r);
            continue;
        }
        classify_text(x, pre);
    }
    if (r->nrcpts == nbefore) {
        /* Nobody named: the returned original's To (a header part, or the copy in the text). */
        char *rcpt = NULL, *tov = header_in(&w->orig_hdrs, "To");
        size_t t;
        rcpt = first_address(tov);
        free(tov);
        if (rcpt == NULL && (t = line_starting(s + n, w->text.len - n, "To:")) < w->text.len - n) {
            size_t e = t;
            while (n + e < w->text.len && s[n + e] != '\n')
                e++;
            char *line = xstrndup(s + n + t + 3, e - t - 3);
            rcpt = first_address(line);
            free(line);
        }
        struct bounce_rcpt *x;
        if (rcpt && !same_address(rcpt, strlen(rcpt), from) && (x = rcpt_add(r, rcpt)) != NULL) {
            x->diagnostic = pre ? diag_clean(pre, strlen(pre)) : NULL;
            classify_text(x, NULL);
        }
        free(rcpt);
    }
    free(pre);
}

/* A string member of o, or NULL. */
static const char *
jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/*
 * A provider's JSON notification in the body (Amazon SES, directly or
 * wrapped in an SNS envelope): bouncedRecipients or complainedRecipients,
 * and the X-Mailcast-Ref among the original headers it lists.
 */
static bool
read_json_notification(struct walk *w)
{
    struct bounce_report *r = w->r;
    const char *s = w->text.data, *type, *btype;
    size_t n = w->text.len;
    json_t *root, *inner = NULL, *msg, *list, *item, *h;
    size_t i;
    bool complaint;

    while (n > 0 && (*s == ' ' || *s == '\r' || *s == '\n' || *s == '\t'))
        s++, n--;
    if (n == 0 || *s != '{')
        return false;
    if ((root = json_loadb(s, n, JSON_DISABLE_EOF_CHECK, NULL)) == NULL) {
        /* Mailers wrap long lines, even inside a JSON string: join them. */
        struct buf j;
        buf_init(&j, 0);
        for (size_t k = 0; k < n; k++)
            if (s[k] != '\r' && s[k] != '\n')
                buf_putc(&j, s[k]);
        root = json_loadb(j.data, j.len, JSON_DISABLE_EOF_CHECK, NULL);
        buf_cleanup(&j);
        if (root == NULL)
            return false;
    }
    msg = root;
    if (jstr(root, "Message") && (inner = json_loads(jstr(root, "Message"), 0, NULL)) != NULL)
        msg = inner;
    type = jstr(msg, "notificationType") ? jstr(msg, "notificationType") : jstr(msg, "eventType");
    complaint = type && str_ieq(type, "Complaint");
    if (type && (str_ieq(type, "Bounce") || complaint)) {
        json_t *body = json_object_get(msg, complaint ? "complaint" : "bounce");
        btype = jstr(body, complaint ? "complaintFeedbackType" : "bounceType");
        list = json_object_get(body, complaint ? "complainedRecipients" : "bouncedRecipients");
        json_array_foreach(list, i, item) {
            const char *email = jstr(item, "emailAddress"), *st = jstr(item, "status");
            const char *dc = jstr(item, "diagnosticCode"), *act = jstr(item, "action");
            char *addr = first_address(email);
            struct bounce_rcpt *x = addr ? rcpt_add(r, addr) : NULL;
            free(addr);
            if (x == NULL)
                continue;
            rcpt_fields(x, st, act, dc);
            if (complaint)
                x->cls = btype ? bounce_classify_feedback(btype) : BOUNCE_COMPLAINT;
            else
                x->cls = bounce_classify(x->status, 0, x->diagnostic,
                                         btype && str_ieq(btype, "Transient"));
        }
        if (complaint && btype && r->feedback_type == NULL)
            r->feedback_type = diag_clean(btype, strlen(btype));
    }
    json_array_foreach(json_object_get(json_object_get(msg, "mail"), "headers"), i, h) {
        const char *name = jstr(h, "name"), *v = jstr(h, "value");
        if (name && v && str_ieq(name, BOUNCE_REF_HEADER) && ref_at(v, strlen(v)))
            ref_add(r, v);
    }
    json_decref(inner);
    json_decref(root);
    return r->nrcpts > 0;
}

static bool
is_auto_reply(GMimeObject *top, const char *subject)
{
    const char *v;

    if ((v = g_mime_object_get_header(top, "Auto-Submitted")) && !str_prefix(v, "no") &&
        !str_prefix(v, "No"))
        return true;
    if (g_mime_object_get_header(top, "X-Autoreply") ||
        g_mime_object_get_header(top, "X-Autorespond") ||
        g_mime_object_get_header(top, "X-Autoresponder"))
        return true;
    if ((v = g_mime_object_get_header(top, "Precedence")) && str_ieq(v, "auto_reply"))
        return true;
    return subject && rule_match(AUTO_SUBJ, subject, strlen(subject));
}

/* True when data has more MIME part headers or top-level header lines than a report has. */
static bool
too_complex(const char *data, size_t len)
{
    const char *p = data, *end = data + len, *nl;
    int ctypes = 0, lines = 0;
    bool in_head = true;

    for (; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        size_t n = (size_t)(nl - p);
        if (in_head && (n == 0 || (n == 1 && p[0] == '\r')))
            in_head = false;
        else if (in_head && ++lines > MAX_LINES_BEFORE_BODY)
            return true;
        if (n >= 13 && strncasecmp(p, "content-type:", 13) == 0 && ++ctypes > MAX_CONTENT_TYPES)
            return true;
    }
    return false;
}

void
bounce_parse(const char *data, size_t len, struct bounce_report *out)
{
    struct walk w;
    GMimeStream *st = NULL;
    GMimeParser *p = NULL;
    GMimeMessage *m = NULL;
    GMimeObject *top;
    const char *subject, *from_h;
    char *from = NULL, *to = NULL;
    bool looks_bounce;

    memset(out, 0, sizeof(*out));
    memset(&w, 0, sizeof(w));
    w.r = out;
    buf_init(&w.status, MAX_TEXT);
    buf_init(&w.feedback, MAX_TEXT);
    buf_init(&w.text, MAX_TEXT);
    buf_init(&w.orig_hdrs, MAX_TEXT);
    pthread_once(&gmime_once, gmime_start);
    if (too_complex(data, len)) {
        out->kind = BOUNCE_KIND_OTHER;
        goto out;
    }

    st = g_mime_stream_mem_new_with_buffer(data, len);
    p = g_mime_parser_new_with_stream(st);
    m = g_mime_parser_construct_message(p, NULL);
    if (m == NULL)
        goto out;
    top = GMIME_OBJECT(m);
    walk_message(&w, m, 0, false);
    subject = g_mime_object_get_header(top, "Subject");
    from_h = g_mime_object_get_header(top, "From");
    from = first_address(from_h);
    to = first_address(g_mime_object_get_header(top, "To"));

    looks_bounce = (from_h && rule_match(FROM, from_h, strlen(from_h))) ||
                   (subject && rule_match(SUBJECT, subject, strlen(subject)));
    if (w.has_status) {
        out->kind = BOUNCE_KIND_DSN;
        read_dsn(&w, w.status.data, w.status.len);
    }
    if (out->nrcpts == 0 && w.has_feedback) {
        out->kind = BOUNCE_KIND_ARF;
        read_arf(&w);
    }
    if (out->nrcpts == 0 && !w.has_status && !w.has_feedback && read_json_notification(&w))
        out->kind = BOUNCE_KIND_OTHER;
    if (out->nrcpts == 0 && out->kind != BOUNCE_KIND_ARF && w.text.len > 0 &&
        (w.has_status || w.report_dsn || looks_bounce)) {
        out->kind = w.has_status || w.report_dsn ? BOUNCE_KIND_DSN : BOUNCE_KIND_OTHER;
        read_text_bounce(&w, from, to);
    }
    if (out->nrcpts == 0 && !w.has_status && !w.has_feedback && !looks_bounce &&
        is_auto_reply(top, subject)) {
        struct bounce_rcpt *x;
        out->kind = BOUNCE_KIND_AUTO_REPLY;
        if (from && (x = rcpt_add(out, from)) != NULL)
            x->cls = BOUNCE_AUTO_REPLY;
    }
    if (out->nrcpts == 0 && out->kind == BOUNCE_KIND_OTHER)
        out->kind = BOUNCE_KIND_NOT_BOUNCE;
out:
    free(from);
    free(to);
    if (m)
        g_object_unref(m);
    if (p)
        g_object_unref(p);
    if (st)
        g_object_unref(st);
    buf_cleanup(&w.status);
    buf_cleanup(&w.feedback);
    buf_cleanup(&w.text);
    buf_cleanup(&w.orig_hdrs);
}

void
bounce_report_cleanup(struct bounce_report *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->nrcpts; i++) {
        free(r->rcpts[i].email);
        free(r->rcpts[i].action);
        free(r->rcpts[i].diagnostic);
        free(r->rcpts[i].remote_mta);
    }
    free(r->rcpts);
    free(r->feedback_type);
    free(r->reporting_mta);
    memset(r, 0, sizeof(*r));
}
