/* route: glob matching and the match/exclude rules that decide which routes a
 * Zuul event goes to, with a line-by-line explanation for operators. Pure. */
#include "route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const field_keys[ROUTE_NFIELDS] = {
	[ROUTE_TENANT] = "tenants",
	[ROUTE_PIPELINE] = "pipelines",
	[ROUTE_PROJECT] = "projects",
	[ROUTE_BRANCH] = "branches",
	[ROUTE_ACTION] = "actions",
	[ROUTE_BUILDSET_RESULT] = "buildset_results",
	[ROUTE_BUILD_RESULT] = "build_results",
};

const char *route_field_key(enum route_field f)
{
	if ((int)f < 0 || f >= ROUTE_NFIELDS)
		return NULL;
	return field_keys[f];
}

int route_field_from_key(const char *key)
{
	if (!key)
		return -1;
	for (int f = 0; f < ROUTE_NFIELDS; f++)
		if (strcmp(field_keys[f], key) == 0)
			return f;
	return -1;
}

/* ---- UTF-8 ---- */

/* Decodes one character at s (which must not be at the NUL). Invalid or
 * overlong sequences and surrogates decode as one byte mapped to 0xDC80..0xDCFF
 * (like Python's surrogateescape), which no valid sequence decodes to, so equal
 * code points always mean equal bytes and '?' still steps over garbage. */
static uint32_t utf8_decode(const char *str, size_t *len)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0];
	uint32_t cp, min;
	size_t n;
	if (c < 0x80) {
		*len = 1;
		return c;
	} else if (c >= 0xC2 && c <= 0xDF) {
		n = 2, cp = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3, cp = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		goto invalid;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
			goto invalid;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		goto invalid;
	*len = n;
	return cp;
invalid:
	*len = 1;
	return 0xDC00 | c;
}

static bool is_escaped_byte(uint32_t cp)
{
	return cp >= 0xDC80 && cp <= 0xDCFF;
}

/* ---- globs ---- */

/* Reads one (possibly backslash-escaped) character of a pattern at p.
 * Returns the position after it, or NULL at the end of the pattern (a lone
 * trailing backslash counts as the end inside a class; outside one the caller
 * treats it as a literal backslash). */
static const char *pattern_char(const char *p, uint32_t *cp)
{
	if (*p == '\\')
		p++;
	if (!*p)
		return NULL;
	size_t n;
	*cp = utf8_decode(p, &n);
	return p + n;
}

enum class_status { CLASS_OK, CLASS_UNTERMINATED, CLASS_REVERSED };

/* Parses the class that starts at p (just after '['), deciding whether c is in
 * it. Returns the position after the closing ']' and sets *status; on
 * CLASS_UNTERMINATED the return value is NULL. A ']' right after '[', '[!' or
 * '[^' is a member, not the end; '-' first or last is a member too. */
static const char *class_match(const char *p, uint32_t c, bool *in, enum class_status *status)
{
	bool negate = false, found = false;
	*status = CLASS_OK;
	if (*p == '!' || *p == '^') {
		negate = true;
		p++;
	}
	bool first = true;
	for (;;) {
		if (*p == '\0') {
			*status = CLASS_UNTERMINATED;
			return NULL;
		}
		if (*p == ']' && !first)
			break;
		first = false;
		uint32_t lo, hi;
		const char *q = pattern_char(p, &lo);
		if (!q) {
			*status = CLASS_UNTERMINATED;
			return NULL;
		}
		p = q;
		hi = lo;
		if (p[0] == '-' && p[1] != ']' && p[1] != '\0') {
			q = pattern_char(p + 1, &hi);
			if (!q) {
				*status = CLASS_UNTERMINATED;
				return NULL;
			}
			p = q;
			if (hi < lo)
				*status = CLASS_REVERSED; /* matches nothing; glob_check reports it */
		}
		if (c >= lo && c <= hi)
			found = true;
	}
	*in = found != negate;
	return p + 1;
}

/* Tries one pattern element at p against the character at t (not at the NUL).
 * Returns the pattern position after the element when it matches, else NULL;
 * *tlen is the length of the text character. */
static const char *match_element(const char *p, const char *t, size_t *tlen)
{
	uint32_t c = utf8_decode(t, tlen);
	if (*p == '?')
		return p + 1;
	if (*p == '[') {
		bool in = false;
		enum class_status st;
		const char *end = class_match(p + 1, c, &in, &st);
		if (end)
			return in ? end : NULL;
		/* Unterminated: the '[' is an ordinary character. */
		return c == '[' ? p + 1 : NULL;
	}
	uint32_t pc;
	const char *next = pattern_char(p, &pc);
	if (!next) /* trailing backslash: a literal backslash */
		return c == '\\' ? p + 1 : NULL;
	return pc == c ? next : NULL;
}

/* Classic iterative matching: on a mismatch, let the most recent '*' swallow one
 * more character and retry from just after it. Backtracking to earlier stars is
 * never needed because '*' matches anything, so the cost is O(len(p) * len(t)). */
bool glob_match(const char *pattern, const char *text)
{
	if (!pattern)
		return false;
	if (!text)
		text = "";
	const char *p = pattern, *t = text;
	const char *star_p = NULL, *star_t = NULL;
	for (;;) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (!*p)
				return true;
			star_p = p;
			star_t = t;
			continue;
		}
		if (!*t) {
			/* Only stars could match the empty rest, and those returned above. */
			return !*p;
		}
		size_t tlen;
		const char *next = *p ? match_element(p, t, &tlen) : NULL;
		if (next) {
			p = next;
			t += tlen;
			continue;
		}
		if (!star_p)
			return false;
		utf8_decode(star_t, &tlen);
		star_t += tlen;
		t = star_t;
		p = star_p;
	}
}

const char *glob_check(const char *pattern)
{
	if (!pattern || !*pattern)
		return "empty pattern";
	for (const char *p = pattern; *p;) {
		size_t n;
		if (is_escaped_byte(utf8_decode(p, &n)))
			return "not valid UTF-8";
		p += n;
	}
	for (const char *p = pattern; *p;) {
		if (*p == '\\') {
			if (!p[1])
				return "trailing backslash";
			p += 2; /* the escaped byte; continuation bytes after it are skipped below */
		} else if (*p == '[') {
			bool in;
			enum class_status st;
			const char *end = class_match(p + 1, 0, &in, &st);
			if (st == CLASS_UNTERMINATED)
				return "unterminated [";
			if (st == CLASS_REVERSED)
				return "range out of order in [...]";
			p = end;
		} else {
			p++;
		}
	}
	return NULL;
}

/* ---- explanations ---- */

/* Longest value shown in an explanation (route.h says 200); route inputs are short,
 * and a hostile one must not turn a log line into a megabyte. */
#define WHY_MAX_CHARS 200

bool route_escape_value(struct strbuf *out, const char *value)
{
	size_t chars = 0;
	for (const char *s = value ? value : ""; *s;) {
		if (chars++ == WHY_MAX_CHARS)
			return true;
		size_t n;
		uint32_t cp = utf8_decode(s, &n);
		if (cp == '"' || cp == '\\') {
			strbuf_putc(out, '\\');
			strbuf_putc(out, (char)cp);
		} else if (cp == '\n') {
			strbuf_puts(out, "\\n");
		} else if (cp == '\t') {
			strbuf_puts(out, "\\t");
		} else if (cp == '\r') {
			strbuf_puts(out, "\\r");
		} else if (cp < 0x20 || cp == 0x7F) {
			strbuf_printf(out, "\\x%02x", (unsigned)cp);
		} else if (is_escaped_byte(cp)) {
			strbuf_printf(out, "\\x%02x", (unsigned)(cp & 0xFF));
		} else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x200E || cp == 0x200F ||
		           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
		           cp == 0xFEFF) {
			/* C1 controls, bidi marks and overrides, line/paragraph separators, BOM. */
			strbuf_printf(out, "\\u%04x", (unsigned)cp);
		} else {
			strbuf_append(out, s, n);
		}
		s += n;
	}
	return false;
}

void route_quote_value(struct strbuf *out, const char *value)
{
	strbuf_putc(out, '"');
	bool cut = route_escape_value(out, value);
	strbuf_putc(out, '"');
	if (cut)
		strbuf_puts(out, "...");
}

static void put_value(struct strbuf *sb, const char *v)
{
	route_quote_value(sb, v);
	if (!v)
		strbuf_puts(sb, " (missing)");
}

static void put_pattern_list(struct strbuf *sb, const struct route_globs *g)
{
	if (g->n == 0) {
		strbuf_puts(sb, "(an empty list)");
		return;
	}
	for (size_t i = 0; i < g->n; i++) {
		if (i)
			strbuf_puts(sb, ", ");
		route_quote_value(sb, g->patterns[i]);
	}
}

/* ---- rules ---- */

static const char *event_value(const struct zuul_event *ev, enum route_field f)
{
	switch (f) {
	case ROUTE_TENANT:
		return ev->tenant;
	case ROUTE_PIPELINE:
		return ev->pipeline;
	case ROUTE_ACTION:
		return ev->action;
	case ROUTE_BUILDSET_RESULT:
		return ev->buildset_result;
	case ROUTE_PROJECT:
	case ROUTE_BRANCH:
	case ROUTE_BUILD_RESULT:
	case ROUTE_NFIELDS:
		break;
	}
	return NULL;
}

/* Projects and branches belong to each change of the item (several in a dependency cycle),
 * so they are matched change by change, together. */
static bool is_change_field(int f)
{
	return f == ROUTE_PROJECT || f == ROUTE_BRANCH;
}

static const char *change_value(const struct zuul_change *c, enum route_field f)
{
	return f == ROUTE_PROJECT ? c->project : c->branch;
}

/* Index of the first pattern of g matching v (NULL matched as ""), or -1. */
static long first_match(const struct route_globs *g, const char *v)
{
	for (size_t i = 0; i < g->n; i++)
		if (glob_match(g->patterns[i], v ? v : ""))
			return (long)i;
	return -1;
}

/* " matches PATTERN" for the pattern at index i, or " matches none of P1, P2" when i < 0. */
static void put_verdict(struct strbuf *why, const struct route_globs *g, long i)
{
	if (i >= 0) {
		strbuf_puts(why, " matches ");
		route_quote_value(why, g->patterns[i]);
	} else {
		strbuf_puts(why, " matches none of ");
		put_pattern_list(why, g);
	}
}

/* Whether build result r (or, for a job's custom text, the result it stands for) matches g:
 * a failure-message replaces FAILURE, TIMED_OUT... in the payload, and a rule on
 * build_results = ["FAILURE"] must still see that build fail. */
static long build_match(const struct route_globs *g, const struct zuul_build *b, bool *by_meaning)
{
	long i = first_match(g, b->result);
	*by_meaning = false;
	if (i < 0 && b->custom_result && b->custom_means) {
		i = first_match(g, b->custom_means);
		*by_meaning = i >= 0;
	}
	return i;
}

/* Whether the non-change field f of ev matches g; explains into why (may be NULL) with the
 * given prefix ("match" or "exclude"). */
static bool field_matches(const struct route_globs *g, enum route_field f,
                          const struct zuul_event *ev, const char *prefix, struct strbuf *why)
{
	if (f != ROUTE_BUILD_RESULT) {
		const char *v = event_value(ev, f);
		long i = first_match(g, v);
		if (why) {
			strbuf_printf(why, "%s %s: ", prefix, field_keys[f]);
			put_value(why, v);
			put_verdict(why, g, i);
		}
		return i >= 0;
	}

	/* Any build decides; with no builds the field is one missing value. */
	if (ev->n_builds == 0) {
		long i = first_match(g, NULL);
		if (why) {
			strbuf_printf(why, "%s %s: no builds, \"\"", prefix, field_keys[f]);
			put_verdict(why, g, i);
		}
		return i >= 0;
	}
	for (size_t b = 0; b < ev->n_builds; b++) {
		const struct zuul_build *build = &ev->builds[b];
		bool by_meaning;
		long i = build_match(g, build, &by_meaning);
		if (i < 0)
			continue;
		if (why) {
			strbuf_printf(why, "%s %s: ", prefix, field_keys[f]);
			put_value(why, build->result);
			strbuf_puts(why, " (job ");
			route_quote_value(why, build->job_name);
			if (by_meaning)
				strbuf_printf(why, ", the job's own text for %s", build->custom_means);
			strbuf_puts(why, ") matches ");
			route_quote_value(why, g->patterns[i]);
		}
		return true;
	}
	if (why) {
		/* List each distinct result once: a buildset can have hundreds of builds. */
		strbuf_printf(why, "%s %s: ", prefix, field_keys[f]);
		size_t shown = 0;
		for (size_t b = 0; b < ev->n_builds; b++) {
			const char *r = ev->builds[b].result;
			bool seen = false;
			for (size_t k = 0; k < b && !seen; k++) {
				const char *o = ev->builds[k].result;
				seen = (r == NULL) == (o == NULL) && (!r || strcmp(r, o) == 0);
			}
			if (seen)
				continue;
			if (shown++)
				strbuf_puts(why, ", ");
			put_value(why, r);
		}
		strbuf_printf(why, " (%zu build%s) match none of ", ev->n_builds,
		              ev->n_builds == 1 ? "" : "s");
		put_pattern_list(why, g);
	}
	return false;
}

/* One line for change field f of change k (of n): the old one-change wording when n is 1. */
static long change_field_explained(const struct route_globs *g, enum route_field f, const struct zuul_change *c,
				   size_t k, size_t n, const char *prefix, struct strbuf *why)
{
	const char *v = change_value(c, f);
	long i = first_match(g, v);
	if (why) {
		strbuf_printf(why, "%s %s: ", prefix, field_keys[f]);
		put_value(why, v);
		if (n > 1)
			strbuf_printf(why, " (change %zu of %zu)", k + 1, n);
		put_verdict(why, g, i);
	}
	return i;
}

/* The match rules on projects and branches: change k is taken when its project and branch
 * both match (each constrained one). Every change is looked at, with or without an
 * explanation, so exclusion sees the same set. Returns whether any change is taken. */
static bool changes_match(const struct route_rules *rules, const struct zuul_change *changes, size_t n,
			  bool *taken, struct strbuf *why)
{
	bool any = false;
	for (size_t k = 0; k < n; k++) {
		taken[k] = true;
		for (int f = ROUTE_PROJECT; f <= ROUTE_BRANCH; f++) {
			const struct route_globs *g = &rules->field[f];
			if (!g->patterns)
				continue;
			if (change_field_explained(g, (enum route_field)f, &changes[k], k, n, "match", why) < 0)
				taken[k] = false;
			if (why)
				strbuf_putc(why, '\n');
		}
		any = any || taken[k];
	}
	return any;
}

/* The exclude rules on projects and branches drop each taken change they match; the report
 * is excluded when no change is left. Returns whether one is left. */
static bool changes_survive_exclusion(const struct route_rules *rules, const struct zuul_change *changes,
				      size_t n, bool *taken, struct strbuf *why)
{
	bool left = false;
	for (size_t k = 0; k < n; k++) {
		if (!taken[k])
			continue;
		for (int f = ROUTE_PROJECT; f <= ROUTE_BRANCH && taken[k]; f++) {
			const struct route_globs *g = &rules->field[f];
			if (!g->patterns)
				continue;
			if (change_field_explained(g, (enum route_field)f, &changes[k], k, n, "exclude", why) >= 0) {
				taken[k] = false;
				if (why)
					strbuf_puts(why, n > 1 ? " -> change excluded" : " -> excluded");
			}
			if (why)
				strbuf_putc(why, '\n');
		}
		left = left || taken[k];
	}
	if (!left && why && n > 1)
		strbuf_puts(why, "exclude: no change of the item is left -> excluded\n");
	return left;
}

static bool rules_on_changes(const struct route_rules *rules)
{
	return rules->field[ROUTE_PROJECT].patterns || rules->field[ROUTE_BRANCH].patterns;
}

bool route_matches(const struct route *r, const struct zuul_event *ev, struct strbuf *why)
{
	/* zuul_event_changes' list, spelled out: route.c links without zuul.c (owners). */
	size_t n = ev->n_changes ? ev->n_changes : 1;
	const struct zuul_change *changes = ev->n_changes ? ev->changes : &ev->item;
	bool taken_small[16];
	bool *taken = n <= 16 ? taken_small : xcalloc(n, sizeof *taken);
	for (size_t k = 0; k < n; k++)
		taken[k] = true;

	bool matched = true;
	if (!r->has_match) {
		if (why)
			strbuf_puts(why, "match: no match rules, takes every report\n");
	} else {
		/* Without an explanation the first failing field decides; with one,
		 * every field is shown so an operator sees all reasons at once. */
		for (int f = 0; f < ROUTE_NFIELDS && (matched || why); f++) {
			if (is_change_field(f)) {
				/* Both change fields are decided together, at the first one's place. */
				if (f == ROUTE_PROJECT && rules_on_changes(&r->match) &&
				    !changes_match(&r->match, changes, n, taken, why))
					matched = false;
				continue;
			}
			const struct route_globs *g = &r->match.field[f];
			if (!g->patterns)
				continue;
			if (!field_matches(g, (enum route_field)f, ev, "match", why))
				matched = false;
			if (why)
				strbuf_putc(why, '\n');
		}
	}
	/* Exclusion only matters for a report the match rules took. */
	for (int f = 0; f < ROUTE_NFIELDS && matched; f++) {
		if (is_change_field(f)) {
			if (f == ROUTE_PROJECT && rules_on_changes(&r->exclude) &&
			    !changes_survive_exclusion(&r->exclude, changes, n, taken, why))
				matched = false;
			continue;
		}
		const struct route_globs *g = &r->exclude.field[f];
		if (!g->patterns)
			continue;
		if (field_matches(g, (enum route_field)f, ev, "exclude", why)) {
			matched = false;
			if (why)
				strbuf_puts(why, " -> excluded");
		}
		if (why)
			strbuf_putc(why, '\n');
	}
	if (why) {
		strbuf_puts(why, "route ");
		route_escape_value(why, r->name ? r->name : "(unnamed)");
		strbuf_puts(why, matched ? ": matches\n" : ": does not match\n");
	}
	if (taken != taken_small)
		free(taken);
	return matched;
}

void route_rules_clear(struct route_rules *rules)
{
	for (int f = 0; f < ROUTE_NFIELDS; f++) {
		struct route_globs *g = &rules->field[f];
		for (size_t i = 0; i < g->n; i++)
			free(g->patterns[i]);
		free(g->patterns);
		g->patterns = NULL;
		g->n = 0;
	}
}

void route_clear(struct route *r)
{
	free(r->name);
	free(r->room);
	free(r->template_path);
	route_rules_clear(&r->match);
	route_rules_clear(&r->exclude);
	memset(r, 0, sizeof *r);
}
