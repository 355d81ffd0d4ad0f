/* Tests of store_open's checks against real files: a state database the store made,
 * then emptied, corrupted (an index page, the WAL header) or replaced, must be refused
 * as damaged with the path and the fault; a missing one is a first start. */
#include "store.h"

#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "test.h"

static char base_dir[64];   /* mkdtemp()ed per test */
static char state_dir[128]; /* base_dir/state */
static char db_path[160];   /* state_dir/state.db */
static char err[512];

static void fresh_dirs(void)
{
	snprintf(base_dir, sizeof base_dir, "/tmp/zmb-store-open-XXXXXX");
	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(state_dir, sizeof state_dir, "%s/state", base_dir);
	snprintf(db_path, sizeof db_path, "%s/state.db", state_dir);
	err[0] = '\0';
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_dirs(void) { nftw(base_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

static int push(struct store *st, int i)
{
	char key[32], txn[64];
	snprintf(key, sizeof key, "buildset-%04d", i);
	snprintf(txn, sizeof txn, "zmb.r.failure.%s", key);
	return store_outbox_push(st, "r", "!room:example.org", txn, key, "failure",
				 "{\"msgtype\":\"m.text\",\"body\":\"a report of some length to fill pages\"}", i, NULL);
}

/* A database made by the store with n reports queued, closed cleanly. */
static void make_state_db(int n)
{
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st)
		return;
	for (int i = 0; i < n; i++)
		push(st, i);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
}

/* Opens and expects a refusal as damaged whose message contains want. */
static void expect_damaged(const char *want)
{
	enum store_open_failure why = STORE_OPEN_FAILED;
	struct store *st = store_open_checked(state_dir, &why, err, sizeof err);
	CHECK(st == NULL);
	store_close(st);
	CHECK_INT(why, STORE_OPEN_DAMAGED);
	CHECK_CONTAINS(err, state_dir);
	CHECK_CONTAINS(err, want);
}

static void write_at(const char *path, off_t offset, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(pwrite(fd, bytes, len, offset), (long long)len);
	close(fd);
}

static off_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void test_a_missing_database_is_a_first_start(void)
{
	fresh_dirs();
	enum store_open_failure why = STORE_OPEN_DAMAGED;
	struct store *st = store_open_checked(state_dir, &why, err, sizeof err);
	CHECK(st != NULL);
	CHECK_STR(st ? store_full_reason(st) : "no store", NULL);
	CHECK_INT(push(st, 1), 1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	/* Made whole under another name and renamed: never an empty state.db, no leftover. */
	CHECK(file_size(db_path) > 0);
	char tmp[200];
	snprintf(tmp, sizeof tmp, "%s.new", db_path);
	CHECK_INT(access(tmp, F_OK), -1);
	st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	CHECK_INT(st ? store_outbox_depth(st) : 0, 1);
	store_close(st);
	remove_dirs();
}

static void test_an_empty_database_file_is_refused(void)
{
	fresh_dirs();
	make_state_db(3);
	CHECK_INT(truncate(db_path, 0), 0);
	expect_damaged("exists but is empty (0 bytes)");
	CHECK_INT(file_size(db_path), 0); /* left as found, for the operator to decide */
	remove_dirs();
}

static void test_a_file_that_is_not_sqlite_is_refused(void)
{
	fresh_dirs();
	make_state_db(1);
	static const char junk[] = "this is no database at all, just a text file of some length.....";
	write_at(db_path, 0, junk, sizeof junk);
	expect_damaged("not an SQLite database");
	remove_dirs();
}

/* The outbox's (room, id) index: its root page gets garbage over its header. */
static void test_a_corrupt_index_page_fails_quick_check_and_is_refused(void)
{
	fresh_dirs();
	make_state_db(200);
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int root = -1, page_size = -1;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master"
				   " WHERE name = 'outbox_room'", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		root = sqlite3_column_int(s, 0);
		page_size = sqlite3_column_int(s, 1);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	CHECK(root > 1);
	CHECK(page_size >= 512);
	if (root > 1 && page_size >= 512) {
		unsigned char garbage[64];
		memset(garbage, 0xA5, sizeof garbage);
		write_at(db_path, (off_t)(root - 1) * page_size, garbage, sizeof garbage);
	}
	expect_damaged("PRAGMA quick_check failed");
	remove_dirs();
}

/* A crash leaves committed reports in the WAL: the child commits and exits unclosed. */
static void crash_after_commit(int n)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *st = store_open(state_dir, err, sizeof err);
		if (!st)
			_exit(2);
		for (int i = 0; i < n; i++)
			push(st, i);
		_exit(store_commit(st) == 0 ? 0 : 3);
	}
	int status = 0;
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_a_wal_with_a_bad_header_is_refused_instead_of_ignored(void)
{
	fresh_dirs();
	crash_after_commit(50);
	char wal[200];
	snprintf(wal, sizeof wal, "%s-wal", db_path);
	CHECK(file_size(wal) > 32); /* the 50 reports are in it (test_store: a sound WAL survives) */
	static const char junk[32] = "not a WAL header, just garbage!";
	write_at(wal, 0, junk, sizeof junk);
	expect_damaged("the write-ahead log has no valid header");
	CHECK_CONTAINS(err, "state.db-wal");
	CHECK(file_size(wal) > 32); /* SQLite did not get to reset it */
	remove_dirs();
}

static void test_an_unreadable_wal_is_refused(void)
{
	fresh_dirs();
	make_state_db(1);
	char wal[200];
	snprintf(wal, sizeof wal, "%s-wal", db_path);
	CHECK_INT(mkdir(wal, 0700), 0); /* read(2) fails on it, even for root */
	expect_damaged("cannot read the write-ahead log");
	remove_dirs();
}

static void test_a_state_dir_that_cannot_be_made_is_no_damage(void)
{
	fresh_dirs();
	FILE *f = fopen(state_dir, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	enum store_open_failure why = STORE_OPEN_DAMAGED;
	struct store *st = store_open_checked(state_dir, &why, err, sizeof err);
	CHECK(st == NULL);
	CHECK_INT(why, STORE_OPEN_FAILED);
	CHECK_CONTAINS(err, "not a directory");
	remove_dirs();
}

static void test_open_keeps_a_reserve_beside_the_database(void)
{
	fresh_dirs();
	make_state_db(1);
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	char reserve[200];
	snprintf(reserve, sizeof reserve, "%s-reserve", db_path);
	struct stat sb;
	CHECK_INT(stat(reserve, &sb), 0);
	CHECK_INT(sb.st_mode & 07777, 0600);
	CHECK_INT(sb.st_size, 8 * 1024 * 1024);
	CHECK((long long)sb.st_blocks * 512 >= 8LL * 1024 * 1024); /* allocated, not sparse */
	CHECK(st && store_can_take_reports(st));
	store_close(st);
	remove_dirs();
}

int main(void)
{
	log_set_level(ZLOG_ERROR);
	FILE *devnull = fopen("/dev/null", "w");
	log_set_stream(devnull);
	RUN(test_a_missing_database_is_a_first_start);
	RUN(test_an_empty_database_file_is_refused);
	RUN(test_a_file_that_is_not_sqlite_is_refused);
	RUN(test_a_corrupt_index_page_fails_quick_check_and_is_refused);
	RUN(test_a_wal_with_a_bad_header_is_refused_instead_of_ignored);
	RUN(test_an_unreadable_wal_is_refused);
	RUN(test_a_state_dir_that_cannot_be_made_is_no_damage);
	RUN(test_open_keeps_a_reserve_beside_the_database);
	int rc = test_done();
	fclose(devnull);
	return rc;
}
