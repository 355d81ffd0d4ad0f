/* duration: operator durations in config and chat ("1h30m") and human ones in
 * messages ("4m 29s"). Pure; every arithmetic step is checked for overflow. */
#include "duration.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

struct unit {
	char suffix;
	long long seconds;
};

/* Largest first: parse requires this order, format walks it. */
static const struct unit units[] = {
	{'w', 7LL * 24 * 3600}, {'d', 24LL * 3600}, {'h', 3600}, {'m', 60}, {'s', 1},
};
#define NUNITS (sizeof(units) / sizeof(units[0]))

static int unit_index(char c)
{
	for (size_t i = 0; i < NUNITS; i++)
		if (units[i].suffix == c)
			return (int)i;
	return -1;
}

int duration_parse(const char *text, long long *seconds)
{
	if (!text || !*text)
		return -1;
	const char *p = text;
	long long total = 0;
	/* Units must come largest first and at most once: "1h30m", not "30m1h" or
	 * "1m1m", which are far more likely typos than intent. */
	int next_allowed = 0;
	while (*p) {
		const char *group = p;
		if (*p < '0' || *p > '9')
			return -1;
		long long n = 0;
		while (*p >= '0' && *p <= '9') {
			int d = *p - '0';
			if (n > (LLONG_MAX - d) / 10)
				return -1;
			n = n * 10 + d;
			p++;
		}
		long long mult;
		if (*p == '\0') {
			/* A bare number is seconds, but only on its own: "1h30" is ambiguous. */
			if (group != text)
				return -1;
			mult = 1;
		} else {
			int u = unit_index(*p);
			if (u < next_allowed)
				return -1;
			next_allowed = u + 1;
			mult = units[u].seconds;
			p++;
		}
		if (n > LLONG_MAX / mult)
			return -1;
		n *= mult;
		if (total > LLONG_MAX - n)
			return -1;
		total += n;
	}
	*seconds = total;
	return 0;
}

char *duration_format(double seconds, char *buf, size_t buflen)
{
	if (!buf || buflen == 0)
		return buf;
	long long s;
	if (isnan(seconds) || seconds < 1.0)
		s = 0;
	else if (seconds >= 9223372036854775807.0) /* 2^63: the first double past LLONG_MAX */
		s = LLONG_MAX;
	else
		s = (long long)seconds; /* truncation is the documented rounding down */

	/* Weeks stay out of the output: "10d 3h" reads more easily than "1w 3d 3h"
	 * and keeps the two printed units adjacent. */
	size_t first = 1;
	while (first < NUNITS - 1 && s < units[first].seconds)
		first++;
	long long hi = s / units[first].seconds;
	if (first == NUNITS - 1) {
		snprintf(buf, buflen, "%llds", hi);
		return buf;
	}
	long long lo = (s % units[first].seconds) / units[first + 1].seconds;
	if (lo)
		snprintf(buf, buflen, "%lld%c %lld%c", hi, units[first].suffix, lo,
		         units[first + 1].suffix);
	else
		snprintf(buf, buflen, "%lld%c", hi, units[first].suffix);
	return buf;
}
