/* store: the bridge's durable state in SQLite (state_dir/state.db, WAL): the outbox of
 * deliveries, dedup keys, sent events, dead letters, and small key/values (sync token).
 * Knows nothing of HTTP or MQTT. Writes are grouped: one transaction per loop turn. */
#ifndef ZMB_STORE_H
#define ZMB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* One pending delivery: a message content for a room, with its transaction id. */
struct outbox_item {
	int64_t id;          /* insertion order; delivery order within a room follows it */
	char *route;
	char *room;          /* as configured (id or alias); resolved by the deliverer */
	char *txn_id;        /* deterministic, see DESIGN.md */
	char *event_key;     /* buildset uuid / item uuid / payload hash */
	char *action;
	char *content_json;  /* the m.room.message content */
	int attempts;        /* failed attempts so far */
	int64_t created_ms;  /* wall clock, Unix ms, when the report was accepted */
};

struct dead_letter {
	int64_t id;
	char *route;
	char *room;
	char *txn_id;
	char *event_key;
	char *action;
	char *reason;        /* "403 M_FORBIDDEN: You are not in this room" */
	int attempts;
	int64_t created_ms;
	int64_t failed_ms;
};

/* Why store_open_checked returned NULL. */
enum store_open_failure {
	STORE_OPEN_FAILED,  /* state_dir or SQLite could not be used (permissions, disk full...) */
	STORE_OPEN_DAMAGED, /* state.db exists but is empty, unreadable, not SQLite, or fails
			     * PRAGMA quick_check; or its -wal cannot be read. Opening it would
			     * lose what it holds: the operator decides (reset-state). */
};

/* Creates state_dir (mode 0700) if missing, opens state.db, or creates it whole when it
 * does not exist (a first start), enables WAL, migrates the schema. Before that it checks
 * the files and runs PRAGMA quick_check (the whole file is read: 0.25 s for 400 MB
 * in the page cache). NULL with a reason in err ("STATE_DIR/state.db: ...") and, if why is not
 * NULL, the kind of failure in *why. Opening needs no free space beyond the reserve (see
 * store_full_reason): on a full disk the store opens full. */
struct store *store_open_checked(const char *state_dir, enum store_open_failure *why, char *err, size_t errlen);
/* store_open_checked without the kind of failure. */
struct store *store_open(const char *state_dir, char *err, size_t errlen);
/* The existing state.db of state_dir, to read while a bridge may be running there (for
 * `explain`): nothing is created, migrated or written; writes fail. NULL and err when it
 * cannot be opened or is not this version's schema. Close with store_close. */
struct store *store_open_readonly(const char *state_dir, char *err, size_t errlen);
/* Commits any open batch and closes. */
void store_close(struct store *st);

/* Batching: every write below joins the current batch, opening it when needed;
 * store_commit() makes the batch durable (one fsync). */
enum store_commit_result {
	STORE_COMMIT_OK = 0,
	STORE_COMMIT_FAILED = -1, /* logged; the batch may still be open (a lock) */
	/* The disk was full: the whole batch is rolled back, as if none of its writes had
	 * been made (store_full_reason is set). Outbox ids from store_lost_from_id() up were
	 * given to rows of that batch; none of them exists, and no id is given twice. Writes
	 * work again at once (the next batch). */
	STORE_COMMIT_LOST_TO_FULL = -2,
};
/* An enum store_commit_result: 0, or negative. */
int store_commit(struct store *st);
bool store_in_batch(const struct store *st);
/* SQLite rolled the open batch back on its own when a write failed (a full disk can do
 * that in mid-batch): every write fails until store_commit reports the loss. */
bool store_batch_lost(const struct store *st);
/* After STORE_COMMIT_LOST_TO_FULL: the first outbox id the lost batch gave. */
int64_t store_lost_from_id(const struct store *st);

/* A full disk. The store keeps a reserve file (STATE_DIR/state.db-reserve, 8 MiB) and gives
 * it back when space runs out, so the deliveries' bookkeeping still commits; new reports
 * are refused until there is room for the reserve and some. */
/* Why reports cannot be taken now ("state database: disk full"), NULL when they can. The
 * string lives as long as the store. */
const char *store_full_reason(const struct store *st);
/* Whether a new report may be stored: false when full, or when the free space on
 * state_dir's file system just fell under the margin a batch needs (the store is full
 * from then on, logged once). One statvfs. */
bool store_can_take_reports(struct store *st);
/* While full: tries to take the reserve again; true when the disk has room for it and for
 * reports (logged), false while it has not. true at once when not full. */
bool store_space_recheck(struct store *st);

/* Queues a delivery unless (event_key, action, route) was already accepted within the
 * retention window, or txn_id is already known. Refused (-1, nothing written) while the
 * disk is full (store_full_reason). Returns 1 when queued (and sets *id,
 * if id is not NULL, to the new outbox id), 0 when a duplicate (nothing written),
 * -1 on error. now_ms is wall-clock Unix ms. */
int store_outbox_push(struct store *st, const char *route, const char *room, const char *txn_id,
		      const char *event_key, const char *action, const char *content_json, int64_t now_ms,
		      int64_t *id);

/* Every pending item in id order. Caller frees with store_items_free. */
int store_outbox_load(struct store *st, struct outbox_item **items, size_t *n);
/* At most `limit` pending items of one room (as configured) with ids above after_id, in
 * id order: the deliverer keeps only a window of each room's queue in memory and reads
 * the rest from here. Sees the current batch's writes. Caller frees with store_items_free. */
int store_outbox_load_room(struct store *st, const char *room, int64_t after_id, size_t limit,
			   struct outbox_item **items, size_t *n);
/* The distinct rooms with pending items, sorted. Caller frees each string and the array. */
int store_outbox_rooms(struct store *st, char ***rooms, size_t *n);
/* Frees what one item owns and zeroes it. */
void store_item_clear(struct outbox_item *item);
void store_items_free(struct outbox_item *items, size_t n);
size_t store_outbox_depth(struct store *st);
/* Pending items of one room (counted on the (room, id) index). */
size_t store_outbox_room_depth(struct store *st, const char *room);

/* The homeserver answered 200: removes the item and remembers (txn_id -> event_id, room). */
int store_outbox_delivered(struct store *st, int64_t id, const char *txn_id, const char *event_id, int64_t now_ms);
/* An item that must not be posted after all (a failure the catch-up summary covers):
 * removes it unsent. Its txn stays known for the retention, so it is not queued again. */
int store_outbox_drop(struct store *st, int64_t id, int64_t now_ms);
/* A failed attempt that will be retried: bumps attempts. */
int store_outbox_attempt_failed(struct store *st, int64_t id);
/* A permanent failure: moves the item to the dead-letter table with reason. */
int store_outbox_kill(struct store *st, int64_t id, const char *reason, int64_t now_ms);

/* The event id a delivered txn_id got, or NULL. Caller frees. */
char *store_sent_event_id(struct store *st, const char *txn_id);

/* Dead letters, oldest first. Caller frees with store_dead_free. */
int store_dead_list(struct store *st, struct dead_letter **items, size_t *n);
void store_dead_free(struct dead_letter *items, size_t n);
/* Moves dead letter id (or all of them when id == 0) back into the outbox, keeping
 * its txn_id. Returns how many were moved, or -1. */
int store_dead_retry(struct store *st, int64_t id);

/* Retention. A txn id is the duplicate check: while its row exists, the same report
 * (same key, action and route, hence the same txn id) is not queued again.
 * store_prune_txns examines the next `slice` txn ids (in id order, going round: the
 * stall stays short however many there are) and forgets those accepted before cutoff_ms
 * that are finished (delivered or dropped) and are not the txn of a failure row; sets
 * *pass_done when the slice reached the last id. Returns how many were forgotten, or -1. */
int store_prune_txns(struct store *st, int64_t cutoff_ms, int slice, bool *pass_done);
/* Forgets failures closed (recovered, or resolved by a reaction) and quiet since before
 * cutoff_ms, with their claims; their txns go with the next pass. Returns how many, or -1. */
int store_prune_failures(struct store *st, int64_t cutoff_ms);

/* Gives the file's free pages back to the file system. After a backlog the file keeps its
 * largest size: SQLite only reuses the pages of delivered reports (1,000,000 reports
 * published at once left 2.8 GB with 2.7 GB free). Only when at least min_free_bytes and a
 * quarter of the file are free and the outbox is empty, because the VACUUM stops
 * everything for a moment (about 2 s for 100 MB still in use); commits the open batch
 * first (a batch that commit loses to a full disk is reported by the next store_commit). Returns 1 when compacted, 0 when not worth it, -1 on error; *before and *after
 * are the database's size in bytes. */
int store_compact(struct store *st, int64_t min_free_bytes, int64_t *before, int64_t *after);
/* The database's size in bytes (pages times page size, free pages included), -1 on error. */
int64_t store_size_bytes(struct store *st);

/* Small persistent values (the /sync token...). store_kv_get: caller frees; NULL if unset. */
char *store_kv_get(struct store *st, const char *key);
int store_kv_set(struct store *st, const char *key, const char *value);

/* ---- chatops: failure messages the room can claim (schema version 2) ---- */

struct store_failure {
	char *txn_id;       /* the failure message's transaction id */
	char *room;         /* configured name */
	char *route;
	char *event_key;
	char *content_json; /* the message as first posted, re-rendered for edits */
	int64_t opened_ms;
	char *event_id;     /* NULL until the homeserver accepted it */
	char *thread_key;   /* "project|branch|pipeline|failed,jobs": repeats share it */
	int64_t count;      /* failures in its thread, the first included */
	int64_t last_ms;    /* the latest of them */
	int64_t recovered_ms; /* 0: still failing */
	unsigned escalated; /* escalation steps taken (enum rotation_step bits) */
};

/* Remembers a failure message queued under txn_id (a repeat is ignored). 0 or -1. */
int store_failure_add(struct store *st, const char *txn_id, const char *room, const char *route,
		      const char *event_key, const char *content_json, const char *thread_key, int64_t now_ms);
/* Open failures are those not recovered and not resolved (a live resolve reaction). */
/* The newest open failure of route with thread_key. 1/0/-1 as below. */
int store_failure_open_by_key(struct store *st, const char *route, const char *thread_key, struct store_failure *out);
/* Every failure of route not recovered whose thread key starts with prefix, oldest first.
 * Caller clears each and frees the array. 0 or -1. */
int store_failures_open_by_prefix(struct store *st, const char *route, const char *prefix,
				  struct store_failure **out, size_t *n);
/* Every open failure posted into room (its configured name; NULL: every room), oldest
 * first. Free with store_failures_free. 0 or -1. */
int store_failures_open(struct store *st, const char *room, struct store_failure **out, size_t *n);
void store_failures_free(struct store_failure *list, size_t n);
/* Every failure message of one report (its event key), in any route, oldest first. 0 or -1. */
int store_failures_by_key(struct store *st, const char *event_key, struct store_failure **out, size_t *n);
/* Replaces the content a failure's edits are rendered from (an incident that grew). 0 or -1. */
int store_failure_set_content(struct store *st, const char *txn_id, const char *content_json);
/* Records the escalation steps taken for a failure. 0 or -1. */
int store_failure_set_escalated(struct store *st, const char *txn_id, unsigned escalated);
/* Puts back a failure found in the room's history (state_dir was lost): every field of
 * f as given (recovered_ms 0 = not recovered), and, with an event id, its txn as
 * delivered, so edits and thread replies can point at it. 1 added, 0 it was already
 * known, -1. */
int store_failure_restore(struct store *st, const struct store_failure *f);
/* Whether a transaction id was ever accepted (queued, delivered or dead). 1/0/-1. */
int store_txn_known(struct store *st, const char *txn_id);
/* One more failure in its thread at now_ms; the failure recovered at now_ms. */
int store_failure_bump(struct store *st, const char *txn_id, int64_t now_ms);
int store_failure_recover(struct store *st, const char *txn_id, int64_t now_ms);
/* The homeserver accepted txn_id as event_id: 1 when it is a failure's message, 0 when
 * the txn is no failure (nothing changed), -1 on error. */
int store_failure_set_event(struct store *st, const char *txn_id, const char *event_id);
/* 1 and *out filled (clear with store_failure_clear), 0 when there is none, -1 on error. */
int store_failure_by_event(struct store *st, const char *event_id, struct store_failure *out);
int store_failure_by_txn(struct store *st, const char *txn_id, struct store_failure *out);
void store_failure_clear(struct store_failure *f);

/* Records a reaction of kind "claim" or "resolve" by user_id on a failure. 1 added, 0 the
 * reaction was already known, -1 on error. */
int store_claim_add(struct store *st, const char *reaction_event_id, const char *failure_txn, const char *user_id,
		    const char *kind, int64_t now_ms);
/* A recorded claim or resolve reaction: its failure, that failure's room (configured
 * name; NULL if the failure is gone) and who reacted. */
struct store_claim {
	char *failure_txn;
	char *room;
	char *user_id;
};
/* 1 and *out filled (clear with store_claim_clear), 0 when the reaction is no claim, -1. */
int store_claim_get(struct store *st, const char *reaction_event_id, struct store_claim *out);
void store_claim_clear(struct store_claim *c);
/* Forgets a reaction (it was redacted); returns the txn of its failure (caller frees), or
 * NULL when the reaction was no claim. */
char *store_claim_remove(struct store *st, const char *reaction_event_id);
/* The users with a live reaction of `kind` on a failure, first reacted first; a
 * NULL-terminated array, caller frees each and the array. 0 or -1. */
int store_claims_of(struct store *st, const char *failure_txn, const char *kind, char ***users, size_t *n);

#endif
