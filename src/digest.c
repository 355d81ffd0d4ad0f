/* digest: when the daily digest is due, what it says, and which reports that arrived while the
 * bridge was away are folded into one catch-up summary. Local times use the system tz database. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* tm_gmtoff, tm_zone */
#endif
#include "digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "rotation.h"
#include "strbuf.h"
#include "textutil.h"

#define MINUTES_PER_DAY (24 * 60)
/* The Matrix spec's limit for room and event ids; longer ones are not linked. */
#define MATRIX_ID_MAX 255
/* Room left for the "... and N more." tail and closing tags within DIGEST_BYTES_MAX. */
#define TAIL_RESERVE 96

static const char *const weekday_abbr[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_abbr[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Milliseconds to seconds round down, also before 1970. */
static long long floor_div(long long a, long long b)
{
	long long q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Local time goes through rotation.h's zone scope and conversion, so the rotation and the
 * digest read the clock alike; only the gap policy differs (see "Schedule" in the header). */
time_t digest_next_at(int minute, const char *timezone, time_t after)
{
	if (minute < 0 || minute >= MINUTES_PER_DAY)
		return 0;
	struct rotation_tz_scope tz;
	rotation_tz_enter(&tz, timezone);
	long long day = rotation_local_days_at(after);
	time_t t = 0;
	/* Today's, else tomorrow's; the third day only guards against a zone that skips a whole
	 * calendar day (Pacific/Apia, 2011-12-30), where the day arithmetic lands on a day that
	 * maps back before `after`. */
	for (int i = 0; i < 3; i++) {
		t = rotation_local_to_utc(day + i, minute, ROTATION_GAP_TRANSITION);
		if (t > after)
			break;
	}
	rotation_tz_leave(&tz);
	return t;
}

static char *format_local(time_t t, const char *timezone, bool with_time, char *buf, size_t buflen)
{
	if (!buf || buflen == 0)
		return buf;
	struct rotation_tz_scope tz;
	struct tm tm;
	rotation_tz_enter(&tz, timezone);
	if (localtime_r(&t, &tm) && tm.tm_wday >= 0 && tm.tm_wday < 7 && tm.tm_mon >= 0 && tm.tm_mon < 12) {
		if (with_time)
			snprintf(buf, buflen, "%s %d %s %d %02d:%02d %s", weekday_abbr[tm.tm_wday], tm.tm_mday,
				 month_abbr[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
				 tm.tm_zone ? tm.tm_zone : "");
		else
			snprintf(buf, buflen, "%s %d %s %d", weekday_abbr[tm.tm_wday], tm.tm_mday,
				 month_abbr[tm.tm_mon], tm.tm_year + 1900);
	} else {
		snprintf(buf, buflen, "@%lld", (long long)t);
	}
	rotation_tz_leave(&tz); /* after the copy: tm_zone points into glibc's zone data */
	return buf;
}

char *digest_format_time(time_t t, const char *timezone, char *buf, size_t buflen)
{
	return format_local(t, timezone, true, buf, buflen);
}

char *digest_format_date(time_t t, const char *timezone, char *buf, size_t buflen)
{
	return format_local(t, timezone, false, buf, buflen);
}

/* "2026-03-10 07:00" in UTC, for the catch-up summary. */
static void format_utc(int64_t ms, char *buf, size_t buflen)
{
	time_t t = (time_t)floor_div(ms, 1000);
	struct tm tm;
	if (gmtime_r(&t, &tm))
		snprintf(buf, buflen, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min);
	else
		snprintf(buf, buflen, "@%lld", (long long)t);
}

/* ---- text helpers ---- */

/* Appends s to both buffers: as is to text, escaped to html; control characters become
 * spaces (one line stays one line), and past max bytes it is cut at a UTF-8 boundary
 * with "…". */
static void put_both(struct strbuf *text, struct strbuf *html, const char *s, size_t max)
{
	struct strbuf clean = STRBUF_INIT;
	size_t len = strlen(s);
	bool cut = len > max;
	if (cut) {
		len = max > 3 ? max - 3 : 0; /* room for the ellipsis */
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		strbuf_putc(&clean, (c < 0x20 || c == 0x7f) ? ' ' : (char)c);
	}
	if (cut)
		strbuf_puts(&clean, "\xe2\x80\xa6");
	strbuf_puts(text, strbuf_str(&clean));
	strbuf_puts_html(html, strbuf_str(&clean));
	strbuf_free(&clean);
}

static cJSON *notice_new(const char *text, const char *html)
{
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "msgtype", "m.notice");
	cJSON_AddStringToObject(content, "body", text);
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", html);
	/* Present and empty: nobody is pinged, and clients that honour intentional mentions do
	 * not fall back to matching user ids in the body. */
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	return content;
}

/* Whether one more line still fits the message's budget. */
static bool line_fits(size_t shown, const struct strbuf *text, const struct strbuf *html,
		      const struct strbuf *line_text, const struct strbuf *line_html)
{
	if (shown >= DIGEST_LINES_MAX)
		return false;
	if (shown == 0)
		return true; /* one capped line always fits; a digest is never empty */
	return text->len + line_text->len + TAIL_RESERVE <= DIGEST_BYTES_MAX &&
	       html->len + line_html->len + TAIL_RESERVE <= DIGEST_BYTES_MAX;
}

static void put_more(struct strbuf *text, struct strbuf *html, size_t more)
{
	if (!more)
		return;
	strbuf_printf(text, "\n... and %zu more.", more);
	strbuf_printf(html, "<p>... and %zu more.</p>", more);
}

/* ---- the daily digest ---- */

struct by_opened {
	const struct digest_failure *f;
	size_t index;
};

static int cmp_opened(const void *a, const void *b)
{
	const struct by_opened *x = a, *y = b;
	if (x->f->opened_ms != y->f->opened_ms)
		return x->f->opened_ms < y->f->opened_ms ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static bool linkable(const char *id)
{
	return id && *id && strlen(id) <= MATRIX_ID_MAX;
}

static void digest_line(const struct digest_failure *f, int64_t now_ms, struct strbuf *text, struct strbuf *html)
{
	struct strbuf link = STRBUF_INIT;
	if (linkable(f->room_id) && linkable(f->event_id)) {
		textutil_matrix_to_event(&link, f->room_id, f->event_id);
	}
	strbuf_puts(text, "\n- ");
	strbuf_puts(html, "<li>");
	if (link.len) {
		/* The URL is made of unreserved characters and %XX only: nothing to escape. */
		strbuf_printf(html, "<a href=\"%s\">", strbuf_str(&link));
	}
	put_both(text, html, f->what ? f->what : "?", DIGEST_WHAT_MAX);
	if (link.len)
		strbuf_puts(html, "</a>");

	char age[32];
	duration_format((double)(now_ms - f->opened_ms) / 1000.0, age, sizeof age);
	strbuf_printf(text, ": open %s", age);
	strbuf_printf(html, ": open %s", age);
	if (f->count > 1) {
		strbuf_printf(text, ", failed %lld times", (long long)f->count);
		strbuf_printf(html, ", failed %lld times", (long long)f->count);
	}

	size_t n_owners = 0; /* the non-empty ids */
	for (size_t i = 0; f->owners && i < f->n_owners; i++)
		n_owners += f->owners[i] && *f->owners[i];
	size_t named = 0;
	for (size_t i = 0; f->owners && i < f->n_owners && named < DIGEST_OWNERS_MAX; i++) {
		if (!f->owners[i] || !*f->owners[i])
			continue;
		const char *sep = named ? ", " : n_owners > 1 ? ", owners " : ", owner ";
		strbuf_puts(text, sep);
		strbuf_puts(html, sep);
		put_both(text, html, f->owners[i], MATRIX_ID_MAX);
		named++;
	}
	if (n_owners > named) {
		strbuf_printf(text, " and %zu more", n_owners - named);
		strbuf_printf(html, " and %zu more", n_owners - named);
	}
	if (n_owners == 0) {
		strbuf_puts(text, ", no owner");
		strbuf_puts(html, ", no owner");
	}
	if (link.len)
		strbuf_printf(text, " %s", strbuf_str(&link));
	strbuf_puts(html, "</li>");
	strbuf_free(&link);
}

cJSON *digest_content_new(const struct digest_failure *f, size_t n, int64_t now_ms, const char *timezone)
{
	if (n == 0 || !f)
		return NULL;
	struct by_opened *order = xcalloc(n, sizeof *order);
	for (size_t i = 0; i < n; i++)
		order[i] = (struct by_opened){&f[i], i};
	qsort(order, n, sizeof *order, cmp_opened);

	char date[48];
	digest_format_date((time_t)floor_div(now_ms, 1000), timezone, date, sizeof date);
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;
	const char *noun = n == 1 ? "failure" : "failures";
	strbuf_printf(&text, "Daily digest, %s: %zu open %s nobody has claimed", date, n, noun);
	strbuf_puts(&html, "<p><b>Daily digest, ");
	strbuf_puts_html(&html, date);
	strbuf_printf(&html, "</b>: %zu open %s nobody has claimed</p><ul>", n, noun);

	struct strbuf lt = STRBUF_INIT, lh = STRBUF_INIT;
	size_t shown = 0;
	for (; shown < n; shown++) {
		strbuf_reset(&lt);
		strbuf_reset(&lh);
		digest_line(order[shown].f, now_ms, &lt, &lh);
		if (!line_fits(shown, &text, &html, &lt, &lh))
			break;
		strbuf_puts(&text, strbuf_str(&lt));
		strbuf_puts(&html, strbuf_str(&lh));
	}
	strbuf_puts(&html, "</ul>");
	put_more(&text, &html, n - shown);

	cJSON *content = notice_new(strbuf_str(&text), strbuf_str(&html));
	strbuf_free(&lt);
	strbuf_free(&lh);
	strbuf_free(&text);
	strbuf_free(&html);
	free(order);
	return content;
}

/* ---- catch-up ---- */

bool digest_action_is_failure(const char *action)
{
	static const char *const failures[] = {"failure", "merge-conflict", "merge-failure", "config-error"};
	if (!action)
		return false;
	for (size_t i = 0; i < sizeof failures / sizeof *failures; i++)
		if (strcmp(action, failures[i]) == 0)
			return true;
	return false;
}

static bool is_success(const char *action)
{
	return action && strcmp(action, "success") == 0;
}

static int cmp_field(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int cmp_key(const struct digest_report *a, const struct digest_report *b)
{
	int c = cmp_field(a->route, b->route);
	if (!c)
		c = cmp_field(a->project, b->project);
	if (!c)
		c = cmp_field(a->branch, b->branch);
	if (!c)
		c = cmp_field(a->pipeline, b->pipeline);
	return c;
}

/* qsort has no context argument and the module has no globals: sort pointers to the
 * reports, whose address gives the arrival order within a key. */
static int cmp_report_ptr(const void *a, const void *b)
{
	const struct digest_report *x = *(const struct digest_report *const *)a;
	const struct digest_report *y = *(const struct digest_report *const *)b;
	int c = cmp_key(x, y);
	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/* The reports' addresses, grouped by key, arrival order within a group; caller frees. */
static const struct digest_report **by_key(const struct digest_report *r, size_t n)
{
	const struct digest_report **s = xcalloc(n ? n : 1, sizeof *s);
	for (size_t i = 0; i < n; i++)
		s[i] = &r[i];
	qsort(s, n, sizeof *s, cmp_report_ptr);
	return s;
}

void digest_catch_up_plan(const struct digest_report *r, size_t n, bool *summarise)
{
	if (!summarise)
		return;
	for (size_t i = 0; i < n; i++)
		summarise[i] = false;
	if (!r || n == 0)
		return;
	const struct digest_report **s = by_key(r, n);
	size_t pending = 0; /* failures of the current key not yet followed by a success */
	for (size_t p = 0; p < n; p++) {
		if (p > 0 && cmp_key(s[p - 1], s[p]) != 0)
			pending = 0;
		if (digest_action_is_failure(s[p]->action)) {
			pending++;
		} else if (is_success(s[p]->action) && pending) {
			/* This success recovers every failure since the last success (or the start). */
			for (size_t q = p; pending; q--) {
				if (digest_action_is_failure(s[q - 1]->action)) {
					summarise[s[q - 1] - r] = true;
					pending--;
				}
			}
			summarise[s[p] - r] = true;
		}
	}
	free(s);
}

/* One line of the catch-up summary: a key's summarised reports. */
struct recovered {
	size_t first; /* index of its first summarised failure: line order and `what` */
	size_t failures;
	int64_t first_ms;
	int64_t recovered_ms; /* its last summarised success */
};

static int cmp_recovered(const void *a, const void *b)
{
	const struct recovered *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* "project (branch) pipeline" without the parts that are unknown. */
static void what_of_key(const struct digest_report *r, struct strbuf *out)
{
	if (r->project && *r->project)
		strbuf_puts(out, r->project);
	if (r->branch && *r->branch)
		strbuf_printf(out, "%s(%s)", out->len ? " " : "", r->branch);
	if (r->pipeline && *r->pipeline)
		strbuf_printf(out, "%s%s", out->len ? " " : "", r->pipeline);
	if (!out->len)
		strbuf_puts(out, "?");
}

static void catch_up_line(const struct digest_report *r, const struct recovered *g, struct strbuf *text,
			  struct strbuf *html)
{
	const struct digest_report *f = &r[g->first];
	strbuf_puts(text, "\n- ");
	strbuf_puts(html, "<li>");
	if (f->what) {
		put_both(text, html, f->what, DIGEST_WHAT_MAX);
	} else {
		struct strbuf w = STRBUF_INIT;
		what_of_key(f, &w);
		put_both(text, html, strbuf_str(&w), DIGEST_WHAT_MAX);
		strbuf_free(&w);
	}
	char first[64], recovered[64];
	format_utc(g->first_ms, first, sizeof first);
	format_utc(g->recovered_ms, recovered, sizeof recovered);
	struct strbuf rest = STRBUF_INIT;
	if (g->failures == 1)
		strbuf_puts(&rest, ": failed once");
	else
		strbuf_printf(&rest, ": failed %zu times", g->failures);
	strbuf_printf(&rest, ", first at %s UTC, recovered at %s UTC", first, recovered);
	strbuf_puts(text, strbuf_str(&rest));
	strbuf_puts(html, strbuf_str(&rest));
	strbuf_puts(html, "</li>");
	strbuf_free(&rest);
}

cJSON *digest_catch_up_content_new(const struct digest_report *r, size_t n, const bool *summarise, int64_t away_from_ms,
				   int64_t away_to_ms)
{
	if (!r || !summarise || n == 0)
		return NULL;
	const struct digest_report **s = by_key(r, n);
	struct recovered *lines = xcalloc(n, sizeof *lines);
	size_t n_lines = 0, n_failures = 0;
	bool open = false; /* a line for the current key exists */
	for (size_t p = 0; p < n; p++) {
		if (p > 0 && cmp_key(s[p - 1], s[p]) != 0)
			open = false;
		size_t i = (size_t)(s[p] - r);
		if (!summarise[i])
			continue;
		bool failure = digest_action_is_failure(s[p]->action);
		if (!open) {
			if (!failure)
				continue; /* a success the plan did not pair: nothing to say about it */
			lines[n_lines++] = (struct recovered){i, 0, s[p]->at_ms, s[p]->at_ms};
			open = true;
		}
		struct recovered *g = &lines[n_lines - 1];
		if (failure) {
			g->failures++;
			n_failures++;
		} else if (is_success(s[p]->action)) {
			g->recovered_ms = s[p]->at_ms;
		}
	}
	free(s);
	if (n_failures == 0) {
		free(lines);
		return NULL;
	}
	qsort(lines, n_lines, sizeof *lines, cmp_recovered);

	char from[64], to[64], away[32];
	format_utc(away_from_ms, from, sizeof from);
	format_utc(away_to_ms, to, sizeof to);
	duration_format((double)(away_to_ms - away_from_ms) / 1000.0, away, sizeof away);
	const char *tail = n_failures == 1 ? "failure that has since recovered" : "failures that have since recovered";
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;
	strbuf_printf(&text, "While the bridge was away (%s to %s UTC, %s): %zu %s", from, to, away, n_failures, tail);
	strbuf_printf(&html, "<p><b>While the bridge was away</b> (%s to %s UTC, %s): %zu %s</p><ul>", from, to, away,
		      n_failures, tail);

	struct strbuf lt = STRBUF_INIT, lh = STRBUF_INIT;
	size_t shown = 0;
	for (; shown < n_lines; shown++) {
		strbuf_reset(&lt);
		strbuf_reset(&lh);
		catch_up_line(r, &lines[shown], &lt, &lh);
		if (!line_fits(shown, &text, &html, &lt, &lh))
			break;
		strbuf_puts(&text, strbuf_str(&lt));
		strbuf_puts(&html, strbuf_str(&lh));
	}
	strbuf_puts(&html, "</ul>");
	put_more(&text, &html, n_lines - shown);

	cJSON *content = notice_new(strbuf_str(&text), strbuf_str(&html));
	strbuf_free(&lt);
	strbuf_free(&lh);
	strbuf_free(&text);
	strbuf_free(&html);
	free(lines);
	return content;
}
