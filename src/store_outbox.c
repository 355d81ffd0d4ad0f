/* store_outbox: the outbox of messages to deliver, the dead letters that could not be (store.c's
 * schema version 1), and the retention that forgets finished txn ids and closed failures. */
#include "store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "redact.h"
#include "store_internal.h"
#include "strbuf.h"

/* Prepared with the others when the store opens (store.c). */
const char *const store_outbox_sql[S_COUNT] = {
	/* A txn id already queued, delivered or dead would make the homeserver drop the
	 * new message silently (or clash on retry): no row inserted means a duplicate. */
	[S_TXN_CLAIM] = "INSERT OR IGNORE INTO txn (txn_id, room, event_key, route, action, accepted_ms)"
			" VALUES (?, ?, ?, ?, ?, ?)",
	[S_TXN_FORGET] = "DELETE FROM txn WHERE txn_id = ?",
	[S_OUTBOX_INSERT] = "INSERT INTO outbox (id, route, room, txn_id, event_key, action,"
			    " content_json, attempts, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
	[S_OUTBOX_LOAD] = "SELECT id, route, room, txn_id, event_key, action, content_json,"
			  " attempts, created_ms FROM outbox ORDER BY id",
	[S_OUTBOX_LOAD_ROOM] = "SELECT id, route, room, txn_id, event_key, action, content_json,"
			       " attempts, created_ms FROM outbox WHERE room = ?1 AND id > ?2"
			       " ORDER BY id LIMIT ?3",
	[S_OUTBOX_ROOMS] = "SELECT DISTINCT room FROM outbox ORDER BY room",
	[S_OUTBOX_ROOM_DEPTH] = "SELECT count(*) FROM outbox WHERE room = ?",
	[S_OUTBOX_DEPTH] = "SELECT count(*) FROM outbox",
	[S_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?",
	/* The txn row was written when the item was queued. */
	[S_SENT_TXN] = "UPDATE txn SET event_id = ?2, sent_ms = ?3 WHERE txn_id = ?1"
		       " AND EXISTS (SELECT 1 FROM outbox WHERE id = ?4)",
	/* Should it be missing after all (a damaged database), it is made from the item. */
	[S_SENT_FROM_OUTBOX] = "INSERT INTO txn (txn_id, room, event_key, route, action, accepted_ms,"
			       " event_id, sent_ms) SELECT txn_id, room, event_key, route, action,"
			       " created_ms, ?2, ?3 FROM outbox WHERE id = ?1"
			       " ON CONFLICT (txn_id) DO UPDATE SET event_id = excluded.event_id,"
			       " sent_ms = excluded.sent_ms",
	/* Dropped unsent: finished all the same, so the retention can forget it. */
	[S_TXN_FINISH_OUTBOX] = "UPDATE txn SET sent_ms = ?2 WHERE txn_id = (SELECT txn_id FROM outbox WHERE id = ?1)",
	[S_ATTEMPT_FAILED] = "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?",
	/* The permanent failure is itself an attempt, hence attempts + 1. */
	[S_DEAD_FROM_OUTBOX] = "INSERT INTO dead_letter (id, route, room, txn_id, event_key, action,"
			       " content_json, attempts, created_ms, reason, failed_ms)"
			       " SELECT id, route, room, txn_id, event_key, action, content_json,"
			       " attempts + 1, created_ms, ?2, ?3 FROM outbox WHERE id = ?1",
	[S_SENT_EVENT_ID] = "SELECT event_id FROM txn WHERE txn_id = ? AND event_id IS NOT NULL",
	[S_DEAD_LIST] = "SELECT id, route, room, txn_id, event_key, action, reason, attempts,"
			" created_ms, failed_ms FROM dead_letter ORDER BY id",
	[S_RETRY_ONE] = "INSERT INTO outbox (id, route, room, txn_id, event_key, action, content_json,"
			" attempts, created_ms) SELECT id, route, room, txn_id, event_key, action,"
			" content_json, 0, created_ms FROM dead_letter WHERE id = ?",
	[S_RETRY_ALL] = "INSERT INTO outbox (id, route, room, txn_id, event_key, action, content_json,"
			" attempts, created_ms) SELECT id, route, room, txn_id, event_key, action,"
			" content_json, 0, created_ms FROM dead_letter ORDER BY id",
	[S_DEAD_DELETE_ONE] = "DELETE FROM dead_letter WHERE id = ?",
	[S_DEAD_DELETE_ALL] = "DELETE FROM dead_letter",
	/* Retention, one slice of txn ids at a time (txn has no index on time, and scanning a
	 * week of a busy bridge's ids at once would stall the loop). A txn is forgotten when it
	 * is old and finished (delivered or dropped; queued and dead ones have no sent_ms) and
	 * no failure row still relates to it: a repeat must find its root's event id. */
	[S_PRUNE_SLICE_END] = "SELECT max(txn_id), count(*) FROM (SELECT txn_id FROM txn WHERE txn_id > ?1"
			      " ORDER BY txn_id LIMIT ?2)",
	[S_PRUNE_TXN] = "DELETE FROM txn WHERE txn_id > ?1 AND txn_id <= ?2 AND accepted_ms < ?3"
			" AND sent_ms IS NOT NULL AND NOT EXISTS (SELECT 1 FROM failure f WHERE f.txn_id = txn.txn_id)",
	/* A failure closed (recovered, or resolved by a reaction) before the cutoff and quiet
	 * since: nothing will thread under it or claim it any more. */
	[S_PRUNE_FAILURES] = "DELETE FROM failure WHERE opened_ms < ?1 AND coalesce(last_ms, 0) < ?1 AND"
			     " (recovered_ms < ?1 OR EXISTS (SELECT 1 FROM claim c WHERE c.failure_txn = failure.txn_id"
			     " AND c.kind = 'resolve' AND c.at_ms < ?1))",
	[S_PRUNE_CLAIMS] = "DELETE FROM claim WHERE NOT EXISTS (SELECT 1 FROM failure f WHERE f.txn_id = claim.failure_txn)",
};

/* ---- outbox ---- */

int store_outbox_push(struct store *st, const char *route, const char *room, const char *txn_id,
		      const char *event_key, const char *action, const char *content_json, int64_t now_ms,
		      int64_t *id)
{
	if (!route || !room || !txn_id || !event_key || !action || !content_json) {
		log_kv(ZLOG_ERROR, "store: outbox push without a required field; dropped", "route", route,
		       "txn_id", txn_id, "event_key", event_key, NULL);
		return -1;
	}
	if (store_full_reason(st)) {
		log_kv(ZLOG_WARN, "store: report refused", "reason", store_full_reason(st), "txn_id", txn_id, NULL);
		return -1;
	}
	if (store_internal_begin(st) < 0)
		return -1;
	int64_t *next_id = store_internal_next_id(st);

	/* The txn id is the duplicate check: a redelivered report, the common duplicate,
	 * writes nothing at all. */
	sqlite3_stmt *s = store_internal_use(st, S_TXN_CLAIM);
	store_internal_bind_text(s, 1, txn_id);
	store_internal_bind_text(s, 2, room);
	store_internal_bind_text(s, 3, event_key);
	store_internal_bind_text(s, 4, route);
	store_internal_bind_text(s, 5, action);
	sqlite3_bind_int64(s, 6, now_ms);
	int rc = store_internal_run(st, s, "outbox push: txn id claim");
	bool claimed = rc == 0 && sqlite3_changes(store_internal_db(st)) > 0;
	if (claimed) {
		s = store_internal_use(st, S_OUTBOX_INSERT);
		sqlite3_bind_int64(s, 1, *next_id);
		store_internal_bind_text(s, 2, route);
		store_internal_bind_text(s, 3, room);
		store_internal_bind_text(s, 4, txn_id);
		store_internal_bind_text(s, 5, event_key);
		store_internal_bind_text(s, 6, action);
		store_internal_bind_text(s, 7, content_json);
		sqlite3_bind_int64(s, 8, now_ms);
		rc = store_internal_run(st, s, "outbox push: insert");
		if (rc == 0) {
			if (id)
				*id = *next_id;
			(*next_id)++;
			return 1;
		}
		/* Not queued after all: the claim must not stay behind, or it would swallow
		 * the report when the broker delivers it again. */
		s = store_internal_use(st, S_TXN_FORGET);
		store_internal_bind_text(s, 1, txn_id);
		if (!store_batch_lost(st)) /* else the claim went with the batch */
			sqlite3_step(s);
		sqlite3_reset(s);
	}
	return rc < 0 ? -1 : 0;
}

static void item_from_row(sqlite3_stmt *s, struct outbox_item *it)
{
	it->id = sqlite3_column_int64(s, 0);
	it->route = store_internal_column_dup(s, 1);
	it->room = store_internal_column_dup(s, 2);
	it->txn_id = store_internal_column_dup(s, 3);
	it->event_key = store_internal_column_dup(s, 4);
	it->action = store_internal_column_dup(s, 5);
	it->content_json = store_internal_column_dup(s, 6);
	it->attempts = sqlite3_column_int(s, 7);
	it->created_ms = sqlite3_column_int64(s, 8);
}

/* Steps s, appending every row to *items; 0, or -1 (logged, nothing returned). */
static int load_items(struct store *st, sqlite3_stmt *s, const char *op, struct outbox_item **items, size_t *n)
{
	*items = NULL;
	*n = 0;
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*items = xrealloc(*items, cap * sizeof **items);
		}
		item_from_row(s, &(*items)[(*n)++]);
	}
	if (rc != SQLITE_DONE)
		store_internal_fail(st, op);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_items_free(*items, *n);
		*items = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

int store_outbox_load(struct store *st, struct outbox_item **items, size_t *n)
{
	return load_items(st, store_internal_use(st, S_OUTBOX_LOAD), "outbox load", items, n);
}

int store_outbox_load_room(struct store *st, const char *room, int64_t after_id, size_t limit,
			   struct outbox_item **items, size_t *n)
{
	sqlite3_stmt *s = store_internal_use(st, S_OUTBOX_LOAD_ROOM);
	store_internal_bind_text(s, 1, room);
	sqlite3_bind_int64(s, 2, after_id);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)(limit > INT32_MAX ? INT32_MAX : limit));
	return load_items(st, s, "outbox load room", items, n);
}

int store_outbox_rooms(struct store *st, char ***rooms, size_t *n)
{
	*rooms = NULL;
	*n = 0;
	size_t cap = 0;
	sqlite3_stmt *s = store_internal_use(st, S_OUTBOX_ROOMS);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*rooms = xrealloc(*rooms, cap * sizeof **rooms);
		}
		(*rooms)[(*n)++] = store_internal_column_dup(s, 0);
	}
	if (rc != SQLITE_DONE)
		store_internal_fail(st, "outbox rooms");
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < *n; i++)
			free((*rooms)[i]);
		free(*rooms);
		*rooms = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

void store_item_clear(struct outbox_item *item)
{
	free(item->route);
	free(item->room);
	free(item->txn_id);
	free(item->event_key);
	free(item->action);
	free(item->content_json);
	memset(item, 0, sizeof *item);
}

void store_items_free(struct outbox_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_item_clear(&items[i]);
	free(items);
}

size_t store_outbox_room_depth(struct store *st, const char *room)
{
	sqlite3_stmt *s = store_internal_use(st, S_OUTBOX_ROOM_DEPTH);
	store_internal_bind_text(s, 1, room);
	size_t depth = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		depth = (size_t)sqlite3_column_int64(s, 0);
	else
		store_internal_fail(st, "outbox room depth");
	sqlite3_reset(s);
	return depth;
}

size_t store_outbox_depth(struct store *st)
{
	sqlite3_stmt *s = store_internal_use(st, S_OUTBOX_DEPTH);
	size_t depth = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		depth = (size_t)sqlite3_column_int64(s, 0);
	else
		store_internal_fail(st, "outbox depth");
	sqlite3_reset(s);
	return depth;
}

static int delete_outbox_row(struct store *st, int64_t id, const char *op)
{
	sqlite3_stmt *s = store_internal_use(st, S_OUTBOX_DELETE);
	sqlite3_bind_int64(s, 1, id);
	return store_internal_run(st, s, op);
}

static int unknown_item(const char *op, int64_t id)
{
	log_msgf(ZLOG_WARN, "store: %s: no outbox item %lld; nothing changed", op, (long long)id);
	return -1;
}

int store_outbox_delivered(struct store *st, int64_t id, const char *txn_id, const char *event_id, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_SENT_TXN);
	store_internal_bind_text(s, 1, txn_id ? txn_id : "");
	store_internal_bind_text(s, 2, event_id ? event_id : "");
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_int64(s, 4, id);
	if (store_internal_run(st, s, "outbox delivered: record sent") < 0)
		return -1;
	if (sqlite3_changes(store_internal_db(st)) > 0)
		return delete_outbox_row(st, id, "outbox delivered: delete");
	s = store_internal_use(st, S_SENT_FROM_OUTBOX);
	sqlite3_bind_int64(s, 1, id);
	store_internal_bind_text(s, 2, event_id ? event_id : "");
	sqlite3_bind_int64(s, 3, now_ms);
	if (store_internal_run(st, s, "outbox delivered: record sent") < 0)
		return -1;
	if (sqlite3_changes(store_internal_db(st)) == 0)
		return unknown_item("outbox delivered", id);
	return delete_outbox_row(st, id, "outbox delivered: delete");
}

int store_outbox_drop(struct store *st, int64_t id, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_TXN_FINISH_OUTBOX);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now_ms);
	if (store_internal_run(st, s, "outbox drop: finish txn") < 0)
		return -1;
	if (delete_outbox_row(st, id, "outbox drop") < 0)
		return -1;
	return sqlite3_changes(store_internal_db(st)) ? 0 : unknown_item("outbox drop", id);
}

int store_outbox_attempt_failed(struct store *st, int64_t id)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_ATTEMPT_FAILED);
	sqlite3_bind_int64(s, 1, id);
	if (store_internal_run(st, s, "outbox attempt failed") < 0)
		return -1;
	return sqlite3_changes(store_internal_db(st)) ? 0 : unknown_item("outbox attempt failed", id);
}

int store_outbox_kill(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_DEAD_FROM_OUTBOX);
	sqlite3_bind_int64(s, 1, id);
	/* The reason quotes the homeserver, which may echo the token: none is stored. */
	struct strbuf scratch = STRBUF_INIT;
	store_internal_bind_text(s, 2, redact_str(reason ? reason : "", &scratch));
	sqlite3_bind_int64(s, 3, now_ms);
	int rc = store_internal_run(st, s, "outbox kill: insert dead letter");
	strbuf_free(&scratch);
	if (rc < 0)
		return -1;
	if (sqlite3_changes(store_internal_db(st)) == 0)
		return unknown_item("outbox kill", id);
	return delete_outbox_row(st, id, "outbox kill: delete");
}

char *store_sent_event_id(struct store *st, const char *txn_id)
{
	sqlite3_stmt *s = store_internal_use(st, S_SENT_EVENT_ID);
	store_internal_bind_text(s, 1, txn_id);
	char *event_id = NULL;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		event_id = store_internal_column_dup(s, 0);
	else if (rc != SQLITE_DONE)
		store_internal_fail(st, "sent event id lookup");
	sqlite3_reset(s);
	return event_id;
}

/* ---- dead letters ---- */

int store_dead_list(struct store *st, struct dead_letter **items, size_t *n)
{
	*items = NULL;
	*n = 0;
	size_t cap = 0;
	sqlite3_stmt *s = store_internal_use(st, S_DEAD_LIST);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*items = xrealloc(*items, cap * sizeof **items);
		}
		struct dead_letter *d = &(*items)[(*n)++];
		d->id = sqlite3_column_int64(s, 0);
		d->route = store_internal_column_dup(s, 1);
		d->room = store_internal_column_dup(s, 2);
		d->txn_id = store_internal_column_dup(s, 3);
		d->event_key = store_internal_column_dup(s, 4);
		d->action = store_internal_column_dup(s, 5);
		d->reason = store_internal_column_dup(s, 6);
		d->attempts = sqlite3_column_int(s, 7);
		d->created_ms = sqlite3_column_int64(s, 8);
		d->failed_ms = sqlite3_column_int64(s, 9);
	}
	if (rc != SQLITE_DONE)
		store_internal_fail(st, "dead letter list");
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_dead_free(*items, *n);
		*items = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

void store_dead_free(struct dead_letter *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].route);
		free(items[i].room);
		free(items[i].txn_id);
		free(items[i].event_key);
		free(items[i].action);
		free(items[i].reason);
	}
	free(items);
}

int store_dead_retry(struct store *st, int64_t id)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, id ? S_RETRY_ONE : S_RETRY_ALL);
	if (id)
		sqlite3_bind_int64(s, 1, id);
	if (store_internal_run(st, s, "dead letter retry: insert") < 0)
		return -1;
	int moved = sqlite3_changes(store_internal_db(st));
	if (moved == 0)
		return 0;
	s = store_internal_use(st, id ? S_DEAD_DELETE_ONE : S_DEAD_DELETE_ALL);
	if (id)
		sqlite3_bind_int64(s, 1, id);
	if (store_internal_run(st, s, "dead letter retry: delete") < 0)
		return -1;
	return moved;
}

/* ---- retention ---- */

int store_prune_txns(struct store *st, int64_t cutoff_ms, int slice, bool *pass_done)
{
	*pass_done = false;
	if (slice < 1)
		slice = 1;
	if (store_internal_begin(st) < 0)
		return -1;
	char **prune_after = store_internal_prune_after(st);
	const char *after = *prune_after ? *prune_after : "";
	sqlite3_stmt *s = store_internal_use(st, S_PRUNE_SLICE_END);
	store_internal_bind_text(s, 1, after);
	sqlite3_bind_int(s, 2, slice);
	if (sqlite3_step(s) != SQLITE_ROW) {
		store_internal_fail(st, "prune: slice");
		sqlite3_reset(s);
		return -1;
	}
	/* max() of no rows is NULL: nothing after the cursor. */
	char *end = sqlite3_column_type(s, 0) == SQLITE_NULL ? NULL : store_internal_column_dup(s, 0);
	bool last_slice = sqlite3_column_int(s, 1) < slice;
	sqlite3_reset(s);
	if (end) {
		s = store_internal_use(st, S_PRUNE_TXN);
		store_internal_bind_text(s, 1, after);
		store_internal_bind_text(s, 2, end);
		sqlite3_bind_int64(s, 3, cutoff_ms);
		if (store_internal_run(st, s, "prune: txn") < 0) {
			free(end);
			return -1;
		}
	}
	int removed = end ? sqlite3_changes(store_internal_db(st)) : 0;
	/* A short slice reached the last id: the next pass starts from the beginning. */
	free(*prune_after);
	*prune_after = last_slice ? NULL : end;
	if (last_slice)
		free(end);
	*pass_done = last_slice;
	return removed;
}

int store_prune_failures(struct store *st, int64_t cutoff_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_PRUNE_FAILURES);
	sqlite3_bind_int64(s, 1, cutoff_ms);
	if (store_internal_run(st, s, "prune: failures") < 0)
		return -1;
	int removed = sqlite3_changes(store_internal_db(st));
	if (removed > 0 && store_internal_run(st, store_internal_use(st, S_PRUNE_CLAIMS), "prune: claims") < 0)
		return -1;
	return removed;
}
