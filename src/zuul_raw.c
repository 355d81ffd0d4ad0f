/* zuul_raw: the raw bytes of a Zuul payload checked (size, NUL, UTF-8, nesting) and made fit
 * for cJSON (odd escapes and non-finite floats rewritten) before zuul.c decodes it. */
#include "zuul.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "zuul_internal.h"

/* Length of the well-formed UTF-8 sequence at p (at most n bytes available), storing its code
 * point, or 0 when it is not one: overlong forms, surrogates and values past U+10FFFF are
 * refused here because cJSON copies raw bytes through without looking at them. */
size_t zuul_utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, v = c & 0x1Fu, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3, v = c & 0x0Fu, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, v = c & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3Fu);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

bool zuul_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t k = zuul_utf8_sequence(p + i, n - i, &cp);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at s (n bytes available) as a number, or -1. */
static long hex4(const char *s, size_t n)
{
	long v = 0;

	if (n < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

void zuul_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The bare tokens Python's json.dumps writes for non-finite floats (allow_nan=True, its
 * default: Zuul publishes with plain json.dumps). cJSON 1.7.15 knows none of them. */
static const char *const nonfinite_tokens[] = {"-Infinity", "Infinity", "NaN"};

/* Length of the non-finite token at p (n bytes available), or 0. A token counts only as a
 * whole word: "NaNa" or "Infinityx" stay as they are and cJSON rejects them. */
static size_t nonfinite_token_at(const char *p, size_t n)
{
	for (size_t i = 0; i < sizeof nonfinite_tokens / sizeof nonfinite_tokens[0]; i++) {
		size_t k = strlen(nonfinite_tokens[i]);
		if (n >= k && memcmp(p, nonfinite_tokens[i], k) == 0) {
			char next = n > k ? p[k] : '\0';
			bool word = (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
				    (next >= '0' && next <= '9') || next == '_' || next == '.';
			return word ? 0 : k;
		}
	}
	return 0;
}

void zuul_prepared_free(struct zuul_prepared *pp)
{
	free(pp->text);
	free(pp->swap_at);
	free(pp->swap_len);
	memset(pp, 0, sizeof *pp);
}

/* The offset in the original payload of byte `at` of the rewritten text. */
size_t zuul_prepared_origin(const struct zuul_prepared *pp, size_t at)
{
	size_t shift = 0; /* original minus rewritten, before `at` */
	for (size_t i = 0; i < pp->n_swaps; i++) {
		size_t start = pp->swap_at[i] - shift; /* where "null" starts in the rewritten text */
		if (at < start)
			break;
		if (at < start + 4)
			return pp->swap_at[i];
		shift += pp->swap_len[i];
		shift -= 4;
	}
	return at + shift;
}

/* Replaces every recorded token of copy (len bytes) by "null"; returns the new text. */
static char *swap_nonfinite(const char *copy, size_t len, const struct zuul_prepared *pp)
{
	struct strbuf sb = STRBUF_INIT;
	size_t from = 0;
	for (size_t i = 0; i < pp->n_swaps; i++) {
		strbuf_append(&sb, copy + from, pp->swap_at[i] - from);
		strbuf_puts(&sb, "null");
		from = pp->swap_at[i] + pp->swap_len[i];
	}
	strbuf_append(&sb, copy + from, len - from);
	return strbuf_detach(&sb);
}

/* Checks the raw payload and fills pp with a NUL-terminated copy ready for cJSON; returns
 * false with a reason. In the copy, JSON escapes cJSON 1.7.15 mishandles are rewritten in
 * place to "\ufffd" (same length): "\u0000" would end the C string early and silently truncate
 * the field, and a lone surrogate escape would make cJSON reject the whole report. Python's
 * json.dumps (what Zuul uses) emits both for odd input, so we keep the report and mark the
 * spot with U+FFFD instead of losing it. For the same reason the bare Infinity, -Infinity and
 * NaN it writes for non-finite floats become null: only outside strings, only as whole
 * tokens, so a string "NaN" or a key stays as sent and anything else is left to cJSON. */
bool zuul_payload_prepare(const char *payload, size_t len, struct zuul_prepared *pp, char *err, size_t errlen)
{
	memset(pp, 0, sizeof *pp);
	if (!payload || len == 0) {
		zuul_set_err(err, errlen, "empty payload");
		return false;
	}
	if (len > ZUUL_PAYLOAD_MAX) {
		zuul_set_err(err, errlen, "payload too large: %zu bytes (limit %d)", len, ZUUL_PAYLOAD_MAX);
		return false;
	}
	/* Publishers written in C sometimes send the string's terminator too. */
	if (payload[len - 1] == '\0')
		len--;

	char *copy = xmalloc(len + 1);
	memcpy(copy, payload, len);
	copy[len] = '\0';

	const unsigned char *p = (const unsigned char *)copy;
	bool in_string = false;
	int depth = 0;
	size_t i = 0, cap = 0;
	uint32_t cp;

	while (i < len) {
		unsigned char c = p[i];
		if (c == '\0') {
			zuul_set_err(err, errlen, "NUL byte at byte %zu", i);
			goto fail;
		}
		if (c >= 0x80) {
			size_t k = zuul_utf8_sequence(p + i, len - i, &cp);
			if (k == 0) {
				zuul_set_err(err, errlen, "not valid UTF-8 at byte %zu", i);
				goto fail;
			}
			i += k;
			continue;
		}
		if (in_string) {
			if (c == '"') {
				in_string = false;
			} else if (c == '\\' && i + 1 < len && copy[i + 1] == 'u') {
				long u = hex4(copy + i + 2, len - i - 2);
				if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && copy[i + 6] == '\\' &&
				    copy[i + 7] == 'u') {
					long lo = hex4(copy + i + 8, len - i - 8);
					if (lo >= 0xDC00 && lo <= 0xDFFF) {
						i += 12; /* a proper pair: cJSON decodes it */
						continue;
					}
				}
				if (u == 0 || (u >= 0xD800 && u <= 0xDFFF))
					memcpy(copy + i + 2, "fffd", 4);
				i += u >= 0 ? 6 : 2;
				continue;
			} else if (c == '\\' && i + 1 < len && (unsigned char)copy[i + 1] < 0x80) {
				/* Skip the escaped byte so \" does not end the string; a non-ASCII
				 * byte after '\' is left to the UTF-8 check (cJSON rejects it). */
				i += 2;
				continue;
			}
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > ZUUL_NESTING_MAX) {
				zuul_set_err(err, errlen, "nested deeper than %d levels at byte %zu", ZUUL_NESTING_MAX,
					     i);
				goto fail;
			}
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		} else if (c == 'I' || c == 'N' || c == '-') {
			/* Only where a token starts: not inside a word such as "xNaN" (cJSON
			 * rejects those whatever we do). */
			bool word_before = i > 0 && ((p[i - 1] >= 'a' && p[i - 1] <= 'z') ||
						     (p[i - 1] >= 'A' && p[i - 1] <= 'Z') ||
						     (p[i - 1] >= '0' && p[i - 1] <= '9'));
			size_t k = word_before ? 0 : nonfinite_token_at(copy + i, len - i);
			if (k) {
				if (pp->n_swaps == cap) {
					cap = cap ? cap * 2 : 8;
					pp->swap_at = xrealloc(pp->swap_at, cap * sizeof *pp->swap_at);
					pp->swap_len = xrealloc(pp->swap_len, cap * sizeof *pp->swap_len);
				}
				pp->swap_at[pp->n_swaps] = i;
				pp->swap_len[pp->n_swaps++] = k;
				i += k;
				continue;
			}
		}
		i++;
	}
	if (pp->n_swaps) {
		pp->text = swap_nonfinite(copy, len, pp);
		free(copy);
	} else {
		pp->text = copy;
	}
	return true;
fail:
	free(copy);
	zuul_prepared_free(pp);
	return false;
}
