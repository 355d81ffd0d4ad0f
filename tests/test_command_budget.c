/* Tests of command_budget: answers per member and per room within a window, silence past
 * them (reported once per member and window), and windows that end, with time taken from
 * the test clock file (ZMB_TEST_CLOCK) as the bridge takes it. */
#include "command_budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "test.h"

static char clock_path[] = "/tmp/zmb-test-budget-clock-XXXXXX";

/* Sets the test clock to t seconds (a fraction allowed). */
static void set_clock(double t)
{
	FILE *f = fopen(clock_path, "w");
	if (!f)
		return;
	fprintf(f, "%.3f\n", t);
	fclose(f);
}

#define T0 1767600000.0 /* 2026-01-05 08:00:00 UTC */

static const struct command_budget_limits limits = {.per_member = 3, .per_room = 5, .window_ms = 60000};

/* The verdict for sender in room now; *logged: whether it was the first silence. */
static enum command_budget_verdict take(struct command_budget *b, const char *room, const char *sender, bool *logged)
{
	return command_budget_take(b, room, sender, clock_wall_ms(), logged);
}

static void test_a_member_gets_three_answers_then_silence_reported_once(void)
{
	set_clock(T0);
	struct command_budget *b = command_budget_new(&limits);
	bool first;
	for (int i = 0; i < 3; i++) {
		CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
		CHECK(!first);
	}
	int reported = 0;
	for (int i = 0; i < 57; i++) {
		set_clock(T0 + 0.5 * i);
		CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_MEMBER_SPENT);
		reported += first;
	}
	CHECK_INT(reported, 1);
	/* Another member of the room still has theirs: bob's silence did not spend the room's. */
	CHECK_INT(take(b, "#a", "@carol:x", &first), COMMAND_BUDGET_ANSWER);
	command_budget_free(b);
}

static void test_the_member_budget_spans_rooms(void)
{
	set_clock(T0);
	struct command_budget *b = command_budget_new(&limits);
	bool first;
	CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#b", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#c", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#d", "@bob:x", &first), COMMAND_BUDGET_MEMBER_SPENT);
	CHECK(first);
	command_budget_free(b);
}

static void test_a_room_gets_five_answers_among_all_its_members(void)
{
	set_clock(T0);
	struct command_budget *b = command_budget_new(&limits);
	bool first;
	const char *members[] = {"@a:x", "@b:x", "@c:x", "@d:x", "@e:x"};
	for (int i = 0; i < 5; i++)
		CHECK_INT(take(b, "#a", members[i], &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#a", "@f:x", &first), COMMAND_BUDGET_ROOM_SPENT);
	CHECK(first);
	CHECK_INT(take(b, "#a", "@f:x", &first), COMMAND_BUDGET_ROOM_SPENT);
	CHECK(!first); /* once per member and window */
	CHECK_INT(take(b, "#a", "@a:x", &first), COMMAND_BUDGET_ROOM_SPENT);
	CHECK(first); /* each member's first silence is their own line */
	/* Another room is not affected, and @f's silence in #a did not count against it. */
	CHECK_INT(take(b, "#b", "@f:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_STR(command_budget_verdict_name(COMMAND_BUDGET_ROOM_SPENT), "room");
	CHECK_STR(command_budget_verdict_name(COMMAND_BUDGET_MEMBER_SPENT), "member");
	command_budget_free(b);
}

static void test_a_window_ends_a_minute_after_it_started(void)
{
	set_clock(T0);
	struct command_budget *b = command_budget_new(&limits);
	bool first;
	for (int i = 0; i < 3; i++)
		CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	set_clock(T0 + 59.999);
	CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_MEMBER_SPENT);
	CHECK(first);
	set_clock(T0 + 60);
	for (int i = 0; i < 3; i++)
		CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_MEMBER_SPENT);
	CHECK(first); /* a new window: its first silence is reported again */
	/* The room's window started at T0 too and ended with it: 3 of its 5 are used now. */
	CHECK_INT(take(b, "#a", "@carol:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#a", "@dave:x", &first), COMMAND_BUDGET_ANSWER);
	CHECK_INT(take(b, "#a", "@erin:x", &first), COMMAND_BUDGET_ROOM_SPENT);
	command_budget_free(b);
}

static void test_a_clock_set_back_starts_a_new_window(void)
{
	set_clock(T0);
	struct command_budget *b = command_budget_new(&limits);
	bool first;
	for (int i = 0; i < 3; i++)
		CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	set_clock(T0 - 3600);
	CHECK_INT(take(b, "#a", "@bob:x", &first), COMMAND_BUDGET_ANSWER);
	command_budget_free(b);
}

static void test_the_defaults_are_five_per_member_and_fifteen_per_room_a_minute(void)
{
	set_clock(T0);
	struct command_budget *b = command_budget_new(NULL);
	bool first;
	int answered = take(b, "#a", "@m0:x", &first) == COMMAND_BUDGET_ANSWER;
	for (int i = 0; i < 5; i++)
		answered += take(b, "#a", "@m0:x", &first) == COMMAND_BUDGET_ANSWER;
	CHECK_INT(answered, 5);
	char who[32];
	for (int m = 1; m < 4; m++) {
		snprintf(who, sizeof who, "@m%d:x", m);
		for (int i = 0; i < 5; i++)
			answered += take(b, "#a", who, &first) == COMMAND_BUDGET_ANSWER;
	}
	CHECK_INT(answered, 15);
	set_clock(T0 + 60);
	CHECK_INT(take(b, "#a", "@m0:x", &first), COMMAND_BUDGET_ANSWER);
	command_budget_free(b);
}

int main(void)
{
	int fd = mkstemp(clock_path);
	if (fd < 0)
		return 1;
	close(fd);
	setenv("ZMB_TEST_CLOCK", clock_path, 1);
	log_set_level(ZLOG_ERROR); /* the test clock's warning is not test output */
	clock_reset_for_tests();
	RUN(test_a_member_gets_three_answers_then_silence_reported_once);
	RUN(test_the_member_budget_spans_rooms);
	RUN(test_a_room_gets_five_answers_among_all_its_members);
	RUN(test_a_window_ends_a_minute_after_it_started);
	RUN(test_a_clock_set_back_starts_a_new_window);
	RUN(test_the_defaults_are_five_per_member_and_fifteen_per_room_a_minute);
	unlink(clock_path);
	return test_done();
}
