/* report_text: the plain-text body of a report from its HTML: the subset our templates and
 * the Matrix spec allow, tags dropped, entities decoded, lists and links kept readable. */
#include "report.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"

/* ------------------------------------------------------------------------ */
/* HTML -> plain text                                                         */

#define H2T_MAX_LISTS 32

struct h2t {
	struct strbuf out;
	int pending_nl;      /* line breaks owed before the next text (0..2) */
	bool pending_space;  /* collapsed whitespace owed before the next text */
	bool line_started;   /* the current line's prefix has been written */
	bool line_empty;     /* nothing but prefix/bullet on the current line */
	bool after_bullet;   /* a bullet was just written: block breaks would orphan it */
	int pre;             /* depth of <pre>: whitespace kept */
	int quote;           /* depth of <blockquote>: "> " per level */
	int li_depth;        /* open <li>: continuation lines are indented */
	int list_depth;
	struct {
		bool ordered;
		long next;
	} lists[H2T_MAX_LISTS];
	bool in_link;
	size_t link_start;
	char *href;
	int cell; /* cells seen in the current table row */
};

static void h2t_prefix(struct h2t *h)
{
	for (int i = 0; i < h->quote; i++)
		strbuf_puts(&h->out, "> ");
	for (int i = 0; i < h->li_depth; i++)
		strbuf_puts(&h->out, "  ");
	h->line_started = true;
	h->line_empty = true;
}

/* Pays the line breaks owed, then the prefix of the new line. */
static void h2t_flush(struct h2t *h)
{
	if (h->pending_nl > 0 && h->out.len > 0) {
		for (int i = 0; i < h->pending_nl; i++)
			strbuf_putc(&h->out, '\n');
		h->line_started = false;
		h->pending_space = false;
	}
	h->pending_nl = 0;
	if (!h->line_started)
		h2t_prefix(h);
}

static void h2t_block(struct h2t *h, int lines)
{
	if (h->after_bullet)
		return;
	if (h->pending_nl < lines)
		h->pending_nl = lines;
	h->pending_space = false;
}

static bool h2t_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

/* Text outside <pre>: whitespace runs become one space, none at a line start. */
static void h2t_text(struct h2t *h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (h->pre) {
			if (c == '\r')
				continue;
			h2t_flush(h);
			if (c == '\n') {
				strbuf_putc(&h->out, '\n');
				h->line_started = false;
				continue;
			}
			strbuf_putc(&h->out, c);
			h->line_empty = false;
			h->after_bullet = false;
			continue;
		}
		if (h2t_is_space(c)) {
			if (h->line_started && !h->line_empty && h->pending_nl == 0)
				h->pending_space = true;
			continue;
		}
		/* A word at a time: what is owed before it is paid once, then it is copied. */
		size_t end = i + 1;
		while (end < n && !h2t_is_space(s[end]))
			end++;
		h2t_flush(h);
		if (h->pending_space && !h->line_empty)
			strbuf_putc(&h->out, ' ');
		h->pending_space = false;
		strbuf_append(&h->out, s + i, end - i);
		h->line_empty = false;
		h->after_bullet = false;
		i = end - 1;
	}
}

/* Text that must appear as is (bullets, separators, URLs, &nbsp;). */
static void h2t_raw(struct h2t *h, const char *s)
{
	h2t_flush(h);
	if (h->pending_space && !h->line_empty)
		strbuf_putc(&h->out, ' ');
	h->pending_space = false;
	strbuf_puts(&h->out, s);
	h->line_empty = false;
	h->after_bullet = false;
}

static void utf8_put(char *buf, size_t *n, unsigned long cp)
{
	if (cp < 0x80) {
		buf[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		buf[(*n)++] = (char)(0xC0 | (cp >> 6));
		buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		buf[(*n)++] = (char)(0xE0 | (cp >> 12));
		buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		buf[(*n)++] = (char)(0xF0 | (cp >> 18));
		buf[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
	}
}

/* Decodes the entity at p ('&'), writing UTF-8 to buf (>= 5 bytes). Returns the
 * bytes consumed from p, or 0 when p is not a complete entity we know (then the
 * '&' is text). Code points that are not characters become U+FFFD. */
static size_t entity_decode(const char *p, char *buf, size_t *buflen)
{
	static const struct {
		const char *name;
		unsigned long cp;
	} named[] = {
		{"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},
		{"apos", '\''},    {"nbsp", 0xA0},     {"hellip", 0x2026}, {"mdash", 0x2014},
		{"ndash", 0x2013}, {"rarr", 0x2192},   {"larr", 0x2190},  {"middot", 0xB7},
		{"bull", 0x2022},  {"copy", 0xA9},     {"reg", 0xAE},     {"trade", 0x2122},
		{"laquo", 0xAB},   {"raquo", 0xBB},    {"times", 0xD7},   {"deg", 0xB0},
		{"euro", 0x20AC},  {"lsquo", 0x2018},  {"rsquo", 0x2019}, {"ldquo", 0x201C},
		{"rdquo", 0x201D}, {"shy", 0xAD},      {"zwj", 0x200D},   {"zwnj", 0x200C},
	};
	*buflen = 0;
	unsigned long cp = 0;
	size_t i = 1;
	if (p[1] == '#') {
		bool hex = p[2] == 'x' || p[2] == 'X';
		i = hex ? 3 : 2;
		size_t digits = 0;
		for (;; i++, digits++) {
			int d;
			char c = p[i];
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (hex && c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (hex && c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				break;
			if (cp <= 0x10FFFF)
				cp = cp * (hex ? 16 : 10) + (unsigned long)d;
		}
		if (digits == 0 || p[i] != ';')
			return 0;
		if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
		    (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp < 0xA0))
			cp = 0xFFFD;
		utf8_put(buf, buflen, cp);
		return i + 1;
	}
	while (isalnum((unsigned char)p[i]) && i < 12)
		i++;
	if (p[i] != ';' || i == 1)
		return 0;
	for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
		if (strlen(named[k].name) == i - 1 && strncmp(p + 1, named[k].name, i - 1) == 0) {
			utf8_put(buf, buflen, named[k].cp);
			return i + 1;
		}
	}
	return 0;
}

/* Text with entities decoded, fed to the whitespace-collapsing writer. */
static void h2t_text_entities(struct h2t *h, const char *s, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n;) {
		if (s[i] != '&') {
			i++;
			continue;
		}
		char buf[8];
		size_t len;
		size_t used = entity_decode(s + i, buf, &len);
		/* entity_decode reads up to the ';', which lies within the text run
		 * because text ends at '<' or NUL, never inside an entity. */
		if (used == 0 || i + used > n) {
			i++;
			continue;
		}
		h2t_text(h, s + run, i - run);
		buf[len] = '\0';
		if (strcmp(buf, "\xc2\xa0") == 0)
			h2t_raw(h, " "); /* &nbsp; is a space that does not collapse */
		else
			h2t_text(h, buf, len);
		i += used;
		run = i;
	}
	h2t_text(h, s + run, n - run);
}

/* An attribute value with entities decoded. Caller frees. */
static char *attr_value_new(const char *s, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n;) {
		char buf[8];
		size_t len;
		size_t used = s[i] == '&' ? entity_decode(s + i, buf, &len) : 0;
		if (used && i + used <= n) {
			strbuf_append(&sb, buf, len);
			i += used;
		} else {
			strbuf_putc(&sb, s[i++]);
		}
	}
	return strbuf_detach(&sb);
}

struct tag {
	char name[16];
	bool closing;
	char *href;
	char *alt;
	char *start;
};

/* Parses the tag at p ('<'). Returns the bytes it spans, or 0 when p does not
 * start a tag (a lone '<' in text) or the tag never closes. */
static size_t tag_parse(const char *p, struct tag *t)
{
	memset(t, 0, sizeof *t);
	size_t i = 1;
	if (p[i] == '/') {
		t->closing = true;
		i++;
	}
	if (!isalpha((unsigned char)p[i]))
		return 0;
	size_t k = 0;
	while (isalnum((unsigned char)p[i])) {
		if (k + 1 < sizeof t->name)
			t->name[k++] = (char)tolower((unsigned char)p[i]);
		i++;
	}
	t->name[k] = '\0';
	for (;;) {
		while (isspace((unsigned char)p[i]) || p[i] == '/')
			i++;
		if (p[i] == '>')
			return i + 1;
		if (p[i] == '\0')
			goto unterminated;
		size_t name_at = i;
		while (p[i] && !isspace((unsigned char)p[i]) && p[i] != '=' && p[i] != '>' && p[i] != '/')
			i++;
		size_t name_len = i - name_at;
		while (isspace((unsigned char)p[i]))
			i++;
		const char *val = NULL;
		size_t val_len = 0;
		if (p[i] == '=') {
			i++;
			while (isspace((unsigned char)p[i]))
				i++;
			if (p[i] == '"' || p[i] == '\'') {
				char q = p[i++];
				val = p + i;
				while (p[i] && p[i] != q)
					i++;
				if (!p[i])
					goto unterminated;
				val_len = (size_t)(p + i - val);
				i++;
			} else {
				val = p + i;
				while (p[i] && !isspace((unsigned char)p[i]) && p[i] != '>')
					i++;
				val_len = (size_t)(p + i - val);
			}
		}
		char **slot = NULL;
		if (name_len == 4 && strncasecmp(p + name_at, "href", 4) == 0)
			slot = &t->href;
		else if (name_len == 3 && strncasecmp(p + name_at, "alt", 3) == 0)
			slot = &t->alt;
		else if (name_len == 5 && strncasecmp(p + name_at, "start", 5) == 0)
			slot = &t->start;
		if (slot && val && !*slot)
			*slot = attr_value_new(val, val_len);
	}
unterminated:
	free(t->href);
	free(t->alt);
	free(t->start);
	memset(t, 0, sizeof *t);
	return 0;
}

static bool tag_is(const struct tag *t, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(t->name, *names) == 0)
			return true;
	return false;
}

static void h2t_link_end(struct h2t *h)
{
	if (!h->in_link)
		return;
	h->in_link = false;
	char *href = h->href;
	h->href = NULL;
	if (!href || !*href) {
		free(href);
		return;
	}
	const char *text = h->out.len > h->link_start ? h->out.data + h->link_start : "";
	text += strspn(text, " \n");
	size_t tlen = strlen(text);
	while (tlen > 0 && (text[tlen - 1] == ' ' || text[tlen - 1] == '\n'))
		tlen--;
	bool saved_space = h->pending_space;
	h->pending_space = false;
	if (tlen == 0) {
		h2t_raw(h, href);
	} else if (tlen != strlen(href) || strncmp(text, href, tlen) != 0) {
		h2t_raw(h, " (");
		strbuf_puts(&h->out, href);
		strbuf_putc(&h->out, ')');
	}
	h->pending_space = saved_space;
	free(href);
}

static void h2t_tag(struct h2t *h, const struct tag *t)
{
	static const char *const para[] = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", NULL};
	static const char *const line[] = {"div", "tr", "caption", "details", "summary",
					   "thead", "tbody", "dl", "dt", "dd", NULL};
	const char *n = t->name;

	if (strcmp(n, "br") == 0) {
		/* Consecutive <br> make a blank line, never more. */
		if (h->out.len > 0 && h->pending_nl < 2)
			h->pending_nl++;
		h->pending_space = false;
		h->after_bullet = false;
	} else if (strcmp(n, "hr") == 0) {
		h2t_block(h, 1);
		h2t_raw(h, "---");
		h2t_block(h, 1);
	} else if (strcmp(n, "li") == 0) {
		if (t->closing) {
			if (h->li_depth > 0)
				h->li_depth--;
			h->after_bullet = false;
			h2t_block(h, 1);
			return;
		}
		h->after_bullet = false;
		h2t_block(h, 1);
		h2t_flush(h);
		int d = h->list_depth - 1;
		if (d >= 0 && d < H2T_MAX_LISTS && h->lists[d].ordered) {
			char num[32];
			snprintf(num, sizeof num, "%ld. ", h->lists[d].next);
			if (h->lists[d].next < 1000000000L)
				h->lists[d].next++;
			strbuf_puts(&h->out, num);
		} else {
			strbuf_puts(&h->out, "- ");
		}
		h->li_depth++;
		h->line_empty = true;
		h->after_bullet = true;
	} else if (strcmp(n, "ul") == 0 || strcmp(n, "ol") == 0) {
		if (t->closing) {
			if (h->list_depth > 0)
				h->list_depth--;
		} else {
			if (h->list_depth < H2T_MAX_LISTS) {
				long start = t->start ? strtol(t->start, NULL, 10) : 1;
				if (start < 0 || start > 1000000000L)
					start = 1;
				h->lists[h->list_depth].ordered = n[0] == 'o';
				h->lists[h->list_depth].next = start;
			}
			h->list_depth++;
		}
		h->after_bullet = false;
		h2t_block(h, 1);
	} else if (strcmp(n, "blockquote") == 0) {
		h->after_bullet = false;
		h2t_block(h, 2);
		if (t->closing) {
			if (h->quote > 0)
				h->quote--;
		} else {
			h->quote++;
		}
	} else if (strcmp(n, "pre") == 0) {
		h2t_block(h, 2);
		if (t->closing) {
			if (h->pre > 0)
				h->pre--;
		} else {
			h->pre++;
		}
	} else if (tag_is(t, para)) {
		h2t_block(h, 2);
	} else if (tag_is(t, line)) {
		if (strcmp(n, "tr") == 0)
			h->cell = 0;
		h2t_block(h, 1);
	} else if (strcmp(n, "td") == 0 || strcmp(n, "th") == 0) {
		if (!t->closing && h->cell++ > 0)
			h2t_raw(h, " | ");
	} else if (strcmp(n, "a") == 0) {
		if (t->closing) {
			h2t_link_end(h);
		} else if (!h->in_link) {
			/* A link's text starts after any break owed before it. */
			h2t_flush(h);
			h->in_link = true;
			h->link_start = h->out.len;
			free(h->href);
			h->href = xstrdup(t->href);
		}
	} else if (strcmp(n, "img") == 0) {
		if (t->alt && *t->alt)
			h2t_text(h, t->alt, strlen(t->alt));
	}
}

/* Skips the content of elements that are not text (script, style, head). */
static const char *skip_element(const char *p, const char *name)
{
	size_t n = strlen(name);
	for (const char *q = p; (q = strchr(q, '<')) != NULL; q++)
		if (q[1] == '/' && strncasecmp(q + 2, name, n) == 0 && !isalnum((unsigned char)q[2 + n])) {
			const char *gt = strchr(q, '>');
			return gt ? gt + 1 : q + strlen(q);
		}
	return p + strlen(p);
}

/* Final tidy-up: no trailing blanks on a line, at most one blank line in a row,
 * nothing blank at either end. Returns a new string; caller frees. */
static char *tidy_lines(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	int newlines = 0;
	bool any = false;
	while (*s) {
		size_t len = strcspn(s, "\n");
		size_t end = len;
		while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		if (end == 0) {
			newlines++;
		} else {
			if (any)
				for (int i = 0; i < (newlines > 0 ? 2 : 1); i++)
					strbuf_putc(&sb, '\n');
			strbuf_append(&sb, s, end);
			any = true;
			newlines = 0;
		}
		s += len;
		if (*s == '\n')
			s++;
	}
	return strbuf_detach(&sb);
}

char *report_html_to_text(const char *html)
{
	struct h2t h;
	memset(&h, 0, sizeof h);
	const char *p = html ? html : "";
	while (*p) {
		if (*p != '<') {
			size_t n = strcspn(p, "<");
			h2t_text_entities(&h, p, n);
			p += n;
			continue;
		}
		if (strncmp(p, "<!--", 4) == 0) {
			const char *end = strstr(p + 4, "-->");
			p = end ? end + 3 : p + strlen(p);
			continue;
		}
		if (p[1] == '!' || p[1] == '?') {
			const char *end = strchr(p, '>');
			p = end ? end + 1 : p + strlen(p);
			continue;
		}
		struct tag t;
		size_t used = tag_parse(p, &t);
		if (used == 0) {
			h2t_text(&h, "<", 1);
			p++;
			continue;
		}
		p += used;
		if (!t.closing && (strcmp(t.name, "script") == 0 || strcmp(t.name, "style") == 0 ||
				   strcmp(t.name, "head") == 0))
			p = skip_element(p, t.name);
		else
			h2t_tag(&h, &t);
		free(t.href);
		free(t.alt);
		free(t.start);
	}
	h2t_link_end(&h);
	free(h.href);
	char *text = tidy_lines(strbuf_str(&h.out));
	strbuf_free(&h.out);
	return text;
}
