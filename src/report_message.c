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

/* A block: {text, lines: [{text, first}], preformatted}. Lines lose `strip` leading spaces
 * (a section's two-space indent); leading and trailing blank lines are dropped. NULL when
 * nothing is left. preformatted: a line is still indented, as the YAML excerpts of a
 * configuration error are: show it in <pre>. */
static cJSON *block_new(const struct line *lines, size_t n, size_t strip)
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
	bool pre = false;
	for (size_t i = 0; i < n; i++) {
		const char *s = lines[i].s;
		size_t len = lines[i].n;
		for (size_t k = 0; k < strip && len > 0 && *s == ' '; k++)
			s++, len--;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		pre = pre || (len > 0 && (s[0] == ' ' || s[0] == '\t'));
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

/* The title from the first lines of the main text: joined with spaces until a line ends a
 * sentence, cut at TITLE_MAX on a character boundary with "…". Returns how many lines it
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
		if (ends_sentence(&lines[used++]))
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

static bool indented(const struct line *l)
{
	return l->n > 0 && (l->s[0] == ' ' || l->s[0] == '\t');
}

/* Appends the paragraphs (blocks split at blank lines) of lines to arr. Indented paragraphs
 * in a row stay one block, blank lines included: a configuration error's YAML excerpt is
 * one <pre>, not one per blank line. */
static void paragraphs_add(cJSON *arr, const struct line *lines, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (blank(&lines[i])) {
			i++;
			continue;
		}
		size_t start = i, end = i;
		bool pre = false;
		for (;;) {
			while (end < n && !blank(&lines[end])) {
				pre = pre || indented(&lines[end]);
				end++;
			}
			if (!pre)
				break;
			/* Does an indented paragraph follow after the blank lines? */
			size_t next = end;
			while (next < n && blank(&lines[next]))
				next++;
			bool next_pre = false;
			for (size_t k = next; k < n && !blank(&lines[k]); k++)
				next_pre = next_pre || indented(&lines[k]);
			if (next >= n || !next_pre)
				break;
			end = next;
		}
		cJSON *b = block_new(lines + start, end - start, 0);
		if (b)
			cJSON_AddItemToArray(arr, b);
		i = end;
	}
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

static void add_block_or_null(cJSON *view, const char *key, cJSON *block)
{
	cJSON_AddItemToObject(view, key, block ? block : cJSON_CreateNull());
}

void report_message_add(cJSON *view, const char *message, const char *fallback_title)
{
	bool cut = false;
	size_t len = message ? message_length(message, &cut) : 0;

	/* Split into lines ('\r' before '\n' is dropped). */
	size_t cap = 16, n = 0;
	struct line *lines = xmalloc(cap * sizeof *lines);
	for (size_t i = 0; message && i <= len;) {
		size_t e = i;
		while (e < len && message[e] != '\n')
			e++;
		if (n == cap)
			lines = xrealloc(lines, (cap *= 2) * sizeof *lines);
		size_t ln = e - i;
		if (ln > 0 && message[i + ln - 1] == '\r')
			ln--;
		lines[n++] = (struct line){message + i, ln};
		i = e + 1;
	}

	/* Parts: the main text up to the first section header; each section up to its blank
	 * line; whatever follows a section is the footer. A message that starts with an empty
	 * line has no text of its own (an empty enqueue- or no-jobs-message): what is not a
	 * section there is the footer too. */
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
		footer = block_new(lines, main_end, 0);
	else
		paragraphs_add(paragraphs, lines + title_lines, main_end - title_lines);

	cJSON *warnings = cJSON_CreateArray();
	/* Zuul writes one debug section; should there be more, their lines make one block. */
	struct line *debug_lines = xmalloc((n + 1) * sizeof *debug_lines);
	size_t n_debug = 0;
	for (size_t i = main_end; i < n;) {
		enum part p = header_of(&lines[i]);
		if (p == PART_MAIN) {
			/* Text after a section that is no section: the footer (up to the next
			 * header, should Zuul ever add one after it). */
			size_t e = i;
			while (e < n && header_of(&lines[e]) == PART_MAIN)
				e++;
			cJSON *b = block_new(lines + i, e - i, 0);
			if (b) {
				cJSON_Delete(footer);
				footer = b;
			}
			i = e;
			continue;
		}
		size_t e = i + 1;
		while (e < n && !blank(&lines[e]) && header_of(&lines[e]) == PART_MAIN)
			e++;
		if (p == PART_WARNING) {
			cJSON *b = block_new(lines + i + 1, e - i - 1, 2);
			if (b)
				cJSON_AddItemToArray(warnings, b);
		} else {
			memcpy(debug_lines + n_debug, lines + i + 1, (e - i - 1) * sizeof *lines);
			n_debug += e - i - 1;
		}
		i = e;
	}
	cJSON *debug = block_new(debug_lines, n_debug, 2);
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
		cJSON *mark = cJSON_CreateObject();
		cJSON *ls = cJSON_CreateArray();
		cJSON *l = cJSON_CreateObject();
		cJSON_AddStringToObject(l, "text", "\xe2\x80\xa6 (message cut)");
		cJSON_AddBoolToObject(l, "first", true);
		cJSON_AddItemToArray(ls, l);
		cJSON_AddStringToObject(mark, "text", "\xe2\x80\xa6 (message cut)");
		cJSON_AddItemToObject(mark, "lines", ls);
		cJSON_AddBoolToObject(mark, "preformatted", false);
		cJSON_AddItemToArray(paragraphs, mark);
	}

	const char *summary = title.len ? strbuf_str(&title) : NULL;
	cJSON_AddItemToObject(view, "message_summary", summary ? cJSON_CreateString(summary) : cJSON_CreateNull());
	cJSON_AddBoolToObject(view, "has_message", summary != NULL);
	cJSON_AddItemToObject(view, "title", cJSON_CreateString(summary ? summary : fallback_title ? fallback_title : ""));
	cJSON *body_value = body.len ? cJSON_CreateString(strbuf_str(&body)) : cJSON_CreateNull();
	cJSON_AddItemToObject(view, "message_body", body_value);
	cJSON_AddItemToObject(view, "message_details", cJSON_Duplicate(body_value, true));
	cJSON_AddBoolToObject(view, "has_message_body", cJSON_GetArraySize(paragraphs) > 0);
	cJSON_AddItemToObject(view, "message_paragraphs", paragraphs);
	cJSON_AddBoolToObject(view, "has_message_warnings", cJSON_GetArraySize(warnings) > 0);
	cJSON_AddItemToObject(view, "message_warnings", warnings);
	add_block_or_null(view, "message_debug", debug);
	add_block_or_null(view, "message_footer", footer);
	cJSON_AddBoolToObject(view, "message_cut", cut);
	strbuf_free(&title);
	strbuf_free(&body);
}
