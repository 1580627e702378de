/*
 * html_text.h - the plain-text alternative of an HTML body, for campaigns
 * that give no text body (a message with HTML alone reads worse in text
 * clients and scores as spam, MIME_HTML_ONLY).
 *
 * The HTML goes through libxml2's HTML parser (a real, error-tolerant
 * tree builder), not pattern matching: entities are decoded, comments,
 * <head>, <script>, <style> and <template> dropped, blocks become line
 * breaks, list items "- ", <img> its alt text, and a link whose text is
 * not its address reads "text (address)" for http(s) and mailto links.
 * Runs of white space collapse to one space except inside <pre>.
 */
#ifndef MC_HTML_TEXT_H
#define MC_HTML_TEXT_H

#include <stddef.h>

#include "core/err.h"
#include "core/util.h"

/*
 * Appends the text of html[0..n) (UTF-8) to out, lines ending in "\n".
 * MC_ERR_INVALID when libxml2 cannot build a tree at all (out untouched);
 * safe from any thread.
 */
mc_err tpl_html_to_text(const char *html, size_t n, struct buf *out);

#endif
