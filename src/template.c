/* template: a Mustache engine (spec v1.x without lambdas). A template is parsed once into
 * flat node arrays (one per partial); rendering walks them and only appends to the output. */
#include "template.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Sections and partials nested deeper than this are not descended into, so hostile data or a
 * recursive partial cannot exhaust the C stack; the context stack is sized by it, too. */
#define TEMPLATE_MAX_DEPTH 100
/* A template is trusted but its product over data is not bounded by anything else: nested
 * sections over lists multiply. Past these budgets a render stops and says so once. */
#ifndef TEMPLATE_MAX_STEPS /* a fuzz build may lower it to keep executions fast */
#define TEMPLATE_MAX_STEPS 1000000UL
#endif
#define TEMPLATE_MAX_OUTPUT (16UL * 1024 * 1024)

enum node_kind {
	N_TEXT,     /* literal bytes */
	N_LINE,     /* a source line starts here: a standalone partial's indentation goes here */
	N_VAR,      /* {{name}}, HTML-escaped */
	N_RAW,      /* {{{name}}} or {{& name}} */
	N_SECTION,  /* {{#name}}: children are the nodes up to `end` */
	N_INVERTED, /* {{^name}} */
	N_PARTIAL,  /* {{> name}} */
};

struct node {
	enum node_kind kind;
	size_t off, len; /* the text, or the tag's name, in the unit's source */
	size_t end;      /* sections: index one past the last child */
	size_t partial;  /* N_PARTIAL: index in template.units */
	bool standalone; /* N_PARTIAL: on a line of its own, so its lines get indented */
	size_t ind_off, ind_len; /* N_PARTIAL standalone: that indentation, in the source */
};

/* One parsed source: the main template (units[0]) or one partial. */
struct unit {
	char *name; /* partial name; NULL for the main template */
	char *src;  /* owned; NULL for a missing partial (which renders as "") */
	size_t len;
	struct node *nodes;
	size_t n, cap;
	bool parsed;
};

struct template {
	struct unit **units; /* pointers, so a unit stays put while partials are registered */
	size_t n, cap;
};

/* ---- parsing ---- */

struct open_section {
	size_t node; /* index of the N_SECTION/N_INVERTED node */
	int line;
};

struct parser {
	struct template *t;
	struct unit *u;
	const char *s;
	size_t len;
	size_t pos;         /* everything before pos has become nodes */
	size_t line_off;    /* `line` is the line number at this offset */
	int line;
	const char *otag, *ctag; /* current delimiters (point into the source or literals) */
	size_t olen, clen;
	bool at_line_start; /* pos is at the start of a line (no tag before it on that line) */
	bool line_pending;  /* the current line has produced nothing yet: N_LINE still owed */
	struct open_section *open;
	size_t nopen, capopen;
	template_partial_fn partial;
	const char *origin; /* for errors */
	const char *includer; /* for errors in partials: the top template's origin */
	char *err;
	size_t errlen;
};

static void parse_error(struct parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void parse_error(struct parser *p, int line, const char *fmt, ...)
{
	if (!p->err || p->errlen == 0)
		return;
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (p->includer)
		snprintf(p->err, p->errlen, "%s:%d: %s (a partial of %s)", p->origin, line, reason, p->includer);
	else
		snprintf(p->err, p->errlen, "%s:%d: %s", p->origin, line, reason);
}

/* Line number at offset `off`; offsets are asked for in increasing order. */
static int line_at(struct parser *p, size_t off)
{
	for (; p->line_off < off; p->line_off++)
		if (p->s[p->line_off] == '\n')
			p->line++;
	return p->line;
}

/* memmem without relying on _GNU_SOURCE: the fuzz build compiles this file bare. */
static const char *find(const char *s, size_t from, size_t len, const char *needle, size_t nlen)
{
	if (nlen == 0 || from > len)
		return NULL;
	while (len - from >= nlen) {
		const char *c = memchr(s + from, needle[0], len - from - nlen + 1);
		if (!c)
			return NULL;
		if (memcmp(c, needle, nlen) == 0)
			return c;
		from = (size_t)(c - s) + 1;
	}
	return NULL;
}

static bool is_blank(const char *s, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static struct node *push_node(struct parser *p, enum node_kind kind, size_t off, size_t len)
{
	struct unit *u = p->u;
	if (u->n == u->cap) {
		u->cap = u->cap ? u->cap * 2 : 16;
		u->nodes = xrealloc(u->nodes, u->cap * sizeof(*u->nodes));
	}
	struct node *nd = &u->nodes[u->n++];
	memset(nd, 0, sizeof(*nd));
	nd->kind = kind;
	nd->off = off;
	nd->len = len;
	return nd;
}

static void mark_line(struct parser *p)
{
	if (p->line_pending) {
		push_node(p, N_LINE, 0, 0);
		p->line_pending = false;
	}
}

/* Literal text [a, b), cut at newlines so every source line that produces output starts
 * with an N_LINE. Empty lines get none: indenting them would only add trailing spaces. */
static void emit_text(struct parser *p, size_t a, size_t b)
{
	const char *s = p->s;
	while (a < b) {
		const char *nl = memchr(s + a, '\n', b - a);
		size_t e = nl ? (size_t)(nl - s) + 1 : b;
		bool only_eol = (e - a == 1 && s[a] == '\n') || (e - a == 2 && s[a] == '\r' && s[a + 1] == '\n');
		if (!only_eol)
			mark_line(p);
		struct unit *u = p->u;
		struct node *last = u->n ? &u->nodes[u->n - 1] : NULL;
		if (last && last->kind == N_TEXT && last->off + last->len == a)
			last->len += e - a;
		else
			push_node(p, N_TEXT, a, e - a);
		if (nl)
			p->line_pending = true;
		a = e;
	}
}

/* Registers partial `name` (once per name) and returns its unit index; parsed later. */
static size_t partial_unit(struct template *t, const char *name, size_t len)
{
	for (size_t i = 1; i < t->n; i++)
		if (strlen(t->units[i]->name) == len && memcmp(t->units[i]->name, name, len) == 0)
			return i;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4;
		t->units = xrealloc(t->units, t->cap * sizeof(*t->units));
	}
	struct unit *u = xcalloc(1, sizeof(*u));
	u->name = xstrndup(name, len);
	t->units[t->n] = u;
	return t->n++;
}

/* {{=OPEN CLOSE=}}: content is what lies between the two '='. */
static bool set_delimiters(struct parser *p, size_t a, size_t b)
{
	const char *s = p->s;
	while (a < b && is_space(s[a]))
		a++;
	while (b > a && is_space(s[b - 1]))
		b--;
	size_t o_end = a;
	while (o_end < b && !is_space(s[o_end]))
		o_end++;
	size_t c = o_end;
	while (c < b && is_space(s[c]))
		c++;
	if (o_end == a || c == b)
		return false;
	for (size_t i = c; i < b; i++)
		if (is_space(s[i]))
			return false;
	for (size_t i = a; i < b; i++)
		if ((i < o_end || i >= c) && s[i] == '=')
			return false;
	p->otag = s + a;
	p->olen = o_end - a;
	p->ctag = s + c;
	p->clen = b - c;
	return true;
}

static bool parse_unit(struct parser *p)
{
	const char *s = p->s;
	size_t len = p->len;
	p->otag = "{{";
	p->ctag = "}}";
	p->olen = p->clen = 2;
	p->pos = 0;
	p->line = 1;
	p->line_off = 0;
	p->at_line_start = true;
	p->line_pending = true;
	p->nopen = 0;

	while (p->pos < len) {
		const char *hit = find(s, p->pos, len, p->otag, p->olen);
		if (!hit) {
			emit_text(p, p->pos, len);
			p->pos = len;
			break;
		}
		size_t ts = (size_t)(hit - s);
		int tline = line_at(p, ts);
		size_t q = ts + p->olen;
		char sigil = q < len ? s[q] : '\0';
		if (strchr("#^/>&{!=", sigil) && sigil != '\0')
			q++;
		else
			sigil = '\0';

		/* Where the tag ends: {{{x}}} closes with "}" + ctag, {{=a b=}} with "=" + ctag. */
		size_t cend = 0, tend = 0;
		char closer = sigil == '{' ? '}' : sigil == '=' ? '=' : '\0';
		for (size_t from = q;;) {
			const char *c = find(s, from, len, p->ctag, p->clen);
			if (!c) {
				parse_error(p, tline, "unclosed tag (expected %s%.*s)", closer == '}' ? "}" : closer == '=' ? "=" : "",
					    (int)p->clen, p->ctag);
				return false;
			}
			size_t ce = (size_t)(c - s);
			if (!closer) {
				cend = ce;
				tend = ce + p->clen;
				break;
			}
			if (ce > q && s[ce - 1] == closer) {
				cend = ce - 1;
				tend = ce + p->clen;
				break;
			}
			from = ce + 1;
		}

		/* Name: the trimmed content. */
		size_t na = q, nb = cend;
		while (na < nb && is_space(s[na]))
			na++;
		while (nb > na && is_space(s[nb - 1]))
			nb--;
		if (sigil != '!' && sigil != '=') {
			if (na == nb) {
				parse_error(p, tline, "empty tag name (expected a name between %.*s and %.*s)", (int)p->olen,
					    p->otag, (int)p->clen, p->ctag);
				return false;
			}
			for (size_t i = na; i < nb; i++)
				if (is_space(s[i])) {
					parse_error(p, tline, "tag name \"%.*s\" contains whitespace (expected one name)",
						    (int)(nb - na > 64 ? 64 : nb - na), s + na);
					return false;
				}
		}

		/* Standalone: the only thing on its line apart from spaces and tabs. */
		bool standalone = false;
		size_t ls = 0, eol = 0;
		if (sigil && sigil != '&' && sigil != '{') {
			const char *nl = NULL;
			for (size_t i = ts; i > p->pos; i--)
				if (s[i - 1] == '\n') {
					nl = s + i - 1;
					break;
				}
			bool clean = nl ? true : p->at_line_start;
			ls = nl ? (size_t)(nl - s) + 1 : p->pos;
			if (clean && is_blank(s, ls, ts)) {
				size_t e = tend;
				while (e < len && (s[e] == ' ' || s[e] == '\t'))
					e++;
				if (e == len)
					standalone = true, eol = len;
				else if (s[e] == '\n')
					standalone = true, eol = e + 1;
				else if (s[e] == '\r' && e + 1 < len && s[e + 1] == '\n')
					standalone = true, eol = e + 2;
			}
		}
		emit_text(p, p->pos, standalone ? ls : ts);
		if (!standalone && sigil != '!' && sigil != '=')
			mark_line(p);

		switch (sigil) {
		case '!':
			break;
		case '=':
			if (!set_delimiters(p, q, cend)) {
				parse_error(p, tline, "bad set-delimiter tag \"%.*s\" (expected %.*s=OPEN CLOSE=%.*s)",
					    (int)(tend - ts > 64 ? 64 : tend - ts), s + ts, (int)p->olen, p->otag, (int)p->clen,
					    p->ctag);
				return false;
			}
			break;
		case '#':
		case '^': {
			push_node(p, sigil == '#' ? N_SECTION : N_INVERTED, na, nb - na);
			if (p->nopen == p->capopen) {
				p->capopen = p->capopen ? p->capopen * 2 : 8;
				p->open = xrealloc(p->open, p->capopen * sizeof(*p->open));
			}
			p->open[p->nopen].node = p->u->n - 1;
			p->open[p->nopen].line = tline;
			p->nopen++;
			break;
		}
		case '/': {
			int nlen = (int)(nb - na > 64 ? 64 : nb - na);
			if (p->nopen == 0) {
				parse_error(p, tline, "%.*s/%.*s%.*s closes no open section", (int)p->olen, p->otag, nlen,
					    s + na, (int)p->clen, p->ctag);
				return false;
			}
			struct open_section *o = &p->open[p->nopen - 1];
			struct node *sec = &p->u->nodes[o->node];
			if (sec->len != nb - na || memcmp(s + sec->off, s + na, sec->len) != 0) {
				int slen = (int)(sec->len > 64 ? 64 : sec->len);
				parse_error(p, tline, "section \"%.*s\" opened on line %d is closed by \"%.*s\" (expected %.*s/%.*s%.*s)",
					    slen, s + sec->off, o->line, nlen, s + na, (int)p->olen, p->otag, slen,
					    s + sec->off, (int)p->clen, p->ctag);
				return false;
			}
			sec->end = p->u->n;
			p->nopen--;
			break;
		}
		case '>': {
			/* A name with a NUL cannot reach a C-string callback intact: treat it as missing. */
			size_t idx = 0;
			if (p->partial && !memchr(s + na, '\0', nb - na))
				idx = partial_unit(p->t, s + na, nb - na);
			struct node *nd = push_node(p, N_PARTIAL, na, nb - na);
			nd->partial = idx; /* 0 means "none": the main template is never a partial by name */
			nd->standalone = standalone;
			nd->ind_off = ls;
			nd->ind_len = standalone ? ts - ls : 0;
			break;
		}
		case '&':
		case '{':
			push_node(p, N_RAW, na, nb - na);
			break;
		default:
			push_node(p, N_VAR, na, nb - na);
			break;
		}

		if (standalone) {
			p->pos = eol;
			p->at_line_start = true;
			p->line_pending = true;
		} else {
			p->pos = tend;
			p->at_line_start = false;
		}
	}

	if (p->nopen) {
		struct open_section *o = &p->open[p->nopen - 1];
		struct node *sec = &p->u->nodes[o->node];
		int slen = (int)(sec->len > 64 ? 64 : sec->len);
		parse_error(p, o->line, "section \"%.*s\" is never closed (expected %.*s/%.*s%.*s before the end)", slen,
			    s + sec->off, (int)p->olen, p->otag, slen, s + sec->off, (int)p->clen, p->ctag);
		return false;
	}
	return true;
}

/* Returns a new template (caller frees with template_free), or NULL with err set. */
struct template *template_new(const char *src, size_t len, const char *origin, template_partial_fn partial, void *ctx,
			      char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!origin)
		origin = "<string>";
	struct template *t = xcalloc(1, sizeof(*t));
	t->cap = 4;
	t->units = xcalloc(t->cap, sizeof(*t->units));
	struct unit *main_unit = xcalloc(1, sizeof(*main_unit));
	main_unit->src = xmalloc(len + 1);
	if (len)
		memcpy(main_unit->src, src, len);
	main_unit->src[len] = '\0';
	main_unit->len = len;
	t->units[t->n++] = main_unit;

	struct parser p = {
		.t = t, .partial = partial, .origin = origin, .err = err, .errlen = errlen};
	/* Partials are registered while parsing and parsed in turn here, so even a long chain
	 * of partials is a loop, not a recursion; a recursive one is simply found registered. */
	size_t plen = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct unit *u = t->units[i];
		if (i > 0) {
			plen = 0;
			u->src = partial(u->name, &plen, ctx);
			u->len = u->src ? plen : 0;
			p.origin = u->name;
			p.includer = origin;
		}
		u->parsed = true;
		if (!u->src)
			continue;
		p.u = u;
		p.s = u->src;
		p.len = u->len;
		if (!parse_unit(&p)) {
			free(p.open);
			template_free(t);
			return NULL;
		}
	}
	free(p.open);
	return t;
}

void template_free(struct template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->units[i]->name);
		free(t->units[i]->src);
		free(t->units[i]->nodes);
		free(t->units[i]);
	}
	free(t->units);
	free(t);
}

/* ---- rendering ---- */

/* The indentation of nested standalone partials, outermost first, on the C stack. */
struct indent {
	const char *s;
	size_t len;
	const struct indent *up;
};

struct render {
	const struct template *t;
	struct strbuf *out;
	size_t out_start;
	unsigned long steps;
	bool stopped; /* a budget ran out: render nothing more */
	bool warned_depth;
	int top; /* index of the innermost context */
	const cJSON *stack[TEMPLATE_MAX_DEPTH + 2];
};

/* A view has a hundred keys and every {{name}} scans them, context by context: the
 * first byte is compared inline so strncmp runs only for the few plausible keys. */
static const cJSON *object_get(const cJSON *obj, const char *name, size_t len)
{
	if (len == 0) {
		for (const cJSON *c = obj->child; c; c = c->next)
			if (c->string && c->string[0] == '\0')
				return c;
		return NULL;
	}
	const char first = name[0];
	for (const cJSON *c = obj->child; c; c = c->next)
		if (c->string && c->string[0] == first && strncmp(c->string, name, len) == 0 &&
		    c->string[len] == '\0')
			return c;
	return NULL;
}

/* Spec name resolution: the first part is looked up from the innermost context outwards,
 * the rest only inside what it found. NULL when anything misses. */
static const cJSON *lookup(const struct render *r, const char *name, size_t len)
{
	if (len == 1 && name[0] == '.')
		return r->stack[r->top];
	const char *dot = memchr(name, '.', len);
	size_t plen = dot ? (size_t)(dot - name) : len;
	const cJSON *v = NULL;
	for (int i = r->top; i >= 0 && !v; i--)
		if (cJSON_IsObject(r->stack[i]))
			v = object_get(r->stack[i], name, plen);
	while (v && dot) {
		name = dot + 1;
		len -= plen + 1;
		dot = memchr(name, '.', len);
		plen = dot ? (size_t)(dot - name) : len;
		v = cJSON_IsObject(v) ? object_get(v, name, plen) : NULL;
	}
	return v;
}

/* Falsey: missing, null, false, [] and "". Every number (0 too) and {} are truthy. */
static bool truthy(const cJSON *v)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v) || cJSON_IsInvalid(v))
		return false;
	if (cJSON_IsArray(v))
		return v->child != NULL;
	if (cJSON_IsString(v))
		return v->valuestring && v->valuestring[0];
	return true;
}

/* Like JSON: integers without a fraction, otherwise the shortest of %.15g / %.17g that
 * reads back as the same double (1.21 stays 1.21, 1e300 is 1e+300). NaN and infinities
 * cannot come from JSON; they print as nothing, like null. */
static void put_number(struct strbuf *out, double d)
{
	char buf[40];
	if (isnan(d) || isinf(d))
		return;
	if (d > -1e15 && d < 1e15 && d == (double)(long long)d)
		snprintf(buf, sizeof(buf), "%lld", (long long)d);
	else {
		snprintf(buf, sizeof(buf), "%.15g", d);
		if (strtod(buf, NULL) != d)
			snprintf(buf, sizeof(buf), "%.17g", d);
	}
	strbuf_puts(out, buf);
}

/* Arrays and objects interpolate as nothing: there is no one right text for them. */
static void put_value(struct strbuf *out, const cJSON *v, bool escape)
{
	if (!v)
		return;
	if (cJSON_IsString(v) && v->valuestring) {
		if (escape)
			strbuf_puts_html(out, v->valuestring);
		else
			strbuf_puts(out, v->valuestring);
	} else if (cJSON_IsNumber(v))
		put_number(out, v->valuedouble);
	else if (cJSON_IsTrue(v))
		strbuf_puts(out, "true");
	else if (cJSON_IsFalse(v))
		strbuf_puts(out, "false");
}

static void put_indent(struct strbuf *out, const struct indent *ind)
{
	if (!ind)
		return;
	put_indent(out, ind->up);
	strbuf_append(out, ind->s, ind->len);
}

static bool over_budget(struct render *r)
{
	if (r->stopped)
		return true;
	if (++r->steps > (unsigned long)TEMPLATE_MAX_STEPS || r->out->len - r->out_start > TEMPLATE_MAX_OUTPUT) {
		r->stopped = true;
		log_warn("template: rendering stopped: more than %lu steps or %lu bytes; output is truncated",
			 (unsigned long)TEMPLATE_MAX_STEPS, (unsigned long)TEMPLATE_MAX_OUTPUT);
		return true;
	}
	return false;
}

static bool too_deep(struct render *r, int depth)
{
	if (depth < TEMPLATE_MAX_DEPTH)
		return false;
	if (!r->warned_depth) {
		r->warned_depth = true;
		log_warn("template: nesting deeper than %d sections/partials: not descending further", TEMPLATE_MAX_DEPTH);
	}
	return true;
}

static void render_nodes(struct render *r, const struct unit *u, size_t lo, size_t hi, int depth,
			 const struct indent *ind)
{
	for (size_t i = lo; i < hi; i++) {
		if (over_budget(r))
			return;
		const struct node *nd = &u->nodes[i];
		switch (nd->kind) {
		case N_TEXT:
			strbuf_append(r->out, u->src + nd->off, nd->len);
			break;
		case N_LINE:
			put_indent(r->out, ind);
			break;
		case N_VAR:
		case N_RAW:
			put_value(r->out, lookup(r, u->src + nd->off, nd->len), nd->kind == N_VAR);
			break;
		case N_INVERTED:
			if (!truthy(lookup(r, u->src + nd->off, nd->len)) && !too_deep(r, depth))
				render_nodes(r, u, i + 1, nd->end, depth + 1, ind);
			i = nd->end - 1;
			break;
		case N_SECTION: {
			const cJSON *v = lookup(r, u->src + nd->off, nd->len);
			if (truthy(v) && !too_deep(r, depth)) {
				r->top++;
				if (cJSON_IsArray(v)) {
					for (const cJSON *e = v->child; e && !r->stopped; e = e->next) {
						r->stack[r->top] = e;
						render_nodes(r, u, i + 1, nd->end, depth + 1, ind);
					}
				} else {
					r->stack[r->top] = v;
					render_nodes(r, u, i + 1, nd->end, depth + 1, ind);
				}
				r->top--;
			}
			i = nd->end - 1;
			break;
		}
		case N_PARTIAL: {
			const struct unit *pu = nd->partial ? r->t->units[nd->partial] : NULL;
			if (!pu || pu->n == 0 || too_deep(r, depth))
				break;
			/* Standalone: its lines get this indentation on top of ours. Inline: the
			 * partial continues the current line and its lines stay as written. */
			struct indent sub = {u->src + nd->ind_off, nd->ind_len, ind};
			render_nodes(r, pu, 0, pu->n, depth + 1, nd->standalone ? &sub : NULL);
			break;
		}
		}
	}
}

void template_render(const struct template *t, const cJSON *data, struct strbuf *out)
{
	if (!t)
		return;
	struct render r = {.t = t, .out = out, .out_start = out->len};
	r.stack[0] = data;
	render_nodes(&r, t->units[0], 0, t->units[0]->n, 0, NULL);
}
