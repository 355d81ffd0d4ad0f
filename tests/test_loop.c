/* Tests of loop: real pipes, real timers, a real signal; checks dispatch order and
 * that callbacks may change the loop's fds and timers while it dispatches. */
#include "loop.h"

#include <signal.h>
#include <unistd.h>

#include "strbuf.h"
#include "test.h"

/* Every test arms this, so a broken loop fails a check instead of hanging. */
static bool watchdog_fired;
static void on_watchdog(struct loop *loop, void *data)
{
	(void)data;
	watchdog_fired = true;
	loop_stop(loop);
}

static struct loop *new_loop_with_watchdog(void)
{
	struct loop *loop = loop_new();
	watchdog_fired = false;
	loop_timer_add(loop, 2000, on_watchdog, NULL);
	return loop;
}

/* An order log shared by the callbacks of one test: "fd,timer,end,". */
static struct strbuf order_log;
static void log_step(const char *what)
{
	strbuf_puts(&order_log, what);
	strbuf_putc(&order_log, ',');
}

static int turns;
static void count_turn(struct loop *loop, void *data)
{
	(void)loop;
	(void)data;
	turns++;
}

/* ---- fds ---- */

struct read_ctx {
	char buf[32];
	int calls;
	int ready;
};

static void on_read_stop(struct loop *loop, int fd, int ready, void *data)
{
	struct read_ctx *ctx = data;
	ctx->calls++;
	ctx->ready = ready;
	ssize_t n = read(fd, ctx->buf, sizeof ctx->buf - 1);
	if (n > 0)
		ctx->buf[n] = '\0';
	loop_stop(loop);
}

static void test_readable_pipe_calls_read_callback(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	struct loop *loop = new_loop_with_watchdog();
	struct read_ctx ctx = {0};
	CHECK_INT(loop_watch(loop, p[0], LOOP_READ, on_read_stop, &ctx), 0);
	CHECK_INT(write(p[1], "ping", 4), 4);
	CHECK_INT(loop_run(loop), 0);
	CHECK(!watchdog_fired);
	CHECK_INT(ctx.calls, 1);
	CHECK_INT(ctx.ready, LOOP_READ);
	CHECK_STR(ctx.buf, "ping");
	loop_free(loop);
	close(p[0]);
	close(p[1]);
}

static void on_writable_stop(struct loop *loop, int fd, int ready, void *data)
{
	struct read_ctx *ctx = data;
	ctx->calls++;
	ctx->ready = ready;
	if (write(fd, "x", 1) != 1)
		ctx->ready = -1;
	loop_stop(loop);
}

static void test_writable_pipe_calls_write_callback(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	struct loop *loop = new_loop_with_watchdog();
	struct read_ctx ctx = {0};
	CHECK_INT(loop_watch(loop, p[1], LOOP_WRITE, on_writable_stop, &ctx), 0);
	CHECK_INT(loop_run(loop), 0);
	CHECK(!watchdog_fired);
	CHECK_INT(ctx.calls, 1);
	CHECK_INT(ctx.ready, LOOP_WRITE);
	char c = 0;
	CHECK_INT(read(p[0], &c, 1), 1);
	CHECK(c == 'x');
	loop_free(loop);
	close(p[0]);
	close(p[1]);
}

static void test_hangup_is_reported_as_readable(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	close(p[1]);
	struct loop *loop = new_loop_with_watchdog();
	struct read_ctx ctx = {0};
	CHECK_INT(loop_watch(loop, p[0], LOOP_READ, on_read_stop, &ctx), 0);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(ctx.calls, 1);
	CHECK_INT(ctx.ready, LOOP_READ);
	loop_free(loop);
	close(p[0]);
}

static int idle_calls;
static void on_idle_fd(struct loop *loop, int fd, int ready, void *data)
{
	(void)loop;
	(void)fd;
	(void)ready;
	(void)data;
	idle_calls++;
}

static void stop_after_turns(struct loop *loop, void *data)
{
	int *limit = data;
	if (++turns >= *limit)
		loop_stop(loop);
}

static void on_tick(struct loop *loop, void *data)
{
	(void)data;
	loop_timer_add(loop, 1, on_tick, NULL);
}

static void test_idle_watch_is_not_dispatched_even_on_hangup(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(write(p[1], "data", 4), 4);
	close(p[1]); /* readable and hung up: poll would report it every turn */
	struct loop *loop = new_loop_with_watchdog();
	idle_calls = 0;
	turns = 0;
	int limit = 5;
	CHECK_INT(loop_watch(loop, p[0], 0, on_idle_fd, NULL), 0);
	loop_timer_add(loop, 1, on_tick, NULL);
	loop_on_turn_end(loop, stop_after_turns, &limit);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(idle_calls, 0);
	/* Re-arming the same fd with a mask makes it live again. */
	CHECK_INT(loop_watch(loop, p[0], LOOP_READ, on_idle_fd, NULL), 0);
	turns = 0;
	limit = 1;
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(idle_calls, 1);
	loop_free(loop);
	close(p[0]);
}

/* Two readable pipes; whichever callback runs first unwatches the other. */
struct pair_ctx {
	int fds[2];
	int calls[2];
};

static void on_pair_fd(struct loop *loop, int fd, int ready, void *data)
{
	(void)ready;
	struct pair_ctx *ctx = data;
	int me = fd == ctx->fds[0] ? 0 : 1;
	ctx->calls[me]++;
	loop_unwatch(loop, ctx->fds[1 - me]);
}

static void test_fd_unwatched_by_earlier_callback_is_not_dispatched_same_turn(void)
{
	int a[2], b[2];
	CHECK_INT(pipe(a), 0);
	CHECK_INT(pipe(b), 0);
	CHECK_INT(write(a[1], "a", 1), 1);
	CHECK_INT(write(b[1], "b", 1), 1);
	struct loop *loop = new_loop_with_watchdog();
	struct pair_ctx ctx = {{a[0], b[0]}, {0, 0}};
	CHECK_INT(loop_watch(loop, a[0], LOOP_READ, on_pair_fd, &ctx), 0);
	CHECK_INT(loop_watch(loop, b[0], LOOP_READ, on_pair_fd, &ctx), 0);
	int limit = 1;
	turns = 0;
	loop_on_turn_end(loop, stop_after_turns, &limit);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(turns, 1);
	CHECK_INT(ctx.calls[0] + ctx.calls[1], 1);
	/* And it stays unwatched: the survivor alone fires on the next turn. */
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(ctx.calls[0] + ctx.calls[1], 2);
	CHECK(ctx.calls[0] == 2 || ctx.calls[1] == 2);
	loop_free(loop);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

/* A callback closes its own fd and watches a fresh pipe that most likely gets the
 * same number, plus many more fds (forcing the array to grow mid-dispatch). The new
 * registrations must not inherit this turn's poll results. */
struct reuse_ctx {
	int first_fd;
	int new_fd;
	int new_write;
	int extra[40][2];
	int old_calls;
	int new_calls;
};

static void on_reused_fd(struct loop *loop, int fd, int ready, void *data)
{
	(void)loop;
	(void)fd;
	(void)ready;
	struct reuse_ctx *ctx = data;
	ctx->new_calls++;
}

static void on_first_fd(struct loop *loop, int fd, int ready, void *data)
{
	(void)ready;
	struct reuse_ctx *ctx = data;
	ctx->old_calls++;
	loop_unwatch(loop, fd);
	close(fd);
	int p[2];
	if (pipe(p) != 0)
		return;
	ctx->new_fd = p[0];
	ctx->new_write = p[1];
	loop_watch(loop, p[0], LOOP_READ, on_reused_fd, ctx);
	for (int i = 0; i < 40; i++) {
		if (pipe(ctx->extra[i]) != 0)
			return;
		loop_watch(loop, ctx->extra[i][0], LOOP_READ, on_reused_fd, ctx);
	}
}

static void test_fds_watched_from_a_callback_wait_for_the_next_poll(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(write(p[1], "x", 1), 1);
	struct loop *loop = new_loop_with_watchdog();
	struct reuse_ctx ctx = {0};
	ctx.first_fd = p[0];
	CHECK_INT(loop_watch(loop, p[0], LOOP_READ, on_first_fd, &ctx), 0);
	int limit = 1;
	turns = 0;
	loop_on_turn_end(loop, stop_after_turns, &limit);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(ctx.old_calls, 1);
	CHECK_INT(ctx.new_calls, 0);
	/* The new fd works once it has data. */
	CHECK_INT(write(ctx.new_write, "y", 1), 1);
	turns = 0;
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(ctx.old_calls, 1);
	CHECK_INT(ctx.new_calls, 1);
	loop_free(loop);
	close(p[1]);
	close(ctx.new_fd);
	close(ctx.new_write);
	for (int i = 0; i < 40; i++) {
		close(ctx.extra[i][0]);
		close(ctx.extra[i][1]);
	}
}

/* ---- timers ---- */

static void on_named_timer(struct loop *loop, void *data)
{
	(void)loop;
	log_step(data);
}

static void on_named_timer_stop(struct loop *loop, void *data)
{
	log_step(data);
	loop_stop(loop);
}

static void test_timers_fire_in_deadline_order_ties_in_insertion_order(void)
{
	struct loop *loop = new_loop_with_watchdog();
	strbuf_reset(&order_log);
	uint64_t start = loop_now_ms(loop);
	loop_timer_add(loop, 60, on_named_timer_stop, "60");
	loop_timer_add(loop, 20, on_named_timer, "20a");
	loop_timer_add(loop, 40, on_named_timer, "40");
	loop_timer_add(loop, 20, on_named_timer, "20b");
	loop_timer_add(loop, 0, on_named_timer, "0");
	CHECK_INT(loop_run(loop), 0);
	CHECK(!watchdog_fired);
	CHECK_STR(strbuf_str(&order_log), "0,20a,20b,40,60,");
	CHECK(loop_now_ms(loop) >= start + 60);
	loop_free(loop);
}

static void test_cancelled_timer_does_not_fire(void)
{
	struct loop *loop = new_loop_with_watchdog();
	strbuf_reset(&order_log);
	uint64_t a = loop_timer_add(loop, 10, on_named_timer, "a");
	uint64_t b = loop_timer_add(loop, 20, on_named_timer, "b");
	loop_timer_add(loop, 30, on_named_timer_stop, "c");
	CHECK(a != 0 && b != 0 && a != b);
	loop_timer_cancel(loop, a);
	loop_timer_cancel(loop, a);  /* twice: harmless */
	loop_timer_cancel(loop, 0);  /* never an id: harmless */
	CHECK_INT(loop_run(loop), 0);
	CHECK_STR(strbuf_str(&order_log), "b,c,");
	loop_timer_cancel(loop, b);  /* already fired: harmless */
	loop_free(loop);
}

static uint64_t victim_id;
static void on_cancel_victim(struct loop *loop, void *data)
{
	log_step(data);
	loop_timer_cancel(loop, victim_id);
}

static void test_timer_cancelled_from_another_timer_does_not_fire(void)
{
	struct loop *loop = new_loop_with_watchdog();
	strbuf_reset(&order_log);
	/* Same deadline for killer and victim: the victim is due in the very turn the
	 * killer runs, and must still not fire. */
	loop_timer_add(loop, 10, on_cancel_victim, "killer");
	victim_id = loop_timer_add(loop, 10, on_named_timer, "victim");
	loop_timer_add(loop, 10, on_named_timer, "bystander");
	loop_timer_add(loop, 30, on_named_timer_stop, "end");
	CHECK_INT(loop_run(loop), 0);
	CHECK_STR(strbuf_str(&order_log), "killer,bystander,end,");
	loop_free(loop);
}

struct rearm_ctx {
	int runs;
	int depth;
	int max_depth;
	int turn_of_run[5];
};

static void on_rearm(struct loop *loop, void *data)
{
	struct rearm_ctx *ctx = data;
	if (++ctx->depth > ctx->max_depth)
		ctx->max_depth = ctx->depth;
	ctx->turn_of_run[ctx->runs++] = turns;
	if (ctx->runs < 5)
		loop_timer_add(loop, 0, on_rearm, ctx);
	else
		loop_stop(loop);
	ctx->depth--;
}

static void test_zero_delay_timer_added_in_callback_runs_on_a_later_turn(void)
{
	struct loop *loop = new_loop_with_watchdog();
	struct rearm_ctx ctx = {0};
	turns = 0;
	loop_on_turn_end(loop, count_turn, NULL);
	loop_timer_add(loop, 0, on_rearm, &ctx);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(ctx.runs, 5);
	CHECK_INT(ctx.max_depth, 1);
	for (int i = 1; i < 5; i++)
		CHECK(ctx.turn_of_run[i] > ctx.turn_of_run[i - 1]);
	loop_free(loop);
}

/* ---- signals, stop, turn end ---- */

static int got_signo;
static void on_signal(struct loop *loop, int signo, void *data)
{
	(void)data;
	got_signo = signo;
	loop_stop(loop);
}

static void test_sigusr1_from_kill_reaches_signal_callback(void)
{
	struct loop *loop = new_loop_with_watchdog();
	got_signo = 0;
	CHECK_INT(loop_signal(loop, SIGUSR1, on_signal, NULL), 0);
	CHECK_INT(kill(getpid(), SIGUSR1), 0); /* blocked now: waits for the signalfd */
	CHECK_INT(loop_run(loop), 0);
	CHECK(!watchdog_fired);
	CHECK_INT(got_signo, SIGUSR1);
	/* A second signal registered later shares the same signalfd. */
	got_signo = 0;
	CHECK_INT(loop_signal(loop, SIGUSR2, on_signal, NULL), 0);
	CHECK_INT(kill(getpid(), SIGUSR2), 0);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(got_signo, SIGUSR2);
	CHECK_INT(loop_signal(loop, SIGKILL, on_signal, NULL), -1);
	loop_free(loop);
}

static void test_stop_from_callback_ends_run_after_that_turn(void)
{
	struct loop *loop = new_loop_with_watchdog();
	strbuf_reset(&order_log);
	turns = 0;
	loop_on_turn_end(loop, count_turn, NULL);
	loop_timer_add(loop, 5, on_named_timer_stop, "stopper");
	loop_timer_add(loop, 200, on_named_timer, "later");
	uint64_t before = loop_now_ms(loop);
	CHECK_INT(loop_run(loop), 0);
	CHECK(!watchdog_fired);
	CHECK_STR(strbuf_str(&order_log), "stopper,");
	CHECK(loop_now_ms(loop) - before < 200);
	CHECK(turns >= 1);
	loop_free(loop);
}

static void on_order_fd(struct loop *loop, int fd, int ready, void *data)
{
	(void)loop;
	(void)ready;
	(void)data;
	char c;
	if (read(fd, &c, 1) == 1)
		log_step("fd");
}

static void on_order_end(struct loop *loop, void *data)
{
	(void)data;
	log_step("end");
	loop_stop(loop);
}

static void test_turn_end_hook_runs_after_the_callbacks_of_its_turn(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(write(p[1], "x", 1), 1);
	struct loop *loop = new_loop_with_watchdog();
	strbuf_reset(&order_log);
	CHECK_INT(loop_watch(loop, p[0], LOOP_READ, on_order_fd, NULL), 0);
	loop_timer_add(loop, 0, on_named_timer, "timer");
	loop_on_turn_end(loop, on_order_end, NULL);
	CHECK_INT(loop_run(loop), 0);
	CHECK_STR(strbuf_str(&order_log), "fd,timer,end,");
	loop_free(loop);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	RUN(test_readable_pipe_calls_read_callback);
	RUN(test_writable_pipe_calls_write_callback);
	RUN(test_hangup_is_reported_as_readable);
	RUN(test_idle_watch_is_not_dispatched_even_on_hangup);
	RUN(test_fd_unwatched_by_earlier_callback_is_not_dispatched_same_turn);
	RUN(test_fds_watched_from_a_callback_wait_for_the_next_poll);
	RUN(test_timers_fire_in_deadline_order_ties_in_insertion_order);
	RUN(test_cancelled_timer_does_not_fire);
	RUN(test_timer_cancelled_from_another_timer_does_not_fire);
	RUN(test_zero_delay_timer_added_in_callback_runs_on_a_later_turn);
	RUN(test_sigusr1_from_kill_reaches_signal_callback);
	RUN(test_stop_from_callback_ends_run_after_that_turn);
	RUN(test_turn_end_hook_runs_after_the_callbacks_of_its_turn);
	strbuf_free(&order_log);
	return test_done();
}
