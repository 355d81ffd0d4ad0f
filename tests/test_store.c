/* Tests of store against a real SQLite file in a fresh /tmp directory: outbox, duplicate
 * txn ids and their retention, dead letters, kv, file modes, and what survives a crash
 * with and without commit. */
#include "store.h"
#include "store_actions.h"

#include <ftw.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "test.h"

static char base_dir[64];   /* mkdtemp()ed per test */
static char state_dir[128]; /* base_dir/state: store_open creates it */
static char err[512];

static void fresh_dirs(void)
{
	snprintf(base_dir, sizeof base_dir, "/tmp/zmb-store-XXXXXX");
	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(state_dir, sizeof state_dir, "%s/state", base_dir);
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

static struct store *open_store(void)
{
	struct store *st = store_open(state_dir, err, sizeof err);
	if (!st)
		printf("# store_open(%s) failed: %s\n", state_dir, err);
	return st;
}

/* Pushes a report with the conventional txn id "txn-KEY-ACTION-ROUTE". */
static int push(struct store *st, const char *key, const char *action, const char *route, int64_t now)
{
	char txn[128];
	snprintf(txn, sizeof txn, "txn-%s-%s-%s", key, action, route);
	return store_outbox_push(st, route, "!room:example.org", txn, key, action, "{\"body\":\"hi\"}", now, NULL);
}

/* "id:txn," for every outbox item, for order checks in one string. */
static char *outbox_summary(struct store *st)
{
	struct outbox_item *items;
	size_t n;
	struct strbuf sb = STRBUF_INIT;
	if (store_outbox_load(st, &items, &n) < 0)
		return xstrdup("(load failed)");
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&sb, "%lld:%s,", (long long)items[i].id, items[i].event_key);
	store_items_free(items, n);
	return strbuf_detach(&sb);
}

/* Runs sql on the (closed) store's database file behind its back: to make it look as an
 * older version left it. Returns sqlite3_exec's result. */
static int rewrite_state_db(const char *sql)
{
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", state_dir);
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* One integer the (closed) store's database file answers to sql, -1 on error. */
static int query_state_db(const char *sql)
{
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", state_dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void test_open_creates_private_dir_and_db_file(void)
{
	fresh_dirs();
	mode_t old = umask(022);
	struct store *st = open_store();
	CHECK(st != NULL);
	struct stat sb;
	CHECK_INT(stat(state_dir, &sb), 0);
	CHECK_INT(sb.st_mode & 07777, 0700);
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", state_dir);
	CHECK_INT(stat(path, &sb), 0);
	CHECK_INT(sb.st_mode & 07777, 0600);
	CHECK_INT(push(st, "k1", "failure", "r", 1), 1);
	CHECK_INT(store_commit(st), 0);
	snprintf(path, sizeof path, "%s/state.db-wal", state_dir);
	CHECK_INT(stat(path, &sb), 0);
	CHECK_INT(sb.st_mode & 07777, 0600);
	store_close(st);
	umask(old);
	remove_dirs();
}

static void test_open_refuses_a_state_dir_that_is_a_file(void)
{
	fresh_dirs();
	FILE *f = fopen(state_dir, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	struct store *st = store_open(state_dir, err, sizeof err);
	CHECK(st == NULL);
	CHECK_CONTAINS(err, "not a directory");
	CHECK_CONTAINS(err, state_dir);
	remove_dirs();
}

static void test_pushed_items_load_in_push_order_with_all_fields(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK(!store_in_batch(st));
	int64_t first_id = -1;
	CHECK_INT(store_outbox_push(st, "route-a", "#alerts:example.org", "t1", "uuid-1", "failure",
				    "{\"msgtype\":\"m.text\"}", 1700000000000, &first_id),
		  1);
	CHECK(first_id > 0);
	CHECK(store_in_batch(st));
	CHECK_INT(push(st, "uuid-2", "failure", "route-a", 1700000000001), 1);
	CHECK_INT(push(st, "uuid-0", "success", "route-b", 1700000000002), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK(!store_in_batch(st));
	CHECK_INT(store_commit(st), 0); /* nothing open: a no-op */

	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK(items[0].id < items[1].id && items[1].id < items[2].id);
		CHECK_INT(items[0].id, first_id);
		CHECK_STR(items[0].route, "route-a");
		CHECK_STR(items[0].room, "#alerts:example.org");
		CHECK_STR(items[0].txn_id, "t1");
		CHECK_STR(items[0].event_key, "uuid-1");
		CHECK_STR(items[0].action, "failure");
		CHECK_STR(items[0].content_json, "{\"msgtype\":\"m.text\"}");
		CHECK_INT(items[0].attempts, 0);
		CHECK_INT(items[0].created_ms, 1700000000000);
		CHECK_STR(items[1].event_key, "uuid-2");
		CHECK_STR(items[2].event_key, "uuid-0");
		CHECK_STR(items[2].txn_id, "txn-uuid-0-success-route-b");
	}
	store_items_free(items, n);
	CHECK_INT(store_outbox_depth(st), 3);
	store_close(st);
	remove_dirs();
}

/* The bridge derives the txn id from (key, action, route), so the txn id is the duplicate
 * check: the same report again has the same id. */
static void test_a_taken_txn_id_is_a_duplicate_and_writes_nothing(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "k", "failure", "r1", 1), 1);
	CHECK_INT(push(st, "k", "failure", "r1", 2), 0); /* the same report again */
	/* Same txn id for a different key (two keys that clean up alike): refused too. */
	CHECK_INT(store_outbox_push(st, "r9", "!room", "txn-k-failure-r1", "k9", "start", "{}", 3, NULL), 0);
	/* Different route or action: a separate delivery. */
	CHECK_INT(push(st, "k", "failure", "r2", 4), 1);
	CHECK_INT(push(st, "k", "merge-conflict", "r1", 5), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_outbox_depth(st), 3);
	CHECK_INT(store_outbox_push(st, "r9", "!room", "fresh-txn", "k9", "start", "{}", 6, NULL), 1);

	/* A txn id that was already delivered stays taken. */
	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	CHECK_INT(store_outbox_delivered(st, items[0].id, items[0].txn_id, "$ev1", 7), 0);
	store_items_free(items, n);
	CHECK_INT(push(st, "k", "failure", "r1", 8), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_outbox_depth(st), 3);
	store_close(st);
	remove_dirs();
}

static void test_delivered_removes_item_and_records_event_id(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "a", "failure", "r", 1), 1);
	CHECK_INT(push(st, "b", "failure", "r", 1), 1);
	CHECK_INT(store_commit(st), 0);
	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	CHECK_INT(n, 2);
	int64_t first = n ? items[0].id : 0;
	store_items_free(items, n);

	CHECK_INT(store_outbox_delivered(st, first, "txn-a-failure-r", "$abc:example.org", 10), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_outbox_depth(st), 1);
	char *ev = store_sent_event_id(st, "txn-a-failure-r");
	CHECK_STR(ev, "$abc:example.org");
	free(ev);
	CHECK(store_sent_event_id(st, "txn-b-failure-r") == NULL);
	char *summary = outbox_summary(st);
	CHECK_CONTAINS(summary, ":b,");
	CHECK_NOT_CONTAINS(summary, ":a,");
	free(summary);

	/* An id that is not in the outbox: -1 and one warning line, nothing else. */
	FILE *logf = tmpfile();
	log_set_stream(logf);
	CHECK_INT(store_outbox_delivered(st, first, "txn-a-failure-r", "$again", 11), -1);
	log_set_stream(NULL);
	char line[512] = "";
	rewind(logf);
	int lines = 0;
	while (fgets(line, sizeof line, logf))
		lines++;
	fclose(logf);
	CHECK_INT(lines, 1);
	CHECK_CONTAINS(line, "no outbox item");
	ev = store_sent_event_id(st, "txn-a-failure-r");
	CHECK_STR(ev, "$abc:example.org");
	free(ev);
	store_close(st);
	remove_dirs();
}

static void test_failed_attempt_counts_and_kill_moves_to_dead_letters(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "a", "failure", "r", 100), 1);
	CHECK_INT(push(st, "b", "failure", "r", 101), 1);
	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	int64_t a = items[0].id;
	store_items_free(items, n);

	CHECK_INT(store_outbox_attempt_failed(st, a), 0);
	CHECK_INT(store_outbox_attempt_failed(st, a), 0);
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	CHECK_INT(items[0].attempts, 2);
	store_items_free(items, n);

	CHECK_INT(store_outbox_kill(st, a, "403 M_FORBIDDEN: You are not in this room", 500), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_outbox_depth(st), 1);
	struct dead_letter *dead;
	CHECK_INT(store_dead_list(st, &dead, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(dead[0].id, a);
		CHECK_STR(dead[0].reason, "403 M_FORBIDDEN: You are not in this room");
		CHECK_STR(dead[0].txn_id, "txn-a-failure-r");
		CHECK_STR(dead[0].event_key, "a");
		CHECK_STR(dead[0].room, "!room:example.org");
		CHECK_INT(dead[0].attempts, 3); /* two retried failures + the fatal one */
		CHECK_INT(dead[0].created_ms, 100);
		CHECK_INT(dead[0].failed_ms, 500);
	}
	store_dead_free(dead, n);
	CHECK_INT(store_outbox_kill(st, a, "again", 501), -1);
	CHECK_INT(store_outbox_attempt_failed(st, a), -1);
	/* A dead txn id is still taken: a new push with it would clash on retry. */
	CHECK_INT(store_outbox_push(st, "r", "!room", "txn-a-failure-r", "zz", "failure", "{}", 600, NULL), 0);
	store_close(st);
	remove_dirs();
}

static void test_dead_retry_one_then_all_restores_original_order(void)
{
	fresh_dirs();
	struct store *st = open_store();
	const char *keys[] = {"k1", "k2", "k3", "k4"};
	int64_t ids[4];
	for (int i = 0; i < 4; i++)
		CHECK_INT(push(st, keys[i], "failure", "r", 10 + i), 1);
	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	for (size_t i = 0; i < 4 && i < n; i++)
		ids[i] = items[i].id;
	store_items_free(items, n);
	CHECK_INT(store_outbox_attempt_failed(st, ids[2]), 0);
	/* Killed out of order: k3, k1, k2; k4 stays queued. */
	CHECK_INT(store_outbox_kill(st, ids[2], "x", 20), 0);
	CHECK_INT(store_outbox_kill(st, ids[0], "x", 21), 0);
	CHECK_INT(store_outbox_kill(st, ids[1], "x", 22), 0);
	CHECK_INT(store_commit(st), 0);

	struct dead_letter *dead;
	CHECK_INT(store_dead_list(st, &dead, &n), 0);
	CHECK_INT(n, 3);
	if (n == 3)
		CHECK(dead[0].id == ids[0] && dead[1].id == ids[1] && dead[2].id == ids[2]);
	store_dead_free(dead, n);

	CHECK_INT(store_dead_retry(st, ids[1]), 1);
	CHECK_INT(store_dead_retry(st, ids[1]), 0); /* gone from the dead letters */
	char want[128];
	snprintf(want, sizeof want, "%lld:k2,%lld:k4,", (long long)ids[1], (long long)ids[3]);
	char *summary = outbox_summary(st);
	CHECK_STR(summary, want);
	free(summary);

	CHECK_INT(store_dead_retry(st, 0), 2);
	CHECK_INT(store_commit(st), 0);
	snprintf(want, sizeof want, "%lld:k1,%lld:k2,%lld:k3,%lld:k4,", (long long)ids[0],
		 (long long)ids[1], (long long)ids[2], (long long)ids[3]);
	summary = outbox_summary(st);
	CHECK_STR(summary, want);
	free(summary);
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	if (n == 4) {
		CHECK_STR(items[2].txn_id, "txn-k3-failure-r"); /* the homeserver still dedups */
		CHECK_INT(items[2].attempts, 0);
		CHECK_INT(items[2].created_ms, 12);
	}
	store_items_free(items, n);
	CHECK_INT(store_dead_list(st, &dead, &n), 0);
	CHECK_INT(n, 0);
	store_dead_free(dead, n);
	CHECK_INT(store_dead_retry(st, 0), 0);
	/* New pushes still get ids after every restored one. */
	CHECK_INT(push(st, "k5", "failure", "r", 30), 1);
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	CHECK(n == 5 && items[4].id > ids[3]);
	CHECK_STR(n == 5 ? items[4].event_key : NULL, "k5");
	store_items_free(items, n);
	store_close(st);
	remove_dirs();
}

/* Delivers the queued item with txn id txn (test helper). */
static void deliver(struct store *st, const char *txn, const char *event_id, int64_t now)
{
	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(items[i].txn_id, txn) == 0) {
			CHECK_INT(store_outbox_delivered(st, items[i].id, txn, event_id, now), 0);
			found = true;
		}
	CHECK(found);
	store_items_free(items, n);
}

static int64_t outbox_id_of(struct store *st, const char *txn)
{
	struct outbox_item *items;
	size_t n;
	int64_t id = 0;
	if (store_outbox_load(st, &items, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (strcmp(items[i].txn_id, txn) == 0)
				id = items[i].id;
	store_items_free(items, n);
	return id;
}

static void test_retention_forgets_old_finished_txns_only(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "old1", "failure", "r", 1000), 1);
	CHECK_INT(push(st, "old2", "failure", "r", 2000), 1);
	CHECK_INT(push(st, "new", "failure", "r", 3000), 1);
	CHECK_INT(push(st, "queued", "failure", "r", 500), 1);  /* old, still in the outbox */
	CHECK_INT(push(st, "dead", "failure", "r", 500), 1);    /* old, a dead letter */
	CHECK_INT(push(st, "dropped", "failure", "r", 600), 1); /* old, dropped unsent */
	CHECK_INT(push(st, "root", "failure", "r", 700), 1);    /* old, an open failure's root */
	deliver(st, "txn-old1-failure-r", "$1", 1001);
	deliver(st, "txn-old2-failure-r", "$2", 2001);
	deliver(st, "txn-new-failure-r", "$3", 3001);
	deliver(st, "txn-root-failure-r", "$root", 701);
	CHECK_INT(store_outbox_kill(st, outbox_id_of(st, "txn-dead-failure-r"), "refused", 501), 0);
	CHECK_INT(store_outbox_drop(st, outbox_id_of(st, "txn-dropped-failure-r"), 601), 0);
	CHECK_INT(store_failure_add(st, "txn-root-failure-r", "!room", "r", "root", "{}", "p|b|q|j", 700), 0);
	CHECK_INT(store_commit(st), 0);

	bool done = false;
	CHECK_INT(store_prune_txns(st, 2500, 100, &done), 3); /* old1, old2, dropped */
	CHECK(done);
	CHECK_INT(store_prune_txns(st, 2500, 100, &done), 0);
	CHECK_INT(store_commit(st), 0);
	/* A forgotten report is accepted again; the others are still duplicates. */
	CHECK_INT(push(st, "old1", "failure", "r", 4000), 1);
	CHECK_INT(push(st, "dropped", "failure", "r", 4000), 1);
	CHECK_INT(push(st, "new", "failure", "r", 4000), 0);
	CHECK_INT(push(st, "queued", "failure", "r", 4000), 0);
	CHECK_INT(push(st, "dead", "failure", "r", 4000), 0);
	CHECK_INT(push(st, "root", "failure", "r", 4000), 0);
	/* The open failure's root keeps its event id for the replies still to come. */
	char *ev = store_sent_event_id(st, "txn-root-failure-r");
	CHECK_STR(ev, "$root");
	free(ev);
	CHECK_INT(store_dead_retry(st, 0), 1); /* the dead letter still has its txn */
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_retention_goes_round_the_txn_ids_a_slice_at_a_time(void)
{
	fresh_dirs();
	struct store *st = open_store();
	char key[16], txn[64];
	for (int i = 0; i < 7; i++) {
		snprintf(key, sizeof key, "k%d", i);
		CHECK_INT(push(st, key, "failure", "r", 100), 1);
		snprintf(txn, sizeof txn, "txn-%s-failure-r", key);
		deliver(st, txn, "$e", 101);
	}
	CHECK_INT(store_commit(st), 0);
	bool done = true;
	CHECK_INT(store_prune_txns(st, 1000, 3, &done), 3);
	CHECK(!done);
	CHECK_INT(store_prune_txns(st, 1000, 3, &done), 3);
	CHECK(!done);
	CHECK_INT(store_prune_txns(st, 1000, 3, &done), 1);
	CHECK(done); /* a short slice: the pass is complete */
	/* New ones are found by the next pass, which starts from the beginning again. */
	CHECK_INT(push(st, "k0", "failure", "r", 200), 1);
	deliver(st, "txn-k0-failure-r", "$e", 201);
	CHECK_INT(store_prune_txns(st, 1000, 3, &done), 1);
	CHECK(done);
	CHECK_INT(store_prune_txns(st, 1000, 3, &done), 0);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_retention_forgets_failures_closed_before_the_cutoff(void)
{
	fresh_dirs();
	struct store *st = open_store();
	/* recovered long ago / resolved long ago / open / recovered recently / repeated recently */
	CHECK_INT(store_failure_add(st, "t-recovered", "!r", "r", "k1", "{}", "a", 100), 0);
	CHECK_INT(store_failure_recover(st, "t-recovered", 200), 0);
	CHECK_INT(store_failure_add(st, "t-resolved", "!r", "r", "k2", "{}", "b", 100), 0);
	CHECK_INT(store_claim_add(st, "$claim", "t-resolved", "@a:x", "claim", 150), 1);
	CHECK_INT(store_claim_add(st, "$resolve", "t-resolved", "@a:x", "resolve", 300), 1);
	CHECK_INT(store_failure_add(st, "t-open", "!r", "r", "k3", "{}", "c", 100), 0);
	CHECK_INT(store_claim_add(st, "$claim-open", "t-open", "@b:x", "claim", 150), 1);
	CHECK_INT(store_failure_add(st, "t-recent", "!r", "r", "k4", "{}", "d", 100), 0);
	CHECK_INT(store_failure_recover(st, "t-recent", 2000), 0);
	CHECK_INT(store_failure_add(st, "t-busy", "!r", "r", "k5", "{}", "e", 100), 0);
	CHECK_INT(store_failure_bump(st, "t-busy", 1500), 0);
	CHECK_INT(store_failure_recover(st, "t-busy", 400), 0);
	CHECK_INT(store_commit(st), 0);

	CHECK_INT(store_prune_failures(st, 1000), 2);
	CHECK_INT(store_prune_failures(st, 1000), 0);
	CHECK_INT(store_commit(st), 0);
	struct store_failure f;
	CHECK_INT(store_failure_by_txn(st, "t-recovered", &f), 0);
	CHECK_INT(store_failure_by_txn(st, "t-resolved", &f), 0);
	CHECK_INT(store_failure_by_txn(st, "t-open", &f), 1);
	store_failure_clear(&f);
	CHECK_INT(store_failure_by_txn(st, "t-recent", &f), 1);
	store_failure_clear(&f);
	CHECK_INT(store_failure_by_txn(st, "t-busy", &f), 1);
	store_failure_clear(&f);
	/* The pruned failure's claims went with it; the open one's stayed. */
	char **users = NULL;
	size_t n = 9;
	CHECK_INT(store_claims_of(st, "t-resolved", "claim", &users, &n), 0);
	CHECK_INT(n, 0);
	for (size_t i = 0; users && i < n; i++)
		free(users[i]);
	free(users);
	CHECK_INT(store_claims_of(st, "t-open", "claim", &users, &n), 0);
	CHECK_INT(n, 1);
	CHECK_STR(n == 1 ? users[0] : NULL, "@b:x");
	for (size_t i = 0; users && i < n; i++)
		free(users[i]);
	free(users);
	store_close(st);
	remove_dirs();
}

static void test_kv_set_get_overwrite_and_unset(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK(store_kv_get(st, "sync_token") == NULL);
	CHECK_INT(store_kv_set(st, "sync_token", "s72594_4483_1934"), 0);
	char *v = store_kv_get(st, "sync_token");
	CHECK_STR(v, "s72594_4483_1934");
	free(v);
	CHECK_INT(store_kv_set(st, "sync_token", "s72595"), 0);
	CHECK_INT(store_commit(st), 0);
	v = store_kv_get(st, "sync_token");
	CHECK_STR(v, "s72595");
	free(v);
	store_close(st);
	remove_dirs();
}

static void test_data_survives_close_and_reopen(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "a", "failure", "r", 1), 1);
	CHECK_INT(push(st, "b", "failure", "r", 2), 1);
	CHECK_INT(store_kv_set(st, "sync_token", "tok"), 0);
	store_close(st); /* commits the open batch */
	st = open_store();
	CHECK(st != NULL);
	CHECK_INT(store_outbox_depth(st), 2);
	char *v = store_kv_get(st, "sync_token");
	CHECK_STR(v, "tok");
	free(v);
	CHECK_INT(push(st, "a", "failure", "r", 3), 0); /* txn ids persisted too */
	store_close(st);
	remove_dirs();
}

/* A child process opens the store, pushes, optionally commits, and dies without any
 * cleanup: as close to pulling the plug as a test gets without a VM. */
static void crash_child_after_push(bool commit)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct store *st = store_open(state_dir, err, sizeof err);
		if (!st || push(st, "crash", "failure", "r", 1) != 1)
			_exit(2);
		if (commit && store_commit(st) != 0)
			_exit(3);
		_exit(0);
	}
	int status = 0;
	CHECK(pid > 0);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
}

static void test_uncommitted_batch_is_lost_in_a_crash(void)
{
	fresh_dirs();
	crash_child_after_push(false);
	struct store *st = open_store();
	CHECK(st != NULL);
	CHECK_INT(store_outbox_depth(st), 0);
	CHECK_INT(push(st, "crash", "failure", "r", 2), 1); /* its txn id did not survive either */
	store_close(st);
	remove_dirs();
}

static void test_committed_batch_survives_a_crash(void)
{
	fresh_dirs();
	crash_child_after_push(true);
	struct store *st = open_store();
	CHECK(st != NULL);
	CHECK_INT(store_outbox_depth(st), 1);
	char *summary = outbox_summary(st);
	CHECK_CONTAINS(summary, ":crash,");
	free(summary);
	store_close(st);
	remove_dirs();
}

static void test_database_is_in_wal_mode(void)
{
	fresh_dirs();
	struct store *st = open_store();
	store_close(st);
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", state_dir);
	sqlite3 *db = NULL;
	CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *s = NULL;
	CHECK_INT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	CHECK_INT(sqlite3_step(s), SQLITE_ROW);
	CHECK_STR((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
	CHECK_INT(query_state_db("PRAGMA user_version"), 6);
	/* Version 4 has no dedup table: txn ids are the duplicate check. */
	CHECK_INT(query_state_db("SELECT count(*) FROM sqlite_master WHERE name = 'dedup'"), 0);
	remove_dirs();
}

static void test_schema_from_the_future_is_refused_with_a_clear_message(void)
{
	fresh_dirs();
	struct store *st = open_store();
	store_close(st);
	CHECK_INT(rewrite_state_db("PRAGMA user_version = 99"), SQLITE_OK);
	st = store_open(state_dir, err, sizeof err);
	CHECK(st == NULL);
	CHECK_CONTAINS(err, "state.db");
	CHECK_CONTAINS(err, "schema version 99 is newer than this build understands (6)");
	store_close(st);
	remove_dirs();
}

/* Not a benchmark gate, a smoke figure: 5,000 pushes committed 100 at a time (one
 * commit per loop turn under load), each commit an fsync on whatever /tmp is. */
static void test_five_thousand_pushes_in_batches(void)
{
	fresh_dirs();
	struct store *st = open_store();
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int queued = 0;
	for (int i = 0; i < 5000; i++) {
		char key[32];
		snprintf(key, sizeof key, "uuid-%d", i);
		queued += push(st, key, "failure", "periodic", i);
		if (i % 100 == 99)
			CHECK_INT(store_commit(st), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_INT(queued, 5000);
	CHECK_INT(store_outbox_depth(st), 5000);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("# 5000 pushes, 50 commits: %.1f ms\n", ms);
	store_close(st);
	remove_dirs();
}

static void test_room_window_loads_in_id_order_after_an_id(void)
{
	fresh_dirs();
	struct store *st = open_store();
	int64_t ids[6];
	const char *rooms[6] = {"#a", "#b", "#a", "#a", "#b", "#a"};
	for (int i = 0; i < 6; i++) {
		char key[16], txn[32];
		snprintf(key, sizeof key, "k%d", i);
		snprintf(txn, sizeof txn, "t%d", i);
		CHECK_INT(store_outbox_push(st, "r", rooms[i], txn, key, "failure", "{}", i, &ids[i]), 1);
	}
	struct outbox_item *items;
	size_t n;
	/* Room #a after its first item, two at a time: items 2 and 3, then 5. */
	CHECK_INT(store_outbox_load_room(st, "#a", ids[0], 2, &items, &n), 0);
	CHECK_INT(n, 2);
	CHECK(n == 2 && items[0].id == ids[2] && items[1].id == ids[3]);
	CHECK_STR(n == 2 ? items[1].txn_id : NULL, "t3");
	store_items_free(items, n);
	CHECK_INT(store_outbox_load_room(st, "#a", ids[3], 2, &items, &n), 0);
	CHECK(n == 1 && items[0].id == ids[5]);
	store_items_free(items, n);
	CHECK_INT(store_outbox_load_room(st, "#nowhere", 0, 10, &items, &n), 0);
	CHECK_INT(n, 0);
	store_items_free(items, n);
	CHECK_INT(store_outbox_room_depth(st, "#a"), 4);
	CHECK_INT(store_outbox_room_depth(st, "#b"), 2);
	char **names;
	CHECK_INT(store_outbox_rooms(st, &names, &n), 0);
	CHECK_INT(n, 2);
	CHECK_STR(n == 2 ? names[0] : NULL, "#a");
	CHECK_STR(n == 2 ? names[1] : NULL, "#b");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	store_close(st);
	remove_dirs();
}

/* Outbox ids are the store's own counter: after a restart it must start above every id
 * still in use, dead letters included, or a retried dead letter would clash. */
static void test_ids_are_not_reused_after_reopen_while_dead_letters_hold_them(void)
{
	fresh_dirs();
	struct store *st = open_store();
	int64_t a = 0, b = 0, c = 0;
	CHECK_INT(store_outbox_push(st, "r", "!room", "ta", "ka", "failure", "{}", 1, &a), 1);
	CHECK_INT(store_outbox_push(st, "r", "!room", "tb", "kb", "failure", "{}", 2, &b), 1);
	CHECK_INT(store_outbox_delivered(st, a, "ta", "$a", 3), 0);
	CHECK_INT(store_outbox_kill(st, b, "refused", 4), 0);
	CHECK_INT(store_outbox_depth(st), 0);
	store_close(st);
	st = open_store();
	CHECK_INT(store_outbox_push(st, "r", "!room", "tc", "kc", "failure", "{}", 5, &c), 1);
	CHECK(c > b);
	CHECK_INT(store_dead_retry(st, b), 1);
	CHECK_INT(store_outbox_depth(st), 2);
	/* The delivered txn keeps its event id; the dead one is still taken. */
	char *ev = store_sent_event_id(st, "ta");
	CHECK_STR(ev, "$a");
	free(ev);
	CHECK(store_sent_event_id(st, "tb") == NULL);
	CHECK_INT(store_outbox_push(st, "r", "!room", "tb", "other", "failure", "{}", 6, NULL), 0);
	store_close(st);
	remove_dirs();
}

static void test_a_version_1_database_is_migrated_to_version_2(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "uuid-1", "failure", "r", 1), 1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	/* Make it look like a database written by the first version. */
	CHECK_INT(rewrite_state_db("DROP TABLE claim; DROP TABLE failure; PRAGMA user_version = 1"), SQLITE_OK);
	st = open_store();
	CHECK(st != NULL);
	if (st) {
		CHECK_INT(store_outbox_depth(st), 1); /* version 1 data kept */
		CHECK_INT(store_failure_add(st, "t1", "!r", "route", "k", "{}", "p|b|q|j", 5), 0);
		CHECK_INT(store_commit(st), 0);
		store_close(st);
	}
	remove_dirs();
}

static void test_failures_are_found_by_event_and_claims_counted_per_user(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(store_failure_add(st, "t1", "#alerts", "r", "k1", "{\"body\":\"x\"}", "p|main|periodic|j1", 100), 0);
	CHECK_INT(store_failure_set_event(st, "t1", "$e1"), 1);
	CHECK_INT(store_failure_set_event(st, "not-a-failure", "$e9"), 0); /* ignored */
	struct store_failure f;
	CHECK_INT(store_failure_by_event(st, "$e1", &f), 1);
	CHECK_STR(f.txn_id, "t1");
	CHECK_STR(f.room, "#alerts");
	CHECK_STR(f.content_json, "{\"body\":\"x\"}");
	CHECK_INT(f.opened_ms, 100);
	store_failure_clear(&f);
	CHECK_INT(store_failure_by_event(st, "$e9", &f), 0);
	CHECK_INT(store_claim_add(st, "$r1", "t1", "@b:x", "claim", 200), 1);
	CHECK_INT(store_claim_add(st, "$r1", "t1", "@b:x", "claim", 200), 0); /* seen again: no change */
	CHECK_INT(store_claim_add(st, "$r2", "t1", "@a:x", "claim", 300), 1);
	CHECK_INT(store_claim_add(st, "$r3", "t1", "@b:x", "claim", 400), 1); /* a second reaction, same user */
	CHECK_INT(store_claim_add(st, "$r4", "t1", "@a:x", "resolve", 500), 1);
	char **users;
	size_t n;
	CHECK_INT(store_claims_of(st, "t1", "claim", &users, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(users[0], "@b:x");
		CHECK_STR(users[1], "@a:x");
	}
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
	/* A claim is told with its failure's room and its sender: what a redaction is checked against. */
	struct store_claim c;
	CHECK_INT(store_claim_get(st, "$r2", &c), 1);
	CHECK_STR(c.failure_txn, "t1");
	CHECK_STR(c.room, "#alerts");
	CHECK_STR(c.user_id, "@a:x");
	store_claim_clear(&c);
	CHECK_INT(store_claim_get(st, "$unknown", &c), 0);
	CHECK(c.failure_txn == NULL && c.room == NULL && c.user_id == NULL);
	char *txn = store_claim_remove(st, "$r2");
	CHECK_STR(txn, "t1");
	CHECK_INT(store_claim_get(st, "$r2", &c), 0);
	free(txn);
	CHECK(store_claim_remove(st, "$unknown") == NULL);
	CHECK_INT(store_claims_of(st, "t1", "claim", &users, &n), 0);
	CHECK_INT(n, 1);
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_kv_set_null_forgets_the_value(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(store_kv_set(st, "sync.next_batch", "s42"), 0);
	CHECK_INT(store_kv_set(st, "sync.next_batch", NULL), 0);
	CHECK(store_kv_get(st, "sync.next_batch") == NULL);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_open_failures_by_thread_key_count_and_recover(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(store_failure_add(st, "t1", "#a", "r", "k1", "{}", "p|main|periodic|j1", 100), 0);
	CHECK_INT(store_failure_add(st, "t2", "#a", "r", "k2", "{}", "p|main|periodic|j2", 200), 0);
	CHECK_INT(store_failure_add(st, "t3", "#a", "other", "k3", "{}", "p|main|periodic|j1", 300), 0);
	struct store_failure f;
	CHECK_INT(store_failure_open_by_key(st, "r", "p|main|periodic|j1", &f), 1);
	CHECK_STR(f.txn_id, "t1");
	CHECK_INT(f.count, 1);
	store_failure_clear(&f);
	CHECK_INT(store_failure_bump(st, "t1", 150), 0);
	CHECK_INT(store_failure_by_txn(st, "t1", &f), 1);
	CHECK_INT(f.count, 2);
	CHECK_INT(f.last_ms, 150);
	CHECK_STR(f.thread_key, "p|main|periodic|j1");
	store_failure_clear(&f);
	struct store_failure *open;
	size_t n;
	CHECK_INT(store_failures_open_by_prefix(st, "r", "p|main|periodic|", &open, &n), 0);
	CHECK_INT(n, 2); /* the other route's failure is not this route's */
	for (size_t i = 0; i < n; i++)
		store_failure_clear(&open[i]);
	free(open);
	CHECK_INT(store_failures_open_by_prefix(st, "r", "p|main|check|", &open, &n), 0);
	CHECK_INT(n, 0);
	free(open);
	CHECK_INT(store_failure_recover(st, "t1", 400), 0);
	CHECK_INT(store_failure_open_by_key(st, "r", "p|main|periodic|j1", &f), 0);
	store_failure_clear(&f);
	CHECK_INT(store_failure_by_txn(st, "t1", &f), 1);
	CHECK_INT(f.recovered_ms, 400);
	store_failure_clear(&f);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_a_version_2_database_gains_the_escalated_column(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(store_failure_add(st, "t1", "!r", "route", "k", "{}", "p|b|q|j", 5), 0);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	/* Rebuild the failure table as version 2 had it, keeping its row. */
	CHECK_INT(rewrite_state_db("ALTER TABLE failure DROP COLUMN escalated; PRAGMA user_version = 2"), SQLITE_OK);
	st = open_store();
	CHECK(st != NULL);
	if (st) {
		struct store_failure f;
		CHECK_INT(store_failure_by_txn(st, "t1", &f), 1); /* version 2 data kept */
		CHECK_INT(f.escalated, 0);
		store_failure_clear(&f);
		CHECK_INT(store_failure_set_escalated(st, "t1", 3), 0);
		CHECK_INT(store_failure_set_content(st, "t1", "{\"body\":\"grown\"}"), 0);
		CHECK_INT(store_failure_by_txn(st, "t1", &f), 1);
		CHECK_INT(f.escalated, 3);
		CHECK_STR(f.content_json, "{\"body\":\"grown\"}");
		store_failure_clear(&f);
		CHECK_INT(store_commit(st), 0);
		store_close(st);
	}
	remove_dirs();
}

/* The txn row is written when an item is queued; should it be gone (a damaged or hand-edited
 * database), delivery still records the event id, made from the item. */
static void test_delivery_records_its_event_id_even_without_the_txn_row(void)
{
	fresh_dirs();
	struct store *st = open_store();
	int64_t id = 0;
	CHECK_INT(store_outbox_push(st, "r", "!room", "t-lost", "k", "failure", "{}", 1, &id), 1);
	store_close(st);
	CHECK_INT(rewrite_state_db("DELETE FROM txn"), SQLITE_OK);
	st = open_store();
	CHECK_INT(store_outbox_delivered(st, id, "t-lost", "$ev", 2), 0);
	CHECK_INT(store_outbox_depth(st), 0);
	char *ev = store_sent_event_id(st, "t-lost");
	CHECK_STR(ev, "$ev");
	free(ev);
	CHECK_INT(store_outbox_push(st, "r", "!room", "t-lost", "k", "failure", "{}", 3, NULL), 0);
	store_close(st);
	remove_dirs();
}

static off_t state_file_size(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", state_dir);
	struct stat sb;
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* A drained backlog leaves free pages behind; compaction gives them back, but only when
 * the outbox is empty and enough is free. */
static void test_compaction_gives_a_drained_backlog_back_and_keeps_everything_else(void)
{
	fresh_dirs();
	struct store *st = open_store();
	char content[3200];
	memset(content, 'x', sizeof content - 1);
	content[sizeof content - 1] = '\0';
	char json[3300], key[32], txn[64];
	snprintf(json, sizeof json, "{\"body\":\"%s\"}", content);
	int64_t ids[400];
	for (int i = 0; i < 400; i++) {
		snprintf(key, sizeof key, "k%d", i);
		snprintf(txn, sizeof txn, "txn-%s", key);
		CHECK_INT(store_outbox_push(st, "r", "!room", txn, key, "failure", json, 1, &ids[i]), 1);
	}
	CHECK_INT(store_commit(st), 0);
	int64_t before = 0, after = 0;
	/* Queued reports: never, however much might be free later. */
	CHECK_INT(store_compact(st, 1, &before, &after), 0);
	for (int i = 0; i < 400; i++) {
		snprintf(txn, sizeof txn, "txn-k%d", i);
		CHECK_INT(store_outbox_delivered(st, ids[i], txn, "$e", 2), 0);
	}
	CHECK_INT(store_commit(st), 0);
	/* Not worth it below the threshold. */
	CHECK_INT(store_compact(st, 64LL * 1024 * 1024, &before, &after), 0);
	CHECK(before > 400 * 3200); /* the database's size: the 400 reports' pages, now free */
	CHECK_INT(store_compact(st, 256 * 1024, &before, &after), 1);
	CHECK(after < before / 4);
	/* The file on disk shrank too, its pages checkpointed and the WAL emptied. */
	off_t small = state_file_size();
	CHECK(small > 0 && small <= after);
	char wal[256];
	snprintf(wal, sizeof wal, "%s/state.db-wal", state_dir);
	struct stat sb;
	CHECK(stat(wal, &sb) != 0 || sb.st_size == 0);
	printf("# state.db %lld -> %lld bytes\n", (long long)before, (long long)small);
	CHECK_INT(store_compact(st, 256 * 1024, &before, &after), 0); /* nothing left to give */
	/* What it remembered is all there: the delivered txns and their event ids. */
	char *ev = store_sent_event_id(st, "txn-k399");
	CHECK_STR(ev, "$e");
	free(ev);
	CHECK_INT(store_outbox_push(st, "r", "!room", "txn-k7", "k7", "failure", "{}", 3, NULL), 0);
	CHECK_INT(store_outbox_push(st, "r", "!room", "txn-new", "new", "failure", "{}", 3, NULL), 1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

/* Version 3 kept dedup keys in their own table; version 4 drops it and relies on the txn
 * rows, which every accepted report of a version 3 database has. */
static void test_a_version_3_database_loses_dedup_and_keeps_refusing_duplicates(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(push(st, "seen", "failure", "r", 1), 1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	CHECK_INT(rewrite_state_db("CREATE TABLE dedup (event_key TEXT NOT NULL, action TEXT NOT NULL,"
				   " route TEXT NOT NULL, accepted_ms INTEGER NOT NULL,"
				   " PRIMARY KEY (event_key, action, route)) WITHOUT ROWID;"
				   "INSERT INTO dedup VALUES ('seen', 'failure', 'r', 1); PRAGMA user_version = 3"),
		  SQLITE_OK);
	st = open_store();
	CHECK(st != NULL);
	if (st) {
		CHECK_INT(push(st, "seen", "failure", "r", 2), 0); /* still a duplicate */
		CHECK_INT(push(st, "new", "failure", "r", 3), 1);
		CHECK_INT(store_commit(st), 0);
		store_close(st);
	}
	CHECK_INT(query_state_db("SELECT count(*) FROM sqlite_master WHERE name = 'dedup'"), 0);
	remove_dirs();
}

static void test_a_resolve_reaction_closes_a_failure_until_it_is_redacted(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(store_failure_add(st, "t1", "#a", "r", "k1", "{}", "p|main|periodic|j1", 100), 0);
	CHECK_INT(store_failure_add(st, "t2", "#b", "r", "k2", "{}", "p|main|periodic|j2", 200), 0);
	CHECK_INT(store_claim_add(st, "$claim", "t1", "@a:x", "claim", 110), 1);
	struct store_failure f;
	CHECK_INT(store_failure_open_by_key(st, "r", "p|main|periodic|j1", &f), 1); /* claimed is still open */
	store_failure_clear(&f);
	CHECK_INT(store_claim_add(st, "$resolve", "t1", "@a:x", "resolve", 120), 1);
	CHECK_INT(store_failure_open_by_key(st, "r", "p|main|periodic|j1", &f), 0);
	store_failure_clear(&f);
	struct store_failure *open;
	size_t n;
	CHECK_INT(store_failures_open(st, NULL, &open, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(open[0].txn_id, "t2");
	store_failures_free(open, n);
	free(store_claim_remove(st, "$resolve"));
	CHECK_INT(store_failure_open_by_key(st, "r", "p|main|periodic|j1", &f), 1);
	store_failure_clear(&f);
	CHECK_INT(store_failures_by_key(st, "k2", &open, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(open[0].txn_id, "t2");
	store_failures_free(open, n);
	CHECK_INT(store_failures_open(st, "#a", &open, &n), 0); /* one room only */
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(open[0].txn_id, "t1");
	store_failures_free(open, n);
	CHECK_INT(store_failure_recover(st, "t2", 300), 0);
	CHECK_INT(store_failures_open(st, "#b", &open, &n), 0);
	CHECK_INT(n, 0);
	store_failures_free(open, n);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_a_restored_failure_keeps_every_field_and_is_not_added_twice(void)
{
	fresh_dirs();
	struct store *st = open_store();
	struct store_failure in = {.txn_id = "t9", .room = "#a", .route = "r", .event_key = "k9",
				   .content_json = "{\"body\":\"b\"}", .opened_ms = 1000, .event_id = "$root",
				   .thread_key = "p|main|periodic|j", .count = 4, .last_ms = 4000,
				   .recovered_ms = 5000, .escalated = 1};
	CHECK_INT(store_failure_restore(st, &in), 1);
	CHECK_INT(store_failure_restore(st, &in), 0);
	struct store_failure f;
	CHECK_INT(store_failure_by_event(st, "$root", &f), 1);
	CHECK_STR(f.txn_id, "t9");
	CHECK_STR(f.content_json, "{\"body\":\"b\"}");
	CHECK_INT(f.count, 4);
	CHECK_INT(f.last_ms, 4000);
	CHECK_INT(f.recovered_ms, 5000);
	CHECK_INT(f.escalated, 1);
	store_failure_clear(&f);
	char *sent = store_sent_event_id(st, "t9"); /* a thread reply can point at it */
	CHECK_STR(sent, "$root");
	free(sent);
	in.txn_id = "t10";
	in.event_id = "$other";
	in.recovered_ms = 0; /* still failing */
	CHECK_INT(store_failure_restore(st, &in), 1);
	CHECK_INT(store_failure_open_by_key(st, "r", "p|main|periodic|j", &f), 1);
	CHECK_STR(f.txn_id, "t10");
	store_failure_clear(&f);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

static void test_txn_known_sees_queued_transactions_and_a_dropped_item_stays_known(void)
{
	fresh_dirs();
	struct store *st = open_store();
	CHECK_INT(store_txn_known(st, "zmb.r.start.uuid-1"), 0);
	CHECK_INT(store_outbox_push(st, "r", "#a", "zmb.r.start.uuid-1", "uuid-1", "start", "{}", 1, NULL), 1);
	CHECK_INT(store_txn_known(st, "zmb.r.start.uuid-1"), 1);
	CHECK_INT(store_txn_known(st, "zmb.r.start.uuid-2"), 0);
	int64_t id = 0;
	CHECK_INT(store_outbox_push(st, "r", "#a", "zmb.r.failure.uuid-1", "uuid-1", "failure", "{}", 2, &id), 1);
	CHECK_INT(store_outbox_depth(st), 2);
	CHECK_INT(store_outbox_drop(st, id, 3), 0);
	CHECK_INT(store_outbox_depth(st), 1);
	CHECK_INT(store_txn_known(st, "zmb.r.failure.uuid-1"), 1); /* dropped: not queued again within the retention */
	char *sent = store_sent_event_id(st, "zmb.r.failure.uuid-1");
	CHECK(sent == NULL);
	free(sent);
	CHECK_INT(store_outbox_drop(st, id, 4), -1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

/* ---- zuul_action (schema 6): an acting event is recorded once, before it acts ---- */

static void test_an_acting_event_is_recorded_once_and_survives_a_restart(void)
{
	fresh_dirs();
	struct store *st = open_store();
	struct store_action a = {.event_id = "$cmd1", .kind = "dequeue", .room = "#alerts:hs", .user_id = "@alice:hs",
				 .request_json = "{\"tenant\":\"scs\"}", .question_txn = "txn-question-1",
				 .state = "pending", .created_ms = 1000, .expires_ms = 301000};
	CHECK_INT(store_action_begin(st, &a), 1);
	CHECK_INT(store_action_begin(st, &a), 0); /* the same event again: act not */
	struct store_action other = a;
	other.kind = "recheck";
	CHECK_INT(store_action_begin(st, &other), 0); /* whatever it claims to be now */
	CHECK_INT(store_commit(st), 0);
	store_close(st);

	st = open_store();
	CHECK_INT(store_action_begin(st, &a), 0);
	struct store_action got;
	CHECK_INT(store_action_get(st, "$cmd1", &got), 1);
	CHECK_STR(got.kind, "dequeue");
	CHECK_STR(got.state, "pending");
	CHECK_STR(got.request_json, "{\"tenant\":\"scs\"}");
	CHECK_INT(got.expires_ms, 301000);
	store_action_clear(&got);
	/* the question's message, once delivered, finds its action */
	CHECK_INT(store_action_by_question(st, "$question", &got), 0);
	CHECK_INT(store_outbox_push(st, "r", "#alerts:hs", "txn-question-1", "k", "reply", "{}", 2000, NULL), 1);
	struct outbox_item *items;
	size_t n;
	CHECK_INT(store_outbox_load(st, &items, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(store_outbox_delivered(st, items[0].id, items[0].txn_id, "$question", 2001), 0);
	store_items_free(items, n);
	CHECK_INT(store_action_by_question(st, "$question", &got), 1);
	CHECK_STR(got.event_id, "$cmd1");
	store_action_clear(&got);
	CHECK_INT(store_action_set_state(st, "$cmd1", "accepted"), 0);
	CHECK_INT(store_action_get(st, "$cmd1", &got), 1);
	CHECK_STR(got.state, "accepted");
	store_action_clear(&got);
	CHECK_INT(store_actions_prune(st, 1001), 1);
	CHECK_INT(store_action_get(st, "$cmd1", &got), 0);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	remove_dirs();
}

int main(void)
{
	RUN(test_an_acting_event_is_recorded_once_and_survives_a_restart);
	RUN(test_open_creates_private_dir_and_db_file);
	RUN(test_open_refuses_a_state_dir_that_is_a_file);
	RUN(test_pushed_items_load_in_push_order_with_all_fields);
	RUN(test_a_taken_txn_id_is_a_duplicate_and_writes_nothing);
	RUN(test_delivered_removes_item_and_records_event_id);
	RUN(test_failed_attempt_counts_and_kill_moves_to_dead_letters);
	RUN(test_dead_retry_one_then_all_restores_original_order);
	RUN(test_retention_forgets_old_finished_txns_only);
	RUN(test_retention_goes_round_the_txn_ids_a_slice_at_a_time);
	RUN(test_retention_forgets_failures_closed_before_the_cutoff);
	RUN(test_kv_set_get_overwrite_and_unset);
	RUN(test_data_survives_close_and_reopen);
	RUN(test_uncommitted_batch_is_lost_in_a_crash);
	RUN(test_committed_batch_survives_a_crash);
	RUN(test_database_is_in_wal_mode);
	RUN(test_schema_from_the_future_is_refused_with_a_clear_message);
	RUN(test_five_thousand_pushes_in_batches);
	RUN(test_room_window_loads_in_id_order_after_an_id);
	RUN(test_ids_are_not_reused_after_reopen_while_dead_letters_hold_them);
	RUN(test_a_version_1_database_is_migrated_to_version_2);
	RUN(test_failures_are_found_by_event_and_claims_counted_per_user);
	RUN(test_kv_set_null_forgets_the_value);
	RUN(test_open_failures_by_thread_key_count_and_recover);
	RUN(test_a_version_2_database_gains_the_escalated_column);
	RUN(test_a_version_3_database_loses_dedup_and_keeps_refusing_duplicates);
	RUN(test_delivery_records_its_event_id_even_without_the_txn_row);
	RUN(test_compaction_gives_a_drained_backlog_back_and_keeps_everything_else);
	RUN(test_a_resolve_reaction_closes_a_failure_until_it_is_redacted);
	RUN(test_a_restored_failure_keeps_every_field_and_is_not_added_twice);
	RUN(test_txn_known_sees_queued_transactions_and_a_dropped_item_stays_known);
	return test_done();
}
