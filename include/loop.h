/* loop: the daemon's one heartbeat. A poll(2) loop over file descriptors, one-shot
 * timers and signals (signalfd), in the spirit of redis' ae.c. Knows nothing of MQTT,
 * Matrix or Zuul. Single-threaded: callbacks run one at a time, never re-entered. */
#ifndef ZMB_LOOP_H
#define ZMB_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

enum { LOOP_READ = 1, LOOP_WRITE = 2 };

/* fd is ready: `ready` is a mask of LOOP_READ / LOOP_WRITE; errors and hang-ups are
 * reported as LOOP_READ so the owner's read call sees them. */
typedef void (*loop_fd_fn)(struct loop *loop, int fd, int ready, void *data);
typedef void (*loop_timer_fn)(struct loop *loop, void *data);
typedef void (*loop_signal_fn)(struct loop *loop, int signo, void *data);
/* Called once per turn, after all ready callbacks ran and before poll() sleeps. The
 * bridge commits the turn's SQLite transaction here, then lets MQTT write its
 * acknowledgements: that order is the durability invariant. */
typedef void (*loop_turn_fn)(struct loop *loop, void *data);

struct loop *loop_new(void);
/* Frees the loop; fds are not closed, pending timers are dropped. */
void loop_free(struct loop *loop);

/* Starts watching fd for `events` (LOOP_READ|LOOP_WRITE), or changes the mask and
 * callback if fd is already watched. events == 0 keeps the fd but waits for nothing. */
int loop_watch(struct loop *loop, int fd, int events, loop_fd_fn fn, void *data);
void loop_unwatch(struct loop *loop, int fd);

/* One-shot timer after delay_ms; returns its id (never 0). Cancelling an id that
 * already fired or was cancelled is harmless. */
uint64_t loop_timer_add(struct loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *data);
void loop_timer_cancel(struct loop *loop, uint64_t id);

/* Delivers signo through the loop (blocked for the process and read from a
 * signalfd), so handlers run as ordinary callbacks, not in signal context. */
int loop_signal(struct loop *loop, int signo, loop_signal_fn fn, void *data);

void loop_on_turn_end(struct loop *loop, loop_turn_fn fn, void *data);

/* Runs until loop_stop(); returns 0, or -1 if poll() failed for a reason other than EINTR. */
int loop_run(struct loop *loop);
/* Makes loop_run return after the current turn. */
void loop_stop(struct loop *loop);

/* Monotonic milliseconds, sampled once per turn (cheap to call often). */
uint64_t loop_now_ms(const struct loop *loop);

#endif
