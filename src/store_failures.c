/* store_failures: the chatops failure table and the claims reactions make on it (store.c's
 * schema versions 2-3), with the txn lookups that restoring a failure needs. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store_internal.h"
#include "strbuf.h"

#define FAILURE_COLS "txn_id, room, route, event_key, content_json, opened_ms, event_id, thread_key, count, last_ms, recovered_ms, escalated"
/* Open: not recovered and not resolved by a resolve reaction. */
#define FAILURE_UNRESOLVED                                                                         \
	" recovered_ms IS NULL AND NOT EXISTS (SELECT 1 FROM claim WHERE failure_txn = txn_id"        \
	" AND kind = 'resolve')"

/* Prepared with the others when the store opens (store.c). */
const char *const store_failures_sql[S_COUNT] = {
	[S_FAILURE_ADD] = "INSERT OR IGNORE INTO failure (txn_id, room, route, event_key, content_json, opened_ms,"
			  " thread_key, last_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6)",
	[S_FAILURE_SET_EVENT] = "UPDATE failure SET event_id = ?2 WHERE txn_id = ?1",
	[S_FAILURE_BY_EVENT] = "SELECT " FAILURE_COLS " FROM failure WHERE event_id = ?",
	[S_FAILURE_BY_TXN] = "SELECT " FAILURE_COLS " FROM failure WHERE txn_id = ?",
	[S_FAILURE_OPEN_BY_KEY] = "SELECT " FAILURE_COLS " FROM failure WHERE route = ?1 AND thread_key = ?2"
				  " AND" FAILURE_UNRESOLVED " ORDER BY opened_ms DESC LIMIT 1",
	[S_FAILURE_OPEN_BY_PREFIX] = "SELECT " FAILURE_COLS " FROM failure WHERE route = ?1 AND substr(thread_key, 1, length(?2)) = ?2"
				     " AND recovered_ms IS NULL ORDER BY opened_ms",
	[S_FAILURE_BUMP] = "UPDATE failure SET count = count + 1, last_ms = ?2 WHERE txn_id = ?1",
	[S_FAILURE_RECOVER] = "UPDATE failure SET recovered_ms = ?2 WHERE txn_id = ?1",
	[S_FAILURE_ESCALATED] = "UPDATE failure SET escalated = ?2 WHERE txn_id = ?1",
	[S_FAILURE_CONTENT] = "UPDATE failure SET content_json = ?2 WHERE txn_id = ?1",
	[S_FAILURES_BY_KEY] = "SELECT " FAILURE_COLS " FROM failure WHERE event_key = ?1 ORDER BY opened_ms",
	[S_FAILURES_OPEN] = "SELECT " FAILURE_COLS " FROM failure WHERE (?1 IS NULL OR room = ?1) AND"
			    FAILURE_UNRESOLVED " ORDER BY opened_ms",
	[S_FAILURE_RESTORE] = "INSERT OR IGNORE INTO failure (" FAILURE_COLS ") VALUES"
			      " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[S_TXN_KNOWN] = "SELECT 1 FROM txn WHERE txn_id = ?",
	/* A restored failure was delivered: edits and thread replies can point at its txn. */
	[S_TXN_RESTORE] = "INSERT OR IGNORE INTO txn (txn_id, room, event_key, route, action, accepted_ms, event_id,"
			  " sent_ms) VALUES (?1, ?2, ?3, ?4, 'failure', ?5, ?6, ?5)",
	[S_CLAIM_ADD] = "INSERT OR IGNORE INTO claim (reaction_event_id, failure_txn, user_id, kind, at_ms)"
			" VALUES (?, ?, ?, ?, ?)",
	/* The room is the failure's: a claim is recorded only for a reaction in that room. */
	[S_CLAIM_GET] = "SELECT c.failure_txn, f.room, c.user_id FROM claim c"
			" LEFT JOIN failure f ON f.txn_id = c.failure_txn WHERE c.reaction_event_id = ?",
	[S_CLAIM_DELETE] = "DELETE FROM claim WHERE reaction_event_id = ?",
	[S_CLAIMS_OF] = "SELECT user_id FROM claim WHERE failure_txn = ? AND kind = ?"
			" GROUP BY user_id ORDER BY min(at_ms), user_id",
};

/* ---- chatops: failures and their claims ---- */

int store_failure_add(struct store *st, const char *txn_id, const char *room, const char *route,
		      const char *event_key, const char *content_json, const char *thread_key, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_ADD);
	store_internal_bind_text(s, 1, txn_id);
	store_internal_bind_text(s, 2, room);
	store_internal_bind_text(s, 3, route);
	store_internal_bind_text(s, 4, event_key);
	store_internal_bind_text(s, 5, content_json);
	sqlite3_bind_int64(s, 6, now_ms);
	store_internal_bind_text(s, 7, thread_key ? thread_key : "");
	return store_internal_run(st, s, "failure add");
}

int store_failure_set_event(struct store *st, const char *txn_id, const char *event_id)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_SET_EVENT);
	store_internal_bind_text(s, 1, txn_id);
	store_internal_bind_text(s, 2, event_id);
	if (store_internal_run(st, s, "failure event") < 0)
		return -1;
	return sqlite3_changes(store_internal_db(st)) > 0;
}

static void failure_read(sqlite3_stmt *s, struct store_failure *out)
{
	out->txn_id = store_internal_column_dup(s, 0);
	out->room = store_internal_column_dup(s, 1);
	out->route = store_internal_column_dup(s, 2);
	out->event_key = store_internal_column_dup(s, 3);
	out->content_json = store_internal_column_dup(s, 4);
	out->opened_ms = sqlite3_column_int64(s, 5);
	out->event_id = sqlite3_column_type(s, 6) == SQLITE_NULL ? NULL : store_internal_column_dup(s, 6);
	out->thread_key = store_internal_column_dup(s, 7);
	out->count = sqlite3_column_int64(s, 8);
	out->last_ms = sqlite3_column_int64(s, 9);
	out->recovered_ms = sqlite3_column_int64(s, 10);
	out->escalated = (unsigned)sqlite3_column_int64(s, 11);
}

static int failure_lookup2(struct store *st, enum store_stmt_id id, const char *a, const char *b,
			   struct store_failure *out)
{
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = store_internal_use(st, id);
	store_internal_bind_text(s, 1, a);
	if (b)
		store_internal_bind_text(s, 2, b);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		failure_read(s, out);
	} else if (rc != SQLITE_DONE) {
		store_internal_fail(st, "failure lookup");
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_failure_by_event(struct store *st, const char *event_id, struct store_failure *out)
{
	return failure_lookup2(st, S_FAILURE_BY_EVENT, event_id, NULL, out);
}

int store_failure_by_txn(struct store *st, const char *txn_id, struct store_failure *out)
{
	return failure_lookup2(st, S_FAILURE_BY_TXN, txn_id, NULL, out);
}

int store_failure_open_by_key(struct store *st, const char *route, const char *thread_key, struct store_failure *out)
{
	return failure_lookup2(st, S_FAILURE_OPEN_BY_KEY, route, thread_key, out);
}

/* Reads every row of a failure query bound with a and b (b may be NULL). */
static int failure_list(struct store *st, enum store_stmt_id id, const char *a, const char *b,
			struct store_failure **out, size_t *n, const char *op)
{
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = store_internal_use(st, id);
	store_internal_bind_text(s, 1, a);
	if (b)
		store_internal_bind_text(s, 2, b);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*out = xrealloc(*out, (*n + 1) * sizeof **out);
		memset(&(*out)[*n], 0, sizeof **out);
		failure_read(s, &(*out)[(*n)++]);
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : store_internal_fail(st, op);
}

int store_failures_open_by_prefix(struct store *st, const char *route, const char *prefix,
				  struct store_failure **out, size_t *n)
{
	return failure_list(st, S_FAILURE_OPEN_BY_PREFIX, route, prefix, out, n, "failures open by prefix");
}

int store_failures_by_key(struct store *st, const char *event_key, struct store_failure **out, size_t *n)
{
	return failure_list(st, S_FAILURES_BY_KEY, event_key, NULL, out, n, "failures by key");
}

int store_failures_open(struct store *st, const char *room, struct store_failure **out, size_t *n)
{
	return failure_list(st, S_FAILURES_OPEN, room, NULL, out, n, "failures open");
}

void store_failures_free(struct store_failure *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_failure_clear(&list[i]);
	free(list);
}

int store_failure_set_escalated(struct store *st, const char *txn_id, unsigned escalated)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_ESCALATED);
	store_internal_bind_text(s, 1, txn_id);
	sqlite3_bind_int64(s, 2, escalated);
	return store_internal_run(st, s, "failure escalated");
}

int store_failure_set_content(struct store *st, const char *txn_id, const char *content_json)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_CONTENT);
	store_internal_bind_text(s, 1, txn_id);
	store_internal_bind_text(s, 2, content_json);
	return store_internal_run(st, s, "failure content");
}

int store_failure_restore(struct store *st, const struct store_failure *f)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_RESTORE);
	store_internal_bind_text(s, 1, f->txn_id);
	store_internal_bind_text(s, 2, f->room);
	store_internal_bind_text(s, 3, f->route);
	store_internal_bind_text(s, 4, f->event_key);
	store_internal_bind_text(s, 5, f->content_json);
	sqlite3_bind_int64(s, 6, f->opened_ms);
	store_internal_bind_text(s, 7, f->event_id);
	store_internal_bind_text(s, 8, f->thread_key ? f->thread_key : "");
	sqlite3_bind_int64(s, 9, f->count > 0 ? f->count : 1);
	sqlite3_bind_int64(s, 10, f->last_ms ? f->last_ms : f->opened_ms);
	if (f->recovered_ms)
		sqlite3_bind_int64(s, 11, f->recovered_ms);
	else
		sqlite3_bind_null(s, 11);
	sqlite3_bind_int64(s, 12, f->escalated);
	if (store_internal_run(st, s, "failure restore") < 0)
		return -1;
	bool added = sqlite3_changes(store_internal_db(st)) > 0;
	if (added && f->event_id) {
		s = store_internal_use(st, S_TXN_RESTORE);
		store_internal_bind_text(s, 1, f->txn_id);
		store_internal_bind_text(s, 2, f->room);
		store_internal_bind_text(s, 3, f->event_key);
		store_internal_bind_text(s, 4, f->route);
		sqlite3_bind_int64(s, 5, f->opened_ms);
		store_internal_bind_text(s, 6, f->event_id);
		if (store_internal_run(st, s, "failure restore: txn") < 0)
			return -1;
	}
	return added;
}

int store_txn_known(struct store *st, const char *txn_id)
{
	sqlite3_stmt *s = store_internal_use(st, S_TXN_KNOWN);
	store_internal_bind_text(s, 1, txn_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : store_internal_fail(st, "txn known");
}

int store_failure_bump(struct store *st, const char *txn_id, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_BUMP);
	store_internal_bind_text(s, 1, txn_id);
	sqlite3_bind_int64(s, 2, now_ms);
	return store_internal_run(st, s, "failure bump");
}

int store_failure_recover(struct store *st, const char *txn_id, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_FAILURE_RECOVER);
	store_internal_bind_text(s, 1, txn_id);
	sqlite3_bind_int64(s, 2, now_ms);
	return store_internal_run(st, s, "failure recover");
}

void store_failure_clear(struct store_failure *f)
{
	free(f->txn_id);
	free(f->room);
	free(f->route);
	free(f->event_key);
	free(f->content_json);
	free(f->event_id);
	free(f->thread_key);
	memset(f, 0, sizeof *f);
}

int store_claim_add(struct store *st, const char *reaction_event_id, const char *failure_txn, const char *user_id,
		    const char *kind, int64_t now_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_use(st, S_CLAIM_ADD);
	store_internal_bind_text(s, 1, reaction_event_id);
	store_internal_bind_text(s, 2, failure_txn);
	store_internal_bind_text(s, 3, user_id);
	store_internal_bind_text(s, 4, kind);
	sqlite3_bind_int64(s, 5, now_ms);
	if (store_internal_run(st, s, "claim add") < 0)
		return -1;
	return sqlite3_changes(store_internal_db(st)) > 0;
}

int store_claim_get(struct store *st, const char *reaction_event_id, struct store_claim *out)
{
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = store_internal_use(st, S_CLAIM_GET);
	store_internal_bind_text(s, 1, reaction_event_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->failure_txn = store_internal_column_dup(s, 0);
		out->room = store_internal_column_dup(s, 1);
		out->user_id = store_internal_column_dup(s, 2);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_internal_fail(st, "claim get");
	return rc == SQLITE_ROW;
}

void store_claim_clear(struct store_claim *c)
{
	free(c->failure_txn);
	free(c->room);
	free(c->user_id);
	memset(c, 0, sizeof *c);
}

char *store_claim_remove(struct store *st, const char *reaction_event_id)
{
	sqlite3_stmt *s = store_internal_use(st, S_CLAIM_GET);
	store_internal_bind_text(s, 1, reaction_event_id);
	char *txn = NULL;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		txn = store_internal_column_dup(s, 0);
	else if (rc != SQLITE_DONE)
		store_internal_fail(st, "claim get");
	sqlite3_reset(s);
	if (!txn || store_internal_begin(st) < 0)
		return txn;
	s = store_internal_use(st, S_CLAIM_DELETE);
	store_internal_bind_text(s, 1, reaction_event_id);
	store_internal_run(st, s, "claim delete");
	return txn;
}

int store_claims_of(struct store *st, const char *failure_txn, const char *kind, char ***users, size_t *n)
{
	*users = NULL;
	*n = 0;
	sqlite3_stmt *s = store_internal_use(st, S_CLAIMS_OF);
	store_internal_bind_text(s, 1, failure_txn);
	store_internal_bind_text(s, 2, kind);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*users = xrealloc(*users, (*n + 2) * sizeof **users);
		(*users)[(*n)++] = store_internal_column_dup(s, 0);
		(*users)[*n] = NULL;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_internal_fail(st, "claims of");
	return 0;
}
