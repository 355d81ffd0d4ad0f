/* Tests of clock: the system clock by default, a test's clock file when ZMB_TEST_CLOCK
 * names one, and what happens when that file is missing or garbage. */
#include "clock.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "test.h"

static char clock_path[] = "/tmp/zmb-test-clock-XXXXXX";

static void write_clock(const char *text)
{
	FILE *f = fopen(clock_path, "w");
	fputs(text, f);
	fclose(f);
}

static void test_without_the_variable_it_is_the_system_clock(void)
{
	unsetenv("ZMB_TEST_CLOCK");
	clock_reset_for_tests();
	CHECK(!clock_is_test());
	int64_t before = (int64_t)time(NULL) * 1000;
	int64_t now = clock_wall_ms();
	CHECK(now >= before && now < before + 2000);
	CHECK_INT(clock_tick_ms(), 1000);
}

static void test_the_file_sets_the_time_and_moves_it(void)
{
	write_clock("1732161600.25\n");
	setenv("ZMB_TEST_CLOCK", clock_path, 1);
	clock_reset_for_tests();
	CHECK(clock_is_test());
	CHECK_INT(clock_wall_ms(), 1732161600250LL);
	write_clock("1732165200");
	CHECK_INT(clock_wall_ms(), 1732165200000LL); /* read again at every call */
	CHECK_INT(clock_tick_ms(), 50);
}

static void test_a_broken_file_keeps_the_last_reading(void)
{
	write_clock("100");
	setenv("ZMB_TEST_CLOCK", clock_path, 1);
	clock_reset_for_tests();
	log_set_level(ZLOG_ERROR); /* the expected warnings are not test output */
	CHECK_INT(clock_wall_ms(), 100000);
	write_clock("yesterday");
	CHECK_INT(clock_wall_ms(), 100000);
	write_clock("-5");
	CHECK_INT(clock_wall_ms(), 100000);
	unlink(clock_path);
	CHECK_INT(clock_wall_ms(), 100000);
	write_clock("200");
	CHECK_INT(clock_wall_ms(), 200000);
	log_set_level(ZLOG_INFO);
}

int main(void)
{
	int fd = mkstemp(clock_path);
	if (fd >= 0)
		close(fd);
	RUN(test_without_the_variable_it_is_the_system_clock);
	RUN(test_the_file_sets_the_time_and_moves_it);
	RUN(test_a_broken_file_keeps_the_last_reading);
	unlink(clock_path);
	return test_done();
}
