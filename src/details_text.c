/* details_text: log text made quotable: what a terminal would show of it, as valid UTF-8,
 * and only its last few lines (where the error is). */
#include "details_text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ESC 0x1b

/* The code point of the well-formed UTF-8 sequence at p (at most n bytes) and its length
 * in *len; *len 0 when it is not one (overlong, surrogate, past U+10FFFF, cut). */
static uint32_t utf8_decode(const unsigned char *p, size_t n, size_t *len)
{
	unsigned c = p[0];
	*len = 0;
	if (c < 0x80) {
		*len = 1;
		return c;
	}
	size_t k = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
	if (k == 0 || k > n || (k == 2 && c < 0xc2) || (k == 4 && c > 0xf4))
		return 0;
	uint32_t cp = c & (0x7f >> k);
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	*len = k;
	return cp;
}

static bool invisible(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Length of the escape sequence starting with ESC at s[i] (bytes to skip). */
static size_t escape_len(const unsigned char *s, size_t i, size_t len)
{
	if (i + 1 >= len)
		return 1;
	unsigned char k = s[i + 1];
	size_t j = i + 2;
	if (k == '[') {
		/* CSI: parameter and intermediate bytes, then one final byte 0x40..0x7e. */
		while (j < len && s[j] >= 0x20 && s[j] <= 0x3f)
			j++;
		while (j < len && s[j] >= 0x20 && s[j] <= 0x2f)
			j++;
		if (j < len && s[j] >= 0x40 && s[j] <= 0x7e)
			j++;
		return j - i;
	}
	if (k == ']' || k == 'P' || k == '_' || k == '^' || k == 'X') {
		/* OSC and other strings: up to BEL or ST (ESC \), or the end of the line. */
		while (j < len && s[j] != 0x07 && s[j] != '\n' && !(s[j] == ESC && j + 1 < len && s[j + 1] == '\\'))
			j++;
		if (j < len && s[j] == 0x07)
			j++;
		else if (j < len && s[j] == ESC)
			j += 2;
		return j - i;
	}
	return 2; /* ESC and one more byte: charset selections, keypad modes... */
}

void details_text_clean(struct strbuf *out, const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t line_start = out->len; /* where a carriage return starts the line over */
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c == ESC) {
			i += escape_len(s, i, len);
			continue;
		}
		if (c == '\r') {
			if (i + 1 < len && s[i + 1] == '\n') {
				i++;
				continue; /* the '\n' comes next */
			}
			/* What follows overwrites the line; a lone CR at the end changes nothing. */
			if (i + 1 < len && s[i + 1] != '\r') {
				out->len = line_start;
				if (out->data)
					out->data[out->len] = '\0';
			}
			i++;
			continue;
		}
		if (c == '\n') {
			strbuf_putc(out, '\n');
			line_start = out->len;
			i++;
			continue;
		}
		if (c == '\t') {
			strbuf_putc(out, '\t');
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp = utf8_decode(s + i, len - i, &n);
		if (n == 0) {
			strbuf_puts(out, "\xef\xbf\xbd"); /* U+FFFD */
			i++;
			continue;
		}
		if (cp == 0x9b) { /* the one-byte CSI of C1: its parameters go with it */
			size_t j = i + n;
			while (j < len && s[j] >= 0x20 && s[j] <= 0x3f)
				j++;
			if (j < len && s[j] >= 0x40 && s[j] <= 0x7e)
				j++;
			i = j;
			continue;
		}
		if (!invisible(cp))
			strbuf_append(out, text + i, n);
		i += n;
	}
}

/* Characters (code points) of valid UTF-8 text. */
static size_t count_chars(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xc0) != 0x80;
	return k;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

char *details_text_tail(const char *clean, size_t max_lines, size_t max_chars)
{
	if (!clean || max_lines == 0 || max_chars == 0)
		return xstrdup("");
	/* Walk back over the lines, skipping blank ones, until max_lines are taken. */
	size_t end = strlen(clean);
	size_t start = end, taken = 0, text_end = 0;
	bool have_end = false;
	size_t pos = end;
	while (taken < max_lines) {
		size_t line_end = pos;
		size_t line_start = line_end;
		while (line_start > 0 && clean[line_start - 1] != '\n')
			line_start--;
		if (!blank(clean + line_start, line_end - line_start)) {
			if (!have_end) {
				text_end = line_end;
				have_end = true;
			}
			start = line_start;
			taken++;
		}
		if (line_start == 0)
			break;
		pos = line_start - 1; /* before the '\n' */
	}
	if (!have_end)
		return xstrdup("");
	/* Blank lines between the taken ones stay out too. */
	struct strbuf lines = STRBUF_INIT;
	for (size_t p = start; p < text_end;) {
		const char *nl = memchr(clean + p, '\n', text_end - p);
		size_t e = nl ? (size_t)(nl - clean) : text_end;
		if (!blank(clean + p, e - p)) {
			if (lines.len)
				strbuf_putc(&lines, '\n');
			strbuf_append(&lines, clean + p, e - p);
		}
		p = e + 1;
	}
	size_t chars = count_chars(strbuf_str(&lines), lines.len);
	if (chars <= max_chars)
		return strbuf_detach(&lines);
	/* Keep the newest max_chars - 1 characters behind an ellipsis. */
	size_t drop = chars - (max_chars - 1), i = 0;
	const char *t = strbuf_str(&lines);
	for (size_t k = 0; i < lines.len; i++) {
		if (((unsigned char)t[i] & 0xc0) != 0x80 && k++ == drop)
			break;
	}
	struct strbuf out = STRBUF_INIT;
	strbuf_puts(&out, "\xe2\x80\xa6");
	strbuf_puts(&out, t + i);
	strbuf_free(&lines);
	return strbuf_detach(&out);
}

char *details_text_head(const char *clean, size_t max_chars)
{
	if (!clean)
		return xstrdup("");
	size_t n = strlen(clean);
	if (count_chars(clean, n) <= max_chars)
		return xstrdup(clean);
	size_t keep = max_chars ? max_chars - 1 : 0, i = 0;
	for (size_t k = 0; i < n; i++)
		if (((unsigned char)clean[i] & 0xc0) != 0x80 && k++ == keep)
			break;
	struct strbuf out = STRBUF_INIT;
	strbuf_append(&out, clean, i);
	strbuf_puts(&out, "\xe2\x80\xa6");
	return strbuf_detach(&out);
}

char *details_text_short(const char *s, size_t max_chars)
{
	if (!s)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	details_text_clean(&sb, s, strlen(s));
	char *r = details_text_head(strbuf_str(&sb), max_chars);
	strbuf_free(&sb);
	return r;
}
