/* Tests of the claims rebuild: real HTTP over loopback against tests/fake_homeserver.py,
 * seeded through /_fake/rooms/ID/inject, driven by the real loop. */
#include "rebuild.h"

#include <curl/curl.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "loop.h"
#include "strbuf.h"
#include "test.h"
#include "fake_hs.h"

#define BOT "@zuul-bot:localhost"
#define ALICE "@alice:localhost"
#define BOB "@bob:localhost"
#define ALERTS "!alerts:localhost"
#define OPS "!ops:localhost"
#define ALERTS_Q "%21alerts%3Alocalhost"
#define OPS_Q "%21ops%3Alocalhost"
#define CLAIM "\xf0\x9f\x91\x80"  /* 👀 */
#define RESOLVE "\xe2\x9c\x85"    /* ✅ */

/* ---- the fake homeserver ---- */

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void add_fault(const char *rule_json)
{
	long st = fake_hs_call("POST", "/_fake/faults", rule_json, NULL, NULL);
	if (st != 200)
		printf("# could not install fault %s: HTTP %ld\n", rule_json, st);
}

static void reset_homeserver(void)
{
	if (fake_hs_call("POST", "/_fake/reset", "{}", NULL, NULL) != 200)
		printf("# /_fake/reset failed\n");
}

/* Injects an event; returns its event id (caller frees) or NULL. */
static char *inject(const char *room_q, const char *sender, const char *type, const char *content_json)
{
	struct strbuf path = STRBUF_INIT, body = STRBUF_INIT;
	strbuf_printf(&path, "/_fake/rooms/%s/inject", room_q);
	strbuf_printf(&body, "{\"sender\":\"%s\",\"type\":\"%s\",\"content\":%s}", sender, type, content_json);
	cJSON *out = NULL;
	long st = fake_hs_call("POST", strbuf_str(&path), strbuf_str(&body), NULL, &out);
	char *id = st == 200 ? xstrdup(json_str(out, "event_id")) : NULL;
	if (!id)
		printf("# inject %s into %s failed: HTTP %ld\n", type, room_q, st);
	cJSON_Delete(out);
	strbuf_free(&path);
	strbuf_free(&body);
	return id;
}

static char *marker(const char *txn, int64_t count, int64_t recovered_ms, int escalated)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb,
		      "{\"v\":1,\"txn\":\"%s\",\"route\":\"nightly\",\"key\":\"key-%s\",\"thread_key\":\"proj|main|periodic|%s\","
		      "\"opened_ms\":1700000000000,\"count\":%lld,\"recovered_ms\":%lld,\"escalated\":%d}",
		      txn, txn, txn, (long long)count, (long long)recovered_ms, escalated);
	return strbuf_detach(&sb);
}

static char *root_content(const char *txn)
{
	char *m = marker(txn, 1, 0, 0);
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb,
		      "{\"msgtype\":\"m.notice\",\"body\":\"%s failed\",\"format\":\"org.matrix.custom.html\","
		      "\"formatted_body\":\"<b>%s</b> failed\",\"zmb.failure\":%s}",
		      txn, txn, m);
	free(m);
	return strbuf_detach(&sb);
}

/* A failure message as the bridge posts it. Caller frees. */
static char *inject_root(const char *room_q, const char *txn)
{
	char *c = root_content(txn);
	char *id = inject(room_q, BOT, "m.room.message", c);
	free(c);
	return id;
}

/* An edit by sender of target whose m.new_content carries marker_json. Caller frees. */
static char *inject_edit(const char *room_q, const char *sender, const char *target, const char *marker_json)
{
	struct strbuf c = STRBUF_INIT;
	strbuf_printf(&c,
		      "{\"msgtype\":\"m.notice\",\"body\":\"* edited\",\"m.new_content\":{\"msgtype\":\"m.notice\","
		      "\"body\":\"edited\",\"zmb.failure\":%s},\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"%s\"}}",
		      marker_json, target);
	char *id = inject(room_q, sender, "m.room.message", strbuf_str(&c));
	strbuf_free(&c);
	return id;
}

static char *inject_reaction(const char *room_q, const char *sender, const char *target, const char *key)
{
	char content[512];
	snprintf(content, sizeof content,
		 "{\"m.relates_to\":{\"rel_type\":\"m.annotation\",\"event_id\":\"%s\",\"key\":\"%s\"}}", target, key);
	return inject(room_q, sender, "m.reaction", content);
}

static char *inject_text(const char *room_q, const char *sender, const char *text)
{
	char content[256];
	snprintf(content, sizeof content, "{\"msgtype\":\"m.text\",\"body\":\"%s\"}", text);
	return inject(room_q, sender, "m.room.message", content);
}

static void inject_redaction(const char *room_q, const char *sender, const char *target)
{
	struct strbuf body = STRBUF_INIT, path = STRBUF_INIT;
	strbuf_printf(&path, "/_fake/rooms/%s/inject", room_q);
	strbuf_printf(&body, "{\"sender\":\"%s\",\"type\":\"m.room.redaction\",\"content\":{},\"redacts\":\"%s\"}",
		      sender, target);
	long st = fake_hs_call("POST", strbuf_str(&path), strbuf_str(&body), NULL, NULL);
	if (st != 200)
		printf("# redaction failed: HTTP %ld\n", st);
	strbuf_free(&body);
	strbuf_free(&path);
}

/* The requests the fake saw whose path contains what, oldest first. Caller deletes. */
static cJSON *requests_matching(const char *what)
{
	cJSON *all = NULL, *out = cJSON_CreateArray();
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &all);
	const cJSON *rec;
	cJSON_ArrayForEach(rec, all)
	{
		const char *p = json_str(rec, "path");
		if (p && strstr(p, what))
			cJSON_AddItemToArray(out, cJSON_Duplicate(rec, true));
	}
	cJSON_Delete(all);
	return out;
}

static const char *query_of(const cJSON *rec, const char *key)
{
	return json_str(cJSON_GetObjectItemCaseSensitive(rec, "query"), key);
}

/* ---- running a rebuild ---- */

static struct loop *loop;
static struct config_matrix cfg;
static struct rebuild_result *result;
static int done_calls;
static struct rebuild *free_in_done; /* rebuild_free from inside the callback */

static void on_done(struct rebuild_result *res, void *data)
{
	(void)data;
	done_calls++;
	rebuild_result_free(result);
	result = res;
	if (free_in_done) {
		struct rebuild *rb = free_in_done;
		free_in_done = NULL;
		rebuild_free(rb);
	}
	loop_stop(loop);
}

static void deadline_fired(struct loop *l, void *data)
{
	(void)data;
	loop_stop(l);
}

static void run_for(uint64_t ms)
{
	uint64_t t = loop_timer_add(loop, ms, deadline_fired, NULL);
	loop_run(loop);
	loop_timer_cancel(loop, t);
}

static void result_reset(void)
{
	rebuild_result_free(result);
	result = NULL;
	done_calls = 0;
}

/* Starts a rebuild of rooms and runs the loop until it is done (or 20 s passed). */
static bool rebuild_rooms(const char *const *rooms, size_t n, const struct rebuild_options *opt)
{
	result_reset();
	struct rebuild *rb = rebuild_start(loop, &cfg, BOT, rooms, n, opt, on_done, NULL);
	CHECK(rb != NULL);
	if (!rb)
		return false;
	CHECK_INT(done_calls, 0); /* never from inside rebuild_start */
	run_for(20000);
	rebuild_free(rb);
	CHECK_INT(done_calls, 1);
	return result != NULL;
}

static bool rebuild_alerts(const struct rebuild_options *opt)
{
	const char *rooms[] = {ALERTS};
	return rebuild_rooms(rooms, 1, opt);
}

static const struct rebuild_room *room_of(const char *room_id)
{
	for (size_t i = 0; result && i < result->n_rooms; i++)
		if (strcmp(result->rooms[i].room_id, room_id) == 0)
			return &result->rooms[i];
	return NULL;
}

static const struct rebuild_failure *failure_of(const char *txn)
{
	for (size_t i = 0; result && i < result->n_failures; i++)
		if (strcmp(result->failures[i].txn, txn) == 0)
			return &result->failures[i];
	return NULL;
}

/* "txn,txn,..." of the result's failures, in order. Caller frees. */
static char *txn_list(void)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; result && i < result->n_failures; i++)
		strbuf_printf(&sb, "%s%s", i ? "," : "", result->failures[i].txn);
	return strbuf_detach(&sb);
}

/* "sender key,sender key" of a failure's reactions, in order. Caller frees. */
static char *reaction_list(const struct rebuild_failure *f)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; f && i < f->n_reactions; i++)
		strbuf_printf(&sb, "%s%s %s", i ? "," : "", f->reactions[i].sender, f->reactions[i].key);
	return strbuf_detach(&sb);
}

static bool same_json(const char *got, const char *want)
{
	cJSON *g = cJSON_Parse(got ? got : ""), *w = cJSON_Parse(want);
	bool same = g && w && cJSON_Compare(g, w, true);
	if (!same)
		printf("# JSON differs:\n#   expected: %s\n#   got:      %s\n", want, got ? got : "(null)");
	cJSON_Delete(g);
	cJSON_Delete(w);
	return same;
}

static struct rebuild_options fast_options(void)
{
	return (struct rebuild_options){.retry_min_ms = 20, .retry_max_ms = 100, .max_attempts = 5};
}

/* ---- pure ---- */

static void test_messages_filter_asks_for_the_bridges_messages_only(void)
{
	char *f = rebuild_messages_filter_json(BOT);
	CHECK(same_json(f, "{\"senders\":[\"" BOT "\"],\"types\":[\"m.room.message\"]}"));
	free(f);
}

static const char *marker_why(const char *json, bool root, struct rebuild_marker *m)
{
	cJSON *j = cJSON_Parse(json);
	const char *why = rebuild_marker_read(j, root, m);
	cJSON_Delete(j);
	return why;
}

static void test_marker_read_wants_every_field_of_a_root_and_progress_of_an_edit(void)
{
	struct rebuild_marker m;
	cJSON *j = cJSON_Parse("{\"v\":1,\"txn\":\"t1\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"tk\","
			       "\"opened_ms\":1700000000000,\"count\":3,\"recovered_ms\":0,\"escalated\":5}");
	CHECK(rebuild_marker_read(j, true, &m) == NULL);
	CHECK_STR(m.txn, "t1");
	CHECK_STR(m.thread_key, "tk");
	CHECK(m.opened_ms == 1700000000000LL);
	CHECK_INT(m.count, 3);
	CHECK_INT(m.escalated, 5);
	CHECK(rebuild_marker_read(j, false, &m) == NULL);
	CHECK(m.txn == NULL);
	CHECK_INT(m.count, 3);
	cJSON_Delete(j);

	/* An edit's marker carries progress only; a root must say what it is about. */
	const char *progress = "{\"v\":1,\"count\":2,\"recovered_ms\":1700000600000,\"escalated\":0}";
	CHECK(marker_why(progress, false, &m) == NULL);
	CHECK(m.recovered_ms == 1700000600000LL);
	CHECK_STR(marker_why(progress, true, &m), "txn, route, key or thread_key is not a non-empty string");
	CHECK(m.count == 0 && m.recovered_ms == 0); /* zeroed when unusable */
	CHECK_STR(marker_why("{\"v\":2,\"count\":1,\"recovered_ms\":0,\"escalated\":0}", false, &m),
		  "marker version is not 1");
	CHECK_STR(marker_why("{\"v\":1,\"count\":0,\"recovered_ms\":0,\"escalated\":0}", false, &m),
		  "count is not an integer in range");
	CHECK_STR(marker_why("{\"v\":1,\"count\":1,\"recovered_ms\":1e300,\"escalated\":0}", false, &m),
		  "recovered_ms is not an integer in range");
	CHECK_STR(marker_why("[1]", false, &m), "marker is not an object");
	CHECK_STR(rebuild_marker_read(NULL, true, &m), "marker is not an object");
}

/* ---- over HTTP ---- */

static void test_failures_newest_edits_and_claims_are_found_exactly(void)
{
	reset_homeserver();
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	free(inject_text(ALERTS_Q, ALICE, "good morning"));
	char *a = inject_root(ALERTS_Q, "txn-a");
	char *b = inject_root(ALERTS_Q, "txn-b");
	char *notice = inject_text(ALERTS_Q, BOT, "bridge started"); /* the bridge's, no failure */
	/* Someone else's message with a marker is no failure of the bridge. */
	char *forged_content = root_content("txn-forged");
	free(inject(ALERTS_Q, ALICE, "m.room.message", forged_content));
	free(forged_content);

	char *m2 = marker("txn-a", 2, 0, 1), *m3 = marker("txn-a", 3, 0, 1), *m99 = marker("txn-a", 99, 0, 3);
	char *edit_a1 = inject_edit(ALERTS_Q, BOT, a, m2);
	char *edit_a2 = inject_edit(ALERTS_Q, BOT, a, m3);
	free(inject_edit(ALERTS_Q, ALICE, a, m99)); /* not the bridge's edit */
	char *claim = inject_reaction(ALERTS_Q, ALICE, a, CLAIM);
	char *resolve = inject_reaction(ALERTS_Q, BOB, a, RESOLVE);
	char *withdrawn = inject_reaction(ALERTS_Q, BOB, a, CLAIM);
	inject_redaction(ALERTS_Q, BOB, withdrawn);
	free(inject_reaction(ALERTS_Q, BOT, a, CLAIM));         /* the bridge's own */
	free(inject_reaction(ALERTS_Q, ALICE, notice, CLAIM));  /* on no failure */
	char *claim_b = inject_reaction(ALERTS_Q, BOB, b, CLAIM);
	/* A repeat posted in a's thread is a failure of its own. */
	char *c_content = root_content("txn-c");
	struct strbuf cc = STRBUF_INIT;
	strbuf_printf(&cc, "%.*s,\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"%s\"}}",
		      (int)strlen(c_content) - 1, c_content, a);
	char *c = inject(ALERTS_Q, BOT, "m.room.message", strbuf_str(&cc));
	char *mb = marker("txn-b", 1, 1700000500000, 0);
	char *edit_b = inject_edit(ALERTS_Q, BOT, b, mb);
	/* The newest edit of b is garbage: the newest usable one counts. */
	free(inject_edit(ALERTS_Q, BOT, b, "{\"v\":1,\"count\":\"x\",\"recovered_ms\":0,\"escalated\":0}"));

	struct rebuild_options opt = fast_options();
	CHECK(rebuild_alerts(&opt));
	char *txns = txn_list();
	CHECK_STR(txns, "txn-a,txn-b,txn-c");
	free(txns);
	const struct rebuild_failure *fc = failure_of("txn-c");
	CHECK(fc && fc->n_reactions == 0 && fc->count == 1);
	CHECK(fc && same_json(fc->content_json, strbuf_str(&cc)));
	CHECK_STR(fc ? fc->event_id : NULL, c);

	const struct rebuild_failure *fa = failure_of("txn-a");
	CHECK(fa != NULL);
	if (fa) {
		CHECK_STR(fa->room_id, ALERTS);
		CHECK_STR(fa->event_id, a);
		CHECK_STR(fa->route, "nightly");
		CHECK_STR(fa->key, "key-txn-a");
		CHECK_STR(fa->thread_key, "proj|main|periodic|txn-a");
		CHECK_INT(fa->opened_ms, 1700000000000LL);
		CHECK_INT(fa->count, 3);
		CHECK_INT(fa->recovered_ms, 0);
		CHECK_INT(fa->escalated, 1);
		CHECK_STR(fa->edit_event_id, edit_a2);
		CHECK(fa->ts_ms > 0 && fa->edited_ms >= fa->ts_ms);
		char *root = root_content("txn-a");
		CHECK(same_json(fa->content_json, root));
		free(root);
		CHECK_CONTAINS(fa->edit_content_json, "\"count\":3");
		char *r = reaction_list(fa);
		CHECK_STR(r, ALICE " " CLAIM "," BOB " " RESOLVE);
		free(r);
		if (fa->n_reactions == 2) {
			CHECK_STR(fa->reactions[0].event_id, claim);
			CHECK_STR(fa->reactions[1].event_id, resolve);
			CHECK(fa->reactions[0].ts_ms > 0 && fa->reactions[1].ts_ms >= fa->reactions[0].ts_ms);
		}
	}
	const struct rebuild_failure *fb = failure_of("txn-b");
	CHECK(fb != NULL);
	if (fb) {
		CHECK_STR(fb->event_id, b);
		CHECK_INT(fb->count, 1);
		CHECK_INT(fb->recovered_ms, 1700000500000LL);
		CHECK_STR(fb->edit_event_id, edit_b);
		char *r = reaction_list(fb);
		CHECK_STR(r, BOB " " CLAIM);
		free(r);
		if (fb->n_reactions == 1)
			CHECK_STR(fb->reactions[0].event_id, claim_b);
	}
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr != NULL);
	if (rr) {
		CHECK(rr->complete);
		CHECK(!rr->truncated);
		CHECK_STR(rr->reason, NULL);
		/* The filter kept the others' messages out: only the bridge's 8 were read. */
		CHECK_INT(rr->events_scanned, 8);
	}
	CHECK_INT(result ? result->n_rooms : 0, 1);

	/* The page with everything, then the empty one without end: the room's start. */
	cJSON *msgs = requests_matching("/messages");
	CHECK_INT(cJSON_GetArraySize(msgs), 2);
	const cJSON *first = cJSON_GetArrayItem(msgs, 0);
	CHECK_STR(query_of(first, "dir"), "b");
	CHECK_STR(query_of(first, "limit"), "100");
	CHECK_STR(query_of(first, "from"), NULL);
	CHECK(same_json(query_of(first, "filter"), "{\"senders\":[\"" BOT "\"],\"types\":[\"m.room.message\"]}"));
	cJSON_Delete(msgs);
	cJSON *rels = requests_matching("/relations/");
	CHECK_INT(cJSON_GetArraySize(rels), 3); /* one per failure, none for the notice */
	CHECK_CONTAINS(json_str(cJSON_GetArrayItem(rels, 0), "path"), "/m.annotation");
	cJSON_Delete(rels);

	free(a);
	free(b);
	free(notice);
	free(m2);
	free(m3);
	free(m99);
	free(mb);
	free(edit_a1);
	free(edit_a2);
	free(claim);
	free(resolve);
	free(withdrawn);
	free(claim_b);
	free(edit_b);
	free(c);
	free(c_content);
	strbuf_free(&cc);
}

static void test_garbage_markers_are_skipped(void)
{
	reset_homeserver();
	static const char *const bad_markers[] = {
		"\"not an object\"",
		"[1,2]",
		"{\"v\":2,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":\"3\","
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1e30,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":-1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1.5,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":7,\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1e300,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":-4}",
		"{\"v\":1,\"txn\":\"t\",\"route\":\"r\",\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":null,\"escalated\":0}",
		"{\"v\":1,\"txn\":\"t\",\"route\":{\"a\":1},\"key\":\"k\",\"thread_key\":\"x\",\"opened_ms\":1,\"count\":1,"
		"\"recovered_ms\":0,\"escalated\":0}",
		"{}",
		"null",
	};
	for (size_t i = 0; i < sizeof bad_markers / sizeof bad_markers[0]; i++) {
		struct strbuf c = STRBUF_INIT;
		strbuf_printf(&c, "{\"msgtype\":\"m.notice\",\"body\":\"bad %zu\",\"zmb.failure\":%s}", i, bad_markers[i]);
		free(inject(ALERTS_Q, BOT, "m.room.message", strbuf_str(&c)));
		strbuf_free(&c);
	}
	char *good = inject_root(ALERTS_Q, "txn-good");
	/* Broken edits of the good one: none may change it. */
	free(inject(ALERTS_Q, BOT, "m.room.message",
		    "{\"msgtype\":\"m.notice\",\"body\":\"* x\",\"m.new_content\":\"no object\","
		    "\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"x\"}}"));
	struct strbuf c = STRBUF_INIT;
	strbuf_printf(&c,
		      "{\"msgtype\":\"m.notice\",\"body\":\"* x\",\"m.new_content\":{\"zmb.failure\":{\"v\":1,\"count\":5,"
		      "\"recovered_ms\":0,\"escalated\":0}},\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":7}}");
	free(inject(ALERTS_Q, BOT, "m.room.message", strbuf_str(&c)));
	strbuf_reset(&c);
	strbuf_printf(&c, "{\"msgtype\":\"m.notice\",\"body\":\"x\",\"m.relates_to\":\"%s\",\"zmb.failure\":7}", good);
	free(inject(ALERTS_Q, BOT, "m.room.message", strbuf_str(&c)));
	strbuf_free(&c);
	free(inject_edit(ALERTS_Q, BOT, good, "{\"v\":1,\"count\":99999999999999,\"recovered_ms\":0,\"escalated\":0}"));
	free(inject_edit(ALERTS_Q, BOT, good, "{\"v\":1,\"count\":2,\"recovered_ms\":-5,\"escalated\":0}"));
	/* A reaction whose key is no string. */
	char rc[256];
	snprintf(rc, sizeof rc, "{\"m.relates_to\":{\"rel_type\":\"m.annotation\",\"event_id\":\"%s\",\"key\":5}}", good);
	free(inject(ALERTS_Q, ALICE, "m.reaction", rc));
	free(inject_reaction(ALERTS_Q, ALICE, good, CLAIM));

	/* Each one skipped says why, at debug level. */
	FILE *log = tmpfile();
	log_set_stream(log);
	log_set_level(ZLOG_DEBUG);
	struct rebuild_options opt = fast_options();
	CHECK(rebuild_alerts(&opt));
	log_set_level(ZLOG_ERROR);
	log_set_stream(stderr);
	struct strbuf logged = STRBUF_INIT;
	rewind(log);
	char line[4096];
	while (fgets(line, sizeof line, log))
		strbuf_puts(&logged, line);
	fclose(log);
	CHECK_CONTAINS(strbuf_str(&logged), "skipped a failure message with an unusable marker");
	CHECK_CONTAINS(strbuf_str(&logged), "count is not an integer in range");
	CHECK_CONTAINS(strbuf_str(&logged), "marker version is not 1");
	CHECK_CONTAINS(strbuf_str(&logged), "skipped an edit with an unusable marker");
	CHECK_CONTAINS(strbuf_str(&logged), "no usable key");
	strbuf_free(&logged);
	char *txns = txn_list();
	CHECK_STR(txns, "txn-good");
	free(txns);
	const struct rebuild_failure *f = failure_of("txn-good");
	if (f) {
		CHECK_INT(f->count, 1);
		CHECK_INT(f->recovered_ms, 0);
		CHECK_STR(f->edit_event_id, NULL);
		char *r = reaction_list(f);
		CHECK_STR(r, ALICE " " CLAIM);
		free(r);
	}
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete);
	free(good);
}

static void test_history_and_reactions_are_read_over_several_pages(void)
{
	reset_homeserver();
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	struct strbuf want = STRBUF_INIT;
	char *first = NULL;
	/* 120 failures, 132 other bridge messages between them, alice's chatter too. */
	for (int i = 0; i < 120; i++) {
		char txn[32];
		snprintf(txn, sizeof txn, "t%03d", i);
		char *id = inject_root(ALERTS_Q, txn);
		if (i == 0)
			first = id;
		else
			free(id);
		strbuf_printf(&want, "%s%s", i ? "," : "", txn);
		free(inject_text(ALERTS_Q, BOT, "notice"));
		if (i % 10 == 0) {
			free(inject_text(ALERTS_Q, BOT, "notice"));
			free(inject_text(ALERTS_Q, ALICE, "chatter"));
		}
	}
	/* 105 reactions on the oldest failure: two relation pages of 100. */
	struct strbuf want_r = STRBUF_INIT;
	for (int i = 0; i < 105; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%03d", i);
		free(inject_reaction(ALERTS_Q, i % 2 ? BOB : ALICE, first, key));
		strbuf_printf(&want_r, "%s%s %s", i ? "," : "", i % 2 ? BOB : ALICE, key);
	}

	struct rebuild_options opt = fast_options();
	CHECK(rebuild_alerts(&opt));
	char *txns = txn_list();
	CHECK_STR(txns, strbuf_str(&want));
	free(txns);
	const struct rebuild_failure *f = failure_of("t000");
	CHECK(f != NULL);
	char *r = reaction_list(f);
	CHECK_STR(r, strbuf_str(&want_r));
	free(r);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete && !rr->truncated);
	CHECK_INT(rr ? rr->events_scanned : 0, 252);

	/* The fake filters after taking a page: the room's ~375 events (alice's chatter and
	 * the reactions included) are four pages of 100, then the empty one without end. */
	cJSON *msgs = requests_matching("/messages");
	CHECK_INT(cJSON_GetArraySize(msgs), 5);
	CHECK_STR(query_of(cJSON_GetArrayItem(msgs, 0), "from"), NULL);
	for (int i = 1; i < 5; i++)
		CHECK(query_of(cJSON_GetArrayItem(msgs, i), "from") != NULL);
	cJSON_Delete(msgs);
	cJSON *rels = requests_matching("/relations/");
	CHECK_INT(cJSON_GetArraySize(rels), 121); /* one per failure, two for t000 */
	cJSON_Delete(rels);

	free(first);
	strbuf_free(&want);
	strbuf_free(&want_r);
}

/* A failure behind 250 of other users' messages: the fake (like any homeserver that
 * filters after taking a page) answers two pages of 100 with nothing of the bridge's in
 * them, each with an end. The scan must page on until end is absent. */
static void test_a_failure_behind_pages_of_chatter_is_found(void)
{
	reset_homeserver();
	free(inject_root(ALERTS_Q, "behind"));
	for (int i = 0; i < 250; i++)
		free(inject_text(ALERTS_Q, i % 2 ? BOB : ALICE, "chatter"));
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	struct rebuild_options opt = fast_options();
	CHECK(rebuild_alerts(&opt));
	char *txns = txn_list();
	CHECK_STR(txns, "behind");
	free(txns);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete && !rr->truncated);
	cJSON *msgs = requests_matching("/messages");
	/* Two empty pages, the page with the failure (and the room's first events), and the
	 * empty page without end that says the room's start was reached. */
	CHECK_INT(cJSON_GetArraySize(msgs), 4);
	cJSON_Delete(msgs);
}

/* Empty pages are bounded: max_events 100 allows one page of 100, so the failure behind
 * 250 other messages is not reached and the room says it was cut short. */
static void test_empty_pages_stop_at_the_page_limit(void)
{
	reset_homeserver();
	free(inject_root(ALERTS_Q, "too-far"));
	for (int i = 0; i < 250; i++)
		free(inject_text(ALERTS_Q, ALICE, "chatter"));
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	struct rebuild_options opt = fast_options();
	opt.max_events = 100;
	CHECK(rebuild_alerts(&opt));
	char *txns = txn_list();
	CHECK_STR(txns, "");
	free(txns);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete && rr->truncated);
	cJSON *msgs = requests_matching("/messages");
	CHECK_INT(cJSON_GetArraySize(msgs), 1);
	cJSON_Delete(msgs);
}

static void test_max_events_stops_at_the_newest(void)
{
	reset_homeserver();
	for (int i = 0; i < 10; i++) {
		char txn[32];
		snprintf(txn, sizeof txn, "t%d", i);
		free(inject_root(ALERTS_Q, txn));
	}
	struct rebuild_options opt = fast_options();
	opt.max_events = 4;
	CHECK(rebuild_alerts(&opt));
	char *txns = txn_list();
	CHECK_STR(txns, "t6,t7,t8,t9");
	free(txns);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete && rr->truncated);
	CHECK_INT(rr ? rr->events_scanned : 0, 4);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_max_age_stops_at_older_messages(void)
{
	reset_homeserver();
	free(inject_root(ALERTS_Q, "old1"));
	free(inject_root(ALERTS_Q, "old2"));
	sleep_ms(40);
	int64_t cutoff = clock_real_ms();
	sleep_ms(40);
	free(inject_root(ALERTS_Q, "new1"));
	free(inject_root(ALERTS_Q, "new2"));
	struct rebuild_options opt = fast_options();
	opt.now_ms = clock_real_ms();
	opt.max_age_ms = opt.now_ms - cutoff;
	CHECK(rebuild_alerts(&opt));
	char *txns = txn_list();
	CHECK_STR(txns, "new1,new2");
	free(txns);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete && rr->truncated);
	CHECK_INT(rr ? rr->events_scanned : 0, 2);
}

/* A small room: two failures, a claim on the first. */
static void seed_small(const char *room_q)
{
	char *a = inject_root(room_q, "s-a");
	free(inject_root(room_q, "s-b"));
	free(inject_reaction(room_q, ALICE, a, CLAIM));
	free(a);
}

static void test_5xx_burst_and_429_are_retried(void)
{
	reset_homeserver();
	seed_small(ALERTS_Q);
	add_fault("{\"path\":\"/messages\",\"status\":502,\"count\":3}");
	add_fault("{\"path\":\"/relations/\",\"status\":429,\"retry_after_ms\":150,\"count\":1}");
	struct rebuild_options opt = fast_options();
	int64_t t0 = clock_real_ms();
	CHECK(rebuild_alerts(&opt));
	int64_t took = clock_real_ms() - t0;
	char *txns = txn_list();
	CHECK_STR(txns, "s-a,s-b");
	free(txns);
	char *r = reaction_list(failure_of("s-a"));
	CHECK_STR(r, ALICE " " CLAIM);
	free(r);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && rr->complete);
	/* 2 + 3 retried /messages (the second page says the start was reached), 2 + 1
	 * retried relations. */
	CHECK_INT(rr ? rr->requests : 0, 8);
	if (took < 150)
		printf("# finished after %lld ms, before the 429's retry_after_ms\n", (long long)took);
	CHECK(took >= 150);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
}

static void test_a_room_is_given_up_after_max_attempts(void)
{
	reset_homeserver();
	seed_small(ALERTS_Q);
	add_fault("{\"path\":\"/messages\",\"status\":500,\"count\":10}");
	struct rebuild_options opt = fast_options();
	opt.max_attempts = 3;
	CHECK(rebuild_alerts(&opt));
	CHECK_INT(result ? (long long)result->n_failures : -1, 0);
	const struct rebuild_room *rr = room_of(ALERTS);
	CHECK(rr && !rr->complete);
	CHECK_CONTAINS(rr ? rr->reason : NULL, "gave up after 3 attempts");
	CHECK_CONTAINS(rr ? rr->reason : NULL, "HTTP 500");
	CHECK_INT(rr ? rr->requests : 0, 3);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
}

static void test_forbidden_rooms_are_reported_and_the_others_rebuilt(void)
{
	reset_homeserver();
	seed_small(ALERTS_Q);
	/* !ops: the bridge is only invited, so /messages is 403. */
	const char *rooms[] = {OPS, ALERTS, "!nope:localhost", "#alerts:localhost", ALERTS};
	struct rebuild_options opt = fast_options();
	CHECK(rebuild_rooms(rooms, 5, &opt));
	char *txns = txn_list();
	CHECK_STR(txns, "s-a,s-b");
	free(txns);
	CHECK_INT(result ? result->n_rooms : 0, 4);
	if (result && result->n_rooms == 4) {
		CHECK_STR(result->rooms[0].room_id, OPS);
		CHECK(!result->rooms[0].complete);
		CHECK_CONTAINS(result->rooms[0].reason, "403 M_FORBIDDEN");
		CHECK_INT(result->rooms[0].requests, 1); /* permanent: not retried */
		CHECK_STR(result->rooms[1].room_id, ALERTS);
		CHECK(result->rooms[1].complete);
		CHECK_STR(result->rooms[2].room_id, "!nope:localhost");
		CHECK(!result->rooms[2].complete);
		CHECK_CONTAINS(result->rooms[2].reason, "M_FORBIDDEN");
		CHECK(!result->rooms[3].complete);
		CHECK_STR(result->rooms[3].reason, "not a room id");
	}
}

static void test_a_room_failing_halfway_reports_none_of_its_failures(void)
{
	reset_homeserver();
	CHECK_INT(fake_hs_call("POST", "/_matrix/client/v3/join/" OPS_Q, "{}", "bridge-token", NULL), 200);
	seed_small(ALERTS_Q);
	free(inject_root(OPS_Q, "ops-a"));
	add_fault("{\"path\":\"" OPS_Q "/relations/\",\"status\":404,\"errcode\":\"M_NOT_FOUND\",\"count\":1}");
	const char *rooms[] = {ALERTS, OPS};
	struct rebuild_options opt = fast_options();
	CHECK(rebuild_rooms(rooms, 2, &opt));
	char *txns = txn_list();
	CHECK_STR(txns, "s-a,s-b");
	free(txns);
	const struct rebuild_room *ops = room_of(OPS);
	CHECK(ops && !ops->complete);
	CHECK_CONTAINS(ops ? ops->reason : NULL, "404 M_NOT_FOUND");
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
}

static void test_no_rooms_still_calls_done_from_the_loop(void)
{
	CHECK(rebuild_rooms(NULL, 0, NULL));
	CHECK_INT(result ? (long long)result->n_rooms : -1, 0);
	CHECK_INT(result ? (long long)result->n_failures : -1, 0);
}

static void test_free_with_requests_in_flight_calls_nothing(void)
{
	reset_homeserver();
	seed_small(ALERTS_Q);
	add_fault("{\"path\":\"/messages\",\"action\":\"hang\",\"seconds\":10,\"count\":1}");
	result_reset();
	const char *rooms[] = {ALERTS};
	struct rebuild *rb = rebuild_start(loop, &cfg, BOT, rooms, 1, NULL, on_done, NULL);
	CHECK(rb != NULL);
	run_for(200);
	cJSON *msgs = requests_matching("/messages");
	CHECK_INT(cJSON_GetArraySize(msgs), 1); /* it is out, and hanging */
	cJSON_Delete(msgs);
	rebuild_free(rb);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL); /* releases the hang */
	run_for(300);
	CHECK_INT(done_calls, 0);

	/* Freed while waiting for a retry: the timer must not fire into freed memory. */
	add_fault("{\"path\":\"/messages\",\"status\":503,\"count\":1}");
	struct rebuild_options opt = {.retry_min_ms = 200, .retry_max_ms = 200};
	rb = rebuild_start(loop, &cfg, BOT, rooms, 1, &opt, on_done, NULL);
	run_for(100);
	rebuild_free(rb);
	run_for(300);
	CHECK_INT(done_calls, 0);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
}

static void test_free_from_the_done_callback_is_clean(void)
{
	reset_homeserver();
	seed_small(ALERTS_Q);
	result_reset();
	const char *rooms[] = {ALERTS};
	struct rebuild_options opt = fast_options();
	struct rebuild *rb = rebuild_start(loop, &cfg, BOT, rooms, 1, &opt, on_done, NULL);
	free_in_done = rb;
	run_for(10000);
	CHECK_INT(done_calls, 1);
	CHECK(free_in_done == NULL);
	char *txns = txn_list();
	CHECK_STR(txns, "s-a,s-b");
	free(txns);
	run_for(100);
	CHECK_INT(done_calls, 1);
}

int main(void)
{
	log_set_level(ZLOG_ERROR);
	RUN(test_messages_filter_asks_for_the_bridges_messages_only);
	RUN(test_marker_read_wants_every_field_of_a_root_and_progress_of_an_edit);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fake_hs_start() < 0) {
		printf("# could not start tests/fake_homeserver.py\n");
		fake_hs_stop();
		RUN_NAMED("fake homeserver starts", CHECK(false));
		return test_done();
	}
	cfg = (struct config_matrix){
		.homeserver = fake_hs_url,
		.access_token = "bridge-token",
		.tls_verify = true,
		.request_timeout_s = 5,
		.retry_min_ms = 20,
		.retry_max_ms = 100,
	};
	loop = loop_new();
	RUN(test_failures_newest_edits_and_claims_are_found_exactly);
	RUN(test_garbage_markers_are_skipped);
	RUN(test_history_and_reactions_are_read_over_several_pages);
	RUN(test_a_failure_behind_pages_of_chatter_is_found);
	RUN(test_empty_pages_stop_at_the_page_limit);
	RUN(test_max_events_stops_at_the_newest);
	RUN(test_max_age_stops_at_older_messages);
	RUN(test_5xx_burst_and_429_are_retried);
	RUN(test_a_room_is_given_up_after_max_attempts);
	RUN(test_forbidden_rooms_are_reported_and_the_others_rebuilt);
	RUN(test_a_room_failing_halfway_reports_none_of_its_failures);
	RUN(test_no_rooms_still_calls_done_from_the_loop);
	RUN(test_free_with_requests_in_flight_calls_nothing);
	RUN(test_free_from_the_done_callback_is_clean);
	loop_free(loop);
	fake_hs_stop();
	result_reset();
	curl_global_cleanup();
	return test_done();
}
