/* clock: wall-clock readings, from the system or from a test's clock file.
 * One module owns the choice so no calendar logic can read the system clock by accident. */
#include "clock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int test_mode = -1; /* -1: not looked at yet */
static const char *test_file;
static int64_t last_test_ms;
static bool warned;

static void decide(void)
{
	if (test_mode >= 0)
		return;
	test_file = getenv("ZMB_TEST_CLOCK");
	test_mode = test_file && *test_file;
	if (test_mode)
		log_kv(ZLOG_WARN, "using the test clock: wall time comes from a file", "file", test_file, NULL);
}

bool clock_is_test(void)
{
	decide();
	return test_mode == 1;
}

static int64_t read_test_clock(void)
{
	FILE *f = fopen(test_file, "r");
	double seconds = NAN;
	if (f) {
		if (fscanf(f, "%lf", &seconds) != 1)
			seconds = NAN;
		fclose(f);
	}
	if (!isfinite(seconds) || seconds < 0) {
		if (!warned) {
			log_kv(ZLOG_WARN, "test clock file unreadable; keeping the last reading", "file", test_file,
			       "error", f ? "not a number" : strerror(errno), NULL);
			warned = true;
		}
		return last_test_ms;
	}
	warned = false;
	last_test_ms = (int64_t)llround(seconds * 1000.0);
	return last_test_ms;
}

int64_t clock_real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void)
{
	return clock_is_test() ? read_test_clock() : clock_real_ms();
}

uint64_t clock_tick_ms(void)
{
	return clock_is_test() ? 50 : 1000;
}

void clock_reset_for_tests(void)
{
	test_mode = -1;
	test_file = NULL;
	last_test_ms = 0;
	warned = false;
}
