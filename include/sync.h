/* sync: the Matrix /sync long-poll client on the bridge's loop. It hands the events of
 * the routes' rooms (of the types asked for) to one callback, in timeline order, and
 * keeps the since token through a caller-supplied store. Knows nothing of chatops. */
#ifndef ZMB_SYNC_H
#define ZMB_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "loop.h"

struct sync;

/* One event as handed over. Every pointer is valid during the callback only. */
struct sync_event {
	const char *room_id;
	const char *event_id;
	const char *type;
	const char *sender;
	const char *state_key; /* NULL for a non-state event */
	const cJSON *event;    /* the whole client event: content, redacts, unsigned... */
	/* true: room state as it was before this batch (the "state" section, or the
	 * snapshot taken at start-up and when rooms are added), not something that just
	 * happened. false: a timeline event, new since the last batch. A power-levels
	 * change in the timeline arrives with snapshot == false and state_key "". */
	bool snapshot;
};

/* The consumer's side. Callbacks run from the loop, one batch at a time.
 *
 * Delivery is at least once: the token of a batch is saved only after on_event
 * returned for all of its events, so a crash re-delivers the batch rather than losing
 * it. Consumers must be idempotent (key on event_id).
 *
 * The token lives with the caller (the bridge keeps it in store_kv, key
 * "sync.next_batch", which the turn-end commit makes durable after the callbacks). */
struct sync_callbacks {
	/* The saved since token (caller of it frees), or NULL when none. Read by sync_start. */
	char *(*token_load)(void *data);
	/* Saves the since token; NULL forgets it (the homeserver rejected it). */
	void (*token_save)(const char *token, void *data);
	void (*on_event)(const struct sync_event *ev, void *data);
	/* Events of room_id before prev_batch may have been skipped: the homeserver cut
	 * the timeline (limited), or the token was rejected and sync started afresh.
	 * Called before that room's events of the same batch. prev_batch is a /messages
	 * "from" token, or NULL if the homeserver gave none. May be NULL. */
	void (*on_gap)(const char *room_id, const char *prev_batch, void *data);
	/* The user was invited to room_id (any room: invites are not limited to the room
	 * list). invite_state is the stripped state shown with it (an array of events, or
	 * NULL). May be NULL. */
	void (*on_invite)(const char *room_id, const cJSON *invite_state, void *data);
	void *data;
};

/* Zero fields take the defaults. Tests shorten them; the bridge passes retry_* from
 * config_matrix. */
struct sync_options {
	int poll_timeout_ms; /* how long the homeserver may hold a poll; default 30000 */
	int http_timeout_ms; /* client-side cut; default poll_timeout_ms + 15000 */
	int timeline_limit;  /* events per room and batch before "limited"; default 50 */
	int retry_min_ms;    /* first back-off after a failure; default 1000 */
	int retry_max_ms;    /* back-off cap, also the pace of retries after a permanent
			      * error (401, 403...); default 60000 */
	/* Counters the syncer adds to (the bridge's metrics); each may be NULL. */
	uint64_t *count_oversized;       /* answers over MATRIX_MAX_BODY */
	uint64_t *count_empty_backoffs;  /* polls held back: the homeserver answered at once with nothing */
};

/* Creates a syncer; nothing is requested until sync_start. It owns its own Matrix
 * client built from cfg (which must outlive it): the long poll then has its own
 * kept-alive connection instead of holding one of the deliverer's, and sync_free can
 * drop a poll in flight (matrix.h has no per-request cancel).
 *
 * room_ids: room ids ("!x:server"; aliases are ignored with a warning, the filter
 * matches ids only). types: event types to deliver, '*' allowed (e.g. "m.reaction",
 * "m.room.redaction", "m.room.message", "m.room.power_levels"); n_types == 0 means
 * all types. Both lists are copied. cb is copied; opt may be NULL.
 * Returns NULL (logged) if the Matrix client cannot be created. */
struct sync *sync_new(struct loop *loop, const struct config_matrix *cfg, const char *const *room_ids,
		      size_t n_rooms, const char *const *types, size_t n_types, const struct sync_callbacks *cb,
		      const struct sync_options *opt);

/* Loads the token and starts polling.
 *  - No token: one initial /sync (timeline limit 1) only to learn next_batch and the
 *    rooms' current state; its timeline is NOT delivered (old reactions are not new
 *    claims); its state events are delivered with snapshot == true.
 *  - A token: resumes from it. The first poll asks for full_state, so the consumer
 *    gets the rooms' current state (snapshot == true) plus every timeline event since
 *    the token.
 * Then long-polls forever. Errors: transport, 5xx, 429 -> capped exponential back-off
 * with jitter (at least retry_after_ms), same token; 401 and other 4xx -> logged once
 * as an error, retried every retry_max_ms; 400 "Invalid stream token" (or
 * M_UNKNOWN_POS) -> token forgotten, fresh start as above, on_gap for every room.
 * Misbehaviour:
 *  - A long poll answered with nothing (sync_answer_is_empty) in less than half the time
 *    it asked the homeserver to wait, and within 2 s, is "early empty" (a homeserver that
 *    holds polls for seconds, if less than asked, costs little and is left alone). A few
 *    in a row happen; after SYNC_EARLY_EMPTY_TOLERATED in a row each next poll waits,
 *    from retry_min_ms doubling up to min(retry_max_ms, 10 s), jittered, counted in
 *    count_empty_backoffs. Any other answer (events, or a poll held its time) ends it.
 *  - An answer over MATRIX_MAX_BODY would come again for the same request: it is
 *    counted (count_oversized), logged, and the poll asked again for less: the same
 *    token with a tenth of the timeline limit (down to 1), then a fresh start (state
 *    only; the token is forgotten). Events skipped that way are the rooms' gaps: each
 *    is logged with its prev_batch and handed to on_gap. A fresh start still over the
 *    cap is retried every retry_max_ms.
 * Returns 0, or -1 if already started. */
int sync_start(struct sync *s);

/* Replaces the room list (after a reload). A poll in flight is abandoned and a new one
 * starts with the new filter; rooms that were not in the old list get a state
 * snapshot (full_state) and no history. Events of removed rooms stop at once. Safe
 * from a callback. */
void sync_set_rooms(struct sync *s, const char *const *room_ids, size_t n_rooms);

/* Stops and frees; a poll in flight is dropped without callbacks. Safe from a
 * callback (then the rest of that batch is not delivered and its token not saved). */
void sync_free(struct sync *s);

/* The token the next poll will send (NULL before the first answer). Not owned. */
const char *sync_since(const struct sync *s);

/* Early-empty long polls tolerated in a row before the next poll waits (see sync_start). */
#define SYNC_EARLY_EMPTY_TOLERATED 3

/* Whether a /sync answer carries nothing: no event in any "events" list (timeline, state,
 * invite and knock state, ephemeral, account data, presence, to-device) and no device
 * list change. Room entries without events count as nothing. */
bool sync_answer_is_empty(const cJSON *body);

/* Builds the filter JSON sent as /sync?filter= (exposed for tests). timeline_limit
 * <= 0 leaves the homeserver's default. With "m.room.member" among the types, the state
 * section lazy-loads members (the timeline's senders and the user's own). A fresh start
 * passes fresh_start_mark > 0: it goes into the filter as SYNC_FRESH_START_KEY, so that no
 * two fresh starts send the same request (see start_poll in sync.c); 0 leaves it out.
 * Caller frees. */
#define SYNC_FRESH_START_KEY "org.zuul_matrix_bridge.fresh_start"
char *sync_filter_json(const char *const *room_ids, size_t n_rooms, const char *const *types, size_t n_types,
		       int timeline_limit, int64_t fresh_start_mark);

/* How sync_walk_batch hands one /sync answer over; the syncer fills it from its own
 * state (exposed for tests and fuzzing, which need no homeserver). */
struct sync_walk {
	const char *const *types; /* as for sync_new: '*' allowed; n_types 0: all types */
	size_t n_types;
	bool fresh;               /* the answer to a start without token (see sync_start) */
	bool lost_position;       /* that start follows a rejected token: on_gap for every room */
	/* Whether room_id's events are wanted; NULL: every room's. Asked before each room
	 * and again after each of its timeline events: a callback may drop the room. */
	bool (*room_wanted)(const char *room_id, void *data);
	/* Return false to stop the walk at once (the rest of the batch is not handed over). */
	bool (*on_event)(const struct sync_event *ev, void *data);
	bool (*on_gap)(const char *room_id, const char *prev_batch, void *data); /* may be NULL */
	/* Each of rooms.invite, whatever room_wanted says; may be NULL. */
	bool (*on_invite)(const char *room_id, const cJSON *invite_state, void *data);
	void *data;
};

/* Hands over the events of one /sync answer exactly as the syncer does: for each room of
 * rooms.join that is wanted, on_gap first (the timeline was limited, or fresh and
 * lost_position), then its "state" events (snapshot true), then its timeline in order
 * (after a fresh start only the timeline's state events, as snapshot). Then, unless
 * fresh, each wanted room of rooms.leave: its timeline (ending with the leave, kick or
 * ban), snapshot false. Then on_invite for each room of rooms.invite. Events without a
 * string "type", or of a type not asked for, are skipped. Returns body's next_batch
 * (pointing into body; also when a callback stopped the walk), or NULL when body has no
 * non-empty next_batch string: not a /sync answer, and nothing was handed over. */
const char *sync_walk_batch(const cJSON *body, const struct sync_walk *w);

#endif
