/* Tests that every message the unit tests can build holds to the HTML the current Matrix spec
 * permits (tests/html_check.h): reports, edits, thread replies, mentions, incidents, digests. */
#include "digest.h"
#include "incident.h"
#include "relations.h"
#include "report.h"

#include <dirent.h>
#include <stdbool.h>

#include "fileutil.h"
#include "html_check.h"
#include "strbuf.h"
#include "test.h"

#ifndef ZMB_SOURCE_ROOT
#define ZMB_SOURCE_ROOT "."
#endif

#define PAYLOAD_DIR ZMB_SOURCE_ROOT "/tests/data/payloads"
#define DEFAULT_TEMPLATE ZMB_SOURCE_ROOT "/templates/default.html"
#define CASES ZMB_SOURCE_ROOT "/tests/data/html-spec-cases.json"

/* A string every escaper must neutralise, used where a test can choose what a user or Zuul says. */
#define HOSTILE "<font color=red>x</font> <script>alert(1)</script> & \"q\" 'a' <a href=javascript:x>"

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */

static const char *str_at(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Fails the current test point, naming what and why, when html breaks the spec's subset. */
static void check_html(const char *what, const char *html)
{
	char why[256];
	if (html && html_check(html, why, sizeof why) != 0) {
		test_current_failed = 1;
		printf("# %s: %s\n#   in: %.200s\n", what, why, html);
	}
}

/* Checks a content's formatted_body, and its m.new_content's when it is an edit; a content
 * with format must carry formatted_body, and the other way round. */
static void check_content(const char *what, const cJSON *content)
{
	if (!content) {
		test_current_failed = 1;
		printf("# %s: no content\n", what);
		return;
	}
	const char *format = str_at(content, "format"), *html = str_at(content, "formatted_body");
	if ((format != NULL) != (html != NULL) || (format && strcmp(format, "org.matrix.custom.html") != 0)) {
		test_current_failed = 1;
		printf("# %s: format %s with formatted_body %s\n", what, format ? format : "(none)",
		       html ? "set" : "(none)");
	}
	check_html(what, html);
	const cJSON *nc = cJSON_GetObjectItemCaseSensitive(content, "m.new_content");
	if (nc) {
		char inner[300];
		snprintf(inner, sizeof inner, "%s, m.new_content", what);
		check_content(inner, nc);
	}
}

/* The checker's verdict on html: 0 ok, -1 refused (why printed as a TAP diagnostic). */
static int verdict(const char *html)
{
	char why[256];
	int r = html_check(html, why, sizeof why);
	if (r)
		printf("#   refused %.60s: %s\n", html, why);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The corpus' file names, sorted, NULL-terminated. Caller frees each and the array. */
static char **payload_names(void)
{
	char **names = xcalloc(1, sizeof *names);
	size_t n = 0;
	DIR *d = opendir(PAYLOAD_DIR);
	for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
			names = xrealloc(names, (n + 2) * sizeof *names);
			names[n++] = xstrdup(e->d_name);
			names[n] = NULL;
		}
	}
	if (d)
		closedir(d);
	qsort(names, n, sizeof *names, name_cmp);
	return names;
}

static void free_names(char **names)
{
	for (char **n = names; *n; n++)
		free(*n);
	free(names);
}

static struct zuul_event *payload_event(const char *name)
{
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/%s", PAYLOAD_DIR, name);
	size_t len = 0;
	char *json = file_read_all(strbuf_str(&path), &len);
	char err[256] = "";
	struct zuul_event *ev = json ? zuul_event_parse(json, len, err, sizeof err) : NULL;
	free(json);
	strbuf_free(&path);
	return ev;
}

/* ------------------------------------------------------------------------ */
/* the checker itself: what the spec permits passes, the rest fails           */

static void test_checker_accepts_every_tag_of_the_spec(void)
{
	for (const char *const *t = html_check_tags; *t; t++) {
		char html[64];
		if (strcmp(*t, "br") == 0 || strcmp(*t, "hr") == 0)
			snprintf(html, sizeof html, "<%s>", *t);
		else if (strcmp(*t, "img") == 0)
			snprintf(html, sizeof html, "<img src=\"mxc://example.org/abc\">");
		else if (strcmp(*t, "li") == 0 || strcmp(*t, "ul") == 0)
			snprintf(html, sizeof html, "<ul><li>x</li></ul>");
		else if (strcmp(*t, "ol") == 0)
			snprintf(html, sizeof html, "<ol><li>x</li></ol>");
		else
			snprintf(html, sizeof html, "<%s>x</%s>", *t, *t);
		CHECK_INT(verdict(html), 0);
	}
}

/* Runs the shared cases (tests/data/html-spec-cases.json, which the Python twin runs too)
 * of one kind: "accept" must pass, "refuse" must fail. */
static void run_shared_cases(const char *kind, int want)
{
	size_t len = 0;
	char *json = file_read_all(CASES, &len);
	cJSON *cases = json ? cJSON_ParseWithLength(json, len) : NULL;
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(cases, kind);
	CHECK(cJSON_GetArraySize(list) > 5);
	const cJSON *c;
	cJSON_ArrayForEach(c, list) {
		const char *html = str_at(c, "html");
		if (html && verdict(html) != want) {
			test_current_failed = 1;
			printf("# expected the checker to %s %.80s (%s)\n", kind, html, str_at(c, "why"));
		}
	}
	cJSON_Delete(cases);
	free(json);
}

static void test_checker_accepts_every_attribute_of_the_spec(void)
{
	run_shared_cases("accept", 0);
}

static void test_checker_refuses_font_attributes_outside_the_spec_and_broken_html(void)
{
	run_shared_cases("refuse", -1);
}

/* ------------------------------------------------------------------------ */
/* reports: templates/default.html over the whole corpus                      */

static struct report_templates default_templates(void)
{
	struct report_templates rt = {NULL, NULL};
	char err[512] = "";
	if (report_templates_load(&rt, DEFAULT_TEMPLATE, err, sizeof err) != 0)
		printf("# cannot load %s: %s\n", DEFAULT_TEMPLATE, err);
	return rt;
}

/* A report's content as the bridge composes it: the template with a runbook and a hostile
 * hint, so the "What to do" paragraph is rendered too. Caller frees. */
static cJSON *report_of(const struct report_templates *rt, const char *name)
{
	struct zuul_event *ev = payload_event(name);
	if (!ev)
		return NULL;
	struct report_context ctx = {.route_name = "spec", .runbook = "https://wiki.example.org/ci?a=1&b=2#x",
				     .hint = HOSTILE};
	cJSON *c = report_content_new(rt, ev, &ctx);
	zuul_event_free(ev);
	return c;
}

static void test_reports_of_every_payload(void)
{
	struct report_templates rt = default_templates();
	char **names = payload_names();
	CHECK(rt.html != NULL);
	CHECK(names[0] != NULL);
	for (char **n = names; rt.html && *n; n++) {
		cJSON *c = report_of(&rt, *n);
		check_content(*n, c);
		cJSON_Delete(c);
	}
	free_names(names);
	report_templates_clear(&rt);
}

/* ------------------------------------------------------------------------ */
/* relations: edits, thread replies and mentions of those reports            */

static const char *const users[] = {"@alice:example.org", "@bob:example.org", "@not a user", "<b>@x:y</b>"};

static void test_edits_thread_replies_and_mentions_of_every_report(void)
{
	struct report_templates rt = default_templates();
	char **names = payload_names();
	for (char **n = names; rt.html && *n; n++) {
		char what[300];
		cJSON *c = report_of(&rt, *n);
		if (!c)
			continue;
		relations_add_mentions(c, users, 4);
		snprintf(what, sizeof what, "%s with mentions", *n);
		check_content(what, c);

		cJSON *edit = relations_edit_new(c, "$target", NULL);
		snprintf(what, sizeof what, "%s, edit", *n);
		check_content(what, edit);
		cJSON_Delete(edit);

		relations_make_thread_reply(c, "$root", "$latest");
		snprintf(what, sizeof what, "%s as a thread reply", *n);
		check_content(what, c);
		cJSON_Delete(c);
	}
	free_names(names);
	report_templates_clear(&rt);
}

/* An edit too large to carry its content twice falls back to one plain line, and one too
 * large even once loses its HTML: both must still be valid contents. */
static void test_oversized_edits(void)
{
	struct strbuf html = STRBUF_INIT, text = STRBUF_INIT;
	strbuf_puts(&html, "<ul>");
	for (int i = 0; i < 3000; i++) {
		strbuf_printf(&html, "<li><span data-mx-color=\"#cf222e\">FAILURE</span> job-%d</li>", i);
		strbuf_printf(&text, "FAILURE job-%d\n", i);
	}
	strbuf_puts(&html, "</ul>");
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", strbuf_str(&text));
	cJSON_AddStringToObject(c, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(c, "formatted_body", strbuf_str(&html));
	check_content("a large report", c);
	cJSON *edit = relations_edit_new(c, "$t", NULL);
	check_content("its edit", edit);
	CHECK(relations_content_bytes(edit) <= RELATIONS_MAX_CONTENT_BYTES);
	cJSON_Delete(edit);
	cJSON_Delete(c);
	strbuf_free(&html);
	strbuf_free(&text);
}

/* A plain notice (a command's answer, an escalation) that mentions someone gets HTML from
 * the pills: the notice's own words must be in it too, escaped, or HTML clients show only
 * the names. */
static void test_mentions_on_a_plain_notice_keep_its_words(void)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", "\u23F0 Still unclaimed after 1h. " HOSTILE "\nsecond line");
	cJSON_AddItemToObject(c, "m.mentions", cJSON_CreateObject());
	relations_add_mentions(c, users, 2);
	check_content("plain notice with mentions", c);
	const char *html = str_at(c, "formatted_body");
	CHECK_CONTAINS(html, "<a href=\"https://matrix.to/#/@alice:example.org\">@alice:example.org</a>");
	CHECK_CONTAINS(html, "Still unclaimed after 1h. &lt;font color=red&gt;");
	CHECK_CONTAINS(html, "<br>second line");
	cJSON *edit = relations_edit_new(c, "$t", NULL);
	check_content("its edit", edit);
	cJSON_Delete(edit);
	cJSON_Delete(c);
}

/* ------------------------------------------------------------------------ */
/* incidents: every failed build of the corpus an incident member             */

/* Every result that is not a success counts as infra, so each corpus report with a failed
 * build opens or grows an incident, with the corpus' hostile strings as members. */
static const char *const all_failures[] = {"FAILURE", "POST_FAILURE", "TIMED_OUT", "RETRY_LIMIT",
					   "NODE_FAILURE", "ERROR", "EXCEPTION", "LOST", "DISK_FULL",
					   "MERGE_CONFLICT", "MERGE_FAILURE", "CONFIG_ERROR", "<b>X</b>", NULL};

static void check_incidents(struct incident_tracker *t, char **ids, size_t n, int64_t now, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		char label[400];
		snprintf(label, sizeof label, "incident %.100s (%s)", ids[i], what);
		cJSON *c = incident_content_new(t, ids[i], now);
		check_content(label, c);
		cJSON_Delete(c);
	}
}

static void test_incidents_open_grown_and_closed(void)
{
	struct incident_options o = {all_failures, sizeof all_failures / sizeof *all_failures - 1, 1800, 2};
	struct incident_tracker *t = incident_tracker_new(&o);
	char **names = payload_names();
	int64_t now = 1767225600000; /* 2026-01-01 */
	size_t seen = 0;
	for (char **n = names; *n; n++, now += 1000) {
		struct zuul_event *ev = payload_event(*n);
		if (!ev)
			continue;
		struct incident_outcome out;
		incident_observe(t, ev, *n, now, &out);
		check_incidents(t, out.opened, out.n_opened, now, "opened");
		check_incidents(t, out.grown, out.n_grown, now, "grown");
		seen += out.n_opened;
		incident_outcome_free(&out);
		zuul_event_free(ev);
	}
	CHECK(seen > 0);
	char **closed = NULL;
	now += 3600 * 1000;
	size_t n_closed = incident_expire(t, now, &closed);
	CHECK(n_closed > 0);
	check_incidents(t, closed, n_closed, now, "closed");
	incident_ids_free(closed);
	free_names(names);
	incident_tracker_free(t);
}

/* ------------------------------------------------------------------------ */
/* digests: the daily digest and the catch-up summary                         */

static void test_daily_digest(void)
{
	const char *owners[] = {"@alice:example.org", HOSTILE};
	struct digest_failure f[] = {
		{"org/repo (main) periodic-daily: job-a", "!room:example.org", "$ev1", 1767225600000, 3, owners, 2},
		{HOSTILE, "!room:example.org", NULL, 1767225600000, 1, NULL, 0},
		{NULL, "!r<oom>:x", "$e&v\"2", 1767225600000, 2, owners, 1},
	};
	cJSON *c = digest_content_new(f, 3, 1767312000000, "Europe/Berlin");
	check_content("daily digest", c);
	cJSON_Delete(c);
}

static void test_digest_cut_at_its_size(void)
{
	struct digest_failure f[DIGEST_LINES_MAX + 5];
	for (size_t i = 0; i < DIGEST_LINES_MAX + 5; i++)
		f[i] = (struct digest_failure){HOSTILE, "!room:example.org", "$ev", 1767225600000, 2, NULL, 0};
	cJSON *c = digest_content_new(f, DIGEST_LINES_MAX + 5, 1767312000000, NULL);
	check_content("daily digest cut to its lines", c);
	CHECK_CONTAINS(str_at(c, "formatted_body"), "more.");
	cJSON_Delete(c);
}

static void test_catch_up_summary(void)
{
	struct digest_report r[] = {
		{"r", "failure", "org/repo", "main", "periodic-daily", NULL, 1767225600000},
		{"r", "failure", HOSTILE, "<b>", "post", HOSTILE, 1767225660000},
		{"r", "config-error", HOSTILE, "<b>", "post", NULL, 1767225720000},
		{"r", "success", "org/repo", "main", "periodic-daily", NULL, 1767229200000},
		{"r", "success", HOSTILE, "<b>", "post", NULL, 1767229260000},
	};
	bool summarise[5];
	digest_catch_up_plan(r, 5, summarise);
	cJSON *c = digest_catch_up_content_new(r, 5, summarise, 1767225000000, 1767232800000);
	CHECK(c != NULL);
	check_content("catch-up summary", c);
	cJSON_Delete(c);
}

int main(void)
{
	RUN(test_checker_accepts_every_tag_of_the_spec);
	RUN(test_checker_accepts_every_attribute_of_the_spec);
	RUN(test_checker_refuses_font_attributes_outside_the_spec_and_broken_html);
	RUN(test_reports_of_every_payload);
	RUN(test_edits_thread_replies_and_mentions_of_every_report);
	RUN(test_oversized_edits);
	RUN(test_mentions_on_a_plain_notice_keep_its_words);
	RUN(test_incidents_open_grown_and_closed);
	RUN(test_daily_digest);
	RUN(test_digest_cut_at_its_size);
	RUN(test_catch_up_summary);
	return test_done();
}
