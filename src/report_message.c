/* report_message: Zuul's report message taken apart the way Zuul put it together, so a report
 * shows all of it: the title, every paragraph, Warning: sections, debug lines and the footer.
 *
 * BaseReporter._formatItemReport (zuul/reporter/__init__.py, 14.3.0) builds the message as
 *     <the action's text>                    e.g. "Build failed." or a config error
 *     "\nWarning:\n  " + warning + "\n"       once per configuration warning / warning message
 *     "\nDebug information:\n  " + lines joined by "\n  " + "\n"
 *     "\n" + pipeline.footer_message
 * so a section starts at a line that is exactly "Warning:" or "Debug information:" and ends
 * at the blank line before the next part; text after the last section is the footer. */
#include "report_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* Longest title, in bytes: a chat message's headline, not the whole log. */
#define TITLE_MAX 500
/* Longest message taken into a report, in bytes: every paragraph of a real report (a
 * configuration error with its YAML excerpt is a few KB), and with HTML and JSON escaping
 * (x6 at worst) still well inside Matrix's 64 KiB event. */
#define MESSAGE_MAX 6000

enum part { PART_MAIN, PART_WARNING, PART_DEBUG, PART_FOOTER };

struct line {
	const char *s;
	size_t n;
};

/* A line as a section header, or PART_MAIN when it is none. */
static enum part header_of(const struct line *l)
{
	size_t n = l->n;
	while (n > 0 && (l->s[n - 1] == ' ' || l->s[n - 1] == '\t'))
		n--;
	if (n == 8 && memcmp(l->s, "Warning:", 8) == 0)
		return PART_WARNING;
	if (n == 18 && memcmp(l->s, "Debug information:", 18) == 0)
		return PART_DEBUG;
	return PART_MAIN;
}

static bool blank(const struct line *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->s[i] != ' ' && l->s[i] != '\t')
			return false;
	return true;
}

/* Copies text, turning control characters other than newline and tab into U+FFFD: they mean
 * nothing in a chat message and JSON would carry each as six bytes. */
static void put_clean(struct strbuf *sb, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			strbuf_puts(sb, "\xef\xbf\xbd");
		else
			strbuf_putc(sb, (char)c);
	}
}

/* A line Zuul indented: part of a YAML excerpt or a quoted error (configloader indents every
 * line of those by two spaces). A "- item" line is a list, not an excerpt. */
static bool indented(const struct line *l)
{
	size_t i = 0;
	while (i < l->n && (l->s[i] == ' ' || l->s[i] == '\t'))
		i++;
	if (i == 0 || i == l->n)
		return false;
	return !(l->n - i >= 2 && l->s[i] == '-' && l->s[i + 1] == ' ');
}

/* A block: {text, lines: [{text, first}], preformatted, first}. Leading and trailing blank
 * lines are dropped; NULL when nothing is left. */
static cJSON *block_new(const struct line *lines, size_t n, bool pre, bool first)
{
	while (n > 0 && blank(&lines[0]))
		lines++, n--;
	while (n > 0 && blank(&lines[n - 1]))
		n--;
	if (n == 0)
		return NULL;
	cJSON *block = cJSON_CreateObject();
	cJSON *arr = cJSON_CreateArray();
	struct strbuf all = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		const char *s = lines[i].s;
		size_t len = lines[i].n;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		struct strbuf one = STRBUF_INIT;
		put_clean(&one, s, len);
		cJSON *line = cJSON_CreateObject();
		cJSON_AddStringToObject(line, "text", strbuf_str(&one));
		cJSON_AddBoolToObject(line, "first", i == 0);
		cJSON_AddItemToArray(arr, line);
		if (i)
			strbuf_putc(&all, '\n');
		strbuf_append(&all, strbuf_str(&one), one.len);
		strbuf_free(&one);
	}
	cJSON_AddStringToObject(block, "text", strbuf_str(&all));
	cJSON_AddItemToObject(block, "lines", arr);
	cJSON_AddBoolToObject(block, "preformatted", pre);
	cJSON_AddBoolToObject(block, "first", first);
	strbuf_free(&all);
	return block;
}

/* Whether a title line ends a sentence (or announces what follows): Zuul hard-wraps its
 * configuration errors ("...while parsing its\nconfiguration in the repo ...  The\nproblem
 * was:"), and those lines belong together; "Build failed." stands alone, so a footer on
 * the next line is not glued to it. */
static bool ends_sentence(const struct line *l)
{
	size_t n = l->n;
	while (n > 0 && (l->s[n - 1] == ' ' || l->s[n - 1] == '\t'))
		n--;
	return n == 0 || strchr(".:!?", l->s[n - 1]) != NULL;
}

/* Whether a line carries on the sentence above it: a hard-wrapped line goes on in lower
 * case ("configuration in the repo ...", "problem was:"); a footer or a new statement starts
 * with a capital, a URL or anything else. */
static bool continues_sentence(const struct line *l)
{
	size_t i = 0;
	while (i < l->n && (l->s[i] == ' ' || l->s[i] == '\t'))
		i++;
	return i < l->n && l->s[i] >= 'a' && l->s[i] <= 'z';
}

/* The title from the first lines of the main text: joined with spaces while a line does not
 * end a sentence and the next one continues it, cut at TITLE_MAX on a character boundary with "…". Returns how many lines it
 * took (0: no title). */
static size_t title_take(const struct line *lines, size_t n, struct strbuf *title)
{
	size_t used = 0;
	while (used < n && !blank(&lines[used])) {
		const char *s = lines[used].s;
		size_t len = lines[used].n;
		while (len > 0 && (*s == ' ' || *s == '\t'))
			s++, len--;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (title->len)
			strbuf_putc(title, ' ');
		put_clean(title, s, len);
		if (ends_sentence(&lines[used++]) || used == n || !continues_sentence(&lines[used]))
			break;
	}
	if (title->len > TITLE_MAX) {
		size_t cut = TITLE_MAX;
		while (cut > 0 && ((unsigned char)title->data[cut] & 0xC0) == 0x80)
			cut--;
		title->len = cut;
		title->data[cut] = '\0';
		strbuf_puts(title, "\xe2\x80\xa6"); /* … */
	}
	return title->len ? used : 0;
}

/* Appends the paragraphs of lines to arr and returns arr: text split at blank lines, and
 * where Zuul's indented excerpts begin and end; indented runs stay one block across blank
 * lines (a YAML excerpt is one <pre>, not one per blank line). */
static cJSON *paragraphs_add(cJSON *arr, const struct line *lines, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (blank(&lines[i])) {
			i++;
			continue;
		}
		bool pre = indented(&lines[i]);
		size_t end = i;
		for (;;) {
			/* An excerpt goes on through its own "- item" lines (a YAML list). */
			while (end < n && !blank(&lines[end]) &&
			       (pre ? lines[end].s[0] == ' ' || lines[end].s[0] == '\t' : !indented(&lines[end])))
				end++;
			if (!pre)
				break;
			size_t next = end;
			while (next < n && blank(&lines[next]))
				next++;
			if (next == end || next >= n || !indented(&lines[next]))
				break;
			end = next;
		}
		cJSON *b = block_new(lines + i, end - i, pre, cJSON_GetArraySize(arr) == 0);
		if (b)
			cJSON_AddItemToArray(arr, b);
		i = end;
	}
	return arr;
}

/* A section's lines without Zuul's two-space indent: on the first line always ("\nWarning:\n  "
 * + text), on the others only when every one has it (lines joined with "\n  ": debug lines,
 * the buildset's warnings); a configuration warning's own continuation lines keep theirs.
 * Returns a new array of n lines (caller frees). */
static struct line *section_dedent(const struct line *lines, size_t n)
{
	struct line *out = xmalloc((n + 1) * sizeof *out);
	bool all = true;
	for (size_t i = 0; i < n; i++)
		if (!blank(&lines[i]) && !(lines[i].n >= 2 && lines[i].s[0] == ' ' && lines[i].s[1] == ' '))
			all = false;
	for (size_t i = 0; i < n; i++) {
		out[i] = lines[i];
		if ((i == 0 || all) && out[i].n >= 2 && out[i].s[0] == ' ' && out[i].s[1] == ' ') {
			out[i].s += 2;
			out[i].n -= 2;
		}
	}
	return out;
}

/* The message cut to MESSAGE_MAX bytes on a character boundary; *cut says whether it was. */
static size_t message_length(const char *message, bool *cut)
{
	size_t n = strlen(message);
	*cut = n > MESSAGE_MAX;
	if (!*cut)
		return n;
	n = MESSAGE_MAX;
	while (n > 0 && ((unsigned char)message[n] & 0xC0) == 0x80)
		n--;
	return n;
}

static void add_or_null(cJSON *view, const char *key, cJSON *item)
{
	cJSON_AddItemToObject(view, key, item ? item : cJSON_CreateNull());
}

/* Splits message[0, len) into lines ('\r' before '\n' dropped); returns them, count in *n. */
static struct line *lines_split(const char *message, size_t len, size_t *n)
{
	size_t cap = 16;
	struct line *lines = xmalloc(cap * sizeof *lines);
	*n = 0;
	for (size_t i = 0; message && i <= len;) {
		size_t e = i;
		while (e < len && message[e] != '\n')
			e++;
		if (*n == cap)
			lines = xrealloc(lines, (cap *= 2) * sizeof *lines);
		size_t ln = e - i;
		if (ln > 0 && message[i + ln - 1] == '\r')
			ln--;
		lines[(*n)++] = (struct line){message + i, ln};
		i = e + 1;
	}
	return lines;
}

/* Where the footer starts in the last section [from, to): the text after its last blank
 * line when that does not start indented (Zuul indents what belongs to a section: its first
 * line, debug lines, quoted errors and excerpts; the footer comes after "\n" unindented).
 * Returns `to` when there is none. A warning whose last paragraph is unindented prose is
 * read as a footer too: shown, only in the wrong place. */
static size_t footer_start(const struct line *lines, size_t from, size_t to)
{
	size_t last_blank = to;
	for (size_t i = from; i < to; i++)
		if (blank(&lines[i]))
			last_blank = i;
	if (last_blank == to)
		return to;
	size_t k = last_blank + 1;
	while (k < to && blank(&lines[k]))
		k++;
	if (k >= to || indented(&lines[k]) || lines[k].s[0] == ' ')
		return to;
	return k;
}

void report_message_add(cJSON *view, const char *message, const char *fallback_title)
{
	bool cut = false;
	size_t len = message ? message_length(message, &cut) : 0;
	size_t n = 0;
	struct line *lines = lines_split(message, len, &n);

	/* The main text runs up to the first section header. A message that starts with an
	 * empty line has no text of its own (an empty enqueue- or no-jobs-message), and
	 * what stands there before any section is the footer. */
	size_t main_end = n;
	for (size_t i = 0; i < n; i++)
		if (header_of(&lines[i]) != PART_MAIN) {
			main_end = i;
			break;
		}
	bool main_empty = n > 0 && lines[0].n == 0;

	struct strbuf title = STRBUF_INIT;
	size_t title_lines = main_empty ? 0 : title_take(lines, main_end, &title);
	cJSON *paragraphs = cJSON_CreateArray();
	cJSON *footer = NULL;
	if (main_empty)
		footer = block_new(lines, main_end, false, true);
	else
		paragraphs_add(paragraphs, lines + title_lines, main_end - title_lines);

	/* Sections: from a header to the next one; the last one may end in the footer. */
	cJSON *warnings = cJSON_CreateArray();
	struct line *debug_lines = xmalloc((n + 1) * sizeof *debug_lines);
	size_t n_debug = 0;
	for (size_t i = main_end; i < n;) {
		enum part p = header_of(&lines[i]);
		size_t e = i + 1;
		while (e < n && header_of(&lines[e]) == PART_MAIN)
			e++;
		size_t end = e;
		if (e == n) {
			size_t f = footer_start(lines, i + 1, e);
			if (f < e) {
				cJSON_Delete(footer);
				footer = block_new(lines + f, e - f, false, true);
				end = f;
			}
		}
		struct line *body = section_dedent(lines + i + 1, end - i - 1);
		if (p == PART_WARNING) {
			cJSON *paras = paragraphs_add(cJSON_CreateArray(), body, end - i - 1);
			if (cJSON_GetArraySize(paras) > 0) {
				cJSON *w = cJSON_CreateObject();
				struct strbuf text = STRBUF_INIT;
				const cJSON *para;
				cJSON_ArrayForEach(para, paras)
				{
					if (text.len)
						strbuf_puts(&text, "\n\n");
					strbuf_puts(&text, cJSON_GetObjectItemCaseSensitive(para, "text")->valuestring);
				}
				cJSON_AddStringToObject(w, "text", strbuf_str(&text));
				cJSON_AddItemToObject(w, "paragraphs", paras);
				cJSON_AddItemToArray(warnings, w);
				strbuf_free(&text);
			} else {
				cJSON_Delete(paras);
			}
		} else {
			/* Zuul writes one debug section; should there be more, they are one. */
			memcpy(debug_lines + n_debug, body, (end - i - 1) * sizeof *body);
			n_debug += end - i - 1;
		}
		free(body);
		i = e;
	}
	cJSON *debug = block_new(debug_lines, n_debug, true, true);
	free(debug_lines);
	free(lines);

	/* message_body: the paragraphs as text, blank lines between them. */
	struct strbuf body = STRBUF_INIT;
	const cJSON *para;
	cJSON_ArrayForEach(para, paragraphs)
	{
		if (body.len)
			strbuf_puts(&body, "\n\n");
		strbuf_puts(&body, cJSON_GetObjectItemCaseSensitive(para, "text")->valuestring);
	}
	if (cut) {
		/* Say so where the reader stops. */
		struct line mark = {"\xe2\x80\xa6 (message cut)", strlen("\xe2\x80\xa6 (message cut)")};
		cJSON_AddItemToArray(paragraphs, block_new(&mark, 1, false, cJSON_GetArraySize(paragraphs) == 0));
	}

	const char *summary = title.len ? strbuf_str(&title) : NULL;
	add_or_null(view, "message_summary", summary ? cJSON_CreateString(summary) : NULL);
	cJSON_AddBoolToObject(view, "has_message", summary != NULL);
	cJSON_AddStringToObject(view, "title", summary ? summary : fallback_title ? fallback_title : "");
	add_or_null(view, "message_body", body.len ? cJSON_CreateString(strbuf_str(&body)) : NULL);
	add_or_null(view, "message_details", body.len ? cJSON_CreateString(strbuf_str(&body)) : NULL);
	cJSON_AddBoolToObject(view, "has_message_body", cJSON_GetArraySize(paragraphs) > 0);
	cJSON_AddItemToObject(view, "message_paragraphs", paragraphs);
	cJSON_AddBoolToObject(view, "has_message_warnings", cJSON_GetArraySize(warnings) > 0);
	cJSON_AddItemToObject(view, "message_warnings", warnings);
	add_or_null(view, "message_debug", debug);
	add_or_null(view, "message_footer", footer);
	cJSON_AddBoolToObject(view, "message_cut", cut);
	strbuf_free(&title);
	strbuf_free(&body);
}
