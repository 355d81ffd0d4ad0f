/* Tests of delivery: the retry backoff curve and its jitter bounds, the transaction ids
 * the bridge derives for each report and route, and the bounded in-memory window of a
 * room's queue over a real store. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"
#include "deliver.h"
#include "store.h"
#include "test.h"
#include "fake_hs.h"
#include "relations.h"

static void test_backoff_doubles_from_min_and_is_capped_at_max(void)
{
	/* random01 = 0.999.. gives the top of the jitter range, i.e. almost the raw curve. */
	double top = 0.999999;
	CHECK_INT(deliver_backoff_ms(1, 1000, 300000, top), 999);
	CHECK_INT(deliver_backoff_ms(2, 1000, 300000, top), 1999);
	CHECK_INT(deliver_backoff_ms(3, 1000, 300000, top), 3999);
	CHECK_INT(deliver_backoff_ms(9, 1000, 300000, top), 255999);
	CHECK_INT(deliver_backoff_ms(10, 1000, 300000, top), 299999);
	CHECK_INT(deliver_backoff_ms(1000, 1000, 300000, top), 299999);
}

static void test_jitter_keeps_delays_between_half_and_full(void)
{
	for (int attempt = 1; attempt < 12; attempt++) {
		uint64_t lo = deliver_backoff_ms(attempt, 500, 60000, 0.0);
		uint64_t hi = deliver_backoff_ms(attempt, 500, 60000, 0.999999);
		uint64_t raw = deliver_backoff_ms(attempt, 500, 60000, 0.999999999) + 1;
		CHECK(lo * 2 <= raw + 1);
		CHECK(hi < raw + 1);
		CHECK(lo < hi);
	}
}

static void test_backoff_survives_nonsense_arguments(void)
{
	CHECK_INT(deliver_backoff_ms(0, 1000, 5000, 0.0), 500);
	CHECK_INT(deliver_backoff_ms(-3, 1000, 5000, 0.0), 500);
	CHECK_INT(deliver_backoff_ms(3, 1000, 10, 0.0), 500);  /* max below min: min wins */
	CHECK_INT(deliver_backoff_ms(2, 1000, 5000, 7.0), 1000); /* random out of range: no jitter up */
}

static void test_txn_id_is_deterministic_and_distinguishes_its_parts(void)
{
	char *a = bridge_txn_id("5e7a9c1b", "failure", "alerts");
	char *b = bridge_txn_id("5e7a9c1b", "failure", "alerts");
	char *c = bridge_txn_id("5e7a9c1b", "start", "alerts");
	char *d = bridge_txn_id("5e7a9c1b", "failure", "ops");
	CHECK_STR(a, "zmb.alerts.failure.5e7a9c1b");
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0 && strcmp(a, d) != 0);
	free(a);
	free(b);
	free(c);
	free(d);
}

static void test_txn_id_has_only_url_safe_characters(void)
{
	char *t = bridge_txn_id("fnv1a64:0123456789abcdef", "fail/ure <x>\n", "r.1");
	CHECK_STR(t, "zmb.r_1.fail_ure__x__.fnv1a64_0123456789abcdef");
	free(t);
}

/* ---- the in-memory window, over a real store in a fresh /tmp directory ---- */

static char base_dir[64];
static char state_dir[128];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct world {
	struct store *st;
	struct loop *loop;
	struct matrix_client *mc;
	struct config_matrix cfg;
	struct stats stats;
	struct deliverer *d;
};

/* No room is ever made ready, so nothing is sent: the queue only fills, or drains into
 * dead letters when the room fails. The homeserver URL is never contacted. */
static bool world_open(struct world *w)
{
	memset(w, 0, sizeof *w);
	snprintf(base_dir, sizeof base_dir, "/tmp/zmb-deliver-XXXXXX");
	if (!mkdtemp(base_dir))
		return false;
	snprintf(state_dir, sizeof state_dir, "%s/state", base_dir);
	char err[512];
	w->st = store_open(state_dir, err, sizeof err);
	if (!w->st) {
		printf("# store_open: %s\n", err);
		return false;
	}
	w->loop = loop_new();
	w->cfg.homeserver = "http://127.0.0.1:9";
	w->cfg.request_timeout_s = 5;
	w->cfg.retry_min_ms = 1000;
	w->cfg.retry_max_ms = 5000;
	w->mc = matrix_client_new(w->loop, &w->cfg);
	w->d = deliverer_new(w->loop, w->st, w->mc, &w->cfg, &w->stats);
	return w->mc && w->d;
}

static void world_close(struct world *w)
{
	deliverer_free(w->d);
	matrix_client_free(w->mc);
	loop_free(w->loop);
	store_close(w->st);
	stats_clear(&w->stats);
	nftw(base_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Pushes report number i for room into the store and hands it to the deliverer, as the
 * bridge does. Returns its outbox id, or -1. */
static int64_t push_and_enqueue(struct world *w, const char *room, int i)
{
	char key[32], txn[64];
	snprintf(key, sizeof key, "uuid-%06d", i);
	snprintf(txn, sizeof txn, "zmb.r.failure.%s.%s", key, room);
	/* About the size of a real report's content, so a leak would show. */
	static char content[3001];
	if (!content[0]) {
		memset(content, 'x', sizeof content - 1);
		memcpy(content, "{\"body\":\"", 9);
		memcpy(content + sizeof content - 3, "\"}", 2);
	}
	int64_t id = -1;
	if (store_outbox_push(w->st, "r", room, txn, key, "failure", content, 1000 + i, &id) != 1)
		return -1;
	struct outbox_item item = {
		.id = id,
		.route = xstrdup("r"),
		.room = xstrdup(room),
		.txn_id = xstrdup(txn),
		.event_key = xstrdup(key),
		.action = xstrdup("failure"),
		.content_json = xstrdup(content),
		.created_ms = 1000 + i,
	};
	deliverer_enqueue(w->d, &item);
	return id;
}

static void test_queue_of_10000_keeps_a_bounded_window_in_memory(void)
{
	struct world w;
	if (!world_open(&w)) {
		CHECK(!"world set up");
		return;
	}
	size_t most = 0;
	bool pushed = true;
	for (int i = 0; i < 10000 && pushed; i++) {
		pushed = push_and_enqueue(&w, i % 2 ? "#b:example.org" : "#a:example.org", i) > 0;
		if (deliverer_in_memory(w.d) > most)
			most = deliverer_in_memory(w.d);
	}
	CHECK(pushed);
	CHECK_INT(store_commit(w.st), 0);
	/* Two rooms, a window of 256 each. */
	CHECK(most <= 2 * 256);
	CHECK_INT(deliverer_in_memory(w.d), 2 * 256);
	CHECK_INT(deliverer_queued(w.d), 10000);
	CHECK_INT(store_outbox_depth(w.st), 10000);
	world_close(&w);
}

static void test_window_refills_from_the_store_in_id_order(void)
{
	struct world w;
	if (!world_open(&w)) {
		CHECK(!"world set up");
		return;
	}
	int64_t ids[1000];
	for (int i = 0; i < 1000; i++)
		ids[i] = push_and_enqueue(&w, i % 3 ? "#a:example.org" : "#b:example.org", i);
	CHECK_INT(deliverer_queued(w.d), 1000);
	/* A failed room empties its queue into dead letters, one by one, head first: the
	 * window must refill from the outbox until the store has nothing left for it. */
	deliverer_room_failed(w.d, "#a:example.org", "gone");
	CHECK_INT(deliverer_queued(w.d), 334);
	CHECK_INT(store_outbox_depth(w.st), 334);
	struct dead_letter *dead;
	size_t n;
	CHECK_INT(store_dead_list(w.st, &dead, &n), 0);
	CHECK_INT(n, 666);
	size_t k = 0;
	bool in_order = true;
	for (int i = 0; i < 1000 && k < n; i++)
		if (i % 3)
			in_order &= dead[k++].id == ids[i];
	CHECK(in_order);
	store_dead_free(dead, n);
	/* Room b's backlog is still whole, and its window still bounded. */
	CHECK(deliverer_in_memory(w.d) <= 256);
	/* New reports of the failed room go straight to dead letters as well. */
	push_and_enqueue(&w, "#a:example.org", 5000);
	CHECK_INT(deliverer_queued(w.d), 334);
	CHECK_INT(store_outbox_depth(w.st), 334);
	world_close(&w);
}

/* Pushes report i into the store only, as a previous run of the bridge would have. */
static int64_t push_only(struct world *w, const char *room, int i)
{
	char key[32], txn[64];
	snprintf(key, sizeof key, "old-%06d", i);
	snprintf(txn, sizeof txn, "zmb.r.failure.%s", key);
	int64_t id = -1;
	if (store_outbox_push(w->st, "r", room, txn, key, "failure", "{\"body\":\"x\"}", 1000 + i, &id) != 1)
		return -1;
	return id;
}

static void test_adopting_a_backlog_fills_only_the_window(void)
{
	struct world w;
	if (!world_open(&w)) {
		CHECK(!"world set up");
		return;
	}
	for (int i = 0; i < 1500; i++)
		push_only(&w, i < 1000 ? "#a:example.org" : "#b:example.org", i);
	CHECK_INT(store_commit(w.st), 0);
	CHECK_INT(deliverer_adopt_outbox(w.d), 1500);
	CHECK_INT(deliverer_queued(w.d), 1500);
	CHECK(deliverer_in_memory(w.d) <= 2 * 256);
	/* Adopting again (a reload) takes up nothing twice. */
	CHECK_INT(deliverer_adopt_outbox(w.d), 0);
	CHECK_INT(deliverer_queued(w.d), 1500);
	/* New reports queue behind the backlog, and all of it drains in id order. */
	int64_t last = push_and_enqueue(&w, "#a:example.org", 9999);
	deliverer_room_failed(w.d, "#a:example.org", "gone");
	struct dead_letter *dead;
	size_t n;
	CHECK_INT(store_dead_list(w.st, &dead, &n), 0);
	CHECK_INT(n, 1001);
	bool ascending = true;
	for (size_t i = 1; i < n; i++)
		ascending &= dead[i - 1].id < dead[i].id;
	CHECK(ascending);
	CHECK(n == 1001 && dead[1000].id == last);
	store_dead_free(dead, n);
	CHECK_INT(deliverer_queued(w.d), 500);
	world_close(&w);
}

static void test_adopting_finds_a_dead_letter_put_back_below_the_window(void)
{
	struct world w;
	if (!world_open(&w)) {
		CHECK(!"world set up");
		return;
	}
	int64_t ids[5];
	for (int i = 0; i < 5; i++)
		ids[i] = push_only(&w, "#c:example.org", i);
	CHECK_INT(store_outbox_kill(w.st, ids[2], "refused", 2000), 0);
	CHECK_INT(deliverer_adopt_outbox(w.d), 4);
	CHECK_INT(deliverer_queued(w.d), 4);
	/* The operator retries the dead letter: its old id comes back below the window's top,
	 * where no refill would look. */
	CHECK_INT(store_dead_retry(w.st, ids[2]), 1);
	CHECK_INT(deliverer_adopt_outbox(w.d), 1);
	CHECK_INT(deliverer_queued(w.d), 5);
	CHECK_INT(deliverer_in_memory(w.d), 5);
	CHECK(deliverer_has_item(w.d, ids[2]));
	world_close(&w);
}

/* ---- relations resolved at send time, against the fake homeserver ---- */

#define ALERTS "!alerts:localhost"

/* Queues content for ALERTS under route and action, as the bridge does; takes content. */
static int64_t push_as(struct world *w, const char *route, const char *action, const char *txn, const char *key,
		       cJSON *content)
{
	char *json = cJSON_PrintUnformatted(content);
	int64_t id = -1;
	if (store_outbox_push(w->st, route, ALERTS, txn, key, action, json, 1000, &id) == 1) {
		struct outbox_item item = {.id = id,
					   .route = xstrdup(route),
					   .room = xstrdup(ALERTS),
					   .txn_id = xstrdup(txn),
					   .event_key = xstrdup(key),
					   .action = xstrdup(action),
					   .content_json = xstrdup(json),
					   .created_ms = 1000};
		deliverer_enqueue(w->d, &item);
	}
	cJSON_free(json);
	cJSON_Delete(content);
	return id;
}

static int64_t push_content(struct world *w, const char *txn, const char *key, cJSON *content)
{
	return push_as(w, "r", "failure", txn, key, content);
}

static cJSON *notice(const char *body)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", body);
	return c;
}

struct until_ctx {
	struct world *w;
	uint64_t posted, dead, deadline_ms;
};

static void check_done(struct loop *loop, void *data)
{
	struct until_ctx *u = data;
	uint64_t posted = 0, dead = 0;
	for (size_t i = 0; i < u->w->stats.n_routes; i++) {
		posted += u->w->stats.routes[i].posted;
		dead += u->w->stats.routes[i].failed;
	}
	if ((posted >= u->posted && dead >= u->dead) || loop_now_ms(loop) > u->deadline_ms)
		loop_stop(loop);
	else
		loop_timer_add(loop, 20, check_done, u);
}

static void run_until(struct world *w, uint64_t posted, uint64_t dead)
{
	struct until_ctx u = {w, posted, dead, loop_now_ms(w->loop) + 10000};
	loop_timer_add(w->loop, 20, check_done, &u);
	loop_run(w->loop);
}

/* The room's messages from the bridge, by body. */
static const cJSON *find_event(const cJSON *events, const char *body)
{
	const cJSON *ev;
	cJSON_ArrayForEach(ev, events)
	{
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "content"), "body");
		if (cJSON_IsString(b) && strcmp(b->valuestring, body) == 0)
			return ev;
	}
	return NULL;
}

static const char *path_str(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool world_open_live(struct world *w)
{
	if (!world_open(w))
		return false;
	/* Point the client at the fake homeserver instead of the unreachable default. */
	matrix_client_free(w->mc);
	deliverer_free(w->d);
	w->cfg.homeserver = fake_hs_url;
	w->cfg.access_token = "bridge-token";
	w->cfg.retry_min_ms = 50;
	w->cfg.retry_max_ms = 200;
	w->mc = matrix_client_new(w->loop, &w->cfg);
	w->d = deliverer_new(w->loop, w->st, w->mc, &w->cfg, &w->stats);
	return w->mc && w->d;
}

static void test_thread_reply_and_edit_queued_by_txn_point_at_the_delivered_root(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	push_content(&w, "zmb.t.root", "k1", notice("root"));
	cJSON *reply = notice("again");
	relations_make_thread_reply(reply, NULL, NULL);
	relations_point_at_txn(reply, "zmb.t.root");
	push_content(&w, "zmb.t.reply", "k2", reply);
	cJSON *fresh = notice("root, edited");
	cJSON *edit = relations_edit_new(fresh, NULL, NULL);
	cJSON_Delete(fresh);
	relations_point_at_txn(edit, "zmb.t.root");
	push_content(&w, "zmb.t.edit", "k3", edit);
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	run_until(&w, 3, 0);

	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	const cJSON *root = find_event(list, "root");
	const cJSON *again = find_event(list, "again");
	const cJSON *edited = find_event(list, "* root, edited");
	CHECK(root && again && edited);
	if (root && again && edited) {
		const char *root_id = path_str(root, "event_id", NULL, NULL);
		CHECK_STR(path_str(again, "content", "m.relates_to", "event_id"), root_id);
		CHECK_STR(path_str(again, "content", "m.relates_to", "rel_type"), "m.thread");
		const cJSON *rel = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(again, "content"),
								   "m.relates_to");
		CHECK_STR(path_str(rel, "m.in_reply_to", "event_id", NULL), root_id);
		CHECK_STR(path_str(edited, "content", "m.relates_to", "event_id"), root_id);
		CHECK_STR(path_str(edited, "content", "m.relates_to", "rel_type"), "m.replace");
		CHECK(!cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(again, "content"),
							RELATIONS_TXN_KEY));
	}
	cJSON_Delete(events);
	world_close(&w);
}

static void test_a_target_that_never_arrived_posts_the_reply_alone_and_kills_the_edit(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	fake_hs_call("POST", "/_fake/faults",
		     "[{\"method\":\"PUT\",\"path\":\"zmb.t.lost\",\"status\":403,\"errcode\":\"M_FORBIDDEN\",\"count\":1}]",
		     NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	push_content(&w, "zmb.t.lost", "k1", notice("lost root"));
	cJSON *reply = notice("orphan");
	relations_make_thread_reply(reply, NULL, NULL);
	relations_point_at_txn(reply, "zmb.t.lost");
	push_content(&w, "zmb.t.orphan", "k2", reply);
	cJSON *fresh = notice("lost root, edited");
	cJSON *edit = relations_edit_new(fresh, NULL, NULL);
	cJSON_Delete(fresh);
	relations_point_at_txn(edit, "zmb.t.lost");
	push_content(&w, "zmb.t.orphan-edit", "k3", edit);
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	run_until(&w, 1, 2);

	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	const cJSON *orphan = find_event(list, "orphan");
	CHECK(orphan != NULL);
	CHECK(orphan && !cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(orphan, "content"),
							   "m.relates_to"));
	CHECK(find_event(list, "* lost root, edited") == NULL);
	struct dead_letter *dead;
	size_t n;
	CHECK_INT(store_dead_list(w.st, &dead, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(dead[0].txn_id, "zmb.t.lost");
		CHECK_STR(dead[1].txn_id, "zmb.t.orphan-edit");
		CHECK_STR(dead[1].reason, "an edit of a message that was never delivered");
	}
	store_dead_free(dead, n);
	cJSON_Delete(events);
	world_close(&w);
}

/* 403 M_RESOURCE_LIMIT_EXCEEDED (a server over its monthly active users) is the server's
 * state, not the report's: retried until it clears, never a dead letter. */
static void test_a_resource_limit_is_retried_until_it_clears(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	fake_hs_call("POST", "/_fake/faults",
		     "[{\"method\":\"PUT\",\"path\":\"zmb.t.mau\",\"status\":403,\"count\":2,\"body\":"
		     "{\"errcode\":\"M_RESOURCE_LIMIT_EXCEEDED\",\"error\":\"Monthly Active User Limit Exceeded\","
		     "\"admin_contact\":\"mailto:admin@example.org\",\"limit_type\":\"monthly_active_user\"}}]",
		     NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	push_content(&w, "zmb.t.mau", "k1", notice("over the limit, then posted"));
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	run_until(&w, 1, 0);
	CHECK_INT(w.stats.retries, 2);
	CHECK_INT(store_outbox_depth(w.st), 0);
	struct dead_letter *dead;
	size_t n;
	CHECK_INT(store_dead_list(w.st, &dead, &n), 0);
	CHECK_INT(n, 0);
	store_dead_free(dead, n);
	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	CHECK(find_event(list, "over the limit, then posted") != NULL);
	cJSON_Delete(events);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	world_close(&w);
}

static bool skip_lost(const struct outbox_item *item, void *data)
{
	(*(int *)data)++;
	return strcmp(item->txn_id, "zmb.t.skip") == 0;
}

static void stop_loop(struct loop *loop, void *data)
{
	(void)data;
	loop_stop(loop);
}

static void test_a_held_deliverer_sends_nothing_and_a_skipped_item_is_dropped_unsent(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	int asked = 0;
	deliverer_on_skip(w.d, skip_lost, &asked);
	deliverer_hold(w.d, true);
	push_content(&w, "zmb.t.keep1", "k1", notice("first"));
	push_content(&w, "zmb.t.skip", "k2", notice("covered by the summary"));
	push_content(&w, "zmb.t.keep2", "k3", notice("second"));
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	loop_timer_add(w.loop, 300, stop_loop, NULL);
	loop_run(w.loop);
	CHECK_INT(asked, 0); /* held: not even asked */
	CHECK_INT(deliverer_queued(w.d), 3);
	deliverer_hold(w.d, false);
	run_until(&w, 2, 0);
	CHECK_INT(asked, 3);
	CHECK_INT(deliverer_queued(w.d), 0);
	CHECK_INT(store_outbox_depth(w.st), 0);
	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	CHECK(find_event(list, "first") && find_event(list, "second"));
	CHECK(find_event(list, "covered by the summary") == NULL);
	cJSON_Delete(events);
	world_close(&w);
}

static int not_joined_calls;

static void count_not_joined(const char *room, const char *reason, void *data)
{
	(void)data;
	not_joined_calls++;
	CHECK_STR(room, ALERTS);
	CHECK_CONTAINS(reason, "not in room");
}

/* Synapse's answer to a send from a kicked or banned bot: 403 M_FORBIDDEN "User ... not in
 * room ...". The room is paused, not the report dead: nothing more is tried, and once the
 * room is ready again (the bot joined after an invite) all of it goes out in order, once. */
static void test_not_in_room_pauses_the_room_and_ready_resumes_it_in_order(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	fake_hs_call("POST", "/_fake/faults",
		     "[{\"method\":\"PUT\",\"path\":\"zmb.t.out1\",\"status\":403,\"errcode\":\"M_FORBIDDEN\","
		     "\"error\":\"User @zuul-bot:localhost not in room !alerts:localhost (<leave>)\",\"count\":1}]",
		     NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	not_joined_calls = 0;
	deliverer_on_not_joined(w.d, count_not_joined, NULL);
	push_content(&w, "zmb.t.out1", "k1", notice("while out 1"));
	push_content(&w, "zmb.t.out2", "k2", notice("while out 2"));
	push_content(&w, "zmb.t.out3", "k3", notice("while out 3"));
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	loop_timer_add(w.loop, 500, stop_loop, NULL);
	loop_run(w.loop);
	CHECK_INT(not_joined_calls, 1);
	CHECK_INT(store_outbox_depth(w.st), 3);
	CHECK_INT(deliverer_queued(w.d), 3);
	CHECK_INT(w.stats.retries, 0);
	cJSON *reqs = NULL;
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &reqs);
	int sends = 0;
	const cJSON *rec;
	cJSON_ArrayForEach(rec, reqs)
	{
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(rec, "path");
		sends += cJSON_IsString(path) && strstr(path->valuestring, "/send/") != NULL;
	}
	cJSON_Delete(reqs);
	CHECK_INT(sends, 1); /* paused: the others were not even tried */

	deliverer_room_ready(w.d, ALERTS, ALERTS);
	run_until(&w, 3, 0);
	CHECK_INT(store_outbox_depth(w.st), 0);
	struct dead_letter *dead;
	size_t n;
	CHECK_INT(store_dead_list(w.st, &dead, &n), 0);
	CHECK_INT(n, 0);
	store_dead_free(dead, n);
	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	struct strbuf order = STRBUF_INIT;
	const cJSON *ev;
	cJSON_ArrayForEach(ev, list)
	{
		const char *body = path_str(ev, "content", "body", NULL);
		if (body && strncmp(body, "while out", 9) == 0)
			strbuf_printf(&order, "%s;", body);
	}
	CHECK_STR(strbuf_str(&order), "while out 1;while out 2;while out 3;");
	strbuf_free(&order);
	cJSON_Delete(events);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	world_close(&w);
}

/* ---- command answers yield to reports ---- */

static void push_report(struct world *w, int i)
{
	char txn[32], key[16], body[32];
	snprintf(txn, sizeof txn, "zmb.t.report%d", i);
	snprintf(key, sizeof key, "r%d", i);
	snprintf(body, sizeof body, "report %d", i);
	push_content(w, txn, key, notice(body));
}

/* An answer to a room command, as chatops posts it through the bridge. */
static void push_answer(struct world *w, int i)
{
	char txn[32], key[16], body[32];
	snprintf(txn, sizeof txn, "zmb.t.answer%d", i);
	snprintf(key, sizeof key, "a%d", i);
	snprintf(body, sizeof body, "answer %d", i);
	push_as(w, DELIVER_ANSWER_ROUTE, DELIVER_ANSWER_ACTION, txn, key, notice(body));
}

/* The bodies of the room's messages, oldest first, as "body;body;". */
static void room_bodies(struct strbuf *out)
{
	cJSON *events = NULL;
	fake_hs_call("GET", "/_fake/rooms/%21alerts%3Alocalhost/events", NULL, NULL, &events);
	const cJSON *list = cJSON_IsArray(events) ? events : cJSON_GetObjectItemCaseSensitive(events, "events");
	const cJSON *ev;
	cJSON_ArrayForEach(ev, list)
	{
		const char *body = path_str(ev, "content", "body", NULL);
		if (body)
			strbuf_printf(out, "%s;", body);
	}
	cJSON_Delete(events);
}

static void test_the_answer_classifier_knows_command_answers_only(void)
{
	struct outbox_item answer = {.route = "chatops", .action = "reply"};
	struct outbox_item notice_item = {.route = "chatops", .action = "mute-end"};
	struct outbox_item report = {.route = "alerts", .action = "reply"};
	CHECK(deliver_is_answer(&answer));
	CHECK(!deliver_is_answer(&notice_item));
	CHECK(!deliver_is_answer(&report));
}

/* A report in flight, two answers waiting, then a report: the later report goes before the
 * answers queued before it; reports keep their order, answers theirs, each once. */
static void test_a_report_queued_after_answers_is_sent_before_them(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	push_report(&w, 0); /* in flight from here on */
	push_answer(&w, 1);
	push_answer(&w, 2);
	push_report(&w, 1);
	push_answer(&w, 3);
	push_report(&w, 2);
	CHECK_INT(deliverer_in_flight(w.d), 1);
	run_until(&w, 6, 0);
	struct strbuf order = STRBUF_INIT;
	room_bodies(&order);
	CHECK_STR(strbuf_str(&order), "report 0;report 1;report 2;answer 1;answer 2;answer 3;");
	strbuf_free(&order);
	CHECK_INT(stats_route(&w.stats, "r")->posted, 3);
	CHECK_INT(stats_route(&w.stats, DELIVER_ANSWER_ROUTE)->posted, 3);
	CHECK_INT(store_outbox_depth(w.st), 0);
	world_close(&w);
}

/* The answers of the last run are in the outbox with its reports: after a restart they are
 * still sent, once, after the reports of their room. */
static void test_after_a_restart_answers_still_go_out_once_after_the_reports(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	push_answer(&w, 1);
	push_answer(&w, 2);
	push_report(&w, 1);
	push_answer(&w, 3);
	push_report(&w, 2);
	CHECK_INT(store_commit(w.st), 0);
	deliverer_free(w.d); /* the bridge stopped before the room was ready */
	w.d = deliverer_new(w.loop, w.st, w.mc, &w.cfg, &w.stats);
	CHECK_INT(deliverer_adopt_outbox(w.d), 5);
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	run_until(&w, 5, 0);
	struct strbuf order = STRBUF_INIT;
	room_bodies(&order);
	CHECK_STR(strbuf_str(&order), "report 1;report 2;answer 1;answer 2;answer 3;");
	strbuf_free(&order);
	CHECK_INT(store_outbox_depth(w.st), 0);
	world_close(&w);
}

/* Answers take no report's place in the window: the reports spilled to the store behind
 * them are read back and sent first; memory stays bounded all the same. */
static void test_reports_spilled_behind_answers_are_read_back_before_the_answers(void)
{
	struct world w;
	fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL);
	if (!world_open_live(&w)) {
		CHECK(!"world opened");
		return;
	}
	for (int i = 0; i < 40; i++)
		push_answer(&w, i);
	for (int i = 0; i < 280; i++)
		push_report(&w, i);
	CHECK_INT(deliverer_queued(w.d), 320);
	CHECK_INT(deliverer_in_memory(w.d), 40 + 256);
	deliverer_room_ready(w.d, ALERTS, ALERTS);
	run_until(&w, 320, 0);
	struct strbuf want = STRBUF_INIT, got = STRBUF_INIT;
	for (int i = 0; i < 280; i++)
		strbuf_printf(&want, "report %d;", i);
	for (int i = 0; i < 40; i++)
		strbuf_printf(&want, "answer %d;", i);
	room_bodies(&got);
	CHECK_STR(strbuf_str(&got), strbuf_str(&want));
	strbuf_free(&want);
	strbuf_free(&got);
	CHECK_INT(store_outbox_depth(w.st), 0);
	world_close(&w);
}

static void test_answers_waiting_in_memory_are_bounded_too(void)
{
	struct world w;
	if (!world_open(&w)) {
		CHECK(!"world set up");
		return;
	}
	for (int i = 0; i < 600; i++)
		push_answer(&w, i);
	CHECK_INT(deliverer_queued(w.d), 600);
	CHECK_INT(deliverer_in_memory(w.d), 2 * 256);
	/* A failed room still empties in outbox order, answers and all. */
	deliverer_room_failed(w.d, ALERTS, "gone");
	struct dead_letter *dead;
	size_t n;
	CHECK_INT(store_dead_list(w.st, &dead, &n), 0);
	CHECK_INT(n, 600);
	bool ascending = true;
	for (size_t i = 1; i < n; i++)
		ascending &= dead[i - 1].id < dead[i].id;
	CHECK(ascending);
	store_dead_free(dead, n);
	world_close(&w);
}

int main(void)
{
	RUN(test_backoff_doubles_from_min_and_is_capped_at_max);
	RUN(test_jitter_keeps_delays_between_half_and_full);
	RUN(test_backoff_survives_nonsense_arguments);
	RUN(test_txn_id_is_deterministic_and_distinguishes_its_parts);
	RUN(test_txn_id_has_only_url_safe_characters);
	RUN(test_queue_of_10000_keeps_a_bounded_window_in_memory);
	RUN(test_window_refills_from_the_store_in_id_order);
	RUN(test_adopting_a_backlog_fills_only_the_window);
	RUN(test_adopting_finds_a_dead_letter_put_back_below_the_window);
	RUN(test_the_answer_classifier_knows_command_answers_only);
	RUN(test_answers_waiting_in_memory_are_bounded_too);
	if (fake_hs_start() == 0) {
		RUN(test_thread_reply_and_edit_queued_by_txn_point_at_the_delivered_root);
		RUN(test_a_target_that_never_arrived_posts_the_reply_alone_and_kills_the_edit);
		RUN(test_a_held_deliverer_sends_nothing_and_a_skipped_item_is_dropped_unsent);
		RUN(test_a_resource_limit_is_retried_until_it_clears);
		RUN(test_not_in_room_pauses_the_room_and_ready_resumes_it_in_order);
		RUN(test_a_report_queued_after_answers_is_sent_before_them);
		RUN(test_after_a_restart_answers_still_go_out_once_after_the_reports);
		RUN(test_reports_spilled_behind_answers_are_read_back_before_the_answers);
		fake_hs_stop();
	} else {
		RUN_NAMED("fake homeserver starts", CHECK(!"fake homeserver started"));
	}
	return test_done();
}
