/* Tests of the store on a full disk, a real one: a small tmpfs mounted for the test
 * (needs root; skipped with the reason otherwise) filled up to ENOSPC by a filler file.
 * Reports are refused, deliveries' bookkeeping still commits, a restart opens and reads
 * the outbox, and once the filler is gone reports are taken again. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
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

/* Records the delivery of the n oldest items in the open batch, without committing. */
static int deliver_oldest_uncommitted(struct store *st, size_t n)
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
	}
	store_items_free(items, k);
	return rc;
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

/* ---- a batch the disk fills under: rolled back whole ---- */

/* Each test below begins with no state_dir (the filler is gone too). */
static void fresh_state(void)
{
	unlink(filler);
	nftw(state_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int push_sized(struct store *st, const char *prefix, int i, size_t bytes)
{
	char key[48], txn[80];
	snprintf(key, sizeof key, "%s-%04d", prefix, i);
	snprintf(txn, sizeof txn, "zmb.r.failure.%s", key);
	char *content = malloc(bytes + 32);
	snprintf(content, bytes + 32, "{\"msgtype\":\"m.text\",\"body\":\"");
	size_t at = strlen(content);
	memset(content + at, 'x', bytes);
	strcpy(content + at + bytes, "\"}");
	int rc = store_outbox_push(st, "r", "!room:example.org", txn, key, "failure", content, 1000 + i, NULL);
	free(content);
	return rc;
}

static int64_t lost_ids[8];

static void test_a_commit_that_finds_the_disk_full_rolls_the_whole_batch_back(void)
{
	fresh_state();
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st) {
		printf("# %s\n", err);
		return;
	}
	for (int i = 0; i < 5; i++)
		CHECK_INT(push(st, i), 1);
	CHECK_INT(store_commit(st), 0);

	/* The next batch: two deliveries recorded, three reports queued, the disk with room
	 * for them when they were taken. */
	CHECK_INT(deliver_oldest_uncommitted(st, 2), 0);
	CHECK(store_can_take_reports(st));
	for (int i = 0; i < 3; i++) {
		char key[32], txn[64];
		snprintf(key, sizeof key, "late-%04d", i);
		snprintf(txn, sizeof txn, "zmb.r.failure.%s", key);
		CHECK_INT(store_outbox_push(st, "r", "!room:example.org", txn, key, "failure", "{\"body\":\"late\"}",
					    2000 + i, &lost_ids[i]),
			  1);
	}
	CHECK_INT(store_outbox_depth(st), 6); /* the batch sees its own writes */

	/* Someone else takes the disk before the commit. */
	CHECK(fill_disk() > 0);
	CHECK_INT(store_commit(st), STORE_COMMIT_LOST_TO_FULL);
	CHECK(!store_in_batch(st));
	CHECK_STR(store_full_reason(st), "state database: disk full");
	CHECK_INT(store_lost_from_id(st), lost_ids[0]);
	/* As if the batch had never been: the deliveries are pending again, the reports unknown. */
	CHECK_INT(store_outbox_depth(st), 5);
	char *eid = store_sent_event_id(st, "zmb.r.failure.buildset-0000");
	CHECK_STR(eid, NULL);
	free(eid);
	CHECK_INT(store_txn_known(st, "zmb.r.failure.late-0000"), 0);

	/* Bookkeeping goes on in the reserve's room; reports wait for space. */
	CHECK_INT(deliver_oldest(st, 5), 0);
	CHECK_INT(store_outbox_depth(st), 0);
	CHECK_INT(push(st, 200), -1);
	CHECK_INT(unlink(filler), 0);
	CHECK(store_space_recheck(st));
	/* The broker's second delivery of a lost report is a new report, under a new id. */
	int64_t again = 0;
	CHECK_INT(store_outbox_push(st, "r", "!room:example.org", "zmb.r.failure.late-0000", "late-0000", "failure",
				    "{\"body\":\"late\"}", 3000, &again),
		  1);
	CHECK(again > lost_ids[2]);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_outbox_depth(st), 1);
	store_close(st);
	/* What a restart finds: the same. */
	st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (st) {
		CHECK_INT(store_outbox_depth(st), 1);
		CHECK_INT(store_txn_known(st, "zmb.r.failure.late-0001"), 0);
		store_close(st);
	}
}

/* Rows larger than SQLite's page cache (2 MB by default) spill into the WAL before the
 * commit; on a full disk the spill fails in mid-batch and SQLite rolls the whole
 * transaction back (measured: after six 256 KiB rows). The store then refuses every
 * write until the commit reports the loss: none may land outside a batch. */
static void test_a_batch_sqlite_rolls_back_in_mid_batch_is_reported_lost(void)
{
	fresh_state();
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st) {
		printf("# %s\n", err);
		return;
	}
	CHECK_INT(push(st, 0), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK(fill_disk() > 0);
	int pushed = 0, rc = 1;
	for (int i = 0; i < 64 && rc == 1; i++) {
		rc = push_sized(st, "big", i, 256 * 1024);
		pushed += rc == 1;
	}
	CHECK_INT(rc, -1);
	CHECK(pushed > 0);
	CHECK(store_batch_lost(st));
	CHECK(store_in_batch(st));
	CHECK_INT(store_kv_set(st, "after.the.loss", "x"), -1); /* would be committed alone */
	CHECK_INT(store_commit(st), STORE_COMMIT_LOST_TO_FULL);
	CHECK(!store_batch_lost(st));
	CHECK_STR(store_full_reason(st), "state database: disk full");
	CHECK_INT(store_outbox_depth(st), 1);
	char *v = store_kv_get(st, "after.the.loss");
	CHECK_STR(v, NULL);
	free(v);
	/* The next batch works: the delivery of what was committed. */
	CHECK_INT(deliver_oldest(st, 1), 0);
	CHECK_INT(store_outbox_depth(st), 0);
	store_close(st);
	CHECK_INT(unlink(filler), 0);
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
	RUN(test_a_commit_that_finds_the_disk_full_rolls_the_whole_batch_back);
	RUN(test_a_batch_sqlite_rolls_back_in_mid_batch_is_reported_lost);
	if (umount2(disk_dir, MNT_DETACH) < 0)
		printf("# umount %s: %s\n", disk_dir, strerror(errno));
	nftw(base_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	fclose(devnull);
	return test_done();
}
