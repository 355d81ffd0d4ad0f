/* html_check.h: a strict checker of the HTML the bridge writes into formatted_body, held to the
 * tags and attributes the current Matrix spec lets clients render. Header-only, like fake_hs.h.
 *
 * Source: Matrix client-server API v1.19 (2026-07; the same text on matrix-spec main), module
 * "Instant Messaging", section "m.room.message msgtypes" (content/client-server-api/modules/
 * instant_messaging.md). Since v1.10 `font` is deprecated for `span` with data-mx-color /
 * data-mx-bg-color and `strike` gave way to `s`; since v1.12 `a` has no `name`; since v1.13
 * `mx-reply` is gone. The suggested tags:
 *   del h1 h2 h3 h4 h5 h6 blockquote p a ul ol sup sub li b i u strong em s code hr br div
 *   table thead tbody tr th td caption pre span img details summary
 * and the attributes per tag (every other attribute, on every tag, is to be dropped):
 *   span  data-mx-bg-color, data-mx-color (a '#' and 6 hex digits), data-mx-spoiler,
 *         data-mx-maths
 *   a     target, href (not relative; scheme https, http, ftp, mailto or magnet)
 *   img   width, height, alt, title, src (mxc:// only)
 *   ol    start
 *   code  class (only language-*)
 *   div   data-mx-maths
 * Tags nest at most 100 deep, and "HTML included in events should otherwise be valid": closed,
 * properly nested, with a sane structure.
 *
 * The checker is stricter than the spec where the bridge has no business going further: href
 * takes only http, https (matrix.to links included) and mailto, since ftp or magnet in a
 * message could only be a Zuul value leaking through; attribute values are double-quoted;
 * tag names are lower case; a '<', '>' or '&' in text must be escaped; only void elements
 * (br, hr, img) go unclosed; a block element never sits in a <p> and <li> only in a list.
 * tests/html_spec.py is the Python twin; tests/data/html-spec-cases.json holds cases both run. */
#ifndef ZMB_TEST_HTML_CHECK_H
#define ZMB_TEST_HTML_CHECK_H

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define HTML_CHECK_MAX_DEPTH 100

static const char *const html_check_tags[] = {
	"del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup", "sub", "li",
	"b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div", "table", "thead", "tbody", "tr", "th",
	"td", "caption", "pre", "span", "img", "details", "summary", NULL,
};

/* One (tag, attribute) the spec permits; the value rule is checked by html_check_value. */
struct html_check_attr {
	const char *tag;
	const char *name;
};

static const struct html_check_attr html_check_attrs[] = {
	{"span", "data-mx-bg-color"}, {"span", "data-mx-color"}, {"span", "data-mx-spoiler"},
	{"span", "data-mx-maths"}, {"a", "target"}, {"a", "href"}, {"img", "width"}, {"img", "height"},
	{"img", "alt"}, {"img", "title"}, {"img", "src"}, {"ol", "start"}, {"code", "class"},
	{"div", "data-mx-maths"}, {NULL, NULL},
};

/* The parser's state: where it is, the open elements, and the first complaint. */
struct html_check {
	const char *p;
	char stack[HTML_CHECK_MAX_DEPTH][16];
	int depth;
	char *why;
	size_t whylen;
	bool failed;
};

static bool html_check_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* Records the first problem only: later ones are usually its echoes. */
static void html_check_fail(struct html_check *c, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, c->whylen, fmt, ap);
	va_end(ap);
}

static bool html_check_is_void(const char *tag)
{
	return strcmp(tag, "br") == 0 || strcmp(tag, "hr") == 0 || strcmp(tag, "img") == 0;
}

/* Elements an HTML parser would not leave inside a <p> (it closes the paragraph first). */
static bool html_check_is_block(const char *tag)
{
	static const char *const blocks[] = {"p", "ul", "ol", "pre", "div", "blockquote", "table", "hr",
					     "h1", "h2", "h3", "h4", "h5", "h6", "details", NULL};
	return html_check_in(tag, blocks);
}

/* Length of the entity at s ("&amp;", "&#39;", "&#x27;"), or 0 when s is a bare '&'. Named
 * entities are the few an escaper writes; anything else is more likely a mistake. */
static size_t html_check_entity(const char *s)
{
	static const char *const named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", NULL};
	for (const char *const *n = named; *n; n++)
		if (strncmp(s, *n, strlen(*n)) == 0)
			return strlen(*n);
	size_t i = 2;
	bool hex = s[1] == '#' && (s[2] == 'x' || s[2] == 'X');
	if (s[1] != '#')
		return 0;
	i += hex;
	size_t start = i;
	while (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))
		i++;
	return i > start && s[i] == ';' ? i + 1 : 0;
}

/* Copies the value between p and end with its entities decoded (the few the escapers write). */
static void html_check_decode(const char *p, const char *end, char *out, size_t outlen)
{
	size_t n = 0;
	while (p < end && n + 1 < outlen) {
		size_t e = *p == '&' ? html_check_entity(p) : 0;
		if (e == 5 && strncmp(p, "&amp;", 5) == 0)
			out[n++] = '&';
		else if (e > 0 && strncmp(p, "&quot;", 6) == 0)
			out[n++] = '"';
		else if (e == 0)
			out[n++] = *p;
		else
			out[n++] = '?'; /* other entities: never part of a scheme */
		p += e ? e : 1;
	}
	out[n] = '\0';
}

static bool html_check_color(const char *v)
{
	if (v[0] != '#' || strlen(v) != 7)
		return false;
	for (int i = 1; i < 7; i++)
		if (!isxdigit((unsigned char)v[i]))
			return false;
	return true;
}

static bool html_check_href(const char *v)
{
	if (strncmp(v, "https://", 8) == 0)
		return v[8] != '\0' && v[8] != '/';
	if (strncmp(v, "http://", 7) == 0)
		return v[7] != '\0' && v[7] != '/';
	return strncmp(v, "mailto:", 7) == 0 && v[7] != '\0';
}

/* The value rule of a permitted attribute; NULL value: written without "=...". */
static bool html_check_value(const char *tag, const char *name, const char *v)
{
	bool flag = strcmp(name, "data-mx-spoiler") == 0 || strcmp(name, "data-mx-maths") == 0;
	if (!v)
		return flag && strcmp(name, "data-mx-maths") != 0; /* a maths element needs its source */
	if (strcmp(name, "data-mx-color") == 0 || strcmp(name, "data-mx-bg-color") == 0)
		return html_check_color(v);
	if (strcmp(tag, "a") == 0 && strcmp(name, "href") == 0)
		return html_check_href(v);
	if (strcmp(name, "src") == 0)
		return strncmp(v, "mxc://", 6) == 0 && v[6] != '\0';
	if (strcmp(name, "start") == 0 || strcmp(name, "width") == 0 || strcmp(name, "height") == 0)
		return v[0] != '\0' && strspn(v, "-0123456789") == strlen(v);
	if (strcmp(name, "class") == 0)
		return strncmp(v, "language-", 9) == 0 && v[9] != '\0' && !strchr(v, ' ');
	return true;
}

static bool html_check_attr_permitted(const char *tag, const char *name)
{
	for (const struct html_check_attr *a = html_check_attrs; a->tag; a++)
		if (strcmp(a->tag, tag) == 0 && strcmp(a->name, name) == 0)
			return true;
	return false;
}

/* Reads [a-z0-9-] into out; false (and a complaint) when empty, too long or not lower case. */
static bool html_check_name(struct html_check *c, char *out, size_t outlen, const char *what)
{
	size_t n = 0;
	while ((islower((unsigned char)*c->p) || isdigit((unsigned char)*c->p) || *c->p == '-') && n + 1 < outlen)
		out[n++] = *c->p++;
	out[n] = '\0';
	if (n == 0 || isalnum((unsigned char)*c->p)) {
		html_check_fail(c, "%s name at \"%.30s\" is empty, too long or not lower case", what, c->p - n);
		return false;
	}
	return true;
}

/* One attribute of an opening tag: name, optionally ="value". */
static void html_check_attribute(struct html_check *c, const char *tag, char seen[][24], int *n_seen)
{
	char name[24];
	if (!html_check_name(c, name, sizeof name, "attribute"))
		return;
	for (int i = 0; i < *n_seen; i++)
		if (strcmp(seen[i], name) == 0) {
			html_check_fail(c, "<%s> has %s twice", tag, name);
			return;
		}
	if (*n_seen < 8)
		snprintf(seen[(*n_seen)++], sizeof seen[0], "%s", name);
	if (!html_check_attr_permitted(tag, name)) {
		html_check_fail(c, "<%s %s> is not permitted by the spec", tag, name);
		return;
	}
	if (*c->p != '=') {
		if (!html_check_value(tag, name, NULL))
			html_check_fail(c, "<%s %s> needs a value", tag, name);
		return;
	}
	if (c->p[1] != '"') {
		html_check_fail(c, "<%s %s=...>: the value is not double-quoted", tag, name);
		return;
	}
	const char *start = c->p + 2, *end = strchr(start, '"');
	if (!end || memchr(start, '<', (size_t)(end - start))) {
		html_check_fail(c, "<%s %s=...>: the value is not closed", tag, name);
		return;
	}
	char value[2048];
	html_check_decode(start, end, value, sizeof value);
	c->p = end + 1;
	if (!html_check_value(tag, name, value))
		html_check_fail(c, "<%s %s=\"%.60s\">: value not permitted", tag, name, value);
}

/* Where tag may be opened, given the open elements. */
static void html_check_placement(struct html_check *c, const char *tag)
{
	const char *parent = c->depth ? c->stack[c->depth - 1] : "";
	if (strcmp(tag, "li") == 0 && strcmp(parent, "ul") != 0 && strcmp(parent, "ol") != 0)
		html_check_fail(c, "<li> outside a list (in <%s>)", parent);
	if ((strcmp(parent, "ul") == 0 || strcmp(parent, "ol") == 0) && strcmp(tag, "li") != 0)
		html_check_fail(c, "<%s> directly in <%s>: only <li> belongs there", tag, parent);
	for (int i = 0; i < c->depth; i++) {
		if (strcmp(c->stack[i], "p") == 0 && html_check_is_block(tag))
			html_check_fail(c, "block <%s> inside <p>: parsers close the paragraph first", tag);
		if (strcmp(c->stack[i], "a") == 0 && strcmp(tag, "a") == 0)
			html_check_fail(c, "<a> inside <a>");
	}
}

static void html_check_open(struct html_check *c)
{
	char tag[16];
	if (!html_check_name(c, tag, sizeof tag, "tag"))
		return;
	if (strcmp(tag, "font") == 0) {
		html_check_fail(c, "<font> is deprecated since Matrix v1.10: use <span data-mx-color>");
		return;
	}
	if (!html_check_in(tag, html_check_tags)) {
		html_check_fail(c, "<%s> is not in the spec's list of tags", tag);
		return;
	}
	html_check_placement(c, tag);
	char seen[8][24];
	int n_seen = 0;
	while (!c->failed && *c->p == ' ') {
		while (*c->p == ' ')
			c->p++;
		if (*c->p != '>' && *c->p != '/')
			html_check_attribute(c, tag, seen, &n_seen);
	}
	bool self_closing = *c->p == '/' && html_check_is_void(tag);
	c->p += self_closing;
	if (c->failed)
		return;
	if (*c->p != '>') {
		html_check_fail(c, "<%s ...> is not closed by '>' at \"%.20s\"", tag, c->p);
		return;
	}
	c->p++;
	if (html_check_is_void(tag))
		return;
	if (c->depth == HTML_CHECK_MAX_DEPTH) {
		html_check_fail(c, "tags nest deeper than %d", HTML_CHECK_MAX_DEPTH);
		return;
	}
	snprintf(c->stack[c->depth++], sizeof c->stack[0], "%s", tag);
}

static void html_check_close(struct html_check *c)
{
	char tag[16];
	c->p++; /* '/' */
	if (!html_check_name(c, tag, sizeof tag, "closing tag"))
		return;
	if (*c->p != '>') {
		html_check_fail(c, "</%s is not closed by '>'", tag);
		return;
	}
	c->p++;
	if (html_check_is_void(tag)) {
		html_check_fail(c, "</%s>: a void element has no closing tag", tag);
		return;
	}
	if (c->depth == 0 || strcmp(c->stack[c->depth - 1], tag) != 0) {
		html_check_fail(c, "</%s> closes %s%s%s", tag, c->depth ? "<" : "nothing open",
				c->depth ? c->stack[c->depth - 1] : "", c->depth ? ">" : "");
		return;
	}
	c->depth--;
}

/* Text up to the next '<': entities well formed, no stray '>', none loose in a list. */
static void html_check_text(struct html_check *c)
{
	const char *parent = c->depth ? c->stack[c->depth - 1] : "";
	bool in_list = strcmp(parent, "ul") == 0 || strcmp(parent, "ol") == 0;
	for (; *c->p && *c->p != '<' && !c->failed; c->p++) {
		if (in_list && !isspace((unsigned char)*c->p))
			html_check_fail(c, "text directly in <%s> at \"%.30s\": only <li> belongs there", parent, c->p);
		if (*c->p == '>')
			html_check_fail(c, "unescaped '>' in text at \"%.30s\"", c->p);
		if (*c->p == '&' && html_check_entity(c->p) == 0)
			html_check_fail(c, "bare '&' or unknown entity at \"%.30s\"", c->p);
	}
}

/* 0 when html holds to the spec's subset (see the top of this file); else -1 and the first
 * problem in why. */
static int html_check(const char *html, char *why, size_t whylen)
{
	struct html_check c = {.p = html ? html : "", .why = why, .whylen = whylen};
	if (whylen)
		why[0] = '\0';
	while (*c.p && !c.failed) {
		html_check_text(&c);
		if (c.failed || *c.p != '<')
			break;
		c.p++;
		if (*c.p == '/')
			html_check_close(&c);
		else if (*c.p == '!')
			html_check_fail(&c, "comment or doctype at \"%.20s\"", c.p - 1);
		else
			html_check_open(&c);
	}
	if (!c.failed && c.depth > 0)
		html_check_fail(&c, "<%s> is never closed", c.stack[c.depth - 1]);
	return c.failed ? -1 : 0;
}

#endif
