/* loop: the daemon's one heartbeat: poll(2) over watched fds, a min-heap of one-shot
 * timers, signals read from a signalfd, and a hook that closes every turn. */
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

/* One watched fd. Slots are never moved or reused while callbacks run: unwatching
 * only marks the slot `removed`, and the array is compacted between turns, so a
 * turn's dispatch can walk it by index while callbacks add and remove fds. */
struct watch {
	int fd;
	int events;    /* LOOP_READ | LOOP_WRITE; 0 = watched but idle */
	bool removed;  /* unwatched; skipped by dispatch, dropped by compaction */
	loop_fd_fn fn;
	void *data;
};

/* One pending timer. Heap order is (deadline, seq): equal deadlines fire in the
 * order they were added. */
struct timer {
	uint64_t deadline; /* loop_now_ms() value at which it is due */
	uint64_t seq;      /* insertion counter: tie-break, and "added this turn?" */
	uint64_t id;
	loop_timer_fn fn;
	void *data;
};

struct signal_handler {
	loop_signal_fn fn;
	void *data;
};

struct loop {
	struct watch *watches;  /* watched fds, in order of first watch */
	size_t nwatches;
	size_t cap_watches;
	bool watches_dirty;     /* some slot is `removed`: compact before the next poll */
	struct pollfd *pfds;    /* rebuilt each turn; pfds[i] belongs to watches[i] */
	size_t cap_pfds;

	struct timer *heap;     /* binary min-heap of live timers (cancel removes for real) */
	size_t ntimers;
	size_t cap_timers;
	uint64_t next_seq;
	uint64_t next_timer_id;

	int sigfd;              /* -1 until the first loop_signal() */
	sigset_t sigmask;       /* signals routed through sigfd */
	struct signal_handler signals[_NSIG];

	loop_turn_fn turn_fn;
	void *turn_data;

	uint64_t now_ms;        /* CLOCK_MONOTONIC, sampled at turn start and after poll */
	bool stop;
};

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct loop *loop_new(void)
{
	struct loop *loop = xcalloc(1, sizeof *loop);
	loop->sigfd = -1;
	loop->next_timer_id = 1;
	sigemptyset(&loop->sigmask);
	loop->now_ms = monotonic_ms();
	return loop;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	free(loop->watches);
	free(loop->pfds);
	free(loop->heap);
	free(loop);
}

uint64_t loop_now_ms(const struct loop *loop) { return loop->now_ms; }

void loop_stop(struct loop *loop) { loop->stop = true; }

void loop_on_turn_end(struct loop *loop, loop_turn_fn fn, void *data)
{
	loop->turn_fn = fn;
	loop->turn_data = data;
}

/* ---- file descriptors ---- */

static struct watch *find_watch(struct loop *loop, int fd)
{
	for (size_t i = 0; i < loop->nwatches; i++)
		if (!loop->watches[i].removed && loop->watches[i].fd == fd)
			return &loop->watches[i];
	return NULL;
}

int loop_watch(struct loop *loop, int fd, int events, loop_fd_fn fn, void *data)
{
	if (fd < 0 || !fn || (events & ~(LOOP_READ | LOOP_WRITE))) {
		log_msgf(ZLOG_ERROR, "loop: refusing to watch fd %d (events %d, callback %s)", fd, events,
			 fn ? "set" : "missing");
		return -1;
	}
	struct watch *w = find_watch(loop, fd);
	if (!w) {
		/* Always append: a slot unwatched earlier in this turn still has its
		 * poll result attached and must not be handed to a new owner. */
		if (loop->nwatches == loop->cap_watches) {
			loop->cap_watches = loop->cap_watches ? loop->cap_watches * 2 : 8;
			loop->watches = xrealloc(loop->watches, loop->cap_watches * sizeof *loop->watches);
		}
		w = &loop->watches[loop->nwatches++];
		w->fd = fd;
		w->removed = false;
	}
	w->events = events;
	w->fn = fn;
	w->data = data;
	return 0;
}

void loop_unwatch(struct loop *loop, int fd)
{
	struct watch *w = find_watch(loop, fd);
	if (!w)
		return;
	w->removed = true;
	loop->watches_dirty = true;
}

static void compact_watches(struct loop *loop)
{
	if (!loop->watches_dirty)
		return;
	size_t j = 0;
	for (size_t i = 0; i < loop->nwatches; i++)
		if (!loop->watches[i].removed)
			loop->watches[j++] = loop->watches[i];
	loop->nwatches = j;
	loop->watches_dirty = false;
}

/* ---- timers: a binary min-heap ---- */

static bool timer_before(const struct timer *a, const struct timer *b)
{
	return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
}

static void heap_swap(struct loop *loop, size_t i, size_t j)
{
	struct timer t = loop->heap[i];
	loop->heap[i] = loop->heap[j];
	loop->heap[j] = t;
}

static void sift_up(struct loop *loop, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(&loop->heap[i], &loop->heap[parent]))
			break;
		heap_swap(loop, i, parent);
		i = parent;
	}
}

static void sift_down(struct loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		if (l < loop->ntimers && timer_before(&loop->heap[l], &loop->heap[min]))
			min = l;
		if (r < loop->ntimers && timer_before(&loop->heap[r], &loop->heap[min]))
			min = r;
		if (min == i)
			break;
		heap_swap(loop, i, min);
		i = min;
	}
}

static void heap_remove_at(struct loop *loop, size_t i)
{
	loop->ntimers--;
	if (i == loop->ntimers)
		return;
	loop->heap[i] = loop->heap[loop->ntimers];
	sift_up(loop, i);
	sift_down(loop, i);
}

/* The delay counts from the turn's clock sample (as in libuv), not from this call:
 * a timer added late in a long turn fires up to that turn's length early. */
uint64_t loop_timer_add(struct loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *data)
{
	if (loop->ntimers == loop->cap_timers) {
		loop->cap_timers = loop->cap_timers ? loop->cap_timers * 2 : 16;
		loop->heap = xrealloc(loop->heap, loop->cap_timers * sizeof *loop->heap);
	}
	uint64_t deadline = delay_ms > UINT64_MAX - loop->now_ms ? UINT64_MAX : loop->now_ms + delay_ms;
	struct timer *t = &loop->heap[loop->ntimers];
	t->deadline = deadline;
	t->seq = loop->next_seq++;
	t->id = loop->next_timer_id++;
	t->fn = fn;
	t->data = data;
	uint64_t id = t->id; /* starts at 1 and is 64 bits wide: never 0, never reused */
	sift_up(loop, loop->ntimers++);
	return id;
}

/* Removes the timer for real (not lazily), so a watchdog that is cancelled and
 * re-armed for every message keeps the heap at its live size. The search is linear:
 * the daemon holds a handful of timers, not thousands. */
void loop_timer_cancel(struct loop *loop, uint64_t id)
{
	if (id == 0)
		return;
	for (size_t i = 0; i < loop->ntimers; i++) {
		if (loop->heap[i].id == id) {
			heap_remove_at(loop, i);
			return;
		}
	}
}

/* ---- signals ---- */

static void on_signalfd(struct loop *loop, int fd, int ready, void *data)
{
	(void)ready;
	(void)data;
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t n = read(fd, &si, sizeof si);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof si)
			return; /* EAGAIN: drained */
		int signo = (int)si.ssi_signo;
		if (signo > 0 && signo < _NSIG && loop->signals[signo].fn)
			loop->signals[signo].fn(loop, signo, loop->signals[signo].data);
	}
}

int loop_signal(struct loop *loop, int signo, loop_signal_fn fn, void *data)
{
	if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP) {
		log_msgf(ZLOG_ERROR, "loop: cannot route signal %d through the loop", signo);
		return -1;
	}
	sigset_t mask = loop->sigmask;
	sigaddset(&mask, signo);
	/* Blocked first, so a signal arriving between the two calls waits pending
	 * for the signalfd instead of killing the process. */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		log_msgf(ZLOG_ERROR, "loop: sigprocmask(%d): %s", signo, strerror(errno));
		return -1;
	}
	int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		log_msgf(ZLOG_ERROR, "loop: signalfd(%d): %s", signo, strerror(errno));
		return -1;
	}
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		if (loop_watch(loop, fd, LOOP_READ, on_signalfd, NULL) < 0)
			return -1;
	}
	loop->sigmask = mask;
	loop->signals[signo].fn = fn;
	loop->signals[signo].data = data;
	return 0;
}

/* ---- the turn ---- */

static int poll_timeout(const struct loop *loop)
{
	if (loop->stop)
		return 0;
	if (loop->ntimers == 0)
		return -1;
	uint64_t deadline = loop->heap[0].deadline;
	if (deadline <= loop->now_ms)
		return 0;
	uint64_t wait = deadline - loop->now_ms;
	return wait > INT_MAX ? INT_MAX : (int)wait;
}

static int ready_mask(short revents, int wanted)
{
	int ready = 0;
	if (revents & POLLIN)
		ready |= LOOP_READ;
	if (revents & POLLOUT)
		ready |= LOOP_WRITE;
	/* Errors and hang-ups go to the reader, whose read() sees EOF or the error;
	 * a write-only watcher also gets them as LOOP_WRITE so its write() fails
	 * (EPIPE) instead of the loop spinning on an event nobody consumes. */
	if (revents & (POLLERR | POLLHUP | POLLNVAL))
		ready |= LOOP_READ | (wanted & LOOP_WRITE);
	return ready & (wanted | LOOP_READ);
}

static void dispatch_fds(struct loop *loop, size_t npolled)
{
	/* By index, never by pointer: a callback may grow (reallocate) the array. */
	for (size_t i = 0; i < npolled; i++) {
		short revents = loop->pfds[i].revents;
		if (!revents || loop->watches[i].removed)
			continue;
		/* The mask may have changed earlier in this turn: report only what the
		 * owner still waits for (errors always count as readable). */
		int wanted = loop->watches[i].events;
		int ready = wanted ? ready_mask(revents, wanted) : 0;
		if (!ready)
			continue;
		int fd = loop->watches[i].fd;
		loop->watches[i].fn(loop, fd, ready, loop->watches[i].data);
		if ((revents & POLLNVAL) && !loop->watches[i].removed && loop->watches[i].fd == fd) {
			/* A closed fd left watched would make every poll return at once. */
			char num[24];
			snprintf(num, sizeof num, "%d", fd);
			log_kv(ZLOG_ERROR, "loop: watched fd was closed without unwatching; dropping it",
			       "fd", num, NULL);
			loop_unwatch(loop, fd);
		}
	}
}

/* Runs the timers that were due at turn start. Timers added during this turn (even
 * with delay 0) carry seq >= seq_limit and wait for a later turn, so a timer that
 * re-arms itself cannot starve the poll. */
static void run_due_timers(struct loop *loop, uint64_t seq_limit)
{
	while (loop->ntimers > 0) {
		struct timer t = loop->heap[0];
		if (t.deadline > loop->now_ms || t.seq >= seq_limit)
			break;
		heap_remove_at(loop, 0);
		t.fn(loop, t.data);
	}
}

/* One turn, in this order, and the order is the durability contract:
 *   1. sample the clock, compute the poll timeout from the nearest timer;
 *   2. poll(); sample the clock again;
 *   3. dispatch ready fds (MQTT on_message pushes to the store's open batch; with
 *      mosquitto_threaded_set() the PUBACK only waits in libmosquitto's queue);
 *   4. run the timers that are due;
 *   5. run the turn-end hook: the bridge COMMITs the batch, and only then lets MQTT
 *      write its acknowledgements.
 * The hook runs after every turn, including the one in which loop_stop() was called,
 * so whatever a turn's callbacks wrote is always committed before anything of it is
 * acknowledged, and before loop_run() returns. */
static int loop_turn(struct loop *loop)
{
	compact_watches(loop);
	loop->now_ms = monotonic_ms();
	uint64_t seq_limit = loop->next_seq;

	size_t n = loop->nwatches;
	if (n > loop->cap_pfds) {
		loop->cap_pfds = n;
		loop->pfds = xrealloc(loop->pfds, n * sizeof *loop->pfds);
	}
	for (size_t i = 0; i < n; i++) {
		const struct watch *w = &loop->watches[i];
		short ev = 0;
		if (w->events & LOOP_READ)
			ev |= POLLIN;
		if (w->events & LOOP_WRITE)
			ev |= POLLOUT;
		/* An idle watch (events == 0) is left out of poll entirely: poll would
		 * still report its hang-up, every turn, to an owner that asked for nothing. */
		loop->pfds[i].fd = w->events ? w->fd : -1;
		loop->pfds[i].events = ev;
		loop->pfds[i].revents = 0;
	}

	int rc = poll(loop->pfds, (nfds_t)n, poll_timeout(loop));
	int poll_errno = errno;
	loop->now_ms = monotonic_ms();
	if (rc < 0 && poll_errno != EINTR) {
		log_msgf(ZLOG_ERROR, "loop: poll: %s; stopping the loop", strerror(poll_errno));
		return -1;
	}
	if (rc > 0)
		dispatch_fds(loop, n);
	run_due_timers(loop, seq_limit);
	if (loop->turn_fn)
		loop->turn_fn(loop, loop->turn_data);
	return 0;
}

int loop_run(struct loop *loop)
{
	int rc = 0;
	while (!loop->stop) {
		if (loop_turn(loop) < 0) {
			rc = -1;
			break;
		}
	}
	loop->stop = false; /* the loop can be run again */
	return rc;
}
