/* Tests of the store on a full disk, a real one: a small tmpfs mounted for the test
 * (needs root; skipped with the reason otherwise) filled up to ENOSPC by a filler file.
 * Reports are refused, deliveries' bookkeeping still commits, a restart opens and reads
 * the outbox, and once the filler is gone reports are taken again. A batch the disk
 * fills under is rolled back whole, and the deliverer (against the fake homeserver)
 * forgets what it queued from it without posting anything twice. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver.h"
#include "fake_hs.h"
#include "log.h"
#include "loop.h"
#include "matrix.h"
#include "stats.h"
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

/* The retention step's compaction commits the open batch itself; when that commit loses
 * it, the loss is kept for the next store_commit, the one the bridge acts on. */
static void test_a_batch_lost_in_compaction_is_reported_by_the_next_commit(void)
{
	fresh_state();
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st) {
		printf("# %s\n", err);
		return;
	}
	/* A drained backlog: most of the file free, as compaction wants it. */
	for (int i = 0; i < 8; i++)
		CHECK_INT(push_sized(st, "old", i, 128 * 1024), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(deliver_oldest(st, 8), 0);
	CHECK_INT(push(st, 1), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(deliver_oldest_uncommitted(st, 1), 0); /* the outbox looks empty in this batch */
	CHECK(fill_disk() > 0);
	int64_t before = 0, after = 0;
	CHECK_INT(store_compact(st, 0, &before, &after), -1);
	CHECK(store_batch_lost(st));
	CHECK_INT(store_commit(st), STORE_COMMIT_LOST_TO_FULL);
	CHECK_INT(store_outbox_depth(st), 1); /* the delivery it had recorded is pending again */
	CHECK_INT(store_commit(st), STORE_COMMIT_OK);
	store_close(st);
	CHECK_INT(unlink(filler), 0);
}

/* ---- the deliverer after a lost batch, against the fake homeserver ---- */

#define ROOM "!alerts:localhost"

struct live {
	struct store *st;
	struct loop *loop;
	struct matrix_client *mc;
	struct config_matrix cfg;
	struct stats stats;
	struct deliverer *d;
};

static bool live_open(struct live *w)
{
	memset(w, 0, sizeof *w);
	w->st = store_open(state_dir, err, sizeof err);
	if (!w->st) {
		printf("# %s\n", err);
		return false;
	}
	w->loop = loop_new();
	w->cfg.homeserver = fake_hs_url;
	w->cfg.access_token = "bridge-token";
	w->cfg.request_timeout_s = 5;
	w->cfg.retry_min_ms = 50;
	w->cfg.retry_max_ms = 200;
	w->mc = matrix_client_new(w->loop, &w->cfg);
	w->d = deliverer_new(w->loop, w->st, w->mc, &w->cfg, &w->stats);
	return w->mc && w->d;
}

static void live_close(struct live *w)
{
	deliverer_free(w->d);
	matrix_client_free(w->mc);
	loop_free(w->loop);
	store_close(w->st);
	stats_clear(&w->stats);
}

/* Queues a report whose body is its name, as the bridge does: outbox row, then the
 * deliverer. Its txn id is "zmb.r.failure.NAME", the same every time it is queued. */
static int64_t queue_report(struct live *w, const char *name)
{
	char txn[64], body[64];
	snprintf(txn, sizeof txn, "zmb.r.failure.%s", name);
	snprintf(body, sizeof body, "{\"msgtype\":\"m.notice\",\"body\":\"%s\"}", name);
	int64_t id = -1;
	if (store_outbox_push(w->st, "r", ROOM, txn, name, "failure", body, 1000, &id) != 1)
		return -1;
	struct outbox_item item = {.id = id,
				   .route = xstrdup("r"),
				   .room = xstrdup(ROOM),
				   .txn_id = xstrdup(txn),
				   .event_key = xstrdup(name),
				   .action = xstrdup("failure"),
				   .content_json = xstrdup(body),
				   .created_ms = 1000};
	deliverer_enqueue(w->d, &item);
	return id;
}

static uint64_t posted(struct live *w)
{
	uint64_t n = 0;
	for (size_t i = 0; i < w->stats.n_routes; i++)
		n += w->stats.routes[i].posted;
	return n;
}

struct until {
	struct live *w;
	uint64_t posted; /* at least this many posted, and nothing in flight or queued */
	int64_t deadline_ms;
};

static bool until_met(const struct until *u)
{
	return posted(u->w) >= u->posted && deliverer_in_flight(u->w->d) == 0 && deliverer_queued(u->w->d) == 0;
}

static void until_check(struct loop *loop, void *data)
{
	struct until *u = data;
	if (until_met(u) || (int64_t)loop_now_ms(loop) > u->deadline_ms)
		loop_stop(loop);
	else
		loop_timer_add(loop, 10, until_check, u);
}

/* Runs the loop until `n` sends were posted in all and the deliverer is idle (10 s at most). */
static bool run_until_idle(struct live *w, uint64_t n)
{
	struct until u = {w, n, (int64_t)loop_now_ms(w->loop) + 10000};
	loop_timer_add(w->loop, 10, until_check, &u);
	loop_run(w->loop);
	return until_met(&u);
}

/* How often the homeserver was asked to send txn, and how many of those were repeats. */
static void sends_of(const char *txn, int *sent, int *repeats)
{
	*sent = *repeats = 0;
	cJSON *reqs = NULL;
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &reqs);
	const cJSON *list = cJSON_IsArray(reqs) ? reqs : cJSON_GetObjectItemCaseSensitive(reqs, "requests");
	const cJSON *r;
	cJSON_ArrayForEach(r, list)
	{
		const cJSON *method = cJSON_GetObjectItemCaseSensitive(r, "method");
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(r, "path");
		if (!cJSON_IsString(method) || strcmp(method->valuestring, "PUT") != 0 || !cJSON_IsString(path))
			continue;
		const char *at = strstr(path->valuestring, "/send/m.room.message/");
		if (!at || strcmp(at + strlen("/send/m.room.message/"), txn) != 0)
			continue;
		(*sent)++;
		*repeats += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "duplicate_txn"));
	}
	cJSON_Delete(reqs);
}

/* The room's events with this body: how many, and (out, caller frees) the first's id. */
static int events_with_body(const char *body, char **event_id)
{
	if (event_id)
		*event_id = NULL;
	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	int n = 0;
	const cJSON *ev;
	cJSON_ArrayForEach(ev, list)
	{
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(content, "body");
		if (!cJSON_IsString(b) || strcmp(b->valuestring, body) != 0)
			continue;
		if (n++ == 0 && event_id)
			*event_id = xstrdup(cJSON_GetObjectItemCaseSensitive(ev, "event_id")->valuestring);
	}
	cJSON_Delete(events);
	return n;
}

static void check_sends(const char *name, int want_sent, int want_repeats)
{
	char txn[64];
	snprintf(txn, sizeof txn, "zmb.r.failure.%s", name);
	int sent, repeats;
	sends_of(txn, &sent, &repeats);
	if (sent != want_sent || repeats != want_repeats)
		printf("# %s: sent %d times (%d repeats), expected %d (%d)\n", name, sent, repeats, want_sent,
		       want_repeats);
	CHECK(sent == want_sent && repeats == want_repeats);
}

/* a1 was delivered and committed before; a2's delivery is recorded in the batch the disk
 * fills under, with b1 (in flight when the batch is lost) and b2 (waiting behind it)
 * queued in it. The deliverer forgets b1 and b2 and takes a2 back; a2 goes out again and
 * the homeserver answers with its first event; b1's send finishes unrecorded. Once there
 * is room, the broker's second delivery queues b1 and b2 again under the same txn ids:
 * every report is in the room once. */
static void test_the_deliverer_forgets_a_lost_batch_and_takes_back_what_it_recorded(void)
{
	fresh_state();
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	struct live w;
	if (!live_open(&w)) {
		CHECK(!"opened");
		return;
	}
	CHECK(queue_report(&w, "a1") > 0);
	CHECK_INT(store_commit(w.st), 0);
	deliverer_room_ready(w.d, ROOM, ROOM);
	CHECK(run_until_idle(&w, 1));
	CHECK_INT(store_commit(w.st), 0);
	int64_t a2 = queue_report(&w, "a2");
	CHECK_INT(store_commit(w.st), 0);
	CHECK(run_until_idle(&w, 2)); /* its delivery is in the open batch */
	CHECK(store_in_batch(w.st));
	int64_t b1 = queue_report(&w, "b1"), b2 = queue_report(&w, "b2");
	CHECK(b1 > a2 && b2 > b1);
	CHECK_INT(deliverer_in_flight(w.d), 1); /* b1 is on its way */

	CHECK(fill_disk() > 0);
	CHECK_INT(store_commit(w.st), STORE_COMMIT_LOST_TO_FULL);
	CHECK_INT(store_lost_from_id(w.st), b1);
	CHECK_INT(deliverer_batch_lost(w.d, store_lost_from_id(w.st)), 2);
	CHECK(!deliverer_has_item(w.d, b1) && !deliverer_has_item(w.d, b2));
	CHECK(deliverer_has_item(w.d, a2));     /* its row is back */
	CHECK_INT(deliverer_in_flight(w.d), 1); /* b1's send goes on */
	CHECK(run_until_idle(&w, 3));
	CHECK_INT(store_commit(w.st), 0); /* on the full disk: the reserve's room */
	CHECK_INT(store_outbox_depth(w.st), 0);
	check_sends("a1", 1, 0);
	check_sends("a2", 2, 1); /* the second answered with the first's event */
	check_sends("b1", 1, 0);
	check_sends("b2", 0, 0);
	char *a2_event = NULL, *b1_event = NULL;
	CHECK_INT(events_with_body("a2", &a2_event), 1);
	char *a2_recorded = store_sent_event_id(w.st, "zmb.r.failure.a2");
	CHECK_STR(a2_recorded, a2_event);
	char *b1_recorded = store_sent_event_id(w.st, "zmb.r.failure.b1");
	CHECK_STR(b1_recorded, NULL); /* the lost send wrote nothing */
	free(b1_recorded);

	/* Room again; the broker sends b1 and b2 again. */
	CHECK_INT(unlink(filler), 0);
	CHECK(store_space_recheck(w.st));
	CHECK(queue_report(&w, "b1") > b2);
	CHECK(queue_report(&w, "b2") > b2);
	CHECK_INT(store_commit(w.st), 0);
	CHECK(run_until_idle(&w, 5));
	CHECK_INT(store_commit(w.st), 0);
	check_sends("b1", 2, 1);
	check_sends("b2", 1, 0);
	const char *names[] = {"a1", "a2", "b1", "b2"};
	for (size_t i = 0; i < 4; i++)
		CHECK_INT(events_with_body(names[i], i == 2 ? &b1_event : NULL), 1);
	b1_recorded = store_sent_event_id(w.st, "zmb.r.failure.b1");
	CHECK_STR(b1_recorded, b1_event);
	free(b1_recorded);
	free(b1_event);
	free(a2_event);
	free(a2_recorded);
	live_close(&w);
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
	RUN(test_a_batch_lost_in_compaction_is_reported_by_the_next_commit);
	if (fake_hs_start() == 0) {
		RUN(test_the_deliverer_forgets_a_lost_batch_and_takes_back_what_it_recorded);
		fake_hs_stop();
	} else {
		RUN_NAMED("fake homeserver starts", CHECK(!"fake homeserver started"));
	}
	if (umount2(disk_dir, MNT_DETACH) < 0)
		printf("# umount %s: %s\n", disk_dir, strerror(errno));
	nftw(base_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	fclose(devnull);
	return test_done();
}
