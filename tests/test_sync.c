/* Tests of the /sync long-poll client: real HTTP over loopback against
 * tests/fake_homeserver.py (a subprocess, as in test_matrix.c), driven by the real loop. */
#include "sync.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "strbuf.h"
#include "test.h"
#include "fake_hs.h"

#ifndef ZMB_SOURCE_ROOT
#define ZMB_SOURCE_ROOT "."
#endif

#define ALERTS "!alerts:localhost"
#define OPS "!ops:localhost"
#define ALERTS_Q "%21alerts%3Alocalhost"
#define OPS_Q "%21ops%3Alocalhost"

/* ---- the fake homeserver subprocess and its control API ---- */


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

/* Injects an event as @alice; returns its event id (caller frees) or NULL. */
static char *inject(const char *room_q, const char *type, const char *content_json)
{
	struct strbuf path = STRBUF_INIT, body = STRBUF_INIT;
	strbuf_printf(&path, "/_fake/rooms/%s/inject", room_q);
	strbuf_printf(&body, "{\"sender\":\"@alice:localhost\",\"type\":\"%s\",\"content\":%s}", type, content_json);
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

static char *inject_reaction(const char *room_q, const char *key)
{
	char content[256];
	snprintf(content, sizeof content,
		 "{\"m.relates_to\":{\"rel_type\":\"m.annotation\",\"event_id\":\"$target\",\"key\":\"%s\"}}", key);
	return inject(room_q, "m.reaction", content);
}

static char *inject_message(const char *room_q, const char *text)
{
	char content[256];
	snprintf(content, sizeof content, "{\"msgtype\":\"m.text\",\"body\":\"%s\"}", text);
	return inject(room_q, "m.room.message", content);
}

/* The /sync requests the fake saw, oldest first. Caller deletes. */
static cJSON *sync_requests(void)
{
	cJSON *all = NULL, *out = cJSON_CreateArray();
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &all);
	const cJSON *rec;
	cJSON_ArrayForEach(rec, all)
	{
		const char *p = json_str(rec, "path");
		if (p && strstr(p, "/sync"))
			cJSON_AddItemToArray(out, cJSON_Duplicate(rec, true));
	}
	cJSON_Delete(all);
	return out;
}

static const char *query_of(const cJSON *rec, const char *key)
{
	return json_str(cJSON_GetObjectItemCaseSensitive(rec, "query"), key);
}

/* ---- what the callbacks saw ---- */

struct recorder {
	char *token;        /* the "store" */
	int saves;
	int save_nulls;
	int events_at_save; /* timeline events handed over when the last save happened */
	int events;         /* timeline (non-snapshot) events */
	int snapshots;
	int power_level_snapshots;
	struct strbuf log;  /* "room type what event_id\n" per timeline event */
	struct strbuf snapshot_log; /* "room type\n" per snapshot event */
	int gaps;
	char *gap_room;
	char *gap_prev;
	struct sync *free_on_event; /* sync_free from inside on_event, once */
};

static struct recorder rec;

static void rec_reset(const char *token)
{
	free(rec.token);
	free(rec.gap_room);
	free(rec.gap_prev);
	strbuf_free(&rec.log);
	strbuf_free(&rec.snapshot_log);
	memset(&rec, 0, sizeof rec);
	rec.token = xstrdup(token);
}

static char *rec_token_load(void *data)
{
	(void)data;
	return xstrdup(rec.token);
}

static void rec_token_save(const char *token, void *data)
{
	(void)data;
	free(rec.token);
	rec.token = xstrdup(token);
	rec.saves++;
	rec.save_nulls += token == NULL;
	rec.events_at_save = rec.events;
}

static void rec_on_event(const struct sync_event *ev, void *data)
{
	(void)data;
	if (ev->snapshot) {
		rec.snapshots++;
		rec.power_level_snapshots += strcmp(ev->type, "m.room.power_levels") == 0;
		strbuf_printf(&rec.snapshot_log, "%s %s\n", ev->room_id, ev->type);
		if (!ev->state_key)
			printf("# snapshot event %s without state_key\n", ev->type);
		return;
	}
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev->event, "content");
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *what = json_str(content, "body");
	if (!what)
		what = json_str(rel, "key");
	rec.events++;
	strbuf_printf(&rec.log, "%s %s %s %s\n", ev->room_id, ev->type, what ? what : "-",
		      ev->event_id ? ev->event_id : "-");
	if (rec.free_on_event) {
		struct sync *s = rec.free_on_event;
		rec.free_on_event = NULL;
		sync_free(s);
	}
}

static void rec_on_gap(const char *room_id, const char *prev_batch, void *data)
{
	(void)data;
	rec.gaps++;
	free(rec.gap_room);
	free(rec.gap_prev);
	rec.gap_room = xstrdup(room_id);
	rec.gap_prev = xstrdup(prev_batch);
}

static const struct sync_callbacks rec_callbacks = {
	.token_load = rec_token_load,
	.token_save = rec_token_save,
	.on_event = rec_on_event,
	.on_gap = rec_on_gap,
	.data = NULL,
};

/* ---- running the loop ---- */

static struct loop *loop;
static bool (*until)(void);
static uint64_t check_timer;

static void check_fired(struct loop *l, void *data)
{
	(void)data;
	check_timer = 0;
	if (until && until()) {
		loop_stop(l);
		return;
	}
	check_timer = loop_timer_add(l, 5, check_fired, NULL);
}

static void deadline_fired(struct loop *l, void *data)
{
	(void)data;
	loop_stop(l);
}

/* Runs the loop until cond() holds or max_ms passed; returns cond(). */
static bool run_until(bool (*cond)(void), uint64_t max_ms)
{
	until = cond;
	check_timer = loop_timer_add(loop, 5, check_fired, NULL);
	uint64_t t = loop_timer_add(loop, max_ms, deadline_fired, NULL);
	loop_run(loop);
	loop_timer_cancel(loop, t);
	loop_timer_cancel(loop, check_timer);
	until = NULL;
	bool ok = !cond || cond();
	if (!ok)
		printf("# condition still false after %llu ms\n", (unsigned long long)max_ms);
	return ok;
}

static void run_idle(uint64_t ms) { run_until(NULL, ms); }

static bool token_saved(void) { return rec.saves > 0 && rec.token != NULL; }
static bool one_event(void) { return rec.events >= 1; }
static bool two_events(void) { return rec.events >= 2; }
static bool gap_and_m6(void) { return rec.gaps >= 1 && strstr(strbuf_str(&rec.log), " m6 "); }

static struct config_matrix make_cfg(const char *token)
{
	struct config_matrix cfg = {0};
	cfg.homeserver = fake_hs_url;
	cfg.access_token = (char *)token;
	cfg.tls_verify = true;
	cfg.request_timeout_s = 2; /* shorter than the polls: the per-request timeout must be used */
	cfg.retry_min_ms = 50;
	cfg.retry_max_ms = 400;
	return cfg;
}

static const char *const chatops_types[] = {"m.reaction", "m.room.redaction", "m.room.message",
					    "m.room.power_levels"};
#define N_TYPES (sizeof chatops_types / sizeof chatops_types[0])

/* The counters every syncer of these tests adds to (the bridge's zmb_sync_*). */
static uint64_t n_oversized, n_empty_backoffs;

static struct sync *new_sync(const struct config_matrix *cfg, const char *const *rooms, size_t n_rooms,
			     int poll_ms)
{
	struct sync_options opt = {.poll_timeout_ms = poll_ms,
				   .http_timeout_ms = poll_ms + 2000,
				   .timeline_limit = 20,
				   .retry_min_ms = 50,
				   .retry_max_ms = 400,
				   .count_oversized = &n_oversized,
				   .count_empty_backoffs = &n_empty_backoffs};
	return sync_new(loop, cfg, rooms, n_rooms, chatops_types, N_TYPES, &rec_callbacks, &opt);
}

/* Starts s and waits until its first answer was saved and the long poll is out. */
static bool start_and_settle(struct sync *s)
{
	CHECK_INT(sync_start(s), 0);
	bool ok = run_until(token_saved, 5000);
	run_idle(200);
	return ok;
}

static bool is_stream_token(const char *t) { return t && t[0] == 's' && t[1] >= '0' && t[1] <= '9'; }

/* ---- pure ---- */

static void test_filter_json_limits_rooms_types_and_sections(void)
{
	const char *rooms[] = {ALERTS};
	char *f = sync_filter_json(rooms, 1, chatops_types, N_TYPES, 7, 0);
	cJSON *j = cJSON_Parse(f);
	CHECK(j != NULL);
	const cJSON *room = cJSON_GetObjectItemCaseSensitive(j, "room");
	const cJSON *rl = cJSON_GetObjectItemCaseSensitive(room, "rooms");
	CHECK_INT(cJSON_GetArraySize(rl), 1);
	CHECK_STR(cJSON_GetArrayItem(rl, 0)->valuestring, ALERTS);
	const cJSON *tl = cJSON_GetObjectItemCaseSensitive(room, "timeline");
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(tl, "limit")->valueint, 7);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(tl, "types")), (int)N_TYPES);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(room, "state");
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "types")), (int)N_TYPES);
	const cJSON *pres = cJSON_GetObjectItemCaseSensitive(j, "presence");
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pres, "types")), 0);
	cJSON_Delete(j);
	free(f);

	/* No types: no "types" key (all types); no rooms: an empty list (no rooms). */
	f = sync_filter_json(NULL, 0, NULL, 0, 0, 0);
	CHECK_CONTAINS(f, "\"rooms\":[]");
	CHECK_NOT_CONTAINS(f, "\"limit\"");
	CHECK_CONTAINS(f, "\"timeline\":{}");
	CHECK_NOT_CONTAINS(f, SYNC_FRESH_START_KEY);
	free(f);

	/* A fresh start's mark, as a number. */
	f = sync_filter_json(NULL, 0, NULL, 0, 0, 1765100000123);
	CHECK_CONTAINS(f, "\"" SYNC_FRESH_START_KEY "\":1765100000123");
	free(f);
}

/* sync_walk_batch without a homeserver: what a callback sees, as "room type id snap;". */
struct walk_log {
	struct strbuf log;
	int stop_after;  /* stop the walk at this event (0: never) */
	bool drop_ops;   /* the first OPS event drops OPS, as a reload would */
	bool ops_gone;
};

static bool walk_room(const char *room_id, void *data)
{
	const struct walk_log *w = data;
	return strcmp(room_id, ALERTS) == 0 || (strcmp(room_id, OPS) == 0 && !w->ops_gone);
}

static bool walk_event(const struct sync_event *ev, void *data)
{
	struct walk_log *w = data;
	strbuf_printf(&w->log, "%s %s %s %s;", strcmp(ev->room_id, ALERTS) == 0 ? "alerts" : "ops", ev->type,
		      ev->event_id ? ev->event_id : "-", ev->snapshot ? "snap" : "new");
	if (w->drop_ops && strcmp(ev->room_id, OPS) == 0)
		w->ops_gone = true;
	return --w->stop_after != 0;
}

static bool walk_gap(const char *room_id, const char *prev_batch, void *data)
{
	struct walk_log *w = data;
	strbuf_printf(&w->log, "gap %s %s;", strcmp(room_id, ALERTS) == 0 ? "alerts" : "ops",
		      prev_batch ? prev_batch : "-");
	return true;
}

static const char walk_body[] =
	"{\"next_batch\":\"s42\",\"rooms\":{\"join\":{"
	"\"!elsewhere:localhost\":{\"timeline\":{\"events\":[{\"type\":\"m.reaction\",\"event_id\":\"$x\"}]}},"
	"\"" ALERTS "\":{\"state\":{\"events\":[{\"type\":\"m.room.power_levels\",\"state_key\":\"\","
	"\"event_id\":\"$pl\"}]},\"timeline\":{\"limited\":true,\"prev_batch\":\"p1\",\"events\":["
	"{\"type\":\"m.room.message\",\"event_id\":\"$m1\"},{\"type\":\"m.typing\",\"event_id\":\"$t\"},"
	"{\"event_id\":\"$notype\"},{\"type\":\"m.reaction\",\"event_id\":\"$r1\"}]}},"
	"\"" OPS "\":{\"timeline\":{\"events\":[{\"type\":\"m.reaction\",\"event_id\":\"$r2\"},"
	"{\"type\":\"m.reaction\",\"event_id\":\"$r3\"}]}}}}}";

static void test_walk_batch_hands_over_wanted_rooms_and_types_in_order(void)
{
	cJSON *body = cJSON_Parse(walk_body);
	struct walk_log w = {.log = STRBUF_INIT};
	struct sync_walk sw = {.types = chatops_types, .n_types = N_TYPES, .room_wanted = walk_room,
			       .on_event = walk_event, .on_gap = walk_gap, .data = &w};
	const char *next = sync_walk_batch(body, &sw);
	CHECK_STR(next, "s42");
	CHECK_STR(strbuf_str(&w.log), "gap alerts p1;alerts m.room.power_levels $pl snap;alerts m.room.message $m1 new;"
				      "alerts m.reaction $r1 new;ops m.reaction $r2 new;ops m.reaction $r3 new;");

	/* A fresh start: the timeline's non-state events are history; no gap unless the
	 * token was lost. */
	strbuf_reset(&w.log);
	sw.fresh = true;
	CHECK_STR(sync_walk_batch(body, &sw), "s42");
	CHECK_STR(strbuf_str(&w.log), "alerts m.room.power_levels $pl snap;");
	strbuf_reset(&w.log);
	sw.lost_position = true;
	sync_walk_batch(body, &sw);
	CHECK_STR(strbuf_str(&w.log), "gap alerts p1;alerts m.room.power_levels $pl snap;gap ops -;");
	strbuf_free(&w.log);
	cJSON_Delete(body);
}

static void test_walk_batch_stops_when_told_and_drops_a_room_dropped_meanwhile(void)
{
	cJSON *body = cJSON_Parse(walk_body);
	struct walk_log w = {.log = STRBUF_INIT, .stop_after = 2};
	struct sync_walk sw = {.types = chatops_types, .n_types = N_TYPES, .room_wanted = walk_room,
			       .on_event = walk_event, .data = &w};
	CHECK_STR(sync_walk_batch(body, &sw), "s42"); /* the token still comes back */
	CHECK_STR(strbuf_str(&w.log), "alerts m.room.power_levels $pl snap;alerts m.room.message $m1 new;");

	strbuf_reset(&w.log);
	w.stop_after = 0;
	w.drop_ops = true;
	sync_walk_batch(body, &sw);
	CHECK_STR(strbuf_str(&w.log), "alerts m.room.power_levels $pl snap;alerts m.room.message $m1 new;"
				      "alerts m.reaction $r1 new;ops m.reaction $r2 new;");
	strbuf_free(&w.log);
	cJSON_Delete(body);
}

static bool walk_invite(const char *room_id, const cJSON *invite_state, void *data)
{
	struct walk_log *w = data;
	const cJSON *last = cJSON_GetArrayItem(invite_state, cJSON_GetArraySize(invite_state) - 1);
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(content, "membership");
	strbuf_printf(&w->log, "invite %s %d %s;", room_id, cJSON_GetArraySize(invite_state),
		      cJSON_IsString(m) ? m->valuestring : "-");
	return true;
}

/* A kick arrives in rooms.leave (its timeline ends with it), an invite in rooms.invite:
 * after the joined rooms, in that order, and the invite whatever room it is for. */
static void test_walk_batch_hands_over_leaves_then_invites(void)
{
	static const char body_text[] =
		"{\"next_batch\":\"s50\",\"rooms\":{"
		"\"invite\":{\"!new:localhost\":{\"invite_state\":{\"events\":[{\"type\":\"m.room.name\","
		"\"state_key\":\"\",\"content\":{\"name\":\"x\"}},{\"type\":\"m.room.member\",\"state_key\":"
		"\"@zuul-bot:localhost\",\"content\":{\"membership\":\"invite\"}}]}}},"
		"\"leave\":{\"" OPS "\":{\"timeline\":{\"events\":[{\"type\":\"m.reaction\",\"event_id\":\"$r9\"},"
		"{\"type\":\"m.room.member\",\"state_key\":\"@zuul-bot:localhost\",\"event_id\":\"$kick\","
		"\"content\":{\"membership\":\"leave\"}}]}},"
		"\"!elsewhere:localhost\":{\"timeline\":{\"events\":[{\"type\":\"m.room.member\",\"event_id\":\"$x\"}]}}},"
		"\"join\":{\"" ALERTS "\":{\"timeline\":{\"events\":[{\"type\":\"m.reaction\",\"event_id\":\"$r1\"}]}}}}}";
	cJSON *body = cJSON_Parse(body_text);
	CHECK(body != NULL);
	const char *types[] = {"m.reaction", "m.room.member"};
	struct walk_log w = {.log = STRBUF_INIT};
	struct sync_walk sw = {.types = types, .n_types = 2, .room_wanted = walk_room, .on_event = walk_event,
			       .on_invite = walk_invite, .data = &w};
	CHECK_STR(sync_walk_batch(body, &sw), "s50");
	CHECK_STR(strbuf_str(&w.log), "alerts m.reaction $r1 new;ops m.reaction $r9 new;ops m.room.member $kick new;"
				      "invite !new:localhost 2 invite;");
	/* A fresh start: rooms left before it are history; invites still count. */
	strbuf_reset(&w.log);
	sw.fresh = true;
	sync_walk_batch(body, &sw);
	CHECK_STR(strbuf_str(&w.log), "invite !new:localhost 2 invite;");
	strbuf_free(&w.log);
	cJSON_Delete(body);

	/* Members are asked for: the state lazy-loads them (Synapse adds the user's own). */
	const char *rooms[] = {ALERTS};
	char *f = sync_filter_json(rooms, 1, types, 2, 0, 0);
	CHECK_CONTAINS(f, "\"state\":{\"types\":[\"m.reaction\",\"m.room.member\"],\"lazy_load_members\":true}");
	free(f);
	f = sync_filter_json(rooms, 1, types, 1, 0, 0);
	CHECK_NOT_CONTAINS(f, "lazy_load_members");
	free(f);
}

static void test_walk_batch_without_next_batch_hands_over_nothing(void)
{
	static const char *const bodies[] = {
		"{\"rooms\":{\"join\":{\"" ALERTS "\":{\"timeline\":{\"events\":[{\"type\":\"m.reaction\"}]}}}}}",
		"{\"next_batch\":\"\",\"rooms\":{\"join\":{\"" ALERTS "\":{\"timeline\":{\"events\":[{\"type\":\"m.reaction\"}]}}}}}",
		"{\"next_batch\":42}",
		"[\"next_batch\"]",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		cJSON *body = cJSON_Parse(bodies[i]);
		struct walk_log w = {.log = STRBUF_INIT};
		struct sync_walk sw = {.room_wanted = walk_room, .on_event = walk_event, .on_gap = walk_gap, .data = &w};
		CHECK(sync_walk_batch(body, &sw) == NULL);
		CHECK_STR(strbuf_str(&w.log), "");
		strbuf_free(&w.log);
		cJSON_Delete(body);
	}
}

static void test_answer_is_empty_only_without_any_event(void)
{
	static const char *const empty[] = {
		"{\"next_batch\":\"s1\"}",
		/* Synapse's bookkeeping, and a room entry without events (unread counts moved). */
		"{\"next_batch\":\"s1\",\"device_one_time_keys_count\":{\"signed_curve25519\":0},"
		"\"device_unused_fallback_key_types\":[\"signed_curve25519\"],\"device_lists\":{\"changed\":[],"
		"\"left\":[]},\"to_device\":{\"events\":[]},\"rooms\":{\"join\":{\"" ALERTS "\":{\"timeline\":"
		"{\"events\":[],\"limited\":false,\"prev_batch\":\"s0\"},\"state\":{\"events\":[]},"
		"\"unread_notifications\":{\"highlight_count\":0}}}}}",
	};
	static const char *const not_empty[] = {
		"{\"next_batch\":\"s1\",\"rooms\":{\"join\":{\"" ALERTS "\":{\"timeline\":{\"events\":[{}]}}}}}",
		"{\"next_batch\":\"s1\",\"rooms\":{\"join\":{\"" ALERTS "\":{\"state\":{\"events\":[{}]}}}}}",
		"{\"next_batch\":\"s1\",\"rooms\":{\"invite\":{\"!x:y\":{\"invite_state\":{\"events\":[{}]}}}}}",
		"{\"next_batch\":\"s1\",\"rooms\":{\"leave\":{\"" OPS "\":{\"timeline\":{\"events\":[{}]}}}}}",
		"{\"next_batch\":\"s1\",\"to_device\":{\"events\":[{}]}}",
		"{\"next_batch\":\"s1\",\"device_lists\":{\"changed\":[\"@a:b\"]}}",
		"{\"next_batch\":\"s1\",\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{}}}}}}}}}}}",
	};
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		cJSON *b = cJSON_Parse(empty[i]);
		CHECK(b != NULL);
		if (!sync_answer_is_empty(b))
			printf("# expected empty: %s\n", empty[i]);
		CHECK(sync_answer_is_empty(b));
		cJSON_Delete(b);
	}
	for (size_t i = 0; i < sizeof not_empty / sizeof not_empty[0]; i++) {
		cJSON *b = cJSON_Parse(not_empty[i]);
		CHECK(b != NULL);
		if (sync_answer_is_empty(b))
			printf("# expected not empty: %s\n", not_empty[i]);
		CHECK(!sync_answer_is_empty(b));
		cJSON_Delete(b);
	}
}

/* ---- over HTTP ---- */

static void test_first_sync_delivers_no_history_but_current_state(void)
{
	reset_homeserver();
	rec_reset(NULL);
	char *old = inject_message(ALERTS_Q, "old message");
	char *old_reaction = inject_reaction(ALERTS_Q, "old");
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 5000);
	CHECK(start_and_settle(s));
	run_idle(200);
	CHECK_INT(rec.events, 0);
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), "old");
	/* Not even disguised as state: only state events make the snapshot. */
	CHECK_NOT_CONTAINS(strbuf_str(&rec.snapshot_log), "m.reaction");
	CHECK_NOT_CONTAINS(strbuf_str(&rec.snapshot_log), "m.room.message");
	CHECK(rec.power_level_snapshots >= 1);
	CHECK_INT(rec.gaps, 0);
	CHECK(is_stream_token(rec.token));
	CHECK_STR(sync_since(s), rec.token);

	/* The fresh start asked without since, the next poll long-polls from its token. */
	cJSON *reqs = sync_requests();
	CHECK(cJSON_GetArraySize(reqs) >= 2);
	CHECK(query_of(cJSON_GetArrayItem(reqs, 0), "since") == NULL);
	CHECK_STR(query_of(cJSON_GetArrayItem(reqs, 1), "since"), rec.token);
	CHECK_STR(query_of(cJSON_GetArrayItem(reqs, 1), "timeout"), "5000");
	CHECK_CONTAINS(query_of(cJSON_GetArrayItem(reqs, 1), "filter"), "\"rooms\":[\"" ALERTS "\"]");
	cJSON_Delete(reqs);
	sync_free(s);
	free(old);
	free(old_reaction);
}

/* Synapse gives an identical /sync the same answer for two minutes (its response cache; the
 * fake does too): a second start without a token gets the first one's next_batch, and its
 * next poll brings what was sent between them. That is history to a start without state. */
/* Synapse answers a /sync identical to one of the last two minutes from its response cache
 * (the fake homeserver does too): a second fresh start sending the first one's request would
 * get the first one's next_batch, and its next poll would bring what was sent in between. */
static void test_every_fresh_start_is_answered_from_the_current_position(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 5000);
	CHECK(start_and_settle(s));
	char *first_token = xstrdup(rec.token);
	sync_free(s);
	char *first_fresh_filter = NULL;
	cJSON *first_reqs = sync_requests();
	const char *first_filter = query_of(cJSON_GetArrayItem(first_reqs, 0), "filter");
	CHECK(first_filter != NULL);
	if (first_filter)
		first_fresh_filter = xstrdup(first_filter);
	cJSON_Delete(first_reqs);
	char *before = inject_reaction(ALERTS_Q, "before the second start");

	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	rec_reset(NULL);
	s = new_sync(&cfg, rooms, 1, 5000);
	CHECK(start_and_settle(s));
	run_idle(300);
	CHECK_INT(rec.events, 0);
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), "before the second start");
	char *after = inject_reaction(ALERTS_Q, "after the second start");
	CHECK(run_until(one_event, 5000));
	run_idle(200);
	CHECK_INT(rec.events, 1);
	CHECK_CONTAINS(strbuf_str(&rec.log), after);
	/* One fresh request, its filter not the first start's; no poll from the first position. */
	cJSON *reqs = sync_requests();
	int fresh = 0;
	for (int i = 0; i < cJSON_GetArraySize(reqs); i++) {
		const cJSON *req = cJSON_GetArrayItem(reqs, i);
		const char *since = query_of(req, "since");
		CHECK(!since || strcmp(since, first_token) != 0);
		if (since)
			continue;
		const char *filter_text = query_of(req, "filter");
		CHECK(filter_text && first_fresh_filter && strcmp(filter_text, first_fresh_filter) != 0);
		cJSON *filter = cJSON_Parse(filter_text);
		CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(filter, SYNC_FRESH_START_KEY)));
		cJSON_Delete(filter);
		fresh++;
	}
	CHECK_INT(fresh, 1);
	cJSON_Delete(reqs);
	free(first_fresh_filter);
	sync_free(s);
	free(first_token);
	free(before);
	free(after);
}

static void test_injected_reaction_arrives_once_and_wakes_the_long_poll(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK(start_and_settle(s));
	char *id = inject_reaction(ALERTS_Q, "\xf0\x9f\x91\x80");
	uint64_t t0 = loop_now_ms(loop);
	CHECK(run_until(one_event, 5000));
	uint64_t took = loop_now_ms(loop) - t0;
	if (took > 1500)
		printf("# the reaction took %llu ms (the poll waits up to 10000)\n", (unsigned long long)took);
	CHECK(took <= 1500);
	run_idle(500);
	CHECK_INT(rec.events, 1);
	struct strbuf want = STRBUF_INIT;
	strbuf_printf(&want, ALERTS " m.reaction \xf0\x9f\x91\x80 %s\n", id);
	CHECK_STR(strbuf_str(&rec.log), strbuf_str(&want));
	strbuf_free(&want);
	/* Saved after the event was handed over, not before. */
	CHECK_INT(rec.events_at_save, 1);
	sync_free(s);
	free(id);
}

static void test_other_rooms_and_unasked_types_are_not_delivered(void)
{
	reset_homeserver();
	rec_reset(NULL);
	/* The bridge user joins !ops too: only the filter keeps its events out. */
	CHECK_INT(fake_hs_call("POST", "/_matrix/client/v3/join/" OPS_Q, "{}", "bridge-token", NULL), 200);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK(start_and_settle(s));
	CHECK_INT(rec.events, 0);
	char *a = inject_reaction(OPS_Q, "in-ops");
	char *b = inject(ALERTS_Q, "m.sticker", "{\"body\":\"sticker\"}");
	char *c = inject(ALERTS_Q, "m.room.topic", "{\"topic\":\"topic\"}");
	char *marker = inject_reaction(ALERTS_Q, "marker");
	CHECK(run_until(one_event, 5000));
	run_idle(300);
	CHECK_INT(rec.events, 1);
	CHECK_CONTAINS(strbuf_str(&rec.log), "marker");
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), OPS);
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), "sticker");
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), "topic");
	sync_free(s);
	free(a);
	free(b);
	free(c);
	free(marker);
}

static void test_token_is_persisted_and_a_new_client_resumes_without_duplicates(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK(start_and_settle(s));
	char *r1 = inject_reaction(ALERTS_Q, "first");
	CHECK(run_until(one_event, 5000));
	sync_free(s);
	char *token = xstrdup(rec.token);
	CHECK(is_stream_token(token));

	/* While no client runs: a reaction, which the next client must deliver. */
	char *r2 = inject_reaction(ALERTS_Q, "second");
	rec_reset(token);
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	s = new_sync(&cfg, rooms, 1, 10000);
	CHECK_INT(sync_start(s), 0);
	CHECK(run_until(one_event, 5000));
	run_idle(500);
	CHECK_INT(rec.events, 1);
	CHECK_CONTAINS(strbuf_str(&rec.log), r2);
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), r1);
	/* The resume asked for full state: the consumer has the power levels again. */
	CHECK(rec.power_level_snapshots >= 1);
	cJSON *reqs = sync_requests();
	CHECK_STR(query_of(cJSON_GetArrayItem(reqs, 0), "since"), token);
	CHECK_STR(query_of(cJSON_GetArrayItem(reqs, 0), "full_state"), "true");
	CHECK(query_of(cJSON_GetArrayItem(reqs, 1), "full_state") == NULL);
	cJSON_Delete(reqs);
	CHECK(rec.token && strcmp(rec.token, token) != 0);
	sync_free(s);
	free(token);
	free(r1);
	free(r2);
}

static void test_long_poll_may_outlast_request_timeout(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	cfg.request_timeout_s = 1;
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 2500);
	FILE *logf = tmpfile();
	log_set_stream(logf);
	CHECK(start_and_settle(s));
	run_idle(2800); /* one whole empty poll of 2.5 s */
	log_set_stream(stderr);
	struct strbuf logged = STRBUF_INIT;
	char buf[512];
	rewind(logf);
	while (fgets(buf, sizeof buf, logf))
		strbuf_puts(&logged, buf);
	fclose(logf);
	CHECK_NOT_CONTAINS(strbuf_str(&logged), "poll failed");
	cJSON *reqs = sync_requests();
	CHECK_INT(cJSON_GetArraySize(reqs), 3); /* fresh start, the 2.5 s poll, the next */
	cJSON_Delete(reqs);
	strbuf_free(&logged);
	sync_free(s);
}

static int fault_hits(void)
{
	cJSON *out = NULL;
	fake_hs_call("GET", "/_fake/faults", NULL, NULL, &out);
	int hits = 0;
	const cJSON *rule;
	cJSON_ArrayForEach(rule, cJSON_GetObjectItemCaseSensitive(out, "rules"))
	hits += cJSON_GetObjectItemCaseSensitive(rule, "hits")->valueint;
	cJSON_Delete(out);
	return hits;
}

static int hits_wanted;
static bool faults_hit(void) { return fault_hits() >= hits_wanted; }

static void test_500_burst_and_a_hang_are_survived_without_loss_or_duplicates(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	/* Polls of 300 ms cut by the client after 1300 ms. */
	struct sync *s = new_sync(&cfg, rooms, 1, 300);
	CHECK(start_and_settle(s));

	add_fault("{\"path\":\"/sync\",\"status\":500,\"count\":3}");
	hits_wanted = 3;
	CHECK(run_until(faults_hit, 5000));
	char *r1 = inject_reaction(ALERTS_Q, "after-500s");
	CHECK(run_until(one_event, 5000));
	CHECK_INT(fault_hits(), 3);

	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	add_fault("{\"path\":\"/sync\",\"action\":\"hang\",\"seconds\":20}");
	hits_wanted = 1;
	CHECK(run_until(faults_hit, 3000));
	char *r2 = inject_reaction(ALERTS_Q, "after-hang");
	uint64_t t0 = loop_now_ms(loop);
	CHECK(run_until(two_events, 6000));
	uint64_t took = loop_now_ms(loop) - t0;
	/* It came only after the client gave up on the hung poll (~2300 ms). */
	if (took < 1000)
		printf("# the event came after %llu ms: the hang did not hold the poll\n", (unsigned long long)took);
	CHECK(took >= 1000);
	run_idle(500);
	CHECK_INT(rec.events, 2);
	CHECK_CONTAINS(strbuf_str(&rec.log), r1);
	CHECK_CONTAINS(strbuf_str(&rec.log), r2);

	/* Every request after a failure carried a token the client already had. */
	cJSON *reqs = sync_requests();
	const cJSON *rq;
	int failed = 0, bad_retry = 0;
	const char *prev_since = NULL;
	bool prev_failed = false;
	cJSON_ArrayForEach(rq, reqs)
	{
		const char *since = query_of(rq, "since");
		if (prev_failed && (!since || !prev_since || strcmp(since, prev_since) != 0))
			bad_retry++;
		const cJSON *fault = cJSON_GetObjectItemCaseSensitive(rq, "fault");
		prev_failed = fault != NULL;
		failed += prev_failed;
		prev_since = since;
	}
	CHECK_INT(failed, 4);
	CHECK_INT(bad_retry, 0);
	cJSON_Delete(reqs);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	sync_free(s);
	free(r1);
	free(r2);
}

static void test_429_waits_at_least_retry_after_ms(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 300);
	CHECK(start_and_settle(s));
	add_fault("{\"path\":\"/sync\",\"status\":429,\"retry_after_ms\":900}");
	hits_wanted = 1;
	CHECK(run_until(faults_hit, 3000));
	run_idle(1500);
	cJSON *reqs = sync_requests();
	double t429 = -1, next = -1;
	const cJSON *rq;
	cJSON_ArrayForEach(rq, reqs)
	{
		double t = cJSON_GetObjectItemCaseSensitive(rq, "time")->valuedouble;
		if (t429 >= 0 && next < 0)
			next = t;
		if (cJSON_GetObjectItemCaseSensitive(rq, "fault"))
			t429 = t;
	}
	cJSON_Delete(reqs);
	CHECK(t429 >= 0 && next >= 0);
	if (next - t429 < 0.85)
		printf("# the retry came %.3f s after the 429, expected >= 0.9\n", next - t429);
	CHECK(next - t429 >= 0.85);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	sync_free(s);
}

static void test_invalid_token_is_dropped_and_sync_restarts_cleanly(void)
{
	reset_homeserver();
	rec_reset("garbage");
	char *old = inject_message(ALERTS_Q, "old message");
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK_INT(sync_start(s), 0);
	CHECK(run_until(token_saved, 5000));
	run_idle(200);
	CHECK_INT(rec.save_nulls, 1); /* forgotten first */
	CHECK(is_stream_token(rec.token));
	CHECK_INT(rec.events, 0);     /* no history replayed */
	CHECK_INT(rec.gaps, 1);       /* but the consumer learns it may have missed events */
	CHECK_STR(rec.gap_room, ALERTS);
	CHECK(rec.gap_prev != NULL);
	char *r = inject_reaction(ALERTS_Q, "after-restart");
	CHECK(run_until(one_event, 3000));
	CHECK_CONTAINS(strbuf_str(&rec.log), r);
	sync_free(s);
	free(old);
	free(r);
}

static void test_limited_timeline_calls_gap_and_keeps_newest_in_order(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync_options opt = {.poll_timeout_ms = 10000, .timeline_limit = 3, .retry_min_ms = 50};
	struct sync *s = sync_new(loop, &cfg, rooms, 1, chatops_types, N_TYPES, &rec_callbacks, &opt);
	CHECK(start_and_settle(s));
	/* Six events between two polls, deterministically: no poll is out while they are
	 * injected (a poll in flight would take the first one or two). */
	sync_free(s);
	char *token = xstrdup(rec.token);
	char *ids[6];
	for (int i = 0; i < 6; i++) {
		char text[8];
		snprintf(text, sizeof text, "m%d", i + 1);
		ids[i] = inject_message(ALERTS_Q, text);
	}
	rec_reset(token);
	s = sync_new(loop, &cfg, rooms, 1, chatops_types, N_TYPES, &rec_callbacks, &opt);
	CHECK_INT(sync_start(s), 0);
	CHECK(run_until(gap_and_m6, 5000));
	run_idle(300);
	CHECK_INT(rec.gaps, 1);
	CHECK_STR(rec.gap_room, ALERTS);
	CHECK(is_stream_token(rec.gap_prev));
	const char *log = strbuf_str(&rec.log);
	CHECK_INT(rec.events, 3);
	CHECK_NOT_CONTAINS(log, " m3 ");
	const char *p4 = strstr(log, " m4 "), *p5 = strstr(log, " m5 "), *p6 = strstr(log, " m6 ");
	CHECK(p4 && p5 && p6 && p4 < p5 && p5 < p6);
	sync_free(s);
	free(token);
	for (int i = 0; i < 6; i++)
		free(ids[i]);
}

static void test_set_rooms_takes_effect_without_waiting_for_the_poll(void)
{
	reset_homeserver();
	rec_reset(NULL);
	CHECK_INT(fake_hs_call("POST", "/_matrix/client/v3/join/" OPS_Q, "{}", "bridge-token", NULL), 200);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK(start_and_settle(s));
	int snapshots_before = rec.power_level_snapshots;
	const char *both[] = {ALERTS, OPS};
	sync_set_rooms(s, both, 2);
	run_idle(300);
	/* The added room's state, without its history. */
	CHECK_INT(rec.power_level_snapshots, snapshots_before + 2);
	CHECK_INT(rec.events, 0);
	char *r = inject_reaction(OPS_Q, "in-ops");
	uint64_t t0 = loop_now_ms(loop);
	CHECK(run_until(one_event, 3000));
	CHECK(loop_now_ms(loop) - t0 < 1500);
	CHECK_CONTAINS(strbuf_str(&rec.log), OPS " m.reaction in-ops");

	/* Removed again: its events stop. */
	sync_set_rooms(s, rooms, 1);
	run_idle(200);
	char *r2 = inject_reaction(OPS_Q, "ignored");
	char *marker = inject_reaction(ALERTS_Q, "marker");
	CHECK(run_until(two_events, 3000));
	run_idle(300);
	CHECK_INT(rec.events, 2);
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), "ignored");
	sync_free(s);
	free(r);
	free(r2);
	free(marker);
}

static void test_unknown_access_token_is_retried_slowly(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("not-a-token");
	const char *rooms[] = {ALERTS};
	struct sync_options opt = {.poll_timeout_ms = 300, .retry_min_ms = 20, .retry_max_ms = 700};
	struct sync *s = sync_new(loop, &cfg, rooms, 1, chatops_types, N_TYPES, &rec_callbacks, &opt);
	CHECK_INT(sync_start(s), 0);
	run_idle(1000);
	cJSON *reqs = sync_requests();
	int n = cJSON_GetArraySize(reqs);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, 0), "status")->valueint, 401);
	cJSON_Delete(reqs);
	/* At retry_max_ms (700), not at retry_min_ms (20): two requests in one second. */
	if (n != 2)
		printf("# %d /sync requests in 1 s with a refused token, expected 2\n", n);
	CHECK_INT(n, 2);
	CHECK_INT(rec.saves, 0);
	sync_free(s);
}

static void test_free_with_a_poll_in_flight_is_clean(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK(start_and_settle(s));
	int saves = rec.saves;
	sync_free(s);
	char *r = inject_reaction(ALERTS_Q, "nobody-listens");
	run_idle(300);
	CHECK_INT(rec.events, 0);
	CHECK_INT(rec.saves, saves);
	free(r);
}

static void test_free_from_the_event_callback_stops_the_batch(void)
{
	reset_homeserver();
	rec_reset(NULL);
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 10000);
	CHECK(start_and_settle(s));
	int saves = rec.saves;
	char *token = xstrdup(rec.token);
	/* Whether both land in one batch or the poll in flight took only the first,
	 * nothing after the first may be handed over once the syncer is gone. */
	char *a = inject_reaction(ALERTS_Q, "a");
	char *b = inject_reaction(ALERTS_Q, "b");
	rec.free_on_event = s;
	run_idle(500);
	CHECK_INT(rec.events, 1);
	CHECK_INT(rec.saves, saves); /* the batch was not finished: its token not saved */
	CHECK_STR(rec.token, token);
	free(token);
	free(a);
	free(b);
}

/* How many /sync requests the fake saw, and how many of them with the fault `action`. */
static int count_sync_requests(const char *action)
{
	cJSON *reqs = sync_requests();
	int n = 0;
	const cJSON *rq;
	cJSON_ArrayForEach(rq, reqs)
	{
		const char *fault = json_str(rq, "fault");
		n += !action || (fault && strcmp(fault, action) == 0);
	}
	cJSON_Delete(reqs);
	return n;
}

/* A homeserver that answers every long poll at once with nothing is asked a few times at
 * once, then with growing waits; events still come through, and once it holds polls
 * again the waits are gone. */
static void test_early_empty_answers_slow_the_polls_down_until_polls_are_held_again(void)
{
	reset_homeserver();
	rec_reset(NULL);
	n_empty_backoffs = 0;
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 1000);
	CHECK(start_and_settle(s));
	add_fault("{\"path\":\"/sync$\",\"action\":\"no_wait\",\"count\":-1}");
	/* The poll in flight was held as asked (up to 1 s); the next ones are not. Within
	 * 2 s a client without back-off asks hundreds of times (each answer takes ~2 ms). */
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	run_idle(2000);
	int polls = count_sync_requests(NULL);
	printf("# %d /sync requests in 2 s against a homeserver that does not hold polls\n", polls);
	CHECK(polls >= SYNC_EARLY_EMPTY_TOLERATED + 2); /* it kept polling */
	CHECK(polls < 40);
	CHECK(n_empty_backoffs >= 2);

	/* An event is an answer with something: it comes, and the run of early answers ends. */
	char *r1 = inject_reaction(ALERTS_Q, "during");
	CHECK(run_until(one_event, 3000));
	CHECK_CONTAINS(strbuf_str(&rec.log), r1);

	/* Polls held again: after one more wait at most, events come at once and no poll
	 * waits any more. */
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	run_idle(500);
	uint64_t backoffs = n_empty_backoffs;
	char *r2 = inject_reaction(ALERTS_Q, "after");
	CHECK(run_until(two_events, 3000));
	CHECK_CONTAINS(strbuf_str(&rec.log), r2);
	run_idle(1300); /* a held poll, empty after its full second */
	CHECK_INT((int)(n_empty_backoffs - backoffs), 0);
	CHECK_INT(rec.events, 2);
	sync_free(s);
	free(r1);
	free(r2);
}

/* Long polls that return empty after the time they asked for are how an idle room looks:
 * however many in a row, none waits. */
static void test_polls_held_their_time_are_not_slowed_down(void)
{
	reset_homeserver();
	rec_reset(NULL);
	n_empty_backoffs = 0;
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 100);
	CHECK(start_and_settle(s));
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	run_idle(1000);
	int polls = count_sync_requests(NULL);
	printf("# %d held polls of 100 ms in 1 s\n", polls);
	CHECK(polls >= SYNC_EARLY_EMPTY_TOLERATED + 3);
	CHECK_INT((int)n_empty_backoffs, 0);
	sync_free(s);
}

static bool two_events_and_oversized(void) { return rec.events >= 2 && n_oversized >= 1; }
static bool three_events(void) { return rec.events >= 3; }

/* One answer over the size cap: counted, asked again with the same token and a tenth of
 * the timeline, then polling goes on from the new token with the usual limit. */
static void test_oversized_answer_is_asked_again_for_less_then_polling_goes_on(void)
{
	reset_homeserver();
	rec_reset(NULL);
	n_oversized = 0;
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 3000);
	CHECK(start_and_settle(s));
	add_fault("{\"path\":\"/sync$\",\"action\":\"pad\",\"query\":\"\\\"limit\\\":20[,}]\",\"count\":1}");
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	char *m1 = inject_message(ALERTS_Q, "m1"); /* answers the poll sent before the fault */
	CHECK(run_until(one_event, 3000));
	run_idle(200); /* the next poll, padded, is held until there is something */
	char *m2 = inject_message(ALERTS_Q, "m2");
	CHECK(run_until(two_events_and_oversized, 5000));
	CHECK_INT((int)n_oversized, 1);
	char *m3 = inject_message(ALERTS_Q, "m3");
	CHECK(run_until(three_events, 5000));
	run_idle(300);
	CHECK_INT(rec.events, 3);
	CHECK_INT(rec.gaps, 0); /* m2 alone fitted in the smaller timeline */
	struct strbuf want = STRBUF_INIT;
	strbuf_printf(&want, ALERTS " m.room.message m1 %s\n" ALERTS " m.room.message m2 %s\n" ALERTS
			     " m.room.message m3 %s\n", m1, m2, m3);
	CHECK_STR(strbuf_str(&rec.log), strbuf_str(&want));
	strbuf_free(&want);

	/* The request after the padded one: same token, limit 2; the one after that: a new
	 * token, limit 20 again. */
	cJSON *reqs = sync_requests();
	int padded = -1;
	for (int i = 0; i < cJSON_GetArraySize(reqs); i++)
		if (json_str(cJSON_GetArrayItem(reqs, i), "fault"))
			padded = i;
	CHECK(padded >= 0 && padded + 2 < cJSON_GetArraySize(reqs));
	if (padded >= 0 && padded + 2 < cJSON_GetArraySize(reqs)) {
		const cJSON *big = cJSON_GetArrayItem(reqs, padded), *less = cJSON_GetArrayItem(reqs, padded + 1),
			    *after = cJSON_GetArrayItem(reqs, padded + 2);
		CHECK_STR(query_of(less, "since"), query_of(big, "since"));
		CHECK_CONTAINS(query_of(less, "filter"), "\"limit\":2}");
		CHECK(strcmp(query_of(after, "since"), query_of(big, "since")) != 0);
		CHECK_CONTAINS(query_of(after, "filter"), "\"limit\":20}");
	}
	cJSON_Delete(reqs);
	sync_free(s);
	free(m1);
	free(m2);
	free(m3);
}

static bool gap_after_fresh_start(void) { return rec.gaps >= 1 && n_oversized >= 3 && rec.save_nulls >= 1; }

/* Over the cap at every timeline limit: the window is skipped with a fresh start (its
 * events are the gap, reported), and polling goes on from the new position. */
static void test_oversized_at_every_limit_starts_afresh_and_reports_the_gap(void)
{
	reset_homeserver();
	rec_reset(NULL);
	n_oversized = 0;
	struct config_matrix cfg = make_cfg("bridge-token");
	const char *rooms[] = {ALERTS};
	struct sync *s = new_sync(&cfg, rooms, 1, 3000);
	CHECK(start_and_settle(s));
	/* Three polls with a token: limit 20, 2, 1. */
	add_fault("{\"path\":\"/sync$\",\"action\":\"pad\",\"query\":\"since=\",\"count\":3}");
	char *m1 = inject_message(ALERTS_Q, "m1");
	CHECK(run_until(one_event, 3000));
	run_idle(200);
	char *m2 = inject_message(ALERTS_Q, "m2");
	CHECK(run_until(gap_after_fresh_start, 5000));
	CHECK_INT((int)n_oversized, 3);
	CHECK_STR(rec.gap_room, ALERTS);
	CHECK(is_stream_token(rec.gap_prev));
	char *m3 = inject_message(ALERTS_Q, "m3");
	CHECK(run_until(two_events, 5000));
	run_idle(300);
	CHECK_INT(rec.events, 2);
	CHECK_NOT_CONTAINS(strbuf_str(&rec.log), m2); /* skipped: the gap */
	CHECK_CONTAINS(strbuf_str(&rec.log), m3);
	CHECK(is_stream_token(rec.token));
	CHECK_INT((int)n_oversized, 3);
	sync_free(s);
	free(m1);
	free(m2);
	free(m3);
}

int main(void)
{
	RUN(test_filter_json_limits_rooms_types_and_sections);
	RUN(test_walk_batch_hands_over_wanted_rooms_and_types_in_order);
	RUN(test_walk_batch_stops_when_told_and_drops_a_room_dropped_meanwhile);
	RUN(test_walk_batch_hands_over_leaves_then_invites);
	RUN(test_walk_batch_without_next_batch_hands_over_nothing);
	RUN(test_answer_is_empty_only_without_any_event);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fake_hs_start() < 0) {
		printf("# could not start tests/fake_homeserver.py\n");
		fake_hs_stop();
		RUN_NAMED("fake homeserver starts", CHECK(false));
		return test_done();
	}
	loop = loop_new();
	RUN(test_first_sync_delivers_no_history_but_current_state);
	RUN(test_every_fresh_start_is_answered_from_the_current_position);
	RUN(test_injected_reaction_arrives_once_and_wakes_the_long_poll);
	RUN(test_other_rooms_and_unasked_types_are_not_delivered);
	RUN(test_token_is_persisted_and_a_new_client_resumes_without_duplicates);
	RUN(test_long_poll_may_outlast_request_timeout);
	RUN(test_500_burst_and_a_hang_are_survived_without_loss_or_duplicates);
	RUN(test_429_waits_at_least_retry_after_ms);
	RUN(test_invalid_token_is_dropped_and_sync_restarts_cleanly);
	RUN(test_limited_timeline_calls_gap_and_keeps_newest_in_order);
	RUN(test_set_rooms_takes_effect_without_waiting_for_the_poll);
	RUN(test_unknown_access_token_is_retried_slowly);
	RUN(test_free_with_a_poll_in_flight_is_clean);
	RUN(test_free_from_the_event_callback_stops_the_batch);
	RUN(test_early_empty_answers_slow_the_polls_down_until_polls_are_held_again);
	RUN(test_polls_held_their_time_are_not_slowed_down);
	RUN(test_oversized_answer_is_asked_again_for_less_then_polling_goes_on);
	RUN(test_oversized_at_every_limit_starts_afresh_and_reports_the_gap);
	loop_free(loop);
	fake_hs_stop();
	rec_reset(NULL);
	free(rec.token);
	curl_global_cleanup();
	return test_done();
}
