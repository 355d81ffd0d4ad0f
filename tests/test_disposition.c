/* Tests of disposition_decide: the order of the questions is the policy (a success that
 * ends streaks is told there, an unrouted report goes nowhere, a mute beats an incident,
 * an incident beats a thread, a thread beats an edit), and each answer says why. */
#include "disposition.h"

#include "test.h"

/* 2026-12-07 03:00 UTC */
#define OPENED_MS 1796612400000LL

static struct zuul_event event_with(const char *action)
{
	struct zuul_event ev = {0};
	ev.action = (char *)action;
	return ev;
}

static const struct disposition_failure open_failure = {"zmb.root", "$root", 3, OPENED_MS};

static enum disposition_kind decide(const char *action, const struct disposition_facts *f, char *why, size_t len)
{
	struct zuul_event ev = event_with(action);
	struct disposition d;
	disposition_decide(&ev, f, &d);
	enum disposition_kind kind = d.kind;
	snprintf(why, len, "%s", strbuf_str(&d.why));
	disposition_clear(&d);
	return kind;
}

static void test_a_plain_report_is_a_new_message(void)
{
	struct disposition_facts f = {.matches = true};
	char why[512];
	CHECK_INT(decide("success", &f, why, sizeof why), DISPOSITION_NEW_MESSAGE);
	CHECK_STR(why, "a new message");
	f.failure = true;
	f.threads = true;
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_NEW_MESSAGE);
	CHECK_CONTAINS(why, "repeats will go into its thread");
}

static void test_a_route_that_does_not_take_it_posts_nothing(void)
{
	struct disposition_facts f = {.matches = false, .failure = true, .threads = true, .has_repeat = true,
				      .repeat = open_failure};
	char why[512];
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_NOT_ROUTED);
	CHECK(!disposition_routed(DISPOSITION_NOT_ROUTED));
}

static void test_a_repeat_goes_into_the_thread_and_says_how_often(void)
{
	struct disposition_facts f = {.matches = true, .failure = true, .threads = true, .has_repeat = true,
				      .repeat = open_failure};
	char why[512];
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_THREAD_REPLY);
	CHECK_STR(why, "into the thread of $root: failed 4 times since 2026-12-07 03:00 UTC, this one included");
	/* not delivered yet: named by its transaction */
	f.repeat.event_id = NULL;
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_THREAD_REPLY);
	CHECK_CONTAINS(why, "the failure queued as zmb.root (not delivered yet)");
}

static void test_a_repeat_with_a_posted_start_report_points_it_at_the_thread(void)
{
	struct disposition_facts f = {.matches = true, .failure = true, .threads = true, .has_repeat = true,
				      .repeat = open_failure, .start_txn = "zmb.start"};
	struct zuul_event ev = event_with("failure");
	struct disposition d;
	disposition_decide(&ev, &f, &d);
	CHECK_INT(d.kind, DISPOSITION_THREAD_REPLY);
	CHECK(d.start_becomes_pointer);
	disposition_clear(&d);
	f.has_repeat = false;
	disposition_decide(&ev, &f, &d);
	CHECK_INT(d.kind, DISPOSITION_EDIT);
	CHECK(!d.start_becomes_pointer);
	CHECK_CONTAINS(strbuf_str(&d.why), "edits its start report (zmb.start) into the failure result");
	disposition_clear(&d);
}

static void test_a_mute_beats_an_incident_which_beats_a_thread(void)
{
	struct disposition_facts f = {.matches = true, .failure = true, .threads = true, .has_repeat = true,
				      .repeat = open_failure, .absorbed = true,
				      .incident = "inc-1 (NODE_FAILURE in tenant t, 6 projects so far)",
				      .muted_until_ms = OPENED_MS + 3600 * 1000};
	char why[512];
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_MUTED);
	CHECK_STR(why, "muted in this room until 2026-12-07 04:00 UTC: counted, not posted");
	f.muted_until_ms = 0;
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_INCIDENT);
	CHECK_CONTAINS(why, "inc-1 (NODE_FAILURE in tenant t, 6 projects so far)");
	f.absorbed = false;
	CHECK_INT(decide("failure", &f, why, sizeof why), DISPOSITION_THREAD_REPLY);
}

static void test_a_success_that_ends_a_streak_is_told_in_its_thread_even_unrouted(void)
{
	struct disposition_facts f = {.matches = false, .threads = true, .streaks_open = 2, .streak = open_failure};
	struct zuul_event ev = event_with("success");
	struct disposition d;
	disposition_decide(&ev, &f, &d);
	CHECK_INT(d.kind, DISPOSITION_RECOVERY);
	CHECK(d.closes_streaks);
	CHECK(disposition_routed(d.kind));
	CHECK_STR(strbuf_str(&d.why), "told in the thread of $root: recovers a failure that failed 3 times since "
				      "2026-12-07 03:00 UTC, and 1 more open failure of this project");
	disposition_clear(&d);
}

static void test_while_away_a_streak_that_came_and_went_is_left_to_the_catchup(void)
{
	struct disposition_facts f = {.matches = true, .threads = true, .away = true, .streaks_open = 1,
				      .streaks_unposted = 1, .streak = open_failure};
	char why[512];
	CHECK_INT(decide("success", &f, why, sizeof why), DISPOSITION_CATCHUP);
	CHECK_CONTAINS(why, "closes 1 failure that came and went while the bridge was away");
}

static void test_without_threads_a_success_is_posted_and_only_away_closes_streaks(void)
{
	struct disposition_facts f = {.matches = true, .threads = false, .streaks_open = 1, .streak = open_failure};
	struct zuul_event ev = event_with("success");
	struct disposition d;
	disposition_decide(&ev, &f, &d);
	CHECK_INT(d.kind, DISPOSITION_NEW_MESSAGE);
	CHECK(!d.closes_streaks); /* nothing recovers without threads or a catch-up */
	disposition_clear(&d);
	f.away = true; /* a posted failure, away: marked recovered, the success posted */
	disposition_decide(&ev, &f, &d);
	CHECK_INT(d.kind, DISPOSITION_NEW_MESSAGE);
	CHECK(d.closes_streaks);
	CHECK_CONTAINS(strbuf_str(&d.why), "marked recovered");
	disposition_clear(&d);
	f.matches = false; /* ... and not posted by a route that does not take successes */
	disposition_decide(&ev, &f, &d);
	CHECK_INT(d.kind, DISPOSITION_NOT_ROUTED);
	CHECK(d.closes_streaks);
	disposition_clear(&d);
}

static void test_every_kind_has_a_name_and_a_log_message(void)
{
	for (int k = DISPOSITION_NOT_ROUTED; k <= DISPOSITION_CATCHUP; k++) {
		CHECK(strcmp(disposition_kind_name((enum disposition_kind)k), "?") != 0);
		for (int j = DISPOSITION_NOT_ROUTED; j < k; j++) /* a log reader tells them apart */
			CHECK(strcmp(disposition_log_message((enum disposition_kind)k),
				     disposition_log_message((enum disposition_kind)j)) != 0);
	}
}

int main(void)
{
	RUN(test_a_plain_report_is_a_new_message);
	RUN(test_a_route_that_does_not_take_it_posts_nothing);
	RUN(test_a_repeat_goes_into_the_thread_and_says_how_often);
	RUN(test_a_repeat_with_a_posted_start_report_points_it_at_the_thread);
	RUN(test_a_mute_beats_an_incident_which_beats_a_thread);
	RUN(test_a_success_that_ends_a_streak_is_told_in_its_thread_even_unrouted);
	RUN(test_while_away_a_streak_that_came_and_went_is_left_to_the_catchup);
	RUN(test_without_threads_a_success_is_posted_and_only_away_closes_streaks);
	RUN(test_every_kind_has_a_name_and_a_log_message);
	return test_done();
}
