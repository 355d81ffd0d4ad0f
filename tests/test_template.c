/* Tests of template: every case of the official Mustache spec files (loaded at test time),
 * then this engine's own promises: errors with lines, escaping, limits, files and partials. */
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"
#include "template.h"
#include "test.h"

#ifndef ZMB_SOURCE_ROOT
#define ZMB_SOURCE_ROOT "."
#endif

/* Prints s on one TAP diagnostic line, with control bytes made visible. */
static void print_escaped(const char *label, const char *s, size_t len)
{
	printf("#   %s \"", label);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	puts("\"");
}

/* Byte-for-byte comparison of a rendering with what was expected. */
#define CHECK_BYTES(got, gotlen, want)                                                               \
	do {                                                                                         \
		const char *gb_ = (got), *wb_ = (want);                                              \
		size_t gl_ = (gotlen), wl_ = strlen(wb_);                                            \
		if (gl_ != wl_ || memcmp(gb_, wb_, wl_) != 0) {                                      \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: rendering differs\n", __FILE__, __LINE__);                  \
			print_escaped("expected:", wb_, wl_);                                        \
			print_escaped("got:     ", gb_, gl_);                                        \
		}                                                                                    \
	} while (0)

/* ---- helpers ---- */

/* template_partial_fn over a cJSON object of name -> source. */
static char *partial_from_json(const char *name, size_t *len, void *ctx)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)ctx, name);
	if (!cJSON_IsString(v))
		return NULL;
	*len = strlen(v->valuestring);
	return xstrdup(v->valuestring);
}

/* Parses src with the given partials (a JSON object text, or NULL) and renders it over
 * the JSON text `data`. Returns the rendering (caller frees), or "ERROR: <err>". */
static char *render_with(const char *src, const char *partials_json, const char *data_json)
{
	cJSON *partials = partials_json ? cJSON_Parse(partials_json) : NULL;
	cJSON *data = cJSON_Parse(data_json ? data_json : "{}");
	char err[512];
	struct template *t =
		template_new(src, strlen(src), "<test>", partials ? partial_from_json : NULL, partials, err, sizeof(err));
	struct strbuf out = STRBUF_INIT;
	if (!t)
		strbuf_printf(&out, "ERROR: %s", err);
	else
		template_render(t, data, &out);
	template_free(t);
	cJSON_Delete(data);
	cJSON_Delete(partials);
	return strbuf_detach(&out);
}

static char *render(const char *src, const char *data_json) { return render_with(src, NULL, data_json); }

#define CHECK_RENDER(src, data, want)                                                                \
	do {                                                                                         \
		char *r_ = render((src), (data));                                                    \
		CHECK_BYTES(r_, strlen(r_), (want));                                                 \
		free(r_);                                                                            \
	} while (0)

/* Returns the parse error of src (static buffer), or "(parsed)". */
static const char *parse_error_of(const char *src)
{
	static char err[512];
	struct template *t = template_new(src, strlen(src), "default.html", NULL, NULL, err, sizeof(err));
	if (t) {
		template_free(t);
		return "(parsed)";
	}
	return err;
}

/* ---- the spec ---- */

static void run_spec_case(const cJSON *tc)
{
	const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(tc, "template");
	const cJSON *want = cJSON_GetObjectItemCaseSensitive(tc, "expected");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(tc, "data");
	const cJSON *partials = cJSON_GetObjectItemCaseSensitive(tc, "partials");
	if (!cJSON_IsString(tpl) || !cJSON_IsString(want)) {
		CHECK(!"spec case has a string template and expected");
		return;
	}
	char err[512];
	struct template *t = template_new(tpl->valuestring, strlen(tpl->valuestring), "<spec>",
					  partials ? partial_from_json : NULL, (void *)partials, err, sizeof(err));
	if (!t) {
		printf("# parse failed: %s\n", err);
		CHECK(t != NULL);
		return;
	}
	struct strbuf out = STRBUF_INIT;
	template_render(t, data, &out);
	CHECK_BYTES(strbuf_str(&out), out.len, want->valuestring);
	strbuf_free(&out);
	template_free(t);
}

static void run_spec_file(const char *file)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/data/mustache/%s.json", ZMB_SOURCE_ROOT, file);
	FILE *f = fopen(path, "rb");
	struct strbuf sb = STRBUF_INIT;
	if (f) {
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			strbuf_append(&sb, buf, n);
		fclose(f);
	}
	cJSON *doc = cJSON_ParseWithLength(strbuf_str(&sb), sb.len);
	const cJSON *tests = cJSON_GetObjectItemCaseSensitive(doc, "tests");
	char name[300];
	snprintf(name, sizeof(name), "%s.json: file loads with test cases", file);
	RUN_NAMED(name, CHECK(cJSON_GetArraySize(tests) > 0));
	const cJSON *tc;
	cJSON_ArrayForEach(tc, tests)
	{
		const cJSON *tn = cJSON_GetObjectItemCaseSensitive(tc, "name");
		snprintf(name, sizeof(name), "%s.json: %s", file, cJSON_IsString(tn) ? tn->valuestring : "?");
		RUN_NAMED(name, run_spec_case(tc));
	}
	cJSON_Delete(doc);
	strbuf_free(&sb);
}

/* ---- parse errors ---- */

static void test_mismatched_close_names_both_lines_and_expected_tag(void)
{
	CHECK_STR(parse_error_of("a\nb\n{{#builds}}\n\n\n\n\n\n\n\n\nx{{/build}}\n"),
		  "default.html:12: section \"builds\" opened on line 3 is closed by \"build\" (expected {{/builds}})");
}

static void test_unclosed_tag_names_its_line(void)
{
	CHECK_STR(parse_error_of("one\ntwo {{name\nthree"), "default.html:2: unclosed tag (expected }})");
	CHECK_STR(parse_error_of("{{{raw}}"), "default.html:1: unclosed tag (expected }}})");
}

static void test_unclosed_section_names_the_opening_line(void)
{
	CHECK_STR(parse_error_of("x\n{{#a}}\n{{#b}}{{/b}}\n"),
		  "default.html:2: section \"a\" is never closed (expected {{/a}} before the end)");
}

static void test_stray_close_is_an_error(void)
{
	CHECK_STR(parse_error_of("\n\n{{/a}}"), "default.html:3: {{/a}} closes no open section");
}

static void test_empty_tag_names_are_errors(void)
{
	CHECK_CONTAINS(parse_error_of("{{}}"), "default.html:1: empty tag name");
	CHECK_CONTAINS(parse_error_of("x\n{{# }}{{/ }}"), "default.html:2: empty tag name");
	CHECK_CONTAINS(parse_error_of("{{{ }}}"), "empty tag name");
	CHECK_CONTAINS(parse_error_of("{{>}}"), "empty tag name");
}

static void test_bad_set_delimiters_are_errors(void)
{
	CHECK_CONTAINS(parse_error_of("\n{{=<% =}}"), "default.html:2: bad set-delimiter tag");
	CHECK_CONTAINS(parse_error_of("{{=<% %> x=}}"), "bad set-delimiter tag");
	CHECK_CONTAINS(parse_error_of("{{= =}}"), "bad set-delimiter tag");
	CHECK_CONTAINS(parse_error_of("{{=a= b=}}"), "bad set-delimiter tag");
	CHECK_CONTAINS(parse_error_of("{{=<% %>"), "unclosed tag (expected =}})");
}

static void test_errors_quote_the_current_delimiters(void)
{
	CHECK_STR(parse_error_of("{{=<% %>=}}\n<%#a%><%/b%>"),
		  "default.html:2: section \"a\" opened on line 2 is closed by \"b\" (expected <%/a%>)");
}

static void test_names_with_inner_whitespace_are_errors(void)
{
	CHECK_CONTAINS(parse_error_of("{{#a b}}{{/a b}}"), "tag name \"a b\" contains whitespace");
}

static void test_error_in_a_partial_names_the_partial_and_its_line(void)
{
	char *r = render_with("{{>p}}", "{\"p\": \"ok\\n{{#x}}\"}", "{}");
	CHECK_STR(r, "ERROR: p:2: section \"x\" is never closed (expected {{/x}} before the end) (a partial of <test>)");
	free(r);
}

/* ---- rendering ---- */

static void test_escapes_all_five_html_characters(void)
{
	CHECK_RENDER("{{s}}", "{\"s\": \"a&b<c>d\\\"e'f\"}", "a&amp;b&lt;c&gt;d&quot;e&#39;f");
	CHECK_RENDER("{{.}}", "\"<'>\"", "&lt;&#39;&gt;");
}

static void test_raw_tags_do_not_escape(void)
{
	CHECK_RENDER("{{s}}|{{{s}}}|{{& s}}", "{\"s\": \"<b>'&'</b>\"}",
		     "&lt;b&gt;&#39;&amp;&#39;&lt;/b&gt;|<b>'&'</b>|<b>'&'</b>");
}

static void test_numbers_print_like_json(void)
{
	CHECK_RENDER("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}}",
		     "{\"a\": 85, \"b\": 1.21, \"c\": -3, \"d\": 1e300, \"e\": 0.1, \"f\": 1234567890123}",
		     "85 1.21 -3 1e+300 0.1 1234567890123");
	CHECK_RENDER("{{t}} {{f}} [{{n}}] [{{arr}}] [{{obj}}]", "{\"t\": true, \"f\": false, \"n\": null, \"arr\": [1], \"obj\": {}}",
		     "true false [] [] []");
}

static void test_truthiness_of_scalars(void)
{
	CHECK_RENDER("{{#s}}S{{/s}}{{^s}}s{{/s}}", "{\"s\": \"\"}", "s");
	CHECK_RENDER("{{#s}}S{{/s}}{{^s}}s{{/s}}", "{\"s\": \"x\"}", "S");
	CHECK_RENDER("{{#z}}Z{{/z}}{{^z}}z{{/z}}", "{\"z\": 0}", "Z");
	CHECK_RENDER("{{#o}}O{{/o}}{{^o}}o{{/o}}", "{\"o\": {}}", "O");
	CHECK_RENDER("{{#e}}E{{/e}}{{^e}}e{{/e}}", "{\"e\": []}", "e");
}

static void test_two_tags_on_a_line_are_not_standalone(void)
{
	CHECK_RENDER("{{#a}}{{/a}}\nx", "{\"a\": true}", "\nx");
}

static void test_nested_standalone_partials_indent_cumulatively(void)
{
	char *r = render_with("  {{>outer}}\nend", "{\"outer\": \"o1\\n\\n  {{>inner}}\\no2\\n\", \"inner\": \"i1\\ni2\\n\"}",
			      "{}");
	/* The blank line of `outer` stays blank rather than gaining trailing spaces. */
	CHECK_BYTES(r, strlen(r), "  o1\n\n    i1\n    i2\n  o2\nend");
	free(r);
}

static void test_missing_partials_render_empty(void)
{
	CHECK_RENDER("[{{>nothing}}]", "{}", "[]");
	char *r = render_with("[{{>nothing}}]", "{}", "{}");
	CHECK_STR(r, "[]");
	free(r);
}

static void test_nesting_deeper_than_100_stops_descending(void)
{
	struct strbuf src = STRBUF_INIT;
	for (int i = 0; i < 100; i++)
		strbuf_puts(&src, "{{#a}}");
	strbuf_puts(&src, "y");
	for (int i = 0; i < 100; i++)
		strbuf_puts(&src, "{{/a}}");
	CHECK_RENDER(strbuf_str(&src), "{\"a\": true}", "y");

	strbuf_reset(&src);
	for (int i = 0; i < 101; i++)
		strbuf_puts(&src, "{{#a}}");
	strbuf_puts(&src, "y");
	for (int i = 0; i < 101; i++)
		strbuf_puts(&src, "{{/a}}");
	CHECK_RENDER(strbuf_str(&src), "{\"a\": true}", "");
	strbuf_free(&src);
}

static void test_unguarded_recursive_partial_stops_at_the_limit(void)
{
	char *r = render_with("{{>p}}", "{\"p\": \"a{{>p}}\"}", "{}");
	CHECK_INT(strlen(r), 100);
	CHECK(strspn(r, "a") == 100);
	free(r);
}

static void test_recursion_over_deep_data_is_bounded(void)
{
	/* 300 levels of {"n": {...}}: the partial follows it until the limit, then stops. */
	struct strbuf data = STRBUF_INIT;
	for (int i = 0; i < 300; i++)
		strbuf_puts(&data, "{\"n\": ");
	strbuf_puts(&data, "{}");
	for (int i = 0; i < 300; i++)
		strbuf_puts(&data, "}");
	char *r = render_with("{{>r}}", "{\"r\": \"{{#n}}x{{>r}}{{/n}}\"}", strbuf_str(&data));
	/* partial, section, partial, section...: 100 levels hold 50 sections. */
	CHECK_INT(strlen(r), 50);
	free(r);
	strbuf_free(&data);
}

static void test_multiplying_sections_are_cut_off(void)
{
	struct strbuf src = STRBUF_INIT;
	for (int i = 0; i < 40; i++)
		strbuf_puts(&src, "{{#l}}");
	strbuf_puts(&src, "x");
	for (int i = 0; i < 40; i++)
		strbuf_puts(&src, "{{/l}}");
	/* 2^40 iterations if nothing stopped it. */
	time_t start = time(NULL);
	char *r = render(strbuf_str(&src), "{\"l\": [1, 2]}");
	CHECK(strlen(r) > 0 && strlen(r) <= 1000000);
	CHECK(time(NULL) - start < 20);
	free(r);
	strbuf_free(&src);
}

static void test_one_template_renders_different_data_independently(void)
{
	char err[256];
	const char *src = "{{#items}}<{{name}}>{{/items}}{{^items}}none{{/items}} by {{who}}";
	struct template *t = template_new(src, strlen(src), "<test>", NULL, NULL, err, sizeof(err));
	CHECK(t != NULL);
	cJSON *d1 = cJSON_Parse("{\"items\": [{\"name\": \"a\"}, {\"name\": \"b\"}], \"who\": \"x\"}");
	cJSON *d2 = cJSON_Parse("{\"items\": [], \"who\": \"y\"}");
	struct strbuf o1 = STRBUF_INIT, o2 = STRBUF_INIT, o3 = STRBUF_INIT;
	template_render(t, d1, &o1);
	template_render(t, d2, &o2);
	strbuf_puts(&o3, "prefix:");
	template_render(t, d1, &o3);
	CHECK_STR(strbuf_str(&o1), "<a><b> by x");
	CHECK_STR(strbuf_str(&o2), "none by y");
	CHECK_STR(strbuf_str(&o3), "prefix:<a><b> by x");
	strbuf_free(&o1);
	strbuf_free(&o2);
	strbuf_free(&o3);
	cJSON_Delete(d1);
	cJSON_Delete(d2);
	template_free(t);
}

static void test_null_data_renders_literals_only(void)
{
	char err[256];
	struct template *t = template_new("a{{x}}b{{#y}}c{{/y}}", 20, "<test>", NULL, NULL, err, sizeof(err));
	struct strbuf out = STRBUF_INIT;
	template_render(t, NULL, &out);
	CHECK_STR(strbuf_str(&out), "ab");
	strbuf_free(&out);
	template_free(t);
}

/* ---- files ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		printf("# cannot write %s\n", path);
		test_current_failed = 1;
		return;
	}
	fputs(text, f);
	fclose(f);
}

static char tmpdir[256];

static char *render_file(const char *name, const char *partials_dir, const char *data_json, char *err, size_t errlen)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	struct template *t = template_load_file(path, partials_dir, err, errlen);
	if (!t)
		return NULL;
	cJSON *data = cJSON_Parse(data_json);
	struct strbuf out = STRBUF_INIT;
	template_render(t, data, &out);
	cJSON_Delete(data);
	template_free(t);
	return strbuf_detach(&out);
}

static void test_load_file_reads_partials_beside_the_template(void)
{
	write_file(tmpdir, "main.html", "{{> head}}|{{> foot}}|{{>both}}");
	write_file(tmpdir, "head", "H{{x}}");
	write_file(tmpdir, "foot.mustache", "F");
	write_file(tmpdir, "both", "plain");
	write_file(tmpdir, "both.mustache", "suffixed");
	char err[512] = "";
	char *r = render_file("main.html", NULL, "{\"x\": 1}", err, sizeof(err));
	CHECK_STR(r, "H1|F|plain");
	free(r);
}

static void test_load_file_uses_the_given_partials_dir(void)
{
	char sub[300];
	snprintf(sub, sizeof(sub), "%s/parts", tmpdir);
	mkdir(sub, 0700);
	write_file(sub, "head.mustache", "from parts");
	write_file(tmpdir, "m2.html", "[{{>head}}]");
	char err[512] = "";
	char *r = render_file("m2.html", sub, "{}", err, sizeof(err));
	CHECK_STR(r, "[from parts]");
	free(r);
}

static void test_load_file_refuses_partial_names_leaving_the_dir(void)
{
	char sub[300];
	snprintf(sub, sizeof(sub), "%s/parts", tmpdir);
	mkdir(sub, 0700);
	write_file(sub, "inner", "INNER");
	write_file(tmpdir, "secret", "SECRET");
	write_file(sub, ".hidden", "HIDDEN");
	write_file(sub, "m3.html", "[{{>../secret}}][{{>.hidden}}][{{>inner}}]");
	write_file(tmpdir, "m4.html", "[{{>parts/inner}}][{{>/etc/passwd}}]");
	char err[512] = "";
	char *r = render_file("parts/m3.html", NULL, "{}", err, sizeof(err));
	CHECK_STR(r, "[][][INNER]");
	free(r);
	r = render_file("m4.html", NULL, "{}", err, sizeof(err));
	CHECK_STR(r, "[][]");
	free(r);
}

static void test_load_file_errors_name_the_path(void)
{
	write_file(tmpdir, "bad.html", "line1\n{{#a}}\n{{/b}}\n");
	char err[512] = "", want[600];
	char *r = render_file("bad.html", NULL, "{}", err, sizeof(err));
	CHECK(r == NULL);
	snprintf(want, sizeof(want), "%s/bad.html:3: section \"a\" opened on line 2 is closed by \"b\" (expected {{/a}})",
		 tmpdir);
	CHECK_STR(err, want);

	r = render_file("does-not-exist.html", NULL, "{}", err, sizeof(err));
	CHECK(r == NULL);
	snprintf(want, sizeof(want), "%s/does-not-exist.html: cannot read: No such file or directory", tmpdir);
	CHECK_STR(err, want);

	r = render_file("parts", NULL, "{}", err, sizeof(err));
	CHECK(r == NULL);
	CHECK_CONTAINS(err, "cannot read: Is a directory");
}

static void remove_tmpdir(void)
{
	const char *names[] = {"main.html", "head", "foot.mustache", "both", "both.mustache", "m2.html", "secret",
			       "m4.html", "bad.html", "parts/head.mustache", "parts/inner", "parts/.hidden",
			       "parts/m3.html", "parts"};
	char path[600];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		remove(path);
	}
	rmdir(tmpdir);
}

int main(void)
{
	static const char *const spec_files[] = {"interpolation", "sections", "inverted", "comments", "delimiters",
						 "partials"};
	for (size_t i = 0; i < sizeof(spec_files) / sizeof(spec_files[0]); i++)
		run_spec_file(spec_files[i]);

	RUN(test_mismatched_close_names_both_lines_and_expected_tag);
	RUN(test_unclosed_tag_names_its_line);
	RUN(test_unclosed_section_names_the_opening_line);
	RUN(test_stray_close_is_an_error);
	RUN(test_empty_tag_names_are_errors);
	RUN(test_bad_set_delimiters_are_errors);
	RUN(test_errors_quote_the_current_delimiters);
	RUN(test_names_with_inner_whitespace_are_errors);
	RUN(test_error_in_a_partial_names_the_partial_and_its_line);

	RUN(test_escapes_all_five_html_characters);
	RUN(test_raw_tags_do_not_escape);
	RUN(test_numbers_print_like_json);
	RUN(test_truthiness_of_scalars);
	RUN(test_two_tags_on_a_line_are_not_standalone);
	RUN(test_nested_standalone_partials_indent_cumulatively);
	RUN(test_missing_partials_render_empty);
	RUN(test_nesting_deeper_than_100_stops_descending);
	RUN(test_unguarded_recursive_partial_stops_at_the_limit);
	RUN(test_recursion_over_deep_data_is_bounded);
	RUN(test_multiplying_sections_are_cut_off);
	RUN(test_one_template_renders_different_data_independently);
	RUN(test_null_data_renders_literals_only);

	snprintf(tmpdir, sizeof(tmpdir), "%s/zmb-template-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		RUN_NAMED("temporary directory for file tests", CHECK(!"mkdtemp succeeded"));
		return test_done();
	}
	RUN(test_load_file_reads_partials_beside_the_template);
	RUN(test_load_file_uses_the_given_partials_dir);
	RUN(test_load_file_refuses_partial_names_leaving_the_dir);
	RUN(test_load_file_errors_name_the_path);
	remove_tmpdir();
	return test_done();
}
