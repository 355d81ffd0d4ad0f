/* store_internal: what store.c shares with its helpers, store_check.c (is the file on disk
 * one we may open?), store_space.c (the reserve that keeps a full disk workable), and the
 * tables' files (store_outbox.c, store_failures.c, store_flaky.c, store_actions.c). */
#ifndef ZMB_STORE_INTERNAL_H
#define ZMB_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* ---- store_check.c: before and right after opening ---- */

enum store_file_state {
	STORE_FILE_MISSING, /* no state.db: a first start */
	STORE_FILE_PRESENT, /* state.db (and its WAL, if any) look like SQLite's */
	STORE_FILE_DAMAGED, /* err says what is wrong; the bridge must not start on it */
};

/* Looks at db_path and db_path-wal without SQLite: SQLite would take an empty state.db
 * for a new database and a WAL with a bad header for an empty one, silently dropping
 * what they held. */
enum store_file_state store_check_files(const char *db_path, char *err, size_t errlen);
/* PRAGMA quick_check on an open database: 0 "ok"; -1 it found problems (the first ones in
 * err); else the SQLite error code that kept it from reading the file (err says which). */
int store_quick_check(sqlite3 *db, const char *db_path, char *err, size_t errlen);
/* Whether an SQLite result code means the file's content is bad (not the disk or a lock). */
int store_rc_is_damage(int rc);

/* ---- store_space.c: the reserve and free space ---- */

/* Bytes free for an unprivileged writer on the file system of path, -1 on error. */
int64_t store_free_bytes(const char *path);
/* Makes reserve_path a file of `bytes` allocated blocks (posix_fallocate), 0600.
 * 0, or an errno value (ENOSPC: the disk has not that much room). A reserve that is
 * already whole is left alone. */
int store_reserve_make(const char *reserve_path, int64_t bytes);
/* Allocates blocks for bytes of path from offset (-1: its end) without changing its size.
 * 0 or an errno value. */
int store_preallocate(const char *path, int64_t offset, int64_t bytes);
/* Gives the reserve's blocks back to the file system. true when there was one. */
int store_reserve_release(const char *reserve_path);
/* Whether an SQLite failure was the disk running out (SQLITE_FULL, or an I/O error
 * whose errno was ENOSPC/EDQUOT: a -shm file that cannot grow). */
int store_rc_is_full(sqlite3 *db, int rc);

/* ---- store.c: what the tables' files build on (store_flaky.c, store_actions.c,
 * store_outbox.c, store_failures.c) ---- */

struct store;
sqlite3 *store_internal_db(struct store *st);
/* Opens the turn's write transaction (every write goes through here first). 0 or -1. */
int store_internal_begin(struct store *st);
/* Logs a failed SQLite operation (and notices a full disk); returns -1. */
int store_internal_fail(struct store *st, const char *op);
/* Slots for a helper's prepared statements, finalized by store_close (NULL past the last):
 * store_flaky.c's from 0, store_actions.c's from STORE_ACTIONS_SLOT0. */
#define STORE_HELPER_STMTS 16
#define STORE_ACTIONS_SLOT0 8
sqlite3_stmt **store_internal_stmt_slot(struct store *st, int i);
/* The statement of slot, prepared once (sql), reset and unbound; NULL after logging op's
 * failure (or for a slot out of range). */
sqlite3_stmt *store_internal_prepare(struct store *st, int slot, const char *sql, const char *op);
/* Done with a statement: its read lock (if any) goes now, not at the next use. */
void store_internal_done(sqlite3_stmt *s);

/* ---- store.c: the statements prepared when the store opens, for store_outbox.c and
 * store_failures.c ---- */

/* store.c's own (BEGIN, COMMIT, the largest id, kv) are in its table; the others in
 * store_outbox_sql and store_failures_sql, each giving exactly the ids its file uses. */
enum store_stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_TXN_CLAIM,
	S_TXN_FORGET,
	S_OUTBOX_INSERT,
	S_OUTBOX_LOAD,
	S_OUTBOX_LOAD_ROOM,
	S_OUTBOX_ROOMS,
	S_OUTBOX_ROOM_DEPTH,
	S_MAX_ID,
	S_OUTBOX_DEPTH,
	S_OUTBOX_DELETE,
	S_SENT_TXN,
	S_SENT_FROM_OUTBOX,
	S_TXN_FINISH_OUTBOX,
	S_ATTEMPT_FAILED,
	S_DEAD_FROM_OUTBOX,
	S_SENT_EVENT_ID,
	S_DEAD_LIST,
	S_RETRY_ONE,
	S_RETRY_ALL,
	S_DEAD_DELETE_ONE,
	S_DEAD_DELETE_ALL,
	S_PRUNE_SLICE_END,
	S_PRUNE_TXN,
	S_PRUNE_FAILURES,
	S_PRUNE_CLAIMS,
	S_KV_GET,
	S_KV_SET,
	S_KV_DELETE,
	S_FAILURE_ADD,
	S_FAILURE_SET_EVENT,
	S_FAILURE_BY_EVENT,
	S_FAILURE_BY_TXN,
	S_FAILURE_OPEN_BY_KEY,
	S_FAILURE_OPEN_BY_PREFIX,
	S_FAILURE_BUMP,
	S_FAILURE_RECOVER,
	S_FAILURE_ESCALATED,
	S_FAILURE_CONTENT,
	S_FAILURES_BY_KEY,
	S_FAILURES_OPEN,
	S_FAILURE_RESTORE,
	S_TXN_KNOWN,
	S_TXN_RESTORE,
	S_CLAIM_ADD,
	S_CLAIM_GET,
	S_CLAIM_DELETE,
	S_CLAIMS_OF,
	S_COUNT
};
extern const char *const store_outbox_sql[S_COUNT];
extern const char *const store_failures_sql[S_COUNT];

/* The statement id, reset and unbound (store.c's use()). */
sqlite3_stmt *store_internal_use(struct store *st, enum store_stmt_id id);
/* Steps a statement that returns no rows; resets it. 0 or -1 (logged). A batch SQLite
 * rolled back refuses it: the write would be committed alone. */
int store_internal_run(struct store *st, sqlite3_stmt *s, const char *op);
/* Binds v (SQLITE_STATIC: it must outlive the step), NULL as SQL NULL. */
void store_internal_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Column col as a new string ("" for NULL). */
char *store_internal_column_dup(sqlite3_stmt *s, int col);
/* The next outbox id (above every outbox and dead-letter id): store_outbox.c takes it. */
int64_t *store_internal_next_id(struct store *st);
/* Where the next txn retention slice starts (NULL: the beginning); the store frees it. */
char **store_internal_prune_after(struct store *st);

#endif
