/* sync: the Matrix /sync long poll on the bridge's loop: filter, since token, back-off,
 * fresh starts and gaps, and a homeserver that answers at once with nothing or with more
 * than a client takes. See include/sync.h for the delivery contract. */
#include "sync.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "matrix.h"
#include "strbuf.h"

#define SYNC_DEFAULT_POLL_MS 30000
/* Beyond the poll timeout: the homeserver answers a little after it, and a busy one
 * later still; a poll cut too early only costs a retry, one never cut hangs forever. */
#define SYNC_DEFAULT_HTTP_GRACE_MS 15000
#define SYNC_DEFAULT_TIMELINE_LIMIT 50
#define SYNC_DEFAULT_RETRY_MIN_MS 1000
#define SYNC_DEFAULT_RETRY_MAX_MS 60000
/* A homeserver asking for more than this is treated as asking for this. */
#define SYNC_MAX_RETRY_AFTER_MS 3600000L
/* An empty answer to a long poll is "early" when it came sooner than half the wait asked
 * for and sooner than this: a homeserver with its own, shorter, cap on long polls (held
 * for seconds, costing little) is not slowed down; one answering at once is. */
#define SYNC_EARLY_ANSWER_MS 2000
/* The longest wait between polls of a homeserver that answers them at once with nothing:
 * it costs an empty answer per wait, while every reaction waits for the next poll. */
#define SYNC_EARLY_EMPTY_MAX_DELAY_MS 10000
/* After an answer over the size cap the timeline limit is divided by this, down to 1. */
#define SYNC_OVERSIZED_LIMIT_DIVISOR 10

struct sync {
	struct loop *loop;
	const struct config_matrix *cfg;
	struct matrix_client *mc;  /* ours alone: freeing it is how a poll is abandoned */
	char **rooms;              /* room ids the filter and the local check allow */
	size_t n_rooms;
	char **types;              /* event types asked for; none means all */
	size_t n_types;
	struct sync_callbacks cb;
	struct sync_options opt;
	char *since;               /* token of the next poll; NULL: fresh start */
	char *saved;               /* last token handed to token_save, to skip repeats */
	bool started;
	bool polling;              /* a /sync request is in flight */
	bool want_full_state;      /* next poll asks for full_state (resume, rooms added) */
	bool lost_position;        /* token rejected: the fresh start reports gaps */
	int poll_wait_ms;          /* how long the poll in flight let the homeserver hold it; 0: not a long poll */
	int early_empty;           /* long polls answered at once with nothing, in a row */
	int resync_limit;          /* timeline limit after an answer over the size cap; 0: opt's */
	bool resyncing;            /* the poll asks for less after an oversized answer: its gaps are logged */
	uint64_t retry_timer;      /* back-off timer, 0 if none */
	int failures;              /* consecutive failed polls */
	bool permanent_logged;     /* the current permanent error was logged loudly */
	uint64_t rng;              /* xorshift state for jitter */
	int dispatching;           /* >0 while a response is being handed over */
	bool free_pending;         /* sync_free was called from a callback */
};

static void start_poll(struct sync *s);

/* ---- small helpers ---- */

static char **strv_copy(const char *const *v, size_t n, size_t *out_n)
{
	char **out = xcalloc(n ? n : 1, sizeof *out);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] && *v[i])
			out[k++] = xstrdup(v[i]);
	*out_n = k;
	return out;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n && v; i++)
		free(v[i]);
	free(v);
}

static bool strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Matrix filters know one wildcard, '*' (any run of characters); nothing else is special. */
static bool type_glob_match(const char *pat, const char *s)
{
	while (*pat) {
		if (*pat == '*') {
			while (*pat == '*')
				pat++;
			if (!*pat)
				return true;
			for (; *s; s++)
				if (type_glob_match(pat, s))
					return true;
			return false;
		}
		if (*pat != *s)
			return false;
		pat++;
		s++;
	}
	return *s == '\0';
}

/* Room ids only: a filter cannot match an alias, and silently never syncing a room
 * would be worse than a warning. */
static char **rooms_copy(const char *const *room_ids, size_t n, size_t *out_n)
{
	char **out = xcalloc(n ? n : 1, sizeof *out);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *r = room_ids[i];
		if (!r || r[0] != '!') {
			log_kv(ZLOG_WARN, "sync: not a room id; its events are not synced", "room", r ? r : "", NULL);
			continue;
		}
		if (!strv_has(out, k, r))
			out[k++] = xstrdup(r);
	}
	*out_n = k;
	return out;
}

static double next_random01(struct sync *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static const char *json_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- what an answer carries ---- */

/* Whether an object of a /sync answer holds an event list or a device list change, at
 * any depth. Event lists are not entered. */
static bool holds_something(const cJSON *node, int depth)
{
	/* Deeper than any /sync section: something unknown; better not call it nothing. */
	if (depth > 8)
		return true;
	const cJSON *child;
	cJSON_ArrayForEach(child, node)
	{
		if (cJSON_IsArray(child) && cJSON_GetArraySize(child) > 0 && child->string &&
		    (strcmp(child->string, "events") == 0 ||
		     (depth == 1 && (strcmp(child->string, "changed") == 0 || strcmp(child->string, "left") == 0))))
			return true;
		if (cJSON_IsObject(child) && holds_something(child, depth + 1))
			return true;
	}
	return false;
}

bool sync_answer_is_empty(const cJSON *body)
{
	return cJSON_IsObject(body) && !holds_something(body, 0);
}

/* ---- the filter ---- */

static cJSON *string_array(char *const *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

static cJSON *empty_types_section(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "types", cJSON_CreateArray());
	return o;
}

char *sync_filter_json(const char *const *room_ids, size_t n_rooms, const char *const *types, size_t n_types,
		       int timeline_limit, int64_t fresh_start_mark)
{
	cJSON *f = cJSON_CreateObject();
	cJSON *room = cJSON_AddObjectToObject(f, "room");
	/* An empty list means "no rooms" (not "all"): a bridge without routes syncs nothing. */
	cJSON_AddItemToObject(room, "rooms", string_array((char *const *)room_ids, n_rooms));
	cJSON *timeline = cJSON_AddObjectToObject(room, "timeline");
	cJSON *state = cJSON_AddObjectToObject(room, "state");
	if (n_types > 0) {
		cJSON_AddItemToObject(timeline, "types", string_array((char *const *)types, n_types));
		cJSON_AddItemToObject(state, "types", string_array((char *const *)types, n_types));
	}
	if (timeline_limit > 0)
		cJSON_AddNumberToObject(timeline, "limit", timeline_limit);
	/* Membership events are wanted for the bridge's own (kicks, bans); the state of a
	 * large room would otherwise bring every member's. Lazy loading keeps the members of
	 * the timeline's senders, and Synapse always adds the syncing user's own. */
	for (size_t i = 0; i < n_types; i++)
		if (strcmp(types[i], "m.room.member") == 0)
			cJSON_AddTrueToObject(state, "lazy_load_members");
	/* Typing, receipts, presence and account data: never needed, often the bulk. */
	cJSON_AddItemToObject(room, "ephemeral", empty_types_section());
	cJSON_AddItemToObject(room, "account_data", empty_types_section());
	cJSON_AddItemToObject(f, "presence", empty_types_section());
	cJSON_AddItemToObject(f, "account_data", empty_types_section());
	/* Filters allow fields they do not know (Synapse's schema: additionalProperties). */
	if (fresh_start_mark > 0)
		cJSON_AddNumberToObject(f, SYNC_FRESH_START_KEY, (double)fresh_start_mark);
	char *out = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	if (!out)
		abort(); /* cJSON fails only on out-of-memory: same policy as xmalloc */
	char *copy = xstrdup(out);
	cJSON_free(out);
	return copy;
}

/* ---- handing a batch over (pure: see sync_walk_batch in sync.h) ---- */

static bool walk_type_wanted(const struct sync_walk *w, const char *type)
{
	if (w->n_types == 0)
		return true;
	for (size_t i = 0; i < w->n_types; i++)
		if (type_glob_match(w->types[i], type))
			return true;
	return false;
}

/* Hands one event over if its type is asked for. Returns false when the walk must stop. */
static bool emit(const struct sync_walk *w, const char *room_id, const cJSON *ev, bool snapshot)
{
	const char *type = json_string(ev, "type");
	if (!type || !walk_type_wanted(w, type))
		return true;
	const cJSON *sk = cJSON_GetObjectItemCaseSensitive(ev, "state_key");
	struct sync_event se = {
		.room_id = room_id,
		.event_id = json_string(ev, "event_id"),
		.type = type,
		.sender = json_string(ev, "sender"),
		.state_key = cJSON_IsString(sk) ? sk->valuestring : NULL,
		.event = ev,
		.snapshot = snapshot,
	};
	return !w->on_event || w->on_event(&se, w->data);
}

static const cJSON *events_of(const cJSON *room, const char *section)
{
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(room, section);
	const cJSON *evs = sec ? cJSON_GetObjectItemCaseSensitive(sec, "events") : NULL;
	return cJSON_IsArray(evs) ? evs : NULL;
}

/* One joined room of a batch: gap first, then the state before the timeline, then the
 * timeline in order. Returns false when the walk must stop. */
static bool deliver_room(const struct sync_walk *w, const char *room_id, const cJSON *room)
{
	const cJSON *timeline = cJSON_GetObjectItemCaseSensitive(room, "timeline");
	const char *prev_batch = json_string(timeline, "prev_batch");
	bool limited = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(timeline, "limited"));
	if (((w->fresh && w->lost_position) || (!w->fresh && limited)) && w->on_gap) {
		if (!w->on_gap(room_id, prev_batch, w->data))
			return false;
	}
	const cJSON *ev;
	cJSON_ArrayForEach(ev, events_of(room, "state"))
	{
		if (!emit(w, room_id, ev, true))
			return false;
	}
	cJSON_ArrayForEach(ev, events_of(room, "timeline"))
	{
		bool is_state = cJSON_GetObjectItemCaseSensitive(ev, "state_key") != NULL;
		/* A fresh start's timeline is the past: only its state still matters. */
		if (w->fresh && !is_state)
			continue;
		if (!emit(w, room_id, ev, w->fresh))
			return false;
		/* A reload may have dropped this room meanwhile. */
		if (w->room_wanted && !w->room_wanted(room_id, w->data))
			return true;
	}
	return true;
}

/* A room the user left (or was kicked or banned from) since the last batch: its timeline
 * up to and including that leave. No gap: the room is not followed any more. Returns
 * false when the walk must stop. */
static bool deliver_left_room(const struct sync_walk *w, const char *room_id, const cJSON *room)
{
	const cJSON *ev;
	cJSON_ArrayForEach(ev, events_of(room, "timeline"))
	{
		if (!emit(w, room_id, ev, false))
			return false;
		if (w->room_wanted && !w->room_wanted(room_id, w->data))
			return true;
	}
	return true;
}

/* Each invite, whatever the room: Synapse does not apply a filter's room list to
 * invites, and an invite back into a room the bridge was removed from is one it wants. */
static bool deliver_invites(const struct sync_walk *w, const cJSON *invite)
{
	const cJSON *room;
	cJSON_ArrayForEach(room, invite)
	{
		if (!room->string || !w->on_invite)
			continue;
		const cJSON *state = cJSON_GetObjectItemCaseSensitive(room, "invite_state");
		const cJSON *evs = state ? cJSON_GetObjectItemCaseSensitive(state, "events") : NULL;
		if (!w->on_invite(room->string, cJSON_IsArray(evs) ? evs : NULL, w->data))
			return false;
	}
	return true;
}

/* Walks rooms.join, then (unless fresh) rooms.leave, then rooms.invite: a batch holding
 * the bridge's removal and its invite back hands over the removal first. */
static void walk_rooms(const cJSON *rooms, const struct sync_walk *w)
{
	const cJSON *room;
	cJSON_ArrayForEach(room, cJSON_GetObjectItemCaseSensitive(rooms, "join"))
	{
		/* The filter should have kept others out; a homeserver ignoring it must not
		 * make us hand over rooms nobody routes. */
		if (!room->string || (w->room_wanted && !w->room_wanted(room->string, w->data)))
			continue;
		if (!deliver_room(w, room->string, room))
			return;
	}
	/* A fresh start's left rooms (include_leave) are history. */
	const cJSON *leave = w->fresh ? NULL : cJSON_GetObjectItemCaseSensitive(rooms, "leave");
	cJSON_ArrayForEach(room, leave)
	{
		if (!room->string || (w->room_wanted && !w->room_wanted(room->string, w->data)))
			continue;
		if (!deliver_left_room(w, room->string, room))
			return;
	}
	deliver_invites(w, cJSON_GetObjectItemCaseSensitive(rooms, "invite"));
}

const char *sync_walk_batch(const cJSON *body, const struct sync_walk *w)
{
	const char *next = json_string(body, "next_batch");
	if (!next || !*next)
		return NULL;
	const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(body, "rooms");
	if (cJSON_IsObject(rooms))
		walk_rooms(rooms, w);
	return next;
}

/* The live syncer's side of the walk: its room list (which a callback may replace) and
 * its callbacks, stopping as soon as one of them called sync_free. */
static bool live_room_wanted(const char *room_id, void *data)
{
	const struct sync *s = data;
	return strv_has(s->rooms, s->n_rooms, room_id);
}

static bool live_event(const struct sync_event *ev, void *data)
{
	struct sync *s = data;
	if (s->cb.on_event)
		s->cb.on_event(ev, s->cb.data);
	return !s->free_pending;
}

static bool live_gap(const char *room_id, const char *prev_batch, void *data)
{
	struct sync *s = data;
	/* What skipping an oversized window cost: the room's timeline before prev_batch
	 * (claims, redactions, commands); its state (membership, power levels, encryption)
	 * still came as state. An operator can read the rest from prev_batch back. */
	if (s->resyncing)
		log_kv(ZLOG_WARN,
		       "sync: this room's events before prev_batch were skipped to stay under the size cap; "
		       "reactions, redactions and commands sent then are not seen",
		       "room", room_id, "prev_batch", prev_batch ? prev_batch : "-", NULL);
	if (s->cb.on_gap)
		s->cb.on_gap(room_id, prev_batch, s->cb.data);
	return !s->free_pending;
}

static bool live_invite(const char *room_id, const cJSON *invite_state, void *data)
{
	struct sync *s = data;
	s->cb.on_invite(room_id, invite_state, s->cb.data);
	return !s->free_pending;
}

static void save_token(struct sync *s)
{
	if (s->saved && s->since && strcmp(s->saved, s->since) == 0)
		return;
	if (!s->saved && !s->since)
		return;
	if (s->cb.token_save)
		s->cb.token_save(s->since, s->cb.data);
	free(s->saved);
	s->saved = xstrdup(s->since);
}

/* A 200 with a usable body. Returns false if the body is not a /sync answer. */
static bool handle_batch(struct sync *s, const cJSON *json)
{
	const char *next = json_string(json, "next_batch");
	if (!next || !*next)
		return false;
	/* Cleared before the callbacks run: a sync_set_rooms from one of them sets it
	 * again for the next poll. */
	s->want_full_state = false;
	struct sync_walk w = {
		.types = (const char *const *)s->types,
		.n_types = s->n_types,
		.fresh = s->since == NULL,
		.lost_position = s->lost_position,
		.room_wanted = live_room_wanted,
		.on_event = live_event,
		.on_gap = live_gap,
		.on_invite = s->cb.on_invite ? live_invite : NULL,
		.data = s,
	};
	sync_walk_batch(json, &w);
	if (s->free_pending)
		return true;
	free(s->since);
	s->since = xstrdup(next);
	s->lost_position = false;
	s->resync_limit = 0; /* the window is behind us: the next poll asks for the usual */
	s->resyncing = false;
	/* Only now: every event of the batch was handed over (at least once delivery). */
	save_token(s);
	return true;
}

/* ---- errors and back-off ---- */

static void retry_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct sync *s = data;
	s->retry_timer = 0;
	start_poll(s);
}

static void retry_after(struct sync *s, uint64_t delay_ms)
{
	if (s->retry_timer)
		loop_timer_cancel(s->loop, s->retry_timer);
	s->retry_timer = loop_timer_add(s->loop, delay_ms, retry_fired, s);
}

/* Capped exponential, then a jitter factor in [0.5, 1): several bridges restarted by
 * the same homeserver outage do not come back in lockstep. */
static uint64_t backoff_ms(struct sync *s)
{
	double d = s->opt.retry_min_ms;
	for (int i = 1; i < s->failures && d < s->opt.retry_max_ms; i++)
		d *= 2;
	if (d > s->opt.retry_max_ms)
		d = s->opt.retry_max_ms;
	return (uint64_t)(d * (0.5 + next_random01(s) / 2.0));
}

static bool is_bad_token(const struct sync *s, const struct matrix_response *r)
{
	if (!s->since || r->status != 400 || !r->errcode)
		return false;
	if (strcmp(r->errcode, "M_UNKNOWN_POS") == 0)
		return true;
	/* Synapse: 400 M_UNKNOWN "Invalid stream token" (no dedicated errcode in v3). */
	return strcmp(r->errcode, "M_UNKNOWN") == 0 && r->error && strcasestr(r->error, "token");
}

static void describe(const struct matrix_response *r, struct strbuf *why)
{
	if (r->status == 0)
		strbuf_printf(why, "%s", r->curl_error ? r->curl_error : "transport error");
	else
		strbuf_printf(why, "HTTP %ld %s: %s", r->status, r->errcode ? r->errcode : "-",
			      r->error ? r->error : "-");
}

static void handle_failure(struct sync *s, const struct matrix_response *r, bool bad_body)
{
	struct strbuf why = STRBUF_INIT;
	if (bad_body)
		strbuf_printf(&why, "HTTP %ld without next_batch", r->status);
	else
		describe(r, &why);
	s->failures++;

	if (!bad_body && is_bad_token(s, r)) {
		log_kv(ZLOG_WARN, "sync: the homeserver rejected the since token; starting afresh, gaps reported",
		       "token", s->since, "reason", strbuf_str(&why), NULL);
		free(s->since);
		s->since = NULL;
		s->lost_position = true;
		save_token(s); /* forgets it: a restart must not send it again */
		strbuf_free(&why);
		start_poll(s);
		return;
	}
	if (bad_body || matrix_response_is_transient(r)) {
		uint64_t delay = backoff_ms(s);
		long asked = r->retry_after_ms < SYNC_MAX_RETRY_AFTER_MS ? r->retry_after_ms : SYNC_MAX_RETRY_AFTER_MS;
		if (asked > 0 && (uint64_t)asked > delay)
			delay = (uint64_t)asked;
		char ms[24];
		snprintf(ms, sizeof ms, "%llu", (unsigned long long)delay);
		log_kv(s->failures == 1 ? ZLOG_WARN : ZLOG_DEBUG, "sync: poll failed; retrying with the same token",
		       "reason", strbuf_str(&why), "retry_ms", ms, NULL);
		retry_after(s, delay);
	} else {
		/* 401, 403, 404...: nothing we can fix; the operator may (token file + restart,
		 * homeserver config). Loud once, then quiet and slow. */
		log_kv(s->permanent_logged ? ZLOG_DEBUG : ZLOG_ERROR,
		       r->status == 401 ? "sync: the homeserver refused the access token; retrying slowly"
					: "sync: the homeserver refused /sync; retrying slowly",
		       "reason", strbuf_str(&why), NULL);
		s->permanent_logged = true;
		retry_after(s, (uint64_t)s->opt.retry_max_ms);
	}
	strbuf_free(&why);
}

/* The timeline limit of the next poll: one event for a fresh start (its timeline is the
 * past), less after an answer over the size cap. */
static int poll_timeline_limit(const struct sync *s)
{
	if (!s->since)
		return 1;
	return s->resync_limit > 0 ? s->resync_limit : s->opt.timeline_limit;
}

/* An answer over the size cap comes again for the same request, for ever: ask for less.
 * The same token with fewer events per room first (a busy room's older events are
 * skipped; its state still comes), then a fresh start (every room's events since the
 * token skipped). Each step is one log line; the skipped rooms follow as gaps. */
static void handle_oversized(struct sync *s)
{
	if (s->opt.count_oversized)
		(*s->opt.count_oversized)++;
	char cap[24], limit[16], next_limit[16];
	snprintf(cap, sizeof cap, "%ld", (long)MATRIX_MAX_BODY);
	int was = poll_timeline_limit(s);
	snprintf(limit, sizeof limit, "%d", was);
	if (s->since && was > 1) {
		s->resync_limit = was / SYNC_OVERSIZED_LIMIT_DIVISOR > 0 ? was / SYNC_OVERSIZED_LIMIT_DIVISOR : 1;
		s->resyncing = true;
		snprintf(next_limit, sizeof next_limit, "%d", s->resync_limit);
		log_kv(ZLOG_WARN,
		       "sync: a /sync answer was over the size cap; asking again for fewer events per room "
		       "(older events of busy rooms are skipped, each room logged)",
		       "cap_bytes", cap, "token", s->since, "timeline_limit", limit, "new_timeline_limit", next_limit,
		       NULL);
		start_poll(s);
		return;
	}
	if (s->since) {
		log_kv(ZLOG_WARN,
		       "sync: a /sync answer with one event per room was still over the size cap; starting afresh "
		       "from now (every room's events since the token are skipped, each room logged)",
		       "cap_bytes", cap, "token", s->since, NULL);
		free(s->since);
		s->since = NULL;
		s->resync_limit = 0;
		s->resyncing = true;
		s->lost_position = true; /* the fresh start reports every room as a gap */
		save_token(s);           /* forgets it: a restart must not ask for that window again */
		start_poll(s);
		return;
	}
	/* The rooms' current state alone is too big: nothing smaller to ask for. */
	char ms[24];
	snprintf(ms, sizeof ms, "%d", s->opt.retry_max_ms);
	log_kv(ZLOG_ERROR, "sync: a fresh start's answer (the rooms' current state) is over the size cap; retrying slowly",
	       "cap_bytes", cap, "retry_ms", ms, NULL);
	retry_after(s, (uint64_t)s->opt.retry_max_ms);
}

/* Growing like backoff_ms, from retry_min_ms, capped at SYNC_EARLY_EMPTY_MAX_DELAY_MS (or
 * retry_max_ms when lower, but never under retry_min_ms), jittered in [0.5, 1). */
static uint64_t early_empty_delay_ms(struct sync *s)
{
	double cap = s->opt.retry_max_ms < SYNC_EARLY_EMPTY_MAX_DELAY_MS ? s->opt.retry_max_ms
									 : SYNC_EARLY_EMPTY_MAX_DELAY_MS;
	if (cap < s->opt.retry_min_ms)
		cap = s->opt.retry_min_ms;
	double d = s->opt.retry_min_ms;
	for (int i = SYNC_EARLY_EMPTY_TOLERATED + 1; i < s->early_empty && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return (uint64_t)(d * (0.5 + next_random01(s) / 2.0));
}

/* The next poll after a good answer: at once, unless the homeserver keeps answering long
 * polls at once with nothing (a server or proxy that ignores timeout): then a growing
 * wait, so that it is not asked dozens of times a second. */
static void poll_after_answer(struct sync *s, bool early_empty)
{
	if (!early_empty) {
		if (s->early_empty > SYNC_EARLY_EMPTY_TOLERATED) {
			char n[16];
			snprintf(n, sizeof n, "%d", s->early_empty);
			log_kv(ZLOG_INFO, "sync: the homeserver holds long polls again; polling normally",
			       "early_empty_answers", n, NULL);
		}
		s->early_empty = 0;
		start_poll(s);
		return;
	}
	s->early_empty++;
	if (s->early_empty <= SYNC_EARLY_EMPTY_TOLERATED) {
		start_poll(s);
		return;
	}
	uint64_t delay = early_empty_delay_ms(s);
	if (s->opt.count_empty_backoffs)
		(*s->opt.count_empty_backoffs)++;
	char n[16], asked[16], ms[24];
	snprintf(n, sizeof n, "%d", s->early_empty);
	snprintf(asked, sizeof asked, "%d", s->opt.poll_timeout_ms);
	snprintf(ms, sizeof ms, "%llu", (unsigned long long)delay);
	log_kv(s->early_empty == SYNC_EARLY_EMPTY_TOLERATED + 1 ? ZLOG_WARN : ZLOG_DEBUG,
	       "sync: the homeserver answers long polls at once with nothing; waiting before each poll until it "
	       "holds them again",
	       "answers_in_a_row", n, "asked_wait_ms", asked, "retry_ms", ms, NULL);
	retry_after(s, delay);
}

/* ---- polling ---- */

static void sync_destroy(struct sync *s);

static void handle_response(struct sync *s, const struct matrix_response *r)
{
	if (r->status == 200 && r->json) {
		/* A homeserver answers an idle poll after all the wait asked for. */
		double took_ms = r->elapsed_s * 1000.0;
		bool early_empty = s->poll_wait_ms > 0 && took_ms < s->poll_wait_ms / 2.0 &&
				   took_ms < SYNC_EARLY_ANSWER_MS && sync_answer_is_empty(r->json);
		if (handle_batch(s, r->json)) {
			if (s->free_pending)
				return;
			if (s->failures > 0 || s->permanent_logged) {
				char n[24];
				snprintf(n, sizeof n, "%d", s->failures);
				log_kv(ZLOG_INFO, "sync: polling again", "failed_polls", n, NULL);
			}
			s->failures = 0;
			s->permanent_logged = false;
			poll_after_answer(s, early_empty);
			return;
		}
		handle_failure(s, r, true);
		return;
	}
	if (r->too_large) {
		handle_oversized(s);
		return;
	}
	handle_failure(s, r, r->status == 200);
}

static void on_sync_response(const struct matrix_response *r, void *data)
{
	struct sync *s = data;
	s->polling = false;
	s->dispatching++;
	handle_response(s, r);
	s->dispatching--;
	if (s->free_pending && s->dispatching == 0)
		sync_destroy(s);
}

/* The real time in ms, strictly increasing within the process: two fresh starts within
 * the same millisecond still differ. */
static int64_t next_fresh_start_mark(void)
{
	static int64_t last;
	int64_t now = clock_real_ms();
	last = now > last ? now : last + 1;
	return last;
}

static void start_poll(struct sync *s)
{
	if (s->polling || s->free_pending || !s->mc)
		return;
	if (s->retry_timer) {
		loop_timer_cancel(s->loop, s->retry_timer);
		s->retry_timer = 0;
	}
	bool fresh = s->since == NULL;
	/* A fresh start wants next_batch and state, not history: one timeline event per
	 * room is the least the API allows. Synapse answers a /sync identical to one of the
	 * last two minutes (user, device, timeout, since, filter as sent) from its response
	 * cache: a fresh start after an answer over the size cap, a rejected token or a
	 * restart would get the earlier start's next_batch and see again what it skipped.
	 * The start's own instant in the filter makes every fresh start a request of its own. */
	char *filter = sync_filter_json((const char *const *)s->rooms, s->n_rooms, (const char *const *)s->types,
					s->n_types, poll_timeline_limit(s), fresh ? next_fresh_start_mark() : 0);
	char *filter_q = matrix_escape_segment(filter);
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "/_matrix/client/v3/sync?filter=%s&timeout=%d", filter_q,
		      fresh ? 0 : s->opt.poll_timeout_ms);
	if (!fresh) {
		char *since_q = matrix_escape_segment(s->since);
		strbuf_printf(&path, "&since=%s", since_q);
		free(since_q);
		if (s->want_full_state)
			strbuf_puts(&path, "&full_state=true");
	}
	free(filter);
	free(filter_q);
	if (matrix_request_timeout(s->mc, "GET", strbuf_str(&path), NULL, s->opt.http_timeout_ms, on_sync_response,
				   s) == 0) {
		s->polling = true;
		/* Homeservers answer full_state and fresh polls at once, as asked. */
		s->poll_wait_ms = fresh || s->want_full_state ? 0 : s->opt.poll_timeout_ms;
	} else {
		s->failures++;
		retry_after(s, backoff_ms(s));
	}
	strbuf_free(&path);
}

/* ---- life cycle ---- */

struct sync *sync_new(struct loop *loop, const struct config_matrix *cfg, const char *const *room_ids,
		      size_t n_rooms, const char *const *types, size_t n_types, const struct sync_callbacks *cb,
		      const struct sync_options *opt)
{
	if (!loop || !cfg || !cb) {
		log_kv(ZLOG_ERROR, "sync: needs a loop, Matrix settings and callbacks", NULL);
		return NULL;
	}
	struct sync *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->cfg = cfg;
	s->mc = matrix_client_new(loop, cfg);
	if (!s->mc) {
		free(s);
		return NULL;
	}
	s->rooms = rooms_copy(room_ids, n_rooms, &s->n_rooms);
	s->types = strv_copy(types, n_types, &s->n_types);
	s->cb = *cb;
	if (opt)
		s->opt = *opt;
	if (s->opt.poll_timeout_ms <= 0)
		s->opt.poll_timeout_ms = SYNC_DEFAULT_POLL_MS;
	if (s->opt.http_timeout_ms <= 0)
		s->opt.http_timeout_ms = s->opt.poll_timeout_ms + SYNC_DEFAULT_HTTP_GRACE_MS;
	if (s->opt.timeline_limit <= 0)
		s->opt.timeline_limit = SYNC_DEFAULT_TIMELINE_LIMIT;
	if (s->opt.retry_min_ms <= 0)
		s->opt.retry_min_ms = SYNC_DEFAULT_RETRY_MIN_MS;
	if (s->opt.retry_max_ms <= 0)
		s->opt.retry_max_ms = SYNC_DEFAULT_RETRY_MAX_MS;
	if (s->opt.retry_max_ms < s->opt.retry_min_ms)
		s->opt.retry_max_ms = s->opt.retry_min_ms;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)s;
	if (!s->rng)
		s->rng = 0x9E3779B97F4A7C15ULL;
	return s;
}

int sync_start(struct sync *s)
{
	if (!s || s->started)
		return -1;
	s->started = true;
	char *token = s->cb.token_load ? s->cb.token_load(s->cb.data) : NULL;
	if (token && *token) {
		s->since = token;
		s->saved = xstrdup(token);
		s->want_full_state = true;
		log_kv(ZLOG_INFO, "sync: resuming", "token", token, NULL);
	} else {
		free(token);
		log_kv(ZLOG_INFO, "sync: no saved token; starting from now (history is not replayed)", NULL);
	}
	start_poll(s);
	return 0;
}

void sync_set_rooms(struct sync *s, const char *const *room_ids, size_t n_rooms)
{
	if (!s)
		return;
	size_t n;
	char **fresh = rooms_copy(room_ids, n_rooms, &n);
	bool added = false, changed = n != s->n_rooms;
	for (size_t i = 0; i < n; i++) {
		if (!strv_has(s->rooms, s->n_rooms, fresh[i])) {
			added = true;
			changed = true;
		}
	}
	strv_free(s->rooms, s->n_rooms);
	s->rooms = fresh;
	s->n_rooms = n;
	if (added && s->since)
		s->want_full_state = true; /* the new rooms' state, without their history */
	if (!changed || !s->polling || s->dispatching)
		return; /* the next poll (after the callbacks, or the back-off) uses the new filter */
	/* A long poll with the old filter could hold the new rooms back for
	 * poll_timeout_ms; a fresh client is the only way to drop it. */
	struct matrix_client *mc = matrix_client_new(s->loop, s->cfg);
	if (!mc)
		return; /* the poll in flight ends in time anyway */
	matrix_client_free(s->mc);
	s->mc = mc;
	s->polling = false;
	start_poll(s);
}

static void sync_destroy(struct sync *s)
{
	if (s->retry_timer)
		loop_timer_cancel(s->loop, s->retry_timer);
	matrix_client_free(s->mc); /* from inside its callback it finishes later on its own */
	strv_free(s->rooms, s->n_rooms);
	strv_free(s->types, s->n_types);
	free(s->since);
	free(s->saved);
	free(s);
}

void sync_free(struct sync *s)
{
	if (!s)
		return;
	if (s->dispatching) {
		s->free_pending = true;
		if (s->retry_timer) {
			loop_timer_cancel(s->loop, s->retry_timer);
			s->retry_timer = 0;
		}
		return;
	}
	sync_destroy(s);
}

const char *sync_since(const struct sync *s) { return s ? s->since : NULL; }
