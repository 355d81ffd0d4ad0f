/* Tests of the pure parts of delivery: the retry backoff curve and its jitter bounds,
 * and the transaction ids the bridge derives for each report and route. */
#include "bridge.h"
#include "deliver.h"
#include "test.h"

static void test_backoff_doubles_from_min_and_is_capped_at_max(void)
{
	/* random01 = 0.999.. gives the top of the jitter range, i.e. almost the raw curve. */
	double top = 0.999999;
	CHECK_INT(deliver_backoff_ms(1, 1000, 300000, top), 999);
	CHECK_INT(deliver_backoff_ms(2, 1000, 300000, top), 1999);
	CHECK_INT(deliver_backoff_ms(3, 1000, 300000, top), 3999);
	CHECK_INT(deliver_backoff_ms(9, 1000, 300000, top), 255999);
	CHECK_INT(deliver_backoff_ms(10, 1000, 300000, top), 299999);
	CHECK_INT(deliver_backoff_ms(1000, 1000, 300000, top), 299999);
}

static void test_jitter_keeps_delays_between_half_and_full(void)
{
	for (int attempt = 1; attempt < 12; attempt++) {
		uint64_t lo = deliver_backoff_ms(attempt, 500, 60000, 0.0);
		uint64_t hi = deliver_backoff_ms(attempt, 500, 60000, 0.999999);
		uint64_t raw = deliver_backoff_ms(attempt, 500, 60000, 0.999999999) + 1;
		CHECK(lo * 2 <= raw + 1);
		CHECK(hi < raw + 1);
		CHECK(lo < hi);
	}
}

static void test_backoff_survives_nonsense_arguments(void)
{
	CHECK_INT(deliver_backoff_ms(0, 1000, 5000, 0.0), 500);
	CHECK_INT(deliver_backoff_ms(-3, 1000, 5000, 0.0), 500);
	CHECK_INT(deliver_backoff_ms(3, 1000, 10, 0.0), 500);  /* max below min: min wins */
	CHECK_INT(deliver_backoff_ms(2, 1000, 5000, 7.0), 1000); /* random out of range: no jitter up */
}

static void test_txn_id_is_deterministic_and_distinguishes_its_parts(void)
{
	char *a = bridge_txn_id("5e7a9c1b", "failure", "alerts");
	char *b = bridge_txn_id("5e7a9c1b", "failure", "alerts");
	char *c = bridge_txn_id("5e7a9c1b", "start", "alerts");
	char *d = bridge_txn_id("5e7a9c1b", "failure", "ops");
	CHECK_STR(a, "zmb.alerts.failure.5e7a9c1b");
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0 && strcmp(a, d) != 0);
	free(a);
	free(b);
	free(c);
	free(d);
}

static void test_txn_id_has_only_url_safe_characters(void)
{
	char *t = bridge_txn_id("fnv1a64:0123456789abcdef", "fail/ure <x>\n", "r.1");
	CHECK_STR(t, "zmb.r_1.fail_ure__x__.fnv1a64_0123456789abcdef");
	free(t);
}

int main(void)
{
	RUN(test_backoff_doubles_from_min_and_is_capped_at_max);
	RUN(test_jitter_keeps_delays_between_half_and_full);
	RUN(test_backoff_survives_nonsense_arguments);
	RUN(test_txn_id_is_deterministic_and_distinguishes_its_parts);
	RUN(test_txn_id_has_only_url_safe_characters);
	return test_done();
}
