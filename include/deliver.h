/* deliver: moves outbox items to Matrix. One ordered queue per room with at most one
 * request in flight per room (order within a room is kept), retries with capped
 * exponential backoff and jitter, a homeserver-wide pause after 429, a room's pause while
 * the bot is not in it, and dead letters for permanent errors. The store is updated in
 * the loop's current batch.
 * Answers to room commands yield to reports: an answer goes out only while no report (or
 * edit, thread reply, notice) of its room waits, so a flood of commands cannot hold a
 * failure back; reports keep their order among themselves, answers theirs. An answer is
 * still sent exactly once: it waits in the outbox like any item, across restarts too. */
#ifndef ZMB_DELIVER_H
#define ZMB_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "matrix.h"
#include "stats.h"
#include "store.h"

struct deliverer;

/* Command answers: what chatops posts through the bridge's "chatops" pseudo-route as kind
 * "reply" (the txn and outbox row say so, so a restart tells them apart too). */
#define DELIVER_ANSWER_ROUTE "chatops"
#define DELIVER_ANSWER_ACTION "reply"
/* Whether item is an answer to a room command (sent after its room's reports). */
bool deliver_is_answer(const struct outbox_item *item);

/* Called after the homeserver accepted an item (the item is still valid during the call). */
typedef void (*deliver_done_fn)(const struct outbox_item *item, const char *event_id, void *data);

/* cfg (retry_min_ms/retry_max_ms) and stats must outlive the deliverer. The deliverer
 * counts posted, failed, retries, rate_limited and delivery latency in stats, and keeps
 * matrix_reachable up to date (any HTTP answer: reachable; a transport failure: not). */
struct deliverer *deliverer_new(struct loop *loop, struct store *store, struct matrix_client *mc,
				const struct config_matrix *cfg, struct stats *stats);
/* Frees queued items (they stay in the store's outbox). */
void deliverer_free(struct deliverer *d);

void deliverer_on_done(struct deliverer *d, deliver_done_fn fn, void *data);

/* Takes ownership of item (its strings) and queues it behind its room's others.
 * The item is sent once its room is ready. It must already be in the store's outbox
 * (pushed in the current batch or earlier): only a window of each room's queue
 * (DELIVER_WINDOW items) is kept in memory, the rest is read back from the outbox. */
void deliverer_enqueue(struct deliverer *d, struct outbox_item *item);

/* The configured room (id or alias) resolved to room_id and joined: its queue may flow. */
void deliverer_room_ready(struct deliverer *d, const char *room, const char *room_id);
/* The room can't be used (join refused, unknown room): its items, now and later,
 * go to dead letters with reason, until deliverer_room_ready. */
void deliverer_room_failed(struct deliverer *d, const char *room, const char *reason);

/* The bot is not in the room (kicked, banned, never invited): its items, now and later,
 * wait in the outbox in order, not sent and not dead, until deliverer_room_ready. A send
 * refused with "not in room" (membership_not_joined) pauses its room by itself. */
void deliverer_room_paused(struct deliverer *d, const char *room, const char *reason);
/* Called when a send found the bot not in its room (the room is paused by then). */
typedef void (*deliver_not_joined_fn)(const char *room, const char *reason, void *data);
void deliverer_on_not_joined(struct deliverer *d, deliver_not_joined_fn fn, void *data);

/* Asked just before an item is sent: true drops it unsent from the outbox (the catch-up
 * summary covers it). Items that will never be asked about are not affected. */
typedef bool (*deliver_skip_fn)(const struct outbox_item *item, void *data);
void deliverer_on_skip(struct deliverer *d, deliver_skip_fn fn, void *data);
/* While held, no new request starts (items keep queueing, durably in the outbox): the
 * bridge holds deliveries while a backlog of reports comes in after an absence, so a
 * failure that recovered meanwhile can still be summarised instead of posted. */
void deliverer_hold(struct deliverer *d, bool hold);
/* Stop starting new requests (shutdown); requests in flight still complete. */
void deliverer_pause(struct deliverer *d);
/* Items queued (waiting or in flight), over all rooms: those in memory plus those
 * left in the outbox beyond each room's window. The latter is exact once a room's
 * window caught up with its outbox; after a reload adopted a long backlog it may
 * count some items twice until then. */
size_t deliverer_queued(const struct deliverer *d);
/* Items held in memory, over all rooms: at most the window size per room (twice that
 * when command answers wait behind a room's reports), plus any dead letters put back
 * while a room's backlog was in the store. */
size_t deliverer_in_memory(const struct deliverer *d);
size_t deliverer_in_flight(const struct deliverer *d);
/* Takes up every outbox item the deliverer does not hold yet (at start-up: the
 * backlog of the last run; after a reload: dead letters put back from the CLI), without
 * reading the whole outbox into memory: each room's window is filled and the rest
 * left to refills. Returns how many items were taken up. */
size_t deliverer_adopt_outbox(struct deliverer *d);
/* The store rolled its open batch back (store_commit: STORE_COMMIT_LOST_TO_FULL): the
 * items queued from it (outbox ids from first_lost_id up) are forgotten, and the items
 * whose delivery, drop or death it had recorded, whose rows are back, are taken up again
 * in id order and sent again under their txn ids (deliver.c says why that posts nothing
 * twice). An item of the lost batch in flight finishes without being recorded. Returns
 * how many items were forgotten. */
size_t deliverer_batch_lost(struct deliverer *d, int64_t first_lost_id);
/* Whether an item with this outbox id is in memory (for reloading the outbox; an item
 * left in the outbox beyond a window is not, and enqueueing it again is harmless). */
bool deliverer_has_item(const struct deliverer *d, int64_t id);

/* The delay before retry number `attempt` (1-based): min_ms * 2^(attempt-1), capped at
 * max_ms, then scaled by a jitter factor in [0.5, 1.0) taken from `random01`, so retries
 * of many rooms don't stampede together. Pure, for tests. */
uint64_t deliver_backoff_ms(int attempt, int min_ms, int max_ms, double random01);

#endif
