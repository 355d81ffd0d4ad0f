/* Tests of the "Why it failed" answer (details_notice): what it says for each kind of
 * build detail, that hostile values come out escaped in current-spec HTML (tests/html_check.h),
 * and that it never pings anyone. */
#include "details_notice.h"

#include "html_check.h"
#include "strbuf.h"
#include "test.h"

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_html(const cJSON *content)
{
	char why[256];
	const char *html = str_at(content, "formatted_body");
	CHECK(html != NULL);
	if (html && html_check(html, why, sizeof why) != 0) {
		test_current_failed = 1;
		printf("# formatted_body is not current-spec HTML: %s\n#   %s\n", why, html);
	}
	CHECK_STR(str_at(content, "msgtype"), "m.notice");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(content, "m.mentions");
	CHECK(cJSON_IsObject(m) && m->child == NULL);
}

static struct build_details tox(void)
{
	struct build_details b = {.uuid = "u1", .job = "tox-py311", .reported_result = "FAILURE", .failed = true,
				  .has_task = true, .done = true};
	b.task = (struct job_output_failure){.task = "Run tox testenv", .role = "tox", .host = "ubuntu-jammy",
					     .phase = "run", .has_rc = true, .rc = 1, .msg = "non-zero return code",
					     .error_lines = "FAILED test_a\nERROR: InvocationError"};
	b.verdict = (struct flaky_verdict){.kind = FLAKY_FLAKY, .failures = 3, .runs = 10};
	return b;
}

static void test_a_failed_task_with_its_lines_and_verdict(void)
{
	struct build_details b = tox();
	const struct build_details *list[] = {&b};
	cJSON *c = details_notice_new(list, 1);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(str_at(c, "body"), "Why it failed:\n"
				     "- tox-py311: task \"Run tox testenv\" (role tox) on ubuntu-jammy, run playbook, rc 1: "
				     "non-zero return code\n"
				     "    FAILED test_a\n"
				     "    ERROR: InvocationError\n"
				     "  failed 3 of the last 10 runs: flaky");
	CHECK_STR(str_at(c, "formatted_body"),
		  "<p><b>Why it failed</b></p><ul><li><b>tox-py311</b>: task <b>Run tox testenv</b> (role "
		  "<code>tox</code>) on <code>ubuntu-jammy</code>, run playbook, rc 1: non-zero return code"
		  "<pre><code>FAILED test_a\nERROR: InvocationError</code></pre><i>failed 3 of the last 10 runs: "
		  "flaky</i></li></ul>");
	check_html(c);
	cJSON_Delete(c);
}

static void test_true_result_and_error_detail(void)
{
	struct build_details b = {.uuid = "u2", .job = "devstack", .reported_result = "Build failed, see docs",
				  .true_result = "NODE_FAILURE", .failed = true,
				  .error_detail = "Node request 300-0000012345 failed",
				  .verdict = {.kind = FLAKY_INFRA_RESULT}};
	struct build_details quiet = {.uuid = "u3", .job = "lint", .reported_result = "FAILURE",
				      .true_result = "FAILURE", .failed = true};
	const struct build_details *list[] = {&quiet, &b};
	CHECK(!details_notice_has_news(&quiet)); /* same result, nothing fetched, no verdict */
	cJSON *c = details_notice_new(list, 2);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(str_at(c, "body"), "Why it failed:\n"
				     "- devstack (result NODE_FAILURE): error detail: Node request 300-0000012345 failed\n"
				     "  an infrastructure result: not counted against the job");
	CHECK_NOT_CONTAINS(str_at(c, "formatted_body"), "lint");
	check_html(c);
	cJSON_Delete(c);
	const struct build_details *only_quiet[] = {&quiet};
	CHECK(details_notice_new(only_quiet, 1) == NULL);
}

static void test_hostile_values_are_escaped(void)
{
	struct build_details b = tox();
	b.job = "<img src=x>";
	b.task.task = "<a href=\"https://evil.example\">click</a> @room";
	b.task.role = "<i>r</i>";
	b.task.msg = "@room <script>alert(1)</script> & more";
	b.task.error_lines = "</code></pre><b>out</b>\n@alice:example.org";
	b.true_result = "<b>X</b>";
	const struct build_details *list[] = {&b};
	cJSON *c = details_notice_new(list, 1);
	CHECK(c != NULL);
	if (!c)
		return;
	const char *html = str_at(c, "formatted_body");
	CHECK_NOT_CONTAINS(html, "<img");
	CHECK_NOT_CONTAINS(html, "<script");
	CHECK_NOT_CONTAINS(html, "<a ");
	CHECK_NOT_CONTAINS(html, "<b>out");
	CHECK_CONTAINS(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more");
	CHECK_CONTAINS(html, "&lt;/code&gt;&lt;/pre&gt;&lt;b&gt;out&lt;/b&gt;");
	check_html(c);
	cJSON_Delete(c);
}

static void test_passed_on_retry_is_news_with_the_failure(void)
{
	struct build_details f = tox();
	f.verdict = (struct flaky_verdict){0};
	f.has_task = false;
	struct build_details r = {.uuid = "u4", .job = "docs", .reported_result = "SUCCESS",
				  .verdict = {.kind = FLAKY_PASSED_ON_RETRY, .retries = 2}};
	const struct build_details *list[] = {&f, &r};
	cJSON *c = details_notice_new(list, 2);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_STR(str_at(c, "body"), "Why it failed:\n- docs: passed on retry in this buildset (2 retried builds)");
	check_html(c);
	cJSON_Delete(c);
}

/* Eight builds of markup-only logs at every cap escape to far more than one event holds. */
static void test_an_answer_always_fits_in_one_event(void)
{
	char field[301], lines[501];
	memset(field, '"', 300);
	field[300] = '\0';
	memset(lines, '<', 500);
	lines[500] = '\0';
	struct build_details b[8];
	const struct build_details *list[8];
	for (int i = 0; i < 8; i++) {
		b[i] = tox();
		b[i].job = field;
		b[i].task.task = b[i].task.role = b[i].task.host = b[i].task.msg = field;
		b[i].task.error_lines = lines;
		b[i].error_detail = lines;
		list[i] = &b[i];
	}
	cJSON *c = details_notice_new(list, 8);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(relations_content_bytes(c) <= DETAILS_NOTICE_MAX_BYTES);
	const char *html = str_at(c, "formatted_body");
	size_t shown = 0;
	for (const char *p = html; (p = strstr(p, "<li>")); p++)
		shown++;
	CHECK(shown >= 1 && shown < 8);
	check_html(c);
	cJSON_Delete(c);
}

int main(void)
{
	RUN(test_a_failed_task_with_its_lines_and_verdict);
	RUN(test_true_result_and_error_detail);
	RUN(test_hostile_values_are_escaped);
	RUN(test_passed_on_retry_is_news_with_the_failure);
	RUN(test_an_answer_always_fits_in_one_event);
	return test_done();
}
