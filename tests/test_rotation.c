/* Tests of rotation: who is on call when, handovers (exact instants, DST, overrides),
 * config validation messages and the escalation schedule. Instants are written in UTC. */
#include "rotation.h"

#include <time.h>

#include "test.h"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
	return timegm(&tm);
}

static char *iso(time_t t, char *buf)
{
	struct tm tm;
	if (t == 0)
		return strcpy(buf, "(none)");
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

/* Compares instants, showing both as UTC dates on failure. */
#define CHECK_TIME(got, want)                                            \
	do {                                                             \
		char gt_[32], wt_[32];                                   \
		CHECK_STR(iso((got), gt_), iso((want), wt_));            \
	} while (0)

static char *abc[] = {"@a:x.org", "@b:x.org", "@c:x.org"};

/* Three members, a week each, handover Monday 09:00; 2026-01-01 is a Thursday, so the
 * first shift starts Monday 2026-01-05. */
static struct rotation_config weekly(const char *zone)
{
	return (struct rotation_config){
		.members = abc,
		.n_members = 3,
		.shift_s = 7 * 86400,
		.handover_weekday = 1,
		.handover_minute = 9 * 60,
		.timezone = (char *)zone,
		.start = {2026, 1, 1},
	};
}

static const char *oncall_user(const struct rotation_config *rc, time_t t)
{
	struct rotation_oncall oc;
	if (rotation_oncall(rc, t, &oc) != 0)
		return "(error)";
	return oc.user ? oc.user : "(nobody)";
}

static void test_weekly_rotation_cycles_through_members(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	CHECK_INT(rotation_check(&rc, NULL), 0);
	/* 09:00 CET is 08:00 UTC in winter. */
	const char *want[] = {"@a:x.org", "@b:x.org", "@c:x.org", "@a:x.org", "@b:x.org", "@c:x.org"};
	for (int w = 0; w < 6; w++) {
		time_t h = utc(2026, 1, 5 + 7 * w, 8, 0, 0);
		CHECK_STR(oncall_user(&rc, h), want[w]);
		CHECK_STR(oncall_user(&rc, h + 3 * 86400), want[w]);
		CHECK_STR(oncall_user(&rc, h + 7 * 86400 - 1), want[w]);
	}
	struct rotation_oncall oc;
	CHECK_INT(rotation_oncall(&rc, utc(2026, 1, 21, 12, 0, 0), &oc), 0);
	CHECK_STR(oc.user, "@c:x.org");
	CHECK_INT(oc.member, 2);
	CHECK_INT(oc.override, -1);
	CHECK_TIME(oc.since, utc(2026, 1, 19, 8, 0, 0));
	CHECK_TIME(oc.until, utc(2026, 1, 26, 8, 0, 0));
	CHECK_STR(oc.next_user, "@a:x.org");
	CHECK_INT(oc.next_member, 0);
}

static void test_nobody_is_on_call_before_the_first_handover(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	struct rotation_oncall oc;
	time_t first = utc(2026, 1, 5, 8, 0, 0);
	CHECK_INT(rotation_oncall(&rc, first - 1, &oc), 0);
	CHECK(oc.user == NULL);
	CHECK_INT(oc.member, -1);
	CHECK_TIME(oc.since, 0);
	CHECK_TIME(oc.until, first);
	CHECK_STR(oc.next_user, "@a:x.org");
	CHECK_STR(oncall_user(&rc, utc(2025, 6, 1, 0, 0, 0)), "(nobody)");
}

static void test_handover_happens_exactly_at_handover_second(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	time_t h = utc(2026, 1, 12, 8, 0, 0);
	CHECK_STR(oncall_user(&rc, h - 1), "@a:x.org");
	CHECK_STR(oncall_user(&rc, h), "@b:x.org");
	CHECK_STR(oncall_user(&rc, h + 1), "@b:x.org");
	struct rotation_oncall oc;
	rotation_oncall(&rc, h - 1, &oc);
	CHECK_TIME(oc.until, h);
	rotation_oncall(&rc, h, &oc);
	CHECK_TIME(oc.since, h);
	CHECK_TIME(oc.until, h + 7 * 86400);
}

static void test_start_date_on_handover_weekday_starts_that_day(void)
{
	struct rotation_config rc = weekly("UTC");
	rc.start = (struct rotation_date){2026, 1, 5}; /* a Monday */
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 5, 8, 59, 59)), "(nobody)");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 5, 9, 0, 0)), "@a:x.org");
	rc.start = (struct rotation_date){2026, 1, 6}; /* Tuesday: next Monday */
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 12, 8, 59, 59)), "(nobody)");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 12, 9, 0, 0)), "@a:x.org");
}

static void test_daily_rotation_hands_over_every_day(void)
{
	char *ab[] = {"@a:x.org", "@b:x.org"};
	struct rotation_config rc = {.members = ab, .n_members = 2, .shift_s = 86400,
	                             .handover_weekday = ROTATION_ANY_WEEKDAY, .handover_minute = 7 * 60 + 30,
	                             .timezone = "UTC", .start = {2026, 3, 10}};
	CHECK_INT(rotation_check(&rc, NULL), 0);
	CHECK_STR(oncall_user(&rc, utc(2026, 3, 10, 7, 29, 59)), "(nobody)");
	CHECK_STR(oncall_user(&rc, utc(2026, 3, 10, 7, 30, 0)), "@a:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 3, 11, 7, 29, 59)), "@a:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 3, 11, 7, 30, 0)), "@b:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 3, 12, 12, 0, 0)), "@a:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 4, 10, 12, 0, 0)), "@b:x.org"); /* 31 days on: odd */
	size_t n;
	struct rotation_handover *h = rotation_handovers(&rc, utc(2026, 3, 10, 0, 0, 0), utc(2026, 3, 14, 0, 0, 0), &n);
	CHECK_INT(n, 4);
	if (n == 4) {
		CHECK(h[0].from == NULL);
		CHECK_STR(h[0].to, "@a:x.org");
		CHECK_TIME(h[3].at, utc(2026, 3, 13, 7, 30, 0));
		CHECK_STR(h[3].from, "@a:x.org");
		CHECK_STR(h[3].to, "@b:x.org");
	}
	free(h);
}

static void test_fortnightly_shift_uses_start_weekday_anchor(void)
{
	struct rotation_config rc = weekly("UTC");
	rc.shift_s = 14 * 86400;
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 12, 9, 0, 0)), "@a:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 19, 8, 59, 59)), "@a:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 19, 9, 0, 0)), "@b:x.org");
}

/* Berlin springs forward on Sunday 2026-03-29: 09:00 is 08:00 UTC before, 07:00 after. */
static void test_dst_spring_forward_keeps_local_handover_time(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	time_t before = utc(2026, 3, 23, 8, 0, 0), after = utc(2026, 3, 30, 7, 0, 0);
	struct rotation_oncall oc;
	rotation_oncall(&rc, before, &oc);
	CHECK_TIME(oc.since, before);
	CHECK_TIME(oc.until, after);
	CHECK_INT((oc.until - oc.since) / 3600, 167);
	CHECK_STR(oncall_user(&rc, after - 1), oc.user);
	CHECK_STR(oncall_user(&rc, after), oc.next_user);
	char buf[32];
	CHECK_STR(rotation_format_time(&rc, after, buf, sizeof(buf)), "Mon 30 Mar 09:00 CEST");
}

/* Berlin falls back on Sunday 2026-10-25: 09:00 is 07:00 UTC before, 08:00 after. */
static void test_dst_fall_back_keeps_local_handover_time(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	time_t before = utc(2026, 10, 19, 7, 0, 0), after = utc(2026, 10, 26, 8, 0, 0);
	struct rotation_oncall oc;
	rotation_oncall(&rc, before + 1, &oc);
	CHECK_TIME(oc.since, before);
	CHECK_TIME(oc.until, after);
	CHECK_INT((oc.until - oc.since) / 3600, 169);
	CHECK_STR(oncall_user(&rc, after - 1), oc.user);
	CHECK_STR(oncall_user(&rc, after), oc.next_user);
	char buf[32];
	CHECK_STR(rotation_format_time(&rc, before, buf, sizeof(buf)), "Mon 19 Oct 09:00 CEST");
	CHECK_STR(rotation_format_time(&rc, after, buf, sizeof(buf)), "Mon 26 Oct 09:00 CET");
}

/* A handover at 02:30 local: skipped on spring-forward day (moved on by the gap, to 03:30
 * CEST), and twice on fall-back day (the first, 02:30 CEST, counts). */
static void test_handover_in_dst_gap_and_fold(void)
{
	char *ab[] = {"@a:x.org", "@b:x.org"};
	struct rotation_config rc = {.members = ab, .n_members = 2, .shift_s = 86400,
	                             .handover_weekday = ROTATION_ANY_WEEKDAY, .handover_minute = 2 * 60 + 30,
	                             .timezone = "Europe/Berlin", .start = {2026, 3, 1}};
	struct rotation_oncall oc;
	rotation_oncall(&rc, utc(2026, 3, 28, 12, 0, 0), &oc);
	CHECK_TIME(oc.until, utc(2026, 3, 29, 1, 30, 0));
	rotation_oncall(&rc, utc(2026, 3, 29, 12, 0, 0), &oc);
	CHECK_TIME(oc.since, utc(2026, 3, 29, 1, 30, 0));
	CHECK_TIME(oc.until, utc(2026, 3, 30, 0, 30, 0));
	rotation_oncall(&rc, utc(2026, 10, 24, 12, 0, 0), &oc);
	CHECK_TIME(oc.until, utc(2026, 10, 25, 0, 30, 0));
	rotation_oncall(&rc, utc(2026, 10, 25, 12, 0, 0), &oc);
	CHECK_TIME(oc.since, utc(2026, 10, 25, 0, 30, 0));
	CHECK_TIME(oc.until, utc(2026, 10, 26, 1, 30, 0));
}

static void test_zone_without_dst_and_half_hour_offset(void)
{
	struct rotation_config rc = weekly("UTC");
	struct rotation_oncall oc;
	rotation_oncall(&rc, utc(2026, 7, 1, 0, 0, 0), &oc);
	CHECK_INT((oc.until - oc.since), 7 * 86400);
	char buf[32];
	CHECK_STR(rotation_format_time(&rc, oc.until, buf, sizeof(buf)), "Mon 6 Jul 09:00 UTC");

	rc = weekly("Asia/Kolkata"); /* +05:30 all year: 09:00 IST is 03:30 UTC */
	CHECK_INT(rotation_check(&rc, NULL), 0);
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 5, 3, 29, 59)), "(nobody)");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 5, 3, 30, 0)), "@a:x.org");
	rotation_oncall(&rc, utc(2026, 7, 1, 0, 0, 0), &oc);
	CHECK_TIME(oc.until, utc(2026, 7, 6, 3, 30, 0));
	CHECK_INT((oc.until - oc.since), 7 * 86400);
	CHECK_STR(rotation_format_time(&rc, oc.until, buf, sizeof(buf)), "Mon 6 Jul 09:00 IST");
}

static void test_format_time_for_humans(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	char buf[32];
	CHECK_STR(rotation_format_time(&rc, utc(2024, 11, 25, 8, 0, 0), buf, sizeof(buf)), "Mon 25 Nov 09:00 CET");
	char tiny[8];
	CHECK_STR(rotation_format_time(&rc, utc(2024, 11, 25, 8, 0, 0), tiny, sizeof(tiny)), "Mon 25 ");
}

static void test_describe_answers_oncall_command(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	char *s = rotation_describe(&rc, utc(2026, 1, 7, 12, 0, 0));
	CHECK_STR(s, "now @a:x.org until Mon 12 Jan 09:00 CET, then @b:x.org");
	free(s);
	s = rotation_describe(&rc, utc(2026, 1, 2, 12, 0, 0));
	CHECK_STR(s, "nobody until Mon 5 Jan 09:00 CET, then @a:x.org");
	free(s);
	rc.n_members = 1;
	s = rotation_describe(&rc, utc(2026, 3, 2, 12, 0, 0));
	CHECK_STR(s, "now @a:x.org, no handover scheduled");
	free(s);
}

static void test_rotation_of_one_has_no_handover_after_the_first(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	rc.n_members = 1;
	struct rotation_oncall oc;
	rotation_oncall(&rc, utc(2026, 5, 20, 12, 0, 0), &oc);
	CHECK_STR(oc.user, "@a:x.org");
	CHECK_TIME(oc.since, utc(2026, 1, 5, 8, 0, 0));
	CHECK_TIME(oc.until, 0);
	CHECK(oc.next_user == NULL);
	size_t n;
	struct rotation_handover *h = rotation_handovers(&rc, utc(2026, 1, 1, 0, 0, 0), utc(2026, 6, 1, 0, 0, 0), &n);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_TIME(h[0].at, utc(2026, 1, 5, 8, 0, 0));
	free(h);
}

/* b's week is Mon 12 Jan .. Mon 19 Jan; z covers Wed 14 and Thu 15, 09:00 CET to 09:00. */
static void test_override_replaces_member_for_its_days(void)
{
	struct rotation_override ov[] = {{"@z:x.org", {2026, 1, 14}, {2026, 1, 15}}};
	struct rotation_config rc = weekly("Europe/Berlin");
	rc.overrides = ov;
	rc.n_overrides = 1;
	CHECK_INT(rotation_check(&rc, NULL), 0);
	time_t in = utc(2026, 1, 14, 8, 0, 0), out = utc(2026, 1, 16, 8, 0, 0);
	CHECK_STR(oncall_user(&rc, in - 1), "@b:x.org");
	CHECK_STR(oncall_user(&rc, in), "@z:x.org");
	CHECK_STR(oncall_user(&rc, out - 1), "@z:x.org");
	CHECK_STR(oncall_user(&rc, out), "@b:x.org");

	struct rotation_oncall oc;
	rotation_oncall(&rc, in - 1, &oc);
	CHECK_TIME(oc.since, utc(2026, 1, 12, 8, 0, 0));
	CHECK_TIME(oc.until, in);
	CHECK_STR(oc.next_user, "@z:x.org");
	CHECK_INT(oc.next_override, 0);
	CHECK_INT(oc.next_member, -1);
	rotation_oncall(&rc, in + 3600, &oc);
	CHECK_INT(oc.override, 0);
	CHECK_INT(oc.member, -1);
	CHECK_TIME(oc.since, in);
	CHECK_TIME(oc.until, out);
	CHECK_STR(oc.next_user, "@b:x.org");
	CHECK_INT(oc.next_member, 1);
	rotation_oncall(&rc, out, &oc);
	CHECK_TIME(oc.since, out);
	CHECK_TIME(oc.until, utc(2026, 1, 19, 8, 0, 0));
	CHECK_STR(oc.next_user, "@c:x.org");
}

static void test_overlapping_overrides_later_listed_wins(void)
{
	struct rotation_override ov[] = {{"@z:x.org", {2026, 1, 14}, {2026, 1, 17}},
	                                 {"@y:x.org", {2026, 1, 15}, {2026, 1, 15}}};
	struct rotation_config rc = weekly("Europe/Berlin");
	rc.overrides = ov;
	rc.n_overrides = 2;
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 14, 12, 0, 0)), "@z:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 15, 8, 0, 0)), "@y:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 16, 7, 59, 59)), "@y:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 16, 8, 0, 0)), "@z:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 18, 7, 59, 59)), "@z:x.org");
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 18, 8, 0, 0)), "@b:x.org");

	/* Listed the other way round, the long override hides the short one entirely. */
	struct rotation_override rev[] = {ov[1], ov[0]};
	rc.overrides = rev;
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 15, 12, 0, 0)), "@z:x.org");
	size_t n;
	struct rotation_handover *h = rotation_handovers(&rc, utc(2026, 1, 13, 0, 0, 0), utc(2026, 1, 19, 0, 0, 0), &n);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(h[0].to, "@z:x.org");
		CHECK_STR(h[1].from, "@z:x.org");
		CHECK_STR(h[1].to, "@b:x.org");
	}
	free(h);
}

/* z covers Sun 18 .. Tue 20 Jan, hiding the b -> c handover of Mon 19 Jan. */
static void test_handovers_in_interval_across_an_override(void)
{
	struct rotation_override ov[] = {{"@z:x.org", {2026, 1, 18}, {2026, 1, 20}}};
	struct rotation_config rc = weekly("Europe/Berlin");
	rc.overrides = ov;
	rc.n_overrides = 1;
	size_t n;
	struct rotation_handover *h = rotation_handovers(&rc, utc(2026, 1, 12, 8, 0, 0), utc(2026, 1, 26, 8, 0, 0), &n);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_TIME(h[0].at, utc(2026, 1, 12, 8, 0, 0)); /* a is inclusive */
		CHECK_STR(h[0].from, "@a:x.org");
		CHECK_STR(h[0].to, "@b:x.org");
		CHECK_TIME(h[1].at, utc(2026, 1, 18, 8, 0, 0));
		CHECK_STR(h[1].from, "@b:x.org");
		CHECK_STR(h[1].to, "@z:x.org");
		CHECK_TIME(h[2].at, utc(2026, 1, 21, 8, 0, 0));
		CHECK_STR(h[2].from, "@z:x.org");
		CHECK_STR(h[2].to, "@c:x.org"); /* c's week, already under way */
	}
	free(h); /* b (26 Jan, the c -> a handover) is exclusive */

	struct rotation_oncall oc;
	rotation_oncall(&rc, utc(2026, 1, 19, 8, 0, 0), &oc);
	CHECK_STR(oc.user, "@z:x.org");
	CHECK_TIME(oc.since, utc(2026, 1, 18, 8, 0, 0));
	CHECK_TIME(oc.until, utc(2026, 1, 21, 8, 0, 0));
	CHECK_STR(oc.next_user, "@c:x.org");

	h = rotation_handovers(&rc, utc(2026, 1, 19, 0, 0, 0), utc(2026, 1, 20, 0, 0, 0), &n);
	CHECK_INT(n, 0);
	CHECK(h == NULL);
}

static void test_override_naming_the_scheduled_member_is_no_handover(void)
{
	struct rotation_override ov[] = {{"@b:x.org", {2026, 1, 11}, {2026, 1, 13}}};
	struct rotation_config rc = weekly("Europe/Berlin");
	rc.overrides = ov;
	rc.n_overrides = 1;
	/* b takes over a day early (Sun 11 Jan 09:00) and simply stays on. */
	size_t n;
	struct rotation_handover *h = rotation_handovers(&rc, utc(2026, 1, 10, 0, 0, 0), utc(2026, 1, 17, 0, 0, 0), &n);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_TIME(h[0].at, utc(2026, 1, 11, 8, 0, 0));
		CHECK_STR(h[0].from, "@a:x.org");
		CHECK_STR(h[0].to, "@b:x.org");
	}
	free(h);
	struct rotation_oncall oc;
	rotation_oncall(&rc, utc(2026, 1, 15, 0, 0, 0), &oc);
	CHECK_INT(oc.member, 1);
	CHECK_TIME(oc.since, utc(2026, 1, 11, 8, 0, 0));
	CHECK_TIME(oc.until, utc(2026, 1, 19, 8, 0, 0));
}

static void test_handovers_after_downtime_include_the_first_shift(void)
{
	struct rotation_config rc = weekly("Europe/Berlin");
	size_t n;
	struct rotation_handover *h = rotation_handovers(&rc, 0, utc(2026, 1, 19, 8, 0, 1), &n);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK(h[0].from == NULL);
		CHECK_STR(h[0].to, "@a:x.org");
		CHECK_TIME(h[2].at, utc(2026, 1, 19, 8, 0, 0));
	}
	free(h);
	h = rotation_handovers(&rc, utc(2026, 1, 19, 8, 0, 1), utc(2026, 1, 19, 8, 0, 1), &n);
	CHECK_INT(n, 0);
	free(h);
}

static void test_time_zone_environment_is_restored(void)
{
	struct rotation_config rc = weekly("Asia/Kolkata");
	char *saved = xstrdup(getenv("TZ"));
	setenv("TZ", "America/New_York", 1);
	tzset();
	CHECK_STR(oncall_user(&rc, utc(2026, 1, 5, 3, 30, 0)), "@a:x.org");
	CHECK_STR(getenv("TZ"), "America/New_York");
	unsetenv("TZ");
	tzset();
	char buf[32];
	rotation_format_time(&rc, 0, buf, sizeof(buf));
	CHECK(getenv("TZ") == NULL);
	if (saved)
		setenv("TZ", saved, 1);
	tzset();
	free(saved);
}

static void test_local_to_utc_gap_policies_and_fold(void)
{
	long long spring = utc(2026, 3, 29, 0, 0, 0) / 86400, fall = utc(2026, 10, 25, 0, 0, 0) / 86400;
	struct rotation_tz_scope tz;
	rotation_tz_enter(&tz, "Europe/Berlin");
	/* 02:30 does not exist on 29 March: moved on by the hour (03:30 CEST), or the first
	 * instant after the gap (03:00 CEST). */
	CHECK_TIME(rotation_local_to_utc(spring, 150, ROTATION_GAP_SHIFT), utc(2026, 3, 29, 1, 30, 0));
	CHECK_TIME(rotation_local_to_utc(spring, 150, ROTATION_GAP_TRANSITION), utc(2026, 3, 29, 1, 0, 0));
	/* Times outside a gap are the same under both policies. */
	CHECK_TIME(rotation_local_to_utc(spring, 60, ROTATION_GAP_TRANSITION), utc(2026, 3, 29, 0, 0, 0));
	CHECK_TIME(rotation_local_to_utc(spring, 240, ROTATION_GAP_SHIFT), utc(2026, 3, 29, 2, 0, 0));
	/* 02:30 occurs twice on 25 October: the earlier (CEST) one. */
	CHECK_TIME(rotation_local_to_utc(fall, 150, ROTATION_GAP_SHIFT), utc(2026, 10, 25, 0, 30, 0));
	CHECK_TIME(rotation_local_to_utc(fall, 150, ROTATION_GAP_TRANSITION), utc(2026, 10, 25, 0, 30, 0));
	/* 00:30 local on 29 March is 23:30 UTC the day before, still local day `spring`. */
	CHECK_INT(rotation_local_days_at(utc(2026, 3, 28, 23, 30, 0)), spring);
	CHECK_INT(rotation_local_days_at(utc(2026, 3, 28, 22, 30, 0)), spring - 1);
	rotation_tz_leave(&tz);
	CHECK(tz.saved == NULL);
}

static void test_tz_scope_restores_set_and_unset_tz(void)
{
	char *saved = getenv("TZ") ? xstrdup(getenv("TZ")) : NULL;
	struct rotation_tz_scope tz;
	setenv("TZ", "America/New_York", 1);
	rotation_tz_enter(&tz, "Asia/Kolkata");
	CHECK_STR(getenv("TZ"), ":Asia/Kolkata");
	rotation_tz_leave(&tz);
	CHECK_STR(getenv("TZ"), "America/New_York");
	unsetenv("TZ");
	rotation_tz_enter(&tz, NULL);
	CHECK_STR(getenv("TZ"), ":UTC");
	rotation_tz_leave(&tz);
	CHECK(getenv("TZ") == NULL);
	if (saved)
		setenv("TZ", saved, 1);
	tzset();
	free(saved);
}

static void test_unusable_config_gives_nobody_not_a_crash(void)
{
	struct rotation_config rc = weekly("UTC");
	rc.n_members = 0;
	struct rotation_oncall oc;
	CHECK_INT(rotation_oncall(&rc, utc(2026, 2, 1, 0, 0, 0), &oc), -1);
	CHECK(oc.user == NULL);
	CHECK_TIME(oc.until, 0);
	rc = weekly("UTC");
	rc.shift_s = 3600;
	size_t n = 99;
	CHECK(rotation_handovers(&rc, 0, utc(2027, 1, 1, 0, 0, 0), &n) == NULL);
	CHECK_INT(n, 0);
}

/* ---- validation ---- */

static void test_valid_config_has_no_problems(void)
{
	struct rotation_override ov[] = {{"@z:x.org", {2026, 12, 24}, {2026, 12, 27}}};
	char *fb[] = {"@lead:x.org"};
	struct rotation_config rc = weekly("Europe/Berlin");
	rc.overrides = ov;
	rc.n_overrides = 1;
	rc.escalate_after_s = 3600;
	rc.fallback = fb;
	rc.n_fallback = 1;
	rc.fallback_after_s = 3600;
	struct strbuf p = STRBUF_INIT;
	CHECK_INT(rotation_check(&rc, &p), 0);
	CHECK_STR(strbuf_str(&p), "");
	strbuf_free(&p);
}

static void test_check_rejects_unknown_zone(void)
{
	const char *bad[] = {"Europe/Berln", "../../etc/passwd", "/etc/passwd", "Europe",
	                     "zone.tab",     "",                 "Europe/./Berlin"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rotation_config rc = weekly(bad[i]);
		struct strbuf p = STRBUF_INIT;
		CHECK_INT(rotation_check(&rc, &p), 1);
		CHECK_CONTAINS(strbuf_str(&p), "timezone: ");
		strbuf_free(&p);
	}
	struct rotation_config rc = weekly("Europe/Berln");
	struct strbuf p = STRBUF_INIT;
	rotation_check(&rc, &p);
	CHECK_STR(strbuf_str(&p),
	          "timezone: \"Europe/Berln\" is not a zone of the system tz database (e.g. Europe/Berlin, UTC)\n");
	strbuf_free(&p);
	CHECK(rotation_zone_exists("Europe/Berlin"));
	CHECK(rotation_zone_exists("UTC"));
	CHECK(rotation_zone_exists("Asia/Kolkata"));
}

static void test_check_rejects_bad_weekday_and_time(void)
{
	struct rotation_config rc = weekly("UTC");
	rc.handover_weekday = 7;
	rc.handover_minute = 24 * 60;
	struct strbuf p = STRBUF_INIT;
	CHECK_INT(rotation_check(&rc, &p), 2);
	CHECK_CONTAINS(strbuf_str(&p), "handover: weekday 7 is not a day of the week");
	CHECK_CONTAINS(strbuf_str(&p), "handover: minute 1440 is not a time of day");
	strbuf_free(&p);
}

static void test_parse_handover_accepts_day_names_and_rejects_typos(void)
{
	int wd = 99, min = 99;
	CHECK_INT(rotation_parse_handover("Mon 09:00", &wd, &min, NULL), 0);
	CHECK_INT(wd, 1);
	CHECK_INT(min, 540);
	CHECK_INT(rotation_parse_handover("sunday 9:05", &wd, &min, NULL), 0);
	CHECK_INT(wd, 0);
	CHECK_INT(min, 545);
	CHECK_INT(rotation_parse_handover("SAT 23:59", &wd, &min, NULL), 0);
	CHECK_INT(wd, 6);
	CHECK_INT(rotation_parse_handover("07:30", &wd, &min, NULL), 0);
	CHECK_INT(wd, ROTATION_ANY_WEEKDAY);
	CHECK_INT(min, 450);

	struct strbuf err = STRBUF_INIT;
	wd = min = 42;
	CHECK_INT(rotation_parse_handover("Mox 09:00", &wd, &min, &err), -1);
	CHECK_STR(strbuf_str(&err), "\"Mox\" is not a weekday (Mon, Tue, ... Sun)");
	CHECK_INT(wd, 42);
	const char *bad[] = {"Mon 24:00",  "Mon 09:60",  "Mon", "Mon9:00",   "Mon 09:00x",
	                     "Mond 09:00", "", "9", "Mon 123:00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strbuf_reset(&err);
		CHECK_INT(rotation_parse_handover(bad[i], &wd, &min, &err), -1);
		CHECK(err.len > 0);
	}
	CHECK_INT(wd, 42);
	strbuf_free(&err);
}

static void test_parse_date_requires_real_calendar_dates(void)
{
	struct rotation_date d = {0, 0, 0};
	CHECK_INT(rotation_parse_date("2026-12-24", &d, NULL), 0);
	CHECK(d.year == 2026 && d.month == 12 && d.day == 24);
	CHECK_INT(rotation_parse_date("2028-02-29", &d, NULL), 0);
	struct strbuf err = STRBUF_INIT;
	CHECK_INT(rotation_parse_date("2026-02-29", &d, &err), -1);
	CHECK_STR(strbuf_str(&err), "2026-02-29 is not a calendar date");
	strbuf_reset(&err);
	CHECK_INT(rotation_parse_date("2026-2-3", &d, &err), -1);
	CHECK_STR(strbuf_str(&err), "\"2026-2-3\" is not a date (YYYY-MM-DD)");
	CHECK_INT(rotation_parse_date("2026-13-01", &d, NULL), -1);
	CHECK_INT(rotation_parse_date("2026-12-24 ", &d, NULL), -1);
	CHECK(d.year == 2028 && d.month == 2 && d.day == 29);
	strbuf_free(&err);
}

static void test_check_rejects_shift_not_whole_days(void)
{
	const long long bad[] = {0, -86400, 36 * 3600, 3600};
	const char *msg[] = {"a zero or negative length", "a zero or negative length", "1d 12h", "1h"};
	for (size_t i = 0; i < 4; i++) {
		struct rotation_config rc = weekly("UTC");
		rc.shift_s = bad[i];
		struct strbuf p = STRBUF_INIT;
		CHECK_INT(rotation_check(&rc, &p), 1);
		CHECK_CONTAINS(strbuf_str(&p), "shift: ");
		CHECK_CONTAINS(strbuf_str(&p), msg[i]);
		CHECK_CONTAINS(strbuf_str(&p), "is not a whole number of days");
		strbuf_free(&p);
	}
}

static void test_check_rejects_empty_members(void)
{
	struct rotation_config rc = weekly("UTC");
	rc.members = NULL;
	rc.n_members = 0;
	struct strbuf p = STRBUF_INIT;
	CHECK_INT(rotation_check(&rc, &p), 1);
	CHECK_STR(strbuf_str(&p), "members: the rotation needs at least one member\n");
	strbuf_free(&p);
}

static void test_user_id_grammar(void)
{
	const char *good[] = {"@alice:example.org", "@a.b_c=d-e/f+g:matrix.example.org:8448", "@x:[::1]:8448",
	                      "@x:1.2.3.4", "@0:localhost"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		RUN_NAMED(good[i], CHECK(rotation_user_id_valid(good[i])));
	const char *bad[] = {"alice", "@alice", "@:example.org", "@Alice:example.org", "@alice:", "@alice:exa mple.org",
	                     "@alice:example.org:123456", "@alice:example.org:", "@ali ce:example.org",
	                     "#room:example.org",
	                     "@alice:[]", "@alice:example.org/x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		RUN_NAMED(bad[i], CHECK(!rotation_user_id_valid(bad[i])));
	char longid[300];
	memset(longid, 'a', sizeof(longid));
	longid[0] = '@';
	memcpy(longid + 250, ":x.org", 7);
	RUN_NAMED("user id longer than 255 bytes", CHECK(!rotation_user_id_valid(longid)));
}

static void test_check_names_each_malformed_user_id(void)
{
	char *members[] = {"@a:x.org", "bob", "@Carol:x.org"};
	struct rotation_override ov[] = {{"@z", {2026, 1, 1}, {2026, 1, 2}}};
	char *fb[] = {"lead"};
	struct rotation_config rc = weekly("UTC");
	rc.members = members;
	rc.overrides = ov;
	rc.n_overrides = 1;
	rc.fallback = fb;
	rc.n_fallback = 1;
	rc.fallback_after_s = 600;
	struct strbuf p = STRBUF_INIT;
	CHECK_INT(rotation_check(&rc, &p), 4);
	CHECK_CONTAINS(strbuf_str(&p), "members[1]: \"bob\" is not a Matrix user id (@localpart:server");
	CHECK_CONTAINS(strbuf_str(&p), "members[2]: \"@Carol:x.org\" is not a Matrix user id");
	CHECK_CONTAINS(strbuf_str(&p), "overrides[0]: \"@z\" is not a Matrix user id");
	CHECK_CONTAINS(strbuf_str(&p), "fallback[0]: \"lead\" is not a Matrix user id");
	CHECK_NOT_CONTAINS(strbuf_str(&p), "members[0]");
	strbuf_free(&p);
}

static void test_check_rejects_bad_dates_and_escalation(void)
{
	struct rotation_override ov[] = {{"@z:x.org", {2026, 12, 27}, {2026, 12, 24}},
	                                 {"@y:x.org", {2026, 2, 30}, {2026, 3, 1}}};
	struct rotation_config rc = weekly("UTC");
	rc.start = (struct rotation_date){0, 0, 0};
	rc.overrides = ov;
	rc.n_overrides = 2;
	rc.escalate_after_s = -5;
	rc.fallback_after_s = 60;
	struct strbuf p = STRBUF_INIT;
	CHECK_INT(rotation_check(&rc, &p), 5);
	CHECK_CONTAINS(strbuf_str(&p), "start: missing (the date of the first shift, YYYY-MM-DD)\n");
	CHECK_CONTAINS(strbuf_str(&p), "overrides[0]: until 2026-12-24 is before from 2026-12-27\n");
	CHECK_CONTAINS(strbuf_str(&p), "overrides[1]: from 2026-02-30 is not a calendar date\n");
	CHECK_CONTAINS(strbuf_str(&p), "escalate_after: must not be negative\n");
	CHECK_CONTAINS(strbuf_str(&p), "fallback: empty, but fallback_after is set");
	strbuf_reset(&p);
	rc = weekly("UTC");
	rc.start = (struct rotation_date){2026, 4, 31};
	char *fb[] = {"@lead:x.org"};
	rc.fallback = fb;
	rc.n_fallback = 1;
	CHECK_INT(rotation_check(&rc, &p), 2);
	CHECK_CONTAINS(strbuf_str(&p), "start: 2026-04-31 is not a calendar date\n");
	CHECK_CONTAINS(strbuf_str(&p), "fallback_after: missing");
	strbuf_free(&p);
}

/* ---- escalation ---- */

static void test_escalation_steps_come_due_in_order(void)
{
	char *fb[] = {"@lead:x.org"};
	struct rotation_config rc = weekly("UTC");
	rc.escalate_after_s = 3600;
	rc.fallback = fb;
	rc.n_fallback = 1;
	rc.fallback_after_s = 1800;
	time_t t0 = utc(2026, 2, 2, 10, 0, 0);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0), 0);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 3599), 0);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 3600), ROTATION_STEP_PING_ONCALL);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 5399), ROTATION_STEP_PING_ONCALL);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 5400), ROTATION_STEP_PING_ONCALL | ROTATION_STEP_FALLBACK);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 86400), ROTATION_STEP_PING_ONCALL | ROTATION_STEP_FALLBACK);
	CHECK_TIME(rotation_escalation_next(&rc, t0, 0), t0 + 3600);
	CHECK_TIME(rotation_escalation_next(&rc, t0, ROTATION_STEP_PING_ONCALL), t0 + 5400);
	CHECK_TIME(rotation_escalation_next(&rc, t0, ROTATION_STEP_PING_ONCALL | ROTATION_STEP_FALLBACK), 0);
}

static void test_disabled_escalation_steps_never_come_due(void)
{
	struct rotation_config rc = weekly("UTC");
	time_t t0 = utc(2026, 2, 2, 10, 0, 0);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 365 * 86400), 0);
	CHECK_TIME(rotation_escalation_next(&rc, t0, 0), 0);

	rc.escalate_after_s = 600; /* no fallback users: only the ping */
	rc.fallback_after_s = 600;
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 86400), ROTATION_STEP_PING_ONCALL);
	CHECK_TIME(rotation_escalation_next(&rc, t0, ROTATION_STEP_PING_ONCALL), 0);

	char *fb[] = {"@lead:x.org"};
	rc.escalate_after_s = 0; /* fallback only: its interval counts from t0 */
	rc.fallback = fb;
	rc.n_fallback = 1;
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 599), 0);
	CHECK_INT(rotation_escalation_due(&rc, t0, t0 + 600), ROTATION_STEP_FALLBACK);
	CHECK_TIME(rotation_escalation_next(&rc, t0, 0), t0 + 600);
}

static void test_config_free_releases_owned_strings(void)
{
	struct rotation_config rc = {0};
	rc.n_members = 2;
	rc.members = xcalloc(2, sizeof(char *));
	rc.members[0] = xstrdup("@a:x.org");
	rc.members[1] = xstrdup("@b:x.org");
	rc.n_overrides = 1;
	rc.overrides = xcalloc(1, sizeof(*rc.overrides));
	rc.overrides[0].user = xstrdup("@z:x.org");
	rc.n_fallback = 1;
	rc.fallback = xcalloc(1, sizeof(char *));
	rc.fallback[0] = xstrdup("@f:x.org");
	rc.timezone = xstrdup("UTC");
	rotation_config_free(&rc);
	CHECK(rc.members == NULL && rc.n_members == 0 && rc.timezone == NULL);
	rotation_config_free(NULL);
}

int main(void)
{
	RUN(test_weekly_rotation_cycles_through_members);
	RUN(test_nobody_is_on_call_before_the_first_handover);
	RUN(test_handover_happens_exactly_at_handover_second);
	RUN(test_start_date_on_handover_weekday_starts_that_day);
	RUN(test_daily_rotation_hands_over_every_day);
	RUN(test_fortnightly_shift_uses_start_weekday_anchor);
	RUN(test_dst_spring_forward_keeps_local_handover_time);
	RUN(test_dst_fall_back_keeps_local_handover_time);
	RUN(test_handover_in_dst_gap_and_fold);
	RUN(test_zone_without_dst_and_half_hour_offset);
	RUN(test_format_time_for_humans);
	RUN(test_describe_answers_oncall_command);
	RUN(test_rotation_of_one_has_no_handover_after_the_first);
	RUN(test_override_replaces_member_for_its_days);
	RUN(test_overlapping_overrides_later_listed_wins);
	RUN(test_handovers_in_interval_across_an_override);
	RUN(test_override_naming_the_scheduled_member_is_no_handover);
	RUN(test_handovers_after_downtime_include_the_first_shift);
	RUN(test_time_zone_environment_is_restored);
	RUN(test_local_to_utc_gap_policies_and_fold);
	RUN(test_tz_scope_restores_set_and_unset_tz);
	RUN(test_unusable_config_gives_nobody_not_a_crash);
	RUN(test_valid_config_has_no_problems);
	RUN(test_check_rejects_unknown_zone);
	RUN(test_check_rejects_bad_weekday_and_time);
	RUN(test_parse_handover_accepts_day_names_and_rejects_typos);
	RUN(test_parse_date_requires_real_calendar_dates);
	RUN(test_check_rejects_shift_not_whole_days);
	RUN(test_check_rejects_empty_members);
	test_user_id_grammar();
	RUN(test_check_names_each_malformed_user_id);
	RUN(test_check_rejects_bad_dates_and_escalation);
	RUN(test_escalation_steps_come_due_in_order);
	RUN(test_disabled_escalation_steps_never_come_due);
	RUN(test_config_free_releases_owned_strings);
	return test_done();
}
