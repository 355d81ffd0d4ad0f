/* Tests of duration: parsing operator durations (good, bad, overflowing) and
 * formatting human ones (units, rounding, clamping, small buffers). */
#include <math.h>

#include "duration.h"
#include "test.h"

struct parse_case {
	const char *text;
	int rc;
	long long seconds;
};

static const struct parse_case parse_cases[] = {
	{"0", 0, 0},
	{"90", 0, 90},
	{"007", 0, 7},
	{"0s", 0, 0},
	{"90s", 0, 90},
	{"30m", 0, 1800},
	{"1h", 0, 3600},
	{"1h30m", 0, 5400},
	{"2d", 0, 172800},
	{"1w", 0, 604800},
	{"1w2d3h4m5s", 0, 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5},
	{"1d1s", 0, 86401},
	{"120m", 0, 7200}, /* a unit may exceed the next one's range */
	{"9223372036854775807", 0, 9223372036854775807LL},
	{"9223372036854775807s", 0, 9223372036854775807LL},
	{"9223372036854775806s1s", -1, 0}, /* units out of order... */
	{"153722867280912930m", 0, 153722867280912930LL * 60},
	/* bad */
	{"", -1, 0},
	{"s", -1, 0},
	{"h1", -1, 0},
	{"1", 0, 1},
	{"1x", -1, 0},
	{"1H", -1, 0},
	{"1h30", -1, 0},
	{"30m1h", -1, 0},
	{"1m1m", -1, 0},
	{"1 h", -1, 0},
	{" 1h", -1, 0},
	{"1h ", -1, 0},
	{"-1s", -1, 0},
	{"+1s", -1, 0},
	{"1.5h", -1, 0},
	{"1hh", -1, 0},
	{"0x10", -1, 0},
	{"1h\n", -1, 0},
	/* overflow */
	{"99999999999999999999s", -1, 0},
	{"99999999999999999999", -1, 0},
	{"9223372036854775808", -1, 0},
	{"153722867280912931m", -1, 0},
	{"15250284452471w", 0, 15250284452471LL * 604800},
	{"15250284452472w", -1, 0},
	{"9223372036854775807s", 0, 9223372036854775807LL},
	{"1w9223372036854775807s", -1, 0},
	{"15250284452470w1000000d", -1, 0},
};

static void check_parse(const struct parse_case *c)
{
	long long got = -12345;
	int rc = duration_parse(c->text, &got);
	CHECK_INT(rc, c->rc);
	if (c->rc == 0)
		CHECK_INT(got, c->seconds);
	else
		CHECK_INT(got, -12345); /* untouched on failure */
}

static void test_parse_rejects_null(void)
{
	long long got = 5;
	CHECK_INT(duration_parse(NULL, &got), -1);
	CHECK_INT(got, 5);
}

struct format_case {
	double seconds;
	const char *want;
};

static const struct format_case format_cases[] = {
	{0, "0s"},
	{0.99, "0s"},
	{1, "1s"},
	{59.9, "59s"},
	{60, "1m"},
	{61, "1m 1s"},
	{269, "4m 29s"},
	{3599, "59m 59s"},
	{3600, "1h"},
	{3601, "1h"}, /* seconds are not adjacent to hours */
	{3725, "1h 2m"},
	{86399, "23h 59m"},
	{86400, "1d"},
	{86460, "1d"}, /* minutes are not adjacent to days */
	{90061, "1d 1h"},
	{604800, "7d"},
	{15 * 86400 + 7200, "15d 2h"},
	{-1, "0s"},
	{-0.0, "0s"},
	{-1e300, "0s"},
	{1e300, "106751991167300d 15h"},
	{9223372036854775807.0, "106751991167300d 15h"},
};

static void check_format(const struct format_case *c)
{
	char buf[32];
	CHECK_STR(duration_format(c->seconds, buf, sizeof buf), c->want);
}

static void test_format_nan_and_infinity(void)
{
	char buf[32];
	CHECK_STR(duration_format(NAN, buf, sizeof buf), "0s");
	CHECK_STR(duration_format(-INFINITY, buf, sizeof buf), "0s");
	CHECK_STR(duration_format(INFINITY, buf, sizeof buf), "106751991167300d 15h");
}

static void test_format_truncates_to_small_buffer(void)
{
	char buf[4] = "xxx";
	char *r = duration_format(269, buf, sizeof buf);
	CHECK(r == buf);
	CHECK_STR(buf, "4m ");
	char one[1] = {'x'};
	duration_format(269, one, 1);
	CHECK_INT(one[0], 0);
	CHECK(duration_format(5, NULL, 0) == NULL);
}

static void test_format_output_parses_back_when_one_unit(void)
{
	/* "1h", "7d": single-unit output is valid parser input. */
	char buf[32];
	long long s = 0;
	duration_format(7200, buf, sizeof buf);
	CHECK_INT(duration_parse(buf, &s), 0);
	CHECK_INT(s, 7200);
}

int main(void)
{
	char name[128];
	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
		const struct parse_case *c = &parse_cases[i];
		snprintf(name, sizeof name, "parse \"%s\" %s", c->text, c->rc ? "is rejected" : "is accepted");
		for (char *q = name; *q; q++)
			if (*q == '\n' || *q == '#')
				*q = '?'; /* keep the TAP line one line, no directive */
		RUN_NAMED(name, check_parse(c));
	}
	RUN(test_parse_rejects_null);
	for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0]; i++) {
		const struct format_case *c = &format_cases[i];
		snprintf(name, sizeof name, "format %g as \"%s\"", c->seconds, c->want);
		RUN_NAMED(name, check_format(c));
	}
	RUN(test_format_nan_and_infinity);
	RUN(test_format_truncates_to_small_buffer);
	RUN(test_format_output_parses_back_when_one_unit);
	return test_done();
}
