/* Tests of digest: when the daily digest is due (days, DST in both directions, edge minutes),
 * its content (exact strings, links, owners, escaping, size), and the catch-up plan and summary. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* tm_gmtoff */
#endif
#include "digest.h"

#include <stdint.h>
#include <time.h>

#include "strbuf.h"
#include "test.h"

#define HOUR 3600
#define DAY 86400

/* ---- schedule ---- */

struct next_case {
	const char *name;
	int minute;
	const char *zone;
	time_t after;
	time_t want;
};

static void check_next(const struct next_case *c)
{
	time_t got = digest_next_at(c->minute, c->zone, c->after);
	CHECK_INT(got, c->want);
}

static const struct next_case next_cases[] = {
	{"UTC 08:00 later the same day", 480, "UTC", 1773126000 /* 2026-03-10 07:00Z */, 1773129600},
	{"UTC 08:00 exactly at it: strictly after, so tomorrow", 480, "UTC", 1773129600, 1773216000},
	{"UTC 08:00 a second past it: tomorrow", 480, "UTC", 1773129601, 1773216000},
	{"NULL zone is UTC", 480, NULL, 1773126000, 1773129600},
	{"empty zone is UTC", 480, "", 1773126000, 1773129600},
	{"minute 0 at midnight: next midnight", 0, "UTC", 1773100800 /* 2026-03-10 00:00Z */, 1773187200},
	{"minute 0 a second before midnight", 0, "UTC", 1773187199, 1773187200},
	{"minute 1439 before 23:59: the same day", 1439, "UTC", 1773187140 - 60, 1773187140},
	{"minute 1439 at 23:59: the next day", 1439, "UTC", 1773187140, 1773273540},
	{"across the year end", 480, "UTC", 1798707600 /* 2026-12-31 09:00Z */, 1798790400},
	{"Berlin in winter is UTC+1", 480, "Europe/Berlin", 1768460400 - HOUR, 1768460400},
	{"Berlin 08:00 the day before spring forward (CET)", 480, "Europe/Berlin", 1774681200 - 1, 1774681200},
	{"Berlin 08:00 on the spring-forward day (CEST)", 480, "Europe/Berlin", 1774681200, 1774764000},
	{"Berlin 02:30 in the spring gap: at the transition (03:00 CEST)", 150, "Europe/Berlin",
	 1774699200 /* 2026-03-28 12:00Z */, 1774746000 /* 2026-03-29 01:00Z */},
	{"Berlin 02:30 after the gap day: the next day's 02:30 CEST", 150, "Europe/Berlin", 1774746000, 1774830600},
	{"Berlin 02:00 in the spring gap (its first minute): at the transition", 120, "Europe/Berlin", 1774699200,
	 1774746000},
	{"Berlin 02:30 on fall-back day: the first occurrence (CEST)", 150, "Europe/Berlin",
	 1792843200 /* 2026-10-24 12:00Z */, 1792888200},
	{"Berlin 02:30 after its first occurrence: not the second, the next day", 150, "Europe/Berlin", 1792888200,
	 1792978200},
	{"Berlin 02:30 between both occurrences: the next day", 150, "Europe/Berlin", 1792888200 + 1800, 1792978200},
	{"Berlin 08:00 on fall-back day (CET)", 480, "Europe/Berlin", 1792821600, 1792911600},
	{"New York 02:30 in the spring gap: at 03:00 EDT", 150, "America/New_York", 1772884800 /* 03-07 12:00Z */,
	 1772953200},
	{"New York 02:30 after the gap day", 150, "America/New_York", 1772953200, 1773037800},
	{"New York 01:30 on fall-back day: the first (EDT)", 90, "America/New_York", 1793448000 /* 10-31 12:00Z */,
	 1793511000},
	{"New York 01:30 after its first occurrence: the next day (EST)", 90, "America/New_York", 1793511000,
	 1793601000},
	{"minute -1 (no digest) gives 0", -1, "UTC", 1773126000, 0},
	{"minute 1440 gives 0", 1440, "UTC", 1773126000, 0},
};

/* Local time of t in zone, computed here independently of digest.c's own scope. */
static void local_tm(const char *zone, time_t t, struct tm *tm)
{
	char *saved = getenv("TZ") ? xstrdup(getenv("TZ")) : NULL;
	struct strbuf tz = STRBUF_INIT;
	strbuf_printf(&tz, ":%s", zone);
	setenv("TZ", strbuf_str(&tz), 1);
	tzset();
	localtime_r(&t, tm);
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	strbuf_free(&tz);
}

static long long civil_days(const struct tm *tm)
{
	/* Any monotonic day number will do for "the next calendar day". */
	struct tm c = *tm;
	c.tm_hour = 12;
	c.tm_min = c.tm_sec = 0;
	c.tm_isdst = 0;
	return (long long)(timegm(&c) / DAY);
}

/* A year of digests in a zone: each is on the next local calendar day (one a day, none
 * skipped, a fold's second occurrence never taken), at the wall minute, or in a gap at the
 * transition instant. */
static void year_of_digests(const char *zone, int minute)
{
	time_t t = 1767225600; /* 2026-01-01 00:00Z */
	time_t prev = 0;
	long long prev_day = 0;
	int bad = 0;
	for (int i = 0; i < 400 && bad < 5; i++) {
		time_t next = digest_next_at(minute, zone, t);
		struct tm tm, before;
		local_tm(zone, next, &tm);
		local_tm(zone, next - 1, &before);
		bool at_minute = tm.tm_hour * 60 + tm.tm_min == minute && tm.tm_sec == 0;
		bool at_gap_end = tm.tm_gmtoff > before.tm_gmtoff && tm.tm_hour * 60 + tm.tm_min > minute &&
		                  before.tm_hour * 60 + before.tm_min < minute;
		long long day = civil_days(&tm);
		if (next <= t || !(at_minute || at_gap_end) || (prev && day != prev_day + 1)) {
			printf("# %s %d: after %lld got %lld (%02d:%02d, day %lld after %lld)\n", zone, minute,
			       (long long)t, (long long)next, tm.tm_hour, tm.tm_min, day, prev_day);
			test_current_failed = 1;
			bad++;
		}
		prev = next;
		prev_day = day;
		t = next;
	}
	(void)prev;
}

static void test_next_at_a_year_in_zones(void)
{
	static const char *const zones[] = {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"};
	static const int minutes[] = {0, 1, 90, 120, 150, 179, 480, 1439};
	for (size_t z = 0; z < sizeof zones / sizeof *zones; z++)
		for (size_t m = 0; m < sizeof minutes / sizeof *minutes; m++)
			year_of_digests(zones[z], minutes[m]);
}

static void test_next_at_restores_tz(void)
{
	setenv("TZ", "America/Chicago", 1);
	tzset();
	digest_next_at(480, "Europe/Berlin", 1773126000);
	CHECK_STR(getenv("TZ"), "America/Chicago");
	unsetenv("TZ");
	tzset();
	char buf[48];
	digest_format_time(1773126000, "Europe/Berlin", buf, sizeof buf);
	CHECK(getenv("TZ") == NULL);
}

static void test_format_time_and_date_in_zone(void)
{
	char buf[48];
	CHECK_STR(digest_format_time(1774746000, "Europe/Berlin", buf, sizeof buf), "Sun 29 Mar 2026 03:00 CEST");
	CHECK_STR(digest_format_time(1768460400, "Europe/Berlin", buf, sizeof buf), "Thu 15 Jan 2026 08:00 CET");
	CHECK_STR(digest_format_time(1793514600, "America/New_York", buf, sizeof buf), "Sun 1 Nov 2026 01:30 EST");
	CHECK_STR(digest_format_time(1773126000, NULL, buf, sizeof buf), "Tue 10 Mar 2026 07:00 UTC");
	/* 23:30 UTC is already the next day in Berlin. */
	CHECK_STR(digest_format_date(1773185400, "Europe/Berlin", buf, sizeof buf), "Wed 11 Mar 2026");
	CHECK_STR(digest_format_date(1773185400, "UTC", buf, sizeof buf), "Tue 10 Mar 2026");
	char small[8];
	CHECK_STR(digest_format_date(1773185400, "UTC", small, sizeof small), "Tue 10 ");
}

/* ---- daily digest ---- */

#define NOW_MS 1773144000000LL /* 2026-03-10 12:00Z: Tue 10 Mar in Berlin */

static const char *const owners_ab[] = {"@a:x", "@b:x"};
static const char *const owner_c[] = {"@c:x"};

static struct digest_failure failure_a(void)
{
	return (struct digest_failure){"org/repo (main) periodic-daily: job-a, job-b", "!room:x", "$ev",
	                               NOW_MS - (3LL * DAY + 4 * HOUR) * 1000, 3, owners_ab, 2};
}

/* The string member `key` of content (a copy, caller frees), "(no content)" for NULL. */
static char *field(const cJSON *content, const char *key)
{
	if (!content)
		return xstrdup("(no content)");
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, key));
	return xstrdup(s ? s : "(missing)");
}

static void check_notice_without_pings(const cJSON *c)
{
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "msgtype")), "m.notice");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "format")), "org.matrix.custom.html");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "m.mentions");
	CHECK(cJSON_IsObject(m));
	CHECK(m && m->child == NULL);
}

static void test_digest_with_no_failures_is_null(void)
{
	struct digest_failure f = failure_a();
	CHECK(digest_content_new(&f, 0, NOW_MS, "UTC") == NULL);
	CHECK(digest_content_new(NULL, 0, NOW_MS, "UTC") == NULL);
}

static void test_digest_one_failure_with_link_count_and_owners(void)
{
	struct digest_failure f = failure_a();
	cJSON *c = digest_content_new(&f, 1, NOW_MS, "Europe/Berlin");
	CHECK(c != NULL);
	if (!c)
		return;
	check_notice_without_pings(c);
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_STR(body, "Daily digest, Tue 10 Mar 2026: 1 open failure nobody has claimed\n"
	                "- org/repo (main) periodic-daily: job-a, job-b: open 3d 4h, failed 3 times, owners @a:x, "
	                "@b:x https://matrix.to/#/%21room%3Ax/%24ev");
	CHECK_STR(html, "<p><b>Daily digest, Tue 10 Mar 2026</b>: 1 open failure nobody has claimed</p><ul>"
	                "<li><a href=\"https://matrix.to/#/%21room%3Ax/%24ev\">org/repo (main) periodic-daily: job-a, "
	                "job-b</a>: open 3d 4h, failed 3 times, owners @a:x, @b:x</li></ul>");
	free(body);
	free(html);
	cJSON_Delete(c);
}

static void test_digest_three_failures_oldest_first(void)
{
	struct digest_failure f[3] = {
		failure_a(),
		{"org/b (stable) periodic-weekly: lint", "!room:x", NULL, NOW_MS - 2LL * HOUR * 1000, 1, NULL, 0},
		{"org/c (main) post: upload", "!room:x", "$c", NOW_MS - 5LL * DAY * 1000, 2, owner_c, 1},
	};
	cJSON *c = digest_content_new(f, 3, NOW_MS, "UTC");
	check_notice_without_pings(c);
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_STR(body, "Daily digest, Tue 10 Mar 2026: 3 open failures nobody has claimed\n"
	                "- org/c (main) post: upload: open 5d, failed 2 times, owner @c:x "
	                "https://matrix.to/#/%21room%3Ax/%24c\n"
	                "- org/repo (main) periodic-daily: job-a, job-b: open 3d 4h, failed 3 times, owners @a:x, "
	                "@b:x https://matrix.to/#/%21room%3Ax/%24ev\n"
	                "- org/b (stable) periodic-weekly: lint: open 2h, no owner");
	CHECK_STR(html, "<p><b>Daily digest, Tue 10 Mar 2026</b>: 3 open failures nobody has claimed</p><ul>"
	                "<li><a href=\"https://matrix.to/#/%21room%3Ax/%24c\">org/c (main) post: upload</a>: open 5d, "
	                "failed 2 times, owner @c:x</li>"
	                "<li><a href=\"https://matrix.to/#/%21room%3Ax/%24ev\">org/repo (main) periodic-daily: job-a, "
	                "job-b</a>: open 3d 4h, failed 3 times, owners @a:x, @b:x</li>"
	                "<li>org/b (stable) periodic-weekly: lint: open 2h, no owner</li></ul>");
	free(body);
	free(html);
	cJSON_Delete(c);
}

static void test_digest_same_age_keeps_input_order(void)
{
	struct digest_failure f[2] = {
		{"second", "!r:x", NULL, NOW_MS - 1000 * 60, 1, NULL, 0},
		{"first", "!r:x", NULL, NOW_MS - 1000 * 60, 1, NULL, 0},
	};
	cJSON *c = digest_content_new(f, 2, NOW_MS, "UTC");
	char *body = field(c, "body");
	CHECK_CONTAINS(body, "- second: open 1m, no owner\n- first: open 1m, no owner");
	free(body);
	cJSON_Delete(c);
}

static void test_digest_escapes_hostile_what_and_owners(void)
{
	static const char *const evil_owner[] = {"@<b>x:y"};
	struct digest_failure f = {"<a href=\"javascript:x\">&</a>\n<script>", "!r:x", "$e/\"><script>",
	                           NOW_MS - 60000, 1, evil_owner, 1};
	cJSON *c = digest_content_new(&f, 1, NOW_MS, "UTC");
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_STR(html, "<p><b>Daily digest, Tue 10 Mar 2026</b>: 1 open failure nobody has claimed</p><ul>"
	                "<li><a href=\"https://matrix.to/#/%21r%3Ax/%24e%2F%22%3E%3Cscript%3E\">&lt;a "
	                "href=&quot;javascript:x&quot;&gt;&amp;&lt;/a&gt; &lt;script&gt;</a>: open 1m, owner "
	                "@&lt;b&gt;x:y</li></ul>");
	/* The plain body is plain text, but still one line per failure. */
	CHECK_STR(body, "Daily digest, Tue 10 Mar 2026: 1 open failure nobody has claimed\n"
	                "- <a href=\"javascript:x\">&</a> <script>: open 1m, owner @<b>x:y "
	                "https://matrix.to/#/%21r%3Ax/%24e%2F%22%3E%3Cscript%3E");
	free(body);
	free(html);
	cJSON_Delete(c);
}

static void test_digest_caps_owners_what_and_unlinkable_ids(void)
{
	static const char *const many[] = {"@1:x", "", "@2:x", NULL, "@3:x", "@4:x", "@5:x", "@6:x", "@7:x"};
	struct strbuf long_what = STRBUF_INIT, long_event = STRBUF_INIT;
	for (int i = 0; i < 400; i++)
		strbuf_puts(&long_what, "\xc3\xa9"); /* é: a cut must not split it */
	strbuf_putc(&long_event, '$');
	for (int i = 0; i < 300; i++)
		strbuf_putc(&long_event, 'e');
	struct digest_failure f = {strbuf_str(&long_what), "!r:x", strbuf_str(&long_event), NOW_MS, 1, many, 9};
	cJSON *c = digest_content_new(&f, 1, NOW_MS, "UTC");
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_CONTAINS(body, ": open 0s, owners @1:x, @2:x, @3:x, @4:x, @5:x and 2 more");
	CHECK_NOT_CONTAINS(html, "matrix.to"); /* an event id longer than the spec allows */
	const char *line = strstr(body, "\n- ");
	const char *colon = line ? strstr(line, ": open") : NULL;
	CHECK(line && colon);
	if (line && colon) {
		size_t len = (size_t)(colon - (line + 3));
		CHECK(len <= DIGEST_WHAT_MAX);
		CHECK_INT(len, 296 + 3); /* 148 whole é, then the ellipsis */
		CHECK(memcmp(colon - 3, "\xe2\x80\xa6", 3) == 0);
	}
	free(body);
	free(html);
	cJSON_Delete(c);
	strbuf_free(&long_what);
	strbuf_free(&long_event);
}

static void test_digest_caps_lines(void)
{
	struct digest_failure f[60];
	char names[60][16];
	for (int i = 0; i < 60; i++) {
		snprintf(names[i], sizeof names[i], "job-%02d", i);
		f[i] = (struct digest_failure){names[i], "!r:x", NULL, NOW_MS - (60 - i) * 60000LL, 1, NULL, 0};
	}
	cJSON *c = digest_content_new(f, 60, NOW_MS, "UTC");
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_CONTAINS(body, "60 open failures");
	CHECK_CONTAINS(body, "- job-49: open 11m, no owner\n... and 10 more.");
	CHECK_NOT_CONTAINS(body, "job-50");
	CHECK_CONTAINS(html, "</ul><p>... and 10 more.</p>");
	free(body);
	free(html);
	cJSON_Delete(c);
}

static void test_digest_caps_bytes(void)
{
	/* Each what escapes to about 1200 bytes of HTML: the byte budget ends the list first. */
	struct strbuf what = STRBUF_INIT;
	for (int i = 0; i < 290; i++)
		strbuf_putc(&what, '<');
	struct digest_failure f[50];
	for (int i = 0; i < 50; i++)
		f[i] = (struct digest_failure){strbuf_str(&what), "!r:x", "$e", NOW_MS, 1, NULL, 0};
	cJSON *c = digest_content_new(f, 50, NOW_MS, "UTC");
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK(strlen(html) <= DIGEST_BYTES_MAX);
	CHECK(strlen(body) <= DIGEST_BYTES_MAX);
	CHECK_CONTAINS(html, " more.</p>");
	CHECK_CONTAINS(body, "50 open failures");
	size_t lines = 0;
	for (const char *p = strstr(html, "<li>"); p; p = strstr(p + 1, "<li>"))
		lines++;
	CHECK(lines >= 20 && lines < 50);
	char tail[64];
	snprintf(tail, sizeof tail, "... and %zu more.", 50 - lines);
	CHECK_CONTAINS(body, tail);
	free(body);
	free(html);
	cJSON_Delete(c);
	strbuf_free(&what);
}

/* ---- catch-up plan ---- */

#define R(route, action, branch, pipeline) {route, action, "org/repo", branch, pipeline, NULL, 0}

/* The plan as a string of T (summarised) and F, to compare whole plans at once. */
static void check_plan(const struct digest_report *r, size_t n, const char *want)
{
	bool s[16];
	char got[17];
	for (size_t i = 0; i < n; i++)
		s[i] = (i % 2) == 0; /* garbage the plan must overwrite */
	digest_catch_up_plan(r, n, s);
	for (size_t i = 0; i < n; i++)
		got[i] = s[i] ? 'T' : 'F';
	got[n] = '\0';
	CHECK_STR(got, want);
}

static void test_plan_failure_then_success_both_summarised(void)
{
	struct digest_report r[] = {R("a", "failure", "main", "periodic"), R("a", "success", "main", "periodic")};
	check_plan(r, 2, "TT");
}

static void test_plan_success_before_failure_not(void)
{
	struct digest_report r[] = {R("a", "success", "main", "periodic"), R("a", "failure", "main", "periodic")};
	check_plan(r, 2, "FF");
}

static void test_plan_failure_without_later_success_not(void)
{
	struct digest_report r[] = {R("a", "failure", "main", "periodic")};
	check_plan(r, 1, "F");
	struct digest_report r2[] = {R("a", "failure", "main", "periodic"), R("a", "start", "main", "periodic")};
	check_plan(r2, 2, "FF");
}

static void test_plan_other_key_not(void)
{
	struct digest_report branch[] = {R("a", "failure", "main", "periodic"), R("a", "success", "stable", "periodic")};
	check_plan(branch, 2, "FF");
	struct digest_report pipeline[] = {R("a", "failure", "main", "periodic"), R("a", "success", "main", "post")};
	check_plan(pipeline, 2, "FF");
	struct digest_report route[] = {R("a", "failure", "main", "periodic"), R("b", "success", "main", "periodic")};
	check_plan(route, 2, "FF");
	struct digest_report project[] = {R("a", "failure", "main", "periodic"),
	                                  {"a", "success", "org/other", "main", "periodic", NULL, 0}};
	check_plan(project, 2, "FF");
}

static void test_plan_two_failures_one_success_all_three(void)
{
	struct digest_report r[] = {R("a", "failure", "main", "periodic"), R("a", "merge-conflict", "main", "periodic"),
	                            R("a", "success", "main", "periodic")};
	check_plan(r, 3, "TTT");
}

static void test_plan_failure_like_actions(void)
{
	struct digest_report r[] = {R("a", "config-error", "main", "p"), R("a", "merge-failure", "main", "p"),
	                            R("a", "dequeue", "main", "p"), R("a", "success", "main", "p")};
	check_plan(r, 4, "TTFT");
	CHECK(digest_action_is_failure("failure"));
	CHECK(digest_action_is_failure("merge-conflict"));
	CHECK(!digest_action_is_failure("success"));
	CHECK(!digest_action_is_failure("Failure"));
	CHECK(!digest_action_is_failure(NULL));
}

static void test_plan_episodes_and_repeated_success(void)
{
	struct digest_report again[] = {R("a", "failure", "main", "p"), R("a", "success", "main", "p"),
	                                R("a", "failure", "main", "p")};
	check_plan(again, 3, "TTF");
	struct digest_report twice[] = {R("a", "failure", "main", "p"), R("a", "success", "main", "p"),
	                                R("a", "success", "main", "p")};
	check_plan(twice, 3, "TTF");
	struct digest_report episodes[] = {R("a", "failure", "main", "p"), R("a", "success", "main", "p"),
	                                   R("a", "failure", "main", "p"), R("a", "success", "main", "p")};
	check_plan(episodes, 4, "TTTT");
}

static void test_plan_interleaved_keys(void)
{
	struct digest_report r[] = {R("a", "failure", "main", "p"), R("a", "failure", "stable", "p"),
	                            R("a", "start", "main", "p"),   R("a", "success", "main", "p"),
	                            R("b", "success", "stable", "p"), R("a", "failure", "stable", "p")};
	check_plan(r, 6, "TFFTFF");
}

static void test_plan_null_fields_match_each_other(void)
{
	struct digest_report r[] = {{NULL, "failure", NULL, NULL, NULL, NULL, 0},
	                            {"", "success", "", NULL, "", NULL, 0}};
	check_plan(r, 2, "TT");
	check_plan(r, 0, "");
}

/* ---- catch-up content ---- */

#define AWAY_FROM 1773126000000LL /* 2026-03-10 07:00Z */
#define AWAY_TO 1773135000000LL   /* 09:30Z */
#define MIN_MS 60000LL

static void test_catch_up_content_exact(void)
{
	const char *a = "org/repo (main) periodic-daily: job-a";
	struct digest_report r[] = {
		{"alerts", "failure", "org/repo", "main", "periodic-daily", a, AWAY_FROM + 10 * MIN_MS},
		{"alerts", "failure", "org/other", "main", "post", NULL, AWAY_FROM + 20 * MIN_MS},
		{"alerts", "failure", "org/repo", "main", "periodic-daily", "org/repo (main) periodic-daily: job-b",
		 AWAY_FROM + 40 * MIN_MS},
		{"alerts", "success", "org/repo", "main", "periodic-daily", "org/repo ok", AWAY_FROM + 60 * MIN_MS},
		{"alerts", "success", "org/other", "main", "post", NULL, AWAY_FROM + 75 * MIN_MS},
		{"alerts", "failure", "org/third", "main", "post", NULL, AWAY_FROM + 80 * MIN_MS},
	};
	bool s[6];
	digest_catch_up_plan(r, 6, s);
	cJSON *c = digest_catch_up_content_new(r, 6, s, AWAY_FROM, AWAY_TO);
	CHECK(c != NULL);
	if (!c)
		return;
	check_notice_without_pings(c);
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_STR(body, "While the bridge was away (2026-03-10 07:00 to 2026-03-10 09:30 UTC, 2h 30m): 3 failures that "
	                "have since recovered\n"
	                "- org/repo (main) periodic-daily: job-a: failed 2 times, first at 2026-03-10 07:10 UTC, "
	                "recovered at 2026-03-10 08:00 UTC\n"
	                "- org/other (main) post: failed once, first at 2026-03-10 07:20 UTC, recovered at "
	                "2026-03-10 08:15 UTC");
	CHECK_STR(html, "<p><b>While the bridge was away</b> (2026-03-10 07:00 to 2026-03-10 09:30 UTC, 2h 30m): 3 "
	                "failures that have since recovered</p><ul>"
	                "<li>org/repo (main) periodic-daily: job-a: failed 2 times, first at 2026-03-10 07:10 UTC, "
	                "recovered at 2026-03-10 08:00 UTC</li>"
	                "<li>org/other (main) post: failed once, first at 2026-03-10 07:20 UTC, recovered at "
	                "2026-03-10 08:15 UTC</li></ul>");
	free(body);
	free(html);
	cJSON_Delete(c);
}

static void test_catch_up_one_failure_singular_and_escaped(void)
{
	struct digest_report r[] = {
		{"x", "failure", "p", "b", "q", "<img src=x onerror=alert(1)>&", AWAY_FROM + MIN_MS},
		{"x", "success", "p", "b", "q", NULL, AWAY_FROM + 2 * MIN_MS},
	};
	bool s[2];
	digest_catch_up_plan(r, 2, s);
	cJSON *c = digest_catch_up_content_new(r, 2, s, AWAY_FROM, AWAY_FROM + 3 * MIN_MS);
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_CONTAINS(body, "UTC, 3m): 1 failure that has since recovered\n- <img src=x onerror=alert(1)>&: failed once");
	CHECK_CONTAINS(html, "<li>&lt;img src=x onerror=alert(1)&gt;&amp;: failed once");
	CHECK_NOT_CONTAINS(html, "<img");
	free(body);
	free(html);
	cJSON_Delete(c);
}

static void test_catch_up_nothing_summarised_is_null(void)
{
	struct digest_report r[] = {
		{"x", "failure", "p", "b", "q", NULL, AWAY_FROM},
		{"x", "start", "p", "b", "q", NULL, AWAY_FROM},
	};
	bool s[2];
	digest_catch_up_plan(r, 2, s);
	CHECK(digest_catch_up_content_new(r, 2, s, AWAY_FROM, AWAY_TO) == NULL);
	CHECK(digest_catch_up_content_new(r, 0, s, AWAY_FROM, AWAY_TO) == NULL);
	/* A success marked on its own (not by the plan) recovers nothing: still nothing to say. */
	bool only_success[2] = {false, false};
	struct digest_report ok[] = {{"x", "success", "p", "b", "q", NULL, AWAY_FROM}, r[1]};
	only_success[0] = true;
	CHECK(digest_catch_up_content_new(ok, 2, only_success, AWAY_FROM, AWAY_TO) == NULL);
}

static void test_catch_up_caps_lines(void)
{
	struct digest_report r[120];
	char projects[60][16];
	for (int i = 0; i < 60; i++) {
		snprintf(projects[i], sizeof projects[i], "org/p%02d", i);
		r[2 * i] = (struct digest_report){"x", "failure", projects[i], "main", "post", NULL, AWAY_FROM + i * 1000};
		r[2 * i + 1] = (struct digest_report){"x", "success", projects[i], "main", "post", NULL, AWAY_TO};
	}
	bool s[120];
	digest_catch_up_plan(r, 120, s);
	cJSON *c = digest_catch_up_content_new(r, 120, s, AWAY_FROM, AWAY_TO);
	char *body = field(c, "body"), *html = field(c, "formatted_body");
	CHECK_CONTAINS(body, "60 failures that have since recovered");
	CHECK_CONTAINS(body, "- org/p49 (main) post: failed once");
	CHECK_NOT_CONTAINS(body, "org/p50");
	CHECK_CONTAINS(body, "\n... and 10 more.");
	CHECK_CONTAINS(html, "</ul><p>... and 10 more.</p>");
	free(body);
	free(html);
	cJSON_Delete(c);
}

int main(void)
{
	for (size_t i = 0; i < sizeof next_cases / sizeof *next_cases; i++)
		RUN_NAMED(next_cases[i].name, check_next(&next_cases[i]));
	RUN(test_next_at_a_year_in_zones);
	RUN(test_next_at_restores_tz);
	RUN(test_format_time_and_date_in_zone);
	RUN(test_digest_with_no_failures_is_null);
	RUN(test_digest_one_failure_with_link_count_and_owners);
	RUN(test_digest_three_failures_oldest_first);
	RUN(test_digest_same_age_keeps_input_order);
	RUN(test_digest_escapes_hostile_what_and_owners);
	RUN(test_digest_caps_owners_what_and_unlinkable_ids);
	RUN(test_digest_caps_lines);
	RUN(test_digest_caps_bytes);
	RUN(test_plan_failure_then_success_both_summarised);
	RUN(test_plan_success_before_failure_not);
	RUN(test_plan_failure_without_later_success_not);
	RUN(test_plan_other_key_not);
	RUN(test_plan_two_failures_one_success_all_three);
	RUN(test_plan_failure_like_actions);
	RUN(test_plan_episodes_and_repeated_success);
	RUN(test_plan_interleaved_keys);
	RUN(test_plan_null_fields_match_each_other);
	RUN(test_catch_up_content_exact);
	RUN(test_catch_up_one_failure_singular_and_escaped);
	RUN(test_catch_up_nothing_summarised_is_null);
	RUN(test_catch_up_caps_lines);
	return test_done();
}
