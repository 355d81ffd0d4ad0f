/* store_internal: what store.c shares with its helpers, store_check.c (is the file on disk
 * one we may open?) and store_space.c (the reserve that keeps a full disk workable). */
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

/* ---- store.c: what store_flaky.c builds on ---- */

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

#endif
