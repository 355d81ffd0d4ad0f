/* store_actions: the zuul_action table (see store.c's schema version 6 and store_actions.h).
 * Its statements live in the helper slots from STORE_ACTIONS_SLOT0 (store_flaky.c has the
 * ones below), prepared on first use. */
#include "store_actions.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store_internal.h"
#include "strbuf.h"

enum { ST_BEGIN = STORE_ACTIONS_SLOT0, ST_SET_STATE, ST_BY_QUESTION, ST_GET, ST_PRUNE };

#define COLUMNS "a.event_id, a.kind, a.room, a.user_id, a.request_json, a.question_txn, a.state, a.created_ms, a.expires_ms"

static void bind_opt(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static char *column_opt(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? xstrdup((const char *)t) : NULL;
}

void store_action_clear(struct store_action *a)
{
	if (!a)
		return;
	free(a->event_id);
	free(a->kind);
	free(a->room);
	free(a->user_id);
	free(a->request_json);
	free(a->question_txn);
	free(a->state);
	memset(a, 0, sizeof *a);
}

int store_action_begin(struct store *st, const struct store_action *a)
{
	if (!a->event_id || !*a->event_id || store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_prepare(st, ST_BEGIN,
				  "INSERT OR IGNORE INTO zuul_action (event_id, kind, room, user_id, request_json,"
				  " question_txn, state, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
				  "zuul_action record");
	if (!s)
		return -1;
	bind_opt(s, 1, a->event_id);
	bind_opt(s, 2, a->kind ? a->kind : "");
	bind_opt(s, 3, a->room ? a->room : "");
	bind_opt(s, 4, a->user_id ? a->user_id : "");
	bind_opt(s, 5, a->request_json);
	bind_opt(s, 6, a->question_txn);
	bind_opt(s, 7, a->state ? a->state : "sent");
	sqlite3_bind_int64(s, 8, a->created_ms);
	sqlite3_bind_int64(s, 9, a->expires_ms);
	int rc = sqlite3_step(s) == SQLITE_DONE ? (sqlite3_changes(store_internal_db(st)) == 1 ? 1 : 0)
						 : store_internal_fail(st, "zuul_action record");
	store_internal_done(s);
	return rc;
}

int store_action_set_state(struct store *st, const char *event_id, const char *state)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_prepare(st, ST_SET_STATE, "UPDATE zuul_action SET state = ?2 WHERE event_id = ?1",
				  "zuul_action state");
	if (!s)
		return -1;
	bind_opt(s, 1, event_id);
	bind_opt(s, 2, state);
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_internal_fail(st, "zuul_action state");
	store_internal_done(s);
	return rc;
}

static int read_one(struct store *st, sqlite3_stmt *s, const char *op, struct store_action *out)
{
	memset(out, 0, sizeof *out);
	int rc = sqlite3_step(s);
	int result;
	if (rc == SQLITE_ROW) {
		out->event_id = column_opt(s, 0);
		out->kind = column_opt(s, 1);
		out->room = column_opt(s, 2);
		out->user_id = column_opt(s, 3);
		out->request_json = column_opt(s, 4);
		out->question_txn = column_opt(s, 5);
		out->state = column_opt(s, 6);
		out->created_ms = sqlite3_column_int64(s, 7);
		out->expires_ms = sqlite3_column_int64(s, 8);
		result = 1;
	} else {
		result = rc == SQLITE_DONE ? 0 : store_internal_fail(st, op);
	}
	store_internal_done(s);
	return result;
}

int store_action_by_question(struct store *st, const char *question_event_id, struct store_action *out)
{
	/* The question's event id is what the deliverer wrote into txn when it was sent. */
	sqlite3_stmt *s = store_internal_prepare(st, ST_BY_QUESTION,
				  "SELECT " COLUMNS " FROM zuul_action a JOIN txn t ON t.txn_id = a.question_txn"
				  " WHERE t.event_id = ?1",
				  "zuul_action by question");
	if (!s)
		return -1;
	bind_opt(s, 1, question_event_id);
	return read_one(st, s, "zuul_action by question", out);
}

int store_action_get(struct store *st, const char *event_id, struct store_action *out)
{
	sqlite3_stmt *s = store_internal_prepare(st, ST_GET, "SELECT " COLUMNS " FROM zuul_action a WHERE a.event_id = ?1",
				  "zuul_action get");
	if (!s)
		return -1;
	bind_opt(s, 1, event_id);
	return read_one(st, s, "zuul_action get", out);
}

int store_actions_prune(struct store *st, int64_t cutoff_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_prepare(st, ST_PRUNE, "DELETE FROM zuul_action WHERE created_ms < ?", "zuul_action prune");
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, cutoff_ms);
	int rc = sqlite3_step(s) == SQLITE_DONE ? sqlite3_changes(store_internal_db(st))
						 : store_internal_fail(st, "zuul_action prune");
	store_internal_done(s);
	return rc;
}
