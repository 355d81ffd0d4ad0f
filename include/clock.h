/* clock: wall-clock time for what the bridge schedules by the calendar (on-call handovers,
 * escalations, mute expiry). Production reads CLOCK_REALTIME. Tests replace it without
 * waiting: when ZMB_TEST_CLOCK names a file, every reading comes from that file (Unix
 * seconds, a fraction allowed), so a test moves time by rewriting it. Timers that wait for
 * a calendar instant must therefore re-check the clock periodically (clock_tick_ms()), not
 * trust a monotonic delay. */
#ifndef ZMB_CLOCK_H
#define ZMB_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* Unix milliseconds from the system, never the test clock: for timestamps and latencies
 * of real work (outbox rows, delivery latency), which a test clock would distort. */
int64_t clock_real_ms(void);

/* Unix milliseconds. With a test clock whose file is missing or unreadable, the last good
 * reading is kept (0 before the first), and one warning is logged. */
int64_t clock_wall_ms(void);
/* Whether the test clock is in use (read once from the environment, at first use). */
bool clock_is_test(void);
/* How often calendar-driven work should look at the clock: 1000 ms, 50 ms with the test
 * clock so tests advance quickly. */
uint64_t clock_tick_ms(void);
/* Forgets what was read from the environment (tests of this module only). */
void clock_reset_for_tests(void);

#endif
