/* duration: parse operator durations ("90s", "30m", "1h30m", "2d", "1w") and print
 * human ones ("4m 29s"). Shared by config, report and chatops; pure. */
#ifndef ZMB_DURATION_H
#define ZMB_DURATION_H

#include <stddef.h>

/* Accepts a sequence of <integer><unit> with units s, m, h, d, w (e.g. "1h30m"),
 * or a bare non-negative integer meaning seconds. Units come largest first, each at
 * most once ("30m1h", "1m1m" and "1h30" are rejected). No spaces, no signs, no
 * overflow of long long. Returns 0 and sets *seconds, or -1 for anything else
 * (*seconds is then left untouched). */
int duration_parse(const char *text, long long *seconds);

/* Writes a human duration with at most two adjacent units, rounded down to whole
 * seconds: 0 -> "0s", 59.9 -> "59s", 269 -> "4m 29s", 3600 -> "1h", 3725 -> "1h 2m",
 * 90061 -> "1d 1h". The largest unit printed is d (15 days -> "15d").
 * Negative or NaN input is written as "0s"; huge values clamp at LLONG_MAX seconds.
 * Truncates like snprintf when buflen is too small (32 bytes always suffice). Returns buf. */
char *duration_format(double seconds, char *buf, size_t buflen);

#endif
