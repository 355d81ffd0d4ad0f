/* rebuild: pages back through each room's history (/messages, filtered to the bridge's
 * own messages), then asks the relations API for the reactions on each failure found. */
#include "rebuild.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "log.h"
#include "matrix.h"
#include "strbuf.h"

#define REBUILD_DEFAULT_MAX_EVENTS 10000
#define REBUILD_DEFAULT_MAX_AGE_MS (30LL * 24 * 3600 * 1000)
#define REBUILD_DEFAULT_RETRY_MIN_MS 1000
#define REBUILD_DEFAULT_RETRY_MAX_MS 60000
#define REBUILD_DEFAULT_MAX_ATTEMPTS 5
#define REBUILD_DEFAULT_RELATIONS_LIMIT 100
#define REBUILD_MESSAGES_LIMIT 100
/* /messages may answer an empty page that still has an end (the homeserver filtered out
 * every event of the page it took: Synapse applies history visibility after taking
 * `limit` events), so paging goes on until end is absent. A server answering empty pages
 * forever must not keep a room's scan going: a room takes at most max_events /
 * REBUILD_MESSAGES_LIMIT pages (100 by default), the 10,000 messages counted in pages of
 * the room's events rather than in the bridge's own. */
#define REBUILD_MIN_PAGES 1
/* A homeserver asking for more than this is treated as asking for this. */
#define REBUILD_MAX_RETRY_AFTER_MS 300000L
/* Past this many reactions on one message, the rest is noise (or an attack); the
 * claim keys are among the first anyway. */
#define REBUILD_MAX_REACTIONS 10000
/* Marker strings longer than this are not the bridge's. */
#define REBUILD_MAX_FIELD_LEN 4096
/* JSON integers a Matrix homeserver keeps exactly (canonical JSON). */
#define REBUILD_MAX_JSON_INT 9007199254740991LL
#define REBUILD_MAX_COUNT 2147483647LL
#define REBUILD_MAX_ESCALATED 2147483647LL

enum scan_phase { SCAN_MESSAGES, SCAN_RELATIONS, SCAN_DONE };

/* The newest usable edit of one root seen so far (paging backwards: the first one seen). */
struct pending_edit {
	char *target;
	char *event_id;
	char *content_json;
	int64_t ts_ms;
	int64_t count;
	int64_t recovered_ms;
	unsigned escalated;
};

struct room_scan {
	struct rebuild *rb;
	char *room_id;
	enum scan_phase phase;
	char *from;                     /* /messages token of the next page; NULL: the newest */
	struct pending_edit *edits;
	size_t n_edits, cap_edits;
	struct rebuild_failure *roots;  /* newest first while paging, oldest first after */
	size_t n_roots, cap_roots;
	size_t rel_index;               /* the root whose reactions are being read */
	char *rel_from;                 /* relations token of its next page */
	size_t cap_reactions;
	int attempts;                   /* failed tries of the current request */
	uint64_t retry_timer;
	bool complete, truncated;
	char *reason;
	size_t events_scanned, requests;
	size_t pages;                   /* /messages pages answered */
};

struct rebuild {
	struct loop *loop;
	const struct config_matrix *cfg;
	struct matrix_client *mc; /* ours alone: freeing it drops requests in flight */
	char *user_id;
	char *filter_q;           /* the /messages filter, percent-encoded */
	struct room_scan *rooms;
	size_t n_rooms;
	size_t rooms_left;
	struct rebuild_options opt;
	int64_t cutoff_ms;        /* messages older than this end a room's scan */
	rebuild_done_fn done;
	void *data;
	uint64_t done_timer;
	uint64_t rng;             /* xorshift state for jitter */
};

static void send_request(struct room_scan *sc);

/* ---- small helpers ---- */

static const char *json_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A non-empty string of sane length, or NULL. */
static const char *json_field(const cJSON *o, const char *key)
{
	const char *s = json_string(o, key);
	if (!s || !*s || strlen(s) > REBUILD_MAX_FIELD_LEN)
		return NULL;
	return s;
}

/* An integral JSON number within [min, max]. The range check comes before the cast: a
 * double out of int64's range cast to it is undefined behaviour. */
static bool json_int(const cJSON *o, const char *key, int64_t min, int64_t max, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
		return false;
	*out = (int64_t)d;
	return true;
}

static char *print_json(const cJSON *j)
{
	char *out = cJSON_PrintUnformatted(j);
	if (!out)
		abort(); /* cJSON fails only on out-of-memory: same policy as xmalloc */
	char *copy = xstrdup(out);
	cJSON_free(out);
	return copy;
}

static double next_random01(struct rebuild *rb)
{
	rb->rng ^= rb->rng >> 12;
	rb->rng ^= rb->rng << 25;
	rb->rng ^= rb->rng >> 27;
	return (double)((rb->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void reaction_clear(struct rebuild_reaction *r)
{
	free(r->event_id);
	free(r->sender);
	free(r->key);
}

static void failure_clear(struct rebuild_failure *f)
{
	free(f->room_id);
	free(f->event_id);
	free(f->txn);
	free(f->route);
	free(f->key);
	free(f->thread_key);
	free(f->content_json);
	free(f->edit_event_id);
	free(f->edit_content_json);
	for (size_t i = 0; i < f->n_reactions; i++)
		reaction_clear(&f->reactions[i]);
	free(f->reactions);
	memset(f, 0, sizeof *f);
}

void rebuild_result_free(struct rebuild_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_failures; i++)
		failure_clear(&res->failures[i]);
	free(res->failures);
	for (size_t i = 0; i < res->n_rooms; i++) {
		free(res->rooms[i].room_id);
		free(res->rooms[i].reason);
	}
	free(res->rooms);
	free(res);
}

char *rebuild_messages_filter_json(const char *user_id)
{
	cJSON *f = cJSON_CreateObject();
	cJSON *senders = cJSON_AddArrayToObject(f, "senders");
	cJSON_AddItemToArray(senders, cJSON_CreateString(user_id ? user_id : ""));
	cJSON *types = cJSON_AddArrayToObject(f, "types");
	cJSON_AddItemToArray(types, cJSON_CreateString("m.room.message"));
	char *out = print_json(f);
	cJSON_Delete(f);
	return out;
}

static void skipped(const struct room_scan *sc, const char *what, const char *event_id, const char *why)
{
	log_kv(ZLOG_DEBUG, what, "room", sc->room_id, "event_id", event_id ? event_id : "", "why", why, NULL);
}

/* ---- the end of a room, the end of all rooms ---- */

static void done_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct rebuild *rb = data;
	rb->done_timer = 0;
	struct rebuild_result *res = xcalloc(1, sizeof *res);
	size_t total = 0;
	for (size_t i = 0; i < rb->n_rooms; i++)
		if (rb->rooms[i].complete)
			total += rb->rooms[i].n_roots;
	res->failures = xcalloc(total ? total : 1, sizeof *res->failures);
	res->rooms = xcalloc(rb->n_rooms ? rb->n_rooms : 1, sizeof *res->rooms);
	size_t n_found = 0, n_failed = 0;
	for (size_t i = 0; i < rb->n_rooms; i++) {
		struct room_scan *sc = &rb->rooms[i];
		struct rebuild_room *rr = &res->rooms[res->n_rooms++];
		rr->room_id = xstrdup(sc->room_id);
		rr->complete = sc->complete;
		rr->truncated = sc->truncated;
		rr->reason = xstrdup(sc->reason);
		rr->events_scanned = sc->events_scanned;
		rr->requests = sc->requests;
		if (!sc->complete) {
			n_failed++;
			continue;
		}
		/* Moved, not copied: the scan's copies are cleared so rebuild_free skips them. */
		for (size_t k = 0; k < sc->n_roots; k++) {
			res->failures[res->n_failures++] = sc->roots[k];
			memset(&sc->roots[k], 0, sizeof sc->roots[k]);
		}
		n_found += sc->n_roots;
		sc->n_roots = 0;
	}
	char found[24], failed[24];
	snprintf(found, sizeof found, "%zu", n_found);
	snprintf(failed, sizeof failed, "%zu", n_failed);
	log_kv(n_failed ? ZLOG_WARN : ZLOG_INFO, "rebuild: room history read", "failures", found, "rooms_failed",
	       failed, NULL);
	/* Last thing: the callback may free rb. */
	rb->done(res, rb->data);
}

/* The most /messages pages one room may take (see REBUILD_MIN_PAGES). */
static size_t max_pages(const struct rebuild *rb)
{
	size_t pages = ((size_t)rb->opt.max_events + REBUILD_MESSAGES_LIMIT - 1) / REBUILD_MESSAGES_LIMIT;
	return pages < REBUILD_MIN_PAGES ? REBUILD_MIN_PAGES : pages;
}

static void room_finished(struct room_scan *sc)
{
	struct rebuild *rb = sc->rb;
	sc->phase = SCAN_DONE;
	free(sc->from);
	sc->from = NULL;
	free(sc->rel_from);
	sc->rel_from = NULL;
	if (rb->rooms_left > 0 && --rb->rooms_left == 0)
		rb->done_timer = loop_timer_add(rb->loop, 0, done_fired, rb);
}

static void room_failed(struct room_scan *sc, const char *reason)
{
	sc->complete = false;
	free(sc->reason);
	sc->reason = xstrdup(reason);
	log_kv(ZLOG_WARN, "rebuild: giving up on a room; its claims are not rebuilt", "room", sc->room_id, "reason",
	       reason, NULL);
	room_finished(sc);
}

/* ---- reading /messages ---- */

static struct pending_edit *edit_of(struct room_scan *sc, const char *target)
{
	for (size_t i = 0; i < sc->n_edits; i++)
		if (strcmp(sc->edits[i].target, target) == 0)
			return &sc->edits[i];
	return NULL;
}

/* The fields an edit updates: count, recovered_ms, escalated. NULL if usable, else why not. */
static const char *parse_progress(const cJSON *marker, int64_t *count, int64_t *recovered_ms, int64_t *escalated)
{
	int64_t v;
	if (!cJSON_IsObject(marker))
		return "marker is not an object";
	if (!json_int(marker, "v", 1, 1, &v))
		return "marker version is not 1";
	if (!json_int(marker, "count", 1, REBUILD_MAX_COUNT, count))
		return "count is not an integer in range";
	if (!json_int(marker, "recovered_ms", 0, REBUILD_MAX_JSON_INT, recovered_ms))
		return "recovered_ms is not an integer in range";
	if (!json_int(marker, "escalated", 0, REBUILD_MAX_ESCALATED, escalated))
		return "escalated is not an integer in range";
	return NULL;
}

const char *rebuild_marker_read(const cJSON *marker, bool root, struct rebuild_marker *out)
{
	memset(out, 0, sizeof *out);
	int64_t escalated;
	const char *why = parse_progress(marker, &out->count, &out->recovered_ms, &escalated);
	if (!why && root) {
		out->txn = json_field(marker, "txn");
		out->route = json_field(marker, "route");
		out->key = json_field(marker, "key");
		out->thread_key = json_field(marker, "thread_key");
		if (!out->txn || !out->route || !out->key || !out->thread_key)
			why = "txn, route, key or thread_key is not a non-empty string";
		else if (!json_int(marker, "opened_ms", 0, REBUILD_MAX_JSON_INT, &out->opened_ms))
			why = "opened_ms is not an integer in range";
	}
	if (why) {
		memset(out, 0, sizeof *out);
		return why;
	}
	out->escalated = (unsigned)escalated;
	return NULL;
}

static void take_edit(struct room_scan *sc, const char *event_id, int64_t ts, const cJSON *rel, const cJSON *content)
{
	const char *target = json_field(rel, "event_id");
	const cJSON *new_content = cJSON_GetObjectItemCaseSensitive(content, "m.new_content");
	if (!target || !cJSON_IsObject(new_content))
		return; /* an edit of something, but not one we can use */
	const cJSON *marker = cJSON_GetObjectItemCaseSensitive(new_content, REBUILD_MARKER_KEY);
	if (!marker)
		return; /* an edit of a message that is no failure */
	if (edit_of(sc, target))
		return; /* a newer edit of the same message was seen already */
	struct rebuild_marker m;
	const char *why = rebuild_marker_read(marker, false, &m);
	if (why) {
		skipped(sc, "rebuild: skipped an edit with an unusable marker", event_id, why);
		return;
	}
	if (sc->n_edits == sc->cap_edits) {
		sc->cap_edits = sc->cap_edits ? sc->cap_edits * 2 : 16;
		sc->edits = xrealloc(sc->edits, sc->cap_edits * sizeof *sc->edits);
	}
	sc->edits[sc->n_edits++] = (struct pending_edit){
		.target = xstrdup(target),
		.event_id = xstrdup(event_id),
		.content_json = print_json(new_content),
		.ts_ms = ts,
		.count = m.count,
		.recovered_ms = m.recovered_ms,
		.escalated = m.escalated,
	};
}

static void take_root(struct room_scan *sc, const char *event_id, int64_t ts, const cJSON *content)
{
	struct rebuild_marker m;
	const char *why = rebuild_marker_read(cJSON_GetObjectItemCaseSensitive(content, REBUILD_MARKER_KEY), true, &m);
	if (why) {
		skipped(sc, "rebuild: skipped a failure message with an unusable marker", event_id, why);
		return;
	}
	if (sc->n_roots == sc->cap_roots) {
		sc->cap_roots = sc->cap_roots ? sc->cap_roots * 2 : 16;
		sc->roots = xrealloc(sc->roots, sc->cap_roots * sizeof *sc->roots);
	}
	struct rebuild_failure *f = &sc->roots[sc->n_roots++];
	memset(f, 0, sizeof *f);
	f->room_id = xstrdup(sc->room_id);
	f->event_id = xstrdup(event_id);
	f->ts_ms = ts;
	f->txn = xstrdup(m.txn);
	f->route = xstrdup(m.route);
	f->key = xstrdup(m.key);
	f->thread_key = xstrdup(m.thread_key);
	f->opened_ms = m.opened_ms;
	f->count = m.count;
	f->recovered_ms = m.recovered_ms;
	f->escalated = m.escalated;
	f->content_json = print_json(content);
	/* Paging backwards, every edit of this root (newer than it) was seen already. */
	struct pending_edit *e = edit_of(sc, event_id);
	if (e) {
		f->count = e->count;
		f->recovered_ms = e->recovered_ms;
		f->escalated = e->escalated;
		f->edit_event_id = xstrdup(e->event_id);
		f->edit_content_json = xstrdup(e->content_json);
		f->edited_ms = e->ts_ms;
	}
}

/* One event of a /messages page: a failure root, an edit of one, or neither. */
static void take_message(struct room_scan *sc, const cJSON *ev, int64_t ts)
{
	const struct rebuild *rb = sc->rb;
	const char *event_id = json_field(ev, "event_id");
	const char *type = json_string(ev, "type");
	const char *sender = json_string(ev, "sender");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
	/* The filter asked for these only; a homeserver ignoring it must not let anyone
	 * else's message pass for the bridge's. */
	if (!event_id || !type || strcmp(type, "m.room.message") != 0 || !sender || strcmp(sender, rb->user_id) != 0 ||
	    !cJSON_IsObject(content))
		return;
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = cJSON_IsObject(rel) ? json_string(rel, "rel_type") : NULL;
	if (rel_type && strcmp(rel_type, "m.replace") == 0) {
		take_edit(sc, event_id, ts, rel, content);
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(content, REBUILD_MARKER_KEY))
		take_root(sc, event_id, ts, content);
}

static void reverse_failures(struct rebuild_failure *v, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		struct rebuild_failure t = v[i];
		v[i] = v[n - 1 - i];
		v[n - 1 - i] = t;
	}
}

static void next_root(struct room_scan *sc)
{
	free(sc->rel_from);
	sc->rel_from = NULL;
	sc->cap_reactions = 0;
	if (sc->rel_index >= sc->n_roots) {
		sc->complete = true;
		char n[24], ev[24];
		snprintf(n, sizeof n, "%zu", sc->n_roots);
		snprintf(ev, sizeof ev, "%zu", sc->events_scanned);
		log_kv(ZLOG_INFO, "rebuild: room read", "room", sc->room_id, "failures", n, "messages", ev,
		       "truncated", sc->truncated ? "true" : "false", NULL);
		room_finished(sc);
		return;
	}
	send_request(sc);
}

static void messages_done(struct room_scan *sc)
{
	for (size_t i = 0; i < sc->n_edits; i++) {
		free(sc->edits[i].target);
		free(sc->edits[i].event_id);
		free(sc->edits[i].content_json);
	}
	free(sc->edits);
	sc->edits = NULL;
	sc->n_edits = sc->cap_edits = 0;
	free(sc->from);
	sc->from = NULL;
	reverse_failures(sc->roots, sc->n_roots);
	sc->phase = SCAN_RELATIONS;
	sc->rel_index = 0;
	next_root(sc);
}

static void handle_messages(struct room_scan *sc, const cJSON *json)
{
	struct rebuild *rb = sc->rb;
	const cJSON *chunk = cJSON_GetObjectItemCaseSensitive(json, "chunk");
	if (!cJSON_IsArray(chunk)) {
		room_failed(sc, "/messages answer without a chunk array");
		return;
	}
	bool stop = false;
	const cJSON *ev;
	cJSON_ArrayForEach(ev, chunk)
	{
		int64_t ts = 0;
		bool has_ts = json_int(ev, "origin_server_ts", 0, REBUILD_MAX_JSON_INT, &ts);
		if (has_ts && ts < rb->cutoff_ms) {
			sc->truncated = true; /* older than max_age: so is everything further back */
			stop = true;
			break;
		}
		sc->events_scanned++;
		if (has_ts)
			take_message(sc, ev, ts);
		else
			skipped(sc, "rebuild: skipped a message without origin_server_ts", json_string(ev, "event_id"),
				"no origin_server_ts");
		if (sc->events_scanned >= (size_t)rb->opt.max_events) {
			sc->truncated = true;
			stop = true;
			break;
		}
	}
	const char *end = json_string(json, "end");
	sc->pages++;
	/* No end: the start of the room. An empty chunk is no end: the homeserver may have
	 * filtered out a whole page (spec: "continue to paginate until no end property is
	 * returned"). An end that does not move would page forever. */
	if (!stop && end && *end && sc->pages >= max_pages(rb)) {
		log_kv(ZLOG_WARN, "rebuild: stopped paging a room at the page limit", "room", sc->room_id, NULL);
		sc->truncated = true;
		stop = true;
	}
	if (stop || !end || !*end || (sc->from && strcmp(sc->from, end) == 0)) {
		messages_done(sc);
		return;
	}
	free(sc->from);
	sc->from = xstrdup(end);
	send_request(sc);
}

/* ---- reading the relations of one root ---- */

static void take_reaction(struct room_scan *sc, struct rebuild_failure *f, const cJSON *ev)
{
	const char *event_id = json_field(ev, "event_id");
	const char *type = json_string(ev, "type");
	const char *sender = json_field(ev, "sender");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	int64_t ts;
	/* A redacted reaction has lost its content: it no longer counts. */
	if (!event_id || !type || strcmp(type, "m.reaction") != 0 || !cJSON_IsObject(rel))
		return;
	if (!sender || strcmp(sender, sc->rb->user_id) == 0)
		return; /* the bridge's own reactions are no claims */
	const char *rel_type = json_string(rel, "rel_type"), *target = json_string(rel, "event_id");
	const char *key = json_field(rel, "key");
	if (!rel_type || strcmp(rel_type, "m.annotation") != 0 || !target || strcmp(target, f->event_id) != 0) {
		skipped(sc, "rebuild: skipped a reaction", event_id, "not an annotation of this message");
		return;
	}
	if (!key || !json_int(ev, "origin_server_ts", 0, REBUILD_MAX_JSON_INT, &ts)) {
		skipped(sc, "rebuild: skipped a reaction", event_id, "no usable key or origin_server_ts");
		return;
	}
	if (f->n_reactions == sc->cap_reactions) {
		sc->cap_reactions = sc->cap_reactions ? sc->cap_reactions * 2 : 8;
		f->reactions = xrealloc(f->reactions, sc->cap_reactions * sizeof *f->reactions);
	}
	f->reactions[f->n_reactions++] = (struct rebuild_reaction){
		.event_id = xstrdup(event_id),
		.sender = xstrdup(sender),
		.key = xstrdup(key),
		.ts_ms = ts,
	};
}

static void handle_relations(struct room_scan *sc, const cJSON *json)
{
	struct rebuild_failure *f = &sc->roots[sc->rel_index];
	const cJSON *chunk = cJSON_GetObjectItemCaseSensitive(json, "chunk");
	if (!cJSON_IsArray(chunk)) {
		room_failed(sc, "relations answer without a chunk array");
		return;
	}
	const cJSON *ev;
	cJSON_ArrayForEach(ev, chunk)
	{
		if (f->n_reactions >= REBUILD_MAX_REACTIONS)
			break;
		take_reaction(sc, f, ev);
	}
	const char *next = json_string(json, "next_batch");
	bool more = next && *next && cJSON_GetArraySize(chunk) > 0 && f->n_reactions < REBUILD_MAX_REACTIONS &&
		    !(sc->rel_from && strcmp(sc->rel_from, next) == 0);
	if (more) {
		free(sc->rel_from);
		sc->rel_from = xstrdup(next);
		send_request(sc);
		return;
	}
	if (f->n_reactions >= REBUILD_MAX_REACTIONS)
		skipped(sc, "rebuild: stopped reading reactions", f->event_id, "too many reactions");
	/* dir=b gave them newest first; the order they were sent in reads better. */
	for (size_t i = 0; i < f->n_reactions / 2; i++) {
		struct rebuild_reaction t = f->reactions[i];
		f->reactions[i] = f->reactions[f->n_reactions - 1 - i];
		f->reactions[f->n_reactions - 1 - i] = t;
	}
	sc->rel_index++;
	next_root(sc);
}

/* ---- requests, errors and back-off ---- */

static void retry_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct room_scan *sc = data;
	sc->retry_timer = 0;
	send_request(sc);
}

/* Capped exponential, then a jitter factor in [0.5, 1): bridges restarted together do
 * not come back in lockstep. */
static uint64_t backoff_ms(struct room_scan *sc)
{
	struct rebuild *rb = sc->rb;
	double d = rb->opt.retry_min_ms;
	for (int i = 1; i < sc->attempts && d < rb->opt.retry_max_ms; i++)
		d *= 2;
	if (d > rb->opt.retry_max_ms)
		d = rb->opt.retry_max_ms;
	return (uint64_t)(d * (0.5 + next_random01(rb) / 2.0));
}

/* A transient failure (or none could be started: resp NULL): try again later, or give up
 * on the room after max_attempts. */
static void retry_or_give_up(struct room_scan *sc, const struct matrix_response *resp)
{
	struct rebuild *rb = sc->rb;
	struct strbuf why = STRBUF_INIT;
	if (resp)
		matrix_response_describe(resp, &why);
	else
		strbuf_puts(&why, "request could not be started");
	sc->attempts++;
	if (sc->attempts >= rb->opt.max_attempts) {
		struct strbuf reason = STRBUF_INIT;
		strbuf_printf(&reason, "gave up after %d attempts: %s", sc->attempts, strbuf_str(&why));
		room_failed(sc, strbuf_str(&reason));
		strbuf_free(&reason);
		strbuf_free(&why);
		return;
	}
	uint64_t delay = backoff_ms(sc);
	long asked = resp ? resp->retry_after_ms : -1;
	if (asked > REBUILD_MAX_RETRY_AFTER_MS)
		asked = REBUILD_MAX_RETRY_AFTER_MS;
	if (asked > 0 && (uint64_t)asked > delay)
		delay = (uint64_t)asked;
	char ms[24];
	snprintf(ms, sizeof ms, "%llu", (unsigned long long)delay);
	log_kv(ZLOG_DEBUG, "rebuild: request failed; retrying", "room", sc->room_id, "reason", strbuf_str(&why),
	       "retry_ms", ms, NULL);
	sc->retry_timer = loop_timer_add(rb->loop, delay, retry_fired, sc);
	strbuf_free(&why);
}

static void on_response(const struct matrix_response *resp, void *data)
{
	struct room_scan *sc = data;
	if (sc->phase == SCAN_DONE)
		return;
	if (resp->status == 200 && resp->json) {
		sc->attempts = 0;
		if (sc->phase == SCAN_MESSAGES)
			handle_messages(sc, resp->json);
		else
			handle_relations(sc, resp->json);
		return;
	}
	if (resp->status == 200) {
		/* Not JSON: a proxy's error page, most likely; worth another try. */
		retry_or_give_up(sc, resp);
		return;
	}
	if (matrix_response_is_transient(resp)) {
		retry_or_give_up(sc, resp);
		return;
	}
	/* 403 (not joined, unknown room), 404...: nothing a retry would change. */
	struct strbuf why = STRBUF_INIT;
	matrix_response_describe(resp, &why);
	room_failed(sc, strbuf_str(&why));
	strbuf_free(&why);
}

static void send_request(struct room_scan *sc)
{
	struct rebuild *rb = sc->rb;
	struct strbuf path = STRBUF_INIT;
	char *room_q = matrix_escape_segment(sc->room_id);
	if (sc->phase == SCAN_MESSAGES) {
		/* No from on the first page: the newest events (allowed since spec v1.3). */
		strbuf_printf(&path, "/_matrix/client/v3/rooms/%s/messages?dir=b&limit=%d&filter=%s", room_q,
			      REBUILD_MESSAGES_LIMIT, rb->filter_q);
		if (sc->from) {
			char *from_q = matrix_escape_segment(sc->from);
			strbuf_printf(&path, "&from=%s", from_q);
			free(from_q);
		}
	} else {
		char *event_q = matrix_escape_segment(sc->roots[sc->rel_index].event_id);
		strbuf_printf(&path, "/_matrix/client/v1/rooms/%s/relations/%s/m.annotation?dir=b&limit=%d", room_q,
			      event_q, rb->opt.relations_limit);
		free(event_q);
		if (sc->rel_from) {
			char *from_q = matrix_escape_segment(sc->rel_from);
			strbuf_printf(&path, "&from=%s", from_q);
			free(from_q);
		}
	}
	free(room_q);
	sc->requests++;
	if (matrix_request(rb->mc, "GET", strbuf_str(&path), NULL, on_response, sc) != 0)
		retry_or_give_up(sc, NULL);
	strbuf_free(&path);
}

/* ---- life cycle ---- */

struct rebuild *rebuild_start(struct loop *loop, const struct config_matrix *cfg, const char *user_id,
			      const char *const *room_ids, size_t n_rooms, const struct rebuild_options *opt,
			      rebuild_done_fn done, void *data)
{
	if (!loop || !cfg || !user_id || !*user_id || !done) {
		log_kv(ZLOG_ERROR, "rebuild: needs a loop, Matrix settings, the bridge's user id and a callback", NULL);
		return NULL;
	}
	struct rebuild *rb = xcalloc(1, sizeof *rb);
	rb->loop = loop;
	rb->cfg = cfg;
	rb->mc = matrix_client_new(loop, cfg);
	if (!rb->mc) {
		free(rb);
		return NULL;
	}
	rb->user_id = xstrdup(user_id);
	rb->done = done;
	rb->data = data;
	if (opt)
		rb->opt = *opt;
	if (rb->opt.max_events <= 0)
		rb->opt.max_events = REBUILD_DEFAULT_MAX_EVENTS;
	if (rb->opt.max_age_ms <= 0)
		rb->opt.max_age_ms = REBUILD_DEFAULT_MAX_AGE_MS;
	if (rb->opt.now_ms <= 0)
		rb->opt.now_ms = clock_real_ms();
	if (rb->opt.retry_min_ms <= 0)
		rb->opt.retry_min_ms = cfg->retry_min_ms > 0 ? cfg->retry_min_ms : REBUILD_DEFAULT_RETRY_MIN_MS;
	if (rb->opt.retry_max_ms <= 0)
		rb->opt.retry_max_ms = cfg->retry_max_ms > 0 ? cfg->retry_max_ms : REBUILD_DEFAULT_RETRY_MAX_MS;
	if (rb->opt.retry_max_ms < rb->opt.retry_min_ms)
		rb->opt.retry_max_ms = rb->opt.retry_min_ms;
	if (rb->opt.max_attempts <= 0)
		rb->opt.max_attempts = REBUILD_DEFAULT_MAX_ATTEMPTS;
	if (rb->opt.relations_limit <= 0)
		rb->opt.relations_limit = REBUILD_DEFAULT_RELATIONS_LIMIT;
	rb->cutoff_ms = rb->opt.now_ms > rb->opt.max_age_ms ? rb->opt.now_ms - rb->opt.max_age_ms : 0;
	char *filter = rebuild_messages_filter_json(user_id);
	rb->filter_q = matrix_escape_segment(filter);
	free(filter);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	rb->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)rb;
	if (!rb->rng)
		rb->rng = 0x9E3779B97F4A7C15ULL;

	rb->rooms = xcalloc(n_rooms ? n_rooms : 1, sizeof *rb->rooms);
	for (size_t i = 0; i < n_rooms; i++) {
		const char *r = room_ids[i] ? room_ids[i] : "";
		bool seen = false;
		for (size_t k = 0; k < rb->n_rooms && !seen; k++)
			seen = strcmp(rb->rooms[k].room_id, r) == 0;
		if (seen)
			continue;
		struct room_scan *sc = &rb->rooms[rb->n_rooms++];
		sc->rb = rb;
		sc->room_id = xstrdup(r);
	}
	/* Counted before any room may finish, so the last one is recognised as the last. */
	rb->rooms_left = rb->n_rooms;
	for (size_t i = 0; i < rb->n_rooms; i++) {
		struct room_scan *sc = &rb->rooms[i];
		if (sc->room_id[0] != '!') {
			room_failed(sc, "not a room id");
			continue;
		}
		sc->phase = SCAN_MESSAGES;
		send_request(sc);
	}
	if (rb->n_rooms == 0)
		rb->done_timer = loop_timer_add(loop, 0, done_fired, rb);
	return rb;
}

void rebuild_free(struct rebuild *rb)
{
	if (!rb)
		return;
	if (rb->done_timer)
		loop_timer_cancel(rb->loop, rb->done_timer);
	matrix_client_free(rb->mc);
	for (size_t i = 0; i < rb->n_rooms; i++) {
		struct room_scan *sc = &rb->rooms[i];
		if (sc->retry_timer)
			loop_timer_cancel(rb->loop, sc->retry_timer);
		for (size_t k = 0; k < sc->n_edits; k++) {
			free(sc->edits[k].target);
			free(sc->edits[k].event_id);
			free(sc->edits[k].content_json);
		}
		free(sc->edits);
		for (size_t k = 0; k < sc->n_roots; k++)
			failure_clear(&sc->roots[k]);
		free(sc->roots);
		free(sc->room_id);
		free(sc->from);
		free(sc->rel_from);
		free(sc->reason);
	}
	free(rb->rooms);
	free(rb->user_id);
	free(rb->filter_q);
	free(rb);
}
