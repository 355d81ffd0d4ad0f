/* store_space: a full disk must not stop the bridge from delivering what it stored. A
 * reserve file beside state.db holds blocks the store gives back the moment space runs
 * out, so the WAL frames of deliveries and the -shm of a restart still find room. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int64_t store_free_bytes(const char *path)
{
	struct statvfs vfs;
	if (statvfs(path, &vfs) < 0)
		return -1;
	return (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
}

int store_reserve_make(const char *reserve_path, int64_t bytes)
{
	int fd = open(reserve_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	struct stat sb;
	/* Whole already: a file's blocks (512 bytes each) cover its size. */
	if (fstat(fd, &sb) == 0 && sb.st_size >= bytes && (int64_t)sb.st_blocks * 512 >= bytes) {
		close(fd);
		return 0;
	}
	/* Real blocks, not a sparse length: only allocated blocks can be given back. */
	int rc = posix_fallocate(fd, 0, (off_t)bytes);
	close(fd);
	if (rc != 0)
		unlink(reserve_path); /* a part of it would only hold space nobody counts on */
	return rc;
}

int store_preallocate(const char *path, int64_t offset, int64_t bytes)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (offset < 0) {
		struct stat sb;
		offset = fstat(fd, &sb) == 0 ? sb.st_size : 0;
	}
	/* KEEP_SIZE: SQLite sees the file as it was; its writes past the end find blocks. */
	int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)bytes) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

int store_reserve_release(const char *reserve_path)
{
	return unlink(reserve_path) == 0;
}

int store_rc_is_full(sqlite3 *db, int rc)
{
	if ((rc & 0xff) == SQLITE_FULL)
		return true;
	int sys = db ? sqlite3_system_errno(db) : 0;
	return (rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT);
}
