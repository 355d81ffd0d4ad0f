/* Tests of report: HTML -> text, the view model (labels, URLs, lists, times), message content,
 * injection safety, and golden renderings of templates/default.html over every corpus payload. */
#include "report.h"
#include "fileutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "html_check.h"
#include "strbuf.h"
#include "test.h"

#ifndef ZMB_SOURCE_ROOT
#define ZMB_SOURCE_ROOT "."
#endif

#define PAYLOAD_DIR ZMB_SOURCE_ROOT "/tests/data/payloads"
#define GOLDEN_DIR ZMB_SOURCE_ROOT "/tests/golden"
#define ZUUL_DIR ZMB_SOURCE_ROOT "/tests/data/zuul-14.3.0"
#define DEFAULT_TEMPLATE ZMB_SOURCE_ROOT "/templates/default.html"

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */

static char *h2t(const char *html)
{
	return report_html_to_text(html);
}

#define CHECK_H2T(html, want)                                                                        \
	do {                                                                                         \
		char *got_ = h2t(html);                                                              \
		CHECK_STR(got_, want);                                                               \
		free(got_);                                                                          \
	} while (0)

static struct zuul_event *parse(const char *json)
{
	char err[256] = "";
	struct zuul_event *ev = zuul_event_parse(json, strlen(json), err, sizeof err);
	if (!ev)
		printf("# parse failed: %s\n", err);
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

static double vnum(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNumber(it) ? it->valuedouble : -1;
}

static const cJSON *vitem(const cJSON *obj, const char *key, int index)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(obj, key), index);
}

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
	if (len)
		*len = sb.len;
	return strbuf_detach(&sb);
}

/* A GitHub PR failure in the current schema, used by several view tests. */
static const char *const github_failure =
	"{\"action\":\"failure\",\"tenant\":\"scs\",\"pipeline\":\"check\",\"uuid\":\"item1\","
	"\"project\":\"org/repo\",\"branch\":\"main\",\"change\":812,"
	"\"patchset\":\"6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6\","
	"\"commit_id\":\"6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6\",\"owner\":\"jdoe\","
	"\"change_url\":\"https://github.com/org/repo/pull/812\",\"ref\":\"refs/pull/812/head\","
	"\"message\":\"Build failed.\\n\\nWarning:\\n  Job x uses a deprecated nodeset.\","
	"\"timestamp\":1732181412.08,\"trigger_time\":1732180790.11,\"enqueue_time\":1732180791.87,"
	/* As Zuul >= 10 sends it: changes[0] carries what the top level copies. */
	"\"changes\":[{\"project\":\"org/repo\",\"branch\":\"main\",\"change\":812,"
	"\"patchset\":\"6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6\","
	"\"commit_id\":\"6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6\",\"owner\":\"jdoe\","
	"\"change_url\":\"https://github.com/org/repo/pull/812\",\"ref\":\"refs/pull/812/head\"}],"
	"\"buildset\":{\"uuid\":\"bs1\",\"result\":\"FAILURE\",\"builds\":["
	"{\"job_name\":\"ok-job\",\"voting\":true,\"result\":\"SUCCESS\",\"uuid\":\"u0\","
	"\"web_url\":\"https://zuul.example.org/zuul/t/scs/build/u0\"},"
	"{\"job_name\":\"tox py311&x=1\",\"voting\":true,\"result\":\"FAILURE\",\"uuid\":\"u1\","
	"\"start_time\":1732180851.4,\"end_time\":1732181120.9,"
	"\"log_url\":\"https://logs.example.org/u1/\","
	"\"web_url\":\"https://zuul.example.org/zuul/t/scs/build/u1\"},"
	"{\"job_name\":\"nv-job\",\"voting\":false,\"result\":\"TIMED_OUT\",\"uuid\":\"u2\","
	"\"log_url\":\"javascript:alert(1)\",\"web_url\":\"data:text/html,x\"},"
	"{\"job_name\":\"running-job\",\"voting\":true,\"result\":null,\"start_time\":1732180851}],"
	"\"retry_builds\":[{\"job_name\":\"tox py311&x=1\",\"result\":\"RETRY\",\"uuid\":\"u9\"}]}}";

/* ------------------------------------------------------------------------ */
/* report_html_to_text                                                        */

static void test_h2t_decodes_named_and_numeric_entities(void)
{
	CHECK_H2T("a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&#39; &#x1F600; &#128512;",
		  "a & b <c> \"d\" 'e' \xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
	/* Decoded once only: an escaped entity stays an entity in text. */
	CHECK_H2T("&amp;lt; &amp;amp;", "&lt; &amp;");
	CHECK_H2T("x&nbsp;&nbsp;y &rarr; z &hellip;", "x  y \xe2\x86\x92 z \xe2\x80\xa6");
	CHECK_H2T("&#X41;&#x42;&#67;", "ABC");
}

static void test_h2t_leaves_unknown_or_broken_entities_as_text(void)
{
	CHECK_H2T("AT&T &bogus; &amp &#; &#x; &#12a;", "AT&T &bogus; &amp &#; &#x; &#12a;");
	CHECK_H2T("tail &", "tail &");
}

static void test_h2t_replaces_entities_that_are_not_characters(void)
{
	/* NUL, surrogates, beyond U+10FFFF and C0/C1 controls would corrupt the body. */
	CHECK_H2T("a&#0;b&#xD800;c&#x110000;d&#99999999999;e&#27;f&#x9b;g",
		  "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd" "d\xef\xbf\xbd" "e\xef\xbf\xbd" "f\xef\xbf\xbdg");
}

static void test_h2t_collapses_whitespace_outside_pre(void)
{
	CHECK_H2T("  a \n\t b   c  ", "a b c");
	CHECK_H2T("<p>  lead</p><p>trail   </p>", "lead\n\ntrail");
	CHECK_H2T("<b>bold</b> <i>it</i>", "bold it");
	CHECK_H2T("x<b> y</b>", "x y");
}

static void test_h2t_paragraphs_and_br_make_lines(void)
{
	CHECK_H2T("<p>one</p><p>two</p>", "one\n\ntwo");
	CHECK_H2T("a<br>b<br/>c<br />d", "a\nb\nc\nd");
	CHECK_H2T("a<br><br><br><br>b", "a\n\nb");
	CHECK_H2T("<p>a<br></p><p></p><p></p><p>b</p>", "a\n\nb");
	CHECK_H2T("<h3>Title</h3>text<div>block</div>more", "Title\n\ntext\nblock\nmore");
	CHECK_H2T("<br><p></p>x<br>", "x");
}

static void test_h2t_lists_become_dash_and_number_lines(void)
{
	CHECK_H2T("<ul><li>a</li><li>b</li></ul>", "- a\n- b");
	CHECK_H2T("<p>x</p><ul>\n<li>a</li>\n</ul><p>y</p>", "x\n\n- a\n\ny");
	CHECK_H2T("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b");
	CHECK_H2T("<ol start=\"7\"><li>a</li><li>b</li></ol>", "7. a\n8. b");
	CHECK_H2T("<ul><li><p>para</p></li></ul>", "- para");
}

static void test_h2t_nested_lists_are_indented(void)
{
	CHECK_H2T("<ul><li>a<ul><li>a1</li><li>a2<ol><li>x</li></ol></li></ul></li><li>b</li></ul>",
		  "- a\n  - a1\n  - a2\n    1. x\n- b");
	/* A line break inside an item continues under the item's text. */
	CHECK_H2T("<ul><li>first<br>second</li></ul>", "- first\n  second");
}

static void test_h2t_links_show_their_url_when_text_differs(void)
{
	CHECK_H2T("see <a href=\"https://x.org/a\">logs</a>.", "see logs (https://x.org/a).");
	CHECK_H2T("<a href=\"https://x.org/\">https://x.org/</a>", "https://x.org/");
	CHECK_H2T("<a href=\"https://x.org/\"></a>", "https://x.org/");
	CHECK_H2T("<a href=\"https://x.org/?a=1&amp;b=2\">q</a>", "q (https://x.org/?a=1&b=2)");
	CHECK_H2T("<a href='https://x.org/s'><b>bold</b> link</a> after", "bold link (https://x.org/s) after");
	CHECK_H2T("<a>no href</a>", "no href");
	CHECK_H2T("<a href=https://u.org/>unquoted</a>", "unquoted (https://u.org/)");
}

static void test_h2t_pre_keeps_whitespace(void)
{
	CHECK_H2T("<p>x</p><pre>  a  b\n    c &lt;d&gt;</pre><p>y</p>", "x\n\n  a  b\n    c <d>\n\ny");
	CHECK_H2T("<pre><code>line1\nline2</code></pre>", "line1\nline2");
}

static void test_h2t_drops_scripts_styles_comments_and_unknown_tags(void)
{
	CHECK_H2T("a<script>alert(1)</script>b<style>p{}</style>c<!-- hidden -->d<!DOCTYPE html>e",
		  "abcde");
	/* An operator's own template may still use the deprecated <font>: its text survives. */
	CHECK_H2T("<font data-mx-color=\"#ff0000\">red</font> <span>s</span> <code>c</code>", "red s c");
	CHECK_H2T("<span data-mx-color=\"#ff0000\">red</span>", "red");
	CHECK_H2T("<img src=\"mxc://x/y\" alt=\"pic\">", "pic");
}

static void test_h2t_keeps_a_lone_less_than_sign(void)
{
	CHECK_H2T("1 < 2 and 3 <4", "1 < 2 and 3 <4");
	CHECK_H2T("broken <a href=\"x", "broken <a href=\"x");
	CHECK_H2T("x <", "x <");
}

static void test_h2t_blockquote_hr_and_table(void)
{
	CHECK_H2T("<blockquote>quoted<br>two</blockquote>after", "> quoted\n> two\n\nafter");
	CHECK_H2T("a<hr>b", "a\n---\nb");
	CHECK_H2T("<table><tr><th>h1</th><th>h2</th></tr><tr><td>a</td><td>b</td></tr></table>",
		  "h1 | h2\na | b");
}

static void test_h2t_empty_and_null_input(void)
{
	CHECK_H2T("", "");
	CHECK_H2T(NULL, "");
	CHECK_H2T("<p> </p>\n\n<br>", "");
}

/* ------------------------------------------------------------------------ */
/* the view model                                                             */

static void test_view_github_pr_label_link_and_owner(void)
{
	struct zuul_event *ev = parse(github_failure);
	struct report_context ctx = {.route_name = "r1"};
	cJSON *v = ev ? report_view_new(ev, &ctx) : NULL;
	CHECK(v != NULL);
	CHECK_STR(vstr(v, "route"), "r1");
	CHECK_STR(vstr(v, "change_label"), "#812");
	CHECK_STR(vstr(v, "change_kind"), "pull_request");
	CHECK_STR(vstr(v, "change_kind_label"), "Pull request");
	CHECK_STR(vstr(v, "change_url"), "https://github.com/org/repo/pull/812");
	CHECK_STR(vstr(v, "project_url"), "https://github.com/org/repo");
	CHECK_STR(vstr(v, "owner"), "jdoe");
	CHECK_STR(vstr(v, "short_commit"), "6f1e2d3");
	CHECK_INT(vbool(v, "has_change"), 1);
	CHECK_INT(vbool(v, "is_pull_request"), 1);
	CHECK_STR(vstr(vitem(v, "changes", 0), "change_label"), "#812");
	cJSON_Delete(v);
	zuul_event_free(ev);
}

static cJSON *view_of(const char *json)
{
	struct zuul_event *ev = parse(json);
	if (!ev)
		return NULL;
	cJSON *v = report_view_new(ev, NULL);
	zuul_event_free(ev);
	return v;
}

static void test_view_gerrit_gitlab_and_ref_labels(void)
{
	cJSON *v = view_of("{\"action\":\"success\",\"change\":\"3\",\"patchset\":\"1\","
			   "\"change_url\":\"https://gerrit.example.com/r/3\",\"ref\":\"refs/changes/03/3/1\"}");
	CHECK_STR(vstr(v, "change_label"), "3,1");
	CHECK_STR(vstr(v, "change_kind"), "change");
	CHECK_INT(vbool(v, "is_gerrit_change"), 1);
	CHECK(vstr(v, "project_url") == NULL);
	cJSON_Delete(v);

	v = view_of("{\"action\":\"failure\",\"project\":\"grp/sub/proj\",\"change\":12,\"patchset\":\"abcdef1234567\","
		    "\"change_url\":\"https://gitlab.com/grp/sub/proj/-/merge_requests/12\"}");
	CHECK_STR(vstr(v, "change_label"), "!12");
	CHECK_STR(vstr(v, "change_kind"), "merge_request");
	CHECK_STR(vstr(v, "project_url"), "https://gitlab.com/grp/sub/proj");
	cJSON_Delete(v);

	v = view_of("{\"action\":\"failure\",\"project\":\"o/r\",\"branch\":\"main\",\"change\":null,"
		    "\"ref\":\"refs/heads/main\",\"commit_id\":\"a1b2c3d4e5f60718\","
		    "\"change_url\":\"https://github.com/o/r/commit/a1b2c3d4e5f60718\"}");
	CHECK_STR(vstr(v, "change_label"), "main");
	CHECK_STR(vstr(v, "change_kind"), "branch");
	CHECK_STR(vstr(v, "ref_name"), "main");
	CHECK_STR(vstr(v, "short_commit"), "a1b2c3d");
	CHECK_STR(vstr(v, "project_url"), "https://github.com/o/r");
	CHECK_INT(vbool(v, "has_change"), 0);
	cJSON_Delete(v);

	v = view_of("{\"action\":\"success\",\"branch\":\"\",\"ref\":\"refs/tags/29.1.0\",\"newrev\":\"x\"}");
	CHECK_STR(vstr(v, "change_label"), "29.1.0");
	CHECK_STR(vstr(v, "change_kind"), "tag");
	CHECK_INT(vbool(v, "is_tag"), 1);
	cJSON_Delete(v);

	v = view_of("{\"action\":\"success\",\"commit_id\":\"0123456789abcdef\"}");
	CHECK_STR(vstr(v, "change_label"), "0123456");
	CHECK_STR(vstr(v, "change_kind"), "commit");
	cJSON_Delete(v);

	v = view_of("{\"action\":\"success\"}");
	CHECK(vstr(v, "change_label") == NULL);
	CHECK(vstr(v, "change_kind") == NULL);
	cJSON_Delete(v);
}

static void test_view_buildset_and_history_urls_are_derived_and_encoded(void)
{
	cJSON *v = view_of(github_failure);
	/* The Zuul root keeps its sub-path (/zuul) when web_url has /t/<tenant>/. */
	CHECK_STR(vstr(v, "zuul_url"), "https://zuul.example.org/zuul");
	CHECK_STR(vstr(v, "buildset_url"), "https://zuul.example.org/zuul/t/scs/buildset/bs1");
	CHECK_STR(vstr(cJSON_GetObjectItem(v, "buildset"), "url"), "https://zuul.example.org/zuul/t/scs/buildset/bs1");
	CHECK_STR(vstr(v, "buildsets_url"),
		  "https://zuul.example.org/zuul/t/scs/buildsets?project=org%2Frepo&pipeline=check");
	const cJSON *b = vitem(v, "failed_builds", 0);
	CHECK_STR(vstr(b, "job_name"), "tox py311&x=1");
	CHECK_STR(vstr(b, "history_url"),
		  "https://zuul.example.org/zuul/t/scs/builds?job_name=tox%20py311%26x%3D1&project=org%2Frepo");
	CHECK_STR(vstr(b, "url"), "https://zuul.example.org/zuul/t/scs/build/u1");
	CHECK_STR(vstr(b, "log_url"), "https://logs.example.org/u1/");
	cJSON_Delete(v);

	/* A web_url that is not Zuul's "<root>build/<uuid>" gives no root: nothing is guessed. */
	v = view_of("{\"action\":\"failure\",\"tenant\":\"a b\",\"project\":\"p\",\"buildset\":{\"uuid\":\"x/y\","
		    "\"builds\":[{\"job_name\":\"j\",\"uuid\":\"u\",\"web_url\":\"https://z.example:8443/other/path?q#f\"}]}}");
	CHECK(vstr(v, "zuul_url") == NULL);
	CHECK(vstr(v, "buildset_url") == NULL);
	CHECK(vstr(vitem(v, "builds", 0), "history_url") == NULL);
	cJSON_Delete(v);

	/* A whitelabeled tenant (web-root https://tenant.example.com/): Zuul's links have no
	 * /t/<tenant>/, and neither have ours. */
	v = view_of("{\"action\":\"failure\",\"tenant\":\"a b\",\"project\":\"p\",\"pipeline\":\"gate\","
		    "\"buildset\":{\"uuid\":\"x/y\",\"result\":\"FAILURE\",\"builds\":[{\"job_name\":\"j\",\"uuid\":\"u\","
		    "\"web_url\":\"https://tenant.example.com/build/u\"}]}}");
	CHECK_STR(vstr(v, "tenant_url"), "https://tenant.example.com/");
	CHECK_STR(vstr(v, "zuul_url"), "https://tenant.example.com");
	CHECK_STR(vstr(v, "buildset_url"), "https://tenant.example.com/buildset/x%2Fy");
	CHECK_STR(vstr(v, "item_url"), "https://tenant.example.com/buildset/x%2Fy");
	CHECK_STR(vstr(v, "buildsets_url"), "https://tenant.example.com/buildsets?project=p&pipeline=gate");
	CHECK_STR(vstr(vitem(v, "builds", 0), "history_url"), "https://tenant.example.com/builds?job_name=j&project=p");
	cJSON_Delete(v);

	/* tenant_web_root, Zuul's own formatted root, wins over what a build's link implies. */
	v = view_of("{\"action\":\"start\",\"tenant\":\"scs\",\"tenant_web_root\":\"https://zuul.example.org/t/scs/\","
		    "\"change\":7,\"patchset\":\"2\",\"buildset\":{\"uuid\":\"b\",\"result\":null,\"builds\":[]}}");
	CHECK_STR(vstr(v, "tenant_url"), "https://zuul.example.org/t/scs/");
	CHECK_STR(vstr(v, "zuul_url"), "https://zuul.example.org");
	CHECK_STR(vstr(v, "buildset_url"), "https://zuul.example.org/t/scs/buildset/b");
	/* Before a result, Zuul itself links the status page of change,patchset. */
	CHECK_STR(vstr(v, "item_url"), "https://zuul.example.org/t/scs/status/change/7,2");
	cJSON_Delete(v);

	/* No web root configured: Zuul sends a relative "build/<uuid>" and a null root. */
	v = view_of("{\"action\":\"success\",\"tenant\":\"t\",\"tenant_web_root\":null,\"buildset\":{\"uuid\":\"b\","
		    "\"result\":\"SUCCESS\",\"builds\":[{\"job_name\":\"j\",\"uuid\":\"u\",\"web_url\":\"build/u\"}]}}");
	CHECK(vstr(v, "tenant_url") == NULL && vstr(v, "buildset_url") == NULL && vstr(v, "item_url") == NULL);
	CHECK(vstr(vitem(v, "builds", 0), "web_url") == NULL && vstr(vitem(v, "builds", 0), "history_url") == NULL);
	cJSON_Delete(v);

	/* Legacy payloads have no web_url: no derived URLs at all. */
	v = view_of("{\"action\":\"success\",\"tenant\":\"t\",\"buildset\":{\"uuid\":\"b\",\"builds\":"
		    "[{\"job_name\":\"j\",\"log_url\":\"https://logs/x\"}]}}");
	CHECK(vstr(v, "buildset_url") == NULL);
	CHECK(vstr(v, "zuul_url") == NULL);
	CHECK(vstr(vitem(v, "builds", 0), "history_url") == NULL);
	CHECK_STR(vstr(vitem(v, "builds", 0), "url"), "https://logs/x");
	cJSON_Delete(v);
}

static void test_view_drops_every_url_that_is_not_absolute_http(void)
{
	static const char *const bad[] = {
		"javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html;base64,PHNjcmlwdD4=",
		"vbscript:x", "/relative/path", "//evil.example/x", "https://", "http:///path",
		"https://a b.org/", "https://x.org/\"onmouseover=\"x", " https://x.org/", "https://x.org/\n",
		"ftp://x.org/", "mailto:a@b", "https://@evil", "https:evil.org",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "action", "failure");
		cJSON_AddStringToObject(p, "tenant", "t");
		cJSON_AddStringToObject(p, "change_url", bad[i]);
		cJSON *bs = cJSON_AddObjectToObject(p, "buildset");
		cJSON_AddStringToObject(bs, "uuid", "b");
		cJSON *builds = cJSON_AddArrayToObject(bs, "builds");
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "job_name", "j");
		cJSON_AddStringToObject(b, "log_url", bad[i]);
		cJSON_AddStringToObject(b, "web_url", bad[i]);
		cJSON *arts = cJSON_AddArrayToObject(b, "artifacts");
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "name", "n");
		cJSON_AddStringToObject(a, "url", bad[i]);
		cJSON_AddItemToArray(arts, a);
		cJSON_AddItemToArray(builds, b);
		char *json = cJSON_PrintUnformatted(p);
		cJSON *v = view_of(json);
		const cJSON *vb = vitem(v, "builds", 0);
		if (vstr(v, "change_url") || vstr(vb, "log_url") || vstr(vb, "web_url") || vstr(vb, "url") ||
		    vstr(v, "buildset_url") || vstr(vb, "history_url") || vstr(vitem(vb, "artifacts", 0), "url")) {
			test_current_failed = 1;
			printf("# URL %s: expected to be dropped everywhere, got a link\n", bad[i]);
		}
		CHECK_STR(vstr(vitem(vb, "artifacts", 0), "name"), "n");
		cJSON_Delete(v);
		free(json);
		cJSON_Delete(p);
	}
	cJSON *v = view_of("{\"action\":\"success\",\"change_url\":\"HTTPS://Example.ORG/x?a=1&b=2#f\"}");
	CHECK_STR(vstr(v, "change_url"), "HTTPS://Example.ORG/x?a=1&b=2#f");
	cJSON_Delete(v);
}

/* The text of the i-th block of list key, or of block key itself when i < 0. */
static const char *block_text(const cJSON *v, const char *key, int i)
{
	const cJSON *b = i < 0 ? cJSON_GetObjectItemCaseSensitive(v, key) : vitem(v, key, i);
	return vstr(b, "text");
}

/* BaseReporter._formatItemReport (zuul/reporter/__init__.py, 14.3.0) appends to the action's
 * text "\nWarning:\n  <w>\n" per warning, "\nDebug information:\n  <l1>\n  <l2>\n" and
 * "\n" + footer_message. Every part is kept, none is glued to the title. */
static void test_view_message_parts_as_zuul_writes_them(void)
{
	cJSON *v = view_of(github_failure);
	CHECK_STR(vstr(v, "message_summary"), "Build failed.");
	CHECK_STR(vstr(v, "title"), "Build failed.");
	CHECK_CONTAINS(vstr(v, "message"), "deprecated nodeset");
	CHECK_STR(block_text(v, "message_warnings", 0), "Job x uses a deprecated nodeset.");
	CHECK_INT(vbool(v, "has_message_warnings"), 1);
	CHECK(vstr(v, "message_body") == NULL);
	cJSON_Delete(v);

	/* Every section at once, glued the way Zuul glues them (no blank line after the
	 * action's text, since "Build failed." has no trailing newline). */
	v = view_of("{\"action\":\"failure\",\"message\":\"Build failed.\\nWarning:\\n  w1\\n"
		    "\\nWarning:\\n  w2 line one\\n  w2 line two\\n\\nDebug information:\\n  d1\\n  d2\\n"
		    "\\nFor help, ask #infra.\"}");
	CHECK_STR(vstr(v, "title"), "Build failed.");
	CHECK(vstr(v, "message_body") == NULL);
	CHECK_STR(block_text(v, "message_warnings", 0), "w1");
	CHECK_STR(block_text(v, "message_warnings", 1), "w2 line one\nw2 line two");
	CHECK_STR(block_text(v, "message_debug", -1), "d1\nd2");
	CHECK_STR(block_text(v, "message_footer", -1), "For help, ask #infra.");
	cJSON_Delete(v);

	/* A footer right under a one-line text stays out of the title (it ends a sentence). */
	v = view_of("{\"action\":\"failure\",\"message\":\"Build failed.\\nSee https://wiki.example/ci\"}");
	CHECK_STR(vstr(v, "title"), "Build failed.");
	CHECK_STR(vstr(v, "message_body"), "See https://wiki.example/ci");
	cJSON_Delete(v);

	/* The merge-conflict-message default: title and the whole explanation. */
	v = view_of("{\"action\":\"merge-conflict\",\"message\":\"Merge Failed.\\n\\nThis change or one of its "
		    "cross-repo dependencies was unable to be automatically merged with the current state of "
		    "its repository. Please rebase the change and upload a new patchset.\"}");
	CHECK_STR(vstr(v, "title"), "Merge Failed.");
	CHECK_CONTAINS(vstr(v, "message_body"), "Please rebase the change and upload a new patchset.");
	cJSON_Delete(v);

	/* _formatItemReportFailure with dequeued_needing_change set to a text. */
	v = view_of("{\"action\":\"failure\",\"message\":\"This change depends on a change that failed to "
		    "merge.\\n\\nChange https://review.example.org/1 is needed.\\n\"}");
	CHECK_STR(vstr(v, "title"), "This change depends on a change that failed to merge.");
	CHECK_STR(vstr(v, "message_body"), "Change https://review.example.org/1 is needed.");
	cJSON_Delete(v);

	/* Zuul's configuration errors are hard-wrapped: those lines make one title. */
	v = view_of("{\"action\":\"config-error\",\"message\":\"Zuul encountered a syntax error while parsing its\\n"
		    "configuration in the repo org/p on branch main.  The\\nproblem was:\\n\\n  Job x\\n\\n"
		    "  project:\\n    check: {}\\n\\nWarning:\\n  w\"}");
	CHECK_STR(vstr(v, "message_summary"), "Zuul encountered a syntax error while parsing its configuration "
					      "in the repo org/p on branch main.  The problem was:");
	CHECK_STR(vstr(v, "message_body"), "  Job x\n\n  project:\n    check: {}");
	CHECK_STR(vstr(v, "message_details"), "  Job x\n\n  project:\n    check: {}");
	CHECK_INT(vbool(vitem(v, "message_paragraphs", 0), "preformatted"), 1);
	CHECK_STR(block_text(v, "message_warnings", 0), "w");
	cJSON_Delete(v);

	/* An empty action text (enqueue-message defaults to ""): what follows is the footer. */
	v = view_of("{\"action\":\"enqueue\",\"message\":\"\\nFooter text\"}");
	CHECK(vstr(v, "message_summary") == NULL);
	CHECK_STR(vstr(v, "title"), "Enqueued");
	CHECK_STR(block_text(v, "message_footer", -1), "Footer text");
	cJSON_Delete(v);

	/* Nothing before the warnings: no summary, the title falls back to the action label. */
	v = view_of("{\"action\":\"config-error\",\"message\":\"Warning:\\n bad\"}");
	CHECK(vstr(v, "message_summary") == NULL);
	CHECK_INT(vbool(v, "has_message"), 0);
	CHECK_STR(vstr(v, "title"), "Configuration error");
	cJSON_Delete(v);

	/* A huge first paragraph is cut, on a character boundary, with an ellipsis. */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "{\"action\":\"failure\",\"message\":\"");
	for (int i = 0; i < 400; i++)
		strbuf_puts(&sb, "\xc3\xa9"); /* é, two bytes */
	strbuf_puts(&sb, "\"}");
	v = view_of(strbuf_str(&sb));
	const char *s = vstr(v, "message_summary");
	CHECK(s && strlen(s) <= 503);
	CHECK(s && strcmp(s + strlen(s) - 3, "\xe2\x80\xa6") == 0);
	CHECK(s && strncmp(s, "\xc3\xa9\xc3\xa9", 4) == 0 && ((unsigned char)s[strlen(s) - 4] == 0xa9));
	cJSON_Delete(v);
	strbuf_free(&sb);
}

static void test_view_times_are_iso_utc_and_durations_human(void)
{
	cJSON *v = view_of(github_failure);
	CHECK_STR(vstr(v, "trigger_time_iso"), "2024-11-21T09:19:50Z");
	CHECK_STR(vstr(v, "trigger_time_text"), "2024-11-21 09:19:50 UTC");
	CHECK_STR(vstr(v, "trigger_time_clock"), "09:19:50");
	CHECK(vnum(v, "trigger_time") > 1732180790 && vnum(v, "trigger_time") < 1732180791);
	CHECK_STR(vstr(v, "duration"), "10m 20s");
	CHECK_INT(vnum(v, "duration_seconds"), 620);
	const cJSON *b = vitem(v, "failed_builds", 0);
	CHECK_STR(vstr(b, "start_time_iso"), "2024-11-21T09:20:51Z");
	CHECK_STR(vstr(b, "end_time_clock"), "09:25:20");
	CHECK_STR(vstr(b, "duration"), "4m 29s");
	CHECK_INT(vnum(b, "duration_seconds"), 269);
	cJSON_Delete(v);

	/* Unknown, negative and absurd times are absent, not "1970" or garbage. */
	v = view_of("{\"action\":\"failure\",\"trigger_time\":-5,\"enqueue_time\":1e300,\"buildset\":{\"builds\":"
		    "[{\"job_name\":\"j\",\"start_time\":100,\"end_time\":50}]}}");
	CHECK(vstr(v, "trigger_time_iso") == NULL);
	CHECK(vstr(v, "enqueue_time_iso") == NULL);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(v, "trigger_time")));
	CHECK(vstr(vitem(v, "builds", 0), "duration") == NULL);
	cJSON_Delete(v);
}

static void test_view_lists_counts_and_failed_first_order(void)
{
	cJSON *v = view_of(github_failure);
	CHECK_INT(vnum(v, "build_count"), 4);
	CHECK_INT(vnum(v, "failed_count"), 1);
	CHECK_INT(vnum(v, "non_voting_count"), 1);
	CHECK_INT(vnum(v, "non_voting_failed_count"), 1);
	CHECK_INT(vnum(v, "succeeded_count"), 1);
	CHECK_INT(vnum(v, "pending_count"), 0); /* a final report: nothing is pending */
	CHECK_INT(vnum(v, "other_count"), 1);
	CHECK_INT(vnum(v, "retried_count"), 1);
	CHECK_INT(vbool(v, "has_failed_builds"), 1);
	CHECK_INT(vbool(v, "has_retried_builds"), 1);
	CHECK_INT(vbool(v, "has_non_voting_failed_builds"), 1);
	CHECK_STR(vstr(vitem(v, "sorted_builds", 0), "job_name"), "tox py311&x=1");
	CHECK_STR(vstr(vitem(v, "sorted_builds", 1), "job_name"), "nv-job");
	CHECK_STR(vstr(vitem(v, "sorted_builds", 2), "job_name"), "running-job");
	CHECK_STR(vstr(vitem(v, "sorted_builds", 3), "job_name"), "ok-job");
	CHECK_STR(vstr(vitem(v, "builds", 0), "job_name"), "ok-job");
	CHECK_STR(vstr(vitem(v, "non_voting_builds", 0), "job_name"), "nv-job");
	CHECK_INT(vbool(vitem(v, "non_voting_builds", 0), "non_voting"), 1);
	/* Still running when the item failed (fail-fast): it will not finish for this report. */
	CHECK_STR(vstr(vitem(v, "other_builds", 0), "result_label"), "UNFINISHED");
	const cJSON *r = vitem(v, "retried_builds", 0);
	CHECK_STR(vstr(r, "result"), "RETRY");
	CHECK_INT(vbool(r, "retried"), 1);
	CHECK_INT(vbool(r, "is_failure"), 0);
	cJSON_Delete(v);

	/* A finished build's unknown result on a failing report counts as a failure (a result
	 * Zuul adds later, or a job's failure-message); a job without a build is not run. */
	v = view_of("{\"action\":\"failure\",\"buildset\":{\"builds\":[{\"job_name\":\"a\",\"result\":\"BRAND_NEW\","
		    "\"end_time\":1700000000},{\"job_name\":\"b\"},{\"job_name\":\"c\",\"result\":\"SKIPPED\"}]}}");
	CHECK_INT(vnum(v, "failed_count"), 1);
	CHECK_STR(vstr(vitem(v, "failed_builds", 0), "job_name"), "a");
	CHECK_INT(vnum(v, "pending_count"), 0);
	CHECK_STR(vstr(vitem(v, "other_builds", 0), "job_name"), "b");
	CHECK_STR(vstr(vitem(v, "other_builds", 0), "result_label"), "NOT RUN");
	CHECK_INT(vbool(vitem(v, "other_builds", 0), "not_run"), 1);
	CHECK_STR(vstr(vitem(v, "other_builds", 1), "job_name"), "c");
	CHECK_INT(vbool(v, "has_retried_builds"), 0);
	cJSON_Delete(v);
	/* Before the item is over, no result is PENDING (or RUNNING once started). */
	v = view_of("{\"action\":\"start\",\"buildset\":{\"builds\":[{\"job_name\":\"b\"},"
		    "{\"job_name\":\"r\",\"uuid\":\"u\",\"start_time\":1700000000}]}}");
	CHECK_STR(vstr(vitem(v, "pending_builds", 0), "result_label"), "PENDING");
	CHECK_STR(vstr(vitem(v, "pending_builds", 1), "result_label"), "RUNNING");
	CHECK_INT(vbool(vitem(v, "pending_builds", 0), "not_run"), 0);
	cJSON_Delete(v);
}

static void test_view_action_booleans_icons_and_result(void)
{
	cJSON *v = view_of(github_failure);
	CHECK_INT(vbool(v, "is_failure"), 1);
	CHECK_INT(vbool(v, "is_start"), 0);
	CHECK_INT(vbool(v, "is_problem"), 1);
	CHECK_INT(vbool(v, "is_final"), 1);
	CHECK_STR(vstr(v, "icon"), "\xe2\x9d\x8c");
	CHECK_STR(vstr(v, "color"), "#cf222e");
	CHECK_STR(vstr(v, "result"), "FAILURE");
	CHECK_STR(vstr(v, "action_label"), "Failed");
	cJSON_Delete(v);

	v = view_of("{\"action\":\"merge-failure\"}");
	CHECK_INT(vbool(v, "is_merge_conflict"), 1);
	CHECK_INT(vbool(v, "is_merge_failure"), 1);
	CHECK_STR(vstr(v, "result"), "MERGE_FAILURE");
	CHECK_STR(vstr(v, "schema"), "legacy");
	cJSON_Delete(v);

	v = view_of("{\"action\":\"start\",\"uuid\":\"u\"}");
	CHECK_INT(vbool(v, "is_start"), 1);
	CHECK_INT(vbool(v, "is_final"), 0);
	CHECK(vstr(v, "result") == NULL);
	cJSON_Delete(v);

	v = view_of("{\"action\":\"something-new\"}");
	CHECK_STR(vstr(v, "action_label"), "something-new");
	CHECK_INT(vbool(v, "is_problem"), 0);
	cJSON_Delete(v);
}

/* ------------------------------------------------------------------------ */
/* content and injection                                                      */

static struct report_templates default_templates(void)
{
	struct report_templates rt = {NULL, NULL};
	char err[512] = "";
	if (report_templates_load(&rt, DEFAULT_TEMPLATE, err, sizeof err) != 0)
		printf("# cannot load %s: %s\n", DEFAULT_TEMPLATE, err);
	return rt;
}

static void test_content_has_matrix_fields_and_failed_build_first(void)
{
	struct report_templates rt = default_templates();
	struct zuul_event *ev = parse(github_failure);
	CHECK(rt.html != NULL && ev != NULL);
	if (!rt.html || !ev)
		goto out;
	cJSON *c = report_content_new(&rt, ev, NULL);
	CHECK_STR(vstr(c, "msgtype"), "m.notice");
	CHECK_STR(vstr(c, "format"), "org.matrix.custom.html");
	const char *html = vstr(c, "formatted_body");
	const char *body = vstr(c, "body");
	CHECK_CONTAINS(html, "<b>Build failed.</b>");
	CHECK_CONTAINS(html, "<a href=\"https://github.com/org/repo/pull/812\">#812</a> by jdoe");
	CHECK_CONTAINS(html, "<span data-mx-color=\"#cf222e\">FAILURE</span>");
	CHECK_NOT_CONTAINS(html, "<font");
	CHECK_CONTAINS(html, "job_name=tox%20py311%26x%3D1&amp;project=org%2Frepo");
	CHECK_NOT_CONTAINS(html, "javascript:");
	CHECK_NOT_CONTAINS(html, "data:");
	/* The message's Warning: section is shown whole, apart from the title. */
	CHECK_CONTAINS(html, "<p>\xe2\x9a\xa0\xef\xb8\x8f <b>Warning:</b> Job x uses a deprecated nodeset.</p>");
	CHECK_NOT_CONTAINS(html, "<b>Build failed. Warning");
	const char *failed = html ? strstr(html, "tox py311&amp;x=1") : NULL;
	const char *ok = html ? strstr(html, "ok-job") : NULL;
	CHECK(failed && ok && failed < ok);
	CHECK_CONTAINS(body, "Build failed.");
	CHECK_CONTAINS(body, "- \xe2\x9d\x8c tox py311&x=1: FAILURE (https://zuul.example.org/zuul/t/scs/build/u1)");
	CHECK_CONTAINS(body, "logs (https://logs.example.org/u1/)");
	CHECK_NOT_CONTAINS(body, "<");
	CHECK_NOT_CONTAINS(body, "&amp;");
	cJSON_Delete(c);
out:
	zuul_event_free(ev);
	report_templates_clear(&rt);
}

static void test_content_escapes_hostile_values(void)
{
	static const char *const hostile =
		"{\"action\":\"failure\",\"tenant\":\"t\\\"><img src=x>\",\"pipeline\":\"<b>p</b>\","
		"\"project\":\"<script>alert(1)</script>\",\"branch\":\"</a><a href=\\\"javascript:x\\\">\","
		"\"change\":1,\"patchset\":\"2\",\"owner\":\"<a href='https://evil.example'>me</a>&amp;\","
		"\"change_url\":\"https://ok.example/1\\\" onclick=\\\"x\","
		"\"message\":\"{{#x}}<iframe src=//evil>{{/x}} &lt;\","
		"\"buildset\":{\"uuid\":\"b\",\"builds\":[{\"job_name\":\"<font data-mx-color='#000'>j</font>'\","
		"\"result\":\"<i>FAIL</i>\",\"log_url\":\"https://ok.example/log?<x>\","
		"\"web_url\":\"https://zuul.example/t/t/build/1\"}]}}";
	struct report_templates rt = default_templates();
	struct zuul_event *ev = parse(hostile);
	CHECK(rt.html != NULL && ev != NULL);
	if (!rt.html || !ev)
		goto out;
	cJSON *c = report_content_new(&rt, ev, NULL);
	const char *html = vstr(c, "formatted_body");
	const char *body = vstr(c, "body");
	CHECK_NOT_CONTAINS(html, "<script");
	CHECK_NOT_CONTAINS(html, "<img");
	CHECK_NOT_CONTAINS(html, "<iframe");
	CHECK_NOT_CONTAINS(html, "<i>FAIL");
	CHECK_NOT_CONTAINS(html, "href=\"javascript");
	CHECK_NOT_CONTAINS(html, "href='");
	CHECK_NOT_CONTAINS(html, "evil.example'>");
	CHECK_NOT_CONTAINS(html, "onclick");
	CHECK_NOT_CONTAINS(html, "<font data-mx-color='#000'>");
	CHECK_CONTAINS(html, "&lt;script&gt;alert(1)&lt;/script&gt;");
	CHECK_CONTAINS(html, "&lt;a href=&#39;https://evil.example&#39;&gt;me&lt;/a&gt;&amp;amp;");
	CHECK_CONTAINS(html, "{{#x}}&lt;iframe");
	/* The body shows the values as the payload had them, as text. */
	CHECK_CONTAINS(body, "<script>alert(1)</script>");
	CHECK_CONTAINS(body, "by <a href='https://evil.example'>me</a>&amp;");
	CHECK_CONTAINS(body, "{{#x}}<iframe src=//evil>{{/x}} &lt;");
	cJSON_Delete(c);
out:
	zuul_event_free(ev);
	report_templates_clear(&rt);
}

static char *temp_dir_new(void)
{
	char *dir = xstrdup("/tmp/zmb-test-report-XXXXXX");
	if (!mkdtemp(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	struct strbuf p = STRBUF_INIT;
	strbuf_printf(&p, "%s/%s", dir, name);
	FILE *f = fopen(strbuf_str(&p), "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	strbuf_free(&p);
}

static void remove_file(const char *dir, const char *name)
{
	struct strbuf p = STRBUF_INIT;
	strbuf_printf(&p, "%s/%s", dir, name);
	unlink(strbuf_str(&p));
	strbuf_free(&p);
}

/* A buildset of `n` builds where every `fail_every`-th one failed, as a payload. */
static char *huge_buildset(int n, int fail_every)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "{\"action\":\"failure\",\"tenant\":\"t\",\"pipeline\":\"periodic\","
			 "\"project\":\"org/repo\",\"branch\":\"main\",\"buildset\":{\"uuid\":\"bs1\","
			 "\"result\":\"FAILURE\",\"builds\":[");
	for (int i = 0; i < n; i++)
		strbuf_printf(&sb,
			      "%s{\"job_name\":\"job-with-a-fairly-long-name-%04d\",\"uuid\":\"u%d\","
			      "\"result\":\"%s\",\"voting\":true,\"start_time\":1000,\"end_time\":1300,"
			      "\"log_url\":\"https://logs.example.org/periodic/job-%04d/abcdef0/\","
			      "\"web_url\":\"https://zuul.example.org/t/t/build/u%d\"}",
			      i ? "," : "", i, i, i % fail_every == 0 ? "FAILURE" : "SUCCESS", i, i);
	strbuf_puts(&sb, "]}}");
	return strbuf_detach(&sb);
}

static size_t printed_size(const cJSON *c)
{
	char *json = cJSON_PrintUnformatted(c);
	size_t n = strlen(json);
	cJSON_free(json);
	return n;
}

static void test_content_too_large_for_matrix_sheds_successes_then_halves(void)
{
	struct report_templates rt = default_templates();
	/* 400 builds, 1 in 10 failed: the failures fit once the successes are gone. */
	char *json = huge_buildset(400, 10);
	struct zuul_event *ev = parse(json);
	CHECK(rt.html != NULL && ev != NULL);
	if (!rt.html || !ev)
		goto out;
	cJSON *c = report_content_new(&rt, ev, NULL);
	CHECK(printed_size(c) <= REPORT_MAX_CONTENT_BYTES);
	const char *html = vstr(c, "formatted_body");
	CHECK_CONTAINS(html, "job-with-a-fairly-long-name-0390</b>"); /* a failure: kept */
	CHECK_NOT_CONTAINS(html, "job-with-a-fairly-long-name-0391</b>"); /* a success: shed */
	CHECK_CONTAINS(html, "360 more builds not shown");
	CHECK_CONTAINS(vstr(c, "body"), "360 more builds not shown");
	cJSON_Delete(c);
	zuul_event_free(ev);
	free(json);

	/* 600 failures: even the failures must be cut, by halves, and the note says how many. */
	json = huge_buildset(600, 1);
	ev = parse(json);
	c = report_content_new(&rt, ev, NULL);
	CHECK(printed_size(c) <= REPORT_MAX_CONTENT_BYTES);
	CHECK_CONTAINS(vstr(c, "formatted_body"), "job-with-a-fairly-long-name-0000</b>");
	CHECK_CONTAINS(vstr(c, "formatted_body"), "more builds not shown");
	cJSON_Delete(c);
out:
	zuul_event_free(ev);
	free(json);
	report_templates_clear(&rt);
}

/* The caller's reserve (mentions, the failure marker, claim lines of later edits) is left
 * free: the same report sheds builds to stay that much under the cap, and no more. */
static void test_content_leaves_the_reserve_free(void)
{
	struct report_templates rt = default_templates();
	char *json = huge_buildset(80, 1); /* over 40 KB of failures, under the cap */
	struct zuul_event *ev = parse(json);
	CHECK(rt.html != NULL && ev != NULL);
	if (rt.html && ev) {
		cJSON *whole = report_content_new(&rt, ev, NULL);
		size_t n = printed_size(whole);
		CHECK(n > REPORT_MAX_CONTENT_BYTES - 20000 && n <= REPORT_MAX_CONTENT_BYTES);
		CHECK_NOT_CONTAINS(vstr(whole, "formatted_body"), "not shown");
		struct report_context ctx = {.route_name = "r", .reserve_bytes = 20000};
		cJSON *shed = report_content_new(&rt, ev, &ctx);
		size_t m = printed_size(shed);
		if (m > REPORT_MAX_CONTENT_BYTES - 20000)
			printf("# expected at most %d bytes with 20000 reserved, got %zu\n", REPORT_MAX_CONTENT_BYTES - 20000, m);
		CHECK(m <= REPORT_MAX_CONTENT_BYTES - 20000);
		CHECK_CONTAINS(vstr(shed, "formatted_body"), "more builds not shown");
		/* At most half the cap is ever reserved: a report keeps something to say. */
		ctx.reserve_bytes = 10 * REPORT_MAX_CONTENT_BYTES;
		cJSON *half = report_content_new(&rt, ev, &ctx);
		CHECK(printed_size(half) <= REPORT_MAX_CONTENT_BYTES / 2 && printed_size(half) > 1000);
		cJSON_Delete(whole);
		cJSON_Delete(shed);
		cJSON_Delete(half);
	}
	zuul_event_free(ev);
	free(json);
	report_templates_clear(&rt);
}

static void test_content_that_fits_is_not_cut(void)
{
	struct report_templates rt = default_templates();
	char *json = huge_buildset(20, 2);
	struct zuul_event *ev = parse(json);
	CHECK(rt.html != NULL && ev != NULL);
	if (rt.html && ev) {
		cJSON *c = report_content_new(&rt, ev, NULL);
		CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), "not shown");
		CHECK_CONTAINS(vstr(c, "formatted_body"), "job-with-a-fairly-long-name-0019</b>");
		cJSON_Delete(c);
	}
	zuul_event_free(ev);
	free(json);
	report_templates_clear(&rt);
}

/* Full details for whatever build is asked about: the docs test sees every details key. */
static const struct build_details *any_build_details(const char *uuid, void *data)
{
	(void)uuid;
	(void)data;
	static const struct build_details all = {
		.uuid = "any", .job = "tox-py311", .reported_result = "Build failed, see docs", .true_result = "FAILURE",
		.error_detail = "Node request failed", .failed = true, .has_task = true, .done = true,
		.task = {.task = "Run tox", .role = "tox", .host = "ubuntu-jammy", .phase = "run",
			 .playbook = "opendev.org/zuul/zuul-jobs/playbooks/tox/run.yaml", .has_rc = true, .rc = 1,
			 .msg = "non-zero return code", .error_lines = "FAILED test_a"},
		.verdict = {.kind = FLAKY_FLAKY, .failures = 3, .runs = 10, .retries = 1}};
	return &all;
}

/* Every key of the view model (top level, and inside the objects of its lists) must appear
 * as `key` in docs/templates.md: template authors work from that page, not from report.c. */
static void check_keys_documented(const cJSON *obj, const char *doc, const char *prefix)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, obj)
	{
		/* A nested object's keys are documented dotted (`buildset.uuid`); the items of a
		 * list (builds, changes, artifacts) are documented by their own key names. */
		char quoted[200], dotted[200];
		snprintf(quoted, sizeof quoted, "`%s%s`", prefix, it->string);
		snprintf(dotted, sizeof dotted, "`%s%s.", prefix, it->string);
		bool nested = cJSON_IsObject(it);
		if (!strstr(doc, quoted) && !(nested && strstr(doc, dotted))) {
			test_current_failed = 1;
			printf("# view variable %s is not documented in docs/templates.md\n", quoted);
		}
		if (cJSON_IsArray(it) && cJSON_IsObject(it->child))
			check_keys_documented(it->child, doc, "");
		else if (nested && strstr(doc, dotted))
			check_keys_documented(it, doc, dotted + 1);
	}
}

static void test_every_view_variable_is_documented(void)
{
	size_t len;
	char *doc = file_read_all("docs/templates.md", &len);
	CHECK(doc != NULL);
	const char *payloads[] = {"tests/data/payloads/shared-modern-failure.json",
				  "tests/data/payloads/artifacts.json", "tests/data/payloads/multiple-changes.json",
				  "tests/data/payloads/retried-builds.json"};
	for (size_t i = 0; doc && i < sizeof payloads / sizeof payloads[0]; i++) {
		char *json = file_read_all(payloads[i], &len);
		struct zuul_event *ev = json ? parse(json) : NULL;
		CHECK(ev != NULL);
		if (ev) {
			/* With a runbook and a hint, so that what_to_do's own keys are checked too. */
			/* ...and with details for every build, so that their keys are checked too. */
			struct report_context ctx = {.route_name = "docs",
						     .runbook = "https://wiki.example.org/runbooks/zuul",
						     .hint = "Ask #infra.",
						     .details_of = any_build_details,
						     .details_data = NULL};
			cJSON *view = report_view_new(ev, &ctx);
			check_keys_documented(view, doc, "");
			cJSON_Delete(view);
		}
		zuul_event_free(ev);
		free(json);
	}
	free(doc);
}

static void test_templates_load_uses_txt_companion_and_partials(void)
{
	char *dir = temp_dir_new();
	CHECK(dir != NULL);
	if (!dir)
		return;
	write_file(dir, "r.html", "<p>{{> head}} {{project}}</p>\n");
	write_file(dir, "head", "<b>{{action}}</b>");
	write_file(dir, "r.txt", "TEXT {{action}} {{project}}\n");
	write_file(dir, "plain.html", "<p>{{action}} &amp; {{project}}</p>");
	struct strbuf p = STRBUF_INIT;
	char err[512] = "";

	struct report_templates rt;
	strbuf_printf(&p, "%s/r.html", dir);
	CHECK_INT(report_templates_load(&rt, strbuf_str(&p), err, sizeof err), 0);
	CHECK(rt.html != NULL && rt.text != NULL);
	struct zuul_event *ev = parse("{\"action\":\"success\",\"project\":\"a&b\"}");
	if (rt.html && ev) {
		cJSON *c = report_content_new(&rt, ev, NULL);
		CHECK_STR(vstr(c, "formatted_body"), "<p><b>success</b> a&amp;b</p>");
		CHECK_STR(vstr(c, "body"), "TEXT success a&amp;b");
		cJSON_Delete(c);
	}
	report_templates_clear(&rt);
	CHECK(rt.html == NULL && rt.text == NULL);

	strbuf_reset(&p);
	strbuf_printf(&p, "%s/plain.html", dir);
	CHECK_INT(report_templates_load(&rt, strbuf_str(&p), err, sizeof err), 0);
	CHECK(rt.html != NULL && rt.text == NULL);
	if (rt.html && ev) {
		cJSON *c = report_content_new(&rt, ev, NULL);
		CHECK_STR(vstr(c, "body"), "success & a&b");
		cJSON_Delete(c);
	}
	report_templates_clear(&rt);
	zuul_event_free(ev);

	/* A broken companion fails the load, naming the companion file. */
	write_file(dir, "r.txt", "{{#open}}\n");
	strbuf_reset(&p);
	strbuf_printf(&p, "%s/r.html", dir);
	CHECK_INT(report_templates_load(&rt, strbuf_str(&p), err, sizeof err), -1);
	CHECK_CONTAINS(err, "r.txt");
	CHECK(rt.html == NULL && rt.text == NULL);

	strbuf_reset(&p);
	strbuf_printf(&p, "%s/missing.html", dir);
	CHECK_INT(report_templates_load(&rt, strbuf_str(&p), err, sizeof err), -1);
	CHECK_CONTAINS(err, "missing.html");

	remove_file(dir, "r.html");
	remove_file(dir, "r.txt");
	remove_file(dir, "head");
	remove_file(dir, "plain.html");
	rmdir(dir);
	free(dir);
	strbuf_free(&p);
}

/* ------------------------------------------------------------------------ */
/* golden files and properties over the whole corpus                          */

/* formatted_body holds to the current spec's tags and attributes (tests/html_check.h). */
static void check_html_subset(const char *name, const char *html)
{
	char why[256];
	if (html_check(html, why, sizeof why) != 0) {
		test_current_failed = 1;
		printf("# %s: formatted_body breaks the Matrix spec's HTML: %s\n", name, why);
	}
}

static void collect_strings(const cJSON *item, struct strbuf *sb)
{
	if (cJSON_IsString(item)) {
		strbuf_puts(sb, item->valuestring);
		strbuf_putc(sb, '\n');
	}
	for (const cJSON *c = item ? item->child : NULL; c; c = c->next)
		collect_strings(c, sb);
}

/* The body is text: a tag or an entity in it must come from the payload itself. */
static void check_body_is_text(const char *name, const char *body, const char *payload_strings)
{
	for (const char *p = body; *p; p++) {
		size_t n = 0;
		if (*p == '<' && (isalpha((unsigned char)p[1]) || p[1] == '/'))
			n = strcspn(p, ">") + 1;
		else if (*p == '&' && (isalpha((unsigned char)p[1]) || p[1] == '#'))
			n = strspn(p + 1, "#abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + 1;
		if (n == 0 || (p[0] == '&' && p[n] != ';'))
			continue;
		if (p[0] == '&')
			n++;
		char *tok = xstrndup(p, n > 40 ? 40 : n);
		if (!strstr(payload_strings, tok)) {
			test_current_failed = 1;
			printf("# %s: body has markup %s that the payload never contained\n", name, tok);
		}
		free(tok);
	}
}

/* Up to 120 bytes of s on one TAP diagnostic line: newlines and tabs escaped. */
static void print_excerpt(const char *label, const char *s)
{
	printf("#   %s", label);
	for (int i = 0; i < 120 && s[i]; i++) {
		if (s[i] == '\n')
			fputs("\\n", stdout);
		else if (s[i] == '\t')
			fputs("\\t", stdout);
		else
			putchar(s[i]);
	}
	putchar('\n');
}

static void show_first_difference(const char *want, const char *got)
{
	int line = 1;
	const char *w = want, *g = got;
	while (*w && *w == *g) {
		if (*w == '\n')
			line++;
		w++;
		g++;
	}
	printf("#   first difference at line %d:\n", line);
	print_excerpt("expected: ", w);
	print_excerpt("got:      ", g);
}

static void golden_case_with(const struct report_templates *rt, const char *payload_dir, const char *golden_dir,
			     const char *file, const struct report_context *with)
{
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/%s", payload_dir, file);
	size_t len = 0;
	char *payload = read_file(strbuf_str(&path), &len);
	char err[256] = "";
	struct zuul_event *ev = payload ? zuul_event_parse(payload, len, err, sizeof err) : NULL;
	if (!ev) {
		test_current_failed = 1;
		printf("# %s: cannot decode: %s\n", file, payload ? err : "unreadable");
		goto out;
	}
	struct report_context ctx = {.route_name = "golden"};
	cJSON *content = report_content_new(rt, ev, with ? with : &ctx);
	char *json = cJSON_Print(content);
	struct strbuf got = STRBUF_INIT;
	strbuf_puts(&got, json);
	strbuf_putc(&got, '\n');

	/* properties */
	check_html_subset(file, vstr(content, "formatted_body"));
	cJSON *raw = cJSON_ParseWithLength(payload, len);
	struct strbuf strings = STRBUF_INIT;
	collect_strings(raw, &strings);
	check_body_is_text(file, vstr(content, "body"), strbuf_str(&strings));
	strbuf_free(&strings);
	cJSON_Delete(raw);

	/* golden */
	struct strbuf gpath = STRBUF_INIT;
	strbuf_printf(&gpath, "%s/%.*s.json", golden_dir, (int)(strlen(file) - 5), file);
	const char *update = getenv("ZMB_UPDATE_GOLDEN");
	if (update && strcmp(update, "1") == 0) {
		mkdir(GOLDEN_DIR, 0755);
		mkdir(golden_dir, 0755);
		FILE *f = fopen(strbuf_str(&gpath), "w");
		if (!f || fputs(strbuf_str(&got), f) < 0) {
			test_current_failed = 1;
			printf("# cannot write %s: %s\n", strbuf_str(&gpath), strerror(errno));
		}
		if (f)
			fclose(f);
	} else {
		char *want = read_file(strbuf_str(&gpath), NULL);
		if (!want) {
			test_current_failed = 1;
			printf("# %s missing; run with ZMB_UPDATE_GOLDEN=1 and review it\n", strbuf_str(&gpath));
		} else if (strcmp(want, strbuf_str(&got)) != 0) {
			test_current_failed = 1;
			printf("# %s differs from the rendering of %s\n", strbuf_str(&gpath), file);
			show_first_difference(want, strbuf_str(&got));
		}
		free(want);
	}
	strbuf_free(&gpath);
	strbuf_free(&got);
	free(json);
	cJSON_Delete(content);
out:
	zuul_event_free(ev);
	free(payload);
	strbuf_free(&path);
}

static void golden_case(const struct report_templates *rt, const char *payload_dir, const char *golden_dir,
			const char *file)
{
	golden_case_with(rt, payload_dir, golden_dir, file, NULL);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One golden test per payload of payload_dir (index.json aside), rendered into golden_dir. */
static void run_golden_dir(const struct report_templates *rt, const char *payload_dir, const char *golden_dir,
			   const char *label)
{
	DIR *d = opendir(payload_dir);
	if (!d) {
		RUN_NAMED(label, (test_current_failed = 1, printf("# %s: %s\n", payload_dir, strerror(errno))));
		return;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0 && strcmp(e->d_name, "index.json") != 0) {
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = xstrdup(e->d_name);
		}
	}
	closedir(d);
	qsort(names, n, sizeof *names, name_cmp);
	RUN_NAMED(label, CHECK(n >= 4));
	const char *gshort = golden_dir + strlen(ZMB_SOURCE_ROOT "/");
	for (size_t i = 0; i < n; i++) {
		char title[512];
		snprintf(title, sizeof title, "golden: %s renders as %s/%.*s.json, Matrix subset only", names[i], gshort,
			 (int)(strlen(names[i]) - 5), names[i]);
		RUN_NAMED(title, golden_case(rt, payload_dir, golden_dir, names[i]));
		free(names[i]);
	}
	free(names);
}

static void run_golden_tests(void)
{
	struct report_templates rt = default_templates();
	if (!rt.html) {
		RUN_NAMED("golden: templates/default.html loads", (test_current_failed = 1));
		return;
	}
	run_golden_dir(&rt, PAYLOAD_DIR, GOLDEN_DIR, "golden: the corpus has payloads");
	/* What Zuul 14.3.0 itself sends, rendered: the reports the room will really see. */
	run_golden_dir(&rt, ZUUL_DIR, GOLDEN_DIR "/zuul-14.3.0", "golden: tests/data/zuul-14.3.0 has payloads");
	report_templates_clear(&rt);
}

/* Declared here, defined with the build details tests below. */
static void run_details_golden_tests(void);

/* ------------------------------------------------------------------------ */
/* what to do: runbook and hint under a problem report                        */

#define RUNBOOK "https://wiki.example.org/runbooks/zuul?page=ci#tox"
#define RUNBOOK_HTML "https://wiki.example.org/runbooks/zuul?page=ci#tox"

/* The view of json with runbook and hint in the context. Caller frees. */
static cJSON *view_with(const char *json, const char *runbook, const char *hint)
{
	struct zuul_event *ev = parse(json);
	if (!ev)
		return NULL;
	struct report_context ctx = {.route_name = "r", .runbook = runbook, .hint = hint};
	cJSON *v = report_view_new(ev, &ctx);
	zuul_event_free(ev);
	return v;
}

/* The default template's content for json with runbook and hint. Caller frees. */
static cJSON *content_with(const char *json, const char *runbook, const char *hint)
{
	struct report_templates rt = default_templates();
	struct zuul_event *ev = parse(json);
	cJSON *c = NULL;
	if (rt.html && ev) {
		struct report_context ctx = {.route_name = "r", .runbook = runbook, .hint = hint};
		c = report_content_new(&rt, ev, &ctx);
	}
	zuul_event_free(ev);
	report_templates_clear(&rt);
	return c;
}

static const cJSON *what_to_do(const cJSON *view)
{
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(view, "what_to_do");
	if (!w)
		printf("# the view has no what_to_do key at all (expected an object or null)\n");
	return w;
}

static void test_what_to_do_view_has_runbook_and_hint_of_a_failure(void)
{
	cJSON *v = view_with(github_failure, RUNBOOK, "Recheck once; then ask #infra.");
	const cJSON *w = what_to_do(v);
	CHECK(cJSON_IsObject(w));
	CHECK_STR(vstr(w, "runbook"), RUNBOOK);
	CHECK_INT(vbool(w, "runbook_ok"), 1);
	CHECK_STR(vstr(w, "hint"), "Recheck once; then ask #infra.");
	cJSON_Delete(v);

	/* Without either, the key is there and null, like every unknown value. */
	v = view_with(github_failure, NULL, NULL);
	w = what_to_do(v);
	CHECK(cJSON_IsNull(w));
	cJSON_Delete(v);
}

static void test_what_to_do_renders_under_the_summary_in_html_and_text(void)
{
	cJSON *c = content_with(github_failure, RUNBOOK, "Recheck once; then ask #infra.");
	const char *html = vstr(c, "formatted_body");
	const char *body = vstr(c, "body");
	CHECK_CONTAINS(html, "<p><b>What to do:</b> <a href=\"" RUNBOOK_HTML "\">Runbook</a> · "
			     "Recheck once; then ask #infra.</p>\n");
	/* Under the summary paragraph, before the list of builds. */
	const char *title = html ? strstr(html, "Build failed.") : NULL;
	const char *wtd = html ? strstr(html, "What to do:") : NULL;
	const char *list = html ? strstr(html, "<ul>") : NULL;
	CHECK(title && wtd && list && title < wtd && wtd < list);
	CHECK_CONTAINS(body, "\n\nWhat to do: Runbook (" RUNBOOK ") · Recheck once; then ask #infra.\n\n- ");
	check_html_subset("runbook and hint", html);
	cJSON_Delete(c);
}

static void test_what_to_do_with_only_a_hint_or_only_a_runbook(void)
{
	cJSON *v = view_with(github_failure, NULL, "Check the mirror status page.");
	const cJSON *w = what_to_do(v);
	CHECK(cJSON_IsObject(w));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(w, "runbook")));
	CHECK_INT(vbool(w, "runbook_ok"), 0);
	CHECK_STR(vstr(w, "hint"), "Check the mirror status page.");
	cJSON_Delete(v);
	cJSON *c = content_with(github_failure, NULL, "Check the mirror status page.");
	CHECK_CONTAINS(vstr(c, "formatted_body"), "<p><b>What to do:</b> Check the mirror status page.</p>");
	CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), "Runbook");
	CHECK_CONTAINS(vstr(c, "body"), "\nWhat to do: Check the mirror status page.\n");
	cJSON_Delete(c);

	v = view_with(github_failure, "https://w.example/rb", NULL);
	w = what_to_do(v);
	CHECK(cJSON_IsObject(w));
	CHECK_STR(vstr(w, "runbook"), "https://w.example/rb");
	CHECK_INT(vbool(w, "runbook_ok"), 1);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(w, "hint")));
	cJSON_Delete(v);
	c = content_with(github_failure, "https://w.example/rb", NULL);
	CHECK_CONTAINS(vstr(c, "formatted_body"), "<p><b>What to do:</b> <a href=\"https://w.example/rb\">Runbook</a></p>");
	CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), " · </p>");
	CHECK_CONTAINS(vstr(c, "body"), "\nWhat to do: Runbook (https://w.example/rb)\n");
	cJSON_Delete(c);
}

static void test_what_to_do_escapes_a_hostile_hint(void)
{
	const char *hint = "<a href=\"javascript:alert(1)\">click</a> & \"q\" 'a' {{x}}\n\x01\x1b[31m\x7f\tnext";
	cJSON *v = view_with(github_failure, NULL, hint);
	/* Control characters and the whitespace around them: one space, one line. */
	CHECK_STR(vstr(what_to_do(v), "hint"),
		  "<a href=\"javascript:alert(1)\">click</a> & \"q\" 'a' {{x}} [31m next");
	cJSON_Delete(v);

	cJSON *c = content_with(github_failure, NULL, hint);
	const char *html = vstr(c, "formatted_body");
	const char *body = vstr(c, "body");
	CHECK_CONTAINS(html, "<p><b>What to do:</b> &lt;a href=&quot;javascript:alert(1)&quot;&gt;click&lt;/a&gt; "
			     "&amp; &quot;q&quot; &#39;a&#39; {{x}} [31m next</p>");
	CHECK_NOT_CONTAINS(html, "<a href=\"javascript");
	CHECK_NOT_CONTAINS(html, "\x1b");
	CHECK_NOT_CONTAINS(html, "\x7f");
	check_html_subset("hostile hint", html);
	/* The body shows the hint as text, on one line. */
	CHECK_CONTAINS(body, "\nWhat to do: <a href=\"javascript:alert(1)\">click</a> & \"q\" 'a' {{x}} [31m next\n");
	CHECK_NOT_CONTAINS(body, "\x01");
	cJSON_Delete(c);
}

static void test_what_to_do_never_links_a_runbook_that_is_not_http(void)
{
	static const char *const bad[] = {
		"javascript:alert(1)", "JavaScript:alert(document.cookie)", "data:text/html,<script>x</script>",
		"//evil.example/rb", "wiki.example.org/rb", "ftp://files.example/rb", "https://",
		" https://w.example/rb", "https://w.example/a b", "https://w.example/\"onclick=\"x",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		/* With a hint: the hint stays, the runbook is dropped and never linked. */
		cJSON *v = view_with(github_failure, bad[i], "Ask #infra.");
		const cJSON *w = what_to_do(v);
		if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(w, "runbook")) || vbool(w, "runbook_ok") != 0) {
			test_current_failed = 1;
			printf("# runbook \"%s\": expected dropped (null, runbook_ok false)\n", bad[i]);
		}
		cJSON_Delete(v);
		cJSON *c = content_with(github_failure, bad[i], "Ask #infra.");
		const char *html = vstr(c, "formatted_body");
		CHECK_CONTAINS(html, "<p><b>What to do:</b> Ask #infra.</p>");
		CHECK_NOT_CONTAINS(html, "Runbook");
		struct strbuf href = STRBUF_INIT;
		strbuf_printf(&href, "href=\"%s\"", bad[i]);
		if (html && strstr(html, strbuf_str(&href))) {
			test_current_failed = 1;
			printf("# runbook \"%s\" is linked in the HTML\n", bad[i]);
		}
		strbuf_free(&href);
		cJSON_Delete(c);

		/* Alone: nothing is left to show, so there is no "What to do" at all. */
		v = view_with(github_failure, bad[i], NULL);
		CHECK(cJSON_IsNull(what_to_do(v)));
		cJSON_Delete(v);
	}
}

static void test_what_to_do_hint_is_cut_and_checked(void)
{
	char long_hint[400];
	memset(long_hint, 'x', 300);
	long_hint[300] = '\0';
	cJSON *v = view_with(github_failure, NULL, long_hint);
	const char *hint = vstr(what_to_do(v), "hint");
	CHECK(hint && strlen(hint) == 200 + 3);
	CHECK(hint && strcmp(hint + 200, "\xe2\x80\xa6") == 0);
	cJSON_Delete(v);

	/* A cut never splits a character: 199 ASCII bytes, then "é" straddles byte 200. */
	memset(long_hint, 'y', 199);
	strcpy(long_hint + 199, "\xc3\xa9 and more");
	v = view_with(github_failure, NULL, long_hint);
	hint = vstr(what_to_do(v), "hint");
	CHECK(hint && strlen(hint) == 199 + 3);
	CHECK(hint && strcmp(hint + 199, "\xe2\x80\xa6") == 0);
	cJSON_Delete(v);

	/* Blank or invalid UTF-8: no hint; with no runbook either, no what_to_do. */
	static const char *const unusable[] = {"", "   ", "\t\n\x01", "bad \xff byte", "\xc0\xaf", "\xed\xa0\x80"};
	for (size_t i = 0; i < sizeof unusable / sizeof unusable[0]; i++) {
		v = view_with(github_failure, NULL, unusable[i]);
		if (!cJSON_IsNull(what_to_do(v))) {
			test_current_failed = 1;
			printf("# hint #%zu: expected no what_to_do\n", i);
		}
		cJSON_Delete(v);
	}
	v = view_with(github_failure, "https://w.example/rb", "   ");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(what_to_do(v), "hint")));
	CHECK_STR(vstr(what_to_do(v), "runbook"), "https://w.example/rb");
	cJSON_Delete(v);
	/* Multi-byte text that is valid passes untouched. */
	v = view_with(github_failure, NULL, "Prüfe den Spiegel \xf0\x9f\xaa\x9e zuerst");
	CHECK_STR(vstr(what_to_do(v), "hint"), "Prüfe den Spiegel \xf0\x9f\xaa\x9e zuerst");
	cJSON_Delete(v);
}

static void test_what_to_do_only_under_problem_reports(void)
{
	static const char *const problems[] = {"failure", "merge-conflict", "merge-failure", "config-error",
					       "disabled"};
	static const char *const others[] = {"success", "start", "enqueue", "no-jobs", "dequeue", "something-new"};
	char json[256];
	for (size_t i = 0; i < sizeof problems / sizeof problems[0]; i++) {
		snprintf(json, sizeof json, "{\"action\":\"%s\",\"project\":\"org/repo\",\"message\":\"m\"}",
			 problems[i]);
		cJSON *c = content_with(json, "https://w.example/rb", "Ask #infra.");
		if (!c || !strstr(vstr(c, "formatted_body"), "What to do:</b> <a href=\"https://w.example/rb\">")) {
			test_current_failed = 1;
			printf("# action %s: expected the What to do line, got: %s\n", problems[i],
			       c ? vstr(c, "formatted_body") : "(no content)");
		}
		cJSON_Delete(c);
	}
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		snprintf(json, sizeof json, "{\"action\":\"%s\",\"project\":\"org/repo\",\"message\":\"m\"}",
			 others[i]);
		cJSON *v = view_with(json, "https://w.example/rb", "Ask #infra.");
		cJSON *c = content_with(json, "https://w.example/rb", "Ask #infra.");
		if (!cJSON_IsNull(what_to_do(v)) || !c || strstr(vstr(c, "formatted_body"), "What to do") ||
		    strstr(vstr(c, "body"), "What to do")) {
			test_current_failed = 1;
			printf("# action %s: expected no what_to_do and no What to do line\n", others[i]);
		}
		cJSON_Delete(v);
		cJSON_Delete(c);
	}
	/* A configuration error shows it after the error itself, still before the builds. */
	cJSON *c = content_with("{\"action\":\"config-error\",\"message\":\"Config failed.\\n\\n  bad key x\"}",
				NULL, "Fix zuul.yaml.");
	const char *html = vstr(c, "formatted_body");
	const char *details = html ? strstr(html, "bad key x") : NULL;
	const char *wtd = html ? strstr(html, "What to do:") : NULL;
	CHECK(details && wtd && details < wtd);
	cJSON_Delete(c);
}

/* The What to do line is the only difference a runbook and hint make, for every payload
 * of the corpus: other reports render exactly as their golden files. */
static void test_what_to_do_adds_one_paragraph_and_nothing_else(void)
{
	struct report_templates rt = default_templates();
	DIR *d = opendir(PAYLOAD_DIR);
	CHECK(rt.html != NULL && d != NULL);
	struct dirent *e;
	int problems = 0, others = 0;
	while (d && rt.html && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		struct strbuf path = STRBUF_INIT;
		strbuf_printf(&path, "%s/%s", PAYLOAD_DIR, e->d_name);
		char *payload = read_file(strbuf_str(&path), &len);
		char err[256];
		struct zuul_event *ev = payload ? zuul_event_parse(payload, len, err, sizeof err) : NULL;
		if (ev) {
			struct report_context plain = {.route_name = "golden"};
			struct report_context with = {.route_name = "golden", .runbook = "https://w.example/rb",
						      .hint = "Ask #infra."};
			cJSON *a = report_content_new(&rt, ev, &plain);
			cJSON *b = report_content_new(&rt, ev, &with);
			cJSON *view = report_view_new(ev, &plain);
			bool problem = vbool(view, "is_problem") == 1;
			cJSON_Delete(view);
			static const char line[] =
				"<p><b>What to do:</b> <a href=\"https://w.example/rb\">Runbook</a> · Ask #infra.</p>";
			struct strbuf want = STRBUF_INIT;
			const char *ha = vstr(a, "formatted_body");
			const char *hb = vstr(b, "formatted_body");
			const char *at = hb ? strstr(hb, line) : NULL;
			if (problem && at) {
				/* The line and its line break: the one after it, or before it when it
				 * ends the message (the content is trimmed). */
				const char *rest = at + strlen(line);
				if (*rest == '\n')
					rest++;
				else if (at > hb && at[-1] == '\n')
					at--;
				strbuf_append(&want, hb, (size_t)(at - hb));
				strbuf_puts(&want, rest);
			} else if (hb) {
				strbuf_puts(&want, hb);
			}
			if (problem ? !at : (hb && strstr(hb, "What to do") != NULL)) {
				test_current_failed = 1;
				printf("# %s: What to do line %s\n", e->d_name, problem ? "missing" : "shown but not a problem");
			}
			if (!ha || strcmp(ha, strbuf_str(&want)) != 0) {
				test_current_failed = 1;
				printf("# %s: with runbook and hint, the HTML differs by more than the What to do line\n",
				       e->d_name);
			}
			problem ? problems++ : others++;
			strbuf_free(&want);
			cJSON_Delete(a);
			cJSON_Delete(b);
		}
		zuul_event_free(ev);
		free(payload);
		strbuf_free(&path);
	}
	if (d)
		closedir(d);
	/* The corpus has both kinds, or this test would prove half of nothing. */
	CHECK(problems > 5 && others > 5);
	report_templates_clear(&rt);
}

static void test_what_to_do_survives_shedding_builds_for_size(void)
{
	struct report_templates rt = default_templates();
	char *json = huge_buildset(600, 1);
	struct zuul_event *ev = parse(json);
	CHECK(rt.html != NULL && ev != NULL);
	if (rt.html && ev) {
		struct report_context ctx = {.route_name = "r", .runbook = "https://w.example/rb", .hint = "Ask #infra."};
		cJSON *c = report_content_new(&rt, ev, &ctx);
		CHECK(printed_size(c) <= REPORT_MAX_CONTENT_BYTES);
		CHECK_CONTAINS(vstr(c, "formatted_body"), "<a href=\"https://w.example/rb\">Runbook</a> · Ask #infra.");
		CHECK_CONTAINS(vstr(c, "formatted_body"), "more builds not shown");
		cJSON_Delete(c);
	}
	zuul_event_free(ev);
	free(json);
	report_templates_clear(&rt);
}


/* ------------------------------------------------------------------------ */
/* build details: the verdict at once, the fetched rest in an edit            */

/* A lookup over a fixed list of build details, by uuid. */
struct details_table {
	const struct build_details *const *builds;
	size_t n;
};

static const struct build_details *table_details_of(const char *uuid, void *data)
{
	const struct details_table *t = data;
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->builds[i]->uuid, uuid) == 0)
			return t->builds[i];
	return NULL;
}

/* tox py311&x=1 (u1) of github_failure, fetched: its task, error lines and a flaky verdict. */
static struct build_details tox_details(void)
{
	struct build_details b = {.uuid = "u1", .job = "tox py311&x=1", .reported_result = "FAILURE",
				  .true_result = "FAILURE", .failed = true, .has_task = true, .done = true,
				  .fetch_started = true};
	b.task = (struct job_output_failure){.task = "Run tox testenv", .role = "tox", .host = "ubuntu-jammy",
					     .phase = "run", .playbook = "zuul/playbooks/tox/run.yaml", .has_rc = true,
					     .rc = 1, .msg = "non-zero return code",
					     .error_lines = "FAILED test_a\nERROR: InvocationError"};
	b.verdict = (struct flaky_verdict){.kind = FLAKY_FLAKY, .failures = 3, .runs = 10};
	return b;
}

static cJSON *view_with_details(const struct details_table *t)
{
	struct zuul_event *ev = parse(github_failure);
	if (!ev)
		return NULL;
	struct report_context ctx = {.route_name = "r", .details_of = table_details_of, .details_data = (void *)t};
	cJSON *view = report_view_new(ev, &ctx);
	zuul_event_free(ev);
	return view;
}

/* The build of view's `builds` with this uuid. */
static const cJSON *build_with_uuid(const cJSON *view, const char *uuid)
{
	const cJSON *b;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(view, "builds"))
		if (vstr(b, "uuid") && strcmp(vstr(b, "uuid"), uuid) == 0)
			return b;
	return NULL;
}

static void test_details_view_of_a_fetched_failure(void)
{
	struct build_details tox = tox_details();
	const struct build_details *list[] = {&tox};
	struct details_table t = {list, 1};
	cJSON *view = view_with_details(&t);
	const cJSON *b = build_with_uuid(view, "u1");
	CHECK(b != NULL);
	CHECK_INT(vbool(b, "has_details"), 1);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(b, "details");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, "verdict");
	CHECK_STR(vstr(v, "text"), "failed 3 of the last 10 runs: flaky");
	CHECK_STR(vstr(v, "kind"), "flaky");
	CHECK_INT(vbool(v, "is_flaky"), 1);
	CHECK_INT(vbool(v, "is_new"), 0);
	CHECK_INT((int)vnum(v, "failures"), 3);
	CHECK_INT((int)vnum(v, "runs"), 10);
	const cJSON *task = cJSON_GetObjectItemCaseSensitive(d, "task");
	CHECK_STR(vstr(task, "name"), "Run tox testenv");
	CHECK_STR(vstr(task, "role"), "tox");
	CHECK_STR(vstr(task, "host"), "ubuntu-jammy");
	CHECK_STR(vstr(task, "phase"), "run");
	CHECK_STR(vstr(task, "playbook"), "zuul/playbooks/tox/run.yaml");
	CHECK_STR(vstr(task, "msg"), "non-zero return code");
	CHECK_INT(vbool(task, "has_rc"), 1);
	CHECK_INT((int)vnum(task, "rc"), 1);
	CHECK_INT(vbool(task, "unreachable"), 0);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "error_lines")), 2);
	CHECK_STR(cJSON_GetStringValue(vitem(d, "error_lines", 0)), "FAILED test_a");
	CHECK_STR(cJSON_GetStringValue(vitem(d, "error_lines", 1)), "ERROR: InvocationError");
	CHECK_STR(vstr(d, "error_text"), "FAILED test_a\nERROR: InvocationError");
	CHECK_INT(vbool(d, "has_error_lines"), 1);
	/* The API's result is the report's: nothing hidden, nothing to say. */
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "true_result")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "error_detail")));
	/* The same build in failed_builds is the same view. */
	CHECK_INT(vbool(vitem(view, "failed_builds", 0), "has_details"), 1);
	/* Builds the lookup knows nothing of, and retried attempts, have none. */
	const cJSON *ok = build_with_uuid(view, "u0");
	CHECK_INT(vbool(ok, "has_details"), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ok, "details")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(vitem(view, "retried_builds", 0), "details")));
	cJSON_Delete(view);
}

/* Before the fetches (or without the details group) only the verdict is known. */
static void test_details_view_before_the_fetches_has_the_verdict_only(void)
{
	struct build_details b = {.uuid = "u1", .job = "tox py311&x=1", .reported_result = "FAILURE", .failed = true,
				  .verdict = {.kind = FLAKY_NEW, .successes = 12}};
	struct build_details quiet = {.uuid = "u2", .job = "nv-job", .reported_result = "TIMED_OUT", .failed = true};
	const struct build_details *list[] = {&b, &quiet};
	struct details_table t = {list, 2};
	cJSON *view = view_with_details(&t);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(build_with_uuid(view, "u1"), "details");
	CHECK_STR(vstr(cJSON_GetObjectItemCaseSensitive(d, "verdict"), "text"), "first failure after 12 successes: new");
	CHECK_INT(vbool(cJSON_GetObjectItemCaseSensitive(d, "verdict"), "is_new"), 1);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "task")));
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "error_lines")), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "error_text")));
	CHECK_INT(vbool(d, "has_error_lines"), 0);
	/* A build the bridge judged with nothing to say (its first run seen) has no details. */
	CHECK_INT(vbool(build_with_uuid(view, "u2"), "has_details"), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(build_with_uuid(view, "u2"), "details")));
	cJSON_Delete(view);
}

/* A job's failure-message hid the result: the API's is shown, with its error detail. */
static void test_details_view_true_result_and_error_detail(void)
{
	struct build_details b = {.uuid = "u2", .job = "nv-job", .reported_result = "TIMED_OUT",
				  .true_result = "NODE_FAILURE", .error_detail = "Node request 300-0000012345 failed",
				  .failed = true, .done = true, .verdict = {.kind = FLAKY_INFRA_RESULT}};
	const struct build_details *list[] = {&b};
	struct details_table t = {list, 1};
	cJSON *view = view_with_details(&t);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(build_with_uuid(view, "u2"), "details");
	CHECK_STR(vstr(d, "true_result"), "NODE_FAILURE");
	CHECK_STR(vstr(d, "error_detail"), "Node request 300-0000012345 failed");
	CHECK_STR(vstr(cJSON_GetObjectItemCaseSensitive(d, "verdict"), "kind"), "infra");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "task")));
	cJSON_Delete(view);
}

static void test_details_in_the_default_template(void)
{
	struct report_templates rt = default_templates();
	struct zuul_event *ev = parse(github_failure);
	struct build_details tox = tox_details();
	struct build_details nv = {.uuid = "u2", .job = "nv-job", .reported_result = "TIMED_OUT",
				   .true_result = "NODE_FAILURE", .error_detail = "Node request failed", .failed = true,
				   .done = true, .has_task = true};
	nv.task = (struct job_output_failure){.task = "Start the node", .host = "centos-9", .unreachable = true};
	struct build_details ok = {.uuid = "u0", .job = "ok-job", .reported_result = "SUCCESS",
				   .verdict = {.kind = FLAKY_PASSED_ON_RETRY, .retries = 1}};
	const struct build_details *list[] = {&tox, &nv, &ok};
	struct details_table t = {list, 3};
	CHECK(rt.html != NULL && ev != NULL);
	if (!rt.html || !ev)
		goto out;
	struct report_context ctx = {.route_name = "r", .details_of = table_details_of, .details_data = &t};
	cJSON *c = report_content_new(&rt, ev, &ctx);
	const char *html = vstr(c, "formatted_body"), *body = vstr(c, "body");
	CHECK_CONTAINS(html, "<br><i>failed 3 of the last 10 runs: flaky</i><br>Failed task <b>Run tox testenv</b> on "
			     "<code>ubuntu-jammy</code> (rc 1): non-zero return code<pre><code>FAILED test_a\n"
			     "ERROR: InvocationError</code></pre></li>");
	CHECK_CONTAINS(html, "<br>Zuul's result: <code>NODE_FAILURE</code><br><b>Error:</b> Node request failed"
			     "<br>Host unreachable in task <b>Start the node</b> on <code>centos-9</code></li>");
	CHECK_CONTAINS(html, "<br><i>passed on retry in this buildset (1 retried build)</i></li>");
	CHECK_CONTAINS(body, "\n  failed 3 of the last 10 runs: flaky\n  Failed task Run tox testenv on ubuntu-jammy (rc 1): "
			     "non-zero return code\n");
	CHECK_CONTAINS(body, "\n\n  FAILED test_a\n  ERROR: InvocationError\n");
	CHECK_CONTAINS(body, "Zuul's result: NODE_FAILURE\n  Error: Node request failed");
	char why[256];
	CHECK(html && html_check(html, why, sizeof why) == 0);
	cJSON_Delete(c);

	/* Without details the same report renders as before: nothing of them, not even a <br>. */
	struct report_context none = {.route_name = "r"};
	c = report_content_new(&rt, ev, &none);
	CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), "<i>failed");
	CHECK_NOT_CONTAINS(vstr(c, "formatted_body"), "<pre>");
	CHECK_CONTAINS(vstr(c, "formatted_body"), "\">history</a></li>");
	cJSON_Delete(c);
out:
	zuul_event_free(ev);
	report_templates_clear(&rt);
}

static void test_details_hostile_values_are_escaped_and_ping_nobody(void)
{
	struct report_templates rt = default_templates();
	struct zuul_event *ev = parse(github_failure);
	struct build_details b = tox_details();
	b.task.task = "<a href=\"https://evil.example\">click</a> @room";
	b.task.role = "<i>r</i>";
	b.task.host = "\"><img src=x>";
	b.task.msg = "@room <script>alert(1)</script> & more";
	b.task.error_lines = "</code></pre><b>out</b>\n@alice:example.org {{x}}";
	b.true_result = "<b>X</b>";
	b.error_detail = "<details open>x</details>";
	const struct build_details *list[] = {&b};
	struct details_table t = {list, 1};
	CHECK(rt.html != NULL && ev != NULL);
	if (!rt.html || !ev)
		goto out;
	struct report_context ctx = {.route_name = "r", .details_of = table_details_of, .details_data = &t};
	cJSON *c = report_content_new(&rt, ev, &ctx);
	const char *html = vstr(c, "formatted_body");
	CHECK_NOT_CONTAINS(html, "<img");
	CHECK_NOT_CONTAINS(html, "<script");
	CHECK_NOT_CONTAINS(html, "evil.example\">");
	CHECK_NOT_CONTAINS(html, "<b>out");
	CHECK_NOT_CONTAINS(html, "<details open");
	CHECK_NOT_CONTAINS(html, "<b>X");
	CHECK_CONTAINS(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more");
	CHECK_CONTAINS(html, "<pre><code>&lt;/code&gt;&lt;/pre&gt;&lt;b&gt;out&lt;/b&gt;\n@alice:example.org {{x}}</code></pre>");
	CHECK_CONTAINS(vstr(c, "body"), "</code></pre><b>out</b>");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "m.mentions");
	CHECK(cJSON_IsObject(m) && m->child == NULL);
	char why[256];
	CHECK(html && html_check(html, why, sizeof why) == 0);
	cJSON_Delete(c);
out:
	zuul_event_free(ev);
	report_templates_clear(&rt);
}

/* Eight failed builds with every field of their details at its cap, in characters that
 * escape to several bytes each: the report sheds builds as it always does, and fits. */
static void test_details_at_every_cap_still_fit_in_one_event(void)
{
	struct report_templates rt = default_templates();
	char *json = huge_buildset(8, 1);
	struct zuul_event *ev = parse(json);
	CHECK(rt.html != NULL && ev != NULL);
	if (!rt.html || !ev)
		goto out;
	char field[JOB_OUTPUT_MAX_FIELD + 1], lines[JOB_OUTPUT_MAX_CHARS + 1];
	memset(field, '"', JOB_OUTPUT_MAX_FIELD);
	field[JOB_OUTPUT_MAX_FIELD] = '\0';
	memset(lines, '<', JOB_OUTPUT_MAX_CHARS);
	lines[JOB_OUTPUT_MAX_CHARS] = '\0';
	struct build_details b[8];
	const struct build_details *list[8];
	for (size_t i = 0; i < ev->n_builds && i < 8; i++) {
		b[i] = (struct build_details){.uuid = ev->builds[i].uuid, .job = field, .reported_result = "FAILURE",
					      .true_result = field, .error_detail = lines, .failed = true,
					      .has_task = true, .verdict = {.kind = FLAKY_BROKEN, .runs = 4}};
		b[i].task = (struct job_output_failure){.task = field, .role = field, .host = field, .msg = field,
							.phase = field, .playbook = field, .error_lines = lines};
		list[i] = &b[i];
	}
	struct details_table t = {list, ev->n_builds < 8 ? ev->n_builds : 8};
	struct report_context ctx = {.route_name = "r", .details_of = table_details_of, .details_data = &t,
				     .reserve_bytes = 3072};
	cJSON *c = report_content_new(&rt, ev, &ctx);
	CHECK(printed_size(c) <= REPORT_MAX_CONTENT_BYTES - 3072);
	CHECK_CONTAINS(vstr(c, "formatted_body"), "&lt;&lt;&lt;");
	cJSON_Delete(c);
out:
	zuul_event_free(ev);
	free(json);
	report_templates_clear(&rt);
}

/* Golden renderings with details: the report of a payload as its edit shows it. */
static void run_details_golden_tests(void)
{
	struct report_templates rt = default_templates();
	if (!rt.html) {
		RUN_NAMED("golden with details: templates/default.html loads", (test_current_failed = 1));
		return;
	}
	/* shared-modern-failure.json: tox-py311 failed after a retry, for the first time in a
	 * while (the API agrees on its result); scs-check-gx-scs passed: nothing to say. */
	struct build_details tox = {.uuid = "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", .job = "tox-py311",
				    .reported_result = "FAILURE", .true_result = "FAILURE", .failed = true,
				    .has_task = true, .done = true, .verdict = {.kind = FLAKY_NEW, .successes = 7,
										.retries = 1}};
	tox.task = (struct job_output_failure){.task = "Run tox testenv", .role = "tox", .host = "ubuntu-jammy",
					       .phase = "run", .has_rc = true, .rc = 1, .msg = "non-zero return code",
					       .error_lines = "py311: commands failed\nERROR: InvocationError for command "
							      "/usr/bin/tox -e py311 (exited with code 1)"};
	/* result-node-failure.json: no task (the node never came), the API's error detail. */
	struct build_details node = {.uuid = "f7122be744bc23e66d526a6b357fb67c", .job = "k8s-capi-e2e-node_failure",
				     .reported_result = "NODE_FAILURE", .true_result = "NODE_FAILURE",
				     .error_detail = "Node request 300-0000271828 failed", .failed = true, .done = true,
				     .verdict = {.kind = FLAKY_INFRA_RESULT}};
	/* non-voting-failures.json: a broken job and a flaky one. */
	struct build_details redfish = {.uuid = "13a17b18cdb94c97b9396a8ceab3b64b", .job = "ironic-tempest-uefi-redfish",
					.reported_result = "FAILURE", .failed = true, .has_task = true, .done = true,
					.verdict = {.kind = FLAKY_BROKEN, .runs = 4}};
	redfish.task = (struct job_output_failure){.task = "Run tempest", .host = "controller", .has_rc = true, .rc = 2,
						   .msg = "non-zero return code",
						   .error_lines = "FAILED (failures=2)"};
	struct build_details grenade = {.uuid = "e8554ba9c43cb40dfecdb300d9b70b70", .job = "ironic-grenade",
					.reported_result = "TIMED_OUT", .failed = true, .done = true,
					.verdict = {.kind = FLAKY_FLAKY, .failures = 3, .runs = 10}};
	const struct build_details *list[] = {&tox, &node, &redfish, &grenade};
	struct details_table t = {list, 4};
	struct report_context ctx = {.route_name = "golden", .details_of = table_details_of, .details_data = &t};
	const char *files[] = {"shared-modern-failure.json", "result-node-failure.json", "non-voting-failures.json"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char title[256];
		snprintf(title, sizeof title, "golden: %s with build details renders as tests/golden/details/%s", files[i],
			 files[i]);
		RUN_NAMED(title, golden_case_with(&rt, PAYLOAD_DIR, GOLDEN_DIR "/details", files[i], &ctx));
	}
	report_templates_clear(&rt);
}

int main(void)
{
	RUN(test_h2t_decodes_named_and_numeric_entities);
	RUN(test_h2t_leaves_unknown_or_broken_entities_as_text);
	RUN(test_h2t_replaces_entities_that_are_not_characters);
	RUN(test_h2t_collapses_whitespace_outside_pre);
	RUN(test_h2t_paragraphs_and_br_make_lines);
	RUN(test_h2t_lists_become_dash_and_number_lines);
	RUN(test_h2t_nested_lists_are_indented);
	RUN(test_h2t_links_show_their_url_when_text_differs);
	RUN(test_h2t_pre_keeps_whitespace);
	RUN(test_h2t_drops_scripts_styles_comments_and_unknown_tags);
	RUN(test_h2t_keeps_a_lone_less_than_sign);
	RUN(test_h2t_blockquote_hr_and_table);
	RUN(test_h2t_empty_and_null_input);
	RUN(test_view_github_pr_label_link_and_owner);
	RUN(test_view_gerrit_gitlab_and_ref_labels);
	RUN(test_view_buildset_and_history_urls_are_derived_and_encoded);
	RUN(test_view_drops_every_url_that_is_not_absolute_http);
	RUN(test_view_message_parts_as_zuul_writes_them);
	RUN(test_view_times_are_iso_utc_and_durations_human);
	RUN(test_view_lists_counts_and_failed_first_order);
	RUN(test_view_action_booleans_icons_and_result);
	RUN(test_content_has_matrix_fields_and_failed_build_first);
	RUN(test_content_escapes_hostile_values);
	RUN(test_templates_load_uses_txt_companion_and_partials);
	RUN(test_content_too_large_for_matrix_sheds_successes_then_halves);
	RUN(test_content_that_fits_is_not_cut);
	RUN(test_content_leaves_the_reserve_free);
	RUN(test_every_view_variable_is_documented);
	RUN(test_what_to_do_view_has_runbook_and_hint_of_a_failure);
	RUN(test_what_to_do_renders_under_the_summary_in_html_and_text);
	RUN(test_what_to_do_with_only_a_hint_or_only_a_runbook);
	RUN(test_what_to_do_escapes_a_hostile_hint);
	RUN(test_what_to_do_never_links_a_runbook_that_is_not_http);
	RUN(test_what_to_do_hint_is_cut_and_checked);
	RUN(test_what_to_do_only_under_problem_reports);
	RUN(test_what_to_do_adds_one_paragraph_and_nothing_else);
	RUN(test_what_to_do_survives_shedding_builds_for_size);
	RUN(test_details_view_of_a_fetched_failure);
	RUN(test_details_view_before_the_fetches_has_the_verdict_only);
	RUN(test_details_view_true_result_and_error_detail);
	RUN(test_details_in_the_default_template);
	RUN(test_details_hostile_values_are_escaped_and_ping_nobody);
	RUN(test_details_at_every_cap_still_fit_in_one_event);
	run_golden_tests();
	run_details_golden_tests();
	return test_done();
}
