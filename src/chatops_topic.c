/* chatops_topic: keeps each route room's topic current (who is on call, how the room works;
 * room_topic.h composes it) with PUT .../state/m.room.topic: at start, at each handover and
 * after a reload, only when the text changes, after whatever people wrote there; with the
 * topic turned off, takes its own lines out again. */
#include "chatops_internal.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "commands.h"
#include "deliver.h"
#include "log.h"
#include "matrix.h"
#include "room_topic.h"

/* The store key of the block the bridge last set in a room (the rest of the topic is
 * people's): the next block replaces it and nothing else. */
#define KV_TOPIC_OURS "topic.ours."

struct topic_room {
	char *room_id;
	char *current;       /* the room's topic as last seen; NULL: it has none */
	bool known;          /* current was read (GET, or m.room.topic from /sync) */
	bool refused;        /* the bot may not set it (said once): waits for new power levels */
	bool rejected;       /* the homeserver refused it otherwise (said once): waits for a new
			      * topic, power levels or configuration */
	int attempts;        /* failed requests in a row */
	int64_t retry_at_ms; /* clock_real_ms(): no request before */
};

/* One request at a time, like chatops_rooms.c: rooms are few and topics change seldom. */
struct topic_state {
	struct matrix_client *client;
	struct topic_room *rooms;
	size_t n_rooms;
	char *busy_room; /* room id of the request in flight; NULL: none */
	char *put_text;  /* the topic a PUT in flight sets, and the bridge's block in it */
	char *put_block;
	bool dirty;       /* something changed: look at every room at the next tick */
	time_t next_change_s; /* the next handover (the on-call line changes); 0: none */
};

static struct topic_room *room_of(struct topic_state *ts, const char *room_id)
{
	for (size_t i = 0; i < ts->n_rooms; i++)
		if (strcmp(ts->rooms[i].room_id, room_id) == 0)
			return &ts->rooms[i];
	ts->rooms = xrealloc(ts->rooms, (ts->n_rooms + 1) * sizeof *ts->rooms);
	ts->rooms[ts->n_rooms] = (struct topic_room){.room_id = xstrdup(room_id)};
	return &ts->rooms[ts->n_rooms++];
}

static struct topic_state *state_of(struct chatops *c)
{
	if (!c->topic) {
		c->topic = xcalloc(1, sizeof *c->topic);
		c->topic->dirty = true;
	}
	return c->topic;
}

static void set_current(struct topic_room *tr, const char *text)
{
	free(tr->current);
	tr->current = text ? xstrdup(text) : NULL;
	tr->known = true;
}

static char *ours_key(const char *room_id)
{
	struct strbuf key = STRBUF_INIT;
	strbuf_printf(&key, KV_TOPIC_OURS "%s", room_id);
	return strbuf_detach(&key);
}

/* The bridge's block as the configuration says now. Caller frees. */
static char *compose_block(const struct chatops *c, time_t now)
{
	const struct config_chatops *co = &c->cfg->chatops;
	struct room_topic_facts f = {
		.rotation = co->oncall ? &co->rotation : NULL,
		.claim_reaction = co->claims ? co->claim_reaction : NULL,
		.resolve_reaction = co->claims ? co->resolve_reaction : NULL,
		.recheck = c->cfg->actions.enabled,
		.command_prefix = co->commands ? co->command_prefix : NULL,
		.note = co->topic_note,
	};
	return room_topic_compose(&f, now);
}

static void request_done(struct topic_state *ts)
{
	free(ts->busy_room);
	free(ts->put_text);
	free(ts->put_block);
	ts->busy_room = ts->put_text = ts->put_block = NULL;
	ts->dirty = true;
}

/* A failed request is asked again later, as joins are: backoff between retry_min and retry_max. */
static void retry_later(struct chatops *c, struct topic_room *tr)
{
	tr->attempts++;
	tr->retry_at_ms = clock_real_ms() + (int64_t)deliver_backoff_ms(tr->attempts, c->conn->matrix.retry_min_ms,
								       c->conn->matrix.retry_max_ms, 0.5);
}

static void on_topic_read(const struct matrix_response *r, void *data)
{
	struct chatops *c = data;
	struct topic_state *ts = c->topic;
	struct topic_room *tr = room_of(ts, ts->busy_room);
	const struct room_state *rs = chatops_room_by_id(c, ts->busy_room);
	if (tr->known) {
		/* /sync told it meanwhile, and /sync is never older than this answer's request. */
	} else if (r->status == 200 || r->status == 404) {
		set_current(tr, r->status == 200 ? room_topic_text_of(r->json) : NULL);
		tr->attempts = 0;
	} else {
		struct strbuf why = STRBUF_INIT;
		matrix_response_describe(r, &why);
		log_kv(tr->attempts == 0 ? ZLOG_WARN : ZLOG_DEBUG, "cannot read the room's topic; retrying", "room",
		       rs ? rs->room : tr->room_id, "reason", strbuf_str(&why), NULL);
		strbuf_free(&why);
		retry_later(c, tr);
	}
	request_done(ts);
}

/* Said once per room until its power levels change: a topic the bot may not set is the
 * room admins' choice, not an error to repeat every minute. */
static void refuse(struct topic_room *tr, const struct room_state *rs, const char *reason)
{
	char needed[24];
	snprintf(needed, sizeof needed, "%lld", room_topic_required_level(rs ? rs->power_levels : NULL));
	log_kv(ZLOG_WARN, "the bot may not set this room's topic; it is left as it is until the room's power levels change",
	       "room", rs ? rs->room : tr->room_id, "level_needed", needed, "reason", reason, NULL);
	tr->refused = true;
}

/* A refusal that is not about power (a topic too large with what people wrote, a bad
 * request): said once, tried again only when something it depends on changes. */
static void rejected(struct topic_room *tr, const struct room_state *rs, const char *reason)
{
	log_kv(ZLOG_WARN, "the homeserver refused the room's topic; it is left as it is until the topic, the power "
	       "levels or the configuration change", "room", rs ? rs->room : tr->room_id, "reason", reason, NULL);
	tr->rejected = true;
}

static void on_topic_set(const struct matrix_response *r, void *data)
{
	struct chatops *c = data;
	struct topic_state *ts = c->topic;
	struct topic_room *tr = room_of(ts, ts->busy_room);
	const struct room_state *rs = chatops_room_by_id(c, ts->busy_room);
	const char *room = rs ? rs->room : tr->room_id;
	if (r->status == 200) {
		set_current(tr, ts->put_text);
		tr->attempts = 0;
		char *key = ours_key(tr->room_id);
		c->host.kv_set(key, ts->put_block, c->host.data);
		free(key);
		if (*ts->put_block)
			log_kv(ZLOG_INFO, "room topic updated", "room", room, NULL);
		else
			log_kv(ZLOG_INFO, "the bridge's lines were taken out of the room's topic (chatops.topic is off)",
			       "room", room, NULL);
	} else {
		struct strbuf why = STRBUF_INIT;
		matrix_response_describe(r, &why);
		if (matrix_response_is_transient(r)) {
			log_kv(tr->attempts == 0 ? ZLOG_WARN : ZLOG_DEBUG, "cannot set the room's topic yet; retrying",
			       "room", room, "reason", strbuf_str(&why), NULL);
			retry_later(c, tr);
		} else if (r->status == 403) {
			refuse(tr, rs, strbuf_str(&why));
		} else {
			rejected(tr, rs, strbuf_str(&why));
		}
		strbuf_free(&why);
	}
	request_done(ts);
}

static bool start_request(struct chatops *c, struct topic_room *tr, const char *method, const char *body,
			  matrix_response_fn fn)
{
	struct topic_state *ts = c->topic;
	if (!ts->client)
		ts->client = matrix_client_new(c->loop, &c->conn->matrix);
	char *room_q = matrix_escape_segment(tr->room_id);
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "/_matrix/client/v3/rooms/%s/state/m.room.topic/", room_q);
	free(room_q);
	ts->busy_room = xstrdup(tr->room_id);
	bool ok = ts->client && matrix_request(ts->client, method, strbuf_str(&path), body, fn, c) == 0;
	strbuf_free(&path);
	if (!ok) {
		free(ts->busy_room);
		ts->busy_room = NULL;
		retry_later(c, tr);
	}
	return ok;
}

/* Sets rs's topic when its text would change. true: a request went out. */
static bool update_room(struct chatops *c, const struct room_state *rs, struct topic_room *tr, const char *block)
{
	char *key = ours_key(tr->room_id);
	char *ours = c->host.kv_get(key, c->host.data);
	free(key);
	char *text = room_topic_merge(tr->current, ours, block);
	free(ours);
	if (!text)
		return false;
	if (!room_topic_may_set(rs->power_levels, rs->create_content, rs->creator, c->user_id)) {
		char why[64];
		snprintf(why, sizeof why, "the bot has power level %lld",
			 commands_user_level(rs->power_levels, c->user_id, rs->creator));
		refuse(tr, rs, why);
		free(text);
		return false;
	}
	cJSON *content = room_topic_content(text);
	char *body = cJSON_PrintUnformatted(content);
	cJSON_Delete(content);
	struct topic_state *ts = c->topic;
	ts->put_text = text;
	ts->put_block = xstrdup(block);
	bool sent = start_request(c, tr, "PUT", body, on_topic_set);
	if (!sent) {
		free(ts->put_text);
		free(ts->put_block);
		ts->put_text = ts->put_block = NULL;
	}
	free(body);
	return sent;
}

/* Whether the bridge's block is (as far as the store knows) in room_id's topic. */
static bool has_our_block(struct chatops *c, const char *room_id)
{
	char *key = ours_key(room_id);
	char *ours = c->host.kv_get(key, c->host.data);
	free(key);
	bool has = ours && *ours;
	free(ours);
	return has;
}

/* Looks at the rooms when something changed or a handover passed; one request at a time.
 * With chatops.topic off, the bridge's block is taken out of the topics it is still in
 * (people's text stays), once: the block the store then remembers is empty. */
void chatops_topic_tick(struct chatops *c)
{
	if (!c->user_id || c->n_rooms == 0)
		return;
	bool on = c->cfg->chatops.topic;
	struct topic_state *ts = state_of(c);
	time_t now = (time_t)(clock_wall_ms() / 1000);
	if (ts->busy_room || (!ts->dirty && !(ts->next_change_s && now >= ts->next_change_s)))
		return;
	ts->dirty = false;
	struct rotation_oncall oc;
	ts->next_change_s = on && c->cfg->chatops.oncall && rotation_oncall(&c->cfg->chatops.rotation, now, &oc) == 0
				    ? oc.until : 0;
	char *block = on ? NULL : xstrdup("");
	int64_t real = clock_real_ms();
	for (size_t i = 0; i < c->n_rooms; i++) {
		const struct room_state *rs = &c->rooms[i];
		struct topic_room *tr = room_of(ts, rs->room_id);
		if (tr->refused || tr->rejected || (!on && !has_our_block(c, rs->room_id)))
			continue;
		/* Not yet: a retry's time, or the facts the power check needs (a version 12
		 * creator is known by the create event). Look again at the next tick. */
		if (real < tr->retry_at_ms || (tr->known && (!rs->create_known || !rs->power_levels))) {
			ts->dirty = true;
			continue;
		}
		if (!tr->known) {
			if (start_request(c, tr, "GET", NULL, on_topic_read))
				break;
			ts->dirty = true;
			continue;
		}
		if (!block)
			block = compose_block(c, now);
		if (update_room(c, rs, tr, block))
			break;
	}
	free(block);
}

void chatops_topic_event(struct chatops *c, const char *room_id, const cJSON *content)
{
	struct topic_state *ts = state_of(c);
	struct topic_room *tr = room_of(ts, room_id);
	set_current(tr, room_topic_text_of(content));
	tr->rejected = false;
	ts->dirty = true;
}

void chatops_topic_power_changed(struct chatops *c, const char *room_id)
{
	struct topic_state *ts = state_of(c);
	struct topic_room *tr = room_of(ts, room_id);
	tr->refused = tr->rejected = false;
	ts->dirty = true;
}

void chatops_topic_reload(struct chatops *c)
{
	struct topic_state *ts = state_of(c);
	for (size_t i = 0; i < ts->n_rooms; i++)
		ts->rooms[i].rejected = false;
	ts->dirty = true;
}

void chatops_topic_free(struct chatops *c)
{
	struct topic_state *ts = c->topic;
	if (!ts)
		return;
	matrix_client_free(ts->client);
	for (size_t i = 0; i < ts->n_rooms; i++) {
		free(ts->rooms[i].room_id);
		free(ts->rooms[i].current);
	}
	free(ts->rooms);
	free(ts->busy_room);
	free(ts->put_text);
	free(ts->put_block);
	free(ts);
	c->topic = NULL;
}
