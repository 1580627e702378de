/*
 * html_text.c - the text alternative of an HTML body (see html_text.h).
 * It does not wrap lines (quoted-printable takes care of long ones) or
 * render tables as grids: cells are separated by a space, rows by a line.
 *
 * DESIGN
 * One walk over libxml2's tree writes into the output through a small
 * writer that owes line breaks rather than writing them at once: a block
 * asks for "at least n line breaks here", and they are written only when
 * the next text arrives, so nested blocks never pile up blank lines and
 * the text never starts or ends with one.  libxml2 is initialised once
 * (xmlInitParser is not safe to race), then each call parses on its own.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "html_text.h"

struct writer {
    struct buf *out;
    size_t start;  /* where this text began in out */
    int owed;      /* line breaks owed before the next text */
    bool space;    /* a space owed before the next text */
    int pre;       /* inside <pre>: white space kept */
};

enum kind { K_INLINE, K_SKIP, K_BREAK, K_BLOCK, K_PARA, K_ITEM, K_CELL, K_RULE, K_IMAGE };

/* How each element reads as text; anything not listed is inline. */
static const struct {
    const char *name;
    enum kind kind;
} elements[] = {
    {"head", K_SKIP},     {"script", K_SKIP},     {"style", K_SKIP},   {"template", K_SKIP},
    {"title", K_SKIP},    {"noscript", K_SKIP},   {"br", K_BREAK},     {"p", K_PARA},
    {"h1", K_PARA},       {"h2", K_PARA},         {"h3", K_PARA},      {"h4", K_PARA},
    {"h5", K_PARA},       {"h6", K_PARA},         {"blockquote", K_PARA}, {"pre", K_PARA},
    {"table", K_PARA},    {"ul", K_PARA},         {"ol", K_PARA},      {"div", K_BLOCK},
    {"section", K_BLOCK}, {"article", K_BLOCK},   {"header", K_BLOCK}, {"footer", K_BLOCK},
    {"tr", K_BLOCK},      {"center", K_BLOCK},    {"address", K_BLOCK}, {"dt", K_BLOCK},
    {"dd", K_BLOCK},      {"li", K_ITEM},         {"td", K_CELL},      {"th", K_CELL},
    {"hr", K_RULE},       {"img", K_IMAGE},
};

static enum kind
kind_of(const xmlChar *name)
{
    for (size_t i = 0; i < sizeof(elements) / sizeof(elements[0]); i++)
        if (strcasecmp((const char *)name, elements[i].name) == 0)
            return elements[i].kind;
    return K_INLINE;
}

static void
owe_breaks(struct writer *w, int n)
{
    if (w->out->len > w->start && w->owed < n)
        w->owed = n;
    w->space = false;
}

/* Writes text, collapsing white space (kept inside <pre>). */
static void
put_text(struct writer *w, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
        if (ws && !w->pre) {
            if (w->out->len > w->start && w->owed == 0)
                w->space = true;
            continue;
        }
        if (w->owed) {
            for (int i = 0; i < w->owed; i++)
                buf_putc(w->out, '\n');
            w->owed = 0;
            w->space = false;
        } else if (w->space) {
            buf_putc(w->out, ' ');
            w->space = false;
        }
        buf_putc(w->out, c == '\r' ? '\n' : c);
    }
}

/* The text content of a subtree, for comparing a link's text with its address. */
static bool
link_shows_href(xmlNode *a, const char *href)
{
    xmlChar *t = xmlNodeGetContent(a);
    bool same = false;

    if (t) {
        const char *s = (const char *)t, *h = href;
        while (*s == ' ' || *s == '\n' || *s == '\t')
            s++;
        if (strncasecmp(h, "mailto:", 7) == 0 && strncasecmp(s, "mailto:", 7) != 0)
            h += 7;
        same = strncmp(s, h, strlen(h)) == 0;
        xmlFree(t);
    }
    return same;
}

static void walk(struct writer *w, xmlNode *n);

static void
element(struct writer *w, xmlNode *n)
{
    enum kind k = kind_of(n->name);
    xmlChar *attr = NULL;

    switch (k) {
    case K_SKIP:
        return;
    case K_BREAK:
        if (w->owed < 1)
            w->owed = 1;
        w->space = false;
        return;
    case K_RULE:
        owe_breaks(w, 2);
        put_text(w, "----");
        owe_breaks(w, 2);
        return;
    case K_IMAGE:
        if ((attr = xmlGetProp(n, (const xmlChar *)"alt")) != NULL && attr[0]) {
            if (w->out->len > w->start && !w->owed)
                w->space = true;
            put_text(w, (const char *)attr);
            w->space = true;
        }
        xmlFree(attr);
        return;
    case K_PARA:
    case K_BLOCK:
    case K_ITEM:
        owe_breaks(w, k == K_PARA ? 2 : 1);
        if (k == K_ITEM)
            put_text(w, "- ");
        break;
    case K_CELL:
        if (w->out->len > w->start && !w->owed)
            w->space = true;
        break;
    case K_INLINE:
        break;
    }
    if (strcasecmp((const char *)n->name, "pre") == 0)
        w->pre++;
    walk(w, n->children);
    if (strcasecmp((const char *)n->name, "pre") == 0)
        w->pre--;
    if (strcasecmp((const char *)n->name, "a") == 0 &&
        (attr = xmlGetProp(n, (const xmlChar *)"href")) != NULL) {
        const char *h = (const char *)attr;
        if ((strncasecmp(h, "http://", 7) == 0 || strncasecmp(h, "https://", 8) == 0 ||
             strncasecmp(h, "mailto:", 7) == 0) &&
            !link_shows_href(n, h)) {
            put_text(w, " (");
            put_text(w, strncasecmp(h, "mailto:", 7) == 0 ? h + 7 : h);
            put_text(w, ")");
        }
        xmlFree(attr);
    }
    if (k == K_PARA || k == K_BLOCK || k == K_ITEM)
        owe_breaks(w, k == K_PARA ? 2 : 1);
}

static void
walk(struct writer *w, xmlNode *n)
{
    for (; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE)
            element(w, n);
        else if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content)
            put_text(w, (const char *)n->content);
    }
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
init_libxml(void)
{
    xmlInitParser();
}

mc_err
tpl_html_to_text(const char *html, size_t n, struct buf *out)
{
    struct writer w = {.out = out, .start = out->len};
    htmlDocPtr doc;

    pthread_once(&init_once, init_libxml);
    if (n == 0)
        return out->err;
    if (n > (size_t)INT32_MAX)
        return MC_ERR_INVALID;
    doc = htmlReadMemory(html, (int)n, NULL, "UTF-8",
                         HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (doc == NULL)
        return MC_ERR_INVALID;
    walk(&w, xmlDocGetRootElement(doc));
    if (out->len > w.start)
        buf_putc(out, '\n');
    xmlFreeDoc(doc);
    return out->err;
}
