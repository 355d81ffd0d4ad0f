/* store: the bridge's durable state in one SQLite file (WAL, synchronous=FULL).
 * Writes join one batch per loop turn; statements are prepared once at open. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_internal.h"
#include "strbuf.h"

/* WAL frames between automatic checkpoints (SQLite's default: 1000), and what the WAL
 * file is truncated to after one. */
#ifndef STORE_WAL_CHECKPOINT_PAGES
#define STORE_WAL_CHECKPOINT_PAGES 8000
#endif
#define STORE_WAL_KEEP_BYTES (4 * 1024 * 1024)
/* While the disk is full: checkpoint this often, so the WAL is written over from its start
 * in the blocks it already has instead of growing into blocks nobody has. */
#define STORE_FULL_CHECKPOINT_PAGES 64
/* ...and what of the reserve goes to the WAL and to state.db, each (enter_full). */
#define STORE_FULL_SPARE_BYTES (2LL * 1024 * 1024)

/* The reserve (state.db-reserve, see store_space.c) and the free space below which new
 * reports are refused: a batch of reports writes a few hundred KiB of WAL, and the
 * reserve, given back when the disk is full, carries the deliveries' bookkeeping, the
 * checkpoints of what is in the WAL and the -shm of a restart. */
#ifndef STORE_RESERVE_BYTES
#define STORE_RESERVE_BYTES (8LL * 1024 * 1024)
#endif
#ifndef STORE_LOW_SPACE_BYTES
#define STORE_LOW_SPACE_BYTES (4LL * 1024 * 1024)
#endif

/* ---- schema: one function per version; adding version N+1 is one more entry ---- */

/* Laid out for few pages written per report (each dirty page is a WAL frame at commit):
 * - outbox ids are given by the store (no AUTOINCREMENT, whose sqlite_sequence row is one
 *   more page per commit) and never reused while rows or dead letters hold them;
 * - `txn` holds every transaction id ever accepted: claiming one is the duplicate check
 *   (INSERT OR IGNORE) and delivering it fills in its event id, so the outbox needs no
 *   txn_id index and a delivery touches the same row again instead of a new table;
 * - the outbox's only index is (room, id), small and appended in order, for reading a
 *   room's queue a window at a time; the 3 KB content stays in the table rows;
 * - dedup has no index on accepted_ms: the hourly prune scans it instead (version 4
 *   drops dedup; txn is pruned a slice at a time, see store_prune_txns). */
static const char schema_v1[] =
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY,"
	" route TEXT NOT NULL, room TEXT NOT NULL, txn_id TEXT NOT NULL,"
	" event_key TEXT NOT NULL, action TEXT NOT NULL, content_json TEXT NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);"
	"CREATE INDEX outbox_room ON outbox (room, id);"
	"CREATE TABLE dedup ("
	" event_key TEXT NOT NULL, action TEXT NOT NULL, route TEXT NOT NULL,"
	" accepted_ms INTEGER NOT NULL,"
	" PRIMARY KEY (event_key, action, route)) WITHOUT ROWID;"
	/* event_id and sent_ms are NULL until the homeserver accepted the send. */
	"CREATE TABLE txn ("
	" txn_id TEXT PRIMARY KEY, room TEXT NOT NULL, event_key TEXT NOT NULL,"
	" route TEXT NOT NULL, action TEXT NOT NULL, accepted_ms INTEGER NOT NULL,"
	" event_id TEXT, sent_ms INTEGER) WITHOUT ROWID;"
	/* id is the outbox id the item had, so a retry puts it back where it was. */
	"CREATE TABLE dead_letter ("
	" id INTEGER PRIMARY KEY,"
	" route TEXT NOT NULL, room TEXT NOT NULL, txn_id TEXT NOT NULL UNIQUE,"
	" event_key TEXT NOT NULL, action TEXT NOT NULL, content_json TEXT NOT NULL,"
	" attempts INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
	" reason TEXT NOT NULL, failed_ms INTEGER NOT NULL);"
	"CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

static int migrate_to_v1(sqlite3 *db) { return sqlite3_exec(db, schema_v1, NULL, NULL, NULL); }

/* Version 2, chatops: a failure message the room may claim, and the reactions that claim
 * or resolve it. A failure is found by the event id its message got; a claim by the id
 * of the reaction, which is what a redaction names. */
static const char schema_v2[] =
	"CREATE TABLE failure ("
	" txn_id TEXT PRIMARY KEY, room TEXT NOT NULL, route TEXT NOT NULL, event_key TEXT NOT NULL,"
	" content_json TEXT NOT NULL, opened_ms INTEGER NOT NULL, event_id TEXT,"
	" thread_key TEXT NOT NULL DEFAULT '', count INTEGER NOT NULL DEFAULT 1, last_ms INTEGER,"
	" recovered_ms INTEGER) WITHOUT ROWID;"
	"CREATE INDEX failure_event ON failure (event_id);"
	"CREATE INDEX failure_thread ON failure (route, thread_key);"
	"CREATE TABLE claim ("
	" reaction_event_id TEXT PRIMARY KEY, failure_txn TEXT NOT NULL, user_id TEXT NOT NULL,"
	" kind TEXT NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX claim_failure ON claim (failure_txn, at_ms);";

static int migrate_to_v2(sqlite3 *db) { return sqlite3_exec(db, schema_v2, NULL, NULL, NULL); }

/* Version 3, escalation: the steps (a bit mask, see rotation.h) already taken for an
 * unclaimed failure, so a restart neither repeats nor forgets a ping. */
static const char schema_v3[] = "ALTER TABLE failure ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;";

static int migrate_to_v3(sqlite3 *db) { return sqlite3_exec(db, schema_v3, NULL, NULL, NULL); }

/* Version 4: `txn` alone is the duplicate check. A txn id is derived from the report's
 * (key, action, route) (bridge_txn_id), so the dedup table held the same facts in a second
 * B-tree written for every report; txn rows now expire after dedup_retention instead
 * (store_prune_txns). Every dedup key of a version 3 database has its txn row. */
static const char schema_v4[] = "DROP TABLE IF EXISTS dedup;";

static int migrate_to_v4(sqlite3 *db) { return sqlite3_exec(db, schema_v4, NULL, NULL, NULL); }

/* Version 5, build details (issue #16; read and written by store_flaky.c): one row per
 * build the bridge saw end, so a failure can say whether it is new or flaky. Keyed by the
 * build's uuid, so a report delivered twice counts once; the job index serves "the last
 * runs of this job", the time index the retention. IF NOT EXISTS: tests (and a downgrade
 * and upgrade) may bring an older user_version with the table already there. */
static const char schema_v5[] =
	"CREATE TABLE IF NOT EXISTS job_run ("
	" build_uuid TEXT PRIMARY KEY, tenant TEXT NOT NULL, pipeline TEXT NOT NULL, project TEXT NOT NULL,"
	" branch TEXT NOT NULL, job TEXT NOT NULL, result TEXT NOT NULL, outcome INTEGER NOT NULL,"
	" at_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS job_run_job ON job_run (project, branch, job, at_ms);"
	"CREATE INDEX IF NOT EXISTS job_run_at ON job_run (at_ms);";

static int migrate_to_v5(sqlite3 *db) { return sqlite3_exec(db, schema_v5, NULL, NULL, NULL); }

/* ---- version 6: actions on Zuul (issue #17; read and written by store_actions.c) ----
 * One row per Matrix event that acts on Zuul, keyed by its event id and written before the
 * call, so an event seen again never acts twice; a dequeue or autohold waiting for its
 * asker's confirmation keeps what to send and the txn of the question. */
static const char schema_v6[] =
	"CREATE TABLE IF NOT EXISTS zuul_action ("
	" event_id TEXT PRIMARY KEY, kind TEXT NOT NULL, room TEXT NOT NULL, user_id TEXT NOT NULL,"
	" request_json TEXT, question_txn TEXT, state TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS zuul_action_question ON zuul_action (question_txn);"
	"CREATE INDEX IF NOT EXISTS zuul_action_created ON zuul_action (created_ms);";

static int migrate_to_v6(sqlite3 *db) { return sqlite3_exec(db, schema_v6, NULL, NULL, NULL); }
/* ---- end of version 6 ---- */

/* migrations[i] brings a database from user_version i to i + 1. */
static int (*const migrations[])(sqlite3 *db) = {
	migrate_to_v1,
	migrate_to_v2,
	migrate_to_v3,
	migrate_to_v4,
	migrate_to_v5,
	migrate_to_v6,
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- prepared statements (the ids: store_internal.h) ---- */


/* store.c's own; the outbox's and the failures' are in their files. */
static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_MAX_ID] = "SELECT max(coalesce((SELECT max(id) FROM outbox), 0),"
		     " coalesce((SELECT max(id) FROM dead_letter), 0))",
	[S_KV_GET] = "SELECT value FROM kv WHERE key = ?",
	[S_KV_SET] = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
	[S_KV_DELETE] = "DELETE FROM kv WHERE key = ?",
};

static const char *stmt_text(int i)
{
	return stmt_sql[i] ? stmt_sql[i] : store_outbox_sql[i] ? store_outbox_sql[i] : store_failures_sql[i];
}

struct store {
	sqlite3 *db;
	char *path;                 /* STATE_DIR/state.db, for log lines */
	char *dir;                  /* STATE_DIR, whose file system's free space counts */
	char *reserve_path;         /* STATE_DIR/state.db-reserve */
	char full_reason[160];      /* "": reports are taken; else why not (store_full_reason) */
	int wal_frames;             /* frames in the WAL after the last commit (wal hook) */
	sqlite3_stmt *stmt[S_COUNT];
	bool in_batch;              /* BEGIN IMMEDIATE issued, COMMIT not yet */
	/* SQLite rolled the open batch back on its own (a write that found the disk full, or
	 * another error): writes are refused until store_commit has reported the loss, so
	 * none of them lands outside a batch, committed alone. */
	bool batch_lost;
	bool batch_lost_full;       /* ...and the disk being full was why */
	int64_t batch_first_id;     /* next_id when the open batch began */
	int64_t lost_from_id;       /* the first outbox id of the last batch lost to a full disk */
	int64_t next_id;            /* the next outbox id: above every outbox and dead-letter id */
	char *prune_after;          /* where the next retention slice starts ("": the beginning) */
	sqlite3_stmt *helper_stmt[STORE_HELPER_STMTS]; /* store_flaky.c's, prepared on first use */
};

/* One line per failure: what the store was doing and what SQLite said. */
static void enter_full(struct store *st, const char *op);

static int fail(struct store *st, const char *op)
{
	log_kv(ZLOG_ERROR, "store: sqlite operation failed", "op", op, "db", st->path, "error",
	       sqlite3_errmsg(st->db), NULL);
	bool full = store_rc_is_full(st->db, sqlite3_extended_errcode(st->db));
	if (full)
		enter_full(st, op);
	/* SQLite undoes only the failed statement where it can, but a write that could not
	 * spill the page cache to a full disk may take the whole transaction with it. */
	if (st->in_batch && !st->batch_lost && sqlite3_get_autocommit(st->db)) {
		st->batch_lost = true;
		st->batch_lost_full = full;
	}
	return -1;
}

/* Prepared statements are reset and unbound before use, so a failed step never leaves
 * one holding a read lock or stale values. */
static sqlite3_stmt *use(struct store *st, enum store_stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* Steps a statement that returns no rows; resets it. 0 or -1 (logged). */
static int run(struct store *st, sqlite3_stmt *s, const char *op)
{
	if (st->batch_lost) { /* a write now would be committed alone, outside any batch */
		sqlite3_reset(s);
		return -1;
	}
	int rc = sqlite3_step(s);
	int result = rc == SQLITE_DONE ? 0 : fail(st, op);
	sqlite3_reset(s);
	return result;
}

static char *column_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return xstrdup(t ? (const char *)t : "");
}

/* Every write goes through here: the first one of a turn opens the batch. */
static int begin_batch(struct store *st)
{
	if (st->batch_lost)
		return -1; /* logged when it was lost; store_commit tells the caller */
	if (st->in_batch)
		return 0;
	if (run(st, use(st, S_BEGIN), "begin batch") < 0)
		return -1;
	st->in_batch = true;
	st->batch_first_id = st->next_id;
	return 0;
}

/* Checkpoints are ours, not SQLite's automatic ones (see on_wal_commit): a checkpoint that
 * fails for want of space, to grow state.db, must not look like a failed commit, since the
 * commit before it is durable. */
static void maybe_checkpoint(struct store *st)
{
	int limit = st->full_reason[0] ? STORE_FULL_CHECKPOINT_PAGES : STORE_WAL_CHECKPOINT_PAGES;
	if (st->wal_frames < limit)
		return;
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc == SQLITE_OK)
		st->wal_frames = 0;
	else
		fail(st, "checkpoint"); /* the WAL keeps the pages; the next commit tries again */
}

int store_commit(struct store *st)
{
	if (!st->in_batch)
		return 0;
	if (st->batch_lost) {
		/* Rolled back by SQLite when a write failed: nothing is left to commit. */
		bool full = st->batch_lost_full;
		st->batch_lost = st->batch_lost_full = false;
		st->in_batch = false;
		if (!full)
			return STORE_COMMIT_FAILED;
		st->lost_from_id = st->batch_first_id;
		log_kv(ZLOG_WARN, "store: the batch was rolled back: the disk was full", "db", st->path, NULL);
		return STORE_COMMIT_LOST_TO_FULL;
	}
	int rc = run(st, use(st, S_COMMIT), "commit batch");
	if (rc == 0) {
		st->in_batch = false;
		maybe_checkpoint(st);
		return STORE_COMMIT_OK;
	}
	bool full = store_rc_is_full(st->db, sqlite3_extended_errcode(st->db));
	/* A failed COMMIT may leave the transaction open (BUSY) or rolled back (I/O
	 * error); SQLite knows which. Out of space, it is rolled back for good. */
	st->batch_lost = st->batch_lost_full = false; /* fail() saw the COMMIT itself go */
	if (full && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_batch = !sqlite3_get_autocommit(st->db);
	if (!full || st->in_batch)
		return STORE_COMMIT_FAILED;
	st->lost_from_id = st->batch_first_id;
	return STORE_COMMIT_LOST_TO_FULL;
}

bool store_batch_lost(const struct store *st) { return st->batch_lost; }

int64_t store_lost_from_id(const struct store *st) { return st->lost_from_id; }

/* ---- space: the disk full ---- */

/* While the disk is full the -wal and -shm files keep their blocks when the store closes
 * (SQLite deletes them otherwise), so a restart on a disk that someone else filled to
 * the last byte meanwhile still finds them: it reads what it stored and writes its
 * deliveries' bookkeeping into blocks it has. */
static void keep_wal_files(struct store *st, bool keep)
{
	int on = keep;
	sqlite3_file_control(st->db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", keep ? -1 : STORE_WAL_KEEP_BYTES);
	sqlite3_exec(st->db, sql, NULL, NULL, NULL);
}

static void enter_full(struct store *st, const char *op)
{
	if (st->full_reason[0])
		return;
	snprintf(st->full_reason, sizeof st->full_reason, "state database: disk full");
	keep_wal_files(st, true);
	bool had_reserve = store_reserve_release(st->reserve_path);
	/* Part of the reserve goes to the files themselves, as blocks SQLite does not see:
	 * a WAL that cycles every STORE_FULL_CHECKPOINT_PAGES, and state.db's growth in
	 * checkpoints. Kept across a restart, they carry the deliveries even when whatever
	 * filled the disk takes the rest of the reserve too. */
	struct strbuf wal = STRBUF_INIT;
	strbuf_printf(&wal, "%s-wal", st->path);
	store_preallocate(strbuf_str(&wal), 0, STORE_FULL_SPARE_BYTES);
	store_preallocate(st->path, -1, STORE_FULL_SPARE_BYTES);
	strbuf_free(&wal);
	char free_text[32];
	snprintf(free_text, sizeof free_text, "%lld bytes", (long long)store_free_bytes(st->dir));
	log_kv(ZLOG_ERROR,
	       "state database: disk full; new reports are refused (not acknowledged: the broker keeps "
	       "them) while the stored ones are delivered",
	       "db", st->path, "noticed_at", op, "free", free_text, "reserve",
	       had_reserve ? "given back for the deliveries" : "none left", NULL);
}

const char *store_full_reason(const struct store *st) { return st->full_reason[0] ? st->full_reason : NULL; }

bool store_can_take_reports(struct store *st)
{
	if (st->full_reason[0])
		return false;
	int64_t free_bytes = store_free_bytes(st->dir);
	if (free_bytes >= 0 && free_bytes < STORE_LOW_SPACE_BYTES) {
		enter_full(st, "free space check");
		return false;
	}
	return true;
}

/* A reserve that cannot be made for another reason than space (a file system without
 * the blocks' accounting) is no reason to refuse reports. */
static bool lacks_space(int err) { return err == ENOSPC || err == EDQUOT; }

bool store_space_recheck(struct store *st)
{
	if (!st->full_reason[0])
		return true;
	int rc = store_reserve_make(st->reserve_path, STORE_RESERVE_BYTES);
	if (lacks_space(rc))
		return false;
	int64_t free_bytes = store_free_bytes(st->dir);
	if (free_bytes >= 0 && free_bytes < STORE_LOW_SPACE_BYTES) {
		store_reserve_release(st->reserve_path); /* room for the deliveries, not for reports */
		return false;
	}
	st->full_reason[0] = '\0';
	keep_wal_files(st, false);
	char free_text[32];
	snprintf(free_text, sizeof free_text, "%lld bytes", (long long)free_bytes);
	log_kv(ZLOG_INFO, "state database: the disk has room again; taking reports", "db", st->path, "free",
	       free_text, NULL);
	return true;
}

bool store_in_batch(const struct store *st) { return st->in_batch; }

/* ---- open / close ---- */

static int make_state_dir(const char *dir, char *err, size_t errlen)
{
	struct stat sb;
	if (stat(dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode)) {
			snprintf(err, errlen, "%s: not a directory", dir);
			return -1;
		}
		return 0; /* an existing directory keeps the mode its owner gave it */
	}
	if (errno != ENOENT || mkdir(dir, 0700) < 0 || chmod(dir, 0700) < 0) {
		snprintf(err, errlen, "%s: cannot create state directory: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* SQLite would create the file 0644 (less the umask); create it ourselves, 0600,
 * so that the -wal and -shm files, which copy its mode, are private too. */
static int precreate_db_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = fchmod(fd, 0600);
	int saved = errno;
	close(fd);
	if (rc < 0) {
		snprintf(err, errlen, "%s: chmod 0600: %s", path, strerror(saved));
		return -1;
	}
	return 0;
}

static int get_user_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Brings the schema to SCHEMA_VERSION, one version per transaction. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	int version;
	if (get_user_version(db, &version) < 0) {
		snprintf(err, errlen, "%s: reading schema version: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	if (version > SCHEMA_VERSION || version < 0) {
		snprintf(err, errlen,
			 "%s: schema version %d is newer than this build understands (%d);"
			 " refusing to open it (was the bridge downgraded?)",
			 path, version, SCHEMA_VERSION);
		return -1;
	}
	for (; version < SCHEMA_VERSION; version++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
		    migrations[version](db) != SQLITE_OK ||
		    sqlite3_exec(db, bump, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: migrating schema to version %d: %s", path, version + 1,
				 sqlite3_errmsg(db));
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_msgf(ZLOG_INFO, "store: %s migrated to schema version %d", path, version + 1);
	}
	return 0;
}

/* journal_mode answers with the mode it got: a filesystem without shared memory
 * support silently stays in "delete", which we refuse rather than run slowly. */
static int configure(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	int rc = sqlite3_step(s);
	bool wal = rc == SQLITE_ROW && sqlite3_column_text(s, 0) &&
		   strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
	sqlite3_finalize(s);
	if (!wal) {
		snprintf(err, errlen, "%s: cannot enable WAL journal: %s", path,
			 rc == SQLITE_ROW ? "unsupported here" : sqlite3_errmsg(db));
		return -1;
	}
	/* FULL: a report acknowledged to the broker must survive power loss, so every
	 * commit fsyncs the WAL.
	 * Checkpoints run inside a commit and block the loop for milliseconds (copy every
	 * page the WAL changed, two fsyncs): at SQLite's default of 1000 frames that was once
	 * a second at 200 reports/s and the main source of the p99 latency. The outbox's
	 * pages are rewritten over and over, so a longer WAL makes checkpoints rarer without
	 * making each one much longer (STORE_WAL_CHECKPOINT_PAGES, run by store_commit rather
	 * than SQLite, see on_wal_commit); journal_size_limit truncates the WAL file back
	 * after a checkpoint so it does not keep its largest size on disk. */
	char pragmas[256];
	snprintf(pragmas, sizeof pragmas,
		 "PRAGMA synchronous = FULL;"
		 "PRAGMA foreign_keys = ON;"
		 "PRAGMA busy_timeout = 5000;"
		 "PRAGMA journal_size_limit = %d;",
		 STORE_WAL_KEEP_BYTES);
	if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* Replaces SQLite's automatic checkpoint (which would run inside COMMIT and make a
 * durable commit report the checkpoint's failure): counts the WAL, store_commit decides. */
static int on_wal_commit(void *data, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct store *)data)->wal_frames = frames;
	return SQLITE_OK;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* A first start: the database is made whole under another name and renamed to state.db,
 * so that state.db never exists empty: an empty one is always damage (store_check.c). */
static int create_fresh(const char *state_dir, const char *path, char *err, size_t errlen)
{
	struct strbuf tmp = STRBUF_INIT;
	strbuf_printf(&tmp, "%s.new", path);
	const char *tmp_path = strbuf_str(&tmp);
	sqlite3 *db = NULL;
	int result = -1;
	if (precreate_db_file(tmp_path, err, errlen) < 0)
		goto out;
	int rc = sqlite3_open_v2(tmp_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", tmp_path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	if (configure(db, tmp_path, err, errlen) < 0 || migrate(db, tmp_path, err, errlen) < 0)
		goto out;
	/* Closing checkpoints the WAL into the file (synchronous=FULL: with an fsync). */
	rc = sqlite3_close(db);
	db = NULL;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: closing the new database: %s", tmp_path, sqlite3_errstr(rc));
		goto out;
	}
	if (rename(tmp_path, path) < 0 || fsync_dir(state_dir) < 0) {
		snprintf(err, errlen, "%s: cannot create the state database: %s", path, strerror(errno));
		goto out;
	}
	log_kv(ZLOG_INFO, "store: new state database created", "db", path, NULL);
	result = 0;
out:
	sqlite3_close(db);
	if (result < 0)
		unlink(tmp_path);
	strbuf_free(&tmp);
	return result;
}

/* Opens the database and checks it before anything writes to it. */
static int open_checked(struct store *st, enum store_open_failure *why, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", st->path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		*why = store_rc_is_damage(rc) ? STORE_OPEN_DAMAGED : STORE_OPEN_FAILED;
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	rc = store_quick_check(st->db, st->path, err, errlen);
	if (rc != 0) {
		/* Unreadable is damaged too, unless it was only the disk being full. */
		bool unreadable = (rc & 0xff) == SQLITE_IOERR && !store_rc_is_full(st->db, rc);
		*why = rc < 0 || store_rc_is_damage(rc) || unreadable ? STORE_OPEN_DAMAGED : STORE_OPEN_FAILED;
		if (rc > 0 && store_rc_is_full(st->db, rc))
			snprintf(err, errlen, "%s: no space left on the device for its -wal and -shm files (%s)",
				 st->path, sqlite3_errstr(rc));
		return -1;
	}
	if (configure(st->db, st->path, err, errlen) < 0 || migrate(st->db, st->path, err, errlen) < 0) {
		*why = store_rc_is_damage(sqlite3_extended_errcode(st->db)) ? STORE_OPEN_DAMAGED : STORE_OPEN_FAILED;
		return -1;
	}
	sqlite3_wal_hook(st->db, on_wal_commit, st);
	/* Reading a WAL back counts none of its frames as copied into state.db yet, and a
	 * WAL is written over from its start only once they all are: without this, the first
	 * commit would append behind a WAL that a full disk cannot grow (a WAL kept on a full
	 * disk, or left by a crash). Nothing to do when the WAL is empty. */
	if (sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
		log_kv(ZLOG_WARN, "store: cannot checkpoint the WAL at open; carrying on", "db", st->path, "error",
		       sqlite3_errmsg(st->db), NULL);
	return 0;
}

struct store *store_open_checked(const char *state_dir, enum store_open_failure *why, char *err, size_t errlen)
{
	enum store_open_failure ignored;
	if (!why)
		why = &ignored;
	*why = STORE_OPEN_FAILED;
	if (make_state_dir(state_dir, err, errlen) < 0)
		return NULL;
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/state.db", state_dir);
	struct store *st = xcalloc(1, sizeof *st);
	st->path = strbuf_detach(&path);
	st->dir = xstrdup(state_dir);
	strbuf_printf(&path, "%s-reserve", st->path);
	st->reserve_path = strbuf_detach(&path);

	switch (store_check_files(st->path, err, errlen)) {
	case STORE_FILE_DAMAGED:
		*why = STORE_OPEN_DAMAGED;
		goto fail;
	case STORE_FILE_MISSING:
		if (create_fresh(state_dir, st->path, err, errlen) < 0)
			goto fail;
		break;
	case STORE_FILE_PRESENT:
		break;
	}
	/* On a full disk the reserve is what lets SQLite make its -shm and -wal files and
	 * read back what a crash left in the WAL: give it back first, take it again after. */
	store_reserve_release(st->reserve_path);
	if (open_checked(st, why, err, errlen) < 0)
		goto fail;
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_text(i), -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing \"%s\": %s", st->path, stmt_text(i),
				 sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	sqlite3_stmt *s = use(st, S_MAX_ID);
	if (sqlite3_step(s) != SQLITE_ROW) {
		snprintf(err, errlen, "%s: reading the largest outbox id: %s", st->path, sqlite3_errmsg(st->db));
		sqlite3_reset(s);
		goto fail;
	}
	st->next_id = sqlite3_column_int64(s, 0) + 1;
	sqlite3_reset(s);
	int reserve = store_reserve_make(st->reserve_path, STORE_RESERVE_BYTES);
	if (lacks_space(reserve))
		enter_full(st, "open: making the reserve");
	else if (reserve != 0)
		log_kv(ZLOG_WARN, "store: no reserve for a full disk", "file", st->reserve_path, "error",
		       strerror(reserve), NULL);
	else
		store_can_take_reports(st); /* the reserve fits, but is what is left enough? */
	return st;
fail:
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st->path);
	free(st->dir);
	free(st->reserve_path);
	free(st);
	return NULL;
}

struct store *store_open(const char *state_dir, char *err, size_t errlen)
{
	return store_open_checked(state_dir, NULL, err, errlen);
}

struct store *store_open_readonly(const char *state_dir, char *err, size_t errlen)
{
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/state.db", state_dir);
	struct store *st = xcalloc(1, sizeof *st);
	st->path = strbuf_detach(&path);
	st->dir = xstrdup(state_dir);
	/* Not created, checked, migrated, configured or given a reserve: all of that is
	 * the running bridge's business. A reader in WAL mode sees its last commit. */
	int rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		sqlite3_busy_timeout(st->db, 5000);
	for (int i = 0; rc == SQLITE_OK && i < S_COUNT; i++)
		rc = sqlite3_prepare_v3(st->db, stmt_text(i), -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", st->path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		for (int i = 0; i < S_COUNT; i++)
			sqlite3_finalize(st->stmt[i]);
		sqlite3_close(st->db);
		free(st->path);
		free(st->dir);
		free(st);
		return NULL;
	}
	return st;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	store_commit(st);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	for (int i = 0; i < STORE_HELPER_STMTS; i++)
		sqlite3_finalize(st->helper_stmt[i]);
	if (sqlite3_close(st->db) != SQLITE_OK)
		fail(st, "close");
	free(st->path);
	free(st->dir);
	free(st->reserve_path);
	free(st->prune_after);
	free(st);
}

/* ---- compaction ---- */

static int64_t pragma_int(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

int64_t store_size_bytes(struct store *st)
{
	int64_t page = pragma_int(st, "PRAGMA page_size"), pages = pragma_int(st, "PRAGMA page_count");
	return page > 0 && pages >= 0 ? page * pages : -1;
}

int store_compact(struct store *st, int64_t min_free_bytes, int64_t *before, int64_t *after)
{
	int64_t page = pragma_int(st, "PRAGMA page_size");
	int64_t pages = pragma_int(st, "PRAGMA page_count");
	int64_t free_pages = pragma_int(st, "PRAGMA freelist_count");
	if (page <= 0 || pages < 0 || free_pages < 0)
		return fail(st, "compact: page counts");
	*before = *after = pages * page;
	/* Worth a pause only when much is free, and a quarter of the file at least; never on
	 * a full disk, where the VACUUM's copy in the WAL would take what the deliveries need. */
	if (st->full_reason[0] || free_pages * page < min_free_bytes || free_pages * 4 < pages || store_outbox_depth(st) > 0)
		return 0;
	int committed = store_commit(st);
	if (committed == STORE_COMMIT_LOST_TO_FULL) {
		/* The caller's batch, lost here: its own store_commit reports it (with the ids it
		 * gave), so the loss is taken in where the batch's other commits are. */
		st->in_batch = st->batch_lost = st->batch_lost_full = true;
		return -1;
	}
	if (committed != STORE_COMMIT_OK)
		return -1;
	if (sqlite3_exec(st->db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
		return fail(st, "compact: vacuum");
	/* The rewritten pages are in the WAL: checkpoint them, so the file itself shrinks. */
	if (sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK)
		return fail(st, "compact: checkpoint");
	*after = store_size_bytes(st);
	return 1;
}

/* ---- key/value ---- */

char *store_kv_get(struct store *st, const char *key)
{
	sqlite3_stmt *s = use(st, S_KV_GET);
	bind_text(s, 1, key);
	char *value = NULL;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		value = column_dup(s, 0);
	else if (rc != SQLITE_DONE)
		fail(st, "kv get");
	sqlite3_reset(s);
	return value;
}

int store_kv_set(struct store *st, const char *key, const char *value)
{
	if (begin_batch(st) < 0)
		return -1;
	sqlite3_stmt *s = use(st, value ? S_KV_SET : S_KV_DELETE);
	bind_text(s, 1, key);
	if (value)
		bind_text(s, 2, value);
	return run(st, s, value ? "kv set" : "kv delete");
}

/* ---- for the tables' files: store_outbox.c, store_failures.c, store_flaky.c,
 * store_actions.c (store_internal.h) ---- */

sqlite3_stmt *store_internal_use(struct store *st, enum store_stmt_id id) { return use(st, id); }

int store_internal_run(struct store *st, sqlite3_stmt *s, const char *op) { return run(st, s, op); }

void store_internal_bind_text(sqlite3_stmt *s, int i, const char *v) { bind_text(s, i, v); }

char *store_internal_column_dup(sqlite3_stmt *s, int col) { return column_dup(s, col); }

int64_t *store_internal_next_id(struct store *st) { return &st->next_id; }

char **store_internal_prune_after(struct store *st) { return &st->prune_after; }

sqlite3 *store_internal_db(struct store *st) { return st->db; }

int store_internal_begin(struct store *st) { return begin_batch(st); }

int store_internal_fail(struct store *st, const char *op) { return fail(st, op); }

sqlite3_stmt **store_internal_stmt_slot(struct store *st, int i)
{
	return i >= 0 && i < STORE_HELPER_STMTS ? &st->helper_stmt[i] : NULL;
}

sqlite3_stmt *store_internal_prepare(struct store *st, int slot, const char *sql, const char *op)
{
	sqlite3_stmt **s = store_internal_stmt_slot(st, slot);
	if (!s)
		return NULL;
	if (!*s && sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL) != SQLITE_OK) {
		fail(st, op);
		*s = NULL;
		return NULL;
	}
	sqlite3_reset(*s);
	sqlite3_clear_bindings(*s);
	return *s;
}

void store_internal_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}
