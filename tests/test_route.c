/* Tests of route: glob matching and checking, match/exclude semantics over every
 * field, missing values, build results, and the operator-facing explanation. */
#include <stdarg.h>
#include <time.h>

#include "route.h"
#include "strbuf.h"
#include "test.h"

/* ---- glob_match table ---- */

struct glob_case {
	const char *pattern;
	const char *text;
	bool want;
};

static const struct glob_case glob_cases[] = {
	/* empty text and empty pattern */
	{"", "", true},
	{"", "a", false},
	{"a", "", false},
	{"*", "", true},
	{"?", "", false},
	{"[a]", "", false},
	/* '*' alone, '**', stars crossing '/' */
	{"*", "anything/at/all", true},
	{"**", "", true},
	{"**", "a/b", true},
	{"a**b", "ab", true},
	{"a**b", "axxb", true},
	{"SovereignCloudStack/*", "SovereignCloudStack/a/b", true},
	{"SovereignCloudStack/*", "SovereignCloudStack/", true},
	{"SovereignCloudStack/*", "SovereignCloudStack", false},
	{"SovereignCloudStack/*", "osism/SovereignCloudStack/x", false},
	{"*/*", "a/b/c", true},
	{"*/b", "a/x/b", true},
	{"periodic-*", "periodic-daily", true},
	{"periodic-*", "periodic", false},
	{"*-daily", "periodic-daily", true},
	{"*daily*", "periodic-daily-x", true},
	{"a*b*c", "abc", true},
	{"a*b*c", "aXbYbZc", true},
	{"a*b*c", "aXbYbZ", false},
	{"*a", "aaab", false},
	{"*ab", "aaab", true},
	{"a*", "a", true},
	/* literals are exact and case-sensitive */
	{"FAILURE", "FAILURE", true},
	{"FAILURE", "failure", false},
	{"FAILURE", "FAILURES", false},
	{"FAILURE", "FAILUR", false},
	/* '?' is one character, also multibyte */
	{"?", "a", true},
	{"?", "ab", false},
	{"??", "a", false},
	{"?", "\xc3\xa9", true},          /* é: two bytes, one character */
	{"??", "\xc3\xa9", false},
	{"?", "\xe2\x82\xac", true},      /* € */
	{"?", "\xf0\x9f\x91\x80", true},  /* 👀 */
	{"a?c", "a\xf0\x9f\x91\x80" "c", true},
	{"a??c", "a\xf0\x9f\x91\x80" "c", false},
	{"*?", "\xc3\xa9", true},
	{"?*?", "\xc3\xa9", false},
	{"\xc3\xa9", "\xc3\xa9", true},
	{"caf\xc3\xa9-*", "caf\xc3\xa9-x", true},
	{"?", "\xff", true},              /* an invalid byte is one character */
	{"??", "\xc3", false},
	{"?", "\xc3(", false},            /* a broken sequence is two characters */
	/* classes */
	{"[abc]", "b", true},
	{"[abc]", "d", false},
	{"[abc]", "ab", false},
	{"[a-z]", "m", true},
	{"[a-z]", "M", false},
	{"[a-z0-9]", "7", true},
	{"[!a-z]", "M", true},
	{"[!a-z]", "m", false},
	{"[^a-z]", "M", true},
	{"[^a-z]", "m", false},
	{"[!x]", "", false},
	{"[]]", "]", true},
	{"[]a]", "a", true},
	{"[!]]", "]", false},
	{"[!]]", "a", true},
	{"[a-]", "-", true},
	{"[-a]", "-", true},
	{"[a-c-e]", "-", true},
	{"[\\]]", "]", true},
	{"[\\-]", "-", true},
	{"[a\\-c]", "b", false},
	{"[*]", "*", true},
	{"[*]", "a", false},
	{"[?]", "a", false},
	{"[/]", "/", true},
	{"[\xc3\xa9]", "\xc3\xa9", true},   /* a class takes a whole character */
	{"[\xc3\xa9]", "\xc3\xa8", false},
	{"[!\xc3\xa9]", "\xc3\xa8", true},
	{"[!a]", "\xc3\xa9", true},
	{"[\xce\xb1-\xcf\x89]", "\xce\xbb", true}, /* α-ω contains λ */
	{"[z-a]", "m", false},              /* reversed range: nothing */
	{"stable/[0-9]*", "stable/2024.1", true},
	{"stable/[0-9]*", "stable/zed", false},
	/* escapes */
	{"\\*", "*", true},
	{"\\*", "a", false},
	{"\\?", "?", true},
	{"\\?", "a", false},
	{"\\[a]", "[a]", true},
	{"\\\\", "\\", true},
	{"\\a", "a", true},
	{"a\\*b*", "a*bcd", true},
	{"a\\*b*", "axbcd", false},
	{"\\\xc3\xa9", "\xc3\xa9", true},
	/* malformed patterns match literally */
	{"[", "[", true},
	{"[ab", "[ab", true},
	{"[ab", "a", false},
	{"[]", "[]", true},
	{"a\\", "a\\", true},
	{"a\\", "a", false},
	{"*[", "xx[", true},
	/* backtracking */
	{"*aab", "aaaab", true},
	{"a*a*a*a*b", "aaaaaaaaaaaaaaaab", true},
	{"a*a*a*a*b", "aaaaaaaaaaaaaaaaa", false},
	{"*x*y*z*", "xyz", true},
	{"*x*y*z*", "zyx", false},
	{"*[ab]*[ab]", "cacb", true},
};

static void check_glob(const struct glob_case *c)
{
	bool got = glob_match(c->pattern, c->text);
	if (got != c->want)
		printf("# glob_match(\"%s\", \"%s\"): expected %s, got %s\n", c->pattern, c->text,
		       c->want ? "true" : "false", got ? "true" : "false");
	CHECK(got == c->want);
}

static void test_glob_null_text_is_empty_and_null_pattern_matches_nothing(void)
{
	CHECK(glob_match("*", NULL));
	CHECK(!glob_match("FAILURE", NULL));
	CHECK(!glob_match(NULL, ""));
	CHECK(!glob_match(NULL, "a"));
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_glob_pathological_backtracking_is_fast(void)
{
	size_t n = 10000;
	char *text = xmalloc(n + 2);
	memset(text, 'a', n);
	text[n] = '\0';
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(!glob_match("a*a*a*a*a*a*b", text));
	CHECK(!glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", text));
	CHECK(!glob_match("*?*?*?*?*?*?*?*?*?*?*?*?*b", text));
	CHECK(!glob_match("*[a]*[a]*[a]*[a]*[a]*[a]*[!a]", text));
	CHECK(glob_match("a*a*a*a*a*a*", text));
	text[n] = 'b';
	text[n + 1] = '\0';
	CHECK(glob_match("a*a*a*a*a*a*b", text));
	double elapsed = seconds_since(&t0);
	if (elapsed >= 2.0)
		printf("# pathological globs took %.2fs, expected well under 2s\n", elapsed);
	CHECK(elapsed < 2.0);
	free(text);
}

/* ---- glob_check ---- */

struct check_case {
	const char *pattern;
	const char *reason; /* NULL: well-formed */
};

static const struct check_case check_cases[] = {
	{"*", NULL},
	{"periodic-*", NULL},
	{"[a-z]*", NULL},
	{"[]]", NULL},
	{"[!]]", NULL},
	{"[\\]]", NULL},
	{"\\[", NULL},
	{"\\\\", NULL},
	{"\\\xc3\xa9", NULL},
	{"[\xce\xb1-\xcf\x89]", NULL},
	{"", "empty pattern"},
	{NULL, "empty pattern"},
	{"[", "unterminated ["},
	{"[abc", "unterminated ["},
	{"a[]", "unterminated ["},
	{"[!]", "unterminated ["},
	{"[\\]", "unterminated ["},
	{"[a-\\", "unterminated ["},
	{"x\\", "trailing backslash"},
	{"\\", "trailing backslash"},
	{"a\\\\\\", "trailing backslash"},
	{"[z-a]", "range out of order in [...]"},
	{"caf\xc3", "not valid UTF-8"},
	{"\xff*", "not valid UTF-8"},
	{"\xc0\xaf", "not valid UTF-8"}, /* overlong '/' */
};

static void check_check(const struct check_case *c)
{
	CHECK_STR(glob_check(c->pattern), c->reason);
}

/* ---- routes and events built by hand ---- */

/* A typed terminator: a bare NULL in varargs may be an int 0. */
#define END ((const char *)NULL)

/* Sets g to the END-terminated list of patterns (copied, freed by route_clear). */
static void set_globs(struct route_globs *g, ...)
{
	va_list ap;
	va_start(ap, g);
	for (const char *p; (p = va_arg(ap, const char *));) {
		g->patterns = xrealloc(g->patterns, (g->n + 1) * sizeof *g->patterns);
		g->patterns[g->n++] = xstrdup(p);
	}
	va_end(ap);
	if (!g->patterns) /* constrained but empty */
		g->patterns = xcalloc(1, sizeof *g->patterns);
}

static struct route new_route(const char *name)
{
	struct route r;
	memset(&r, 0, sizeof r);
	r.name = xstrdup(name);
	r.room = xstrdup("#zuul-alerts:example.org");
	r.template_path = xstrdup("default.html");
	return r;
}

static struct zuul_build builds3[3];

/* A current-schema periodic failure in SovereignCloudStack with three builds. */
static struct zuul_event sample_event(void)
{
	struct zuul_event ev;
	memset(&ev, 0, sizeof ev);
	ev.schema = ZUUL_SCHEMA_CURRENT;
	ev.action = "failure";
	ev.tenant = "scs";
	ev.pipeline = "periodic-daily";
	ev.item.project = "SovereignCloudStack/k8s-cluster-api-provider";
	ev.item.branch = "main";
	ev.buildset_result = "FAILURE";
	memset(builds3, 0, sizeof builds3);
	builds3[0].job_name = "linters";
	builds3[0].result = "SUCCESS";
	builds3[1].job_name = "e2e-test";
	builds3[1].result = "FAILURE";
	builds3[2].job_name = "docs";
	builds3[2].result = "SUCCESS";
	ev.builds = builds3;
	ev.n_builds = 3;
	return ev;
}

static bool matches(const struct route *r, const struct zuul_event *ev)
{
	/* The verdict must not depend on whether an explanation is asked for. */
	struct strbuf why = STRBUF_INIT;
	bool with = route_matches(r, ev, &why);
	bool without = route_matches(r, ev, NULL);
	if (with != without)
		printf("# verdict with explanation %d differs from without %d\n", with, without);
	CHECK(with == without);
	strbuf_free(&why);
	return without;
}

static void test_field_keys_round_trip(void)
{
	const char *keys[] = {"tenants", "pipelines", "projects", "branches", "actions",
	                      "buildset_results", "build_results"};
	CHECK_INT(sizeof keys / sizeof keys[0], ROUTE_NFIELDS);
	for (int f = 0; f < ROUTE_NFIELDS; f++) {
		CHECK_STR(route_field_key((enum route_field)f), keys[f]);
		CHECK_INT(route_field_from_key(keys[f]), f);
	}
	CHECK_INT(route_field_from_key("tenant"), -1);
	CHECK_INT(route_field_from_key("Tenants"), -1);
	CHECK_INT(route_field_from_key(""), -1);
	CHECK_INT(route_field_from_key(NULL), -1);
	CHECK(route_field_key(ROUTE_NFIELDS) == NULL);
}

static void test_route_without_match_takes_every_report(void)
{
	struct route r = new_route("all");
	struct zuul_event ev = sample_event();
	CHECK(matches(&r, &ev));
	struct zuul_event empty;
	memset(&empty, 0, sizeof empty);
	empty.action = "start";
	CHECK(matches(&r, &empty));
	/* match rules are ignored when has_match is false (config never does this) */
	set_globs(&r.match.field[ROUTE_TENANT], "other", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);
}

/* Each field, alone, decides from the value the spec names. */
struct field_case {
	enum route_field field;
	const char *hit;
	const char *miss;
};

static const struct field_case field_cases[] = {
	{ROUTE_TENANT, "scs", "openstack"},
	{ROUTE_PIPELINE, "periodic-*", "check"},
	{ROUTE_PROJECT, "SovereignCloudStack/*", "osism/*"},
	{ROUTE_BRANCH, "main", "stable/*"},
	{ROUTE_ACTION, "failure", "success"},
	{ROUTE_BUILDSET_RESULT, "FAIL*", "SUCCESS"},
	{ROUTE_BUILD_RESULT, "FAILURE", "POST_FAILURE"},
};

static void check_field(const struct field_case *c)
{
	struct zuul_event ev = sample_event();
	struct route r = new_route("one-field");
	r.has_match = true;
	set_globs(&r.match.field[c->field], c->hit, END);
	CHECK(matches(&r, &ev));
	route_clear(&r);

	r = new_route("one-field");
	r.has_match = true;
	set_globs(&r.match.field[c->field], c->miss, END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);

	/* OR within a field */
	r = new_route("one-field");
	r.has_match = true;
	set_globs(&r.match.field[c->field], c->miss, c->hit, END);
	CHECK(matches(&r, &ev));
	route_clear(&r);

	/* exclude with the hit drops it, with the miss keeps it */
	r = new_route("one-field");
	set_globs(&r.exclude.field[c->field], c->hit, END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);

	r = new_route("one-field");
	set_globs(&r.exclude.field[c->field], c->miss, END);
	CHECK(matches(&r, &ev));
	route_clear(&r);
}

/* Zuul >= 10 sends every change of an item in changes (a dependency cycle has several);
 * the top-level project/branch describe changes[0] only (mqttreporter.py). */
static struct zuul_change cycle[2];

static struct zuul_event cycle_event(void)
{
	struct zuul_event ev = sample_event();
	memset(cycle, 0, sizeof cycle);
	cycle[0].project = "org/a";
	cycle[0].branch = "main";
	cycle[1].project = "org/b";
	cycle[1].branch = "stable/1";
	ev.item = cycle[0];
	ev.changes = cycle;
	ev.n_changes = 2;
	return ev;
}

static void test_a_route_takes_a_cycle_when_any_change_matches(void)
{
	struct zuul_event ev = cycle_event();
	struct route r = new_route("b");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "org/b", END);
	CHECK(matches(&r, &ev)); /* led by org/a, but org/b is in it */
	route_clear(&r);

	/* Project and branch must hold for the same change. */
	r = new_route("b-main");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "org/b", END);
	set_globs(&r.match.field[ROUTE_BRANCH], "main", END);
	CHECK(!matches(&r, &ev)); /* org/b is on stable/1; main is org/a's */
	route_clear(&r);
	r = new_route("b-stable");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "org/b", END);
	set_globs(&r.match.field[ROUTE_BRANCH], "stable/*", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);

	/* Without changes (Zuul < 10) the top-level item is the one change. */
	ev.changes = NULL;
	ev.n_changes = 0;
	r = new_route("b");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "org/b", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);
}

static void test_exclude_drops_a_cycle_only_when_every_change_is_dropped(void)
{
	struct zuul_event ev = cycle_event();
	struct route r = new_route("not-b");
	set_globs(&r.exclude.field[ROUTE_PROJECT], "org/b", END);
	CHECK(matches(&r, &ev)); /* org/a is left */
	set_globs(&r.exclude.field[ROUTE_BRANCH], "main", END);
	CHECK(!matches(&r, &ev)); /* org/a by its branch, org/b by its project */
	route_clear(&r);

	/* A change the match rules did not take cannot keep the report alive. */
	r = new_route("a-not-main");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "org/a", END);
	set_globs(&r.exclude.field[ROUTE_BRANCH], "main", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);
}

static void test_why_names_the_change_of_a_cycle(void)
{
	struct zuul_event ev = cycle_event();
	struct route r = new_route("b");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "org/b", END);
	set_globs(&r.exclude.field[ROUTE_BRANCH], "stable/*", END);
	struct strbuf why = STRBUF_INIT;
	bool v = route_matches(&r, &ev, &why);
	CHECK(!v);
	CHECK_STR(strbuf_str(&why), "match projects: \"org/a\" (change 1 of 2) matches none of \"org/b\"\n"
				    "match projects: \"org/b\" (change 2 of 2) matches \"org/b\"\n"
				    "exclude branches: \"stable/1\" (change 2 of 2) matches \"stable/*\" -> change excluded\n"
				    "exclude: no change of the item is left -> excluded\n"
				    "route b: does not match\n");
	strbuf_free(&why);
	route_clear(&r);
}

/* A job's failure-message replaces FAILURE, TIMED_OUT... in the payload (formatJobResult):
 * build_results rules still see the failure, and the explanation says why. */
static void test_build_results_see_through_custom_texts(void)
{
	struct zuul_event ev = sample_event();
	builds3[1].result = "broken, see the wiki";
	builds3[1].custom_result = true;
	builds3[1].custom_means = "FAILURE";
	struct route r = new_route("failures");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "FAILURE", END);
	CHECK(matches(&r, &ev));
	struct strbuf why = STRBUF_INIT;
	route_matches(&r, &ev, &why);
	CHECK_CONTAINS(strbuf_str(&why), "match build_results: \"broken, see the wiki\" (job \"e2e-test\", "
					 "the job's own text for FAILURE) matches \"FAILURE\"\n");
	strbuf_free(&why);
	route_clear(&r);
	/* The text itself matches too. */
	r = new_route("text");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "broken*", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);
	/* A custom text whose meaning is unknown matches only as itself. */
	builds3[1].custom_means = NULL;
	r = new_route("failures");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "FAILURE", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);
}

static void test_match_requires_every_constrained_field(void)
{
	struct zuul_event ev = sample_event();
	struct route r = new_route("periodic-failures");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_TENANT], "scs", END);
	set_globs(&r.match.field[ROUTE_PIPELINE], "periodic-*", "post", END);
	set_globs(&r.match.field[ROUTE_ACTION], "failure", "merge-conflict", END);
	set_globs(&r.match.field[ROUTE_PROJECT], "SovereignCloudStack/*", END);
	CHECK(matches(&r, &ev));
	ev.pipeline = "post";
	CHECK(matches(&r, &ev));
	ev.pipeline = "check";
	CHECK(!matches(&r, &ev));
	ev.pipeline = "periodic-daily";
	ev.action = "success";
	CHECK(!matches(&r, &ev));
	ev.action = "merge-conflict";
	ev.tenant = "other";
	CHECK(!matches(&r, &ev));
	route_clear(&r);
}

static void test_exclude_drops_on_any_field(void)
{
	struct zuul_event ev = sample_event();
	struct route r = new_route("no-stable");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PIPELINE], "periodic-*", END);
	set_globs(&r.exclude.field[ROUTE_BRANCH], "stable/*", END);
	set_globs(&r.exclude.field[ROUTE_PROJECT], "*/sandbox", "*/playground", END);
	CHECK(matches(&r, &ev));
	ev.item.branch = "stable/2024.1";
	CHECK(!matches(&r, &ev));
	ev.item.branch = "main";
	ev.item.project = "osism/playground";
	CHECK(!matches(&r, &ev));
	ev.item.project = "osism/playground2";
	CHECK(matches(&r, &ev));
	/* exclude wins over a match */
	ev.pipeline = "check";
	CHECK(!matches(&r, &ev));
	route_clear(&r);
}

static void test_missing_values_match_as_empty(void)
{
	struct zuul_event ev = sample_event();
	ev.buildset_result = NULL; /* legacy payload */
	ev.item.branch = NULL;
	struct route r = new_route("missing");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILDSET_RESULT], "FAILURE", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);

	r = new_route("missing");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILDSET_RESULT], "*", END);
	set_globs(&r.match.field[ROUTE_BRANCH], "*", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);

	r = new_route("missing");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BRANCH], "?*", END); /* needs a non-empty value */
	CHECK(!matches(&r, &ev));
	route_clear(&r);

	/* exclude "*" drops reports with a missing value too */
	r = new_route("missing");
	set_globs(&r.exclude.field[ROUTE_BUILDSET_RESULT], "*", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);

	/* a constrained field with no patterns matches nothing */
	r = new_route("missing");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_TENANT], END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);
}

static void test_build_results_match_any_build_not_retries(void)
{
	struct zuul_event ev = sample_event();
	struct zuul_build retry = {0};
	retry.job_name = "e2e-test";
	retry.result = "NODE_FAILURE";
	retry.retried = true;
	ev.retry_builds = &retry;
	ev.n_retry_builds = 1;

	struct route r = new_route("builds");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "NODE_FAILURE", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);

	r = new_route("builds");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "SUCCESS", END);
	CHECK(matches(&r, &ev)); /* any build, not all */
	route_clear(&r);

	/* a running build (NULL result) is "" */
	builds3[1].result = NULL;
	r = new_route("builds");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "FAILURE", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);
	r = new_route("builds");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);

	/* no builds: matched once as "" */
	ev.builds = NULL;
	ev.n_builds = 0;
	r = new_route("builds");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "*", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);
	r = new_route("builds");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "FAILURE", END);
	CHECK(!matches(&r, &ev));
	route_clear(&r);
	r = new_route("builds");
	set_globs(&r.exclude.field[ROUTE_BUILD_RESULT], "SUCCESS", END);
	CHECK(matches(&r, &ev));
	route_clear(&r);
}

/* ---- explanations ---- */

static char *explain(const struct route *r, const struct zuul_event *ev, bool *verdict)
{
	struct strbuf why = STRBUF_INIT;
	*verdict = route_matches(r, ev, &why);
	return strbuf_detach(&why);
}

static void test_why_explains_each_match_field_and_verdict(void)
{
	struct zuul_event ev = sample_event();
	ev.item.project = "foo/bar";
	struct route r = new_route("periodic-failures");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PIPELINE], "periodic-*", "post", END);
	set_globs(&r.match.field[ROUTE_PROJECT], "SovereignCloudStack/*", "osism/*", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_STR(why, "match pipelines: \"periodic-daily\" matches \"periodic-*\"\n"
	               "match projects: \"foo/bar\" matches none of \"SovereignCloudStack/*\", \"osism/*\"\n"
	               "route periodic-failures: does not match\n");
	free(why);
	route_clear(&r);
}

static void test_why_shows_every_failing_field_not_only_the_first(void)
{
	struct zuul_event ev = sample_event();
	struct route r = new_route("r");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_TENANT], "other", END);
	set_globs(&r.match.field[ROUTE_ACTION], "success", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_STR(why, "match tenants: \"scs\" matches none of \"other\"\n"
	               "match actions: \"failure\" matches none of \"success\"\n"
	               "route r: does not match\n");
	free(why);
	route_clear(&r);
}

static void test_why_explains_exclusion(void)
{
	struct zuul_event ev = sample_event();
	ev.item.branch = "stable/1";
	struct route r = new_route("periodic-failures");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PIPELINE], "periodic-*", END);
	set_globs(&r.exclude.field[ROUTE_TENANT], "sandbox", END);
	set_globs(&r.exclude.field[ROUTE_BRANCH], "stable/*", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_STR(why, "match pipelines: \"periodic-daily\" matches \"periodic-*\"\n"
	               "exclude tenants: \"scs\" matches none of \"sandbox\"\n"
	               "exclude branches: \"stable/1\" matches \"stable/*\" -> excluded\n"
	               "route periodic-failures: does not match\n");
	free(why);

	ev.item.branch = "main";
	why = explain(&r, &ev, &v);
	CHECK(v);
	CHECK_CONTAINS(why, "exclude branches: \"main\" matches none of \"stable/*\"\n");
	CHECK_CONTAINS(why, "route periodic-failures: matches\n");
	CHECK_NOT_CONTAINS(why, "excluded");
	free(why);
	route_clear(&r);
}

static void test_why_for_route_without_match(void)
{
	struct zuul_event ev = sample_event();
	struct route r = new_route("everything");
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(v);
	CHECK_STR(why, "match: no match rules, takes every report\nroute everything: matches\n");
	free(why);
	route_clear(&r);
}

static void test_why_marks_missing_values(void)
{
	struct zuul_event ev = sample_event();
	ev.buildset_result = NULL;
	struct route r = new_route("legacy");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILDSET_RESULT], "FAILURE", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_CONTAINS(why, "match buildset_results: \"\" (missing) matches none of \"FAILURE\"\n");
	free(why);
	route_clear(&r);
}

static void test_why_for_build_results(void)
{
	struct zuul_event ev = sample_event();
	struct route r = new_route("b");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "POST_FAILURE", "FAIL*", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(v);
	CHECK_CONTAINS(why, "match build_results: \"FAILURE\" (job \"e2e-test\") matches \"FAIL*\"\n");
	free(why);
	route_clear(&r);

	r = new_route("b");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_BUILD_RESULT], "TIMED_OUT", END);
	builds3[2].result = NULL;
	why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_CONTAINS(why, "match build_results: \"SUCCESS\", \"FAILURE\", \"\" (missing) (3 builds) "
	                    "match none of \"TIMED_OUT\"\n");
	free(why);

	ev.n_builds = 0;
	why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_CONTAINS(why, "match build_results: no builds, \"\" matches none of \"TIMED_OUT\"\n");
	free(why);
	route_clear(&r);
}

static void test_why_escapes_hostile_values(void)
{
	struct zuul_event ev = sample_event();
	ev.item.project = "evil\"\nroute x: matches\x1b[31m\\\xe2\x80\xae\xff";
	struct route r = new_route("r");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "ok/*", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(!v);
	CHECK_CONTAINS(why, "match projects: \"evil\\\"\\nroute x: matches\\x1b[31m\\\\\\u202e\\xff\" "
	                    "matches none of \"ok/*\"\n");
	/* exactly two lines: the hostile newline did not forge a third */
	size_t lines = 0;
	for (const char *p = why; *p; p++)
		lines += *p == '\n';
	CHECK_INT(lines, 2);
	CHECK_NOT_CONTAINS(why, "\x1b");
	free(why);
	route_clear(&r);
}

static void test_why_cuts_long_values(void)
{
	struct zuul_event ev = sample_event();
	char *long_project = xmalloc(10001);
	memset(long_project, 'p', 10000);
	long_project[10000] = '\0';
	ev.item.project = long_project;
	struct route r = new_route("r");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_PROJECT], "x", END);
	bool v;
	char *why = explain(&r, &ev, &v);
	CHECK(strlen(why) < 400);
	CHECK_CONTAINS(why, "pppp\"... matches none of \"x\"");
	free(why);
	free(long_project);
	route_clear(&r);
}

static void test_escape_value_escapes_and_reports_a_cut(void)
{
	struct strbuf sb = STRBUF_INIT;
	CHECK(!route_escape_value(&sb, "a\"b\\c\n\x01\xc2\x85\xe2\x80\x8f\xfe"));
	CHECK_STR(strbuf_str(&sb), "a\\\"b\\\\c\\n\\x01\\u0085\\u200f\\xfe");
	strbuf_reset(&sb);
	CHECK(!route_escape_value(&sb, NULL));
	CHECK_STR(strbuf_str(&sb), "");

	/* 200 characters are shown whole; the 201st is where it stops, without "...". */
	char text[202];
	memset(text, 'x', 201);
	text[200] = '\0';
	CHECK(!route_escape_value(&sb, text));
	CHECK_INT(sb.len, 200);
	strbuf_reset(&sb);
	text[200] = 'y';
	text[201] = '\0';
	CHECK(route_escape_value(&sb, text));
	CHECK_INT(sb.len, 200);
	CHECK_NOT_CONTAINS(strbuf_str(&sb), "y");
	strbuf_free(&sb);
}

static void test_quote_value_quotes_and_marks_a_cut_after_the_quote(void)
{
	struct strbuf sb = STRBUF_INIT;
	route_quote_value(&sb, "org/\"repo\"");
	CHECK_STR(strbuf_str(&sb), "\"org/\\\"repo\\\"\"");
	strbuf_reset(&sb);
	route_quote_value(&sb, NULL);
	CHECK_STR(strbuf_str(&sb), "\"\"");
	strbuf_reset(&sb);
	char text[300];
	memset(text, 'z', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	route_quote_value(&sb, text);
	CHECK_INT(sb.len, 1 + 200 + 1 + 3);
	CHECK_CONTAINS(strbuf_str(&sb), "zz\"...");
	strbuf_free(&sb);
}

static void test_clear_frees_and_zeroes(void)
{
	struct route r = new_route("r");
	r.has_match = true;
	set_globs(&r.match.field[ROUTE_TENANT], "a", "b", END);
	set_globs(&r.exclude.field[ROUTE_BUILD_RESULT], "c", END);
	route_clear(&r); /* leaks would fail the sanitizer build */
	CHECK(r.name == NULL && r.room == NULL && r.template_path == NULL);
	CHECK(r.match.field[ROUTE_TENANT].patterns == NULL && r.match.field[ROUTE_TENANT].n == 0);
	CHECK(!r.has_match);
	route_clear(&r); /* twice is safe */

	struct route_rules rules;
	memset(&rules, 0, sizeof rules);
	set_globs(&rules.field[ROUTE_PIPELINE], "x", END);
	route_rules_clear(&rules);
	CHECK(rules.field[ROUTE_PIPELINE].patterns == NULL);
}

int main(void)
{
	char name[200];
	for (size_t i = 0; i < sizeof glob_cases / sizeof glob_cases[0]; i++) {
		const struct glob_case *c = &glob_cases[i];
		snprintf(name, sizeof name, "glob case %zu: \"%s\" %s \"%s\"", i, c->pattern,
		         c->want ? "matches" : "does not match", c->text);
		for (char *q = name; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f || *q == '#')
				*q = '?'; /* keep the TAP line printable and directive-free */
		RUN_NAMED(name, check_glob(c));
	}
	RUN(test_glob_null_text_is_empty_and_null_pattern_matches_nothing);
	RUN(test_glob_pathological_backtracking_is_fast);
	for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
		const struct check_case *c = &check_cases[i];
		snprintf(name, sizeof name, "glob_check case %zu: \"%s\" -> %s", i,
		         c->pattern ? c->pattern : "(null)", c->reason ? c->reason : "well-formed");
		for (char *q = name; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f || *q == '#')
				*q = '?';
		RUN_NAMED(name, check_check(c));
	}
	RUN(test_field_keys_round_trip);
	RUN(test_route_without_match_takes_every_report);
	for (size_t i = 0; i < sizeof field_cases / sizeof field_cases[0]; i++) {
		snprintf(name, sizeof name, "field %s matches, misses, ORs and excludes",
		         route_field_key(field_cases[i].field));
		RUN_NAMED(name, check_field(&field_cases[i]));
	}
	RUN(test_a_route_takes_a_cycle_when_any_change_matches);
	RUN(test_exclude_drops_a_cycle_only_when_every_change_is_dropped);
	RUN(test_why_names_the_change_of_a_cycle);
	RUN(test_build_results_see_through_custom_texts);
	RUN(test_match_requires_every_constrained_field);
	RUN(test_exclude_drops_on_any_field);
	RUN(test_missing_values_match_as_empty);
	RUN(test_build_results_match_any_build_not_retries);
	RUN(test_why_explains_each_match_field_and_verdict);
	RUN(test_why_shows_every_failing_field_not_only_the_first);
	RUN(test_why_explains_exclusion);
	RUN(test_why_for_route_without_match);
	RUN(test_why_marks_missing_values);
	RUN(test_why_for_build_results);
	RUN(test_why_escapes_hostile_values);
	RUN(test_why_cuts_long_values);
	RUN(test_escape_value_escapes_and_reports_a_cut);
	RUN(test_quote_value_quotes_and_marks_a_cut_after_the_quote);
	RUN(test_clear_frees_and_zeroes);
	return test_done();
}
