/* incident_render: an incident as Matrix message content (body and formatted_body), cut to
 * stay under Matrix's event size; the tracker's decisions live in incident.c. */
#include "incident.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "incident_internal.h"
#include "strbuf.h"
#include "textutil.h"

/* Past this much body + formatted_body the member list is cut: the whole event must stay
 * under Matrix's 64 KiB, and JSON escaping of quotes adds a little. */
#define CONTENT_BUDGET 40000
/* A single value longer than this is cut with "..." (UTF-8 safe). */
#define VALUE_MAX 200

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max, bool *cut)
{
	size_t n = strlen(s);
	*cut = n > max;
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Appends s as text: control bytes become '?', overly long values are cut. */
static void put_text(struct strbuf *sb, const char *s)
{
	bool cut;
	size_t n = utf8_cut(nz(s), VALUE_MAX, &cut);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		strbuf_putc(sb, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	if (cut)
		strbuf_puts(sb, "...");
}

static void put_html(struct strbuf *sb, const char *s)
{
	bool cut;
	size_t n = utf8_cut(nz(s), VALUE_MAX, &cut);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '&': strbuf_puts(sb, "&amp;"); break;
		case '<': strbuf_puts(sb, "&lt;"); break;
		case '>': strbuf_puts(sb, "&gt;"); break;
		case '"': strbuf_puts(sb, "&quot;"); break;
		case '\'': strbuf_puts(sb, "&#39;"); break;
		default: strbuf_putc(sb, c < 0x20 || c == 0x7f ? '?' : (char)c);
		}
	}
	if (cut)
		strbuf_puts(sb, "...");
}

/* URLs that passed textutil_url_is_safe: no quotes or angle brackets, only '&' needs escaping. */
static void put_href(struct strbuf *sb, const char *url)
{
	for (const char *p = url; *p; p++) {
		if (*p == '&')
			strbuf_puts(sb, "&amp;");
		else
			strbuf_putc(sb, *p);
	}
}

static void put_time(struct strbuf *sb, int64_t ms, bool with_date)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];
	if (!gmtime_r(&s, &tm) || strftime(buf, sizeof buf, with_date ? "%Y-%m-%d %H:%M UTC" : "%H:%M UTC", &tm) == 0)
		strcpy(buf, "?");
	strbuf_puts(sb, buf);
}

static bool same_utc_day(int64_t a_ms, int64_t b_ms)
{
	return a_ms / 86400000 == b_ms / 86400000;
}

static void put_window(struct strbuf *sb, long long s)
{
	if (s % 3600 == 0)
		strbuf_printf(sb, "%lld hour%s", s / 3600, s == 3600 ? "" : "s");
	else if (s % 60 == 0)
		strbuf_printf(sb, "%lld minute%s", s / 60, s == 60 ? "" : "s");
	else
		strbuf_printf(sb, "%lld second%s", s, s == 1 ? "" : "s");
}

/* One member as it appears in a project's line: the job, linked to its build, and the
 * result when it says more than the cause. */
static void member_render(const struct incident *inc, const struct member *m, struct strbuf *text, struct strbuf *html)
{
	const char *job = m->job ? m->job : "(unknown job)";
	bool show_result = inc->by_spread || !str_eq(m->result, inc->cause);
	put_text(text, job);
	if (show_result) {
		strbuf_puts(text, " (");
		put_text(text, m->result);
		strbuf_puts(text, ")");
	}
	if (textutil_url_is_safe(m->url)) {
		strbuf_puts(text, " <");
		strbuf_puts(text, m->url);
		strbuf_puts(text, ">");
		strbuf_puts(html, "<a href=\"");
		put_href(html, m->url);
		strbuf_puts(html, "\">");
		put_html(html, job);
		strbuf_puts(html, "</a>");
	} else {
		put_html(html, job);
	}
	if (show_result) {
		strbuf_puts(html, " (");
		put_html(html, m->result);
		strbuf_puts(html, ")");
	}
}

static void add_string(cJSON *obj, const char *key, const char *value)
{
	cJSON_AddItemToObject(obj, key, cJSON_CreateString(value));
}

cJSON *incident_content_new(const struct incident_tracker *t, const char *id, int64_t now_ms)
{
	const struct incident *inc = incident_find(t, id);
	if (!inc)
		return NULL;
	struct incident_info info;
	incident_get(t, id, &info);
	bool closed = inc->closed || now_ms - inc->last_ms >= window_ms(t);
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;

	strbuf_puts(&text, "Infrastructure incident in tenant ");
	put_text(&text, inc->tenant[0] ? inc->tenant : "(none)");
	strbuf_puts(&text, ": ");
	strbuf_puts(&html, "<p><strong>Infrastructure incident</strong> in tenant <code>");
	put_html(&html, inc->tenant[0] ? inc->tenant : "(none)");
	strbuf_puts(&html, "</code>: <strong>");
	if (inc->by_spread) {
		strbuf_puts(&text, "job ");
		put_text(&text, inc->job);
		strbuf_printf(&text, " failed on %zu projects", info.n_projects);
		strbuf_puts(&html, "job <code>");
		put_html(&html, inc->job);
		strbuf_printf(&html, "</code> failed on %zu projects", info.n_projects);
	} else {
		put_text(&text, inc->cause);
		put_html(&html, inc->cause);
	}
	strbuf_puts(&html, "</strong></p>\n");
	strbuf_puts(&text, "\n");

	struct strbuf line = STRBUF_INIT;
	strbuf_printf(&line, "%zu failed build%s in %zu project%s, first seen ", info.n_members,
	              info.n_members == 1 ? "" : "s", info.n_projects, info.n_projects == 1 ? "" : "s");
	put_time(&line, inc->opened_ms, true);
	strbuf_puts(&line, ", last seen ");
	put_time(&line, inc->last_ms, !same_utc_day(inc->opened_ms, inc->last_ms));
	if (!closed) {
		strbuf_puts(&line, "; open until ");
		put_window(&line, t->window_s);
		strbuf_puts(&line, " pass without a new failure");
	}
	strbuf_printf(&text, "%s\n", strbuf_str(&line));
	strbuf_printf(&html, "<p>%s</p>\n<ul>\n", strbuf_str(&line));
	strbuf_free(&line);

	/* Projects in the order they first appeared, each with its jobs. */
	bool *done = xcalloc(inc->n_members ? inc->n_members : 1, sizeof *done);
	size_t shown = 0;
	bool full = false;
	struct strbuf mt = STRBUF_INIT, mh = STRBUF_INIT;
	for (size_t i = 0; i < inc->n_members && !full; i++) {
		if (done[i])
			continue;
		const char *project = inc->members[i].project;
		const char *shown_project = project && *project ? project : "(unknown project)";
		bool first = true;
		for (size_t k = i; k < inc->n_members; k++) {
			if (done[k] || !str_eq(inc->members[k].project, project))
				continue;
			strbuf_reset(&mt);
			strbuf_reset(&mh);
			/* The project's head goes with its first job, so a cut never leaves a bare head. */
			if (first) {
				strbuf_puts(&mt, "- ");
				put_text(&mt, shown_project);
				strbuf_puts(&mt, ": ");
				strbuf_puts(&mh, "<li><strong>");
				put_html(&mh, shown_project);
				strbuf_puts(&mh, "</strong>: ");
			} else {
				strbuf_puts(&mt, ", ");
				strbuf_puts(&mh, ", ");
			}
			member_render(inc, &inc->members[k], &mt, &mh);
			if (text.len + html.len + mt.len + mh.len > CONTENT_BUDGET) {
				full = true;
				break;
			}
			strbuf_puts(&text, strbuf_str(&mt));
			strbuf_puts(&html, strbuf_str(&mh));
			done[k] = true;
			first = false;
			shown++;
		}
		if (!first) {
			strbuf_puts(&text, "\n");
			strbuf_puts(&html, "</li>\n");
		}
	}
	strbuf_free(&mt);
	strbuf_free(&mh);
	free(done);
	size_t more = inc->n_members + inc->n_more - shown;
	if (more) {
		strbuf_printf(&text, "and %zu more\n", more);
		strbuf_printf(&html, "<li>and %zu more</li>\n", more);
	}
	strbuf_puts(&html, "</ul>\n");

	if (closed) {
		strbuf_puts(&text, "closed: no new failures since ");
		put_time(&text, inc->last_ms, false);
		strbuf_puts(&html, "<p><em>closed: no new failures since ");
		put_time(&html, inc->last_ms, false);
		strbuf_puts(&html, "</em></p>");
	}
	/* No trailing newline in the body. */
	while (text.len && text.data[text.len - 1] == '\n')
		text.data[--text.len] = '\0';
	while (html.len && html.data[html.len - 1] == '\n')
		html.data[--html.len] = '\0';

	cJSON *content = cJSON_CreateObject();
	/* A notice that pings nobody; mentioning the on-call makes it m.text (relations.h). */
	add_string(content, "msgtype", "m.notice");
	add_string(content, "body", strbuf_str(&text));
	add_string(content, "format", "org.matrix.custom.html");
	add_string(content, "formatted_body", strbuf_str(&html));
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	strbuf_free(&text);
	strbuf_free(&html);
	return content;
}

