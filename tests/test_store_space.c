/* Tests of the store on a full disk, a real one: a small tmpfs mounted for the test
 * (needs root; skipped with the reason otherwise) filled up to ENOSPC by a filler file.
 * Reports are refused, deliveries' bookkeeping still commits, a restart opens and reads
 * the outbox, and once the filler is gone reports are taken again. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "test.h"

/* Room for the database, the WAL and the 8 MiB reserve, small enough to fill quickly. */
#define DISK_SIZE "size=24m"

static char base_dir[64];   /* mkdtemp()ed, holds the mount point */
static char disk_dir[128];  /* the tmpfs */
static char state_dir[160]; /* disk_dir/state */
static char filler[160];    /* disk_dir/filler: what fills the disk */
static char reserve[200];   /* state_dir/state.db-reserve */
static char err[512];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Writes the filler until the disk says ENOSPC. Returns the bytes written. */
static long long fill_disk(void)
{
	int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return -1;
	static char block[64 * 1024];
	long long total = 0;
	size_t chunk = sizeof block;
	for (;;) {
		ssize_t n = write(fd, block, chunk);
		if (n > 0) {
			total += n;
			continue;
		}
		if (n < 0 && errno == ENOSPC && chunk > 1) {
			chunk /= 2; /* the last blocks too */
			continue;
		}
		break;
	}
	close(fd);
	return total;
}

static int push(struct store *st, int i)
{
	char key[32], txn[64];
	snprintf(key, sizeof key, "buildset-%04d", i);
	snprintf(txn, sizeof txn, "zmb.r.failure.%s", key);
	return store_outbox_push(st, "r", "!room:example.org", txn, key, "failure",
				 "{\"msgtype\":\"m.text\",\"body\":\"a failure report\"}", 1000 + i, NULL);
}

/* Delivers the n oldest items, one commit each, as the deliverer's bookkeeping does. */
static int deliver_oldest(struct store *st, size_t n)
{
	struct outbox_item *items;
	size_t k;
	if (store_outbox_load(st, &items, &k) != 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < k && i < n && rc == 0; i++) {
		char event_id[64];
		snprintf(event_id, sizeof event_id, "$event-%lld", (long long)items[i].id);
		rc = store_outbox_delivered(st, items[i].id, items[i].txn_id, event_id, 5000);
		if (rc == 0)
			rc = store_commit(st);
	}
	store_items_free(items, k);
	return rc;
}

static void test_a_full_disk_refuses_reports_delivers_stored_ones_and_recovers(void)
{
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st) {
		printf("# %s\n", err);
		return;
	}
	for (int i = 0; i < 40; i++)
		CHECK_INT(push(st, i), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(access(reserve, F_OK), 0);

	CHECK(fill_disk() > 0);
	CHECK(!store_can_take_reports(st));
	CHECK_STR(store_full_reason(st), "state database: disk full");
	CHECK_INT(access(reserve, F_OK), -1); /* given back for the deliveries */
	CHECK_INT(push(st, 100), -1);         /* refused, nothing written */
	CHECK_INT(store_outbox_depth(st), 40);
	CHECK_INT(deliver_oldest(st, 15), 0); /* bookkeeping commits on the full disk */
	CHECK_INT(store_outbox_depth(st), 25);
	char *eid = store_sent_event_id(st, "zmb.r.failure.buildset-0000");
	CHECK_STR(eid, "$event-1");
	free(eid);
	CHECK(!store_space_recheck(st)); /* still full */

	/* A restart on the full disk: it opens (full), reads the outbox and goes on. */
	store_close(st);
	fill_disk(); /* whatever the close gave back is taken too, but for the reserve's worth */
	st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st) {
		printf("# reopen: %s\n", err);
		return;
	}
	CHECK_STR(store_full_reason(st), "state database: disk full");
	CHECK_INT(store_outbox_depth(st), 25);
	CHECK_INT(deliver_oldest(st, 25), 0);
	CHECK_INT(store_outbox_depth(st), 0);
	CHECK_INT(push(st, 101), -1);

	/* Space again: the reserve is taken back and reports flow. */
	CHECK_INT(unlink(filler), 0);
	CHECK(store_space_recheck(st));
	CHECK_STR(store_full_reason(st), NULL);
	CHECK_INT(access(reserve, F_OK), 0);
	CHECK(store_can_take_reports(st));
	CHECK_INT(push(st, 100), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_outbox_depth(st), 1);
	store_close(st);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP a real full disk needs a tmpfs, and mounting one needs root\n");
		return 0;
	}
	snprintf(base_dir, sizeof base_dir, "/tmp/zmb-store-space-XXXXXX");
	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(disk_dir, sizeof disk_dir, "%s/disk", base_dir);
	snprintf(state_dir, sizeof state_dir, "%s/state", disk_dir);
	snprintf(filler, sizeof filler, "%s/filler", disk_dir);
	snprintf(reserve, sizeof reserve, "%s/state.db-reserve", state_dir);
	if (mkdir(disk_dir, 0700) < 0 || mount("tmpfs", disk_dir, "tmpfs", MS_NOSUID | MS_NODEV, DISK_SIZE) < 0) {
		printf("1..0 # SKIP cannot mount a tmpfs on %s: %s\n", disk_dir, strerror(errno));
		rmdir(disk_dir);
		rmdir(base_dir);
		return 0;
	}
	log_set_level(ZLOG_ERROR);
	FILE *devnull = fopen("/dev/null", "w");
	if (!getenv("ZMB_TEST_LOG")) log_set_stream(devnull);
	RUN(test_a_full_disk_refuses_reports_delivers_stored_ones_and_recovers);
	if (umount2(disk_dir, MNT_DETACH) < 0)
		printf("# umount %s: %s\n", disk_dir, strerror(errno));
	nftw(base_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	fclose(devnull);
	return test_done();
}
