/* Tests of the pure parts of build details: the host allow-list and URL derivation
 * (details_url), log text cleaning (details_text), the failing task of a job-output.json
 * (job_output, fixtures in tests/data/details/) and Zuul's build record (build_record). */
#include "build_record.h"
#include "details_text.h"
#include "details_url.h"
#include "job_output.h"
#include "strbuf.h"
#include "test.h"

#include <stdbool.h>

#define DIR "tests/data/details/"

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		strbuf_append(&sb, chunk, n);
	fclose(f);
	*len = sb.len;
	return strbuf_detach(&sb);
}

/* Parses a fixture; returns job_output_parse's result. */
static int parse_fixture(const char *name, struct job_output_failure *f)
{
	size_t len = 0;
	char *json = read_file(name, &len);
	CHECK(json != NULL);
	char err[128];
	int rc = job_output_parse(json ? json : "", len, f, err, sizeof err);
	free(json);
	return rc;
}

/* Valid UTF-8 without control bytes other than newline and tab. */
static bool clean_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			return false;
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (!n || (*p >= 0x80 && *p < 0xc2) || *p > 0xf4)
			return false;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n;
	}
	return true;
}

static size_t chars(const char *s)
{
	size_t k = 0;
	for (; *s; s++)
		k += ((unsigned char)*s & 0xc0) != 0x80;
	return k;
}

static size_t lines(const char *s)
{
	size_t k = *s ? 1 : 0;
	for (; *s; s++)
		k += *s == '\n';
	return k;
}

/* ---- details_url ---- */

static void test_host_patterns(void)
{
	CHECK(details_host_pattern_problem("zuul.example.org") == NULL);
	CHECK(details_host_pattern_problem("logs.example.org:8443") == NULL);
	CHECK(details_host_pattern_problem("*.example.org") == NULL);
	CHECK(details_host_pattern_problem("[::1]:8080") == NULL);
	CHECK_STR(details_host_pattern_problem(""), "empty host");
	CHECK_STR(details_host_pattern_problem("https://zuul.example.org"), "a URL, not a host");
	CHECK_STR(details_host_pattern_problem("zuul.example.org/api"), "a path after the host");
	CHECK_STR(details_host_pattern_problem("zuul.example.org:99999"), "a port that is not 1..65535");
	CHECK_STR(details_host_pattern_problem(":443"), "empty host");
	CHECK(details_host_pattern_problem("zuul example.org") != NULL);
	CHECK(details_host_pattern_problem("[::1]x") != NULL);
}

static void test_allow_list(void)
{
	char *hosts[] = {"zuul.example.org", "logs.example.org:8443", "*.ci.example.org", "127.0.0.1:4321"};
	size_t n = 4;
	CHECK(details_url_allowed("https://zuul.example.org/t/scs/build/abc", hosts, n));
	CHECK(details_url_allowed("https://ZUUL.Example.ORG/t/scs/build/abc", hosts, n));
	CHECK(details_url_allowed("http://zuul.example.org/x", hosts, n)); /* http's default port */
	CHECK(!details_url_allowed("https://zuul.example.org:8443/x", hosts, n));
	CHECK(details_url_allowed("https://logs.example.org:8443/a/b/", hosts, n));
	CHECK(!details_url_allowed("https://logs.example.org/a/b/", hosts, n));
	CHECK(details_url_allowed("https://a.ci.example.org/x", hosts, n));
	CHECK(!details_url_allowed("https://ci.example.org.evil.example/x", hosts, n));
	CHECK(details_url_allowed("http://127.0.0.1:4321/x", hosts, n));
	CHECK(!details_url_allowed("http://127.0.0.1:4322/x", hosts, n));
	/* Two readings of one URL: refused outright. */
	CHECK(!details_url_allowed("https://evil.example@zuul.example.org/x", hosts, n));
	CHECK(!details_url_allowed("https://zuul.example.org@evil.example/x", hosts, n));
	CHECK(!details_url_allowed("https://zuul.example.org\\@evil.example/x", hosts, n));
	CHECK(!details_url_allowed("https://zuul.example.org/x y", hosts, n));
	CHECK(!details_url_allowed("ftp://zuul.example.org/x", hosts, n));
	CHECK(!details_url_allowed("//zuul.example.org/x", hosts, n));
	CHECK(!details_url_allowed("https://zuul.example.org/x?a=b", hosts, n));
	CHECK(!details_url_allowed(NULL, hosts, n));
	CHECK(!details_url_allowed("https://zuul.example.org/x", hosts, 0));
}

static void test_api_url_from_web_url(void)
{
	const char *u = "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a";
	char *a = details_api_url("https://zuul.example.org/t/scs/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", u);
	CHECK_STR(a, "https://zuul.example.org/api/tenant/scs/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
	free(a);
	a = details_api_url("https://example.org/zuul/t/scs/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a/", u);
	CHECK_STR(a, "https://example.org/zuul/api/tenant/scs/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
	free(a);
	a = details_api_url("https://zuul.scs.community/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", u);
	CHECK_STR(a, "https://zuul.scs.community/api/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
	free(a);
	a = details_api_url("http://127.0.0.1:8080/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", u);
	CHECK_STR(a, "http://127.0.0.1:8080/api/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
	free(a);
	/* Another build's URL, no build segment, a hostile uuid: nothing to derive. */
	CHECK(details_api_url("https://zuul.example.org/t/scs/build/other", u) == NULL);
	CHECK(details_api_url("https://zuul.example.org/t/scs/buildset/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", u) == NULL);
	CHECK(details_api_url("https://zuul.example.org/t/scs/build/../x", "../x") == NULL);
	CHECK(details_api_url("https://zuul.example.org/t/scs/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a?x=1", u) ==
	      NULL);
	CHECK(details_api_url(NULL, u) == NULL);
}

static void test_log_file_url(void)
{
	char *a = details_log_file_url("https://logs.example.org/812/check/tox/9d8c7b6/", "job-output.json.gz");
	CHECK_STR(a, "https://logs.example.org/812/check/tox/9d8c7b6/job-output.json.gz");
	free(a);
	/* As Zuul's web UI does: up to the last '/'. */
	a = details_log_file_url("https://logs.example.org/812/check/tox/9d8c7b6/index.html", "job-output.json");
	CHECK_STR(a, "https://logs.example.org/812/check/tox/9d8c7b6/job-output.json");
	free(a);
	a = details_log_file_url("http://127.0.0.1:9/logs", "job-output.json");
	CHECK_STR(a, "http://127.0.0.1:9/job-output.json");
	free(a);
	a = details_log_file_url("http://127.0.0.1:9", "job-output.json");
	CHECK_STR(a, "http://127.0.0.1:9/job-output.json");
	free(a);
	CHECK(details_log_file_url("https://logs.example.org/x/?sig=1", "job-output.json") == NULL);
	CHECK(details_log_file_url("javascript:alert(1)", "job-output.json") == NULL);
}

/* ---- details_text ---- */

static void test_text_clean(void)
{
	struct strbuf sb = STRBUF_INIT;
	const char raw[] = "\x1b[1;31mERROR\x1b[0m: bad\r\n"
			   "10%\r50%\r100%\n"
			   "\x1b]0;window title\x07title gone\n"
			   "bell\x07 nul\x00 del\x7f\n"
			   "bad \xff\xc3( \xe2\x80\xae"
			   "rev\n";
	details_text_clean(&sb, raw, sizeof raw - 1);
	CHECK_STR(strbuf_str(&sb), "ERROR: bad\n100%\ntitle gone\nbell nul del\nbad \xef\xbf\xbd\xef\xbf\xbd( rev\n");
	CHECK(clean_utf8(strbuf_str(&sb)));
	strbuf_free(&sb);
	/* C1 CSI (0x9b as U+009B) with its parameters. */
	const char c1[] = "a\xc2\x9b"
			  "31mb";
	details_text_clean(&sb, c1, sizeof c1 - 1);
	CHECK_STR(strbuf_str(&sb), "ab");
	strbuf_free(&sb);
}

static void test_text_tail_and_head(void)
{
	char *t = details_text_tail("one\ntwo\n\nthree\nfour\nfive\nsix\nseven\n\n\n", 5, 500);
	CHECK_STR(t, "three\nfour\nfive\nsix\nseven");
	free(t);
	t = details_text_tail("a\n\n\nb", 5, 500);
	CHECK_STR(t, "a\nb");
	free(t);
	t = details_text_tail("\n\n  \n", 5, 500);
	CHECK_STR(t, "");
	free(t);
	/* The newest characters stay; an ellipsis stands for the rest. */
	t = details_text_tail("0123456789\nabcdefghij", 5, 8);
	CHECK_STR(t, "\xe2\x80\xa6" "defghij");
	free(t);
	struct strbuf big = STRBUF_INIT;
	for (int i = 0; i < 400; i++)
		strbuf_puts(&big, "\xc3\xa4\xc3\xb6"); /* äö: 800 characters, 1600 bytes */
	t = details_text_tail(strbuf_str(&big), 5, 500);
	CHECK_INT(chars(t), 500);
	CHECK(clean_utf8(t));
	free(t);
	t = details_text_head(strbuf_str(&big), 10);
	CHECK_INT(chars(t), 10);
	CHECK(clean_utf8(t));
	free(t);
	strbuf_free(&big);
	t = details_text_head("short", 10);
	CHECK_STR(t, "short");
	free(t);
}

/* ---- job_output ---- */

static void test_job_output_tox(void)
{
	struct job_output_failure f;
	CHECK_INT(parse_fixture(DIR "job-output-tox.json", &f), 1);
	/* The ignored failure before it ("Check for optional lint config") is not the cause. */
	CHECK_STR(f.task, "Run tox testenv");
	CHECK_STR(f.role, "tox");
	CHECK_STR(f.host, "ubuntu-jammy");
	CHECK_STR(f.phase, "run");
	CHECK_STR(f.playbook, "opendev.org/zuul/zuul-jobs/playbooks/tox/run.yaml");
	CHECK(f.has_rc);
	CHECK_INT(f.rc, 1);
	CHECK_STR(f.msg, "non-zero return code");
	CHECK_STR(f.error_lines, "  Downloading pytest-8.3.3-py3-none-any.whl (342 kB)\n"
				 "FAILED tests/test_scs_compatible.py::test_flavor_names - AssertionError: SCS-1V-4 missing\n"
				 "FAILED tests/test_scs_compatible.py::test_image_metadata - KeyError: 'image_build_date'\n"
				 "ERROR: InvocationError for command /home/zuul/.tox/py311/bin/pytest (exited with code 1)\n"
				 "  py311: commands failed");
	CHECK(f.error_lines && lines(f.error_lines) <= JOB_OUTPUT_MAX_LINES);
	CHECK(!f.unreachable);
	job_output_failure_clear(&f);
}

static void test_job_output_loop_and_hosts(void)
{
	struct job_output_failure f;
	CHECK_INT(parse_fixture(DIR "job-output-loop.json", &f), 1);
	/* Two hosts failed: the earlier task decides; in the loop, the failed item speaks. */
	CHECK_STR(f.task, "Check each cloud");
	CHECK_STR(f.host, "controller");
	CHECK(f.role == NULL);
	CHECK_INT(f.rc, 3);
	CHECK_STR(f.msg, "non-zero return code");
	CHECK_STR(f.error_lines, "Verdict for poc-kdo: FAIL\nscs-0100-v3: 2 errors"); /* stderr empty: stdout */
	job_output_failure_clear(&f);
}

static void test_job_output_unreachable_and_success(void)
{
	struct job_output_failure f;
	CHECK_INT(parse_fixture(DIR "job-output-unreachable.json", &f), 1);
	CHECK(f.unreachable);
	CHECK(!f.has_rc);
	CHECK_STR(f.phase, "pre");
	CHECK_CONTAINS(f.msg, "No route to host");
	CHECK(f.error_lines == NULL);
	job_output_failure_clear(&f);
	/* An ignored failure in a build that passed is no failure. */
	CHECK_INT(parse_fixture(DIR "job-output-success.json", &f), 0);
	CHECK(f.task == NULL);
	job_output_failure_clear(&f);
}

static void test_job_output_hostile(void)
{
	struct job_output_failure f;
	CHECK_INT(parse_fixture(DIR "job-output-hostile.json", &f), 1);
	/* Raw text, kept as it was said (the renderer escapes), but never escapes or bad UTF-8. */
	CHECK_STR(f.task, "<a href=\"https://evil.example\">click</a> @room");
	CHECK_STR(f.role, "<i>role</i>");
	CHECK_STR(f.host, "<img src=x>");
	CHECK_STR(f.msg, "@room <script>alert(1)</script> evil"); /* U+202E gone */
	CHECK(f.error_lines != NULL);
	CHECK_STR(f.error_lines, "progress 100%\nping @alice:example.org\nbad \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd( end\n"
				 "line 5 & <i>more</i>\nlast line");
	CHECK(clean_utf8(f.error_lines) && clean_utf8(f.msg) && clean_utf8(f.task));
	job_output_failure_clear(&f);
}

static void test_job_output_limits_and_garbage(void)
{
	/* One huge stderr line: the last 500 characters. */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "[{\"phase\": \"run\", \"plays\": [{\"tasks\": [{\"task\": {\"name\": \"t\"}, \"hosts\": {\"h\": "
			 "{\"failed\": true, \"rc\": 2, \"stderr\": \"");
	for (int i = 0; i < 3000; i++)
		strbuf_puts(&sb, "x\\u001b[0m");
	strbuf_puts(&sb, "END\"}}}]}], \"stats\": {\"h\": {\"failures\": 1}}}]");
	struct job_output_failure f;
	char err[128];
	CHECK_INT(job_output_parse(sb.data, sb.len, &f, err, sizeof err), 1);
	CHECK(f.error_lines && chars(f.error_lines) == JOB_OUTPUT_MAX_CHARS);
	CHECK(f.error_lines && strstr(f.error_lines, "xxxEND") != NULL);
	job_output_failure_clear(&f);
	strbuf_free(&sb);
	/* Without stats (a truncated run): the first failed task. */
	const char *nostats = "[{\"plays\": [{\"tasks\": [{\"task\": {\"name\": \"first\"}, \"hosts\": {\"h\": {\"failed\": 1}}},"
			      "{\"task\": {\"name\": \"second\"}, \"hosts\": {\"h\": {\"failed\": true}}}]}]}]";
	CHECK_INT(job_output_parse(nostats, strlen(nostats), &f, err, sizeof err), 1);
	CHECK_STR(f.task, "first");
	job_output_failure_clear(&f);
	CHECK_INT(job_output_parse("{}", 2, &f, err, sizeof err), -1);
	CHECK_STR(err, "not job output (expected a list of playbooks)");
	CHECK_INT(job_output_parse("[{", 2, &f, err, sizeof err), -1);
	CHECK_STR(err, "not JSON");
	CHECK_INT(job_output_parse("[]", 2, &f, err, sizeof err), 0);
	const char *wrong_types = "[1, \"x\", {\"plays\": 3, \"stats\": []}, {\"plays\": [{\"tasks\": {}}], \"stats\": "
				  "{\"h\": {\"failures\": \"1\"}}}]";
	CHECK_INT(job_output_parse(wrong_types, strlen(wrong_types), &f, err, sizeof err), 0);
	CHECK_INT(job_output_parse(NULL, 0, &f, err, sizeof err), -1);
}

/* ---- build_record ---- */

static void test_build_record(void)
{
	size_t len = 0;
	char *json = read_file(DIR "build-record.json", &len);
	CHECK(json != NULL);
	struct build_record r;
	char err[128];
	CHECK_INT(build_record_parse(json, len, "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", &r, err, sizeof err), 0);
	CHECK_STR(r.result, "POST_FAILURE");
	CHECK(r.error_detail == NULL); /* null in the record */
	CHECK_STR(r.job_name, "tox-py311");
	CHECK_STR(r.log_url, "https://logs.example.org/812/6f1e2d3/check/tox-py311/9d8c7b6/");
	CHECK(r.voting);
	build_record_clear(&r);
	CHECK_INT(build_record_parse(json, len, "another", &r, err, sizeof err), -1);
	CHECK_STR(err, "the record is of another build");
	free(json);

	const char *node = "{\"uuid\": \"u1\", \"result\": \"NODE_FAILURE\", \"voting\": false, \"error_detail\": "
			   "\"\\u001b[31mNode request 300-0000012345 failed\\u001b[0m @room <b>x</b>\"}";
	CHECK_INT(build_record_parse(node, strlen(node), "u1", &r, err, sizeof err), 0);
	CHECK_STR(r.result, "NODE_FAILURE");
	CHECK_STR(r.error_detail, "Node request 300-0000012345 failed @room <b>x</b>");
	CHECK(!r.voting);
	build_record_clear(&r);
	const char *odd = "{\"uuid\": \"u1\", \"result\": \"<b>FAIL</b>\", \"error_detail\": \"\"}";
	CHECK_INT(build_record_parse(odd, strlen(odd), NULL, &r, err, sizeof err), 0);
	CHECK(r.result == NULL);
	CHECK(r.error_detail == NULL);
	build_record_clear(&r);
	CHECK_INT(build_record_parse("[]", 2, NULL, &r, err, sizeof err), -1);
	CHECK_STR(err, "not a build record (expected a JSON object)");
	CHECK_INT(build_record_parse("{\"uuid\": 3}", 11, NULL, &r, err, sizeof err), -1);
	CHECK_STR(err, "not a build record (no uuid)");
	CHECK_INT(build_record_parse("<html>", 6, NULL, &r, err, sizeof err), -1);
	CHECK_STR(err, "not JSON");
}

int main(void)
{
	RUN(test_host_patterns);
	RUN(test_allow_list);
	RUN(test_api_url_from_web_url);
	RUN(test_log_file_url);
	RUN(test_text_clean);
	RUN(test_text_tail_and_head);
	RUN(test_job_output_tox);
	RUN(test_job_output_loop_and_hosts);
	RUN(test_job_output_unreachable_and_success);
	RUN(test_job_output_hostile);
	RUN(test_job_output_limits_and_garbage);
	RUN(test_build_record);
	return test_done();
}
