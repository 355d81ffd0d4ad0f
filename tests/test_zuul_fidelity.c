/* Tests of the bridge against what Zuul 14.3.0 itself sends: the payloads in
 * tests/data/zuul-14.3.0 were written by Zuul's own MQTT reporter (see that README), and each
 * test here checks one thing issue #14 found the bridge getting wrong: every change of an item,
 * custom job results, non-finite numbers, Zuul's own links, the whole message, jobs that never
 * ran, and payloads that are not Zuul's. Cases Zuul 14.3.0 cannot produce (older shapes) are
 * hand-made from those files and say so. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html_check.h"
#include "report.h"
#include "route.h"
#include "strbuf.h"
#include "test.h"
#include "zuul.h"

#define ZUUL_DIR ZMB_SOURCE_ROOT "/tests/data/zuul-14.3.0"
#define DEFAULT_TEMPLATE ZMB_SOURCE_ROOT "/templates/default.html"

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_append(&sb, buf, n);
	fclose(f);
	*len = sb.len;
	return strbuf_detach(&sb);
}

/* The raw bytes of a Zuul-written payload (caller frees); NULL, and the test fails, if absent. */
static char *zuul_bytes(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", ZUUL_DIR, name);
	char *data = read_file(path, len);
	if (!data) {
		printf("# cannot read %s\n", path);
		test_current_failed = 1;
	}
	return data;
}

static struct zuul_event *parse_bytes(const char *name, const char *data, size_t len)
{
	char err[256] = "";
	struct zuul_event *ev = zuul_event_parse(data, len, err, sizeof err);
	if (!ev) {
		printf("# %s: expected an event, got rejection: %s\n", name, err);
		test_current_failed = 1;
	}
	return ev;
}

/* Zuul's payload `name`, decoded (caller frees). */
static struct zuul_event *zuul_payload(const char *name)
{
	size_t len = 0;
	char *data = zuul_bytes(name, &len);
	struct zuul_event *ev = data ? parse_bytes(name, data, len) : NULL;
	free(data);
	return ev;
}

/* Zuul's payload as cJSON, for the hand-made variants (caller frees). */
static cJSON *zuul_json(const char *name)
{
	size_t len = 0;
	char *data = zuul_bytes(name, &len);
	cJSON *j = data ? cJSON_Parse(data) : NULL;
	free(data);
	if (data && !j) {
		printf("# %s: cJSON cannot read it as is\n", name);
		test_current_failed = 1;
	}
	return j;
}

static struct zuul_event *parse_json(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	struct zuul_event *ev = s ? parse_bytes("(hand-made)", s, strlen(s)) : NULL;
	cJSON_free(s);
	return ev;
}

static const char *vstr(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int vbool(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsBool(it) ? cJSON_IsTrue(it) : -1;
}

static const cJSON *vitem(const cJSON *obj, const char *key, int index)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(obj, key), index);
}

static int vcount(const cJSON *obj, const char *key)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static struct report_templates templates;

/* The content the default template renders for ev (caller frees); its formatted_body is
 * checked against the Matrix spec's HTML. */
static cJSON *content_of(const char *name, const struct zuul_event *ev)
{
	struct report_context ctx = {.route_name = "fidelity"};
	cJSON *c = report_content_new(&templates, ev, &ctx);
	char why[256];
	const char *html = vstr(c, "formatted_body");
	if (!html || html_check(html, why, sizeof why) != 0) {
		printf("# %s: formatted_body breaks the Matrix spec's HTML: %s\n", name, html ? why : "missing");
		test_current_failed = 1;
	}
	return c;
}

static struct route route_with(const char *name)
{
	struct route r;
	memset(&r, 0, sizeof r);
	r.name = xstrdup(name);
	r.room = xstrdup("#r:example.org");
	r.template_path = xstrdup("default.html");
	r.has_match = true;
	return r;
}

static void set_globs(struct route_globs *g, const char *a, const char *b)
{
	g->n = b ? 2 : 1;
	g->patterns = xcalloc(g->n, sizeof *g->patterns);
	g->patterns[0] = xstrdup(a);
	if (b)
		g->patterns[1] = xstrdup(b);
}

/* ------------------------------------------------------------------------ */
/* every file                                                                 */

static int is_payload(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0 && strcmp(d->d_name, "index.json") != 0;
}

/* Every payload Zuul wrote decodes (the shape check refuses none of them), renders within
 * the spec's HTML, and a final report shows nothing as pending. */
static void every_zuul_payload_decodes_and_renders(const char *name)
{
	struct zuul_event *ev = zuul_payload(name);
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	cJSON *c = content_of(name, ev);
	if (vbool(v, "is_final") == 1) {
		CHECK(vcount(v, "pending_builds") == 0);
		CHECK_NOT_CONTAINS(vstr(c, "body"), "PENDING");
		CHECK_NOT_CONTAINS(vstr(c, "body"), "RUNNING");
	}
	/* The title is one line of Zuul's text, never a footer or debug lines glued on. */
	CHECK_NOT_CONTAINS(vstr(v, "title"), "Debug information");
	CHECK_NOT_CONTAINS(vstr(v, "title"), "For help with this report");
	cJSON_Delete(c);
	cJSON_Delete(v);
	zuul_event_free(ev);
}

static int run_every_file(void)
{
	struct dirent **names = NULL;
	int n = scandir(ZUUL_DIR, &names, is_payload, alphasort);
	for (int i = 0; i < n; i++) {
		char title[400];
		snprintf(title, sizeof title, "tests/data/zuul-14.3.0/%s decodes and renders, nothing pending when final",
			 names[i]->d_name);
		RUN_NAMED(title, every_zuul_payload_decodes_and_renders(names[i]->d_name));
		free(names[i]);
	}
	free(names);
	return n;
}

/* ------------------------------------------------------------------------ */
/* 1. every change of an item                                                 */

/* cycle-failure.json: org/a 2001,1 and org/b 2002,2 in one item; the top level describes
 * org/a only; tox-py311 ran once per change. */
static void test_cycle_every_change_is_decoded(void)
{
	struct zuul_event *ev = zuul_payload("cycle-failure.json");
	if (!ev)
		return;
	CHECK_INT(ev->n_changes, 2);
	CHECK_STR(ev->item.project, "org/a");
	if (ev->n_changes == 2) {
		CHECK_STR(ev->changes[1].project, "org/b");
		CHECK_STR(ev->changes[1].owner, "ivan");
	}
	CHECK_INT(ev->n_builds, 3);
	if (ev->n_builds == 3) {
		CHECK(ev->builds[0].change && ev->builds[1].change);
		CHECK_STR(ev->builds[1].job_name, "tox-py311");
		CHECK_STR(ev->builds[1].change ? ev->builds[1].change->project : NULL, "org/b");
		CHECK(zuul_build_failed(&ev->builds[1]) && !zuul_build_failed(&ev->builds[0]));
	}
	zuul_event_free(ev);
}

static void test_cycle_a_route_for_the_second_change_takes_it(void)
{
	struct zuul_event *ev = zuul_payload("cycle-failure.json");
	if (!ev)
		return;
	struct route r = route_with("org-b");
	set_globs(&r.match.field[ROUTE_PROJECT], "org/b", NULL);
	set_globs(&r.match.field[ROUTE_BRANCH], "master", NULL);
	struct strbuf why = STRBUF_INIT;
	CHECK(route_matches(&r, ev, &why));
	CHECK_CONTAINS(strbuf_str(&why), "match projects: \"org/b\" (change 2 of 2) matches \"org/b\"\n");
	route_clear(&r);
	strbuf_free(&why);

	/* Excluding org/a leaves org/b: the cycle still goes to a route for all of org. */
	r = route_with("org");
	set_globs(&r.match.field[ROUTE_PROJECT], "org/*", NULL);
	set_globs(&r.exclude.field[ROUTE_PROJECT], "org/a", NULL);
	CHECK(route_matches(&r, ev, NULL));
	route_clear(&r);
	/* Excluding both drops it. */
	r = route_with("org");
	set_globs(&r.match.field[ROUTE_PROJECT], "org/*", NULL);
	set_globs(&r.exclude.field[ROUTE_PROJECT], "org/a", "org/b");
	CHECK(!route_matches(&r, ev, NULL));
	route_clear(&r);
	zuul_event_free(ev);
}

static void test_cycle_the_report_names_every_change_and_each_builds_own(void)
{
	struct zuul_event *ev = zuul_payload("cycle-failure.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_INT(vbool(v, "has_several_changes"), 1);
	CHECK_INT(vcount(v, "changes"), 2);
	CHECK_STR(vstr(vitem(v, "changes", 1), "project"), "org/b");
	CHECK_STR(vstr(vitem(v, "changes", 1), "change_url"), "https://review.example.com/c/org/b/+/2002");
	CHECK_STR(vstr(vitem(v, "changes", 1), "owner"), "ivan");
	const cJSON *failed = vitem(v, "failed_builds", 0);
	CHECK_INT(vbool(failed, "show_change"), 1);
	CHECK_STR(vstr(cJSON_GetObjectItemCaseSensitive(failed, "change"), "project"), "org/b");
	CHECK_STR(vstr(failed, "project"), "org/b");
	CHECK_CONTAINS(vstr(failed, "history_url"), "project=org%2Fb");
	cJSON_Delete(v);

	cJSON *c = content_of("cycle-failure.json", ev);
	const char *html = vstr(c, "formatted_body");
	CHECK_CONTAINS(html, "<a href=\"https://review.example.com/c/org/a/+/2001\">2001,1</a> by heidi");
	CHECK_CONTAINS(html, "<a href=\"https://review.example.com/c/org/b/+/2002\">2002,2</a> by ivan");
	/* Each tox-py311 says which change it tested. */
	CHECK_CONTAINS(html, "FAILURE</span></a> · org/b 2002,2");
	CHECK_CONTAINS(html, "SUCCESS</span></a> · org/a 2001,1");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

/* ------------------------------------------------------------------------ */
/* 2. custom job results                                                      */

/* custom-job-messages.json: a failing check where build-docs (SUCCESS) says "Docs preview is
 * ready", tox-linters (FAILURE) "Style check failed, see the log", tox-py311 (SUCCESS) "Unit
 * tests passed"; a retried build-docs attempt says "Docs did not build". */
static void test_custom_texts_are_shown_as_zuul_wrote_them(void)
{
	struct zuul_event *ev = zuul_payload("custom-job-messages.json");
	if (!ev)
		return;
	CHECK_INT(ev->n_builds, 3);
	for (size_t i = 0; i < ev->n_builds; i++)
		CHECK(ev->builds[i].custom_result);
	cJSON *v = report_view_new(ev, NULL);
	const cJSON *b;
	bool seen_style = false;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(v, "builds"))
	{
		CHECK_INT(vbool(b, "result_is_custom"), 1);
		if (vstr(b, "job_name") && strcmp(vstr(b, "job_name"), "tox-linters") == 0) {
			seen_style = true;
			CHECK_STR(vstr(b, "result_label"), "Style check failed, see the log");
			CHECK_STR(vstr(b, "result_means"), "FAILURE");
			CHECK_INT(vbool(b, "is_failure"), 1);
		}
	}
	CHECK(seen_style);
	/* The retried attempt stands for RETRY, not for the buildset's failure. */
	CHECK_INT(ev->n_retry_builds, 1);
	if (ev->n_retry_builds == 1) {
		CHECK(ev->retry_builds[0].custom_result);
		CHECK(!zuul_build_failed(&ev->retry_builds[0]));
		CHECK_INT(vbool(vitem(v, "retried_builds", 0), "is_failure"), 0);
	}
	cJSON_Delete(v);
	cJSON *c = content_of("custom-job-messages.json", ev);
	CHECK_CONTAINS(vstr(c, "formatted_body"), "Style check failed, see the log</span>");
	CHECK_CONTAINS(vstr(c, "body"), "Docs preview is ready");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

/* On a failure report a finished build's custom text counts as a failure (the report cannot
 * tell a success-message from a failure-message: see docs/templates.md), so failure threads,
 * owners and incidents (all through zuul_build_failed) and build_results routes see it. */
static void test_custom_texts_fail_on_a_failure_report(void)
{
	struct zuul_event *ev = zuul_payload("custom-job-messages.json");
	if (!ev)
		return;
	for (size_t i = 0; i < ev->n_builds; i++) {
		CHECK_STR(ev->builds[i].custom_means, "FAILURE");
		CHECK(zuul_build_failed(&ev->builds[i]));
	}
	struct route r = route_with("failures");
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "FAILURE", "TIMED_OUT");
	struct strbuf why = STRBUF_INIT;
	CHECK(route_matches(&r, ev, &why));
	CHECK_CONTAINS(strbuf_str(&why), "the job's own text for FAILURE) matches \"FAILURE\"");
	strbuf_free(&why);
	route_clear(&r);
	zuul_event_free(ev);
}

/* The same jobs when the buildset succeeds (hand-made from custom-job-messages.json: action
 * success, buildset.result SUCCESS, as Zuul sends it when all three pass): no failure. */
static void test_custom_texts_are_no_failures_when_the_buildset_succeeded(void)
{
	cJSON *j = zuul_json("custom-job-messages.json");
	if (!j)
		return;
	cJSON_ReplaceItemInObject(j, "action", cJSON_CreateString("success"));
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "buildset"), "result", cJSON_CreateString("SUCCESS"));
	cJSON_ReplaceItemInObject(j, "message", cJSON_CreateString("Build succeeded."));
	struct zuul_event *ev = parse_json(j);
	cJSON_Delete(j);
	if (!ev)
		return;
	for (size_t i = 0; i < ev->n_builds; i++) {
		CHECK(!zuul_build_failed(&ev->builds[i]));
		CHECK_STR(ev->builds[i].custom_means, "SUCCESS"); /* voting and finished */
	}
	cJSON *v = report_view_new(ev, NULL);
	CHECK_INT(vcount(v, "failed_builds"), 0);
	CHECK_INT(vcount(v, "succeeded_builds"), 3);
	cJSON_Delete(v);
	struct route r = route_with("failures");
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "FAILURE", NULL);
	CHECK(!route_matches(&r, ev, NULL));
	route_clear(&r);
	zuul_event_free(ev);
}

/* ------------------------------------------------------------------------ */
/* 3. non-finite numbers                                                      */

static void test_returned_data_with_infinity_and_nan_is_kept(void)
{
	size_t len = 0;
	char *data = zuul_bytes("returned-data-nonfinite.json", &len);
	if (!data)
		return;
	/* The file is what json.dumps wrote: bare tokens, which cJSON alone refuses. */
	CHECK(strstr(data, "Infinity") && strstr(data, "-Infinity") && strstr(data, "NaN"));
	cJSON *strict = cJSON_ParseWithLength(data, len);
	CHECK(strict == NULL);
	cJSON_Delete(strict);
	struct zuul_event *ev = parse_bytes("returned-data-nonfinite.json", data, len);
	free(data);
	if (!ev)
		return;
	CHECK_STR(ev->action, "success");
	CHECK(ev->n_builds > 0);
	for (size_t i = 0; i < ev->n_builds; i++)
		CHECK_STR(ev->builds[i].result, "SUCCESS");
	cJSON *c = content_of("returned-data-nonfinite.json", ev);
	CHECK_CONTAINS(vstr(c, "body"), "Build succeeded.");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

/* ------------------------------------------------------------------------ */
/* 4. Zuul's own links                                                        */

static void test_whitelabeled_tenant_links_have_no_tenant_path(void)
{
	struct zuul_event *ev = zuul_payload("whitelabel-success.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "tenant_url"), "https://tenant.example.com/");
	CHECK_STR(vstr(v, "buildset_url"), "https://tenant.example.com/buildset/4d57efe6562d446c9ae2378d1be730dd");
	CHECK_STR(vstr(v, "item_url"), "https://tenant.example.com/buildset/4d57efe6562d446c9ae2378d1be730dd");
	CHECK_STR(vstr(v, "buildsets_url"), "https://tenant.example.com/buildsets?project=org%2Fproject&pipeline=check");
	CHECK_STR(vstr(vitem(v, "builds", 0), "history_url"),
		  "https://tenant.example.com/builds?job_name=tox-linters&project=org%2Fproject");
	cJSON_Delete(v);
	cJSON *c = content_of("whitelabel-success.json", ev);
	CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), "/t/");
	CHECK_NOT_CONTAINS(vstr(c, "body"), "/t/acme");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

/* The same report without tenant_web_root (Zuul before it was sent): the root comes from the
 * builds' web_url, minus Zuul's "build/<uuid>" (hand-made: the key removed). */
static void test_web_root_from_web_url_when_tenant_web_root_is_absent(void)
{
	cJSON *j = zuul_json("whitelabel-success.json");
	if (!j)
		return;
	cJSON_DeleteItemFromObject(j, "tenant_web_root");
	struct zuul_event *ev = parse_json(j);
	cJSON_Delete(j);
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "tenant_url"), "https://tenant.example.com/");
	CHECK_STR(vstr(v, "buildset_url"), "https://tenant.example.com/buildset/4d57efe6562d446c9ae2378d1be730dd");
	cJSON_Delete(v);
	zuul_event_free(ev);
}

static void test_shared_root_links_keep_zuuls_tenant_path(void)
{
	struct zuul_event *ev = zuul_payload("success.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "tenant_url"), "https://zuul.example.com/t/example/");
	CHECK_STR(vstr(v, "zuul_url"), "https://zuul.example.com");
	const char *bs = vstr(v, "buildset_url");
	CHECK(bs && strncmp(bs, "https://zuul.example.com/t/example/buildset/", 44) == 0);
	cJSON_Delete(v);
	zuul_event_free(ev);

	/* start.json: no result yet, so Zuul links its status page, as the bridge does. */
	ev = zuul_payload("start.json");
	if (!ev)
		return;
	v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "item_url"), "https://zuul.example.com/t/example/status/change/1234,2");
	cJSON_Delete(v);
	zuul_event_free(ev);
}

static void test_no_web_root_no_zuul_links(void)
{
	struct zuul_event *ev = zuul_payload("no-web-root-failure.json");
	if (!ev)
		return;
	CHECK_STR(ev->tenant_web_root, NULL);
	cJSON *v = report_view_new(ev, NULL);
	CHECK(vstr(v, "tenant_url") == NULL && vstr(v, "zuul_url") == NULL && vstr(v, "buildset_url") == NULL);
	CHECK(vstr(v, "item_url") == NULL && vstr(v, "buildsets_url") == NULL);
	const cJSON *b;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(v, "builds"))
	{
		CHECK(vstr(b, "web_url") == NULL); /* Zuul's relative "build/<uuid>" */
		CHECK(vstr(b, "history_url") == NULL);
	}
	cJSON_Delete(v);
	cJSON *c = content_of("no-web-root-failure.json", ev);
	CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), "href=\"build/");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

/* ------------------------------------------------------------------------ */
/* 5. the whole message                                                       */

static const char *block_text(const cJSON *v, const char *key, int i)
{
	const cJSON *b = i < 0 ? cJSON_GetObjectItemCaseSensitive(v, key) : vitem(v, key, i);
	return vstr(b, "text");
}

static void test_merge_conflict_message_whole(void)
{
	struct zuul_event *ev = zuul_payload("merge-conflict.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "title"), "Merge Failed.");
	CHECK_CONTAINS(vstr(v, "message_body"), "Please rebase the change and upload a new patchset.");
	CHECK_STR(block_text(v, "message_warnings", 0), "Error merging gerrit/org/project for 1240,3");
	CHECK_STR(block_text(v, "message_footer", -1),
		  "For help with this report see https://docs.example.com/ci/gate.\nReply \"recheck\" to run the jobs again.");
	cJSON_Delete(v);
	cJSON *c = content_of("merge-conflict.json", ev);
	const char *html = vstr(c, "formatted_body");
	CHECK_CONTAINS(html, "<b>Merge Failed.</b>");
	CHECK_CONTAINS(html, "<p>This change or one of its cross-repo dependencies was unable");
	CHECK_CONTAINS(html, "<b>Warning:</b> Error merging gerrit/org/project for 1240,3</p>");
	CHECK_CONTAINS(html, "<p><i>For help with this report see https://docs.example.com/ci/gate.<br>Reply");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

static void test_depends_on_a_change_that_failed_to_merge(void)
{
	struct zuul_event *ev = zuul_payload("dequeue-needing-change.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "title"), "This change depends on a change that failed to merge.");
	CHECK_CONTAINS(vstr(v, "message_body"), "Change https://review.example.com/c/org/project/+/1241 is needed.");
	cJSON_Delete(v);
	cJSON *c = content_of("dequeue-needing-change.json", ev);
	CHECK_CONTAINS(vstr(c, "formatted_body"), "<p>Change https://review.example.com/c/org/project/+/1241 is needed.</p>");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

static void test_debug_lines_folded_and_footer_apart(void)
{
	struct zuul_event *ev = zuul_payload("footer-debug.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "title"), "Build succeeded.");
	CHECK(vstr(v, "message_body") == NULL);
	CHECK_CONTAINS(block_text(v, "message_debug", -1), "Freezing job graph\n  Freezing job tox-py311");
	CHECK_STR(block_text(v, "message_footer", -1),
		  "For help with this report see https://docs.example.com/ci/gate.\nReply \"recheck\" to run the jobs again.");
	cJSON_Delete(v);
	cJSON *c = content_of("footer-debug.json", ev);
	const char *html = vstr(c, "formatted_body");
	CHECK_CONTAINS(html, "<details><summary>Debug information</summary><pre><code>Project &lt;ProjectConfig");
	CHECK_CONTAINS(html, "<b>Build succeeded.</b><br>");
	const char *details = html ? strstr(html, "<details>") : NULL;
	const char *footer = html ? strstr(html, "For help with this report") : NULL;
	CHECK(details && footer && footer > details && !strstr(footer, "</details>"));
	cJSON_Delete(c);
	zuul_event_free(ev);
}

static void test_config_error_title_excerpt_and_warnings(void)
{
	struct zuul_event *ev = zuul_payload("config-error.json");
	if (!ev)
		return;
	cJSON *v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "title"), "Zuul encountered a syntax error while parsing its configuration in the repo "
				    "org/project on branch master.  The problem was:");
	CHECK_CONTAINS(vstr(v, "message_body"), "extra keys not allowed @ data['nodset']");
	CHECK_CONTAINS(vstr(v, "message_body"), "      nodset: ubuntu-noble");
	cJSON_Delete(v);
	cJSON *c = content_of("config-error.json", ev);
	CHECK_CONTAINS(vstr(c, "formatted_body"), "<pre><code>  job:\n      name: org-project-functional\n");
	cJSON_Delete(c);
	zuul_event_free(ev);

	ev = zuul_payload("warnings-failure.json");
	if (!ev)
		return;
	v = report_view_new(ev, NULL);
	CHECK_STR(vstr(v, "title"), "Build failed.");
	CHECK_INT(vcount(v, "message_warnings"), 2);
	/* The configuration warning is whole: its error, the stanza and the excerpt. */
	const char *w = block_text(v, "message_warnings", 0);
	CHECK_CONTAINS(w, "Zuul encountered a deprecated syntax");
	CHECK_CONTAINS(w, "The RE2 syntax error is: invalid perl operator");
	CHECK_CONTAINS(w, "branches: ^(?!stable/).*$");
	CHECK_CONTAINS(w, "line 2");
	CHECK_STR(block_text(v, "message_warnings", 1), "The nodeset ubuntu-focal is deprecated; use ubuntu-noble");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v, "message_footer")));
	cJSON_Delete(v);
	zuul_event_free(ev);
}

static void test_cycle_message_keeps_related_changes(void)
{
	struct zuul_event *ev = zuul_payload("cycle-failure.json");
	if (!ev)
		return;
	cJSON *c = content_of("cycle-failure.json", ev);
	const char *html = vstr(c, "formatted_body");
	CHECK_CONTAINS(html, "<b>This change is part of a dependency cycle that failed.</b>");
	CHECK_CONTAINS(html, "<p>Related changes:<br>  - https://review.example.com/c/org/a/+/2001<br>");
	CHECK_CONTAINS(vstr(c, "body"), "https://review.example.com/c/org/b/+/2002");
	cJSON_Delete(c);
	zuul_event_free(ev);
}

/* ------------------------------------------------------------------------ */
/* 6. jobs that never got a build                                             */

static void test_jobs_without_a_build_pending_only_while_the_item_runs(void)
{
	struct zuul_event *ev = zuul_payload("start.json");
	if (!ev)
		return;
	for (size_t i = 0; i < ev->n_builds; i++)
		CHECK(!ev->builds[i].has_build);
	cJSON *v = report_view_new(ev, NULL);
	CHECK_INT(vcount(v, "pending_builds"), 4);
	CHECK_STR(vstr(vitem(v, "pending_builds", 0), "result_label"), "PENDING");
	cJSON_Delete(v);
	zuul_event_free(ev);

	/* Zuul 14.3.0 resets the buildset before it reports a dequeue (builds []); older Zuul
	 * reported the frozen jobs as start.json lists them. Hand-made: start.json's jobs on a
	 * dequeue report. None is pending: they will never run. */
	cJSON *j = zuul_json("start.json");
	if (!j)
		return;
	cJSON_ReplaceItemInObject(j, "action", cJSON_CreateString("dequeue"));
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "buildset"), "result", cJSON_CreateString("DEQUEUED"));
	ev = parse_json(j);
	cJSON_Delete(j);
	if (!ev)
		return;
	v = report_view_new(ev, NULL);
	CHECK_INT(vcount(v, "pending_builds"), 0);
	CHECK_INT(vcount(v, "other_builds"), 4);
	CHECK_STR(vstr(vitem(v, "other_builds", 0), "result_label"), "NOT RUN");
	CHECK_INT(vbool(vitem(v, "other_builds", 0), "not_run"), 1);
	cJSON_Delete(v);
	cJSON *c = content_of("start.json as a dequeue", ev);
	CHECK_NOT_CONTAINS(vstr(c, "body"), "PENDING");
	CHECK_CONTAINS(vstr(c, "body"), "tox-linters: NOT RUN");
	cJSON_Delete(c);
	zuul_event_free(ev);

	ev = zuul_payload("dequeue.json");
	if (ev)
		CHECK_INT(ev->n_builds, 0);
	zuul_event_free(ev);
}

/* ------------------------------------------------------------------------ */
/* 7. payloads that are not Zuul's                                            */

/* success.json with one field of a type Zuul never sends (hand-made): rejected whole, with
 * the field's path, the same way for a string where builds go and an object where the
 * pipeline goes. bridge.c counts and logs every rejection (received - rejected). */
static void test_structure_not_zuuls_is_rejected_the_same_way(void)
{
	static const struct {
		const char *where;
		const char *reason;
	} cases[] = {
		{"builds", "not a Zuul report: buildset.builds is a string, not an array"},
		{"pipeline", "not a Zuul report: pipeline is an object, not a string"},
		{"change", "not a Zuul report: buildset.builds[0].change is a string, not an object"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *j = zuul_json("success.json");
		if (!j)
			return;
		cJSON *bs = cJSON_GetObjectItem(j, "buildset");
		if (strcmp(cases[i].where, "builds") == 0)
			cJSON_ReplaceItemInObject(bs, "builds", cJSON_CreateString("tox-py311"));
		else if (strcmp(cases[i].where, "pipeline") == 0)
			cJSON_ReplaceItemInObject(j, "pipeline", cJSON_CreateObject());
		else
			cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(bs, "builds"), 0), "change",
						  cJSON_CreateString("1234"));
		char *s = cJSON_PrintUnformatted(j);
		char err[256] = "";
		struct zuul_event *ev = zuul_event_parse(s, strlen(s), err, sizeof err);
		CHECK(ev == NULL);
		CHECK_STR(err, cases[i].reason);
		zuul_event_free(ev);
		cJSON_free(s);
		cJSON_Delete(j);
	}
}

int main(void)
{
	char err[512];
	if (report_templates_load(&templates, DEFAULT_TEMPLATE, err, sizeof err) != 0) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	int n = run_every_file();
	RUN_NAMED("tests/data/zuul-14.3.0 holds Zuul's payloads", CHECK(n >= 20));
	RUN(test_cycle_every_change_is_decoded);
	RUN(test_cycle_a_route_for_the_second_change_takes_it);
	RUN(test_cycle_the_report_names_every_change_and_each_builds_own);
	RUN(test_custom_texts_are_shown_as_zuul_wrote_them);
	RUN(test_custom_texts_fail_on_a_failure_report);
	RUN(test_custom_texts_are_no_failures_when_the_buildset_succeeded);
	RUN(test_returned_data_with_infinity_and_nan_is_kept);
	RUN(test_whitelabeled_tenant_links_have_no_tenant_path);
	RUN(test_web_root_from_web_url_when_tenant_web_root_is_absent);
	RUN(test_shared_root_links_keep_zuuls_tenant_path);
	RUN(test_no_web_root_no_zuul_links);
	RUN(test_merge_conflict_message_whole);
	RUN(test_depends_on_a_change_that_failed_to_merge);
	RUN(test_debug_lines_folded_and_footer_apart);
	RUN(test_config_error_title_excerpt_and_warnings);
	RUN(test_cycle_message_keeps_related_changes);
	RUN(test_jobs_without_a_build_pending_only_while_the_item_runs);
	RUN(test_structure_not_zuuls_is_rejected_the_same_way);
	report_templates_clear(&templates);
	return test_done();
}
