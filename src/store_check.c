/* store_check: is the state database on disk one the bridge may start on? SQLite forgives
 * too much here: it takes an empty file for a new database and a WAL whose header it
 * cannot read for an empty WAL, and both times the reports it held are gone in silence. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

#define SQLITE_HEADER "SQLite format 3"
#define WAL_HEADER_BYTES 32
#define WAL_MAGIC_LE 0x377f0682u /* checksums little-endian */
#define WAL_MAGIC_BE 0x377f0683u /* checksums big-endian */
#define QUICK_CHECK_LINES 5

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

/* Reads the first `want` bytes of path. Returns how many were read (short: the file is
 * shorter), or -1 with errno. */
static ssize_t read_head(const char *path, unsigned char *buf, size_t want)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return (ssize_t)got;
}

/* The WAL header's checksum (https://sqlite.org/fileformat2.html#walformat): over its
 * first 24 bytes, in the byte order the magic number names. */
static bool wal_header_valid(const unsigned char *h)
{
	uint32_t magic = get_be32(h);
	if (magic != WAL_MAGIC_LE && magic != WAL_MAGIC_BE)
		return false;
	bool big = magic & 1;
	uint32_t s1 = 0, s2 = 0;
	for (int i = 0; i < 24; i += 8) {
		uint32_t x0 = big ? get_be32(h + i) : get_le32(h + i);
		uint32_t x1 = big ? get_be32(h + i + 4) : get_le32(h + i + 4);
		s1 += x0 + s2;
		s2 += x1 + s1;
	}
	return s1 == get_be32(h + 24) && s2 == get_be32(h + 28);
}

static enum store_file_state damaged(char *err, size_t errlen, const char *fmt, const char *path, const char *what)
{
	snprintf(err, errlen, fmt, path, what);
	return STORE_FILE_DAMAGED;
}

static enum store_file_state check_wal(const char *db_path, char *err, size_t errlen)
{
	struct strbuf wal = STRBUF_INIT;
	strbuf_printf(&wal, "%s-wal", db_path);
	const char *path = strbuf_str(&wal);
	enum store_file_state result = STORE_FILE_PRESENT;
	struct stat sb;
	unsigned char head[WAL_HEADER_BYTES];
	if (stat(path, &sb) < 0) {
		if (errno != ENOENT) /* no WAL: the last run closed cleanly */
			result = damaged(err, errlen, "%s: cannot read the write-ahead log: %s", path, strerror(errno));
	} else if (sb.st_size == 0 && S_ISREG(sb.st_mode)) {
		/* Empty: opened and nothing committed since, or reset. Nothing to lose. */
	} else {
		ssize_t n = read_head(path, head, sizeof head);
		if (n < 0)
			result = damaged(err, errlen, "%s: cannot read the write-ahead log: %s", path, strerror(errno));
		else if ((size_t)n < sizeof head || !wal_header_valid(head))
			result = damaged(err, errlen,
					 "%s: the write-ahead log has no valid header%s (SQLite would ignore it and "
					 "lose the reports committed in it)",
					 path, (size_t)n < sizeof head ? " (shorter than 32 bytes)" : "");
	}
	strbuf_free(&wal);
	return result;
}

enum store_file_state store_check_files(const char *db_path, char *err, size_t errlen)
{
	struct stat sb;
	if (stat(db_path, &sb) < 0) {
		if (errno == ENOENT)
			return STORE_FILE_MISSING;
		return damaged(err, errlen, "%s: cannot read the state database: %s", db_path, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode))
		return damaged(err, errlen, "%s: %s", db_path, "not a regular file");
	/* The store creates state.db whole (store_open: created under another name, then
	 * renamed), so an empty one is damage, not a first start. */
	if (sb.st_size == 0)
		return damaged(err, errlen, "%s: the state database exists but is empty (0 bytes)%s", db_path,
			       ": the reports, transaction ids and failure threads it held are lost");
	unsigned char head[sizeof SQLITE_HEADER];
	ssize_t n = read_head(db_path, head, sizeof head);
	if (n < 0)
		return damaged(err, errlen, "%s: cannot read the state database: %s", db_path, strerror(errno));
	if ((size_t)n < sizeof head || memcmp(head, SQLITE_HEADER, sizeof head) != 0)
		return damaged(err, errlen, "%s: %s", db_path, "not an SQLite database (its header is wrong)");
	return check_wal(db_path, err, errlen);
}

int store_quick_check(sqlite3 *db, const char *db_path, char *err, size_t errlen)
{
	char sql[48];
	snprintf(sql, sizeof sql, "PRAGMA quick_check(%d)", QUICK_CHECK_LINES);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	struct strbuf found = STRBUF_INIT;
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *line = sqlite3_column_text(s, 0);
		strbuf_printf(&found, "%s%s", found.len ? "; " : "", line ? (const char *)line : "");
		rc = SQLITE_OK;
	}
	int result = 0;
	if (rc != SQLITE_DONE) {
		result = sqlite3_extended_errcode(db);
		snprintf(err, errlen, "%s: PRAGMA quick_check could not read it: %s", db_path, sqlite3_errmsg(db));
		if (result <= 0)
			result = SQLITE_ERROR;
	} else if (strcmp(strbuf_str(&found), "ok") != 0) {
		snprintf(err, errlen, "%s: PRAGMA quick_check failed: %s", db_path, strbuf_str(&found));
		result = -1;
	}
	sqlite3_finalize(s);
	strbuf_free(&found);
	return result;
}

int store_rc_is_damage(int rc)
{
	int primary = rc & 0xff;
	return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}
